/*
 * test_zip.c — io/zip.c: the zip container of .npz and .pt files.
 *
 * The reader trusts nothing in an archive: each check of the end record,
 * the central directory, the Zip64 records and extra fields, the members'
 * data and their inflation is provoked here on archives made by io_zip()
 * and then damaged on purpose, besides the fixtures of tests/data/. The
 * writer's archives are read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"
#include "zip.h"

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

/* ---- archives made here ---- */

/* Offsets in the archive of one member "a" (io_zip's layout). */
enum {
  LOCAL = 0,            /* local header */
  CENTRAL = 30 + 1 + 5, /* after the local header, "a" and "hello" */
  END = CENTRAL + 46 + 1
};

static void put_le(unsigned char *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* The one-member archive {"a": "hello"}, stored or deflated. */
static unsigned char *hello(bool deflate, size_t *len) {
  io_member_t m = {"a", "hello", 5, deflate};
  return io_zip(&m, 1, len);
}

/* lsmi__zip_open of (buf, len) with the default limits (or lim) must fail
 * with status and a message holding msg. */
static void open_fails(const unsigned char *buf, size_t len,
                       const lsmi_limits_t *lim, int status, const char *msg) {
  lsmi_limits_t dl;
  lsmi_limits_default(&dl);
  lsmi__zip_t z;
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  int rc = lsmi__zip_open(&z, buf, len, lim ? lim : &dl, &err);
  lsmi__zip_close(&z);
  if (rc != status || !strstr(err.message, msg))
    print_error("got %d: %s\nwant ...%s...\n", rc, err.message, msg);
  assert_int_equal(rc, status);
  assert_non_null(strstr(err.message, msg));
}

/* Opens (buf, len) and reads its first member: the status of the read
 * (the open must succeed); *got the bytes when it succeeds. */
static int read_first(const unsigned char *buf, size_t len,
                      const lsmi_limits_t *lim, char *got, size_t cap,
                      lsmi_error_t *err) {
  lsmi_limits_t dl;
  lsmi_limits_default(&dl);
  lsmi__zip_t z;
  memset(err, 0, sizeof *err);
  assert_int_equal(lsmi__zip_open(&z, buf, len, lim ? lim : &dl, err), 0);
  assert_true(z.n >= 1);
  const unsigned char *data;
  size_t n;
  void *owned;
  int rc = lsmi__zip_read(&z, &z.e[0], &data, &n, &owned, err);
  if (rc == 0 && got) {
    assert_true(n < cap);
    memcpy(got, data, n);
    got[n] = '\0';
  }
  if (rc)
    assert_null(owned);
  free(owned);
  lsmi__zip_close(&z);
  return rc;
}

static void test_members_read(void **state) {
  (void)state;
  io_member_t m[] = {{"x.npy", "stored bytes", 12, false},
                     {"dir/y.npy", "deflated bytes, deflated bytes", 30, true},
                     {"empty", "", 0, true}};
  size_t len;
  unsigned char *buf = io_zip(m, 3, &len);
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__zip_t z;
  lsmi_error_t err;
  assert_int_equal(lsmi__zip_open(&z, buf, len, &lim, &err), 0);
  assert_int_equal(z.n, 3);
  assert_null(lsmi__zip_find(&z, "y.npy"));
  for (size_t i = 0; i < 3; i++) {
    const lsmi__zip_entry_t *e = lsmi__zip_find(&z, m[i].name);
    assert_ptr_equal(e, &z.e[i]);
    assert_int_equal(e->method, m[i].deflate ? 8 : 0);
    const unsigned char *data;
    size_t n;
    void *owned;
    assert_int_equal(lsmi__zip_read(&z, e, &data, &n, &owned, &err), 0);
    assert_int_equal(n, m[i].len);
    assert_memory_equal(data, m[i].data, n);
    /* Stored members are read in place, inflated ones into a new buffer. */
    if (m[i].deflate)
      assert_ptr_equal(data, owned);
    else
      assert_null(owned);
    free(owned);
  }
  assert_int_equal(z.inflated, 30);
  lsmi__zip_close(&z);
  lsmi__zip_close(&z); /* closing twice is harmless */
  free(buf);
}

static void test_end_record(void **state) {
  (void)state;
  size_t len;
  unsigned char *buf = hello(false, &len);
  assert_int_equal(len, END + 22);
  open_fails(buf, 21, NULL, LSMI_ERR_FORMAT,
             "no end of central directory record (truncated?)");
  open_fails(buf, len - 1, NULL, LSMI_ERR_FORMAT, "no end of central");
  put_le(buf + END + 4, 1, 2); /* disk 1 */
  open_fails(buf, len, NULL, LSMI_ERR_UNSUPPORTED,
             "multi-disk zip archives are not supported");
  put_le(buf + END + 4, 0, 2);
  put_le(buf + END + 10, 0xFFFF, 2); /* saturated entries, no Zip64 */
  open_fails(buf, len, NULL, LSMI_ERR_FORMAT,
             "saturated directory fields without Zip64 records");
  put_le(buf + END + 10, 1, 2);
  put_le(buf + END + 16, END + 1, 4);
  open_fails(buf, len, NULL, LSMI_ERR_FORMAT,
             "malformed zip file: central directory out of bounds");
  put_le(buf + END + 16, CENTRAL, 4);
  put_le(buf + END + 10, 2, 2); /* 2 entries in 47 bytes */
  open_fails(buf, len, NULL, LSMI_ERR_FORMAT,
             "more entries than the central directory can hold");
  put_le(buf + END + 10, 1, 2);
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_members = 0;
  open_fails(buf, len, &lim, LSMI_ERR_LIMIT,
             "zip file has 1 members; the limit is 0");
  char got[8];
  lsmi_error_t err;
  assert_int_equal(read_first(buf, len, NULL, got, sizeof got, &err), 0);
  assert_string_equal(got, "hello");
  free(buf);
}

/* {"a": "hello"} with Zip64 end records (the end record saturated), and
 * in the central header a Zip64 extra field holding both sizes: `extra`
 * bytes of it (16 whole), announcing `announced` bytes. */
static unsigned char *hello64(size_t extra, size_t announced, size_t *len) {
  size_t n;
  unsigned char *z = hello(false, &n);
  unsigned char *b = calloc(1, 512);
  assert_non_null(b);
  size_t k = CENTRAL + 46 + 1;
  memcpy(b, z, k);
  put_le(b + CENTRAL + 20, 0xFFFFFFFFu, 4); /* csize */
  put_le(b + CENTRAL + 24, 0xFFFFFFFFu, 4); /* usize */
  put_le(b + CENTRAL + 30, 4 + extra, 2);
  put_le(b + k, 1, 2);
  put_le(b + k + 2, announced, 2);
  put_le(b + k + 4, 5, 8); /* usize, then csize */
  put_le(b + k + 12, 5, 8);
  k += 4 + extra;
  size_t e64 = k;
  put_le(b + k, 0x06064b50u, 4);
  put_le(b + k + 4, 44, 8);
  put_le(b + k + 32, 1, 8);
  put_le(b + k + 40, e64 - CENTRAL, 8);
  put_le(b + k + 48, CENTRAL, 8);
  k += 56;
  put_le(b + k, 0x07064b50u, 4);
  put_le(b + k + 8, e64, 8);
  put_le(b + k + 16, 1, 4);
  k += 20;
  memcpy(b + k, z + END, 22);
  put_le(b + k + 8, 0xFFFF, 2);
  put_le(b + k + 10, 0xFFFF, 2);
  put_le(b + k + 12, 0xFFFFFFFFu, 4);
  put_le(b + k + 16, 0xFFFFFFFFu, 4);
  *len = k + 22;
  free(z);
  return b;
}

static void test_zip64(void **state) {
  (void)state;
  size_t len;
  char got[8];
  lsmi_error_t err;
  unsigned char *b = hello64(16, 16, &len);
  assert_int_equal(read_first(b, len, NULL, got, sizeof got, &err), 0);
  assert_string_equal(got, "hello");
  free(b);
  b = hello64(8, 8, &len);
  open_fails(b, len, NULL, LSMI_ERR_FORMAT, "short Zip64 extra field");
  free(b);
  b = hello64(16, 30, &len);
  open_fails(b, len, NULL, LSMI_ERR_FORMAT, "extra field runs past its header");
  free(b);
  /* The locator points past the end. */
  b = hello64(16, 16, &len);
  put_le(b + len - 22 - 20 + 8, len, 8);
  open_fails(b, len, NULL, LSMI_ERR_FORMAT, "Zip64 end record out of bounds");
  free(b);
  /* A saturated size with no Zip64 extra field at all. */
  b = hello(false, &len);
  put_le(b + CENTRAL + 24, 0xFFFFFFFFu, 4);
  open_fails(b, len, NULL, LSMI_ERR_FORMAT,
             "saturated size without a Zip64 extra field");
  free(b);
}

static void test_central_entries(void **state) {
  (void)state;
  size_t len;
  unsigned char *b = hello(false, &len);
  put_le(b + CENTRAL, 0x02014b51u, 4);
  open_fails(b, len, NULL, LSMI_ERR_FORMAT, "bad central directory header");
  put_le(b + CENTRAL, 0x02014b50u, 4);
  put_le(b + CENTRAL + 28, 2, 2); /* the name runs into the end record */
  open_fails(b, len, NULL, LSMI_ERR_FORMAT,
             "central directory entry runs past the directory");
  put_le(b + CENTRAL + 28, 1, 2);
  b[CENTRAL + 46] = '\0';
  open_fails(b, len, NULL, LSMI_ERR_FORMAT, "member name contains a NUL byte");
  b[CENTRAL + 46] = 'a';
  put_le(b + CENTRAL + 42, END, 4);
  open_fails(b, len, NULL, LSMI_ERR_FORMAT,
             "malformed zip file: local header of a is out of bounds or "
             "damaged");
  put_le(b + CENTRAL + 42, 0, 4);
  b[LOCAL] = 'Q';
  open_fails(b, len, NULL, LSMI_ERR_FORMAT, "local header of a");
  b[LOCAL] = 'P';
  put_le(b + CENTRAL + 20, 1000, 4);
  open_fails(b, len, NULL, LSMI_ERR_FORMAT,
             "malformed zip file: data of a runs past the end of the file "
             "(truncated?)");
  free(b);
}

static void test_member_reads(void **state) {
  (void)state;
  size_t len;
  lsmi_error_t err;
  unsigned char *b = hello(false, &len);
  put_le(b + CENTRAL + 8, 1, 2);
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err),
                   LSMI_ERR_UNSUPPORTED);
  assert_string_equal(err.field, "a");
  assert_string_equal(err.message, "zip member a is encrypted");
  put_le(b + CENTRAL + 8, 0, 2);
  put_le(b + CENTRAL + 24, 4, 4);
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err), LSMI_ERR_FORMAT);
  assert_non_null(strstr(err.message, "stored member a has different"));
  put_le(b + CENTRAL + 24, 5, 4);
  put_le(b + CENTRAL + 10, 12, 2);
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err),
                   LSMI_ERR_UNSUPPORTED);
  assert_string_equal(err.message,
                      "zip member a uses compression method 12; only stored "
                      "(0) and deflate (8) are supported");
  put_le(b + CENTRAL + 10, 0, 2);
  b[CENTRAL - 1] ^= 1;
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "malformed zip file: CRC mismatch in a");
  free(b);
}

