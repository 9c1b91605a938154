/*
 * combine.c — from ensemble members to a result: each member's parts
 * decomposed and adjusted per split (in double precision), the members'
 * means and spreads, the bootstrap intervals of the split means, each
 * model's diagnostics and the warnings; and members saved as bytes and
 * loaded back, so that the members of one job can be trained on different
 * cluster nodes and combined on any of them.
 *
 * The combination reads the members in index order, whatever order they
 * arrive in, and every operation of it is deterministic: the same members
 * give the same bits. With one member the result takes its columns over
 * and finishes them in place, which is the single fit lsmi always did.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsmi.h"
#include "member.h"
#include "rng.h"

enum { N_MODELS = LSMI_MODELS, KNIFE1 = LSMI_MODEL_KNIFE1 };
/* The interval draws' stream (+ split); the others are in rng.h and
 * estimate.c. */
enum { STREAM_BOOTSTRAP = 42 };

/* ------------------------------------------------------------------------ */
/* Columns                                                                  */
/* ------------------------------------------------------------------------ */

/* The double columns of rows (the four sd ones last), so that allocation
 * and release list them once. */
enum { N_COLUMNS = 9, N_SD = 4 };
static void rows_columns(lsmi_rows_t *r, double **cols[N_COLUMNS + N_SD]) {
  double **all[N_COLUMNS + N_SD] = {
      &r->r,  &r->u1, &r->u2,   &r->s,     &r->i1,    &r->i2,  &r->i12,
      &r->h1, &r->h2, &r->r_sd, &r->u1_sd, &r->u2_sd, &r->s_sd};
  memcpy(cols, all, sizeof all);
}

int lsmi__rows_alloc(lsmi_rows_t *r, size_t n, bool sd) {
  size_t m = n ? n : 1;
  double **cols[N_COLUMNS + N_SD];
  rows_columns(r, cols);
  r->n = n;
  r->y = calloc(m, sizeof *r->y);
  int st = r->y ? LSMI_OK : LSMI_ERR_NOMEM;
  for (int i = 0; i < N_COLUMNS + (sd ? N_SD : 0); i++) {
    *cols[i] = calloc(m, sizeof(double));
    if (*cols[i] == NULL)
      st = LSMI_ERR_NOMEM;
  }
  return st;
}

void lsmi__rows_free(lsmi_rows_t *r) {
  double **cols[N_COLUMNS + N_SD];
  rows_columns(r, cols);
  free(r->y);
  for (int i = 0; i < N_COLUMNS + N_SD; i++)
    free(*cols[i]);
  memset(r, 0, sizeof *r);
}

double *lsmi__rows_part(lsmi_rows_t *r, int id) {
  return id == LSMI_MODEL_F1       ? r->i1
         : id == LSMI_MODEL_F2     ? r->i2
         : id == LSMI_MODEL_F12    ? r->i12
         : id == LSMI_MODEL_KNIFE1 ? r->h1
                                   : r->h2;
}

void lsmi_result_destroy(lsmi_result_t *res) {
  if (res == NULL)
    return;
  lsmi__rows_free(&res->train);
  lsmi__rows_free(&res->val);
  free(res);
}

/* ------------------------------------------------------------------------ */
/* Members                                                                  */
/* ------------------------------------------------------------------------ */

lsmi_member_t *lsmi__member_create(int index, int nsets, size_t n_train,
                                   size_t n_val) {
  lsmi_member_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return NULL;
  m->index = index;
  m->fold = -1;
  m->folds = nsets > 1 ? nsets : 0;
  m->nsets = nsets;
  m->sets = calloc((size_t)nsets, sizeof *m->sets);
  if (m->sets == NULL || lsmi__rows_alloc(&m->rows[0], n_train, false) ||
      lsmi__rows_alloc(&m->rows[1], n_val, false)) {
    lsmi_member_destroy(m);
    return NULL;
  }
  return m;
}

void lsmi_member_destroy(lsmi_member_t *m) {
  if (m == NULL)
    return;
  lsmi__rows_free(&m->rows[0]);
  lsmi__rows_free(&m->rows[1]);
  free(m->sets);
  free(m);
}

int lsmi_member_index(const lsmi_member_t *m) { return m->index; }

int lsmi_member_fold(const lsmi_member_t *m) { return m->fold; }

