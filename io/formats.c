/*
 * formats.c — one reader interface over every file format: detection by
 * magic bytes, dispatch, the common assembly of arrays into a dataset, and
 * the seeded stratified val split.
 *
 * The flow of lsmi_dataset_read: map the file (after checking its size
 * against max_file_bytes), guess the format from its first bytes, let the
 * format's reader find up to six arrays (dsio.h), and assemble them here:
 * shapes, labels and finite values are checked once, for every format, with
 * the file's own key names in the messages. A file without a val split gets
 * one from lsmi__split_val when val_fraction asks for it. Last comes
 * lsmi_dataset_validate, the same checks any caller can run.
 *
 * Nothing here keeps state between calls; all memory belongs to the call
 * until the dataset is handed to the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsio.h"
#include "zip.h"

const char *const lsmi__role_names[LSMI__ROLES] = {
    "train_x1", "train_x2", "train_y", "val_x1", "val_x2", "val_y"};

static const char *const reference_names[LSMI__ROLES] = {
    "train_modal_1_features", "train_modal_2_features", "train_targets",
    "val_modal_1_features",   "val_modal_2_features",   "val_targets"};

int lsmi__key_role(const char *key) {
  for (int r = 0; r < LSMI__ROLES; r++)
    if (strcmp(key, lsmi__role_names[r]) == 0 ||
        strcmp(key, reference_names[r]) == 0)
      return r;
  return -1;
}

const char *lsmi_format_name(lsmi_format_t f) {
  switch (f) {
  case LSMI_FORMAT_NPZ:
    return "npz";
  case LSMI_FORMAT_NPY:
    return "npy";
  case LSMI_FORMAT_PT:
    return "pt";
  case LSMI_FORMAT_SAFETENSORS:
    return "safetensors";
  case LSMI_FORMAT_CSV:
    return "csv";
  case LSMI_FORMAT_JSON:
    return "json";
  default:
    return "unknown";
  }
}

/*
 * Magic bytes: zip ("PK\3\4", or "PK\5\6" for an empty archive) is npz
 * unless its first member is a PyTorch "…/data.pkl"; "\x93NUMPY" is npy; a
 * pickle protocol opcode (0x80 2..5) is a legacy torch.save file (the pt
 * reader refuses it by name); an 8-byte little-endian length followed by
 * '{' is safetensors; text starting with '{' or '[' is JSON; other text is
 * CSV.
 */
lsmi_format_t lsmi_format_detect(const unsigned char *head, size_t len) {
  if (!head || len == 0)
    return LSMI_FORMAT_UNKNOWN;
  if (len >= 4 && head[0] == 'P' && head[1] == 'K' &&
      ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6))) {
    if (len >= 30 && head[2] == 3) {
      size_t nlen = lsmi__le16(head + 26);
      if (nlen >= 8 && len >= 30 + nlen &&
          memcmp(head + 30 + nlen - 8, "data.pkl", 8) == 0)
        return LSMI_FORMAT_PT;
    }
    return LSMI_FORMAT_NPZ;
  }
  if (len >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
    return LSMI_FORMAT_NPY;
  if (len >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
    return LSMI_FORMAT_PT;
  if (len >= 9 && head[8] == '{' && lsmi__le64(head) >= 2)
    return LSMI_FORMAT_SAFETENSORS;
  size_t i = 0;
  if (len >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF)
    i = 3; /* UTF-8 byte order mark */
  while (i < len && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' ||
                     head[i] == '\n'))
    i++;
  if (i < len && (head[i] == '{' || head[i] == '['))
    return LSMI_FORMAT_JSON;
  /* CSV: printable text (or UTF-8) with no NUL and no control bytes. */
  size_t check = len < 4096 ? len : 4096;
  for (size_t k = 0; k < check; k++) {
    unsigned char c = head[k];
    if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
      return LSMI_FORMAT_UNKNOWN;
  }
  return i < len ? LSMI_FORMAT_CSV : LSMI_FORMAT_UNKNOWN;
}

/* ---- arrays ---- */

void lsmi__arrays_init(lsmi__arrays_t *as) { memset(as, 0, sizeof *as); }

int lsmi__arrays_own(lsmi__arrays_t *as, void *p, lsmi_error_t *err) {
  if (as->n_owned >= LSMI__MAX_OWNED) {
    free(p);
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                          "too many buffers (internal limit %d)",
                          LSMI__MAX_OWNED);
  }
  as->owned[as->n_owned++] = p;
  return 0;
}

