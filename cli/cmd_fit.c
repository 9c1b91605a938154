/*
 * cmd_fit.c — `lsmi fit FILE [...]`: the estimator offline.
 *
 * The steps: parse the flags (every estimator parameter is one: --epochs-
 * discriminator 10, ...; --x1/--x2/--y/--id say which array is which), check
 * --out before any work (a known extension, a directory that exists and
 * takes a file, or - for stdout), read the file (a file without a val split
 * gets one drawn, and lsmi says so), fit with a progress line on stderr
 * (progress.h), print the per-split means on stdout (a table, or JSON with
 * --json), and write the per-sample rows to --out as CSV or JSON
 * (fit_out.h), durably: common/durable.h. With `--out -` the rows go to
 * stdout and the summary to stderr.
 *
 * stderr carries what a user should know (the file read, a val split
 * drawn, what lsmi did that the file did not say, warnings) and the
 * progress; --quiet keeps only warnings and errors, --verbose adds a line
 * per epoch (main.c adds the kernels' start-up line).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "durable.h"
#include "fit_out.h"
#include "progress.h"
#include "sha256.h"

/* What a file without a val split gets, unless --val-fraction says. */
#define DEFAULT_VAL_FRACTION 0.2

static void fit_usage(FILE *out) {
  size_t n;
  const lsmi_param_desc_t *t = lsmi_params_table(&n);
  lsmi_params_t def;
  lsmi_params_default(&def);
  fprintf(out,
          "usage: lsmi fit FILE [--out rows.csv|rows.json|-] [--json] "
          "[--quiet|--verbose]\n"
          "                [--x1 KEY] [--x2 KEY] [--y KEY] [--id KEY] "
          "[--PARAM VALUE ...]\n"
          "\n"
          "Fits the LSMI estimator on FILE (.npz, .npy, .pt, .safetensors,\n"
          "CSV or JSON; detected from the content) and prints the per-split\n"
          "means of r, u1, u2, s (nats). --out writes one row per sample\n"
          "(CSV header: index,split,y,r,u1,u2,s,i1,i2,i12,h1,h2, then row,\n"
          "id, label where they carry information).\n"
          "\n"
          "options:\n"
          "  --out PATH         per-sample rows: PATH.csv, PATH.json, or - "
          "(CSV on\n"
          "                     stdout; the summary then goes to stderr)\n"
          "  --json             print the summary (and provenance) as JSON\n"
          "  --quiet            only warnings and errors on stderr\n"
          "  --verbose          a progress line per epoch, and the kernels\n"
          "  --x1 KEY           the key (CSV: column or prefix) of modality 1\n"
          "  --x2 KEY           the key (CSV: column or prefix) of modality 2\n"
          "  --y KEY            the key (CSV: column) of the labels\n"
          "  --id KEY           the key (CSV: column) of the sample ids\n"
          "\n"
          "A file without a val split gets one: --val-fraction of train, or\n"
          "%g when it is 0.\n"
          "\n"
          "parameters (default in brackets):\n",
          DEFAULT_VAL_FRACTION);
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

/* ---- arguments ---- */

typedef struct fit_args {
  const char *file, *out;
  bool json, quiet, verbose;
  bool vf_given; /* --val-fraction on the command line */
  lsmi_params_t p;
  lsmi_read_options_t read;
} fit_args_t;

/* --x1 KEY ...: the read option a flag names, or NULL. */
static const char **key_option(fit_args_t *a, const char *flag) {
  return !strcmp(flag, "--x1")   ? &a->read.x1
         : !strcmp(flag, "--x2") ? &a->read.x2
         : !strcmp(flag, "--y")  ? &a->read.y
         : !strcmp(flag, "--id") ? &a->read.id
                                 : NULL;
}

/* A preset first, wherever it stands: explicit parameters override it. */
static int apply_preset(int argc, char **argv, lsmi_params_t *p) {
  lsmi_error_t err = {0};
  for (int i = 1; i < argc; i++) {
    const char *v = !strncmp(argv[i], "--preset=", 9)              ? argv[i] + 9
                    : !strcmp(argv[i], "--preset") && i + 1 < argc ? argv[i + 1]
                                                                   : NULL;
    if (v && lsmi_params_set(p, "preset", v, &err) != LSMI_OK) {
      fprintf(stderr, "lsmi fit: --preset: %s\n", err.message);
      return 2;
    }
  }
  return 0;
}

/* --name VALUE or --name=VALUE of a parameter, at argv[*i]. */
static int parse_param(int argc, char **argv, int *i, lsmi_params_t *p) {
  const char *a = argv[*i], *name = a + 2, *eq = strchr(name, '='), *value;
  char buf[64];
  lsmi_error_t err = {0};
  if (eq) {
    snprintf(buf, sizeof buf, "%.*s", (int)(eq - name), name);
    name = buf;
    value = eq + 1;
  } else {
    if (lsmi_params_find(name) == NULL) {
      fprintf(stderr, "lsmi fit: unknown option %s (see --help)\n", a);
      return 2;
    }
    if (++*i >= argc) {
      fprintf(stderr, "lsmi fit: %s needs a value\n", a);
      return 2;
    }
    value = argv[*i];
  }
  if (strcmp(name, "preset") == 0)
    return 0; /* applied first */
  if (lsmi_params_set(p, name, value, &err) != LSMI_OK) {
    fprintf(stderr, "lsmi fit: --%s: %s\n", name, err.message);
    return 2;
  }
  return 0;
}

/* Fills *a from argv: 0, or the exit status (-1: --help was shown). */
static int parse_args(int argc, char **argv, fit_args_t *a) {
  memset(a, 0, sizeof *a);
  lsmi_params_default(&a->p);
  a->read = (lsmi_read_options_t)LSMI_READ_OPTIONS_INIT;
  int rc = apply_preset(argc, argv, &a->p);
  for (int i = 1; i < argc && !rc; i++) {
    const char *s = argv[i];
    const char **key = key_option(a, s);
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      fit_usage(stdout);
      return -1;
    } else if (!strcmp(s, "--json")) {
      a->json = true;
    } else if (!strcmp(s, "--quiet") || !strcmp(s, "-q")) {
      a->quiet = true;
    } else if (!strcmp(s, "--verbose") || !strcmp(s, "-v")) {
      a->verbose = true;
    } else if (key || !strcmp(s, "--out") || !strcmp(s, "-o")) {
      if (++i >= argc || (key && !*argv[i])) {
        fprintf(stderr, "lsmi fit: %s needs a %s\n", s, key ? "key" : "path");
        return 2;
      }
      *(key ? key : &a->out) = argv[i];
    } else if (!strncmp(s, "--", 2)) {
      a->vf_given = a->vf_given || !strncmp(s, "--val-fraction", 14);
      rc = parse_param(argc, argv, &i, &a->p);
    } else if (a->file == NULL) {
      a->file = s;
    } else {
      fprintf(stderr, "lsmi fit: unexpected argument '%s'\n", s);
      return 2;
    }
  }
  if (!rc && a->file == NULL) {
    fit_usage(stderr);
    return 2;
  }
  if (a->quiet && a->verbose) {
    fprintf(stderr, "lsmi fit: --quiet and --verbose contradict\n");
    return 2;
  }
  /* The drawn split: the fraction asked for (an error if the file has its
   * own), else the default. */
  a->read.val_fraction =
      a->p.val_fraction > 0 ? a->p.val_fraction : DEFAULT_VAL_FRACTION;
  a->read.val_fraction_given = a->vf_given && a->p.val_fraction > 0;
  a->read.seed = a->p.seed;
  return rc;
}

