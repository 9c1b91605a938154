/*
 * zip.h — the zip container under .npz and PyTorch files (internal).
 *
 * The reader works on a whole file in memory and trusts nothing in it: the
 * central directory is the single source of truth for names, sizes and
 * offsets (the local headers are read only for their name and extra-field
 * lengths), every offset is checked against the buffer, and inflating is
 * bounded by the declared size, the member ratio and the running total of
 * lsmi_limits_t, so a zip bomb stops at the limit instead of the memory.
 * The writer writes stored (uncompressed) members with their CRC known in
 * advance, Zip64 records only when sizes or offsets need them.
 */
#ifndef LSMI_ZIP_H
#define LSMI_ZIP_H

#include <stdint.h>
#include <stdio.h>

#include "lsmi.h"

typedef struct lsmi__zip_entry {
  char *name;      /* NUL-terminated copy of the member name */
  uint16_t method; /* 0 stored, 8 deflate */
  uint16_t flags;
  uint32_t crc;
  uint64_t csize;    /* compressed bytes */
  uint64_t usize;    /* uncompressed bytes */
  uint64_t data_off; /* offset of the member's data in the buffer */
} lsmi__zip_entry_t;

typedef struct lsmi__zip {
  const unsigned char *buf; /* borrowed */
  size_t len;
  lsmi__zip_entry_t *e;
  size_t n;
  uint64_t inflated;        /* running total for max_decompressed_bytes */
  const lsmi_limits_t *lim; /* borrowed */
} lsmi__zip_t;

/* Parses the directory of the zip in buf. z must be closed afterwards even
 * when this fails. */
int lsmi__zip_open(lsmi__zip_t *z, const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi_error_t *err);
void lsmi__zip_close(lsmi__zip_t *z);

/* The entry called `name`, or NULL. */
const lsmi__zip_entry_t *lsmi__zip_find(const lsmi__zip_t *z, const char *name);

/*
 * The content of entry e, CRC-checked. A stored member is returned in place
 * (*owned = NULL); an inflated one in a new buffer, *owned (taken by the
 * caller, free()). *data points at the bytes either way.
 */
int lsmi__zip_read(lsmi__zip_t *z, const lsmi__zip_entry_t *e,
                   const unsigned char **data, size_t *len, void **owned,
                   lsmi_error_t *err);

/* The writer: begin a member (size and crc known), write its bytes, and
 * finish the archive with the central directory. */
typedef struct lsmi__zipw_entry {
  char name[64];
  uint32_t crc;
  uint64_t size, offset;
} lsmi__zipw_entry_t;

typedef struct lsmi__zipw {
  FILE *f; /* borrowed */
  uint64_t pos;
  lsmi__zipw_entry_t e[16];
  size_t n;
} lsmi__zipw_t;

void lsmi__zipw_init(lsmi__zipw_t *w, FILE *f);
int lsmi__zipw_begin(lsmi__zipw_t *w, const char *name, uint32_t crc,
                     uint64_t size);
int lsmi__zipw_data(lsmi__zipw_t *w, const void *p, size_t len);
int lsmi__zipw_finish(lsmi__zipw_t *w);

#endif
