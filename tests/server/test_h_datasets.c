/*
 * test_h_datasets.c — server/h_datasets.c through the transport
 * (harness.h): an upload (201, its file in datasets/, nothing left in
 * tmp/), the same bytes again (200, the same dataset), the refusals of the
 * query and the body (400, 413, 415, 422), the keys and the val split the
 * query names (a fraction that cannot apply is a 422), every way storing
 * an upload can fail (no temp file, a full disk, the rename, the row; the
 * store failing while looking for an earlier upload, which once went on as
 * if there were none), the list, one dataset, and deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

static int upload(fx_t *f, const char *const *query, const void *body,
                  size_t len) {
  return fx_request(f, "POST", "/v1/datasets", query, NULL, body, len);
}

static void test_upload(void **state) {
  fx_t *f = *state;
  size_t len;
  unsigned char *npz = fx_npz(f, 200, 1, &len);
  const char *named[] = {"name", "demo", NULL};
  assert_int_equal(upload(f, named, npz, len), 201);
  char id[64], loc[128];
  snprintf(id, sizeof id, "%s", fx_str(f, "id"));
  snprintf(loc, sizeof loc, "/v1/datasets/%s", id);
  assert_string_equal(fx_header(f, "Location"), loc);
  assert_string_equal(fx_str(f, "name"), "demo");
  assert_string_equal(fx_str(f, "format"), "npz");
  assert_int_equal(strlen(fx_str(f, "sha256")), 64);
  assert_int_equal(json_integer_value(json_object_get(f->json, "bytes")), len);
  json_t *train = json_object_get(json_object_get(f->json, "splits"), "train");
  assert_int_equal(json_integer_value(json_object_get(train, "n")), 160);
  assert_int_equal(fx_entries(f, "datasets"), 1);
  assert_int_equal(fx_entries(f, "tmp"), 0);
  /* The same bytes again: the same dataset, nothing new stored. */
  assert_int_equal(upload(f, NULL, npz, len), 200);
  assert_string_equal(fx_str(f, "id"), id);
  assert_string_equal(fx_header(f, "Location"), loc);
  assert_int_equal(fx_entries(f, "datasets"), 1);
  assert_int_equal(fx_entries(f, "tmp"), 0);
  free(npz);
  assert_int_equal(fx_get(f, loc, NULL), 200);
  assert_string_equal(fx_str(f, "name"), "demo");
  fx_upload(f, 200, 2); /* another, unnamed: named by its id */
  assert_string_equal(fx_str(f, "name"), fx_str(f, "id"));
  const char *page[] = {"limit", "1", NULL};
  assert_int_equal(fx_get(f, "/v1/datasets", page), 200);
  assert_int_equal(json_integer_value(json_object_get(f->json, "total")), 2);
  assert_int_equal(json_array_size(json_object_get(f->json, "datasets")), 1);
}

static void test_upload_refusals(void **state) {
  (void)state;
  const char *flags[] = {"--max-upload", "64K", NULL};
  fx_t *f = fx_new(flags);
  size_t len;
  unsigned char *npz = fx_npz(f, 200, 1, &len);
  assert_int_equal(upload(f, NULL, "", 0), 400);
  assert_non_null(strstr(fx_problem(f, 400, "body"), "empty body"));
  char longname[202];
  memset(longname, 'n', 201);
  longname[201] = '\0';
  const char *q1[] = {"name", longname, NULL};
  assert_int_equal(upload(f, q1, npz, len), 400);
  fx_problem(f, 400, "name");
  const char *q2[] = {"name", "\xff\xfe", NULL};
  assert_int_equal(upload(f, q2, npz, len), 400);
  fx_problem(f, 400, "name");
  const char *bad_vf[] = {"1.5", "0", "x", "0.2x"};
  for (int i = 0; i < 4; i++) {
    const char *q3[] = {"val_fraction", bad_vf[i], NULL};
    assert_int_equal(upload(f, q3, npz, len), 400);
    fx_problem(f, 400, "val_fraction");
  }
  /* A fraction that cannot apply: the file has its own val split. */
  const char *q4[] = {"val_fraction", "0.5", NULL};
  assert_int_equal(upload(f, q4, npz, len), 422);
  assert_non_null(strstr(fx_problem(f, 422, "val_fraction"),
                         "val_fraction 0.5 cannot apply: the file has its own "
                         "val split"));
  const char *q5[] = {"x1", "", NULL};
  assert_int_equal(upload(f, q5, npz, len), 400);
  fx_problem(f, 400, "x1");
  const char *q6[] = {"y", "\xff", NULL};
  assert_int_equal(upload(f, q6, npz, len), 400);
  fx_problem(f, 400, "y");
  const char junk[] = "\x00\x01\x02garbage garbage garbage";
  assert_int_equal(upload(f, NULL, junk, sizeof junk), 415);
  const char zip[] = "PK\x03\x04 truncated";
  assert_int_equal(upload(f, NULL, zip, sizeof zip - 1), 400);
  const char ragged[] = "{\"train\": {\"x1\": [[1]], \"x2\": [[1], [2]], "
                        "\"y\": [0]}}";
  assert_int_equal(upload(f, NULL, ragged, sizeof ragged - 1), 422);
  /* Too large: announced (refused at once) or found on the way. */
  static char big[100 * 1024];
  const char *announced[] = {"Content-Length", "102400", NULL};
  assert_int_equal(
      fx_request(f, "POST", "/v1/datasets", NULL, announced, big, sizeof big),
      413);
  fx_problem(f, 413, "body");
  assert_int_equal(upload(f, NULL, big, sizeof big), 413);
  assert_non_null(strstr(fx_problem(f, 413, "body"), "--max-upload"));
  assert_int_equal(fx_entries(f, "tmp"), 0);
  free(npz);
  fx_free(f);
}

