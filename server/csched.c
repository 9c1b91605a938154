/*
 * csched.c — the cluster mode's scheduler (csched.h says who owns what;
 * pgstore.h describes the queue: units of work claimed under leases, the
 * combination handed to the node that completes a job's last member).
 *
 * Wake-ups. The loop polls the listener's socket (a uv_poll_t): a NOTIFY
 * on "lsmi_work" means work was queued, one on "lsmi_cancel" that a job
 * ended, whose units here stop within a batch. A safety timer (a third of
 * the lease, at most 5 s) looks for work without being told: an expired
 * lease (a dead node's unit) NOTIFYs nobody, and a NOTIFY sent while the
 * listener was away is lost.
 *
 * A unit's life. While a worker is free, the loop has one claim in flight
 * (lsmi_pg_claim on a pool thread: it waits on the network); a unit
 * claimed runs on a pool thread from start to end: the dataset's record,
 * its memory (memory.h, as sched.c admits a job), its file (the node's
 * cache, materialised from the database), its fit, the member's bytes to
 * the database (lsmi_pg_member_complete); and when that was the job's
 * last unit, the combination on the same thread: the other units' bytes,
 * lsmi_combine, the result files written (resfile.c) and
 * published with the job's end (lsmi_pg_job_finish). The member of a job
 * of one goes straight on to its combination and ends the job under its
 * own claim: its end is one transaction, not a completion and a finish,
 * and no member's bytes go to the database only to be read back. A fit
 * that fails fails the job (lsmi_pg_member_fail); SIGTERM gives the unit
 * back (lsmi_pg_member_release) after the grace period.
 *
 * Overlap. Once the combination is made, the unit is reporting: it goes
 * on writing its result files and its finishing transaction on its pool
 * thread, under its claim and lease (the keeper renews it until the
 * finish, as before), but no longer holds a worker: the loop claims the
 * next unit, whose fit starts while this one's report commits. At most
 * --workers units fit and at most as many report (a report waiting on an
 * absent database holds its slot); the pool has room for both and the
 * claim (serve.c). A reporting unit is a running unit in every other
 * respect: a cancel, a lost lease or a shutdown end it as they end any
 * (the finish is refused, or given back after the grace period while the
 * database is away), and the node drains only when it has ended. Its
 * memory stays reserved until then.
 *
 * The keeper thread renews every running unit's lease each third of it,
 * and sends its progress at most every PROGRESS_EVERY seconds while it
 * changes; a renewal refused (the lease was taken over, the job cancelled
 * or failed) stops the unit. It also reconnects the listener, which it
 * then hands to the loop.
 *
 * The database away. A statement a unit needs (its dataset's record, the
 * completion, the finish) is tried again every RETRY_WAIT seconds until the
 * database answers, so a fit goes on and reports when the database is
 * back; renewals fail meanwhile, and a lease that lapses before the
 * database returns lets another node run the unit again, with the same
 * result (the first report wins, the other is refused). Only a shutdown
 * stops the waiting: the lease then returns the unit to the queue.
 *
 * Units and members. A job's units are its ensemble members (unit i is
 * member i, lsmi_fit_member), or with cross-fitting (F >= 2 folds) every
 * fold of every member: unit i is fold i % F of member i / F
 * (lsmi_fit_part), E F units, so that one member's folds spread over the
 * nodes too. lsmi_combine assembles a member from its F parts, in
 * whatever order they come, into the bits lsmi_fit gives. A job queued
 * before folds were units has E units: folds_as_units tells them apart by
 * the count.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "csched.h"
#include "metrics.h"
#include "resfile.h"
#include "sched.h"
#include "util.h"

enum { CANCEL_NONE = 0, CANCEL_USER, CANCEL_LOST, CANCEL_SHUTDOWN };

/* The listener's hand-over (csched.mu): the keeper connects it while
 * L_DOWN and says L_READY; the loop polls it while L_POLLING. */
enum { L_DOWN = 0, L_READY, L_POLLING };

/* Seconds between two reports of a unit's progress to the database. */
#define PROGRESS_EVERY 2.0
/* Seconds between two tries of a statement while the database is away. */
#define RETRY_WAIT 0.5

typedef struct unit {
  struct unit *next, *prev; /* the running list (csched.mu) */
  lsmi_csched_t *owner;
  /* Its job, tenant and dataset are fixed; member and attempt change
   * (under csched.mu) when the combination is handed over. */
  lsmi_pg_claim_t claim;
  lsmi_params_t params; /* parsed by the loop at the claim */
  int params_status;
  lsmi_error_t params_err;
  atomic_int cancel; /* CANCEL_*: the fit polls it every batch */
  /* csched.mu: */
  lsmi_progress_t progress;
  bool has_progress, progress_new;
  bool quiet;        /* its claim is being ended or handed over: the
                        keeper leaves it alone */
  bool reporting;    /* its fit is over: it no longer holds a worker */
  double renewed_at; /* monotonic */
  double t_running;  /* monotonic, when claimed */
  /* Written by the worker, read by the loop after the work: */
  uv_work_t work;
  const char *end; /* how the unit ended, for the log */
  int status;
  lsmi_error_t err;
  double seconds;
  uint64_t mem;
  bool wrote_results;
  /* The worker's: how prepare() read the dataset (opt points into rec),
   * for the job's summary (class_names, provenance). */
  lsmi_dataset_rec_t rec;
  lsmi_read_options_t opt;
  lsmi_read_info_t info;
  double started, read_s; /* epoch seconds; seconds reading */
} unit_t;

