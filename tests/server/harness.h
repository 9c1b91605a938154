/*
 * harness.h — drives requests through the daemon's transport and handlers
 * (server/http.c, server/h_*.c) without a socket, for the tests of those
 * files (include after <cmocka.h>).
 *
 * A fake libmicrohttpd (the lsmi_mhd_t table the daemon calls through)
 * serves the request's headers and query from a fake_conn_t and records the
 * response queued on it. The fixture is a real data directory, store and
 * scheduler (started) in a temp directory; the scheduler's loop runs only
 * when a test runs it (RUN_UNTIL of helpers.h), so submitted jobs
 * otherwise stay queued.
 *
 * A request goes through lsmi_http_access as libmicrohttpd calls it: the
 * first call, the body in 4 KiB chunks, the last call, then
 * lsmi_http_completed.
 */
#ifndef LSMI_TESTS_SERVER_HARNESS_H
#define LSMI_TESTS_SERVER_HARNESS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handlers.h"
#include "helpers.h"
#include "lsmi_io.h"
#include "util.h"

enum { FAKE_MAX = 16 };

typedef struct fake_resp {
  char *body; /* a copy, NUL-terminated */
  size_t len;
  int n;
  char names[FAKE_MAX][64], values[FAKE_MAX][256];
} fake_resp_t;

typedef struct fake_conn {
  const char *headers[FAKE_MAX][2], *args[FAKE_MAX][2];
  int n_headers, n_args;
  bool refuse;     /* queue_response says MHD_NO */
  unsigned status; /* 0 until a response is queued */
  fake_resp_t resp;
  int sock[2]; /* the "socket": [0] the server's, [1] the client's */
} fake_conn_t;

static inline const char *fake_lookup(struct MHD_Connection *c,
                                      enum MHD_ValueKind kind,
                                      const char *key) {
  fake_conn_t *fc = (fake_conn_t *)(void *)c;
  bool hdr = kind == MHD_HEADER_KIND;
  int n = hdr ? fc->n_headers : fc->n_args;
  for (int i = 0; i < n; i++) {
    const char *const *kv = hdr ? fc->headers[i] : fc->args[i];
    if (hdr ? !strcasecmp(kv[0], key) : !strcmp(kv[0], key))
      return kv[1];
  }
  return NULL;
}

static inline struct MHD_Response *
fake_create(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode) {
  fake_resp_t *r = calloc(1, sizeof *r);
  r->body = malloc(size + 1);
  memcpy(r->body, buffer, size);
  r->body[size] = '\0';
  r->len = size;
  if (mode == MHD_RESPMEM_MUST_FREE)
    free(buffer);
  return (struct MHD_Response *)(void *)r;
}

static inline enum MHD_Result fake_add_header(struct MHD_Response *resp,
                                              const char *name,
                                              const char *value) {
  fake_resp_t *r = (fake_resp_t *)(void *)resp;
  assert_true(r->n < FAKE_MAX);
  snprintf(r->names[r->n], sizeof r->names[0], "%s", name);
  snprintf(r->values[r->n], sizeof r->values[0], "%s", value);
  r->n++;
  return MHD_YES;
}

static inline enum MHD_Result fake_queue(struct MHD_Connection *c,
                                         unsigned int status,
                                         struct MHD_Response *resp) {
  fake_conn_t *fc = (fake_conn_t *)(void *)c;
  fake_resp_t *r = (fake_resp_t *)(void *)resp;
  if (fc->refuse)
    return MHD_NO;
  assert_int_equal(fc->status, 0); /* one response per request */
  fc->status = status;
  fc->resp = *r;
  r->body = NULL; /* the connection keeps it */
  return MHD_YES;
}

static inline void fake_destroy(struct MHD_Response *resp) {
  fake_resp_t *r = (fake_resp_t *)(void *)resp;
  free(r->body);
  free(r);
}

