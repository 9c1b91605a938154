/*
 * cmd_synth.c — `lsmi synth KIND --out FILE.npz [--n N] [--seed S]
 * [--dim D]`: writes a demo or ground-truth dataset as an uncompressed .npz
 * (with the per-sample regimes of `mixed` as train_regime and val_regime;
 * core/synth.c and doc/cli.md describe the kinds).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "lsmi_io.h"

static void synth_usage(FILE *out) {
  fprintf(out,
          "usage: lsmi synth KIND --out FILE.npz [--n N] [--seed S] [--dim D]\n"
          "\n"
          "KIND: gaussian    the reference demo: x1 = onehot(y) + u,\n"
          "                  x2 = onehot(y) + 0.5 u + sqrt(0.75) v,\n"
          "                  u, v ~ N(0, 0.25 I), 2 classes\n"
          "      redundancy  x1 and x2 both carry y\n"
          "      uniqueness  only x1 carries y\n"
          "      synergy     y = b1 XOR b2; x1 carries b1, x2 carries b2\n"
          "      mixed       each sample redundant, unique to x1, unique to\n"
          "                  x2 or synergistic, its regime written as\n"
          "                  train_regime and val_regime (0, 1, 2, 3): a\n"
          "                  ground truth per sample\n"
          "--n N     samples, 80%% train and 20%% val [2000]\n"
          "--seed S  seed [0]\n"
          "--dim D   features per modality: the kind's 2, then D - 2 of\n"
          "          N(0, 1) noise [2]\n"
          "--verbose the kernels chosen, on stderr\n");
}

static int parse_u64(const char *text, unsigned long long *out) {
  char *end = NULL;
  errno = 0;
  if (text[0] == '-')
    return -1;
  unsigned long long v = strtoull(text, &end, 10);
  if (end == text || *end != '\0' || errno == ERANGE)
    return -1;
  *out = v;
  return 0;
}

int lsmi_synth_main(int argc, char **argv) {
  const char *kind_name = NULL, *out = NULL;
  unsigned long long n = 2000, seed = 0, dim = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      synth_usage(stdout);
      return 0;
    }
    bool has_value = i + 1 < argc;
    if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
      continue; /* main.c shows the kernels; synth has nothing to add */
    } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
      if (!has_value)
        goto missing;
      out = argv[++i];
    } else if (!strcmp(a, "--n")) {
      if (!has_value)
        goto missing;
      if (parse_u64(argv[++i], &n) != 0) {
        fprintf(stderr, "lsmi synth: --n must be a count, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (!strcmp(a, "--dim")) {
      if (!has_value)
        goto missing;
      if (parse_u64(argv[++i], &dim) != 0) {
        fprintf(stderr, "lsmi synth: --dim must be a count, got '%s'\n",
                argv[i]);
        return 2;
      }
    } else if (!strcmp(a, "--seed")) {
      if (!has_value)
        goto missing;
      if (parse_u64(argv[++i], &seed) != 0) {
        fprintf(stderr, "lsmi synth: --seed must be a number, got '%s'\n",
                argv[i]);
        return 2;
      }
    } else if (a[0] != '-' && kind_name == NULL) {
      kind_name = a;
    } else {
      fprintf(stderr, "lsmi synth: unexpected argument '%s'\n", a);
      return 2;
    }
    continue;
  missing:
    fprintf(stderr, "lsmi synth: %s needs a value\n", a);
    return 2;
  }
  lsmi_synth_kind_t kind;
  if (kind_name == NULL || out == NULL ||
      lsmi_synth_kind_parse(kind_name, &kind) != LSMI_OK) {
    if (kind_name && out)
      fprintf(stderr, "lsmi synth: unknown kind '%s'\n", kind_name);
    synth_usage(stderr);
    return 2;
  }
  lsmi_error_t err = {0};
  lsmi_dataset_t *ds = NULL;
  int32_t *regime = NULL;
  lsmi_synth_spec_t spec = {
      .kind = kind, .n = (size_t)n, .dim = (size_t)dim, .seed = seed};
  int st = lsmi_synth_make(&spec, &ds,
                           kind == LSMI_SYNTH_MIXED ? &regime : NULL, &err);
  if (st == LSMI_OK) {
    lsmi_npz_column_t cols[2] = {
        {"train_regime", regime, ds->train.n},
        {"val_regime", regime ? regime + ds->train.n : NULL, ds->val.n}};
    st = lsmi_dataset_write_npz_ex(ds, cols, regime ? 2 : 0, out, &err);
  }
  free(regime);
  if (st != LSMI_OK) {
    fprintf(stderr, "lsmi synth: %s\n", err.message);
    lsmi_dataset_destroy(ds);
    return 1;
  }
  fprintf(stderr, "lsmi: wrote %s: %s, train %zu, val %zu, d1 %zu, d2 %zu\n",
          out, kind_name, ds->train.n, ds->val.n, ds->d1, ds->d2);
  lsmi_dataset_destroy(ds);
  return 0;
}
