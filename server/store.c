/*
 * store.c — SQLite persistence of datasets, jobs and idempotency keys.
 *
 * One connection, opened in serialized mode and guarded by store.mu so that
 * a check and the write that depends on it (idempotency key, dataset still
 * there, no active jobs) happen in one transaction without another thread
 * slipping in between. WAL journal with synchronous=FULL: a function that
 * returned 0 has its change on disk, which is what "acknowledged" means in
 * the durability promise.
 */
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable.h"
#include "resfile.h"
#include "store.h"
#include "storepg.h"
#include "util.h"

struct lsmi_store {
  lsmi_storepg_t *pg; /* the cluster mode: every call is its (storepg.h) */
  sqlite3 *db;
  pthread_mutex_t mu; /* store.mu: guards db and the check's cache; a leaf
                         below no other lock */
  double checked_at;  /* monotonic seconds of the last quick_check */
  char check[160];    /* its finding: "" when the pages are whole */
};

/* How often /readyz runs PRAGMA quick_check (it reads every page). */
#define CHECK_EVERY 10.0

static const char *state_names[LSMI_JOB_STATES] = {
    "queued", "running", "succeeded", "failed", "cancelled"};

const char *lsmi_job_state_name(int state) {
  return (state >= 0 && state < LSMI_JOB_STATES) ? state_names[state]
                                                 : "unknown";
}

int lsmi_job_state_parse(const char *name, int *state) {
  for (int i = 0; name && i < LSMI_JOB_STATES; i++)
    if (!strcmp(name, state_names[i])) {
      *state = i;
      return LSMI_OK;
    }
  return LSMI_ERR_INVALID;
}

/*
 * The schema. Version 1 is the layout of every store written before the
 * store had a version (PRAGMA user_version 0): its tables, made where
 * missing, and jobs.cancel_requested, which the first stores lacked. Each
 * later version is a step at the end of `migrations`; a step, once
 * released, is never edited. A store runs the steps it has not had, each
 * in one transaction with its new user_version, so an interrupted upgrade
 * resumes where it stopped. A store of a newer version than this binary
 * knows is refused: this binary would not keep what the newer one keeps.
 */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS datasets("
    " id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL,"
    " format TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,"
    " classes INTEGER NOT NULL, n_train INTEGER NOT NULL,"
    " n_val INTEGER NOT NULL, d1 INTEGER NOT NULL, d2 INTEGER NOT NULL,"
    " val_fraction REAL NOT NULL, created_at REAL NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS datasets_sha ON datasets(tenant, "
    "sha256);"
    "CREATE TABLE IF NOT EXISTS jobs("
    " id TEXT PRIMARY KEY, tenant TEXT NOT NULL, dataset_id TEXT NOT NULL,"
    " state TEXT NOT NULL, params TEXT NOT NULL, progress TEXT,"
    " created_at REAL NOT NULL, started_at REAL, finished_at REAL,"
    " error TEXT, summary TEXT, timings TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant);"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);"
    "CREATE INDEX IF NOT EXISTS jobs_dataset ON jobs(dataset_id);"
    "CREATE TABLE IF NOT EXISTS idempotency("
    " tenant TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,"
    " job_id TEXT NOT NULL, created_at REAL NOT NULL,"
    " PRIMARY KEY(tenant, key));"
    "CREATE TABLE IF NOT EXISTS pending("
    " kind TEXT NOT NULL, id TEXT NOT NULL, created_at REAL NOT NULL,"
    " PRIMARY KEY(kind, id));";

/* Version 1's column that the first stores lacked. */
static int v1_columns(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT cancel_requested FROM jobs LIMIT 0", -1,
                         &st, NULL) == SQLITE_OK) {
    sqlite3_finalize(st);
    return SQLITE_OK;
  }
  return sqlite3_exec(db,
                      "ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER "
                      "NOT NULL DEFAULT 0",
                      NULL, NULL, NULL);
}

/* SQL function lsmi_result_bytes(id): the bytes of job id's result files
 * (results/ID.train and .val beside the store), for version 2. */
static void result_bytes_fn(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv) {
  const char *dir = sqlite3_user_data(ctx);
  const unsigned char *id = argc == 1 ? sqlite3_value_text(argv[0]) : NULL;
  sqlite3_result_int64(
      ctx, id ? (sqlite3_int64)lsmi_resfile_bytes(dir, (const char *)id) : 0);
}

/* Version 2's result_bytes of the jobs that succeeded before it: the sizes
 * of their result files, so that a tenant's quota counts them. */
static int v2_result_bytes(sqlite3 *db) {
  const char *file = sqlite3_db_filename(db, "main");
  if (file == NULL || file[0] == '\0')
    return SQLITE_OK; /* a store in memory has no files */
  char dir[PATH_MAX];
  if (lsmi_durable_dir_of(file, dir, sizeof dir))
    return SQLITE_CANTOPEN;
  int rc = sqlite3_create_function(db, "lsmi_result_bytes", 1, SQLITE_UTF8, dir,
                                   result_bytes_fn, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db,
                      "UPDATE jobs SET result_bytes = lsmi_result_bytes(id) "
                      "WHERE state = 'succeeded'",
                      NULL, NULL, NULL);
  /* dir is this frame's: the function goes before it does. */
  sqlite3_create_function(db, "lsmi_result_bytes", 1, SQLITE_UTF8, NULL, NULL,
                          NULL, NULL);
  return rc;
}

typedef struct migration {
  const char *description;
  const char *sql;
  int (*fn)(sqlite3 *db); /* after sql; NULL: none */
} migration_t;

static const migration_t migrations[] = {
    {"datasets, jobs, idempotency keys, pending file operations", schema_v1,
     v1_columns},
    /* 2: the bytes of a job's result files (tenants' quotas, the data
     * directory's metrics; measured for the jobs already there), and
     * finished jobs by age (--retain-days); idempotency keys by age and
     * by job. */
    {"result bytes; finished jobs and keys by age",
     "ALTER TABLE jobs ADD COLUMN result_bytes INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX jobs_finished ON jobs(finished_at);"
     "CREATE INDEX idempotency_created ON idempotency(created_at);"
     "CREATE INDEX idempotency_job ON idempotency(job_id);",
     v2_result_bytes},
    /* 3: the keys an upload was read with (NULL, in the datasets of older
     * stores: the usual names). */
    {"the keys an upload was read with",
     "ALTER TABLE datasets ADD COLUMN key_x1 TEXT;"
     "ALTER TABLE datasets ADD COLUMN key_x2 TEXT;"
     "ALTER TABLE datasets ADD COLUMN key_y TEXT;"
     "ALTER TABLE datasets ADD COLUMN key_id TEXT;",
     NULL},
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int lsmi_store_schema_latest(void) { return N_MIGRATIONS; }

/* PRAGMA user_version into *v: SQLITE_OK or the failure. */
static int user_version(sqlite3 *db, int *v) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(db);
  if (rc == SQLITE_OK)
    *v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc;
}

