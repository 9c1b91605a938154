/*
 * openblas.h — OpenBLAS, loaded when first needed (internal).
 *
 * lsmi's own kernels (gemm.h) do every product on a CPU with AVX-512F, so
 * there the library is never loaded: linking it cost every start of the
 * binary about 2.6 ms (its relocations, and the thread pool its constructor
 * starts), a tenth of a whole demo fit. The "blas" kernels, and the kernel
 * checks of server/blas.h, reach it through lsmi_openblas(), which opens it
 * on the first call. The library reads OPENBLAS_CORETYPE as it loads, so a
 * process that sets that variable before its first call (server/blas.c
 * does it through a re-exec) gets those kernels.
 */
#ifndef LSMI_OPENBLAS_H
#define LSMI_OPENBLAS_H

#include <stdbool.h>

#include <cblas.h>

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

#endif
