/*
 * config.c — option table, parsing of flags and LSMI_* variables, tokens and
 * CORS origins. One table drives defaults, environment, flags and --help.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "memory.h"

typedef enum opt_kind {
  OPT_STR,
  OPT_INT,
  OPT_SIZE,
  OPT_U64,
  OPT_BOOL,
  OPT_DOUBLE
} opt_kind_t;

typedef struct opt {
  const char *flag; /* without "--" */
  const char *env;
  opt_kind_t kind;
  size_t offset;        /* in lsmi_config_t, or SIZE_MAX for limits below */
  size_t limits_offset; /* in lsmi_limits_t when offset == SIZE_MAX */
  const char *def;      /* NULL: the core's lsmi_limits_default value */
  const char *help;
} opt_t;

#define C(f) offsetof(lsmi_config_t, f)
#define L(f) SIZE_MAX, offsetof(lsmi_limits_t, f)

static const opt_t opts[] = {
    {"listen", "LSMI_LISTEN", OPT_STR, C(listen), 0, "127.0.0.1:8080",
     "address:port to listen on (port 0 picks a free one)"},
    {"data-dir", "LSMI_DATA_DIR", OPT_STR, C(data_dir), 0, "./lsmi-data",
     "directory of the SQLite store, datasets and results (cluster mode: "
     "this node's caches of the database's files)"},
    {"store", "LSMI_STORE", OPT_STR, C(store), 0, "",
     "a PostgreSQL DSN (postgresql://... or key=value pairs): the cluster "
     "mode, nodes of one database share datasets, jobs and work (empty: "
     "SQLite in --data-dir)"},
    {"lease-seconds", "LSMI_LEASE_SECONDS", OPT_INT, C(lease_seconds), 0, "30",
     "cluster mode: seconds a node's claim of a unit of work lasts unless "
     "renewed (every third of it); a dead node's work runs elsewhere after"},
    {"node", "LSMI_NODE", OPT_STR, C(node), 0, "",
     "cluster mode: this node's name in claims and logs, unique in the "
     "cluster (empty: host name and process id)"},
    {"store-direct", "LSMI_STORE_DIRECT", OPT_STR, C(store_direct), 0, "",
     "cluster mode: a DSN straight to PostgreSQL for what needs a session "
     "(the listener's LISTEN, the schema's migration lock), when --store "
     "goes through a pooler in transaction mode (empty: --store)"},
    {"store-connections", "LSMI_STORE_CONNECTIONS", OPT_INT,
     C(store_connections), 0, "0",
     "cluster mode: PostgreSQL connections of the pool, beside the listener "
     "(0: --http-threads + --workers + 2)"},
    {"cache-bytes", "LSMI_CACHE_BYTES", OPT_SIZE, C(cache_bytes), 0, "0",
     "cluster mode: bytes of the database's files (datasets, results) this "
     "node keeps in --data-dir; past it, the least recently used go, to be "
     "fetched again when needed (0: no bound)"},
    {"workers", "LSMI_WORKERS", OPT_INT, C(workers), 0, "2",
     "jobs that run at the same time; a job with threads 0 gets "
     "cores / workers threads"},
    {"queue-size", "LSMI_QUEUE_SIZE", OPT_INT, C(queue_size), 0, "64",
     "queued jobs accepted before POST /v1/jobs answers 429"},
    {"http-threads", "LSMI_HTTP_THREADS", OPT_INT, C(http_threads), 0, "4",
     "HTTP threads (libmicrohttpd thread pool)"},
    {"tokens-file", "LSMI_TOKENS_FILE", OPT_STR, C(tokens_file), 0, "",
     "file of 'TOKEN TENANT' lines (`lsmi token` edits it; SIGHUP reloads "
     "it); also LSMI_TOKENS='TOKEN=TENANT,...'"},
    {"cors-origin", "LSMI_CORS_ORIGINS", OPT_STR, C(cors_origins), 0, "",
     "comma list of origins allowed cross-origin ('*' for any)"},
    {"max-upload", "LSMI_MAX_UPLOAD", OPT_SIZE, C(max_upload), 0, "1G",
     "largest dataset upload in bytes (K, M, G suffixes)"},
    {"max-body", "LSMI_MAX_BODY", OPT_SIZE, C(max_body), 0, "64K",
     "largest JSON request body"},
    {"page-limit", "LSMI_PAGE_LIMIT", OPT_U64, C(page_limit), 0, "10000",
     "largest `limit` of one page of results or of a list"},
    {"retry-after", "LSMI_RETRY_AFTER", OPT_INT, C(retry_after), 0, "5",
     "seconds announced in Retry-After with a 429, or a 503 of the cluster "
     "mode's database out of reach"},
    {"shutdown-timeout", "LSMI_SHUTDOWN_TIMEOUT", OPT_INT, C(shutdown_timeout),
     0, "30",
     "seconds running jobs get to finish on SIGTERM before they are stopped "
     "and requeued"},
    {"connection-timeout", "LSMI_CONNECTION_TIMEOUT", OPT_INT,
     C(connection_timeout), 0, "60", "idle HTTP connection timeout, seconds"},
    {"header-timeout", "LSMI_HEADER_TIMEOUT", OPT_INT, C(header_timeout), 0,
     "10",
     "seconds a client has to send a request's head (from its connection or "
     "its previous request); then it is closed"},
    {"min-body-rate", "LSMI_MIN_BODY_RATE", OPT_SIZE, C(min_body_rate), 0, "1K",
     "bytes per second a request body must average over each --header-"
     "timeout; a slower one is closed (0: no floor)"},
    {"max-connections", "LSMI_MAX_CONNECTIONS", OPT_INT, C(max_connections), 0,
     "512",
     "HTTP connections at once; lowered to fit the open-files limit "
     "(ulimit -n)"},
    {"max-connections-per-ip", "LSMI_MAX_CONNECTIONS_PER_IP", OPT_INT,
     C(max_connections_per_ip), 0, "32",
     "HTTP connections at once from one client address (0: no limit; "
     "behind a proxy every client has the proxy's address)"},
    {"ops-listen", "LSMI_OPS_LISTEN", OPT_STR, C(ops_listen), 0, "",
     "address:port of a second listener for /healthz, /readyz and /metrics "
     "only, which answers when the API's connections are all taken"},
    {"max-memory", "LSMI_MAX_MEMORY", OPT_SIZE, C(max_memory), 0, "0",
     "memory running jobs and upload checks may hold together (0: three "
     "quarters of the machine's or the container's)"},
    {"max-job-memory", "LSMI_MAX_JOB_MEMORY", OPT_SIZE, C(max_job_memory), 0,
     "0",
     "memory one job or one upload check may need (0: --max-memory); a job "
     "estimated above it is refused with 422"},
    {"tenant-queue-size", "LSMI_TENANT_QUEUE_SIZE", OPT_INT,
     C(tenant_queue_size), 0, "0",
     "queued jobs one tenant may hold (0: half of --queue-size when tokens "
     "name several tenants, else all of it)"},
    {"tenant-quota-bytes", "LSMI_TENANT_QUOTA_BYTES", OPT_SIZE,
     C(tenant_quota_bytes), 0, "0",
     "bytes one tenant may store, its datasets' files and its jobs' result "
     "files together (0: no limit); past it, uploads and jobs answer 507"},
    {"min-free-disk", "LSMI_MIN_FREE_DISK", OPT_SIZE, C(min_free_disk), 0,
     "64M",
     "free space kept on the data directory's disk: an upload that would "
     "leave less, or a job while there is less, answers 507, and /readyz "
     "is not ready"},
    {"retain-days", "LSMI_RETAIN_DAYS", OPT_INT, C(retain_days), 0, "0",
     "days a finished job and its results (and an idempotency key) are kept "
     "before they are deleted, checked hourly and on SIGHUP (0: kept until "
     "deleted)"},
    {"trusted-proxy", "LSMI_TRUSTED_PROXY", OPT_STR, C(trusted_proxy), 0, "",
     "comma list of proxy addresses whose X-Forwarded-For header names the "
     "client that the log shows as peer"},
    {"quiet", "LSMI_QUIET", OPT_BOOL, C(quiet), 0, "false",
     "no per-request log lines (job transitions are still logged)"},
    {"max-rows", "LSMI_MAX_ROWS", OPT_U64, L(max_rows), NULL,
     "rows per split of an uploaded dataset"},
    {"max-dims", "LSMI_MAX_DIMS", OPT_U64, L(max_dims), NULL,
     "features per modality"},
    {"max-classes", "LSMI_MAX_CLASSES", OPT_U64, L(max_classes), NULL,
     "label classes"},
    {"max-members", "LSMI_MAX_MEMBERS", OPT_U64, L(max_members), NULL,
     "zip members of a .npz / .pt"},
    {"max-decompressed", "LSMI_MAX_DECOMPRESSED", OPT_SIZE,
     L(max_decompressed_bytes), NULL, "bytes inflated from one zip file"},
    {"max-ratio", "LSMI_MAX_RATIO", OPT_DOUBLE, L(max_ratio), NULL,
     "inflated / compressed size of one zip member (zip bombs)"},
    {"max-header", "LSMI_MAX_HEADER", OPT_SIZE, L(max_header_bytes), NULL,
     "bytes of an npy / safetensors / pickle header"},
    {"min-rows-per-class", "LSMI_MIN_ROWS_PER_CLASS", OPT_U64,
     L(min_rows_per_class), NULL, "train rows every class needs"},
};

