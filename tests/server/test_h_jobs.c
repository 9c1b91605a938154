/*
 * test_h_jobs.c — server/h_jobs.c through the transport (harness.h): a job
 * submitted (202, queued, every parameter filled in), read and listed (by
 * state), the Idempotency-Key (replay, conflict, bad keys), the refusals
 * (a body that is no job, an unknown dataset, a full queue), cancelling a
 * queued job and a running one (its live progress shown meanwhile), and a
 * store that fails under each endpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

static const char *const json_ct[] = {"Content-Type", "application/json", NULL};

/* POST /v1/jobs {dataset_id, params} with an optional Idempotency-Key. */
static int submit(fx_t *f, const char *dataset_id, const char *params,
                  const char *key) {
  char body[512];
  snprintf(body, sizeof body, "{\"dataset_id\": \"%s\", \"params\": %s}",
           dataset_id, params);
  const char *hd[] = {"Content-Type", "application/json", "Idempotency-Key",
                      key, NULL};
  if (key == NULL)
    hd[2] = NULL;
  return fx_request(f, "POST", "/v1/jobs", NULL, hd, body, strlen(body));
}

static const char fast[] =
    "{\"epochs_discriminator\": 2, \"epochs_entropy\": 2, \"threads\": 1}";
/* A fit long enough to be caught running (it is always cancelled). */
static const char slow[] = "{\"epochs_discriminator\": 10000, "
                           "\"epochs_entropy\": 10000, \"threads\": 1}";

static void test_submit_get_list(void **state) {
  fx_t *f = *state;
  char ds[64], id[64], loc[128];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 200, 1));
  assert_int_equal(submit(f, ds, fast, NULL), 202);
  snprintf(id, sizeof id, "%s", fx_str(f, "id"));
  snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
  assert_string_equal(fx_header(f, "Location"), loc);
  assert_null(fx_header(f, "Idempotent-Replayed"));
  assert_string_equal(fx_str(f, "state"), "queued");
  assert_string_equal(fx_str(f, "dataset_id"), ds);
  json_t *params = json_object_get(f->json, "params");
  size_t nparams = 0;
  lsmi_params_table(&nparams); /* every parameter, defaults filled in */
  assert_int_equal(json_object_size(params), nparams);
  assert_int_equal(json_integer_value(json_object_get(params, "hidden")), 64);
  assert_false(json_is_true(json_object_get(f->json, "cancel_requested")));
  int q, r;
  lsmi_sched_counts(f->sched, &q, &r);
  assert_int_equal(q, 1);
  assert_int_equal(fx_get(f, loc, NULL), 200);
  assert_string_equal(fx_str(f, "id"), id);
  assert_int_equal(fx_get(f, "/v1/jobs", NULL), 200);
  assert_int_equal(json_integer_value(json_object_get(f->json, "total")), 1);
  const char *queued[] = {"state", "queued", NULL};
  assert_int_equal(fx_get(f, "/v1/jobs", queued), 200);
  assert_int_equal(json_integer_value(json_object_get(f->json, "total")), 1);
  const char *running[] = {"state", "running", NULL};
  assert_int_equal(fx_get(f, "/v1/jobs", running), 200);
  assert_int_equal(json_integer_value(json_object_get(f->json, "total")), 0);
  const char *bad[] = {"state", "done", NULL};
  assert_int_equal(fx_get(f, "/v1/jobs", bad), 400);
  fx_problem(f, 400, "state");
  assert_int_equal(fx_get(f, "/v1/jobs/job_nope", NULL), 404);
  assert_string_equal(fx_problem(f, 404, NULL), "no job 'job_nope'");
}

static void test_idempotency(void **state) {
  fx_t *f = *state;
  char ds[64], id[64];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 200, 1));
  assert_int_equal(submit(f, ds, fast, "k-1"), 202);
  snprintf(id, sizeof id, "%s", fx_str(f, "id"));
  assert_int_equal(submit(f, ds, fast, "k-1"), 202);
  assert_string_equal(fx_str(f, "id"), id);
  assert_string_equal(fx_header(f, "Idempotent-Replayed"), "true");
  assert_int_equal(submit(f, ds, "{\"seed\": 5}", "k-1"), 409);
  assert_non_null(strstr(fx_problem(f, 409, "Idempotency-Key"), id));
  assert_int_equal(submit(f, ds, fast, ""), 400);
  fx_problem(f, 400, "Idempotency-Key");
  char longkey[202];
  memset(longkey, 'k', 201);
  longkey[201] = '\0';
  assert_int_equal(submit(f, ds, fast, longkey), 400);
  int q, r;
  lsmi_sched_counts(f->sched, &q, &r);
  assert_int_equal(q, 1); /* replays took no place in the queue */
}

