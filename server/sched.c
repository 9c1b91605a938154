/*
 * sched.c — the job queue and the workers (see sched.h for ownership and
 * serve.c for the daemon's thread roles and lock order).
 *
 * A job moves queued -> running -> succeeded | failed | cancelled. Every
 * transition is written to the store by the loop thread (or, for cancelling
 * a queued job, by the HTTP thread that removed it from the queue) before
 * it is logged. A fit runs on a libuv pool thread (uv_queue_work), reads its
 * dataset file, fits, writes its result files (resfile.c, durably),
 * and hands its lsmi_result_t back to the loop thread in the completion
 * callback, which stores the summary. On shutdown running fits are stopped
 * through their cancel flag and go back to queued, so a restart runs them
 * again from the start with the same seed, hence the same results.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "metrics.h"
#include "resfile.h"
#include "sched.h"
#include "util.h"

enum { CANCEL_NONE = 0, CANCEL_USER = 1, CANCEL_SHUTDOWN = 2 };

typedef struct job {
  struct job *next, *prev; /* queue or running list, under sched.mu */
  lsmi_sched_t *owner;
  char id[64], tenant[64], dataset_id[64];
  lsmi_params_t params;
  double ds_val_fraction;   /* the dataset's upload-time split fraction */
  atomic_int cancel;        /* CANCEL_*: the fit polls it every batch */
  lsmi_progress_t progress; /* written by fit threads under sched.mu */
  bool has_progress;
  uv_work_t work;
  /* Written by the worker, read by the loop thread after the work: */
  int status;
  lsmi_error_t err;
  lsmi_result_t *res;
  double t_start, t_end; /* monotonic */
} job_t;

struct lsmi_sched {
  uv_loop_t *loop;
  const lsmi_config_t *cfg;
  lsmi_store_t *store;
  lsmi_sched_stop_fn on_stop;
  void *stop_ctx;

  pthread_mutex_t mu; /* sched.mu: queue, running list, reserved, progress */
  job_t *q_head, *q_tail;
  int queued;
  int reserved;
  job_t *running_head;
  int running;

  atomic_int draining;
  atomic_llong heartbeat_ms; /* last loop timer tick (monotonic ms) */

  /* Loop-thread only: */
  uv_async_t wake;
  uv_timer_t tick;
  uv_timer_t grace;
  uv_signal_t sigterm, sigint;
  bool started, closing;
};

static long long mono_ms(void) { return (long long)(lsmi_util_mono() * 1e3); }

int lsmi_sched_create(uv_loop_t *loop, const lsmi_config_t *cfg,
                      lsmi_store_t *store, lsmi_sched_stop_fn on_stop,
                      void *stop_ctx, lsmi_sched_t **out) {
  lsmi_sched_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return LSMI_ERR_NOMEM;
  s->loop = loop;
  s->cfg = cfg;
  s->store = store;
  s->on_stop = on_stop;
  s->stop_ctx = stop_ctx;
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->draining, 0);
  atomic_init(&s->heartbeat_ms, mono_ms());
  *out = s;
  return LSMI_OK;
}

static void free_list(job_t *j) {
  while (j) {
    job_t *next = j->next;
    free(j);
    j = next;
  }
}

