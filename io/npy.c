/*
 * npy.c — NumPy .npy arrays, .npz archives of them, and the single-file
 * .npy "bundle".
 *
 * An .npy image is "\x93NUMPY", a version (1.0: 2-byte header length; 2.0
 * and 3.0: 4-byte), and a header that is a Python dict literal with 'descr',
 * 'fortran_order' and 'shape', padded with spaces. We parse that literal
 * with a small recursive-descent parser of the few Python forms it can hold
 * (strings, ints, True/False/None, tuples, lists, dicts) into a fixed pool
 * of nodes — no eval, no allocation, bounded depth — and then read the data
 * in place: C or Fortran order, either byte order, dtypes b1 i1 u1 i2 u2 i4
 * u4 i8 u8 f2 f4 f8.
 *
 * .npz: a zip (stored or deflated) of such images named "<key>.npy"; the
 * members whose key is one of the six dataset keys are read, every other
 * member (np.savez metadata such as kind=..., seed=...) is ignored unread.
 *
 * Bundle: a single .npy must hold a 1-D structured array, one record per
 * sample, with fields
 *     x1     float or int, scalar or subarray (d1,)
 *     x2     float or int, scalar or subarray (d2,)
 *     y      integer (or integral float) label
 *     split  optional: 0 = train, nonzero = val (integer or bool)
 * e.g. np.save("ds.npy", np.rec.fromarrays([x1, x2, y, split],
 * names="x1,x2,y,split")). Records are grouped by split into owned copies
 * and the fields become strided views of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsio.h"
#include "zip.h"

/* ---- Python literal parser ---- */

enum { N_STR, N_INT, N_BOOL, N_NONE, N_TUPLE, N_LIST, N_DICT };

#define MAX_NODES 1024
#define MAX_DEPTH 16

typedef struct node {
  int type;
  const char *s; /* N_STR: text (escapes not decoded), len bytes */
  size_t len;
  long long i;     /* N_INT, N_BOOL */
  int first, next; /* children (dict: key, value, key, value ...) */
  int count;
} node_t;

typedef struct lit {
  const char *p, *end;
  node_t n[MAX_NODES];
  int used;
} lit_t;

static void skip_ws(lit_t *L) {
  while (L->p < L->end &&
         (*L->p == ' ' || *L->p == '\t' || *L->p == '\n' || *L->p == '\r'))
    L->p++;
}

static int parse_value(lit_t *L, int depth);

static int new_node(lit_t *L, int type) {
  if (L->used >= MAX_NODES)
    return -1;
  node_t *n = &L->n[L->used];
  memset(n, 0, sizeof *n);
  n->type = type;
  n->first = n->next = -1;
  return L->used++;
}

static int parse_seq(lit_t *L, int type, char close, int depth) {
  int id = new_node(L, type), last = -1;
  if (id < 0)
    return -1;
  L->p++; /* the opening bracket */
  for (;;) {
    skip_ws(L);
    if (L->p >= L->end)
      return -1;
    if (*L->p == close) {
      L->p++;
      return id;
    }
    int k = parse_value(L, depth + 1);
    if (k < 0)
      return -1;
    if (type == N_DICT) {
      skip_ws(L);
      if (L->p >= L->end || *L->p != ':')
        return -1;
      L->p++;
      int v = parse_value(L, depth + 1);
      if (v < 0)
        return -1;
      L->n[k].next = v;
      if (last < 0)
        L->n[id].first = k;
      else
        L->n[last].next = k;
      last = v;
    } else {
      if (last < 0)
        L->n[id].first = k;
      else
        L->n[last].next = k;
      last = k;
    }
    L->n[id].count++;
    skip_ws(L);
    if (L->p < L->end && *L->p == ',')
      L->p++;
    else if (L->p >= L->end || *L->p != close)
      return -1;
  }
}

