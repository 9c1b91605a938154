/*
 * cmd_admin.c — `lsmi admin rebuild-store --data-dir DIR [--tenant NAME]
 * [--val-fraction F]`: rebuilds the daemon's store from the files of its
 * data directory, for when lsmi.db was lost, emptied or restored from an
 * older backup and the daemon refuses to start (server/datadir.h).
 *
 * Every dataset file the store does not know is read and checked as an
 * upload is (lsmi_dataset_read) and registered under its file name as id,
 * with its format, shape, classes and the SHA-256 of its bytes, for the
 * tenant given (the files do not say whose they were), read by the usual
 * names: the keys an upload named (?x1= and the others) are in no file
 * either, so a file only they read is quarantined, to be uploaded again
 * with them. What cannot be registered (unreadable, not a dataset id, the
 * same bytes as another dataset of the tenant) and the result files of
 * jobs the store does not know (a job's parameters and tenant are in no
 * file, so it cannot be brought back) are moved to DIR/quarantine/, never
 * removed. Each step is one transaction or one rename, so a run
 * interrupted at any point (kill -9 included) is finished by running it
 * again. The daemon must be stopped: the command takes the data
 * directory's lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "datadir.h"
#include "durable.h"
#include "lsmi_io.h"
#include "sha256.h"
#include "store.h"
#include "util.h"

static void admin_usage(FILE *out) {
  fprintf(out,
          "usage: lsmi admin rebuild-store --data-dir DIR [--tenant NAME]\n"
          "                                [--val-fraction F]\n"
          "\n"
          "Rebuilds the store DIR/lsmi.db from the files of the data\n"
          "directory, with the daemon stopped: every dataset file the store\n"
          "does not know is read, checked and registered (id = its file\n"
          "name); what cannot be, and result files of jobs the store does\n"
          "not know, are moved to DIR/quarantine/. Nothing is removed.\n"
          "Running it again finishes an interrupted run.\n"
          "\n"
          "--data-dir DIR     the daemon's data directory (required)\n"
          "--tenant NAME      the tenant the datasets are registered for\n"
          "                   [default]\n"
          "--val-fraction F   the val split of files without one, in\n"
          "                   (0, 0.9] [0.2]\n");
}

typedef struct rebuild {
  const char *dir, *tenant;
  double val_fraction;
  lsmi_store_t *store;
  int registered, quarantined, orphans;
} rebuild_t;

/* Whether name is an id the API can address (router.c's alphabet). */
static bool valid_id(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n >= 64)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* Moves DIR/sub/name to DIR/quarantine/sub/name (a free name beside it if
 * that one is taken) and says why: 0 or -errno. */
static int quarantine(rebuild_t *b, const char *sub, const char *name,
                      const char *why) {
  char qdir[PATH_MAX], src[PATH_MAX], dst[PATH_MAX + 16];
  snprintf(qdir, sizeof qdir, "%s/quarantine", b->dir);
  if (mkdir(qdir, 0750) != 0 && errno != EEXIST)
    return -errno;
  snprintf(qdir, sizeof qdir, "%s/quarantine/%s", b->dir, sub);
  if (mkdir(qdir, 0750) != 0 && errno != EEXIST)
    return -errno;
  if (snprintf(src, sizeof src, "%s/%s/%s", b->dir, sub, name) >=
          (int)sizeof src ||
      snprintf(dst, sizeof dst, "%s/%s", qdir, name) >= (int)sizeof dst)
    return -ENAMETOOLONG;
  for (int k = 1; access(dst, F_OK) == 0 && k < 1000; k++)
    if (snprintf(dst, sizeof dst, "%s/%s.%d", qdir, name, k) >= (int)sizeof dst)
      return -ENAMETOOLONG;
  if (rename(src, dst) != 0)
    return -errno;
  int rc = lsmi_durable_sync_dir(qdir);
  char from[PATH_MAX];
  snprintf(from, sizeof from, "%s/%s", b->dir, sub);
  if (rc == 0)
    rc = lsmi_durable_sync_dir(from);
  printf("quarantined %s/%s -> %s: %s\n", sub, name, dst, why);
  return rc;
}

/* The SHA-256 of a file's bytes as hex: 0 or -errno. */
static int file_sha256(const char *path, char hex[65]) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  lsmi_sha256_t s;
  lsmi_sha256_init(&s);
  static unsigned char buf[1 << 16];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    lsmi_sha256_update(&s, buf, (size_t)n);
  int rc = n < 0 ? -errno : 0;
  close(fd);
  unsigned char d[32];
  lsmi_sha256_final(&s, d);
  lsmi_util_hex(d, 32, hex);
  return rc;
}

