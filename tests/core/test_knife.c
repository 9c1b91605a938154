/*
 * test_knife.c — unit tests of the KNIFE marginal kernel (core/knife.c).
 *
 *  - every gradient element checked against central finite differences of
 *    the kernel's own float32 loss, for several d, K, B and a row stride
 *    ldx > d (ggml test-grad0 style: op, index and both values on failure);
 *  - parity with the float64 PyTorch fixture (shared/fixtures/knife.json):
 *    logpdf per row, loss and all four gradient groups;
 *  - contracts: logpdf agrees with the loss, the gradient block is
 *    overwritten, rows are independent of the batch they come in, large |x|
 *    stays finite, init draws in the documented order with weigh = 1.
 *
 * Fixtures are read through tests/fixture.h ($LSMI_SHARED, else ../shared).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fixture.h"
#include "knife.h"
#include "rng.h"

/* ------------------------------------------------------------------------ */
/* A kernel with its blocks                                                 */
/* ------------------------------------------------------------------------ */

typedef struct fixture_knife {
  int d, K, max_batch;
  float *params, *grads, *scratch;
  lsmi_knife_t k, g;
} fixture_knife_t;

static void fk_create(fixture_knife_t *f, int d, int K, int max_batch) {
  size_t np = lsmi_knife_nparams(d, K);
  f->d = d;
  f->K = K;
  f->max_batch = max_batch;
  f->params = calloc(np, sizeof(float));
  f->grads = calloc(np, sizeof(float));
  f->scratch = calloc(lsmi_knife_nscratch(d, K, max_batch), sizeof(float));
  assert_non_null(f->params);
  assert_non_null(f->grads);
  assert_non_null(f->scratch);
  lsmi_knife_bind(&f->k, f->params, d, K);
  lsmi_knife_bind(&f->g, f->grads, d, K);
}

static void fk_destroy(fixture_knife_t *f) {
  free(f->params);
  free(f->grads);
  free(f->scratch);
}

/* x (B, ldx), columns d..ldx-1 NaN: the kernel must not read them. */
static float *make_x(lsmi_rng_t *rng, int B, int d, size_t ldx, double scale) {
  float *x = malloc((size_t)B * ldx * sizeof(float));
  assert_non_null(x);
  for (int n = 0; n < B; n++)
    for (size_t j = 0; j < ldx; j++)
      x[(size_t)n * ldx + j] =
          j < (size_t)d ? (float)(scale * lsmi_rng_normal(rng)) : NAN;
  return x;
}

/* Mean -log p of the rows, through lsmi_knife_logpdf. */
static double mean_nll(fixture_knife_t *f, const float *x, size_t ldx, int B) {
  double *logp = malloc((size_t)B * sizeof(double));
  assert_non_null(logp);
  lsmi_knife_logpdf(&f->k, logp, f->scratch, x, ldx, B);
  double loss = 0.0;
  for (int n = 0; n < B; n++)
    loss -= logp[n];
  free(logp);
  return loss / (double)B;
}

/* ------------------------------------------------------------------------ */
/* 1. Finite differences                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Five-point central difference of the float32 loss in parameter p:
 * (8 (L(p+h) - L(p-h)) - (L(p+2h) - L(p-2h))) / 12h. Its truncation error is
 * O(h^4), so h can be large enough that the float32 rounding of the loss
 * (about 1e-7 |c|) divided by h stays well under the tolerance.
 */
static double numeric_grad(fixture_knife_t *f, float *p, const float *x,
                           size_t ldx, int B, float h) {
  float p0 = *p;
  double L[4];
  const float off[4] = {h, -h, 2.0f * h, -2.0f * h};
  for (int i = 0; i < 4; i++) {
    *p = p0 + off[i];
    L[i] = mean_nll(f, x, ldx, B);
  }
  *p = p0;
  return (8.0 * (L[0] - L[1]) - (L[2] - L[3])) / (12.0 * (double)h);
}

