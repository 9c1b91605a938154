/*
 * h_datasets.c — /v1/datasets: uploads, the list, one dataset, deletion.
 * See handlers.h for how a handler answers.
 *
 * An upload is the raw file as the body, streamed to a temp file in tmp/
 * (common/durable.h) while its SHA-256 is computed, so a dataset is never
 * whole in memory. When the body is in: the same bytes uploaded before by
 * this tenant answer the earlier dataset (200); otherwise the file is read
 * and checked (lsmi_dataset_read_ex: any format, found from the content,
 * with the keys the query names for x1, x2, y and id, which the row keeps
 * for the jobs that read the file again), the temp file is committed as
 * datasets/ID and the row recorded (201). The row comes last,
 * never a row with no file; and the store knows the file before it is put
 * in place (a pending "upload" entry, removed with the row's insert in one
 * transaction), so a crash in between leaves a file the next start knows to
 * be unacknowledged and removes, while a file the store does not know at all
 * is never removed (datadir.h). A deletion is the mirror: the row goes with
 * a pending "delete" entry, then the file, then the entry.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "handlers.h"
#include "metrics.h"
#include "quota.h"
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
  /* Room on the disk and in the tenant's quota for what it says it sends
   * (a body without Content-Length is checked at its end). */
  int st = lsmi_quota_check(cfg, r->h->store, r->tenant, clen, &r->err);
  if (st)
    return st;
  char tmpdir[PATH_MAX];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", cfg->data_dir);
  int rc = lsmi_durable_begin(&r->dur, tmpdir, "upload", 0600);
  if (rc)
    return lsmi_error_set(&r->err, lsmi_util_errno_status(-rc), NULL,
                          "cannot create a temp file: %s", strerror(-rc));
  lsmi_sha256_init(&r->sha);
  /* A browser's FormData: the file part is the upload. */
  int mp = lsmi_multipart_init(&r->mp, lsmi_http_header(r, "Content-Type"));
  if (mp == LSMI_ERR_INVALID)
    return lsmi_http_bad_request(r, "Content-Type", "%s", r->mp.error);
  r->multipart = mp == LSMI_OK;
  return LSMI_OK;
}

/* Bytes of the file itself: to the temp file and the checksum. */
static void upload_sink(void *ctx, const char *data, size_t n) {
  lsmi_req_t *r = ctx;
  r->file_bytes += n;
  if (r->write_errno)
    return;
  int rc = lsmi_durable_write(&r->dur, data, n);
  if (rc)
    r->write_errno = -rc;
  lsmi_sha256_update(&r->sha, data, n);
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
  if (r->multipart)
    lsmi_multipart_feed(&r->mp, data, n, upload_sink, r);
  else
    upload_sink(r, data, n);
}

/* A query value echoed in JSON: at most max bytes of UTF-8. 0 or a 400. */
static int query_text(lsmi_req_t *r, const char *field, const char *v,
                      size_t max) {
  if (!v)
    return LSMI_OK;
  if (strlen(v) > max)
    return lsmi_http_bad_request(r, field, "%s is longer than %zu bytes", field,
                                 max);
  json_t *t = json_string(v);
  json_decref(t);
  if (t == NULL)
    return lsmi_http_bad_request(r, field, "%s is not valid UTF-8", field);
  return LSMI_OK;
}

/* The upload's query: its name (NULL: the id), which keys hold x1, x2, y
 * and id (NULL: the usual names), and the val split fraction for a file
 * without one (given: a file with its own is refused). 0 or a 400. */
