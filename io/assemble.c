/*
 * assemble.c — the arrays a reader found (dsio.h), made into a dataset.
 *
 * Whatever the format, the same steps run here, each naming the file's own
 * key and the first bad row in its errors:
 *
 *   1. shapes: train complete, val complete or absent, ids optional; the
 *      parts of a split have equal row counts, features equal widths
 *      across splits;
 *   2. labels: their values (integers, or text: strings, NumPy 'U'/'S', CSV
 *      fields that are not all numbers; one-hot rows decoded by argmax)
 *      sorted and numbered, so that {1, 2, 3}, {3, 7, 42} and {"bird",
 *      "cat"} become classes 0 .. C-1; the values are kept as class names
 *      unless they were 0 .. C-1 already;
 *   3. features: flattened in C order when they have more than one
 *      dimension per row, converted to float32 and checked finite;
 *   4. ids (as text) and each row's position in the file.
 *
 * Conversions the file did not ask for (one-hot decoded, features
 * flattened) are said in the read's notes. All memory belongs to the call
 * until the dataset is handed over.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsio.h"

static uint64_t rows_of(const lsmi__array_t *a) { return a->shape[0]; }

/* The columns of a row: the product of the dims after the first (checked
 * against max_dims when the array was put). */
static uint64_t cols_of(const lsmi__array_t *a) {
  uint64_t c = 1;
  for (int i = 1; i < a->ndim; i++)
    c *= a->shape[i];
  return c;
}

/* ---- 1. shapes ---- */

/* A required array is missing: what the file holds, and how to name it. */
static int missing(const lsmi__arrays_t *as, int r, lsmi_error_t *err,
                   const char *why) {
  int q = lsmi__part(r);
  const char *k = as->keys[q];
  static const char *const published[3] = {"modal_1_features",
                                           "modal_2_features", "targets"};
  char what[160];
  if (k && r < 3)
    snprintf(what, sizeof what,
             "%s: no key %.60s or train_%.60s (given for "
             "%s)",
             lsmi__role_names[r], k, k, lsmi__part_names[q]);
  else if (k)
    snprintf(what, sizeof what, "%s: no key val_%.60s (given for %s)",
             lsmi__role_names[r], k, lsmi__part_names[q]);
  else if (r < 3)
    snprintf(what, sizeof what,
             "key %s (or train_%s, or %s in a file "
             "without val)",
             lsmi__role_names[r], published[q], lsmi__part_names[q]);
  else
    snprintf(what, sizeof what, "key %s (or val_%s)", lsmi__role_names[r],
             published[q]);
  bool hint = r < 3 && !k;
  return lsmi_error_set(err, LSMI_ERR_MISSING, lsmi__role_names[r],
                        "missing %s%s%s%s%s", what, why,
                        as->seen[0] ? "; the file holds " : "", as->seen,
                        hint ? ": say which array is which with --x1 KEY "
                               "--x2 KEY --y KEY (upload: ?x1=KEY&x2=KEY&"
                               "y=KEY)"
                             : "");
}

/* Array a does not fit b: "a has shape (..) but b has shape (..): the
 * <what> differ". */
static int shapes_differ(const lsmi__array_t *a, const lsmi__array_t *b,
                         const char *what, lsmi_error_t *err) {
  char sa[160], sb[160];
  lsmi__shape_str(a, sa, sizeof sa);
  lsmi__shape_str(b, sb, sizeof sb);
  return lsmi_error_set(err, LSMI_ERR_SHAPE, a->key,
                        "%s has shape %s but %s has shape %s: the %s differ",
                        a->key, sa, b->key, sb, what);
}

/* The parts of split s (x2, y, and the ids when there are) have as many
 * rows as its x1. */
static int check_rows(const lsmi__arrays_t *as, int s, lsmi_error_t *err) {
  const lsmi__array_t *x1 = &as->role[lsmi__role(s, LSMI__X1)];
  for (int q = LSMI__X2; q < LSMI__PARTS; q++) {
    int r = lsmi__role(s, q);
    if (as->have[r] && rows_of(&as->role[r]) != rows_of(x1))
      return shapes_differ(&as->role[r], x1, "row counts", err);
  }
  return 0;
}

/* Which arrays there are and whether their shapes agree: train complete,
 * val complete or absent, ids for every split or none, rows equal within
 * a split, features equal across splits. *val: the dataset gets a val
 * split (an empty one counts as none). */
