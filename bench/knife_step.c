/*
 * knife_step.c — the cost of one KNIFE training step and of the evaluation,
 * per call, on one thread.
 *
 * For each d it times lsmi_knife_loss_backward on successive 32-row batches
 * and, separately, the Adam step over the KNIFE parameters (lsmi_adam_begin
 * and lsmi_knife_adam_update): the step in three calls; then the same step
 * fused (lsmi_knife_train_step), which the fit runs; then
 * lsmi_knife_logpdf on 1024-row blocks.
 * The clock is the thread's CPU time (the machine is shared: wall time would
 * count other people's work), read around many calls, never around one (the
 * read is a system call), and the best of several rounds is kept.
 *
 * Usage: knife_step [--gemm NAME] [--rounds N] [d ...]   (default d: 2 10 128
 * 256 512 768). Output: one line per d, microseconds per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "gemm.h"
#include "knife.h"
#include "rng.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { K = 5, B = 32, ROWS = 4096, EVAL = 1024 };

/* Calls per round so that a round takes about 50 ms at the given cost. */
static long calls_for(double seconds_per_call) {
  long n = (long)(0.05 / seconds_per_call);
  return n < 4 ? 4 : n;
}

/* On a cache line, as lsmi's fit lays out its blocks (a large malloc is
 * 16 bytes past a page boundary, which splits every vector access). */
static void *line_alloc(size_t bytes) {
  return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static void bench_d(int d, int rounds) {
  size_t np = lsmi_knife_nparams(d, K);
  float *params = line_alloc(np * sizeof(float));
  float *grads = line_alloc(np * sizeof(float));
  float *m = line_alloc(np * sizeof(float)), *v = line_alloc(np * sizeof(float));
  /* The fused step keeps the factors' moments in its own layout (knife.h):
   * moments of its own. */
  float *m2 = line_alloc(np * sizeof(float));
  float *v2 = line_alloc(np * sizeof(float));
  float *scratch = line_alloc(lsmi_knife_nscratch(d, K, EVAL) * sizeof(float));
  float *x = line_alloc((size_t)ROWS * (size_t)d * sizeof(float));
  double *logp = line_alloc(EVAL * sizeof(double));
  if (!params || !grads || !m || !v || !m2 || !v2 || !scratch || !x || !logp) {
    fprintf(stderr, "knife_step: out of memory\n");
    exit(1);
  }
  lsmi_knife_t k, g;
  lsmi_knife_bind(&k, params, d, K);
  lsmi_knife_bind(&g, grads, d, K);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 1, 2);
  lsmi_knife_init(&k, &rng);
  /* Rows near the components, as after a few epochs of training. */
  for (int n = 0; n < ROWS; n++)
    for (int j = 0; j < d; j++)
      x[(size_t)n * (size_t)d + (size_t)j] =
          k.means[(size_t)(n % K) * (size_t)d + (size_t)j] +
          0.3f * (float)lsmi_rng_normal(&rng);
  lsmi_adam_t adam, adam2;
  lsmi_adam_init(&adam, np, m, v);
  lsmi_adam_init(&adam2, np, m2, v2);

  double best_lb = 1e30, best_adam = 1e30, best_eval = 1e30, best_fused = 1e30;
  volatile double sink = 0.0;
  long calls = 4;
  for (int r = 0; r < rounds + 1; r++) { /* round 0 is the warm-up */
    double t0 = cpu_now();
    for (long i = 0; i < calls; i++) {
      size_t row = (size_t)(i * B) % (ROWS - B + 1);
      sink += lsmi_knife_loss_backward(&k, &g, scratch, x + row * (size_t)d,
                                       (size_t)d, B);
    }
    double t1 = cpu_now();
    for (long i = 0; i < calls; i++) {
      lsmi_adam_begin(&adam, 1e-6); /* tiny lr: the model stays put */
      lsmi_knife_adam_update(&k, &g, &adam);
    }
    double t2 = cpu_now();
    for (long i = 0; i < calls; i++) {
      size_t row = (size_t)(i * B) % (ROWS - B + 1);
      sink += lsmi_knife_train_step(&k, &g, &adam2, 1e-6, scratch,
                                    x + row * (size_t)d, (size_t)d, B);
    }
    double t3 = cpu_now();
    if (r > 0) {
      double tf = (t3 - t2) / (double)calls;
      best_fused = tf < best_fused ? tf : best_fused;
      best_lb = (t1 - t0) / (double)calls < best_lb ? (t1 - t0) / (double)calls
                                                    : best_lb;
      best_adam = (t2 - t1) / (double)calls < best_adam
                      ? (t2 - t1) / (double)calls
                      : best_adam;
    }
    calls = calls_for((t3 - t0) / (double)calls);
  }
  /* logpdf of one batch (the forward alone), then of evaluation blocks. */
  double best_fwd = 1e30;
  for (int rows = B; rows <= EVAL; rows += EVAL - B) {
    double *best = rows == B ? &best_fwd : &best_eval;
    long ecalls = 2;
    for (int r = 0; r < rounds + 1; r++) {
      double t0 = cpu_now();
      for (long i = 0; i < ecalls; i++) {
        size_t row = (size_t)(i * rows) % (size_t)(ROWS - rows + 1);
        lsmi_knife_logpdf(&k, logp, scratch, x + row * (size_t)d, (size_t)d,
                          rows);
        sink += logp[0];
      }
      double t = (cpu_now() - t0) / (double)ecalls;
      if (r > 0 && t < *best)
        *best = t;
      ecalls = calls_for(t);
    }
  }
  printf("d=%-4d K=%d B=%d  loss+backward %8.2f us (forward %7.2f)  adam "
         "%7.2f us  step %8.2f us  fused step %8.2f us  logpdf(%d rows) "
         "%8.1f us = %6.2f Mrows/s\n",
         d, K, B, 1e6 * best_lb, 1e6 * best_fwd, 1e6 * best_adam,
         1e6 * (best_lb + best_adam), 1e6 * best_fused, EVAL, 1e6 * best_eval,
         (double)EVAL / best_eval * 1e-6);
  (void)sink;
  free(params), free(grads), free(m), free(v), free(m2), free(v2);
  free(scratch), free(x);
  free(logp);
}

int main(int argc, char **argv) {
  int rounds = 5, nd = 0, ds[16];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--gemm") == 0 && i + 1 < argc) {
      if (lsmi_gemm_select(argv[++i]) != 0) {
        fprintf(stderr, "knife_step: no gemm named %s here\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (nd < 16 && atoi(argv[i]) > 0) {
      ds[nd++] = atoi(argv[i]);
    } else {
      fprintf(stderr, "usage: knife_step [--gemm NAME] [--rounds N] [d ...]\n");
      return 2;
    }
  }
  if (nd == 0) {
    static const int def[] = {2, 10, 128, 256, 512, 768};
    for (nd = 0; nd < 6; nd++)
      ds[nd] = def[nd];
  }
  printf("gemm: %s\n", lsmi_gemm_name());
  for (int i = 0; i < nd; i++)
    bench_d(ds[i], rounds < 1 ? 1 : rounds);
  return 0;
}
