/*
 * test_metrics.c — server/metrics.c: counters by route and status, the
 * cumulative latency histogram, fits by outcome, upload bytes and the
 * gauges, in the Prometheus text format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void test_render(void **state) {
  (void)state;
  lsmi_metrics_request(LSMI_ROUTE_JOBS, 202, 0.002);
  lsmi_metrics_request(LSMI_ROUTE_JOBS, 202, 0.2);
  lsmi_metrics_request(LSMI_ROUTE_JOB, 404, 0.0001);
  lsmi_metrics_request(LSMI_ROUTE_NONE, 418, 20.0); /* other status, +Inf */
  lsmi_metrics_upload_bytes(1000);
  lsmi_metrics_upload_bytes(24);
  lsmi_metrics_fit(1.5, "succeeded");
  lsmi_metrics_fit(0.5, "cancelled");
  lsmi_metrics_gauges_t g = {.queue_depth = 3,
                             .running = 2,
                             .workers = 2,
                             .jobs_by_state = {3, 2, 10, 1, 4},
                             .datasets = 7};
  char *t = lsmi_metrics_render(&g);
  assert_non_null(t);
  const char *want[] = {
      "lsmi_http_requests_total{route=\"/v1/jobs\",status=\"202\"} 2\n",
      "lsmi_http_requests_total{route=\"/v1/jobs/{id}\",status=\"404\"} 1\n",
      "lsmi_http_requests_total{route=\"unmatched\",status=\"other\"} 1\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"0.001\"} 1\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"0.0025\"} 2\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"0.25\"} 3\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"10\"} 3\n",
      "lsmi_http_request_duration_seconds_bucket{le=\"+Inf\"} 4\n",
      "lsmi_http_request_duration_seconds_count 4\n",
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