void lsmi__arrays_seen(lsmi__arrays_t *as, const char *key) {
  size_t have = strlen(as->seen), room = sizeof as->seen - have;
  if (have >= 3 && strcmp(as->seen + have - 3, "...") == 0)
    return;
  size_t need = strlen(key) + (have ? 2 : 0);
  if (need + 4 > room) {
    if (room > 4)
      snprintf(as->seen + have, room, "%s...", have ? ", " : "");
    return;
  }
  snprintf(as->seen + have, room, "%s%s", have ? ", " : "", key);
}

void lsmi__arrays_free(lsmi__arrays_t *as) {
  for (size_t i = 0; i < as->n_owned; i++)
    free(as->owned[i]);
  as->n_owned = 0;
}

size_t lsmi__dtype_size(lsmi__dtype_t dt) {
  switch (dt) {
  case LSMI__DT_BOOL:
  case LSMI__DT_U8:
  case LSMI__DT_I8:
    return 1;
  case LSMI__DT_U16:
  case LSMI__DT_I16:
  case LSMI__DT_F16:
  case LSMI__DT_BF16:
    return 2;
  case LSMI__DT_U32:
  case LSMI__DT_I32:
  case LSMI__DT_F32:
    return 4;
  default:
    return 8;
  }
}

const char *lsmi__dtype_name(lsmi__dtype_t dt) {
  static const char *const n[] = {
      "bool",   "uint8", "int8",    "uint16",   "int16",   "uint32", "int32",
      "uint64", "int64", "float16", "bfloat16", "float32", "float64"};
  return (unsigned)dt < sizeof n / sizeof n[0] ? n[dt] : "?";
}

void lsmi__shape_str(const lsmi__array_t *a, char *buf, size_t len) {
  size_t k = 0;
  int w = snprintf(buf, len, "(");
  k = w > 0 ? (size_t)w : 0;
  for (int i = 0; i < a->ndim && k < len; i++) {
    w = snprintf(buf + k, len - k, "%s%llu", i ? ", " : "",
                 (unsigned long long)a->shape[i]);
    k += w > 0 ? (size_t)w : 0;
  }
  if (k < len)
    snprintf(buf + k, len - k, a->ndim == 1 ? ",)" : ")");
}

void lsmi__strides_c(lsmi__array_t *a) {
  uint64_t s = lsmi__dtype_size(a->dtype);
  for (int i = a->ndim; i-- > 0;) {
    a->stride[i] = s;
    s *= a->shape[i] ? a->shape[i] : 1; /* callers checked the product */
  }
}

