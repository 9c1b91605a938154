/*
 * fit_out.c — the summary, provenance and rows `lsmi fit` writes: see
 * fit_out.h.
 *
 * Every JSON value comes from jansson, the summary's parts from the
 * service's own codec (server/codec.h), so that the CLI and the API give
 * them alike. The rows of a JSON document are
 * dumped one object at a time between the document's brackets, so that a
 * fit of millions of rows never holds them all as a tree (some hundreds of
 * bytes a row); each object, and everything else, is jansson's. The CSV
 * keeps the published columns' format, %.9g, byte for byte.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fit_out.h"

#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

/* ---- numbers ---- */

/* A number of the results: null where JSON has none (inf, NaN), counted
 * so that the command can say so. */
static json_t *result_num(lsmi_fit_run_t *run, double v) {
  if (isfinite(v))
    return json_real(v);
  run->nonfinite++;
  return json_null();
}

/* Text that is an integer's as a JSON integer, other text as a string. */
static json_t *text_value(const char *t, bool numeric) {
  return numeric ? json_integer((json_int_t)strtoll(t, NULL, 10))
                 : json_string(t);
}

/* ---- the summary ---- */

/* The means of one split as the service gives them (server/codec.h: null
 * for what JSON cannot hold), counting those nulls. */
static json_t *split_json(lsmi_fit_run_t *run, const lsmi_summary_t *s) {
  const double v[] = {s->R,  s->U1,  s->U2, s->S,  s->I1,
                      s->I2, s->I12, s->H1, s->H2, s->shift};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    run->nonfinite += !isfinite(v[i]);
  for (int c = 0; s->has_ci && c < LSMI_CI_COUNT; c++)
    run->nonfinite += !isfinite(s->ci[c][0]) + !isfinite(s->ci[c][1]);
  return lsmi_codec_summary(s);
}

static json_t *seconds_json(const lsmi_fit_run_t *run) {
  const lsmi_result_t *r = run->res;
  return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "read",
                   run->read_s, "train", r->seconds_train, "disc_cpu",
                   r->seconds_disc, "ent_cpu", r->seconds_ent, "busy_cpu",
                   r->seconds_busy, "busy_max", r->seconds_busy_max, "help_cpu",
                   r->seconds_help, "eval", r->seconds_eval, "total",
                   run->total_s);
}

/* The class names (numbers when they are), or the indices 0 .. C-1. */
static json_t *class_names_json(const lsmi_dataset_t *ds) {
  json_t *a = json_array();
  for (int c = 0; c < ds->classes; c++)
    json_array_append_new(
        a, ds->class_names
               ? text_value(ds->class_names[c], ds->class_names_numeric)
               : json_integer(c));
  return a;
}

json_t *lsmi_fit_summary_json(lsmi_fit_run_t *run) {
  const lsmi_dataset_t *ds = run->ds;
  const lsmi_result_t *res = run->res;
  json_t *o = json_object();
  json_object_set_new(o, "format",
                      json_string(lsmi_format_name(run->info->format)));
  json_object_set_new(o, "classes", json_integer(ds->classes));
  json_object_set_new(o, "class_names", class_names_json(ds));
  json_object_set_new(o, "d1", json_integer((json_int_t)ds->d1));
  json_object_set_new(o, "d2", json_integer((json_int_t)ds->d2));
  json_object_set_new(o, "threads", json_integer(res->threads));
  json_object_set_new(o, "train", split_json(run, &res->train_summary));
  json_object_set_new(o, "val", split_json(run, &res->val_summary));
  json_object_set_new(o, "ensemble", json_integer(res->ensemble));
  json_object_set_new(o, "folds", json_integer(res->folds));
  json_object_set_new(o, "diagnostics", lsmi_codec_diagnostics(res));
  json_object_set_new(o, "warnings", lsmi_codec_warnings(res));
  json_object_set_new(o, "seconds", seconds_json(run));
  json_object_set_new(o, "disc_loss", result_num(run, res->disc_loss));
  json_object_set_new(o, "ent_loss", result_num(run, res->ent_loss));
  json_object_set_new(o, "provenance", lsmi_fit_provenance_json(run));
  return o;
}

