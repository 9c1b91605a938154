/*
 * adam.h — Adam over one flat parameter block, as torch.optim.Adam
 * (no weight decay, no amsgrad), and StepLR (internal).
 */
#ifndef LSMI_ADAM_H
#define LSMI_ADAM_H

#include <stddef.h>

typedef struct lsmi_adam {
  size_t n;      /* parameters */
  float *m, *v;  /* first and second moments (n each), borrowed, zeroed */
  long t;        /* steps taken */
  double beta1, beta2, eps;
} lsmi_adam_t;

/* Binds m and v (borrowed, n floats each; zeroed here), betas .9/.999,
 * eps 1e-8, t = 0. */
void lsmi_adam_init(lsmi_adam_t *a, size_t n, float *m, float *v);

/* One step with learning rate lr: params (n) -= Adam update from grads (n). */
void lsmi_adam_step(lsmi_adam_t *a, float *params, const float *grads,
                    double lr);

/* StepLR: lr0 * gamma^floor(epoch / step) for a 0-based epoch. */
double lsmi_step_lr(double lr0, double gamma, int step, int epoch);

#endif
