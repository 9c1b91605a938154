/*
 * resfile.c — result column files and their pages. The writer runs on a
 * worker thread for its own job; readers run on HTTP threads over files
 * that no longer change. Nothing is shared, so nothing is locked.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "resfile.h"
#include "util.h"

static const char magic1[8] = {'L', 'S', 'M', 'I', 'R', 'E', 'S', '1'};
static const char magic[8] = {'L', 'S', 'M', 'I', 'R', 'E', 'S', '2'};
static const char *col_names[LSMI_COL_COUNT] = {
    "index", "y",  "r",  "u1",   "u2",    "s",     "i1",  "i2",
    "i12",   "h1", "h2", "r_sd", "u1_sd", "u2_sd", "s_sd"};

enum { N_PARTS = 9, N_SD = 4, N_MAX = N_PARTS + N_SD };

const char *lsmi_resfile_col_name(lsmi_rescol_t col) {
  return (col >= 0 && col < LSMI_COL_COUNT) ? col_names[col] : "?";
}

/* Where the float64 columns of rows are, in file order. */
static void dcols(lsmi_rows_t *r, double **out[N_MAX]) {
  double **all[N_MAX] = {&r->r,     &r->u1,    &r->u2,  &r->s,  &r->i1,
                         &r->i2,    &r->i12,   &r->h1,  &r->h2, &r->r_sd,
                         &r->u1_sd, &r->u2_sd, &r->s_sd};
  memcpy(out, all, sizeof all);
}

/* 9 columns, or 13 with an ensemble's spread. */
static int ncols(const lsmi_rows_t *r) { return r->r_sd ? N_MAX : N_PARTS; }

static size_t y_bytes(size_t n) { return (n * 4 + 7) & ~(size_t)7; }

/* The columns of rows, in file order, to the temp file of d. */
static int write_columns(lsmi_durable_t *d, const lsmi_rows_t *rows) {
  static const char zero[8] = {0};
  uint64_t head[2] = {rows->n, (uint64_t)ncols(rows)};
  size_t yb = y_bytes(rows->n);
  int rc = lsmi_durable_write(d, magic, sizeof magic);
  if (rc == 0)
    rc = lsmi_durable_write(d, head, sizeof head);
  if (rc || rows->n == 0)
    return rc;
  rc = lsmi_durable_write(d, rows->y, rows->n * 4);
  if (rc == 0 && yb > rows->n * 4)
    rc = lsmi_durable_write(d, zero, yb - rows->n * 4);
  double **c[N_MAX];
  dcols((lsmi_rows_t *)rows, c);
  for (int k = 0; k < ncols(rows) && rc == 0; k++)
    rc = lsmi_durable_write(d, *c[k], rows->n * sizeof(double));
  return rc;
}

int lsmi_resfile_write(const char *data_dir, const char *job_id,
                       const char *split, const lsmi_rows_t *rows,
                       lsmi_error_t *err) {
  char tmpdir[PATH_MAX], dst[PATH_MAX];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", data_dir);
  snprintf(dst, sizeof dst, "%s/results/%s.%s", data_dir, job_id, split);
  lsmi_durable_t d = LSMI_DURABLE_INIT;
  int rc = lsmi_durable_begin(&d, tmpdir, dst, 0600);
  if (rc == 0)
    rc = write_columns(&d, rows);
  if (rc == 0)
    rc = lsmi_durable_commit(&d, dst);
  if (rc == 0)
    return LSMI_OK;
  lsmi_durable_abort(&d);
  return lsmi_error_set(err, LSMI_ERR_IO, "results",
                        "cannot write results %s: %s", dst, strerror(-rc));
}

void lsmi_resfile_rows_free(lsmi_rows_t *rows) {
  if (rows == NULL)
    return;
  free(rows->y); /* the one block every column points into */
  memset(rows, 0, sizeof *rows);
}

