/*
 * test_conns.c — server/conns.c with socket pairs for connections and a
 * one-second --header-timeout: a connection whose request head does not
 * come is shut down, and so is one whose body falls below the rate; one
 * that keeps the rate, one whose request is in (however long the daemon
 * then works on it) and one waiting for a head it was given time for are
 * left alone; closing unlinks an entry, so the reaper never touches its
 * descriptor again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conns.h"
#include "lsmi.h"
#include "util.h"

typedef struct pair {
  int fd[2]; /* [0] the daemon's end, [1] the client's */
  lsmi_conn_t *e;
} pair_t;

static void open_pair(lsmi_conns_t *c, pair_t *p) {
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
  p->e = lsmi_conns_open(c, p->fd[0]);
  assert_non_null(p->e);
}

/* Whether the daemon's end was shut down: the client reads EOF. */
static bool shut(const pair_t *p) {
  struct pollfd pf = {p->fd[1], POLLIN, 0};
  if (poll(&pf, 1, 0) != 1)
    return false;
  char b;
  return recv(p->fd[1], &b, 1, MSG_DONTWAIT) == 0;
}

static void close_pair(pair_t *p) {
  lsmi_conns_close(p->e);
  close(p->fd[0]);
  close(p->fd[1]);
}

/* Waits `secs`, feeding `rate` bytes a second to the body of *fed. */
static void wait_feeding(double secs, pair_t *fed, size_t rate) {
  double until = lsmi_util_mono() + secs;
  while (lsmi_util_mono() < until) {
    if (fed)
      lsmi_conns_body(fed->e, rate / 10);
    usleep(100 * 1000);
  }
}

static void test_deadlines(void **state) {
  (void)state;
  lsmi_conns_t *c = NULL;
  assert_int_equal(lsmi_conns_create(1, 1000, &c), LSMI_OK);
  pair_t no_head, slow_body, fast_body, received;
  open_pair(c, &no_head);
  open_pair(c, &slow_body);
  open_pair(c, &fast_body);
  open_pair(c, &received);
  lsmi_conns_head(slow_body.e);
  lsmi_conns_head(fast_body.e);
  lsmi_conns_head(received.e);
  lsmi_conns_received(received.e);
  lsmi_conns_body(slow_body.e, 10); /* far below 1000 bytes a second */
  wait_feeding(3.2, &fast_body, 5000);
  assert_true(shut(&no_head));
  assert_true(shut(&slow_body));
  assert_false(shut(&fast_body));
  assert_false(shut(&received)); /* however long the daemon works */
  uint64_t head = 0, body = 0;
  lsmi_conns_reaped(c, &head, &body);
  assert_int_equal(head, 1);
  assert_int_equal(body, 1);
  /* The next request on a kept-alive connection gets its own time. */
  lsmi_conns_done(received.e);
  wait_feeding(0.3, NULL, 0);
  assert_false(shut(&received));
  close_pair(&no_head);
  close_pair(&slow_body);
  close_pair(&fast_body);
  close_pair(&received);
  lsmi_conns_destroy(c);
}

/* No floor: a body may be as slow as it likes (the head still has its
 * deadline); a NULL entry or table is a no-op everywhere. */
static void test_no_floor_and_nulls(void **state) {
  (void)state;
  lsmi_conns_t *c = NULL;
  assert_int_equal(lsmi_conns_create(1, 0, &c), LSMI_OK);
  pair_t body;
  open_pair(c, &body);
  lsmi_conns_head(body.e);
  wait_feeding(2.2, NULL, 0);
  assert_false(shut(&body));
  close_pair(&body);
  lsmi_conns_destroy(c);
  assert_null(lsmi_conns_open(NULL, 3));
  lsmi_conns_head(NULL);
  lsmi_conns_body(NULL, 5);
  lsmi_conns_received(NULL);
  lsmi_conns_done(NULL);
  lsmi_conns_close(NULL);
  uint64_t h = 1, b = 1;
  lsmi_conns_reaped(NULL, &h, &b);
  assert_true(h == 0 && b == 0);
  lsmi_conns_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deadlines),
      cmocka_unit_test(test_no_floor_and_nulls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
