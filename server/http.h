/*
 * http.h — the REST API on libmicrohttpd. HTTP threads (the MHD thread
 * pool) parse and validate requests, stream uploads to disk, read the store
 * and hand new jobs to the scheduler; they never run a fit.
 */
#ifndef LSMI_HTTP_H
#define LSMI_HTTP_H

#include "config.h"
#include "lsmi.h"
#include "sched.h"
#include "store.h"

typedef struct lsmi_http lsmi_http_t;

/* cfg, store and sched are borrowed and must outlive the server. */
int lsmi_http_start(const lsmi_config_t *cfg, lsmi_store_t *store,
                    lsmi_sched_t *sched, lsmi_http_t **out, lsmi_error_t *err);
/* The bound port (useful with --listen HOST:0); the --ops-listen one (0
 * without); the API's connection limit as the open-files limit left it. */
int lsmi_http_port(const lsmi_http_t *h);
int lsmi_http_ops_port(const lsmi_http_t *h);
int lsmi_http_connection_limit(const lsmi_http_t *h);
/* Stops accepting and joins the HTTP threads; then frees. NULL is a no-op. */
void lsmi_http_stop(lsmi_http_t *h);

#endif
