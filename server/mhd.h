/*
 * mhd.h — libmicrohttpd, opened by the daemon only (internal).
 *
 * Only `lsmi serve` speaks HTTP, yet a binary linked with libmicrohttpd
 * pays for loading it, and for the TLS library it brings (GnuTLS and its
 * crypto libraries, whose constructors run at every start), in every
 * command, a measurable part of a short `lsmi fit`. So the library is
 * opened when the daemon starts (lsmi_http_start), and http.c calls it
 * through this table.
 */
#ifndef LSMI_MHD_H
#define LSMI_MHD_H

#include <microhttpd.h>

/* The entry points http.c uses, with the library's own prototypes. */
typedef struct lsmi_mhd {
  __typeof__(MHD_start_daemon) *start_daemon;
  __typeof__(MHD_stop_daemon) *stop_daemon;
  __typeof__(MHD_get_daemon_info) *get_daemon_info;
  __typeof__(MHD_get_connection_info) *get_connection_info;
  __typeof__(MHD_lookup_connection_value) *lookup_connection_value;
  __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
  __typeof__(MHD_add_response_header) *add_response_header;
  __typeof__(MHD_queue_response) *queue_response;
  __typeof__(MHD_destroy_response) *destroy_response;
  /* Streamed answers (exports, server-sent events) and the query's names: */
  __typeof__(MHD_create_response_from_callback) *create_response_from_callback;
  __typeof__(MHD_get_connection_values) *get_connection_values;
  __typeof__(MHD_suspend_connection) *suspend_connection;
  __typeof__(MHD_resume_connection) *resume_connection;
} lsmi_mhd_t;

/*
 * The library (LSMI_MHD_SONAME, by default "libmicrohttpd.so.12", Debian's
 * libmicrohttpd12), opened on the first call; NULL if it cannot be opened
 * or lacks an entry point, and lsmi_mhd_error() says why. Safe from any
 * thread; the library stays loaded until exit.
 */
const lsmi_mhd_t *lsmi_mhd(void);
const char *lsmi_mhd_error(void);

#endif
