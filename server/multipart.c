/*
 * multipart.c — multipart/form-data, streamed (see multipart.h).
 *
 * The body is read as if it began with "\r\n", so that every boundary,
 * the first included, is the delimiter "\r\n--BOUNDARY". A boundary holds
 * no CR (RFC 2046), so '\r' can start a delimiter only at its first byte:
 * a failed partial match gives its bytes back as data and the matching
 * restarts at the byte that failed, with no lookbehind buffer.
 */
#include <string.h>
#include <strings.h>

#include "lsmi.h"
#include "multipart.h"

enum { PREAMBLE, AFTER, HEADERS, BODY, DONE };

int lsmi_multipart_init(lsmi_multipart_t *mp, const char *content_type) {
  memset(mp, 0, sizeof *mp);
  if (content_type == NULL ||
      strncasecmp(content_type, "multipart/form-data", 19) != 0)
    return LSMI_ERR_NOTFOUND;
  const char *b = strcasestr(content_type, "boundary=");
  if (b == NULL) {
    mp->error = "multipart/form-data without a boundary";
    return LSMI_ERR_INVALID;
  }
  b += 9;
  bool quoted = *b == '"';
  b += quoted;
  size_t len = strcspn(b, quoted ? "\"" : "; \t");
  if (len == 0 || len > 70 || memchr(b, '\r', len)) {
    mp->error = "the multipart boundary must have 1 to 70 characters";
    return LSMI_ERR_INVALID;
  }
  memcpy(mp->delim, "\r\n--", 4);
  memcpy(mp->delim + 4, b, len);
  mp->dlen = len + 4;
  mp->state = PREAMBLE;
  mp->m = 2; /* the "\r\n" the body is read as starting with */
  return LSMI_OK;
}

/* A part's headers are in: is it the file? */
static void part_begins(lsmi_multipart_t *mp) {
  mp->head[mp->n_head] = '\0';
  const char *cd = strcasestr(mp->head, "content-disposition:");
  const char *fn = cd ? strcasestr(cd, "filename=") : NULL;
  mp->active = false;
  if (fn == NULL)
    return; /* a form field: skipped */
  if (++mp->files > 1) {
    mp->error = "send one file per upload (this form has several)";
    return;
  }
  fn += 9;
  bool quoted = *fn == '"';
  fn += quoted;
  size_t len = strcspn(fn, quoted ? "\"\r\n" : ";\r\n");
  if (len >= sizeof mp->filename)
    len = sizeof mp->filename - 1;
  memcpy(mp->filename, fn, len);
  mp->filename[len] = '\0';
  mp->active = true;
}

/* Bytes of a part's body (or of the preamble, which are dropped). */
static void data(lsmi_multipart_t *mp, const char *p, size_t n,
                 lsmi_multipart_sink_fn sink, void *ctx) {
  if (mp->state == BODY && mp->active && n)
    sink(ctx, p, n);
}

void lsmi_multipart_feed(lsmi_multipart_t *mp, const char *p, size_t n,
                         lsmi_multipart_sink_fn sink, void *ctx) {
  size_t i = 0;
  while (i < n && mp->error == NULL) {
    switch (mp->state) {
    case PREAMBLE:
    case BODY:
      if (mp->m == 0) {
        const char *cr = memchr(p + i, '\r', n - i);
        size_t end = cr ? (size_t)(cr - p) : n;
        data(mp, p + i, end - i, sink, ctx);
        i = end;
        if (cr) {
          mp->m = 1;
          i++;
        }
      } else if (p[i] == mp->delim[mp->m]) {
        i++;
        if (++mp->m == mp->dlen) {
          mp->m = 0;
          mp->state = AFTER;
          mp->n_after = 0;
          mp->active = false;
        }
      } else { /* not a delimiter after all: those bytes were data */
        data(mp, mp->delim, mp->m, sink, ctx);
        mp->m = 0;
      }
      break;
    case AFTER:
      mp->after[mp->n_after++] = p[i++];
      if (mp->n_after < 2)
        break;
      if (!memcmp(mp->after, "--", 2))
        mp->state = DONE;
      else if (!memcmp(mp->after, "\r\n", 2)) {
        mp->state = HEADERS;
        mp->n_head = 0;
      } else
        mp->error = "a multipart boundary is followed by neither CRLF nor --";
      break;
    case HEADERS:
      if (mp->n_head + 1 >= sizeof mp->head) {
        mp->error = "a multipart part's headers are too long";
        break;
      }
      mp->head[mp->n_head++] = p[i++];
      if (mp->n_head >= 4 && !memcmp(mp->head + mp->n_head - 4, "\r\n\r\n", 4)) {
        mp->state = BODY;
        part_begins(mp);
      } else if (mp->n_head == 2 && !memcmp(mp->head, "\r\n", 2)) {
        mp->state = BODY; /* a part with no headers: not a file */
        mp->active = false;
      }
      break;
    default: /* DONE: the epilogue is ignored */
      i = n;
    }
  }
}

int lsmi_multipart_finish(lsmi_multipart_t *mp) {
  if (mp->error == NULL && mp->state != DONE)
    mp->error = "the multipart body ends before its closing boundary";
  if (mp->error == NULL && mp->files == 0)
    mp->error = "the multipart form has no file part (a field with a "
                "filename)";
  return mp->error ? LSMI_ERR_FORMAT : LSMI_OK;
}
