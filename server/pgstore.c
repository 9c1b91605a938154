/*
 * pgstore.c — the PostgreSQL store: the pool, datasets and jobs (see
 * pgstore.h; blobs are pgblob.c's, the queue and the wake-ups pgqueue.c's).
 *
 * Every call takes a connection from the pool for one statement (one) or
 * one transaction (in_tx), in READ COMMITTED unless it says otherwise. A
 * check and the write that depends on it go together in one transaction,
 * and the races between nodes are settled by the database, not by us: a
 * unique index with ON CONFLICT DO NOTHING (the same bytes uploaded twice,
 * an idempotency key used twice), or a row lock taken before the check
 * (FOR SHARE on the dataset a job is created for, FOR UPDATE on the one
 * being deleted, so that exactly one of the two wins).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgint.h"
#include "pgschema.h"
#include "util.h"

/* ---- the pool ---- */

int lsmi_pg__acquire(lsmi_pg_t *pg, lsmi_pq_conn_t **out) {
  pthread_mutex_lock(&pg->mu);
  int i = -1;
  for (;;) {
    /* A free slot, one already connected if there is one. */
    for (int k = 0; k < pg->n; k++)
      if (!pg->busy[k] &&
          (i < 0 || (pg->conns[i] == NULL && pg->conns[k] != NULL)))
        i = k;
    if (i >= 0)
      break;
    pthread_cond_wait(&pg->freed, &pg->mu);
  }
  pg->busy[i] = true;
  pthread_mutex_unlock(&pg->mu);
  int rc = LSMI_OK;
  if (pg->conns[i] == NULL)
    rc = lsmi_pq_conn_open(pg->dsn, pg->app, &pg->conns[i], NULL);
  if (rc == LSMI_OK)
    rc = lsmi_pq_conn_begin(pg->conns[i]);
  if (rc) {
    pthread_mutex_lock(&pg->mu);
    pg->busy[i] = false;
    pthread_cond_signal(&pg->freed);
    pthread_mutex_unlock(&pg->mu);
    return rc;
  }
  *out = pg->conns[i];
  return LSMI_OK;
}

void lsmi_pg__release(lsmi_pg_t *pg, lsmi_pq_conn_t *c) {
  pthread_mutex_lock(&pg->mu);
  for (int k = 0; k < pg->n; k++)
    if (pg->conns[k] == c)
      pg->busy[k] = false;
  pthread_cond_signal(&pg->freed);
  pthread_mutex_unlock(&pg->mu);
}

int lsmi_pg__one(lsmi_pg_t *pg, const char *sql, const lsmi_pq_params_t *p,
                 bool binary, PGresult **res) {
  lsmi_pq_conn_t *c;
  int rc = lsmi_pg__acquire(pg, &c);
  if (rc)
    return rc;
  rc = lsmi_pq_run(c, sql, p, binary, res);
  lsmi_pg__release(pg, c);
  return rc;
}

int lsmi_pg__in_tx(lsmi_pg_t *pg, const char *begin, lsmi_pg__body_fn body,
                   void *ctx) {
  lsmi_pq_conn_t *c;
  int rc = lsmi_pg__acquire(pg, &c);
  if (rc)
    return rc;
  rc = lsmi_pq_run(c, begin, NULL, false, NULL);
  if (rc == LSMI_OK)
    rc = body(pg, c, ctx);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c, "COMMIT", NULL, false, NULL);
  else if (lsmi_pq()->status(c->pg) == CONNECTION_OK)
    lsmi_pq_run(c, "ROLLBACK", NULL, false, NULL);
  lsmi_pg__release(pg, c);
  return rc == LSMI_PG__ROLLBACK_OK ? LSMI_OK : rc;
}

int lsmi_pg__rows(const PGresult *res) { return lsmi_pq()->ntuples(res); }

