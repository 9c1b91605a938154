/*
 * knife.c — the KNIFE marginal kernel: log-density of a batch and the
 * hand-written gradient of the mean negative log-density.
 *
 * Per component k and row x (d floats):
 *   s_k = exp(tanh(logvar_k))                       (d)
 *   a_k = (x - means_k) ⊙ s_k                       (d)
 *   z_k = (I + L_k) a_k,  L_k = strictly_lower(tri_k)
 *   c_k = -½‖z_k‖² + Σ_j log(|s_kj| + 1e-8) + log_softmax(weigh)_k
 *   log p(x) = -d/2 log 2π + logsumexp_k c_k
 *
 * How the work is laid out. A batch of B rows is one triangular product per
 * component in the forward, Z_k = A_k (I + L_k)^T, done in place by
 * cblas_strmm with a unit diagonal straight from tri_k (the BLAS reads only
 * its strictly lower triangle, so no masked copy is made, and a triangular
 * product is half the work of a full one); the backward adds one full
 * product dTri_k = dZ_k^T A_k (masked to the strictly lower triangle) and
 * one more triangular one, dA_k = dZ_k (I + L_k). Nothing is ever computed
 * per sample through a matrix, and nothing is allocated: every buffer is a
 * view into the caller's scratch.
 *
 * Numerics follow the float32 PyTorch reference: everything up to and
 * including the logsumexp (with max-subtraction) is float, the result is
 * widened to double before the constant -d/2 log 2π is added, and the loss
 * is accumulated in double. The few per-component sums over the batch that
 * feed the weigh and logdet gradients are kept in double because the weigh
 * gradient is a difference of nearly equal terms.
 */
#include "knife.h"
#include "simd.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

/* Offsets are rounded up to 16 floats (64 bytes) so every view starts on a
 * cache line when scratch does. */
static size_t knife_round(size_t n) { return (n + 15) & ~(size_t)15; }

/* Views into scratch; see lsmi_knife_nscratch for the sizes. */
typedef struct knife_scratch {
  float *s;      // (K, d) exp(tanh(logvar))
  float *th;     // (K, d) tanh(logvar)
  float *logdet; // (K) Σ_j log(|s_kj| + 1e-8)
  float *lsw;    // (K) log_softmax(weigh)
  float *c;      // (B, K) c_nk; in the backward g_nk = -softmax_k(c_n) / B
  float *lse;    // (B) logsumexp_k c
  float *A;      // (B, d) a_k of one component; reused for dA_k
  float *Z;      // (K, B, d) z_k of every component (backward) or (B, d)
} knife_scratch_t;

static void knife_scratch_bind(knife_scratch_t *w, float *scratch, int d, int K,
                               int max_batch) {
  size_t dd = (size_t)d, KK = (size_t)K, BB = (size_t)max_batch;
  float *p = scratch;
  w->s = p;
  p += knife_round(KK * dd);
  w->th = p;
  p += knife_round(KK * dd);
  w->logdet = p;
  p += knife_round(KK);
  w->lsw = p;
  p += knife_round(KK);
  w->c = p;
  p += knife_round(BB * KK);
  w->lse = p;
  p += knife_round(BB);
  w->A = p;
  p += knife_round(BB * dd);
  w->Z = p;
}

size_t lsmi_knife_nparams(int d, int K) {
  size_t dd = (size_t)d, KK = (size_t)K;
  return KK * dd + KK * dd + KK * dd * dd + KK;
}

void lsmi_knife_bind(lsmi_knife_t *k, float *block, int d, int K) {
  assert(d > 0 && K > 0);
  size_t dd = (size_t)d, KK = (size_t)K;
  k->d = d;
  k->K = K;
  k->means = block;
  k->logvar = k->means + KK * dd;
  k->tri = k->logvar + KK * dd;
  k->weigh = k->tri + KK * dd * dd;
}

void lsmi_knife_init(lsmi_knife_t *k, lsmi_rng_t *rng) {
  size_t Kd = (size_t)k->K * (size_t)k->d;
  size_t Kdd = Kd * (size_t)k->d;
  for (size_t i = 0; i < Kd; i++)
    k->means[i] = (float)lsmi_rng_normal(rng);
  for (size_t i = 0; i < Kd; i++)
    k->logvar[i] = (float)lsmi_rng_normal(rng);
  for (size_t i = 0; i < Kdd; i++)
    k->tri[i] = (float)lsmi_rng_normal(rng);
  for (int i = 0; i < k->K; i++)
    k->weigh[i] = 1.0f;
}

