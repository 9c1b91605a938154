/*
 * csv.c — CSV datasets, as written by pandas or a spreadsheet.
 *
 * The first row is a header. Columns are recognised by name:
 *   y        the label (required): integers, or any text (strings are
 *            classes too; the assembly numbers them in sorted order)
 *   x1_*     features of modality 1, in the order of the header ("x1" alone
 *            for a single feature)
 *   x2_*     features of modality 2, likewise
 *   id       optional: the sample id, any text, carried to the results
 *   split    optional: "train" or "val" ("validation", "valid" and "test"
 *            count as val; case-insensitive). Without it every row is train
 *            and val_fraction, if given, splits some off.
 * The caller may name them otherwise (lsmi__arrays_t.keys): y and id a
 * column's name, x1 and x2 a name or a prefix ("img_" takes img_0, img_1,
 * ...; "img" takes img, img_0 and img0, not image). Every other column (an
 * index, notes) is ignored. Fields may be quoted ("1.5", with "" for a
 * quote inside); lines end in LF or CRLF; a UTF-8 byte order mark and
 * blank lines are skipped. Every data row must have as many fields as the
 * header.
 *
 * Numbers are parsed with strtod in the C locale.
 *
 * One pass: each row's numbers go into a growing float64 block per split,
 * rows laid out as [x1..., x2...], its label and id into the split's text,
 * and its position among the data rows beside them; the arrays handed to
 * the assembly are strided views of those blocks. Errors name the line and
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

enum { C_IGNORE, C_X1, C_X2, C_Y, C_ID, C_SPLIT };

typedef struct cursor {
  const char *p, *end;
  size_t line;
} cursor_t;

/* The rows of one split. */
typedef struct block {
  double *v;         /* (n, d1 + d2) */
  uint64_t *row;     /* (n) position among the file's data rows */
  size_t *y, *id;    /* (n) offsets of the label and id in text */
  size_t n, cap;     /* rows */
  char *text;        /* labels and ids, NUL-terminated */
  size_t tlen, tcap; /* bytes */
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
  bool have_y, have_id, have_split, other_sep;
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

/* Whether column f belongs to a modality named (or prefixed) p: f is p, or
 * p and more, where p ends in '_' or the rest starts with '_' or a digit. */
static bool in_modality(const char *f, const char *p) {
  size_t k = strlen(p);
  if (strncmp(f, p, k) != 0)
    return false;
  char next = f[k];
  return next == '\0' || (k > 0 && p[k - 1] == '_') || next == '_' ||
         (next >= '0' && next <= '9');
}

/* The kind of the column named f, by the caller's names first. A column
 * two of them claim is a FORMAT error. */
static int column_kind(const lsmi__arrays_t *as, const char *f,
                       unsigned char *kind, lsmi_error_t *err) {
  const char *const *k = as->keys;
  bool m1 = k[LSMI__X1] && in_modality(f, k[LSMI__X1]);
  bool m2 = k[LSMI__X2] && in_modality(f, k[LSMI__X2]);
  if (m1 && m2)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, f,
                          "CSV column %s matches both x1 (%s) and x2 (%s)", f,
                          k[LSMI__X1], k[LSMI__X2]);
  *kind = m1                    ? C_X1
          : m2                  ? C_X2
          : k[LSMI__Y]          ? (strcmp(f, k[LSMI__Y]) == 0 ? C_Y : C_IGNORE)
          : strcmp(f, "y") == 0 ? C_Y
                                : C_IGNORE;
  if (*kind == C_IGNORE && strcmp(f, k[LSMI__ID] ? k[LSMI__ID] : "id") == 0)
    *kind = C_ID;
  else if (*kind == C_IGNORE && strcmp(f, "split") == 0)
    *kind = C_SPLIT;
  else if (*kind == C_IGNORE && !k[LSMI__X1] &&
           (strcmp(f, "x1") == 0 || strncmp(f, "x1_", 3) == 0))
    *kind = C_X1;
  else if (*kind == C_IGNORE && !k[LSMI__X2] &&
           (strcmp(f, "x2") == 0 || strncmp(f, "x2_", 3) == 0))
    *kind = C_X2;
  return 0;
}

