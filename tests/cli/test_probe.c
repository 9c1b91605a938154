/*
 * test_probe.c — cli/probe.c: `lsmi probe` called as lsmi_probe_main
 * against a listening socket the test opens itself (a thread that accepts
 * one connection, records the request and sends a canned answer, or none).
 * Exit 0 on 2xx and 1 on any other status, a garbled answer, silence past
 * --timeout or a closed port; 2 for each usage error. The request is one
 * GET of the right path with Host and Connection: close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "run.h"

/* A one-connection HTTP server on a loopback port. */
typedef struct server {
  int fd;
  int port;
  const char *reply;  /* sent after the request; NULL: never answer */
  char request[2048]; /* what the client sent, up to the blank line */
  pthread_t thread;
} server_t;

static void *serve_one(void *arg) {
  server_t *s = arg;
  int c = accept(s->fd, NULL, NULL);
  if (c < 0)
    return NULL;
  size_t got = 0;
  while (got < sizeof s->request - 1 && !strstr(s->request, "\r\n\r\n")) {
    ssize_t r = recv(c, s->request + got, sizeof s->request - 1 - got, 0);
    if (r <= 0)
      break;
    got += (size_t)r;
    s->request[got] = '\0';
  }
  if (s->reply != NULL) {
    ssize_t w = send(c, s->reply, strlen(s->reply), MSG_NOSIGNAL);
    (void)w;
  } else {
    /* Silence: hold the connection until the client gives up. */
    char sink[64];
    while (recv(c, sink, sizeof sink, 0) > 0)
      ;
  }
  close(c);
  return NULL;
}

/* Listens on family's loopback address, port 0; false if the family is
 * not available here. */
static bool server_start(server_t *s, int family, const char *reply) {
  memset(s, 0, sizeof *s);
  s->reply = reply;
  s->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(s->fd >= 0);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  }
  if (bind(s->fd, (struct sockaddr *)&ss, len) != 0) {
    close(s->fd);
    return false;
  }
  assert_int_equal(listen(s->fd, 4), 0);
  assert_int_equal(getsockname(s->fd, (struct sockaddr *)&ss, &len), 0);
  s->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
  return true;
}

static void server_stop(server_t *s) {
  pthread_join(s->thread, NULL);
  close(s->fd);
}

/* A loopback port nothing listens on: bound, then closed. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- answers ------------------------------------------------------------ */