/*
 * The bytes of a member: "LSMIMBR2", then as little-endian fixed-width
 * fields the index, set count, fold and folds (int32 each; the fold -1
 * for a whole member, k for a part; folds the params' it was fitted
 * with), the train and val row counts
 * (uint64 each), the five parts of each split (float64, train then val,
 * i1 i2 i12 h1 h2 each), the sets' statistics (float64 loss, hits, rows per
 * model and part, then int32 kept epochs per model) and four float64
 * (seconds_disc, seconds_ent, disc_loss, ent_loss). The machines of one
 * cluster share a byte order; a load checks the magic and every size.
 * "LSMIMBR1", before parts, had no fold (a whole member): a load still
 * reads it, so that a member a node saved before an upgrade is combined
 * after it.
 */
static const char member_magic[8] = {'L', 'S', 'M', 'I', 'M', 'B', 'R', '2'};
static const char member_magic_v1[8] = {'L', 'S', 'M', 'I', 'M', 'B', 'R', '1'};

/* The bytes of a member with nhead int32 fields in its head (2 or 4). */
static size_t member_bytes(int nhead, int nsets, size_t nt, size_t nv) {
  return 8 + (size_t)nhead * 4 + 2 * 8 + 5 * (nt + nv) * 8 +
         (size_t)nsets * (3 * N_MODELS * LSMI_PARTS * 8 + N_MODELS * 4) + 4 * 8;
}

typedef struct cursor {
  unsigned char *p;
  const unsigned char *q;
} cursor_t;

static void put(cursor_t *c, const void *v, size_t n) {
  memcpy(c->p, v, n);
  c->p += n;
}

static void get(cursor_t *c, void *v, size_t n) {
  memcpy(v, c->q, n);
  c->q += n;
}

int lsmi_member_save(const lsmi_member_t *m, void **buf, size_t *len,
                     lsmi_error_t *err) {
  size_t nt = m->rows[0].n, nv = m->rows[1].n;
  *len = member_bytes(4, m->nsets, nt, nv);
  *buf = malloc(*len);
  if (*buf == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  cursor_t c = {.p = *buf};
  int32_t head[4] = {m->index, m->nsets, m->fold, m->folds};
  uint64_t rows[2] = {nt, nv};
  put(&c, member_magic, 8);
  put(&c, head, sizeof head);
  put(&c, rows, sizeof rows);
  for (int sp = 0; sp < 2; sp++)
    for (int id = 0; id < N_MODELS; id++)
      put(&c, lsmi__rows_part((lsmi_rows_t *)&m->rows[sp], id),
          m->rows[sp].n * sizeof(double));
  for (int s = 0; s < m->nsets; s++) {
    const lsmi_set_stats_t *st = &m->sets[s];
    put(&c, st->loss, sizeof st->loss);
    put(&c, st->hits, sizeof st->hits);
    put(&c, st->rows, sizeof st->rows);
    int32_t kept[N_MODELS];
    for (int id = 0; id < N_MODELS; id++)
      kept[id] = st->kept_epochs[id];
    put(&c, kept, sizeof kept);
  }
  double tail[4] = {m->seconds_disc, m->seconds_ent, m->disc_loss, m->ent_loss};
  put(&c, tail, sizeof tail);
  return LSMI_OK;
}

int lsmi_member_load(const void *buf, size_t len, lsmi_member_t **out,
                     lsmi_error_t *err) {
  *out = NULL;
  cursor_t c = {.q = buf};
  int32_t head[4] = {0, 0, -1, -1};
  uint64_t rows[2];
  int nhead = len >= 8 && !memcmp(buf, member_magic, 8)      ? 4
              : len >= 8 && !memcmp(buf, member_magic_v1, 8) ? 2
                                                             : 0;
  if (nhead == 0 || len < 8 + nhead * sizeof *head + sizeof rows)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "member",
                          "not the bytes of an lsmi member");
  c.q += 8;
  get(&c, head, (size_t)nhead * sizeof *head);
  get(&c, rows, sizeof rows);
  /* A part holds one set. */
  if (head[0] < 0 || head[0] > 1000 || head[1] < 1 || head[1] > 64 ||
      head[2] < -1 || head[2] >= 64 || (head[2] >= 0 && head[1] != 1) ||
      head[3] < -1 || head[3] > 64 || (head[2] >= 0 && head[2] >= head[3]) ||
      rows[0] > ((uint64_t)1 << 40) || rows[1] > ((uint64_t)1 << 40) ||
      len != member_bytes(nhead, head[1], (size_t)rows[0], (size_t)rows[1]))
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "member",
                          "a member's bytes of the wrong size");
  lsmi_member_t *m =
      lsmi__member_create(head[0], head[1], (size_t)rows[0], (size_t)rows[1]);
  if (m == NULL)
    return lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  m->fold = head[2];
  if (head[3] >= 0)
    m->folds = head[3];
  for (int sp = 0; sp < 2; sp++)
    for (int id = 0; id < N_MODELS; id++)
      get(&c, lsmi__rows_part(&m->rows[sp], id),
          m->rows[sp].n * sizeof(double));
  for (int s = 0; s < m->nsets; s++) {
    lsmi_set_stats_t *st = &m->sets[s];
    get(&c, st->loss, sizeof st->loss);
    get(&c, st->hits, sizeof st->hits);
    get(&c, st->rows, sizeof st->rows);
    int32_t kept[N_MODELS];
    get(&c, kept, sizeof kept);
    for (int id = 0; id < N_MODELS; id++)
      st->kept_epochs[id] = kept[id];
  }
  double tail[4];
  get(&c, tail, sizeof tail);
  m->seconds_disc = tail[0];
  m->seconds_ent = tail[1];
  m->disc_loss = tail[2];
  m->ent_loss = tail[3];
  *out = m;
  return LSMI_OK;
}

