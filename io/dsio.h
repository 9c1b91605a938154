/*
 * dsio.h — what the dataset readers share (internal).
 *
 * Every reader (npz, npy, pt, safetensors, csv, json) turns the bytes of a
 * file into at most eight typed, strided arrays, one per role (train x1,
 * x2, y and val x1, x2, y, then the train and val sample ids), and hands
 * them to lsmi__assemble() (assemble.c), which checks their shapes,
 * converts them to the compact float32 / int32 dataset, encodes the labels
 * and names the file's own key in every error. So the checks that matter
 * (shapes, finite values, labels) are written once, and a reader's only job
 * is to find its arrays (lsmi__key_role says which key plays which role,
 * with the caller's names first) and prove that each one lies inside the
 * bytes it points to.
 *
 * Ownership: an lsmi__arrays_t owns the buffers registered with
 * lsmi__arrays_own() (inflated zip members, parsed CSV/JSON numbers) and
 * frees them in lsmi__arrays_free(); an array's `data` is borrowed from one
 * of those buffers or from the caller's input buffer, which must outlive the
 * assembly.
 */
#ifndef LSMI_DSIO_H
#define LSMI_DSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsmi_io.h"

/* The eight roles: the six of the canonical names, then the ids. */
enum {
  LSMI__TRAIN_X1 = 0,
  LSMI__TRAIN_X2,
  LSMI__TRAIN_Y,
  LSMI__VAL_X1,
  LSMI__VAL_X2,
  LSMI__VAL_Y,
  LSMI__TRAIN_ID,
  LSMI__VAL_ID,
  LSMI__ROLES
};

/* The parts of a split, in the order of lsmi__arrays_t.keys. */
enum { LSMI__X1 = 0, LSMI__X2, LSMI__Y, LSMI__ID, LSMI__PARTS };

/* The role of part q (LSMI__X1 ...) of split s (0 train, 1 val). */
static inline int lsmi__role(int s, int q) {
  return q == LSMI__ID ? LSMI__TRAIN_ID + s : 3 * s + q;
}
/* The part of a role. */
static inline int lsmi__part(int role) {
  return role >= LSMI__TRAIN_ID ? LSMI__ID : role % 3;
}

typedef enum lsmi__dtype {
  LSMI__DT_BOOL,
  LSMI__DT_U8,
  LSMI__DT_I8,
  LSMI__DT_U16,
  LSMI__DT_I16,
  LSMI__DT_U32,
  LSMI__DT_I32,
  LSMI__DT_U64,
  LSMI__DT_I64,
  LSMI__DT_F16,
  LSMI__DT_BF16,
  LSMI__DT_F32,
  LSMI__DT_F64,
  /* Text, for labels and ids only. UNICODE: NumPy 'U' (UCS-4, `width`
   * bytes per element); BYTES: NumPy 'S' (`width` bytes, NUL-padded);
   * TEXT: each element a `const char *` to UTF-8; FIELD: likewise, a CSV
   * field, which counts as a number when every field of the column parses
   * as one. */
  LSMI__DT_UNICODE,
  LSMI__DT_BYTES,
  LSMI__DT_TEXT,
  LSMI__DT_FIELD
} lsmi__dtype_t;

static inline bool lsmi__dtype_is_text(lsmi__dtype_t dt) {
  return dt >= LSMI__DT_UNICODE;
}

#define LSMI__MAX_NDIM 8

/*
 * A typed view into bytes: element (i0, i1, ...) starts at byte
 * offset + sum(i_k * stride[k]) of `data`. Offsets and strides are in bytes
 * (so that fields of a NumPy structured array are views too) and never
 * negative (no format we read can express a negative one).
 */
typedef struct lsmi__array {
  char key[64]; /* the name the file gave it, for errors */
  lsmi__dtype_t dtype;
  bool big_endian; /* byte order of the stored elements */
  int ndim;
  uint64_t shape[LSMI__MAX_NDIM];
  uint64_t stride[LSMI__MAX_NDIM]; /* bytes */
  uint64_t offset;                 /* bytes */
  uint64_t width;                  /* bytes per element: UNICODE, BYTES */
  const unsigned char *data;       /* borrowed */
  size_t data_len;                 /* bytes available at data */
} lsmi__array_t;

#define LSMI__MAX_OWNED 64

