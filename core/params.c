/*
 * params.c — the estimator's hyper-parameters: defaults, the descriptor
 * table that the CLI flags, the JSON `params` object and the validation all
 * read, and typed setters over it.
 *
 * The table is the single source of truth for names, types and ranges: a
 * parameter added here is at once a `lsmi fit` flag, a job parameter of the
 * daemon and a checked field.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsmi.h"

void lsmi_params_default(lsmi_params_t *p) {
  memset(p, 0, sizeof *p);
  p->seed = 0;
  p->hidden = 64;
  p->epochs_discriminator = 30;
  p->lr_discriminator = 1e-3;
  p->step_discriminator = 15;
  p->gamma = 0.1;
  p->batch_size = 32;
  p->threads = 0;
  p->components = 5;
  p->epochs_entropy = 30;
  p->lr_entropy = 1e-3;
  p->step_entropy = 20;
  p->prior = LSMI_PRIOR_UNIFORM;
  p->adjust = true;
  p->val_fraction = 0.0;
  lsmi_params_preset(p, LSMI_PRESET_PUBLISHED);
}

void lsmi_params_preset(lsmi_params_t *p, lsmi_preset_t preset) {
  p->preset = preset;
  p->holdout_fraction = 0.1;
  p->patience = 3;
  p->folds = 0;
  if (preset == LSMI_PRESET_ROBUST) {
    /* What measured best on the ground-truth sets (doc/accuracy.md, made
     * by bench/robust.py): averaging members removes most of the seed
     * noise of the per-sample values, and early stopping on held-out rows
     * keeps the models from memorising large features. */
    p->ensemble = 8;
    p->early_stopping = true;
    p->knife_init = LSMI_KNIFE_INIT_DATA;
  } else {
    p->ensemble = 1;
    p->early_stopping = false;
    p->knife_init = LSMI_KNIFE_INIT_RANDOM;
  }
}

#define OFF(field) offsetof(lsmi_params_t, field)

static const char *const prior_names[] = {"uniform", "empirical", NULL};
static const char *const preset_names[] = {"published", "robust", NULL};
static const char *const knife_init_names[] = {"random", "data", NULL};

/* Seeds travel through JSON as numbers, so they stay within 2^53. */
static const lsmi_param_desc_t table[] = {
    {"seed", LSMI_PARAM_UINT64, OFF(seed), 0, 9007199254740991.0, false,
     "seed of every random draw (init, shuffles, val split)", NULL},
    {"hidden", LSMI_PARAM_INT, OFF(hidden), 1, 4096, false,
     "hidden width H of the three MLP discriminators", NULL},
    {"epochs_discriminator", LSMI_PARAM_INT, OFF(epochs_discriminator), 1,
     10000, false, "training epochs of the discriminators", NULL},
    {"lr_discriminator", LSMI_PARAM_DOUBLE, OFF(lr_discriminator), 0, 10, true,
     "Adam learning rate of the discriminators", NULL},
    {"step_discriminator", LSMI_PARAM_INT, OFF(step_discriminator), 1, 10000,
     false, "StepLR step (epochs) of the discriminators", NULL},
    {"gamma", LSMI_PARAM_DOUBLE, OFF(gamma), 0, 1, true,
     "StepLR factor of both optimizers", NULL},
    {"batch_size", LSMI_PARAM_INT, OFF(batch_size), 1, 65536, false,
     "mini-batch size of both trainings", NULL},
    {"threads", LSMI_PARAM_INT, OFF(threads), 0, 256, false,
     "threads of one fit (0 = all online cores)", NULL},
    {"components", LSMI_PARAM_INT, OFF(components), 1, 256, false,
     "KNIFE mixture components K", NULL},
    {"epochs_entropy", LSMI_PARAM_INT, OFF(epochs_entropy), 1, 10000, false,
     "training epochs of the KNIFE entropy estimators", NULL},
    {"lr_entropy", LSMI_PARAM_DOUBLE, OFF(lr_entropy), 0, 10, true,
     "Adam learning rate of the KNIFE estimators", NULL},
    {"step_entropy", LSMI_PARAM_INT, OFF(step_entropy), 1, 10000, false,
     "StepLR step (epochs) of the KNIFE estimators", NULL},
    {"prior", LSMI_PARAM_ENUM, OFF(prior), 0, 1, false,
     "log p(y) in the pointwise MI: uniform | empirical", prior_names},
    {"adjust", LSMI_PARAM_BOOL, OFF(adjust), 0, 1, false,
     "apply the per-split mean adjustment", NULL},
    {"val_fraction", LSMI_PARAM_DOUBLE, OFF(val_fraction), 0, 0.9, false,
     "split this fraction of train off as val when the file has none "
     "(0 = none)",
     NULL},
    {"preset", LSMI_PARAM_ENUM, OFF(preset), 0, 1, false,
     "published (the paper's recipe) | robust (ensemble, early stopping, "
     "data-initialised KNIFE); explicit parameters override it",
     preset_names},
    {"ensemble", LSMI_PARAM_INT, OFF(ensemble), 1, 64, false,
     "members with seeds seed..seed+E-1; per-sample means, their sd and "
     "95% intervals",
     NULL},
    {"early_stopping", LSMI_PARAM_BOOL, OFF(early_stopping), 0, 1, false,
     "score each model on a held-out part of train after every epoch and "
     "keep its best epoch",
     NULL},
    {"holdout_fraction", LSMI_PARAM_DOUBLE, OFF(holdout_fraction), 0, 0.5, true,
     "the part of train held out for early stopping (stratified)", NULL},
    {"patience", LSMI_PARAM_INT, OFF(patience), 1, 1000, false,
     "epochs without improvement before early stopping stops a model", NULL},
    {"folds", LSMI_PARAM_INT, OFF(folds), 0, 20, false,
     "cross-fitting: F >= 2 folds, every train sample valued by models "
     "that did not see it (0 = off)",
     NULL},
    {"knife_init", LSMI_PARAM_ENUM, OFF(knife_init), 0, 1, false,
     "random (published) | data: standardised inputs, means from train rows",
     knife_init_names},
};

