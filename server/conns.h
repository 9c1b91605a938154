/*
 * conns.h — deadlines for the daemon's HTTP connections that libmicrohttpd
 * does not keep (internal to server/).
 *
 * libmicrohttpd's idle timeout (--connection-timeout) starts again with
 * every byte, so a client that sends one header line every 20 s holds its
 * connection, and its place under the connection limit, for ever. Here a
 * request's head must be complete within --header-timeout of the
 * connection's start (or of the end of its previous request), and its body
 * must average --min-body-rate bytes per second over each --header-timeout
 * window until it is complete; a connection past either deadline is
 * closed.
 *
 * A connection is tracked from libmicrohttpd's NOTIFY_CONNECTION STARTED
 * (lsmi_conns_open, whose entry becomes the connection's socket context)
 * to CLOSED (lsmi_conns_close); http.c tells each entry when its head is
 * in, how many body bytes came, when the whole request is in and when it
 * is done. A reaper thread looks once a second and shuts down (shutdown(2),
 * never close: libmicrohttpd owns the descriptor) the socket of a
 * connection past its deadline; libmicrohttpd then sees it fail and cleans
 * it up.
 *
 * Lock: conns.mu guards the list and every entry, a leaf held for a few
 * instructions. libmicrohttpd reports CLOSED before it closes the
 * descriptor, and lsmi_conns_close unlinks the entry under conns.mu, so the
 * reaper never shuts down a descriptor that has passed to another
 * connection. Every function takes a NULL entry as a no-op (the handler
 * tests have no connections).
 */
#ifndef LSMI_CONNS_H
#define LSMI_CONNS_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsmi_conns lsmi_conns_t;
typedef struct lsmi_conn lsmi_conn_t;

/* Starts the reaper: 0, LSMI_ERR_NOMEM or LSMI_ERR_THREAD. *out is taken
 * by the caller (lsmi_conns_destroy). */
int lsmi_conns_create(int header_timeout, uint64_t min_body_rate,
                      lsmi_conns_t **out);
/* Stops the reaper and frees what is left; after every connection was
 * closed (libmicrohttpd stopped). NULL is a no-op. */
void lsmi_conns_destroy(lsmi_conns_t *c);

/* A new connection on descriptor fd: its entry (NULL without memory, when
 * it simply goes untracked). */
lsmi_conn_t *lsmi_conns_open(lsmi_conns_t *c, int fd);
/* The connection is closing: unlinks and frees its entry. */
void lsmi_conns_close(lsmi_conn_t *e);

/* A request's head is in: from now on its body must keep the rate. */
void lsmi_conns_head(lsmi_conn_t *e);
/* n more bytes of body. */
void lsmi_conns_body(lsmi_conn_t *e, size_t n);
/* The request is in (its body complete), or was answered before its end:
 * no deadline while the daemon works on it (an upload's check may take a
 * while) and while the answer goes out (libmicrohttpd's idle timeout
 * applies). */
void lsmi_conns_received(lsmi_conn_t *e);
/* The request is complete: the connection waits for the next head. */
void lsmi_conns_done(lsmi_conn_t *e);

/* How many connections were closed for a late head, for a slow body. */
void lsmi_conns_reaped(lsmi_conns_t *c, uint64_t *head, uint64_t *body);

#endif
