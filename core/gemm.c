/*
 * gemm.c — the small products of gemm.h: a portable implementation, an
 * AVX-512 one, and the choice between them.
 *
 * The portable one walks C one row at a time: the row is cleared (or kept,
 * when accumulating), then gets a(i, k) · B(k, :) added for every k of the
 * row's range, a loop along j that the compiler vectorises for whatever
 * vector width the function clone was built for; the epilogue follows on the
 * same row while it is in cache.
 *
 * The AVX-512 one (gemm_avx512.c) keeps a tile of up to 6 rows by 64
 * columns in 24 vector registers for the whole k loop and stores it once.
 *
 * Where the CPU has no AVX-512, the "blas" one hands the bulk of every
 * product to OpenBLAS, opened when this path is first chosen (lsmi_openblas()
 * in blas.h; its kernels lsmi checked at start-up, see blas.h): full products
 * whole, triangular ones in blocks of 8 rows whose rectangular part goes to
 * cblas_sgemm and whose small diagonal block to the portable loops; the
 * epilogue follows in those loops too.
 */
#include "gemm.h"
#include "gemm_impl.h"
#include "lsmi.h"
#include "simd.h"

#include "blas.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

/* The k range of row i of A under the triangular form tri, within [0, K). */
static void k_range(int tri, int i, int K, int *k0, int *k1) {
  *k0 = 0;
  *k1 = K;
  if (tri == LSMI_GEMM_A_STRICT_LOWER)
    *k1 = i < K ? i : K;
  else if (tri == LSMI_GEMM_A_STRICT_UPPER)
    *k0 = i + 1 < K ? i + 1 : K;
}

/* c[i, j0:j1) += Σ_{k in [k0, k1)} A(i, k) B(k, j0:j1), plain loops. */
LSMI_VECTOR_CLONES
static void add_row_product(const lsmi_gemm_t *g, int i, int k0, int k1, int j0,
                            int j1) {
  float *c = g->c + (size_t)i * g->ldc;
  const float *arow = g->a + (size_t)i * g->rsa;
  for (int k = k0; k < k1; k++) {
    float aik = arow[(size_t)k * g->csa];
    const float *b = g->b + (size_t)k * g->ldb;
    for (int j = j0; j < j1; j++)
      c[j] += aik * b[j];
  }
}

/* bias, relu and mask on c[i, 0:n). */
LSMI_VECTOR_CLONES
static void epilogue_row(const lsmi_gemm_t *g, int i, int n) {
  float *c = g->c + (size_t)i * g->ldc;
  if (g->bias)
    for (int j = 0; j < n; j++)
      c[j] += g->bias[j];
  if (g->relu)
    for (int j = 0; j < n; j++)
      c[j] = c[j] < 0.0f ? 0.0f : c[j];
  if (g->mask) {
    const float *m = g->mask + (size_t)i * g->ldm;
    for (int j = 0; j < n; j++)
      c[j] = m[j] > 0.0f ? c[j] : 0.0f;
  }
}

/* Row i of C, its first n columns, whole. */
static void gemm_row(const lsmi_gemm_t *g, int i, int n) {
  if (!g->accumulate)
    memset(g->c + (size_t)i * g->ldc, 0, (size_t)n * sizeof(float));
  int k0, k1;
  k_range(g->tri, i, g->K, &k0, &k1);
  add_row_product(g, i, k0, k1, 0, n);
  epilogue_row(g, i, n);
}

/* ------------------------------------------------------------------------ */
/* Through the BLAS                                                         */
/* ------------------------------------------------------------------------ */

/* Rows per block of the triangular forms. The loops do about a block's
 * height over the matrix's of the work, and narrower blocks mean more,
 * smaller BLAS calls; 8 rows ran the KNIFE products at d=128 several times
 * faster than 64 (`make bench-gemm`; the figures are in
 * doc/performance.md). */
#define TRI_BLOCK 8

