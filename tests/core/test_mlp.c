/*
 * test_mlp.c — the discriminator MLP (core/mlp.c): block layout, PyTorch
 * init, every gradient against central finite differences, parity with the
 * PyTorch float64 fixture (fixtures/mlp.json), the OVERWRITE contract of the
 * backward pass, and the cross-entropy on extreme logits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "mlp.h"
#include "rng.h"

#include "check.h"

/* ------------------------------------------------------------------------ */
/* A small harness: one MLP with its gradient, activations and scratch.     */
/* ------------------------------------------------------------------------ */

typedef struct net {
  int in, H, C, B;
  size_t ldx, np;
  float *params, *grads, *acts, *scratch, *x, *dlogits;
  int32_t *y;
  lsmi_mlp_t m, g;
  lsmi_mlp_acts_t a;
} net_t;

/* B rows of x with row stride ldx; activations bound for max_batch >= B. */
static net_t *net_new(int in, int H, int C, int B, int max_batch, size_t ldx) {
  net_t *n = calloc(1, sizeof *n);
  assert_non_null(n);
  n->in = in;
  n->H = H;
  n->C = C;
  n->B = B;
  n->ldx = ldx;
  n->np = lsmi_mlp_nparams(in, H, C);
  n->params = calloc(n->np, sizeof(float));
  n->grads = calloc(n->np, sizeof(float));
  n->acts = calloc(lsmi_mlp_nacts(H, C, max_batch), sizeof(float));
  n->scratch = calloc(lsmi_mlp_nscratch(H, max_batch), sizeof(float));
  n->x = calloc((size_t)B * ldx, sizeof(float));
  n->dlogits = calloc((size_t)max_batch * (size_t)C, sizeof(float));
  n->y = calloc((size_t)B, sizeof(int32_t));
  assert_true(n->params && n->grads && n->acts && n->scratch && n->x &&
              n->dlogits && n->y);
  lsmi_mlp_bind(&n->m, n->params, in, H, C);
  lsmi_mlp_bind(&n->g, n->grads, in, H, C);
  lsmi_mlp_acts_bind(&n->a, n->acts, H, C, max_batch);
  return n;
}

static void net_free(net_t *n) {
  free(n->params);
  free(n->grads);
  free(n->acts);
  free(n->scratch);
  free(n->x);
  free(n->dlogits);
  free(n->y);
  free(n);
}

/* Forward and loss (dlogits is written as a side effect). */
static double net_loss(net_t *n) {
  lsmi_mlp_forward(&n->m, &n->a, n->x, n->ldx, n->B);
  return lsmi_ce_forward_backward(n->dlogits, n->a.logits, n->y, n->B, n->C);
}

/* Forward, loss and backward into n->grads. */
static double net_grad(net_t *n) {
  double loss = net_loss(n);
  lsmi_mlp_backward(&n->m, &n->g, n->scratch, &n->a, n->dlogits, n->x, n->ldx,
                    n->B);
  return loss;
}

typedef struct group {
  const char *name;
  float *p, *dp;
  size_t n;
} group_t;

/* The six parameter groups of n, in block order. */
static void net_groups(net_t *n, group_t gr[6]) {
  size_t in = (size_t)n->in, H = (size_t)n->H, C = (size_t)n->C;
  gr[0] = (group_t){"W1", n->m.W1t, n->g.W1t, H * in}; /* stored (in, H) */
  gr[1] = (group_t){"b1", n->m.b1, n->g.b1, H};
  gr[2] = (group_t){"W2", n->m.W2, n->g.W2, H * H};
  gr[3] = (group_t){"b2", n->m.b2, n->g.b2, H};
  gr[4] = (group_t){"W3", n->m.W3, n->g.W3, C * H};
  gr[5] = (group_t){"b3", n->m.b3, n->g.b3, C};
}

/* Random init, x ~ N(0, 1) in the first `in` columns and NaN in the row
 * padding (which must never be read), y uniform over the classes. */
