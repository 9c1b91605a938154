/*
 * router.h — maps a request path to one of the daemon's routes, and says
 * which methods each route allows. Pure functions over strings: the HTTP
 * layer calls them on its own threads without locks.
 */
#ifndef LSMI_ROUTER_H
#define LSMI_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum lsmi_route {
  LSMI_ROUTE_NONE = 0, /* no such path: 404 */
  LSMI_ROUTE_HEALTHZ,
  LSMI_ROUTE_READYZ,
  LSMI_ROUTE_METRICS,
  LSMI_ROUTE_OPENAPI,
  LSMI_ROUTE_DATASETS,    /* /v1/datasets */
  LSMI_ROUTE_DATASET,     /* /v1/datasets/{id} */
  LSMI_ROUTE_JOBS,        /* /v1/jobs */
  LSMI_ROUTE_JOB,         /* /v1/jobs/{id} */
  LSMI_ROUTE_JOB_RESULTS, /* /v1/jobs/{id}/results */
  LSMI_ROUTE_JOB_SAMPLE,  /* /v1/jobs/{id}/results/{split}/{index} */
  LSMI_ROUTE_JOB_AGGREGATES, /* /v1/jobs/{id}/aggregates */
  LSMI_ROUTE_JOB_EVENTS,     /* /v1/jobs/{id}/events */
  LSMI_ROUTE_PARAMS,         /* /v1/params */
  LSMI_ROUTE_UI,             /* / and /ui/{file}: the dashboard */
  LSMI_ROUTE_COUNT
} lsmi_route_t;

#define LSMI_ROUTER_ID_MAX 64

/*
 * Matches `path` (no query string; a trailing '/' is tolerated). For the
 * routes with an {id}, copies it into id (LSMI_ROUTER_ID_MAX bytes); an id
 * that is empty, too long or has a character outside [A-Za-z0-9_-] matches
 * no route, so such ids never reach the store.
 */
lsmi_route_t lsmi_router_match(const char *path, char id[LSMI_ROUTER_ID_MAX]);

/* Whether `method` is allowed on route (OPTIONS is handled separately). */
bool lsmi_router_allows(lsmi_route_t route, const char *method);

/* The Allow header value of a route, e.g. "GET, DELETE". */
const char *lsmi_router_allow(lsmi_route_t route);

/* A route's template, e.g. "/v1/jobs/{id}", used as the metrics label. */
const char *lsmi_router_name(lsmi_route_t route);

/* Whether the route needs a bearer token (the /v1 API except the spec,
 * the parameter table and the dashboard's static files). */
bool lsmi_router_needs_auth(lsmi_route_t route);

/*
 * Whether `name` is a query parameter that route and method take (HEAD as
 * GET): every other one is answered 400 naming it, so that a misspelt
 * filter is never silently ignored.
 */
bool lsmi_router_query_known(lsmi_route_t route, const char *method,
                             const char *name);

#endif
