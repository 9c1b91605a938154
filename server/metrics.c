/*
 * metrics.c — counters behind /metrics. Kept as plain arrays indexed by
 * route, by method and by a small table of status codes, all under one
 * leaf mutex: a request records once, a scrape copies everything out.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lsmi.h"
#include "metrics.h"
#include "util.h"

static const int codes[] = {
    200, 201, 202, 204, 304, 400, 401, 404, 405, 409,
    413, 415, 422, 429, 499, 500, 503, 507, 0 /* other */};
#define N_CODES (sizeof codes / sizeof codes[0])
static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

static const char *const methods[] = {"GET",    "HEAD",    "POST",
                                      "DELETE", "OPTIONS", "other"};
#define N_METHODS (sizeof methods / sizeof methods[0])

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* metrics.mu */
static uint64_t requests[LSMI_ROUTE_COUNT][N_METHODS][N_CODES];
static uint64_t latency_le[N_BUCKETS]; /* cumulative at render */
static uint64_t latency_count;
static double latency_sum;
static uint64_t upload_bytes;
static double fit_sum;
static uint64_t fit_count[3]; /* succeeded, failed, cancelled */

static size_t code_index(int status) {
  for (size_t i = 0; i + 1 < N_CODES; i++)
    if (codes[i] == status)
      return i;
  return N_CODES - 1;
}

static size_t method_index(const char *method) {
  for (size_t i = 0; method && i + 1 < N_METHODS; i++)
    if (!strcmp(methods[i], method))
      return i;
  return N_METHODS - 1;
}

void lsmi_metrics_request(lsmi_route_t route, const char *method, int status,
                          double seconds) {
  if (route < 0 || route >= LSMI_ROUTE_COUNT)
    route = LSMI_ROUTE_NONE;
  size_t m = method_index(method);
  pthread_mutex_lock(&mu);
  requests[route][m][code_index(status)]++;
  for (size_t b = 0; b < N_BUCKETS; b++)
    if (seconds <= buckets[b]) {
      latency_le[b]++;
      break;
    }
  latency_count++;
  latency_sum += seconds;
  pthread_mutex_unlock(&mu);
}

void lsmi_metrics_upload_bytes(uint64_t n) {
  pthread_mutex_lock(&mu);
  upload_bytes += n;
  pthread_mutex_unlock(&mu);
}

void lsmi_metrics_fit(double seconds, const char *outcome) {
  size_t k = !strcmp(outcome, "succeeded") ? 0
             : !strcmp(outcome, "failed")  ? 1
                                           : 2;
  pthread_mutex_lock(&mu);
  fit_sum += seconds;
  fit_count[k]++;
  pthread_mutex_unlock(&mu);
}

/* A copy of the counters, taken under metrics.mu. */
typedef struct snapshot {
  uint64_t req[LSMI_ROUTE_COUNT][N_METHODS][N_CODES], le[N_BUCKETS], count, up,
      fc[3];
  double sum, fs;
} snapshot_t;

static void take(snapshot_t *c) {
  pthread_mutex_lock(&mu);
  memcpy(c->req, requests, sizeof c->req);
  memcpy(c->le, latency_le, sizeof c->le);
  c->count = latency_count;
  c->sum = latency_sum;
  c->up = upload_bytes;
  c->fs = fit_sum;
  memcpy(c->fc, fit_count, sizeof c->fc);
  pthread_mutex_unlock(&mu);
}

/* Requests by route and status, and the latency histogram. */
static void render_requests(lsmi_strbuf_t *b, const snapshot_t *c) {
  lsmi_strbuf_printf(b, "# HELP lsmi_http_requests_total HTTP requests by "
                        "route, method and status.\n"
                        "# TYPE lsmi_http_requests_total counter\n");
  for (int r = 0; r < LSMI_ROUTE_COUNT; r++)
    for (size_t m = 0; m < N_METHODS; m++)
      for (size_t k = 0; k < N_CODES; k++)
        if (c->req[r][m][k]) {
          char code[8];
          if (codes[k])
            snprintf(code, sizeof code, "%d", codes[k]);
          else
            snprintf(code, sizeof code, "other");
          lsmi_strbuf_printf(
              b,
              "lsmi_http_requests_total{route=\"%s\",method=\"%s\","
              "status=\"%s\"} %llu\n",
              lsmi_router_name((lsmi_route_t)r), methods[m], code,
              (unsigned long long)c->req[r][m][k]);
        }
  lsmi_strbuf_printf(
      b, "# HELP lsmi_http_request_duration_seconds Request latency.\n"
         "# TYPE lsmi_http_request_duration_seconds histogram\n");
  uint64_t cum = 0;
  for (size_t i = 0; i < N_BUCKETS; i++) {
    cum += c->le[i];
    lsmi_strbuf_printf(
        b, "lsmi_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
        buckets[i], (unsigned long long)cum);
  }
  lsmi_strbuf_printf(
      b,
      "lsmi_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
      "lsmi_http_request_duration_seconds_sum %.6f\n"
      "lsmi_http_request_duration_seconds_count %llu\n",
      (unsigned long long)c->count, c->sum, (unsigned long long)c->count);
}

