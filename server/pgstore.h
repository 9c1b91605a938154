/*
 * pgstore.h — the cluster mode's store: datasets, jobs, idempotency keys,
 * files and the queue of work in PostgreSQL, shared by every node that
 * points at the same database (`lsmi serve --store postgresql://…`).
 *
 * What it keeps mirrors store.h (the SQLite store of a single node) and
 * uses its record types; what it adds is what many nodes need:
 *
 *   - Files. A dataset's bytes and a job's result columns live in the
 *     database as blobs (chunked bytea rows, streamed one chunk at a time,
 *     never whole in memory), and each node materialises them into its
 *     local data directory when it needs them (lsmi_pg_blob_fetch, through
 *     common/durable.h, the bytes checked against the blob's SHA-256).
 *   - The queue. A job of E ensemble members is E units of work, or
 *     with F >= 2 cross-fitting folds E F (each fold of each member; unit
 *     i is fold i % F of member i / F), plus one combination. A node
 *     claims the
 *     next runnable unit (lsmi_pg_claim: queued, or running under a lease
 *     that expired because its node died) with FOR UPDATE SKIP LOCKED, in
 *     a fair order: round-robin across tenants, oldest job first. It
 *     renews the lease while it works (lsmi_pg_renew, which carries the
 *     progress too) and completes the member with its bytes
 *     (lsmi_pg_member_complete, lsmi_member_save's); the transaction that
 *     completes a job's last member hands the combination to that node,
 *     which loads the members (lsmi_pg_member_load), runs lsmi_combine and
 *     finishes the job with its result files (lsmi_pg_job_finish); the
 *     member of a job of one finishes the job itself. A node
 *     that dies loses its lease and another node claims the unit again
 *     (attempts + 1); every later call of the old claim fails with
 *     LSMI_ERR_CONFLICT, so its work is dropped, never counted twice.
 *     Claims, renewals and completions do not wait for the WAL's flush
 *     (pgqueue.c says why that is safe); everything else does.
 *   - Wake-ups. Creating a job NOTIFYs channel "lsmi_work" (payload: the
 *     job id), cancelling or failing one "lsmi_cancel"; a listener
 *     (lsmi_pg_listen_open) holds its own connection and exposes its
 *     socket so that the daemon's loop can poll it (uv_poll_t).
 *
 * Owner and lock: lsmi_pg_t is a pool of connections (pg.mu guards the
 * list of free ones, a leaf lock held for a few instructions); any thread
 * may call any function, which takes a connection for its statement or
 * transaction and gives it back. A listener belongs to one thread. json_t
 * values returned are made on the calling thread and taken by it.
 *
 * Every call returns 0 or a negative status of lsmi.h's table:
 * LSMI_ERR_UNAVAILABLE when the database cannot be reached or the
 * connection was lost (the daemon's 503 with Retry-After; the next call
 * reconnects); LSMI_ERR_BUSY when the database aborted the transaction
 * to break a deadlock (try again); LSMI_ERR_IO for any other failure of
 * the server (logged as a "store_error" line) or of a local file;
 * LSMI_ERR_NOMEM; and where a function says so LSMI_ERR_NOTFOUND or
 * LSMI_ERR_CONFLICT.
 *
 * A call that failed with LSMI_ERR_UNAVAILABLE committed nothing, unless
 * the connection was lost during the COMMIT itself: then a completion or
 * a finish may have happened. Calling it again is safe: it answers
 * LSMI_ERR_CONFLICT once the claim is over, whether this node's call
 * landed or another node took the unit over, and either way the unit
 * needs nothing more from this node (a combination handed over unheard
 * returns to the queue when its lease expires).
 */
#ifndef LSMI_PGSTORE_H
#define LSMI_PGSTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsmi.h"
#include "store.h"

typedef struct lsmi_pg lsmi_pg_t;

/* Blob chunks of 1 MiB unless the options say otherwise. */
#define LSMI_PG_CHUNK_BYTES (1u << 20)

