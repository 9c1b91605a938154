/*
 * pgschema.c — the migrations of the cluster store (see pgschema.h), and
 * what each table is for.
 *
 * A migration, once released, is never edited: a change is a new entry at
 * the end of the list, which every database still on an older version will
 * run once.
 */
#include "pgschema.h"

#include <stdio.h>

/*
 * Version 1, the cluster store.
 *
 * blobs, blob_chunks: files kept in the database (dataset uploads under
 *   the key "dataset/ID", result columns under "result/JOB/SPLIT"), in
 *   chunks of bytea rows (doc/cluster.md has the measurement against
 *   large objects). A blob is written in one transaction and replaced
 *   whole; bytes and sha256 let a reader check what it assembled. STORAGE
 *   EXTERNAL: out of line without compression, which costs CPU and saves
 *   little on float arrays and already-deflated .npz files.
 * datasets: the SQLite store's record (lsmi_dataset_rec_t), one per tenant
 *   and content; blob names its bytes (deferred: the row is written first,
 *   to claim the (tenant, sha256) slot before the bytes are sent).
 * jobs: the SQLite store's job record, and `members`, the number of units
 *   of work (the params' ensemble; since version 2 times the folds with
 *   cross-fitting); cancel_requested records a DELETE.
 * members: the units of work of a job, idx 0 .. members-1 (a member with
 *   its folds, or since version 2 with F >= 2 folds fold idx % F of
 *   member idx / F), and idx -1, the combination, which waits until the
 *   others are
 *   done. A claim sets node, lease_until (the server's clock, so nodes'
 *   clocks do not matter) and attempts + 1, which is the claim's token: a
 *   node whose lease was taken over can no longer renew or complete. data
 *   holds a done member or fold (lsmi_member_save) until the job's results are
 *   written; progress and fraction are the running member's. A unit's
 *   state alone says whether it is runnable (cancelling or failing a job
 *   cancels its units), and it carries its job's tenant and seq, so that
 *   a claim finds the next unit in two small indexes (members_queued in
 *   the fair order, members_leased for expired leases) without a join
 *   or a sort of the whole queue.
 * tenants: every tenant that ever queued work, and when its work was last
 *   claimed, for round-robin claims.
 * idempotency: Idempotency-Key of POST /v1/jobs, as in the SQLite store.
 */
static const char v1[] =
    "CREATE TABLE blobs ("
    " key text PRIMARY KEY,"
    " bytes bigint NOT NULL,"
    " sha256 text NOT NULL,"
    " chunk_bytes integer NOT NULL,"
    " chunks integer NOT NULL,"
    " created_at double precision NOT NULL);"
    "CREATE TABLE blob_chunks ("
    " key text NOT NULL REFERENCES blobs (key) ON DELETE CASCADE,"
    " seq integer NOT NULL,"
    " data bytea NOT NULL,"
    " PRIMARY KEY (key, seq));"
    "ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;"
    "CREATE TABLE datasets ("
    " seq bigserial NOT NULL,"
    " id text PRIMARY KEY,"
    " tenant text NOT NULL,"
    " name text NOT NULL,"
    " format text NOT NULL,"
    " sha256 text NOT NULL,"
    " bytes bigint NOT NULL,"
    " classes integer NOT NULL,"
    " n_train bigint NOT NULL,"
    " n_val bigint NOT NULL,"
    " d1 bigint NOT NULL,"
    " d2 bigint NOT NULL,"
    " val_fraction double precision NOT NULL,"
    " created_at double precision NOT NULL,"
    " blob text NOT NULL REFERENCES blobs (key) DEFERRABLE INITIALLY DEFERRED,"
    " UNIQUE (tenant, sha256));"
    "CREATE INDEX datasets_tenant ON datasets (tenant, seq);"
    "CREATE TABLE jobs ("
    " seq bigserial NOT NULL,"
    " id text PRIMARY KEY,"
    " tenant text NOT NULL,"
    " dataset_id text NOT NULL,"
    " state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded',"
    "  'failed', 'cancelled')),"
    " params json NOT NULL,"
    " progress json,"
    " members integer NOT NULL CHECK (members >= 1),"
    " created_at double precision NOT NULL,"
    " started_at double precision,"
    " finished_at double precision,"
    " error json,"
    " summary json,"
    " timings json,"
    " attempts integer NOT NULL DEFAULT 0,"
    " cancel_requested boolean NOT NULL DEFAULT false);"
    "CREATE INDEX jobs_tenant ON jobs (tenant, seq);"
    "CREATE INDEX jobs_state ON jobs (state);"
    "CREATE INDEX jobs_active_dataset ON jobs (dataset_id)"
    " WHERE state IN ('queued', 'running');"
    "CREATE TABLE members ("
    " job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    " idx integer NOT NULL CHECK (idx >= -1),"
    " tenant text NOT NULL,"
    " job_seq bigint NOT NULL,"
    " state text NOT NULL CHECK (state IN ('waiting', 'queued', 'running',"
    "  'done', 'failed', 'cancelled')),"
    " node text,"
    " lease_until timestamptz,"
    " attempts integer NOT NULL DEFAULT 0,"
    " data bytea,"
    " progress json,"
    " fraction double precision NOT NULL DEFAULT 0,"
    " started_at double precision,"
    " finished_at double precision,"
    " PRIMARY KEY (job_id, idx));"
    "ALTER TABLE members ALTER COLUMN data SET STORAGE EXTERNAL;"
    "CREATE INDEX members_queued ON members (tenant, job_seq, idx)"
    " WHERE state = 'queued';"
    "CREATE INDEX members_leased ON members (lease_until)"
    " WHERE state = 'running';"
    "CREATE TABLE tenants ("
    " tenant text PRIMARY KEY,"
    " last_claim bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX tenants_turn ON tenants (last_claim, tenant);"
    "CREATE SEQUENCE claim_seq;"
    "CREATE TABLE idempotency ("
    " tenant text NOT NULL,"
    " key text NOT NULL,"
    " request_hash text NOT NULL,"
    " job_id text NOT NULL,"
    " created_at double precision NOT NULL,"
    " PRIMARY KEY (tenant, key));";

