/*
 * conns.c — connection deadlines and their reaper (see conns.h).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "conns.h"
#include "lsmi.h"
#include "util.h"

typedef enum phase { HEAD, BODY, RECEIVED } phase_t;

struct lsmi_conn {
  lsmi_conn_t *next, *prev;
  lsmi_conns_t *owner;
  int fd;
  phase_t phase;
  double since;   /* HEAD: waiting since; BODY: this window's start */
  uint64_t bytes; /* BODY: bytes in this window */
  bool reaped;    /* its socket was shut down; libmicrohttpd closes it */
};

struct lsmi_conns {
  pthread_mutex_t mu; /* conns.mu: the list and every entry; a leaf */
  pthread_cond_t stop_cv;
  lsmi_conn_t *head;
  double window;     /* --header-timeout, seconds */
  uint64_t min_rate; /* --min-body-rate, bytes per second */
  bool stopping;
  uint64_t reaped_head, reaped_body;
  pthread_t reaper;
};

/* Shuts down the sockets past their deadline; conns.mu held. */
static void reap_locked(lsmi_conns_t *c, double now) {
  for (lsmi_conn_t *e = c->head; e; e = e->next) {
    if (e->reaped || e->phase == RECEIVED || now - e->since < c->window)
      continue;
    if (e->phase == BODY &&
        (double)e->bytes >= (double)c->min_rate * (now - e->since)) {
      e->since = now; /* kept up: a new window */
      e->bytes = 0;
      continue;
    }
    shutdown(e->fd, SHUT_RDWR);
    e->reaped = true;
    if (e->phase == HEAD)
      c->reaped_head++;
    else
      c->reaped_body++;
  }
}

static void *reaper_main(void *arg) {
  lsmi_conns_t *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->stopping) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 1;
    pthread_cond_timedwait(&c->stop_cv, &c->mu, &until);
    if (!c->stopping)
      reap_locked(c, lsmi_util_mono());
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

int lsmi_conns_create(int header_timeout, uint64_t min_body_rate,
                      lsmi_conns_t **out) {
  *out = NULL;
  lsmi_conns_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return LSMI_ERR_NOMEM;
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->stop_cv, &ca);
  pthread_condattr_destroy(&ca);
  c->window = header_timeout > 0 ? header_timeout : 1;
  c->min_rate = min_body_rate;
  if (pthread_create(&c->reaper, NULL, reaper_main, c) != 0) {
    pthread_cond_destroy(&c->stop_cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return LSMI_ERR_THREAD;
  }
  *out = c;
  return LSMI_OK;
}

void lsmi_conns_destroy(lsmi_conns_t *c) {
  if (c == NULL)
    return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_signal(&c->stop_cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->reaper, NULL);
  while (c->head) {
    lsmi_conn_t *e = c->head;
    c->head = e->next;
    free(e);
  }
  pthread_cond_destroy(&c->stop_cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

lsmi_conn_t *lsmi_conns_open(lsmi_conns_t *c, int fd) {
  if (c == NULL)
    return NULL;
  lsmi_conn_t *e = calloc(1, sizeof *e);
  if (e == NULL)
    return NULL;
  e->owner = c;
  e->fd = fd;
  e->phase = HEAD;
  e->since = lsmi_util_mono();
  pthread_mutex_lock(&c->mu);
  e->next = c->head;
  if (c->head)
    c->head->prev = e;
  c->head = e;
  pthread_mutex_unlock(&c->mu);
  return e;
}

void lsmi_conns_close(lsmi_conn_t *e) {
  if (e == NULL)
    return;
  lsmi_conns_t *c = e->owner;
  pthread_mutex_lock(&c->mu);
  if (e->prev)
    e->prev->next = e->next;
  else
    c->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  pthread_mutex_unlock(&c->mu);
  free(e);
}

/* Moves e to phase p, its clock from now. */
static void enter(lsmi_conn_t *e, phase_t p) {
  if (e == NULL)
    return;
  double now = lsmi_util_mono();
  pthread_mutex_lock(&e->owner->mu);
  e->phase = p;
  e->since = now;
  e->bytes = 0;
  pthread_mutex_unlock(&e->owner->mu);
}

void lsmi_conns_head(lsmi_conn_t *e) { enter(e, BODY); }
void lsmi_conns_received(lsmi_conn_t *e) { enter(e, RECEIVED); }
void lsmi_conns_done(lsmi_conn_t *e) { enter(e, HEAD); }

void lsmi_conns_body(lsmi_conn_t *e, size_t n) {
  if (e == NULL)
    return;
  pthread_mutex_lock(&e->owner->mu);
  e->bytes += n;
  pthread_mutex_unlock(&e->owner->mu);
}

void lsmi_conns_reaped(lsmi_conns_t *c, uint64_t *head, uint64_t *body) {
  *head = *body = 0;
  if (c == NULL)
    return;
  pthread_mutex_lock(&c->mu);
  *head = c->reaped_head;
  *body = c->reaped_body;
  pthread_mutex_unlock(&c->mu);
}