/* The query says which array is which; a file without val gets one drawn,
 * and the record says with which fraction (0: the file's own). */
static void test_upload_keys_and_val(void **state) {
  fx_t *f = *state;
  size_t len;
  unsigned char *b = fx_file("tests/data/user_named.npz", &len);
  assert_int_equal(upload(f, NULL, b, len), 422);
  assert_non_null(strstr(fx_problem(f, 422, "train_x1"),
                         "the file holds feat_a, feat_b, label: say which "
                         "array is which with --x1 KEY --x2 KEY --y KEY "
                         "(upload: ?x1=KEY&x2=KEY&y=KEY)"));
  const char *keys[] = {"x1",    "feat_a",       "x2",  "feat_b", "y",
                        "label", "val_fraction", "0.5", NULL};
  assert_int_equal(upload(f, keys, b, len), 201);
  json_t *splits = json_object_get(f->json, "splits");
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(splits, "val"), "n")),
      9);
  assert_true(json_number_value(json_object_get(f->json, "val_fraction")) ==
              0.5);
  free(b);
  b = fx_file("tests/data/user_labels_str.csv", &len);
  assert_int_equal(upload(f, NULL, b, len), 201);
  assert_true(json_number_value(json_object_get(f->json, "val_fraction")) == 0);
  assert_int_equal(json_integer_value(json_object_get(f->json, "classes")), 3);
  free(b);
}

/* The regression: a store failing while looking for an earlier upload of
 * the same bytes is answered (500), not taken for "there is none". */
static void test_store_fails_on_lookup(void **state) {
  fx_t *f = *state;
  fx_sql(f, "ALTER TABLE datasets RENAME TO datasets_gone");
  const char junk[] = "\x00\x01\x02garbage garbage garbage";
  assert_int_equal(upload(f, NULL, junk, sizeof junk), 500); /* not 415 */
  assert_non_null(strstr(fx_problem(f, 500, NULL), "earlier upload"));
  size_t len;
  unsigned char *npz = fx_npz(f, 200, 1, &len);
  assert_int_equal(upload(f, NULL, npz, len), 500);
  free(npz);
  assert_int_equal(fx_entries(f, "datasets"), 0);
  assert_int_equal(fx_entries(f, "tmp"), 0);
  assert_int_equal(fx_get(f, "/v1/datasets", NULL), 500);
  assert_string_equal(fx_problem(f, 500, NULL), "the store failed");
  assert_int_equal(fx_get(f, "/v1/datasets/ds_x", NULL), 500); /* not 404 */
  assert_int_equal(
      fx_request(f, "DELETE", "/v1/datasets/ds_x", NULL, NULL, NULL, 0), 500);
}

static void test_no_temp_file(void **state) {
  fx_t *f = *state;
  char p[128];
  fx_path(f, "tmp", p, sizeof p);
  assert_int_equal(rmdir(p), 0);
  assert_int_equal(upload(f, NULL, "abc", 3), 500);
  assert_non_null(strstr(fx_problem(f, 500, NULL), "cannot create a temp"));
}

/* The upload's temp file on a full disk: /dev/full under its descriptor. */
static void disk_full(lsmi_req_t *r) {
  int full = open("/dev/full", O_WRONLY);
  assert_true(full >= 0);
  assert_true(dup2(full, r->dur.fd) >= 0);
  close(full);
}

/* Uploads a good file that cannot be stored: `status` with `why`, and
 * nothing left behind in tmp/ or datasets/. */
static void assert_upload_fails_with(fx_t *f, int status, const char *why) {
  size_t len;
  unsigned char *npz = fx_npz(f, 200, 1, &len);
  assert_int_equal(upload(f, NULL, npz, len), status);
  free(npz);
  assert_non_null(strstr(fx_problem(f, status, NULL), why));
  assert_int_equal(fx_entries(f, "tmp"), 0);
  assert_true(fx_entries(f, "datasets") <= 0); /* -1: no such directory */
}

static void assert_upload_fails(fx_t *f, const char *why) {
  assert_upload_fails_with(f, 500, why);
}

