/*
 * test_util.c — server/util.c: the clocks, RFC 3339 stamps (a leap day,
 * milliseconds truncated and clamped, a short buffer), hex, random ids
 * (shape, difference, a buffer too small), JSON text, the growable string,
 * and the JSON log: one whole line per event, from many threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static void test_clocks(void **state) {
  (void)state;
  double now = lsmi_util_now();
  assert_true(now - (double)time(NULL) < 2.0);
  assert_true((double)time(NULL) - now < 2.0);
  double a = lsmi_util_mono(), b = lsmi_util_mono();
  assert_true(b >= a);
}

static void test_iso8601(void **state) {
  (void)state;
  char buf[40];
  lsmi_util_iso8601(1795775706.25, buf, sizeof buf);
  assert_string_equal(buf, "2026-11-27T10:35:06.250Z");
  lsmi_util_iso8601(951782400.9999, buf, sizeof buf); /* truncated, not up */
  assert_string_equal(buf, "2000-02-29T00:00:00.999Z");
  lsmi_util_iso8601(0.0, buf, sizeof buf);
  assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
  char small[11];
  lsmi_util_iso8601(0.0, small, sizeof small);
  assert_string_equal(small, "1970-01-01"); /* cut, still terminated */
}

static void test_hex(void **state) {
  (void)state;
  const unsigned char in[] = {0x00, 0x0f, 0xab, 0xff};
  char out[9];
  lsmi_util_hex(in, sizeof in, out);
  assert_string_equal(out, "000fabff");
  lsmi_util_hex(in, 0, out);
  assert_string_equal(out, "");
}

static void test_random_id(void **state) {
  (void)state;
  char a[32], b[32];
  assert_int_equal(lsmi_util_random_id("job_", a, sizeof a), 0);
  assert_int_equal(lsmi_util_random_id("job_", b, sizeof b), 0);
  assert_int_equal(strlen(a), 24);
  assert_memory_equal(a, "job_", 4);
  assert_int_equal(strspn(a + 4, "0123456789abcdef"), 20);
  assert_string_not_equal(a, b);
  char exact[4 + 21];
  assert_int_equal(lsmi_util_random_id("job_", exact, sizeof exact), 0);
  char small[4 + 20];
  assert_int_equal(lsmi_util_random_id("job_", small, sizeof small),
                   LSMI_ERR_INVALID);
}

static void test_json_text(void **state) {
  (void)state;
  char *t = lsmi_util_json_text(json_pack("{s:i, s:s}", "b", 1, "a", "x"));
  assert_string_equal(t, "{\"b\":1,\"a\":\"x\"}"); /* in their order */
  free(t);
  assert_null(lsmi_util_json_text(NULL));
}

static void test_strbuf(void **state) {
  (void)state;
  lsmi_strbuf_t b;
  lsmi_strbuf_init(&b, 1); /* grows from nothing */
  assert_false(b.oom);
  assert_string_equal(b.p, "");
  for (int i = 0; i < 1000; i++)
    lsmi_strbuf_printf(&b, "%d,", i);
  assert_false(b.oom);
  assert_int_equal(b.len, strlen(b.p));
  assert_memory_equal(b.p, "0,1,2,", 6);
  assert_string_equal(b.p + b.len - 4, "999,");
  free(b.p);
  lsmi_strbuf_init(&b, 0);
  lsmi_strbuf_printf(&b, "%s", "x");
  assert_string_equal(b.p, "x");
  free(b.p);
}

/* Runs fn with stderr sent to a temp file; returns its content (taken). */
static char *capture_stderr(void (*fn)(void)) {
  char path[] = "/tmp/lsmi-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  assert_true(dup2(fd, 2) >= 0);
  fn();
  fflush(stderr);
  assert_true(dup2(saved, 2) >= 0);
  close(saved);
  off_t n = lseek(fd, 0, SEEK_END);
  char *text = calloc(1, (size_t)n + 1);
  assert_int_equal(pread(fd, text, (size_t)n, 0), n);
  close(fd);
  unlink(path);
  return text;
}

static void log_two(void) {
  lsmi_util_log("job", json_pack("{s:s, s:i}", "job", "job_1", "n", 3));
  lsmi_util_log("bare", NULL);
}