/* ---- --out, checked before any work ---- */

/* Whether --out names JSON (*json), stdout, or a file lsmi can create:
 * a known extension, in a directory that exists and takes a file. 0, or
 * the exit status after saying why. */
static int check_out(const char *path, bool *json) {
  *json = false;
  if (strcmp(path, "-") == 0)
    return 0;
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  const char *ext = strrchr(base, '.');
  if (!ext || (strcmp(ext, ".csv") != 0 && strcmp(ext, ".json") != 0)) {
    fprintf(stderr,
            "lsmi fit: --out %s: unknown extension %s; --out writes .csv, "
            ".json, or - (CSV on stdout)\n",
            path, ext ? ext : "(none)");
    return 2;
  }
  *json = strcmp(ext, ".json") == 0;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    fprintf(stderr, "lsmi fit: --out %s is a directory\n", path);
    return 1;
  }
  char *copy = strdup(path);
  if (!copy) {
    fprintf(stderr, "lsmi fit: out of memory\n");
    return 1;
  }
  const char *dir = dirname(copy);
  int rc = 0;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "lsmi fit: --out %s: no directory %s\n", path, dir);
    rc = 1;
  } else if (access(dir, W_OK | X_OK) != 0) {
    fprintf(stderr, "lsmi fit: --out %s: cannot write in %s: %s\n", path, dir,
            strerror(errno));
    rc = 1;
  }
  free(copy);
  return rc;
}

