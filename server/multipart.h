/*
 * multipart.h — a streaming reader of multipart/form-data bodies (RFC 7578)
 * for uploads from a browser's FormData: the bytes of the one file part go
 * to a sink as they arrive, so the file is never whole in memory, and the
 * other parts (form fields) are skipped.
 *
 * A pure state machine over the body's pieces, with no allocation: the
 * caller keeps the struct (in its request) and feeds it every piece.
 */
#ifndef LSMI_MULTIPART_H
#define LSMI_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

enum { LSMI_MULTIPART_HEAD_MAX = 2048 };

typedef void (*lsmi_multipart_sink_fn)(void *ctx, const char *data, size_t n);

typedef struct lsmi_multipart {
  char delim[80]; /* "\r\n--" + boundary */
  size_t dlen;
  int state;
  size_t m;        /* delimiter bytes matched so far */
  char after[2];   /* the two bytes after a delimiter */
  size_t n_after;
  char head[LSMI_MULTIPART_HEAD_MAX]; /* a part's header lines */
  size_t n_head;
  bool active;       /* the current part is the file */
  int files;         /* file parts seen */
  char filename[256]; /* the file part's filename, "" if none */
  const char *error;  /* why the body is malformed, NULL while it is not */
} lsmi_multipart_t;

/*
 * Whether content_type is multipart/form-data; if so, prepares mp from its
 * boundary: 0, or LSMI_ERR_INVALID (mp->error says why) when the boundary
 * is missing or too long. LSMI_ERR_NOTFOUND: another content type.
 */
int lsmi_multipart_init(lsmi_multipart_t *mp, const char *content_type);

/* Feeds n bytes; the file part's bytes go to sink(ctx, ...). After an
 * error (mp->error set) the rest is ignored. */
void lsmi_multipart_feed(lsmi_multipart_t *mp, const char *data, size_t n,
                         lsmi_multipart_sink_fn sink, void *ctx);

/* At the end of the body: 0 when it was whole and held exactly one file
 * part, else LSMI_ERR_FORMAT with mp->error saying what was wrong. */
int lsmi_multipart_finish(lsmi_multipart_t *mp);

#endif
