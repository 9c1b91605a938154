/*
 * test_npy.c — io/npy.c: .npy arrays, .npz archives of them, and the
 * single-file .npy bundle (a structured array of x1, x2, y, split).
 *
 * Besides the fixtures of tests/data/, .npy images are made here from a
 * header literal and raw bytes, so that every check of the header parser,
 * of each field of a bundle and of its records is provoked by name.
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
      {"good_3d.npz", LSMI_FORMAT_NPZ},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      /* npz */
      {"bad_member_magic.npz", LSMI_ERR_FORMAT, "train_x2", "bad magic"},
      {"bad_string_dtype.npz", LSMI_ERR_UNSUPPORTED, "train_x2",
       "train_x2 holds text (unicode); features must be numbers"},
      {"bad_object.npz", LSMI_ERR_UNSUPPORTED, "val_y",
       "val_y has dtype '|O' (Python objects)"},
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

/* ---- .npy images made here ---- */

/* An .npy image (version 1 or 2) of the header literal `dict` (padded as
 * NumPy pads it) and `len` data bytes (zeros when data is NULL), in a new
 * buffer of *n bytes. */
static unsigned char *npy_image(int version, const char *dict, const void *data,
                                size_t len, size_t *n) {
  size_t pre = version == 1 ? 10 : 12, dl = strlen(dict);
  size_t total = (pre + dl + 1 + 63) / 64 * 64, hlen = total - pre;
  unsigned char *b = calloc(1, total + len + 1);
  assert_non_null(b);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)version;
  for (size_t i = 0; i < pre - 8; i++)
    b[8 + i] = (unsigned char)(hlen >> (8 * i));
  memset(b + pre, ' ', hlen - 1);
  memcpy(b + pre, dict, dl);
  b[total - 1] = '\n';
  if (data)
    memcpy(b + total, data, len);
  *n = total + len;
  return b;
}

/* lsmi__npy_parse of the image must fail with status and a message
 * holding msg, naming "arr". */
static void parse_fails(int version, const char *dict, size_t len, int status,
                        const char *msg) {
  size_t n;
  unsigned char *b = npy_image(version, dict, NULL, len, &n);
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__array_t a;
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  int rc = lsmi__npy_parse(b, n, "arr", &lim, &a, &err);
  free(b);
  assert_true(io_failed_as(rc, NULL, &err, dict, status, "arr", msg));
}

static void test_npy_layouts(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  static const struct {
    int version;
    const char *dict;
    lsmi__dtype_t dt;
    bool big;
    uint64_t stride0, stride1;
  } cases[] = {
      {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
       LSMI__DT_F32, false, 4, 8},
      {1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }",
       LSMI__DT_F64, true, 24, 8},
      {2, "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 3), }",
       LSMI__DT_BOOL, false, 3, 1},
      {3, "{\"descr\": \"<u2\", 'fortran_order': False, 'shape': (2L, 3L)}",
       LSMI__DT_U16, false, 6, 2},
      {1, "{'shape': [2, 3][0:0] if 0 else (2, 3), }", LSMI__DT_U8, false, 0,
       0}, /* not a literal: refused below */
  };
  for (size_t i = 0; i < 4; i++) {
    size_t n;
    unsigned char *b = npy_image(cases[i].version, cases[i].dict, NULL, 48, &n);
    lsmi__array_t a;
    lsmi_error_t err;
    int rc = lsmi__npy_parse(b, n, "arr", &lim, &a, &err);
    if (rc)
      print_error("%s: %s\n", cases[i].dict, err.message);
    assert_int_equal(rc, 0);
    assert_string_equal(a.key, "arr");
    assert_int_equal(a.dtype, cases[i].dt);
    assert_int_equal(a.big_endian, cases[i].big);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.stride[0], cases[i].stride0);
    assert_int_equal(a.stride[1], cases[i].stride1);
    assert_ptr_equal(a.data, b + n - 48);
    assert_int_equal(a.data_len, 48);
    free(b);
  }
  parse_fails(1, cases[4].dict, 0, LSMI_ERR_FORMAT,
              "arr: .npy header is not a valid dict literal");
}

