/*
 * tokens.c — the tokens file and LSMI_TOKENS parsed and checked, the set
 * of tokens the HTTP threads look up, and its reload (see tokens.h).
 *
 * A load builds a whole new list off the lock and swaps it in under
 * tokens.mu; a lookup compares every token under tokens.mu and copies the
 * tenant out. The lists are small (a lab's members), so a linear
 * constant-time scan is all a lookup needs.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sha256.h"
#include "tokens.h"
#include "util.h"

typedef struct entry {
  char *token, *tenant;
} entry_t;

typedef struct list {
  entry_t *items;
  size_t n, cap;
  size_t tenants; /* distinct */
} list_t;

struct lsmi_tokens {
  pthread_mutex_t mu; /* tokens.mu: guards `cur`; a leaf lock */
  list_t cur;
  char *file; /* NULL: none */
  char *env;  /* NULL: none */
};

static void list_free(list_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->items[i].token);
    free(l->items[i].tenant);
  }
  free(l->items);
  memset(l, 0, sizeof *l);
}

const char *lsmi_tokens_check_token(const char *token) {
  size_t n = strlen(token);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f)
      return "a token is printable ASCII without spaces";
  if (n < LSMI_TOKEN_MIN)
    return "the token is shorter than 16 characters; make tokens long and "
           "random (`lsmi token add TENANT` makes one, or `openssl rand -hex "
           "16`)";
  return NULL;
}

const char *lsmi_tokens_check_tenant(const char *tenant) {
  size_t n = strlen(tenant);
  if (n == 0)
    return "the tenant is missing";
  if (n > LSMI_TENANT_MAX)
    return "the tenant's name is longer than 63 characters";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)tenant[i];
    if (!isalnum(c) && !strchr("._@-", c))
      return "a tenant's name has letters, digits and . _ @ - only";
  }
  return NULL;
}

/* The next white-space separated word of *p into out (max bytes): its
 * length, 0 at the end of the line. */
static size_t word(const char **p, char *out, size_t max) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t' || *s == '\r')
    s++;
  size_t n = 0;
  while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != '\r')
    n++;
  size_t k = n < max ? n : max - 1;
  memcpy(out, s, k);
  out[k] = '\0';
  *p = s + n;
  return n;
}

lsmi_token_line_kind_t lsmi_tokens_line(const char *line, char *token,
                                        char *tenant, const char **why) {
  const char *p = line;
  char extra[8];
  *why = NULL;
  token[0] = tenant[0] = '\0';
  size_t n = word(&p, token, LSMI_TOKEN_LINE_MAX);
  if (n == 0 || token[0] == '#')
    return LSMI_TOKEN_LINE_NONE;
  if (n >= LSMI_TOKEN_LINE_MAX)
    *why = "the token is too long";
  else if (word(&p, tenant, LSMI_TOKEN_LINE_MAX) == 0)
    *why = "a token without a tenant; write 'TOKEN TENANT'";
  else if (word(&p, extra, sizeof extra) != 0)
    *why = "more than 'TOKEN TENANT' on the line";
  else if ((*why = lsmi_tokens_check_token(token)) == NULL)
    *why = lsmi_tokens_check_tenant(tenant);
  return *why ? LSMI_TOKEN_LINE_BAD : LSMI_TOKEN_LINE_ENTRY;
}

void lsmi_tokens_id(const char *token, char id[13]) {
  lsmi_sha256_t s;
  unsigned char d[32];
  lsmi_sha256_init(&s);
  lsmi_sha256_update(&s, token, strlen(token));
  lsmi_sha256_final(&s, d);
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 6; i++) {
    id[2 * i] = hex[d[i] >> 4];
    id[2 * i + 1] = hex[d[i] & 15];
  }
  id[12] = '\0';
}

/* Adds token -> tenant to l: 0, LSMI_ERR_INVALID (the token is given for
 * another tenant already; where says where, in err) or LSMI_ERR_NOMEM. */
