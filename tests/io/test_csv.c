/*
 * test_csv.c — io/csv.c: CSV datasets (header by column name, a row per
 * sample, an optional split column).
 *
 * Besides the fixtures of tests/data/, each check of the header, of a row
 * and of its fields is provoked here with a few lines of text, and the
 * message must name the line and column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"

static void test_good_file(void **state) {
  (void)state;
  static const io_good_t good[] = {{"good.csv", LSMI_FORMAT_CSV}};
  io_check_good(good, 1);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_nan.csv", LSMI_ERR_DATA, "x1", "line 7"},
      {"bad_ragged.csv", LSMI_ERR_FORMAT, NULL, "line 5"},
      {"bad_noy.csv", LSMI_ERR_MISSING, "y",
       "CSV header has no y column (labels); it holds id, split, label, x1_0, "
       "x1_1, x1_2, x2_0, x2_1: name the columns with --y COLUMN --x1 PREFIX "
       "--x2 PREFIX (upload: ?y=&x1=&x2=)"},
      {"bad_semicolon.csv", LSMI_ERR_MISSING, "y", "separated by commas"},
      {"bad_quote.csv", LSMI_ERR_FORMAT, NULL, "unterminated quote"},
      {"bad_split.csv", LSMI_ERR_DATA, "split", "holdout"},
      {"bad_text.csv", LSMI_ERR_DATA, "x1", "\"abc\" is not a number"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.csv");
}

#define CSV(s, status, field, message)                                         \
  io_expect_text(LSMI_FORMAT_CSV, s, status, field, message)

/* Eight rows of two classes, after a header that names them. */
#define ROWS "0,1,2\n1,3,4\n0,5,6\n1,7,8\n0,1,2\n1,3,4\n0,5,6\n1,7,8\n"

static void test_header(void **state) {
  (void)state;
  CSV("y,x1,\"x2\n" ROWS, LSMI_ERR_FORMAT, "",
      "CSV header has an unterminated quote");
  CSV("y,y,x1,x2\n", LSMI_ERR_FORMAT, "y", "CSV header has two y columns");
  CSV("y,split,split,x1,x2\n", LSMI_ERR_FORMAT, "split",
      "CSV header has two split columns");
  /* The last error of the header is the one reported. */
  CSV("y,y,split,split,x1,x2\n", LSMI_ERR_FORMAT, "split", "two split");
  CSV("y,y,x1,\"x2\n", LSMI_ERR_FORMAT, "", "unterminated quote");
  CSV("y,y,id,id,x1,x2\n", LSMI_ERR_FORMAT, "id",
      "CSV header has two id "
      "columns");
  CSV("y,x2_0\n0,1\n", LSMI_ERR_MISSING, "x1_*",
      "CSV header has no x1_* feature columns (named x1_0, x1_1, ...); it "
      "holds y, x2_0: name the columns with --y COLUMN --x1 PREFIX --x2 "
      "PREFIX (upload: ?y=&x1=&x2=)");
  CSV("y,x1_0,x1_1\n0,1,2\n", LSMI_ERR_MISSING, "x2_*",
      "CSV header has no x2_* feature columns (named x2_0, x2_1, ...)");
  CSV("a\tb\n1\t2\n", LSMI_ERR_MISSING, "y",
      "CSV header has no y column (labels); fields must be separated by "
      "commas, not semicolons or tabs");
  CSV("x1,x2\n1,2\n", LSMI_ERR_MISSING, "y",
      "CSV header has no y column (labels)");
}

static void test_header_limits(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_dims = 2;
  const char *wide = "y,x1_0,x1_1,x1_2,x2_0\n0,1,2,3,4\n";
  io_expect(wide, strlen(wide), LSMI_FORMAT_CSV, &lim, LSMI_ERR_LIMIT, "x1_*",
            "CSV has 3 + 1 feature columns; the limit is 2 each");
  /* More than 2 * max_dims + 64 columns of any kind. The limit is looked
   * at only when the column list grows (at 16, 32, 64, 128 columns): 130
   * columns are caught, 70 would not be yet. */
  char many[1024] = "y";
  for (int i = 0; i < 130; i++)
    strcat(many, ",note");
  io_expect(many, strlen(many), LSMI_FORMAT_CSV, &lim, LSMI_ERR_LIMIT, "",
            "CSV header has more than 68 columns");
}

