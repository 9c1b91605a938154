/*
 * mlp.c — the discriminator MLP: forward, cross-entropy and backward.
 *
 * Linear(in,H) – ReLU – Linear(H,H) – ReLU – Linear(H,C) with PyTorch's
 * numerics: a Linear layer computes y = x W^T + b, and is initialised from
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both W and b.
 *
 * Every matrix product is one lsmi_gemm call (gemm.h) with the bias, ReLU
 * or ReLU-mask epilogue folded in, eight per training step. At a batch of
 * 32 and 64-wide layers a BLAS call spends as long deciding and packing as
 * multiplying; lsmi_gemm keeps the output tile in registers instead. Its
 * right operand must be row-major along the output columns, while its left
 * operand may be read with any strides, so the transposed operands of the
 * backward pass (dout^T, x^T) cost nothing. That fixes the weight layouts:
 *   W1 is stored transposed, (in, H): the forward product reads W1^T and the
 *      backward needs no dx, so the gradient dW1^T = x^T dh1 lands in the
 *      same layout with the 64-wide side as the vector side;
 *   W2 is stored (out, in) as PyTorch stores it, for dh1 = dh2 W2, and the
 *      forward pass transposes it into the activation block (lsmi_transpose,
 *      in 16×16 register blocks, a small part of a step) for h2 = h1 W2^T;
 *   W3 is stored (C, H), so that dW3 = dlogits^T h2 and dh2 = dlogits W3
 *      have the 64-wide side as the vector side; the forward pass transposes
 *      it (C × 64 floats) like W2.
 * All activations and their gradients are batch-major, (B, width).
 *
 * The products whose left operand is a post-ReLU activation (h1, h2) or a
 * gradient masked by one (dh2) skip the units that no row of the batch
 * fires: a zero column of h1 or h2 (and so of dh2, a zero row of dh2^T),
 * common in a trained two-class discriminator (doc/performance.md says how
 * common).
 * live_units lists the live ones (lsmi_gemm_live), once for h1 and once for
 * h2 per pass, and the products sum over those only (gemm.h: bit for bit the
 * same result) when at least an eighth of the units are dead.
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
#include "gemm.h"
#include "simd.h"
#include "vmath.h"

#include <assert.h>
#include <math.h>
#include <string.h>

size_t lsmi_mlp_nparams(int in, int hidden, int classes) {
  size_t IN = (size_t)in, H = (size_t)hidden, C = (size_t)classes;
  return IN * H + H + H * H + H + C * H + C;
}

void lsmi_mlp_bind(lsmi_mlp_t *m, float *block, int in, int hidden,
                   int classes) {
  size_t IN = (size_t)in, H = (size_t)hidden, C = (size_t)classes;
  m->in = in;
  m->hidden = hidden;
  m->classes = classes;
  m->W1t = block;          // (in, H)
  m->b1 = m->W1t + IN * H; // (H)
  m->W2 = m->b1 + H;       // (H, H)
  m->b2 = m->W2 + H * H;   // (H)
  m->W3 = m->b2 + H;       // (C, H)
  m->b3 = m->W3 + C * H;   // (C)
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
  /* W1 is drawn in PyTorch's (H, in) row-major order and stored
   * transposed, so that each weight gets the value PyTorch's would. */
  for (size_t o = 0; o < H; o++)
    for (size_t i = 0; i < IN; i++)
      m->W1t[i * H + o] =
          (float)(-bound1 + 2.0 * bound1 * lsmi_rng_uniform(rng));
  uniform_fill(m->b1, H, bound1, rng);
  uniform_fill(m->W2, H * H, bound2, rng);
  uniform_fill(m->b2, H, bound2, rng);
  uniform_fill(m->W3, C * H, bound2, rng);
  uniform_fill(m->b3, C, bound2, rng);
}

void lsmi_mlp_set_W1(lsmi_mlp_t *m, const float *W1) {
  size_t IN = (size_t)m->in, H = (size_t)m->hidden;
  for (size_t o = 0; o < H; o++)
    for (size_t i = 0; i < IN; i++)
      m->W1t[i * H + o] = W1[o * IN + i];
}

void lsmi_mlp_get_W1(const lsmi_mlp_t *m, float *W1) {
  size_t IN = (size_t)m->in, H = (size_t)m->hidden;
  for (size_t o = 0; o < H; o++)
    for (size_t i = 0; i < IN; i++)
      W1[o * IN + i] = m->W1t[i * H + o];
}

