/*
 * cmd_fit.c — `lsmi fit FILE [...]`: the estimator offline.
 *
 * Reads a dataset of any supported format, fits, prints the per-split means
 * on stdout (a table, or JSON with --json), a progress line per epoch on
 * stderr (unless --quiet), and writes the per-sample rows to --out as CSV or
 * JSON (chosen by the extension), durably: common/durable.h.
 * Every estimator parameter is a flag: --epochs-discriminator 10, ...
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd.h"
#include "durable.h"
#include "lsmi_io.h"

static const char csv_header[] = "index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2";
/* With an ensemble, the members' spread follows the published columns. */
static const char csv_sd[] = ",r_sd,u1_sd,u2_sd,s_sd";

static void fit_usage(FILE *out) {
  size_t n;
  const lsmi_param_desc_t *t = lsmi_params_table(&n);
  lsmi_params_t def;
  lsmi_params_default(&def);
  fprintf(out,
          "usage: lsmi fit FILE [--out rows.csv|rows.json] [--json] "
          "[--quiet] [--PARAM VALUE ...]\n"
          "\n"
          "Fits the LSMI estimator on FILE (.npz, .npy, .pt, .safetensors,\n"
          "CSV or JSON; detected from the content) and prints the per-split\n"
          "means of r, u1, u2, s (nats). --out writes one row per sample\n"
          "(CSV header: %s).\n"
          "\n"
          "options:\n"
          "  --out PATH         per-sample rows; .json for JSON, else CSV\n"
          "  --json             print the summary as JSON on stdout\n"
          "  --quiet            no progress lines on stderr\n"
          "\n"
          "parameters (default in brackets):\n",
          csv_header);
  for (size_t i = 0; i < n; i++) {
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", t[i].name);
    for (char *c = flag; *c; c++)
      if (*c == '_')
        *c = '-';
    char defv[32];
    if (t[i].type == LSMI_PARAM_DOUBLE)
      snprintf(defv, sizeof defv, "%g",
               lsmi_params_get_number(&def, t[i].name));
    else
      lsmi_params_format(&def, t[i].name, defv, sizeof defv);
    fprintf(out, "  %-24s %s [%s]\n", flag, t[i].help, defv);
  }
}

/* What the last progress line showed; the core reports after every model
 * epoch, the command prints a line when a family epoch or the phase moves. */
typedef struct shown {
  lsmi_phase_t phase;
  int disc_epoch, ent_epoch;
  bool any;
} shown_t;

static int on_progress(void *ctx, const lsmi_progress_t *p) {
  shown_t *last = ctx;
  if (last->any && p->phase == last->phase &&
      p->disc_epoch == last->disc_epoch && p->ent_epoch == last->ent_epoch)
    return 0;
  bool first = !last->any;
  *last = (shown_t){p->phase, p->disc_epoch, p->ent_epoch, true};
  if (p->phase == LSMI_PHASE_TRAIN && first) {
    fprintf(stderr, "lsmi: training 3 discriminators and 2 KNIFE kernels\n");
    return 0;
  }
  if (p->phase == LSMI_PHASE_TRAIN)
    fprintf(stderr,
            "lsmi: train %3.0f%%  discriminators %d/%d loss %.4f  "
            "entropy %d/%d loss %.4f\n",
            100.0 * p->fraction, p->disc_epoch, p->disc_epochs, p->disc_loss,
            p->ent_epoch, p->ent_epochs, p->ent_loss);
  else
    fprintf(stderr, "lsmi: %s %3.0f%%\n", lsmi_phase_name(p->phase),
            100.0 * p->fraction);
  return 0;
}

