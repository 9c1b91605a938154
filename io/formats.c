/*
 * formats.c — one reader interface over every file format: detection by
 * magic bytes, the roles of keys, the arrays readers hand over, dispatch,
 * and the val split drawn for a file without one.
 *
 * The flow of lsmi_dataset_read_ex: map the file (after checking its size
 * against max_file_bytes), guess the format from its first bytes, let the
 * format's reader find up to eight arrays (dsio.h), and assemble them
 * (assemble.c): shapes, labels and finite values are checked once, for
 * every format, with the file's own key names in the messages. A file
 * without a val split gets one from lsmi_dataset_split_val when the
 * options ask for it. Last comes lsmi_dataset_validate, the same checks
 * any caller can run.
 *
 * Nothing here keeps state between calls; all memory belongs to the call
 * until the dataset is handed to the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsio.h"
#include "zip.h"

const char *const lsmi__role_names[LSMI__ROLES] = {
    "train_x1", "train_x2", "train_y",  "val_x1",
    "val_x2",   "val_y",    "train_id", "val_id"};

const char *const lsmi__part_names[LSMI__PARTS] = {"x1", "x2", "y", "id"};

/* The published script's names of the first six roles. */
static const char *const reference_names[6] = {
    "train_modal_1_features", "train_modal_2_features", "train_targets",
    "val_modal_1_features",   "val_modal_2_features",   "val_targets"};

/* np.savez(x1, x2, y) without names. */
static const char *const positional_names[3] = {"arr_0", "arr_1", "arr_2"};

/* key == prefix followed by name. */
static bool prefixed(const char *key, const char *prefix, const char *name) {
  size_t k = strlen(prefix);
  return strncmp(key, prefix, k) == 0 && strcmp(key + k, name) == 0;
}

/* The role of `key` under part q's name `name`: name itself (the train
 * rows of a file without val, or a part inside a split group), or
 * train_name / val_name at the top. */
static int named_role(int split, const char *key, int q, const char *name) {
  if (split >= 0)
    return strcmp(key, name) == 0 ? lsmi__role(split, q) : -1;
  if (strcmp(key, name) == 0 || prefixed(key, "train_", name))
    return lsmi__role(0, q);
  return prefixed(key, "val_", name) ? lsmi__role(1, q) : -1;
}

int lsmi__key_role(const lsmi__arrays_t *as, int split, const char *key) {
  /* The caller's names first: they may take a key from the usual names. */
  for (int q = 0; q < LSMI__PARTS; q++) {
    int r = as->keys[q] ? named_role(split, key, q, as->keys[q]) : -1;
    if (r >= 0)
      return r;
  }
  for (int q = 0; q < LSMI__PARTS; q++) {
    if (as->keys[q])
      continue;
    int r = named_role(split, key, q, lsmi__part_names[q]);
    for (int s = 0; r < 0 && split < 0 && q < 3 && s < 2; s++)
      if (strcmp(key, reference_names[lsmi__role(s, q)]) == 0)
        r = lsmi__role(s, q);
    if (r < 0 && split < 0 && q < 3 && strcmp(key, positional_names[q]) == 0)
      r = lsmi__role(0, q);
    if (r >= 0)
      return r;
  }
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
  case LSMI__DT_UNICODE:
  case LSMI__DT_BYTES:
    return 0;
  case LSMI__DT_TEXT:
  case LSMI__DT_FIELD:
    return sizeof(const char *);
  default:
    return 8;
  }
}

uint64_t lsmi__item_size(const lsmi__array_t *a) {
  return a->dtype == LSMI__DT_UNICODE || a->dtype == LSMI__DT_BYTES
             ? a->width
             : lsmi__dtype_size(a->dtype);
}

const char *lsmi__dtype_name(lsmi__dtype_t dt) {
  static const char *const n[] = {
      "bool",    "uint8",   "int8",  "uint16",  "int16",    "uint32",
      "int32",   "uint64",  "int64", "float16", "bfloat16", "float32",
      "float64", "unicode", "bytes", "text",    "text"};
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
  uint64_t s = lsmi__item_size(a);
  for (int i = a->ndim; i-- > 0;) {
    a->stride[i] = s;
    s *= a->shape[i] ? a->shape[i] : 1; /* callers checked the product */
  }
}

/* The shape of a role's array: features of any rank (flattened later),
 * labels (n,), (n, 1) or one-hot (n, C), ids (n,) or (n, 1); numbers for
 * features. */
