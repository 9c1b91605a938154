/*
 * pg_cluster.c — what the cluster mode's PostgreSQL layer costs, measured
 * on a real server (the one tests/cluster/pg.sh starts; `make bench-cluster`
 * runs it on TCP with fsync on, as a deployment would be):
 *
 *   blobs    MB/s of a file (default 100 MB) published and materialised
 *            through server/pgblob.c (chunked bytea, at several chunk
 *            sizes), against large objects (libpq's lo_write / lo_read in
 *            pieces of the same size, in one transaction), both ways;
 *   claims   units claimed per second by one node on one connection, from
 *            a backlog of N queued jobs, and whole units per second
 *            (claim, complete with a 1 KB member, finish);
 *   wake-up  the latency of LISTEN/NOTIFY (a NOTIFY committed to the
 *            listener's poll returning), and of a job queued on one node
 *            to its claim by another, idle one woken by the NOTIFY
 *            (p50, p99 of --samples).
 *
 *   pg_cluster [--blob-mb N] [--backlog N] [--samples N] [--skip-blobs]
 *
 * Needs LSMI_TEST_PG_DSN. Prints a markdown table per part.
 */
#include <libpq-fe.h>
#include <libpq/libpq-fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgstore.h"
#include "pq.h"
#include "util.h"

static const char *base_dsn;
/* Files of the run, in pg.sh's directory (removed with it whatever
 * happens), or in /tmp. */
static char dir[200];

static void die(const char *what, int rc) {
  fprintf(stderr, "pg_cluster: %s: %s\n", what, lsmi_status_name(rc));
  exit(1);
}

/* A fresh database and its DSN. */
static void fresh_db(const char *name, char *dsn, size_t size) {
  PGconn *c = PQconnectdb(base_dsn);
  char q[160];
  snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
  PQclear(PQexec(c, q));
  snprintf(q, sizeof q, "CREATE DATABASE %s", name);
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "pg_cluster: %s", PQerrorMessage(c));
    exit(1);
  }
  PQclear(r);
  PQfinish(c);
  snprintf(dsn, size, "%s dbname=%s", base_dsn, name);
}

static lsmi_pg_t *node(const char *dsn, const char *name, size_t chunk) {
  lsmi_pg_options_t o = {dsn, name, 2, chunk, NULL};
  lsmi_pg_t *pg = NULL;
  lsmi_error_t err = {0};
  if (lsmi_pg_open(&o, &pg, &err)) {
    fprintf(stderr, "pg_cluster: %s\n", err.message);
    exit(1);
  }
  return pg;
}

/* ---- blobs ---- */

static void make_file(const char *path, size_t bytes) {
  FILE *f = fopen(path, "wb");
  uint64_t x = 88172645463325252ull;
  static uint64_t buf[1 << 14];
  for (size_t done = 0; done < bytes;) {
    for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      buf[i] = x;
    }
    size_t n = bytes - done < sizeof buf ? bytes - done : sizeof buf;
    fwrite(buf, 1, n, f);
    done += n;
  }
  fclose(f);
}

static void bench_bytea(const char *dsn, const char *src, size_t bytes,
                        size_t chunk) {
  lsmi_pg_t *pg = node(dsn, "bench", chunk);
  char dst[256];
  snprintf(dst, sizeof dst, "%s/bytea.out", dir);
  double t0 = lsmi_util_mono();
  int rc = lsmi_pg_blob_put(pg, "bench", src);
  double t1 = lsmi_util_mono();
  if (rc == LSMI_OK)
    rc = lsmi_pg_blob_fetch(pg, "bench", dst, dir, NULL);
  double t2 = lsmi_util_mono();
  if (rc)
    die("bytea blob", rc);
  lsmi_pg_blob_delete(pg, "bench");
  unlink(dst);
  double mb = (double)bytes / 1e6;
  printf("| bytea, %4zu KiB chunks | %7.0f | %7.0f |\n", chunk >> 10,
         mb / (t1 - t0), mb / (t2 - t1));
  lsmi_pg_close(pg);
}

static void lo_check(PGconn *c, int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "pg_cluster: %s: %s", what, PQerrorMessage(c));
    exit(1);
  }
}

