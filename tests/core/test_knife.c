/*
 * test_knife.c — unit tests of the KNIFE marginal kernel (core/knife.c).
 *
 *  - every gradient element checked against central finite differences of
 *    the kernel's own float32 loss, for several d, K, B and a row stride
 *    ldx > d (ggml test-grad0 style: op, index and both values on failure);
 *  - parity with the float64 PyTorch fixture (tests/fixtures/knife.json):
 *    logpdf per row, loss and all four gradient groups;
 *  - contracts: logpdf agrees with the loss, the gradient block is
 *    overwritten, rows are independent of the batch they come in, large |x|
 *    stays finite, init draws in the documented order with weigh = 1;
 *  - the fused training step (lsmi_knife_train_step) against the step in
 *    three calls, to the bit, moments included, and sampled gradient checks
 *    of both at d = 512 and 768;
 *  - the step and logpdf with their components spread over threads
 *    (par.h), against one thread, to the bit.
 *
 * Fixtures are read through tests/fixture.h (tests/fixtures/, or
 * $LSMI_FIXTURES).
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fixture.h"
#include "gemm.h"
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
  lsmi_knife_logpdf(&f->k, logp, f->scratch, x, ldx, B, NULL);
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
  /* 21: one whole block of 16 rows and a tail (the small-d path). */
  static const int Bs[] = {1, 4, 13, 21};
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
static void test_gradcheck_d2(void **state) {
  (void)state;
  gradcheck_d(2);
}
static void test_gradcheck_d3(void **state) {
  (void)state;
  gradcheck_d(3);
}
static void test_gradcheck_d5(void **state) {
  (void)state;
  gradcheck_d(5);
}
static void test_gradcheck_d7(void **state) {
  (void)state;
  gradcheck_d(7);
}
/* 8 and 9: the last d of the written-out products and the first through
 * lsmi_gemm. */
static void test_gradcheck_d8(void **state) {
  (void)state;
  gradcheck_d(8);
}
static void test_gradcheck_d9(void **state) {
  (void)state;
  gradcheck_d(9);
}
static void test_gradcheck_d16(void **state) {
  (void)state;
  gradcheck_d(16);
}
/* 17 and 33: whole 16-column vectors of the backward pass and a tail. */
static void test_gradcheck_d17(void **state) {
  (void)state;
  gradcheck_d(17);
}
static void test_gradcheck_d33(void **state) {
  (void)state;
  gradcheck_d(33);
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
    lsmi_knife_logpdf(&f.k, lp, f.scratch, x, ldx, n, NULL);
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
  lsmi_knife_logpdf(&f.k, all, f.scratch, x, ldx, B, NULL);
  for (int n = 0; n < B; n++) {
    lsmi_knife_logpdf(&f.k, &one, f.scratch, x + (size_t)n * ldx, ldx, 1, NULL);
    assert_true(fabs(one - all[n]) <= 1e-5 * fabs(all[n]));
  }
  free(x);
  fk_destroy(&f);
}

/* The gradient block is overwritten, whatever it held before, and nothing
 * in scratch is read before it is written (at d = 6 the written-out
 * products, at 12 lsmi_gemm; B = 21 has a partial block of 16 rows). */
static void grad_overwritten_d(int d) {
  int K = 5, B = 21;
  size_t ldx = (size_t)d;
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
  assert_true(isfinite(l1) && l1 == l2);
  assert_memory_equal(first, f.grads, np * sizeof(float));
  free(first);
  free(x);
  fk_destroy(&f);
}

static void test_grad_overwritten(void **state) {
  (void)state;
  grad_overwritten_d(6);
  grad_overwritten_d(12);
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

/* The diagonal and upper triangle of tri stay as they are to the bit, also
 * where the update steps them along with a neighbouring row (d = 40: the
 * bottom rows are merged, the top ones are not; d = 5: the whole block is
 * one range), whatever they hold. */
static void adam_upper_untouched_d(const int D) {
  enum { K = 2, B = 7, STEPS = 4 };
  fixture_knife_t f;
  fk_create(&f, D, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 23, 2);
  lsmi_knife_init(&f.k, &rng);
  static const float odd[] = {-0.0f, 0.0f, 1e30f, -3.5f, NAN, INFINITY};
  size_t Kdd = (size_t)K * D * D, np = lsmi_knife_nparams(D, K);
  for (size_t i = 0; i < Kdd; i++)
    if (i % D >= (i / D) % D)
      f.k.tri[i] = odd[i % 6];
  float *before = malloc(np * sizeof(float));
  float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
  assert_true(before && m && v);
  memcpy(before, f.params, np * sizeof(float));
  lsmi_adam_t adam;
  lsmi_adam_init(&adam, np, m, v);
  float *x = make_x(&rng, B, D, D, 1.0);
  for (int step = 0; step < STEPS; step++) {
    double loss = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, D, B);
    assert_true(isfinite(loss));
    lsmi_adam_begin(&adam, 1e-2);
    lsmi_knife_adam_update(&f.k, &f.g, &adam);
  }
  size_t moved = 0;
  for (size_t i = 0; i < Kdd; i++) {
    size_t row = (i / D) % D, col = i % D;
    if (col >= row)
      assert_memory_equal(&f.k.tri[i],
                          &before[(size_t)(f.k.tri - f.params) + i],
                          sizeof(float));
    else
      moved += f.k.tri[i] != before[(size_t)(f.k.tri - f.params) + i];
  }
  assert_true(moved > Kdd / 4); /* and the lower triangle did move */
  free(before), free(m), free(v), free(x);
  fk_destroy(&f);
}

