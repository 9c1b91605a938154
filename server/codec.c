/*
 * codec.c — JSON in and out of the API. Parameters go through the core's
 * table (lsmi_params_find / lsmi_params_set_number / lsmi_params_set), so
 * the names, types and ranges checked here are exactly those of `lsmi fit`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "util.h"

static int param_from_value(lsmi_params_t *p, const lsmi_param_desc_t *d,
                            const json_t *v, lsmi_error_t *err) {
  char field[64];
  snprintf(field, sizeof field, "params.%s", d->name);
  int st = LSMI_OK;
  switch (d->type) {
  case LSMI_PARAM_ENUM:
    if (!json_is_string(v))
      return lsmi_error_set(err, LSMI_ERR_INVALID, field,
                            "%s must be a string (%s)", field, d->help);
    st = lsmi_params_set(p, d->name, json_string_value(v), err);
    break;
  case LSMI_PARAM_BOOL:
    if (!json_is_boolean(v))
      return lsmi_error_set(err, LSMI_ERR_INVALID, field,
                            "%s must be true or false", field);
    st = lsmi_params_set_number(p, d->name, json_is_true(v) ? 1.0 : 0.0, err);
    break;
  case LSMI_PARAM_INT:
  case LSMI_PARAM_UINT64:
    if (!json_is_integer(v) &&
        !(json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))
      return lsmi_error_set(err, LSMI_ERR_INVALID, field,
                            "%s must be an integer", field);
    st = lsmi_params_set_number(p, d->name, json_number_value(v), err);
    break;
  case LSMI_PARAM_DOUBLE:
    if (!json_is_number(v))
      return lsmi_error_set(err, LSMI_ERR_INVALID, field, "%s must be a number",
                            field);
    st = lsmi_params_set_number(p, d->name, json_number_value(v), err);
    break;
  }
  if (st && err) /* the core names the bare parameter; say where it lives */
    snprintf(err->field, sizeof err->field, "%s", field);
  return st;
}

int lsmi_codec_params_from_json(const json_t *params, lsmi_params_t *p,
                                lsmi_error_t *err) {
  lsmi_params_default(p);
  if (params == NULL || json_is_null(params))
    return LSMI_OK;
  if (!json_is_object(params))
    return lsmi_error_set(err, LSMI_ERR_INVALID, "params",
                          "params must be an object");
  /* The preset first: the explicit parameters override it. */
  const json_t *preset = json_object_get(params, "preset");
  if (preset) {
    int st = param_from_value(p, lsmi_params_find("preset"), preset, err);
    if (st)
      return st;
  }
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)params, key, v) {
    if (strcmp(key, "preset") == 0)
      continue;
    const lsmi_param_desc_t *d = lsmi_params_find(key);
    /* Only the JSON spelling: "epochs-entropy" is a CLI flag, not a key. */
    if (d == NULL || strcmp(d->name, key) != 0) {
      char field[64];
      snprintf(field, sizeof field, "params.%.50s", key);
      return lsmi_error_set(err, LSMI_ERR_INVALID, field,
                            "unknown parameter '%.200s'", key);
    }
    int st = param_from_value(p, d, v, err);
    if (st)
      return st;
  }
  int st = lsmi_params_validate(p, err);
  if (st && err && strncmp(err->field, "params.", 7) != 0) {
    char field[64];
    snprintf(field, sizeof field, "params.%.50s", err->field);
    snprintf(err->field, sizeof err->field, "%s", field);
  }
  return st;
}

json_t *lsmi_codec_params_to_json(const lsmi_params_t *p) {
  size_t n = 0;
  const lsmi_param_desc_t *t = lsmi_params_table(&n);
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    const char *base = (const char *)p + t[i].offset;
    json_t *v = NULL;
    switch (t[i].type) {
    case LSMI_PARAM_INT:
      v = json_integer(*(const int *)(const void *)base);
      break;
    case LSMI_PARAM_UINT64:
      v = json_integer((json_int_t) * (const uint64_t *)(const void *)base);
      break;
    case LSMI_PARAM_DOUBLE:
      v = json_real(*(const double *)(const void *)base);
      break;
    case LSMI_PARAM_BOOL:
      v = json_boolean(*(const bool *)(const void *)base);
      break;
    case LSMI_PARAM_ENUM: {
      char text[32];
      v = json_string(lsmi_params_format(p, t[i].name, text, sizeof text));
      break;
    }
    }
    if (v == NULL || json_object_set_new(o, t[i].name, v)) {
      json_decref(o);
      return NULL;
    }
  }
  return o;
}

