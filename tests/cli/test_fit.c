/*
 * test_fit.c — cli/cmd_fit.c: `lsmi fit` called as lsmi_fit_main with
 * argument vectors. Its exit statuses, every usage error, the summary on
 * stdout (table and --json, with the provenance), the progress on stderr
 * (plain lines, and one line in place on a terminal), the flags that say
 * which array is which, the val split drawn for a file without one, the
 * outputs' row, id and label columns, --out checked before the fit, both
 * --out formats and stdout, null for what JSON cannot hold, and the
 * durable write: the rows appear whole under their name, and no temp file
 * is left after a success or a failure.
 *
 * The fits are small (300 rows of the gaussian demo, 2+2 epochs), so the
 * file runs in well under a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cmd.h"
#include "lsmi_io.h"
#include "run.h"
#include "sha256.h"

static char demo[128]; /* 300 rows of the gaussian demo: 240 train, 60 val */

/* Scratch directory and the demo file, written once for every test. */
static int group_setup(void **state) {
  if (cli_scratch_setup(state) != 0)
    return -1;
  snprintf(demo, sizeof demo, "%s/demo.npz", cli_dir);
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err = {0};
  if (lsmi_synth(LSMI_SYNTH_GAUSSIAN, 300, 1, &ds, &err) != LSMI_OK ||
      lsmi_dataset_write_npz(ds, demo, &err) != LSMI_OK) {
    fprintf(stderr, "setup: %s\n", err.message);
    lsmi_dataset_destroy(ds);
    return -1;
  }
  lsmi_dataset_destroy(ds);
  return 0;
}

/* lsmi fit with the given arguments and two epochs of each family. */
#define FIT(...)                                                               \
  cli_run(lsmi_fit_main, "fit", __VA_ARGS__, "--epochs-discriminator", "2",    \
          "--epochs-entropy", "2", NULL)

/* Temp files a write could leave: ".NAME.tmp.XXXXXX" (common/durable.h),
 * or NAME.tmp.PID as --out once named them. */
static int temp_files(void) { return cli_count_entries(cli_dir, ".tmp"); }

/* ---- usage -------------------------------------------------------------- */

static void test_help_lists_every_parameter(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_fit_main, "fit", "--help", NULL);
  assert_int_equal(r.rc, 0);
  assert_contains(r.out, "usage: lsmi fit FILE");
  assert_contains(r.out, "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2");
  size_t n;
  const lsmi_param_desc_t *t = lsmi_params_table(&n);
  assert_true(n >= 10);
  for (size_t i = 0; i < n; i++) {
    char flag[64];
    snprintf(flag, sizeof flag, "  --%s ", t[i].name);
    for (char *c = flag; *c; c++)
      if (*c == '_')
        *c = '-';
    assert_contains(r.out, flag);
  }
  assert_contains(r.out, "[uniform]");
  assert_contains(r.out, "[true]");
  assert_string_equal(r.err, "");
  cli_run_free(&r);

  r = cli_run(lsmi_fit_main, "fit", "-h", NULL);
  assert_int_equal(r.rc, 0);
  assert_contains(r.out, "usage: lsmi fit");
  cli_run_free(&r);
}

static void test_no_file_is_a_usage_error(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_fit_main, "fit", NULL);
  assert_int_equal(r.rc, 2);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "usage: lsmi fit FILE");
  cli_run_free(&r);

  r = cli_run(lsmi_fit_main, "fit", "--quiet", "--json", NULL);
  assert_int_equal(r.rc, 2);
  assert_contains(r.err, "usage: lsmi fit FILE");
  cli_run_free(&r);
}

static void test_unknown_flags(void **state) {
  (void)state;
  static const char *spaced[] = {"@", "--bogus", "1"},
                    *joined[] = {"@", "--bogus=1"};
  cli_assert_usage_error(lsmi_fit_main, "fit", spaced, 3, demo,
                         "lsmi fit: unknown option --bogus (see --help)");
  cli_assert_usage_error(lsmi_fit_main, "fit", joined, 2, demo,
                         "lsmi fit: --bogus: unknown parameter 'bogus'");
}

/* Each value out of range or of the wrong form is a usage error that names
 * the flag; "@" stands for the demo file. */
