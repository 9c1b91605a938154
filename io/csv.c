/*
 * csv.c — CSV datasets, as written by pandas or a spreadsheet.
 *
 * The first row is a header. Columns are recognised by name:
 *   y        the integer label (required)
 *   x1_*     features of modality 1, in the order of the header ("x1" alone
 *            for a single feature)
 *   x2_*     features of modality 2, likewise
 *   split    optional: "train" or "val" ("validation", "valid" and "test"
 *            count as val; case-insensitive). Without it every row is train
 *            and val_fraction, if given, splits some off.
 * Every other column (an index, ids, notes) is ignored. Fields may be
 * quoted ("1.5", with "" for a quote inside); lines end in LF or CRLF; a
 * UTF-8 byte order mark and blank lines are skipped. Every data row must
 * have as many fields as the header.
 *
 * Numbers are parsed with strtod in the C locale.
 *
 * One pass: each row's numbers go into a growing float64 block per split,
 * rows laid out as [x1..., x2..., y], and the arrays handed to the
 * assembly are strided views of those blocks. Errors name the line and
 * column.
 */
#include <ctype.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dsio.h"

enum { C_IGNORE, C_X1, C_X2, C_Y, C_SPLIT };

typedef struct cursor {
  const char *p, *end;
  size_t line;
} cursor_t;

typedef struct block {
  double *v;
  size_t n, cap; /* rows */
} block_t;

/* Reads one field into out (unquoted, NUL-terminated, truncated to cap-1;
 * *too_long is set then). Returns 1 if the row continues, 0 at its end, -1
 * on an unterminated quote. */
static int field(cursor_t *c, char *out, size_t cap, bool *too_long) {
  size_t k = 0;
  *too_long = false;
  if (c->p < c->end && *c->p == '"') {
    c->p++;
    for (;;) {
      if (c->p >= c->end)
        return -1;
      char ch = *c->p++;
      if (ch == '"') {
        if (c->p < c->end && *c->p == '"') {
          c->p++;
        } else {
          break;
        }
      } else if (ch == '\n') {
        c->line++;
      }
      if (k + 1 < cap)
        out[k++] = ch;
      else
        *too_long = true;
    }
    /* Anything between the closing quote and the separator is kept. */
  }
  while (c->p < c->end && *c->p != ',' && *c->p != '\n') {
    char ch = *c->p++;
    if (ch == '\r' && (c->p >= c->end || *c->p == '\n'))
      continue;
    if (k + 1 < cap)
      out[k++] = ch;
    else
      *too_long = true;
  }
  out[k] = '\0';
  if (c->p < c->end && *c->p == ',') {
    c->p++;
    return 1;
  }
  if (c->p < c->end) {
    c->p++; /* '\n' */
    c->line++;
  }
  return 0;
}

static bool blank_line(const cursor_t *c) {
  const char *q = c->p;
  while (q < c->end && (*q == ' ' || *q == '\t' || *q == '\r'))
    q++;
  return q >= c->end || *q == '\n';
}

static void skip_line(cursor_t *c) {
  while (c->p < c->end && *c->p != '\n')
    c->p++;
  if (c->p < c->end) {
    c->p++;
    c->line++;
  }
}

static void trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  size_t i = 0;
  while (s[i] && isspace((unsigned char)s[i]))
    i++;
  memmove(s, s + i, n - i + 1);
}