int lsmi_codec_job_request(const char *body, size_t len, char *dataset_id,
                           size_t id_size, lsmi_params_t *p,
                           lsmi_error_t *err) {
  json_error_t je;
  json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return lsmi_error_set(err, LSMI_ERR_FORMAT, "body",
                          "request body is not valid JSON: %s (line %d, "
                          "column %d)",
                          je.text, je.line, je.column);
  int st = LSMI_OK;
  if (!json_is_object(root)) {
    st = lsmi_error_set(err, LSMI_ERR_INVALID, "body",
                        "request body must be a JSON object");
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "dataset_id") && strcmp(key, "params")) {
      st = lsmi_error_set(err, LSMI_ERR_INVALID, key,
                          "unknown member '%.200s' (expected dataset_id, "
                          "params)",
                          key);
      goto done;
    }
  }
  json_t *ds = json_object_get(root, "dataset_id");
  if (!json_is_string(ds) || json_string_length(ds) == 0 ||
      json_string_length(ds) >= id_size) {
    st = lsmi_error_set(err, ds ? LSMI_ERR_INVALID : LSMI_ERR_MISSING,
                        "dataset_id",
                        "dataset_id must be the id string of an uploaded "
                        "dataset");
    goto done;
  }
  snprintf(dataset_id, id_size, "%s", json_string_value(ds));
  st = lsmi_codec_params_from_json(json_object_get(root, "params"), p, err);
done:
  json_decref(root);
  return st;
}

/* A number, or null where JSON has none (a part without rows: NaN). */
static json_t *num_or_null(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

json_t *lsmi_codec_summary(const lsmi_summary_t *s) {
  json_t *o = json_pack(
      "{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "n",
      (json_int_t)s->n, "R", num_or_null(s->R), "U1", num_or_null(s->U1), "U2",
      num_or_null(s->U2), "S", num_or_null(s->S), "I1", num_or_null(s->I1),
      "I2", num_or_null(s->I2), "I12", num_or_null(s->I12), "H1",
      num_or_null(s->H1), "H2", num_or_null(s->H2), "shift",
      num_or_null(s->shift));
  if (o == NULL || !s->has_ci)
    return o;
  json_t *ci = json_object();
  for (int k = 0; k < LSMI_CI_COUNT; k++)
    json_object_set_new(ci, lsmi_ci_name(k),
                        json_pack("[o, o]", num_or_null(s->ci[k][0]),
                                  num_or_null(s->ci[k][1])));
  json_object_set_new(o, "ci", ci);
  return o;
}

json_t *lsmi_codec_diagnostics(const lsmi_result_t *res) {
  json_t *o = json_object();
  for (int m = 0; o && m < LSMI_MODELS; m++) {
    const lsmi_model_diag_t *d = &res->diag[m];
    json_t *md = json_object();
    for (int part = 0; md && part < LSMI_PARTS; part++) {
      char key[32];
      snprintf(key, sizeof key, "%s_loss", lsmi_part_name(part));
      json_object_set_new(md, key, num_or_null(d->loss[part]));
      if (m >= LSMI_MODEL_KNIFE1)
        continue;
      snprintf(key, sizeof key, "%s_acc", lsmi_part_name(part));
      json_object_set_new(md, key, num_or_null(d->acc[part]));
    }
    json_object_set_new(md, "epochs", json_real(d->epochs));
    json_object_set_new(md, "epochs_min", json_integer(d->epochs_min));
    json_object_set_new(md, "epochs_max", json_integer(d->epochs_max));
    json_object_set_new(o, lsmi_model_name(m), md);
  }
  return o;
}

json_t *lsmi_codec_warnings(const lsmi_result_t *res) {
  json_t *a = json_array();
  for (int i = 0; a && i < res->nwarnings; i++) {
    const lsmi_warning_t *w = &res->warnings[i];
    json_array_append_new(a,
                          json_pack("{s:s, s:s, s:s}", "code", w->code, "split",
                                    w->split, "message", w->message));
  }
  return a;
}

/* Text that is an integer's (lsmi_dataset_t: class_names_numeric) as a
 * JSON integer, other text as a string. */
static json_t *text_value(const char *t, bool numeric) {
  return numeric ? json_integer((json_int_t)strtoll(t, NULL, 10))
                 : json_string(t);
}

json_t *lsmi_codec_class_names(const lsmi_dataset_t *ds) {
  json_t *a = json_array();
  for (int c = 0; a && c < ds->classes; c++)
    json_array_append_new(
        a, ds->class_names
               ? text_value(ds->class_names[c], ds->class_names_numeric)
               : json_integer(c));
  return a;
}

json_t *lsmi_codec_seconds(const lsmi_result_t *res, double read_s,
                           double total_s) {
  return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "read",
                   read_s, "train", res->seconds_train, "disc_cpu",
                   res->seconds_disc, "ent_cpu", res->seconds_ent, "busy_cpu",
                   res->seconds_busy, "busy_max", res->seconds_busy_max,
                   "help_cpu", res->seconds_help, "eval", res->seconds_eval,
                   "total", total_s);
}