int lsmi_pg__count(lsmi_pq_conn_t *c, const char *sql,
                   const lsmi_pq_params_t *p, int *rows) {
  PGresult *res = NULL;
  int rc = lsmi_pq_run(c, sql, p, false, &res);
  *rows = rc == LSMI_OK ? lsmi_pg__rows(res) : 0;
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

int lsmi_pg__query(lsmi_pg_t *pg, lsmi_pq_conn_t *c, const char *sql,
                   const lsmi_pq_params_t *p, bool binary, int none,
                   PGresult **res) {
  PGresult *r = NULL;
  int rc = c ? lsmi_pq_run(c, sql, p, binary, &r)
             : lsmi_pg__one(pg, sql, p, binary, &r);
  if (rc == LSMI_OK && lsmi_pg__rows(r) == 0)
    rc = none;
  if (rc == LSMI_OK && res)
    *res = r;
  else if (r)
    lsmi_pq()->clear(r);
  if (res && rc)
    *res = NULL;
  return rc;
}

int lsmi_pg_open(const lsmi_pg_options_t *o, lsmi_pg_t **out,
                 lsmi_error_t *err) {
  *out = NULL;
  if (o->node == NULL || o->node[0] == '\0' || strlen(o->node) >= 64)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "node",
                          "a node name of 1 to 63 bytes is needed");
  bool direct = o->direct_dsn && o->direct_dsn[0];
  int rc = lsmi_pq_check_dsn(o->dsn, err);
  if (rc == LSMI_OK && direct)
    rc = lsmi_pq_check_dsn(o->direct_dsn, err);
  if (rc)
    return rc;
  lsmi_pg_t *pg = calloc(1, sizeof *pg);
  if (pg == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  pthread_mutex_init(&pg->mu, NULL);
  pthread_cond_init(&pg->freed, NULL);
  pg->n = o->connections > 0 ? o->connections : 4;
  pg->chunk = o->chunk_bytes > 0 ? o->chunk_bytes : LSMI_PG_CHUNK_BYTES;
  snprintf(pg->node, sizeof pg->node, "%s", o->node);
  snprintf(pg->app, sizeof pg->app, "lsmi %s", o->node);
  pg->dsn = strdup(o->dsn);
  pg->direct = strdup(direct ? o->direct_dsn : o->dsn);
  pg->conns = calloc((size_t)pg->n, sizeof *pg->conns);
  pg->busy = calloc((size_t)pg->n, sizeof *pg->busy);
  if (pg->dsn == NULL || pg->direct == NULL || pg->conns == NULL ||
      pg->busy == NULL) {
    rc = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    goto fail;
  }
  /* The migration holds a session-level lock: on the direct DSN, through
   * a connection of its own when that is not the pool's. */
  lsmi_pq_conn_t *mc = NULL;
  rc =
      lsmi_pq_conn_open(pg->direct, pg->app, direct ? &mc : &pg->conns[0], err);
  if (rc == LSMI_OK)
    rc = lsmi_pgschema_migrate(direct ? mc : pg->conns[0], NULL, NULL, err);
  lsmi_pq_conn_close(mc);
  if (rc)
    goto fail;
  *out = pg;
  return LSMI_OK;
fail:
  lsmi_pg_close(pg);
  return rc;
}

void lsmi_pg_close(lsmi_pg_t *pg) {
  if (pg == NULL)
    return;
  for (int i = 0; pg->conns && i < pg->n; i++)
    lsmi_pq_conn_close(pg->conns[i]);
  free(pg->conns);
  free(pg->busy);
  free(pg->dsn);
  free(pg->direct);
  pthread_cond_destroy(&pg->freed);
  pthread_mutex_destroy(&pg->mu);
  free(pg);
}

int lsmi_pg_ping(lsmi_pg_t *pg) {
  int rc = lsmi_pg__one(pg, "SELECT 1", NULL, false, NULL);
  return rc == LSMI_OK ? LSMI_OK : LSMI_ERR_UNAVAILABLE;
}

/* ---- datasets ---- */

/* The columns of lsmi_dataset_rec_t, in DS_COLS's order: one table for
 * binding a record and for reading one back. */
typedef struct ds_field {
  size_t off, size;
  char kind; /* 's' text, 'u' uint64_t, 'i' int, 'd' double */
} ds_field_t;
#define DSF(member, kind)                                                      \
  {                                                                            \
    offsetof(lsmi_dataset_rec_t, member),                                      \
        sizeof(((lsmi_dataset_rec_t *)0)->member), kind                        \
  }
static const ds_field_t ds_fields[] = {
    DSF(id, 's'),        DSF(tenant, 's'),  DSF(name, 's'),
    DSF(format, 's'),    DSF(sha256, 's'),  DSF(bytes, 'u'),
    DSF(classes, 'i'),   DSF(n_train, 'u'), DSF(n_val, 'u'),
    DSF(d1, 'u'),        DSF(d2, 'u'),      DSF(val_fraction, 'd'),
    DSF(created_at, 'd'), DSF(key_x1, 's'),  DSF(key_x2, 's'),
    DSF(key_y, 's'),     DSF(key_id, 's')};
#define N_DS_FIELDS ((int)(sizeof ds_fields / sizeof ds_fields[0]))
#define DS_COLS                                                                \
  "id, tenant, name, format, sha256, bytes, classes, n_train, n_val, d1, "     \
  "d2, val_fraction, created_at, key_x1, key_x2, key_y, key_id"

static void ds_bind(lsmi_pq_params_t *p, const lsmi_dataset_rec_t *r) {
  for (int i = 0; i < N_DS_FIELDS; i++) {
    const char *at = (const char *)r + ds_fields[i].off;
    switch (ds_fields[i].kind) {
    case 's':
      lsmi_pq_text(p, at);
      break;
    case 'u':
      lsmi_pq_int(p, (int64_t) * (const uint64_t *)(const void *)at);
      break;
    case 'i':
      lsmi_pq_int(p, *(const int *)(const void *)at);
      break;
    default:
      lsmi_pq_double(p, *(const double *)(const void *)at);
    }
  }
}

static void ds_read(const PGresult *res, int row, lsmi_dataset_rec_t *r) {
  memset(r, 0, sizeof *r);
  for (int i = 0; i < N_DS_FIELDS; i++) {
    void *at = (char *)r + ds_fields[i].off;
    const char *t = lsmi_pq_get(res, row, i);
    switch (ds_fields[i].kind) {
    case 's':
      snprintf(at, ds_fields[i].size, "%s", t ? t : "");
      break;
    case 'u':
      *(uint64_t *)at = (uint64_t)lsmi_pq_get_int(res, row, i);
      break;
    case 'i':
      *(int *)at = (int)lsmi_pq_get_int(res, row, i);
      break;
    default:
      *(double *)at = lsmi_pq_get_double(res, row, i);
    }
  }
}

/* One dataset by a query with two text parameters: 0, LSMI_ERR_NOTFOUND. */
static int ds_query(lsmi_pq_conn_t *c, lsmi_pg_t *pg, const char *sql,
                    const char *a, const char *b, lsmi_dataset_rec_t *rec) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, a);
  lsmi_pq_text(&p, b);
  PGresult *res = NULL;
  int rc = lsmi_pg__query(pg, c, sql, &p, false, LSMI_ERR_NOTFOUND, &res);
  if (rc == LSMI_OK) {
    ds_read(res, 0, rec);
    lsmi_pq()->clear(res);
  }
  return rc;
}

