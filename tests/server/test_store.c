/*
 * test_store.c — server/store.c on a temp SQLite file: datasets (duplicate
 * bytes per tenant, tenant isolation, delete blocked by active jobs), jobs
 * (idempotency replay and conflict, unknown dataset, the state machine,
 * recovery of running jobs after a crash, counts), reopening the file, and
 * a database failing underneath (every call says LSMI_ERR_IO).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dsrec.h"
#include "helpers.h"
#include "store.h"

typedef struct fx {
  char dir[64];
  char path[128];
  lsmi_store_t *s;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/lsmi-store-XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  snprintf(f->path, sizeof f->path, "%s/lsmi.db", f->dir);
  lsmi_error_t err = {0};
  if (lsmi_store_open(f->path, &f->s, &err))
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  lsmi_store_close(f->s);
  int rc = remove_tree(f->dir);
  free(f);
  return rc;
}

static lsmi_dataset_rec_t ds(const char *id, const char *tenant,
                             const char *sha) {
  return dsrec_make(id, tenant, sha,
                    (dsrec_sizes_t){.bytes = 100,
                                    .classes = 2,
                                    .n_train = 8,
                                    .n_val = 2,
                                    .d1 = 3,
                                    .d2 = 4,
                                    .val_fraction = 0.2,
                                    .created_at = 1.5e9});
}

/* Test-only markers beside the statuses, for the bool out-parameters: the
 * store found the key's earlier job of the same request (REPLAYED), or the
 * tenant's earlier upload of the same bytes (EXISTED). */
enum { REPLAYED = 1, EXISTED = 2 };
static int new_job(lsmi_store_t *s, const char *id, const char *tenant,
                   const char *dsid, const char *key, const char *hash,
                   char *existing) {
  lsmi_job_new_t j = {
      id,  tenant, dsid, "{\"seed\":1}", "{\"phase\":\"queued\"}",
      2e9, key,    hash};
  bool replayed = true; /* the store must clear it */
  int st = lsmi_store_job_create(s, &j, existing, &replayed);
  return st == 0 && replayed ? REPLAYED : st;
}

static int idem(lsmi_store_t *s, const char *tenant, const char *key,
                const char *hash, char *existing) {
  bool replayed = true;
  int st = lsmi_store_idem_check(s, tenant, key, hash, existing, &replayed);
  return st == 0 && replayed ? REPLAYED : st;
}

static int insert(lsmi_store_t *s, const lsmi_dataset_rec_t *r,
                  lsmi_dataset_rec_t *ex) {
  bool existed = true;
  int st = lsmi_store_dataset_insert(s, r, ex, &existed);
  return st == 0 && existed ? EXISTED : st;
}

static json_t *job_get(lsmi_store_t *s, const char *tenant, const char *id,
                       int *state) {
  json_t *j = NULL;
  int st = lsmi_store_job_get(s, tenant, id, &j, state);
  assert_true(st == 0 || st == LSMI_ERR_NOTFOUND);
  assert_true((st == 0) == (j != NULL));
  return j;
}

