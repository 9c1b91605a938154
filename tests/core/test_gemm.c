/*
 * test_gemm.c — the small products (core/gemm.c, core/gemm_avx512.c): every
 * implementation the CPU can run, against a plain double-precision loop,
 * over shapes that cross every tile edge (rows 1..32 across the tile heights,
 * columns 1..130 across vector and block edges, K of 0 to 70), with
 * row-major and transposed A, every epilogue and every triangular form.
 * Entries that the contract says are never written must keep their
 * sentinel; entries it says are never read are filled with NaN, so reading
 * one would show.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "gemm_impl.h"
#include "rng.h"

#include "check.h"

/* A(i, k) as the contract reads it, or 0 outside the triangular form. */
static double a_at(const lsmi_gemm_t *g, int i, int k) {
  if (g->tri == LSMI_GEMM_A_STRICT_LOWER && k >= i)
    return 0.0;
  if (g->tri == LSMI_GEMM_A_STRICT_UPPER && k <= i)
    return 0.0;
  return (double)g->a[(size_t)i * g->rsa + (size_t)k * g->csa];
}

static int c_written(const lsmi_gemm_t *g, int i, int j) {
  return g->tri != LSMI_GEMM_C_STRICT_LOWER || j < i + g->diag;
}

typedef struct shape {
  int M, N, K;
  int transA; /* A given as the transpose of a row-major (K, M) matrix */
  int accumulate, bias, relu, mask, tri;
  int diag; /* C_STRICT_LOWER: the cut's shift */
} shape_t;

/* Runs one shape on the current implementation and checks every entry of
 * the output buffer, written or not. */
static void check_shape(const shape_t *s, lsmi_rng_t *rng) {
  int M = s->M, N = s->N, K = s->K;
  size_t lda = (size_t)(s->transA ? M : K) + 3; /* padded strides */
  size_t ldb = (size_t)N + 5, ldc = (size_t)N + 2, ldm = (size_t)N + 1;
  size_t na = (size_t)(s->transA ? K : M) * lda + 1;
  size_t nb = (size_t)K * ldb + 1, nc = (size_t)M * ldc + 1;
  float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float));
  float *c = malloc(nc * sizeof(float)), *c0 = malloc(nc * sizeof(float));
  float *bias = malloc(((size_t)N + 1) * sizeof(float));
  float *mask = malloc(((size_t)M * ldm + 1) * sizeof(float));
  assert_true(a && b && c && c0 && bias && mask);
  /* Padding and every entry outside the triangular form are NaN: the
   * result would be NaN if any were read. */
  for (size_t i = 0; i < na; i++)
    a[i] = NAN;
  for (size_t i = 0; i < nb; i++)
    b[i] = NAN;
  lsmi_gemm_t g = {
      .M = M,
      .N = N,
      .K = K,
      .a = a,
      .rsa = s->transA ? 1 : lda,
      .csa = s->transA ? lda : 1,
      .b = b,
      .ldb = ldb,
      .c = c,
      .ldc = ldc,
      .accumulate = s->accumulate,
      .bias = s->bias ? bias : NULL,
      .relu = s->relu,
      .mask = s->mask ? mask : NULL,
      .ldm = ldm,
      .tri = s->tri,
      .diag = s->diag,
  };
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++) {
      int zero = (s->tri == LSMI_GEMM_A_STRICT_LOWER && k >= i) ||
                 (s->tri == LSMI_GEMM_A_STRICT_UPPER && k <= i);
      a[(size_t)i * g.rsa + (size_t)k * g.csa] =
          zero ? NAN : (float)lsmi_rng_normal(rng);
    }
  for (int k = 0; k < K; k++)
    for (int j = 0; j < N; j++)
      b[(size_t)k * ldb + (size_t)j] = (float)lsmi_rng_normal(rng);
  for (int j = 0; j < N; j++)
    bias[j] = (float)lsmi_rng_normal(rng);
  for (size_t i = 0; i < (size_t)M * ldm; i++)
    mask[i] = lsmi_rng_uniform(rng) < 0.3 ? 0.0f : (float)lsmi_rng_uniform(rng);
  for (size_t i = 0; i < nc; i++)
    c0[i] = (float)lsmi_rng_normal(rng);
  memcpy(c, c0, nc * sizeof(float));

  lsmi_gemm(&g);

  for (int i = 0; i < M; i++)
    for (size_t j = 0; j < ldc; j++) {
      size_t at = (size_t)i * ldc + j;
      if (j >= (size_t)N || !c_written(&g, i, (int)j)) {
        if (memcmp(&c[at], &c0[at], sizeof(float)) != 0)
          fail_msg("%s M=%d N=%d K=%d tri=%d: C(%d,%zu) written (%g, was %g)",
                   lsmi_gemm_name(), M, N, K, s->tri, i, j, (double)c[at],
                   (double)c0[at]);
        continue;
      }
      double want = s->accumulate ? (double)c0[at] : 0.0, mag = fabs(want);
      for (int k = 0; k < K; k++) {
        double t = a_at(&g, i, k) * (double)b[(size_t)k * ldb + j];
        want += t;
        mag += fabs(t);
      }
      if (s->bias) {
        want += (double)bias[j];
        mag += fabs((double)bias[j]);
      }
      if (s->relu && want < 0.0)
        want = 0.0;
      if (s->mask && !(mask[(size_t)i * ldm + j] > 0.0f))
        want = 0.0;
      /* float sums of K + 2 terms: a few ulp of the sum of magnitudes. */
      double tol = 4.0 * (K + 2) * 6e-8 * mag + 1e-30;
      if (!(fabs((double)c[at] - want) <= tol))
        fail_msg("%s M=%d N=%d K=%d transA=%d acc=%d bias=%d relu=%d mask=%d "
                 "tri=%d diag=%d: C(%d,%zu) = %.9g, want %.9g",
                 lsmi_gemm_name(), M, N, K, s->transA, s->accumulate, s->bias,
                 s->relu, s->mask, s->tri, s->diag, i, j, (double)c[at], want);
    }
  free(a);
  free(b);
  free(c);
  free(c0);
  free(bias);
  free(mask);
}

