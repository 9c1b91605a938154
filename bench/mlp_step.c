/*
 * mlp_step.c — the cost of one discriminator training step (core/mlp.c and
 * core/adam.c): forward of a 32-row batch, cross-entropy, backward and Adam,
 * for the input widths and class counts the benchmark cases use.
 *
 * The machine is shared and small, so every figure is thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID, read around a block of many steps, never around
 * one call: the clock read is a system call) and the best of several rounds
 * is kept, the round least disturbed by others. Each phase is also timed on
 * its own, in a loop that repeats only that phase, so the split adds up to
 * roughly the whole step.
 *
 * It runs lsmi_blas_setup() first, as the lsmi binary does when its
 * kernels are "blas", so that with --gemm blas the BLAS calls are timed on
 * the OpenBLAS kernels lsmi would use.
 *
 * Output: one line per shape,
 *   in=2 C=2 H=64 B=32 gemm=avx512: step 6.10 us (forward 1.9, ce 0.2,
 *   backward 3.2, adam 0.7)
 * Usage: mlp_step [--gemm NAME] [--rounds N] [in,C ...]
 *   default shapes 2,2 4,2 128,10 256,10.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adam.h"
#include "blas.h"
#include "gemm.h"
#include "mlp.h"
#include "rng.h"

enum { H = 64, B = 32 };

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bench {
  int in, C;
  size_t np;
  float *params, *grads, *m, *v, *acts, *scratch, *dlogits, *x, *saved;
  int32_t *y;
  lsmi_mlp_t net, grad;
  lsmi_mlp_acts_t a;
  lsmi_adam_t opt;
} bench_t;

/* Zeroed and on a cache line, as lsmi's fit lays out its blocks. */
static void *xcalloc(size_t n, size_t size) {
  size_t bytes = ((n ? n : 1) * size + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, bytes);
  if (p)
    memset(p, 0, bytes);
  if (!p) {
    fprintf(stderr, "mlp_step: out of memory\n");
    exit(1);
  }
  return p;
}

static void bench_init(bench_t *b, int in, int C) {
  b->in = in;
  b->C = C;
  b->np = lsmi_mlp_nparams(in, H, C);
  b->params = xcalloc(b->np, sizeof(float));
  b->saved = xcalloc(b->np, sizeof(float));
  b->grads = xcalloc(b->np, sizeof(float));
  b->m = xcalloc(b->np, sizeof(float));
  b->v = xcalloc(b->np, sizeof(float));
  b->acts = xcalloc(lsmi_mlp_nacts(H, C, B), sizeof(float));
  b->scratch = xcalloc(lsmi_mlp_nscratch(H, B), sizeof(float));
  b->dlogits = xcalloc((size_t)B * (size_t)C, sizeof(float));
  b->x = xcalloc((size_t)B * (size_t)in, sizeof(float));
  b->y = xcalloc(B, sizeof(int32_t));
  lsmi_mlp_bind(&b->net, b->params, in, H, C);
  lsmi_mlp_bind(&b->grad, b->grads, in, H, C);
  lsmi_mlp_acts_bind(&b->a, b->acts, H, C, B);
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, 1, LSMI_STREAM_MLP1);
  lsmi_mlp_init(&b->net, &rng);
  for (size_t i = 0; i < (size_t)B * (size_t)in; i++)
    b->x[i] = (float)lsmi_rng_normal(&rng);
  for (int r = 0; r < B; r++)
    b->y[r] = (int32_t)lsmi_rng_below(&rng, (uint64_t)C);
  memcpy(b->saved, b->params, b->np * sizeof(float));
  lsmi_adam_init(&b->opt, b->np, b->m, b->v);
}

static void bench_free(bench_t *b) {
  free(b->params);
  free(b->saved);
  free(b->grads);
  free(b->m);
  free(b->v);
  free(b->acts);
  free(b->scratch);
  free(b->dlogits);
  free(b->x);
  free(b->y);
}

enum { PH_STEP, PH_FORWARD, PH_CE, PH_BACKWARD, PH_ADAM, PH_N };
static const char *const phase_names[PH_N] = {"step", "forward", "ce",
                                              "backward", "adam"};

