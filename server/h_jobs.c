/*
 * h_jobs.c — /v1/jobs: submitting a job, the list, one job, cancelling
 * or deleting it.
 * See handlers.h for how a handler answers.
 *
 * A job is stored first (queued, in one transaction with its checks: the
 * dataset is the tenant's, the Idempotency-Key is new or names this very
 * request) and then handed to the scheduler, in a place of its queue
 * reserved before the store was touched, so a full queue answers 429
 * without writing anything. A job whose memory estimate exceeds
 * --max-job-memory is refused with 422 before that. A job read back shows
 * the store's object with the live progress of a running fit laid over it,
 * or, when its end is not in the store yet (sched.h), that end.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "datadir.h"
#include "handlers.h"
#include "quota.h"
#include "util.h"

int lsmi_h_jobs_begin(lsmi_req_t *r) {
  const char *ct = lsmi_http_header(r, "Content-Type");
  if (!lsmi_http_media_type_is(ct, "application/json"))
    return lsmi_error_set(&r->err, LSMI_ERR_UNSUPPORTED, "Content-Type",
                          "POST /v1/jobs takes application/json, got %s",
                          ct ? ct : "no Content-Type");
  if (lsmi_http_content_length(r) > r->h->cfg->max_body)
    return lsmi_error_set(&r->err, LSMI_ERR_LIMIT, "body",
                          "the request body exceeds --max-body (%llu bytes)",
                          (unsigned long long)r->h->cfg->max_body);
  return LSMI_OK;
}

/* A JSON text as a value (null when NULL or unparsable). */
static json_t *parsed(const char *text) {
  json_t *v = text ? json_loads(text, 0, NULL) : NULL;
  return v ? v : json_null();
}

/* Lays the end the store has not taken yet over a job's stored object:
 * its true state, and "recorded": false. */
static void overlay_end(json_t *job, lsmi_sched_end_t *end) {
  char at[40];
  lsmi_util_iso8601(end->finished_at, at, sizeof at);
  json_object_set_new(job, "state",
                      json_string(lsmi_job_state_name(end->state)));
  json_object_set_new(job, "finished_at", json_string(at));
  json_object_set_new(job, "error", parsed(end->error));
  json_object_set_new(job, "summary", parsed(end->summary));
  if (end->progress)
    json_object_set_new(job, "progress", parsed(end->progress));
  json_object_set_new(job, "recorded", json_false());
  lsmi_sched_end_free(end);
}

/* Lays the live progress of a running job over its stored object, with
 * its ETA (from the seconds it has run and its fraction done) and, while
 * queued, its place in the queue (1 = next); or the end of one whose end
 * the store has not taken. */
static void overlay_progress(lsmi_http_t *h, json_t *job) {
  const char *state = json_string_value(json_object_get(job, "state"));
  const char *id = json_string_value(json_object_get(job, "id"));
  bool running = state && id && !strcmp(state, "running");
  bool cancel = json_is_true(json_object_get(job, "cancel_requested"));
  bool asked = false;
  lsmi_progress_t p;
  double ran = 0;
  int place = 0;
  json_t *eta = json_null(), *queue = json_null();
  lsmi_sched_end_t end;
  if (running && lsmi_sched_progress(h->sched, id, &p, &asked) == LSMI_OK) {
    lsmi_params_t params;
    lsmi_params_default(&params);
    json_object_set_new(job, "progress", lsmi_codec_progress(&p, &params));
    lsmi_sched_whereabouts(h->sched, id, &ran, &place);
    if (p.fraction >= 0.01 && p.fraction < 1) {
      json_decref(eta);
      eta = json_integer((json_int_t)ceil(ran * (1 - p.fraction) / p.fraction));
    }
  } else if (running && lsmi_sched_ended(h->sched, id, &end) == LSMI_OK) {
    overlay_end(job, &end);
  } else if (state && id && !strcmp(state, "queued") &&
             lsmi_sched_whereabouts(h->sched, id, &ran, &place) == LSMI_OK &&
             place > 0) {
    json_decref(queue);
    queue = json_integer(place);
  }
  json_t *prog = json_object_get(job, "progress");
  if (json_is_object(prog)) {
    json_object_set_new(prog, "eta_seconds", eta);
    json_object_set_new(prog, "queue_position", queue);
  } else {
    json_decref(eta);
    json_decref(queue);
  }
  json_object_set_new(job, "cancel_requested", json_boolean(cancel || asked));
}

