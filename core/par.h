/*
 * par.h — independent pieces of one computation, for whatever threads a
 * caller can lend (internal).
 *
 * A kernel that can cut its work into n pieces, none of which reads what
 * another writes, hands them to lsmi_par_run. With no runner the pieces
 * run on the calling thread, in order; with one, on the threads the runner
 * has (lsmi_fit lends a pool thread that has nothing of its own left to
 * do: core/estimate.c). Each piece computes the same values wherever it
 * runs, so the results are the same bits whichever thread runs which
 * piece, and with any number of threads. The KNIFE step and evaluation
 * (knife.h) cut their work by mixture component.
 */
#ifndef LSMI_PAR_H
#define LSMI_PAR_H

typedef void (*lsmi_par_fn)(void *arg, int i);

typedef struct lsmi_par {
  /* Calls fn(arg, i) exactly once for every i in [0, n), on any threads
   * and in any order, and returns when all have returned, with their
   * writes visible to the caller. */
  void (*run)(void *ctx, int n, lsmi_par_fn fn, void *arg);
  void *ctx; /* borrowed */
} lsmi_par_t;

/* fn(arg, i) for i in [0, n) through par (borrowed; NULL: here, in order). */
static inline void lsmi_par_run(const lsmi_par_t *par, int n, lsmi_par_fn fn,
                                void *arg) {
  if (par == 0 || n <= 1) {
    for (int i = 0; i < n; i++)
      fn(arg, i);
    return;
  }
  par->run(par->ctx, n, fn, arg);
}

#endif
