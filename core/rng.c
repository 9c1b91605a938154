/*
 * rng.c — xoshiro256** (Blackman & Vigna) seeded by splitmix64.
 *
 * The pair (seed, stream) is mixed into the splitmix64 state so that streams
 * of one seed are independent for practical purposes.
 */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void lsmi_rng_seed(lsmi_rng_t *rng, uint64_t seed, uint64_t stream) {
  uint64_t x = seed;
  uint64_t mix = splitmix64(&x) ^ (stream * 0xd1342543de82ef95ULL);
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64(&mix);
}

uint64_t lsmi_rng_next(lsmi_rng_t *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double lsmi_rng_uniform(lsmi_rng_t *rng) {
  return (double)(lsmi_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t lsmi_rng_below(lsmi_rng_t *rng, uint64_t n) {
  /* Rejection sampling: draw until the value falls below the largest
   * multiple of n, limit = UINT64_MAX - UINT64_MAX % n, so every residue is
   * equally likely. limit > UINT64_MAX - n, so a value at or below that is
   * taken without working out limit: a division saved on all but a
   * fraction n / 2^64 of the draws (the shuffles draw once per row and
   * epoch), and the same values as the test against limit itself. */
  uint64_t v;
  for (;;) {
    v = lsmi_rng_next(rng);
    if (v <= UINT64_MAX - n || v < UINT64_MAX - UINT64_MAX % n)
      break;
  }
  return v % n;
}

double lsmi_rng_normal(lsmi_rng_t *rng) {
  /* 1 - u lies in (0, 1], so the logarithm is finite. */
  double u1 = 1.0 - lsmi_rng_uniform(rng);
  double u2 = lsmi_rng_uniform(rng);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void lsmi_rng_permutation(lsmi_rng_t *rng, uint32_t *perm, size_t n) {
  for (size_t i = 0; i < n; i++)
    perm[i] = (uint32_t)i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)lsmi_rng_below(rng, i);
    uint32_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
}
