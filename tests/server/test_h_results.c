/*
 * test_h_results.c — server/h_results.c through the transport
 * (harness.h): pages of a succeeded job's rows (split, sort, offset,
 * limit; JSON, CSV, NDJSON; X-Total-Count), the refusals (no such job, a
 * job not succeeded, bad query parameters), a result file the server
 * cannot read, and a store that fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "resfile.h"

enum { N = 5 };
static int32_t y[N] = {0, 1, 1, 0, 1};
static double cols[9][N];

/* Job job_ok of the default tenant, succeeded, with N rows per split; and
 * job_q, still queued. */
static int setup(void **state) {
  fx_t *f = fx_new(NULL);
  for (int k = 0; k < 9; k++)
    for (int i = 0; i < N; i++)
      cols[k][i] = (k + 1) * 0.5 - i * 0.25 * (k % 2 ? 1 : -1);
  lsmi_rows_t rows = ROWS_OVER(N, y, cols);
  lsmi_dataset_rec_t rec = {.id = "ds_a", .tenant = "default"}, ex;
  bool existed;
  assert_int_equal(lsmi_store_dataset_insert(f->store, &rec, &ex, &existed), 0);
  const char *ids[] = {"job_ok", "job_q"};
  for (int i = 0; i < 2; i++) {
    lsmi_job_new_t nj = {ids[i], "default", "ds_a", "{}",
                         "{}",   2e9,       NULL,   NULL};
    char existing[64];
    bool replayed;
    assert_int_equal(lsmi_store_job_create(f->store, &nj, existing, &replayed),
                     0);
  }
  assert_int_equal(lsmi_store_job_start(f->store, "job_ok", 3e9), 0);
  assert_int_equal(lsmi_store_job_finish(f->store, "job_ok", LSMI_JOB_SUCCEEDED,
                                         4e9, NULL, "{}", "{}", NULL, 0),
                   0);
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(f->dir, "job_ok", "train", &rows, &err),
                   0);
  assert_int_equal(lsmi_resfile_write(f->dir, "job_ok", "val", &rows, &err), 0);
  *state = f;
  return 0;
}

static const char url[] = "/v1/jobs/job_ok/results";

static void test_pages(void **state) {
  fx_t *f = *state;
  assert_int_equal(fx_get(f, url, NULL), 200);
  assert_string_equal(fx_header(f, "X-Total-Count"), "5");
  assert_string_equal(fx_str(f, "split"), "val");
  json_t *rows = json_object_get(f->json, "rows");
  assert_int_equal(json_array_size(rows), N);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(rows, 1), "y")), 1);
  /* u2 grows with the index: descending puts the last first. */
  const char *q[] = {"split", "train", "sort", "-u2", "offset",
                     "1",     "limit", "2",    NULL};
  assert_int_equal(fx_get(f, url, q), 200);
  rows = json_object_get(f->json, "rows");
  assert_int_equal(json_array_size(rows), 2);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(rows, 0), "index")), 3);
  assert_string_equal(fx_str(f, "sort"), "-u2");
  const char *csv[] = {"format", "csv", "limit", "2", NULL};
  assert_int_equal(fx_get(f, url, csv), 200);
  assert_string_equal(fx_header(f, "Content-Type"), "text/csv; charset=utf-8");
  assert_memory_equal(f->conn.resp.body,
                      "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2\n0,val,0,", 48);
  const char *nd[] = {"format", "ndjson", "order", "desc", NULL};
  assert_int_equal(fx_get(f, url, nd), 200);
  assert_string_equal(fx_header(f, "Content-Type"), "application/x-ndjson");
  assert_memory_equal(f->conn.resp.body, "{\"index\":4,", 11);
}

static void test_refusals(void **state) {
  fx_t *f = *state;
  assert_int_equal(fx_get(f, "/v1/jobs/job_nope/results", NULL), 404);
  fx_problem(f, 404, NULL);
  assert_int_equal(fx_get(f, "/v1/jobs/job_q/results", NULL), 409);
  assert_non_null(strstr(fx_problem(f, 409, NULL), "is queued"));
  const char *bad[][3] = {{"split", "test", "split"},
                          {"sort", "zz", "sort"},
                          {"order", "up", "sort"},
                          {"format", "xml", "format"},
                          {"limit", "0", "limit"}};
  for (int i = 0; i < 5; i++) {
    const char *q[] = {bad[i][0], bad[i][1], NULL};
    assert_int_equal(fx_get(f, url, q), 400);
    fx_problem(f, 400, bad[i][2]);
  }
}

/* A succeeded job whose file the server cannot read is the server's
 * fault (500), whatever the file's trouble. */
static void test_unreadable_file(void **state) {
  fx_t *f = *state;
  char p[160];
  fx_path(f, "results/job_ok.val", p, sizeof p);
  assert_int_equal(truncate(p, 20), 0);
  assert_int_equal(fx_get(f, url, NULL), 500);
  const char *detail = fx_problem(f, 500, NULL);
  assert_non_null(strstr(detail, "job_ok"));
  assert_null(strstr(detail, f->dir)); /* no server path */
  assert_int_equal(unlink(p), 0);
  assert_int_equal(fx_get(f, url, NULL), 500);
  const char *train[] = {"split", "train", NULL};
  assert_int_equal(fx_get(f, url, train), 200);
}

static void test_store_fails(void **state) {
  fx_t *f = *state;
  fx_sql(f, "ALTER TABLE jobs RENAME TO jobs_gone");
  assert_int_equal(fx_get(f, url, NULL), 500);
  assert_string_equal(fx_problem(f, 500, NULL), "the store failed");
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_pages),
      T(test_refusals),
      T(test_unreadable_file),
      T(test_store_fails),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