/* ---- reading ---- */

/* The hex SHA-256 of the file's bytes into hex, and its size; false when
 * it cannot be read (it just was: then the record goes without). */
static bool file_sha256(const char *path, char hex[65], uint64_t *bytes) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  lsmi_sha256_t s;
  lsmi_sha256_init(&s);
  static unsigned char buf[1 << 16];
  size_t n;
  *bytes = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    lsmi_sha256_update(&s, buf, n);
    *bytes += n;
  }
  bool ok = !ferror(f);
  fclose(f);
  unsigned char d[32];
  lsmi_sha256_final(&s, d);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  return ok;
}

/* What the read found that a user should know, on stderr. */
static void say_read(const fit_args_t *a, const lsmi_dataset_t *ds,
                     const lsmi_read_info_t *info) {
  fprintf(stderr,
          "lsmi: %s (%s): train %zu, val %zu rows, d1 %zu, d2 %zu, "
          "%d classes\n",
          a->file, lsmi_format_name(info->format), ds->train.n, ds->val.n,
          ds->d1, ds->d2, ds->classes);
  if (ds->val_drawn)
    fprintf(stderr,
            "lsmi: the file has no val split: drew %g of train as val "
            "(%zu rows, stratified, seed %llu); --val-fraction sets the "
            "fraction\n",
            a->read.val_fraction, ds->val.n, (unsigned long long)a->read.seed);
  for (int i = 0; i < info->nnotes; i++)
    fprintf(stderr, "lsmi: note: %s\n", info->notes[i]);
}

/* ---- the summary ---- */