static void test_bad_values(void **state) {
  (void)state;
  static const struct {
    const char *args[3];
    const char *says;
  } cases[] = {
      {{"@", "--epochs-entropy", "0"},
       "lsmi fit: --epochs-entropy: epochs_entropy must be an integer in "
       "[1, 10000], got 0"},
      {{"@", "--hidden", "many"}, "lsmi fit: --hidden: "},
      {{"@", "--lr-discriminator", "-1"}, "lsmi fit: --lr-discriminator: "},
      {{"@", "--prior", "flat"}, "lsmi fit: --prior: "},
      {{"@", "--adjust", "maybe"}, "lsmi fit: --adjust: "},
      {{"@", "--val-fraction", "1.5"}, "lsmi fit: --val-fraction: "},
      {{"@", "--threads", "-1"}, "lsmi fit: --threads: "},
      /* the --name=value form goes through the same checks */
      {{"@", "--batch-size=0"}, "lsmi fit: --batch-size: "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cli_assert_usage_error(lsmi_fit_main, "fit", cases[i].args, 3, demo,
                           cases[i].says);
}

static void test_missing_values_and_extra_arguments(void **state) {
  (void)state;
  static const struct {
    const char *args[2];
    const char *says;
  } cases[] = {
      {{"@", "--seed"}, "lsmi fit: --seed needs a value"},
      {{"@", "--out"}, "lsmi fit: --out needs a path"},
      {{"@", "other.npz"}, "lsmi fit: unexpected argument 'other.npz'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cli_assert_usage_error(lsmi_fit_main, "fit", cases[i].args, 2, demo,
                           cases[i].says);
}

/* ---- reading ------------------------------------------------------------ */

static void test_missing_file(void **state) {
  (void)state;
  const char *missing = cli_scratch("no-such-file.npz");
  cli_run_t r = cli_run(lsmi_fit_main, "fit", missing, NULL);
  assert_int_equal(r.rc, 1);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "lsmi fit: ");
  assert_contains(r.err, "no-such-file.npz");
  assert_contains(r.err, "No such file or directory");
  cli_run_free(&r);
}

static void test_bad_file_names_the_key(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_fit_main, "fit", "tests/data/bad_nan.npz", NULL);
  assert_int_equal(r.rc, 1);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "lsmi fit: tests/data/bad_nan.npz: train_x1 has a "
                         "NaN at row 4, column 1 [train_x1]");
  cli_run_free(&r);
}

/* Every format is recognised from the content, and the command names it. */
static void test_every_format(void **state) {
  (void)state;
  static const struct {
    const char *file, *format;
  } cases[] = {
      {"tests/data/good.npz", "npz"},
      {"tests/data/good.pt", "pt"},
      {"tests/data/good.safetensors", "safetensors"},
      {"tests/data/good_bundle.npy", "npy"},
      {"tests/data/good.csv", "csv"},
      {"tests/data/good.json", "json"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cli_run_t r = FIT(cases[i].file, "--json", "--quiet");
    if (r.rc != 0)
      fail_msg("%s: exit %d: %s", cases[i].file, r.rc, r.err);
    json_error_t e;
    json_t *j = json_loads(r.out, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "format")),
                        cases[i].format);
    json_decref(j);
    cli_run_free(&r);
  }
}

/* A file without val gets a drawn split, and says so; a val fraction that
 * cannot apply is an error. */
static void test_train_only_file_draws_val(void **state) {
  (void)state;
  cli_run_t r = FIT("tests/data/good_trainonly.npz", "--json");
  assert_int_equal(r.rc, 0);
  assert_contains(r.err, "lsmi: the file has no val split: drew 0.2 of "
                         "train as val (3 rows, stratified, seed 0); "
                         "--val-fraction sets the fraction\n");
  json_t *j = json_loads(r.out, 0, NULL);
  assert_non_null(j);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(j, "val"), "n")), 3);
  json_t *in = json_object_get(json_object_get(j, "provenance"), "input");
  assert_string_equal(json_string_value(json_object_get(in, "val")), "drawn");
  assert_true(json_number_value(json_object_get(in, "val_fraction")) == 0.2);
  json_decref(j);
  cli_run_free(&r);

  r = FIT("tests/data/good_trainonly.npz", "--quiet", "--json",
          "--val-fraction", "0.5");
  assert_int_equal(r.rc, 0);
  assert_true(strstr(r.err, "drew") == NULL); /* --quiet */
  j = json_loads(r.out, 0, NULL);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(j, "val"), "n")), 6);
  json_decref(j);
  cli_run_free(&r);

  r = FIT("tests/data/good.npz", "--val-fraction", "0.3");
  assert_int_equal(r.rc, 1);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "lsmi fit: tests/data/good.npz: val_fraction 0.3 "
                         "cannot apply: the file has its own val split (6 "
                         "rows); leave val_fraction out to use it "
                         "[val_fraction]\n");
  cli_run_free(&r);
}

/* Which array is which: keys and CSV prefixes by flag; without them, the
 * message names the flags. */
static void test_key_flags(void **state) {
  (void)state;
  cli_run_t r = FIT("tests/data/user_named.npz", "--quiet");
  assert_int_equal(r.rc, 1);
  assert_contains(r.err, "the file holds feat_a, feat_b, label: say which "
                         "array is which with --x1 KEY --x2 KEY --y KEY");
  cli_run_free(&r);
  r = FIT("tests/data/user_named.npz", "--quiet", "--x1", "feat_a", "--x2",
          "feat_b", "--y", "label");
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  const char *rows = cli_scratch("prefixed.csv");
  r = FIT("tests/data/user_prefixed.csv", "--x1", "img_", "--x2", "txt_", "--y",
          "label", "--out", rows);
  assert_int_equal(r.rc, 0);
  assert_contains(r.err, "(csv): train 15, val 3 rows, d1 3, d2 2, "
                         "3 classes\n");
  cli_run_free(&r);
  /* lsmi drew val: each row says where it was in the file */
  char *text = cli_slurp(rows);
  assert_true(
      strncmp(text, "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2,row\n", 43) == 0);
  free(text);
  r = cli_run(lsmi_fit_main, "fit", "tests/data/user_named.npz", "--x1", NULL);
  assert_int_equal(r.rc, 2);
  assert_contains(r.err, "lsmi fit: --x1 needs a key");
  cli_run_free(&r);
}

