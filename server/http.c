/*
 * http.c — the transport: libmicrohttpd's callbacks, routing to the
 * handlers of handlers.h, bearer auth, CORS, request ids, problem+json
 * answers, the JSON body buffer, and the request's log line and metrics.
 *
 * libmicrohttpd calls the access callback several times per request: once
 * when the headers are in (we route, authenticate, run the route's begin
 * step and may answer at once), once per chunk of body (buffered here for
 * JSON, or handed to the route's chunk step: an upload streams to its temp
 * file), and once more when the body is complete (the route's end step
 * answers). A response can be queued only on the first or the last call,
 * so trouble found mid-body (too large, disk full) is remembered in the
 * request and answered at the end. The request (lsmi_req_t) lives until
 * the completion callback logs it, counts it and frees it.
 *
 * libmicrohttpd is opened when the daemon starts (mhd.h); its entry points
 * sit in the lsmi_http_t, which every call here reaches.
 *
 * What one client may take, and what is kept for everyone:
 *  - connections: at most --max-connections at once, lowered to what the
 *    open-files limit allows (two descriptors each: the socket and an
 *    upload's temp file, after a reserve for the store, the loop and the
 *    threads), so that accept never fails for want of descriptors (which
 *    made libmicrohttpd busy-wait and flood the log); at most
 *    --max-connections-per-ip from one address;
 *  - time: a request's head within --header-timeout, its body at
 *    --min-body-rate (conns.h), besides libmicrohttpd's idle timeout;
 *  - a reserve: --ops-listen starts a second, small daemon that serves
 *    /healthz, /readyz and /metrics only, with connections of its own, so
 *    that probes and scrapes answer while the API's connections are all
 *    taken (a reserve inside one listener cannot tell a probe from an
 *    attacker before it has read its request line);
 *  - the log: libmicrohttpd's own messages at most a few a second.
 * A body that runs past its limit mid-stream is answered 413 on the socket
 * at once (libmicrohttpd 0.9.75 queues no response before the body's end),
 * read and dropped for a moment so that the client can see the answer,
 * then cut (early_reply).
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "codec.h"
#include "handlers.h"
#include "metrics.h"
#include "util.h"

/* After a 413 written mid-body, how long and how much of the rest is read
 * and dropped before the connection is cut: enough for the client to read
 * the answer before it would meet a reset. */
#define LINGER_SECONDS 1.0
#define LINGER_BYTES ((uint64_t)1 << 20)
/* libmicrohttpd's messages: a burst, then this many a second. */
#define LOG_BURST 20.0
#define LOG_RATE 5.0
/* Connections of the --ops-listen daemon. */
#define OPS_CONNECTIONS 16

static const char problem_type[] = "application/problem+json";

/* ---- the routes' handlers ---- */

typedef struct route_handler {
  lsmi_route_t route;
  const char *method;  /* HEAD is served as GET */
  lsmi_step_fn begin;  /* NULL: nothing to check before the body */
  lsmi_chunk_fn chunk; /* NULL: the body is buffered as JSON */
  lsmi_step_fn end;
} route_handler_t;

static const route_handler_t handlers[] = {
    {LSMI_ROUTE_HEALTHZ, "GET", NULL, NULL, lsmi_h_healthz},
    {LSMI_ROUTE_READYZ, "GET", NULL, NULL, lsmi_h_readyz},
    {LSMI_ROUTE_METRICS, "GET", NULL, NULL, lsmi_h_metrics},
    {LSMI_ROUTE_OPENAPI, "GET", NULL, NULL, lsmi_h_openapi},
    {LSMI_ROUTE_DATASETS, "POST", lsmi_h_upload_begin, lsmi_h_upload_chunk,
     lsmi_h_upload_end},
    {LSMI_ROUTE_DATASETS, "GET", NULL, NULL, lsmi_h_datasets_list},
    {LSMI_ROUTE_DATASET, "GET", NULL, NULL, lsmi_h_dataset_get},
    {LSMI_ROUTE_DATASET, "DELETE", NULL, NULL, lsmi_h_dataset_delete},
    {LSMI_ROUTE_JOBS, "POST", lsmi_h_jobs_begin, NULL, lsmi_h_jobs_post},
    {LSMI_ROUTE_JOBS, "GET", NULL, NULL, lsmi_h_jobs_list},
    {LSMI_ROUTE_JOB, "GET", NULL, NULL, lsmi_h_job_get},
    {LSMI_ROUTE_JOB, "DELETE", NULL, NULL, lsmi_h_job_delete},
    {LSMI_ROUTE_JOB_RESULTS, "GET", NULL, NULL, lsmi_h_results_get},
    {LSMI_ROUTE_JOB_SAMPLE, "GET", NULL, NULL, lsmi_h_sample_get},
    {LSMI_ROUTE_JOB_AGGREGATES, "GET", NULL, NULL, lsmi_h_aggregates_get},
    {LSMI_ROUTE_JOB_EVENTS, "GET", NULL, NULL, lsmi_h_job_events},
    {LSMI_ROUTE_PARAMS, "GET", NULL, NULL, lsmi_h_params},
    {LSMI_ROUTE_UI, "GET", NULL, NULL, lsmi_h_ui},
};

