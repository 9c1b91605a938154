/*
 * durable.c — see durable.h.
 */
#include "durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lsmi_durable_dir_of(const char *path, char *buf, size_t len) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return snprintf(buf, len, ".") < (int)len ? 0 : -ENAMETOOLONG;
  if (slash == path)
    return snprintf(buf, len, "/") < (int)len ? 0 : -ENAMETOOLONG;
  size_t n = (size_t)(slash - path);
  if (n >= len)
    return -ENAMETOOLONG;
  memcpy(buf, path, n);
  buf[n] = '\0';
  return 0;
}

int lsmi_durable_begin(lsmi_durable_t *d, const char *tmpdir, const char *path,
                       mode_t mode) {
  d->fd = -1;
  d->f = NULL;
  d->tmp[0] = '\0';
  char dir[sizeof d->tmp];
  int rc = tmpdir ? (snprintf(dir, sizeof dir, "%s", tmpdir) < (int)sizeof dir
                         ? 0
                         : -ENAMETOOLONG)
                  : lsmi_durable_dir_of(path, dir, sizeof dir);
  if (rc)
    return rc;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  int n = snprintf(d->tmp, sizeof d->tmp, "%s/.%s.tmp.XXXXXX", dir, base);
  if (n < 0 || (size_t)n >= sizeof d->tmp) {
    d->tmp[0] = '\0';
    return -ENAMETOOLONG;
  }
  int fd = mkostemp(d->tmp, O_CLOEXEC);
  if (fd < 0) {
    rc = -errno;
    d->tmp[0] = '\0';
    return rc;
  }
  /* mkstemp makes 0600; the final file gets the mode asked for. */
  if (fchmod(fd, mode) != 0) {
    rc = -errno;
    close(fd);
    unlink(d->tmp);
    d->tmp[0] = '\0';
    return rc;
  }
  d->fd = fd;
  return 0;
}

int lsmi_durable_write(lsmi_durable_t *d, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(d->fd, c, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

FILE *lsmi_durable_file(lsmi_durable_t *d) {
  if (d->f == NULL && d->fd >= 0)
    d->f = fdopen(d->fd, "wb");
  return d->f;
}

/* Closes the temp file (its stream, if any); returns 0 or -errno of the
 * first failure of flush, fsync and close. */
static int finish(lsmi_durable_t *d, int sync) {
  int rc = 0;
  if (d->f) {
    if (fflush(d->f) != 0)
      rc = -errno;
    if (!rc && sync && fsync(d->fd) != 0)
      rc = -errno;
    if (fclose(d->f) != 0 && !rc)
      rc = -errno;
  } else if (d->fd >= 0) {
    if (sync && fsync(d->fd) != 0)
      rc = -errno;
    if (close(d->fd) != 0 && !rc)
      rc = -errno;
  }
  d->f = NULL;
  d->fd = -1;
  return rc;
}

int lsmi_durable_commit(lsmi_durable_t *d, const char *path) {
  if (d->fd < 0)
    return -EBADF;
  int rc = finish(d, 1);
  if (!rc && rename(d->tmp, path) != 0)
    rc = -errno;
  if (rc) {
    unlink(d->tmp);
    d->tmp[0] = '\0';
    return rc;
  }
  d->tmp[0] = '\0';
  char dir[sizeof d->tmp];
  rc = lsmi_durable_dir_of(path, dir, sizeof dir);
  return rc ? rc : lsmi_durable_sync_dir(dir);
}

void lsmi_durable_abort(lsmi_durable_t *d) {
  if (d->fd < 0 && d->f == NULL)
    return;
  finish(d, 0);
  if (d->tmp[0])
    unlink(d->tmp);
  d->tmp[0] = '\0';
}

int lsmi_durable_sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = fsync(fd) != 0 ? -errno : 0;
  close(fd);
  return rc;
}
