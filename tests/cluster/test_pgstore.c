/*
 * test_pgstore.c — the PostgreSQL store (server/pq.c, pgschema.c,
 * pgstore.c, pgblob.c, pgqueue.c) against a real PostgreSQL: the one
 * tests/cluster/pg.sh starts, reached through LSMI_TEST_PG_DSN (without
 * it every test skips). Each test gets a database of its own and two
 * "nodes", two lsmi_pg_t with their own pools, as two daemons would.
 *
 * Migrations (serialised by the advisory lock, idempotent, a newer schema
 * refused); blobs (sizes around the chunk, replacement, a corrupted chunk
 * caught); datasets and jobs as the SQLite store keeps them; the queue
 * (concurrent claims never share a unit, over many rounds; the fair order;
 * an expired lease claimed again with attempts counting, the old claim
 * refused; the last member's report, on a real ensemble whose combination
 * equals lsmi_fit's); a finished job's and a dataset's deletion,
 * retention one node at a time, a tenant's bytes, what a node's cache
 * sweep asks; cancel and failure NOTIFYed to another connection
 * within a second; a connection lost between and during calls; the server
 * stopped and started again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgschema.h"
#include "pgstore.h"
#include "pq.h"
#include "resfile.h"
#include "server/dsrec.h"
#include "util.h"

typedef struct fx {
  char db[64];
  char dsn[512];
  char dir[64];
  lsmi_pg_t *a, *b; /* two nodes */
} fx_t;

static const char *base_dsn(void) { return getenv("LSMI_TEST_PG_DSN"); }

/* A connection to the cluster's postgres database, for what a test does
 * behind the store's back. */
static lsmi_pq_conn_t *admin(const char *dsn) {
  lsmi_pq_conn_t *c = NULL;
  lsmi_error_t err = {0};
  if (lsmi_pq_conn_open(dsn ? dsn : base_dsn(), "test admin", &c, &err))
    fail_msg("admin connection: %s", err.message);
  return c;
}

/* Runs sql on c; the result's first value as an integer (0 without). */
static int64_t sql(lsmi_pq_conn_t *c, const char *q) {
  PGresult *res = NULL;
  assert_int_equal(lsmi_pq_conn_begin(c), LSMI_OK);
  int rc = lsmi_pq_run(c, q, NULL, false, &res);
  if (rc)
    fail_msg("%s: %s", q, lsmi_status_name(rc));
  int64_t v = lsmi_pq()->ntuples(res) > 0 ? lsmi_pq_get_int(res, 0, 0) : 0;
  lsmi_pq()->clear(res);
  return v;
}

static int64_t sql_db(const fx_t *f, const char *q) {
  lsmi_pq_conn_t *c = admin(f->dsn);
  int64_t v = sql(c, q);
  lsmi_pq_conn_close(c);
  return v;
}

static lsmi_pg_t *node(const fx_t *f, const char *name, int connections) {
  lsmi_pg_options_t o = {f->dsn, name, connections, 0, NULL};
  lsmi_pg_t *pg = NULL;
  lsmi_error_t err = {0};
  if (lsmi_pg_open(&o, &pg, &err))
    fail_msg("lsmi_pg_open %s: %s", name, err.message);
  return pg;
}

static int setup(void **state) {
  if (base_dsn() == NULL)
    return 0; /* each test skips */
  static atomic_int serial;
  fx_t *f = calloc(1, sizeof *f);
  snprintf(f->db, sizeof f->db, "lsmi_t%d_%d", (int)getpid(),
           atomic_fetch_add(&serial, 1));
  snprintf(f->dsn, sizeof f->dsn, "%s dbname=%s", base_dsn(), f->db);
  /* In pg.sh's directory, which goes whatever happens to this process. */
  const char *pgdir = getenv("LSMI_TEST_PG_DIR");
  snprintf(f->dir, sizeof f->dir, "%s/test-XXXXXX", pgdir ? pgdir : "/tmp");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  char q[128];
  snprintf(q, sizeof q, "CREATE DATABASE %s", f->db);
  lsmi_pq_conn_t *c = admin(NULL);
  sql(c, q);
  lsmi_pq_conn_close(c);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f == NULL)
    return 0;
  lsmi_pg_close(f->a);
  lsmi_pg_close(f->b);
  char q[160];
  snprintf(q, sizeof q, "DROP DATABASE %s WITH (FORCE)", f->db);
  lsmi_pq_conn_t *c = admin(NULL);
  sql(c, q);
  lsmi_pq_conn_close(c);
  snprintf(q, sizeof q, "rm -rf '%s'", f->dir);
  if (system(q) != 0)
    return -1;
  free(f);
  return 0;
}

/* The fixture with both nodes open (the schema migrated by the first). */
static fx_t *nodes(void **state) {
  fx_t *f = *state;
  if (f == NULL)
    skip();
  f->a = node(f, "a", 2);
  f->b = node(f, "b", 2);
  return f;
}

/* A file of n bytes under the fixture's directory, its content a function
 * of seed. */
static void make_file(const fx_t *f, const char *name, size_t n, int seed,
                      char *path) {
  snprintf(path, 256, "%s/%s", f->dir, name);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(seed + 1);
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    fputc((int)(x & 0xff), fp);
  }
  assert_int_equal(fclose(fp), 0);
}

/* Whether two files hold the same bytes. */
static bool same_file(const char *p, const char *q) {
  FILE *a = fopen(p, "rb"), *b = fopen(q, "rb");
  bool same = a && b;
  for (int ca = 0, cb = 0; same && ca != EOF;) {
    ca = fgetc(a);
    cb = fgetc(b);
    same = ca == cb;
  }
  if (a)
    fclose(a);
  if (b)
    fclose(b);
  return same;
}

/* ---- migrations ---- */

typedef struct migrator {
  const char *dsn;
  int from, to, rc;
  atomic_bool done;
} migrator_t;

static void *migrate_thread(void *arg) {
  migrator_t *m = arg;
  lsmi_pq_conn_t *c = admin(m->dsn);
  m->rc = lsmi_pgschema_migrate(c, &m->from, &m->to, NULL);
  lsmi_pq_conn_close(c);
  atomic_store(&m->done, true);
  return NULL;
}

/* Two nodes migrating at once wait for the lock, and one of them does the
 * work; a third finds nothing to do; a newer schema is refused. */
static void test_migrate_serialised(void **state) {
  fx_t *f = *state;
  if (f == NULL)
    skip();
  int latest = lsmi_pgschema_latest();
  lsmi_pq_conn_t *holder = admin(f->dsn);
  sql(holder, "SELECT pg_advisory_lock(1819503977)");
  migrator_t m[2] = {{.dsn = f->dsn}, {.dsn = f->dsn}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, migrate_thread, &m[i]);
  usleep(300 * 1000);
  assert_false(atomic_load(&m[0].done));
  assert_false(atomic_load(&m[1].done));
  sql(holder, "SELECT pg_advisory_unlock(1819503977)");
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  lsmi_pq_conn_close(holder);
  assert_int_equal(m[0].rc, LSMI_OK);
  assert_int_equal(m[1].rc, LSMI_OK);
  assert_int_equal(m[0].to, latest);
  assert_int_equal(m[1].to, latest);
  assert_int_equal(m[0].from + m[1].from, latest); /* one found 0 */
  assert_int_equal(sql_db(f, "SELECT count(*) FROM schema_version"), latest);

  migrator_t again = {.dsn = f->dsn};
  migrate_thread(&again);
  assert_int_equal(again.rc, LSMI_OK);
  assert_int_equal(again.from, latest);
  assert_int_equal(again.to, latest);

  sql_db(f, "INSERT INTO schema_version (version, description) VALUES "
            "(1000, 'from the future')");
  lsmi_pq_conn_t *c = admin(f->dsn);
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_pgschema_migrate(c, NULL, NULL, &err),
                   LSMI_ERR_UNSUPPORTED);
  assert_non_null(strstr(err.message, "1000"));
  lsmi_pq_conn_close(c);
  lsmi_pg_options_t o = {f->dsn, "a", 1, 0, NULL};
  assert_int_equal(lsmi_pg_open(&o, &f->a, NULL), LSMI_ERR_UNSUPPORTED);
  assert_null(f->a);
}