static int check_arrays(const lsmi__arrays_t *as, bool *val,
                        lsmi_error_t *err) {
  for (int r = 0; r < 3; r++)
    if (!as->have[r])
      return missing(as, r, err, "");
  int nval = as->have[3] + as->have[4] + as->have[5];
  if (nval > 0 && nval < 3)
    for (int r = 3; r < 6; r++)
      if (!as->have[r])
        return missing(as, r, err, ": the val split is incomplete");
  int rc = check_rows(as, 0, err);
  *val = nval == 3 && rows_of(&as->role[3]) > 0;
  if (rc || !*val)
    return rc;
  rc = check_rows(as, 1, err);
  if (rc)
    return rc;
  if (as->have[LSMI__TRAIN_ID] != as->have[LSMI__VAL_ID]) {
    int r = as->have[LSMI__TRAIN_ID] ? LSMI__VAL_ID : LSMI__TRAIN_ID;
    return lsmi_error_set(err, LSMI_ERR_MISSING, lsmi__role_names[r],
                          "the file has ids for one split only: %s is "
                          "missing",
                          lsmi__role_names[r]);
  }
  for (int k = 0; k < 2; k++)
    if (cols_of(&as->role[3 + k]) != cols_of(&as->role[k]))
      return shapes_differ(&as->role[3 + k], &as->role[k],
                           "feature dimensions", err);
  return 0;
}

/* ---- 2. labels ---- */

/* The labels of both splits as values: numbers or text. */
typedef struct labels {
  bool text;
  size_t n[2];
  double *num[2];    /* (n[s]) numbers */
  char **str[2];     /* (n[s]) strings, owned */
  size_t nclass;     /* distinct values */
  double *cnum;      /* (nclass) sorted, numbers */
  const char **cstr; /* (nclass) sorted, text (borrowed from str) */
} labels_t;

static void labels_free(labels_t *lb) {
  for (int s = 0; s < 2; s++) {
    free(lb->num[s]);
    for (size_t i = 0; lb->str[s] && i < lb->n[s]; i++)
      free(lb->str[s][i]);
    free(lb->str[s]);
  }
  free(lb->cnum);
  free(lb->cstr);
}

/* Byte position of row i of a 1-D (or (n, 1)) array. */
static uint64_t pos_of(const lsmi__array_t *a, uint64_t i) {
  return a->offset + i * a->stride[0];
}

/* The text of a CSV field as a finite or infinite number, in the C locale;
 * false when it is not one. */
static bool field_number(const lsmi__array_t *a, uint64_t i, locale_t cloc,
                         double *v) {
  const char *t;
  memcpy(&t, a->data + pos_of(a, i), sizeof t);
  char *end;
  *v = strtod_l(t, &end, cloc);
  return *t != '\0' && *end == '\0';
}

/* One-hot rows (n, C) to their column: one 1 and the rest 0 per row. */
static int onehot(const lsmi__array_t *y, double *out, lsmi_read_info_t *info,
                  lsmi_error_t *err) {
  char shp[160];
  lsmi__shape_str(y, shp, sizeof shp);
  for (uint64_t i = 0; i < y->shape[0]; i++) {
    uint64_t hot = UINT64_MAX;
    bool bad = false;
    for (uint64_t j = 0; j < y->shape[1] && !bad; j++) {
      double v = lsmi__array_get(y, pos_of(y, i) + j * y->stride[1]);
      bad = (v != 0 && v != 1) || (v == 1 && hot != UINT64_MAX);
      if (v == 1)
        hot = j;
    }
    if (bad || hot == UINT64_MAX)
      return lsmi_error_set(err, LSMI_ERR_SHAPE, y->key,
                            "%s has shape %s but row %llu is not one-hot (a "
                            "single 1, the rest 0); labels are (n,) values "
                            "or (n, C) one-hot rows",
                            y->key, shp, (unsigned long long)i);
    out[i] = (double)hot;
  }
  lsmi__note(info, "%s: one-hot rows %s read as class indices (argmax)", y->key,
             shp);
  return 0;
}

/* Numbers must be whole and exact in a double. */
static int check_number(const lsmi__array_t *y, uint64_t i, double v,
                        lsmi_error_t *err) {
  if (!isfinite(v) || v != floor(v))
    return lsmi_error_set(err, LSMI_ERR_DATA, y->key,
                          "%s has a non-integral label %g at row %llu", y->key,
                          v, (unsigned long long)i);
  if (fabs(v) > 9007199254740992.0)
    return lsmi_error_set(err, LSMI_ERR_DATA, y->key,
                          "%s has label %.0f at row %llu, beyond 2^53", y->key,
                          v, (unsigned long long)i);
  return 0;
}

