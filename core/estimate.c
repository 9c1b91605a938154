/*
 * estimate.c — lsmi_fit: trains the models of LSMI in parallel, evaluates
 * the pointwise decomposition on both splits, and combines ensemble members
 * and cross-fitting folds into one result with its intervals, diagnostics
 * and warnings.
 *
 * Models, sets and members. LSMI needs five models: MLPs f1(x1), f2(x2),
 * f12([x1,x2]) and KNIFE densities of x1 and x2. The published script
 * trains the three MLPs with one Adam on the sum of their losses, and since
 * Adam is elementwise and each loss term touches only its own model's
 * parameters, that is the same as three Adams on three losses with the
 * same batches; so every model is one task with its own parameters,
 * gradients, moments and scratch, and its own copy of its family's shuffle
 * stream (the discriminators draw their epoch permutations from one seeded
 * stream, the KNIFE models from another, as the joint training would).
 * A *set* is five such tasks trained on the same rows. An ensemble member
 * (seed + e) is one set, or F sets with cross-fitting (set k trains on the
 * train rows outside fold k and values the rows of fold k). With early
 * stopping each set also holds out a stratified part of its rows, scores
 * every model on it after each epoch, stops a model after `patience`
 * epochs without improvement and keeps its best epoch's weights.
 * The published recipe is one member of one set with neither: the code
 * path and every floating-point operation of that case are those of the
 * single-set fit this file used to be, so its results stay bit for bit.
 *
 * Threads: lsmi_fit runs min(threads, tasks) pool threads. In training, a
 * task is taken one epoch at a time: a free thread takes, among the sets
 * already started, the task with the most work left that no other thread
 * holds (its measured CPU seconds per epoch times the epochs left), and
 * starts the next set only when every task of the started ones is held or
 * finished; it trains one epoch and gives the task back. Equal models on
 * two threads thus share both cores to the end, and only about as many
 * sets as there are threads are in flight, so that a task's training
 * buffers (gradients, Adam moments, scratch: allocated when it starts,
 * freed when it finishes) are held for a few sets at a time, not for all
 * of them. A task carries all its state, so which thread runs an epoch
 * changes nothing in the result. `fit.sched` guards the take and give-back
 * (held for a few instructions per model epoch); its unlock/lock pair also
 * hands a task's data from one thread to the next. `fit.lock` guards the
 * progress state, held briefly at the end of each model epoch and never
 * together with `fit.sched`; the caller's progress callback runs under it,
 * so it is never called concurrently. The stop flag is atomic.
 *
 * The evaluation pass runs every model over both splits in blocks of rows
 * through the same pool (scoring its losses and accuracy on each part of
 * the rows as it goes), then each member's parts are decomposed and
 * adjusted per split in double precision, and the members are averaged.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adam.h"
#include "knife.h"
#include "lsmi.h"
#include "member.h"
#include "mlp.h"
#include "par.h"
#include "rng.h"
#include "split.h"

enum { N_MODELS = LSMI_MODELS };
enum {
  MLP1 = LSMI_MODEL_F1,
  MLP2 = LSMI_MODEL_F2,
  MLP12 = LSMI_MODEL_F12,
  KNIFE1 = LSMI_MODEL_KNIFE1,
  KNIFE2 = LSMI_MODEL_KNIFE2
};

/* Streams of the draws beyond the published recipe; the recipe's own are
 * in rng.h. */
enum {
  STREAM_HOLDOUT = 20,   /* + fold: the early-stopping part of a set */
  STREAM_FOLDS = 40,     /* a member's folds */
  STREAM_KNIFE_DATA = 41 /* + model: 44, 45; 42, 43 are combine.c's */
};

/* A train row, as one set sees it. */
enum { ROLE_FIT = 0, ROLE_HOLD = 1, ROLE_OOF = 2 };

/* Rows per block of the evaluation pass, before the memory cap below: a
 * block's activations stay in L2 and are reused from block to block
 * (doc/performance.md). */
#define EVAL_BLOCK 128
/* Cap on the floats of one KNIFE evaluation scratch block (64 MiB). */
#define EVAL_SCRATCH_FLOATS ((size_t)16 << 20)
/* A held-out loss must drop by this much (relative) to count as better. */
#define ES_MIN_DELTA 1e-4

typedef struct fit fit_t;

/* The rows one set of five models trains on and values. */
typedef struct set {
  int member, fold;    /* fold -1 without cross-fitting */
  uint64_t seed;       /* the member's: seed + member */
  unsigned char *role; /* (n_train) ROLE_*; NULL: every row ROLE_FIT */
  uint32_t *fit;       /* (n_fit) rows it trains on; NULL: 0 .. n-1 */
  size_t n_fit;
  uint32_t *hold; /* (n_hold) early-stopping rows; NULL when off */
  size_t n_hold;
  double *val_out; /* folds: (N_MODELS n_val) its val parts, else NULL */
  bool started;    /* training: a task of it was taken (fit.sched) */
} set_t;

/* One model of one set: everything its training and evaluation touch.
 * Each starts on a cache line of its own: a task's Adam counters are
 * written every step, and the neighbouring task, read every step too, may
 * be on another core. */
typedef struct task {
  _Alignas(64) int id; /* MLP1 .. KNIFE2 */
  set_t *set;
  bool is_knife;
  size_t col;  /* first feature column of its input */
  int din;     /* input width */
  double cost; /* flops per epoch, for ordering and progress */
  int epochs;
  int next_epoch;       /* training: the epoch to run next */
  int kept_epochs;      /* epochs whose weights are used */
  bool running;         /* training: held by a thread (fit.sched) */
  bool stopped;         /* early stopping ended it before `epochs` */
  double epoch_seconds; /* CPU seconds of its last epoch, 0 before one */
  lsmi_rng_t shuffle;   /* its copy of its family's shuffle stream */
  size_t nparams;
  void *params_alloc; /* params | best, aligned by hand */
  float *params, *best;
  /* Training only: allocated at its first epoch, freed after its last. */
  void *work_alloc; /* grads | m | v | acts | scratch | dlogits | xb */
  float *grads, *m, *v;
  float *acts;    /* MLP activations (max(B, eval block) rows) */
  float *scratch; /* MLP backward / KNIFE scratch */
  float *dlogits; /* (B, C) */
  float *xb;      /* (max(B, eval block), din) gathered rows */
  int32_t *yb;    /* (max(B, eval block)) */
  uint32_t *perm; /* (n_fit) */
  size_t nwork, nacts, nscratch;
  int eval_block; /* rows per evaluation block */
  double best_loss;
  int since_best;
  lsmi_mlp_t mlp, dmlp;
  lsmi_knife_t knife, dknife;
  lsmi_adam_t adam;
  /* knife_init data: inputs are standardised, x' = (x - mu) * isd, and
   * h(x) = h'(x') + logdet with logdet = sum of log sd. */
  float *mu, *isd; /* (din) each; NULL otherwise */
  double logdet;
  double *loss_hist; /* (epochs) mean loss per epoch */
  /* Evaluation: sums of the loss and the hits on each part of the rows. */
  double part_loss[LSMI_PARTS], part_hits[LSMI_PARTS], part_n[LSMI_PARTS];
  double thread_seconds;
  atomic_llong help_ns; /* helpers' CPU nanoseconds on its pieces */
  int status;
} task_t;

/* One ensemble member being trained: its seed, its folds, and what it
 * hands on (member.h): the parts its models give every row, and what each
 * of its sets scored. */
typedef struct member {
  uint64_t seed;
  unsigned char *fold_of; /* (n_train) with cross-fitting, else NULL */
  lsmi_member_t *out;
} member_t;

struct fit {
  const lsmi_dataset_t *ds;
  const lsmi_params_t *p;
  const lsmi_fit_hooks_t *hooks;
  int member_first; /* members member_first .. + nmembers - 1 of params */
  int fold_only;    /* -1: every set of each member; k: fold k's alone (a
                       part, lsmi_fit_part) */
  int nmembers, nsets, ntasks, nfolds;
  member_t *members;
  set_t *sets;
  task_t *tasks;         /* (ntasks) set-major: set s holds 5 s .. 5 s + 4 */
  int *order;            /* task ids by decreasing cost (evaluation) */
  atomic_int next;       /* evaluation: next index into order */
  pthread_mutex_t sched; /* training: who holds which task, sets started */
  atomic_int stop;       /* set on failure or cancel: every task stops */
  bool evaluating;       /* which pass the pool runs */
  /* Guarded by lock: per-task completed epochs and progress reporting. */
  pthread_mutex_t lock;
  int *done_epochs; /* (ntasks) */
  int disc_reported, ent_reported;
  double disc_loss, ent_loss;
  double total_cost, done_cost;
  lsmi_phase_t phase;
  /* The last pool_run's threads' work summed, its busiest thread's and
   * the help (pool_thread_t), in CPU seconds, and training's. */
  double busy, busy_max, help, train_busy, train_busy_max, train_help;
  /* Helping (see there): the board, one slot per pool thread, and the
   * sleepers. sched_gen moves whenever a task is given back or an
   * evaluation ends; evals_done counts those. */
  struct help_slot *slots;
  int nslots;
  atomic_uint sched_gen;
  atomic_int evals_done;
  atomic_int sleepers;
  pthread_mutex_t help_lock;
  pthread_cond_t help_cond;
};

