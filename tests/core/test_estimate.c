/*
 * test_estimate.c — lsmi_fit (core/estimate.c): whole fits on small
 * synthetic data: determinism (same seed
 * and threads give the same bits; the thread count does not change them
 * either), the per-sample identities, progress and cancellation, divergence,
 * the empirical prior, and that each synthetic kind is recognised as what
 * it is made of.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "lsmi.h"

static lsmi_dataset_t *synth(lsmi_synth_kind_t kind, size_t n, uint64_t seed) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_synth(kind, n, seed, &ds, &err), LSMI_OK);
  return ds;
}

static void small_params(lsmi_params_t *p) {
  lsmi_params_default(p);
  p->epochs_discriminator = 3;
  p->epochs_entropy = 3;
  p->seed = 5;
  p->threads = 2;
}

static lsmi_result_t *fit(const lsmi_dataset_t *ds, const lsmi_params_t *p) {
  lsmi_result_t *res = NULL;
  lsmi_error_t err = {0};
  int st = lsmi_fit(ds, p, NULL, &res, &err);
  if (st != LSMI_OK)
    fprintf(stderr, "fit failed: %s\n", err.message);
  assert_int_equal(st, LSMI_OK);
  assert_non_null(res);
  return res;
}

static bool rows_identical(const lsmi_rows_t *a, const lsmi_rows_t *b) {
  if (a->n != b->n)
    return false;
  size_t sz = a->n * sizeof(double);
  return !memcmp(a->r, b->r, sz) && !memcmp(a->u1, b->u1, sz) &&
         !memcmp(a->u2, b->u2, sz) && !memcmp(a->s, b->s, sz) &&
         !memcmp(a->i1, b->i1, sz) && !memcmp(a->i2, b->i2, sz) &&
         !memcmp(a->i12, b->i12, sz) && !memcmp(a->h1, b->h1, sz) &&
         !memcmp(a->h2, b->h2, sz) &&
         !memcmp(a->y, b->y, a->n * sizeof(int32_t));
}

static void test_deterministic(void **state) {
  (void)state;
  lsmi_dataset_t *ds = synth(LSMI_SYNTH_GAUSSIAN, 600, 1);
  lsmi_params_t p;
  small_params(&p);
  lsmi_result_t *a = fit(ds, &p), *b = fit(ds, &p);
  assert_true(rows_identical(&a->train, &b->train));
  assert_true(rows_identical(&a->val, &b->val));
  /* Every model is one single-threaded task, whichever thread runs each of
   * its epochs: one, three or five threads give the same. */
  p.threads = 1;
  lsmi_result_t *c = fit(ds, &p);
  assert_true(rows_identical(&a->val, &c->val));
  for (int threads = 3; threads <= 5; threads += 2) {
    p.threads = threads;
    lsmi_result_t *e = fit(ds, &p);
    assert_true(rows_identical(&a->train, &e->train));
    assert_true(rows_identical(&a->val, &e->val));
    lsmi_result_destroy(e);
  }
  /* Another seed gives other numbers. */
  p.seed = 6;
  lsmi_result_t *d = fit(ds, &p);
  assert_false(rows_identical(&a->val, &d->val));
  lsmi_result_destroy(a);
  lsmi_result_destroy(b);
  lsmi_result_destroy(c);
  lsmi_result_destroy(d);
  lsmi_dataset_destroy(ds);
}

/* Every kernel set computes the same estimator: the per-sample values of a
 * short fit agree to rounding, which a few hundred Adam steps amplify to
 * well under a thousandth of a nat here. Each set is deterministic itself. */
