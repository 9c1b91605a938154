/*
 * cmd_token.c — `lsmi token add|list|revoke`: edits the daemon's tokens
 * file (server/tokens.h has its rules) in place, atomically.
 *
 * The file is read whole, changed line by line (comments, blank lines and
 * the other entries stay as they were) and written back through
 * common/durable.h: a new file beside it, mode 0600, fsynced and renamed
 * over it, so the daemon's reload (SIGHUP) reads the old file or the new
 * one, never half of one. The new file keeps the old one's owner and
 * group; a new file gets its directory's when lsmi runs as root, so that
 * a tokens file in a service's state directory stays readable by the
 * service. Two edits at once queue on a lock of the file's directory
 * (flock), so neither loses the other's change. A token is shown once,
 * when `add` makes it; `list` shows ids (the first 12 hex digits of a
 * token's SHA-256), which `revoke` takes as well as the token.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "durable.h"
#include "tokens.h"

static void token_usage(FILE *out) {
  fprintf(out,
          "usage: lsmi token add TENANT [--token TOKEN] [--tokens-file FILE]\n"
          "       lsmi token list [--tokens-file FILE]\n"
          "       lsmi token revoke (TOKEN | ID | --tenant TENANT)\n"
          "                         [--tokens-file FILE]\n"
          "\n"
          "Edits the daemon's tokens file (--tokens-file, or the variable\n"
          "LSMI_TOKENS_FILE) atomically, mode 0600. The daemon reads it again\n"
          "on SIGHUP: `systemctl reload lsmi` or `kill -HUP PID`.\n"
          "\n"
          "add     a token for TENANT: a new random one, printed once (keep\n"
          "        it), or --token's (16 characters or more)\n"
          "list    the tenants and the ids of their tokens (never a token)\n"
          "revoke  the token, or the token of that id, or with --tenant\n"
          "        every token of the tenant\n");
}

/* The file's lines (without their newlines). */
typedef struct lines {
  char **v;
  size_t n;
} lines_t;