/* A DSN libpq cannot parse, and a missing node name. */
static void test_open_invalid(void **state) {
  fx_t *f = *state;
  if (f == NULL)
    skip();
  lsmi_error_t err = {0};
  lsmi_pg_options_t o = {"host=localhost port", "a", 1, 0, NULL};
  assert_int_equal(lsmi_pg_open(&o, &f->a, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "store");
  o.dsn = f->dsn;
  o.node = "";
  assert_int_equal(lsmi_pg_open(&o, &f->a, &err), LSMI_ERR_INVALID);
  assert_null(f->a);
}

/* ---- blobs ---- */

static void round_trip(fx_t *f, const char *key, size_t n, int seed) {
  char src[256], dst[256];
  make_file(f, "src", n, seed, src);
  snprintf(dst, sizeof dst, "%s/dst", f->dir);
  assert_int_equal(lsmi_pg_blob_put(f->a, key, src), LSMI_OK);
  uint64_t bytes = 12345;
  assert_int_equal(lsmi_pg_blob_fetch(f->b, key, dst, f->dir, &bytes), LSMI_OK);
  assert_int_equal(bytes, n);
  if (!same_file(src, dst))
    fail_msg("blob %s of %zu bytes came back different", key, n);
  unlink(dst);
}

/* Sizes around the chunk (1 MiB) and well past it, written by one node
 * and read by the other; a key written again is replaced. */
static void test_blob_round_trip(void **state) {
  fx_t *f = nodes(state);
  const size_t ch = LSMI_PG_CHUNK_BYTES;
  const size_t sizes[] = {0, 1, ch - 1, ch, ch + 1, 2 * ch + ch / 2};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    round_trip(f, "blob/sizes", sizes[i], (int)i);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM blob_chunks"), 3);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM blobs"), 1);
  assert_int_equal(lsmi_pg_blob_delete(f->a, "blob/sizes"), LSMI_OK);
  assert_int_equal(lsmi_pg_blob_delete(f->a, "blob/sizes"), LSMI_ERR_NOTFOUND);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM blob_chunks"), 0);
}

/* An unknown key, a missing source file, and a chunk altered behind the
 * store's back: no file appears where the blob was to go. */
static void test_blob_errors(void **state) {
  fx_t *f = nodes(state);
  char src[256], dst[256];
  snprintf(dst, sizeof dst, "%s/dst", f->dir);
  assert_int_equal(lsmi_pg_blob_fetch(f->a, "nothing", dst, NULL, NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(access(dst, F_OK), -1);
  assert_int_equal(lsmi_pg_blob_put(f->a, "x", "/nonexistent/file"),
                   LSMI_ERR_IO);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM blobs"), 0);

  make_file(f, "src", LSMI_PG_CHUNK_BYTES + 10, 7, src);
  assert_int_equal(lsmi_pg_blob_put(f->a, "x", src), LSMI_OK);
  sql_db(f, "UPDATE blob_chunks SET data = overlay(data placing '\\x00' "
            "from 5 for 1) WHERE key = 'x' AND seq = 1");
  assert_int_equal(lsmi_pg_blob_fetch(f->b, "x", dst, f->dir, NULL),
                   LSMI_ERR_IO);
  assert_int_equal(access(dst, F_OK), -1);
}

/* ---- datasets ---- */

static lsmi_dataset_rec_t rec(const char *id, const char *tenant,
                              const char *sha) {
  lsmi_dataset_rec_t r =
      dsrec_make(id, tenant, sha,
                 (dsrec_sizes_t){.bytes = 1000,
                                 .classes = 3,
                                 .n_train = 80,
                                 .n_val = 20,
                                 .d1 = 4,
                                 .d2 = 5,
                                 .val_fraction = 0.2,
                                 .created_at = 1700000000.25});
  snprintf(r.key_x1, sizeof r.key_x1, "feat-%s", id); /* the upload's keys */
  snprintf(r.key_id, sizeof r.key_id, "sample_id");
  return r;
}

static void insert_ds(fx_t *f, const char *id, const char *tenant,
                      const char *sha) {
  char path[256];
  make_file(f, id, 3000, 1, path);
  lsmi_dataset_rec_t r = rec(id, tenant, sha), existing;
  bool existed = true;
  assert_int_equal(lsmi_pg_dataset_insert(f->a, &r, path, &existing, &existed),
                   LSMI_OK);
  assert_false(existed);
}

/* The SQLite store's semantics: one dataset per tenant and content, every
 * field kept, tenants apart, newest first, the bytes with the row. */
static void test_datasets(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  char path[256];
  make_file(f, "ds1", 3000, 1, path);
  lsmi_dataset_rec_t dup = rec("ds1b", "t1", "aaa"), got;
  bool existed = false;
  assert_int_equal(lsmi_pg_dataset_insert(f->b, &dup, path, &got, &existed),
                   LSMI_OK);
  assert_true(existed);
  assert_string_equal(got.id, "ds1");
  insert_ds(f, "ds2", "t2", "aaa"); /* the same bytes, another tenant */
  insert_ds(f, "ds3", "t1", "bbb");

  lsmi_dataset_rec_t want = rec("ds1", "t1", "aaa");
  assert_int_equal(lsmi_pg_dataset_get(f->b, "t1", "ds1", &got), LSMI_OK);
  assert_memory_equal(&got, &want, sizeof got);
  assert_int_equal(lsmi_pg_dataset_get(f->b, NULL, "ds1", &got), LSMI_OK);
  assert_int_equal(lsmi_pg_dataset_get(f->b, "t2", "ds1", &got),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_pg_dataset_find_sha(f->b, "t2", "aaa", &got), LSMI_OK);
  assert_string_equal(got.id, "ds2");

  json_t *page = NULL;
  int64_t total = 0;
  assert_int_equal(lsmi_pg_dataset_list(f->b, "t1", 0, 10, &page, &total),
                   LSMI_OK);
  assert_int_equal(total, 2);
  assert_int_equal(json_array_size(page), 2);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(page, 0), "id")), "ds3");
  json_decref(page);
  assert_int_equal(lsmi_pg_dataset_list(f->b, "t1", 1, 10, &page, &total),
                   LSMI_OK);
  assert_int_equal(json_array_size(page), 1);
  json_decref(page);

  char key[LSMI_PG_KEY_MAX], dst[256];
  lsmi_pg_dataset_key("ds1", key);
  snprintf(dst, sizeof dst, "%s/cache-ds1", f->dir);
  assert_int_equal(lsmi_pg_blob_fetch(f->b, key, dst, NULL, NULL), LSMI_OK);
  assert_true(same_file(path, dst));

  assert_int_equal(lsmi_pg_dataset_delete(f->b, "t2", "ds1", NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_pg_dataset_delete(f->b, "t1", "ds1", NULL), LSMI_OK);
  assert_int_equal(lsmi_pg_dataset_get(f->a, NULL, "ds1", &got),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_pg_blob_fetch(f->b, key, dst, NULL, NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM blobs"), 2);
}

/* ---- jobs ---- */

static int create(lsmi_pg_t *pg, const char *id, const char *tenant,
                  const char *ds, int members, const char *key,
                  const char *hash, char *existing, bool *replayed) {
  lsmi_job_new_t j = {id,
                      tenant,
                      ds,
                      "{\"epochs\":2,\"ensemble\":1}",
                      "{\"phase\":\"queued\",\"fraction\":0}",
                      1700000000.5,
                      key,
                      hash};
  char ex[64];
  bool rep;
  return lsmi_pg_job_create(pg, &j, members, existing ? existing : ex,
                            replayed ? replayed : &rep);
}

static void create_ok(lsmi_pg_t *pg, const char *id, const char *tenant,
                      const char *ds, int members) {
  assert_int_equal(create(pg, id, tenant, ds, members, NULL, NULL, NULL, NULL),
                   LSMI_OK);
}

static int job_state(lsmi_pg_t *pg, const char *id) {
  json_t *job = NULL;
  int st = -1;
  assert_int_equal(lsmi_pg_job_get(pg, NULL, id, &job, &st), LSMI_OK);
  json_decref(job);
  return st;
}

/* Idempotency keys, the dataset check, the API object, lists, counts and
 * cancelling a queued job. */
static void test_jobs(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  char existing[64] = "";
  bool replayed = true;
  assert_int_equal(
      create(f->a, "j1", "t1", "ds1", 1, "k1", "h1", existing, &replayed),
      LSMI_OK);
  assert_false(replayed);
  assert_int_equal(
      create(f->b, "j2", "t1", "ds1", 1, "k1", "h1", existing, &replayed),
      LSMI_OK);
  assert_true(replayed);
  assert_string_equal(existing, "j1");
  assert_int_equal(
      create(f->b, "j3", "t1", "ds1", 1, "k1", "h2", existing, &replayed),
      LSMI_ERR_CONFLICT);
  assert_int_equal(
      lsmi_pg_idem_check(f->a, "t1", "k1", "h1", existing, &replayed), LSMI_OK);
  assert_true(replayed);
  assert_int_equal(
      lsmi_pg_idem_check(f->a, "t2", "k1", "h1", existing, &replayed), LSMI_OK);
  assert_false(replayed);
  assert_int_equal(create(f->a, "j4", "t2", "ds1", 1, NULL, NULL, NULL, NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(create(f->a, "j4", "t1", "nope", 1, NULL, NULL, NULL, NULL),
                   LSMI_ERR_NOTFOUND);
  create_ok(f->b, "j5", "t1", "ds1", 3);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM members"), 2 + 4);

  json_t *job = NULL;
  int st = -1;
  assert_int_equal(lsmi_pg_job_get(f->a, "t1", "j1", &job, &st), LSMI_OK);
  assert_int_equal(st, LSMI_JOB_QUEUED);
  assert_string_equal(json_string_value(json_object_get(job, "state")),
                      "queued");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(job, "params"), "epochs")),
                   2);
  assert_string_equal(json_string_value(json_object_get(job, "created_at")),
                      "2023-11-14T22:13:20.500Z");
  assert_true(json_is_null(json_object_get(job, "started_at")));
  assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 0);
  json_decref(job);
  assert_int_equal(lsmi_pg_job_get(f->a, "t2", "j1", &job, &st),
                   LSMI_ERR_NOTFOUND);
  assert_null(job);

  json_t *page = NULL;
  int64_t total = 0;
  assert_int_equal(
      lsmi_pg_job_list(f->a, "t1", LSMI_JOB_QUEUED, 0, 1, &page, &total),
      LSMI_OK);
  assert_int_equal(total, 2);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(page, 0), "id")), "j5");
  json_decref(page);

  assert_int_equal(lsmi_pg_dataset_delete(f->a, "t1", "ds1", NULL),
                   LSMI_ERR_CONFLICT);
  bool was_running = true;
  assert_int_equal(lsmi_pg_job_cancel(f->b, "t2", "j1", 1.0, &was_running),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_pg_job_cancel(f->b, "t1", "j1", 1.0, &was_running),
                   LSMI_OK);
  assert_false(was_running);
  assert_int_equal(lsmi_pg_job_cancel(f->b, "t1", "j1", 1.0, NULL),
                   LSMI_ERR_CONFLICT);
  assert_int_equal(job_state(f->a, "j1"), LSMI_JOB_CANCELLED);
  assert_int_equal(lsmi_pg_job_cancel(f->b, NULL, "j5", 1.0, NULL), LSMI_OK);

  int64_t by[LSMI_JOB_STATES], datasets = 0;
  assert_int_equal(lsmi_pg_counts(f->a, by, &datasets), LSMI_OK);
  assert_int_equal(by[LSMI_JOB_CANCELLED], 2);
  assert_int_equal(by[LSMI_JOB_QUEUED], 0);
  assert_int_equal(datasets, 1);
  assert_int_equal(lsmi_pg_dataset_delete(f->a, "t1", "ds1", NULL), LSMI_OK);
}

