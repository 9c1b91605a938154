/*
 * test_formats.c — io/formats.c: detection by magic bytes, dispatch to the
 * readers, the arrays a reader hands over (their checks and conversions),
 * their assembly into a dataset, the val split made when a file has none,
 * and the reading of a file by path.
 *
 * The errors of the assembly are provoked with fixtures of several
 * formats (each names its own key) and with arrays made here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <sys/stat.h>

#include "io_test.h"

/* ---- the fixtures ---- */

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      /* assembly: keys, shapes, labels and values, whatever the format */
      {"bad_rows.npz", LSMI_ERR_SHAPE, "train_x2",
       "train_x2 has shape (11, 2)"},
      {"bad_dims.npz", LSMI_ERR_SHAPE, "val_x1", "val_x1 has shape (6, 2)"},
      {"bad_missing.npz", LSMI_ERR_MISSING, "train_y",
       "missing key train_y (or train_targets, or y in a file without val); "
       "the file holds train_x1, train_x2, val_x1, val_x2, val_y: say which "
       "array is which with --x1 KEY --x2 KEY --y KEY (upload: ?x1=KEY&"
       "x2=KEY&y=KEY)"},
      {"bad_val_partial.npz", LSMI_ERR_MISSING, "val_x2", "val_x2"},
      {"bad_nan.npz", LSMI_ERR_DATA, "train_x1", "NaN at row 4, column 1"},
      {"bad_f32_range.npz", LSMI_ERR_DATA, "val_x2", "float32 range at row 2"},
      /* -1 is a label like any other: here one of a single train row */
      {"bad_label_neg.npz", LSMI_ERR_DATA, "train_y",
       "class -1 has 1 row in train; every class needs at least 2"},
      {"bad_label_frac.npz", LSMI_ERR_DATA, "val_y", "2.5 at row 2"},
      {"bad_nan.pt", LSMI_ERR_DATA, "train_x2", "infinite value at row 7"},
      {"bad_label_big.pt", LSMI_ERR_DATA, "train_y",
       "class 50000 has 1 row in train"},
      {"bad_view_oob.pt", LSMI_ERR_FORMAT, "train_x1", "shape (12, 9)"},
      {"bad_expanded.pt", LSMI_ERR_UNSUPPORTED, "train_x1", "expanded"},
      {"bad_nan.safetensors", LSMI_ERR_DATA, "val_x1",
       "NaN at row 3, column 2"},
      {"bad_label.csv", LSMI_ERR_DATA, "train_y", "1.5 at row 1"},
      {"bad_missing.json", LSMI_ERR_MISSING, "train_y", "train_y"},
      /* dispatch */
      {"unknown.bin", LSMI_ERR_UNSUPPORTED, NULL, "unrecognised"},
      {"empty.csv", LSMI_ERR_FORMAT, NULL, "empty"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
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

/* A zip holding a data.pkl anywhere is read as PyTorch, not as .npz. */
static void test_dispatch_torch_zip(void **state) {
  (void)state;
  io_member_t m[] = {{"archive/version", "3\n", 2, false},
                     {"archive/data.pkl", "\x80\x02}.", 4, false}};
  size_t len;
  unsigned char *z = io_zip(m, 2, &len);
  assert_int_equal(lsmi_format_detect(z, len), LSMI_FORMAT_NPZ);
  lsmi_dataset_t *ds = NULL;
  lsmi_read_info_t info;
  lsmi_error_t err;
  assert_int_equal(lsmi__dataset_read_buffer(z, len, LSMI_FORMAT_UNKNOWN, NULL,
                                             NULL, &ds, &info, &err),
                   LSMI_ERR_MISSING);
  assert_int_equal(info.format, LSMI_FORMAT_PT);
  assert_string_equal(err.field, "train_x1");
  /* A format given is used as it is. */
  assert_int_equal(lsmi__dataset_read_buffer(z, len, LSMI_FORMAT_CSV, NULL,
                                             NULL, &ds, &info, &err),
                   LSMI_ERR_MISSING);
  assert_int_equal(info.format, LSMI_FORMAT_CSV);
  assert_null(ds);
  free(z);
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

/* ---- key roles ---- */

static void test_key_roles(void **state) {
  (void)state;
  lsmi__arrays_t as;
  lsmi__arrays_init(&as);
  static const struct {
    int split;
    const char *key;
    int role;
  } usual[] = {
      {-1, "train_x1", LSMI__TRAIN_X1},
      {-1, "val_targets", LSMI__VAL_Y},
      {-1, "train_modal_2_features", LSMI__TRAIN_X2},
      {-1, "x2", LSMI__TRAIN_X2},
      {-1, "y", LSMI__TRAIN_Y},
      {-1, "id", LSMI__TRAIN_ID},
      {-1, "val_id", LSMI__VAL_ID},
      {-1, "arr_0", LSMI__TRAIN_X1},
      {-1, "arr_2", LSMI__TRAIN_Y},
      {-1, "arr_3", -1},
      {-1, "targets", -1},
      {-1, "val_x3", -1},
      {0, "x1", LSMI__TRAIN_X1},
      {1, "y", LSMI__VAL_Y},
      {1, "id", LSMI__VAL_ID},
      {1, "val_y", -1}, /* inside a split, a part goes by its own name */
  };
  for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++)
    if (lsmi__key_role(&as, usual[i].split, usual[i].key) != usual[i].role)
      fail_msg("%s in split %d: role %d, want %d", usual[i].key, usual[i].split,
               lsmi__key_role(&as, usual[i].split, usual[i].key),
               usual[i].role);
  /* The caller's names win, even over another part's usual name. */
  as.keys[LSMI__X1] = "x2";
  as.keys[LSMI__Y] = "label";
  assert_int_equal(lsmi__key_role(&as, -1, "x2"), LSMI__TRAIN_X1);
  assert_int_equal(lsmi__key_role(&as, -1, "val_x2"), LSMI__VAL_X1);
  assert_int_equal(lsmi__key_role(&as, -1, "train_label"), LSMI__TRAIN_Y);
  assert_int_equal(lsmi__key_role(&as, 1, "label"), LSMI__VAL_Y);
  assert_int_equal(lsmi__key_role(&as, -1, "y"), -1);
  assert_int_equal(lsmi__key_role(&as, -1, "train_x1"), -1);
  assert_int_equal(lsmi__key_role(&as, -1, "arr_2"), -1);
  lsmi__arrays_free(&as);
}

/* A read keeps at most LSMI_READ_NOTES notes, each cut to its room. */
static void test_notes(void **state) {
  (void)state;
  lsmi_read_info_t info;
  memset(&info, 0, sizeof info);
  lsmi__note(NULL, "nowhere");
  for (int i = 0; i < LSMI_READ_NOTES + 2; i++)
    lsmi__note(&info, "note %d %0300d", i, 0);
  assert_int_equal(info.nnotes, LSMI_READ_NOTES);
  assert_int_equal(strlen(info.notes[3]), sizeof info.notes[3] - 1);
  assert_true(strncmp(info.notes[3], "note 3 000", 10) == 0);
}

/* ---- val split ---- */

static void test_val_fraction_split(void **state) {
  (void)state;
  lsmi_dataset_t *a = NULL, *b = NULL, *c = NULL;
  lsmi_error_t err;
  assert_int_equal(
      io_read(DATA "good_trainonly.npz", NULL, 0.25, 7, &a, NULL, &err), 0);
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
      io_read(DATA "good_trainonly.csv", NULL, 0.25, 7, &b, NULL, &err), 0);
  unsigned char ha[32], hb[32], hc[32];
  lsmi_dataset_hash(a, ha);
  lsmi_dataset_hash(b, hb);
  assert_memory_equal(ha, hb, 32);
  /* Some other seed picks other rows. */
  int differ = 0;
  for (uint64_t seed = 8; seed < 16 && !differ; seed++) {
    assert_int_equal(
        io_read(DATA "good_trainonly.npz", NULL, 0.25, seed, &c, NULL, &err),
        0);
    lsmi_dataset_hash(c, hc);
    differ = memcmp(ha, hc, 32) != 0;
    lsmi_dataset_destroy(c);
  }
  assert_true(differ);
  lsmi_dataset_destroy(a);
  lsmi_dataset_destroy(b);
  /* A file with a val split ignores val_fraction. */
  assert_int_equal(io_read(DATA "good.npz", NULL, 0.5, 1, &a, NULL, &err), 0);
  assert_int_equal(a->val.n, 6);
  lsmi_dataset_destroy(a);
}