/* The values of split s's labels y into lb. */
static int label_values(const lsmi__array_t *y, int s, locale_t cloc,
                        labels_t *lb, lsmi_read_info_t *info,
                        lsmi_error_t *err) {
  size_t n = (size_t)rows_of(y);
  lb->n[s] = n;
  if (lb->text) {
    lb->str[s] = calloc(n ? n : 1, sizeof(char *));
    if (!lb->str[s])
      return lsmi_error_set(err, LSMI_ERR_NOMEM, y->key, "out of memory");
    for (size_t i = 0; i < n; i++) {
      int rc = lsmi__array_text(y, pos_of(y, i), i, &lb->str[s][i], err);
      if (rc)
        return rc;
    }
    return 0;
  }
  double *v = lb->num[s] = malloc((n ? n : 1) * sizeof *v);
  if (!v)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, y->key, "out of memory");
  if (y->ndim == 2 && y->shape[1] > 1) {
    int rc = onehot(y, v, info, err);
    if (rc)
      return rc;
  }
  for (size_t i = 0; i < n; i++) {
    if (y->dtype == LSMI__DT_FIELD)
      field_number(y, i, cloc, &v[i]);
    else if (!(y->ndim == 2 && y->shape[1] > 1))
      v[i] = lsmi__array_get(y, pos_of(y, i));
    int rc = check_number(y, i, v[i], err);
    if (rc)
      return rc;
  }
  return 0;
}

/* Whether the labels are text: strings, or CSV fields of which one is not
 * a number. Both splits must agree. */
static int label_kind(const lsmi__array_t *ys[2], int nsplits, locale_t cloc,
                      bool *text, lsmi_error_t *err) {
  bool t[2] = {false, false};
  bool fields_numeric = true;
  for (int s = 0; s < nsplits; s++)
    for (uint64_t i = 0;
         ys[s]->dtype == LSMI__DT_FIELD && fields_numeric && i < rows_of(ys[s]);
         i++) {
      double v;
      fields_numeric = field_number(ys[s], i, cloc, &v);
    }
  for (int s = 0; s < nsplits; s++)
    t[s] = lsmi__dtype_is_text(ys[s]->dtype) &&
           !(ys[s]->dtype == LSMI__DT_FIELD && fields_numeric);
  if (nsplits == 2 && t[0] != t[1])
    return lsmi_error_set(err, LSMI_ERR_DATA, ys[1]->key,
                          "%s holds %s but %s holds %s: labels must be all "
                          "numbers or all text",
                          ys[0]->key, t[0] ? "text" : "numbers", ys[1]->key,
                          t[1] ? "text" : "numbers");
  *text = t[0];
  return 0;
}

static int cmp_num(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted distinct values of both splits, within max_classes. */
static int distinct(labels_t *lb, const lsmi__array_t *y,
                    const lsmi_limits_t *lim, lsmi_error_t *err) {
  size_t total = lb->n[0] + lb->n[1],
         es = lb->text ? sizeof(char *) : sizeof(double);
  void *all = malloc((total ? total : 1) * es);
  if (!all)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, y->key, "out of memory");
  for (int s = 0; s < 2; s++) {
    void *src = lb->text ? (void *)lb->str[s] : (void *)lb->num[s];
    if (lb->n[s])
      memcpy((char *)all + (s ? lb->n[0] : 0) * es, src, lb->n[s] * es);
  }
  qsort(all, total, es, lb->text ? cmp_str : cmp_num);
  size_t k = 0;
  for (size_t i = 0; i < total; i++) {
    char *p = (char *)all + i * es;
    if (k == 0 ||
        (lb->text ? cmp_str : cmp_num)((char *)all + (k - 1) * es, p) != 0)
      memmove((char *)all + (k++) * es, p, es);
  }
  lb->nclass = k;
  if (lb->text)
    lb->cstr = all;
  else
    lb->cnum = all;
  if (k > lim->max_classes || k > 2147483647u)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, y->key,
                          "%s has %zu distinct labels; at most %llu classes "
                          "are allowed (max_classes)",
                          y->key, k, (unsigned long long)lim->max_classes);
  return 0;
}

/* Reads the labels of the nsplits splits into lb (free it whatever this
 * returns). */
