/*
 * csched.h — the cluster mode's scheduler: this node's share of the work
 * queued in PostgreSQL (pgstore.h), claimed as units under leases, run on
 * the worker pool, and reported back; sched.h's scheduler hands it the
 * calls that concern running work when the store is the cluster's.
 *
 * Owner and lock: the loop thread owns the claims in flight, the wake-ups
 * (a uv_poll_t on the listener's socket, a safety timer, a uv_async_t) and
 * the shutdown. csched.mu guards the list of running units, each unit's
 * claim identity and progress snapshot, and the listener's hand-over
 * between the loop and the keeper thread: held for a few instructions,
 * never while calling the database or logging, and never with another
 * lock of the daemon (fit threads take it from the progress callback:
 * fit.lock -> csched.mu, as with sched.mu). Worker threads run one unit
 * each; the keeper thread (one per node) renews the leases, carries the
 * progress to the database and reconnects the listener, so that neither
 * the loop nor a fit ever waits on the network.
 */
#ifndef LSMI_CSCHED_H
#define LSMI_CSCHED_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "lsmi.h"
#include "memory.h"
#include "storepg.h"

typedef struct lsmi_csched lsmi_csched_t;

/* cfg, sp, mem and loop are borrowed and outlive the scheduler; *out is
 * taken (lsmi_csched_destroy). 0 or LSMI_ERR_NOMEM. */
int lsmi_csched_create(uv_loop_t *loop, const lsmi_config_t *cfg,
                       lsmi_storepg_t *sp, lsmi_mem_t *mem,
                       lsmi_csched_t **out);
/* Loop thread, before uv_run: the wake-ups, the keeper thread, and a first
 * look for work. 0 or LSMI_ERR_THREAD. */
int lsmi_csched_start(lsmi_csched_t *c);
/*
 * Loop thread: no more claims; running units get --shutdown-timeout to
 * finish, then stop and go back to the queue (another node takes them at
 * once). The handles close when the last unit has ended.
 */
void lsmi_csched_shutdown(lsmi_csched_t *c);
/* After uv_run returned (stops the keeper thread). NULL is a no-op. */
void lsmi_csched_destroy(lsmi_csched_t *c);

/* ---- any thread ---- */

/* Looks for work now (a job was queued here; the NOTIFY tells the rest). */
void lsmi_csched_poke(lsmi_csched_t *c);
/* Stops this node's units of job id: 0 (*running true) when one runs here,
 * LSMI_ERR_NOTFOUND otherwise. The database's cancel reaches every node. */
int lsmi_csched_cancel(lsmi_csched_t *c, const char *id, bool *running);
/* The live progress of job id when it is one unit running here (a job of
 * several members shows the database's mean instead): 0 or
 * LSMI_ERR_NOTFOUND. */
int lsmi_csched_progress(lsmi_csched_t *c, const char *id, lsmi_progress_t *p,
                         bool *cancel_requested);
/* How long job id's unit has run here: 0, or LSMI_ERR_NOTFOUND. */
int lsmi_csched_whereabouts(lsmi_csched_t *c, const char *id, double *seconds);
/* Units running here. */
int lsmi_csched_running(lsmi_csched_t *c);

#endif
