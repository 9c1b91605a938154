/*
 * test_router.c — path matching of server/router.c: every route, ids with
 * bad characters or lengths, trailing slashes, methods and Allow values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "router.h"

static void test_fixed_routes(void **state) {
  (void)state;
  char id[LSMI_ROUTER_ID_MAX];
  assert_int_equal(lsmi_router_match("/healthz", id), LSMI_ROUTE_HEALTHZ);
  assert_int_equal(lsmi_router_match("/readyz", id), LSMI_ROUTE_READYZ);
  assert_int_equal(lsmi_router_match("/metrics", id), LSMI_ROUTE_METRICS);
  assert_int_equal(lsmi_router_match("/v1/openapi.yaml", id),
                   LSMI_ROUTE_OPENAPI);
  assert_int_equal(lsmi_router_match("/v1/datasets", id),
                   LSMI_ROUTE_DATASETS);
  assert_int_equal(lsmi_router_match("/v1/datasets/", id),
                   LSMI_ROUTE_DATASETS);
  assert_int_equal(lsmi_router_match("/v1/jobs", id), LSMI_ROUTE_JOBS);
  assert_int_equal(lsmi_router_match("/", id), LSMI_ROUTE_UI);
  assert_int_equal(lsmi_router_match("/ui/app.js", id), LSMI_ROUTE_UI);
  assert_int_equal(lsmi_router_match("/ui/../lsmi.db", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/ui/app", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/ui/", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/params", id), LSMI_ROUTE_PARAMS);
  assert_int_equal(lsmi_router_match("", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match(NULL, id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobsx", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/datasetsfoo", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/healthzz", id), LSMI_ROUTE_NONE);
}

static void test_id_routes(void **state) {
  (void)state;
  char id[LSMI_ROUTER_ID_MAX];
  assert_int_equal(lsmi_router_match("/v1/jobs/job_abc-1", id),
                   LSMI_ROUTE_JOB);
  assert_string_equal(id, "job_abc-1");
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results", id),
                   LSMI_ROUTE_JOB_RESULTS);
  assert_string_equal(id, "job_1");
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results/", id),
                   LSMI_ROUTE_JOB_RESULTS);
  assert_int_equal(lsmi_router_match("/v1/datasets/ds_9", id),
                   LSMI_ROUTE_DATASET);
  assert_string_equal(id, "ds_9");
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/other", id),
                   LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results/x", id),
                   LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results/val/12", id),
                   LSMI_ROUTE_JOB_SAMPLE);
  assert_string_equal(id, "job_1");
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results/train/0", id),
                   LSMI_ROUTE_JOB_SAMPLE);
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results/test/0", id),
                   LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results/val/-1", id),
                   LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/results/val/", id),
                   LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/aggregates", id),
                   LSMI_ROUTE_JOB_AGGREGATES);
  assert_int_equal(lsmi_router_match("/v1/jobs/job_1/events", id),
                   LSMI_ROUTE_JOB_EVENTS);
  assert_int_equal(lsmi_router_match("/v1/datasets/a/b", id),
                   LSMI_ROUTE_NONE);
}

static void test_bad_ids(void **state) {
  (void)state;
  char id[LSMI_ROUTER_ID_MAX];
  assert_int_equal(lsmi_router_match("/v1/jobs/..", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs/a.b", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs/a%20b", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/datasets/x'", id), LSMI_ROUTE_NONE);
  assert_int_equal(lsmi_router_match("/v1/jobs//results", id),
                   LSMI_ROUTE_NONE);
  char longp[200] = "/v1/jobs/";
  memset(longp + 9, 'a', LSMI_ROUTER_ID_MAX);
  longp[9 + LSMI_ROUTER_ID_MAX] = '\0';
  assert_int_equal(lsmi_router_match(longp, id), LSMI_ROUTE_NONE);
  longp[9 + LSMI_ROUTER_ID_MAX - 1] = '\0'; /* 63 characters: fits */
  assert_int_equal(lsmi_router_match(longp, id), LSMI_ROUTE_JOB);
  assert_int_equal(strlen(id), LSMI_ROUTER_ID_MAX - 1);
}

static void test_methods(void **state) {
  (void)state;
  assert_true(lsmi_router_allows(LSMI_ROUTE_JOBS, "POST"));
  assert_true(lsmi_router_allows(LSMI_ROUTE_JOBS, "GET"));
  assert_true(lsmi_router_allows(LSMI_ROUTE_JOBS, "HEAD"));
  assert_false(lsmi_router_allows(LSMI_ROUTE_JOBS, "DELETE"));
  assert_false(lsmi_router_allows(LSMI_ROUTE_JOBS, "POS"));
  assert_true(lsmi_router_allows(LSMI_ROUTE_JOB, "DELETE"));
  assert_false(lsmi_router_allows(LSMI_ROUTE_JOB, "POST"));
  assert_false(lsmi_router_allows(LSMI_ROUTE_JOB_RESULTS, "DELETE"));
  assert_false(lsmi_router_allows(LSMI_ROUTE_NONE, "GET"));
  assert_string_equal(lsmi_router_allow(LSMI_ROUTE_DATASET), "GET, DELETE");
  assert_string_equal(lsmi_router_name(LSMI_ROUTE_JOB_RESULTS),
                      "/v1/jobs/{id}/results");
  assert_true(lsmi_router_needs_auth(LSMI_ROUTE_DATASETS));
  assert_false(lsmi_router_needs_auth(LSMI_ROUTE_OPENAPI));
  assert_false(lsmi_router_needs_auth(LSMI_ROUTE_METRICS));
  assert_true(lsmi_router_needs_auth(LSMI_ROUTE_JOB_EVENTS));
  assert_false(lsmi_router_needs_auth(LSMI_ROUTE_UI));
  assert_false(lsmi_router_needs_auth(LSMI_ROUTE_PARAMS));
}

/* Each route knows its query parameters; results take a range on every
 * column. */
static void test_query_names(void **state) {
  (void)state;
  assert_true(lsmi_router_query_known(LSMI_ROUTE_JOBS, "GET", "state"));
  assert_false(lsmi_router_query_known(LSMI_ROUTE_JOBS, "POST", "state"));
  assert_false(lsmi_router_query_known(LSMI_ROUTE_JOBS, "GET", "dataset_id"));
  assert_true(lsmi_router_query_known(LSMI_ROUTE_DATASETS, "HEAD", "limit"));
  assert_true(lsmi_router_query_known(LSMI_ROUTE_JOB_RESULTS, "GET", "s_min"));
  assert_true(
      lsmi_router_query_known(LSMI_ROUTE_JOB_RESULTS, "GET", "u2_sd_max"));
  assert_false(lsmi_router_query_known(LSMI_ROUTE_JOB_RESULTS, "GET", "min_s"));
  assert_false(lsmi_router_query_known(LSMI_ROUTE_JOB_RESULTS, "GET", "_min"));
  assert_true(lsmi_router_query_known(LSMI_ROUTE_JOB_AGGREGATES, "GET", "bins"));
  assert_false(lsmi_router_query_known(LSMI_ROUTE_HEALTHZ, "GET", "x"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixed_routes),
      cmocka_unit_test(test_id_routes),
      cmocka_unit_test(test_bad_ids),
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_query_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