static int parse_value(lit_t *L, int depth) {
  if (depth > MAX_DEPTH)
    return -1;
  skip_ws(L);
  if (L->p >= L->end)
    return -1;
  char c = *L->p;
  if (c == '{')
    return parse_seq(L, N_DICT, '}', depth);
  if (c == '(')
    return parse_seq(L, N_TUPLE, ')', depth);
  if (c == '[')
    return parse_seq(L, N_LIST, ']', depth);
  if (c == '\'' || c == '"') {
    const char *s = ++L->p;
    while (L->p < L->end && *L->p != c)
      L->p += (*L->p == '\\' && L->end - L->p > 1) ? 2 : 1;
    if (L->p >= L->end)
      return -1;
    int id = new_node(L, N_STR);
    if (id < 0)
      return -1;
    L->n[id].s = s;
    L->n[id].len = (size_t)(L->p - s);
    L->p++;
    return id;
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    bool neg = c == '-';
    if (neg)
      L->p++;
    unsigned long long v = 0;
    const char *start = L->p;
    while (L->p < L->end && *L->p >= '0' && *L->p <= '9') {
      if (v > (unsigned long long)(INT64_MAX - 9) / 10)
        return -1; /* beyond int64: no real shape is that large */
      v = v * 10 + (unsigned long long)(*L->p - '0');
      L->p++;
    }
    if (L->p == start)
      return -1;
    if (L->p < L->end && *L->p == 'L')
      L->p++; /* Python 2 longs in old headers */
    int id = new_node(L, N_INT);
    if (id < 0)
      return -1;
    L->n[id].i = neg ? -(long long)v : (long long)v;
    return id;
  }
  static const struct {
    const char *w;
    int type;
    long long v;
  } words[] = {{"True", N_BOOL, 1}, {"False", N_BOOL, 0}, {"None", N_NONE, 0}};
  for (size_t k = 0; k < 3; k++) {
    size_t wl = strlen(words[k].w);
    if ((size_t)(L->end - L->p) >= wl && memcmp(L->p, words[k].w, wl) == 0) {
      L->p += wl;
      int id = new_node(L, words[k].type);
      if (id >= 0)
        L->n[id].i = words[k].v;
      return id;
    }
  }
  return -1;
}

static bool str_is(const node_t *n, const char *s) {
  return n->type == N_STR && n->len == strlen(s) &&
         memcmp(n->s, s, n->len) == 0;
}

static int dict_get(const lit_t *L, int dict, const char *key) {
  for (int k = L->n[dict].first; k >= 0; k = L->n[L->n[k].next].next)
    if (str_is(&L->n[k], key))
      return L->n[k].next;
  return -1;
}

/* ---- dtypes ---- */

/* Text dtypes: "<U8" (UCS-4, 8 characters) or "|S8" (8 bytes), at most
 * 1 MiB an element: *dt and *width. */
static bool parse_text_descr(const char *d, lsmi__dtype_t *dt, bool *big,
                             uint64_t *width) {
  if (!strchr("<>|=", d[0]) || (d[1] != 'U' && d[1] != 'S'))
    return false;
  char *end;
  unsigned long long w = strtoull(d + 2, &end, 10);
  if (d[2] < '0' || d[2] > '9' || *end != '\0' || w == 0 || w > (1u << 18))
    return false;
  *dt = d[1] == 'U' ? LSMI__DT_UNICODE : LSMI__DT_BYTES;
  *width = d[1] == 'U' ? 4 * w : w;
  *big = d[0] == '>';
  return true;
}

