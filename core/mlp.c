/*
 * mlp.c — the discriminator MLP: forward, cross-entropy and backward.
 *
 * Linear(in,H) – ReLU – Linear(H,H) – ReLU – Linear(H,C) with PyTorch's
 * layout and numerics: a Linear layer computes y = x W^T + b with W stored
 * (out, in) row-major, and is initialised from U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)) for both W and b. Every matrix product goes through
 * cblas_sgemm; bias, ReLU and the reductions are plain loops.
 *
 * Nothing here allocates: the caller owns the parameter, gradient,
 * activation and scratch blocks (sizes from lsmi_mlp_nparams, lsmi_mlp_nacts
 * and lsmi_mlp_nscratch) and reuses them for every batch. The functions
 * touch only their arguments, so different MLPs may run on different threads
 * at the same time.
 *
 * The ReLU masks of the backward pass come from the stored post-ReLU
 * activations: h > 0 exactly where the pre-activation was > 0, and PyTorch's
 * ReLU gradient is 0 at a pre-activation of exactly 0, as here.
 */
#include "mlp.h"
#include "simd.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

size_t lsmi_mlp_nparams(int in, int hidden, int classes) {
  size_t IN = (size_t)in, H = (size_t)hidden, C = (size_t)classes;
  return H * IN + H + H * H + H + C * H + C;
}

void lsmi_mlp_bind(lsmi_mlp_t *m, float *block, int in, int hidden,
                   int classes) {
  size_t IN = (size_t)in, H = (size_t)hidden, C = (size_t)classes;
  m->in = in;
  m->hidden = hidden;
  m->classes = classes;
  m->W1 = block;          // (H, in)
  m->b1 = m->W1 + H * IN; // (H)
  m->W2 = m->b1 + H;      // (H, H)
  m->b2 = m->W2 + H * H;  // (H)
  m->W3 = m->b2 + H;      // (C, H)
  m->b3 = m->W3 + C * H;  // (C)
}

/* Fills p (n) from U(-bound, bound), as torch.nn.init.uniform_: from + (to -
 * from) * u, computed in double and rounded once to float. */
static void uniform_fill(float *p, size_t n, double bound, lsmi_rng_t *rng) {
  for (size_t i = 0; i < n; i++)
    p[i] = (float)(-bound + 2.0 * bound * lsmi_rng_uniform(rng));
}

void lsmi_mlp_init(lsmi_mlp_t *m, lsmi_rng_t *rng) {
  size_t IN = (size_t)m->in, H = (size_t)m->hidden, C = (size_t)m->classes;
  double bound1 = 1.0 / sqrt((double)IN); /* fan_in of layer 1 is in */
  double bound2 = 1.0 / sqrt((double)H);  /* layers 2 and 3 take H inputs */
  uniform_fill(m->W1, H * IN, bound1, rng);
  uniform_fill(m->b1, H, bound1, rng);
  uniform_fill(m->W2, H * H, bound2, rng);
  uniform_fill(m->b2, H, bound2, rng);
  uniform_fill(m->W3, C * H, bound2, rng);
  uniform_fill(m->b3, C, bound2, rng);
}

size_t lsmi_mlp_nacts(int hidden, int classes, int max_batch) {
  size_t H = (size_t)hidden, C = (size_t)classes, B = (size_t)max_batch;
  return B * H + B * H + B * C;
}

void lsmi_mlp_acts_bind(lsmi_mlp_acts_t *a, float *block, int hidden,
                        int classes, int max_batch) {
  size_t H = (size_t)hidden, B = (size_t)max_batch;
  (void)classes;
  a->max_batch = max_batch;
  a->h1 = block;             // (B, H)
  a->h2 = a->h1 + B * H;     // (B, H)
  a->logits = a->h2 + B * H; // (B, C)
}

size_t lsmi_mlp_nscratch(int hidden, int max_batch) {
  return 2 * (size_t)hidden * (size_t)max_batch;
}

/* ------------------------------------------------------------------------ */
/* Kernels                                                                  */
/* ------------------------------------------------------------------------ */

/* out (B, OC) += b, then ReLU if relu (NaN kept, as torch.relu keeps it). */
LSMI_VECTOR_CLONES
static void bias_relu(float *out, const float *b, int B, int OC, int relu) {
  for (int r = 0; r < B; r++) {
    float *o = out + (size_t)r * (size_t)OC;
    for (int j = 0; j < OC; j++) {
      float v = o[j] + b[j];
      o[j] = (relu && v < 0.0f) ? 0.0f : v;
    }
  }
}