static double now_seconds(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool should_stop(fit_t *f) {
  if (atomic_load_explicit(&f->stop, memory_order_relaxed))
    return true;
  if (f->hooks && f->hooks->cancelled && f->hooks->cancelled(f->hooks->ctx)) {
    atomic_store(&f->stop, 1);
    return true;
  }
  return false;
}

/* n floats rounded up to a whole number of 64-byte cache lines */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* calloc'ed floats aligned by hand to a cache line (a large block comes as
 * fresh zero pages that are touched only where used); *alloc is what to
 * free. */
static float *alloc_floats(size_t n, void **alloc) {
  *alloc = calloc(n + 15, sizeof(float));
  return *alloc ? (float *)(((uintptr_t)*alloc + 63) & ~(uintptr_t)63) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Progress                                                                 */
/* ------------------------------------------------------------------------ */

/* Calls the caller's callback; lock must be held. */
static void report_locked(fit_t *f, double fraction) {
  if (f->hooks == NULL || f->hooks->progress == NULL)
    return;
  lsmi_progress_t pr = {
      .phase = f->phase,
      .disc_epoch = f->disc_reported,
      .disc_epochs = f->p->epochs_discriminator,
      .disc_loss = f->disc_loss,
      .ent_epoch = f->ent_reported,
      .ent_epochs = f->p->epochs_entropy,
      .ent_loss = f->ent_loss,
      .fraction = fraction,
  };
  if (f->hooks->progress(f->hooks->ctx, &pr) != 0)
    atomic_store(&f->stop, 1);
}

/* Training takes this share of a fit's progress; evaluation the rest. */
#define TRAIN_SHARE LSMI_PROGRESS_TRAIN_SHARE

static double train_fraction_locked(const fit_t *f) {
  return f->total_cost > 0 ? TRAIN_SHARE * f->done_cost / f->total_cost : 0.0;
}

/* The epochs of the family [lo, hi) of models that every task of it has
 * completed (a stopped task counts as complete), and the mean over sets of
 * their summed losses at that epoch. */
static int family_epoch_locked(const fit_t *f, int lo, int hi, double *loss) {
  int done = -1;
  for (int i = 0; i < f->ntasks; i++) {
    const task_t *t = &f->tasks[i];
    if (t->id < lo || t->id >= hi)
      continue;
    int e = t->stopped ? t->epochs : f->done_epochs[i];
    if (done < 0 || e < done)
      done = e;
  }
  double sum = 0.0;
  if (done > 0)
    for (int i = 0; i < f->ntasks; i++) {
      const task_t *t = &f->tasks[i];
      if (t->id < lo || t->id >= hi)
        continue;
      int e = f->done_epochs[i] < done ? f->done_epochs[i] : done;
      sum += e > 0 ? t->loss_hist[e - 1] : 0.0;
    }
  *loss = sum / (double)f->nsets;
  return done < 0 ? 0 : done;
}

/* A model finished epoch `epoch` (0-based): report, every time, so that a
 * caller sees progress after each model epoch even when the models run one
 * after another on one thread; the family epochs reported are the ones
 * every model of the family has completed. */
static void epoch_done(fit_t *f, task_t *t, int epoch) {
  pthread_mutex_lock(&f->lock);
  f->done_epochs[t - f->tasks] = epoch + 1;
  f->done_cost += t->cost;
  if (t->stopped) /* the epochs it will not run leave the total */
    f->total_cost -= t->cost * (t->epochs - epoch - 1);
  double loss;
  int lo_d = family_epoch_locked(f, MLP1, KNIFE1, &loss);
  if (lo_d > f->disc_reported) {
    f->disc_reported = lo_d;
    f->disc_loss = loss;
  }
  int lo_e = family_epoch_locked(f, KNIFE1, N_MODELS, &loss);
  if (lo_e > f->ent_reported) {
    f->ent_reported = lo_e;
    f->ent_loss = loss;
  }
  report_locked(f, train_fraction_locked(f));
  pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------------------ */
/* Members, sets and their rows                                             */
/* ------------------------------------------------------------------------ */

/* The sets of one member in this fit: its folds, or 1 (no cross-fitting,
 * or a part: one fold's set). */
static int sets_per_member(const fit_t *f) {
  return f->fold_only >= 0 || f->nfolds == 0 ? 1 : f->nfolds;
}

/* Member e of this fit (e + member_first of the params): its columns, and
 * its folds with cross-fitting. */
static int member_setup(fit_t *f, member_t *m, int e, lsmi_error_t *err) {
  const lsmi_split_t *tr = &f->ds->train;
  int index = f->member_first + e;
  m->seed = f->p->seed + (uint64_t)index;
  m->out = lsmi__member_create(index, sets_per_member(f), tr->n, f->ds->val.n);
  if (m->out == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                          "could not allocate the members' columns");
  m->out->fold = f->fold_only;
  m->out->folds = f->nfolds;
  if (f->nfolds == 0)
    return LSMI_OK;
  m->fold_of = malloc(tr->n ? tr->n : 1);
  if (m->fold_of == NULL || lsmi__member_folds(f->ds, f->p, index, m->fold_of))
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  return LSMI_OK;
}

int lsmi__member_folds(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                       int index, unsigned char *fold_of) {
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, p->seed + (uint64_t)index, STREAM_FOLDS);
  return lsmi__split_folds(ds->train.y, ds->train.n, ds->classes, p->folds,
                           &rng, fold_of)
             ? LSMI_ERR_NOMEM
             : LSMI_OK;
}

/* The roles of the train rows for set s of member m, and its row lists. */
static int set_setup(fit_t *f, set_t *s, const member_t *m, int e, int k,
                     lsmi_error_t *err) {
  const lsmi_split_t *tr = &f->ds->train;
  size_t n = tr->n;
  s->member = e;
  s->fold = k;
  s->seed = m->seed;
  if (f->nfolds == 0 && !f->p->early_stopping) {
    s->n_fit = n; /* the published case: every row, in order */
    return LSMI_OK;
  }
  s->role = calloc(n ? n : 1, 1);
  if (s->role == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  /* Rows of the fold: not seen, valued by this set. The holdout is drawn
   * from the rest, stratified by class over those rows. */
  int32_t *y = malloc((n ? n : 1) * sizeof *y);
  uint32_t *idx = malloc((n ? n : 1) * sizeof *idx);
  unsigned char *mark = calloc(n ? n : 1, 1);
  int st = y && idx && mark ? LSMI_OK : LSMI_ERR_NOMEM;
  size_t m_rows = 0;
  for (size_t i = 0; st == LSMI_OK && i < n; i++) {
    if (m->fold_of && m->fold_of[i] == k) {
      s->role[i] = ROLE_OOF;
      continue;
    }
    idx[m_rows] = (uint32_t)i;
    y[m_rows++] = tr->y[i];
  }
  if (st == LSMI_OK && f->p->early_stopping) {
    lsmi_rng_t rng;
    lsmi_rng_seed(&rng, s->seed, (uint64_t)(STREAM_HOLDOUT + (k < 0 ? 0 : k)));
    long held = lsmi__split_fraction(y, m_rows, f->ds->classes,
                                     f->p->holdout_fraction, &rng, 1, mark);
    if (held < 0)
      st = LSMI_ERR_NOMEM;
    else if (held == 0)
      st = lsmi_error_set(err, LSMI_ERR_INVALID, "holdout_fraction",
                          "holdout_fraction %g of %zu rows holds out no row: "
                          "early stopping needs more train rows or a larger "
                          "fraction",
                          f->p->holdout_fraction, m_rows);
    for (size_t j = 0; st == LSMI_OK && j < m_rows; j++)
      if (mark[j])
        s->role[idx[j]] = ROLE_HOLD;
  }
  free(y);
  free(idx);
  free(mark);
  if (st)
    return st == LSMI_ERR_NOMEM ? lsmi_error_set(err, st, "", "out of memory")
                                : st;
  size_t nf = 0, nh = 0;
  for (size_t i = 0; i < n; i++)
    nf += s->role[i] == ROLE_FIT, nh += s->role[i] == ROLE_HOLD;
  s->fit = malloc((nf ? nf : 1) * sizeof *s->fit);
  s->hold = nh ? malloc(nh * sizeof *s->hold) : NULL;
  if (s->fit == NULL || (nh && s->hold == NULL))
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (s->role[i] == ROLE_FIT)
      s->fit[s->n_fit++] = (uint32_t)i;
    else if (s->role[i] == ROLE_HOLD)
      s->hold[s->n_hold++] = (uint32_t)i;
  }
  if (s->n_fit == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, "train",
                          "no train rows are left to fit on");
  /* A part's val values are its own (the combination averages the parts),
   * written to its member's columns in place. */
  if (f->nfolds > 0 && f->fold_only < 0) {
    size_t nv = (size_t)N_MODELS * (f->ds->val.n ? f->ds->val.n : 1);
    s->val_out = calloc(nv, sizeof *s->val_out);
    if (s->val_out == NULL)
      return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  return LSMI_OK;
}

static void set_free(set_t *s) {
  free(s->role);
  free(s->fit);
  free(s->hold);
  free(s->val_out);
}

/* The row of the data that position i of a set's fit rows stands for. */
static size_t fit_row(const set_t *s, size_t i) {
  return s->fit ? s->fit[i] : i;
}

/* ------------------------------------------------------------------------ */
/* Task set-up                                                              */
/* ------------------------------------------------------------------------ */

/* knife_init data: the per-feature mean and spread of the set's fit rows,
 * the standardised inputs' means drawn from those rows, identity factors
 * and unit scales, so that the model starts as K unit Gaussians around
 * real samples instead of a random distortion of feature space. */
static int knife_data_init(fit_t *f, task_t *t, lsmi_error_t *err) {
  const lsmi_split_t *tr = &f->ds->train;
  size_t ldx = f->ds->d1 + f->ds->d2, d = (size_t)t->din;
  const set_t *s = t->set;
  t->mu = malloc(2 * d * sizeof(float));
  double *sum = calloc(2 * d, sizeof(double));
  if (t->mu == NULL || sum == NULL) {
    free(sum);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  t->isd = t->mu + d;
  for (size_t i = 0; i < s->n_fit; i++) {
    const float *x = tr->x + fit_row(s, i) * ldx + t->col;
    for (size_t j = 0; j < d; j++)
      sum[j] += x[j];
  }
  double nf = (double)s->n_fit;
  for (size_t j = 0; j < d; j++)
    sum[j] /= nf;
  for (size_t i = 0; i < s->n_fit; i++) {
    const float *x = tr->x + fit_row(s, i) * ldx + t->col;
    for (size_t j = 0; j < d; j++) {
      double c = x[j] - sum[j];
      sum[d + j] += c * c;
    }
  }
  t->logdet = 0.0;
  for (size_t j = 0; j < d; j++) {
    double sd = sqrt(sum[d + j] / nf);
    /* A constant feature carries no density: leave it unscaled. */
    if (!(sd > 1e-12 * (1.0 + fabs(sum[j]))))
      sd = 1.0;
    t->mu[j] = (float)sum[j];
    t->isd[j] = (float)(1.0 / sd);
    t->logdet += log(sd);
  }
  free(sum);
  lsmi_knife_t *k = &t->knife;
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, s->seed, (uint64_t)(STREAM_KNIFE_DATA + t->id));
  size_t K = (size_t)k->K;
  for (size_t c = 0; c < K; c++) {
    size_t row = fit_row(s, (size_t)lsmi_rng_below(&rng, s->n_fit));
    const float *x = tr->x + row * ldx + t->col;
    for (size_t j = 0; j < d; j++) {
      k->means[c * d + j] = (x[j] - t->mu[j]) * t->isd[j];
      k->logvar[c * d + j] = 0.0f;
    }
  }
  memset(k->tri, 0, K * d * d * sizeof(float));
  for (size_t c = 0; c < K; c++)
    k->weigh[c] = 1.0f;
  return LSMI_OK;
}

/* The sizes of model `id`'s blocks, in floats, for input width din and C
 * classes: its parameters, its activations and scratch, the rows of an
 * evaluation block and the training block (grads | m | v | acts | scratch |
 * dlogits | xb). task_setup allocates by them and lsmi_fit_memory counts
 * them, so the estimate follows the allocation. */
typedef struct task_sizes {
  size_t nparams, nacts, nscratch, nwork;
  int eval_block;
} task_sizes_t;

static task_sizes_t task_sizes(const lsmi_params_t *p, int id, size_t din,
                               int C) {
  task_sizes_t z;
  int B = p->batch_size, H = p->hidden, K = p->components;
  if (id >= KNIFE1) {
    z.nparams = lsmi_knife_nparams((int)din, K);
    /* Evaluation blocks are capped so that large d stays within memory:
     * the scratch has a small part fixed per call and a part that grows
     * with the rows. */
    size_t per_row = lsmi_knife_nscratch((int)din, K, 1) -
                     lsmi_knife_nscratch((int)din, K, 0);
    size_t rows = per_row ? EVAL_SCRATCH_FLOATS / per_row : EVAL_BLOCK;
    z.eval_block = (int)(rows < 1 ? 1 : rows > EVAL_BLOCK ? EVAL_BLOCK : rows);
  } else {
    z.nparams = lsmi_mlp_nparams((int)din, H, C);
    z.eval_block = EVAL_BLOCK;
  }
  int rows = B > z.eval_block ? B : z.eval_block;
  z.nscratch = id >= KNIFE1 ? lsmi_knife_nscratch((int)din, K, rows)
                            : lsmi_mlp_nscratch(H, B);
  z.nacts = id >= KNIFE1 ? 0 : lsmi_mlp_nacts(H, C, rows);
  /* Every part starts on a cache line: the products load whole 64-byte
   * vectors of them, and a vector split across two lines costs two loads. */
  z.nwork = 3 * round16(z.nparams) + round16(z.nacts) + round16(z.nscratch) +
            round16((size_t)B * (size_t)C) + round16((size_t)rows * din);
  return z;
}

static int task_setup(fit_t *f, task_t *t, set_t *s, int id,
                      lsmi_error_t *err) {
  const lsmi_dataset_t *ds = f->ds;
  const lsmi_params_t *p = f->p;
  int C = ds->classes;
  int H = p->hidden;
  int K = p->components;
  size_t n = s->n_fit;

  t->id = id;
  t->set = s;
  t->is_knife = id >= KNIFE1;
  t->col = (id == MLP2 || id == KNIFE2) ? ds->d1 : 0;
  size_t din = id == MLP12                    ? ds->d1 + ds->d2
               : (id == MLP2 || id == KNIFE2) ? ds->d2
                                              : ds->d1;
  t->din = (int)din;
  t->epochs = t->is_knife ? p->epochs_entropy : p->epochs_discriminator;
  t->kept_epochs = t->epochs;
  double dd = (double)din;
  /* Per row: K d×d products forward, twice that backward (counted dense;
   * only the ordering of tasks and the progress fraction use it). */
  t->cost = t->is_knife
                ? (double)n * K * (6.0 * dd * dd + 20.0 * dd)
                : (double)n * 6.0 * (dd * H + (double)H * H + (double)H * C);
  task_sizes_t z = task_sizes(p, id, din, C);
  t->nparams = z.nparams;
  t->eval_block = z.eval_block;
  t->nscratch = z.nscratch;
  t->nacts = z.nacts;
  t->nwork = z.nwork;
  size_t np = round16(t->nparams);
  bool es = f->p->early_stopping;
  t->params = alloc_floats(es ? 2 * np : np, &t->params_alloc);
  t->loss_hist = calloc((size_t)t->epochs, sizeof *t->loss_hist);
  if (!t->params || !t->loss_hist)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                          "could not allocate %zu floats for model %d",
                          t->nparams, id);
  t->best = es ? t->params + np : NULL;

  lsmi_rng_seed(&t->shuffle, s->seed,
                t->is_knife ? LSMI_STREAM_SHUFFLE_ENT
                            : LSMI_STREAM_SHUFFLE_DISC);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, s->seed, (uint64_t)(LSMI_STREAM_MLP1 + id));
  if (t->is_knife) {
    lsmi_knife_bind(&t->knife, t->params, t->din, K);
    if (p->knife_init == LSMI_KNIFE_INIT_DATA)
      return knife_data_init(f, t, err);
    lsmi_knife_init(&t->knife, &rng);
  } else {
    lsmi_mlp_bind(&t->mlp, t->params, t->din, H, C);
    lsmi_mlp_init(&t->mlp, &rng);
  }
  return LSMI_OK;
}