/* ---- races between nodes ---- */

typedef struct racer {
  lsmi_pg_t *pg;
  const char *id, *path;
  int rc;
  bool lost;    /* existed / replayed */
  char got[64]; /* the winner's id */
  pthread_barrier_t *start;
} racer_t;

static void *upload_thread(void *arg) {
  racer_t *r = arg;
  lsmi_dataset_rec_t d = rec(r->id, "t1", "same-bytes"), existing;
  pthread_barrier_wait(r->start);
  r->rc = lsmi_pg_dataset_insert(r->pg, &d, r->path, &existing, &r->lost);
  snprintf(r->got, sizeof r->got, "%s", r->lost ? existing.id : r->id);
  return NULL;
}

static void *submit_thread(void *arg) {
  racer_t *r = arg;
  pthread_barrier_wait(r->start);
  r->rc =
      create(r->pg, r->id, "t1", "ds0", 1, r->path, "hash", r->got, &r->lost);
  if (r->rc == LSMI_OK && !r->lost)
    snprintf(r->got, sizeof r->got, "%s", r->id);
  return NULL;
}

/* Both nodes at the same instant, round after round: the same bytes
 * uploaded, or the same idempotency key used, give one dataset or job,
 * and the loser is told the winner's id. */
static void test_races(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds0", "t1", "aaa");
  char path[256];
  make_file(f, "upload", 2 * LSMI_PG_CHUNK_BYTES, 3, path);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, 2);
  for (int round = 0; round < 10; round++) {
    char ids[4][32], key[32];
    for (int i = 0; i < 4; i++)
      snprintf(ids[i], sizeof ids[i], "r%d-%d", round, i);
    snprintf(key, sizeof key, "key-%d", round);
    racer_t up[2] = {{f->a, ids[0], path, 1, false, "", &start},
                     {f->b, ids[1], path, 1, false, "", &start}};
    racer_t sub[2] = {{f->a, ids[2], key, 1, false, "", &start},
                      {f->b, ids[3], key, 1, false, "", &start}};
    for (int k = 0; k < 2; k++) {
      racer_t *r = k ? sub : up;
      pthread_t t[2];
      for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, k ? submit_thread : upload_thread, &r[i]);
      for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
      assert_int_equal(r[0].rc, LSMI_OK);
      assert_int_equal(r[1].rc, LSMI_OK);
      assert_int_equal(r[0].lost + r[1].lost, 1);
      assert_string_equal(r[0].got, r[1].got);
    }
    char q[160];
    snprintf(q, sizeof q, "DELETE FROM datasets WHERE sha256 = 'same-bytes'");
    sql_db(f, q);
  }
  pthread_barrier_destroy(&start);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM jobs"), 10);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM members"), 20);
}

/* ---- the queue ---- */

/* Claims per unit in a round: job (id % 100) * 8 + member; + 7 is the
 * combination. */
#define UNIT(job, member) ((job) % 100 * 8 + (member))
#define N_UNITS (100 * 8)