/*
 * s, tanh (K d each) | logdet, lsw (K each) | c (B K) | lse (B)
 * | A (B d) | Z (K B d), each rounded up to 16 floats. logpdf uses only the
 * first B d floats of Z; the backward keeps z_k of all K components there.
 */
size_t lsmi_knife_nscratch(int d, int K, int max_batch) {
  size_t dd = (size_t)d, KK = (size_t)K, BB = (size_t)max_batch;
  return 2 * knife_round(KK * dd) + 2 * knife_round(KK) + knife_round(BB * KK) +
         knife_round(BB) + knife_round(BB * dd) + knife_round(KK * BB * dd);
}

/*
 * Everything that depends on the parameters only: s, tanh(logvar), logdet
 * and log_softmax(weigh). In float, as the reference.
 */
static void knife_prepare(const lsmi_knife_t *k, knife_scratch_t *w) {
  int d = k->d, K = k->K;
  size_t dd = (size_t)d;
  for (int c = 0; c < K; c++) {
    const float *lv = k->logvar + (size_t)c * dd; // (d)
    float *s = w->s + (size_t)c * dd;             // (d)
    float *th = w->th + (size_t)c * dd;           // (d)
    float logdet = 0.0f;
    for (int j = 0; j < d; j++) {
      th[j] = tanhf(lv[j]);
      s[j] = expf(th[j]);
      logdet += logf(fabsf(s[j]) + 1e-8f);
    }
    w->logdet[c] = logdet;
  }
  float wmax = k->weigh[0];
  for (int c = 1; c < K; c++)
    wmax = fmaxf(wmax, k->weigh[c]);
  float wsum = 0.0f;
  for (int c = 0; c < K; c++)
    wsum += expf(k->weigh[c] - wmax);
  float wlse = wmax + logf(wsum);
  for (int c = 0; c < K; c++)
    w->lsw[c] = k->weigh[c] - wlse;
}

/* a (B, d) = (x - means_c) ⊙ s_c for component c. */
static void knife_center(const lsmi_knife_t *k, const knife_scratch_t *w,
                         float *a, const float *x, size_t ldx, int B, int c) {
  size_t dd = (size_t)k->d;
  const float *m = k->means + (size_t)c * dd; // (d)
  const float *s = w->s + (size_t)c * dd;     // (d)
  for (int n = 0; n < B; n++) {
    const float *xn = x + (size_t)n * ldx;
    float *an = a + (size_t)n * dd;
    for (size_t j = 0; j < dd; j++)
      an[j] = (xn[j] - m[j]) * s[j];
  }
}

/*
 * ‖v‖² of n floats in 16 partial sums, added in a fixed order at the end: a
 * loop the compiler can vectorise (a single running sum forces one add at a
 * time) whose result does not depend on which vector width ran it.
 */
LSMI_VECTOR_CLONES
static float sum_squares(const float *v, size_t n) {
  enum { LANES = 16 };
  float acc[LANES] = {0};
  size_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (size_t l = 0; l < LANES; l++)
      acc[l] += v[j + l] * v[j + l];
  for (size_t l = 0; j < n; j++, l++)
    acc[l] += v[j] * v[j];
  for (size_t h = LANES / 2; h > 0; h /= 2)
    for (size_t l = 0; l < h; l++)
      acc[l] += acc[l + h];
  return acc[0];
}

/*
 * Forward of B rows into w->c (B, K) and w->lse (B). With keep_z, z_k of
 * every component is kept in w->Z (K, B, d) for the backward; otherwise
 * w->Z holds one component at a time.
 */
