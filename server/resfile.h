/*
 * resfile.h — per-sample result columns on disk, the orders they are read
 * in, and pages of them as JSON, CSV or NDJSON.
 *
 * One file per job and split, results/<job>.<split>, holding the columns of
 * an lsmi_rows_t: magic "LSMIRES3", n (u64 LE), the number of float64
 * columns (u64 LE: 9, or 13 with an ensemble's spread), y (int32 × n,
 * padded to 8 bytes), then r, u1, u2, s, i1, i2, i12, h1, h2 and with an
 * ensemble r_sd, u1_sd, u2_sd, s_sd (float64 × n each), and last a trailer
 * of 16 bytes: the CRC-32 of everything before it (u64 LE) and "LSMICRC1".
 * Files of version 2 ("LSMIRES2", no trailer) and 1 ("LSMIRES1", no column
 * count, always 9) are still read, unchecked. It is written through
 * common/durable.h with tmp/ as the temp directory (temp name, fsync,
 * rename into results/, fsync of results/), so a crash leaves either the
 * whole file or none, and at worst a temp file that the next start sweeps
 * from tmp/. Files are never changed after the rename, so readers need no
 * lock.
 *
 * Reading never loads a file whole: lsmi_resfile_open maps it read-only
 * and a page touches the rows it prints. The checksum is verified the
 * first time the process opens a file (streamed through a small buffer),
 * and remembered for that file (device, inode, size, mtime): a damaged
 * file answers LSMI_ERR_FORMAT with a message that names the job and the
 * split, never a server path.
 *
 * Orders: a page sorted by a column reads the split's order for that
 * column and direction from cache/<job>.<split>.<col>.<asc|desc> (u32 row
 * indices, magic "LSMIORD1", n, the same CRC trailer), built on the first
 * such request (one pass that sorts the column: 20 bytes a row while it
 * runs, one such build at a time) and kept durably, so every later page
 * reads only its own rows'
 * entries. The cache holds nothing that the result file does not: it may
 * be deleted at any time.
 */
#ifndef LSMI_RESFILE_H
#define LSMI_RESFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsmi.h"
#include "util.h"

/* The columns of a result row, in the CSV order (split aside). */
typedef enum lsmi_rescol {
  LSMI_COL_INDEX = 0,
  LSMI_COL_Y,
  LSMI_COL_R,
  LSMI_COL_U1,
  LSMI_COL_U2,
  LSMI_COL_S,
  LSMI_COL_I1,
  LSMI_COL_I2,
  LSMI_COL_I12,
  LSMI_COL_H1,
  LSMI_COL_H2,
  LSMI_COL_R_SD, /* the sd columns: ensembles only */
  LSMI_COL_U1_SD,
  LSMI_COL_U2_SD,
  LSMI_COL_S_SD,
  LSMI_COL_COUNT
} lsmi_rescol_t;

typedef enum lsmi_resformat {
  LSMI_RES_JSON = 0,
  LSMI_RES_CSV,
  LSMI_RES_NDJSON
} lsmi_resformat_t;

/*
 * Writes rows of `split` ("train"/"val") for job_id durably (see above):
 * 0, or LSMI_ERR_IO with err naming the file and the system's reason.
 */
int lsmi_resfile_write(const char *data_dir, const char *job_id,
                       const char *split, const lsmi_rows_t *rows,
                       lsmi_error_t *err);

/* An open result file: `rows` points into its read-only mapping. */
typedef struct lsmi_resfile {
  lsmi_rows_t rows;
  const char *split; /* "train" or "val" (static) */
  char job_id[64];
  const char *data_dir; /* borrowed from the opener: outlives f */
  void *map;
  size_t map_len;
} lsmi_resfile_t;

/*
 * Opens (maps) the file of job_id's split (checked as said above): 0, or
 * LSMI_ERR_NOTFOUND when there is none, LSMI_ERR_FORMAT when it is damaged
 * (wrong size, bad checksum), LSMI_ERR_IO / LSMI_ERR_NOMEM. err's message
 * names no path. *out is taken: lsmi_resfile_close.
 */
int lsmi_resfile_open(const char *data_dir, const char *job_id,
                      const char *split, lsmi_resfile_t **out,
                      lsmi_error_t *err);
/* NULL is a no-op. */
void lsmi_resfile_close(lsmi_resfile_t *f);

/*
 * The rows of f ordered by column col (NaN last in either direction, ties
 * by index ascending), as a mapped array of f->rows.n row indices, from the
 * cache or built into it (see above): 0, or a status with err. Index order
 * needs no array: *order is then NULL. Release with lsmi_resfile_unorder.
 */
