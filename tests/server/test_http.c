/*
 * test_http.c — server/http.c, the transport, through a fake libmicrohttpd
 * (harness.h): routing (404, 405 with Allow, OPTIONS preflight, HEAD),
 * request ids, bearer auth and tenants, CORS, refusals while draining, the
 * JSON body's limits and content type, query paging, a full queue as 429
 * with Retry-After, a response libmicrohttpd refuses, and the request
 * counted when it completes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "metrics.h"

static void test_routing(void **state) {
  fx_t *f = *state;
  assert_int_equal(fx_get(f, "/nope", NULL), 404);
  fx_problem(f, 404, NULL);
  assert_string_equal(fx_str(f, "instance"), "/nope");
  assert_string_equal(fx_str(f, "title"), "Not Found");
  assert_int_equal(fx_request(f, "PUT", "/v1/jobs", NULL, NULL, NULL, 0), 405);
  fx_problem(f, 405, NULL);
  assert_string_equal(fx_header(f, "Allow"), "GET, POST");
  assert_int_equal(fx_request(f, "OPTIONS", "/v1/jobs", NULL, NULL, NULL, 0),
                   204);
  assert_string_equal(fx_header(f, "Allow"), "GET, POST, OPTIONS");
  assert_string_equal(fx_header(f, "Access-Control-Allow-Methods"),
                      "GET, POST, OPTIONS");
  assert_int_equal(fx_request(f, "OPTIONS", "/nope", NULL, NULL, NULL, 0), 404);
  assert_int_equal(fx_request(f, "HEAD", "/healthz", NULL, NULL, NULL, 0), 200);
  assert_string_equal(fx_header(f, "Cache-Control"), "no-store");
}

static void test_request_ids(void **state) {
  fx_t *f = *state;
  fx_get(f, "/healthz", NULL);
  const char *id = fx_header(f, "X-Request-Id");
  assert_non_null(id);
  assert_memory_equal(id, "req_", 4);
  assert_int_equal(strlen(id), 24);
  const char *mine[] = {"X-Request-Id", "abc-1", NULL};
  fx_request(f, "GET", "/healthz", NULL, mine, NULL, 0);
  assert_string_equal(fx_header(f, "X-Request-Id"), "abc-1");
  const char *odd[] = {"X-Request-Id", "a\nb\"c", NULL}; /* kept printable */
  fx_request(f, "GET", "/healthz", NULL, odd, NULL, 0);
  assert_string_equal(fx_header(f, "X-Request-Id"), "a?b\"c");
}

static const char *tokens_env(const char *name) {
  return strcmp(name, "LSMI_TOKENS")
             ? NULL
             : "tok-a-0123456789=alice,tok-b-0123456789=bob";
}

static void test_auth(void **state) {
  fx_t *f = *state;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_config_load_tokens(&f->cfg, tokens_env, NULL, &err), 0);
  assert_int_equal(fx_get(f, "/v1/datasets", NULL), 401);
  fx_problem(f, 401, "Authorization");
  assert_string_equal(fx_header(f, "WWW-Authenticate"),
                      "Bearer realm=\"lsmi\"");
  const char *wrong[] = {"Authorization", "Bearer tok-c-0123456789", NULL};
  assert_int_equal(fx_request(f, "GET", "/v1/jobs", NULL, wrong, NULL, 0), 401);
  const char *basic[] = {"Authorization", "Basic dG9rLWE=", NULL};
  assert_int_equal(fx_request(f, "GET", "/v1/jobs", NULL, basic, NULL, 0), 401);
  assert_int_equal(fx_get(f, "/healthz", NULL), 200); /* no token needed */
  /* Each tenant sees its own datasets only. */
  const char *alice[] = {"Authorization", "bearer   tok-a-0123456789", NULL};
  const char *bob[] = {"Authorization", "Bearer tok-b-0123456789", NULL};
  size_t len;
  unsigned char *npz = fx_npz(f, 200, 1, &len);
  assert_int_equal(fx_request(f, "POST", "/v1/datasets", NULL, alice, npz, len),
                   201);
  free(npz);
  char url[128];
  snprintf(url, sizeof url, "/v1/datasets/%s", fx_str(f, "id"));
  assert_int_equal(fx_request(f, "GET", url, NULL, alice, NULL, 0), 200);
  assert_int_equal(fx_request(f, "GET", url, NULL, bob, NULL, 0), 404);
}