/* Runs step `version` (1-based) and records it, in one transaction. */
static int migrate_one(sqlite3 *db, int version) {
  const migration_t *m = &migrations[version - 1];
  char pragma[40];
  snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", version);
  int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return rc;
  rc = sqlite3_exec(db, m->sql, NULL, NULL, NULL);
  if (rc == SQLITE_OK && m->fn)
    rc = m->fn(db);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, pragma, NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    lsmi_util_log("store_error",
                  json_pack("{s:s, s:i, s:s, s:s}", "level", "error",
                            "migration", version, "description", m->description,
                            "error", sqlite3_errmsg(db)));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
  return rc;
}

/* Brings the store at db up to the latest version: 0, or LSMI_ERR_IO /
 * LSMI_ERR_UNSUPPORTED (a newer store) with err saying why. */
static int migrate(sqlite3 *db, const char *path, lsmi_error_t *err) {
  int from = 0;
  sqlite3_stmt *st = NULL;
  bool fresh = false; /* no table yet: nothing to say about an upgrade */
  if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sqlite_master", -1, &st,
                         NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    fresh = sqlite3_column_int(st, 0) == 0;
  sqlite3_finalize(st);
  int rc = user_version(db, &from);
  if (rc != SQLITE_OK)
    return lsmi_error_set(err, LSMI_ERR_IO, "data-dir",
                          "cannot read the schema version of %s: %s", path,
                          sqlite3_errmsg(db));
  if (from > N_MIGRATIONS)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "data-dir",
                          "the store %s has schema version %d, newer than "
                          "this lsmi knows (%d): run the lsmi that wrote it, "
                          "or a newer one",
                          path, from, N_MIGRATIONS);
  for (int v = from + 1; v <= N_MIGRATIONS; v++)
    if (migrate_one(db, v) != SQLITE_OK)
      return lsmi_error_set(err, LSMI_ERR_IO, "data-dir",
                            "cannot upgrade the store %s to schema version "
                            "%d (%s): %s",
                            path, v, migrations[v - 1].description,
                            sqlite3_errmsg(db));
  if (from < N_MIGRATIONS && !fresh)
    lsmi_util_log("store_schema", json_pack("{s:s, s:i, s:i}", "level", "info",
                                            "from", from, "to", N_MIGRATIONS));
  return LSMI_OK;
}

int lsmi_store_open(const char *path, lsmi_store_t **out, lsmi_error_t *err) {
  *out = NULL;
  lsmi_store_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  pthread_mutex_init(&s->mu, NULL);
  int rc = sqlite3_open_v2(
      path, &s->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc != SQLITE_OK)
    goto fail;
  sqlite3_busy_timeout(s->db, 5000);
  rc = sqlite3_exec(s->db,
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                    "PRAGMA foreign_keys=ON;",
                    NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    goto fail;
  int st = migrate(s->db, path, err);
  if (st) {
    lsmi_store_close(s);
    return st;
  }
  *out = s;
  return LSMI_OK;
fail:
  lsmi_error_set(err, LSMI_ERR_IO, "data-dir", "cannot open the store %s: %s",
                 path, s->db ? sqlite3_errmsg(s->db) : "no memory");
  lsmi_store_close(s);
  return LSMI_ERR_IO;
}

int lsmi_store_open_cluster(lsmi_storepg_t *sp, lsmi_store_t **out) {
  *out = calloc(1, sizeof **out);
  if (*out == NULL) {
    lsmi_storepg_close(sp);
    return LSMI_ERR_NOMEM;
  }
  pthread_mutex_init(&(*out)->mu, NULL);
  (*out)->pg = sp;
  return LSMI_OK;
}

lsmi_storepg_t *lsmi_store_cluster(lsmi_store_t *s) { return s->pg; }

void lsmi_store_close(lsmi_store_t *s) {
  if (s == NULL)
    return;
  lsmi_storepg_close(s->pg);
  if (s->db)
    sqlite3_close(s->db);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* Prepares sql or logs why not; NULL on failure. Called under store.mu. */
static sqlite3_stmt *prep(lsmi_store_t *s, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    lsmi_util_log("store_error", json_pack("{s:s, s:s}", "sql", sql, "error",
                                           sqlite3_errmsg(s->db)));
    return NULL;
  }
  return st;
}

/* The status of the call that just failed on s->db: LSMI_ERR_NOSPACE when
 * the disk is full (SQLite says SQLITE_FULL for ENOSPC), LSMI_ERR_IO
 * otherwise. Called under store.mu, before anything else runs on db. */
static int failed(lsmi_store_t *s) {
  return (sqlite3_errcode(s->db) & 0xff) == SQLITE_FULL ? LSMI_ERR_NOSPACE
                                                        : LSMI_ERR_IO;
}

static void log_step_error(lsmi_store_t *s, const char *where) {
  lsmi_util_log("store_error", json_pack("{s:s, s:s}", "where", where, "error",
                                         sqlite3_errmsg(s->db)));
}

static int exec3(lsmi_store_t *s, const char *sql, const char *a, const char *b,
                 const char *c, int *changes);
static void bind_opt_text(sqlite3_stmt *st, int i, const char *t);

int lsmi_store_ping(lsmi_store_t *s) {
  if (s->pg)
    return lsmi_storepg_ping(s->pg);
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = prep(s, "SELECT 1");
  int out = st && sqlite3_step(st) == SQLITE_ROW ? LSMI_OK : LSMI_ERR_IO;
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return out;
}

/* PRAGMA quick_check(1) into s->check ("" when ok); store.mu held. */
static void quick_check_locked(lsmi_store_t *s) {
  sqlite3_stmt *st = prep(s, "PRAGMA quick_check(1)");
  int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
  const char *t = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0)
                                   : sqlite3_errmsg(s->db);
  snprintf(s->check, sizeof s->check, "%s",
           t && strcmp(t, "ok") == 0 ? ""
           : t                       ? t
                                     : "quick_check failed");
  sqlite3_finalize(st);
}