static void bench_lo(const char *dsn, const char *src, size_t bytes,
                     size_t piece) {
  PGconn *c = PQconnectdb(dsn);
  char *buf = malloc(piece);
  FILE *f = fopen(src, "rb");
  double t0 = lsmi_util_mono();
  PQclear(PQexec(c, "BEGIN"));
  Oid oid = lo_creat(c, INV_READ | INV_WRITE);
  int fd = lo_open(c, oid, INV_WRITE);
  lo_check(c, oid != 0 && fd >= 0, "lo_creat");
  for (size_t got; (got = fread(buf, 1, piece, f)) > 0;)
    lo_check(c, lo_write(c, fd, buf, got) == (int)got, "lo_write");
  lo_close(c, fd);
  PQclear(PQexec(c, "COMMIT"));
  double t1 = lsmi_util_mono();
  char dst[256];
  snprintf(dst, sizeof dst, "%s/lo.out", dir);
  FILE *out = fopen(dst, "wb");
  PQclear(PQexec(c, "BEGIN"));
  fd = lo_open(c, oid, INV_READ);
  lo_check(c, fd >= 0, "lo_open");
  for (int got; (got = lo_read(c, fd, buf, piece)) > 0;)
    fwrite(buf, 1, (size_t)got, out);
  lo_close(c, fd);
  PQclear(PQexec(c, "COMMIT"));
  fflush(out);
  fsync(fileno(out));
  double t2 = lsmi_util_mono();
  fclose(out);
  fclose(f);
  unlink(dst);
  lo_unlink(c, oid);
  PQfinish(c);
  free(buf);
  double mb = (double)bytes / 1e6;
  printf("| large object, %4zu KiB pieces | %7.0f | %7.0f |\n", piece >> 10,
         mb / (t1 - t0), mb / (t2 - t1));
}

static void bench_blobs(size_t mb) {
  char dsn[512], src[256];
  fresh_db("bench_blobs", dsn, sizeof dsn);
  node(dsn, "migrate", 0); /* leaked on purpose: a short-lived program */
  snprintf(src, sizeof src, "%s/blob.in", dir);
  size_t bytes = mb * 1000000;
  make_file(src, bytes);
  printf("\n%zu MB blob | publish MB/s | materialise MB/s |\n|---|---|---|\n",
         mb);
  const size_t chunks[] = {256u << 10, 1u << 20, 4u << 20};
  for (int i = 0; i < 3; i++)
    bench_bytea(dsn, src, bytes, chunks[i]);
  for (int i = 0; i < 3; i++)
    bench_lo(dsn, src, bytes, chunks[i]);
  unlink(src);
}

/* ---- claims ---- */

static void create_jobs(lsmi_pg_t *pg, int n, int from) {
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "job%07d", from + i);
    lsmi_job_new_t j = {id,
                        i % 4 ? "t1" : "t2",
                        i % 4 ? "d1" : "d2",
                        "{}",
                        "{}",
                        lsmi_util_now(),
                        NULL,
                        NULL};
    char ex[64];
    bool rep;
    int rc = lsmi_pg_job_create(pg, &j, 1, ex, &rep);
    if (rc)
      die("job_create", rc);
  }
}

static void add_datasets(lsmi_pg_t *pg) {
  char path[256];
  snprintf(path, sizeof path, "%s/ds", dir);
  make_file(path, 1000);
  for (int t = 1; t <= 2; t++) {
    lsmi_dataset_rec_t r = {0}, ex;
    snprintf(r.id, sizeof r.id, "d%d", t);
    snprintf(r.tenant, sizeof r.tenant, "t%d", t);
    snprintf(r.sha256, sizeof r.sha256, "%d", t);
    bool existed;
    int rc = lsmi_pg_dataset_insert(pg, &r, path, &ex, &existed);
    if (rc)
      die("dataset_insert", rc);
  }
  unlink(path);
}

typedef struct claimer {
  lsmi_pg_t *pg;
  int claims;
} claimer_t;

static void *claim_all(void *arg) {
  claimer_t *w = arg;
  lsmi_pg_claim_t c = {0};
  int rc;
  while ((rc = lsmi_pg_claim(w->pg, 60, &c)) == LSMI_OK) {
    w->claims++;
    lsmi_pg_claim_clear(&c);
  }
  if (rc != LSMI_ERR_NOTFOUND)
    die("claim", rc);
  return NULL;
}

/* n nodes of one connection each drain the queue at once: the claims
 * made, between *t0 and *t1. */