/* The caller's gauges, then fits and upload bytes. */
static void render_jobs(lsmi_strbuf_t *b, const snapshot_t *c,
                        const lsmi_metrics_gauges_t *g) {
  lsmi_strbuf_printf(b,
                     "# HELP lsmi_queue_depth Jobs waiting for a worker.\n"
                     "# TYPE lsmi_queue_depth gauge\nlsmi_queue_depth %lld\n"
                     "# HELP lsmi_jobs_running Jobs on a worker now.\n"
                     "# TYPE lsmi_jobs_running gauge\nlsmi_jobs_running %lld\n"
                     "# HELP lsmi_workers Configured worker slots.\n"
                     "# TYPE lsmi_workers gauge\nlsmi_workers %lld\n"
                     "# HELP lsmi_datasets Stored datasets.\n"
                     "# TYPE lsmi_datasets gauge\nlsmi_datasets %lld\n",
                     (long long)g->queue_depth, (long long)g->running,
                     (long long)g->workers, (long long)g->datasets);
  static const char *states[5] = {"queued", "running", "succeeded", "failed",
                                  "cancelled"};
  lsmi_strbuf_printf(b, "# HELP lsmi_jobs Jobs in the store by state.\n"
                        "# TYPE lsmi_jobs gauge\n");
  for (int i = 0; i < 5; i++)
    lsmi_strbuf_printf(b, "lsmi_jobs{state=\"%s\"} %lld\n", states[i],
                       (long long)g->jobs_by_state[i]);
  lsmi_strbuf_printf(
      b,
      "# HELP lsmi_jobs_unrecorded Ended jobs whose end the store has not "
      "taken yet (retried every second).\n"
      "# TYPE lsmi_jobs_unrecorded gauge\nlsmi_jobs_unrecorded %lld\n"
      "# HELP lsmi_memory_reserved_bytes Memory reserved by running jobs and "
      "upload checks.\n"
      "# TYPE lsmi_memory_reserved_bytes gauge\n"
      "lsmi_memory_reserved_bytes %lld\n"
      "# HELP lsmi_memory_budget_bytes The memory budget (--max-memory).\n"
      "# TYPE lsmi_memory_budget_bytes gauge\nlsmi_memory_budget_bytes %lld\n"
      "# HELP lsmi_http_connections_closed_total Connections closed for a "
      "request head later than --header-timeout or a body slower than "
      "--min-body-rate.\n"
      "# TYPE lsmi_http_connections_closed_total counter\n"
      "lsmi_http_connections_closed_total{reason=\"head\"} %lld\n"
      "lsmi_http_connections_closed_total{reason=\"body\"} %lld\n",
      (long long)g->unrecorded, (long long)g->memory_reserved,
      (long long)g->memory_budget, (long long)g->closed_head,
      (long long)g->closed_body);
  const uint64_t *fc = c->fc;
  lsmi_strbuf_printf(
      b,
      "# HELP lsmi_fit_seconds Wall time of finished fits.\n"
      "# TYPE lsmi_fit_seconds summary\n"
      "lsmi_fit_seconds_sum %.6f\nlsmi_fit_seconds_count %llu\n"
      "# HELP lsmi_fits_total Finished fits by outcome.\n"
      "# TYPE lsmi_fits_total counter\n"
      "lsmi_fits_total{outcome=\"succeeded\"} %llu\n"
      "lsmi_fits_total{outcome=\"failed\"} %llu\n"
      "lsmi_fits_total{outcome=\"cancelled\"} %llu\n"
      "# HELP lsmi_upload_bytes_total Bytes received in dataset uploads.\n"
      "# TYPE lsmi_upload_bytes_total counter\n"
      "lsmi_upload_bytes_total %llu\n",
      c->fs, (unsigned long long)(fc[0] + fc[1] + fc[2]),
      (unsigned long long)fc[0], (unsigned long long)fc[1],
      (unsigned long long)fc[2], (unsigned long long)c->up);
}