static void test_inflation(void **state) {
  (void)state;
  size_t len;
  lsmi_error_t err;
  char got[8];
  unsigned char *b = hello(true, &len);
  size_t csize = len - 22 - 47 - 31; /* the deflated bytes */
  size_t central = 31 + csize;
  assert_int_equal(read_first(b, len, NULL, got, sizeof got, &err), 0);
  assert_string_equal(got, "hello");
  /* The CRC of the inflated bytes is checked too. */
  b[central + 16] ^= 1;
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err), LSMI_ERR_FORMAT);
  assert_non_null(strstr(err.message, "CRC mismatch in a"));
  b[central + 16] ^= 1;
  /* Declared smaller or larger than what the stream holds. */
  put_le(b + central + 24, 4, 4);
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "malformed zip file: a inflates to more "
                                   "than its declared 4 bytes");
  put_le(b + central + 24, 6, 4);
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "malformed zip file: a inflated to 5 bytes, "
                                   "not the declared 6");
  put_le(b + central + 24, 5, 4);
  /* The stream cut short, then damaged. */
  put_le(b + central + 20, csize - 2, 4);
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err), LSMI_ERR_FORMAT);
  assert_string_equal(err.message,
                      "malformed zip file: deflate stream of a is truncated");
  put_le(b + central + 20, csize, 4);
  b[31] = 0xFF; /* a reserved block type */
  assert_int_equal(read_first(b, len, NULL, NULL, 0, &err), LSMI_ERR_FORMAT);
  assert_non_null(strstr(err.message,
                         "malformed zip file: deflate stream of a is corrupt"));
  free(b);
}

