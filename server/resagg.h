/*
 * resagg.h — aggregates of result columns, computed on the server so that
 * a dashboard draws a histogram without downloading the rows: per split
 * and column, the count, NaNs, range, mean and standard deviation, a
 * histogram over a range shared by the splits, quantiles, and the count,
 * mean and standard deviation per class.
 *
 * One pass over each column (its mapped pages) for the moments, the range,
 * the histogram and the classes, and a selection over a copy of the column
 * (8 bytes a row, for the duration of the call) for the quantiles.
 */
#ifndef LSMI_RESAGG_H
#define LSMI_RESAGG_H

#include <jansson.h>
#include <stdbool.h>

#include "resfile.h"

enum { LSMI_RESAGG_MAX_BINS = 1000, LSMI_RESAGG_MAX_CLASSES = 65536 };

typedef struct lsmi_resagg_query {
  int ncols;
  lsmi_rescol_t cols[LSMI_COL_COUNT];
  int bins;
  bool has_range; /* lo and hi given: the histogram's range */
  double lo, hi;
} lsmi_resagg_query_t;

/*
 * The aggregates of q over files f[0..nsplits) (borrowed) as
 * {bins, splits: {SPLIT: {n, columns: {COL: {...}}}}} into *out (new
 * reference): 0, or LSMI_ERR_NOMEM.
 */
int lsmi_resagg(lsmi_resfile_t *const *f, int nsplits,
                const lsmi_resagg_query_t *q, json_t **out, lsmi_error_t *err);

#endif