void lsmi_sched_destroy(lsmi_sched_t *s) {
  if (s == NULL)
    return;
  free_list(s->q_head);
  free_list(s->running_head); /* empty after a clean shutdown */
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* ---- queue primitives, called with sched.mu held ---- */

static void q_push(lsmi_sched_t *s, job_t *j) {
  j->next = NULL;
  j->prev = s->q_tail;
  if (s->q_tail)
    s->q_tail->next = j;
  else
    s->q_head = j;
  s->q_tail = j;
  s->queued++;
}

static void q_unlink(lsmi_sched_t *s, job_t *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    s->q_head = j->next;
  if (j->next)
    j->next->prev = j->prev;
  else
    s->q_tail = j->prev;
  s->queued--;
}

static void run_add(lsmi_sched_t *s, job_t *j) {
  j->prev = NULL;
  j->next = s->running_head;
  if (s->running_head)
    s->running_head->prev = j;
  s->running_head = j;
  s->running++;
}

static void run_unlink(lsmi_sched_t *s, job_t *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    s->running_head = j->next;
  if (j->next)
    j->next->prev = j->prev;
  s->running--;
}

static job_t *find(job_t *head, const char *id) {
  for (job_t *j = head; j; j = j->next)
    if (!strcmp(j->id, id))
      return j;
  return NULL;
}

/* ---- any thread ---- */

int lsmi_sched_reserve(lsmi_sched_t *s) {
  if (atomic_load(&s->draining))
    return LSMI_ERR_SHUTDOWN;
  int st = LSMI_OK;
  pthread_mutex_lock(&s->mu);
  if (s->queued + s->reserved >= s->cfg->queue_size)
    st = LSMI_ERR_BUSY;
  else
    s->reserved++;
  pthread_mutex_unlock(&s->mu);
  return st;
}

void lsmi_sched_unreserve(lsmi_sched_t *s) {
  pthread_mutex_lock(&s->mu);
  s->reserved--;
  pthread_mutex_unlock(&s->mu);
}

static job_t *job_new(lsmi_sched_t *s, const char *id, const char *tenant,
                      const char *dataset_id, const lsmi_params_t *params) {
  job_t *j = calloc(1, sizeof *j);
  if (j == NULL)
    return NULL;
  j->owner = s;
  snprintf(j->id, sizeof j->id, "%s", id);
  snprintf(j->tenant, sizeof j->tenant, "%s", tenant);
  snprintf(j->dataset_id, sizeof j->dataset_id, "%s", dataset_id);
  j->params = *params;
  atomic_init(&j->cancel, CANCEL_NONE);
  return j;
}

int lsmi_sched_submit(lsmi_sched_t *s, const char *id, const char *tenant,
                      const char *dataset_id, const lsmi_params_t *params) {
  job_t *j = job_new(s, id, tenant, dataset_id, params);
  pthread_mutex_lock(&s->mu);
  s->reserved--;
  if (j)
    q_push(s, j);
  pthread_mutex_unlock(&s->mu);
  if (j == NULL)
    return LSMI_ERR_NOMEM; /* stays queued in the store: runs after restart */
  uv_async_send(&s->wake);
  return LSMI_OK;
}

int lsmi_sched_cancel(lsmi_sched_t *s, const char *id, bool *running) {
  int out = LSMI_OK;
  job_t *gone = NULL;
  *running = false;
  pthread_mutex_lock(&s->mu);
  job_t *j = find(s->q_head, id);
  if (j) {
    q_unlink(s, j);
    gone = j;
  } else if ((j = find(s->running_head, id))) {
    atomic_store(&j->cancel, CANCEL_USER);
    *running = true;
  } else {
    out = LSMI_ERR_NOTFOUND;
  }
  pthread_mutex_unlock(&s->mu);
  free(gone);
  return out;
}

int lsmi_sched_progress(lsmi_sched_t *s, const char *id, lsmi_progress_t *p,
                        bool *cancel_requested) {
  int out = LSMI_ERR_NOTFOUND;
  pthread_mutex_lock(&s->mu);
  job_t *j = find(s->running_head, id);
  if (j) {
    out = LSMI_OK;
    if (j->has_progress) {
      *p = j->progress;
    } else {
      memset(p, 0, sizeof *p);
      p->disc_epochs = j->params.epochs_discriminator;
      p->ent_epochs = j->params.epochs_entropy;
    }
    if (cancel_requested)
      *cancel_requested = atomic_load(&j->cancel) == CANCEL_USER;
  }
  pthread_mutex_unlock(&s->mu);
  return out;
}

void lsmi_sched_counts(lsmi_sched_t *s, int *queued, int *running) {
  pthread_mutex_lock(&s->mu);
  *queued = s->queued;
  *running = s->running;
  pthread_mutex_unlock(&s->mu);
}

bool lsmi_sched_draining(lsmi_sched_t *s) {
  return atomic_load(&s->draining) != 0;
}

bool lsmi_sched_ready(lsmi_sched_t *s) {
  return !lsmi_sched_draining(s) &&
         mono_ms() - atomic_load(&s->heartbeat_ms) < 5000;
}

/* ---- worker thread ---- */

/* Fit threads call this once per family epoch; never concurrently. */
static int on_progress(void *ctx, const lsmi_progress_t *p) {
  job_t *j = ctx;
  pthread_mutex_lock(&j->owner->mu);
  j->progress = *p;
  j->has_progress = true;
  pthread_mutex_unlock(&j->owner->mu);
  return atomic_load(&j->cancel) != CANCEL_NONE;
}

/* Fit threads poll this between batches, concurrently: one atomic load. */
static int fit_cancelled(void *ctx) {
  const job_t *j = ctx;
  return atomic_load_explicit(&j->cancel, memory_order_relaxed) != CANCEL_NONE;
}

static void work(uv_work_t *req) {
  job_t *j = req->data;
  const lsmi_config_t *cfg = j->owner->cfg;
  j->t_start = lsmi_util_mono();
  lsmi_dataset_t *ds = NULL;
  if (atomic_load(&j->cancel) != CANCEL_NONE) {
    j->status = lsmi_error_set(&j->err, LSMI_ERR_CANCELLED, "", "cancelled");
    goto out;
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/datasets/%s", cfg->data_dir, j->dataset_id);
  double vf =
      j->params.val_fraction > 0 ? j->params.val_fraction : j->ds_val_fraction;
  j->status = lsmi_dataset_read(path, &cfg->limits, vf, j->params.seed, &ds,
                                NULL, &j->err);
  if (j->status)
    goto out;
  /* threads 0: share the cores among the workers rather than have every
   * running fit take all of them (the results do not depend on it). */
  lsmi_params_t p = j->params;
  if (p.threads == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long share = cores / (cfg->workers > 0 ? cfg->workers : 1);
    p.threads = share < 1 ? 1 : (int)share;
  }
  lsmi_fit_hooks_t hooks = {on_progress, fit_cancelled, j};
  j->status = lsmi_fit(ds, &p, &hooks, &j->res, &j->err);
  if (j->status)
    goto out;
  j->status = lsmi_resfile_write(cfg->data_dir, j->id, "train", &j->res->train,
                                 &j->err);
  if (j->status == LSMI_OK)
    j->status =
        lsmi_resfile_write(cfg->data_dir, j->id, "val", &j->res->val, &j->err);
out:
  lsmi_dataset_destroy(ds);
  j->t_end = lsmi_util_mono();
}

/* ---- loop thread ---- */

static void dispatch(lsmi_sched_t *s);
static void close_all(lsmi_sched_t *s);

static void log_transition(const job_t *j, const char *state, json_t *extra) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "job", j->id, "tenant",
                        j->tenant, "dataset", j->dataset_id, "state", state);
  if (o && extra)
    json_object_update(o, extra);
  json_decref(extra);
  lsmi_util_log("job", o);
}