size_t lsmi_mlp_nacts(int hidden, int classes, int max_batch) {
  size_t H = (size_t)hidden, C = (size_t)classes, B = (size_t)max_batch;
  return B * H + B * H + B * C + H * H + H * C;
}

void lsmi_mlp_acts_bind(lsmi_mlp_acts_t *a, float *block, int hidden,
                        int classes, int max_batch) {
  size_t H = (size_t)hidden, C = (size_t)classes, B = (size_t)max_batch;
  a->max_batch = max_batch;
  a->hidden = hidden;
  a->classes = classes;
  a->h1 = block;              // (B, H)
  a->h2 = a->h1 + B * H;      // (B, H)
  a->logits = a->h2 + B * H;  // (B, C)
  a->W2t = a->logits + B * C; // (H, H)
  a->W3t = a->W2t + H * H;    // (H, C)
}

size_t lsmi_mlp_nscratch(int hidden, int max_batch) {
  return 2 * (size_t)hidden * (size_t)max_batch;
}

/* ------------------------------------------------------------------------ */
/* Kernels                                                                  */
/* ------------------------------------------------------------------------ */

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

/* Most hidden units whose live list a pass keeps on the stack. */
#define LIVE_MAX 1024

/*
 * The units (columns) of h (B, H) that some row fires, into live; returns
 * their count, or -1 when fewer than an eighth are dead (a tile's k loop
 * over a list runs a little slower than over a range) or H is beyond
 * LIVE_MAX: the products then run over every unit.
 */
static int live_units(const float *h, int B, int H, int *live) {
  if (H > LIVE_MAX || B <= 0)
    return -1;
  int n = lsmi_gemm_live(h, (size_t)H, B, H, live);
  return n > H - H / 8 ? -1 : n;
}

/* ------------------------------------------------------------------------ */
/* Public passes                                                            */
/* ------------------------------------------------------------------------ */

void lsmi_mlp_forward(const lsmi_mlp_t *m, lsmi_mlp_acts_t *a, const float *x,
                      size_t ldx, int B) {
  int IN = m->in, H = m->hidden, C = m->classes;
  assert(B <= a->max_batch && ldx >= (size_t)IN);
  assert(a->hidden == H && a->classes == C);
  if (B <= 0)
    return;
  const size_t h = (size_t)H, c = (size_t)C;
  /* h1 (B, H) = relu(x W1^T + b1): W1 is stored transposed, (in, H), which
   * is the row-major right operand this product needs. */
  lsmi_gemm(&(lsmi_gemm_t){.M = B,
                           .N = H,
                           .K = IN,
                           .a = x,
                           .rsa = ldx,
                           .csa = 1,
                           .b = m->W1t,
                           .ldb = h,
                           .c = a->h1,
                           .ldc = h,
                           .bias = m->b1,
                           .relu = 1});
  /* h2 (B, H) = relu(h1 W2^T + b2): the product reads W2^T (in, out) row by
   * row, the backward pass W2 (out, in); W2 is stored as PyTorch stores it
   * and transposed here, once per step, into the activation block. */
  int live1[LIVE_MAX], n1 = live_units(a->h1, B, H, live1);
  lsmi_transpose(a->W2t, h, m->W2, h, H, H); // (H, H)
  lsmi_gemm(&(lsmi_gemm_t){.M = B,
                           .N = H,
                           .K = H,
                           .a = a->h1,
                           .rsa = h,
                           .csa = 1,
                           .b = a->W2t,
                           .ldb = h,
                           .c = a->h2,
                           .ldc = h,
                           .bias = m->b2,
                           .relu = 1,
                           .live_k = n1 >= 0 ? live1 : NULL,
                           .nlive_k = n1});
  /* logits (B, C) = h2 W3^T + b3, likewise with W3^T (H, C) */
  /* (a list pays only for a tiled product: lsmi_gemm takes the logits of up
   * to four classes as dot products, which run over every unit) */
  int live2[LIVE_MAX], n2 = C > 4 ? live_units(a->h2, B, H, live2) : -1;
  lsmi_transpose(a->W3t, c, m->W3, h, C, H); // (H, C)
  lsmi_gemm(&(lsmi_gemm_t){.M = B,
                           .N = C,
                           .K = H,
                           .a = a->h2,
                           .rsa = h,
                           .csa = 1,
                           .b = a->W3t,
                           .ldb = c,
                           .c = a->logits,
                           .ldc = c,
                           .bias = m->b3,
                           .live_k = n2 >= 0 ? live2 : NULL,
                           .nlive_k = n2});
}

