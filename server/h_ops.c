/*
 * h_ops.c — the operations endpoints: GET /healthz (the process answers),
 * /readyz (the store answers with whole pages, tmp/ takes a file, the loop
 * ticks, no shutdown under way),
 * /metrics (Prometheus text) and /v1/openapi.yaml (the contract the binary
 * was built against). See handlers.h for how a handler answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "metrics.h"
#include "openapi.h"

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
  char why[200] = "";
  bool store = lsmi_store_check(h->store, why, sizeof why) == LSMI_OK;
  int tmp_rc = probe_tmp(h->cfg->data_dir);
  bool tmp = tmp_rc == 0;
  if (store && !tmp)
    snprintf(why, sizeof why, "tmp/ of the data directory is not writable: %s",
             strerror(-tmp_rc));
  bool loop = lsmi_sched_ready(h->sched);
  bool draining = lsmi_sched_draining(h->sched);
  bool ready = store && tmp && loop && !draining;
  json_t *o = json_pack("{s:b, s:b, s:b, s:b, s:i, s:b}", "ready", ready,
                        "store", store, "tmp", tmp, "loop", loop, "workers",
                        h->cfg->workers, "draining", draining);
  if (o && why[0])
    json_object_set_new(o, "detail", json_string(why));
  return lsmi_http_reply_json(r, ready ? 200 : 503, o, NULL);
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
