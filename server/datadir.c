/*
 * datadir.c — the data directory's layout, lock and file accounting (see
 * datadir.h for the rule that nothing unknown is removed).
 *
 * The lock is flock(2) on DIR/lsmi.lock: the kernel releases it when the
 * process ends, however it ends, so a kill -9 never leaves a stale lock
 * (the pid written into the file is only for the message of whoever finds
 * it taken). It is taken before anything in DIR is touched, so a second
 * daemon neither sweeps the first one's tmp/ nor runs its jobs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "durable.h"
#include "resfile.h"

int lsmi_datadir_make(const char *dir, lsmi_error_t *err) {
  static const char *subdirs[] = {"", "/tmp", "/datasets", "/results"};
  char path[PATH_MAX];
  for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
    snprintf(path, sizeof path, "%s%s", dir, subdirs[i]);
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
      return lsmi_error_set(err, LSMI_ERR_IO, "data-dir",
                            "cannot create %s: %s", path, strerror(errno));
  }
  return LSMI_OK;
}

int lsmi_datadir_lock(const char *dir, int *fd, lsmi_error_t *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/lsmi.lock", dir);
  *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (*fd < 0)
    return lsmi_error_set(err, LSMI_ERR_IO, "data-dir", "cannot open %s: %s",
                          path, strerror(errno));
  if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(*fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\r\n")] = '\0';
    close(*fd);
    *fd = -1;
    if (e != EWOULDBLOCK)
      return lsmi_error_set(err, LSMI_ERR_IO, "data-dir", "cannot lock %s: %s",
                            path, strerror(e));
    return lsmi_error_set(err, LSMI_ERR_BUSY, "data-dir",
                          "the data directory %s is in use by another lsmi "
                          "process%s%s, which holds %s; stop it first, or "
                          "give this one another --data-dir",
                          dir, pid[0] ? ", pid " : "", pid, path);
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(*fd, 0) != 0 || pwrite(*fd, pid, (size_t)len, 0) != len) {
    /* The lock holds without the pid; only the message loses it. */
  }
  return LSMI_OK;
}

void lsmi_datadir_unlock(int fd) {
  if (fd >= 0)
    close(fd);
}

/* Removes the file a pending entry of kind "upload" or "delete" stands
 * for, datasets/ID: 0, or LSMI_ERR_IO. */
static int remove_dataset_file(const char *dir, const char *id) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/datasets/%s", dir, id);
  return unlink(path) == 0 || errno == ENOENT ? LSMI_OK : LSMI_ERR_IO;
}

/* Fsyncs DIR/sub (so that the removals in it persist). */
static void sync_sub(const char *dir, const char *sub) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, sub);
  lsmi_durable_sync_dir(path);
}

int lsmi_datadir_remove_job(const char *dir, lsmi_store_t *store,
                            const char *job) {
  lsmi_resfile_remove(dir, job);
  sync_sub(dir, "results");
  sync_sub(dir, "cache");
  return lsmi_store_pending_remove(store, "job", job);
}

int lsmi_datadir_remove_jobs(const char *dir, lsmi_store_t *store,
                             const lsmi_idlist_t *jobs) {
  if (jobs->n == 0)
    return LSMI_OK;
  for (size_t i = 0; i < jobs->n; i++)
    lsmi_resfile_remove(dir, jobs->ids[i]);
  sync_sub(dir, "results");
  sync_sub(dir, "cache");
  return lsmi_store_pending_remove_all(store, "job", jobs);
}

int lsmi_datadir_finish_pending(const char *dir, lsmi_store_t *store,
                                int *done) {
  lsmi_pending_t *items = NULL;
  size_t n = 0;
  if (done)
    *done = 0;
  int st = lsmi_store_pending_list(store, &items, &n);
  for (size_t i = 0; st == LSMI_OK && i < n; i++) {
    const lsmi_pending_t *p = &items[i];
    if (strcmp(p->kind, "job") == 0) {
      st = lsmi_datadir_remove_job(dir, store, p->id);
      if (st == LSMI_OK && done)
        (*done)++;
      continue;
    }
    lsmi_dataset_rec_t rec;
    /* An upload whose row was committed after all keeps its file (the
     * insert removes the entry in the same transaction, so this is a
     * belt to those braces). */
    int got = strcmp(p->kind, "upload") == 0
                  ? lsmi_store_dataset_get(store, NULL, p->id, &rec)
                  : LSMI_ERR_NOTFOUND;
    if (got == LSMI_ERR_NOTFOUND)
      st = remove_dataset_file(dir, p->id);
    else
      st = got;
    if (st == LSMI_OK)
      st = lsmi_store_pending_remove(store, p->kind, p->id);
    if (st == LSMI_OK && done)
      (*done)++;
  }
  if (st == LSMI_OK && n > 0)
    sync_sub(dir, "datasets");
  free(items);
  return st;
}

