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
static const char magic3[8] = {'L', 'S', 'M', 'I', 'R', 'E', 'S', '3'};
static const char magic[8] = {'L', 'S', 'M', 'I', 'R', 'E', 'S', '4'};
static const char magic_ord[8] = {'L', 'S', 'M', 'I', 'O', 'R', 'D', '1'};
static const char magic_crc[8] = {'L', 'S', 'M', 'I', 'C', 'R', 'C', '1'};
static const char *col_names[LSMI_COL_COUNT] = {
    "index", "y",  "r",    "u1",    "u2",    "s",    "i1",  "i2", "i12",
    "h1",    "h2", "r_sd", "u1_sd", "u2_sd", "s_sd", "row", "id", "label"};

enum { N_PARTS = 9, N_SD = 4, N_MAX = N_PARTS + N_SD, TRAILER = 16 };
/* Version 4: the head's length and its flags (resfile.h). */
enum { HEAD4 = 56 };
enum { F_ROW = 1, F_ID = 2, F_ID_NUM = 4, F_NAMES = 8, F_NAMES_NUM = 16 };
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

/* Bytes gathered before they go to the file: the join columns are many
 * small pieces (a write each would be a system call each). */
typedef struct gather {
  sealed_t *s;
  char *buf;
  size_t len;
  int rc;
} gather_t;
enum { GATHER = 1 << 16 };

static void gput(gather_t *g, const void *p, size_t n) {
  if (g->rc == 0 && g->len + n > GATHER) {
    g->rc = put(g->s, g->buf, g->len);
    g->len = 0;
  }
  if (g->rc)
    return;
  if (n > GATHER) {
    g->rc = put(g->s, p, n);
    return;
  }
  memcpy(g->buf + g->len, p, n);
  g->len += n;
}

static int gflush(gather_t *g) {
  if (g->rc == 0 && g->len)
    g->rc = put(g->s, g->buf, g->len);
  g->len = 0;
  return g->rc;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p) {
  unsigned char c = p[0];
  if (c < 0x80)
    return 1;
  size_t n = c >= 0xC2 && c <= 0xDF   ? 2
             : c >= 0xE0 && c <= 0xEF ? 3
             : c >= 0xF0 && c <= 0xF4 ? 4
                                      : 0;
  unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
  unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
  if (n && (p[1] < lo || p[1] > hi))
    return 0;
  for (size_t k = 2; k < n; k++)
    if (p[k] < 0x80 || p[k] > 0xBF)
      return 0;
  return n;
}

/* The length of t as UTF-8, every byte that is not one stored as U+FFFD;
 * and those bytes to g when g is not NULL. */
static size_t put_utf8(gather_t *g, const char *t) {
  static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
  const unsigned char *p = (const unsigned char *)t;
  size_t len = 0;
  while (*p) {
    size_t run = 0, k;
    while (p[run] && (k = utf8_seq(p + run)) > 0)
      run += k;
    if (g && run)
      gput(g, p, run);
    len += run;
    p += run;
    if (*p) { /* a byte that starts no sequence */
      if (g)
        gput(g, fffd, 3);
      len += 3;
      p++;
    }
  }
  return len;
}

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* The bytes of the text of t[0..n) (each NUL-terminated, padded). */
static uint64_t text_bytes(char *const *t, size_t n) {
  uint64_t b = 0;
  for (size_t i = 0; i < n; i++)
    b += put_utf8(NULL, t[i]) + 1;
  return pad8(b);
}

/* The offsets of t[0..n), then their text of `bytes` bytes. */
static void put_texts(gather_t *g, char *const *t, size_t n, uint64_t bytes) {
  static const char zero[8] = {0};
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    gput(g, &off, sizeof off);
    off += put_utf8(NULL, t[i]) + 1;
  }
  for (size_t i = 0; i < n; i++) {
    put_utf8(g, t[i]);
    gput(g, zero, 1);
  }
  gput(g, zero, (size_t)(bytes - off));
}

/* The join columns of rows (n) after the value columns: rows, ids, class
 * names, as head says. */
static int write_join(sealed_t *s, const lsmi_resjoin_t *jn, size_t n,
                      uint64_t flags, uint64_t id_bytes, uint64_t name_bytes) {
  gather_t g = {s, malloc(GATHER), 0, 0};
  if (g.buf == NULL)
    return -ENOMEM;
  if (flags & F_ROW && n)
    gput(&g, jn->row, n * sizeof *jn->row);
  if (flags & F_ID)
    put_texts(&g, jn->id, n, id_bytes);
  if (flags & F_NAMES)
    put_texts(&g, jn->class_names, (size_t)jn->classes, name_bytes);
  int rc = gflush(&g);
  free(g.buf);
  return rc;
}