/* The input part of the provenance. */
static json_t *input_json(const lsmi_codec_input_t *in) {
  const lsmi_read_options_t *opt = in->opt;
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  if (in->path)
    json_object_set_new(o, "path", json_string(in->path));
  if (in->dataset_id)
    json_object_set_new(o, "dataset_id", json_string(in->dataset_id));
  if (in->name)
    json_object_set_new(o, "name", json_string(in->name));
  json_object_set_new(o, "sha256",
                      in->sha256 ? json_string(in->sha256) : json_null());
  json_object_set_new(o, "bytes", json_integer((json_int_t)in->bytes));
  json_object_set_new(o, "format",
                      json_string(lsmi_format_name(in->info->format)));
  json_object_set_new(o, "keys",
                      json_pack("{s:s?, s:s?, s:s?, s:s?}", "x1", opt->x1, "x2",
                                opt->x2, "y", opt->y, "id", opt->id));
  json_object_set_new(o, "val", json_string(in->val_drawn ? "drawn" : "file"));
  json_object_set_new(o, "val_fraction",
                      in->val_drawn ? json_real(opt->val_fraction)
                                    : json_null());
  json_t *notes = json_array();
  for (int i = 0; notes && i < in->info->nnotes; i++)
    json_array_append_new(notes, json_string(in->info->notes[i]));
  json_object_set_new(o, "notes", notes);
  return o;
}

json_t *lsmi_codec_provenance(const lsmi_codec_input_t *in,
                              const lsmi_params_t *p, const lsmi_result_t *res,
                              double started, double read_s, double total_s) {
  char when[40];
  lsmi_util_iso8601(started, when, sizeof when);
  return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "lsmi", LSMI_VERSION,
                   "kernels", lsmi_kernels_name(), "blas_core",
                   lsmi_blas_corename(), "started_at", when, "params",
                   lsmi_codec_params_to_json(p), "input", input_json(in),
                   "seconds", lsmi_codec_seconds(res, read_s, total_s));
}

json_t *lsmi_codec_progress(const lsmi_progress_t *p,
                            const lsmi_params_t *params) {
  if (p == NULL)
    return json_pack("{s:s, s:i, s:i, s:f, s:i, s:i, s:n, s:i, s:i, s:n}",
                     "phase", "queued", "epoch", 0, "epochs",
                     params->epochs_discriminator + params->epochs_entropy,
                     "fraction", 0.0, "disc_epoch", 0, "disc_epochs",
                     params->epochs_discriminator, "disc_loss", "ent_epoch", 0,
                     "ent_epochs", params->epochs_entropy, "ent_loss");
  /* epoch: the epochs' worth of training done, from the same count as
   * fraction, so the two agree; disc_epoch and ent_epoch are the epochs
   * every model of a family has completed, which lag behind when the
   * models of a family train one after another. */
  int epochs = p->disc_epochs + p->ent_epochs;
  double trained = p->phase == LSMI_PHASE_TRAIN
                       ? p->fraction / LSMI_PROGRESS_TRAIN_SHARE
                       : (p->fraction > 0 ? 1.0 : 0.0);
  int epoch = (int)floor(trained * epochs + 1e-9);
  epoch = epoch < 0 ? 0 : (epoch > epochs ? epochs : epoch);
  json_t *o = json_pack("{s:s, s:i, s:i, s:f, s:i, s:i, s:i, s:i}", "phase",
                        lsmi_phase_name(p->phase), "epoch", epoch, "epochs",
                        epochs, "fraction", p->fraction, "disc_epoch",
                        p->disc_epoch, "disc_epochs", p->disc_epochs,
                        "ent_epoch", p->ent_epoch, "ent_epochs", p->ent_epochs);
  if (o) {
    json_object_set_new(o, "disc_loss",
                        p->disc_epoch > 0 && isfinite(p->disc_loss)
                            ? json_real(p->disc_loss)
                            : json_null());
    json_object_set_new(o, "ent_loss",
                        p->ent_epoch > 0 && isfinite(p->ent_loss)
                            ? json_real(p->ent_loss)
                            : json_null());
  }
  return o;
}

json_t *lsmi_codec_result_summary(const lsmi_result_t *res) {
  json_t *sum = json_object();
  json_object_set_new(sum, "train", lsmi_codec_summary(&res->train_summary));
  json_object_set_new(sum, "val", lsmi_codec_summary(&res->val_summary));
  json_object_set_new(sum, "ensemble", json_integer(res->ensemble));
  json_object_set_new(sum, "folds", json_integer(res->folds));
  json_object_set_new(sum, "diagnostics", lsmi_codec_diagnostics(res));
  json_object_set_new(sum, "warnings", lsmi_codec_warnings(res));
  return sum;
}