#undef OFF

const lsmi_param_desc_t *lsmi_params_table(size_t *count) {
  if (count)
    *count = sizeof table / sizeof table[0];
  return table;
}

const lsmi_param_desc_t *lsmi_params_find(const char *name) {
  if (name == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    const char *a = table[i].name, *b = name;
    /* '-' in the query matches '_' in the table (CLI spelling). */
    while (*a && (*a == *b || (*a == '_' && *b == '-'))) {
      a++;
      b++;
    }
    if (*a == '\0' && *b == '\0')
      return &table[i];
  }
  return NULL;
}

static double get_field(const lsmi_params_t *p, const lsmi_param_desc_t *d) {
  const char *base = (const char *)p + d->offset;
  switch (d->type) {
  case LSMI_PARAM_INT:
    return (double)*(const int *)(const void *)base;
  case LSMI_PARAM_UINT64:
    return (double)*(const uint64_t *)(const void *)base;
  case LSMI_PARAM_DOUBLE:
    return *(const double *)(const void *)base;
  case LSMI_PARAM_BOOL:
    return *(const bool *)(const void *)base ? 1.0 : 0.0;
  case LSMI_PARAM_ENUM: /* every enum field is an int-sized enum */
    return (double)*(const int *)(const void *)base;
  }
  return NAN;
}

static int check_range(const lsmi_param_desc_t *d, double v,
                       lsmi_error_t *err) {
  if (isnan(v))
    return lsmi_error_set(err, LSMI_ERR_INVALID, d->name, "%s must be a number",
                          d->name);
  bool integral = d->type != LSMI_PARAM_DOUBLE;
  if (integral && v != floor(v))
    return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                          "%s must be an integer, got %g", d->name, v);
  /* val_fraction: 0 means "none", else a fraction strictly inside (0, 1). */
  bool low_ok = d->min_exclusive ? v > d->min : v >= d->min;
  if (!low_ok || v > d->max) {
    if (integral)
      return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                            "%s must be an integer in [%.0f, %.0f], got %.17g",
                            d->name, d->min, d->max, v);
    return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                          "%s must be in %c%g, %g], got %.17g", d->name,
                          d->min_exclusive ? '(' : '[', d->min, d->max, v);
  }
  return LSMI_OK;
}

static void set_field(lsmi_params_t *p, const lsmi_param_desc_t *d, double v) {
  char *base = (char *)p + d->offset;
  switch (d->type) {
  case LSMI_PARAM_INT:
    *(int *)(void *)base = (int)v;
    break;
  case LSMI_PARAM_UINT64:
    *(uint64_t *)(void *)base = (uint64_t)v;
    break;
  case LSMI_PARAM_DOUBLE:
    *(double *)(void *)base = v;
    break;
  case LSMI_PARAM_BOOL:
    *(bool *)(void *)base = v != 0.0;
    break;
  case LSMI_PARAM_ENUM:
    *(int *)(void *)base = (int)v;
    break;
  }
}

