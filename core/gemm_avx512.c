/*
 * gemm_avx512.c — the AVX-512 implementation of lsmi_gemm (gemm.h).
 *
 * C is cut into tiles of MR rows by NV vectors of 16 columns. A tile lives in
 * MR·NV zmm accumulators for its whole k loop: every k loads one row of B
 * (NV vectors) and broadcasts one element of A per tile row, so each element
 * of A and B is read once per tile and C is written once, after the
 * epilogue, with masked stores for the ragged right edge. Nothing is packed:
 * at these sizes (K of 2 to a few hundred, operands in L1 or L2) packing
 * would cost more than it saves, and A's strides make the transposed
 * operands of the backward passes free.
 *
 * The tile shapes keep 24 accumulators (6×4, 8×3, 12×2 vectors; 12×1 for
 * a single vector) so that at one fused multiply-add per cycle and a latency
 * of 4 cycles the FMA unit never waits; the row tails use smaller tiles of
 * the same code. Each shape is one instantiation of tile_kernel with
 * constant MR and NV, so the compiler unrolls every loop over rows and
 * vectors and keeps the accumulators in registers.
 *
 * Triangular forms (gemm.h) cost nothing in the loops: a tile's k range is
 * cut to where some row of it is nonzero, and the few k where only some rows
 * are (the tile's diagonal block) run with a per-row test. For a strictly
 * lower C, a tile's columns end where its last row's do.
 *
 * Products with at most four columns take dot products along k instead
 * (narrow_rows), so that the lanes of a vector are not mostly idle.
 *
 * With lists of A's live lines (gemm.h), the tiles sum over the live k
 * only, and the dead rows get only their epilogue; lsmi_gemm_live finds the
 * lists with one pass that ORs the bits of a matrix down its rows, which
 * costs far less than the terms it lets a product skip (doc/performance.md
 * has the measurement).
 */
#include "gemm_impl.h"

#ifdef LSMI_GEMM_HAVE_AVX512

#include <assert.h>
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 32")
#endif

/* Lanes [0, w) of a 16-lane vector, w in [0, 16]. */
INLINE __mmask16 lanes(int w) {
  unsigned m = w >= 16 ? 0xFFFFu : w <= 0 ? 0u : (1u << w) - 1u;
  return (__mmask16)m;
}

/*
 * The epilogue of a tile and its store, row by row, with the column mask of
 * each vector: acc[r][v] holds the sums of row rows[r], columns j0 + 16 v.
 */
INLINE void tile_store(const lsmi_gemm_t *g, __m512 acc[][4], const int *rows,
                       int j0, int w, const int MR, const int NV) {
  const __m512 zero = _mm512_setzero_ps();
  UNROLL for (int r = 0; r < MR; r++) {
    int i = rows[r];
    float *c = g->c + (size_t)i * g->ldc + j0;
    int wr = w;
    if (g->tri == LSMI_GEMM_C_STRICT_LOWER) /* columns j < i + diag only */
      wr = i + g->diag - j0 < w ? i + g->diag - j0 : w;
    UNROLL for (int v = 0; v < NV; v++) {
      __mmask16 m = lanes(wr - 16 * v);
      __m512 x = acc[r][v];
      if (g->accumulate)
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, c + 16 * v));
      if (g->bias)
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, g->bias + j0 + 16 * v));
      if (g->relu)
        x = _mm512_max_ps(zero, x); /* the second operand wins on NaN */
      if (g->mask) {
        __m512 h = _mm512_maskz_loadu_ps(m, g->mask + (size_t)i * g->ldm +
                                                (size_t)j0 + 16 * (size_t)v);
        x = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(h, zero, _CMP_GT_OQ), x);
      }
      _mm512_mask_storeu_ps(c + 16 * v, m, x);
    }
  }
}

/*
 * One tile: rows rows[0..MR) (consecutive, i0 = rows[0], for the triangular
 * forms), columns [j0, j0 + w) with 16 (NV - 1) < w <= 16 NV; the sum runs
 * over k in [0, K), or over the nk entries of klist when klist is not NULL
 * (a full product only). MR and NV are constants at every call, so
 * everything below unrolls. With pf_rows > 0 the rows are consecutive and
 * the first pf_rows rows after them (the next tile's) are prefetched. The
 * prefetches change nothing in the sums.
 */
