/*
 * test_resfile.c — server/resfile.c: result columns written and read back
 * bit for bit, a write that cannot finish leaving nothing behind, damaged
 * files refused (a wrong size, a flipped byte: the checksum) with messages
 * that name no path, the orders cached on disk (built once, rebuilt when
 * damaged), and pages sorted (ties by index), filtered, merged over both
 * splits, sliced and rendered as JSON, CSV and NDJSON; the join columns of
 * version 4 (row, id, label: text made UTF-8, CSV fields quoted, integers
 * where the file's are, text that does not end refused) and files of
 * version 3 read as before.
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
#include <zlib.h>

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
  return ROWS_OVER(N, y, cols);
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

static lsmi_resfile_t *open_ok(const char *job, const char *split) {
  lsmi_resfile_t *f = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_open(dir, job, split, &f, &err), 0);
  assert_non_null(f);
  return f;
}

static int open_status(const char *job, const char *split,
                       lsmi_error_t *err) {
  lsmi_resfile_t *f = NULL;
  int st = lsmi_resfile_open(dir, job, split, &f, err);
  lsmi_resfile_close(f);
  return st;
}

/* The whole text q renders over files f (malloc'd). */
static char *render(lsmi_resfile_t **f, const lsmi_resquery_t *q,
                    size_t *total) {
  lsmi_rescursor_t c;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_rescursor_init(&c, q, f, &err), 0);
  lsmi_strbuf_t b;
  lsmi_strbuf_init(&b, 16);
  /* small pieces: the export's way */
  while (lsmi_rescursor_render(&c, &b, b.len + 40, NULL))
    ;
  assert_false(b.oom);
  if (total)
    *total = c.total;
  lsmi_rescursor_release(&c);
  return b.p;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static void test_round_trip(void **state) {
  (void)state;
  lsmi_rows_t r = make_rows();
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_x", "val", &r, &err), 0);
  lsmi_resfile_t *f = open_ok("job_x", "val");
  const lsmi_rows_t *back = &f->rows;
  assert_int_equal(back->n, N);
  assert_string_equal(f->split, "val");
  assert_memory_equal(back->y, y, sizeof y);
  double *b[9] = {back->r,  back->u1,  back->u2, back->s, back->i1,
                  back->i2, back->i12, back->h1, back->h2};
  for (int k = 0; k < 9; k++)
    assert_memory_equal(b[k], cols[k], sizeof cols[k]);
  lsmi_resfile_close(f);
  /* nothing is left in tmp/ */
  char p[128];
  snprintf(p, sizeof p, "%s/tmp", dir);
  assert_int_equal(rmdir(p), 0);
  mkdir(p, 0700);
  /* an empty split is a valid file too */
  lsmi_rows_t empty = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_x", "train", &empty, &err), 0);
  f = open_ok("job_x", "train");
  assert_int_equal(f->rows.n, 0);
  lsmi_resfile_close(f);
  lsmi_resfile_remove(dir, "job_x");
  assert_int_equal(open_status("job_x", "val", &err), LSMI_ERR_NOTFOUND);
  assert_int_equal(open_status("job_x", "test", &err), LSMI_ERR_NOTFOUND);
}

/* An ensemble's spread travels as four more columns, sortable; files of
 * the first version (no column count, nine columns) and of the second (no
 * checksum) still read. */
