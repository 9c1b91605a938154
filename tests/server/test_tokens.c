/*
 * test_tokens.c — server/tokens.c: the lines of a tokens file and the
 * items of LSMI_TOKENS, each rule refused with a message that names the
 * line or item and never the token; lookups; a reload that replaces the
 * set, and one that keeps it (a broken file, a file that would leave no
 * token); the mode of the file; the ids `lsmi token` shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokens.h"

static void write_file(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chmod(path, mode), 0);
}

static void test_lines(void **state) {
  (void)state;
  char tok[LSMI_TOKEN_LINE_MAX], ten[LSMI_TOKEN_LINE_MAX];
  const char *why = "x";
  assert_int_equal(lsmi_tokens_line("", tok, ten, &why), LSMI_TOKEN_LINE_NONE);
  assert_int_equal(lsmi_tokens_line("   \t", tok, ten, &why),
                   LSMI_TOKEN_LINE_NONE);
  assert_int_equal(lsmi_tokens_line("# a comment", tok, ten, &why),
                   LSMI_TOKEN_LINE_NONE);
  assert_int_equal(
      lsmi_tokens_line(" 0123456789abcdef\talice \r", tok, ten, &why),
      LSMI_TOKEN_LINE_ENTRY);
  assert_null(why);
  assert_string_equal(tok, "0123456789abcdef");
  assert_string_equal(ten, "alice");
  static const struct {
    const char *line, *why;
  } bad[] = {
      {"0123456789abcdef", "without a tenant"},
      {"0123456789abcdef alice bob", "more than"},
      {"0123456789abcde alice", "shorter than 16"},
      {"s3cret alice", "shorter than 16"},
      {"0123456789abcdef ali/ce", "letters, digits"},
      {"0123456789abcdef "
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
       "longer than 63"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(lsmi_tokens_line(bad[i].line, tok, ten, &why),
                     LSMI_TOKEN_LINE_BAD);
    if (strstr(why, bad[i].why) == NULL)
      fail_msg("'%s': '%s' lacks '%s'", bad[i].line, why, bad[i].why);
  }
  assert_non_null(lsmi_tokens_check_token("0123456789\001abcdef"));
  assert_null(lsmi_tokens_check_tenant("lab-1.a_b@x"));
  char id[13], id2[13];
  lsmi_tokens_id("0123456789abcdef", id);
  lsmi_tokens_id("0123456789abcdef", id2);
  assert_int_equal(strlen(id), 12);
  assert_string_equal(id, id2);
  lsmi_tokens_id("0123456789abcdeF", id2);
  assert_string_not_equal(id, id2);
}

/* Loads a set from file (may be NULL) and env: the status, err filled. */
static int load(const char *file, const char *env, lsmi_tokens_t **t,
                lsmi_tokens_info_t *info, lsmi_error_t *err) {
  assert_int_equal(lsmi_tokens_create(file, env, t), 0);
  return lsmi_tokens_load(*t, info, err);
}

static void test_env(void **state) {
  (void)state;
  lsmi_tokens_t *t = NULL;
  lsmi_tokens_info_t info;
  lsmi_error_t err = {0};
  assert_int_equal(load(NULL,
                        " tok-a-0123456789=alice,tok-b-0123456789=bob "
                        "tok-c-0123456789==pad=carol,,",
                        &t, &info, &err),
                   0);
  assert_int_equal(info.tokens, 3);
  assert_int_equal(info.tenants, 3);
  char who[64];
  assert_true(lsmi_tokens_tenant(t, "tok-b-0123456789", who, sizeof who));
  assert_string_equal(who, "bob");
  /* the last '=' splits: a token may end in base64 padding */
  assert_true(lsmi_tokens_tenant(t, "tok-c-0123456789==pad", who, sizeof who));
  assert_string_equal(who, "carol");
  assert_false(lsmi_tokens_tenant(t, "tok-a-012345678", who, sizeof who));
  assert_false(lsmi_tokens_tenant(t, "tok-a-01234567890", who, sizeof who));
  assert_false(lsmi_tokens_tenant(t, "", who, sizeof who));
  assert_false(lsmi_tokens_tenant(t, NULL, who, sizeof who));
  assert_false(lsmi_tokens_has_file(t));
  lsmi_tokens_destroy(t);
  static const struct {
    const char *env, *why;
  } bad[] = {
      {"alice:s3cret-0123456789", "item 1: it is not TOKEN=TENANT"},
      {"tok-a-0123456789=alice,tok-b-0123456789", "item 2: it is not"},
      {"s3cret=alice", "item 1: the token is shorter than 16"},
      {"tok-a-0123456789=", "item 1: the tenant is missing"},
      {"tok-a-0123456789=al:ice", "letters, digits"},
      {"tok-a-0123456789=alice tok-a-0123456789=bob", "for tenant 'alice' too"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&err, 0, sizeof err);
    assert_int_equal(load(NULL, bad[i].env, &t, &info, &err), LSMI_ERR_INVALID);
    if (strstr(err.message, bad[i].why) == NULL)
      fail_msg("'%s': '%s' lacks '%s'", bad[i].env, err.message, bad[i].why);
    assert_string_equal(err.field, "LSMI_TOKENS");
    assert_null(strstr(err.message, "s3cret")); /* never the secret */
    assert_null(strstr(err.message, "0123456789"));
    size_t n = 9;
    lsmi_tokens_counts(t, &n, NULL);
    assert_int_equal(n, 0);
    lsmi_tokens_destroy(t);
  }
  /* the same pair twice is one token */
  assert_int_equal(load(NULL, "tok-a-0123456789=alice tok-a-0123456789=alice",
                        &t, &info, &err),
                   0);
  assert_int_equal(info.tokens, 1);
  lsmi_tokens_destroy(t);
  lsmi_tokens_destroy(NULL);
}