typedef struct lsmi_pg_options {
  const char *dsn;    /* postgresql://… or key=value pairs (copied) */
  const char *node;   /* this node's name in claims (copied; < 64 bytes) */
  int connections;    /* the pool's size; 0: 4 */
  size_t chunk_bytes; /* blob chunk size; 0: LSMI_PG_CHUNK_BYTES */
  /* What needs a session of its own: the listener (LISTEN) and the
   * migration (a session-level advisory lock). NULL or "": dsn. Set it
   * when dsn goes through a pooler in transaction mode (copied). */
  const char *direct_dsn;
} lsmi_pg_options_t;

/*
 * Connects, and migrates the schema (pgschema.h) unless another node has:
 * 0, and *out (taken; lsmi_pg_close). LSMI_ERR_INVALID for a malformed
 * DSN or node name, LSMI_ERR_UNSUPPORTED when libpq cannot be loaded or
 * the schema is newer than this lsmi, LSMI_ERR_UNAVAILABLE when the
 * database does not answer (try again later), LSMI_ERR_IO, LSMI_ERR_NOMEM;
 * err says why, *out is NULL.
 */
int lsmi_pg_open(const lsmi_pg_options_t *o, lsmi_pg_t **out,
                 lsmi_error_t *err);
/* NULL is a no-op. */
void lsmi_pg_close(lsmi_pg_t *pg);
/* A trivial query (/readyz): 0 or LSMI_ERR_UNAVAILABLE. */
int lsmi_pg_ping(lsmi_pg_t *pg);

/* ---- blobs ---- */

/*
 * Publishes the local file at path as the blob `key`, replacing one of
 * that key, in one transaction: readers see the old blob or the new one.
 * 0, LSMI_ERR_IO (the file could not be read, or the server failed).
 */
int lsmi_pg_blob_put(lsmi_pg_t *pg, const char *key, const char *path);
/*
 * Materialises the blob `key` as the local file path (common/durable.h,
 * the temp file in tmpdir, or beside path when NULL), from one snapshot,
 * checked against the blob's size and SHA-256 before the rename; *bytes
 * (may be NULL) receives the size. 0, LSMI_ERR_NOTFOUND, LSMI_ERR_IO (a
 * local file error, or the bytes did not check out). Whether a cached
 * file is still good is the caller's concern: blobs of datasets and of
 * results never change under a key.
 */
int lsmi_pg_blob_fetch(lsmi_pg_t *pg, const char *key, const char *path,
                       const char *tmpdir, uint64_t *bytes);
/* 0 or LSMI_ERR_NOTFOUND. */
int lsmi_pg_blob_delete(lsmi_pg_t *pg, const char *key);

/* The blob keys of a dataset's bytes and of a job's result file, into
 * buf (at least LSMI_PG_KEY_MAX bytes). */
#define LSMI_PG_KEY_MAX 160
void lsmi_pg_dataset_key(const char *dataset_id, char *buf);
void lsmi_pg_result_key(const char *job_id, const char *split, char *buf);

/* ---- datasets (as lsmi_store_dataset_*) ---- */

/*
 * Inserts rec with the bytes of the local file at path, in one
 * transaction (a dataset is never seen without its bytes). When this
 * tenant has a dataset with the same sha256 (a concurrent upload of the
 * same bytes), writes nothing, fills *existing, sets *existed and
 * returns 0.
 */
int lsmi_pg_dataset_insert(lsmi_pg_t *pg, const lsmi_dataset_rec_t *rec,
                           const char *path, lsmi_dataset_rec_t *existing,
                           bool *existed);
/* tenant NULL: any. 0 or LSMI_ERR_NOTFOUND. */
int lsmi_pg_dataset_get(lsmi_pg_t *pg, const char *tenant, const char *id,
                        lsmi_dataset_rec_t *rec);