static int claim_together(const char *dsn, int n, double *t0, double *t1) {
  claimer_t w[16];
  pthread_t t[16];
  for (int i = 0; i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "c%d", i);
    lsmi_pg_options_t o = {dsn, name, 1, 0, NULL};
    w[i].claims = 0;
    if (lsmi_pg_open(&o, &w[i].pg, NULL) || lsmi_pg_ping(w[i].pg))
      die("open", LSMI_ERR_UNAVAILABLE);
  }
  *t0 = lsmi_util_mono();
  for (int i = 0; i < n; i++)
    pthread_create(&t[i], NULL, claim_all, &w[i]);
  int total = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(t[i], NULL);
    total += w[i].claims;
  }
  *t1 = lsmi_util_mono();
  for (int i = 0; i < n; i++)
    lsmi_pg_close(w[i].pg);
  return total;
}

static void bench_claims(int backlog) {
  char dsn[512];
  fresh_db("bench_claims", dsn, sizeof dsn);
  lsmi_pg_t *pg = node(dsn, "n1", 0);
  add_datasets(pg);
  printf("\nqueue | per second |\n|---|---|\n");
  double t0 = lsmi_util_mono();
  create_jobs(pg, backlog, 0);
  double t1 = lsmi_util_mono();
  printf("| jobs created (1 member each, one connection) | %.0f |\n",
         backlog / (t1 - t0));
  lsmi_pg_claim_t c = {0};
  int n = 0;
  t0 = lsmi_util_mono();
  for (;; n++) {
    lsmi_pg_claim_clear(&c);
    int rc = lsmi_pg_claim(pg, 60, &c);
    if (rc == LSMI_ERR_NOTFOUND)
      break;
    if (rc)
      die("claim", rc);
  }
  t1 = lsmi_util_mono();
  printf("| claims, from a backlog of %d queued jobs | %.0f |\n", backlog,
         n / (t1 - t0));

  create_jobs(pg, backlog, backlog);
  char member[1024] = {0};
  t0 = lsmi_util_mono();
  for (n = 0;; n++) {
    lsmi_pg_claim_clear(&c);
    int rc = lsmi_pg_claim(pg, 60, &c);
    if (rc == LSMI_ERR_NOTFOUND)
      break;
    bool combine = false;
    if (rc == LSMI_OK)
      rc = lsmi_pg_member_complete(pg, &c, member, sizeof member, 60, &combine);
    lsmi_pg_finish_t fin = {
        LSMI_JOB_SUCCEEDED, lsmi_util_now(), NULL, "{}", "{}", NULL, NULL, 0};
    if (rc == LSMI_OK)
      rc = lsmi_pg_job_finish(pg, &c, &fin);
    if (rc)
      die("unit", rc);
  }
  t1 = lsmi_util_mono();
  printf("| whole units (claim, complete, finish), backlog %d | %.0f |\n",
         backlog, n / (t1 - t0));
  lsmi_pg_claim_clear(&c);
  const int threads[] = {4, 16};
  for (int i = 0; i < 2; i++) {
    create_jobs(pg, backlog, (2 + i) * backlog);
    n = claim_together(dsn, threads[i], &t0, &t1);
    printf("| claims by %d nodes at once (a connection each), backlog %d | "
           "%.0f |\n",
           threads[i], backlog, n / (t1 - t0));
  }
  lsmi_pg_close(pg);
}

/* ---- wake-ups ---- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  printf("| %s | %.2f | %.2f | %.2f |\n", what, v[n / 2] * 1e3,
         v[(int)(n * 0.99)] * 1e3, v[n - 1] * 1e3);
}

typedef struct waker {
  lsmi_pg_t *pg; /* the idle node */
  lsmi_pg_listener_t *l;
  int n;
  double *heard;   /* when each event arrived (monotonic) */
  double *claimed; /* when its job was claimed (NULL: do not claim) */
  atomic_int done; /* events recorded so far */
} waker_t;

/* The idle node: waits for each NOTIFY, and claims on a "work" one. */
static void *idle_node(void *arg) {
  waker_t *w = arg;
  while (atomic_load(&w->done) < w->n) {
    lsmi_pg_event_t ev[8];
    int n = 0;
    if (lsmi_pg_listen_wait(w->l, 1000, ev, 8, &n))
      die("listen", LSMI_ERR_UNAVAILABLE);
    for (int i = 0; i < n && atomic_load(&w->done) < w->n; i++) {
      int got = atomic_load(&w->done);
      w->heard[got] = lsmi_util_mono();
      if (ev[i].kind == LSMI_PG_WORK && w->claimed) {
        lsmi_pg_claim_t c = {0};
        if (lsmi_pg_claim(w->pg, 60, &c) == LSMI_OK)
          w->claimed[got] = lsmi_util_mono();
        lsmi_pg_claim_clear(&c);
      }
      atomic_fetch_add(&w->done, 1);
    }
  }
  return NULL;
}