int lsmi_store_check(lsmi_store_t *s, char *why, size_t size) {
  if (s->pg)
    return lsmi_storepg_check(s->pg, why, size);
  pthread_mutex_lock(&s->mu);
  sqlite3_stmt *st = prep(s, "SELECT COUNT(*) FROM sqlite_master WHERE "
                             "type = 'table' AND name IN ('datasets', "
                             "'jobs', 'idempotency', 'pending')");
  int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
  int tables = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  if (tables < 0)
    snprintf(why, size, "the store does not answer: %s", sqlite3_errmsg(s->db));
  else if (tables != 4)
    snprintf(why, size, "the store lacks %d of its 4 tables", 4 - tables);
  sqlite3_finalize(st);
  double now = lsmi_util_mono();
  if (tables == 4 &&
      (s->checked_at == 0 || now - s->checked_at >= CHECK_EVERY)) {
    quick_check_locked(s);
    s->checked_at = now;
  }
  if (tables == 4 && s->check[0])
    snprintf(why, size, "the store is damaged: %s", s->check);
  int out = tables == 4 && s->check[0] == '\0' ? LSMI_OK : LSMI_ERR_IO;
  pthread_mutex_unlock(&s->mu);
  if (out == LSMI_OK && size)
    why[0] = '\0';
  return out;
}

static void text(const char **p, sqlite3_stmt *st, int col) {
  *p = (const char *)sqlite3_column_text(st, col);
  if (*p == NULL)
    *p = "";
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *t) {
  if (t)
    sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col) {
  const char *t;
  text(&t, st, col);
  snprintf(dst, size, "%s", t);
}

#define DS_COLS                                                                \
  "id, tenant, name, format, sha256, bytes, classes, n_train, n_val, d1, "     \
  "d2, val_fraction, created_at, key_x1, key_x2, key_y, key_id"

static void read_dataset(sqlite3_stmt *st, lsmi_dataset_rec_t *r) {
  memset(r, 0, sizeof *r);
  copy_col(r->id, sizeof r->id, st, 0);
  copy_col(r->tenant, sizeof r->tenant, st, 1);
  copy_col(r->name, sizeof r->name, st, 2);
  copy_col(r->format, sizeof r->format, st, 3);
  copy_col(r->sha256, sizeof r->sha256, st, 4);
  r->bytes = (uint64_t)sqlite3_column_int64(st, 5);
  r->classes = sqlite3_column_int(st, 6);
  r->n_train = (uint64_t)sqlite3_column_int64(st, 7);
  r->n_val = (uint64_t)sqlite3_column_int64(st, 8);
  r->d1 = (uint64_t)sqlite3_column_int64(st, 9);
  r->d2 = (uint64_t)sqlite3_column_int64(st, 10);
  r->val_fraction = sqlite3_column_double(st, 11);
  r->created_at = sqlite3_column_double(st, 12);
  copy_col(r->key_x1, sizeof r->key_x1, st, 13);
  copy_col(r->key_x2, sizeof r->key_x2, st, 14);
  copy_col(r->key_y, sizeof r->key_y, st, 15);
  copy_col(r->key_id, sizeof r->key_id, st, 16);
}

/* Runs a one-row dataset query under the lock: 0 (rec filled),
 * LSMI_ERR_NOTFOUND or LSMI_ERR_IO. */
static int dataset_query(lsmi_store_t *s, const char *sql, const char *a,
                         const char *b, lsmi_dataset_rec_t *rec) {
  sqlite3_stmt *st = prep(s, sql);
  if (st == NULL)
    return LSMI_ERR_IO;
  sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
  if (b)
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 2);
  int rc = sqlite3_step(st);
  int out = LSMI_ERR_NOTFOUND;
  if (rc == SQLITE_ROW) {
    read_dataset(st, rec);
    out = LSMI_OK;
  } else if (rc != SQLITE_DONE) {
    log_step_error(s, "dataset_query");
    out = LSMI_ERR_IO;
  }
  sqlite3_finalize(st);
  return out;
}

int lsmi_store_dataset_get(lsmi_store_t *s, const char *tenant, const char *id,
                           lsmi_dataset_rec_t *rec) {
  if (s->pg)
    return lsmi_storepg_dataset_get(s->pg, tenant, id, rec);
  pthread_mutex_lock(&s->mu);
  int rc = dataset_query(s,
                         "SELECT " DS_COLS " FROM datasets WHERE id = ?1 AND "
                         "(?2 IS NULL OR tenant = ?2)",
                         id, tenant, rec);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int lsmi_store_dataset_find_sha(lsmi_store_t *s, const char *tenant,
                                const char *sha256, lsmi_dataset_rec_t *rec) {
  if (s->pg)
    return lsmi_storepg_dataset_find_sha(s->pg, tenant, sha256, rec);
  pthread_mutex_lock(&s->mu);
  int rc = dataset_query(s,
                         "SELECT " DS_COLS " FROM datasets WHERE sha256 = ?1 "
                         "AND tenant = ?2",
                         sha256, tenant, rec);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int lsmi_store_dataset_insert(lsmi_store_t *s, const lsmi_dataset_rec_t *r,
                              lsmi_dataset_rec_t *existing, bool *existed) {
  if (s->pg)
    return lsmi_storepg_dataset_insert(s->pg, r, existing, existed);
  *existed = false;
  pthread_mutex_lock(&s->mu);
  int out = exec3(s, "BEGIN IMMEDIATE", NULL, NULL, NULL, NULL);
  if (out)
    goto unlock;
  out = dataset_query(s,
                      "SELECT " DS_COLS " FROM datasets WHERE sha256 = ?1 "
                      "AND tenant = ?2",
                      r->sha256, r->tenant, existing);
  if (out != LSMI_ERR_NOTFOUND) {
    *existed = out == LSMI_OK;
    goto rollback;
  }
  sqlite3_stmt *st = prep(s, "INSERT INTO datasets (" DS_COLS ") VALUES "
                             "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,"
                             "?14,?15,?16,?17)");
  if (st == NULL) {
    out = LSMI_ERR_IO;
    goto rollback;
  }
  sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, r->tenant, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, r->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, r->format, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, r->sha256, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)r->bytes);
  sqlite3_bind_int(st, 7, r->classes);
  sqlite3_bind_int64(st, 8, (sqlite3_int64)r->n_train);
  sqlite3_bind_int64(st, 9, (sqlite3_int64)r->n_val);
  sqlite3_bind_int64(st, 10, (sqlite3_int64)r->d1);
  sqlite3_bind_int64(st, 11, (sqlite3_int64)r->d2);
  sqlite3_bind_double(st, 12, r->val_fraction);
  sqlite3_bind_double(st, 13, r->created_at);
  const char *keys[] = {r->key_x1, r->key_x2, r->key_y, r->key_id};
  for (int k = 0; k < 4; k++)
    bind_opt_text(st, 14 + k, keys[k][0] ? keys[k] : NULL);
  out = sqlite3_step(st) == SQLITE_DONE ? LSMI_OK : failed(s);
  if (out)
    log_step_error(s, "dataset_insert");
  sqlite3_finalize(st);
  /* The file is acknowledged with its row: no longer a pending upload. */
  if (out == LSMI_OK)
    out = exec3(s, "DELETE FROM pending WHERE kind = 'upload' AND id = ?1",
                r->id, NULL, NULL, NULL);
  if (out == LSMI_OK)
    out = exec3(s, "COMMIT", NULL, NULL, NULL, NULL);
  if (out == LSMI_OK)
    goto unlock;
rollback:
  exec3(s, "ROLLBACK", NULL, NULL, NULL, NULL);
unlock:
  pthread_mutex_unlock(&s->mu);
  return out;
}

