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
 *
 * Which queued job starts next: the oldest of the tenant that started a job
 * least recently (round robin over the tenants with queued jobs, oldest
 * first within each), once a worker is free and its memory estimate
 * (memory.h) fits what is left of --max-memory; until it fits, nothing
 * starts after it, so a large job is not overtaken forever by small ones.
 * A tenant holds at most --tenant-queue-size queued jobs, so one tenant
 * cannot fill the queue for everyone.
 *
 * Every job reaches a true state. When the store cannot take a job's end
 * (a full disk), the job leaves the running list for the ended list, with
 * its outcome: the API and the metrics show that outcome, and the tick
 * writes it to the store every second until the store takes it. If the
 * daemon stops first, the store still says running, and the next start
 * queues the job again (or cancels it, when a cancel was asked for): never
 * a job "running" with no fit behind it. A store that fails when a job
 * would start leaves the job queued, tried again at the next tick.
 *
 * In the cluster mode (the store is PostgreSQL's) this queue stays empty:
 * jobs wait in the database and csched.c runs this node's share of them;
 * the calls about running work below hand over to it, and the loop's
 * signals, heartbeat, memory budget and shutdown stay here.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "csched.h"
#include "metrics.h"
#include "resfile.h"
#include "sched.h"
#include "storepg.h"
#include "util.h"

enum { CANCEL_NONE = 0, CANCEL_USER = 1, CANCEL_SHUTDOWN = 2 };

/* What a finished fit leaves in the store: its state, when, and JSON texts
 * (malloc'd; NULL stores NULL). */
typedef struct outcome {
  int state;
  double finished_at;
  char *error, *summary, *timings, *progress;
  uint64_t result_bytes; /* of its result files */
} outcome_t;

static void outcome_free(outcome_t *o) {
  free(o->error);
  free(o->summary);
  free(o->timings);
  free(o->progress);
  memset(o, 0, sizeof *o);
}

typedef struct job {
  struct job *next, *prev; /* on one list, under sched.mu */
  lsmi_sched_t *owner;
  char id[64], tenant[64], dataset_id[64];
  uint64_t seq; /* order of arrival: queue order */
  lsmi_params_t params;
  lsmi_dataset_rec_t ds;    /* its dataset, as start() found it */
  uint64_t mem;             /* bytes reserved for its run (loop thread) */
  atomic_int cancel;        /* CANCEL_*: the fit polls it every batch */
  lsmi_progress_t progress; /* written by fit threads under sched.mu */
  bool has_progress;
  uv_work_t work;
  /* Written by the worker, read by the loop thread after the work: */
  int status;
  lsmi_error_t err;
  lsmi_result_t *res;
  char *extra;           /* summary members (class_names, provenance): text */
  uint64_t result_bytes; /* the result files written */
  double t_start, t_end; /* monotonic */
  double t_running;      /* monotonic, when it left the queue (sched.mu) */
  /* On the ended list: the outcome the store has not taken yet. */
  outcome_t out;
} job_t;

/* A list of jobs in order (the queue, the running and the ended jobs). */
typedef struct jlist {
  job_t *head, *tail;
  int n;
} jlist_t;

/* A tenant the scheduler has seen: its queued jobs and places, and when it
 * last started one (for the round robin). */
typedef struct tenant {
  char name[64];
  int queued, reserved;
  uint64_t last_start; /* s->starts when it last started a job; 0 never */
} tenant_t;

struct lsmi_sched {
  uv_loop_t *loop;
  const lsmi_config_t *cfg;
  lsmi_store_t *store;
  lsmi_csched_t *cluster; /* the cluster mode's scheduler, or NULL */
  lsmi_mem_t *mem;
  lsmi_sched_stop_fn on_stop;
  void *stop_ctx;
  atomic_int tenant_limit; /* queued jobs per tenant (a reload sets it) */

  /* sched.mu: the lists, the places reserved, the tenants, progress */
  pthread_mutex_t mu;
  jlist_t queue, running, ended;
  int reserved;
  tenant_t *tenants;
  int ntenants, tcap;
  uint64_t seq, starts;

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

/* Any thread: wakes the loop to dispatch (memory was released). */
static void wake_loop(void *ctx) {
  lsmi_sched_t *s = ctx;
  if (s->started && !s->closing)
    uv_async_send(&s->wake);
}

/* The queued jobs one tenant may hold: --tenant-queue-size, or by default
 * half the queue when the tokens name several tenants, else all of it. */
static int tenant_limit_of(const lsmi_config_t *cfg) {
  size_t tenants = 0;
  lsmi_tokens_counts(cfg->tokens, NULL, &tenants);
  if (cfg->tenant_queue_size > 0)
    return cfg->tenant_queue_size;
  return tenants > 1 ? (cfg->queue_size + 1) / 2 : cfg->queue_size;
}

int lsmi_sched_create(uv_loop_t *loop, const lsmi_config_t *cfg,
                      lsmi_store_t *store, lsmi_sched_stop_fn on_stop,
                      void *stop_ctx, lsmi_sched_t **out) {
  *out = NULL;
  lsmi_sched_t *s = calloc(1, sizeof *s);
  if (s == NULL || lsmi_mem_create(cfg->max_memory, &s->mem)) {
    free(s);
    return LSMI_ERR_NOMEM;
  }
  s->loop = loop;
  s->cfg = cfg;
  s->store = store;
  s->on_stop = on_stop;
  s->stop_ctx = stop_ctx;
  atomic_init(&s->tenant_limit, tenant_limit_of(cfg));
  lsmi_storepg_t *sp = lsmi_store_cluster(store);
  if (sp && lsmi_csched_create(loop, cfg, sp, s->mem, &s->cluster)) {
    lsmi_mem_destroy(s->mem);
    free(s);
    return LSMI_ERR_NOMEM;
  }
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->draining, 0);
  atomic_init(&s->heartbeat_ms, mono_ms());
  lsmi_mem_on_release(s->mem, wake_loop, s);
  *out = s;
  return LSMI_OK;
}

static void job_free(job_t *j) {
  outcome_free(&j->out);
  lsmi_result_destroy(j->res);
  free(j->extra);
  free(j);
}

static void free_list(job_t *j) {
  while (j) {
    job_t *next = j->next;
    job_free(j);
    j = next;
  }
}

void lsmi_sched_destroy(lsmi_sched_t *s) {
  if (s == NULL)
    return;
  free_list(s->queue.head);
  free_list(s->running.head); /* empty after a clean shutdown */
  free_list(s->ended.head);
  free(s->tenants);
  lsmi_csched_destroy(s->cluster);
  lsmi_mem_destroy(s->mem);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

lsmi_mem_t *lsmi_sched_mem(lsmi_sched_t *s) { return s->mem; }

int lsmi_sched_fit_threads(const lsmi_config_t *cfg, const lsmi_params_t *p) {
  if (p->threads > 0)
    return p->threads;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  long share = cores / (cfg->workers > 0 ? cfg->workers : 1);
  return share < 1 ? 1 : (int)share;
}

/* ---- lists and tenants, called with sched.mu held ---- */

static void list_push(jlist_t *l, job_t *j) {
  j->next = NULL;
  j->prev = l->tail;
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
  l->n++;
}

static void list_unlink(jlist_t *l, job_t *j) {
  if (j->prev)
    j->prev->next = j->next;
  else
    l->head = j->next;
  if (j->next)
    j->next->prev = j->prev;
  else
    l->tail = j->prev;
  l->n--;
}

static job_t *find(const jlist_t *l, const char *id) {
  for (job_t *j = l->head; j; j = j->next)
    if (!strcmp(j->id, id))
      return j;
  return NULL;
}

/* The tenant called name, added when new; NULL only without memory. */
static tenant_t *tenant_of(lsmi_sched_t *s, const char *name) {
  for (int i = 0; i < s->ntenants; i++)
    if (!strcmp(s->tenants[i].name, name))
      return &s->tenants[i];
  if (s->ntenants == s->tcap) {
    int cap = s->tcap ? 2 * s->tcap : 8;
    tenant_t *t = realloc(s->tenants, (size_t)cap * sizeof *t);
    if (t == NULL)
      return NULL;
    s->tenants = t;
    s->tcap = cap;
  }
  tenant_t *t = &s->tenants[s->ntenants++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  return t;
}

/* Into the queue, in arrival order (a job put back keeps its place). */
static void q_insert(lsmi_sched_t *s, job_t *j) {
  job_t *after = s->queue.tail;
  while (after && after->seq > j->seq)
    after = after->prev;
  if (after == s->queue.tail) {
    list_push(&s->queue, j);
  } else {
    job_t *before = after ? after->next : s->queue.head;
    j->prev = after;
    j->next = before;
    before->prev = j;
    if (after)
      after->next = j;
    else
      s->queue.head = j;
    s->queue.n++;
  }
  tenant_t *t = tenant_of(s, j->tenant);
  if (t)
    t->queued++;
}

static void q_unlink(lsmi_sched_t *s, job_t *j) {
  list_unlink(&s->queue, j);
  tenant_t *t = tenant_of(s, j->tenant);
  if (t)
    t->queued--;
}

/* ---- any thread ---- */

int lsmi_sched_reserve(lsmi_sched_t *s, const char *tenant, bool *own) {
  *own = false;
  if (atomic_load(&s->draining))
    return LSMI_ERR_SHUTDOWN;
  /* The cluster's queue is the database's, which every node fills: its
   * queued jobs count with this node's places being taken (not under
   * sched.mu: it waits on the network). Other nodes' submissions in
   * flight at the same moment may pass the bound by as many. */
  int64_t all = 0, mine = 0;
  lsmi_storepg_t *sp = s->cluster ? lsmi_store_cluster(s->store) : NULL;
  int st = sp ? lsmi_storepg_queued(sp, tenant, &all, &mine) : LSMI_OK;
  if (st)
    return st;
  pthread_mutex_lock(&s->mu);
  tenant_t *t = tenant_of(s, tenant);
  if (t == NULL)
    st = LSMI_ERR_NOMEM;
  else if (all + s->queue.n + s->reserved >= s->cfg->queue_size)
    st = LSMI_ERR_BUSY;
  else if (mine + t->queued + t->reserved >= atomic_load(&s->tenant_limit))
    st = LSMI_ERR_BUSY, *own = true;
  else
    s->reserved++, t->reserved++;
  pthread_mutex_unlock(&s->mu);
  return st;
}

void lsmi_sched_unreserve(lsmi_sched_t *s, const char *tenant) {
  pthread_mutex_lock(&s->mu);
  s->reserved--;
  tenant_t *t = tenant_of(s, tenant);
  if (t)
    t->reserved--;
  pthread_mutex_unlock(&s->mu);
}

int lsmi_sched_tenant_limit(const lsmi_sched_t *s) {
  return atomic_load(&s->tenant_limit);
}

void lsmi_sched_tokens_reloaded(lsmi_sched_t *s) {
  atomic_store(&s->tenant_limit, tenant_limit_of(s->cfg));
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
  if (s->cluster) { /* queued in the database, whose NOTIFY wakes the nodes */
    lsmi_sched_unreserve(s, tenant);
    lsmi_csched_poke(s->cluster);
    return LSMI_OK;
  }
  job_t *j = job_new(s, id, tenant, dataset_id, params);
  pthread_mutex_lock(&s->mu);
  s->reserved--;
  tenant_t *t = tenant_of(s, tenant);
  if (t)
    t->reserved--;
  if (j) {
    j->seq = ++s->seq;
    q_insert(s, j);
  }
  pthread_mutex_unlock(&s->mu);
  if (j == NULL)
    return LSMI_ERR_NOMEM; /* stays queued in the store: runs after restart */
  uv_async_send(&s->wake);
  return LSMI_OK;
}

int lsmi_sched_cancel(lsmi_sched_t *s, const char *id, bool *running) {
  if (s->cluster)
    return lsmi_csched_cancel(s->cluster, id, running);
  int out = LSMI_OK;
  job_t *gone = NULL;
  *running = false;
  pthread_mutex_lock(&s->mu);
  job_t *j = find(&s->queue, id);
  if (j) {
    q_unlink(s, j);
    gone = j;
  } else if ((j = find(&s->running, id))) {
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
  if (s->cluster)
    return lsmi_csched_progress(s->cluster, id, p, cancel_requested);
  int out = LSMI_ERR_NOTFOUND;
  pthread_mutex_lock(&s->mu);
  job_t *j = find(&s->running, id);
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

int lsmi_sched_whereabouts(lsmi_sched_t *s, const char *id, double *seconds,
                           int *place) {
  int out = LSMI_ERR_NOTFOUND;
  *seconds = 0;
  *place = 0;
  if (s->cluster)
    return lsmi_csched_whereabouts(s->cluster, id, seconds);
  double now = lsmi_util_mono();
  pthread_mutex_lock(&s->mu);
  job_t *j = find(&s->running, id);
  if (j) {
    *seconds = now - j->t_running;
    out = LSMI_OK;
  }
  /* The queue's order; the round robin across tenants may take a later
   * tenant's job first, so the place is where it stands, not a promise. */
  int k = 1;
  for (j = s->queue.head; j && out; j = j->next, k++)
    if (!strcmp(j->id, id)) {
      *place = k;
      out = LSMI_OK;
    }
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_sched_ended(lsmi_sched_t *s, const char *id, lsmi_sched_end_t *end) {
  int out = LSMI_ERR_NOTFOUND;
  pthread_mutex_lock(&s->mu);
  const job_t *j = find(&s->ended, id);
  if (j) {
    out = LSMI_OK;
    if (end) {
      const outcome_t *o = &j->out;
      end->state = o->state;
      end->finished_at = o->finished_at;
      end->error = o->error ? strdup(o->error) : NULL;
      end->summary = o->summary ? strdup(o->summary) : NULL;
      end->progress = o->progress ? strdup(o->progress) : NULL;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return out;
}

void lsmi_sched_end_free(lsmi_sched_end_t *end) {
  free(end->error);
  free(end->summary);
  free(end->progress);
  memset(end, 0, sizeof *end);
}

void lsmi_sched_counts(lsmi_sched_t *s, int *queued, int *running) {
  pthread_mutex_lock(&s->mu);
  *queued = s->queue.n;
  *running = s->running.n;
  pthread_mutex_unlock(&s->mu);
  if (s->cluster)
    *running += lsmi_csched_running(s->cluster);
}

int lsmi_sched_unrecorded(lsmi_sched_t *s, int64_t by_state[LSMI_JOB_STATES]) {
  for (int i = 0; i < LSMI_JOB_STATES; i++)
    by_state[i] = 0;
  pthread_mutex_lock(&s->mu);
  for (const job_t *j = s->ended.head; j; j = j->next)
    if (j->out.state >= 0 && j->out.state < LSMI_JOB_STATES)
      by_state[j->out.state]++;
  int n = s->ended.n;
  pthread_mutex_unlock(&s->mu);
  return n;
}

bool lsmi_sched_draining(lsmi_sched_t *s) {
  return atomic_load(&s->draining) != 0;
}

bool lsmi_sched_ready(lsmi_sched_t *s) {
  return !lsmi_sched_draining(s) &&
         mono_ms() - atomic_load(&s->heartbeat_ms) < 5000;
}

bool lsmi_sched_check_begin(lsmi_sched_t *s, uint64_t bytes) {
  return lsmi_mem_reserve(s->mem, bytes, (double)s->cfg->retry_after);
}

void lsmi_sched_check_end(lsmi_sched_t *s, uint64_t bytes) {
  lsmi_mem_release(s->mem, bytes);
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

lsmi_read_options_t lsmi_sched_read_options(const lsmi_dataset_rec_t *rec,
                                            const lsmi_params_t *p) {
  lsmi_read_options_t o = LSMI_READ_OPTIONS_INIT;
  o.x1 = rec->key_x1[0] ? rec->key_x1 : NULL;
  o.x2 = rec->key_x2[0] ? rec->key_x2 : NULL;
  o.y = rec->key_y[0] ? rec->key_y : NULL;
  o.id = rec->key_id[0] ? rec->key_id : NULL;
  o.val_fraction_given = p->val_fraction > 0;
  o.val_fraction = o.val_fraction_given ? p->val_fraction : rec->val_fraction;
  o.seed = p->seed;
  return o;
}

char *lsmi_sched_summary_extra(const lsmi_dataset_rec_t *rec,
                               const lsmi_params_t *params,
                               const lsmi_dataset_t *ds,
                               const lsmi_read_options_t *opt,
                               const lsmi_read_info_t *info,
                               const lsmi_result_t *res, double started,
                               double read_s, double total_s) {
  lsmi_params_t p = *params; /* as fitted: the split drawn, if any */
  p.val_fraction = ds->val_drawn ? opt->val_fraction : 0;
  p.threads = res->threads;
  lsmi_codec_input_t in = {.dataset_id = rec->id,
                           .name = rec->name,
                           .sha256 = rec->sha256,
                           .bytes = rec->bytes,
                           .opt = opt,
                           .info = info,
                           .val_drawn = ds->val_drawn};
  return lsmi_util_json_text(json_pack(
      "{s:o, s:o}", "class_names", lsmi_codec_class_names(ds), "provenance",
      lsmi_codec_provenance(&in, &p, res, started, read_s, total_s)));
}

static void work(uv_work_t *req) {
  job_t *j = req->data;
  const lsmi_config_t *cfg = j->owner->cfg;
  j->t_start = lsmi_util_mono();
  double started = lsmi_util_now();
  lsmi_dataset_t *ds = NULL;
  if (atomic_load(&j->cancel) != CANCEL_NONE) {
    j->status = lsmi_error_set(&j->err, LSMI_ERR_CANCELLED, "", "cancelled");
    goto out;
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/datasets/%s", cfg->data_dir, j->dataset_id);
  lsmi_read_options_t opt = lsmi_sched_read_options(&j->ds, &j->params);
  lsmi_read_info_t info;
  j->status =
      lsmi_dataset_read_ex(path, &cfg->limits, &opt, &ds, &info, &j->err);
  if (j->status)
    goto out;
  double read_s = lsmi_util_mono() - j->t_start;
  /* threads 0: share the cores among the workers rather than have every
   * running fit take all of them (the results do not depend on it). */
  lsmi_params_t p = j->params;
  p.threads = lsmi_sched_fit_threads(cfg, &p);
  lsmi_fit_hooks_t hooks = {on_progress, fit_cancelled, j};
  j->status = lsmi_fit(ds, &p, &hooks, &j->res, &j->err);
  if (j->status)
    goto out;
  lsmi_resjoin_t jt = lsmi_resjoin_of(ds, &ds->train);
  lsmi_resjoin_t jv = lsmi_resjoin_of(ds, &ds->val);
  j->status = lsmi_resfile_write_ex(cfg->data_dir, j->id, "train",
                                    &j->res->train, &jt, &j->err);
  if (j->status == LSMI_OK)
    j->status = lsmi_resfile_write_ex(cfg->data_dir, j->id, "val", &j->res->val,
                                      &jv, &j->err);
  if (j->status == LSMI_OK) {
    j->extra = lsmi_sched_summary_extra(&j->ds, &j->params, ds, &opt, &info,
                                        j->res, started, read_s,
                                        lsmi_util_mono() - j->t_start);
    j->result_bytes = lsmi_resfile_bytes(cfg->data_dir, j->id);
  }
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
  return lsmi_util_json_text(lsmi_codec_job_error(status, field, detail));
}

static void succeeded(const job_t *j, double secs, outcome_t *o) {
  json_t *sum = lsmi_codec_result_summary(j->res);
  json_t *extra = j->extra ? json_loads(j->extra, 0, NULL) : NULL;
  json_object_update(sum, extra); /* class_names, provenance */
  json_decref(extra);
  o->summary = lsmi_util_json_text(sum);
  o->timings = lsmi_util_json_text(lsmi_codec_result_timings(j->res, secs));
  o->progress =
      lsmi_util_json_text(lsmi_codec_result_progress(j->res, &j->params));
}

static outcome_t outcome_of(const job_t *j, double secs) {
  outcome_t o = {.state = LSMI_JOB_FAILED, .finished_at = lsmi_util_now()};
  bool cancelled = j->status == LSMI_ERR_CANCELLED;
  if (j->status == LSMI_OK) {
    o.state = LSMI_JOB_SUCCEEDED;
    o.result_bytes = j->result_bytes;
    succeeded(j, secs, &o);
  } else if (cancelled && atomic_load(&j->cancel) == CANCEL_SHUTDOWN) {
    o.state = LSMI_JOB_QUEUED; /* stopped by the shutdown: runs again later */
    o.progress = lsmi_util_json_text(lsmi_codec_progress(NULL, &j->params));
  } else if (cancelled) {
    o.state = LSMI_JOB_CANCELLED;
  } else {
    /* The client sees the error; the log (log_transition) has it whole. */
    char detail[sizeof j->err.message];
    snprintf(detail, sizeof detail, "%s",
             j->err.message[0] ? j->err.message
                               : lsmi_status_message(j->status));
    lsmi_util_scrub_paths(detail, sizeof detail, j->owner->cfg->data_dir);
    o.error = error_json(j->status, j->err.field, detail);
  }
  return o;
}

/* Takes j off the running list, gives its memory back and frees it;
 * *running (may be NULL) receives how many still run. */
static void job_drop(lsmi_sched_t *s, job_t *j, int *running) {
  pthread_mutex_lock(&s->mu);
  list_unlink(&s->running, j);
  if (running)
    *running = s->running.n;
  pthread_mutex_unlock(&s->mu);
  if (j->mem)
    lsmi_mem_release(s->mem, j->mem);
  job_free(j);
}

/* Writes o to the store: 0 when the store took it (or has no running job
 * of that id: nothing left to record), else the store's failure. */
static int record(lsmi_sched_t *s, const char *id, const outcome_t *o) {
  int st = lsmi_store_job_finish(s->store, id, o->state, o->finished_at,
                                 o->error, o->summary, o->timings, o->progress,
                                 o->result_bytes);
  return st == LSMI_ERR_NOTFOUND ? LSMI_OK : st;
}

/*
 * Job j (on the running list) has ended with outcome *o (taken): records
 * it and frees j, or, when the store fails, parks j with o on the ended
 * list for the tick to record. Its memory is given back either way.
 * *running (may be NULL) receives how many still run.
 */
static void end_job(lsmi_sched_t *s, job_t *j, outcome_t *o, int *running) {
  if (record(s, j->id, o) == LSMI_OK) {
    outcome_free(o);
    job_drop(s, j, running);
    return;
  }
  lsmi_util_log("store_error",
                json_pack("{s:s, s:s, s:s}", "job", j->id, "state",
                          lsmi_job_state_name(o->state), "detail",
                          "could not record the end of the job: the API "
                          "shows it, and it is written again every second "
                          "until the store takes it"));
  if (j->mem)
    lsmi_mem_release(s->mem, j->mem);
  j->mem = 0;
  lsmi_result_destroy(j->res);
  j->res = NULL;
  pthread_mutex_lock(&s->mu);
  list_unlink(&s->running, j);
  j->out = *o;
  list_push(&s->ended, j);
  if (running)
    *running = s->running.n;
  pthread_mutex_unlock(&s->mu);
  memset(o, 0, sizeof *o);
}

/* Writes the parked ends to the store again; those it takes leave the
 * ended list. Only the loop thread changes that list, so it walks it
 * unlocked and locks to unlink. */
static void record_ended(lsmi_sched_t *s) {
  for (job_t *j = s->ended.head, *next; j; j = next) {
    next = j->next;
    if (record(s, j->id, &j->out))
      continue;
    log_transition(
        j, "recorded",
        json_pack("{s:s}", "state", lsmi_job_state_name(j->out.state)));
    pthread_mutex_lock(&s->mu);
    list_unlink(&s->ended, j);
    pthread_mutex_unlock(&s->mu);
    job_free(j);
  }
}

static void work_done(uv_work_t *req, int uv_status) {
  job_t *j = req->data;
  lsmi_sched_t *s = j->owner;
  (void)uv_status;
  double secs = j->t_end - j->t_start;
  outcome_t o = outcome_of(j, secs);
  if (o.state != LSMI_JOB_SUCCEEDED)
    lsmi_resfile_remove(s->cfg->data_dir, j->id);
  if (o.state != LSMI_JOB_QUEUED)
    lsmi_metrics_fit(secs, lsmi_job_state_name(o.state));
  json_t *extra = json_pack("{s:f, s:s}", "seconds", secs, "status",
                            lsmi_status_name(j->status));
  if (extra && o.state == LSMI_JOB_FAILED && j->err.message[0])
    json_object_set_new(extra, "detail", json_string(j->err.message));
  log_transition(
      j, o.state == LSMI_JOB_QUEUED ? "requeued" : lsmi_job_state_name(o.state),
      extra);
  int running = 0;
  end_job(s, j, &o, &running);
  if (!atomic_load(&s->draining))
    dispatch(s);
  else if (running == 0)
    close_all(s);
}

static void fail_now(lsmi_sched_t *s, job_t *j, int status, const char *msg) {
  outcome_t o = {.state = LSMI_JOB_FAILED,
                 .finished_at = lsmi_util_now(),
                 .error = error_json(status, NULL, msg)};
  log_transition(j, "failed", json_pack("{s:s}", "detail", msg));
  end_job(s, j, &o, NULL);
}

/* The job to start next, moved from the queue to the running list (in one
 * step, so that a cancel always finds it in one of the two; a cancel before
 * the work starts is seen by work() at its first check): the oldest job of
 * the tenant that started one least recently. NULL when no worker is free
 * or nothing is queued. */
static job_t *next_job(lsmi_sched_t *s) {
  job_t *best = NULL;
  uint64_t best_last = 0;
  pthread_mutex_lock(&s->mu);
  for (job_t *j = s->queue.head; j && s->running.n < s->cfg->workers;
       j = j->next) {
    tenant_t *t = tenant_of(s, j->tenant);
    uint64_t last = t ? t->last_start : 0;
    if (best == NULL || last < best_last) {
      best = j;
      best_last = last;
    }
  }
  if (best) {
    q_unlink(s, best);
    list_push(&s->running, best);
    best->t_running = lsmi_util_mono();
  }
  pthread_mutex_unlock(&s->mu);
  return best;
}

/* Back to its place in the queue (the store still has it queued). */
static void put_back(lsmi_sched_t *s, job_t *j) {
  pthread_mutex_lock(&s->mu);
  list_unlink(&s->running, j);
  q_insert(s, j);
  pthread_mutex_unlock(&s->mu);
}

/* What start() did with a job. */
enum { STARTED, ENDED, WAIT };

/* The job's memory for its run: reserved (STARTED), or it can never run
 * (failed: ENDED), or not now (WAIT). */
static int reserve_memory(lsmi_sched_t *s, job_t *j,
                          const lsmi_dataset_rec_t *rec) {
  lsmi_params_t p = j->params;
  p.threads = lsmi_sched_fit_threads(s->cfg, &p);
  uint64_t need = lsmi_mem_job_estimate(rec, &p);
  if (s->cfg->max_job_memory && need > s->cfg->max_job_memory) {
    char a[32], b[32], msg[200];
    snprintf(msg, sizeof msg,
             "the job needs about %s of memory, above --max-job-memory %s",
             lsmi_mem_format(need, a, sizeof a),
             lsmi_mem_format(s->cfg->max_job_memory, b, sizeof b));
    if (lsmi_store_job_start(s->store, j->id, lsmi_util_now()) == LSMI_OK)
      fail_now(s, j, LSMI_ERR_LIMIT, msg);
    else
      job_drop(s, j, NULL);
    return ENDED;
  }
  if (!lsmi_mem_reserve(s->mem, need, 0))
    return WAIT;
  j->mem = need;
  return STARTED;
}

/*
 * Starts job j (on the running list): its dataset looked up, its memory
 * reserved, the store told, the work queued (STARTED). ENDED: j is no
 * longer ours (the store had it cancelled meanwhile, or it failed and its
 * end is recorded or parked). WAIT: not now (no memory, or the store
 * failed); j is back in its place in the queue.
 */
static int start(lsmi_sched_t *s, job_t *j) {
  lsmi_dataset_rec_t rec;
  int st = lsmi_store_dataset_get(s->store, NULL, j->dataset_id, &rec);
  if (st == LSMI_ERR_NOTFOUND) {
    if (lsmi_store_job_start(s->store, j->id, lsmi_util_now()) == LSMI_OK)
      fail_now(s, j, LSMI_ERR_MISSING, "the job's dataset no longer exists");
    else
      job_drop(s, j, NULL);
    return ENDED;
  }
  int got = st ? WAIT : reserve_memory(s, j, &rec);
  if (got != STARTED) {
    if (got == WAIT)
      put_back(s, j);
    return got;
  }
  st = lsmi_store_job_start(s->store, j->id, lsmi_util_now());
  if (st == LSMI_ERR_NOTFOUND) { /* cancelled meanwhile: the store decides */
    job_drop(s, j, NULL);
    return ENDED;
  }
  if (st) {
    lsmi_mem_release(s->mem, j->mem);
    j->mem = 0;
    put_back(s, j);
    return WAIT;
  }
  pthread_mutex_lock(&s->mu);
  tenant_t *t = tenant_of(s, j->tenant);
  if (t)
    t->last_start = ++s->starts;
  pthread_mutex_unlock(&s->mu);
  j->ds = rec;
  j->work.data = j;
  log_transition(j, "running",
                 json_pack("{s:I}", "memory", (json_int_t)j->mem));
  if (uv_queue_work(s->loop, &j->work, work, work_done) != 0) {
    /* Cannot happen with a live loop: queued again in the store, it runs
     * after a restart. */
    lsmi_store_job_finish(s->store, j->id, LSMI_JOB_QUEUED, 0, NULL, NULL, NULL,
                          NULL, 0);
    job_drop(s, j, NULL);
    return ENDED;
  }
  return STARTED;
}

static void dispatch(lsmi_sched_t *s) {
  job_t *j;
  while (!atomic_load(&s->draining) && (j = next_job(s)) != NULL)
    if (start(s, j) == WAIT)
      return;
}

static void on_wake(uv_async_t *h) { dispatch(h->data); }

/* Every second: heartbeat for /readyz, running jobs' progress saved, ends
 * the store did not take written again, and the queue tried again (a job
 * may wait for memory or for the store). */
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
  for (job_t *j = s->running.head; j && n < MAXSNAP; j = j->next)
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
  record_ended(s);
  if (!atomic_load(&s->draining))
    dispatch(s);
}

static void on_grace(uv_timer_t *h) {
  lsmi_sched_t *s = h->data;
  pthread_mutex_lock(&s->mu);
  for (job_t *j = s->running.head; j; j = j->next) {
    int expected = CANCEL_NONE;
    atomic_compare_exchange_strong(&j->cancel, &expected, CANCEL_SHUTDOWN);
  }
  pthread_mutex_unlock(&s->mu);
  lsmi_util_log("shutdown", json_pack("{s:s}", "detail",
                                      "grace period over: stopping running "
                                      "jobs, they will run again on restart"));
}

/* Closes the loop handles, so that uv_run returns; never opened before
 * lsmi_sched_start, so a shutdown before it has nothing to close. Ends the
 * store did not take get a last try; those it still refuses stay running
 * in the store, and the next start queues them again. */
static void close_all(lsmi_sched_t *s) {
  if (s->closing || !s->started)
    return;
  record_ended(s);
  if (s->ended.n)
    lsmi_util_log("store_error",
                  json_pack("{s:i, s:s}", "unrecorded", s->ended.n, "detail",
                            "the end of these jobs is not in the store: the "
                            "next start queues them again (or cancels them, "
                            "when a cancel was asked for)"));
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
  running = s->running.n;
  pthread_mutex_unlock(&s->mu);
  lsmi_util_log("shutdown",
                json_pack("{s:s, s:i}", "detail",
                          "stopping: no new requests; running jobs get the "
                          "grace period",
                          "running", running));
  if (s->on_stop)
    s->on_stop(s->stop_ctx); /* HTTP threads are gone after this returns */
  if (s->cluster)
    lsmi_csched_shutdown(s->cluster);
  pthread_mutex_lock(&s->mu);
  job_t *q = s->queue.head; /* still queued in the store: they run next start */
  s->queue = (jlist_t){NULL, NULL, 0};
  for (int i = 0; i < s->ntenants; i++)
    s->tenants[i].queued = 0;
  running = s->running.n;
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
  j->seq = ++s->seq;
  q_insert(s, j);
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
  if (st == LSMI_OK && s->cluster)
    st = lsmi_csched_start(s->cluster);
  return st;
}
