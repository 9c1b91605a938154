/*
 * zip.c — read and write the zip container of .npz and PyTorch files.
 *
 * Reading (see zip.h for the trust model): find the end-of-central-directory
 * record (and its Zip64 twin when a field overflowed), walk the central
 * directory, and for each member take its name, method, CRC and sizes from
 * there, with only the name and extra lengths from the local header. No
 * offset or size is used before it is checked against the buffer and the
 * limits. Inflation is zlib's raw inflate into a buffer of exactly the
 * declared size; a stream that wants more is malformed, not a reason to grow.
 *
 * Writing: stored members only (what lsmi_dataset_write_npz needs), the
 * caller passing each member's CRC and size before its bytes, so the file is
 * written in one sequential pass with no seeking.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dsio.h"
#include "zip.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

/*
 * Below this many inflated bytes a member is not held to max_ratio: small
 * members of zeros compress absurdly well and are harmless. Above it, raw
 * deflate cannot beat about 1032:1, which only (nearly) constant data
 * reaches; real features stay well below (one-hot float32 rows of 1000
 * columns compress about 600:1), hence the default limit of 1000. The
 * declared size against max_decompressed_bytes is the main guard.
 */
#define RATIO_FLOOR ((uint64_t)1 << 20)

static int bad(lsmi_error_t *err, const char *what) {
  return lsmi_error_set(err, LSMI_ERR_FORMAT, "", "malformed zip file: %s",
                        what);
}

/* Finds the EOCD record; returns its offset or -1. */
static long long find_eocd(const unsigned char *buf, size_t len) {
  if (len < 22)
    return -1;
  size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
  for (size_t i = len - 22 + 1; i-- > lo;) {
    if (lsmi__le32(buf + i) == SIG_EOCD &&
        (size_t)lsmi__le16(buf + i + 20) <= len - 22 - i)
      return (long long)i;
  }
  return -1;
}

/* Reads the Zip64 extra field (id 1) of a central header into the fields
 * that were saturated. */
static int zip64_extra(const unsigned char *x, size_t xlen, uint64_t *usize,
                       uint64_t *csize, uint64_t *off, bool need_u, bool need_c,
                       bool need_o, lsmi_error_t *err) {
  size_t p = 0;
  while (p + 4 <= xlen) {
    uint16_t id = lsmi__le16(x + p), sz = lsmi__le16(x + p + 2);
    if ((size_t)sz > xlen - p - 4)
      return bad(err, "extra field runs past its header");
    if (id == 1) {
      const unsigned char *q = x + p + 4;
      size_t left = sz;
      uint64_t *dst[3] = {need_u ? usize : NULL, need_c ? csize : NULL,
                          need_o ? off : NULL};
      for (int k = 0; k < 3; k++) {
        if (!dst[k])
          continue;
        if (left < 8)
          return bad(err, "short Zip64 extra field");
        *dst[k] = lsmi__le64(q);
        q += 8;
        left -= 8;
      }
      return 0;
    }
    p += 4 + (size_t)sz;
  }
  if (need_u || need_c || need_o)
    return bad(err, "saturated size without a Zip64 extra field");
  return 0;
}

/* Where the central directory is and how many entries it holds, from the
 * end record (or its Zip64 twin when a field is saturated). */