static void test_npy_header_errors(void **state) {
  (void)state;
  parse_fails(1, "{'descr': '<f4', 'shape': (2,), }", 8, LSMI_ERR_FORMAT,
              "arr: .npy header lacks descr, fortran_order or shape");
  parse_fails(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", 8,
              LSMI_ERR_FORMAT, "lacks descr, fortran_order or shape");
  parse_fails(1,
              "{'descr': [('a', '<f4')], 'fortran_order': False, "
              "'shape': (2,), }",
              8, LSMI_ERR_UNSUPPORTED,
              "arr is a structured array; only plain numeric arrays are "
              "supported here");
  parse_fails(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }",
              16, LSMI_ERR_UNSUPPORTED,
              "arr has dtype '<c8'; supported are bool, int8-64, uint8-64, "
              "float16, float32, float64 and, for labels and ids, strings");
  parse_fails(1, "{'descr': '<U0', 'fortran_order': False, 'shape': (2,), }",
              16, LSMI_ERR_UNSUPPORTED, "arr has dtype '<U0'");
  parse_fails(1, "{'descr': '|S9x', 'fortran_order': False, 'shape': (2,), }",
              16, LSMI_ERR_UNSUPPORTED, "arr has dtype '|S9x'");
  parse_fails(1,
              "{'descr': '<U999999', 'fortran_order': False, 'shape': (2,), }",
              16, LSMI_ERR_UNSUPPORTED, "arr has dtype '<U999999'");
  parse_fails(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", 8,
              LSMI_ERR_FORMAT, "arr: .npy header has no shape tuple");
  parse_fails(1,
              "{'descr': '<f4', 'fortran_order': False, "
              "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
              4, LSMI_ERR_SHAPE,
              "arr has 9 dimensions; at most 8 are supported");
  parse_fails(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
              8, LSMI_ERR_FORMAT,
              "arr: .npy shape holds a non-integer or negative size");
  parse_fails(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
              20, LSMI_ERR_FORMAT,
              "arr has shape (2, 3) (float32) but only 20 data bytes "
              "(truncated?)");
  parse_fails(1,
              "{'descr': '<f4', 'fortran_order': False, "
              "'shape': (99999999999999999999,), }",
              0, LSMI_ERR_FORMAT, "not a valid dict literal");
  /* Nesting deeper than 16, and more than 1024 values. */
  parse_fails(1, "{'a': [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", 0,
              LSMI_ERR_FORMAT, "not a valid dict literal");
  char many[4200] = "{'a': (";
  for (int i = 0; i < 1030; i++)
    strcat(many, "1, ");
  strcat(many, ")}");
  parse_fails(1, many, 0, LSMI_ERR_FORMAT, "not a valid dict literal");
}

static void test_npy_preamble_errors(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__array_t a;
  lsmi_error_t err;
  size_t n;
  unsigned char *b =
      npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                NULL, 8, &n);
  b[0] = 0x92;
  assert_int_equal(lsmi__npy_parse(b, n, "arr", &lim, &a, &err),
                   LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "arr is not an .npy array (bad magic)");
  b[0] = 0x93;
  b[6] = 2;
  assert_int_equal(lsmi__npy_parse(b, 11, "arr", &lim, &a, &err),
                   LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "arr: truncated .npy header");
  b[6] = 1;
  lim.max_header_bytes = 32;
  assert_int_equal(lsmi__npy_parse(b, n, "arr", &lim, &a, &err),
                   LSMI_ERR_LIMIT);
  assert_string_equal(err.message,
                      "arr: .npy header of 118 bytes exceeds the limit 32");
  lim.max_header_bytes = 1 << 20;
  assert_int_equal(lsmi__npy_parse(b, 100, "arr", &lim, &a, &err),
                   LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "arr: .npy header says 118 bytes but the "
                                   "file ends first (truncated?)");
  free(b);
}