int lsmi__arrays_put(lsmi__arrays_t *as, int role, const lsmi__array_t *a,
                     const lsmi_limits_t *lim, lsmi_error_t *err) {
  char shp[160];
  lsmi__shape_str(a, shp, sizeof shp);
  if (role < 0 || role >= LSMI__ROLES)
    return 0;
  if (as->have[role])
    return lsmi_error_set(err, LSMI_ERR_FORMAT, a->key,
                          "keys %s and %s both give %s", as->role[role].key,
                          a->key, lsmi__role_names[role]);
  bool labels = role == LSMI__TRAIN_Y || role == LSMI__VAL_Y;
  if (a->ndim < 1 || a->ndim > 2 ||
      (labels && a->ndim == 2 && a->shape[1] != 1))
    return lsmi_error_set(err, LSMI_ERR_SHAPE, a->key,
                          "%s has shape %s; expected %s", a->key, shp,
                          labels ? "(n,) labels" : "(n, d) features");
  if (a->shape[0] > lim->max_rows)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, a->key,
                          "%s has shape %s: %llu rows exceed the limit %llu",
                          a->key, shp, (unsigned long long)a->shape[0],
                          (unsigned long long)lim->max_rows);
  if (a->ndim == 2 && a->shape[1] > lim->max_dims)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, a->key,
                          "%s has shape %s: %llu columns exceed the limit "
                          "%llu",
                          a->key, shp, (unsigned long long)a->shape[1],
                          (unsigned long long)lim->max_dims);
  /* Every element must lie inside the bytes: the last one starts at
   * offset + sum((shape_k - 1) * stride_k). */
  bool empty = false;
  uint64_t last = a->offset;
  for (int i = 0; i < a->ndim; i++) {
    if (a->shape[i] == 0)
      empty = true;
    uint64_t t;
    if (!empty && (!lsmi__mul_u64(a->shape[i] - 1, a->stride[i], &t) ||
                   !lsmi__add_u64(last, t, &last)))
      return lsmi_error_set(err, LSMI_ERR_FORMAT, a->key,
                            "%s: strides of shape %s overflow", a->key, shp);
  }
  if (!empty) {
    uint64_t end;
    size_t es = lsmi__dtype_size(a->dtype);
    if (!lsmi__add_u64(last, es, &end) || end > a->data_len)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, a->key,
                            "%s with shape %s (%s) needs more bytes than the "
                            "file holds for it (%zu)",
                            a->key, shp, lsmi__dtype_name(a->dtype),
                            a->data_len);
  }
  /* A view may not show more elements than its bytes hold: a stride-0
   * (expanded) tensor of a few bytes would otherwise become gigabytes of
   * dataset. */
  uint64_t numel = 1, bytes;
  for (int i = 0; i < a->ndim; i++)
    if (!lsmi__mul_u64(numel, a->shape[i], &numel))
      numel = UINT64_MAX;
  if (!lsmi__mul_u64(numel, lsmi__dtype_size(a->dtype), &bytes) ||
      bytes > a->data_len)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, a->key,
                          "%s with shape %s shows more elements than its %zu "
                          "bytes hold (an expanded or overlapping view); save "
                          "it with .contiguous()",
                          a->key, shp, a->data_len);
  as->role[role] = *a;
  as->have[role] = true;
  return 0;
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  float f;
  if (exp == 0) {
    f = ldexpf((float)man, -24); /* zero or subnormal */
    return sign ? -f : f;
  }
  uint32_t bits;
  if (exp == 31)
    bits = sign | 0x7F800000u | (man << 13); /* inf or nan */
  else
    bits = sign | ((exp + 112) << 23) | (man << 13);
  memcpy(&f, &bits, 4);
  return f;
}

static bool host_big_endian(void) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return true;
#else
  return false;
#endif
}

double lsmi__array_get(const lsmi__array_t *a, uint64_t pos) {
  size_t es = lsmi__dtype_size(a->dtype);
  const unsigned char *p = a->data + pos;
  unsigned char b[8];
  if (a->big_endian != host_big_endian())
    for (size_t k = 0; k < es; k++)
      b[k] = p[es - 1 - k];
  else
    memcpy(b, p, es);
  switch (a->dtype) {
  case LSMI__DT_BOOL:
    return b[0] ? 1.0 : 0.0;
  case LSMI__DT_U8:
    return (double)b[0];
  case LSMI__DT_I8:
    return (double)(int8_t)b[0];
  case LSMI__DT_U16: {
    uint16_t v;
    memcpy(&v, b, 2);
    return (double)v;
  }
  case LSMI__DT_I16: {
    int16_t v;
    memcpy(&v, b, 2);
    return (double)v;
  }
  case LSMI__DT_U32: {
    uint32_t v;
    memcpy(&v, b, 4);
    return (double)v;
  }
  case LSMI__DT_I32: {
    int32_t v;
    memcpy(&v, b, 4);
    return (double)v;
  }
  case LSMI__DT_U64: {
    uint64_t v;
    memcpy(&v, b, 8);
    return (double)v;
  }
  case LSMI__DT_I64: {
    int64_t v;
    memcpy(&v, b, 8);
    return (double)v;
  }
  case LSMI__DT_F16: {
    uint16_t v;
    memcpy(&v, b, 2);
    return (double)half_to_float(v);
  }
  case LSMI__DT_BF16: {
    uint16_t v;
    memcpy(&v, b, 2);
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, 4);
    return (double)f;
  }
  case LSMI__DT_F32: {
    float v;
    memcpy(&v, b, 4);
    return (double)v;
  }
  case LSMI__DT_F64: {
    double v;
    memcpy(&v, b, 8);
    return v;
  }
  }
  return NAN;
}

/* ---- assembly ---- */

static uint64_t rows_of(const lsmi__array_t *a) { return a->shape[0]; }
static uint64_t cols_of(const lsmi__array_t *a) {
  return a->ndim == 2 ? a->shape[1] : 1;
}
static uint64_t colstride_of(const lsmi__array_t *a) {
  return a->ndim == 2 ? a->stride[1] : 0;
}