static int add(list_t *l, const char *token, const char *tenant,
               const char *field, const char *where, lsmi_error_t *err) {
  bool seen_tenant = false;
  for (size_t i = 0; i < l->n; i++) {
    if (!strcmp(l->items[i].token, token)) {
      if (strcmp(l->items[i].tenant, tenant))
        return lsmi_error_set(err, LSMI_ERR_INVALID, field,
                              "%s: the token is given for tenant '%s' too",
                              where, l->items[i].tenant);
      return LSMI_OK; /* the same pair twice */
    }
    seen_tenant |= !strcmp(l->items[i].tenant, tenant);
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    entry_t *p = realloc(l->items, cap * sizeof *p);
    if (p == NULL)
      return lsmi_error_set(err, LSMI_ERR_NOMEM, field, "out of memory");
    l->items = p;
    l->cap = cap;
  }
  entry_t e = {strdup(token), strdup(tenant)};
  if (!e.token || !e.tenant) {
    free(e.token);
    free(e.tenant);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, field, "out of memory");
  }
  l->items[l->n++] = e;
  l->tenants += !seen_tenant;
  return LSMI_OK;
}

/* The tokens file into l. */
static int read_file(const char *path, list_t *l, lsmi_tokens_info_t *info,
                     lsmi_error_t *err) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return lsmi_error_set(err, LSMI_ERR_IO, "tokens-file",
                          "cannot open the tokens file '%s': %s", path,
                          strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) == 0) {
    info->mode = (unsigned)(sb.st_mode & 07777);
    info->world_readable = (sb.st_mode & S_IROTH) != 0;
  }
  char *line = NULL, token[LSMI_TOKEN_LINE_MAX], tenant[LSMI_TOKEN_LINE_MAX];
  size_t cap = 0;
  int st = LSMI_OK;
  for (int no = 1; st == LSMI_OK && getline(&line, &cap, f) >= 0; no++) {
    line[strcspn(line, "\n")] = '\0';
    const char *why;
    char where[600];
    snprintf(where, sizeof where, "%s, line %d", path, no);
    switch (lsmi_tokens_line(line, token, tenant, &why)) {
    case LSMI_TOKEN_LINE_NONE:
      break;
    case LSMI_TOKEN_LINE_BAD:
      st = lsmi_error_set(err, LSMI_ERR_INVALID, "tokens-file", "%s: %s", where,
                          why);
      break;
    case LSMI_TOKEN_LINE_ENTRY:
      st = add(l, token, tenant, "tokens-file", where, err);
      break;
    }
  }
  if (st == LSMI_OK && ferror(f))
    st = lsmi_error_set(err, LSMI_ERR_IO, "tokens-file",
                        "cannot read the tokens file '%s'", path);
  free(line);
  fclose(f);
  return st;
}

/* LSMI_TOKENS into l: "TOKEN=TENANT" items (the last '=' splits, so that
 * a token may end in '=' padding). */
static int read_env(const char *v, list_t *l, lsmi_error_t *err) {
  int st = LSMI_OK, item = 0;
  char buf[LSMI_TOKEN_LINE_MAX];
  for (const char *p = v; st == LSMI_OK && *p;) {
    while (*p == ',' || isspace((unsigned char)*p))
      p++;
    const char *start = p;
    while (*p && *p != ',' && !isspace((unsigned char)*p))
      p++;
    size_t n = (size_t)(p - start);
    if (n == 0)
      break;
    item++;
    char where[64];
    snprintf(where, sizeof where, "LSMI_TOKENS, item %d", item);
    if (n >= sizeof buf)
      return lsmi_error_set(err, LSMI_ERR_INVALID, "LSMI_TOKENS",
                            "%s is too long", where);
    memcpy(buf, start, n);
    buf[n] = '\0';
    char *eq = strrchr(buf, '=');
    const char *why = NULL;
    if (eq == NULL)
      why = "it is not TOKEN=TENANT (items are TOKEN=TENANT, separated by "
            "commas; a form such as 'tenant:secret' is not read)";
    else
      *eq = '\0';
    if (why == NULL && (why = lsmi_tokens_check_token(buf)) == NULL)
      why = lsmi_tokens_check_tenant(eq + 1);
    st = why ? lsmi_error_set(err, LSMI_ERR_INVALID, "LSMI_TOKENS", "%s: %s",
                              where, why)
             : add(l, buf, eq + 1, "LSMI_TOKENS", where, err);
  }
  return st;
}

