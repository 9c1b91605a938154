/*
 * validate.c — what every reader checks once a dataset is read (the limits,
 * finite features, labels in range, every class present in train), and
 * the dataset's canonical hash: the same numbers read from any format give
 * the same SHA-256.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsio.h"
#include "sha256.h"

void lsmi_limits_default(lsmi_limits_t *lim) {
  lim->max_file_bytes = (uint64_t)4 << 30; /* 4 GiB */
  lim->max_rows = 10000000;                /* 10 M per split */
  lim->max_dims = 65536;
  lim->max_classes = 10000;
  lim->max_members = 1024;
  lim->max_decompressed_bytes = (uint64_t)8 << 30; /* 8 GiB */
  lim->max_ratio = 1000.0; /* deflate tops out near 1032:1; see zip.c */
  lim->max_header_bytes = (uint64_t)1 << 20; /* 1 MiB */
  lim->min_rows_per_class = 2;
}

static int validate_split(const lsmi_dataset_t *ds, const lsmi_split_t *s,
                          const char *name, const lsmi_limits_t *lim,
                          uint64_t *counts, lsmi_error_t *err) {
  char key[32];
  if (s->n > lim->max_rows) {
    snprintf(key, sizeof key, "%s_y", name);
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has %zu rows; the limit is %llu", name, s->n,
                          (unsigned long long)lim->max_rows);
  }
  size_t d = ds->d1 + ds->d2;
  for (size_t i = 0; i < s->n; i++) {
    const float *row = s->x + i * d;
    for (size_t j = 0; j < d; j++) {
      if (!isfinite(row[j])) {
        bool m1 = j < ds->d1;
        snprintf(key, sizeof key, "%s_x%d", name, m1 ? 1 : 2);
        return lsmi_error_set(
            err, LSMI_ERR_DATA, key,
            "%s has a non-finite value (%s) at row %zu, column %zu", key,
            isnan(row[j]) ? "nan" : "inf", i, m1 ? j : j - ds->d1);
      }
    }
    int32_t y = s->y[i];
    if (y < 0 || y >= ds->classes) {
      snprintf(key, sizeof key, "%s_y", name);
      return lsmi_error_set(err, LSMI_ERR_DATA, key,
                            "%s has label %d at row %zu, outside [0, %d)", key,
                            (int)y, i, ds->classes);
    }
    if (counts)
      counts[y]++;
  }
  return 0;
}

int lsmi_dataset_validate(const lsmi_dataset_t *ds, const lsmi_limits_t *lim,
                          lsmi_error_t *err) {
  if (!ds || !lim)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "", "no dataset or limits");
  if (ds->d1 == 0 || ds->d2 == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE,
                          ds->d1 == 0 ? "train_x1" : "train_x2",
                          "each modality needs at least one feature column "
                          "(d1 = %zu, d2 = %zu)",
                          ds->d1, ds->d2);
  if (ds->d1 > lim->max_dims || ds->d2 > lim->max_dims)
    return lsmi_error_set(err, LSMI_ERR_LIMIT,
                          ds->d1 > lim->max_dims ? "train_x1" : "train_x2",
                          "feature dimensions d1 = %zu, d2 = %zu exceed the "
                          "limit %llu",
                          ds->d1, ds->d2, (unsigned long long)lim->max_dims);
  if (ds->classes < 2)
    return lsmi_error_set(err, LSMI_ERR_DATA, "train_y",
                          "labels must take at least 2 values; found %d "
                          "class",
                          ds->classes);
  if ((uint64_t)ds->classes > lim->max_classes)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "train_y",
                          "%d classes exceed the limit %llu", ds->classes,
                          (unsigned long long)lim->max_classes);
  if (ds->train.n == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, "train_y",
                          "the train split has no rows");
  uint64_t *counts = calloc((size_t)ds->classes, sizeof *counts);
  if (!counts)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  int rc = validate_split(ds, &ds->train, "train", lim, counts, err);
  if (!rc)
    rc = validate_split(ds, &ds->val, "val", lim, NULL, err);
  for (int c = 0; !rc && c < ds->classes; c++) {
    uint64_t need = lim->min_rows_per_class ? lim->min_rows_per_class : 1;
    if (counts[c] < need && ds->class_names)
      rc = lsmi_error_set(
          err, LSMI_ERR_DATA, "train_y",
          "class %s%.64s%s has %llu row%s in train; every "
          "class needs at least %llu",
          ds->class_names_numeric ? "" : "\"", ds->class_names[c],
          ds->class_names_numeric ? "" : "\"", (unsigned long long)counts[c],
          counts[c] == 1 ? "" : "s", (unsigned long long)need);
    else if (counts[c] < need)
      rc = lsmi_error_set(err, LSMI_ERR_DATA, "train_y",
                          "class %d has %llu row%s in train; every class "
                          "in [0, %d) needs at least %llu",
                          c, (unsigned long long)counts[c],
                          counts[c] == 1 ? "" : "s", ds->classes,
                          (unsigned long long)need);
  }
  free(counts);
  return rc;
}

/* ---- canonical hash ---- */

static void hash_u64(lsmi_sha256_t *s, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
  lsmi_sha256_update(s, b, 8);
}

/* Features as little-endian float32 bits, labels as little-endian int32,
 * a block at a time so that the hash does not depend on the host. */
static void hash_split(lsmi_sha256_t *s, const lsmi_split_t *sp, size_t d) {
  unsigned char b[4096];
  size_t fill = 0, cells = sp->n * d;
  for (size_t i = 0; i < cells; i++) {
    uint32_t u;
    memcpy(&u, &sp->x[i], 4);
    for (int k = 0; k < 4; k++)
      b[fill++] = (unsigned char)(u >> (8 * k));
    if (fill == sizeof b) {
      lsmi_sha256_update(s, b, fill);
      fill = 0;
    }
  }
  for (size_t i = 0; i < sp->n; i++) {
    uint32_t u = (uint32_t)sp->y[i];
    for (int k = 0; k < 4; k++)
      b[fill++] = (unsigned char)(u >> (8 * k));
    if (fill == sizeof b) {
      lsmi_sha256_update(s, b, fill);
      fill = 0;
    }
  }
  lsmi_sha256_update(s, b, fill);
}

void lsmi_dataset_hash(const lsmi_dataset_t *ds, unsigned char out[32]) {
  lsmi_sha256_t s;
  lsmi_sha256_init(&s);
  static const char tag[16] = "lsmi-dataset-v1";
  lsmi_sha256_update(&s, tag, sizeof tag);
  hash_u64(&s, ds->d1);
  hash_u64(&s, ds->d2);
  hash_u64(&s, (uint64_t)ds->classes);
  hash_u64(&s, ds->train.n);
  hash_u64(&s, ds->val.n);
  hash_split(&s, &ds->train, ds->d1 + ds->d2);
  hash_split(&s, &ds->val, ds->d1 + ds->d2);
  lsmi_sha256_final(&s, out);
}
