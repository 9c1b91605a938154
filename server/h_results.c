/*
 * h_results.c — a succeeded job's per-sample rows: GET /v1/jobs/{id}/results
 * (split or all, filters, fields, sort; a JSON page with its `next` link,
 * or CSV / NDJSON streamed whole when no limit is given), GET
 * /v1/jobs/{id}/results/{split}/{index} (one sample) and GET
 * /v1/jobs/{id}/aggregates (histograms, quantiles and means per class,
 * computed here). Rows are read from the job's mapped result files
 * (resfile.c), so memory does not grow with the job. See handlers.h for how
 * a handler answers.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "resagg.h"
#include "resfile.h"
#include "util.h"

/* ---- the job and its files ---- */

/* 0 when the tenant's job r->id has succeeded; a 404 or 409 otherwise. */
static int job_succeeded(lsmi_req_t *r) {
  json_t *job = NULL;
  int state = -1;
  int st = lsmi_store_job_get(r->h->store, r->tenant, r->id, &job, &state);
  json_decref(job);
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL, "no job '%s'", r->id);
  if (st)
    return lsmi_http_store_failed(r, st);
  if (state != LSMI_JOB_SUCCEEDED)
    return lsmi_error_set(&r->err, LSMI_ERR_CONFLICT, NULL,
                          "job '%s' is %s; results exist once it has "
                          "succeeded",
                          r->id, lsmi_job_state_name(state));
  return LSMI_OK;
}

/* Opens the files of the splits: 0, or a 500 (a succeeded job's file the
 * server cannot read is its fault; the message names no path). */
static int open_files(lsmi_req_t *r, int nsplits, const char *const *splits,
                      lsmi_resfile_t **f) {
  for (int s = 0; s < nsplits; s++) {
    lsmi_error_t err = {0};
    int st = lsmi_resfile_open(r->h->cfg->data_dir, r->id, splits[s], &f[s],
                               &err);
    if (st) {
      for (int k = 0; k < s; k++)
        lsmi_resfile_close(f[k]);
      lsmi_util_log("results_error",
                    json_pack("{s:s, s:s, s:s}", "job", r->id, "split",
                              splits[s], "detail", err.message));
      return lsmi_error_set(&r->err, st == LSMI_ERR_NOMEM ? st : LSMI_ERR_IO,
                            NULL, "%s", err.message);
    }
  }
  return LSMI_OK;
}

static void close_files(int nsplits, lsmi_resfile_t **f) {
  for (int s = 0; s < nsplits; s++)
    lsmi_resfile_close(f[s]);
}

/* ---- the query ---- */

/* split=train|val|all (default val) into q: 0 or a 400. */
static int parse_split(lsmi_req_t *r, int *nsplits, const char **splits) {
  const char *v = lsmi_http_arg(r, "split");
  *nsplits = 1;
  if (v == NULL || *v == '\0' || !strcmp(v, "val"))
    splits[0] = "val";
  else if (!strcmp(v, "train"))
    splits[0] = "train";
  else if (!strcmp(v, "all")) {
    *nsplits = 2;
    splits[0] = "train";
    splits[1] = "val";
  } else
    return lsmi_http_bad_request(r, "split", "split must be train, val or "
                                             "all");
  return LSMI_OK;
}

/* A finite number: 0 or LSMI_ERR_INVALID. */
static int parse_double(const char *v, double *out) {
  char *end = NULL;
  errno = 0;
  *out = strtod(v, &end);
  return (end == v || *end || errno || !isfinite(*out)) ? LSMI_ERR_INVALID
                                                        : LSMI_OK;
}

/* fields=COL,COL,...: 0 or a 400. */
static int parse_fields(lsmi_req_t *r, uint32_t *fields) {
  const char *v = lsmi_http_arg(r, "fields");
  *fields = 0;
  if (v == NULL || *v == '\0')
    return LSMI_OK;
  for (const char *p = v; *p;) {
    size_t len = strcspn(p, ",");
    lsmi_rescol_t c;
    if (lsmi_resfile_col_parse(p, len, &c))
      return lsmi_http_bad_request(r, "fields",
                                   "fields must be a comma list of index, "
                                   "y, r, u1, u2, s, i1, i2, i12, h1, h2, "
                                   "r_sd, u1_sd, u2_sd, s_sd, row, id, "
                                   "label");
    *fields |= 1u << c;
    p += len + (p[len] == ',');
  }
  return LSMI_OK;
}