static const double FD_ATOL = 5e-4, FD_RTOL = 5e-3;

typedef struct gc_stats {
  long checked, failed;
  double worst; /* max |a-n| / (atol + rtol |n|) */
} gc_stats_t;

static void check_group(fixture_knife_t *f, const char *op, float *param,
                        const float *grad, size_t count, const float *x,
                        size_t ldx, int B, float h, gc_stats_t *st) {
  int d = f->d;
  for (size_t i = 0; i < count; i++) {
    double a = (double)grad[i];
    if (strcmp(op, "tri") == 0) {
      size_t row = (i / (size_t)d) % (size_t)d, col = i % (size_t)d;
      if (col >= row) {
        /* On and above the diagonal: exactly zero, and the loss must not
         * move at all when the parameter does. */
        double n = numeric_grad(f, param + i, x, ldx, B, h);
        st->checked++;
        if (a != 0.0 || n != 0.0) {
          st->failed++;
          printf("FAIL %s d=%d K=%d B=%d [%zu] (row %zu col %zu, not strictly "
                 "lower): analytic %.9g numeric %.9g (both must be 0)\n",
                 op, d, f->K, B, i, row, col, a, n);
        }
        continue;
      }
    }
    double n = numeric_grad(f, param + i, x, ldx, B, h);
    double tol = FD_ATOL + FD_RTOL * fabs(n);
    double err = fabs(a - n);
    st->checked++;
    if (err / tol > st->worst)
      st->worst = err / tol;
    if (!(err <= tol)) {
      st->failed++;
      printf("FAIL %s d=%d K=%d B=%d [%zu]: analytic %.9g numeric %.9g "
             "|diff| %.3g > tol %.3g\n",
             op, d, f->K, B, i, a, n, err, tol);
    }
  }
}

static void gradcheck_d(int d) {
  static const int Ks[] = {1, 5};
  static const int Bs[] = {1, 4, 13};
  gc_stats_t st = {0, 0, 0.0};
  for (size_t ik = 0; ik < sizeof Ks / sizeof Ks[0]; ik++) {
    for (size_t ib = 0; ib < sizeof Bs / sizeof Bs[0]; ib++) {
      int K = Ks[ik], B = Bs[ib];
      size_t ldx = (size_t)d + 3;
      fixture_knife_t f;
      fk_create(&f, d, K, B);
      lsmi_rng_t rng;
      lsmi_rng_seed(&rng, 1000u + (uint64_t)(d * 100 + K * 10 + B), 77);
      lsmi_knife_init(&f.k, &rng);
      /* weigh = 1 hides errors that are symmetric in the components. */
      for (int c = 0; c < K; c++)
        f.k.weigh[c] = (float)(1.0 + 0.5 * lsmi_rng_normal(&rng));
      /* Rows near the means keep the component log-weights c moderate
       * (the kernel is float32: rounding of the loss grows with |c|), while
       * tri stays N(0,1) so that L does real work. */
      float *x = make_x(&rng, B, d, ldx, 1.0);
      for (int n = 0; n < B; n++) {
        int c = n % K;
        for (int j = 0; j < d; j++)
          x[(size_t)n * ldx + (size_t)j] =
              f.k.means[(size_t)c * (size_t)d + (size_t)j] +
              0.3f * x[(size_t)n * ldx + (size_t)j];
      }
      double loss = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, B);
      assert_true(isfinite(loss));
      size_t Kd = (size_t)K * (size_t)d;
      const float h = 1.0f / 128.0f;
      check_group(&f, "means", f.k.means, f.g.means, Kd, x, ldx, B, h, &st);
      check_group(&f, "logvar", f.k.logvar, f.g.logvar, Kd, x, ldx, B, h, &st);
      check_group(&f, "tri", f.k.tri, f.g.tri, Kd * (size_t)d, x, ldx, B, h,
                  &st);
      check_group(&f, "weigh", f.k.weigh, f.g.weigh, (size_t)K, x, ldx, B, h,
                  &st);
      free(x);
      fk_destroy(&f);
    }
  }
  printf("gradcheck d=%d: %ld elements, %ld failed, worst |a-n|/tol %.3f\n", d,
         st.checked, st.failed, st.worst);
  assert_true(st.checked > 0);
  assert_int_equal(st.failed, 0);
}