#define DS_BY_SHA                                                              \
  "SELECT " DS_COLS " FROM datasets WHERE sha256 = $1 AND tenant = $2"

int lsmi_pg_dataset_get(lsmi_pg_t *pg, const char *tenant, const char *id,
                        lsmi_dataset_rec_t *rec) {
  return ds_query(NULL, pg,
                  "SELECT " DS_COLS " FROM datasets WHERE id = $1 AND "
                  "($2::text IS NULL OR tenant = $2)",
                  id, tenant, rec);
}

int lsmi_pg_dataset_find_sha(lsmi_pg_t *pg, const char *tenant,
                             const char *sha256, lsmi_dataset_rec_t *rec) {
  return ds_query(NULL, pg, DS_BY_SHA, sha256, tenant, rec);
}

typedef struct ds_insert {
  const lsmi_dataset_rec_t *rec;
  const char *path;
  lsmi_dataset_rec_t *existing;
  bool *existed;
} ds_insert_t;

static int ds_insert_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  ds_insert_t *a = ctx;
  char key[LSMI_PG_KEY_MAX];
  lsmi_pg_dataset_key(a->rec->id, key);
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  ds_bind(&p, a->rec);
  lsmi_pq_text(&p, key);
  /* The row first: it takes the (tenant, sha256) slot, or waits for the
   * upload that holds it and then finds it taken. */
  int rows = 0;
  int rc = lsmi_pg__count(
      c,
      "INSERT INTO datasets (" DS_COLS ", blob) VALUES ($1, $2, $3, $4, $5, "
      "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON "
      "CONFLICT (tenant, sha256) DO NOTHING RETURNING 1",
      &p, &rows);
  if (rc)
    return rc;
  if (rows == 0) {
    rc =
        ds_query(c, pg, DS_BY_SHA, a->rec->sha256, a->rec->tenant, a->existing);
    if (rc == LSMI_OK)
      *a->existed = true;
    return rc == LSMI_OK ? LSMI_PG__ROLLBACK_OK : rc;
  }
  return lsmi_pg__blob_write(pg, c, key, a->path);
}

int lsmi_pg_dataset_insert(lsmi_pg_t *pg, const lsmi_dataset_rec_t *rec,
                           const char *path, lsmi_dataset_rec_t *existing,
                           bool *existed) {
  *existed = false;
  ds_insert_t a = {rec, path, existing, existed};
  return lsmi_pg__in_tx(pg, "BEGIN", ds_insert_body, &a);
}

/* Deletes the jobs whose ids the query `src` gives (its parameters p),
 * with their idempotency keys and result blobs (their members go by the
 * foreign key's cascade), adding their ids to *jobs (may be NULL). Used
 * inside a transaction. */
#define JOBS_DELETE(src)                                                       \
  "WITH d AS (DELETE FROM jobs WHERE id IN (" src ") RETURNING id), "          \
  "i AS (DELETE FROM idempotency WHERE job_id IN (SELECT id FROM d)), "        \
  "b AS (DELETE FROM blobs WHERE key IN (SELECT 'result/' || d.id || '/' || "  \
  "s.split FROM d, (VALUES ('train'), ('val')) AS s (split))) "                \
  "SELECT id FROM d"

