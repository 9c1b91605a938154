/*
 * mhd.c — libmicrohttpd through dlopen (see mhd.h).
 */
#include "mhd.h"
#include "dl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#ifndef LSMI_MHD_SONAME
#define LSMI_MHD_SONAME "libmicrohttpd.so.12"
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static lsmi_mhd_t lib;
static atomic_bool loaded;
static char load_error[256];

#define SYM(field, name)                                                       \
  { name, &l.field, sizeof l.field, false }

static void load(void) {
  lsmi_mhd_t l = {0};
  const lsmi_dl_sym_t syms[] = {
      SYM(start_daemon, "MHD_start_daemon"),
      SYM(stop_daemon, "MHD_stop_daemon"),
      SYM(get_daemon_info, "MHD_get_daemon_info"),
      SYM(get_connection_info, "MHD_get_connection_info"),
      SYM(lookup_connection_value, "MHD_lookup_connection_value"),
      SYM(create_response_from_buffer, "MHD_create_response_from_buffer"),
      SYM(add_response_header, "MHD_add_response_header"),
      SYM(queue_response, "MHD_queue_response"),
      SYM(destroy_response, "MHD_destroy_response"),
      SYM(create_response_from_callback, "MHD_create_response_from_callback"),
      SYM(get_connection_values, "MHD_get_connection_values"),
      SYM(suspend_connection, "MHD_suspend_connection"),
      SYM(resume_connection, "MHD_resume_connection"),
  };
  if (!lsmi_dl_open(LSMI_MHD_SONAME, syms, sizeof syms / sizeof syms[0],
                    load_error, sizeof load_error))
    return;
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