static void net_randomize(net_t *n, uint64_t seed) {
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, seed, 100);
  lsmi_mlp_init(&n->m, &rng);
  for (int r = 0; r < n->B; r++) {
    for (size_t c = 0; c < n->ldx; c++)
      n->x[(size_t)r * n->ldx + c] =
          c < (size_t)n->in ? (float)lsmi_rng_normal(&rng) : NAN;
    n->y[r] = (int32_t)lsmi_rng_below(&rng, (uint64_t)n->C);
  }
}

/* ------------------------------------------------------------------------ */
/* Layout and init                                                          */
/* ------------------------------------------------------------------------ */

static void test_layout(void **state) {
  (void)state;
  /* W1t 15 | b1 5 | W2 25 | b2 5 | W3 10 | b3 2 */
  assert_int_equal(lsmi_mlp_nparams(3, 5, 2), 62);
  /* h1, h2, logits for 4 rows | W2t 25 | W3t 10 */
  assert_int_equal(lsmi_mlp_nacts(5, 2, 4), 4 * (5 + 5 + 2) + 25 + 10);
  assert_int_equal(lsmi_mlp_nscratch(5, 4), 2 * 5 * 4);
  float block[62];
  lsmi_mlp_t m;
  lsmi_mlp_bind(&m, block, 3, 5, 2);
  assert_int_equal(m.in, 3);
  assert_int_equal(m.hidden, 5);
  assert_int_equal(m.classes, 2);
  assert_ptr_equal(m.W1t, block);
  assert_ptr_equal(m.b1, block + 15);
  assert_ptr_equal(m.W2, block + 20);
  assert_ptr_equal(m.b2, block + 45);
  assert_ptr_equal(m.W3, block + 50);
  assert_ptr_equal(m.b3, block + 60);
  float acts[83];
  lsmi_mlp_acts_t a;
  lsmi_mlp_acts_bind(&a, acts, 5, 2, 4);
  assert_int_equal(a.max_batch, 4);
  assert_ptr_equal(a.h1, acts);
  assert_ptr_equal(a.h2, acts + 20);
  assert_ptr_equal(a.logits, acts + 40);
  assert_ptr_equal(a.W2t, acts + 48);
  assert_ptr_equal(a.W3t, acts + 73);
  /* W1 round-trips between PyTorch's (H, in) and the stored (in, H). */
  float W1[15], back[15];
  for (int i = 0; i < 15; i++)
    W1[i] = (float)i;
  lsmi_mlp_set_W1(&m, W1);
  for (int o = 0; o < 5; o++)
    for (int i = 0; i < 3; i++)
      assert_true(m.W1t[i * 5 + o] == W1[o * 3 + i]);
  lsmi_mlp_get_W1(&m, back);
  assert_memory_equal(W1, back, sizeof W1);
}

static void test_init_torch_default(void **state) {
  (void)state;
  int in = 16, H = 64, C = 3;
  size_t np = lsmi_mlp_nparams(in, H, C);
  float *block = malloc(np * sizeof(float));
  assert_non_null(block);
  lsmi_mlp_t m;
  lsmi_mlp_bind(&m, block, in, H, C);
  lsmi_rng_t rng, ref;
  lsmi_rng_seed(&rng, 7, LSMI_STREAM_MLP1);
  lsmi_rng_seed(&ref, 7, LSMI_STREAM_MLP1);
  lsmi_mlp_init(&m, &rng);
  /* Draw order W1, b1, W2, b2, W3, b3, each in PyTorch's row-major
   * (out, in) order; bound 1/sqrt(fan_in). W1's draw k = o * in + i lands
   * at W1t[i * H + o]; everything after W1 is in block order. */
  double b_in = 1.0 / sqrt((double)in), b_h = 1.0 / sqrt((double)H);
  size_t nW1 = (size_t)(H * in), end1 = nW1 + (size_t)H;
  for (size_t k = 0; k < np; k++) {
    size_t at = k < nW1 ? (k % (size_t)in) * (size_t)H + k / (size_t)in : k;
    double bound = k < end1 ? b_in : b_h;
    float want = (float)(-bound + 2.0 * bound * lsmi_rng_uniform(&ref));
    if (block[at] != want)
      fail_msg("init draw %zu (block[%zu]): got %.9g want %.9g", k, at,
               block[at], want);
    assert_true(fabs((double)block[at]) <= bound);
  }
  /* The draws fill the range, not a corner of it. */
  float lo = 1, hi = -1;
  for (size_t i = 0; i < nW1; i++) {
    lo = fminf(lo, m.W1t[i]);
    hi = fmaxf(hi, m.W1t[i]);
  }
  assert_true(lo < -0.9 * b_in && hi > 0.9 * b_in);
  /* The generator advanced by exactly np draws. */
  assert_true(lsmi_rng_next(&rng) == lsmi_rng_next(&ref));
  free(block);
}