/*
 * out = inp W^T + b, optionally followed by ReLU. The ReLU keeps a NaN (as
 * torch.relu does) so that a diverged model shows up as a NaN loss.
 * out (B, OC), inp (B, IC) with row stride ldi, W (OC, IC), b (OC).
 */
static void linear_forward(float *out, const float *inp, size_t ldi,
                           const float *W, const float *b, int B, int IC,
                           int OC, int relu) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, IC, 1.0f, inp,
              (int)ldi, W, IC, 0.0f, out, OC);
  bias_relu(out, b, B, OC, relu);
}

/*
 * db (OC) = Σ_b dout_b for dout (B, OC). The sum runs in double so that its
 * rounding does not grow with B, over row-major rows in blocks of outputs,
 * so that the inner loop is contiguous and vectorises.
 */
LSMI_VECTOR_CLONES
static void bias_grad(float *db, const float *dout, int B, int OC) {
  enum { BLOCK = 64 };
  double acc[BLOCK];
  for (int o0 = 0; o0 < OC; o0 += BLOCK) {
    int w = OC - o0 < BLOCK ? OC - o0 : BLOCK;
    for (int j = 0; j < w; j++)
      acc[j] = 0.0;
    for (int r = 0; r < B; r++) {
      const float *row = dout + (size_t)r * (size_t)OC + (size_t)o0;
      for (int j = 0; j < w; j++)
        acc[j] += (double)row[j];
    }
    for (int j = 0; j < w; j++)
      db[o0 + j] = (float)acc[j];
  }
}

/*
 * Backward of out = inp W^T + b for the parameters, OVERWRITING dW and db:
 *   dW (OC, IC) = dout^T · inp        (dL/dW_oi = Σ_b dout_bo inp_bi)
 *   db (OC)     = Σ_b dout_b          (dL/db_o  = Σ_b dout_bo)
 * and, when dinp is not NULL, the input gradient, also overwritten:
 *   dinp (B, IC) = dout · W            (dL/dinp_bi = Σ_o dout_bo W_oi)
 * dout (B, OC), inp (B, IC) with row stride ldi.
 */
static void linear_backward(float *dinp, float *dW, float *db,
                            const float *dout, const float *inp, size_t ldi,
                            const float *W, int B, int IC, int OC) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, B, 1.0f, dout,
              OC, inp, (int)ldi, 0.0f, dW, IC);
  bias_grad(db, dout, B, OC);
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IC, OC, 1.0f,
                dout, OC, W, IC, 0.0f, dinp, IC);
}

/*
 * ReLU backward in place, with the mask taken from the post-ReLU output h:
 *   dh_bj *= [h_bj > 0]               (d relu(z)/dz = 1 if z > 0 else 0)
 * dh (B, H), h (B, H).
 */
LSMI_VECTOR_CLONES
static void relu_backward(float *dh, const float *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(h[i] > 0.0f))
      dh[i] = 0.0f;
}

/* ------------------------------------------------------------------------ */
/* Public passes                                                            */
/* ------------------------------------------------------------------------ */

void lsmi_mlp_forward(const lsmi_mlp_t *m, lsmi_mlp_acts_t *a, const float *x,
                      size_t ldx, int B) {
  int IN = m->in, H = m->hidden, C = m->classes;
  assert(B <= a->max_batch && ldx >= (size_t)IN);
  if (B <= 0)
    return;
  /* h1 (B, H) = relu(x W1^T + b1) */
  linear_forward(a->h1, x, ldx, m->W1, m->b1, B, IN, H, 1);
  /* h2 (B, H) = relu(h1 W2^T + b2) */
  linear_forward(a->h2, a->h1, (size_t)H, m->W2, m->b2, B, H, H, 1);
  /* logits (B, C) = h2 W3^T + b3 */
  linear_forward(a->logits, a->h2, (size_t)H, m->W3, m->b3, B, H, C, 0);
}

/*
 * log Σ_c exp(l_c) of one row of logits (C), as max + log Σ_c exp(l_c - max)
 * with the exponentials in float (as PyTorch's float32 log_softmax) and
 * their sum in double. Subtracting the maximum keeps every exponent <= 0,
 * so nothing overflows, and the largest term is exactly 1, so the logarithm
 * is finite. A NaN logit gives NaN (the fit's divergence check relies on
 * it). lsmi_ce_forward_backward repeats exactly these operations, so its
 * loss is -log_softmax_at to the bit.
 */
