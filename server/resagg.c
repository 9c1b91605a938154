/*
 * resagg.c — aggregates of result columns (see resagg.h). Runs on an HTTP
 * thread over mapped result files; allocates per call and frees it all.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "resagg.h"

/* The quantiles every column reports. */
static const double probs[] = {0.0,  0.01, 0.05, 0.1,  0.25, 0.5,
                               0.75, 0.9,  0.95, 0.99, 1.0};
enum { N_PROBS = sizeof probs / sizeof probs[0] };

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* Moves the k-th smallest of x[l..r] to x[k], the smaller ones before it
 * and the larger after (Wirth's selection; x holds no NaN). */
static void select_kth(double *x, long l, long r, long k) {
  while (l < r) {
    double pivot = x[k];
    long i = l, j = r;
    do {
      while (x[i] < pivot)
        i++;
      while (pivot < x[j])
        j--;
      if (i <= j) {
        double t = x[i];
        x[i] = x[j];
        x[j] = t;
        i++;
        j--;
      }
    } while (i <= j);
    if (j < k)
      l = i;
    if (k < i)
      r = j;
  }
}

/* The quantiles (type 7: linear between order statistics) of the m finite
 * values x (reordered) into out[N_PROBS]. */
static void quantiles(double *x, size_t m, double *out) {
  size_t from = 0;
  for (int p = 0; p < N_PROBS; p++) {
    if (m == 0) {
      out[p] = NAN;
      continue;
    }
    double h = (double)(m - 1) * probs[p];
    size_t k = (size_t)floor(h);
    select_kth(x, (long)from, (long)m - 1, (long)k);
    double v = x[k];
    if (h > (double)k) { /* the next order statistic: the least above k */
      double next = INFINITY;
      for (size_t i = k + 1; i < m; i++)
        if (x[i] < next)
          next = x[i];
      v += (h - (double)k) * (next - v);
    }
    out[p] = v;
    from = k; /* the later quantiles lie at or above it */
  }
}

typedef struct cls {
  size_t n;
  double sum, sum2;
} cls_t;

/* The range of column c over the splits (finite values): false if none. */
static bool range_of(lsmi_resfile_t *const *f, int nsplits, lsmi_rescol_t c,
                     double *lo, double *hi) {
  *lo = INFINITY;
  *hi = -INFINITY;
  for (int s = 0; s < nsplits; s++)
    for (size_t i = 0; i < f[s]->rows.n; i++) {
      double v = lsmi_resfile_value(f[s], c, i);
      if (isfinite(v)) {
        *lo = v < *lo ? v : *lo;
        *hi = v > *hi ? v : *hi;
      }
    }
  if (!(*lo <= *hi))
    return false;
  if (*lo == *hi) { /* a constant column: one unit around it */
    *lo -= 0.5;
    *hi += 0.5;
  }
  return true;
}

/* The object of one column of one split; NULL on no memory. */
static json_t *column(const lsmi_resfile_t *f, lsmi_rescol_t c, int bins,
                      double lo, double hi, int nclass) {
  const lsmi_rows_t *r = &f->rows;
  size_t n = r->n, m = 0, nan = 0, below = 0, above = 0;
  /* The copy for the quantiles: an anonymous mapping, given back whole when
   * done (from malloc, several MiB would stay in the thread's arena). */
  size_t xlen = (n ? n : 1) * sizeof(double);
  double *x = mmap(NULL, xlen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (x == MAP_FAILED)
    x = NULL;
  size_t *counts = calloc((size_t)bins, sizeof *counts);
  cls_t *k = calloc((size_t)nclass + 1, sizeof *k);
  json_t *o = NULL;
  if (x == NULL || counts == NULL || k == NULL)
    goto out;
  double sum = 0, sum2 = 0, mn = INFINITY, mx = -INFINITY;
  double width = (hi - lo) / bins;
  for (size_t i = 0; i < n; i++) {
    double v = lsmi_resfile_value(f, c, i);
    if (!isfinite(v)) {
      nan++;
      continue;
    }
    x[m++] = v;
    sum += v;
    sum2 += v * v;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
    if (v < lo)
      below++;
    else if (v > hi)
      above++;
    else {
      long b = (long)((v - lo) / width);
      counts[b >= bins ? bins - 1 : (b < 0 ? 0 : b)]++;
    }
    int32_t y = r->y[i];
    cls_t *kk = &k[y >= 0 && y < nclass ? y : nclass];
    kk->n++;
    kk->sum += v;
    kk->sum2 += v * v;
  }
  double mean = m ? sum / (double)m : NAN;
  double var = m > 1 ? (sum2 - (double)m * mean * mean) / (double)(m - 1) : NAN;
  double q[N_PROBS];
  quantiles(x, m, q);
  json_t *edges = json_array(), *cnt = json_array(), *qv = json_array(),
         *qp = json_array(), *byc = json_array();
  for (int b = 0; b <= bins; b++)
    json_array_append_new(edges, json_real(lo + (hi - lo) * b / bins));
  for (int b = 0; b < bins; b++)
    json_array_append_new(cnt, json_integer((json_int_t)counts[b]));
  for (int p = 0; p < N_PROBS; p++) {
    json_array_append_new(qp, json_real(probs[p]));
    json_array_append_new(qv, num(q[p]));
  }
  for (int y = 0; y < nclass; y++) {
    const cls_t *kk = &k[y];
    if (kk->n == 0)
      continue;
    double cm = kk->sum / (double)kk->n;
    double cv = kk->n > 1 ? (kk->sum2 - (double)kk->n * cm * cm) /
                                (double)(kk->n - 1)
                          : NAN;
    json_t *kj = json_pack("{s:i, s:I, s:o, s:o}", "y", y, "n",
                           (json_int_t)kk->n, "mean", num(cm), "sd",
                           num(cv > 0 ? sqrt(cv) : (cv == cv ? 0.0 : NAN)));
    json_t *label = lsmi_resfile_label_json(f, y); /* the class's name */
    if (kj && label)
      json_object_set_new(kj, "label", label);
    else
      json_decref(label);
    json_array_append_new(byc, kj);
  }
  o = json_pack(
      "{s:I, s:I, s:o, s:o, s:o, s:o, s:{s:f, s:f, s:o, s:o, s:I, s:I}, "
      "s:{s:o, s:o}, s:o}",
      "n", (json_int_t)m, "nan", (json_int_t)nan, "min", num(mn), "max",
      num(mx), "mean", num(mean), "sd",
      num(var > 0 ? sqrt(var) : (var == var ? 0.0 : NAN)), "histogram", "lo",
      lo, "hi", hi, "edges", edges, "counts", cnt, "below", (json_int_t)below,
      "above", (json_int_t)above, "quantiles", "p", qp, "values", qv,
      "by_class", byc);
out:
  if (x)
    munmap(x, xlen);
  free(counts);
  free(k);
  return o;
}

/* The classes seen in the splits: max y + 1, capped. */
static int classes_of(lsmi_resfile_t *const *f, int nsplits) {
  int32_t maxy = -1;
  for (int s = 0; s < nsplits; s++)
    for (size_t i = 0; i < f[s]->rows.n; i++)
      maxy = f[s]->rows.y[i] > maxy ? f[s]->rows.y[i] : maxy;
  return maxy + 1 > LSMI_RESAGG_MAX_CLASSES ? LSMI_RESAGG_MAX_CLASSES
                                            : (int)(maxy + 1);
}

int lsmi_resagg(lsmi_resfile_t *const *f, int nsplits,
                const lsmi_resagg_query_t *q, json_t **out, lsmi_error_t *err) {
  int nclass = classes_of(f, nsplits);
  json_t *splits = json_object();
  json_t *o = json_pack("{s:i, s:o}", "bins", q->bins, "splits", splits);
  bool ok = o != NULL;
  for (int s = 0; ok && s < nsplits; s++) {
    json_t *cols = json_object();
    ok = json_object_set_new(splits, f[s]->split,
                             json_pack("{s:I, s:o}", "n",
                                       (json_int_t)f[s]->rows.n, "columns",
                                       cols)) == 0;
    for (int k = 0; ok && k < q->ncols; k++) {
      double lo = q->lo, hi = q->hi;
      if (!q->has_range && !range_of(f, nsplits, q->cols[k], &lo, &hi))
        lo = 0, hi = 1; /* no finite value: an empty histogram */
      json_t *c = column(f[s], q->cols[k], q->bins, lo, hi, nclass);
      ok = c && json_object_set_new(cols, lsmi_resfile_col_name(q->cols[k]),
                                    c) == 0;
    }
  }
  if (!ok) {
    json_decref(o);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, NULL, "out of memory");
  }
  *out = o;
  return LSMI_OK;
}