INLINE void tile_kernel(const lsmi_gemm_t *g, const int *rows, int j0, int w,
                        const int *klist, int nk, int pf_rows, const int MR,
                        const int NV) {
  __m512 acc[12][4];
  UNROLL for (int r = 0; r < MR; r++) UNROLL for (int v = 0; v < NV; v++)
      acc[r][v] = _mm512_setzero_ps();
  __mmask16 mlast = lanes(w - 16 * (NV - 1));
  const int i0 = rows[0];
  const float *arow[12];
  UNROLL for (int r = 0; r < MR; r++) arow[r] = g->a + (size_t)rows[r] * g->rsa;
  const size_t csa = g->csa, ldb = g->ldb;
  const float *bj = g->b + j0;
  int K = g->K;

  /* k ranges: [kd0, kd1) is the diagonal block, where row r takes part only
   * if A(i0 + r, k) is inside the triangle; [kf0, kf1) and [kg0, kg1) are
   * where every row does. */
  int kf0 = 0, kf1 = K, kd0 = 0, kd1 = 0, kg0 = 0, kg1 = 0;
  if (g->tri == LSMI_GEMM_A_STRICT_LOWER) {
    kf1 = i0 < K ? i0 : K;
    kd0 = kf1;
    kd1 = i0 + MR - 1 < K ? i0 + MR - 1 : K;
  } else if (g->tri == LSMI_GEMM_A_STRICT_UPPER) {
    kf0 = kf1 = 0;
    kd0 = i0 + 1 < K ? i0 + 1 : K;
    kd1 = i0 + MR < K ? i0 + MR : K;
    kg0 = kd1;
    kg1 = K;
  }

#define LOAD_B(k)                                                              \
  __m512 b[4];                                                                 \
  {                                                                            \
    const float *bk = bj + (size_t)(k)*ldb;                                    \
    UNROLL for (int v = 0; v < NV - 1; v++) b[v] =                             \
        _mm512_loadu_ps(bk + 16 * v);                                          \
    b[NV - 1] = _mm512_maskz_loadu_ps(mlast, bk + 16 * (NV - 1));              \
  }
#define FMA_ROW(r, k)                                                          \
  {                                                                            \
    __m512 a = _mm512_set1_ps(arow[r][(size_t)(k)*csa]);                       \
    UNROLL for (int v = 0; v < NV; v++) acc[r][v] =                            \
        _mm512_fmadd_ps(a, b[v], acc[r][v]);                                   \
  }

  if (klist) {
    for (int t = 0; t < nk; t++) {
      int k = klist[t];
      LOAD_B(k);
      UNROLL for (int r = 0; r < MR; r++) FMA_ROW(r, k);
    }
    kf1 = kd1 = kg1 = 0; /* the list was the whole range */
  }
  if (pf_rows > 0) {
    /* A long row-major A streamed from memory (the KNIFE factor): the rows
     * of the next tile, the same columns, are asked for a tile ahead, a
     * line of each every 16 k, so that they are in cache when their tile
     * starts rather than found by the prefetcher after a miss per row. */
    const float *an = g->a + (size_t)(i0 + MR) * g->rsa;
    for (int k = kf0; k < kf1; k++) {
      LOAD_B(k);
      UNROLL for (int r = 0; r < MR; r++) FMA_ROW(r, k);
      if ((k & 15) == 0)
        for (int r = 0; r < pf_rows; r++)
          _mm_prefetch((const char *)(an + (size_t)r * g->rsa + k),
                       _MM_HINT_T0);
    }
  } else {
    for (int k = kf0; k < kf1; k++) {
      LOAD_B(k);
      UNROLL for (int r = 0; r < MR; r++) FMA_ROW(r, k);
    }
  }
  for (int k = kd0; k < kd1; k++) {
    LOAD_B(k);
    UNROLL for (int r = 0; r < MR; r++) {
      int on = g->tri == LSMI_GEMM_A_STRICT_LOWER ? k < i0 + r : k > i0 + r;
      if (on)
        FMA_ROW(r, k);
    }
  }
  for (int k = kg0; k < kg1; k++) {
    LOAD_B(k);
    UNROLL for (int r = 0; r < MR; r++) FMA_ROW(r, k);
  }
#undef LOAD_B
#undef FMA_ROW

  tile_store(g, acc, rows, j0, w, MR, NV);
}