static void lines_free(lines_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int lines_push(lines_t *l, const char *s) {
  char **v = realloc(l->v, (l->n + 1) * sizeof *v);
  if (v == NULL)
    return -1;
  l->v = v;
  if ((l->v[l->n] = strdup(s)) == NULL)
    return -1;
  l->n++;
  return 0;
}

/* Reads path into l: 0, 1 when it does not exist (l empty), -1 with a
 * message on failure. */
static int read_lines(const char *path, lines_t *l) {
  FILE *f = fopen(path, "r");
  if (f == NULL && errno == ENOENT)
    return 1;
  if (f == NULL) {
    fprintf(stderr, "lsmi token: cannot read %s: %s\n", path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  while (rc == 0 && getline(&line, &cap, f) >= 0) {
    line[strcspn(line, "\n")] = '\0';
    rc = lines_push(l, line);
  }
  if (rc == 0 && ferror(f))
    rc = -1;
  if (rc)
    fprintf(stderr, "lsmi token: cannot read %s\n", path);
  free(line);
  fclose(f);
  return rc;
}

/* Writes l over path durably (see the top of the file): 0 or -1. */
static int write_lines(const char *path, const lines_t *l) {
  struct stat old, dir;
  bool had = stat(path, &old) == 0;
  char dpath[PATH_MAX];
  if (lsmi_durable_dir_of(path, dpath, sizeof dpath))
    return -1;
  lsmi_durable_t d = LSMI_DURABLE_INIT;
  int rc = lsmi_durable_begin(&d, NULL, path, 0600);
  if (rc == 0 && had)
    rc = fchown(d.fd, old.st_uid, old.st_gid) == 0 || errno == EPERM ? 0
                                                                     : -errno;
  else if (rc == 0 && geteuid() == 0 && stat(dpath, &dir) == 0)
    rc = fchown(d.fd, dir.st_uid, dir.st_gid) == 0 ? 0 : -errno;
  for (size_t i = 0; rc == 0 && i < l->n; i++) {
    rc = lsmi_durable_write(&d, l->v[i], strlen(l->v[i]));
    if (rc == 0)
      rc = lsmi_durable_write(&d, "\n", 1);
  }
  if (rc)
    lsmi_durable_abort(&d);
  else
    rc = lsmi_durable_commit(&d, path);
  if (rc)
    fprintf(stderr, "lsmi token: cannot write %s: %s\n", path, strerror(-rc));
  return rc ? -1 : 0;
}

/* A new random token: 24 bytes as 48 hex digits. */
static int new_token(char out[49]) {
  unsigned char raw[24];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno != EINTR)
      return -1;
    if (n > 0)
      got += (size_t)n;
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < sizeof raw; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[48] = '\0';
  return 0;
}

typedef struct targs {
  const char *verb, *arg, *file, *token, *tenant;
} targs_t;

/* The arguments after the verb: 0, or 2 after a usage message. */
static int parse(int argc, char **argv, targs_t *a) {
  for (int i = 2; i < argc; i++) {
    const char **dst = !strcmp(argv[i], "--tokens-file") ? &a->file
                       : !strcmp(argv[i], "--token")     ? &a->token
                       : !strcmp(argv[i], "--tenant")    ? &a->tenant
                                                         : NULL;
    if (dst && i + 1 < argc) {
      *dst = argv[++i];
    } else if (dst || argv[i][0] == '-' || a->arg) {
      fprintf(stderr, "lsmi token: unexpected '%s'\n\n", argv[i]);
      token_usage(stderr);
      return 2;
    } else {
      a->arg = argv[i];
    }
  }
  if (a->file == NULL || a->file[0] == '\0')
    a->file = getenv("LSMI_TOKENS_FILE");
  if (a->file == NULL || a->file[0] == '\0') {
    fprintf(stderr, "lsmi token: which file? Give --tokens-file FILE or set "
                    "LSMI_TOKENS_FILE\n");
    return 2;
  }
  return 0;
}

static int cmd_list(const lines_t *l, const char *file) {
  char token[LSMI_TOKEN_LINE_MAX], tenant[LSMI_TOKEN_LINE_MAX], id[13];
  int bad = 0;
  printf("%-24s %s\n", "TENANT", "ID");
  for (size_t i = 0; i < l->n; i++) {
    const char *why;
    lsmi_token_line_kind_t k = lsmi_tokens_line(l->v[i], token, tenant, &why);
    if (k == LSMI_TOKEN_LINE_ENTRY) {
      lsmi_tokens_id(token, id);
      printf("%-24s %s\n", tenant, id);
    } else if (k == LSMI_TOKEN_LINE_BAD) {
      fprintf(stderr, "lsmi token: %s, line %zu: %s\n", file, i + 1, why);
      bad++;
    }
  }
  if (bad)
    fprintf(stderr, "lsmi token: the daemon refuses this file until the "
                    "line(s) above are mended or revoked\n");
  return bad ? 1 : 0;
}

static int cmd_add(lines_t *l, const targs_t *a) {
  char made[49], token[LSMI_TOKEN_LINE_MAX], tenant[LSMI_TOKEN_LINE_MAX];
  const char *why =
      a->arg ? lsmi_tokens_check_tenant(a->arg) : "add needs the TENANT";
  const char *tok = a->token;
  if (why == NULL && tok == NULL && new_token(made) == 0)
    tok = made;
  if (why == NULL && tok == NULL)
    why = "no random bytes for a token";
  if (why == NULL)
    why = lsmi_tokens_check_token(tok);
  for (size_t i = 0; why == NULL && i < l->n; i++) {
    const char *line_why; /* another line's fault is not this command's */
    if (lsmi_tokens_line(l->v[i], token, tenant, &line_why) ==
            LSMI_TOKEN_LINE_ENTRY &&
        !strcmp(token, tok))
      why = "the file has that token already";
  }
  char line[LSMI_TOKEN_LINE_MAX + LSMI_TENANT_MAX + 2];
  if (why == NULL) {
    snprintf(line, sizeof line, "%s %s", tok, a->arg);
    if (lines_push(l, line) || write_lines(a->file, l))
      return 1;
  }
  if (why) {
    fprintf(stderr, "lsmi token: %s\n", why);
    return a->arg ? 1 : 2;
  }
  char id[13];
  lsmi_tokens_id(tok, id);
  if (tok == made)
    printf("%s\n", tok);
  fprintf(stderr,
          "lsmi token: added token %s for tenant %s to %s; reload the "
          "daemon (systemctl reload lsmi, or kill -HUP its pid)\n",
          id, a->arg, a->file);
  return 0;
}

static int cmd_revoke(lines_t *l, const targs_t *a) {
  if ((a->arg == NULL) == (a->tenant == NULL)) {
    fprintf(stderr, "lsmi token: revoke takes a TOKEN, an ID or --tenant\n");
    return 2;
  }
  char token[LSMI_TOKEN_LINE_MAX], tenant[LSMI_TOKEN_LINE_MAX], id[13];
  size_t kept = 0, gone = 0;
  for (size_t i = 0; i < l->n; i++) {
    const char *why;
    bool drop = false;
    if (lsmi_tokens_line(l->v[i], token, tenant, &why) ==
        LSMI_TOKEN_LINE_ENTRY) {
      lsmi_tokens_id(token, id);
      drop = a->tenant ? !strcmp(tenant, a->tenant)
                       : !strcmp(token, a->arg) || !strcmp(id, a->arg);
    }
    if (drop) {
      free(l->v[i]);
      gone++;
    } else {
      l->v[kept++] = l->v[i];
    }
  }
  l->n = kept;
  if (gone == 0) {
    fprintf(stderr, "lsmi token: no such token in %s\n", a->file);
    return 1;
  }
  if (write_lines(a->file, l))
    return 1;
  fprintf(stderr,
          "lsmi token: revoked %zu token(s) in %s; reload the daemon "
          "(systemctl reload lsmi, or kill -HUP its pid)\n",
          gone, a->file);
  return 0;
}

/* Locks the directory of path for the edit (flock, released at exit):
 * the fd, or -1 (then the edit goes on unlocked). */
static int lock_dir(const char *path) {
  char dir[PATH_MAX];
  if (lsmi_durable_dir_of(path, dir, sizeof dir))
    return -1;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0)
    flock(fd, LOCK_EX);
  return fd;
}

int lsmi_token_main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    token_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  targs_t a = {argv[1], NULL, NULL, NULL, NULL};
  bool add = !strcmp(a.verb, "add"), list = !strcmp(a.verb, "list"),
       revoke = !strcmp(a.verb, "revoke");
  if (!add && !list && !revoke) {
    fprintf(stderr, "lsmi token: unknown command '%s'\n\n", a.verb);
    token_usage(stderr);
    return 2;
  }
  int rc = parse(argc, argv, &a);
  if (rc)
    return rc;
  int lock = add || revoke ? lock_dir(a.file) : -1;
  lines_t l = {NULL, 0};
  int got = read_lines(a.file, &l);
  if (got < 0 || (got == 1 && !add)) {
    if (got == 1)
      fprintf(stderr, "lsmi token: %s does not exist\n", a.file);
    rc = 1;
  } else {
    rc = add    ? cmd_add(&l, &a)
         : list ? cmd_list(&l, a.file)
                : cmd_revoke(&l, &a);
  }
  lines_free(&l);
  if (lock >= 0)
    close(lock);
  return rc;
}
