/*
 * upkeep.c — SIGHUP (reload the tokens, sweep) and the retention sweep on
 * a timer (see upkeep.h).
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>

#include "datadir.h"
#include "storepg.h"
#include "upkeep.h"
#include "util.h"

/* Jobs deleted by one sweep at most; the next batch follows a moment
 * later. */
#define BATCH 200
#define EVERY_MS (3600 * 1000)
#define AGAIN_MS 200

struct lsmi_upkeep {
  const lsmi_config_t *cfg;
  lsmi_store_t *store;
  lsmi_sched_t *sched;
  uv_signal_t sighup;
  uv_timer_t timer;
  bool stopped;
  /* The cluster mode's sweeps, on a pool thread (they wait on the
   * database): one at a time. */
  uv_work_t cache_req;
  bool cache_busy, retain_busy;
  int cache_rc, cache_removed, orders_removed;
  int retain_rc, retain_jobs, retain_keys;
  double retain_ms;
};

/* The cluster's retention, batch after batch, by one node at a time (an
 * advisory lock in the database: a node that finds another sweeping
 * leaves it the work); this node's copies of the jobs' files go at once,
 * the other nodes' with their cache sweeps. */
static void retain_cluster(lsmi_upkeep_t *u) {
  const lsmi_config_t *cfg = u->cfg;
  u->retain_jobs = u->retain_keys = 0;
  u->retain_rc = LSMI_OK;
  u->retain_busy = false;
  if (cfg->retain_days <= 0)
    return;
  double t0 = lsmi_util_mono();
  double before = lsmi_util_now() - (double)cfg->retain_days * 86400.0;
  for (size_t n = BATCH; n == BATCH && u->retain_rc == LSMI_OK;) {
    lsmi_idlist_t jobs = LSMI_IDLIST_INIT;
    int keys = 0;
    u->retain_rc = lsmi_storepg_expire(lsmi_store_cluster(u->store), before,
                                       BATCH, &jobs, &keys, &u->retain_busy);
    lsmi_datadir_remove_jobs(cfg->data_dir, u->store, &jobs);
    n = u->retain_busy ? 0 : jobs.n;
    u->retain_jobs += (int)jobs.n;
    u->retain_keys += keys;
    lsmi_idlist_free(&jobs);
  }
  u->retain_ms = round((lsmi_util_mono() - t0) * 1e6) / 1e3;
}

static void cache_work(uv_work_t *w) {
  lsmi_upkeep_t *u = w->data;
  retain_cluster(u);
  u->cache_rc =
      lsmi_storepg_cache_sweep(lsmi_store_cluster(u->store), &u->cache_removed);
  /* The cached orders of jobs the database no longer has. */
  lsmi_datadir_clean_cache(u->cfg->data_dir, u->store, &u->orders_removed);
}

/* A sweep's failure, as an error line with its status. */
static void log_failed(const char *event, int rc, const char *detail) {
  lsmi_util_log(event, json_pack("{s:s, s:s, s:s}", "level", "error", "status",
                                 lsmi_status_name(rc), "detail", detail));
}

static void cache_done(uv_work_t *w, int status) {
  (void)status;
  lsmi_upkeep_t *u = w->data;
  u->cache_busy = false;
  if (u->retain_rc)
    log_failed("retention", u->retain_rc,
               "the store failed; the sweep runs again within the hour");
  else if (u->cfg->retain_days > 0)
    lsmi_util_log("retention",
                  json_pack("{s:i, s:i, s:i, s:b, s:f}", "jobs_deleted",
                            u->retain_jobs, "keys_deleted", u->retain_keys,
                            "retain_days", u->cfg->retain_days,
                            "other_node_sweeping", u->retain_busy, "ms",
                            u->retain_ms));
  if (u->cache_rc)
    log_failed("cache_sweep", u->cache_rc,
               "the cache sweep failed; it runs again within the hour");
  else
    lsmi_util_log("cache_sweep",
                  json_pack("{s:i, s:i}", "files_removed", u->cache_removed,
                            "orders_removed", u->orders_removed));
}

/* The cluster mode: retention, and the node's caches swept of what the
 * database no longer has (storepg.h). */
static void cache_sweep(lsmi_upkeep_t *u, uv_loop_t *loop) {
  if (lsmi_store_cluster(u->store) == NULL || u->cache_busy || u->stopped)
    return;
  u->cache_req.data = u;
  u->cache_busy =
      uv_queue_work(loop, &u->cache_req, cache_work, cache_done) == 0;
}

