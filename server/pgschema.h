/*
 * pgschema.h — the cluster mode's tables in PostgreSQL, and their migration
 * (internal).
 *
 * The schema is a list of numbered migrations (pgschema.c); the table
 * schema_version records those applied. Every node runs lsmi_pgschema_
 * migrate when it starts: under a session advisory lock, so that of nodes
 * starting together one migrates and the others wait and then find nothing
 * to do; each migration in its own transaction with its schema_version
 * row, so a crash leaves the schema at a version, never between two. A
 * database migrated by a newer lsmi (a version this one does not know) is
 * refused rather than used. The tables go to the first schema of the
 * session's search_path (a DSN's options=-csearch_path=lsmi keeps them
 * apart from another application's).
 */
#ifndef LSMI_PGSCHEMA_H
#define LSMI_PGSCHEMA_H

#include "lsmi.h"
#include "pq.h"

/* The newest schema version this lsmi knows. */
int lsmi_pgschema_latest(void);

/*
 * Brings c's database to lsmi_pgschema_latest(): 0, with *from (may be
 * NULL) the version found and *to (may be NULL) the version left;
 * LSMI_ERR_UNSUPPORTED when the database is newer than this lsmi;
 * LSMI_ERR_UNAVAILABLE or LSMI_ERR_IO from the server (err says which
 * migration). Safe to call from several nodes at once.
 */
int lsmi_pgschema_migrate(lsmi_pq_conn_t *c, int *from, int *to,
                          lsmi_error_t *err);

#endif
