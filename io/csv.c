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

/* The columns of the header, by kind, and what the header had to say. */
typedef struct header {
  unsigned char *kind; /* C_* per column */
  size_t ncols, cap;
  size_t d1, d2; /* x1 and x2 columns */
  bool have_y, have_split, other_sep;
} header_t;

/* A room for one more column kind, up to max_cols columns. */
static int grow_kinds(header_t *h, uint64_t max_cols, lsmi_error_t *err) {
  if (h->ncols < h->cap)
    return 0;
  if (h->ncols >= max_cols)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, "",
                          "CSV header has more than %llu columns",
                          (unsigned long long)max_cols);
  size_t cap = h->cap ? h->cap * 2 : 16;
  unsigned char *nk = realloc(h->kind, cap);
  if (!nk)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  h->kind = nk;
  h->cap = cap;
  return 0;
}

/* Appends the kind of the column named f (trimmed) to h. A second y or
 * split column is a FORMAT error, returned once the caller has read the
 * rest of the header: a later error of the header takes its place. */
static int add_column(header_t *h, const char *f, lsmi_error_t *err) {
  unsigned char k = C_IGNORE;
  int rc = 0;
  if (strpbrk(f, ";\t"))
    h->other_sep = true;
  if (strcmp(f, "y") == 0) {
    k = C_Y;
    if (h->have_y)
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "y",
                          "CSV header has two y columns");
    h->have_y = true;
  } else if (strcmp(f, "split") == 0) {
    k = C_SPLIT;
    if (h->have_split)
      rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "split",
                          "CSV header has two split columns");
    h->have_split = true;
  } else if (strcmp(f, "x1") == 0 || strncmp(f, "x1_", 3) == 0) {
    k = C_X1;
    h->d1++;
  } else if (strcmp(f, "x2") == 0 || strncmp(f, "x2_", 3) == 0) {
    k = C_X2;
    h->d2++;
  }
  h->kind[h->ncols++] = k;
  return rc;
}

/* The header must name y and at least one x1 and x2 column, within
 * max_dims each. */
static int check_header(const header_t *h, const lsmi_limits_t *lim,
                        lsmi_error_t *err) {
  if (!h->have_y)
    return lsmi_error_set(err, LSMI_ERR_MISSING, "y",
                          "CSV header has no y column (labels)%s",
                          h->other_sep ? "; fields must be separated by "
                                         "commas, not semicolons or tabs"
                                       : "");
  if (h->d1 == 0 || h->d2 == 0) {
    int m = h->d1 == 0 ? 1 : 2;
    return lsmi_error_set(err, LSMI_ERR_MISSING, m == 1 ? "x1_*" : "x2_*",
                          "CSV header has no %s feature columns (named x%d_0, "
                          "x%d_1, ...)",
                          m == 1 ? "x1_*" : "x2_*", m, m);
  }
  if (h->d1 > lim->max_dims || h->d2 > lim->max_dims)
    return lsmi_error_set(
        err, LSMI_ERR_LIMIT, h->d1 > lim->max_dims ? "x1_*" : "x2_*",
        "CSV has %zu + %zu feature columns; the limit is %llu "
        "each",
        h->d1, h->d2, (unsigned long long)lim->max_dims);
  return 0;
}

/* Reads the header row into *h (h->kind taken by the caller, who frees it
 * whatever this returns). */
static int read_header(cursor_t *c, const lsmi_limits_t *lim, header_t *h,
                       lsmi_error_t *err) {
  memset(h, 0, sizeof *h);
  uint64_t max_cols = 2 * lim->max_dims + 64;
  char f[256];
  bool too_long;
  int more = 1, rc = 0;
  while (more == 1) {
    more = field(c, f, sizeof f, &too_long);
    if (more < 0)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                            "CSV header has an unterminated quote");
    int grown = grow_kinds(h, max_cols, err);
    if (grown)
      return grown;
    trim(f);
    int dup = add_column(h, f, err);
    if (dup)
      rc = dup;
  }
  return rc ? rc : check_header(h, lim, err);
}

/* The split a row's "split" field names: *which 0 for train, 1 for val. */
static int parse_split(const char *f, size_t line, int *which,
                       lsmi_error_t *err) {
  if (strcasecmp(f, "train") == 0) {
    *which = 0;
    return 0;
  }
  if (strcasecmp(f, "val") == 0 || strcasecmp(f, "validation") == 0 ||
      strcasecmp(f, "valid") == 0 || strcasecmp(f, "test") == 0) {
    *which = 1;
    return 0;
  }
  return lsmi_error_set(err, LSMI_ERR_DATA, "split",
                        "CSV line %zu: split is \"%.32s\", not train or val",
                        line, f);
}

/* A finite number in the C locale filling the whole field f (column col
 * of kind k, for messages). */
static int parse_number(const char *f, bool too_long, size_t line, size_t col,
                        unsigned char k, locale_t cloc, double *v,
                        lsmi_error_t *err) {
  const char *what = k == C_Y ? "y" : k == C_X1 ? "x1" : "x2";
  char *end;
  *v = strtod_l(f, &end, cloc);
  if (too_long || f[0] == '\0' || *end != '\0')
    return lsmi_error_set(err, LSMI_ERR_DATA, what,
                          "CSV line %zu, column %zu (%s): \"%.32s\" is not a "
                          "number",
                          line, col, what, f);
  if (!isfinite(*v))
    return lsmi_error_set(err, LSMI_ERR_DATA, what,
                          "CSV line %zu, column %zu (%s): %s is not finite",
                          line, col, what, f);
  return 0;
}

