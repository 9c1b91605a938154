/*
 * blas.h — choosing, checking and logging the OpenBLAS kernels lsmi runs on.
 *
 * Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH: it picks its kernels
 * once, when the library loads, from the CPU it recognises. On CPUs newer
 * than the release it may not recognise the model and fall back to its
 * generic SSE3 ("Prescott") kernels, several times slower than the AVX-512
 * ("SkylakeX") or AVX2 ("Haswell") ones the CPU could run (the measured
 * rates are in doc/performance.md). The only way to change the choice is
 * the OPENBLAS_CORETYPE environment variable, read when the library loads.
 * lsmi opens the library only when its products go through it (the "blas"
 * kernels, lsmi_openblas() below; with lsmi's own
 * kernels it is never loaded); then lsmi_blas_setup() opens it, decides, and if
 * the choice must change sets the variable and re-executes the binary
 * (/proc/self/exe) with the same arguments before any other work is done. It
 * then checks the kernels in use on products whose exact results are known, and
 * falls back to the generic kernels once if they compute wrong numbers or raise
 * SIGILL.
 *
 * Operators steer it with LSMI_BLAS_CORETYPE:
 *   unset or "auto"  lsmi replaces a generic or older choice of OpenBLAS by
 *                    the best one the CPU supports (SkylakeX, Haswell);
 *   "off"            OpenBLAS is left alone (its own choice, or whatever
 *                    OPENBLAS_CORETYPE says);
 *   a core name      that kernel set (OpenBLAS's name, any case), unless the
 *                    CPU lacks the instructions it needs.
 * A user who set OPENBLAS_CORETYPE themselves is obeyed in auto mode.
 *
 * OpenBLAS threading is set to one thread: lsmi parallelises across its five
 * models itself, and BLAS threads on top would oversubscribe the cores a fit
 * was given. The calls are pinned with openblas_set_num_threads(1); the pool
 * OpenBLAS starts when it loads is sized by OPENBLAS_NUM_THREADS, so when
 * that is unset the same re-exec sets it to 1 (an operator's value is kept).
 *
 * The decision and the verification are pure functions of their inputs,
 * exposed here so that tests/core/test_blas.c can drive them without
 * re-executing anything.
 *
 * This file is also the one place the library itself is opened: lsmi's own
 * kernels (gemm.h) do every product on a CPU with AVX-512F, so there it is
 * never loaded; the "blas" kernels and the checks above reach it through
 * lsmi_openblas(), which opens it on the first call. The library reads
 * OPENBLAS_CORETYPE as it loads, so a process that sets that variable
 * before its first call (lsmi_blas_setup does it through a re-exec) gets
 * those kernels.
 */
#ifndef LSMI_BLAS_H
#define LSMI_BLAS_H

#include <stdbool.h>
#include <stddef.h>

#include <cblas.h>

#include "lsmi.h" /* lsmi_blas_setup and the other calls main() makes */

/* ---- the library, opened on first use ---------------------------------- */

/* The entry points lsmi uses, with OpenBLAS's own prototypes. */
typedef struct lsmi_openblas {
  __typeof__(cblas_sgemm) *sgemm;
  __typeof__(cblas_sdot) *sdot;
  __typeof__(openblas_get_corename) *get_corename;
  __typeof__(openblas_set_num_threads) *set_num_threads;
  __typeof__(openblas_get_num_threads) *get_num_threads;
  /* OpenBLAS's pthreads build stops its pool with this (its fork handler
   * does); NULL in builds without it (OpenMP, serial). */
  int (*thread_shutdown)(void);
} lsmi_openblas_t;

/*
 * The library, opened on the first call (LSMI_OPENBLAS_SONAME, by default
 * "libopenblas.so.0", which Debian's libopenblas0 provides) and pinned at
 * once to one thread, its pool stopped: lsmi runs its own threads. NULL if
 * it cannot be opened or lacks an entry point; lsmi_openblas_error() then
 * says why. Safe from any thread; the library stays loaded until exit.
 */
const lsmi_openblas_t *lsmi_openblas(void);
const char *lsmi_openblas_error(void);

/* Whether an earlier call opened the library (never opens it). */
bool lsmi_openblas_loaded(void);

/* ---- the pure parts, exposed for the tests ------------------------------ */