static int check_rank(const lsmi__array_t *a, int role, const char *shp,
                      lsmi_error_t *err) {
  int q = lsmi__part(role);
  if (a->ndim < 1 || (q >= LSMI__Y && a->ndim > 2) ||
      (q == LSMI__ID && a->ndim == 2 && a->shape[1] != 1) ||
      (q == LSMI__Y && a->ndim == 2 && a->shape[1] == 0))
    return lsmi_error_set(err, LSMI_ERR_SHAPE, a->key,
                          "%s has shape %s; expected %s", a->key, shp,
                          q == LSMI__Y    ? "(n,) labels or (n, C) one-hot"
                          : q == LSMI__ID ? "(n,) sample ids"
                                          : "(n, d) features");
  if (q < LSMI__Y && lsmi__dtype_is_text(a->dtype))
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, a->key,
                          "%s holds text (%s); features must be numbers",
                          a->key, lsmi__dtype_name(a->dtype));
  if (lsmi__dtype_is_text(a->dtype) && a->ndim != 1 && a->shape[1] != 1)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, a->key,
                          "%s has shape %s; text must be one value per row",
                          a->key, shp);
  return 0;
}

/* The columns of a (its dims after the first), within max_dims. */
static int check_columns(const lsmi__array_t *a, const char *shp,
                         const lsmi_limits_t *lim, lsmi_error_t *err) {
  uint64_t cols = 1;
  for (int i = 1; i < a->ndim; i++)
    if (!lsmi__mul_u64(cols, a->shape[i], &cols))
      cols = UINT64_MAX;
  if (cols > lim->max_dims)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, a->key,
                          "%s has shape %s: %llu columns exceed the limit "
                          "%llu",
                          a->key, shp, (unsigned long long)cols,
                          (unsigned long long)lim->max_dims);
  return 0;
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
  int rc = check_rank(a, role, shp, err);
  if (rc)
    return rc;
  if (a->shape[0] > lim->max_rows)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, a->key,
                          "%s has shape %s: %llu rows exceed the limit %llu",
                          a->key, shp, (unsigned long long)a->shape[0],
                          (unsigned long long)lim->max_rows);
  rc = check_columns(a, shp, lim, err);
  if (rc)
    return rc;
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
    uint64_t es = lsmi__item_size(a);
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
  if (!lsmi__mul_u64(numel, lsmi__item_size(a), &bytes) || bytes > a->data_len)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, a->key,
                          "%s with shape %s shows more elements than its %zu "
                          "bytes hold (an expanded or overlapping view); save "
                          "it with .contiguous()",
                          a->key, shp, a->data_len);
  as->role[role] = *a;
  as->have[role] = true;
  return 0;
}

lsmi__array_t lsmi__array_1d(const char *key, lsmi__dtype_t dt,
                             const void *data, size_t n) {
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s", key);
  a.dtype = dt;
  a.ndim = 1;
  a.shape[0] = n;
  a.stride[0] = lsmi__dtype_size(dt);
  a.data = data;
  a.data_len = n * a.stride[0];
  return a;
}

int lsmi__arrays_put_text(lsmi__arrays_t *as, int role, const char *key,
                          const char **v, size_t n, lsmi__dtype_t dt,
                          const lsmi_limits_t *lim, lsmi_error_t *err) {
  int rc = lsmi__arrays_own(as, (void *)v, err); /* frees v on failure */
  if (rc)
    return rc;
  lsmi__array_t a = lsmi__array_1d(key, dt, v, n);
  return lsmi__arrays_put(as, role, &a, lim, err);
}

int lsmi__arrays_put_strings(lsmi__arrays_t *as, int role, const char *key,
                             size_t n, lsmi__text_fn text, const void *ctx,
                             const lsmi_limits_t *lim, lsmi_error_t *err) {
  if (n > lim->max_rows)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has %zu rows; the limit is %llu", key, n,
                          (unsigned long long)lim->max_rows);
  size_t bytes = 0, len;
  for (size_t i = 0; i < n; i++) {
    text(ctx, i, &len);
    bytes += len + 1; /* each string lies in the caller's memory */
  }
  char *blob = malloc(bytes ? bytes : 1);
  if (!blob)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, key, "out of memory");
  int rc = lsmi__arrays_own(as, blob, err);
  const char **ptr = rc ? NULL : malloc((n ? n : 1) * sizeof *ptr);
  if (!rc && !ptr)
    rc = lsmi_error_set(err, LSMI_ERR_NOMEM, key, "out of memory");
  for (size_t i = 0, k = 0; !rc && i < n; i++, k += len + 1) {
    const char *t = text(ctx, i, &len);
    memcpy(blob + k, t, len);
    blob[k + len] = '\0';
    ptr[i] = blob + k;
  }
  return rc ? rc
            : lsmi__arrays_put_text(as, role, key, ptr, n, LSMI__DT_TEXT, lim,
                                    err);
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

