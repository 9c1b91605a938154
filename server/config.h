/*
 * config.h — the daemon's configuration: every option is a flag and an
 * LSMI_* environment variable with a default; the flag wins over the
 * variable, the variable over the default. `lsmi serve --help` prints the
 * same table this module parses from, so the two cannot drift apart.
 *
 * A lsmi_config_t is filled once on the main thread before any other thread
 * starts and is read-only afterwards, so every thread may read it freely;
 * only the set of tokens it points to is replaced by a reload, under that
 * set's own lock.
 */
#ifndef LSMI_CONFIG_H
#define LSMI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lsmi_io.h"
#include "tokens.h"

typedef struct lsmi_config {
  char *listen; /* "host:port" */
  char *data_dir;
  char *store;           /* "": SQLite in data_dir; else a PostgreSQL DSN */
  char *store_direct;    /* cluster mode: the DSN of session work ("": store) */
  int lease_seconds;     /* cluster mode: how long a claim holds */
  char *node;            /* cluster mode: this node's name (derived when "") */
  int store_connections; /* cluster mode: the pool's size (0: derived) */
  uint64_t cache_bytes;  /* cluster mode: the caches' bound (0: none) */
  int workers;           /* jobs running at once */
  int queue_size;        /* queued (not running) jobs accepted at most */
  int http_threads;      /* libmicrohttpd thread pool */
  char *tokens_file;
  char *cors_origins; /* comma list, "*" for any */
  uint64_t max_upload;
  uint64_t max_body;
  uint64_t page_limit;
  int retry_after;
  int shutdown_timeout;
  int connection_timeout;
  int header_timeout;     /* seconds for a request's head */
  uint64_t min_body_rate; /* bytes/s a body must keep up */
  int max_connections;    /* HTTP connections at once (fd budget caps) */
  int max_connections_per_ip;
  char *ops_listen;            /* "" or host:port of /healthz, /readyz, ... */
  uint64_t max_memory;         /* fits and upload checks together */
  uint64_t max_job_memory;     /* one fit or upload check */
  int tenant_queue_size;       /* queued jobs per tenant; 0: automatic */
  uint64_t tenant_quota_bytes; /* bytes stored per tenant; 0: no limit */
  uint64_t min_free_disk;      /* bytes kept free on the data's disk */
  int retain_days;             /* finished jobs kept; 0: for ever */
  char *trusted_proxy;         /* "" or a comma list of addresses */
  bool quiet;                  /* no per-request log lines */
  lsmi_limits_t
      limits; /* dataset reader limits (max_file_bytes = max_upload) */

  /* Made by lsmi_config_load_tokens; replaced whole on SIGHUP, under its
   * own lock (tokens.h): the one part of the configuration that changes. */
  lsmi_tokens_t *tokens;
  /* Derived by parse: */
  char host[256];
  int port;
  char ops_host[256]; /* "" when --ops-listen is empty */
  int ops_port;
} lsmi_config_t;

/* Environment lookup, injectable for tests (getenv in production). */
typedef const char *(*lsmi_getenv_fn)(const char *name);

/*
 * Fills cfg from defaults, then env, then argv (argv[0] is the subcommand
 * name and is skipped). Returns 0, with *help set when --help was asked
 * (the help is then printed to `out` and the rest of argv ignored); or
 * LSMI_ERR_INVALID (LSMI_ERR_NOMEM) with err naming the option. Strings in
 * cfg are owned by cfg: release with lsmi_config_free, even after a failure.
 */
int lsmi_config_parse(lsmi_config_t *cfg, int argc, char **argv,
                      lsmi_getenv_fn env, FILE *out, bool *help,
                      lsmi_error_t *err);

/*
 * Reads the tokens (tokens.h): the file cfg->tokens_file and the variable
 * LSMI_TOKENS, into cfg->tokens, which a reload reads again. 0, with *info
 * (may be NULL) saying what was found; LSMI_ERR_IO when the file cannot be
 * read, LSMI_ERR_INVALID when a line or item breaks the rules, or
 * LSMI_ERR_NOMEM, with err saying which and why.
 */
int lsmi_config_load_tokens(lsmi_config_t *cfg, lsmi_getenv_fn env,
                            lsmi_tokens_info_t *info, lsmi_error_t *err);
/* How many tokens are configured now (0: the API is open). */
size_t lsmi_config_n_tokens(const lsmi_config_t *cfg);

/* Whether cfg->host is a loopback address (127.0.0.0/8, ::1, localhost). */
bool lsmi_config_is_loopback(const char *host);

/* Whether `origin` may call the API cross-origin. */
bool lsmi_config_origin_allowed(const lsmi_config_t *cfg, const char *origin);

void lsmi_config_help(FILE *out);
void lsmi_config_free(lsmi_config_t *cfg);

#endif