static int jobs_delete(lsmi_pq_conn_t *c, const char *sql,
                       const lsmi_pq_params_t *p, lsmi_idlist_t *jobs) {
  PGresult *res = NULL;
  int rc = lsmi_pq_run(c, sql, p, false, &res);
  for (int i = 0; rc == LSMI_OK && i < lsmi_pg__rows(res); i++)
    rc = lsmi_idlist_push(jobs, lsmi_pq_get(res, i, 0));
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

typedef struct ds_delete {
  const char *tenant, *id;
  lsmi_idlist_t *jobs;
} ds_delete_t;

static int ds_delete_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  const ds_delete_t *a = ctx;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, a->id);
  lsmi_pq_text(&p, a->tenant);
  /* Locked first: a job being created for it (FOR SHARE) commits before
   * the count below, or finds the dataset gone. */
  int rc = lsmi_pg__query(pg, c,
                          "SELECT 1 FROM datasets WHERE id = $1 AND tenant = "
                          "$2 FOR UPDATE",
                          &p, false, LSMI_ERR_NOTFOUND, NULL);
  int rows = 0;
  lsmi_pq_params_t q = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&q, a->id);
  if (rc == LSMI_OK)
    rc = lsmi_pg__count(c,
                        "SELECT 1 FROM jobs WHERE dataset_id = $1 AND state "
                        "IN ('queued', 'running') LIMIT 1",
                        &q, &rows);
  if (rc == LSMI_OK && rows > 0)
    rc = LSMI_ERR_CONFLICT;
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c,
                     "WITH d AS (DELETE FROM datasets WHERE id = $1 AND "
                     "tenant = $2 RETURNING blob) DELETE FROM blobs WHERE "
                     "key IN (SELECT blob FROM d)",
                     &p, false, NULL);
  /* Its finished jobs: none is queued or running (counted above, under
   * the dataset's lock, which a job's creation shares). */
  if (rc == LSMI_OK && a->jobs)
    rc = jobs_delete(c,
                     JOBS_DELETE("SELECT id FROM jobs WHERE dataset_id = $1 "
                                 "AND tenant = $2"),
                     &p, a->jobs);
  return rc;
}

int lsmi_pg_dataset_delete(lsmi_pg_t *pg, const char *tenant, const char *id,
                           lsmi_idlist_t *jobs) {
  size_t had = jobs ? jobs->n : 0;
  ds_delete_t a = {tenant, id, jobs};
  int rc = lsmi_pg__in_tx(pg, "BEGIN", ds_delete_body, &a);
  if (rc && jobs)
    jobs->n = had; /* none of them was deleted */
  return rc;
}

/* A page: the total of count_sql and the rows of page_sql (both with
 * p's parameters; page_sql adds LIMIT and OFFSET as the next two), each
 * row turned into an object by fn. From one snapshot. */
typedef struct page {
  const char *count_sql, *page_sql;
  lsmi_pq_params_t *p;
  int64_t offset, limit;
  json_t *(*fn)(const PGresult *res, int row);
  json_t *rows;
  int64_t *total;
} page_t;

static int page_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  (void)pg;
  page_t *a = ctx;
  PGresult *res = NULL;
  int rc = lsmi_pq_run(c, a->count_sql, a->p, false, &res);
  if (rc)
    return rc;
  *a->total = lsmi_pq_get_int(res, 0, 0);
  lsmi_pq()->clear(res);
  lsmi_pq_int(a->p, a->limit);
  lsmi_pq_int(a->p, a->offset);
  rc = lsmi_pq_run(c, a->page_sql, a->p, false, &res);
  if (rc)
    return rc;
  for (int i = 0; rc == LSMI_OK && i < lsmi_pg__rows(res); i++)
    if (json_array_append_new(a->rows, a->fn(res, i)))
      rc = LSMI_ERR_NOMEM;
  lsmi_pq()->clear(res);
  return rc;
}

static int page_run(lsmi_pg_t *pg, page_t *a, json_t **page) {
  *a->total = 0;
  *page = a->rows = json_array();
  if (a->rows == NULL)
    return LSMI_ERR_NOMEM;
  int rc = lsmi_pg__in_tx(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                          page_body, a);
  if (rc) {
    json_decref(*page);
    *page = NULL;
  }
  return rc;
}

static json_t *ds_row_json(const PGresult *res, int row) {
  lsmi_dataset_rec_t r;
  ds_read(res, row, &r);
  return lsmi_store_dataset_json(&r);
}

