/*
 * dataset.c — the dataset object: allocation, limits, validation, the
 * canonical hash and the .npz writer.
 *
 * A dataset owns two splits, each one float32 row-major block x (n, d1+d2)
 * and one int32 block y (n). It is immutable once a reader has filled and
 * validated it, so a fit may read it from many threads without locks. The
 * readers themselves live in formats.c and the per-format files; this file
 * knows nothing about any file format except the one it writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dsio.h"
#include "sha256.h"
#include "zip.h"

lsmi_dataset_t *lsmi_dataset_create(size_t n_train, size_t n_val, size_t d1,
                                    size_t d2, int classes, lsmi_error_t *err) {
  size_t d, cells_t, cells_v, bx_t, bx_v, by_t, by_v;
  if (__builtin_add_overflow(d1, d2, &d) ||
      __builtin_mul_overflow(n_train, d, &cells_t) ||
      __builtin_mul_overflow(n_val, d, &cells_v) ||
      __builtin_mul_overflow(cells_t, sizeof(float), &bx_t) ||
      __builtin_mul_overflow(cells_v, sizeof(float), &bx_v) ||
      __builtin_mul_overflow(n_train, sizeof(int32_t), &by_t) ||
      __builtin_mul_overflow(n_val, sizeof(int32_t), &by_v)) {
    lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                   "dataset of %zu + %zu rows and %zu + %zu columns is too "
                   "large to address",
                   n_train, n_val, d1, d2);
    return NULL;
  }
  lsmi_dataset_t *ds = calloc(1, sizeof *ds);
  if (!ds) {
    lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    return NULL;
  }
  ds->d1 = d1;
  ds->d2 = d2;
  ds->classes = classes;
  ds->train.n = n_train;
  ds->val.n = n_val;
  /* malloc(0) may return NULL; one byte keeps "NULL = failure" simple. */
  ds->train.x = malloc(bx_t ? bx_t : 1);
  ds->train.y = malloc(by_t ? by_t : 1);
  ds->val.x = malloc(bx_v ? bx_v : 1);
  ds->val.y = malloc(by_v ? by_v : 1);
  if (!ds->train.x || !ds->train.y || !ds->val.x || !ds->val.y) {
    lsmi_dataset_destroy(ds);
    lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                   "out of memory allocating a dataset of %zu + %zu rows",
                   n_train, n_val);
    return NULL;
  }
  return ds;
}

void lsmi_dataset_destroy(lsmi_dataset_t *ds) {
  if (!ds)
    return;
  free(ds->train.x);
  free(ds->train.y);
  free(ds->val.x);
  free(ds->val.y);
  free(ds);
}

void lsmi_limits_default(lsmi_limits_t *lim) {
  lim->max_file_bytes = (uint64_t)4 << 30; /* 4 GiB */
  lim->max_rows = 10000000;                /* 10 M per split */
  lim->max_dims = 65536;
  lim->max_classes = 10000;
  lim->max_members = 1024;
  lim->max_decompressed_bytes = (uint64_t)8 << 30; /* 8 GiB */
  lim->max_ratio = 1000.0; /* deflate tops out near 1032:1; see zip.c */
  lim->max_header_bytes = (uint64_t)1 << 20; /* 1 MiB */
  lim->min_rows_per_class = 2;
}

static int validate_split(const lsmi_dataset_t *ds, const lsmi_split_t *s,
                          const char *name, const lsmi_limits_t *lim,
                          uint64_t *counts, lsmi_error_t *err) {
  char key[32];
  if (s->n > lim->max_rows) {
    snprintf(key, sizeof key, "%s_y", name);
    return lsmi_error_set(err, LSMI_ERR_LIMIT, key,
                          "%s has %zu rows; the limit is %llu", name, s->n,
                          (unsigned long long)lim->max_rows);
  }
  size_t d = ds->d1 + ds->d2;
  for (size_t i = 0; i < s->n; i++) {
    const float *row = s->x + i * d;
    for (size_t j = 0; j < d; j++) {
      if (!isfinite(row[j])) {
        bool m1 = j < ds->d1;
        snprintf(key, sizeof key, "%s_x%d", name, m1 ? 1 : 2);
        return lsmi_error_set(
            err, LSMI_ERR_DATA, key,
            "%s has a non-finite value (%s) at row %zu, column %zu", key,
            isnan(row[j]) ? "nan" : "inf", i, m1 ? j : j - ds->d1);
      }
    }
    int32_t y = s->y[i];
    if (y < 0 || y >= ds->classes) {
      snprintf(key, sizeof key, "%s_y", name);
      return lsmi_error_set(err, LSMI_ERR_DATA, key,
                            "%s has label %d at row %zu, outside [0, %d)", key,
                            (int)y, i, ds->classes);
    }
    if (counts)
      counts[y]++;
  }
  return 0;
}

