/*
 * sha256.h — a small SHA-256 (FIPS 180-4): the canonical dataset hash, the
 * checksums of uploads and of stored keys (internal to lsmi).
 * lsmi links no crypto library; this is all it needs.
 */
#ifndef LSMI_SHA256_H
#define LSMI_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsmi_sha256 {
  uint32_t h[8];
  uint64_t bytes;        /* message length so far */
  unsigned char buf[64]; /* pending partial block */
  size_t fill;           /* bytes in buf */
} lsmi_sha256_t;

void lsmi_sha256_init(lsmi_sha256_t *s);
void lsmi_sha256_update(lsmi_sha256_t *s, const void *data, size_t len);
void lsmi_sha256_final(lsmi_sha256_t *s, unsigned char out[32]);

#endif