static inline const union MHD_ConnectionInfo *
fake_info(struct MHD_Connection *c, enum MHD_ConnectionInfoType type, ...) {
  static __thread union MHD_ConnectionInfo info;
  fake_conn_t *fc = (fake_conn_t *)(void *)c;
  if (type != MHD_CONNECTION_INFO_CONNECTION_FD)
    return NULL; /* no peer address (logged as ""), no socket context */
  info.connect_fd = fc->sock[0];
  return &info;
}

/* What the server wrote on the socket itself (an answer mid-body): its
 * status line and headers into the fake response, as if queued. */
static inline void fake_read_socket(fake_conn_t *fc) {
  static char buf[8192];
  ssize_t n = recv(fc->sock[1], buf, sizeof buf - 1, MSG_DONTWAIT);
  if (n <= 0)
    return;
  buf[n] = '\0';
  unsigned status = 0;
  if (sscanf(buf, "HTTP/1.1 %u", &status) != 1)
    return;
  fc->status = status;
  char *body = strstr(buf, "\r\n\r\n");
  for (char *line = strstr(buf, "\r\n") + 2; body && line < body;) {
    char *end = strstr(line, "\r\n"), *colon = strchr(line, ':');
    if (colon && colon < end && fc->resp.n < FAKE_MAX) {
      snprintf(fc->resp.names[fc->resp.n], sizeof fc->resp.names[0], "%.*s",
               (int)(colon - line), line);
      snprintf(fc->resp.values[fc->resp.n], sizeof fc->resp.values[0], "%.*s",
               (int)(end - colon - 2), colon + 2);
      fc->resp.n++;
    }
    line = end + 2;
  }
  if (body) {
    fc->resp.len = strlen(body + 4);
    fc->resp.body = strdup(body + 4);
  }
}

/* A callback response is drained at once into a buffer response; a
 * reader that has nothing yet (0) ends it, as the tests have no loop. */
static inline struct MHD_Response *
fake_create_cb(uint64_t size, size_t block, MHD_ContentReaderCallback crc,
               void *cls, MHD_ContentReaderFreeCallback crfc) {
  (void)size;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < block) {
      cap = cap * 2 + block;
      buf = realloc(buf, cap);
    }
    ssize_t n = crc(cls, len, buf + len, block);
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  if (crfc)
    crfc(cls);
  return fake_create(len, buf ? buf : (char *)"", buf ? MHD_RESPMEM_MUST_FREE
                                                     : MHD_RESPMEM_PERSISTENT);
}

static inline int fake_values(struct MHD_Connection *c, enum MHD_ValueKind kind,
                              MHD_KeyValueIterator it, void *cls) {
  fake_conn_t *fc = (fake_conn_t *)(void *)c;
  bool hdr = kind == MHD_HEADER_KIND;
  int n = hdr ? fc->n_headers : fc->n_args;
  for (int i = 0; i < n; i++) {
    const char *const *kv = hdr ? fc->headers[i] : fc->args[i];
    if (it && it(cls, kind, kv[0], kv[1]) != MHD_YES)
      return i + 1;
  }
  return n;
}

static inline void fake_suspend(struct MHD_Connection *c) { (void)c; }
static inline void fake_resume(struct MHD_Connection *c) { (void)c; }

static const lsmi_mhd_t fake_mhd = {
    .lookup_connection_value = fake_lookup,
    .create_response_from_buffer = fake_create,
    .add_response_header = fake_add_header,
    .queue_response = fake_queue,
    .destroy_response = fake_destroy,
    .get_connection_info = fake_info,
    .create_response_from_callback = fake_create_cb,
    .get_connection_values = fake_values,
    .suspend_connection = fake_suspend,
    .resume_connection = fake_resume,
};

typedef struct fx {
  char dir[64];
  lsmi_config_t cfg;
  lsmi_store_t *store;
  uv_loop_t loop;
  lsmi_sched_t *sched;
  lsmi_http_t h;
  fake_conn_t conn;
  enum MHD_Result last; /* what the last call of a request returned */
  json_t *json;         /* the last response's JSON body, or NULL */
} fx_t;