/* Labels of the file's own values, ids and rows in every output. */
static void test_labels_ids_rows_out(void **state) {
  (void)state;
  const char *csv = cli_scratch("labels.csv"), *js = cli_scratch("labels.json");
  cli_run_t r = FIT("tests/data/user_labels_str.csv", "--quiet", "--out", csv);
  assert_int_equal(r.rc, 0);
  assert_contains(r.out, "\nclasses: 0 = bird, 1 = cat, 2 = dog\n");
  cli_run_free(&r);
  char *text = cli_slurp(csv);
  assert_true(strncmp(text,
                      "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2,row,id,label\n",
                      52) == 0);
  assert_contains(text, ",0,s-100,bird\n");
  assert_contains(text, ",17,s-117,bird\n"); /* the val rows: 12 .. 17 */
  free(text);
  /* ids with commas and quotes are quoted as CSV quotes them */
  r = FIT("tests/data/user_ids.csv", "--quiet", "--id", "sample_id", "--out",
          csv);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  text = cli_slurp(csv);
  assert_contains(text, ",\"r0, \"\"bird\"\"\"\n");
  free(text);
  r = FIT("tests/data/user_labels_1based.npz", "--quiet", "--json", "--out",
          js);
  assert_int_equal(r.rc, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  json_t *names = json_object_get(j, "class_names");
  assert_int_equal(json_array_size(names), 3);
  assert_int_equal(json_integer_value(json_array_get(names, 0)), 1);
  json_decref(j);
  cli_run_free(&r);
  j = json_load_file(js, 0, NULL);
  json_t *row = json_array_get(json_object_get(j, "rows"), 0);
  assert_int_equal(json_integer_value(json_object_get(row, "label")), 1);
  assert_int_equal(json_integer_value(json_object_get(row, "y")), 0);
  assert_null(json_object_get(row, "row")); /* the file's own split */
  assert_null(json_object_get(row, "id"));
  json_decref(j);
  r = FIT("tests/data/user_ids_str.npz", "--quiet", "--out", js);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  j = json_load_file(js, 0, NULL);
  json_t *rs = json_object_get(j, "rows");
  for (size_t i = 0; i < json_array_size(rs); i++) {
    row = json_array_get(rs, i);
    char id[24];
    snprintf(id, sizeof id, "s-%03d",
             100 + (int)json_integer_value(json_object_get(row, "row")));
    assert_string_equal(json_string_value(json_object_get(row, "id")), id);
  }
  json_decref(j);
}

/* What lsmi did that the file did not say is said. */
static void test_notes_on_stderr(void **state) {
  (void)state;
  cli_run_t r = FIT("tests/data/user_feat3d.npz");
  assert_int_equal(r.rc, 0);
  assert_contains(r.err, "lsmi: note: train_x1: features of shape (12, 4, 4) "
                         "flattened in C order to (12, 16)\n");
  cli_run_free(&r);
  r = FIT("tests/data/user_plain.pkl", "--quiet");
  assert_int_equal(r.rc, 1);
  assert_contains(r.err, "a plain Python pickle (pickle.dump) is not read");
  cli_run_free(&r);
}

/* ---- the summary -------------------------------------------------------- */

static void test_summary_table_and_progress(void **state) {
  (void)state;
  cli_run_t r = FIT(demo, "--seed", "1");
  assert_int_equal(r.rc, 0);
  /* stdout: the header, one line per split, the timings. */
  assert_true(strncmp(r.out,
                      "split         n         R        U1        U2"
                      "         S        I1        I2       I12     shift\n",
                      strlen("split         n         R")) == 0);
  assert_contains(r.out, "\ntrain       240 ");
  assert_contains(r.out, "\nval          60 ");
  assert_contains(r.out, "\nseconds: train ");
  assert_contains(r.out, "(cpu: discriminators ");
  assert_contains(r.out, ", evaluate ");
  assert_contains(r.out, "; read ");
  assert_contains(r.out, ", total ");
  int lines = 0;
  for (const char *c = r.out; *c; c++)
    lines += *c == '\n';
  assert_int_equal(lines, 4);
  /* stderr: the file, plain progress lines (not a terminal), the end. */
  assert_contains(r.err, "(npz): train 240, val 60 rows, d1 2, d2 2, "
                         "2 classes\n");
  assert_contains(r.err, "lsmi: train   0%  discriminators 0/2  entropy "
                         "0/2\n"); /* no loss before one exists */
  assert_contains(r.err, "discriminators 2/2 loss ");
  assert_contains(r.err, "lsmi: done 100%  in ");
  assert_true(strstr(r.err, "0/2 loss") == NULL);
  assert_true(strchr(r.err, '\r') == NULL);
  int plain = 0;
  for (const char *c = r.err; *c; c++)
    plain += *c == '\n';
  assert_true(plain <= 16); /* a tenth of the work a line, and phases */
  /* no diagnostics without --verbose */
  assert_true(strstr(r.err, "\"event\"") == NULL);
  cli_run_free(&r);
  /* --verbose: a line at every epoch */
  r = FIT(demo, "--seed", "1", "--verbose");
  assert_int_equal(r.rc, 0);
  assert_contains(r.err, "discriminators 1/2 loss ");
  cli_run_free(&r);
  r = FIT(demo, "-q", "-v");
  assert_int_equal(r.rc, 2);
  assert_contains(r.err, "lsmi fit: --quiet and --verbose contradict");
  cli_run_free(&r);
}

/* On a terminal, one line updated in place. */
static void test_progress_on_a_terminal(void **state) {
  (void)state;
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  assert_true(master >= 0);
  assert_int_equal(grantpt(master), 0);
  assert_int_equal(unlockpt(master), 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  assert_true(slave >= 0);
  struct termios t;
  assert_int_equal(tcgetattr(slave, &t), 0);
  t.c_oflag &= ~(tcflag_t)OPOST; /* the bytes as written */
  assert_int_equal(tcsetattr(slave, TCSANOW, &t), 0);
  int null = open("/dev/null", O_WRONLY);
  char *argv[] = {
      "fit", demo, "--epochs-discriminator", "2", "--epochs-entropy",
      "2",   NULL};
  int rc = cli_run_on(lsmi_fit_main, 6, argv, null, slave);
  close(null);
  close(slave);
  assert_int_equal(rc, 0);
  char buf[8192];
  size_t n = 0;
  fcntl(master, F_SETFL, O_NONBLOCK);
  for (ssize_t k; n < sizeof buf - 1 &&
                  (k = read(master, buf + n, sizeof buf - 1 - n)) > 0;)
    n += (size_t)k;
  buf[n] = '\0';
  close(master);
  assert_contains(buf, "\rlsmi: train   0%  discriminators 0/2  entropy 0/2");
  assert_contains(buf, "\rlsmi: done 100%  in ");
  /* the line ends once, after the last update */
  const char *done = strstr(buf, "\rlsmi: done");
  assert_non_null(strchr(done, '\n'));
  int lines = 0;
  for (const char *c = strstr(buf, "\rlsmi: train"); c < done; c++)
    lines += *c == '\n';
  assert_int_equal(lines, 0);
}

static double member(json_t *obj, const char *split, const char *key) {
  json_t *v = json_object_get(json_object_get(obj, split), key);
  if (!json_is_number(v))
    fail_msg("no number %s.%s", split, key);
  return json_number_value(v);
}

static void test_summary_json_and_quiet(void **state) {
  (void)state;
  cli_run_t r = FIT(demo, "--seed", "1", "--json", "-q");
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.err, "");
  json_error_t e;
  json_t *j = json_loads(r.out, 0, &e);
  if (j == NULL)
    fail_msg("stdout is not JSON (%s): %s", e.text, r.out);
  assert_string_equal(json_string_value(json_object_get(j, "format")), "npz");
  assert_int_equal(json_integer_value(json_object_get(j, "classes")), 2);
  assert_int_equal(json_integer_value(json_object_get(j, "d1")), 2);
  assert_int_equal(json_integer_value(json_object_get(j, "d2")), 2);
  assert_true(json_integer_value(json_object_get(j, "threads")) >= 1);
  assert_true(json_is_number(json_object_get(j, "disc_loss")));
  assert_true(json_is_number(json_object_get(j, "ent_loss")));
  static const char *seconds[] = {"read",     "train",    "disc_cpu",
                                  "ent_cpu",  "busy_cpu", "busy_max",
                                  "help_cpu", "eval",     "total"};
  for (size_t i = 0; i < sizeof seconds / sizeof seconds[0]; i++)
    assert_true(member(j, "seconds", seconds[i]) >= 0.0);
  assert_true(member(j, "seconds", "busy_max") <=
              member(j, "seconds", "busy_cpu") + 1e-9);
  assert_int_equal((int)member(j, "train", "n"), 240);
  assert_int_equal((int)member(j, "val", "n"), 60);
  /* The identities of the means: R + U1 = I1, R + U2 = I2, all four = I12. */
  for (int s = 0; s < 2; s++) {
    const char *sp = s ? "val" : "train";
    double R = member(j, sp, "R"), U1 = member(j, sp, "U1"),
           U2 = member(j, sp, "U2"), S = member(j, sp, "S");
    assert_true(fabs(R + U1 - member(j, sp, "I1")) < 1e-6);
    assert_true(fabs(R + U2 - member(j, sp, "I2")) < 1e-6);
    assert_true(fabs(R + U1 + U2 + S - member(j, sp, "I12")) < 1e-6);
    assert_true(isfinite(member(j, sp, "H1")) &&
                isfinite(member(j, sp, "shift")));
  }
  json_decref(j);
  cli_run_free(&r);
}

/* ---- --out -------------------------------------------------------------- */

static void test_out_csv(void **state) {
  (void)state;
  const char *path = cli_scratch("rows.csv");
  cli_run_t r = FIT(demo, "--quiet", "--out", path);
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.err, "");
  assert_contains(r.out, "\ntrain       240 ");
  cli_run_free(&r);
  assert_int_equal(temp_files(), 0);

  char *text = cli_slurp(path);
  assert_non_null(text);
  const char *header = "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2\n";
  assert_true(strncmp(text, header, strlen(header)) == 0);
  int rows = 0, train = 0, val = 0;
  char *save = NULL;
  for (char *line = strtok_r(text + strlen(header), "\n", &save); line;
       line = strtok_r(NULL, "\n", &save), rows++) {
    int index, y;
    char split[8];
    double v[9];
    int got = sscanf(line, "%d,%7[a-z],%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf",
                     &index, split, &y, &v[0], &v[1], &v[2], &v[3], &v[4],
                     &v[5], &v[6], &v[7], &v[8]);
    if (got != 12)
      fail_msg("row %d: %s", rows, line);
    /* train rows first, each split indexed from 0 in file order */
    if (strcmp(split, "train") == 0) {
      assert_int_equal(val, 0);
      assert_int_equal(index, train++);
    } else {
      assert_string_equal(split, "val");
      assert_int_equal(index, val++);
    }
    assert_true(y == 0 || y == 1);
    /* r, u1, u2, s, i1, i2, i12: r + u1 = i1, r + u2 = i2, sum = i12 */
    double tol = 1e-6 * (1.0 + fabs(v[6]));
    assert_true(fabs(v[0] + v[1] - v[4]) < tol);
    assert_true(fabs(v[0] + v[2] - v[5]) < tol);
    assert_true(fabs(v[0] + v[1] + v[2] + v[3] - v[6]) < tol);
  }
  assert_int_equal(train, 240);
  assert_int_equal(val, 60);
  free(text);
}

