/*
 * test_npy.c — io/npy.c: .npy arrays, .npz archives of them, and the
 * single-file .npy bundle (a structured array of x1, x2, y, split), against
 * the fixtures of tests/data/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"

/* ---- the fixtures ---- */

static void test_good_files(void **state) {
  (void)state;
  static const io_good_t good[] = {
      {"good.npz", LSMI_FORMAT_NPZ},
      {"good_deflate.npz", LSMI_FORMAT_NPZ},
      {"good_layouts.npz", LSMI_FORMAT_NPZ},
      {"good_bundle.npy", LSMI_FORMAT_NPY},
      {"good_bundle_aligned.npy", LSMI_FORMAT_NPY},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      /* npz */
      {"bad_member_magic.npz", LSMI_ERR_FORMAT, "train_x2", "bad magic"},
      {"bad_string_dtype.npz", LSMI_ERR_UNSUPPORTED, "train_x2", "<U8"},
      {"bad_object.npz", LSMI_ERR_UNSUPPORTED, "val_y", "|O"},
      {"bad_shape_overflow.npz", LSMI_ERR_LIMIT, "train_x1",
       "shape (4611686018427387904, 4611686018427387904)"},
      {"bad_shape_lies.npz", LSMI_ERR_FORMAT, "train_x1", "shape (1000, 3)"},
      {"bad_header_len.npz", LSMI_ERR_FORMAT, "train_y", "60000"},
      /* npy */
      {"bad_truncated.npy", LSMI_ERR_FORMAT, NULL, "truncated"},
      {"bad_plain.npy", LSMI_ERR_UNSUPPORTED, NULL, "structured array"},
      {"bad_bundle_noy.npy", LSMI_ERR_MISSING, "y", "no field y"},
      {"bad_header_len.npy", LSMI_ERR_FORMAT, NULL, "65000"},
      {"bad_version.npy", LSMI_ERR_UNSUPPORTED, NULL, "version 9"},
      {"bad_header_syntax.npy", LSMI_ERR_FORMAT, NULL, "dict literal"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.npz");
  io_check_every_prefix("good_bundle.npy");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