/* Reads one data row into row ([x1..., x2..., y]) and *which (0 train,
 * 1 val); it must have as many fields as the header. */
static int read_row(cursor_t *c, const header_t *h, locale_t cloc, double *row,
                    int *which, lsmi_error_t *err) {
  size_t line = c->line, col = 0, j1 = 0, j2 = 0;
  char f[256];
  bool too_long;
  int more = 1, rc = 0;
  *which = 0;
  while (more == 1 && !rc) {
    more = field(c, f, sizeof f, &too_long);
    if (more < 0)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                            "CSV line %zu has an unterminated quote", line);
    if (col >= h->ncols)
      return lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                            "CSV line %zu has more fields than the header "
                            "(%zu)",
                            line, h->ncols);
    unsigned char k = h->kind[col++];
    if (k == C_IGNORE)
      continue;
    trim(f);
    if (k == C_SPLIT) {
      rc = parse_split(f, line, which, err);
      continue;
    }
    double v;
    rc = parse_number(f, too_long, line, col, k, cloc, &v, err);
    if (!rc)
      row[k == C_X1 ? j1++ : k == C_X2 ? h->d1 + j2++ : h->d1 + h->d2] = v;
  }
  if (!rc && col != h->ncols)
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                        "CSV line %zu has %zu fields; the header has %zu", line,
                        col, h->ncols);
  return rc;
}

/* Appends row (w doubles) to the block of split `which`. */
static int append_row(block_t *b, int which, const double *row, size_t w,
                      const lsmi_limits_t *lim, lsmi_error_t *err) {
  if (b->n == b->cap) {
    if (b->n >= lim->max_rows)
      return lsmi_error_set(err, LSMI_ERR_LIMIT, which ? "val_y" : "train_y",
                            "CSV has more than %llu %s rows",
                            (unsigned long long)lim->max_rows,
                            which ? "val" : "train");
    size_t nc = b->cap ? b->cap * 2 : 256;
    if (nc > lim->max_rows)
      nc = (size_t)lim->max_rows;
    double *nv = realloc(b->v, nc * w * sizeof *nv);
    if (!nv)
      return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    b->v = nv;
    b->cap = nc;
  }
  memcpy(b->v + b->n * w, row, w * sizeof *row);
  b->n++;
  return 0;
}

/* Reads every data row into blk[0] (train) and blk[1] (val). On failure
 * the blocks are freed (and NULL). */
static int read_rows(cursor_t *c, const header_t *h, const lsmi_limits_t *lim,
                     block_t blk[2], lsmi_error_t *err) {
  size_t w = h->d1 + h->d2 + 1; /* doubles per stored row */
  double *row = malloc(w * sizeof *row);
  /* Numbers are read in the C locale whatever the process's locale is, so
   * that "1.5" never depends on LC_NUMERIC. */
  locale_t cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  int rc = 0;
  if (!row || cloc == (locale_t)0) {
    rc = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    goto out;
  }
  while (!rc && c->p < c->end) {
    if (blank_line(c)) {
      skip_line(c);
      continue;
    }
    int which;
    rc = read_row(c, h, cloc, row, &which, err);
    if (!rc)
      rc = append_row(&blk[which], which, row, w, lim, err);
  }
out:
  free(row);
  if (cloc != (locale_t)0)
    freelocale(cloc);
  for (int s = 0; rc && s < 2; s++) {
    free(blk[s].v);
    blk[s].v = NULL;
  }
  return rc;
}

/* Hands the blocks to `as` (taken) and puts the three strided views of
 * each non-empty split. */
static int put_blocks(lsmi__arrays_t *as, block_t blk[2], const header_t *h,
                      const lsmi_limits_t *lim, lsmi_error_t *err) {
  int rc = 0;
  for (int s = 0; s < 2; s++) {
    if (blk[s].v && rc)
      free(blk[s].v);
    else if (blk[s].v)
      rc = lsmi__arrays_own(as, blk[s].v, err); /* frees it on failure */
  }
  size_t w = h->d1 + h->d2 + 1;
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
      a.shape[1] = q == 0 ? h->d1 : h->d2;
      a.stride[0] = w * sizeof(double);
      a.stride[1] = sizeof(double);
      a.offset = (q == 0 ? 0 : q == 1 ? h->d1 : h->d1 + h->d2) * sizeof(double);
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

int lsmi__read_csv(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err) {
  cursor_t c = {(const char *)buf, (const char *)buf + len, 1};
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
    c.p += 3;
  while (c.p < c.end && blank_line(&c))
    skip_line(&c);
  header_t h;
  block_t blk[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
  int rc = read_header(&c, lim, &h, err);
  if (!rc)
    rc = read_rows(&c, &h, lim, blk, err);
  if (!rc)
    rc = put_blocks(as, blk, &h, lim, err);
  free(h.kind);
  return rc;
}