static int upload_query(lsmi_req_t *r, const char **name,
                        lsmi_read_options_t *opt) {
  *name = lsmi_http_arg(r, "name");
  *opt = (lsmi_read_options_t)LSMI_READ_OPTIONS_INIT;
  opt->val_fraction = 0.2;
  int st = query_text(r, "name", *name, 200);
  static const char *const keys[] = {"x1", "x2", "y", "id"};
  const char **dst[] = {&opt->x1, &opt->x2, &opt->y, &opt->id};
  for (int k = 0; k < 4 && !st; k++) {
    *dst[k] = lsmi_http_arg(r, keys[k]);
    st = query_text(r, keys[k], *dst[k], 60);
    if (!st && *dst[k] && !**dst[k])
      st = lsmi_http_bad_request(r, keys[k], "%s names no key", keys[k]);
  }
  const char *vft = lsmi_http_arg(r, "val_fraction");
  if (!st && vft && *vft) {
    char *end = NULL;
    opt->val_fraction = strtod(vft, &end);
    opt->val_fraction_given = true;
    if (end == vft || *end ||
        !(opt->val_fraction > 0 && opt->val_fraction <= 0.9))
      return lsmi_http_bad_request(r, "val_fraction",
                                   "val_fraction must be a number in (0, "
                                   "0.9]");
  }
  return st;
}

/* Answers a dataset with its Location. */
static int reply_dataset(lsmi_req_t *r, int status,
                         const lsmi_dataset_rec_t *rec) {
  char loc[128];
  snprintf(loc, sizeof loc, "/v1/datasets/%s", rec->id);
  lsmi_hdr_t hd[] = {{"Location", loc}, {NULL, NULL}};
  return lsmi_http_reply_json(r, status, lsmi_store_dataset_json(rec), hd);
}

/*
 * What checking the upload may cost (memory.h): the limits to read it with
 * (a zip's members may inflate to what the budget of one check allows, at
 * most max_ratio times the file and never past --max-decompressed) and
 * the estimate of the read's peak, from the file's size and format (its
 * first bytes). 0, or a 413 when even that exceeds --max-job-memory.
 */
static int check_cost(lsmi_req_t *r, lsmi_limits_t *lim, uint64_t *need) {
  const lsmi_config_t *cfg = r->h->cfg;
  unsigned char head[512];
  ssize_t n = pread(r->dur.fd, head, sizeof head, 0);
  lsmi_format_t fmt = lsmi_format_detect(head, n > 0 ? (size_t)n : 0);
  *lim = cfg->limits;
  uint64_t job = cfg->max_job_memory ? cfg->max_job_memory : UINT64_MAX;
  if (fmt == LSMI_FORMAT_NPZ || fmt == LSMI_FORMAT_PT) {
    double by_ratio = lim->max_ratio * (double)r->bytes + (double)(64 << 20);
    uint64_t cap = job > r->bytes ? (job - r->bytes) / 2 : 0;
    if (by_ratio < (double)cap)
      cap = (uint64_t)by_ratio;
    if (cap < lim->max_decompressed_bytes)
      lim->max_decompressed_bytes = cap;
  }
  *need = lsmi_mem_read_estimate(fmt, r->bytes, lim->max_decompressed_bytes);
  if (*need <= job)
    return LSMI_OK;
  char a[32], b[32];
  return lsmi_error_set(&r->err, LSMI_ERR_LIMIT, "body",
                        "checking this %s upload of %llu bytes needs about %s "
                        "of memory, above --max-job-memory %s",
                        lsmi_format_name(fmt), (unsigned long long)r->bytes,
                        lsmi_mem_format(*need, a, sizeof a),
                        lsmi_mem_format(job, b, sizeof b));
}

/* Reads and checks the upload (format from its content) within the memory
 * budget: 0 with *out the dataset, a 413 (too costly), a 503 (no memory
 * free now) or the reader's status. */