static void test_cors(void **state) {
  (void)state;
  const char *flags[] = {"--cors-origin", "https://a.example", NULL};
  fx_t *f = fx_new(flags);
  const char *ok[] = {"Origin", "https://a.example", NULL};
  fx_request(f, "GET", "/healthz", NULL, ok, NULL, 0);
  assert_string_equal(fx_header(f, "Access-Control-Allow-Origin"),
                      "https://a.example");
  assert_string_equal(fx_header(f, "Vary"), "Origin");
  assert_non_null(
      strstr(fx_header(f, "Access-Control-Expose-Headers"), "Retry-After"));
  const char *other[] = {"Origin", "https://b.example", NULL};
  fx_request(f, "GET", "/healthz", NULL, other, NULL, 0);
  assert_null(fx_header(f, "Access-Control-Allow-Origin"));
  fx_request(f, "GET", "/nope", NULL, ok, NULL, 0); /* problems too */
  assert_non_null(fx_header(f, "Access-Control-Allow-Origin"));
  fx_free(f);
}

static const char *const json_ct[] = {"Content-Type", "application/json", NULL};

static void test_draining(void **state) {
  fx_t *f = *state;
  lsmi_sched_shutdown(f->sched);
  const char body[] = "{\"dataset_id\": \"ds_x\"}";
  assert_int_equal(
      fx_request(f, "POST", "/v1/jobs", NULL, json_ct, body, sizeof body - 1),
      503);
  assert_string_equal(fx_problem(f, 503, NULL), "the daemon is shutting down");
  assert_int_equal(
      fx_request(f, "DELETE", "/v1/jobs/job_x", NULL, NULL, NULL, 0), 503);
  assert_int_equal(fx_get(f, "/v1/jobs", NULL), 200); /* reads still work */
}

static void test_json_body_limits(void **state) {
  (void)state;
  const char *flags[] = {"--max-body", "1K", NULL};
  fx_t *f = fx_new(flags);
  const char *text[] = {"Content-Type", "text/plain", NULL};
  assert_int_equal(fx_request(f, "POST", "/v1/jobs", NULL, text, "{}", 2), 415);
  fx_problem(f, 415, "Content-Type");
  assert_int_equal(fx_request(f, "POST", "/v1/jobs", NULL, NULL, "{}", 2), 415);
  /* Announced too large: refused at once, the body discarded. */
  char big[3000];
  memset(big, ' ', sizeof big);
  const char *announced[] = {"Content-Type", "application/json",
                             "Content-Length", "3000", NULL};
  assert_int_equal(
      fx_request(f, "POST", "/v1/jobs", NULL, announced, big, sizeof big), 413);
  fx_problem(f, 413, "body");
  /* Chunked (no length): found too large on the way, answered at once on
   * the socket (libmicrohttpd queues nothing mid-body), then cut. */
  assert_int_equal(
      fx_request(f, "POST", "/v1/jobs", NULL, json_ct, big, sizeof big), 413);
  assert_non_null(strstr(fx_problem(f, 413, "body"), "--max-body"));
  assert_int_equal(fx_request(f, "POST", "/v1/jobs", NULL, json_ct, "{", 1),
                   400);
  fx_problem(f, 400, "body");
  fx_free(f);
}