static int read_labels(const lsmi__arrays_t *as, int nsplits,
                       const lsmi_limits_t *lim, labels_t *lb,
                       lsmi_read_info_t *info, lsmi_error_t *err) {
  memset(lb, 0, sizeof *lb);
  const lsmi__array_t *ys[2] = {&as->role[LSMI__TRAIN_Y],
                                &as->role[LSMI__VAL_Y]};
  /* Numbers are read in the C locale whatever the process's locale is. */
  locale_t cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (cloc == (locale_t)0)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  int rc = label_kind(ys, nsplits, cloc, &lb->text, err);
  for (int s = 0; s < nsplits && !rc; s++)
    rc = label_values(ys[s], s, cloc, lb, info, err);
  freelocale(cloc);
  return rc ? rc : distinct(lb, ys[0], lim, err);
}

/* The class of label i of split s: its place among the sorted values. */
static int32_t class_of(const labels_t *lb, int s, size_t i) {
  const void *key =
      lb->text ? (const void *)&lb->str[s][i] : (const void *)&lb->num[s][i];
  const char *base = lb->text ? (const char *)lb->cstr : (const char *)lb->cnum;
  size_t es = lb->text ? sizeof(char *) : sizeof(double);
  const char *hit =
      bsearch(key, base, lb->nclass, es, lb->text ? cmp_str : cmp_num);
  return (int32_t)((hit - base) / (ptrdiff_t)es);
}

/* The class indices of both splits, and the class names unless the values
 * were 0 .. C-1. */
static int encode_labels(const labels_t *lb, lsmi_dataset_t *ds,
                         lsmi_error_t *err) {
  for (int s = 0; s < 2; s++) {
    lsmi_split_t *sp = s ? &ds->val : &ds->train;
    for (size_t i = 0; i < sp->n; i++)
      sp->y[i] = class_of(lb, s, i);
  }
  bool identity = !lb->text;
  for (size_t k = 0; identity && k < lb->nclass; k++)
    identity = lb->cnum[k] == (double)k;
  if (identity)
    return 0;
  ds->class_names = calloc(lb->nclass, sizeof(char *));
  ds->class_names_numeric = !lb->text;
  for (size_t k = 0; ds->class_names && k < lb->nclass; k++) {
    char buf[32];
    if (!lb->text)
      snprintf(buf, sizeof buf, "%.0f", lb->cnum[k] == 0 ? 0.0 : lb->cnum[k]);
    if (!(ds->class_names[k] = strdup(lb->text ? lb->cstr[k] : buf)))
      return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  return ds->class_names
             ? 0
             : lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
}

/* ---- 3. features ---- */

/* The byte offset of each column of a row of a: the dims after the first,
 * unravelled in C order (*out: d entries, free() it). */
static int column_offsets(const lsmi__array_t *a, uint64_t d, uint64_t **out,
                          lsmi_error_t *err) {
  uint64_t *off = malloc((size_t)(d ? d : 1) * sizeof *off);
  if (!off)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, a->key, "out of memory");
  for (uint64_t j = 0; j < d; j++) {
    uint64_t rem = j, o = 0;
    for (int k = a->ndim - 1; k >= 1; k--) {
      o += (rem % a->shape[k]) * a->stride[k];
      rem /= a->shape[k];
    }
    off[j] = o;
  }
  *out = off;
  return 0;
}

static int fill_features(const lsmi__array_t *a, float *x, size_t ld,
                         lsmi_error_t *err) {
  uint64_t n = rows_of(a), d = cols_of(a), *col = NULL;
  int rc = column_offsets(a, d, &col, err);
  if (rc)
    return rc;
  bool fast = a->dtype == LSMI__DT_F32 &&
              a->big_endian == lsmi__host_big_endian() && a->ndim <= 2 &&
              (d == 1 || a->stride[1] == 4);
  for (uint64_t i = 0; i < n && !rc; i++) {
    float *row = x + i * ld;
    uint64_t base = a->offset + i * a->stride[0];
    if (fast)
      memcpy(row, a->data + base, (size_t)d * 4);
    else
      for (uint64_t j = 0; j < d; j++)
        row[j] = (float)lsmi__array_get(a, base + col[j]);
    for (uint64_t j = 0; j < d && !rc; j++) {
      if (isfinite(row[j]))
        continue;
      double v = lsmi__array_get(a, base + col[j]);
      rc = lsmi_error_set(err, LSMI_ERR_DATA, a->key,
                          "%s has %s at row %llu, column %llu", a->key,
                          isnan(v)   ? "a NaN"
                          : isinf(v) ? "an infinite value"
                                     : "a value outside the float32 range",
                          (unsigned long long)i, (unsigned long long)j);
    }
  }
  free(col);
  return rc;
}

/* Converts the features of each split into ds (float32), saying which
 * ones were flattened. */
