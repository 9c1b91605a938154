/*
 * fit_out.h — what `lsmi fit` writes (internal to the `lsmi` binary): the
 * summary as JSON, the provenance of a fit, and the per-sample rows as CSV
 * or JSON. Every JSON value is made by jansson; a number JSON cannot hold
 * (inf, NaN) is written as null and counted, so that the command can warn.
 *
 * The rows' columns: index, split, y, r, u1, u2, s, i1, i2, i12, h1, h2
 * (the published ones), r_sd, u1_sd, u2_sd, s_sd with an ensemble, then
 * only where they carry information: `row` (the sample's position in the
 * file) when some row's position differs from its index in its split (lsmi
 * drew val, or a split column interleaved the file), `id` when the file has
 * sample ids, `label` (the file's own label) when the labels were not the
 * class indices 0 .. C-1 themselves. So a file with its own val split, no
 * ids and labels 0 .. C-1 gives the very bytes lsmi gave before these
 * columns existed.
 */
#ifndef LSMI_CLI_FIT_OUT_H
#define LSMI_CLI_FIT_OUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "lsmi.h"
#include "lsmi_io.h"

/* A fit and where it came from, as its outputs describe it (all
 * borrowed). */
typedef struct lsmi_fit_run {
  const char *path;               /* the input as given */
  const char *sha256;             /* hex SHA-256 of its bytes, or NULL */
  uint64_t bytes;                 /* its size */
  const lsmi_read_options_t *opt; /* how it was read */
  const lsmi_read_info_t *info;   /* what the read found */
  const lsmi_params_t *p;         /* every parameter of the fit */
  const lsmi_dataset_t *ds;
  const lsmi_result_t *res;
  time_t started;         /* wall clock, for the record */
  double read_s, total_s; /* seconds: reading; reading to results */
  size_t nonfinite;       /* numbers written as null so far */
} lsmi_fit_run_t;

/* The column rule above: which of row, id and label the rows carry. */
typedef struct lsmi_fit_columns {
  bool row, id, label;
} lsmi_fit_columns_t;

lsmi_fit_columns_t lsmi_fit_columns(const lsmi_dataset_t *ds);

/* The CSV header line (with '\n') of the rows of ds and res: a static
 * buffer. */
const char *lsmi_fit_csv_header(const lsmi_dataset_t *ds,
                                const lsmi_result_t *res);

/* The summary object of `lsmi fit --json`: format, shapes, class names,
 * both splits' means, diagnostics, warnings, seconds, losses and the
 * provenance. New reference; NULL when out of memory. */
json_t *lsmi_fit_summary_json(lsmi_fit_run_t *run);

/* The provenance: lsmi's version and kernels (OpenBLAS's too), when,
 * every parameter, the input (path, SHA-256, bytes, format, the keys it
 * was read by, the val split and what the read did), and the seconds. New
 * reference. */
json_t *lsmi_fit_provenance_json(lsmi_fit_run_t *run);

/* Writes the rows (CSV, or the JSON document {"provenance", "summary",
 * "rows"}) to f: 0, or -1 on a write error or no memory (errno says
 * which). */
int lsmi_fit_write_rows(FILE *f, bool json, lsmi_fit_run_t *run);

#endif