static void test_adam_upper_untouched(void **state) {
  (void)state;
  adam_upper_untouched_d(40);
  adam_upper_untouched_d(5);
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
  lsmi_knife_logpdf(&f.k, logp, f.scratch, x, ldx, B, NULL);
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
  lsmi_knife_logpdf(&f.k, logp, f.scratch, x, ldx, 1, NULL);
  assert_true(isinf(logp[0]) && logp[0] < 0.0);
  free(x);
  fk_destroy(&f);
}

/* ------------------------------------------------------------------------ */
/* 4. An independent reference in double, at larger d                       */
/* ------------------------------------------------------------------------ */

/*
 * The loss and every gradient element by the textbook formulas, per sample,
 * in double: z = a + L a, the backward through da = dz + L^T dz. Nothing is
 * shared with the kernel's layout (feature-major batch, one product
 * backward), so this checks the reformulation at sizes where finite
 * differences of every element would take minutes.
 */
static double reference(const lsmi_knife_t *k, const float *x, size_t ldx,
                        int B, double *gm, double *glv, double *gt,
                        double *gw) {
  int d = k->d, K = k->K;
  size_t dd = (size_t)d, KK = (size_t)K;
  double *s = malloc(KK * dd * sizeof(double));
  double *th = malloc(KK * dd * sizeof(double));
  double *a = malloc(KK * dd * sizeof(double));
  double *z = malloc(KK * dd * sizeof(double));
  double *dz = malloc(dd * sizeof(double)), *da = malloc(dd * sizeof(double));
  double *c = malloc(KK * sizeof(double)),
         *logdet = malloc(KK * sizeof(double));
  double *lsw = malloc(KK * sizeof(double)), *G = calloc(KK, sizeof(double));
  assert_true(s && th && a && z && dz && da && c && logdet && lsw && G);
  memset(gm, 0, KK * dd * sizeof(double));
  memset(glv, 0, KK * dd * sizeof(double));
  memset(gt, 0, KK * dd * dd * sizeof(double));
  double wmax = -INFINITY, wsum = 0.0;
  for (int q = 0; q < K; q++)
    wmax = fmax(wmax, (double)k->weigh[q]);
  for (int q = 0; q < K; q++)
    wsum += exp((double)k->weigh[q] - wmax);
  for (int q = 0; q < K; q++) {
    lsw[q] = (double)k->weigh[q] - wmax - log(wsum);
    logdet[q] = 0.0;
    for (size_t j = 0; j < dd; j++) {
      th[q * dd + j] = tanh((double)k->logvar[q * dd + j]);
      s[q * dd + j] = exp(th[q * dd + j]);
      logdet[q] += log(s[q * dd + j] + 1e-8);
    }
  }
  double loss = 0.0;
  for (int n = 0; n < B; n++) {
    const float *xn = x + (size_t)n * ldx;
    double cmax = -INFINITY;
    for (int q = 0; q < K; q++) {
      const float *L = k->tri + (size_t)q * dd * dd;
      double *aq = a + (size_t)q * dd, *zq = z + (size_t)q * dd, sq = 0.0;
      for (size_t j = 0; j < dd; j++)
        aq[j] = ((double)xn[j] - (double)k->means[q * dd + j]) * s[q * dd + j];
      for (size_t i = 0; i < dd; i++) {
        zq[i] = aq[i];
        for (size_t j = 0; j < i; j++)
          zq[i] += (double)L[i * dd + j] * aq[j];
        sq += zq[i] * zq[i];
      }
      c[q] = -0.5 * sq + logdet[q] + lsw[q];
      cmax = fmax(cmax, c[q]);
    }
    double sum = 0.0;
    for (int q = 0; q < K; q++)
      sum += exp(c[q] - cmax);
    double lse = cmax + log(sum);
    loss -= lse - 0.5 * (double)d * log(2.0 * M_PI);
    for (int q = 0; q < K; q++) {
      const float *L = k->tri + (size_t)q * dd * dd;
      double g = -exp(c[q] - lse) / (double)B;
      const double *aq = a + (size_t)q * dd, *zq = z + (size_t)q * dd;
      G[q] += g;
      for (size_t i = 0; i < dd; i++)
        dz[i] = -g * zq[i];
      for (size_t i = 0; i < dd; i++)
        for (size_t j = 0; j < i; j++)
          gt[(size_t)q * dd * dd + i * dd + j] += dz[i] * aq[j];
      for (size_t j = 0; j < dd; j++) {
        da[j] = dz[j];
        for (size_t i = j + 1; i < dd; i++)
          da[j] += (double)L[i * dd + j] * dz[i];
        gm[q * dd + j] -= da[j] * s[q * dd + j];
        glv[q * dd + j] +=
            da[j] * ((double)xn[j] - (double)k->means[q * dd + j]);
      }
    }
  }
  double Gsum = 0.0;
  for (int q = 0; q < K; q++)
    Gsum += G[q];
  for (int q = 0; q < K; q++) {
    gw[q] = G[q] - exp(lsw[q]) * Gsum;
    for (size_t j = 0; j < dd; j++) {
      double sj = s[q * dd + j], t = th[q * dd + j];
      double ds = glv[q * dd + j] + G[q] / (sj + 1e-8);
      glv[q * dd + j] = ds * sj * (1.0 - t * t);
    }
  }
  free(s), free(th), free(a), free(z), free(dz), free(da), free(c);
  free(logdet), free(lsw), free(G);
  return loss / (double)B;
}

/* Elements of a group off by more than tol = 1e-5 max|ref| + 1e-4 |ref|;
 * on and above the diagonal of tri the kernel must give exactly 0. */