/* Runs a statement with up to three text binds; 0 or LSMI_ERR_IO. *changes
 * (may be NULL) gets the number of rows changed. Called under store.mu. */
static int exec3(lsmi_store_t *s, const char *sql, const char *a, const char *b,
                 const char *c, int *changes) {
  /* A failed COMMIT (a full disk) may have rolled back already. */
  if (!strcmp(sql, "ROLLBACK") && sqlite3_get_autocommit(s->db))
    return LSMI_OK;
  sqlite3_stmt *st = prep(s, sql);
  if (st == NULL)
    return failed(s);
  const char *v[3] = {a, b, c};
  for (int i = 0; i < 3; i++)
    if (v[i])
      sqlite3_bind_text(st, i + 1, v[i], -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? LSMI_OK : failed(s);
  if (out)
    log_step_error(s, sql);
  else if (changes)
    *changes = sqlite3_changes(s->db);
  sqlite3_finalize(st);
  return out;
}

/* One integer from a query with up to two text binds into *n: 0 or
 * LSMI_ERR_IO. Called under store.mu. */
static int count2(lsmi_store_t *s, const char *sql, const char *a,
                  const char *b, int64_t *n) {
  *n = 0;
  sqlite3_stmt *st = prep(s, sql);
  if (st == NULL)
    return LSMI_ERR_IO;
  if (a)
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
  if (b)
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
  int out = LSMI_ERR_IO;
  if (sqlite3_step(st) == SQLITE_ROW) {
    *n = sqlite3_column_int64(st, 0);
    out = LSMI_OK;
  } else {
    log_step_error(s, sql);
  }
  sqlite3_finalize(st);
  return out;
}

/* Whether the tenant has dataset id: 0 (it has), LSMI_ERR_NOTFOUND or
 * LSMI_ERR_IO. Called under store.mu. */
static int dataset_owned(lsmi_store_t *s, const char *tenant, const char *id) {
  int64_t n = 0;
  int out = count2(s,
                   "SELECT COUNT(*) FROM datasets WHERE id = ?1 AND "
                   "tenant = ?2",
                   id, tenant, &n);
  return out ? out : n > 0 ? LSMI_OK : LSMI_ERR_NOTFOUND;
}

void lsmi_idlist_free(lsmi_idlist_t *l) {
  if (l == NULL)
    return;
  free(l->ids);
  *l = (lsmi_idlist_t)LSMI_IDLIST_INIT;
}

int lsmi_idlist_push(lsmi_idlist_t *l, const char *id) {
  if (l == NULL)
    return LSMI_OK;
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    char(*p)[64] = realloc(l->ids, cap * sizeof *p);
    if (p == NULL)
      return LSMI_ERR_NOMEM;
    l->ids = p;
    l->cap = cap;
  }
  snprintf(l->ids[l->n++], sizeof l->ids[0], "%s", id);
  return LSMI_OK;
}

/* Deletes job id's row and idempotency keys and records its files as a
 * pending "job" operation; inside the caller's transaction, under
 * store.mu. */
static int job_delete_locked(lsmi_store_t *s, const char *id) {
  int out = exec3(s, "DELETE FROM jobs WHERE id = ?1", id, NULL, NULL, NULL);
  if (out == LSMI_OK)
    out = exec3(s, "DELETE FROM idempotency WHERE job_id = ?1", id, NULL, NULL,
                NULL);
  if (out == LSMI_OK)
    out = exec3(s,
                "INSERT OR REPLACE INTO pending (kind, id, created_at) "
                "VALUES ('job', ?1, strftime('%s','now'))",
                id, NULL, NULL, NULL);
  return out;
}

/* Deletes the jobs statement st selects (column 0: the id) as
 * job_delete_locked does, adding their ids to *jobs; st is finalized.
 * Under store.mu, inside the caller's transaction. */
static int jobs_delete_locked(lsmi_store_t *s, sqlite3_stmt *st,
                              lsmi_idlist_t *jobs) {
  lsmi_idlist_t found = LSMI_IDLIST_INIT;
  int rc, out = LSMI_OK;
  while (out == LSMI_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *id;
    text(&id, st, 0);
    out = lsmi_idlist_push(&found, id);
  }
  if (out == LSMI_OK && rc != SQLITE_DONE) {
    out = failed(s);
    log_step_error(s, "jobs_delete");
  }
  sqlite3_finalize(st);
  for (size_t i = 0; out == LSMI_OK && i < found.n; i++) {
    out = job_delete_locked(s, found.ids[i]);
    if (out == LSMI_OK)
      out = lsmi_idlist_push(jobs, found.ids[i]);
  }
  lsmi_idlist_free(&found);
  return out;
}

/* The finished jobs of dataset id (tenant's) deleted; under store.mu. */
static int dataset_jobs_delete_locked(lsmi_store_t *s, const char *tenant,
                                      const char *id, lsmi_idlist_t *jobs) {
  sqlite3_stmt *st = prep(s, "SELECT id FROM jobs WHERE dataset_id = ?1 AND "
                             "tenant = ?2 AND state NOT IN "
                             "('queued','running') ORDER BY rowid");
  if (st == NULL)
    return LSMI_ERR_IO;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
  return jobs_delete_locked(s, st, jobs);
}