struct lsmi_csched {
  uv_loop_t *loop;
  const lsmi_config_t *cfg;
  lsmi_storepg_t *sp;
  lsmi_mem_t *mem;
  double lease;  /* seconds */
  double safety; /* seconds between looks for work nobody announced */

  pthread_mutex_t mu; /* csched.mu (csched.h) */
  pthread_cond_t kwake;
  unit_t *units; /* running here */
  int nunits;
  int nreporting; /* of them, past their fit (unit.reporting) */
  int listen_state;
  bool async_closed, kstop;

  /* The keeper thread's, and the listener's per listen_state: */
  pthread_t keeper;
  bool keeper_started;
  lsmi_pg_listener_t *listener;

  /* The loop thread's: */
  bool started, draining, closing, claiming, repoke, db_down;
  uv_work_t claim_req;
  lsmi_pg_claim_t next;
  int claim_rc;
  uv_async_t async;
  uv_timer_t safety_timer, grace;
  uv_poll_t *poll;
};

static double clampd(double v, double lo, double hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

int lsmi_csched_create(uv_loop_t *loop, const lsmi_config_t *cfg,
                       lsmi_storepg_t *sp, lsmi_mem_t *mem,
                       lsmi_csched_t **out) {
  *out = NULL;
  lsmi_csched_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return LSMI_ERR_NOMEM;
  c->loop = loop;
  c->cfg = cfg;
  c->sp = sp;
  c->mem = mem;
  c->lease = cfg->lease_seconds;
  c->safety = clampd(c->lease / 3, 0.2, 5.0);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->kwake, NULL);
  *out = c;
  return LSMI_OK;
}

static void unit_free(unit_t *u) {
  lsmi_pg_claim_clear(&u->claim);
  free(u);
}

void lsmi_csched_destroy(lsmi_csched_t *c) {
  if (c == NULL)
    return;
  pthread_mutex_lock(&c->mu);
  c->kstop = true;
  pthread_cond_signal(&c->kwake);
  pthread_mutex_unlock(&c->mu);
  if (c->keeper_started)
    pthread_join(c->keeper, NULL);
  lsmi_pg_listen_close(c->listener);
  lsmi_pg_claim_clear(&c->next);
  for (unit_t *u = c->units, *next; u; u = next) { /* none after a clean end */
    next = u->next;
    unit_free(u);
  }
  pthread_cond_destroy(&c->kwake);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* ---- any thread ---- */

static void log_unit(const lsmi_csched_t *c, const unit_t *u, const char *state,
                     json_t *extra) {
  json_t *o =
      json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s}", "job", u->claim.job_id,
                "tenant", u->claim.tenant, "dataset", u->claim.dataset_id,
                "member", u->claim.member, "attempt", u->claim.attempt, "node",
                lsmi_storepg_node(c->sp), "state", state);
  if (o && extra)
    json_object_update(o, extra);
  json_decref(extra);
  lsmi_util_log("unit", o);
}

void lsmi_csched_poke(lsmi_csched_t *c) {
  pthread_mutex_lock(&c->mu);
  if (c->started && !c->async_closed)
    uv_async_send(&c->async);
  pthread_mutex_unlock(&c->mu);
}

/* The running unit of job id (csched.mu held), or NULL. */
static unit_t *unit_of(const lsmi_csched_t *c, const char *id) {
  for (unit_t *u = c->units; u; u = u->next)
    if (!strcmp(u->claim.job_id, id))
      return u;
  return NULL;
}

int lsmi_csched_cancel(lsmi_csched_t *c, const char *id, bool *running) {
  *running = false;
  pthread_mutex_lock(&c->mu);
  for (unit_t *u = c->units; u; u = u->next)
    if (!strcmp(u->claim.job_id, id)) {
      int expected = CANCEL_NONE;
      atomic_compare_exchange_strong(&u->cancel, &expected, CANCEL_USER);
      *running = true;
    }
  pthread_mutex_unlock(&c->mu);
  return *running ? LSMI_OK : LSMI_ERR_NOTFOUND;
}

int lsmi_csched_progress(lsmi_csched_t *c, const char *id, lsmi_progress_t *p,
                         bool *cancel_requested) {
  int out = LSMI_ERR_NOTFOUND;
  pthread_mutex_lock(&c->mu);
  unit_t *u = unit_of(c, id);
  if (u && u->claim.members == 1 && u->claim.member >= 0) {
    out = LSMI_OK;
    if (u->has_progress) {
      *p = u->progress;
    } else {
      memset(p, 0, sizeof *p);
      p->disc_epochs = u->params.epochs_discriminator;
      p->ent_epochs = u->params.epochs_entropy;
    }
    if (cancel_requested)
      *cancel_requested = atomic_load(&u->cancel) == CANCEL_USER;
  }
  pthread_mutex_unlock(&c->mu);
  return out;
}

int lsmi_csched_whereabouts(lsmi_csched_t *c, const char *id, double *seconds) {
  *seconds = 0;
  pthread_mutex_lock(&c->mu);
  unit_t *u = unit_of(c, id);
  if (u)
    *seconds = lsmi_util_mono() - u->t_running;
  pthread_mutex_unlock(&c->mu);
  return u ? LSMI_OK : LSMI_ERR_NOTFOUND;
}

