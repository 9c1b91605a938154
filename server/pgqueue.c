/*
 * pgqueue.c — the queue of work in PostgreSQL and its wake-ups (see
 * pgstore.h for the model: units of work, claims under leases, the
 * combination handed to the node that completes the last member).
 *
 * A claim is one statement: the next runnable member row is picked and
 * locked with FOR UPDATE SKIP LOCKED (two nodes claiming at once lock
 * different rows, never wait for each other's), then updated, its job
 * marked running and its tenant's turn recorded. "Runnable" is a queued
 * unit, or a running one whose lease is past (its node died or was cut
 * off); the units of a cancelled or failed job are cancelled with it, so
 * the unit's state is all a claim reads. The order is fair: an expired
 * lease first, then the tenant whose work was claimed longest ago
 * (round-robin), then its oldest job, then the lowest member. Both are
 * index probes (pgschema.c), whatever the length of the queue.
 *
 * Locks are taken in one order so that no two transactions deadlock:
 * units before their job, jobs before tenants; and a transaction that
 * locks several units of a job takes them in index order, the
 * combination's (-1) first (a completion, a failure, a cancel), while a
 * claim, which locks one unit, never waits for one (SKIP LOCKED). A unit's
 * claim is identified by (job, member, attempts, node):
 * once its lease was taken over, the old claim matches no row, and renew,
 * complete, fail and release answer LSMI_ERR_CONFLICT.
 *
 * Claims, renewals and completions commit without waiting for the WAL's
 * flush (synchronous_commit off for their transaction, ASYNC below): what
 * a crash of the server could lose of them is a unit claimed, renewed or
 * reported, which its lease then returns to the queue and another claim
 * runs again, with the same result. What a client was told stays
 * durable: datasets, jobs, idempotency keys, cancels, failures and a
 * job's end commit as usual.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgint.h"
#include "util.h"

/* A CTE that turns synchronous_commit off for the statement's own
 * transaction (set_config's is_local), when the statement reads it. */
#define ASYNC "q AS (SELECT set_config('synchronous_commit', 'off', true))"

void lsmi_pg_claim_clear(lsmi_pg_claim_t *c) {
  free(c->params_json);
  c->params_json = NULL;
}

int lsmi_pg_claim(lsmi_pg_t *pg, double lease_seconds, lsmi_pg_claim_t *c) {
  lsmi_pg_claim_clear(c);
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, pg->node);
  lsmi_pq_double(&p, lease_seconds);
  lsmi_pq_double(&p, lsmi_util_now());
  PGresult *res = NULL;
  int rc = lsmi_pg__query(
      pg, NULL,
      /* An expired lease first (its work is the oldest), else the head
       * of the queue of the tenant whose turn it is: tenants in turn
       * order, each probed for its oldest queued unit, until one has. */
      "WITH " ASYNC ", c AS ("
      " SELECT * FROM (SELECT job_id, idx FROM members"
      "  WHERE state = 'running' AND lease_until < now()"
      "  ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED) e"
      " UNION ALL"
      " SELECT * FROM (SELECT q.job_id, q.idx FROM tenants t CROSS JOIN"
      "  LATERAL (SELECT job_id, idx FROM members m"
      "   WHERE m.tenant = t.tenant AND m.state = 'queued'"
      "   ORDER BY m.job_seq, m.idx LIMIT 1 FOR UPDATE SKIP LOCKED) q"
      "  ORDER BY t.last_claim, t.tenant LIMIT 1) f"
      " LIMIT 1),"
      "u AS ("
      " UPDATE members m SET state = 'running', node = $1,"
      "  attempts = m.attempts + 1,"
      "  lease_until = now() + make_interval(secs => $2::float8),"
      "  started_at = $3, progress = NULL, fraction = 0"
      " FROM c WHERE m.job_id = c.job_id AND m.idx = c.idx"
      " RETURNING m.job_id, m.idx, m.attempts),"
      "j AS ("
      " UPDATE jobs SET state = 'running',"
      "  started_at = coalesce(jobs.started_at, $3),"
      "  attempts = greatest(jobs.attempts, u.attempts)"
      " FROM u WHERE jobs.id = u.job_id"
      " RETURNING jobs.id, jobs.tenant, jobs.dataset_id, jobs.params,"
      "  jobs.members),"
      "t AS ("
      " INSERT INTO tenants (tenant, last_claim)"
      " SELECT j.tenant, nextval('claim_seq') FROM j"
      " ON CONFLICT (tenant) DO UPDATE SET last_claim = excluded.last_claim)"
      "SELECT j.id, j.tenant, j.dataset_id, u.idx, j.members, u.attempts,"
      " j.params FROM j JOIN u ON u.job_id = j.id CROSS JOIN q",
      &p, false, LSMI_ERR_NOTFOUND, &res);
  if (rc == LSMI_OK) {
    snprintf(c->job_id, sizeof c->job_id, "%s", lsmi_pq_get(res, 0, 0));
    snprintf(c->tenant, sizeof c->tenant, "%s", lsmi_pq_get(res, 0, 1));
    snprintf(c->dataset_id, sizeof c->dataset_id, "%s", lsmi_pq_get(res, 0, 2));
    c->member = (int)lsmi_pq_get_int(res, 0, 3);
    c->members = (int)lsmi_pq_get_int(res, 0, 4);
    c->attempt = (int)lsmi_pq_get_int(res, 0, 5);
    c->params_json = strdup(lsmi_pq_get(res, 0, 6));
    if (c->params_json == NULL)
      rc = LSMI_ERR_NOMEM; /* the lease runs out and the unit returns */
  }
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

