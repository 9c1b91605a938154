/*
 * serve.c — `lsmi serve`: wires the configuration, the store, the scheduler
 * and the HTTP server together, recovers interrupted jobs, and shuts down
 * cleanly on SIGTERM / SIGINT.
 *
 * THREADS AND LOCKS (the one place that names them; STYLE rule 6)
 *
 *  - HTTP threads (libmicrohttpd's pool, --http-threads) parse and validate
 *    requests, stream uploads into their own temp file, read and write the
 *    store, and hand new jobs to the scheduler. They never run a fit and
 *    never block on the loop thread.
 *  - The loop thread (this thread, running uv_run) owns the shared state:
 *    the job queue and running set (sched.c), the timers, the signal
 *    handlers (SIGHUP's reload and the retention sweep: upkeep.c), and
 *    every job state transition after "queued".
 *  - Worker threads (libuv's pool, one job each, at most --workers at once)
 *    touch only their job's data: they read the dataset file, run lsmi_fit
 *    (whose own threads report progress into the job's snapshot) and write
 *    the job's result files. The completion runs back on the loop thread.
 *    (A cluster node's pool is larger: csched.c.)
 *
 *  Locks, each guarding one structure with one owner:
 *    sched.mu   — queue, running set, reservations, progress snapshots
 *                 (owner: loop thread; sched.c)
 *    store.mu   — the SQLite connection (owner: store.c; any thread)
 *    mem.mu     — the memory budget's counters (memory.c; any thread; an
 *                 upload's check may wait on its condition variable for
 *                 memory that jobs and other checks give back)
 *    metrics.mu — the counters (metrics.c; any thread)
 *    tokens.mu  — the bearer tokens, which SIGHUP replaces (tokens.c; any
 *                 thread)
 *    stderr's stdio lock — one log line at a time (util.c)
 *  Order: the daemon's own code never holds two of them at once; each
 *  critical section is a few statements that call nothing that locks. The
 *  one nesting comes from the core: lsmi_fit calls the progress callback
 *  while holding its fit.lock, and the callback takes sched.mu. So the
 *  order is fit.lock -> sched.mu, and nothing may call into a fit while
 *  holding sched.mu (setting the atomic cancel flag takes no lock).
 *
 *  A json_t never crosses threads: each is made, used and released by the
 *  thread that made it. Jobs cross threads as plain C structs.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "datadir.h"
#include "http.h"
#include "sched.h"
#include "serve.h"
#include "store.h"
#include "storepg.h"
#include "upkeep.h"
#include "util.h"

static const char *env_get(const char *name) { return getenv(name); }

typedef struct serve_state {
  lsmi_http_t *http;
  lsmi_upkeep_t *upkeep;
} serve_state_t;

/* Shutdown begins: no more requests, reloads or sweeps. */
static void stop_http(void *ctx) {
  serve_state_t *st = ctx;
  lsmi_upkeep_stop(st->upkeep);
  lsmi_http_stop(st->http);
  st->http = NULL;
}

/*
 * The configuration from flags, the environment and the tokens: 0 (with
 * *help set when --help was printed), or a status with err saying why.
 * Without tokens the daemon refuses any address but loopback.
 */
static int configure(lsmi_config_t *cfg, int argc, char **argv, bool *help,
                     lsmi_error_t *err) {
  lsmi_tokens_info_t info = {0};
  int st = lsmi_config_parse(cfg, argc, argv, env_get, stdout, help, err);
  if (st == LSMI_OK && !*help)
    st = lsmi_config_load_tokens(cfg, env_get, &info, err);
  if (st == LSMI_OK && !*help && info.world_readable)
    lsmi_tokens_warn_mode(cfg->tokens_file, info.mode);
  if (st == LSMI_OK && !*help && info.tokens == 0 &&
      !lsmi_config_is_loopback(cfg->host))
    st = lsmi_error_set(err, LSMI_ERR_INVALID, "listen",
                        "refusing to listen on %s without tokens: set "
                        "--tokens-file or LSMI_TOKENS, or listen on "
                        "127.0.0.1",
                        cfg->listen);
  return st;
}