/* The training buffers, at a task's first epoch. */
static int task_start(fit_t *f, task_t *t) {
  const lsmi_params_t *p = f->p;
  int B = p->batch_size;
  int rows = B > t->eval_block ? B : t->eval_block;
  float *q = alloc_floats(t->nwork, &t->work_alloc);
  t->yb = calloc((size_t)rows, sizeof *t->yb);
  t->perm = calloc(t->set->n_fit ? t->set->n_fit : 1, sizeof *t->perm);
  if (!q || !t->yb || !t->perm)
    return LSMI_ERR_NOMEM;
  size_t np = round16(t->nparams);
  t->grads = q, q += np;
  t->m = q, q += np;
  t->v = q, q += np;
  t->acts = q, q += round16(t->nacts);
  t->scratch = q, q += round16(t->nscratch);
  t->dlogits = q, q += round16((size_t)B * (size_t)f->ds->classes);
  t->xb = q;
  if (t->is_knife)
    lsmi_knife_bind(&t->dknife, t->grads, t->din, p->components);
  else
    lsmi_mlp_bind(&t->dmlp, t->grads, t->din, p->hidden, f->ds->classes);
  lsmi_adam_init(&t->adam, t->nparams, t->m, t->v);
  t->best_loss = INFINITY;
  return LSMI_OK;
}