/* The claim's identity as $1 .. $4, the start of every statement on it. */
static void claim_params(lsmi_pq_params_t *p, const lsmi_pg_t *pg,
                         const lsmi_pg_claim_t *c) {
  lsmi_pq_text(p, c->job_id);
  lsmi_pq_int(p, c->member);
  lsmi_pq_int(p, c->attempt);
  lsmi_pq_text(p, pg->node);
}
#define CLAIM_IS                                                               \
  "job_id = $1 AND idx = $2 AND attempts = $3 AND node = $4 AND state = "      \
  "'running'"

int lsmi_pg_renew(lsmi_pg_t *pg, const lsmi_pg_claim_t *c, double lease_seconds,
                  const char *progress_json, double fraction) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  claim_params(&p, pg, c);
  lsmi_pq_double(&p, lease_seconds);
  lsmi_pq_text(&p, progress_json);
  if (progress_json)
    lsmi_pq_double(&p, fraction);
  else
    lsmi_pq_text(&p, NULL);
  PGresult *res = NULL;
  /* One statement, safe to run twice (pq.h's retry may). The job's
   * progress is the unit's last report (job_get averages the fraction). */
  int rc =
      lsmi_pg__one(pg,
                   "WITH " ASYNC ", m AS (UPDATE members SET"
                   " lease_until = now() + make_interval(secs => $5::float8),"
                   " progress = coalesce($6::json, progress),"
                   " fraction = coalesce($7::float8, fraction)"
                   " WHERE " CLAIM_IS " RETURNING job_id),"
                   "j AS (UPDATE jobs SET progress = $6::json FROM m"
                   " WHERE jobs.id = m.job_id AND $6::text IS NOT NULL"
                   " AND jobs.state = 'running')"
                   "SELECT count(*) FROM m CROSS JOIN q",
                   &p, false, &res);
  if (rc == LSMI_OK && lsmi_pq_get_int(res, 0, 0) == 0)
    rc = LSMI_ERR_CONFLICT;
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

/* Ends the unit of claim c as `state` ("done", "failed") in the caller's
 * transaction, storing data when it is not NULL: 0, or LSMI_ERR_CONFLICT
 * when the claim is over. */
static int end_unit(lsmi_pg_t *pg, lsmi_pq_conn_t *conn,
                    const lsmi_pg_claim_t *c, const char *state,
                    const void *data, size_t len) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  claim_params(&p, pg, c);
  lsmi_pq_text(&p, state);
  if (data)
    lsmi_pq_bytes(&p, data, len);
  else
    lsmi_pq_text(&p, NULL);
  lsmi_pq_double(&p, lsmi_util_now());
  return lsmi_pg__query(pg, conn,
                        "UPDATE members SET state = $5, data = coalesce($6, "
                        "data), lease_until = NULL, finished_at = $7, "
                        "fraction = 1 WHERE " CLAIM_IS " RETURNING 1",
                        &p, false, LSMI_ERR_CONFLICT, NULL);
}

