/*
 * lsmi.h — the public interface of the lsmi core library.
 *
 * The core estimates, for every sample (x1, x2, y) of a two-modality feature
 * dataset, the pointwise redundancy r, uniqueness u1 and u2 and synergy s of
 * the LSMI estimator (Yang, Wang, Hu, ICML 2025), with KNIFE (Pichler et al.
 * 2022) for the pointwise entropies. It is C11 + libm + CBLAS (+ zlib and
 * jansson inside the file readers only) and knows nothing of HTTP, SQLite or
 * libuv: the `lsmi` command line and the daemon are thin shells over it.
 *
 * Conventions (see STYLE.md):
 *  - every call that can fail returns an lsmi status: 0 is success, negative
 *    values come from the one table LSMI_STATUS_MAP below;
 *  - an optional lsmi_error_t* (may be NULL) receives a message and the field,
 *    key or parameter the error concerns;
 *  - create/destroy pairs; destroy(NULL) is a no-op;
 *  - pointer parameters are borrowed unless the comment says taken.
 *
 * The header is grouped by topic: status and errors, parameters, datasets and
 * readers, fitting and results, decomposition helpers.
 */
#ifndef LSMI_H
#define LSMI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSMI_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

/*
 * X(name, value, http_status, message). The HTTP column is what the daemon
 * answers when a request fails with that status; the core ignores it.
 */
#define LSMI_STATUS_MAP(X)                                                     \
  X(OK, 0, 200, "success")                                                     \
  X(ERR_NOMEM, -1, 503, "out of memory")                                       \
  X(ERR_INVALID, -2, 422, "invalid parameter")                                 \
  X(ERR_IO, -3, 500, "input/output error")                                     \
  X(ERR_FORMAT, -4, 400, "malformed file")                                     \
  X(ERR_UNSUPPORTED, -5, 415, "unsupported format or feature")                 \
  X(ERR_SHAPE, -6, 422, "array shape does not fit")                            \
  X(ERR_DATA, -7, 422, "invalid data value")                                   \
  X(ERR_LIMIT, -8, 413, "limit exceeded")                                      \
  X(ERR_MISSING, -9, 422, "required key missing")                              \
  X(ERR_DIVERGED, -10, 422, "training diverged (non-finite loss)")             \
  X(ERR_CANCELLED, -11, 409, "cancelled")                                      \
  X(ERR_THREAD, -12, 500, "could not start a thread")

typedef enum lsmi_status {
#define LSMI__STATUS_ENUM(name, value, http, msg) LSMI_##name = (value),
  LSMI_STATUS_MAP(LSMI__STATUS_ENUM)
#undef LSMI__STATUS_ENUM
} lsmi_status_t;

/* "ERR_NOMEM" etc.; "UNKNOWN" for a value not in the table. Static strings. */
const char *lsmi_status_name(int status);
/* The table's message; a static string. */
const char *lsmi_status_message(int status);
/* The table's HTTP status (500 for a value not in the table). */
int lsmi_status_http(int status);

/*
 * Where an error happened and why. `field` names the parameter, file key or
 * column concerned ("" when none); `message` is a full sentence for a human.
 */
typedef struct lsmi_error {
  int status;
  char field[64];
  char message[512];
} lsmi_error_t;

/*
 * Fills *err (if not NULL) with status, field (may be NULL) and a printf
 * message, and returns status, so that `return lsmi_error_set(...)` works.
 */