static void test_refusals(void **state) {
  (void)state;
  const char *flags[] = {"--queue-size", "1", "--retry-after", "3", NULL};
  fx_t *f = fx_new(flags);
  char ds[64];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 200, 1));
  assert_int_equal(submit(f, "ds_missing", fast, NULL), 422);
  assert_string_equal(fx_problem(f, 422, "dataset_id"),
                      "no dataset 'ds_missing'");
  assert_int_equal(submit(f, ds, "{\"epochs_entropy\": 0}", NULL), 422);
  fx_problem(f, 422, "params.epochs_entropy");
  assert_int_equal(submit(f, ds, "{\"nope\": 1}", NULL), 422);
  fx_problem(f, 422, "params.nope");
  const char list[] = "[]";
  assert_int_equal(fx_request(f, "POST", "/v1/jobs", NULL, json_ct, list, 2),
                   422);
  assert_int_equal(submit(f, ds, fast, NULL), 202);
  assert_int_equal(submit(f, ds, fast, NULL), 429);
  assert_string_equal(fx_header(f, "Retry-After"), "3");
  /* A refused job gives its reserved place back. */
  assert_int_equal(submit(f, "ds_missing", fast, NULL), 429);
  fx_free(f);
}

static void test_cancel_queued(void **state) {
  fx_t *f = *state;
  char ds[64], url[128];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 200, 1));
  assert_int_equal(submit(f, ds, fast, NULL), 202);
  snprintf(url, sizeof url, "/v1/jobs/%s", fx_str(f, "id"));
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 202);
  assert_string_equal(fx_str(f, "state"), "cancelled");
  int q, r;
  lsmi_sched_counts(f->sched, &q, &r);
  assert_int_equal(q, 0);
  /* Cancelled, it is finished: the next DELETE removes it. */
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 204);
  assert_int_equal(fx_get(f, url, NULL), 404);
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 404);
  assert_int_equal(
      fx_request(f, "DELETE", "/v1/jobs/job_nope", NULL, NULL, NULL, 0), 404);
}

static bool job_running(fx_t *f, const char *url) {
  return fx_get(f, url, NULL) == 200 && !strcmp(fx_str(f, "state"), "running");
}

static bool job_in(fx_t *f, const char *url, const char *state) {
  return fx_get(f, url, NULL) == 200 && !strcmp(fx_str(f, "state"), state);
}

/* A running job shows its live progress; DELETE asks it to stop. */
static void test_cancel_running(void **state) {
  fx_t *f = *state;
  char ds[64], url[128];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 300, 1));
  assert_int_equal(submit(f, ds, slow, NULL), 202);
  snprintf(url, sizeof url, "/v1/jobs/%s", fx_str(f, "id"));
  RUN_UNTIL(&f->loop, job_running(f, url));
  json_t *progress = json_object_get(f->json, "progress");
  assert_int_equal(json_integer_value(json_object_get(progress, "epochs")),
                   20000);
  assert_false(json_is_true(json_object_get(f->json, "cancel_requested")));
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 202);
  assert_true(json_is_true(json_object_get(f->json, "cancel_requested")) ||
              !strcmp(fx_str(f, "state"), "cancelled"));
  RUN_UNTIL(&f->loop, job_in(f, url, "cancelled"));
}

static void test_store_fails(void **state) {
  bool own = false;
  fx_t *f = *state;
  char ds[64];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 200, 1));
  assert_int_equal(submit(f, ds, fast, "k-1"), 202);
  fx_sql(f, "ALTER TABLE jobs RENAME TO jobs_gone;"
            "ALTER TABLE idempotency RENAME TO idempotency_gone");
  assert_int_equal(fx_get(f, "/v1/jobs/job_x", NULL), 500); /* not 404 */
  assert_string_equal(fx_problem(f, 500, NULL), "the store failed");
  assert_int_equal(fx_get(f, "/v1/jobs", NULL), 500);
  assert_int_equal(
      fx_request(f, "DELETE", "/v1/jobs/job_x", NULL, NULL, NULL, 0), 500);
  assert_int_equal(submit(f, ds, fast, "k-1"), 500); /* the key's check */
  assert_int_equal(submit(f, ds, fast, NULL), 500);  /* the insert */
  int q, r;
  lsmi_sched_counts(f->sched, &q, &r);
  assert_int_equal(q, 1); /* and no place was kept */
  assert_int_equal(lsmi_sched_reserve(f->sched, "default", &own), 0);
  lsmi_sched_unreserve(f->sched, "default");
}