int lsmi_pg_dataset_list(lsmi_pg_t *pg, const char *tenant, int64_t offset,
                         int64_t limit, json_t **page, int64_t *total) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, tenant);
  page_t a = {"SELECT count(*) FROM datasets WHERE tenant = $1",
              "SELECT " DS_COLS " FROM datasets WHERE tenant = $1 ORDER BY "
              "seq DESC LIMIT $2 OFFSET $3",
              &p,
              offset,
              limit,
              ds_row_json,
              NULL,
              total};
  return page_run(pg, &a, page);
}

/* ---- jobs ---- */

/* The idempotency key's earlier use: 0 (unused, or *replayed with
 * existing_id set) or LSMI_ERR_CONFLICT. */
static int idem_lookup(lsmi_pq_conn_t *c, lsmi_pg_t *pg, const char *tenant,
                       const char *key, const char *hash, char *existing_id,
                       bool *replayed) {
  *replayed = false;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, tenant);
  lsmi_pq_text(&p, key);
  const char *sql = "SELECT request_hash, job_id FROM idempotency WHERE "
                    "tenant = $1 AND key = $2";
  PGresult *res = NULL;
  int rc = c ? lsmi_pq_run(c, sql, &p, false, &res)
             : lsmi_pg__one(pg, sql, &p, false, &res);
  if (rc == LSMI_OK && lsmi_pg__rows(res) > 0) {
    snprintf(existing_id, 64, "%s", lsmi_pq_get(res, 0, 1));
    *replayed = strcmp(lsmi_pq_get(res, 0, 0), hash) == 0;
    rc = *replayed ? LSMI_OK : LSMI_ERR_CONFLICT;
  }
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

int lsmi_pg_idem_check(lsmi_pg_t *pg, const char *tenant, const char *key,
                       const char *req_hash, char *existing_id,
                       bool *replayed) {
  return idem_lookup(NULL, pg, tenant, key, req_hash, existing_id, replayed);
}

typedef struct job_create {
  const lsmi_job_new_t *j;
  int members;
  char *existing_id;
  bool *replayed;
} job_create_t;

/* Records the key for the job, or finds its earlier use (ROLLBACK_OK with
 * *replayed, or LSMI_ERR_CONFLICT). */
static int idem_claim(lsmi_pq_conn_t *c, job_create_t *a) {
  const lsmi_job_new_t *j = a->j;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, j->tenant);
  lsmi_pq_text(&p, j->idem_key);
  lsmi_pq_text(&p, j->req_hash);
  lsmi_pq_text(&p, j->id);
  lsmi_pq_double(&p, j->created_at);
  /* Two nodes with the same key: the second waits for the first's commit
   * here, then finds the key taken. */
  int rows = 0;
  int rc = lsmi_pg__count(c,
                          "INSERT INTO idempotency (tenant, key, request_hash, "
                          "job_id, created_at) VALUES ($1, $2, $3, $4, $5) ON "
                          "CONFLICT DO NOTHING RETURNING 1",
                          &p, &rows);
  if (rc || rows > 0)
    return rc;
  rc = idem_lookup(c, NULL, j->tenant, j->idem_key, j->req_hash, a->existing_id,
                   a->replayed);
  if (rc == LSMI_OK && !*a->replayed)
    rc = LSMI_ERR_BUSY; /* taken, then gone: the other rolled back */
  return rc == LSMI_OK ? LSMI_PG__ROLLBACK_OK : rc;
}

static int job_create_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  job_create_t *a = ctx;
  const lsmi_job_new_t *j = a->j;
  int rc = j->idem_key ? idem_claim(c, a) : LSMI_OK;
  if (rc)
    return rc;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, j->dataset_id);
  lsmi_pq_text(&p, j->tenant);
  rc = lsmi_pg__query(pg, c,
                      "SELECT 1 FROM datasets WHERE id = $1 AND tenant = $2 "
                      "FOR SHARE",
                      &p, false, LSMI_ERR_NOTFOUND, NULL);
  lsmi_pq_params_t q = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&q, j->id);
  lsmi_pq_text(&q, j->tenant);
  lsmi_pq_text(&q, j->dataset_id);
  lsmi_pq_text(&q, j->params_json);
  lsmi_pq_text(&q, j->progress_json);
  lsmi_pq_int(&q, a->members);
  lsmi_pq_double(&q, j->created_at);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c,
                     "INSERT INTO jobs (id, tenant, dataset_id, state, params, "
                     "progress, members, created_at) VALUES ($1, $2, $3, "
                     "'queued', $4::json, $5::json, $6, $7)",
                     &q, false, NULL);
  /* Members 0 .. E-1 queued, and the combination (-1) waiting for them;
   * the NOTIFY is delivered when the transaction commits. */
  lsmi_pq_params_t m = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&m, j->id);
  lsmi_pq_int(&m, a->members);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c,
                     "WITH m AS (INSERT INTO members (job_id, idx, state, "
                     "tenant, job_seq) SELECT j.id, i, CASE WHEN i < 0 THEN "
                     "'waiting' ELSE 'queued' END, j.tenant, j.seq FROM jobs "
                     "j, generate_series(-1, $2 - 1) AS i WHERE j.id = $1), "
                     "t AS (INSERT INTO tenants (tenant) SELECT tenant FROM "
                     "jobs WHERE id = $1 ON CONFLICT DO NOTHING) "
                     "SELECT pg_notify('lsmi_work', $1)",
                     &m, false, NULL);
  return rc;
}