int lsmi_datadir_clean_cache(const char *dir, lsmi_store_t *store,
                             int *removed) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/cache", dir);
  int n = 0, st = LSMI_OK;
  DIR *d = opendir(path);
  struct dirent *e;
  while (d && st == LSMI_OK && (e = readdir(d))) {
    char job[64];
    int state;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
        lsmi_datadir_result_job(e->d_name, job))
      continue;
    st = lsmi_store_job_state(store, job, &state);
    if (st == LSMI_ERR_NOTFOUND) {
      st = LSMI_OK;
      n += unlinkat(dirfd(d), e->d_name, 0) == 0;
    }
  }
  if (d)
    closedir(d);
  if (removed)
    *removed = n;
  return st;
}

int lsmi_datadir_result_job(const char *name, char job[64]) {
  size_t k = strcspn(name, ".");
  if (k == 0 || k >= 64)
    return LSMI_ERR_INVALID;
  memcpy(job, name, k);
  job[k] = '\0';
  return LSMI_OK;
}

/* Notes one unknown file. */
static void note(lsmi_datadir_unknown_t *u, const char *sub, const char *name,
                 size_t *count) {
  (*count)++;
  if (u->nfirst < sizeof u->first / sizeof u->first[0])
    snprintf(u->first[u->nfirst++], sizeof u->first[0], "%s/%.100s", sub, name);
}

/* Whether the store knows entry `name` of sub: 0 it does, NOTFOUND it
 * does not, or the store's failure. */
static int known(lsmi_store_t *store, const char *sub, const char *name) {
  if (strcmp(sub, "datasets") == 0) {
    lsmi_dataset_rec_t rec;
    return strlen(name) < sizeof rec.id
               ? lsmi_store_dataset_get(store, NULL, name, &rec)
               : LSMI_ERR_NOTFOUND;
  }
  char job[64];
  int state;
  if (lsmi_datadir_result_job(name, job))
    return LSMI_ERR_NOTFOUND;
  return lsmi_store_job_state(store, job, &state);
}

static int scan_sub(const char *dir, const char *sub, lsmi_store_t *store,
                    lsmi_datadir_unknown_t *u, size_t *count,
                    lsmi_error_t *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, sub);
  DIR *d = opendir(path);
  if (d == NULL)
    return errno == ENOENT
               ? LSMI_OK
               : lsmi_error_set(err, LSMI_ERR_IO, "data-dir",
                                "cannot read %s: %s", path, strerror(errno));
  struct dirent *e;
  int st = LSMI_OK;
  while (st == LSMI_OK && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    st = known(store, sub, e->d_name);
    if (st == LSMI_ERR_NOTFOUND) {
      note(u, sub, e->d_name, count);
      st = LSMI_OK;
    }
  }
  closedir(d);
  if (st)
    lsmi_error_set(err, st, "data-dir",
                   "could not compare the files of %s with the store", path);
  return st;
}

int lsmi_datadir_scan(const char *dir, lsmi_store_t *store,
                      lsmi_datadir_unknown_t *u, lsmi_error_t *err) {
  memset(u, 0, sizeof *u);
  int st = scan_sub(dir, "datasets", store, u, &u->datasets, err);
  if (st == LSMI_OK)
    st = scan_sub(dir, "results", store, u, &u->results, err);
  return st;
}

void lsmi_datadir_unknown_message(const char *dir,
                                  const lsmi_datadir_unknown_t *u,
                                  lsmi_error_t *err) {
  char names[600] = "";
  size_t len = 0;
  for (size_t i = 0; i < u->nfirst && len < sizeof names; i++)
    len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
                            i ? ", " : "", u->first[i]);
  lsmi_error_set(
      err, LSMI_ERR_CONFLICT, "data-dir",
      "the store %s/lsmi.db does not know %zu dataset file(s) and %zu result "
      "file(s) of its data directory (%s%s): it may have been lost, emptied "
      "or restored from an older backup. Nothing was removed. Put the right "
      "lsmi.db back, or rebuild the store from the files with `lsmi admin "
      "rebuild-store --data-dir %s` (see deploy/README.md)",
      dir, u->datasets, u->results, names,
      u->datasets + u->results > u->nfirst ? ", ..." : "", dir);
}

void lsmi_datadir_clean_tmp(const char *dir, int *removed) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/tmp", dir);
  int n = 0;
  DIR *d = opendir(path);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
          unlinkat(dirfd(d), e->d_name, 0) == 0)
        n++;
    closedir(d);
  }
  if (removed)
    *removed = n;
}