/* Training is over: the best epoch's weights (early stopping), and the
 * training buffers go. */
static void task_finish(task_t *t) {
  if (t->best && t->kept_epochs > 0)
    memcpy(t->params, t->best, t->nparams * sizeof(float));
  free(t->work_alloc);
  free(t->perm);
  free(t->yb);
  t->work_alloc = NULL;
  t->perm = NULL;
  t->yb = NULL;
}

static void task_free(task_t *t) {
  task_finish(t);
  free(t->params_alloc);
  free(t->loss_hist);
  free(t->mu);
}

/* ------------------------------------------------------------------------ */
/* Gathering rows                                                           */
/* ------------------------------------------------------------------------ */

/* Copies the t's input columns of n rows (rows[i], or first + i when rows
 * is NULL) of split s into out (n, din), standardised for a data-
 * initialised KNIFE; labels into y (may be NULL). */
static void gather(const fit_t *f, const task_t *t, const lsmi_split_t *s,
                   const uint32_t *rows, size_t first, int n, float *out,
                   int32_t *y) {
  size_t ldx = f->ds->d1 + f->ds->d2, din = (size_t)t->din;
  for (int i = 0; i < n; i++) {
    size_t row = rows ? rows[i] : first + (size_t)i;
    const float *x = s->x + row * ldx + t->col;
    float *o = out + (size_t)i * din;
    if (t->mu)
      for (size_t j = 0; j < din; j++)
        o[j] = (x[j] - t->mu[j]) * t->isd[j];
    else
      memcpy(o, x, din * sizeof(float));
    if (y)
      y[i] = s->y[row];
  }
}

/* Values t on n rows of split s (rows[i], or first + i; n <= eval_block):
 * v[i] receives log p(y|x) for an MLP (the prior is subtracted by the
 * caller), -log p(x) for a KNIFE; hit[i] (may be NULL; MLPs only) whether
 * the row's argmax is y. Uses t's activations, scratch and xb. */
static void score_block(const fit_t *f, task_t *t, lsmi_mlp_acts_t *acts,
                        const lsmi_split_t *s, const uint32_t *rows,
                        size_t first, int n, double *v, unsigned char *hit,
                        const lsmi_par_t *par) {
  size_t ldx = f->ds->d1 + f->ds->d2;
  int C = f->ds->classes;
  const float *x;
  size_t ld;
  /* The published path reads the split in place; only gathered or
   * standardised rows go through xb. */
  if (rows == NULL && t->mu == NULL) {
    x = s->x + first * ldx + t->col;
    ld = ldx;
  } else {
    gather(f, t, s, rows, first, n, t->xb, NULL);
    x = t->xb;
    ld = (size_t)t->din;
  }
  if (t->is_knife) {
    lsmi_knife_logpdf(&t->knife, v, t->scratch, x, ld, n, par);
    /* h = -log p(x); a standardised input's density in x' becomes one in
     * x by the change of variables, h(x) = h'(x') + sum of log sd. */
    for (int i = 0; i < n; i++)
      v[i] = t->mu ? -v[i] + t->logdet : -v[i];
    return;
  }
  lsmi_mlp_forward(&t->mlp, acts, x, ld, n);
  int32_t ybuf[EVAL_BLOCK];
  const int32_t *y = ybuf;
  if (rows == NULL)
    y = s->y + first;
  else
    for (int i = 0; i < n; i++)
      ybuf[i] = s->y[rows[i]];
  lsmi_log_softmax_at(v, acts->logits, y, n, C);
  for (int i = 0; hit && i < n; i++) {
    const float *l = acts->logits + (size_t)i * (size_t)C;
    int best = 0;
    for (int c = 1; c < C; c++)
      if (l[c] > l[best])
        best = c;
    hit[i] = best == y[i];
  }
}

/* The loss of one row from its value: cross-entropy -log p(y|x) for an
 * MLP, -log p(x) (the value itself) for a KNIFE. */
static double row_loss(const task_t *t, double v) {
  return t->is_knife ? v : -v;
}

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */

/* Early stopping: the held-out loss after an epoch decides whether these
 * weights are the best so far and whether training goes on. */
static void early_stop_check(fit_t *f, task_t *t, int epoch,
                             const lsmi_par_t *par) {
  const set_t *s = t->set;
  lsmi_mlp_acts_t acts;
  if (!t->is_knife)
    lsmi_mlp_acts_bind(&acts, t->acts, f->p->hidden, f->ds->classes,
                       t->eval_block);
  double loss = 0.0, v[EVAL_BLOCK];
  for (size_t b0 = 0; b0 < s->n_hold; b0 += (size_t)t->eval_block) {
    size_t left = s->n_hold - b0;
    int n = (int)(left < (size_t)t->eval_block ? left : (size_t)t->eval_block);
    score_block(f, t, &acts, &f->ds->train, s->hold + b0, 0, n, v, NULL, par);
    for (int i = 0; i < n; i++)
      loss += row_loss(t, v[i]);
  }
  loss /= (double)s->n_hold;
  if (loss < t->best_loss - ES_MIN_DELTA * fabs(t->best_loss) ||
      !isfinite(t->best_loss)) {
    t->best_loss = loss;
    t->since_best = 0;
    t->kept_epochs = epoch + 1;
    memcpy(t->best, t->params, t->nparams * sizeof(float));
  } else if (++t->since_best >= f->p->patience) {
    t->stopped = true;
  }
}

/* Trains epoch t->next_epoch of t and advances it; on failure or cancel sets
 * t->status (and the stop flag) instead. par (borrowed, may be NULL): where
 * a KNIFE step's components may go (par.h). */