typedef struct lsmi__arrays {
  lsmi__array_t role[LSMI__ROLES];
  bool have[LSMI__ROLES];
  void *owned[LSMI__MAX_OWNED];
  size_t n_owned;
  char seen[160]; /* "a, b, c": the keys a file holds, for MISSING errors */
  /* The caller's name of each part (LSMI__X1 ...; a CSV column prefix for
   * x1 and x2), NULL for the usual names; borrowed. */
  const char *keys[LSMI__PARTS];
  /* The position in the file of each row of split s, when it is not the
   * row's index in the split's arrays (CSV and .npy records, which a split
   * column spreads over the file); NULL otherwise. Borrowed from an owned
   * buffer. */
  const uint64_t *file_row[2];
} lsmi__arrays_t;

/* Canonical short names: "train_x1" ... "val_y", "train_id", "val_id". */
extern const char *const lsmi__role_names[LSMI__ROLES];
/* The parts' own names: "x1", "x2", "y", "id". */
extern const char *const lsmi__part_names[LSMI__PARTS];

/*
 * The role of a key, or -1 for a key readers ignore. split is -1 for a
 * key at the top of the file, 0 or 1 for a key inside a "train" or "val"
 * group (a nested dict or object), which names a part alone ("x1").
 * At the top: the caller's name K of a part (as->keys) gives K, train_K
 * and val_K; a part without one has its short names (train_x1 ... val_id),
 * the published script's (train_modal_1_features ... val_targets) and, for
 * a file without a val split, "x1", "x2", "y", "id" and np.savez's
 * positional "arr_0", "arr_1", "arr_2" (x1, x2, y).
 */
int lsmi__key_role(const lsmi__arrays_t *as, int split, const char *key);

void lsmi__arrays_init(lsmi__arrays_t *as);
/* Takes `p` (malloc'ed): freed by lsmi__arrays_free. NOMEM if full (p is
 * freed then too). */
int lsmi__arrays_own(lsmi__arrays_t *as, void *p, lsmi_error_t *err);
void lsmi__arrays_free(lsmi__arrays_t *as);
/* Notes that the file holds `key` (as far as the message buffer allows), so
 * that a missing-key error can say what the file has instead. */
void lsmi__arrays_seen(lsmi__arrays_t *as, const char *key);

/*
 * Checks `a` (shape against the limits: dim 0 against max_rows, the
 * product of the others against max_dims; features numeric, of any rank
 * from 1 (they are flattened in C order); labels (n,), (n, 1) or one-hot
 * (n, C); ids (n,) or (n, 1); every element inside data_len and no more
 * elements than data_len holds, so no expanded view; all in overflow-safe
 * arithmetic) and stores it in the slot of `role`. A role of -1 is
 * ignored. A second array for the same role is a FORMAT error naming both
 * keys.
 */
int lsmi__arrays_put(lsmi__arrays_t *as, int role, const lsmi__array_t *a,
                     const lsmi_limits_t *lim, lsmi_error_t *err);

/*
 * Puts n strings (v: taken, with the strings it points to, which must be
 * owned by `as` or outlive it) as a 1-D array of dtype TEXT or FIELD named
 * key in the slot of role.
 */
int lsmi__arrays_put_text(lsmi__arrays_t *as, int role, const char *key,
                          const char **v, size_t n, lsmi__dtype_t dt,
                          const lsmi_limits_t *lim, lsmi_error_t *err);

/* The i-th of a reader's strings, *len its bytes (borrowed). */
typedef const char *(*lsmi__text_fn)(const void *ctx, size_t i, size_t *len);

/*
 * Copies n strings (the i-th text(ctx, i, ...)) into one buffer `as`
 * owns, and puts them as a TEXT array named key in the slot of role;
 * LSMI_ERR_LIMIT for more than max_rows.
 */
int lsmi__arrays_put_strings(lsmi__arrays_t *as, int role, const char *key,
                             size_t n, lsmi__text_fn text, const void *ctx,
                             const lsmi_limits_t *lim, lsmi_error_t *err);

/* A 1-D array of n elements of dt (not UNICODE or BYTES) at data, named
 * key. */
lsmi__array_t lsmi__array_1d(const char *key, lsmi__dtype_t dt,
                             const void *data, size_t n);

/* Bytes per element of a numeric or pointer dtype (TEXT, FIELD); 0 for
 * UNICODE and BYTES, whose width is the array's. */
size_t lsmi__dtype_size(lsmi__dtype_t dt);
/* Bytes per element of an array. */
uint64_t lsmi__item_size(const lsmi__array_t *a);
/* Short name for messages: "float32", "bfloat16", "text", ... */
const char *lsmi__dtype_name(lsmi__dtype_t dt);
/* The element starting at byte `pos` of a->data, converted to double (NaN
 * for text). */
