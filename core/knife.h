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
 * d <= 8), never per sample. Training runs lsmi_knife_train_step, which
 * at large d applies Adam to each row of a factor's gradient as the
 * backward produces it; lsmi_knife_loss_backward and
 * lsmi_knife_adam_update are the same step in two calls, with the
 * gradient stored between them.
 *
 * Block layout (lsmi_knife_nparams floats):
 *   means (K, d) | logvar (K, d) | tri (K, d, d) | weigh (K)
 * Only the strictly lower triangle of tri enters; its gradient is zero on
 * and above the diagonal. Adam's moments are blocks of the same size,
 * laid out alike but for the factors' at d >= 128 under
 * lsmi_knife_train_step (see there).
 */
#ifndef LSMI_KNIFE_H
#define LSMI_KNIFE_H

#include <stddef.h>

#include "adam.h"
#include "par.h"
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
 * arithmetic, widened to double at the end (as the reference does). From
 * d = 128 on, the components of each block of rows are pieces for par
 * (borrowed; NULL: this thread alone), the same bits however they run. */
void lsmi_knife_logpdf(const lsmi_knife_t *k, double *logp, float *scratch,
                       const float *x, size_t ldx, int B,
                       const lsmi_par_t *par);

/*
 * loss = mean over B rows of -log p(x); OVERWRITES the gradient block viewed
 * by grad (same shapes as k) with dloss/dparams and returns the loss.
 */
double lsmi_knife_loss_backward(const lsmi_knife_t *k, lsmi_knife_t *grad,
                                float *scratch, const float *x, size_t ldx,
                                int B);

/*
 * One training step on B rows of x: the loss (returned), its gradient and
 * the Adam step at learning rate lr, the same as
 *   loss = lsmi_knife_loss_backward(k, grad, scratch, x, ldx, B);
 *   lsmi_adam_begin(a, lr);
 *   lsmi_knife_adam_update(k, grad, a);
 * in parameters and loss bit for bit (with lsmi's own kernels; with the
 * "blas" ones, to float rounding), but at d >= 128 in one pass over each
 * factor: the gradient of a row of the factor is applied while it is in
 * cache and never stored, and the factor and its moments are streamed
 * once, not four times (parameters, gradient, moments) per step.
 *
 * When the loss is not finite nothing is stepped (no lsmi_adam_begin;
 * parameters and moments as they were) and the loss is returned for the
 * caller to stop on. grad views a gradient block (borrowed) used as work
 * space: on return its means, logvar and weigh hold the step's gradient;
 * its tri part is unspecified. a's moments span the parameter block
 * (lsmi_knife_nparams floats each, zeroed by lsmi_adam_init), laid out as
 * the parameters except, at d >= 128, the factors': those are kept in
 * packed rows, so that they stream in one run. Component c's rows i = 1 ..
 * d - 1 in order, row i taking n_i = min(16 ceil(i / 16), d) floats (the
 * moments of tri_c[i][0, n_i), zero from the diagonal on), from the start
 * of the tri part of the block, components one after the other. A model
 * stepped by this function must therefore not also be stepped by
 * lsmi_knife_adam_update, nor the other way round.
 *
 * From d = 128 on, the step's components, forward and then backward with
 * their Adam steps, are pieces for par (borrowed; NULL: this thread
 * alone): each writes only its own component's parameters, moments,
 * gradient and work space (the scratch keeps one per component), so the
 * results are the same bits on any number of threads.
 */
double lsmi_knife_train_step(const lsmi_knife_t *k, lsmi_knife_t *grad,
                             lsmi_adam_t *a, double lr, float *scratch,
                             const float *x, size_t ldx, int B,
                             const lsmi_par_t *par);

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