static void test_rows(void **state) {
  (void)state;
  CSV("y,x1,x2\n" ROWS "0,\"1,2\n", LSMI_ERR_FORMAT, "",
      "CSV line 10 has an unterminated quote");
  CSV("y,x1,x2\n0,1,2,3\n", LSMI_ERR_FORMAT, "",
      "CSV line 2 has more fields than the header (3)");
  CSV("y,x1,x2\n0,1,2\n\n1,2\n", LSMI_ERR_FORMAT, "",
      "CSV line 4 has 2 fields; the header has 3");
  CSV("y,x1,x2\n0,,2\n", LSMI_ERR_DATA, "x1",
      "CSV line 2, column 2 (x1): \"\" is not a number");
  CSV("y,x1,x2\n0,1,2x\n", LSMI_ERR_DATA, "x2",
      "CSV line 2, column 3 (x2): \"2x\" is not a number");
  char longy[400] = "y,x1,x2\n";
  memset(longy + strlen(longy), 'a', 300);
  strcat(longy, ",1,2\n");
  CSV(longy, LSMI_ERR_DATA, "y",
      "CSV line 2, column 1 (y) is longer than 255 bytes");
  CSV("y,x1,x2\n0,-inf,2\n", LSMI_ERR_DATA, "x1",
      "CSV line 2, column 2 (x1): -inf is not finite");
  CSV("y,x1,x2\n0,1e999,2\n", LSMI_ERR_DATA, "x1", "1e999 is not finite");
  /* A field longer than 255 bytes is not a number, whatever it holds. */
  char longf[400] = "y,x1,x2\n0,";
  memset(longf + strlen(longf), '1', 300);
  strcat(longf, ",2\n");
  CSV(longf, LSMI_ERR_DATA, "x1",
      "CSV line 2, column 2 (x1): \"11111111111111111111111111111111\" is "
      "not a number");
  CSV("split,y,x1,x2\nholdout,0,1,2\n", LSMI_ERR_DATA, "split",
      "CSV line 2: split is \"holdout\", not train or val");
  CSV("split,y,x1,x2\nval,0,1,2\nval,1,3,4\n", LSMI_ERR_SHAPE, "train_y",
      "CSV has no train rows");
  CSV("y,x1,x2\n", LSMI_ERR_SHAPE, "train_y", "CSV has no train rows");
}

static void test_row_limit(void **state) {
  (void)state;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_rows = 3;
  const char *csv = "split,y,x1,x2\nval,0,1,2\nval,1,1,2\nval,0,1,2\n"
                    "val,1,1,2\n";
  io_expect(csv, strlen(csv), LSMI_FORMAT_CSV, &lim, LSMI_ERR_LIMIT, "val_y",
            "CSV has more than 3 val rows");
}

/* A byte order mark, CRLF, blank lines, quoted fields with "" inside,
 * spaces around numbers, ignored columns, split names in any case. */
static void test_forms(void **state) {
  (void)state;
  const char *csv =
      "\xEF\xBB\xBF\r\n"
      "id,split,\"y\",x1_a,x1_b,x2,note\r\n"
      "\r\n"
      "1,TRAIN,0, 1.5 ,\"2\",3,\"a \"\"quoted\"\" note, with a comma\"\r\n"
      "2,train,1,4,5,6,\r\n"
      "3,Train,0,7,8,9,x\r\n"
      "4,train,1,10,11,12,x\r\n"
      "5,Validation,0,13,14,15,x\r\n"
      "   \t\n"
      "6,valid,1,16,17,18,x\r\n"
      "7,TEST,1,19,20,21,x\n"
      "8,val,0,22,23,24,\"multi\nline\"";
  lsmi_dataset_t *ds = io_must_read(csv, strlen(csv), LSMI_FORMAT_UNKNOWN, 0);
  assert_int_equal(ds->train.n, 4);
  assert_int_equal(ds->val.n, 4);
  assert_int_equal(ds->d1, 2);
  assert_int_equal(ds->d2, 1);
  static const float train[4][3] = {
      {1.5f, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}};
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      assert_true(ds->train.x[3 * i + j] == train[i][j]);
  assert_true(ds->val.x[3 * 3 + 2] == 24);
  assert_int_equal(ds->val.y[2], 1);
  lsmi_dataset_destroy(ds);
}

/* The caller's names: a label column, prefixes of the feature columns, an
 * id column; and what the header holds when they are not found. */
