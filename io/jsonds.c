/*
 * jsonds.c — JSON datasets, as a dashboard would post them:
 *
 *   {"train": {"x1": [[...], ...], "x2": [[...], ...], "y": [...]},
 *    "val":   {"x1": ..., "x2": ..., "y": ...}}
 *
 * ("val" optional; the flat keys train_x1 ... val_y, or x1, x2, y for a
 * file without val, at the top level are accepted too; other names with
 * the caller's keys, lsmi__key_role; "id" the sample ids). Parsed with
 * jansson, duplicate keys rejected; every row must have the width of the
 * first, every feature must be a number; labels and ids are numbers or
 * strings (labels also one-hot rows). Because
 * a parsed JSON tree costs up to about 20 times the text (some 40 bytes
 * per number written as two characters), JSON input is capped at
 * LSMI_JSON_MAX_BYTES whatever max_file_bytes says; larger datasets belong
 * in .npz. The numbers are copied into float64 buffers owned by the
 * arrays, so the assembly sees them like any other array.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsio.h"

#define LSMI_JSON_MAX_BYTES ((uint64_t)64 << 20)

/* Rows of numbers (column: a list of numbers) as a float64 array owned by
 * `as`. */
static int read_matrix(json_t *v, const char *key, bool column,
                       const lsmi_limits_t *lim, lsmi__arrays_t *as, int role,
                       lsmi_error_t *err) {
  if (!json_is_array(v))
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key, "%s is not an array", key);
  size_t n = json_array_size(v), d = 1;
  if (n > lim->max_rows)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has %zu rows; the limit is %llu", key, n,
                          (unsigned long long)lim->max_rows);
  if (!column && n > 0) {
    json_t *r0 = json_array_get(v, 0);
    if (!json_is_array(r0))
      return lsmi_error_set(err, LSMI_ERR_SHAPE, key,
                            "%s must be a list of rows (lists of numbers)",
                            key);
    d = json_array_size(r0);
    if (d > lim->max_dims)
      return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                            "%s has %zu columns; the limit is %llu", key, d,
                            (unsigned long long)lim->max_dims);
  }
  /* Shapes first, so that the buffer is allocated only for numbers that
   * are really in the parsed tree. */
  for (size_t i = 0; i < n && !column; i++) {
    json_t *row = json_array_get(v, i);
    if (!json_is_array(row) || json_array_size(row) != d)
      return lsmi_error_set(err, LSMI_ERR_SHAPE, key,
                            "%s row %zu has %zu values; row 0 has %zu", key, i,
                            json_is_array(row) ? json_array_size(row) : 0, d);
  }
  double *x = malloc((n * d > 0 ? n * d : 1) * sizeof *x);
  if (!x)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, key, "out of memory");
  int rc = lsmi__arrays_own(as, x, err);
  if (rc)
    return rc;
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_array_get(v, i);
    if (column) {
      if (!json_is_number(row))
        return lsmi_error_set(err, LSMI_ERR_DATA, key,
                              "%s[%zu] is not a number", key, i);
      x[i] = json_number_value(row);
      continue;
    }
    for (size_t j = 0; j < d; j++) {
      json_t *c = json_array_get(row, j);
      if (!json_is_number(c))
        return lsmi_error_set(err, LSMI_ERR_DATA, key,
                              "%s row %zu, column %zu is not a number", key, i,
                              j);
      x[i * d + j] = json_number_value(c);
    }
  }
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s", key);
  a.dtype = LSMI__DT_F64;
  a.ndim = column ? 1 : 2;
  a.shape[0] = n;
  a.shape[1] = d;
  a.data = (const unsigned char *)x;
  a.data_len = n * d * sizeof *x;
  lsmi__strides_c(&a);
  return lsmi__arrays_put(as, role, &a, lim, err);
}

/* The i-th string of a JSON array. */
static const char *json_text(const void *ctx, size_t i, size_t *len) {
  json_t *e = json_array_get((json_t *)ctx, i);
  *len = json_string_length(e);
  return json_string_value(e);
}

/* A column of strings (labels or ids) as a TEXT array: the strings copied
 * into one buffer `as` owns. */
static int read_strings(json_t *v, const char *key, const lsmi_limits_t *lim,
                        lsmi__arrays_t *as, int role, lsmi_error_t *err) {
  for (size_t i = 0; i < json_array_size(v); i++)
    if (!json_is_string(json_array_get(v, i)))
      return lsmi_error_set(err, LSMI_ERR_DATA, key,
                            "%s[%zu] is not a string but %s[0] is: a column "
                            "holds numbers or strings, not both",
                            key, i, key);
  return lsmi__arrays_put_strings(as, role, key, json_array_size(v), json_text,
                                  v, lim, err);
}

/* The array of `role` under key: features are rows of numbers; labels and
 * ids a list of numbers or of strings, or (one-hot labels) rows. */
static int read_value(json_t *v, const char *key, int role,
                      const lsmi_limits_t *lim, lsmi__arrays_t *as,
                      lsmi_error_t *err) {
  if (!json_is_array(v))
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key, "%s is not an array", key);
  json_t *first = json_array_get(v, 0);
  bool column = lsmi__part(role) >= LSMI__Y;
  if (column && json_is_string(first))
    return read_strings(v, key, lim, as, role, err);
  return read_matrix(v, key, column && !json_is_array(first), lim, as, role,
                     err);
}

int lsmi__read_json(const unsigned char *buf, size_t len,
                    const lsmi_limits_t *lim, lsmi__arrays_t *as,
                    lsmi_error_t *err) {
  if (len > LSMI_JSON_MAX_BYTES)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                          "JSON datasets are limited to %llu bytes; save "
                          "larger ones as .npz",
                          (unsigned long long)LSMI_JSON_MAX_BYTES);
  json_error_t jerr;
  json_t *root =
      json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                          "invalid JSON at line %d, column %d: %s", jerr.line,
                          jerr.column, jerr.text);
  int rc = 0;
  if (!json_is_object(root))
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                        "a JSON dataset must be an object with \"train\" "
                        "(and \"val\")");
  static const char *const splits[2] = {"train", "val"};
  const char *key;
  json_t *v;
  for (int s = 0; s < 2 && !rc; s++) {
    json_t *sp = json_object_get(root, splits[s]);
    if (!sp)
      continue;
    if (!json_is_object(sp)) {
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, splits[s],
                          "\"%s\" must be an object with x1, x2 and y",
                          splits[s]);
      break;
    }
    json_object_foreach(sp, key, v) {
      char name[64];
      snprintf(name, sizeof name, "%s.%s", splits[s], key);
      lsmi__arrays_seen(as, name);
      int role = lsmi__key_role(as, s, key);
      if (role >= 0 && (rc = read_value(v, name, role, lim, as, err)) != 0)
        break;
    }
  }
  if (!rc) {
    json_object_foreach(root, key, v) {
      if (strcmp(key, "train") == 0 || strcmp(key, "val") == 0)
        continue;
      lsmi__arrays_seen(as, key);
      int role = lsmi__key_role(as, -1, key);
      if (role >= 0 && (rc = read_value(v, key, role, lim, as, err)) != 0)
        break;
    }
  }
  json_decref(root);
  return rc;
}
