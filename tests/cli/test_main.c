/*
 * test_main.c — cli/main.c: the `lsmi` binary's dispatch. main.c is
 * included with its main() renamed, as h2o's unit tests include the file
 * under test. Each subcommand is reached, usage goes to stdout when asked
 * for and to stderr (exit 2) otherwise, `version` prints the version, and
 * the kernels are logged by the daemon and otherwise only with --verbose
 * (LSMI_KERNELS that names none is warned about and ignored).
 *
 * The kernels are fixed to "generic" before any call, so that main() never
 * takes the BLAS path, whose set-up may re-execute the process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

int lsmi_cli_main(int argc, char **argv);
#define main lsmi_cli_main
#include "../../cli/main.c"
#undef main

#include "run.h"

static int setup(void **state) {
  (void)state;
  unsetenv("LSMI_KERNELS");
  return lsmi_kernels_select("generic") == LSMI_OK ? 0 : -1;
}

static void test_no_command(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_cli_main, "lsmi", NULL);
  assert_int_equal(r.rc, 2);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "usage: lsmi COMMAND [ARGS]");
  cli_run_free(&r);
}

static void test_help_goes_to_stdout(void **state) {
  (void)state;
  static const char *asks[] = {"help", "--help", "-h"};
  for (size_t i = 0; i < 3; i++) {
    cli_run_t r = cli_run(lsmi_cli_main, "lsmi", asks[i], NULL);
    assert_int_equal(r.rc, 0);
    assert_contains(r.out, "usage: lsmi COMMAND [ARGS]");
    static const char *commands[] = {"  fit FILE", "  synth KIND", "  serve ",
                                     "  probe ", "  version "};
    for (size_t k = 0; k < 5; k++)
      assert_contains(r.out, commands[k]);
    cli_run_free(&r);
  }
}

static void test_unknown_command(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_cli_main, "lsmi", "frobnicate", NULL);
  assert_int_equal(r.rc, 2);
  assert_contains(r.err, "lsmi: unknown command 'frobnicate'");
  assert_contains(r.err, "usage: lsmi COMMAND [ARGS]");
  cli_run_free(&r);
}

static void test_version(void **state) {
  (void)state;
  char want[64];
  snprintf(want, sizeof want, "lsmi %s\n", LSMI_VERSION);
  static const char *asks[] = {"version", "--version"};
  for (size_t i = 0; i < 2; i++) {
    cli_run_t r = cli_run(lsmi_cli_main, "lsmi", asks[i], NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, want);
    cli_run_free(&r);
  }
}

/* The kernels are logged as one JSON line by the daemon, and by the other
 * commands only with --verbose: `lsmi version` prints its version alone. */
static void test_kernels_line_only_when_asked(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_cli_main, "lsmi", "version", NULL);
  assert_string_equal(r.err, "");
  cli_run_free(&r);
  r = cli_run(lsmi_cli_main, "lsmi", "version", "--verbose", NULL);
  assert_contains(r.err, "{\"level\":\"info\",\"event\":\"blas\","
                         "\"kernels\":\"generic\",\"used\":false,"
                         "\"loaded\":false}\n");
  cli_run_free(&r);
  r = cli_run(lsmi_cli_main, "lsmi", "synth", "--help", "-v", NULL);
  assert_int_equal(r.rc, 0);
  assert_contains(r.err, "\"event\":\"blas\"");
  cli_run_free(&r);
  /* the daemon's log always has it (its usage exits before it starts) */
  r = cli_run(lsmi_cli_main, "lsmi", "serve", "--help", NULL);
  assert_contains(r.err, "\"event\":\"blas\"");
  cli_run_free(&r);

  /* LSMI_KERNELS that names no kernels is a warning: a sentence, or a
   * JSON line where the kernels are logged. */
  setenv("LSMI_KERNELS", "warp-drive", 1);
  r = cli_run(lsmi_cli_main, "lsmi", "version", NULL);
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.err,
                      "lsmi: warning: LSMI_KERNELS names no kernels this CPU "
                      "runs (avx512, blas, generic); ignored\n");
  cli_run_free(&r);
  r = cli_run(lsmi_cli_main, "lsmi", "version", "--verbose", NULL);
  unsetenv("LSMI_KERNELS");
  assert_contains(r.err, "\"event\":\"kernels\"");
  assert_contains(r.err, "LSMI_KERNELS names no kernels this CPU runs");
  cli_run_free(&r);

  /* The health probe stays quiet: no start-up line. */
  r = cli_run(lsmi_cli_main, "lsmi", "probe", "--help", NULL);
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.err, "");
  cli_run_free(&r);
}

/* Each subcommand is reached with its own arguments (its --help shows). */
static void test_dispatch(void **state) {
  (void)state;
  static const struct {
    const char *command, *usage;
  } cases[] = {
      {"fit", "usage: lsmi fit FILE"},
      {"synth", "usage: lsmi synth KIND"},
      {"serve", "usage: lsmi serve"},
      {"probe", "usage: lsmi probe"},
  };
  for (size_t i = 0; i < 4; i++) {
    cli_run_t r =
        cli_run(lsmi_cli_main, "lsmi", cases[i].command, "--help", NULL);
    assert_int_equal(r.rc, 0);
    assert_contains(r.out, cases[i].usage);
    cli_run_free(&r);
  }
  /* and its errors come back as the exit status */
  cli_run_t r = cli_run(lsmi_cli_main, "lsmi", "fit", NULL);
  assert_int_equal(r.rc, 2);
  assert_contains(r.err, "usage: lsmi fit FILE");
  cli_run_free(&r);
  r = cli_run(lsmi_cli_main, "lsmi", "serve", "--no-such-flag", NULL);
  assert_int_equal(r.rc, 2);
  cli_run_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_command),
      cmocka_unit_test(test_help_goes_to_stdout),
      cmocka_unit_test(test_unknown_command),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_kernels_line_only_when_asked),
      cmocka_unit_test(test_dispatch),
  };
  return cmocka_run_group_tests_name("cli/main", tests, setup, NULL);
}