int lsmi_pg_job_create(lsmi_pg_t *pg, const lsmi_job_new_t *job, int members,
                       char *existing_id, bool *replayed) {
  *replayed = false;
  if (members < 1)
    return LSMI_ERR_INVALID;
  job_create_t a = {job, members, existing_id, replayed};
  return lsmi_pg__in_tx(pg, "BEGIN", job_create_body, &a);
}

/* The API object of a job from a row of JOB_COLS; the mean fraction of its
 * members replaces progress.fraction while several of them run. */
#define JOB_COLS                                                               \
  "j.id, j.dataset_id, j.state, j.params, j.progress, j.created_at, "          \
  "j.started_at, j.finished_at, j.error, j.summary, j.timings, j.attempts, "   \
  "j.members, (SELECT avg(m.fraction) FROM members m WHERE m.job_id = j.id "   \
  "AND m.idx >= 0)"
static const struct {
  const char *name;
  char kind; /* 's' text, 'j' JSON, 't' time, 'i' integer */
} job_cols[] = {{"id", 's'},         {"dataset_id", 's'},  {"state", 's'},
                {"params", 'j'},     {"progress", 'j'},    {"created_at", 't'},
                {"started_at", 't'}, {"finished_at", 't'}, {"error", 'j'},
                {"summary", 'j'},    {"timings", 'j'},     {"attempts", 'i'}};
#define N_JOB_COLS ((int)(sizeof job_cols / sizeof job_cols[0]))

static json_t *job_value(const PGresult *res, int row, int col) {
  const char *t = lsmi_pq_get(res, row, col);
  json_t *v = NULL;
  char stamp[40];
  switch (job_cols[col].kind) {
  case 's':
    return json_string(t ? t : "");
  case 'i':
    return json_integer(lsmi_pq_get_int(res, row, col));
  case 't':
    if (t == NULL)
      return json_null();
    lsmi_util_iso8601(lsmi_pq_get_double(res, row, col), stamp, sizeof stamp);
    return json_string(stamp);
  default:
    v = t ? json_loads(t, 0, NULL) : NULL;
    return v ? v : json_null();
  }
}

static json_t *job_json(const PGresult *res, int row, int *state) {
  json_t *o = json_object();
  for (int i = 0; o && i < N_JOB_COLS; i++)
    if (json_object_set_new(o, job_cols[i].name, job_value(res, row, i))) {
      json_decref(o);
      o = NULL;
    }
  int st = -1;
  if (lsmi_job_state_parse(lsmi_pq_get(res, row, 2), &st))
    st = -1; /* written by no version of this daemon */
  if (state)
    *state = st;
  json_t *progress = o ? json_object_get(o, "progress") : NULL;
  if (st == LSMI_JOB_RUNNING && lsmi_pq_get_int(res, row, 12) > 1 &&
      json_is_object(progress))
    json_object_set_new(progress, "fraction",
                        json_real(lsmi_pq_get_double(res, row, 13)));
  return o;
}

static json_t *job_row_json(const PGresult *res, int row) {
  return job_json(res, row, NULL);
}

int lsmi_pg_job_get(lsmi_pg_t *pg, const char *tenant, const char *id,
                    json_t **job, int *state) {
  *job = NULL;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, id);
  lsmi_pq_text(&p, tenant);
  PGresult *res = NULL;
  int rc = lsmi_pg__query(pg, NULL,
                          "SELECT " JOB_COLS " FROM jobs j WHERE j.id = $1 AND "
                          "($2::text IS NULL OR j.tenant = $2)",
                          &p, false, LSMI_ERR_NOTFOUND, &res);
  if (rc == LSMI_OK && (*job = job_json(res, 0, state)) == NULL)
    rc = LSMI_ERR_NOMEM;
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

int lsmi_pg_job_list(lsmi_pg_t *pg, const char *tenant, int state,
                     int64_t offset, int64_t limit, json_t **page,
                     int64_t *total) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, tenant);
  lsmi_pq_text(&p, state >= 0 ? lsmi_job_state_name(state) : NULL);
  page_t a = {"SELECT count(*) FROM jobs WHERE tenant = $1 AND ($2::text IS "
              "NULL OR state = $2)",
              "SELECT " JOB_COLS " FROM jobs j WHERE j.tenant = $1 AND "
              "($2::text IS NULL OR j.state = $2) ORDER BY j.seq DESC LIMIT "
              "$3 OFFSET $4",
              &p,
              offset,
              limit,
              job_row_json,
              NULL,
              total};
  return page_run(pg, &a, page);
}