static void test_out_json(void **state) {
  (void)state;
  const char *path = cli_scratch("rows.json");
  cli_run_t r = FIT(demo, "--quiet", "-o", path);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  assert_int_equal(temp_files(), 0);

  json_error_t e;
  json_t *j = json_load_file(path, 0, &e);
  if (j == NULL)
    fail_msg("%s is not JSON: %s (line %d)", path, e.text, e.line);
  json_t *summary = json_object_get(j, "summary");
  assert_int_equal((int)member(summary, "train", "n"), 240);
  assert_int_equal((int)member(summary, "val", "n"), 60);
  json_t *rows = json_object_get(j, "rows");
  assert_int_equal(json_array_size(rows), 300);
  static const char *keys[] = {"index", "split", "y",  "r",   "u1", "u2",
                               "s",     "i1",    "i2", "i12", "h1", "h2"};
  for (size_t i = 0; i < json_array_size(rows); i++) {
    json_t *row = json_array_get(rows, i);
    assert_int_equal(json_object_size(row), 12);
    for (size_t k = 0; k < 12; k++)
      assert_non_null(json_object_get(row, keys[k]));
    assert_string_equal(json_string_value(json_object_get(row, "split")),
                        i < 240 ? "train" : "val");
  }
  json_decref(j);
}

