/*
 * resfile.h — per-sample result columns on disk, and pages of them as JSON,
 * CSV or NDJSON.
 *
 * One file per job and split, results/<job>.<split>, holding the columns of
 * an lsmi_rows_t: magic "LSMIRES2", n (u64 LE), the number of float64
 * columns (u64 LE: 9, or 13 with an ensemble's spread), y (int32 × n,
 * padded to 8 bytes), then r, u1, u2, s, i1, i2, i12, h1, h2 and with an
 * ensemble r_sd, u1_sd, u2_sd, s_sd (float64 × n each). Files of the first
 * version ("LSMIRES1", no column count, always 9) are still read. It is
 * written through common/durable.h with tmp/ as the temp directory (temp
 * name, fsync, rename into results/, fsync of results/), so a crash leaves
 * either the whole file or none, and at worst a temp file that the next
 * start sweeps from tmp/. Files are never changed after the rename, so
 * readers need no lock.
 */
#ifndef LSMI_RESFILE_H
#define LSMI_RESFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "lsmi.h"

/* Columns a page can be sorted by, in the CSV order (split aside). */
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

/*
 * Reads them back into *rows (one allocation; free with
 * lsmi_resfile_rows_free). LSMI_ERR_IO when the file is missing,
 * LSMI_ERR_FORMAT when it is not a whole result file.
 */
int lsmi_resfile_read(const char *data_dir, const char *job_id,
                      const char *split, lsmi_rows_t *rows, lsmi_error_t *err);
void lsmi_resfile_rows_free(lsmi_rows_t *rows);

/* Removes both splits' files of a job (missing files are fine). */
void lsmi_resfile_remove(const char *data_dir, const char *job_id);

/*
 * "-s" / "s" / "index": the column and direction; `order` ("asc", "desc"
 * or NULL) applies when there is no '-'. LSMI_ERR_INVALID for other names.
 */
int lsmi_resfile_parse_sort(const char *sort, const char *order,
                            lsmi_rescol_t *col, bool *desc);
int lsmi_resfile_parse_format(const char *name, lsmi_resformat_t *fmt);
const char *lsmi_resfile_col_name(lsmi_rescol_t col);

typedef struct lsmi_respage {
  const char *split;
  size_t offset, limit;
  lsmi_rescol_t sort;
  bool desc;
  lsmi_resformat_t format;
} lsmi_respage_t;

/* Whether rows has column col (the sd columns only with an ensemble). */
bool lsmi_resfile_has_col(const lsmi_rows_t *rows, lsmi_rescol_t col);

/*
 * Renders one page: rows ordered by the sort column (ties by index, so
 * pages are stable), then [offset, offset+limit). Every column rows has is
 * in each row. Returns a malloc'd body (taken by the caller) and its length
 * and content type; NULL on no memory.
 */
char *lsmi_resfile_render(const lsmi_rows_t *rows, const lsmi_respage_t *q,
                          size_t *len, const char **content_type);

#endif
