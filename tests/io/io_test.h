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
#include <zlib.h>

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

/*
 * Reads the bytes (p, len) as format fmt (UNKNOWN: detected) with options
 * opt (NULL: the usual names, no val drawn) and limits lim (NULL: the
 * defaults), as lsmi_dataset_read_ex does; *ds (may be NULL: destroyed
 * here) receives the dataset, *info (may be NULL) what the read found.
 */
static inline int io_read_opts(const void *p, size_t len, lsmi_format_t fmt,
                               const lsmi_limits_t *lim,
                               const lsmi_read_options_t *opt,
                               lsmi_dataset_t **ds, lsmi_read_info_t *info,
                               lsmi_error_t *err) {
  lsmi_dataset_t *got = NULL;
  memset(err, 0, sizeof *err);
  /* An exact copy, so that the sanitizers see any read past the end. */
  unsigned char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, p, len);
  int rc = lsmi__dataset_read_buffer(copy, len, fmt, lim, opt, &got, info, err);
  free(copy);
  if (rc)
    assert_null(got);
  if (ds)
    *ds = got;
  else
    lsmi_dataset_destroy(got);
  return rc;
}

/* io_read_opts with val fraction vf (seed 1) and the usual names. */
static inline int io_read_mem(const void *p, size_t len, lsmi_format_t fmt,
                              const lsmi_limits_t *lim, double vf,
                              lsmi_dataset_t **ds, lsmi_error_t *err) {
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.val_fraction = vf;
  opt.seed = 1;
  return io_read_opts(p, len, fmt, lim, &opt, ds, NULL, err);
}

/* io_read_mem of (p, len) as fmt, with limits lim (NULL: the defaults)
 * and val fraction 0.25, must fail with status, field (NULL: any) and a
 * message holding `message`. */
static inline void io_expect(const void *p, size_t len, lsmi_format_t fmt,
                             const lsmi_limits_t *lim, int status,
                             const char *field, const char *message) {
  lsmi_error_t err;
  int rc = io_read_mem(p, len, fmt, lim, 0.25, NULL, &err);
  assert_true(io_failed_as(rc, NULL, &err, lsmi_format_name(fmt), status, field,
                           message));
}

/* io_expect of the text s with the default limits. */
#define io_expect_text(fmt, s, status, field, message)                         \
  io_expect((s), strlen(s), (fmt), NULL, (status), (field), (message))

/* io_read_mem of (p, len) as fmt with val fraction vf, which must succeed:
 * the dataset (destroy it). */
static inline lsmi_dataset_t *io_must_read(const void *p, size_t len,
                                           lsmi_format_t fmt, double vf) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  int rc = io_read_mem(p, len, fmt, NULL, vf, &ds, &err);
  if (rc)
    print_error("%s: %s\n", lsmi_status_name(rc), err.message);
  assert_int_equal(rc, 0);
  return ds;
}

/* io_read_opts of (p, len) as fmt with options opt, which must succeed:
 * the dataset (destroy it); *info (may be NULL) what the read found. */
static inline lsmi_dataset_t *io_must_read_opts(const void *p, size_t len,
                                                lsmi_format_t fmt,
                                                const lsmi_read_options_t *opt,
                                                lsmi_read_info_t *info) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  int rc = io_read_opts(p, len, fmt, NULL, opt, &ds, info, &err);
  if (rc)
    print_error("%s: %s\n", lsmi_status_name(rc), err.message);
  assert_int_equal(rc, 0);
  return ds;
}

/* ---- zip archives made here, for the readers of .npz and .pt ---- */

/* A member of io_zip: stored, or deflated (raw deflate, as zip has it). */
typedef struct io_member {
  const char *name;
  const void *data;
  size_t len;
  bool deflate;
} io_member_t;

/* v as `bytes` little-endian bytes. */
static inline void io_le(FILE *f, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    fputc((int)((v >> (8 * i)) & 0xFF), f);
}

/* m's bytes as stored in the archive (*out: free() it when it is not
 * m->data). */
static inline size_t io_packed(const io_member_t *m, const unsigned char **out,
                               unsigned char **owned) {
  *owned = NULL;
  *out = m->data;
  if (!m->deflate)
    return m->len;
  z_stream s;
  memset(&s, 0, sizeof s);
  assert_int_equal(
      deflateInit2(&s, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  size_t cap = deflateBound(&s, (uLong)m->len);
  *owned = malloc(cap);
  assert_non_null(*owned);
  s.next_in = (Bytef *)(uintptr_t)m->data;
  s.avail_in = (uInt)m->len;
  s.next_out = *owned;
  s.avail_out = (uInt)cap;
  assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
  size_t n = s.total_out;
  deflateEnd(&s);
  *out = *owned;
  return n;
}

/*
 * A zip archive of the n members in a new buffer of *len bytes (free() it),
 * laid out as Python's zipfile writes one: each local header (30 bytes,
 * the name, no extra field) and data, then the central directory (46
 * bytes and the name per member), then the 22-byte end record.
 */
static inline unsigned char *io_zip(const io_member_t *m, size_t n,
                                    size_t *len) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  assert_non_null(f);
  uint64_t offset[16];
  assert_true(n <= 16);
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p;
    unsigned char *owned;
    size_t plen = io_packed(&m[i], &p, &owned);
    uint32_t crc = (uint32_t)crc32(0, m[i].data, (uInt)m[i].len);
    size_t nlen = strlen(m[i].name);
    fflush(f);
    offset[i] = size;
    io_le(f, 0x04034b50u, 4);
    io_le(f, 20, 2);
    io_le(f, 0, 2);
    io_le(f, m[i].deflate ? 8 : 0, 2);
    io_le(f, 0x00210000u, 4); /* 1980-01-01 */
    io_le(f, crc, 4);
    io_le(f, plen, 4);
    io_le(f, m[i].len, 4);
    io_le(f, nlen, 2);
    io_le(f, 0, 2);
    fwrite(m[i].name, 1, nlen, f);
    fwrite(p, 1, plen, f);
    free(owned);
  }
  fflush(f);
  uint64_t cd_off = size;
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p;
    unsigned char *owned;
    size_t plen = io_packed(&m[i], &p, &owned);
    free(owned);
    size_t nlen = strlen(m[i].name);
    io_le(f, 0x02014b50u, 4);
    io_le(f, 20, 2);
    io_le(f, 20, 2);
    io_le(f, 0, 2);
    io_le(f, m[i].deflate ? 8 : 0, 2);
    io_le(f, 0x00210000u, 4);
    io_le(f, crc32(0, m[i].data, (uInt)m[i].len), 4);
    io_le(f, plen, 4);
    io_le(f, m[i].len, 4);
    io_le(f, nlen, 2);
    io_le(f, 0, 2 * 4); /* extra, comment, disk, internal attributes */
    io_le(f, 0, 4);     /* external attributes */
    io_le(f, offset[i], 4);
    fwrite(m[i].name, 1, nlen, f);
  }
  fflush(f);
  uint64_t cd_size = size - cd_off;
  io_le(f, 0x06054b50u, 4);
  io_le(f, 0, 4);
  io_le(f, n, 2);
  io_le(f, n, 2);
  io_le(f, cd_size, 4);
  io_le(f, cd_off, 4);
  io_le(f, 0, 2);
  fclose(f);
  *len = size;
  return (unsigned char *)buf;
}

#endif