/* ---- .npz ---- */

static void test_npz_members(void **state) {
  (void)state;
  float x1[8 * 2], x2[8];
  int64_t y[8];
  for (int i = 0; i < 8; i++) {
    x1[2 * i] = (float)i;
    x1[2 * i + 1] = (float)-i;
    x2[i] = (float)i / 2;
    y[i] = i % 2;
  }
  size_t n1, n2, n3;
  unsigned char *a1 = npy_image(
      1, "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 2), }", x1,
      sizeof x1, &n1);
  unsigned char *a2 = npy_image(
      1, "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 1), }", x2,
      sizeof x2, &n2);
  unsigned char *a3 =
      npy_image(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (8,), }",
                y, sizeof y, &n3);
  char longname[80];
  memset(longname, 'k', 70);
  strcpy(longname + 70, ".npy");
  /* Other members are passed over unread, however broken. */
  io_member_t m[] = {{"train_modal_1_features.npy", a1, n1, true},
                     {"train_x2.npy", a2, n2, false},
                     {"train_targets.npy", a3, n3, false},
                     {"seed.npy", "garbage", 7, false},
                     {"notes.txt", "garbage", 7, false},
                     {longname, "garbage", 7, false},
                     {".npy", "garbage", 7, false}};
  size_t len;
  unsigned char *z = io_zip(m, 7, &len);
  lsmi_dataset_t *ds = io_must_read(z, len, LSMI_FORMAT_UNKNOWN, 0.25);
  assert_int_equal(ds->train.n, 6);
  assert_int_equal(ds->val.n, 2);
  assert_int_equal(ds->d1, 2);
  assert_int_equal(ds->d2, 1);
  lsmi_dataset_destroy(ds);
  free(z);
  /* Without train_x2 the error lists what the archive holds. */
  m[1].name = "train_x3.npy";
  z = io_zip(m, 4, &len);
  lsmi_error_t err;
  assert_int_equal(io_read_mem(z, len, LSMI_FORMAT_NPZ, NULL, 0.5, NULL, &err),
                   LSMI_ERR_MISSING);
  assert_string_equal(err.message,
                      "missing key train_x2 (or train_modal_2_features, or x2 "
                      "in a file without val); the file holds "
                      "train_modal_1_features, train_x3, train_targets, seed: "
                      "say which array is which with --x1 KEY --x2 KEY --y "
                      "KEY (upload: ?x1=KEY&x2=KEY&y=KEY)");
  free(z);
  free(a1);
  free(a2);
  free(a3);
}

/* ---- the bundle ---- */

/* A bundle header over the given descr list, with `records` records. */
static unsigned char *bundle(const char *descr, const char *shape,
                             const void *data, size_t len, size_t *n) {
  char dict[512];
  snprintf(dict, sizeof dict,
           "{'descr': %s, 'fortran_order': False, 'shape': %s, }", descr,
           shape);
  return npy_image(1, dict, data, len, n);
}

/* 12 records of x1 (3 float32), x2 (2 float32), y (int64), split (bool)
 * and 3 bytes of padding: 32 bytes each. Records 0-5 are train. */
