/*
 * synth.c — the demo and ground-truth datasets of `lsmi synth`
 * (doc/cli.md).
 *
 * gaussian: the reference demo. y uniform over C = 2 classes;
 *   x1 = onehot(y) + u, x2 = onehot(y) + rho u + sqrt(1 - rho^2) v,
 *   u, v ~ N(0, sigma^2 I), rho = 0.5, sigma = 0.5.
 * redundancy: x1 and x2 both carry y. uniqueness: only x1 carries y (x2
 * carries an independent bit). synergy: y = b1 XOR b2, x1 carries b1 and x2
 * carries b2. The bit kinds are onehot(bit) + N(0, 0.1^2 I) in 2 dims.
 * mixed: a regime per sample (lsmi.h says how each is built), features
 * (tag, bit) with the noises below.
 * With dim > 2 each modality gets dim - 2 more features of noise: N(0, 1)
 * for the demo kinds, N(0, 0.1^2) for mixed (0.05 for a unique sample's
 * blank modality, which is near-constant everywhere).
 *
 * Train gets floor(0.8 n) samples, val the rest, drawn one after the other
 * from the stream LSMI_STREAM_SYNTH of the seed; a sample's noise features
 * are drawn after its own base features, so dim 0 gives the same data as
 * the kinds always have.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lsmi.h"
#include "rng.h"

#define GAUSS_RHO 0.5
#define GAUSS_SIGMA 0.5
#define BITS_NOISE 0.1
/* mixed: tags -3, -1, 1, 3 with noise 0.5, bits +-1 with noise 0.4, so
 * that neither a regime nor a bit is read without error (a Bayes-optimal
 * reader of the true densities ranks the regimes at AUC 0.97-1.0); a
 * unique sample's other modality is blank, 0.05 of noise in every feature;
 * noise features 0.1, so that at dim 256 the signal is two features of
 * 256. */
#define TAG_STEP 2.0
#define TAG_NOISE 0.5
#define BIT_NOISE 0.4
#define BLANK_NOISE 0.05
#define PAD_NOISE 0.1

