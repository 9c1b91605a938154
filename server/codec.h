/*
 * codec.h — JSON codecs of the API: job parameters (from and to the
 * `params` object, checked against the core's parameter table), the job
 * request, summaries, a fit's provenance, and RFC 9457 problem bodies.
 * `lsmi fit` writes its JSON with the same functions, so that the CLI and
 * the API describe a fit alike.
 *
 * Every json_t made here belongs to the calling thread: the caller takes
 * the returned reference and must release it on the same thread.
 */
#ifndef LSMI_CODEC_H
#define LSMI_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lsmi.h"
#include "lsmi_io.h"

/*
 * Fills *p from the defaults and then from the JSON object `params` (may be
 * NULL: all defaults). Unknown names, wrong JSON types and out-of-range
 * values fail with LSMI_ERR_INVALID and err->field = "params.NAME".
 */
int lsmi_codec_params_from_json(const json_t *params, lsmi_params_t *p,
                                lsmi_error_t *err);

/* Every parameter, with its exact value (seeds as integers). New ref. */
json_t *lsmi_codec_params_to_json(const lsmi_params_t *p);

/*
 * Parses a job request body {dataset_id, params}: bad JSON is
 * LSMI_ERR_FORMAT (400), a missing/odd dataset_id or a bad parameter
 * LSMI_ERR_INVALID (422) with err->field set. dataset_id: 64 bytes.
 */
int lsmi_codec_job_request(const char *body, size_t len, char *dataset_id,
                           size_t id_size, lsmi_params_t *p, lsmi_error_t *err);

/* {n, R, U1, U2, S, I1, I2, I12, H1, H2, shift} and, with an ensemble,
 * ci: {R: [lo, hi], ...}. New ref. */
json_t *lsmi_codec_summary(const lsmi_summary_t *s);

/* {f1: {train_loss, train_acc, holdout_loss, ..., epochs, epochs_min,
 * epochs_max}, ..., knife2: {...}}: null where a part has no rows. New
 * ref. */
json_t *lsmi_codec_diagnostics(const lsmi_result_t *res);

/* [{code, split, message}, ...]. New ref. */
json_t *lsmi_codec_warnings(const lsmi_result_t *res);

/* The class names of ds (integers when every name is an integer's text),
 * or its class indices 0 .. C-1 when the labels were those. New ref. */
json_t *lsmi_codec_class_names(const lsmi_dataset_t *ds);

/* {read, train, disc_cpu, ent_cpu, eval, total}: seconds reading the
 * input, training (wall), the discriminators' and the KNIFEs' CPU,
 * evaluating, and from the read to the results. New ref. */
json_t *lsmi_codec_seconds(const lsmi_result_t *res, double read_s,
                           double total_s);

/* Where a fit's input came from and how it was read (all borrowed). */
typedef struct lsmi_codec_input {
  const char *path;       /* the file as `lsmi fit` was given it, or NULL */
  const char *dataset_id; /* the service's dataset, or NULL */
  const char *name;       /* its name, or NULL */
  const char *sha256;     /* hex SHA-256 of the file's bytes, or NULL */
  uint64_t bytes;         /* the file's size */
  const lsmi_read_options_t *opt; /* the keys and val split it was read by */
  const lsmi_read_info_t *info;   /* what the read found */
  bool val_drawn; /* lsmi drew val (opt->val_fraction of train) */
} lsmi_codec_input_t;

/*
 * The provenance of a fit, alike in `lsmi fit`'s JSON outputs and in a
 * job's summary: {lsmi (version), kernels, blas_core, started_at, params
 * (every one, as fitted), input {path | dataset_id and name, sha256,
 * bytes, format, keys, val ("file" | "drawn"), val_fraction, notes},
 * seconds (lsmi_codec_seconds)}. started: wall-clock seconds since the
 * epoch. New ref.
 */
json_t *lsmi_codec_provenance(const lsmi_codec_input_t *in,
                              const lsmi_params_t *p, const lsmi_result_t *res,
                              double started, double read_s, double total_s);

/*
 * The API progress object {phase, epoch, epochs, fraction, ...}: epoch and
 * epochs count completed / total epochs summed over the two model families
 * (discriminators and entropy kernels), which train at the same time.
 * p NULL: a queued job of `params` (phase "queued", nothing done). New ref.
 */
json_t *lsmi_codec_progress(const lsmi_progress_t *p,
                            const lsmi_params_t *params);

/* What a succeeded job records, from its result: the summary {train, val,
 * ensemble, folds, diagnostics, warnings}, the timings {seconds_total
 * (secs), seconds_train, seconds_eval, seconds_disc, seconds_ent,
 * threads} and the progress of a fit done. New refs. */
json_t *lsmi_codec_result_summary(const lsmi_result_t *res);
json_t *lsmi_codec_result_timings(const lsmi_result_t *res, double secs);
json_t *lsmi_codec_result_progress(const lsmi_result_t *res,
                                   const lsmi_params_t *params);

/* A failed job's error: a problem object {status, title, detail[, field]}
 * of the status's HTTP code and name. New ref. */
json_t *lsmi_codec_job_error(int status, const char *field, const char *detail);

/*
 * The HTTP status a request that failed with lsmi status `st` answers (the
 * daemon's own table beside the library's; 500 for a value not in it).
 */
int lsmi_codec_http_status(int st);

/* The reason phrase of an HTTP status ("Not Found"). */
const char *lsmi_codec_http_title(int status);

/*
 * A problem object {type, title, status, detail[, field]}; type is
 * "about:blank" unless `type` is given. New ref (NULL on no memory).
 */
json_t *lsmi_codec_problem(int status, const char *type, const char *detail,
                           const char *field);

#endif
