/*
 * lsmi.h — the public interface of the lsmi estimator library.
 *
 * For every sample (x1, x2, y) of a two-modality feature dataset, lsmi
 * estimates the pointwise redundancy r, uniqueness u1 and u2 and synergy s
 * of the LSMI estimator (Yang, Wang, Hu, ICML 2025), with KNIFE (Pichler et
 * al. 2022) for the pointwise entropies. The library is C11 + libm +
 * pthreads (OpenBLAS is opened at run time only where its kernels are
 * chosen); it parses no files (io/lsmi_io.h does) and knows nothing of
 * HTTP, SQL or event loops.
 *
 *     lsmi_dataset_t *ds = lsmi_dataset_create(n_train, n_val, d1, d2, C,
 * NULL);
 *     ...fill ds->train.x (n_train, d1 + d2), ds->train.y, and ds->val...
 *     lsmi_params_t p;
 *     lsmi_params_default(&p);                  // the published recipe
 *     lsmi_result_t *res;
 *     lsmi_error_t err;
 *     if (lsmi_fit(ds, &p, NULL, &res, &err) != LSMI_OK)
 *       fprintf(stderr, "%s: %s\n", err.field, err.message);
 *     else
 *       printf("val S = %g nats\n", res->val_summary.S);  // res->val.s[i]: per
 * sample lsmi_result_destroy(res); lsmi_dataset_destroy(ds);
 *
 * Conventions:
 *  - every call that can fail returns an lsmi status: 0 is success, negative
 *    values come from the one table LSMI_STATUS_MAP below;
 *  - an optional lsmi_error_t* (may be NULL) receives a message and the field,
 *    key or parameter the error concerns;
 *  - create/destroy pairs; destroy(NULL) is a no-op;
 *  - pointer parameters are borrowed unless the comment says taken;
 *  - lsmi_ is public; lsmi__ and everything not declared here is internal
 *    and not exported.
 *
 * The header is grouped by topic: status and errors, parameters, datasets,
 * fitting and results, decomposition helpers, kernels.
 */
#ifndef LSMI_H
#define LSMI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSMI_VERSION "0.1.0"

/* What the library exports; everything else is built hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define LSMI_API __attribute__((visibility("default")))
#define LSMI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define LSMI_API
#define LSMI_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

/*
 * X(name, value, message): every status of the library and of the programs
 * built on it (the daemon maps them to HTTP in its own table).
 */
#define LSMI_STATUS_MAP(X)                                                     \
  X(OK, 0, "success")                                                          \
  X(ERR_NOMEM, -1, "out of memory")                                            \
  X(ERR_INVALID, -2, "invalid parameter")                                      \
  X(ERR_IO, -3, "input/output error")                                          \
  X(ERR_FORMAT, -4, "malformed file")                                          \
  X(ERR_UNSUPPORTED, -5, "unsupported format or feature")                      \
  X(ERR_SHAPE, -6, "array shape does not fit")                                 \
  X(ERR_DATA, -7, "invalid data value")                                        \
  X(ERR_LIMIT, -8, "limit exceeded")                                           \
  X(ERR_MISSING, -9, "required key missing")                                   \
  X(ERR_DIVERGED, -10, "training diverged (non-finite loss)")                  \
  X(ERR_CANCELLED, -11, "cancelled")                                           \
  X(ERR_THREAD, -12, "could not start a thread")                               \
  X(ERR_NOTFOUND, -13, "not found")                                            \
  X(ERR_CONFLICT, -14, "conflicts with the current state")                     \
  X(ERR_BUSY, -15, "busy: try again later")                                    \
  X(ERR_SHUTDOWN, -16, "shutting down")                                        \
  X(ERR_UNAVAILABLE, -17, "the database is unavailable: try again later")      \
  X(ERR_NOSPACE, -18, "no space left: the disk or a storage quota is full")

typedef enum lsmi_status {
#define LSMI__STATUS_ENUM(name, value, msg) LSMI_##name = (value),
  LSMI_STATUS_MAP(LSMI__STATUS_ENUM)
#undef LSMI__STATUS_ENUM
} lsmi_status_t;