/*
 * Version 2, cross-fitting folds as units of work: a job's `members`
 * counts every fold of every member (ensemble x folds, folds >= 2), so
 * that one member's folds run on several nodes. The tables do not change;
 * the version marks the meaning, so that a node of an older lsmi, which
 * would read the units as whole members, refuses the database at its
 * start. A job queued before keeps its unit count and runs as it did
 * (csched.c tells the two apart by the count).
 */
static const char v2[] =
    "COMMENT ON COLUMN jobs.members IS 'units of work: the ensemble members,"
    " times the folds with cross-fitting (every fold of every member a unit)';";

/*
 * Version 3, the keys of an upload (issue 17, the single node's issue 16):
 * which arrays (or CSV columns) of a dataset's file hold x1, x2, y and the
 * sample ids, "" for the usual names, as lsmi_dataset_rec_t's key_* and
 * the SQLite store's columns; a unit reads the file with them again.
 */
static const char v3[] =
    "ALTER TABLE datasets"
    " ADD COLUMN key_x1 text NOT NULL DEFAULT '',"
    " ADD COLUMN key_x2 text NOT NULL DEFAULT '',"
    " ADD COLUMN key_y text NOT NULL DEFAULT '',"
    " ADD COLUMN key_id text NOT NULL DEFAULT '';";

typedef struct migration {
  const char *description;
  const char *sql;
} migration_t;

/* Version i + 1 is migrations[i]. */
static const migration_t migrations[] = {
    {"the cluster store: blobs, datasets, jobs, members, tenants, "
     "idempotency keys",
     v1},
    {"cross-fitting folds as units of work: jobs.members is ensemble x folds",
     v2},
    {"the keys of an upload: key_x1, key_x2, key_y, key_id of datasets", v3},
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* The session-level advisory lock every node takes to migrate: any number
 * that no other application of the database uses ("lsmi" in ASCII). */
#define MIGRATE_LOCK "1819503977"

int lsmi_pgschema_latest(void) { return N_MIGRATIONS; }

/* Applies migration `version` (1-based) in its own transaction. */
static int apply(lsmi_pq_conn_t *c, int version, lsmi_error_t *err) {
  const migration_t *m = &migrations[version - 1];
  int rc = lsmi_pq_run(c, "BEGIN", NULL, false, NULL);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c, m->sql, NULL, false, NULL);
  if (rc == LSMI_OK) {
    lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
    lsmi_pq_int(&p, version);
    lsmi_pq_text(&p, m->description);
    rc = lsmi_pq_run(c,
                     "INSERT INTO schema_version (version, description) "
                     "VALUES ($1, $2)",
                     &p, false, NULL);
  }
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c, "COMMIT", NULL, false, NULL);
  else if (rc != LSMI_ERR_UNAVAILABLE)
    lsmi_pq_run(c, "ROLLBACK", NULL, false, NULL);
  if (rc)
    lsmi_error_set(err, rc, "store", "schema migration %d (%s) failed: %s",
                   version, m->description, lsmi_status_message(rc));
  return rc;
}

/* The version recorded, under the lock. */
static int current(lsmi_pq_conn_t *c, int *version) {
  PGresult *res = NULL;
  int rc = lsmi_pq_run(c,
                       "CREATE TABLE IF NOT EXISTS schema_version ("
                       " version integer PRIMARY KEY,"
                       " description text NOT NULL,"
                       " applied_at timestamptz NOT NULL DEFAULT now())",
                       NULL, false, NULL);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c, "SELECT coalesce(max(version), 0) FROM schema_version",
                     NULL, false, &res);
  if (rc == LSMI_OK)
    *version = (int)lsmi_pq_get_int(res, 0, 0);
  if (res)
    lsmi_pq()->clear(res);
  return rc;
}

int lsmi_pgschema_migrate(lsmi_pq_conn_t *c, int *from, int *to,
                          lsmi_error_t *err) {
  int found = 0, version = 0;
  int rc = lsmi_pq_conn_begin(c);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", NULL,
                     false, NULL);
  if (rc) {
    lsmi_error_set(err, rc, "store", "cannot lock the schema: %s",
                   lsmi_status_message(rc));
    goto out;
  }
  rc = current(c, &found);
  version = found;
  if (rc)
    lsmi_error_set(err, rc, "store", "cannot read the schema version: %s",
                   lsmi_status_message(rc));
  else if (found > N_MIGRATIONS)
    rc = lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "store",
                        "the database schema is version %d, newer than this "
                        "lsmi knows (%d): upgrade lsmi",
                        found, N_MIGRATIONS);
  while (rc == LSMI_OK && version < N_MIGRATIONS) {
    rc = apply(c, version + 1, err);
    if (rc == LSMI_OK)
      version++;
  }
  /* On a lost connection the server has released the lock already. */
  if (rc != LSMI_ERR_UNAVAILABLE)
    lsmi_pq_run(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", NULL, false,
                NULL);
out:
  if (from)
    *from = found;
  if (to)
    *to = version;
  return rc;
}