#undef C
#undef L

#define N_OPTS (sizeof opts / sizeof opts[0])

/* A whole number, with K/M/G/T suffixes when `suffixes`: 0 or
 * LSMI_ERR_INVALID. */
static int parse_u64(const char *s, bool suffixes, uint64_t *out) {
  if (s == NULL || *s == '\0' || *s == '-')
    return LSMI_ERR_INVALID;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s)
    return LSMI_ERR_INVALID;
  uint64_t mul = 1;
  if (suffixes && *end) {
    switch (toupper((unsigned char)*end)) {
    case 'K':
      mul = 1ULL << 10;
      break;
    case 'M':
      mul = 1ULL << 20;
      break;
    case 'G':
      mul = 1ULL << 30;
      break;
    case 'T':
      mul = 1ULL << 40;
      break;
    default:
      return LSMI_ERR_INVALID;
    }
    end++;
    if (*end == 'B' || *end == 'b')
      end++;
    if (*end == 'i' && end[1] == 'B')
      end += 2;
  }
  if (*end || v > UINT64_MAX / mul)
    return LSMI_ERR_INVALID;
  *out = (uint64_t)v * mul;
  return LSMI_OK;
}

static void *field_ptr(lsmi_config_t *cfg, const opt_t *o) {
  if (o->offset == SIZE_MAX)
    return (char *)&cfg->limits + o->limits_offset;
  return (char *)cfg + o->offset;
}