/* The handler of r's route and method; NULL for none (the router's table
 * allows exactly the pairs listed above). */
static const route_handler_t *handler_of(const lsmi_req_t *r) {
  const char *m = strcmp(r->method, "HEAD") ? r->method : "GET";
  for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
    if (handlers[i].route == r->route && !strcmp(handlers[i].method, m))
      return &handlers[i];
  return NULL;
}

/* ---- responses ---- */

static void add_cors(const lsmi_req_t *r, struct MHD_Response *resp) {
  const lsmi_mhd_t *mhd = r->h->mhd;
  const char *origin = lsmi_http_header(r, "Origin");
  if (origin && lsmi_config_origin_allowed(r->h->cfg, origin)) {
    mhd->add_response_header(resp, "Access-Control-Allow-Origin", origin);
    mhd->add_response_header(resp, "Vary", "Origin");
    mhd->add_response_header(resp, "Access-Control-Expose-Headers",
                             "Location, Retry-After, X-Total-Count, "
                             "Idempotent-Replayed, X-Request-Id, ETag, "
                             "Link, Content-Disposition");
  }
}

/* Adds the headers every answer has, queues resp and releases it. */
static int queue(lsmi_req_t *r, int status, const char *ctype,
                 struct MHD_Response *resp, size_t len,
                 const lsmi_hdr_t *hdrs) {
  const lsmi_mhd_t *mhd = r->h->mhd;
  if (ctype)
    mhd->add_response_header(resp, "Content-Type", ctype);
  mhd->add_response_header(resp, "Cache-Control", "no-store");
  if (r->request_id[0])
    mhd->add_response_header(resp, "X-Request-Id", r->request_id);
  for (const lsmi_hdr_t *x = hdrs; x && x->name; x++)
    mhd->add_response_header(resp, x->name, x->value);
  add_cors(r, resp);
  enum MHD_Result ok = mhd->queue_response(r->c, (unsigned)status, resp);
  mhd->destroy_response(resp);
  r->status = status;
  r->resp_bytes = len;
  r->responded = true;
  lsmi_conns_received(r->conn);
  return ok == MHD_YES ? LSMI_OK : LSMI_ERR_IO;
}

int lsmi_http_reply(lsmi_req_t *r, int status, const char *ctype, char *body,
                    size_t len, bool persistent, const lsmi_hdr_t *hdrs) {
  struct MHD_Response *resp = r->h->mhd->create_response_from_buffer(
      len, body, persistent ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    if (!persistent)
      free(body);
    return LSMI_ERR_NOMEM;
  }
  return queue(r, status, ctype, resp, len, hdrs);
}

int lsmi_http_reply_stream(lsmi_req_t *r, int status, const char *ctype,
                           MHD_ContentReaderCallback reader, void *cls,
                           MHD_ContentReaderFreeCallback done,
                           const lsmi_hdr_t *hdrs) {
  struct MHD_Response *resp = r->h->mhd->create_response_from_callback(
      MHD_SIZE_UNKNOWN, 64 * 1024, reader, cls, done);
  if (resp == NULL) {
    done(cls);
    return LSMI_ERR_NOMEM;
  }
  return queue(r, status, ctype, resp, 0, hdrs);
}

/* Sends v (taken) as ctype. */
static int reply_typed(lsmi_req_t *r, int status, json_t *v, const char *ctype,
                       const lsmi_hdr_t *hdrs) {
  char *text = lsmi_util_json_text(v);
  if (text == NULL) {
    static char oom[] = "{\"type\":\"about:blank\",\"title\":\"Service "
                        "Unavailable\",\"status\":503,\"detail\":\"out of "
                        "memory\"}";
    return lsmi_http_reply(r, 503, problem_type, oom, sizeof oom - 1, true,
                           NULL);
  }
  return lsmi_http_reply(r, status, ctype, text, strlen(text), false, hdrs);
}

int lsmi_http_reply_json(lsmi_req_t *r, int status, json_t *v,
                         const lsmi_hdr_t *hdrs) {
  return reply_typed(r, status, v, "application/json", hdrs);
}

