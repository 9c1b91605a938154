/*
 * test_formats.c — io/formats.c: detection by magic bytes, dispatch to the
 * readers, the assembly of their arrays into a dataset (its errors
 * provoked with fixtures of several formats, each naming its own key),
 * and the val split made when a file has none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "io_test.h"

/* ---- the fixtures ---- */

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      /* assembly: keys, shapes, labels and values, whatever the format */
      {"bad_rows.npz", LSMI_ERR_SHAPE, "train_x2",
       "train_x2 has shape (11, 2)"},
      {"bad_dims.npz", LSMI_ERR_SHAPE, "val_x1", "val_x1 has shape (6, 2)"},
      {"bad_missing.npz", LSMI_ERR_MISSING, "train_y",
       "missing key train_y (or train_targets); the file holds train_x1, "
       "train_x2, val_x1"},
      {"bad_val_partial.npz", LSMI_ERR_MISSING, "val_x2", "val_x2"},
      {"bad_nan.npz", LSMI_ERR_DATA, "train_x1", "NaN at row 4, column 1"},
      {"bad_f32_range.npz", LSMI_ERR_DATA, "val_x2", "float32 range at row 2"},
      {"bad_label_neg.npz", LSMI_ERR_DATA, "train_y", "label -1 at row 5"},
      {"bad_label_frac.npz", LSMI_ERR_DATA, "val_y", "2.5 at row 2"},
      {"bad_3d.npz", LSMI_ERR_SHAPE, "train_x1", "shape (12, 3, 1)"},
      {"bad_nan.pt", LSMI_ERR_DATA, "train_x2", "infinite value at row 7"},
      {"bad_label_big.pt", LSMI_ERR_LIMIT, "train_y", "label 50000 at row 3"},
      {"bad_view_oob.pt", LSMI_ERR_FORMAT, "train_x1", "shape (12, 9)"},
      {"bad_expanded.pt", LSMI_ERR_UNSUPPORTED, "train_x1", "expanded"},
      {"bad_nan.safetensors", LSMI_ERR_DATA, "val_x1",
       "NaN at row 3, column 2"},
      {"bad_label.csv", LSMI_ERR_DATA, "train_y", "1.5 at row 1"},
      {"bad_missing.json", LSMI_ERR_MISSING, "train_y", "train_y"},
      /* dispatch */
      {"unknown.bin", LSMI_ERR_UNSUPPORTED, NULL, "unrecognised"},
      {"empty.csv", LSMI_ERR_FORMAT, NULL, "empty"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

/* ---- detection and names ---- */

static void test_detect(void **state) {
  (void)state;
  static const struct {
    const char *head;
    size_t len;
    lsmi_format_t fmt;
  } cases[] = {
      {"PK\3\4", 4, LSMI_FORMAT_NPZ},
      {"PK\5\6", 4, LSMI_FORMAT_NPZ},
      {"\x93NUMPY\1\0", 8, LSMI_FORMAT_NPY},
      {"\x80\x02\x8a\x0a", 4, LSMI_FORMAT_PT},
      {"\x10\0\0\0\0\0\0\0{\"a\":1}", 15, LSMI_FORMAT_SAFETENSORS},
      {"  {\"train\": {}}", 15, LSMI_FORMAT_JSON},
      {"\xEF\xBB\xBF[1]", 6, LSMI_FORMAT_JSON},
      {"split,y,x1_0,x2_0\n", 18, LSMI_FORMAT_CSV},
      {"\x01\x02\x03", 3, LSMI_FORMAT_UNKNOWN},
      {"", 0, LSMI_FORMAT_UNKNOWN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_int_equal(
        lsmi_format_detect((const unsigned char *)cases[i].head, cases[i].len),
        cases[i].fmt);
  /* A torch zip is told from an npz by its first member's name. */
  FILE *f = fopen(DATA "good.pt", "rb");
  assert_non_null(f);
  unsigned char head[64];
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  assert_int_equal(lsmi_format_detect(head, n), LSMI_FORMAT_PT);
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_NPZ), "npz");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_NPY), "npy");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_PT), "pt");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_SAFETENSORS), "safetensors");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_CSV), "csv");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_JSON), "json");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_UNKNOWN), "unknown");
  assert_string_equal(lsmi_format_name((lsmi_format_t)99), "unknown");
}