int lsmi_dataset_validate(const lsmi_dataset_t *ds, const lsmi_limits_t *lim,
                          lsmi_error_t *err) {
  if (!ds || !lim)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "", "no dataset or limits");
  if (ds->d1 == 0 || ds->d2 == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE,
                          ds->d1 == 0 ? "train_x1" : "train_x2",
                          "each modality needs at least one feature column "
                          "(d1 = %zu, d2 = %zu)",
                          ds->d1, ds->d2);
  if (ds->d1 > lim->max_dims || ds->d2 > lim->max_dims)
    return lsmi_error_set(err, LSMI_ERR_LIMIT,
                          ds->d1 > lim->max_dims ? "train_x1" : "train_x2",
                          "feature dimensions d1 = %zu, d2 = %zu exceed the "
                          "limit %llu",
                          ds->d1, ds->d2, (unsigned long long)lim->max_dims);
  if (ds->classes < 2)
    return lsmi_error_set(err, LSMI_ERR_DATA, "train_y",
                          "labels must take at least 2 values; found %d "
                          "class",
                          ds->classes);
  if ((uint64_t)ds->classes > lim->max_classes)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "train_y",
                          "%d classes exceed the limit %llu", ds->classes,
                          (unsigned long long)lim->max_classes);
  if (ds->train.n == 0)
    return lsmi_error_set(err, LSMI_ERR_SHAPE, "train_y",
                          "the train split has no rows");
  uint64_t *counts = calloc((size_t)ds->classes, sizeof *counts);
  if (!counts)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  int rc = validate_split(ds, &ds->train, "train", lim, counts, err);
  if (!rc)
    rc = validate_split(ds, &ds->val, "val", lim, NULL, err);
  for (int c = 0; !rc && c < ds->classes; c++) {
    uint64_t need = lim->min_rows_per_class ? lim->min_rows_per_class : 1;
    if (counts[c] < need)
      rc = lsmi_error_set(err, LSMI_ERR_DATA, "train_y",
                          "class %d has %llu rows in train; every class in "
                          "[0, %d) needs at least %llu",
                          c, (unsigned long long)counts[c], ds->classes,
                          (unsigned long long)need);
  }
  free(counts);
  return rc;
}

/* ---- canonical hash ---- */

static void hash_u64(lsmi_sha256_t *s, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
  lsmi_sha256_update(s, b, 8);
}

/* Features as little-endian float32 bits, labels as little-endian int32,
 * a block at a time so that the hash does not depend on the host. */
static void hash_split(lsmi_sha256_t *s, const lsmi_split_t *sp, size_t d) {
  unsigned char b[4096];
  size_t fill = 0, cells = sp->n * d;
  for (size_t i = 0; i < cells; i++) {
    uint32_t u;
    memcpy(&u, &sp->x[i], 4);
    for (int k = 0; k < 4; k++)
      b[fill++] = (unsigned char)(u >> (8 * k));
    if (fill == sizeof b) {
      lsmi_sha256_update(s, b, fill);
      fill = 0;
    }
  }
  for (size_t i = 0; i < sp->n; i++) {
    uint32_t u = (uint32_t)sp->y[i];
    for (int k = 0; k < 4; k++)
      b[fill++] = (unsigned char)(u >> (8 * k));
    if (fill == sizeof b) {
      lsmi_sha256_update(s, b, fill);
      fill = 0;
    }
  }
  lsmi_sha256_update(s, b, fill);
}

void lsmi_dataset_hash(const lsmi_dataset_t *ds, unsigned char out[32]) {
  lsmi_sha256_t s;
  lsmi_sha256_init(&s);
  static const char tag[16] = "lsmi-dataset-v1";
  lsmi_sha256_update(&s, tag, sizeof tag);
  hash_u64(&s, ds->d1);
  hash_u64(&s, ds->d2);
  hash_u64(&s, (uint64_t)ds->classes);
  hash_u64(&s, ds->train.n);
  hash_u64(&s, ds->val.n);
  hash_split(&s, &ds->train, ds->d1 + ds->d2);
  hash_split(&s, &ds->val, ds->d1 + ds->d2);
  lsmi_sha256_final(&s, out);
}

/* ---- .npz writer ---- */

/*
 * One member of the written archive: an .npy header followed by either a
 * column range [c0, c0+d) of a split's x as little-endian float32, or the
 * split's labels as little-endian int64. Its bytes are produced twice, once
 * for the CRC and once for the file, so nothing is buffered whole.
 */
typedef struct member {
  const lsmi_split_t *split;
  size_t d_all, c0, d; /* d == 0: labels */
  char head[128];
  size_t head_len;
} member_t;

typedef int (*sink_fn)(void *ctx, const unsigned char *p, size_t len);

