/*
 * h_ops.c — the operations endpoints: GET /healthz (the process answers),
 * /readyz (the store answers with whole pages, tmp/ takes a file, the disk
 * keeps --min-free-disk free, the loop ticks, no shutdown under way),
 * /metrics (Prometheus text) and /v1/openapi.yaml (the contract the binary
 * was built against). See handlers.h for how a handler answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handlers.h"
#include "memory.h"
#include "metrics.h"
#include "openapi.h"
#include "quota.h"

int lsmi_h_healthz(lsmi_req_t *r) {
  return lsmi_http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

/* Whether a file can be made, written and removed in DATA/tmp (where
 * every upload and result file begins): 0, or -errno. */
static int probe_tmp(const char *data_dir) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tmp/.readyz.XXXXXX", data_dir);
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = write(fd, "1", 1) == 1 ? 0 : -errno;
  close(fd);
  unlink(path);
  return rc;
}

int lsmi_h_readyz(lsmi_req_t *r) {
  const lsmi_http_t *h = r->h;
  const lsmi_config_t *cfg = h->cfg;
  char why[200] = "";
  bool store = lsmi_store_check(h->store, why, sizeof why) == LSMI_OK;
  int tmp_rc = probe_tmp(cfg->data_dir);
  bool tmp = tmp_rc == 0;
  uint64_t avail = 0, size = 0;
  bool known = lsmi_quota_disk(cfg->data_dir, &avail, &size) == LSMI_OK;
  bool disk = !known || avail > cfg->min_free_disk;
  if (store && !disk) {
    char a[32], b[32];
    snprintf(why, sizeof why,
             "the disk of the data directory is full: %s free, "
             "--min-free-disk %s",
             lsmi_mem_format(avail, a, sizeof a),
             lsmi_mem_format(cfg->min_free_disk, b, sizeof b));
  } else if (store && !tmp) {
    snprintf(why, sizeof why, "tmp/ of the data directory is not writable: %s",
             strerror(-tmp_rc));
  }
  bool loop = lsmi_sched_ready(h->sched);
  bool draining = lsmi_sched_draining(h->sched);
  bool ready = store && tmp && disk && loop && !draining;
  json_t *o = json_pack("{s:b, s:b, s:b, s:b, s:I, s:b, s:i, s:b}", "ready",
                        ready, "store", store, "tmp", tmp, "disk", disk,
                        "disk_free_bytes", (json_int_t)avail, "loop", loop,
                        "workers", cfg->workers, "draining", draining);
  if (o && why[0])
    json_object_set_new(o, "detail", json_string(why));
  return lsmi_http_reply_json(r, ready ? 200 : 503, o, NULL);
}

/* The bytes of the store's files: lsmi.db and its WAL journal. */
static uint64_t store_bytes(const char *data_dir) {
  static const char *const names[] = {"lsmi.db", "lsmi.db-wal", "lsmi.db-shm"};
  uint64_t n = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", data_dir, names[i]);
    if (stat(path, &sb) == 0)
      n += (uint64_t)sb.st_size;
  }
  return n;
}

int lsmi_h_metrics(lsmi_req_t *r) {
  const lsmi_http_t *h = r->h;
  lsmi_metrics_gauges_t g = {0};
  int queued = 0, running = 0;
  lsmi_sched_counts(h->sched, &queued, &running);
  g.queue_depth = queued;
  g.running = running;
  g.workers = h->cfg->workers;
  /* What a failing store cannot count stays 0: a scrape still answers.
   * Ends the store has not taken yet count in their true state, so that
   * running jobs here and in the store agree. */
  lsmi_store_counts(h->store, g.jobs_by_state, &g.datasets);
  if (lsmi_store_cluster(h->store)) /* the queue is the cluster's */
    g.queue_depth = (int)g.jobs_by_state[LSMI_JOB_QUEUED];
  int64_t ended[LSMI_JOB_STATES];
  g.unrecorded = lsmi_sched_unrecorded(h->sched, ended);
  for (int i = 0; i < LSMI_JOB_STATES; i++)
    g.jobs_by_state[i] += ended[i];
  g.jobs_by_state[LSMI_JOB_RUNNING] -= g.unrecorded;
  if (g.jobs_by_state[LSMI_JOB_RUNNING] < 0)
    g.jobs_by_state[LSMI_JOB_RUNNING] = 0;
  uint64_t reserved = 0, budget = 0;
  lsmi_mem_usage(lsmi_sched_mem(h->sched), &reserved, &budget);
  g.memory_reserved = (int64_t)reserved;
  g.memory_budget = (int64_t)budget;
  uint64_t head = 0, body = 0;
  lsmi_conns_reaped(h->conns, &head, &body);
  g.closed_head = (int64_t)head;
  g.closed_body = (int64_t)body;
  uint64_t ds = 0, res = 0, avail = 0, size = 0;
  lsmi_store_bytes(h->store, &ds, &res);
  lsmi_quota_disk(h->cfg->data_dir, &avail, &size);
  g.dataset_bytes = (int64_t)ds;
  g.result_bytes = (int64_t)res;
  g.store_bytes = (int64_t)store_bytes(h->cfg->data_dir);
  g.disk_free = (int64_t)avail;
  g.disk_size = (int64_t)size;
  char *text = lsmi_metrics_render(&g);
  if (text == NULL)
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  return lsmi_http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                         text, strlen(text), false, NULL);
}

int lsmi_h_openapi(lsmi_req_t *r) {
  size_t len = 0;
  const char *text = lsmi_openapi_text(&len);
  return lsmi_http_reply(r, 200, "application/yaml", (char *)text, len, true,
                         NULL);
}
