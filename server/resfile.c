/*
 * resfile.c — result column files, their cached orders and their pages
 * (see resfile.h for the formats). The writer runs on a worker thread for
 * its own job; readers run on HTTP threads over files that no longer
 * change, through read-only mappings, so that a page touches only the rows
 * it prints.
 *
 * Locks: resfile.mu guards `verified`, the files whose checksum this
 * process has already checked; it is held for a table lookup or insert,
 * never while reading a file, and nothing else is taken under it.
 * resfile.build is held while an order is built (seconds, for millions of
 * rows), so that concurrent first requests build it once, one at a time,
 * rather than each sorting its own copy; it is taken before resfile.mu.
 *
 * The large scratch arrays (a sort's keys, a built order) are anonymous
 * mappings given back to the system when done: from malloc, a freed block
 * of several MiB would stay in the HTTP thread's arena.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "durable.h"
#include "resfile.h"

static const char magic1[8] = {'L', 'S', 'M', 'I', 'R', 'E', 'S', '1'};
static const char magic2[8] = {'L', 'S', 'M', 'I', 'R', 'E', 'S', '2'};
static const char magic[8] = {'L', 'S', 'M', 'I', 'R', 'E', 'S', '3'};
static const char magic_ord[8] = {'L', 'S', 'M', 'I', 'O', 'R', 'D', '1'};
static const char magic_crc[8] = {'L', 'S', 'M', 'I', 'C', 'R', 'C', '1'};
static const char *col_names[LSMI_COL_COUNT] = {
    "index", "y",  "r",  "u1",   "u2",    "s",     "i1",  "i2",
    "i12",   "h1", "h2", "r_sd", "u1_sd", "u2_sd", "s_sd"};

enum { N_PARTS = 9, N_SD = 4, N_MAX = N_PARTS + N_SD, TRAILER = 16 };
/* A walk gives back the pages it touched every DROP_ROWS rows: at most
 * 13 columns' pages per row stay mapped in between (a few MiB). */
enum { DROP_ROWS = 4096 };

const char *lsmi_resfile_col_name(lsmi_rescol_t col) {
  return (col >= 0 && col < LSMI_COL_COUNT) ? col_names[col] : "?";
}

int lsmi_resfile_col_parse(const char *name, size_t len, lsmi_rescol_t *col) {
  for (int k = 0; k < LSMI_COL_COUNT; k++)
    if (strlen(col_names[k]) == len && !strncmp(name, col_names[k], len)) {
      *col = (lsmi_rescol_t)k;
      return LSMI_OK;
    }
  return LSMI_ERR_INVALID;
}

/* Where the float64 columns of rows are, in file order. */
static void dcols(lsmi_rows_t *r, double **out[N_MAX]) {
  double **all[N_MAX] = {&r->r,     &r->u1,    &r->u2,  &r->s,  &r->i1,
                         &r->i2,    &r->i12,   &r->h1,  &r->h2, &r->r_sd,
                         &r->u1_sd, &r->u2_sd, &r->s_sd};
  memcpy(out, all, sizeof all);
}

/* 9 columns, or 13 with an ensemble's spread. */
static int ncols(const lsmi_rows_t *r) { return r->r_sd ? N_MAX : N_PARTS; }

static size_t y_bytes(size_t n) { return (n * 4 + 7) & ~(size_t)7; }

/* ---- writing ---- */

/* A durable file whose bytes are summed on the way (the trailer's CRC). */
typedef struct sealed {
  lsmi_durable_t d;
  uLong crc;
} sealed_t;

static int put(sealed_t *s, const void *p, size_t n) {
  const Bytef *b = p;
  for (size_t done = 0; done < n;) { /* crc32 takes an unsigned int */
    size_t k = n - done < (1u << 30) ? n - done : (1u << 30);
    s->crc = crc32(s->crc, b + done, (uInt)k);
    done += k;
  }
  return lsmi_durable_write(&s->d, p, n);
}

/* The trailer: the CRC of everything before it, and its magic. */
static int seal(sealed_t *s) {
  uint64_t crc = (uint64_t)s->crc;
  int rc = lsmi_durable_write(&s->d, &crc, sizeof crc);
  return rc ? rc : lsmi_durable_write(&s->d, magic_crc, sizeof magic_crc);
}