/* ------------------------------------------------------------------------ */
/* Gradient check by central differences                                    */
/* ------------------------------------------------------------------------ */

/* Post-ReLU masks of the current forward pass: mask (2 B H). */
static void relu_masks(const net_t *n, unsigned char *mask) {
  size_t BH = (size_t)n->B * (size_t)n->H;
  for (size_t i = 0; i < BH; i++) {
    mask[i] = n->a.h1[i] > 0.0f;
    mask[BH + i] = n->a.h2[i] > 0.0f;
  }
}

/*
 * Every element of every parameter group: the analytic gradient a against
 * n = (L(p + h) - L(p - h)) / (2h) with the float32 forward, required
 * |a - n| <= atol + rtol |n|. An element whose perturbation flips a ReLU
 * (the loss has a kink inside [p - h, p + h]) has no meaningful central
 * difference and is skipped; the skips are counted and must stay rare.
 */
static void gradcheck(int in, int H, int C, int B, size_t ldx, uint64_t seed) {
  /* Measured (float32 forward, step 1e-3): |a - n| <= 2e-5 everywhere,
   * from rounding in the loss differences; a 1 % error in any gradient
   * fails. A step of 1e-2 skips ~15 % of the elements as ReLU kinks. */
  const double step = 1e-3, atol = 1e-4, rtol = 1e-2;
  double maxabs = 0.0;
  net_t *n = net_new(in, H, C, B, B + 3, ldx);
  net_randomize(n, seed);
  net_grad(n);
  size_t BH = (size_t)B * (size_t)H;
  unsigned char *m0 = malloc(2 * BH), *m1 = malloc(2 * BH);
  assert_true(m0 && m1);
  net_loss(n);
  relu_masks(n, m0);
  group_t gr[6];
  net_groups(n, gr);
  size_t checked = 0, skipped = 0, bad = 0;
  double worst = 0.0;
  for (int k = 0; k < 6; k++) {
    for (size_t i = 0; i < gr[k].n; i++) {
      float orig = gr[k].p[i];
      gr[k].p[i] = orig + (float)step;
      float hp = gr[k].p[i] - orig; /* the step actually taken */
      double lp = net_loss(n);
      relu_masks(n, m1);
      int kink = memcmp(m0, m1, 2 * BH) != 0;
      gr[k].p[i] = orig - (float)step;
      float hm = orig - gr[k].p[i];
      double lm = net_loss(n);
      relu_masks(n, m1);
      kink |= memcmp(m0, m1, 2 * BH) != 0;
      gr[k].p[i] = orig;
      if (kink) {
        skipped++;
        continue;
      }
      double num = (lp - lm) / ((double)hp + (double)hm);
      double ana = (double)gr[k].dp[i];
      double err = fabs(ana - num);
      double ratio = err / (atol + rtol * fabs(num));
      if (err > maxabs)
        maxabs = err;
      if (ratio > worst)
        worst = ratio;
      checked++;
      if (!(err <= atol + rtol * fabs(num))) {
        fprintf(stderr,
                "gradcheck in=%d H=%d C=%d B=%d ldx=%zu %s[%zu]: analytic "
                "%.9g numeric %.9g\n",
                in, H, C, B, ldx, gr[k].name, i, ana, num);
        bad++;
      }
    }
  }
  printf("gradcheck in=%d H=%d C=%d B=%d ldx=%zu: %zu checked, %zu skipped "
         "(ReLU kink), worst err/tol %.3f, max |a - n| %.2g\n",
         in, H, C, B, ldx, checked, skipped, worst, maxabs);
  assert_int_equal(bad, 0);
  assert_true(skipped * 20 <= checked + skipped); /* at most 5 % */
  free(m0);
  free(m1);
  net_free(n);
}

