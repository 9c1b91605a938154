/*
 * test_pt.c — io/pt.c: PyTorch files and the restricted unpickler, against
 * the files torch.save wrote in tests/data/ (tests/data/make_fixtures.py).
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
      {"good.pt", LSMI_FORMAT_PT},           {"good_views.pt", LSMI_FORMAT_PT},
      {"good_half.pt", LSMI_FORMAT_PT},      {"good_param.pt", LSMI_FORMAT_PT},
      {"good_bigendian.pt", LSMI_FORMAT_PT},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_truncated.pt", LSMI_ERR_FORMAT, NULL, "truncated"},
      {"legacy.pt", LSMI_ERR_UNSUPPORTED, NULL, "legacy PyTorch file"},
      {"bad_os_system.pt", LSMI_ERR_UNSUPPORTED, "data.pkl",
       "unsupported pickle global os.system"},
      {"bad_reduce.pt", LSMI_ERR_UNSUPPORTED, "data.pkl",
       "unsupported pickle global posix.system"},
      {"bad_build.pt", LSMI_ERR_UNSUPPORTED, "data.pkl", "(BUILD)"},
      {"bad_memo.pt", LSMI_ERR_FORMAT, "data.pkl", "unset index"},
      {"bad_no_storage.pt", LSMI_ERR_FORMAT, "train_x2", "missing"},
      {"bad_short_storage.pt", LSMI_ERR_FORMAT, "train_x1", "storage 0"},
      {"bad_not_tensor.pt", LSMI_ERR_UNSUPPORTED, "train_x2", "not a tensor"},
      {"bad_not_dict.pt", LSMI_ERR_UNSUPPORTED, NULL, "not a dict"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.pt");
  io_check_every_prefix("good_views.pt");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