/* "ERR_NOMEM" etc.; "UNKNOWN" for a value not in the table. Static strings. */
LSMI_API const char *lsmi_status_name(int status);
/* The table's message; a static string. */
LSMI_API const char *lsmi_status_message(int status);

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
LSMI_API int lsmi_error_set(lsmi_error_t *err, int status, const char *field,
                            const char *fmt, ...) LSMI_PRINTF(4, 5);

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */
/* ------------------------------------------------------------------------ */

typedef enum lsmi_prior {
  LSMI_PRIOR_UNIFORM = 0,  /* log p(y) = -log C (the published script) */
  LSMI_PRIOR_EMPIRICAL = 1 /* log p(y) = log of train class frequency   */
} lsmi_prior_t;

typedef enum lsmi_preset {
  LSMI_PRESET_PUBLISHED = 0, /* the published recipe, bit for bit */
  LSMI_PRESET_ROBUST = 1     /* lsmi's measured best (doc/accuracy.md) */
} lsmi_preset_t;

typedef enum lsmi_knife_init {
  LSMI_KNIFE_INIT_RANDOM = 0, /* means, logvar, tri ~ N(0, 1) (published) */
  LSMI_KNIFE_INIT_DATA = 1    /* standardised inputs, means from train rows */
} lsmi_knife_init_t;

/*
 * Every hyper-parameter of the estimator. lsmi_params_default() gives the
 * published recipe (the paper's script, bit for bit); the fields from
 * `ensemble` on go beyond it.
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
  lsmi_preset_t preset;     /* published; see lsmi_params_preset */
  int ensemble;             /* 1: members with seeds seed .. seed+E-1 */
  bool early_stopping;      /* false: score every model on a held-out part
                               of train after each epoch, keep the best */
  double holdout_fraction;  /* 0.1: that part (stratified, seeded) */
  int patience;             /* 3: epochs without improvement before a stop */
  int folds;                /* 0 = off; F >= 2: cross-fitting */
  lsmi_knife_init_t knife_init; /* random */
} lsmi_params_t;

LSMI_API void lsmi_params_default(lsmi_params_t *p);

/* Checks every field against its documented range; the error names it. */
LSMI_API int lsmi_params_validate(const lsmi_params_t *p, lsmi_error_t *err);

typedef enum lsmi_param_type {
  LSMI_PARAM_INT,    /* int field */
  LSMI_PARAM_UINT64, /* uint64_t field */
  LSMI_PARAM_DOUBLE, /* double field */
  LSMI_PARAM_BOOL,   /* bool field */
  LSMI_PARAM_ENUM    /* an enum field, set and shown by the names in choices */
} lsmi_param_type_t;

/*
 * One row per parameter: its JSON name (the CLI flag is the same with '-'
 * for '_'), type, byte offset in lsmi_params_t, inclusive numeric range and
 * a one-line help text. `min_exclusive` marks ranges open at min. An enum's
 * `choices` are its values' names, in value order, NULL-terminated.
 */
typedef struct lsmi_param_desc {
  const char *name;
  lsmi_param_type_t type;
  size_t offset;
  double min, max;
  bool min_exclusive;
  const char *help;
  const char *const *choices;
} lsmi_param_desc_t;

/* The static table; *count receives its length. */
LSMI_API const lsmi_param_desc_t *lsmi_params_table(size_t *count);
/* Row for `name` (JSON spelling, or CLI spelling with '-'), NULL if none. */
LSMI_API const lsmi_param_desc_t *lsmi_params_find(const char *name);
/* Parses `text` for parameter `name` and stores it (range-checked). */
LSMI_API int lsmi_params_set(lsmi_params_t *p, const char *name,
                             const char *text, lsmi_error_t *err);
/* Stores a number for `name` (int/uint64/double/bool types; range-checked). */
LSMI_API int lsmi_params_set_number(lsmi_params_t *p, const char *name,
                                    double value, lsmi_error_t *err);
/* Reads parameter `name` as a number (an enum: its value); NAN if unknown. */
LSMI_API double lsmi_params_get_number(const lsmi_params_t *p,
                                       const char *name);
/*
 * Writes parameter `name` as text (an enum's name, "true"/"false", an
 * integer, or a double with 17 significant digits at most) into buf;
 * returns buf, or NULL for an unknown name.
 */
LSMI_API const char *lsmi_params_format(const lsmi_params_t *p,
                                        const char *name, char *buf,
                                        size_t len);