/* "<f4" etc. into dtype, byte order and (text) width; 0 or UNSUPPORTED. */
static int parse_descr(const node_t *n, const char *key, lsmi__dtype_t *dt,
                       bool *big, uint64_t *width, lsmi_error_t *err) {
  char d[16];
  size_t len = n->len < sizeof d - 1 ? n->len : sizeof d - 1;
  memcpy(d, n->s, len);
  d[len] = '\0';
  *width = 0;
  if (parse_text_descr(d, dt, big, width))
    return 0;
  static const struct {
    const char *code;
    lsmi__dtype_t dt;
  } map[] = {{"b1", LSMI__DT_BOOL}, {"u1", LSMI__DT_U8},  {"i1", LSMI__DT_I8},
             {"u2", LSMI__DT_U16},  {"i2", LSMI__DT_I16}, {"u4", LSMI__DT_U32},
             {"i4", LSMI__DT_I32},  {"u8", LSMI__DT_U64}, {"i8", LSMI__DT_I64},
             {"f2", LSMI__DT_F16},  {"f4", LSMI__DT_F32}, {"f8", LSMI__DT_F64}};
  if (len == 3 && strchr("<>|=", d[0])) {
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
      if (strcmp(d + 1, map[k].code) == 0) {
        *dt = map[k].dt;
        *big = d[0] == '>';
        return 0;
      }
    }
  }
  return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, key,
                        "%s has dtype '%s'%s; supported are bool, int8-64, "
                        "uint8-64, float16, float32, float64 and, for labels "
                        "and ids, strings",
                        key, d,
                        strcmp(d, "|O") == 0 ? " (Python objects)" : "");
}

/* Fills shape from a tuple node, with the element count checked. */
static int parse_shape(const lit_t *L, int t, const char *key, lsmi__array_t *a,
                       uint64_t *numel, lsmi_error_t *err) {
  if (t < 0 || L->n[t].type != N_TUPLE)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s: .npy header has no shape tuple", key);
  if (L->n[t].count > LSMI__MAX_NDIM)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, key,
                          "%s has %d dimensions; at most %d are supported", key,
                          L->n[t].count, LSMI__MAX_NDIM);
  a->ndim = 0;
  uint64_t prod = 1;
  bool overflow = false;
  for (int k = L->n[t].first; k >= 0; k = L->n[k].next) {
    if (L->n[k].type != N_INT || L->n[k].i < 0)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                            "%s: .npy shape holds a non-integer or negative "
                            "size",
                            key);
    a->shape[a->ndim++] = (uint64_t)L->n[k].i;
    if (!lsmi__mul_u64(prod, (uint64_t)L->n[k].i, &prod))
      overflow = true;
  }
  if (overflow) {
    char shp[160];
    lsmi__shape_str(a, shp, sizeof shp);
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has shape %s: its element count overflows", key,
                          shp);
  }
  *numel = prod;
  return 0;
}

/* Magic, version and header: sets *L over the header dict and *data_off. */
static int npy_header(const unsigned char *buf, size_t len, const char *key,
                      const lsmi_limits_t *lim, lit_t *L, int *dict,
                      size_t *data_off, lsmi_error_t *err) {
  if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s is not an .npy array (bad magic)", key);
  unsigned major = buf[6];
  uint64_t hlen, hstart;
  if (major == 1) {
    hlen = lsmi__le16(buf + 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                            "%s: truncated .npy header", key);
    hlen = lsmi__le32(buf + 8);
    hstart = 12;
  } else {
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, key,
                          "%s: .npy format version %u is not supported", key,
                          major);
  }
  if (hlen > lim->max_header_bytes)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s: .npy header of %llu bytes exceeds the limit "
                          "%llu",
                          key, (unsigned long long)hlen,
                          (unsigned long long)lim->max_header_bytes);
  if (hlen > len - hstart)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s: .npy header says %llu bytes but the file "
                          "ends first (truncated?)",
                          key, (unsigned long long)hlen);
  memset(L, 0, sizeof *L);
  L->p = (const char *)buf + hstart;
  L->end = L->p + hlen;
  *dict = parse_value(L, 0);
  if (*dict < 0 || L->n[*dict].type != N_DICT)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s: .npy header is not a valid dict literal", key);
  *data_off = (size_t)(hstart + hlen);
  return 0;
}

