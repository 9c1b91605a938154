/*
 * test_adam.c — Adam and StepLR (core/adam.c): init, the update against a
 * textbook double-precision Adam, five full-batch steps of an MLP against
 * PyTorch (fixtures/adam.json), and the StepLR schedule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "fixture.h"
#include "mlp.h"
#include "rng.h"

#include "check.h"

static void test_init(void **state) {
  (void)state;
  float m[5], v[5];
  for (int i = 0; i < 5; i++)
    m[i] = v[i] = NAN;
  lsmi_adam_t a;
  lsmi_adam_init(&a, 5, m, v);
  assert_int_equal(a.n, 5);
  assert_ptr_equal(a.m, m);
  assert_ptr_equal(a.v, v);
  assert_int_equal(a.t, 0);
  assert_true(a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8);
  for (int i = 0; i < 5; i++)
    assert_true(m[i] == 0.0f && v[i] == 0.0f);
}

/* The first step moves every parameter by lr · g / (|g| + eps): by lr
 * against the sign of its gradient, not at all for a zero gradient. */
static void test_first_step_is_sign(void **state) {
  (void)state;
  float p[4] = {1.0f, -2.0f, 0.5f, 3.0f};
  const float g[4] = {0.25f, -1e-3f, 0.0f, 40.0f};
  float m[4], v[4];
  lsmi_adam_t a;
  lsmi_adam_init(&a, 4, m, v);
  lsmi_adam_step(&a, p, g, 1e-2);
  assert_int_equal(a.t, 1);
  assert_close(p[0], 1.0 - 1e-2, 1e-6);
  assert_close(p[1], -2.0 + 1e-2, 1e-6);
  assert_true(p[2] == 0.5f);
  assert_close(p[3], 3.0 - 1e-2, 1e-6);
}

/*
 * Many steps with changing gradients and learning rates against Adam in
 * its textbook form, in double: m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t),
 * p -= lr m̂ / (sqrt(v̂) + eps) — algebraically PyTorch's update.
 */
static void test_matches_reference(void **state) {
  (void)state;
  enum { N = 50, STEPS = 40 };
  float p[N], m[N], v[N], g[N];
  double rp[N], rm[N] = {0}, rv[N] = {0};
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 3, 77);
  for (int i = 0; i < N; i++) {
    p[i] = (float)lsmi_rng_normal(&rng);
    rp[i] = (double)p[i];
  }
  lsmi_adam_t a;
  lsmi_adam_init(&a, N, m, v);
  size_t bad = 0;
  for (int t = 1; t <= STEPS; t++) {
    double lr = t <= 20 ? 1e-2 : 1e-3;
    for (int i = 0; i < N; i++) /* scales from 1e-4 to 1e2 */
      g[i] = (float)(lsmi_rng_normal(&rng) * pow(10.0, (i % 7) - 4));
    lsmi_adam_step(&a, p, g, lr);
    for (int i = 0; i < N; i++) {
      double gi = (double)g[i];
      rm[i] = 0.9 * rm[i] + 0.1 * gi;
      rv[i] = 0.999 * rv[i] + 0.001 * gi * gi;
      double mh = rm[i] / (1.0 - pow(0.9, t));
      double vh = rv[i] / (1.0 - pow(0.999, t));
      rp[i] -= lr * mh / (sqrt(vh) + 1e-8);
    }
    char what[32];
    snprintf(what, sizeof what, "step%d.params", t);
    bad += fixture_check_f(what, p, rp, N, 1e-5, 1e-6, NULL);
  }
  assert_int_equal(a.t, STEPS);
  assert_int_equal(bad, 0);
}

/* Five full-batch steps of an MLP (forward, CE, backward, Adam) against
 * PyTorch float64, with the fixture's lr per step. */