/* The columns of rows, in file order, to s. */
static int write_columns(sealed_t *s, const lsmi_rows_t *rows) {
  static const char zero[8] = {0};
  uint64_t head[2] = {rows->n, (uint64_t)ncols(rows)};
  size_t yb = y_bytes(rows->n);
  int rc = put(s, magic, sizeof magic);
  if (rc == 0)
    rc = put(s, head, sizeof head);
  if (rc == 0 && rows->n)
    rc = put(s, rows->y, rows->n * 4);
  if (rc == 0 && yb > rows->n * 4)
    rc = put(s, zero, yb - rows->n * 4);
  double **c[N_MAX];
  dcols((lsmi_rows_t *)rows, c);
  for (int k = 0; k < ncols(rows) && rc == 0 && rows->n; k++)
    rc = put(s, *c[k], rows->n * sizeof(double));
  return rc ? rc : seal(s);
}

int lsmi_resfile_write(const char *data_dir, const char *job_id,
                       const char *split, const lsmi_rows_t *rows,
                       lsmi_error_t *err) {
  char tmpdir[PATH_MAX], dst[PATH_MAX];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", data_dir);
  snprintf(dst, sizeof dst, "%s/results/%s.%s", data_dir, job_id, split);
  sealed_t s = {LSMI_DURABLE_INIT, crc32(0L, Z_NULL, 0)};
  int rc = lsmi_durable_begin(&s.d, tmpdir, dst, 0600);
  if (rc == 0)
    rc = write_columns(&s, rows);
  if (rc == 0)
    rc = lsmi_durable_commit(&s.d, dst);
  if (rc == 0)
    return LSMI_OK;
  lsmi_durable_abort(&s.d);
  return lsmi_error_set(err, LSMI_ERR_IO, "results",
                        "cannot write results %s: %s", dst, strerror(-rc));
}

/* ---- checking ---- */

typedef struct file_key {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
} file_key_t;

enum { VERIFIED_MAX = 128 };
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* resfile.mu */
static pthread_mutex_t build = PTHREAD_MUTEX_INITIALIZER; /* resfile.build */
static file_key_t verified[VERIFIED_MAX];
static int n_verified, next_verified;

static file_key_t key_of(const struct stat *sb) {
  file_key_t k;
  memset(&k, 0, sizeof k);
  k.dev = sb->st_dev;
  k.ino = sb->st_ino;
  k.size = sb->st_size;
  k.mtime = sb->st_mtim;
  return k;
}

static bool same_key(const file_key_t *a, const file_key_t *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec &&
         a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static bool was_verified(const file_key_t *k) {
  bool yes = false;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < n_verified && !yes; i++)
    yes = same_key(&verified[i], k);
  pthread_mutex_unlock(&mu);
  return yes;
}

static void remember_verified(const file_key_t *k) {
  pthread_mutex_lock(&mu);
  verified[next_verified] = *k;
  next_verified = (next_verified + 1) % VERIFIED_MAX;
  if (n_verified < VERIFIED_MAX)
    n_verified++;
  pthread_mutex_unlock(&mu);
}

/* Whether the trailer of fd (size bytes, the last TRAILER of them the
 * trailer) holds the CRC of the rest: read through a 1 MiB buffer, so a
 * check costs no memory that grows with the file. */
static bool check_sum(int fd, size_t size) {
  if (size < TRAILER)
    return false;
  char tail[TRAILER];
  if (pread(fd, tail, TRAILER, (off_t)(size - TRAILER)) != TRAILER ||
      memcmp(tail + 8, magic_crc, 8))
    return false;
  uint64_t want;
  memcpy(&want, tail, 8);
  enum { CHUNK = 1 << 20 };
  unsigned char *buf = malloc(CHUNK);
  if (buf == NULL)
    return false;
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t body = size - TRAILER, done = 0;
  while (done < body) {
    size_t k = body - done < CHUNK ? body - done : CHUNK;
    ssize_t got = pread(fd, buf, k, (off_t)done);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    crc = crc32(crc, buf, (uInt)got);
    done += (size_t)got;
  }
  free(buf);
  return done == body && (uint64_t)crc == want;
}

