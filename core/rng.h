/*
 * rng.h — the core's seeded pseudo-random numbers (internal).
 *
 * xoshiro256** seeded through splitmix64 from (seed, stream): every model
 * and every shuffle draws from its own stream, so a fit's results do not
 * depend on the order in which threads run.
 */
#ifndef LSMI_RNG_H
#define LSMI_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct lsmi_rng {
  uint64_t s[4];
} lsmi_rng_t;

/* Streams used by the fit; any other value is fine for other uses. */
enum {
  LSMI_STREAM_MLP1 = 1,
  LSMI_STREAM_MLP2 = 2,
  LSMI_STREAM_MLP12 = 3,
  LSMI_STREAM_KNIFE1 = 4,
  LSMI_STREAM_KNIFE2 = 5,
  LSMI_STREAM_SHUFFLE_DISC = 6,
  LSMI_STREAM_SHUFFLE_ENT = 7,
  LSMI_STREAM_SPLIT = 8,
  LSMI_STREAM_SYNTH = 9
};

void lsmi_rng_seed(lsmi_rng_t *rng, uint64_t seed, uint64_t stream);
uint64_t lsmi_rng_next(lsmi_rng_t *rng);
/* Uniform in [0, 1) with 53 random bits. */
double lsmi_rng_uniform(lsmi_rng_t *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t lsmi_rng_below(lsmi_rng_t *rng, uint64_t n);
/* Standard normal (Box–Muller in double; the spare value is not cached so
 * that the stream position depends only on the number of calls). */
double lsmi_rng_normal(lsmi_rng_t *rng);
/* Writes a uniformly random permutation of 0..n-1 into perm (n). */
void lsmi_rng_permutation(lsmi_rng_t *rng, uint32_t *perm, size_t n);

#endif