/* C[i0:i0+m, j0:j0+n) += A[i0:, k0:k0+k) B[k0:k0+k, j0:j0+n) by sgemm. */
static void blas_block(const lsmi_gemm_t *g, int i0, int m, int j0, int n,
                       int k0, int k) {
  if (m <= 0 || n <= 0 || k <= 0)
    return;
  const float *a = g->a + (size_t)i0 * g->rsa + (size_t)k0 * g->csa;
  int row_major = g->csa == 1;
  /* loaded: the blas implementation is chosen only if it loads */
  lsmi_openblas()->sgemm(CblasRowMajor, row_major ? CblasNoTrans : CblasTrans,
                         CblasNoTrans, m, n, k, 1.0f, a,
                         (int)(row_major ? g->rsa : g->csa),
                         g->b + (size_t)k0 * g->ldb + j0, (int)g->ldb, 1.0f,
                         g->c + (size_t)i0 * g->ldc + j0, (int)g->ldc);
}

/* The columns of row i of C that a product writes: all N, or with a
 * strictly lower C those j < i + diag. */
static int c_cols(const lsmi_gemm_t *g, int i) {
  if (g->tri != LSMI_GEMM_C_STRICT_LOWER)
    return g->N;
  return i + g->diag < g->N ? i + g->diag : g->N;
}

void lsmi_gemm_blas(const lsmi_gemm_t *g) {
  const int M = g->M, N = g->N, K = g->K;
  /* The BLAS wants one unit stride in A and leading dimensions that fit an
   * int and cover the rows; anything else takes the portable loops. */
  size_t ld = g->csa == 1 ? g->rsa : g->csa;
  size_t need = g->csa == 1 ? (size_t)K : (size_t)M;
  if ((g->csa != 1 && g->rsa != 1) || ld < (need ? need : 1) ||
      ld > INT32_MAX || g->ldb > INT32_MAX || g->ldc > INT32_MAX ||
      g->ldb < (size_t)N || g->ldc < (size_t)N) {
    lsmi_gemm_generic(g);
    return;
  }
  if (!g->accumulate)
    for (int i = 0; i < M; i++)
      memset(g->c + (size_t)i * g->ldc, 0,
             (size_t)c_cols(g, i) * sizeof(float));
  switch (g->tri) {
  case LSMI_GEMM_FULL:
    blas_block(g, 0, M, 0, N, 0, K);
    break;
  case LSMI_GEMM_A_STRICT_LOWER: /* row i: k < i */
    for (int i0 = 0; i0 < M; i0 += TRI_BLOCK) {
      int i1 = i0 + TRI_BLOCK < M ? i0 + TRI_BLOCK : M;
      blas_block(g, i0, i1 - i0, 0, N, 0, i0 < K ? i0 : K);
      for (int i = i0 + 1; i < i1; i++)
        add_row_product(g, i, i0 < K ? i0 : K, i < K ? i : K, 0, N);
    }
    break;
  case LSMI_GEMM_A_STRICT_UPPER: /* row i: k > i */
    for (int i0 = 0; i0 < M; i0 += TRI_BLOCK) {
      int i1 = i0 + TRI_BLOCK < M ? i0 + TRI_BLOCK : M;
      for (int i = i0; i < i1; i++)
        add_row_product(g, i, i + 1 < K ? i + 1 : K, i1 < K ? i1 : K, 0, N);
      blas_block(g, i0, i1 - i0, 0, N, i1, K - i1);
    }
    break;
  default: /* LSMI_GEMM_C_STRICT_LOWER: row i, j < i + diag */
    for (int i0 = 0; i0 < M; i0 += TRI_BLOCK) {
      int i1 = i0 + TRI_BLOCK < M ? i0 + TRI_BLOCK : M;
      blas_block(g, i0, i1 - i0, 0, c_cols(g, i0), 0, K);
      for (int i = i0 + 1; i < i1; i++)
        add_row_product(g, i, 0, K, c_cols(g, i0), c_cols(g, i));
    }
    return; /* no epilogue with a triangular C */
  }
  if (g->bias || g->relu || g->mask)
    for (int i = 0; i < M; i++)
      epilogue_row(g, i, N);
}

/* ------------------------------------------------------------------------ */
/* Plain loops                                                              */
/* ------------------------------------------------------------------------ */

void lsmi_gemm_generic(const lsmi_gemm_t *g) {
  for (int i = 0; i < g->M; i++)
    gemm_row(g, i, c_cols(g, i));
}

/* In 8×8 blocks, so that both the reads and the writes of a block stay in
 * a few cache lines. */