int lsmi__npy_parse(const unsigned char *buf, size_t len, const char *key,
                    const lsmi_limits_t *lim, lsmi__array_t *a,
                    lsmi_error_t *err) {
  lit_t *L = malloc(sizeof *L);
  if (!L)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, key, "out of memory");
  memset(a, 0, sizeof *a);
  snprintf(a->key, sizeof a->key, "%s", key);
  int dict = -1;
  size_t off = 0;
  int rc = npy_header(buf, len, key, lim, L, &dict, &off, err);
  int descr = rc ? -1 : dict_get(L, dict, "descr");
  int fo = rc ? -1 : dict_get(L, dict, "fortran_order");
  int shape = rc ? -1 : dict_get(L, dict, "shape");
  uint64_t numel = 0;
  if (!rc && (descr < 0 || fo < 0 || shape < 0 || L->n[fo].type != N_BOOL))
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                        "%s: .npy header lacks descr, fortran_order or shape",
                        key);
  if (!rc && L->n[descr].type != N_STR)
    rc = lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, key,
                        "%s is a structured array; only plain numeric arrays "
                        "are supported here",
                        key);
  if (!rc)
    rc = parse_descr(&L->n[descr], key, &a->dtype, &a->big_endian, &a->width,
                     err);
  if (!rc)
    rc = parse_shape(L, shape, key, a, &numel, err);
  if (!rc) {
    uint64_t bytes;
    if (!lsmi__mul_u64(numel, lsmi__item_size(a), &bytes) ||
        bytes > len - off) {
      char shp[160];
      lsmi__shape_str(a, shp, sizeof shp);
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          "%s has shape %s (%s) but only %zu data bytes "
                          "(truncated?)",
                          key, shp, lsmi__dtype_name(a->dtype), len - off);
    }
  }
  if (!rc) {
    a->data = buf + off;
    a->data_len = len - off;
    a->offset = 0;
    if (L->n[fo].i) {
      uint64_t s = lsmi__item_size(a);
      for (int i = 0; i < a->ndim; i++) {
        a->stride[i] = s;
        s *= a->shape[i] ? a->shape[i] : 1;
      }
    } else {
      lsmi__strides_c(a);
    }
  }
  free(L);
  return rc;
}

/* ---- .npz ---- */

int lsmi__read_npz(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err) {
  lsmi__zip_t z;
  int rc = lsmi__zip_open(&z, buf, len, lim, err);
  for (size_t i = 0; !rc && i < z.n; i++) {
    const lsmi__zip_entry_t *e = &z.e[i];
    size_t nl = strlen(e->name);
    if (nl < 5 || nl - 4 >= 64 || strcmp(e->name + nl - 4, ".npy") != 0)
      continue;
    char key[64];
    memcpy(key, e->name, nl - 4);
    key[nl - 4] = '\0';
    lsmi__arrays_seen(as, key);
    int role = lsmi__key_role(as, -1, key);
    if (role < 0)
      continue;
    const unsigned char *data;
    size_t dlen;
    void *owned;
    rc = lsmi__zip_read(&z, e, &data, &dlen, &owned, err);
    if (!rc && owned)
      rc = lsmi__arrays_own(as, owned, err);
    lsmi__array_t a;
    if (!rc)
      rc = lsmi__npy_parse(data, dlen, key, lim, &a, err);
    if (!rc)
      rc = lsmi__arrays_put(as, role, &a, lim, err);
  }
  lsmi__zip_close(&z);
  return rc;
}

/* ---- single-file bundle ---- */

/* A field of the record: x1, x2, y, id (by the caller's names or these)
 * and split. */
enum { F_X1, F_X2, F_Y, F_ID, F_SPLIT, F_COUNT };

typedef struct field {
  const char *name;
  bool found;
  lsmi__dtype_t dt;
  bool big;
  uint64_t width; /* text dtypes */
  uint64_t off;   /* byte offset in the record */
  int sub_ndim;   /* subarray dims, 0 for a scalar */
  uint64_t sub[LSMI__MAX_NDIM - 1];
} field_t;