static const int Ms[] = {1, 2, 3, 5, 7, 8, 12, 13, 25, 32};
static const int Ns[] = {1, 2, 15, 16, 17, 32, 33, 48, 64, 65, 130};
static const int Ks[] = {0, 1, 7, 32, 70};

/* Taller shapes for the triangular forms, whose BLAS path works in blocks
 * of rows (8 now; the shapes also cross 64, should that change). */
static const int tall_Ms[] = {70, 130};
static const int tall_Ns[] = {1, 17, 48, 64, 130};

static void run_shape(int tri, int square, int M, int N, int K,
                      lsmi_rng_t *rng) {
  shape_t s = {.M = M, .N = N, .K = K, .tri = tri};
  /* The triangular forms are used square (A: K = M; C: N = M) but hold for
   * any shape; test both. */
  if (square && tri == LSMI_GEMM_C_STRICT_LOWER)
    s.N = s.M;
  else if (square && tri != LSMI_GEMM_FULL)
    s.K = s.M;
  int variants = tri == LSMI_GEMM_C_STRICT_LOWER ? 4 : 16;
  for (int v = 0; v < variants; v++) {
    s.transA = v & 1;
    s.accumulate = (v >> 1) & 1;
    s.bias = (v >> 2) & 1;
    s.relu = (v >> 2) & 1;
    s.mask = (v >> 3) & 1;
    check_shape(&s, rng);
  }
}

/* Selects the implementation a test was registered for (its state, see
 * PER_IMPL); one this CPU cannot run is a skipped test, never a pass. */
static const char *select_impl(void **state) {
  const char *name = *state;
  if (lsmi_gemm_select(name) != 0) {
    print_message("%s: this CPU cannot run it\n", name);
    skip();
  }
  assert_string_equal(lsmi_gemm_name(), name);
  return name;
}

static void run_all(int tri, int square) {
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 7, (uint64_t)tri);
  for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
    for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
      for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        run_shape(tri, square, Ms[mi], Ns[ni], Ks[ki], &rng);
  if (tri != LSMI_GEMM_FULL)
    for (size_t mi = 0; mi < sizeof tall_Ms / sizeof tall_Ms[0]; mi++)
      for (size_t ni = 0; ni < sizeof tall_Ns / sizeof tall_Ns[0]; ni++)
        run_shape(tri, square, tall_Ms[mi], tall_Ns[ni], 70, &rng);
}

static void test_full(void **state) {
  select_impl(state);
  run_all(LSMI_GEMM_FULL, 0);
}

static void test_triangular(void **state) {
  select_impl(state);
  for (int sq = 0; sq < 2; sq++) {
    run_all(LSMI_GEMM_A_STRICT_LOWER, sq);
    run_all(LSMI_GEMM_A_STRICT_UPPER, sq);
    run_all(LSMI_GEMM_C_STRICT_LOWER, sq);
  }
}