static void test_spread_columns_and_old_versions(void **state) {
  (void)state;
  static double sd[4][N];
  lsmi_rows_t r = make_rows();
  for (int k = 0; k < 4; k++)
    for (int i = 0; i < N; i++)
      sd[k][i] = 0.01 * (k + 1) + 0.001 * i;
  r.r_sd = sd[0];
  r.u1_sd = sd[1];
  r.u2_sd = sd[2];
  r.s_sd = sd[3];
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_e", "val", &r, &err), 0);
  lsmi_resfile_t *f = open_ok("job_e", "val");
  assert_memory_equal(f->rows.s_sd, sd[3], sizeof sd[3]);
  assert_memory_equal(f->rows.h2, cols[8], sizeof cols[8]);
  assert_true(lsmi_resfile_has_col(f, LSMI_COL_U2_SD));
  lsmi_resquery_t q;
  lsmi_resquery_init(&q);
  q.limit = 2;
  q.format = LSMI_RES_CSV;
  assert_int_equal(lsmi_resfile_parse_sort("-s_sd", NULL, &q.sort, &q.desc), 0);
  char *body = render(&f, &q, NULL);
  /* the largest s_sd is the last row's */
  const char *want = "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2,r_sd,u1_sd,"
                     "u2_sd,s_sd\n6,val,";
  assert_true(strncmp(body, want, strlen(want)) == 0);
  free(body);
  lsmi_resfile_close(f);

  /* Versions 1 and 2, as the daemon wrote them before. */
  for (int v = 1; v <= 2; v++) {
    char p[160];
    snprintf(p, sizeof p, "%s/results/job_v%d.val", dir, v);
    FILE *o = fopen(p, "wb");
    assert_non_null(o);
    uint64_t n = N, nc = 9;
    fwrite(v == 1 ? "LSMIRES1" : "LSMIRES2", 1, 8, o);
    fwrite(&n, 8, 1, o);
    if (v == 2)
      fwrite(&nc, 8, 1, o);
    fwrite(y, 4, N, o);
    static const char pad[4] = {0};
    fwrite(pad, 1, (N * 4 + 7) / 8 * 8 - N * 4, o);
    for (int k = 0; k < 9; k++)
      fwrite(cols[k], 8, N, o);
    fclose(o);
    f = open_ok(v == 1 ? "job_v1" : "job_v2", "val");
    assert_int_equal(f->rows.n, N);
    assert_memory_equal(f->rows.i12, cols[6], sizeof cols[6]);
    assert_null(f->rows.r_sd);
    assert_false(lsmi_resfile_has_col(f, LSMI_COL_R_SD));
    lsmi_resfile_close(f);
  }
  /* A column count that is neither 9 nor 13 is damage. */
  char p[160];
  snprintf(p, sizeof p, "%s/results/job_e.val", dir);
  FILE *o = fopen(p, "r+b");
  assert_non_null(o);
  uint64_t bad = 11;
  fseek(o, 16, SEEK_SET);
  fwrite(&bad, 8, 1, o);
  fclose(o);
  assert_int_equal(open_status("job_e", "val", &err), LSMI_ERR_FORMAT);
}

/* Flips byte `at` of dir/rel (negative: from the end). */
static void flip(const char *rel, long at) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen(p, "r+b");
  assert_non_null(f);
  fseek(f, at, at < 0 ? SEEK_END : SEEK_SET);
  int c = fgetc(f);
  fseek(f, at, at < 0 ? SEEK_END : SEEK_SET);
  fputc(c ^ 0x10, f);
  fclose(f);
}

static void test_damaged(void **state) {
  (void)state;
  lsmi_rows_t r = make_rows();
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_d", "val", &r, &err), 0);
  lsmi_resfile_close(open_ok("job_d", "val")); /* checked once, remembered */
  /* One flipped byte of a value: the checksum no longer matches. */
  flip("results/job_d.val", 24 + 8 + 8 * 3);
  err = (lsmi_error_t){0};
  assert_int_equal(open_status("job_d", "val", &err), LSMI_ERR_FORMAT);
  assert_non_null(strstr(err.message, "checksum"));
  assert_non_null(strstr(err.message, "job_d"));
  assert_null(strstr(err.message, dir)); /* no server path */
  flip("results/job_d.val", 24 + 8 + 8 * 3);
  lsmi_resfile_close(open_ok("job_d", "val"));
  flip("results/job_d.val", -20); /* the checksum itself */
  assert_int_equal(open_status("job_d", "val", &err), LSMI_ERR_FORMAT);
  char p[128];
  snprintf(p, sizeof p, "%s/results/job_d.val", dir);
  assert_int_equal(truncate(p, 100), 0);
  assert_int_equal(open_status("job_d", "val", &err), LSMI_ERR_FORMAT);
  assert_null(strstr(err.message, dir));
  FILE *f = fopen(p, "wb");
  fputs("not a result file at all", f);
  fclose(f);
  assert_int_equal(open_status("job_d", "val", &err), LSMI_ERR_FORMAT);
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
  lsmi_rows_t r = make_rows();
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
  assert_int_equal(open_status("job_f", "val", &err), LSMI_ERR_NOTFOUND);
}

