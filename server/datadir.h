/*
 * datadir.h — the data directory of the daemon (internal to server/ and
 * the admin command): its layout, the lock that gives it to one process at
 * a time, and the start-up accounting of its files against the store.
 *
 *   DIR/lsmi.db       the store (SQLite; with -wal and -shm beside it)
 *   DIR/lsmi.lock     flock'ed by the process that uses DIR (holds its pid)
 *   DIR/tmp/          temp files of uploads and result writes
 *   DIR/datasets/ID   one uploaded file per dataset row
 *   DIR/results/JOB.* the result files of job JOB
 *   DIR/cache/JOB.*   cached orders of JOB's result columns (derived data)
 *   DIR/quarantine/   what `lsmi admin rebuild-store` could not re-register
 *
 * The rule: nothing in datasets/ or results/ is ever removed because the
 * store does not know it. Every file the daemon may leave behind is known
 * to the store: a dataset by its row, or by a pending entry while it is
 * being put in place or removed (store.h); a result file by its job's row,
 * or by a pending "job" entry while a deleted job's files are removed.
 * A file the store does not know means the store is not the one that wrote
 * the directory (lost, emptied, restored from an older backup): the daemon
 * refuses to start and says so; `lsmi admin rebuild-store` rebuilds the
 * store from the files.
 *
 * Every function returns 0 or a negative status of lsmi.h with err (may be
 * NULL) saying why.
 */
#ifndef LSMI_DATADIR_H
#define LSMI_DATADIR_H

#include <stddef.h>

#include "lsmi.h"
#include "store.h"

/* Creates DIR and its tmp/, datasets/ and results/ where missing. */
int lsmi_datadir_make(const char *dir, lsmi_error_t *err);

/*
 * Takes DIR/lsmi.lock (flock, exclusive, without waiting) and writes this
 * process's pid into it: 0 with *fd open (kept for the process's life;
 * lsmi_datadir_unlock releases it), or LSMI_ERR_BUSY naming the pid that
 * holds it.
 */
int lsmi_datadir_lock(const char *dir, int *fd, lsmi_error_t *err);
/* Releases the lock (closes fd); -1 is a no-op. */
void lsmi_datadir_unlock(int fd);

/* Finishes what the pending entries of the store describe: an upload that
 * was never acknowledged loses its file, a deleted dataset its file, a
 * deleted job its result files and cached orders; each entry goes once its
 * files are gone. *done (may be NULL) receives how many. */
int lsmi_datadir_finish_pending(const char *dir, lsmi_store_t *store,
                                int *done);

/* Removes the result files and cached orders of job `job`, whose row is
 * gone with a pending "job" entry (lsmi_store_job_delete), makes the
 * removals durable, then removes the entry: 0, or the store's failure (the
 * entry stays, and the next start finishes it). Any thread. */
int lsmi_datadir_remove_job(const char *dir, lsmi_store_t *store,
                            const char *job);

/* The same for every job of jobs, with one sync of each directory and one
 * transaction of the store for all of them (a sweep of many jobs). */
int lsmi_datadir_remove_jobs(const char *dir, lsmi_store_t *store,
                             const lsmi_idlist_t *jobs);

/* Removes the cached orders (DIR/cache, derived data) of jobs the store
 * does not know; *removed (may be NULL) receives how many. 0, or the
 * store's failure. */
int lsmi_datadir_clean_cache(const char *dir, lsmi_store_t *store,
                             int *removed);

/* The files of datasets/ and results/ the store does not know. */
typedef struct lsmi_datadir_unknown {
  size_t datasets, results;
  char first[4][128]; /* up to four of their names, "datasets/ds_x" */
  size_t nfirst;
} lsmi_datadir_unknown_t;

/* Counts them (LSMI_ERR_IO when a directory cannot be read or the store
 * does not answer). */
int lsmi_datadir_scan(const char *dir, lsmi_store_t *store,
                      lsmi_datadir_unknown_t *u, lsmi_error_t *err);

/* A message for the operator about u (that the store may have been lost,
 * what was found, that nothing was removed, and what to do). */
void lsmi_datadir_unknown_message(const char *dir,
                                  const lsmi_datadir_unknown_t *u,
                                  lsmi_error_t *err);

/* Removes every entry of DIR/tmp (temp files of an interrupted run, never
 * acknowledged); *removed (may be NULL) receives how many. */
void lsmi_datadir_clean_tmp(const char *dir, int *removed);

/* Whether name is a result file of job `job` ("JOB" up to the first dot);
 * writes the job id into job (64 bytes). */
int lsmi_datadir_result_job(const char *name, char job[64]);

#endif