static void test_2xx_exits_0(void **state) {
  (void)state;
  server_t s;
  assert_true(server_start(&s, AF_INET,
                           "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  char url[64], want[96], host[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", s.port);
  cli_run_t r = cli_run(lsmi_probe_main, "probe", url, NULL);
  server_stop(&s);
  assert_int_equal(r.rc, 0);
  snprintf(want, sizeof want, "%s: HTTP 200\n", url);
  assert_string_equal(r.out, want);
  assert_string_equal(r.err, "");
  assert_true(strncmp(s.request, "GET /healthz HTTP/1.1\r\n", 23) == 0);
  snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", s.port);
  assert_contains(s.request, host);
  assert_contains(s.request, "\r\nConnection: close\r\n");
  cli_run_free(&r);

  /* 204 counts too, and the path and query go through as given. */
  assert_true(server_start(&s, AF_INET, "HTTP/1.0 204 No Content\r\n\r\n"));
  snprintf(url, sizeof url, "http://localhost:%d/readyz?x=1", s.port);
  r = cli_run(lsmi_probe_main, "probe", "--timeout", "5", url, NULL);
  server_stop(&s);
  assert_int_equal(r.rc, 0);
  assert_contains(r.out, ": HTTP 204");
  assert_true(strncmp(s.request, "GET /readyz?x=1 HTTP/1.1\r\n", 26) == 0);
  cli_run_free(&r);
}

static void test_other_status_exits_1(void **state) {
  (void)state;
  static const char *replies[] = {
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n",
      "HTTP/1.1 404 Not Found\r\n\r\n",
  };
  static const char *codes[] = {"HTTP 503", "HTTP 302", "HTTP 404"};
  for (size_t i = 0; i < 3; i++) {
    server_t s;
    assert_true(server_start(&s, AF_INET, replies[i]));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    cli_run_t r = cli_run(lsmi_probe_main, "probe", url, NULL);
    server_stop(&s);
    assert_int_equal(r.rc, 1);
    assert_contains(r.out, codes[i]);
    cli_run_free(&r);
  }
}

static void test_garbled_answer_exits_1(void **state) {
  (void)state;
  server_t s;
  assert_true(server_start(&s, AF_INET, "hello there\r\n"));
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
  cli_run_t r = cli_run(lsmi_probe_main, "probe", url, NULL);
  server_stop(&s);
  assert_int_equal(r.rc, 1);
  assert_contains(r.err, "lsmi probe: ");
  assert_contains(r.err, ": not an HTTP answer");
  cli_run_free(&r);
}

/* A server that accepts and never answers fails the probe within the
 * timeout, not after the connection dies. */
static void test_silence_times_out(void **state) {
  (void)state;
  server_t s;
  assert_true(server_start(&s, AF_INET, NULL));
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", s.port);
  double t0 = now();
  cli_run_t r = cli_run(lsmi_probe_main, "probe", "--timeout=0.3", url, NULL);
  double took = now() - t0;
  server_stop(&s);
  assert_int_equal(r.rc, 1);
  assert_contains(r.err, "timed out waiting for the answer");
  assert_true(took >= 0.25 && took < 3.0);
  cli_run_free(&r);
}

static void test_closed_port_exits_1(void **state) {
  (void)state;
  int port = closed_port();
  char url[64], says[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
  cli_run_t r = cli_run(lsmi_probe_main, "probe", "-t", "2", url, NULL);
  assert_int_equal(r.rc, 1);
  assert_string_equal(r.out, "");
  snprintf(says, sizeof says, "cannot connect to 127.0.0.1 port %d: ", port);
  assert_contains(r.err, says);
  cli_run_free(&r);
}

/* Without a URL: LSMI_LISTEN's port, a wildcard host probed on loopback. */
static void test_address_from_lsmi_listen(void **state) {
  (void)state;
  server_t s;
  assert_true(server_start(&s, AF_INET, "HTTP/1.1 200 OK\r\n\r\n"));
  char listen[32], want[96];
  snprintf(listen, sizeof listen, "0.0.0.0:%d", s.port);
  setenv("LSMI_LISTEN", listen, 1);
  cli_run_t r = cli_run(lsmi_probe_main, "probe", "/readyz", NULL);
  server_stop(&s);
  assert_int_equal(r.rc, 0);
  snprintf(want, sizeof want, "http://127.0.0.1:%d/readyz: HTTP 200\n", s.port);
  assert_string_equal(r.out, want);
  assert_true(strncmp(s.request, "GET /readyz HTTP/1.1\r\n", 22) == 0);
  cli_run_free(&r);

  /* ":PORT" and no path: /healthz. */
  assert_true(server_start(&s, AF_INET, "HTTP/1.1 200 OK\r\n\r\n"));
  snprintf(listen, sizeof listen, ":%d", s.port);
  setenv("LSMI_LISTEN", listen, 1);
  r = cli_run(lsmi_probe_main, "probe", NULL);
  server_stop(&s);
  assert_int_equal(r.rc, 0);
  assert_true(strncmp(s.request, "GET /healthz HTTP/1.1\r\n", 23) == 0);
  cli_run_free(&r);

  setenv("LSMI_LISTEN", "[::1", 1);
  r = cli_run(lsmi_probe_main, "probe", NULL);
  assert_int_equal(r.rc, 2);
  assert_contains(r.err, "lsmi probe: cannot read LSMI_LISTEN=[::1");
  cli_run_free(&r);
  unsetenv("LSMI_LISTEN");
}

static void test_ipv6(void **state) {
  (void)state;
  server_t s;
  if (!server_start(&s, AF_INET6, "HTTP/1.1 200 OK\r\n\r\n"))
    skip(); /* no IPv6 loopback here */
  char url[64], host[64];
  snprintf(url, sizeof url, "http://[::1]:%d/healthz", s.port);
  cli_run_t r = cli_run(lsmi_probe_main, "probe", url, NULL);
  server_stop(&s);
  assert_int_equal(r.rc, 0);
  snprintf(host, sizeof host, "\r\nHost: [::1]:%d\r\n", s.port);
  assert_contains(s.request, host);
  assert_contains(r.out, "http://[::1]:");
  cli_run_free(&r);
}

/* ---- usage -------------------------------------------------------------- */

static void test_help(void **state) {
  (void)state;
  cli_run_t r = cli_run(lsmi_probe_main, "probe", "--help", NULL);
  assert_int_equal(r.rc, 0);
  assert_contains(r.out, "usage: lsmi probe [--timeout SECONDS] [URL | /PATH]");
  assert_string_equal(r.err, "");
  cli_run_free(&r);
}

static void test_usage_errors(void **state) {
  (void)state;
  static const struct {
    const char *args[3];
    const char *says;
  } cases[] = {
      {{"--timeout", "0"}, "--timeout wants seconds in (0, 3600]"},
      {{"--timeout=abc"}, "--timeout wants seconds in (0, 3600]"},
      {{"--timeout", "4000"}, "--timeout wants seconds in (0, 3600]"},
      {{"--timeout"}, "lsmi probe: --timeout needs a value"},
      {{"-x"}, "lsmi probe: unknown option -x"},
      {{"http://127.0.0.1:1/", "http://127.0.0.1:2/"},
       "lsmi probe: one URL only"},
      {{"ftp://127.0.0.1/"}, "not an http://HOST[:PORT][/PATH] URL: ftp://"},
      {{"http://"}, "not an http://HOST[:PORT][/PATH] URL"},
      {{"http://127.0.0.1:80x/"}, "not an http://HOST[:PORT][/PATH] URL"},
      {{"http://[::1/"}, "not an http://HOST[:PORT][/PATH] URL"},
      {{"http://127.0.0.1/a b"}, "not an http://HOST[:PORT][/PATH] URL"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cli_assert_usage_error(lsmi_probe_main, "probe", cases[i].args, 3, NULL,
                           cases[i].says);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_2xx_exits_0),
      cmocka_unit_test(test_other_status_exits_1),
      cmocka_unit_test(test_garbled_answer_exits_1),
      cmocka_unit_test(test_silence_times_out),
      cmocka_unit_test(test_closed_port_exits_1),
      cmocka_unit_test(test_address_from_lsmi_listen),
      cmocka_unit_test(test_ipv6),
      cmocka_unit_test(test_help),
      cmocka_unit_test(test_usage_errors),
  };
  return cmocka_run_group_tests_name("cli/probe", tests, NULL, NULL);
}
