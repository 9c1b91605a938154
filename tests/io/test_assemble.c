/*
 * test_assemble.c — io/assemble.c: the arrays of any reader made into a
 * dataset. The files of tests/data/user_* are saved as researchers save
 * them (tests/data/make_fixtures.py, real NumPy and PyTorch): each case of
 * issue 16 reads, with the options a user would give, to the dataset it
 * must, or is refused with a message that says what the file holds and
 * what fixes it. Then the steps one by one: labels of any values, one-hot
 * rows, features flattened, ids and file positions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "io_test.h"

/* A file, the options it is read with, and what must come of it. */
typedef struct user_case {
  const char *file;
  const char *x1, *x2, *y, *id;
  bool vf; /* val_fraction 0.2, as given by the user */
  int status;
  const char *message; /* a substring of the error, or of a note */
  size_t n_train, n_val, d1;
  const char *names; /* the class names, joined by ',', or NULL */
  const char *id0;   /* train's first id, or NULL */
} user_case_t;

/* The class names of ds joined by ',' into buf (or "" for none). */
static const char *joined_names(const lsmi_dataset_t *ds, char *buf,
                                size_t len) {
  buf[0] = '\0';
  for (int c = 0; ds->class_names && c < ds->classes; c++) {
    size_t k = strlen(buf);
    snprintf(buf + k, len - k, "%s%s", c ? "," : "", ds->class_names[c]);
  }
  return buf;
}

static void check_case(const user_case_t *c) {
  char path[256];
  snprintf(path, sizeof path, DATA "%s", c->file);
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.x1 = c->x1;
  opt.x2 = c->x2;
  opt.y = c->y;
  opt.id = c->id;
  opt.val_fraction = 0.2; /* what lsmi fit and the API draw by default */
  opt.val_fraction_given = c->vf;
  lsmi_dataset_t *ds = NULL;
  lsmi_read_info_t info;
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  int rc = lsmi_dataset_read_ex(path, NULL, &opt, &ds, &info, &err);
  if (c->status) {
    assert_true(
        io_failed_as(rc, ds, &err, c->file, c->status, NULL, c->message));
    return;
  }
  if (rc)
    fail_msg("%s: %s: %s", c->file, lsmi_status_name(rc), err.message);
  char names[256];
  joined_names(ds, names, sizeof names);
  if (ds->train.n != c->n_train || ds->val.n != c->n_val || ds->d1 != c->d1 ||
      ds->classes != 3 || strcmp(names, c->names ? c->names : "") != 0)
    fail_msg("%s: train %zu val %zu d1 %zu classes %d names '%s'", c->file,
             ds->train.n, ds->val.n, ds->d1, ds->classes, names);
  /* 18 rows: val is the file's own 6, or lsmi's draw of 3 */
  assert_int_equal(ds->val_drawn, ds->val.n == 3);
  if (c->id0 ? !ds->train.id || strcmp(ds->train.id[0], c->id0) != 0
             : ds->train.id != NULL)
    fail_msg("%s: first id '%s', want '%s'", c->file,
             ds->train.id ? ds->train.id[0] : "(none)",
             c->id0 ? c->id0 : "(none)");
  bool noted = !c->message;
  for (int k = 0; k < info.nnotes; k++)
    noted = noted || strstr(info.notes[k], c->message) != NULL;
  if (!noted)
    fail_msg("%s: no note '%s' (%d notes)", c->file, c->message, info.nnotes);
  lsmi_dataset_destroy(ds);
}