static json_t *render_json(lsmi_resfile_t **f, const lsmi_resquery_t *q) {
  char *body = render(f, q, NULL);
  json_error_t je;
  json_t *v = json_loads(body, 0, &je);
  free(body);
  assert_non_null(v);
  return v;
}

static void test_pages(void **state) {
  (void)state;
  lsmi_rows_t rows = make_rows();
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_p", "val", &rows, &err), 0);
  assert_int_equal(lsmi_resfile_write(dir, "job_p", "train", &rows, &err), 0);
  lsmi_resfile_t *f = open_ok("job_p", "val");
  lsmi_resquery_t q;
  lsmi_resquery_init(&q);
  q.sort = LSMI_COL_S;
  q.desc = true;
  json_t *v = render_json(&f, &q);
  json_t *rs = json_object_get(v, "rows");
  assert_int_equal(json_array_size(rs), N);
  assert_int_equal(json_integer_value(json_object_get(v, "total")), N);
  double prev = INFINITY;
  int prev_index = -1;
  for (size_t i = 0; i < N; i++) {
    json_t *row = json_array_get(rs, i);
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
  /* the order is cached: one file, used again */
  int cached = entries("cache");
  assert_true(cached >= 1);
  /* a slice of the same order */
  q.offset = 2;
  q.limit = 3;
  json_t *w = render_json(&f, &q);
  assert_int_equal(json_array_size(json_object_get(w, "rows")), 3);
  json_decref(w);
  assert_int_equal(entries("cache"), cached);
  q.offset = 50;
  w = render_json(&f, &q);
  assert_int_equal(json_array_size(json_object_get(w, "rows")), 0);
  json_decref(w);
  /* a damaged cached order is dropped and built again */
  char name[160];
  snprintf(name, sizeof name, "cache/job_p.val.s.desc");
  flip(name, 20);
  q.offset = 0;
  q.limit = 1;
  w = render_json(&f, &q);
  assert_int_equal(json_integer_value(json_object_get(
                       json_array_get(json_object_get(w, "rows"), 0), "index")),
                   prev_index == 0 ? 0 : json_integer_value(json_object_get(
                                             json_array_get(rs, 0), "index")));
  json_decref(w);
  lsmi_resfile_close(f);

  lsmi_resfile_t *t = open_ok("job_p", "train");
  lsmi_resquery_init(&q);
  q.splits[0] = "train";
  q.offset = 1;
  q.limit = 2;
  q.format = LSMI_RES_CSV;
  char *body = render(&t, &q, NULL);
  assert_true(strncmp(body,
                      "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2\n1,train,1,",
                      50) == 0);
  assert_int_equal(count_lines(body), 3);
  free(body);
  lsmi_resquery_init(&q);
  q.splits[0] = "train";
  q.limit = 4;
  q.sort = LSMI_COL_Y;
  q.format = LSMI_RES_NDJSON;
  body = render(&t, &q, NULL);
  assert_int_equal(count_lines(body), 4);
  free(body);
  lsmi_resfile_close(t);
  int before = entries("cache");
  lsmi_resfile_remove(dir, "job_p");
  assert_int_equal(entries("cache"), before - 2); /* -s and y */
}

/* Filters (class, ranges), fields, every row when there is no limit, and
 * both splits merged by the sort column. */
static void test_filters_and_merge(void **state) {
  (void)state;
  lsmi_rows_t rows = make_rows();
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write(dir, "job_m", "val", &rows, &err), 0);
  assert_int_equal(lsmi_resfile_write(dir, "job_m", "train", &rows, &err), 0);
  lsmi_resfile_t *f[2] = {open_ok("job_m", "train"), open_ok("job_m", "val")};
  lsmi_resquery_t q;
  lsmi_resquery_init(&q);
  q.format = LSMI_RES_CSV;
  q.limit = SIZE_MAX;
  q.ny = 1;
  q.ys[0] = 1;
  q.fields = 1u << LSMI_COL_Y | 1u << LSMI_COL_S;
  size_t total = 0;
  char *body = render(&f[1], &q, &total);
  assert_int_equal(total, 3); /* y = 0 1 1 0 2 1 0 */
  const char *head = "index,split,y,s\n1,val,1,";
  assert_true(strncmp(body, head, strlen(head)) == 0);
  assert_int_equal(count_lines(body), 4);
  free(body);
  /* a range on s keeps the rows within it, ends included */
  lsmi_resquery_init(&q);
  q.has_lo = 1u << LSMI_COL_S;
  q.lo[LSMI_COL_S] = cols[3][0];
  q.limit = SIZE_MAX;
  q.format = LSMI_RES_NDJSON;
  size_t want = 0;
  for (int i = 0; i < N; i++)
    want += cols[3][i] >= cols[3][0];
  body = render(&f[1], &q, &total);
  assert_int_equal(total, want);
  assert_int_equal(count_lines(body), want);
  free(body);
  /* split=all: both splits merged by -s, ties train first, then index */
  lsmi_resquery_init(&q);
  q.nsplits = 2;
  q.splits[0] = "train";
  q.splits[1] = "val";
  q.sort = LSMI_COL_S;
  q.desc = true;
  q.limit = 100;
  json_t *v = render_json(f, &q);
  json_t *rs = json_object_get(v, "rows");
  assert_string_equal(json_string_value(json_object_get(v, "split")), "all");
  assert_int_equal(json_array_size(rs), 2 * N);
  for (size_t i = 0; i + 1 < 2 * N; i++) {
    json_t *a = json_array_get(rs, i), *b = json_array_get(rs, i + 1);
    double sa = json_real_value(json_object_get(a, "s"));
    double sb = json_real_value(json_object_get(b, "s"));
    assert_true(sa >= sb);
    if (sa == sb && i % 2 == 0 &&
        !strcmp(json_string_value(json_object_get(a, "split")), "val"))
      assert_string_equal(json_string_value(json_object_get(b, "split")),
                          "val");
  }
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(rs, 0), "split")),
      "train");
  json_decref(v);
  /* index order over both: train then val; an offset past train */
  lsmi_resquery_init(&q);
  q.nsplits = 2;
  q.splits[0] = "train";
  q.splits[1] = "val";
  q.offset = N + 1;
  q.limit = 2;
  v = render_json(f, &q);
  rs = json_object_get(v, "rows");
  assert_int_equal(json_array_size(rs), 2);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(rs, 0), "split")),
      "val");
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(rs, 0), "index")), 1);
  json_decref(v);
  lsmi_resfile_close(f[0]);
  lsmi_resfile_close(f[1]);
}