static size_t ref_check(const char *what, int d, const float *got,
                        const double *ref, size_t n, int is_tri) {
  double scale = 0.0, worst = 0.0;
  for (size_t i = 0; i < n; i++)
    scale = fmax(scale, fabs(ref[i]));
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    size_t row = (i / (size_t)d) % (size_t)d, col = i % (size_t)d;
    if (is_tri && col >= row) {
      if (got[i] != 0.0f) {
        if (bad++ < 5)
          printf("FAIL %s d=%d [%zu]: %.9g above the diagonal\n", what, d, i,
                 (double)got[i]);
      }
      continue;
    }
    double tol = 1e-5 * scale + 1e-4 * fabs(ref[i]);
    double err = fabs((double)got[i] - ref[i]);
    worst = fmax(worst, err / tol);
    if (!(err <= tol) && bad++ < 5)
      printf("FAIL %s d=%d [%zu]: kernel %.9g reference %.9g\n", what, d, i,
             (double)got[i], ref[i]);
  }
  printf("reference %-6s d=%-3d worst |k-r|/tol %.3f\n", what, d, worst);
  return bad;
}

static void reference_d(int d) {
  enum { K = 5, B = 32 };
  size_t ldx = (size_t)d + 1, Kd = (size_t)K * (size_t)d;
  fixture_knife_t f;
  fk_create(&f, d, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 4000u + (uint64_t)d, 9);
  lsmi_knife_init(&f.k, &rng);
  for (int c = 0; c < K; c++)
    f.k.weigh[c] = (float)(1.0 + 0.5 * lsmi_rng_normal(&rng));
  /* tri scaled so that ‖z‖² stays moderate at large d: the components
   * then share the rows, and every gradient group is exercised. */
  for (size_t i = 0; i < Kd * (size_t)d; i++)
    f.k.tri[i] *= (float)(1.0 / sqrt((double)d));
  float *x = make_x(&rng, B, d, ldx, 1.0);
  for (int n = 0; n < B; n++)
    for (int j = 0; j < d; j++)
      x[(size_t)n * ldx + (size_t)j] =
          f.k.means[(size_t)(n % K) * (size_t)d + (size_t)j] +
          0.5f * x[(size_t)n * ldx + (size_t)j];
  double *gm = malloc(Kd * sizeof(double)), *glv = malloc(Kd * sizeof(double));
  double *gt = malloc(Kd * (size_t)d * sizeof(double)), gw[K];
  assert_true(gm && glv && gt);
  double lref = reference(&f.k, x, ldx, B, gm, glv, gt, gw);
  double loss = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, B);
  assert_true(fabs(loss - lref) <= 1e-5 * fabs(lref));
  double *lp = malloc(B * sizeof(double));
  assert_non_null(lp);
  lsmi_knife_logpdf(&f.k, lp, f.scratch, x, ldx, B, NULL);
  double nll = 0.0;
  for (int n = 0; n < B; n++)
    nll -= lp[n] / B;
  assert_true(fabs(nll - lref) <= 1e-5 * fabs(lref));
  size_t bad = 0;
  bad += ref_check("means", d, f.g.means, gm, Kd, 0);
  bad += ref_check("logvar", d, f.g.logvar, glv, Kd, 0);
  bad += ref_check("tri", d, f.g.tri, gt, Kd * (size_t)d, 1);
  bad += ref_check("weigh", d, f.g.weigh, gw, K, 0);
  assert_int_equal(bad, 0);
  free(lp), free(gm), free(glv), free(gt), free(x);
  fk_destroy(&f);
}

/* d across the vector and tile sizes of the kernel and of gemm. */
static void test_reference(void **state) {
  (void)state;
  static const int ds[] = {1, 2, 3, 7, 15, 16, 17, 33, 64, 100, 130};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
    reference_d(ds[i]);
}

/* ------------------------------------------------------------------------ */
/* 5. The written-out products at small d against lsmi_gemm's               */
/* ------------------------------------------------------------------------ */

/* Elements of a group where the kernel at small d and at big differ by more
 * than float rounding: 2e-5 max|big| + 2e-5 |big|. */
static size_t small_check(const char *what, int d, int B, const float *small,
                          const float *big, size_t n) {
  double scale = 0.0;
  for (size_t i = 0; i < n; i++)
    scale = fmax(scale, fabs((double)big[i]));
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    double tol = 2e-5 * scale + 2e-5 * fabs((double)big[i]);
    if (!(fabs((double)small[i] - (double)big[i]) <= tol) && bad++ < 5)
      printf("FAIL %s d=%d B=%d [%zu]: small d %.9g, general %.9g\n", what, d,
             B, i, (double)small[i], (double)big[i]);
  }
  return bad;
}

/*
 * A model at d <= 8 (the written-out products) is the same density as one
 * at D = 11 (lsmi_gemm) whose D - d extra features are 0 in x and in every
 * component's means, logvar 0 (s = 1, log(1 + 1e-8) = 0 in float) and no
 * weight in tri below the diagonal: there a = 0 and z = 0 exactly, so c_k
 * is the same up to the order of the sums, and log p differs by
 * -(D - d)/2 log 2π. So the loss, logpdf and the gradients of the shared
 * parameters of the two must agree to float rounding, for batches with
 * whole blocks of 16 rows, a partial block, both, and (logpdf) more than
 * one chunk; a row beyond the float range gives -inf on both.
 */
