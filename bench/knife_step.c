/*
 * knife_step.c — the cost of one KNIFE training step and of the evaluation,
 * per call, on one thread.
 *
 * For each d it times lsmi_knife_loss_backward on successive 32-row batches
 * and, separately, the Adam step over the KNIFE parameters (lsmi_adam_begin
 * and lsmi_knife_adam_update); then the step in those three calls, one
 * after the other as a fit made them before lsmi_knife_train_step
 * ("3-call step"); then the fused step (lsmi_knife_train_step, which the
 * fit runs); then lsmi_knife_logpdf on 1024-row blocks.
 * The clock is the thread's CPU time (the machine is shared: wall time would
 * count other people's work), read around many calls, never around one (the
 * read is a system call), and the best of several rounds is kept.
 *
 * With --peak GFLOPS --bw GBPS (one core's sgemm peak, bench/sgemm_peak.c,
 * and its memory bandwidth, bench/stream.c) each d gets a second line, the
 * roofline of doc/roofline.md: the step's FLOPs and its bytes to and from
 * memory as the code moves them, before (3-call) and after (fused), the
 * bound max(FLOPs / peak, bytes / bandwidth) and the fraction of it each
 * achieves (bound / measured time).
 *
 * With --split each d gets a third line: the fused step and the 1024-row
 * logpdf with their components spread over this thread and a second one
 * (core/par.h), against the same on this thread alone, both by the wall
 * clock (the best round: the one the other processes disturbed least).
 * The second thread spins between pieces, so this is the split's best
 * case, what lsmi_fit_split could give on a machine of its own.
 *
 * Usage: knife_step [--gemm NAME] [--rounds N] [--peak G --bw B] [--split]
 * [d ...] (default d: 2 10 128 256 512 768). Output: one line per d,
 * microseconds per call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "gemm.h"
#include "knife.h"
#include "par.h"
#include "rng.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { K = 5, B = 32, ROWS = 4096, EVAL = 1024 };

/*
 * --split's second thread. A post's word packs its generation, piece count
 * and next piece (gen << 32 | n << 16 | next), so a claim (a compare-and-
 * swap on it) only succeeds on a post whose pieces are not all claimed,
 * that is while its poster waits: fn and arg, written before the word,
 * are that post's (core/estimate.c's board, without the sleeping).
 */
static struct {
  _Alignas(64) _Atomic uint64_t word;
  atomic_int done; /* pieces the second thread finished */
  atomic_bool quit;
  lsmi_par_fn fn;
  void *arg;
} spin;

static int spin_claim(void) {
  uint64_t w = atomic_load(&spin.word);
  for (;;) {
    if ((w & 0xffff) >= ((w >> 16) & 0xffff))
      return -1;
    if (atomic_compare_exchange_weak(&spin.word, &w, w + 1))
      return (int)(w & 0xffff);
  }
}

static void *spin_main(void *unused) {
  (void)unused;
  while (!atomic_load(&spin.quit)) {
    int i = spin_claim();
    if (i < 0)
      continue;
    spin.fn(spin.arg, i);
    atomic_fetch_add(&spin.done, 1);
  }
  return NULL;
}

/* lsmi_par_t's run: posts the pieces, runs those the other thread does not
 * claim, waits for the ones it did. */
static void spin_run(void *ctx, int n, lsmi_par_fn fn, void *arg) {
  (void)ctx;
  spin.fn = fn;
  spin.arg = arg;
  atomic_store(&spin.done, 0);
  uint64_t gen = (atomic_load(&spin.word) >> 32) + 1;
  atomic_store(&spin.word, gen << 32 | (uint64_t)n << 16);
  int mine = 0;
  for (int i; (i = spin_claim()) >= 0; mine++)
    fn(arg, i);
  while (atomic_load(&spin.done) < n - mine)
    ;
}

static const lsmi_par_t spin_par = {.run = spin_run};

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

/* One core's ceilings (--peak, --bw); 0 when not given. */
static double peak, bw;

