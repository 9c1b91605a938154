/*
 * pgblob.c — files kept in PostgreSQL (see pgstore.h): a blob is a row of
 * blobs (size, SHA-256, chunk count) and its chunks in blob_chunks, one
 * bytea row of LSMI_PG_CHUNK_BYTES each (pgschema.c says why not large
 * objects). Both ways the bytes stream one chunk at a time, one statement
 * per chunk: memory stays at a chunk or two whatever the file's size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable.h"
#include "pgint.h"
#include "sha256.h"
#include "util.h"

void lsmi_pg_dataset_key(const char *dataset_id, char *buf) {
  snprintf(buf, LSMI_PG_KEY_MAX, "dataset/%s", dataset_id);
}

void lsmi_pg_result_key(const char *job_id, const char *split, char *buf) {
  snprintf(buf, LSMI_PG_KEY_MAX, "result/%s/%s", job_id, split);
}

static int file_error(const char *what, const char *path, int errnum) {
  lsmi_util_log("store_error",
                json_pack("{s:s, s:s, s:s}", "what", what, "path", path,
                          "error", strerror(errnum)));
  return LSMI_ERR_IO;
}

/* Writes the chunks of f as blob key (already inserted) with buf's size;
 * *bytes and hex (65 bytes) receive the size and SHA-256. */
static int put_chunks(lsmi_pg_t *pg, lsmi_pq_conn_t *c, const char *key,
                      FILE *f, unsigned char *buf, uint64_t *bytes, int *chunks,
                      char *hex) {
  lsmi_sha256_t sha;
  lsmi_sha256_init(&sha);
  int rc = LSMI_OK;
  *bytes = 0;
  *chunks = 0;
  for (;;) {
    size_t got = fread(buf, 1, pg->chunk, f);
    if (got > 0) {
      lsmi_sha256_update(&sha, buf, got);
      lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
      lsmi_pq_text(&p, key);
      lsmi_pq_int(&p, *chunks);
      lsmi_pq_bytes(&p, buf, got);
      rc = lsmi_pq_run(c,
                       "INSERT INTO blob_chunks (key, seq, data) VALUES "
                       "($1, $2, $3)",
                       &p, false, NULL);
      if (rc)
        return rc;
      *bytes += got;
      ++*chunks;
    }
    if (got < pg->chunk)
      break;
  }
  if (ferror(f))
    return file_error("blob_put", key, errno ? errno : EIO);
  unsigned char digest[32];
  lsmi_sha256_final(&sha, digest);
  lsmi_util_hex(digest, sizeof digest, hex);
  return rc;
}

int lsmi_pg__blob_write(lsmi_pg_t *pg, lsmi_pq_conn_t *c, const char *key,
                        const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return file_error("blob_put", path, errno);
  unsigned char *buf = malloc(pg->chunk);
  int rc = buf ? LSMI_OK : LSMI_ERR_NOMEM;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, key);
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c, "DELETE FROM blobs WHERE key = $1", &p, false, NULL);
  lsmi_pq_int(&p, (int64_t)pg->chunk);
  lsmi_pq_double(&p, lsmi_util_now());
  if (rc == LSMI_OK)
    rc = lsmi_pq_run(c,
                     "INSERT INTO blobs (key, bytes, sha256, chunk_bytes, "
                     "chunks, created_at) VALUES ($1, 0, '', $2, 0, $3)",
                     &p, false, NULL);
  uint64_t bytes = 0;
  int chunks = 0;
  char hex[65] = "";
  if (rc == LSMI_OK)
    rc = put_chunks(pg, c, key, f, buf, &bytes, &chunks, hex);
  if (rc == LSMI_OK) {
    lsmi_pq_params_t q = LSMI_PQ_PARAMS_INIT;
    lsmi_pq_text(&q, key);
    lsmi_pq_int(&q, (int64_t)bytes);
    lsmi_pq_text(&q, hex);
    lsmi_pq_int(&q, chunks);
    rc = lsmi_pq_run(c,
                     "UPDATE blobs SET bytes = $2, sha256 = $3, chunks = $4 "
                     "WHERE key = $1",
                     &q, false, NULL);
  }
  free(buf);
  fclose(f);
  return rc;
}

typedef struct blob_ctx {
  const char *key, *path, *tmpdir;
  uint64_t *bytes;
} blob_ctx_t;

static int blob_put_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  const blob_ctx_t *b = ctx;
  return lsmi_pg__blob_write(pg, c, b->key, b->path);
}

