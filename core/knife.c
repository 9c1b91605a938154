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
 * How the work is laid out. The batch is kept feature-major: X^T (d, B), so
 * that every elementwise step (centering, ‖z‖², the logsumexp over the
 * components, the softmax weights) runs across the batch, B rows to a
 * vector, whatever d is; at d = 2 a whole component is a handful of vector
 * operations. The products go through lsmi_gemm (gemm.h), which reads the
 * triangular factor in place:
 *
 *   forward   Z_k^T (d, B) = A_k^T + L_k A_k^T       one strictly lower
 *             product, accumulated onto a copy of A_k^T
 *   backward  P_k (d, d) = dZ_k^T A_k                one product, only on
 *             and below the diagonal
 *
 * and that is all: the backward needs no dA_k = dZ_k (I + L_k). What the
 * means and logvar gradients need of dA_k are two sums over the batch, and
 * both reduce to O(d²) work on quantities already at hand:
 *   Σ_n da_n            = (I + L_k)^T u,           u = Σ_n dz_n
 *   Σ_n da_nj a_nj      = P_jj + Σ_{i>j} L_ij P_ij
 * (da_n = (I + L_k)^T dz_n, and P_ij = Σ_n dz_ni a_nj, whose strictly lower
 * part is dL_k itself). u and the diagonal of P come out of the same call
 * as dL_k: the product is taken with two leading zero rows in dZ^T and a
 * leading column of ones in A, which shifts the "strictly lower" cut one
 * place right and puts u in the first column (see knife_backward).
 *
 * Nothing is allocated: every buffer is a view into the caller's scratch.
 *
 * Numerics follow the float32 PyTorch reference: everything up to and
 * including the logsumexp (with max-subtraction) is float, the result is
 * widened to double before the constant -d/2 log 2π is added, and the loss
 * is accumulated in double. The few per-component sums over the batch that
 * feed the weigh and logdet gradients are kept in double because the weigh
 * gradient is a difference of nearly equal terms. The exponentials,
 * logarithms and tanh are lsmi's own (lsmi_vm_expf and friends, vmath.h), written
 * so that the loops calling them vectorise; they are computed in double and
 * rounded once, which makes them faithful to within an ulp of libm's, and
 * they keep libm's infinities and NaNs (a diverged fit still shows as NaN).
 */
#include "knife.h"
#include "gemm.h"
#include "simd.h"
#include "vmath.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Elementwise functions                                                    */
/* ------------------------------------------------------------------------ */

/* The loops of the functions above over n floats, for the tests (which
 * compare them with libm): out may be x. */
LSMI_VECTOR_CLONES
void lsmi_knife_vexpf(float *out, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = lsmi_vm_expf(x[i]);
}
LSMI_VECTOR_CLONES
void lsmi_knife_vlogf(float *out, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = lsmi_vm_logf(x[i]);
}
LSMI_VECTOR_CLONES
void lsmi_knife_vtanhf(float *out, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = lsmi_vm_tanhf(x[i]);
}

/* ------------------------------------------------------------------------ */
/* Blocks and scratch                                                       */
/* ------------------------------------------------------------------------ */

/* Offsets are rounded up to 16 floats (64 bytes) so every view starts on a
 * cache line when scratch does. */
static size_t knife_round(size_t n) { return (n + 15) & ~(size_t)15; }

/* Rows per pass of lsmi_knife_logpdf: a (d, CHUNK) block of z stays in
 * the L1/L2 caches while the product streams the factor through it. */
#define KNIFE_CHUNK 64

/* Columns per block of the pass over the backward product: one vector of
 * the type below. */
#define KNIFE_COLS 16

/* Sixteen floats as one value (a GCC/Clang vector extension): the compiler
 * keeps it in one AVX-512 register, or two or four narrower ones, where an
 * array of sixteen would be unrolled into scalars. Loads and stores go
 * through memcpy, so no alignment is assumed; the values never cross a
 * function call (that would tie the ABI to the vector width). */
typedef float knife_v16
    __attribute__((vector_size(KNIFE_COLS * sizeof(float))));
typedef int32_t knife_v16i
    __attribute__((vector_size(KNIFE_COLS * sizeof(int32_t))));