/*
 * A strictly lower C with its cut moved right by diag: the blocks of rows of
 * a larger triangular product (the KNIFE backward takes its product so),
 * over heights that cross the tile heights and the BLAS path's blocks,
 * widths that cross the vector and panel edges, and cuts from 1 past the
 * diagonal to beyond the last column (every entry written).
 */
static void test_lower_diag(void **state) {
  static const int dM[] = {1, 5, 12, 13, 24, 70};
  static const int dN[] = {1, 16, 17, 64, 65, 130};
  static const int diags[] = {1, 2, 7, 16, 63, 200};
  select_impl(state);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 31, 5);
  for (size_t mi = 0; mi < sizeof dM / sizeof dM[0]; mi++)
    for (size_t ni = 0; ni < sizeof dN / sizeof dN[0]; ni++)
      for (size_t di = 0; di < sizeof diags / sizeof diags[0]; di++)
        for (int v = 0; v < 4; v++) {
          shape_t s = {.M = dM[mi],
                       .N = dN[ni],
                       .K = v < 2 ? 32 : 7,
                       .transA = v & 1,
                       .accumulate = (v >> 1) & 1,
                       .tri = LSMI_GEMM_C_STRICT_LOWER,
                       .diag = diags[di]};
          check_shape(&s, &rng);
        }
}

/* ReLU keeps a NaN (as torch.relu does), and the mask zeroes it. */
static void test_nan_epilogue(void **state) {
  select_impl(state);
  float a[2] = {NAN, -1.0f}, b[1] = {1.0f}, c[2], h[2] = {1.0f, 1.0f};
  lsmi_gemm_t g = {.M = 2,
                   .N = 1,
                   .K = 1,
                   .a = a,
                   .rsa = 1,
                   .csa = 1,
                   .b = b,
                   .ldb = 1,
                   .c = c,
                   .ldc = 1,
                   .relu = 1};
  lsmi_gemm(&g);
  assert_true(isnan(c[0]));
  assert_true(c[1] == 0.0f);
  h[0] = 0.0f;
  g.relu = 0;
  g.mask = h;
  g.ldm = 1;
  lsmi_gemm(&g);
  assert_true(c[0] == 0.0f && !signbit(c[0]));
  assert_true(c[1] == -1.0f);
}

/* Whether the float at p has any bit set (a NaN and -0 do). */
static int any_bits(const float *p) {
  uint32_t u;
  memcpy(&u, p, sizeof u);
  return u != 0;
}

/*
 * Live lists (gemm.h): with whole zero lines in A, from none to all of
 * them, and a NaN in a live line, every implementation gives bit for bit
 * the result it gives without the lists (which test_full checks against
 * the double loop), for every epilogue, with the live k, the live rows or
 * both listed; the lists here come from the definition, element by element.
 */
