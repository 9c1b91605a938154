/*
 * pq.c — libpq through dlopen, and lsmi's way of running a statement (see
 * pq.h).
 */
#include "pq.h"
#include "dl.h"
#include "util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LSMI_PQ_SONAME
#define LSMI_PQ_SONAME "libpq.so.5"
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static lsmi_pq_t lib;
static atomic_bool loaded;
static char load_error[256];

#define SYM(field, name)                                                       \
  { name, &l.field, sizeof l.field, false }

static void load(void) {
  lsmi_pq_t l = {0};
  const lsmi_dl_sym_t syms[] = {
      SYM(conninfo_parse, "PQconninfoParse"),
      SYM(conninfo_free, "PQconninfoFree"),
      SYM(connectdb_params, "PQconnectdbParams"),
      SYM(set_notice_processor, "PQsetNoticeProcessor"),
      SYM(finish, "PQfinish"),
      SYM(reset, "PQreset"),
      SYM(status, "PQstatus"),
      SYM(error_message, "PQerrorMessage"),
      SYM(socket, "PQsocket"),
      SYM(backend_pid, "PQbackendPID"),
      SYM(exec, "PQexec"),
      SYM(exec_params, "PQexecParams"),
      SYM(result_status, "PQresultStatus"),
      SYM(result_error_field, "PQresultErrorField"),
      SYM(result_error_message, "PQresultErrorMessage"),
      SYM(ntuples, "PQntuples"),
      SYM(getvalue, "PQgetvalue"),
      SYM(getlength, "PQgetlength"),
      SYM(getisnull, "PQgetisnull"),
      SYM(clear, "PQclear"),
      SYM(consume_input, "PQconsumeInput"),
      SYM(notifies, "PQnotifies"),
      SYM(freemem, "PQfreemem"),
  };
  if (!lsmi_dl_open(LSMI_PQ_SONAME, syms, sizeof syms / sizeof syms[0],
                    load_error, sizeof load_error))
    return;
  lib = l;
  atomic_store(&loaded, true);
}

const lsmi_pq_t *lsmi_pq(void) {
  pthread_once(&load_once, load);
  return atomic_load(&loaded) ? &lib : NULL;
}

const char *lsmi_pq_error(void) {
  return load_error[0] != '\0' ? load_error : "not loaded";
}

/* libpq's messages end with a newline, which a log line does not want. */
static void trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
    s[--n] = '\0';
}

static int unsupported(lsmi_error_t *err) {
  return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "store",
                        "cannot load libpq (install libpq5): %s",
                        lsmi_pq_error());
}

int lsmi_pq_check_dsn(const char *dsn, lsmi_error_t *err) {
  const lsmi_pq_t *L = lsmi_pq();
  if (L == NULL)
    return unsupported(err);
  char *why = NULL;
  PQconninfoOption *opts = L->conninfo_parse(dsn, &why);
  if (opts == NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", why ? why : "out of memory");
    trim(msg);
    L->freemem(why);
    return lsmi_error_set(err, LSMI_ERR_INVALID, "store",
                          "not a PostgreSQL connection string: %s", msg);
  }
  L->conninfo_free(opts);
  return LSMI_OK;
}

/* NOTICEs (a CREATE … IF NOT EXISTS that skipped, say) are for people at a
 * psql prompt; libpq would print them on stderr, among the JSON log. */
static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static void log_unavailable(const lsmi_pq_conn_t *c, const char *what) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s", lsmi_pq()->error_message(c->pg));
  trim(msg);
  lsmi_util_log("store_unavailable",
                json_pack("{s:s, s:s}", "what", what, "error", msg));
}

/* Reconnects (PQreset: the same parameters): 0, or LSMI_ERR_UNAVAILABLE
 * when the server does not answer or the last attempt was under a second
 * ago. */
static int reconnect(lsmi_pq_conn_t *c) {
  const lsmi_pq_t *L = lsmi_pq();
  double now = lsmi_util_mono();
  if (now < c->retry_at)
    return LSMI_ERR_UNAVAILABLE;
  L->reset(c->pg);
  if (L->status(c->pg) == CONNECTION_OK) {
    c->retry_at = 0;
    return LSMI_OK;
  }
  c->retry_at = now + 1.0;
  log_unavailable(c, "reconnect");
  return LSMI_ERR_UNAVAILABLE;
}

