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
 *
 * Two reformulations keep the per-element loop cheap; neither moves a
 * result by more than float rounding:
 *
 * - The division by sqrt(1 - β2^t) is a multiplication by its reciprocal,
 *   computed once per step in double and rounded once to float. x / s and
 *   x · (1/s) differ by at most an ulp or so of denom (relative 2^-23), and
 *   denom only scales the step, whose size (~lr) is far below p's own ulp
 *   whenever |p| is larger than the step: the update moves by at most an
 *   ulp of the step. That leaves one square root and one division per
 *   element instead of one and two; the division and square root units are
 *   the bottleneck of this loop, not the memory.
 *
 * - A moment that falls below FLT_MIN (the float subnormal range) is stored
 *   as 0. A parameter whose gradient stops (the weights of a ReLU unit that
 *   no longer fires are the common case) has m shrink by 0.9 per step and
 *   reach the subnormals after ~830 steps; there it never reaches zero
 *   (0.9 · 4·2^-149 rounds back to 4·2^-149), and every step then pays the
 *   CPU's subnormal assist on it, which slows the whole update severely
 *   (doc/performance.md). The parameter's move from such a moment is
 *   step_size · m / denom < step_size · 2^-126 / eps = step_size · 1.2e-30,
 *   which rounds away against any float p of magnitude above ~1e-22
 *   (step_size is lr / (1 - β1^t) <= 10 lr), so flushing changes no
 *   parameter in practice; it is what a flush-to-zero FPU would do, without
 *   touching the FPU's mode. PyTorch keeps the subnormal moment.
 */
#include "adam.h"
#include "simd.h"

#include <float.h>
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
  a->bc2_rsqrt = (float)(1.0 / sqrt(bc2));
}

/* The loop is lsmi_adam_run (adam.h), inlined here in every clone. */
LSMI_VECTOR_CLONES
void lsmi_adam_update(lsmi_adam_t *a, float *params, const float *grads,
                      size_t off, size_t count) {
  const lsmi_adam_consts_t k = lsmi_adam_consts(a);
  lsmi_adam_run(&k, params + off, a->m + off, a->v + off, grads + off, count);
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
