/*
 * vmath.h — expf, logf and tanhf that vectorise (internal to core/).
 *
 * Static inline, so that a loop calling them in a function built for
 * several vector widths (LSMI_VECTOR_CLONES) becomes vector code in each.
 * Tested against libm in tests/core/test_knife.c.
 */
#ifndef LSMI_VMATH_H
#define LSMI_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/*
 * libm's expf, logf and tanhf are calls the compiler cannot vectorise, and
 * they are most of a KNIFE step at small d (B K exponentials forward, the
 * softmax weights backward) and of a discriminator's cross-entropy at many
 * classes (B C exponentials). These are branch-free, so a loop of them
 * vectorises; each works in double, where a short polynomial is accurate to
 * about 1e-10, and rounds to float once at the end: the result is the
 * correctly rounded one except within ~1e-3 ulp of a tie, i.e. within one
 * ulp of libm's. Special values are selected explicitly.
 */

static inline uint64_t lsmi_vm_bits(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static inline double lsmi_vm_double(uint64_t u) {
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/*
 * e^x in double for x in [-104, 89] (or NaN, which propagates), to a
 * relative 3e-10: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor
 * polynomial of degree 8 (remainder r^9/9! < 2e-10), times 2^n built in the
 * exponent field. n is rounded with the 1.5·2^52 shift, which leaves it in
 * the low bits of t without an integer conversion.
 */
static inline double lsmi_vm_exp_core(double x) {
  const double shift = 0x1.8p52;
  double t = x * 0x1.71547652b82fep0 + shift; /* x / ln2 + shift */
  double n = t - shift;
  double r = x - n * 0x1.62e42fefa39efp-1; /* x - n ln2 */
  double p =
      1.0 +
      r * (1.0 +
           r * (1.0 / 2 +
                r * (1.0 / 6 +
                     r * (1.0 / 24 +
                          r * (1.0 / 120 +
                               r * (1.0 / 720 +
                                    r * (1.0 / 5040 + r * (1.0 / 40320))))))));
  /* The bits of t are those of shift plus n; shift's low 12 bits are 0, so
   * shifting by 52 leaves n + 1023 in the exponent field. */
  double scale = lsmi_vm_double((lsmi_vm_bits(t) + 1023u) << 52);
  return p * scale;
}

/*
 * c ? a : b, through the bits. The plain conditional is no good here: the
 * compiler sinks the computation of a value that one arm does not need
 * into a branch, and then, since a float conversion may raise an exception
 * (-ftrapping-math, the default), it cannot turn the branch back into a
 * vector select, and the whole loop stays scalar.
 */
static inline float lsmi_vm_select(int c, float a, float b) {
  uint32_t m = 0u - (uint32_t)(c != 0), ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  uint32_t u = (ua & m) | (ub & ~m);
  float r;
  memcpy(&r, &u, sizeof r);
  return r;
}

/* expf(x): 0 below -104 (e^-104 rounds to 0 in float), +inf above 89
 * (e^89 > FLT_MAX), NaN for NaN (every comparison with it is false, and the
 * polynomial propagates it). Out there lsmi_vm_exp_core computes garbage,
 * which the selects replace; in between, the float rounding of the double
 * result handles the subnormal range and the overflow. */
static inline float lsmi_vm_expf(float x) {
  float y = (float)lsmi_vm_exp_core((double)x);
  y = lsmi_vm_select(x > 89.0f, INFINITY, y);
  return lsmi_vm_select(x < -104.0f, 0.0f, y);
}

/*
 * logf(x): x = 2^e m with m in [√½, √2), log m = 2 atanh(f), f = (m-1)/(m+1),
 * |f| <= 0.172, by the series to f^11 (remainder below 1e-10 relative). x is
 * widened first, so float subnormals are normal doubles. 0 gives -inf,
 * negative numbers and NaN give NaN, +inf gives +inf.
 */
static inline float lsmi_vm_logf(float xf) {
  double x = (double)xf;
  uint64_t u = lsmi_vm_bits(x);
  uint64_t tmp = u - 0x3FE6A09E667F3BCDu; /* the bits of √½ */
  int64_t e = (int64_t)tmp >> 52;
  double m = lsmi_vm_double(u - ((uint64_t)e << 52));
  double f = (m - 1.0) / (m + 1.0), f2 = f * f;
  double s =
      1.0 +
      f2 * (1.0 / 3 +
            f2 * (1.0 / 5 + f2 * (1.0 / 7 + f2 * (1.0 / 9 + f2 * (1.0 / 11)))));
  /* e is in [-150, 129] for a positive float: converted through 32 bits,
   * which AVX2 can do in vectors and 64 bits it cannot. */
  double r = (double)(int32_t)e * 0x1.62e42fefa39efp-1 + 2.0 * f * s;
  float y = (float)r;
  y = lsmi_vm_select(xf == INFINITY, INFINITY, y);
  y = lsmi_vm_select(xf == 0.0f, -INFINITY, y);
  return lsmi_vm_select(xf >= 0.0f, y, NAN); /* negative or NaN */
}

/*
 * tanhf(x): for |x| < 1/16 the odd series to x^9 (remainder below 1e-14
 * relative); above, 1 - 2/(e^{2|x|} + 1) with the sign of x, where the
 * subtraction loses at most a factor 16 of the exponential's 3e-10. |x| is
 * capped at 20, where tanh is 1 in float; NaN passes through.
 */
static inline float lsmi_vm_tanhf(float xf) {
  double x = (double)xf, x2 = x * x;
  double small =
      x + x * x2 *
              (-1.0 / 3 +
               x2 * (2.0 / 15 + x2 * (-17.0 / 315 + x2 * (62.0 / 2835))));
  float ax = fabsf(xf);
  ax = lsmi_vm_select(ax > 20.0f, 20.0f, ax);
  double e = lsmi_vm_exp_core(2.0 * (double)ax);
  double big = copysign(1.0 - 2.0 / (e + 1.0), x);
  return lsmi_vm_select(fabsf(xf) < 0.0625f, (float)small, (float)big);
}

#endif