/* ---- provenance ---- */

static json_t *input_json(const lsmi_fit_run_t *run) {
  const lsmi_read_options_t *opt = run->opt;
  json_t *keys = json_pack("{s:s?, s:s?, s:s?, s:s?}", "x1", opt->x1, "x2",
                           opt->x2, "y", opt->y, "id", opt->id);
  json_t *notes = json_array();
  for (int i = 0; i < run->info->nnotes; i++)
    json_array_append_new(notes, json_string(run->info->notes[i]));
  bool drawn = run->ds->val_drawn;
  return json_pack(
      "{s:s, s:s?, s:I, s:s, s:o, s:s, s:o, s:o}", "path", run->path, "sha256",
      run->sha256, "bytes", (json_int_t)run->bytes, "format",
      lsmi_format_name(run->info->format), "keys", keys, "val",
      drawn ? "drawn" : "file", "val_fraction",
      drawn ? json_real(opt->val_fraction) : json_null(), "notes", notes);
}

json_t *lsmi_fit_provenance_json(lsmi_fit_run_t *run) {
  char when[32];
  struct tm tm;
  gmtime_r(&run->started, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "lsmi", LSMI_VERSION,
                   "kernels", lsmi_kernels_name(), "blas_core",
                   lsmi_blas_corename(), "started_at", when, "params",
                   lsmi_codec_params_to_json(run->p), "input", input_json(run),
                   "seconds", seconds_json(run));
}

/* ---- the rows ---- */

lsmi_fit_columns_t lsmi_fit_columns(const lsmi_dataset_t *ds) {
  lsmi_fit_columns_t c = {false, ds->train.id != NULL, ds->class_names != NULL};
  for (int s = 0; s < 2 && !c.row; s++) {
    const lsmi_split_t *sp = s ? &ds->val : &ds->train;
    for (size_t i = 0; i < sp->n && !c.row; i++)
      c.row = sp->row[i] != i;
  }
  return c;
}

const char *lsmi_fit_csv_header(const lsmi_dataset_t *ds,
                                const lsmi_result_t *res) {
  static char h[160];
  lsmi_fit_columns_t c = lsmi_fit_columns(ds);
  snprintf(h, sizeof h, "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2%s%s%s%s\n",
           res->train.r_sd ? ",r_sd,u1_sd,u2_sd,s_sd" : "", c.row ? ",row" : "",
           c.id ? ",id" : "", c.label ? ",label" : "");
  return h;
}

/* A CSV field: as it is, or quoted (RFC 4180) when it holds a comma, a
 * quote, a line break or spaces at either end. */
static int csv_field(FILE *f, const char *t) {
  size_t n = strlen(t);
  bool quote = strpbrk(t, ",\"\r\n") != NULL ||
               (n > 0 && (t[0] == ' ' || t[n - 1] == ' '));
  if (!quote)
    return fprintf(f, ",%s", t);
  int rc = fputs(",\"", f);
  for (const char *c = t; rc >= 0 && *c; c++)
    rc = *c == '"' ? fputs("\"\"", f) : fputc(*c, f);
  return rc < 0 ? rc : fputc('"', f);
}

static int csv_row(FILE *f, const char *split, const lsmi_rows_t *r, size_t k,
                   const lsmi_split_t *sp, const lsmi_dataset_t *ds,
                   lsmi_fit_columns_t c) {
  int rc = fprintf(f, "%zu,%s,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g",
                   k, split, r->y[k], r->r[k], r->u1[k], r->u2[k], r->s[k],
                   r->i1[k], r->i2[k], r->i12[k], r->h1[k], r->h2[k]);
  if (rc >= 0 && r->r_sd)
    rc = fprintf(f, ",%.9g,%.9g,%.9g,%.9g", r->r_sd[k], r->u1_sd[k],
                 r->u2_sd[k], r->s_sd[k]);
  if (rc >= 0 && c.row)
    rc = fprintf(f, ",%llu", (unsigned long long)sp->row[k]);
  if (rc >= 0 && c.id)
    rc = csv_field(f, sp->id[k]);
  if (rc >= 0 && c.label)
    rc = csv_field(f, ds->class_names[r->y[k]]);
  return rc < 0 ? rc : fputc('\n', f);
}

