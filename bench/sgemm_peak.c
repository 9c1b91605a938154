/*
 * sgemm_peak.c — the single-thread sgemm rate this machine reaches, the
 * yardstick the benchmark driver (bench/bench.py) holds lsmi's phases
 * against.
 *
 * It runs lsmi_blas_setup() first, exactly as the lsmi binary does, so the
 * kernels measured are the ones lsmi runs on (LSMI_BLAS_CORETYPE=Prescott
 * measures the generic fallback for comparison). Then, for each shape, it
 * times repeated C = A B products on one thread and keeps the best of
 * several rounds (the machine is shared; the best round is the one least
 * disturbed). Shapes: a large square one (the peak), the 1024x512x512,
 * and the small shapes lsmi's training actually issues (batch 32 against
 * d x d KNIFE factors and 64-wide MLP layers).
 *
 * With --threads T, T threads run the same products at the same time, each
 * on its own matrices and on one OpenBLAS thread (as lsmi's pool threads
 * each run their own model), started together per shape; the figure is
 * the sum of their rates: the machine's multi-core peak (doc/roofline.md).
 *
 * Output: one JSON object on stdout,
 *   {"corename": ..., "threads": 1, "peak_gflops": ..., "shapes": [
 *      {"m":..,"n":..,"k":..,"gflops":..}, ...]}
 * Usage: sgemm_peak [--threads T] [seconds-per-shape]   (defaults 1, 0.5)
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)((int)(i * 7919u % 201u) - 100) / 100.0f;
}

/* Best GFLOP/s over rounds of at least `budget`/5 seconds each. */
static double rate(int m, int n, int k, double budget) {
  size_t na = (size_t)m * (size_t)k, nb = (size_t)k * (size_t)n,
         nc = (size_t)m * (size_t)n;
  float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b),
        *c = malloc(nc * sizeof *c);
  if (a == NULL || b == NULL || c == NULL) {
    fprintf(stderr, "sgemm_peak: out of memory\n");
    exit(1);
  }
  fill(a, na);
  fill(b, nb);
  fill(c, nc);
  double flops = 2.0 * m * n * k, best = 0.0, round = budget / 5.0;
  /* Warm-up: page in the buffers and OpenBLAS's own work space. */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b,
              n, 0.0f, c, n);
  for (int r = 0; r < 5; r++) {
    long reps = 0;
    double t0 = now(), t;
    do {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a,
                  k, b, n, 0.0f, c, n);
      reps++;
      t = now() - t0;
    } while (t < round);
    double g = flops * (double)reps / t * 1e-9;
    if (g > best)
      best = g;
  }
  free(a);
  free(b);
  free(c);
  return best;
}

enum { MAX_THREADS = 8 };

/* One thread's share of a shape: start together, measure, report. */
typedef struct job {
  const int *shape;
  double budget, gflops;
  pthread_barrier_t *go;
} job_t;

static void *job_main(void *arg) {
  job_t *j = arg;
  pthread_barrier_wait(j->go);
  j->gflops = rate(j->shape[0], j->shape[1], j->shape[2], j->budget);
  return NULL;
}

/* The summed GFLOP/s of T threads running the shape at once. */
static double rate_threads(const int *shape, double budget, int T) {
  if (T <= 1)
    return rate(shape[0], shape[1], shape[2], budget);
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)T);
  pthread_t tid[MAX_THREADS];
  job_t jobs[MAX_THREADS];
  for (int t = 0; t < T; t++) {
    jobs[t] = (job_t){shape, budget, 0.0, &go};
    if (t > 0 && pthread_create(&tid[t], NULL, job_main, &jobs[t]) != 0) {
      fprintf(stderr, "sgemm_peak: cannot start a thread\n");
      exit(1);
    }
  }
  job_main(&jobs[0]);
  double sum = jobs[0].gflops;
  for (int t = 1; t < T; t++) {
    pthread_join(tid[t], NULL);
    sum += jobs[t].gflops;
  }
  pthread_barrier_destroy(&go);
  return sum;
}

int main(int argc, char **argv) {
  lsmi_blas_setup(argc, argv);
  int threads = 1, arg = 1;
  if (argc > 2 && strcmp(argv[1], "--threads") == 0) {
    threads = atoi(argv[2]);
    arg = 3;
  }
  if (threads < 1 || threads > MAX_THREADS) {
    fprintf(stderr, "usage: sgemm_peak [--threads 1..%d] [seconds]\n",
            MAX_THREADS);
    return 2;
  }
  double budget = argc > arg ? atof(argv[arg]) : 0.5;
  if (!(budget > 0.0))
    budget = 0.5;
  static const int shapes[][3] = {
      {1024, 1024, 1024}, /* the peak */
      {1024, 512, 512},   /* the comparison */
      {32, 128, 128},     /* KNIFE batch: (B x d)(d x d), d = 128 */
      {32, 256, 256},     /* KNIFE batch, d = 256 */
      {32, 64, 64},       /* MLP hidden layer, batch 32 */
      {4096, 64, 256},    /* evaluation block, first layer, d = 256 */
  };
  size_t ns = sizeof shapes / sizeof shapes[0];
  double peak = 0.0;
  printf("{\"corename\":\"%s\",\"source\":\"%s\",\"threads\":%d,\"shapes\":[",
         lsmi_blas_corename(), lsmi_blas_source(), threads);
  for (size_t i = 0; i < ns; i++) {
    double g = rate_threads(shapes[i], budget, threads);
    if (g > peak)
      peak = g;
    printf("%s{\"m\":%d,\"n\":%d,\"k\":%d,\"gflops\":%.2f}", i ? "," : "",
           shapes[i][0], shapes[i][1], shapes[i][2], g);
    fflush(stdout);
  }
  printf("],\"peak_gflops\":%.2f}\n", peak);
  return 0;
}