/* The columns of rows and what joins them back (jn, may be NULL), in file
 * order, to s. */
static int write_columns(sealed_t *s, const lsmi_rows_t *rows,
                         const lsmi_resjoin_t *jn) {
  static const char zero[8] = {0};
  uint64_t flags = 0, id_bytes = 0, name_bytes = 0, nnames = 0;
  if (jn && jn->row)
    flags |= F_ROW;
  if (jn && jn->id) {
    flags |= F_ID | (jn->id_numeric ? F_ID_NUM : 0);
    id_bytes = text_bytes(jn->id, rows->n);
  }
  if (jn && jn->class_names && jn->classes > 0) {
    flags |= F_NAMES | (jn->class_names_numeric ? F_NAMES_NUM : 0);
    nnames = (uint64_t)jn->classes;
    name_bytes = text_bytes(jn->class_names, (size_t)nnames);
  }
  uint64_t head[6] = {rows->n,   (uint64_t)ncols(rows), flags, nnames, id_bytes,
                      name_bytes};
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
  if (rc == 0 && flags)
    rc = write_join(s, jn, rows->n, flags, id_bytes, name_bytes);
  return rc ? rc : seal(s);
}

lsmi_resjoin_t lsmi_resjoin_of(const lsmi_dataset_t *ds,
                               const lsmi_split_t *sp) {
  bool moved = false;
  for (int k = 0; k < 2 && !moved; k++) {
    const lsmi_split_t *s = k ? &ds->val : &ds->train;
    for (size_t i = 0; s->row && i < s->n && !moved; i++)
      moved = s->row[i] != i;
  }
  lsmi_resjoin_t jn = {
      moved ? sp->row : NULL, sp->id,      ds->id_numeric,
      ds->class_names,        ds->classes, ds->class_names_numeric};
  return jn;
}

int lsmi_resfile_write_ex(const char *data_dir, const char *job_id,
                          const char *split, const lsmi_rows_t *rows,
                          const lsmi_resjoin_t *join, lsmi_error_t *err) {
  char tmpdir[PATH_MAX], dst[PATH_MAX];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", data_dir);
  snprintf(dst, sizeof dst, "%s/results/%s.%s", data_dir, job_id, split);
  sealed_t s = {LSMI_DURABLE_INIT, crc32(0L, Z_NULL, 0)};
  int rc = lsmi_durable_begin(&s.d, tmpdir, dst, 0600);
  if (rc == 0)
    rc = write_columns(&s, rows, join);
  if (rc == 0)
    rc = lsmi_durable_commit(&s.d, dst);
  if (rc == 0)
    return LSMI_OK;
  lsmi_durable_abort(&s.d);
  return lsmi_error_set(err, rc == -ENOMEM ? LSMI_ERR_NOMEM : LSMI_ERR_IO,
                        "results", "cannot write results %s: %s", dst,
                        strerror(-rc));
}