/* An existing file is replaced whole; the same seed gives the same bytes
 * at any thread count. */
static void test_out_replaces_and_is_deterministic(void **state) {
  (void)state;
  const char *one = cli_scratch("one.csv"), *two = cli_scratch("two.csv");
  FILE *f = fopen(one, "w");
  assert_non_null(f);
  fputs("old content\n", f);
  fclose(f);
  cli_run_t r =
      FIT(demo, "--quiet", "--seed", "3", "--threads", "1", "--out", one);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  r = FIT(demo, "--quiet", "--seed=3", "--threads=2", "--out", two);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  char *a = cli_slurp(one), *b = cli_slurp(two);
  assert_non_null(a);
  assert_non_null(b);
  assert_true(strncmp(a, "index,split,", 12) == 0);
  assert_string_equal(a, b);
  free(a);
  free(b);
  assert_int_equal(temp_files(), 0);
}

/* A dataset of a's rows with the first d1 features of its x1 and the
 * first d2 of its x2 (a: taken). */
static lsmi_dataset_t *narrow(lsmi_dataset_t *a, size_t d1, size_t d2) {
  lsmi_dataset_t *ds =
      lsmi_dataset_create(a->train.n, a->val.n, d1, d2, a->classes, NULL);
  assert_non_null(ds);
  const lsmi_split_t *from[2] = {&a->train, &a->val};
  lsmi_split_t *to[2] = {&ds->train, &ds->val};
  size_t lda = a->d1 + a->d2;
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < from[s]->n; i++) {
      const float *x = from[s]->x + i * lda;
      float *y = to[s]->x + i * (d1 + d2);
      memcpy(y, x, d1 * sizeof(float));
      memcpy(y + d1, x + a->d1, d2 * sizeof(float));
      to[s]->y[i] = from[s]->y[i];
    }
  lsmi_dataset_destroy(a);
  return ds;
}

/* From d = 128 on, with lsmi_fit_split, a KNIFE step's and an
 * evaluation's components are pieces that an idle pool thread helps with
 * (core/par.h): the same seed must still give the same bytes on one
 * thread and on two, whichever
 * thread runs which piece. x1 is wider than x2 (320 and 128 features), so
 * that the thread with the narrower KNIFE runs out of work first and
 * helps the wider one's steps and evaluation. */