typedef struct worker {
  lsmi_pg_t *pg;
  atomic_int *seen; /* claims per unit, shared by both workers */
  bool cancels;     /* jobs are cancelled meanwhile: a CONFLICT is fine */
  int claims;
  char error[128]; /* what failed ("" when nothing): cmocka's assertions
                      belong to the main thread */
} worker_t;

/* Claims, completes and finishes until nothing is runnable. */
static void *work_thread(void *arg) {
  worker_t *w = arg;
  lsmi_pg_claim_t c = {0};
  const char *what = NULL;
  int rc = LSMI_OK;
  for (;;) {
    lsmi_pg_claim_clear(&c);
    rc = lsmi_pg_claim(w->pg, 30, &c);
    if (rc == LSMI_ERR_NOTFOUND) {
      rc = LSMI_OK;
      break;
    }
    if (rc) {
      what = "claim";
      break;
    }
    w->claims++;
    int job = atoi(c.job_id + 1);
    atomic_fetch_add(&w->seen[UNIT(job, c.member)], 1);
    bool combine = c.members == 1; /* its member ends the job, as csched.c */
    if (combine)
      atomic_fetch_add(&w->seen[UNIT(job, 7)], 1);
    lsmi_pg_finish_t fin = {
        LSMI_JOB_SUCCEEDED, 2.0, NULL, "{}", "{}", NULL, NULL, 0};
    rc = combine ? lsmi_pg_job_finish(w->pg, &c, &fin) : LSMI_OK;
    if (combine && rc == LSMI_ERR_CONFLICT && w->cancels)
      continue;
    if (rc) {
      what = "finish";
      break;
    }
    if (combine)
      continue;
    char bytes[16];
    snprintf(bytes, sizeof bytes, "m%d", c.member);
    rc = lsmi_pg_member_complete(w->pg, &c, bytes, strlen(bytes), 30, &combine);
    if (rc == LSMI_ERR_CONFLICT && w->cancels)
      continue;
    if (rc) {
      what = "complete";
      break;
    }
    if (!combine)
      continue;
    atomic_fetch_add(&w->seen[UNIT(job, 7)], 1);
    rc = lsmi_pg_job_finish(w->pg, &c, &fin);
    if (rc == LSMI_ERR_CONFLICT && w->cancels)
      continue;
    if (rc) {
      what = "finish";
      break;
    }
  }
  if (rc)
    snprintf(w->error, sizeof w->error, "%s of %s/%d: %s", what, c.job_id,
             c.member, lsmi_status_name(rc));
  lsmi_pg_claim_clear(&c);
  return NULL;
}

/* Two nodes drain the queue at once, round after round: every unit is
 * claimed exactly once, every job combined once and succeeded, and both
 * nodes took part. */
static void test_claims_concurrent(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  insert_ds(f, "ds2", "t2", "aaa");
  static atomic_int seen[N_UNITS];
  const int rounds = 5, jobs = 24;
  int total_a = 0, total_b = 0;
  for (int r = 0; r < rounds; r++) {
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++)
      atomic_store(&seen[i], 0);
    for (int j = 0; j < jobs; j++) {
      char id[16];
      snprintf(id, sizeof id, "j%d", r * 100 + j);
      bool t1 = j % 3 != 0;
      create_ok(j % 2 ? f->a : f->b, id, t1 ? "t1" : "t2", t1 ? "ds1" : "ds2",
                1 + j % 3);
    }
    worker_t w[2] = {{f->a, seen, false, 0, ""}, {f->b, seen, false, 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
      pthread_create(&t[i], NULL, work_thread, &w[i]);
    for (int i = 0; i < 2; i++)
      pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
      if (w[i].error[0])
        fail_msg("round %d, node %s: %s", r, i ? "b" : "a", w[i].error);
    for (int j = 0; j < jobs; j++) {
      int job = r * 100 + j, members = 1 + j % 3;
      for (int m = 0; m < members; m++)
        if (atomic_load(&seen[UNIT(job, m)]) != 1)
          fail_msg("round %d: unit %d of job %d claimed %d times", r, m, job,
                   atomic_load(&seen[UNIT(job, m)]));
      assert_int_equal(atomic_load(&seen[UNIT(job, 7)]), 1);
    }
    total_a += w[0].claims;
    total_b += w[1].claims;
  }
  assert_int_equal(
      sql_db(f, "SELECT count(*) FROM jobs WHERE state <> 'succeeded'"), 0);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM jobs WHERE attempts <> 1"),
                   0);
  assert_int_equal(
      sql_db(f, "SELECT count(*) FROM members WHERE data IS NOT NULL"), 0);
  assert_true(total_a > 0 && total_b > 0);
}

/* Jobs cancelled through one node while two others complete and combine
 * their members: every lock is taken in one order, so nothing deadlocks
 * (a deadlock would surface as LSMI_ERR_BUSY), and every job ends either
 * succeeded with all its units done, or cancelled with none left
 * runnable. */
static void test_cancel_while_running(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  lsmi_pg_t *canceller = node(f, "c", 1);
  static atomic_int seen[N_UNITS];
  const int rounds = 3, jobs = 30;
  for (int r = 0; r < rounds; r++) {
    for (int j = 0; j < jobs; j++) {
      char id[16];
      snprintf(id, sizeof id, "j%d", r * 100 + j);
      create_ok(f->a, id, "t1", "ds1", j % 3 ? 3 : 1);
    }
    worker_t w[2] = {{f->a, seen, true, 0, ""}, {f->b, seen, true, 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
      pthread_create(&t[i], NULL, work_thread, &w[i]);
    for (int j = 0; j < jobs; j += 2) {
      char id[16];
      snprintf(id, sizeof id, "j%d", r * 100 + j);
      int rc = lsmi_pg_job_cancel(canceller, NULL, id, 1.0, NULL);
      if (rc != LSMI_OK && rc != LSMI_ERR_CONFLICT)
        fail_msg("cancel %s: %s", id, lsmi_status_name(rc));
    }
    for (int i = 0; i < 2; i++)
      pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
      if (w[i].error[0])
        fail_msg("round %d, node %s: %s", r, i ? "b" : "a", w[i].error);
  }
  lsmi_pg_close(canceller);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM jobs WHERE state NOT IN "
                             "('succeeded', 'cancelled')"),
                   0);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM jobs j JOIN members m ON "
                             "m.job_id = j.id WHERE j.state = 'succeeded' AND "
                             "m.state <> 'done'"),
                   0);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM jobs j JOIN members m ON "
                             "m.job_id = j.id WHERE j.state = 'cancelled' AND "
                             "m.state IN ('waiting', 'queued', 'running')"),
                   0);
  assert_true(sql_db(f, "SELECT count(*) FROM jobs WHERE state = "
                        "'cancelled'") > 0);
}

static void claim_ok(lsmi_pg_t *pg, double lease, lsmi_pg_claim_t *c,
                     const char *job, int member, int attempt) {
  lsmi_pg_claim_clear(c);
  int rc = lsmi_pg_claim(pg, lease, c);
  if (rc)
    fail_msg("claim of %s/%d: %s", job, member, lsmi_status_name(rc));
  if (strcmp(c->job_id, job) || c->member != member || c->attempt != attempt)
    fail_msg("claimed %s/%d attempt %d, want %s/%d attempt %d", c->job_id,
             c->member, c->attempt, job, member, attempt);
}

static void claim_none(lsmi_pg_t *pg) {
  lsmi_pg_claim_t c = {0};
  assert_int_equal(lsmi_pg_claim(pg, 30, &c), LSMI_ERR_NOTFOUND);
  assert_null(c.params_json);
}

/* Round-robin across tenants, then the oldest job, then the lowest
 * member; the claim carries what a node needs to run the unit. */
