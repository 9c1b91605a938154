/*
 * lsmi_io.h — the public interface of lsmi's dataset files: every format a
 * researcher's features arrive in, read into the estimator's dataset
 * (core/lsmi.h), checked, hashed and written back.
 *
 *     lsmi_limits_t lim;
 *     lsmi_limits_default(&lim);
 *     lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
 *     opt.x1 = "feat_a";                 // which array is which
 *     opt.val_fraction = 0.2;            // drawn when the file has no val
 *     lsmi_dataset_t *ds;
 *     lsmi_read_info_t info;
 *     lsmi_error_t err;
 *     if (lsmi_dataset_read_ex("features.npz", &lim, &opt, &ds, &info, &err))
 *       fprintf(stderr, "%s: %s\n", err.field, err.message);  // the key at
 * fault
 *
 * Formats, detected from the content: .npz, a bundle of .npy arrays, a
 * PyTorch .pt (zip; read by a pickle machine that builds no objects),
 * .safetensors, CSV and JSON. Every size read from a file is checked
 * against lsmi_limits_t before it is multiplied or allocated. The library
 * needs zlib and jansson; the conventions are those of lsmi.h.
 *
 * What a read keeps besides the numbers (core/lsmi.h): each row's
 * position in the file (`row`: the record or data line for CSV and a .npy
 * bundle, counted from 0 over the whole file; else the index in the
 * split's own arrays, in train's arrays when val was drawn), the sample ids
 * of a key or column "id" (or opt.id), and the labels' own values as class
 * names when they were not 0 .. C-1.
 */
#ifndef LSMI_IO_H
#define LSMI_IO_H

#include <stddef.h>
#include <stdint.h>

#include "lsmi.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Limits applied while reading a file; every size read from a file is
 * checked against them before it is multiplied or allocated.
 */
typedef struct lsmi_limits {
  uint64_t max_file_bytes; /* whole input file */
  uint64_t max_rows;       /* per split */
  uint64_t max_dims;       /* d1, d2 each */
  uint64_t max_classes;
  uint64_t max_members;            /* zip members (.npz, .pt) */
  uint64_t max_decompressed_bytes; /* sum over inflated zip members */
  double max_ratio;                /* inflated / compressed per member */
  uint64_t max_header_bytes;       /* npy / safetensors / pickle headers */
  uint64_t min_rows_per_class;     /* in train */
} lsmi_limits_t;

LSMI_API void lsmi_limits_default(lsmi_limits_t *lim);

typedef enum lsmi_format {
  LSMI_FORMAT_UNKNOWN = 0,
  LSMI_FORMAT_NPZ,
  LSMI_FORMAT_NPY,
  LSMI_FORMAT_PT,
  LSMI_FORMAT_SAFETENSORS,
  LSMI_FORMAT_CSV,
  LSMI_FORMAT_JSON
} lsmi_format_t;

/* "npz", "npy", "pt", "safetensors", "csv", "json", "unknown". */
LSMI_API const char *lsmi_format_name(lsmi_format_t f);

/* Guesses the format from the first `len` bytes of a file (magic bytes). */
LSMI_API lsmi_format_t lsmi_format_detect(const unsigned char *head,
                                          size_t len);

/*
 * How to read a file: which key holds each part (in .npz, .pt,
 * .safetensors and JSON a key, in a .npy bundle a field, in CSV a column:
 * x1 and x2 a column name or prefix, "img_" for img_0, img_1, ...; NULL:
 * the usual names, doc/formats.md), and the val split of a file without
 * one. The strings are borrowed for the call.
 */
typedef struct lsmi_read_options {
  const char *x1, *x2, *y, *id;
  double val_fraction;     /* a file without val: draw this fraction of train
                              (0: refuse such a file, LSMI_ERR_MISSING) */
  bool val_fraction_given; /* asked for by the user: a file with its own
                              val split is then LSMI_ERR_INVALID, not a
                              fraction silently unused */
  uint64_t seed;           /* of the drawn split */
} lsmi_read_options_t;

#define LSMI_READ_OPTIONS_INIT                                                 \
  { NULL, NULL, NULL, NULL, 0.0, false, 0 }

#define LSMI_READ_NOTES 4

/* What a read found: the format, and what lsmi did that the file did not
 * say (one-hot labels decoded, features flattened), one sentence each. */
typedef struct lsmi_read_info {
  lsmi_format_t format;
  int nnotes;
  char notes[LSMI_READ_NOTES][200];
} lsmi_read_info_t;

/*
 * Reads and validates a dataset file of any supported format (detected from
 * its content), with opts (NULL: LSMI_READ_OPTIONS_INIT). A file without a
 * val split gets one from lsmi_dataset_split_val (opts->val_fraction,
 * opts->seed; ds->val_drawn says so). *out receives a new dataset (taken
 * by the caller); *info (may be NULL) what the read found. A refused
 * file's message says what the file holds and which option fixes it.
 */
LSMI_API int lsmi_dataset_read_ex(const char *path, const lsmi_limits_t *lim,
                                  const lsmi_read_options_t *opts,
                                  lsmi_dataset_t **out, lsmi_read_info_t *info,
                                  lsmi_error_t *err);

/*
 * lsmi_dataset_read_ex with the usual names and val_fraction, seed as
 * given (val_fraction not marked as given: a file with its own val split
 * keeps it); *format (may be NULL) receives the detected format.
 */
LSMI_API int lsmi_dataset_read(const char *path, const lsmi_limits_t *lim,
                               double val_fraction, uint64_t seed,
                               lsmi_dataset_t **out, lsmi_format_t *format,
                               lsmi_error_t *err);

/*
 * The checks every reader runs after reading: row counts, finite features
 * (the error names the key and first bad row), labels in [0, classes), every
 * class present in train with at least lim->min_rows_per_class rows (the
 * error names the class by its name when it has one).
 */
LSMI_API int lsmi_dataset_validate(const lsmi_dataset_t *ds,
                                   const lsmi_limits_t *lim, lsmi_error_t *err);

/*
 * SHA-256 of the dataset's content in a canonical form (shapes, classes,
 * float32 features, int32 labels, little endian): the same numbers read from
 * any format give the same hash; ids, rows and class names do not count.
 * out: 32 bytes.
 */
LSMI_API void lsmi_dataset_hash(const lsmi_dataset_t *ds,
                                unsigned char out[32]);

/*
 * Writes ds as an uncompressed .npz with keys train_x1, train_x2, train_y,
 * val_x1, val_x2, val_y (float32 features, int64 labels); the file appears
 * whole under `path` or not at all (temp name, fsync, rename, fsync of the
 * directory).
 */
LSMI_API int lsmi_dataset_write_npz(const lsmi_dataset_t *ds, const char *path,
                                    lsmi_error_t *err);

/* An extra integer column of an .npz: name (without .npy) and n values. */
typedef struct lsmi_npz_column {
  const char *name;
  const int32_t *data;
  size_t n;
} lsmi_npz_column_t;

/* lsmi_dataset_write_npz with nextra more int64 members after the six (a
 * synthetic set's per-sample regimes, say; readers ignore such keys). */
LSMI_API int lsmi_dataset_write_npz_ex(const lsmi_dataset_t *ds,
                                       const lsmi_npz_column_t *extra,
                                       size_t nextra, const char *path,
                                       lsmi_error_t *err);

#ifdef __cplusplus
}
#endif
#endif /* LSMI_IO_H */
