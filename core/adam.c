/*
 * adam.c — torch.optim.Adam over one flat float block, and StepLR.
 *
 * The update is PyTorch's (single-tensor path, no weight decay, no amsgrad,
 * not maximising), step t counted from 1:
 *   m = β1 m + (1 - β1) g
 *   v = β2 v + (1 - β2) g²
 *   step_size = lr / (1 - β1^t)
 *   denom     = sqrt(v) / sqrt(1 - β2^t) + eps
 *   p        -= step_size · m / denom
 * The bias corrections are scalars computed once per step in double; the
 * per-element arithmetic is float, as PyTorch's on float32 tensors. The
 * moments are borrowed from the caller so that training allocates nothing.
 */
#include "adam.h"
#include "simd.h"

#include <math.h>
#include <string.h>

void lsmi_adam_init(lsmi_adam_t *a, size_t n, float *m, float *v) {
  a->n = n;
  a->m = m;
  a->v = v;
  memset(m, 0, n * sizeof(float));
  memset(v, 0, n * sizeof(float));
  a->t = 0;
  a->beta1 = 0.9;
  a->beta2 = 0.999;
  a->eps = 1e-8;
}

void lsmi_adam_begin(lsmi_adam_t *a, double lr) {
  a->t++;
  double bc1 = 1.0 - pow(a->beta1, (double)a->t);
  double bc2 = 1.0 - pow(a->beta2, (double)a->t);
  a->step_size = (float)(lr / bc1);
  a->bc2_sqrt = (float)sqrt(bc2);
}

LSMI_VECTOR_CLONES
void lsmi_adam_update(lsmi_adam_t *a, float *params, const float *grads,
                      size_t off, size_t count) {
  float step_size = a->step_size, bc2_sqrt = a->bc2_sqrt;
  float b1 = (float)a->beta1, b2 = (float)a->beta2;
  float one_b1 = (float)(1.0 - a->beta1), one_b2 = (float)(1.0 - a->beta2);
  float eps = (float)a->eps;
  float *m = a->m + off, *v = a->v + off, *p = params + off;
  const float *g = grads + off;
  for (size_t i = 0; i < count; i++) {
    m[i] = b1 * m[i] + one_b1 * g[i];
    v[i] = b2 * v[i] + one_b2 * g[i] * g[i];
    float denom = sqrtf(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * (m[i] / denom);
  }
}

void lsmi_adam_step(lsmi_adam_t *a, float *params, const float *grads,
                    double lr) {
  lsmi_adam_begin(a, lr);
  lsmi_adam_update(a, params, grads, 0, a->n);
}

double lsmi_step_lr(double lr0, double gamma, int step, int epoch) {
  /* A step of 0 or less (or a negative epoch) means no decay. The power is
   * the closed form lr0 * gamma ** (epoch // step), which is what the
   * reference schedule's lr values are (to the last bit). */
  if (step <= 0 || epoch < 0)
    return lr0;
  return lr0 * pow(gamma, (double)(epoch / step));
}