/* y=K,K,...: 0 or a 400. */
static int parse_classes(lsmi_req_t *r, lsmi_resquery_t *q) {
  const char *v = lsmi_http_arg(r, "y");
  if (v == NULL || *v == '\0')
    return LSMI_OK;
  for (const char *p = v; *p;) {
    char *end = NULL;
    errno = 0;
    long y = strtol(p, &end, 10);
    if (end == p || (*end && *end != ',') || errno || y < 0 ||
        y > INT32_MAX || q->ny == LSMI_RES_MAX_Y)
      return lsmi_http_bad_request(r, "y",
                                   "y must be a comma list of at most %d "
                                   "class labels (whole numbers >= 0)",
                                   LSMI_RES_MAX_Y);
    q->ys[q->ny++] = (int32_t)y;
    p = end + (*end == ',');
  }
  return LSMI_OK;
}

/* COL_min= and COL_max= for every column of numbers: 0 or a 400. */
static int parse_ranges(lsmi_req_t *r, lsmi_resquery_t *q) {
  for (int c = 0; c < LSMI_COL_COUNT; c++)
    for (int hi = 0; hi < 2 && lsmi_resfile_col_numeric((lsmi_rescol_t)c);
         hi++) {
      char name[32];
      snprintf(name, sizeof name, "%s_%s",
               lsmi_resfile_col_name((lsmi_rescol_t)c), hi ? "max" : "min");
      const char *v = lsmi_http_arg(r, name);
      if (v == NULL)
        continue;
      double x;
      if (parse_double(v, &x))
        return lsmi_http_bad_request(r, name, "%s must be a finite number",
                                     name);
      (hi ? q->hi : q->lo)[c] = x;
      *(hi ? &q->has_hi : &q->has_lo) |= 1u << c;
    }
  return LSMI_OK;
}

/* offset and limit: a JSON page has at most --page-limit rows (default
 * 100); CSV and NDJSON have every row when limit is absent. */
static int parse_window(lsmi_req_t *r, lsmi_resquery_t *q) {
  uint64_t offset = 0, limit = 0;
  const char *lv = lsmi_http_arg(r, "limit");
  if (q->format != LSMI_RES_JSON && (lv == NULL || *lv == '\0')) {
    const char *ov = lsmi_http_arg(r, "offset");
    char *end = NULL;
    errno = 0;
    unsigned long long o = ov && *ov ? strtoull(ov, &end, 10) : 0;
    if (ov && *ov && (*end || errno || *ov == '-'))
      return lsmi_http_bad_request(r, "offset",
                                   "offset must be a whole number >= 0");
    q->offset = (size_t)o;
    q->limit = SIZE_MAX;
    return LSMI_OK;
  }
  if (q->format != LSMI_RES_JSON && lv) { /* exports: any positive limit */
    char *end = NULL;
    errno = 0;
    unsigned long long l = strtoull(lv, &end, 10);
    if (*end || errno || l == 0 || *lv == '-')
      return lsmi_http_bad_request(r, "limit",
                                   "limit must be a whole number >= 1");
    const char *ov = lsmi_http_arg(r, "offset");
    unsigned long long o = ov && *ov ? strtoull(ov, &end, 10) : 0;
    if (ov && *ov && (*end || *ov == '-'))
      return lsmi_http_bad_request(r, "offset",
                                   "offset must be a whole number >= 0");
    q->offset = (size_t)o;
    q->limit = (size_t)l;
    return LSMI_OK;
  }
  int st = lsmi_http_page_args(r, &offset, &limit);
  q->offset = (size_t)offset;
  q->limit = (size_t)limit;
  return st;
}