int lsmi_csched_running(lsmi_csched_t *c) {
  pthread_mutex_lock(&c->mu);
  int n = c->nunits;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* ---- the keeper thread ---- */

/* Connects the listener (it was down) and hands it to the loop. */
static void keep_listener(lsmi_csched_t *c) {
  lsmi_pg_t *pg = lsmi_storepg_pg(c->sp);
  if (pg == NULL)
    return;
  int rc = c->listener ? lsmi_pg_listen_reconnect(c->listener)
                       : lsmi_pg_listen_open(pg, &c->listener, NULL);
  if (rc != LSMI_OK)
    return;
  pthread_mutex_lock(&c->mu);
  c->listen_state = L_READY;
  if (!c->async_closed)
    uv_async_send(&c->async);
  pthread_mutex_unlock(&c->mu);
}

/* A renewal due: the claim's identity and, when it is to go along, the
 * progress. */
typedef struct due {
  unit_t *u;
  lsmi_pg_claim_t id; /* params_json NULL */
  bool with_progress;
  lsmi_progress_t p;
  lsmi_params_t params;
} due_t;

/* The units whose lease or progress is due (csched.mu held): *n of them
 * in a new array, or NULL. */
static due_t *collect_due(lsmi_csched_t *c, double now, int *n) {
  *n = 0;
  due_t *d = c->nunits ? calloc((size_t)c->nunits, sizeof *d) : NULL;
  for (unit_t *u = c->units; d && u; u = u->next) {
    bool prog = u->progress_new && now - u->renewed_at >= PROGRESS_EVERY;
    if (u->quiet || (!prog && now - u->renewed_at < c->lease / 3))
      continue;
    due_t *e = &d[(*n)++];
    e->u = u;
    e->id = u->claim;
    e->id.params_json = NULL;
    e->with_progress = prog;
    e->p = u->progress;
    e->params = u->params;
    u->progress_new &= !prog;
  }
  return d;
}

/* Whether unit u still holds the claim e renewed (csched.mu held). */
static bool same_claim(const lsmi_csched_t *c, const due_t *e) {
  for (const unit_t *u = c->units; u; u = u->next)
    if (u == e->u)
      return !u->quiet && u->claim.member == e->id.member &&
             u->claim.attempt == e->id.attempt &&
             !strcmp(u->claim.job_id, e->id.job_id);
  return false;
}

/* Renews what is due; a renewal refused stops its unit. */
static void renew_due(lsmi_csched_t *c) {
  double now = lsmi_util_mono();
  int n = 0;
  pthread_mutex_lock(&c->mu);
  due_t *d = collect_due(c, now, &n);
  pthread_mutex_unlock(&c->mu);
  lsmi_pg_t *pg = n ? lsmi_storepg_pg(c->sp) : NULL;
  for (int i = 0; pg && i < n; i++) {
    due_t *e = &d[i];
    char *text =
        e->with_progress
            ? lsmi_util_json_text(lsmi_codec_progress(&e->p, &e->params))
            : NULL;
    int rc = lsmi_pg_renew(pg, &e->id, c->lease, text, e->p.fraction);
    free(text);
    bool lost = false;
    pthread_mutex_lock(&c->mu);
    if (same_claim(c, e) && rc == LSMI_OK)
      e->u->renewed_at = now;
    if (same_claim(c, e) && rc == LSMI_ERR_CONFLICT) {
      int expected = CANCEL_NONE;
      lost =
          atomic_compare_exchange_strong(&e->u->cancel, &expected, CANCEL_LOST);
    }
    pthread_mutex_unlock(&c->mu);
    if (lost)
      lsmi_util_log("unit",
                    json_pack("{s:s, s:i, s:i, s:s, s:s}", "job", e->id.job_id,
                              "member", e->id.member, "attempt", e->id.attempt,
                              "node", lsmi_storepg_node(c->sp), "state",
                              "lease_lost"));
  }
  free(d);
}

static void *keeper_main(void *arg) {
  lsmi_csched_t *c = arg;
  double tick = clampd(c->lease / 6, 0.1, 1.0);
  pthread_mutex_lock(&c->mu);
  while (!c->kstop) {
    bool down = c->listen_state == L_DOWN;
    pthread_mutex_unlock(&c->mu);
    if (down)
      keep_listener(c);
    renew_due(c);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)(tick * 1e9);
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&c->mu);
    if (!c->kstop)
      pthread_cond_timedwait(&c->kwake, &c->mu, &until);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- worker thread: one unit ---- */

/* Fit threads call this once per family epoch; never concurrently. */
static int on_progress(void *ctx, const lsmi_progress_t *p) {
  unit_t *u = ctx;
  pthread_mutex_lock(&u->owner->mu);
  u->progress = *p;
  u->has_progress = u->progress_new = true;
  pthread_mutex_unlock(&u->owner->mu);
  return atomic_load(&u->cancel) != CANCEL_NONE;
}

static int fit_cancelled(void *ctx) {
  const unit_t *u = ctx;
  return atomic_load_explicit(&u->cancel, memory_order_relaxed) != CANCEL_NONE;
}

static void nap(double seconds) {
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

/* A statement a unit needs, on the open database. */
typedef int (*db_fn)(lsmi_pg_t *pg, void *ctx);

/* Runs fn until the database answers: its status, or LSMI_ERR_CANCELLED
 * when the unit was stopped while waiting. */
static int with_db(unit_t *u, const char *what, db_fn fn, void *ctx) {
  lsmi_csched_t *c = u->owner;
  for (bool waited = false;;) {
    lsmi_pg_t *pg = lsmi_storepg_pg(c->sp);
    int rc = pg ? fn(pg, ctx) : LSMI_ERR_UNAVAILABLE;
    if (rc != LSMI_ERR_UNAVAILABLE && rc != LSMI_ERR_BUSY) {
      if (waited)
        log_unit(c, u, "store_back", json_pack("{s:s}", "waited_for", what));
      return rc;
    }
    if (atomic_load(&u->cancel) != CANCEL_NONE)
      return LSMI_ERR_CANCELLED;
    if (!waited)
      log_unit(c, u, "store_wait", json_pack("{s:s}", "waits_for", what));
    waited = true;
    nap(RETRY_WAIT);
  }
}

/* Marks the unit's claim as being ended or handed over (quiet) or as
 * held again, and copies its identity into *id (params_json NULL). */
static void claim_quiet(unit_t *u, bool quiet, lsmi_pg_claim_t *id) {
  pthread_mutex_lock(&u->owner->mu);
  u->quiet = quiet;
  *id = u->claim;
  id->params_json = NULL;
  pthread_mutex_unlock(&u->owner->mu);
}

typedef struct rec_ctx {
  const char *id;
  lsmi_dataset_rec_t *rec;
} rec_ctx_t;

static int get_rec(lsmi_pg_t *pg, void *ctx) {
  rec_ctx_t *a = ctx;
  return lsmi_pg_dataset_get(pg, NULL, a->id, a->rec);
}

typedef struct file_ctx {
  lsmi_storepg_t *sp;
  const char *id;
  char *path;
} file_ctx_t;

static int get_file(lsmi_pg_t *pg, void *ctx) {
  (void)pg;
  file_ctx_t *a = ctx;
  return lsmi_storepg_dataset_file(a->sp, a->id, a->path);
}

/* The units of a job are its members (E of them; fold -1), or with
 * cross-fitting every fold of every member (E F of them, F = params.folds
 * >= 2): unit i is fold i % F of member i / F. A job queued before folds
 * were units has E units of whole members: its unit count tells. F when
 * the job's folds are units, else 0. */
static int folds_as_units(const unit_t *u) {
  int E = u->params.ensemble, F = u->params.folds;
  return F >= 2 && u->claim.members == E * F ? F : 0;
}

/* The member and fold (-1: the whole member) of unit i of u's job. */
static int unit_part(unit_t *u, int i, int *member, int *fold) {
  int F = folds_as_units(u);
  *member = F ? i / F : i;
  *fold = F ? i % F : -1;
  if (F == 0 && u->claim.members != u->params.ensemble)
    return lsmi_error_set(&u->err, LSMI_ERR_INVALID, "",
                          "a job of %d units for an ensemble of %d and %d "
                          "folds",
                          u->claim.members, u->params.ensemble,
                          u->params.folds);
  return LSMI_OK;
}

/* The unit of u's job that trained m. */
static int unit_of_member(const unit_t *u, const lsmi_member_t *m) {
  int F = folds_as_units(u), fold = lsmi_member_fold(m);
  return F && fold >= 0 ? lsmi_member_index(m) * F + fold
                        : lsmi_member_index(m);
}

/* Reserves the unit's memory (the estimate of one member's fit, or of one
 * fold's when the unit is a fold, or of the whole job for a combination),
 * waiting while it is taken. */
static int reserve_memory(unit_t *u, const lsmi_dataset_rec_t *rec) {
  lsmi_csched_t *c = u->owner;
  lsmi_params_t p = u->params;
  p.threads = lsmi_sched_fit_threads(c->cfg, &p);
  bool fold = u->claim.member >= 0 && folds_as_units(u);
  if (u->claim.member >= 0)
    p.ensemble = 1;
  /* One fold's set is a fit of one set without folds, and besides the
   * train rows' roles, lists and folds (estimate.c's set_setup and
   * member_setup: 10 bytes a row) and what they are drawn with (9 more,
   * for a moment). */
  if (fold)
    p.folds = 0;
  uint64_t need =
      lsmi_mem_job_estimate(rec, &p) + (fold ? (uint64_t)19 * rec->n_train : 0);
  if (c->cfg->max_job_memory && need > c->cfg->max_job_memory) {
    char a[32], b[32];
    return lsmi_error_set(
        &u->err, LSMI_ERR_LIMIT, "",
        "the job needs about %s of memory, above --max-job-memory %s",
        lsmi_mem_format(need, a, sizeof a),
        lsmi_mem_format(c->cfg->max_job_memory, b, sizeof b));
  }
  while (!lsmi_mem_reserve(c->mem, need, 1.0))
    if (atomic_load(&u->cancel) != CANCEL_NONE)
      return LSMI_ERR_CANCELLED;
  u->mem = need;
  return LSMI_OK;
}

/* The unit's dataset: its record, its memory reserved, its file from the
 * cache (materialised when missing) and read as sched.c reads it. */
static int prepare(unit_t *u, lsmi_dataset_t **ds) {
  lsmi_csched_t *c = u->owner;
  lsmi_dataset_rec_t *rec = &u->rec;
  u->started = lsmi_util_now();
  rec_ctx_t rc = {u->claim.dataset_id, rec};
  int st = with_db(u, "the dataset's record", get_rec, &rc);
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&u->err, LSMI_ERR_MISSING, "",
                          "the job's dataset no longer exists");
  if (st == LSMI_OK)
    st = reserve_memory(u, rec);
  char path[PATH_MAX];
  file_ctx_t fc = {c->sp, u->claim.dataset_id, path};
  if (st == LSMI_OK)
    st = with_db(u, "the dataset's file", get_file, &fc);
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&u->err, LSMI_ERR_MISSING, "",
                          "the job's dataset no longer exists");
  if (st)
    return st;
  /* With the upload's keys, as a single node reads it (sched.c). */
  double t0 = lsmi_util_mono();
  u->opt = lsmi_sched_read_options(rec, &u->params);
  st = lsmi_dataset_read_ex(path, &c->cfg->limits, &u->opt, ds, &u->info,
                            &u->err);
  u->read_s = lsmi_util_mono() - t0;
  return st;
}