/* Called after a request's first call (when not NULL): tests reach into
 * the request with it. */
static void (*fx_after_first)(lsmi_req_t *r);

static inline void fx_path(const fx_t *f, const char *sub, char *out,
                           size_t size) {
  snprintf(out, size, "%s/%s", f->dir, sub);
}

/* The fixture with `lsmi serve` flags (NULL-terminated list, may be NULL)
 * after --data-dir. */
static inline fx_t *fx_new(const char *const *flags) {
  fx_t *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/lsmi-http-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  const char *subs[] = {"tmp", "datasets", "results"};
  char p[128];
  for (int i = 0; i < 3; i++) {
    fx_path(f, subs[i], p, sizeof p);
    assert_int_equal(mkdir(p, 0700), 0);
  }
  const char *argv[32] = {"serve", "--data-dir", f->dir, "--quiet"};
  int argc = 4;
  for (; flags && *flags && argc < 31; flags++)
    argv[argc++] = *flags;
  bool help = false;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_config_parse(&f->cfg, argc, (char **)argv, NULL, stdout,
                                     &help, &err),
                   0);
  lsmi_util_log_quiet_requests(1);
  fx_path(f, "lsmi.db", p, sizeof p);
  assert_int_equal(lsmi_store_open(p, &f->store, &err), 0);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(
      lsmi_sched_create(&f->loop, &f->cfg, f->store, NULL, NULL, &f->sched), 0);
  assert_int_equal(lsmi_sched_start(f->sched), 0);
  f->h = (lsmi_http_t){
      .mhd = &fake_mhd, .cfg = &f->cfg, .store = f->store, .sched = f->sched};
  fx_after_first = NULL;
  return f;
}

static inline void fx_reset(fx_t *f) {
  free(f->conn.resp.body);
  if (f->conn.sock[0] > 0) {
    close(f->conn.sock[0]);
    close(f->conn.sock[1]);
  }
  memset(&f->conn, 0, sizeof f->conn);
  json_decref(f->json);
  f->json = NULL;
}

static inline void fx_free(fx_t *f) {
  fx_reset(f);
  lsmi_sched_shutdown(f->sched);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  lsmi_sched_destroy(f->sched);
  lsmi_store_close(f->store);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  lsmi_config_free(&f->cfg);
  free(f);
}

static inline int fx_setup(void **state) {
  *state = fx_new(NULL);
  return 0;
}

static inline int fx_teardown(void **state) {
  fx_free(*state);
  return 0;
}

/* A response header of the last request, or NULL. */
static inline const char *fx_header(const fx_t *f, const char *name) {
  const fake_resp_t *r = &f->conn.resp;
  for (int i = 0; i < r->n; i++)
    if (!strcasecmp(r->names[i], name))
      return r->values[i];
  return NULL;
}

/*
 * One request: `query` and `headers` are NULL-terminated lists of name,
 * value pairs (may be NULL); body may be NULL. Returns the HTTP status
 * answered (0 for none); f->json holds a JSON body.
 */
static inline int fx_request(fx_t *f, const char *method, const char *url,
                             const char *const *query,
                             const char *const *headers, const void *body,
                             size_t len) {
  fx_reset(f);
  for (; query && *query; query += 2, f->conn.n_args++)
    memcpy(f->conn.args[f->conn.n_args], query, 2 * sizeof *query);
  for (; headers && *headers; headers += 2, f->conn.n_headers++)
    memcpy(f->conn.headers[f->conn.n_headers], headers, 2 * sizeof *headers);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->conn.sock), 0);
  struct MHD_Connection *c = (struct MHD_Connection *)(void *)&f->conn;
  void *cls = NULL;
  size_t n = 0;
  f->last = lsmi_http_access(&f->h, c, url, method, "HTTP/1.1", NULL, &n, &cls);
  if (fx_after_first && cls)
    fx_after_first(cls);
  for (size_t off = 0; f->last == MHD_YES && off < len; off += n) {
    n = len - off < 4096 ? len - off : 4096;
    size_t left = n;
    f->last = lsmi_http_access(&f->h, c, url, method, "HTTP/1.1",
                               (const char *)body + off, &left, &cls);
    assert_int_equal(left, 0);
  }
  n = 0;
  if (f->last == MHD_YES)
    f->last =
        lsmi_http_access(&f->h, c, url, method, "HTTP/1.1", NULL, &n, &cls);
  lsmi_http_completed(&f->h, c, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
  assert_null(cls);
  if (f->conn.status == 0)
    fake_read_socket(&f->conn);
  if (f->conn.resp.body && f->conn.resp.len)
    f->json = json_loadb(f->conn.resp.body, f->conn.resp.len, 0, NULL);
  return (int)f->conn.status;
}