static void test_fair_order(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "dA", "A", "aaa");
  insert_ds(f, "dB", "B", "bbb");
  create_ok(f->a, "a1", "A", "dA", 2);
  create_ok(f->a, "a2", "A", "dA", 1);
  create_ok(f->a, "a3", "A", "dA", 1);
  create_ok(f->a, "b1", "B", "dB", 1);
  lsmi_pg_claim_t c = {0};
  claim_ok(f->b, 30, &c, "a1", 0, 1);
  assert_string_equal(c.tenant, "A");
  assert_string_equal(c.dataset_id, "dA");
  assert_int_equal(c.members, 2);
  assert_non_null(strstr(c.params_json, "\"epochs\""));
  claim_ok(f->b, 30, &c, "b1", 0, 1);
  claim_ok(f->a, 30, &c, "a1", 1, 1);
  claim_ok(f->b, 30, &c, "a2", 0, 1);
  claim_ok(f->a, 30, &c, "a3", 0, 1);
  claim_none(f->a);
  lsmi_pg_claim_clear(&c);
  assert_int_equal(job_state(f->a, "a1"), LSMI_JOB_RUNNING);
}

/* A lease kept by renewals holds; one left to expire is claimed again by
 * the other node with attempts counting, and every call of the old claim
 * is refused. The combination's lease expires the same way. */
static void test_lease_expiry(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  create_ok(f->a, "j1", "t1", "ds1", 1);
  lsmi_pg_claim_t ca = {0}, cb = {0};
  claim_ok(f->a, 0.6, &ca, "j1", 0, 1);
  for (int i = 0; i < 4; i++) {
    usleep(300 * 1000);
    assert_int_equal(lsmi_pg_renew(f->a, &ca, 0.6,
                                   "{\"phase\":\"disc\",\"fraction\":0.5}",
                                   0.5),
                     LSMI_OK);
    claim_none(f->b);
  }
  json_t *job = NULL;
  assert_int_equal(lsmi_pg_job_get(f->b, NULL, "j1", &job, NULL), LSMI_OK);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(job, "progress"), "phase")),
                      "disc");
  json_decref(job);

  usleep(800 * 1000);
  claim_ok(f->b, 30, &cb, "j1", 0, 2);
  assert_int_equal(lsmi_pg_renew(f->a, &ca, 30, NULL, 0), LSMI_ERR_CONFLICT);
  bool combine = false;
  assert_int_equal(lsmi_pg_member_complete(f->a, &ca, "x", 1, 30, &combine),
                   LSMI_ERR_CONFLICT);
  assert_int_equal(lsmi_pg_member_fail(f->a, &ca, NULL, 1.0),
                   LSMI_ERR_CONFLICT);
  assert_int_equal(lsmi_pg_member_release(f->a, &ca), LSMI_ERR_CONFLICT);
  assert_int_equal(lsmi_pg_renew(f->b, &cb, 30, NULL, 0), LSMI_OK);
  assert_int_equal(lsmi_pg_job_get(f->a, NULL, "j1", &job, NULL), LSMI_OK);
  assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 2);
  json_decref(job);

  assert_int_equal(lsmi_pg_member_complete(f->b, &cb, "y", 1, 0.5, &combine),
                   LSMI_OK);
  assert_true(combine);
  assert_int_equal(cb.member, LSMI_PG_COMBINE);
  assert_int_equal(cb.attempt, 1);
  claim_none(f->a);
  usleep(700 * 1000);
  claim_ok(f->a, 30, &ca, "j1", LSMI_PG_COMBINE, 2);
  lsmi_pg_finish_t fin = {
      LSMI_JOB_SUCCEEDED, 2.0, NULL, "{}", "{}", NULL, NULL, 0};
  assert_int_equal(lsmi_pg_job_finish(f->b, &cb, &fin), LSMI_ERR_CONFLICT);
  void *buf = NULL;
  size_t len = 0;
  assert_int_equal(lsmi_pg_member_load(f->a, "j1", 0, &buf, &len), LSMI_OK);
  assert_int_equal(len, 1);
  assert_memory_equal(buf, "y", 1);
  free(buf);
  assert_int_equal(lsmi_pg_job_finish(f->a, &ca, &fin), LSMI_OK);
  assert_int_equal(job_state(f->b, "j1"), LSMI_JOB_SUCCEEDED);
  assert_int_equal(lsmi_pg_member_load(f->a, "j1", 0, &buf, &len),
                   LSMI_ERR_NOTFOUND);
  lsmi_pg_claim_clear(&ca);
  lsmi_pg_claim_clear(&cb);
}

/* A job of one member ended by its member's claim: the result file
 * published and both units done in the one transaction, the member's bytes
 * never stored; refused once the claim is over (a lease taken over, a
 * cancel), and for a member of a larger job. */
static void test_finish_whole(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  create_ok(f->a, "j1", "t1", "ds1", 1);
  create_ok(f->a, "j2", "t1", "ds1", 1);
  create_ok(f->a, "j3", "t1", "ds1", 1);
  create_ok(f->a, "e1", "t1", "ds1", 2);
  char src[256], dst[256], key[LSMI_PG_KEY_MAX];
  make_file(f, "train", 5000, 3, src);
  snprintf(dst, sizeof dst, "%s/dst", f->dir);
  lsmi_pg_file_t files[1] = {{"train", src}};
  lsmi_pg_finish_t fin = {
      LSMI_JOB_SUCCEEDED, 2.0, NULL, "{}", "{}", NULL, files, 1};
  lsmi_pg_claim_t ca = {0}, cb = {0};

  claim_ok(f->a, 30, &ca, "j1", 0, 1);
  assert_int_equal(lsmi_pg_job_finish(f->a, &ca, &fin), LSMI_OK);
  assert_int_equal(job_state(f->b, "j1"), LSMI_JOB_SUCCEEDED);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM members WHERE job_id = "
                             "'j1' AND state = 'done' AND data IS NULL"),
                   2);
  lsmi_pg_result_key("j1", "train", key);
  assert_int_equal(lsmi_pg_blob_fetch(f->b, key, dst, f->dir, NULL), LSMI_OK);
  assert_true(same_file(src, dst));
  assert_int_equal(lsmi_pg_job_finish(f->a, &ca, &fin), LSMI_ERR_CONFLICT);

  claim_ok(f->a, 0.3, &ca, "j2", 0, 1);
  usleep(500 * 1000);
  claim_ok(f->b, 30, &cb, "j2", 0, 2);
  assert_int_equal(lsmi_pg_job_finish(f->a, &ca, &fin), LSMI_ERR_CONFLICT);
  assert_int_equal(lsmi_pg_job_finish(f->b, &cb, &fin), LSMI_OK);
  assert_int_equal(job_state(f->a, "j2"), LSMI_JOB_SUCCEEDED);

  claim_ok(f->a, 30, &ca, "j3", 0, 1);
  assert_int_equal(lsmi_pg_job_cancel(f->b, NULL, "j3", 1.0, NULL), LSMI_OK);
  assert_int_equal(lsmi_pg_job_finish(f->a, &ca, &fin), LSMI_ERR_CONFLICT);
  assert_int_equal(job_state(f->a, "j3"), LSMI_JOB_CANCELLED);
  lsmi_pg_result_key("j3", "train", key);
  assert_int_equal(lsmi_pg_blob_fetch(f->b, key, dst, f->dir, NULL),
                   LSMI_ERR_NOTFOUND);

  claim_ok(f->a, 30, &ca, "e1", 0, 1);
  assert_int_equal(lsmi_pg_job_finish(f->a, &ca, &fin), LSMI_ERR_INVALID);
  lsmi_pg_claim_clear(&ca);
  lsmi_pg_claim_clear(&cb);
}

