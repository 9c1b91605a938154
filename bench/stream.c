/*
 * stream.c — the memory bandwidth this machine sustains, the other ceiling
 * of the KNIFE roofline (doc/roofline.md) beside sgemm_peak's GFLOP/s.
 *
 * Three kernels over float arrays, in the manner of McCalpin's STREAM:
 *   copy    c[i] = a[i]                 2 words per element
 *   triad   a[i] = b[i] + s c[i]        3 words
 *   update  a[i] = s a[i] + b[i]        3 words, every written line was
 *                                       read first (no write-allocate
 *                                       waste): the pattern of Adam, which
 *                                       reads p, m, v, g and writes p, m, v
 * Bytes are counted as STREAM counts them, the words the loop names; copy
 * and triad also cost the CPU a read of each written line (write-allocate),
 * which is not counted, so their figures understate the traffic by that.
 *
 * With T threads each thread runs the kernel over its own 1/T of the arrays
 * (first touched by that thread), between two barriers; the time is the
 * wall time of the slowest, best of the repetitions (the machine is shared:
 * the best repetition is the one least disturbed). The default arrays are
 * 128 MiB each, far larger than any last-level cache this code runs on.
 * --sweep also runs update on one thread over smaller working sets, to show
 * the caches' bandwidth (the KNIFE step at d <= 512 fits in them).
 *
 * Usage: stream [--mib MiB-per-array] [--reps N] [--threads T] [--sweep]
 * Output: one line per kernel and thread count, GB/s (1e9 bytes/s).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simd.h"

enum { MAX_THREADS = 8 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef enum { COPY, TRIAD, UPDATE } kernel_t;
static const char *const kernel_name[] = {"copy", "triad", "update"};
static const int kernel_words[] = {2, 3, 3};

typedef struct shared {
  float *a, *b, *c;
  size_t n; /* elements per array */
  int threads, reps;
  int inner; /* kernel runs per repetition (small arrays: many) */
  kernel_t kernel;
  pthread_barrier_t start, stop;
  double best; /* seconds of the best repetition (thread 0 writes it) */
} shared_t;

typedef struct worker {
  shared_t *s;
  int id;
} worker_t;

/* The three loops; restrict and -O3 make them plain vector loops, in an
 * AVX-512 clone where the CPU has it (simd.h), as lsmi's own loops are.
 * The copy is kept a loop (GCC would call memcpy, whose non-temporal
 * stores for large sizes are not what lsmi's loops do). */
LSMI_VECTOR_CLONES
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static void
run_kernel(kernel_t k, float *restrict a, float *restrict b, float *restrict c,
           size_t n) {
  const float s = 0.999f;
  switch (k) {
  case COPY:
    for (size_t i = 0; i < n; i++)
      c[i] = a[i];
    break;
  case TRIAD:
    for (size_t i = 0; i < n; i++)
      a[i] = b[i] + s * c[i];
    break;
  case UPDATE:
    for (size_t i = 0; i < n; i++)
      a[i] = s * a[i] + b[i];
    break;
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  shared_t *s = w->s;
  size_t per = s->n / (size_t)s->threads;
  size_t i0 = per * (size_t)w->id;
  size_t n = w->id == s->threads - 1 ? s->n - i0 : per;
  /* First touch by the thread that will use the pages. */
  for (size_t i = i0; i < i0 + n; i++) {
    s->a[i] = 1.0f;
    s->b[i] = 2.0f;
    s->c[i] = 0.5f;
  }
  for (int r = 0; r < s->reps + 1; r++) { /* repetition 0 warms up */
    pthread_barrier_wait(&s->start);
    double t0 = now();
    for (int i = 0; i < s->inner; i++)
      run_kernel(s->kernel, s->a + i0, s->b + i0, s->c + i0, n);
    pthread_barrier_wait(&s->stop);
    double t = (now() - t0) / (double)s->inner;
    if (w->id == 0 && r > 0 && t < s->best)
      s->best = t;
  }
  return NULL;
}

/* GB/s of kernel k over arrays of n floats, on T threads. */
static double measure(kernel_t k, size_t n, int T, int reps) {
  /* At least 2^24 elements per repetition, so that a repetition of a
   * cache-sized array is not mostly barrier and clock. */
  long inner = (long)(((size_t)1 << 24) / (n ? n : 1));
  shared_t s = {.n = n,
                .threads = T,
                .reps = reps,
                .inner = inner < 1 ? 1 : (int)inner,
                .kernel = k,
                .best = 1e30};
  s.a = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
  s.b = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
  s.c = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
  if (!s.a || !s.b || !s.c) {
    fprintf(stderr, "stream: out of memory\n");
    exit(1);
  }
  pthread_barrier_init(&s.start, NULL, (unsigned)T);
  pthread_barrier_init(&s.stop, NULL, (unsigned)T);
  pthread_t tid[MAX_THREADS];
  worker_t w[MAX_THREADS];
  for (int t = 0; t < T; t++) {
    w[t] = (worker_t){&s, t};
    if (t > 0 && pthread_create(&tid[t], NULL, worker_main, &w[t]) != 0) {
      fprintf(stderr, "stream: cannot start a thread\n");
      exit(1);
    }
  }
  worker_main(&w[0]);
  for (int t = 1; t < T; t++)
    pthread_join(tid[t], NULL);
  pthread_barrier_destroy(&s.start);
  pthread_barrier_destroy(&s.stop);
  free(s.a), free(s.b), free(s.c);
  return (double)kernel_words[k] * sizeof(float) * (double)n / s.best * 1e-9;
}

int main(int argc, char **argv) {
  double mib = 128.0;
  int reps = 10, threads = 0, sweep = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
      mib = atof(argv[++i]);
    else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--sweep") == 0)
      sweep = 1;
    else {
      fprintf(stderr, "usage: stream [--mib MiB-per-array] [--reps N] "
                      "[--threads T] [--sweep]\n");
      return 2;
    }
  }
  if (!(mib > 0.0) || reps < 1 || threads < 0 || threads > MAX_THREADS) {
    fprintf(stderr, "stream: bad arguments\n");
    return 2;
  }
  size_t n = (size_t)(mib * 1048576.0 / sizeof(float));
  printf("arrays %.0f MiB each, best of %d\n", mib, reps);
  for (int T = threads ? threads : 1; T <= (threads ? threads : 2); T++)
    for (int k = COPY; k <= UPDATE; k++)
      printf("%-6s %d thread%s %7.1f GB/s\n", kernel_name[k], T,
             T > 1 ? "s" : " ", measure((kernel_t)k, n, T, reps));
  if (sweep) {
    /* Working sets of the update kernel (a and b), one thread. */
    static const double kib[] = {96, 384, 768, 3072, 12288, 24576, 49152};
    for (size_t i = 0; i < sizeof kib / sizeof kib[0]; i++) {
      size_t m = (size_t)(kib[i] * 1024.0 / 2.0 / sizeof(float));
      printf("update 1 thread  working set %6.0f KiB %7.1f GB/s\n", kib[i],
             measure(UPDATE, m, 1, reps));
    }
  }
  return 0;
}
