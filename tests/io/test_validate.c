/*
 * test_validate.c — io/validate.c: the limits, the checks every reader
 * runs once a dataset is read (lsmi_dataset_validate), and the canonical
 * hash (the same numbers give the same SHA-256 whatever the format).
 *
 * The limits are applied all along a read, by every reader: each is
 * provoked here through the fixture it stops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "io_test.h"

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_rare_class.npz", LSMI_ERR_DATA, "train_y",
       "class 2 has 1 row in train"},
      {"bad_label.json", LSMI_ERR_DATA, "train_y", "class 3 has 0 rows"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

/* ---- limits ---- */

static void test_limits(void **state) {
  (void)state;
  static const struct {
    const char *file;
    size_t offset; /* field of lsmi_limits_t */
    uint64_t value;
    const char *message;
  } cases[] = {
      {"good.npz", offsetof(lsmi_limits_t, max_members), 3, "members"},
      {"good.npz", offsetof(lsmi_limits_t, max_rows), 10, "rows exceed"},
      {"good.csv", offsetof(lsmi_limits_t, max_rows), 10, "more than 10"},
      {"good.json", offsetof(lsmi_limits_t, max_rows), 10, "limit is 10"},
      {"good.pt", offsetof(lsmi_limits_t, max_dims), 2, "columns exceed"},
      {"good.npz", offsetof(lsmi_limits_t, max_file_bytes), 100, "limit"},
      {"good.npz", offsetof(lsmi_limits_t, max_header_bytes), 64, "header"},
      {"good.pt", offsetof(lsmi_limits_t, max_header_bytes), 64, "data.pkl"},
      {"good.safetensors", offsetof(lsmi_limits_t, max_header_bytes), 64,
       "header"},
      {"good_deflate.npz", offsetof(lsmi_limits_t, max_decompressed_bytes), 400,
       "max_decompressed_bytes"},
      {"good.npz", offsetof(lsmi_limits_t, max_classes), 2, "max_classes"},
      {"good.npz", offsetof(lsmi_limits_t, min_rows_per_class), 5,
       "needs at least 5"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lsmi_limits_t lim;
    lsmi_limits_default(&lim);
    memcpy((char *)&lim + cases[i].offset, &cases[i].value, sizeof(uint64_t));
    char path[256];
    snprintf(path, sizeof path, DATA "%s", cases[i].file);
    lsmi_dataset_t *ds = NULL;
    lsmi_error_t err;
    int rc = io_read(path, &lim, 0, 0, &ds, NULL, &err);
    int want = cases[i].offset == offsetof(lsmi_limits_t, min_rows_per_class)
                   ? LSMI_ERR_DATA
                   : LSMI_ERR_LIMIT;
    if (rc != want || !strstr(err.message, cases[i].message))
      print_error("case %zu (%s): %s: %s\n", i, cases[i].file,
                  lsmi_status_name(rc), err.message);
    assert_int_equal(rc, want);
    assert_non_null(strstr(err.message, cases[i].message));
    assert_null(ds);
  }
}

static void test_limits_default(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  assert_true(lim.max_file_bytes >= ((uint64_t)1 << 30));
  assert_true(lim.max_rows >= 1000000);
  assert_true(lim.max_ratio > 10);
  assert_int_equal(lim.min_rows_per_class, 2);
}

/* ---- the dataset object ---- */

static void test_create_destroy(void **state) {
  (void)state;
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  assert_null(lsmi_dataset_create(SIZE_MAX / 2, 0, 4, 4, 2, &err));
  assert_int_equal(err.status, LSMI_ERR_LIMIT);
  lsmi_dataset_destroy(NULL);
  lsmi_dataset_t *ds = lsmi_dataset_create(4, 0, 1, 1, 2, &err);
  assert_non_null(ds);
  assert_int_equal(ds->val.n, 0);
  lsmi_dataset_destroy(ds);
}

static void test_validate(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi_error_t err;
  lsmi_dataset_t *ds = lsmi_dataset_create(4, 2, 1, 2, 2, &err);
  for (size_t i = 0; i < 4 * 3; i++)
    ds->train.x[i] = (float)i;
  for (size_t i = 0; i < 2 * 3; i++)
    ds->val.x[i] = (float)i;
  int32_t y[4] = {0, 1, 0, 1};
  memcpy(ds->train.y, y, sizeof y);
  ds->val.y[0] = 0;
  ds->val.y[1] = 1;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), 0);
  ds->train.x[3 * 2 + 2] = NAN; /* row 2, x2 column 1 */
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_string_equal(err.field, "train_x2");
  assert_non_null(strstr(err.message, "row 2, column 1"));
  ds->train.x[3 * 2 + 2] = 0;
  ds->val.y[1] = 2;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_string_equal(err.field, "val_y");
  ds->val.y[1] = 1;
  ds->train.y[3] = 0; /* class 1 has one train row */
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_non_null(strstr(err.message, "class 1"));
  lsmi_dataset_destroy(ds);
}

