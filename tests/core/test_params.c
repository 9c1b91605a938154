/*
 * test_params.c — defaults, ranges and the setters of lsmi_params_t: every
 * invalid value is rejected with an error that names the field.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lsmi.h"

#include "check.h"

static void test_defaults(void **state) {
  (void)state;
  lsmi_params_t p;
  lsmi_params_default(&p);
  assert_int_equal(p.seed, 0);
  assert_int_equal(p.hidden, 64);
  assert_int_equal(p.epochs_discriminator, 30);
  assert_int_equal(p.epochs_entropy, 30);
  assert_int_equal(p.step_discriminator, 15);
  assert_int_equal(p.step_entropy, 20);
  assert_int_equal(p.batch_size, 32);
  assert_int_equal(p.components, 5);
  assert_int_equal(p.threads, 0);
  assert_close(p.lr_discriminator, 1e-3, 0);
  assert_close(p.lr_entropy, 1e-3, 0);
  assert_close(p.gamma, 0.1, 0);
  assert_int_equal(p.prior, LSMI_PRIOR_UNIFORM);
  assert_true(p.adjust);
  assert_close(p.val_fraction, 0, 0);
  /* Beyond the published recipe: all off. */
  assert_int_equal(p.preset, LSMI_PRESET_PUBLISHED);
  assert_int_equal(p.ensemble, 1);
  assert_false(p.early_stopping);
  assert_close(p.holdout_fraction, 0.1, 0);
  assert_int_equal(p.patience, 3);
  assert_int_equal(p.folds, 0);
  assert_int_equal(p.knife_init, LSMI_KNIFE_INIT_RANDOM);
  assert_int_equal(lsmi_params_validate(&p, NULL), LSMI_OK);
  /* The table and the defaults agree on every name. */
  size_t n;
  const lsmi_param_desc_t *t = lsmi_params_table(&n);
  assert_int_equal(n, 22);
  for (size_t i = 0; i < n; i++) {
    assert_ptr_equal(lsmi_params_find(t[i].name), &t[i]);
    assert_false(isnan(lsmi_params_get_number(&p, t[i].name)));
  }
}

static void expect_invalid(const char *name, const char *text) {
  lsmi_params_t p;
  lsmi_params_default(&p);
  lsmi_params_t before = p;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_params_set(&p, name, text, &err), LSMI_ERR_INVALID);
  assert_int_equal(err.status, LSMI_ERR_INVALID);
  const lsmi_param_desc_t *d = lsmi_params_find(name);
  assert_string_equal(err.field, d ? d->name : name);
  assert_true(strlen(err.message) > 10);
  assert_memory_equal(&p, &before, sizeof p); /* untouched on error */
}

static void test_rejects(void **state) {
  (void)state;
  expect_invalid("hidden", "0");
  expect_invalid("hidden", "1.5");
  expect_invalid("hidden", "abc");
  expect_invalid("epochs_discriminator", "-3");
  expect_invalid("epochs-entropy", "0");
  expect_invalid("lr_discriminator", "0");
  expect_invalid("lr_entropy", "nan");
  expect_invalid("gamma", "1.5");
  expect_invalid("batch_size", "0");
  expect_invalid("components", "0");
  expect_invalid("threads", "-1");
  expect_invalid("prior", "bayes");
  expect_invalid("adjust", "maybe");
  expect_invalid("val_fraction", "1");
  expect_invalid("seed", "-1");
  expect_invalid("seed", "1e300");
  expect_invalid("no_such_param", "1");
}

static void test_accepts(void **state) {
  (void)state;
  lsmi_params_t p;
  lsmi_params_default(&p);
  assert_int_equal(lsmi_params_set(&p, "epochs-discriminator", "7", NULL), 0);
  assert_int_equal(p.epochs_discriminator, 7);
  assert_int_equal(lsmi_params_set(&p, "prior", "empirical", NULL), 0);
  assert_int_equal(p.prior, LSMI_PRIOR_EMPIRICAL);
  assert_int_equal(lsmi_params_set(&p, "adjust", "false", NULL), 0);
  assert_false(p.adjust);
  assert_int_equal(lsmi_params_set(&p, "seed", "123456789", NULL), 0);
  assert_int_equal(p.seed, 123456789);
  assert_int_equal(lsmi_params_set_number(&p, "lr_entropy", 5e-4, NULL), 0);
  assert_close(p.lr_entropy, 5e-4, 0);
  assert_int_equal(lsmi_params_set_number(&p, "val_fraction", 0.2, NULL), 0);
  assert_int_equal(lsmi_params_set_number(&p, "prior", 1, NULL),
                   LSMI_ERR_INVALID);
  assert_int_equal(lsmi_params_validate(&p, NULL), LSMI_OK);
  /* validate catches a field set behind the setters' back */
  p.batch_size = -4;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_params_validate(&p, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "batch_size");
}