/* Maps fd (size bytes) read-only: the address, or NULL. */
static void *map_file(int fd, size_t size) {
  void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  return m == MAP_FAILED ? NULL : m;
}

/* ---- reading ---- */

/* The size a file of n rows with nc columns has, header hlen, trailer t. */
static uint64_t file_size(uint64_t n, uint64_t nc, size_t hlen, size_t t) {
  return hlen + y_bytes((size_t)n) + 8 * nc * n + t;
}

/* The split's own name, static ("train" or "val"), or NULL. */
static const char *split_name(const char *split) {
  if (!strcmp(split, "train"))
    return "train";
  if (!strcmp(split, "val"))
    return "val";
  return NULL;
}

/* Reads the head of fd into f's shape: n, columns, header length, whether
 * a trailer is there. 0 or LSMI_ERR_FORMAT. */
static int read_head(int fd, const struct stat *sb, uint64_t *n, uint64_t *nc,
                     size_t *hlen, bool *sealed_file) {
  char head[24];
  if (sb->st_size < 16 || pread(fd, head, 16, 0) != 16)
    return LSMI_ERR_FORMAT;
  memcpy(n, head + 8, 8);
  *nc = N_PARTS;
  *hlen = 16;
  *sealed_file = false;
  if (!memcmp(head, magic1, 8))
    ;
  else if (!memcmp(head, magic2, 8) || !memcmp(head, magic, 8)) {
    *sealed_file = !memcmp(head, magic, 8);
    *hlen = 24;
    if (pread(fd, head + 16, 8, 16) != 8)
      return LSMI_ERR_FORMAT;
    memcpy(nc, head + 16, 8);
  } else
    return LSMI_ERR_FORMAT;
  if ((*nc != N_PARTS && *nc != N_MAX) || *n > (uint64_t)UINT32_MAX ||
      (uint64_t)sb->st_size !=
          file_size(*n, *nc, *hlen, *sealed_file ? TRAILER : 0))
    return LSMI_ERR_FORMAT;
  return LSMI_OK;
}

int lsmi_resfile_open(const char *data_dir, const char *job_id,
                      const char *split, lsmi_resfile_t **out,
                      lsmi_error_t *err) {
  *out = NULL;
  const char *sp = split_name(split);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/results/%s.%s", data_dir, job_id, split);
  int fd = sp ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0)
    return lsmi_error_set(err, errno == ENOENT ? LSMI_ERR_NOTFOUND : LSMI_ERR_IO,
                          "results", "the %s results of job %s cannot be read",
                          split, job_id);
  struct stat sb;
  uint64_t n = 0, nc = 0;
  size_t hlen = 0;
  bool sealed_file = false;
  lsmi_resfile_t *f = NULL;
  int st = fstat(fd, &sb) ? LSMI_ERR_IO
                          : read_head(fd, &sb, &n, &nc, &hlen, &sealed_file);
  file_key_t key = key_of(&sb);
  if (st == LSMI_OK && sealed_file && !was_verified(&key)) {
    if (!check_sum(fd, (size_t)sb.st_size))
      st = LSMI_ERR_FORMAT;
    else
      remember_verified(&key);
  }
  if (st) {
    st = lsmi_error_set(err, st, "results",
                        "the %s results of job %s are damaged (%s); the job "
                        "must run again",
                        split, job_id,
                        sealed_file ? "checksum mismatch" : "wrong size");
    goto out;
  }
  f = calloc(1, sizeof *f);
  void *m = f ? map_file(fd, (size_t)sb.st_size) : NULL;
  if (m == NULL) {
    free(f);
    f = NULL;
    st = lsmi_error_set(err, LSMI_ERR_NOMEM, "results",
                        "cannot map the results of job %s", job_id);
    goto out;
  }
  f->map = m;
  f->map_len = (size_t)sb.st_size;
  f->split = sp;
  snprintf(f->job_id, sizeof f->job_id, "%s", job_id);
  f->data_dir = data_dir;
  f->rows.n = (size_t)n;
  f->rows.y = (int32_t *)(void *)((char *)m + hlen);
  double *d = (double *)(void *)((char *)m + hlen + y_bytes(f->rows.n));
  double **c[N_MAX];
  dcols(&f->rows, c);
  for (int k = 0; k < (int)nc; k++)
    *c[k] = d + (size_t)k * f->rows.n;