static void test_kernels_agree(void **state) {
  (void)state;
  lsmi_dataset_t *ds = synth(LSMI_SYNTH_GAUSSIAN, 400, 3);
  lsmi_params_t p;
  small_params(&p);
  const char *first = lsmi_kernels_name();
  lsmi_result_t *base = fit(ds, &p);
  const char *names[] = {"blas", "generic"};
  for (size_t k = 0; k < 2; k++) {
    assert_int_equal(lsmi_kernels_select(names[k]), LSMI_OK);
    assert_string_equal(lsmi_kernels_name(), names[k]);
    lsmi_result_t *a = fit(ds, &p), *b = fit(ds, &p);
    assert_true(rows_identical(&a->val, &b->val));
    double worst = 0.0;
    for (size_t i = 0; i < a->val.n; i++) {
      double dv[] = {
          a->val.i1[i] - base->val.i1[i], a->val.i12[i] - base->val.i12[i],
          a->val.h1[i] - base->val.h1[i], a->val.h2[i] - base->val.h2[i]};
      for (size_t j = 0; j < 4; j++)
        worst = fmax(worst, fabs(dv[j]));
    }
    print_message("kernels %s against %s: largest per-sample difference "
                  "%.3g nats\n",
                  names[k], first, worst);
    assert_true(worst < 1e-3);
    lsmi_result_destroy(a);
    lsmi_result_destroy(b);
  }
  assert_int_equal(lsmi_kernels_select("no-such"), LSMI_ERR_INVALID);
  assert_int_equal(lsmi_kernels_select(first), LSMI_OK);
  lsmi_result_destroy(base);
  lsmi_dataset_destroy(ds);
}

static void check_rows(const lsmi_rows_t *r, const lsmi_split_t *s) {
  assert_int_equal(r->n, s->n);
  for (size_t k = 0; k < r->n; k++) {
    assert_int_equal(r->y[k], s->y[k]);
    double vals[] = {r->r[k],  r->u1[k],  r->u2[k], r->s[k], r->i1[k],
                     r->i2[k], r->i12[k], r->h1[k], r->h2[k]};
    for (size_t j = 0; j < 9; j++)
      assert_true(isfinite(vals[j]));
    assert_true(fabs(r->r[k] + r->u1[k] - r->i1[k]) < 1e-9);
    assert_true(fabs(r->r[k] + r->u2[k] - r->i2[k]) < 1e-9);
    assert_true(fabs(r->r[k] + r->u1[k] + r->u2[k] + r->s[k] - r->i12[k]) <
                1e-9);
    /* i = log p(y|x) + log C <= log C with the uniform prior */
    assert_true(r->i1[k] <= log(2.0) + 1e-9);
  }
}

static void test_identities_and_summary(void **state) {
  (void)state;
  lsmi_dataset_t *ds = synth(LSMI_SYNTH_GAUSSIAN, 500, 2);
  lsmi_params_t p;
  small_params(&p);
  lsmi_result_t *res = fit(ds, &p);
  check_rows(&res->train, &ds->train);
  check_rows(&res->val, &ds->val);
  /* Summaries are the means of the (adjusted) columns; no mean of r, s,
   * u1 or u2 ends negative after an adjustment. */
  const lsmi_summary_t *sv = &res->val_summary;
  double sum = 0;
  for (size_t k = 0; k < res->val.n; k++)
    sum += res->val.r[k];
  assert_true(fabs(sv->R - sum / (double)res->val.n) < 1e-12);
  assert_int_equal(sv->n, ds->val.n);
  assert_true(sv->R >= -1e-12 && sv->S >= -1e-12);
  /* Switching the adjustment off leaves the raw decomposition: the
   * adjusted r is the raw r plus the shift. */
  p.adjust = false;
  lsmi_result_t *raw = fit(ds, &p);
  assert_true(raw->val_summary.shift == 0.0);
  for (size_t k = 0; k < res->val.n; k++) {
    assert_true(fabs(res->val.r[k] - (raw->val.r[k] + sv->shift)) < 1e-12);
    assert_true(fabs(res->val.u1[k] - (raw->val.u1[k] - sv->shift)) < 1e-12);
    assert_true(res->val.i12[k] == raw->val.i12[k]);
  }
  assert_true(res->seconds_train > 0 && res->seconds_eval >= 0);
  assert_int_equal(res->threads, 2);
  lsmi_result_destroy(raw);
  lsmi_result_destroy(res);
  lsmi_dataset_destroy(ds);
}