static void test_val_fraction_errors(void **state) {
  (void)state;
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  assert_int_equal(
      io_read(DATA "good_trainonly.npz", NULL, 0, 0, &ds, NULL, &err),
      LSMI_ERR_MISSING);
  assert_non_null(strstr(err.message, "val_fraction"));
  assert_int_equal(io_read(DATA "good.npz", NULL, 1.5, 0, &ds, NULL, &err),
                   LSMI_ERR_INVALID);
  assert_string_equal(err.field, "val_fraction");
  assert_int_equal(io_read(DATA "good.npz", NULL, NAN, 0, &ds, NULL, &err),
                   LSMI_ERR_INVALID);
  /* 1% of 4 rows per class rounds to no val rows at all. */
  assert_int_equal(
      io_read(DATA "good_trainonly.npz", NULL, 0.01, 0, &ds, NULL, &err),
      LSMI_ERR_INVALID);
  assert_null(ds);
}

/* ---- reading a file by path ---- */

static void test_read_path_errors(void **state) {
  (void)state;
  lsmi_dataset_t *ds = (lsmi_dataset_t *)1;
  lsmi_format_t fmt = LSMI_FORMAT_CSV;
  lsmi_error_t err;
  assert_int_equal(io_read(NULL, NULL, 0, 0, &ds, &fmt, &err),
                   LSMI_ERR_INVALID);
  assert_null(ds);
  assert_int_equal(fmt, LSMI_FORMAT_UNKNOWN);
  assert_string_equal(err.message, "no path or output");
  assert_int_equal(io_read(DATA "good.npz", NULL, 0, 0, NULL, NULL, &err),
                   LSMI_ERR_INVALID);
  assert_int_equal(io_read(DATA "no-such-file", NULL, 0, 0, &ds, NULL, &err),
                   LSMI_ERR_IO);
  assert_string_equal(err.message, "cannot open tests/data/no-such-file: No "
                                   "such file or directory");
  assert_int_equal(io_read(DATA, NULL, 0, 0, &ds, NULL, &err), LSMI_ERR_IO);
  assert_string_equal(err.message, "tests/data/ is not a regular file");
  assert_int_equal(io_read(DATA "empty.csv", NULL, 0, 0, &ds, NULL, &err),
                   LSMI_ERR_FORMAT);
  assert_string_equal(err.message, "tests/data/empty.csv is empty");
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_file_bytes = 100;
  assert_int_equal(io_read(DATA "good.csv", &lim, 0, 0, &ds, NULL, &err),
                   LSMI_ERR_LIMIT);
  struct stat st;
  assert_int_equal(stat(DATA "good.csv", &st), 0);
  char want[128];
  snprintf(want, sizeof want,
           "tests/data/good.csv has %lld bytes; the limit "
           "is 100",
           (long long)st.st_size);
  assert_string_equal(err.message, want);
  assert_null(ds);
}