/* Wall seconds of a monotonic clock. */
static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The table of means, the classes' names when the file had its own, and
 * where the time went. read: seconds reading the file; total: from the
 * start of reading to the results in memory (the scope of the reference
 * script's own total, so the two compare like for like). */
static void summary_table(FILE *f, const lsmi_fit_run_t *run) {
  const lsmi_result_t *res = run->res;
  const lsmi_dataset_t *ds = run->ds;
  fprintf(f, "%-6s %8s %9s %9s %9s %9s %9s %9s %9s %9s\n", "split", "n", "R",
          "U1", "U2", "S", "I1", "I2", "I12", "shift");
  const lsmi_summary_t *s[2] = {&res->train_summary, &res->val_summary};
  /* A mean the adjustment pinned to zero may come out as -1e-17. */
#define SHOW(v) (fabs(v) < 5e-5 ? 0.0 : (v))
  const char *names[2] = {"train", "val"};
  for (int i = 0; i < 2; i++)
    fprintf(f, "%-6s %8zu %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f\n",
            names[i], s[i]->n, SHOW(s[i]->R), SHOW(s[i]->U1), SHOW(s[i]->U2),
            SHOW(s[i]->S), SHOW(s[i]->I1), SHOW(s[i]->I2), SHOW(s[i]->I12),
            SHOW(s[i]->shift));
#undef SHOW
  if (ds->class_names) {
    fputs("classes:", f);
    for (int c = 0; c < ds->classes; c++)
      fprintf(f, "%s %d = %s", c ? "," : "", c, ds->class_names[c]);
    fputc('\n', f);
  }
  fprintf(f,
          "seconds: train %.3f (cpu: discriminators %.3f, entropy %.3f), "
          "evaluate %.3f, threads %d; read %.3f, total %.3f\n",
          res->seconds_train, res->seconds_disc, res->seconds_ent,
          res->seconds_eval, res->threads, run->read_s, run->total_s);
}

/* The summary on f, as a table or JSON: 0, or 1 when out of memory. */
static int print_summary(FILE *f, bool json, lsmi_fit_run_t *run) {
  if (!json) {
    summary_table(f, run);
    return 0;
  }
  json_t *o = lsmi_fit_summary_json(run);
  int rc = o ? json_dumpf(o, f, JSON_COMPACT | JSON_REAL_PRECISION(9)) : -1;
  json_decref(o);
  fputc('\n', f);
  if (rc)
    fprintf(stderr, "lsmi fit: out of memory writing the summary\n");
  return rc ? 1 : 0;
}

/* ---- the rows ---- */

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
 * temp file; "-" is stdout. Returns 0, or -1 after saying why on stderr. */
static int write_out(const char *path, bool json, lsmi_fit_run_t *run) {
  if (strcmp(path, "-") == 0) {
    if (lsmi_fit_write_rows(stdout, false, run) == 0 && fflush(stdout) == 0)
      return 0;
    fprintf(stderr, "lsmi: writing the rows to stdout failed: %s\n",
            strerror(errno));
    return -1;
  }
  lsmi_durable_t d = LSMI_DURABLE_INIT;
  int e = lsmi_durable_begin(&d, NULL, path, out_mode());
  if (e != 0) {
    fprintf(stderr, "lsmi: cannot write %s: %s\n", path, strerror(-e));
    return -1;
  }
  errno = 0;
  FILE *f = lsmi_durable_file(&d);
  if (f == NULL || lsmi_fit_write_rows(f, json, run) != 0)
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

/* ---- the command ---- */

/* Reports a fit's progress to the progress line. */
static int on_progress(void *ctx, const lsmi_progress_t *p) {
  lsmi_cli_progress_update(ctx, p, wall_seconds());
  return 0;
}

/* Fits ds as args say, then prints and writes what it found. */
static int fit_and_report(const fit_args_t *a, bool out_json,
                          lsmi_fit_run_t *run) {
  lsmi_cli_progress_t pg;
  lsmi_cli_progress_init(&pg, stderr, isatty(STDERR_FILENO), a->verbose,
                         wall_seconds());
  lsmi_fit_hooks_t hooks = {.progress = a->quiet ? NULL : on_progress,
                            .ctx = &pg};
  lsmi_result_t *res = NULL;
  lsmi_error_t err = {0};
  double t0 = wall_seconds() - run->read_s;
  int st = lsmi_fit(run->ds, run->p, &hooks, &res, &err);
  lsmi_cli_progress_end(&pg);
  if (st != LSMI_OK) {
    fprintf(stderr, "lsmi fit: %s\n", err.message);
    return 1;
  }
  run->res = res;
  run->total_s = wall_seconds() - t0;
  bool to_stdout = a->out && strcmp(a->out, "-") == 0;
  int rc = print_summary(to_stdout ? stderr : stdout, a->json, run);
  for (int i = 0; i < res->nwarnings; i++)
    fprintf(stderr, "lsmi: warning [%s]: %s\n", res->warnings[i].code,
            res->warnings[i].message);
  if (a->out && write_out(a->out, out_json, run) != 0)
    rc = 1;
  if (run->nonfinite)
    fprintf(stderr,
            "lsmi: warning [not_finite]: %zu values are infinite or NaN "
            "(a sample far outside the train data?); JSON holds them as "
            "null\n",
            run->nonfinite);
  lsmi_result_destroy(res);
  run->res = NULL;
  return rc;
}

int lsmi_fit_main(int argc, char **argv) {
  fit_args_t a;
  int rc = parse_args(argc, argv, &a);
  if (rc)
    return rc < 0 ? 0 : rc;
  bool out_json = false;
  if (a.out && (rc = check_out(a.out, &out_json)) != 0)
    return rc;
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lsmi_dataset_t *ds = NULL;
  lsmi_read_info_t info;
  lsmi_error_t err = {0};
  time_t started = time(NULL);
  double t0 = wall_seconds();
  if (lsmi_dataset_read_ex(a.file, &lim, &a.read, &ds, &info, &err) !=
      LSMI_OK) {
    if (err.field[0])
      fprintf(stderr, "lsmi fit: %s: %s [%s]\n", a.file, err.message,
              err.field);
    else
      fprintf(stderr, "lsmi fit: %s: %s\n", a.file, err.message);
    return 1;
  }
  /* The parameters as fitted: the val fraction is the one drawn, if any. */
  a.p.val_fraction = ds->val_drawn ? a.read.val_fraction : 0;
  lsmi_fit_run_t run = {.path = a.file,
                        .opt = &a.read,
                        .info = &info,
                        .p = &a.p,
                        .ds = ds,
                        .started = started,
                        .read_s = wall_seconds() - t0};
  char sha[65];
  if ((a.json || out_json) && file_sha256(a.file, sha, &run.bytes))
    run.sha256 = sha;
  if (!a.quiet)
    say_read(&a, ds, &info);
  rc = fit_and_report(&a, out_json, &run);
  lsmi_dataset_destroy(ds);
  return rc;
}