/*
 * The roofline model of a training step (doc/roofline.md) at dimension d,
 * K components, batch B, as the code does the work.
 *
 * FLOPs, the same before and after (the fused step does the same
 * arithmetic): the forward product B·d(d-1) per component (strictly lower
 * d × d factor times a (d, B) block, 2 flops a multiply-add); the backward
 * product 2B(d(d-1)/2 + 2d) (the strictly lower part, the diagonal and the
 * column of u); the column sums r and v, 4 per strictly lower element;
 * Adam, 11 per element (2 moments, 2 flushes, a square root, a division,
 * the step); and the elementwise work on (d, B) blocks, 7 dB (centering,
 * scaling, ‖z‖², the backward's A').
 *
 * Bytes to and from memory, counting the factor-sized arrays only (the
 * batch, z and the scratch blocks stay in L2): T = the lines of the lower
 * triangles of the K factors, 4 K d(d+1)/2 bytes. Before: the forward
 * reads L (T); the backward reads L again (T) and writes the whole dL, d × d
 * (2T, and as much again read for ownership: 4T); Adam reads L, dL, m, v
 * and writes L, m, v (7T): 13 T. After: the forward reads L (T), the fused
 * backward reads and writes L, m, v once (6T): 7 T. At d <= 256 all of it
 * stays in L2/L3 between steps, and the memory term is an upper bound.
 */
typedef struct roofline {
  double flops, bytes_before, bytes_after;
} roofline_t;

static roofline_t roofline(int d) {
  double dd = (double)d, lower = dd * (dd - 1.0) / 2.0;
  double per = (double)B * dd * (dd - 1.0)                  /* forward */
               + 2.0 * B * (lower + 2.0 * dd)               /* backward */
               + 4.0 * lower + 11.0 * lower + 7.0 * dd * B; /* r v, Adam */
  double T = 4.0 * K * dd * (dd + 1.0) / 2.0;
  return (roofline_t){K * per, 13.0 * T, 7.0 * T};
}

/* --split: wall µs of the fused step and of a 1024-row logpdf with par
 * (NULL: this thread alone), the best of rounds. */
static void time_par(const lsmi_knife_t *k, lsmi_knife_t *g, lsmi_adam_t *a,
                     float *scratch, const float *x, double *logp, int rounds,
                     const lsmi_par_t *par, double *step, double *eval) {
  int d = k->d;
  volatile double sink = 0.0;
  long calls = 4, ecalls = 2;
  *step = *eval = 1e30;
  for (int r = 0; r < rounds + 1; r++) {
    double t0 = wall_now();
    for (long i = 0; i < calls; i++) {
      size_t row = (size_t)(i * B) % (ROWS - B + 1);
      sink += lsmi_knife_train_step(k, g, a, 1e-6, scratch, x + row * (size_t)d,
                                    (size_t)d, B, par);
    }
    double t1 = wall_now();
    for (long i = 0; i < ecalls; i++) {
      size_t row = (size_t)(i * EVAL) % (size_t)(ROWS - EVAL + 1);
      lsmi_knife_logpdf(k, logp, scratch, x + row * (size_t)d, (size_t)d, EVAL,
                        par);
      sink += logp[0];
    }
    double t2 = wall_now();
    double ts = (t1 - t0) / (double)calls, te = (t2 - t1) / (double)ecalls;
    if (r > 0) {
      *step = ts < *step ? ts : *step;
      *eval = te < *eval ? te : *eval;
    }
    calls = calls_for(ts);
    ecalls = calls_for(te);
  }
  (void)sink;
}

static int split;