static void small_vs_general(int d, int B) {
  enum { D = 11, K = 5 };
  size_t dd = (size_t)d, ldx = dd + 2;
  fixture_knife_t fs, fb;
  fk_create(&fs, d, K, B);
  fk_create(&fb, D, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 7000u + (uint64_t)(d * 100 + B), 3);
  lsmi_knife_init(&fs.k, &rng);
  for (int c = 0; c < K; c++)
    fs.k.weigh[c] = (float)(1.0 + 0.5 * lsmi_rng_normal(&rng));
  memset(fb.params, 0, lsmi_knife_nparams(D, K) * sizeof(float));
  for (size_t c = 0; c < K; c++) {
    for (size_t j = 0; j < dd; j++) {
      fb.k.means[c * D + j] = fs.k.means[c * dd + j];
      fb.k.logvar[c * D + j] = fs.k.logvar[c * dd + j];
    }
    for (size_t i = 0; i < D; i++)
      for (size_t j = 0; j < D; j++) {
        float *t = &fb.k.tri[(c * D + i) * D + j];
        if (j >= i)
          *t = 7.5f; /* on and above the diagonal: must not enter */
        else if (i < dd)
          *t = fs.k.tri[(c * dd + i) * dd + j];
      }
    fb.k.weigh[c] = fs.k.weigh[c];
  }
  float *xs = make_x(&rng, B, d, ldx, 1.0);
  float *xb = calloc((size_t)B * D, sizeof(float));
  assert_non_null(xb);
  for (int n = 0; n < B; n++)
    for (size_t j = 0; j < dd; j++) {
      float *xn = xs + (size_t)n * ldx + j;
      *xn = fs.k.means[(size_t)(n % K) * dd + j] + 0.5f * *xn;
      xb[(size_t)n * D + j] = *xn;
    }

  double extra = -0.5 * (double)(D - d) * log(2.0 * M_PI);
  double ls = lsmi_knife_loss_backward(&fs.k, &fs.g, fs.scratch, xs, ldx, B);
  double lb = lsmi_knife_loss_backward(&fb.k, &fb.g, fb.scratch, xb, D, B);
  assert_true(isfinite(ls));
  assert_true(fabs((ls - extra) - lb) <= 1e-6 * fabs(lb));
  size_t Kd = (size_t)K * dd, bad = 0;
  float *gb = malloc(Kd * dd * sizeof(float));
  assert_non_null(gb);
  for (size_t c = 0; c < K; c++)
    for (size_t j = 0; j < dd; j++)
      gb[c * dd + j] = fb.g.means[c * D + j];
  bad += small_check("means", d, B, fs.g.means, gb, Kd);
  for (size_t c = 0; c < K; c++)
    for (size_t j = 0; j < dd; j++)
      gb[c * dd + j] = fb.g.logvar[c * D + j];
  bad += small_check("logvar", d, B, fs.g.logvar, gb, Kd);
  for (size_t c = 0; c < K; c++)
    for (size_t i = 0; i < dd; i++)
      for (size_t j = 0; j < dd; j++) {
        gb[(c * dd + i) * dd + j] = fb.g.tri[(c * D + i) * D + j];
        if (j >= i && fs.g.tri[(c * dd + i) * dd + j] != 0.0f && bad++ < 5)
          printf("FAIL tri d=%d [%zu][%zu][%zu] not 0 above the diagonal\n", d,
                 c, i, j);
      }
  bad += small_check("tri", d, B, fs.g.tri, gb, Kd * dd);
  bad += small_check("weigh", d, B, fs.g.weigh, fb.g.weigh, K);
  assert_int_equal(bad, 0);

  /* logpdf through the evaluation's chunks. */
  double *ps = malloc((size_t)B * sizeof(double));
  double *pb = malloc((size_t)B * sizeof(double));
  assert_true(ps && pb);
  lsmi_knife_logpdf(&fs.k, ps, fs.scratch, xs, ldx, B, NULL);
  lsmi_knife_logpdf(&fb.k, pb, fb.scratch, xb, D, B, NULL);
  for (int n = 0; n < B; n++)
    assert_true(fabs((ps[n] + extra) - pb[n]) <= 1e-5 * fabs(pb[n]) + 1e-5);
  /* Beyond the float range: -inf on both paths. */
  for (size_t j = 0; j < dd; j++)
    xs[j] = xb[j] = 1e30f;
  lsmi_knife_logpdf(&fs.k, ps, fs.scratch, xs, ldx, 1, NULL);
  lsmi_knife_logpdf(&fb.k, pb, fb.scratch, xb, D, 1, NULL);
  assert_true(isinf(ps[0]) && ps[0] < 0.0);
  assert_true(isinf(pb[0]) && pb[0] < 0.0);
  free(ps), free(pb), free(gb), free(xs), free(xb);
  fk_destroy(&fs);
  fk_destroy(&fb);
}

static void test_small_d_matches_general(void **state) {
  (void)state;
  static const int ds[] = {1, 2, 3, 5, 8};
  static const int Bs[] = {1, 13, 32, 45, 150};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
    for (size_t b = 0; b < sizeof Bs / sizeof Bs[0]; b++)
      small_vs_general(ds[i], Bs[b]);
}

/* ------------------------------------------------------------------------ */
/* 6. Every test again on the portable gemm                                 */
/* ------------------------------------------------------------------------ */

/* The gemm in use before a test forced the portable one. */
static char gemm_before[32];

static int use_generic_gemm(void **state) {
  (void)state;
  snprintf(gemm_before, sizeof gemm_before, "%s", lsmi_gemm_name());
  return lsmi_gemm_select("generic");
}

static int restore_gemm(void **state) {
  (void)state;
  return lsmi_gemm_select(gemm_before);
}

/* ------------------------------------------------------------------------ */
/* 8. The fused training step against the step in three calls              */
/* ------------------------------------------------------------------------ */

/* Offset in a moments block of the moment of tri_c[i][j] as
 * lsmi_knife_train_step keeps it (knife.h): packed rows from d = 128 on,
 * row i of [1, d) taking min(16 ceil(i / 16), d) floats; (size_t)-1 where
 * the packed rows hold no moment (j beyond row i's floats, or row 0). */