/* Appends the kind of the column named f (trimmed) to h. A second y, id or
 * split column is a FORMAT error, returned once the caller has read the
 * rest of the header: a later error of the header takes its place. */
static int add_column(header_t *h, const lsmi__arrays_t *as, const char *f,
                      lsmi_error_t *err) {
  unsigned char k = C_IGNORE;
  int rc = column_kind(as, f, &k, err);
  if (strpbrk(f, ";\t"))
    h->other_sep = true;
  static const char *const what[] = {"", "", "", "y", "id", "split"};
  bool *once[] = {NULL, NULL, NULL, &h->have_y, &h->have_id, &h->have_split};
  if (!rc && once[k] && *once[k])
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, what[k],
                        "CSV header has two %s columns", what[k]);
  if (once[k])
    *once[k] = true;
  h->d1 += k == C_X1;
  h->d2 += k == C_X2;
  h->kind[h->ncols++] = k;
  return rc;
}

/* The header must name y and at least one x1 and x2 column, within
 * max_dims each; when it does not, the message says what it holds and
 * how to name the columns. */
static int check_header(const header_t *h, const lsmi__arrays_t *as,
                        const lsmi_limits_t *lim, lsmi_error_t *err) {
  static const char hint[] = ": name the columns with --y COLUMN --x1 PREFIX "
                             "--x2 PREFIX (upload: ?y=&x1=&x2=)";
  const char *const *k = as->keys;
  if (!h->have_y && h->other_sep)
    return lsmi_error_set(err, LSMI_ERR_MISSING, "y",
                          "CSV header has no y column (labels); fields must "
                          "be separated by commas, not semicolons or tabs");
  if (!h->have_y && k[LSMI__Y])
    return lsmi_error_set(err, LSMI_ERR_MISSING, "y",
                          "CSV header has no column %s (given for y); it "
                          "holds %s",
                          k[LSMI__Y], as->seen);
  if (!h->have_y)
    return lsmi_error_set(err, LSMI_ERR_MISSING, "y",
                          "CSV header has no y column (labels); it holds "
                          "%s%s",
                          as->seen, hint);
  if (h->d1 == 0 || h->d2 == 0) {
    int m = h->d1 == 0 ? LSMI__X1 : LSMI__X2;
    if (k[m])
      return lsmi_error_set(err, LSMI_ERR_MISSING, k[m],
                            "CSV header has no column %s or %s... (given for "
                            "x%d); it holds %s",
                            k[m], k[m], m + 1, as->seen);
    return lsmi_error_set(err, LSMI_ERR_MISSING, m ? "x2_*" : "x1_*",
                          "CSV header has no x%d_* feature columns (named "
                          "x%d_0, x%d_1, ...); it holds %s%s",
                          m + 1, m + 1, m + 1, as->seen, hint);
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
static int read_header(cursor_t *c, lsmi__arrays_t *as,
                       const lsmi_limits_t *lim, header_t *h,
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
    lsmi__arrays_seen(as, f);
    int dup = add_column(h, as, f, err);
    if (dup)
      rc = dup;
  }
  return rc ? rc : check_header(h, as, lim, err);
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
  const char *what = k == C_X1 ? "x1" : "x2";
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

/* One data row: its numbers ([x1..., x2...]), label, id and split. */
typedef struct row {
  double *v;
  char y[256], id[256];
  int which; /* 0 train, 1 val */
} row_t;

/* The label or id field f (column col) into out: at most 255 bytes. */
static int text_field(const char *f, bool too_long, size_t line, size_t col,
                      unsigned char k, char out[256], lsmi_error_t *err) {
  const char *what = k == C_Y ? "y" : "id";
  if (too_long)
    return lsmi_error_set(err, LSMI_ERR_DATA, what,
                          "CSV line %zu, column %zu (%s) is longer than 255 "
                          "bytes",
                          line, col, what);
  snprintf(out, 256, "%s", f);
  return 0;
}

/* Reads one data row into *r; it must have as many fields as the
 * header. */
static int read_row(cursor_t *c, const header_t *h, locale_t cloc, row_t *r,
                    lsmi_error_t *err) {
  size_t line = c->line, col = 0, j1 = 0, j2 = 0;
  char f[256];
  bool too_long;
  int more = 1, rc = 0;
  r->which = 0;
  r->id[0] = '\0';
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
      rc = parse_split(f, line, &r->which, err);
    } else if (k == C_Y || k == C_ID) {
      rc = text_field(f, too_long, line, col, k, k == C_Y ? r->y : r->id, err);
    } else {
      double v;
      rc = parse_number(f, too_long, line, col, k, cloc, &v, err);
      if (!rc)
        r->v[k == C_X1 ? j1++ : h->d1 + j2++] = v;
    }
  }
  if (!rc && col != h->ncols)
    rc = lsmi_error_set(err, LSMI_ERR_FORMAT, "",
                        "CSV line %zu has %zu fields; the header has %zu", line,
                        col, h->ncols);
  return rc;
}

