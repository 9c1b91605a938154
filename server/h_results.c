/*
 * h_results.c — GET /v1/jobs/{id}/results: a page of a succeeded job's
 * per-sample rows (split, offset, limit, sort, order) as JSON, CSV or
 * NDJSON, read from its result file (resfile.c). See handlers.h for how a
 * handler answers.
 */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "resfile.h"

/* The page the query asks for: 0 or a 400. */
static int page_query(lsmi_req_t *r, lsmi_respage_t *q) {
  memset(q, 0, sizeof *q);
  q->split = lsmi_http_arg(r, "split");
  if (q->split == NULL || *q->split == '\0')
    q->split = "val";
  if (strcmp(q->split, "val") && strcmp(q->split, "train"))
    return lsmi_http_bad_request(r, "split", "split must be train or val");
  uint64_t offset, limit;
  int st = lsmi_http_page_args(r, &offset, &limit);
  if (st)
    return st;
  q->offset = (size_t)offset;
  q->limit = (size_t)limit;
  if (lsmi_resfile_parse_sort(lsmi_http_arg(r, "sort"),
                              lsmi_http_arg(r, "order"), &q->sort, &q->desc))
    return lsmi_http_bad_request(r, "sort",
                                 "sort must be one of index, y, r, u1, u2, "
                                 "s, i1, i2, i12, h1, h2 (with an ensemble "
                                 "also r_sd, u1_sd, u2_sd, s_sd; a leading "
                                 "'-' sorts descending) and order asc or "
                                 "desc");
  if (lsmi_resfile_parse_format(lsmi_http_arg(r, "format"), &q->format))
    return lsmi_http_bad_request(r, "format",
                                 "format must be json, csv or ndjson");
  return LSMI_OK;
}

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

int lsmi_h_results_get(lsmi_req_t *r) {
  lsmi_respage_t q;
  int st = job_succeeded(r);
  if (st == LSMI_OK)
    st = page_query(r, &q);
  if (st)
    return st;
  lsmi_rows_t rows;
  lsmi_error_t err = {0};
  st = lsmi_resfile_read(r->h->cfg->data_dir, r->id, q.split, &rows, &err);
  if (st) /* a succeeded job's file the server cannot read: its fault */
    return lsmi_error_set(&r->err, LSMI_ERR_IO, NULL, "%s", err.message);
  if (!lsmi_resfile_has_col(&rows, q.sort)) {
    lsmi_resfile_rows_free(&rows);
    return lsmi_http_bad_request(r, "sort",
                                 "this job has no %s column: the spread "
                                 "columns come with an ensemble (params."
                                 "ensemble >= 2)",
                                 lsmi_resfile_col_name(q.sort));
  }
  size_t len = 0;
  const char *ctype = NULL;
  char *body = lsmi_resfile_render(&rows, &q, &len, &ctype);
  char total[32];
  snprintf(total, sizeof total, "%zu", rows.n);
  lsmi_resfile_rows_free(&rows);
  if (body == NULL)
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  lsmi_hdr_t hd[] = {{"X-Total-Count", total}, {NULL, NULL}};
  return lsmi_http_reply(r, 200, ctype, body, len, false, hd);
}
