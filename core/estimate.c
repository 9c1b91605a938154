/*
 * estimate.c — lsmi_fit: trains the five models of LSMI in parallel and
 * evaluates the pointwise decomposition on both splits.
 *
 * The five models (MLPs f1(x1), f2(x2), f12([x1,x2]); KNIFE kernels for x1
 * and x2) are independent: the published script trains the three MLPs with
 * one Adam on the sum of their losses, and since Adam is elementwise and each
 * loss term touches only its own model's parameters, that is the same as
 * three Adams on three losses with the same batches. So each model is one
 * task with its own parameters, gradients, moments and scratch, allocated
 * before training (nothing is allocated inside the loops), and its own copy
 * of its family's shuffle stream: the discriminators all draw their epoch
 * permutations from one seeded stream, the KNIFE kernels from another, as
 * the joint training would. No task reads another's data, so the results do
 * not depend on the thread count or on scheduling.
 *
 * Threads: lsmi_fit runs min(threads, 5) pool threads. In training, a task
 * is taken one epoch at a time: a free thread takes the task with the most
 * work left that no other thread holds (its measured CPU seconds per epoch
 * times the epochs left), trains one epoch and gives it back. Three equal
 * discriminators on two threads thus share both cores to the end instead of
 * leaving one core alone with the third; and since a task carries all its
 * state (parameters, moments, its own copy of its shuffle stream, the next
 * epoch), which thread runs an epoch changes nothing in the result.
 * `fit.sched` guards the take and give-back (held for a few instructions
 * per model epoch); its unlock/lock pair is also what hands a task's data
 * from one thread to the next. `fit.lock` guards the progress state and is
 * held briefly at the end of each model epoch, never together with
 * `fit.sched`. The caller's progress callback runs under `fit.lock`, so it is
 * never called concurrently. The stop flag is atomic.
 *
 * The evaluation pass runs the five models over both splits in blocks of
 * rows through the same pool, then decomposes in double precision.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adam.h"
#include "knife.h"
#include "lsmi.h"
#include "mlp.h"
#include "rng.h"

enum { N_MODELS = 5, MLP1 = 0, MLP2, MLP12, KNIFE1, KNIFE2 };

/* Rows per block of the evaluation pass, before the memory cap below: a
 * block's activations (128 rows: 66 KB at 64 hidden units) stay in L2 and
 * are reused from block to block; 1024-row blocks took twice as long on the
 * demo, mostly in first touches of their pages. */
#define EVAL_BLOCK 128
/* Cap on the floats of one KNIFE evaluation scratch block (64 MiB). */
#define EVAL_SCRATCH_FLOATS ((size_t)16 << 20)

typedef struct fit fit_t;

/* One model: everything its training and evaluation touch. Each starts on
 * a cache line of its own: a task's Adam counters are written every step,
 * and the neighbouring task, read every step too, may be on another core. */
typedef struct task {
  _Alignas(64) int id; /* MLP1 .. KNIFE2 */
  bool is_knife;
  size_t col;  /* first feature column of its input */
  int din;     /* input width */
  double cost; /* flops per epoch, for ordering and progress */
  int epochs;
  int next_epoch;       /* training: the epoch to run next */
  bool running;         /* training: held by a thread (fit.sched) */
  double epoch_seconds; /* CPU seconds of its last epoch, 0 before one */
  lsmi_rng_t shuffle;   /* its copy of its family's shuffle stream */
  void *alloc;          /* what calloc returned for block */
  float *block;         /* params | grads | m | v | work, on a cache line */
  size_t nparams;
  float *params, *grads, *m, *v;
  float *acts;    /* MLP activations (max(B, eval block) rows) */
  float *scratch; /* MLP backward / KNIFE scratch */
  float *dlogits; /* (B, C) */
  float *xb;      /* (B, din) gathered batch */
  int32_t *yb;    /* (B) */
  uint32_t *perm; /* (n_train) */
  int eval_block; /* rows per evaluation block */
  lsmi_mlp_t mlp, dmlp;
  lsmi_knife_t knife, dknife;
  lsmi_adam_t adam;
  double *loss_hist; /* (epochs) mean loss per epoch */
  double thread_seconds;
  int status;
} task_t;