static void task_train_epoch(fit_t *f, task_t *t, const lsmi_par_t *par) {
  const lsmi_split_t *tr = &f->ds->train;
  const lsmi_params_t *p = f->p;
  const set_t *s = t->set;
  size_t n = s->n_fit;
  size_t din = (size_t)t->din;
  int C = f->ds->classes;
  double lr0 = t->is_knife ? p->lr_entropy : p->lr_discriminator;
  int step = t->is_knife ? p->step_entropy : p->step_discriminator;
  if (t->work_alloc == NULL && task_start(f, t) != LSMI_OK) {
    t->status = LSMI_ERR_NOMEM;
    atomic_store(&f->stop, 1);
    return;
  }
  lsmi_mlp_acts_t acts;
  if (!t->is_knife)
    lsmi_mlp_acts_bind(&acts, t->acts, p->hidden, C, p->batch_size);

  int epoch = t->next_epoch;
  double lr = lsmi_step_lr(lr0, p->gamma, step, epoch);
  lsmi_rng_permutation(&t->shuffle, t->perm, n);
  if (s->fit) /* positions among the fit rows to rows of the split */
    for (size_t i = 0; i < n; i++)
      t->perm[i] = s->fit[t->perm[i]];
  double loss_sum = 0.0;
  for (size_t b0 = 0; b0 < n; b0 += (size_t)p->batch_size) {
    if (should_stop(f)) {
      t->status = LSMI_ERR_CANCELLED;
      return;
    }
    int B =
        (int)(n - b0 < (size_t)p->batch_size ? n - b0 : (size_t)p->batch_size);
    gather(f, t, tr, t->perm + b0, 0, B, t->xb, t->yb);
    double loss;
    if (t->is_knife) {
      /* The backward and Adam in one pass (knife.h): the step begins Adam
       * itself once the loss is known to be finite. */
      loss = lsmi_knife_train_step(&t->knife, &t->dknife, &t->adam, lr,
                                   t->scratch, t->xb, din, B, par);
    } else {
      lsmi_mlp_forward(&t->mlp, &acts, t->xb, din, B);
      loss = lsmi_ce_forward_backward(t->dlogits, acts.logits, t->yb, B, C);
      lsmi_mlp_backward(&t->mlp, &t->dmlp, t->scratch, &acts, t->dlogits, t->xb,
                        din, B);
    }
    if (!isfinite(loss)) {
      t->status = LSMI_ERR_DIVERGED;
      atomic_store(&f->stop, 1);
      return;
    }
    if (!t->is_knife) {
      lsmi_adam_begin(&t->adam, lr);
      lsmi_adam_update(&t->adam, t->params, t->grads, 0, t->nparams);
    }
    loss_sum += loss * B;
  }
  t->loss_hist[epoch] = n ? loss_sum / (double)n : 0.0;
  if (s->hold)
    early_stop_check(f, t, epoch, par);
  t->next_epoch = t->stopped ? t->epochs : epoch + 1;
  epoch_done(f, t, epoch);
  if (t->next_epoch >= t->epochs)
    task_finish(t);
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */
/* ------------------------------------------------------------------------ */

/* Writes this model's column (i or h) of both splits and scores its losses
 * on each part of the rows; par as for task_train_epoch. */
static void task_eval(fit_t *f, task_t *t, const lsmi_par_t *par) {
  const lsmi_params_t *p = f->p;
  const set_t *s = t->set;
  member_t *m = &f->members[s->member];
  int rows = p->batch_size > t->eval_block ? p->batch_size : t->eval_block;
  size_t nx = round16(t->nacts) + round16(t->nscratch) +
              round16((size_t)rows * (size_t)t->din);
  void *alloc;
  float *q = alloc_floats(nx, &alloc);
  if (q == NULL) {
    t->status = LSMI_ERR_NOMEM;
    atomic_store(&f->stop, 1);
    return;
  }
  t->acts = q;
  t->scratch = q + round16(t->nacts);
  t->xb = t->scratch + round16(t->nscratch);
  lsmi_mlp_acts_t acts;
  if (!t->is_knife)
    lsmi_mlp_acts_bind(&acts, t->acts, p->hidden, f->ds->classes,
                       t->eval_block);
  const lsmi_split_t *splits[2] = {&f->ds->train, &f->ds->val};
  double one[EVAL_BLOCK];
  unsigned char hit[EVAL_BLOCK];
  for (int sp = 0; sp < 2 && t->status == LSMI_OK; sp++) {
    const lsmi_split_t *split = splits[sp];
    /* The member's column (every train row, or with cross-fitting the
     * rows of the set's fold), or with cross-fitting the set's own val
     * column, averaged over the folds afterwards. */
    double *out = sp == 1 && s->val_out
                      ? s->val_out + (size_t)t->id * split->n
                      : lsmi__rows_part(&m->out->rows[sp], t->id);
    /* Without cross-fitting every train row's value is this set's, written
     * in place; with it, only the rows of the set's fold are. */
    bool all = sp == 1 || f->nfolds == 0;
    for (size_t b0 = 0; b0 < split->n; b0 += (size_t)t->eval_block) {
      if (should_stop(f)) {
        t->status = LSMI_ERR_CANCELLED;
        break;
      }
      size_t left = split->n - b0;
      int B =
          (int)(left < (size_t)t->eval_block ? left : (size_t)t->eval_block);
      double *v = all ? out + b0 : one;
      score_block(f, t, &acts, split, NULL, b0, B, v, t->is_knife ? NULL : hit,
                  par);
      for (int i = 0; i < B; i++) {
        int role = sp == 0 && s->role ? s->role[b0 + (size_t)i] : ROLE_FIT;
        int part = sp == 1             ? LSMI_PART_VAL
                   : role == ROLE_FIT  ? LSMI_PART_TRAIN
                   : role == ROLE_HOLD ? LSMI_PART_HOLDOUT
                                       : LSMI_PART_OOF;
        t->part_loss[part] += row_loss(t, v[i]);
        t->part_hits[part] += t->is_knife ? 0.0 : (double)hit[i];
        t->part_n[part] += 1.0;
        if (!all && role == ROLE_OOF)
          out[b0 + (size_t)i] = v[i];
      }
    }
  }
  free(alloc);
  t->acts = t->scratch = t->xb = NULL;
}

/* ------------------------------------------------------------------------ */
/* The pool                                                                 */
/* ------------------------------------------------------------------------ */

/* CPU seconds of work t has left: its measured epoch time, or before its
 * first epoch the flop estimate at a nominal 20 GFLOP/s, times the epochs
 * left. Only the order of these numbers matters. */
static double work_left(const task_t *t) {
  double per_epoch = t->epoch_seconds > 0 ? t->epoch_seconds : t->cost / 2e10;
  return per_epoch * (t->epochs - t->next_epoch);
}

static bool task_free_to_take(const task_t *t) {
  return !t->running && t->next_epoch < t->epochs && t->status == LSMI_OK;
}

/* The free task with the most work left among the started sets (or, when
 * none is free there, of the first set with a free task), preferring prev
 * on a near tie (within one of its epochs) so that a thread keeps its
 * caches warm when switching gains nothing; NULL when every task is
 * finished or held. fit.sched must be held. */
static task_t *take_task_locked(fit_t *f, const task_t *prev) {
  task_t *best = NULL;
  double best_left = 0.0;
  for (int pass = 0; pass < 2 && best == NULL; pass++) {
    for (int i = 0; i < f->ntasks; i++) {
      task_t *t = &f->tasks[i];
      if (!task_free_to_take(t) || (pass == 0 && !t->set->started))
        continue;
      if (pass == 1 && best && t->set != best->set)
        break; /* the first set with a free task only */
      double left = work_left(t);
      if (t == prev)
        left += t->epoch_seconds;
      if (best == NULL || left > best_left) {
        best = t;
        best_left = left;
      }
    }
  }
  if (best) {
    best->running = true;
    best->set->started = true;
  }
  return best;
}

/* ------------------------------------------------------------------------ */
/* Helping                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * With lsmi_fit_split (off by default: lsmi.h, doc/roofline.md), a pool
 * thread with nothing of its own left to do helps the others: the
 * KNIFE step and evaluation at d >= 128 hand their components to
 * lsmi_par_run (par.h, knife.h), and a thread's lsmi_par_t posts them on
 * its slot of the board, where it and any idle thread claim them one at
 * a time; it then waits for the ones others claimed. Each piece writes
 * only its component's data, so who runs which changes no result.
 *
 * A slot's word packs the post's generation, its piece count and the next
 * piece to claim (gen << 32 | n << 16 | next), and a claim is a compare-
 * and-swap on it. A claim can therefore only succeed on the post its
 * claimer read, while that post still has pieces left, that is while its
 * poster waits: fn, arg and task, written before the word and read after
 * a claim, are that post's. done counts the pieces helpers finished; the
 * poster resets it before the next post, which it makes only once every
 * claimed piece is done.
 *
 * An idle thread spins on the board for a short while (a KNIFE step posts
 * twice every millisecond or so, with a few microseconds between) and
 * then sleeps on fit.help_cond. A poster or a change of the tasks' state
 * (fit.sched_gen: a task given back or finished, an evaluation done)
 * wakes the sleepers. The Dekker pair that makes this safe: a poster
 * stores the word and then reads fit.sleepers, a sleeper increments
 * fit.sleepers and then reads the words, all sequentially consistent, so
 * at least one of them sees the other. fit.help_lock is never held
 * together with fit.sched or fit.lock.
 */
typedef struct help_slot {
  _Alignas(64) _Atomic uint64_t word; /* gen << 32 | n << 16 | next */
  atomic_int done; /* pieces of the post that helpers finished */
  lsmi_par_fn fn;  /* the post's pieces */
  void *arg;
  task_t *task; /* the poster's task: helpers' CPU seconds go to it */
  fit_t *f;
  lsmi_par_t par; /* run = help_run, ctx = this slot */
} help_slot_t;

/* A spin-wait's pause, which leaves the core's resources to the other
 * hardware thread and saves power. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Seconds an idle thread spins on the board before it sleeps, and a poster
 * spins waiting for a helper's piece before it yields its core (to the
 * helper, should it have been descheduled on a loaded machine). */
#define HELP_SPIN 200e-6
#define HELP_YIELD 50e-6

/* Wakes the threads sleeping in help_wait, if any. */
static void help_wake(fit_t *f) {
  if (atomic_load(&f->sleepers) == 0)
    return;
  pthread_mutex_lock(&f->help_lock);
  pthread_cond_broadcast(&f->help_cond);
  pthread_mutex_unlock(&f->help_lock);
}

/* The tasks' state changed (fit.sched_gen): wake the idle threads. */
static void sched_changed(fit_t *f) {
  atomic_fetch_add(&f->sched_gen, 1);
  help_wake(f);
}

/* Claims the next piece of s's post: its index, or -1 when none is left. */
static int help_claim(help_slot_t *s) {
  uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
  for (;;) {
    uint64_t next = w & 0xffff, n = (w >> 16) & 0xffff;
    if (next >= n)
      return -1;
    if (atomic_compare_exchange_weak_explicit(
            &s->word, &w, w + 1, memory_order_acq_rel, memory_order_acquire))
      return (int)next;
  }
}

/* lsmi_par_t's run on the board (see above): posts fn's n pieces on slot
 * ctx, runs what the others do not claim, and returns when all are done. */
static void help_run(void *ctx, int n, lsmi_par_fn fn, void *arg) {
  help_slot_t *s = ctx;
  if (n > 0xffff) { /* more than a word holds: not spread */
    for (int i = 0; i < n; i++)
      fn(arg, i);
    return;
  }
  s->fn = fn;
  s->arg = arg;
  atomic_store_explicit(&s->done, 0, memory_order_relaxed);
  uint64_t gen = (atomic_load_explicit(&s->word, memory_order_relaxed) >> 32);
  atomic_store(&s->word, (gen + 1) << 32 | (uint64_t)n << 16);
  help_wake(s->f);
  int mine = 0;
  for (int i; (i = help_claim(s)) >= 0; mine++)
    fn(arg, i);
  if (atomic_load_explicit(&s->done, memory_order_acquire) == n - mine)
    return;
  double t0 = now_seconds(CLOCK_MONOTONIC);
  while (atomic_load_explicit(&s->done, memory_order_acquire) < n - mine) {
    if (now_seconds(CLOCK_MONOTONIC) - t0 < HELP_YIELD)
      cpu_relax();
    else
      sched_yield();
  }
}

/* lsmi_fit_split_select's setting: whether pool threads help (lsmi.h). */
static atomic_bool fit_split;

void lsmi_fit_split_select(bool on) { atomic_store(&fit_split, on); }

bool lsmi_fit_split(void) { return atomic_load(&fit_split); }

/* One thread of the pool: the fit, its slot of the board, and the CPU
 * seconds of work it did (its own tasks' in busy, other threads' pieces
 * in help). */
typedef struct pool_thread {
  fit_t *f;
  help_slot_t *slot;
  const lsmi_par_t *par; /* &slot->par, or NULL with one thread */
  double busy, help;
} pool_thread_t;

/* Runs the pieces of the other threads' posts that it can claim; whether
 * it ran any. A run of pieces of one post is timed as one, and its CPU
 * seconds are added to the poster's task before the last piece counts as
 * done (so the poster finds them there when its epoch is over). */
static bool help_some(pool_thread_t *pt) {
  fit_t *f = pt->f;
  bool ran = false;
  for (int j = 0; j < f->nslots; j++) {
    help_slot_t *s = &f->slots[j];
    int i = s == pt->slot ? -1 : help_claim(s);
    if (i < 0)
      continue;
    ran = true;
    double t0 = now_seconds(CLOCK_THREAD_CPUTIME_ID);
    for (;;) {
      s->fn(s->arg, i);
      int next = help_claim(s); /* of the same post: it waits for i */
      if (next < 0)
        break;
      atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
      i = next;
    }
    double dt = now_seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
    pt->help += dt;
    atomic_fetch_add_explicit(&s->task->help_ns, (long long)(dt * 1e9),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
  }
  return ran;
}

/* Whether another thread's slot has a piece to claim. */
static bool help_pending(const pool_thread_t *pt) {
  const fit_t *f = pt->f;
  for (int j = 0; j < f->nslots; j++) {
    uint64_t w = atomic_load(&f->slots[j].word);
    if (&f->slots[j] != pt->slot && (w & 0xffff) < ((w >> 16) & 0xffff))
      return true;
  }
  return false;
}

/* Helps until the tasks' state moves on from gen (fit.sched_gen) or the
 * fit stops: runs the pieces it can claim, spins when there are none, and
 * sleeps when none come for HELP_SPIN seconds. */
static void help_wait(pool_thread_t *pt, unsigned gen) {
  fit_t *f = pt->f;
  double idle_since = -1.0;
  while (atomic_load(&f->sched_gen) == gen && !should_stop(f)) {
    if (help_some(pt)) {
      idle_since = -1.0;
      continue;
    }
    double now = now_seconds(CLOCK_MONOTONIC);
    if (idle_since < 0.0)
      idle_since = now;
    if (now - idle_since < HELP_SPIN) {
      for (int k = 0; k < 64; k++)
        cpu_relax();
      continue;
    }
    pthread_mutex_lock(&f->help_lock);
    atomic_fetch_add(&f->sleepers, 1);
    while (atomic_load(&f->sched_gen) == gen && !help_pending(pt) &&
           !atomic_load(&f->stop))
      pthread_cond_wait(&f->help_cond, &f->help_lock);
    atomic_fetch_sub(&f->sleepers, 1);
    pthread_mutex_unlock(&f->help_lock);
    idle_since = -1.0;
  }
}

/* Whether a thread holds a task. fit.sched must be held. */
static bool any_running_locked(const fit_t *f) {
  for (int i = 0; i < f->ntasks; i++)
    if (f->tasks[i].running)
      return true;
  return false;
}

/* CPU seconds that helpers spent on t's pieces since the last call. */
static double take_help(task_t *t) {
  return 1e-9 * (double)atomic_exchange(&t->help_ns, 0);
}

/* Training: one model epoch at a time until no task is left that another
 * thread does not hold. A thread that finds none helps the threads that
 * hold one (help_wait) until a task is given back; a held task only ever
 * continues on the thread that gives it back, or on a helper that takes
 * it then. */
static void pool_train(pool_thread_t *pt) {
  fit_t *f = pt->f;
  task_t *t = NULL;
  for (;;) {
    pthread_mutex_lock(&f->sched);
    t = take_task_locked(f, t);
    bool held = t == NULL && any_running_locked(f);
    unsigned gen = atomic_load(&f->sched_gen);
    pthread_mutex_unlock(&f->sched);
    if (t == NULL) {
      if (!held || pt->par == NULL || should_stop(f))
        return;
      help_wait(pt, gen);
      continue;
    }
    if (should_stop(f)) {
      pthread_mutex_lock(&f->sched);
      t->running = false;
      pthread_mutex_unlock(&f->sched);
      sched_changed(f);
      return;
    }
    pt->slot->task = t;
    double t0 = now_seconds(CLOCK_THREAD_CPUTIME_ID);
    task_train_epoch(f, t, pt->par);
    double dt = now_seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
    pt->busy += dt;
    dt += take_help(t);
    pthread_mutex_lock(&f->sched);
    t->thread_seconds += dt;
    t->epoch_seconds = dt;
    t->running = false;
    pthread_mutex_unlock(&f->sched);
    sched_changed(f);
  }
}

/* Evaluation: the tasks in cost order, one each; then help the others'
 * until every evaluation is done. */
static void pool_eval(pool_thread_t *pt) {
  fit_t *f = pt->f;
  for (;;) {
    int k = atomic_fetch_add(&f->next, 1);
    if (k >= f->ntasks)
      break;
    task_t *t = &f->tasks[f->order[k]];
    pt->slot->task = t;
    double t0 = now_seconds(CLOCK_THREAD_CPUTIME_ID);
    task_eval(f, t, pt->par);
    double dt = now_seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
    pt->busy += dt;
    t->thread_seconds += dt + take_help(t);
    atomic_fetch_add(&f->evals_done, 1);
    sched_changed(f);
  }
  while (pt->par) {
    /* gen before the count: an evaluation that ends in between moves it */
    unsigned gen = atomic_load(&f->sched_gen);
    if (atomic_load(&f->evals_done) >= f->ntasks)
      break;
    help_wait(pt, gen);
  }
}

static void *pool_main(void *arg) {
  pool_thread_t *pt = arg;
  if (pt->f->evaluating)
    pool_eval(pt);
  else
    pool_train(pt);
  return NULL;
}

/* Runs every task once on `threads` threads (the calling thread is one). */
static int pool_run(fit_t *f, int threads, lsmi_error_t *err) {
  pthread_t *tid = calloc((size_t)threads, sizeof *tid);
  pool_thread_t *pt = calloc((size_t)threads, sizeof *pt);
  f->slots = aligned_alloc(64, (size_t)threads * sizeof *f->slots);
  if (tid == NULL || pt == NULL || f->slots == NULL) {
    free(tid);
    free(pt);
    free(f->slots);
    f->slots = NULL;
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  memset(f->slots, 0, (size_t)threads * sizeof *f->slots);
  f->nslots = threads;
  atomic_store(&f->next, 0);
  atomic_store(&f->evals_done, 0);
  for (int i = 0; i < threads; i++) {
    help_slot_t *s = &f->slots[i];
    s->f = f;
    s->par = (lsmi_par_t){.run = help_run, .ctx = s};
    bool split = threads > 1 && lsmi_fit_split();
    pt[i] = (pool_thread_t){.f = f, .slot = s, .par = split ? &s->par : NULL};
  }
  int started = 0;
  for (int i = 1; i < threads; i++) {
    if (pthread_create(&tid[started], NULL, pool_main, &pt[started + 1]) != 0)
      break; /* fewer threads: the remaining ones pick up the work */
    started++;
  }
  pool_main(&pt[0]);
  for (int i = 0; i < started; i++)
    pthread_join(tid[i], NULL);
  free(tid);
  f->busy = f->busy_max = f->help = 0.0;
  for (int i = 0; i <= started; i++) {
    f->busy += pt[i].busy + pt[i].help;
    f->busy_max = fmax(f->busy_max, pt[i].busy + pt[i].help);
    f->help += pt[i].help;
  }
  free(pt);
  free(f->slots);
  f->slots = NULL;
  f->nslots = 0;
  int st = LSMI_OK;
  for (int i = 0; i < f->ntasks; i++) {
    int s = f->tasks[i].status;
    /* A real failure outranks the cancellations it caused in the others. */
    if (s != LSMI_OK && (st == LSMI_OK || st == LSMI_ERR_CANCELLED))
      st = s;
  }
  if (st == LSMI_ERR_DIVERGED)
    return lsmi_error_set(err, st, "",
                          "training diverged: a loss became NaN or infinite "
                          "(try a smaller learning rate)");
  if (st == LSMI_ERR_CANCELLED)
    return lsmi_error_set(err, st, "", "the fit was cancelled");
  if (st != LSMI_OK)
    return lsmi_error_set(err, st, "", "%s", lsmi_status_message(st));
  return LSMI_OK;
}

/* ------------------------------------------------------------------------ */
/* lsmi_fit                                                                 */
/* ------------------------------------------------------------------------ */

static int check_dataset(const lsmi_dataset_t *ds, lsmi_error_t *err) {
  if (ds == NULL || ds->train.n == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, "train",
                          "the train split is empty");
  if (ds->d1 == 0 || ds->d2 == 0 || ds->d1 > INT32_MAX / 2 ||
      ds->d2 > INT32_MAX / 2)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, "x1",
                          "feature widths d1=%zu, d2=%zu are out of range",
                          ds->d1, ds->d2);
  if (ds->classes < 1)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, "y",
                          "the dataset has %d classes", ds->classes);
  if (ds->train.n > UINT32_MAX)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "train",
                          "train has %zu rows, more than 2^32-1", ds->train.n);
  const lsmi_split_t *splits[2] = {&ds->train, &ds->val};
  for (int sp = 0; sp < 2; sp++)
    for (size_t k = 0; k < splits[sp]->n; k++)
      if (splits[sp]->y[k] < 0 || splits[sp]->y[k] >= ds->classes)
        return lsmi_error_set(err, LSMI_ERR_DATA, sp ? "val_y" : "train_y",
                              "label %d at row %zu is outside [0, %d)",
                              splits[sp]->y[k], k, ds->classes);
  return LSMI_OK;
}