/* The errors of lsmi_dataset_validate before it looks at any row. */
static void test_validate_shapes(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi_error_t err;
  assert_int_equal(lsmi_dataset_validate(NULL, &lim, &err), LSMI_ERR_INVALID);
  lsmi_dataset_t *ds = lsmi_dataset_create(4, 0, 1, 2, 2, &err);
  assert_int_equal(lsmi_dataset_validate(ds, NULL, &err), LSMI_ERR_INVALID);
  ds->d1 = 0;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_SHAPE);
  assert_string_equal(err.field, "train_x1");
  ds->d1 = 1;
  lim.max_dims = 1;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_LIMIT);
  assert_string_equal(err.field, "train_x2");
  assert_string_equal(err.message, "feature dimensions d1 = 1, d2 = 2 exceed "
                                   "the limit 1");
  lim.max_dims = 2;
  ds->classes = 1;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_string_equal(err.message,
                      "labels must take at least 2 values; found 1 class");
  ds->classes = 2;
  lim.max_classes = 1;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_LIMIT);
  lim.max_classes = 2;
  lim.max_rows = 3;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_LIMIT);
  assert_string_equal(err.field, "train_y");
  assert_string_equal(err.message, "train has 4 rows; the limit is 3");
  lsmi_dataset_destroy(ds);
  lsmi_limits_default(&lim);
  ds = lsmi_dataset_create(0, 2, 1, 1, 2, &err);
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_SHAPE);
  assert_string_equal(err.message, "the train split has no rows");
  lsmi_dataset_destroy(ds);
  /* A class with too few rows is named by the file's label. */
  ds = lsmi_dataset_create(3, 0, 1, 1, 2, &err);
  memset(ds->train.x, 0, 6 * sizeof(float));
  ds->train.y[0] = ds->train.y[1] = 0;
  ds->train.y[2] = 1;
  ds->class_names = calloc(2, sizeof(char *));
  ds->class_names[0] = strdup("bird");
  ds->class_names[1] = strdup("cat");
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_string_equal(err.message, "class \"cat\" has 1 row in train; every "
                                   "class needs at least 2");
  lsmi_dataset_destroy(ds);
}

/* The canonical hash: pinned for the fixture, the same from every format
 * (test_npy.c and the others check that), and changed by any number. */
static void test_hash(void **state) {
  (void)state;
  lsmi_dataset_t *ds;
  lsmi_error_t err;
  assert_int_equal(io_read(DATA "good.npz", NULL, 0, 0, &ds, NULL, &err), 0);
  unsigned char h[32], h2[32];
  char hex[65];
  lsmi_dataset_hash(ds, h);
  io_hex(h, 32, hex);
  assert_memory_equal(hex, FIXTURE_HASH, strlen(FIXTURE_HASH));
  ds->val.x[7] += 0.125f;
  lsmi_dataset_hash(ds, h2);
  assert_memory_not_equal(h, h2, 32);
  ds->val.x[7] -= 0.125f;
  ds->train.y[0] = 1;
  lsmi_dataset_hash(ds, h2);
  assert_memory_not_equal(h, h2, 32);
  ds->train.y[0] = 0;
  lsmi_dataset_hash(ds, h2);
  assert_memory_equal(h, h2, 32);
  lsmi_dataset_destroy(ds);
  /* More cells than one 4096-byte block of the hash holds. */
  ds = lsmi_dataset_create(1000, 0, 1, 1, 2, &err);
  lsmi_dataset_hash(ds, h);
  ds->train.x[1999] = 1;
  lsmi_dataset_hash(ds, h2);
  assert_memory_not_equal(h, h2, 32);
  lsmi_dataset_destroy(ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_limits_default),
      cmocka_unit_test(test_create_destroy),
      cmocka_unit_test(test_validate),
      cmocka_unit_test(test_validate_shapes),
      cmocka_unit_test(test_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
