/*
 * tokens.h — the daemon's bearer tokens (internal to server/ and the
 * `lsmi token` command): the rules of a tokens file and of LSMI_TOKENS,
 * the set the HTTP threads look tokens up in, and its reload.
 *
 * A tokens file has one "TOKEN TENANT" pair a line (white space between),
 * blank lines and lines starting with '#'; LSMI_TOKENS has "TOKEN=TENANT"
 * items separated by commas or white space. A token has at least
 * LSMI_TOKEN_MIN printable characters and no white space; a tenant is 1 to
 * 63 letters, digits and "._@-". Anything else is refused with a message
 * that names the line or item and what is wrong, never the token itself
 * (the message goes to logs). One token given for two tenants is refused.
 *
 * Owner and lock: the set (lsmi_tokens_t) is made on the main thread
 * before any other thread starts, owned by the configuration, reloaded on
 * the loop thread (SIGHUP) and read by the HTTP threads; tokens.mu, a leaf
 * lock, guards its entries. A lookup copies the tenant's name out, so a
 * reload may free the old entries at once.
 */
#ifndef LSMI_TOKENS_H
#define LSMI_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "lsmi.h"

enum { LSMI_TOKEN_MIN = 16, LSMI_TENANT_MAX = 63 };

typedef struct lsmi_tokens lsmi_tokens_t;

/* What one line of a tokens file holds. */
typedef enum lsmi_token_line_kind {
  LSMI_TOKEN_LINE_NONE = 0, /* blank, or a comment */
  LSMI_TOKEN_LINE_ENTRY,    /* token and tenant (copied out) */
  LSMI_TOKEN_LINE_BAD       /* *why says what is wrong */
} lsmi_token_line_kind_t;

/* Parses one line (without its newline) into token and tenant (each
 * LSMI_TOKEN_LINE_MAX bytes). */
enum { LSMI_TOKEN_LINE_MAX = 1024 };
lsmi_token_line_kind_t lsmi_tokens_line(const char *line, char *token,
                                        char *tenant, const char **why);
/* Whether a token / a tenant name keeps the rules above (NULL: why not). */
const char *lsmi_tokens_check_token(const char *token);
const char *lsmi_tokens_check_tenant(const char *tenant);

/* The short id of a token that `lsmi token list` shows and `revoke`
 * takes: the first 12 hex digits of its SHA-256 (13 bytes). */
void lsmi_tokens_id(const char *token, char id[13]);

/*
 * A set read from `file` (NULL or "": none) and the text of LSMI_TOKENS
 * (NULL: none), both copied so that lsmi_tokens_load reads them again.
 * Empty until loaded. 0 or LSMI_ERR_NOMEM; *out is taken by the caller
 * (lsmi_tokens_destroy).
 */
int lsmi_tokens_create(const char *file, const char *env, lsmi_tokens_t **out);
/* NULL is a no-op. */
void lsmi_tokens_destroy(lsmi_tokens_t *t);

/* What a load found. */
typedef struct lsmi_tokens_info {
  size_t tokens, tenants;
  bool world_readable; /* the file may be read by every user */
  unsigned mode;       /* the file's permission bits (0 without a file) */
} lsmi_tokens_info_t;

/*
 * Reads the file and the variable again and, when both keep the rules,
 * replaces the set with what they hold: 0 with *info (may be NULL) saying
 * what was found. Otherwise the set stays as it was: LSMI_ERR_IO (the file
 * cannot be read), LSMI_ERR_INVALID (a line or item breaks a rule, or the
 * reload would leave no token where there were some, which would open the
 * API) or LSMI_ERR_NOMEM, with err saying why (field "tokens-file" or
 * "LSMI_TOKENS").
 */
int lsmi_tokens_load(lsmi_tokens_t *t, lsmi_tokens_info_t *info,
                     lsmi_error_t *err);

/* The tenant of a bearer token (constant-time compare) copied into tenant
 * (size bytes): true, or false when the token is unknown. Any thread. */
bool lsmi_tokens_tenant(lsmi_tokens_t *t, const char *token, char *tenant,
                        size_t size);
/* How many tokens and distinct tenants the set holds now (t NULL: 0). */
void lsmi_tokens_counts(lsmi_tokens_t *t, size_t *tokens, size_t *tenants);
/* Logs the warning that the tokens file `file` of permissions `mode` may
 * be read by every user of the machine. */
void lsmi_tokens_warn_mode(const char *file, unsigned mode);

/* Whether the set was given a tokens file (a reload has a file to read). */
bool lsmi_tokens_has_file(const lsmi_tokens_t *t);

#endif
