/*
 * io_test.h — what the tests of io/ share (include after <cmocka.h>): the
 * fixture loaders of tests/data/ and the table checks of good and bad
 * files.
 *
 * tests/data/ holds fixtures written by tests/data/make_fixtures.py with real
 * NumPy and PyTorch: every good_* file carries the same numbers, so each
 * must read to the same lsmi_dataset_hash; every bad_* file is broken on
 * purpose and must fail with its own status and a message naming the key
 * or shape. The tests run from the repository root.
 *
 * Header-only (every function static inline), like tests/fixture.h.
 */
#ifndef LSMI_TESTS_IO_TEST_H
#define LSMI_TESTS_IO_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsio.h"
#include "lsmi.h"

#define DATA "tests/data/"

/* The hash of the fixture dataset (12 + 6 rows, d1 = 3, d2 = 2, 3 classes),
 * pinned so that a change of the canonical form is a visible decision. */
#define FIXTURE_HASH "10ee361af0fb8b3e"

static inline void io_hex(const unsigned char *h, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", h[i]);
}

/* lsmi_dataset_read with err cleared first. */
static inline int io_read(const char *path, const lsmi_limits_t *lim, double vf,
                          uint64_t seed, lsmi_dataset_t **ds,
                          lsmi_format_t *fmt, lsmi_error_t *err) {
  memset(err, 0, sizeof *err);
  return lsmi_dataset_read(path, lim, vf, seed, ds, fmt, err);
}

/* The hex SHA-256 of the dataset in path, which must read. */
static inline void io_hash_of(const char *path, char out[65]) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  int rc = io_read(path, NULL, 0, 0, &ds, NULL, &err);
  if (rc)
    print_error("%s: %s: %s\n", path, lsmi_status_name(rc), err.message);
  assert_int_equal(rc, 0);
  unsigned char h[32];
  lsmi_dataset_hash(ds, h);
  io_hex(h, 32, out);
  lsmi_dataset_destroy(ds);
}

/* A good fixture and the format it must be detected as. */
typedef struct io_good {
  const char *file;
  lsmi_format_t fmt;
} io_good_t;

/* Each file reads as the fixture dataset, to the hash of good.npz (whose
 * hash is pinned). */
static inline void io_check_good(const io_good_t *good, size_t n) {
  char ref[65];
  io_hash_of(DATA "good.npz", ref);
  assert_memory_equal(ref, FIXTURE_HASH, strlen(FIXTURE_HASH));
  for (size_t i = 0; i < n; i++) {
    char path[256], h[65];
    snprintf(path, sizeof path, DATA "%s", good[i].file);
    lsmi_dataset_t *ds = NULL;
    lsmi_format_t fmt = LSMI_FORMAT_UNKNOWN;
    lsmi_error_t err;
    int rc = io_read(path, NULL, 0, 0, &ds, &fmt, &err);
    if (rc)
      print_error("%s: %s: %s\n", path, lsmi_status_name(rc), err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(fmt, good[i].fmt);
    assert_int_equal(ds->train.n, 12);
    assert_int_equal(ds->val.n, 6);
    assert_int_equal(ds->d1, 3);
    assert_int_equal(ds->d2, 2);
    assert_int_equal(ds->classes, 3);
    lsmi_dataset_destroy(ds);
    io_hash_of(path, h);
    if (strcmp(h, ref) != 0)
      print_error("%s: hash %s, good.npz %s\n", path, h, ref);
    assert_string_equal(h, ref);
  }
}

/* A bad fixture and how it must fail. */
typedef struct io_bad {
  const char *file;
  int status;
  const char *field;   /* expected err.field, NULL: not checked */
  const char *message; /* a substring of err.message */
} io_bad_t;

/* Whether (rc, ds, err) is the failure `want` describes; prints what was
 * got and wanted when it is not. */
static inline bool io_failed_as(int rc, const lsmi_dataset_t *ds,
                                const lsmi_error_t *err, const char *what,
                                int status, const char *field,
                                const char *message) {
  bool ok = rc == status && ds == NULL && err->status == rc &&
            strstr(err->message, message) != NULL &&
            (!field || strcmp(err->field, field) == 0);
  if (!ok)
    print_error("%s: got %s field '%s': %s\n  want %s field '%s': ...%s...\n",
                what, lsmi_status_name(rc), err->field, err->message,
                lsmi_status_name(status), field ? field : "*", message);
  return ok;
}

/* Each file fails with its status, field and message, and no dataset. */
static inline void io_check_bad(const io_bad_t *bad, size_t n) {
  int failures = 0;
  for (size_t i = 0; i < n; i++) {
    char path[256];
    snprintf(path, sizeof path, DATA "%s", bad[i].file);
    assert_int_equal(access(path, R_OK), 0);
    lsmi_dataset_t *ds = (lsmi_dataset_t *)1;
    lsmi_error_t err;
    int rc = io_read(path, NULL, 0, 0, &ds, NULL, &err);
    if (!io_failed_as(rc, ds, &err, bad[i].file, bad[i].status, bad[i].field,
                      bad[i].message))
      failures++;
    if (rc == 0)
      lsmi_dataset_destroy(ds);
  }
  assert_int_equal(failures, 0);
}

/* The fixture truncated at every length below 600 bytes (and a sample
 * beyond) fails cleanly or reads: never crashes, never leaks. */
static inline void io_check_every_prefix(const char *file) {
  char path[256];
  snprintf(path, sizeof path, DATA "%s", file);
  FILE *in = fopen(path, "rb");
  assert_non_null(in);
  static unsigned char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, in);
  fclose(in);
  char tmp[] = "/tmp/lsmi-prefix-XXXXXX";
  int fd = mkstemp(tmp);
  assert_true(fd >= 0);
  for (size_t len = 1; len < n; len += len < 600 ? 1 : 37) {
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
    lsmi_dataset_t *ds = NULL;
    lsmi_error_t err;
    int rc = io_read(tmp, NULL, 0.25, 1, &ds, NULL, &err);
    if (rc == 0)
      lsmi_dataset_destroy(ds);
    else
      assert_null(ds);
  }
  close(fd);
  unlink(tmp);
}

#endif