static void test_gradcheck_small(void **state) {
  (void)state;
  gradcheck(3, 5, 2, 4, 3, 1);
}

static void test_gradcheck_wide(void **state) {
  (void)state;
  gradcheck(16, 8, 10, 7, 16, 2);
}

static void test_gradcheck_row_stride(void **state) {
  (void)state;
  gradcheck(5, 6, 3, 9, 11, 3); /* ldx > in: padding is NaN, never read */
}

static void test_gradcheck_single_row(void **state) {
  (void)state;
  gradcheck(4, 12, 4, 1, 7, 4);
}

/* ------------------------------------------------------------------------ */
/* Backward contract                                                        */
/* ------------------------------------------------------------------------ */

/* The backward pass OVERWRITES the gradient block: garbage (NaN) in it
 * beforehand, or a second call, changes nothing. */
static void test_backward_overwrites(void **state) {
  (void)state;
  net_t *n = net_new(6, 9, 4, 5, 8, 6);
  net_randomize(n, 11);
  memset(n->grads, 0, n->np * sizeof(float));
  net_grad(n);
  float *first = malloc(n->np * sizeof(float));
  assert_non_null(first);
  memcpy(first, n->grads, n->np * sizeof(float));
  for (size_t i = 0; i < n->np; i++)
    n->grads[i] = NAN;
  net_grad(n);
  assert_memory_equal(first, n->grads, n->np * sizeof(float));
  net_grad(n);
  assert_memory_equal(first, n->grads, n->np * sizeof(float));
  free(first);
  net_free(n);
}

/* A batch is the rows it contains: row-by-row forward passes give the same
 * logits as one batched pass. */
static void test_forward_rows_match_batch(void **state) {
  (void)state;
  net_t *n = net_new(7, 10, 3, 6, 6, 9);
  net_randomize(n, 12);
  lsmi_mlp_forward(&n->m, &n->a, n->x, n->ldx, n->B);
  float batch[6 * 3];
  memcpy(batch, n->a.logits, sizeof batch);
  for (int r = 0; r < n->B; r++) {
    lsmi_mlp_forward(&n->m, &n->a, n->x + (size_t)r * n->ldx, n->ldx, 1);
    for (int c = 0; c < 3; c++)
      assert_float_equal(n->a.logits[c], batch[r * 3 + c], 1e-5);
  }
  net_free(n);
}

/* ------------------------------------------------------------------------ */
/* Parity with PyTorch (fixtures/mlp.json, float64)                         */
/* ------------------------------------------------------------------------ */