int lsmi_error_set(lsmi_error_t *err, int status, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */
/* ------------------------------------------------------------------------ */

typedef enum lsmi_prior {
  LSMI_PRIOR_UNIFORM = 0,  /* log p(y) = -log C (the published script) */
  LSMI_PRIOR_EMPIRICAL = 1 /* log p(y) = log of train class frequency   */
} lsmi_prior_t;

/*
 * Every hyper-parameter of the estimator (DESIGN.md section 2). Obtain the
 * published defaults with lsmi_params_default().
 */
typedef struct lsmi_params {
  uint64_t seed;            /* 0 */
  int hidden;               /* 64: MLP hidden width */
  int epochs_discriminator; /* 30 */
  double lr_discriminator;  /* 1e-3 */
  int step_discriminator;   /* 15: StepLR step in epochs */
  double gamma;             /* 0.1: StepLR factor, both optimizers */
  int batch_size;           /* 32, both trainings */
  int threads;              /* 0 = all online cores */
  int components;           /* 5: KNIFE mixture components K */
  int epochs_entropy;       /* 30 */
  double lr_entropy;        /* 1e-3 */
  int step_entropy;         /* 20 */
  lsmi_prior_t prior;       /* uniform */
  bool adjust;              /* true: mean adjustment per split */
  double val_fraction;      /* 0 = none; else (0, 1): split train when the
                               file has no val split */
} lsmi_params_t;

void lsmi_params_default(lsmi_params_t *p);

/* Checks every field against its documented range; the error names it. */
int lsmi_params_validate(const lsmi_params_t *p, lsmi_error_t *err);

typedef enum lsmi_param_type {
  LSMI_PARAM_INT,    /* int field */
  LSMI_PARAM_UINT64, /* uint64_t field */
  LSMI_PARAM_DOUBLE, /* double field */
  LSMI_PARAM_BOOL,   /* bool field */
  LSMI_PARAM_PRIOR   /* lsmi_prior_t field, text "uniform" | "empirical" */
} lsmi_param_type_t;

/*
 * One row per parameter: its JSON name (the CLI flag is the same with '-'
 * for '_'), type, byte offset in lsmi_params_t, inclusive numeric range and
 * a one-line help text. `min_exclusive` marks ranges open at min.
 */
typedef struct lsmi_param_desc {
  const char *name;
  lsmi_param_type_t type;
  size_t offset;
  double min, max;
  bool min_exclusive;
  const char *help;
} lsmi_param_desc_t;

/* The static table; *count receives its length. */
const lsmi_param_desc_t *lsmi_params_table(size_t *count);
/* Row for `name` (JSON spelling, or CLI spelling with '-'), NULL if none. */
const lsmi_param_desc_t *lsmi_params_find(const char *name);
/* Parses `text` for parameter `name` and stores it (range-checked). */
int lsmi_params_set(lsmi_params_t *p, const char *name, const char *text,
                    lsmi_error_t *err);
/* Stores a number for `name` (int/uint64/double/bool types; range-checked). */
int lsmi_params_set_number(lsmi_params_t *p, const char *name, double value,
                           lsmi_error_t *err);
/* Reads parameter `name` as a number (prior: 0/1); NAN if unknown. */
double lsmi_params_get_number(const lsmi_params_t *p, const char *name);

/* ------------------------------------------------------------------------ */
/* Datasets                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * One split: n rows of features in one compact float32 row-major buffer
 * x (n, d1 + d2) whose first d1 columns are modality 1 and last d2 columns
 * modality 2, and labels y (n) in [0, classes).
 */
typedef struct lsmi_split {
  size_t n;
  float *x;   /* (n, d1 + d2) */
  int32_t *y; /* (n) */
} lsmi_split_t;

typedef struct lsmi_dataset {
  size_t d1, d2;
  int classes;
  lsmi_split_t train, val;
} lsmi_dataset_t;

/*
 * Allocates a dataset with uninitialised buffers of the given sizes
 * (n_val may be 0). Returns NULL (and sets err) on overflow or no memory.
 */
lsmi_dataset_t *lsmi_dataset_create(size_t n_train, size_t n_val, size_t d1,
                                    size_t d2, int classes, lsmi_error_t *err);
void lsmi_dataset_destroy(lsmi_dataset_t *ds);

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

void lsmi_limits_default(lsmi_limits_t *lim);

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
const char *lsmi_format_name(lsmi_format_t f);

/* Guesses the format from the first `len` bytes of a file (magic bytes). */
lsmi_format_t lsmi_format_detect(const unsigned char *head, size_t len);

/*
 * Reads and validates a dataset file of any supported format (detected from
 * its content). When the file has no val split and val_fraction is in
 * (0, 1), a seeded stratified split of train makes one; with no val split
 * and val_fraction 0 it fails with LSMI_ERR_MISSING. *out receives a new
 * dataset (taken by the caller), *format (may be NULL) the detected format.
 */
int lsmi_dataset_read(const char *path, const lsmi_limits_t *lim,
                      double val_fraction, uint64_t seed, lsmi_dataset_t **out,
                      lsmi_format_t *format, lsmi_error_t *err);

/*
 * The checks every reader runs after reading: row counts, finite features
 * (the error names the key and first bad row), labels in [0, classes), every
 * class present in train with at least lim->min_rows_per_class rows.
 */
int lsmi_dataset_validate(const lsmi_dataset_t *ds, const lsmi_limits_t *lim,
                          lsmi_error_t *err);

/*
 * SHA-256 of the dataset's content in a canonical form (shapes, classes,
 * float32 features, int32 labels, little endian): the same numbers read from
 * any format give the same hash. out: 32 bytes.
 */
void lsmi_dataset_hash(const lsmi_dataset_t *ds, unsigned char out[32]);

/*
 * Writes ds as an uncompressed .npz with keys train_x1, train_x2, train_y,
 * val_x1, val_x2, val_y (float32 features, int64 labels); atomically (temp
 * name, fsync, rename).
 */
int lsmi_dataset_write_npz(const lsmi_dataset_t *ds, const char *path,
                           lsmi_error_t *err);

/* ------------------------------------------------------------------------ */
/* Demo data (DESIGN.md section 6)                                          */
/* ------------------------------------------------------------------------ */

typedef enum lsmi_synth_kind {
  LSMI_SYNTH_GAUSSIAN,
  LSMI_SYNTH_REDUNDANCY,
  LSMI_SYNTH_UNIQUENESS,
  LSMI_SYNTH_SYNERGY
} lsmi_synth_kind_t;

/* Parses "gaussian" etc.; returns LSMI_ERR_INVALID for another name. */
int lsmi_synth_kind_parse(const char *name, lsmi_synth_kind_t *kind);

/*
 * Makes n samples (0.8 n train, the rest val) of the given kind with the
 * given seed. Gaussian: C=2, rho 0.5, sigma 0.5; bit kinds: noise 0.1.
 */
int lsmi_synth(lsmi_synth_kind_t kind, size_t n, uint64_t seed,
               lsmi_dataset_t **out, lsmi_error_t *err);

/* ------------------------------------------------------------------------ */
/* Fitting and results                                                      */
/* ------------------------------------------------------------------------ */

typedef enum lsmi_phase {
  LSMI_PHASE_TRAIN = 0, /* the five models train, in parallel */
  LSMI_PHASE_EVALUATE,  /* pointwise MI and entropy on both splits */
  LSMI_PHASE_DONE
} lsmi_phase_t;

/* "train", "evaluate", "done". */
const char *lsmi_phase_name(lsmi_phase_t phase);

/*
 * A snapshot of a fit's progress. The discriminators and the KNIFE kernels
 * train at the same time, so each family has its own epoch counter; an
 * epoch of a family is complete when all its models completed it.
 */
typedef struct lsmi_progress {
  lsmi_phase_t phase;
  int disc_epoch, disc_epochs; /* completed / total discriminator epochs */
  double disc_loss;            /* last complete epoch: mean summed CE */
  int ent_epoch, ent_epochs;   /* completed / total KNIFE epochs */
  double ent_loss;             /* last complete epoch: mean summed -log p */
  double fraction;             /* of the whole fit's work, in [0, 1] */
} lsmi_progress_t;

/*
 * Called at the start, at the end of every epoch of every model (so at
 * least once per epoch even when the models run one after another) and at
 * phase changes, from the fit's threads but never concurrently. Must be
 * quick; returns nonzero to cancel the fit.
 */
typedef int (*lsmi_progress_fn)(void *ctx, const lsmi_progress_t *p);

typedef struct lsmi_fit_hooks {
  lsmi_progress_fn progress; /* may be NULL */
  void *ctx;                 /* passed to progress */
  const atomic_int *cancel;  /* may be NULL; nonzero stops within a batch */
} lsmi_fit_hooks_t;

/* Per-sample columns of one split, in the split's row order. */
typedef struct lsmi_rows {
  size_t n;
  int32_t *y;
  double *r, *u1, *u2, *s;         /* after the mean adjustment (if on) */
  double *i1, *i2, *i12, *h1, *h2; /* the parts, in nats */
} lsmi_rows_t;

/* Means of one split's columns; shift is the adjustment a that was added. */
typedef struct lsmi_summary {
  size_t n;
  double R, U1, U2, S;
  double I1, I2, I12, H1, H2;
  double shift;
} lsmi_summary_t;

typedef struct lsmi_result {
  lsmi_rows_t train, val;
  lsmi_summary_t train_summary, val_summary;
  int threads;                /* threads actually used */
  double seconds_train;       /* wall time of the parallel training */
  double seconds_disc;        /* sum over the three MLPs' thread times */
  double seconds_ent;         /* sum over the two KNIFEs' thread times */
  double seconds_eval;        /* wall time of the evaluation pass */
  double disc_loss, ent_loss; /* last epoch's mean losses */
} lsmi_result_t;

/*
 * Fits the five models on ds->train and evaluates both splits. Same data,
 * params and thread count give bit-identical results. Statuses:
 * LSMI_ERR_INVALID (params; err names the field), LSMI_ERR_NOMEM,
 * LSMI_ERR_DIVERGED, LSMI_ERR_CANCELLED, LSMI_ERR_THREAD. *out receives a
 * new result (taken by the caller) on success.
 */
int lsmi_fit(const lsmi_dataset_t *ds, const lsmi_params_t *p,
             const lsmi_fit_hooks_t *hooks, lsmi_result_t **out,
             lsmi_error_t *err);
void lsmi_result_destroy(lsmi_result_t *res);

/*
 * The kernels of the training and evaluation products: "avx512" (lsmi's own
 * register-tiled kernels, where the CPU has AVX-512F), "blas" (the BLAS for
 * the bulk of each product, plain loops for the rest) or "generic" (plain
 * loops). The best the CPU runs is chosen at the first product;
 * lsmi_kernels_select forces one for the rest of the process and must be
 * called before any fit starts. Returns LSMI_OK, or LSMI_ERR_INVALID (nothing
 * changed) for an unknown name or one this CPU cannot run.
 */
const char *lsmi_kernels_name(void);
int lsmi_kernels_select(const char *name);

/* ------------------------------------------------------------------------ */
/* Decomposition (exposed for tests and for callers with their own parts)   */
/* ------------------------------------------------------------------------ */

/*
 * Per sample: r = min(h1,h2) - min(h1-i1, h2-i2), u1 = i1-r, u2 = i2-r,
 * s = i12 - r - u1 - u2. Inputs and outputs have n elements; outputs must
 * not alias inputs.
 */
void lsmi_decompose(size_t n, const double *i1, const double *i2,
                    const double *i12, const double *h1, const double *h2,
                    double *r, double *u1, double *u2, double *s);

/*
 * The mean adjustment of DESIGN.md section 2 on n samples, in place;
 * returns the shift a that was added to r and s and taken from u1 and u2.
 */
double lsmi_adjust(size_t n, double *r, double *u1, double *u2, double *s);

/* Fills the means of rows into *sum (shift is left as it is). */
void lsmi_summarize(const lsmi_rows_t *rows, lsmi_summary_t *sum);

#ifdef __cplusplus
}
#endif
#endif /* LSMI_H */