/* A job of one member of tenant t1 on ds1, claimed and ended succeeded
 * at finished_at with a train result file of `bytes` bytes. */
static void run_whole(fx_t *f, const char *id, double finished_at,
                      size_t bytes) {
  create_ok(f->a, id, "t1", "ds1", 1);
  char src[256];
  make_file(f, id, bytes, 4, src);
  lsmi_pg_file_t files[1] = {{"train", src}};
  lsmi_pg_finish_t fin = {
      LSMI_JOB_SUCCEEDED, finished_at, NULL, "{}", "{}", NULL, files, 1};
  lsmi_pg_claim_t c = {0};
  claim_ok(f->a, 30, &c, id, 0, 1);
  assert_int_equal(lsmi_pg_job_finish(f->a, &c, &fin), LSMI_OK);
  lsmi_pg_claim_clear(&c);
}

/* A finished job deleted with its blobs, units and keys (a queued one
 * refused); a dataset with its finished jobs; retention by one node at a
 * time; a tenant's bytes; what a node's cache sweep asks. */
static void test_delete_expire(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa"); /* 3000 bytes, rec() says 1000 */
  run_whole(f, "j1", 100.0, 5000);
  run_whole(f, "j2", 200.0, 7000);
  assert_int_equal(create(f->a, "q1", "t1", "ds1", 1, "k1", "h1", NULL, NULL),
                   LSMI_OK);
  uint64_t bytes = 0;
  assert_int_equal(lsmi_pg_tenant_bytes(f->b, "t1", &bytes), LSMI_OK);
  assert_int_equal(bytes, 1000 + 5000 + 7000);
  assert_int_equal(lsmi_pg_tenant_bytes(f->b, "t2", &bytes), LSMI_OK);
  assert_int_equal(bytes, 0);

  int state_ = -1;
  assert_int_equal(lsmi_pg_job_delete(f->b, "t1", "q1", &state_),
                   LSMI_ERR_CONFLICT);
  assert_int_equal(state_, LSMI_JOB_QUEUED);
  assert_int_equal(lsmi_pg_job_delete(f->b, "t2", "j1", NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(lsmi_pg_job_delete(f->b, "t1", "j1", &state_), LSMI_OK);
  assert_int_equal(state_, LSMI_JOB_SUCCEEDED);
  assert_int_equal(lsmi_pg_job_delete(f->b, NULL, "j1", NULL),
                   LSMI_ERR_NOTFOUND);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM blobs WHERE key LIKE "
                             "'result/j1/%'"),
                   0);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM members WHERE job_id = "
                             "'j1'"),
                   0);

  /* What a cache sweep asks: which ids are gone, which blobs exist. */
  lsmi_idlist_t ask = LSMI_IDLIST_INIT, out = LSMI_IDLIST_INIT;
  assert_int_equal(lsmi_idlist_push(&ask, "j1"), LSMI_OK);
  assert_int_equal(lsmi_idlist_push(&ask, "j2"), LSMI_OK);
  assert_int_equal(lsmi_pg_gone(f->a, true, &ask, &out), LSMI_OK);
  assert_int_equal(out.n, 1);
  assert_string_equal(out.ids[0], "j1");
  lsmi_idlist_free(&ask);
  lsmi_idlist_free(&out);
  assert_int_equal(lsmi_idlist_push(&ask, "result/j1/train"), LSMI_OK);
  assert_int_equal(lsmi_idlist_push(&ask, "result/j2/train"), LSMI_OK);
  assert_int_equal(lsmi_idlist_push(&ask, "dataset/ds1"), LSMI_OK);
  assert_int_equal(lsmi_pg_blobs_exist(f->a, &ask, &out), LSMI_OK);
  assert_int_equal(out.n, 2);
  lsmi_idlist_free(&ask);
  lsmi_idlist_free(&out);

  /* Retention: one node at a time; the other finds it busy. */
  lsmi_pq_conn_t *holder = admin(f->dsn);
  sql(holder, "BEGIN");
  sql(holder, "SELECT pg_advisory_xact_lock(1819503978)");
  lsmi_idlist_t jobs = LSMI_IDLIST_INIT;
  int keys = -1;
  bool busy = false;
  assert_int_equal(lsmi_pg_expire(f->a, 1e12, 10, &jobs, &keys, &busy),
                   LSMI_OK);
  assert_true(busy);
  assert_int_equal(jobs.n, 0);
  assert_int_equal(keys, 0);
  sql(holder, "COMMIT");
  lsmi_pq_conn_close(holder);
  assert_int_equal(lsmi_pg_expire(f->a, 150.0, 10, &jobs, &keys, &busy),
                   LSMI_OK);
  assert_false(busy);
  assert_int_equal(jobs.n, 0); /* j2 finished at 200, q1 is queued */
  assert_int_equal(lsmi_pg_job_cancel(f->a, NULL, "q1", 300.0, NULL), LSMI_OK);
  assert_int_equal(lsmi_pg_expire(f->b, 250.0, 10, &jobs, &keys, &busy),
                   LSMI_OK);
  assert_int_equal(jobs.n, 1);
  assert_string_equal(jobs.ids[0], "j2");
  assert_int_equal(keys, 0); /* k1 was made in 2023, after 250 */
  lsmi_idlist_free(&jobs);
  assert_int_equal(lsmi_pg_expire(f->b, 1e12, 10, &jobs, &keys, &busy),
                   LSMI_OK);
  assert_int_equal(jobs.n, 1); /* q1, with its key (not counted) */
  assert_int_equal(keys, 0);
  lsmi_idlist_free(&jobs);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM idempotency"), 0);

  /* A dataset with its finished jobs (and only its tenant's). */
  run_whole(f, "j3", 400.0, 1000);
  assert_int_equal(lsmi_pg_dataset_delete(f->b, "t1", "ds1", &jobs), LSMI_OK);
  assert_int_equal(jobs.n, 1);
  assert_string_equal(jobs.ids[0], "j3");
  lsmi_idlist_free(&jobs);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM blobs"), 0);
  assert_int_equal(sql_db(f, "SELECT count(*) FROM jobs"), 0);
}

/* Fits member m of the claim and completes it with its bytes. */
static bool fit_complete(lsmi_pg_t *pg, lsmi_pg_claim_t *c,
                         const lsmi_dataset_t *ds, const lsmi_params_t *p) {
  lsmi_member_t *m = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_fit_member(ds, p, c->member, NULL, &m, &err), LSMI_OK);
  void *buf = NULL;
  size_t len = 0;
  assert_int_equal(lsmi_member_save(m, &buf, &len, &err), LSMI_OK);
  lsmi_member_destroy(m);
  bool combine = false;
  assert_int_equal(lsmi_pg_member_complete(pg, c, buf, len, 30, &combine),
                   LSMI_OK);
  free(buf);
  return combine;
}

static void assert_rows_equal(const lsmi_rows_t *a, const lsmi_rows_t *b) {
  assert_int_equal(a->n, b->n);
  assert_memory_equal(a->y, b->y, a->n * sizeof *a->y);
  const double *ca[] = {a->r,  a->u1,  a->u2, a->s, a->i1,
                        a->i2, a->i12, a->h1, a->h2};
  const double *cb[] = {b->r,  b->u1,  b->u2, b->s, b->i1,
                        b->i2, b->i12, b->h1, b->h2};
  for (int k = 0; k < 9; k++)
    assert_memory_equal(ca[k], cb[k], a->n * sizeof(double));
}

/* A real ensemble of three spread over both nodes and completed out of
 * order: the node that completes the last member is handed the
 * combination, and what it combines from the members' bytes in the
 * database is lsmi_fit's result, bit for bit; the result files it
 * publishes come back whole on the other node. */