/* A job whose memory estimate exceeds --max-job-memory: 422, naming what
 * it needs; within it, accepted. */
static void test_memory_admission(void **state) {
  (void)state;
  const char *flags[] = {"--max-memory", "64M", NULL};
  fx_t *f = fx_new(flags);
  char ds[64];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 200, 1));
  assert_int_equal(submit(f, ds, fast, NULL), 202);
  assert_int_equal(
      submit(f, ds, "{\"hidden\": 4096, \"components\": 256}", NULL), 422);
  const char *d = fx_problem(f, 422, "params");
  assert_non_null(strstr(d, "--max-job-memory 64.0 MiB"));
  assert_non_null(strstr(d, "hidden 4096, components 256"));
  int q, r;
  lsmi_sched_counts(f->sched, &q, &r);
  assert_int_equal(q + r, 1); /* the refused one took no place */
  fx_free(f);
}

/* Cancelling: a store that cannot record the cancel answers 503 (not a
 * 202 that does nothing); a job the store says runs, that runs nowhere,
 * is cancelled at once; a job whose end the store has not taken yet shows
 * that end and cannot be cancelled. */
static void test_cancel_truth(void **state) {
  fx_t *f = *state;
  char ds[64], url[128], id[64];
  snprintf(ds, sizeof ds, "%s", fx_upload(f, 300, 1));
  assert_int_equal(submit(f, ds, slow, NULL), 202);
  snprintf(id, sizeof id, "%s", fx_str(f, "id"));
  snprintf(url, sizeof url, "/v1/jobs/%s", id);
  RUN_UNTIL(&f->loop, job_running(f, url));
  fx_sql(f, "CREATE TRIGGER full BEFORE UPDATE ON jobs BEGIN SELECT "
            "RAISE(ABORT, 'database or disk is full'); END;");
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 503);
  assert_non_null(strstr(fx_problem(f, 503, NULL), "could not record"));
  assert_non_null(fx_header(f, "Retry-After"));
  assert_true(job_running(f, url)); /* nothing happened */
  fx_sql(f, "DROP TRIGGER full;"
            "CREATE TRIGGER full BEFORE UPDATE OF state ON jobs WHEN "
            "NEW.state != 'running' BEGIN SELECT RAISE(ABORT, 'database or "
            "disk is full'); END;");
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 202);
  /* The fit stops; the store refuses its end; the API shows the truth. */
  RUN_UNTIL(&f->loop, lsmi_sched_ended(f->sched, id, NULL) == 0);
  assert_int_equal(fx_get(f, url, NULL), 200);
  assert_string_equal(fx_str(f, "state"), "cancelled");
  assert_true(json_is_false(json_object_get(f->json, "recorded")));
  assert_true(json_is_string(json_object_get(f->json, "finished_at")));
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 409);
  assert_int_equal(fx_get(f, "/metrics", NULL), 200);
  const char *m = f->conn.resp.body;
  assert_non_null(strstr(m, "lsmi_jobs_running 0\n"));
  assert_non_null(strstr(m, "lsmi_jobs{state=\"running\"} 0\n"));
  assert_non_null(strstr(m, "lsmi_jobs{state=\"cancelled\"} 1\n"));
  assert_non_null(strstr(m, "lsmi_jobs_unrecorded 1\n"));
  fx_sql(f, "DROP TRIGGER full");
  RUN_UNTIL(&f->loop, lsmi_sched_ended(f->sched, id, NULL) != 0);
  assert_int_equal(fx_get(f, url, NULL), 200);
  assert_string_equal(fx_str(f, "state"), "cancelled");
  assert_null(json_object_get(f->json, "recorded"));
  /* A job the store says runs but that runs nowhere here (a store copied
   * from a daemon that died): cancelled at once. */
  assert_int_equal(submit(f, ds, fast, NULL), 202);
  snprintf(id, sizeof id, "%s", fx_str(f, "id"));
  snprintf(url, sizeof url, "/v1/jobs/%s", id);
  RUN_UNTIL(&f->loop, job_in(f, url, "succeeded"));
  char sql[256];
  snprintf(sql, sizeof sql, "UPDATE jobs SET state = 'running' WHERE id = '%s'",
           id);
  fx_sql(f, sql);
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 202);
  assert_string_equal(fx_str(f, "state"), "cancelled");
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_submit_get_list),
      T(test_idempotency),
      cmocka_unit_test(test_refusals),
      T(test_cancel_queued),
      T(test_cancel_running),
      T(test_store_fails),
      cmocka_unit_test(test_memory_admission),
      T(test_cancel_truth),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