int lsmi_resfile_read(const char *data_dir, const char *job_id,
                      const char *split, lsmi_rows_t *rows, lsmi_error_t *err) {
  memset(rows, 0, sizeof *rows);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/results/%s.%s", data_dir, job_id, split);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return lsmi_error_set(err, LSMI_ERR_IO, "results", "no result file %s",
                          path);
  struct stat sb;
  char head[24];
  int st = LSMI_OK;
  /* Version 2 has a column count after n; version 1 always 9 columns. */
  bool v1 = false;
  uint64_t n = 0, nc = N_PARTS;
  size_t hlen = 24;
  if (fstat(fd, &sb) || read(fd, head, 16) != 16 ||
      (memcmp(head, magic, 8) && memcmp(head, magic1, 8))) {
    st = lsmi_error_set(err, LSMI_ERR_FORMAT, "results",
                        "result file %s is damaged", path);
    goto out;
  }
  v1 = memcmp(head, magic1, 8) == 0;
  memcpy(&n, head + 8, 8);
  if (v1)
    hlen = 16;
  else if (read(fd, head + 16, 8) == 8)
    memcpy(&nc, head + 16, 8);
  else
    nc = 0;
  if ((nc != N_PARTS && nc != N_MAX) || n > (uint64_t)SIZE_MAX / 128 ||
      (uint64_t)sb.st_size != hlen + y_bytes((size_t)n) + 8 * nc * n) {
    st = lsmi_error_set(err, LSMI_ERR_FORMAT, "results",
                        "result file %s has the wrong size", path);
    goto out;
  }
  size_t body = (size_t)sb.st_size - hlen;
  char *block = malloc(body ? body : 1);
  if (block == NULL) {
    st = lsmi_error_set(err, LSMI_ERR_NOMEM, "results", "out of memory");
    goto out;
  }
  size_t got = 0;
  while (got < body) {
    ssize_t r = read(fd, block + got, body - got);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      free(block);
      st =
          lsmi_error_set(err, LSMI_ERR_IO, "results", "short read of %s", path);
      goto out;
    }
    got += (size_t)r;
  }
  rows->n = (size_t)n;
  rows->y = (int32_t *)(void *)block;
  double *d = (double *)(void *)(block + y_bytes(rows->n));
  double **c[N_MAX];
  dcols(rows, c);
  for (int k = 0; k < (int)nc; k++)
    *c[k] = d + (size_t)k * rows->n;
out:
  close(fd);
  return st;
}

void lsmi_resfile_remove(const char *data_dir, const char *job_id) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/results/%s.train", data_dir, job_id);
  unlink(path);
  snprintf(path, sizeof path, "%s/results/%s.val", data_dir, job_id);
  unlink(path);
}

int lsmi_resfile_parse_sort(const char *sort, const char *order,
                            lsmi_rescol_t *col, bool *desc) {
  *col = LSMI_COL_INDEX;
  *desc = false;
  if (order && *order) {
    if (!strcmp(order, "desc"))
      *desc = true;
    else if (strcmp(order, "asc"))
      return LSMI_ERR_INVALID;
  }
  if (sort == NULL || *sort == '\0')
    return LSMI_OK;
  if (*sort == '-') {
    *desc = true;
    sort++;
  } else if (*sort == '+') {
    sort++;
  }
  for (int k = 0; k < LSMI_COL_COUNT; k++)
    if (!strcmp(sort, col_names[k])) {
      *col = (lsmi_rescol_t)k;
      return LSMI_OK;
    }
  return LSMI_ERR_INVALID;
}

int lsmi_resfile_parse_format(const char *name, lsmi_resformat_t *fmt) {
  if (name == NULL || !strcmp(name, "json"))
    *fmt = LSMI_RES_JSON;
  else if (!strcmp(name, "csv"))
    *fmt = LSMI_RES_CSV;
  else if (!strcmp(name, "ndjson"))
    *fmt = LSMI_RES_NDJSON;
  else
    return LSMI_ERR_INVALID;
  return LSMI_OK;
}

typedef struct sort_ctx {
  const lsmi_rows_t *rows;
  lsmi_rescol_t col;
  bool desc;
} sort_ctx_t;

static double value(const lsmi_rows_t *r, lsmi_rescol_t c, size_t i) {
  switch (c) {
  case LSMI_COL_INDEX:
    return (double)i;
  case LSMI_COL_Y:
    return (double)r->y[i];
  case LSMI_COL_R:
    return r->r[i];
  case LSMI_COL_U1:
    return r->u1[i];
  case LSMI_COL_U2:
    return r->u2[i];
  case LSMI_COL_S:
    return r->s[i];
  case LSMI_COL_I1:
    return r->i1[i];
  case LSMI_COL_I2:
    return r->i2[i];
  case LSMI_COL_I12:
    return r->i12[i];
  case LSMI_COL_H1:
    return r->h1[i];
  case LSMI_COL_H2:
    return r->h2[i];
  case LSMI_COL_R_SD:
    return r->r_sd[i];
  case LSMI_COL_U1_SD:
    return r->u1_sd[i];
  case LSMI_COL_U2_SD:
    return r->u2_sd[i];
  case LSMI_COL_S_SD:
    return r->s_sd[i];
  default:
    return 0.0;
  }
}

