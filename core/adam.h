/*
 * adam.h — Adam over one flat parameter block, as torch.optim.Adam
 * (no weight decay, no amsgrad), and StepLR (internal).
 */
#ifndef LSMI_ADAM_H
#define LSMI_ADAM_H

#include <float.h>
#include <math.h>
#include <stddef.h>

typedef struct lsmi_adam {
  size_t n;     /* parameters */
  float *m, *v; /* first and second moments (n each), borrowed, zeroed */
  long t;       /* steps taken */
  double beta1, beta2, eps;
  /* Constants of the step begun last (lsmi_adam_begin). */
  float step_size;
  float bc2_rsqrt; /* 1 / sqrt(1 - β2^t), rounded once (see adam.c) */
} lsmi_adam_t;

/* Binds m and v (borrowed, n floats each; zeroed here), betas .9/.999,
 * eps 1e-8, t = 0. */
void lsmi_adam_init(lsmi_adam_t *a, size_t n, float *m, float *v);

/* One step with learning rate lr: params (n) -= Adam update from grads (n).
 * The same as lsmi_adam_begin followed by lsmi_adam_update over [0, n). */
void lsmi_adam_step(lsmi_adam_t *a, float *params, const float *grads,
                    double lr);

/*
 * A step in parts, for a model that knows some of its parameters never get a
 * gradient (the KNIFE factors' upper triangle): begin advances the step count
 * and fixes the bias corrections, update applies the step to the range
 * [off, off + count) of params, grads and the moments. A parameter whose
 * gradient is always zero keeps m = v = 0, so Adam would move it by exactly
 * 0: skipping it gives the same bits as the whole step.
 */
void lsmi_adam_begin(lsmi_adam_t *a, double lr);
void lsmi_adam_update(lsmi_adam_t *a, float *params, const float *grads,
                      size_t off, size_t count);

/*
 * The same update inlined into a caller's own loop, for a caller that keeps
 * the gradient or the moments in a layout of its own: n parameters at p,
 * gradient g, moments m and v (each n floats, no two overlapping), by the
 * step begun last, with the constants lsmi_adam_consts takes from a. The
 * KNIFE step applies each row of its factor's gradient while the row is in
 * cache, never storing the gradient, and keeps the factor's moments in
 * packed rows; a few thousand short rows per step then pay no call and no
 * set-up each. lsmi_adam_update runs this same loop: the bits agree.
 */
typedef struct lsmi_adam_consts {
  float step_size, bc2_rsqrt, b1, b2, one_b1, one_b2, eps;
} lsmi_adam_consts_t;

static inline lsmi_adam_consts_t lsmi_adam_consts(const lsmi_adam_t *a) {
  lsmi_adam_consts_t k = {.step_size = a->step_size,
                          .bc2_rsqrt = a->bc2_rsqrt,
                          .b1 = (float)a->beta1,
                          .b2 = (float)a->beta2,
                          .one_b1 = (float)(1.0 - a->beta1),
                          .one_b2 = (float)(1.0 - a->beta2),
                          .eps = (float)a->eps};
  return k;
}

/*
 * The per-element update, the one copy of it (adam.c says how it departs
 * from PyTorch's, within float rounding): written so that every clone
 * vectorises it, the flush a select and the arrays restrict parameters
 * (GCC then puts no run-time overlap checks in front of the loop).
 */
static inline __attribute__((always_inline)) void
lsmi_adam_run(const lsmi_adam_consts_t *k, float *restrict p, float *restrict m,
              float *restrict v, const float *restrict g, size_t n) {
  const float step_size = k->step_size, bc2_rsqrt = k->bc2_rsqrt;
  const float b1 = k->b1, b2 = k->b2, one_b1 = k->one_b1, one_b2 = k->one_b2;
  const float eps = k->eps;
  for (size_t i = 0; i < n; i++) {
    float mi = b1 * m[i] + one_b1 * g[i];
    float vi = b2 * v[i] + one_b2 * g[i] * g[i];
    mi = fabsf(mi) < FLT_MIN ? 0.0f : mi; /* no subnormal moments */
    vi = vi < FLT_MIN ? 0.0f : vi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) * bc2_rsqrt + eps;
    p[i] -= step_size * (mi / denom);
  }
}

/* StepLR: lr0 * gamma^floor(epoch / step) for a 0-based epoch. */
double lsmi_step_lr(double lr0, double gamma, int step, int epoch);

#endif
