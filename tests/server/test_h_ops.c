/*
 * test_h_ops.c — server/h_ops.c through the transport (harness.h):
 * /healthz, /readyz (ready, then not while draining), /metrics (the
 * exposition with the caller's gauges) and the embedded OpenAPI document.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

static void test_health_and_ready(void **state) {
  fx_t *f = *state;
  assert_int_equal(fx_get(f, "/healthz", NULL), 200);
  assert_string_equal(fx_str(f, "status"), "ok");
  assert_int_equal(fx_get(f, "/readyz", NULL), 200);
  assert_true(json_is_true(json_object_get(f->json, "ready")));
  assert_true(json_is_true(json_object_get(f->json, "store")));
  assert_int_equal(json_integer_value(json_object_get(f->json, "workers")),
                   f->cfg.workers);
  lsmi_sched_shutdown(f->sched);
  assert_int_equal(fx_get(f, "/readyz", NULL), 503);
  assert_false(json_is_true(json_object_get(f->json, "ready")));
  assert_true(json_is_true(json_object_get(f->json, "draining")));
  assert_int_equal(fx_get(f, "/healthz", NULL), 200); /* still alive */
}

static void test_metrics(void **state) {
  fx_t *f = *state;
  fx_upload(f, 200, 1);
  assert_int_equal(fx_get(f, "/metrics", NULL), 200);
  assert_string_equal(fx_header(f, "Content-Type"),
                      "text/plain; version=0.0.4; charset=utf-8");
  const char *text = f->conn.resp.body;
  assert_non_null(strstr(text, "lsmi_datasets 1\n"));
  assert_non_null(strstr(text, "lsmi_queue_depth 0\n"));
  assert_non_null(strstr(text, "lsmi_workers 2\n"));
  assert_non_null(strstr(text, "lsmi_upload_bytes_total "));
}

static void test_openapi(void **state) {
  fx_t *f = *state;
  assert_int_equal(fx_get(f, "/v1/openapi.yaml", NULL), 200);
  assert_string_equal(fx_header(f, "Content-Type"), "application/yaml");
  assert_memory_equal(f->conn.resp.body, "openapi: 3.1", 12);
  struct stat sb; /* the suites run from the repository's root */
  if (stat("proto/openapi.yaml", &sb) == 0)
    assert_int_equal(f->conn.resp.len, sb.st_size);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_health_and_ready),
      T(test_metrics),
      T(test_openapi),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
