/*
 * storepg.c — store.h's API on the cluster store (see storepg.h): the
 * database opened on first use, the local caches of its blobs, and each
 * store call's twin.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "storepg.h"
#include "util.h"

struct lsmi_storepg {
  char *dsn, *direct; /* direct: NULL when it is dsn */
  char node[64];
  char *data_dir;
  int connections;
  uint64_t cache_bytes;    /* the caches' bound; 0: none */
  pthread_mutex_t evict;   /* storepg.evict: one eviction at a time
                              (trylock: a second one is not needed) */
  _Atomic(lsmi_pg_t *) pg; /* NULL until the database has answered */
  pthread_mutex_t mu;      /* storepg.mu: one opening at a time */
  double next_try;         /* monotonic seconds; under storepg.mu */
  bool logged;             /* the database's absence was logged */
};

/* Opens the database (lsmi_pg_open migrates its schema): 0, or its
 * failure with err. Called under storepg.mu or before any other thread
 * knows sp. */
static int try_open(lsmi_storepg_t *sp, lsmi_error_t *err) {
  lsmi_pg_options_t o = {sp->dsn, sp->node, sp->connections, 0, sp->direct};
  lsmi_pg_t *pg = NULL;
  int rc = lsmi_pg_open(&o, &pg, err);
  if (rc == LSMI_OK) {
    atomic_store(&sp->pg, pg);
    lsmi_util_log("store_open", json_pack("{s:s, s:s}", "store", "postgresql",
                                          "node", sp->node));
  }
  return rc;
}

