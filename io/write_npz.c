/*
 * write_npz.c — writes a dataset as an uncompressed .npz (keys train_x1,
 * train_x2, train_y, val_x1, val_x2, val_y; float32 features, int64 labels),
 * streamed member by member, and made durable under its final name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dsio.h"
#include "durable.h"
#include "zip.h"

/*
 * One member of the written archive: an .npy header followed by either a
 * column range [c0, c0+d) of a split's x as little-endian float32, or n
 * integers (a split's labels, or an extra column) as little-endian int64.
 * Its bytes are produced twice, once for the CRC and once for the file, so
 * nothing is buffered whole.
 */
typedef struct member {
  const lsmi_split_t *split; /* features: their split */
  size_t d_all, c0, d;       /* d == 0: integers */
  const int32_t *ints;       /* d == 0: n of them */
  size_t n;
  char head[128];
  size_t head_len;
} member_t;

typedef int (*sink_fn)(void *ctx, const unsigned char *p, size_t len);

static int emit(const member_t *m, sink_fn sink, void *ctx) {
  int rc = sink(ctx, (const unsigned char *)m->head, m->head_len);
  unsigned char b[8192];
  size_t fill = 0;
  for (size_t i = 0; !rc && i < m->n; i++) {
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
      uint64_t u = (uint64_t)(int64_t)m->ints[i];
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
                 m->n, m->d);
  else
    k = snprintf(dict, sizeof dict,
                 "{'descr': '<i8', 'fortran_order': False, 'shape': (%zu,), "
                 "}",
                 m->n);
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
  return lsmi_dataset_write_npz_ex(ds, NULL, 0, path, err);
}

int lsmi_dataset_write_npz_ex(const lsmi_dataset_t *ds,
                              const lsmi_npz_column_t *extra, size_t nextra,
                              const char *path, lsmi_error_t *err) {
  if (!ds || !path)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "", "no dataset or path");
  lsmi_durable_t out = LSMI_DURABLE_INIT;
  int e = lsmi_durable_begin(&out, NULL, path, 0644);
  FILE *f = e ? NULL : lsmi_durable_file(&out);
  if (f == NULL) {
    e = e ? -e : errno;
    lsmi_durable_abort(&out);
    return lsmi_error_set(err, LSMI_ERR_IO, "", "cannot create %s: %s", path,
                          strerror(e));
  }
  static const char *const names[6] = {"train_x1.npy", "train_x2.npy",
                                       "train_y.npy",  "val_x1.npy",
                                       "val_x2.npy",   "val_y.npy"};
  size_t d = ds->d1 + ds->d2;
  lsmi__zipw_t w;
  lsmi__zipw_init(&w, f);
  int rc = 0;
  for (size_t i = 0; i < 6 + nextra && !rc; i++) {
    member_t m;
    memset(&m, 0, sizeof m);
    char name[80];
    if (i < 6) {
      m.split = i < 3 ? &ds->train : &ds->val;
      m.n = m.split->n;
      m.d_all = d;
      m.c0 = i % 3 == 1 ? ds->d1 : 0;
      m.d = i % 3 == 0 ? ds->d1 : i % 3 == 1 ? ds->d2 : 0;
      m.ints = m.split->y;
      snprintf(name, sizeof name, "%s", names[i]);
    } else {
      m.ints = extra[i - 6].data;
      m.n = extra[i - 6].n;
      snprintf(name, sizeof name, "%.70s.npy", extra[i - 6].name);
    }
    write_npy_header(&m);
    crc_ctx_t c = {crc32(0L, Z_NULL, 0), 0};
    emit(&m, crc_sink, &c);
    rc = lsmi__zipw_begin(&w, name, (uint32_t)c.crc, c.size);
    if (!rc)
      rc = emit(&m, file_sink, &w);
  }
  if (!rc)
    rc = lsmi__zipw_finish(&w);
  if (rc) {
    e = errno;
    lsmi_durable_abort(&out);
    return lsmi_error_set(err, rc, "", "cannot write %s: %s", path,
                          rc == LSMI_ERR_IO ? strerror(e) : "too large");
  }
  e = lsmi_durable_commit(&out, path);
  if (e)
    return lsmi_error_set(err, LSMI_ERR_IO, "", "cannot write %s: %s", path,
                          strerror(-e));
  return 0;
}
