/*
 * test_formats.c — the dataset readers against real files.
 *
 * tests/data/ holds fixtures written by tests/data/make_fixtures.py with real
 * NumPy and PyTorch: every good_* file carries the same numbers, so each
 * must read to the same lsmi_dataset_hash; every bad_* file is broken on
 * purpose and must fail with its own status and a message naming the key
 * or shape. Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsio.h"
#include "lsmi.h"
#include "sha256.h"

#define DATA "tests/data/"

/* The hash of the fixture dataset (12 + 6 rows, d1 = 3, d2 = 2, 3 classes),
 * pinned so that a change of the canonical form is a visible decision. */
static const char *const FIXTURE_HASH = "10ee361af0fb8b3e";

static void hex(const unsigned char *h, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", h[i]);
}

static int read_file(const char *path, const lsmi_limits_t *lim, double vf,
                     uint64_t seed, lsmi_dataset_t **ds, lsmi_format_t *fmt,
                     lsmi_error_t *err) {
  memset(err, 0, sizeof *err);
  return lsmi_dataset_read(path, lim, vf, seed, ds, fmt, err);
}

static void hash_of(const char *path, char out[65]) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  int rc = read_file(path, NULL, 0, 0, &ds, NULL, &err);
  if (rc)
    print_error("%s: %s: %s\n", path, lsmi_status_name(rc), err.message);
  assert_int_equal(rc, 0);
  unsigned char h[32];
  lsmi_dataset_hash(ds, h);
  hex(h, 32, out);
  lsmi_dataset_destroy(ds);
}

/* ---- good files ---- */

static const struct {
  const char *file;
  lsmi_format_t fmt;
} good[] = {
    {"good.npz", LSMI_FORMAT_NPZ},
    {"good_deflate.npz", LSMI_FORMAT_NPZ},
    {"good_layouts.npz", LSMI_FORMAT_NPZ},
    {"good_bundle.npy", LSMI_FORMAT_NPY},
    {"good_bundle_aligned.npy", LSMI_FORMAT_NPY},
    {"good.pt", LSMI_FORMAT_PT},
    {"good_views.pt", LSMI_FORMAT_PT},
    {"good_half.pt", LSMI_FORMAT_PT},
    {"good_param.pt", LSMI_FORMAT_PT},
    {"good_bigendian.pt", LSMI_FORMAT_PT},
    {"good.safetensors", LSMI_FORMAT_SAFETENSORS},
    {"good_f16.safetensors", LSMI_FORMAT_SAFETENSORS},
    {"good.csv", LSMI_FORMAT_CSV},
    {"good.json", LSMI_FORMAT_JSON},
    {"good_flat.json", LSMI_FORMAT_JSON},
};

static void test_good_files_same_hash(void **state) {
  (void)state;
  char ref[65];
  hash_of(DATA "good.npz", ref);
  assert_memory_equal(ref, FIXTURE_HASH, strlen(FIXTURE_HASH));
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    char path[256], h[65];
    snprintf(path, sizeof path, DATA "%s", good[i].file);
    lsmi_dataset_t *ds = NULL;
    lsmi_format_t fmt = LSMI_FORMAT_UNKNOWN;
    lsmi_error_t err;
    int rc = read_file(path, NULL, 0, 0, &ds, &fmt, &err);
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
    hash_of(path, h);
    if (strcmp(h, ref) != 0)
      print_error("%s: hash %s, good.npz %s\n", path, h, ref);
    assert_string_equal(h, ref);
  }
}

/* ---- bad files ---- */