/* Registers DIR/datasets/name, or quarantines it with the reason: 0, or a
 * status when neither could be done. */
static int register_dataset(rebuild_t *b, const char *name) {
  char path[PATH_MAX], why[600];
  snprintf(path, sizeof path, "%s/datasets/%s", b->dir, name);
  struct stat sb;
  if (!valid_id(name) || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    b->quarantined++;
    return quarantine(b, "datasets", name,
                      "not a dataset file (a regular file named by a dataset "
                      "id)")
               ? LSMI_ERR_IO
               : LSMI_OK;
  }
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_file_bytes = UINT64_MAX;
  lsmi_dataset_t *ds = NULL;
  lsmi_format_t fmt = LSMI_FORMAT_UNKNOWN;
  lsmi_error_t err = {0};
  int st = lsmi_dataset_read(path, &lim, b->val_fraction, 0, &ds, &fmt, &err);
  lsmi_dataset_rec_t rec = {0};
  if (st == LSMI_OK && file_sha256(path, rec.sha256) != 0)
    st = lsmi_error_set(&err, LSMI_ERR_IO, "", "cannot read it again");
  if (st) {
    snprintf(why, sizeof why, "not a dataset lsmi reads: %s", err.message);
    b->quarantined++;
    return quarantine(b, "datasets", name, why) ? LSMI_ERR_IO : LSMI_OK;
  }
  snprintf(rec.id, sizeof rec.id, "%s", name);
  snprintf(rec.tenant, sizeof rec.tenant, "%s", b->tenant);
  snprintf(rec.name, sizeof rec.name, "%s", name);
  snprintf(rec.format, sizeof rec.format, "%s", lsmi_format_name(fmt));
  rec.bytes = (uint64_t)sb.st_size;
  rec.classes = ds->classes;
  rec.n_train = ds->train.n;
  rec.n_val = ds->val.n;
  rec.d1 = ds->d1;
  rec.d2 = ds->d2;
  /* As an upload records it: 0 when the file has its own val split. */
  rec.val_fraction = ds->val_drawn ? b->val_fraction : 0;
  rec.created_at = (double)sb.st_mtime;
  lsmi_dataset_destroy(ds);
  lsmi_dataset_rec_t existing;
  bool existed = false;
  st = lsmi_store_dataset_insert(b->store, &rec, &existing, &existed);
  if (st)
    return st;
  if (existed) {
    snprintf(why, sizeof why, "the same bytes as dataset %s of tenant %s",
             existing.id, b->tenant);
    b->quarantined++;
    return quarantine(b, "datasets", name, why) ? LSMI_ERR_IO : LSMI_OK;
  }
  b->registered++;
  printf("registered datasets/%s: %s, %zu + %zu rows, d1 %zu, d2 %zu, "
         "%d classes, tenant %s\n",
         name, rec.format, (size_t)rec.n_train, (size_t)rec.n_val,
         (size_t)rec.d1, (size_t)rec.d2, rec.classes, rec.tenant);
  return LSMI_OK;
}

/* The names of DIR/sub the store does not know (malloc'd array of
 * malloc'd names): 0 or a status. */
static int unknown_names(rebuild_t *b, const char *sub, char ***names,
                         size_t *n) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", b->dir, sub);
  *names = NULL;
  *n = 0;
  DIR *d = opendir(path);
  if (d == NULL)
    return LSMI_ERR_IO;
  struct dirent *e;
  size_t cap = 0;
  int st = LSMI_OK;
  while (st == LSMI_OK && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    int got;
    if (!strcmp(sub, "datasets")) {
      lsmi_dataset_rec_t rec;
      got = strlen(e->d_name) < sizeof rec.id
                ? lsmi_store_dataset_get(b->store, NULL, e->d_name, &rec)
                : LSMI_ERR_NOTFOUND;
    } else {
      char job[64];
      int state;
      got = lsmi_datadir_result_job(e->d_name, job)
                ? LSMI_ERR_NOTFOUND
                : lsmi_store_job_state(b->store, job, &state);
    }
    if (got == LSMI_OK)
      continue;
    if (got != LSMI_ERR_NOTFOUND) {
      st = got;
      break;
    }
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      char **p = realloc(*names, cap * sizeof *p);
      if (p == NULL) {
        st = LSMI_ERR_NOMEM;
        break;
      }
      *names = p;
    }
    if (((*names)[*n] = strdup(e->d_name)) == NULL)
      st = LSMI_ERR_NOMEM;
    else
      (*n)++;
  }
  closedir(d);
  return st;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* The rebuild proper, on a locked directory with an open store. */