static double row_logsumexp(const float *l, int C) {
  float mx = l[0];
  for (int c = 1; c < C; c++)
    if (l[c] > mx)
      mx = l[c];
  double s = 0.0;
  for (int c = 0; c < C; c++)
    s += (double)expf(l[c] - mx);
  return (double)mx + log(s);
}

double lsmi_ce_forward_backward(float *dlogits, const float *logits,
                                const int32_t *y, int B, int C) {
  if (B <= 0)
    return 0.0;
  double loss = 0.0;
  double invB = 1.0 / (double)B;
  for (int r = 0; r < B; r++) {
    const float *l = logits + (size_t)r * (size_t)C; // (C)
    float *dl = dlogits + (size_t)r * (size_t)C;     // (C)
    int yr = y[r];
    assert(yr >= 0 && yr < C);
    /* One pass of exponentials, e_c = exp(l_c - max) (float, as PyTorch),
     * kept in dl, summed in double; see row_logsumexp for why the maximum
     * is subtracted. A NaN logit makes the loss NaN. */
    float mx = l[0];
    for (int c = 1; c < C; c++)
      if (l[c] > mx)
        mx = l[c];
    double sum = 0.0;
    for (int c = 0; c < C; c++) {
      dl[c] = expf(l[c] - mx);
      sum += (double)dl[c];
    }
    /* loss_b = -log softmax(l)_y = max + log Σ e - l_y */
    loss += (double)mx + log(sum) - (double)l[yr];
    /* dL/dl_c = (softmax(l)_c - [c == y]) / B, softmax_c = e_c / Σ e */
    double scale = invB / sum;
    for (int c = 0; c < C; c++)
      dl[c] = (float)((double)dl[c] * scale - (c == yr ? invB : 0.0));
  }
  return loss * invB;
}

void lsmi_log_softmax_at(double *out, const float *logits, const int32_t *y,
                         int B, int C) {
  for (int r = 0; r < B; r++) {
    const float *l = logits + (size_t)r * (size_t)C; // (C)
    assert(y[r] >= 0 && y[r] < C);
    double lse = row_logsumexp(l, C);
    out[r] = (double)l[y[r]] - lse;
  }
}

void lsmi_mlp_backward(const lsmi_mlp_t *m, lsmi_mlp_t *grad, float *scratch,
                       const lsmi_mlp_acts_t *a, const float *dlogits,
                       const float *x, size_t ldx, int B) {
  int IN = m->in, H = m->hidden, C = m->classes;
  assert(grad->in == IN && grad->hidden == H && grad->classes == C);
  assert(B <= a->max_batch && ldx >= (size_t)IN);
  if (B <= 0) {
    /* An empty batch has a zero gradient; keep the OVERWRITE contract. */
    size_t hI = (size_t)H * (size_t)IN, hH = (size_t)H * (size_t)H;
    size_t cH = (size_t)C * (size_t)H;
    memset(grad->W1, 0, hI * sizeof(float));
    memset(grad->b1, 0, (size_t)H * sizeof(float));
    memset(grad->W2, 0, hH * sizeof(float));
    memset(grad->b2, 0, (size_t)H * sizeof(float));
    memset(grad->W3, 0, cH * sizeof(float));
    memset(grad->b3, 0, (size_t)C * sizeof(float));
    return;
  }
  float *dh1 = scratch;                         // (B, H)
  float *dh2 = scratch + (size_t)B * (size_t)H; // (B, H)
  /* logits = h2 W3^T + b3 */
  linear_backward(dh2, grad->W3, grad->b3, dlogits, a->h2, (size_t)H, m->W3, B,
                  H, C);
  /* h2 = relu(h1 W2^T + b2) */
  relu_backward(dh2, a->h2, (size_t)B * (size_t)H);
  linear_backward(dh1, grad->W2, grad->b2, dh2, a->h1, (size_t)H, m->W2, B, H,
                  H);
  /* h1 = relu(x W1^T + b1); the input gradient is not needed */
  relu_backward(dh1, a->h1, (size_t)B * (size_t)H);
  linear_backward(NULL, grad->W1, grad->b1, dh1, x, ldx, m->W1, B, IN, H);
}