static int resolve_threads(int requested, int tasks) {
  int t = requested;
  if (t <= 0) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    t = online > 0 ? (int)online : 1;
  }
  return t > tasks ? tasks : t;
}

/* The members, sets and tasks of a fit, and the cost order of evaluation. */
static int fit_setup(fit_t *f, lsmi_error_t *err) {
  f->nfolds = f->p->folds;
  int per = sets_per_member(f);
  f->nsets = f->nmembers * per;
  f->ntasks = f->nsets * N_MODELS;
  f->members = calloc((size_t)f->nmembers, sizeof *f->members);
  f->sets = calloc((size_t)f->nsets, sizeof *f->sets);
  size_t tsize = ((size_t)f->ntasks * sizeof(task_t) + 63) & ~(size_t)63;
  /* task_t holds cache-line-aligned members: calloc's alignment is not
   * enough. */
  f->tasks = aligned_alloc(64, tsize);
  f->order = calloc((size_t)f->ntasks, sizeof *f->order);
  f->done_epochs = calloc((size_t)f->ntasks, sizeof *f->done_epochs);
  if (!f->members || !f->sets || !f->tasks || !f->order || !f->done_epochs)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  memset(f->tasks, 0, tsize);
  for (int e = 0; e < f->nmembers; e++) {
    member_t *m = &f->members[e];
    int st = member_setup(f, m, e, err);
    if (st)
      return st;
    for (int k = 0; k < per; k++) {
      int si = e * per + k;
      int fold = f->fold_only >= 0 ? f->fold_only : f->nfolds ? k : -1;
      st = set_setup(f, &f->sets[si], m, e, fold, err);
      for (int id = 0; st == LSMI_OK && id < N_MODELS; id++) {
        task_t *t = &f->tasks[si * N_MODELS + id];
        st = task_setup(f, t, &f->sets[si], id, err);
        f->total_cost += t->cost * t->epochs;
      }
      if (st)
        return st;
    }
  }
  for (int i = 0; i < f->ntasks; i++)
    f->order[i] = i;
  /* Costliest first: the evaluation pass takes the tasks in this order, so
   * that the longest never starts last (training picks by work left). */
  for (int i = 1; i < f->ntasks; i++)
    for (int j = i;
         j > 0 && f->tasks[f->order[j]].cost > f->tasks[f->order[j - 1]].cost;
         j--) {
      int tmp = f->order[j];
      f->order[j] = f->order[j - 1];
      f->order[j - 1] = tmp;
    }
  return LSMI_OK;
}