int lsmi_h_job_view(lsmi_http_t *h, const char *tenant, const char *id,
                    json_t **job, int *state) {
  int st = lsmi_store_job_get(h->store, tenant, id, job, state);
  if (st == LSMI_OK)
    overlay_progress(h, *job);
  return st;
}

/* The tenant's job `id` with its live progress into *job (taken): 0, or a
 * 404 for LSMI_ERR_NOTFOUND, or the store's failure. */
static int job_view(lsmi_req_t *r, const char *id, json_t **job, int *state) {
  int st = lsmi_h_job_view(r->h, r->tenant, id, job, state);
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL, "no job '%s'", id);
  if (st)
    return lsmi_http_store_failed(r, st);
  return LSMI_OK;
}

/* Answers job `id` (202 with its Location; `replay` marks an
 * Idempotency-Key's earlier job). */
static int reply_job(lsmi_req_t *r, const char *id, bool replay) {
  json_t *job = NULL;
  int st = job_view(r, id, &job, NULL);
  if (st == LSMI_ERR_NOTFOUND) /* stored a moment ago */
    return lsmi_error_set(&r->err, LSMI_ERR_IO, NULL, "job '%s' vanished", id);
  if (st)
    return st;
  char loc[128];
  snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
  lsmi_hdr_t hd[] = {{"Location", loc},
                     {replay ? "Idempotent-Replayed" : NULL, "true"},
                     {NULL, NULL}};
  return lsmi_http_reply_json(r, 202, job, hd);
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

static int key_conflict(lsmi_req_t *r, const char *existing) {
  return lsmi_error_set(&r->err, LSMI_ERR_CONFLICT, "Idempotency-Key",
                        "Idempotency-Key was already used for a different "
                        "request (job %s)",
                        existing);
}

/* A job request as the store keeps it. */
typedef struct job_req {
  char dataset_id[64];
  lsmi_params_t params;
  const char *key; /* Idempotency-Key, or NULL */
  char hash[65];   /* of the normalised request */
} job_req_t;

/* Parses the body and the Idempotency-Key: 0, or why not. */
static int parse_job(lsmi_req_t *r, job_req_t *q) {
  if (r->too_big)
    return lsmi_error_set(&r->err, LSMI_ERR_LIMIT, "body",
                          "the request body exceeds --max-body (%llu bytes)",
                          (unsigned long long)r->h->cfg->max_body);
  int st = lsmi_codec_job_request(r->body, r->len, q->dataset_id,
                                  sizeof q->dataset_id, &q->params, &r->err);
  if (st)
    return st;
  q->key = lsmi_http_header(r, "Idempotency-Key");
  if (q->key && (strlen(q->key) == 0 || strlen(q->key) > 200))
    return lsmi_http_bad_request(r, "Idempotency-Key",
                                 "Idempotency-Key must have 1 to 200 "
                                 "characters");
  request_hash(q->dataset_id, &q->params, q->hash);
  return LSMI_OK;
}

/* Stores q as job `id` (queued) in the place reserved for it. *replayed:
 * the key's earlier job of the same request, in `existing`, stands. */
static int store_job(lsmi_req_t *r, const job_req_t *q, const char *id,
                     char existing[64], bool *replayed) {
  char *params = lsmi_util_json_text(lsmi_codec_params_to_json(&q->params));
  char *progress = lsmi_util_json_text(lsmi_codec_progress(NULL, &q->params));
  int st = LSMI_OK;
  if (params == NULL || progress == NULL) {
    st = lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
    goto out;
  }
  lsmi_job_new_t nj = {id,       r->tenant,       q->dataset_id, params,
                       progress, lsmi_util_now(), q->key,        q->hash};
  st = lsmi_store_job_create(r->h->store, &nj, existing, replayed);
  if (st == LSMI_ERR_CONFLICT)
    st = key_conflict(r, existing);
  else if (st == LSMI_ERR_NOTFOUND)
    st = lsmi_error_set(&r->err, LSMI_ERR_INVALID, "dataset_id",
                        "no dataset '%s'", q->dataset_id);
  else if (st)
    st = lsmi_http_store_failed(r, st);
out:
  free(params);
  free(progress);
  return st;
}

/* A place in the queue: 0, or a 429 (full, or this tenant's share of it
 * taken) or 503 (shutting down; the cluster's database out of reach). */
static int reserve(lsmi_req_t *r) {
  bool own = false;
  int st = lsmi_sched_reserve(r->h->sched, r->tenant, &own);
  if (st == LSMI_ERR_BUSY && own)
    return lsmi_error_set(&r->err, st, NULL,
                          "you have %d jobs queued, the most one tenant may "
                          "(--tenant-queue-size); retry in %d s",
                          lsmi_sched_tenant_limit(r->h->sched),
                          r->h->cfg->retry_after);
  if (st == LSMI_ERR_BUSY)
    return lsmi_error_set(&r->err, st, NULL,
                          "the job queue is full (%d queued); retry in %d s",
                          r->h->cfg->queue_size, r->h->cfg->retry_after);
  if (st == LSMI_ERR_UNAVAILABLE || st == LSMI_ERR_IO)
    return lsmi_http_store_failed(r, st);
  if (st)
    return lsmi_error_set(&r->err, st, NULL, "the daemon is shutting down");
  return LSMI_OK;
}

/* 0 unless the job asks for a val split (params.val_fraction) that
 * cannot apply: the dataset's file has its own, which a job never
 * redraws (as `lsmi fit --val-fraction` is an error on such a file); a
 * 422 naming params.val_fraction then, never a fraction silently unused. */
static int check_val_fraction(lsmi_req_t *r, const job_req_t *q,
                              const lsmi_dataset_rec_t *rec) {
  if (!(q->params.val_fraction > 0) || rec->val_fraction > 0)
    return LSMI_OK;
  return lsmi_error_set(&r->err, LSMI_ERR_INVALID, "params.val_fraction",
                        "params.val_fraction %g cannot apply: the file of "
                        "dataset %s has its own val split (%llu rows); leave "
                        "val_fraction out to use it",
                        q->params.val_fraction, rec->id,
                        (unsigned long long)rec->n_val);
}

/* 0 when the job fits its dataset (check_val_fraction) and its memory
 * estimate fits --max-job-memory; a 422 naming what it needs otherwise. A
 * dataset the tenant does not have is left for the store's check, in one
 * transaction with the job's insert. */
static int admit_memory(lsmi_req_t *r, const job_req_t *q) {
  const lsmi_config_t *cfg = r->h->cfg;
  lsmi_dataset_rec_t rec;
  int st = lsmi_store_dataset_get(r->h->store, r->tenant, q->dataset_id, &rec);
  if (st == LSMI_ERR_NOTFOUND)
    return LSMI_OK;
  if (st)
    return lsmi_http_store_failed(r, st);
  if ((st = check_val_fraction(r, q, &rec)))
    return st;
  lsmi_params_t p = q->params;
  p.threads = lsmi_sched_fit_threads(cfg, &p);
  uint64_t need = lsmi_mem_job_estimate(&rec, &p);
  if (cfg->max_job_memory == 0 || need <= cfg->max_job_memory)
    return LSMI_OK;
  char a[32], b[32], d[32];
  r->http = 422;
  return lsmi_error_set(
      &r->err, LSMI_ERR_LIMIT, "params",
      "this job needs about %s of memory (%s of data: %llu + %llu rows, d1 "
      "%llu, d2 %llu; the models of hidden %d, components %d, ensemble %d, "
      "folds %d), above --max-job-memory %s: lower hidden, components, "
      "ensemble or folds",
      lsmi_mem_format(need, a, sizeof a),
      lsmi_mem_format(
          lsmi_mem_dataset_bytes(rec.n_train, rec.n_val, rec.d1, rec.d2), d,
          sizeof d),
      (unsigned long long)rec.n_train, (unsigned long long)rec.n_val,
      (unsigned long long)rec.d1, (unsigned long long)rec.d2, p.hidden,
      p.components, p.ensemble, p.folds,
      lsmi_mem_format(cfg->max_job_memory, b, sizeof b));
}

int lsmi_h_jobs_post(lsmi_req_t *r) {
  job_req_t q;
  char existing[64] = "", id[64];
  bool replayed = false;
  int st = parse_job(r, &q);
  if (st == LSMI_OK && q.key) { /* a replay needs no place in the queue */
    st = lsmi_store_idem_check(r->h->store, r->tenant, q.key, q.hash, existing,
                               &replayed);
    if (st == LSMI_ERR_CONFLICT)
      return key_conflict(r, existing);
    if (st)
      return lsmi_http_store_failed(r, st);
    if (replayed)
      return reply_job(r, existing, true);
  }
  if (st == LSMI_OK) /* room for its results: 507 past a quota */
    st = lsmi_quota_check(r->h->cfg, r->h->store, r->tenant, 0, &r->err);
  if (st == LSMI_OK)
    st = admit_memory(r, &q);
  if (st == LSMI_OK)
    st = reserve(r);
  if (st)
    return st;
  st = lsmi_util_random_id("job_", id, sizeof id);
  if (st)
    lsmi_error_set(&r->err, st, NULL, "no random bytes for an id");
  else
    st = store_job(r, &q, id, existing, &replayed);
  if (st || replayed) {
    lsmi_sched_unreserve(r->h->sched, r->tenant);
    return st ? st : reply_job(r, existing, true);
  }
  /* Out of memory here, the job stays queued in the store: it runs after
   * a restart, and the client has its id either way. */
  lsmi_sched_submit(r->h->sched, id, r->tenant, q.dataset_id, &q.params);
  lsmi_util_log("job", json_pack("{s:s, s:s, s:s, s:s}", "job", id, "tenant",
                                 r->tenant, "dataset", q.dataset_id, "state",
                                 "queued"));
  return reply_job(r, id, false);
}

int lsmi_h_jobs_list(lsmi_req_t *r) {
  uint64_t offset, limit;
  int st = lsmi_http_page_args(r, &offset, &limit);
  if (st)
    return st;
  int state = -1;
  const char *sv = lsmi_http_arg(r, "state");
  if (sv && *sv && lsmi_job_state_parse(sv, &state))
    return lsmi_http_bad_request(r, "state",
                                 "state must be queued, running, succeeded, "
                                 "failed or cancelled");
  json_t *page = NULL;
  int64_t total = 0;
  st = lsmi_store_job_list(r->h->store, r->tenant, state, (int64_t)offset,
                           (int64_t)limit, &page, &total);
  if (st)
    return lsmi_http_store_failed(r, st);
  size_t i;
  json_t *j;
  json_array_foreach(page, i, j) overlay_progress(r->h, j);
  return lsmi_http_reply_page(r, "jobs", page, total, offset, limit);
}

int lsmi_h_job_get(lsmi_req_t *r) {
  json_t *job = NULL;
  int st = job_view(r, r->id, &job, NULL);
  return st ? st : lsmi_http_reply_tagged(r, job);
}

/* The 409 of a job that finished while a DELETE meant to cancel it. */
static int finished_meanwhile(lsmi_req_t *r, int state) {
  return lsmi_error_set(&r->err, LSMI_ERR_CONFLICT, NULL,
                        "job '%s' has finished (%s) meanwhile; DELETE it "
                        "again to remove it and its results",
                        r->id, lsmi_job_state_name(state));
}

/*
 * Deletes a finished job: its row and idempotency keys go in one
 * transaction with a pending "job" entry, then its result files and cached
 * orders, then the entry (a crash in between leaves the entry, which the
 * next start finishes: datadir.h).
 */
static int delete_finished(lsmi_req_t *r) {
  lsmi_store_t *store = r->h->store;
  int state = -1;
  int st = lsmi_store_job_delete(store, r->tenant, r->id, &state);
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL, "no job '%s'", r->id);
  if (st == LSMI_ERR_CONFLICT) /* cannot happen: ends are final */
    return lsmi_error_set(&r->err, st, NULL, "job '%s' is %s", r->id,
                          lsmi_job_state_name(state));
  if (st)
    return lsmi_http_store_failed(r, st);
  if (lsmi_datadir_remove_job(r->h->cfg->data_dir, store, r->id) != LSMI_OK)
    lsmi_util_log("store_error",
                  json_pack("{s:s, s:s, s:s}", "level", "warn", "job", r->id,
                            "detail",
                            "the job is deleted but the store could not "
                            "forget its pending removal; the next start "
                            "finishes it"));
  lsmi_util_log("job", json_pack("{s:s, s:s, s:s}", "job", r->id, "tenant",
                                 r->tenant, "state", "deleted"));
  return lsmi_http_reply(r, 204, NULL, (char *)"", 0, true, NULL);
}