static void test_datasets(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"), got, ex;
  snprintf(a.key_x1, sizeof a.key_x1, "feat_a"); /* the upload's keys */
  snprintf(a.key_id, sizeof a.key_id, "sample_id");
  assert_int_equal(insert(f->s, &a, &ex), 0);
  lsmi_dataset_rec_t dup = ds("ds_a2", "alice", "aaaa");
  assert_int_equal(insert(f->s, &dup, &ex), EXISTED);
  assert_string_equal(ex.id, "ds_a");
  lsmi_dataset_rec_t b = ds("ds_b", "bob", "aaaa"); /* other tenant: fine */
  assert_int_equal(insert(f->s, &b, &ex), 0);
  assert_int_equal(lsmi_store_dataset_get(f->s, "alice", "ds_a", &got), 0);
  assert_memory_equal(&got, &a, sizeof got);
  assert_int_equal(lsmi_store_dataset_get(f->s, "bob", "ds_a", &got),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_store_dataset_get(f->s, NULL, "ds_a", &got), 0);
  assert_int_equal(lsmi_store_dataset_find_sha(f->s, "bob", "aaaa", &got), 0);
  assert_string_equal(got.id, "ds_b");
  json_t *page = NULL;
  int64_t total = 0;
  assert_int_equal(lsmi_store_dataset_list(f->s, "alice", 0, 10, &page, &total),
                   0);
  assert_int_equal(total, 1);
  assert_int_equal(json_array_size(page), 1);
  json_t *o = json_array_get(page, 0);
  assert_string_equal(json_string_value(json_object_get(o, "id")), "ds_a");
  json_t *keys = json_object_get(o, "keys");
  assert_string_equal(json_string_value(json_object_get(keys, "x1")), "feat_a");
  assert_true(json_is_null(json_object_get(keys, "x2"))); /* the usual */
  assert_string_equal(json_string_value(json_object_get(keys, "id")),
                      "sample_id");
  assert_int_equal(
      json_integer_value(json_object_get(
          json_object_get(json_object_get(o, "splits"), "val"), "n")),
      2);
  json_decref(page);
  assert_int_equal(lsmi_store_dataset_delete(f->s, "bob", "ds_a", false, NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_a", false, NULL), 0);
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_a", false, NULL),
      LSMI_ERR_NOTFOUND);
}

static void test_jobs_and_idempotency(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"), ex;
  assert_int_equal(insert(f->s, &a, &ex), 0);
  char existing[64] = "";
  assert_int_equal(new_job(f->s, "job_1", "alice", "ds_a", "k", "h1", existing),
                   0);
  assert_int_equal(new_job(f->s, "job_2", "alice", "ds_a", "k", "h1", existing),
                   REPLAYED);
  assert_string_equal(existing, "job_1");
  assert_int_equal(new_job(f->s, "job_3", "alice", "ds_a", "k", "h2", existing),
                   LSMI_ERR_CONFLICT);
  assert_int_equal(idem(f->s, "alice", "k", "h1", existing), REPLAYED);
  assert_int_equal(idem(f->s, "bob", "k", "h1", existing), 0); /* unused */
  /* bob cannot use alice's dataset; nothing is written on failure */
  assert_int_equal(new_job(f->s, "job_4", "bob", "ds_a", "k", "h1", existing),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(idem(f->s, "bob", "k", "h1", existing), 0); /* unused */
  assert_int_equal(
      new_job(f->s, "job_5", "alice", "ds_a", NULL, NULL, existing), 0);

  int state_ = -1;
  json_t *j = job_get(f->s, "alice", "job_1", &state_);
  assert_non_null(j);
  assert_int_equal(state_, LSMI_JOB_QUEUED);
  assert_string_equal(json_string_value(json_object_get(j, "state")), "queued");
  assert_true(json_is_null(json_object_get(j, "started_at")));
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(j, "params"), "seed")),
      1);
  json_decref(j);
  assert_null(job_get(f->s, "bob", "job_1", NULL));

  /* active jobs block deleting their dataset */
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_a", false, NULL),
      LSMI_ERR_CONFLICT);

  /* state machine */
  assert_int_equal(lsmi_store_job_start(f->s, "job_1", 3e9), 0);
  assert_int_equal(lsmi_store_job_start(f->s, "job_1", 3e9), LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_store_job_cancel_queued(f->s, "job_1", 4e9, false),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(
      lsmi_store_job_progress(f->s, "job_1", "{\"phase\":\"train\"}"), 0);
  assert_int_equal(lsmi_store_job_cancel_queued(f->s, "job_5", 4e9, false), 0);

  /* a crash: the running job is queued again, with its attempt counted */
  int n = -1;
  assert_int_equal(lsmi_store_job_recover(f->s, &n, NULL), 0);
  assert_int_equal(n, 1);
  j = job_get(f->s, NULL, "job_1", &state_);
  assert_int_equal(state_, LSMI_JOB_QUEUED);
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
  json_decref(j);
  assert_int_equal(lsmi_store_job_start(f->s, "job_1", 5e9), 0);
  assert_int_equal(lsmi_store_job_finish(f->s, "job_1", LSMI_JOB_SUCCEEDED, 6e9,
                                         NULL, "{\"val\":{\"R\":1}}",
                                         "{\"seconds_total\":1}", NULL, 0),
                   0);
  assert_int_equal(lsmi_store_job_finish(f->s, "job_1", LSMI_JOB_FAILED, 7e9,
                                         NULL, NULL, NULL, NULL, 0),
                   LSMI_ERR_NOTFOUND);
  j = job_get(f->s, "alice", "job_1", &state_);
  assert_int_equal(state_, LSMI_JOB_SUCCEEDED);
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 2);
  assert_true(json_is_object(json_object_get(j, "summary")));
  assert_string_equal(phase_of(j), "train");
  json_decref(j);

  int64_t by[LSMI_JOB_STATES], dsn = 0;
  assert_int_equal(lsmi_store_counts(f->s, by, &dsn), 0);
  assert_int_equal(by[LSMI_JOB_SUCCEEDED], 1);
  assert_int_equal(by[LSMI_JOB_CANCELLED], 1);
  assert_int_equal(by[LSMI_JOB_QUEUED], 0);
  assert_int_equal(dsn, 1);

  json_t *page = NULL;
  int64_t total = 0;
  assert_int_equal(lsmi_store_job_list(f->s, "alice", LSMI_JOB_CANCELLED, 0, 10,
                                       &page, &total),
                   0);
  assert_int_equal(total, 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(page, 0), "id")),
      "job_5");
  json_decref(page);
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_a", false, NULL), 0);
}