out:
  close(fd);
  *out = f;
  return st;
}

/* Gives back the pages of f's mapping (and of an order's) that the
 * process has touched: they stay in the page cache, but no longer count in
 * its memory, so a long walk over a large file keeps it flat. */
static void drop_pages(const lsmi_resfile_t *f, const uint32_t *order,
                       size_t order_len) {
  madvise(f->map, f->map_len, MADV_DONTNEED);
  if (order && order_len)
    madvise((char *)order - 16, order_len, MADV_DONTNEED);
}

void lsmi_resfile_close(lsmi_resfile_t *f) {
  if (f == NULL)
    return;
  munmap(f->map, f->map_len);
  free(f);
}

/* Removes the cached orders of job_id (names "<job>.*" in cache/). */
static void remove_orders(const char *data_dir, const char *job_id) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/cache", data_dir);
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  size_t len = strlen(job_id);
  struct dirent *e;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, job_id, len) && e->d_name[len] == '.')
      unlinkat(dirfd(d), e->d_name, 0);
  closedir(d);
}

void lsmi_resfile_remove(const char *data_dir, const char *job_id) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/results/%s.train", data_dir, job_id);
  unlink(path);
  snprintf(path, sizeof path, "%s/results/%s.val", data_dir, job_id);
  unlink(path);
  remove_orders(data_dir, job_id);
}

/* ---- values ---- */

double lsmi_resfile_value(const lsmi_rows_t *r, lsmi_rescol_t c, size_t i) {
  switch (c) {
  case LSMI_COL_INDEX:
    return (double)i;
  case LSMI_COL_Y:
    return (double)r->y[i];
  case LSMI_COL_R:
    return r->r[i];
  case LSMI_COL_U1:
    return r->u1[i];
  case LSMI_COL_U2:
    return r->u2[i];
  case LSMI_COL_S:
    return r->s[i];
  case LSMI_COL_I1:
    return r->i1[i];
  case LSMI_COL_I2:
    return r->i2[i];
  case LSMI_COL_I12:
    return r->i12[i];
  case LSMI_COL_H1:
    return r->h1[i];
  case LSMI_COL_H2:
    return r->h2[i];
  case LSMI_COL_R_SD:
    return r->r_sd[i];
  case LSMI_COL_U1_SD:
    return r->u1_sd[i];
  case LSMI_COL_U2_SD:
    return r->u2_sd[i];
  case LSMI_COL_S_SD:
    return r->s_sd[i];
  default:
    return 0.0;
  }
}

bool lsmi_resfile_has_col(const lsmi_rows_t *rows, lsmi_rescol_t col) {
  return col >= 0 && col < LSMI_COL_COUNT &&
         (col < LSMI_COL_R_SD || rows->r_sd != NULL);
}

/* ---- orders ---- */

typedef struct keyed {
  double v; /* the value, negated for a descending order */
  uint32_t i;
} keyed_t;

static bool before(const keyed_t *x, const keyed_t *y) {
  return x->v < y->v || (x->v == y->v && x->i < y->i);
}

static void swap_keyed(keyed_t *a, keyed_t *b) {
  keyed_t t = *a;
  *a = *b;
  *b = t;
}

/* Sorts k[0..n) in place by (v, i): a quicksort (median of three, the
 * smaller side first so the stack stays O(log n), insertion below 16).
 * Not qsort: glibc's takes a scratch copy of the array from malloc, which
 * would stay in the thread's arena. The keys are distinct (i is). */