static size_t fused_moment_at(int d, int K, int c, int i, int j) {
  size_t dd = (size_t)d, tri0 = 2 * (size_t)K * dd;
  if (d < 128)
    return tri0 + ((size_t)c * dd + (size_t)i) * dd + (size_t)j;
  size_t per = 0, before = 0;
  for (size_t r = 1; r < dd; r++) {
    size_t n = (r + 15) & ~(size_t)15;
    n = n < dd ? n : dd;
    if (r < (size_t)i)
      before += n;
    per += n;
    if (r == (size_t)i && (size_t)j >= n)
      return (size_t)-1;
  }
  if (i == 0)
    return (size_t)-1;
  return tri0 + (size_t)c * per + before + (size_t)j;
}

/*
 * lsmi_knife_train_step against lsmi_knife_loss_backward, lsmi_adam_begin
 * and lsmi_knife_adam_update (the previous formulation, which the
 * gradient checks hold against finite differences) on the same inputs,
 * `steps` steps with a fresh batch each, for d below the fused step's
 * threshold (the same calls) and from it on, across the vector and
 * row-block edges of the fused backward. Parameters, losses and every
 * moment (the factor's through the packed layout) must agree within a
 * few ulp of the group's scale; with lsmi's own kernels ("avx512",
 * "generic") the two do the same arithmetic in the same order and must
 * agree to the bit.
 */
static void fused_vs_calls(int d, int K, int B, int steps) {
  size_t np = lsmi_knife_nparams(d, K);
  size_t ldx = (size_t)d + 2;
  fixture_knife_t a, b;
  fk_create(&a, d, K, B);
  fk_create(&b, d, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 9000u + (uint64_t)(d * 10 + K), 4);
  lsmi_knife_init(&a.k, &rng);
  for (int c = 0; c < K; c++)
    a.k.weigh[c] = (float)(1.0 + 0.5 * lsmi_rng_normal(&rng));
  size_t Kd = (size_t)K * (size_t)d;
  for (size_t i = 0; i < Kd * (size_t)d; i++)
    a.k.tri[i] *= (float)(1.0 / sqrt((double)d));
  memcpy(b.params, a.params, np * sizeof(float));
  float *ma = calloc(np, sizeof(float)), *va = calloc(np, sizeof(float));
  float *mb = calloc(np, sizeof(float)), *vb = calloc(np, sizeof(float));
  assert_true(ma && va && mb && vb);
  lsmi_adam_t old, fused;
  lsmi_adam_init(&old, np, ma, va);
  lsmi_adam_init(&fused, np, mb, vb);
  int exact = strcmp(lsmi_gemm_name(), "blas") != 0;
  for (int t = 0; t < steps; t++) {
    float *x = make_x(&rng, B, d, ldx, 1.0);
    for (int n = 0; n < B; n++)
      for (int j = 0; j < d; j++)
        x[(size_t)n * ldx + (size_t)j] =
            a.k.means[(size_t)(n % K) * (size_t)d + (size_t)j] +
            0.5f * x[(size_t)n * ldx + (size_t)j];
    double l1 = lsmi_knife_loss_backward(&a.k, &a.g, a.scratch, x, ldx, B);
    lsmi_adam_begin(&old, 1e-2);
    lsmi_knife_adam_update(&a.k, &a.g, &old);
    double l2 = lsmi_knife_train_step(&b.k, &b.g, &fused, 1e-2, b.scratch, x,
                                      ldx, B, NULL);
    assert_true(isfinite(l1));
    if (exact)
      assert_true(l1 == l2);
    else
      assert_true(fabs(l1 - l2) <= 1e-5 * fabs(l1));
    free(x);
  }
  assert_int_equal(old.t, fused.t);
  /* Each element of the three calls' blocks and where the fused step
   * keeps it; a factor moment the packed rows do not hold must be 0. */
  const float *pa[3] = {a.params, ma, va}, *pb[3] = {b.params, mb, vb};
  static const char *const what[3] = {"params", "m", "v"};
  size_t bad = 0, differ = 0, tri0 = 2 * Kd, tri1 = tri0 + Kd * (size_t)d;
  for (int w = 0; w < 3; w++) {
    double scale = 0.0;
    for (size_t i = 0; i < np; i++)
      if (isfinite(pa[w][i]))
        scale = fmax(scale, fabs((double)pa[w][i]));
    double tol = exact ? 0.0 : 8.0 * FLT_EPSILON * scale;
    for (size_t i = 0; i < np; i++) {
      size_t at = i;
      if (w > 0 && i >= tri0 && i < tri1) {
        size_t t = i - tri0, dd = (size_t)d;
        at = fused_moment_at(d, K, (int)(t / (dd * dd)), (int)(t / dd % dd),
                             (int)(t % dd));
      }
      float want = pa[w][i], got = at == (size_t)-1 ? 0.0f : pb[w][at];
      int same = memcmp(&want, &got, sizeof(float)) == 0;
      differ += !same;
      if (!same && !(fabs((double)want - (double)got) <= tol) && bad++ < 5)
        printf("FAIL fused step d=%d K=%d B=%d %s[%zu]: three calls %.9g, "
               "fused %.9g\n",
               d, K, B, what[w], i, (double)want, (double)got);
    }
  }
  printf("fused step d=%-3d K=%d B=%d %d steps (%s): %zu of %zu elements "
         "differ, %zu beyond tolerance\n",
         d, K, B, steps, lsmi_gemm_name(), differ, 3 * np, bad);
  assert_int_equal(bad, 0);
  free(ma), free(va), free(mb), free(vb);
  fk_destroy(&a);
  fk_destroy(&b);
}