typedef struct load_ctx {
  const char *job_id;
  int member;
  void *buf;
  size_t len;
} load_ctx_t;

static int load_member(lsmi_pg_t *pg, void *ctx) {
  load_ctx_t *a = ctx;
  return lsmi_pg_member_load(pg, a->job_id, a->member, &a->buf, &a->len);
}

/* Every unit's member or part into ms (one per unit of the job): `have`
 * (taken; may be NULL), and the others' bytes from the database. */
static int gather(unit_t *u, lsmi_member_t *have, lsmi_member_t **ms) {
  int st = LSMI_OK, n = 0;
  if (have)
    ms[n++] = have;
  for (int i = 0; i < u->claim.members; i++) {
    if (have && i == unit_of_member(u, have))
      continue;
    load_ctx_t a = {u->claim.job_id, i, NULL, 0};
    if (st == LSMI_OK)
      st = with_db(u, "a member's bytes", load_member, &a);
    if (st == LSMI_OK)
      st = lsmi_member_load(a.buf, a.len, &ms[n++], &u->err);
    free(a.buf);
  }
  return st;
}

typedef struct finish_ctx {
  const lsmi_pg_claim_t *c;
  const lsmi_pg_finish_t *f;
} finish_ctx_t;

static int finish_job(lsmi_pg_t *pg, void *ctx) {
  finish_ctx_t *a = ctx;
  return lsmi_pg_job_finish(pg, a->c, a->f);
}