/* The instantiations: one function per (MR, NV), each compiled with
 * constant shapes, for the heights below and, for a strictly lower C, the
 * narrower tiles of the same heights. (12×3, 12×4 and 8×4 would need more
 * than the 32 vector registers and are never used.) */
#define TILE(MR, NV)                                                           \
  static TARGET void tile_##MR##x##NV(const lsmi_gemm_t *g, const int *rows,   \
                                      int j0, int w, const int *klist, int nk, \
                                      int pf_rows) {                           \
    tile_kernel(g, rows, j0, w, klist, nk, pf_rows, MR, NV);                   \
  }
#define TILES_UP_TO_8(NV)                                                      \
  TILE(8, NV) TILE(6, NV) TILE(4, NV) TILE(2, NV) TILE(1, NV)
// clang-format off
TILE(12, 1)
TILE(12, 2)
TILES_UP_TO_8(1)
TILES_UP_TO_8(2)
TILES_UP_TO_8(3)
TILE(6, 4)
TILE(4, 4)
TILE(2, 4)
TILE(1, 4)
// clang-format on

typedef void (*tile_fn)(const lsmi_gemm_t *, const int *, int, int, const int *,
                        int, int);

/* Tile heights by vectors per tile (index NV - 1): the tallest first, then
 * the tails, 0-terminated. */
static const int heights[4][6] = {{12, 8, 4, 2, 1, 0},
                                  {12, 8, 4, 2, 1, 0},
                                  {8, 4, 2, 1, 0, 0},
                                  {6, 4, 2, 1, 0, 0}};

/* tiles[MR][NV - 1]; NULL where no tile of that shape is ever asked for. */
static const tile_fn tiles[13][4] = {
    [1] = {tile_1x1, tile_1x2, tile_1x3, tile_1x4},
    [2] = {tile_2x1, tile_2x2, tile_2x3, tile_2x4},
    [4] = {tile_4x1, tile_4x2, tile_4x3, tile_4x4},
    [6] = {tile_6x1, tile_6x2, tile_6x3, tile_6x4},
    [8] = {tile_8x1, tile_8x2, tile_8x3, NULL},
    [12] = {tile_12x1, tile_12x2, NULL, NULL},
};

static tile_fn tile_for(int mr, int nv) {
  tile_fn fn = tiles[mr][nv - 1];
  assert(fn != NULL);
  return fn;
}

/* Widest and longest B for narrow_rows, which copies B transposed to the
 * stack. */
#define NARROW_N 4
#define NARROW_K 512

/*
 * A product with at most NARROW_N columns (the logits of a two-class
 * discriminator) wastes most of a tile's lanes. With A row-major, each
 * output is instead a dot product along k: B's columns are copied to the
 * stack contiguous along k (zero-padded to whole vectors), every row of A is
 * read in vectors, and each of its N sums is reduced across lanes at the
 * end.
 */
INLINE void narrow_kernel(const lsmi_gemm_t *g, const int N) {
  const int M = g->M, K = g->K;
  const int kp = (K + 15) & ~15; /* padded length of a column */
  float bt[NARROW_N * NARROW_K] __attribute__((aligned(64)));
  for (int j = 0; j < N; j++) {
    for (int k = 0; k < K; k++)
      bt[j * kp + k] = g->b[(size_t)k * g->ldb + (size_t)j];
    for (int k = K; k < kp; k++)
      bt[j * kp + k] = 0.0f;
  }
  for (int i = 0; i < M; i++) {
    const float *ar = g->a + (size_t)i * g->rsa;
    __m512 acc[NARROW_N];
    UNROLL for (int j = 0; j < N; j++) acc[j] = _mm512_setzero_ps();
    for (int k0 = 0; k0 < K; k0 += 16) {
      __m512 av = _mm512_maskz_loadu_ps(lanes(K - k0), ar + k0);
      UNROLL for (int j = 0; j < N; j++) acc[j] =
          _mm512_fmadd_ps(av, _mm512_load_ps(bt + j * kp + k0), acc[j]);
    }
    float *c = g->c + (size_t)i * g->ldc;
    UNROLL for (int j = 0; j < N; j++) {
      float v = _mm512_reduce_add_ps(acc[j]);
      if (g->accumulate)
        v += c[j];
      if (g->bias)
        v += g->bias[j];
      if (g->relu)
        v = v < 0.0f ? 0.0f : v; /* a NaN is kept */
      if (g->mask)
        v = g->mask[(size_t)i * g->ldm + (size_t)j] > 0.0f ? v : 0.0f;
      c[j] = v;
    }
  }
}

