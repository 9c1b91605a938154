/*
 * test_resfile.c — server/resfile.c: result columns written and read back
 * bit for bit, a write that cannot finish leaving nothing behind, damaged
 * files refused, and pages sorted (ties by index),
 * sliced and rendered as JSON, CSV and NDJSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "resfile.h"

enum { N = 7 };
static int32_t y[N] = {0, 1, 1, 0, 2, 1, 0};
static double cols[9][N];

static lsmi_rows_t make_rows(void) {
  for (int k = 0; k < 9; k++)
    for (int i = 0; i < N; i++)
      cols[k][i] = (k + 1) * 0.1 + (i % 3) * (k % 2 ? -1.0 : 1.0) / 3.0;
  cols[3][2] = cols[3][5]; /* a tie in s */
  lsmi_rows_t r = {.n = N,
                   .y = y,
                   .r = cols[0],
                   .u1 = cols[1],
                   .u2 = cols[2],
                   .s = cols[3],
                   .i1 = cols[4],
                   .i2 = cols[5],
                   .i12 = cols[6],
                   .h1 = cols[7],
                   .h2 = cols[8]};
  return r;
}

static char dir[64];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/lsmi-res-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  char p[128];
  snprintf(p, sizeof p, "%s/tmp", dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/results", dir);
  mkdir(p, 0700);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_round_trip(void **state) {
  (void)state;
  lsmi_rows_t r = make_rows(), back;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_x", "val", &r, &err), 0);
  assert_int_equal(lsmi_resfile_read(dir, "job_x", "val", &back, &err), 0);
  assert_int_equal(back.n, N);
  assert_memory_equal(back.y, y, sizeof y);
  double *b[9] = {back.r,  back.u1,  back.u2, back.s, back.i1,
                  back.i2, back.i12, back.h1, back.h2};
  for (int k = 0; k < 9; k++)
    assert_memory_equal(b[k], cols[k], sizeof cols[k]);
  lsmi_resfile_rows_free(&back);
  /* nothing is left in tmp/ */
  char p[128];
  snprintf(p, sizeof p, "%s/tmp", dir);
  assert_int_equal(rmdir(p), 0);
  mkdir(p, 0700);
  /* an empty split is a valid file too */
  lsmi_rows_t empty = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_x", "train", &empty, &err), 0);
  assert_int_equal(lsmi_resfile_read(dir, "job_x", "train", &back, &err), 0);
  assert_int_equal(back.n, 0);
  lsmi_resfile_rows_free(&back);
  lsmi_resfile_remove(dir, "job_x");
  assert_int_equal(lsmi_resfile_read(dir, "job_x", "val", &back, &err),
                   LSMI_ERR_IO);
}

/* An ensemble's spread travels as four more columns, sortable; a file of
 * the first version (no column count, nine columns) still reads. */
static void test_spread_columns_and_version_1(void **state) {
  (void)state;
  static double sd[4][N];
  lsmi_rows_t r = make_rows(), back;
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < N; i++)
      sd[k][i] = 0.01 * (k + 1) + 0.001 * i;
  r.r_sd = sd[0];
  r.u1_sd = sd[1];
  r.u2_sd = sd[2];
  r.s_sd = sd[3];
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_e", "val", &r, &err), 0);
  assert_int_equal(lsmi_resfile_read(dir, "job_e", "val", &back, &err), 0);
  assert_memory_equal(back.s_sd, sd[3], sizeof sd[3]);
  assert_memory_equal(back.h2, cols[8], sizeof cols[8]);
  assert_true(lsmi_resfile_has_col(&back, LSMI_COL_U2_SD));
  lsmi_respage_t q = {.split = "val", .limit = 2, .format = LSMI_RES_CSV};
  assert_int_equal(lsmi_resfile_parse_sort("-s_sd", NULL, &q.sort, &q.desc), 0);
  size_t len;
  const char *ctype;
  char *body = lsmi_resfile_render(&back, &q, &len, &ctype);
  assert_non_null(body);
  /* the largest s_sd is the last row's */
  const char *want = "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2,r_sd,u1_sd,"
                     "u2_sd,s_sd\n6,val,";
  assert_true(strncmp(body, want, strlen(want)) == 0);
  free(body);
  lsmi_resfile_rows_free(&back);

  /* Version 1, as the daemon wrote it before ensembles. */
  char p[160];
  snprintf(p, sizeof p, "%s/results/job_v1.val", dir);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  uint64_t n = N;
  fwrite("LSMIRES1", 1, 8, f);
  fwrite(&n, 8, 1, f);
  fwrite(y, 4, N, f);
  static const char pad[4] = {0};
  fwrite(pad, 1, (N * 4 + 7) / 8 * 8 - N * 4, f);
  for (int k = 0; k < 9; k++)
    fwrite(cols[k], 8, N, f);
  fclose(f);
  assert_int_equal(lsmi_resfile_read(dir, "job_v1", "val", &back, &err), 0);
  assert_int_equal(back.n, N);
  assert_memory_equal(back.i12, cols[6], sizeof cols[6]);
  assert_null(back.r_sd);
  assert_false(lsmi_resfile_has_col(&back, LSMI_COL_R_SD));
  lsmi_resfile_rows_free(&back);
  /* A column count that is neither 9 nor 13 is damage. */
  snprintf(p, sizeof p, "%s/results/job_e.val", dir);
  f = fopen(p, "r+b");
  assert_non_null(f);
  uint64_t bad = 11;
  fseek(f, 16, SEEK_SET);
  fwrite(&bad, 8, 1, f);
  fclose(f);
  assert_int_equal(lsmi_resfile_read(dir, "job_e", "val", &back, &err),
                   LSMI_ERR_FORMAT);
}

