/*
 * storepg.h — store.h's API in the cluster mode: what the handlers ask of
 * "the store" answered by the PostgreSQL store (pgstore.h) that every node
 * of the cluster shares, plus the local caches of its files (internal to
 * server/).
 *
 * store.c dispatches: a lsmi_store_t opened with lsmi_store_open_cluster
 * sends each lsmi_store_* call to its lsmi_storepg_* twin here, so the
 * handlers do not know which store runs. The twins keep store.h's
 * contracts, with these differences:
 *
 *   - Every call may answer LSMI_ERR_UNAVAILABLE: the database cannot be
 *     reached (the handlers' 503 with Retry-After). The database may be
 *     away when the daemon starts, too: the connection is made on first
 *     use, tried again at most once a second.
 *   - Files. The data directory's datasets/ and results/ are caches of the
 *     database's blobs: an upload's file is published with its row
 *     (lsmi_storepg_dataset_insert reads datasets/ID, which the handler
 *     has just put in place), a job's result files by the node that ends
 *     it (csched.c), and a node materialises what it lacks: a dataset
 *     before a fit (lsmi_storepg_dataset_file), a succeeded job's result
 *     files when the job is read (lsmi_storepg_job_get), so that the
 *     results handlers find them where a single node keeps them. Blobs
 *     never change under their key, so a cached file stays good until its
 *     dataset or job is deleted: the node that deletes it removes its own
 *     copies (the handlers, as a single node), every other node with its
 *     cache sweep (lsmi_storepg_cache_sweep), never serving them meanwhile
 *     (the database's row is gone). Pending file operations (store.h) are
 *     a single node's bookkeeping: here they do nothing.
 *   - Jobs. lsmi_storepg_job_create makes params.ensemble units of work
 *     (times params.folds with cross-fitting: every fold a unit);
 *     a cancel (lsmi_storepg_job_request_cancel) ends the job at once and
 *     tells the nodes running its units (NOTIFY). Jobs run through the
 *     database's queue (csched.c), never through sched.c's, so the calls
 *     of that scheduler (recover, each_queued, start, finish, progress)
 *     find nothing to do or answer LSMI_ERR_UNSUPPORTED.
 *
 * Owner and lock: any thread may call any function. storepg.mu guards only
 * the opening of the database (taken with trylock: a caller that finds
 * another opening it answers LSMI_ERR_UNAVAILABLE rather than wait); once
 * open, the lsmi_pg_t is read through an atomic pointer.
 */
#ifndef LSMI_STOREPG_H
#define LSMI_STOREPG_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "lsmi.h"
#include "pgstore.h"
#include "store.h"

typedef struct lsmi_storepg_options {
  const char *dsn;      /* copied */
  const char *direct;   /* copied; NULL or "": dsn (pgstore.h's direct_dsn) */
  const char *node;     /* copied; 1 to 63 bytes */
  const char *data_dir; /* copied: the caches' root */
  int connections;      /* the pool's size */
  uint64_t cache_bytes; /* the caches' bound (--cache-bytes; 0: none) */
} lsmi_storepg_options_t;

/*
 * Checks the DSN and tries to open the database (migrating its schema):
 * 0 with *out (taken; lsmi_storepg_close) also when the database does not
 * answer yet (logged; the first call that needs it tries again).
 * LSMI_ERR_INVALID (a malformed DSN or node name), LSMI_ERR_UNSUPPORTED
 * (no libpq, or a schema newer than this lsmi), LSMI_ERR_IO,
 * LSMI_ERR_NOMEM with err saying why, *out NULL.
 */
int lsmi_storepg_open(const lsmi_storepg_options_t *o, lsmi_storepg_t **out,
                      lsmi_error_t *err);
/* NULL is a no-op. */
void lsmi_storepg_close(lsmi_storepg_t *sp);

/* The open database, or NULL while it cannot be reached (then a new try,
 * at most once a second). Borrowed: it lives as long as sp. */
lsmi_pg_t *lsmi_storepg_pg(lsmi_storepg_t *sp);
/* This node's name. */
const char *lsmi_storepg_node(const lsmi_storepg_t *sp);

/*
 * The local file of dataset id, materialised from its blob when the cache
 * lacks it, into path (PATH_MAX bytes): 0, LSMI_ERR_NOTFOUND (no such
 * blob: the dataset was deleted), LSMI_ERR_UNAVAILABLE, LSMI_ERR_IO.
 */
int lsmi_storepg_dataset_file(lsmi_storepg_t *sp, const char *id, char *path);
/* The same for a job's result file of split ("train", "val"). */
int lsmi_storepg_result_file(lsmi_storepg_t *sp, const char *job_id,
                             const char *split, char *path);

