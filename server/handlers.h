/*
 * handlers.h — what the transport (http.c) and the handlers of the
 * resources share (internal to server/): h_ops.c (/healthz, /readyz,
 * /metrics, the OpenAPI document), h_datasets.c, h_jobs.c, h_results.c.
 *
 * The transport owns a request from its first call to its completion: it
 * routes, authenticates, consumes the body and answers what goes wrong
 * before a handler runs. For each route and method, http.c's table names
 * up to three handler steps, all on the request's HTTP thread:
 *   begin  when the headers are in: may refuse at once (413, 415) or
 *          prepare for the body (an upload's temp file);
 *   chunk  per piece of body, instead of the transport's JSON buffer (the
 *          upload streams to disk): cannot answer, so it records trouble
 *          in the request for `end`;
 *   end    when the body is complete: answers.
 * A step returns 0 when it has answered (lsmi_http_reply*) or, for begin,
 * has nothing to say yet; or a negative status of lsmi.h's table, with
 * r->err saying why (lsmi_error_set(&r->err, ...)), and the transport
 * answers it as problem+json with the status's HTTP code from server/
 * codec.c (lsmi_codec_http_status), or 400 where the step said
 * lsmi_http_bad_request. A negative status after an answer was queued
 * means libmicrohttpd refused it: the transport drops the connection.
 *
 * Nothing here is shared between requests but the lsmi_http_t, read-only
 * once the daemon runs.
 */
#ifndef LSMI_HANDLERS_H
#define LSMI_HANDLERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conns.h"
#include "durable.h"
#include "http.h"
#include "lsmi.h"
#include "mhd.h"
#include "multipart.h"
#include "router.h"
#include "sched.h"
#include "sha256.h"
#include "store.h"

struct lsmi_http {
  const lsmi_mhd_t *mhd; /* libmicrohttpd's entry points (mhd.h) */
  const lsmi_config_t *cfg;
  lsmi_store_t *store;
  lsmi_sched_t *sched;
  struct MHD_Daemon *d;
  int port;
  struct MHD_Daemon *ops; /* the --ops-listen daemon, or NULL */
  int ops_port;
  lsmi_conns_t *conns; /* connection deadlines (NULL: none) */
  int conn_limit;      /* the API's connections at once */
};

/* A response header; arrays of them end with a NULL name. */
typedef struct lsmi_hdr {
  const char *name, *value;
} lsmi_hdr_t;

/* One request. http.c makes it on the first call and frees it when
 * libmicrohttpd reports the request complete. */
typedef struct lsmi_req {
  lsmi_http_t *h;
  struct MHD_Connection *c;
  double t0;
  lsmi_route_t route;
  char id[LSMI_ROUTER_ID_MAX]; /* the {id} of the path, if any */
  const char *tenant;          /* tenant_buf, or "default" without tokens */
  char tenant_buf[LSMI_TENANT_MAX + 1];
  char method[16];
  char path[256];
  char request_id[72]; /* X-Request-Id: the client's, or a new one */
  char forwarded[256]; /* X-Forwarded-For, kept with --trusted-proxy */
  int status;          /* the HTTP status answered; 0 until then */
  size_t resp_bytes;
  bool responded;    /* answered before the body's end: discard the rest */
  lsmi_conn_t *conn; /* its connection's deadlines (conns.h), or NULL */
  /* Answered on the socket mid-body (a body past its limit): the rest is
   * read and dropped for a moment, then the connection is closed. */
  bool early;
  double early_at;
  uint64_t early_bytes;
  lsmi_error_t err; /* why a step failed */
  int http;         /* its HTTP status when not the table's (400), or 0 */
  /* A JSON body (the transport's buffer). */
  char *body;
  size_t len, cap;
  bool too_big; /* the body ran past its limit */
  /* An upload: its temp file in tmp/ (common/durable.h). */
  lsmi_durable_t dur;
  lsmi_sha256_t sha;
  uint64_t bytes;
  int write_errno;
  /* A browser's multipart/form-data upload: the file part is what is kept
   * (file_bytes of it). */
  bool multipart;
  lsmi_multipart_t mp;
  uint64_t file_bytes;
} lsmi_req_t;

/* A begin or end step (see above). */
typedef int (*lsmi_step_fn)(lsmi_req_t *r);
/* A chunk step: n bytes of body. */
typedef void (*lsmi_chunk_fn)(lsmi_req_t *r, const char *data, size_t n);

/* ---- the transport's services to the handlers (http.c) ---- */

/*
 * Queues a response: body is taken (malloc'd, freed by libmicrohttpd)
 * unless `persistent`, when it must outlive the daemon. hdrs may be NULL.
 * 0, or LSMI_ERR_NOMEM / LSMI_ERR_IO when libmicrohttpd refuses it.
 */
int lsmi_http_reply(lsmi_req_t *r, int status, const char *ctype, char *body,
                    size_t len, bool persistent, const lsmi_hdr_t *hdrs);
/*
 * Queues a streamed 200-type answer of unknown length (chunked): reader
 * fills it, done(cls) runs when libmicrohttpd no longer needs cls (also
 * when the answer cannot be queued). 0, or LSMI_ERR_NOMEM / LSMI_ERR_IO.
 */
