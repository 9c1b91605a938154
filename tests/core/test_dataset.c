/*
 * test_dataset.c — core/dataset.c: create fills each row's position,
 * destroy frees what a reader added (ids, class names), and the val split
 * drawn from train carries every row's position, id and label with it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "lsmi.h"

static void test_create_rows(void **state) {
  (void)state;
  lsmi_dataset_t *ds = lsmi_dataset_create(5, 3, 1, 1, 2, NULL);
  assert_non_null(ds);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(ds->train.row[i], i);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(ds->val.row[i], i);
  assert_null(ds->train.id);
  assert_null(ds->class_names);
  assert_false(ds->val_drawn);
  lsmi_dataset_destroy(ds);
  lsmi_dataset_destroy(NULL);
}

/* 20 train rows of two classes, rows 100 + i, ids "s<i>", features i,
 * class names "no" and "yes". */
static lsmi_dataset_t *labelled(void) {
  lsmi_dataset_t *ds = lsmi_dataset_create(20, 0, 1, 1, 2, NULL);
  assert_non_null(ds);
  ds->train.id = calloc(20, sizeof(char *));
  ds->class_names = calloc(2, sizeof(char *));
  assert_non_null(ds->train.id);
  assert_non_null(ds->class_names);
  ds->class_names[0] = strdup("no");
  ds->class_names[1] = strdup("yes");
  ds->class_names_numeric = false;
  ds->id_numeric = false;
  for (size_t i = 0; i < 20; i++) {
    ds->train.x[2 * i] = (float)i;
    ds->train.x[2 * i + 1] = -(float)i;
    ds->train.y[i] = (int32_t)(i % 2);
    ds->train.row[i] = 100 + i;
    char id[8];
    snprintf(id, sizeof id, "s%zu", i);
    ds->train.id[i] = strdup(id);
  }
  return ds;
}

static void test_split_val_carries_rows(void **state) {
  (void)state;
  lsmi_dataset_t *ds = labelled(), *o = NULL;
  lsmi_error_t err;
  assert_int_equal(lsmi_dataset_split_val(ds, 0.2, 3, &o, &err), LSMI_OK);
  assert_int_equal(o->train.n, 16);
  assert_int_equal(o->val.n, 4);
  assert_true(o->val_drawn);
  assert_string_equal(o->class_names[1], "yes");
  assert_ptr_not_equal(o->class_names, ds->class_names);
  bool seen[20] = {false};
  for (int s = 0; s < 2; s++) {
    lsmi_split_t *sp = s ? &o->val : &o->train;
    uint64_t last = 0;
    for (size_t i = 0; i < sp->n; i++) {
      uint64_t r = sp->row[i] - 100; /* the file row, from the feature */
      assert_true(sp->x[2 * i] == (float)r);
      assert_int_equal(sp->y[i], (int32_t)(r % 2));
      char id[8];
      snprintf(id, sizeof id, "s%llu", (unsigned long long)r);
      assert_string_equal(sp->id[i], id);
      assert_true(i == 0 || sp->row[i] > last); /* file order kept */
      last = sp->row[i];
      assert_false(seen[r]);
      seen[r] = true;
    }
  }
  lsmi_dataset_destroy(o);
  lsmi_dataset_destroy(ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_rows),
      cmocka_unit_test(test_split_val_carries_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