/*
 * log Σ_c exp(l_c) of one row of logits (C), as max + log Σ_c exp(l_c - max)
 * with the exponentials in float (as PyTorch's float32 log_softmax) and
 * their sum in double. Subtracting the maximum keeps every exponent <= 0,
 * so nothing overflows, and the largest term is exactly 1, so the logarithm
 * is finite. A NaN logit gives NaN (the fit's divergence check relies on
 * it). lsmi_ce_forward_backward repeats these operations, except that it
 * takes one logarithm of a product of up to 16 rows' sums rather than one
 * per row, so its loss is -log_softmax_at to double rounding.
 */
/* e[c] = exp(l[c] - mx) for n logits, in float, with lsmi_vm_expf: a loop
 * that vectorises (libm's expf is a call per element, and the exponentials
 * are most of the cross-entropy at many classes). e may be l. */
LSMI_VECTOR_CLONES
static void exp_shifted(float *e, const float *l, float mx, int n) {
  for (int c = 0; c < n; c++)
    e[c] = lsmi_vm_expf(l[c] - mx);
}

static float row_max(const float *l, int C) {
  float mx = l[0];
  for (int c = 1; c < C; c++)
    if (l[c] > mx)
      mx = l[c];
  return mx;
}

/* Σ_c e[c] in double, in four interleaved partial sums added at the end:
 * four times the throughput of one running sum, in an order fixed by n
 * alone, so the loss and log_softmax_at add the same terms alike. */
static double sum_double(const float *e, int n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  int c = 0;
  for (; c + 4 <= n; c += 4) {
    s0 += (double)e[c];
    s1 += (double)e[c + 1];
    s2 += (double)e[c + 2];
    s3 += (double)e[c + 3];
  }
  for (; c < n; c++)
    s0 += (double)e[c];
  return (s0 + s1) + (s2 + s3);
}

static double row_logsumexp(const float *l, int C) {
  enum { CHUNK = 64 };
  float e[CHUNK];
  float mx = row_max(l, C);
  double s = 0.0;
  for (int c0 = 0; c0 < C; c0 += CHUNK) {
    int n = C - c0 < CHUNK ? C - c0 : CHUNK;
    exp_shifted(e, l + c0, mx, n);
    s += sum_double(e, n);
  }
  return (double)mx + log(s);
}

