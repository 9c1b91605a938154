/*
 * gemm_impl.h — the implementations behind lsmi_gemm (internal to gemm*.c
 * and their tests). Each computes the whole of gemm.h's contract for any
 * arguments lsmi_gemm accepts with M, N > 0.
 */
#ifndef LSMI_GEMM_IMPL_H
#define LSMI_GEMM_IMPL_H

#include "gemm.h"

void lsmi_gemm_generic(const lsmi_gemm_t *g);
void lsmi_transpose_generic(float *dst, size_t ldd, const float *src,
                            size_t lds, int R, int C);
/* cblas_sgemm for the bulk, the portable loops for the rest. */
void lsmi_gemm_blas(const lsmi_gemm_t *g);

#if defined(__x86_64__) && defined(__GNUC__)
#define LSMI_GEMM_HAVE_AVX512 1
void lsmi_gemm_avx512(const lsmi_gemm_t *g);
void lsmi_transpose_avx512(float *dst, size_t ldd, const float *src, size_t lds,
                           int R, int C);
int lsmi_gemm_live_avx512(const float *p, size_t ld, int rows, int cols,
                          int *list);
/* 1 when the CPU and the OS support AVX-512F (zmm state enabled). */
int lsmi_gemm_avx512_supported(void);
#endif

#endif