int lsmi_pg_dataset_find_sha(lsmi_pg_t *pg, const char *tenant,
                             const char *sha256, lsmi_dataset_rec_t *rec);
/* With its bytes: 0, LSMI_ERR_NOTFOUND, or LSMI_ERR_CONFLICT when queued
 * or running jobs use it. With jobs (may be NULL: they stay), its finished
 * jobs go too in the same transaction, as lsmi_pg_job_delete deletes
 * them, and their ids are added to *jobs (the caller removes its local
 * copies of their files). */
int lsmi_pg_dataset_delete(lsmi_pg_t *pg, const char *tenant, const char *id,
                           lsmi_idlist_t *jobs);
/* Newest first, as lsmi_store_dataset_list (lsmi_store_dataset_json). */
int lsmi_pg_dataset_list(lsmi_pg_t *pg, const char *tenant, int64_t offset,
                         int64_t limit, json_t **page, int64_t *total);

/* ---- jobs (as lsmi_store_job_*) ---- */

/*
 * Creates a queued job of `members` units of work (params' ensemble, times
 * its folds with cross-fitting; >= 1)
 * with its member rows, its idempotency key and a NOTIFY on "lsmi_work",
 * in one transaction: as lsmi_store_job_create (0 created or *replayed
 * with existing_id; LSMI_ERR_NOTFOUND no such dataset for the tenant;
 * LSMI_ERR_CONFLICT the key was used for another request).
 */
int lsmi_pg_job_create(lsmi_pg_t *pg, const lsmi_job_new_t *job, int members,
                       char *existing_id, bool *replayed);
int lsmi_pg_idem_check(lsmi_pg_t *pg, const char *tenant, const char *key,
                       const char *req_hash, char *existing_id, bool *replayed);
/*
 * The API object of a job, as lsmi_store_job_get's; with several units
 * (members, or folds of members) running, progress.fraction is their mean
 * (done units count 1; a job's units are of about one cost).
 */
int lsmi_pg_job_get(lsmi_pg_t *pg, const char *tenant, const char *id,
                    json_t **job, int *state);
int lsmi_pg_job_list(lsmi_pg_t *pg, const char *tenant, int state,
                     int64_t offset, int64_t limit, json_t **page,
                     int64_t *total);
/*
 * Cancels a queued or running job (tenant NULL: any) at once: the job is
 * cancelled, its units that have not finished too, and "lsmi_cancel" is
 * NOTIFYed so that the nodes running them stop (their next renew fails
 * too). *was_running (may be NULL): a unit was running. 0,
 * LSMI_ERR_NOTFOUND, or LSMI_ERR_CONFLICT when the job had already ended.
 */
int lsmi_pg_job_cancel(lsmi_pg_t *pg, const char *tenant, const char *id,
                       double finished_at, bool *was_running);
/*
 * Deletes the finished job id (tenant NULL: any) with its idempotency keys
 * and its result blobs, in one transaction: 0, LSMI_ERR_NOTFOUND, or
 * LSMI_ERR_CONFLICT when it is queued or running (its state in *state,
 * which may be NULL). The nodes' cached copies of its result files are
 * their own (storepg.h: the cache sweep removes them).
 */
int lsmi_pg_job_delete(lsmi_pg_t *pg, const char *tenant, const char *id,
                       int *state);
/*
 * Retention: deletes up to `limit` jobs that finished before `before`
 * (epoch seconds), oldest first, as lsmi_pg_job_delete does, adding their
 * ids to *jobs; and every idempotency key made before `before` (*keys,
 * may be NULL, receives how many). One transaction, under an advisory
 * lock taken without waiting: when another node sweeps, nothing is done
 * and *busy (may be NULL) is set. 0 or a failure.
 */
int lsmi_pg_expire(lsmi_pg_t *pg, double before, int limit,
                   lsmi_idlist_t *jobs, int *keys, bool *busy);
