/*
 * store.h — the daemon's durable metadata: datasets, jobs and idempotency
 * keys in one SQLite database (WAL journal, synchronous=FULL, so a commit
 * that returned is on disk). Files (uploads, result columns) live beside it
 * under the data directory; the store holds only their ids.
 *
 * Owner and lock: one connection guarded by store.mu. Any thread may call
 * these functions; each takes store.mu for its whole statement or
 * transaction and never calls out while holding it. json_t values returned
 * are made on the calling thread and taken by it.
 *
 * Every call returns 0 or a negative status of lsmi.h's one table:
 * LSMI_ERR_IO when SQLite fails (the reason goes to the log as a
 * "store_error" line), LSMI_ERR_NOSPACE when it fails for a full disk
 * (SQLITE_FULL), LSMI_ERR_NOMEM, and where a function says so
 * LSMI_ERR_NOTFOUND or LSMI_ERR_CONFLICT. An outcome that is no error but
 * asks the caller to do something else (the bytes were uploaded before, the
 * idempotency key was used for this very request) is a bool out-parameter.
 *
 * In the cluster mode (`lsmi serve --store postgresql://…`) the same calls
 * go to the PostgreSQL store the nodes share (lsmi_store_open_cluster,
 * storepg.h), so the handlers need not know which store runs; each may
 * then also answer LSMI_ERR_UNAVAILABLE, the database out of reach.
 */
#ifndef LSMI_STORE_H
#define LSMI_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lsmi.h"

typedef struct lsmi_store lsmi_store_t;

typedef enum lsmi_job_state {
  LSMI_JOB_QUEUED = 0,
  LSMI_JOB_RUNNING,
  LSMI_JOB_SUCCEEDED,
  LSMI_JOB_FAILED,
  LSMI_JOB_CANCELLED,
  LSMI_JOB_STATES
} lsmi_job_state_t;

/* "queued" ... "cancelled"; "unknown" for a value that is no state. */
const char *lsmi_job_state_name(int state);
/* The state called `name` into *state: 0, or LSMI_ERR_INVALID. */
int lsmi_job_state_parse(const char *name, int *state);

/*
 * Opens (creating) the database at path and brings its schema up to date
 * (PRAGMA user_version; store.c lists the versions): 0, LSMI_ERR_NOMEM,
 * LSMI_ERR_IO, or LSMI_ERR_UNSUPPORTED for a store of a newer version than
 * this binary knows, with err saying why. *out is taken by the caller
 * (lsmi_store_close).
 */
int lsmi_store_open(const char *path, lsmi_store_t **out, lsmi_error_t *err);
/* The schema version lsmi_store_open brings a store to. */
int lsmi_store_schema_latest(void);
/* NULL is a no-op. */
void lsmi_store_close(lsmi_store_t *s);

/*
 * The cluster mode: a store whose every call goes to the PostgreSQL store
 * sp (taken, also on failure), which the nodes of a cluster share
 * (storepg.h says how its answers differ). 0 or LSMI_ERR_NOMEM.
 */
typedef struct lsmi_storepg lsmi_storepg_t;
int lsmi_store_open_cluster(lsmi_storepg_t *sp, lsmi_store_t **out);
/* Its PostgreSQL store; NULL for a single node's SQLite store. */
lsmi_storepg_t *lsmi_store_cluster(lsmi_store_t *s);
/* A trivial query: 0, or LSMI_ERR_IO when the database does not answer. */
int lsmi_store_ping(lsmi_store_t *s);
/* For /readyz: the store answers, has its tables, and its pages are whole
 * (PRAGMA quick_check, run at most every 10 s, its finding kept between):
 * 0, or LSMI_ERR_IO with why (size bytes) saying what is wrong. */
int lsmi_store_check(lsmi_store_t *s, char *why, size_t size);

typedef struct lsmi_dataset_rec {
  char id[64];
  char tenant[64];
  char name[256];
  char format[16];
  char sha256[65];
  uint64_t bytes;
  int classes;
  uint64_t n_train, n_val, d1, d2;
  double val_fraction; /* used at upload when the file had no val split */
  double created_at;
  /* The keys the upload named for each part (lsmi_read_options_t; in a CSV
   * the columns or prefixes), "" for the usual names: a job reads the file
   * with them again. */
  char key_x1[64], key_x2[64], key_y[64], key_id[64];
} lsmi_dataset_rec_t;

/*
 * Inserts rec: 0 or LSMI_ERR_IO. When this tenant already has a dataset
 * with the same sha256 (a concurrent upload of the same bytes), inserts
 * nothing, fills *existing, sets *existed and returns 0.
 */
int lsmi_store_dataset_insert(lsmi_store_t *s, const lsmi_dataset_rec_t *rec,
                              lsmi_dataset_rec_t *existing, bool *existed);
/* The dataset id of tenant (NULL: any tenant, for the loop thread) into
 * *rec: 0, LSMI_ERR_NOTFOUND or LSMI_ERR_IO. */
