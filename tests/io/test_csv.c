/*
 * test_csv.c — io/csv.c: CSV datasets (header by column name, a row per
 * sample, an optional split column), against the fixtures of tests/data/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"

static void test_good_file(void **state) {
  (void)state;
  static const io_good_t good[] = {{"good.csv", LSMI_FORMAT_CSV}};
  io_check_good(good, 1);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_nan.csv", LSMI_ERR_DATA, "x1", "line 7"},
      {"bad_ragged.csv", LSMI_ERR_FORMAT, NULL, "line 5"},
      {"bad_noy.csv", LSMI_ERR_MISSING, "y", "no y column"},
      {"bad_semicolon.csv", LSMI_ERR_MISSING, "y", "separated by commas"},
      {"bad_quote.csv", LSMI_ERR_FORMAT, NULL, "unterminated quote"},
      {"bad_split.csv", LSMI_ERR_DATA, "split", "holdout"},
      {"bad_text.csv", LSMI_ERR_DATA, "x1", "\"abc\" is not a number"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.csv");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_file),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
