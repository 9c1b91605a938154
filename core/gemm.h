/*
 * gemm.h — the small matrix products of the training loops (internal).
 *
 * A training step multiplies a 32-row batch by 64-wide layers, or a d×d
 * triangular factor by a 32-column block. At these sizes a BLAS call spends
 * as long deciding, packing and returning as multiplying, so the steps use
 * this one entry instead: it keeps an output tile in vector registers for
 * the whole reduction and applies the layer's epilogue (bias, ReLU, ReLU
 * mask) before the single store, with no packing and no allocation.
 *
 * One call computes, for every (i, j) of an M×N output,
 *   C(i, j) = [C(i, j) +] Σ_k A(i, k) B(k, j)  [+ bias(j)] [relu] [· mask]
 * with
 *   A(i, k) = a[i * rsa + k * csa]   any two strides: a row-major matrix
 *                                    (rsa = ld, csa = 1) or the transpose of
 *                                    one (rsa = 1, csa = ld), read one
 *                                    element at a time
 *   B(k, j) = b[k * ldb + j]         row-major, read along j
 *   C(i, j) = c[i * ldc + j]         row-major
 * The epilogue, in this order: accumulate adds the old C; bias adds bias(j);
 * relu replaces values < 0 by 0 (a NaN is kept, as torch.relu keeps it);
 * mask sets C(i, j) = 0 wherever mask[i * ldm + j] > 0 is false (the ReLU
 * backward, with the post-ReLU activation as the mask).
 *
 * Triangular structure, exact (entries outside it are never read, or never
 * written, so they may hold anything):
 *   LSMI_GEMM_A_STRICT_LOWER  A(i, k) is taken as 0 for k >= i
 *   LSMI_GEMM_A_STRICT_UPPER  A(i, k) is taken as 0 for k <= i
 *   LSMI_GEMM_C_STRICT_LOWER  only C(i, j) with j < i + diag is computed
 *                             and written; the rest of C is left untouched
 * With C_STRICT_LOWER the epilogue must be plain (accumulate allowed).
 * diag (0 unless set) moves that cut right by diag >= 0 columns: a block of
 * rows i0.. of a larger lower-triangular product is the call with a, c at
 * row i0 and diag = i0 (how the KNIFE step takes its backward product a
 * block of rows at a time, each block consumed while it is in cache).
 *
 * live_k and live_rows say which lines of A may hold a nonzero: the
 * post-ReLU activations of a batch have a zero column for every unit that
 * no row of the batch fires (a fair share of them in a trained
 * discriminator: doc/performance.md), and the gradients masked by them the
 * same zero columns, which are zero rows when read transposed. With live_k
 * (nlive_k ascending k) the sums run over those k only: the caller guarantees
 * A(i, k) = 0 for every other k. With live_rows (nlive_rows ascending
 * rows) the other rows of A are zero throughout and their rows of C get the
 * epilogue of 0. lsmi_gemm_live finds such a list. The terms left out are
 * exact zeros, and adding an exact zero changes no sum (the sums start at
 * +0 and so never hold -0), so the result is bit for bit the one without
 * the lists whenever B is finite (an infinite or NaN B(k, j) facing a zero
 * line is skipped rather than turned into the NaN of 0 · inf). Only the
 * AVX-512 kernel uses them, and only for a full product; the others sum the
 * zeros.
 *
 * The sums run in float. Which implementation runs is chosen once per
 * process from the CPU (an AVX-512 kernel with fused multiply-adds, or the
 * BLAS with portable loops for the rest); results agree to rounding,
 * not to the bit, across implementations, and are bit-identical from call
 * to call within one.
 */
#ifndef LSMI_GEMM_H
#define LSMI_GEMM_H

#include <stddef.h>

enum {
  LSMI_GEMM_FULL = 0,
  LSMI_GEMM_A_STRICT_LOWER = 1,
  LSMI_GEMM_A_STRICT_UPPER = 2,
  LSMI_GEMM_C_STRICT_LOWER = 3,
};

typedef struct lsmi_gemm {
  int M, N, K;
  const float *a; /* borrowed; A(i, k) = a[i * rsa + k * csa] */
  size_t rsa, csa;
  const float *b; /* borrowed; B(k, j) = b[k * ldb + j] */
  size_t ldb;
  float *c; /* borrowed; C(i, j) = c[i * ldc + j] */
  size_t ldc;
  int accumulate;    /* C += A·B rather than C = A·B */
  const float *bias; /* (N) or NULL */
  int relu;          /* after the bias */
  const float *mask; /* (M, N) with row stride ldm, or NULL */
  size_t ldm;
  int tri;           /* LSMI_GEMM_FULL or one of the triangular forms */
  int diag;          /* C_STRICT_LOWER: C(i, j) for j < i + diag (>= 0) */
  const int *live_k; /* NULL, or the k that may hold a nonzero (see above) */
  int nlive_k;
  const int *live_rows; /* NULL, or the rows of A that may hold a nonzero */
  int nlive_rows;
} lsmi_gemm_t;

/* Computes g (see above). M, N or K of 0 is allowed (K = 0: C = epilogue of
 * 0, or of the old C when accumulating). */
void lsmi_gemm(const lsmi_gemm_t *g);

/*
 * The columns of the rows×cols matrix at p (row stride ld) that are not
 * zero in every row, ascending, into list (room for cols entries); returns
 * how many. "Not zero" is any bit set: a NaN and -0 count as live, which
 * only costs a line that could have been skipped.
 */
int lsmi_gemm_live(const float *p, size_t ld, int rows, int cols, int *list);

/*
 * dst (C, R) = src^T for src (R, C): dst[j * ldd + i] = src[i * lds + j].
 * The training steps keep a transposed copy of some weights, refreshed
 * every step; this does it in 16×16 register blocks where the CPU can.
 * dst and src must not overlap.
 */
void lsmi_transpose(float *dst, size_t ldd, const float *src, size_t lds, int R,
                    int C);

/* The implementations by name, for tests and benchmarks: "avx512" (where
 * the CPU has AVX-512F), "blas" (cblas_sgemm for the bulk of each product,
 * every CPU) and "generic" (plain loops, every CPU). The first lsmi_gemm call
 * picks the first of these the CPU supports; lsmi_gemm_select forces one for
 * the rest of the process. Returns 0, or -1 (nothing changed) when
 * the name is unknown or the CPU cannot run it. Not thread-safe: call it
 * before any thread multiplies. */
int lsmi_gemm_select(const char *name);
/* The name of the implementation in use (picking it if none is yet). */
const char *lsmi_gemm_name(void);

#endif