static const struct {
  const char *file;
  int status;
  const char *field;   /* expected err.field, NULL: not checked */
  const char *message; /* a substring of err.message */
} bad[] = {
    /* npz */
    {"bad_truncated.npz", LSMI_ERR_FORMAT, NULL, "truncated"},
    {"bad_member_magic.npz", LSMI_ERR_FORMAT, "train_x2", "bad magic"},
    {"bad_rows.npz", LSMI_ERR_SHAPE, "train_x2", "train_x2 has shape (11, 2)"},
    {"bad_dims.npz", LSMI_ERR_SHAPE, "val_x1", "val_x1 has shape (6, 2)"},
    {"bad_missing.npz", LSMI_ERR_MISSING, "train_y",
     "missing key train_y (or train_targets); the file holds train_x1, "
     "train_x2, val_x1"},
    {"bad_val_partial.npz", LSMI_ERR_MISSING, "val_x2", "val_x2"},
    {"bad_nan.npz", LSMI_ERR_DATA, "train_x1", "NaN at row 4, column 1"},
    {"bad_f32_range.npz", LSMI_ERR_DATA, "val_x2", "float32 range at row 2"},
    {"bad_label_neg.npz", LSMI_ERR_DATA, "train_y", "label -1 at row 5"},
    {"bad_label_frac.npz", LSMI_ERR_DATA, "val_y", "2.5 at row 2"},
    {"bad_rare_class.npz", LSMI_ERR_DATA, "train_y", "class 2 has 1 rows"},
    {"bad_3d.npz", LSMI_ERR_SHAPE, "train_x1", "shape (12, 3, 1)"},
    {"bad_string_dtype.npz", LSMI_ERR_UNSUPPORTED, "train_x2", "<U8"},
    {"bad_object.npz", LSMI_ERR_UNSUPPORTED, "val_y", "|O"},
    {"bad_shape_overflow.npz", LSMI_ERR_LIMIT, "train_x1",
     "shape (4611686018427387904, 4611686018427387904)"},
    {"bad_shape_lies.npz", LSMI_ERR_FORMAT, "train_x1", "shape (1000, 3)"},
    {"bad_header_len.npz", LSMI_ERR_FORMAT, "train_y", "60000"},
    {"bad_crc.npz", LSMI_ERR_FORMAT, "train_x2.npy", "CRC"},
    {"bomb_ratio.npz", LSMI_ERR_LIMIT, "train_x1.npy", "ratio"},
    {"bomb_declared.npz", LSMI_ERR_LIMIT, "train_x1.npy",
     "max_decompressed_bytes"},
    {"bad_inflate_more.npz", LSMI_ERR_FORMAT, "train_x1.npy",
     "more than its declared"},
    {"bad_cd_offset.npz", LSMI_ERR_FORMAT, NULL, "central directory"},
    /* npy */
    {"bad_truncated.npy", LSMI_ERR_FORMAT, NULL, "truncated"},
    {"bad_plain.npy", LSMI_ERR_UNSUPPORTED, NULL, "structured array"},
    {"bad_bundle_noy.npy", LSMI_ERR_MISSING, "y", "no field y"},
    {"bad_header_len.npy", LSMI_ERR_FORMAT, NULL, "65000"},
    {"bad_version.npy", LSMI_ERR_UNSUPPORTED, NULL, "version 9"},
    {"bad_header_syntax.npy", LSMI_ERR_FORMAT, NULL, "dict literal"},
    /* pt */
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
    {"bad_nan.pt", LSMI_ERR_DATA, "train_x2", "infinite value at row 7"},
    {"bad_label_big.pt", LSMI_ERR_LIMIT, "train_y", "label 50000 at row 3"},
    {"bad_view_oob.pt", LSMI_ERR_FORMAT, "train_x1", "shape (12, 9)"},
    {"bad_expanded.pt", LSMI_ERR_UNSUPPORTED, "train_x1", "expanded"},
    /* safetensors */
    {"bad_truncated.safetensors", LSMI_ERR_FORMAT, "val_y", "truncated"},
    {"bad_header_len.safetensors", LSMI_ERR_FORMAT, NULL, "header says"},
    {"bad_header_huge.safetensors", LSMI_ERR_LIMIT, NULL, "header"},
    {"bad_json.safetensors", LSMI_ERR_FORMAT, NULL, "JSON"},
    {"bad_offsets.safetensors", LSMI_ERR_FORMAT, "val_y", "data_offsets"},
    {"bad_size.safetensors", LSMI_ERR_FORMAT, "train_x1", "shape (12, 4)"},
    {"bad_overflow.safetensors", LSMI_ERR_LIMIT, "train_x2",
     "shape (1099511627776, 1099511627776)"},
    {"bad_dtype.safetensors", LSMI_ERR_UNSUPPORTED, "train_x1", "F8_E4M3"},
    {"bad_nan.safetensors", LSMI_ERR_DATA, "val_x1", "NaN at row 3, column 2"},
    /* csv */
    {"bad_nan.csv", LSMI_ERR_DATA, "x1", "line 7"},
    {"bad_ragged.csv", LSMI_ERR_FORMAT, NULL, "line 5"},
    {"bad_noy.csv", LSMI_ERR_MISSING, "y", "no y column"},
    {"bad_semicolon.csv", LSMI_ERR_MISSING, "y", "separated by commas"},
    {"bad_quote.csv", LSMI_ERR_FORMAT, NULL, "unterminated quote"},
    {"bad_label.csv", LSMI_ERR_DATA, "train_y", "1.5 at row 1"},
    {"bad_split.csv", LSMI_ERR_DATA, "split", "holdout"},
    {"bad_text.csv", LSMI_ERR_DATA, "x1", "\"abc\" is not a number"},
    /* json */
    {"bad_ragged.json", LSMI_ERR_SHAPE, "train.x1", "row 3 has 2 values"},
    {"bad_string.json", LSMI_ERR_DATA, "val.x2", "row 1, column 0"},
    {"bad_syntax.json", LSMI_ERR_FORMAT, NULL, "invalid JSON"},
    {"bad_missing.json", LSMI_ERR_MISSING, "train_y", "train_y"},
    {"bad_label.json", LSMI_ERR_DATA, "train_y", "class 3 has 0 rows"},
    {"bad_nan.json", LSMI_ERR_FORMAT, NULL, "NaN"},
    /* anything else */
    {"unknown.bin", LSMI_ERR_UNSUPPORTED, NULL, "unrecognised"},
    {"empty.csv", LSMI_ERR_FORMAT, NULL, "empty"},
};