static void test_user_files(void **state) {
  (void)state;
  static const user_case_t cases[] = {
      /* which array is which: names lsmi knows, with val drawn */
      {"user_xy.pt", .n_train = 15, .n_val = 3, .d1 = 3},
      {"user_positional.npz", .n_train = 15, .n_val = 3, .d1 = 3},
      {"user_list.pt", .n_train = 15, .n_val = 3, .d1 = 3},
      {"user_tuple.pt", .n_train = 15, .n_val = 3, .d1 = 3},
      {"user_nested.pt", .n_train = 12, .n_val = 6, .d1 = 3},
      {"good_trainonly.npz", .n_train = 9, .n_val = 3, .d1 = 3},
      /* other names only with the options */
      {"user_named.npz", .status = LSMI_ERR_MISSING,
       .message = "the file holds feat_a, feat_b, label: say which array is "
                  "which with --x1 KEY --x2 KEY --y KEY"},
      {"user_named.npz", "feat_a", "feat_b", "label", .n_train = 15, .n_val = 3,
       .d1 = 3},
      {"user_named.npz", "feat_a", "feat_c", "label",
       .status = LSMI_ERR_MISSING,
       .message = "missing train_x2: no key feat_c or train_feat_c (given "
                  "for x2); the file holds feat_a, feat_b, label"},
      {"user_prefixed.csv", .status = LSMI_ERR_MISSING,
       .message = "it holds label, img_0, img_1, img_2, txt_0, txt_1: name "
                  "the columns with --y COLUMN --x1 PREFIX --x2 PREFIX"},
      {"user_prefixed.csv", "img_", "txt_", "label", .n_train = 15, .n_val = 3,
       .d1 = 3},
      /* labels of any values */
      {"user_labels_1based.npz", .n_train = 12, .n_val = 6, .d1 = 3,
       .names = "1,2,3"},
      {"user_labels_sparse.npz", .n_train = 12, .n_val = 6, .d1 = 3,
       .names = "3,7,42"},
      {"user_labels_str.npz", .n_train = 12, .n_val = 6, .d1 = 3,
       .names = "bird,cat,dog"},
      {"user_labels_str.pt", .n_train = 12, .n_val = 6, .d1 = 3,
       .names = "bird,cat,dog"},
      {"user_labels_str.json", .n_train = 12, .n_val = 6, .d1 = 3,
       .names = "bird,cat,dog"},
      {"user_labels_str.csv", .n_train = 12, .n_val = 6, .d1 = 3,
       .names = "bird,cat,dog", .id0 = "s-100"},
      /* one-hot labels decoded; soft ones refused */
      {"user_onehot.npz",
       .message = "train_y: one-hot rows (12, 3) read as "
                  "class indices (argmax)",
       .n_train = 12, .n_val = 6, .d1 = 3},
      {"user_onehot.pt",
       .message = "val_y: one-hot rows (6, 3) read as "
                  "class indices (argmax)",
       .n_train = 12, .n_val = 6, .d1 = 3},
      {"user_soft.npz", .status = LSMI_ERR_SHAPE,
       .message = "train_y has shape (12, 3) but row 0 is not one-hot (a "
                  "single 1, the rest 0); labels are (n,) values or (n, C) "
                  "one-hot rows"},
      /* (n, 4, 4) features flattened, and said so */
      {"user_feat3d.npz",
       .message = "train_x1: features of shape (12, 4, 4) "
                  "flattened in C order to (12, 16)",
       .n_train = 12, .n_val = 6, .d1 = 16},
      {"user_feat3d.pt",
       .message = "val_x1: features of shape (6, 4, 4) "
                  "flattened in C order to (6, 16)",
       .n_train = 12, .n_val = 6, .d1 = 16},
      /* pickles that are not torch.save zips */
      {"user_plain.pkl", .status = LSMI_ERR_UNSUPPORTED,
       .message = "a plain Python pickle (pickle.dump) is not read"},
      {"legacy.pt", .status = LSMI_ERR_UNSUPPORTED,
       .message = "re-save it with a current torch.save"},
      /* ids: by name, by the option, through lsmi's val split */
      {"user_ids.npz", .n_train = 12, .n_val = 6, .d1 = 3, .id0 = "1000"},
      {"user_ids_str.npz", .n_train = 15, .n_val = 3, .d1 = 3, .id0 = "s-100"},
      {"user_ids.pt", .n_train = 15, .n_val = 3, .d1 = 3, .id0 = "s-100"},
      {"user_ids.csv", .id = "sample_id", .n_train = 15, .n_val = 3, .d1 = 3,
       .id0 = "r0, \"bird\""},
      {"good.csv", .n_train = 12, .n_val = 6, .d1 = 3,
       .id0 = "row 0, \"quoted\""},
      /* a val fraction that cannot apply */
      {"good.npz", .vf = true, .status = LSMI_ERR_INVALID,
       .message = "val_fraction 0.2 cannot apply: the file has its own val "
                  "split (6 rows); leave val_fraction out to use it"},
      {"good_trainonly.csv", .vf = true, .n_train = 9, .n_val = 3, .d1 = 3,
       .id0 = "row 0, \"quoted\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_case(&cases[i]);
}

/* Files that hold the fixture's numbers another way read to its hash. */
static void test_same_numbers(void **state) {
  (void)state;
  static const io_good_t good[] = {
      {"user_nested.pt", LSMI_FORMAT_PT},
      {"user_onehot.npz", LSMI_FORMAT_NPZ},
      {"user_onehot.pt", LSMI_FORMAT_PT},
      {"user_ids.npz", LSMI_FORMAT_NPZ},
      /* 0 .. 2 as the class indices of 1 .. 3, "bird" .. "dog" */
      {"user_labels_1based.npz", LSMI_FORMAT_NPZ},
      {"user_labels_str.npz", LSMI_FORMAT_NPZ},
      {"user_labels_str.pt", LSMI_FORMAT_PT},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
  /* The transposed torch view flattens to the numbers of the .npz. */
  char a[65], b[65];
  io_hash_of(DATA "user_feat3d.npz", a);
  io_hash_of(DATA "user_feat3d.pt", b);
  assert_string_equal(a, b);
}

/* ---- labels ---- */

/* A dataset of n rows whose labels are y (n doubles) and features 0 .. n-1,
 * read as a train-only JSON with val_fraction 0: the status, *ds. */
static int read_labels(const char *ylist, lsmi_dataset_t **ds,
                       lsmi_error_t *err, const lsmi_limits_t *lim) {
  char j[1024];
  snprintf(j, sizeof j,
           "{\"train\": {\"x1\": [[0],[1],[2],[3],[4],[5]], \"x2\": "
           "[[0],[1],[2],[3],[4],[5]], \"y\": %s}, \"val\": {\"x1\": [[0]], "
           "\"x2\": [[0]], \"y\": [%s]}}",
           ylist, ylist[1] == '"' ? "\"b\"" : "7");
  return io_read_opts(j, strlen(j), LSMI_FORMAT_JSON, lim, NULL, ds, NULL, err);
}

static void test_label_values(void **state) {
  (void)state;
  lsmi_dataset_t *ds;
  lsmi_error_t err;
  /* Sorted numerically, not as text; the val label counts too. */
  assert_int_equal(read_labels("[10, 7, 10, 7, 10, 7]", &ds, &err, NULL), 0);
  assert_int_equal(ds->classes, 2);
  assert_string_equal(ds->class_names[0], "7");
  assert_int_equal(ds->train.y[0], 1);
  assert_int_equal(ds->val.y[0], 0);
  lsmi_dataset_destroy(ds);
  assert_int_equal(read_labels("[-1, 0, -1, 0, -1, 0]", &ds, &err, NULL),
                   LSMI_ERR_DATA);
  assert_string_equal(err.message, "class 7 has 0 rows in train; every class "
                                   "needs at least 2");
  /* 0 .. C-1 stay what they are: no class names. */
  assert_int_equal(read_labels("[0, 1, 7, 0, 1, 7]", &ds, &err, NULL), 0);
  assert_non_null(ds->class_names);
  lsmi_dataset_destroy(ds);
  assert_int_equal(read_labels("[\"b\", \"a\", \"b\", \"a\", \"b\", \"a\"]",
                               &ds, &err, NULL),
                   0);
  assert_string_equal(ds->class_names[1], "b");
  assert_false(ds->class_names_numeric);
  lsmi_dataset_destroy(ds);
  assert_int_equal(read_labels("[0, 1, 0.5, 0, 1, 0]", &ds, &err, NULL),
                   LSMI_ERR_DATA);
  assert_string_equal(err.message,
                      "train.y has a non-integral label 0.5 at row 2");
  assert_int_equal(read_labels("[0, 1, 1e17, 0, 1, 0]", &ds, &err, NULL),
                   LSMI_ERR_DATA);
  assert_string_equal(err.message,
                      "train.y has label 100000000000000000 at row 2, beyond "
                      "2^53");
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_classes = 2;
  assert_int_equal(read_labels("[0, 1, 2, 0, 1, 2]", &ds, &err, &lim),
                   LSMI_ERR_LIMIT);
  assert_string_equal(err.message, "train.y has 4 distinct labels; at most 2 "
                                   "classes are allowed (max_classes)");
}

/* ---- ids and rows ---- */

/* Ids must be there for every split or none; their rows count like the
 * others'. */
static void test_ids(void **state) {
  (void)state;
  io_expect_text(LSMI_FORMAT_JSON,
                 "{\"train\": {\"x1\": [[0],[1]], \"x2\": [[0],[1]], \"y\": "
                 "[0, 1], \"id\": [1, 2]}, \"val\": {\"x1\": [[0]], \"x2\": "
                 "[[0]], \"y\": [0]}}",
                 LSMI_ERR_MISSING, "val_id",
                 "the file has ids for one split only: val_id is missing");
  io_expect_text(LSMI_FORMAT_JSON,
                 "{\"train\": {\"x1\": [[0],[1]], \"x2\": [[0],[1]], \"y\": "
                 "[0, 1], \"id\": [1]}}",
                 LSMI_ERR_SHAPE, "train.id",
                 "train.id has shape (1,) but train.x1 has shape (2, 1): the "
                 "row counts differ");
  /* Non-integral numbers are ids too, as text. */
  const char *j = "{\"x1\": [[0],[1],[2],[3],[4],[5]], \"x2\": [[0],[1],[2],"
                  "[3],[4],[5]], \"y\": [0, 1, 0, 1, 0, 1], \"id\": [0.5, "
                  "1, 2, 3, 4, 5]}";
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.val_fraction = 0.34;
  lsmi_read_info_t info;
  lsmi_dataset_t *ds =
      io_must_read_opts(j, strlen(j), LSMI_FORMAT_JSON, &opt, &info);
  assert_false(ds->id_numeric);
  bool half = false;
  for (int s = 0; s < 2; s++) {
    lsmi_split_t *sp = s ? &ds->val : &ds->train;
    for (size_t i = 0; i < sp->n; i++) {
      half = half || strcmp(sp->id[i], "0.5") == 0;
      /* x1 is the row's position */
      assert_true(sp->x[2 * i] == (float)sp->row[i]);
    }
  }
  assert_true(half);
  lsmi_dataset_destroy(ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_files),
      cmocka_unit_test(test_same_numbers),
      cmocka_unit_test(test_label_values),
      cmocka_unit_test(test_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