static void live_case(int M, int N, int K, int transA, int dead, int variant,
                      int nan_at, lsmi_rng_t *rng) {
  size_t lda = (size_t)(transA ? M : K) + 1, ldb = (size_t)N + 3;
  size_t ldc = (size_t)N, na = (size_t)(transA ? K : M) * lda + 1;
  size_t nc = (size_t)M * ldc + 1;
  float *a = calloc(na, sizeof(float));
  float *b = calloc((size_t)K * ldb + 1, sizeof(float));
  float *c1 = calloc(nc, sizeof(float)), *c2 = calloc(nc, sizeof(float));
  float *bias = calloc((size_t)N + 1, sizeof(float));
  float *mask = calloc(nc, sizeof(float));
  int *live_k = calloc((size_t)K + 1, sizeof(int));
  int *live_rows = calloc((size_t)M + 1, sizeof(int));
  assert_true(a && b && c1 && c2 && bias && mask && live_k && live_rows);
  lsmi_gemm_t g = {.M = M,
                   .N = N,
                   .K = K,
                   .a = a,
                   .rsa = transA ? 1 : lda,
                   .csa = transA ? lda : 1,
                   .b = b,
                   .ldb = ldb,
                   .c = c1,
                   .ldc = ldc,
                   .accumulate = variant & 1,
                   .bias = variant & 2 ? bias : NULL,
                   .relu = (variant >> 1) & 1,
                   .mask = variant & 4 ? mask : NULL,
                   .ldm = ldc};
  /* `dead` of the lines that can be zero (the columns k of a row-major A,
   * the rows of a transposed one) are zero, spread over the range */
  int lines = transA ? M : K;
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++) {
      int line = transA ? i : k;
      int is_dead = (line * 7) % (lines ? lines : 1) < dead;
      float v =
          lsmi_rng_uniform(rng) < 0.4 ? 0.0f : (float)lsmi_rng_normal(rng);
      a[(size_t)i * g.rsa + (size_t)k * g.csa] = is_dead ? 0.0f : v;
    }
  if (nan_at >= 0 && M > 0 && K > 0)
    a[(size_t)(nan_at % M) * g.rsa + (size_t)(nan_at % K) * g.csa] = NAN;
  for (int k = 0; k < K; k++)
    for (int j = 0; j < N; j++)
      b[(size_t)k * ldb + (size_t)j] = (float)lsmi_rng_normal(rng);
  for (int j = 0; j < N; j++)
    bias[j] = (float)lsmi_rng_normal(rng);
  for (size_t i = 0; i < (size_t)M * ldc; i++) {
    mask[i] = lsmi_rng_uniform(rng) < 0.3 ? 0.0f : 1.0f;
    c1[i] = c2[i] = (float)lsmi_rng_normal(rng);
  }
  int nk = 0, nrows = 0;
  for (int k = 0; k < K; k++)
    for (int i = 0; i < M; i++)
      if (any_bits(&a[(size_t)i * g.rsa + (size_t)k * g.csa])) {
        live_k[nk++] = k;
        break;
      }
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++)
      if (any_bits(&a[(size_t)i * g.rsa + (size_t)k * g.csa])) {
        live_rows[nrows++] = i;
        break;
      }
  lsmi_gemm(&g);
  g.c = c2;
  for (int lists = 1; lists <= 3; lists++) {
    g.live_k = lists & 1 ? live_k : NULL;
    g.nlive_k = nk;
    g.live_rows = lists & 2 ? live_rows : NULL;
    g.nlive_rows = nrows;
    float *old = malloc(nc * sizeof(float));
    assert_non_null(old);
    memcpy(old, c2, nc * sizeof(float));
    lsmi_gemm(&g);
    if (memcmp(c1, c2, (size_t)M * ldc * sizeof(float)) != 0)
      fail_msg("%s M=%d N=%d K=%d transA=%d dead=%d variant=%d nan=%d "
               "lists=%d: the lists changed the result",
               lsmi_gemm_name(), M, N, K, transA, dead, variant, nan_at, lists);
    memcpy(c2, old, nc * sizeof(float));
    free(old);
  }
  free(a);
  free(b);
  free(c1);
  free(c2);
  free(bias);
  free(mask);
  free(live_k);
  free(live_rows);
}

static void test_live_lists(void **state) {
  static const int sM[] = {1, 7, 32, 64, 130};
  static const int sN[] = {2, 10, 64, 70};
  static const int sK[] = {0, 5, 32, 64, 130};
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 21, 3);
  select_impl(state);
  for (size_t mi = 0; mi < sizeof sM / sizeof sM[0]; mi++)
    for (size_t ni = 0; ni < sizeof sN / sizeof sN[0]; ni++)
      for (size_t ki = 0; ki < sizeof sK / sizeof sK[0]; ki++)
        for (int tr = 0; tr < 2; tr++) {
          int lines = tr ? sM[mi] : sK[ki];
          int deads[] = {0, 1, lines / 8, lines / 2, lines};
          for (int d = 0; d < 5; d++)
            for (int v = 0; v < 8; v += 3)
              live_case(sM[mi], sN[ni], sK[ki], tr, deads[d], v,
                        d == 2 ? (int)(mi * 5 + ki) : -1, &rng);
        }
}

/* An infinite B(k, j) facing a dead column of A: left out of the sums by
 * the AVX-512 kernel (finite results), NaN in the dense sum. */
static void test_live_skips_inf(void **state) {
  select_impl(state);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 21, 4);
  enum { M = 32, N = 64, K = 64 };
  static float a[M * K], b[K * N], c[M * N];
  static int live[K];
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++)
      a[i * K + k] = k < 16 ? 0.0f : (float)lsmi_rng_normal(&rng);
  for (int k = 0; k < K; k++)
    for (int j = 0; j < N; j++)
      b[k * N + j] = k == 3 ? INFINITY : (float)lsmi_rng_normal(&rng);
  lsmi_gemm_t g = {.M = M,
                   .N = N,
                   .K = K,
                   .a = a,
                   .rsa = K,
                   .csa = 1,
                   .b = b,
                   .ldb = N,
                   .c = c,
                   .ldc = N};
  lsmi_gemm(&g);
  assert_true(isnan(c[0]));
  g.nlive_k = lsmi_gemm_live(a, K, M, K, live);
  assert_int_equal(g.nlive_k, K - 16);
  g.live_k = live;
  lsmi_gemm(&g);
  for (int i = 0; i < M * N; i++)
    assert_true(isfinite(c[i]));
}