static void test_read_buffer_errors(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_file_bytes = 4;
  io_expect("y,x1,x2\n", 8, LSMI_FORMAT_UNKNOWN, &lim, LSMI_ERR_LIMIT, "",
            "file has 8 bytes; the limit is 4");
  io_expect("", 0, LSMI_FORMAT_UNKNOWN, NULL, LSMI_ERR_FORMAT, "",
            "the file is empty");
  io_expect("y", 1, (lsmi_format_t)42, NULL, LSMI_ERR_UNSUPPORTED, "",
            "unrecognised file format: not npz, npy, pt, safetensors, csv or "
            "json");
  lsmi_error_t err;
  assert_int_equal(
      io_read_mem("y", 1, LSMI_FORMAT_UNKNOWN, NULL, -0.5, NULL, &err),
      LSMI_ERR_INVALID);
  assert_string_equal(err.message,
                      "val_fraction must be 0 (none) or in (0, 1), not -0.5");
}

/* ---- arrays ---- */

/* A float32 array over `data` (n rows of d columns, C order; d == 0: a
 * vector of n), named key. */
static lsmi__array_t f32_array(const char *key, const float *data, uint64_t n,
                               uint64_t d) {
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s", key);
  a.dtype = LSMI__DT_F32;
  a.ndim = d ? 2 : 1;
  a.shape[0] = n;
  a.shape[1] = d;
  a.data = (const unsigned char *)data;
  a.data_len = (size_t)(n * (d ? d : 1) * sizeof(float));
  lsmi__strides_c(&a);
  return a;
}

/* lsmi__arrays_put of a with the default limits (or lim) must fail with
 * status and a message holding msg. */
static void put_fails(lsmi__arrays_t *as, int role, const lsmi__array_t *a,
                      const lsmi_limits_t *lim, int status, const char *msg) {
  lsmi_limits_t dl;
  lsmi_limits_default(&dl);
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  int rc = lsmi__arrays_put(as, role, a, lim ? lim : &dl, &err);
  assert_true(io_failed_as(rc, NULL, &err, a->key, status, a->key, msg));
}

