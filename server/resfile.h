/*
 * resfile.h — per-sample result columns on disk, the orders they are read
 * in, and pages of them as JSON, CSV or NDJSON.
 *
 * One file per job and split, results/<job>.<split>, holding the columns of
 * an lsmi_rows_t and what joins each row back to the input file. Version 4,
 * all integers u64 LE, every section a multiple of 8 bytes:
 *
 *   "LSMIRES4", n, the number of float64 columns (9, or 13 with an
 *   ensemble's spread), flags (1: rows, 2: ids, 4: ids are integers,
 *   8: class names, 16: class names are integers), the number of class
 *   names, the bytes of the ids' text, the bytes of the names' text;
 *   y (int32 × n, padded to 8 bytes); r, u1, u2, s, i1, i2, i12, h1, h2
 *   and with an ensemble r_sd, u1_sd, u2_sd, s_sd (float64 × n each);
 *   with flag 1 the rows' positions in the file (u64 × n); with flag 2 the
 *   ids: their offsets (u64 × n) into their text (each id NUL-terminated,
 *   the whole padded with NULs); with flag 8 the class names alike (offsets
 *   u64 × names, text); and last a trailer of 16 bytes: the CRC-32 of
 *   everything before it (u64 LE) and "LSMICRC1".
 *
 * Ids and names are stored as UTF-8 (a byte that is not is stored as
 * U+FFFD), so that every one is a JSON string. Files of version 3
 * ("LSMIRES3": the head's first three numbers, then y and the columns,
 * then the trailer), 2 ("LSMIRES2", no trailer) and 1 ("LSMIRES1", no
 * column count, always 9) are still read, the older two unchecked; they
 * have no row, id or label. A file is written through common/durable.h
 * with tmp/ as the temp directory (temp name, fsync, rename into results/,
 * fsync of results/), so a crash leaves either the whole file or none, and
 * at worst a temp file that the next start sweeps from tmp/. Files are
 * never changed after the rename, so readers need no lock.
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

/* The columns of a result row, in the CSV order (split aside): those of
 * `lsmi fit`'s CSV, then the file's row, the sample id and the label (the
 * class name of y). */
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
  LSMI_COL_ROW,   /* the position in the input file (version 4) */
  LSMI_COL_ID,    /* the sample id, when the file had ids (text) */
  LSMI_COL_LABEL, /* the class name, when labels were not 0 .. C-1 (text) */
  LSMI_COL_COUNT
} lsmi_rescol_t;

typedef enum lsmi_resformat {
  LSMI_RES_JSON = 0,
  LSMI_RES_CSV,
  LSMI_RES_NDJSON
} lsmi_resformat_t;

/* What joins result rows back to the input (lsmi_split_t and
 * lsmi_dataset_t's; all borrowed; a NULL pointer: none). */
typedef struct lsmi_resjoin {
  const uint64_t *row;      /* (n) positions in the file */
  char *const *id;          /* (n) sample ids */
  bool id_numeric;          /* every id is an integer's text */
  char *const *class_names; /* (classes) the labels' own values */
  int classes;
  bool class_names_numeric;
} lsmi_resjoin_t;

/*
 * What joins the rows of split sp of ds back to the file, as `lsmi fit`'s
 * rows give it (cli/fit_out.h): the rows' positions only when some row of
 * ds is not at its index in its split (lsmi drew val, or a split column
 * interleaved the file; else row = index), the ids when the file had
 * them, the class names when the labels were not 0 .. C-1.
 */
lsmi_resjoin_t lsmi_resjoin_of(const lsmi_dataset_t *ds,
                               const lsmi_split_t *sp);

/*
 * Writes rows of `split` ("train"/"val") for job_id durably (see above),
 * with join (may be NULL: no row, id or label): 0, or LSMI_ERR_IO with err
 * naming the file and the system's reason (LSMI_ERR_NOMEM without memory).
 */
int lsmi_resfile_write_ex(const char *data_dir, const char *job_id,
                          const char *split, const lsmi_rows_t *rows,
                          const lsmi_resjoin_t *join, lsmi_error_t *err);
/* lsmi_resfile_write_ex without join. */
int lsmi_resfile_write(const char *data_dir, const char *job_id,
                       const char *split, const lsmi_rows_t *rows,
                       lsmi_error_t *err);

/* An open result file: `rows` and the join columns point into its
 * read-only mapping. */
typedef struct lsmi_resfile {
  lsmi_rows_t rows;
  const char *split; /* "train" or "val" (static) */
  char job_id[64];
  const char *data_dir; /* borrowed from the opener: outlives f */
  void *map;
  size_t map_len;
  int version;
  const uint64_t *row;    /* (n) or NULL */
  const uint64_t *id_off; /* (n) or NULL */
  const char *id_text;    /* id_bytes, the last one NUL */
  uint64_t id_bytes;
  bool id_numeric;
  const uint64_t *name_off; /* (nnames) or NULL */
  const char *name_text;
  uint64_t name_bytes, nnames;
  bool names_numeric;
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

/* The bytes of both splits' files of a job (a missing file counts 0): what
 * the job holds of its tenant's quota. */
uint64_t lsmi_resfile_bytes(const char *data_dir, const char *job_id);

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

/* Whether f has column col (the sd columns only with an ensemble; row in
 * a file of version 4, stored or equal to index; id and label where the
 * file has them). */
bool lsmi_resfile_has_col(const lsmi_resfile_t *f, lsmi_rescol_t col);
/* Whether col holds numbers (every column but id and label). */
bool lsmi_resfile_col_numeric(lsmi_rescol_t col);
/* Why f has no column col, as a sentence (static). */
const char *lsmi_resfile_why_not(const lsmi_resfile_t *f, lsmi_rescol_t col);
/* Row i's value of the numeric column col (index, y and row as doubles;
 * NaN for id and label). */
double lsmi_resfile_value(const lsmi_resfile_t *f, lsmi_rescol_t col, size_t i);
/* Row i's id (NUL-terminated, in the mapping), or NULL when it has none. */
const char *lsmi_resfile_id(const lsmi_resfile_t *f, size_t i);
/* The name of class y, or NULL when f has no class names (or not y's). */
const char *lsmi_resfile_label(const lsmi_resfile_t *f, int32_t y);
/* A label of f as JSON (an integer when the names are), or NULL when it
 * has none. New ref. */
json_t *lsmi_resfile_label_json(const lsmi_resfile_t *f, int32_t y);

enum { LSMI_RES_MAX_Y = 64 };

/* Which rows, in which order, printed how. */
typedef struct lsmi_resquery {
  int nsplits;           /* 1, or 2 for split=all (train, then val) */
  const char *splits[2]; /* "train" / "val" */
  lsmi_rescol_t sort;
  bool desc;
  size_t offset, limit; /* limit SIZE_MAX: every matching row */
  lsmi_resformat_t format;
  uint32_t fields; /* bit (1 << col) per column printed; 0: all there are
                      (row only when stored: else it is index) */
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