static inline int fx_get(fx_t *f, const char *url, const char *const *query) {
  return fx_request(f, "GET", url, query, NULL, NULL, 0);
}

/* The last answer is problem+json with this status (and field, if not
 * NULL); returns its detail. */
static inline const char *fx_problem(const fx_t *f, int status,
                                     const char *field) {
  assert_int_equal(f->conn.status, status);
  assert_string_equal(fx_header(f, "Content-Type"), "application/problem+json");
  assert_non_null(f->json);
  assert_int_equal(json_integer_value(json_object_get(f->json, "status")),
                   status);
  const char *got = json_string_value(json_object_get(f->json, "field"));
  if (field)
    assert_string_equal(got ? got : "(none)", field);
  const char *detail = json_string_value(json_object_get(f->json, "detail"));
  assert_non_null(detail);
  return detail;
}

/* A string member of the last JSON answer ("" when absent). */
static inline const char *fx_str(const fx_t *f, const char *key) {
  const char *s = json_string_value(json_object_get(f->json, key));
  return s ? s : "";
}

/* Runs sql on the fixture's store file (helpers.h). */
static inline void fx_sql(const fx_t *f, const char *sql) {
  char p[128];
  fx_path(f, "lsmi.db", p, sizeof p);
  sql_exec(p, sql);
}

/* Entries of the fixture's sub-directory, . and .. aside; -1 when it is
 * not there. */
static inline int fx_entries(const fx_t *f, const char *sub) {
  char p[128];
  fx_path(f, sub, p, sizeof p);
  return count_entries(p);
}

/* The bytes of the file at path (malloc'd), *len of them. */
static inline unsigned char *fx_file(const char *path, size_t *len) {
  FILE *in = fopen(path, "rb");
  assert_non_null(in);
  fseek(in, 0, SEEK_END);
  *len = (size_t)ftell(in);
  rewind(in);
  unsigned char *buf = malloc(*len ? *len : 1);
  assert_int_equal(fread(buf, 1, *len, in), *len);
  fclose(in);
  return buf;
}

/* The bytes of a small synthetic dataset as an .npz file (malloc'd). */
static inline unsigned char *fx_npz(const fx_t *f, size_t n_rows, uint64_t seed,
                                    size_t *len) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_synth(LSMI_SYNTH_GAUSSIAN, n_rows, seed, &ds, &err), 0);
  char p[128];
  fx_path(f, "synth.npz", p, sizeof p);
  assert_int_equal(lsmi_dataset_write_npz(ds, p, &err), 0);
  lsmi_dataset_destroy(ds);
  unsigned char *buf = fx_file(p, len);
  unlink(p);
  return buf;
}

/* Uploads a synthetic dataset; returns its id (static buffer). */
static inline const char *fx_upload(fx_t *f, size_t n_rows, uint64_t seed) {
  static char id[64];
  size_t len;
  unsigned char *bytes = fx_npz(f, n_rows, seed, &len);
  int st = fx_request(f, "POST", "/v1/datasets", NULL, NULL, bytes, len);
  free(bytes);
  assert_true(st == 201 || st == 200);
  snprintf(id, sizeof id, "%s", fx_str(f, "id"));
  return id;
}

#endif