/* The unit's fit is over (its result is made): it reports from now on,
 * under its claim and lease as before, and its worker is free, so the
 * loop claims the next unit while this one writes its result files and
 * waits on its finishing transaction. Its memory stays reserved until
 * it ends (its dataset is freed then). */
static void report_begin(unit_t *u) {
  lsmi_csched_t *c = u->owner;
  pthread_mutex_lock(&c->mu);
  if (!u->reporting) {
    u->reporting = true;
    c->nreporting++;
  }
  if (c->started && !c->async_closed)
    uv_async_send(&c->async); /* on_async pokes */
  pthread_mutex_unlock(&c->mu);
  log_unit(c, u, "reporting",
           json_pack("{s:f}", "seconds", lsmi_util_mono() - u->t_running));
}

/* The job's summary: the result's, with the class names and provenance of
 * the read (sched.c's summary_extra), as a single node writes it. */
static char *summary_of(const unit_t *u, const lsmi_dataset_t *ds,
                        const lsmi_result_t *res) {
  json_t *sum = lsmi_codec_result_summary(res);
  char *text = lsmi_sched_summary_extra(
      &u->rec, &u->params, ds, &u->opt, &u->info, res, u->started, u->read_s,
      lsmi_util_mono() - u->t_running);
  json_t *extra = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  json_object_update(sum, extra);
  json_decref(extra);
  return lsmi_util_json_text(sum);
}

/* Publishes the job's end: its result files, written here with the rows'
 * join to the file (row, id, label), and what the API shows of a
 * succeeded job. */
static int publish(unit_t *u, const lsmi_dataset_t *ds,
                   const lsmi_result_t *res) {
  lsmi_csched_t *c = u->owner;
  report_begin(u);
  const char *dir = c->cfg->data_dir, *job = u->claim.job_id;
  lsmi_resjoin_t jt = lsmi_resjoin_of(ds, &ds->train);
  lsmi_resjoin_t jv = lsmi_resjoin_of(ds, &ds->val);
  int st = lsmi_resfile_write_ex(dir, job, "train", &res->train, &jt, &u->err);
  if (st == LSMI_OK)
    st = lsmi_resfile_write_ex(dir, job, "val", &res->val, &jv, &u->err);
  u->wrote_results = true;
  if (st)
    return st;
  char train[PATH_MAX], val[PATH_MAX];
  snprintf(train, sizeof train, "%s/results/%s.train", dir, job);
  snprintf(val, sizeof val, "%s/results/%s.val", dir, job);
  lsmi_pg_file_t files[2] = {{"train", train}, {"val", val}};
  char *summary = summary_of(u, ds, res);
  char *timings = lsmi_util_json_text(
      lsmi_codec_result_timings(res, lsmi_util_mono() - u->t_running));
  char *progress =
      lsmi_util_json_text(lsmi_codec_result_progress(res, &u->params));
  lsmi_pg_finish_t f = {
      LSMI_JOB_SUCCEEDED, lsmi_util_now(), NULL, summary, timings,
      progress,           files,           2};
  lsmi_pg_claim_t id;
  claim_quiet(u, true, &id);
  finish_ctx_t a = {&id, &f};
  st = summary && timings && progress
           ? with_db(u, "the job's end", finish_job, &a)
           : LSMI_ERR_NOMEM;
  free(summary);
  free(timings);
  free(progress);
  if (st == LSMI_OK)
    u->end = "succeeded";
  return st;
}

/* The combination: every unit's member or part (have, taken, may be
 * NULL; the rest from the database) combined, and the job's end
 * published. */
