/*
 * test_config.c — server/config.c: defaults, LSMI_* variables, flags that
 * win over them, size suffixes, bad values naming the option, tokens from a
 * file and from LSMI_TOKENS, loopback detection and CORS origins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "memory.h"

/* A fake environment: NAME=VALUE pairs in `fake_env`. */
static const char *const *fake_env;
static const char *env_fn(const char *name) {
  for (const char *const *e = fake_env; e && *e; e += 2)
    if (!strcmp(e[0], name))
      return e[1];
  return NULL;
}

/* What parse returns when --help was asked (a test-only marker). */
enum { HELP = 1 };

static int parse(lsmi_config_t *cfg, const char *const *env, int argc,
                 const char **argv, lsmi_error_t *err) {
  fake_env = env;
  FILE *devnull = fopen("/dev/null", "w");
  bool help = false;
  int rc =
      lsmi_config_parse(cfg, argc, (char **)argv, env_fn, devnull, &help, err);
  fclose(devnull);
  return rc == LSMI_OK && help ? HELP : rc;
}

static void test_defaults(void **state) {
  (void)state;
  lsmi_config_t cfg;
  lsmi_error_t err = {0};
  const char *argv[] = {"serve"};
  assert_int_equal(parse(&cfg, NULL, 1, argv, &err), 0);
  assert_string_equal(cfg.listen, "127.0.0.1:8080");
  assert_string_equal(cfg.host, "127.0.0.1");
  assert_int_equal(cfg.port, 8080);
  assert_string_equal(cfg.data_dir, "./lsmi-data");
  assert_int_equal(cfg.workers, 2);
  assert_int_equal(cfg.queue_size, 64);
  assert_true(cfg.max_upload == (1ULL << 30));
  assert_true(cfg.max_body == 64 * 1024);
  assert_true(cfg.limits.max_file_bytes == cfg.max_upload);
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  assert_true(cfg.limits.max_rows == lim.max_rows);
  assert_false(cfg.quiet);
  lsmi_config_free(&cfg);
}

static void test_env_and_flags(void **state) {
  (void)state;
  lsmi_config_t cfg;
  lsmi_error_t err = {0};
  const char *env[] = {"LSMI_WORKERS",
                       "3",
                       "LSMI_MAX_UPLOAD",
                       "2M",
                       "LSMI_DATA_DIR",
                       "/env/dir",
                       "LSMI_QUIET",
                       "yes",
                       "LSMI_MAX_ROWS",
                       "77",
                       "LSMI_MAX_RATIO",
                       "12.5",
                       NULL};
  const char *argv[] = {"serve",      "--workers", "5", "--listen=[::1]:9",
                        "--max-body", "1K"};
  assert_int_equal(parse(&cfg, env, 6, argv, &err), 0);
  assert_int_equal(cfg.workers, 5);               /* flag wins */
  assert_true(cfg.max_upload == 2 * 1024 * 1024); /* env applies */
  assert_string_equal(cfg.data_dir, "/env/dir");
  assert_true(cfg.quiet);
  assert_true(cfg.max_body == 1024);
  assert_true(cfg.limits.max_rows == 77);
  assert_true(cfg.limits.max_ratio == 12.5);
  assert_string_equal(cfg.host, "::1");
  assert_int_equal(cfg.port, 9);
  assert_true(lsmi_config_is_loopback(cfg.host));
  lsmi_config_free(&cfg);
}

