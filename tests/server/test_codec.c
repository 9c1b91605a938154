/*
 * test_codec.c — server/codec.c: job params from JSON (defaults, every
 * error naming "params.NAME"), back to JSON with every parameter, the job
 * request envelope, progress and problem objects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "codec.h"

static int from_text(const char *text, lsmi_params_t *p, lsmi_error_t *err) {
  json_t *v = json_loads(text, 0, NULL);
  assert_non_null(v);
  int st = lsmi_codec_params_from_json(v, p, err);
  json_decref(v);
  return st;
}

static void test_defaults_and_values(void **state) {
  (void)state;
  lsmi_params_t p, d;
  lsmi_params_default(&d);
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_codec_params_from_json(NULL, &p, &err), 0);
  assert_memory_equal(&p, &d, sizeof p);
  assert_int_equal(from_text("{}", &p, &err), 0);
  assert_int_equal(from_text("{\"seed\": 9007199254740991, \"hidden\": 8, "
                             "\"gamma\": 0.5, \"prior\": \"empirical\", "
                             "\"adjust\": false, \"lr_entropy\": 1e-2, "
                             "\"epochs_entropy\": 3.0}",
                             &p, &err),
                   0);
  assert_true(p.seed == 9007199254740991ULL);
  assert_int_equal(p.hidden, 8);
  assert_true(p.gamma == 0.5);
  assert_int_equal(p.prior, LSMI_PRIOR_EMPIRICAL);
  assert_false(p.adjust);
  assert_true(p.lr_entropy == 1e-2);
  assert_int_equal(p.epochs_entropy, 3);
}

static void expect_field(const char *text, const char *field) {
  lsmi_params_t p;
  lsmi_error_t err = {0};
  assert_int_equal(from_text(text, &p, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, field);
  assert_true(strlen(err.message) > 0);
}

static void test_errors_name_the_field(void **state) {
  (void)state;
  expect_field("{\"epochs_entropy\": 0}", "params.epochs_entropy");
  expect_field("{\"hidden\": 2.5}", "params.hidden");
  expect_field("{\"hidden\": \"64\"}", "params.hidden");
  expect_field("{\"gamma\": 0}", "params.gamma");
  expect_field("{\"gamma\": 1.01}", "params.gamma");
  expect_field("{\"lr_discriminator\": null}", "params.lr_discriminator");
  expect_field("{\"prior\": \"flat\"}", "params.prior");
  expect_field("{\"prior\": 1}", "params.prior");
  expect_field("{\"adjust\": 1}", "params.adjust");
  expect_field("{\"seed\": -1}", "params.seed");
  expect_field("{\"val_fraction\": 0.95}", "params.val_fraction");
  expect_field("{\"nope\": 1}", "params.nope");
  expect_field("{\"epochs-entropy\": 3}", "params.epochs-entropy");
  lsmi_params_t p;
  lsmi_error_t err = {0};
  json_t *arr = json_array();
  assert_int_equal(lsmi_codec_params_from_json(arr, &p, &err),
                   LSMI_ERR_INVALID);
  assert_string_equal(err.field, "params");
  json_decref(arr);
}

static void test_to_json_round_trip(void **state) {
  (void)state;
  lsmi_params_t p, q;
  lsmi_params_default(&p);
  p.seed = 123456789012345ULL;
  p.prior = LSMI_PRIOR_EMPIRICAL;
  p.val_fraction = 0.25;
  json_t *o = lsmi_codec_params_to_json(&p);
  assert_non_null(o);
  size_t n = 0;
  lsmi_params_table(&n);
  assert_int_equal(json_object_size(o), n);
  assert_true(json_integer_value(json_object_get(o, "seed")) ==
              123456789012345LL);
  assert_string_equal(json_string_value(json_object_get(o, "prior")),
                      "empirical");
  assert_true(json_is_true(json_object_get(o, "adjust")));
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_codec_params_from_json(o, &q, &err), 0);
  assert_memory_equal(&p, &q, sizeof p);
  json_decref(o);
}

static void test_job_request(void **state) {
  (void)state;
  char id[64];
  lsmi_params_t p;
  lsmi_error_t err = {0};
  const char ok[] = "{\"dataset_id\": \"ds_1\", \"params\": {\"seed\": 4}}";
  assert_int_equal(lsmi_codec_job_request(ok, strlen(ok), id, sizeof id, &p,
                                          &err),
                   0);
  assert_string_equal(id, "ds_1");
  assert_true(p.seed == 4);
  const char bad[] = "{\"dataset_id\": ";
  assert_int_equal(lsmi_codec_job_request(bad, strlen(bad), id, sizeof id,
                                          &p, &err),
                   LSMI_ERR_FORMAT);
  assert_int_equal(lsmi_codec_http_status(LSMI_ERR_FORMAT), 400);
  assert_int_equal(lsmi_codec_http_status(LSMI_ERR_LIMIT), 413);
  assert_int_equal(lsmi_codec_http_status(LSMI_ERR_UNSUPPORTED), 415);
  assert_int_equal(lsmi_codec_http_status(LSMI_ERR_NOTFOUND), 404);
  assert_int_equal(lsmi_codec_http_status(LSMI_ERR_CONFLICT), 409);
  assert_int_equal(lsmi_codec_http_status(LSMI_ERR_BUSY), 429);
  assert_int_equal(lsmi_codec_http_status(LSMI_ERR_SHUTDOWN), 503);
  assert_int_equal(lsmi_codec_http_status(-999), 500);
  assert_int_equal(lsmi_codec_job_request(NULL, 0, id, sizeof id, &p, &err),
                   LSMI_ERR_FORMAT);
  const char missing[] = "{\"params\": {}}";
  assert_int_equal(lsmi_codec_job_request(missing, strlen(missing), id,
                                          sizeof id, &p, &err),
                   LSMI_ERR_MISSING);
  assert_string_equal(err.field, "dataset_id");
  const char num[] = "{\"dataset_id\": 5}";
  assert_int_equal(lsmi_codec_job_request(num, strlen(num), id, sizeof id,
                                          &p, &err),
                   LSMI_ERR_INVALID);
  assert_string_equal(err.field, "dataset_id");
  const char extra[] = "{\"dataset_id\": \"a\", \"x\": 1}";
  assert_int_equal(lsmi_codec_job_request(extra, strlen(extra), id,
                                          sizeof id, &p, &err),
                   LSMI_ERR_INVALID);
  assert_string_equal(err.field, "x");
  const char dup[] = "{\"dataset_id\": \"a\", \"dataset_id\": \"b\"}";
  assert_int_equal(lsmi_codec_job_request(dup, strlen(dup), id, sizeof id,
                                          &p, &err),
                   LSMI_ERR_FORMAT);
  const char arr[] = "[1]";
  assert_int_equal(lsmi_codec_job_request(arr, strlen(arr), id, sizeof id,
                                          &p, &err),
                   LSMI_ERR_INVALID);
}

static void test_problem_and_progress(void **state) {
  (void)state;
  json_t *p = lsmi_codec_problem(422, NULL, "bad \xff byte", "params.x");
  assert_non_null(p);
  assert_string_equal(json_string_value(json_object_get(p, "type")),
                      "about:blank");
  assert_string_equal(json_string_value(json_object_get(p, "title")),
                      "Unprocessable Content");
  assert_int_equal(json_integer_value(json_object_get(p, "status")), 422);
  assert_string_equal(json_string_value(json_object_get(p, "detail")),
                      "bad ? byte");
  assert_string_equal(json_string_value(json_object_get(p, "field")),
                      "params.x");
  json_decref(p);
  p = lsmi_codec_problem(404, NULL, "x", "");
  assert_null(json_object_get(p, "field"));
  json_decref(p);

  lsmi_params_t params;
  lsmi_params_default(&params);
  json_t *q = lsmi_codec_progress(NULL, &params);
  assert_string_equal(json_string_value(json_object_get(q, "phase")),
                      "queued");
  assert_int_equal(json_integer_value(json_object_get(q, "epochs")), 60);
  json_decref(q);
  lsmi_progress_t pr = {.phase = LSMI_PHASE_TRAIN, .disc_epoch = 3,
                        .disc_epochs = 30, .disc_loss = 1.5, .ent_epoch = 0,
                        .ent_epochs = 30, .fraction = 0.25};
  q = lsmi_codec_progress(&pr, &params);
  assert_string_equal(json_string_value(json_object_get(q, "phase")),
                      "train");
  /* epoch counts the work done, as fraction does: 0.25 of the fit is
   * 0.25 / 0.95 of its training, 15 of its 60 epochs' worth. */
  assert_int_equal(json_integer_value(json_object_get(q, "epoch")), 15);
  assert_int_equal(json_integer_value(json_object_get(q, "disc_epoch")), 3);
  assert_true(json_real_value(json_object_get(q, "disc_loss")) == 1.5);
  assert_true(json_is_null(json_object_get(q, "ent_loss")));
  json_decref(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_values),
      cmocka_unit_test(test_errors_name_the_field),
      cmocka_unit_test(test_to_json_round_trip),
      cmocka_unit_test(test_job_request),
      cmocka_unit_test(test_problem_and_progress),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