static void knife_forward(const lsmi_knife_t *k, knife_scratch_t *w,
                          const float *x, size_t ldx, int B, int keep_z) {
  int d = k->d, K = k->K;
  size_t dd = (size_t)d, KK = (size_t)K;
  for (int c = 0; c < K; c++) {
    float *Z = w->Z + (keep_z ? (size_t)c * (size_t)B * dd : 0); // (B, d)
    knife_center(k, w, Z, x, ldx, B, c);
    // Z (B, d) = A (B, d) · (I + L_c)^T (d, d) in place, i.e. z = a + L_c a
    // for every row; unit diagonal, strictly lower part of tri_c.
    cblas_strmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasUnit, B,
                d, 1.0f, k->tri + (size_t)c * dd * dd, d, Z, d);
    float base = w->logdet[c] + w->lsw[c];
    for (int n = 0; n < B; n++)
      w->c[(size_t)n * KK + (size_t)c] =
          -0.5f * sum_squares(Z + (size_t)n * dd, dd) + base;
  }
  for (int n = 0; n < B; n++) {
    const float *cn = w->c + (size_t)n * KK; // (K)
    float cmax = cn[0];
    for (int c = 1; c < K; c++)
      cmax = fmaxf(cmax, cn[c]);
    float sum = 0.0f;
    for (int c = 0; c < K; c++)
      sum += expf(cn[c] - cmax);
    /* All c = -inf (‖z‖² overflowed float) gives -inf as torch.logsumexp
     * does, rather than the NaN of -inf - -inf. */
    w->lse[n] = isfinite(cmax) ? cmax + logf(sum) : cmax;
  }
}

/* Rows of dTri per product in knife_lower_product. */
#define LOWER_BLOCK 64

/*
 * dtri (d, d) = strictly_lower(dZ^T A) for dZ, A (B, d). Only the strictly
 * lower triangle is wanted, so row block [i0, i1) is one product over
 * columns [0, i1) only: about half the work of the full d×d product for
 * large d, in products still large enough for the BLAS to run at speed.
 * The diagonal and everything above it are then set to 0.
 */
static void knife_lower_product(float *dtri, const float *dZ, const float *A,
                                int d, int B) {
  size_t dd = (size_t)d;
  for (int i0 = 0; i0 < d; i0 += LOWER_BLOCK) {
    int i1 = i0 + LOWER_BLOCK < d ? i0 + LOWER_BLOCK : d;
    // dtri[i0:i1, 0:i1] (i1 - i0, i1) = dZ[:, i0:i1]^T A[:, 0:i1]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1 - i0, i1, B, 1.0f,
                dZ + i0, d, A, d, 0.0f, dtri + (size_t)i0 * dd, d);
  }
  for (int i = 0; i < d; i++)
    memset(dtri + (size_t)i * dd + i, 0, (size_t)(d - i) * sizeof(float));
}

static double knife_log_norm(int d) {
  return -0.5 * (double)d * log(2.0 * M_PI);
}

void lsmi_knife_logpdf(const lsmi_knife_t *k, double *logp, float *scratch,
                       const float *x, size_t ldx, int B) {
  assert(B >= 0 && ldx >= (size_t)k->d);
  if (B == 0)
    return;
  knife_scratch_t w;
  knife_scratch_bind(&w, scratch, k->d, k->K, B);
  knife_prepare(k, &w);
  knife_forward(k, &w, x, ldx, B, 0);
  double norm = knife_log_norm(k->d);
  for (int n = 0; n < B; n++)
    logp[n] = (double)w.lse[n] + norm;
}