int lsmi_resfile_write(const char *data_dir, const char *job_id,
                       const char *split, const lsmi_rows_t *rows,
                       lsmi_error_t *err) {
  return lsmi_resfile_write_ex(data_dir, job_id, split, rows, NULL, err);
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

/* What a file's head says: its version and the sizes of its parts. */
typedef struct layout {
  int version;
  uint64_t n, nc; /* rows, float64 columns */
  size_t hlen;    /* bytes of the head */
  bool sealed;    /* a CRC trailer follows (version 3 on) */
  uint64_t flags; /* version 4: F_* */
  uint64_t nnames, id_bytes, name_bytes;
} layout_t;

/* The size of a file laid out as l. */
static uint64_t file_size(const layout_t *l) {
  uint64_t n = l->n;
  uint64_t size = l->hlen + y_bytes((size_t)n) + 8 * l->nc * n;
  if (l->flags & F_ROW)
    size += 8 * n;
  if (l->flags & F_ID)
    size += 8 * n + l->id_bytes;
  if (l->flags & F_NAMES)
    size += 8 * l->nnames + l->name_bytes;
  return size + (l->sealed ? TRAILER : 0);
}

/* The split's own name, static ("train" or "val"), or NULL. */
static const char *split_name(const char *split) {
  if (!strcmp(split, "train"))
    return "train";
  if (!strcmp(split, "val"))
    return "val";
  return NULL;
}

/* Reads the head of fd into *l and checks that the file's size is what
 * it says: 0 or LSMI_ERR_FORMAT. */
static int read_head(int fd, const struct stat *sb, layout_t *l) {
  char head[HEAD4];
  memset(l, 0, sizeof *l);
  if (sb->st_size < 16 || pread(fd, head, 16, 0) != 16)
    return LSMI_ERR_FORMAT;
  memcpy(&l->n, head + 8, 8);
  l->nc = N_PARTS;
  l->hlen = 16;
  if (!memcmp(head, magic1, 8))
    l->version = 1;
  else if (!memcmp(head, magic2, 8))
    l->version = 2;
  else if (!memcmp(head, magic3, 8))
    l->version = 3;
  else if (!memcmp(head, magic, 8))
    l->version = 4;
  else
    return LSMI_ERR_FORMAT;
  l->sealed = l->version >= 3;
  l->hlen = l->version == 1 ? 16 : l->version < 4 ? 24 : HEAD4;
  if (l->hlen > 16 &&
      pread(fd, head + 16, l->hlen - 16, 16) != (ssize_t)(l->hlen - 16))
    return LSMI_ERR_FORMAT;
  if (l->version >= 2)
    memcpy(&l->nc, head + 16, 8);
  if (l->version == 4) {
    memcpy(&l->flags, head + 24, 8);
    memcpy(&l->nnames, head + 32, 8);
    memcpy(&l->id_bytes, head + 40, 8);
    memcpy(&l->name_bytes, head + 48, 8);
  }
  /* Every size bounded by the file's before any sum, so none overflows. */
  uint64_t size = (uint64_t)sb->st_size;
  if ((l->nc != N_PARTS && l->nc != N_MAX) || l->n > (uint64_t)UINT32_MAX ||
      l->flags >> 5 || l->nnames > size / 8 || l->id_bytes > size ||
      l->name_bytes > size || l->id_bytes % 8 || l->name_bytes % 8 ||
      (l->flags & F_ID && l->n && l->id_bytes == 0) ||
      (l->flags & F_NAMES && l->nnames && l->name_bytes == 0) ||
      size != file_size(l))
    return LSMI_ERR_FORMAT;
  return LSMI_OK;
}

/* Points f's columns into its mapping m, laid out as l: 0, or
 * LSMI_ERR_FORMAT when a text section does not end in a NUL. */
static int place_columns(lsmi_resfile_t *f, const char *m, const layout_t *l) {
  size_t n = (size_t)l->n;
  f->version = l->version;
  f->rows.n = n;
  f->rows.y = (int32_t *)(void *)(m + l->hlen);
  const char *p = m + l->hlen + y_bytes(n);
  double **c[N_MAX];
  dcols(&f->rows, c);
  for (int k = 0; k < (int)l->nc; k++)
    *c[k] = (double *)(void *)(p + (size_t)k * n * 8);
  p += (size_t)l->nc * n * 8;
  if (l->flags & F_ROW) {
    f->row = (const uint64_t *)(const void *)p;
    p += n * 8;
  }
  if (l->flags & F_ID) {
    f->id_off = (const uint64_t *)(const void *)p;
    f->id_text = p + n * 8;
    f->id_bytes = l->id_bytes;
    f->id_numeric = (l->flags & F_ID_NUM) != 0;
    p += n * 8 + l->id_bytes;
    if (f->id_bytes && f->id_text[f->id_bytes - 1] != '\0')
      return LSMI_ERR_FORMAT;
  }
  if (l->flags & F_NAMES) {
    f->name_off = (const uint64_t *)(const void *)p;
    f->nnames = l->nnames;
    f->name_text = p + l->nnames * 8;
    f->name_bytes = l->name_bytes;
    f->names_numeric = (l->flags & F_NAMES_NUM) != 0;
    if (f->name_bytes && f->name_text[f->name_bytes - 1] != '\0')
      return LSMI_ERR_FORMAT;
  }
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
  layout_t l;
  memset(&l, 0, sizeof l);
  lsmi_resfile_t *f = NULL;
  void *m = NULL;
  const char *why = "wrong size";
  int st = fstat(fd, &sb) ? LSMI_ERR_IO : read_head(fd, &sb, &l);
  file_key_t key = key_of(&sb);
  if (st == LSMI_OK && l.sealed && !was_verified(&key)) {
    if (!check_sum(fd, (size_t)sb.st_size))
      st = LSMI_ERR_FORMAT, why = "checksum mismatch";
    else
      remember_verified(&key);
  }
  if (st == LSMI_OK) {
    f = calloc(1, sizeof *f);
    m = f ? map_file(fd, (size_t)sb.st_size) : NULL;
    if (m == NULL) {
      free(f);
      f = NULL;
      st = lsmi_error_set(err, LSMI_ERR_NOMEM, "results",
                          "cannot map the results of job %s", job_id);
      goto out;
    }
    f->map = m;
    f->map_len = (size_t)sb.st_size;
    st = place_columns(f, m, &l);
    why = "its text is cut short";
  }
  if (st) {
    lsmi_resfile_close(f);
    f = NULL;
    st = lsmi_error_set(err, st, "results",
                        "the %s results of job %s are damaged (%s); the job "
                        "must run again",
                        split, job_id, why);
    goto out;
  }
  f->split = sp;
  snprintf(f->job_id, sizeof f->job_id, "%s", job_id);
  f->data_dir = data_dir;
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

uint64_t lsmi_resfile_bytes(const char *data_dir, const char *job_id) {
  static const char *const splits[] = {"train", "val"};
  uint64_t n = 0;
  for (int i = 0; i < 2; i++) {
    char path[PATH_MAX];
    struct stat sb;
    snprintf(path, sizeof path, "%s/results/%s.%s", data_dir, job_id,
             splits[i]);
    if (stat(path, &sb) == 0)
      n += (uint64_t)sb.st_size;
  }
  return n;
}

/* ---- values ---- */

double lsmi_resfile_value(const lsmi_resfile_t *f, lsmi_rescol_t c, size_t i) {
  const lsmi_rows_t *r = &f->rows;
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
  case LSMI_COL_ROW:
    return f->row ? (double)f->row[i] : f->version >= 4 ? (double)i : NAN;
  default:
    return NAN;
  }
}

bool lsmi_resfile_col_numeric(lsmi_rescol_t col) {
  return col >= 0 && col < LSMI_COL_COUNT && col != LSMI_COL_ID &&
         col != LSMI_COL_LABEL;
}

bool lsmi_resfile_has_col(const lsmi_resfile_t *f, lsmi_rescol_t col) {
  switch (col) {
  case LSMI_COL_R_SD:
  case LSMI_COL_U1_SD:
  case LSMI_COL_U2_SD:
  case LSMI_COL_S_SD:
    return f->rows.r_sd != NULL;
  case LSMI_COL_ROW:
    return f->version >= 4;
  case LSMI_COL_ID:
    return f->id_off != NULL;
  case LSMI_COL_LABEL:
    return f->name_off != NULL;
  default:
    return col >= 0 && col < LSMI_COL_COUNT;
  }
}

const char *lsmi_resfile_why_not(const lsmi_resfile_t *f, lsmi_rescol_t col) {
  if (col >= LSMI_COL_ROW && col <= LSMI_COL_LABEL && f->version < 4)
    return "its results were written by a version of lsmi that kept no "
           "rows, ids or labels; run the job again to have them";
  switch (col) {
  case LSMI_COL_ID:
    return "its dataset has no sample ids (a key or column \"id\", or the "
           "one the upload's ?id= names)";
  case LSMI_COL_LABEL:
    return "its labels were the class indices 0 .. C-1 themselves, which y "
           "gives";
  default:
    return "the spread columns come with an ensemble (params.ensemble >= 2)";
  }
}

const char *lsmi_resfile_id(const lsmi_resfile_t *f, size_t i) {
  if (f->id_off == NULL || i >= f->rows.n || f->id_off[i] >= f->id_bytes)
    return NULL;
  return f->id_text + f->id_off[i];
}

const char *lsmi_resfile_label(const lsmi_resfile_t *f, int32_t y) {
  if (f->name_off == NULL || y < 0 || (uint64_t)y >= f->nnames ||
      f->name_off[y] >= f->name_bytes)
    return NULL;
  return f->name_text + f->name_off[y];
}

/* Whether t is an integer's text as JSON writes one. */
static bool integer_text(const char *t) {
  if (*t == '-')
    t++;
  size_t n = strspn(t, "0123456789");
  return n > 0 && t[n] == '\0' && (t[0] != '0' || n == 1);
}

/* Text of the file as JSON: an integer when the file says its texts are
 * (and this one is), else a string; NULL without text. New ref. */
static json_t *text_json(const char *t, bool numeric) {
  if (t == NULL)
    return NULL;
  if (numeric && integer_text(t) && strlen(t) <= 18)
    return json_integer((json_int_t)strtoll(t, NULL, 10));
  return json_string(t);
}

json_t *lsmi_resfile_label_json(const lsmi_resfile_t *f, int32_t y) {
  return text_json(lsmi_resfile_label(f, y), f->names_numeric);
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
    double v = lsmi_resfile_value(f, col, i);
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
    if (isnan(lsmi_resfile_value(f, col, i)))
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
  int st = lsmi_resfile_col_parse(sort, strlen(sort), col);
  return st == LSMI_OK && !lsmi_resfile_col_numeric(*col) ? LSMI_ERR_INVALID
                                                          : st;
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
static bool matches(const lsmi_resquery_t *q, const lsmi_resfile_t *f,
                    size_t i) {
  const lsmi_rows_t *r = &f->rows;
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
    double v = lsmi_resfile_value(f, (lsmi_rescol_t)c, i);
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
    if (!filter || matches(c->q, c->f[s], *row))
      return true;
  }
  return false;
}

/* Whether split 0's row a comes before split 1's row b. */
static bool first_before(const lsmi_rescursor_t *c, size_t a, size_t b) {
  const lsmi_resquery_t *q = c->q;
  if (q->sort == LSMI_COL_INDEX)
    return !q->desc;
  double x = lsmi_resfile_value(c->f[0], q->sort, a);
  double y = lsmi_resfile_value(c->f[1], q->sort, b);
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
      c->total += matches(q, f[s], i);
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

/* A CSV field: as it is, or quoted (RFC 4180) when it holds a comma, a
 * quote, a line break or spaces at either end (as `lsmi fit` writes it). */
static void put_csv_text(lsmi_strbuf_t *b, const char *t) {
  size_t n = strlen(t);
  if (!strpbrk(t, ",\"\r\n") && !(n && (t[0] == ' ' || t[n - 1] == ' '))) {
    lsmi_strbuf_printf(b, ",%s", t);
    return;
  }
  lsmi_strbuf_printf(b, ",\"");
  for (const char *p = t; *p;) {
    size_t k = strcspn(p, "\"");
    lsmi_strbuf_printf(b, "%.*s%s", (int)k, p, p[k] ? "\"\"" : "");
    p += k + (p[k] != '\0');
  }
  lsmi_strbuf_printf(b, "\"");
}

/* An id or a label: in JSON a string (jansson's), or an integer when the
 * file's are (null when the row has none); in CSV the text. */
static void put_text(lsmi_strbuf_t *b, const char *key, const char *t,
                     bool numeric, bool json) {
  if (!json) {
    put_csv_text(b, t ? t : "");
    return;
  }
  json_t *v = text_json(t, numeric);
  char *d = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
  lsmi_strbuf_printf(b, ",\"%s\":%s", key, d ? d : "null");
  free(d);
  json_decref(v);
}

/* Whether column k is printed: asked for, or with no fields= any column
 * f has (row only when stored: otherwise it is index). */
static bool printed(const lsmi_resfile_t *f, uint32_t fields, int k) {
  if (fields)
    return (fields >> k & 1u) && lsmi_resfile_has_col(f, (lsmi_rescol_t)k);
  return lsmi_resfile_has_col(f, (lsmi_rescol_t)k) &&
         (k != LSMI_COL_ROW || f->row != NULL);
}

static void put_row(lsmi_strbuf_t *b, const lsmi_resfile_t *f, size_t i,
                    uint32_t fields, bool json) {
  const lsmi_rows_t *r = &f->rows;
  if (json)
    lsmi_strbuf_printf(b, "{\"index\":%zu,\"split\":\"%s\"", i, f->split);
  else
    lsmi_strbuf_printf(b, "%zu,%s", i, f->split);
  if (printed(f, fields, LSMI_COL_Y))
    lsmi_strbuf_printf(b, json ? ",\"y\":%d" : ",%d", (int)r->y[i]);
  for (int k = LSMI_COL_R; k <= LSMI_COL_S_SD; k++)
    if (printed(f, fields, k))
      put_num(b, col_names[k], lsmi_resfile_value(f, (lsmi_rescol_t)k, i),
              json);
  if (printed(f, fields, LSMI_COL_ROW))
    lsmi_strbuf_printf(b, json ? ",\"row\":%llu" : ",%llu",
                       (unsigned long long)(f->row ? f->row[i] : i));
  if (printed(f, fields, LSMI_COL_ID))
    put_text(b, "id", lsmi_resfile_id(f, i), f->id_numeric, json);
  if (printed(f, fields, LSMI_COL_LABEL))
    put_text(b, "label", lsmi_resfile_label(f, r->y[i]), f->names_numeric,
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
      if (printed(c->f[0], q->fields, k))
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