int lsmi_tokens_create(const char *file, const char *env, lsmi_tokens_t **out) {
  *out = NULL;
  lsmi_tokens_t *t = calloc(1, sizeof *t);
  if (t == NULL)
    return LSMI_ERR_NOMEM;
  pthread_mutex_init(&t->mu, NULL);
  t->file = file && *file ? strdup(file) : NULL;
  t->env = env && *env ? strdup(env) : NULL;
  if ((file && *file && !t->file) || (env && *env && !t->env)) {
    lsmi_tokens_destroy(t);
    return LSMI_ERR_NOMEM;
  }
  *out = t;
  return LSMI_OK;
}

void lsmi_tokens_destroy(lsmi_tokens_t *t) {
  if (t == NULL)
    return;
  list_free(&t->cur);
  free(t->file);
  free(t->env);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

int lsmi_tokens_load(lsmi_tokens_t *t, lsmi_tokens_info_t *info,
                     lsmi_error_t *err) {
  lsmi_tokens_info_t got = {0};
  list_t l = {0};
  int st = t->file ? read_file(t->file, &l, &got, err) : LSMI_OK;
  if (st == LSMI_OK && t->env)
    st = read_env(t->env, &l, err);
  pthread_mutex_lock(&t->mu);
  if (st == LSMI_OK && l.n == 0 && t->cur.n > 0)
    st = lsmi_error_set(err, LSMI_ERR_INVALID, "tokens-file",
                        "the tokens file now names no token, which would "
                        "open the API to everyone; the %zu tokens loaded "
                        "before stay",
                        t->cur.n);
  if (st == LSMI_OK) {
    list_t old = t->cur;
    t->cur = l;
    l = old;
  }
  pthread_mutex_unlock(&t->mu);
  list_free(&l); /* the old list, or the refused new one */
  if (st == LSMI_OK) {
    lsmi_tokens_counts(t, &got.tokens, &got.tenants);
    if (info)
      *info = got;
  }
  return st;
}

bool lsmi_tokens_tenant(lsmi_tokens_t *t, const char *token, char *tenant,
                        size_t size) {
  if (t == NULL || token == NULL)
    return false;
  size_t n = strlen(token);
  bool found = false;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; i < t->cur.n; i++) {
    const char *s = t->cur.items[i].token;
    size_t m = strlen(s);
    /* Compare every byte of the stored token so that timing says little. */
    unsigned diff = (unsigned)(n ^ m);
    for (size_t k = 0; k < m; k++)
      diff |= (unsigned)(unsigned char)s[k] ^
              (unsigned)(unsigned char)(k < n ? token[k] : 0);
    if (diff == 0 && !found) {
      snprintf(tenant, size, "%s", t->cur.items[i].tenant);
      found = true;
    }
  }
  pthread_mutex_unlock(&t->mu);
  return found;
}

void lsmi_tokens_counts(lsmi_tokens_t *t, size_t *tokens, size_t *tenants) {
  size_t a = 0, b = 0;
  if (t) {
    pthread_mutex_lock(&t->mu);
    a = t->cur.n;
    b = t->cur.tenants;
    pthread_mutex_unlock(&t->mu);
  }
  if (tokens)
    *tokens = a;
  if (tenants)
    *tenants = b;
}

bool lsmi_tokens_has_file(const lsmi_tokens_t *t) {
  return t && t->file != NULL;
}

void lsmi_tokens_warn_mode(const char *file, unsigned mode) {
  char m[8];
  snprintf(m, sizeof m, "%04o", mode);
  lsmi_util_log("tokens",
                json_pack("{s:s, s:s, s:s, s:s}", "level", "warn", "file", file,
                          "mode", m, "detail",
                          "the tokens file may be read by every user of this "
                          "machine: chmod 600 it (lsmi token writes it so)"));
}