/* A problem object of a failed job, as its compact JSON (malloc'd). */
static char *error_json(int status, const char *field, const char *detail) {
  json_t *e =
      json_pack("{s:i, s:s, s:s}", "status", lsmi_codec_http_status(status),
                "title", lsmi_status_name(status), "detail", detail);
  if (e && field && field[0])
    json_object_set_new(e, "field", json_string(field));
  return lsmi_util_json_text(e);
}

/* What a finished fit leaves in the store: its state and JSON texts
 * (malloc'd; NULL stores NULL). */
typedef struct outcome {
  int state;
  char *error, *summary, *timings, *progress;
} outcome_t;

static void succeeded(const job_t *j, double secs, outcome_t *o) {
  const lsmi_result_t *res = j->res;
  json_t *sum = json_object();
  json_object_set_new(sum, "train", lsmi_codec_summary(&res->train_summary));
  json_object_set_new(sum, "val", lsmi_codec_summary(&res->val_summary));
  json_object_set_new(sum, "ensemble", json_integer(res->ensemble));
  json_object_set_new(sum, "folds", json_integer(res->folds));
  json_object_set_new(sum, "diagnostics", lsmi_codec_diagnostics(res));
  json_object_set_new(sum, "warnings", lsmi_codec_warnings(res));
  o->summary = lsmi_util_json_text(sum);
  o->timings = lsmi_util_json_text(
      json_pack("{s:f, s:f, s:f, s:f, s:f, s:i}", "seconds_total", secs,
                "seconds_train", res->seconds_train, "seconds_eval",
                res->seconds_eval, "seconds_disc", res->seconds_disc,
                "seconds_ent", res->seconds_ent, "threads", res->threads));
  lsmi_progress_t done = {.phase = LSMI_PHASE_DONE,
                          .disc_epoch = j->params.epochs_discriminator,
                          .disc_epochs = j->params.epochs_discriminator,
                          .disc_loss = res->disc_loss,
                          .ent_epoch = j->params.epochs_entropy,
                          .ent_epochs = j->params.epochs_entropy,
                          .ent_loss = res->ent_loss,
                          .fraction = 1.0};
  o->progress = lsmi_util_json_text(lsmi_codec_progress(&done, &j->params));
}

