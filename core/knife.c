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
 * place right and puts u in the first column (see knife_backward_product).
 *
 * Small d. At d <= KNIFE_SMALL_D (8) lsmi_gemm is not called: there each
 * call costs more in dispatch and tile set-up than its few hundred flops.
 * The products are written out instead, for a d that is a compile-time
 * constant (one inlined copy per d, knife_forward_small and
 * knife_backward_small): the forward keeps 16 rows of a_k and z_k in
 * vector registers, z_i = a_i + Σ_{j<i} L_ij a_j, and sums ‖z‖² there; the
 * backward takes u and P as d (d + 3) / 2 dot products over the batch, 16
 * rows at a time in vector accumulators. The two paths sum in different
 * orders, so they agree to float rounding, not to the bit; each gives the
 * same bits at every call.
 *
 * The training step (lsmi_knife_train_step). At d of a few hundred the
 * factors no longer fit in the caches (2.4 MB each at d = 768), and a step
 * done as the backward above followed by Adam streams them, their
 * gradient and their moments through memory four times over: the
 * backward writes dL (and zeros above the diagonal), Adam reads it back
 * with the factor and both moments and writes three of them. From d =
 * KNIFE_FUSED_D on, the step instead takes the backward product a block
 * of rows at a time (lsmi_gemm with its cut moved by diag) and consumes
 * each row at once, while it is in cache: its terms of r and v, then
 * Adam on that row of the factor with P_i as its gradient. dL is never
 * stored, and the factor and its moments are each read and written once
 * (the forward reads the factor once more). The moments of the factors
 * are kept in packed rows (knife.h), one forward stream each. The sums
 * are the same sums in the same order, and Adam the same per-element
 * arithmetic: the step gives the bits of the two-call one.
 *
 * Nothing is allocated: every buffer is a view into the caller's scratch.
 *
 * Numerics follow the float32 PyTorch reference: everything up to and
 * including the logsumexp (with max-subtraction) is float, the result is
 * widened to double before the constant -d/2 log 2π is added, and the loss
 * is accumulated in double. The few per-component sums over the batch that
 * feed the weigh and logdet gradients are kept in double because the weigh
 * gradient is a difference of nearly equal terms. The exponentials,
 * logarithms and tanh are lsmi's own (lsmi_vm_expf and friends, vmath.h),
 * written so that the loops calling them vectorise; they are computed in
 * double and rounded once, which makes them faithful to within an ulp of
 * libm's, and they keep libm's infinities and NaNs (a diverged fit still
 * shows as NaN).
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

/* Up to this d the products are written out (knife_forward_small,
 * knife_backward_small) instead of going through lsmi_gemm. */
#define KNIFE_SMALL_D 8

/* From this d on, lsmi_knife_train_step fuses the backward with the Adam
 * step (knife_step_component). Below it the parameters, gradient and
 * moments (4 K d² floats, 1.3 MB at d = 128) stay in the caches between
 * the passes, and the three calls measured up to 20% faster at d <= 64
 * (fewer, longer Adam ranges); at 128 the two are even, beyond it the
 * fused step pulls ahead (bench/knife_step.c). */
#define KNIFE_FUSED_D 128

/* Floats of the block of the backward product that the fused step fills
 * at a time (knife_step_component): (R, ldw) with R = KNIFE_WB / ldw rows,
 * at least KNIFE_ROWS and at most d, 64 KiB, which stays in L2 while its
 * rows are consumed. Fewer, larger blocks mean fewer calls of lsmi_gemm;
 * at d = 128 nearly the whole product is one block. */
#define KNIFE_WB 16384
#define KNIFE_ROWS 16

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
  float *A;      // (d, B) a_k^T (forward) or (B, ldw) [1 | a_k] (backward)
  float *W;      // (d + 2, ldw) the backward product
  size_t ldw;    // d + 1 rounded up to 16: the row stride of A' and W
  float *r;      // (d) Σ_{i>j} L_ij P_ij
  float *v;      // (d) Σ_{i>j} L_ij u_i
  float *Z;      // (K, d + 2, B) two zero rows, then z_k^T, then dz_k^T
  float *slots;  // (K, slot) each component's own work space (knife_slot)
  size_t slot;   // floats of one slot
  size_t maxB;   // the batch the views were bound for
  int R;         // rows of a block of the fused backward product
} knife_scratch_t;

/* A component's own work space, where the work of the components may run
 * on several threads at once (lsmi_par_run): the fused step and, from
 * KNIFE_FUSED_D on, the forward. */
typedef struct knife_slot {
  float *A;      // (d, B) a_k^T (forward) or (B, ldw) [1 | a_k] (backward)
  float *Wb;     // (R, ldw) a block of rows of the backward product
  float *u, *pd; // (d) u_i = Σ_n dz_ni and P_ii
  float *r, *v;  // (d) the column sums, as w->r and w->v
} knife_slot_t;

/* Rows per block of the fused backward product at d (see KNIFE_WB). */
static int knife_block_rows(size_t dd) {
  size_t R = KNIFE_WB / knife_round(dd + 1);
  R = R < KNIFE_ROWS ? KNIFE_ROWS : R;
  return (int)(R < dd ? R : dd);
}

/* Floats of one slot at d and batch BB. */
static size_t knife_slot_floats(size_t dd, size_t BB) {
  size_t ldw = knife_round(dd + 1);
  return knife_round(ldw * BB) +
         knife_round((size_t)knife_block_rows(dd) * ldw) + 4 * knife_round(dd);
}