/* Locks the units of job_id in index order (see the top of this file);
 * all of them, or with combination_only the combination's alone. */
static int lock_units(lsmi_pq_conn_t *conn, const char *job_id,
                      bool combination_only) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, job_id);
  return lsmi_pq_run(conn,
                     combination_only
                         ? "SELECT 1 FROM members WHERE job_id = $1 AND idx = "
                           "-1 FOR UPDATE"
                         : "SELECT 1 FROM members WHERE job_id = $1 ORDER BY "
                           "idx FOR UPDATE",
                     &p, false, NULL);
}

int lsmi_pg__end_job(lsmi_pq_conn_t *conn, const char *job_id, int state,
                     const char *error_json, double finished_at,
                     bool *claimed) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, job_id);
  /* node is set by a claim and cleared only by a release: the units that
   * were running (or whose node died) are those with one. */
  int rows = 0;
  int rc = lock_units(conn, job_id, false);
  if (rc == LSMI_OK)
    rc = lsmi_pg__count(conn,
                        "WITH u AS (UPDATE members SET state = 'cancelled', "
                        "lease_until = NULL WHERE job_id = $1 AND state IN "
                        "('waiting', 'queued', 'running') RETURNING node) "
                        "SELECT 1 FROM u WHERE node IS NOT NULL",
                        &p, &rows);
  if (claimed)
    *claimed = rows > 0;
  lsmi_pq_text(&p, lsmi_job_state_name(state));
  lsmi_pq_text(&p, error_json);
  lsmi_pq_double(&p, finished_at);
  if (rc == LSMI_OK)
    rc = lsmi_pg__query(NULL, conn,
                        "UPDATE jobs SET state = $2, error = $3::json, "
                        "finished_at = $4, cancel_requested = ($2 = "
                        "'cancelled') WHERE id = $1 AND state IN ('queued', "
                        "'running') RETURNING pg_notify('lsmi_cancel', id)",
                        &p, false, LSMI_ERR_CONFLICT, NULL);
  return rc;
}

typedef struct complete {
  const lsmi_pg_claim_t *c;
  const void *bytes;
  size_t len;
  double lease;
  int combine_attempt; /* > 0: this node now holds the combination */
} complete_t;

/* After member c is done: when no other member of the job is left, hands
 * the combination to this node. The combination's row, locked first,
 * orders the completions of one job: of two nodes completing the last two
 * members, the second sees the first's. */
static int complete_last(lsmi_pg_t *pg, lsmi_pq_conn_t *conn, complete_t *a) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, a->c->job_id);
  int rows = 0;
  /* LSMI_ERR_CONFLICT: cancelled, or failed by another member. */
  int rc = lsmi_pg__query(pg, conn,
                          "SELECT 1 FROM jobs WHERE id = $1 AND state = "
                          "'running'",
                          &p, false, LSMI_ERR_CONFLICT, NULL);
  if (rc == LSMI_OK)
    rc = lsmi_pg__count(conn,
                        "SELECT 1 FROM members WHERE job_id = $1 AND idx >= 0 "
                        "AND state <> 'done' LIMIT 1",
                        &p, &rows);
  if (rc || rows > 0)
    return rc;
  lsmi_pq_text(&p, pg->node);
  lsmi_pq_double(&p, a->lease);
  lsmi_pq_double(&p, lsmi_util_now());
  PGresult *res = NULL;
  rc = lsmi_pg__query(pg, conn,
                      "UPDATE members SET state = 'running', node = $2, "
                      "attempts = attempts + 1, lease_until = now() + "
                      "make_interval(secs => $3::float8), started_at = $4, "
                      "progress = NULL, fraction = 0 WHERE job_id = $1 AND "
                      "idx = -1 AND state = 'waiting' RETURNING attempts",
                      &p, false, LSMI_ERR_CONFLICT, &res);
  if (rc == LSMI_OK) {
    a->combine_attempt = (int)lsmi_pq_get_int(res, 0, 0);
    lsmi_pq()->clear(res);
  }
  return rc;
}

