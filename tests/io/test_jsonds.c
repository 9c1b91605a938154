/*
 * test_jsonds.c — io/jsonds.c: JSON datasets ({"train": {"x1", "x2",
 * "y"}, "val": ...}, or the flat keys train_x1 ... val_y).
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
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
