/*
 * durable.h — a file that appears whole under its name, or not at all
 * (internal to lsmi; the one way every room writes such a file).
 *
 * The content goes to a fresh temp file (mkstemp: an unpredictable name,
 * created exclusively), which is fsynced, renamed over the final name, and
 * whose directory is fsynced so that the rename itself survives a crash. A
 * reader never sees a partial file; after a crash there is the old file or
 * the new one, and at worst a leftover temp file (named ".NAME.tmp.XXXXXX"
 * beside the final name, or in the temp directory the caller chose).
 *
 *     lsmi_durable_t d = LSMI_DURABLE_INIT;
 *     int rc = lsmi_durable_begin(&d, NULL, "out/rows.csv", 0644);
 *     if (rc == 0) rc = lsmi_durable_write(&d, buf, len);   (or fprintf to
 *                                                 lsmi_durable_file(&d))
 *     rc = rc ? (lsmi_durable_abort(&d), rc)
 *             : lsmi_durable_commit(&d, "out/rows.csv");
 *
 * Calls return 0 or a negative errno value (libuv's convention: the callers
 * turn it into their own status). A failed commit removes the temp file;
 * abort is a no-op on a struct that is not open, so it can always be called
 * on an error path.
 */
#ifndef LSMI_DURABLE_H
#define LSMI_DURABLE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct lsmi_durable {
  int fd;         /* the temp file; -1 when not open */
  FILE *f;        /* a stream on fd, once lsmi_durable_file made one */
  char tmp[4096]; /* its path */
} lsmi_durable_t;

/* A closed struct, on which abort is a no-op (a zeroed one is not: fd 0). */
#define LSMI_DURABLE_INIT {.fd = -1, .f = NULL, .tmp = ""}

/*
 * Creates the temp file with permissions `mode` in `tmpdir`, or beside
 * `path` when tmpdir is NULL (the rename must stay within one file system:
 * a tmpdir must be on the same one as path's directory). `path` names the
 * final file, or only gives the temp its name when the final name is not
 * known yet (it is passed again to commit). On failure d is left closed.
 */
int lsmi_durable_begin(lsmi_durable_t *d, const char *tmpdir, const char *path,
                       mode_t mode);

/* Writes all n bytes (retrying short writes and EINTR). */
int lsmi_durable_write(lsmi_durable_t *d, const void *p, size_t n);

/* A stdio stream on the temp file (made on the first call; NULL with errno
 * set if it cannot be). Owned by d: commit or abort closes it. */
FILE *lsmi_durable_file(lsmi_durable_t *d);

/*
 * Flushes and fsyncs the temp file, closes it, renames it to `path` and
 * fsyncs path's directory. On failure the temp file is removed and path is
 * untouched (unless the failure was the directory's fsync, after the
 * rename: then path holds the new content, which a crash may still undo).
 * d is closed either way.
 */
int lsmi_durable_commit(lsmi_durable_t *d, const char *path);

/* Closes and removes the temp file; a no-op when d is not open. */
void lsmi_durable_abort(lsmi_durable_t *d);

/* The directory part of path into buf ("." when there is none, "/" for a
 * name at the root): 0, or -ENAMETOOLONG. */
int lsmi_durable_dir_of(const char *path, char *buf, size_t len);

/* Fsyncs a directory, so that the names created or removed in it persist. */
int lsmi_durable_sync_dir(const char *dir);

#endif
