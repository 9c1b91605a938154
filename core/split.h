/*
 * split.h — seeded, stratified partitions of a split's rows (internal).
 *
 * Every random partition lsmi draws (the val split of a file that has none,
 * the early-stopping holdout, the cross-fitting folds) is stratified by
 * class the same way: the rows are grouped by class in row order, each
 * class's rows are shuffled with one stream (Fisher-Yates from the top, in
 * class order), and the partition takes the shuffled rows of each class in
 * turn. So a partition keeps every class's share in every part, and the
 * same seed gives the same partition on any machine.
 */
#ifndef LSMI_SPLIT_H
#define LSMI_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/*
 * Groups rows 0..n-1 by label y (in [0, C)) and shuffles each group with
 * rng: order (n) receives the rows, class c's at order[start[c] ..
 * start[c + 1]); start has C + 1 entries. Returns 0, or LSMI_ERR_NOMEM.
 */
int lsmi__stratify(const int32_t *y, size_t n, int C, lsmi_rng_t *rng,
                   uint32_t *order, size_t *start);

/*
 * Marks round(fraction * m) rows of each class (m its row count; at most
 * m - 1, so that every class keeps a row) with `mark` in out (n entries,
 * others left as they are). Returns the number of rows marked, or a
 * negative status (LSMI_ERR_NOMEM).
 */
long lsmi__split_fraction(const int32_t *y, size_t n, int C, double fraction,
                          lsmi_rng_t *rng, unsigned char mark,
                          unsigned char *out);

/*
 * Deals every row into one of F folds (fold_of, n entries): each class's
 * shuffled rows go round the folds, each class starting where the previous
 * one stopped, so fold sizes differ by at most one. Returns 0, or
 * LSMI_ERR_NOMEM.
 */
int lsmi__split_folds(const int32_t *y, size_t n, int C, int F, lsmi_rng_t *rng,
                      unsigned char *fold_of);

#endif