/* ------------------------------------------------------------------------ */
/* Decomposition and means                                                  */
/* ------------------------------------------------------------------------ */

static int make_log_prior(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                          double *log_prior, lsmi_error_t *err) {
  int C = ds->classes;
  if (p->prior == LSMI_PRIOR_UNIFORM) {
    for (int c = 0; c < C; c++)
      log_prior[c] = -log((double)C);
    return LSMI_OK;
  }
  for (int c = 0; c < C; c++)
    log_prior[c] = 0.0;
  for (size_t k = 0; k < ds->train.n; k++)
    log_prior[ds->train.y[k]] += 1.0;
  for (int c = 0; c < C; c++) {
    if (log_prior[c] == 0.0)
      return lsmi_error_set(err, LSMI_ERR_DATA, "train_y",
                            "class %d has no train rows, so the empirical "
                            "prior is undefined",
                            c);
    log_prior[c] = log(log_prior[c] / (double)ds->train.n);
  }
  return LSMI_OK;
}

/* i = log p(y|x) - log p(y); then decomposition, adjustment and means. */
static void finish_split(const lsmi_params_t *p, const double *log_prior,
                         const lsmi_split_t *s, lsmi_rows_t *rows,
                         lsmi_summary_t *sum) {
  for (size_t k = 0; k < s->n; k++) {
    double lp = log_prior[s->y[k]];
    rows->y[k] = s->y[k];
    rows->i1[k] -= lp;
    rows->i2[k] -= lp;
    rows->i12[k] -= lp;
  }
  lsmi_decompose(s->n, rows->i1, rows->i2, rows->i12, rows->h1, rows->h2,
                 rows->r, rows->u1, rows->u2, rows->s);
  sum->shift =
      p->adjust ? lsmi_adjust(s->n, rows->r, rows->u1, rows->u2, rows->s) : 0.0;
  lsmi_summarize(rows, sum);
}

/* Ensembles: the result's columns are the members' means, and r, u1, u2, s
 * get their members' standard deviation (n - 1 divisor). */