/* The data directory's bytes and its disk's room. */
static void render_disk(lsmi_strbuf_t *b, const lsmi_metrics_gauges_t *g) {
  lsmi_strbuf_printf(
      b,
      "# HELP lsmi_data_dir_bytes Bytes of the data directory's files: the "
      "datasets, the jobs' results and the store.\n"
      "# TYPE lsmi_data_dir_bytes gauge\n"
      "lsmi_data_dir_bytes{kind=\"datasets\"} %lld\n"
      "lsmi_data_dir_bytes{kind=\"results\"} %lld\n"
      "lsmi_data_dir_bytes{kind=\"store\"} %lld\n"
      "# HELP lsmi_data_dir_free_bytes Free bytes of the data directory's "
      "file system (for an unprivileged writer).\n"
      "# TYPE lsmi_data_dir_free_bytes gauge\nlsmi_data_dir_free_bytes %lld\n"
      "# HELP lsmi_data_dir_size_bytes Size of the data directory's file "
      "system.\n"
      "# TYPE lsmi_data_dir_size_bytes gauge\nlsmi_data_dir_size_bytes %lld\n",
      (long long)g->dataset_bytes, (long long)g->result_bytes,
      (long long)g->store_bytes, (long long)g->disk_free,
      (long long)g->disk_size);
}

/* The process's own metrics, the names every Prometheus client library
 * uses, from /proc/self (left out where it cannot be read). */
static void render_process(lsmi_strbuf_t *b) {
  long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  FILE *f = fopen("/proc/self/stat", "r");
  char buf[1024];
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = '\0';
  /* The fields after the command (which may hold spaces and parens),
   * from field 3 (state): utime is the 14th field, stime the 15th,
   * starttime the 22nd, rss the 24th. */
  const char *p = strrchr(buf, ')');
  unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
  long long rss = 0;
  if (p && ticks > 0 &&
      sscanf(p + 2,
             "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d "
             "%*d %*d %*d %*d %llu %llu %lld",
             &utime, &stime, &start, &vsize, &rss) == 5) {
    double boot = 0;
    FILE *sf = fopen("/proc/stat", "r");
    char line[256];
    while (sf && fgets(line, sizeof line, sf))
      if (sscanf(line, "btime %lf", &boot) == 1)
        break;
    if (sf)
      fclose(sf);
    lsmi_strbuf_printf(
        b,
        "# HELP process_cpu_seconds_total User and system CPU time spent in "
        "seconds.\n# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total %.2f\n"
        "# HELP process_resident_memory_bytes Resident memory size in "
        "bytes.\n# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes %lld\n"
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
        "# TYPE process_virtual_memory_bytes gauge\n"
        "process_virtual_memory_bytes %llu\n"
        "# HELP process_start_time_seconds Start time of the process since "
        "unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds %.2f\n",
        (double)(utime + stime) / (double)ticks, rss * (long long)page, vsize,
        boot + (double)start / (double)ticks);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    long fds = -1; /* the directory's own descriptor */
    while (readdir(d))
      fds++;
    closedir(d);
    fds -= 2; /* . and .. */
    struct rlimit rl;
    lsmi_strbuf_printf(b,
                       "# HELP process_open_fds Number of open file "
                       "descriptors.\n# TYPE process_open_fds gauge\n"
                       "process_open_fds %ld\n",
                       fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      lsmi_strbuf_printf(b,
                         "# HELP process_max_fds Maximum number of open file "
                         "descriptors.\n# TYPE process_max_fds gauge\n"
                         "process_max_fds %llu\n",
                         (unsigned long long)rl.rlim_cur);
  }
}

char *lsmi_metrics_render(const lsmi_metrics_gauges_t *g) {
  snapshot_t c;
  take(&c);
  lsmi_strbuf_t b;
  lsmi_strbuf_init(&b, 8192);
  lsmi_strbuf_printf(&b,
                     "# HELP lsmi_build_info The version of the running "
                     "lsmi.\n# TYPE lsmi_build_info gauge\n"
                     "lsmi_build_info{version=\"%s\"} 1\n",
                     LSMI_VERSION);
  render_requests(&b, &c);
  render_jobs(&b, &c, g);
  render_disk(&b, g);
  render_process(&b);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}