static knife_slot_t knife_slot(const knife_scratch_t *w, size_t dd, int c) {
  knife_slot_t z;
  float *p = w->slots + (size_t)c * w->slot;
  z.A = p, p += knife_round(w->ldw * w->maxB);
  z.Wb = p, p += knife_round((size_t)w->R * w->ldw);
  z.u = p, p += knife_round(dd);
  z.pd = p, p += knife_round(dd);
  z.r = p, p += knife_round(dd);
  z.v = p;
  return z;
}

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
  w->ldw = knife_round(dd + 1);
  w->A = p, p += knife_round(w->ldw * BB);
  w->W = p, p += knife_round((dd + 2) * w->ldw);
  w->r = p, p += knife_round(dd);
  w->v = p, p += knife_round(dd);
  w->Z = p, p += knife_round(KK * (dd + 2) * BB);
  w->slots = p;
  w->slot = knife_slot_floats(dd, BB);
  w->maxB = BB;
  w->R = knife_block_rows(dd);
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
 * | C (K B) | x^T (d B) | A (B ldw) | W ((d + 2) ldw) | r, v (d each)
 * | Z (K (d + 2) B) | K slots (knife_slot: A (B ldw), a block of R rows
 * of W (R ldw), u, pd, r, v (d each)), each rounded up to 16 floats, ldw
 * = d + 1 rounded up to 16 (so that the backward product's rows start on
 * cache lines: with rows of d + 1 floats every vector load and store of
 * it straddled two, 10% of its time at d = 512 and 768). logpdf uses one
 * component's slice of Z, or each its own when the components run on
 * several threads; the backward keeps z_k of all K components there (at
 * d <= KNIFE_SMALL_D in K (d, B) slices, and A is not used). The fused
 * step works in the slots, where its components can run side by side.
 */