static int combine(unit_t *u, const lsmi_dataset_t *ds, lsmi_member_t *have) {
  int e = u->claim.members;
  lsmi_member_t **ms = calloc((size_t)e, sizeof *ms);
  if (ms == NULL) {
    lsmi_member_destroy(have);
    return LSMI_ERR_NOMEM;
  }
  int st = gather(u, have, ms);
  lsmi_result_t *res = NULL;
  if (st == LSMI_OK) {
    lsmi_params_t p = u->params;
    p.threads = lsmi_sched_fit_threads(u->owner->cfg, &p);
    st = lsmi_combine(ds, &p, ms, e, &res, &u->err); /* takes the members */
  } else {
    for (int i = 0; i < e; i++)
      lsmi_member_destroy(ms[i]);
  }
  free(ms);
  if (st == LSMI_OK)
    st = publish(u, ds, res);
  lsmi_result_destroy(res);
  return st;
}

typedef struct complete_ctx {
  lsmi_pg_claim_t *c;
  const void *buf;
  size_t len;
  double lease;
  bool *combine;
} complete_ctx_t;

static int complete_member(lsmi_pg_t *pg, void *ctx) {
  complete_ctx_t *a = ctx;
  return lsmi_pg_member_complete(pg, a->c, a->buf, a->len, a->lease,
                                 a->combine);
}

/* A member, or a fold of one: trained, its bytes to the database, and on
 * to the combination when it was the job's last unit. */
static int run_member(unit_t *u, const lsmi_dataset_t *ds) {
  lsmi_csched_t *c = u->owner;
  lsmi_params_t p = u->params;
  p.threads = lsmi_sched_fit_threads(c->cfg, &p);
  lsmi_fit_hooks_t hooks = {on_progress, fit_cancelled, u};
  lsmi_member_t *m = NULL;
  int member, fold;
  int st = unit_part(u, u->claim.member, &member, &fold);
  if (st == LSMI_OK)
    st = lsmi_fit_part(ds, &p, member, fold, &hooks, &m, &u->err);
  /* A job of one member: this unit is the job, combined and finished
   * under the member's claim (lsmi_pg_job_finish), without the member's
   * bytes going to the database and back. */
  if (st == LSMI_OK && u->claim.members == 1)
    return combine(u, ds, m);
  void *buf = NULL;
  size_t len = 0;
  if (st == LSMI_OK)
    st = lsmi_member_save(m, &buf, &len, &u->err);
  bool handed = false;
  lsmi_pg_claim_t id;
  claim_quiet(u, true, &id);
  complete_ctx_t a = {&id, buf, len, c->lease, &handed};
  if (st == LSMI_OK)
    st = with_db(u, "the member's report", complete_member, &a);
  free(buf);
  if (st == LSMI_OK && handed) {
    json_t *from = json_pack("{s:i, s:i}", "from_member", u->claim.member,
                             "from_attempt", u->claim.attempt);
    pthread_mutex_lock(&c->mu);
    u->claim.member = id.member;
    u->claim.attempt = id.attempt;
    u->renewed_at = lsmi_util_mono();
    u->quiet = false;
    pthread_mutex_unlock(&c->mu);
    log_unit(c, u, "combining", from);
    return combine(u, ds, m);
  }
  lsmi_member_destroy(m);
  if (st == LSMI_OK)
    u->end = "done";
  return st;
}

typedef struct fail_ctx {
  const lsmi_pg_claim_t *c;
  const char *error;
} fail_ctx_t;

static int fail_member(lsmi_pg_t *pg, void *ctx) {
  fail_ctx_t *a = ctx;
  return lsmi_pg_member_fail(pg, a->c, a->error, lsmi_util_now());
}

static int release_member(lsmi_pg_t *pg, void *ctx) {
  return lsmi_pg_member_release(pg, ctx);
}

/* The unit failed with st (u->err): so does its job. */
static void fail(unit_t *u, int st) {
  char detail[sizeof u->err.message];
  snprintf(detail, sizeof detail, "%s",
           u->err.message[0] ? u->err.message : lsmi_status_message(st));
  lsmi_util_scrub_paths(detail, sizeof detail, u->owner->cfg->data_dir);
  char *error =
      lsmi_util_json_text(lsmi_codec_job_error(st, u->err.field, detail));
  lsmi_pg_claim_t id;
  claim_quiet(u, true, &id);
  fail_ctx_t a = {&id, error};
  int rc = with_db(u, "the failure's report", fail_member, &a);
  free(error);
  u->end = rc == LSMI_OK ? "failed" : "dropped";
}

/* After the run: what its status means for the claim. */
static void conclude(unit_t *u, int st) {
  int why = atomic_load(&u->cancel);
  if (st == LSMI_OK)
    return;
  if (st == LSMI_ERR_CANCELLED && why == CANCEL_SHUTDOWN) {
    lsmi_pg_claim_t id;
    claim_quiet(u, true, &id);
    int rc = with_db(u, "giving the unit back", release_member, &id);
    u->end = rc == LSMI_OK ? "released" : "abandoned";
  } else if (st == LSMI_ERR_CANCELLED) {
    u->end = why == CANCEL_LOST ? "lost" : "cancelled";
  } else if (st == LSMI_ERR_CONFLICT) {
    u->end = "dropped"; /* the claim is over: another node has it, or the
                           job ended */
  } else {
    fail(u, st);
  }
  if (u->wrote_results)
    lsmi_resfile_remove(u->owner->cfg->data_dir, u->claim.job_id);
}