/* A problem+json answer (RFC 9457) with the request's path as instance. */
static int problem(lsmi_req_t *r, int status, const char *field,
                   const lsmi_hdr_t *hdrs, const char *detail) {
  if (detail != r->err.message) /* what the request's log line says */
    snprintf(r->err.message, sizeof r->err.message, "%s", detail);
  json_t *p = lsmi_codec_problem(status, NULL, detail, field);
  if (p && r->path[0])
    json_object_set_new(p, "instance", json_string(r->path));
  return reply_typed(r, status, p, problem_type, hdrs);
}

/* Answers the status a step failed with: the HTTP status of the table (or
 * the step's own 400), r->err's message and field; a full queue
 * (LSMI_ERR_BUSY) or a database out of reach (LSMI_ERR_UNAVAILABLE, the
 * cluster mode's) says when to come back. */
static int answer_failure(lsmi_req_t *r, int st) {
  int http = r->http ? r->http : lsmi_codec_http_status(st);
  /* The whole story, for the log (a full disk or quota is the request's
   * own line's). */
  if (http >= 500 && http != 507 && r->err.message[0])
    lsmi_util_log("error",
                  json_pack("{s:s, s:i, s:s}", "request_id", r->request_id,
                            "status", http, "detail", r->err.message));
  /* Never a server path to the client. */
  lsmi_util_scrub_paths(r->err.message, sizeof r->err.message,
                        r->h->cfg->data_dir);
  const char *detail =
      r->err.message[0] ? r->err.message : lsmi_status_message(st);
  char retry[16];
  snprintf(retry, sizeof retry, "%d", r->h->cfg->retry_after);
  bool later = st == LSMI_ERR_BUSY || st == LSMI_ERR_UNAVAILABLE;
  lsmi_hdr_t hdrs[] = {{later ? "Retry-After" : NULL, retry}, {NULL, NULL}};
  return problem(r, http, r->err.field, hdrs, detail);
}

int lsmi_http_bad_request(lsmi_req_t *r, const char *field, const char *fmt,
                          ...) {
  r->http = 400;
  r->err.status = LSMI_ERR_INVALID;
  snprintf(r->err.field, sizeof r->err.field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err.message, sizeof r->err.message, fmt, ap);
  va_end(ap);
  return LSMI_ERR_INVALID;
}

int lsmi_http_store_failed(lsmi_req_t *r, int st) {
  return lsmi_error_set(&r->err, st, NULL, "%s",
                        st == LSMI_ERR_NOMEM ? "out of memory"
                        : st == LSMI_ERR_NOSPACE
                            ? "the disk of the data directory is full"
                        : st == LSMI_ERR_UNAVAILABLE ? lsmi_status_message(st)
                                                     : "the store failed");
}

int lsmi_http_reply_page(lsmi_req_t *r, const char *key, json_t *items,
                         int64_t total, uint64_t offset, uint64_t limit) {
  return lsmi_http_reply_json(
      r, 200,
      json_pack("{s:o, s:I, s:I, s:I}", key, items, "total", (json_int_t)total,
                "offset", (json_int_t)offset, "limit", (json_int_t)limit),
      NULL);
}

/* ---- what the request says ---- */