double lsmi_knife_loss_backward(const lsmi_knife_t *k, lsmi_knife_t *grad,
                                float *scratch, const float *x, size_t ldx,
                                int B) {
  assert(B > 0 && ldx >= (size_t)k->d);
  assert(grad->d == k->d && grad->K == k->K);
  int d = k->d, K = k->K;
  size_t dd = (size_t)d, KK = (size_t)K;
  knife_scratch_t w;
  knife_scratch_bind(&w, scratch, d, K, B);
  knife_prepare(k, &w);
  knife_forward(k, &w, x, ldx, B, 1);

  double norm = knife_log_norm(d);
  double loss = 0.0;
  for (int n = 0; n < B; n++)
    loss -= (double)w.lse[n] + norm;
  loss /= (double)B;

  // g (B, K) = dloss/dc = -(1/B) softmax_k(c_n), written over c.
  float invB = 1.0f / (float)B;
  for (int n = 0; n < B; n++) {
    float *cn = w.c + (size_t)n * KK;
    for (int c = 0; c < K; c++)
      cn[c] = -invB * expf(cn[c] - w.lse[n]);
  }

  // G_c = Σ_n g_nc is dloss/dlogdet_c and dloss/dlog_softmax(weigh)_c.
  // Σ_c G_c is -1 in exact arithmetic; it is summed from the same g rather
  // than assumed, so that dweigh sums to zero up to rounding as it should.
  double Gsum = 0.0;
  for (size_t i = 0; i < (size_t)B * KK; i++)
    Gsum += (double)w.c[i];

  for (int c = 0; c < K; c++) {
    float *dZ = w.Z + (size_t)c * (size_t)B * dd;  // (B, d), z_c then dz_c
    float *dtri = grad->tri + (size_t)c * dd * dd; // (d, d)
    float *dm = grad->means + (size_t)c * dd;      // (d)
    float *dlv = grad->logvar + (size_t)c * dd;    // (d)
    const float *m = k->means + (size_t)c * dd;    // (d)
    const float *s = w.s + (size_t)c * dd;         // (d)
    const float *th = w.th + (size_t)c * dd;       // (d)

    // dz_n = g_nc · (-z_n)   (c = -½‖z‖² + …), in place over z.
    for (int n = 0; n < B; n++) {
      float g = w.c[(size_t)n * KK + (size_t)c];
      float *zn = dZ + (size_t)n * dd;
      for (size_t j = 0; j < dd; j++)
        zn[j] = -g * zn[j];
    }
    // dL_c = strictly_lower(Σ_n dz_n a_n^T) = strictly_lower(dZ^T A).
    knife_center(k, &w, w.A, x, ldx, B, c);
    knife_lower_product(dtri, dZ, w.A, d, B);
    // da_n = (I + L_c)^T dz_n, i.e. dA (B, d) = dZ (B, d) · (I + L_c), in
    // place over a copy of dZ (A is not needed any more).
    memcpy(w.A, dZ, (size_t)B * dd * sizeof(float));
    cblas_strmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasUnit,
                B, d, 1.0f, k->tri + (size_t)c * dd * dd, d, w.A, d);
    // Column sums over the batch: Σ_n da_n and Σ_n da_n ⊙ (x_n - means_c),
    // accumulated in dm and dlv before they are turned into gradients.
    memset(dm, 0, dd * sizeof(float));
    memset(dlv, 0, dd * sizeof(float));
    for (int n = 0; n < B; n++) {
      const float *xn = x + (size_t)n * ldx;
      const float *dan = w.A + (size_t)n * dd;
      for (size_t j = 0; j < dd; j++) {
        dm[j] += dan[j];
        dlv[j] += dan[j] * (xn[j] - m[j]);
      }
    }
    double G = 0.0;
    for (int n = 0; n < B; n++)
      G += (double)w.c[(size_t)n * KK + (size_t)c];
    // dweigh_c = G_c - softmax(weigh)_c Σ_m G_m   (d log_softmax / d weigh)
    grad->weigh[c] = (float)(G - exp((double)w.lsw[c]) * Gsum);
    for (size_t j = 0; j < dd; j++) {
      // dmeans = -Σ_n da ⊙ s   (a = (x - means) ⊙ s)
      dm[j] = -dm[j] * s[j];
      // ds = Σ_n da ⊙ (x - means) + G_c / (|s| + 1e-8)   (logdet term; s > 0)
      float ds = dlv[j] + (float)(G / ((double)s[j] + 1e-8));
      // dlogvar = ds ⊙ s ⊙ (1 - tanh²(logvar))   (s = exp(tanh(logvar)))
      dlv[j] = ds * s[j] * (1.0f - th[j] * th[j]);
    }
  }
  return loss;
}

void lsmi_knife_adam_update(const lsmi_knife_t *k, const lsmi_knife_t *grad,
                            lsmi_adam_t *a) {
  size_t dd = (size_t)k->d, KK = (size_t)k->K;
  float *p = k->means;          /* the parameter block starts with means */
  const float *g = grad->means; /* and so does the gradient block */
  size_t tri0 = 2 * KK * dd;    /* means (K, d) | logvar (K, d) | tri ... */
  lsmi_adam_update(a, p, g, 0, tri0);
  for (size_t c = 0; c < KK; c++)
    for (size_t i = 1; i < dd; i++) /* row i: columns 0 .. i-1 */
      lsmi_adam_update(a, p, g, tri0 + (c * dd + i) * dd, i);
  lsmi_adam_update(a, p, g, tri0 + KK * dd * dd, KK); /* weigh (K) */
}