static void unit_work(uv_work_t *w) {
  unit_t *u = w->data;
  double t0 = lsmi_util_mono();
  lsmi_dataset_t *ds = NULL;
  int st = u->params_status;
  if (atomic_load(&u->cancel) != CANCEL_NONE)
    st = LSMI_ERR_CANCELLED;
  else if (st)
    u->err = u->params_err;
  if (st == LSMI_OK)
    st = prepare(u, &ds);
  if (st == LSMI_OK)
    st = u->claim.member == LSMI_PG_COMBINE ? combine(u, ds, NULL)
                                            : run_member(u, ds);
  lsmi_dataset_destroy(ds);
  if (u->mem)
    lsmi_mem_release(u->owner->mem, u->mem);
  u->mem = 0;
  u->status = st;
  conclude(u, st);
  u->seconds = lsmi_util_mono() - t0;
}

/* ---- loop thread ---- */

static void poke(lsmi_csched_t *c);
static void maybe_close(lsmi_csched_t *c);

static void unit_done(uv_work_t *w, int uv_status) {
  (void)uv_status;
  unit_t *u = w->data;
  lsmi_csched_t *c = u->owner;
  json_t *extra = json_pack("{s:f, s:s}", "seconds", u->seconds, "status",
                            lsmi_status_name(u->status));
  if (extra && u->status != LSMI_OK && u->err.message[0])
    json_object_set_new(extra, "detail", json_string(u->err.message));
  log_unit(c, u, u->end ? u->end : "ended", extra);
  if (u->end && (!strcmp(u->end, "succeeded") || !strcmp(u->end, "failed") ||
                 !strcmp(u->end, "cancelled")))
    lsmi_metrics_fit(u->seconds, u->end);
  pthread_mutex_lock(&c->mu);
  if (u->prev)
    u->prev->next = u->next;
  else
    c->units = u->next;
  if (u->next)
    u->next->prev = u->prev;
  c->nunits--;
  c->nreporting -= u->reporting;
  pthread_mutex_unlock(&c->mu);
  unit_free(u);
  if (c->draining)
    maybe_close(c);
  else
    poke(c);
}

/* The claim just made (c->next, moved) becomes a running unit. */
static void start_unit(lsmi_csched_t *c) {
  unit_t *u = calloc(1, sizeof *u);
  if (u == NULL) { /* its lease runs out and another node takes it */
    lsmi_pg_claim_clear(&c->next);
    return;
  }
  u->owner = c;
  u->claim = c->next;
  memset(&c->next, 0, sizeof c->next);
  json_t *pj = json_loads(u->claim.params_json, 0, NULL);
  u->params_status =
      lsmi_codec_params_from_json(pj, &u->params, &u->params_err);
  json_decref(pj);
  atomic_init(&u->cancel, c->draining ? CANCEL_SHUTDOWN : CANCEL_NONE);
  u->t_running = u->renewed_at = lsmi_util_mono();
  u->work.data = u;
  pthread_mutex_lock(&c->mu);
  u->next = c->units;
  if (c->units)
    c->units->prev = u;
  c->units = u;
  c->nunits++;
  pthread_mutex_unlock(&c->mu);
  log_unit(c, u, "running", NULL);
  if (uv_queue_work(c->loop, &u->work, unit_work, unit_done) != 0)
    unit_done(&u->work, 0); /* cannot happen with a live loop */
}

static void claim_work(uv_work_t *w) {
  lsmi_csched_t *c = w->data;
  lsmi_pg_t *pg = lsmi_storepg_pg(c->sp);
  c->claim_rc =
      pg ? lsmi_pg_claim(pg, c->lease, &c->next) : LSMI_ERR_UNAVAILABLE;
}

static void claim_done(uv_work_t *w, int uv_status) {
  (void)uv_status;
  lsmi_csched_t *c = w->data;
  c->claiming = false;
  int rc = c->claim_rc;
  if (rc == LSMI_OK || rc == LSMI_ERR_NOTFOUND) {
    if (c->db_down)
      lsmi_util_log("store_back", json_pack("{s:s}", "what", "claim"));
    c->db_down = false;
  } else if (!c->db_down) {
    c->db_down = true;
    lsmi_util_log("store_unavailable",
                  json_pack("{s:s, s:s, s:s}", "what", "claim", "status",
                            lsmi_status_name(rc), "detail",
                            "no work is claimed until the database answers"));
  }
  if (rc == LSMI_OK)
    start_unit(c); /* while draining, it gives the unit back at once */
  if (c->draining)
    maybe_close(c);
  else if (rc == LSMI_OK || c->repoke)
    poke(c);
}

/* Whether a worker is free: fewer units fitting than --workers, and
 * fewer units reporting than that too (a report waiting on the database
 * does not let fits pile up behind it). */
static bool worker_free(lsmi_csched_t *c) {
  pthread_mutex_lock(&c->mu);
  int w = c->cfg->workers;
  bool ok = c->nunits - c->nreporting < w && c->nunits < 2 * w;
  pthread_mutex_unlock(&c->mu);
  return ok;
}

/* Claims a unit when a worker is free (one claim in flight at a time;
 * a wake-up meanwhile looks again when it returns). */
static void poke(lsmi_csched_t *c) {
  if (!c->started || c->draining || c->closing)
    return;
  if (c->claiming) {
    c->repoke = true;
    return;
  }
  if (!worker_free(c))
    return;
  c->claiming = true;
  c->repoke = false;
  c->claim_req.data = c;
  if (uv_queue_work(c->loop, &c->claim_req, claim_work, claim_done) != 0)
    c->claiming = false;
}