int lsmi_http_reply_stream(lsmi_req_t *r, int status, const char *ctype,
                           MHD_ContentReaderCallback reader, void *cls,
                           MHD_ContentReaderFreeCallback done,
                           const lsmi_hdr_t *hdrs);
/* The same with a JSON value (the reference is taken), as application/json,
 * or a 503 problem when it cannot be serialised. */
int lsmi_http_reply_json(lsmi_req_t *r, int status, json_t *v,
                         const lsmi_hdr_t *hdrs);
/* Answers 200 with a page of a list: {key: items (taken), total, offset,
 * limit}. */
int lsmi_http_reply_page(lsmi_req_t *r, const char *key, json_t *items,
                         int64_t total, uint64_t offset, uint64_t limit);
/* Records a 400 (a malformed query parameter or header) about `field` and
 * returns LSMI_ERR_INVALID. */
int lsmi_http_bad_request(lsmi_req_t *r, const char *field, const char *fmt,
                          ...) __attribute__((format(printf, 3, 4)));
/* Records a store failure (st: LSMI_ERR_IO, LSMI_ERR_NOSPACE, LSMI_ERR_NOMEM,
 * or the cluster store's LSMI_ERR_UNAVAILABLE: a 503 with Retry-After) and
 * returns st. */
int lsmi_http_store_failed(lsmi_req_t *r, int st);

/* A query parameter or a request header (NULL when absent); borrowed from
 * libmicrohttpd for the request's life. */
const char *lsmi_http_arg(const lsmi_req_t *r, const char *name);
const char *lsmi_http_header(const lsmi_req_t *r, const char *name);
/* Calls fn for each query parameter, in the request's order, until it
 * says MHD_NO. */
void lsmi_http_each_arg(const lsmi_req_t *r, MHD_KeyValueIterator fn,
                        void *ctx);
/* Content-Length as sent (0 when absent or not a number). */
uint64_t lsmi_http_content_length(const lsmi_req_t *r);
/* Whether a Content-Type header value names the media type `type`
 * ("application/json"): the type and subtype in any case, then nothing or
 * parameters (";charset=utf-8"); "application/jsonx" is not. */
bool lsmi_http_media_type_is(const char *value, const char *type);
/* `offset` (default 0) and `limit` (default 100, at most --page-limit) of
 * a list or page: 0, or a 400 (lsmi_http_bad_request). */
int lsmi_http_page_args(lsmi_req_t *r, uint64_t *offset, uint64_t *limit);

/* libmicrohttpd's access and completion callbacks (cls: the lsmi_http_t),
 * for lsmi_http_start and the tests, which drive requests through them. */
enum MHD_Result lsmi_http_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls);
void lsmi_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe);

/* ---- the handlers ---- */

/* h_ops.c: GET /healthz, /readyz, /metrics, /v1/openapi.yaml. */
int lsmi_h_healthz(lsmi_req_t *r);
int lsmi_h_readyz(lsmi_req_t *r);
int lsmi_h_metrics(lsmi_req_t *r);
int lsmi_h_openapi(lsmi_req_t *r);

/* h_datasets.c: POST (begin, chunk, end) and GET /v1/datasets, GET and
 * DELETE /v1/datasets/{id}. */
int lsmi_h_upload_begin(lsmi_req_t *r);
void lsmi_h_upload_chunk(lsmi_req_t *r, const char *data, size_t n);
int lsmi_h_upload_end(lsmi_req_t *r);
int lsmi_h_datasets_list(lsmi_req_t *r);
int lsmi_h_dataset_get(lsmi_req_t *r);
int lsmi_h_dataset_delete(lsmi_req_t *r);

/* h_jobs.c: POST (begin, end) and GET /v1/jobs, GET and DELETE
 * /v1/jobs/{id}. */
int lsmi_h_jobs_begin(lsmi_req_t *r);
int lsmi_h_jobs_post(lsmi_req_t *r);
int lsmi_h_jobs_list(lsmi_req_t *r);
int lsmi_h_job_get(lsmi_req_t *r);
int lsmi_h_job_delete(lsmi_req_t *r);
/* The tenant's job `id` as GET shows it (the store's object with the live
 * progress, its ETA and queue position) into *job (taken), and its state
 * (may be NULL): 0, LSMI_ERR_NOTFOUND, or the store's failure. Any HTTP
 * thread. */
int lsmi_h_job_view(lsmi_http_t *h, const char *tenant, const char *id,
                    json_t **job, int *state);

/* h_events.c: GET /v1/jobs/{id}/events (server-sent events); the job
 * answered with its ETag (304 on If-None-Match); and, before the daemon
 * stops, the end of every stream. */
int lsmi_h_job_events(lsmi_req_t *r);
int lsmi_http_reply_tagged(lsmi_req_t *r, json_t *v);
void lsmi_events_stop(lsmi_http_t *h);

/* h_results.c: GET /v1/jobs/{id}/results, /results/{split}/{index} and
 * /aggregates. */
int lsmi_h_results_get(lsmi_req_t *r);
int lsmi_h_sample_get(lsmi_req_t *r);
int lsmi_h_aggregates_get(lsmi_req_t *r);

/* h_ui.c: GET /v1/params (the parameter table and presets a job form is
 * made from), and the dashboard's static files (/ and /ui/{file}). */
int lsmi_h_params(lsmi_req_t *r);
int lsmi_h_ui(lsmi_req_t *r);

#endif