static void test_arrays_put(void **state) {
  (void)state;
  static float v[64];
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__arrays_t as;
  lsmi__arrays_init(&as);
  lsmi__array_t a = f32_array("feats", v, 8, 2);
  assert_int_equal(lsmi__arrays_put(&as, -1, &a, &lim, NULL), 0);
  assert_false(as.have[0]);
  assert_int_equal(lsmi__arrays_put(&as, LSMI__TRAIN_X1, &a, &lim, NULL), 0);
  assert_true(as.have[LSMI__TRAIN_X1]);
  lsmi__array_t b = f32_array("other", v, 8, 2);
  put_fails(&as, LSMI__TRAIN_X1, &b, NULL, LSMI_ERR_FORMAT,
            "keys feats and other both give train_x1");
  b.ndim = 0;
  put_fails(&as, LSMI__TRAIN_X2, &b, NULL, LSMI_ERR_SHAPE,
            "other has shape (); expected (n, d) features");
  b = f32_array("labels", v, 4, 2);
  b.ndim = 3;
  b.shape[2] = 2;
  put_fails(&as, LSMI__VAL_Y, &b, NULL, LSMI_ERR_SHAPE,
            "labels has shape (4, 2, 2); expected (n,) labels or (n, C) "
            "one-hot");
  b = f32_array("ids", v, 8, 2);
  put_fails(&as, LSMI__TRAIN_ID, &b, NULL, LSMI_ERR_SHAPE,
            "ids has shape (8, 2); expected (n,) sample ids");
  /* Labels of no columns have no values (a fuzzed .npy bundle once read
   * past its records for them). */
  b = f32_array("labels", v, 8, 2);
  b.shape[1] = 0;
  put_fails(&as, LSMI__TRAIN_Y, &b, NULL, LSMI_ERR_SHAPE,
            "labels has shape (8, 0); expected (n,) labels or (n, C) "
            "one-hot");
  b = f32_array("labels", v, 8, 2); /* one-hot rows: checked later */
  assert_int_equal(lsmi__arrays_put(&as, LSMI__VAL_Y, &b, &lim, NULL), 0);
  b = f32_array("ids", v, 8, 1); /* (n, 1) ids are fine */
  assert_int_equal(lsmi__arrays_put(&as, LSMI__VAL_ID, &b, &lim, NULL), 0);
  b = f32_array("cube", v, 4, 2); /* features of any rank */
  b.ndim = 3;
  b.shape[2] = 2;
  b.data_len = sizeof v;
  lsmi__strides_c(&b);
  assert_int_equal(lsmi__arrays_put(&as, LSMI__VAL_X2, &b, &lim, NULL), 0);
  b.shape[1] = 3;
  lim.max_dims = 5;
  put_fails(&as, LSMI__TRAIN_X2, &b, &lim, LSMI_ERR_LIMIT,
            "cube has shape (4, 3, 2): 6 columns exceed the limit 5");
  lim.max_dims = 65536;
  b = f32_array("names", v, 8, 0);
  b.dtype = LSMI__DT_BYTES;
  b.width = 4;
  put_fails(&as, LSMI__TRAIN_X2, &b, NULL, LSMI_ERR_UNSUPPORTED,
            "names holds text (bytes); features must be numbers");
  lim.max_rows = 7;
  b = f32_array("big", v, 8, 2);
  put_fails(&as, LSMI__TRAIN_X2, &b, &lim, LSMI_ERR_LIMIT,
            "big has shape (8, 2): 8 rows exceed the limit 7");
  lim.max_rows = 100;
  lim.max_dims = 1;
  put_fails(&as, LSMI__TRAIN_X2, &b, &lim, LSMI_ERR_LIMIT,
            "big has shape (8, 2): 2 columns exceed the limit 1");
  b.stride[0] = UINT64_MAX / 2;
  put_fails(&as, LSMI__TRAIN_X2, &b, NULL, LSMI_ERR_FORMAT,
            "big: strides of shape (8, 2) overflow");
  b = f32_array("big", v, 8, 2);
  b.data_len -= 1;
  put_fails(&as, LSMI__TRAIN_X2, &b, NULL, LSMI_ERR_FORMAT,
            "big with shape (8, 2) (float32) needs more bytes than the file "
            "holds for it (63)");
  b = f32_array("big", v, 8, 2);
  b.stride[0] = 0; /* every row the first: 16 elements in 8 bytes */
  b.data_len = 8;
  put_fails(&as, LSMI__TRAIN_X2, &b, NULL, LSMI_ERR_UNSUPPORTED,
            "big with shape (8, 2) shows more elements than its 8 bytes hold "
            "(an expanded or overlapping view); save it with .contiguous()");
  /* An empty array needs no bytes. */
  lim.max_dims = 2;
  b = f32_array("none", v, 0, 2);
  b.data_len = 0;
  assert_int_equal(lsmi__arrays_put(&as, LSMI__TRAIN_X2, &b, &lim, NULL), 0);
  lsmi__arrays_free(&as);
}