int lsmi_storepg_open(const lsmi_storepg_options_t *o, lsmi_storepg_t **out,
                      lsmi_error_t *err) {
  *out = NULL;
  lsmi_storepg_t *sp = calloc(1, sizeof *sp);
  if (sp == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  pthread_mutex_init(&sp->mu, NULL);
  pthread_mutex_init(&sp->evict, NULL);
  sp->cache_bytes = o->cache_bytes;
  atomic_init(&sp->pg, NULL);
  snprintf(sp->node, sizeof sp->node, "%s", o->node ? o->node : "");
  sp->connections = o->connections;
  sp->dsn = strdup(o->dsn);
  sp->data_dir = strdup(o->data_dir);
  bool direct = o->direct && o->direct[0];
  sp->direct = direct ? strdup(o->direct) : NULL;
  int rc = sp->dsn && sp->data_dir && (sp->direct || !direct) ? LSMI_OK
                                                              : LSMI_ERR_NOMEM;
  if (rc)
    lsmi_error_set(err, rc, "", "out of memory");
  else
    rc = try_open(sp, err);
  if (rc == LSMI_ERR_UNAVAILABLE) {
    /* Not now: the daemon starts, says it is not ready, and tries again. */
    lsmi_util_log("store_unavailable",
                  json_pack("{s:s, s:s}", "what", "open", "detail",
                            err ? err->message : ""));
    sp->logged = true;
    sp->next_try = lsmi_util_mono() + 1.0;
    rc = LSMI_OK;
  }
  if (rc) {
    lsmi_storepg_close(sp);
    return rc;
  }
  *out = sp;
  return LSMI_OK;
}

void lsmi_storepg_close(lsmi_storepg_t *sp) {
  if (sp == NULL)
    return;
  lsmi_pg_close(atomic_load(&sp->pg));
  pthread_mutex_destroy(&sp->mu);
  pthread_mutex_destroy(&sp->evict);
  free(sp->dsn);
  free(sp->direct);
  free(sp->data_dir);
  free(sp);
}

lsmi_pg_t *lsmi_storepg_pg(lsmi_storepg_t *sp) {
  lsmi_pg_t *pg = atomic_load(&sp->pg);
  if (pg || pthread_mutex_trylock(&sp->mu) != 0)
    return pg;
  double now = lsmi_util_mono();
  if (atomic_load(&sp->pg) == NULL && now >= sp->next_try) {
    lsmi_error_t err = {0};
    int rc = try_open(sp, &err);
    if (rc) {
      sp->next_try = now + 1.0;
      /* A database that stays away is said once; anything else always. */
      if (rc != LSMI_ERR_UNAVAILABLE || !sp->logged)
        lsmi_util_log("store_unavailable",
                      json_pack("{s:s, s:s, s:s}", "what", "open", "status",
                                lsmi_status_name(rc), "detail", err.message));
      sp->logged = true;
    }
  }
  pthread_mutex_unlock(&sp->mu);
  return atomic_load(&sp->pg);
}

const char *lsmi_storepg_node(const lsmi_storepg_t *sp) { return sp->node; }

/* ---- the caches ---- */

static int evict(lsmi_storepg_t *sp, lsmi_pg_t *pg, int *removed);

/* Materialises blob key as path unless the file is there; a file there
 * is marked used (its access time, the bound's LRU order; the modification
 * time stays, which resfile.c's checks key on). */
static int cached(lsmi_storepg_t *sp, const char *key, const char *path) {
  const struct timespec used[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  if (utimensat(AT_FDCWD, path, used, 0) == 0)
    return LSMI_OK;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  char tmpdir[PATH_MAX];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", sp->data_dir);
  int rc = lsmi_pg_blob_fetch(pg, key, path, tmpdir, NULL);
  if (rc == LSMI_OK && sp->cache_bytes)
    evict(sp, pg, NULL); /* a failure leaves the caches as they were */
  return rc;
}

int lsmi_storepg_dataset_file(lsmi_storepg_t *sp, const char *id, char *path) {
  char key[LSMI_PG_KEY_MAX];
  lsmi_pg_dataset_key(id, key);
  snprintf(path, PATH_MAX, "%s/datasets/%s", sp->data_dir, id);
  return cached(sp, key, path);
}

int lsmi_storepg_result_file(lsmi_storepg_t *sp, const char *job_id,
                             const char *split, char *path) {
  char key[LSMI_PG_KEY_MAX];
  lsmi_pg_result_key(job_id, split, key);
  /* resfile.h's name of the file. */
  snprintf(path, PATH_MAX, "%s/results/%s.%s", sp->data_dir, job_id, split);
  return cached(sp, key, path);
}

/* ---- the caches' sweep ---- */

/* A file of the caches. */
typedef struct cfile {
  char sub[16];  /* "datasets" or "results" */
  char name[80]; /* its name there */
  char id[64];   /* the dataset's or the job's id */
  char key[LSMI_PG_KEY_MAX]; /* its blob's key ("": none) */
  double used;   /* epoch seconds: its last use (atime or mtime) */
  uint64_t bytes;
} cfile_t;

typedef struct cfiles {
  cfile_t *v;
  size_t n, cap;
} cfiles_t;

/* Whether id can go into an array literal unquoted (every id lsmi makes
 * can: letters, digits, '_' and '-'). */
static bool plain_id(const char *id) {
  if (id[0] == '\0')
    return false;
  for (const char *c = id; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
      return false;
  return true;
}

/* Adds the regular files of data_dir/sub to *fs: 0, LSMI_ERR_NOMEM, or
 * LSMI_ERR_IO when the directory cannot be read. */
static int scan_cache(const char *data_dir, const char *sub, cfiles_t *fs) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", data_dir, sub);
  DIR *d = opendir(path);
  if (d == NULL)
    return errno == ENOENT ? LSMI_OK : LSMI_ERR_IO;
  int st = LSMI_OK;
  bool results = !strcmp(sub, "results");
  for (struct dirent *e; st == LSMI_OK && (e = readdir(d)) != NULL;) {
    struct stat sb;
    if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof fs->v->name ||
        fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(sb.st_mode))
      continue;
    cfile_t f = {.bytes = (uint64_t)sb.st_size};
    snprintf(f.sub, sizeof f.sub, "%s", sub);
    snprintf(f.name, sizeof f.name, "%s", e->d_name);
    if (results ? lsmi_datadir_result_job(e->d_name, f.id) != LSMI_OK
                : snprintf(f.id, sizeof f.id, "%s", e->d_name) < 0)
      continue;
    if (!plain_id(f.id))
      continue;
    const char *split = e->d_name + strlen(f.id);
    if (!results)
      lsmi_pg_dataset_key(f.id, f.key);
    else if (!strcmp(split, ".train") || !strcmp(split, ".val"))
      lsmi_pg_result_key(f.id, split + 1, f.key);
    double at = (double)sb.st_atim.tv_sec + (double)sb.st_atim.tv_nsec * 1e-9;
    double mt = (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec * 1e-9;
    f.used = at > mt ? at : mt;
    if (fs->n == fs->cap) {
      size_t cap = fs->cap ? 2 * fs->cap : 64;
      cfile_t *v = realloc(fs->v, cap * sizeof *v);
      if (v == NULL) {
        st = LSMI_ERR_NOMEM;
        break;
      }
      fs->v = v;
      fs->cap = cap;
    }
    fs->v[fs->n++] = f;
  }
  closedir(d);
  return st;
}

/* Marks the files of fs in `sub` last used before `before` whose dataset
 * (jobs false) or job (jobs true) the database no longer has: their id
 * emptied. 0 or the database's failure (nothing marked). */
static int mark_gone(lsmi_pg_t *pg, cfiles_t *fs, const char *sub, bool jobs,
                     double before) {
  lsmi_idlist_t ask = LSMI_IDLIST_INIT, gone = LSMI_IDLIST_INIT;
  int st = LSMI_OK;
  for (size_t i = 0; st == LSMI_OK && i < fs->n; i++)
    if (!strcmp(fs->v[i].sub, sub) && fs->v[i].used < before)
      st = lsmi_idlist_push(&ask, fs->v[i].id);
  if (st == LSMI_OK && ask.n)
    st = lsmi_pg_gone(pg, jobs, &ask, &gone);
  for (size_t k = 0; st == LSMI_OK && k < gone.n; k++)
    for (size_t i = 0; i < fs->n; i++)
      if (!strcmp(fs->v[i].sub, sub) && !strcmp(fs->v[i].id, gone.ids[k]))
        fs->v[i].id[0] = '\0';
  lsmi_idlist_free(&ask);
  lsmi_idlist_free(&gone);
  return st;
}

/* Least recently used first. */
static int by_use(const void *a, const void *b) {
  double x = ((const cfile_t *)a)->used, y = ((const cfile_t *)b)->used;
  return x < y ? -1 : x > y;
}

/* The bound (storepg.h): *removed (may be NULL) += the files removed. 0,
 * or a failure (nothing removed). */
static int evict(lsmi_storepg_t *sp, lsmi_pg_t *pg, int *removed) {
  if (sp->cache_bytes == 0 || pthread_mutex_trylock(&sp->evict) != 0)
    return LSMI_OK;
  cfiles_t fs = {0};
  int st = scan_cache(sp->data_dir, "datasets", &fs);
  if (st == LSMI_OK)
    st = scan_cache(sp->data_dir, "results", &fs);
  uint64_t total = 0;
  for (size_t i = 0; i < fs.n; i++)
    total += fs.v[i].bytes;
  /* The candidates, oldest first: those the database can give back. */
  lsmi_idlist_t ask = LSMI_IDLIST_INIT, have = LSMI_IDLIST_INIT;
  double before = lsmi_util_now() - LSMI_STOREPG_EVICT_GRACE;
  if (st == LSMI_OK && total > sp->cache_bytes) {
    qsort(fs.v, fs.n, sizeof *fs.v, by_use);
    for (size_t i = 0; st == LSMI_OK && i < fs.n; i++)
      if (fs.v[i].key[0] && fs.v[i].used < before)
        st = lsmi_idlist_push(&ask, fs.v[i].key);
    if (st == LSMI_OK && ask.n)
      st = lsmi_pg_blobs_exist(pg, &ask, &have);
  }
  int n = 0;
  for (size_t i = 0; st == LSMI_OK && i < fs.n && total > sp->cache_bytes;
       i++) {
    bool back = false;
    for (size_t k = 0; !back && k < have.n; k++)
      back = !strcmp(have.ids[k], fs.v[i].key);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/%s", sp->data_dir, fs.v[i].sub,
             fs.v[i].name);
    if (back && fs.v[i].used < before && unlink(path) == 0) {
      total -= fs.v[i].bytes;
      n++;
    }
  }
  pthread_mutex_unlock(&sp->evict);
  if (n)
    lsmi_util_log("cache_evict",
                  json_pack("{s:i, s:I, s:I}", "files_removed", n,
                            "cache_bytes", (json_int_t)total, "bound",
                            (json_int_t)sp->cache_bytes));
  lsmi_idlist_free(&ask);
  lsmi_idlist_free(&have);
  free(fs.v);
  if (removed)
    *removed += n;
  return st;
}

int lsmi_storepg_cache_bytes(lsmi_storepg_t *sp, uint64_t *datasets,
                             uint64_t *results) {
  *datasets = *results = 0;
  cfiles_t fs = {0};
  int st = scan_cache(sp->data_dir, "datasets", &fs);
  if (st == LSMI_OK)
    st = scan_cache(sp->data_dir, "results", &fs);
  for (size_t i = 0; st == LSMI_OK && i < fs.n; i++)
    *(strcmp(fs.v[i].sub, "results") ? datasets : results) += fs.v[i].bytes;
  free(fs.v);
  return st;
}

int lsmi_storepg_cache_sweep(lsmi_storepg_t *sp, int *removed) {
  if (removed)
    *removed = 0;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  cfiles_t fs = {0};
  int st = scan_cache(sp->data_dir, "datasets", &fs);
  if (st == LSMI_OK)
    st = scan_cache(sp->data_dir, "results", &fs);
  double before = lsmi_util_now() - LSMI_STOREPG_SWEEP_GRACE;
  if (st == LSMI_OK)
    st = mark_gone(pg, &fs, "datasets", false, before);
  if (st == LSMI_OK)
    st = mark_gone(pg, &fs, "results", true, before);
  int n = 0;
  for (size_t i = 0; st == LSMI_OK && i < fs.n; i++) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/%s", sp->data_dir, fs.v[i].sub,
             fs.v[i].name);
    if (fs.v[i].id[0] == '\0' && unlink(path) == 0)
      n++;
  }
  free(fs.v);
  if (st == LSMI_OK)
    st = evict(sp, pg, &n);
  if (removed)
    *removed = n;
  return st;
}