/* The bytes the tenant stores (its datasets' files and its jobs' result
 * files, the blobs' sizes) into *bytes. */
int lsmi_pg_tenant_bytes(lsmi_pg_t *pg, const char *tenant, uint64_t *bytes);
/* Of the ids (datasets', or jobs' with jobs true), those the database
 * has no row of, added to *gone: a node's cache sweep. Ids are letters,
 * digits, '_' and '-' (others are never asked about): 0 or a failure. */
int lsmi_pg_gone(lsmi_pg_t *pg, bool jobs, const lsmi_idlist_t *ids,
                 lsmi_idlist_t *gone);
/* Of the blob keys, those the database has, added to *have: a node's
 * cache bound (what it can fetch again). 0 or a failure. */
int lsmi_pg_blobs_exist(lsmi_pg_t *pg, const lsmi_idlist_t *keys,
                        lsmi_idlist_t *have);
/* The queued jobs of every tenant (*all) and of tenant (*mine): the
 * cluster's bound on its queue (--queue-size, --tenant-queue-size). */
int lsmi_pg_queued(lsmi_pg_t *pg, const char *tenant, int64_t *all,
                   int64_t *mine);
/* Jobs by state and the number of datasets, for /metrics. */
int lsmi_pg_counts(lsmi_pg_t *pg, int64_t by_state[LSMI_JOB_STATES],
                   int64_t *datasets);

/* ---- the queue ---- */

#define LSMI_PG_COMBINE (-1) /* the member index of the combination */

/* A unit of work held under a lease. */
typedef struct lsmi_pg_claim {
  char job_id[64], tenant[64], dataset_id[64];
  int member;        /* 0 .. members - 1, or LSMI_PG_COMBINE */
  int members;       /* the job's units: params' ensemble, times its
                        folds with cross-fitting */
  int attempt;       /* the unit's claims so far: this claim's token */
  char *params_json; /* the job's params (malloc'd; lsmi_pg_claim_clear) */
} lsmi_pg_claim_t;

/* Frees params_json; the struct may be reused. */
void lsmi_pg_claim_clear(lsmi_pg_claim_t *c);

/*
 * Claims the next runnable unit for this node for lease_seconds (the
 * server's clock): 0 and *c filled (its earlier params_json freed; start
 * from a zeroed struct), LSMI_ERR_NOTFOUND when there is none. The job
 * turns running.
 */
int lsmi_pg_claim(lsmi_pg_t *pg, double lease_seconds, lsmi_pg_claim_t *c);
/*
 * Extends the lease by lease_seconds from now and, when progress_json is
 * not NULL, records the unit's progress (the API's progress object) and
 * fraction (0..1). 0, or LSMI_ERR_CONFLICT when the claim is over: the
 * lease was taken over or the job cancelled or failed. Stop then.
 */
int lsmi_pg_renew(lsmi_pg_t *pg, const lsmi_pg_claim_t *c, double lease_seconds,
                  const char *progress_json, double fraction);
/*
 * Completes member c (not the combination) with its bytes. When it was the
 * job's last member, *combine is set and *c becomes this node's claim of
 * the combination (lease_seconds); run lsmi_combine then and finish the
 * job. 0, or LSMI_ERR_CONFLICT when the claim is over (drop the member).
 */
int lsmi_pg_member_complete(lsmi_pg_t *pg, lsmi_pg_claim_t *c,
                            const void *bytes, size_t len, double lease_seconds,
                            bool *combine);
/* The bytes of a done member: *buf (malloc'd, taken) of *len bytes. 0 or
 * LSMI_ERR_NOTFOUND. */
int lsmi_pg_member_load(lsmi_pg_t *pg, const char *job_id, int member,
                        void **buf, size_t *len);
/*
 * The unit failed (a fit error, or the combination's): the job fails with
 * error_json (a problem object; may be NULL), its other units are
 * cancelled and "lsmi_cancel" NOTIFYed. 0 or LSMI_ERR_CONFLICT.
 */