/* The name a bundle's errors give the file itself. */
static const char bundle_key[] = "npy";

/* What the header of a bundle says: its fields, record size and count. */
typedef struct bundle {
  field_t f[F_COUNT];
  uint64_t itemsize, n;
  size_t off;     /* of the first record in the file */
  uint64_t total; /* n * itemsize bytes of records */
} bundle_t;

/* The size of a field lsmi does not read (padding '|V4', a name '<U8',
 * ...) from its descr: the digits after the type letter. */
static int other_field_size(const node_t *tn, const char *fname,
                            const lsmi_limits_t *lim, uint64_t *fsize,
                            lsmi_error_t *err) {
  char d[16];
  size_t dl = tn->len < 15 ? tn->len : 15;
  memcpy(d, tn->s, dl);
  d[dl] = '\0';
  char *end;
  unsigned long long sz = dl > 2 ? strtoull(d + 2, &end, 10) : 0;
  if (dl < 3 || *end != '\0' || sz > lim->max_header_bytes)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, fname,
                          "field %s has an unsupported dtype '%s'", fname, d);
  *fsize = d[1] == 'U' ? sz * 4 : sz; /* UCS-4 */
  return 0;
}

/* A field's subarray shape (the tuple at node sh, or none: a scalar) into
 * f, with its element count *cols. */
static int field_shape(const lit_t *L, int sh, const char *fname, field_t *f,
                       uint64_t *cols, lsmi_error_t *err) {
  *cols = 1;
  if (sh < 0)
    return 0;
  lsmi__array_t tmp;
  memset(&tmp, 0, sizeof tmp);
  int rc = parse_shape(L, sh, fname, &tmp, cols, err);
  if (rc)
    return rc;
  if (f && tmp.ndim > LSMI__MAX_NDIM - 1)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, fname,
                          "field %s has %d dimensions; at most %d are "
                          "supported",
                          fname, tmp.ndim, LSMI__MAX_NDIM - 1);
  if (f) {
    f->sub_ndim = tmp.ndim;
    memcpy(f->sub, tmp.shape, (size_t)tmp.ndim * sizeof f->sub[0]);
  }
  return 0;
}

/* One field of the structured dtype, the tuple (name, descr[, shape]) at
 * node k: recorded in b->f when it is one of ours, and counted into
 * b->itemsize. */
static int read_field(const lit_t *L, int k, const lsmi_limits_t *lim,
                      bundle_t *b, lsmi__arrays_t *as, lsmi_error_t *err) {
  const node_t *t = &L->n[k];
  int nm = t->first, ty = nm >= 0 ? L->n[nm].next : -1,
      sh = ty >= 0 ? L->n[ty].next : -1;
  if (t->type != N_TUPLE || t->count < 2 || t->count > 3 ||
      L->n[nm].type != N_STR)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, bundle_key,
                          "malformed structured dtype in the .npy header");
  if (L->n[ty].type != N_STR)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, bundle_key,
                          "nested structured dtypes are not supported");
  char fname[64];
  size_t fl = L->n[nm].len < 63 ? L->n[nm].len : 63;
  memcpy(fname, L->n[nm].s, fl);
  fname[fl] = '\0';
  lsmi__arrays_seen(as, fname);
  field_t *target = NULL;
  for (int q = 0; q < F_COUNT; q++)
    if (strcmp(fname, b->f[q].name) == 0)
      target = &b->f[q];
  uint64_t fsize = 0, cols = 1, width = 0;
  lsmi__dtype_t dt = LSMI__DT_U8;
  bool big = false;
  int rc = target ? parse_descr(&L->n[ty], fname, &dt, &big, &width, err)
                  : other_field_size(&L->n[ty], fname, lim, &fsize, err);
  if (!rc)
    rc = field_shape(L, sh, fname, target, &cols, err);
  if (rc)
    return rc;
  if (target) {
    if (target->found)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, fname,
                            "field %s appears twice", fname);
    fsize = width ? width : lsmi__dtype_size(dt);
    target->found = true;
    target->dt = dt;
    target->big = big;
    target->width = width;
    target->off = b->itemsize;
  }
  uint64_t bytes;
  if (!lsmi__mul_u64(fsize, cols, &bytes) ||
      !lsmi__add_u64(b->itemsize, bytes, &b->itemsize))
    return lsmi_error_set(err, LSMI_ERR_LIMIT, fname,
                          "record size overflows at field %s", fname);
  return 0;
}