/* ---- store.h's calls ---- */

int lsmi_storepg_ping(lsmi_storepg_t *sp) {
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_ping(pg);
}

int lsmi_storepg_check(lsmi_storepg_t *sp, char *why, size_t size) {
  int rc = lsmi_storepg_ping(sp);
  if (size)
    snprintf(why, size, "%s",
             rc ? "the database (--store) does not answer" : "");
  return rc;
}

int lsmi_storepg_dataset_insert(lsmi_storepg_t *sp,
                                const lsmi_dataset_rec_t *rec,
                                lsmi_dataset_rec_t *existing, bool *existed) {
  *existed = false;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  /* The handler has put the upload in place as the cache's file: it is
   * published with the row. */
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/datasets/%s", sp->data_dir, rec->id);
  return lsmi_pg_dataset_insert(pg, rec, path, existing, existed);
}

int lsmi_storepg_dataset_get(lsmi_storepg_t *sp, const char *tenant,
                             const char *id, lsmi_dataset_rec_t *rec) {
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_dataset_get(pg, tenant, id, rec);
}

int lsmi_storepg_dataset_find_sha(lsmi_storepg_t *sp, const char *tenant,
                                  const char *sha256, lsmi_dataset_rec_t *rec) {
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_dataset_find_sha(pg, tenant, sha256, rec);
}