static outcome_t outcome_of(const job_t *j, double secs) {
  outcome_t o = {LSMI_JOB_FAILED, NULL, NULL, NULL, NULL};
  bool cancelled = j->status == LSMI_ERR_CANCELLED;
  if (j->status == LSMI_OK) {
    o.state = LSMI_JOB_SUCCEEDED;
    succeeded(j, secs, &o);
  } else if (cancelled && atomic_load(&j->cancel) == CANCEL_SHUTDOWN) {
    o.state = LSMI_JOB_QUEUED; /* stopped by the shutdown: runs again later */
    o.progress = lsmi_util_json_text(lsmi_codec_progress(NULL, &j->params));
  } else if (cancelled) {
    o.state = LSMI_JOB_CANCELLED;
  } else {
    o.error = error_json(j->status, j->err.field,
                         j->err.message[0] ? j->err.message
                                           : lsmi_status_message(j->status));
  }
  return o;
}

/* Takes j off the running list and frees it; *running (may be NULL)
 * receives how many still run. */
static void job_drop(lsmi_sched_t *s, job_t *j, int *running) {
  pthread_mutex_lock(&s->mu);
  run_unlink(s, j);
  if (running)
    *running = s->running;
  pthread_mutex_unlock(&s->mu);
  lsmi_result_destroy(j->res);
  free(j);
}

static void work_done(uv_work_t *req, int uv_status) {
  job_t *j = req->data;
  lsmi_sched_t *s = j->owner;
  (void)uv_status;
  double secs = j->t_end - j->t_start;
  outcome_t o = outcome_of(j, secs);
  if (o.state != LSMI_JOB_SUCCEEDED)
    lsmi_resfile_remove(s->cfg->data_dir, j->id);
  if (lsmi_store_job_finish(s->store, j->id, o.state, lsmi_util_now(), o.error,
                            o.summary, o.timings, o.progress))
    lsmi_util_log("store_error",
                  json_pack("{s:s, s:s}", "job", j->id, "error",
                            "could not record the end of the job; it runs "
                            "again after a restart"));
  if (o.state != LSMI_JOB_QUEUED)
    lsmi_metrics_fit(secs, lsmi_job_state_name(o.state));
  log_transition(
      j, o.state == LSMI_JOB_QUEUED ? "requeued" : lsmi_job_state_name(o.state),
      json_pack("{s:f, s:s}", "seconds", secs, "status",
                lsmi_status_name(j->status)));
  free(o.error);
  free(o.summary);
  free(o.timings);
  free(o.progress);
  int running = 0;
  job_drop(s, j, &running);
  if (!atomic_load(&s->draining))
    dispatch(s);
  else if (running == 0)
    close_all(s);
}