static void on_poll_closed(uv_handle_t *h) {
  lsmi_csched_t *c = h->data;
  free(h);
  pthread_mutex_lock(&c->mu);
  if (c->listen_state == L_POLLING)
    c->listen_state = L_DOWN; /* the keeper reconnects it */
  pthread_cond_signal(&c->kwake);
  pthread_mutex_unlock(&c->mu);
}

static void stop_poll(lsmi_csched_t *c) {
  if (c->poll == NULL)
    return;
  uv_poll_stop(c->poll);
  uv_close((uv_handle_t *)c->poll, on_poll_closed);
  c->poll = NULL;
}

/* Stops the units of job id: it was cancelled, or failed elsewhere. */
static void cancel_job(lsmi_csched_t *c, const char *id) {
  bool running = false;
  lsmi_csched_cancel(c, id, &running);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  lsmi_csched_t *c = h->data;
  lsmi_pg_event_t ev[16];
  int n = 16, rc = status < 0 ? LSMI_ERR_UNAVAILABLE : LSMI_OK;
  bool work = false;
  while (rc == LSMI_OK && n == 16) {
    rc = lsmi_pg_listen_read(c->listener, ev, 16, &n);
    for (int i = 0; rc == LSMI_OK && i < n; i++) {
      if (ev[i].kind == LSMI_PG_CANCEL)
        cancel_job(c, ev[i].job_id);
      else
        work = true;
    }
  }
  if (rc != LSMI_OK)
    stop_poll(c);
  if (work || rc != LSMI_OK)
    poke(c);
}

/* The keeper connected the listener: poll it, and look for what was
 * NOTIFYed while it was away. A poke from another thread lands here
 * too. */
static void on_async(uv_async_t *h) {
  lsmi_csched_t *c = h->data;
  pthread_mutex_lock(&c->mu);
  bool ready = c->listen_state == L_READY && !c->closing;
  pthread_mutex_unlock(&c->mu);
  int fd = ready ? lsmi_pg_listen_fd(c->listener) : -1;
  if (ready && fd >= 0 && c->poll == NULL) {
    c->poll = malloc(sizeof *c->poll);
    if (c->poll && uv_poll_init(c->loop, c->poll, fd) == 0) {
      c->poll->data = c;
      uv_poll_start(c->poll, UV_READABLE, on_poll);
      pthread_mutex_lock(&c->mu);
      c->listen_state = L_POLLING;
      pthread_mutex_unlock(&c->mu);
    } else {
      free(c->poll);
      c->poll = NULL;
    }
  }
  if (ready && c->poll == NULL) {
    pthread_mutex_lock(&c->mu);
    c->listen_state = L_DOWN;
    pthread_mutex_unlock(&c->mu);
  }
  poke(c);
}

static void on_safety(uv_timer_t *h) { poke(h->data); }

int lsmi_csched_start(lsmi_csched_t *c) {
  uv_async_init(c->loop, &c->async, on_async);
  c->async.data = c;
  uv_timer_init(c->loop, &c->safety_timer);
  c->safety_timer.data = c;
  uv_timer_init(c->loop, &c->grace);
  c->grace.data = c;
  uint64_t ms = (uint64_t)(c->safety * 1000);
  uv_timer_start(&c->safety_timer, on_safety, ms, ms);
  c->started = true;
  if (pthread_create(&c->keeper, NULL, keeper_main, c) != 0)
    return LSMI_ERR_THREAD;
  c->keeper_started = true;
  lsmi_util_log("cluster", json_pack("{s:s, s:f, s:i}", "node",
                                     lsmi_storepg_node(c->sp), "lease_seconds",
                                     c->lease, "workers", c->cfg->workers));
  poke(c);
  return LSMI_OK;
}

static void close_all(lsmi_csched_t *c) {
  if (c->closing || !c->started)
    return;
  c->closing = true;
  pthread_mutex_lock(&c->mu);
  c->async_closed = true;
  c->kstop = true; /* no unit is left to renew */
  pthread_cond_signal(&c->kwake);
  pthread_mutex_unlock(&c->mu);
  stop_poll(c);
  uv_close((uv_handle_t *)&c->async, NULL);
  uv_close((uv_handle_t *)&c->safety_timer, NULL);
  uv_close((uv_handle_t *)&c->grace, NULL);
}

static void maybe_close(lsmi_csched_t *c) {
  if (c->draining && !c->claiming && lsmi_csched_running(c) == 0)
    close_all(c);
}

static void on_grace(uv_timer_t *h) {
  lsmi_csched_t *c = h->data;
  pthread_mutex_lock(&c->mu);
  for (unit_t *u = c->units; u; u = u->next) {
    int expected = CANCEL_NONE;
    atomic_compare_exchange_strong(&u->cancel, &expected, CANCEL_SHUTDOWN);
  }
  pthread_mutex_unlock(&c->mu);
  lsmi_util_log("shutdown",
                json_pack("{s:s}", "detail",
                          "grace period over: stopping running units, "
                          "they go back to the cluster's queue"));
}

void lsmi_csched_shutdown(lsmi_csched_t *c) {
  if (c->draining)
    return;
  c->draining = true;
  if (!c->started)
    return;
  uv_timer_stop(&c->safety_timer);
  if (lsmi_csched_running(c) > 0)
    uv_timer_start(&c->grace, on_grace,
                   (uint64_t)c->cfg->shutdown_timeout * 1000u, 0);
  maybe_close(c);
}