static void test_gradcheck_d1(void **state) {
  (void)state;
  gradcheck_d(1);
}
static void test_gradcheck_d3(void **state) {
  (void)state;
  gradcheck_d(3);
}
static void test_gradcheck_d7(void **state) {
  (void)state;
  gradcheck_d(7);
}
static void test_gradcheck_d16(void **state) {
  (void)state;
  gradcheck_d(16);
}

/* ------------------------------------------------------------------------ */
/* 2. Parity with the PyTorch float64 fixture                               */
/* ------------------------------------------------------------------------ */

/* The values of key in fixture case c as doubles; exactly n of them. */
static double *case_doubles(const json_t *c, const char *key, size_t n) {
  size_t got = 0;
  double *v = fixture_doubles(c, key, &got);
  if (v == NULL || got != n)
    fail_msg("fixture key %s: %zu numbers, expected %zu", key, got, n);
  return v;
}

/* As case_doubles, rounded to float (the kernel's parameters and inputs). */
static float *case_floats(const json_t *c, const char *key, size_t n) {
  size_t got = 0;
  float *v = fixture_floats(c, key, &got);
  if (v == NULL || got != n)
    fail_msg("fixture key %s: %zu numbers, expected %zu", key, got, n);
  return v;
}

/* Relative 1e-4 against the float64 reference; values below PAR_FLOOR in
 * magnitude are held to the absolute 1e-4 * PAR_FLOOR instead. */
static const double PAR_RTOL = 1e-4, PAR_FLOOR = 1e-2;