static void test_damaged(void **state) {
  (void)state;
  lsmi_rows_t r = make_rows(), back;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_d", "val", &r, &err), 0);
  char p[128];
  snprintf(p, sizeof p, "%s/results/job_d.val", dir);
  assert_int_equal(truncate(p, 100), 0);
  assert_int_equal(lsmi_resfile_read(dir, "job_d", "val", &back, &err),
                   LSMI_ERR_FORMAT);
  FILE *f = fopen(p, "wb");
  fputs("not a result file at all", f);
  fclose(f);
  assert_int_equal(lsmi_resfile_read(dir, "job_d", "val", &back, &err),
                   LSMI_ERR_FORMAT);
}

/* Entries of dir/sub (helpers.h). */
static int entries(const char *sub) {
  char p[128];
  snprintf(p, sizeof p, "%s/%s", dir, sub);
  return count_entries(p);
}

/* A write that cannot finish fails with ERR_IO, names the file, and leaves
 * no temp file and no partial result behind. */
static void test_write_fails_cleanly(void **state) {
  (void)state;
  lsmi_rows_t r = make_rows(), back;
  lsmi_error_t err = {0};
  char p[128], away[128];
  snprintf(p, sizeof p, "%s/results", dir);
  snprintf(away, sizeof away, "%s/results.away", dir);
  assert_int_equal(rename(p, away), 0); /* the rename has nowhere to go */
  assert_int_equal(lsmi_resfile_write(dir, "job_f", "val", &r, &err),
                   LSMI_ERR_IO);
  assert_string_equal(err.field, "results");
  assert_non_null(strstr(err.message, "job_f.val"));
  assert_int_equal(entries("tmp"), 0);
  assert_int_equal(rename(away, p), 0);
  snprintf(p, sizeof p, "%s/tmp", dir);
  assert_int_equal(rmdir(p), 0); /* no temp directory at all */
  int before = entries("results");
  assert_int_equal(lsmi_resfile_write(dir, "job_f", "val", &r, &err),
                   LSMI_ERR_IO);
  assert_int_equal(entries("results"), before);
  mkdir(p, 0700);
  assert_int_equal(lsmi_resfile_read(dir, "job_f", "val", &back, &err),
                   LSMI_ERR_IO);
}