static void test_bad_files(void **state) {
  (void)state;
  int failures = 0;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char path[256];
    snprintf(path, sizeof path, DATA "%s", bad[i].file);
    assert_int_equal(access(path, R_OK), 0);
    lsmi_dataset_t *ds = (lsmi_dataset_t *)1;
    lsmi_error_t err;
    int rc = read_file(path, NULL, 0, 0, &ds, NULL, &err);
    bool ok = rc == bad[i].status && ds == NULL && err.status == rc &&
              strstr(err.message, bad[i].message) != NULL &&
              (!bad[i].field || strcmp(err.field, bad[i].field) == 0);
    if (!ok) {
      print_error("%s: got %s field '%s': %s\n  want %s field '%s': ...%s...\n",
                  bad[i].file, lsmi_status_name(rc), err.field, err.message,
                  lsmi_status_name(bad[i].status),
                  bad[i].field ? bad[i].field : "*", bad[i].message);
      failures++;
    }
    if (rc == 0)
      lsmi_dataset_destroy(ds);
  }
  assert_int_equal(failures, 0);
}

/* Every fixture truncated at every length below 600 bytes (and a sample
 * beyond) fails cleanly or reads: never crashes, never leaks. */
static void test_every_prefix(void **state) {
  (void)state;
  static const char *const files[] = {
      "good.npz",         "good_deflate.npz", "good.pt",  "good_views.pt",
      "good.safetensors", "good_bundle.npy",  "good.csv", "good.json"};
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    char path[256];
    snprintf(path, sizeof path, DATA "%s", files[f]);
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
      int rc = read_file(tmp, NULL, 0.25, 1, &ds, NULL, &err);
      if (rc == 0)
        lsmi_dataset_destroy(ds);
      else
        assert_null(ds);
    }
    close(fd);
    unlink(tmp);
  }
}

/* ---- val split ---- */