/* A preset sets its fields; explicit values set afterwards win; the enums
 * go by name; folds 1 is refused; every value formats as text. */
static void test_presets_and_enums(void **state) {
  (void)state;
  lsmi_params_t p;
  lsmi_params_default(&p);
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_params_set(&p, "preset", "robust", &err), LSMI_OK);
  assert_int_equal(p.preset, LSMI_PRESET_ROBUST);
  assert_true(p.ensemble > 1);
  assert_true(p.early_stopping);
  assert_int_equal(p.knife_init, LSMI_KNIFE_INIT_DATA);
  assert_int_equal(p.hidden, 64); /* the recipe's own fields are kept */
  assert_int_equal(lsmi_params_set(&p, "ensemble", "3", &err), LSMI_OK);
  assert_int_equal(p.ensemble, 3);
  lsmi_params_preset(&p, LSMI_PRESET_PUBLISHED);
  assert_int_equal(p.ensemble, 1);
  assert_false(p.early_stopping);
  assert_int_equal(lsmi_params_set(&p, "preset", "fast", &err),
                   LSMI_ERR_INVALID);
  assert_string_equal(err.field, "preset");
  assert_non_null(strstr(err.message, "\"published\" or \"robust\""));
  assert_int_equal(lsmi_params_set(&p, "knife-init", "data", &err), LSMI_OK);
  assert_int_equal(p.knife_init, LSMI_KNIFE_INIT_DATA);
  assert_int_equal(lsmi_params_set_number(&p, "knife_init", 1, &err),
                   LSMI_ERR_INVALID);
  assert_int_equal(lsmi_params_set(&p, "folds", "1", &err), LSMI_OK);
  assert_int_equal(lsmi_params_validate(&p, &err), LSMI_ERR_INVALID);
  assert_string_equal(err.field, "folds");
  assert_int_equal(lsmi_params_set(&p, "folds", "5", &err), LSMI_OK);
  assert_int_equal(lsmi_params_validate(&p, &err), LSMI_OK);
  assert_int_equal(lsmi_params_set(&p, "holdout_fraction", "0", &err),
                   LSMI_ERR_INVALID);
  char buf[32];
  assert_string_equal(lsmi_params_format(&p, "knife_init", buf, sizeof buf),
                      "data");
  assert_string_equal(lsmi_params_format(&p, "early_stopping", buf, sizeof buf),
                      "false");
  assert_string_equal(lsmi_params_format(&p, "folds", buf, sizeof buf), "5");
  assert_string_equal(lsmi_params_format(&p, "lr_entropy", buf, sizeof buf),
                      "0.001");
  p.seed = 9007199254740991ull;
  assert_string_equal(lsmi_params_format(&p, "seed", buf, sizeof buf),
                      "9007199254740991");
  assert_null(lsmi_params_format(&p, "nope", buf, sizeof buf));
}

static void test_status_table(void **state) {
  (void)state;
  assert_string_equal(lsmi_status_name(LSMI_OK), "OK");
  assert_string_equal(lsmi_status_name(LSMI_ERR_LIMIT), "ERR_LIMIT");
  assert_string_equal(lsmi_status_message(LSMI_ERR_NOTFOUND), "not found");
  assert_string_equal(lsmi_status_name(-999), "UNKNOWN");
  lsmi_error_t err;
  assert_int_equal(
      lsmi_error_set(&err, LSMI_ERR_SHAPE, "train_x1", "got %d", 3),
      LSMI_ERR_SHAPE);
  assert_string_equal(err.field, "train_x1");
  assert_string_equal(err.message, "got 3");
  assert_int_equal(lsmi_error_set(NULL, LSMI_ERR_IO, NULL, "x"), LSMI_ERR_IO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_accepts),
      cmocka_unit_test(test_presets_and_enums),
      cmocka_unit_test(test_status_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