static int average_members(lsmi_member_t **m, int E, int sp,
                           const lsmi_summary_t *msum, lsmi_rows_t *out,
                           lsmi_summary_t *sum) {
  double **oc[N_COLUMNS + N_SD];
  rows_columns(out, oc);
  const double **mc = malloc((size_t)E * sizeof *mc);
  if (mc == NULL)
    return LSMI_ERR_NOMEM;
  memcpy(out->y, m[0]->rows[sp].y, out->n * sizeof *out->y);
  for (int c = 0; c < N_COLUMNS; c++) {
    for (int e = 0; e < E; e++) {
      double **cols[N_COLUMNS + N_SD];
      rows_columns(&m[e]->rows[sp], cols);
      mc[e] = *cols[c];
    }
    double *o = *oc[c];
    double *sd = c < N_SD ? *oc[N_COLUMNS + c] : NULL;
    for (size_t i = 0; i < out->n; i++) {
      double acc = 0.0;
      for (int e = 0; e < E; e++)
        acc += mc[e][i];
      o[i] = acc / E;
      if (sd == NULL)
        continue;
      double ss = 0.0;
      for (int e = 0; e < E; e++)
        ss += (mc[e][i] - o[i]) * (mc[e][i] - o[i]);
      sd[i] = sqrt(ss / (E - 1));
    }
  }
  free(mc);
  lsmi_summarize(out, sum);
  sum->shift = 0.0;
  for (int e = 0; e < E; e++)
    sum->shift += msum[(size_t)e * 2 + (size_t)sp].shift / E;
  return LSMI_OK;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The 95% percentile bootstrap intervals of a split's means: each replicate
 * draws the members and the samples with replacement, and takes the mean
 * over the drawn samples of their mean over the drawn members. */
static int bootstrap_ci(const lsmi_params_t *p, lsmi_member_t **m, int E,
                        int sp, lsmi_summary_t *sum) {
  size_t n = m[0]->rows[sp].n;
  if (n < 2)
    return LSMI_OK;
  /* Enough replicates for stable 2.5% tails; on large splits fewer (at
   * least 200), so that the intervals cost a small part of the fit. */
  double work = (double)n * LSMI_CI_COUNT * (double)(E + 1);
  int reps = (int)fmin(2000.0, fmax(200.0, 2e8 / work));
  double *stat = malloc((size_t)reps * LSMI_CI_COUNT * sizeof *stat);
  double *mixed = malloc(n * LSMI_CI_COUNT * sizeof *mixed);
  int *w = malloc((size_t)E * sizeof *w);
  int st = stat && mixed && w ? LSMI_OK : LSMI_ERR_NOMEM;
  lsmi_rng_t rng;
  lsmi_rng_seed(&rng, p->seed, (uint64_t)(STREAM_BOOTSTRAP + sp));
  for (int b = 0; st == LSMI_OK && b < reps; b++) {
    for (int e = 0; e < E; e++)
      w[e] = 0;
    for (int e = 0; e < E; e++)
      w[(size_t)lsmi_rng_below(&rng, (uint64_t)E)]++;
    memset(mixed, 0, n * LSMI_CI_COUNT * sizeof *mixed);
    for (int e = 0; e < E; e++) {
      if (w[e] == 0)
        continue;
      const lsmi_rows_t *r = &m[e]->rows[sp];
      const double *cols[LSMI_CI_COUNT] = {r->r,  r->u1, r->u2, r->s,
                                           r->i1, r->i2, r->i12};
      double we = (double)w[e] / E;
      for (int c = 0; c < LSMI_CI_COUNT; c++)
        for (size_t i = 0; i < n; i++)
          mixed[(size_t)c * n + i] += we * cols[c][i];
    }
    double acc[LSMI_CI_COUNT] = {0};
    for (size_t k = 0; k < n; k++) {
      size_t i = (size_t)lsmi_rng_below(&rng, n);
      for (int c = 0; c < LSMI_CI_COUNT; c++)
        acc[c] += mixed[(size_t)c * n + i];
    }
    for (int c = 0; c < LSMI_CI_COUNT; c++)
      stat[(size_t)c * (size_t)reps + (size_t)b] = acc[c] / (double)n;
  }
  for (int c = 0; st == LSMI_OK && c < LSMI_CI_COUNT; c++) {
    double *s = stat + (size_t)c * (size_t)reps;
    qsort(s, (size_t)reps, sizeof *s, cmp_double);
    sum->ci[c][0] = s[(int)floor(0.025 * (reps - 1) + 0.5)];
    sum->ci[c][1] = s[(int)floor(0.975 * (reps - 1) + 0.5)];
  }
  sum->has_ci = st == LSMI_OK;
  free(stat);
  free(mixed);
  free(w);
  return st;
}

/* Each model's losses and accuracies on each part of the rows, as the mean
 * over every set of every member of that set's mean, and the epochs it
 * kept. */
static void collect_diagnostics(lsmi_member_t **m, int E, lsmi_result_t *res) {
  for (int id = 0; id < N_MODELS; id++) {
    lsmi_model_diag_t *d = &res->diag[id];
    double loss[LSMI_PARTS] = {0}, acc[LSMI_PARTS] = {0};
    int sets[LSMI_PARTS] = {0}, nsets = 0;
    double epochs = 0.0;
    for (int e = 0; e < E; e++)
      for (int s = 0; s < m[e]->nsets; s++, nsets++) {
        const lsmi_set_stats_t *st = &m[e]->sets[s];
        for (int part = 0; part < LSMI_PARTS; part++) {
          if (st->rows[id][part] == 0)
            continue;
          loss[part] += st->loss[id][part] / st->rows[id][part];
          acc[part] += st->hits[id][part] / st->rows[id][part];
          sets[part]++;
        }
        int kept = st->kept_epochs[id];
        epochs += kept;
        if (nsets == 0 || kept < d->epochs_min)
          d->epochs_min = kept;
        if (nsets == 0 || kept > d->epochs_max)
          d->epochs_max = kept;
      }
    for (int part = 0; part < LSMI_PARTS; part++) {
      d->loss[part] = sets[part] ? loss[part] / sets[part] : NAN;
      d->acc[part] = sets[part] && id < KNIFE1 ? acc[part] / sets[part] : NAN;
    }
    d->epochs = nsets ? epochs / nsets : 0.0;
  }
}

/* ------------------------------------------------------------------------ */
/* Warnings                                                                 */
/* ------------------------------------------------------------------------ */

/* Nats by which a split mean may stray outside what a label of C classes
 * allows before it is reported: the estimators are noisy, a mean just past
 * a bound is not a failure. */
#define RANGE_TOL 0.05

static void warn(lsmi_result_t *res, const char *code, const char *split,
                 const char *fmt, ...) LSMI_PRINTF(4, 5);

static void warn(lsmi_result_t *res, const char *code, const char *split,
                 const char *fmt, ...) {
  if (res->nwarnings >= LSMI_MAX_WARNINGS)
    return;
  lsmi_warning_t *w = &res->warnings[res->nwarnings++];
  snprintf(w->code, sizeof w->code, "%s", code);
  snprintf(w->split, sizeof w->split, "%s", split);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->message, sizeof w->message, fmt, ap);
  va_end(ap);
}