double lsmi__array_get(const lsmi__array_t *a, uint64_t pos);
/*
 * The element starting at byte `pos` as text, in a new string (*out,
 * free() it): numbers as integers when integral, else %.17g; UCS-4 and
 * bytes decoded. LSMI_ERR_DATA (naming the key and row) for text that is
 * not UTF-8, LSMI_ERR_NOMEM.
 */
int lsmi__array_text(const lsmi__array_t *a, uint64_t pos, uint64_t row,
                     char **out, lsmi_error_t *err);
/* "(3, 4)" into buf. */
void lsmi__shape_str(const lsmi__array_t *a, char *buf, size_t len);
/* Fills C-order (row-major) byte strides from the shape and dtype. */
void lsmi__strides_c(lsmi__array_t *a);

/*
 * Builds a dataset from the arrays: train must be complete; val is either
 * complete or absent (an empty val counts as absent); ids are optional.
 * Checks shapes and features (finite in float32), flattens features of
 * rank 3 and more, decodes one-hot labels, encodes the labels' values
 * (integers or text) as class indices in sorted order (keeping the values
 * as class names unless they were 0 .. C-1), and carries ids and file
 * positions; each error names the file's key and the first bad row. What
 * it did that the file did not say goes to info's notes (info may be
 * NULL). *out is NULL when it fails.
 */
int lsmi__assemble(const lsmi__arrays_t *as, const lsmi_limits_t *lim,
                   lsmi_dataset_t **out, lsmi_read_info_t *info,
                   lsmi_error_t *err);

/* Adds a printf note to info (NULL: none), as far as its room goes. */
void lsmi__note(lsmi_read_info_t *info, const char *fmt, ...) LSMI_PRINTF(2, 3);

/*
 * The readers. Each reads a whole file held in buf (borrowed; must outlive
 * `as`) and fills `as`. Statuses as in lsmi.h.
 */
int lsmi__read_npz(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err);
int lsmi__read_npy(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err);
int lsmi__read_pt(const unsigned char *buf, size_t len,
                  const lsmi_limits_t *lim, lsmi__arrays_t *as,
                  lsmi_error_t *err);
int lsmi__read_safetensors(const unsigned char *buf, size_t len,
                           const lsmi_limits_t *lim, lsmi__arrays_t *as,
                           lsmi_error_t *err);
int lsmi__read_csv(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err);
int lsmi__read_json(const unsigned char *buf, size_t len,
                    const lsmi_limits_t *lim, lsmi__arrays_t *as,
                    lsmi_error_t *err);

/* Whether a zip member's name is that of a torch.save pickle: "data.pkl"
 * or "<dir>/data.pkl" (pt.c). */
bool lsmi__pt_is_pickle(const char *name);

/*
 * Parses one .npy image (buf, len) into *a (data borrowed from buf), with
 * key `key` for messages; used by the .npz reader for every member and by
 * the single-file reader. Structured dtypes are UNSUPPORTED here.
 */
int lsmi__npy_parse(const unsigned char *buf, size_t len, const char *key,
                    const lsmi_limits_t *lim, lsmi__array_t *a,
                    lsmi_error_t *err);

/*
 * The whole read of an in-memory file: detect (or use `fmt` when it is not
 * UNKNOWN), read with opts (NULL: the usual names, no val drawn), assemble,
 * draw val if the file has none and opts asks for it, validate. The buffer
 * entry point behind lsmi_dataset_read_ex and the fuzz harnesses; info may
 * be NULL.
 */
int lsmi__dataset_read_buffer(const unsigned char *buf, size_t len,
                              lsmi_format_t fmt, const lsmi_limits_t *lim,
                              const lsmi_read_options_t *opts,
                              lsmi_dataset_t **out, lsmi_read_info_t *info,
                              lsmi_error_t *err);

/* Overflow-checked arithmetic on sizes read from files. */
static inline bool lsmi__mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
static inline bool lsmi__add_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

/* Whether this machine stores numbers big end first. */
static inline bool lsmi__host_big_endian(void) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return true;
#else
  return false;
#endif
}

/* Little-endian loads from unaligned bytes. */
static inline uint16_t lsmi__le16(const unsigned char *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t lsmi__le32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}
static inline uint64_t lsmi__le64(const unsigned char *p) {
  return (uint64_t)lsmi__le32(p) | ((uint64_t)lsmi__le32(p + 4) << 32);
}

#endif