int lsmi_synth_kind_parse(const char *name, lsmi_synth_kind_t *kind) {
  static const struct {
    const char *name;
    lsmi_synth_kind_t kind;
  } kinds[] = {{"gaussian", LSMI_SYNTH_GAUSSIAN},
               {"redundancy", LSMI_SYNTH_REDUNDANCY},
               {"uniqueness", LSMI_SYNTH_UNIQUENESS},
               {"synergy", LSMI_SYNTH_SYNERGY},
               {"mixed", LSMI_SYNTH_MIXED}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (name && strcmp(name, kinds[i].name) == 0) {
      *kind = kinds[i].kind;
      return LSMI_OK;
    }
  return LSMI_ERR_INVALID;
}

/* The gaussian demo's two features per modality; returns no regime. */
static int gaussian_row(lsmi_rng_t *rng, float *x1, float *x2, int32_t *y) {
  *y = (int)lsmi_rng_below(rng, 2);
  for (int j = 0; j < 2; j++) {
    double u = GAUSS_SIGMA * lsmi_rng_normal(rng);
    double v = GAUSS_SIGMA * lsmi_rng_normal(rng);
    double base = j == *y ? 1.0 : 0.0;
    x1[j] = (float)(base + u);
    x2[j] =
        (float)(base + GAUSS_RHO * u + sqrt(1.0 - GAUSS_RHO * GAUSS_RHO) * v);
  }
  return LSMI_REGIME_NONE;
}

/* The bit kinds' two features per modality: onehot(bit) + noise. */
static int bits_row(lsmi_synth_kind_t kind, lsmi_rng_t *rng, float *x1,
                    float *x2, int32_t *y) {
  int b1 = (int)lsmi_rng_below(rng, 2);
  int b2 = (int)lsmi_rng_below(rng, 2);
  int regime;
  switch (kind) {
  case LSMI_SYNTH_REDUNDANCY:
    *y = b1, b2 = b1, regime = LSMI_REGIME_REDUNDANT;
    break;
  case LSMI_SYNTH_UNIQUENESS:
    *y = b1, regime = LSMI_REGIME_UNIQUE1; /* b2 is independent of y */
    break;
  default: /* synergy */
    *y = b1 ^ b2, regime = LSMI_REGIME_SYNERGISTIC;
    break;
  }
  for (int j = 0; j < 2; j++) {
    x1[j] = (float)((j == b1 ? 1.0 : 0.0) + BITS_NOISE * lsmi_rng_normal(rng));
    x2[j] = (float)((j == b2 ? 1.0 : 0.0) + BITS_NOISE * lsmi_rng_normal(rng));
  }
  return regime;
}

/* One modality of mixed: (tag, +-bit), or blank. */
static void mixed_features(lsmi_rng_t *rng, float *x, double tag, int bit,
                           bool blank) {
  if (blank) {
    x[0] = (float)(tag + BLANK_NOISE * lsmi_rng_normal(rng));
    x[1] = (float)(BLANK_NOISE * lsmi_rng_normal(rng));
  } else {
    x[0] = (float)(tag + TAG_NOISE * lsmi_rng_normal(rng));
    x[1] = (float)((2 * bit - 1) + BIT_NOISE * lsmi_rng_normal(rng));
  }
}

/* mixed: a regime, its label and both modalities' (tag, bit) features. */
static int mixed_row(lsmi_rng_t *rng, float *x1, float *x2, int32_t *y) {
  int regime = (int)lsmi_rng_below(rng, 4);
  int b1 = (int)lsmi_rng_below(rng, 2);
  int b2 = (int)lsmi_rng_below(rng, 2);
  if (regime == LSMI_REGIME_REDUNDANT)
    *y = b1, b2 = b1;
  else if (regime == LSMI_REGIME_UNIQUE1)
    *y = b1;
  else if (regime == LSMI_REGIME_UNIQUE2)
    *y = b2;
  else
    *y = b1 ^ b2;
  double tag = TAG_STEP * (regime - 1.5);
  mixed_features(rng, x1, tag, b1, regime == LSMI_REGIME_UNIQUE2);
  mixed_features(rng, x2, tag, b2, regime == LSMI_REGIME_UNIQUE1);
  return regime;
}

static void fill_split(const lsmi_synth_spec_t *spec, size_t dim,
                       lsmi_rng_t *rng, const lsmi_split_t *s,
                       int32_t *regime) {
  for (size_t k = 0; k < s->n; k++) {
    float *x1 = s->x + k * 2 * dim, *x2 = x1 + dim;
    int g;
    if (spec->kind == LSMI_SYNTH_GAUSSIAN)
      g = gaussian_row(rng, x1, x2, &s->y[k]);
    else if (spec->kind == LSMI_SYNTH_MIXED)
      g = mixed_row(rng, x1, x2, &s->y[k]);
    else
      g = bits_row(spec->kind, rng, x1, x2, &s->y[k]);
    bool mixed = spec->kind == LSMI_SYNTH_MIXED;
    double pad = mixed ? PAD_NOISE : 1.0;
    double scale1 = mixed && g == LSMI_REGIME_UNIQUE2 ? BLANK_NOISE : pad;
    double scale2 = mixed && g == LSMI_REGIME_UNIQUE1 ? BLANK_NOISE : pad;
    for (size_t j = 2; j < dim; j++) {
      x1[j] = (float)(scale1 * lsmi_rng_normal(rng));
      x2[j] = (float)(scale2 * lsmi_rng_normal(rng));
    }
    if (regime)
      regime[k] = g;
  }
}

int lsmi_synth_make(const lsmi_synth_spec_t *spec, lsmi_dataset_t **out,
                    int32_t **regime, lsmi_error_t *err) {
  *out = NULL;
  if (regime)
    *regime = NULL;
  size_t n = spec->n;
  if (n < 10)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "n",
                          "n must be at least 10, got %zu", n);
  if (spec->dim == 1 || spec->dim > 65536)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "dim",
                          "dim must be 0 or in [2, 65536], got %zu", spec->dim);
  size_t dim = spec->dim ? spec->dim : 2;
  size_t n_train = n * 4 / 5;
  lsmi_dataset_t *ds =
      lsmi_dataset_create(n_train, n - n_train, dim, dim, 2, err);
  int32_t *g = regime ? malloc(n * sizeof *g) : NULL;
  if (ds == NULL || (regime && g == NULL)) {
    lsmi_dataset_destroy(ds);
    free(g);
    return ds ? lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory")
              : (err ? err->status : LSMI_ERR_NOMEM);
  }
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, spec->seed, LSMI_STREAM_SYNTH);
  fill_split(spec, dim, &rng, &ds->train, g);
  fill_split(spec, dim, &rng, &ds->val, g ? g + n_train : NULL);
  *out = ds;
  if (regime)
    *regime = g;
  return LSMI_OK;
}

int lsmi_synth(lsmi_synth_kind_t kind, size_t n, uint64_t seed,
               lsmi_dataset_t **out, lsmi_error_t *err) {
  lsmi_synth_spec_t spec = {.kind = kind, .n = n, .dim = 0, .seed = seed};
  return lsmi_synth_make(&spec, out, NULL, err);
}
