/*
 * jsonds.c — JSON datasets, as a dashboard would post them:
 *
 *   {"train": {"x1": [[...], ...], "x2": [[...], ...], "y": [...]},
 *    "val":   {"x1": ..., "x2": ..., "y": ...}}
 *
 * ("val" optional; the flat keys train_x1 ... val_y at the top level are
 * accepted too). Parsed with jansson, duplicate keys rejected; every row
 * must have the width of the first, every value must be a number. Because
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

static int read_matrix(json_t *v, const char *key, bool labels,
                       const lsmi_limits_t *lim, lsmi__arrays_t *as, int role,
                       lsmi_error_t *err) {
  if (!json_is_array(v))
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key, "%s is not an array", key);
  size_t n = json_array_size(v), d = 1;
  if (n > lim->max_rows)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has %zu rows; the limit is %llu", key, n,
                          (unsigned long long)lim->max_rows);
  if (!labels && n > 0) {
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
  for (size_t i = 0; i < n && !labels; i++) {
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
    if (labels) {
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
  a.ndim = labels ? 1 : 2;
  a.shape[0] = n;
  a.shape[1] = d;
  a.data = (const unsigned char *)x;
  a.data_len = n * d * sizeof *x;
  lsmi__strides_c(&a);
  return lsmi__arrays_put(as, role, &a, lim, err);
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
  static const char *const parts[3] = {"x1", "x2", "y"};
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
    for (int p = 0; p < 3 && !rc; p++) {
      json_t *v = json_object_get(sp, parts[p]);
      if (!v)
        continue; /* the assembly names what is missing */
      char key[32];
      snprintf(key, sizeof key, "%s.%s", splits[s], parts[p]);
      rc = read_matrix(v, key, p == 2, lim, as, 3 * s + p, err);
    }
  }
  const char *key;
  json_t *v;
  if (!rc) {
    json_object_foreach(root, key, v) {
      int role = lsmi__key_role(key);
      if (role < 0)
        continue;
      rc = read_matrix(v, key, role % 3 == 2, lim, as, role, err);
      if (rc)
        break;
    }
  }
  json_decref(root);
  return rc;
}
