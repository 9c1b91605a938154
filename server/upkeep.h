/*
 * upkeep.h — the daemon's housekeeping on the loop thread: SIGHUP reloads
 * the tokens (tokens.h) and runs the retention sweep at once; a timer runs
 * it every hour (and a second after the start). The sweep, with
 * --retain-days N > 0, deletes the jobs that finished more than N days ago
 * with their result files and cached orders, and the idempotency keys made
 * more than N days ago, following the data directory's rule (datadir.h):
 * rows and pending entries in one transaction, then the files, then the
 * entries. It deletes at most a batch at a time and comes back a moment
 * later while there is more, so that the loop is never held for long.
 * In the cluster mode the timer and SIGHUP run, on a pool thread (they
 * wait on the database), the retention sweep over the database, batch
 * after batch, by one node at a time (lsmi_storepg_expire), and then the
 * sweep of the node's caches (lsmi_storepg_cache_sweep), each with its
 * log line ("retention", "cache_sweep").
 *
 * Owner: the loop thread, which starts, stops and destroys it.
 */
#ifndef LSMI_UPKEEP_H
#define LSMI_UPKEEP_H

#include <uv.h>

#include "config.h"
#include "sched.h"
#include "store.h"

typedef struct lsmi_upkeep lsmi_upkeep_t;

/* Installs the SIGHUP handler and the timer on loop. cfg, store and sched
 * are borrowed and outlive it; *out is taken (lsmi_upkeep_destroy). 0 or
 * LSMI_ERR_NOMEM. */
int lsmi_upkeep_start(uv_loop_t *loop, const lsmi_config_t *cfg,
                      lsmi_store_t *store, lsmi_sched_t *sched,
                      lsmi_upkeep_t **out);
/* Closes its handles (the daemon is shutting down); NULL or a second call
 * is a no-op. */
void lsmi_upkeep_stop(lsmi_upkeep_t *u);
/* After uv_run returned. NULL is a no-op. */
void lsmi_upkeep_destroy(lsmi_upkeep_t *u);

/* One sweep now: how many jobs it deleted (-1: the store failed). Loop
 * thread. */
int lsmi_upkeep_sweep(lsmi_upkeep_t *u);

#endif