/*
 * DELETE /v1/jobs/{id}. A finished job is deleted with its results (204).
 * A queued or running job is cancelled: the cancel is recorded in the
 * store first, so that it survives a restart (202 means it will be
 * cancelled); then a running fit is told to stop within a batch, a queued
 * job leaves the queue and the store marks it cancelled, and a job the
 * store says runs but that runs nowhere here is marked cancelled at once.
 * A job that has ended but whose end the store has not taken yet (sched.h)
 * can be neither: 409 until the end is recorded.
 */
int lsmi_h_job_delete(lsmi_req_t *r) {
  lsmi_store_t *store = r->h->store;
  lsmi_sched_t *sched = r->h->sched;
  int state = -1;
  json_t *job = NULL;
  int st = lsmi_store_job_get(store, r->tenant, r->id, &job, &state);
  json_decref(job);
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL, "no job '%s'", r->id);
  if (st)
    return lsmi_http_store_failed(r, st);
  lsmi_sched_end_t end;
  if (lsmi_sched_ended(sched, r->id, &end) == LSMI_OK) {
    state = end.state;
    lsmi_sched_end_free(&end);
    return lsmi_error_set(&r->err, LSMI_ERR_CONFLICT, NULL,
                          "job '%s' has ended (%s) but the store has not "
                          "taken its end yet (it is retried every second); "
                          "delete it once it has",
                          r->id, lsmi_job_state_name(state));
  }
  if (state != LSMI_JOB_QUEUED && state != LSMI_JOB_RUNNING)
    return delete_finished(r);
  st = lsmi_store_job_request_cancel(store, r->id);
  if (st == LSMI_ERR_NOTFOUND) { /* it ended meanwhile */
    lsmi_store_job_state(store, r->id, &state);
    return finished_meanwhile(r, state);
  }
  if (st) {
    r->http = 503;
    return lsmi_error_set(&r->err, LSMI_ERR_BUSY, NULL,
                          "could not record the cancel (the store failed); "
                          "the job goes on: retry");
  }
  bool running = false;
  bool here = lsmi_sched_cancel(sched, r->id, &running) == LSMI_OK;
  if (!running) {
    /* Queued (or about to be, or running nowhere): the store decides who
     * wins the race with a start. */
    st = lsmi_store_job_cancel_queued(store, r->id, lsmi_util_now(),
                                      !here && state == LSMI_JOB_RUNNING);
    if (st == LSMI_OK)
      lsmi_util_log("job", json_pack("{s:s, s:s, s:s}", "job", r->id, "tenant",
                                     r->tenant, "state", "cancelled"));
    else if (st == LSMI_ERR_NOTFOUND) /* it started meanwhile: stop it */
      lsmi_sched_cancel(sched, r->id, &running);
    else
      return lsmi_http_store_failed(r, st);
  }
  return reply_job(r, r->id, false);
}