/*
 * Sets `preset` and the fields it stands for: "published" the defaults of
 * the published recipe for ensemble, early_stopping, holdout_fraction,
 * patience, folds and knife_init; "robust" lsmi's measured best for them
 * (doc/accuracy.md). The other fields are left as they are. Callers that
 * take a preset together with explicit parameters apply the preset first,
 * so that explicit parameters win. lsmi_params_set(p, "preset", NAME)
 * does the same.
 */
LSMI_API void lsmi_params_preset(lsmi_params_t *p, lsmi_preset_t preset);

/* ------------------------------------------------------------------------ */
/* Datasets                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * One split: n rows of features in one compact float32 row-major buffer
 * x (n, d1 + d2) whose first d1 columns are modality 1 and last d2 columns
 * modality 2, and labels y (n) in [0, classes). Every row also says where
 * it came from, so that results join back to the researcher's rows: `row`
 * its position in the file it was read from (io/lsmi_io.h says per
 * format), and `id` the sample id the file gave it, if any.
 */
typedef struct lsmi_split {
  size_t n;
  float *x;      /* (n, d1 + d2) */
  int32_t *y;    /* (n) */
  uint64_t *row; /* (n): position in the file; create fills 0 .. n-1 */
  char **id;     /* (n) NUL-terminated sample ids, or NULL: none */
} lsmi_split_t;

/*
 * A dataset owns everything its pointers reach; the optional parts (id,
 * class_names, each string) are malloc'ed and freed by
 * lsmi_dataset_destroy, so a reader may fill them after create.
 */
typedef struct lsmi_dataset {
  size_t d1, d2;
  int classes;
  lsmi_split_t train, val;
  /* (classes) the file's label of each class index, in sorted order, or
   * NULL when the file's labels were the indices 0 .. classes-1 themselves */
  char **class_names;
  bool class_names_numeric; /* every class name is an integer's text */
  bool id_numeric;          /* every id is an integer's text */
  bool val_drawn; /* val was drawn from train (lsmi_dataset_split_val), not
                     read from the file */
} lsmi_dataset_t;

/*
 * Allocates a dataset with uninitialised features and labels of the given
 * sizes (n_val may be 0), rows 0 .. n-1 in each split, and no ids or class
 * names. Returns NULL (and sets err) on overflow or no memory.
 */
LSMI_API lsmi_dataset_t *lsmi_dataset_create(size_t n_train, size_t n_val,
                                             size_t d1, size_t d2, int classes,
                                             lsmi_error_t *err);
LSMI_API void lsmi_dataset_destroy(lsmi_dataset_t *ds);

/*
 * A new dataset (taken by the caller) with ds->train drawn again from
 * ds->train minus a seeded, stratified val split: per class, in class
 * order, that class's rows are shuffled with the seed's split stream and
 * the first round(val_fraction * count) go to val (at least one row of
 * each class stays in train). Each row keeps its row, id and label; the
 * class names are copied and val_drawn is set. ds->val is not used.
 * LSMI_ERR_INVALID when no row would go to val.
 */
LSMI_API int lsmi_dataset_split_val(const lsmi_dataset_t *ds,
                                    double val_fraction, uint64_t seed,
                                    lsmi_dataset_t **out, lsmi_error_t *err);

/* ------------------------------------------------------------------------ */
/* Demo data                                                                */
/* ------------------------------------------------------------------------ */

typedef enum lsmi_synth_kind {
  LSMI_SYNTH_GAUSSIAN,
  LSMI_SYNTH_REDUNDANCY,
  LSMI_SYNTH_UNIQUENESS,
  LSMI_SYNTH_SYNERGY,
  LSMI_SYNTH_MIXED
} lsmi_synth_kind_t;

/* Parses "gaussian" etc.; returns LSMI_ERR_INVALID for another name. */
LSMI_API int lsmi_synth_kind_parse(const char *name, lsmi_synth_kind_t *kind);

/*
 * Makes n samples (0.8 n train, the rest val) of the given kind with the
 * given seed. Gaussian: C=2, rho 0.5, sigma 0.5; bit kinds: noise 0.1.
 * Equal to lsmi_synth_make with dim 0.
 */
LSMI_API int lsmi_synth(lsmi_synth_kind_t kind, size_t n, uint64_t seed,
                        lsmi_dataset_t **out, lsmi_error_t *err);