/* The list of keys a file holds, for missing-key errors, stays bounded. */
static void test_seen_keys(void **state) {
  (void)state;
  lsmi__arrays_t as;
  lsmi__arrays_init(&as);
  lsmi__arrays_seen(&as, "arr_0");
  lsmi__arrays_seen(&as, "arr_1");
  assert_string_equal(as.seen, "arr_0, arr_1");
  char key[40];
  for (int i = 2; i < 100; i++) {
    snprintf(key, sizeof key, "a_rather_long_key_name_%d", i);
    lsmi__arrays_seen(&as, key);
  }
  size_t n = strlen(as.seen);
  assert_true(n < sizeof as.seen);
  assert_string_equal(as.seen + n - 3, "...");
  lsmi__arrays_free(&as);
}

/* ---- val split ---- */

static void test_val_fraction_split(void **state) {
  (void)state;
  lsmi_dataset_t *a = NULL, *b = NULL, *c = NULL;
  lsmi_error_t err;
  assert_int_equal(
      io_read(DATA "good_trainonly.npz", NULL, 0.25, 7, &a, NULL, &err), 0);
  assert_int_equal(a->train.n, 9);
  assert_int_equal(a->val.n, 3);
  /* Stratified: one row of each class (4 per class x 0.25) went to val. */
  int seen[3] = {0, 0, 0};
  for (size_t i = 0; i < a->val.n; i++)
    seen[a->val.y[i]]++;
  assert_int_equal(seen[0], 1);
  assert_int_equal(seen[1], 1);
  assert_int_equal(seen[2], 1);
  /* The same seed from another format gives the same split. */
  assert_int_equal(
      io_read(DATA "good_trainonly.csv", NULL, 0.25, 7, &b, NULL, &err), 0);
  unsigned char ha[32], hb[32], hc[32];
  lsmi_dataset_hash(a, ha);
  lsmi_dataset_hash(b, hb);
  assert_memory_equal(ha, hb, 32);
  /* Some other seed picks other rows. */
  int differ = 0;
  for (uint64_t seed = 8; seed < 16 && !differ; seed++) {
    assert_int_equal(
        io_read(DATA "good_trainonly.npz", NULL, 0.25, seed, &c, NULL, &err),
        0);
    lsmi_dataset_hash(c, hc);
    differ = memcmp(ha, hc, 32) != 0;
    lsmi_dataset_destroy(c);
  }
  assert_true(differ);
  lsmi_dataset_destroy(a);
  lsmi_dataset_destroy(b);
  /* A file with a val split ignores val_fraction. */
  assert_int_equal(io_read(DATA "good.npz", NULL, 0.5, 1, &a, NULL, &err), 0);
  assert_int_equal(a->val.n, 6);
  lsmi_dataset_destroy(a);
}

static void test_val_fraction_errors(void **state) {
  (void)state;
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  assert_int_equal(
      io_read(DATA "good_trainonly.npz", NULL, 0, 0, &ds, NULL, &err),
      LSMI_ERR_MISSING);
  assert_non_null(strstr(err.message, "val_fraction"));
  assert_int_equal(io_read(DATA "good.npz", NULL, 1.5, 0, &ds, NULL, &err),
                   LSMI_ERR_INVALID);
  assert_string_equal(err.field, "val_fraction");
  assert_int_equal(io_read(DATA "good.npz", NULL, NAN, 0, &ds, NULL, &err),
                   LSMI_ERR_INVALID);
  /* 1% of 4 rows per class rounds to no val rows at all. */
  assert_int_equal(
      io_read(DATA "good_trainonly.npz", NULL, 0.01, 0, &ds, NULL, &err),
      LSMI_ERR_INVALID);
  assert_null(ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_detect),
      cmocka_unit_test(test_seen_keys),
      cmocka_unit_test(test_val_fraction_split),
      cmocka_unit_test(test_val_fraction_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