int lsmi_storepg_dataset_delete(lsmi_storepg_t *sp, const char *tenant,
                                const char *id, bool with_jobs,
                                lsmi_idlist_t *jobs) {
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_dataset_delete(pg, tenant, id, with_jobs ? jobs : NULL);
}

int lsmi_storepg_job_delete(lsmi_storepg_t *sp, const char *tenant,
                            const char *id, int *state) {
  if (state)
    *state = -1;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_job_delete(pg, tenant, id, state);
}

int lsmi_storepg_dataset_list(lsmi_storepg_t *sp, const char *tenant,
                              int64_t offset, int64_t limit, json_t **page,
                              int64_t *total) {
  *page = NULL;
  *total = 0;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_dataset_list(pg, tenant, offset, limit, page, total);
}

/* The units of work of a job: its params' ensemble (1 when absent), times
 * its folds with cross-fitting (every fold of every member a unit). */
static int members_of(const char *params_json) {
  json_t *p = json_loads(params_json, 0, NULL);
  json_int_t e = json_integer_value(json_object_get(p, "ensemble"));
  json_int_t f = json_integer_value(json_object_get(p, "folds"));
  json_decref(p);
  e = e >= 1 && e <= INT_MAX ? e : 1;
  return (int)(f >= 2 && f <= INT_MAX / e ? e * f : e);
}

int lsmi_storepg_job_create(lsmi_storepg_t *sp, const lsmi_job_new_t *job,
                            char *existing_id, bool *replayed) {
  *replayed = false;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_job_create(pg, job, members_of(job->params_json), existing_id,
                            replayed);
}