static int rebuild(rebuild_t *b) {
  int finished = 0;
  int st = lsmi_datadir_finish_pending(b->dir, b->store, &finished);
  if (finished)
    printf("finished %d pending upload(s) or deletion(s)\n", finished);
  char **names = NULL;
  size_t n = 0;
  if (st == LSMI_OK)
    st = unknown_names(b, "datasets", &names, &n);
  for (size_t i = 0; st == LSMI_OK && i < n; i++)
    st = register_dataset(b, names[i]);
  free_names(names, n);
  names = NULL;
  n = 0;
  if (st == LSMI_OK)
    st = unknown_names(b, "results", &names, &n);
  for (size_t i = 0; st == LSMI_OK && i < n; i++) {
    b->orphans++;
    if (quarantine(b, "results", names[i],
                   "a result file of a job the store does not know"))
      st = LSMI_ERR_IO;
  }
  free_names(names, n);
  return st;
}

int lsmi_admin_main(int argc, char **argv) {
  rebuild_t b = {NULL, "default", 0.2, NULL, 0, 0, 0};
  const char *sub = argc >= 2 ? argv[1] : NULL;
  if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"))) {
    admin_usage(stdout);
    return 0;
  }
  if (sub == NULL || strcmp(sub, "rebuild-store") != 0) {
    fprintf(stderr, "lsmi admin: unknown or missing command%s%s\n\n",
            sub ? " " : "", sub ? sub : "");
    admin_usage(stderr);
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      admin_usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "lsmi admin: %s needs a value (see --help)\n", a);
      return 2;
    }
    const char *v = argv[++i];
    char *end = NULL;
    if (!strcmp(a, "--data-dir")) {
      b.dir = v;
    } else if (!strcmp(a, "--tenant") && v[0] && strlen(v) < 64) {
      b.tenant = v;
    } else if (!strcmp(a, "--val-fraction") &&
               (b.val_fraction = strtod(v, &end), end != v && !*end) &&
               b.val_fraction > 0 && b.val_fraction <= 0.9) {
    } else {
      fprintf(stderr, "lsmi admin: bad option or value: %s %s (see --help)\n",
              a, v);
      return 2;
    }
  }
  if (b.dir == NULL) {
    fprintf(stderr, "lsmi admin rebuild-store: --data-dir is required\n");
    return 2;
  }
  struct stat sb;
  if (stat(b.dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "lsmi admin rebuild-store: %s is not a directory\n", b.dir);
    return 1;
  }
  lsmi_error_t err = {0};
  int lock = -1;
  int st = lsmi_datadir_make(b.dir, &err);
  if (st == LSMI_OK)
    st = lsmi_datadir_lock(b.dir, &lock, &err);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/lsmi.db", b.dir);
  if (st == LSMI_OK && lsmi_store_open(path, &b.store, &err) != LSMI_OK)
    st = lsmi_error_set(&err, LSMI_ERR_IO, "data-dir",
                        "%s; if it is damaged, move it aside (with its -wal "
                        "and -shm files; keep them, sqlite3's .recover may "
                        "save more) and run this again",
                        err.message);
  if (st == LSMI_OK) {
    st = rebuild(&b);
    if (st)
      lsmi_error_set(&err, st, "",
                     "the rebuild stopped: %s (run it again "
                     "once that is fixed)",
                     lsmi_status_message(st));
  }
  if (st == LSMI_OK)
    printf("rebuild-store: %d dataset(s) registered for tenant %s, %d "
           "file(s) quarantined, %d result file(s) of unknown jobs "
           "quarantined%s%s%s\n",
           b.registered, b.tenant, b.quarantined, b.orphans,
           b.quarantined + b.orphans ? " (in " : "",
           b.quarantined + b.orphans ? b.dir : "",
           b.quarantined + b.orphans ? "/quarantine)" : "");
  else
    fprintf(stderr, "lsmi admin rebuild-store: %s\n", err.message);
  lsmi_store_close(b.store);
  lsmi_datadir_unlock(lock);
  return st ? 1 : 0;
}