/* Room for one more row in b, up to max_rows. */
static int grow_block(block_t *b, int which, size_t w, const lsmi_limits_t *lim,
                      lsmi_error_t *err) {
  if (b->n < b->cap)
    return 0;
  if (b->n >= lim->max_rows)
    return lsmi_error_set(err, LSMI_ERR_LIMIT, which ? "val_y" : "train_y",
                          "CSV has more than %llu %s rows",
                          (unsigned long long)lim->max_rows,
                          which ? "val" : "train");
  size_t nc = b->cap ? b->cap * 2 : 256;
  if (nc > lim->max_rows)
    nc = (size_t)lim->max_rows;
  double *nv = realloc(b->v, nc * w * sizeof *nv);
  if (nv)
    b->v = nv;
  uint64_t *nr = nv ? realloc(b->row, nc * sizeof *nr) : NULL;
  if (nr)
    b->row = nr;
  size_t *ny = nr ? realloc(b->y, nc * sizeof *ny) : NULL;
  if (ny)
    b->y = ny;
  size_t *ni = ny ? realloc(b->id, nc * sizeof *ni) : NULL;
  if (ni)
    b->id = ni;
  if (!ni)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  b->cap = nc;
  return 0;
}

/* Appends s (with its NUL) to b's text; *at its offset. */
static int add_text(block_t *b, const char *s, size_t *at, lsmi_error_t *err) {
  size_t n = strlen(s) + 1;
  if (b->tcap - b->tlen < n) {
    size_t nc = b->tcap ? b->tcap * 2 : 4096;
    while (nc - b->tlen < n)
      nc *= 2;
    char *nt = realloc(b->text, nc);
    if (!nt)
      return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    b->text = nt;
    b->tcap = nc;
  }
  memcpy(b->text + b->tlen, s, n);
  *at = b->tlen;
  b->tlen += n;
  return 0;
}

/* Appends row r (the data row at `pos` of the file) to its split's block. */
static int append_row(block_t *blk, const row_t *r, uint64_t pos, size_t w,
                      bool ids, const lsmi_limits_t *lim, lsmi_error_t *err) {
  block_t *b = &blk[r->which];
  int rc = grow_block(b, r->which, w, lim, err);
  if (!rc)
    rc = add_text(b, r->y, &b->y[b->n], err);
  if (!rc && ids)
    rc = add_text(b, r->id, &b->id[b->n], err);
  if (rc)
    return rc;
  memcpy(b->v + b->n * w, r->v, w * sizeof *r->v);
  b->row[b->n++] = pos;
  return 0;
}

static void block_free(block_t *b) {
  free(b->v);
  free(b->row);
  free(b->y);
  free(b->id);
  free(b->text);
  memset(b, 0, sizeof *b);
}

/* Reads every data row into blk[0] (train) and blk[1] (val). On failure
 * the blocks are freed. */