static void count_row(void *ctx, const lsmi_job_row_t *row) {
  int *n = ctx;
  assert_string_equal(row->tenant, "alice");
  assert_string_equal(row->params_json, "{\"seed\":1}");
  (*n)++;
}

static void test_reopen_keeps_everything(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"), ex;
  assert_int_equal(insert(f->s, &a, &ex), 0);
  char existing[64];
  assert_int_equal(
      new_job(f->s, "job_1", "alice", "ds_a", NULL, NULL, existing), 0);
  assert_int_equal(
      new_job(f->s, "job_2", "alice", "ds_a", NULL, NULL, existing), 0);
  assert_int_equal(lsmi_store_job_start(f->s, "job_2", 3e9), 0);
  lsmi_store_close(f->s);
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_store_open(f->path, &f->s, &err), 0);
  assert_int_equal(lsmi_store_ping(f->s), 0);
  int n = 0;
  assert_int_equal(lsmi_store_job_recover(f->s, &n, NULL), 0);
  assert_int_equal(n, 1);
  n = 0;
  assert_int_equal(lsmi_store_job_each_queued(f->s, count_row, &n), 0);
  assert_int_equal(n, 2);
}

/* A cancel asked for is not lost to a crash: the next start cancels the
 * job instead of running it again, running or queued. */
static void test_cancel_survives_a_restart(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"), ex;
  assert_int_equal(insert(f->s, &a, &ex), 0);
  char existing[64];
  for (int i = 1; i <= 3; i++) {
    char id[16];
    snprintf(id, sizeof id, "job_%d", i);
    assert_int_equal(new_job(f->s, id, "alice", "ds_a", NULL, NULL, existing),
                     0);
  }
  assert_int_equal(lsmi_store_job_start(f->s, "job_1", 3e9), 0);
  assert_int_equal(lsmi_store_job_start(f->s, "job_2", 3e9), 0);
  assert_int_equal(lsmi_store_job_request_cancel(f->s, "job_1"), 0);
  assert_int_equal(lsmi_store_job_request_cancel(f->s, "job_3"), 0);
  assert_int_equal(lsmi_store_job_request_cancel(f->s, "job_9"),
                   LSMI_ERR_NOTFOUND);
  int st = -1;
  json_t *j = job_get(f->s, "alice", "job_1", &st);
  assert_true(json_is_true(json_object_get(j, "cancel_requested")));
  json_decref(j);
  lsmi_store_close(f->s);
  assert_int_equal(lsmi_store_open(f->path, &f->s, NULL), 0);
  int requeued = -1, cancelled = -1;
  assert_int_equal(lsmi_store_job_recover(f->s, &requeued, &cancelled), 0);
  assert_int_equal(requeued, 1);
  assert_int_equal(cancelled, 2);
  assert_int_equal(lsmi_store_job_state(f->s, "job_1", &st), 0);
  assert_int_equal(st, LSMI_JOB_CANCELLED);
  assert_int_equal(lsmi_store_job_state(f->s, "job_2", &st), 0);
  assert_int_equal(st, LSMI_JOB_QUEUED);
  assert_int_equal(lsmi_store_job_state(f->s, "job_3", &st), 0);
  assert_int_equal(st, LSMI_JOB_CANCELLED);
  assert_int_equal(lsmi_store_job_state(f->s, "job_9", &st), LSMI_ERR_NOTFOUND);
  /* A job the store says runs, that runs nowhere, can be cancelled. */
  assert_int_equal(lsmi_store_job_start(f->s, "job_2", 4e9), 0);
  assert_int_equal(lsmi_store_job_cancel_queued(f->s, "job_2", 5e9, false),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_store_job_cancel_queued(f->s, "job_2", 5e9, true), 0);
  assert_int_equal(lsmi_store_job_state(f->s, "job_2", &st), 0);
  assert_int_equal(st, LSMI_JOB_CANCELLED);
}

