/*
 * test_metrics.c — server/metrics.c: counters by route, method and
 * status, the cumulative latency histogram, fits by outcome, upload bytes,
 * the gauges (the data directory's among them), the build's version and
 * the process's own figures, in the Prometheus text format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lsmi.h"
#include "metrics.h"

static void test_render(void **state) {
  (void)state;
  lsmi_metrics_request(LSMI_ROUTE_JOBS, "POST", 202, 0.002);
  lsmi_metrics_request(LSMI_ROUTE_JOBS, "POST", 202, 0.2);
  lsmi_metrics_request(LSMI_ROUTE_JOB, "GET", 404, 0.0001);
  lsmi_metrics_request(LSMI_ROUTE_JOB, "DELETE", 404, 0.0001);
  lsmi_metrics_request(LSMI_ROUTE_DATASETS, "POST", 507, 0.0001);
  /* other status and method, +Inf */
  lsmi_metrics_request(LSMI_ROUTE_NONE, "BREW", 418, 20.0);
  lsmi_metrics_upload_bytes(1000);
  lsmi_metrics_upload_bytes(24);
  lsmi_metrics_fit(1.5, "succeeded");
  lsmi_metrics_fit(0.5, "cancelled");
  lsmi_metrics_gauges_t g = {.queue_depth = 3,
                             .running = 2,
                             .workers = 2,
                             .jobs_by_state = {3, 2, 10, 1, 4},
                             .datasets = 7,
                             .dataset_bytes = 1000,
                             .result_bytes = 2000,
                             .store_bytes = 300,
                             .disk_free = 5000,
                             .disk_size = 9000};
  char *t = lsmi_metrics_render(&g);
  assert_non_null(t);
  const char *want[] = {
      "lsmi_http_requests_total{route=\"/v1/jobs\",method=\"POST\","
      "status=\"202\"} 2\n",
      "lsmi_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\","
      "status=\"404\"} 1\n",
      "lsmi_http_requests_total{route=\"/v1/jobs/{id}\",method=\"DELETE\","
      "status=\"404\"} 1\n",
      "lsmi_http_requests_total{route=\"/v1/datasets\",method=\"POST\","
      "status=\"507\"} 1\n",
      "lsmi_http_requests_total{route=\"unmatched\",method=\"other\","
      "status=\"other\"} 1\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"0.001\"} 3\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"0.0025\"} 4\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"0.25\"} 5\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"10\"} 5\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"+Inf\"} 6\n",
      "lsmi_http_request_duration_seconds_count 6\n",
      "lsmi_build_info{version=\"" LSMI_VERSION "\"} 1\n",
      "lsmi_data_dir_bytes{kind=\"datasets\"} 1000\n",
      "lsmi_data_dir_bytes{kind=\"results\"} 2000\n",
      "lsmi_data_dir_bytes{kind=\"store\"} 300\n",
      "lsmi_data_dir_free_bytes 5000\n",
      "lsmi_data_dir_size_bytes 9000\n",
      "# TYPE process_cpu_seconds_total counter\n",
      "# TYPE process_resident_memory_bytes gauge\n",
      "# TYPE process_start_time_seconds gauge\n",
      "# TYPE process_open_fds gauge\n",
      "lsmi_queue_depth 3\n",
      "lsmi_jobs_running 2\n",
      "lsmi_datasets 7\n",
      "lsmi_jobs{state=\"succeeded\"} 10\n",
      "lsmi_jobs{state=\"cancelled\"} 4\n",
      "lsmi_fit_seconds_sum 2.000000\n",
      "lsmi_fit_seconds_count 2\n",
      "lsmi_fits_total{outcome=\"succeeded\"} 1\n",
      "lsmi_fits_total{outcome=\"cancelled\"} 1\n",
      "lsmi_upload_bytes_total 1024\n",
      "# TYPE lsmi_http_request_duration_seconds histogram\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    if (strstr(t, want[i]) == NULL)
      fail_msg("missing line: %s\n--- got:\n%s", want[i], t);
  }
  /* The process's figures are this process's: it has run, holds memory,
   * started after 2020 and no later than now, and has descriptors open. */
  double cpu = -1, start = -1, rss = -1, fds = -1;
  const char *p;
  assert_non_null(p = strstr(t, "\nprocess_cpu_seconds_total "));
  cpu = strtod(p + 27, NULL);
  assert_non_null(p = strstr(t, "\nprocess_resident_memory_bytes "));
  rss = strtod(p + 31, NULL);
  assert_non_null(p = strstr(t, "\nprocess_start_time_seconds "));
  start = strtod(p + 28, NULL);
  assert_non_null(p = strstr(t, "\nprocess_open_fds "));
  fds = strtod(p + 18, NULL);
  assert_true(cpu >= 0 && cpu < 3600);
  assert_true(rss > 1e5);
  assert_true(start > 1.58e9 && start <= (double)time(NULL) + 1);
  assert_true(fds >= 3);
  /* every line is a comment or "name[{labels}] value" */
  for (char *line = t; *line;) {
    char *end = strchr(line, '\n');
    assert_non_null(end);
    if (line[0] != '#')
      assert_non_null(memchr(line, ' ', (size_t)(end - line)));
    line = end + 1;
  }
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_render),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