static json_t *json_row(lsmi_fit_run_t *run, const char *split,
                        const lsmi_rows_t *r, size_t k, const lsmi_split_t *sp,
                        lsmi_fit_columns_t c) {
  const lsmi_dataset_t *ds = run->ds;
  json_t *o = json_object();
  json_object_set_new(o, "index", json_integer((json_int_t)k));
  json_object_set_new(o, "split", json_string(split));
  json_object_set_new(o, "y", json_integer(r->y[k]));
  const double v[] = {r->r[k],  r->u1[k],  r->u2[k], r->s[k], r->i1[k],
                      r->i2[k], r->i12[k], r->h1[k], r->h2[k]};
  static const char *const names[] = {"r",  "u1",  "u2", "s", "i1",
                                      "i2", "i12", "h1", "h2"};
  for (size_t i = 0; i < 9; i++)
    json_object_set_new(o, names[i], result_num(run, v[i]));
  if (r->r_sd) {
    const double sd[] = {r->r_sd[k], r->u1_sd[k], r->u2_sd[k], r->s_sd[k]};
    static const char *const sdn[] = {"r_sd", "u1_sd", "u2_sd", "s_sd"};
    for (size_t i = 0; i < 4; i++)
      json_object_set_new(o, sdn[i], result_num(run, sd[i]));
  }
  if (c.row)
    json_object_set_new(o, "row", json_integer((json_int_t)sp->row[k]));
  if (c.id)
    json_object_set_new(o, "id", text_value(sp->id[k], ds->id_numeric));
  if (c.label)
    json_object_set_new(
        o, "label",
        text_value(ds->class_names[r->y[k]], ds->class_names_numeric));
  return o;
}

/* The rows of one split; *first: no row written yet (JSON commas). */
static int write_split(FILE *f, bool json, lsmi_fit_run_t *run,
                       const char *split, const lsmi_rows_t *r,
                       const lsmi_split_t *sp, bool *first) {
  lsmi_fit_columns_t c = lsmi_fit_columns(run->ds);
  for (size_t k = 0; k < r->n; k++) {
    int rc;
    if (json) {
      json_t *o = json_row(run, split, r, k, sp, c);
      rc = o && fputs(*first ? "\n" : ",\n", f) >= 0
               ? json_dumpf(o, f, JSON_FLAGS)
               : -1;
      json_decref(o);
      if (!o)
        errno = ENOMEM;
    } else {
      rc = csv_row(f, split, r, k, sp, run->ds, c);
    }
    if (rc < 0)
      return -1;
    *first = false;
  }
  return 0;
}

/* The head of the JSON document: provenance and the split means. */
static int json_head(FILE *f, lsmi_fit_run_t *run) {
  json_t *prov = lsmi_fit_provenance_json(run);
  json_t *sum = json_pack("{s:o, s:o}", "train",
                          split_json(run, &run->res->train_summary), "val",
                          split_json(run, &run->res->val_summary));
  int rc = prov && sum ? 0 : -1;
  if (rc)
    errno = ENOMEM;
  if (!rc &&
      (fputs("{\"provenance\":", f) < 0 ||
       json_dumpf(prov, f, JSON_FLAGS) != 0 || fputs(",\"summary\":", f) < 0 ||
       json_dumpf(sum, f, JSON_FLAGS) != 0 || fputs(",\"rows\":[", f) < 0))
    rc = -1;
  json_decref(prov);
  json_decref(sum);
  return rc;
}

int lsmi_fit_write_rows(FILE *f, bool json, lsmi_fit_run_t *run) {
  const lsmi_result_t *res = run->res;
  bool first = true;
  if (json ? json_head(f, run) != 0
           : fputs(lsmi_fit_csv_header(run->ds, res), f) < 0)
    return -1;
  if (write_split(f, json, run, "train", &res->train, &run->ds->train,
                  &first) != 0 ||
      write_split(f, json, run, "val", &res->val, &run->ds->val, &first) != 0)
    return -1;
  if (json && fputs("\n]}\n", f) < 0)
    return -1;
  return ferror(f) ? -1 : 0;
}
