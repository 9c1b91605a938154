/*
 * test_decompose.c — the pointwise decomposition and the mean adjustment:
 * parity with PyTorch (fixtures/decomposition.json, one case per branch),
 * the identities r+u1 = i1, r+u2 = i2, r+u1+u2+s = i12, and the rule on
 * crafted means.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"
#include "lsmi.h"

#include "check.h"

#define N_MAX 64

static void check_identities(size_t n, const double *i1, const double *i2,
                             const double *i12, const double *r,
                             const double *u1, const double *u2,
                             const double *s) {
  for (size_t k = 0; k < n; k++) {
    assert_true(fabs(r[k] + u1[k] - i1[k]) <= 1e-12 * (1 + fabs(i1[k])));
    assert_true(fabs(r[k] + u2[k] - i2[k]) <= 1e-12 * (1 + fabs(i2[k])));
    assert_true(fabs(r[k] + u1[k] + u2[k] + s[k] - i12[k]) <=
                1e-12 * (1 + fabs(i12[k])));
  }
}

static void test_fixture_cases(void **state) {
  (void)state;
  json_t *root = fixture_load("decomposition.json");
  assert_non_null(root);
  json_t *cases = json_object_get(root, "cases");
  assert_int_equal(json_array_size(cases), 3);
  size_t ci;
  json_t *c;
  int branches_seen = 0;
  json_array_foreach(cases, ci, c) {
    size_t n;
    double *h1 = fixture_doubles(c, "h1", &n);
    double *h2 = fixture_doubles(c, "h2", NULL);
    double *i1 = fixture_doubles(c, "i1", NULL);
    double *i2 = fixture_doubles(c, "i2", NULL);
    double *i12 = fixture_doubles(c, "i12", NULL);
    json_t *raw = json_object_get(c, "raw"),
           *adj = json_object_get(c, "adjusted");
    double *want[8] = {
        fixture_doubles(raw, "r", NULL),  fixture_doubles(raw, "u1", NULL),
        fixture_doubles(raw, "u2", NULL), fixture_doubles(raw, "s", NULL),
        fixture_doubles(adj, "r", NULL),  fixture_doubles(adj, "u1", NULL),
        fixture_doubles(adj, "u2", NULL), fixture_doubles(adj, "s", NULL)};
    assert_true(n > 0 && n <= N_MAX);
    double r[N_MAX], u1[N_MAX], u2[N_MAX], s[N_MAX];
    lsmi_decompose(n, i1, i2, i12, h1, h2, r, u1, u2, s);
    double *cols[4] = {r, u1, u2, s};
    static const char *const raw_names[4] = {"raw r", "raw u1", "raw u2",
                                             "raw s"};
    static const char *const adj_names[4] = {"adj r", "adj u1", "adj u2",
                                             "adj s"};
    for (int k = 0; k < 4; k++)
      assert_int_equal(fixture_check_d(raw_names[k], cols[k], want[k], n, 1e-12,
                                       1e-12, NULL),
                       0);
    check_identities(n, i1, i2, i12, r, u1, u2, s);
    double a = lsmi_adjust(n, r, u1, u2, s);
    double want_shift = fixture_number(c, "shift");
    assert_true(fabs(a - want_shift) <= 1e-12);
    if (a > 0)
      branches_seen |= 1;
    else if (a < 0)
      branches_seen |= 2;
    else
      branches_seen |= 4;
    for (int k = 0; k < 4; k++)
      assert_int_equal(fixture_check_d(adj_names[k], cols[k], want[4 + k], n,
                                       1e-12, 1e-12, NULL),
                       0);
    check_identities(n, i1, i2, i12, r, u1, u2, s);
    free(h1), free(h2), free(i1), free(i2), free(i12);
    for (int i = 0; i < 8; i++)
      free(want[i]);
  }
  assert_int_equal(branches_seen, 7); /* a > 0, a < 0 and a = 0 all covered */
  json_decref(root);
}

/* Crafted single-sample splits hit each branch of the rule exactly. */
static void test_adjust_rule(void **state) {
  (void)state;
  struct {
    double r, u1, u2, s, shift;
  } cases[] = {
      {-0.3, 0.5, 0.2, 0.1, 0.3},    /* r < 0: a = -min(r, s) = 0.3 */
      {0.2, 0.5, 0.4, -0.6, 0.6},    /* s < 0 and more negative than r */
      {-0.1, 0.5, 0.4, -0.6, 0.6},   /* both negative: the smaller wins */
      {0.2, -0.1, 0.4, 0.3, -0.1},   /* u1 < 0: a = min(u1, u2) */
      {0.2, 0.1, -0.25, 0.3, -0.25}, /* u2 < 0 */
      {0.2, 0.1, 0.3, 0.3, 0.0},     /* nothing negative */
      {-0.2, -0.1, 0.3, 0.3, 0.2},   /* r branch wins over the u branch */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double r = cases[i].r, u1 = cases[i].u1, u2 = cases[i].u2, s = cases[i].s;
    double a = lsmi_adjust(1, &r, &u1, &u2, &s);
    assert_close(a, cases[i].shift, 1e-15);
    assert_close(r, cases[i].r + a, 1e-15);
    assert_close(s, cases[i].s + a, 1e-15);
    assert_close(u1, cases[i].u1 - a, 1e-15);
    assert_close(u2, cases[i].u2 - a, 1e-15);
  }
  /* Means, not single values, decide: one negative r among positives. */
  double r[3] = {-0.5, 0.4, 0.4}, u1[3] = {0.1, 0.1, 0.1},
         u2[3] = {0.1, 0.1, 0.1}, s[3] = {0.1, 0.1, 0.1};
  assert_close(lsmi_adjust(3, r, u1, u2, s), 0.0, 0.0);
  assert_close(r[0], -0.5, 0.0);
}

static void test_summarize(void **state) {
  (void)state;
  double v[4][3] = {{1, 2, 3}, {0, 0, 3}, {1, 1, 1}, {-1, 0, 1}};
  double z[3] = {0, 0, 0};
  int32_t y[3] = {0, 1, 0};
  lsmi_rows_t rows = {.n = 3,
                      .y = y,
                      .r = v[0],
                      .u1 = v[1],
                      .u2 = v[2],
                      .s = v[3],
                      .i1 = v[0],
                      .i2 = v[1],
                      .i12 = v[2],
                      .h1 = z,
                      .h2 = v[3]};
  lsmi_summary_t sum = {.shift = 0.25};
  lsmi_summarize(&rows, &sum);
  assert_int_equal(sum.n, 3);
  assert_close(sum.R, 2.0, 1e-15);
  assert_close(sum.U1, 1.0, 1e-15);
  assert_close(sum.U2, 1.0, 1e-15);
  assert_close(sum.S, 0.0, 1e-15);
  assert_close(sum.H2, 0.0, 1e-15);
  assert_close(sum.shift, 0.25, 0.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixture_cases),
      cmocka_unit_test(test_adjust_rule),
      cmocka_unit_test(test_summarize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