static void test_val_fraction_split(void **state) {
  (void)state;
  lsmi_dataset_t *a = NULL, *b = NULL, *c = NULL;
  lsmi_error_t err;
  assert_int_equal(
      read_file(DATA "good_trainonly.npz", NULL, 0.25, 7, &a, NULL, &err), 0);
  assert_int_equal(a->train.n, 9);
  assert_int_equal(a->val.n, 3);
  /* Stratified: one row of each class (4 per class x 0.25) went to val. */
  int seen[3] = {0, 0, 0};
  for (size_t i = 0; i < a->val.n; i++)
    seen[a->val.y[i]]++;
  assert_int_equal(seen[0], 1);
  assert_int_equal(seen[1], 1);
  assert_int_equal(seen[2], 1);
  /* The same seed from another format gives the same split. */
  assert_int_equal(
      read_file(DATA "good_trainonly.csv", NULL, 0.25, 7, &b, NULL, &err), 0);
  unsigned char ha[32], hb[32], hc[32];
  lsmi_dataset_hash(a, ha);
  lsmi_dataset_hash(b, hb);
  assert_memory_equal(ha, hb, 32);
  /* Some other seed picks other rows. */
  int differ = 0;
  for (uint64_t seed = 8; seed < 16 && !differ; seed++) {
    assert_int_equal(
        read_file(DATA "good_trainonly.npz", NULL, 0.25, seed, &c, NULL, &err),
        0);
    lsmi_dataset_hash(c, hc);
    differ = memcmp(ha, hc, 32) != 0;
    lsmi_dataset_destroy(c);
  }
  assert_true(differ);
  lsmi_dataset_destroy(a);
  lsmi_dataset_destroy(b);
  /* A file with a val split ignores val_fraction. */
  assert_int_equal(read_file(DATA "good.npz", NULL, 0.5, 1, &a, NULL, &err), 0);
  assert_int_equal(a->val.n, 6);
  lsmi_dataset_destroy(a);
}

static void test_val_fraction_errors(void **state) {
  (void)state;
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  assert_int_equal(
      read_file(DATA "good_trainonly.npz", NULL, 0, 0, &ds, NULL, &err),
      LSMI_ERR_MISSING);
  assert_non_null(strstr(err.message, "val_fraction"));
  assert_int_equal(read_file(DATA "good.npz", NULL, 1.5, 0, &ds, NULL, &err),
                   LSMI_ERR_INVALID);
  assert_string_equal(err.field, "val_fraction");
  assert_int_equal(read_file(DATA "good.npz", NULL, NAN, 0, &ds, NULL, &err),
                   LSMI_ERR_INVALID);
  /* 1% of 4 rows per class rounds to no val rows at all. */
  assert_int_equal(
      read_file(DATA "good_trainonly.npz", NULL, 0.01, 0, &ds, NULL, &err),
      LSMI_ERR_INVALID);
  assert_null(ds);
}

/* ---- limits ---- */