static int emit(const member_t *m, sink_fn sink, void *ctx) {
  int rc = sink(ctx, (const unsigned char *)m->head, m->head_len);
  unsigned char b[8192];
  size_t fill = 0;
  for (size_t i = 0; !rc && i < m->split->n; i++) {
    if (m->d) {
      const float *row = m->split->x + i * m->d_all + m->c0;
      for (size_t j = 0; j < m->d; j++) {
        uint32_t u;
        memcpy(&u, &row[j], 4);
        for (int k = 0; k < 4; k++)
          b[fill++] = (unsigned char)(u >> (8 * k));
        if (fill + 8 > sizeof b) {
          rc = sink(ctx, b, fill);
          fill = 0;
          if (rc)
            break;
        }
      }
    } else {
      uint64_t u = (uint64_t)(int64_t)m->split->y[i];
      for (int k = 0; k < 8; k++)
        b[fill++] = (unsigned char)(u >> (8 * k));
      if (fill + 8 > sizeof b) {
        rc = sink(ctx, b, fill);
        fill = 0;
      }
    }
  }
  if (!rc && fill)
    rc = sink(ctx, b, fill);
  return rc;
}

typedef struct crc_ctx {
  uLong crc;
  uint64_t size;
} crc_ctx_t;

static int crc_sink(void *ctx, const unsigned char *p, size_t len) {
  crc_ctx_t *c = ctx;
  c->crc = crc32(c->crc, p, (uInt)len); /* len <= 8192 or a header */
  c->size += len;
  return 0;
}

static int file_sink(void *ctx, const unsigned char *p, size_t len) {
  return lsmi__zipw_data(ctx, p, len);
}

/* The .npy v1.0 header: magic, version, length, a dict literal padded with
 * spaces to a multiple of 64 bytes and ended by a newline. */
static void write_npy_header(member_t *m) {
  char dict[96];
  int k;
  if (m->d)
    k = snprintf(dict, sizeof dict,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, "
                 "%zu), }",
                 m->split->n, m->d);
  else
    k = snprintf(dict, sizeof dict,
                 "{'descr': '<i8', 'fortran_order': False, 'shape': (%zu,), "
                 "}",
                 m->split->n);
  size_t total = 10 + (size_t)k + 1;
  total = (total + 63) / 64 * 64;
  size_t hlen = total - 10;
  memcpy(m->head, "\x93NUMPY\x01\x00", 8);
  m->head[8] = (char)(hlen & 0xFF);
  m->head[9] = (char)(hlen >> 8);
  memcpy(m->head + 10, dict, (size_t)k);
  memset(m->head + 10 + k, ' ', hlen - (size_t)k - 1);
  m->head[total - 1] = '\n';
  m->head_len = total;
}

int lsmi_dataset_write_npz(const lsmi_dataset_t *ds, const char *path,
                           lsmi_error_t *err) {
  if (!ds || !path)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "", "no dataset or path");
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return lsmi_error_set(err, LSMI_ERR_IO, "", "cannot create %s.tmp.*: %s",
                          path, strerror(e));
  }
  fchmod(fd, 0644);
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    close(fd);
    unlink(tmp);
    free(tmp);
    return lsmi_error_set(err, LSMI_ERR_IO, "", "cannot open %s", path);
  }
  static const char *const names[6] = {"train_x1.npy", "train_x2.npy",
                                       "train_y.npy",  "val_x1.npy",
                                       "val_x2.npy",   "val_y.npy"};
  size_t d = ds->d1 + ds->d2;
  lsmi__zipw_t w;
  lsmi__zipw_init(&w, f);
  int rc = 0;
  for (int i = 0; i < 6 && !rc; i++) {
    member_t m;
    memset(&m, 0, sizeof m);
    m.split = i < 3 ? &ds->train : &ds->val;
    m.d_all = d;
    m.c0 = i % 3 == 1 ? ds->d1 : 0;
    m.d = i % 3 == 0 ? ds->d1 : i % 3 == 1 ? ds->d2 : 0;
    write_npy_header(&m);
    crc_ctx_t c = {crc32(0L, Z_NULL, 0), 0};
    emit(&m, crc_sink, &c);
    rc = lsmi__zipw_begin(&w, names[i], (uint32_t)c.crc, c.size);
    if (!rc)
      rc = emit(&m, file_sink, &w);
  }
  if (!rc)
    rc = lsmi__zipw_finish(&w);
  if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0))
    rc = LSMI_ERR_IO;
  if (fclose(f) != 0 && !rc)
    rc = LSMI_ERR_IO;
  if (!rc && rename(tmp, path) != 0)
    rc = LSMI_ERR_IO;
  if (rc) {
    int e = errno;
    unlink(tmp);
    free(tmp);
    return lsmi_error_set(err, rc, "", "cannot write %s: %s", path,
                          rc == LSMI_ERR_IO ? strerror(e) : "too large");
  }
  free(tmp);
  /* Make the rename itself durable: fsync the directory. */
  char *dir = strdup(path);
  if (dir) {
    char *slash = strrchr(dir, '/');
    const char *dname = ".";
    if (slash == dir)
      dname = "/";
    else if (slash) {
      *slash = '\0';
      dname = dir;
    }
    int dfd = open(dname, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  return 0;
}