/* A file with its env, reloaded after each change: a good file replaces
 * the set; a broken one, or one that would leave no token, keeps it. */
static void test_file_and_reload(void **state) {
  (void)state;
  char path[] = "/tmp/lsmi-tokens-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  write_file(path,
             "# tokens\n\ntok-a-0123456789 alice\ntok-a2-0123456789 alice\n",
             0600);
  lsmi_tokens_t *t = NULL;
  lsmi_tokens_info_t info;
  lsmi_error_t err = {0};
  assert_int_equal(load(path, "tok-e-0123456789=erin", &t, &info, &err), 0);
  assert_int_equal(info.tokens, 3);
  assert_int_equal(info.tenants, 2);
  assert_false(info.world_readable);
  assert_int_equal(info.mode, 0600);
  assert_true(lsmi_tokens_has_file(t));
  char who[64];
  assert_true(lsmi_tokens_tenant(t, "tok-a2-0123456789", who, sizeof who));
  assert_string_equal(who, "alice");
  /* a new token, one revoked, world-readable */
  write_file(path, "tok-b-0123456789 bob\ntok-a-0123456789 alice\n", 0644);
  assert_int_equal(lsmi_tokens_load(t, &info, &err), 0);
  assert_int_equal(info.tokens, 3);
  assert_true(info.world_readable);
  assert_int_equal(info.mode, 0644);
  assert_true(lsmi_tokens_tenant(t, "tok-b-0123456789", who, sizeof who));
  assert_string_equal(who, "bob");
  assert_false(lsmi_tokens_tenant(t, "tok-a2-0123456789", who, sizeof who));
  /* a broken line: refused, naming it; the set stays */
  write_file(path, "tok-b-0123456789 bob\nshort carol\n", 0600);
  assert_int_equal(lsmi_tokens_load(t, &info, &err), LSMI_ERR_INVALID);
  assert_non_null(strstr(err.message, "line 2"));
  assert_non_null(strstr(err.message, "shorter than 16"));
  assert_null(strstr(err.message, "short carol"));
  assert_string_equal(err.field, "tokens-file");
  assert_true(lsmi_tokens_tenant(t, "tok-a-0123456789", who, sizeof who));
  /* a file with no token at all (and no env): never opens the API */
  lsmi_tokens_destroy(t);
  write_file(path, "tok-b-0123456789 bob\n", 0600);
  assert_int_equal(load(path, NULL, &t, &info, &err), 0);
  write_file(path, "# nobody\n", 0600);
  assert_int_equal(lsmi_tokens_load(t, &info, &err), LSMI_ERR_INVALID);
  assert_non_null(strstr(err.message, "open the API"));
  assert_true(lsmi_tokens_tenant(t, "tok-b-0123456789", who, sizeof who));
  /* a file gone: kept too */
  unlink(path);
  assert_int_equal(lsmi_tokens_load(t, &info, &err), LSMI_ERR_IO);
  assert_true(lsmi_tokens_tenant(t, "tok-b-0123456789", who, sizeof who));
  lsmi_tokens_destroy(t);
  /* no file and no env: an empty set loads (the open, loopback daemon) */
  assert_int_equal(load("", NULL, &t, &info, &err), 0);
  assert_int_equal(info.tokens, 0);
  lsmi_tokens_destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lines),
      cmocka_unit_test(test_env),
      cmocka_unit_test(test_file_and_reload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