typedef struct job_cancel {
  const char *tenant, *id;
  double finished_at;
  bool *was_running;
} job_cancel_t;

static int job_cancel_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  job_cancel_t *a = ctx;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, a->id);
  lsmi_pq_text(&p, a->tenant);
  int rc = lsmi_pg__query(pg, c,
                          "SELECT 1 FROM jobs WHERE id = $1 AND ($2::text IS "
                          "NULL OR tenant = $2)",
                          &p, false, LSMI_ERR_NOTFOUND, NULL);
  return rc ? rc
            : lsmi_pg__end_job(c, a->id, LSMI_JOB_CANCELLED, NULL,
                               a->finished_at, a->was_running);
}

int lsmi_pg_job_cancel(lsmi_pg_t *pg, const char *tenant, const char *id,
                       double finished_at, bool *was_running) {
  if (was_running)
    *was_running = false;
  job_cancel_t a = {tenant, id, finished_at, was_running};
  return lsmi_pg__in_tx(pg, "BEGIN", job_cancel_body, &a);
}

typedef struct job_delete {
  const char *tenant, *id;
  int *state;
} job_delete_t;

static int job_delete_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  job_delete_t *a = ctx;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, a->id);
  lsmi_pq_text(&p, a->tenant);
  /* Locked: a cancel or a finish of the job waits for this transaction,
   * then finds it gone. */
  PGresult *res = NULL;
  int rc = lsmi_pg__query(pg, c,
                          "SELECT state FROM jobs WHERE id = $1 AND ($2::text "
                          "IS NULL OR tenant = $2) FOR UPDATE",
                          &p, false, LSMI_ERR_NOTFOUND, &res);
  if (rc)
    return rc;
  if (lsmi_job_state_parse(lsmi_pq_get(res, 0, 0), a->state))
    *a->state = -1;
  lsmi_pq()->clear(res);
  if (*a->state == LSMI_JOB_QUEUED || *a->state == LSMI_JOB_RUNNING)
    return LSMI_ERR_CONFLICT;
  lsmi_pq_params_t q = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&q, a->id);
  return jobs_delete(c, JOBS_DELETE("SELECT $1::text"), &q, NULL);
}

int lsmi_pg_job_delete(lsmi_pg_t *pg, const char *tenant, const char *id,
                       int *state) {
  int dummy;
  job_delete_t a = {tenant, id, state ? state : &dummy};
  *a.state = -1;
  return lsmi_pg__in_tx(pg, "BEGIN", job_delete_body, &a);
}

/* The ids of those of `ids` that sql (its $1 the array of them) returns,
 * added to *out. The ids need no quoting in an array literal {a,b,c}
 * (the callers ask only about letters, digits and '_', '-', '/', '.'). */
static int ids_where(lsmi_pg_t *pg, const char *sql, const lsmi_idlist_t *ids,
                     lsmi_idlist_t *out) {
  size_t cap = 3;
  for (size_t i = 0; i < ids->n; i++)
    cap += strlen(ids->ids[i]) + 1;
  char *arr = malloc(cap);
  if (arr == NULL)
    return LSMI_ERR_NOMEM;
  size_t len = 0;
  arr[len++] = '{';
  for (size_t i = 0; i < ids->n; i++)
    len += (size_t)snprintf(arr + len, cap - len, "%s%s", i ? "," : "",
                            ids->ids[i]);
  snprintf(arr + len, cap - len, "}");
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, arr);
  PGresult *res = NULL;
  int rc = lsmi_pg__one(pg, sql, &p, false, &res);
  for (int i = 0; rc == LSMI_OK && i < lsmi_pg__rows(res); i++)
    rc = lsmi_idlist_push(out, lsmi_pq_get(res, i, 0));
  if (res)
    lsmi_pq()->clear(res);
  free(arr);
  return rc;
}

int lsmi_pg_gone(lsmi_pg_t *pg, bool jobs, const lsmi_idlist_t *ids,
                 lsmi_idlist_t *gone) {
  return ids_where(pg,
                   jobs ? "SELECT x FROM unnest($1::text[]) AS x WHERE NOT "
                          "EXISTS (SELECT 1 FROM jobs WHERE id = x)"
                        : "SELECT x FROM unnest($1::text[]) AS x WHERE NOT "
                          "EXISTS (SELECT 1 FROM datasets WHERE id = x)",
                   ids, gone);
}

