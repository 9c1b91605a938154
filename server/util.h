/*
 * util.h — small helpers the daemon's modules share: wall-clock time and
 * RFC 3339 stamps, random object ids, hex, a growable string, and the
 * structured JSON log. (Durable file writes are common/durable.h's.)
 */
#ifndef LSMI_UTIL_H
#define LSMI_UTIL_H

#include <jansson.h>
#include <stddef.h>

#include "lsmi.h"

/* Seconds since the epoch, with sub-second resolution (CLOCK_REALTIME). */
double lsmi_util_now(void);
/* Seconds of a monotonic clock, for durations. */
double lsmi_util_mono(void);
/* Writes t as "2026-11-27T10:55:06.123Z" into buf (at least 32 bytes). */
void lsmi_util_iso8601(double t, char *buf, size_t size);

/*
 * Writes prefix + 20 random hex digits into out (size >= strlen(prefix)+21).
 * Returns 0, LSMI_ERR_IO when the kernel gave no random bytes, or
 * LSMI_ERR_INVALID when out is too small (out is then unspecified).
 */
int lsmi_util_random_id(const char *prefix, char *out, size_t size);

/*
 * Rewrites, in place, every path of msg (size bytes) that a client must
 * not see: one under the data directory (as configured, or resolved) to
 * its place there ("datasets/ds_1"), any other absolute path to its last
 * component. Error details pass through it before they leave the daemon;
 * the log keeps the whole message.
 */
void lsmi_util_scrub_paths(char *msg, size_t size, const char *data_dir);

/* The status of a failed write's errno: LSMI_ERR_NOSPACE for a full disk
 * or quota (ENOSPC, EDQUOT), LSMI_ERR_IO for the rest. */
int lsmi_util_errno_status(int e);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void lsmi_util_hex(const unsigned char *in, size_t n, char *out);

/* The compact JSON text of v, members in their order; v is taken (may be
 * NULL). Malloc'd, taken by the caller; NULL when v is NULL or memory
 * runs out. */
char *lsmi_util_json_text(json_t *v);

/*
 * A growable string for text built piece by piece (the metrics exposition,
 * pages of results). Start with lsmi_strbuf_init; lsmi_strbuf_printf appends
 * and grows the buffer; after an allocation failure `oom` is set and every
 * later append is a no-op. The caller owns `p` and frees it.
 */
typedef struct lsmi_strbuf {
  char *p;
  size_t len, cap;
  int oom;
} lsmi_strbuf_t;

/* Allocates `cap` bytes (an empty string); oom is set when that fails. */
void lsmi_strbuf_init(lsmi_strbuf_t *b, size_t cap);
void lsmi_strbuf_printf(lsmi_strbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The structured log: one JSON object per line on stderr. lsmi_util_log
 * takes the reference to `fields` (an object; may be NULL), adds "level"
 * when fields has none ("error", "warn" or "info", by event), "ts" and
 * "event", and writes the line with one locked stdio call, so lines from
 * different threads never interleave. Reals print with 12 significant
 * digits.
 */
void lsmi_util_log(const char *event, json_t *fields);
/* Level filter: quiet = 1 silences per-request lines (tests, load runs). */
void lsmi_util_log_quiet_requests(int quiet);
int lsmi_util_log_requests_quiet(void);

#endif