static int missing(const lsmi__arrays_t *as, int r, lsmi_error_t *err,
                   const char *why) {
  return lsmi_error_set(err, LSMI_ERR_MISSING, lsmi__role_names[r],
                        "missing key %s (or %s)%s%s%s", lsmi__role_names[r],
                        reference_names[r], why,
                        as->seen[0] ? "; the file holds " : "", as->seen);
}

/* Checks one split's three arrays against each other. */
static int check_split(const lsmi__arrays_t *as, int base, lsmi_error_t *err) {
  const lsmi__array_t *x1 = &as->role[base], *x2 = &as->role[base + 1],
                      *y = &as->role[base + 2];
  char shp[160], shp1[160];
  lsmi__shape_str(x1, shp1, sizeof shp1);
  const lsmi__array_t *other[2] = {x2, y};
  for (int k = 0; k < 2; k++) {
    if (rows_of(other[k]) != rows_of(x1)) {
      lsmi__shape_str(other[k], shp, sizeof shp);
      return lsmi_error_set(err, LSMI_ERR_SHAPE, other[k]->key,
                            "%s has shape %s but %s has shape %s: the row "
                            "counts differ",
                            other[k]->key, shp, x1->key, shp1);
    }
  }
  return 0;
}

/* Labels: finite, integral, in [0, max_classes); *maxlab the largest. */
static int scan_labels(const lsmi__array_t *y, const lsmi_limits_t *lim,
                       int64_t *maxlab, lsmi_error_t *err) {
  for (uint64_t i = 0; i < y->shape[0]; i++) {
    double v = lsmi__array_get(y, y->offset + i * y->stride[0]);
    if (!isfinite(v) || v != floor(v))
      return lsmi_error_set(err, LSMI_ERR_DATA, y->key,
                            "%s has a non-integral label %g at row %llu",
                            y->key, v, (unsigned long long)i);
    if (v < 0)
      return lsmi_error_set(err, LSMI_ERR_DATA, y->key,
                            "%s has a negative label %.0f at row %llu", y->key,
                            v, (unsigned long long)i);
    if (v >= (double)lim->max_classes || v >= 2147483647.0)
      return lsmi_error_set(err, LSMI_ERR_LIMIT, y->key,
                            "%s has label %.0f at row %llu; at most %llu "
                            "classes are allowed (max_classes)",
                            y->key, v, (unsigned long long)i,
                            (unsigned long long)lim->max_classes);
    if ((int64_t)v > *maxlab)
      *maxlab = (int64_t)v;
  }
  return 0;
}

static int fill_features(const lsmi__array_t *a, float *x, size_t ld,
                         lsmi_error_t *err) {
  uint64_t n = rows_of(a), d = cols_of(a), cs = colstride_of(a);
  bool fast = a->dtype == LSMI__DT_F32 && a->big_endian == host_big_endian() &&
              (cs == 4 || d == 1);
  for (uint64_t i = 0; i < n; i++) {
    float *row = x + i * ld;
    uint64_t base = a->offset + i * a->stride[0];
    if (fast)
      memcpy(row, a->data + base, (size_t)d * 4);
    else
      for (uint64_t j = 0; j < d; j++)
        row[j] = (float)lsmi__array_get(a, base + j * cs);
    for (uint64_t j = 0; j < d; j++) {
      if (!isfinite(row[j])) {
        double v = lsmi__array_get(a, base + j * cs);
        return lsmi_error_set(err, LSMI_ERR_DATA, a->key,
                              "%s has %s at row %llu, column %llu", a->key,
                              isnan(v)   ? "a NaN"
                              : isinf(v) ? "an infinite value"
                                         : "a value outside the float32 range",
                              (unsigned long long)i, (unsigned long long)j);
      }
    }
  }
  return 0;
}

/* Which arrays there are and whether their shapes agree: train complete,
 * val complete or absent, rows equal within a split, features equal
 * across splits. *val: the dataset gets a val split (an empty one counts
 * as none). */
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
  int rc = check_split(as, 0, err);
  if (rc)
    return rc;
  *val = nval == 3;
  if (!*val)
    return 0;
  rc = check_split(as, 3, err);
  if (rc)
    return rc;
  if (rows_of(&as->role[3]) == 0) {
    *val = false; /* an empty val split is no val split */
    return 0;
  }
  for (int k = 0; k < 2; k++) {
    const lsmi__array_t *v = &as->role[3 + k], *t = &as->role[k];
    if (cols_of(v) != cols_of(t)) {
      char a[160], b[160];
      lsmi__shape_str(v, a, sizeof a);
      lsmi__shape_str(t, b, sizeof b);
      return lsmi_error_set(err, LSMI_ERR_SHAPE, v->key,
                            "%s has shape %s but %s has shape %s: the "
                            "feature dimensions differ",
                            v->key, a, t->key, b);
    }
  }
  return 0;
}