#define TRY_ROBUST                                                             \
  "try preset robust (ensemble and early stopping), or fewer epochs"

/* The split means against what information theory allows. */
static void warn_means(lsmi_result_t *res, const char *split,
                       const lsmi_summary_t *s, int C) {
  double logc = log((double)C);
  const double mi[3] = {s->I1, s->I2, s->I12};
  const char *mi_name[3] = {"I1", "I2", "I12"};
  for (int k = 0; k < 3; k++) {
    if (mi[k] < -RANGE_TOL)
      warn(res, "mi_negative", split,
           "%s %s = %.3f nats is below 0: its discriminator predicts %s "
           "labels worse than the prior, the mark of a memorising "
           "model; " TRY_ROBUST ".",
           split, mi_name[k], mi[k], split);
    else if (mi[k] > logc + RANGE_TOL)
      warn(res, "mi_above_log_c", split,
           "%s %s = %.3f nats is above log C = %.3f, the most a label of %d "
           "classes can hold; check the prior (a skewed label wants the "
           "empirical prior).",
           split, mi_name[k], mi[k], logc, C);
  }
  const double atom[4] = {s->R, s->U1, s->U2, s->S};
  const char *atom_name[4] = {"R", "U1", "U2", "S"};
  for (int k = 0; k < 4; k++)
    if (atom[k] > logc + RANGE_TOL)
      warn(res, "atom_above_log_c", split,
           "%s %s = %.3f nats is above log C = %.3f, which no label of %d "
           "classes allows: the parts it is built from are off; " TRY_ROBUST
           ".",
           split, atom_name[k], atom[k], logc, C);
  double best = fmax(s->I1, s->I2);
  if (s->I12 < best - RANGE_TOL)
    warn(res, "i12_below_max", split,
         "%s I12 = %.3f is below max(I1, I2) = %.3f: the joint discriminator "
         "does worse than one modality alone, so S is biased down; try "
         "early stopping, more epochs_discriminator or a larger hidden.",
         split, s->I12, best);
}

