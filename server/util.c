/*
 * util.c — time, ids, hex, the growable string and the JSON log line
 * writer.
 * Nothing here keeps state except the log's "quiet requests" switch, which
 * is set once before any thread starts.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int log_quiet_requests = 0;

double lsmi_util_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double lsmi_util_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void lsmi_util_iso8601(double t, char *buf, size_t size) {
  time_t secs = (time_t)t;
  int ms = (int)((t - (double)secs) * 1000.0);
  if (ms < 0)
    ms = 0;
  if (ms > 999)
    ms = 999;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, size, "%s.%03dZ", base, ms);
}

int lsmi_util_errno_status(int e) {
  return e == ENOSPC || e == EDQUOT ? LSMI_ERR_NOSPACE : LSMI_ERR_IO;
}

void lsmi_util_hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

int lsmi_util_random_id(const char *prefix, char *out, size_t size) {
  unsigned char raw[10];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return LSMI_ERR_IO;
    }
    got += (size_t)r;
  }
  char hex[21];
  lsmi_util_hex(raw, sizeof raw, hex);
  int n = snprintf(out, size, "%s%s", prefix, hex);
  return (n < 0 || (size_t)n >= size) ? LSMI_ERR_INVALID : LSMI_OK;
}

char *lsmi_util_json_text(json_t *v) {
  char *t = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(v);
  return t;
}

void lsmi_util_log_quiet_requests(int quiet) { log_quiet_requests = quiet; }
int lsmi_util_log_requests_quiet(void) { return log_quiet_requests; }

/* The level of an event whose line does not say: the failures of the
 * daemon's own machinery are errors, what it refuses or skips warnings,
 * the rest information. */
static const char *default_level(const char *event) {
  static const char *const errors[] = {"store_error",       "error",
                                       "refused",           "results_error",
                                       "store_unavailable", "fatal"};
  static const char *const warnings[] = {"http_error", "job_skipped"};
  for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
    if (!strcmp(event, errors[i]))
      return "error";
  for (size_t i = 0; i < sizeof warnings / sizeof warnings[0]; i++)
    if (!strcmp(event, warnings[i]))
      return "warn";
  return "info";
}

void lsmi_util_log(const char *event, json_t *fields) {
  json_t *o = fields ? fields : json_object();
  if (o == NULL)
    return;
  char ts[40];
  lsmi_util_iso8601(lsmi_util_now(), ts, sizeof ts);
  json_t *level = json_object_get(o, "level");
  if (!json_is_string(level))
    json_object_set_new(o, "level", json_string(default_level(event)));
  json_object_set_new(o, "ts", json_string(ts));
  json_object_set_new(o, "event", json_string(event));
  /* 12 significant digits: a duration in ms rounded to 3 decimals prints
   * as such (1.234, not 1.2339999999999999). */
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                 JSON_REAL_PRECISION(12));
  json_decref(o);
  if (line == NULL)
    return;
  flockfile(stderr);
  fputs(line, stderr);
  fputc('\n', stderr);
  fflush(stderr);
  funlockfile(stderr);
  free(line);
}

/* Characters a path token of a message is made of. */
static bool path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || strchr("/._-+~@%", c) != NULL;
}

/* Whether position i of msg may begin a path (after a space, a quote, a
 * bracket or an equals sign, or at the start). */
static bool path_start(const char *msg, size_t i) {
  return i == 0 || strchr(" \t'\"(=[", msg[i - 1]) != NULL;
}

/* The length of prefix `dir` at p when it is followed by '/'; 0 otherwise. */
static size_t under(const char *p, const char *dir) {
  size_t n = dir ? strlen(dir) : 0;
  while (n > 1 && dir[n - 1] == '/')
    n--;
  return n && strncmp(p, dir, n) == 0 && p[n] == '/' ? n + 1 : 0;
}

void lsmi_util_scrub_paths(char *msg, size_t size, const char *data_dir) {
  if (msg == NULL || size == 0)
    return;
  char real[PATH_MAX];
  const char *rdir = data_dir && realpath(data_dir, real) ? real : NULL;
  char out[1024];
  size_t o = 0;
  for (size_t i = 0; msg[i] && o + 1 < sizeof out;) {
    size_t skip = 0;
    if (path_start(msg, i) && (skip = under(msg + i, rdir)) == 0 &&
        (skip = under(msg + i, data_dir)) == 0 && msg[i] == '/') {
      /* Another absolute path: its last component only. */
      size_t end = i, last = i;
      while (msg[end] && path_char(msg[end]))
        if (msg[end++] == '/')
          last = end;
      i = last;
      continue;
    }
    i += skip;
    if (skip == 0)
      out[o++] = msg[i++];
  }
  out[o] = '\0';
  snprintf(msg, size, "%s", out);
}

void lsmi_strbuf_init(lsmi_strbuf_t *b, size_t cap) {
  b->p = malloc(cap ? cap : 1);
  b->len = 0;
  b->cap = cap ? cap : 1;
  b->oom = b->p == NULL;
  if (b->p)
    b->p[0] = '\0';
}

void lsmi_strbuf_printf(lsmi_strbuf_t *b, const char *fmt, ...) {
  if (b->oom)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n + 1;
    char *q = realloc(b->p, cap);
    if (q == NULL) {
      b->oom = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
}