static int read_end(const unsigned char *buf, size_t len,
                    const lsmi_limits_t *lim, uint64_t *entries,
                    uint64_t *cd_size, uint64_t *cd_off, lsmi_error_t *err) {
  long long eo = find_eocd(buf, len);
  if (eo < 0)
    return bad(err, "no end of central directory record (truncated?)");
  const unsigned char *e = buf + eo;
  *entries = lsmi__le16(e + 10);
  *cd_size = lsmi__le32(e + 12);
  *cd_off = lsmi__le32(e + 16);
  if (lsmi__le16(e + 4) != 0 || lsmi__le16(e + 6) != 0) {
    if (lsmi__le16(e + 4) != 0xFFFF)
      return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "",
                            "multi-disk zip archives are not supported");
  }
  if (*entries == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu) {
    if (eo < 20 || lsmi__le32(buf + eo - 20) != SIG_LOC64)
      return bad(err, "saturated directory fields without Zip64 records");
    uint64_t o64 = lsmi__le64(buf + eo - 20 + 8);
    if (o64 > len || len - o64 < 56 || lsmi__le32(buf + o64) != SIG_EOCD64)
      return bad(err, "Zip64 end record out of bounds");
    const unsigned char *e64 = buf + o64;
    *entries = lsmi__le64(e64 + 32);
    *cd_size = lsmi__le64(e64 + 40);
    *cd_off = lsmi__le64(e64 + 48);
  }
  if (*entries > lim->max_members)
    return lsmi_error_set(
        err, LSMI_ERR_LIMIT, "", "zip file has %llu members; the limit is %llu",
        (unsigned long long)*entries, (unsigned long long)lim->max_members);
  if (*cd_off > len || *cd_size > len - *cd_off)
    return bad(err, "central directory out of bounds");
  if (*entries > *cd_size / 46)
    return bad(err, "more entries than the central directory can hold");
  return 0;
}

/* The central header at p (left bytes of directory remain) as the next
 * entry of z; *used is its length. */
static int read_entry(lsmi__zip_t *z, const unsigned char *p, size_t left,
                      size_t *used, lsmi_error_t *err) {
  const unsigned char *buf = z->buf;
  size_t len = z->len;
  if (left < 46 || lsmi__le32(p) != SIG_CENTRAL)
    return bad(err, "bad central directory header");
  size_t nlen = lsmi__le16(p + 28), xlen = lsmi__le16(p + 30),
         clen = lsmi__le16(p + 32);
  if (46 + nlen + xlen + clen > left)
    return bad(err, "central directory entry runs past the directory");
  lsmi__zip_entry_t *en = &z->e[z->n];
  en->flags = lsmi__le16(p + 8);
  en->method = lsmi__le16(p + 10);
  en->crc = lsmi__le32(p + 16);
  en->csize = lsmi__le32(p + 20);
  en->usize = lsmi__le32(p + 24);
  uint64_t loff = lsmi__le32(p + 42);
  if (memchr(p + 46, 0, nlen))
    return bad(err, "member name contains a NUL byte");
  en->name = malloc(nlen + 1);
  if (!en->name)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  memcpy(en->name, p + 46, nlen);
  en->name[nlen] = '\0';
  z->n++;
  int rc = zip64_extra(p + 46 + nlen, xlen, &en->usize, &en->csize, &loff,
                       en->usize == 0xFFFFFFFFu, en->csize == 0xFFFFFFFFu,
                       loff == 0xFFFFFFFFu, err);
  if (rc)
    return rc;
  if (loff > len || len - loff < 30 || lsmi__le32(buf + loff) != SIG_LOCAL)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, en->name,
                          "malformed zip file: local header of %s is out of "
                          "bounds or damaged",
                          en->name);
  uint64_t data =
      loff + 30 + lsmi__le16(buf + loff + 26) + lsmi__le16(buf + loff + 28);
  if (data > len || en->csize > len - data)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, en->name,
                          "malformed zip file: data of %s runs past the end "
                          "of the file (truncated?)",
                          en->name);
  en->data_off = data;
  *used = 46 + nlen + xlen + clen;
  return 0;
}

int lsmi__zip_open(lsmi__zip_t *z, const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi_error_t *err) {
  memset(z, 0, sizeof *z);
  z->buf = buf;
  z->len = len;
  z->lim = lim;
  uint64_t entries = 0, cd_size = 0, cd_off = 0;
  int rc = read_end(buf, len, lim, &entries, &cd_size, &cd_off, err);
  if (rc)
    return rc;
  z->e = calloc(entries ? entries : 1, sizeof *z->e);
  if (!z->e)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  const unsigned char *p = buf + cd_off;
  size_t left = (size_t)cd_size;
  for (uint64_t i = 0; i < entries && !rc; i++) {
    size_t used = 0;
    rc = read_entry(z, p, left, &used, err);
    p += used;
    left -= used;
  }
  return rc;
}

