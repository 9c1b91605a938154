/*
 * knife.h — the KNIFE marginal kernel density estimator (internal).
 *
 * A mixture of K Gaussians in d dimensions, each with a per-dimension scale
 * s_k = exp(tanh(logvar_k)) and a unit lower-triangular factor (I + L_k),
 * L_k = strictly_lower(tri_k):
 *   z_k = (I + L_k) ((x - means_k) ⊙ s_k)
 *   log p(x) = -d/2 log 2π + logsumexp_k(-½‖z_k‖² + Σ_j log(|s_kj| + 1e-8)
 *                                        + log_softmax(weigh)_k)
 * A batch is computed with one triangular product per component forward
 * and one backward (lsmi_gemm, the factor read in place; written out at
 * d <= 8), never per sample.
 *
 * Block layout (lsmi_knife_nparams floats):
 *   means (K, d) | logvar (K, d) | tri (K, d, d) | weigh (K)
 * Only the strictly lower triangle of tri enters; its gradient is zero on
 * and above the diagonal.
 */
#ifndef LSMI_KNIFE_H
#define LSMI_KNIFE_H

#include <stddef.h>

#include "adam.h"
#include "rng.h"

typedef struct lsmi_knife {
  int d, K;
  float *means, *logvar, *tri, *weigh; /* views into a block */
} lsmi_knife_t;

size_t lsmi_knife_nparams(int d, int K);
/* Carves the views of k out of block (borrowed, lsmi_knife_nparams floats). */
void lsmi_knife_bind(lsmi_knife_t *k, float *block, int d, int K);
/* means, logvar, tri ~ N(0,1) in that order, row-major; weigh = 1. */
void lsmi_knife_init(lsmi_knife_t *k, lsmi_rng_t *rng);

/* Floats of scratch that a batch of up to max_batch rows needs. */
size_t lsmi_knife_nscratch(int d, int K, int max_batch);

/* log p(x) of B rows of x (row stride ldx) into logp (B), in float32
 * arithmetic, widened to double at the end (as the reference does). */
void lsmi_knife_logpdf(const lsmi_knife_t *k, double *logp, float *scratch,
                       const float *x, size_t ldx, int B);

/*
 * loss = mean over B rows of -log p(x); OVERWRITES the gradient block viewed
 * by grad (same shapes as k) with dloss/dparams and returns the loss.
 */
double lsmi_knife_loss_backward(const lsmi_knife_t *k, lsmi_knife_t *grad,
                                float *scratch, const float *x, size_t ldx,
                                int B);

/*
 * Applies the Adam step begun last (lsmi_adam_begin) to the parameters that
 * enter the density: means, logvar, the strictly lower triangle of tri and
 * weigh. The diagonal and upper triangle of tri never get a gradient, so
 * Adam leaves them exactly as they are: most are skipped (half the work at
 * large d), the few between the longer rows are stepped in the same call
 * as their neighbours and stay put to the bit. k views the parameter
 * block, grad the gradient block; a's moments span the whole block and
 * must have been zero where the gradient is (lsmi_adam_init zeroes them).
 */
void lsmi_knife_adam_update(const lsmi_knife_t *k, const lsmi_knife_t *grad,
                            lsmi_adam_t *a);

/* The kernel's own expf, logf and tanhf (branch-free, so that the loops
 * calling them vectorise) over n floats; out may be x. Exposed for the tests
 * that hold them against libm. */
void lsmi_knife_vexpf(float *out, const float *x, size_t n);
void lsmi_knife_vlogf(float *out, const float *x, size_t n);
void lsmi_knife_vtanhf(float *out, const float *x, size_t n);

#endif