int lsmi_pg_member_fail(lsmi_pg_t *pg, const lsmi_pg_claim_t *c,
                        const char *error_json, double finished_at);
/* Gives the unit back to the queue (this node shuts down) and NOTIFYs
 * "lsmi_work". 0 or LSMI_ERR_CONFLICT. */
int lsmi_pg_member_release(lsmi_pg_t *pg, const lsmi_pg_claim_t *c);

/* A result file to publish with the job's end. */
typedef struct lsmi_pg_file {
  const char *split; /* "train", "val" */
  const char *path;  /* the local file (resfile.c's) */
} lsmi_pg_file_t;

/* How a job ended: the texts as lsmi_store_job_finish's (NULL: stored
 * NULL; progress NULL keeps the last one). */
typedef struct lsmi_pg_finish {
  int state; /* LSMI_JOB_SUCCEEDED or LSMI_JOB_FAILED */
  double finished_at;
  const char *error_json, *summary_json, *timings_json, *progress_json;
  const lsmi_pg_file_t *results; /* published in the same transaction */
  int nresults;
} lsmi_pg_finish_t;

/*
 * Ends the job of the combination claim c: its result files published,
 * its state and texts recorded, and its members' bytes dropped, in one
 * transaction. A job of one member is ended by its member's claim too,
 * without lsmi_pg_member_complete: the member and the combination are
 * done with the job, and the member's bytes never stored. 0,
 * LSMI_ERR_CONFLICT when the claim is over, LSMI_ERR_IO (a result file
 * could not be read), LSMI_ERR_INVALID when c is neither a combination
 * nor the member of a job of one, or f->state no final state.
 */
int lsmi_pg_job_finish(lsmi_pg_t *pg, const lsmi_pg_claim_t *c,
                       const lsmi_pg_finish_t *f);

/* ---- wake-ups ---- */

typedef struct lsmi_pg_listener lsmi_pg_listener_t;

typedef enum lsmi_pg_event_kind {
  LSMI_PG_WORK = 1,  /* a job was queued, or a unit given back */
  LSMI_PG_CANCEL = 2 /* a job was cancelled or failed: stop its units */
} lsmi_pg_event_kind_t;

typedef struct lsmi_pg_event {
  int kind;
  char job_id[64];
} lsmi_pg_event_t;

/*
 * A connection of its own that LISTENs on both channels: 0 and *out
 * (taken; lsmi_pg_listen_close). As lsmi_pq_conn_open, *out is made even
 * when the server does not answer (LSMI_ERR_UNAVAILABLE): reconnect later.
 */
int lsmi_pg_listen_open(lsmi_pg_t *pg, lsmi_pg_listener_t **out,
                        lsmi_error_t *err);
void lsmi_pg_listen_close(lsmi_pg_listener_t *l);
/* The socket to poll for reading; -1 while disconnected. It changes with
 * every reconnection. */
int lsmi_pg_listen_fd(const lsmi_pg_listener_t *l);
/*
 * Without blocking, reads what arrived and hands out up to max events:
 * *n of them. Call again while *n == max. LSMI_ERR_UNAVAILABLE when the
 * connection is lost: stop polling the socket and call
 * lsmi_pg_listen_reconnect (later), then look for work: what was NOTIFYed
 * in between is lost.
 */
int lsmi_pg_listen_read(lsmi_pg_listener_t *l, lsmi_pg_event_t *ev, int max,
                        int *n);
/* 0 (connected and listening) or LSMI_ERR_UNAVAILABLE. */
int lsmi_pg_listen_reconnect(lsmi_pg_listener_t *l);
/* Blocks up to timeout_ms for events (poll, then lsmi_pg_listen_read):
 * for threads without a loop, and the tests. */
int lsmi_pg_listen_wait(lsmi_pg_listener_t *l, int timeout_ms,
                        lsmi_pg_event_t *ev, int max, int *n);

#endif