const char *lsmi_http_arg(const lsmi_req_t *r, const char *name) {
  return r->h->mhd->lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

void lsmi_http_each_arg(const lsmi_req_t *r, MHD_KeyValueIterator fn,
                        void *ctx) {
  r->h->mhd->get_connection_values(r->c, MHD_GET_ARGUMENT_KIND, fn, ctx);
}

const char *lsmi_http_header(const lsmi_req_t *r, const char *name) {
  return r->h->mhd->lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

uint64_t lsmi_http_content_length(const lsmi_req_t *r) {
  const char *cl = lsmi_http_header(r, "Content-Length");
  uint64_t v = 0;
  for (const char *p = cl; p && *p; p++) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
      return 0;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  return v;
}

bool lsmi_http_media_type_is(const char *value, const char *type) {
  if (value == NULL)
    return false;
  while (*value == ' ' || *value == '\t')
    value++;
  size_t n = strlen(type);
  if (strncasecmp(value, type, n) != 0)
    return false;
  value += n;
  while (*value == ' ' || *value == '\t')
    value++;
  return *value == '\0' || *value == ';';
}

/* An optional whole number >= 0 of the query: 0 or LSMI_ERR_INVALID. */
static int arg_u64(const lsmi_req_t *r, const char *name, uint64_t def,
                   uint64_t *out) {
  const char *v = lsmi_http_arg(r, name);
  *out = def;
  if (v == NULL || *v == '\0')
    return LSMI_OK;
  uint64_t x = 0;
  for (const char *p = v; *p; p++) {
    if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
      return LSMI_ERR_INVALID;
    x = x * 10 + (uint64_t)(*p - '0');
  }
  *out = x;
  return LSMI_OK;
}

int lsmi_http_page_args(lsmi_req_t *r, uint64_t *offset, uint64_t *limit) {
  uint64_t max = r->h->cfg->page_limit;
  if (arg_u64(r, "offset", 0, offset) || *offset > INT64_MAX)
    return lsmi_http_bad_request(r, "offset",
                                 "offset must be a whole number >= 0");
  if (arg_u64(r, "limit", 100, limit) || *limit < 1 || *limit > max)
    return lsmi_http_bad_request(r, "limit",
                                 "limit must be a whole number in [1, %llu]",
                                 (unsigned long long)max);
  return LSMI_OK;
}

/* ---- the first call: route, authenticate, begin ---- */

/* OPTIONS (a CORS preflight): the methods of the route. */
static int preflight(lsmi_req_t *r) {
  if (r->route == LSMI_ROUTE_NONE)
    return lsmi_error_set(&r->err, LSMI_ERR_NOTFOUND, NULL, "no such resource");
  char allow[64];
  snprintf(allow, sizeof allow, "%s, OPTIONS", lsmi_router_allow(r->route));
  lsmi_hdr_t hd[] = {{"Allow", allow},
                     {"Access-Control-Allow-Methods", allow},
                     {"Access-Control-Allow-Headers",
                      "Authorization, Content-Type, Idempotency-Key, "
                      "X-Request-Id, If-None-Match, Last-Event-ID"},
                     {"Access-Control-Max-Age", "600"},
                     {NULL, NULL}};
  return lsmi_http_reply(r, 204, NULL, (char *)"", 0, true, hd);
}

/* The tenant of the bearer token: 0, or a 401 answered. */
static int authenticate(lsmi_req_t *r) {
  const lsmi_config_t *cfg = r->h->cfg;
  if (!lsmi_router_needs_auth(r->route))
    return LSMI_OK;
  if (lsmi_config_n_tokens(cfg) == 0) {
    r->tenant = "default";
    return LSMI_OK;
  }
  const char *a = lsmi_http_header(r, "Authorization");
  if (a && strncasecmp(a, "Bearer ", 7) == 0) {
    for (a += 7; *a == ' ';)
      a++;
    if (lsmi_tokens_tenant(cfg->tokens, a, r->tenant_buf, sizeof r->tenant_buf))
      r->tenant = r->tenant_buf;
  }
  if (r->tenant)
    return LSMI_OK;
  lsmi_hdr_t hd[] = {{"WWW-Authenticate", "Bearer realm=\"lsmi\""},
                     {NULL, NULL}};
  return problem(r, 401, "Authorization", hd,
                 "a valid bearer token is required "
                 "(Authorization: Bearer TOKEN)");
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

/* The first query parameter the route does not take, into unknown. */
typedef struct query_check {
  const lsmi_req_t *r;
  char unknown[64];
} query_check_t;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value) {
  query_check_t *q = cls;
  (void)kind;
  (void)value;
  if (lsmi_router_query_known(q->r->route, q->r->method, key))
    return MHD_YES;
  printable(q->unknown, sizeof q->unknown, key);
  return MHD_NO;
}

/* 0, or a 400 naming a query parameter the route does not take. */
static int check_query(lsmi_req_t *r) {
  query_check_t q = {r, ""};
  lsmi_http_each_arg(r, check_arg, &q);
  if (q.unknown[0] == '\0')
    return LSMI_OK;
  return lsmi_http_bad_request(
      r, q.unknown, "unknown query parameter '%s' for %s %s", q.unknown,
      r->method, lsmi_router_name(r->route));
}

/* Headers are in: route, authenticate, and answer early what we can. */
static int first_call(lsmi_req_t *r) {
  if (!strcmp(r->method, "OPTIONS"))
    return preflight(r);
  if (r->route == LSMI_ROUTE_NONE)
    return lsmi_error_set(&r->err, LSMI_ERR_NOTFOUND, NULL,
                          "no such resource: %s", r->path);
  if (!lsmi_router_allows(r->route, r->method)) {
    lsmi_hdr_t hd[] = {{"Allow", lsmi_router_allow(r->route)}, {NULL, NULL}};
    char detail[128];
    snprintf(detail, sizeof detail, "%s is not allowed here; allowed: %s",
             r->method, lsmi_router_allow(r->route));
    return problem(r, 405, NULL, hd, detail);
  }
  int st = authenticate(r);
  if (st == LSMI_OK && !r->responded)
    st = check_query(r);
  if (st || r->responded)
    return st;
  if (lsmi_sched_draining(r->h->sched) && strcmp(r->method, "GET"))
    return lsmi_error_set(&r->err, LSMI_ERR_SHUTDOWN, NULL,
                          "the daemon is shutting down");
  const route_handler_t *rh = handler_of(r);
  return rh && rh->begin ? rh->begin(r) : LSMI_OK;
}

/* ---- the body and the last call ---- */

/* Appends a piece of JSON body, up to --max-body. */
static void buffer_body(lsmi_req_t *r, const char *data, size_t n) {
  if (r->too_big)
    return;
  if (r->len + n > r->h->cfg->max_body) {
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

/*
 * Answers a body past its limit while it still comes: the problem is
 * written to the socket as a whole response with "Connection: close", the
 * socket's sending side is shut, and the access callback reads and drops
 * the rest for LINGER_SECONDS or LINGER_BYTES, then cuts the connection.
 * libmicrohttpd sends nothing on this connection any more (no response is
 * ever queued for it).
 */
static void early_reply(lsmi_req_t *r, const char *detail) {
  snprintf(r->err.message, sizeof r->err.message, "%s", detail);
  const union MHD_ConnectionInfo *ci =
      r->h->mhd->get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
  json_t *p = lsmi_codec_problem(413, NULL, detail, "body");
  if (p && r->path[0])
    json_object_set_new(p, "instance", json_string(r->path));
  char *body = lsmi_util_json_text(p);
  char head[512];
  size_t blen = body ? strlen(body) : 0;
  int hlen = snprintf(head, sizeof head,
                      "HTTP/1.1 413 Content Too Large\r\n"
                      "Content-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nX-Request-Id: %s\r\n"
                      "Connection: close\r\n\r\n",
                      problem_type, blen, r->request_id);
  if (ci && hlen > 0 && (size_t)hlen < sizeof head) {
    int fd = ci->connect_fd;
    ssize_t w = send(fd, head, (size_t)hlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w == hlen && body)
      w = send(fd, body, blen, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
  }
  free(body);
  r->status = 413;
  r->resp_bytes = blen;
  r->responded = true;
  r->early = true;
  r->early_at = lsmi_util_mono();
  lsmi_conns_received(r->conn);
}

/* A piece of body: the route's chunk step, or the JSON buffer; a body that
 * runs past its limit is answered 413 at once. MHD_NO cuts the connection
 * once an early answer has had its moment. */
static enum MHD_Result body_piece(lsmi_req_t *r, const char *data, size_t n) {
  const lsmi_config_t *cfg = r->h->cfg;
  lsmi_conns_body(r->conn, n);
  if (r->early) {
    r->early_bytes += n;
    return r->early_bytes > LINGER_BYTES ||
                   lsmi_util_mono() - r->early_at > LINGER_SECONDS
               ? MHD_NO
               : MHD_YES;
  }
  const route_handler_t *rh = handler_of(r);
  if (!r->responded && rh && rh->chunk)
    rh->chunk(r, data, n);
  else if (!r->responded)
    buffer_body(r, data, n);
  if (r->too_big && !r->responded) {
    char detail[160];
    if (rh && rh->chunk)
      snprintf(detail, sizeof detail,
               "the upload exceeds --max-upload (%llu bytes)",
               (unsigned long long)cfg->max_upload);
    else
      snprintf(detail, sizeof detail,
               "the request body exceeds --max-body (%llu bytes)",
               (unsigned long long)cfg->max_body);
    early_reply(r, detail);
  }
  return MHD_YES;
}

static int last_call(lsmi_req_t *r) {
  const route_handler_t *rh = handler_of(r);
  if (rh == NULL)
    return lsmi_error_set(&r->err, LSMI_ERR_NOTFOUND, NULL, "no such resource");
  return rh->end(r);
}

/* What libmicrohttpd is told after a step returned st. */
static enum MHD_Result result(lsmi_req_t *r, int st) {
  if (st && !r->responded)
    st = answer_failure(r, st);
  return st == LSMI_OK ? MHD_YES : MHD_NO;
}

static lsmi_req_t *req_new(lsmi_http_t *h, struct MHD_Connection *c,
                           const char *url, const char *method) {
  lsmi_req_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->h = h;
  r->c = c;
  const union MHD_ConnectionInfo *ci =
      h->mhd->get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  r->conn = ci ? ci->socket_context : NULL;
  lsmi_conns_head(r->conn);
  r->dur = (lsmi_durable_t)LSMI_DURABLE_INIT;
  r->t0 = lsmi_util_mono();
  printable(r->method, sizeof r->method, method);
  printable(r->path, sizeof r->path, url);
  r->route = lsmi_router_match(url, r->id);
  const char *fwd = lsmi_http_header(r, "X-Forwarded-For");
  if (fwd && h->cfg->trusted_proxy && h->cfg->trusted_proxy[0])
    printable(r->forwarded, sizeof r->forwarded, fwd);
  const char *rid = lsmi_http_header(r, "X-Request-Id");
  if (rid && *rid && strlen(rid) < 64)
    printable(r->request_id, sizeof r->request_id, rid);
  else
    lsmi_util_random_id("req_", r->request_id, sizeof r->request_id);
  return r;
}

/* The access callback of both daemons; `ops`: the --ops-listen one, which
 * serves the operations routes only. */
static enum MHD_Result access_of(lsmi_http_t *h, bool ops,
                                 struct MHD_Connection *c, const char *url,
                                 const char *method, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
  lsmi_req_t *r = *con_cls;
  if (r == NULL) {
    if ((r = req_new(h, c, url, method)) == NULL)
      return MHD_NO;
    *con_cls = r;
    if (ops && r->route != LSMI_ROUTE_HEALTHZ &&
        r->route != LSMI_ROUTE_READYZ && r->route != LSMI_ROUTE_METRICS)
      return result(r, lsmi_error_set(&r->err, LSMI_ERR_NOTFOUND, NULL,
                                      "this listener serves /healthz, "
                                      "/readyz and /metrics only"));
    return result(r, first_call(r));
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    return body_piece(r, upload_data, n);
  }
  if (r->early) /* the body ended within the linger: cut now */
    return MHD_NO;
  lsmi_conns_received(r->conn); /* no deadline while it is worked on */
  return r->responded ? MHD_YES : result(r, last_call(r));
}

enum MHD_Result lsmi_http_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
  (void)version;
  return access_of(cls, false, c, url, method, upload_data, upload_data_size,
                   con_cls);
}

static enum MHD_Result access_ops(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  (void)version;
  return access_of(cls, true, c, url, method, upload_data, upload_data_size,
                   con_cls);
}

/* ---- completion: log, count, release ---- */

/* The client's address as text ("" when unknown). */
static void peer_of(const lsmi_req_t *r, char *peer, size_t size) {
  const union MHD_ConnectionInfo *ci =
      r->h->mhd->get_connection_info(r->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  peer[0] = '\0';
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  if (sa && sa->sa_family == AF_INET)
    inet_ntop(AF_INET,
              &((const struct sockaddr_in *)(const void *)sa)->sin_addr, peer,
              (socklen_t)size);
  else if (sa && sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6,
              &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, peer,
              (socklen_t)size);
}

/* Whether addr is one of the comma list `list` (--trusted-proxy). */
static bool listed(const char *list, const char *addr) {
  size_t n = strlen(addr);
  for (const char *p = list; p && *p;) {
    while (*p == ',' || *p == ' ')
      p++;
    const char *s = p;
    while (*p && *p != ',' && *p != ' ')
      p++;
    if ((size_t)(p - s) == n && n && !strncmp(s, addr, n))
      return true;
  }
  return false;
}

/* The client a trusted proxy names: the last address of X-Forwarded-For
 * (the one the proxy added; those before it came from the client) into
 * peer, when it is an IP address. */
static void forwarded_for(const lsmi_req_t *r, char *peer, size_t size) {
  const char *last = strrchr(r->forwarded, ',');
  last = last ? last + 1 : r->forwarded;
  while (*last == ' ')
    last++;
  char addr[INET6_ADDRSTRLEN];
  unsigned char bin[sizeof(struct in6_addr)];
  size_t n = strcspn(last, " ");
  if (n == 0 || n >= sizeof addr)
    return;
  memcpy(addr, last, n);
  addr[n] = '\0';
  if (inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1)
    snprintf(peer, size, "%s", addr);
}

/* The request's line of the log: its level by status, its problem's detail
 * when it failed, and its peer (the client a --trusted-proxy names, with
 * the proxy beside it). */
static void log_request(const lsmi_req_t *r, int status, double secs,
                        enum MHD_RequestTerminationCode toe) {
  char peer[INET6_ADDRSTRLEN], proxy[INET6_ADDRSTRLEN] = "";
  peer_of(r, peer, sizeof peer);
  const char *trusted = r->h->cfg->trusted_proxy;
  if (trusted && trusted[0] && r->forwarded[0] && listed(trusted, peer)) {
    memcpy(proxy, peer, sizeof proxy);
    forwarded_for(r, peer, sizeof peer);
  }
  const char *level = status >= 500 && status != 507 ? "error"
                      : status >= 400                ? "warn"
                                                     : "info";
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:I, s:s, s:s}", "level", level,
      "request_id", r->request_id, "method", r->method, "path", r->path,
      "route", lsmi_router_name(r->route), "status", status, "ms",
      round(secs * 1e6) / 1e3, "bytes", (json_int_t)r->resp_bytes, "tenant",
      r->tenant ? r->tenant : "", "peer", peer);
  if (o && proxy[0] && strcmp(proxy, peer))
    json_object_set_new(o, "proxy", json_string(proxy));
  if (o && status >= 400 && r->err.message[0])
    json_object_set_new(o, "detail", json_string(r->err.message));
  if (o && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
    json_object_set_new(o, "terminated", json_integer((json_int_t)toe));
  if (o && r->bytes)
    json_object_set_new(o, "upload_bytes", json_integer((json_int_t)r->bytes));
  lsmi_util_log("request", o);
}

void lsmi_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)c;
  lsmi_req_t *r = *con_cls;
  if (r == NULL)
    return;
  double secs = lsmi_util_mono() - r->t0;
  int status = r->status ? r->status : 499; /* client went away */
  lsmi_metrics_request(r->route, r->method, status, secs);
  if (!lsmi_util_log_requests_quiet() || status >= 500)
    log_request(r, status, secs, toe);
  lsmi_durable_abort(&r->dur); /* an upload not committed */
  lsmi_conns_done(r->conn);
  free(r->body);
  free(r);
  *con_cls = NULL;
}

/* libmicrohttpd's connection start and end: the deadlines' entries. */
static void notify_connection(void *cls, struct MHD_Connection *c,
                              void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
  lsmi_http_t *h = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        h->mhd->get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = ci ? lsmi_conns_open(h->conns, ci->connect_fd) : NULL;
  } else {
    lsmi_conns_close(*socket_context);
    *socket_context = NULL;
  }
}

/* ---- the daemon ---- */

/* The token bucket of libmicrohttpd's messages (one HTTP server per
 * process), under its own leaf lock. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static double log_tokens = LOG_BURST, log_last;
static uint64_t log_dropped;

/* libmicrohttpd's messages into the JSON log, LOG_BURST at once and
 * LOG_RATE a second at most: at a connection limit it says something about
 * every connection it turns away. A line that passes after some were
 * dropped says how many. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  double now = lsmi_util_mono();
  uint64_t dropped = 0;
  bool pass;
  pthread_mutex_lock(&log_mu);
  log_tokens += (now - log_last) * LOG_RATE;
  if (log_tokens > LOG_BURST)
    log_tokens = LOG_BURST;
  log_last = now;
  pass = log_tokens >= 1.0;
  if (pass) {
    log_tokens -= 1.0;
    dropped = log_dropped;
    log_dropped = 0;
  } else {
    log_dropped++;
  }
  pthread_mutex_unlock(&log_mu);
  if (!pass)
    return;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  json_t *o = json_pack("{s:s}", "detail", msg);
  if (o && dropped)
    json_object_set_new(o, "suppressed", json_integer((json_int_t)dropped));
  lsmi_util_log("http_error", o);
}

/* The socket address of a host and port, and the daemon's flags for it: 0,
 * or LSMI_ERR_INVALID when the host is no IP address. */
static int bind_address(const char *flag, const char *host_, int port,
                        struct sockaddr_storage *ss, unsigned *flags,
                        lsmi_error_t *err) {
  memset(ss, 0, sizeof *ss);
  const char *host = strcmp(host_, "localhost") ? host_ : "127.0.0.1";
  bool v6 = strchr(host, ':') != NULL;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)ss;
  struct sockaddr_in *a4 = (struct sockaddr_in *)(void *)ss;
  /* poll(2): no select() limit on descriptors, and level-triggered.
   * libmicrohttpd 0.9.75's epoll loses the end of a connection whose
   * partial request and FIN were both waiting when it was accepted (a
   * short read clears its "readable" and no edge follows): at the
   * connection limit such connections, queued while the limit held,
   * stayed open until the idle timeout and kept the limit reached. */
  *flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
  /* Server-sent events park their connection between updates. */
  *flags |= MHD_ALLOW_SUSPEND_RESUME;
  if (v6) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *flags |= MHD_USE_IPv6;
  } else {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
  }
  void *addr = v6 ? (void *)&a6->sin6_addr : (void *)&a4->sin_addr;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, flag,
                          "--%s: '%s' is not an %s address", flag, host,
                          v6 ? "IPv6" : "IPv4");
  return LSMI_OK;
}