/* CPU feature bits, as lsmi_blas_cpu_features() reports them. */
enum {
  LSMI_BLAS_CPU_AVX = 1u << 0,
  LSMI_BLAS_CPU_AVX2 = 1u << 1,
  LSMI_BLAS_CPU_FMA = 1u << 2,
  LSMI_BLAS_CPU_AVX512F = 1u << 3,
  LSMI_BLAS_CPU_AVX512BW = 1u << 4,
  LSMI_BLAS_CPU_AVX512VL = 1u << 5,
  LSMI_BLAS_CPU_AVX512DQ = 1u << 6
};

/*
 * Instruction-set tiers, in the order OpenBLAS's kernels improve:
 * 0 SSE (generic), 1 AVX, 2 AVX2 + FMA, 3 AVX-512 (F, BW, VL, DQ).
 */
enum {
  LSMI_BLAS_TIER_SSE = 0,
  LSMI_BLAS_TIER_AVX = 1,
  LSMI_BLAS_TIER_AVX2 = 2,
  LSMI_BLAS_TIER_AVX512 = 3
};

/* This CPU's features (cpuid, with the OS's register support checked). */
unsigned lsmi_blas_cpu_features(void);

/* The tier a set of feature bits allows. */
int lsmi_blas_cpu_tier(unsigned features);

/*
 * The tier an OpenBLAS core name needs (case-insensitive), or -1 for a name
 * lsmi does not know.
 */
int lsmi_blas_core_tier(const char *corename);

/* The environment the decision reads; NULL means unset. */
typedef struct lsmi_blas_env {
  const char *openblas_coretype;    /* OPENBLAS_CORETYPE */
  const char *openblas_num_threads; /* OPENBLAS_NUM_THREADS */
  const char *lsmi_coretype;        /* LSMI_BLAS_CORETYPE */
  const char *stage; /* LSMI_BLAS_STAGE: set by lsmi on re-exec */
} lsmi_blas_env_t;

typedef enum lsmi_blas_action {
  LSMI_BLAS_KEEP = 0,  /* go on with the library as loaded */
  LSMI_BLAS_REEXEC = 1 /* set the variables below, mark stage, exec */
} lsmi_blas_action_t;

typedef struct lsmi_blas_decision {
  lsmi_blas_action_t action;
  char coretype[32];  /* REEXEC: OPENBLAS_CORETYPE; "" leaves it alone */
  bool set_threads;   /* REEXEC: set OPENBLAS_NUM_THREADS=1 */
  const char *source; /* see lsmi_blas_source(); static string */
  const char *stage;  /* REEXEC: the LSMI_BLAS_STAGE marker to set */
  bool warn;          /* the operator asked for something refused */
  const char *reason; /* one static sentence for the log */
} lsmi_blas_decision_t;

/*
 * The kernel choice, from the CPU's feature bits, the core OpenBLAS loaded
 * (`corename`, borrowed) and the environment (borrowed); a re-exec for the
 * kernels also sizes OpenBLAS's pool to one (OPENBLAS_NUM_THREADS unset).
 * Never re-executes twice: a set stage always gives KEEP. Fills *out.
 */
void lsmi_blas_decide(unsigned cpu_features, const char *corename,
                      const lsmi_blas_env_t *env, lsmi_blas_decision_t *out);

/*
 * What to do after verification: KEEP when `verified`; otherwise REEXEC
 * with the generic "Prescott" kernels, unless this process already is the
 * fallback (stage "fallback") or already runs Prescott, when it is KEEP with
 * warn set (there is nothing safer left to try). Fills *out.
 */
void lsmi_blas_decide_fallback(bool verified, const char *corename,
                               const char *stage, lsmi_blas_decision_t *out);

/*
 * The two kernels the verification exercises, in a shape that tests can
 * fake. sgemm is row-major: C = alpha op(A) op(B) + beta C.
 */
typedef struct lsmi_blas_kernels {
  void (*sgemm)(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta,
                float *c, int ldc);
  float (*sdot)(int n, const float *x, const float *y);
} lsmi_blas_kernels_t;

/* The OpenBLAS (CBLAS) kernels in that shape. */
const lsmi_blas_kernels_t *lsmi_blas_openblas_kernels(void);

/*
 * Runs sgemm (small and blocked sizes, both transposes, alpha and beta) and
 * sdot on inputs whose products are exact in float, and compares every
 * element with a naive double computation. A SIGILL raised inside the
 * kernels counts as a failure (the handler is restored afterwards). Returns
 * true when all match; otherwise writes what differed into why (may be
 * NULL) and returns false. k is borrowed.
 */
bool lsmi_blas_verify(const lsmi_blas_kernels_t *k, char *why, size_t why_len);

#endif /* LSMI_BLAS_H */