static void test_inflation_limits(void **state) {
  (void)state;
  static char zeros[3 << 20];
  io_member_t m[] = {{"a", "hello", 5, true}, {"b", zeros, sizeof zeros, true}};
  size_t len;
  unsigned char *b = io_zip(m, 2, &len);
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__zip_t z;
  lsmi_error_t err;
  const unsigned char *data;
  size_t n;
  void *owned;
  /* The running total: 5 bytes, then 3 MiB more would pass 1 MiB. */
  lim.max_decompressed_bytes = 1 << 20;
  assert_int_equal(lsmi__zip_open(&z, b, len, &lim, &err), 0);
  assert_int_equal(lsmi__zip_read(&z, &z.e[0], &data, &n, &owned, &err), 0);
  free(owned);
  assert_int_equal(z.inflated, 5);
  assert_int_equal(lsmi__zip_read(&z, &z.e[1], &data, &n, &owned, &err),
                   LSMI_ERR_LIMIT);
  assert_null(owned);
  assert_string_equal(err.message,
                      "zip member b would inflate the archive past 1048576 "
                      "bytes (max_decompressed_bytes)");
  lsmi__zip_close(&z);
  /* 3 MiB of zeros deflate about 1000:1, above a ratio of 100. */
  lim.max_decompressed_bytes = 1 << 30;
  lim.max_ratio = 100;
  assert_int_equal(lsmi__zip_open(&z, b, len, &lim, &err), 0);
  assert_int_equal(lsmi__zip_read(&z, &z.e[1], &data, &n, &owned, &err),
                   LSMI_ERR_LIMIT);
  assert_non_null(
      strstr(err.message, "a ratio above the limit 100 (zip bomb?)"));
  /* Below RATIO_FLOOR a member is not held to the ratio. */
  assert_int_equal(lsmi__zip_read(&z, &z.e[0], &data, &n, &owned, &err), 0);
  free(owned);
  lsmi__zip_close(&z);
  free(b);
}