int lsmi__read_csv(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err) {
  cursor_t c = {(const char *)buf, (const char *)buf + len, 1};
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
    c.p += 3;
  while (c.p < c.end && blank_line(&c))
    skip_line(&c);
  /* Header. */
  uint64_t max_cols = 2 * lim->max_dims + 64;
  size_t ncols = 0, cap = 0;
  unsigned char *kind = NULL;
  size_t d1 = 0, d2 = 0;
  bool have_y = false, have_split = false, other_sep = false;
  char f[256];
  bool too_long;
  int more = 1, rc = 0;
  while (more == 1) {
    more = field(&c, f, sizeof f, &too_long);
    if (more < 0) {
      free(kind);
      return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                            "CSV header has an unterminated quote");
    }
    if (ncols == cap) {
      if (ncols >= max_cols) {
        free(kind);
        return lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                              "CSV header has more than %llu columns",
                              (unsigned long long)max_cols);
      }
      cap = cap ? cap * 2 : 16;
      unsigned char *nk = realloc(kind, cap);
      if (!nk) {
        free(kind);
        return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
      }
      kind = nk;
    }
    trim(f);
    if (strpbrk(f, ";\t"))
      other_sep = true;
    unsigned char k = C_IGNORE;
    if (strcmp(f, "y") == 0) {
      k = C_Y;
      if (have_y)
        rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "y",
                            "CSV header has two y columns");
      have_y = true;
    } else if (strcmp(f, "split") == 0) {
      k = C_SPLIT;
      if (have_split)
        rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "split",
                            "CSV header has two split columns");
      have_split = true;
    } else if (strcmp(f, "x1") == 0 || strncmp(f, "x1_", 3) == 0) {
      k = C_X1;
      d1++;
    } else if (strcmp(f, "x2") == 0 || strncmp(f, "x2_", 3) == 0) {
      k = C_X2;
      d2++;
    }
    kind[ncols++] = k;
  }
  if (!rc && !have_y)
    rc = lsmi_error_set(err, LSMI_ERR_MISSING, "y",
                        "CSV header has no y column (labels)%s",
                        other_sep ? "; fields must be separated by commas, "
                                    "not semicolons or tabs"
                                  : "");
  if (!rc && (d1 == 0 || d2 == 0))
    rc = lsmi_error_set(err, LSMI_ERR_MISSING, d1 == 0 ? "x1_*" : "x2_*",
                        "CSV header has no %s feature columns (named x%d_0, "
                        "x%d_1, ...)",
                        d1 == 0 ? "x1_*" : "x2_*", d1 == 0 ? 1 : 2,
                        d1 == 0 ? 1 : 2);
  if (!rc && (d1 > lim->max_dims || d2 > lim->max_dims))
    rc = lsmi_error_set(err, LSMI_ERR_LIMIT,
                        d1 > lim->max_dims ? "x1_*" : "x2_*",
                        "CSV has %zu + %zu feature columns; the limit is %llu "
                        "each",
                        d1, d2, (unsigned long long)lim->max_dims);
  if (rc) {
    free(kind);
    return rc;
  }
  size_t w = d1 + d2 + 1; /* doubles per stored row */
  block_t blk[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
  double *row = malloc(w * sizeof *row);
  /* Numbers are read in the C locale whatever the process's locale is, so
   * that "1.5" never depends on LC_NUMERIC. */
  locale_t cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (!row || cloc == (locale_t)0) {
    free(row);
    free(kind);
    if (cloc != (locale_t)0)
      freelocale(cloc);
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  }
  while (!rc && c.p < c.end) {
    if (blank_line(&c)) {
      skip_line(&c);
      continue;
    }
    size_t line = c.line, col = 0, j1 = 0, j2 = 0;
    int which = 0;
    more = 1;
    while (more == 1 && !rc) {
      more = field(&c, f, sizeof f, &too_long);
      if (more < 0) {
        rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                            "CSV line %zu has an unterminated quote", line);
        break;
      }
      if (col >= ncols) {
        rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                            "CSV line %zu has more fields than the header "
                            "(%zu)",
                            line, ncols);
        break;
      }
      unsigned char k = kind[col++];
      if (k == C_IGNORE)
        continue;
      trim(f);
      if (k == C_SPLIT) {
        if (strcasecmp(f, "train") == 0)
          which = 0;
        else if (strcasecmp(f, "val") == 0 ||
                 strcasecmp(f, "validation") == 0 ||
                 strcasecmp(f, "valid") == 0 || strcasecmp(f, "test") == 0)
          which = 1;
        else
          rc = lsmi_error_set(err, LSMI_ERR_DATA, "split",
                              "CSV line %zu: split is \"%.32s\", not train or "
                              "val",
                              line, f);
        continue;
      }
      const char *what = k == C_Y ? "y" : k == C_X1 ? "x1" : "x2";
      char *end;
      double v = strtod_l(f, &end, cloc);
      if (too_long || f[0] == '\0' || *end != '\0') {
        rc = lsmi_error_set(err, LSMI_ERR_DATA, what,
                            "CSV line %zu, column %zu (%s): \"%.32s\" is not "
                            "a number",
                            line, col, what, f);
        break;
      }
      if (!isfinite(v)) {
        rc = lsmi_error_set(err, LSMI_ERR_DATA, what,
                            "CSV line %zu, column %zu (%s): %s is not finite",
                            line, col, what, f);
        break;
      }
      if (k == C_X1)
        row[j1++] = v;
      else if (k == C_X2)
        row[d1 + j2++] = v;
      else
        row[d1 + d2] = v;
    }
    if (rc)
      break;
    if (col != ncols) {
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                          "CSV line %zu has %zu fields; the header has %zu",
                          line, col, ncols);
      break;
    }
    block_t *b = &blk[which];
    if (b->n == b->cap) {
      if (b->n >= lim->max_rows) {
        rc = lsmi_error_set(err, LSMI_ERR_LIMIT, which ? "val_y" : "train_y",
                            "CSV has more than %llu %s rows",
                            (unsigned long long)lim->max_rows,
                            which ? "val" : "train");
        break;
      }
      size_t nc = b->cap ? b->cap * 2 : 256;
      if (nc > lim->max_rows)
        nc = (size_t)lim->max_rows;
      double *nv = realloc(b->v, nc * w * sizeof *nv);
      if (!nv) {
        rc = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
        break;
      }
      b->v = nv;
      b->cap = nc;
    }
    memcpy(b->v + b->n * w, row, w * sizeof *row);
    b->n++;
  }
  free(row);
  free(kind);
  freelocale(cloc);
  for (int s = 0; s < 2; s++) {
    if (blk[s].v && rc)
      free(blk[s].v);
    else if (blk[s].v)
      rc = lsmi__arrays_own(as, blk[s].v, err); /* frees it on failure */
  }
  for (int s = 0; s < 2 && !rc; s++) {
    if (!blk[s].v)
      continue;
    for (int q = 0; q < 3 && !rc; q++) {
      lsmi__array_t a;
      memset(&a, 0, sizeof a);
      snprintf(a.key, sizeof a.key, "%s_%s", s ? "val" : "train",
               q == 0   ? "x1"
               : q == 1 ? "x2"
                        : "y");
      a.dtype = LSMI__DT_F64;
      a.ndim = q == 2 ? 1 : 2;
      a.shape[0] = blk[s].n;
      a.shape[1] = q == 0 ? d1 : d2;
      a.stride[0] = w * sizeof(double);
      a.stride[1] = sizeof(double);
      a.offset = (q == 0 ? 0 : q == 1 ? d1 : d1 + d2) * sizeof(double);
      a.data = (const unsigned char *)blk[s].v;
      a.data_len = blk[s].n * w * sizeof(double);
      rc = lsmi__arrays_put(as, 3 * s + q, &a, lim, err);
    }
  }
  if (!rc && !blk[0].v)
    rc =
        lsmi_error_set(err, LSMI_ERR_SHAPE, "train_y", "CSV has no train rows");
  return rc;
}