/* Writes the rows of one split; returns 0 or -1 on a write error. */
static int write_rows(FILE *f, bool json, const char *split,
                      const lsmi_rows_t *r, bool *first) {
  for (size_t k = 0; k < r->n; k++) {
    int rc;
    if (json)
      rc = fprintf(f,
                   "%s\n{\"index\":%zu,\"split\":\"%s\",\"y\":%d,\"r\":%.9g,"
                   "\"u1\":%.9g,\"u2\":%.9g,\"s\":%.9g,\"i1\":%.9g,"
                   "\"i2\":%.9g,\"i12\":%.9g,\"h1\":%.9g,\"h2\":%.9g}",
                   *first ? "" : ",", k, split, r->y[k], r->r[k], r->u1[k],
                   r->u2[k], r->s[k], r->i1[k], r->i2[k], r->i12[k], r->h1[k],
                   r->h2[k]);
    else
      rc =
          fprintf(f, "%zu,%s,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n",
                  k, split, r->y[k], r->r[k], r->u1[k], r->u2[k], r->s[k],
                  r->i1[k], r->i2[k], r->i12[k], r->h1[k], r->h2[k]);
    if (rc >= 0 && r->r_sd) {
      if (json) {
        fseek(f, -1, SEEK_CUR); /* reopen the object: before its '}' */
        rc = fprintf(f,
                     ",\"r_sd\":%.9g,\"u1_sd\":%.9g,\"u2_sd\":%.9g,"
                     "\"s_sd\":%.9g}",
                     r->r_sd[k], r->u1_sd[k], r->u2_sd[k], r->s_sd[k]);
      } else {
        fseek(f, -1, SEEK_CUR); /* before the '\n' */
        rc = fprintf(f, ",%.9g,%.9g,%.9g,%.9g\n", r->r_sd[k], r->u1_sd[k],
                     r->u2_sd[k], r->s_sd[k]);
      }
    }
    if (rc < 0)
      return -1;
    *first = false;
  }
  return 0;
}

static void summary_json(FILE *f, const char *name, const lsmi_summary_t *s) {
  fprintf(f,
          "\"%s\":{\"n\":%zu,\"R\":%.9g,\"U1\":%.9g,\"U2\":%.9g,\"S\":%.9g,"
          "\"I1\":%.9g,\"I2\":%.9g,\"I12\":%.9g,\"H1\":%.9g,\"H2\":%.9g,"
          "\"shift\":%.9g",
          name, s->n, s->R, s->U1, s->U2, s->S, s->I1, s->I2, s->I12, s->H1,
          s->H2, s->shift);
  if (s->has_ci) {
    fprintf(f, ",\"ci\":{");
    for (int k = 0; k < LSMI_CI_COUNT; k++)
      fprintf(f, "%s\"%s\":[%.9g,%.9g]", k ? "," : "", lsmi_ci_name(k),
              s->ci[k][0], s->ci[k][1]);
    fputc('}', f);
  }
  fputc('}', f);
}

/* A number, or null where JSON has none (NaN: a part without rows). */
static void json_num(FILE *f, double v) {
  if (isfinite(v))
    fprintf(f, "%.9g", v);
  else
    fputs("null", f);
}