static void sort_keyed(keyed_t *k, size_t n) {
  while (n > 16) {
    size_t mid = n / 2, last = n - 1;
    if (before(&k[mid], &k[0]))
      swap_keyed(&k[mid], &k[0]);
    if (before(&k[last], &k[0]))
      swap_keyed(&k[last], &k[0]);
    if (before(&k[last], &k[mid]))
      swap_keyed(&k[last], &k[mid]);
    keyed_t pivot = k[mid];
    size_t i = 0, j = last;
    for (;;) {
      while (before(&k[i], &pivot))
        i++;
      while (before(&pivot, &k[j]))
        j--;
      if (i >= j)
        break;
      swap_keyed(&k[i], &k[j]);
      i++;
      j--;
    }
    size_t left = j + 1; /* k[0..j] <= pivot <= k[j+1..n) */
    if (left < n - left) {
      sort_keyed(k, left);
      k += left;
      n -= left;
    } else {
      sort_keyed(k + left, n - left);
      n = left;
    }
  }
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && before(&k[j], &k[j - 1]); j--)
      swap_keyed(&k[j], &k[j - 1]);
}

/* An anonymous mapping of size bytes (see the top comment): NULL if none. */
static void *scratch(size_t size) {
  void *m = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? NULL : m;
}

/* The order of f by col into idx (n entries): the numbers sorted, ties by
 * index, then the NaNs by index. 0 or LSMI_ERR_NOMEM. */
static int sort_rows(const lsmi_resfile_t *f, lsmi_rescol_t col, bool desc,
                     uint32_t *idx) {
  size_t n = f->rows.n, m = 0, nan = 0;
  keyed_t *k = scratch(n * sizeof *k);
  if (k == NULL)
    return LSMI_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    double v = lsmi_resfile_value(&f->rows, col, i);
    if (isnan(v))
      nan++;
    else
      k[m++] = (keyed_t){desc ? -v : v, (uint32_t)i};
  }
  sort_keyed(k, m);
  for (size_t j = 0; j < m; j++)
    idx[j] = k[j].i;
  munmap(k, n ? n * sizeof *k : 1);
  for (size_t i = 0; i < n && nan; i++)
    if (isnan(lsmi_resfile_value(&f->rows, col, i)))
      idx[m++] = (uint32_t)i, nan--;
  return LSMI_OK;
}

static void order_path(const lsmi_resfile_t *f, lsmi_rescol_t col, bool desc,
                       char *path, size_t size) {
  snprintf(path, size, "%s/cache/%s.%s.%s.%s", f->data_dir, f->job_id,
           f->split, col_names[col], desc ? "desc" : "asc");
}

/* Maps a cached order of n rows: the array, or NULL when there is none
 * whole and sound (a damaged one is removed, to be built again). */
static const uint32_t *map_order(const char *path, size_t n, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat sb;
  char head[16];
  void *m = NULL;
  uint64_t got_n = 0;
  bool ok = fstat(fd, &sb) == 0 && pread(fd, head, 16, 0) == 16 &&
            !memcmp(head, magic_ord, 8);
  if (ok)
    memcpy(&got_n, head + 8, 8);
  ok = ok && got_n == n && (uint64_t)sb.st_size == 16 + 4 * (uint64_t)n + TRAILER;
  file_key_t key = key_of(&sb);
  if (ok && !was_verified(&key)) {
    ok = check_sum(fd, (size_t)sb.st_size);
    if (ok)
      remember_verified(&key);
  }
  if (ok)
    m = map_file(fd, (size_t)sb.st_size);
  else
    unlink(path);
  close(fd);
  if (m == NULL)
    return NULL;
  *len = (size_t)sb.st_size;
  return (const uint32_t *)(const void *)((const char *)m + 16);
}

/* Writes idx as the cached order at path (durably): 0 or -errno. */
static int keep_order(const lsmi_resfile_t *f, const char *path,
                      const uint32_t *idx) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/cache", f->data_dir);
  if (mkdir(dir, 0750) && errno != EEXIST)
    return -errno;
  snprintf(dir, sizeof dir, "%s/tmp", f->data_dir);
  sealed_t s = {LSMI_DURABLE_INIT, crc32(0L, Z_NULL, 0)};
  uint64_t n = f->rows.n;
  int rc = lsmi_durable_begin(&s.d, dir, path, 0600);
  if (rc == 0)
    rc = put(&s, magic_ord, sizeof magic_ord);
  if (rc == 0)
    rc = put(&s, &n, sizeof n);
  if (rc == 0 && n)
    rc = put(&s, idx, (size_t)n * 4);
  if (rc == 0)
    rc = seal(&s);
  if (rc == 0)
    rc = lsmi_durable_commit(&s.d, path);
  if (rc)
    lsmi_durable_abort(&s.d);
  return rc;
}