static json_t *render_json(const lsmi_rows_t *r, lsmi_respage_t q) {
  size_t len = 0;
  const char *ct = NULL;
  char *body = lsmi_resfile_render(r, &q, &len, &ct);
  assert_non_null(body);
  assert_string_equal(ct, "application/json");
  json_error_t je;
  json_t *v = json_loadb(body, len, 0, &je);
  free(body);
  assert_non_null(v);
  return v;
}

static void test_pages(void **state) {
  (void)state;
  lsmi_rows_t r = make_rows();
  lsmi_respage_t q = {"val", 0, 100, LSMI_COL_S, true, LSMI_RES_JSON};
  json_t *v = render_json(&r, q);
  json_t *rows = json_object_get(v, "rows");
  assert_int_equal(json_array_size(rows), N);
  assert_int_equal(json_integer_value(json_object_get(v, "total")), N);
  double prev = INFINITY;
  int prev_index = -1;
  for (size_t i = 0; i < N; i++) {
    json_t *row = json_array_get(rows, i);
    double s = json_real_value(json_object_get(row, "s"));
    int idx = (int)json_integer_value(json_object_get(row, "index"));
    assert_true(s <= prev);
    if (s == prev)
      assert_true(idx > prev_index); /* ties by index, ascending */
    assert_true(s == cols[3][idx]);
    prev = s;
    prev_index = idx;
  }
  json_decref(v);
  /* a slice of the same order */
  q.offset = 2;
  q.limit = 3;
  json_t *w = render_json(&r, q);
  assert_int_equal(json_array_size(json_object_get(w, "rows")), 3);
  json_decref(w);
  q.offset = 50;
  w = render_json(&r, q);
  assert_int_equal(json_array_size(json_object_get(w, "rows")), 0);
  json_decref(w);

  lsmi_respage_t c = {"train", 1, 2, LSMI_COL_INDEX, false, LSMI_RES_CSV};
  size_t len;
  const char *ct;
  char *body = lsmi_resfile_render(&r, &c, &len, &ct);
  assert_true(strncmp(ct, "text/csv", 8) == 0);
  assert_true(strncmp(body,
                      "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2\n1,train,1,",
                      50) == 0);
  int lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += body[i] == '\n';
  assert_int_equal(lines, 3);
  free(body);
  lsmi_respage_t nd = {"val", 0, 4, LSMI_COL_Y, false, LSMI_RES_NDJSON};
  body = lsmi_resfile_render(&r, &nd, &len, &ct);
  assert_string_equal(ct, "application/x-ndjson");
  lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += body[i] == '\n';
  assert_int_equal(lines, 4);
  free(body);
}

static void test_parse(void **state) {
  (void)state;
  lsmi_rescol_t c;
  bool desc;
  assert_int_equal(lsmi_resfile_parse_sort("-s", NULL, &c, &desc), 0);
  assert_int_equal(c, LSMI_COL_S);
  assert_true(desc);
  assert_int_equal(lsmi_resfile_parse_sort("i12", "desc", &c, &desc), 0);
  assert_int_equal(c, LSMI_COL_I12);
  assert_true(desc);
  assert_int_equal(lsmi_resfile_parse_sort(NULL, NULL, &c, &desc), 0);
  assert_int_equal(c, LSMI_COL_INDEX);
  assert_false(desc);
  assert_int_equal(lsmi_resfile_parse_sort("x", NULL, &c, &desc),
                   LSMI_ERR_INVALID);
  assert_int_equal(lsmi_resfile_parse_sort("s", "down", &c, &desc),
                   LSMI_ERR_INVALID);
  lsmi_resformat_t f;
  assert_int_equal(lsmi_resfile_parse_format("ndjson", &f), 0);
  assert_int_equal(f, LSMI_RES_NDJSON);
  assert_int_equal(lsmi_resfile_parse_format(NULL, &f), 0);
  assert_int_equal(f, LSMI_RES_JSON);
  assert_int_equal(lsmi_resfile_parse_format("xml", &f), LSMI_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_damaged),
      cmocka_unit_test(test_spread_columns_and_version_1),
      cmocka_unit_test(test_write_fails_cleanly),
      cmocka_unit_test(test_pages),
      cmocka_unit_test(test_parse),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