static void test_caller_names(void **state) {
  (void)state;
  const char *csv = "label,img_0,img_1,imgs,txt0,sample,note\n"
                    "cat,1,2,9,3,a1,x\n"
                    "dog,4,5,9,6,\"a, 2\",x\n"
                    "cat,7,8,9,9,a3,x\n"
                    "dog,10,11,9,12,a4,x\n"
                    "cat,13,14,9,15,a5,x\n"
                    "dog,16,17,9,18,a6,x\n";
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.x1 = "img";
  opt.x2 = "txt";
  opt.y = "label";
  opt.id = "sample";
  opt.val_fraction = 0.34;
  lsmi_dataset_t *ds =
      io_must_read_opts(csv, strlen(csv), LSMI_FORMAT_CSV, &opt, NULL);
  assert_int_equal(ds->d1, 2); /* img_0, img_1; not imgs */
  assert_int_equal(ds->d2, 1);
  assert_true(ds->val_drawn);
  assert_string_equal(ds->class_names[1], "dog");
  for (int s = 0; s < 2; s++) {
    lsmi_split_t *sp = s ? &ds->val : &ds->train;
    for (size_t i = 0; i < sp->n; i++) {
      /* the row is the data line, the id the sample column */
      static const char *const ids[6] = {"a1", "a, 2", "a3", "a4", "a5", "a6"};
      assert_string_equal(sp->id[i], ids[sp->row[i]]);
      assert_true(sp->x[3 * i] == 1 + 3 * (float)sp->row[i]);
    }
  }
  lsmi_dataset_destroy(ds);
  opt.y = "class";
  lsmi_error_t err;
  assert_int_equal(io_read_opts(csv, strlen(csv), LSMI_FORMAT_CSV, NULL, &opt,
                                NULL, NULL, &err),
                   LSMI_ERR_MISSING);
  assert_string_equal(err.message,
                      "CSV header has no column class (given for y); it holds "
                      "label, img_0, img_1, imgs, txt0, sample, note");
  opt.y = "label";
  opt.x2 = "tx_";
  assert_int_equal(io_read_opts(csv, strlen(csv), LSMI_FORMAT_CSV, NULL, &opt,
                                NULL, NULL, &err),
                   LSMI_ERR_MISSING);
  assert_string_equal(err.message,
                      "CSV header has no column tx_ or tx_... (given for x2); "
                      "it holds label, img_0, img_1, imgs, txt0, sample, note");
  opt.x2 = "img_1";
  assert_int_equal(io_read_opts(csv, strlen(csv), LSMI_FORMAT_CSV, NULL, &opt,
                                NULL, NULL, &err),
                   LSMI_ERR_FORMAT);
  assert_string_equal(err.message,
                      "CSV column img_1 matches both x1 (img) and x2 (img_1)");
}

/* Labels that are all numbers are numbers ("1.0" is 1), else text; ids of
 * integers are marked numeric. */
static void test_label_and_id_text(void **state) {
  (void)state;
  const char *csv = "id,y,x1,x2\n10,1.0,1,1\n11,2,2,2\n12,1,3,3\n13,2,4,4\n"
                    "14,1,5,5\n15,2,6,6\n";
  lsmi_dataset_t *ds = io_must_read(csv, strlen(csv), LSMI_FORMAT_CSV, 0.34);
  assert_true(ds->class_names_numeric);
  assert_string_equal(ds->class_names[0], "1");
  assert_true(ds->id_numeric);
  lsmi_dataset_destroy(ds);
  csv = "id,y,x1,x2\n010,1,1,1\n11,x,2,2\n12,1,3,3\n13,x,4,4\n14,1,5,5\n"
        "15,x,6,6\n";
  ds = io_must_read(csv, strlen(csv), LSMI_FORMAT_CSV, 0.34);
  assert_false(ds->class_names_numeric);
  assert_string_equal(ds->class_names[0], "1");
  assert_string_equal(ds->class_names[1], "x");
  assert_false(ds->id_numeric); /* "010" is no integer's text */
  lsmi_dataset_destroy(ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_file),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
      cmocka_unit_test(test_header),
      cmocka_unit_test(test_header_limits),
      cmocka_unit_test(test_rows),
      cmocka_unit_test(test_row_limit),
      cmocka_unit_test(test_forms),
      cmocka_unit_test(test_caller_names),
      cmocka_unit_test(test_label_and_id_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