/* The interaction that carries a synthetic sample's label. */
enum {
  LSMI_REGIME_NONE = -1,      /* gaussian: a blend, no single regime */
  LSMI_REGIME_REDUNDANT = 0,  /* both modalities carry y */
  LSMI_REGIME_UNIQUE1 = 1,    /* only x1 carries y */
  LSMI_REGIME_UNIQUE2 = 2,    /* only x2 carries y */
  LSMI_REGIME_SYNERGISTIC = 3 /* only the two together: y = b1 XOR b2 */
};

typedef struct lsmi_synth_spec {
  lsmi_synth_kind_t kind;
  size_t n;   /* samples: floor(0.8 n) train, the rest val */
  size_t dim; /* 0: the kind's own 2 features per modality; else each
                 modality padded to dim with N(0, 1) noise features */
  uint64_t seed;
} lsmi_synth_spec_t;

/*
 * Makes a synthetic dataset; *regime (may be NULL) receives a new array
 * (free() it) of the n samples' LSMI_REGIME_* (train rows, then val).
 *
 * mixed: every sample draws one of the four regimes uniformly, and its
 * tag feature (-3, -1, 1, 3 in both modalities; noise 0.5) says which:
 * redundant samples carry y as a bit (+-1, noise 0.4) in both x1 and x2,
 * synergistic ones y = b1 XOR b2 with b1 in x1 and b2 in x2, unique ones y
 * in one modality and in the other a near-constant vector (noise 0.05 in
 * every feature: a blank modality, as common as it is uninformative). So
 * the regime says which atom carries a sample's label: r, u1, u2 or s
 * (with the true densities about ln 2 of it, less what the noise hides).
 * Noise features: 0.1. bench/robust.py computes the exact LSMI values of
 * the true densities.
 */
LSMI_API int lsmi_synth_make(const lsmi_synth_spec_t *spec,
                             lsmi_dataset_t **out, int32_t **regime,
                             lsmi_error_t *err);

/* ------------------------------------------------------------------------ */
/* Fitting and results                                                      */
/* ------------------------------------------------------------------------ */

typedef enum lsmi_phase {
  LSMI_PHASE_TRAIN = 0, /* the five models train, in parallel */
  LSMI_PHASE_EVALUATE,  /* pointwise MI and entropy on both splits */
  LSMI_PHASE_DONE
} lsmi_phase_t;

/* "train", "evaluate", "done". */
LSMI_API const char *lsmi_phase_name(lsmi_phase_t phase);

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

/* The share of `fraction` that training takes (evaluation has the rest):
 * while a fit trains, fraction / LSMI_PROGRESS_TRAIN_SHARE is the share of
 * its training work done, counted in model epochs weighted by their cost. */
#define LSMI_PROGRESS_TRAIN_SHARE 0.95

/*
 * Called at the start, at the end of every epoch of every model (so at
 * least once per epoch even when the models run one after another) and at
 * phase changes, from the fit's threads but never concurrently. Must be
 * quick; returns nonzero to cancel the fit.
 */
typedef int (*lsmi_progress_fn)(void *ctx, const lsmi_progress_t *p);

/*
 * Polled between batches by every training and evaluation thread, so it
 * may run concurrently with itself: it must be thread-safe and quick (an
 * atomic load). Nonzero stops the fit within a batch (LSMI_ERR_CANCELLED).
 */
typedef int (*lsmi_cancel_fn)(void *ctx);

typedef struct lsmi_fit_hooks {
  lsmi_progress_fn progress; /* may be NULL */
  lsmi_cancel_fn cancelled;  /* may be NULL */
  void *ctx;                 /* passed to both */
} lsmi_fit_hooks_t;

/*
 * Per-sample columns of one split, in the split's row order. With an
 * ensemble (E >= 2 members) every column is the mean over the members, and
 * the *_sd columns hold the members' standard deviation (n - 1 divisor) of
 * r, u1, u2 and s; with one member they are NULL.
 */
typedef struct lsmi_rows {
  size_t n;
  int32_t *y;
  double *r, *u1, *u2, *s;             /* after the mean adjustment (if on) */
  double *i1, *i2, *i12, *h1, *h2;     /* the parts, in nats */
  double *r_sd, *u1_sd, *u2_sd, *s_sd; /* ensembles only, else NULL */
} lsmi_rows_t;