static void test_wide_fit_same_bytes_on_two_threads(void **state) {
  (void)state;
  const char *data = cli_scratch("wide.npz");
  const char *one = cli_scratch("wide1.csv"), *two = cli_scratch("wide2.csv");
  lsmi_synth_spec_t spec = {
      .kind = LSMI_SYNTH_GAUSSIAN, .n = 500, .dim = 320, .seed = 5};
  lsmi_dataset_t *ds = NULL;
  assert_int_equal(lsmi_synth_make(&spec, &ds, NULL, NULL), LSMI_OK);
  ds = narrow(ds, 320, 128);
  assert_int_equal(lsmi_dataset_write_npz(ds, data, NULL), LSMI_OK);
  lsmi_dataset_destroy(ds);
  assert_false(lsmi_fit_split()); /* off unless asked for */
  cli_run_t r =
      FIT(data, "--quiet", "--seed", "4", "--threads", "1", "--out", one);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  char *a = cli_slurp(one);
  assert_non_null(a);
  assert_true(strncmp(a, "index,split,", 12) == 0);
  /* Three rounds, and on until a round's second thread did run pieces of
   * the other's (seconds.help_cpu > 0), so that the split was exercised;
   * a loaded machine may leave it no chance in a round. */
  double helped = 0.0;
  for (int round = 0; round < 3 || (helped == 0.0 && round < 20); round++) {
    lsmi_fit_split_select(true);
    r = FIT(data, "--quiet", "--json", "--seed", "4", "--threads", "2", "--out",
            two);
    lsmi_fit_split_select(false);
    assert_int_equal(r.rc, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    json_t *sec = json_object_get(j, "seconds");
    helped += json_number_value(json_object_get(sec, "help_cpu"));
    json_decref(j);
    cli_run_free(&r);
    char *b = cli_slurp(two);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(b);
  }
  assert_true(helped > 0.0);
  free(a);
}

/* --out is checked before the file is read and fitted: an unknown
 * extension, a directory, a directory that does not exist; nothing is
 * left behind. */
static void test_out_checked_before_the_fit(void **state) {
  (void)state;
  const char *sub = cli_scratch("taken.csv");
  assert_int_equal(mkdir(sub, 0755), 0);
  int before = cli_count_entries(cli_dir, "");
  static const struct {
    const char *name;
    int rc;
    const char *says;
  } cases[] = {
      {"rows.parquet", 2,
       "rows.parquet: unknown extension .parquet; --out writes .csv, .json, "
       "or - (CSV on stdout)\n"},
      {"rows", 2, "rows: unknown extension (none)"},
      {"taken.csv", 1, "taken.csv is a directory\n"},
      {"missing-dir/rows.csv", 1, "missing-dir/rows.csv: no directory "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* "no-such-file": had the file been read first, that would fail */
    cli_run_t r = FIT("no-such-file.npz", "--out", cli_scratch(cases[i].name));
    assert_int_equal(r.rc, cases[i].rc);
    assert_string_equal(r.out, "");
    assert_contains(r.err, "lsmi fit: --out ");
    assert_contains(r.err, cases[i].says);
    cli_run_free(&r);
  }
  assert_int_equal(temp_files(), 0);
  assert_int_equal(cli_count_entries(cli_dir, ""), before);
}

/* --out - writes the rows on stdout and the summary on stderr; no file
 * named "-". */
static void test_out_stdout(void **state) {
  (void)state;
  cli_run_t r = FIT(demo, "--quiet", "--out", "-");
  assert_int_equal(r.rc, 0);
  assert_true(strncmp(r.out, "index,split,y,r,", 16) == 0);
  int lines = 0;
  for (const char *c = r.out; *c; c++)
    lines += *c == '\n';
  assert_int_equal(lines, 301);
  assert_contains(r.err, "\ntrain       240 ");
  assert_int_equal(access("-", F_OK), -1);
  cli_run_free(&r);
}

/* A value far outside the train data gives an infinite entropy: JSON
 * holds null there, and the command says so. */
static void test_nonfinite_is_null(void **state) {
  (void)state;
  const char *js = cli_scratch("huge.json");
  cli_run_t r =
      FIT("tests/data/user_huge.npz", "--quiet", "--json", "--out", js);
  assert_int_equal(r.rc, 0);
  json_error_t e;
  json_t *j = json_loads(r.out, 0, &e);
  if (!j)
    fail_msg("stdout is not JSON (%s): %s", e.text, r.out);
  assert_true(json_is_null(json_object_get(json_object_get(j, "val"), "H1")));
  json_decref(j);
  assert_contains(r.err, "lsmi: warning [not_finite]: 3 values are infinite "
                         "or NaN");
  cli_run_free(&r);
  j = json_load_file(js, 0, &e);
  if (!j)
    fail_msg("%s is not JSON: %s", js, e.text);
  json_t *row = json_array_get(json_object_get(j, "rows"), 13);
  assert_string_equal(json_string_value(json_object_get(row, "split")), "val");
  assert_true(json_is_null(json_object_get(row, "h1")));
  json_decref(j);
  /* CSV holds inf as it is */
  const char *csv = cli_scratch("huge.csv");
  r = FIT("tests/data/user_huge.npz", "--quiet", "--out", csv);
  assert_int_equal(r.rc, 0);
  assert_true(strstr(r.err, "not_finite") == NULL);
  cli_run_free(&r);
  char *text = cli_slurp(csv);
  assert_contains(text, ",inf,");
  free(text);
}

/* JSON outputs carry what made them: version, kernels, every parameter,
 * the input's path, SHA-256, size and format, and the seconds. */
static void test_provenance(void **state) {
  (void)state;
  const char *js = cli_scratch("prov.json");
  cli_run_t r = FIT(demo, "--quiet", "--json", "--seed", "5", "--out", js);
  assert_int_equal(r.rc, 0);
  json_t *j = json_loads(r.out, 0, NULL);
  json_t *file = json_load_file(js, 0, NULL);
  assert_non_null(j);
  assert_non_null(file);
  char *bytes = NULL;
  size_t len = 0;
  FILE *f = fopen(demo, "rb");
  assert_non_null(f);
  bytes = malloc(1 << 20);
  len = fread(bytes, 1, 1 << 20, f);
  fclose(f);
  lsmi_sha256_t sh;
  unsigned char d[32];
  char hex[65];
  lsmi_sha256_init(&sh);
  lsmi_sha256_update(&sh, bytes, len);
  lsmi_sha256_final(&sh, d);
  free(bytes);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  json_t *provs[2] = {json_object_get(j, "provenance"),
                      json_object_get(file, "provenance")};
  for (int k = 0; k < 2; k++) {
    json_t *p = provs[k];
    assert_string_equal(json_string_value(json_object_get(p, "lsmi")),
                        LSMI_VERSION);
    assert_string_equal(json_string_value(json_object_get(p, "kernels")),
                        lsmi_kernels_name());
    assert_string_equal(json_string_value(json_object_get(p, "blas_core")),
                        lsmi_blas_corename());
    assert_non_null(json_string_value(json_object_get(p, "started_at")));
    json_t *params = json_object_get(p, "params");
    size_t n;
    lsmi_params_table(&n);
    assert_int_equal(json_object_size(params), n);
    assert_int_equal(json_integer_value(json_object_get(params, "seed")), 5);
    assert_int_equal(
        json_integer_value(json_object_get(params, "epochs_entropy")), 2);
    assert_string_equal(json_string_value(json_object_get(params, "prior")),
                        "uniform");
    json_t *in = json_object_get(p, "input");
    assert_string_equal(json_string_value(json_object_get(in, "path")), demo);
    assert_string_equal(json_string_value(json_object_get(in, "sha256")), hex);
    assert_int_equal(json_integer_value(json_object_get(in, "bytes")), len);
    assert_string_equal(json_string_value(json_object_get(in, "format")),
                        "npz");
    assert_string_equal(json_string_value(json_object_get(in, "val")), "file");
    assert_true(json_number_value(json_object_get(json_object_get(p, "seconds"),
                                                  "total")) > 0);
  }
  json_decref(j);
  json_decref(file);
  cli_run_free(&r);
}

/* A write that fails half-way (the file-size limit stops it) removes the
 * temp file and leaves no file under the name. */
static void test_out_write_error_mid_file(void **state) {
  (void)state;
  const char *path = cli_scratch("too-big.csv");
  struct rlimit old, small;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 8192; /* the rows are about 36 KB; the captures < 1 KB */
  void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  cli_run_t r = FIT(demo, "--quiet", "--out", path);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, was);
  assert_int_equal(r.rc, 1);
  assert_contains(r.out, "\ntrain       240 ");
  assert_contains(r.err, "too-big.csv failed: File too large");
  cli_run_free(&r);
  assert_int_equal(temp_files(), 0);
  assert_int_equal(cli_count_entries(cli_dir, "too-big"), 0);
}

/* The file gets the mode fopen would have given it: 0666 less the umask. */
static void test_out_mode_follows_umask(void **state) {
  (void)state;
  const char *path = cli_scratch("private.csv");
  mode_t old = umask(077);
  cli_run_t r = FIT(demo, "--quiet", "--out", path);
  umask(old);
  assert_int_equal(r.rc, 0);
  cli_run_free(&r);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
}

/* ---- the published recipe, and beyond it -------------------------------- */

/* The SHA-256 of a file, as 64 hex digits. */
static void file_digest(const char *path, char hex[65]) {
  char *text = cli_slurp(path);
  assert_non_null(text);
  lsmi_sha256_t s;
  unsigned char d[32];
  lsmi_sha256_init(&s);
  lsmi_sha256_update(&s, text, strlen(text));
  lsmi_sha256_final(&s, d);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  free(text);
}

/* The published recipe's rows, byte for byte as lsmi gave them before the
 * options beyond it existed: the gaussian demo (2000 rows, seed 1), seed
 * 1, default parameters, on the portable kernels (the others round
 * differently, so their bytes are per machine). The digest is of the
 * --out CSV of ce344cd, the last commit before those options. */
static void test_published_rows_unchanged(void **state) {
  (void)state;
  const char *data = cli_scratch("demo2000.npz");
  const char *rows = cli_scratch("published.csv");
  lsmi_dataset_t *ds = NULL;
  assert_int_equal(lsmi_synth(LSMI_SYNTH_GAUSSIAN, 2000, 1, &ds, NULL),
                   LSMI_OK);
  assert_int_equal(lsmi_dataset_write_npz(ds, data, NULL), LSMI_OK);
  lsmi_dataset_destroy(ds);
  assert_int_equal(lsmi_kernels_select("generic"), LSMI_OK);
  cli_run_t r = cli_run(lsmi_fit_main, "fit", data, "--seed", "1", "--quiet",
                        "--out", rows, NULL);
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.err, ""); /* the published recipe warns of nothing */
  cli_run_free(&r);
  char hex[65];
  file_digest(rows, hex);
  assert_string_equal(
      hex, "e50102b4e9d287d141b12034d9c3f055445e2ccb480b297100226fbdc4bfb99d");
}