/* One instantiation per width, so the accumulators stay in registers. */
static TARGET void narrow_rows(const lsmi_gemm_t *g) {
  switch (g->N) {
  case 1:
    narrow_kernel(g, 1);
    break;
  case 2:
    narrow_kernel(g, 2);
    break;
  case 3:
    narrow_kernel(g, 3);
    break;
  default:
    narrow_kernel(g, 4);
    break;
  }
}

/* The shortest row-major A, in k, whose next tile's rows a tile
 * prefetches (tile_kernel): long enough to come from memory rather than
 * L1. On the KNIFE factor at d = 768 (forward and evaluation, read from
 * memory after the Adam step has streamed the moments through the caches)
 * it took 5% off a training step and 8-10% off the evaluation; at d <= 512
 * it changed nothing measurable. */
#define PF_K 128

/*
 * The tiles over C: its rows rowlist[0..nrows) (all M rows, in order, when
 * rowlist is NULL), the tallest tiles of each width first, then the shorter
 * ones for the rows left; each tile sums over klist (NULL: all of k).
 */
static TARGET void tiles_over(const lsmi_gemm_t *g, const int *rowlist,
                              int nrows, const int *klist, int nk) {
  const int N = g->N;
  const int lowerC = g->tri == LSMI_GEMM_C_STRICT_LOWER;
  const int pf_a = g->csa == 1 && g->K >= PF_K;
  int rows[12];
  for (int j0 = 0; j0 < N; j0 += 64) {
    int w = N - j0 < 64 ? N - j0 : 64;
    int nv = (w + 15) / 16;
    const int *hs = heights[nv - 1];
    /* Six-row tiles would leave two rows of a 32-row batch to a tile of 8
     * accumulators: end with two 4-row tiles instead. */
    int v0 = 0, tall_end = nrows;
    if (hs[0] == 6 && nrows % 6 == 2 && nrows >= 8)
      tall_end = nrows - 8;
    for (int h = 0; hs[h] && v0 < nrows; h++) {
      tile_fn fn = tile_for(hs[h], nv);
      for (; v0 + hs[h] <= (h == 0 ? tall_end : nrows); v0 += hs[h]) {
        for (int r = 0; r < hs[h]; r++)
          rows[r] = rowlist ? rowlist[v0 + r] : v0 + r;
        if (!lowerC) {
          /* rows of the next tile to prefetch (tile_kernel): with a long
           * row-major A, consecutive rows, and no k list */
          int pf = 0;
          if (pf_a && !rowlist && !klist) {
            pf = nrows - (v0 + hs[h]);
            pf = pf < hs[h] ? pf : hs[h];
          }
          fn(g, rows, j0, w, klist, nk, pf);
          continue;
        }
        /* With C strictly lower, the tile's last row i0 + MR - 1 has the
         * most columns, i0 + MR - 1 + diag of them: cut the block there. */
        int wt = v0 + hs[h] - 1 + g->diag - j0;
        if (wt <= 0)
          continue;
        wt = wt < w ? wt : w;
        tile_for(hs[h], (wt + 15) / 16)(g, rows, j0, wt, NULL, 0, 0);
      }
    }
  }
}

/*
 * live[b] bit l: column 16 b + l of the nrows×ncols matrix at p (row stride
 * ld) is not zero in every row ("not zero": any bit set, so a NaN and also
 * -0 count). Four blocks of 16 columns at a time, ORed down the rows in
 * registers.
 */
