/*
 * dataset.c — the dataset object: allocation, release, and the seeded
 * stratified val split drawn from train.
 *
 * A dataset owns two splits, each one float32 row-major block x (n, d1+d2)
 * and one int32 block y (n). It is immutable once filled, so a fit may read
 * it from many threads without locks. Reading, checking, hashing and
 * writing files is io/'s work (io/lsmi_io.h); this file knows no format.
 */
#include <stdlib.h>
#include <string.h>

#include "lsmi.h"
#include "rng.h"
#include "split.h"

lsmi_dataset_t *lsmi_dataset_create(size_t n_train, size_t n_val, size_t d1,
                                    size_t d2, int classes, lsmi_error_t *err) {
  size_t d, cells_t, cells_v, bx_t, bx_v, by_t, by_v;
  if (__builtin_add_overflow(d1, d2, &d) ||
      __builtin_mul_overflow(n_train, d, &cells_t) ||
      __builtin_mul_overflow(n_val, d, &cells_v) ||
      __builtin_mul_overflow(cells_t, sizeof(float), &bx_t) ||
      __builtin_mul_overflow(cells_v, sizeof(float), &bx_v) ||
      __builtin_mul_overflow(n_train, sizeof(int32_t), &by_t) ||
      __builtin_mul_overflow(n_val, sizeof(int32_t), &by_v)) {
    lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                   "dataset of %zu + %zu rows and %zu + %zu columns is too "
                   "large to address",
                   n_train, n_val, d1, d2);
    return NULL;
  }
  lsmi_dataset_t *ds = calloc(1, sizeof *ds);
  if (!ds) {
    lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    return NULL;
  }
  ds->d1 = d1;
  ds->d2 = d2;
  ds->classes = classes;
  ds->train.n = n_train;
  ds->val.n = n_val;
  /* malloc(0) may return NULL; one byte keeps "NULL = failure" simple. */
  ds->train.x = malloc(bx_t ? bx_t : 1);
  ds->train.y = malloc(by_t ? by_t : 1);
  ds->val.x = malloc(bx_v ? bx_v : 1);
  ds->val.y = malloc(by_v ? by_v : 1);
  if (!ds->train.x || !ds->train.y || !ds->val.x || !ds->val.y) {
    lsmi_dataset_destroy(ds);
    lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                   "out of memory allocating a dataset of %zu + %zu rows",
                   n_train, n_val);
    return NULL;
  }
  return ds;
}

void lsmi_dataset_destroy(lsmi_dataset_t *ds) {
  if (!ds)
    return;
  free(ds->train.x);
  free(ds->train.y);
  free(ds->val.x);
  free(ds->val.y);
  free(ds);
}

/* ---- val split ---- */

int lsmi_dataset_split_val(const lsmi_dataset_t *ds, double val_fraction,
                           uint64_t seed, lsmi_dataset_t **out,
                           lsmi_error_t *err) {
  *out = NULL;
  size_t n = ds->train.n, d = ds->d1 + ds->d2;
  unsigned char *to_val = calloc(n ? n : 1, 1);
  if (!to_val)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, seed, LSMI_STREAM_SPLIT);
  long n_val = lsmi__split_fraction(ds->train.y, n, ds->classes, val_fraction,
                                    &rng, 1, to_val);
  if (n_val < 0) {
    free(to_val);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  if (n_val == 0) {
    free(to_val);
    return lsmi_error_set(err, LSMI_ERR_INVALID, "val_fraction",
                          "val_fraction %g of %zu train rows leaves no val "
                          "rows",
                          val_fraction, n);
  }
  lsmi_dataset_t *o = lsmi_dataset_create(n - (size_t)n_val, (size_t)n_val,
                                          ds->d1, ds->d2, ds->classes, err);
  if (!o) {
    free(to_val);
    return err ? err->status : LSMI_ERR_NOMEM;
  }
  size_t it = 0, iv = 0;
  for (size_t i = 0; i < n; i++) {
    lsmi_split_t *sp = to_val[i] ? &o->val : &o->train;
    size_t *k = to_val[i] ? &iv : &it;
    memcpy(sp->x + *k * d, ds->train.x + i * d, d * sizeof(float));
    sp->y[*k] = ds->train.y[i];
    (*k)++;
  }
  free(to_val);
  *out = o;
  return 0;
}