static void test_fused_step(void **state) {
  (void)state;
  /* Below the threshold (the three calls themselves), at it, and across
   * the edges of the 16-lane vectors and of the row blocks beyond. */
  static const int ds[] = {2, 9, 64, 128, 129, 143, 144, 200};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
    fused_vs_calls(ds[i], 5, 32, 3);
  fused_vs_calls(130, 1, 7, 2);
  fused_vs_calls(140, 3, 45, 2);
  fused_vs_calls(512, 5, 32, 2);
}

/* ------------------------------------------------------------------------ */
/* 9. The components on several threads (par.h)                             */
/* ------------------------------------------------------------------------ */

/* A runner that takes the pieces last to first, on the calling thread. */
static void run_reversed(void *ctx, int n, lsmi_par_fn fn, void *arg) {
  (void)ctx;
  for (int i = n - 1; i >= 0; i--)
    fn(arg, i);
}

/* A runner with a second thread: both claim pieces from one counter. */
typedef struct two_threads {
  atomic_int next;
  int n;
  lsmi_par_fn fn;
  void *arg;
} two_threads_t;

static void *two_threads_main(void *p) {
  two_threads_t *tt = p;
  for (int i; (i = atomic_fetch_add(&tt->next, 1)) < tt->n;)
    tt->fn(tt->arg, i);
  return NULL;
}

static void run_two_threads(void *ctx, int n, lsmi_par_fn fn, void *arg) {
  (void)ctx;
  two_threads_t tt = {.n = n, .fn = fn, .arg = arg};
  atomic_init(&tt.next, 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, two_threads_main, &tt), 0);
  two_threads_main(&tt);
  pthread_join(t, NULL);
}

/*
 * The fused step and logpdf with their components spread (the pieces run
 * last to first, and on two threads at once) against the same on one
 * thread in order: every parameter, moment, loss and log-density must be
 * the same bits.
 */
static void par_vs_serial(int d, int K, int B, int steps) {
  static const lsmi_par_t pars[2] = {{.run = run_reversed},
                                     {.run = run_two_threads}};
  size_t np = lsmi_knife_nparams(d, K), ldx = (size_t)d + 3;
  fixture_knife_t f[3];
  float *m[3], *v[3];
  lsmi_adam_t adam[3];
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 7100u + (uint64_t)d, 4);
  for (int r = 0; r < 3; r++) {
    fk_create(&f[r], d, K, B);
    m[r] = calloc(np, sizeof(float));
    v[r] = calloc(np, sizeof(float));
    assert_true(m[r] && v[r]);
    lsmi_adam_init(&adam[r], np, m[r], v[r]);
  }
  lsmi_knife_init(&f[0].k, &rng);
  for (size_t i = 0; i < (size_t)K * (size_t)d * (size_t)d; i++)
    f[0].k.tri[i] *= (float)(1.0 / sqrt((double)d));
  memcpy(f[1].params, f[0].params, np * sizeof(float));
  memcpy(f[2].params, f[0].params, np * sizeof(float));
  for (int t = 0; t < steps; t++) {
    float *x = make_x(&rng, B, d, ldx, 1.0);
    double loss[3];
    for (int r = 0; r < 3; r++)
      loss[r] =
          lsmi_knife_train_step(&f[r].k, &f[r].g, &adam[r], 1e-2, f[r].scratch,
                                x, ldx, B, r ? &pars[r - 1] : NULL);
    assert_true(isfinite(loss[0]));
    assert_true(loss[1] == loss[0] && loss[2] == loss[0]);
    free(x);
  }
  for (int r = 1; r < 3; r++) {
    assert_memory_equal(f[r].params, f[0].params, np * sizeof(float));
    assert_memory_equal(m[r], m[0], np * sizeof(float));
    assert_memory_equal(v[r], v[0], np * sizeof(float));
  }
  /* logpdf over more rows than one block, and a partial block */
  int rows = 2 * B + 5;
  float *x = make_x(&rng, rows, d, ldx, 1.0);
  double *lp = calloc(3 * (size_t)rows, sizeof(double));
  assert_non_null(lp);
  fixture_knife_t e;
  fk_create(&e, d, K, rows);
  memcpy(e.params, f[0].params, np * sizeof(float));
  for (int r = 0; r < 3; r++)
    lsmi_knife_logpdf(&e.k, lp + (size_t)r * (size_t)rows, e.scratch, x, ldx,
                      rows, r ? &pars[r - 1] : NULL);
  assert_memory_equal(lp + rows, lp, (size_t)rows * sizeof(double));
  assert_memory_equal(lp + 2 * (size_t)rows, lp, (size_t)rows * sizeof(double));
  printf("spread components d=%-3d K=%d B=%d %d steps (%s): the same bits\n", d,
         K, B, steps, lsmi_gemm_name());
  fk_destroy(&e);
  free(lp);
  free(x);
  for (int r = 0; r < 3; r++) {
    fk_destroy(&f[r]);
    free(m[r]);
    free(v[r]);
  }
}

static void test_par_same_bits(void **state) {
  (void)state;
  par_vs_serial(64, 5, 32, 2); /* below the threshold: par unused */
  par_vs_serial(128, 5, 32, 3);
  par_vs_serial(130, 3, 45, 2);
  par_vs_serial(200, 5, 32, 3);
  par_vs_serial(512, 5, 32, 2);
}

/* ------------------------------------------------------------------------ */
/* 10. Sampled gradient checks at the sizes of issue 18                     */
/* ------------------------------------------------------------------------ */

/*
 * At d = 512 and 768 a finite difference of every element would take
 * hours; a sample of each group is checked instead (the same five-point
 * differences and tolerances as section 1), for the gradient of
 * lsmi_knife_loss_backward and for the one lsmi_knife_train_step applies:
 * its means, logvar and weigh parts are left in the gradient block, and
 * the factor's, which it never stores, is read back from the first
 * moment after one step from zero, m = (1 - β1) g (float rounding aside:
 * the check's tolerance is far wider). tri is scaled by 1/√d so that ‖z‖²
 * stays moderate and the float32 loss keeps enough digits for the
 * differences.
 */
