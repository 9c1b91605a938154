/*
 * test_write_npz.c — io/write_npz.c: a dataset written as .npz reads back
 * to the same hash, train-only datasets included, and a failed write
 * leaves nothing behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"

static void test_write_npz_roundtrip(void **state) {
  (void)state;
  lsmi_dataset_t *a = NULL, *b = NULL;
  lsmi_error_t err;
  assert_int_equal(io_read(DATA "good_views.pt", NULL, 0, 0, &a, NULL, &err),
                   0);
  char dir[] = "/tmp/lsmi-npz-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/out.npz", dir);
  assert_int_equal(lsmi_dataset_write_npz(a, path, &err), 0);
  lsmi_format_t fmt;
  assert_int_equal(io_read(path, NULL, 0, 0, &b, &fmt, &err), 0);
  assert_int_equal(fmt, LSMI_FORMAT_NPZ);
  unsigned char ha[32], hb[32];
  lsmi_dataset_hash(a, ha);
  lsmi_dataset_hash(b, hb);
  assert_memory_equal(ha, hb, 32);
  lsmi_dataset_destroy(b);
  /* Without val rows the written file reads as train-only. */
  lsmi_dataset_t *t =
      lsmi_dataset_create(a->train.n, 0, a->d1, a->d2, a->classes, &err);
  memcpy(t->train.x, a->train.x, a->train.n * 5 * sizeof(float));
  memcpy(t->train.y, a->train.y, a->train.n * sizeof(int32_t));
  assert_int_equal(lsmi_dataset_write_npz(t, path, &err), 0);
  assert_int_equal(io_read(path, NULL, 0, 0, &b, NULL, &err), LSMI_ERR_MISSING);
  assert_int_equal(io_read(path, NULL, 0.25, 3, &b, NULL, &err), 0);
  assert_int_equal(b->val.n, 3);
  lsmi_dataset_destroy(b);
  lsmi_dataset_destroy(t);
  /* An unwritable place is an IO error and leaves no temp file. */
  assert_int_equal(lsmi_dataset_write_npz(a, "/nonexistent/dir/x.npz", &err),
                   LSMI_ERR_IO);
  unlink(path);
  assert_int_equal(rmdir(dir), 0); /* empty: no temp file left behind */
  lsmi_dataset_destroy(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_write_npz_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