/* lsmi_gemm_live against the definition, on every implementation: zero
 * columns spread over widths that cross the 16- and 64-column blocks, a
 * column whose only nonzero is -0 or NaN (live), strided rows. */
static void test_live_columns(void **state) {
  static const int rows_[] = {1, 3, 32, 129};
  static const int cols_[] = {1, 15, 16, 17, 64, 65, 130, 1100};
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 5, 8);
  select_impl(state);
  for (size_t ri = 0; ri < sizeof rows_ / sizeof rows_[0]; ri++)
    for (size_t ci = 0; ci < sizeof cols_ / sizeof cols_[0]; ci++) {
      int R = rows_[ri], C = cols_[ci];
      size_t ld = (size_t)C + 2;
      float *p = calloc((size_t)R * ld, sizeof(float));
      int *got = calloc((size_t)C, sizeof(int));
      int *want = calloc((size_t)C, sizeof(int));
      assert_true(p && got && want);
      for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
          if (j % 3 != 0 && lsmi_rng_uniform(&rng) < 0.5)
            p[(size_t)i * ld + (size_t)j] = (float)lsmi_rng_normal(&rng);
      p[(size_t)(R - 1) * ld + (size_t)(C - 1)] = -0.0f;
      if (C > 3)
        p[(size_t)(R / 2) * ld + 3] = NAN;
      /* the padding past each row is never read: make it live */
      for (int i = 0; i < R; i++)
        p[(size_t)i * ld + (size_t)C] = 1.0f;
      int nw = 0;
      for (int j = 0; j < C; j++)
        for (int i = 0; i < R; i++)
          if (any_bits(&p[(size_t)i * ld + (size_t)j])) {
            want[nw++] = j;
            break;
          }
      int ng = lsmi_gemm_live(p, ld, R, C, got);
      assert_int_equal(ng, nw);
      assert_memory_equal(got, want, (size_t)nw * sizeof(int));
      free(p);
      free(got);
      free(want);
    }
}

/* Every implementation's transpose against the definition, over shapes
 * crossing the 16×16 blocks, with padded strides left untouched. */
static void test_transpose(void **state) {
  static const int sizes[] = {1, 2, 15, 16, 17, 31, 33, 64, 70};
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 9, 1);
  const char *impl = select_impl(state);
  for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
    for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
      int R = sizes[a], C = sizes[b];
      size_t lds = (size_t)C + 3, ldd = (size_t)R + 5;
      float *src = malloc((size_t)R * lds * sizeof(float));
      float *dst = malloc((size_t)C * ldd * sizeof(float));
      assert_true(src && dst);
      for (size_t i = 0; i < (size_t)R * lds; i++)
        src[i] = (float)lsmi_rng_normal(&rng);
      for (size_t i = 0; i < (size_t)C * ldd; i++)
        dst[i] = -7.0f;
      lsmi_transpose(dst, ldd, src, lds, R, C);
      for (int j = 0; j < C; j++)
        for (size_t i = 0; i < ldd; i++) {
          float want = i < (size_t)R ? src[i * lds + (size_t)j] : -7.0f;
          if (dst[(size_t)j * ldd + i] != want)
            fail_msg("%s transpose %dx%d: dst(%d,%zu) = %g, want %g", impl, R,
                     C, j, i, (double)dst[(size_t)j * ldd + i], (double)want);
        }
      free(src);
      free(dst);
    }
}

static void test_select(void **state) {
  (void)state;
  assert_int_equal(lsmi_gemm_select("no-such"), -1);
  assert_int_equal(lsmi_gemm_select("generic"), 0);
  assert_string_equal(lsmi_gemm_name(), "generic");
}

/* One test per implementation, named "test/impl", with the name as its
 * state: the implementations this CPU cannot run show as skipped. */
#define ONE_IMPL(f, impl)                                                      \
  { #f "/" impl, f, NULL, NULL, (void *)(impl) }
#define PER_IMPL(f)                                                            \
  ONE_IMPL(f, "generic"), ONE_IMPL(f, "blas"), ONE_IMPL(f, "avx512")

int main(void) {
  const struct CMUnitTest tests[] = {
      PER_IMPL(test_full),
      PER_IMPL(test_triangular),
      PER_IMPL(test_lower_diag),
      PER_IMPL(test_nan_epilogue),
      PER_IMPL(test_transpose),
      PER_IMPL(test_live_lists),
      PER_IMPL(test_live_columns),
      ONE_IMPL(test_live_skips_inf, "avx512"),
      cmocka_unit_test(test_select),
  };
  return cmocka_run_group_tests_name("gemm", tests, NULL, NULL);
}