static void test_page_args(void **state) {
  fx_t *f = *state;
  const char *zero[] = {"limit", "0", NULL};
  assert_int_equal(fx_get(f, "/v1/jobs", zero), 400);
  fx_problem(f, 400, "limit");
  const char *over[] = {"limit", "10001", NULL};
  assert_int_equal(fx_get(f, "/v1/datasets", over), 400);
  assert_non_null(strstr(fx_problem(f, 400, "limit"), "10000"));
  const char *neg[] = {"offset", "-1", NULL};
  assert_int_equal(fx_get(f, "/v1/jobs", neg), 400);
  fx_problem(f, 400, "offset");
  const char *huge[] = {"offset", "99999999999999999999999", NULL};
  assert_int_equal(fx_get(f, "/v1/jobs", huge), 400);
  const char *fine[] = {"offset", "", "limit", "10000", NULL};
  assert_int_equal(fx_get(f, "/v1/jobs", fine), 200);
  assert_int_equal(json_integer_value(json_object_get(f->json, "limit")),
                   10000);
}

/* LSMI_ERR_BUSY (a full queue) is 429 with the configured Retry-After. */
static void test_busy_is_429(void **state) {
  (void)state;
  const char *flags[] = {"--queue-size", "0", "--retry-after", "7", NULL};
  fx_t *f = fx_new(flags);
  const char body[] = "{\"dataset_id\": \"ds_x\"}";
  assert_int_equal(
      fx_request(f, "POST", "/v1/jobs", NULL, json_ct, body, sizeof body - 1),
      429);
  assert_non_null(strstr(fx_problem(f, 429, NULL), "queue is full"));
  assert_string_equal(fx_header(f, "Retry-After"), "7");
  assert_string_equal(fx_str(f, "title"), "Too Many Requests");
  fx_free(f);
}

/* libmicrohttpd refusing a response drops the connection (MHD_NO). */
static void test_refused_response(void **state) {
  fx_t *f = *state;
  fx_reset(f);
  f->conn.refuse = true;
  struct MHD_Connection *c = (struct MHD_Connection *)(void *)&f->conn;
  void *cls = NULL;
  size_t n = 0;
  assert_int_equal(
      lsmi_http_access(&f->h, c, "/nope", "GET", "HTTP/1.1", NULL, &n, &cls),
      MHD_NO);
  assert_int_equal(
      lsmi_http_access(&f->h, c, "/healthz", "GET", "HTTP/1.1", NULL, &n, &cls),
      MHD_YES); /* the same request: already answered */
  lsmi_http_completed(&f->h, c, &cls, MHD_REQUEST_TERMINATED_WITH_ERROR);
  assert_null(cls);
}

/* A request is counted once libmicrohttpd reports it complete. */
static void test_counted(void **state) {
  fx_t *f = *state;
  fx_request(f, "DELETE", "/v1/jobs/job_zz", NULL, NULL, NULL, 0);
  assert_int_equal(f->conn.status, 404);
  lsmi_metrics_gauges_t g = {0};
  char *text = lsmi_metrics_render(&g);
  assert_non_null(strstr(
      text,
      "lsmi_http_requests_total{route=\"/v1/jobs/{id}\",method=\"DELETE\","
      "status=\"404\"} 1\n"));
  free(text);
}

/* Media types are parsed, not prefix-matched: parameters and case are
 * fine, a longer subtype is another type. */
static void test_media_type(void **state) {
  (void)state;
  assert_true(lsmi_http_media_type_is("application/json", "application/json"));
  assert_true(lsmi_http_media_type_is(" Application/JSON ; charset=utf-8",
                                      "application/json"));
  assert_true(lsmi_http_media_type_is("application/json;charset=utf-8",
                                      "application/json"));
  assert_false(
      lsmi_http_media_type_is("application/jsonFOO", "application/json"));
  assert_false(
      lsmi_http_media_type_is("application/json-seq", "application/json"));
  assert_false(
      lsmi_http_media_type_is("application/json x", "application/json"));
  assert_false(lsmi_http_media_type_is("text/plain", "application/json"));
  assert_false(lsmi_http_media_type_is(NULL, "application/json"));
  assert_false(lsmi_http_media_type_is("", "application/json"));
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(test_routing),
      T(test_request_ids),
      T(test_auth),
      cmocka_unit_test(test_cors),
      T(test_draining),
      cmocka_unit_test(test_json_body_limits),
      T(test_page_args),
      cmocka_unit_test(test_busy_is_429),
      T(test_refused_response),
      T(test_counted),
      cmocka_unit_test(test_media_type),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