int lsmi_store_dataset_get(lsmi_store_t *s, const char *tenant, const char *id,
                           lsmi_dataset_rec_t *rec);
/* The tenant's dataset of these bytes: as lsmi_store_dataset_get. */
int lsmi_store_dataset_find_sha(lsmi_store_t *s, const char *tenant,
                                const char *sha256, lsmi_dataset_rec_t *rec);
/* Deletes the row and, in the same transaction, records the file as a
 * pending deletion (see below): 0, LSMI_ERR_NOTFOUND, LSMI_ERR_CONFLICT
 * when queued or running jobs still use it, or LSMI_ERR_IO. With
 * `with_jobs`, its finished jobs go too, in the same transaction, as
 * lsmi_store_job_delete deletes them; their ids are added to *jobs (may be
 * NULL), whose files the caller then removes. */
typedef struct lsmi_idlist lsmi_idlist_t;
int lsmi_store_dataset_delete(lsmi_store_t *s, const char *tenant,
                              const char *id, bool with_jobs,
                              lsmi_idlist_t *jobs);

/*
 * Pending file operations, so that the store knows every file of the data
 * directory it may have left behind (serve.c refuses to start on a file it
 * does not know; datadir.c). kind "upload": datasets/ID is being put in
 * place and has no row yet (lsmi_store_dataset_insert removes the entry
 * with the row's insert, in one transaction); a start finds the file
 * unacknowledged and removes it. kind "delete": the row is gone and
 * datasets/ID is being removed (added by lsmi_store_dataset_delete); a
 * start finishes the removal. kind "job": the job's row is gone
 * (lsmi_store_job_delete) and its result files and cached orders are being
 * removed; a start finishes that. 0 or LSMI_ERR_IO.
 */
/* Ids a call hands back (malloc'd, owned by the list: lsmi_idlist_free).
 * Start from LSMI_IDLIST_INIT. */
struct lsmi_idlist {
  char (*ids)[64];
  size_t n, cap;
};
#define LSMI_IDLIST_INIT                                                       \
  { NULL, 0, 0 }
void lsmi_idlist_free(lsmi_idlist_t *l);
/* Appends id to l (NULL: a no-op): 0 or LSMI_ERR_NOMEM. */
int lsmi_idlist_push(lsmi_idlist_t *l, const char *id);

typedef struct lsmi_pending {
  char kind[16];
  char id[64];
} lsmi_pending_t;
int lsmi_store_pending_add(lsmi_store_t *s, const char *kind, const char *id);
int lsmi_store_pending_remove(lsmi_store_t *s, const char *kind,
                              const char *id);
/* The entries of kind `kind` for every id of ids, in one transaction (one
 * sync of the journal for all): 0, or the store's failure (none removed). */
int lsmi_store_pending_remove_all(lsmi_store_t *s, const char *kind,
                                  const lsmi_idlist_t *ids);
/* Every pending entry, oldest first, into *items (malloc'd, taken by the
 * caller; NULL when there is none): 0, LSMI_ERR_NOMEM or LSMI_ERR_IO. */
int lsmi_store_pending_list(lsmi_store_t *s, lsmi_pending_t **items,
                            size_t *count);
/* A page of the tenant's datasets, newest first (*page: a new array, taken
 * by the caller; NULL on failure): 0, LSMI_ERR_NOMEM or LSMI_ERR_IO. */
int lsmi_store_dataset_list(lsmi_store_t *s, const char *tenant, int64_t offset,
                            int64_t limit, json_t **page, int64_t *total);
/* The API object of a dataset. New ref. */
json_t *lsmi_store_dataset_json(const lsmi_dataset_rec_t *rec);

typedef struct lsmi_job_new {
  const char *id, *tenant, *dataset_id;
  const char *params_json;   /* every parameter, canonical JSON */
  const char *progress_json; /* initial progress object */
  double created_at;
  const char *idem_key; /* NULL: none */
  const char *req_hash; /* hash of the normalised request, with idem_key */
} lsmi_job_new_t;

/*
 * Creates a queued job, in one transaction with its checks: 0 created, or
 * *replayed set (and nothing written) when the key was used before with
 * the same request, whose job is then in existing_id (64 bytes);
 * LSMI_ERR_NOTFOUND when the tenant has no such dataset; LSMI_ERR_CONFLICT
 * (existing_id set) when the key was used with another request;
 * LSMI_ERR_IO.
 */
int lsmi_store_job_create(lsmi_store_t *s, const lsmi_job_new_t *job,
                          char *existing_id, bool *replayed);
/* The same idempotency check alone: 0 (the key is unused, or *replayed
 * with existing_id set), LSMI_ERR_CONFLICT or LSMI_ERR_IO. */
int lsmi_store_idem_check(lsmi_store_t *s, const char *tenant, const char *key,
                          const char *req_hash, char *existing_id,
                          bool *replayed);