int lsmi_params_validate(const lsmi_params_t *p, lsmi_error_t *err) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    int st = check_range(&table[i], get_field(p, &table[i]), err);
    if (st)
      return st;
  }
  if (p->folds == 1)
    return lsmi_error_set(err, LSMI_ERR_INVALID, "folds",
                          "folds must be 0 (off) or at least 2, got 1");
  return LSMI_OK;
}

int lsmi_params_set_number(lsmi_params_t *p, const char *name, double value,
                           lsmi_error_t *err) {
  const lsmi_param_desc_t *d = lsmi_params_find(name);
  if (d == NULL)
    return lsmi_error_set(err, LSMI_ERR_INVALID, name ? name : "",
                          "unknown parameter '%s'", name ? name : "");
  if (d->type == LSMI_PARAM_ENUM)
    return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                          "%s takes a name, not a number", d->name);
  int st = check_range(d, value, err);
  if (st)
    return st;
  set_field(p, d, value);
  return LSMI_OK;
}

double lsmi_params_get_number(const lsmi_params_t *p, const char *name) {
  const lsmi_param_desc_t *d = lsmi_params_find(name);
  return d ? get_field(p, d) : NAN;
}

/* An enum by name; setting the preset applies it. */
static int set_enum(lsmi_params_t *p, const lsmi_param_desc_t *d,
                    const char *text, lsmi_error_t *err) {
  for (int v = 0; d->choices[v]; v++)
    if (strcmp(text, d->choices[v]) == 0) {
      if (d->offset == offsetof(lsmi_params_t, preset))
        lsmi_params_preset(p, (lsmi_preset_t)v);
      else
        set_field(p, d, v);
      return LSMI_OK;
    }
  char list[128] = "";
  for (int v = 0; d->choices[v]; v++) {
    size_t at = strlen(list);
    snprintf(list + at, sizeof list - at, "%s\"%s\"", v ? " or " : "",
             d->choices[v]);
  }
  return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                        "%s must be %s, got \"%s\"", d->name, list, text);
}

const char *lsmi_params_format(const lsmi_params_t *p, const char *name,
                               char *buf, size_t len) {
  const lsmi_param_desc_t *d = lsmi_params_find(name);
  if (d == NULL || len == 0)
    return NULL;
  double v = get_field(p, d);
  switch (d->type) {
  case LSMI_PARAM_ENUM: {
    int k = 0;
    while (d->choices[k] && k < (int)v)
      k++;
    snprintf(buf, len, "%s", d->choices[k] ? d->choices[k] : "?");
    break;
  }
  case LSMI_PARAM_BOOL:
    snprintf(buf, len, "%s", v != 0.0 ? "true" : "false");
    break;
  case LSMI_PARAM_UINT64:
    snprintf(buf, len, "%llu",
             (unsigned long long)*(
                 const uint64_t *)(const void *)((const char *)p + d->offset));
    break;
  case LSMI_PARAM_INT:
    snprintf(buf, len, "%d", (int)v);
    break;
  case LSMI_PARAM_DOUBLE:
    snprintf(buf, len, "%.17g", v);
    break;
  }
  return buf;
}

int lsmi_params_set(lsmi_params_t *p, const char *name, const char *text,
                    lsmi_error_t *err) {
  const lsmi_param_desc_t *d = lsmi_params_find(name);
  if (d == NULL)
    return lsmi_error_set(err, LSMI_ERR_INVALID, name ? name : "",
                          "unknown parameter '%s'", name ? name : "");
  if (text == NULL)
    text = "";
  switch (d->type) {
  case LSMI_PARAM_ENUM:
    return set_enum(p, d, text, err);
  case LSMI_PARAM_BOOL:
    if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes") ||
        !strcmp(text, "on"))
      return lsmi_params_set_number(p, d->name, 1, err);
    if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no") ||
        !strcmp(text, "off"))
      return lsmi_params_set_number(p, d->name, 0, err);
    return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                          "%s must be true or false, got \"%s\"", d->name,
                          text);
  case LSMI_PARAM_UINT64:
  case LSMI_PARAM_INT:
  case LSMI_PARAM_DOUBLE: {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
      return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                            "%s must be a number, got \"%s\"", d->name, text);
    return lsmi_params_set_number(p, d->name, v, err);
  }
  }
  return LSMI_ERR_INVALID;
}