/* The split means that get an interval, in this order. */
enum {
  LSMI_CI_R,
  LSMI_CI_U1,
  LSMI_CI_U2,
  LSMI_CI_S,
  LSMI_CI_I1,
  LSMI_CI_I2,
  LSMI_CI_I12,
  LSMI_CI_COUNT
};

/* "R", "U1", "U2", "S", "I1", "I2", "I12"; NULL out of range. */
LSMI_API const char *lsmi_ci_name(int k);

/*
 * Means of one split's columns; shift is the adjustment a that was added
 * (the members' mean with an ensemble). With an ensemble, ci[k] is a 95%
 * percentile interval of mean k from a seeded bootstrap that resamples the
 * split's samples and the members together: it covers the spread from
 * which samples were drawn and from the training seeds, not a bias the
 * estimator shares across seeds.
 */
typedef struct lsmi_summary {
  size_t n;
  double R, U1, U2, S;
  double I1, I2, I12, H1, H2;
  double shift;
  bool has_ci;
  double ci[LSMI_CI_COUNT][2]; /* [lo, hi] when has_ci */
} lsmi_summary_t;

/* The five models, in this order. */
enum {
  LSMI_MODEL_F1,     /* discriminator on x1 */
  LSMI_MODEL_F2,     /* discriminator on x2 */
  LSMI_MODEL_F12,    /* discriminator on [x1, x2] */
  LSMI_MODEL_KNIFE1, /* density of x1 */
  LSMI_MODEL_KNIFE2, /* density of x2 */
  LSMI_MODELS
};

/* "f1", "f2", "f12", "knife1", "knife2"; NULL out of range. */
LSMI_API const char *lsmi_model_name(int model);

/* The rows a model is scored on. */
enum {
  LSMI_PART_TRAIN,   /* the train rows it was fitted on */
  LSMI_PART_HOLDOUT, /* the early-stopping part of train */
  LSMI_PART_OOF,     /* cross-fitting: the train fold it never saw */
  LSMI_PART_VAL,     /* the val split */
  LSMI_PARTS
};

/* "train", "holdout", "oof", "val"; NULL out of range. */
LSMI_API const char *lsmi_part_name(int part);

/*
 * How one model fared, averaged over the members (and folds): its loss on
 * each part of the rows (mean cross-entropy for the discriminators, mean
 * -log p(x) for the KNIFE models, nats; NaN where the part is empty), the
 * discriminators' accuracy (NaN for KNIFE), and the epochs whose weights
 * it kept (the best epoch with early stopping, else all of them).
 */
typedef struct lsmi_model_diag {
  double loss[LSMI_PARTS];
  double acc[LSMI_PARTS];
  double epochs; /* mean over members and folds */
  int epochs_min, epochs_max;
} lsmi_model_diag_t;

/* A known failure the numbers show, with what to try. */
typedef struct lsmi_warning {
  char code[32];     /* stable identifier, e.g. "atom_above_log_c" */
  char split[8];     /* "train", "val" or "" (both) */
  char message[400]; /* a sentence for a human, ending with what to try */
} lsmi_warning_t;

#define LSMI_MAX_WARNINGS 24

typedef struct lsmi_result {
  lsmi_rows_t train, val;
  lsmi_summary_t train_summary, val_summary;
  int ensemble, folds; /* as fitted */
  lsmi_model_diag_t diag[LSMI_MODELS];
  int nwarnings;
  lsmi_warning_t warnings[LSMI_MAX_WARNINGS];
  int threads;                /* threads actually used */
  double seconds_train;       /* wall time of the parallel training */
  double seconds_disc;        /* sum over the discriminators' thread times */
  double seconds_ent;         /* sum over the KNIFE models' thread times */
  double seconds_eval;        /* wall time of evaluation and combination */
  double disc_loss, ent_loss; /* last epoch's mean losses */
  /* How evenly training used its threads, in CPU time (which the load of
   * other processes disturbs least): the pool threads' CPU seconds of work
   * (waiting for work not counted) summed and the busiest one's, and the
   * part of the sum spent on steps of a model that another thread held (a
   * thread with nothing left of its own helps a long model's steps).
   * seconds_busy / (threads * seconds_busy_max) is the training's
   * utilisation of its threads. */
  double seconds_busy, seconds_busy_max;
  double seconds_help;
} lsmi_result_t;

