/*
 * dsio.h — what the dataset readers share (internal).
 *
 * Every reader (npz, npy, pt, safetensors, csv, json) turns the bytes of a
 * file into at most six typed, strided arrays, one per role (train x1, x2, y
 * and val x1, x2, y), and hands them to lsmi__assemble(), which checks their
 * shapes, converts them to the compact float32 / int32 dataset and names the
 * file's own key in every error. So the checks that matter (shapes, finite
 * values, labels) are written once, and a reader's only job is to find its
 * arrays and prove that each one lies inside the bytes it points to.
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

/* The six roles, in the order of the canonical names. */
enum {
  LSMI__TRAIN_X1 = 0,
  LSMI__TRAIN_X2,
  LSMI__TRAIN_Y,
  LSMI__VAL_X1,
  LSMI__VAL_X2,
  LSMI__VAL_Y,
  LSMI__ROLES
};

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
  LSMI__DT_F64
} lsmi__dtype_t;

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
} lsmi__arrays_t;

/* Canonical short names: "train_x1" ... "val_y". */
extern const char *const lsmi__role_names[LSMI__ROLES];

/*
 * The role of a key: the reference names (train_modal_1_features, ...,
 * val_targets) and the short aliases (train_x1, ..., val_y); -1 for any
 * other key, which readers ignore.
 */
int lsmi__key_role(const char *key);

void lsmi__arrays_init(lsmi__arrays_t *as);
/* Takes `p` (malloc'ed): freed by lsmi__arrays_free. NOMEM if full (p is
 * freed then too). */
int lsmi__arrays_own(lsmi__arrays_t *as, void *p, lsmi_error_t *err);
void lsmi__arrays_free(lsmi__arrays_t *as);
/* Notes that the file holds `key` (as far as the message buffer allows), so
 * that a missing-key error can say what the file has instead. */
void lsmi__arrays_seen(lsmi__arrays_t *as, const char *key);

/*
 * Checks `a` (shape against the limits: dim 0 against max_rows, dim 1
 * against max_dims; rank at most 2; every element inside data_len and no
 * more elements than data_len holds, so no expanded view; all in
 * overflow-safe arithmetic) and stores it in the slot of `role`. A role
 * of -1 is ignored. A second array for the same role is a FORMAT error
 * naming both keys.
 */
int lsmi__arrays_put(lsmi__arrays_t *as, int role, const lsmi__array_t *a,
                     const lsmi_limits_t *lim, lsmi_error_t *err);

/* Bytes per element of a dtype. */
size_t lsmi__dtype_size(lsmi__dtype_t dt);
/* Short name for messages: "float32", "bfloat16", ... */
const char *lsmi__dtype_name(lsmi__dtype_t dt);
/* The element starting at byte `pos` of a->data, converted to double. */
double lsmi__array_get(const lsmi__array_t *a, uint64_t pos);
/* "(3, 4)" into buf. */
void lsmi__shape_str(const lsmi__array_t *a, char *buf, size_t len);
/* Fills C-order (row-major) byte strides from the shape and dtype. */
void lsmi__strides_c(lsmi__array_t *a);

/*
 * Builds a dataset from the arrays: train must be complete; val is either
 * complete or absent (an empty val counts as absent). Checks shapes, labels
 * (integral, in [0, max_classes)) and features (finite in float32), naming
 * the file's key and the first bad row. *out is NULL when it fails.
 */
int lsmi__assemble(const lsmi__arrays_t *as, const lsmi_limits_t *lim,
                   lsmi_dataset_t **out, lsmi_error_t *err);

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
 * UNKNOWN), read, assemble, split off val if asked, validate. The buffer
 * entry point behind lsmi_dataset_read and the fuzz harnesses.
 */
int lsmi__dataset_read_buffer(const unsigned char *buf, size_t len,
                              lsmi_format_t fmt, const lsmi_limits_t *lim,
                              double val_fraction, uint64_t seed,
                              lsmi_dataset_t **out, lsmi_format_t *format,
                              lsmi_error_t *err);

/*
 * Moves a seeded, stratified val_fraction of ds->train into a new val split
 * (ds must have no val rows); rows keep their relative order. *out is a new
 * dataset; ds is left as it was.
 */

/* Overflow-checked arithmetic on sizes read from files. */
static inline bool lsmi__mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
static inline bool lsmi__add_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
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