/* The whole results query: 0 or a 400. */
static int parse_query(lsmi_req_t *r, lsmi_resquery_t *q) {
  lsmi_resquery_init(q);
  int st = parse_split(r, &q->nsplits, q->splits);
  if (st)
    return st;
  if (lsmi_resfile_parse_sort(lsmi_http_arg(r, "sort"),
                              lsmi_http_arg(r, "order"), &q->sort, &q->desc))
    return lsmi_http_bad_request(r, "sort",
                                 "sort must be one of index, y, r, u1, u2, "
                                 "s, i1, i2, i12, h1, h2, row (with an "
                                 "ensemble also r_sd, u1_sd, u2_sd, s_sd; a "
                                 "leading '-' sorts descending) and order "
                                 "asc or desc");
  if (lsmi_resfile_parse_format(lsmi_http_arg(r, "format"), &q->format))
    return lsmi_http_bad_request(r, "format",
                                 "format must be json, csv or ndjson");
  if ((st = parse_window(r, q)) || (st = parse_fields(r, &q->fields)) ||
      (st = parse_classes(r, q)))
    return st;
  return parse_ranges(r, q);
}

/* A 400 when the query names a column the job has not (the spread
 * columns come with an ensemble; row, id and label with the file). */
static int check_columns(lsmi_req_t *r, const lsmi_resquery_t *q,
                         const lsmi_resfile_t *f) {
  uint32_t used = q->fields | q->has_lo | q->has_hi | (1u << q->sort);
  for (int c = 0; c < LSMI_COL_COUNT; c++)
    if ((used >> c & 1u) && !lsmi_resfile_has_col(f, (lsmi_rescol_t)c)) {
      const char *field = c == (int)q->sort ? "sort" : "fields";
      if (!(q->fields >> c & 1u) && c != (int)q->sort)
        field = lsmi_resfile_col_name((lsmi_rescol_t)c);
      return lsmi_http_bad_request(r, field, "this job has no %s column: %s",
                                   lsmi_resfile_col_name((lsmi_rescol_t)c),
                                   lsmi_resfile_why_not(f, (lsmi_rescol_t)c));
    }
  return LSMI_OK;
}

/* ---- the `next` link of a JSON page ---- */

typedef struct link_ctx {
  lsmi_strbuf_t *b;
  bool first;
} link_ctx_t;

/* Appends s percent-encoded (RFC 3986 unreserved characters stay). */
static void put_encoded(lsmi_strbuf_t *b, const char *s) {
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~' || c == ',')
      lsmi_strbuf_printf(b, "%c", c);
    else
      lsmi_strbuf_printf(b, "%%%02X", c);
  }
}

static enum MHD_Result link_arg(void *cls, enum MHD_ValueKind kind,
                                const char *key, const char *value) {
  link_ctx_t *l = cls;
  (void)kind;
  if (!strcmp(key, "offset"))
    return MHD_YES;
  lsmi_strbuf_printf(l->b, "%s", l->first ? "?" : "&");
  l->first = false;
  put_encoded(l->b, key);
  if (value) {
    lsmi_strbuf_printf(l->b, "=");
    put_encoded(l->b, value);
  }
  return MHD_YES;
}

/* The path of the page after q's (the same query, the next offset) into
 * b, or nothing when q's is the last. */
static void next_link(lsmi_req_t *r, const lsmi_resquery_t *q, size_t total,
                      lsmi_strbuf_t *b) {
  if (q->offset + q->limit >= total)
    return;
  lsmi_strbuf_printf(b, "/v1/jobs/%s/results", r->id);
  link_ctx_t l = {b, true};
  lsmi_http_each_arg(r, link_arg, &l);
  lsmi_strbuf_printf(b, "%soffset=%zu", l.first ? "?" : "&",
                     q->offset + q->limit);
}

/* ---- answers ---- */

/* A streamed export: the files and the cursor live until libmicrohttpd
 * has sent it. */
typedef struct export {
  lsmi_resquery_t q;
  lsmi_resfile_t *f[2];
  lsmi_rescursor_t c;
  lsmi_strbuf_t b;
  size_t off;
  bool more;
} export_t;

static void export_free(void *cls) {
  export_t *e = cls;
  lsmi_rescursor_release(&e->c);
  close_files(e->q.nsplits, e->f);
  free(e->b.p);
  free(e);
}

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max) {
  export_t *e = cls;
  (void)pos;
  if (e->off == e->b.len) {
    if (!e->more)
      return MHD_CONTENT_READER_END_OF_STREAM;
    e->b.len = 0;
    e->off = 0;
    e->more = lsmi_rescursor_render(&e->c, &e->b, 60 * 1024, NULL);
    if (e->b.oom)
      return MHD_CONTENT_READER_END_WITH_ERROR;
    if (e->b.len == 0)
      return MHD_CONTENT_READER_END_OF_STREAM;
  }
  size_t k = e->b.len - e->off < max ? e->b.len - e->off : max;
  memcpy(buf, e->b.p + e->off, k);
  e->off += k;
  return (ssize_t)k;
}