/* The header of a bundle: a 1-D structured array whose fields include x1,
 * x2 and y, with all its records inside the file. L is scratch. */
static int read_bundle_header(const unsigned char *buf, size_t len,
                              const lsmi_limits_t *lim, lit_t *L, bundle_t *b,
                              lsmi__arrays_t *as, lsmi_error_t *err) {
  const char *key = bundle_key;
  int dict = -1;
  int rc = npy_header(buf, len, key, lim, L, &dict, &b->off, err);
  if (rc)
    return rc;
  int descr = dict_get(L, dict, "descr"), shape = dict_get(L, dict, "shape"),
      fo = dict_get(L, dict, "fortran_order");
  if (descr < 0 || shape < 0 || fo < 0)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                          ".npy header lacks descr, fortran_order or shape");
  if (L->n[descr].type != N_LIST)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, key,
                          "a single .npy file must hold a structured array "
                          "with fields x1, x2, y (and optionally split, id); "
                          "this one holds a plain array: save the arrays "
                          "with np.savez(\"ds.npz\", x1=x1, x2=x2, y=y)");
  for (int k = L->n[descr].first; k >= 0 && !rc; k = L->n[k].next)
    rc = read_field(L, k, lim, b, as, err);
  for (int q = 0; q < F_ID && !rc; q++)
    if (!b->f[q].found)
      rc = lsmi_error_set(err, LSMI_ERR_MISSING, b->f[q].name,
                          "the .npy structured array has no field %s (needs "
                          "x1, x2, y; optional split, id); its fields are %s: "
                          "say which is which with --x1 FIELD --x2 FIELD "
                          "--y FIELD (upload: ?x1=&x2=&y=)",
                          b->f[q].name, as->seen);
  lsmi__array_t rec;
  memset(&rec, 0, sizeof rec);
  if (!rc)
    rc = parse_shape(L, shape, key, &rec, &b->n, err);
  if (!rc && rec.ndim != 1)
    rc = lsmi_error_set(err, LSMI_ERR_SHAPE, key,
                        "the .npy structured array must be 1-D (one record "
                        "per sample), not %d-D",
                        rec.ndim);
  if (!rc && b->n > 2 * lim->max_rows)
    rc = lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                        "%llu records exceed the row limit",
                        (unsigned long long)b->n);
  if (!rc &&
      (!lsmi__mul_u64(b->n, b->itemsize, &b->total) || b->total > len - b->off))
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, key,
                        "%llu records of %llu bytes need more bytes than the "
                        "file holds (truncated?)",
                        (unsigned long long)b->n,
                        (unsigned long long)b->itemsize);
  return rc;
}

/* Which split record i belongs to: 1 (val) when its split field is
 * nonzero. */
static int record_split(const bundle_t *b, const lsmi__array_t *sp,
                        uint64_t i) {
  return b->f[F_SPLIT].found &&
         lsmi__array_get(sp, i * b->itemsize + b->f[F_SPLIT].off) != 0;
}

/* Field f of the `count` records at data (a copy of split s's), as an
 * array: one row per record, the field's subarray dims after it. */
