/*
 * split.c — see split.h.
 */
#include <math.h>
#include <stdlib.h>

#include "lsmi.h"
#include "split.h"

int lsmi__stratify(const int32_t *y, size_t n, int C, lsmi_rng_t *rng,
                   uint32_t *order, size_t *start) {
  for (int c = 0; c <= C; c++)
    start[c] = 0;
  /* A counting sort by class keeps row order within a class. */
  for (size_t i = 0; i < n; i++)
    start[y[i] + 1]++;
  for (int c = 0; c < C; c++)
    start[c + 1] += start[c];
  for (size_t i = 0; i < n; i++)
    order[start[y[i]]++] = (uint32_t)i;
  for (int c = C; c > 0; c--)
    start[c] = start[c - 1];
  start[0] = 0;
  for (int c = 0; c < C; c++) {
    uint32_t *cls = order + start[c];
    size_t m = start[c + 1] - start[c];
    for (size_t i = m; i > 1; i--) {
      size_t j = (size_t)lsmi_rng_below(rng, i);
      uint32_t t = cls[i - 1];
      cls[i - 1] = cls[j];
      cls[j] = t;
    }
  }
  return LSMI_OK;
}

/* order and start for n rows of C classes, or NULL (both freed). */
static int alloc_groups(size_t n, int C, uint32_t **order, size_t **start) {
  *order = malloc((n ? n : 1) * sizeof **order);
  *start = malloc(((size_t)C + 1) * sizeof **start);
  if (*order && *start)
    return LSMI_OK;
  free(*order);
  free(*start);
  return LSMI_ERR_NOMEM;
}

long lsmi__split_fraction(const int32_t *y, size_t n, int C, double fraction,
                          lsmi_rng_t *rng, unsigned char mark,
                          unsigned char *out) {
  uint32_t *order;
  size_t *start;
  if (alloc_groups(n, C, &order, &start))
    return LSMI_ERR_NOMEM;
  lsmi__stratify(y, n, C, rng, order, start);
  long marked = 0;
  for (int c = 0; c < C; c++) {
    size_t m = start[c + 1] - start[c];
    size_t k = (size_t)floor(fraction * (double)m + 0.5);
    if (m > 0 && k >= m)
      k = m - 1;
    for (size_t i = 0; i < k; i++)
      out[order[start[c] + i]] = mark;
    marked += (long)k;
  }
  free(order);
  free(start);
  return marked;
}

int lsmi__split_folds(const int32_t *y, size_t n, int C, int F, lsmi_rng_t *rng,
                      unsigned char *fold_of) {
  uint32_t *order;
  size_t *start;
  if (alloc_groups(n, C, &order, &start))
    return LSMI_ERR_NOMEM;
  lsmi__stratify(y, n, C, rng, order, start);
  /* Row j of the concatenated classes goes to fold j mod F: each class
   * starts where the previous stopped. */
  for (size_t j = 0; j < n; j++)
    fold_of[order[j]] = (unsigned char)(j % (size_t)F);
  free(order);
  free(start);
  return LSMI_OK;
}