static void test_bundle_records(void **state) {
  (void)state;
  unsigned char recs[12 * 32];
  memset(recs, 0, sizeof recs);
  for (int i = 0; i < 12; i++) {
    unsigned char *r = recs + 32 * i;
    float x[5] = {(float)i, (float)i + 0.5f, (float)-i, (float)(2 * i), 1};
    int64_t y = i % 3;
    memcpy(r, x, sizeof x);
    memcpy(r + 20, &y, 8);
    r[28] = i >= 6;
  }
  size_t n;
  unsigned char *b = bundle("[('x1', '<f4', (3,)), ('x2', '<f4', (2,)), "
                            "('y', '<i8'), ('split', '|b1'), ('pad', '|V3')]",
                            "(12,)", recs, sizeof recs, &n);
  lsmi_dataset_t *ds = io_must_read(b, n, LSMI_FORMAT_UNKNOWN, 0);
  assert_int_equal(ds->train.n, 6);
  assert_int_equal(ds->val.n, 6);
  assert_int_equal(ds->d1, 3);
  assert_int_equal(ds->d2, 2);
  for (int i = 0; i < 6; i++) {
    assert_true(ds->train.x[5 * i + 1] == (float)i + 0.5f);
    assert_true(ds->val.x[5 * i + 3] == (float)(2 * (i + 6)));
    assert_int_equal(ds->val.y[i], (i + 6) % 3);
  }
  lsmi_dataset_destroy(ds);
  free(b);
  /* Without a split field every record is train. */
  b = bundle("[('x1', '<f4', (3,)), ('x2', '<f4', (2,)), ('y', '<i8'), "
             "('skip', '|V4')]",
             "(12,)", recs, sizeof recs, &n);
  ds = io_must_read(b, n, LSMI_FORMAT_NPY, 0.25);
  assert_int_equal(ds->train.n + ds->val.n, 12);
  lsmi_dataset_destroy(ds);
  free(b);
}

/* Fields by the caller's names, a (2, 2) subarray flattened, text labels
 * and ids, and each record's position in the file kept. 8 records of
 * feat (2, 2 float32), x2 (float32), label ('<U4'), id ('|S3'), split:
 * records 3 and 7 are val. */
static void test_bundle_names_text_rows(void **state) {
  (void)state;
  unsigned char recs[8 * 40];
  memset(recs, 0, sizeof recs);
  for (int i = 0; i < 8; i++) {
    unsigned char *r = recs + 40 * i;
    float f[5] = {(float)i, i + 0.25f, i + 0.5f, i + 0.75f, (float)-i};
    memcpy(r, f, sizeof f);
    const char *label = i % 2 ? "dog" : "cat";
    for (int k = 0; k < 3; k++)
      r[20 + 4 * k] = (unsigned char)label[k]; /* UCS-4, little endian */
    r[36] = 'r';
    r[37] = (unsigned char)('0' + i);
    r[39] = i % 4 == 3;
  }
  size_t n;
  unsigned char *b =
      bundle("[('feat', '<f4', (2, 2)), ('x2', '<f4'), "
             "('label', '<U4'), ('id', '|S3'), ('split', '|b1')]",
             "(8,)", recs, sizeof recs, &n);
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.x1 = "feat";
  opt.y = "label";
  lsmi_read_info_t info;
  lsmi_dataset_t *ds = io_must_read_opts(b, n, LSMI_FORMAT_NPY, &opt, &info);
  assert_int_equal(ds->train.n, 6);
  assert_int_equal(ds->val.n, 2);
  assert_int_equal(ds->d1, 4);
  assert_int_equal(ds->d2, 1);
  assert_int_equal(info.nnotes, 2);
  assert_string_equal(info.notes[0], "feat: features of shape (6, 2, 2) "
                                     "flattened in C order to (6, 4)");
  static const uint64_t train_rows[6] = {0, 1, 2, 4, 5, 6};
  for (int i = 0; i < 6; i++) {
    uint64_t r = train_rows[i];
    assert_int_equal(ds->train.row[i], r);
    assert_true(ds->train.x[5 * i + 1] == r + 0.25f);
    assert_true(ds->train.x[5 * i + 4] == -(float)r);
    assert_int_equal(ds->train.y[i], (int)(r % 2));
    char id[4] = {'r', (char)('0' + r), 0, 0};
    assert_string_equal(ds->train.id[i], id);
  }
  assert_int_equal(ds->val.row[0], 3);
  assert_int_equal(ds->val.row[1], 7);
  assert_string_equal(ds->val.id[1], "r7");
  assert_int_equal(ds->classes, 2);
  assert_string_equal(ds->class_names[0], "cat");
  assert_string_equal(ds->class_names[1], "dog");
  assert_false(ds->class_names_numeric);
  assert_false(ds->id_numeric);
  lsmi_dataset_destroy(ds);
  /* By the usual names, the fields are missing; the message lists them. */
  lsmi_error_t err;
  assert_int_equal(io_read_mem(b, n, LSMI_FORMAT_NPY, NULL, 0, NULL, &err),
                   LSMI_ERR_MISSING);
  assert_string_equal(err.message,
                      "the .npy structured array has no field x1 (needs x1, "
                      "x2, y; optional split, id); its fields are feat, x2, "
                      "label, id, split: say which is which with --x1 FIELD "
                      "--x2 FIELD --y FIELD (upload: ?x1=&x2=&y=)");
  free(b);
}