static int check_upload(lsmi_req_t *r, const lsmi_read_options_t *opt,
                        lsmi_dataset_t **out, lsmi_read_info_t *info) {
  lsmi_limits_t lim;
  uint64_t need = 0;
  int st = check_cost(r, &lim, &need);
  if (st)
    return st;
  lsmi_sched_t *sched = r->h->sched;
  if (!lsmi_sched_check_begin(sched, need)) {
    r->http = 503;
    return lsmi_error_set(&r->err, LSMI_ERR_BUSY, NULL,
                          "the memory for checking uploads is taken by "
                          "running jobs and other uploads; retry in %d s",
                          r->h->cfg->retry_after);
  }
  st = lsmi_dataset_read_ex(r->dur.tmp, &lim, opt, out, info, &r->err);
  lsmi_sched_check_end(sched, need);
  if (st == LSMI_ERR_LIMIT &&
      lim.max_decompressed_bytes < r->h->cfg->limits.max_decompressed_bytes &&
      strstr(r->err.message, "max_decompressed_bytes")) {
    char a[32];
    size_t len = strlen(r->err.message);
    snprintf(r->err.message + len, sizeof r->err.message - len,
             "; checking an upload of this size may inflate %s at most "
             "(--max-job-memory, --max-ratio)",
             lsmi_mem_format(lim.max_decompressed_bytes, a, sizeof a));
  }
  return st;
}

/* 0 when a job of the default parameters on dataset rec fits
 * --max-job-memory; a 422 otherwise (no job could ever run on it). */
static int fits_a_job(lsmi_req_t *r, const lsmi_dataset_rec_t *rec) {
  const lsmi_config_t *cfg = r->h->cfg;
  lsmi_params_t p;
  lsmi_params_default(&p);
  p.threads = 1;
  uint64_t need = lsmi_mem_job_estimate(rec, &p);
  if (cfg->max_job_memory == 0 || need <= cfg->max_job_memory)
    return LSMI_OK;
  char a[32], b[32];
  r->http = 422;
  return lsmi_error_set(
      &r->err, LSMI_ERR_LIMIT, "body",
      "a job on this dataset (%llu + %llu rows, d1 %llu, "
      "d2 %llu) needs about %s of memory even with the "
      "default parameters, above --max-job-memory %s",
      (unsigned long long)rec->n_train, (unsigned long long)rec->n_val,
      (unsigned long long)rec->d1, (unsigned long long)rec->d2,
      lsmi_mem_format(need, a, sizeof a),
      lsmi_mem_format(cfg->max_job_memory, b, sizeof b));
}

/* Reads the upload (format from its content) into rec: id, shapes, and
 * the fraction of train drawn as val (0: the file has its own). */
static int read_upload(lsmi_req_t *r, const char *name,
                       const lsmi_read_options_t *opt, const char sha[65],
                       lsmi_dataset_rec_t *rec) {
  lsmi_dataset_t *ds = NULL;
  lsmi_read_info_t info;
  int st = check_upload(r, opt, &ds, &info);
  if (st)
    return st;
  lsmi_format_t fmt = info.format;
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
  rec->bytes = r->file_bytes;
  rec->classes = ds->classes;
  rec->n_train = ds->train.n;
  rec->n_val = ds->val.n;
  rec->d1 = ds->d1;
  rec->d2 = ds->d2;
  rec->val_fraction = ds->val_drawn ? opt->val_fraction : 0;
  rec->created_at = lsmi_util_now();
  /* A job reads the file again, with the same keys (sched.c). */
  snprintf(rec->key_x1, sizeof rec->key_x1, "%s", opt->x1 ? opt->x1 : "");
  snprintf(rec->key_x2, sizeof rec->key_x2, "%s", opt->x2 ? opt->x2 : "");
  snprintf(rec->key_y, sizeof rec->key_y, "%s", opt->y ? opt->y : "");
  snprintf(rec->key_id, sizeof rec->key_id, "%s", opt->id ? opt->id : "");
  st = fits_a_job(r, rec);
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
    return lsmi_error_set(&r->err, st, NULL, "could not record the upload%s",
                          st == LSMI_ERR_NOSPACE ? ": the disk is full" : "");
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
    return lsmi_error_set(&r->err, lsmi_util_errno_status(-rc), NULL,
                          "could not store the upload: %s", strerror(-rc));
  if (st)
    return lsmi_error_set(&r->err, st, NULL, "could not record the dataset%s",
                          st == LSMI_ERR_NOSPACE ? ": the disk is full" : "");
  if (*existed)
    *rec = existing;
  return LSMI_OK;
}

