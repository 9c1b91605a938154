/*
 * http.c — request handling: routing, bearer auth, CORS, problem+json
 * errors, the upload stream, and one handler per endpoint.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * when the headers are in (we route, authenticate and may answer at once),
 * once per chunk of body (appended to a buffer or, for uploads, written to a
 * temp file while its SHA-256 is updated), and once more when the body is
 * complete (we answer). A response can be queued only on the first or the
 * last call, so an error found mid-body (too large, disk full) is remembered
 * and answered at the end. Per-request state lives in a req_t that the
 * completion callback logs, counts and frees.
 *
 * libmicrohttpd is opened when the daemon starts (mhd.h) and called through
 * mhd, set once before the daemon exists: every other call here runs on
 * one of its threads, after.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "durable.h"
#include "http.h"
#include "metrics.h"
#include "mhd.h"
#include "openapi.h"
#include "resfile.h"
#include "router.h"
#include "sha256.h"
#include "util.h"

/* libmicrohttpd's entry points (mhd.h), set by lsmi_http_start. */
static const lsmi_mhd_t *mhd;

struct lsmi_http {
  const lsmi_config_t *cfg;
  lsmi_store_t *store;
  lsmi_sched_t *sched;
  struct MHD_Daemon *d;
  int port;
};

typedef struct req {
  double t0;
  lsmi_route_t route;
  char id[LSMI_ROUTER_ID_MAX];
  const char *tenant; /* borrowed from the config, or "default" */
  char method[16];
  char path[256];
  char request_id[72]; /* X-Request-Id: the client's, or a new one */
  int status;
  size_t resp_bytes;
  bool responded; /* answered on the first call: discard any body */
  /* JSON body */
  char *body;
  size_t len, cap;
  bool too_big;
  /* upload: the temp file in tmp/ (common/durable.h) */
  lsmi_durable_t dur;
  lsmi_sha256_t sha;
  uint64_t bytes;
  int write_errno;
} req_t;

typedef struct hdr {
  const char *name, *value;
} hdr_t;

/* How far past --max-upload a body may run before the connection is
 * dropped instead of being drained for a proper 413. */
#define ABORT_SLACK ((uint64_t)16 << 20)

static const char *ctype_json = "application/json";
static const char *problem_type = "application/problem+json";

/* ---- responses ---- */

static void add_cors(lsmi_http_t *h, struct MHD_Connection *c,
                     struct MHD_Response *resp) {
  const char *origin =
      mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
  if (origin && lsmi_config_origin_allowed(h->cfg, origin)) {
    mhd->add_response_header(resp, "Access-Control-Allow-Origin", origin);
    mhd->add_response_header(resp, "Vary", "Origin");
    mhd->add_response_header(resp, "Access-Control-Expose-Headers",
                             "Location, Retry-After, X-Total-Count, "
                             "Idempotent-Replayed, X-Request-Id");
  }
}

/*
 * Queues a response. body is taken (malloc'd, freed by MHD) unless
 * `persistent`, in which case it must outlive the daemon. hdrs: NULL-name
 * terminated, may be NULL.
 */
static enum MHD_Result send_body(lsmi_http_t *h, struct MHD_Connection *c,
                                 req_t *r, int status, const char *ctype,
                                 char *body, size_t len, bool persistent,
                                 const hdr_t *hdrs) {
  struct MHD_Response *resp = mhd->create_response_from_buffer(
      len, body, persistent ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    if (!persistent)
      free(body);
    return MHD_NO;
  }
  if (ctype)
    mhd->add_response_header(resp, "Content-Type", ctype);
  mhd->add_response_header(resp, "Cache-Control", "no-store");
  if (r->request_id[0])
    mhd->add_response_header(resp, "X-Request-Id", r->request_id);
  for (const hdr_t *x = hdrs; x && x->name; x++)
    mhd->add_response_header(resp, x->name, x->value);
  add_cors(h, c, resp);
  enum MHD_Result ok = mhd->queue_response(c, (unsigned)status, resp);
  mhd->destroy_response(resp);
  r->status = status;
  r->resp_bytes = len;
  r->responded = true;
  return ok;
}

/* Takes the reference to v. */
static enum MHD_Result send_json(lsmi_http_t *h, struct MHD_Connection *c,
                                 req_t *r, int status, json_t *v,
                                 const char *ctype, const hdr_t *hdrs) {
  char *text = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(v);
  if (text == NULL) {
    static char oom[] = "{\"type\":\"about:blank\",\"title\":\"Service "
                        "Unavailable\",\"status\":503,\"detail\":\"out of "
                        "memory\"}";
    return send_body(h, c, r, 503, problem_type, oom, sizeof oom - 1, true,
                     NULL);
  }
  return send_body(h, c, r, status, ctype ? ctype : ctype_json, text,
                   strlen(text), false, hdrs);
}