bool lsmi_resfile_has_col(const lsmi_rows_t *rows, lsmi_rescol_t col) {
  return col >= 0 && col < LSMI_COL_COUNT &&
         (col < LSMI_COL_R_SD || rows->r_sd != NULL);
}

/* Orders by the column (NaN last either way), ties by index ascending. */
static int cmp(const void *a, const void *b, void *arg) {
  const sort_ctx_t *c = arg;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  double x = value(c->rows, c->col, i), y = value(c->rows, c->col, j);
  int xn = isnan(x), yn = isnan(y);
  int r = 0;
  if (xn || yn)
    r = xn - yn;
  else if (x != y)
    r = ((x < y) != c->desc) ? -1 : 1;
  if (r)
    return r;
  return i < j ? -1 : (i > j);
}

/* A JSON number, or null for a value JSON cannot hold. */
static void put_num(lsmi_strbuf_t *b, const char *key, double v, bool json) {
  if (json) {
    if (isfinite(v))
      lsmi_strbuf_printf(b, ",\"%s\":%.17g", key, v);
    else
      lsmi_strbuf_printf(b, ",\"%s\":null", key);
  } else {
    lsmi_strbuf_printf(b, ",%.17g", v);
  }
}

static void put_row(lsmi_strbuf_t *b, const lsmi_rows_t *r, size_t i,
                    const char *split, bool json) {
  if (json)
    lsmi_strbuf_printf(b, "{\"index\":%zu,\"split\":\"%s\",\"y\":%d", i, split,
                       (int)r->y[i]);
  else
    lsmi_strbuf_printf(b, "%zu,%s,%d", i, split, (int)r->y[i]);
  for (int k = LSMI_COL_R; k < LSMI_COL_COUNT; k++)
    if (lsmi_resfile_has_col(r, (lsmi_rescol_t)k))
      put_num(b, col_names[k], value(r, (lsmi_rescol_t)k, i), json);
  lsmi_strbuf_printf(b, json ? "}" : "\n");
}

char *lsmi_resfile_render(const lsmi_rows_t *rows, const lsmi_respage_t *q,
                          size_t *len, const char **content_type) {
  size_t n = rows->n;
  size_t start = q->offset < n ? q->offset : n;
  size_t count = n - start < q->limit ? n - start : q->limit;
  size_t *order = NULL;
  if (!(q->sort == LSMI_COL_INDEX && !q->desc) && n > 0) {
    order = malloc(n * sizeof *order);
    if (order == NULL)
      return NULL;
    for (size_t i = 0; i < n; i++)
      order[i] = i;
    sort_ctx_t ctx = {rows, q->sort, q->desc};
    qsort_r(order, n, sizeof *order, cmp, &ctx);
  }
  lsmi_strbuf_t b;
  lsmi_strbuf_init(&b, 4096 + count * 256);
  if (b.oom) {
    free(b.p);
    free(order);
    return NULL;
  }
  switch (q->format) {
  case LSMI_RES_JSON:
    *content_type = "application/json";
    lsmi_strbuf_printf(
        &b,
        "{\"split\":\"%s\",\"sort\":\"%s%s\",\"total\":%zu,\"offset\":%zu,"
        "\"limit\":%zu,\"rows\":[",
        q->split, q->desc ? "-" : "", col_names[q->sort], n, q->offset,
        q->limit);
    break;
  case LSMI_RES_CSV:
    *content_type = "text/csv; charset=utf-8";
    lsmi_strbuf_printf(&b, "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2%s\n",
                       rows->r_sd ? ",r_sd,u1_sd,u2_sd,s_sd" : "");
    break;
  case LSMI_RES_NDJSON:
    *content_type = "application/x-ndjson";
    break;
  }
  for (size_t k = 0; k < count; k++) {
    size_t i = order ? order[start + k] : start + k;
    if (q->format == LSMI_RES_JSON && k)
      lsmi_strbuf_printf(&b, ",");
    put_row(&b, rows, i, q->split, q->format != LSMI_RES_CSV);
    if (q->format == LSMI_RES_NDJSON)
      lsmi_strbuf_printf(&b, "\n");
  }
  if (q->format == LSMI_RES_JSON)
    lsmi_strbuf_printf(&b, "]}");
  free(order);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  *len = b.len;
  return b.p;
}