static void fit_free(fit_t *f) {
  if (f->tasks)
    for (int i = 0; i < f->ntasks; i++)
      task_free(&f->tasks[i]);
  if (f->sets)
    for (int i = 0; i < f->nsets; i++)
      set_free(&f->sets[i]);
  if (f->members)
    for (int e = 0; e < f->nmembers; e++) {
      free(f->members[e].fold_of);
      lsmi_member_destroy(f->members[e].out);
    }
  free(f->tasks);
  free(f->sets);
  free(f->members);
  free(f->order);
  free(f->done_epochs);
}

/* Cross-fitting: a member's val parts are the mean of its folds' sets. */
static void average_folds(fit_t *f, int e) {
  lsmi_rows_t *r = &f->members[e].out->rows[1];
  size_t n = r->n;
  for (int id = 0; id < N_MODELS; id++) {
    double *out = lsmi__rows_part(r, id);
    for (size_t i = 0; i < n; i++) {
      double sum = 0.0;
      for (int k = 0; k < f->nfolds; k++)
        sum += f->sets[e * f->nfolds + k].val_out[(size_t)id * n + i];
      out[i] = sum / (double)f->nfolds;
    }
  }
}

/* What each member hands on besides its columns: its sets' scores and the
 * epochs each model kept, its thread seconds. */
static void finish_members(fit_t *f) {
  int per = sets_per_member(f);
  for (int e = 0; e < f->nmembers; e++) {
    lsmi_member_t *out = f->members[e].out;
    if (f->nfolds && f->fold_only < 0)
      average_folds(f, e);
    for (int k = 0; k < per; k++) {
      lsmi_set_stats_t *st = &out->sets[k];
      for (int id = 0; id < N_MODELS; id++) {
        const task_t *t = &f->tasks[(e * per + k) * N_MODELS + id];
        for (int part = 0; part < LSMI_PARTS; part++) {
          st->loss[id][part] = t->part_loss[part];
          st->hits[id][part] = t->part_hits[part];
          st->rows[id][part] = t->part_n[part];
        }
        st->kept_epochs[id] = t->kept_epochs;
        if (t->is_knife)
          out->seconds_ent += t->thread_seconds;
        else
          out->seconds_disc += t->thread_seconds;
      }
    }
    /* The progress losses are the whole fit's: one member's when it is
     * the only one, which is the published case. */
    out->disc_loss = f->disc_loss;
    out->ent_loss = f->ent_loss;
  }
}

/* Trains and evaluates members first .. first + n - 1 of the params (or
 * fold `fold` of each, fold >= 0) on the fit's pool; their outputs stay in
 * f->members[].out. */
