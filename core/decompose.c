/*
 * decompose.c — the pointwise decomposition of LSMI and the mean adjustment
 * (the README's "What the numbers mean"), in double precision.
 *
 * r = min(h1, h2) - min(h1 - i1, h2 - i2) is the pointwise redundancy; the
 * rest follows from i1 = r + u1, i2 = r + u2, i12 = r + u1 + u2 + s. The
 * adjustment shifts every sample of a split by the same amount a so that no
 * split mean of r, s (or, failing that, u1, u2) is negative; it keeps
 * r + u1, r + u2 and r + u1 + u2 + s unchanged.
 */
#include <math.h>

#include "lsmi.h"

void lsmi_decompose(size_t n, const double *i1, const double *i2,
                    const double *i12, const double *h1, const double *h2,
                    double *r, double *u1, double *u2, double *s) {
  for (size_t k = 0; k < n; k++) {
    double r_plus = fmin(h1[k], h2[k]);
    double r_minus = fmin(h1[k] - i1[k], h2[k] - i2[k]);
    double rk = r_plus - r_minus;
    double u1k = i1[k] - rk;
    double u2k = i2[k] - rk;
    r[k] = rk;
    u1[k] = u1k;
    u2[k] = u2k;
    s[k] = i12[k] - rk - u1k - u2k;
  }
}

static double mean(size_t n, const double *v) {
  double sum = 0.0;
  for (size_t k = 0; k < n; k++)
    sum += v[k];
  return n ? sum / (double)n : 0.0;
}

double lsmi_adjust(size_t n, double *r, double *u1, double *u2, double *s) {
  if (n == 0)
    return 0.0;
  double R = mean(n, r), U1 = mean(n, u1), U2 = mean(n, u2), S = mean(n, s);
  double a = 0.0;
  if (R < 0.0 || S < 0.0)
    a = -fmin(R, S);
  else if (U1 < 0.0 || U2 < 0.0)
    a = fmin(U1, U2);
  if (a != 0.0) {
    for (size_t k = 0; k < n; k++) {
      r[k] += a;
      s[k] += a;
      u1[k] -= a;
      u2[k] -= a;
    }
  }
  return a;
}

void lsmi_summarize(const lsmi_rows_t *rows, lsmi_summary_t *sum) {
  size_t n = rows->n;
  sum->n = n;
  sum->R = mean(n, rows->r);
  sum->U1 = mean(n, rows->u1);
  sum->U2 = mean(n, rows->u2);
  sum->S = mean(n, rows->s);
  sum->I1 = mean(n, rows->i1);
  sum->I2 = mean(n, rows->i2);
  sum->I12 = mean(n, rows->i12);
  sum->H1 = mean(n, rows->h1);
  sum->H2 = mean(n, rows->h2);
}
