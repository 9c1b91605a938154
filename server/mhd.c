/*
 * mhd.c — libmicrohttpd through dlopen (see mhd.h).
 */
#include "mhd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifndef LSMI_MHD_SONAME
#define LSMI_MHD_SONAME "libmicrohttpd.so.12"
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static lsmi_mhd_t lib;
static atomic_bool loaded;
static char load_error[256];

/* dlsym into *slot (a function pointer of any type): ISO C has no cast
 * from void * to a function pointer; POSIX guarantees the copy works. */
static bool resolve(void *handle, const char *name, void *slot, size_t size) {
  void *p = dlsym(handle, name);
  if (p == NULL)
    return false;
  memcpy(slot, &p, size);
  return true;
}

static void load(void) {
  void *h = dlopen(LSMI_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *e = dlerror();
    snprintf(load_error, sizeof load_error, "%s", e ? e : "dlopen failed");
    return;
  }
  lsmi_mhd_t l;
  memset(&l, 0, sizeof l);
  const char *missing = NULL;
#define RESOLVE(field, name)                                                   \
  if (missing == NULL && !resolve(h, name, &l.field, sizeof l.field))          \
  missing = name
  RESOLVE(start_daemon, "MHD_start_daemon");
  RESOLVE(stop_daemon, "MHD_stop_daemon");
  RESOLVE(get_daemon_info, "MHD_get_daemon_info");
  RESOLVE(get_connection_info, "MHD_get_connection_info");
  RESOLVE(lookup_connection_value, "MHD_lookup_connection_value");
  RESOLVE(create_response_from_buffer, "MHD_create_response_from_buffer");
  RESOLVE(add_response_header, "MHD_add_response_header");
  RESOLVE(queue_response, "MHD_queue_response");
  RESOLVE(destroy_response, "MHD_destroy_response");
#undef RESOLVE
  if (missing != NULL) {
    snprintf(load_error, sizeof load_error, "%s has no %s", LSMI_MHD_SONAME,
             missing);
    dlclose(h);
    return;
  }
  lib = l;
  atomic_store(&loaded, true);
}

const lsmi_mhd_t *lsmi_mhd(void) {
  pthread_once(&load_once, load);
  return atomic_load(&loaded) ? &lib : NULL;
}

const char *lsmi_mhd_error(void) {
  return load_error[0] != '\0' ? load_error : "not loaded";
}