/* An ensemble adds the members' spread after the published columns, and
 * --json carries the intervals, the diagnostics and the warnings. */
static void test_ensemble_outputs(void **state) {
  (void)state;
  const char *path = cli_scratch("ens.csv");
  cli_run_t r = FIT(demo, "--quiet", "--json", "--ensemble", "3",
                    "--early-stopping", "true", "--out", path);
  assert_int_equal(r.rc, 0);
  json_error_t e;
  json_t *j = json_loads(r.out, 0, &e);
  if (j == NULL)
    fail_msg("stdout is not JSON (%s): %s", e.text, r.out);
  assert_int_equal(json_integer_value(json_object_get(j, "ensemble")), 3);
  json_t *ci = json_object_get(json_object_get(j, "val"), "ci");
  static const char *names[] = {"R", "U1", "U2", "S", "I1", "I2", "I12"};
  for (size_t k = 0; k < 7; k++) {
    json_t *iv = json_object_get(ci, names[k]);
    assert_int_equal(json_array_size(iv), 2);
    double lo = json_number_value(json_array_get(iv, 0));
    double hi = json_number_value(json_array_get(iv, 1));
    double m = member(j, "val", names[k]);
    assert_true(lo <= m + 1e-9 && m <= hi + 1e-9);
  }
  json_t *diag = json_object_get(j, "diagnostics");
  static const char *models[] = {"f1", "f2", "f12", "knife1", "knife2"};
  for (size_t m = 0; m < 5; m++) {
    json_t *d = json_object_get(diag, models[m]);
    assert_true(json_is_number(json_object_get(d, "holdout_loss")));
    assert_true(json_is_null(json_object_get(d, "oof_loss")));
    assert_true(json_is_number(json_object_get(d, "epochs")));
    assert_true((m < 3) == (json_object_get(d, "val_acc") != NULL));
  }
  assert_true(json_is_array(json_object_get(j, "warnings")));
  json_decref(j);
  cli_run_free(&r);
  char *text = cli_slurp(path);
  assert_non_null(text);
  const char *header =
      "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2,r_sd,u1_sd,u2_sd,s_sd\n";
  assert_true(strncmp(text, header, strlen(header)) == 0);
  int rows = 0;
  char *save = NULL;
  for (char *line = strtok_r(text + strlen(header), "\n", &save); line;
       line = strtok_r(NULL, "\n", &save), rows++) {
    int index, y;
    char split[8];
    double v[13];
    int got = sscanf(line,
                     "%d,%7[a-z],%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,"
                     "%lf,%lf,%lf",
                     &index, split, &y, &v[0], &v[1], &v[2], &v[3], &v[4],
                     &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11], &v[12]);
    if (got != 16)
      fail_msg("row %d: %s", rows, line);
    for (int k = 9; k < 13; k++)
      assert_true(v[k] >= 0.0);
  }
  assert_int_equal(rows, 300);
  free(text);
}

