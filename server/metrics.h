/*
 * metrics.h — the daemon's Prometheus counters: requests by route, method
 * and status, a request latency histogram, fit seconds and upload bytes.
 * The gauges (queue depth, jobs by state, the data directory's bytes) are
 * passed in at render time by the caller, which reads them from their
 * owners.
 *
 * Lock: metrics.mu, a leaf lock (nothing else is taken while it is held);
 * any thread may record.
 */
#ifndef LSMI_METRICS_H
#define LSMI_METRICS_H

#include <stdint.h>

#include "router.h"

/* A request answered: its route, method ("GET", ...; others count as
 * "other"), status and seconds. */
void lsmi_metrics_request(lsmi_route_t route, const char *method, int status,
                          double seconds);
void lsmi_metrics_upload_bytes(uint64_t n);
void lsmi_metrics_fit(double seconds, const char *outcome);

/*
 * The gauges the caller supplies: queue depth, running jobs, the number of
 * jobs in each state (queued, running, succeeded, failed, cancelled: the
 * truth, so ends the store has not taken yet count in their true state),
 * those ends, and the memory budget.
 */
typedef struct lsmi_metrics_gauges {
  int64_t queue_depth;
  int64_t running;
  int64_t workers;
  int64_t jobs_by_state[5];
  int64_t datasets;
  int64_t unrecorded;      /* ended jobs whose end the store lacks */
  int64_t memory_reserved; /* bytes held by running fits and checks */
  int64_t memory_budget;   /* --max-memory */
  int64_t closed_head;     /* connections closed for a late request head */
  int64_t closed_body;     /* ... for a body below --min-body-rate */
  /* The data directory: its datasets' and results' files and the store's
   * (lsmi.db with its journal), and its disk's free and whole size. */
  int64_t dataset_bytes, result_bytes, store_bytes;
  int64_t disk_free, disk_size;
} lsmi_metrics_gauges_t;

/* The text exposition (version 0.0.4): the counters, the gauges g, the
 * build's version (lsmi_build_info) and the process's own metrics
 * (process_*: resident memory, CPU seconds, open descriptors, start time,
 * read from /proc/self). malloc'd, taken by the caller. */
char *lsmi_metrics_render(const lsmi_metrics_gauges_t *g);

#endif