int lsmi_pg_blob_put(lsmi_pg_t *pg, const char *key, const char *path) {
  blob_ctx_t b = {key, path, NULL, NULL};
  return lsmi_pg__in_tx(pg, "BEGIN", blob_put_body, &b);
}

/* Appends chunk seq of key to d and sha; *len receives its size. */
static int fetch_chunk(lsmi_pq_conn_t *c, const char *key, int seq,
                       lsmi_durable_t *d, lsmi_sha256_t *sha, uint64_t *len) {
  const lsmi_pq_t *L = lsmi_pq();
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, key);
  lsmi_pq_int(&p, seq);
  PGresult *res = NULL;
  int rc = lsmi_pg__query(NULL, c,
                          "SELECT data FROM blob_chunks WHERE key = $1 AND "
                          "seq = $2",
                          &p, true, LSMI_ERR_NOTFOUND, &res);
  if (rc == LSMI_ERR_NOTFOUND)
    return file_error("blob_fetch: a chunk is missing", key, EIO);
  if (rc)
    return rc;
  const char *data = L->getvalue(res, 0, 0);
  size_t n = (size_t)L->getlength(res, 0, 0);
  lsmi_sha256_update(sha, data, n);
  *len = n;
  int e = lsmi_durable_write(d, data, n);
  L->clear(res);
  return e ? file_error("blob_fetch", d->tmp, -e) : LSMI_OK;
}

/* The chunks of a blob whose size, hash and count are known, into d. */
static int fetch_chunks(lsmi_pq_conn_t *c, const char *key, uint64_t bytes,
                        const char *want, int chunks, lsmi_durable_t *d) {
  lsmi_sha256_t sha;
  lsmi_sha256_init(&sha);
  uint64_t total = 0;
  for (int seq = 0; seq < chunks; seq++) {
    uint64_t len = 0;
    int rc = fetch_chunk(c, key, seq, d, &sha, &len);
    if (rc)
      return rc;
    total += len;
  }
  unsigned char digest[32];
  char hex[65];
  lsmi_sha256_final(&sha, digest);
  lsmi_util_hex(digest, sizeof digest, hex);
  if (total != bytes || strcmp(hex, want) != 0)
    return file_error("blob_fetch: the bytes do not match the blob's size "
                      "and SHA-256",
                      key, EIO);
  return LSMI_OK;
}

static int blob_fetch_body(lsmi_pg_t *pg, lsmi_pq_conn_t *c, void *ctx) {
  const blob_ctx_t *b = ctx;
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, b->key);
  PGresult *res = NULL;
  int rc = lsmi_pg__query(pg, c,
                          "SELECT bytes, sha256, chunks FROM blobs WHERE key "
                          "= $1",
                          &p, false, LSMI_ERR_NOTFOUND, &res);
  if (rc)
    return rc;
  uint64_t bytes = (uint64_t)lsmi_pq_get_int(res, 0, 0);
  char want[65];
  snprintf(want, sizeof want, "%s", lsmi_pq_get(res, 0, 1));
  int chunks = (int)lsmi_pq_get_int(res, 0, 2);
  lsmi_pq()->clear(res);
  lsmi_durable_t d = LSMI_DURABLE_INIT;
  int e = lsmi_durable_begin(&d, b->tmpdir, b->path, 0600);
  if (e)
    return file_error("blob_fetch", b->path, -e);
  rc = fetch_chunks(c, b->key, bytes, want, chunks, &d);
  if (rc == LSMI_OK && (e = lsmi_durable_commit(&d, b->path)) != 0)
    rc = file_error("blob_fetch", b->path, -e);
  lsmi_durable_abort(&d);
  if (rc == LSMI_OK && b->bytes)
    *b->bytes = bytes;
  return rc;
}

int lsmi_pg_blob_fetch(lsmi_pg_t *pg, const char *key, const char *path,
                       const char *tmpdir, uint64_t *bytes) {
  blob_ctx_t b = {key, path, tmpdir, bytes};
  return lsmi_pg__in_tx(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                        blob_fetch_body, &b);
}

int lsmi_pg_blob_delete(lsmi_pg_t *pg, const char *key) {
  lsmi_pq_params_t p = LSMI_PQ_PARAMS_INIT;
  lsmi_pq_text(&p, key);
  return lsmi_pg__query(pg, NULL,
                        "DELETE FROM blobs WHERE key = $1 RETURNING 1", &p,
                        false, LSMI_ERR_NOTFOUND, NULL);
}
