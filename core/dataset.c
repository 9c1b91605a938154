/*
 * dataset.c — the dataset object: allocation, release, and the seeded
 * stratified val split drawn from train.
 *
 * A dataset owns two splits, each one float32 row-major block x (n, d1+d2)
 * and one int32 block y (n), with each row's position in its file and,
 * when the file had them, its sample id; and the class names when the
 * file's labels were not 0 .. C-1. It is immutable once filled, so a fit
 * may read it from many threads without locks. Reading, checking, hashing
 * and writing files is io/'s work (io/lsmi_io.h); this file knows no
 * format.
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
  /* by_t / 4 rows of 8 bytes cannot overflow where by_t did not. */
  ds->train.row = malloc(by_t ? 2 * by_t : 1);
  ds->val.row = malloc(by_v ? 2 * by_v : 1);
  if (!ds->train.x || !ds->train.y || !ds->val.x || !ds->val.y ||
      !ds->train.row || !ds->val.row) {
    lsmi_dataset_destroy(ds);
    lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                   "out of memory allocating a dataset of %zu + %zu rows",
                   n_train, n_val);
    return NULL;
  }
  for (size_t i = 0; i < n_train; i++)
    ds->train.row[i] = i;
  for (size_t i = 0; i < n_val; i++)
    ds->val.row[i] = i;
  return ds;
}

/* Frees n strings of v (NULL entries allowed) and v itself. */
static void strings_free(char **v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void split_free(lsmi_split_t *s) {
  free(s->x);
  free(s->y);
  free(s->row);
  strings_free(s->id, s->n);
}

void lsmi_dataset_destroy(lsmi_dataset_t *ds) {
  if (!ds)
    return;
  split_free(&ds->train);
  split_free(&ds->val);
  strings_free(ds->class_names, ds->classes > 0 ? (size_t)ds->classes : 0);
  free(ds);
}

/* A copy of the n strings of v (NULL for NULL), or NULL with *nomem set. */
static char **strings_copy(char *const *v, size_t n, bool *nomem) {
  if (!v)
    return NULL;
  char **c = calloc(n ? n : 1, sizeof *c);
  for (size_t i = 0; c && i < n; i++) {
    c[i] = strdup(v[i]);
    if (!c[i]) {
      strings_free(c, i);
      c = NULL;
    }
  }
  if (!c)
    *nomem = true;
  return c;
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
  bool nomem = false;
  o->class_names = strings_copy(ds->class_names, (size_t)ds->classes, &nomem);
  o->class_names_numeric = ds->class_names_numeric;
  o->id_numeric = ds->id_numeric;
  o->val_drawn = true;
  if (ds->train.id) {
    o->train.id = calloc(o->train.n ? o->train.n : 1, sizeof(char *));
    o->val.id = calloc((size_t)n_val, sizeof(char *));
    nomem = nomem || !o->train.id || !o->val.id;
  }
  size_t it = 0, iv = 0;
  for (size_t i = 0; i < n && !nomem; i++) {
    lsmi_split_t *sp = to_val[i] ? &o->val : &o->train;
    size_t *k = to_val[i] ? &iv : &it;
    memcpy(sp->x + *k * d, ds->train.x + i * d, d * sizeof(float));
    sp->y[*k] = ds->train.y[i];
    sp->row[*k] = ds->train.row[i];
    if (sp->id && !(sp->id[*k] = strdup(ds->train.id[i])))
      nomem = true;
    (*k)++;
  }
  free(to_val);
  if (nomem) {
    lsmi_dataset_destroy(o);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  *out = o;
  return 0;
}