/* Views into scratch; see lsmi_knife_nscratch for the sizes. */
typedef struct knife_scratch {
  float *s;      // (K, d) exp(tanh(logvar))
  float *th;     // (K, d) tanh(logvar)
  float *logdet; // (K) Σ_j log(|s_kj| + 1e-8)
  float *lsw;    // (K) log_softmax(weigh)
  float *cmax;   // (B) max_k c_nk
  float *sum;    // (B) Σ_k exp(c_nk - cmax_n)
  float *lse;    // (B) logsumexp_k c_nk
  float *C;      // (K, B) c_nk, then exp(c_nk - cmax_n), then g_nk
  float *xt;     // (d, B) x^T
  float *A;      // (d, B) a_k^T (forward) or (B, d + 1) [1 | a_k] (backward)
  float *W;      // (d + 2, d + 1) the backward product
  float *r;      // (d) Σ_{i>j} L_ij P_ij
  float *v;      // (d) Σ_{i>j} L_ij u_i
  float *Z;      // (K, d + 2, B) two zero rows, then z_k^T, then dz_k^T
} knife_scratch_t;

static void knife_scratch_bind(knife_scratch_t *w, float *scratch, int d, int K,
                               int max_batch) {
  size_t dd = (size_t)d, KK = (size_t)K, BB = (size_t)max_batch;
  float *p = scratch;
  w->s = p, p += knife_round(KK * dd);
  w->th = p, p += knife_round(KK * dd);
  w->logdet = p, p += knife_round(KK);
  w->lsw = p, p += knife_round(KK);
  w->cmax = p, p += knife_round(BB);
  w->sum = p, p += knife_round(BB);
  w->lse = p, p += knife_round(BB);
  w->C = p, p += knife_round(KK * BB);
  w->xt = p, p += knife_round(dd * BB);
  w->A = p, p += knife_round((dd + 1) * BB);
  w->W = p, p += knife_round((dd + 2) * (dd + 1));
  w->r = p, p += knife_round(dd);
  w->v = p, p += knife_round(dd);
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
 * s, tanh (K d each) | logdet, lsw (K each) | cmax, sum, lse (B each)
 * | C (K B) | x^T (d B) | A ((d + 1) B) | W ((d + 2)(d + 1)) | r, v (d each)
 * | Z (K (d + 2) B), each rounded up to 16 floats. logpdf uses one
 * component's slice of Z; the backward keeps z_k of all K components there.
 */
size_t lsmi_knife_nscratch(int d, int K, int max_batch) {
  size_t dd = (size_t)d, KK = (size_t)K, BB = (size_t)max_batch;
  return 2 * knife_round(KK * dd) + 2 * knife_round(KK) + 3 * knife_round(BB) +
         knife_round(KK * BB) + knife_round(dd * BB) +
         knife_round((dd + 1) * BB) + knife_round((dd + 2) * (dd + 1)) +
         2 * knife_round(dd) + KK * (dd + 2) * BB;
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Everything that depends on the parameters only: s, tanh(logvar), logdet
 * and log_softmax(weigh). In float, as the reference.
 */
LSMI_VECTOR_CLONES
static void knife_prepare(const lsmi_knife_t *k, knife_scratch_t *w) {
  int d = k->d, K = k->K;
  size_t Kd = (size_t)K * (size_t)d;
  float *restrict th = w->th, *restrict s = w->s;
  const float *restrict lv = k->logvar;
  for (size_t i = 0; i < Kd; i++) {
    th[i] = lsmi_vm_tanhf(lv[i]);
    s[i] = lsmi_vm_expf(th[i]);
  }
  /* log(|s| + 1e-8) into r, then summed per component in order. r is free
   * until the backward. */
  float *restrict ls = w->r;
  for (int c = 0; c < K; c++) {
    const float *sc = s + (size_t)c * (size_t)d; // (d)
    for (int j = 0; j < d; j++)
      ls[j] = lsmi_vm_logf(fabsf(sc[j]) + 1e-8f);
    float logdet = 0.0f;
    for (int j = 0; j < d; j++)
      logdet += ls[j];
    w->logdet[c] = logdet;
  }
  float wmax = k->weigh[0];
  for (int c = 1; c < K; c++)
    wmax = fmaxf(wmax, k->weigh[c]);
  float wsum = 0.0f;
  for (int c = 0; c < K; c++)
    wsum += lsmi_vm_expf(k->weigh[c] - wmax);
  float wlse = wmax + lsmi_vm_logf(wsum);
  for (int c = 0; c < K; c++)
    w->lsw[c] = k->weigh[c] - wlse;
}

/*
 * Forward of B rows of x into w->C (K, B) and w->lse (B); w->C then holds
 * e_nk = exp(c_nk - cmax_n) and w->sum their sums over k, which the
 * backward turns into the softmax weights without another exponential.
 * With keep_z, z_k^T of every component is kept in w->Z (K, d + 2, B), rows
 * 2.. of each slice, rows 0 and 1 zeroed; otherwise one slice is reused.
 */
LSMI_VECTOR_CLONES
static void knife_forward(const lsmi_knife_t *k, knife_scratch_t *w,
                          const float *x, size_t ldx, int B, int keep_z) {
  int d = k->d, K = k->K;
  size_t dd = (size_t)d, BB = (size_t)B;
  float *restrict xt = w->xt; // (d, B)
  for (size_t n = 0; n < BB; n++)
    for (size_t j = 0; j < dd; j++)
      xt[j * BB + n] = x[n * ldx + j];

  for (int c = 0; c < K; c++) {
    float *restrict Zs = w->Z + (keep_z ? (size_t)c * (dd + 2) * BB : 0);
    float *restrict Z = Zs + 2 * BB;            // (d, B)
    float *restrict A = w->A;                   // (d, B)
    const float *m = k->means + (size_t)c * dd; // (d)
    const float *s = w->s + (size_t)c * dd;     // (d)
    memset(Zs, 0, 2 * BB * sizeof(float));
    // a^T (d, B) = (x^T - means_c) ⊙ s_c, into A and, as the start of the
    // accumulation, into Z.
    for (size_t j = 0; j < dd; j++) {
      float mj = m[j], sj = s[j];
      for (size_t n = 0; n < BB; n++) {
        float a = (xt[j * BB + n] - mj) * sj;
        A[j * BB + n] = a;
        Z[j * BB + n] = a;
      }
    }
    // Z (d, B) += L_c (d, d) · A (d, B): z = a + L_c a for every row, the
    // factor read in place, strictly lower.
    lsmi_gemm(&(lsmi_gemm_t){.M = d,
                             .N = B,
                             .K = d,
                             .a = k->tri + (size_t)c * dd * dd,
                             .rsa = dd,
                             .csa = 1,
                             .b = A,
                             .ldb = BB,
                             .c = Z,
                             .ldc = BB,
                             .accumulate = 1,
                             .tri = LSMI_GEMM_A_STRICT_LOWER});
    // c_nk = -½‖z_n‖² + logdet_k + lsw_k: sums of squares down the columns,
    // four rows at a time to shorten the chain of dependent additions.
    float *restrict q = w->C + (size_t)c * BB; // (B)
    for (size_t n = 0; n < BB; n++)
      q[n] = 0.0f;
    size_t j = 0;
    for (; j + 4 <= dd; j += 4) {
      const float *z0 = Z + j * BB, *z1 = z0 + BB, *z2 = z1 + BB, *z3 = z2 + BB;
      for (size_t n = 0; n < BB; n++)
        q[n] +=
            (z0[n] * z0[n] + z1[n] * z1[n]) + (z2[n] * z2[n] + z3[n] * z3[n]);
    }
    for (; j < dd; j++)
      for (size_t n = 0; n < BB; n++)
        q[n] += Z[j * BB + n] * Z[j * BB + n];
    float base = w->logdet[c] + w->lsw[c];
    for (size_t n = 0; n < BB; n++)
      q[n] = -0.5f * q[n] + base;
  }

  // logsumexp over k, across the batch. The max has fmaxf's semantics (a
  // NaN loses to a number) spelled as a select, so that it vectorises.
  float *restrict cmax = w->cmax, *restrict sum = w->sum,
                  *restrict lse = w->lse;
  for (size_t n = 0; n < BB; n++)
    cmax[n] = w->C[n];
  for (int c = 1; c < K; c++) {
    const float *cc = w->C + (size_t)c * BB;
    for (size_t n = 0; n < BB; n++)
      cmax[n] =
          lsmi_vm_select(cc[n] > cmax[n] || cmax[n] != cmax[n], cc[n], cmax[n]);
  }
  for (size_t n = 0; n < BB; n++)
    sum[n] = 0.0f;
  for (int c = 0; c < K; c++) {
    float *cc = w->C + (size_t)c * BB;
    for (size_t n = 0; n < BB; n++) {
      cc[n] = lsmi_vm_expf(cc[n] - cmax[n]);
      sum[n] += cc[n];
    }
  }
  /* All c = -inf (‖z‖² overflowed float) gives -inf as torch.logsumexp
   * does, rather than the NaN of -inf - -inf. */
  for (size_t n = 0; n < BB; n++)
    lse[n] = lsmi_vm_select(fabsf(cmax[n]) <= FLT_MAX,
                          cmax[n] + lsmi_vm_logf(sum[n]), cmax[n]);
}

static double knife_log_norm(int d) {
  return -0.5 * (double)d * log(2.0 * M_PI);
}

void lsmi_knife_logpdf(const lsmi_knife_t *k, double *logp, float *scratch,
                       const float *x, size_t ldx, int B) {
  assert(B >= 0 && ldx >= (size_t)k->d);
  if (B == 0)
    return;
  int chunk = B < KNIFE_CHUNK ? B : KNIFE_CHUNK;
  knife_scratch_t w;
  knife_scratch_bind(&w, scratch, k->d, k->K, chunk);
  knife_prepare(k, &w);
  double norm = knife_log_norm(k->d);
  for (int n0 = 0; n0 < B; n0 += chunk) {
    int b = B - n0 < chunk ? B - n0 : chunk;
    knife_forward(k, &w, x + (size_t)n0 * ldx, ldx, b, 0);
    for (int n = 0; n < b; n++)
      logp[n0 + n] = (double)w.lse[n] + norm;
  }
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * The gradient of component c, given g_n = dloss/dc_nc (B) in w->C and z_c^T
 * in its slice of w->Z: dtri_c, dmeans_c and dlogvar_c (dweigh is done by
 * the caller). G = Σ_n g_n.
 */
LSMI_VECTOR_CLONES
static void knife_backward_component(const lsmi_knife_t *k, lsmi_knife_t *grad,
                                     knife_scratch_t *w, const float *x,
                                     size_t ldx, int B, int c, double G) {
  int d = k->d;
  size_t dd = (size_t)d, BB = (size_t)B, d1 = dd + 1;
  const float *g = w->C + (size_t)c * BB;        // (B)
  float *Zs = w->Z + (size_t)c * (dd + 2) * BB;  // (d + 2, B)
  const float *L = k->tri + (size_t)c * dd * dd; // (d, d)
  const float *m = k->means + (size_t)c * dd;    // (d)
  const float *s = w->s + (size_t)c * dd;        // (d)
  const float *th = w->th + (size_t)c * dd;      // (d)
  float *dtri = grad->tri + (size_t)c * dd * dd; // (d, d)
  float *dm = grad->means + (size_t)c * dd;      // (d)
  float *dlv = grad->logvar + (size_t)c * dd;    // (d)

  // A' (B, d + 1) = -g_n [1 | a_n]: a_n = (x_n - means_c) ⊙ s_c straight
  // from the rows of x, and dz_n = -g_n z_n (c = -½‖z‖² + …) folded into
  // the rows of A' rather than scaled into z: dz_ni a_nj = z_ni (-g_n a_nj).
  float *restrict Ap = w->A;
  for (size_t n = 0; n < BB; n++) {
    const float *xn = x + n * ldx;
    float *an = Ap + n * d1;
    float gn = -g[n];
    an[0] = gn;
    for (size_t j = 0; j < dd; j++)
      an[1 + j] = gn * ((xn[j] - m[j]) * s[j]);
  }
  // W (d + 2, d + 1) = Zs (d + 2, B) · A' (B, d + 1), strictly lower. Row
  // i + 2 of Zs is z^T row i, so row i + 2 of W keeps the columns
  // j' < i + 2 of that row: W[i + 2][0] = Σ_n dz_ni = u_i and
  // W[i + 2][1 + j] = Σ_n dz_ni a_nj = P_ij for j <= i, the diagonal
  // included. Rows 0 and 1 of W are never read.
  float *restrict W = w->W;
  lsmi_gemm(&(lsmi_gemm_t){.M = d + 2,
                           .N = d + 1,
                           .K = B,
                           .a = Zs,
                           .rsa = BB,
                           .csa = 1,
                           .b = Ap,
                           .ldb = d1,
                           .c = W,
                           .ldc = d1,
                           .tri = LSMI_GEMM_C_STRICT_LOWER});
  // dL_c = strictly_lower(P), zero on and above the diagonal, and the
  // column sums r_j = Σ_{i>j} L_ij P_ij and v_j = Σ_{i>j} L_ij u_i, each
  // summed in row order. One pass down the rows, KNIFE_COLS columns at a
  // time, writing every element of dL_c once: the vector that holds the
  // diagonal is masked to its strictly lower lanes (the lanes beyond hold
  // whatever W held: the product does not write there); the columns past
  // the last whole vector (all of them when d < 16) go one at a time.
  float *restrict r = w->r, *restrict v = w->v;
  const knife_v16i lane = {0, 1, 2,  3,  4,  5,  6,  7,
                           8, 9, 10, 11, 12, 13, 14, 15};
  size_t jv = dd - dd % KNIFE_COLS; /* columns in whole vectors */
  for (size_t j = 0; j < dd; j++)
    r[j] = v[j] = 0.0f;
  for (size_t i = 0; i < dd; i++) {
    const float *Pi = W + (i + 2) * d1 + 1, *Li = L + i * dd;
    float *ti = dtri + i * dd, ui = W[(i + 2) * d1];
    knife_v16 p, l, rv, vv;
    size_t j = 0;
    for (; j + KNIFE_COLS <= i; j += KNIFE_COLS) {
      memcpy(&p, Pi + j, sizeof p);
      memcpy(&l, Li + j, sizeof l);
      memcpy(&rv, r + j, sizeof rv);
      memcpy(&vv, v + j, sizeof vv);
      memcpy(ti + j, &p, sizeof p);
      rv += l * p;
      vv += l * ui;
      memcpy(r + j, &rv, sizeof rv);
      memcpy(v + j, &vv, sizeof vv);
    }
    if (j < jv) {                              /* the vector of the diagonal */
      knife_v16i on = lane < (int32_t)(i - j); /* -1 in lanes j + l < i */
      memcpy(&p, Pi + j, sizeof p);
      memcpy(&l, Li + j, sizeof l);
      memcpy(&rv, r + j, sizeof rv);
      memcpy(&vv, v + j, sizeof vv);
      p = (knife_v16)((knife_v16i)p & on);
      memcpy(ti + j, &p, sizeof p);
      rv += (knife_v16)((knife_v16i)(l * p) & on);
      vv += (knife_v16)((knife_v16i)(l * ui) & on);
      memcpy(r + j, &rv, sizeof rv);
      memcpy(v + j, &vv, sizeof vv);
      for (j += KNIFE_COLS; j < jv; j += KNIFE_COLS)
        memcpy(ti + j, &(knife_v16){0}, sizeof p);
    }
    for (; j < dd; j++) {
      if (j < i) {
        ti[j] = Pi[j];
        r[j] += Li[j] * Pi[j];
        v[j] += Li[j] * ui;
      } else {
        ti[j] = 0.0f;
      }
    }
  }
  for (size_t j = 0; j < dd; j++) {
    const float *Wj = W + (j + 2) * d1;
    // Σ_n da_n = (I + L_c)^T u;  dmeans = -Σ_n da ⊙ s   (a = (x - means) ⊙ s)
    dm[j] = -(Wj[0] + v[j]) * s[j];
    // Σ_n da_nj (x_nj - means_j) = (P_jj + r_j) / s_j, and
    // ds = that + G_c / (|s| + 1e-8)   (logdet term; s > 0)
    float ds = (Wj[1 + j] + r[j]) / s[j] + (float)(G / ((double)s[j] + 1e-8));
    // dlogvar = ds ⊙ s ⊙ (1 - tanh²(logvar))   (s = exp(tanh(logvar)))
    dlv[j] = ds * s[j] * (1.0f - th[j] * th[j]);
  }
}

/*
 * Σ v in double, in four interleaved partial sums added in a fixed order:
 * the same value at every call, and a quarter of the chain of dependent
 * additions of a single running sum.
 */
static double knife_sum(const float *v, size_t n) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (size_t l = 0; l < 4; l++)
      acc[l] += (double)v[i + l];
  for (size_t l = 0; i < n; i++, l++)
    acc[l] += (double)v[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

double lsmi_knife_loss_backward(const lsmi_knife_t *k, lsmi_knife_t *grad,
                                float *scratch, const float *x, size_t ldx,
                                int B) {
  assert(B > 0 && ldx >= (size_t)k->d);
  assert(grad->d == k->d && grad->K == k->K);
  int d = k->d, K = k->K;
  size_t BB = (size_t)B;
  knife_scratch_t w;
  knife_scratch_bind(&w, scratch, d, K, B);
  knife_prepare(k, &w);
  knife_forward(k, &w, x, ldx, B, 1);

  double norm = knife_log_norm(d);
  double loss = 0.0;
  for (int n = 0; n < B; n++)
    loss -= (double)w.lse[n] + norm;
  loss /= (double)B;

  // g (K, B) = dloss/dc = -(1/B) softmax_k(c_n) = -(1/B) e_nk / Σ_k e_nk,
  // written over e.
  float invB = 1.0f / (float)B;
  for (int c = 0; c < K; c++) {
    float *gc = w.C + (size_t)c * BB;
    for (size_t n = 0; n < BB; n++)
      gc[n] = -invB * (gc[n] / w.sum[n]);
  }

  // G_c = Σ_n g_nc is dloss/dlogdet_c and dloss/dlog_softmax(weigh)_c.
  // Σ_c G_c is -1 in exact arithmetic; it is summed from the same g rather
  // than assumed, so that dweigh sums to zero up to rounding as it should.
  double Gsum = 0.0;
  for (int c = 0; c < K; c++)
    Gsum += knife_sum(w.C + (size_t)c * BB, BB);

  for (int c = 0; c < K; c++) {
    double G = knife_sum(w.C + (size_t)c * BB, BB);
    // dweigh_c = G_c - softmax(weigh)_c Σ_m G_m   (d log_softmax / d weigh)
    grad->weigh[c] = (float)(G - exp((double)w.lsw[c]) * Gsum);
    knife_backward_component(k, grad, &w, x, ldx, B, c, G);
  }
  return loss;
}

/* Adam ranges are merged across a gap of at most this many skipped floats
 * (the diagonal and upper part of a row of tri): below it one more call
 * costs more than stepping the skipped floats. */
#define KNIFE_ADAM_GAP 32

/*
 * Adam over means and logvar, the strictly lower triangle of tri, and weigh.
 * Row i of tri_c is [0, i); the diagonal and upper part of row i - 1, the
 * d - i + 1 floats between, are stepped along with it when there are at most
 * KNIFE_ADAM_GAP of them (the rows near the bottom; all rows at small d),
 * and each range is rounded up to whole vectors of 16 within its last row,
 * so the update runs without scalar remainders (about 20% of the
 * optimizer's time at d=128 before).
 * That leaves them bit for bit as they are: their gradient is exactly 0 at
 * every step (loss_backward writes 0 there, whatever the rest holds), so
 * their moments, zeroed by lsmi_adam_init, stay exactly 0, and Adam moves
 * a parameter with m = 0 by step_size · 0 / (0 + eps) = 0.
 */
void lsmi_knife_adam_update(const lsmi_knife_t *k, const lsmi_knife_t *grad,
                            lsmi_adam_t *a) {
  size_t dd = (size_t)k->d, KK = (size_t)k->K;
  float *p = k->means;          /* the parameter block starts with means */
  const float *g = grad->means; /* and so does the gradient block */
  size_t tri0 = 2 * KK * dd;    /* means (K, d) | logvar (K, d) | tri ... */
  lsmi_adam_update(a, p, g, 0, tri0);
  for (size_t c = 0; c < KK; c++) {
    size_t row0 = tri0 + c * dd * dd; /* tri_c[0][0] */
    size_t i = 1;
    while (i < dd) {
      /* Rows [i, i1) in one range: from row i's start to row i1-1's end. */
      size_t i1 = i + 1;
      while (i1 < dd && dd - i1 + 1 <= KNIFE_ADAM_GAP)
        i1++;
      size_t off = row0 + i * dd, end = row0 + (i1 - 1) * dd + (i1 - 1);
      /* Whole vectors of 16: the range grows into row i1 - 1's diagonal
       * and upper part (stepped bit for bit in place, as the gaps are), but
       * never past the row, so that no scalar remainder is left. */
      size_t row_end = row0 + (i1 - 1) * dd + dd;
      end = off + ((end - off + 15) & ~(size_t)15);
      end = end < row_end ? end : row_end;
      lsmi_adam_update(a, p, g, off, end - off);
      i = i1;
    }
  }
  lsmi_adam_update(a, p, g, tri0 + KK * dd * dd, KK); /* weigh (K) */
}