static lsmi__array_t field_view(const field_t *f, int s, const bundle_t *b,
                                const unsigned char *data, uint64_t count) {
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s%s", s ? "val." : "", f->name);
  a.dtype = f->dt;
  a.big_endian = f->big;
  a.width = f->width;
  bool feature = f == &b->f[F_X1] || f == &b->f[F_X2];
  /* A scalar feature is one column; a scalar label or id one value. */
  a.ndim = 1 + (f->sub_ndim ? f->sub_ndim : feature);
  a.shape[0] = count;
  a.shape[1] = 1;
  for (int k = 0; k < f->sub_ndim; k++)
    a.shape[1 + k] = f->sub[k];
  lsmi__strides_c(&a);
  a.stride[0] = b->itemsize;
  a.offset = f->off;
  a.data = data;
  a.data_len = (size_t)(count * b->itemsize);
  return a;
}

/* Copies the `count` records of split s out of recs (the copy taken by
 * `as`), notes their positions in the file, and puts the fields as
 * strided views of the copy. */
static int put_split(const unsigned char *recs, const bundle_t *b,
                     const lsmi__array_t *sp, int s, uint64_t count,
                     const lsmi_limits_t *lim, lsmi__arrays_t *as,
                     lsmi_error_t *err) {
  uint64_t size = b->itemsize;
  unsigned char *copy = malloc(size ? (size_t)(count * size) : 1);
  if (!copy)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  int rc = lsmi__arrays_own(as, copy, err);
  uint64_t *pos = rc ? NULL : malloc((size_t)(count ? count : 1) * 8);
  if (!rc && !pos)
    rc = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  if (!rc)
    rc = lsmi__arrays_own(as, pos, err);
  as->file_row[s] = rc ? NULL : pos;
  uint64_t k = 0;
  for (uint64_t i = 0; !rc && i < b->n; i++)
    if (record_split(b, sp, i) == s) {
      memcpy(copy + k * size, recs + i * size, (size_t)size);
      pos[k++] = i;
    }
  for (int q = 0; q < F_SPLIT && !rc; q++) {
    if (!b->f[q].found)
      continue;
    lsmi__array_t a = field_view(&b->f[q], s, b, copy, count);
    rc = lsmi__arrays_put(as, lsmi__role(s, q), &a, lim, err);
  }
  return rc;
}

/* Groups the records by split and puts each non-empty split. */
static int put_records(const unsigned char *buf, const bundle_t *b,
                       const lsmi_limits_t *lim, lsmi__arrays_t *as,
                       lsmi_error_t *err) {
  const unsigned char *recs = buf + b->off;
  lsmi__array_t sp;
  memset(&sp, 0, sizeof sp);
  if (b->f[F_SPLIT].found) {
    sp.dtype = b->f[F_SPLIT].dt;
    sp.big_endian = b->f[F_SPLIT].big;
    sp.data = recs;
    sp.data_len = (size_t)b->total;
    if (lsmi__dtype_is_text(sp.dtype) || b->f[F_SPLIT].sub_ndim)
      return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "split",
                            "field split must be an integer or bool per "
                            "record (0 train, nonzero val)");
  }
  uint64_t count[2] = {0, 0};
  for (uint64_t i = 0; i < b->n; i++)
    count[record_split(b, &sp, i)]++;
  int rc = 0;
  for (int s = 0; s < 2 && !rc; s++)
    if (count[s] > 0)
      rc = put_split(recs, b, &sp, s, count[s], lim, as, err);
  return rc;
}

int lsmi__read_npy(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err) {
  lit_t *L = malloc(sizeof *L);
  if (!L)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  bundle_t b;
  memset(&b, 0, sizeof b);
  for (int q = 0; q < F_SPLIT; q++)
    b.f[q].name = as->keys[q] ? as->keys[q] : lsmi__part_names[q];
  b.f[F_SPLIT].name = "split";
  int rc = read_bundle_header(buf, len, lim, L, &b, as, err);
  free(L);
  if (!rc)
    rc = put_records(buf, &b, lim, as, err);
  return rc;
}