static int reply_export(lsmi_req_t *r, export_t *e) {
  char total[32], disp[160];
  snprintf(total, sizeof total, "%zu", e->c.total);
  const char *ext = e->q.format == LSMI_RES_CSV ? "csv" : "ndjson";
  snprintf(disp, sizeof disp, "attachment; filename=\"%s-%s.%s\"", r->id,
           e->q.nsplits > 1 ? "all" : e->q.splits[0], ext);
  lsmi_hdr_t hd[] = {
      {"X-Total-Count", total}, {"Content-Disposition", disp}, {NULL, NULL}};
  lsmi_strbuf_init(&e->b, 64 * 1024);
  e->more = !e->b.oom;
  return lsmi_http_reply_stream(
      r, 200,
      e->q.format == LSMI_RES_CSV ? "text/csv; charset=utf-8"
                                  : "application/x-ndjson",
      export_read, e, export_free, hd);
}

static int reply_page(lsmi_req_t *r, export_t *e) {
  lsmi_strbuf_t link, extra, b;
  lsmi_strbuf_init(&link, 256);
  next_link(r, &e->q, e->c.total, &link);
  lsmi_strbuf_init(&extra, 512);
  if (link.len) {
    lsmi_strbuf_printf(&extra, "\"next\":\"");
    lsmi_strbuf_printf(&extra, "%s", link.p); /* no quotes: all encoded */
    lsmi_strbuf_printf(&extra, "\",");
  } else {
    lsmi_strbuf_printf(&extra, "\"next\":null,");
  }
  lsmi_strbuf_init(&b, 4096 + (e->q.limit < 100000 ? e->q.limit : 0) * 256);
  while (lsmi_rescursor_render(&e->c, &b, SIZE_MAX, extra.p) && !b.oom)
    ;
  char total[32], lh[600];
  snprintf(total, sizeof total, "%zu", e->c.total);
  snprintf(lh, sizeof lh, "<%s>; rel=\"next\"", link.len ? link.p : "");
  lsmi_hdr_t hd[] = {{"X-Total-Count", total},
                     {link.len && link.len < 500 ? "Link" : NULL, lh},
                     {NULL, NULL}};
  bool oom = b.oom || link.oom || extra.oom;
  free(link.p);
  free(extra.p);
  export_free(e);
  if (oom) {
    free(b.p);
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  }
  return lsmi_http_reply(r, 200, "application/json", b.p, b.len, false, hd);
}

int lsmi_h_results_get(lsmi_req_t *r) {
  export_t *e = calloc(1, sizeof *e);
  if (e == NULL)
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  int st = job_succeeded(r);
  if (st == LSMI_OK)
    st = parse_query(r, &e->q);
  if (st == LSMI_OK)
    st = open_files(r, e->q.nsplits, e->q.splits, e->f);
  if (st) {
    free(e);
    return st;
  }
  st = check_columns(r, &e->q, e->f[0]);
  if (st == LSMI_OK) {
    lsmi_error_t err = {0};
    st = lsmi_rescursor_init(&e->c, &e->q, e->f, &err);
    if (st)
      lsmi_error_set(&r->err, st, NULL, "%s", err.message);
  }
  if (st) {
    close_files(e->q.nsplits, e->f);
    free(e);
    return st;
  }
  return e->q.format == LSMI_RES_JSON ? reply_page(r, e) : reply_export(r, e);
}

/* ---- one sample ---- */