/*
 * The API's connections at once: --max-connections, lowered so that every
 * connection can have its socket and an upload's temp file open within the
 * open-files limit, after a reserve for the rest of the daemon (standard
 * streams, the lock, the store's three files, the loop's handles, two per
 * HTTP thread and per worker, the ops daemon). The soft limit is raised to
 * the hard one first. 0, or LSMI_ERR_LIMIT when not even one connection
 * per HTTP thread fits.
 */
static int connection_limit(const lsmi_config_t *cfg, int *limit,
                            lsmi_error_t *err) {
  struct rlimit rl;
  long files = 1L << 20;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      struct rlimit up = {rl.rlim_max, rl.rlim_max};
      if (setrlimit(RLIMIT_NOFILE, &up) == 0)
        rl.rlim_cur = rl.rlim_max;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)files)
      files = (long)rl.rlim_cur;
  }
  bool ops = cfg->ops_host[0] != '\0';
  long reserve = 16 + 2L * cfg->http_threads + 2L * cfg->workers +
                 (ops ? 4 + OPS_CONNECTIONS : 0);
  long fit = (files - reserve) / 2;
  *limit = fit < cfg->max_connections ? (int)fit : cfg->max_connections;
  if (*limit >= cfg->http_threads)
    return LSMI_OK;
  return lsmi_error_set(err, LSMI_ERR_LIMIT, "max-connections",
                        "the open-files limit (ulimit -n) is %ld: too few for "
                        "%d HTTP threads with a connection each; raise it to "
                        "at least %ld",
                        files, cfg->http_threads,
                        reserve + 2L * cfg->http_threads);
}

