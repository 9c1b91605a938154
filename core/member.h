/*
 * member.h — one ensemble member's share of a fit, between its training
 * (estimate.c) and the combination of the members into a result
 * (combine.c) (internal).
 *
 * A member is the unit of work: lsmi_fit trains all of them on its pool,
 * lsmi_fit_member one of them (a cluster node's share of a job), and
 * lsmi_combine turns any complete set of members into the result, whoever
 * trained them. With cross-fitting a member's F sets (one per fold) share
 * nothing but the rows, so each can be a unit too: lsmi_fit_part trains
 * one, a *part* of the member (fold >= 0, one set), and the combination
 * first assembles a member's F parts into the member lsmi_fit would have
 * trained (merge_parts in combine.c), with the same operations in the
 * same order. A member holds what its models said of every row — the
 * parts, before the prior, the decomposition and the adjustment — and what
 * its sets scored on each part of the rows, so that the result does not
 * depend on where or with what the members were trained together.
 */
#ifndef LSMI_MEMBER_H
#define LSMI_MEMBER_H

#include "lsmi.h"

/* What one set of five models (one fold with cross-fitting) scored: the
 * sums of its losses, its hits (discriminators) and its row counts on each
 * part of the rows, and the epochs each model kept. */
typedef struct lsmi_set_stats {
  double loss[LSMI_MODELS][LSMI_PARTS];
  double hits[LSMI_MODELS][LSMI_PARTS];
  double rows[LSMI_MODELS][LSMI_PARTS];
  int kept_epochs[LSMI_MODELS];
} lsmi_set_stats_t;

struct lsmi_member {
  int index;              /* e of params.ensemble: its seed is seed + e */
  int fold;               /* -1: the whole member; k: a part, fold k's set
                             alone (lsmi_fit_part) */
  int folds;              /* params.folds it was fitted with */
  int nsets;              /* params.folds, or 1; 1 for a part */
  lsmi_rows_t rows[2];    /* train, val: i1, i2, i12 = log p(y|x) (the prior is
                             not yet subtracted), h1, h2; y, r, u1, u2, s are
                             filled by the combination. A part holds the
                             train rows of its fold (the others are 0) and
                             its own val values, not yet averaged over the
                             folds */
  lsmi_set_stats_t *sets; /* (nsets) */
  double seconds_disc;    /* its discriminators' thread seconds */
  double seconds_ent;     /* its KNIFE models' thread seconds */
  double disc_loss, ent_loss; /* its last epoch's mean losses */
};

/* The nine columns of rows, without the spread (r_sd ... NULL), n each;
 * LSMI_ERR_NOMEM (with what was allocated freed by rows_free) or 0. */
int lsmi__rows_alloc(lsmi_rows_t *r, size_t n, bool sd);
void lsmi__rows_free(lsmi_rows_t *r);

/* The column model `id` values: i1, i2, i12, h1 or h2. */
double *lsmi__rows_part(lsmi_rows_t *r, int id);

/* A member for n_train and n_val rows and nsets sets, its columns zeroed;
 * NULL on no memory. */
lsmi_member_t *lsmi__member_create(int index, int nsets, size_t n_train,
                                   size_t n_val);

/* The fold (0 .. p->folds - 1) of each train row of member `index`
 * (fold_of: n_train), as its fit draws them; LSMI_ERR_NOMEM or 0. */
int lsmi__member_folds(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                       int index, unsigned char *fold_of);

/* The result of complete members (taken: consumed and freed), in any order;
 * res is the caller's, zeroed. */
int lsmi__combine(const lsmi_dataset_t *ds, const lsmi_params_t *p,
                  lsmi_member_t **members, int n, lsmi_result_t *res,
                  lsmi_error_t *err);

#endif