static void test_fixture_parity(void **state) {
  (void)state;
  json_t *root = fixture_load("knife.json");
  assert_non_null(root);
  const json_t *cases = json_object_get(root, "cases");
  assert_true(json_is_array(cases));
  assert_true(json_array_size(cases) >= 4);
  enum { G_LOGPDF, G_LOSS, G_MEANS, G_LOGVAR, G_TRI, G_WEIGH, G_N };
  static const char *groups[G_N] = {"logpdf",      "loss",     "grad_means",
                                    "grad_logvar", "grad_tri", "grad_weigh"};
  fixture_stats_t st[G_N];
  memset(st, 0, sizeof st);
  const double atol = PAR_RTOL * PAR_FLOOR;
  size_t bad = 0, ci;
  const json_t *c;
  json_array_foreach(cases, ci, c) {
    int d = (int)fixture_int(c, "d"), K = (int)fixture_int(c, "K");
    int n = (int)fixture_int(c, "n");
    assert_true(d > 0 && K > 0 && n > 0);
    size_t Kd = (size_t)K * (size_t)d, Kdd = Kd * (size_t)d;
    size_t ldx = (size_t)d + 5;
    fixture_knife_t f;
    fk_create(&f, d, K, n);
    float *means = case_floats(c, "means", Kd);
    float *logvar = case_floats(c, "logvar", Kd);
    float *tri = case_floats(c, "tri", Kdd);
    float *weigh = case_floats(c, "weigh", (size_t)K);
    float *xc = case_floats(c, "x", (size_t)n * (size_t)d);
    double *logpdf = case_doubles(c, "logpdf", (size_t)n);
    double *loss = case_doubles(c, "loss", 1);
    double *gm = case_doubles(c, "grad_means", Kd);
    double *glv = case_doubles(c, "grad_logvar", Kd);
    double *gt = case_doubles(c, "grad_tri", Kdd);
    double *gw = case_doubles(c, "grad_weigh", (size_t)K);
    memcpy(f.k.means, means, Kd * sizeof(float));
    memcpy(f.k.logvar, logvar, Kd * sizeof(float));
    memcpy(f.k.tri, tri, Kdd * sizeof(float));
    memcpy(f.k.weigh, weigh, (size_t)K * sizeof(float));
    /* Rows with a stride ldx > d; the padding is NaN and must not be read. */
    float *x = malloc((size_t)n * ldx * sizeof(float));
    assert_non_null(x);
    for (int r = 0; r < n; r++)
      for (size_t j = 0; j < ldx; j++)
        x[(size_t)r * ldx + j] =
            j < (size_t)d ? xc[(size_t)r * (size_t)d + j] : NAN;

    char what[64];
    double *lp = malloc((size_t)n * sizeof(double));
    assert_non_null(lp);
    lsmi_knife_logpdf(&f.k, lp, f.scratch, x, ldx, n);
    snprintf(what, sizeof what, "d=%d logpdf", d);
    bad += fixture_check_d(what, lp, logpdf, (size_t)n, PAR_RTOL, atol,
                           &st[G_LOGPDF]);
    double l = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, n);
    snprintf(what, sizeof what, "d=%d loss", d);
    bad += fixture_check_d(what, &l, loss, 1, PAR_RTOL, atol, &st[G_LOSS]);
    snprintf(what, sizeof what, "d=%d grad_means", d);
    bad +=
        fixture_check_f(what, f.g.means, gm, Kd, PAR_RTOL, atol, &st[G_MEANS]);
    snprintf(what, sizeof what, "d=%d grad_logvar", d);
    bad += fixture_check_f(what, f.g.logvar, glv, Kd, PAR_RTOL, atol,
                           &st[G_LOGVAR]);
    snprintf(what, sizeof what, "d=%d grad_tri", d);
    bad += fixture_check_f(what, f.g.tri, gt, Kdd, PAR_RTOL, atol, &st[G_TRI]);
    snprintf(what, sizeof what, "d=%d grad_weigh", d);
    bad += fixture_check_f(what, f.g.weigh, gw, (size_t)K, PAR_RTOL, atol,
                           &st[G_WEIGH]);

    free(lp);
    free(x);
    free(means), free(logvar), free(tri), free(weigh), free(xc);
    free(logpdf), free(loss), free(gm), free(glv), free(gt), free(gw);
    fk_destroy(&f);
  }
  for (int i = 0; i < G_N; i++)
    printf("parity %-11s max rel err %.3g (floor %g), max abs err %.3g\n",
           groups[i], st[i].max_rel, PAR_FLOOR, st[i].max_abs);
  json_decref(root);
  assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------------ */
/* 3. Contracts                                                             */
/* ------------------------------------------------------------------------ */

static void test_nparams_bind(void **state) {
  (void)state;
  assert_int_equal(lsmi_knife_nparams(7, 5), 2 * 5 * 7 + 5 * 7 * 7 + 5);
  float block[2 * 5 * 7 + 5 * 7 * 7 + 5];
  lsmi_knife_t k;
  lsmi_knife_bind(&k, block, 7, 5);
  assert_int_equal(k.d, 7);
  assert_int_equal(k.K, 5);
  assert_ptr_equal(k.means, block);
  assert_ptr_equal(k.logvar, block + 35);
  assert_ptr_equal(k.tri, block + 70);
  assert_ptr_equal(k.weigh, block + 70 + 245);
  /* Scratch grows with the batch and holds z of every component plus one
   * (B, d) work matrix. */
  assert_true(lsmi_knife_nscratch(7, 5, 1) >= (5 + 1) * 7);
  assert_true(lsmi_knife_nscratch(7, 5, 64) > lsmi_knife_nscratch(7, 5, 32));
}