/* Converts the arrays of each split into ds (features to float32, labels
 * to int32). */
static int fill_dataset(const lsmi__arrays_t *as, lsmi_dataset_t *ds,
                        lsmi_error_t *err) {
  size_t d = ds->d1 + ds->d2;
  int rc = 0;
  for (int s = 0; s < (ds->val.n ? 2 : 1) && !rc; s++) {
    lsmi_split_t *sp = s ? &ds->val : &ds->train;
    const lsmi__array_t *x1 = &as->role[3 * s], *x2 = &as->role[3 * s + 1],
                        *y = &as->role[3 * s + 2];
    rc = fill_features(x1, sp->x, d, err);
    if (!rc)
      rc = fill_features(x2, sp->x + ds->d1, d, err);
    for (size_t i = 0; !rc && i < sp->n; i++)
      sp->y[i] = (int32_t)lsmi__array_get(y, y->offset + i * y->stride[0]);
  }
  return rc;
}

int lsmi__assemble(const lsmi__arrays_t *as, const lsmi_limits_t *lim,
                   lsmi_dataset_t **out, lsmi_error_t *err) {
  *out = NULL;
  bool val = false;
  int rc = check_arrays(as, &val, err);
  if (rc)
    return rc;
  int64_t maxlab = -1;
  rc = scan_labels(&as->role[2], lim, &maxlab, err);
  if (!rc && val)
    rc = scan_labels(&as->role[5], lim, &maxlab, err);
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
  size_t n_val = val ? (size_t)rows_of(&as->role[3]) : 0;
  lsmi_dataset_t *ds =
      lsmi_dataset_create((size_t)rows_of(tx1), n_val, (size_t)d1, (size_t)d2,
                          (int)(maxlab + 1), err);
  if (!ds)
    return err ? err->status : LSMI_ERR_NOMEM;
  rc = fill_dataset(as, ds, err);
  if (rc)
    lsmi_dataset_destroy(ds);
  else
    *out = ds;
  return rc;
}

/* ---- dispatch ---- */

/* A zip holding a "data.pkl" member is a PyTorch file whatever its first
 * member is. */
static bool zip_is_torch(const unsigned char *buf, size_t len,
                         const lsmi_limits_t *lim) {
  lsmi__zip_t z;
  bool torch = false;
  if (lsmi__zip_open(&z, buf, len, lim, NULL) == 0) {
    for (size_t i = 0; i < z.n && !torch; i++)
      torch = lsmi__pt_is_pickle(z.e[i].name);
  }
  lsmi__zip_close(&z);
  return torch;
}

/* The arrays of buf, read by the reader of fmt. */
static int read_arrays(const unsigned char *buf, size_t len, lsmi_format_t fmt,
                       const lsmi_limits_t *lim, lsmi__arrays_t *as,
                       lsmi_error_t *err) {
  switch (fmt) {
  case LSMI_FORMAT_NPZ:
    return lsmi__read_npz(buf, len, lim, as, err);
  case LSMI_FORMAT_NPY:
    return lsmi__read_npy(buf, len, lim, as, err);
  case LSMI_FORMAT_PT:
    return lsmi__read_pt(buf, len, lim, as, err);
  case LSMI_FORMAT_SAFETENSORS:
    return lsmi__read_safetensors(buf, len, lim, as, err);
  case LSMI_FORMAT_CSV:
    return lsmi__read_csv(buf, len, lim, as, err);
  case LSMI_FORMAT_JSON:
    return lsmi__read_json(buf, len, lim, as, err);
  default:
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "",
                          "unrecognised file format: not npz, npy, pt, "
                          "safetensors, csv or json");
  }
}

/* A read dataset's last steps: a val split made from train when the file
 * had none (and val_fraction asks for one), then validation. *ds is
 * replaced by the split dataset, and destroyed (NULL) on failure. */