/*
 * Fits the models on ds->train and evaluates both splits: E ensemble
 * members (seeds seed .. seed+E-1), each of five models, or of F sets of
 * five with cross-fitting, trained in parallel on the fit's threads. Same
 * data, params and thread count give bit-identical results (the thread
 * count does not change them either). Statuses: LSMI_ERR_INVALID (params;
 * err names the field), LSMI_ERR_NOMEM, LSMI_ERR_DIVERGED,
 * LSMI_ERR_CANCELLED, LSMI_ERR_THREAD. *out receives a new result (taken by
 * the caller) on success.
 */
LSMI_API int lsmi_fit(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                      const lsmi_fit_hooks_t *hooks, lsmi_result_t **out,
                      lsmi_error_t *err);
LSMI_API void lsmi_result_destroy(lsmi_result_t *res);

/*
 * Ensemble members one at a time, for a program that spreads a job's
 * members over several machines (the daemon's cluster mode): member e of
 * p->ensemble (seed p->seed + e; its folds with cross-fitting) trained
 * alone gives exactly what lsmi_fit computes for it, and lsmi_combine turns
 * the complete set of members, in any order and wherever they were
 * trained, into the result lsmi_fit gives (the same bits on the same
 * kernels). lsmi_member_save / _load carry a member between processes as
 * bytes (the machines of one cluster share a byte order).
 */
typedef struct lsmi_member lsmi_member_t;

/* Trains and evaluates member `member` of p->ensemble; *out receives it
 * (taken). Statuses as lsmi_fit's. */
LSMI_API int lsmi_fit_member(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                             int member, const lsmi_fit_hooks_t *hooks,
                             lsmi_member_t **out, lsmi_error_t *err);

/* With cross-fitting (p->folds = F >= 2) a member is F sets, one per
 * fold, that share nothing but the rows: each can be a unit of work of
 * its own. Trains and evaluates fold `fold` (0 .. F-1) of member `member`
 * alone: *out (taken) is a part of the member, which lsmi_combine takes
 * with the member's other F - 1 parts in its place. fold -1 is the whole
 * member (lsmi_fit_member). LSMI_ERR_INVALID for a fold out of range, or
 * for fold >= 0 without cross-fitting; otherwise as lsmi_fit's. */
LSMI_API int lsmi_fit_part(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                           int member, int fold, const lsmi_fit_hooks_t *hooks,
                           lsmi_member_t **out, lsmi_error_t *err);

/* The result of members 0 .. p->ensemble - 1 of ds and p, each given once
 * in members[0..n) in any order, whole or as its F parts (lsmi_fit_part),
 * each part once and in any order: the parts of a member are assembled
 * into the member lsmi_fit trains, bit for bit, before the combination.
 * Takes every member (they are freed, on failure too). LSMI_ERR_INVALID
 * for a missing or repeated member or part, LSMI_ERR_SHAPE for one of
 * another dataset or folds. */
LSMI_API int lsmi_combine(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                          lsmi_member_t **members, int n, lsmi_result_t **out,
                          lsmi_error_t *err);

LSMI_API int lsmi_member_index(const lsmi_member_t *m);
/* The fold a part holds (lsmi_fit_part), or -1 for a whole member. */
LSMI_API int lsmi_member_fold(const lsmi_member_t *m);
LSMI_API void lsmi_member_destroy(lsmi_member_t *m);

/* The member (or part) as bytes: *buf (taken; free()) of *len bytes. */
LSMI_API int lsmi_member_save(const lsmi_member_t *m, void **buf, size_t *len,
                              lsmi_error_t *err);
/* A member from the bytes of lsmi_member_save; LSMI_ERR_FORMAT when they
 * are not whole. */
LSMI_API int lsmi_member_load(const void *buf, size_t len, lsmi_member_t **out,
                              lsmi_error_t *err);

/*
 * The bytes lsmi_fit would allocate at its peak for a dataset of n_train and
 * n_val rows of d1 + d2 features and `classes` classes, with params p (its
 * threads as lsmi_fit resolves them): models, their training and
 * evaluation blocks, the sets' rows and the result. The dataset itself is
 * not counted. It counts what is allocated, an upper bound of what is
 * touched (large blocks come as zero pages that a fit may never write), so
 * that a caller can admit a fit to a memory budget before it starts.
 */
LSMI_API uint64_t lsmi_fit_memory(size_t n_train, size_t n_val, size_t d1,
                                  size_t d2, int classes,
                                  const lsmi_params_t *p);