static void test_init(void **state) {
  (void)state;
  int d = 4, K = 3;
  fixture_knife_t f;
  fk_create(&f, d, K, 1);
  lsmi_rng_t rng, ref;
  lsmi_rng_seed(&rng, 42, LSMI_STREAM_KNIFE1);
  lsmi_rng_seed(&ref, 42, LSMI_STREAM_KNIFE1);
  lsmi_knife_init(&f.k, &rng);
  /* means, logvar, tri ~ N(0,1) drawn in that order, row-major. */
  size_t n = (size_t)K * (size_t)d * 2 + (size_t)K * (size_t)d * (size_t)d;
  for (size_t i = 0; i < n; i++)
    assert_true(f.params[i] == (float)lsmi_rng_normal(&ref));
  /* The next draw is where the generator was left: init drew nothing more. */
  assert_true(lsmi_rng_next(&rng) == lsmi_rng_next(&ref));
  for (int c = 0; c < K; c++)
    assert_true(f.k.weigh[c] == 1.0f);
  fk_destroy(&f);
}

static void test_logpdf_matches_loss(void **state) {
  (void)state;
  int d = 9, K = 5, B = 17;
  size_t ldx = 12;
  fixture_knife_t f;
  fk_create(&f, d, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 5, 1);
  lsmi_knife_init(&f.k, &rng);
  float *x = make_x(&rng, B, d, ldx, 2.0);
  double loss = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, B);
  double nll = mean_nll(&f, x, ldx, B);
  assert_true(isfinite(loss));
  assert_true(fabs(loss - nll) <= 1e-12 * fabs(nll));
  /* log p <= log of the largest component density at its mode, and for a
   * d=9 mixture with these scales it is well below 0 on average. */
  assert_true(loss > 0.0);
  free(x);
  fk_destroy(&f);
}

/* Rows do not depend on the batch around them or on the scratch's history. */
static void test_rows_independent(void **state) {
  (void)state;
  int d = 16, K = 5, B = 40;
  size_t ldx = 16;
  fixture_knife_t f;
  fk_create(&f, d, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 6, 1);
  lsmi_knife_init(&f.k, &rng);
  float *x = make_x(&rng, B, d, ldx, 1.0);
  double all[40], one;
  lsmi_knife_logpdf(&f.k, all, f.scratch, x, ldx, B);
  for (int n = 0; n < B; n++) {
    lsmi_knife_logpdf(&f.k, &one, f.scratch, x + (size_t)n * ldx, ldx, 1);
    assert_true(fabs(one - all[n]) <= 1e-5 * fabs(all[n]));
  }
  free(x);
  fk_destroy(&f);
}

/* The gradient block is overwritten, whatever it held before. */
static void test_grad_overwritten(void **state) {
  (void)state;
  int d = 6, K = 5, B = 8;
  size_t ldx = 6;
  fixture_knife_t f;
  fk_create(&f, d, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 7, 1);
  lsmi_knife_init(&f.k, &rng);
  float *x = make_x(&rng, B, d, ldx, 1.0);
  size_t np = lsmi_knife_nparams(d, K);
  float *first = malloc(np * sizeof(float));
  assert_non_null(first);
  for (size_t i = 0; i < np; i++)
    f.grads[i] = 0.0f;
  double l1 = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, B);
  memcpy(first, f.grads, np * sizeof(float));
  for (size_t i = 0; i < np; i++)
    f.grads[i] = (i % 2) ? NAN : 1e30f;
  for (size_t i = 0; i < lsmi_knife_nscratch(d, K, B); i++)
    f.scratch[i] = NAN;
  double l2 = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, B);
  assert_true(l1 == l2);
  assert_memory_equal(first, f.grads, np * sizeof(float));
  free(first);
  free(x);
  fk_destroy(&f);
}

/* Adam over the lower triangle only moves the parameters exactly as a whole
 * step does: the skipped ones never get a gradient. */