double lsmi__array_get(const lsmi__array_t *a, uint64_t pos) {
  size_t es = lsmi__dtype_size(a->dtype);
  unsigned char b[8];
  if (lsmi__dtype_is_text(a->dtype) || es == 0 || es > sizeof b)
    return NAN; /* text has no number */
  const unsigned char *p = a->data + pos;
  if (a->big_endian != lsmi__host_big_endian())
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
  default:
    return NAN;
  }
}

/* ---- text ---- */

/* Whether s[0, n) is UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n) {
  static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k = c < 0x80             ? 0
               : (c & 0xE0) == 0xC0 ? 1
               : (c & 0xF0) == 0xE0 ? 2
               : (c & 0xF8) == 0xF0 ? 3
                                    : 4;
    if (k == 4 || n - i <= k)
      return false;
    uint32_t cp = k ? c & (0x7Fu >> (k + 1)) : c;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + j] & 0x3Fu);
    }
    if (cp < least[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += k + 1;
  }
  return true;
}

/* Appends code point cp as UTF-8 at out[*k] (room for 4 bytes). */
static bool utf8_put(uint32_t cp, char *out, size_t *k) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return false;
  unsigned char *o = (unsigned char *)out + *k;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    *k += 1;
  } else if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    *k += 2;
  } else if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    *k += 3;
  } else {
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    *k += 4;
  }
  return true;
}

/* A NumPy 'U' element (width / 4 UCS-4 code units, NUL-padded) as UTF-8
 * in a new string; NULL when it is not text or out of memory (*bad says
 * which). */
static char *ucs4_text(const lsmi__array_t *a, const unsigned char *p,
                       bool *bad) {
  size_t units = (size_t)(a->width / 4);
  char *out = malloc(4 * units + 1);
  size_t k = 0;
  for (size_t u = 0; out && u < units; u++) {
    const unsigned char *q = p + 4 * u;
    uint32_t cp = a->big_endian ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
                                      (uint32_t)q[2] << 8 | q[3]
                                : lsmi__le32(q);
    if (cp == 0)
      break;
    if (!utf8_put(cp, out, &k)) {
      *bad = true;
      free(out);
      return NULL;
    }
  }
  if (out)
    out[k] = '\0';
  return out;
}

int lsmi__array_text(const lsmi__array_t *a, uint64_t pos, uint64_t row,
                     char **out, lsmi_error_t *err) {
  const unsigned char *p = a->data + pos;
  bool bad = false;
  char *s = NULL;
  if (a->dtype == LSMI__DT_TEXT || a->dtype == LSMI__DT_FIELD) {
    const char *t;
    memcpy(&t, p, sizeof t);
    bad = !utf8_valid((const unsigned char *)t, strlen(t));
    s = bad ? NULL : strdup(t);
  } else if (a->dtype == LSMI__DT_BYTES) {
    size_t n = 0;
    while (n < a->width && p[n])
      n++;
    bad = !utf8_valid(p, n);
    s = bad ? NULL : strndup((const char *)p, n);
  } else if (a->dtype == LSMI__DT_UNICODE) {
    s = ucs4_text(a, p, &bad);
  } else {
    double v = lsmi__array_get(a, pos);
    if (v == 0)
      v = 0; /* not "-0" */
    char buf[40];
    snprintf(buf, sizeof buf,
             v == floor(v) && fabs(v) < 1e17 ? "%.0f" : "%.17g", v);
    s = strdup(buf);
  }
  if (bad)
    return lsmi_error_set(err, LSMI_ERR_DATA, a->key,
                          "%s at row %llu is not UTF-8 text", a->key,
                          (unsigned long long)row);
  if (!s)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, a->key, "out of memory");
  *out = s;
  return 0;
}

/* ---- notes ---- */