/* The first of the keys x1, x2, y, id that the query names otherwise
 * than rec was read with (a key the query leaves out asks for nothing),
 * or NULL. */
static const char *other_key(lsmi_req_t *r, const lsmi_dataset_rec_t *rec) {
  static const char *const names[] = {"x1", "x2", "y", "id"};
  const char *had[] = {rec->key_x1, rec->key_x2, rec->key_y, rec->key_id};
  for (int k = 0; k < 4; k++) {
    const char *v = lsmi_http_arg(r, names[k]);
    if (v && *v && strcmp(v, had[k]) != 0)
      return names[k];
  }
  return NULL;
}

/* "x1=feat_a, y=label" of the keys rec was read with, or "the usual
 * names", into buf. */
static void keys_text(const lsmi_dataset_rec_t *rec, char *buf, size_t size) {
  static const char *const names[] = {"x1", "x2", "y", "id"};
  const char *had[] = {rec->key_x1, rec->key_x2, rec->key_y, rec->key_id};
  size_t len = 0;
  buf[0] = '\0';
  for (int k = 0; k < 4; k++)
    if (had[k][0] && len < size)
      len += (size_t)snprintf(buf + len, size - len, "%s%s=%s", len ? ", " : "",
                              names[k], had[k]);
  if (len == 0)
    snprintf(buf, size, "the usual names");
}

/*
 * The tenant uploaded these bytes before, as dataset rec: answered 200 with
 * it when the query asks for nothing else, or 409 when it names another
 * name, val_fraction or key (x1, x2, y, id), which the earlier dataset
 * would silently ignore: the same bytes make one dataset per tenant, read
 * one way (a job's params.val_fraction gives another split; other keys
 * need the earlier dataset deleted first).
 */
static int same_bytes(lsmi_req_t *r, const lsmi_dataset_rec_t *rec) {
  const char *name = lsmi_http_arg(r, "name");
  const char *vft = lsmi_http_arg(r, "val_fraction");
  bool other_name = name && *name && strcmp(name, rec->name) != 0;
  bool other_vf = vft && *vft && strtod(vft, NULL) != rec->val_fraction;
  const char *key = other_key(r, rec);
  if (!other_name && !other_vf && !key)
    return reply_dataset(r, 200, rec);
  char keys[300];
  keys_text(rec, keys, sizeof keys);
  const char *field = key ? key : other_vf ? "val_fraction" : "name";
  const char *fix =
      key        ? "to read them with other keys, delete that dataset first"
      : other_vf ? "for another val split, pass params.val_fraction with "
                   "the job"
                 : "upload without a name, or with its name, to get it";
  return lsmi_error_set(&r->err, LSMI_ERR_CONFLICT, field,
                        "these bytes were uploaded before as dataset %s "
                        "(name '%s', val_fraction %g, read by %s), which the "
                        "same bytes always give; %s",
                        rec->id, rec->name, rec->val_fraction, keys, fix);
}