/* Runs `reps` repetitions of phase ph; the result is kept observable. */
static double run(bench_t *b, int ph, long reps) {
  double sink = 0.0;
  for (long r = 0; r < reps; r++) {
    switch (ph) {
    case PH_STEP:
      lsmi_mlp_forward(&b->net, &b->a, b->x, (size_t)b->in, B);
      sink += lsmi_ce_forward_backward(b->dlogits, b->a.logits, b->y, B, b->C);
      lsmi_mlp_backward(&b->net, &b->grad, b->scratch, &b->a, b->dlogits, b->x,
                        (size_t)b->in, B);
      lsmi_adam_begin(&b->opt, 1e-3);
      lsmi_adam_update(&b->opt, b->params, b->grads, 0, b->np);
      break;
    case PH_FORWARD:
      lsmi_mlp_forward(&b->net, &b->a, b->x, (size_t)b->in, B);
      break;
    case PH_CE:
      sink += lsmi_ce_forward_backward(b->dlogits, b->a.logits, b->y, B, b->C);
      break;
    case PH_BACKWARD:
      lsmi_mlp_backward(&b->net, &b->grad, b->scratch, &b->a, b->dlogits, b->x,
                        (size_t)b->in, B);
      break;
    case PH_ADAM:
      lsmi_adam_begin(&b->opt, 1e-3);
      lsmi_adam_update(&b->opt, b->params, b->grads, 0, b->np);
      break;
    }
  }
  return sink;
}

/* Best microseconds per repetition of phase ph over `rounds` rounds of
 * about 20 ms each. The parameters are restored afterwards so that every
 * phase sees the same network. */
static double time_phase(bench_t *b, int ph, int rounds) {
  run(b, PH_STEP, 50); /* warm caches, fill acts, dlogits and grads */
  long reps = 100;
  double t0 = cpu_now();
  run(b, ph, reps);
  double t = cpu_now() - t0;
  if (t > 0)
    reps = (long)((double)reps * 0.02 / t) + 1;
  double best = 1e30;
  volatile double sink = 0.0;
  for (int r = 0; r < rounds; r++) {
    t0 = cpu_now();
    sink += run(b, ph, reps);
    t = (cpu_now() - t0) / (double)reps * 1e6;
    if (t < best)
      best = t;
  }
  (void)sink;
  memcpy(b->params, b->saved, b->np * sizeof(float));
  return best;
}

int main(int argc, char **argv) {
  lsmi_blas_setup(argc, argv);
  int rounds = 7;
  static const int defaults[][2] = {{2, 2}, {4, 2}, {128, 10}, {256, 10}};
  int shapes[16][2], ns = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--gemm") == 0 && i + 1 < argc) {
      if (lsmi_gemm_select(argv[++i]) != 0) {
        fprintf(stderr, "mlp_step: no gemm implementation '%s' here\n",
                argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (ns < 16 &&
               sscanf(argv[i], "%d,%d", &shapes[ns][0], &shapes[ns][1]) == 2 &&
               shapes[ns][0] > 0 && shapes[ns][1] > 1) {
      ns++;
    } else {
      fprintf(stderr,
              "usage: mlp_step [--gemm NAME] [--rounds N] [in,C ...]\n");
      return 2;
    }
  }
  if (ns == 0) {
    ns = 4;
    memcpy(shapes, defaults, sizeof defaults);
  }
  for (int s = 0; s < ns; s++) {
    bench_t b;
    bench_init(&b, shapes[s][0], shapes[s][1]);
    double us[PH_N];
    for (int ph = 0; ph < PH_N; ph++)
      us[ph] = time_phase(&b, ph, rounds);
    printf("in=%d C=%d H=%d B=%d gemm=%s: %s %.2f us (", b.in, b.C, H, B,
           lsmi_gemm_name(), phase_names[0], us[0]);
    for (int ph = 1; ph < PH_N; ph++)
      printf("%s%s %.2f", ph > 1 ? ", " : "", phase_names[ph], us[ph]);
    printf(")\n");
    fflush(stdout);
    bench_free(&b);
  }
  return 0;
}