static void test_adam_lower_triangle(void **state) {
  (void)state;
  enum { D = 9, K = 3, B = 6, STEPS = 5 };
  fixture_knife_t a, b;
  fk_create(&a, D, K, B);
  fk_create(&b, D, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 17, 2);
  lsmi_knife_init(&a.k, &rng);
  size_t np = lsmi_knife_nparams(D, K);
  memcpy(b.params, a.params, np * sizeof(float));
  float *ma = calloc(np, sizeof(float)), *va = calloc(np, sizeof(float));
  float *mb = calloc(np, sizeof(float)), *vb = calloc(np, sizeof(float));
  assert_true(ma && va && mb && vb);
  lsmi_adam_t whole, part;
  lsmi_adam_init(&whole, np, ma, va);
  lsmi_adam_init(&part, np, mb, vb);
  float *x = make_x(&rng, B, D, D, 1.0);
  for (int step = 0; step < STEPS; step++) {
    lsmi_knife_loss_backward(&a.k, &a.g, a.scratch, x, D, B);
    lsmi_adam_step(&whole, a.params, a.grads, 1e-2);
    lsmi_knife_loss_backward(&b.k, &b.g, b.scratch, x, D, B);
    lsmi_adam_begin(&part, 1e-2);
    lsmi_knife_adam_update(&b.k, &b.g, &part);
  }
  assert_memory_equal(a.params, b.params, np * sizeof(float));
  /* and the parameters did move */
  lsmi_rng_seed(&rng, 17, 2);
  fixture_knife_t c;
  fk_create(&c, D, K, B);
  lsmi_knife_init(&c.k, &rng);
  assert_true(memcmp(c.params, a.params, np * sizeof(float)) != 0);
  free(x);
  free(ma), free(va), free(mb), free(vb);
  fk_destroy(&a);
  fk_destroy(&b);
  fk_destroy(&c);
}

static void test_large_x_finite(void **state) {
  (void)state;
  int d = 16, K = 5, B = 4;
  size_t ldx = 16;
  fixture_knife_t f;
  fk_create(&f, d, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 8, 1);
  lsmi_knife_init(&f.k, &rng);
  float *x = make_x(&rng, B, d, ldx, 1.0);
  /* |x| up to 1e3: every c_k is about -1e7 to -1e9, so exp(c_k) underflows
   * and only the max-subtraction keeps log p finite. */
  static const float mags[] = {1e2f, -3e2f, 1e3f, -1e3f};
  for (int n = 0; n < B; n++)
    for (int j = 0; j < d; j++)
      x[(size_t)n * ldx + (size_t)j] *= mags[n];
  double logp[4];
  lsmi_knife_logpdf(&f.k, logp, f.scratch, x, ldx, B);
  for (int n = 0; n < B; n++) {
    assert_true(isfinite(logp[n]));
    assert_true(logp[n] < -1e4);
  }
  double loss = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, B);
  assert_true(isfinite(loss));
  for (size_t i = 0; i < lsmi_knife_nparams(d, K); i++)
    assert_true(isfinite(f.grads[i]));
  /* Beyond the float range ‖z‖² overflows: log p is -inf, as
   * torch.logsumexp gives, not the NaN of -inf - -inf. */
  for (int j = 0; j < d; j++)
    x[j] = 1e30f;
  lsmi_knife_logpdf(&f.k, logp, f.scratch, x, ldx, 1);
  assert_true(isinf(logp[0]) && logp[0] < 0.0);
  free(x);
  fk_destroy(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nparams_bind),
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_gradcheck_d1),
      cmocka_unit_test(test_gradcheck_d3),
      cmocka_unit_test(test_gradcheck_d7),
      cmocka_unit_test(test_gradcheck_d16),
      cmocka_unit_test(test_fixture_parity),
      cmocka_unit_test(test_logpdf_matches_loss),
      cmocka_unit_test(test_rows_independent),
      cmocka_unit_test(test_grad_overwritten),
      cmocka_unit_test(test_large_x_finite),
      cmocka_unit_test(test_adam_lower_triangle),
  };
  return cmocka_run_group_tests_name("knife", tests, NULL, NULL);
}