static int read_rows(cursor_t *c, const header_t *h, const lsmi_limits_t *lim,
                     block_t blk[2], lsmi_error_t *err) {
  size_t w = h->d1 + h->d2; /* doubles per stored row */
  row_t r;
  r.v = malloc(w * sizeof *r.v);
  /* Numbers are read in the C locale whatever the process's locale is, so
   * that "1.5" never depends on LC_NUMERIC. */
  locale_t cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  int rc = 0;
  if (!r.v || cloc == (locale_t)0) {
    rc = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    goto out;
  }
  for (uint64_t pos = 0; !rc && c->p < c->end;) {
    if (blank_line(c)) {
      skip_line(c);
      continue;
    }
    rc = read_row(c, h, cloc, &r, err);
    if (!rc)
      rc = append_row(blk, &r, pos++, w, h->have_id, lim, err);
  }
out:
  free(r.v);
  if (cloc != (locale_t)0)
    freelocale(cloc);
  for (int s = 0; rc && s < 2; s++)
    block_free(&blk[s]);
  return rc;
}

/* A column of texts (the offsets at off into b's text) as a FIELD array
 * of role. */
static int put_texts(lsmi__arrays_t *as, const block_t *b, const size_t *off,
                     int role, const lsmi_limits_t *lim, lsmi_error_t *err) {
  const char **p = malloc((b->n ? b->n : 1) * sizeof *p);
  if (!p)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  for (size_t i = 0; i < b->n; i++)
    p[i] = b->text + off[i];
  return lsmi__arrays_put_text(as, role, lsmi__role_names[role], p, b->n,
                               LSMI__DT_FIELD, lim, err);
}

/* The features of split s (modality q) as a strided view of its block. */
static lsmi__array_t feature_view(const block_t *b, const header_t *h, int s,
                                  int q) {
  size_t w = h->d1 + h->d2;
  lsmi__array_t a;
  memset(&a, 0, sizeof a);
  snprintf(a.key, sizeof a.key, "%s_x%d", s ? "val" : "train", q + 1);
  a.dtype = LSMI__DT_F64;
  a.ndim = 2;
  a.shape[0] = b->n;
  a.shape[1] = q ? h->d2 : h->d1;
  a.stride[0] = w * sizeof(double);
  a.stride[1] = sizeof(double);
  a.offset = (q ? h->d1 : 0) * sizeof(double);
  a.data = (const unsigned char *)b->v;
  a.data_len = b->n * w * sizeof(double);
  return a;
}

/* Hands the buffers of both blocks to `as` (taken, whatever happens). */
static int own_blocks(lsmi__arrays_t *as, block_t blk[2], lsmi_error_t *err) {
  int rc = 0;
  for (int s = 0; s < 2; s++) {
    void *bufs[5] = {blk[s].v, blk[s].row, blk[s].y, blk[s].id, blk[s].text};
    for (int k = 0; k < 5; k++) {
      if (bufs[k] && rc)
        free(bufs[k]);
      else if (bufs[k])
        rc = lsmi__arrays_own(as, bufs[k], err); /* frees it on failure */
    }
  }
  return rc;
}

/* Puts the views of each non-empty split: x1, x2, y, and the ids when the
 * header has them; notes each row's position among the data rows. */
static int put_blocks(lsmi__arrays_t *as, block_t blk[2], const header_t *h,
                      const lsmi_limits_t *lim, lsmi_error_t *err) {
  int rc = own_blocks(as, blk, err);
  for (int s = 0; s < 2 && !rc; s++) {
    const block_t *b = &blk[s];
    if (!b->v)
      continue;
    as->file_row[s] = b->row;
    for (int q = 0; q < 2 && !rc; q++) {
      lsmi__array_t a = feature_view(b, h, s, q);
      rc = lsmi__arrays_put(as, lsmi__role(s, q), &a, lim, err);
    }
    if (!rc)
      rc = put_texts(as, b, b->y, lsmi__role(s, LSMI__Y), lim, err);
    if (!rc && h->have_id)
      rc = put_texts(as, b, b->id, lsmi__role(s, LSMI__ID), lim, err);
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
  block_t blk[2];
  memset(blk, 0, sizeof blk);
  int rc = read_header(&c, as, lim, &h, err);
  if (!rc)
    rc = read_rows(&c, &h, lim, blk, err);
  if (!rc)
    rc = put_blocks(as, blk, &h, lim, err);
  free(h.kind);
  return rc;
}