json_t *lsmi_codec_result_timings(const lsmi_result_t *res, double secs) {
  return json_pack("{s:f, s:f, s:f, s:f, s:f, s:i}", "seconds_total", secs,
                   "seconds_train", res->seconds_train, "seconds_eval",
                   res->seconds_eval, "seconds_disc", res->seconds_disc,
                   "seconds_ent", res->seconds_ent, "threads", res->threads);
}

json_t *lsmi_codec_result_progress(const lsmi_result_t *res,
                                   const lsmi_params_t *params) {
  lsmi_progress_t done = {.phase = LSMI_PHASE_DONE,
                          .disc_epoch = params->epochs_discriminator,
                          .disc_epochs = params->epochs_discriminator,
                          .disc_loss = res->disc_loss,
                          .ent_epoch = params->epochs_entropy,
                          .ent_epochs = params->epochs_entropy,
                          .ent_loss = res->ent_loss,
                          .fraction = 1.0};
  return lsmi_codec_progress(&done, params);
}

json_t *lsmi_codec_job_error(int status, const char *field,
                             const char *detail) {
  json_t *e =
      json_pack("{s:i, s:s, s:s}", "status", lsmi_codec_http_status(status),
                "title", lsmi_status_name(status), "detail", detail);
  if (e && field && field[0])
    json_object_set_new(e, "field", json_string(field));
  return e;
}

/* X(status name, HTTP status): what a request that failed with the status
 * answers. A status missing here is a server bug and answers 500. BUSY is
 * a full job queue: 429, with Retry-After (http.c adds it); UNAVAILABLE
 * the cluster mode's database out of reach: 503, with Retry-After too. */
#define LSMI_HTTP_MAP(X)                                                       \
  X(OK, 200)                                                                   \
  X(ERR_NOMEM, 503)                                                            \
  X(ERR_INVALID, 422)                                                          \
  X(ERR_IO, 500)                                                               \
  X(ERR_FORMAT, 400)                                                           \
  X(ERR_UNSUPPORTED, 415)                                                      \
  X(ERR_SHAPE, 422)                                                            \
  X(ERR_DATA, 422)                                                             \
  X(ERR_LIMIT, 413)                                                            \
  X(ERR_MISSING, 422)                                                          \
  X(ERR_DIVERGED, 422)                                                         \
  X(ERR_CANCELLED, 409)                                                        \
  X(ERR_THREAD, 500)                                                           \
  X(ERR_NOTFOUND, 404)                                                         \
  X(ERR_CONFLICT, 409)                                                         \
  X(ERR_BUSY, 429)                                                             \
  X(ERR_SHUTDOWN, 503)                                                         \
  X(ERR_NOSPACE, 507)                                                          \
  X(ERR_UNAVAILABLE, 503)

int lsmi_codec_http_status(int st) {
  switch (st) {
#define X(name, http)                                                          \
  case LSMI_##name:                                                            \
    return http;
    LSMI_HTTP_MAP(X)
#undef X
  default:
    return 500;
  }
}

const char *lsmi_codec_http_title(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 409:
    return "Conflict";
  case 411:
    return "Length Required";
  case 413:
    return "Content Too Large";
  case 415:
    return "Unsupported Media Type";
  case 422:
    return "Unprocessable Content";
  case 429:
    return "Too Many Requests";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  case 507:
    return "Insufficient Storage";
  default:
    return "Error";
  }
}

/* A JSON string of text from anywhere (a file's key may not be UTF-8):
 * bytes that make it invalid become '?'. */
static json_t *safe_string(const char *text) {
  json_t *s = json_string(text);
  if (s)
    return s;
  char buf[1024];
  size_t i = 0;
  for (; text[i] && i + 1 < sizeof buf; i++) {
    unsigned char c = (unsigned char)text[i];
    buf[i] = (c < 0x20 || c >= 0x80) ? '?' : (char)c;
  }
  buf[i] = '\0';
  return json_string(buf);
}

json_t *lsmi_codec_problem(int status, const char *type, const char *detail,
                           const char *field) {
  json_t *o =
      json_pack("{s:s, s:s, s:i}", "type", type ? type : "about:blank", "title",
                lsmi_codec_http_title(status), "status", status);
  if (o == NULL)
    return NULL;
  json_object_set_new(o, "detail", safe_string(detail ? detail : ""));
  if (field && field[0])
    json_object_set_new(o, "field", safe_string(field));
  return o;
}