int lsmi_upkeep_sweep(lsmi_upkeep_t *u) {
  const lsmi_config_t *cfg = u->cfg;
  if (cfg->retain_days <= 0)
    return 0;
  double t0 = lsmi_util_mono();
  double before = lsmi_util_now() - (double)cfg->retain_days * 86400.0;
  lsmi_idlist_t jobs = LSMI_IDLIST_INIT;
  int keys = 0;
  int st = lsmi_store_expire(u->store, before, BATCH, &jobs, &keys);
  /* The batch's files, two directory syncs and one transaction: a sweep
   * of 200 jobs holds the loop for milliseconds, not an fsync per job. */
  lsmi_datadir_remove_jobs(cfg->data_dir, u->store, &jobs);
  int n = (int)jobs.n;
  if (st)
    lsmi_util_log("retention",
                  json_pack("{s:s, s:s}", "level", "error", "detail",
                            "the store failed; the sweep runs again within "
                            "the hour"));
  else if (n || keys)
    lsmi_util_log("retention",
                  json_pack("{s:i, s:i, s:i, s:f}", "jobs_deleted", n,
                            "keys_deleted", keys, "retain_days",
                            cfg->retain_days, "ms",
                            round((lsmi_util_mono() - t0) * 1e6) / 1e3));
  lsmi_idlist_free(&jobs);
  return st ? -1 : n;
}

static void on_timer(uv_timer_t *h) {
  lsmi_upkeep_t *u = h->data;
  if (lsmi_store_cluster(u->store)) {
    cache_sweep(u, h->loop);
    return;
  }
  if (lsmi_upkeep_sweep(u) == BATCH) /* more to do: soon */
    uv_timer_start(&u->timer, on_timer, AGAIN_MS, EVERY_MS);
}

/* SIGHUP: the tokens read again (kept as they were when the new ones
 * break a rule), then a sweep. */
static void on_sighup(uv_signal_t *h, int signum) {
  lsmi_upkeep_t *u = h->data;
  (void)signum;
  lsmi_tokens_info_t info = {0};
  lsmi_error_t err = {0};
  size_t had = 0;
  lsmi_tokens_counts(u->cfg->tokens, &had, NULL);
  int st = lsmi_tokens_load(u->cfg->tokens, &info, &err);
  if (st == LSMI_OK) {
    lsmi_sched_tokens_reloaded(u->sched);
    const char *detail =
        lsmi_tokens_has_file(u->cfg->tokens)
            ? "tokens reloaded from the tokens file"
            : "no tokens file to reload: the tokens stay those given at "
              "start";
    lsmi_util_log("reload", json_pack("{s:s, s:I, s:I, s:I}", "detail", detail,
                                      "tokens", (json_int_t)info.tokens,
                                      "tenants", (json_int_t)info.tenants,
                                      "before", (json_int_t)had));
    if (info.world_readable)
      lsmi_tokens_warn_mode(u->cfg->tokens_file, info.mode);
  } else {
    lsmi_util_log("reload",
                  json_pack("{s:s, s:s, s:I}", "level", "error", "detail",
                            err.message, "tokens_kept", (json_int_t)had));
  }
  on_timer(&u->timer);
}

int lsmi_upkeep_start(uv_loop_t *loop, const lsmi_config_t *cfg,
                      lsmi_store_t *store, lsmi_sched_t *sched,
                      lsmi_upkeep_t **out) {
  *out = NULL;
  lsmi_upkeep_t *u = calloc(1, sizeof *u);
  if (u == NULL)
    return LSMI_ERR_NOMEM;
  u->cfg = cfg;
  u->store = store;
  u->sched = sched;
  uv_signal_init(loop, &u->sighup);
  u->sighup.data = u;
  uv_signal_start(&u->sighup, on_sighup, SIGHUP);
  uv_timer_init(loop, &u->timer);
  u->timer.data = u;
  uv_timer_start(&u->timer, on_timer, 1000, EVERY_MS);
  *out = u;
  return LSMI_OK;
}

void lsmi_upkeep_stop(lsmi_upkeep_t *u) {
  if (u == NULL || u->stopped)
    return;
  u->stopped = true;
  uv_close((uv_handle_t *)&u->sighup, NULL);
  /* libuv gave SIGHUP its default action back, which ends the process: a
   * reload sent while the daemon drains is ignored instead. */
  signal(SIGHUP, SIG_IGN);
  uv_close((uv_handle_t *)&u->timer, NULL);
}

void lsmi_upkeep_destroy(lsmi_upkeep_t *u) { free(u); }