static void test_limits(void **state) {
  (void)state;
  static const struct {
    const char *file;
    size_t offset; /* field of lsmi_limits_t */
    uint64_t value;
    const char *message;
  } cases[] = {
      {"good.npz", offsetof(lsmi_limits_t, max_members), 3, "members"},
      {"good.npz", offsetof(lsmi_limits_t, max_rows), 10, "rows exceed"},
      {"good.csv", offsetof(lsmi_limits_t, max_rows), 10, "more than 10"},
      {"good.json", offsetof(lsmi_limits_t, max_rows), 10, "limit is 10"},
      {"good.pt", offsetof(lsmi_limits_t, max_dims), 2, "columns exceed"},
      {"good.npz", offsetof(lsmi_limits_t, max_file_bytes), 100, "limit"},
      {"good.npz", offsetof(lsmi_limits_t, max_header_bytes), 64, "header"},
      {"good.pt", offsetof(lsmi_limits_t, max_header_bytes), 64, "data.pkl"},
      {"good.safetensors", offsetof(lsmi_limits_t, max_header_bytes), 64,
       "header"},
      {"good_deflate.npz", offsetof(lsmi_limits_t, max_decompressed_bytes), 400,
       "max_decompressed_bytes"},
      {"good.npz", offsetof(lsmi_limits_t, max_classes), 2, "max_classes"},
      {"good.npz", offsetof(lsmi_limits_t, min_rows_per_class), 5,
       "needs at least 5"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lsmi_limits_t lim;
    lsmi_limits_default(&lim);
    memcpy((char *)&lim + cases[i].offset, &cases[i].value, sizeof(uint64_t));
    char path[256];
    snprintf(path, sizeof path, DATA "%s", cases[i].file);
    lsmi_dataset_t *ds = NULL;
    lsmi_error_t err;
    int rc = read_file(path, &lim, 0, 0, &ds, NULL, &err);
    int want = cases[i].offset == offsetof(lsmi_limits_t, min_rows_per_class)
                   ? LSMI_ERR_DATA
                   : LSMI_ERR_LIMIT;
    if (rc != want || !strstr(err.message, cases[i].message))
      print_error("case %zu (%s): %s: %s\n", i, cases[i].file,
                  lsmi_status_name(rc), err.message);
    assert_int_equal(rc, want);
    assert_non_null(strstr(err.message, cases[i].message));
    assert_null(ds);
  }
}

static void test_limits_default(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  assert_true(lim.max_file_bytes >= ((uint64_t)1 << 30));
  assert_true(lim.max_rows >= 1000000);
  assert_true(lim.max_ratio > 10);
  assert_int_equal(lim.min_rows_per_class, 2);
}

/* ---- the dataset object ---- */

static void test_create_destroy(void **state) {
  (void)state;
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  assert_null(lsmi_dataset_create(SIZE_MAX / 2, 0, 4, 4, 2, &err));
  assert_int_equal(err.status, LSMI_ERR_LIMIT);
  lsmi_dataset_destroy(NULL);
  lsmi_dataset_t *ds = lsmi_dataset_create(4, 0, 1, 1, 2, &err);
  assert_non_null(ds);
  assert_int_equal(ds->val.n, 0);
  lsmi_dataset_destroy(ds);
}

static void test_validate(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi_error_t err;
  lsmi_dataset_t *ds = lsmi_dataset_create(4, 2, 1, 2, 2, &err);
  for (size_t i = 0; i < 4 * 3; i++)
    ds->train.x[i] = (float)i;
  for (size_t i = 0; i < 2 * 3; i++)
    ds->val.x[i] = (float)i;
  int32_t y[4] = {0, 1, 0, 1};
  memcpy(ds->train.y, y, sizeof y);
  ds->val.y[0] = 0;
  ds->val.y[1] = 1;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), 0);
  ds->train.x[3 * 2 + 2] = NAN; /* row 2, x2 column 1 */
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_string_equal(err.field, "train_x2");
  assert_non_null(strstr(err.message, "row 2, column 1"));
  ds->train.x[3 * 2 + 2] = 0;
  ds->val.y[1] = 2;
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_string_equal(err.field, "val_y");
  ds->val.y[1] = 1;
  ds->train.y[3] = 0; /* class 1 has one train row */
  assert_int_equal(lsmi_dataset_validate(ds, &lim, &err), LSMI_ERR_DATA);
  assert_non_null(strstr(err.message, "class 1"));
  lsmi_dataset_destroy(ds);
}

static void test_write_npz_roundtrip(void **state) {
  (void)state;
  lsmi_dataset_t *a = NULL, *b = NULL;
  lsmi_error_t err;
  assert_int_equal(read_file(DATA "good_views.pt", NULL, 0, 0, &a, NULL, &err),
                   0);
  char dir[] = "/tmp/lsmi-npz-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/out.npz", dir);
  assert_int_equal(lsmi_dataset_write_npz(a, path, &err), 0);
  lsmi_format_t fmt;
  assert_int_equal(read_file(path, NULL, 0, 0, &b, &fmt, &err), 0);
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
  assert_int_equal(read_file(path, NULL, 0, 0, &b, NULL, &err),
                   LSMI_ERR_MISSING);
  assert_int_equal(read_file(path, NULL, 0.25, 3, &b, NULL, &err), 0);
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

/* ---- detection and names ---- */