void lsmi__note(lsmi_read_info_t *info, const char *fmt, ...) {
  if (!info || info->nnotes >= LSMI_READ_NOTES)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(info->notes[info->nnotes++], sizeof info->notes[0], fmt, ap);
  va_end(ap);
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

/* The val split of a read dataset: the file's own, or drawn from train
 * when the options ask for it (*ds is then replaced by the split dataset).
 * A fraction asked for by the user that cannot apply is an error. */
static int val_split(lsmi_dataset_t **ds, const lsmi_read_options_t *o,
                     lsmi_error_t *err) {
  if ((*ds)->val.n > 0 && o->val_fraction_given && o->val_fraction > 0)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "val_fraction",
                          "val_fraction %g cannot apply: the file has its "
                          "own val split (%zu rows); leave val_fraction out "
                          "to use it",
                          o->val_fraction, (*ds)->val.n);
  if ((*ds)->val.n > 0)
    return 0;
  if (o->val_fraction == 0.0)
    return lsmi_error_set(err, LSMI_ERR_MISSING, "val_x1",
                          "the file has no val split (val_x1, val_x2, val_y); "
                          "set val_fraction (lsmi fit --val-fraction, upload "
                          "?val_fraction=) to draw one from train");
  lsmi_dataset_t *split = NULL;
  int rc = lsmi_dataset_split_val(*ds, o->val_fraction, o->seed, &split, err);
  lsmi_dataset_destroy(*ds);
  *ds = split;
  return rc;
}

int lsmi__dataset_read_buffer(const unsigned char *buf, size_t len,
                              lsmi_format_t fmt, const lsmi_limits_t *lim,
                              const lsmi_read_options_t *opts,
                              lsmi_dataset_t **out, lsmi_read_info_t *info,
                              lsmi_error_t *err) {
  lsmi_limits_t dl;
  if (!lim) {
    lsmi_limits_default(&dl);
    lim = &dl;
  }
  static const lsmi_read_options_t none = LSMI_READ_OPTIONS_INIT;
  if (!opts)
    opts = &none;
  lsmi_read_info_t di;
  if (!info)
    info = &di;
  memset(info, 0, sizeof *info);
  *out = NULL;
  double vf = opts->val_fraction;
  if (!(vf >= 0.0 && vf < 1.0))
    return lsmi_error_set(err, LSMI_ERR_INVALID, "val_fraction",
                          "val_fraction must be 0 (none) or in (0, 1), not "
                          "%g",
                          vf);
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
  info->format = fmt;
  lsmi__arrays_t as;
  lsmi__arrays_init(&as);
  const char *keys[LSMI__PARTS] = {opts->x1, opts->x2, opts->y, opts->id};
  for (int q = 0; q < LSMI__PARTS; q++)
    as.keys[q] = keys[q] && *keys[q] ? keys[q] : NULL;
  lsmi_dataset_t *ds = NULL;
  int rc = read_arrays(buf, len, fmt, lim, &as, err);
  if (!rc)
    rc = lsmi__assemble(&as, lim, &ds, info, err);
  lsmi__arrays_free(&as);
  if (!rc)
    rc = val_split(&ds, opts, err);
  if (!rc)
    rc = lsmi_dataset_validate(ds, lim, err);
  if (rc) {
    lsmi_dataset_destroy(ds);
    ds = NULL;
  }
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

int lsmi_dataset_read_ex(const char *path, const lsmi_limits_t *lim,
                         const lsmi_read_options_t *opts, lsmi_dataset_t **out,
                         lsmi_read_info_t *info, lsmi_error_t *err) {
  lsmi_limits_t dl;
  if (!lim) {
    lsmi_limits_default(&dl);
    lim = &dl;
  }
  if (out)
    *out = NULL;
  if (info)
    memset(info, 0, sizeof *info);
  if (!path || !out)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "", "no path or output");
  void *map;
  uint64_t size = 0;
  int rc = map_file(path, lim, &map, &size, err);
  if (rc)
    return rc;
  rc = lsmi__dataset_read_buffer(map, (size_t)size, LSMI_FORMAT_UNKNOWN, lim,
                                 opts, out, info, err);
  munmap(map, (size_t)size);
  return rc;
}

int lsmi_dataset_read(const char *path, const lsmi_limits_t *lim,
                      double val_fraction, uint64_t seed, lsmi_dataset_t **out,
                      lsmi_format_t *format, lsmi_error_t *err) {
  lsmi_read_options_t o = LSMI_READ_OPTIONS_INIT;
  o.val_fraction = val_fraction;
  o.seed = seed;
  lsmi_read_info_t info;
  int rc = lsmi_dataset_read_ex(path, lim, &o, out, &info, err);
  if (format)
    *format = info.format;
  return rc;
}