static int complete_body(lsmi_pg_t *pg, lsmi_pq_conn_t *conn, void *ctx) {
  complete_t *a = ctx;
  int rows = 0;
  int rc = lsmi_pg__count(conn, "WITH " ASYNC " SELECT * FROM q", NULL, &rows);
  if (rc == LSMI_OK)
    rc = lock_units(conn, a->c->job_id, true);
  /* A member of no bytes is stored as such, not as "unchanged". */
  if (rc == LSMI_OK)
    rc = end_unit(pg, conn, a->c, "done", a->bytes ? a->bytes : "", a->len);
  return rc ? rc : complete_last(pg, conn, a);
}

int lsmi_pg_member_complete(lsmi_pg_t *pg, lsmi_pg_claim_t *c,
                            const void *bytes, size_t len, double lease_seconds,
                            bool *combine) {
  *combine = false;
  if (c->member < 0)
    return LSMI_ERR_INVALID;
  complete_t a = {c, bytes, len, lease_seconds, 0};
  int rc = lsmi_pg__in_tx(pg, "BEGIN", complete_body, &a);
  if (rc == LSMI_OK && a.combine_attempt > 0) {
    *combine = true;
    c->member = LSMI_PG_COMBINE;
    c->attempt = a.combine_attempt;
  }
  return rc;
}

int lsmi_pg_member_load(lsmi_pg_t *pg, const char *job_id, int member,
                        void **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, job_id);
  lsmi_pq_int(&p, member);
  PGresult *res = NULL;
  int rc = lsmi_pg__query(pg, NULL,
                          "SELECT data FROM members WHERE job_id = $1 AND idx "
                          "= $2 AND state = 'done' AND data IS NOT NULL",
                          &p, true, LSMI_ERR_NOTFOUND, &res);
  if (rc)
    return rc;
  const lsmi_pq_t *L = lsmi_pq();
  size_t n = (size_t)L->getlength(res, 0, 0);
  *buf = malloc(n ? n : 1);
  if (*buf == NULL)
    rc = LSMI_ERR_NOMEM;
  else
    memcpy(*buf, L->getvalue(res, 0, 0), n);
  *len = *buf ? n : 0;
  L->clear(res);
  return rc;
}

typedef struct fail {
  const lsmi_pg_claim_t *c;
  const char *error_json;
  double finished_at;
} fail_t;

static int fail_body(lsmi_pg_t *pg, lsmi_pq_conn_t *conn, void *ctx) {
  const fail_t *a = ctx;
  int rc = lock_units(conn, a->c->job_id, false);
  if (rc == LSMI_OK)
    rc = end_unit(pg, conn, a->c, "failed", NULL, 0);
  return rc ? rc
            : lsmi_pg__end_job(conn, a->c->job_id, LSMI_JOB_FAILED,
                               a->error_json, a->finished_at, NULL);
}

int lsmi_pg_member_fail(lsmi_pg_t *pg, const lsmi_pg_claim_t *c,
                        const char *error_json, double finished_at) {
  fail_t a = {c, error_json, finished_at};
  return lsmi_pg__in_tx(pg, "BEGIN", fail_body, &a);
}

static int release_body(lsmi_pg_t *pg, lsmi_pq_conn_t *conn, void *ctx) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  claim_params(&p, pg, ctx);
  return lsmi_pg__query(pg, conn,
                        "UPDATE members SET state = 'queued', node = NULL, "
                        "lease_until = NULL, progress = NULL, fraction = 0 "
                        "WHERE " CLAIM_IS
                        " RETURNING pg_notify('lsmi_work', job_id)",
                        &p, false, LSMI_ERR_CONFLICT, NULL);
}

int lsmi_pg_member_release(lsmi_pg_t *pg, const lsmi_pg_claim_t *c) {
  return lsmi_pg__in_tx(pg, "BEGIN", release_body, (void *)c);
}