int lsmi_h_sample_get(lsmi_req_t *r) {
  /* The router matched /v1/jobs/{id}/results/{train|val}/{digits}. */
  const char *tail = strstr(r->path, "/results/") + 9;
  const char *split = strncmp(tail, "train", 5) ? "val" : "train";
  unsigned long long index = strtoull(strchr(tail, '/') + 1, NULL, 10);
  uint32_t fields = 0;
  int st = job_succeeded(r);
  if (st == LSMI_OK)
    st = parse_fields(r, &fields);
  lsmi_resfile_t *f = NULL;
  if (st == LSMI_OK)
    st = open_files(r, 1, &split, &f);
  if (st)
    return st;
  lsmi_resquery_t q;
  lsmi_resquery_init(&q);
  q.fields = fields;
  if ((st = check_columns(r, &q, f))) {
    lsmi_resfile_close(f);
    return st;
  }
  if (index >= f->rows.n) {
    size_t n = f->rows.n;
    lsmi_resfile_close(f);
    return lsmi_error_set(&r->err, LSMI_ERR_NOTFOUND, NULL,
                          "job '%s' has no %s sample %llu (it has %zu)", r->id,
                          split, index, n);
  }
  lsmi_strbuf_t b;
  lsmi_strbuf_init(&b, 1024);
  lsmi_resfile_row_json(&b, f, (size_t)index, fields);
  lsmi_resfile_close(f);
  if (b.oom) {
    free(b.p);
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  }
  return lsmi_http_reply(r, 200, "application/json", b.p, b.len, false, NULL);
}

/* ---- aggregates ---- */

/* column=COL,... (default r,u1,u2,s), bins (default 20), min and max. */
static int parse_agg(lsmi_req_t *r, lsmi_resagg_query_t *q) {
  memset(q, 0, sizeof *q);
  const char *v = lsmi_http_arg(r, "column");
  if (v == NULL || *v == '\0')
    v = "r,u1,u2,s";
  for (const char *p = v; *p;) {
    size_t len = strcspn(p, ",");
    lsmi_rescol_t c;
    if (lsmi_resfile_col_parse(p, len, &c) || c == LSMI_COL_INDEX ||
        c == LSMI_COL_Y || c >= LSMI_COL_ROW || q->ncols == LSMI_COL_COUNT)
      return lsmi_http_bad_request(r, "column",
                                   "column must be a comma list of r, u1, "
                                   "u2, s, i1, i2, i12, h1, h2 (with an "
                                   "ensemble also r_sd, u1_sd, u2_sd, s_sd)");
    q->cols[q->ncols++] = c;
    p += len + (p[len] == ',');
  }
  const char *bv = lsmi_http_arg(r, "bins");
  q->bins = 20;
  if (bv && *bv) {
    char *end = NULL;
    long b = strtol(bv, &end, 10);
    if (*end || b < 1 || b > LSMI_RESAGG_MAX_BINS)
      return lsmi_http_bad_request(r, "bins",
                                   "bins must be a whole number in [1, %d]",
                                   LSMI_RESAGG_MAX_BINS);
    q->bins = (int)b;
  }
  const char *lo = lsmi_http_arg(r, "min"), *hi = lsmi_http_arg(r, "max");
  if (lo || hi) {
    if (!lo || !hi || parse_double(lo, &q->lo) || parse_double(hi, &q->hi) ||
        !(q->lo < q->hi))
      return lsmi_http_bad_request(r, lo && hi ? "min" : (lo ? "max" : "min"),
                                   "min and max go together: finite numbers "
                                   "with min < max");
    q->has_range = true;
  }
  return LSMI_OK;
}

int lsmi_h_aggregates_get(lsmi_req_t *r) {
  lsmi_resagg_query_t q;
  int nsplits = 1;
  const char *splits[2];
  lsmi_resfile_t *f[2] = {NULL, NULL};
  int st = job_succeeded(r);
  if (st == LSMI_OK)
    st = parse_split(r, &nsplits, splits);
  if (st == LSMI_OK)
    st = parse_agg(r, &q);
  if (st == LSMI_OK)
    st = open_files(r, nsplits, splits, f);
  if (st)
    return st;
  for (int k = 0; k < q.ncols; k++)
    if (!lsmi_resfile_has_col(f[0], q.cols[k])) {
      close_files(nsplits, f);
      return lsmi_http_bad_request(r, "column",
                                   "this job has no %s column: the spread "
                                   "columns come with an ensemble (params."
                                   "ensemble >= 2)",
                                   lsmi_resfile_col_name(q.cols[k]));
    }
  json_t *out = NULL;
  st = lsmi_resagg(f, nsplits, &q, &out, &r->err);
  close_files(nsplits, f);
  if (st)
    return st;
  json_object_set_new(out, "job_id", json_string(r->id));
  return lsmi_http_reply_json(r, 200, out, NULL);
}