int lsmi_resfile_order(lsmi_resfile_t *f, lsmi_rescol_t col, bool desc,
                       const uint32_t **order, size_t *map_len,
                       lsmi_error_t *err) {
  *order = NULL;
  *map_len = 0;
  if (col == LSMI_COL_INDEX)
    return LSMI_OK;
  char path[PATH_MAX];
  order_path(f, col, desc, path, sizeof path);
  if ((*order = map_order(path, f->rows.n, map_len)))
    return LSMI_OK;
  pthread_mutex_lock(&build);
  /* Another request may have built it while this one waited. */
  if ((*order = map_order(path, f->rows.n, map_len))) {
    pthread_mutex_unlock(&build);
    return LSMI_OK;
  }
  /* Laid out as a mapped order (16 bytes of head, then the indices), so
   * that lsmi_resfile_unorder releases either the same way. */
  size_t len = 16 + 4 * f->rows.n;
  char *block = scratch(len);
  uint32_t *idx = block ? (uint32_t *)(void *)(block + 16) : NULL;
  int st = idx ? sort_rows(f, col, desc, idx) : LSMI_ERR_NOMEM;
  /* Kept for the next request; when the cache cannot be written (a full
   * disk), this request still gets its order from memory. */
  if (st == LSMI_OK && keep_order(f, path, idx) == 0 &&
      (*order = map_order(path, f->rows.n, map_len))) {
    munmap(block, len);
    block = NULL;
  } else if (st == LSMI_OK) {
    *order = idx;
    *map_len = len;
    block = NULL;
  }
  pthread_mutex_unlock(&build);
  if (block)
    munmap(block, len);
  if (st)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, NULL, "out of memory");
  return LSMI_OK;
}

void lsmi_resfile_unorder(const uint32_t *order, size_t map_len) {
  if (order != NULL)
    munmap((void *)((const char *)order - 16), map_len);
}

/* ---- names ---- */

int lsmi_resfile_parse_sort(const char *sort, const char *order,
                            lsmi_rescol_t *col, bool *desc) {
  *col = LSMI_COL_INDEX;
  *desc = false;
  if (order && *order) {
    if (!strcmp(order, "desc"))
      *desc = true;
    else if (strcmp(order, "asc"))
      return LSMI_ERR_INVALID;
  }
  if (sort == NULL || *sort == '\0')
    return LSMI_OK;
  if (*sort == '-') {
    *desc = true;
    sort++;
  } else if (*sort == '+') {
    sort++;
  }
  return lsmi_resfile_col_parse(sort, strlen(sort), col);
}

int lsmi_resfile_parse_format(const char *name, lsmi_resformat_t *fmt) {
  if (name == NULL || !strcmp(name, "json"))
    *fmt = LSMI_RES_JSON;
  else if (!strcmp(name, "csv"))
    *fmt = LSMI_RES_CSV;
  else if (!strcmp(name, "ndjson"))
    *fmt = LSMI_RES_NDJSON;
  else
    return LSMI_ERR_INVALID;
  return LSMI_OK;
}

/* ---- queries ---- */

void lsmi_resquery_init(lsmi_resquery_t *q) {
  memset(q, 0, sizeof *q);
  q->nsplits = 1;
  q->splits[0] = "val";
  q->limit = 100;
}

bool lsmi_resquery_filters(const lsmi_resquery_t *q) {
  return q->ny > 0 || q->has_lo || q->has_hi;
}

