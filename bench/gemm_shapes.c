/*
 * gemm_shapes.c — GFLOP/s of lsmi_gemm (core/gemm.h) on the products a
 * training step makes, for each implementation this CPU runs: the
 * discriminator's 64-wide layers on a 32-row batch, its two-class logits,
 * and the KNIFE products at d=128 and 768 (forward strictly lower A,
 * backward strictly lower C). Flops are those the product executes: a
 * triangular form counts only its triangle.
 *
 * Thread CPU time around many calls (the clock read is a system call), best
 * of five rounds: the machine is shared. Usage: gemm_shapes (no arguments).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gemm.h"

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct shape {
  const char *what;
  int M, N, K;
  int transA; /* A given as the transpose of a row-major (K, M) matrix */
  int tri;
  double flops;
} shape_t;

#define FULL(M, N, K) (2.0 * (M) * (N) * (K))

static const shape_t shapes[] = {
    {"layer forward, h1 W2^T (32x64, K=64)", 32, 64, 64, 0, LSMI_GEMM_FULL,
     FULL(32, 64, 64)},
    {"weight gradient, dh2^T h1 (64x64, K=32)", 64, 64, 32, 1, LSMI_GEMM_FULL,
     FULL(64, 64, 32)},
    {"logits, two classes (32x2, K=64)", 32, 2, 64, 0, LSMI_GEMM_FULL,
     FULL(32, 2, 64)},
    {"first layer, d=128 (32x64, K=128)", 32, 64, 128, 0, LSMI_GEMM_FULL,
     FULL(32, 64, 128)},
    {"KNIFE forward, L A^T, d=128 (128x32)", 128, 32, 128, 0,
     LSMI_GEMM_A_STRICT_LOWER, 2.0 * 32 * 128 * 127 / 2},
    {"KNIFE backward, dZ^T A, d=128 (130x129)", 130, 129, 32, 0,
     LSMI_GEMM_C_STRICT_LOWER, 2.0 * 32 * 130 * 129 / 2},
    /* issue 18's sizes: the roofline's FLOP term (doc/roofline.md) */
    {"KNIFE forward, L A^T, d=768 (768x32)", 768, 32, 768, 0,
     LSMI_GEMM_A_STRICT_LOWER, 2.0 * 32 * 768 * 767 / 2},
    {"KNIFE backward, dZ^T A, d=768 (770x769)", 770, 769, 32, 0,
     LSMI_GEMM_C_STRICT_LOWER, 2.0 * 32 * 770 * 769 / 2},
};

static double time_shape(const shape_t *s, float *a, float *b, float *c) {
  lsmi_gemm_t g = {
      .M = s->M,
      .N = s->N,
      .K = s->K,
      .a = a,
      .rsa = s->transA ? 1 : (size_t)s->K,
      .csa = s->transA ? (size_t)s->M : 1,
      .b = b,
      .ldb = (size_t)s->N,
      .c = c,
      .ldc = (size_t)s->N,
      .tri = s->tri,
  };
  int reps = (int)(2e8 / s->flops) + 10;
  double best = 1e30;
  for (int round = 0; round < 5; round++) {
    double t0 = cpu_seconds();
    for (int r = 0; r < reps; r++)
      lsmi_gemm(&g);
    double t = (cpu_seconds() - t0) / reps;
    best = t < best ? t : best;
  }
  return best;
}

int main(void) {
  enum { BIG = 770 * 770 };
  float *a = malloc(BIG * sizeof(float)), *b = malloc(BIG * sizeof(float));
  float *c = malloc(BIG * sizeof(float));
  if (!a || !b || !c)
    return 1;
  for (int i = 0; i < BIG; i++) {
    a[i] = (float)(i % 7) * 0.1f - 0.3f;
    b[i] = (float)(i % 5) * 0.1f - 0.2f;
    c[i] = 0.0f;
  }
  static const char *const names[] = {"avx512", "blas", "generic"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    if (lsmi_gemm_select(names[k]) != 0)
      continue;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
      double t = time_shape(&shapes[i], a, b, c);
      printf("%-8s %-42s %8.3f us %7.1f GFLOP/s\n", names[k], shapes[i].what,
             t * 1e6, shapes[i].flops / t * 1e-9);
    }
  }
  free(a);
  free(b);
  free(c);
  return 0;
}