/* Rewrites the CRC trailer of dir/rel after a test changed its bytes, so
 * that what the reader sees is the change, not a bad checksum. */
static void reseal(const char *rel) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen(p, "r+b");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  unsigned char *b = malloc((size_t)size);
  fseek(f, 0, SEEK_SET);
  assert_int_equal(fread(b, 1, (size_t)size, f), (size_t)size);
  uint64_t crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(size - 16));
  fseek(f, size - 16, SEEK_SET);
  fwrite(&crc, 8, 1, f);
  fclose(f);
  free(b);
}

/* Version 4 keeps what joins a row back to the file: its row, its id
 * (UTF-8: a byte that is not becomes U+FFFD), the class names; rendered
 * as JSON strings (integers when the file's are) and quoted CSV fields. */
static void test_join_columns(void **state) {
  (void)state;
  lsmi_rows_t r = make_rows();
  uint64_t rows[N] = {40, 3, 17, 0, 99, 5, 1234567890123ULL};
  char *ids[N] = {"a,b",  "say \"hi\"", "\xff\xfeok", "caf\xc3\xa9",
                  " pad", "",           "plain"};
  char *names[3] = {"bird", "cat", "dog, big"};
  lsmi_resjoin_t jn = {rows, ids, false, names, 3, false};
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_resfile_write_ex(dir, "job_j", "val", &r, &jn, &err),
                   0);
  lsmi_resfile_t *f = open_ok("job_j", "val");
  assert_int_equal(f->version, 4);
  assert_memory_equal(f->rows.h2, cols[8], sizeof cols[8]);
  for (int c = LSMI_COL_ROW; c <= LSMI_COL_LABEL; c++)
    assert_true(lsmi_resfile_has_col(f, (lsmi_rescol_t)c));
  assert_true(lsmi_resfile_value(f, LSMI_COL_ROW, 6) == 1234567890123.0);
  assert_string_equal(lsmi_resfile_id(f, 0), "a,b");
  assert_string_equal(lsmi_resfile_id(f, 2), "\xef\xbf\xbd\xef\xbf\xbdok");
  assert_string_equal(lsmi_resfile_id(f, 3), "caf\xc3\xa9");
  assert_string_equal(lsmi_resfile_id(f, 5), "");
  assert_null(lsmi_resfile_id(f, N));
  assert_string_equal(lsmi_resfile_label(f, 2), "dog, big");
  assert_null(lsmi_resfile_label(f, 3));
  assert_false(lsmi_resfile_col_numeric(LSMI_COL_ID));
  assert_true(lsmi_resfile_col_numeric(LSMI_COL_ROW));

  /* JSON: every row's join, in jansson's strings. */
  lsmi_resquery_t q;
  lsmi_resquery_init(&q);
  json_t *v = render_json(&f, &q);
  json_t *rs = json_object_get(v, "rows");
  for (size_t i = 0; i < N; i++) {
    json_t *o = json_array_get(rs, i);
    assert_int_equal(json_integer_value(json_object_get(o, "row")), rows[i]);
    assert_string_equal(json_string_value(json_object_get(o, "id")),
                        lsmi_resfile_id(f, i));
    assert_string_equal(json_string_value(json_object_get(o, "label")),
                        names[y[i]]);
  }
  json_decref(v);
  /* Sorted by row, and a range of rows. */
  q.sort = LSMI_COL_ROW;
  q.has_lo = 1u << LSMI_COL_ROW;
  q.lo[LSMI_COL_ROW] = 4;
  q.fields = 1u << LSMI_COL_ID;
  v = render_json(&f, &q);
  rs = json_object_get(v, "rows");
  assert_int_equal(json_array_size(rs), 5); /* rows 5, 17, 40, 99, 1.2e12 */
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(rs, 0), "id")), "");
  assert_null(json_object_get(json_array_get(rs, 0), "s"));
  json_decref(v);
  /* CSV: the `lsmi fit` header, then row, id, label; fields quoted as
   * RFC 4180 says. */
  lsmi_resquery_init(&q);
  q.format = LSMI_RES_CSV;
  q.fields = 1u << LSMI_COL_ID | 1u << LSMI_COL_LABEL | 1u << LSMI_COL_ROW;
  char *body = render(&f, &q, NULL);
  assert_string_equal(body, "index,split,row,id,label\n"
                            "0,val,40,\"a,b\",bird\n"
                            "1,val,3,\"say \"\"hi\"\"\",cat\n"
                            "2,val,17,\xef\xbf\xbd\xef\xbf\xbdok,cat\n"
                            "3,val,0,caf\xc3\xa9,bird\n"
                            "4,val,99,\" pad\",\"dog, big\"\n"
                            "5,val,5,,cat\n"
                            "6,val,1234567890123,plain,bird\n");
  free(body);
  lsmi_resfile_close(f);

  /* Ids and class names that are integers are JSON integers; a file
   * whose rows are at their index stores none, and row is then index. */
  char *nums[N] = {"12", "-3", "0", "7", "100", "5", "1"};
  char *cnames[3] = {"3", "7", "42"};
  lsmi_resjoin_t jn2 = {NULL, nums, true, cnames, 3, true};
  assert_int_equal(lsmi_resfile_write_ex(dir, "job_k", "val", &r, &jn2, &err),
                   0);
  f = open_ok("job_k", "val");
  lsmi_resquery_init(&q);
  v = render_json(&f, &q);
  json_t *o = json_array_get(json_object_get(v, "rows"), 1);
  assert_int_equal(json_integer_value(json_object_get(o, "id")), -3);
  assert_int_equal(json_integer_value(json_object_get(o, "label")), 7);
  assert_null(json_object_get(o, "row")); /* not unless asked for */
  json_decref(v);
  q.fields = 1u << LSMI_COL_ROW;
  v = render_json(&f, &q);
  o = json_array_get(json_object_get(v, "rows"), 4);
  assert_int_equal(json_integer_value(json_object_get(o, "row")), 4);
  json_decref(v);
  json_t *lab = lsmi_resfile_label_json(f, 2);
  assert_int_equal(json_integer_value(lab), 42);
  json_decref(lab);
  lsmi_resfile_close(f);

  /* Text that does not end in a NUL (with a good checksum) is damage. */
  char rel[64];
  snprintf(rel, sizeof rel, "results/job_k.val");
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  struct stat sb;
  assert_int_equal(stat(p, &sb), 0);
  FILE *w = fopen(p, "r+b");
  fseek(w, sb.st_size - 16 - 1, SEEK_SET);
  fputc('x', w);
  fclose(w);
  reseal(rel);
  err = (lsmi_error_t){0};
  assert_int_equal(open_status("job_k", "val", &err), LSMI_ERR_FORMAT);
  assert_non_null(strstr(err.message, "cut short"));
}