void lsmi_transpose_generic(float *dst, size_t ldd, const float *src,
                            size_t lds, int R, int C) {
  enum { T = 8 };
  for (int i0 = 0; i0 < R; i0 += T)
    for (int j0 = 0; j0 < C; j0 += T) {
      int i1 = i0 + T < R ? i0 + T : R, j1 = j0 + T < C ? j0 + T : C;
      for (int j = j0; j < j1; j++)
        for (int i = i0; i < i1; i++)
          dst[(size_t)j * ldd + (size_t)i] = src[(size_t)i * lds + (size_t)j];
    }
}

/* ------------------------------------------------------------------------ */
/* Choice of implementation                                                 */
/* ------------------------------------------------------------------------ */

typedef struct gemm_impl {
  const char *name;
  void (*run)(const lsmi_gemm_t *g);
  void (*transpose)(float *dst, size_t ldd, const float *src, size_t lds, int R,
                    int C);
  int (*supported)(void);
} gemm_impl_t;

static int always(void) { return 1; }

/* The BLAS path runs where OpenBLAS loads (blas.h): asking opens it. */
static int blas_loads(void) { return lsmi_openblas() != NULL; }

static const gemm_impl_t impls[] = {
#ifdef LSMI_GEMM_HAVE_AVX512
    {"avx512", lsmi_gemm_avx512, lsmi_transpose_avx512,
     lsmi_gemm_avx512_supported},
#endif
    {"blas", lsmi_gemm_blas, lsmi_transpose_generic, blas_loads},
    {"generic", lsmi_gemm_generic, lsmi_transpose_generic, always},
};

/* The implementation in use, NULL until the first call. Threads that race
 * on the first call all pick the same entry, so relaxed atomics suffice; they
 * only keep the race defined. */
static const gemm_impl_t *chosen;

static const gemm_impl_t *pick(void) {
  const gemm_impl_t *c = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
  if (c)
    return c;
  for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
    if (impls[i].supported()) {
      c = &impls[i];
      break;
    }
  __atomic_store_n(&chosen, c, __ATOMIC_RELAXED);
  return c;
}

int lsmi_gemm_select(const char *name) {
  for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
    if (strcmp(impls[i].name, name) == 0 && impls[i].supported()) {
      __atomic_store_n(&chosen, &impls[i], __ATOMIC_RELAXED);
      return 0;
    }
  return -1;
}

const char *lsmi_gemm_name(void) { return pick()->name; }

const char *lsmi_kernels_name(void) { return lsmi_gemm_name(); }

int lsmi_kernels_select(const char *name) {
  return lsmi_gemm_select(name) == 0 ? LSMI_OK : LSMI_ERR_INVALID;
}

void lsmi_transpose(float *dst, size_t ldd, const float *src, size_t lds, int R,
                    int C) {
  if (R > 0 && C > 0)
    pick()->transpose(dst, ldd, src, lds, R, C);
}

/* The live columns (gemm.h) with plain loops: the bits of each column ORed
 * down the rows. */
static int live_generic(const float *p, size_t ld, int rows, int cols,
                        int *list) {
  int n = 0;
  for (int j = 0; j < cols; j++) {
    uint32_t bits = 0;
    for (int i = 0; i < rows && bits == 0; i++) {
      uint32_t u;
      memcpy(&u, p + (size_t)i * ld + (size_t)j, sizeof u);
      bits |= u;
    }
    if (bits)
      list[n++] = j;
  }
  return n;
}

int lsmi_gemm_live(const float *p, size_t ld, int rows, int cols, int *list) {
#ifdef LSMI_GEMM_HAVE_AVX512
  if (pick()->run == lsmi_gemm_avx512)
    return lsmi_gemm_live_avx512(p, ld, rows, cols, list);
#endif
  return live_generic(p, ld, rows, cols, list);
}

void lsmi_gemm(const lsmi_gemm_t *g) {
  assert(g->M >= 0 && g->N >= 0 && g->K >= 0);
  assert(g->tri != LSMI_GEMM_C_STRICT_LOWER ||
         (!g->bias && !g->relu && !g->mask));
  assert(g->diag == 0 || (g->tri == LSMI_GEMM_C_STRICT_LOWER && g->diag > 0));
  if (g->M == 0 || g->N == 0)
    return;
  pick()->run(g);
}