/* Runs the idle node while send(ctx, i) is called for each sample, 2 ms
 * apart, each once the previous one was heard; the latencies into lat,
 * to the event heard, or with w->claimed to the claim. */
static void sample(waker_t *w, void (*send)(void *ctx, int i), void *ctx,
                   double *lat) {
  double *sent = calloc((size_t)w->n, sizeof *sent);
  atomic_store(&w->done, 0);
  pthread_t t;
  pthread_create(&t, NULL, idle_node, w);
  usleep(100 * 1000); /* the listener waits */
  for (int i = 0; i < w->n; i++) {
    usleep(2000);
    sent[i] = lsmi_util_mono();
    send(ctx, i);
    while (atomic_load(&w->done) <= i)
      usleep(50);
  }
  pthread_join(t, NULL);
  for (int i = 0; i < w->n; i++)
    lat[i] = (w->claimed ? w->claimed[i] : w->heard[i]) - sent[i];
  free(sent);
}

static void send_notify(void *ctx, int i) {
  (void)i;
  lsmi_pq_run(ctx, "NOTIFY lsmi_cancel, 'x'", NULL, false, NULL);
}

static void send_job(void *ctx, int i) { create_jobs(ctx, 1, 1000000 + i); }

static void bench_wakeup(int samples) {
  char dsn[512];
  fresh_db("bench_wakeup", dsn, sizeof dsn);
  lsmi_pg_t *a = node(dsn, "busy", 0), *b = node(dsn, "idle", 0);
  add_datasets(a);
  double *lat = calloc((size_t)samples, sizeof *lat);
  waker_t w = {.pg = b, .n = samples};
  w.heard = calloc((size_t)samples, sizeof(double));
  if (lsmi_pg_listen_open(b, &w.l, NULL))
    die("listen_open", LSMI_ERR_UNAVAILABLE);
  printf("\nwake-up, %d samples | p50 ms | p99 ms | max ms |\n|---|---|---|"
         "---|\n",
         samples);

  /* NOTIFY alone: from sending it (autocommit) to the listener's poll. */
  lsmi_pq_conn_t *c = NULL;
  if (lsmi_pq_conn_open(dsn, "bench notify", &c, NULL))
    die("connect", LSMI_ERR_UNAVAILABLE);
  sample(&w, send_notify, c, lat);
  report("NOTIFY to the listener's poll", lat, samples);

  /* A job queued on a busy node, claimed by the idle one. */
  w.claimed = calloc((size_t)samples, sizeof(double));
  sample(&w, send_job, a, lat);
  report("job_create called to the claim returned on the idle node", lat,
         samples);
  lsmi_pq_conn_close(c);
  lsmi_pg_listen_close(w.l);
  lsmi_pg_close(a);
  lsmi_pg_close(b);
  free(lat);
  free(w.heard);
  free(w.claimed);
}

int main(int argc, char **argv) {
  size_t blob_mb = 100;
  int backlog = 2000, samples = 500;
  bool blobs = true;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--blob-mb") && i + 1 < argc)
      blob_mb = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--backlog") && i + 1 < argc)
      backlog = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
      samples = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--skip-blobs"))
      blobs = false;
    else {
      fprintf(stderr, "usage: pg_cluster [--blob-mb N] [--backlog N] "
                      "[--samples N] [--skip-blobs]\n");
      return 2;
    }
  }
  base_dsn = getenv("LSMI_TEST_PG_DSN");
  const char *pgdir = getenv("LSMI_TEST_PG_DIR");
  snprintf(dir, sizeof dir, "%s/lsmi-pgbench-XXXXXX", pgdir ? pgdir : "/tmp");
  if (base_dsn == NULL || mkdtemp(dir) == NULL) {
    fprintf(stderr, "pg_cluster: run me through tests/cluster/pg.sh\n");
    return 2;
  }
  lsmi_util_log_quiet_requests(1);
  PGconn *c = PQconnectdb(base_dsn);
  PGresult *r = PQexec(c, "SELECT version(), current_setting('fsync'), "
                          "inet_server_addr() IS NOT NULL");
  printf("%s; fsync %s; %s\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
         strcmp(PQgetvalue(r, 0, 2), "t") ? "Unix socket" : "TCP loopback");
  PQclear(r);
  PQfinish(c);
  if (blobs)
    bench_blobs(blob_mb);
  bench_claims(backlog);
  bench_wakeup(samples);
  rmdir(dir);
  return 0;
}
