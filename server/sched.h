/*
 * sched.h — the job scheduler: a bounded FIFO of queued jobs, the running
 * set, the worker dispatch, timers and signals, all driven by the libuv
 * loop thread.
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
 * Reserves a place in the queue for a job about to be stored: 0, or
 * LSMI_ERR_BUSY when the queue is full, LSMI_ERR_SHUTDOWN when draining.
 * Every successful reserve is followed by submit or unreserve.
 */
int lsmi_sched_reserve(lsmi_sched_t *s);
void lsmi_sched_unreserve(lsmi_sched_t *s);
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
/* Loop heartbeat recent and not draining. */
bool lsmi_sched_ready(lsmi_sched_t *s);
bool lsmi_sched_draining(lsmi_sched_t *s);

#endif