/* A pointwise column that does not vary over a split: a part (i, h) whose
 * model ignores its input, or an atom the decomposition pins to one value
 * on every row. */
static void warn_constant(lsmi_result_t *res, const char *split,
                          const lsmi_rows_t *r) {
  if (r->n < 2)
    return;
  const double *cols[N_COLUMNS] = {r->r,  r->u1,  r->u2, r->s, r->i1,
                                   r->i2, r->i12, r->h1, r->h2};
  static const char *const names[N_COLUMNS] = {"r",  "u1",  "u2", "s", "i1",
                                               "i2", "i12", "h1", "h2"};
  for (int c = 0; c < N_COLUMNS; c++) {
    double lo = cols[c][0], hi = cols[c][0];
    for (size_t i = 1; i < r->n; i++) {
      lo = fmin(lo, cols[c][i]);
      hi = fmax(hi, cols[c][i]);
    }
    if (!(hi - lo <= 1e-9 * (1.0 + fabs(hi))))
      continue;
    if (c < 4)
      warn(res, "constant_column", split,
           "%s %s is %.4g on every row: the decomposition gives every sample "
           "the same %s, which happens when one modality's entropy is far "
           "below the other's on every row (compare H1 and H2), so the "
           "per-sample %s says nothing; " TRY_ROBUST
           " (its KNIFE standardises each modality).",
           split, names[c], lo, names[c], names[c]);
    else
      warn(res, "constant_column", split,
           "%s %s is %.4g on every row: the model behind it gives every "
           "sample the same value, so the per-sample numbers built from it "
           "say nothing; " TRY_ROBUST ".",
           split, names[c], lo);
  }
}

/* A discriminator far better on the rows it learnt than on val. */
static void warn_memorising(lsmi_result_t *res) {
  for (int id = 0; id < N_MODELS; id++) {
    const lsmi_model_diag_t *d = &res->diag[id];
    double tr = d->loss[LSMI_PART_TRAIN], va = d->loss[LSMI_PART_VAL];
    if (isnan(tr) || isnan(va))
      continue;
    bool bad =
        id < KNIFE1 ? va > 2.0 * tr + 0.1 : va - tr > 0.1 * fmax(1.0, fabs(tr));
    if (bad)
      warn(res, "memorising", "val",
           "%s's val loss %.3f is far above its train loss %.3f: it has "
           "memorised the train rows, and its per-sample values on val are "
           "unreliable; " TRY_ROBUST ".",
           lsmi_model_name(id), va, tr);
  }
}

static void collect_warnings(lsmi_result_t *res, int C) {
  res->nwarnings = 0;
  const lsmi_summary_t *sums[2] = {&res->train_summary, &res->val_summary};
  const lsmi_rows_t *rows[2] = {&res->train, &res->val};
  const char *names[2] = {"train", "val"};
  for (int sp = 1; sp >= 0; sp--) {
    if (rows[sp]->n == 0)
      continue;
    warn_means(res, names[sp], sums[sp], C);
    warn_constant(res, names[sp], rows[sp]);
  }
  warn_memorising(res);
}

/* ------------------------------------------------------------------------ */
/* The combination                                                          */
/* ------------------------------------------------------------------------ */

/* By index, and a member's parts by fold after it (a whole member's fold
 * is -1). */
static int by_index(const void *a, const void *b) {
  const lsmi_member_t *x = *(lsmi_member_t *const *)a;
  const lsmi_member_t *y = *(lsmi_member_t *const *)b;
  if (x->index != y->index)
    return (x->index > y->index) - (x->index < y->index);
  return (x->fold > y->fold) - (x->fold < y->fold);
}

/* The member of F parts (part[k] holds fold k; borrowed), as lsmi_fit
 * trains it (estimate.c): a train row's values are those of the set of its
 * fold, the val values the mean of the sets' in fold order
 * (average_folds), and set k's scores those of part k. The progress
 * losses (disc_loss, ent_loss) are the parts' mean: a whole member sums
 * its sets' in another order, so they may differ in the last bits; they
 * are no part of the result's columns, summaries or diagnostics. NULL on
 * no memory. */