struct fit {
  const lsmi_dataset_t *ds;
  const lsmi_params_t *p;
  const lsmi_fit_hooks_t *hooks;
  task_t tasks[N_MODELS];
  int order[N_MODELS];       /* task ids by decreasing cost (evaluation) */
  atomic_int next;           /* evaluation: next index into order */
  pthread_mutex_t sched;     /* training: who holds which task */
  atomic_int stop;           /* set on failure or cancel: every task stops */
  bool evaluating;           /* which pass the pool runs */
  lsmi_rows_t *eval_rows[2]; /* train, val */
  /* Guarded by lock: per-model completed epochs and progress reporting. */
  pthread_mutex_t lock;
  int done_epochs[N_MODELS];
  int disc_reported, ent_reported;
  double disc_loss, ent_loss;
  double total_cost;
  lsmi_phase_t phase;
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
#define TRAIN_SHARE 0.95

static double train_fraction_locked(const fit_t *f) {
  double done = 0.0;
  for (int i = 0; i < N_MODELS; i++)
    done += f->tasks[i].cost * f->done_epochs[i];
  return f->total_cost > 0 ? TRAIN_SHARE * done / f->total_cost : 0.0;
}

/* A model finished epoch `epoch` (0-based): report, every time, so that a
 * caller sees progress after each model epoch even when the models run one
 * after another on one thread; the family epochs reported are the ones
 * every model of the family has completed. */
static void epoch_done(fit_t *f, task_t *t, int epoch) {
  pthread_mutex_lock(&f->lock);
  f->done_epochs[t->id] = epoch + 1;
  int lo_d = f->done_epochs[MLP1];
  if (f->done_epochs[MLP2] < lo_d)
    lo_d = f->done_epochs[MLP2];
  if (f->done_epochs[MLP12] < lo_d)
    lo_d = f->done_epochs[MLP12];
  if (lo_d > f->disc_reported) {
    f->disc_reported = lo_d;
    f->disc_loss = f->tasks[MLP1].loss_hist[lo_d - 1] +
                   f->tasks[MLP2].loss_hist[lo_d - 1] +
                   f->tasks[MLP12].loss_hist[lo_d - 1];
  }
  int lo_e = f->done_epochs[KNIFE1] < f->done_epochs[KNIFE2]
                 ? f->done_epochs[KNIFE1]
                 : f->done_epochs[KNIFE2];
  if (lo_e > f->ent_reported) {
    f->ent_reported = lo_e;
    f->ent_loss = f->tasks[KNIFE1].loss_hist[lo_e - 1] +
                  f->tasks[KNIFE2].loss_hist[lo_e - 1];
  }
  report_locked(f, train_fraction_locked(f));
  pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------------------ */
/* Task set-up                                                              */
/* ------------------------------------------------------------------------ */

/* n floats rounded up to a whole number of 64-byte cache lines */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int task_setup(fit_t *f, task_t *t, int id, lsmi_error_t *err) {
  const lsmi_dataset_t *ds = f->ds;
  const lsmi_params_t *p = f->p;
  int B = p->batch_size;
  int C = ds->classes;
  int H = p->hidden;
  int K = p->components;
  size_t n = ds->train.n;

  t->id = id;
  t->is_knife = id >= KNIFE1;
  t->col = (id == MLP2 || id == KNIFE2) ? ds->d1 : 0;
  size_t din = id == MLP12                    ? ds->d1 + ds->d2
               : (id == MLP2 || id == KNIFE2) ? ds->d2
                                              : ds->d1;
  t->din = (int)din;
  t->epochs = t->is_knife ? p->epochs_entropy : p->epochs_discriminator;
  double dd = (double)din;
  if (t->is_knife) {
    /* Per row: K d×d products forward, twice that backward (counted dense;
     * only the ordering of tasks and the progress fraction use it). */
    t->cost = (double)n * K * (6.0 * dd * dd + 20.0 * dd);
    t->nparams = lsmi_knife_nparams(t->din, K);
    /* Evaluation blocks are capped so that large d stays within memory:
     * the scratch has a small part fixed per call and a part that grows
     * with the rows. */
    size_t per_row =
        lsmi_knife_nscratch(t->din, K, 1) - lsmi_knife_nscratch(t->din, K, 0);
    size_t rows = per_row ? EVAL_SCRATCH_FLOATS / per_row : EVAL_BLOCK;
    t->eval_block = (int)(rows < 1 ? 1 : rows > EVAL_BLOCK ? EVAL_BLOCK : rows);
  } else {
    t->cost = (double)n * 6.0 * (dd * H + (double)H * H + (double)H * C);
    t->nparams = lsmi_mlp_nparams(t->din, H, C);
    t->eval_block = EVAL_BLOCK;
  }
  int rows = B > t->eval_block ? B : t->eval_block;
  size_t nscratch = t->is_knife ? lsmi_knife_nscratch(t->din, K, rows)
                                : lsmi_mlp_nscratch(H, B);
  size_t nacts = t->is_knife ? 0 : lsmi_mlp_nacts(H, C, rows);
  size_t ndl = t->is_knife ? 0 : (size_t)B * (size_t)C;
  size_t nxb = (size_t)B * din;
  /* Every part starts on a cache line: the products load whole 64-byte
   * vectors of them, and a vector split across two lines costs two loads. */
  size_t np = round16(t->nparams);
  size_t total = 4 * np + round16(nacts) + round16(nscratch) + round16(ndl) +
                 round16(nxb);
  /* calloc, aligned by hand, rather than aligned_alloc and memset: a large
   * block comes as fresh zero pages that are touched only where used. */
  t->alloc = calloc(total + 15, sizeof(float));
  t->block = t->alloc ? (float *)(((uintptr_t)t->alloc + 63) & ~(uintptr_t)63)
                      : NULL;
  t->yb = calloc((size_t)B, sizeof *t->yb);
  t->perm = calloc(n ? n : 1, sizeof *t->perm);
  t->loss_hist = calloc((size_t)t->epochs, sizeof *t->loss_hist);
  if (!t->block || !t->yb || !t->perm || !t->loss_hist)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                          "could not allocate %zu floats for model %d", total,
                          id);
  float *q = t->block;
  t->params = q, q += np;
  t->grads = q, q += np;
  t->m = q, q += np;
  t->v = q, q += np;
  t->acts = q, q += round16(nacts);
  t->scratch = q, q += round16(nscratch);
  t->dlogits = q, q += round16(ndl);
  t->xb = q;

  lsmi_rng_seed(&t->shuffle, p->seed,
                t->is_knife ? LSMI_STREAM_SHUFFLE_ENT
                            : LSMI_STREAM_SHUFFLE_DISC);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, p->seed, (uint64_t)(LSMI_STREAM_MLP1 + id));
  if (t->is_knife) {
    lsmi_knife_bind(&t->knife, t->params, t->din, K);
    lsmi_knife_bind(&t->dknife, t->grads, t->din, K);
    lsmi_knife_init(&t->knife, &rng);
  } else {
    lsmi_mlp_bind(&t->mlp, t->params, t->din, H, C);
    lsmi_mlp_bind(&t->dmlp, t->grads, t->din, H, C);
    lsmi_mlp_init(&t->mlp, &rng);
  }
  lsmi_adam_init(&t->adam, t->nparams, t->m, t->v);
  return LSMI_OK;
}

