/*
 * test_jsonds.c — io/jsonds.c: JSON datasets ({"train": {"x1", "x2",
 * "y"}, "val": ...}, the flat keys train_x1 ... val_y, or x1, x2, y), with
 * labels and ids of numbers or strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"

static void test_good_files(void **state) {
  (void)state;
  static const io_good_t good[] = {
      {"good.json", LSMI_FORMAT_JSON},
      {"good_flat.json", LSMI_FORMAT_JSON},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_ragged.json", LSMI_ERR_SHAPE, "train.x1", "row 3 has 2 values"},
      {"bad_string.json", LSMI_ERR_DATA, "val.x2", "row 1, column 0"},
      {"bad_syntax.json", LSMI_ERR_FORMAT, NULL, "invalid JSON"},
      {"bad_nan.json", LSMI_ERR_FORMAT, NULL, "NaN"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.json");
}

#define JSON(s, status, field, message)                                        \
  io_expect_text(LSMI_FORMAT_JSON, s, status, field, message)

static void test_shapes_and_values(void **state) {
  (void)state;
  JSON("[1, 2]", LSMI_ERR_FORMAT, "",
       "a JSON dataset must be an object with \"train\" (and \"val\")");
  JSON("{\"train\": [1]}", LSMI_ERR_FORMAT, "train",
       "\"train\" must be an object with x1, x2 and y");
  JSON("{\"train\": {\"x1\": 5}}", LSMI_ERR_FORMAT, "train.x1",
       "train.x1 is not an array");
  JSON("{\"train\": {\"x1\": [1, 2]}}", LSMI_ERR_SHAPE, "train.x1",
       "train.x1 must be a list of rows (lists of numbers)");
  JSON("{\"train\": {\"y\": [0, \"1\"]}}", LSMI_ERR_DATA, "train.y",
       "train.y[1] is not a number");
  JSON("{\"train_x1\": [[1], [2, 3]]}", LSMI_ERR_SHAPE, "train_x1",
       "train_x1 row 1 has 2 values; row 0 has 1");
  JSON("{\"a\": 1, \"a\": 2}", LSMI_ERR_FORMAT, "",
       "invalid JSON at line 1, column");
}

/* Labels and ids of numbers or strings, one-hot label rows, the short
 * names of a file without val, the caller's names inside a split. */
static void test_labels_ids_and_names(void **state) {
  (void)state;
  const char *j = "{\"train\": {\"a\": [[1], [2], [3], [4]], \"x2\": [[1], "
                  "[2], [3], [4]], \"cls\": [\"dog\", \"cat\", \"dog\", "
                  "\"cat\"], \"id\": [7, 8, 9, 10]}, \"val\": {\"a\": [[5]], "
                  "\"x2\": [[5]], \"cls\": [\"cat\"], \"id\": [11]}}";
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.x1 = "a";
  opt.y = "cls";
  lsmi_dataset_t *ds =
      io_must_read_opts(j, strlen(j), LSMI_FORMAT_JSON, &opt, NULL);
  assert_int_equal(ds->classes, 2);
  assert_string_equal(ds->class_names[0], "cat");
  assert_int_equal(ds->train.y[0], 1);
  assert_int_equal(ds->val.y[0], 0);
  assert_true(ds->id_numeric);
  assert_string_equal(ds->train.id[3], "10");
  assert_string_equal(ds->val.id[0], "11");
  lsmi_dataset_destroy(ds);
  /* x1, x2, y at the top: a file without val; one-hot label rows. */
  j = "{\"x1\": [[1], [2], [3], [4], [5], [6]], \"x2\": [[1], [2], [3], "
      "[4], [5], [6]], \"y\": [[1, 0], [0, 1], [1, 0], [0, 1], [1, 0], [0, "
      "1]], \"id\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"]}";
  opt = (lsmi_read_options_t)LSMI_READ_OPTIONS_INIT;
  opt.val_fraction = 0.34;
  lsmi_read_info_t info;
  ds = io_must_read_opts(j, strlen(j), LSMI_FORMAT_JSON, &opt, &info);
  assert_int_equal(ds->train.n + ds->val.n, 6);
  assert_true(ds->val_drawn);
  assert_false(ds->id_numeric);
  assert_null(ds->class_names);
  assert_string_equal(info.notes[0],
                      "y: one-hot rows (6, 2) read as class indices (argmax)");
  for (size_t i = 0; i < ds->val.n; i++)
    assert_int_equal(ds->val.id[i][0] - 'a', (int)ds->val.row[i]);
  lsmi_dataset_destroy(ds);
  JSON("{\"train\": {\"y\": [\"a\", 1]}}", LSMI_ERR_DATA, "train.y",
       "train.y[1] is not a string but train.y[0] is: a column holds numbers "
       "or strings, not both");
  JSON("{\"train\": {\"x1\": [[1], [2]], \"x2\": [[1], [2]], \"y\": [0, "
       "1]}, \"val\": {\"x1\": [[1]], \"x2\": [[1]], \"y\": [\"a\"]}}",
       LSMI_ERR_DATA, "val.y",
       "train.y holds numbers but val.y holds text: labels must be all "
       "numbers or all text");
}

static void test_limits(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_dims = 2;
  const char *wide = "{\"val\": {\"x2\": [[1, 2, 3]]}}";
  io_expect(wide, strlen(wide), LSMI_FORMAT_JSON, &lim, LSMI_ERR_LIMIT,
            "val.x2", "val.x2 has 3 columns; the limit is 2");
  /* Above 64 MiB, JSON is refused before it is parsed. */
  size_t big = ((size_t)64 << 20) + 1;
  char *b = malloc(big);
  assert_non_null(b);
  memset(b, ' ', big);
  b[0] = '{';
  b[big - 1] = '}';
  io_expect(b, big, LSMI_FORMAT_JSON, NULL, LSMI_ERR_LIMIT, "",
            "JSON datasets are limited to 67108864 bytes; save larger ones "
            "as .npz");
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
      cmocka_unit_test(test_shapes_and_values),
      cmocka_unit_test(test_labels_ids_and_names),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
