/*
 * sched.h — the job scheduler: a bounded queue of jobs started round robin
 * across tenants as workers and memory free up (--workers, --max-memory),
 * the running set, the ended jobs whose end the store has not taken yet,
 * the worker dispatch, timers and signals, all driven by the libuv loop
 * thread.
 *
 * Owner and lock: the loop thread owns the queue and the running set. HTTP
 * threads may append to the queue, remove a queued job, set a running job's
 * cancel flag and read progress snapshots, each under sched.mu for a few
 * instructions; fit threads write their own job's progress snapshot under
 * sched.mu. Nobody calls the store or logs while holding sched.mu.
 */
#ifndef LSMI_SCHED_H
#define LSMI_SCHED_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "lsmi.h"
#include "memory.h"
#include "store.h"

typedef struct lsmi_sched lsmi_sched_t;

/* Called on the loop thread when shutdown begins: stop the HTTP side. */
typedef void (*lsmi_sched_stop_fn)(void *ctx);

/* cfg, store and loop are borrowed and must outlive the scheduler; *out is
 * taken by the caller (lsmi_sched_destroy). 0 or LSMI_ERR_NOMEM. */
int lsmi_sched_create(uv_loop_t *loop, const lsmi_config_t *cfg,
                      lsmi_store_t *store, lsmi_sched_stop_fn on_stop,
                      void *stop_ctx, lsmi_sched_t **out);
/*
 * Loop thread, before uv_run: installs the signal handlers, timers and the
 * wake-up handle and queues every job the store has in state queued: 0, or
 * LSMI_ERR_IO when the store could not be read (shut down then).
 */
int lsmi_sched_start(lsmi_sched_t *s);
/* After uv_run returned. NULL is a no-op. */
void lsmi_sched_destroy(lsmi_sched_t *s);
/* Loop thread: begin the graceful shutdown (what SIGTERM does). */
void lsmi_sched_shutdown(lsmi_sched_t *s);

/* ---- any thread ---- */

/*
 * Reserves a place in the queue for a job of `tenant` about to be stored:
 * 0, or LSMI_ERR_BUSY when the queue is full (*own false) or the tenant
 * holds its share of it already (*own true: --tenant-queue-size),
 * LSMI_ERR_SHUTDOWN when draining. In the cluster mode the queue is the
 * database's (its queued jobs count), and LSMI_ERR_UNAVAILABLE or
 * LSMI_ERR_IO say it could not be counted. Every successful reserve is
 * followed by submit or unreserve (of the same tenant).
 */
int lsmi_sched_reserve(lsmi_sched_t *s, const char *tenant, bool *own);
void lsmi_sched_unreserve(lsmi_sched_t *s, const char *tenant);
/* The queued jobs one tenant may hold. */
int lsmi_sched_tenant_limit(const lsmi_sched_t *s);
/* The tokens were reloaded: the default share of a tenant follows how many
 * tenants they name now. */
void lsmi_sched_tokens_reloaded(lsmi_sched_t *s);
/* Queues a stored job (params copied) in the reserved place: 0, or
 * LSMI_ERR_NOMEM (the job stays queued in the store and runs after a
 * restart). */
int lsmi_sched_submit(lsmi_sched_t *s, const char *id, const char *tenant,
                      const char *dataset_id, const lsmi_params_t *params);

/*
 * Cancels job id: 0 when it was here, LSMI_ERR_NOTFOUND when it is neither
 * queued nor running here. *running tells which: true, it runs and its
 * cancel flag is set (the fit stops within a batch); false, it was queued
 * and is removed from the queue (the caller marks the store).
 */
int lsmi_sched_cancel(lsmi_sched_t *s, const char *id, bool *running);

/*
 * The live progress of a running job into *p: 0, or LSMI_ERR_NOTFOUND when
 * it does not run here. *cancel_requested (may be NULL) tells whether a
 * cancel is pending.
 */
int lsmi_sched_progress(lsmi_sched_t *s, const char *id, lsmi_progress_t *p,
                        bool *cancel_requested);
void lsmi_sched_counts(lsmi_sched_t *s, int *queued, int *running);
/*
 * Where job id is: running for *seconds (and *place 0), or queued at
 * *place (1 = next to run; *seconds 0): 0, or LSMI_ERR_NOTFOUND when it is
 * neither here.
 */
int lsmi_sched_whereabouts(lsmi_sched_t *s, const char *id, double *seconds,
                           int *place);

/* A job that has ended but whose end the store has not taken yet (a full
 * disk): its true state, and copies of its JSON texts (NULL when none). */
typedef struct lsmi_sched_end {
  int state;
  double finished_at;
  char *error, *summary, *progress;
} lsmi_sched_end_t;
/* Job id's unrecorded end into *end (may be NULL; release it with
 * lsmi_sched_end_free): 0, or LSMI_ERR_NOTFOUND when it has none. */
int lsmi_sched_ended(lsmi_sched_t *s, const char *id, lsmi_sched_end_t *end);
void lsmi_sched_end_free(lsmi_sched_end_t *end);
/* The unrecorded ends by their true state; returns how many. */
int lsmi_sched_unrecorded(lsmi_sched_t *s, int64_t by_state[LSMI_JOB_STATES]);

/* The memory budget of fits and upload checks (memory.h); owned by the
 * scheduler, whose loop it wakes when memory is given back. */
lsmi_mem_t *lsmi_sched_mem(lsmi_sched_t *s);
/* An upload check about to hold `bytes`: reserves them, waiting up to
 * --retry-after seconds for memory to free (true: granted; then call
 * lsmi_sched_check_end). */
bool lsmi_sched_check_begin(lsmi_sched_t *s, uint64_t bytes);
void lsmi_sched_check_end(lsmi_sched_t *s, uint64_t bytes);
/* The threads a fit with params p runs on: p->threads, or for 0 the cores
 * shared among the workers. */
int lsmi_sched_fit_threads(const lsmi_config_t *cfg, const lsmi_params_t *p);
/*
 * How a job reads its dataset rec (borrowed: the keys point into it): with
 * the keys of the upload, and the val split drawn with p's val_fraction
 * (asked for: an error on a file with its own val split, as in `lsmi fit`)
 * or else the upload's, with p's seed, as `lsmi fit --seed` draws it. The
 * cluster's units (csched.c) read it the same way.
 */
lsmi_read_options_t lsmi_sched_read_options(const lsmi_dataset_rec_t *rec,
                                            const lsmi_params_t *p);
/*
 * The summary's members that come from the read, as JSON text (malloc'd,
 * made and released on the calling thread): class_names and provenance of
 * the fit res of params on ds, read from rec with opt (info, read_s
 * seconds), started at `started` (epoch seconds), total_s seconds in all.
 * NULL when out of memory (the summary then goes without them).
 */
char *lsmi_sched_summary_extra(const lsmi_dataset_rec_t *rec,
                               const lsmi_params_t *params,
                               const lsmi_dataset_t *ds,
                               const lsmi_read_options_t *opt,
                               const lsmi_read_info_t *info,
                               const lsmi_result_t *res, double started,
                               double read_s, double total_s);
/* Loop heartbeat recent and not draining. */
bool lsmi_sched_ready(lsmi_sched_t *s);
bool lsmi_sched_draining(lsmi_sched_t *s);

#endif
