/*
 * test_formats_oom.c — every allocation of the readers may fail.
 *
 * The reader sources are compiled into this test with malloc, calloc and
 * realloc replaced by counting versions (SQLite's way of testing
 * out-of-memory paths): for each good fixture, the Nth allocation fails, for
 * N = 1, 2, ... until a read makes fewer than N allocations. Each such read
 * must fail with LSMI_ERR_NOMEM (or, where the failed allocation only made
 * a cache or probe give up, succeed) and must not crash or leak; the ASan
 * build checks the leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static long oom_countdown = -1; /* allocations left before one fails */
static long oom_calls;

static int oom_hit(void) {
  oom_calls++;
  if (oom_countdown < 0)
    return 0;
  return oom_countdown-- == 0;
}
static void *oom_malloc(size_t n) { return oom_hit() ? NULL : malloc(n); }
static void *oom_calloc(size_t k, size_t n) {
  return oom_hit() ? NULL : calloc(k, n);
}
static void *oom_realloc(void *p, size_t n) {
  return oom_hit() ? NULL : realloc(p, n);
}
static char *oom_strdup(const char *s) { return oom_hit() ? NULL : strdup(s); }
static char *oom_strndup(const char *s, size_t n) {
  return oom_hit() ? NULL : strndup(s, n);
}

#define malloc(n) oom_malloc(n)
#define calloc(k, n) oom_calloc(k, n)
#define realloc(p, n) oom_realloc(p, n)
#define strdup(s) oom_strdup(s)
#define strndup(s, n) oom_strndup(s, n)
#include "../../core/dataset.c"
#include "../../io/assemble.c"
#include "../../io/csv.c"
#include "../../io/formats.c"
#include "../../io/jsonds.c"
#include "../../io/npy.c"
#include "../../io/pt.c"
#include "../../io/safetensors.c"
#include "../../io/validate.c"
#include "../../io/zip.c"
#undef malloc
#undef calloc
#undef realloc
#undef strdup
#undef strndup

static void test_every_allocation_fails(void **state) {
  (void)state;
  static const char *const files[] = {
      "tests/data/good.npz", "tests/data/good_deflate.npz",
      "tests/data/good_bundle.npy", "tests/data/good_views.pt",
      "tests/data/good.safetensors", "tests/data/good.csv",
      "tests/data/good.json", "tests/data/good_trainonly.npz",
      /* ids, text labels and names, lists, one-hot rows, flattening */
      "tests/data/user_labels_str.csv", "tests/data/user_labels_str.npz",
      "tests/data/user_labels_str.json", "tests/data/user_ids.pt",
      "tests/data/user_onehot.npz", "tests/data/user_feat3d.pt"};
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    long total = -1;
    for (long n = 0; total < 0 || n < total; n++) {
      oom_countdown = n;
      oom_calls = 0;
      lsmi_dataset_t *ds = NULL;
      lsmi_error_t err;
      memset(&err, 0, sizeof err);
      int rc = lsmi_dataset_read(files[f], NULL, 0.25, 1, &ds, NULL, &err);
      if (oom_countdown >= 0) { /* the failure was never reached */
        assert_int_equal(rc, 0);
        total = n;
      } else if (rc != 0 && rc != LSMI_ERR_NOMEM) {
        print_error("%s, allocation %ld failing: %s: %s\n", files[f], n,
                    lsmi_status_name(rc), err.message);
        fail();
      }
      if (rc == 0)
        lsmi_dataset_destroy(ds);
      else
        assert_null(ds);
    }
    oom_countdown = -1;
    print_message("%s: %ld allocations, each failed once\n", files[f], total);
    assert_true(total > 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_allocation_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