static void test_bad_values(void **state) {
  (void)state;
  lsmi_config_t cfg;
  lsmi_error_t err = {0};
  const char *a1[] = {"serve", "--workers", "x"};
  assert_int_equal(parse(&cfg, NULL, 3, a1, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "workers");
  lsmi_config_free(&cfg);
  const char *a2[] = {"serve", "--max-upload", "12Q"};
  assert_int_equal(parse(&cfg, NULL, 3, a2, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "max-upload");
  lsmi_config_free(&cfg);
  const char *a3[] = {"serve", "--nope"};
  assert_int_equal(parse(&cfg, NULL, 2, a3, &err), LSMI_ERR_INVALID);
  lsmi_config_free(&cfg);
  const char *a4[] = {"serve", "--listen", "nohost"};
  assert_int_equal(parse(&cfg, NULL, 3, a4, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "listen");
  lsmi_config_free(&cfg);
  const char *a5[] = {"serve", "--listen", "1.2.3.4:70000"};
  assert_int_equal(parse(&cfg, NULL, 3, a5, &err), LSMI_ERR_INVALID);
  lsmi_config_free(&cfg);
  const char *a6[] = {"serve", "--workers", "0"};
  assert_int_equal(parse(&cfg, NULL, 3, a6, &err), LSMI_ERR_INVALID);
  lsmi_config_free(&cfg);
  const char *a7[] = {"serve", "--data-dir"};
  assert_int_equal(parse(&cfg, NULL, 2, a7, &err), LSMI_ERR_INVALID);
  lsmi_config_free(&cfg);
  const char *env[] = {"LSMI_QUEUE_SIZE", "-1", NULL};
  const char *a8[] = {"serve"};
  assert_int_equal(parse(&cfg, env, 1, a8, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "queue-size");
  lsmi_config_free(&cfg);
  const char *a10[] = {"serve", "--max-ratio", "0.5"};
  assert_int_equal(parse(&cfg, NULL, 3, a10, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "max-ratio");
  lsmi_config_free(&cfg);
  const char *a9[] = {"serve", "--help"};
  assert_int_equal(parse(&cfg, NULL, 2, a9, &err), HELP);
  lsmi_config_free(&cfg);
}

/* The memory budget: 0 is the machine's (or the container's) three
 * quarters, the per-job budget defaults to the whole and may not exceed
 * it. */
static void test_memory_budget(void **state) {
  (void)state;
  lsmi_config_t cfg;
  lsmi_error_t err = {0};
  const char *argv[] = {"serve"};
  assert_int_equal(parse(&cfg, NULL, 1, argv, &err), 0);
  assert_true(cfg.max_memory > 0 &&
              cfg.max_memory == lsmi_mem_default_budget());
  assert_true(cfg.max_job_memory == cfg.max_memory);
  assert_int_equal(cfg.tenant_queue_size, 0);
  lsmi_config_free(&cfg);
  const char *set[] = {"serve", "--max-memory", "8G", "--max-job-memory", "2G"};
  assert_int_equal(parse(&cfg, NULL, 5, set, &err), 0);
  assert_true(cfg.max_memory == 8ULL << 30 && cfg.max_job_memory == 2ULL << 30);
  lsmi_config_free(&cfg);
  const char *bad[] = {"serve", "--max-memory", "1G", "--max-job-memory", "2G"};
  assert_int_equal(parse(&cfg, NULL, 5, bad, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "max-job-memory");
  lsmi_config_free(&cfg);
}

/* The tokens of the configuration: its file and LSMI_TOKENS together
 * (tests/server/test_tokens.c has the rules), and a file that cannot be
 * read named in the error. */
static void test_tokens(void **state) {
  (void)state;
  char path[] = "/tmp/lsmi-tokens-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char text[] = "# comment\n\n  tok-a-0123456789   alice \n"
                      "tok-b-0123456789 bob\n";
  assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)sizeof text - 1);
  close(fd);
  lsmi_config_t cfg;
  lsmi_error_t err = {0};
  const char *env[] = {"LSMI_TOKENS", "tok-c-0123456789=carol",
                       "LSMI_TOKENS_FILE", path, NULL};
  const char *argv[] = {"serve"};
  assert_int_equal(parse(&cfg, env, 1, argv, &err), 0);
  assert_int_equal(lsmi_config_n_tokens(&cfg), 0);
  lsmi_tokens_info_t info;
  assert_int_equal(lsmi_config_load_tokens(&cfg, env_fn, &info, &err), 0);
  assert_int_equal(lsmi_config_n_tokens(&cfg), 3);
  assert_int_equal(info.tokens, 3);
  assert_int_equal(info.tenants, 3);
  char who[64];
  assert_true(
      lsmi_tokens_tenant(cfg.tokens, "tok-b-0123456789", who, sizeof who));
  assert_string_equal(who, "bob");
  assert_true(
      lsmi_tokens_tenant(cfg.tokens, "tok-c-0123456789", who, sizeof who));
  assert_string_equal(who, "carol");
  lsmi_config_free(&cfg);
  unlink(path);
  const char *env2[] = {"LSMI_TOKENS_FILE", "/nonexistent/tokens", NULL};
  assert_int_equal(parse(&cfg, env2, 1, argv, &err), 0);
  assert_int_equal(lsmi_config_load_tokens(&cfg, env_fn, NULL, &err),
                   LSMI_ERR_IO);
  assert_string_equal(err.field, "tokens-file");
  lsmi_config_free(&cfg);
}

static void test_loopback_and_origins(void **state) {
  (void)state;
  assert_true(lsmi_config_is_loopback("127.0.0.1"));
  assert_true(lsmi_config_is_loopback("127.1.2.3"));
  assert_true(lsmi_config_is_loopback("localhost"));
  assert_true(lsmi_config_is_loopback("::1"));
  assert_false(lsmi_config_is_loopback("0.0.0.0"));
  assert_false(lsmi_config_is_loopback("10.0.0.1"));
  assert_false(lsmi_config_is_loopback("::"));
  lsmi_config_t cfg;
  lsmi_error_t err = {0};
  const char *argv[] = {"serve", "--cors-origin",
                        "https://a.example, https://b.example"};
  assert_int_equal(parse(&cfg, NULL, 3, argv, &err), 0);
  assert_true(lsmi_config_origin_allowed(&cfg, "https://a.example"));
  assert_true(lsmi_config_origin_allowed(&cfg, "https://b.example"));
  assert_false(lsmi_config_origin_allowed(&cfg, "https://a.example.evil"));
  assert_false(lsmi_config_origin_allowed(&cfg, "https://a"));
  assert_false(lsmi_config_origin_allowed(&cfg, NULL));
  lsmi_config_free(&cfg);
  const char *any[] = {"serve", "--cors-origin", "*"};
  assert_int_equal(parse(&cfg, NULL, 3, any, &err), 0);
  assert_true(lsmi_config_origin_allowed(&cfg, "https://x"));
  lsmi_config_free(&cfg);
  const char *none[] = {"serve"};
  assert_int_equal(parse(&cfg, NULL, 1, none, &err), 0);
  assert_false(lsmi_config_origin_allowed(&cfg, "https://x"));
  lsmi_config_free(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_env_and_flags),
      cmocka_unit_test(test_bad_values),
      cmocka_unit_test(test_memory_budget),
      cmocka_unit_test(test_tokens),
      cmocka_unit_test(test_loopback_and_origins),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