void lsmi__zip_close(lsmi__zip_t *z) {
  if (!z->e)
    return;
  for (size_t i = 0; i < z->n; i++)
    free(z->e[i].name);
  free(z->e);
  z->e = NULL;
  z->n = 0;
}

const lsmi__zip_entry_t *lsmi__zip_find(const lsmi__zip_t *z,
                                        const char *name) {
  for (size_t i = 0; i < z->n; i++)
    if (strcmp(z->e[i].name, name) == 0)
      return &z->e[i];
  return NULL;
}

/* zlib's crc32 takes uInt lengths; feed it in pieces. */
static uint32_t crc_of(const unsigned char *p, size_t len) {
  uLong c = crc32(0L, Z_NULL, 0);
  while (len > 0) {
    uInt k = len > 0x40000000u ? 0x40000000u : (uInt)len;
    c = crc32(c, p, k);
    p += k;
    len -= k;
  }
  return (uint32_t)c;
}

/* Inflates e's raw deflate stream at `in` into out (exactly e->usize
 * bytes); a stream that wants more room, or ends early, is malformed. */
static int inflate_member(const lsmi__zip_entry_t *e, const unsigned char *in,
                          unsigned char *out, lsmi_error_t *err) {
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, e->name,
                          "could not start inflating %s", e->name);
  uint64_t in_left = e->csize, out_left = e->usize;
  s.next_in = (Bytef *)(uintptr_t)in;
  s.next_out = out;
  int zrc = Z_OK, rc = 0;
  unsigned char spare;
  bool probing = false; /* output full: one spare byte asks for more */
  while (!rc && zrc != Z_STREAM_END) {
    if (s.avail_in == 0 && in_left > 0) {
      s.avail_in = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
      in_left -= s.avail_in;
    }
    if (s.avail_out == 0 && out_left > 0) {
      s.avail_out = out_left > 0x40000000u ? 0x40000000u : (uInt)out_left;
      out_left -= s.avail_out;
    } else if (s.avail_out == 0 && !probing) {
      probing = true;
      s.next_out = &spare;
      s.avail_out = 1;
    }
    zrc = inflate(&s, Z_NO_FLUSH);
    if (probing && s.avail_out == 0)
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, e->name,
                          "malformed zip file: %s inflates to more than its "
                          "declared %llu bytes",
                          e->name, (unsigned long long)e->usize);
    else if (zrc == Z_BUF_ERROR && s.avail_in == 0 && in_left == 0)
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, e->name,
                          "malformed zip file: deflate stream of %s is "
                          "truncated",
                          e->name);
    else if (zrc != Z_OK && zrc != Z_BUF_ERROR && zrc != Z_STREAM_END)
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, e->name,
                          "malformed zip file: deflate stream of %s is "
                          "corrupt (%s)",
                          e->name, s.msg ? s.msg : "zlib error");
  }
  uint64_t total = (uint64_t)s.total_out;
  inflateEnd(&s);
  if (!rc && total != e->usize)
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, e->name,
                        "malformed zip file: %s inflated to %llu bytes, not "
                        "the declared %llu",
                        e->name, (unsigned long long)total,
                        (unsigned long long)e->usize);
  return rc;
}

/* A deflated member into a new buffer (*out, taken by the caller), within
 * max_decompressed_bytes (over the archive) and max_ratio. */