int lsmi_storepg_idem_check(lsmi_storepg_t *sp, const char *tenant,
                            const char *key, const char *req_hash,
                            char *existing_id, bool *replayed) {
  *replayed = false;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_idem_check(pg, tenant, key, req_hash, existing_id, replayed);
}

int lsmi_storepg_job_get(lsmi_storepg_t *sp, const char *tenant, const char *id,
                         json_t **job, int *state) {
  *job = NULL;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  int st = -1;
  int rc = lsmi_pg_job_get(pg, tenant, id, job, &st);
  if (state)
    *state = st;
  /* A succeeded job's results where the results handlers read them. A
   * failure here is logged; the handler that opens the file reports it. */
  static const char *const splits[] = {"train", "val"};
  for (int i = 0; rc == LSMI_OK && st == LSMI_JOB_SUCCEEDED && i < 2; i++) {
    char path[PATH_MAX];
    int fr = lsmi_storepg_result_file(sp, id, splits[i], path);
    if (fr)
      lsmi_util_log("results_error",
                    json_pack("{s:s, s:s, s:s, s:s}", "job", id, "split",
                              splits[i], "status", lsmi_status_name(fr),
                              "detail",
                              "could not materialise the result file from "
                              "the database"));
  }
  return rc;
}

int lsmi_storepg_job_list(lsmi_storepg_t *sp, const char *tenant, int state,
                          int64_t offset, int64_t limit, json_t **page,
                          int64_t *total) {
  *page = NULL;
  *total = 0;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_job_list(pg, tenant, state, offset, limit, page, total);
}

int lsmi_storepg_job_request_cancel(lsmi_storepg_t *sp, const char *id) {
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  /* The cluster's cancel is at once: the job ends cancelled, its units
   * too, and the nodes running them hear it. Already ended: NOTFOUND, as
   * the SQLite store says of a job that is neither queued nor running. */
  int rc = lsmi_pg_job_cancel(pg, NULL, id, lsmi_util_now(), NULL);
  return rc == LSMI_ERR_CONFLICT ? LSMI_ERR_NOTFOUND : rc;
}

int lsmi_storepg_job_state(lsmi_storepg_t *sp, const char *id, int *state) {
  *state = -1;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  json_t *job = NULL;
  int rc = lsmi_pg_job_get(pg, NULL, id, &job, state);
  json_decref(job);
  return rc;
}

int lsmi_storepg_job_cancel_queued(lsmi_storepg_t *sp, const char *id,
                                   double finished_at, bool running_too) {
  (void)running_too; /* the cluster's cancel stops running units too */
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  int rc = lsmi_pg_job_cancel(pg, NULL, id, finished_at, NULL);
  if (rc != LSMI_ERR_CONFLICT)
    return rc;
  /* Ended already: by the cancel that lsmi_storepg_job_request_cancel
   * made (then this one stands), or otherwise. */
  int state = -1;
  rc = lsmi_storepg_job_state(sp, id, &state);
  if (rc == LSMI_OK && state != LSMI_JOB_CANCELLED)
    rc = LSMI_ERR_NOTFOUND;
  return rc;
}

int lsmi_storepg_expire(lsmi_storepg_t *sp, double before, int limit,
                        lsmi_idlist_t *jobs, int *keys, bool *busy) {
  if (keys)
    *keys = 0;
  if (busy)
    *busy = false;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_expire(pg, before, limit, jobs, keys, busy);
}

int lsmi_storepg_tenant_bytes(lsmi_storepg_t *sp, const char *tenant,
                              uint64_t *bytes) {
  *bytes = 0;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_tenant_bytes(pg, tenant, bytes);
}

int lsmi_storepg_queued(lsmi_storepg_t *sp, const char *tenant, int64_t *all,
                        int64_t *mine) {
  *all = *mine = 0;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_queued(pg, tenant, all, mine);
}

int lsmi_storepg_counts(lsmi_storepg_t *sp, int64_t by_state[LSMI_JOB_STATES],
                        int64_t *datasets) {
  for (int i = 0; i < LSMI_JOB_STATES; i++)
    by_state[i] = 0;
  *datasets = 0;
  lsmi_pg_t *pg = lsmi_storepg_pg(sp);
  if (pg == NULL)
    return LSMI_ERR_UNAVAILABLE;
  return lsmi_pg_counts(pg, by_state, datasets);
}