static int apply(lsmi_config_t *cfg, const opt_t *o, const char *val,
                 const char *source, lsmi_error_t *err) {
  void *p = field_ptr(cfg, o);
  uint64_t u = 0;
  switch (o->kind) {
  case OPT_STR: {
    char *copy = strdup(val);
    if (copy == NULL)
      return lsmi_error_set(err, LSMI_ERR_NOMEM, o->flag, "out of memory");
    free(*(char **)p);
    *(char **)p = copy;
    return 0;
  }
  case OPT_INT:
    if (parse_u64(val, false, &u) || u > 1000000)
      return lsmi_error_set(err, LSMI_ERR_INVALID, o->flag,
                            "%s: --%s wants a whole number in [0, 1000000], "
                            "got '%s'",
                            source, o->flag, val);
    *(int *)p = (int)u;
    return 0;
  case OPT_SIZE:
  case OPT_U64:
    if (parse_u64(val, o->kind == OPT_SIZE, &u))
      return lsmi_error_set(
          err, LSMI_ERR_INVALID, o->flag, "%s: --%s wants a %s, got '%s'",
          source, o->flag,
          o->kind == OPT_SIZE ? "size such as 64K or 1G" : "whole number", val);
    *(uint64_t *)p = u;
    return 0;
  case OPT_DOUBLE: {
    char *end = NULL;
    errno = 0;
    double d = strtod(val, &end);
    if (errno || end == val || *end || !(d >= 1.0) || d > 1e12)
      return lsmi_error_set(err, LSMI_ERR_INVALID, o->flag,
                            "%s: --%s wants a number >= 1, got '%s'", source,
                            o->flag, val);
    *(double *)p = d;
    return 0;
  }
  case OPT_BOOL:
    if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes"))
      *(bool *)p = true;
    else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no"))
      *(bool *)p = false;
    else
      return lsmi_error_set(err, LSMI_ERR_INVALID, o->flag,
                            "%s: --%s wants true or false, got '%s'", source,
                            o->flag, val);
    return 0;
  }
  return 0;
}

