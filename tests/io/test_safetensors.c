/*
 * test_safetensors.c — io/safetensors.c: Hugging Face .safetensors files
 * (an 8-byte header length, a JSON header, the data region), against the
 * fixtures of tests/data/.
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
      {"good.safetensors", LSMI_FORMAT_SAFETENSORS},
      {"good_f16.safetensors", LSMI_FORMAT_SAFETENSORS},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_truncated.safetensors", LSMI_ERR_FORMAT, "val_y", "truncated"},
      {"bad_header_len.safetensors", LSMI_ERR_FORMAT, NULL, "header says"},
      {"bad_header_huge.safetensors", LSMI_ERR_LIMIT, NULL, "header"},
      {"bad_json.safetensors", LSMI_ERR_FORMAT, NULL, "JSON"},
      {"bad_offsets.safetensors", LSMI_ERR_FORMAT, "val_y", "data_offsets"},
      {"bad_size.safetensors", LSMI_ERR_FORMAT, "train_x1", "shape (12, 4)"},
      {"bad_overflow.safetensors", LSMI_ERR_LIMIT, "train_x2",
       "shape (1099511627776, 1099511627776)"},
      {"bad_dtype.safetensors", LSMI_ERR_UNSUPPORTED, "train_x1", "F8_E4M3"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.safetensors");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