/* A full disk is no server fault: 507 Insufficient Storage. */
static void test_disk_full(void **state) {
  fx_t *f = *state;
  fx_after_first = disk_full;
  assert_upload_fails_with(f, 507, "could not store the upload: No space");
}

static void test_rename_fails(void **state) {
  fx_t *f = *state;
  char p[128];
  fx_path(f, "datasets", p, sizeof p);
  assert_int_equal(rmdir(p), 0);
  assert_upload_fails(f, "could not store");
}

static void test_record_fails(void **state) {
  fx_t *f = *state;
  fx_sql(f, "CREATE TRIGGER no_rows BEFORE INSERT ON datasets "
            "BEGIN SELECT RAISE(ABORT, 'no'); END");
  assert_upload_fails(f, "could not record"); /* no file without a row */
}

/* Checking an upload within the memory budget: a JSON file whose check
 * would exceed --max-job-memory is refused before it is read (413); while
 * running jobs hold the budget, a check waits --retry-after seconds and
 * answers 503 with Retry-After; a dataset no job could ever fit in
 * --max-job-memory is refused (422). */
static void test_upload_memory(void **state) {
  (void)state;
  const char *flags[] = {"--max-memory", "64M", "--retry-after", "1", NULL};
  fx_t *f = fx_new(flags);
  /* 2 MB of JSON: about 40 times that to check. */
  size_t n = 2 << 20;
  char *json = malloc(n);
  memset(json, ' ', n);
  memcpy(json, "{\"train\": {", 11);
  assert_int_equal(upload(f, NULL, json, n), 413);
  const char *d = fx_problem(f, 413, "body");
  assert_non_null(strstr(d, "checking this json upload"));
  assert_non_null(strstr(d, "--max-job-memory 64.0 MiB"));
  free(json);
  lsmi_mem_t *mem = lsmi_sched_mem(f->sched);
  assert_true(lsmi_mem_reserve(mem, 63 << 20, 0));
  size_t len;
  unsigned char *npz = fx_npz(f, 200, 1, &len);
  double t0 = lsmi_util_mono();
  assert_int_equal(upload(f, NULL, npz, len), 503);
  assert_true(lsmi_util_mono() - t0 >= 0.9);
  assert_non_null(strstr(fx_problem(f, 503, NULL), "memory"));
  assert_string_equal(fx_header(f, "Retry-After"), "1");
  assert_int_equal(fx_entries(f, "tmp"), 0);
  lsmi_mem_release(mem, 63 << 20);
  assert_int_equal(upload(f, NULL, npz, len), 201);
  uint64_t reserved, total;
  lsmi_mem_usage(mem, &reserved, &total);
  assert_true(reserved == 0 && total == (uint64_t)64 << 20);
  free(npz);
  fx_free(f);
  const char *tight[] = {"--max-memory", "16M", NULL};
  f = fx_new(tight);
  npz = fx_npz(f, 200, 1, &len);
  assert_int_equal(upload(f, NULL, npz, len), 422);
  assert_non_null(strstr(fx_problem(f, 422, "body"), "even with the default"));
  assert_int_equal(fx_entries(f, "datasets"), 0);
  free(npz);
  fx_free(f);
}

static void test_get_and_delete(void **state) {
  fx_t *f = *state;
  assert_int_equal(fx_get(f, "/v1/datasets/ds_nope", NULL), 404);
  assert_string_equal(fx_problem(f, 404, NULL), "no dataset 'ds_nope'");
  assert_int_equal(
      fx_request(f, "DELETE", "/v1/datasets/ds_nope", NULL, NULL, NULL, 0),
      404);
  char url[128], id[64];
  snprintf(id, sizeof id, "%s", fx_upload(f, 200, 1));
  snprintf(url, sizeof url, "/v1/datasets/%s", id);
  /* A queued job keeps its dataset. */
  lsmi_job_new_t nj = {"job_1", "default", id, "{}", "{}", 2e9, NULL, NULL};
  char existing[64];
  bool replayed;
  assert_int_equal(lsmi_store_job_create(f->store, &nj, existing, &replayed),
                   0);
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 409);
  assert_non_null(strstr(fx_problem(f, 409, NULL), "cancel them first"));
  assert_int_equal(lsmi_store_job_cancel_queued(f->store, "job_1", 3e9, false),
                   0);
  assert_int_equal(fx_request(f, "DELETE", url, NULL, NULL, NULL, 0), 204);
  assert_int_equal(f->conn.resp.len, 0);
  assert_int_equal(fx_entries(f, "datasets"), 0);
  assert_int_equal(fx_get(f, url, NULL), 404);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_upload),
      cmocka_unit_test(test_upload_refusals),
      T(test_upload_keys_and_val),
      T(test_store_fails_on_lookup),
      T(test_no_temp_file),
      T(test_disk_full),
      T(test_rename_fails),
      T(test_record_fails),
      T(test_get_and_delete),
      cmocka_unit_test(test_upload_memory),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
