/*
 * h_datasets.c — /v1/datasets: uploads, the list, one dataset, deletion.
 * See handlers.h for how a handler answers.
 *
 * An upload is the raw file as the body, streamed to a temp file in tmp/
 * (common/durable.h) while its SHA-256 is computed, so a dataset is never
 * whole in memory. When the body is in: the same bytes uploaded before by
 * this tenant answer the earlier dataset (200); otherwise the file is read
 * and checked (lsmi_dataset_read: any format, found from the content), the
 * temp file is committed as datasets/ID and the row recorded (201). The row
 * comes last, never a row with no file; and the store knows the file before
 * it is put in place (a pending "upload" entry, removed with the row's
 * insert in one transaction), so a crash in between leaves a file the next
 * start knows to be unacknowledged and removes, while a file the store does
 * not know at all is never removed (datadir.h). A deletion is the mirror:
 * the row goes with a pending "delete" entry, then the file, then the entry.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "metrics.h"
#include "util.h"

int lsmi_h_upload_begin(lsmi_req_t *r) {
  const lsmi_config_t *cfg = r->h->cfg;
  uint64_t clen = lsmi_http_content_length(r);
  if (clen > cfg->max_upload)
    return lsmi_error_set(&r->err, LSMI_ERR_LIMIT, "body",
                          "the upload (%llu bytes) exceeds --max-upload "
                          "(%llu bytes)",
                          (unsigned long long)clen,
                          (unsigned long long)cfg->max_upload);
  char tmpdir[PATH_MAX];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", cfg->data_dir);
  int rc = lsmi_durable_begin(&r->dur, tmpdir, "upload", 0600);
  if (rc)
    return lsmi_error_set(&r->err, LSMI_ERR_IO, NULL,
                          "cannot create a temp file: %s", strerror(-rc));
  lsmi_sha256_init(&r->sha);
  return LSMI_OK;
}

void lsmi_h_upload_chunk(lsmi_req_t *r, const char *data, size_t n) {
  bool skip = r->too_big || r->write_errno;
  r->bytes += n;
  if (skip)
    return;
  if (r->bytes > r->h->cfg->max_upload) {
    r->too_big = true; /* drained, then answered 413 */
    return;
  }
  int rc = lsmi_durable_write(&r->dur, data, n);
  if (rc)
    r->write_errno = -rc;
  lsmi_sha256_update(&r->sha, data, n);
}

/* The upload's query: its name (NULL: the id) and the val split fraction
 * for a file without one. 0 or a 400. */
static int upload_query(lsmi_req_t *r, const char **name, double *vf) {
  *name = lsmi_http_arg(r, "name");
  *vf = 0.2;
  if (*name && strlen(*name) > 200)
    return lsmi_http_bad_request(r, "name", "name is longer than 200 bytes");
  if (*name) { /* it is echoed in JSON: it must be UTF-8 */
    json_t *t = json_string(*name);
    json_decref(t);
    if (t == NULL)
      return lsmi_http_bad_request(r, "name", "name is not valid UTF-8");
  }
  const char *vft = lsmi_http_arg(r, "val_fraction");
  if (vft && *vft) {
    char *end = NULL;
    *vf = strtod(vft, &end);
    if (end == vft || *end || !(*vf > 0 && *vf <= 0.9))
      return lsmi_http_bad_request(r, "val_fraction",
                                   "val_fraction must be a number in (0, "
                                   "0.9]");
  }
  return LSMI_OK;
}

/* Answers a dataset with its Location. */
static int reply_dataset(lsmi_req_t *r, int status,
                         const lsmi_dataset_rec_t *rec) {
  char loc[128];
  snprintf(loc, sizeof loc, "/v1/datasets/%s", rec->id);
  lsmi_hdr_t hd[] = {{"Location", loc}, {NULL, NULL}};
  return lsmi_http_reply_json(r, status, lsmi_store_dataset_json(rec), hd);
}

/* Reads the upload (format from its content) into rec: id, shapes, ... */
static int read_upload(lsmi_req_t *r, const char *name, double vf,
                       const char sha[65], lsmi_dataset_rec_t *rec) {
  lsmi_dataset_t *ds = NULL;
  lsmi_format_t fmt = LSMI_FORMAT_UNKNOWN;
  int st = lsmi_dataset_read(r->dur.tmp, &r->h->cfg->limits, vf, 0, &ds, &fmt,
                             &r->err);
  if (st)
    return st;
  memset(rec, 0, sizeof *rec);
  st = lsmi_util_random_id("ds_", rec->id, sizeof rec->id);
  if (st) {
    lsmi_error_set(&r->err, st, NULL, "no random bytes for an id");
    goto out;
  }
  snprintf(rec->tenant, sizeof rec->tenant, "%s", r->tenant);
  snprintf(rec->name, sizeof rec->name, "%s", name && *name ? name : rec->id);
  snprintf(rec->format, sizeof rec->format, "%s", lsmi_format_name(fmt));
  memcpy(rec->sha256, sha, sizeof rec->sha256);
  rec->bytes = r->bytes;
  rec->classes = ds->classes;
  rec->n_train = ds->train.n;
  rec->n_val = ds->val.n;
  rec->d1 = ds->d1;
  rec->d2 = ds->d2;
  rec->val_fraction = vf;
  rec->created_at = lsmi_util_now();
out:
  lsmi_dataset_destroy(ds);
  return st;
}