int lsmi_store_dataset_delete(lsmi_store_t *s, const char *tenant,
                              const char *id, bool with_jobs,
                              lsmi_idlist_t *jobs) {
  if (s->pg)
    return lsmi_storepg_dataset_delete(s->pg, tenant, id, with_jobs, jobs);
  pthread_mutex_lock(&s->mu);
  size_t had = jobs ? jobs->n : 0;
  int64_t active = 0;
  int out = exec3(s, "BEGIN IMMEDIATE", NULL, NULL, NULL, NULL);
  if (out)
    goto unlock;
  out = count2(s,
               "SELECT COUNT(*) FROM jobs WHERE dataset_id = ?1 AND "
               "state IN ('queued','running')",
               id, NULL, &active);
  if (out == LSMI_OK && active > 0) {
    out = dataset_owned(s, tenant, id);
    if (out == LSMI_OK)
      out = LSMI_ERR_CONFLICT;
  } else if (out == LSMI_OK) {
    int changes = 0;
    out = exec3(s, "DELETE FROM datasets WHERE id = ?1 AND tenant = ?2", id,
                tenant, NULL, &changes);
    if (out == LSMI_OK && changes == 0)
      out = LSMI_ERR_NOTFOUND;
    /* The file goes after the commit; until then the store remembers it. */
    if (out == LSMI_OK)
      out = exec3(s,
                  "INSERT OR REPLACE INTO pending (kind, id, created_at) "
                  "VALUES ('delete', ?1, strftime('%s','now'))",
                  id, NULL, NULL, NULL);
    if (out == LSMI_OK && with_jobs)
      out = dataset_jobs_delete_locked(s, tenant, id, jobs);
  }
  if (out == LSMI_OK)
    out = exec3(s, "COMMIT", NULL, NULL, NULL, NULL);
  if (out) {
    exec3(s, "ROLLBACK", NULL, NULL, NULL, NULL);
    if (jobs)
      jobs->n = had; /* none of them was deleted */
  }
unlock:
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_delete(lsmi_store_t *s, const char *tenant, const char *id,
                          int *state) {
  if (s->pg)
    return lsmi_storepg_job_delete(s->pg, tenant, id, state);
  int dummy;
  if (state == NULL)
    state = &dummy;
  *state = -1;
  pthread_mutex_lock(&s->mu);
  int out = exec3(s, "BEGIN IMMEDIATE", NULL, NULL, NULL, NULL);
  if (out)
    goto unlock;
  sqlite3_stmt *st = prep(s, "SELECT state FROM jobs WHERE id = ?1 AND "
                             "(?2 IS NULL OR tenant = ?2)");
  out = st ? LSMI_OK : LSMI_ERR_IO;
  if (st) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    bind_opt_text(st, 2, tenant);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const char *name;
      text(&name, st, 0);
      if (lsmi_job_state_parse(name, state))
        *state = -1;
    } else {
      out = rc == SQLITE_DONE ? LSMI_ERR_NOTFOUND : failed(s);
    }
    sqlite3_finalize(st);
  }
  if (out == LSMI_OK &&
      (*state == LSMI_JOB_QUEUED || *state == LSMI_JOB_RUNNING))
    out = LSMI_ERR_CONFLICT;
  if (out == LSMI_OK)
    out = job_delete_locked(s, id);
  if (out == LSMI_OK)
    out = exec3(s, "COMMIT", NULL, NULL, NULL, NULL);
  if (out)
    exec3(s, "ROLLBACK", NULL, NULL, NULL, NULL);
unlock:
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_expire(lsmi_store_t *s, double before, int limit,
                      lsmi_idlist_t *jobs, int *keys) {
  if (s->pg)
    return lsmi_storepg_expire(s->pg, before, limit, jobs, keys, NULL);
  int n_keys = 0;
  pthread_mutex_lock(&s->mu);
  size_t had = jobs ? jobs->n : 0;
  int out = exec3(s, "BEGIN IMMEDIATE", NULL, NULL, NULL, NULL);
  if (out)
    goto unlock;
  sqlite3_stmt *st = prep(s, "SELECT id FROM jobs WHERE state IN "
                             "('succeeded','failed','cancelled') AND "
                             "finished_at < ?1 ORDER BY finished_at LIMIT ?2");
  if (st == NULL) {
    out = LSMI_ERR_IO;
  } else {
    sqlite3_bind_double(st, 1, before);
    sqlite3_bind_int(st, 2, limit);
    out = jobs_delete_locked(s, st, jobs);
  }
  if (out == LSMI_OK) {
    st = prep(s, "DELETE FROM idempotency WHERE created_at < ?1");
    out = st ? LSMI_OK : LSMI_ERR_IO;
    if (st) {
      sqlite3_bind_double(st, 1, before);
      if (sqlite3_step(st) == SQLITE_DONE)
        n_keys = sqlite3_changes(s->db);
      else
        out = failed(s);
      sqlite3_finalize(st);
    }
  }
  if (out == LSMI_OK)
    out = exec3(s, "COMMIT", NULL, NULL, NULL, NULL);
  if (out) {
    exec3(s, "ROLLBACK", NULL, NULL, NULL, NULL);
    if (jobs)
      jobs->n = had;
    n_keys = 0;
  }
unlock:
  pthread_mutex_unlock(&s->mu);
  if (keys)
    *keys = n_keys;
  return out;
}

int lsmi_store_tenant_bytes(lsmi_store_t *s, const char *tenant,
                            uint64_t *bytes) {
  if (s->pg)
    return lsmi_storepg_tenant_bytes(s->pg, tenant, bytes);
  int64_t ds = 0, res = 0;
  pthread_mutex_lock(&s->mu);
  int out = count2(s,
                   "SELECT COALESCE(SUM(bytes), 0) FROM datasets WHERE "
                   "tenant = ?1",
                   tenant, NULL, &ds);
  if (out == LSMI_OK)
    out = count2(s,
                 "SELECT COALESCE(SUM(result_bytes), 0) FROM jobs WHERE "
                 "tenant = ?1",
                 tenant, NULL, &res);
  pthread_mutex_unlock(&s->mu);
  *bytes = out ? 0 : (uint64_t)ds + (uint64_t)res;
  return out;
}

int lsmi_store_bytes(lsmi_store_t *s, uint64_t *datasets, uint64_t *results) {
  if (s->pg) /* the node's caches of the database's files */
    return lsmi_storepg_cache_bytes(s->pg, datasets, results);
  int64_t ds = 0, res = 0;
  pthread_mutex_lock(&s->mu);
  int out = count2(s, "SELECT COALESCE(SUM(bytes), 0) FROM datasets", NULL,
                   NULL, &ds);
  if (out == LSMI_OK)
    out = count2(s, "SELECT COALESCE(SUM(result_bytes), 0) FROM jobs", NULL,
                 NULL, &res);
  pthread_mutex_unlock(&s->mu);
  *datasets = (uint64_t)ds;
  *results = (uint64_t)res;
  return out;
}

