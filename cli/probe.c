/*
 * probe.c — `lsmi probe`: one HTTP/1.1 GET over a plain socket, for health
 * checks in images that have no curl.
 *
 * The probe resolves the host, connects without blocking, sends one request
 * with `Connection: close`, reads only the status line and maps it to an exit
 * code (0 for 2xx, 1 otherwise). One deadline, set by --timeout, covers the
 * whole exchange, so a daemon that accepts but never answers still fails the
 * check in bounded time. Only http:// is spoken: the probe runs next to the
 * daemon, inside the same container or host, where TLS is not terminated.
 */
#include "probe.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_DEFAULT_LISTEN "127.0.0.1:8080"
#define PROBE_DEFAULT_PATH "/healthz"
#define PROBE_DEFAULT_TIMEOUT 5.0

/* The parts of an http:// URL, each NUL-terminated. */
typedef struct probe_target {
  char host[256]; /* without brackets, even for IPv6 */
  char port[16];
  char path[1024];
} probe_target_t;

static void probe_usage(FILE *out) {
  fputs("usage: lsmi probe [--timeout SECONDS] [URL | /PATH]\n"
        "\n"
        "Sends one HTTP GET and exits 0 when the answer is 2xx, 1 for any\n"
        "other status, a refused connection or a timeout, 2 for bad usage.\n"
        "\n"
        "  URL        http://HOST[:PORT][/PATH]; IPv6 hosts in brackets\n"
        "  /PATH      that path on the address of LSMI_LISTEN\n"
        "  (nothing)  /healthz on the address of LSMI_LISTEN "
        "(default " PROBE_DEFAULT_LISTEN "),\n"
        "             a wildcard host (0.0.0.0, ::) replaced by loopback\n"
        "  --timeout  seconds for the whole exchange (default 5)\n",
        out);
}

/* Copies [s, s+n) into dst (capacity cap); -1 when it does not fit. */
static int probe_copy(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap)
    return -1;
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

/*
 * Splits "HOST[:PORT]" (HOST may be "[v6]") of length n into t->host and
 * t->port; an empty port keeps t->port as it is. Returns 0 or -1.
 */
static int probe_parse_authority(probe_target_t *t, const char *s, size_t n) {
  const char *end = s + n;
  const char *colon = NULL;
  if (n > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (close == NULL)
      return -1;
    if (probe_copy(t->host, sizeof t->host, s + 1, (size_t)(close - s - 1)))
      return -1;
    if (close + 1 < end) {
      if (close[1] != ':')
        return -1;
      colon = close + 1;
    }
  } else {
    for (const char *p = s; p < end; p++)
      if (*p == ':')
        colon = p;
    size_t hlen = colon ? (size_t)(colon - s) : n;
    if (probe_copy(t->host, sizeof t->host, s, hlen))
      return -1;
  }
  if (colon != NULL && colon + 1 < end) {
    size_t plen = (size_t)(end - colon - 1);
    for (const char *p = colon + 1; p < end; p++)
      if (*p < '0' || *p > '9')
        return -1;
    if (probe_copy(t->port, sizeof t->port, colon + 1, plen))
      return -1;
  }
  return 0;
}

/* Parses "http://HOST[:PORT][/PATH]" into *t. Returns 0 or -1. */
static int probe_parse_url(probe_target_t *t, const char *url) {
  static const char scheme[] = "http://";
  if (strncasecmp(url, scheme, sizeof scheme - 1) != 0)
    return -1;
  const char *auth = url + sizeof scheme - 1;
  const char *slash = strchr(auth, '/');
  size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
  strcpy(t->port, "80");
  if (alen == 0 || probe_parse_authority(t, auth, alen))
    return -1;
  if (t->host[0] == '\0')
    return -1;
  const char *path = slash ? slash : "/";
  if (probe_copy(t->path, sizeof t->path, path, strlen(path)))
    return -1;
  /* A request line must not be split by whitespace or control bytes. */
  for (const char *p = t->path; *p; p++)
    if ((unsigned char)*p <= ' ')
      return -1;
  return 0;
}

/*
 * Fills t->host and t->port from a listen address as the daemon takes it
 * ("HOST:PORT", "[v6]:PORT", ":PORT"), probing loopback where the daemon
 * listens on every address.
 */
static int probe_from_listen(probe_target_t *t, const char *listen) {
  strcpy(t->port, "8080");
  if (probe_parse_authority(t, listen, strlen(listen)))
    return -1;
  if (t->host[0] == '\0' || strcmp(t->host, "0.0.0.0") == 0 ||
      strcmp(t->host, "*") == 0)
    strcpy(t->host, "127.0.0.1");
  else if (strcmp(t->host, "::") == 0)
    strcpy(t->host, "::1");
  return 0;
}

static double probe_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Waits until fd is ready for `events` or the deadline passes. Returns 1 when
 * ready, 0 on timeout, -1 on error.
 */
static int probe_wait(int fd, short events, double deadline) {
  for (;;) {
    double left = deadline - probe_now();
    if (left <= 0)
      return 0;
    struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
    int rc = poll(&pfd, 1, (int)(left * 1000.0) + 1);
    if (rc > 0)
      return 1;
    if (rc == 0)
      continue; /* re-check the clock: poll may round down */
    if (errno != EINTR)
      return -1;
  }
}