static void test_detect(void **state) {
  (void)state;
  static const struct {
    const char *head;
    size_t len;
    lsmi_format_t fmt;
  } cases[] = {
      {"PK\3\4", 4, LSMI_FORMAT_NPZ},
      {"PK\5\6", 4, LSMI_FORMAT_NPZ},
      {"\x93NUMPY\1\0", 8, LSMI_FORMAT_NPY},
      {"\x80\x02\x8a\x0a", 4, LSMI_FORMAT_PT},
      {"\x10\0\0\0\0\0\0\0{\"a\":1}", 15, LSMI_FORMAT_SAFETENSORS},
      {"  {\"train\": {}}", 15, LSMI_FORMAT_JSON},
      {"\xEF\xBB\xBF[1]", 6, LSMI_FORMAT_JSON},
      {"split,y,x1_0,x2_0\n", 18, LSMI_FORMAT_CSV},
      {"\x01\x02\x03", 3, LSMI_FORMAT_UNKNOWN},
      {"", 0, LSMI_FORMAT_UNKNOWN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_int_equal(
        lsmi_format_detect((const unsigned char *)cases[i].head, cases[i].len),
        cases[i].fmt);
  /* A torch zip is told from an npz by its first member's name. */
  FILE *f = fopen(DATA "good.pt", "rb");
  assert_non_null(f);
  unsigned char head[64];
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  assert_int_equal(lsmi_format_detect(head, n), LSMI_FORMAT_PT);
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_NPZ), "npz");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_NPY), "npy");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_PT), "pt");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_SAFETENSORS), "safetensors");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_CSV), "csv");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_JSON), "json");
  assert_string_equal(lsmi_format_name(LSMI_FORMAT_UNKNOWN), "unknown");
  assert_string_equal(lsmi_format_name((lsmi_format_t)99), "unknown");
}

/* The list of keys a file holds, for missing-key errors, stays bounded. */
static void test_seen_keys(void **state) {
  (void)state;
  lsmi__arrays_t as;
  lsmi__arrays_init(&as);
  lsmi__arrays_seen(&as, "arr_0");
  lsmi__arrays_seen(&as, "arr_1");
  assert_string_equal(as.seen, "arr_0, arr_1");
  char key[40];
  for (int i = 2; i < 100; i++) {
    snprintf(key, sizeof key, "a_rather_long_key_name_%d", i);
    lsmi__arrays_seen(&as, key);
  }
  size_t n = strlen(as.seen);
  assert_true(n < sizeof as.seen);
  assert_string_equal(as.seen + n - 3, "...");
  lsmi__arrays_free(&as);
}

/* ---- SHA-256 against FIPS 180-4 examples ---- */

static void test_sha256(void **state) {
  (void)state;
  static const struct {
    const char *msg;
    const char *hex;
  } v[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    lsmi_sha256_t s;
    unsigned char h[32];
    char out[65];
    lsmi_sha256_init(&s);
    /* Byte by byte for the long one: exercises the partial-block path. */
    size_t n = strlen(v[i].msg);
    if (n > 10)
      for (size_t k = 0; k < n; k++)
        lsmi_sha256_update(&s, v[i].msg + k, 1);
    else
      lsmi_sha256_update(&s, v[i].msg, n);
    lsmi_sha256_final(&s, h);
    hex(h, 32, out);
    assert_string_equal(out, v[i].hex);
  }
  /* One million 'a's. */
  lsmi_sha256_t s;
  unsigned char h[32], block[1000];
  char out[65];
  memset(block, 'a', sizeof block);
  lsmi_sha256_init(&s);
  for (int k = 0; k < 1000; k++)
    lsmi_sha256_update(&s, block, sizeof block);
  lsmi_sha256_final(&s, h);
  hex(h, 32, out);
  assert_string_equal(
      out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files_same_hash),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
      cmocka_unit_test(test_val_fraction_split),
      cmocka_unit_test(test_val_fraction_errors),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_limits_default),
      cmocka_unit_test(test_create_destroy),
      cmocka_unit_test(test_validate),
      cmocka_unit_test(test_write_npz_roundtrip),
      cmocka_unit_test(test_detect),
      cmocka_unit_test(test_seen_keys),
      cmocka_unit_test(test_sha256),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