/* Commits the temp file as datasets/ID and records rec. *existed: a
 * concurrent upload of the same bytes won the race; rec is then its. */
static int keep_upload(lsmi_req_t *r, lsmi_dataset_rec_t *rec, bool *existed) {
  lsmi_store_t *store = r->h->store;
  int st = lsmi_store_pending_add(store, "upload", rec->id);
  if (st)
    return lsmi_error_set(&r->err, st, NULL, "could not record the upload");
  char dst[PATH_MAX];
  snprintf(dst, sizeof dst, "%s/datasets/%s", r->h->cfg->data_dir, rec->id);
  int rc = lsmi_durable_commit(&r->dur, dst);
  lsmi_dataset_rec_t existing;
  if (rc == 0)
    st = lsmi_store_dataset_insert(store, rec, &existing, existed);
  if (rc || st || *existed) {
    /* Never acknowledged: the file goes, then its pending entry (a crash
     * in between leaves the entry, and the next start removes the file). */
    unlink(dst); /* there too when only the directory's fsync failed */
    lsmi_store_pending_remove(store, "upload", rec->id);
  }
  if (rc)
    return lsmi_error_set(&r->err, LSMI_ERR_IO, NULL,
                          "could not store the upload: %s", strerror(-rc));
  if (st)
    return lsmi_error_set(&r->err, st, NULL, "could not record the dataset");
  if (*existed)
    *rec = existing;
  return LSMI_OK;
}

int lsmi_h_upload_end(lsmi_req_t *r) {
  const lsmi_config_t *cfg = r->h->cfg;
  lsmi_metrics_upload_bytes(r->bytes);
  if (r->write_errno)
    return lsmi_error_set(&r->err, LSMI_ERR_IO, NULL,
                          "could not store the upload: %s",
                          strerror(r->write_errno));
  if (r->too_big)
    return lsmi_error_set(&r->err, LSMI_ERR_LIMIT, "body",
                          "the upload exceeds --max-upload (%llu bytes)",
                          (unsigned long long)cfg->max_upload);
  if (r->bytes == 0)
    return lsmi_http_bad_request(
        r, "body", "empty body: send the dataset file as the request body");
  const char *name;
  double vf;
  int st = upload_query(r, &name, &vf);
  if (st)
    return st;
  unsigned char digest[32];
  char sha[65];
  lsmi_sha256_final(&r->sha, digest);
  lsmi_util_hex(digest, 32, sha);
  lsmi_dataset_rec_t rec;
  st = lsmi_store_dataset_find_sha(r->h->store, r->tenant, sha, &rec);
  if (st == LSMI_OK) /* these bytes again: the same dataset */
    return reply_dataset(r, 200, &rec);
  if (st != LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL,
                          "could not look for an earlier upload of these "
                          "bytes");
  bool existed = false;
  st = read_upload(r, name, vf, sha, &rec);
  if (st == LSMI_OK)
    st = keep_upload(r, &rec, &existed);
  if (st)
    return st;
  if (!existed)
    lsmi_util_log("dataset",
                  json_pack("{s:s, s:s, s:s, s:I}", "dataset", rec.id, "tenant",
                            rec.tenant, "format", rec.format, "bytes",
                            (json_int_t)rec.bytes));
  return reply_dataset(r, existed ? 200 : 201, &rec);
}

int lsmi_h_datasets_list(lsmi_req_t *r) {
  uint64_t offset, limit;
  int st = lsmi_http_page_args(r, &offset, &limit);
  if (st)
    return st;
  json_t *page = NULL;
  int64_t total = 0;
  st = lsmi_store_dataset_list(r->h->store, r->tenant, (int64_t)offset,
                               (int64_t)limit, &page, &total);
  if (st)
    return lsmi_http_store_failed(r, st);
  return lsmi_http_reply_page(r, "datasets", page, total, offset, limit);
}

/* The store's answer about dataset r->id: a 404 for NOTFOUND. */
static int dataset_failed(lsmi_req_t *r, int st) {
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL, "no dataset '%s'", r->id);
  return lsmi_http_store_failed(r, st);
}

int lsmi_h_dataset_get(lsmi_req_t *r) {
  lsmi_dataset_rec_t rec;
  int st = lsmi_store_dataset_get(r->h->store, r->tenant, r->id, &rec);
  if (st)
    return dataset_failed(r, st);
  return lsmi_http_reply_json(r, 200, lsmi_store_dataset_json(&rec), NULL);
}

int lsmi_h_dataset_delete(lsmi_req_t *r) {
  int st = lsmi_store_dataset_delete(r->h->store, r->tenant, r->id);
  if (st == LSMI_ERR_CONFLICT)
    return lsmi_error_set(&r->err, st, NULL,
                          "dataset '%s' has queued or running jobs; cancel "
                          "them first",
                          r->id);
  if (st)
    return dataset_failed(r, st);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/datasets/%s", r->h->cfg->data_dir, r->id);
  /* The row is gone and the store remembers the file until it is: an
   * entry left by a failure here is finished at the next start. */
  if (unlink(path) == 0 || errno == ENOENT)
    lsmi_store_pending_remove(r->h->store, "delete", r->id);
  return lsmi_http_reply(r, 204, NULL, (char *)"", 0, true, NULL);
}
