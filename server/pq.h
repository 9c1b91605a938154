/*
 * pq.h — libpq, opened by the cluster mode only, and the few helpers every
 * PostgreSQL statement of lsmi goes through (internal).
 *
 * Only `lsmi serve --store postgresql://…` talks to PostgreSQL, so the
 * library is opened at run time (common/dl.h, as server/mhd.c opens
 * libmicrohttpd) and no other command pays for loading it and the
 * Kerberos, LDAP and TLS libraries it brings. Then:
 *
 *   - lsmi_pq_conn_t is one connection that knows how to come back: a call
 *     that finds it broken reconnects first (at most once a second, so
 *     that a database that is down answers fast), and the first statement
 *     after lsmi_pq_conn_begin is retried once on a fresh connection when
 *     the old one turns out to be dead (a restarted server, a terminated
 *     backend). That retry is safe because every writer in lsmi opens with
 *     BEGIN (not yet anything done) or is a single statement that may run
 *     twice (a lease renewal; a claim, whose only risk is a member claimed
 *     and forgotten, which its lease returns to the queue).
 *   - lsmi_pq_run runs one statement with parameters and says how it went
 *     in lsmi's statuses: 0; LSMI_ERR_UNAVAILABLE when the server cannot be
 *     reached or the connection was lost (the daemon answers 503 with
 *     Retry-After); LSMI_ERR_CONFLICT for a unique violation; LSMI_ERR_BUSY
 *     for a serialization failure or a deadlock (try again); LSMI_ERR_IO
 *     for anything else, logged as a "store_error" line with the SQL.
 *
 * A connection is used by one thread at a time (pgstore.c's pool hands
 * them out); the table itself is safe from any thread.
 */
#ifndef LSMI_PQ_H
#define LSMI_PQ_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsmi.h"

/* The entry points lsmi uses, with the library's own prototypes. */
typedef struct lsmi_pq {
  __typeof__(PQconninfoParse) *conninfo_parse;
  __typeof__(PQconninfoFree) *conninfo_free;
  __typeof__(PQconnectdbParams) *connectdb_params;
  __typeof__(PQsetNoticeProcessor) *set_notice_processor;
  __typeof__(PQfinish) *finish;
  __typeof__(PQreset) *reset;
  __typeof__(PQstatus) *status;
  __typeof__(PQerrorMessage) *error_message;
  __typeof__(PQsocket) *socket;
  __typeof__(PQbackendPID) *backend_pid;
  __typeof__(PQexec) *exec;
  __typeof__(PQexecParams) *exec_params;
  __typeof__(PQresultStatus) *result_status;
  __typeof__(PQresultErrorField) *result_error_field;
  __typeof__(PQresultErrorMessage) *result_error_message;
  __typeof__(PQntuples) *ntuples;
  __typeof__(PQgetvalue) *getvalue;
  __typeof__(PQgetlength) *getlength;
  __typeof__(PQgetisnull) *getisnull;
  __typeof__(PQclear) *clear;
  __typeof__(PQconsumeInput) *consume_input;
  __typeof__(PQnotifies) *notifies;
  __typeof__(PQfreemem) *freemem;
} lsmi_pq_t;

/*
 * The library (LSMI_PQ_SONAME, by default "libpq.so.5", Debian's libpq5),
 * opened on the first call; NULL if it cannot be opened or lacks an entry
 * point, and lsmi_pq_error() says why. Safe from any thread; the library
 * stays loaded until exit.
 */
const lsmi_pq_t *lsmi_pq(void);
const char *lsmi_pq_error(void);

/*
 * Whether dsn is a connection string libpq can parse (a postgresql:// URI
 * or key=value pairs): 0, LSMI_ERR_INVALID with err saying why (field
 * "store"), or LSMI_ERR_UNSUPPORTED when libpq cannot be loaded.
 */
int lsmi_pq_check_dsn(const char *dsn, lsmi_error_t *err);

/* ---- a connection ---- */

typedef struct lsmi_pq_conn {
  PGconn *pg;      /* never NULL once made; may be CONNECTION_BAD */
  bool fresh;      /* no statement yet since lsmi_pq_conn_begin */
  double retry_at; /* monotonic seconds: no reconnect before */
} lsmi_pq_conn_t;

/*
 * Connects to dsn, naming the session app_name (borrowed; NULL: "lsmi") in
 * pg_stat_activity. *out (taken; lsmi_pq_conn_close) is made even when the
 * server does not answer, and later calls reconnect it: then the status is
 * LSMI_ERR_UNAVAILABLE with err saying why. LSMI_ERR_UNSUPPORTED when
 * libpq cannot be loaded, LSMI_ERR_INVALID for a malformed dsn,
 * LSMI_ERR_NOMEM (*out NULL for those three).
 */
int lsmi_pq_conn_open(const char *dsn, const char *app_name,
                      lsmi_pq_conn_t **out, lsmi_error_t *err);
/* NULL is a no-op. */
void lsmi_pq_conn_close(lsmi_pq_conn_t *c);
/*
 * Before a call's first statement: reconnects a connection known to be
 * broken (unless the last attempt was under a second ago) and arms the
 * one retry of the first statement. 0 or LSMI_ERR_UNAVAILABLE.
 */
int lsmi_pq_conn_begin(lsmi_pq_conn_t *c);
/* The server process of the session (for logs and tests); 0 when broken. */
int lsmi_pq_conn_pid(const lsmi_pq_conn_t *c);

/* ---- statements ---- */

#define LSMI_PQ_MAX_PARAMS 24 /* a dataset's row and its blob: 18 */

/*
 * A statement's parameters ($1, $2, … in the order they are added): text,
 * or raw bytes for a bytea. Start from LSMI_PQ_PARAMS_INIT. Strings and
 * bytes are borrowed until the statement has run; numbers are copied into
 * the struct (so it is not to be copied once filled).
 */
typedef struct lsmi_pq_params {
  int n;
  const char *values[LSMI_PQ_MAX_PARAMS];
  int lengths[LSMI_PQ_MAX_PARAMS];
  int formats[LSMI_PQ_MAX_PARAMS];
  char num[LSMI_PQ_MAX_PARAMS][32];
} lsmi_pq_params_t;
#define LSMI_PQ_PARAMS_INIT                                                    \
  { .n = 0 }

/* NULL is SQL NULL. */
void lsmi_pq_text(lsmi_pq_params_t *p, const char *s);
void lsmi_pq_int(lsmi_pq_params_t *p, int64_t v);
/* Exactly (17 significant digits). */
void lsmi_pq_double(lsmi_pq_params_t *p, double v);
void lsmi_pq_bytes(lsmi_pq_params_t *p, const void *b, size_t n);

/*
 * Runs sql (one statement; with p NULL and text results, several separated
 * by semicolons) with the parameters p (may be NULL). Results come as text,
 * or with binary true in binary (how a bytea is read without decoding).
 * *res (may be NULL: the result is dropped) receives the result on
 * success, taken by the caller (lsmi_pq()->clear); NULL on failure.
 * Returns 0 or a status as the top of this file says.
 */
int lsmi_pq_run(lsmi_pq_conn_t *c, const char *sql, const lsmi_pq_params_t *p,
                bool binary, PGresult **res);

/* Column col of row r of a text result: the text (NULL for SQL NULL);
 * as an integer or a double (0 for SQL NULL). */
const char *lsmi_pq_get(const PGresult *res, int r, int col);
int64_t lsmi_pq_get_int(const PGresult *res, int r, int col);
double lsmi_pq_get_double(const PGresult *res, int r, int col);

#endif