typedef struct finish {
  const lsmi_pg_claim_t *c;
  const lsmi_pg_finish_t *f;
} finish_t;

/* The job's row with its end; LSMI_ERR_CONFLICT when it is no longer
 * running (cancelled meanwhile). */
static int finish_job(lsmi_pq_conn_t *conn, const finish_t *a) {
  const lsmi_pg_finish_t *f = a->f;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, a->c->job_id);
  lsmi_pq_text(&p, lsmi_job_state_name(f->state));
  lsmi_pq_double(&p, f->finished_at);
  lsmi_pq_text(&p, f->error_json);
  lsmi_pq_text(&p, f->summary_json);
  lsmi_pq_text(&p, f->timings_json);
  lsmi_pq_text(&p, f->progress_json);
  return lsmi_pg__query(NULL, conn,
                        "UPDATE jobs SET state = $2, finished_at = $3, error "
                        "= $4::json, summary = $5::json, timings = $6::json, "
                        "progress = coalesce($7::json, progress) WHERE id = "
                        "$1 AND state = 'running' RETURNING 1",
                        &p, false, LSMI_ERR_CONFLICT, NULL);
}

static int finish_body(lsmi_pg_t *pg, lsmi_pq_conn_t *conn, void *ctx) {
  const finish_t *a = ctx;
  int rc = end_unit(pg, conn, a->c, "done", NULL, 0);
  /* The members' bytes have served: the result files hold what they
   * made. */
  lsmi_pq_params_t q = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&q, a->c->job_id);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(conn, "UPDATE members SET data = NULL WHERE job_id = $1",
                     &q, false, NULL);
  for (int i = 0; rc == LSMI_OK && i < a->f->nresults; i++) {
    char key[LSMI_PG_KEY_MAX];
    lsmi_pg_result_key(a->c->job_id, a->f->results[i].split, key);
    rc = lsmi_pg__blob_write(pg, conn, key, a->f->results[i].path);
  }
  return rc ? rc : finish_job(conn, a);
}

/* The job of one member ended by that member's claim: the member and the
 * combination (which had nothing to wait for) done and the job's row, in
 * one statement after the units are locked in index order; then the
 * result files. The member's bytes are never stored: until this commits,
 * its lease is what a dead node leaves behind, and the rerun gives the
 * same result. */
static int finish_whole_body(lsmi_pg_t *pg, lsmi_pq_conn_t *conn, void *ctx) {
  const finish_t *a = ctx;
  const lsmi_pg_finish_t *f = a->f;
  int rc = lock_units(conn, a->c->job_id, false);
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  claim_params(&p, pg, a->c);
  lsmi_pq_double(&p, f->finished_at);
  lsmi_pq_text(&p, lsmi_job_state_name(f->state));
  lsmi_pq_text(&p, f->error_json);
  lsmi_pq_text(&p, f->summary_json);
  lsmi_pq_text(&p, f->timings_json);
  lsmi_pq_text(&p, f->progress_json);
  if (rc == LSMI_OK)
    rc = lsmi_pg__query(
        NULL, conn,
        "WITH u AS (UPDATE members SET state = 'done', lease_until = NULL,"
        " finished_at = $5, fraction = 1 WHERE job_id = $1 AND ((idx = $2"
        " AND attempts = $3 AND node = $4 AND state = 'running') OR"
        " (idx = -1 AND state = 'waiting')) RETURNING idx)"
        "UPDATE jobs SET state = $6, finished_at = $5, error = $7::json,"
        " summary = $8::json, timings = $9::json,"
        " progress = coalesce($10::json, progress)"
        " WHERE id = $1 AND state = 'running' AND"
        " (SELECT count(*) FROM u) = 2 RETURNING 1",
        &p, false, LSMI_ERR_CONFLICT, NULL);
  for (int i = 0; rc == LSMI_OK && i < f->nresults; i++) {
    char key[LSMI_PG_KEY_MAX];
    lsmi_pg_result_key(a->c->job_id, f->results[i].split, key);
    rc = lsmi_pg__blob_write(pg, conn, key, f->results[i].path);
  }
  return rc;
}

