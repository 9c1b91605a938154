/*
 * test_synth.c — cli/cmd_synth.c: `lsmi synth KIND --out FILE.npz` called
 * as lsmi_synth_main. Each kind writes a dataset lsmi reads back with the
 * 80/20 split; a seed gives the same bytes again; each usage error exits 2
 * with its message and a failed write exits 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "lsmi_io.h"
#include "run.h"

/* Reads path back; asserts the shapes. */
static void check_dataset(const char *path, size_t ntrain, size_t nval,
                          int classes) {
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi_dataset_t *ds = NULL;
  lsmi_format_t fmt;
  lsmi_error_t err = {0};
  if (lsmi_dataset_read(path, &lim, 0.0, 0, &ds, &fmt, &err) != LSMI_OK)
    fail_msg("%s: %s", path, err.message);
  assert_int_equal(fmt, LSMI_FORMAT_NPZ);
  assert_int_equal(ds->train.n, ntrain);
  assert_int_equal(ds->val.n, nval);
  assert_int_equal(ds->classes, classes);
  lsmi_dataset_destroy(ds);
}

/* The bytes of a file (malloc'd) and their count. */
static char *bytes_of(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char *b = cli_slurp_fd(fileno(f));
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  *n = (size_t)ftell(f);
  fclose(f);
  return b;
}

static void test_help(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_synth_main, "synth", "--help", NULL);
  assert_int_equal(r.rc, 0);
  assert_contains(r.out, "usage: lsmi synth KIND --out FILE.npz");
  static const char *kinds[] = {"gaussian", "redundancy", "uniqueness",
                                "synergy"};
  for (size_t i = 0; i < 4; i++)
    assert_contains(r.out, kinds[i]);
  assert_string_equal(r.err, "");
  cli_run_free(&r);
}

static void test_every_kind(void **state) {
  (void)state;
  static const char *kinds[] = {"gaussian", "redundancy", "uniqueness",
                                "synergy"};
  for (size_t i = 0; i < 4; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s.npz", kinds[i]);
    const char *path = cli_scratch(name);
    cli_run_t r = cli_run(lsmi_synth_main, "synth", kinds[i], "--out", path,
                          "--n", "100", NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "");
    char says[256];
    snprintf(says, sizeof says, "lsmi: wrote %s: %s, train 80, val 20, ", path,
             kinds[i]);
    assert_contains(r.err, says);
    cli_run_free(&r);
    check_dataset(path, 80, 20, 2);
  }
}

/* Without --n: 2000 samples. The options may come in any order. */
static void test_default_size_and_order(void **state) {
  (void)state;
  const char *path = cli_scratch("default.npz");
  cli_run_t r = cli_run(lsmi_synth_main, "synth", "-o", path, "synergy", NULL);
  assert_int_equal(r.rc, 0);
  assert_contains(r.err, "synergy, train 1600, val 400");
  cli_run_free(&r);
  check_dataset(path, 1600, 400, 2);
}

static void test_seed_gives_the_same_bytes(void **state) {
  (void)state;
  const char *a = cli_scratch("a.npz"), *b = cli_scratch("b.npz"),
             *c = cli_scratch("c.npz");
  cli_run_t r = cli_run(lsmi_synth_main, "synth", "gaussian", "--seed", "7",
                        "--n", "200", "--out", a, NULL);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  r = cli_run(lsmi_synth_main, "synth", "gaussian", "--n", "200", "--seed", "7",
              "--out", b, NULL);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  r = cli_run(lsmi_synth_main, "synth", "gaussian", "--n", "200", "--seed", "8",
              "--out", c, NULL);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  size_t na, nb, nc;
  char *x = bytes_of(a, &na), *y = bytes_of(b, &nb), *z = bytes_of(c, &nc);
  assert_int_equal(na, nb);
  assert_memory_equal(x, y, na);
  assert_true(na != nc || memcmp(x, z, na) != 0);
  free(x);
  free(y);
  free(z);
}

/* Each usage error: exit 2, its message, nothing written. "@" in an
 * argument list stands for the output path. */
static void test_usage_errors(void **state) {
  (void)state;
  const char *out = cli_scratch("never.npz");
  static const struct {
    const char *args[6]; /* NULL-terminated */
    const char *says;
  } cases[] = {
      {{"foo", "--out", "@"}, "lsmi synth: unknown kind 'foo'"},
      {{"gaussian"}, "usage: lsmi synth KIND --out FILE.npz"},
      {{"--out", "@"}, "usage: lsmi synth KIND --out FILE.npz"},
      {{"gaussian", "--out"}, "lsmi synth: --out needs a value"},
      {{"gaussian", "--out", "@", "--n", "abc"},
       "lsmi synth: --n must be a count, got 'abc'"},
      {{"gaussian", "--out", "@", "--n", "-5"},
       "lsmi synth: --n must be a count, got '-5'"},
      {{"gaussian", "--out", "@", "--seed", "x1"},
       "lsmi synth: --seed must be a number, got 'x1'"},
      {{"gaussian", "--out", "@", "--n"}, "lsmi synth: --n needs a value"},
      {{"gaussian", "--out", "@", "--seed"},
       "lsmi synth: --seed needs a value"},
      {{"gaussian", "--out", "@", "synergy"},
       "lsmi synth: unexpected argument 'synergy'"},
      {{"gaussian", "--out", "@", "--bogus"},
       "lsmi synth: unexpected argument '--bogus'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cli_assert_usage_error(lsmi_synth_main, "synth", cases[i].args, 6, out,
                           cases[i].says);
  assert_int_equal(cli_count_entries(cli_dir, "never"), 0);
}

static void test_failures_exit_1(void **state) {
  (void)state;
  /* Too few samples: the library refuses, the command says why. */
  cli_run_t r = cli_run(lsmi_synth_main, "synth", "gaussian", "--n", "5",
                        "--out", cli_scratch("small.npz"), NULL);
  assert_int_equal(r.rc, 1);
  assert_contains(r.err, "lsmi synth: n must be at least 10, got 5");
  cli_run_free(&r);
  /* A directory that does not exist. */
  r = cli_run(lsmi_synth_main, "synth", "gaussian", "--out",
              cli_scratch("missing-dir/x.npz"), NULL);
  assert_int_equal(r.rc, 1);
  assert_contains(r.err, "lsmi synth: ");
  cli_run_free(&r);
  assert_int_equal(cli_count_entries(cli_dir, "small"), 0);
  assert_int_equal(cli_count_entries(cli_dir, ".tmp"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help),
      cmocka_unit_test(test_every_kind),
      cmocka_unit_test(test_default_size_and_order),
      cmocka_unit_test(test_seed_gives_the_same_bytes),
      cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_failures_exit_1),
  };
  return cmocka_run_group_tests_name("cli/synth", tests, cli_scratch_setup,
                                     cli_scratch_teardown);
}