int lsmi_pq_conn_open(const char *dsn, const char *app_name,
                      lsmi_pq_conn_t **out, lsmi_error_t *err) {
  *out = NULL;
  int rc = lsmi_pq_check_dsn(dsn, err);
  if (rc)
    return rc;
  const lsmi_pq_t *L = lsmi_pq();
  lsmi_pq_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  /* Our defaults first, then the DSN (expanded: its settings win), then
   * the session's name. A dead peer on TCP is found within seconds
   * (keepalives, tcp_user_timeout) instead of a system's minutes. */
  const char *keys[] = {"connect_timeout",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "tcp_user_timeout",
                        "dbname",
                        "application_name",
                        NULL};
  const char *vals[] = {"5", "1",     "10", "5",
                        "3", "15000", dsn,  app_name ? app_name : "lsmi",
                        NULL};
  c->pg = L->connectdb_params(keys, vals, 1);
  if (c->pg == NULL) {
    free(c);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  L->set_notice_processor(c->pg, quiet, NULL);
  *out = c;
  if (L->status(c->pg) != CONNECTION_OK) {
    c->retry_at = lsmi_util_mono() + 1.0;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", L->error_message(c->pg));
    trim(msg);
    return lsmi_error_set(err, LSMI_ERR_UNAVAILABLE, "store",
                          "cannot connect to PostgreSQL: %s", msg);
  }
  return LSMI_OK;
}

void lsmi_pq_conn_close(lsmi_pq_conn_t *c) {
  if (c == NULL)
    return;
  lsmi_pq()->finish(c->pg);
  free(c);
}

int lsmi_pq_conn_begin(lsmi_pq_conn_t *c) {
  c->fresh = true;
  if (lsmi_pq()->status(c->pg) == CONNECTION_OK)
    return LSMI_OK;
  return reconnect(c);
}

int lsmi_pq_conn_pid(const lsmi_pq_conn_t *c) {
  const lsmi_pq_t *L = lsmi_pq();
  return L->status(c->pg) == CONNECTION_OK ? L->backend_pid(c->pg) : 0;
}

/* The next parameter's index; more than the table holds is a bug. */
static int slot(lsmi_pq_params_t *p, const char *value, int format) {
  if (p->n >= LSMI_PQ_MAX_PARAMS)
    abort();
  int i = p->n++;
  p->values[i] = value;
  p->lengths[i] = 0;
  p->formats[i] = format;
  return i;
}

void lsmi_pq_text(lsmi_pq_params_t *p, const char *s) { slot(p, s, 0); }

void lsmi_pq_int(lsmi_pq_params_t *p, int64_t v) {
  int i = slot(p, NULL, 0);
  snprintf(p->num[i], sizeof p->num[i], "%" PRId64, v);
  p->values[i] = p->num[i];
}

void lsmi_pq_double(lsmi_pq_params_t *p, double v) {
  int i = slot(p, NULL, 0);
  snprintf(p->num[i], sizeof p->num[i], "%.17g", v);
  p->values[i] = p->num[i];
}

void lsmi_pq_bytes(lsmi_pq_params_t *p, const void *b, size_t n) {
  /* A zero-length binary value still needs a non-NULL pointer: NULL is
   * SQL NULL. */
  int i = slot(p, b ? (const char *)b : "", 1);
  p->lengths[i] = (int)n;
}

/* Whether a failed statement means the session is gone: libpq lost the
 * connection, or the server ended it (class 08, connection exception, but
 * for 08P01, a protocol violation such as a parameter too many: our bug;
 * 57P01-57P03: terminated by an administrator, crash, not yet accepting). */
static bool connection_lost(const lsmi_pq_conn_t *c, const char *state) {
  if (lsmi_pq()->status(c->pg) != CONNECTION_OK || state == NULL)
    return true;
  return (!strncmp(state, "08", 2) && strcmp(state, "08P01") != 0) ||
         !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
         !strcmp(state, "57P03");
}

/* The status of a statement's result r (NULL: libpq ran out of memory or
 * lost the connection); a failure is logged. */
static int classify(lsmi_pq_conn_t *c, const PGresult *r, const char *sql) {
  const lsmi_pq_t *L = lsmi_pq();
  ExecStatusType st = r ? L->result_status(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
    return LSMI_OK;
  const char *state = r ? L->result_error_field(r, PG_DIAG_SQLSTATE) : NULL;
  if (connection_lost(c, state)) {
    log_unavailable(c, "statement");
    return LSMI_ERR_UNAVAILABLE;
  }
  if (!strcmp(state, "23505"))
    return LSMI_ERR_CONFLICT; /* the caller expects it: not logged */
  char msg[512];
  snprintf(msg, sizeof msg, "%s", L->result_error_message(r));
  trim(msg);
  lsmi_util_log("store_error",
                json_pack("{s:s%, s:s, s:s}", "sql", sql,
                          (size_t)(strlen(sql) < 200 ? strlen(sql) : 200),
                          "sqlstate", state, "error", msg));
  if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
    return LSMI_ERR_BUSY;
  return LSMI_ERR_IO;
}

int lsmi_pq_run(lsmi_pq_conn_t *c, const char *sql, const lsmi_pq_params_t *p,
                bool binary, PGresult **res) {
  const lsmi_pq_t *L = lsmi_pq();
  if (res)
    *res = NULL;
  for (int attempt = 0;; attempt++) {
    PGresult *r;
    if (p == NULL && !binary)
      r = L->exec(c->pg, sql);
    else
      r = L->exec_params(c->pg, sql, p ? p->n : 0, NULL, p ? p->values : NULL,
                         p ? p->lengths : NULL, p ? p->formats : NULL,
                         binary ? 1 : 0);
    int rc = classify(c, r, sql);
    if (rc == LSMI_OK && res)
      *res = r;
    else
      L->clear(r);
    bool again = rc == LSMI_ERR_UNAVAILABLE && c->fresh && attempt == 0;
    c->fresh = false;
    if (again && reconnect(c) == LSMI_OK)
      continue;
    return rc;
  }
}

const char *lsmi_pq_get(const PGresult *res, int r, int col) {
  const lsmi_pq_t *L = lsmi_pq();
  return L->getisnull(res, r, col) ? NULL : L->getvalue(res, r, col);
}

int64_t lsmi_pq_get_int(const PGresult *res, int r, int col) {
  const char *t = lsmi_pq_get(res, r, col);
  return t ? strtoll(t, NULL, 10) : 0;
}

double lsmi_pq_get_double(const PGresult *res, int r, int col) {
  const char *t = lsmi_pq_get(res, r, col);
  return t ? strtod(t, NULL) : 0.0;
}