static void test_arrays_own(void **state) {
  (void)state;
  lsmi__arrays_t as;
  lsmi__arrays_init(&as);
  lsmi_error_t err;
  for (int i = 0; i < LSMI__MAX_OWNED; i++)
    assert_int_equal(lsmi__arrays_own(&as, malloc(8), &err), 0);
  /* The 65th is freed (the sanitizers see no leak) and refused. */
  assert_int_equal(lsmi__arrays_own(&as, malloc(8), &err), LSMI_ERR_LIMIT);
  assert_string_equal(err.message, "too many buffers (internal limit 64)");
  lsmi__arrays_free(&as);
  assert_int_equal(as.n_owned, 0);
  lsmi__arrays_free(&as);
}

/* Every dtype converts to the double it stores, in either byte order. */
static void test_array_get(void **state) {
  (void)state;
  static const struct {
    lsmi__dtype_t dt;
    unsigned char le[8]; /* little endian */
    double want;
  } cases[] = {
      {LSMI__DT_BOOL, {2}, 1},
      {LSMI__DT_U8, {200}, 200},
      {LSMI__DT_I8, {200}, -56},
      {LSMI__DT_U16, {0x34, 0x12}, 0x1234},
      {LSMI__DT_I16, {0xFE, 0xFF}, -2},
      {LSMI__DT_U32, {0, 0, 0, 0x80}, 2147483648.0},
      {LSMI__DT_I32, {0xFF, 0xFF, 0xFF, 0xFF}, -1},
      {LSMI__DT_U64, {0, 0, 0, 0, 0, 0, 0, 0x80}, 9223372036854775808.0},
      {LSMI__DT_I64, {0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, -3},
      {LSMI__DT_F16, {0x00, 0x3E}, 1.5},
      {LSMI__DT_F16, {0x00, 0xC0}, -2},
      {LSMI__DT_F16, {0x01, 0x00}, 5.9604644775390625e-08}, /* 2^-24 */
      {LSMI__DT_F16, {0x00, 0x7C}, INFINITY},
      {LSMI__DT_BF16, {0x80, 0x3F}, 1},
      {LSMI__DT_BF16, {0xC0, 0xC0}, -6},
      {LSMI__DT_F32, {0, 0, 0xC0, 0x3F}, 1.5},
      {LSMI__DT_F64, {0, 0, 0, 0, 0, 0, 0x04, 0xC0}, -2.5},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t es = lsmi__dtype_size(cases[i].dt);
    unsigned char buf[16], be[8];
    for (size_t k = 0; k < es; k++)
      be[k] = cases[i].le[es - 1 - k];
    memset(buf, 0xAA, sizeof buf);
    memcpy(buf + 3, cases[i].le, es);
    lsmi__array_t a;
    memset(&a, 0, sizeof a);
    a.dtype = cases[i].dt;
    a.data = buf;
    a.data_len = sizeof buf;
    assert_true(lsmi__array_get(&a, 3) == cases[i].want);
    memcpy(buf + 3, be, es);
    a.big_endian = true;
    assert_true(lsmi__array_get(&a, 3) == cases[i].want);
  }
  /* A half NaN stays a NaN. */
  unsigned char h[2] = {0x01, 0x7C};
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  a.dtype = LSMI__DT_F16;
  a.data = h;
  a.data_len = 2;
  assert_true(isnan(lsmi__array_get(&a, 0)));
  assert_string_equal(lsmi__dtype_name(LSMI__DT_BF16), "bfloat16");
  assert_string_equal(lsmi__dtype_name((lsmi__dtype_t)99), "?");
  assert_int_equal(lsmi__dtype_size(LSMI__DT_BF16), 2);
  char shp[32];
  a.ndim = 1;
  a.shape[0] = 3;
  lsmi__shape_str(&a, shp, sizeof shp);
  assert_string_equal(shp, "(3,)");
}

/* ---- assembly ---- */

/* Arrays of a dataset (8 train rows, n_val val rows; d1 = 2, d2 = 1, two
 * classes) over static buffers, into as. */
static void fill_arrays(lsmi__arrays_t *as, uint64_t n_val) {
  static float x1[16 * 2], x2[16], y[16];
  for (int i = 0; i < 16; i++) {
    x1[2 * i] = (float)i;
    x1[2 * i + 1] = (float)-i;
    x2[i] = (float)i / 4;
    y[i] = (float)(i % 2);
  }
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__arrays_init(as);
  lsmi__array_t a[6] = {
      f32_array("tx1", x1, 8, 2),         f32_array("tx2", x2, 8, 1),
      f32_array("ty", y, 8, 0),           f32_array("vx1", x1 + 16, n_val, 2),
      f32_array("vx2", x2 + 8, n_val, 1), f32_array("vy", y + 8, n_val, 0)};
  for (int r = 0; r < 6; r++)
    assert_int_equal(lsmi__arrays_put(as, r, &a[r], &lim, NULL), 0);
}

/* lsmi__assemble of as must fail with status, the field and message. */
static void assemble_fails(const lsmi__arrays_t *as, int status,
                           const char *field, const char *msg) {
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi_dataset_t *ds = (lsmi_dataset_t *)1;
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  int rc = lsmi__assemble(as, &lim, &ds, NULL, &err);
  assert_true(io_failed_as(rc, ds, &err, "assemble", status, field, msg));
}

static void test_assemble(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi__arrays_t as;
  lsmi_dataset_t *ds;
  lsmi_error_t err;
  fill_arrays(&as, 4);
  assert_int_equal(lsmi__assemble(&as, &lim, &ds, NULL, &err), 0);
  assert_int_equal(ds->train.n, 8);
  assert_int_equal(ds->val.n, 4);
  assert_int_equal(ds->classes, 2);
  assert_true(ds->val.x[3 * 1 + 1] == -9.0f); /* vx1 row 1 is x1 row 9 */
  assert_true(ds->val.x[3 * 1 + 2] == 9.0f / 4);
  lsmi_dataset_destroy(ds);
  /* An empty val split is no val split. */
  fill_arrays(&as, 0);
  assert_int_equal(lsmi__assemble(&as, &lim, &ds, NULL, &err), 0);
  assert_int_equal(ds->val.n, 0);
  lsmi_dataset_destroy(ds);
  fill_arrays(&as, 4);
  as.have[LSMI__VAL_X2] = false;
  assemble_fails(&as, LSMI_ERR_MISSING, "val_x2",
                 "missing key val_x2 (or val_modal_2_features): the val split "
                 "is incomplete");
  fill_arrays(&as, 4);
  as.role[LSMI__VAL_X1].shape[1] = 1;
  assemble_fails(&as, LSMI_ERR_SHAPE, "vx1",
                 "vx1 has shape (4, 1) but tx1 has shape (8, 2): the feature "
                 "dimensions differ");
  fill_arrays(&as, 4);
  as.role[LSMI__VAL_Y].shape[0] = 3;
  assemble_fails(&as, LSMI_ERR_SHAPE, "vy",
                 "vy has shape (3,) but vx1 has shape (4, 2): the row counts "
                 "differ");
  fill_arrays(&as, 4);
  for (int r = 0; r < 3; r++)
    as.role[r].shape[0] = 0;
  assemble_fails(&as, LSMI_ERR_SHAPE, "tx1", "tx1 has no rows");
  fill_arrays(&as, 4);
  as.role[LSMI__TRAIN_X2].shape[1] = 0;
  as.role[LSMI__VAL_X2].shape[1] = 0;
  assemble_fails(&as, LSMI_ERR_SHAPE, "tx2", "tx2 has no feature columns");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_detect),
      cmocka_unit_test(test_dispatch_torch_zip),
      cmocka_unit_test(test_seen_keys),
      cmocka_unit_test(test_key_roles),
      cmocka_unit_test(test_notes),
      cmocka_unit_test(test_val_fraction_split),
      cmocka_unit_test(test_val_fraction_errors),
      cmocka_unit_test(test_read_path_errors),
      cmocka_unit_test(test_read_buffer_errors),
      cmocka_unit_test(test_arrays_put),
      cmocka_unit_test(test_arrays_own),
      cmocka_unit_test(test_array_get),
      cmocka_unit_test(test_assemble),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
