/*
 * h_events.c — a job's status as a client that watches it wants it:
 * GET /v1/jobs/{id} with an ETag (304 when If-None-Match names the one the
 * client has), and GET /v1/jobs/{id}/events, a stream of server-sent
 * events that sends the job whenever it changes and ends once the job is
 * finished. See handlers.h for how a handler answers.
 *
 * A stream is a libmicrohttpd callback response. Its reader, on the HTTP
 * thread of the connection, reads the job (the store and the live
 * progress, as GET shows it) and writes an event when its text changed;
 * when nothing changed it suspends the connection and returns 0. A ticker
 * thread of this file resumes the suspended streams every TICK_MS, so a
 * stream costs no thread while it waits and a change reaches the client
 * within a tick. Every FEED_S seconds without a change a comment line
 * keeps proxies from closing the stream.
 *
 * Lock: events.mu guards the list of streams and their `suspended` flags;
 * suspend and resume are called under it (our lock, then libmicrohttpd's),
 * and nothing else is taken under it. Before the daemon stops,
 * lsmi_events_stop ends every stream (libmicrohttpd must not be stopped
 * with a suspended connection) and joins the ticker.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "util.h"

enum { TICK_MS = 250, FEED_S = 15 };

typedef struct stream {
  struct stream *next, *prev; /* under events.mu */
  const lsmi_mhd_t *mhd;
  struct MHD_Connection *c;
  bool suspended; /* under events.mu */
  lsmi_http_t *h;
  char tenant[64], id[LSMI_ROUTER_ID_MAX];
  unsigned char last[32]; /* SHA-256 of the last job text sent */
  bool sent_any, ended;
  long seq;
  double fed; /* monotonic time of the last bytes sent */
  char *out;  /* bytes not yet handed to libmicrohttpd */
  size_t out_len, out_off;
} stream_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* events.mu */
static stream_t *streams;
static int n_streams;
static bool stopping, ticker_on;

/* ---- the ETag of a job ---- */

/* The strong ETag of text: a quoted prefix of its SHA-256. */
static void etag_of(const char *text, char tag[40]) {
  lsmi_sha256_t s;
  unsigned char d[32];
  char hex[65];
  lsmi_sha256_init(&s);
  lsmi_sha256_update(&s, text, strlen(text));
  lsmi_sha256_final(&s, d);
  lsmi_util_hex(d, 16, hex);
  tag[0] = '"';
  memcpy(tag + 1, hex, 32);
  tag[33] = '"';
  tag[34] = '\0';
}

/* Whether an If-None-Match header names tag (or is "*"). */
static bool matches_tag(const char *inm, const char *tag) {
  if (inm == NULL)
    return false;
  if (strstr(inm, tag) != NULL)
    return true;
  for (; *inm == ' '; inm++)
    ;
  return inm[0] == '*';
}

int lsmi_http_reply_tagged(lsmi_req_t *r, json_t *v) {
  char *text = lsmi_util_json_text(v);
  if (text == NULL)
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  char tag[40];
  etag_of(text, tag);
  lsmi_hdr_t hd[] = {{"ETag", tag}, {NULL, NULL}};
  if (matches_tag(lsmi_http_header(r, "If-None-Match"), tag)) {
    free(text);
    return lsmi_http_reply(r, 304, NULL, (char *)"", 0, true, hd);
  }
  return lsmi_http_reply(r, 200, "application/json", text, strlen(text), false,
                         hd);
}

/* ---- the ticker ---- */

/* Resumes every parked stream; events.mu held. */
static void resume_all_locked(void) {
  for (stream_t *s = streams; s; s = s->next)
    if (s->suspended) {
      s->suspended = false;
      s->mhd->resume_connection(s->c);
    }
}

/* The ticker: runs (detached) while there are streams. */
static void *tick(void *arg) {
  (void)arg;
  struct timespec ts = {0, TICK_MS * 1000000L};
  for (;;) {
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&mu);
    resume_all_locked();
    bool quit = n_streams == 0;
    if (quit)
      ticker_on = false;
    pthread_mutex_unlock(&mu);
    if (quit)
      return NULL;
  }
}

/* Starts the ticker (detached); events.mu held. */
static bool start_ticker_locked(void) {
  pthread_attr_t a;
  pthread_t t;
  if (pthread_attr_init(&a))
    return false;
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  bool ok = pthread_create(&t, &a, tick, NULL) == 0;
  pthread_attr_destroy(&a);
  return ok;
}

/* Adds s to the list (starting the ticker with the first): false when the
 * daemon is stopping or no thread can be had. */
static bool enlist(stream_t *s) {
  bool ok = true;
  pthread_mutex_lock(&mu);
  if (stopping)
    ok = false;
  else if (!ticker_on)
    ok = ticker_on = start_ticker_locked();
  if (ok) {
    s->next = streams;
    if (streams)
      streams->prev = s;
    streams = s;
    n_streams++;
  }
  pthread_mutex_unlock(&mu);
  return ok;
}