/* Connects to one resolved address before the deadline; the fd or -1. */
static int probe_connect_one(const struct addrinfo *ai, double deadline) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
  if (fd < 0)
    return -1;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return fd;
  if (errno == EINPROGRESS && probe_wait(fd, POLLOUT, deadline) == 1) {
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
      return fd;
    errno = soerr ? soerr : errno;
  } else if (errno == EINPROGRESS) {
    errno = ETIMEDOUT;
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return -1;
}

/*
 * Does the GET. Returns the HTTP status (100..599), or -1 with a message in
 * why (capacity cap).
 */
static int probe_get(const probe_target_t *t, double deadline, char *why,
                     size_t cap) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(t->host, t->port, &hints, &res);
  if (gai != 0) {
    snprintf(why, cap, "cannot resolve %s: %s", t->host, gai_strerror(gai));
    return -1;
  }
  int fd = -1;
  int err = 0;
  for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
    fd = probe_connect_one(ai, deadline);
    if (fd < 0)
      err = errno;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    snprintf(why, cap, "cannot connect to %s port %s: %s", t->host, t->port,
             strerror(err));
    return -1;
  }

  char req[1536];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
                   "User-Agent: lsmi-probe\r\nAccept: */*\r\n"
                   "Connection: close\r\n\r\n",
                   t->path, strchr(t->host, ':') ? "[" : "", t->host,
                   strchr(t->host, ':') ? "]" : "", t->port);
  if (n < 0 || (size_t)n >= sizeof req) {
    snprintf(why, cap, "request too long");
    close(fd);
    return -1;
  }
  size_t sent = 0;
  while (sent < (size_t)n) {
    ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
    if (w > 0) {
      sent += (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (probe_wait(fd, POLLOUT, deadline) != 1) {
        snprintf(why, cap, "timed out sending the request");
        close(fd);
        return -1;
      }
    } else {
      snprintf(why, cap, "send failed: %s", strerror(errno));
      close(fd);
      return -1;
    }
  }

  /* Only the status line matters: "HTTP/1.x SSS reason\r\n". */
  char buf[256];
  size_t got = 0;
  while (got < sizeof buf - 1 && memchr(buf, '\n', got) == NULL) {
    ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (r > 0) {
      got += (size_t)r;
    } else if (r == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (probe_wait(fd, POLLIN, deadline) != 1) {
        snprintf(why, cap, "timed out waiting for the answer");
        close(fd);
        return -1;
      }
    } else {
      snprintf(why, cap, "receive failed: %s", strerror(errno));
      close(fd);
      return -1;
    }
  }
  close(fd);
  buf[got] = '\0';
  if (got < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
      buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
      buf[11] < '0' || buf[11] > '9') {
    snprintf(why, cap, "not an HTTP answer");
    return -1;
  }
  return (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
}

int lsmi_probe_main(int argc, char **argv) {
  double timeout = PROBE_DEFAULT_TIMEOUT;
  const char *arg = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      probe_usage(stdout);
      return 0;
    }
    const char *val = NULL;
    if (strcmp(a, "--timeout") == 0 || strcmp(a, "-t") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "lsmi probe: %s needs a value\n", a);
        return 2;
      }
      val = argv[++i];
    } else if (strncmp(a, "--timeout=", 10) == 0) {
      val = a + 10;
    }
    if (val != NULL) {
      char *end = NULL;
      errno = 0;
      timeout = strtod(val, &end);
      if (errno != 0 || end == val || *end != '\0' || !(timeout > 0) ||
          timeout > 3600) {
        fprintf(stderr, "lsmi probe: --timeout wants seconds in (0, 3600]\n");
        return 2;
      }
      continue;
    }
    if (a[0] == '-' && a[1] != '\0') {
      fprintf(stderr, "lsmi probe: unknown option %s\n", a);
      probe_usage(stderr);
      return 2;
    }
    if (arg != NULL) {
      fprintf(stderr, "lsmi probe: one URL only\n");
      return 2;
    }
    arg = a;
  }

  probe_target_t t;
  memset(&t, 0, sizeof t);
  if (arg != NULL && arg[0] != '/') {
    if (probe_parse_url(&t, arg)) {
      fprintf(stderr, "lsmi probe: not an http://HOST[:PORT][/PATH] URL: %s\n",
              arg);
      return 2;
    }
  } else {
    const char *listen = getenv("LSMI_LISTEN");
    if (listen == NULL || listen[0] == '\0')
      listen = PROBE_DEFAULT_LISTEN;
    if (probe_from_listen(&t, listen)) {
      fprintf(stderr, "lsmi probe: cannot read LSMI_LISTEN=%s\n", listen);
      return 2;
    }
    const char *path = arg ? arg : PROBE_DEFAULT_PATH;
    if (probe_copy(t.path, sizeof t.path, path, strlen(path))) {
      fprintf(stderr, "lsmi probe: path too long\n");
      return 2;
    }
  }

  char why[512];
  int status = probe_get(&t, probe_now() + timeout, why, sizeof why);
  int v6 = strchr(t.host, ':') != NULL;
  char url[1400];
  snprintf(url, sizeof url, "http://%s%s%s:%s%s", v6 ? "[" : "", t.host,
           v6 ? "]" : "", t.port, t.path);
  if (status < 0) {
    fprintf(stderr, "lsmi probe: %s: %s\n", url, why);
    return 1;
  }
  printf("%s: HTTP %d\n", url, status);
  return status >= 200 && status < 300 ? 0 : 1;
}