/* Whether row i of f passes q's filters. */
static bool matches(const lsmi_resquery_t *q, const lsmi_rows_t *r, size_t i) {
  if (q->ny) {
    bool in = false;
    for (int k = 0; k < q->ny && !in; k++)
      in = r->y[i] == q->ys[k];
    if (!in)
      return false;
  }
  uint32_t ranged = q->has_lo | q->has_hi;
  for (int c = 0; ranged >> c; c++) {
    if (!(ranged >> c & 1u))
      continue;
    double v = lsmi_resfile_value(r, (lsmi_rescol_t)c, i);
    if (isnan(v) || (q->has_lo >> c & 1u && v < q->lo[c]) ||
        (q->has_hi >> c & 1u && v > q->hi[c]))
      return false;
  }
  return true;
}

/* The row at position pos of split s's order. */
static size_t row_at(const lsmi_rescursor_t *c, int s, size_t pos) {
  if (c->order[s])
    return c->order[s][pos];
  return c->q->desc ? c->f[s]->rows.n - 1 - pos : pos;
}

/* The next matching row of split s at or after pos[s] into *row. */
static bool head_of(lsmi_rescursor_t *c, int s, size_t *row) {
  const lsmi_rows_t *r = &c->f[s]->rows;
  bool filter = lsmi_resquery_filters(c->q);
  for (; c->pos[s] < r->n; c->pos[s]++) {
    *row = row_at(c, s, c->pos[s]);
    if (!filter || matches(c->q, r, *row))
      return true;
  }
  return false;
}

/* Whether split 0's row a comes before split 1's row b. */
static bool first_before(const lsmi_rescursor_t *c, size_t a, size_t b) {
  const lsmi_resquery_t *q = c->q;
  if (q->sort == LSMI_COL_INDEX)
    return !q->desc;
  double x = lsmi_resfile_value(&c->f[0]->rows, q->sort, a);
  double y = lsmi_resfile_value(&c->f[1]->rows, q->sort, b);
  if (isnan(x) || isnan(y))
    return !isnan(x) || isnan(y);
  if (x == y)
    return true;
  return (x < y) != q->desc;
}

/* The next row of the query: its split in *s and row in *row. */
static bool next_row(lsmi_rescursor_t *c, int *s, size_t *row) {
  size_t a = 0, b = 0;
  bool has0 = head_of(c, 0, &a);
  bool has1 = c->q->nsplits > 1 && head_of(c, 1, &b);
  if (!has0 && !has1)
    return false;
  *s = has0 && (!has1 || first_before(c, a, b)) ? 0 : 1;
  *row = *s == 0 ? a : b;
  c->pos[*s]++;
  return true;
}

int lsmi_rescursor_init(lsmi_rescursor_t *c, const lsmi_resquery_t *q,
                        lsmi_resfile_t *const *f, lsmi_error_t *err) {
  memset(c, 0, sizeof *c);
  c->q = q;
  bool filter = lsmi_resquery_filters(q);
  for (int s = 0; s < q->nsplits; s++) {
    c->f[s] = f[s];
    int st = lsmi_resfile_order(f[s], q->sort, q->desc, &c->order[s],
                                &c->order_len[s], err);
    if (st) {
      lsmi_rescursor_release(c);
      return st;
    }
    for (size_t i = 0; filter && i < f[s]->rows.n; i++)
      c->total += matches(q, &f[s]->rows, i);
    if (filter)
      drop_pages(f[s], NULL, 0);
    if (!filter)
      c->total += f[s]->rows.n;
  }
  return LSMI_OK;
}

void lsmi_rescursor_release(lsmi_rescursor_t *c) {
  for (int s = 0; s < 2; s++)
    lsmi_resfile_unorder(c->order[s], c->order_len[s]);
  memset(c->order, 0, sizeof c->order);
}

/* Skips the query's offset. */
static void skip_offset(lsmi_rescursor_t *c) {
  c->started = true;
  if (c->q->nsplits == 1 && !lsmi_resquery_filters(c->q)) {
    size_t n = c->f[0]->rows.n;
    c->pos[0] = c->q->offset < n ? c->q->offset : n;
    return;
  }
  int s;
  size_t row;
  for (size_t k = 0; k < c->q->offset && next_row(c, &s, &row); k++)
    ;
}

