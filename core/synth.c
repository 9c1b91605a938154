/*
 * synth.c — the demo datasets of `lsmi synth` (doc/cli.md).
 *
 * gaussian: the reference demo. y uniform over C = 2 classes;
 *   x1 = onehot(y) + u, x2 = onehot(y) + rho u + sqrt(1 - rho^2) v,
 *   u, v ~ N(0, sigma^2 I), rho = 0.5, sigma = 0.5.
 * redundancy: x1 and x2 both carry y. uniqueness: only x1 carries y (x2
 * carries an independent bit). synergy: y = b1 XOR b2, x1 carries b1 and x2
 * carries b2. The bit kinds are onehot(bit) + N(0, 0.1^2 I) in 2 dims.
 *
 * Train gets floor(0.8 n) samples, val the rest, drawn one after the other
 * from the stream LSMI_STREAM_SYNTH of the seed.
 */
#include <math.h>
#include <string.h>

#include "lsmi.h"
#include "rng.h"

#define GAUSS_RHO 0.5
#define GAUSS_SIGMA 0.5
#define BITS_NOISE 0.1

int lsmi_synth_kind_parse(const char *name, lsmi_synth_kind_t *kind) {
  static const struct {
    const char *name;
    lsmi_synth_kind_t kind;
  } kinds[] = {{"gaussian", LSMI_SYNTH_GAUSSIAN},
               {"redundancy", LSMI_SYNTH_REDUNDANCY},
               {"uniqueness", LSMI_SYNTH_UNIQUENESS},
               {"synergy", LSMI_SYNTH_SYNERGY}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (name && strcmp(name, kinds[i].name) == 0) {
      *kind = kinds[i].kind;
      return LSMI_OK;
    }
  return LSMI_ERR_INVALID;
}

static void fill_split(lsmi_synth_kind_t kind, lsmi_rng_t *rng,
                       const lsmi_split_t *s) {
  const size_t d = 2; /* C = 2 for the gaussian demo, 2 bits otherwise */
  for (size_t k = 0; k < s->n; k++) {
    float *x1 = s->x + k * 2 * d, *x2 = x1 + d;
    if (kind == LSMI_SYNTH_GAUSSIAN) {
      int y = (int)lsmi_rng_below(rng, 2);
      s->y[k] = y;
      for (size_t j = 0; j < d; j++) {
        double u = GAUSS_SIGMA * lsmi_rng_normal(rng);
        double v = GAUSS_SIGMA * lsmi_rng_normal(rng);
        double base = (int)j == y ? 1.0 : 0.0;
        x1[j] = (float)(base + u);
        x2[j] = (float)(base + GAUSS_RHO * u +
                        sqrt(1.0 - GAUSS_RHO * GAUSS_RHO) * v);
      }
      continue;
    }
    int b1 = (int)lsmi_rng_below(rng, 2);
    int b2 = (int)lsmi_rng_below(rng, 2);
    int y;
    switch (kind) {
    case LSMI_SYNTH_REDUNDANCY:
      y = b1, b2 = b1;
      break;
    case LSMI_SYNTH_UNIQUENESS:
      y = b1; /* b2 is independent of y */
      break;
    default: /* synergy */
      y = b1 ^ b2;
      break;
    }
    s->y[k] = y;
    for (size_t j = 0; j < d; j++) {
      x1[j] = (float)(((int)j == b1 ? 1.0 : 0.0) +
                      BITS_NOISE * lsmi_rng_normal(rng));
      x2[j] = (float)(((int)j == b2 ? 1.0 : 0.0) +
                      BITS_NOISE * lsmi_rng_normal(rng));
    }
  }
}

int lsmi_synth(lsmi_synth_kind_t kind, size_t n, uint64_t seed,
               lsmi_dataset_t **out, lsmi_error_t *err) {
  *out = NULL;
  if (n < 10)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "n",
                          "n must be at least 10, got %zu", n);
  size_t n_train = n * 4 / 5;
  lsmi_dataset_t *ds = lsmi_dataset_create(n_train, n - n_train, 2, 2, 2, err);
  if (ds == NULL)
    return err ? err->status : LSMI_ERR_NOMEM;
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, seed, LSMI_STREAM_SYNTH);
  fill_split(kind, &rng, &ds->train);
  fill_split(kind, &rng, &ds->val);
  *out = ds;
  return LSMI_OK;
}