static int finish(lsmi_dataset_t **ds, const lsmi_limits_t *lim,
                  double val_fraction, uint64_t seed, lsmi_error_t *err) {
  int rc = 0;
  if ((*ds)->val.n == 0 && val_fraction == 0.0)
    rc = lsmi_error_set(err, LSMI_ERR_MISSING, "val_x1",
                        "the file has no val split (val_x1, val_x2, val_y); "
                        "set val_fraction to split one off train");
  if (!rc && (*ds)->val.n == 0) {
    lsmi_dataset_t *split = NULL;
    rc = lsmi_dataset_split_val(*ds, val_fraction, seed, &split, err);
    lsmi_dataset_destroy(*ds);
    *ds = split;
  }
  if (!rc)
    rc = lsmi_dataset_validate(*ds, lim, err);
  if (rc) {
    lsmi_dataset_destroy(*ds);
    *ds = NULL;
  }
  return rc;
}

int lsmi__dataset_read_buffer(const unsigned char *buf, size_t len,
                              lsmi_format_t fmt, const lsmi_limits_t *lim,
                              double val_fraction, uint64_t seed,
                              lsmi_dataset_t **out, lsmi_format_t *format,
                              lsmi_error_t *err) {
  lsmi_limits_t dl;
  if (!lim) {
    lsmi_limits_default(&dl);
    lim = &dl;
  }
  *out = NULL;
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    return lsmi_error_set(err, LSMI_ERR_INVALID, "val_fraction",
                          "val_fraction must be 0 (none) or in (0, 1), not "
                          "%g",
                          val_fraction);
  if (len > lim->max_file_bytes)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                          "file has %zu bytes; the limit is %llu", len,
                          (unsigned long long)lim->max_file_bytes);
  if (len == 0)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "", "the file is empty");
  if (fmt == LSMI_FORMAT_UNKNOWN) {
    fmt = lsmi_format_detect(buf, len);
    if (fmt == LSMI_FORMAT_NPZ && zip_is_torch(buf, len, lim))
      fmt = LSMI_FORMAT_PT;
  }
  if (format)
    *format = fmt;
  lsmi__arrays_t as;
  lsmi__arrays_init(&as);
  lsmi_dataset_t *ds = NULL;
  int rc = read_arrays(buf, len, fmt, lim, &as, err);
  if (!rc)
    rc = lsmi__assemble(&as, lim, &ds, err);
  lsmi__arrays_free(&as);
  if (!rc)
    rc = finish(&ds, lim, val_fraction, seed, err);
  *out = ds;
  return rc;
}

/* Maps the regular file at path read-only (*map, *size; munmap it),
 * checked against max_file_bytes and for emptiness first. */
static int map_file(const char *path, const lsmi_limits_t *lim, void **map,
                    uint64_t *size, lsmi_error_t *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return lsmi_error_set(err, LSMI_ERR_IO, "", "cannot open %s: %s", path,
                          strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = lsmi_error_set(err, LSMI_ERR_IO, "", "%s is not a regular file", path);
    goto out;
  }
  *size = (uint64_t)st.st_size;
  if (*size > lim->max_file_bytes || (uint64_t)(size_t)*size != *size)
    rc = lsmi_error_set(
        err, LSMI_ERR_LIMIT, "", "%s has %llu bytes; the limit is %llu", path,
        (unsigned long long)*size, (unsigned long long)lim->max_file_bytes);
  else if (*size == 0)
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "", "%s is empty", path);
  if (rc)
    goto out;
  /* Mapped read-only and private: the readers see the bytes as they were;
   * the file must not be truncated while it is read (uploads are written
   * once and renamed into place). */
  *map = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (*map == MAP_FAILED)
    rc = lsmi_error_set(err, LSMI_ERR_IO, "", "cannot map %s: %s", path,
                        strerror(errno));
out:
  close(fd);
  return rc;
}

int lsmi_dataset_read(const char *path, const lsmi_limits_t *lim,
                      double val_fraction, uint64_t seed, lsmi_dataset_t **out,
                      lsmi_format_t *format, lsmi_error_t *err) {
  lsmi_limits_t dl;
  if (!lim) {
    lsmi_limits_default(&dl);
    lim = &dl;
  }
  if (out)
    *out = NULL;
  if (format)
    *format = LSMI_FORMAT_UNKNOWN;
  if (!path || !out)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "", "no path or output");
  void *map;
  uint64_t size = 0;
  int rc = map_file(path, lim, &map, &size, err);
  if (rc)
    return rc;
  rc = lsmi__dataset_read_buffer(map, (size_t)size, LSMI_FORMAT_UNKNOWN, lim,
                                 val_fraction, seed, out, format, err);
  munmap(map, (size_t)size);
  return rc;
}
