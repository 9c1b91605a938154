/*
 * openblas.c — OpenBLAS through dlopen (see openblas.h).
 */
#include "openblas.h"
#include "dl.h"

#include <pthread.h>
#include <stdatomic.h>

#ifndef LSMI_OPENBLAS_SONAME
#define LSMI_OPENBLAS_SONAME "libopenblas.so.0"
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static lsmi_openblas_t lib;
static atomic_bool loaded;
static char load_error[256];

#define SYM(field, name, opt)                                                  \
  { name, &l.field, sizeof l.field, opt }

static void load(void) {
  lsmi_openblas_t l = {0};
  const lsmi_dl_sym_t syms[] = {
      SYM(sgemm, "cblas_sgemm", false),
      SYM(sdot, "cblas_sdot", false),
      SYM(get_corename, "openblas_get_corename", false),
      SYM(set_num_threads, "openblas_set_num_threads", false),
      SYM(get_num_threads, "openblas_get_num_threads", false),
      SYM(thread_shutdown, "blas_thread_shutdown_", true),
  };
  if (!lsmi_dl_open(LSMI_OPENBLAS_SONAME, syms, sizeof syms / sizeof syms[0],
                    load_error, sizeof load_error))
    return;
  /* One thread, the pool its constructor started stopped: idle, its
   * threads spin on sched_yield beside lsmi's own for a while. */
  l.set_num_threads(1);
  if (l.thread_shutdown != NULL)
    l.thread_shutdown();
  lib = l;
  atomic_store(&loaded, true);
}

const lsmi_openblas_t *lsmi_openblas(void) {
  pthread_once(&load_once, load);
  return atomic_load(&loaded) ? &lib : NULL;
}

const char *lsmi_openblas_error(void) {
  return load_error[0] != '\0' ? load_error : "not loaded";
}

bool lsmi_openblas_loaded(void) { return atomic_load(&loaded); }