static lsmi_member_t *merge_parts(const lsmi_dataset_t *ds,
                                  const lsmi_params_t *p,
                                  lsmi_member_t *const *part, int F) {
  size_t nt = ds->train.n, nv = ds->val.n;
  lsmi_member_t *m = lsmi__member_create(part[0]->index, F, nt, nv);
  unsigned char *fold_of = malloc(nt ? nt : 1);
  if (m == NULL || fold_of == NULL ||
      lsmi__member_folds(ds, p, part[0]->index, fold_of)) {
    lsmi_member_destroy(m);
    free(fold_of);
    return NULL;
  }
  for (int id = 0; id < N_MODELS; id++) {
    double *tr = lsmi__rows_part(&m->rows[0], id);
    for (size_t i = 0; i < nt; i++)
      tr[i] = lsmi__rows_part(&part[fold_of[i]]->rows[0], id)[i];
    double *va = lsmi__rows_part(&m->rows[1], id);
    for (size_t i = 0; i < nv; i++) {
      double sum = 0.0;
      for (int k = 0; k < F; k++)
        sum += lsmi__rows_part(&part[k]->rows[1], id)[i];
      va[i] = sum / (double)F;
    }
  }
  for (int k = 0; k < F; k++) {
    m->sets[k] = part[k]->sets[0];
    m->seconds_disc += part[k]->seconds_disc;
    m->seconds_ent += part[k]->seconds_ent;
    m->disc_loss += part[k]->disc_loss / F;
    m->ent_loss += part[k]->ent_loss / F;
  }
  free(fold_of);
  return m;
}

/* The parts among m[0 .. *n) (sorted by by_index) assembled into their
 * members, in place: *n becomes the count of what is left, every entry
 * whole or a part that was refused (then with st set). A member's parts
 * must be folds 0 .. F-1, each once. */
static int merge_members(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                         lsmi_member_t **m, int *n, lsmi_error_t *err) {
  int st = LSMI_OK, F = p->folds;
  for (int i = 0; st == LSMI_OK && i < *n;) {
    if (m[i]->fold < 0) {
      i++;
      continue;
    }
    int g = 0;
    while (i + g < *n && m[i + g]->index == m[i]->index)
      g++;
    for (int k = 0; st == LSMI_OK && k < g; k++) {
      const lsmi_member_t *q = m[i + k];
      if (q->nsets != 1 || q->folds != F || q->rows[0].n != ds->train.n ||
          q->rows[1].n != ds->val.n)
        st = lsmi_error_set(err, LSMI_ERR_SHAPE, "member",
                            "a part of member %d was fitted on another "
                            "dataset or with other folds",
                            q->index);
      else if (g != F || q->fold != k)
        st = lsmi_error_set(err, LSMI_ERR_INVALID, "folds",
                            "a fold of member %d is missing or given twice",
                            q->index);
    }
    lsmi_member_t *whole = st ? NULL : merge_parts(ds, p, m + i, F);
    if (st == LSMI_OK && whole == NULL)
      st = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
    if (st)
      break;
    for (int k = 0; k < g; k++)
      lsmi_member_destroy(m[i + k]);
    m[i] = whole;
    memmove(m + i + 1, m + i + g, (size_t)(*n - i - g) * sizeof *m);
    *n -= g - 1;
    i++;
  }
  return st;
}

/* Members 0 .. E-1 of this fit, each once, of the dataset's size. */
static int check_members(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                         lsmi_member_t **m, int n, lsmi_error_t *err) {
  if (n != p->ensemble)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "ensemble",
                          "%d members for an ensemble of %d", n, p->ensemble);
  int nsets = p->folds ? p->folds : 1;
  for (int e = 0; e < n; e++) {
    if (m[e] == NULL || m[e]->index != e)
      return lsmi_error_set(err, LSMI_ERR_INVALID, "ensemble",
                            "member %d is missing or given twice", e);
    if (m[e]->nsets != nsets || m[e]->rows[0].n != ds->train.n ||
        m[e]->rows[1].n != ds->val.n)
      return lsmi_error_set(err, LSMI_ERR_SHAPE, "member",
                            "member %d was fitted on another dataset or "
                            "with other folds",
                            e);
  }
  return LSMI_OK;
}