/* ---- the writer ---- */

static void test_writer(void **state) {
  (void)state;
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  assert_non_null(f);
  lsmi__zipw_t w;
  lsmi__zipw_init(&w, f);
  static const char *const text[2] = {"first member", "second"};
  static const char *const names[2] = {"one.npy", "two.npy"};
  for (int i = 0; i < 2; i++) {
    size_t n = strlen(text[i]);
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)text[i], (uInt)n);
    assert_int_equal(lsmi__zipw_begin(&w, names[i], crc, n), 0);
    assert_int_equal(lsmi__zipw_data(&w, text[i], n), 0);
  }
  char longname[80];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(lsmi__zipw_begin(&w, longname, 0, 0), LSMI_ERR_INVALID);
  assert_int_equal(lsmi__zipw_finish(&w), 0);
  fclose(f);
  assert_int_equal(w.pos, size);
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__zip_t z;
  lsmi_error_t err;
  assert_int_equal(lsmi__zip_open(&z, (unsigned char *)buf, size, &lim, &err),
                   0);
  assert_int_equal(z.n, 2);
  for (int i = 0; i < 2; i++) {
    const lsmi__zip_entry_t *e = lsmi__zip_find(&z, names[i]);
    assert_non_null(e);
    const unsigned char *data;
    size_t n;
    void *owned;
    assert_int_equal(lsmi__zip_read(&z, e, &data, &n, &owned, &err), 0);
    assert_int_equal(n, strlen(text[i]));
    assert_memory_equal(data, text[i], n);
  }
  lsmi__zip_close(&z);
  free(buf);
  /* At most 16 members. */
  lsmi__zipw_init(&w, NULL);
  for (int i = 0; i < 16; i++)
    w.n++;
  assert_int_equal(lsmi__zipw_begin(&w, "x", 0, 0), LSMI_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
      cmocka_unit_test(test_members_read),
      cmocka_unit_test(test_end_record),
      cmocka_unit_test(test_zip64),
      cmocka_unit_test(test_central_entries),
      cmocka_unit_test(test_member_reads),
      cmocka_unit_test(test_inflation),
      cmocka_unit_test(test_inflation_limits),
      cmocka_unit_test(test_writer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