static void fail_now(lsmi_sched_t *s, job_t *j, int status, const char *msg) {
  char *e = error_json(status, NULL, msg);
  lsmi_store_job_finish(s->store, j->id, LSMI_JOB_FAILED, lsmi_util_now(), e,
                        NULL, NULL, NULL);
  log_transition(j, "failed", json_pack("{s:s}", "detail", msg));
  free(e);
}

/* The queue's first job moved to the running list, if a worker is free;
 * in one step, so that a cancel always finds the job in one of the two (a
 * cancel before the work starts is seen by work() at its first check). */
static job_t *next_job(lsmi_sched_t *s) {
  job_t *j = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->running < s->cfg->workers && s->q_head) {
    j = s->q_head;
    q_unlink(s, j);
    run_add(s, j);
  }
  pthread_mutex_unlock(&s->mu);
  return j;
}

/*
 * Starts job j (on the running list) in the store and on a worker: 0; or
 * LSMI_ERR_NOTFOUND when the store no longer has it queued (cancelled
 * meanwhile: the store decides); or the status it failed with (recorded);
 * or LSMI_ERR_THREAD when the loop would not take the work (it is queued
 * again in the store and runs after a restart).
 */
static int start(lsmi_sched_t *s, job_t *j) {
  int st = lsmi_store_job_start(s->store, j->id, lsmi_util_now());
  if (st)
    return st;
  lsmi_dataset_rec_t rec;
  st = lsmi_store_dataset_get(s->store, NULL, j->dataset_id, &rec);
  if (st == LSMI_ERR_NOTFOUND)
    fail_now(s, j, LSMI_ERR_MISSING, "the job's dataset no longer exists");
  else if (st)
    fail_now(s, j, st, "could not read the job's dataset from the store");
  if (st)
    return st;
  j->ds_val_fraction = rec.val_fraction;
  j->work.data = j;
  log_transition(j, "running", NULL);
  if (uv_queue_work(s->loop, &j->work, work, work_done) != 0) {
    lsmi_store_job_finish(s->store, j->id, LSMI_JOB_QUEUED, 0, NULL, NULL, NULL,
                          NULL);
    return LSMI_ERR_THREAD;
  }
  return LSMI_OK;
}

static void dispatch(lsmi_sched_t *s) {
  job_t *j;
  while (!atomic_load(&s->draining) && (j = next_job(s)) != NULL) {
    int st = start(s, j);
    if (st)
      job_drop(s, j, NULL);
    if (st == LSMI_ERR_THREAD) /* cannot happen with a live loop */
      return;
  }
}

static void on_wake(uv_async_t *h) { dispatch(h->data); }

/* Every second: heartbeat for /readyz, and running jobs' progress saved. */
static void on_tick(uv_timer_t *h) {
  lsmi_sched_t *s = h->data;
  atomic_store(&s->heartbeat_ms, mono_ms());
  enum { MAXSNAP = 64 };
  struct {
    char id[64];
    lsmi_progress_t p;
    lsmi_params_t params;
  } snap[MAXSNAP];
  int n = 0;
  pthread_mutex_lock(&s->mu);
  for (job_t *j = s->running_head; j && n < MAXSNAP; j = j->next)
    if (j->has_progress) {
      memcpy(snap[n].id, j->id, sizeof snap[n].id);
      snap[n].p = j->progress;
      snap[n].params = j->params;
      n++;
    }
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < n; i++) {
    char *t =
        lsmi_util_json_text(lsmi_codec_progress(&snap[i].p, &snap[i].params));
    if (t)
      lsmi_store_job_progress(s->store, snap[i].id, t);
    free(t);
  }
}