/*
 * The caches' sweep (upkeep.c runs it every hour, and on SIGHUP): removes
 * the files of datasets/ and results/ whose dataset or job the database
 * no longer has (deleted through any node), unless used in the last
 * LSMI_STOREPG_SWEEP_GRACE seconds (an upload's file is put in place
 * before its row); then bounds the caches (below). *removed (may be NULL)
 * receives how many files went. 0, LSMI_ERR_UNAVAILABLE, LSMI_ERR_IO (a
 * directory could not be read) or the database's failure. Any thread;
 * blocks on the database.
 *
 * The bound (--cache-bytes): a file's use (a cache hit) sets its access
 * time; after every fetch from the database and with every sweep, while
 * the caches hold more than the bound, the least recently used file goes,
 * but only one the database can give back (its blob exists: not an
 * upload's file before its row, nor a result file before its job's end)
 * and not used in the last LSMI_STOREPG_EVICT_GRACE seconds (a path just
 * handed out is about to be opened; an open file's bytes stay readable).
 * Files in use may keep the caches above the bound for a while.
 */
/* The bytes of the caches' files (datasets/, results/): /metrics'
 * lsmi_data_dir_bytes, as a single node's of its files. 0 or
 * LSMI_ERR_IO. */
int lsmi_storepg_cache_bytes(lsmi_storepg_t *sp, uint64_t *datasets,
                             uint64_t *results);
#define LSMI_STOREPG_SWEEP_GRACE 3600.0
#define LSMI_STOREPG_EVICT_GRACE 60.0
int lsmi_storepg_cache_sweep(lsmi_storepg_t *sp, int *removed);

/* ---- store.h's calls (see there, and above) ---- */

int lsmi_storepg_ping(lsmi_storepg_t *sp);
int lsmi_storepg_check(lsmi_storepg_t *sp, char *why, size_t size);
int lsmi_storepg_dataset_insert(lsmi_storepg_t *sp,
                                const lsmi_dataset_rec_t *rec,
                                lsmi_dataset_rec_t *existing, bool *existed);
int lsmi_storepg_dataset_get(lsmi_storepg_t *sp, const char *tenant,
                             const char *id, lsmi_dataset_rec_t *rec);
int lsmi_storepg_dataset_find_sha(lsmi_storepg_t *sp, const char *tenant,
                                  const char *sha256, lsmi_dataset_rec_t *rec);
int lsmi_storepg_dataset_delete(lsmi_storepg_t *sp, const char *tenant,
                                const char *id, bool with_jobs,
                                lsmi_idlist_t *jobs);
int lsmi_storepg_job_delete(lsmi_storepg_t *sp, const char *tenant,
                            const char *id, int *state);
int lsmi_storepg_dataset_list(lsmi_storepg_t *sp, const char *tenant,
                              int64_t offset, int64_t limit, json_t **page,
                              int64_t *total);
int lsmi_storepg_job_create(lsmi_storepg_t *sp, const lsmi_job_new_t *job,
                            char *existing_id, bool *replayed);
int lsmi_storepg_idem_check(lsmi_storepg_t *sp, const char *tenant,
                            const char *key, const char *req_hash,
                            char *existing_id, bool *replayed);
int lsmi_storepg_job_get(lsmi_storepg_t *sp, const char *tenant, const char *id,
                         json_t **job, int *state);
int lsmi_storepg_job_list(lsmi_storepg_t *sp, const char *tenant, int state,
                          int64_t offset, int64_t limit, json_t **page,
                          int64_t *total);
int lsmi_storepg_job_request_cancel(lsmi_storepg_t *sp, const char *id);
int lsmi_storepg_job_state(lsmi_storepg_t *sp, const char *id, int *state);
int lsmi_storepg_job_cancel_queued(lsmi_storepg_t *sp, const char *id,
                                   double finished_at, bool running_too);
int lsmi_storepg_counts(lsmi_storepg_t *sp, int64_t by_state[LSMI_JOB_STATES],
                        int64_t *datasets);
/* Retention: lsmi_pg_expire (one node at a time: *busy when another node
 * sweeps now). */
int lsmi_storepg_expire(lsmi_storepg_t *sp, double before, int limit,
                        lsmi_idlist_t *jobs, int *keys, bool *busy);
int lsmi_storepg_tenant_bytes(lsmi_storepg_t *sp, const char *tenant,
                              uint64_t *bytes);
/* The cluster's queued jobs, of all tenants and of tenant (sched.c's
 * bound on the queue): 0 or LSMI_ERR_UNAVAILABLE, LSMI_ERR_IO. */
int lsmi_storepg_queued(lsmi_storepg_t *sp, const char *tenant, int64_t *all,
                        int64_t *mine);

#endif