static void task_free(task_t *t) {
  free(t->alloc);
  free(t->yb);
  free(t->perm);
  free(t->loss_hist);
}

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */

/* Trains epoch t->next_epoch of t and advances it; on failure or cancel sets
 * t->status (and the stop flag) instead. */
static void task_train_epoch(fit_t *f, task_t *t) {
  const lsmi_split_t *tr = &f->ds->train;
  const lsmi_params_t *p = f->p;
  size_t ldx = f->ds->d1 + f->ds->d2;
  size_t n = tr->n;
  size_t din = (size_t)t->din;
  int C = f->ds->classes;
  double lr0 = t->is_knife ? p->lr_entropy : p->lr_discriminator;
  int step = t->is_knife ? p->step_entropy : p->step_discriminator;
  lsmi_mlp_acts_t acts;
  if (!t->is_knife)
    lsmi_mlp_acts_bind(&acts, t->acts, p->hidden, C, p->batch_size);

  int epoch = t->next_epoch;
  double lr = lsmi_step_lr(lr0, p->gamma, step, epoch);
  lsmi_rng_permutation(&t->shuffle, t->perm, n);
  double loss_sum = 0.0;
  for (size_t b0 = 0; b0 < n; b0 += (size_t)p->batch_size) {
    if (should_stop(f)) {
      t->status = LSMI_ERR_CANCELLED;
      return;
    }
    int B =
        (int)(n - b0 < (size_t)p->batch_size ? n - b0 : (size_t)p->batch_size);
    for (int i = 0; i < B; i++) {
      size_t row = t->perm[b0 + (size_t)i];
      memcpy(t->xb + (size_t)i * din, tr->x + row * ldx + t->col,
             din * sizeof(float));
      t->yb[i] = tr->y[row];
    }
    double loss;
    if (t->is_knife) {
      loss = lsmi_knife_loss_backward(&t->knife, &t->dknife, t->scratch, t->xb,
                                      din, B);
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
    lsmi_adam_begin(&t->adam, lr);
    if (t->is_knife)
      lsmi_knife_adam_update(&t->knife, &t->dknife, &t->adam);
    else
      lsmi_adam_update(&t->adam, t->params, t->grads, 0, t->nparams);
    loss_sum += loss * B;
  }
  t->loss_hist[epoch] = n ? loss_sum / (double)n : 0.0;
  t->next_epoch = epoch + 1;
  epoch_done(f, t, epoch);
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */
/* ------------------------------------------------------------------------ */

/* Writes this model's column (i or h) for every row of both splits. */
static void task_eval(fit_t *f, task_t *t) {
  const lsmi_params_t *p = f->p;
  size_t ldx = f->ds->d1 + f->ds->d2;
  int C = f->ds->classes;
  lsmi_mlp_acts_t acts;
  if (!t->is_knife)
    lsmi_mlp_acts_bind(&acts, t->acts, p->hidden, C, t->eval_block);
  const lsmi_split_t *splits[2] = {&f->ds->train, &f->ds->val};
  for (int sp = 0; sp < 2; sp++) {
    const lsmi_split_t *s = splits[sp];
    lsmi_rows_t *rows = f->eval_rows[sp];
    double *out = t->id == MLP1     ? rows->i1
                  : t->id == MLP2   ? rows->i2
                  : t->id == MLP12  ? rows->i12
                  : t->id == KNIFE1 ? rows->h1
                                    : rows->h2;
    for (size_t b0 = 0; b0 < s->n; b0 += (size_t)t->eval_block) {
      if (should_stop(f)) {
        t->status = LSMI_ERR_CANCELLED;
        return;
      }
      size_t left = s->n - b0;
      int B =
          (int)(left < (size_t)t->eval_block ? left : (size_t)t->eval_block);
      const float *x = s->x + b0 * ldx + t->col;
      if (t->is_knife) {
        lsmi_knife_logpdf(&t->knife, out + b0, t->scratch, x, ldx, B);
        for (int i = 0; i < B; i++)
          out[b0 + (size_t)i] = -out[b0 + (size_t)i]; /* h = -log p */
      } else {
        lsmi_mlp_forward(&t->mlp, &acts, x, ldx, B);
        /* log p(y|x); the prior is subtracted by the caller. */
        lsmi_log_softmax_at(out + b0, acts.logits, s->y + b0, B, C);
      }
    }
  }
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

/* The free task with the most work left, preferring prev on a near tie
 * (within one of its epochs) so that a thread keeps its caches warm when
 * switching gains nothing; NULL when every task is finished or held.
 * fit.sched must be held. */
static task_t *take_task_locked(fit_t *f, const task_t *prev) {
  task_t *best = NULL;
  double best_left = 0.0;
  for (int i = 0; i < N_MODELS; i++) {
    task_t *t = &f->tasks[i];
    if (t->running || t->next_epoch >= t->epochs || t->status != LSMI_OK)
      continue;
    double left = work_left(t);
    if (t == prev)
      left += t->epoch_seconds;
    if (best == NULL || left > best_left) {
      best = t;
      best_left = left;
    }
  }
  if (best)
    best->running = true;
  return best;
}

/* Training: one model epoch at a time until no task is left that another
 * thread does not hold. A thread that finds none can stop: a held task
 * only ever continues on the thread that gives it back, which is free then
 * to take it again. */
static void pool_train(fit_t *f) {
  task_t *t = NULL;
  for (;;) {
    pthread_mutex_lock(&f->sched);
    t = take_task_locked(f, t);
    pthread_mutex_unlock(&f->sched);
    if (t == NULL || should_stop(f)) {
      if (t) {
        pthread_mutex_lock(&f->sched);
        t->running = false;
        pthread_mutex_unlock(&f->sched);
      }
      return;
    }
    double t0 = now_seconds(CLOCK_THREAD_CPUTIME_ID);
    task_train_epoch(f, t);
    double dt = now_seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
    pthread_mutex_lock(&f->sched);
    t->thread_seconds += dt;
    t->epoch_seconds = dt;
    t->running = false;
    pthread_mutex_unlock(&f->sched);
  }
}

static void *pool_main(void *arg) {
  fit_t *f = arg;
  if (!f->evaluating) {
    pool_train(f);
    return NULL;
  }
  for (;;) {
    int k = atomic_fetch_add(&f->next, 1);
    if (k >= N_MODELS)
      break;
    task_t *t = &f->tasks[f->order[k]];
    double t0 = now_seconds(CLOCK_THREAD_CPUTIME_ID);
    task_eval(f, t);
    t->thread_seconds += now_seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
  }
  return NULL;
}

/* Runs every task once on `threads` threads (the calling thread is one). */
static int pool_run(fit_t *f, int threads, lsmi_error_t *err) {
  pthread_t tid[N_MODELS];
  int started = 0;
  atomic_store(&f->next, 0);
  for (int i = 1; i < threads; i++) {
    if (pthread_create(&tid[started], NULL, pool_main, f) != 0)
      break; /* fewer threads: the remaining ones pick up the work */
    started++;
  }
  pool_main(f);
  for (int i = 0; i < started; i++)
    pthread_join(tid[i], NULL);
  int st = LSMI_OK;
  for (int i = 0; i < N_MODELS; i++) {
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
/* Results                                                                  */
/* ------------------------------------------------------------------------ */

/* The nine double columns of rows, so that allocation and release list
 * them once. */
enum { N_COLUMNS = 9 };
static void rows_columns(lsmi_rows_t *r, double **cols[N_COLUMNS]) {
  double **all[N_COLUMNS] = {&r->r,  &r->u1,  &r->u2, &r->s, &r->i1,
                             &r->i2, &r->i12, &r->h1, &r->h2};
  memcpy(cols, all, sizeof all);
}

static int rows_alloc(lsmi_rows_t *r, size_t n) {
  size_t m = n ? n : 1;
  double **cols[N_COLUMNS];
  rows_columns(r, cols);
  r->n = n;
  r->y = calloc(m, sizeof *r->y);
  int st = r->y ? LSMI_OK : LSMI_ERR_NOMEM;
  for (int i = 0; i < N_COLUMNS; i++) {
    *cols[i] = calloc(m, sizeof(double));
    if (*cols[i] == NULL)
      st = LSMI_ERR_NOMEM;
  }
  return st;
}

static void rows_free(lsmi_rows_t *r) {
  double **cols[N_COLUMNS];
  rows_columns(r, cols);
  free(r->y);
  for (int i = 0; i < N_COLUMNS; i++)
    free(*cols[i]);
}

void lsmi_result_destroy(lsmi_result_t *res) {
  if (res == NULL)
    return;
  rows_free(&res->train);
  rows_free(&res->val);
  free(res);
}

/* i = log p(y|x) - log p(y); then decomposition, adjustment and means. */
static void finish_split(const lsmi_params_t *p, const double *log_prior,
                         const lsmi_split_t *s, lsmi_rows_t *rows,
                         lsmi_summary_t *sum) {
  for (size_t k = 0; k < s->n; k++) {
    double lp = log_prior[s->y[k]];
    rows->y[k] = s->y[k];
    rows->i1[k] -= lp;
    rows->i2[k] -= lp;
    rows->i12[k] -= lp;
  }
  lsmi_decompose(s->n, rows->i1, rows->i2, rows->i12, rows->h1, rows->h2,
                 rows->r, rows->u1, rows->u2, rows->s);
  sum->shift =
      p->adjust ? lsmi_adjust(s->n, rows->r, rows->u1, rows->u2, rows->s) : 0.0;
  lsmi_summarize(rows, sum);
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

static int make_log_prior(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                          double *log_prior, lsmi_error_t *err) {
  int C = ds->classes;
  if (p->prior == LSMI_PRIOR_UNIFORM) {
    for (int c = 0; c < C; c++)
      log_prior[c] = -log((double)C);
    return LSMI_OK;
  }
  for (int c = 0; c < C; c++)
    log_prior[c] = 0.0;
  for (size_t k = 0; k < ds->train.n; k++)
    log_prior[ds->train.y[k]] += 1.0;
  for (int c = 0; c < C; c++) {
    if (log_prior[c] == 0.0)
      return lsmi_error_set(err, LSMI_ERR_DATA, "train_y",
                            "class %d has no train rows, so the empirical "
                            "prior is undefined",
                            c);
    log_prior[c] = log(log_prior[c] / (double)ds->train.n);
  }
  return LSMI_OK;
}

static int resolve_threads(int requested) {
  int t = requested;
  if (t <= 0) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    t = online > 0 ? (int)online : 1;
  }
  return t > N_MODELS ? N_MODELS : t;
}

int lsmi_fit(const lsmi_dataset_t *ds, const lsmi_params_t *p,
             const lsmi_fit_hooks_t *hooks, lsmi_result_t **out,
             lsmi_error_t *err) {
  *out = NULL;
  int st = lsmi_params_validate(p, err);
  if (st)
    return st;
  st = check_dataset(ds, err);
  if (st)
    return st;
  double *log_prior = calloc((size_t)ds->classes, sizeof *log_prior);
  /* fit_t holds the cache-line-aligned tasks: calloc's alignment is not
   * enough. */
  size_t fsize = (sizeof(fit_t) + 63) & ~(size_t)63;
  fit_t *f = aligned_alloc(64, fsize);
  if (f)
    memset(f, 0, fsize);
  lsmi_result_t *res = calloc(1, sizeof *res);
  if (!log_prior || !f || !res) {
    free(log_prior);
    free(f);
    free(res);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  st = make_log_prior(ds, p, log_prior, err);
  if (st)
    goto done;

  f->ds = ds;
  f->p = p;
  f->hooks = hooks;
  f->phase = LSMI_PHASE_TRAIN;
  pthread_mutex_init(&f->lock, NULL);
  pthread_mutex_init(&f->sched, NULL);
  for (int i = 0; i < N_MODELS; i++) {
    st = task_setup(f, &f->tasks[i], i, err);
    if (st)
      goto done;
    f->total_cost += f->tasks[i].cost * f->tasks[i].epochs;
    f->order[i] = i;
  }
  /* Costliest first: the evaluation pass takes the tasks in this order, so
   * that the longest never starts last (training picks by work left). */
  for (int i = 1; i < N_MODELS; i++)
    for (int j = i;
         j > 0 && f->tasks[f->order[j]].cost > f->tasks[f->order[j - 1]].cost;
         j--) {
      int tmp = f->order[j];
      f->order[j] = f->order[j - 1];
      f->order[j - 1] = tmp;
    }

  int threads = resolve_threads(p->threads);
  res->threads = threads;
  pthread_mutex_lock(&f->lock);
  report_locked(f, 0.0);
  pthread_mutex_unlock(&f->lock);

  double w0 = now_seconds(CLOCK_MONOTONIC);
  st = pool_run(f, threads, err);
  res->seconds_train = now_seconds(CLOCK_MONOTONIC) - w0;
  if (st)
    goto done;
  res->seconds_disc = f->tasks[MLP1].thread_seconds +
                      f->tasks[MLP2].thread_seconds +
                      f->tasks[MLP12].thread_seconds;
  res->seconds_ent =
      f->tasks[KNIFE1].thread_seconds + f->tasks[KNIFE2].thread_seconds;
  res->disc_loss = f->disc_loss;
  res->ent_loss = f->ent_loss;

  if (rows_alloc(&res->train, ds->train.n) ||
      rows_alloc(&res->val, ds->val.n)) {
    st = lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                        "could not allocate the result columns");
    goto done;
  }
  pthread_mutex_lock(&f->lock);
  f->phase = LSMI_PHASE_EVALUATE;
  report_locked(f, TRAIN_SHARE);
  pthread_mutex_unlock(&f->lock);
  f->evaluating = true;
  f->eval_rows[0] = &res->train;
  f->eval_rows[1] = &res->val;
  w0 = now_seconds(CLOCK_MONOTONIC);
  st = pool_run(f, threads, err);
  if (st)
    goto done;
  finish_split(p, log_prior, &ds->train, &res->train, &res->train_summary);
  finish_split(p, log_prior, &ds->val, &res->val, &res->val_summary);
  res->seconds_eval = now_seconds(CLOCK_MONOTONIC) - w0;

  pthread_mutex_lock(&f->lock);
  f->phase = LSMI_PHASE_DONE;
  report_locked(f, 1.0);
  pthread_mutex_unlock(&f->lock);
  /* A cancel that arrived with the last report still wins. */
  if (should_stop(f))
    st = lsmi_error_set(err, LSMI_ERR_CANCELLED, "", "the fit was cancelled");

done:
  if (f->ds) {
    pthread_mutex_destroy(&f->lock);
    pthread_mutex_destroy(&f->sched);
  }
  for (int i = 0; i < N_MODELS; i++)
    task_free(&f->tasks[i]);
  free(f);
  free(log_prior);
  if (st) {
    lsmi_result_destroy(res);
    return st;
  }
  *out = res;
  return LSMI_OK;
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