int lsmi_store_pending_add(lsmi_store_t *s, const char *kind, const char *id) {
  if (s->pg) /* a single node's bookkeeping (storepg.h) */
    return LSMI_OK;
  pthread_mutex_lock(&s->mu);
  int out = exec3(s,
                  "INSERT OR REPLACE INTO pending (kind, id, created_at) "
                  "VALUES (?1, ?2, strftime('%s','now'))",
                  kind, id, NULL, NULL);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_pending_remove(lsmi_store_t *s, const char *kind,
                              const char *id) {
  if (s->pg)
    return LSMI_OK;
  pthread_mutex_lock(&s->mu);
  int out = exec3(s, "DELETE FROM pending WHERE kind = ?1 AND id = ?2", kind,
                  id, NULL, NULL);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_pending_remove_all(lsmi_store_t *s, const char *kind,
                                  const lsmi_idlist_t *ids) {
  if (ids->n == 0 || s->pg) /* as lsmi_store_pending_remove */
    return LSMI_OK;
  pthread_mutex_lock(&s->mu);
  int out = exec3(s, "BEGIN IMMEDIATE", NULL, NULL, NULL, NULL);
  for (size_t i = 0; out == LSMI_OK && i < ids->n; i++)
    out = exec3(s, "DELETE FROM pending WHERE kind = ?1 AND id = ?2", kind,
                ids->ids[i], NULL, NULL);
  if (out == LSMI_OK)
    out = exec3(s, "COMMIT", NULL, NULL, NULL, NULL);
  if (out)
    exec3(s, "ROLLBACK", NULL, NULL, NULL, NULL);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_pending_list(lsmi_store_t *s, lsmi_pending_t **items,
                            size_t *count) {
  *items = NULL;
  *count = 0;
  if (s->pg)
    return LSMI_OK;
  pthread_mutex_lock(&s->mu);
  int out = LSMI_ERR_IO;
  sqlite3_stmt *st =
      prep(s, "SELECT kind, id FROM pending ORDER BY created_at, id");
  size_t cap = 0;
  int rc = SQLITE_ERROR;
  while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*count == cap) {
      cap = cap ? 2 * cap : 8;
      lsmi_pending_t *p = realloc(*items, cap * sizeof *p);
      if (p == NULL) {
        rc = SQLITE_NOMEM;
        break;
      }
      *items = p;
    }
    lsmi_pending_t *p = &(*items)[(*count)++];
    copy_col(p->kind, sizeof p->kind, st, 0);
    copy_col(p->id, sizeof p->id, st, 1);
  }
  if (rc == SQLITE_DONE)
    out = LSMI_OK;
  else if (rc == SQLITE_NOMEM)
    out = LSMI_ERR_NOMEM;
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  if (out) {
    free(*items);
    *items = NULL;
    *count = 0;
  }
  return out;
}

/* A list's end: on failure the page is released (*page NULL). */
static int page_done(int out, json_t **page) {
  if (out) {
    json_decref(*page);
    *page = NULL;
  }
  return out;
}

/* A key of rec as JSON: null for the usual names. */
static const char *key_or_null(const char *k) { return k[0] ? k : NULL; }

json_t *lsmi_store_dataset_json(const lsmi_dataset_rec_t *r) {
  char created[40];
  lsmi_util_iso8601(r->created_at, created, sizeof created);
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:I, s:i, s:f, s:{s:s?, s:s?, s:s?, s:s?}, "
      "s:{s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}, s:s}",
      "id", r->id, "name", r->name, "format", r->format, "sha256", r->sha256,
      "bytes", (json_int_t)r->bytes, "classes", r->classes, "val_fraction",
      r->val_fraction, "keys", "x1", key_or_null(r->key_x1), "x2",
      key_or_null(r->key_x2), "y", key_or_null(r->key_y), "id",
      key_or_null(r->key_id), "splits", "train", "n", (json_int_t)r->n_train,
      "d1", (json_int_t)r->d1, "d2", (json_int_t)r->d2, "val", "n",
      (json_int_t)r->n_val, "d1", (json_int_t)r->d1, "d2", (json_int_t)r->d2,
      "created_at", created);
}

int lsmi_store_dataset_list(lsmi_store_t *s, const char *tenant, int64_t offset,
                            int64_t limit, json_t **page, int64_t *total) {
  if (s->pg)
    return lsmi_storepg_dataset_list(s->pg, tenant, offset, limit, page, total);
  *page = json_array();
  if (*page == NULL)
    return LSMI_ERR_NOMEM;
  pthread_mutex_lock(&s->mu);
  int out = count2(s, "SELECT COUNT(*) FROM datasets WHERE tenant = ?1", tenant,
                   NULL, total);
  sqlite3_stmt *st = prep(s, "SELECT " DS_COLS " FROM datasets WHERE "
                             "tenant = ?1 ORDER BY rowid DESC LIMIT ?2 "
                             "OFFSET ?3");
  if (st == NULL || out) {
    out = LSMI_ERR_IO;
  } else {
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit);
    sqlite3_bind_int64(st, 3, offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      lsmi_dataset_rec_t r;
      read_dataset(st, &r);
      json_array_append_new(*page, lsmi_store_dataset_json(&r));
    }
    if (rc != SQLITE_DONE)
      out = LSMI_ERR_IO;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return page_done(out, page);
}

/* ---- jobs ---- */

/* See lsmi_store_idem_check. Called under store.mu. */
static int idem_check_locked(lsmi_store_t *s, const char *tenant,
                             const char *key, const char *hash,
                             char *existing_id, bool *replayed) {
  *replayed = false;
  sqlite3_stmt *st = prep(s, "SELECT request_hash, job_id FROM idempotency "
                             "WHERE tenant = ?1 AND key = ?2");
  if (st == NULL)
    return LSMI_ERR_IO;
  sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
  int out = LSMI_OK;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *h;
    text(&h, st, 0);
    copy_col(existing_id, 64, st, 1);
    *replayed = strcmp(h, hash) == 0;
    out = *replayed ? LSMI_OK : LSMI_ERR_CONFLICT;
  } else if (rc != SQLITE_DONE) {
    out = LSMI_ERR_IO;
  }
  sqlite3_finalize(st);
  return out;
}

int lsmi_store_idem_check(lsmi_store_t *s, const char *tenant, const char *key,
                          const char *req_hash, char *existing_id,
                          bool *replayed) {
  if (s->pg)
    return lsmi_storepg_idem_check(s->pg, tenant, key, req_hash, existing_id,
                                   replayed);
  pthread_mutex_lock(&s->mu);
  int out = idem_check_locked(s, tenant, key, req_hash, existing_id, replayed);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_create(lsmi_store_t *s, const lsmi_job_new_t *j,
                          char *existing_id, bool *replayed) {
  if (s->pg)
    return lsmi_storepg_job_create(s->pg, j, existing_id, replayed);
  *replayed = false;
  pthread_mutex_lock(&s->mu);
  int out = exec3(s, "BEGIN IMMEDIATE", NULL, NULL, NULL, NULL);
  if (out)
    goto unlock;
  if (j->idem_key) {
    out = idem_check_locked(s, j->tenant, j->idem_key, j->req_hash, existing_id,
                            replayed);
    if (out || *replayed)
      goto rollback; /* nothing to write: an error, or the earlier job */
  }
  out = dataset_owned(s, j->tenant, j->dataset_id);
  if (out)
    goto rollback;
  sqlite3_stmt *st = prep(s, "INSERT INTO jobs (id, tenant, dataset_id, "
                             "state, params, progress, created_at) VALUES "
                             "(?1, ?2, ?3, 'queued', ?4, ?5, ?6)");
  if (st == NULL) {
    out = LSMI_ERR_IO;
    goto rollback;
  }
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, j->tenant, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, j->dataset_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, j->params_json, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, j->progress_json, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 6, j->created_at);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE) {
    out = failed(s);
    log_step_error(s, "job_create");
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    goto rollback;
  if (j->idem_key) {
    st = prep(s, "INSERT INTO idempotency (tenant, key, request_hash, job_id, "
                 "created_at) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (st == NULL) {
      out = LSMI_ERR_IO;
      goto rollback;
    }
    sqlite3_bind_text(st, 1, j->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->idem_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->req_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, j->created_at);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
      out = failed(s);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
      goto rollback;
  }
  out = exec3(s, "COMMIT", NULL, NULL, NULL, NULL);
  if (out)
    goto rollback;
  goto unlock;
rollback:
  exec3(s, "ROLLBACK", NULL, NULL, NULL, NULL);
unlock:
  pthread_mutex_unlock(&s->mu);
  return out;
}

