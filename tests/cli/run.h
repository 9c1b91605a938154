/*
 * run.h — runs a subcommand's entry point (lsmi_fit_main, ...) in the test
 * process with its stdout and stderr captured, and scratch directories for
 * the files it writes (include after <cmocka.h>).
 *
 *     cli_run_t r = cli_run(lsmi_synth_main, "synth", "foo", NULL);
 *     assert_int_equal(r.rc, 2);
 *     assert_non_null(strstr(r.err, "unknown kind"));
 *     cli_run_free(&r);
 *
 * Both streams go to temp files (dup2 over fds 1 and 2) for the call and
 * are read back whole, so a command that prints megabytes cannot fill a
 * pipe and hang. Header-only: each test binary includes it once.
 * Files a command writes go to a scratch directory (cli_scratch).
 */
#ifndef LSMI_TESTS_CLI_RUN_H
#define LSMI_TESTS_CLI_RUN_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct cli_run {
  int rc;    /* the entry point's return value: the exit status */
  char *out; /* everything written to stdout, NUL-terminated; owned */
  char *err; /* everything written to stderr, NUL-terminated; owned */
} cli_run_t;

typedef int (*cli_main_fn)(int argc, char **argv);

/* The whole of an open file from its start, NUL-terminated (malloc'd). */
static inline char *cli_slurp_fd(int fd) {
  off_t n = lseek(fd, 0, SEEK_END);
  assert_true(n >= 0);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(pread(fd, buf, (size_t)n, 0), n);
  buf[n] = '\0';
  return buf;
}

/* A file's whole content, NUL-terminated (malloc'd), or NULL if it cannot
 * be opened. */
static inline char *cli_slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = cli_slurp_fd(fileno(f));
  fclose(f);
  return buf;
}

/* Calls fn with argv[0..argc) with its stdout on out_fd and its stderr
 * on err_fd (a file, a terminal); returns fn's status. */
static inline int cli_run_on(cli_main_fn fn, int argc, char **argv,
                             int out_fd, int err_fd) {
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  assert_true(saved_out >= 0 && saved_err >= 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  int rc = fn(argc, argv);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  return rc;
}

/* Calls fn with argv[0..argc), capturing stdout and stderr. */
static inline cli_run_t cli_runv(cli_main_fn fn, int argc, char **argv) {
  char out_name[] = "/tmp/lsmi-cli-out-XXXXXX";
  char err_name[] = "/tmp/lsmi-cli-err-XXXXXX";
  int out_fd = mkstemp(out_name), err_fd = mkstemp(err_name);
  assert_true(out_fd >= 0 && err_fd >= 0);
  unlink(out_name);
  unlink(err_name);
  cli_run_t r;
  r.rc = cli_run_on(fn, argc, argv, out_fd, err_fd);
  r.out = cli_slurp_fd(out_fd);
  r.err = cli_slurp_fd(err_fd);
  close(out_fd);
  close(err_fd);
  return r;
}

/* cli_runv on the NULL-terminated list of arguments after fn. */
static inline cli_run_t cli_run(cli_main_fn fn, const char *arg0, ...) {
  char *argv[64];
  int argc = 0;
  va_list ap;
  va_start(ap, arg0);
  for (const char *a = arg0; a != NULL; a = va_arg(ap, const char *)) {
    assert_true(argc < 63);
    argv[argc++] = (char *)a;
  }
  va_end(ap);
  argv[argc] = NULL;
  return cli_runv(fn, argc, argv);
}

static inline void cli_run_free(cli_run_t *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

/* Fails the test, showing both streams, unless text contains needle. */
#define assert_contains(text, needle)                                          \
  do {                                                                         \
    const char *t_ = (text), *n_ = (needle);                                   \
    if (t_ == NULL || strstr(t_, n_) == NULL)                                  \
      fail_msg("expected \"%s\" in:\n%s", n_, t_ ? t_ : "(null)");             \
  } while (0)

/*
 * Runs fn with argv[0] = name and then args[0..n) up to the first NULL, an
 * argument "@" standing for `at`, and asserts a usage error: exit status 2,
 * nothing on stdout, `says` on stderr.
 */
static inline void cli_assert_usage_error(cli_main_fn fn, const char *name,
                                          const char *const *args, size_t n,
                                          const char *at, const char *says) {
  char *argv[16] = {(char *)name};
  int argc = 1;
  for (size_t k = 0; k < n && k < 14 && args[k]; k++)
    argv[argc++] = (char *)(at && strcmp(args[k], "@") == 0 ? at : args[k]);
  argv[argc] = NULL;
  cli_run_t r = cli_runv(fn, argc, argv);
  if (r.rc != 2)
    fail_msg("%s %s: exit %d, stderr: %s", name, argc > 1 ? argv[1] : "", r.rc,
             r.err);
  assert_contains(r.err, says);
  assert_string_equal(r.out, "");
  cli_run_free(&r);
}

/* The test binary's scratch directory, made by cli_scratch_setup and
 * removed with everything in it by cli_scratch_teardown (cmocka group
 * set-up and tear-down). */
static char cli_dir[64];

static inline int cli_scratch_setup(void **state) {
  (void)state;
  snprintf(cli_dir, sizeof cli_dir, "/tmp/lsmi-cli-XXXXXX");
  return mkdtemp(cli_dir) ? 0 : -1;
}

static inline int cli_scratch_teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cli_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* A path in the scratch directory, in a static buffer: the last four
 * paths asked for stay valid. */
static inline const char *cli_scratch(const char *name) {
  static char bufs[4][128];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, sizeof bufs[0], "%s/%s", cli_dir, name);
  return b;
}

/* How many entries of dir have names containing part ("" for all but . and
 * ..). */
static inline int cli_count_entries(const char *dir, const char *part) {
  DIR *h = opendir(dir);
  assert_non_null(h);
  int n = 0;
  for (struct dirent *e; (e = readdir(h)) != NULL;)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
        strstr(e->d_name, part) != NULL)
      n++;
  closedir(h);
  return n;
}

#endif