__attribute__((format(printf, 6, 7))) static enum MHD_Result
problem_h(lsmi_http_t *h, struct MHD_Connection *c, req_t *r, int status,
          const char *field, const char *fmt, ...);

static enum MHD_Result problem_hdrs(lsmi_http_t *h, struct MHD_Connection *c,
                                    req_t *r, int status, const char *field,
                                    const hdr_t *hdrs, const char *detail) {
  json_t *p = lsmi_codec_problem(status, NULL, detail, field);
  if (p && r->path[0])
    json_object_set_new(p, "instance", json_string(r->path));
  return send_json(h, c, r, status, p, problem_type, hdrs);
}

static enum MHD_Result problem_h(lsmi_http_t *h, struct MHD_Connection *c,
                                 req_t *r, int status, const char *field,
                                 const char *fmt, ...) {
  char detail[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return problem_hdrs(h, c, r, status, field, NULL, detail);
}

/* A core error as a problem: status from the table, field from err. */
static enum MHD_Result problem_err(lsmi_http_t *h, struct MHD_Connection *c,
                                   req_t *r, int st, const lsmi_error_t *err) {
  const char *msg =
      err && err->message[0] ? err->message : lsmi_status_message(st);
  return problem_hdrs(h, c, r, lsmi_codec_http_status(st), err ? err->field : NULL,
                      NULL, msg);
}

/* ---- query parameters ---- */

static const char *arg(struct MHD_Connection *c, const char *name) {
  return mhd->lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* Parses an optional non-negative integer query parameter; -1 if bad. */
static int arg_u64(struct MHD_Connection *c, const char *name, uint64_t def,
                   uint64_t *out) {
  const char *v = arg(c, name);
  if (v == NULL || *v == '\0') {
    *out = def;
    return 0;
  }
  uint64_t x = 0;
  for (const char *p = v; *p; p++) {
    if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
      return -1;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  *out = x;
  return 0;
}

/* offset and limit of a list or page; answers 400 itself when bad. */
static bool page_args(lsmi_http_t *h, struct MHD_Connection *c, req_t *r,
                      uint64_t *offset, uint64_t *limit, enum MHD_Result *res) {
  if (arg_u64(c, "offset", 0, offset) || *offset > INT64_MAX) {
    *res =
        problem_h(h, c, r, 400, "offset", "offset must be a whole number >= 0");
    return false;
  }
  if (arg_u64(c, "limit", 100, limit) || *limit < 1 ||
      *limit > h->cfg->page_limit) {
    *res = problem_h(h, c, r, 400, "limit",
                     "limit must be a whole number in [1, %llu]",
                     (unsigned long long)h->cfg->page_limit);
    return false;
  }
  return true;
}

/* ---- jobs: live progress over the stored object ---- */

static void overlay_progress(lsmi_http_t *h, json_t *job) {
  const char *state = json_string_value(json_object_get(job, "state"));
  const char *id = json_string_value(json_object_get(job, "id"));
  bool cancel = false;
  lsmi_progress_t p;
  if (state && id && !strcmp(state, "running") &&
      lsmi_sched_progress(h->sched, id, &p, &cancel) == LSMI_OK) {
    lsmi_params_t params;
    lsmi_params_default(&params);
    json_object_set_new(job, "progress", lsmi_codec_progress(&p, &params));
  }
  json_object_set_new(job, "cancel_requested", json_boolean(cancel));
}

static json_t *job_view(lsmi_http_t *h, const char *tenant, const char *id,
                        int *state) {
  json_t *j = NULL;
  lsmi_store_job_get(h->store, tenant, id, &j, state);
  if (j)
    overlay_progress(h, j);
  return j;
}

/* ---- endpoint handlers (final call) ---- */

static enum MHD_Result get_readyz(lsmi_http_t *h, struct MHD_Connection *c,
                                  req_t *r) {
  bool store = lsmi_store_ping(h->store) == LSMI_OK;
  bool loop = lsmi_sched_ready(h->sched);
  bool draining = lsmi_sched_draining(h->sched);
  bool ready = store && loop && !draining;
  return send_json(h, c, r, ready ? 200 : 503,
                   json_pack("{s:b, s:b, s:b, s:i, s:b}", "ready", ready,
                             "store", store, "loop", loop, "workers",
                             h->cfg->workers, "draining", draining),
                   NULL, NULL);
}

static enum MHD_Result get_metrics(lsmi_http_t *h, struct MHD_Connection *c,
                                   req_t *r) {
  lsmi_metrics_gauges_t g = {0};
  int queued = 0, running = 0;
  lsmi_sched_counts(h->sched, &queued, &running);
  g.queue_depth = queued;
  g.running = running;
  g.workers = h->cfg->workers;
  lsmi_store_counts(h->store, g.jobs_by_state, &g.datasets);
  char *text = lsmi_metrics_render(&g);
  if (text == NULL)
    return problem_h(h, c, r, 503, NULL, "out of memory");
  return send_body(h, c, r, 200, "text/plain; version=0.0.4; charset=utf-8",
                   text, strlen(text), false, NULL);
}

static enum MHD_Result finish_upload(lsmi_http_t *h, struct MHD_Connection *c,
                                     req_t *r) {
  const lsmi_config_t *cfg = h->cfg;
  lsmi_metrics_upload_bytes(r->bytes);
  if (r->write_errno)
    return problem_h(h, c, r, 500, NULL, "could not store the upload: %s",
                     strerror(r->write_errno));
  if (r->too_big)
    return problem_h(h, c, r, 413, "body",
                     "the upload exceeds --max-upload (%llu bytes)",
                     (unsigned long long)cfg->max_upload);
  if (r->bytes == 0)
    return problem_h(h, c, r, 400, "body",
                     "empty body: send the dataset file as the request body");
  const char *name = arg(c, "name");
  if (name && strlen(name) > 200)
    return problem_h(h, c, r, 400, "name", "name is longer than 200 bytes");
  if (name) { /* it is echoed in JSON: it must be UTF-8 */
    json_t *t = json_string(name);
    json_decref(t);
    if (t == NULL)
      return problem_h(h, c, r, 400, "name", "name is not valid UTF-8");
  }
  double vf = 0.2;
  const char *vft = arg(c, "val_fraction");
  if (vft && *vft) {
    char *end = NULL;
    vf = strtod(vft, &end);
    if (end == vft || *end || !(vf > 0 && vf <= 0.9))
      return problem_h(h, c, r, 400, "val_fraction",
                       "val_fraction must be a number in (0, 0.9]");
  }
  unsigned char digest[32];
  char hex[65];
  lsmi_sha256_final(&r->sha, digest);
  lsmi_util_hex(digest, 32, hex);

  lsmi_dataset_rec_t rec;
  int found = lsmi_store_dataset_find_sha(h->store, r->tenant, hex, &rec);
  if (found != LSMI_OK && found != LSMI_ERR_NOTFOUND)
    return problem_h(h, c, r, 500, NULL,
                     "could not look for an earlier upload of these bytes");
  if (found == LSMI_OK) {
    char loc[128];
    snprintf(loc, sizeof loc, "/v1/datasets/%s", rec.id);
    hdr_t hd[] = {{"Location", loc}, {NULL, NULL}};
    return send_json(h, c, r, 200, lsmi_store_dataset_json(&rec), NULL, hd);
  }

  lsmi_dataset_t *ds = NULL;
  lsmi_format_t fmt = LSMI_FORMAT_UNKNOWN;
  lsmi_error_t err = {0};
  int st =
      lsmi_dataset_read(r->dur.tmp, &cfg->limits, vf, 0, &ds, &fmt, &err);
  if (st)
    return problem_err(h, c, r, st, &err);
  memset(&rec, 0, sizeof rec);
  if (lsmi_util_random_id("ds_", rec.id, sizeof rec.id)) {
    lsmi_dataset_destroy(ds);
    return problem_h(h, c, r, 500, NULL, "no random bytes for an id");
  }
  snprintf(rec.tenant, sizeof rec.tenant, "%s", r->tenant);
  snprintf(rec.name, sizeof rec.name, "%s", name && *name ? name : rec.id);
  snprintf(rec.format, sizeof rec.format, "%s", lsmi_format_name(fmt));
  memcpy(rec.sha256, hex, sizeof hex);
  rec.bytes = r->bytes;
  rec.classes = ds->classes;
  rec.n_train = ds->train.n;
  rec.n_val = ds->val.n;
  rec.d1 = ds->d1;
  rec.d2 = ds->d2;
  rec.val_fraction = vf;
  rec.created_at = lsmi_util_now();
  lsmi_dataset_destroy(ds);

  char dst[PATH_MAX];
  snprintf(dst, sizeof dst, "%s/datasets/%s", cfg->data_dir, rec.id);
  int rc = lsmi_durable_commit(&r->dur, dst);
  if (rc) {
    unlink(dst); /* there when only the directory's fsync failed */
    return problem_h(h, c, r, 500, NULL, "could not store the upload: %s",
                     strerror(-rc));
  }
  lsmi_dataset_rec_t existing;
  bool existed = false;
  st = lsmi_store_dataset_insert(h->store, &rec, &existing, &existed);
  if (st == LSMI_OK && existed) { /* a concurrent upload of the same bytes */
    unlink(dst);
    rec = existing;
  } else if (st) {
    unlink(dst);
    return problem_h(h, c, r, 500, NULL, "could not record the dataset");
  }
  char loc[128];
  snprintf(loc, sizeof loc, "/v1/datasets/%s", rec.id);
  hdr_t hd[] = {{"Location", loc}, {NULL, NULL}};
  if (!existed)
    lsmi_util_log("dataset",
                  json_pack("{s:s, s:s, s:s, s:I}", "dataset", rec.id, "tenant",
                            rec.tenant, "format", rec.format, "bytes",
                            (json_int_t)rec.bytes));
  return send_json(h, c, r, existed ? 200 : 201,
                   lsmi_store_dataset_json(&rec), NULL, hd);
}

static enum MHD_Result list_datasets(lsmi_http_t *h, struct MHD_Connection *c,
                                     req_t *r) {
  uint64_t offset, limit;
  enum MHD_Result res;
  if (!page_args(h, c, r, &offset, &limit, &res))
    return res;
  json_t *page = NULL;
  int64_t total = 0;
  if (lsmi_store_dataset_list(h->store, r->tenant, (int64_t)offset,
                              (int64_t)limit, &page, &total)) {
    json_decref(page);
    return problem_h(h, c, r, 500, NULL, "the store failed");
  }
  return send_json(h, c, r, 200,
                   json_pack("{s:o, s:I, s:I, s:I}", "datasets", page, "total",
                             (json_int_t)total, "offset", (json_int_t)offset,
                             "limit", (json_int_t)limit),
                   NULL, NULL);
}

static enum MHD_Result dataset_item(lsmi_http_t *h, struct MHD_Connection *c,
                                    req_t *r) {
  if (!strcmp(r->method, "DELETE")) {
    int st = lsmi_store_dataset_delete(h->store, r->tenant, r->id);
    if (st == LSMI_ERR_NOTFOUND)
      return problem_h(h, c, r, 404, NULL, "no dataset '%s'", r->id);
    if (st == LSMI_ERR_CONFLICT)
      return problem_h(h, c, r, 409, NULL,
                       "dataset '%s' has queued or running jobs; cancel "
                       "them first",
                       r->id);
    if (st)
      return problem_h(h, c, r, 500, NULL, "the store failed");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/datasets/%s", h->cfg->data_dir, r->id);
    unlink(path);
    return send_body(h, c, r, 204, NULL, (char *)"", 0, true, NULL);
  }
  lsmi_dataset_rec_t rec;
  int st = lsmi_store_dataset_get(h->store, r->tenant, r->id, &rec);
  if (st == LSMI_ERR_NOTFOUND)
    return problem_h(h, c, r, 404, NULL, "no dataset '%s'", r->id);
  if (st)
    return problem_h(h, c, r, 500, NULL, "the store failed");
  return send_json(h, c, r, 200, lsmi_store_dataset_json(&rec), NULL, NULL);
}

/* The normalised request {dataset_id, params} hashed for Idempotency-Key. */
static void request_hash(const char *dataset_id, const lsmi_params_t *p,
                         char hex[65]) {
  json_t *o = json_pack("{s:s, s:o}", "dataset_id", dataset_id, "params",
                        lsmi_codec_params_to_json(p));
  char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  lsmi_sha256_t s;
  lsmi_sha256_init(&s);
  if (text)
    lsmi_sha256_update(&s, text, strlen(text));
  free(text);
  unsigned char d[32];
  lsmi_sha256_final(&s, d);
  lsmi_util_hex(d, 32, hex);
}

static enum MHD_Result send_job(lsmi_http_t *h, struct MHD_Connection *c,
                                req_t *r, int status, const char *tenant,
                                const char *id, bool replay) {
  json_t *job = job_view(h, tenant, id, NULL);
  if (job == NULL)
    return problem_h(h, c, r, 500, NULL, "job '%s' vanished", id);
  char loc[128];
  snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
  hdr_t hd[] = {{"Location", loc},
                {replay ? "Idempotent-Replayed" : NULL, "true"},
                {NULL, NULL}};
  return send_json(h, c, r, status, job, NULL, hd);
}

static enum MHD_Result create_job(lsmi_http_t *h, struct MHD_Connection *c,
                                  req_t *r) {
  if (r->too_big)
    return problem_h(h, c, r, 413, "body",
                     "the request body exceeds --max-body (%llu bytes)",
                     (unsigned long long)h->cfg->max_body);
  char dataset_id[64];
  lsmi_params_t params;
  lsmi_error_t err = {0};
  int st = lsmi_codec_job_request(r->body, r->len, dataset_id,
                                  sizeof dataset_id, &params, &err);
  if (st)
    return problem_err(h, c, r, st, &err);
  const char *key =
      mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
  if (key && (strlen(key) == 0 || strlen(key) > 200))
    return problem_h(h, c, r, 400, "Idempotency-Key",
                     "Idempotency-Key must have 1 to 200 characters");
  char hash[65], existing[64] = "";
  request_hash(dataset_id, &params, hash);
  if (key) {
    bool replayed = false;
    st = lsmi_store_idem_check(h->store, r->tenant, key, hash, existing,
                               &replayed);
    if (st == LSMI_OK && replayed)
      return send_job(h, c, r, 202, r->tenant, existing, true);
    if (st == LSMI_ERR_CONFLICT)
      return problem_h(h, c, r, 409, "Idempotency-Key",
                       "Idempotency-Key was already used for a different "
                       "request (job %s)",
                       existing);
  }
  st = lsmi_sched_reserve(h->sched);
  if (st == LSMI_ERR_BUSY) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", h->cfg->retry_after);
    hdr_t hd[] = {{"Retry-After", ra}, {NULL, NULL}};
    char detail[128];
    snprintf(detail, sizeof detail,
             "the job queue is full (%d queued); retry in %d s",
             h->cfg->queue_size, h->cfg->retry_after);
    return problem_hdrs(h, c, r, 429, NULL, hd, detail);
  }
  if (st)
    return problem_h(h, c, r, 503, NULL, "the daemon is shutting down");
  char id[64];
  char *params_json = NULL, *progress_json = NULL;
  json_t *pj = lsmi_codec_params_to_json(&params);
  params_json = pj ? json_dumps(pj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(pj);
  json_t *pg = lsmi_codec_progress(NULL, &params);
  progress_json =
      pg ? json_dumps(pg, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(pg);
  enum MHD_Result res;
  if (!params_json || !progress_json ||
      lsmi_util_random_id("job_", id, sizeof id)) {
    lsmi_sched_unreserve(h->sched);
    res = problem_h(h, c, r, 503, NULL, "out of memory");
    goto out;
  }
  lsmi_job_new_t nj = {id,          r->tenant,     dataset_id,
                       params_json, progress_json, lsmi_util_now(),
                       key,         hash};
  bool replayed = false;
  st = lsmi_store_job_create(h->store, &nj, existing, &replayed);
  if (st != LSMI_OK || replayed) {
    lsmi_sched_unreserve(h->sched);
    if (st == LSMI_OK)
      res = send_job(h, c, r, 202, r->tenant, existing, true);
    else if (st == LSMI_ERR_CONFLICT)
      res = problem_h(h, c, r, 409, "Idempotency-Key",
                      "Idempotency-Key was already used for a different "
                      "request (job %s)",
                      existing);
    else if (st == LSMI_ERR_NOTFOUND)
      res =
          problem_h(h, c, r, 422, "dataset_id", "no dataset '%s'", dataset_id);
    else
      res = problem_h(h, c, r, 500, NULL, "the store failed");
    goto out;
  }
  lsmi_sched_submit(h->sched, id, r->tenant, dataset_id, &params);
  lsmi_util_log("job",
                json_pack("{s:s, s:s, s:s, s:s}", "job", id, "tenant",
                          r->tenant, "dataset", dataset_id, "state", "queued"));
  res = send_job(h, c, r, 202, r->tenant, id, false);
out:
  free(params_json);
  free(progress_json);
  return res;
}

static enum MHD_Result list_jobs(lsmi_http_t *h, struct MHD_Connection *c,
                                 req_t *r) {
  uint64_t offset, limit;
  enum MHD_Result res;
  if (!page_args(h, c, r, &offset, &limit, &res))
    return res;
  int state = -1;
  const char *sv = arg(c, "state");
  if (sv && *sv && lsmi_job_state_parse(sv, &state))
    return problem_h(h, c, r, 400, "state",
                     "state must be queued, running, succeeded, failed or "
                     "cancelled");
  json_t *page = NULL;
  int64_t total = 0;
  if (lsmi_store_job_list(h->store, r->tenant, state, (int64_t)offset,
                          (int64_t)limit, &page, &total)) {
    json_decref(page);
    return problem_h(h, c, r, 500, NULL, "the store failed");
  }
  size_t i;
  json_t *j;
  json_array_foreach(page, i, j) overlay_progress(h, j);
  return send_json(h, c, r, 200,
                   json_pack("{s:o, s:I, s:I, s:I}", "jobs", page, "total",
                             (json_int_t)total, "offset", (json_int_t)offset,
                             "limit", (json_int_t)limit),
                   NULL, NULL);
}

static enum MHD_Result job_item(lsmi_http_t *h, struct MHD_Connection *c,
                                req_t *r) {
  int state = -1;
  json_t *job = job_view(h, r->tenant, r->id, &state);
  if (job == NULL)
    return problem_h(h, c, r, 404, NULL, "no job '%s'", r->id);
  if (strcmp(r->method, "DELETE") != 0)
    return send_json(h, c, r, 200, job, NULL, NULL);
  json_decref(job);
  if (state != LSMI_JOB_QUEUED && state != LSMI_JOB_RUNNING)
    return problem_h(h, c, r, 409, NULL,
                     "job '%s' has already finished (%s); only queued or "
                     "running jobs can be cancelled",
                     r->id, lsmi_job_state_name(state));
  bool running = false;
  lsmi_sched_cancel(h->sched, r->id, &running); /* NOTFOUND: not yet here */
  if (!running) {
    /* Queued (or about to be): the store decides who wins the race. */
    int st = lsmi_store_job_cancel_queued(h->store, r->id, lsmi_util_now());
    if (st == LSMI_OK)
      lsmi_util_log("job", json_pack("{s:s, s:s, s:s}", "job", r->id, "tenant",
                                     r->tenant, "state", "cancelled"));
    else /* it started meanwhile: stop it */
      lsmi_sched_cancel(h->sched, r->id, &running);
  }
  return send_job(h, c, r, 202, r->tenant, r->id, false);
}

static enum MHD_Result get_results(lsmi_http_t *h, struct MHD_Connection *c,
                                   req_t *r) {
  int state = -1;
  json_t *job = NULL;
  lsmi_store_job_get(h->store, r->tenant, r->id, &job, &state);
  if (job == NULL)
    return problem_h(h, c, r, 404, NULL, "no job '%s'", r->id);
  json_decref(job);
  if (state != LSMI_JOB_SUCCEEDED)
    return problem_h(h, c, r, 409, NULL,
                     "job '%s' is %s; results exist once it has succeeded",
                     r->id, lsmi_job_state_name(state));
  lsmi_respage_t q = {0};
  const char *split = arg(c, "split");
  if (split == NULL || *split == '\0')
    split = "val";
  if (strcmp(split, "val") && strcmp(split, "train"))
    return problem_h(h, c, r, 400, "split", "split must be train or val");
  q.split = split;
  uint64_t offset, limit;
  enum MHD_Result res;
  if (!page_args(h, c, r, &offset, &limit, &res))
    return res;
  q.offset = (size_t)offset;
  q.limit = (size_t)limit;
  if (lsmi_resfile_parse_sort(arg(c, "sort"), arg(c, "order"), &q.sort,
                              &q.desc))
    return problem_h(h, c, r, 400, "sort",
                     "sort must be one of index, y, r, u1, u2, s, i1, i2, "
                     "i12, h1, h2 (a leading '-' sorts descending) and "
                     "order asc or desc");
  if (lsmi_resfile_parse_format(arg(c, "format"), &q.format))
    return problem_h(h, c, r, 400, "format",
                     "format must be json, csv or ndjson");
  lsmi_rows_t rows;
  lsmi_error_t err = {0};
  int st = lsmi_resfile_read(h->cfg->data_dir, r->id, split, &rows, &err);
  if (st)
    return problem_h(h, c, r, 500, NULL, "%s", err.message);
  size_t len = 0;
  const char *ctype = NULL;
  char *body = lsmi_resfile_render(&rows, &q, &len, &ctype);
  char total[32];
  snprintf(total, sizeof total, "%zu", rows.n);
  lsmi_resfile_rows_free(&rows);
  if (body == NULL)
    return problem_h(h, c, r, 503, NULL, "out of memory");
  hdr_t hd[] = {{"X-Total-Count", total}, {NULL, NULL}};
  return send_body(h, c, r, 200, ctype, body, len, false, hd);
}

/* ---- the access handler ---- */

static const char *bearer(struct MHD_Connection *c) {
  const char *a =
      mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
    return NULL;
  a += 7;
  while (*a == ' ')
    a++;
  return a;
}

/* Headers are in: route, authenticate, answer early what we can. */
static enum MHD_Result first_call(lsmi_http_t *h, struct MHD_Connection *c,
                                  req_t *r) {
  if (!strcmp(r->method, "OPTIONS")) {
    if (r->route == LSMI_ROUTE_NONE)
      return problem_h(h, c, r, 404, NULL, "no such resource");
    char allow[64];
    snprintf(allow, sizeof allow, "%s, OPTIONS", lsmi_router_allow(r->route));
    hdr_t hd[] = {{"Allow", allow},
                  {"Access-Control-Allow-Methods", allow},
                  {"Access-Control-Allow-Headers",
                   "Authorization, Content-Type, Idempotency-Key"},
                  {"Access-Control-Max-Age", "600"},
                  {NULL, NULL}};
    return send_body(h, c, r, 204, NULL, (char *)"", 0, true, hd);
  }
  if (r->route == LSMI_ROUTE_NONE)
    return problem_h(h, c, r, 404, NULL, "no such resource: %s", r->path);
  if (!lsmi_router_allows(r->route, r->method)) {
    hdr_t hd[] = {{"Allow", lsmi_router_allow(r->route)}, {NULL, NULL}};
    char detail[128];
    snprintf(detail, sizeof detail, "%s is not allowed here; allowed: %s",
             r->method, lsmi_router_allow(r->route));
    return problem_hdrs(h, c, r, 405, NULL, hd, detail);
  }
  if (lsmi_router_needs_auth(r->route)) {
    if (h->cfg->n_tokens == 0) {
      r->tenant = "default";
    } else {
      r->tenant = lsmi_config_tenant(h->cfg, bearer(c));
      if (r->tenant == NULL) {
        hdr_t hd[] = {{"WWW-Authenticate", "Bearer realm=\"lsmi\""},
                      {NULL, NULL}};
        return problem_hdrs(h, c, r, 401, "Authorization", hd,
                            "a valid bearer token is required "
                            "(Authorization: Bearer TOKEN)");
      }
    }
  }
  if (lsmi_sched_draining(h->sched) && strcmp(r->method, "GET"))
    return problem_h(h, c, r, 503, NULL, "the daemon is shutting down");
  const char *cl =
      mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
  unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
  if (r->route == LSMI_ROUTE_DATASETS && !strcmp(r->method, "POST")) {
    if (clen > h->cfg->max_upload)
      return problem_h(h, c, r, 413, "body",
                       "the upload (%llu bytes) exceeds --max-upload (%llu "
                       "bytes)",
                       clen, (unsigned long long)h->cfg->max_upload);
    char tmpdir[PATH_MAX];
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", h->cfg->data_dir);
    int rc = lsmi_durable_begin(&r->dur, tmpdir, "upload", 0600);
    if (rc)
      return problem_h(h, c, r, 500, NULL, "cannot create a temp file: %s",
                       strerror(-rc));
    lsmi_sha256_init(&r->sha);
  } else if (r->route == LSMI_ROUTE_JOBS && !strcmp(r->method, "POST")) {
    const char *ct =
        mhd->lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
      return problem_h(h, c, r, 415, "Content-Type",
                       "POST /v1/jobs takes application/json, got %s",
                       ct ? ct : "no Content-Type");
    if (clen > h->cfg->max_body)
      return problem_h(h, c, r, 413, "body",
                       "the request body exceeds --max-body (%llu bytes)",
                       (unsigned long long)h->cfg->max_body);
  }
  return MHD_YES;
}

static void consume(lsmi_http_t *h, req_t *r, const char *data, size_t n) {
  if (r->route == LSMI_ROUTE_DATASETS) {
    if (r->too_big || r->write_errno || r->dur.fd < 0) {
      r->bytes += n;
      return;
    }
    if (r->bytes + n > h->cfg->max_upload) {
      r->too_big = true;
      r->bytes += n;
      return;
    }
    int rc = lsmi_durable_write(&r->dur, data, n);
    if (rc)
      r->write_errno = -rc;
    lsmi_sha256_update(&r->sha, data, n);
    r->bytes += n;
    return;
  }
  if (r->too_big)
    return;
  if (r->len + n > h->cfg->max_body) {
    r->too_big = true;
    return;
  }
  if (r->len + n + 1 > r->cap) {
    size_t cap = (r->len + n + 1) * 2;
    char *p = realloc(r->body, cap);
    if (p == NULL) {
      r->too_big = true;
      return;
    }
    r->body = p;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  r->body[r->len] = '\0';
}

static enum MHD_Result final_call(lsmi_http_t *h, struct MHD_Connection *c,
                                  req_t *r) {
  bool del = !strcmp(r->method, "DELETE");
  bool post = !strcmp(r->method, "POST");
  switch (r->route) {
  case LSMI_ROUTE_HEALTHZ:
    return send_json(h, c, r, 200, json_pack("{s:s}", "status", "ok"), NULL,
                     NULL);
  case LSMI_ROUTE_READYZ:
    return get_readyz(h, c, r);
  case LSMI_ROUTE_METRICS:
    return get_metrics(h, c, r);
  case LSMI_ROUTE_OPENAPI: {
    size_t len = 0;
    const char *text = lsmi_openapi_text(&len);
    return send_body(h, c, r, 200, "application/yaml", (char *)text, len, true,
                     NULL);
  }
  case LSMI_ROUTE_DATASETS:
    return post ? finish_upload(h, c, r) : list_datasets(h, c, r);
  case LSMI_ROUTE_DATASET:
    return dataset_item(h, c, r);
  case LSMI_ROUTE_JOBS:
    return post ? create_job(h, c, r) : list_jobs(h, c, r);
  case LSMI_ROUTE_JOB:
    (void)del;
    return job_item(h, c, r);
  case LSMI_ROUTE_JOB_RESULTS:
    return get_results(h, c, r);
  default:
    return problem_h(h, c, r, 404, NULL, "no such resource");
  }
}

/* Copies text for logs and problem bodies: bytes outside printable ASCII
 * become '?', so that a hostile path cannot break a JSON log line. */
static void printable(char *dst, size_t size, const char *src) {
  size_t i = 0;
  for (; src && src[i] && i + 1 < size; i++) {
    unsigned char ch = (unsigned char)src[i];
    dst[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
  }
  dst[i] = '\0';
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  lsmi_http_t *h = cls;
  req_t *r = *con_cls;
  (void)version;
  if (r == NULL) {
    r = calloc(1, sizeof *r);
    if (r == NULL)
      return MHD_NO;
    r->dur = (lsmi_durable_t)LSMI_DURABLE_INIT;
    r->t0 = lsmi_util_mono();
    printable(r->method, sizeof r->method, method);
    printable(r->path, sizeof r->path, url);
    r->route = lsmi_router_match(url, r->id);
    const char *rid =
        mhd->lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && *rid && strlen(rid) < 64)
      printable(r->request_id, sizeof r->request_id, rid);
    else
      lsmi_util_random_id("req_", r->request_id, sizeof r->request_id);
    *con_cls = r;
    return first_call(h, c, r);
  }
  if (*upload_data_size) {
    if (!r->responded)
      consume(h, r, upload_data, *upload_data_size);
    *upload_data_size = 0;
    /* A chunked body far past the limit: stop reading, drop the client. */
    if (r->too_big && r->bytes > h->cfg->max_upload + ABORT_SLACK)
      return MHD_NO;
    return MHD_YES;
  }
  if (r->responded)
    return MHD_YES;
  return final_call(h, c, r);
}

/* Runs when MHD is done with a request: log, count, release. */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls;
  req_t *r = *con_cls;
  if (r == NULL)
    return;
  double secs = lsmi_util_mono() - r->t0;
  int status = r->status ? r->status : 499; /* client went away */
  lsmi_metrics_request(r->route, status, secs);
  if (!lsmi_util_log_requests_quiet() || status >= 500) {
    const union MHD_ConnectionInfo *ci =
        mhd->get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[INET6_ADDRSTRLEN] = "";
    if (ci && ci->client_addr) {
      const struct sockaddr *sa = ci->client_addr;
      if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET,
                  &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                  peer, sizeof peer);
      else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6,
                  &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  peer, sizeof peer);
    }
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:I, s:s, s:s}", "request_id",
                  r->request_id, "method", r->method, "path", r->path, "route",
                  lsmi_router_name(r->route), "status", status, "ms",
                  secs * 1e3, "bytes", (json_int_t)r->resp_bytes, "tenant",
                  r->tenant ? r->tenant : "", "peer", peer);
    if (o && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
      json_object_set_new(o, "terminated", json_integer((json_int_t)toe));
    if (o && r->bytes)
      json_object_set_new(o, "upload_bytes",
                          json_integer((json_int_t)r->bytes));
    lsmi_util_log("request", o);
  }
  lsmi_durable_abort(&r->dur); /* an upload not committed */
  free(r->body);
  free(r);
  *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  lsmi_util_log("http_error", json_pack("{s:s}", "detail", msg));
}

int lsmi_http_start(const lsmi_config_t *cfg, lsmi_store_t *store,
                    lsmi_sched_t *sched, lsmi_http_t **out, lsmi_error_t *err) {
  *out = NULL;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  const char *host = cfg->host;
  if (!strcmp(host, "localhost"))
    host = "127.0.0.1";
  /* AUTO: epoll where there is one, so no select() limit on descriptors. */
  unsigned flags =
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
  if (strchr(host, ':')) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)&ss;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
      return lsmi_error_set(err, LSMI_ERR_INVALID, "listen",
                            "--listen: '%s' is not an IPv6 address", host);
    flags |= MHD_USE_IPv6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)(void *)&ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
      return lsmi_error_set(err, LSMI_ERR_INVALID, "listen",
                            "--listen: '%s' is not an IPv4 address", host);
  }
  if (mhd == NULL && (mhd = lsmi_mhd()) == NULL)
    return lsmi_error_set(err, LSMI_ERR_IO, "", "cannot load libmicrohttpd: %s",
                          lsmi_mhd_error());
  lsmi_http_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  h->cfg = cfg;
  h->store = store;
  h->sched = sched;
  h->d = mhd->start_daemon(
      flags, 0, NULL, NULL, handler, h,
      /* First, so that libmicrohttpd's own messages about the options that
       * follow go to our JSON log too. */
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, &ss,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
      MHD_OPTION_NOTIFY_COMPLETED, completed, h,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
  if (h->d == NULL) {
    free(h);
    return lsmi_error_set(err, LSMI_ERR_IO, "listen",
                          "cannot listen on %s (address in use or not "
                          "permitted?)",
                          cfg->listen);
  }
  const union MHD_DaemonInfo *di =
      mhd->get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  h->port = di ? (int)di->port : cfg->port;
  *out = h;
  return LSMI_OK;
}

int lsmi_http_port(const lsmi_http_t *h) { return h->port; }

void lsmi_http_stop(lsmi_http_t *h) {
  if (h == NULL)
    return;
  if (h->d)
    mhd->stop_daemon(h->d);
  free(h);
}
