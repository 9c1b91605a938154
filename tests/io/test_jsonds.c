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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