size_t lsmi_knife_nscratch(int d, int K, int max_batch) {
  size_t dd = (size_t)d, KK = (size_t)K, BB = (size_t)max_batch;
  return 2 * knife_round(KK * dd) + 2 * knife_round(KK) + 3 * knife_round(BB) +
         knife_round(KK * BB) + knife_round(dd * BB) +
         knife_round(knife_round(dd + 1) * BB) +
         knife_round((dd + 2) * knife_round(dd + 1)) + 2 * knife_round(dd) +
         knife_round(KK * (dd + 2) * BB) + KK * knife_slot_floats(dd, BB);
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                  */
/* ------------------------------------------------------------------------ */

/* Floats per pass of knife_prepare, a multiple of 16. */
#define KNIFE_PREP 64

/*
 * Everything that depends on the parameters only: s, tanh(logvar), logdet
 * and log_softmax(weigh). In float, as the reference. The functions run
 * over all K d values, KNIFE_PREP at a time through a copy on the stack
 * padded with zeros to whole vectors of 16: at small d a loop per
 * component, or over the K d values as they are, would be mostly scalar
 * remainder, each element of which costs as much as a vector. tanh and exp
 * run in one loop and log in another: all three in one loop measured 3%
 * slower at d = 128. The logarithms are then summed per component in
 * order.
 */
LSMI_VECTOR_CLONES
static void knife_prepare(const lsmi_knife_t *k, knife_scratch_t *w) {
  int d = k->d, K = k->K;
  size_t Kd = (size_t)K * (size_t)d;
  float lv[KNIFE_PREP], th[KNIFE_PREP], s[KNIFE_PREP], ls[KNIFE_PREP];
  float logdet = 0.0f;
  int comp = 0, j = 0;
  for (size_t i0 = 0; i0 < Kd; i0 += KNIFE_PREP) {
    size_t n = Kd - i0 < KNIFE_PREP ? Kd - i0 : KNIFE_PREP;
    size_t n16 = (n + 15) & ~(size_t)15;
    memcpy(lv, k->logvar + i0, n * sizeof(float));
    memset(lv + n, 0, (n16 - n) * sizeof(float));
    for (size_t v = 0; v < n16; v += 16)
      for (size_t i = v; i < v + 16; i++) {
        th[i] = lsmi_vm_tanhf(lv[i]);
        s[i] = lsmi_vm_expf(th[i]);
      }
    for (size_t v = 0; v < n16; v += 16)
      for (size_t i = v; i < v + 16; i++)
        ls[i] = lsmi_vm_logf(fabsf(s[i]) + 1e-8f); // log(|s| + 1e-8)
    memcpy(w->th + i0, th, n * sizeof(float));
    memcpy(w->s + i0, s, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
      logdet += ls[i];
      if (++j == d) {
        w->logdet[comp++] = logdet;
        logdet = 0.0f;
        j = 0;
      }
    }
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

/* What the pieces of one forward share (knife_forward_component). */
typedef struct knife_fwd_job {
  const lsmi_knife_t *k;
  knife_scratch_t *w;
  size_t BB;
  int keep_z; /* keep z_k^T of every component for the backward */
  int spread; /* the components may run at once: each in its own space */
} knife_fwd_job_t;

/*
 * c_nk of component c into row c of w->C (K, B), from x^T in w->xt,
 * through lsmi_gemm; with keep_z, z_c^T into slice c of w->Z (K, d + 2,
 * B), rows 2.., rows 0 and 1 zeroed (the backward's product needs them
 * so). Without keep_z every component works in slice 0 and in w->A, one
 * after the other, unless spread gives each its own (slice c, and its
 * slot's A). A piece of lsmi_par_run: it writes nothing another
 * component's piece reads.
 */
LSMI_VECTOR_CLONES
static void knife_forward_component(void *arg, int c) {
  const knife_fwd_job_t *job = arg;
  const lsmi_knife_t *k = job->k;
  knife_scratch_t *w = job->w;
  size_t BB = job->BB;
  int d = k->d, B = (int)BB;
  size_t dd = (size_t)d;
  const float *restrict xt = w->xt; // (d, B)
  size_t zc = job->keep_z || job->spread ? (size_t)c : 0;
  float *restrict Zs = w->Z + zc * (dd + 2) * BB;
  float *restrict Z = Zs + 2 * BB;                                 // (d, B)
  float *restrict A = job->spread ? knife_slot(w, dd, c).A : w->A; // (d, B)
  const float *m = k->means + (size_t)c * dd;                      // (d)
  const float *s = w->s + (size_t)c * dd;                          // (d)
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
      q[n] += (z0[n] * z0[n] + z1[n] * z1[n]) + (z2[n] * z2[n] + z3[n] * z3[n]);
  }
  for (; j < dd; j++)
    for (size_t n = 0; n < BB; n++)
      q[n] += Z[j * BB + n] * Z[j * BB + n];
  float base = w->logdet[c] + w->lsw[c];
  for (size_t n = 0; n < BB; n++)
    q[n] = -0.5f * q[n] + base;
}

/* Unrolls a loop over the d <= KNIFE_SMALL_D features: left to itself GCC
 * judges some of them too big to unroll, and then keeps the vectors of a
 * and z on the stack. */
#if defined(__GNUC__) && !defined(__clang__)
#define KNIFE_UNROLL _Pragma("GCC unroll 8")
#else
#define KNIFE_UNROLL
#endif

/*
 * 16 rows of knife_forward_small: x^T rows at xs (stride xst); c to qs,
 * and z^T rows to zs (stride zst) unless zs is NULL.
 */
static inline __attribute__((always_inline)) void
knife_forward_block(const float *L, const float *m, const float *s, float base,
                    const float *xs, size_t xst, float *zs, size_t zst,
                    float *qs, const int D) {
  knife_v16 a[KNIFE_SMALL_D], sq = {0};
  KNIFE_UNROLL
  for (int j = 0; j < D; j++) {
    memcpy(&a[j], xs + (size_t)j * xst, sizeof a[j]);
    a[j] = (a[j] - m[j]) * s[j];
  }
  KNIFE_UNROLL
  for (int i = 0; i < D; i++) {
    knife_v16 z = a[i];
    KNIFE_UNROLL
    for (int j = 0; j < i; j++)
      z += L[i * D + j] * a[j];
    sq += z * z;
    if (zs)
      memcpy(zs + (size_t)i * zst, &z, sizeof z);
  }
  sq = -0.5f * sq + base;
  memcpy(qs, &sq, sizeof sq);
}

/*
 * The same at d = D <= KNIFE_SMALL_D, with D a constant (each call site in
 * knife_forward_small_any passes a literal, and the function is inlined
 * there): the loops over the d features unroll, and 16 rows of a and z at
 * a time stay in registers, the batch the vector dimension. z = a + L a is
 * written out as z_i = a_i + Σ_{j<i} L_ij a_j, which at this size costs less
 * than one call of lsmi_gemm. With keep_z, z_k^T goes to w->Z (K, d, B), one
 * compact slice per component (the backward at small d needs no zero rows).
 * The rows past the last 16 go through zero-padded copies.
 */
static inline __attribute__((always_inline)) void
knife_forward_small(const lsmi_knife_t *k, knife_scratch_t *w, size_t BB,
                    int keep_z, const int D) {
  const size_t dd = (size_t)D;
  const float *xt = w->xt; // (d, B)
  for (int c = 0; c < k->K; c++) {
    const float *L = k->tri + (size_t)c * dd * dd; // (d, d)
    const float *m = k->means + (size_t)c * dd;    // (d)
    const float *s = w->s + (size_t)c * dd;        // (d)
    float *q = w->C + (size_t)c * BB;              // (B)
    float *Z = w->Z + (size_t)c * dd * BB;         // (d, B)
    float base = w->logdet[c] + w->lsw[c];
    size_t n0 = 0;
    for (; n0 + KNIFE_COLS <= BB; n0 += KNIFE_COLS)
      knife_forward_block(L, m, s, base, xt + n0, BB, keep_z ? Z + n0 : NULL,
                          BB, q + n0, D);
    if (n0 < BB) {
      size_t nn = BB - n0;
      float tx[KNIFE_SMALL_D * KNIFE_COLS] = {0}; // (d, 16)
      float tz[KNIFE_SMALL_D * KNIFE_COLS], tq[KNIFE_COLS];
      for (size_t j = 0; j < dd; j++)
        memcpy(tx + j * KNIFE_COLS, xt + j * BB + n0, nn * sizeof(float));
      knife_forward_block(L, m, s, base, tx, KNIFE_COLS, tz, KNIFE_COLS, tq, D);
      memcpy(q + n0, tq, nn * sizeof(float));
      for (size_t i = 0; keep_z && i < dd; i++)
        memcpy(Z + i * BB + n0, tz + i * KNIFE_COLS, nn * sizeof(float));
    }
  }
}

/* knife_forward_small for the d of k (<= KNIFE_SMALL_D). */
LSMI_VECTOR_CLONES
static void knife_forward_small_any(const lsmi_knife_t *k, knife_scratch_t *w,
                                    size_t BB, int keep_z) {
  switch (k->d) {
  case 1:
    knife_forward_small(k, w, BB, keep_z, 1);
    break;
  case 2:
    knife_forward_small(k, w, BB, keep_z, 2);
    break;
  case 3:
    knife_forward_small(k, w, BB, keep_z, 3);
    break;
  case 4:
    knife_forward_small(k, w, BB, keep_z, 4);
    break;
  case 5:
    knife_forward_small(k, w, BB, keep_z, 5);
    break;
  case 6:
    knife_forward_small(k, w, BB, keep_z, 6);
    break;
  case 7:
    knife_forward_small(k, w, BB, keep_z, 7);
    break;
  case 8:
    knife_forward_small(k, w, BB, keep_z, 8);
    break;
  }
}

/*
 * Forward of B rows of x into w->C (K, B) and w->lse (B); w->C then holds
 * e_nk = exp(c_nk - cmax_n) and w->sum their sums over k, which the
 * backward turns into the softmax weights without another exponential.
 * With keep_z, z_k^T of every component is kept in w->Z for the backward
 * (see knife_forward_component and knife_forward_small for the layouts).
 * From KNIFE_FUSED_D on the components' products go through par (may be
 * NULL), one piece each.
 */
LSMI_VECTOR_CLONES
static void knife_forward(const lsmi_knife_t *k, knife_scratch_t *w,
                          const float *x, size_t ldx, int B, int keep_z,
                          const lsmi_par_t *par) {
  int d = k->d, K = k->K;
  size_t dd = (size_t)d, BB = (size_t)B;
  float *restrict xt = w->xt; // (d, B)
  for (size_t n = 0; n < BB; n++)
    for (size_t j = 0; j < dd; j++)
      xt[j * BB + n] = x[n * ldx + j];

  if (d <= KNIFE_SMALL_D) {
    knife_forward_small_any(k, w, BB, keep_z);
  } else {
    par = d >= KNIFE_FUSED_D ? par : NULL;
    knife_fwd_job_t job = {
        .k = k, .w = w, .BB = BB, .keep_z = keep_z, .spread = par != NULL};
    lsmi_par_run(par, K, knife_forward_component, &job);
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
                       const float *x, size_t ldx, int B,
                       const lsmi_par_t *par) {
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
    knife_forward(k, &w, x + (size_t)n0 * ldx, ldx, b, 0, par);
    for (int n = 0; n < b; n++)
      logp[n0 + n] = (double)w.lse[n] + norm;
  }
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * The right operand of component c's backward product, A' (B, d + 1) =
 * -g_n [1 | a_n], into Ap (B, ldw): a_n = (x_n - means_c) ⊙ s_c straight from
 * the rows of x, and dz_n = -g_n z_n (c = -½‖z‖² + …) folded into the rows of
 * A' rather than scaled into z: dz_ni a_nj = z_ni (-g_n a_nj). g_n =
 * dloss/dc_nc (B) is in w->C.
 */
static inline __attribute__((always_inline)) void
knife_backward_rhs(const lsmi_knife_t *k, const knife_scratch_t *w,
                   float *restrict Ap, const float *x, size_t ldx, int B,
                   int c) {
  size_t dd = (size_t)k->d, BB = (size_t)B, ldw = w->ldw;
  const float *g = w->C + (size_t)c * BB;     // (B)
  const float *m = k->means + (size_t)c * dd; // (d)
  const float *s = w->s + (size_t)c * dd;     // (d)
  for (size_t n = 0; n < BB; n++) {
    const float *xn = x + n * ldx;
    float *an = Ap + n * ldw;
    float gn = -g[n];
    an[0] = gn;
    for (size_t j = 0; j < dd; j++)
      an[1 + j] = gn * ((xn[j] - m[j]) * s[j]);
  }
}

/*
 * Rows [i0, i0 + rows) of component c's backward product, given A' in Ap
 * (knife_backward_rhs) and z_c^T in its slice of w->Z (d + 2, B), into W
 * (rows, d + 1) with row stride ldw: row q holds, for i = i0 + q,
 * W[q][0] = u_i = Σ_n dz_ni and W[q][1 + j] = P_ij = Σ_n dz_ni a_nj for
 * j <= i; the columns past 1 + i are not written. That is
 *   W (rows, d + 1) = Zs[i0 + 2 ..] (rows, B) · A' (B, d + 1)    (ldw)
 * with a strictly lower cut at j' < q + i0 + 2: row i0 + 2 + q of Zs is z^T
 * row i. Every element is one sum over the batch in order, the same bits
 * whether the rows come in one call or in blocks.
 */
static inline __attribute__((always_inline)) void
knife_backward_rows(const lsmi_knife_t *k, const knife_scratch_t *w,
                    const float *Ap, int B, int c, int i0, int rows, float *W) {
  size_t dd = (size_t)k->d, BB = (size_t)B;
  const float *Zs = w->Z + (size_t)c * (dd + 2) * BB; // (d + 2, B)
  lsmi_gemm(&(lsmi_gemm_t){.M = rows,
                           .N = i0 + rows + 1,
                           .K = B,
                           .a = Zs + ((size_t)i0 + 2) * BB,
                           .rsa = BB,
                           .csa = 1,
                           .b = Ap,
                           .ldb = w->ldw,
                           .c = W,
                           .ldc = w->ldw,
                           .tri = LSMI_GEMM_C_STRICT_LOWER,
                           .diag = i0 + 2});
}

/*
 * The sums over the batch that the gradient of component c needs, all
 * rows in one product into w->W (d + 2, ldw): rows 2.. as
 * knife_backward_rows gives them (row i + 2 for feature i). The product is
 * taken from Zs's first row, whose two zero rows put the cut where
 * knife_backward_rows puts it with diag: rows 0 and 1 of W come out 0 and
 * are never read. (Starting at row 2 instead leaves d rows, which at
 * small d split into more, smaller tiles: 7% of a d = 10 step.)
 */
static inline __attribute__((always_inline)) void
knife_backward_product(const lsmi_knife_t *k, knife_scratch_t *w,
                       const float *x, size_t ldx, int B, int c) {
  size_t dd = (size_t)k->d, BB = (size_t)B;
  knife_backward_rhs(k, w, w->A, x, ldx, B, c);
  lsmi_gemm(&(lsmi_gemm_t){.M = k->d + 2,
                           .N = k->d + 1,
                           .K = B,
                           .a = w->Z + (size_t)c * (dd + 2) * BB,
                           .rsa = BB,
                           .csa = 1,
                           .b = w->A,
                           .ldb = w->ldw,
                           .c = w->W,
                           .ldc = w->ldw,
                           .tri = LSMI_GEMM_C_STRICT_LOWER});
}

/* The sum of the 16 lanes of v, in a fixed tree (the same bits whatever
 * registers hold the vector). */
static inline __attribute__((always_inline)) float
knife_hsum(const knife_v16 *v) {
  typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
  typedef float v4 __attribute__((vector_size(4 * sizeof(float))));
  v8 lo, hi;
  memcpy(&lo, v, sizeof lo);
  memcpy(&hi, (const char *)v + sizeof lo, sizeof hi);
  lo += hi;
  v4 a, b;
  memcpy(&a, &lo, sizeof a);
  memcpy(&b, (const char *)&lo + sizeof a, sizeof b);
  a += b;
  return (a[0] + a[2]) + (a[1] + a[3]);
}

/*
 * 16 rows of knife_backward_small into the accumulators u (d) and P
 * (d (d + 1) / 2): g at gs, x^T rows at xs (stride xst), z^T rows at zs
 * (stride zst); with keep, a is zeroed in the lanes that keep does not
 * hold (the rows past the batch, where a = -means s would turn the zero
 * dz into a NaN should means be infinite).
 */
static inline __attribute__((always_inline)) void
knife_backward_block(knife_v16 *u, knife_v16 *P, const float *m, const float *s,
                     const float *gs, const float *xs, size_t xst,
                     const float *zs, size_t zst, const knife_v16i *keep,
                     const int D) {
  knife_v16 gn, a[KNIFE_SMALL_D];
  memcpy(&gn, gs, sizeof gn);
  gn = -gn; // dz_n = -g_n z_n
  KNIFE_UNROLL
  for (int j = 0; j < D; j++) {
    memcpy(&a[j], xs + (size_t)j * xst, sizeof a[j]);
    a[j] = (a[j] - m[j]) * s[j];
    if (keep)
      a[j] = (knife_v16)((knife_v16i)a[j] & *keep);
  }
  KNIFE_UNROLL
  for (int i = 0; i < D; i++) {
    knife_v16 dz;
    memcpy(&dz, zs + (size_t)i * zst, sizeof dz);
    dz *= gn;
    u[i] += dz;
    KNIFE_UNROLL
    for (int j = 0; j <= i; j++)
      P[i * (i + 1) / 2 + j] += dz * a[j];
  }
}

/*
 * knife_backward_product at d = D <= KNIFE_SMALL_D (a constant, as in
 * knife_forward_small), z_c^T in the compact slice (d, B) of w->Z: the
 * d (d + 3) / 2 sums are dot products over the batch, taken 16 rows at a
 * time in vector accumulators, each reduced to a float at the end. a_n is
 * computed again from x^T in w->xt, by the forward's expression.
 */
static inline __attribute__((always_inline)) void
knife_backward_small(const lsmi_knife_t *k, knife_scratch_t *w, size_t BB,
                     int c, const int D) {
  enum { NP = KNIFE_SMALL_D * (KNIFE_SMALL_D + 1) / 2 };
  const size_t dd = (size_t)D, ldw = w->ldw;
  const float *g = w->C + (size_t)c * BB;      // (B)
  const float *Z = w->Z + (size_t)c * dd * BB; // (d, B)
  const float *xt = w->xt;                     // (d, B)
  const float *m = k->means + (size_t)c * dd;  // (d)
  const float *s = w->s + (size_t)c * dd;      // (d)
  knife_v16 u[KNIFE_SMALL_D], P[NP];           // P_ij at i (i + 1) / 2 + j
  KNIFE_UNROLL
  for (int i = 0; i < D; i++)
    u[i] = (knife_v16){0};
  KNIFE_UNROLL
  for (int t = 0; t < D * (D + 1) / 2; t++)
    P[t] = (knife_v16){0};
  size_t n0 = 0;
  for (; n0 + KNIFE_COLS <= BB; n0 += KNIFE_COLS)
    knife_backward_block(u, P, m, s, g + n0, xt + n0, BB, Z + n0, BB, NULL, D);
  if (n0 < BB) {
    size_t nn = BB - n0;
    const knife_v16i lane = {0, 1, 2,  3,  4,  5,  6,  7,
                             8, 9, 10, 11, 12, 13, 14, 15};
    knife_v16i keep = lane < (int32_t)nn;
    float tg[KNIFE_COLS] = {0};                 // (16)
    float tx[KNIFE_SMALL_D * KNIFE_COLS] = {0}; // (d, 16)
    float tz[KNIFE_SMALL_D * KNIFE_COLS] = {0}; // (d, 16)
    memcpy(tg, g + n0, nn * sizeof(float));
    for (size_t j = 0; j < dd; j++) {
      memcpy(tx + j * KNIFE_COLS, xt + j * BB + n0, nn * sizeof(float));
      memcpy(tz + j * KNIFE_COLS, Z + j * BB + n0, nn * sizeof(float));
    }
    knife_backward_block(u, P, m, s, tg, tx, KNIFE_COLS, tz, KNIFE_COLS, &keep,
                         D);
  }
  float *W = w->W; // (d + 2, ldw)
  for (int i = 0; i < D; i++) {
    float *Wi = W + ((size_t)i + 2) * ldw;
    Wi[0] = knife_hsum(&u[i]);
    for (int j = 0; j <= i; j++)
      Wi[1 + j] = knife_hsum(&P[i * (i + 1) / 2 + j]);
  }
}

/* knife_backward_product or, at small d, knife_backward_small. */
LSMI_VECTOR_CLONES
static void knife_backward_sums(const lsmi_knife_t *k, knife_scratch_t *w,
                                const float *x, size_t ldx, int B, int c) {
  size_t BB = (size_t)B;
  switch (k->d <= KNIFE_SMALL_D ? k->d : 0) {
  case 1:
    knife_backward_small(k, w, BB, c, 1);
    break;
  case 2:
    knife_backward_small(k, w, BB, c, 2);
    break;
  case 3:
    knife_backward_small(k, w, BB, c, 3);
    break;
  case 4:
    knife_backward_small(k, w, BB, c, 4);
    break;
  case 5:
    knife_backward_small(k, w, BB, c, 5);
    break;
  case 6:
    knife_backward_small(k, w, BB, c, 6);
    break;
  case 7:
    knife_backward_small(k, w, BB, c, 7);
    break;
  case 8:
    knife_backward_small(k, w, BB, c, 8);
    break;
  default:
    knife_backward_product(k, w, x, ldx, B, c);
    break;
  }
}

/*
 * Row i of component c's factor gradient: dL_i = P_i[0, i) (strictly
 * lower), and its terms of the column sums r_j += L_ij P_ij and
 * v_j += L_ij u_i (j < i), KNIFE_COLS columns at a time, rows taken in
 * order by the callers so that each column sum adds up in row order. With
 * write (a constant at each call) the whole row of dL (d) is written to
 * ti, zero from the diagonal on: the
 * vector that holds the diagonal is masked to its strictly lower lanes
 * (the lanes beyond hold whatever W held: the product does not write
 * there); the columns past the last whole vector (all of them when d < 16)
 * go one at a time. Without (the fused step) nothing is written but r and
 * v, the same bits: a masked lane adds +0, which leaves a sum that started
 * at +0 as it is.
 */
static inline __attribute__((always_inline)) void
knife_rv_row(float *restrict r, float *restrict v, const float *Li,
             const float *Pi, float ui, size_t i, size_t dd, float *ti,
             const int write) {
  const knife_v16i lane = {0, 1, 2,  3,  4,  5,  6,  7,
                           8, 9, 10, 11, 12, 13, 14, 15};
  size_t jv = dd - dd % KNIFE_COLS; /* columns in whole vectors */
  knife_v16 p, l, rv, vv;
  size_t j = 0;
  for (; j + KNIFE_COLS <= i; j += KNIFE_COLS) {
    memcpy(&p, Pi + j, sizeof p);
    memcpy(&l, Li + j, sizeof l);
    memcpy(&rv, r + j, sizeof rv);
    memcpy(&vv, v + j, sizeof vv);
    if (write)
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
    if (write)
      memcpy(ti + j, &p, sizeof p);
    rv += (knife_v16)((knife_v16i)(l * p) & on);
    vv += (knife_v16)((knife_v16i)(l * ui) & on);
    memcpy(r + j, &rv, sizeof rv);
    memcpy(v + j, &vv, sizeof vv);
    for (j += KNIFE_COLS; write && j < jv; j += KNIFE_COLS)
      memcpy(ti + j, &(knife_v16){0}, sizeof p);
    j = j > jv ? j : jv;
  }
  for (; j < (write ? dd : i); j++) {
    if (j < i) {
      if (write)
        ti[j] = Pi[j];
      r[j] += Li[j] * Pi[j];
      v[j] += Li[j] * ui;
    } else if (write) {
      ti[j] = 0.0f;
    }
  }
}

/*
 * dmeans_c and dlogvar_c from the sums: u_j = Σ_n dz_nj at u[j su],
 * P_jj at pd[j sp], r and v (d each; knife_rv_row, all rows done);
 * G = Σ_n g_n.
 */
static inline __attribute__((always_inline)) void
knife_grad_scales(const lsmi_knife_t *k, lsmi_knife_t *grad,
                  const knife_scratch_t *w, int c, double G, const float *u,
                  size_t su, const float *pd, size_t sp, const float *r,
                  const float *v) {
  size_t dd = (size_t)k->d;
  const float *s = w->s + (size_t)c * dd;     // (d)
  const float *th = w->th + (size_t)c * dd;   // (d)
  float *dm = grad->means + (size_t)c * dd;   // (d)
  float *dlv = grad->logvar + (size_t)c * dd; // (d)
  for (size_t j = 0; j < dd; j++) {
    // Σ_n da_n = (I + L_c)^T u;  dmeans = -Σ_n da ⊙ s   (a = (x - means) ⊙ s)
    dm[j] = -(u[j * su] + v[j]) * s[j];
    // Σ_n da_nj (x_nj - means_j) = (P_jj + r_j) / s_j, and
    // ds = that + G_c / (|s| + 1e-8)   (logdet term; s > 0)
    float ds = (pd[j * sp] + r[j]) / s[j] + (float)(G / ((double)s[j] + 1e-8));
    // dlogvar = ds ⊙ s ⊙ (1 - tanh²(logvar))   (s = exp(tanh(logvar)))
    dlv[j] = ds * s[j] * (1.0f - th[j] * th[j]);
  }
}

/*
 * The gradient of component c from the sums in w->W (knife_backward_sums):
 * dtri_c, dmeans_c and dlogvar_c (dweigh is done by the caller).
 * G = Σ_n g_n. dL_c = strictly_lower(P), zero on and above the diagonal,
 * and the column sums r_j = Σ_{i>j} L_ij P_ij and v_j = Σ_{i>j} L_ij u_i,
 * each summed in row order, in one pass down the rows (knife_rv_row).
 */
LSMI_VECTOR_CLONES
static void knife_backward_component(const lsmi_knife_t *k, lsmi_knife_t *grad,
                                     knife_scratch_t *w, int c, double G) {
  size_t dd = (size_t)k->d, ldw = w->ldw;
  const float *L = k->tri + (size_t)c * dd * dd; // (d, d)
  float *dtri = grad->tri + (size_t)c * dd * dd; // (d, d)
  const float *W = w->W;                         // (d + 2, ldw)
  for (size_t j = 0; j < dd; j++)
    w->r[j] = w->v[j] = 0.0f;
  for (size_t i = 0; i < dd; i++)
    knife_rv_row(w->r, w->v, L + i * dd, W + (i + 2) * ldw + 1,
                 W[(i + 2) * ldw], i, dd, dtri + i * dd, 1);
  knife_grad_scales(k, grad, w, c, G, W + 2 * ldw, ldw, W + 2 * ldw + 1,
                    ldw + 1, w->r, w->v);
}

/*
 * Floats of one component's factor moments in the fused step's packed
 * rows (knife.h, lsmi_knife_train_step): row i of [1, d) takes
 * min(round16(i), d), whole vectors of 16 where the row has room.
 */
static size_t knife_packed_floats(size_t dd) {
  size_t n = 0;
  for (size_t i = 1; i < dd; i++) {
    size_t ni = (i + 15) & ~(size_t)15;
    n += ni < dd ? ni : dd;
  }
  return n;
}

/*
 * The backward of component c fused with the Adam step of its factor, at
 * d >= KNIFE_FUSED_D, in the slot sl (knife_slot): the product's rows come
 * a block at a time (knife_backward_rows) into sl.Wb, and each row i is
 * consumed at once, while it is in cache: its terms of r and v
 * (knife_rv_row, from L_i before the step), then Adam on L_i with P_i[0,
 * i) as the gradient (lsmi_adam_run, inlined). dL_c is never stored. u_i
 * and P_ii are kept (sl.u, sl.pd) for dmeans_c and dlogvar_c, which
 * follow.
 *
 * Adam runs on L_i[0, n), n = min(round16(i), d): the lanes from the
 * diagonal on get a gradient of exactly 0, which moves neither them nor
 * their moments (see lsmi_knife_adam_update), and whole vectors spare the
 * update its scalar remainder, which would cost as much as the rest of a
 * short row. The moments of those n floats are the next n of the
 * component's packed rows: read and written in one forward stream, which
 * the hardware prefetcher follows, where rows of the d × d layout are
 * short runs a row apart that it must find again at every row (on the
 * lower triangles of five 768 × 768 factors, an update with the moments
 * so took 1.8 times as long as with them packed, in a stand-alone test).
 * The factor itself keeps its public d × d layout; its next row is asked
 * for ahead (__builtin_prefetch), for the same reason (6% of the step at
 * d = 768).
 *
 * The arithmetic is knife_backward_product, knife_backward_component and
 * lsmi_knife_adam_update's, in the same order: the same bits.
 */
static inline __attribute__((always_inline)) void
knife_step_component(const lsmi_knife_t *k, lsmi_knife_t *grad,
                     const knife_scratch_t *w, knife_slot_t sl,
                     const lsmi_adam_t *a, const float *x, size_t ldx, int B,
                     int c, double G) {
  int d = k->d, R = w->R;
  size_t dd = (size_t)d, ldw = w->ldw;
  float *L = k->tri + (size_t)c * dd * dd; // (d, d)
  /* The moments of row 1 of L_c: the packed rows of the components before
   * c come first, where the block keeps the factors. */
  size_t mo = (size_t)(k->tri - k->means) + (size_t)c * knife_packed_floats(dd);
  float *Wb = sl.Wb;                            // (R, ldw)
  float *u = sl.u, *pd = sl.pd;                 // (d)
  float *restrict r = sl.r, *restrict v = sl.v; // (d)
  const lsmi_adam_consts_t ak = lsmi_adam_consts(a);
  knife_backward_rhs(k, w, sl.A, x, ldx, B, c);
  for (size_t j = 0; j < dd; j++)
    r[j] = v[j] = 0.0f;
  for (int i0 = 0; i0 < d; i0 += R) {
    int rows = d - i0 < R ? d - i0 : R;
    knife_backward_rows(k, w, sl.A, B, c, i0, rows, Wb);
    for (int q = 0; q < rows; q++) {
      size_t i = (size_t)(i0 + q);
      float *Li = L + i * dd, *Pi = Wb + (size_t)q * ldw + 1;
      u[i] = Pi[-1];
      pd[i] = Pi[i];
      for (size_t j = 0; i + 1 < dd && j <= i + 1; j += 16)
        __builtin_prefetch(Li + dd + j, 1, 3); /* row i + 1, [0, i + 1] */
      knife_rv_row(r, v, Li, Pi, u[i], i, dd, NULL, 0);
      if (i == 0)
        continue;
      size_t n = (i + 15) & ~(size_t)15;
      n = n < dd ? n : dd;
      for (size_t j = i; j < n; j++)
        Pi[j] = 0.0f;
      lsmi_adam_run(&ak, Li, a->m + mo, a->v + mo, Pi, n);
      mo += n;
    }
  }
  knife_grad_scales(k, grad, w, c, G, u, 1, pd, 1, r, v);
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

/* G_c = Σ_n g_nc of component c, from g in w->C. */
static double knife_G(const knife_scratch_t *w, int c, int B) {
  return knife_sum(w->C + (size_t)c * (size_t)B, (size_t)B);
}

/*
 * The forward of a training step and what the backward needs of it: the
 * loss (returned), g (K, B) = dloss/dc in w->C, and Σ_c G_c into *Gsum
 * (G_c = Σ_n g_nc, knife_G).
 */
static double knife_step_forward(const lsmi_knife_t *k, knife_scratch_t *w,
                                 double *Gsum, const float *x, size_t ldx,
                                 int B, const lsmi_par_t *par) {
  int d = k->d, K = k->K;
  size_t BB = (size_t)B;
  knife_prepare(k, w);
  knife_forward(k, w, x, ldx, B, 1, par);

  double norm = knife_log_norm(d);
  double loss = 0.0;
  for (int n = 0; n < B; n++)
    loss -= (double)w->lse[n] + norm;
  loss /= (double)B;

  // g (K, B) = dloss/dc = -(1/B) softmax_k(c_n) = -(1/B) e_nk / Σ_k e_nk,
  // written over e.
  float invB = 1.0f / (float)B;
  for (int c = 0; c < K; c++) {
    float *gc = w->C + (size_t)c * BB;
    for (size_t n = 0; n < BB; n++)
      gc[n] = -invB * (gc[n] / w->sum[n]);
  }

  // G_c = Σ_n g_nc is dloss/dlogdet_c and dloss/dlog_softmax(weigh)_c.
  // Σ_c G_c is -1 in exact arithmetic; it is summed from the same g rather
  // than assumed, so that dweigh sums to zero up to rounding as it should.
  *Gsum = 0.0;
  for (int c = 0; c < K; c++)
    *Gsum += knife_G(w, c, B);
  return loss;
}

/* dweigh_c = G_c - softmax(weigh)_c Σ_m G_m   (d log_softmax / d weigh) */
static void knife_dweigh(lsmi_knife_t *grad, const knife_scratch_t *w, int c,
                         double G, double Gsum) {
  grad->weigh[c] = (float)(G - exp((double)w->lsw[c]) * Gsum);
}

/* What the pieces of one fused step share (knife_step_piece). */
typedef struct knife_step_job {
  const lsmi_knife_t *k;
  lsmi_knife_t *grad;
  const knife_scratch_t *w;
  lsmi_adam_t *a; /* read only: the step was begun (lsmi_adam_begin) */
  const float *x;
  size_t ldx;
  int B;
  double Gsum;
  int spread; /* the components may run at once: each in its own slot */
} knife_step_job_t;

/*
 * Component c of a fused step, after its forward: dweigh_c, the backward
 * fused with the Adam step of the factor (knife_step_component), then the
 * Adam step of means_c and logvar_c. Adam is elementwise, so stepping them
 * here, a component at a time, gives the bits of one update over all of
 * them after the last component; component c reads no parameter of
 * another. A piece of lsmi_par_run: it writes only component c's
 * parameters, moments and gradient, and its own slot.
 */
LSMI_VECTOR_CLONES
static void knife_step_piece(void *arg, int c) {
  const knife_step_job_t *job = arg;
  const lsmi_knife_t *k = job->k;
  const knife_scratch_t *w = job->w;
  size_t dd = (size_t)k->d, Kd = (size_t)k->K * dd;
  double G = knife_G(w, c, job->B);
  knife_dweigh(job->grad, w, c, G, job->Gsum);
  knife_slot_t sl = knife_slot(w, dd, job->spread ? c : 0);
  knife_step_component(k, job->grad, w, sl, job->a, job->x, job->ldx, job->B, c,
                       G);
  lsmi_adam_update(job->a, k->means, job->grad->means, (size_t)c * dd, dd);
  lsmi_adam_update(job->a, k->means, job->grad->means, Kd + (size_t)c * dd, dd);
}

double lsmi_knife_loss_backward(const lsmi_knife_t *k, lsmi_knife_t *grad,
                                float *scratch, const float *x, size_t ldx,
                                int B) {
  assert(B > 0 && ldx >= (size_t)k->d);
  assert(grad->d == k->d && grad->K == k->K);
  knife_scratch_t w;
  knife_scratch_bind(&w, scratch, k->d, k->K, B);
  double Gsum;
  double loss = knife_step_forward(k, &w, &Gsum, x, ldx, B, NULL);
  for (int c = 0; c < k->K; c++) {
    double G = knife_G(&w, c, B);
    knife_dweigh(grad, &w, c, G, Gsum);
    knife_backward_sums(k, &w, x, ldx, B, c);
    knife_backward_component(k, grad, &w, c, G);
  }
  return loss;
}

double lsmi_knife_train_step(const lsmi_knife_t *k, lsmi_knife_t *grad,
                             lsmi_adam_t *a, double lr, float *scratch,
                             const float *x, size_t ldx, int B,
                             const lsmi_par_t *par) {
  assert(B > 0 && ldx >= (size_t)k->d);
  assert(grad->d == k->d && grad->K == k->K);
  if (k->d < KNIFE_FUSED_D) {
    /* The published recipe's path at d <= 8, unchanged to the bit; and
     * below KNIFE_FUSED_D, where everything is in cache and the three
     * calls cost less than the fused step's many short rows. */
    double loss = lsmi_knife_loss_backward(k, grad, scratch, x, ldx, B);
    if (isfinite(loss)) {
      lsmi_adam_begin(a, lr);
      lsmi_knife_adam_update(k, grad, a);
    }
    return loss;
  }
  knife_scratch_t w;
  knife_scratch_bind(&w, scratch, k->d, k->K, B);
  knife_step_job_t job = {.k = k,
                          .grad = grad,
                          .w = &w,
                          .a = a,
                          .x = x,
                          .ldx = ldx,
                          .B = B,
                          .spread = par != NULL};
  double loss = knife_step_forward(k, &w, &job.Gsum, x, ldx, B, par);
  if (!isfinite(loss))
    return loss; /* nothing stepped: the caller stops */
  lsmi_adam_begin(a, lr);
  /* The components (each also steps its means and logvar), then weigh. */
  lsmi_par_run(par, k->K, knife_step_piece, &job);
  lsmi_adam_update(a, k->means, grad->means, (size_t)(k->weigh - k->means),
                   (size_t)k->K);
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
  /* The widest gap is row 0 of a factor with the last diagonal before it,
   * d + 1 floats: when that is within KNIFE_ADAM_GAP the whole block is one
   * range (one call in place of K + 2, most of a d = 2 step's update). */
  if (dd + 1 <= KNIFE_ADAM_GAP) {
    lsmi_adam_update(a, p, g, 0, lsmi_knife_nparams(k->d, k->K));
    return;
  }
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