/* host:port (host may be [v6]) of option `flag` into host and *port. */
static int split_hostport(const char *flag, const char *l, char *host,
                          size_t size, int *port_out, lsmi_error_t *err) {
  const char *colon = strrchr(l, ':');
  if (colon == NULL)
    return lsmi_error_set(err, LSMI_ERR_INVALID, flag,
                          "--%s wants host:port, got '%s'", flag, l);
  const char *h = l;
  size_t hlen = (size_t)(colon - l);
  if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  }
  if (hlen == 0 || hlen >= size)
    return lsmi_error_set(err, LSMI_ERR_INVALID, flag,
                          "--%s wants host:port, got '%s'", flag, l);
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  uint64_t port = 0;
  if (parse_u64(colon + 1, false, &port) || port > 65535)
    return lsmi_error_set(err, LSMI_ERR_INVALID, flag, "--%s: bad port in '%s'",
                          flag, l);
  *port_out = (int)port;
  return 0;
}

/* The cluster mode's node name ("HOST-PID" when none is given; at most
 * 63 bytes, the length a claim records) and pool size. */
static int derive_cluster(lsmi_config_t *cfg, lsmi_error_t *err) {
  if (cfg->store_connections == 0)
    cfg->store_connections = cfg->http_threads + cfg->workers + 2;
  if (cfg->node[0] == '\0') {
    char host[64] = "lsmi", name[64];
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
      snprintf(host, sizeof host, "lsmi");
    host[40] = '\0';
    snprintf(name, sizeof name, "%s-%ld", host, (long)getpid());
    char *copy = strdup(name);
    if (copy == NULL)
      return lsmi_error_set(err, LSMI_ERR_NOMEM, "node", "out of memory");
    free(cfg->node);
    cfg->node = copy;
  }
  if (strlen(cfg->node) > 63)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "node",
                          "--node must have at most 63 bytes");
  return LSMI_OK;
}

/* The derived values: both listeners' addresses, the memory budgets. */
static int derive(lsmi_config_t *cfg, lsmi_error_t *err) {
  int st = split_hostport("listen", cfg->listen, cfg->host, sizeof cfg->host,
                          &cfg->port, err);
  if (st == LSMI_OK && cfg->ops_listen[0])
    st = split_hostport("ops-listen", cfg->ops_listen, cfg->ops_host,
                        sizeof cfg->ops_host, &cfg->ops_port, err);
  if (st == LSMI_OK)
    st = derive_cluster(cfg, err);
  if (st)
    return st;
  if (cfg->max_memory == 0)
    cfg->max_memory = lsmi_mem_default_budget();
  if (cfg->max_job_memory == 0)
    cfg->max_job_memory = cfg->max_memory;
  if (cfg->max_job_memory > cfg->max_memory)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "max-job-memory",
                          "--max-job-memory (%llu bytes) must not exceed "
                          "--max-memory (%llu bytes)",
                          (unsigned long long)cfg->max_job_memory,
                          (unsigned long long)cfg->max_memory);
  return LSMI_OK;
}

int lsmi_config_parse(lsmi_config_t *cfg, int argc, char **argv,
                      lsmi_getenv_fn env, FILE *out, bool *help,
                      lsmi_error_t *err) {
  memset(cfg, 0, sizeof *cfg);
  *help = false;
  lsmi_limits_default(&cfg->limits);
  int st;
  for (size_t i = 0; i < N_OPTS; i++)
    if (opts[i].def && (st = apply(cfg, &opts[i], opts[i].def, "default", err)))
      return st;
  if (env)
    for (size_t i = 0; i < N_OPTS; i++) {
      const char *v = env(opts[i].env);
      if (v && *v && (st = apply(cfg, &opts[i], v, opts[i].env, err)))
        return st;
    }
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      lsmi_config_help(out);
      *help = true;
      return LSMI_OK;
    }
    if (strncmp(arg, "--", 2) != 0)
      return lsmi_error_set(err, LSMI_ERR_INVALID, arg,
                            "unexpected argument '%s' (see --help)", arg);
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const opt_t *o = NULL;
    for (size_t i = 0; i < N_OPTS; i++)
      if (strlen(opts[i].flag) == nlen && !strncmp(opts[i].flag, name, nlen))
        o = &opts[i];
    if (o == NULL)
      return lsmi_error_set(err, LSMI_ERR_INVALID, arg,
                            "unknown option '%s' (see --help)", arg);
    const char *val;
    if (eq)
      val = eq + 1;
    else if (o->kind == OPT_BOOL)
      val = "true";
    else if (a + 1 < argc)
      val = argv[++a];
    else
      return lsmi_error_set(err, LSMI_ERR_INVALID, o->flag,
                            "--%s needs a value", o->flag);
    if ((st = apply(cfg, o, val, "flag", err)))
      return st;
  }
  if (cfg->workers < 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "workers",
                          "--workers must be at least 1");
  if (cfg->http_threads < 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "http-threads",
                          "--http-threads must be at least 1");
  if (cfg->page_limit < 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "page-limit",
                          "--page-limit must be at least 1");
  if (cfg->data_dir[0] == '\0')
    return lsmi_error_set(err, LSMI_ERR_INVALID, "data-dir",
                          "--data-dir must not be empty");
  if (cfg->header_timeout < 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "header-timeout",
                          "--header-timeout must be at least 1");
  if (cfg->max_connections < 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "max-connections",
                          "--max-connections must be at least 1");
  if (cfg->store_direct[0] && !cfg->store[0])
    return lsmi_error_set(err, LSMI_ERR_INVALID, "store-direct",
                          "--store-direct needs --store");
  if (cfg->lease_seconds < 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "lease-seconds",
                          "--lease-seconds must be at least 1");
  cfg->limits.max_file_bytes = cfg->max_upload;
  return derive(cfg, err);
}