/* Which rows a dataset's results carry: `lsmi fit`'s rule. */
static void test_join_rule(void **state) {
  (void)state;
  lsmi_error_t err = {0};
  lsmi_dataset_t *ds = lsmi_dataset_create(4, 2, 1, 1, 2, &err);
  assert_non_null(ds);
  lsmi_resjoin_t jn = lsmi_resjoin_of(ds, &ds->val);
  assert_null(jn.row); /* every row at its index: row is index */
  assert_null(jn.id);
  assert_null(jn.class_names);
  ds->val.row[1] = 7; /* val drawn from train: rows elsewhere */
  jn = lsmi_resjoin_of(ds, &ds->train);
  assert_ptr_equal(jn.row, ds->train.row); /* for both splits */
  lsmi_dataset_destroy(ds);
}

/* Files of version 3 (written before rows, ids and labels were kept) are
 * read as before, and say why they have none of those. */
static void test_version_3(void **state) {
  (void)state;
  char p[160];
  snprintf(p, sizeof p, "%s/results/job_v3.val", dir);
  FILE *o = fopen(p, "wb");
  assert_non_null(o);
  uint64_t head[2] = {N, 9};
  uLong crc = crc32(0L, Z_NULL, 0);
  static const char pad[4] = {0};
  size_t padn = (N * 4 + 7) / 8 * 8 - N * 4;
#define PUT(ptr, len)                                                          \
  do {                                                                         \
    fwrite(ptr, 1, len, o);                                                    \
    crc = crc32(crc, (const Bytef *)(ptr), (uInt)(len));                       \
  } while (0)
  PUT("LSMIRES3", 8);
  PUT(head, sizeof head);
  PUT(y, sizeof y);
  PUT(pad, padn);
  for (int k = 0; k < 9; k++)
    PUT(cols[k], sizeof cols[k]);
#undef PUT
  uint64_t c64 = crc;
  fwrite(&c64, 8, 1, o);
  fwrite("LSMICRC1", 1, 8, o);
  fclose(o);
  make_rows();
  lsmi_resfile_t *f = open_ok("job_v3", "val");
  assert_int_equal(f->version, 3);
  assert_memory_equal(f->rows.s, cols[3], sizeof cols[3]);
  for (int c = LSMI_COL_ROW; c <= LSMI_COL_LABEL; c++) {
    assert_false(lsmi_resfile_has_col(f, (lsmi_rescol_t)c));
    assert_non_null(
        strstr(lsmi_resfile_why_not(f, (lsmi_rescol_t)c), "version"));
  }
  assert_true(isnan(lsmi_resfile_value(f, LSMI_COL_ROW, 0)));
  lsmi_resquery_t q;
  lsmi_resquery_init(&q);
  q.format = LSMI_RES_CSV;
  char *body = render(&f, &q, NULL);
  assert_true(strncmp(body, "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2\n", 40) ==
              0);
  free(body);
  lsmi_resfile_close(f);
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
  assert_int_equal(lsmi_resfile_parse_sort("-row", NULL, &c, &desc), 0);
  assert_int_equal(c, LSMI_COL_ROW);
  assert_int_equal(lsmi_resfile_parse_sort("id", NULL, &c, &desc),
                   LSMI_ERR_INVALID); /* text: no order */
  assert_int_equal(lsmi_resfile_parse_sort("label", NULL, &c, &desc),
                   LSMI_ERR_INVALID);
  assert_int_equal(lsmi_resfile_col_parse("u2,s", 2, &c), 0);
  assert_int_equal(c, LSMI_COL_U2);
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
      cmocka_unit_test(test_spread_columns_and_old_versions),
      cmocka_unit_test(test_write_fails_cleanly),
      cmocka_unit_test(test_pages),
      cmocka_unit_test(test_filters_and_merge),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_join_columns),
      cmocka_unit_test(test_join_rule),
      cmocka_unit_test(test_version_3),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