static void on_grace(uv_timer_t *h) {
  lsmi_sched_t *s = h->data;
  pthread_mutex_lock(&s->mu);
  for (job_t *j = s->running_head; j; j = j->next) {
    int expected = CANCEL_NONE;
    atomic_compare_exchange_strong(&j->cancel, &expected, CANCEL_SHUTDOWN);
  }
  pthread_mutex_unlock(&s->mu);
  lsmi_util_log("shutdown", json_pack("{s:s}", "detail",
                                      "grace period over: stopping running "
                                      "jobs, they will run again on restart"));
}

/* Closes the loop handles, so that uv_run returns; never opened before
 * lsmi_sched_start, so a shutdown before it has nothing to close. */
static void close_all(lsmi_sched_t *s) {
  if (s->closing || !s->started)
    return;
  s->closing = true;
  uv_close((uv_handle_t *)&s->wake, NULL);
  uv_close((uv_handle_t *)&s->tick, NULL);
  uv_close((uv_handle_t *)&s->grace, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  uv_close((uv_handle_t *)&s->sigint, NULL);
}

void lsmi_sched_shutdown(lsmi_sched_t *s) {
  if (atomic_exchange(&s->draining, 1))
    return;
  int running;
  pthread_mutex_lock(&s->mu);
  running = s->running;
  pthread_mutex_unlock(&s->mu);
  lsmi_util_log("shutdown",
                json_pack("{s:s, s:i}", "detail",
                          "stopping: no new requests; running jobs get the "
                          "grace period",
                          "running", running));
  if (s->on_stop)
    s->on_stop(s->stop_ctx); /* HTTP threads are gone after this returns */
  pthread_mutex_lock(&s->mu);
  job_t *q = s->q_head; /* still queued in the store: they run next start */
  s->q_head = s->q_tail = NULL;
  s->queued = 0;
  running = s->running;
  pthread_mutex_unlock(&s->mu);
  free_list(q);
  if (running == 0) {
    close_all(s);
    return;
  }
  uv_timer_start(&s->grace, on_grace,
                 (uint64_t)s->cfg->shutdown_timeout * 1000u, 0);
}

static void on_signal(uv_signal_t *h, int signum) {
  lsmi_util_log("signal", json_pack("{s:i}", "signal", signum));
  lsmi_sched_shutdown(h->data);
}

static void load_queued(void *ctx, const lsmi_job_row_t *row) {
  lsmi_sched_t *s = ctx;
  lsmi_params_t p;
  json_t *pj = json_loads(row->params_json, 0, NULL);
  lsmi_error_t err = {0};
  int st = lsmi_codec_params_from_json(pj, &p, &err);
  json_decref(pj);
  if (st) { /* stored by an older binary with other ranges: run defaults? no */
    lsmi_util_log("job_skipped", json_pack("{s:s, s:s}", "job", row->id,
                                           "detail", err.message));
    return;
  }
  job_t *j = job_new(s, row->id, row->tenant, row->dataset_id, &p);
  if (j == NULL)
    return;
  pthread_mutex_lock(&s->mu);
  q_push(s, j);
  pthread_mutex_unlock(&s->mu);
}

int lsmi_sched_start(lsmi_sched_t *s) {
  uv_async_init(s->loop, &s->wake, on_wake);
  s->wake.data = s;
  uv_timer_init(s->loop, &s->tick);
  s->tick.data = s;
  uv_timer_init(s->loop, &s->grace);
  s->grace.data = s;
  uv_signal_init(s->loop, &s->sigterm);
  s->sigterm.data = s;
  uv_signal_init(s->loop, &s->sigint);
  s->sigint.data = s;
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  uv_timer_start(&s->tick, on_tick, 1000, 1000);
  s->started = true;
  int requeued = 0, cancelled = 0;
  int st = lsmi_store_job_recover(s->store, &requeued, &cancelled);
  if (st == LSMI_OK)
    st = lsmi_store_job_each_queued(s->store, load_queued, s);
  int queued, running;
  lsmi_sched_counts(s, &queued, &running);
  lsmi_util_log("recovered",
                json_pack("{s:i, s:i, s:i}", "requeued", requeued, "cancelled",
                          cancelled, "queued", queued));
  uv_async_send(&s->wake);
  return st;
}
