/*
 * test_zip.c — io/zip.c: the zip container of .npz and .pt files, against
 * the damaged archives and zip bombs of tests/data/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"

/* ---- the fixtures ---- */

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_truncated.npz", LSMI_ERR_FORMAT, NULL, "truncated"},
      {"bad_crc.npz", LSMI_ERR_FORMAT, "train_x2.npy", "CRC"},
      {"bomb_ratio.npz", LSMI_ERR_LIMIT, "train_x1.npy", "ratio"},
      {"bomb_declared.npz", LSMI_ERR_LIMIT, "train_x1.npy",
       "max_decompressed_bytes"},
      {"bad_inflate_more.npz", LSMI_ERR_FORMAT, "train_x1.npy",
       "more than its declared"},
      {"bad_cd_offset.npz", LSMI_ERR_FORMAT, NULL, "central directory"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good_deflate.npz");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