/*
 * The API object of a job (tenant NULL: any) into *job (taken by the
 * caller), and its state into *state (may be NULL): 0, LSMI_ERR_NOTFOUND,
 * LSMI_ERR_NOMEM or LSMI_ERR_IO (*job NULL).
 */
int lsmi_store_job_get(lsmi_store_t *s, const char *tenant, const char *id,
                       json_t **job, int *state);
/* A page of the tenant's jobs in `state` (-1: any), newest first; as
 * lsmi_store_dataset_list. */
int lsmi_store_job_list(lsmi_store_t *s, const char *tenant, int state,
                        int64_t offset, int64_t limit, json_t **page,
                        int64_t *total);

/* What the loop thread needs to run a job. params_json is malloc'd. */
typedef struct lsmi_job_row {
  char id[64], tenant[64], dataset_id[64];
  char *params_json;
} lsmi_job_row_t;

/* Start-up, in one transaction: queued or running jobs whose cancel was
 * requested (lsmi_store_job_request_cancel) become cancelled, the other
 * running ones queued again; *requeued and *cancelled (may be NULL)
 * receive how many. */
int lsmi_store_job_recover(lsmi_store_t *s, int *requeued, int *cancelled);
/* Records that the job's cancel was asked for, so that a restart does not
 * run it again: 0, LSMI_ERR_NOTFOUND when it is neither queued nor
 * running, or LSMI_ERR_IO. */
int lsmi_store_job_request_cancel(lsmi_store_t *s, const char *id);
/* The state of job id (any tenant) into *state (-1 for a name no state
 * has): 0, LSMI_ERR_NOTFOUND or LSMI_ERR_IO. */
int lsmi_store_job_state(lsmi_store_t *s, const char *id, int *state);
/*
 * Calls fn for every queued job, oldest first. The row is borrowed for the
 * call (fn copies what it keeps).
 */
int lsmi_store_job_each_queued(lsmi_store_t *s,
                               void (*fn)(void *ctx, const lsmi_job_row_t *row),
                               void *ctx);
/* queued -> running, attempts + 1: 0, LSMI_ERR_NOTFOUND when no queued
 * job has that id (it was cancelled meanwhile), or LSMI_ERR_IO. */
int lsmi_store_job_start(lsmi_store_t *s, const char *id, double started_at);
/*
 * Final or requeue transition of a running job. The JSON texts may be NULL
 * (stored as NULL). state QUEUED means requeue (finished_at ignored).
 * result_bytes: the size of its result files (0 without).
 * 0, LSMI_ERR_NOTFOUND when no running job has that id, or LSMI_ERR_IO.
 */
int lsmi_store_job_finish(lsmi_store_t *s, const char *id, int state,
                          double finished_at, const char *error_json,
                          const char *summary_json, const char *timings_json,
                          const char *progress_json, uint64_t result_bytes);
/*
 * Deletes the finished job id of tenant (NULL: any) with its idempotency
 * keys and, in the same transaction, records its files as a pending "job"
 * operation, which the caller finishes (lsmi_datadir_remove_job): 0,
 * LSMI_ERR_NOTFOUND, LSMI_ERR_CONFLICT when it is queued or running (its
 * state in *state, which may be NULL), or LSMI_ERR_IO.
 */
int lsmi_store_job_delete(lsmi_store_t *s, const char *tenant, const char *id,
                          int *state);
/*
 * Retention (--retain-days): deletes up to `limit` jobs that finished
 * before `before` (epoch seconds), oldest first, as lsmi_store_job_delete
 * does, adding their ids to *jobs; and every idempotency key made before
 * `before` (*keys, may be NULL, receives how many). One transaction. 0 or
 * LSMI_ERR_IO.
 */
int lsmi_store_expire(lsmi_store_t *s, double before, int limit,
                      lsmi_idlist_t *jobs, int *keys);
/* The bytes the tenant stores (its datasets' files and its jobs' result
 * files) into *bytes: 0 or LSMI_ERR_IO. */
int lsmi_store_tenant_bytes(lsmi_store_t *s, const char *tenant,
                            uint64_t *bytes);
/* The bytes of all datasets' files and of all result files (the cluster
 * mode: of this node's caches of them): 0 or LSMI_ERR_IO. */
int lsmi_store_bytes(lsmi_store_t *s, uint64_t *datasets, uint64_t *results);
/* queued -> cancelled (and with running_too, running -> cancelled: a job
 * the store says runs but that runs nowhere): 0, LSMI_ERR_NOTFOUND when no
 * such job has that id (it started or ended meanwhile), or LSMI_ERR_IO. */
int lsmi_store_job_cancel_queued(lsmi_store_t *s, const char *id,
                                 double finished_at, bool running_too);
int lsmi_store_job_progress(lsmi_store_t *s, const char *id,
                            const char *progress_json);
/* Jobs by state and the number of datasets, for /metrics. */
int lsmi_store_counts(lsmi_store_t *s, int64_t by_state[LSMI_JOB_STATES],
                      int64_t *datasets);

#endif