void lsmi_config_help(FILE *out) {
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  fprintf(out,
          "usage: lsmi serve [OPTION...]\n\n"
          "Runs the lsmi HTTP daemon. Every option can also be set by its\n"
          "environment variable; a flag wins over the variable.\n\n");
  fprintf(out, "  %-24s %-26s %s\n", "flag", "environment", "default");
  for (size_t i = 0; i < N_OPTS; i++) {
    const opt_t *o = &opts[i];
    char def[64];
    if (o->def)
      snprintf(def, sizeof def, "%s", o->def[0] ? o->def : "(none)");
    else if (o->kind == OPT_DOUBLE)
      snprintf(def, sizeof def, "%g",
               *(const double *)(const void *)((const char *)&lim +
                                               o->limits_offset));
    else
      snprintf(def, sizeof def, "%llu",
               (unsigned long long)*(
                   const uint64_t *)(const void *)((const char *)&lim +
                                                   o->limits_offset));
    char flag[40];
    snprintf(flag, sizeof flag, "--%s", o->flag);
    fprintf(out, "  %-24s %-26s %s\n      %s\n", flag, o->env, def, o->help);
  }
  fprintf(out, "  %-24s %-26s %s\n      %s\n", "(none)", "LSMI_TOKENS",
          "(none)",
          "bearer tokens, 'TOKEN=TENANT' separated by commas (tokens of 16 "
          "characters or more)");
  fprintf(out, "  %-24s %-26s %s\n      %s\n", "--help", "", "",
          "print this table");
  fprintf(out,
          "\nWith no tokens configured the API is open and the daemon refuses "
          "to\nlisten on anything but a loopback address.\n");
}

int lsmi_config_load_tokens(lsmi_config_t *cfg, lsmi_getenv_fn env,
                            lsmi_tokens_info_t *info, lsmi_error_t *err) {
  lsmi_tokens_destroy(cfg->tokens);
  cfg->tokens = NULL;
  if (lsmi_tokens_create(cfg->tokens_file, env ? env("LSMI_TOKENS") : NULL,
                         &cfg->tokens))
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "tokens", "out of memory");
  return lsmi_tokens_load(cfg->tokens, info, err);
}

size_t lsmi_config_n_tokens(const lsmi_config_t *cfg) {
  size_t n = 0;
  lsmi_tokens_counts(cfg->tokens, &n, NULL);
  return n;
}

bool lsmi_config_is_loopback(const char *host) {
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
         strcmp(host, "localhost") == 0;
}

bool lsmi_config_origin_allowed(const lsmi_config_t *cfg, const char *origin) {
  if (origin == NULL || cfg->cors_origins == NULL || !cfg->cors_origins[0])
    return false;
  size_t olen = strlen(origin);
  const char *p = cfg->cors_origins;
  while (*p) {
    while (*p == ',' || *p == ' ')
      p++;
    const char *s = p;
    while (*p && *p != ',' && *p != ' ')
      p++;
    size_t n = (size_t)(p - s);
    if ((n == 1 && *s == '*') || (n == olen && !strncmp(s, origin, n)))
      return n > 0;
  }
  return false;
}

void lsmi_config_free(lsmi_config_t *cfg) {
  if (cfg == NULL)
    return;
  free(cfg->listen);
  free(cfg->data_dir);
  free(cfg->store);
  free(cfg->store_direct);
  free(cfg->node);
  free(cfg->tokens_file);
  free(cfg->cors_origins);
  free(cfg->ops_listen);
  free(cfg->trusted_proxy);
  lsmi_tokens_destroy(cfg->tokens);
  memset(cfg, 0, sizeof *cfg);
}