int lsmi_resfile_order(lsmi_resfile_t *f, lsmi_rescol_t col, bool desc,
                       const uint32_t **order, size_t *map_len,
                       lsmi_error_t *err);
void lsmi_resfile_unorder(const uint32_t *order, size_t map_len);

/* Removes both splits' files of a job and their cached orders (missing
 * files are fine). */
void lsmi_resfile_remove(const char *data_dir, const char *job_id);

/*
 * "-s" / "s" / "index": the column and direction; `order` ("asc", "desc"
 * or NULL) applies when there is no '-'. LSMI_ERR_INVALID for other names.
 */
int lsmi_resfile_parse_sort(const char *sort, const char *order,
                            lsmi_rescol_t *col, bool *desc);
int lsmi_resfile_parse_format(const char *name, lsmi_resformat_t *fmt);
const char *lsmi_resfile_col_name(lsmi_rescol_t col);
/* The column called `name` (exactly, for `len` bytes): 0 or
 * LSMI_ERR_INVALID. */
int lsmi_resfile_col_parse(const char *name, size_t len, lsmi_rescol_t *col);

/* Whether rows has column col (the sd columns only with an ensemble). */
bool lsmi_resfile_has_col(const lsmi_rows_t *rows, lsmi_rescol_t col);
/* Row i's value of column col (index and y as doubles). */
double lsmi_resfile_value(const lsmi_rows_t *rows, lsmi_rescol_t col,
                          size_t i);

enum { LSMI_RES_MAX_Y = 64 };

/* Which rows, in which order, printed how. */
typedef struct lsmi_resquery {
  int nsplits;           /* 1, or 2 for split=all (train, then val) */
  const char *splits[2]; /* "train" / "val" */
  lsmi_rescol_t sort;
  bool desc;
  size_t offset, limit; /* limit SIZE_MAX: every matching row */
  lsmi_resformat_t format;
  uint32_t fields; /* bit (1 << col) per column printed; 0: all there are */
  int ny;          /* y must be one of ys[0..ny) (ny 0: any class) */
  int32_t ys[LSMI_RES_MAX_Y];
  /* Ranges: lo[c] <= value <= hi[c] (NaN never matches a range). */
  uint32_t has_lo, has_hi;
  double lo[LSMI_COL_COUNT], hi[LSMI_COL_COUNT];
} lsmi_resquery_t;

/* A query of split "val", index order, no filter, every field. */
void lsmi_resquery_init(lsmi_resquery_t *q);
/* Whether q filters rows (by class or a range). */
bool lsmi_resquery_filters(const lsmi_resquery_t *q);

/*
 * Walks the rows a query selects, in its order, and renders them. The
 * files (one per split of the query) are borrowed. Several splits are
 * merged by the sort column (ties: train before val, then index); index
 * order lists train then val.
 */
typedef struct lsmi_rescursor {
  const lsmi_resquery_t *q;
  lsmi_resfile_t *f[2];
  const uint32_t *order[2];
  size_t order_len[2];
  size_t pos[2];   /* next position in each split's order */
  size_t emitted;  /* rows rendered */
  size_t total;    /* rows the query matches, offset and limit aside */
  bool started;    /* the offset was skipped */
  bool head, tail; /* the format's opening / closing text was written */
} lsmi_rescursor_t;

/*
 * Prepares a cursor over files f[0..q->nsplits) (orders built if needed;
 * total counted): 0, or a status with err (then nothing to release).
 */
int lsmi_rescursor_init(lsmi_rescursor_t *c, const lsmi_resquery_t *q,
                        lsmi_resfile_t *const *f, lsmi_error_t *err);
void lsmi_rescursor_release(lsmi_rescursor_t *c);
/*
 * Appends the next rows (the format's header first: a JSON page's head up
 * to "rows":[ , or the CSV header) to b until it holds at least `want`
 * bytes or the page ends; returns true while rows remain. A JSON page's
 * head holds `extra` (text of more members ending in ',', or NULL).
 */
bool lsmi_rescursor_render(lsmi_rescursor_t *c, lsmi_strbuf_t *b,
                           size_t want, const char *extra);

/* Appends row i of f as a JSON object (the fields of q, 0: all). */
void lsmi_resfile_row_json(lsmi_strbuf_t *b, const lsmi_resfile_t *f,
                           size_t i, uint32_t fields);

#endif