static int fill_dataset(const lsmi__arrays_t *as, lsmi_dataset_t *ds,
                        lsmi_read_info_t *info, lsmi_error_t *err) {
  size_t d = ds->d1 + ds->d2;
  int rc = 0;
  for (int s = 0; s < (ds->val.n ? 2 : 1) && !rc; s++) {
    lsmi_split_t *sp = s ? &ds->val : &ds->train;
    for (int q = 0; q < 2 && !rc; q++) {
      const lsmi__array_t *a = &as->role[lsmi__role(s, q)];
      rc = fill_features(a, sp->x + (q ? ds->d1 : 0), d, err);
      if (!rc && a->ndim > 2) {
        char shp[160];
        lsmi__shape_str(a, shp, sizeof shp);
        lsmi__note(info,
                   "%s: features of shape %s flattened in C order to "
                   "(%llu, %llu)",
                   a->key, shp, (unsigned long long)rows_of(a),
                   (unsigned long long)cols_of(a));
      }
    }
  }
  return rc;
}

/* ---- 4. ids and rows ---- */

/* Whether a CSV field is an integer as JSON would write it back: no sign
 * but '-', no leading zeros, at most 15 digits. */
static bool integer_text(const char *t) {
  if (*t == '-')
    t++;
  size_t n = strspn(t, "0123456789");
  return n > 0 && n <= 15 && t[n] == '\0' && (t[0] != '0' || n == 1);
}

/* The ids of split s as text, and whether every one is an integer. */
static int fill_ids(const lsmi__array_t *a, lsmi_split_t *sp, bool *numeric,
                    lsmi_error_t *err) {
  sp->id = calloc(sp->n ? sp->n : 1, sizeof(char *));
  if (!sp->id)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, a->key, "out of memory");
  for (size_t i = 0; i < sp->n; i++) {
    int rc = lsmi__array_text(a, pos_of(a, i), i, &sp->id[i], err);
    if (rc)
      return rc;
    bool text = lsmi__dtype_is_text(a->dtype) && a->dtype != LSMI__DT_FIELD;
    *numeric = *numeric && !text && integer_text(sp->id[i]);
  }
  return 0;
}

/* Ids and file positions of each split into ds. */
static int fill_provenance(const lsmi__arrays_t *as, lsmi_dataset_t *ds,
                           lsmi_error_t *err) {
  bool numeric = true;
  int rc = 0;
  for (int s = 0; s < (ds->val.n ? 2 : 1) && !rc; s++) {
    lsmi_split_t *sp = s ? &ds->val : &ds->train;
    if (as->file_row[s])
      memcpy(sp->row, as->file_row[s], sp->n * sizeof *sp->row);
    if (as->have[LSMI__TRAIN_ID + s])
      rc = fill_ids(&as->role[LSMI__TRAIN_ID + s], sp, &numeric, err);
  }
  ds->id_numeric = ds->train.id && numeric;
  return rc;
}

int lsmi__assemble(const lsmi__arrays_t *as, const lsmi_limits_t *lim,
                   lsmi_dataset_t **out, lsmi_read_info_t *info,
                   lsmi_error_t *err) {
  *out = NULL;
  bool val = false;
  int rc = check_arrays(as, &val, err);
  if (rc)
    return rc;
  const lsmi__array_t *tx1 = &as->role[0], *tx2 = &as->role[1];
  uint64_t d1 = cols_of(tx1), d2 = cols_of(tx2);
  if (rows_of(tx1) == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, tx1->key, "%s has no rows",
                          tx1->key);
  if (d1 == 0 || d2 == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, d1 == 0 ? tx1->key : tx2->key,
                          "%s has no feature columns",
                          d1 == 0 ? tx1->key : tx2->key);
  labels_t lb;
  rc = read_labels(as, val ? 2 : 1, lim, &lb, info, err);
  size_t n_val = val ? (size_t)rows_of(&as->role[3]) : 0;
  lsmi_dataset_t *ds =
      rc ? NULL
         : lsmi_dataset_create((size_t)rows_of(tx1), n_val, (size_t)d1,
                               (size_t)d2, (int)lb.nclass, err);
  if (!rc && !ds)
    rc = err ? err->status : LSMI_ERR_NOMEM;
  if (!rc)
    rc = fill_dataset(as, ds, info, err);
  if (!rc)
    rc = encode_labels(&lb, ds, err);
  if (!rc)
    rc = fill_provenance(as, ds, err);
  labels_free(&lb);
  if (rc)
    lsmi_dataset_destroy(ds);
  else
    *out = ds;
  return rc;
}