/* Starts the scheduler and the HTTP side on a loop, runs the loop until
 * the daemon has shut down: 0, or a status with err when it could not
 * start (it then shuts down what had started). */
static int run_loop(const lsmi_config_t *cfg, lsmi_store_t *store,
                    uv_loop_t *loop, lsmi_error_t *err) {
  serve_state_t st = {NULL, NULL};
  lsmi_sched_t *sched = NULL;
  int rc = lsmi_sched_create(loop, cfg, store, stop_http, &st, &sched);
  if (rc) {
    lsmi_error_set(err, rc, "", "out of memory");
    goto out;
  }
  rc = lsmi_sched_start(sched);
  if (rc)
    lsmi_error_set(err, rc, "data-dir", "could not read the job queue of %s",
                   cfg->data_dir);
  else
    rc = lsmi_http_start(cfg, store, sched, &st.http, err);
  if (rc == LSMI_OK &&
      (rc = lsmi_upkeep_start(loop, cfg, store, sched, &st.upkeep)) != 0)
    lsmi_error_set(err, rc, "", "out of memory");
  size_t tokens = 0, tenants = 0;
  lsmi_tokens_counts(cfg->tokens, &tokens, &tenants);
  if (rc == LSMI_OK)
    lsmi_util_log(
        "start",
        json_pack("{s:s, s:s, s:i, s:i, s:s, s:i, s:i, s:b, s:I, s:I, s:i, "
                  "s:I, s:i, s:I}",
                  "version", LSMI_VERSION, "host", cfg->host, "port",
                  lsmi_http_port(st.http), "ops_port",
                  lsmi_http_ops_port(st.http), "data_dir", cfg->data_dir,
                  "workers", cfg->workers, "queue_size", cfg->queue_size,
                  "auth", tokens > 0, "tokens", (json_int_t)tokens, "tenants",
                  (json_int_t)tenants, "max_connections",
                  lsmi_http_connection_limit(st.http), "max_memory",
                  (json_int_t)cfg->max_memory, "retain_days", cfg->retain_days,
                  "tenant_quota_bytes", (json_int_t)cfg->tenant_quota_bytes));
  else
    lsmi_sched_shutdown(sched);
  uv_run(loop, UV_RUN_DEFAULT);
out:
  lsmi_http_stop(st.http); /* no-op after a shutdown stopped it */
  lsmi_upkeep_destroy(st.upkeep);
  lsmi_sched_destroy(sched);
  return rc;
}

/* Opens the store of a locked data directory and accounts for its files:
 * finishes pending uploads and deletions, refuses a directory with files
 * the store does not know (datadir.h), sweeps tmp/. */
static int open_store(const char *data_dir, lsmi_store_t **store,
                      lsmi_error_t *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/lsmi.db", data_dir);
  int rc = lsmi_store_open(path, store, err);
  int finished = 0, swept = 0;
  if (rc == LSMI_OK &&
      lsmi_datadir_finish_pending(data_dir, *store, &finished) != LSMI_OK)
    rc = lsmi_error_set(err, LSMI_ERR_IO, "data-dir",
                        "could not finish the pending file operations of %s",
                        data_dir);
  lsmi_datadir_unknown_t u;
  if (rc == LSMI_OK)
    rc = lsmi_datadir_scan(data_dir, *store, &u, err);
  if (rc == LSMI_OK && u.datasets + u.results > 0) {
    lsmi_datadir_unknown_message(data_dir, &u, err);
    lsmi_util_log("refused",
                  json_pack("{s:s, s:I, s:I, s:s}", "data_dir", data_dir,
                            "unknown_datasets", (json_int_t)u.datasets,
                            "unknown_results", (json_int_t)u.results, "detail",
                            err->message));
    rc = LSMI_ERR_CONFLICT;
  }
  int orders = 0;
  if (rc == LSMI_OK) {
    lsmi_datadir_clean_tmp(data_dir, &swept);
    lsmi_datadir_clean_cache(data_dir, *store, &orders);
  }
  if (finished || swept || orders)
    lsmi_util_log("cleanup",
                  json_pack("{s:i, s:i, s:i, s:s}", "pending_finished",
                            finished, "tmp_removed", swept, "orders_removed",
                            orders, "detail",
                            "uploads never acknowledged, deletions under way, "
                            "temp files of an interrupted run and cached "
                            "orders of jobs no longer there"));
  return rc;
}

