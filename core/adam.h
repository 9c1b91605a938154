/*
 * adam.h — Adam over one flat parameter block, as torch.optim.Adam
 * (no weight decay, no amsgrad), and StepLR (internal).
 */
#ifndef LSMI_ADAM_H
#define LSMI_ADAM_H

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

/* StepLR: lr0 * gamma^floor(epoch / step) for a 0-based epoch. */
double lsmi_step_lr(double lr0, double gamma, int step, int epoch);

#endif