/* A store of the first schema (no cancel_requested) is brought up to date
 * when it is opened. */
static void test_old_schema_migrates(void **state) {
  fx_t *f = *state;
  lsmi_store_close(f->s);
  f->s = NULL;
  unlink(f->path);
  sql_exec(f->path,
           "CREATE TABLE jobs(id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
           " dataset_id TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT "
           "NULL, progress TEXT, created_at REAL NOT NULL, started_at REAL,"
           " finished_at REAL, error TEXT, summary TEXT, timings TEXT,"
           " attempts INTEGER NOT NULL DEFAULT 0);"
           "INSERT INTO jobs (id, tenant, dataset_id, state, params, "
           "created_at) VALUES ('job_old', 't', 'ds', 'running', '{}', 1);");
  assert_int_equal(lsmi_store_open(f->path, &f->s, NULL), 0);
  assert_int_equal(lsmi_store_job_request_cancel(f->s, "job_old"), 0);
  int requeued = -1, cancelled = -1;
  assert_int_equal(lsmi_store_job_recover(f->s, &requeued, &cancelled), 0);
  assert_int_equal(cancelled, 1);
}

/* A store whose datasets table predates the upload's keys gains them
 * when it is opened, every row kept (its keys the usual names). */
static void test_old_datasets_gain_keys(void **state) {
  fx_t *f = *state;
  lsmi_store_close(f->s);
  f->s = NULL;
  unlink(f->path);
  sql_exec(f->path,
           "CREATE TABLE datasets(id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
           " name TEXT NOT NULL, format TEXT NOT NULL, sha256 TEXT NOT NULL,"
           " bytes INTEGER NOT NULL, classes INTEGER NOT NULL, n_train "
           "INTEGER NOT NULL, n_val INTEGER NOT NULL, d1 INTEGER NOT NULL,"
           " d2 INTEGER NOT NULL, val_fraction REAL NOT NULL, created_at "
           "REAL NOT NULL);"
           "INSERT INTO datasets VALUES ('ds_old', 't', 'old', 'npz', 'ab', "
           "10, 2, 8, 2, 3, 4, 0, 1);");
  assert_int_equal(lsmi_store_open(f->path, &f->s, NULL), 0);
  lsmi_dataset_rec_t got;
  assert_int_equal(lsmi_store_dataset_get(f->s, "t", "ds_old", &got), 0);
  assert_string_equal(got.name, "old");
  assert_int_equal(got.n_train, 8);
  assert_string_equal(got.key_x1, "");
  assert_string_equal(got.key_id, "");
  lsmi_dataset_rec_t b = ds("ds_new", "t", "cd"), ex;
  snprintf(b.key_y, sizeof b.key_y, "label");
  assert_int_equal(insert(f->s, &b, &ex), 0);
  /* Opened again: nothing to add, nothing lost. */
  lsmi_store_close(f->s);
  assert_int_equal(lsmi_store_open(f->path, &f->s, NULL), 0);
  assert_int_equal(lsmi_store_dataset_get(f->s, "t", "ds_new", &got), 0);
  assert_memory_equal(&got, &b, sizeof got);
  assert_int_equal(lsmi_store_dataset_get(f->s, "t", "ds_old", &got), 0);
}

/* PRAGMA user_version of the store's file, read through a second
 * connection. */
static int file_version(const fx_t *f) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* The schema carries its version: a new store has the latest; a store of
 * the unversioned layout (as every lsmi before the version wrote it, with
 * its rows) is upgraded and keeps them, once; a store of a newer version
 * is refused, untouched. */