static int fit_run(fit_t *f, const lsmi_dataset_t *ds, const lsmi_params_t *p,
                   const lsmi_fit_hooks_t *hooks, int first, int n, int fold,
                   double seconds[2], int *threads, lsmi_error_t *err) {
  f->ds = ds;
  f->p = p;
  f->hooks = hooks;
  f->member_first = first;
  f->fold_only = fold;
  f->nmembers = n;
  f->phase = LSMI_PHASE_TRAIN;
  int st = fit_setup(f, err);
  if (st)
    return st;
  *threads = resolve_threads(p->threads, f->ntasks);
  pthread_mutex_lock(&f->lock);
  report_locked(f, 0.0);
  pthread_mutex_unlock(&f->lock);

  double w0 = now_seconds(CLOCK_MONOTONIC);
  st = pool_run(f, *threads, err);
  seconds[0] = now_seconds(CLOCK_MONOTONIC) - w0;
  if (st)
    return st;
  f->train_busy = f->busy;
  f->train_busy_max = f->busy_max;
  f->train_help = f->help;
  pthread_mutex_lock(&f->lock);
  f->phase = LSMI_PHASE_EVALUATE;
  report_locked(f, TRAIN_SHARE);
  pthread_mutex_unlock(&f->lock);
  f->evaluating = true;
  w0 = now_seconds(CLOCK_MONOTONIC);
  st = pool_run(f, *threads, err);
  seconds[1] = now_seconds(CLOCK_MONOTONIC) - w0;
  if (st == LSMI_OK)
    finish_members(f);
  return st;
}

/* The last progress report, after which a cancel still wins. */
static int fit_done(fit_t *f, lsmi_error_t *err) {
  pthread_mutex_lock(&f->lock);
  f->phase = LSMI_PHASE_DONE;
  report_locked(f, 1.0);
  pthread_mutex_unlock(&f->lock);
  if (should_stop(f))
    return lsmi_error_set(err, LSMI_ERR_CANCELLED, "", "the fit was cancelled");
  return LSMI_OK;
}

static fit_t *fit_new(void) {
  fit_t *f = calloc(1, sizeof *f);
  if (f) {
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_init(&f->sched, NULL);
    pthread_mutex_init(&f->help_lock, NULL);
    pthread_cond_init(&f->help_cond, NULL);
  }
  return f;
}

static void fit_destroy(fit_t *f) {
  pthread_mutex_destroy(&f->lock);
  pthread_mutex_destroy(&f->sched);
  pthread_mutex_destroy(&f->help_lock);
  pthread_cond_destroy(&f->help_cond);
  fit_free(f);
  free(f);
}

static int check_args(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                      lsmi_error_t *err) {
  int st = lsmi_params_validate(p, err);
  return st ? st : check_dataset(ds, err);
}

int lsmi_fit(const lsmi_dataset_t *ds, const lsmi_params_t *p,
             const lsmi_fit_hooks_t *hooks, lsmi_result_t **out,
             lsmi_error_t *err) {
  *out = NULL;
  int st = check_args(ds, p, err);
  if (st)
    return st;
  fit_t *f = fit_new();
  lsmi_result_t *res = calloc(1, sizeof *res);
  if (!f || !res) {
    free(f);
    free(res);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  double seconds[2] = {0, 0};
  st =
      fit_run(f, ds, p, hooks, 0, p->ensemble, -1, seconds, &res->threads, err);
  if (st == LSMI_OK) {
    double w0 = now_seconds(CLOCK_MONOTONIC);
    lsmi_member_t **m = calloc((size_t)f->nmembers, sizeof *m);
    if (m == NULL) {
      st = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    } else {
      for (int e = 0; e < f->nmembers; e++) {
        m[e] = f->members[e].out; /* taken by the combination */
        f->members[e].out = NULL;
      }
      st = lsmi__combine(ds, p, m, f->nmembers, res, err);
      free(m);
    }
    res->seconds_train = seconds[0];
    res->seconds_busy = f->train_busy;
    res->seconds_busy_max = f->train_busy_max;
    res->seconds_help = f->train_help;
    res->seconds_eval = seconds[1] + now_seconds(CLOCK_MONOTONIC) - w0;
  }
  if (st == LSMI_OK)
    st = fit_done(f, err);
  fit_destroy(f);
  if (st) {
    lsmi_result_destroy(res);
    return st;
  }
  *out = res;
  return LSMI_OK;
}

int lsmi_fit_member(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                    int member, const lsmi_fit_hooks_t *hooks,
                    lsmi_member_t **out, lsmi_error_t *err) {
  return lsmi_fit_part(ds, p, member, -1, hooks, out, err);
}

int lsmi_fit_part(const lsmi_dataset_t *ds, const lsmi_params_t *p, int member,
                  int fold, const lsmi_fit_hooks_t *hooks, lsmi_member_t **out,
                  lsmi_error_t *err) {
  *out = NULL;
  int st = check_args(ds, p, err);
  if (st)
    return st;
  if (member < 0 || member >= p->ensemble)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "ensemble",
                          "member %d of an ensemble of %d", member,
                          p->ensemble);
  if (fold < -1 || fold >= p->folds)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "folds", "fold %d of %d folds",
                          fold, p->folds);
  fit_t *f = fit_new();
  if (f == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  double seconds[2];
  int threads;
  st = fit_run(f, ds, p, hooks, member, 1, fold, seconds, &threads, err);
  if (st == LSMI_OK)
    st = fit_done(f, err);
  if (st == LSMI_OK) {
    *out = f->members[0].out;
    f->members[0].out = NULL;
  }
  fit_destroy(f);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

/* Bytes of n floats allocated by alloc_floats. */
static double float_block(size_t n) { return ((double)n + 15.0) * 4.0; }

/*
 * What lsmi_fit allocates, counted from the same sizes (task_sizes) and the
 * same structure (members, sets, tasks) as fit_setup, task_setup,
 * task_start and task_eval, at the larger of its two phases:
 *   always:    every task's parameters (twice with early stopping), the
 *              sets' row lists, the result's columns and the members';
 *   training:  the training blocks of the tasks being trained; a new set
 *              starts only when every unfinished task of the started ones
 *              is held by a thread, so at most one set's five plus one per
 *              thread are allocated at once;
 *   evaluation: one evaluation block per thread, and the bootstrap.
 * In double, so that no product of the documented ranges overflows.
 */
uint64_t lsmi_fit_memory(size_t n_train, size_t n_val, size_t d1, size_t d2,
                         int classes, const lsmi_params_t *p) {
  int C = classes < 2 ? 2 : classes;
  int nfolds = p->folds;
  int nmembers = p->ensemble < 1 ? 1 : p->ensemble;
  int nsets = nmembers * (nfolds ? nfolds : 1);
  int ntasks = nsets * N_MODELS;
  int T = resolve_threads(p->threads, ntasks);
  bool es = p->early_stopping, sd = nmembers > 1;
  double nt = (double)n_train, nv = (double)n_val, rows = nt + nv;
  size_t din[N_MODELS] = {d1, d2, d1 + d2, d1, d2};
  double params = 0.0, set_train = 0.0, max_train = 0.0, max_eval = 0.0;
  for (int id = 0; id < N_MODELS; id++) {
    task_sizes_t z = task_sizes(p, id, din[id], C);
    bool knife = id >= KNIFE1;
    int epochs = knife ? p->epochs_entropy : p->epochs_discriminator;
    int brows = p->batch_size > z.eval_block ? p->batch_size : z.eval_block;
    params +=
        float_block(es ? 2 * round16(z.nparams) : z.nparams) + 8.0 * epochs +
        (knife && p->knife_init == LSMI_KNIFE_INIT_DATA ? 8.0 * (double)din[id]
                                                        : 0.0);
    double train = float_block(z.nwork) + 4.0 * brows + 4.0 * nt;
    double eval = float_block(round16(z.nacts) + round16(z.nscratch) +
                              round16((size_t)brows * din[id]));
    set_train += train;
    max_train = fmax(max_train, train);
    max_eval = fmax(max_eval, eval);
  }
  params *= nsets;
  double in_flight = nsets > 1 ? set_train + T * max_train : set_train;
  double per_set = (nfolds || es ? 9.0 * nt : 0.0) +
                   (nfolds ? 8.0 * N_MODELS * nv : 0.0) +
                   (double)sizeof(task_t) * N_MODELS;
  /* The result's columns (9, and the 4 of the spread with an ensemble),
   * and with an ensemble the members' own 9 (combine.c). */
  enum { N_COLUMNS = 9, N_SD = 4 };
  double cols = rows * (4.0 + 8.0 * (N_COLUMNS + (sd ? N_SD : 0)));
  if (sd)
    cols += nmembers * rows * (4.0 + 8.0 * N_COLUMNS);
  cols += nfolds ? nmembers * nt : 0.0;
  double boot = sd ? 8.0 * LSMI_CI_COUNT * (fmax(nt, nv) + 2000.0) : 0.0;
  double total =
      params + nsets * per_set + cols + fmax(in_flight, T * max_eval + boot);
  return total >= 1.8e19 ? UINT64_MAX : (uint64_t)total;
}

const char *lsmi_phase_name(lsmi_phase_t phase) {
  switch (phase) {
  case LSMI_PHASE_TRAIN:
    return "train";
  case LSMI_PHASE_EVALUATE:
    return "evaluate";
  case LSMI_PHASE_DONE:
    return "done";
  }
  return "unknown";
}