/* A memorising fit says so on stderr, each warning on a line of its own. */
static void test_warnings_on_stderr(void **state) {
  (void)state;
  const char *data = cli_scratch("memorise.npz");
  lsmi_synth_spec_t spec = {
      .kind = LSMI_SYNTH_MIXED, .n = 500, .dim = 128, .seed = 3};
  lsmi_dataset_t *ds = NULL;
  assert_int_equal(lsmi_synth_make(&spec, &ds, NULL, NULL), LSMI_OK);
  assert_int_equal(lsmi_dataset_write_npz(ds, data, NULL), LSMI_OK);
  lsmi_dataset_destroy(ds);
  cli_run_t r = cli_run(lsmi_fit_main, "fit", data, "--quiet",
                        "--epochs-entropy", "1", NULL);
  assert_int_equal(r.rc, 0);
  assert_contains(r.err, "lsmi: warning [memorising]: ");
  assert_contains(r.err, "try preset robust");
  cli_run_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_help_lists_every_parameter),
      cmocka_unit_test(test_no_file_is_a_usage_error),
      cmocka_unit_test(test_unknown_flags),
      cmocka_unit_test(test_bad_values),
      cmocka_unit_test(test_missing_values_and_extra_arguments),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_bad_file_names_the_key),
      cmocka_unit_test(test_every_format),
      cmocka_unit_test(test_train_only_file_draws_val),
      cmocka_unit_test(test_key_flags),
      cmocka_unit_test(test_labels_ids_rows_out),
      cmocka_unit_test(test_notes_on_stderr),
      cmocka_unit_test(test_summary_table_and_progress),
      cmocka_unit_test(test_progress_on_a_terminal),
      cmocka_unit_test(test_summary_json_and_quiet),
      cmocka_unit_test(test_out_csv),
      cmocka_unit_test(test_out_json),
      cmocka_unit_test(test_out_replaces_and_is_deterministic),
      cmocka_unit_test(test_wide_fit_same_bytes_on_two_threads),
      cmocka_unit_test(test_out_checked_before_the_fit),
      cmocka_unit_test(test_out_stdout),
      cmocka_unit_test(test_nonfinite_is_null),
      cmocka_unit_test(test_provenance),
      cmocka_unit_test(test_out_write_error_mid_file),
      cmocka_unit_test(test_out_mode_follows_umask),
      cmocka_unit_test(test_ensemble_outputs),
      cmocka_unit_test(test_warnings_on_stderr),
      /* Last: it forces the portable kernels for the rest of the process. */
      cmocka_unit_test(test_published_rows_unchanged),
  };
  return cmocka_run_group_tests_name("cli/fit", tests, group_setup,
                                     cli_scratch_teardown);
}