static void bench_d(int d, int rounds) {
  size_t np = lsmi_knife_nparams(d, K);
  float *params = line_alloc(np * sizeof(float));
  float *grads = line_alloc(np * sizeof(float));
  float *m = line_alloc(np * sizeof(float)),
        *v = line_alloc(np * sizeof(float));
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
  double best_step = 1e30;
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
                                    x + row * (size_t)d, (size_t)d, B, NULL);
    }
    double t3 = cpu_now();
    for (long i = 0; i < calls; i++) {
      size_t row = (size_t)(i * B) % (ROWS - B + 1);
      sink += lsmi_knife_loss_backward(&k, &g, scratch, x + row * (size_t)d,
                                       (size_t)d, B);
      lsmi_adam_begin(&adam, 1e-6);
      lsmi_knife_adam_update(&k, &g, &adam);
    }
    double t4 = cpu_now();
    if (r > 0) {
      double tf = (t3 - t2) / (double)calls, ts = (t4 - t3) / (double)calls;
      best_fused = tf < best_fused ? tf : best_fused;
      best_step = ts < best_step ? ts : best_step;
      best_lb = (t1 - t0) / (double)calls < best_lb ? (t1 - t0) / (double)calls
                                                    : best_lb;
      best_adam = (t2 - t1) / (double)calls < best_adam
                      ? (t2 - t1) / (double)calls
                      : best_adam;
    }
    calls = calls_for((t4 - t0) / (double)calls);
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
                          rows, NULL);
        sink += logp[0];
      }
      double t = (cpu_now() - t0) / (double)ecalls;
      if (r > 0 && t < *best)
        *best = t;
      ecalls = calls_for(t);
    }
  }
  printf("d=%-4d K=%d B=%d  loss+backward %8.2f us (forward %7.2f)  adam "
         "%7.2f us  3-call step %8.2f us  fused step %8.2f us  logpdf(%d "
         "rows) %8.1f us = %6.2f Mrows/s\n",
         d, K, B, 1e6 * best_lb, 1e6 * best_fwd, 1e6 * best_adam,
         1e6 * best_step, 1e6 * best_fused, EVAL, 1e6 * best_eval,
         (double)EVAL / best_eval * 1e-6);
  if (peak > 0.0 && bw > 0.0) {
    roofline_t rf = roofline(d);
    double tf = rf.flops / (peak * 1e9);
    double bb = rf.bytes_before / (bw * 1e9), ba = rf.bytes_after / (bw * 1e9);
    double bound_b = tf > bb ? tf : bb, bound_a = tf > ba ? tf : ba;
    printf("  roofline d=%-4d %7.1f MFLOP/step (%.0f us at %.0f GFLOP/s); "
           "bytes/step %6.1f MB before, %6.1f MB after (%.0f, %.0f us at "
           "%.0f GB/s); bound %.0f us before, %.0f us after; achieved %.0f%% "
           "before, %.0f%% after\n",
           d, rf.flops * 1e-6, 1e6 * tf, peak, rf.bytes_before * 1e-6,
           rf.bytes_after * 1e-6, 1e6 * bb, 1e6 * ba, bw, 1e6 * bound_b,
           1e6 * bound_a, 100.0 * bound_b / best_step,
           100.0 * bound_a / best_fused);
  }
  if (split) {
    double s1, e1, s2, e2;
    time_par(&k, &g, &adam2, scratch, x, logp, rounds, NULL, &s1, &e1);
    /* the second thread only now, so that it spins during no other timing */
    pthread_t helper;
    atomic_store(&spin.quit, false);
    if (pthread_create(&helper, NULL, spin_main, NULL) != 0) {
      fprintf(stderr, "knife_step: no second thread\n");
      exit(1);
    }
    time_par(&k, &g, &adam2, scratch, x, logp, rounds, &spin_par, &s2, &e2);
    atomic_store(&spin.quit, true);
    pthread_join(helper, NULL);
    printf("  split d=%-4d wall, one thread -> two: fused step %8.2f -> %8.2f "
           "us (%.2fx)  logpdf(%d rows) %8.1f -> %8.1f us (%.2fx)\n",
           d, 1e6 * s1, 1e6 * s2, s1 / s2, EVAL, 1e6 * e1, 1e6 * e2, e1 / e2);
  }
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
    } else if (strcmp(argv[i], "--peak") == 0 && i + 1 < argc) {
      peak = atof(argv[++i]);
    } else if (strcmp(argv[i], "--bw") == 0 && i + 1 < argc) {
      bw = atof(argv[++i]);
    } else if (strcmp(argv[i], "--split") == 0) {
      split = 1;
    } else if (nd < 16 && atoi(argv[i]) > 0) {
      ds[nd++] = atoi(argv[i]);
    } else {
      fprintf(stderr, "usage: knife_step [--gemm NAME] [--rounds N] "
                      "[--peak GFLOPS --bw GBPS] [--split] [d ...]\n");
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