/* Text that is not UTF-8 is refused, by key and row. */
static void test_text_not_utf8(void **state) {
  (void)state;
  float x[4] = {1, 2, 3, 4};
  size_t n1, n2, n3, len;
  unsigned char *a1 =
      npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                x, sizeof x, &n1);
  unsigned char *a2 =
      npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                x, sizeof x, &n2);
  unsigned char *a3 =
      npy_image(1, "{'descr': '|S2', 'fortran_order': False, 'shape': (4,), }",
                "a\0b\0a\0\xff\xfe", 8, &n3);
  io_member_t m[] = {{"x1.npy", a1, n1, false},
                     {"x2.npy", a2, n2, false},
                     {"y.npy", a3, n3, false}};
  unsigned char *z = io_zip(m, 3, &len);
  io_expect(z, len, LSMI_FORMAT_NPZ, NULL, LSMI_ERR_DATA, "y",
            "y at row 3 is not UTF-8 text");
  free(z);
  free(a1);
  free(a2);
  free(a3);
}

static void test_bundle_errors(void **state) {
  (void)state;
  static const struct {
    const char *descr, *shape;
    size_t len;
    int status;
    const char *field, *message;
  } cases[] = {
      {"[('x1', '<f4'), ('x1', '<f4'), ('y', '<i8')]", "(1,)", 16,
       LSMI_ERR_FORMAT, "x1", "field x1 appears twice"},
      {"[('x1', [('a', '<f4')]), ('y', '<i8')]", "(1,)", 12,
       LSMI_ERR_UNSUPPORTED, "npy",
       "nested structured dtypes are not supported"},
      {"[('x1',), ('y', '<i8')]", "(1,)", 8, LSMI_ERR_FORMAT, "npy",
       "malformed structured dtype in the .npy header"},
      {"[[1, 2]]", "(1,)", 0, LSMI_ERR_FORMAT, "npy",
       "malformed structured dtype"},
      {"[(1, '<f4')]", "(1,)", 0, LSMI_ERR_FORMAT, "npy",
       "malformed structured dtype"},
      {"[('zz', 'abc'), ('y', '<i8')]", "(1,)", 8, LSMI_ERR_UNSUPPORTED, "zz",
       "field zz has an unsupported dtype 'abc'"},
      {"[('zz', '|V9999999'), ('y', '<i8')]", "(1,)", 8, LSMI_ERR_UNSUPPORTED,
       "zz", "field zz has an unsupported dtype"},
      {"[('x1', '<c8'), ('y', '<i8')]", "(1,)", 16, LSMI_ERR_UNSUPPORTED, "x1",
       "x1 has dtype '<c8'"},
      {"[('x1', '<f4', (1, 1, 1, 1, 1, 1, 1, 1)), ('x2', '<f4'), ('y', "
       "'<i8')]",
       "(1,)", 16, LSMI_ERR_SHAPE, "x1",
       "field x1 has 8 dimensions; at most 7 are supported"},
      {"[('x1', '<f4'), ('x2', '<f4'), ('y', '<i8'), ('split', '<U2')]", "(1,)",
       24, LSMI_ERR_UNSUPPORTED, "split",
       "field split must be an integer or bool per record"},
      {"[('x1', '<f4', (-1,)), ('y', '<i8')]", "(1,)", 8, LSMI_ERR_FORMAT, "x1",
       "x1: .npy shape holds a non-integer or negative size"},
      {"[('x1', '<f4', (4611686018427387904,)), ('y', '<i8')]", "(1,)", 0,
       LSMI_ERR_LIMIT, "x1", "record size overflows at field x1"},
      {"[('x1', '<f8', (1152921504606846976,)), "
       "('x2', '<f8', (1152921504606846976,))]",
       "(1,)", 0, LSMI_ERR_LIMIT, "x2", "record size overflows at field x2"},
      {"[('x1', '<f4'), ('y', '<i8')]", "(1,)", 12, LSMI_ERR_MISSING, "x2",
       "the .npy structured array has no field x2 (needs x1, x2, y; optional "
       "split, id); its fields are x1, y: say which is which with --x1 FIELD "
       "--x2 FIELD --y FIELD (upload: ?x1=&x2=&y=)"},
      {"[('x1', '<f4'), ('x2', '<f4'), ('y', '<i8')]", "(1, 1)", 16,
       LSMI_ERR_SHAPE, "npy",
       "the .npy structured array must be 1-D (one record per sample), not "
       "2-D"},
      {"[('x1', '<f4'), ('x2', '<f4'), ('y', '<i8')]", "(100000000000,)", 0,
       LSMI_ERR_LIMIT, "npy", "100000000000 records exceed the row limit"},
      {"[('x1', '<f4'), ('x2', '<f4'), ('y', '<i8')]", "(3,)", 47,
       LSMI_ERR_FORMAT, "npy",
       "3 records of 16 bytes need more bytes than the file holds "
       "(truncated?)"},
      /* the fuzzer's find: labels of no columns, no bytes in a record */
      {"[('x1', '<f4'), ('x2', '<f4'), ('y', '<i8', (0,))]", "(2,)", 16,
       LSMI_ERR_SHAPE, "y",
       "y has shape (2, 0); expected (n,) labels or (n, C) one-hot"},
      {"[('x1', '<f4'), ('x2', '<f4'), ('y', '<i8', (2, 2))]", "(2,)", 80,
       LSMI_ERR_SHAPE, "y",
       "y has shape (2, 2, 2); expected (n,) labels or (n, C) one-hot"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n;
    unsigned char *b =
        bundle(cases[i].descr, cases[i].shape, NULL, cases[i].len, &n);
    lsmi_error_t err;
    int rc = io_read_mem(b, n, LSMI_FORMAT_NPY, NULL, 0.25, NULL, &err);
    free(b);
    assert_true(io_failed_as(rc, NULL, &err, cases[i].descr, cases[i].status,
                             cases[i].field, cases[i].message));
  }
  /* The header's own keys. */
  size_t n;
  unsigned char *b =
      npy_image(1, "{'descr': [('x1', '<f4')], 'shape': (1,)}", NULL, 4, &n);
  io_expect(b, n, LSMI_FORMAT_NPY, NULL, LSMI_ERR_FORMAT, "npy",
            ".npy header lacks descr, fortran_order or shape");
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
      cmocka_unit_test(test_npy_layouts),
      cmocka_unit_test(test_npy_header_errors),
      cmocka_unit_test(test_npy_preamble_errors),
      cmocka_unit_test(test_npz_members),
      cmocka_unit_test(test_bundle_records),
      cmocka_unit_test(test_bundle_names_text_rows),
      cmocka_unit_test(test_text_not_utf8),
      cmocka_unit_test(test_bundle_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