int lsmi_pg_blobs_exist(lsmi_pg_t *pg, const lsmi_idlist_t *keys,
                        lsmi_idlist_t *have) {
  return ids_where(pg,
                   "SELECT key FROM blobs WHERE key = ANY ($1::text[])",
                   keys, have);
}

/* The transaction-level advisory lock of retention: one node sweeps at a
 * time (the migration's lock, pgschema.c, plus one). */
#define RETAIN_LOCK "1819503978"

typedef struct expire {
  double before;
  int limit;
  lsmi_idlist_t *jobs;
  int *keys;
  bool *busy;
} expire_t;

static int expire_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  (void)pg;
  expire_t *a = ctx;
  PGresult *res = NULL;
  int rc = lsmi_pq_run(c, "SELECT pg_try_advisory_xact_lock(" RETAIN_LOCK ")",
                       NULL, false, &res);
  bool got = rc == LSMI_OK && !strcmp(lsmi_pq_get(res, 0, 0), "t");
  if (res)
    lsmi_pq()->clear(res);
  if (rc)
    return rc;
  if (!got) {
    *a->busy = true; /* another node sweeps now */
    return LSMI_PG__ROLLBACK_OK;
  }
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_double(&p, a->before);
  lsmi_pq_int(&p, a->limit);
  rc = jobs_delete(c,
                   JOBS_DELETE("SELECT id FROM jobs WHERE state IN "
                               "('succeeded', 'failed', 'cancelled') AND "
                               "finished_at < $1 ORDER BY finished_at LIMIT "
                               "$2"),
                   &p, a->jobs);
  lsmi_pq_params_t q = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_double(&q, a->before);
  if (rc == LSMI_OK)
    rc = lsmi_pg__count(c,
                        "DELETE FROM idempotency WHERE created_at < $1 "
                        "RETURNING 1",
                        &q, a->keys);
  return rc;
}

int lsmi_pg_expire(lsmi_pg_t *pg, double before, int limit,
                   lsmi_idlist_t *jobs, int *keys, bool *busy) {
  int n_keys = 0;
  bool dummy = false;
  size_t had = jobs ? jobs->n : 0;
  expire_t a = {before, limit, jobs, &n_keys, busy ? busy : &dummy};
  *a.busy = false;
  int rc = lsmi_pg__in_tx(pg, "BEGIN", expire_body, &a);
  if (rc || *a.busy) {
    if (jobs)
      jobs->n = had; /* none of them was deleted */
    n_keys = 0;
  }
  if (keys)
    *keys = n_keys;
  return rc;
}

int lsmi_pg_tenant_bytes(lsmi_pg_t *pg, const char *tenant, uint64_t *bytes) {
  *bytes = 0;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, tenant);
  PGresult *res = NULL;
  /* The result files are their blobs: two index probes a job. */
  int rc = lsmi_pg__one(
      pg,
      "SELECT (SELECT coalesce(sum(bytes), 0) FROM datasets WHERE tenant = "
      "$1) + (SELECT coalesce(sum(b.bytes), 0) FROM jobs j JOIN blobs b ON "
      "b.key IN ('result/' || j.id || '/train', 'result/' || j.id || "
      "'/val') WHERE j.tenant = $1)",
      &p, false, &res);
  if (rc == LSMI_OK)
    *bytes = (uint64_t)lsmi_pq_get_int(res, 0, 0);
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

int lsmi_pg_queued(lsmi_pg_t *pg, const char *tenant, int64_t *all,
                   int64_t *mine) {
  *all = *mine = 0;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, tenant);
  PGresult *res = NULL;
  int rc = lsmi_pg__one(pg,
                        "SELECT count(*), count(*) FILTER (WHERE tenant = "
                        "$1) FROM jobs WHERE state = 'queued'",
                        &p, false, &res);
  if (rc == LSMI_OK) {
    *all = lsmi_pq_get_int(res, 0, 0);
    *mine = lsmi_pq_get_int(res, 0, 1);
  }
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

int lsmi_pg_counts(lsmi_pg_t *pg, int64_t by_state[LSMI_JOB_STATES],
                   int64_t *datasets) {
  for (int i = 0; i < LSMI_JOB_STATES; i++)
    by_state[i] = 0;
  *datasets = 0;
  PGresult *res = NULL;
  int rc = lsmi_pg__one(pg,
                        "SELECT state, count(*) FROM jobs GROUP BY state "
                        "UNION ALL SELECT 'datasets', count(*) FROM datasets",
                        NULL, false, &res);
  for (int i = 0; rc == LSMI_OK && i < lsmi_pg__rows(res); i++) {
    int k;
    if (lsmi_job_state_parse(lsmi_pq_get(res, i, 0), &k) == LSMI_OK)
      by_state[k] = lsmi_pq_get_int(res, i, 1);
    else
      *datasets = lsmi_pq_get_int(res, i, 1);
  }
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}