static void test_ensemble_combined(void **state) {
  fx_t *f = nodes(state);
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_synth(LSMI_SYNTH_SYNERGY, 300, 1, &ds, &err), LSMI_OK);
  lsmi_params_t p;
  lsmi_params_default(&p);
  p.epochs_discriminator = 2;
  p.epochs_entropy = 2;
  p.ensemble = 3;
  p.threads = 1;
  lsmi_result_t *want = NULL;
  assert_int_equal(lsmi_fit(ds, &p, NULL, &want, &err), LSMI_OK);

  insert_ds(f, "ds1", "t1", "aaa");
  create_ok(f->a, "j1", "t1", "ds1", 3);
  lsmi_pg_claim_t c0 = {0}, c1 = {0}, c2 = {0};
  claim_ok(f->a, 30, &c0, "j1", 0, 1);
  claim_ok(f->b, 30, &c1, "j1", 1, 1);
  claim_ok(f->a, 30, &c2, "j1", 2, 1);
  assert_false(fit_complete(f->a, &c2, ds, &p));
  assert_false(fit_complete(f->a, &c0, ds, &p));
  json_t *job = NULL;
  assert_int_equal(lsmi_pg_renew(f->b, &c1, 30, "{\"fraction\":0.5}", 0.5),
                   LSMI_OK);
  assert_int_equal(lsmi_pg_job_get(f->a, NULL, "j1", &job, NULL), LSMI_OK);
  assert_close(json_real_value(json_object_get(json_object_get(job, "progress"),
                                               "fraction")),
               2.5 / 3, 1e-12);
  json_decref(job);
  assert_true(fit_complete(f->b, &c1, ds, &p));
  assert_int_equal(c1.member, LSMI_PG_COMBINE);

  lsmi_member_t *members[3];
  for (int m = 0; m < 3; m++) {
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(lsmi_pg_member_load(f->b, "j1", (m + 1) % 3, &buf, &len),
                     LSMI_OK);
    assert_int_equal(lsmi_member_load(buf, len, &members[m], &err), LSMI_OK);
    free(buf);
  }
  lsmi_result_t *got = NULL;
  assert_int_equal(lsmi_combine(ds, &p, members, 3, &got, &err), LSMI_OK);
  assert_rows_equal(&got->train, &want->train);
  assert_rows_equal(&got->val, &want->val);
  assert_memory_equal(&got->val_summary, &want->val_summary,
                      sizeof got->val_summary);

  char dir[256], files[2][256];
  const char *splits[2] = {"train", "val"};
  const lsmi_rows_t *rows[2] = {&got->train, &got->val};
  lsmi_pg_file_t results[2];
  for (int i = 0; i < 2; i++) {
    snprintf(dir, sizeof dir, "%s/%s", f->dir, i ? "tmp" : "results");
    assert_int_equal(mkdir(dir, 0700), 0);
  }
  for (int i = 0; i < 2; i++) {
    assert_int_equal(lsmi_resfile_write(f->dir, "j1", splits[i], rows[i], &err),
                     LSMI_OK);
    snprintf(files[i], sizeof files[i], "%s/results/j1.%s", f->dir, splits[i]);
    results[i] = (lsmi_pg_file_t){splits[i], files[i]};
  }
  lsmi_pg_finish_t fin = {
      LSMI_JOB_SUCCEEDED, 2.0, NULL, "{\"val\":{}}", "{}", NULL, results, 2};
  assert_int_equal(lsmi_pg_job_finish(f->b, &c1, &fin), LSMI_OK);
  assert_int_equal(job_state(f->a, "j1"), LSMI_JOB_SUCCEEDED);
  for (int i = 0; i < 2; i++) {
    char key[LSMI_PG_KEY_MAX], cached[256];
    lsmi_pg_result_key("j1", splits[i], key);
    snprintf(cached, sizeof cached, "%s/cached.%s", f->dir, splits[i]);
    assert_int_equal(lsmi_pg_blob_fetch(f->a, key, cached, NULL, NULL),
                     LSMI_OK);
    assert_true(same_file(files[i], cached));
  }
  lsmi_result_destroy(got);
  lsmi_result_destroy(want);
  lsmi_dataset_destroy(ds);
  lsmi_pg_claim_clear(&c0);
  lsmi_pg_claim_clear(&c1);
  lsmi_pg_claim_clear(&c2);
}

/* ---- wake-ups ---- */

/* Seconds until l hears `kind` for job (-1 after timeout seconds). */
static double wait_event(lsmi_pg_listener_t *l, int kind, const char *job,
                         double timeout) {
  double t0 = lsmi_util_mono();
  while (lsmi_util_mono() - t0 < timeout) {
    lsmi_pg_event_t ev[8];
    int n = 0;
    assert_int_equal(lsmi_pg_listen_wait(l, 50, ev, 8, &n), LSMI_OK);
    for (int i = 0; i < n; i++)
      if (ev[i].kind == kind && !strcmp(ev[i].job_id, job))
        return lsmi_util_mono() - t0;
  }
  return -1;
}

/* A job created on one node wakes the other's listener; a cancel through
 * one node reaches the node running the job within a second, and its
 * claim is over; a failed member cancels its siblings the same way; a
 * released unit is queued again for anyone. */
static void test_notify(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  lsmi_pg_listener_t *l = NULL;
  assert_int_equal(lsmi_pg_listen_open(f->b, &l, NULL), LSMI_OK);
  assert_true(lsmi_pg_listen_fd(l) >= 0);

  create_ok(f->a, "j1", "t1", "ds1", 1);
  assert_true(wait_event(l, LSMI_PG_WORK, "j1", 1.0) >= 0);
  lsmi_pg_claim_t c = {0}, d = {0};
  claim_ok(f->b, 30, &c, "j1", 0, 1);
  double t0 = lsmi_util_mono();
  bool was_running = false;
  assert_int_equal(
      lsmi_pg_job_cancel(f->a, "t1", "j1", lsmi_util_now(), &was_running),
      LSMI_OK);
  assert_true(was_running);
  assert_true(wait_event(l, LSMI_PG_CANCEL, "j1", 1.0) >= 0);
  assert_true(lsmi_util_mono() - t0 < 1.0);
  assert_int_equal(lsmi_pg_renew(f->b, &c, 30, NULL, 0), LSMI_ERR_CONFLICT);
  bool combine = false;
  assert_int_equal(lsmi_pg_member_complete(f->b, &c, "x", 1, 30, &combine),
                   LSMI_ERR_CONFLICT);
  assert_int_equal(job_state(f->b, "j1"), LSMI_JOB_CANCELLED);

  create_ok(f->a, "j2", "t1", "ds1", 2);
  claim_ok(f->a, 30, &c, "j2", 0, 1);
  claim_ok(f->b, 30, &d, "j2", 1, 1);
  assert_int_equal(lsmi_pg_member_fail(f->b, &d,
                                       "{\"status\":422,\"detail\":\"no\"}",
                                       lsmi_util_now()),
                   LSMI_OK);
  assert_true(wait_event(l, LSMI_PG_CANCEL, "j2", 1.0) >= 0);
  assert_int_equal(lsmi_pg_renew(f->a, &c, 30, NULL, 0), LSMI_ERR_CONFLICT);
  json_t *job = NULL;
  assert_int_equal(lsmi_pg_job_get(f->a, NULL, "j2", &job, NULL), LSMI_OK);
  assert_string_equal(json_string_value(json_object_get(job, "state")),
                      "failed");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(job, "error"), "detail")),
                      "no");
  json_decref(job);

  create_ok(f->a, "j3", "t1", "ds1", 1);
  claim_ok(f->a, 30, &c, "j3", 0, 1);
  assert_true(wait_event(l, LSMI_PG_WORK, "j3", 1.0) >= 0);
  assert_int_equal(lsmi_pg_member_release(f->a, &c), LSMI_OK);
  assert_true(wait_event(l, LSMI_PG_WORK, "j3", 1.0) >= 0);
  claim_ok(f->b, 30, &d, "j3", 0, 2);
  lsmi_pg_claim_clear(&c);
  lsmi_pg_claim_clear(&d);
  lsmi_pg_listen_close(l);
}