double lsmi_ce_forward_backward(float *dlogits, const float *logits,
                                const int32_t *y, int B, int C) {
  if (B <= 0)
    return 0.0;
  /* Σ_b log Σ_c e_bc is taken as the logarithm of products of 16 rows'
   * sums: a logarithm costs as much as the rest of a row at C = 2, and each
   * sum lies in [1, C] (the largest term is exactly 1), so a product of 16
   * stays below C^16, far inside double's range for any int C. A NaN sum
   * makes the product, and so the loss, NaN. */
  enum { ROWS_PER_LOG = 16 };
  double loss = 0.0, prod = 1.0;
  double invB = 1.0 / (double)B;
  const size_t BC = (size_t)B * (size_t)C;
  /* The exponentials e_bc = exp(l_bc - max_b) (float, as PyTorch) of the
   * whole batch in one vectorised call, over the shifted logits kept in
   * dlogits; see row_logsumexp for why the maximum is subtracted. loss_b =
   * -log softmax(l_b)_y = max_b + log Σ_c e_bc - l_by, the logarithm
   * deferred to the product. */
  for (int r = 0; r < B; r++) {
    const float *l = logits + (size_t)r * (size_t)C; // (C)
    float *dl = dlogits + (size_t)r * (size_t)C;     // (C)
    assert(y[r] >= 0 && y[r] < C);
    float mx = row_max(l, C);
    for (int c = 0; c < C; c++)
      dl[c] = l[c] - mx;
    loss += (double)mx - (double)l[y[r]];
  }
  exp_shifted(dlogits, dlogits, 0.0f, (int)BC);
  for (int r = 0; r < B; r++) {
    float *dl = dlogits + (size_t)r * (size_t)C; // (C), e_bc
    int yr = y[r];
    double sum = sum_double(dl, C);
    prod *= sum;
    if (r % ROWS_PER_LOG == ROWS_PER_LOG - 1 || r == B - 1) {
      loss += log(prod);
      prod = 1.0;
    }
    /* dL/dl_c = (softmax(l)_c - [c == y]) / B, softmax_c = e_c / Σ e; the
     * one-hot term taken from e_y before the loop, which then vectorises */
    double scale = invB / sum;
    float dly = (float)((double)dl[yr] * scale - invB);
    for (int c = 0; c < C; c++)
      dl[c] = (float)((double)dl[c] * scale);
    dl[yr] = dly;
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
    memset(grad->W1t, 0, lsmi_mlp_nparams(IN, H, C) * sizeof(float));
    return;
  }
  const size_t h = (size_t)H, c = (size_t)C;
  float *dh1 = scratch;                 // (B, H)
  float *dh2 = scratch + (size_t)B * h; // (B, H)
  /* the units of layer 2 that some row fires: dh2 is zero in the others */
  int live2[LIVE_MAX], n2 = live_units(a->h2, B, H, live2);
  /* Layer 3, logits = h2 W3^T + b3:
   *   dW3 (C, H) = dlogits^T h2       (dL/dW3_ch = Σ_b dl_bc h2_bh)
   *   db3 (C)    = Σ_b dlogits_b
   *   dh2 (B, H) = (dlogits W3) ⊙ [h2 > 0]   (ReLU backward, mask h2) */
  lsmi_gemm(&(lsmi_gemm_t){.M = C,
                           .N = H,
                           .K = B,
                           .a = dlogits,
                           .rsa = 1,
                           .csa = c,
                           .b = a->h2,
                           .ldb = h,
                           .c = grad->W3,
                           .ldc = h});
  bias_grad(grad->b3, dlogits, B, C);
  lsmi_gemm(&(lsmi_gemm_t){.M = B,
                           .N = H,
                           .K = C,
                           .a = dlogits,
                           .rsa = c,
                           .csa = 1,
                           .b = m->W3,
                           .ldb = h,
                           .c = dh2,
                           .ldc = h,
                           .mask = a->h2,
                           .ldm = h});
  /* Layer 2, h2 = relu(h1 W2^T + b2), dh2 already through the ReLU:
   *   dW2 (H, H) = dh2^T h1           (dL/dW2_oi = Σ_b dh2_bo h1_bi)
   *   db2 (H)    = Σ_b dh2_b
   *   dh1 (B, H) = (dh2 W2) ⊙ [h1 > 0] */
  lsmi_gemm(&(lsmi_gemm_t){.M = H,
                           .N = H,
                           .K = B,
                           .a = dh2,
                           .rsa = 1,
                           .csa = h,
                           .b = a->h1,
                           .ldb = h,
                           .c = grad->W2,
                           .ldc = h,
                           .live_rows = n2 >= 0 ? live2 : NULL,
                           .nlive_rows = n2});
  bias_grad(grad->b2, dh2, B, H);
  lsmi_gemm(&(lsmi_gemm_t){.M = B,
                           .N = H,
                           .K = H,
                           .a = dh2,
                           .rsa = h,
                           .csa = 1,
                           .b = m->W2,
                           .ldb = h,
                           .c = dh1,
                           .ldc = h,
                           .mask = a->h1,
                           .ldm = h,
                           .live_k = n2 >= 0 ? live2 : NULL,
                           .nlive_k = n2});
  /* Layer 1, h1 = relu(x W1^T + b1); the input gradient is not needed:
   *   dW1^T (in, H) = x^T dh1         (dL/dW1_hi = Σ_b dh1_bh x_bi), in the
   *                                    transposed layout W1 is stored in
   *   db1 (H)       = Σ_b dh1_b */
  lsmi_gemm(&(lsmi_gemm_t){.M = IN,
                           .N = H,
                           .K = B,
                           .a = x,
                           .rsa = 1,
                           .csa = ldx,
                           .b = dh1,
                           .ldb = h,
                           .c = grad->W1t,
                           .ldc = h});
  bias_grad(grad->b1, dh1, B, H);
}