/* The --ops-listen daemon: one thread, a few connections, the operations
 * routes. */
static int start_ops(lsmi_http_t *h, lsmi_error_t *err) {
  const lsmi_config_t *cfg = h->cfg;
  struct sockaddr_storage ss;
  unsigned flags = 0;
  int st = bind_address("ops-listen", cfg->ops_host, cfg->ops_port, &ss, &flags,
                        err);
  if (st)
    return st;
  h->ops = h->mhd->start_daemon(
      flags, 0, NULL, NULL, access_ops, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
      h, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)OPS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)cfg->header_timeout, MHD_OPTION_NOTIFY_CONNECTION,
      notify_connection, h, MHD_OPTION_NOTIFY_COMPLETED, lsmi_http_completed, h,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
  if (h->ops == NULL)
    return lsmi_error_set(err, LSMI_ERR_IO, "ops-listen",
                          "cannot listen on %s (address in use or not "
                          "permitted?)",
                          cfg->ops_listen);
  const union MHD_DaemonInfo *di =
      h->mhd->get_daemon_info(h->ops, MHD_DAEMON_INFO_BIND_PORT);
  h->ops_port = di ? (int)di->port : cfg->ops_port;
  return LSMI_OK;
}

int lsmi_http_start(const lsmi_config_t *cfg, lsmi_store_t *store,
                    lsmi_sched_t *sched, lsmi_http_t **out, lsmi_error_t *err) {
  *out = NULL;
  struct sockaddr_storage ss;
  unsigned flags = 0;
  int limit = 0;
  int st = bind_address("listen", cfg->host, cfg->port, &ss, &flags, err);
  if (st == LSMI_OK)
    st = connection_limit(cfg, &limit, err);
  if (st)
    return st;
  const lsmi_mhd_t *mhd = lsmi_mhd();
  if (mhd == NULL)
    return lsmi_error_set(err, LSMI_ERR_IO, "", "cannot load libmicrohttpd: %s",
                          lsmi_mhd_error());
  lsmi_http_t *h = calloc(1, sizeof *h);
  if (h == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  *h = (lsmi_http_t){.mhd = mhd,
                     .cfg = cfg,
                     .store = store,
                     .sched = sched,
                     .port = cfg->port};
  h->conn_limit = limit;
  st = lsmi_conns_create(cfg->header_timeout, cfg->min_body_rate, &h->conns);
  if (st) {
    free(h);
    return lsmi_error_set(err, st, "", "cannot start the connection reaper");
  }
  h->d = mhd->start_daemon(
      flags, 0, NULL, NULL, lsmi_http_access, h,
      /* First, so that libmicrohttpd's own messages about the options that
       * follow go to our JSON log too. */
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_SOCK_ADDR, &ss,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)limit,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
      MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h,
      MHD_OPTION_NOTIFY_COMPLETED, lsmi_http_completed, h,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
  if (h->d == NULL) {
    lsmi_http_stop(h);
    return lsmi_error_set(err, LSMI_ERR_IO, "listen",
                          "cannot listen on %s (address in use or not "
                          "permitted?)",
                          cfg->listen);
  }
  const union MHD_DaemonInfo *di =
      mhd->get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  if (di)
    h->port = (int)di->port;
  if (cfg->ops_host[0] && (st = start_ops(h, err)) != LSMI_OK) {
    lsmi_http_stop(h);
    return st;
  }
  *out = h;
  return LSMI_OK;
}

int lsmi_http_ops_port(const lsmi_http_t *h) {
  return h->ops ? h->ops_port : 0;
}

int lsmi_http_connection_limit(const lsmi_http_t *h) { return h->conn_limit; }

int lsmi_http_port(const lsmi_http_t *h) { return h->port; }

void lsmi_http_stop(lsmi_http_t *h) {
  if (h == NULL)
    return;
  lsmi_events_stop(h); /* no stream may stay suspended */
  if (h->ops)
    h->mhd->stop_daemon(h->ops);
  if (h->d)
    h->mhd->stop_daemon(h->d);
  lsmi_conns_destroy(h->conns); /* after the daemons: no connection left */
  free(h);
}