#define JOB_COLS                                                               \
  "id, dataset_id, state, params, progress, created_at, started_at, "          \
  "finished_at, error, summary, timings, attempts, cancel_requested"

/* A stored JSON text column as a value (null when NULL or unparsable). */
static json_t *json_col(sqlite3_stmt *st, int col) {
  const char *t = (const char *)sqlite3_column_text(st, col);
  if (t == NULL)
    return json_null();
  json_t *v = json_loads(t, 0, NULL);
  return v ? v : json_null();
}

static json_t *time_col(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL)
    return json_null();
  char buf[40];
  lsmi_util_iso8601(sqlite3_column_double(st, col), buf, sizeof buf);
  return json_string(buf);
}

static json_t *read_job(sqlite3_stmt *st, int *state) {
  const char *id, *ds, *stname;
  text(&id, st, 0);
  text(&ds, st, 1);
  text(&stname, st, 2);
  if (state && lsmi_job_state_parse(stname, state))
    *state = -1; /* written by no version of this daemon */
  json_t *o =
      json_pack("{s:s, s:s, s:s}", "id", id, "dataset_id", ds, "state", stname);
  if (o == NULL)
    return NULL;
  json_object_set_new(o, "params", json_col(st, 3));
  json_object_set_new(o, "progress", json_col(st, 4));
  json_object_set_new(o, "created_at", time_col(st, 5));
  json_object_set_new(o, "started_at", time_col(st, 6));
  json_object_set_new(o, "finished_at", time_col(st, 7));
  json_object_set_new(o, "error", json_col(st, 8));
  json_object_set_new(o, "summary", json_col(st, 9));
  json_object_set_new(o, "timings", json_col(st, 10));
  json_object_set_new(o, "attempts", json_integer(sqlite3_column_int(st, 11)));
  json_object_set_new(o, "cancel_requested",
                      json_boolean(sqlite3_column_int(st, 12) != 0));
  return o;
}