static int inflate_checked(lsmi__zip_t *z, const lsmi__zip_entry_t *e,
                           unsigned char **out, lsmi_error_t *err) {
  const lsmi_limits_t *lim = z->lim;
  *out = NULL;
  if (e->usize > lim->max_decompressed_bytes ||
      z->inflated > lim->max_decompressed_bytes - e->usize)
    return lsmi_error_set(
        err, LSMI_ERR_LIMIT, e->name,
        "zip member %s would inflate the archive past %llu bytes "
        "(max_decompressed_bytes)",
        e->name, (unsigned long long)lim->max_decompressed_bytes);
  if (e->usize > RATIO_FLOOR &&
      (double)e->usize > lim->max_ratio * (double)(e->csize ? e->csize : 1))
    return lsmi_error_set(
        err, LSMI_ERR_LIMIT, e->name,
        "zip member %s inflates %llu bytes to %llu, a ratio above the "
        "limit %g (zip bomb?)",
        e->name, (unsigned long long)e->csize, (unsigned long long)e->usize,
        lim->max_ratio);
  if ((uint64_t)(size_t)e->usize != e->usize)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, e->name,
                          "zip member %s is too large", e->name);
  unsigned char *p = malloc(e->usize ? (size_t)e->usize : 1);
  if (!p)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, e->name,
                          "out of memory inflating %s", e->name);
  int rc = inflate_member(e, z->buf + e->data_off, p, err);
  if (rc) {
    free(p);
    return rc;
  }
  z->inflated += e->usize;
  *out = p;
  return 0;
}

int lsmi__zip_read(lsmi__zip_t *z, const lsmi__zip_entry_t *e,
                   const unsigned char **data, size_t *len, void **owned,
                   lsmi_error_t *err) {
  *data = NULL;
  *len = 0;
  *owned = NULL;
  if (e->flags & 1)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, e->name,
                          "zip member %s is encrypted", e->name);
  if (e->method == 0 && e->csize != e->usize)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, e->name,
                          "malformed zip file: stored member %s has "
                          "different compressed and plain sizes",
                          e->name);
  if (e->method != 0 && e->method != 8)
    return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, e->name,
                          "zip member %s uses compression method %u; only "
                          "stored (0) and deflate (8) are supported",
                          e->name, (unsigned)e->method);
  unsigned char *out = NULL;
  if (e->method == 8) {
    int rc = inflate_checked(z, e, &out, err);
    if (rc)
      return rc;
  }
  if (crc_of(out ? out : z->buf + e->data_off, (size_t)e->usize) != e->crc) {
    free(out);
    return lsmi_error_set(err, LSMI_ERR_FORMAT, e->name,
                          "malformed zip file: CRC mismatch in %s", e->name);
  }
  *data = out ? out : z->buf + e->data_off;
  *len = (size_t)e->usize;
  *owned = out;
  return 0;
}

/* ---- writer ---- */

static void put16(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
  put16(p, v & 0xFFFF);
  put16(p + 2, v >> 16);
}
static void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

void lsmi__zipw_init(lsmi__zipw_t *w, FILE *f) {
  memset(w, 0, sizeof *w);
  w->f = f;
}

int lsmi__zipw_data(lsmi__zipw_t *w, const void *p, size_t len) {
  if (len && fwrite(p, 1, len, w->f) != len)
    return LSMI_ERR_IO;
  w->pos += len;
  return 0;
}

#define SAT 0xFFFFFFFFu

int lsmi__zipw_begin(lsmi__zipw_t *w, const char *name, uint32_t crc,
                     uint64_t size) {
  size_t nlen = strlen(name);
  if (w->n >= sizeof w->e / sizeof w->e[0] || nlen >= sizeof w->e[0].name)
    return LSMI_ERR_INVALID;
  lsmi__zipw_entry_t *e = &w->e[w->n++];
  memcpy(e->name, name, nlen + 1);
  e->crc = crc;
  e->size = size;
  e->offset = w->pos;
  bool big = size >= SAT;
  unsigned char h[30 + 20];
  memset(h, 0, sizeof h);
  put32(h, SIG_LOCAL);
  put16(h + 4, big ? 45 : 20);
  put16(h + 12, 0x0021); /* 1980-01-01 */
  put32(h + 14, crc);
  put32(h + 18, big ? SAT : (uint32_t)size);
  put32(h + 22, big ? SAT : (uint32_t)size);
  put16(h + 26, (uint32_t)nlen);
  put16(h + 28, big ? 20 : 0);
  int rc = lsmi__zipw_data(w, h, 30);
  if (!rc)
    rc = lsmi__zipw_data(w, name, nlen);
  if (!rc && big) {
    unsigned char x[20];
    put16(x, 1);
    put16(x + 2, 16);
    put64(x + 4, size);
    put64(x + 12, size);
    rc = lsmi__zipw_data(w, x, 20);
  }
  return rc;
}

