/*
 * pgint.h — what the files of the PostgreSQL store share (internal to
 * pgstore.c, pgblob.c and pgqueue.c; the API is pgstore.h).
 */
#ifndef LSMI_PGINT_H
#define LSMI_PGINT_H

#include <pthread.h>
#include <stdbool.h>

#include "pgstore.h"
#include "pq.h"

struct lsmi_pg {
  char *dsn;
  char *direct; /* the DSN of the listener and the migration */
  char node[64];
  char app[80]; /* application_name: "lsmi NODE" */
  size_t chunk; /* blob chunk bytes */
  int n;
  lsmi_pq_conn_t **conns; /* slot i: NULL until first needed */
  bool *busy;             /* slot i is lent out */
  pthread_mutex_t mu;     /* pg.mu: guards busy[]; a leaf lock */
  pthread_cond_t freed;   /* signalled when a slot comes back */
};

/*
 * Lends a connection of the pool, waiting for one to come back when all
 * are lent, (re)connected and ready for a call's first statement
 * (lsmi_pq_conn_begin): 0, or LSMI_ERR_UNAVAILABLE (nothing lent).
 * Every connection lent is given back with release.
 */
int lsmi_pg__acquire(lsmi_pg_t *pg, lsmi_pq_conn_t **out);
void lsmi_pg__release(lsmi_pg_t *pg, lsmi_pq_conn_t *c);

/* One statement on a connection of the pool (lsmi_pq_run's contract). */
int lsmi_pg__one(lsmi_pg_t *pg, const char *sql, const lsmi_pq_params_t *p,
                 bool binary, PGresult **res);

/*
 * A transaction: `begin` ("BEGIN", or with an isolation level), then
 * body, then COMMIT when body returned 0, ROLLBACK otherwise. A body
 * returns 0, a status, or LSMI_PG__ROLLBACK_OK: nothing to write after
 * all (an idempotent replay), which rolls back and answers 0.
 */
#define LSMI_PG__ROLLBACK_OK 1
typedef int (*lsmi_pg__body_fn)(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx);
int lsmi_pg__in_tx(lsmi_pg_t *pg, const char *begin, lsmi_pg__body_fn body,
                   void *ctx);

/* The number of rows of a result. */
int lsmi_pg__rows(const PGresult *res);
/* Runs sql and gives the number of rows it returned (the result is
 * dropped). */
int lsmi_pg__count(lsmi_pq_conn_t *c, const char *sql,
                   const lsmi_pq_params_t *p, int *rows);
/*
 * Runs sql on c (NULL: on a connection of pg's pool) for at least one row:
 * 0 with the result in *res (may be NULL: dropped; else taken), or `none`
 * (LSMI_ERR_NOTFOUND, LSMI_ERR_CONFLICT) when it returned no row, or the
 * statement's failure; *res is NULL unless 0.
 */
int lsmi_pg__query(lsmi_pg_t *pg, lsmi_pq_conn_t *c, const char *sql,
                   const lsmi_pq_params_t *p, bool binary, int none,
                   PGresult **res);

/*
 * Ends job_id as `state` (LSMI_JOB_CANCELLED or LSMI_JOB_FAILED, with
 * error_json, may be NULL) inside the caller's transaction: its unfinished
 * units are cancelled, *claimed (may be NULL) says whether one of them had
 * been claimed, and "lsmi_cancel" is NOTIFYed so that the nodes running
 * them stop. 0, or LSMI_ERR_CONFLICT when the job had ended already.
 */
int lsmi_pg__end_job(lsmi_pq_conn_t *conn, const char *job_id, int state,
                     const char *error_json, double finished_at, bool *claimed);

/* Publishes the file at path as blob key inside the caller's transaction
 * (lsmi_pg_blob_put's contract). */
int lsmi_pg__blob_write(lsmi_pg_t *pg, lsmi_pq_conn_t *c, const char *key,
                        const char *path);

#endif