int lsmi_store_job_get(lsmi_store_t *s, const char *tenant, const char *id,
                       json_t **job, int *state) {
  if (s->pg)
    return lsmi_storepg_job_get(s->pg, tenant, id, job, state);
  *job = NULL;
  pthread_mutex_lock(&s->mu);
  int out = LSMI_ERR_IO;
  sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1 "
                             "AND (?2 IS NULL OR tenant = ?2)");
  if (st) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    bind_opt_text(st, 2, tenant);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
      out = (*job = read_job(st, state)) ? LSMI_OK : LSMI_ERR_NOMEM;
    else if (rc == SQLITE_DONE)
      out = LSMI_ERR_NOTFOUND;
    else
      log_step_error(s, "job_get");
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_list(lsmi_store_t *s, const char *tenant, int state,
                        int64_t offset, int64_t limit, json_t **page,
                        int64_t *total) {
  if (s->pg)
    return lsmi_storepg_job_list(s->pg, tenant, state, offset, limit, page,
                                 total);
  *page = json_array();
  if (*page == NULL)
    return LSMI_ERR_NOMEM;
  const char *sname = state >= 0 ? lsmi_job_state_name(state) : NULL;
  pthread_mutex_lock(&s->mu);
  int out = count2(s,
                   "SELECT COUNT(*) FROM jobs WHERE tenant = ?1 AND "
                   "(?2 IS NULL OR state = ?2)",
                   tenant, sname, total);
  sqlite3_stmt *st = prep(s, "SELECT " JOB_COLS " FROM jobs WHERE tenant = "
                             "?1 AND (?2 IS NULL OR state = ?2) ORDER BY "
                             "rowid DESC LIMIT ?3 OFFSET ?4");
  if (st == NULL || out) {
    out = LSMI_ERR_IO;
  } else {
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    bind_opt_text(st, 2, sname);
    sqlite3_bind_int64(st, 3, limit);
    sqlite3_bind_int64(st, 4, offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      json_array_append_new(*page, read_job(st, NULL));
    if (rc != SQLITE_DONE)
      out = LSMI_ERR_IO;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return page_done(out, page);
}

int lsmi_store_job_recover(lsmi_store_t *s, int *requeued, int *cancelled) {
  if (s->pg) { /* leases recover the cluster's work (csched.c) */
    if (requeued)
      *requeued = 0;
    if (cancelled)
      *cancelled = 0;
    return LSMI_OK;
  }
  pthread_mutex_lock(&s->mu);
  int n_cancelled = 0, n_requeued = 0;
  int out = exec3(s, "BEGIN IMMEDIATE", NULL, NULL, NULL, NULL);
  if (out == LSMI_OK)
    out = exec3(s,
                "UPDATE jobs SET state = 'cancelled', finished_at = "
                "CAST(strftime('%s','now') AS REAL) WHERE state IN "
                "('queued','running') AND cancel_requested != 0",
                NULL, NULL, NULL, &n_cancelled);
  if (out == LSMI_OK)
    out = exec3(s, "UPDATE jobs SET state = 'queued' WHERE state = 'running'",
                NULL, NULL, NULL, &n_requeued);
  if (out == LSMI_OK)
    out = exec3(s, "COMMIT", NULL, NULL, NULL, NULL);
  if (out)
    exec3(s, "ROLLBACK", NULL, NULL, NULL, NULL);
  pthread_mutex_unlock(&s->mu);
  if (requeued)
    *requeued = out ? 0 : n_requeued;
  if (cancelled)
    *cancelled = out ? 0 : n_cancelled;
  return out;
}

int lsmi_store_job_request_cancel(lsmi_store_t *s, const char *id) {
  if (s->pg)
    return lsmi_storepg_job_request_cancel(s->pg, id);
  pthread_mutex_lock(&s->mu);
  int changes = 0;
  int out = exec3(s,
                  "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND "
                  "state IN ('queued','running')",
                  id, NULL, NULL, &changes);
  pthread_mutex_unlock(&s->mu);
  return out ? out : changes ? LSMI_OK : LSMI_ERR_NOTFOUND;
}

int lsmi_store_job_state(lsmi_store_t *s, const char *id, int *state) {
  if (s->pg)
    return lsmi_storepg_job_state(s->pg, id, state);
  *state = -1;
  pthread_mutex_lock(&s->mu);
  int out = LSMI_ERR_IO;
  sqlite3_stmt *st = prep(s, "SELECT state FROM jobs WHERE id = ?1");
  if (st) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      const char *name;
      text(&name, st, 0);
      if (lsmi_job_state_parse(name, state))
        *state = -1;
      out = LSMI_OK;
    } else if (rc == SQLITE_DONE) {
      out = LSMI_ERR_NOTFOUND;
    } else {
      log_step_error(s, "job_state");
    }
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_each_queued(lsmi_store_t *s,
                               void (*fn)(void *ctx, const lsmi_job_row_t *row),
                               void *ctx) {
  if (s->pg) /* the cluster's queue is the database's (csched.c) */
    return LSMI_OK;
  pthread_mutex_lock(&s->mu);
  int out = LSMI_OK;
  sqlite3_stmt *st = prep(s, "SELECT id, tenant, dataset_id, params FROM "
                             "jobs WHERE state = 'queued' ORDER BY rowid");
  if (st == NULL) {
    out = LSMI_ERR_IO;
  } else {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      lsmi_job_row_t row;
      copy_col(row.id, sizeof row.id, st, 0);
      copy_col(row.tenant, sizeof row.tenant, st, 1);
      copy_col(row.dataset_id, sizeof row.dataset_id, st, 2);
      const char *p;
      text(&p, st, 3);
      row.params_json = (char *)p;
      fn(ctx, &row);
    }
    if (rc != SQLITE_DONE)
      out = LSMI_ERR_IO;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_start(lsmi_store_t *s, const char *id, double started_at) {
  if (s->pg)
    return LSMI_ERR_UNSUPPORTED;
  pthread_mutex_lock(&s->mu);
  int out = LSMI_ERR_IO;
  sqlite3_stmt *st = prep(s, "UPDATE jobs SET state = 'running', started_at "
                             "= ?2, attempts = attempts + 1, error = NULL "
                             "WHERE id = ?1 AND state = 'queued'");
  if (st) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, started_at);
    if (sqlite3_step(st) == SQLITE_DONE)
      out = sqlite3_changes(s->db) ? LSMI_OK : LSMI_ERR_NOTFOUND;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_finish(lsmi_store_t *s, const char *id, int state,
                          double finished_at, const char *error_json,
                          const char *summary_json, const char *timings_json,
                          const char *progress_json, uint64_t result_bytes) {
  if (s->pg)
    return LSMI_ERR_UNSUPPORTED;
  pthread_mutex_lock(&s->mu);
  int out = LSMI_ERR_IO;
  sqlite3_stmt *st = prep(s, "UPDATE jobs SET state = ?2, finished_at = ?3, "
                             "error = ?4, summary = ?5, timings = ?6, "
                             "progress = COALESCE(?7, progress), "
                             "result_bytes = ?8 WHERE id = ?1 AND state = "
                             "'running'");
  if (st) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, lsmi_job_state_name(state), -1, SQLITE_STATIC);
    if (state == LSMI_JOB_QUEUED)
      sqlite3_bind_null(st, 3);
    else
      sqlite3_bind_double(st, 3, finished_at);
    bind_opt_text(st, 4, error_json);
    bind_opt_text(st, 5, summary_json);
    bind_opt_text(st, 6, timings_json);
    bind_opt_text(st, 7, progress_json);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)result_bytes);
    if (sqlite3_step(st) == SQLITE_DONE) {
      out = sqlite3_changes(s->db) ? LSMI_OK : LSMI_ERR_NOTFOUND;
    } else {
      out = failed(s);
      log_step_error(s, "job_finish");
    }
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_cancel_queued(lsmi_store_t *s, const char *id,
                                 double finished_at, bool running_too) {
  if (s->pg)
    return lsmi_storepg_job_cancel_queued(s->pg, id, finished_at, running_too);
  pthread_mutex_lock(&s->mu);
  int out = LSMI_ERR_IO;
  sqlite3_stmt *st = prep(
      s, running_too ? "UPDATE jobs SET state = 'cancelled', finished_at = "
                       "?2, cancel_requested = 1 WHERE id = ?1 AND state IN "
                       "('queued','running')"
                     : "UPDATE jobs SET state = 'cancelled', finished_at = "
                       "?2, cancel_requested = 1 WHERE id = ?1 AND state = "
                       "'queued'");
  if (st) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, finished_at);
    if (sqlite3_step(st) == SQLITE_DONE)
      out = sqlite3_changes(s->db) ? LSMI_OK : LSMI_ERR_NOTFOUND;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_job_progress(lsmi_store_t *s, const char *id,
                            const char *progress_json) {
  if (s->pg)
    return LSMI_ERR_UNSUPPORTED;
  pthread_mutex_lock(&s->mu);
  int out = exec3(s,
                  "UPDATE jobs SET progress = ?2 WHERE id = ?1 AND state = "
                  "'running'",
                  id, progress_json, NULL, NULL);
  pthread_mutex_unlock(&s->mu);
  return out;
}

int lsmi_store_counts(lsmi_store_t *s, int64_t by_state[LSMI_JOB_STATES],
                      int64_t *datasets) {
  if (s->pg)
    return lsmi_storepg_counts(s->pg, by_state, datasets);
  for (int i = 0; i < LSMI_JOB_STATES; i++)
    by_state[i] = 0;
  pthread_mutex_lock(&s->mu);
  int out = LSMI_OK;
  sqlite3_stmt *st = prep(s, "SELECT state, COUNT(*) FROM jobs GROUP BY "
                             "state");
  int rc = SQLITE_ERROR;
  while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int k;
    if (lsmi_job_state_parse((const char *)sqlite3_column_text(st, 0), &k) ==
        LSMI_OK)
      by_state[k] = sqlite3_column_int64(st, 1);
  }
  if (rc != SQLITE_DONE)
    out = LSMI_ERR_IO;
  sqlite3_finalize(st);
  int dsout = count2(s, "SELECT COUNT(*) FROM datasets", NULL, NULL, datasets);
  pthread_mutex_unlock(&s->mu);
  return out ? out : dsout;
}