/* The empirical prior changes only log p(y): i moves by -log f(y) - log C. */
static void test_empirical_prior(void **state) {
  (void)state;
  lsmi_dataset_t *ds = synth(LSMI_SYNTH_GAUSSIAN, 400, 3);
  /* Make the classes imbalanced: relabel a third of class 1 as class 0. */
  for (size_t k = 0; k < ds->train.n; k += 3)
    ds->train.y[k] = 0;
  double count[2] = {0, 0};
  for (size_t k = 0; k < ds->train.n; k++)
    count[ds->train.y[k]] += 1;
  lsmi_params_t p;
  small_params(&p);
  lsmi_result_t *u = fit(ds, &p);
  p.prior = LSMI_PRIOR_EMPIRICAL;
  lsmi_result_t *e = fit(ds, &p);
  for (size_t k = 0; k < ds->val.n; k++) {
    int y = ds->val.y[k];
    double delta = -log(count[y] / (double)ds->train.n) - log(2.0);
    assert_true(fabs(e->val.i1[k] - u->val.i1[k] - delta) < 1e-9);
    assert_true(fabs(e->val.i12[k] - u->val.i12[k] - delta) < 1e-9);
    assert_true(e->val.h1[k] == u->val.h1[k]);
  }
  lsmi_result_destroy(u);
  lsmi_result_destroy(e);
  lsmi_dataset_destroy(ds);
}

typedef struct {
  int calls;
  double last_fraction;
  bool monotone;
  int max_disc, max_ent;
  int cancel_after; /* 0 = never */
  bool saw_evaluate, saw_done;
} progress_log_t;

static int on_progress(void *ctx, const lsmi_progress_t *p) {
  progress_log_t *log = ctx;
  log->calls++;
  if (p->fraction < log->last_fraction || p->fraction < 0 || p->fraction > 1)
    log->monotone = false;
  log->last_fraction = p->fraction;
  if (p->disc_epoch > log->max_disc)
    log->max_disc = p->disc_epoch;
  if (p->ent_epoch > log->max_ent)
    log->max_ent = p->ent_epoch;
  log->saw_evaluate |= p->phase == LSMI_PHASE_EVALUATE;
  log->saw_done |= p->phase == LSMI_PHASE_DONE;
  return log->cancel_after && log->calls >= log->cancel_after;
}

static void test_progress(void **state) {
  (void)state;
  lsmi_dataset_t *ds = synth(LSMI_SYNTH_GAUSSIAN, 300, 4);
  lsmi_params_t p;
  small_params(&p);
  p.epochs_discriminator = 4;
  progress_log_t log = {.monotone = true};
  lsmi_fit_hooks_t hooks = {.progress = on_progress, .ctx = &log};
  lsmi_result_t *res = NULL;
  assert_int_equal(lsmi_fit(ds, &p, &hooks, &res, NULL), LSMI_OK);
  assert_true(log.monotone);
  assert_int_equal(log.max_disc, 4);
  assert_int_equal(log.max_ent, 3);
  assert_true(log.saw_evaluate && log.saw_done);
  assert_true(log.last_fraction == 1.0);
  assert_true(log.calls >= 4 + 2);
  lsmi_result_destroy(res);
  /* On one thread the models train one after another; every model epoch
   * still reports: start + 3x4 + 2x3 model epochs + evaluate + done. */
  p.threads = 1;
  progress_log_t one = {.monotone = true};
  hooks.ctx = &one;
  assert_int_equal(lsmi_fit(ds, &p, &hooks, &res, NULL), LSMI_OK);
  assert_int_equal(one.calls, 1 + 12 + 6 + 2);
  assert_true(one.monotone);
  lsmi_result_destroy(res);
  lsmi_dataset_destroy(ds);
}

static int flag_set(void *ctx) { return atomic_load((atomic_int *)ctx); }