/*
 * The kernels of the training and evaluation products: "avx512" (lsmi's own
 * register-tiled kernels, where the CPU has AVX-512F), "blas" (the BLAS for
 * the bulk of each product, plain loops for the rest) or "generic" (plain
 * loops). The best the CPU runs is chosen at the first product;
 * lsmi_kernels_select forces one for the rest of the process and must be
 * called before any fit starts. Returns LSMI_OK, or LSMI_ERR_INVALID (nothing
 * changed) for an unknown name or one this CPU cannot run.
 */
LSMI_API const char *lsmi_kernels_name(void);
LSMI_API int lsmi_kernels_select(const char *name);

/*
 * Whether lsmi_fit splits a KNIFE model's training steps and evaluation at
 * d >= 128 across its threads: a pool thread with nothing of its own left
 * to do runs some of a longer model's mixture components. The results are
 * the same bits either way, at any thread count. Off by default: the
 * model's thread and its helper must both hold a core at every step, and
 * on a machine shared with other work the waiting cost more than the split
 * saved (doc/roofline.md). Process-wide; set before a fit starts. lsmi's
 * command reads LSMI_FIT_SPLIT (1 or 0).
 */
LSMI_API void lsmi_fit_split_select(bool on);
LSMI_API bool lsmi_fit_split(void);

/*
 * With the "blas" kernels, the OpenBLAS kernel set matters (Debian's build
 * picks its own at load time, and may pick generic ones on a CPU newer than
 * the release): a program calls lsmi_blas_setup first thing in main(), and
 * the library opens OpenBLAS, chooses and checks its kernels, pinned to one
 * thread. Steered by LSMI_BLAS_CORETYPE (unset or "auto", "off", or an
 * OpenBLAS core name).
 *
 * lsmi_blas_setup runs before any thread exists and before any output: it
 * may replace the process image (execv) and so returns only when the
 * kernels are settled. argv is borrowed; it must be main()'s
 * NULL-terminated vector. Logs one JSON line to stderr for every change it
 * makes or refuses; never fails (problems are logged and the process goes
 * on with the kernels it has).
 */
LSMI_API void lsmi_blas_setup(int argc, char **argv);

/* OpenBLAS's name for the kernels in use ("SkylakeX", ...), or "none" while
 * the library is not loaded; static string. Never loads it. */
LSMI_API const char *lsmi_blas_corename(void);

/*
 * Who chose those kernels: "openblas" (the library's own choice), "auto"
 * (lsmi replaced a weaker choice), "operator" (LSMI_BLAS_CORETYPE),
 * "environment" (OPENBLAS_CORETYPE set by the user), "off", "fallback"
 * (a choice failed verification), or "none" (the library could not be
 * opened). Static string.
 */
LSMI_API const char *lsmi_blas_source(void);

/* True when the kernels in use passed the start-up check. */
LSMI_API bool lsmi_blas_verified(void);

/* ------------------------------------------------------------------------ */
/* Decomposition, for callers with parts of their own                       */
/* ------------------------------------------------------------------------ */

/*
 * Per sample: r = min(h1,h2) - min(h1-i1, h2-i2), u1 = i1-r, u2 = i2-r,
 * s = i12 - r - u1 - u2. Inputs and outputs have n elements; outputs must
 * not alias inputs.
 */
LSMI_API void lsmi_decompose(size_t n, const double *i1, const double *i2,
                             const double *i12, const double *h1,
                             const double *h2, double *r, double *u1,
                             double *u2, double *s);

/*
 * The mean adjustment on n samples, in place: if mean r < 0 or mean s < 0,
 * a = -min(mean r, mean s); else if mean u1 < 0 or mean u2 < 0,
 * a = min(mean u1, mean u2); else a = 0. Then r += a, s += a, u1 -= a,
 * u2 -= a, which keeps r + u1, r + u2 and r + u1 + u2 + s. Returns a.
 */
LSMI_API double lsmi_adjust(size_t n, double *r, double *u1, double *u2,
                            double *s);

/* Fills the means of rows into *sum (shift is left as it is). */
LSMI_API void lsmi_summarize(const lsmi_rows_t *rows, lsmi_summary_t *sum);

#ifdef __cplusplus
}
#endif
#endif /* LSMI_H */