/* The per-model diagnostics and the warnings, as JSON members. */
static void diagnostics_json(FILE *f, const lsmi_result_t *res) {
  fprintf(f, "\"ensemble\":%d,\"folds\":%d,\"diagnostics\":{", res->ensemble,
          res->folds);
  for (int m = 0; m < LSMI_MODELS; m++) {
    const lsmi_model_diag_t *d = &res->diag[m];
    fprintf(f, "%s\"%s\":{", m ? "," : "", lsmi_model_name(m));
    for (int part = 0; part < LSMI_PARTS; part++) {
      fprintf(f, "\"%s_loss\":", lsmi_part_name(part));
      json_num(f, d->loss[part]);
      if (m < LSMI_MODEL_KNIFE1) {
        fprintf(f, ",\"%s_acc\":", lsmi_part_name(part));
        json_num(f, d->acc[part]);
      }
      fputc(',', f);
    }
    fprintf(f, "\"epochs\":%.4g,\"epochs_min\":%d,\"epochs_max\":%d}",
            d->epochs, d->epochs_min, d->epochs_max);
  }
  fprintf(f, "},\"warnings\":[");
  for (int i = 0; i < res->nwarnings; i++) {
    const lsmi_warning_t *w = &res->warnings[i];
    fprintf(f, "%s{\"code\":\"%s\",\"split\":\"%s\",\"message\":\"",
            i ? "," : "", w->code, w->split);
    for (const char *c = w->message; *c; c++) /* lsmi's own sentences */
      fprintf(f, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
    fputs("\"}", f);
  }
  fputc(']', f);
}

/* The mode fopen(path, "w") would give a new file: 0666 less the umask.
 * The durable helper sets the mode explicitly, so it is read here (the
 * command is single-threaded when it writes, so the brief umask(0) is safe). */
static mode_t out_mode(void) {
  mode_t mask = umask(0);
  umask(mask);
  return 0666 & ~mask;
}

/* Writes the rows to path durably (common/durable.h: a fresh temp file
 * beside it, fsync, rename, fsync of the directory), so that a crash or a
 * failed write leaves the old file or none, never a partial one, and no
 * temp file. Returns 0, or -1 after saying why on stderr. */
static int write_out(const char *path, const lsmi_result_t *res) {
  size_t len = strlen(path);
  bool json = len >= 5 && strcmp(path + len - 5, ".json") == 0;
  bool first = true;
  lsmi_durable_t d = LSMI_DURABLE_INIT;
  int e = lsmi_durable_begin(&d, NULL, path, out_mode());
  if (e != 0) {
    fprintf(stderr, "lsmi: cannot write %s: %s\n", path, strerror(-e));
    return -1;
  }
  errno = 0;
  FILE *f = lsmi_durable_file(&d);
  if (f == NULL)
    goto error;
  if (json) {
    fprintf(f, "{\"summary\":{");
    summary_json(f, "train", &res->train_summary);
    fputc(',', f);
    summary_json(f, "val", &res->val_summary);
    fprintf(f, "},\"rows\":[");
  } else {
    fprintf(f, "%s%s\n", csv_header, res->train.r_sd ? csv_sd : "");
  }
  if (write_rows(f, json, "train", &res->train, &first) != 0 ||
      write_rows(f, json, "val", &res->val, &first) != 0)
    goto error;
  if (json)
    fprintf(f, "\n]}\n");
  if (ferror(f))
    goto error;
  e = lsmi_durable_commit(&d, path);
  if (e == 0)
    return 0;
  errno = -e;
error:
  e = errno ? errno : EIO;
  lsmi_durable_abort(&d);
  fprintf(stderr, "lsmi: writing %s failed: %s\n", path, strerror(e));
  return -1;
}

/* Wall seconds of a monotonic clock. */
static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* read: seconds reading the file; total: from the start of reading to the
 * results in memory (reading, training, evaluation: the scope of the
 * reference script's own total, so the two compare like for like). */
static void print_summary(const lsmi_result_t *res, const lsmi_dataset_t *ds,
                          lsmi_format_t fmt, bool json, double read,
                          double total) {
  if (json) {
    printf("{\"format\":\"%s\",\"classes\":%d,\"d1\":%zu,\"d2\":%zu,"
           "\"threads\":%d,",
           lsmi_format_name(fmt), ds->classes, ds->d1, ds->d2, res->threads);
    summary_json(stdout, "train", &res->train_summary);
    putchar(',');
    summary_json(stdout, "val", &res->val_summary);
    putchar(',');
    diagnostics_json(stdout, res);
    printf(",\"seconds\":{\"read\":%.6f,\"train\":%.6f,\"disc_cpu\":%.6f,"
           "\"ent_cpu\":%.6f,\"eval\":%.6f,\"total\":%.6f},"
           "\"disc_loss\":%.9g,\"ent_loss\":%.9g}\n",
           read, res->seconds_train, res->seconds_disc, res->seconds_ent,
           res->seconds_eval, total, res->disc_loss, res->ent_loss);
    return;
  }
  printf("%-6s %8s %9s %9s %9s %9s %9s %9s %9s %9s\n", "split", "n", "R", "U1",
         "U2", "S", "I1", "I2", "I12", "shift");
  const lsmi_summary_t *s[2] = {&res->train_summary, &res->val_summary};
  /* A mean the adjustment pinned to zero may come out as -1e-17. */
#define SHOW(v) (fabs(v) < 5e-5 ? 0.0 : (v))
  const char *names[2] = {"train", "val"};
  for (int i = 0; i < 2; i++)
    printf("%-6s %8zu %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f\n",
           names[i], s[i]->n, SHOW(s[i]->R), SHOW(s[i]->U1), SHOW(s[i]->U2),
           SHOW(s[i]->S), SHOW(s[i]->I1), SHOW(s[i]->I2), SHOW(s[i]->I12),
           SHOW(s[i]->shift));
#undef SHOW
  printf("seconds: train %.3f (cpu: discriminators %.3f, entropy %.3f), "
         "evaluate %.3f, threads %d; read %.3f, total %.3f\n",
         res->seconds_train, res->seconds_disc, res->seconds_ent,
         res->seconds_eval, res->threads, read, total);
}

int lsmi_fit_main(int argc, char **argv) {
  const char *file = NULL, *out = NULL;
  bool json = false, quiet = false;
  lsmi_params_t p;
  lsmi_params_default(&p);
  lsmi_error_t err = {0};
  /* A preset first, wherever it stands: explicit parameters override it. */
  for (int i = 1; i < argc; i++) {
    const char *v = !strncmp(argv[i], "--preset=", 9)              ? argv[i] + 9
                    : !strcmp(argv[i], "--preset") && i + 1 < argc ? argv[i + 1]
                                                                   : NULL;
    if (v && lsmi_params_set(&p, "preset", v, &err) != LSMI_OK) {
      fprintf(stderr, "lsmi fit: --preset: %s\n", err.message);
      return 2;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fit_usage(stdout);
      return 0;
    } else if (!strcmp(a, "--json")) {
      json = true;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = true;
    } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
      if (++i >= argc) {
        fprintf(stderr, "lsmi fit: --out needs a path\n");
        return 2;
      }
      out = argv[i];
    } else if (!strncmp(a, "--", 2)) {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      char buf[64];
      const char *value;
      if (eq) {
        snprintf(buf, sizeof buf, "%.*s", (int)(eq - name), name);
        name = buf;
        value = eq + 1;
      } else {
        if (lsmi_params_find(name) == NULL) {
          fprintf(stderr, "lsmi fit: unknown option %s (see --help)\n", a);
          return 2;
        }
        if (++i >= argc) {
          fprintf(stderr, "lsmi fit: %s needs a value\n", a);
          return 2;
        }
        value = argv[i];
      }
      if (strcmp(name, "preset") == 0)
        continue; /* applied above */
      if (lsmi_params_set(&p, name, value, &err) != LSMI_OK) {
        fprintf(stderr, "lsmi fit: --%s: %s\n", name, err.message);
        return 2;
      }
    } else if (file == NULL) {
      file = a;
    } else {
      fprintf(stderr, "lsmi fit: unexpected argument '%s'\n", a);
      return 2;
    }
  }
  if (file == NULL) {
    fit_usage(stderr);
    return 2;
  }
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi_dataset_t *ds = NULL;
  lsmi_format_t fmt = LSMI_FORMAT_UNKNOWN;
  double t0 = wall_seconds();
  if (lsmi_dataset_read(file, &lim, p.val_fraction, p.seed, &ds, &fmt, &err) !=
      LSMI_OK) {
    if (err.field[0])
      fprintf(stderr, "lsmi fit: %s: %s [%s]\n", file, err.message, err.field);
    else
      fprintf(stderr, "lsmi fit: %s: %s\n", file, err.message);
    return 1;
  }
  double read = wall_seconds() - t0;
  if (!quiet)
    fprintf(stderr,
            "lsmi: %s (%s): train %zu, val %zu rows, d1 %zu, d2 %zu, "
            "%d classes\n",
            file, lsmi_format_name(fmt), ds->train.n, ds->val.n, ds->d1, ds->d2,
            ds->classes);
  shown_t shown = {0};
  lsmi_fit_hooks_t hooks = {.progress = quiet ? NULL : on_progress,
                            .ctx = &shown};
  lsmi_result_t *res = NULL;
  int st = lsmi_fit(ds, &p, &hooks, &res, &err);
  if (st != LSMI_OK) {
    fprintf(stderr, "lsmi fit: %s\n", err.message);
    lsmi_dataset_destroy(ds);
    return 1;
  }
  print_summary(res, ds, fmt, json, read, wall_seconds() - t0);
  for (int i = 0; i < res->nwarnings; i++)
    fprintf(stderr, "lsmi: warning [%s]: %s\n", res->warnings[i].code,
            res->warnings[i].message);
  int rc = 0;
  if (out && write_out(out, res) != 0)
    rc = 1;
  lsmi_result_destroy(res);
  lsmi_dataset_destroy(ds);
  return rc;
}