void lsmi_events_stop(lsmi_http_t *h) {
  (void)h;
  pthread_mutex_lock(&mu);
  stopping = true;
  resume_all_locked();
  pthread_mutex_unlock(&mu);
  /* Each resumed stream ends at its next read; the ticker goes with the
   * last. Bounded: a stream libmicrohttpd never reads again (its client
   * gone) is dropped by stop_daemon itself once nothing is suspended. */
  struct timespec ts = {0, 10 * 1000000L};
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&mu);
    bool done = n_streams == 0 && !ticker_on;
    if (!done)
      resume_all_locked();
    pthread_mutex_unlock(&mu);
    if (done)
      break;
    nanosleep(&ts, NULL);
  }
  pthread_mutex_lock(&mu);
  stopping = false; /* a later daemon of this process (the tests) */
  pthread_mutex_unlock(&mu);
}

/* ---- a stream ---- */

static void stream_free(void *cls) {
  stream_t *s = cls;
  pthread_mutex_lock(&mu);
  if (s->prev)
    s->prev->next = s->next;
  else
    streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  n_streams--;
  pthread_mutex_unlock(&mu);
  free(s->out);
  free(s);
}

/* Queues text (taken) to be sent. */
static void emit(stream_t *s, char *text) {
  free(s->out);
  s->out = text;
  s->out_len = text ? strlen(text) : 0;
  s->out_off = 0;
  s->fed = lsmi_util_mono();
}

/* Reads the job; queues an event when it changed, and the end when it is
 * finished (or gone). */
static void poll_job(stream_t *s) {
  json_t *job = NULL;
  int state = -1;
  int st = lsmi_h_job_view(s->h, s->tenant, s->id, &job, &state);
  if (st) {
    json_decref(job);
    s->ended = true;
    char *end = malloc(96);
    if (end)
      snprintf(end, 96, "event: end\ndata: {\"state\":null,\"status\":%d}\n\n",
               st == LSMI_ERR_NOTFOUND ? 404 : 500);
    emit(s, end);
    return;
  }
  char *text = lsmi_util_json_text(job);
  if (text == NULL)
    return; /* no memory now: try at the next tick */
  unsigned char d[32];
  lsmi_sha256_t sh;
  lsmi_sha256_init(&sh);
  lsmi_sha256_update(&sh, text, strlen(text));
  lsmi_sha256_final(&sh, d);
  bool finished = state == LSMI_JOB_SUCCEEDED || state == LSMI_JOB_FAILED ||
                  state == LSMI_JOB_CANCELLED;
  if (s->sent_any && !memcmp(d, s->last, sizeof d) && !finished) {
    free(text);
    return;
  }
  memcpy(s->last, d, sizeof d);
  s->sent_any = true;
  lsmi_strbuf_t b;
  lsmi_strbuf_init(&b, strlen(text) + 128);
  lsmi_strbuf_printf(&b, "id: %ld\nevent: job\ndata: %s\n\n", ++s->seq, text);
  if (finished) {
    lsmi_strbuf_printf(&b, "event: end\ndata: {\"state\":\"%s\"}\n\n",
                       lsmi_job_state_name(state));
    s->ended = true;
  }
  free(text);
  if (b.oom) {
    free(b.p);
    return;
  }
  emit(s, b.p);
}

/* Parks the stream until the ticker resumes it: false when the daemon is
 * stopping (the stream must end). */
static bool park(stream_t *s) {
  bool ok = false;
  pthread_mutex_lock(&mu);
  if (!stopping) {
    s->suspended = true;
    s->mhd->suspend_connection(s->c);
    ok = true;
  }
  pthread_mutex_unlock(&mu);
  return ok;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  stream_t *s = cls;
  (void)pos;
  if (s->out_off == s->out_len) {
    if (s->ended)
      return MHD_CONTENT_READER_END_OF_STREAM;
    poll_job(s);
  }
  if (s->out_off == s->out_len && lsmi_util_mono() - s->fed >= FEED_S) {
    char *feed = malloc(16);
    if (feed)
      snprintf(feed, 16, ": feed\n\n");
    emit(s, feed);
  }
  if (s->out_off < s->out_len) {
    size_t k = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
    memcpy(buf, s->out + s->out_off, k);
    s->out_off += k;
    return (ssize_t)k;
  }
  return park(s) ? 0 : MHD_CONTENT_READER_END_OF_STREAM;
}

int lsmi_h_job_events(lsmi_req_t *r) {
  json_t *job = NULL;
  int st = lsmi_h_job_view(r->h, r->tenant, r->id, &job, NULL);
  json_decref(job);
  if (st == LSMI_ERR_NOTFOUND)
    return lsmi_error_set(&r->err, st, NULL, "no job '%s'", r->id);
  if (st)
    return lsmi_http_store_failed(r, st);
  stream_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    return lsmi_error_set(&r->err, LSMI_ERR_NOMEM, NULL, "out of memory");
  s->mhd = r->h->mhd;
  s->c = r->c;
  s->h = r->h;
  snprintf(s->tenant, sizeof s->tenant, "%s", r->tenant);
  snprintf(s->id, sizeof s->id, "%s", r->id);
  s->fed = lsmi_util_mono();
  if (!enlist(s)) {
    free(s);
    return lsmi_error_set(&r->err, LSMI_ERR_SHUTDOWN, NULL,
                          "the daemon is shutting down");
  }
  lsmi_hdr_t hd[] = {{"X-Accel-Buffering", "no"}, {NULL, NULL}};
  return lsmi_http_reply_stream(r, 200, "text/event-stream", stream_read, s,
                                stream_free, hd);
}