int lsmi_h_upload_end(lsmi_req_t *r) {
  const lsmi_config_t *cfg = r->h->cfg;
  lsmi_metrics_upload_bytes(r->bytes);
  if (r->write_errno)
    return lsmi_error_set(&r->err, lsmi_util_errno_status(r->write_errno), NULL,
                          "could not store the upload: %s",
                          strerror(r->write_errno));
  if (r->too_big)
    return lsmi_error_set(&r->err, LSMI_ERR_LIMIT, "body",
                          "the upload exceeds --max-upload (%llu bytes)",
                          (unsigned long long)cfg->max_upload);
  if (r->multipart && lsmi_multipart_finish(&r->mp))
    return lsmi_http_bad_request(r, "body", "%s", r->mp.error);
  if (r->file_bytes == 0)
    return lsmi_http_bad_request(
        r, "body", "empty body: send the dataset file as the request body");
  const char *name;
  lsmi_read_options_t opt;
  int st = upload_query(r, &name, &opt);
  if (st)
    return st;
  if (name == NULL && r->mp.filename[0]) { /* the form's file name */
    json_t *t = json_string(r->mp.filename);
    name = t ? r->mp.filename : NULL;
    json_decref(t);
  }
  unsigned char digest[32];
  char sha[65];
  lsmi_sha256_final(&r->sha, digest);
  lsmi_util_hex(digest, 32, sha);
  lsmi_dataset_rec_t rec;
  st = lsmi_store_dataset_find_sha(r->h->store, r->tenant, sha, &rec);
  if (st == LSMI_OK) /* these bytes again: the same dataset */
    return same_bytes(r, &rec);
  if (st != LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL,
                          "could not look for an earlier upload of these "
                          "bytes");
  st = lsmi_quota_check(cfg, r->h->store, r->tenant, r->file_bytes, &r->err);
  if (st)
    return st;
  bool existed = false;
  st = read_upload(r, name, &opt, sha, &rec);
  if (st == LSMI_OK)
    st = keep_upload(r, &rec, &existed);
  if (st)
    return st;
  if (existed)
    return same_bytes(r, &rec);
  lsmi_util_log("dataset", json_pack("{s:s, s:s, s:s, s:I}", "dataset", rec.id,
                                     "tenant", rec.tenant, "format", rec.format,
                                     "bytes", (json_int_t)rec.bytes));
  return reply_dataset(r, 201, &rec);
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

/*
 * DELETE /v1/datasets/{id}: the dataset's file goes, and with it its
 * finished jobs and their result files, unless ?keep_jobs=true (they keep
 * their results then, and go with DELETE /v1/jobs/{id} or --retain-days).
 * One transaction deletes the rows and records every file as pending;
 * then the files go, then the entries (a crash in between is finished at
 * the next start).
 */
int lsmi_h_dataset_delete(lsmi_req_t *r) {
  const char *keep = lsmi_http_arg(r, "keep_jobs");
  bool keep_jobs = keep && (!strcmp(keep, "true") || !strcmp(keep, "1"));
  if (keep && !keep_jobs && strcmp(keep, "false") && strcmp(keep, "0"))
    return lsmi_http_bad_request(r, "keep_jobs",
                                 "keep_jobs must be true or false");
  lsmi_idlist_t jobs = LSMI_IDLIST_INIT;
  int st = lsmi_store_dataset_delete(r->h->store, r->tenant, r->id, !keep_jobs,
                                     &jobs);
  if (st == LSMI_ERR_CONFLICT)
    return lsmi_error_set(&r->err, st, NULL,
                          "dataset '%s' has queued or running jobs; cancel "
                          "them first",
                          r->id);
  if (st) {
    lsmi_idlist_free(&jobs);
    return dataset_failed(r, st);
  }
  const char *dir = r->h->cfg->data_dir;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/datasets/%s", dir, r->id);
  /* The row is gone and the store remembers the file until it is: an
   * entry left by a failure here is finished at the next start. */
  if (unlink(path) == 0 || errno == ENOENT)
    lsmi_store_pending_remove(r->h->store, "delete", r->id);
  lsmi_datadir_remove_jobs(dir, r->h->store, &jobs);
  lsmi_util_log("dataset", json_pack("{s:s, s:s, s:s, s:I}", "dataset", r->id,
                                     "tenant", r->tenant, "state", "deleted",
                                     "jobs_deleted", (json_int_t)jobs.n));
  lsmi_idlist_free(&jobs);
  return lsmi_http_reply(r, 204, NULL, (char *)"", 0, true, NULL);
}