static void test_log_lines(void **state) {
  (void)state;
  char *text = capture_stderr(log_two);
  char *nl = strchr(text, '\n');
  assert_non_null(nl);
  *nl = '\0';
  json_t *a = json_loads(text, 0, NULL), *b = json_loads(nl + 1, 0, NULL);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(json_string_value(json_object_get(a, "event")), "job");
  assert_string_equal(json_string_value(json_object_get(a, "job")), "job_1");
  assert_int_equal(json_integer_value(json_object_get(a, "n")), 3);
  const char *ts = json_string_value(json_object_get(a, "ts"));
  assert_non_null(ts);
  assert_int_equal(strlen(ts), 24); /* 2026-11-27T10:35:06.250Z */
  assert_string_equal(json_string_value(json_object_get(b, "event")), "bare");
  /* Every line has a level: "info" unless the event or the fields say. */
  assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
  assert_string_equal(json_string_value(json_object_get(b, "level")), "info");
  assert_int_equal(json_object_size(b), 3);
  json_decref(a);
  json_decref(b);
  free(text);
}

enum { THREADS = 4, LINES = 200 };

static void *log_many(void *arg) {
  for (int i = 0; i < LINES; i++)
    lsmi_util_log("line", json_pack("{s:i, s:i, s:s}", "thread",
                                    (int)(intptr_t)arg, "i", i, "pad",
                                    "some text to make the line longer"));
  return NULL;
}

static void log_from_threads(void) {
  pthread_t t[THREADS];
  for (intptr_t k = 0; k < THREADS; k++)
    assert_int_equal(pthread_create(&t[k], NULL, log_many, (void *)k), 0);
  for (int k = 0; k < THREADS; k++)
    pthread_join(t[k], NULL);
}

/* Lines from different threads never interleave: each is whole JSON. */
static void test_log_threads(void **state) {
  (void)state;
  char *text = capture_stderr(log_from_threads);
  int next[THREADS] = {0}, lines = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *o = json_loads(line, 0, NULL);
    if (o == NULL)
      fail_msg("not one JSON object: %s", line);
    int k = (int)json_integer_value(json_object_get(o, "thread"));
    assert_true(k >= 0 && k < THREADS);
    assert_int_equal(json_integer_value(json_object_get(o, "i")), next[k]++);
    json_decref(o);
    lines++;
  }
  assert_int_equal(lines, THREADS * LINES);
  free(text);
}

static void test_quiet_requests(void **state) {
  (void)state;
  assert_int_equal(lsmi_util_log_requests_quiet(), 0);
  lsmi_util_log_quiet_requests(1);
  assert_int_equal(lsmi_util_log_requests_quiet(), 1);
  lsmi_util_log_quiet_requests(0);
  assert_int_equal(lsmi_util_log_requests_quiet(), 0);
}

/* Error details lose the server's paths: the data directory's prefix
 * (as configured, or resolved), and any other absolute path but its last
 * component. */
static void test_scrub_paths(void **state) {
  (void)state;
  char m[256];
  snprintf(m, sizeof m,
           "cannot open /srv/lsmi/datasets/ds_1: No such file; see "
           "'/etc/x/y.conf' and ./data/tmp/.upload.tmp.AB12 (a/b stays)");
  lsmi_util_scrub_paths(m, sizeof m, "./data");
  assert_string_equal(m, "cannot open ds_1: No such file; see 'y.conf' and "
                         "tmp/.upload.tmp.AB12 (a/b stays)");
  snprintf(m, sizeof m, "could not write /srv/lsmi/results/job_1.val: full");
  lsmi_util_scrub_paths(m, sizeof m, "/srv/lsmi/");
  assert_string_equal(m, "could not write results/job_1.val: full");
  char cwd[200];
  assert_non_null(getcwd(cwd, sizeof cwd));
  snprintf(m, sizeof m, "%s/datasets/x is empty", cwd);
  lsmi_util_scrub_paths(m, sizeof m, ".");
  assert_string_equal(m, "datasets/x is empty");
  snprintf(m, sizeof m, "10/2 = 5, no path here");
  lsmi_util_scrub_paths(m, sizeof m, "/data");
  assert_string_equal(m, "10/2 = 5, no path here");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clocks),
      cmocka_unit_test(test_iso8601),
      cmocka_unit_test(test_hex),
      cmocka_unit_test(test_random_id),
      cmocka_unit_test(test_strbuf),
      cmocka_unit_test(test_json_text),
      cmocka_unit_test(test_log_lines),
      cmocka_unit_test(test_log_threads),
      cmocka_unit_test(test_quiet_requests),
      cmocka_unit_test(test_scrub_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
