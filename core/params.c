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
}

#define OFF(field) offsetof(lsmi_params_t, field)

/* Seeds travel through JSON as numbers, so they stay within 2^53. */
static const lsmi_param_desc_t table[] = {
    {"seed", LSMI_PARAM_UINT64, OFF(seed), 0, 9007199254740991.0, false,
     "seed of every random draw (init, shuffles, val split)"},
    {"hidden", LSMI_PARAM_INT, OFF(hidden), 1, 4096, false,
     "hidden width H of the three MLP discriminators"},
    {"epochs_discriminator", LSMI_PARAM_INT, OFF(epochs_discriminator), 1,
     10000, false, "training epochs of the discriminators"},
    {"lr_discriminator", LSMI_PARAM_DOUBLE, OFF(lr_discriminator), 0, 10, true,
     "Adam learning rate of the discriminators"},
    {"step_discriminator", LSMI_PARAM_INT, OFF(step_discriminator), 1, 10000,
     false, "StepLR step (epochs) of the discriminators"},
    {"gamma", LSMI_PARAM_DOUBLE, OFF(gamma), 0, 1, true,
     "StepLR factor of both optimizers"},
    {"batch_size", LSMI_PARAM_INT, OFF(batch_size), 1, 65536, false,
     "mini-batch size of both trainings"},
    {"threads", LSMI_PARAM_INT, OFF(threads), 0, 256, false,
     "threads of one fit (0 = all online cores)"},
    {"components", LSMI_PARAM_INT, OFF(components), 1, 256, false,
     "KNIFE mixture components K"},
    {"epochs_entropy", LSMI_PARAM_INT, OFF(epochs_entropy), 1, 10000, false,
     "training epochs of the KNIFE entropy estimators"},
    {"lr_entropy", LSMI_PARAM_DOUBLE, OFF(lr_entropy), 0, 10, true,
     "Adam learning rate of the KNIFE estimators"},
    {"step_entropy", LSMI_PARAM_INT, OFF(step_entropy), 1, 10000, false,
     "StepLR step (epochs) of the KNIFE estimators"},
    {"prior", LSMI_PARAM_PRIOR, OFF(prior), 0, 1, false,
     "log p(y) in the pointwise MI: uniform | empirical"},
    {"adjust", LSMI_PARAM_BOOL, OFF(adjust), 0, 1, false,
     "apply the per-split mean adjustment"},
    {"val_fraction", LSMI_PARAM_DOUBLE, OFF(val_fraction), 0, 0.9, false,
     "split this fraction of train off as val when the file has none "
     "(0 = none)"},
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
  case LSMI_PARAM_PRIOR:
    return (double)*(const lsmi_prior_t *)(const void *)base;
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
  case LSMI_PARAM_PRIOR:
    *(lsmi_prior_t *)(void *)base = (lsmi_prior_t)(int)v;
    break;
  }
}

int lsmi_params_validate(const lsmi_params_t *p, lsmi_error_t *err) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    int st = check_range(&table[i], get_field(p, &table[i]), err);
    if (st)
      return st;
  }
  return LSMI_OK;
}

int lsmi_params_set_number(lsmi_params_t *p, const char *name, double value,
                           lsmi_error_t *err) {
  const lsmi_param_desc_t *d = lsmi_params_find(name);
  if (d == NULL)
    return lsmi_error_set(err, LSMI_ERR_INVALID, name ? name : "",
                          "unknown parameter '%s'", name ? name : "");
  if (d->type == LSMI_PARAM_PRIOR)
    return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                          "%s must be \"uniform\" or \"empirical\"", d->name);
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

int lsmi_params_set(lsmi_params_t *p, const char *name, const char *text,
                    lsmi_error_t *err) {
  const lsmi_param_desc_t *d = lsmi_params_find(name);
  if (d == NULL)
    return lsmi_error_set(err, LSMI_ERR_INVALID, name ? name : "",
                          "unknown parameter '%s'", name ? name : "");
  if (text == NULL)
    text = "";
  switch (d->type) {
  case LSMI_PARAM_PRIOR:
    if (strcmp(text, "uniform") == 0)
      p->prior = LSMI_PRIOR_UNIFORM;
    else if (strcmp(text, "empirical") == 0)
      p->prior = LSMI_PRIOR_EMPIRICAL;
    else
      return lsmi_error_set(err, LSMI_ERR_INVALID, d->name,
                            "%s must be \"uniform\" or \"empirical\", got "
                            "\"%s\"",
                            d->name, text);
    return LSMI_OK;
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
