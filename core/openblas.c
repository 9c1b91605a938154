/*
 * openblas.c — OpenBLAS through dlopen (see openblas.h).
 */
#include "openblas.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#ifndef LSMI_OPENBLAS_SONAME
#define LSMI_OPENBLAS_SONAME "libopenblas.so.0"
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static lsmi_openblas_t lib;
static atomic_bool loaded;
static char load_error[256];

/* dlsym into *slot (a function pointer, of any type): ISO C has no cast
 * from void * to a function pointer, POSIX guarantees the copy works. */
static bool resolve(void *handle, const char *name, void *slot, size_t size) {
  void *p = dlsym(handle, name);
  if (p == NULL)
    return false;
  memcpy(slot, &p, size);
  return true;
}

static void load(void) {
  void *h = dlopen(LSMI_OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *e = dlerror();
    snprintf(load_error, sizeof load_error, "%s", e ? e : "dlopen failed");
    return;
  }
  lsmi_openblas_t l = {0};
  const char *missing = NULL;
#define RESOLVE(field, name)                                                   \
  if (missing == NULL && !resolve(h, name, &l.field, sizeof l.field))          \
  missing = name
  RESOLVE(sgemm, "cblas_sgemm");
  RESOLVE(sdot, "cblas_sdot");
  RESOLVE(get_corename, "openblas_get_corename");
  RESOLVE(set_num_threads, "openblas_set_num_threads");
  RESOLVE(get_num_threads, "openblas_get_num_threads");
#undef RESOLVE
  if (missing != NULL) {
    snprintf(load_error, sizeof load_error, "%s has no %s",
             LSMI_OPENBLAS_SONAME, missing);
    dlclose(h);
    return;
  }
  (void)resolve(h, "blas_thread_shutdown_", &l.thread_shutdown,
                sizeof l.thread_shutdown); /* optional */
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