static void test_cancel(void **state) {
  (void)state;
  lsmi_dataset_t *ds = synth(LSMI_SYNTH_GAUSSIAN, 300, 4);
  lsmi_params_t p;
  small_params(&p);
  /* From the progress callback, after the first epoch report. */
  progress_log_t log = {.monotone = true, .cancel_after = 2};
  lsmi_fit_hooks_t hooks = {.progress = on_progress, .ctx = &log};
  lsmi_result_t *res = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_fit(ds, &p, &hooks, &res, &err), LSMI_ERR_CANCELLED);
  assert_null(res);
  assert_int_equal(err.status, LSMI_ERR_CANCELLED);
  assert_true(log.max_disc < p.epochs_discriminator);
  /* From the polled function, which says stop from the first batch on. */
  atomic_int flag = 1;
  lsmi_fit_hooks_t hooks2 = {.cancelled = flag_set, .ctx = &flag};
  assert_int_equal(lsmi_fit(ds, &p, &hooks2, &res, NULL), LSMI_ERR_CANCELLED);
  assert_null(res);
  lsmi_dataset_destroy(ds);
}

static void test_errors(void **state) {
  (void)state;
  lsmi_dataset_t *ds = synth(LSMI_SYNTH_GAUSSIAN, 200, 4);
  lsmi_params_t p;
  small_params(&p);
  lsmi_result_t *res = NULL;
  lsmi_error_t err = {0};
  p.hidden = 0;
  assert_int_equal(lsmi_fit(ds, &p, NULL, &res, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "hidden");
  assert_null(res);
  small_params(&p);
  /* Features near FLT_MAX overflow the KNIFE's squares: a non-finite loss
   * stops the fit with a status, not a crash or a NaN result. */
  for (size_t k = 0; k < ds->train.n * 4; k++)
    ds->train.x[k] = 3e38f;
  assert_int_equal(lsmi_fit(ds, &p, NULL, &res, &err), LSMI_ERR_DIVERGED);
  assert_null(res);
  /* A label outside [0, classes) is refused before any training. */
  ds->train.y[7] = 9;
  assert_int_equal(lsmi_fit(ds, &p, NULL, &res, &err), LSMI_ERR_DATA);
  assert_string_equal(err.field, "train_y");
  lsmi_dataset_destroy(ds);
}

/* Each synthetic kind is dominated by the interaction it is made of. */
static void test_kinds(void **state) {
  (void)state;
  lsmi_params_t p;
  lsmi_params_default(&p);
  p.seed = 1;
  p.threads = 2;
  p.epochs_discriminator = 15;
  p.epochs_entropy = 15;
  struct {
    lsmi_synth_kind_t kind;
    const char *name;
  } kinds[] = {{LSMI_SYNTH_REDUNDANCY, "redundancy"},
               {LSMI_SYNTH_UNIQUENESS, "uniqueness"},
               {LSMI_SYNTH_SYNERGY, "synergy"}};
  for (size_t i = 0; i < 3; i++) {
    lsmi_dataset_t *ds = synth(kinds[i].kind, 1000, 11);
    lsmi_result_t *res = fit(ds, &p);
    const lsmi_summary_t *s = &res->val_summary;
    fprintf(stderr, "%-10s R %.3f U1 %.3f U2 %.3f S %.3f I12 %.3f\n",
            kinds[i].name, s->R, s->U1, s->U2, s->S, s->I12);
    /* log 2 = 0.693 nats of label information in all three kinds */
    assert_true(s->I12 > 0.5);
    if (kinds[i].kind == LSMI_SYNTH_REDUNDANCY)
      assert_true(s->R > 0.4 && s->R > 4 * fmax(s->U1, fmax(s->U2, s->S)));
    else if (kinds[i].kind == LSMI_SYNTH_UNIQUENESS)
      assert_true(s->U1 > 0.4 && s->U1 > 4 * fmax(s->R, fmax(s->U2, s->S)));
    else
      assert_true(s->S > 0.4 && s->S > 4 * fmax(s->R, fmax(s->U1, s->U2)));
    lsmi_result_destroy(res);
    lsmi_dataset_destroy(ds);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_identities_and_summary),
      cmocka_unit_test(test_empirical_prior),
      cmocka_unit_test(test_progress),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_kernels_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