/* The central directory header of e, with a Zip64 extra field when its
 * size or offset does not fit 32 bits (*any64 is set then). */
static int write_central(lsmi__zipw_t *w, const lsmi__zipw_entry_t *e,
                         bool *any64) {
  bool bs = e->size >= SAT, bo = e->offset >= SAT;
  size_t nlen = strlen(e->name);
  size_t xlen = (bs || bo) ? 4 + (bs ? 16u : 0u) + (bo ? 8u : 0u) : 0;
  unsigned char h[46 + 28];
  memset(h, 0, sizeof h);
  put32(h, SIG_CENTRAL);
  put16(h + 4, (3u << 8) | 45u);
  put16(h + 6, (bs || bo) ? 45 : 20);
  put16(h + 14, 0x0021);
  put32(h + 16, e->crc);
  put32(h + 20, bs ? SAT : (uint32_t)e->size);
  put32(h + 24, bs ? SAT : (uint32_t)e->size);
  put16(h + 28, (uint32_t)nlen);
  put16(h + 30, (uint32_t)xlen);
  put32(h + 38, 0100644u << 16);
  put32(h + 42, bo ? SAT : (uint32_t)e->offset);
  int rc = lsmi__zipw_data(w, h, 46);
  if (!rc)
    rc = lsmi__zipw_data(w, e->name, nlen);
  if (!rc && xlen) {
    unsigned char x[28];
    size_t k = 4;
    put16(x, 1);
    put16(x + 2, (uint32_t)(xlen - 4));
    if (bs) {
      put64(x + k, e->size);
      put64(x + k + 8, e->size);
      k += 16;
    }
    if (bo)
      put64(x + k, e->offset);
    rc = lsmi__zipw_data(w, x, xlen);
    *any64 = true;
  }
  return rc;
}

/* The Zip64 end record and its locator, for a directory of cd_size bytes
 * at cd_off. */
static int write_end64(lsmi__zipw_t *w, uint64_t cd_off, uint64_t cd_size) {
  uint64_t e64 = w->pos;
  unsigned char r[56 + 20];
  memset(r, 0, sizeof r);
  put32(r, SIG_EOCD64);
  put64(r + 4, 44);
  put16(r + 12, 45);
  put16(r + 14, 45);
  put64(r + 24, w->n);
  put64(r + 32, w->n);
  put64(r + 40, cd_size);
  put64(r + 48, cd_off);
  put32(r + 56, SIG_LOC64);
  put64(r + 64, e64);
  put32(r + 72, 1);
  return lsmi__zipw_data(w, r, sizeof r);
}

int lsmi__zipw_finish(lsmi__zipw_t *w) {
  uint64_t cd_off = w->pos;
  bool any64 = false;
  int rc = 0;
  for (size_t i = 0; i < w->n && !rc; i++)
    rc = write_central(w, &w->e[i], &any64);
  uint64_t cd_size = w->pos - cd_off;
  if (!rc && (any64 || cd_off >= SAT))
    rc = write_end64(w, cd_off, cd_size);
  if (rc)
    return rc;
  unsigned char t[22];
  memset(t, 0, sizeof t);
  put32(t, SIG_EOCD);
  put16(t + 8, (uint32_t)w->n);
  put16(t + 10, (uint32_t)w->n);
  put32(t + 12, cd_size >= SAT ? SAT : (uint32_t)cd_size);
  put32(t + 16, cd_off >= SAT ? SAT : (uint32_t)cd_off);
  return lsmi__zipw_data(w, t, sizeof t);
}