static void test_fixture_parity(void **state) {
  (void)state;
  const double rtol = 1e-4, atol = 1e-6;
  json_t *root = fixture_load("adam.json");
  assert_non_null(root);
  int in = (int)fixture_int(root, "in"), H = (int)fixture_int(root, "hidden");
  int C = (int)fixture_int(root, "classes"), B = (int)fixture_int(root, "n");
  assert_true(in > 0 && H > 0 && C > 0 && B > 0);
  size_t np = lsmi_mlp_nparams(in, H, C), cnt = 0;
  float *params = calloc(np, sizeof(float)), *grads = calloc(np, sizeof(float));
  float *m = calloc(np, sizeof(float)), *v = calloc(np, sizeof(float));
  float *acts = calloc(lsmi_mlp_nacts(H, C, B), sizeof(float));
  float *scratch = calloc(lsmi_mlp_nscratch(H, B), sizeof(float));
  float *dlogits = calloc((size_t)B * (size_t)C, sizeof(float));
  assert_true(params && grads && m && v && acts && scratch && dlogits);
  lsmi_mlp_t net, grad;
  lsmi_mlp_acts_t a;
  lsmi_mlp_bind(&net, params, in, H, C);
  lsmi_mlp_bind(&grad, grads, in, H, C);
  lsmi_mlp_acts_bind(&a, acts, H, C, B);
  float *x = fixture_floats(root, "x", &cnt);
  assert_non_null(x);
  assert_int_equal(cnt, (size_t)B * (size_t)in);
  int32_t *y = fixture_ints(root, "y", &cnt);
  assert_non_null(y);
  assert_int_equal(cnt, (size_t)B);

  /* The groups in block order, so that a flat params array lines up. */
  static const char *const names[6] = {"W1", "b1", "W2", "b2", "W3", "b3"};
  json_t *start = json_object_get(root, "start");
  size_t off = 0;
  for (int k = 0; k < 6; k++) {
    float *p = fixture_floats(start, names[k], &cnt);
    assert_non_null(p);
    assert_true(off + cnt <= np);
    if (k == 0) /* the fixture's W1 is PyTorch's (H, in); stored (in, H) */
      lsmi_mlp_set_W1(&net, p);
    else
      memcpy(params + off, p, cnt * sizeof(float));
    off += cnt;
    free(p);
  }
  assert_int_equal(off, np);
  float *W1 = calloc((size_t)H * (size_t)in, sizeof(float));
  assert_non_null(W1);

  lsmi_adam_t opt;
  lsmi_adam_init(&opt, np, m, v);
  json_t *steps = json_object_get(root, "steps");
  assert_true(json_is_array(steps) && json_array_size(steps) == 5);
  fixture_stats_t st = {0, 0}, st_loss = {0, 0};
  size_t bad = 0, si;
  json_t *s;
  json_array_foreach(steps, si, s) {
    lsmi_mlp_forward(&net, &a, x, (size_t)in, B);
    double loss = lsmi_ce_forward_backward(dlogits, a.logits, y, B, C);
    lsmi_mlp_backward(&net, &grad, scratch, &a, dlogits, x, (size_t)in, B);
    double want_loss = fixture_number(s, "loss_before");
    char what[48];
    snprintf(what, sizeof what, "step%zu.loss_before", si);
    bad += fixture_check_d(what, &loss, &want_loss, 1, rtol, atol, &st_loss);

    double lr = fixture_number(s, "lr_used");
    /* The fixture's StepLR(step 2, gamma 0.1) stepped per optimizer step. */
    assert_close(lsmi_step_lr(1e-3, 0.1, 2, (int)si), lr, 1e-15 * lr);
    lsmi_adam_step(&opt, params, grads, lr);

    json_t *after = json_object_get(s, "params_after");
    lsmi_mlp_get_W1(&net, W1);
    off = 0;
    for (int k = 0; k < 6; k++) {
      double *w = fixture_doubles(after, names[k], &cnt);
      assert_non_null(w);
      assert_true(off + cnt <= np);
      snprintf(what, sizeof what, "step%zu.%s", si, names[k]);
      bad += fixture_check_f(what, k == 0 ? W1 : params + off, w, cnt, rtol,
                             atol, &st);
      off += cnt;
      free(w);
    }
    assert_int_equal(off, np);
  }
  printf("adam.json parity: max rel err params %.2e (abs %.2e), loss %.2e\n",
         st.max_rel, st.max_abs, st_loss.max_rel);
  assert_int_equal(bad, 0);
  free(W1);
  free(params);
  free(grads);
  free(m);
  free(v);
  free(acts);
  free(scratch);
  free(dlogits);
  free(x);
  free(y);
  json_decref(root);
}

static void test_step_lr(void **state) {
  (void)state;
  /* The discriminator default: step 15, gamma 0.1, 30 epochs. */
  for (int e = 0; e < 15; e++)
    assert_true(lsmi_step_lr(1e-3, 0.1, 15, e) == 1e-3);
  for (int e = 15; e < 30; e++)
    assert_close(lsmi_step_lr(1e-3, 0.1, 15, e), 1e-4, 1e-19);
  assert_close(lsmi_step_lr(1e-3, 0.1, 15, 30), 1e-5, 1e-20);
  /* KNIFE default: step 20. */
  assert_true(lsmi_step_lr(1e-3, 0.1, 20, 19) == 1e-3);
  assert_close(lsmi_step_lr(1e-3, 0.1, 20, 20), 1e-4, 1e-19);
  /* gamma 1 never decays; gamma 0.5 halves. */
  assert_true(lsmi_step_lr(2e-3, 1.0, 3, 100) == 2e-3);
  assert_close(lsmi_step_lr(1.0, 0.5, 1, 10), 1.0 / 1024, 1e-18);
  /* A step of 0 or less, or a negative epoch: no schedule. */
  assert_true(lsmi_step_lr(1e-3, 0.1, 0, 40) == 1e-3);
  assert_true(lsmi_step_lr(1e-3, 0.1, 5, -1) == 1e-3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_first_step_is_sign),
      cmocka_unit_test(test_matches_reference),
      cmocka_unit_test(test_fixture_parity),
      cmocka_unit_test(test_step_lr),
  };
  return cmocka_run_group_tests_name("core/adam", tests, NULL, NULL);
}