/* The cluster mode's store (--store, storepg.h): the database may still be
 * away (the daemon starts and says it is not ready); the data directory
 * holds caches of the database's files, which need no accounting, and
 * tmp/ is swept. */
static int open_cluster(const lsmi_config_t *cfg, lsmi_store_t **store,
                        lsmi_error_t *err) {
  lsmi_storepg_options_t o = {cfg->store,     cfg->store_direct,
                              cfg->node,      cfg->data_dir,
                              cfg->store_connections, cfg->cache_bytes};
  lsmi_storepg_t *sp = NULL;
  int rc = lsmi_storepg_open(&o, &sp, err);
  if (rc == LSMI_OK && (rc = lsmi_store_open_cluster(sp, store)) != LSMI_OK)
    lsmi_error_set(err, rc, "", "out of memory");
  if (rc == LSMI_OK)
    lsmi_datadir_clean_tmp(cfg->data_dir, NULL);
  return rc;
}

/* Prepares the data directory (locked for the daemon's life) and the
 * store, then runs the daemon: 0, or a status with err when it could not
 * start. */
static int run(const lsmi_config_t *cfg, lsmi_error_t *err) {
  lsmi_store_t *store = NULL;
  int lock = -1;
  /* A SIGHUP (a reload) before upkeep.c handles it, or during a shutdown
   * after, must not kill the daemon: its default action would. */
  signal(SIGHUP, SIG_IGN);
  int rc = lsmi_datadir_make(cfg->data_dir, err);
  if (rc == LSMI_OK)
    rc = lsmi_datadir_lock(cfg->data_dir, &lock, err);
  if (rc == LSMI_OK)
    rc = cfg->store[0] ? open_cluster(cfg, &store, err)
                       : open_store(cfg->data_dir, &store, err);
  if (rc)
    goto out;
  /* The pool size is read once, at the first uv_queue_work. A cluster
   * node's pool also runs its claim, and a unit past its fit reports
   * (result files, the job's end) while the next unit fits (csched.c):
   * --workers fitting, as many reporting, one claim. */
  char pool[16];
  snprintf(pool, sizeof pool, "%d",
           cfg->store[0] ? 2 * cfg->workers + 1 : cfg->workers);
  setenv("UV_THREADPOOL_SIZE", pool, 1);
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    rc = lsmi_error_set(err, LSMI_ERR_IO, "", "cannot start the event loop");
    goto out;
  }
  rc = run_loop(cfg, store, &loop, err);
  uv_loop_close(&loop);
  lsmi_util_log("stop", json_pack("{s:s, s:i}", "level", rc ? "error" : "info",
                                  "status", rc ? 1 : 0));
out:
  lsmi_store_close(store);
  lsmi_datadir_unlock(lock);
  return rc;
}

int lsmi_serve_main(int argc, char **argv) {
  lsmi_config_t cfg;
  lsmi_error_t err = {0};
  bool help = false;
  int exit_status = 2; /* the configuration is wrong */
  int rc = configure(&cfg, argc, argv, &help, &err);
  if (rc == LSMI_OK && !help) {
    lsmi_util_log_quiet_requests(cfg.quiet);
    signal(SIGPIPE, SIG_IGN);
    rc = run(&cfg, &err);
    exit_status = 1; /* the daemon could not start */
  }
  if (rc) /* stderr is the daemon's log: this too is one JSON line */
    lsmi_util_log("fatal", json_pack("{s:s, s:s, s:i}", "detail", err.message,
                                     "field", err.field, "exit", exit_status));
  lsmi_config_free(&cfg);
  return rc ? exit_status : 0;
}