int lsmi__combine(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                  lsmi_member_t **members, int n, lsmi_result_t *res,
                  lsmi_error_t *err) {
  qsort(members, (size_t)n, sizeof *members, by_index);
  int st = merge_members(ds, p, members, &n, err);
  double *log_prior = calloc((size_t)ds->classes, sizeof *log_prior);
  lsmi_summary_t *msum = calloc((size_t)n * 2, sizeof *msum);
  if (st == LSMI_OK && (log_prior == NULL || msum == NULL))
    st = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  if (st == LSMI_OK)
    st = check_members(ds, p, members, n, err);
  if (st == LSMI_OK)
    st = make_log_prior(ds, p, log_prior, err);
  const lsmi_split_t *splits[2] = {&ds->train, &ds->val};
  lsmi_summary_t *sums[2] = {&res->train_summary, &res->val_summary};
  lsmi_rows_t *rows[2] = {&res->train, &res->val};
  for (int e = 0; st == LSMI_OK && e < n; e++)
    for (int sp = 0; sp < 2; sp++)
      finish_split(p, log_prior, splits[sp], &members[e]->rows[sp],
                   &msum[e * 2 + sp]);
  if (st == LSMI_OK && n == 1) {
    /* One member: its columns are the result's. */
    for (int sp = 0; sp < 2; sp++) {
      *rows[sp] = members[0]->rows[sp];
      memset(&members[0]->rows[sp], 0, sizeof members[0]->rows[sp]);
      *sums[sp] = msum[sp];
    }
  } else if (st == LSMI_OK) {
    if (lsmi__rows_alloc(&res->train, ds->train.n, true) ||
        lsmi__rows_alloc(&res->val, ds->val.n, true))
      st = lsmi_error_set(err, LSMI_ERR_NOMEM, "",
                          "could not allocate the result columns");
    for (int sp = 0; st == LSMI_OK && sp < 2; sp++) {
      st = average_members(members, n, sp, msum, rows[sp], sums[sp]);
      if (st == LSMI_OK)
        st = bootstrap_ci(p, members, n, sp, sums[sp]);
      if (st)
        lsmi_error_set(err, st, "", "out of memory");
    }
  }
  if (st == LSMI_OK) {
    res->ensemble = n;
    res->folds = p->folds;
    for (int e = 0; e < n; e++) {
      res->seconds_disc += members[e]->seconds_disc;
      res->seconds_ent += members[e]->seconds_ent;
      res->disc_loss += members[e]->disc_loss / n;
      res->ent_loss += members[e]->ent_loss / n;
    }
    collect_diagnostics(members, n, res);
    collect_warnings(res, ds->classes);
  }
  for (int e = 0; e < n; e++)
    lsmi_member_destroy(members[e]);
  free(log_prior);
  free(msum);
  return st;
}

int lsmi_combine(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                 lsmi_member_t **members, int n, lsmi_result_t **out,
                 lsmi_error_t *err) {
  *out = NULL;
  int st = lsmi_params_validate(p, err);
  lsmi_result_t *res = st ? NULL : calloc(1, sizeof *res);
  if (st == LSMI_OK && res == NULL)
    st = lsmi_error_set(err, LSMI_ERR_NOMEM, "", "out of memory");
  if (st) {
    for (int e = 0; e < n; e++)
      lsmi_member_destroy(members[e]);
    return st;
  }
  st = lsmi__combine(ds, p, members, n, res, err);
  if (st) {
    lsmi_result_destroy(res);
    return st;
  }
  *out = res;
  return LSMI_OK;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

const char *lsmi_model_name(int model) {
  static const char *const names[N_MODELS] = {"f1", "f2", "f12", "knife1",
                                              "knife2"};
  return model >= 0 && model < N_MODELS ? names[model] : NULL;
}

const char *lsmi_part_name(int part) {
  static const char *const names[LSMI_PARTS] = {"train", "holdout", "oof",
                                                "val"};
  return part >= 0 && part < LSMI_PARTS ? names[part] : NULL;
}

const char *lsmi_ci_name(int k) {
  static const char *const names[LSMI_CI_COUNT] = {"R",  "U1", "U2", "S",
                                                   "I1", "I2", "I12"};
  return k >= 0 && k < LSMI_CI_COUNT ? names[k] : NULL;
}