static void gradcheck_sampled(int d, int fused) {
  enum { K = 5, B = 32, SAMPLES = 12 };
  size_t dd = (size_t)d, Kd = (size_t)K * dd, ldx = dd + 1;
  size_t np = lsmi_knife_nparams(d, K);
  fixture_knife_t f, s;
  fk_create(&f, d, K, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 12000u + (uint64_t)d, 5);
  lsmi_knife_init(&f.k, &rng);
  for (int c = 0; c < K; c++)
    f.k.weigh[c] = (float)(1.0 + 0.5 * lsmi_rng_normal(&rng));
  for (size_t i = 0; i < Kd * dd; i++)
    f.k.tri[i] *= (float)(1.0 / sqrt((double)d));
  float *x = make_x(&rng, B, d, ldx, 1.0);
  for (int n = 0; n < B; n++)
    for (size_t j = 0; j < dd; j++)
      x[(size_t)n * ldx + j] =
          f.k.means[(size_t)(n % K) * dd + j] + 0.3f * x[(size_t)n * ldx + j];
  /* The analytic gradient, into g (np floats, the block's layout). */
  float *g = calloc(np, sizeof(float));
  assert_non_null(g);
  if (!fused) {
    double loss = lsmi_knife_loss_backward(&f.k, &f.g, f.scratch, x, ldx, B);
    assert_true(isfinite(loss));
    memcpy(g, f.grads, np * sizeof(float));
  } else {
    fk_create(&s, d, K, B);
    memcpy(s.params, f.params, np * sizeof(float));
    float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
    assert_true(m && v);
    lsmi_adam_t adam;
    lsmi_adam_init(&adam, np, m, v);
    double loss = lsmi_knife_train_step(&s.k, &s.g, &adam, 1e-3, s.scratch, x,
                                        ldx, B, NULL);
    assert_true(isfinite(loss));
    memcpy(g, s.grads, 2 * Kd * sizeof(float));
    memcpy(g + np - K, s.k.weigh - s.params + s.grads, K * sizeof(float));
    float one_b1 = (float)(1.0 - adam.beta1);
    for (int c = 0; c < K; c++)
      for (int i = 0; i < d; i++)
        for (int j = 0; j < i; j++) {
          size_t at = fused_moment_at(d, K, c, i, j);
          g[2 * Kd + ((size_t)c * dd + (size_t)i) * dd + (size_t)j] =
              m[at] / one_b1;
        }
    free(m), free(v);
    fk_destroy(&s);
  }
  /* Sampled elements of each group: means, logvar, weigh (all K), tri
   * strictly lower and a few on or above the diagonal (0 both ways). */
  gc_stats_t st = {0, 0, 0.0};
  const float h = 1.0f / 128.0f;
  lsmi_rng_t pick;
  lsmi_rng_seed(&pick, 77, (uint64_t)d);
  for (int t = 0; t < SAMPLES; t++) {
    size_t i = (size_t)lsmi_rng_below(&pick, (uint64_t)Kd);
    check_group(&f, "means", f.k.means + i, g + i, 1, x, ldx, B, h, &st);
    i = (size_t)lsmi_rng_below(&pick, (uint64_t)Kd);
    check_group(&f, "logvar", f.k.logvar + i, g + Kd + i, 1, x, ldx, B, h, &st);
    size_t c = (size_t)lsmi_rng_below(&pick, K);
    size_t r = 1 + (size_t)lsmi_rng_below(&pick, (uint64_t)(dd - 1));
    size_t col = t % 4 == 3 ? r + (size_t)lsmi_rng_below(&pick, dd - r)
                            : (size_t)lsmi_rng_below(&pick, r);
    size_t at = (c * dd + r) * dd + col;
    /* check_group finds the diagonal from an index into the whole factor:
     * a single element is checked here, by the same rule and tolerance */
    gc_stats_t one = {0, 0, 0.0};
    double a = (double)g[2 * Kd + at];
    double n = numeric_grad(&f, f.k.tri + at, x, ldx, B, h);
    one.checked = 1;
    if (col >= r) {
      one.failed = !(a == 0.0 && n == 0.0);
    } else {
      double tol = FD_ATOL + FD_RTOL * fabs(n);
      one.failed = !(fabs(a - n) <= tol);
      st.worst = fmax(st.worst, fabs(a - n) / tol);
    }
    if (one.failed)
      printf("FAIL tri d=%d [%zu][%zu][%zu]%s: analytic %.9g numeric %.9g\n", d,
             c, r, col, fused ? " (fused step)" : "", a, n);
    st.checked += one.checked;
    st.failed += one.failed;
  }
  check_group(&f, "weigh", f.k.weigh, g + np - K, K, x, ldx, B, h, &st);
  printf("gradcheck d=%d%s: %ld sampled elements, %ld failed, worst "
         "|a-n|/tol %.3f\n",
         d, fused ? " (fused step)" : "", st.checked, st.failed, st.worst);
  assert_int_equal(st.failed, 0);
  free(g), free(x);
  fk_destroy(&f);
}

static void test_gradcheck_d512(void **state) {
  (void)state;
  gradcheck_sampled(512, 0);
  gradcheck_sampled(512, 1);
}

static void test_gradcheck_d768(void **state) {
  (void)state;
  gradcheck_sampled(768, 0);
  gradcheck_sampled(768, 1);
}

/* ------------------------------------------------------------------------ */
/* 7. The kernel's expf, logf and tanhf against libm                        */
/* ------------------------------------------------------------------------ */

/* Distance in ulps between two floats of the same sign (a large number when
 * the signs differ, 0 for equal values, and for two NaNs). */