int lsmi_pg_job_finish(lsmi_pg_t *pg, const lsmi_pg_claim_t *c,
                       const lsmi_pg_finish_t *f) {
  bool whole = c->members == 1 && c->member == 0;
  if ((c->member != LSMI_PG_COMBINE && !whole) ||
      (f->state != LSMI_JOB_SUCCEEDED && f->state != LSMI_JOB_FAILED))
    return LSMI_ERR_INVALID;
  finish_t a = {c, f};
  return lsmi_pg__in_tx(pg, "BEGIN", whole ? finish_whole_body : finish_body,
                        &a);
}

/* ---- wake-ups ---- */

struct lsmi_pg_listener {
  lsmi_pq_conn_t *c;
};

/* LISTENs on both channels (again, after a reconnection). */
static int listen_all(lsmi_pg_listener_t *l) {
  int rc = lsmi_pq_conn_begin(l->c);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(l->c, "LISTEN lsmi_work; LISTEN lsmi_cancel", NULL, false,
                     NULL);
  return rc;
}

int lsmi_pg_listen_open(lsmi_pg_t *pg, lsmi_pg_listener_t **out,
                        lsmi_error_t *err) {
  *out = NULL;
  lsmi_pg_listener_t *l = calloc(1, sizeof *l);
  if (l == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  char app[96];
  snprintf(app, sizeof app, "%s listener", pg->app);
  int rc = lsmi_pq_conn_open(pg->direct, app, &l->c, err);
  if (l->c == NULL) {
    free(l);
    return rc;
  }
  *out = l;
  if (rc == LSMI_OK && (rc = listen_all(l)) != LSMI_OK)
    lsmi_error_set(err, rc, "store", "cannot LISTEN: %s",
                   lsmi_status_message(rc));
  return rc;
}

void lsmi_pg_listen_close(lsmi_pg_listener_t *l) {
  if (l == NULL)
    return;
  lsmi_pq_conn_close(l->c);
  free(l);
}

int lsmi_pg_listen_fd(const lsmi_pg_listener_t *l) {
  const lsmi_pq_t *L = lsmi_pq();
  return L->status(l->c->pg) == CONNECTION_OK ? L->socket(l->c->pg) : -1;
}

int lsmi_pg_listen_reconnect(lsmi_pg_listener_t *l) { return listen_all(l); }

int lsmi_pg_listen_read(lsmi_pg_listener_t *l, lsmi_pg_event_t *ev, int max,
                        int *n) {
  const lsmi_pq_t *L = lsmi_pq();
  *n = 0;
  if (L->status(l->c->pg) != CONNECTION_OK || !L->consume_input(l->c->pg) ||
      L->status(l->c->pg) != CONNECTION_OK) {
    lsmi_util_log("store_unavailable", json_pack("{s:s}", "what", "listener"));
    return LSMI_ERR_UNAVAILABLE;
  }
  PGnotify *nt;
  while (*n < max && (nt = L->notifies(l->c->pg)) != NULL) {
    lsmi_pg_event_t *e = &ev[(*n)++];
    e->kind =
        !strcmp(nt->relname, "lsmi_cancel") ? LSMI_PG_CANCEL : LSMI_PG_WORK;
    snprintf(e->job_id, sizeof e->job_id, "%s", nt->extra);
    L->freemem(nt);
  }
  return LSMI_OK;
}

int lsmi_pg_listen_wait(lsmi_pg_listener_t *l, int timeout_ms,
                        lsmi_pg_event_t *ev, int max, int *n) {
  *n = 0;
  /* What an earlier read left in libpq's queue first. */
  int rc = lsmi_pg_listen_read(l, ev, max, n);
  if (rc || *n > 0)
    return rc;
  struct pollfd pfd = {.fd = lsmi_pg_listen_fd(l), .events = POLLIN};
  if (pfd.fd < 0)
    return LSMI_ERR_UNAVAILABLE;
  if (poll(&pfd, 1, timeout_ms) <= 0)
    return LSMI_OK;
  return lsmi_pg_listen_read(l, ev, max, n);
}