/* ---- losing the database ---- */

/* Ends the sessions of a node (pg_terminate_backend); how many. */
static int64_t terminate(const fx_t *f, const char *app) {
  char q[256];
  snprintf(q, sizeof q,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
           "WHERE application_name = '%s'",
           app);
  int64_t n = sql_db(f, q);
  usleep(100 * 1000); /* the backends exit asynchronously */
  return n;
}

typedef struct deleter {
  lsmi_pg_t *pg;
  int rc;
} deleter_t;

static void *delete_thread(void *arg) {
  deleter_t *d = arg;
  d->rc = lsmi_pg_dataset_delete(d->pg, "t1", "ds1", NULL);
  return NULL;
}

/* Sessions ended between calls are reconnected unnoticed; one ended in
 * the middle of a transaction answers LSMI_ERR_UNAVAILABLE, wrote
 * nothing, and the next call works. */
static void test_connection_lost(void **state) {
  fx_t *f = nodes(state);
  insert_ds(f, "ds1", "t1", "aaa");
  create_ok(f->a, "j1", "t1", "ds1", 1);
  create_ok(f->a, "j2", "t1", "ds1", 1); /* both connections of a opened */
  assert_true(terminate(f, "lsmi a") >= 1);
  for (int i = 0; i < 4; i++)
    assert_int_equal(job_state(f->a, "j1"), LSMI_JOB_QUEUED);

  lsmi_pq_conn_t *holder = admin(f->dsn);
  sql(holder, "BEGIN");
  sql(holder, "SELECT 1 FROM datasets WHERE id = 'ds1' FOR SHARE");
  deleter_t d = {f->a, 1};
  pthread_t t;
  pthread_create(&t, NULL, delete_thread, &d);
  double until = lsmi_util_mono() + 10;
  while (sql_db(f, "SELECT count(*) FROM pg_stat_activity WHERE "
                   "application_name = 'lsmi a' AND wait_event_type = "
                   "'Lock'") == 0) {
    if (lsmi_util_mono() > until)
      fail_msg("the delete never waited for the lock");
    usleep(20 * 1000);
  }
  assert_true(terminate(f, "lsmi a") >= 1);
  pthread_join(t, NULL);
  assert_int_equal(d.rc, LSMI_ERR_UNAVAILABLE);
  sql(holder, "ROLLBACK");
  lsmi_pq_conn_close(holder);
  assert_int_equal(lsmi_pg_dataset_delete(f->a, "t1", "ds1", NULL),
                   LSMI_ERR_CONFLICT);
  lsmi_dataset_rec_t got;
  assert_int_equal(lsmi_pg_dataset_get(f->a, "t1", "ds1", &got), LSMI_OK);
}

static bool server_stopped;

static int pg_ctl(const char *var) {
  const char *cmd = getenv(var);
  return cmd ? system(cmd) : -1;
}

/* Retries call until it answers 0, for up to `seconds`. */
#define EVENTUALLY(seconds, call)                                              \
  do {                                                                         \
    double until_ = lsmi_util_mono() + (seconds);                              \
    int rc_;                                                                   \
    while ((rc_ = (call)) != LSMI_OK) {                                        \
      if (lsmi_util_mono() > until_)                                           \
        fail_msg("%s: %s after %g s", #call, lsmi_status_name(rc_),            \
                 (double)(seconds));                                           \
      usleep(100 * 1000);                                                      \
    }                                                                          \
  } while (0)

/* The server stopped: every call answers LSMI_ERR_UNAVAILABLE, at once,
 * and so does a node starting; started again: the pools and the listener
 * come back, and wake-ups flow again. */
static void test_server_down(void **state) {
  fx_t *f = nodes(state);
  if (getenv("LSMI_TEST_PG_STOP") == NULL)
    skip();
  insert_ds(f, "ds1", "t1", "aaa");
  create_ok(f->a, "j1", "t1", "ds1", 1);
  lsmi_pg_listener_t *l = NULL;
  assert_int_equal(lsmi_pg_listen_open(f->b, &l, NULL), LSMI_OK);

  assert_int_equal(pg_ctl("LSMI_TEST_PG_STOP"), 0);
  server_stopped = true;
  double t0 = lsmi_util_mono();
  assert_int_equal(lsmi_pg_ping(f->a), LSMI_ERR_UNAVAILABLE);
  json_t *job = NULL;
  assert_int_equal(lsmi_pg_job_get(f->b, NULL, "j1", &job, NULL),
                   LSMI_ERR_UNAVAILABLE);
  lsmi_pg_claim_t c = {0};
  assert_int_equal(lsmi_pg_claim(f->a, 30, &c), LSMI_ERR_UNAVAILABLE);
  assert_true(lsmi_util_mono() - t0 < 2.0);
  lsmi_pg_event_t ev[4];
  int n = 0;
  assert_int_equal(lsmi_pg_listen_wait(l, 2000, ev, 4, &n),
                   LSMI_ERR_UNAVAILABLE);
  assert_int_equal(lsmi_pg_listen_fd(l), -1);
  lsmi_pg_t *late = NULL;
  lsmi_pg_options_t o = {f->dsn, "c", 1, 0, NULL};
  assert_int_equal(lsmi_pg_open(&o, &late, NULL), LSMI_ERR_UNAVAILABLE);
  assert_null(late);

  assert_int_equal(pg_ctl("LSMI_TEST_PG_START"), 0);
  server_stopped = false;
  EVENTUALLY(10, lsmi_pg_ping(f->a));
  EVENTUALLY(3, lsmi_pg_ping(f->b));
  assert_int_equal(job_state(f->b, "j1"), LSMI_JOB_QUEUED);
  EVENTUALLY(3, lsmi_pg_listen_reconnect(l));
  create_ok(f->a, "j2", "t1", "ds1", 1);
  assert_true(wait_event(l, LSMI_PG_WORK, "j2", 1.0) >= 0);
  claim_ok(f->a, 30, &c, "j1", 0, 1);
  lsmi_pg_claim_clear(&c);
  lsmi_pg_listen_close(l);
}

/* A failed assertion in test_server_down may leave the server stopped:
 * start it again before the fixture drops its database. */
static int teardown_restart(void **state) {
  if (server_stopped && pg_ctl("LSMI_TEST_PG_START") == 0)
    server_stopped = false;
  return teardown(state);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  if (base_dsn() == NULL)
    fprintf(stderr, "LSMI_TEST_PG_DSN is not set: run me through "
                    "tests/cluster/pg.sh (tests/cluster/run.sh)\n");
  lsmi_util_log_quiet_requests(1);
  const struct CMUnitTest tests[] = {
      T(test_migrate_serialised),
      T(test_open_invalid),
      T(test_blob_round_trip),
      T(test_blob_errors),
      T(test_datasets),
      T(test_jobs),
      T(test_races),
      T(test_claims_concurrent),
      T(test_cancel_while_running),
      T(test_fair_order),
      T(test_lease_expiry),
      T(test_finish_whole),
      T(test_delete_expire),
      T(test_ensemble_combined),
      T(test_notify),
      T(test_connection_lost),
      cmocka_unit_test_setup_teardown(test_server_down, setup,
                                      teardown_restart),
  };
  return cmocka_run_group_tests_name("pgstore", tests, NULL, NULL);
}