static void test_fixture_parity(void **state) {
  (void)state;
  const double rtol = 1e-4, atol = 1e-7;
  json_t *root = fixture_load("mlp.json");
  assert_non_null(root);
  json_t *cases = json_object_get(root, "cases");
  assert_true(json_is_array(cases) && json_array_size(cases) > 0);
  fixture_stats_t st_logits = {0, 0}, st_loss = {0, 0}, st_lsm = {0, 0},
                  st_grad = {0, 0};
  size_t bad = 0, ci;
  json_t *c;
  json_array_foreach(cases, ci, c) {
    int in = (int)fixture_int(c, "in"), H = (int)fixture_int(c, "hidden");
    int C = (int)fixture_int(c, "classes"), B = (int)fixture_int(c, "n");
    assert_true(in > 0 && H > 0 && C > 0 && B > 0);
    net_t *n = net_new(in, H, C, B, B, (size_t)in);
    size_t cnt = 0;
    float *x = fixture_floats(c, "x", &cnt);
    assert_non_null(x);
    assert_int_equal(cnt, (size_t)B * (size_t)in);
    memcpy(n->x, x, cnt * sizeof(float));
    free(x);
    int32_t *y = fixture_ints(c, "y", &cnt);
    assert_non_null(y);
    assert_int_equal(cnt, (size_t)B);
    memcpy(n->y, y, cnt * sizeof(int32_t));
    free(y);
    group_t gr[6];
    net_groups(n, gr);
    for (int k = 0; k < 6; k++) {
      float *p = fixture_floats(c, gr[k].name, &cnt);
      assert_non_null(p);
      assert_int_equal(cnt, gr[k].n);
      if (k == 0) /* the fixture's W1 is PyTorch's (H, in) */
        lsmi_mlp_set_W1(&n->m, p);
      else
        memcpy(gr[k].p, p, cnt * sizeof(float));
      free(p);
    }
    /* The gradient of W1 in PyTorch's layout, to compare with grad_W1. */
    float *dW1 = malloc(gr[0].n * sizeof(float));
    assert_non_null(dW1);

    double loss = net_grad(n);
    lsmi_mlp_get_W1(&n->g, dW1);
    char what[64];
    double *want = fixture_doubles(c, "logits", &cnt);
    assert_non_null(want);
    assert_int_equal(cnt, (size_t)B * (size_t)C);
    snprintf(what, sizeof what, "case%zu.logits", ci);
    bad +=
        fixture_check_f(what, n->a.logits, want, cnt, rtol, atol, &st_logits);
    free(want);

    double want_loss = fixture_number(c, "loss");
    snprintf(what, sizeof what, "case%zu.loss", ci);
    bad += fixture_check_d(what, &loss, &want_loss, 1, rtol, atol, &st_loss);

    double *lsm = malloc((size_t)B * sizeof(double));
    assert_non_null(lsm);
    lsmi_log_softmax_at(lsm, n->a.logits, n->y, B, C);
    want = fixture_doubles(c, "log_softmax_at_y", &cnt);
    assert_non_null(want);
    assert_int_equal(cnt, (size_t)B);
    snprintf(what, sizeof what, "case%zu.log_softmax_at_y", ci);
    bad += fixture_check_d(what, lsm, want, cnt, rtol, atol, &st_lsm);
    free(want);
    free(lsm);

    for (int k = 0; k < 6; k++) {
      char key[16];
      snprintf(key, sizeof key, "grad_%s", gr[k].name);
      want = fixture_doubles(c, key, &cnt);
      assert_non_null(want);
      assert_int_equal(cnt, gr[k].n);
      snprintf(what, sizeof what, "case%zu.%s", ci, key);
      bad += fixture_check_f(what, k == 0 ? dW1 : gr[k].dp, want, cnt, rtol,
                             atol, &st_grad);
      free(want);
    }
    free(dW1);
    net_free(n);
  }
  printf("mlp.json parity: max rel err logits %.2e, loss %.2e, "
         "log_softmax_at_y %.2e, grads %.2e (abs %.2e)\n",
         st_logits.max_rel, st_loss.max_rel, st_lsm.max_rel, st_grad.max_rel,
         st_grad.max_abs);
  json_decref(root);
  assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------------ */
/* Cross-entropy and log-softmax                                            */
/* ------------------------------------------------------------------------ */

static void test_ce_extreme_logits(void **state) {
  (void)state;
  /* Rows: a huge margin for the right class, for the wrong class, and the
   * float extremes. Naive exp() overflows on every one of them. */
  const float logits[4 * 3] = {1000.0f,  -1000.0f, 0.0f,      //
                               1000.0f,  -1000.0f, 0.0f,      //
                               FLT_MAX,  -FLT_MAX, 0.0f,      //
                               -1000.0f, -1000.0f, -1000.0f}; //
  const int32_t y[4] = {0, 1, 1, 2};
  double lsm[4];
  lsmi_log_softmax_at(lsm, logits, y, 4, 3);
  assert_close(lsm[0], 0.0, 1e-12);
  assert_close(lsm[1], -2000.0, 1e-9);
  assert_close(lsm[2], -2.0 * (double)FLT_MAX, 1e-9 * (double)FLT_MAX);
  assert_close(lsm[3], -log(3.0), 1e-12);
  for (int r = 0; r < 4; r++)
    assert_true(isfinite(lsm[r]));

  float dl[4 * 3];
  double loss = lsmi_ce_forward_backward(dl, logits, y, 4, 3);
  assert_true(isfinite(loss));
  double want = -(lsm[0] + lsm[1] + lsm[2] + lsm[3]) / 4.0;
  assert_close(loss, want, 1e-12 * fabs(want));
  /* dL/dl = (softmax - onehot) / B: finite, each row sums to 0. */
  const float dl_want[4 * 3] = {0.0f,      0.0f,      0.0f, //
                                0.25f,     -0.25f,    0.0f, //
                                0.25f,     -0.25f,    0.0f, //
                                1.0f / 12, 1.0f / 12, 1.0f / 12 - 0.25f};
  for (int i = 0; i < 12; i++) {
    assert_true(isfinite(dl[i]));
    assert_float_equal(dl[i], dl_want[i], 1e-7);
  }
}

static void test_ce_matches_log_softmax(void **state) {
  (void)state;
  /* Ordinary logits: loss = -mean log_softmax_at, dlogits = (p - onehot)/B
   * checked against a plain double computation. */
  const float logits[2 * 4] = {0.5f,  -1.25f, 2.0f, 0.0f,
                               -0.3f, 0.7f,   0.1f, -2.0f};
  const int32_t y[2] = {2, 3};
  double lsm[2];
  float dl[8];
  lsmi_log_softmax_at(lsm, logits, y, 2, 4);
  double loss = lsmi_ce_forward_backward(dl, logits, y, 2, 4);
  assert_close(loss, -(lsm[0] + lsm[1]) / 2, 1e-12);
  for (int r = 0; r < 2; r++) {
    double z = 0;
    for (int c = 0; c < 4; c++)
      z += exp((double)logits[r * 4 + c]);
    /* The exponentials are float, as in PyTorch's float32 log_softmax. */
    assert_close(lsm[r], (double)logits[r * 4 + y[r]] - log(z), 1e-7);
    for (int c = 0; c < 4; c++) {
      double p = exp((double)logits[r * 4 + c]) / z;
      assert_float_equal(dl[r * 4 + c], (p - (c == y[r])) / 2, 1e-7);
    }
  }
}

/* A NaN anywhere in the input reaches the loss: the fit loop detects
 * divergence by a non-finite loss, so ReLU must not swallow NaN. */
static void test_nan_propagates(void **state) {
  (void)state;
  net_t *n = net_new(4, 6, 3, 5, 5, 4);
  net_randomize(n, 13);
  assert_true(isfinite(net_loss(n)));
  n->x[2 * 4 + 1] = NAN;
  assert_true(isnan(net_loss(n)));
  n->x[2 * 4 + 1] = 0.5f;
  n->m.b2[3] = NAN;
  assert_true(isnan(net_loss(n)));
  net_free(n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_init_torch_default),
      cmocka_unit_test(test_gradcheck_small),
      cmocka_unit_test(test_gradcheck_wide),
      cmocka_unit_test(test_gradcheck_row_stride),
      cmocka_unit_test(test_gradcheck_single_row),
      cmocka_unit_test(test_backward_overwrites),
      cmocka_unit_test(test_forward_rows_match_batch),
      cmocka_unit_test(test_fixture_parity),
      cmocka_unit_test(test_ce_extreme_logits),
      cmocka_unit_test(test_ce_matches_log_softmax),
      cmocka_unit_test(test_nan_propagates),
  };
  return cmocka_run_group_tests_name("core/mlp", tests, NULL, NULL);
}
