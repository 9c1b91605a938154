/*
 * fixture.h — helpers for unit tests that compare against JSON fixtures
 * (values computed in float64 by the project's PyTorch yardstick,
 * bench/torch_ref.py, and written by tests/fixtures/make_fixtures.py).
 *
 * Header-only (every function static inline) so that any test can include
 * it without a build rule. It depends on jansson and the C library only, not
 * on cmocka: loaders return NULL or 0 on failure after printing why, and the
 * comparison helpers return the number of mismatches, so each test decides
 * how to fail.
 *
 * Fixture directory: $LSMI_FIXTURES, else tests/fixtures (tests run from
 * the repository root).
 */
#ifndef LSMI_TESTS_FIXTURE_H
#define LSMI_TESTS_FIXTURE_H

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Parses <fixture directory>/<name>. Returns a new reference (the caller
 * owns it and json_decref()s it) or NULL after printing the reason. */
static inline json_t *fixture_load(const char *name) {
  const char *dir = getenv("LSMI_FIXTURES");
  if (!dir || !*dir)
    dir = "tests/fixtures";
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  json_error_t e;
  json_t *root = json_load_file(path, 0, &e);
  if (!root)
    fprintf(stderr, "fixture: cannot load %s: %s (line %d)\n", path, e.text,
            e.line);
  return root;
}

/* Number of numbers in a number or an arbitrarily nested array of numbers;
 * 0 if anything else is found. */
static inline size_t fixture_numel(const json_t *j) {
  if (json_is_number(j))
    return 1;
  if (!json_is_array(j))
    return 0;
  size_t n = 0, i;
  const json_t *v;
  json_array_foreach(j, i, v) {
    size_t k = fixture_numel(v);
    if (k == 0 && !(json_is_array(v) && json_array_size(v) == 0))
      return 0;
    n += k;
  }
  return n;
}

/* Flattens a (nested) array of numbers into out (row-major), at most cap
 * values; returns how many were written. */
static inline size_t fixture_flatten_d(const json_t *j, double *out,
                                       size_t cap) {
  if (json_is_number(j)) {
    if (cap == 0)
      return 0;
    out[0] = json_number_value(j);
    return 1;
  }
  size_t n = 0, i;
  const json_t *v;
  if (json_is_array(j))
    json_array_foreach(j, i, v) n += fixture_flatten_d(v, out + n, cap - n);
  return n;
}

/* New malloc'd double buffer with the values of `key` in object obj (or of
 * obj itself when key is NULL); *n (may be NULL) receives the count, 0 on
 * failure. NULL after printing the reason when the key is missing, not
 * numeric, or empty. */
static inline double *fixture_doubles(const json_t *obj, const char *key,
                                      size_t *n) {
  if (n)
    *n = 0;
  const json_t *j = key ? json_object_get(obj, key) : obj;
  size_t cnt = j ? fixture_numel(j) : 0;
  if (cnt == 0) {
    fprintf(stderr, "fixture: key '%s' missing or not numeric\n",
            key ? key : "(value)");
    return NULL;
  }
  double *d = malloc(cnt * sizeof *d);
  if (d)
    fixture_flatten_d(j, d, cnt);
  if (n)
    *n = cnt;
  return d;
}

/* As fixture_doubles, rounded to float. */
static inline float *fixture_floats(const json_t *obj, const char *key,
                                    size_t *n) {
  size_t cnt = 0;
  double *d = fixture_doubles(obj, key, &cnt);
  if (!d)
    return NULL;
  float *f = malloc(cnt * sizeof *f);
  if (f)
    for (size_t i = 0; i < cnt; i++)
      f[i] = (float)d[i];
  free(d);
  if (n)
    *n = cnt;
  return f;
}

/* As fixture_doubles, converted to int32 (labels). */
static inline int32_t *fixture_ints(const json_t *obj, const char *key,
                                    size_t *n) {
  size_t cnt = 0;
  double *d = fixture_doubles(obj, key, &cnt);
  if (!d)
    return NULL;
  int32_t *v = malloc(cnt * sizeof *v);
  if (v)
    for (size_t i = 0; i < cnt; i++)
      v[i] = (int32_t)d[i];
  free(d);
  if (n)
    *n = cnt;
  return v;
}

/* Integer member of obj; -1 (after printing) when missing. */
static inline long fixture_int(const json_t *obj, const char *key) {
  const json_t *j = json_object_get(obj, key);
  if (!json_is_number(j)) {
    fprintf(stderr, "fixture: key '%s' missing or not a number\n", key);
    return -1;
  }
  return (long)json_number_value(j);
}

/* Number member of obj; NAN (after printing) when missing. */
static inline double fixture_number(const json_t *obj, const char *key) {
  const json_t *j = json_object_get(obj, key);
  if (!json_is_number(j)) {
    fprintf(stderr, "fixture: key '%s' missing or not a number\n", key);
    return NAN;
  }
  return json_number_value(j);
}

/*
 * Running statistics of a comparison: the largest error relative to
 * max(|want|, atol / rtol) (i.e. relative, with a floor near zero) and the
 * largest absolute error.
 */
typedef struct fixture_stats {
  double max_rel, max_abs;
} fixture_stats_t;

/*
 * Checks |got[i] - want[i]| <= atol + rtol * |want[i]| for n values; a NaN
 * fails. Prints the first few mismatches as "what[i]: got G want W" and
 * returns the number of mismatches. st (may be NULL) is updated.
 */
static inline size_t fixture_check_d(const char *what, const double *got,
                                     const double *want, size_t n, double rtol,
                                     double atol, fixture_stats_t *st) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(got[i] - want[i]);
    double fl = rtol > 0 ? atol / rtol : 0.0;
    double scale = fmax(fabs(want[i]), fl);
    if (st) {
      if (d > st->max_abs || isnan(d))
        st->max_abs = d;
      double rel = scale > 0 ? d / scale : d;
      if (rel > st->max_rel || isnan(rel))
        st->max_rel = rel;
    }
    if (!(d <= atol + rtol * fabs(want[i]))) {
      if (bad < 10)
        fprintf(stderr, "mismatch %s[%zu]: got %.9g want %.9g (diff %.3g)\n",
                what, i, got[i], want[i], d);
      bad++;
    }
  }
  if (bad > 10)
    fprintf(stderr, "mismatch %s: %zu of %zu values\n", what, bad, n);
  return bad;
}

/* As fixture_check_d for float results. */
static inline size_t fixture_check_f(const char *what, const float *got,
                                     const double *want, size_t n, double rtol,
                                     double atol, fixture_stats_t *st) {
  double *g = malloc((n ? n : 1) * sizeof *g);
  if (!g)
    return n ? n : 1;
  for (size_t i = 0; i < n; i++)
    g[i] = (double)got[i];
  size_t bad = fixture_check_d(what, g, want, n, rtol, atol, st);
  free(g);
  return bad;
}

#endif