static int64_t ulps(float a, float b) {
  if (isnan(a) || isnan(b))
    return isnan(a) && isnan(b) ? 0 : INT64_MAX;
  if (a == b)
    return 0;
  int32_t ia, ib;
  memcpy(&ia, &a, sizeof ia);
  memcpy(&ib, &b, sizeof ib);
  if ((ia < 0) != (ib < 0))
    return INT64_MAX;
  return llabs((int64_t)ia - (int64_t)ib);
}

typedef void (*vfun_t)(float *, const float *, size_t);

/* The reference: libm in double, rounded to float (correctly rounded but
 * for the rare double rounding; libm's float functions are themselves off
 * by an ulp here and there). */
static float exp_ref(float x) { return (float)exp((double)x); }
static float log_ref(float x) { return (float)log((double)x); }
static float tanh_ref(float x) { return (float)tanh((double)x); }

/* Every 257th float bit pattern (all exponents, both signs, NaNs included)
 * and the edges: both zeros, infinities, the overflow and underflow
 * thresholds, the smallest subnormal, the switch points of the kernel's
 * formulas. At most 1 ulp from the reference, and NaN exactly where it is
 * NaN. */
static void check_vfun(const char *name, vfun_t f, float (*ref)(float)) {
  enum { CHUNK = 4096 };
  static const float edges[] = {
      0.0f,        -0.0f,     INFINITY, -INFINITY,   NAN,
      88.72283f,   88.72284f, 89.0f,    -87.33654f,  -103.97208f,
      -103.97209f, -104.0f,   1.0f,     0x1p-149f,   0x1p-126f,
      FLT_MAX,     -FLT_MAX,  0.0625f,  -0.0625f,    0.062499996f,
      20.0f,       9.01f,     1e-30f,   0.70710677f, 1.4142135f};
  float in[CHUNK], out[CHUNK];
  int64_t worst = 0;
  long checked = 0;
  float worst_x = 0.0f;
  uint64_t bits = 0;
  int edge_pass = 1;
  while (bits <= 0xFFFFFFFFu) {
    size_t n = 0;
    if (edge_pass) {
      for (; n < sizeof edges / sizeof edges[0]; n++)
        in[n] = edges[n];
      edge_pass = 0;
    } else {
      for (; n < CHUNK && bits <= 0xFFFFFFFFu; n++, bits += 257) {
        uint32_t u = (uint32_t)bits;
        memcpy(&in[n], &u, sizeof u);
      }
    }
    f(out, in, n);
    for (size_t i = 0; i < n; i++) {
      int64_t e = ulps(out[i], ref(in[i]));
      checked++;
      if (e > worst) {
        worst = e;
        worst_x = in[i];
      }
    }
  }
  float at;
  f(&at, &worst_x, 1);
  printf("%s: %ld values, worst %lld ulp (at %.9g: %.9g, libm %.9g)\n", name,
         checked, (long long)worst, (double)worst_x, (double)at,
         (double)ref(worst_x));
  assert_true(worst <= 1);
}

static void test_expf(void **state) {
  (void)state;
  check_vfun("expf", lsmi_knife_vexpf, exp_ref);
}
static void test_logf(void **state) {
  (void)state;
  check_vfun("logf", lsmi_knife_vlogf, log_ref);
}
static void test_tanhf(void **state) {
  (void)state;
  check_vfun("tanhf", lsmi_knife_vtanhf, tanh_ref);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nparams_bind),
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_expf),
      cmocka_unit_test(test_logf),
      cmocka_unit_test(test_tanhf),
      cmocka_unit_test(test_gradcheck_d1),
      cmocka_unit_test(test_gradcheck_d2),
      cmocka_unit_test(test_gradcheck_d3),
      cmocka_unit_test(test_gradcheck_d5),
      cmocka_unit_test(test_gradcheck_d7),
      cmocka_unit_test(test_gradcheck_d8),
      cmocka_unit_test(test_gradcheck_d9),
      cmocka_unit_test(test_gradcheck_d16),
      cmocka_unit_test(test_gradcheck_d17),
      cmocka_unit_test(test_gradcheck_d33),
      cmocka_unit_test(test_fixture_parity),
      cmocka_unit_test(test_reference),
      cmocka_unit_test(test_small_d_matches_general),
      cmocka_unit_test(test_logpdf_matches_loss),
      cmocka_unit_test(test_rows_independent),
      cmocka_unit_test(test_grad_overwritten),
      cmocka_unit_test(test_large_x_finite),
      cmocka_unit_test(test_adam_lower_triangle),
      cmocka_unit_test(test_adam_upper_untouched),
      cmocka_unit_test(test_fused_step),
      cmocka_unit_test(test_par_same_bits),
      cmocka_unit_test(test_gradcheck_d512),
      cmocka_unit_test(test_gradcheck_d768),
  };
  /* The same on the portable gemm: the products must not depend on which
   * implementation runs them. */
  const struct CMUnitTest generic[] = {
      cmocka_unit_test(test_gradcheck_d1),
      cmocka_unit_test(test_gradcheck_d9),
      cmocka_unit_test(test_gradcheck_d17),
      cmocka_unit_test(test_fixture_parity),
      cmocka_unit_test(test_reference),
      cmocka_unit_test(test_small_d_matches_general),
      cmocka_unit_test(test_grad_overwritten),
      cmocka_unit_test(test_large_x_finite),
      cmocka_unit_test(test_fused_step),
      cmocka_unit_test(test_par_same_bits),
  };
  int failed = cmocka_run_group_tests_name("knife", tests, NULL, NULL);
  failed += cmocka_run_group_tests_name("knife on the generic gemm", generic,
                                        use_generic_gemm, restore_gemm);
  return failed;
}