/* A JSON number, or null for a value JSON cannot hold. */
static void put_num(lsmi_strbuf_t *b, const char *key, double v, bool json) {
  if (json) {
    if (isfinite(v))
      lsmi_strbuf_printf(b, ",\"%s\":%.17g", key, v);
    else
      lsmi_strbuf_printf(b, ",\"%s\":null", key);
  } else {
    lsmi_strbuf_printf(b, ",%.17g", v);
  }
}

static bool printed(const lsmi_rows_t *r, uint32_t fields, int k) {
  return lsmi_resfile_has_col(r, (lsmi_rescol_t)k) &&
         (fields == 0 || (fields >> k & 1u));
}

static void put_row(lsmi_strbuf_t *b, const lsmi_resfile_t *f, size_t i,
                    uint32_t fields, bool json) {
  const lsmi_rows_t *r = &f->rows;
  if (json)
    lsmi_strbuf_printf(b, "{\"index\":%zu,\"split\":\"%s\"", i, f->split);
  else
    lsmi_strbuf_printf(b, "%zu,%s", i, f->split);
  if (printed(r, fields, LSMI_COL_Y))
    lsmi_strbuf_printf(b, json ? ",\"y\":%d" : ",%d", (int)r->y[i]);
  for (int k = LSMI_COL_R; k < LSMI_COL_COUNT; k++)
    if (printed(r, fields, k))
      put_num(b, col_names[k], lsmi_resfile_value(r, (lsmi_rescol_t)k, i),
              json);
  lsmi_strbuf_printf(b, json ? "}" : "\n");
}

void lsmi_resfile_row_json(lsmi_strbuf_t *b, const lsmi_resfile_t *f,
                           size_t i, uint32_t fields) {
  put_row(b, f, i, fields, true);
}

static void put_head(lsmi_rescursor_t *c, lsmi_strbuf_t *b,
                     const char *extra) {
  const lsmi_resquery_t *q = c->q;
  const lsmi_rows_t *r = &c->f[0]->rows;
  switch (q->format) {
  case LSMI_RES_JSON:
    lsmi_strbuf_printf(
        b,
        "{\"split\":\"%s\",\"sort\":\"%s%s\",\"total\":%zu,\"offset\":%zu,"
        "\"limit\":%zu,%s\"rows\":[",
        q->nsplits > 1 ? "all" : q->splits[0], q->desc ? "-" : "",
        col_names[q->sort], c->total, q->offset, q->limit, extra ? extra : "");
    break;
  case LSMI_RES_CSV:
    lsmi_strbuf_printf(b, "index,split");
    for (int k = LSMI_COL_Y; k < LSMI_COL_COUNT; k++)
      if (printed(r, q->fields, k))
        lsmi_strbuf_printf(b, ",%s", col_names[k]);
    lsmi_strbuf_printf(b, "\n");
    break;
  case LSMI_RES_NDJSON:
    break;
  }
}

bool lsmi_rescursor_render(lsmi_rescursor_t *c, lsmi_strbuf_t *b,
                           size_t want, const char *extra) {
  const lsmi_resquery_t *q = c->q;
  if (!c->head) {
    put_head(c, b, extra);
    c->head = true;
    skip_offset(c);
  }
  int s;
  size_t row;
  while (b->len < want && !b->oom && c->emitted < q->limit &&
         next_row(c, &s, &row)) {
    if (q->format == LSMI_RES_JSON && c->emitted)
      lsmi_strbuf_printf(b, ",");
    put_row(b, c->f[s], row, q->fields, q->format != LSMI_RES_CSV);
    if (q->format == LSMI_RES_NDJSON)
      lsmi_strbuf_printf(b, "\n");
    if (++c->emitted % DROP_ROWS == 0)
      for (int k = 0; k < q->nsplits; k++)
        drop_pages(c->f[k], c->order[k], c->order_len[k]);
  }
  if (b->len < want && !c->tail) {
    /* Nothing more fit the page: close it. */
    if (q->format == LSMI_RES_JSON)
      lsmi_strbuf_printf(b, "]}");
    c->tail = true;
  }
  return !c->tail;
}