static void test_schema_versions(void **state) {
  fx_t *f = *state;
  assert_true(lsmi_store_schema_latest() >= 2);
  assert_int_equal(file_version(f), lsmi_store_schema_latest());
  lsmi_store_close(f->s);
  f->s = NULL;
  unlink(f->path);
  /* The layout of lsmi 0.1 (user_version 0), with a finished job. */
  sql_exec(
      f->path,
      "CREATE TABLE datasets(id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name "
      "TEXT NOT NULL, format TEXT NOT NULL, sha256 TEXT NOT NULL, bytes "
      "INTEGER NOT NULL, classes INTEGER NOT NULL, n_train INTEGER NOT NULL,"
      " n_val INTEGER NOT NULL, d1 INTEGER NOT NULL, d2 INTEGER NOT NULL,"
      " val_fraction REAL NOT NULL, created_at REAL NOT NULL);"
      "CREATE UNIQUE INDEX datasets_sha ON datasets(tenant, sha256);"
      "CREATE TABLE jobs(id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
      " dataset_id TEXT NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL,"
      " progress TEXT, created_at REAL NOT NULL, started_at REAL, finished_at"
      " REAL, error TEXT, summary TEXT, timings TEXT, attempts INTEGER NOT "
      "NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE idempotency(tenant TEXT NOT NULL, key TEXT NOT NULL,"
      " request_hash TEXT NOT NULL, job_id TEXT NOT NULL, created_at REAL NOT"
      " NULL, PRIMARY KEY(tenant, key));"
      "CREATE TABLE pending(kind TEXT NOT NULL, id TEXT NOT NULL, created_at"
      " REAL NOT NULL, PRIMARY KEY(kind, id));"
      "INSERT INTO datasets VALUES ('ds_old', 'alice', 'n', 'npz', 'aaaa', "
      "1000, 2, 8, 2, 3, 4, 0.2, 1);"
      "INSERT INTO jobs (id, tenant, dataset_id, state, params, created_at, "
      "finished_at) VALUES ('job_old', 'alice', 'ds_old', 'succeeded', '{}',"
      " 1, 2);"
      "INSERT INTO idempotency VALUES ('alice', 'k', 'h', 'job_old', 1);");
  assert_int_equal(file_version(f), 0);
  assert_int_equal(lsmi_store_open(f->path, &f->s, NULL), 0);
  assert_int_equal(file_version(f), lsmi_store_schema_latest());
  lsmi_dataset_rec_t got;
  assert_int_equal(lsmi_store_dataset_get(f->s, "alice", "ds_old", &got), 0);
  int st = -1;
  json_t *j = job_get(f->s, "alice", "job_old", &st);
  assert_int_equal(st, LSMI_JOB_SUCCEEDED);
  json_decref(j);
  char existing[64] = "";
  assert_int_equal(idem(f->s, "alice", "k", "h", existing), REPLAYED);
  uint64_t bytes = 0;
  assert_int_equal(lsmi_store_tenant_bytes(f->s, "alice", &bytes), 0);
  assert_int_equal(bytes, 1000); /* old jobs count no result bytes */
  /* Opening it again runs nothing more. */
  lsmi_store_close(f->s);
  assert_int_equal(lsmi_store_open(f->path, &f->s, NULL), 0);
  assert_int_equal(file_version(f), lsmi_store_schema_latest());
  /* A newer store is refused and left as it is. */
  lsmi_store_close(f->s);
  f->s = NULL;
  sql_exec(f->path, "PRAGMA user_version = 999");
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_store_open(f->path, &f->s, &err), LSMI_ERR_UNSUPPORTED);
  assert_null(f->s);
  assert_non_null(strstr(err.message, "newer"));
  assert_int_equal(file_version(f), 999);
  char pragma[48];
  snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d",
           lsmi_store_schema_latest());
  sql_exec(f->path, pragma);
  assert_int_equal(lsmi_store_open(f->path, &f->s, NULL), 0);
}

/* Runs job id to its end in state `state` with result_bytes. */
static void finish(lsmi_store_t *s, const char *id, int state, double at,
                   uint64_t bytes) {
  assert_int_equal(lsmi_store_job_start(s, id, at - 1), 0);
  assert_int_equal(
      lsmi_store_job_finish(s, id, state, at, NULL, NULL, NULL, NULL, bytes),
      0);
}

