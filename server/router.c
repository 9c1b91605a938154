/*
 * router.c — path matching for the handful of routes of the daemon. The
 * table is small and fixed, so matching is a few string comparisons; no
 * regular expressions, no allocation.
 */
#include <string.h>

#include "router.h"

typedef struct route_info {
  const char *name;
  const char *allow; /* comma list; HEAD rides along with GET */
} route_info_t;

static const route_info_t routes[LSMI_ROUTE_COUNT] = {
    [LSMI_ROUTE_NONE] = {"unmatched", ""},
    [LSMI_ROUTE_HEALTHZ] = {"/healthz", "GET"},
    [LSMI_ROUTE_READYZ] = {"/readyz", "GET"},
    [LSMI_ROUTE_METRICS] = {"/metrics", "GET"},
    [LSMI_ROUTE_OPENAPI] = {"/v1/openapi.yaml", "GET"},
    [LSMI_ROUTE_DATASETS] = {"/v1/datasets", "GET, POST"},
    [LSMI_ROUTE_DATASET] = {"/v1/datasets/{id}", "GET, DELETE"},
    [LSMI_ROUTE_JOBS] = {"/v1/jobs", "GET, POST"},
    [LSMI_ROUTE_JOB] = {"/v1/jobs/{id}", "GET, DELETE"},
    [LSMI_ROUTE_JOB_RESULTS] = {"/v1/jobs/{id}/results", "GET"},
    [LSMI_ROUTE_JOB_SAMPLE] = {"/v1/jobs/{id}/results/{split}/{index}", "GET"},
    [LSMI_ROUTE_JOB_AGGREGATES] = {"/v1/jobs/{id}/aggregates", "GET"},
    [LSMI_ROUTE_JOB_EVENTS] = {"/v1/jobs/{id}/events", "GET"},
    [LSMI_ROUTE_PARAMS] = {"/v1/params", "GET"},
    [LSMI_ROUTE_UI] = {"/ui", "GET"},
};

/* Copies one path segment [s, end) into id if it is a valid id. */
static bool take_id(const char *s, size_t len, char id[LSMI_ROUTER_ID_MAX]) {
  if (len == 0 || len >= LSMI_ROUTER_ID_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  memcpy(id, s, len);
  id[len] = '\0';
  return true;
}

/* A static file's name [s, s+len): letters, digits, '-', '_' and one '.'
 * inside, so that no path leaves the embedded set. */
static bool take_file(const char *s, size_t len) {
  int dots = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '.' && i > 0 && i + 1 < len)
      dots++;
    else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return len > 0 && len < 64 && dots == 1;
}

/* "{split}/{index}": train or val, and digits. */
static bool sample_tail(const char *s, size_t len) {
  const char *slash = memchr(s, '/', len);
  if (slash == NULL)
    return false;
  size_t sl = (size_t)(slash - s), il = len - sl - 1;
  bool split = (sl == 5 && !strncmp(s, "train", 5)) ||
               (sl == 3 && !strncmp(s, "val", 3));
  if (!split || il == 0 || il > 10)
    return false;
  for (size_t i = 0; i < il; i++)
    if (slash[1 + i] < '0' || slash[1 + i] > '9')
      return false;
  return true;
}

lsmi_route_t lsmi_router_match(const char *path, char id[LSMI_ROUTER_ID_MAX]) {
  if (path == NULL)
    return LSMI_ROUTE_NONE;
  id[0] = '\0';
  size_t len = strlen(path);
  if (len > 1 && path[len - 1] == '/')
    len--; /* tolerate one trailing slash */
  if (len == 8 && strncmp(path, "/healthz", 8) == 0)
    return LSMI_ROUTE_HEALTHZ;
  if (len == 7 && strncmp(path, "/readyz", 7) == 0)
    return LSMI_ROUTE_READYZ;
  if (len == 8 && strncmp(path, "/metrics", 8) == 0)
    return LSMI_ROUTE_METRICS;
  if (len == 16 && strncmp(path, "/v1/openapi.yaml", 16) == 0)
    return LSMI_ROUTE_OPENAPI;
  if (len == 10 && strncmp(path, "/v1/params", 10) == 0)
    return LSMI_ROUTE_PARAMS;
  if (!strcmp(path, "/") || (len > 4 && strncmp(path, "/ui/", 4) == 0 &&
                             take_file(path + 4, len - 4)))
    return LSMI_ROUTE_UI;

  static const char ds[] = "/v1/datasets", jobs[] = "/v1/jobs";
  if (len >= sizeof ds - 1 && strncmp(path, ds, sizeof ds - 1) == 0) {
    const char *rest = path + sizeof ds - 1;
    size_t rlen = len - (sizeof ds - 1);
    if (rlen == 0)
      return LSMI_ROUTE_DATASETS;
    if (rest[0] != '/')
      return LSMI_ROUTE_NONE;
    return take_id(rest + 1, rlen - 1, id) ? LSMI_ROUTE_DATASET
                                           : LSMI_ROUTE_NONE;
  }
  if (len >= sizeof jobs - 1 && strncmp(path, jobs, sizeof jobs - 1) == 0) {
    const char *rest = path + sizeof jobs - 1;
    size_t rlen = len - (sizeof jobs - 1);
    if (rlen == 0)
      return LSMI_ROUTE_JOBS;
    if (rest[0] != '/')
      return LSMI_ROUTE_NONE;
    rest++;
    rlen--;
    const char *slash = memchr(rest, '/', rlen);
    if (slash == NULL)
      return take_id(rest, rlen, id) ? LSMI_ROUTE_JOB : LSMI_ROUTE_NONE;
    size_t idlen = (size_t)(slash - rest);
    size_t tail = rlen - idlen;
    if (!take_id(rest, idlen, id))
      return LSMI_ROUTE_NONE;
    if (tail == 8 && strncmp(slash, "/results", 8) == 0)
      return LSMI_ROUTE_JOB_RESULTS;
    if (tail == 11 && strncmp(slash, "/aggregates", 11) == 0)
      return LSMI_ROUTE_JOB_AGGREGATES;
    if (tail == 7 && strncmp(slash, "/events", 7) == 0)
      return LSMI_ROUTE_JOB_EVENTS;
    if (tail > 9 && strncmp(slash, "/results/", 9) == 0 &&
        sample_tail(slash + 9, tail - 9))
      return LSMI_ROUTE_JOB_SAMPLE;
    return LSMI_ROUTE_NONE;
  }
  return LSMI_ROUTE_NONE;
}