INLINE void live_columns(const float *p, size_t ld, int nrows, int ncols,
                         uint16_t *live) {
  for (int c0 = 0; c0 < ncols; c0 += 64) {
    __mmask16 m[4];
    __m512i acc[4];
    UNROLL for (int v = 0; v < 4; v++) {
      m[v] = lanes(ncols - c0 - 16 * v);
      acc[v] = _mm512_setzero_si512();
    }
    for (int i = 0; i < nrows; i++) {
      const float *row = p + (size_t)i * ld + c0;
      UNROLL for (int v = 0; v < 4; v++) acc[v] =
          _mm512_or_si512(acc[v], _mm512_maskz_loadu_epi32(m[v], row + 16 * v));
    }
    UNROLL for (int v = 0; v < 4; v++) if (c0 + 16 * v < ncols)
        live[c0 / 16 + v] = (uint16_t)_mm512_test_epi32_mask(acc[v], acc[v]);
  }
}

TARGET int lsmi_gemm_live_avx512(const float *p, size_t ld, int rows, int cols,
                                 int *list) {
  int n = 0;
  for (int c0 = 0; c0 < cols; c0 += 1024) {
    uint16_t live[64];
    int w = cols - c0 < 1024 ? cols - c0 : 1024;
    live_columns(p + c0, ld, rows, w, live);
    for (int b = 0; b < (w + 15) / 16; b++)
      for (unsigned m = live[b]; m; m &= m - 1)
        list[n++] = c0 + 16 * b + __builtin_ctz(m);
  }
  return n;
}

/* Most rows whose dead ones a product lists on the stack; beyond, the dead
 * rows get their multiply-adds (of zeros) like the live ones. */
#define DEAD_ROWS_MAX 1024

TARGET void lsmi_gemm_avx512(const lsmi_gemm_t *g) {
  if (g->N <= NARROW_N && g->csa == 1 && g->K >= 16 && g->K <= NARROW_K &&
      g->tri == LSMI_GEMM_FULL) {
    narrow_rows(g);
    return;
  }
  if (g->tri != LSMI_GEMM_FULL) {
    tiles_over(g, NULL, g->M, NULL, 0);
    return;
  }
  if (g->live_rows && g->M <= DEAD_ROWS_MAX) {
    /* the live rows as listed, then the dead ones with an empty k list */
    int dead[DEAD_ROWS_MAX], ndead = 0;
    for (int i = 0, l = 0; i < g->M; i++) {
      if (l < g->nlive_rows && g->live_rows[l] == i)
        l++;
      else
        dead[ndead++] = i;
    }
    static const int no_k[1];
    tiles_over(g, g->live_rows, g->nlive_rows, g->live_k, g->nlive_k);
    tiles_over(g, dead, ndead, no_k, 0);
    return;
  }
  tiles_over(g, NULL, g->M, g->live_k, g->nlive_k);
}

/* ------------------------------------------------------------------------ */
/* Transpose                                                                */
/* ------------------------------------------------------------------------ */

/* The 16×16 block in r, transposed in place: pairs of rows interleaved by
 * 32-bit elements, then by 64-bit pairs, then the 128-bit quarters of four
 * rows exchanged twice. */
INLINE void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; i++) {
      t[h + i] = _mm512_shuffle_f32x4(u[h + i], u[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(u[h + i], u[h + i + 4], 0xdd);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

TARGET void lsmi_transpose_avx512(float *dst, size_t ldd, const float *src,
                                  size_t lds, int R, int C) {
  for (int i0 = 0; i0 < R; i0 += 16)
    for (int j0 = 0; j0 < C; j0 += 16) {
      int nr = R - i0 < 16 ? R - i0 : 16, nc = C - j0 < 16 ? C - j0 : 16;
      __mmask16 mc = lanes(nc), mr = lanes(nr);
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = i < nr ? _mm512_maskz_loadu_ps(mc, src + (size_t)(i0 + i) * lds +
                                                      (size_t)j0)
                      : _mm512_setzero_ps();
      transpose16(r);
      for (int j = 0; j < nc; j++)
        _mm512_mask_storeu_ps(dst + (size_t)(j0 + j) * ldd + (size_t)i0, mr,
                              r[j]);
    }
}

int lsmi_gemm_avx512_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}

#endif