/* The kinds and ids of the pending entries, "kind:id kind:id ...". */
static void pending_text(lsmi_store_t *s, char *out, size_t size) {
  lsmi_pending_t *items = NULL;
  size_t n = 0, len = 0;
  assert_int_equal(lsmi_store_pending_list(s, &items, &n), 0);
  out[0] = '\0';
  for (size_t i = 0; i < n && len < size; i++)
    len += (size_t)snprintf(out + len, size - len, "%s%s:%s", i ? " " : "",
                            items[i].kind, items[i].id);
  free(items);
}

/* A finished job is deleted with its keys and leaves a pending "job"
 * entry for its files; a queued or running one is not; another tenant's
 * is not found. The bytes a tenant stores count its datasets and its
 * result files. */
static void test_job_delete(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"), ex;
  assert_int_equal(insert(f->s, &a, &ex), 0);
  char existing[64] = "", pend[256];
  assert_int_equal(new_job(f->s, "job_1", "alice", "ds_a", "k1", "h", existing),
                   0);
  assert_int_equal(
      new_job(f->s, "job_2", "alice", "ds_a", NULL, NULL, existing), 0);
  finish(f->s, "job_1", LSMI_JOB_SUCCEEDED, 5e9, 4000);
  uint64_t bytes = 0;
  assert_int_equal(lsmi_store_tenant_bytes(f->s, "alice", &bytes), 0);
  assert_int_equal(bytes, 100 + 4000);
  assert_int_equal(lsmi_store_tenant_bytes(f->s, "bob", &bytes), 0);
  assert_int_equal(bytes, 0);
  uint64_t dsb = 0, resb = 0;
  assert_int_equal(lsmi_store_bytes(f->s, &dsb, &resb), 0);
  assert_true(dsb == 100 && resb == 4000);
  int st = -1;
  assert_int_equal(lsmi_store_job_delete(f->s, "bob", "job_1", &st),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_store_job_delete(f->s, "alice", "job_2", &st),
                   LSMI_ERR_CONFLICT);
  assert_int_equal(st, LSMI_JOB_QUEUED);
  assert_int_equal(lsmi_store_job_delete(f->s, "alice", "job_1", &st), 0);
  assert_int_equal(st, LSMI_JOB_SUCCEEDED);
  assert_null(job_get(f->s, "alice", "job_1", NULL));
  assert_int_equal(idem(f->s, "alice", "k1", "h", existing), 0); /* unused */
  pending_text(f->s, pend, sizeof pend);
  assert_string_equal(pend, "job:job_1");
  assert_int_equal(lsmi_store_tenant_bytes(f->s, "alice", &bytes), 0);
  assert_int_equal(bytes, 100);
  assert_int_equal(lsmi_store_job_delete(f->s, "alice", "job_1", NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_store_pending_remove(f->s, "job", "job_1"), 0);
}

/* Deleting a dataset takes its finished jobs with it (their ids handed
 * back, their files pending), or keeps them; an active job blocks it and
 * nothing is deleted. */
static void test_dataset_delete_with_jobs(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"),
                     b = ds("ds_b", "alice", "bbbb"), ex;
  assert_int_equal(insert(f->s, &a, &ex), 0);
  assert_int_equal(insert(f->s, &b, &ex), 0);
  char existing[64] = "", pend[256];
  const char *ids[] = {"job_1", "job_2", "job_3", "job_4"};
  const char *dss[] = {"ds_a", "ds_a", "ds_a", "ds_b"};
  for (int i = 0; i < 4; i++)
    assert_int_equal(
        new_job(f->s, ids[i], "alice", dss[i], NULL, NULL, existing), 0);
  finish(f->s, "job_1", LSMI_JOB_SUCCEEDED, 5e9, 10);
  finish(f->s, "job_2", LSMI_JOB_FAILED, 5e9, 0);
  finish(f->s, "job_4", LSMI_JOB_SUCCEEDED, 5e9, 10);
  lsmi_idlist_t jobs = LSMI_IDLIST_INIT;
  /* job_3 is queued: nothing goes */
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_a", true, &jobs),
      LSMI_ERR_CONFLICT);
  assert_int_equal(jobs.n, 0);
  json_t *kept = job_get(f->s, "alice", "job_1", NULL);
  assert_non_null(kept);
  json_decref(kept);
  assert_int_equal(lsmi_store_job_cancel_queued(f->s, "job_3", 6e9, false), 0);
  assert_int_equal(lsmi_store_dataset_delete(f->s, "bob", "ds_a", true, &jobs),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_a", true, &jobs), 0);
  assert_int_equal(jobs.n, 3);
  assert_string_equal(jobs.ids[0], "job_1");
  assert_string_equal(jobs.ids[2], "job_3");
  for (int i = 0; i < 3; i++)
    assert_null(job_get(f->s, "alice", ids[i], NULL));
  pending_text(f->s, pend, sizeof pend);
  assert_non_null(strstr(pend, "delete:ds_a"));
  assert_non_null(strstr(pend, "job:job_2"));
  /* ds_b keeps its job when asked to */
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_b", false, &jobs), 0);
  assert_int_equal(jobs.n, 3);
  json_t *j = job_get(f->s, "alice", "job_4", NULL);
  assert_non_null(j);
  json_decref(j);
  lsmi_idlist_free(&jobs);
  assert_null(jobs.ids);
  lsmi_idlist_free(NULL);
}

/* Retention: finished jobs older than the cut go, oldest first, at most
 * `limit` at a time; younger and unfinished ones stay; keys older than
 * the cut go too. */
static void test_expire(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"), ex;
  assert_int_equal(insert(f->s, &a, &ex), 0);
  char existing[64] = "";
  const char *ids[] = {"job_1", "job_2", "job_3", "job_4", "job_5"};
  const char *keys[] = {"k1", "k2", "k3", "k4", "k5"};
  for (int i = 0; i < 5; i++)
    assert_int_equal(
        new_job(f->s, ids[i], "alice", "ds_a", keys[i], "h", existing), 0);
  finish(f->s, "job_1", LSMI_JOB_SUCCEEDED, 100, 0);
  finish(f->s, "job_2", LSMI_JOB_FAILED, 200, 0);
  finish(f->s, "job_3", LSMI_JOB_SUCCEEDED, 300, 0);
  finish(f->s, "job_4", LSMI_JOB_SUCCEEDED, 3e9, 0); /* young */
  /* job_5 stays queued, its key made at 2e9 (new_job) */
  lsmi_idlist_t jobs = LSMI_IDLIST_INIT;
  int nkeys = -1;
  assert_int_equal(lsmi_store_expire(f->s, 1000, 2, &jobs, &nkeys), 0);
  assert_int_equal(jobs.n, 2);
  assert_string_equal(jobs.ids[0], "job_1");
  assert_string_equal(jobs.ids[1], "job_2");
  assert_int_equal(nkeys, 0); /* every key was made at 2e9 */
  assert_int_equal(lsmi_store_expire(f->s, 1000, 100, &jobs, &nkeys), 0);
  assert_int_equal(jobs.n, 3);
  assert_string_equal(jobs.ids[2], "job_3");
  assert_int_equal(lsmi_store_expire(f->s, 1000, 100, &jobs, &nkeys), 0);
  assert_int_equal(jobs.n, 3);
  json_t *j = job_get(f->s, "alice", "job_4", NULL);
  assert_non_null(j);
  json_decref(j);
  /* later: the keys are old too, and job_4 with them; job_5 stays */
  assert_int_equal(lsmi_store_expire(f->s, 4e9, 100, &jobs, &nkeys), 0);
  assert_int_equal(jobs.n, 4);
  assert_int_equal(nkeys, 1); /* k5; k1..k4 went with their jobs */
  int st = -1;
  assert_int_equal(lsmi_store_job_state(f->s, "job_5", &st), 0);
  assert_int_equal(st, LSMI_JOB_QUEUED);
  /* The four pending "job" entries go in one call, and nothing else. */
  char pend[256];
  assert_int_equal(lsmi_store_pending_add(f->s, "delete", "ds_x"), 0);
  pending_text(f->s, pend, sizeof pend);
  assert_non_null(strstr(pend, "job:job_4"));
  assert_int_equal(lsmi_store_pending_remove_all(f->s, "job", &jobs), 0);
  pending_text(f->s, pend, sizeof pend);
  assert_string_equal(pend, "delete:ds_x");
  lsmi_idlist_free(&jobs);
  assert_int_equal(lsmi_store_pending_remove_all(f->s, "job", &jobs), 0);
}

static void test_state_names(void **state) {
  (void)state;
  int st = -1;
  for (int i = 0; i < LSMI_JOB_STATES; i++) {
    assert_int_equal(lsmi_job_state_parse(lsmi_job_state_name(i), &st), 0);
    assert_int_equal(st, i);
  }
  assert_int_equal(lsmi_job_state_parse("done", &st), LSMI_ERR_INVALID);
  assert_int_equal(lsmi_job_state_parse(NULL, &st), LSMI_ERR_INVALID);
  assert_string_equal(lsmi_job_state_name(99), "unknown");
}

/* Runs sql on the store's file through a second connection. */
static void exec_other(const fx_t *f, const char *sql) {
  sql_exec(f->path, sql);
}

/* A database that fails under the store: every call says LSMI_ERR_IO, and
 * never "not found" (an upload once took that for "no earlier upload"). */
static void test_store_errors_are_errors(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t a = ds("ds_a", "alice", "aaaa"), got;
  assert_int_equal(insert(f->s, &a, &got), 0);
  char existing[64];
  assert_int_equal(new_job(f->s, "job_1", "alice", "ds_a", "k", "h1", existing),
                   0);
  exec_other(f, "ALTER TABLE datasets RENAME TO datasets_gone;"
                "ALTER TABLE jobs RENAME TO jobs_gone;"
                "ALTER TABLE idempotency RENAME TO idempotency_gone;");
  assert_int_equal(lsmi_store_ping(f->s), 0); /* the database answers */
  assert_int_equal(lsmi_store_dataset_find_sha(f->s, "alice", "aaaa", &got),
                   LSMI_ERR_IO);
  assert_int_equal(lsmi_store_dataset_get(f->s, "alice", "ds_a", &got),
                   LSMI_ERR_IO);
  lsmi_dataset_rec_t b = ds("ds_b", "alice", "bbbb");
  assert_int_equal(insert(f->s, &b, &got), LSMI_ERR_IO);
  assert_int_equal(
      lsmi_store_dataset_delete(f->s, "alice", "ds_a", false, NULL),
      LSMI_ERR_IO);
  json_t *page = json_true(); /* a static value: must become NULL */
  int64_t total = 0;
  assert_int_equal(lsmi_store_dataset_list(f->s, "alice", 0, 10, &page, &total),
                   LSMI_ERR_IO);
  assert_null(page);
  assert_int_equal(lsmi_store_job_list(f->s, "alice", -1, 0, 10, &page, &total),
                   LSMI_ERR_IO);
  assert_null(page);
  json_t *j = json_true();
  assert_int_equal(lsmi_store_job_get(f->s, "alice", "job_1", &j, NULL),
                   LSMI_ERR_IO);
  assert_null(j);
  assert_int_equal(idem(f->s, "alice", "k", "h1", existing), LSMI_ERR_IO);
  assert_int_equal(
      new_job(f->s, "job_2", "alice", "ds_a", NULL, NULL, existing),
      LSMI_ERR_IO);
  assert_int_equal(lsmi_store_job_start(f->s, "job_1", 3e9), LSMI_ERR_IO);
  assert_int_equal(lsmi_store_job_finish(f->s, "job_1", LSMI_JOB_FAILED, 4e9,
                                         NULL, NULL, NULL, NULL, 0),
                   LSMI_ERR_IO);
  assert_int_equal(lsmi_store_job_cancel_queued(f->s, "job_1", 4e9, false),
                   LSMI_ERR_IO);
  int n = 0;
  assert_int_equal(lsmi_store_job_recover(f->s, &n, NULL), LSMI_ERR_IO);
  int64_t by[LSMI_JOB_STATES], dsn = -1;
  assert_int_equal(lsmi_store_counts(f->s, by, &dsn), LSMI_ERR_IO);
  assert_int_equal(dsn, 0);
}

static void test_open_failure(void **state) {
  (void)state;
  lsmi_store_t *s = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_store_open("/nonexistent/dir/x.db", &s, &err),
                   LSMI_ERR_IO);
  assert_null(s);
  assert_string_equal(err.field, "data-dir");
  lsmi_store_close(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_datasets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_jobs_and_idempotency, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_store_errors_are_errors, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_survives_a_restart, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_old_schema_migrates, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_old_datasets_gain_keys, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_schema_versions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_job_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dataset_delete_with_jobs, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
      cmocka_unit_test(test_state_names),
      cmocka_unit_test(test_open_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