bool lsmi_router_allows(lsmi_route_t route, const char *method) {
  if (route <= LSMI_ROUTE_NONE || route >= LSMI_ROUTE_COUNT || !method)
    return false;
  const char *allow = routes[route].allow;
  if (strcmp(method, "HEAD") == 0)
    method = "GET";
  size_t m = strlen(method);
  for (const char *p = allow; *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == m && strncmp(p, method, m) == 0)
      return true;
    if (!end)
      break;
    p = end + 1;
    while (*p == ' ')
      p++;
  }
  return false;
}

const char *lsmi_router_allow(lsmi_route_t route) {
  if (route < 0 || route >= LSMI_ROUTE_COUNT)
    return "";
  return routes[route].allow;
}

const char *lsmi_router_name(lsmi_route_t route) {
  if (route < 0 || route >= LSMI_ROUTE_COUNT)
    return "unmatched";
  return routes[route].name;
}

bool lsmi_router_needs_auth(lsmi_route_t route) {
  return route == LSMI_ROUTE_DATASETS || route == LSMI_ROUTE_DATASET ||
         route == LSMI_ROUTE_JOBS || route == LSMI_ROUTE_JOB ||
         route == LSMI_ROUTE_JOB_RESULTS || route == LSMI_ROUTE_JOB_SAMPLE ||
         route == LSMI_ROUTE_JOB_AGGREGATES || route == LSMI_ROUTE_JOB_EVENTS;
}

/* The query parameters of each route and method (NULL-terminated). */
typedef struct query_names {
  lsmi_route_t route;
  const char *method;
  const char *names[12];
} query_names_t;

static const query_names_t queries[] = {
    {LSMI_ROUTE_DATASETS,
     "POST",
     {"name", "val_fraction", "x1", "x2", "y", "id", NULL}},
    {LSMI_ROUTE_DATASETS, "GET", {"offset", "limit", NULL}},
    {LSMI_ROUTE_DATASET, "DELETE", {"keep_jobs", NULL}},
    {LSMI_ROUTE_JOBS, "GET", {"state", "offset", "limit", NULL}},
    {LSMI_ROUTE_JOB_RESULTS,
     "GET",
     {"split", "offset", "limit", "sort", "order", "format", "fields", "y",
      NULL}},
    {LSMI_ROUTE_JOB_SAMPLE, "GET", {"fields", NULL}},
    {LSMI_ROUTE_JOB_AGGREGATES,
     "GET",
     {"split", "column", "bins", "min", "max", NULL}},
};

/* COL_min or COL_max for a result column COL. */
static bool column_range(const char *name) {
  static const char *cols[] = {"index", "y",     "r",    "u1", "u2", "s",
                               "i1",    "i2",    "i12",  "h1", "h2", "r_sd",
                               "u1_sd", "u2_sd", "s_sd", "row"};
  size_t len = strlen(name);
  if (len < 5 ||
      (strcmp(name + len - 4, "_min") && strcmp(name + len - 4, "_max")))
    return false;
  for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++)
    if (strlen(cols[k]) == len - 4 && !strncmp(name, cols[k], len - 4))
      return true;
  return false;
}

bool lsmi_router_query_known(lsmi_route_t route, const char *method,
                             const char *name) {
  if (method && strcmp(method, "HEAD") == 0)
    method = "GET";
  if (route == LSMI_ROUTE_JOB_RESULTS && column_range(name))
    return true;
  for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
    if (queries[i].route != route || !method ||
        strcmp(queries[i].method, method))
      continue;
    for (const char *const *n = queries[i].names; *n; n++)
      if (!strcmp(*n, name))
        return true;
  }
  return false;
}
