/*
 * main.c — the `lsmi` binary: dispatches to its subcommands.
 *
 * Before any command, the kernels of the matrix products are chosen. The
 * daemon logs the choice as a line of its structured log; the other
 * commands stay quiet about it unless asked (--verbose), and say in a
 * plain sentence when LSMI_KERNELS names kernels this CPU cannot run.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "lsmi.h"
#include "probe.h"
#include "serve.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: lsmi COMMAND [ARGS]\n"
          "\n"
          "commands:\n"
          "  fit FILE [--out rows.csv|rows.json|-] [--PARAM VALUE ...]\n"
          "                  estimate per-sample r, u1, u2, s offline\n"
          "  synth KIND --out FILE.npz [--n N] [--seed S] [--dim D]\n"
          "                  write a demo dataset (gaussian, redundancy,\n"
          "                  uniqueness, synergy, mixed)\n"
          "  serve [--listen HOST:PORT] [--data-dir DIR] ...\n"
          "                  run the HTTP daemon (see `lsmi serve --help`)\n"
          "  admin rebuild-store --data-dir DIR [--tenant NAME]\n"
          "                  rebuild the daemon's store from its files\n"
          "  token add|list|revoke [--tokens-file FILE] ...\n"
          "                  edit the daemon's tokens file\n"
          "  probe [URL | /PATH]\n"
          "                  exit 0 when the daemon answers 2xx\n"
          "  version         print the version\n"
          "\n"
          "`lsmi COMMAND --help` describes each command; --verbose adds the\n"
          "kernels chosen (the daemon logs them always).\n");
}

/* Whether the command logs the kernels, as JSON lines: the daemon always
 * (its log is structured, one JSON object a line), the others with
 * --verbose. */
static bool log_kernels(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "serve") == 0)
    return true;
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0)
      return true;
  return false;
}

/* The kernels chosen, as one JSON line on stderr. */
static void say_kernels(bool blas_used) {
  if (blas_used)
    fprintf(stderr,
            "{\"level\":\"info\",\"event\":\"blas\",\"kernels\":\"blas\","
            "\"corename\":\"%s\",\"source\":\"%s\",\"verified\":%s,"
            "\"blas_threads\":1}\n",
            lsmi_blas_corename(), lsmi_blas_source(),
            lsmi_blas_verified() ? "true" : "false");
  else
    fprintf(stderr,
            "{\"level\":\"info\",\"event\":\"blas\",\"kernels\":\"%s\","
            "\"used\":false,\"loaded\":false}\n",
            lsmi_kernels_name());
}

int main(int argc, char **argv) {
  /* The health probe uses no BLAS: no re-exec, no log line, every 30 s. */
  if (argc >= 2 && strcmp(argv[1], "probe") == 0)
    return lsmi_probe_main(argc - 1, argv + 1);
  bool log = log_kernels(argc, argv);
  /* Before anything else, the kernels of the products: the best the CPU
   * runs, or the operator's (LSMI_KERNELS). Only if they go through the
   * BLAS is OpenBLAS opened, its kernels chosen and checked, which may
   * re-exec once (core/blas.h); otherwise it is never loaded. */
  const char *kernels = getenv("LSMI_KERNELS");
  bool bad_kernels = kernels && *kernels && strcmp(kernels, "auto") != 0 &&
                     lsmi_kernels_select(kernels) != LSMI_OK;
  /* Whether a fit splits a KNIFE model's steps across its threads (off
   * unless LSMI_FIT_SPLIT=1: lsmi.h says why). */
  const char *split = getenv("LSMI_FIT_SPLIT");
  if (split && strcmp(split, "1") == 0)
    lsmi_fit_split_select(true);
  bool blas_used = strcmp(lsmi_kernels_name(), "blas") == 0;
  if (blas_used)
    lsmi_blas_setup(argc, argv);
  if (bad_kernels && log)
    fprintf(stderr,
            "{\"level\":\"warn\",\"event\":\"kernels\",\"msg\":\"LSMI_KERNELS "
            "names no kernels this CPU runs (avx512, blas, generic); "
            "ignored\"}\n");
  else if (bad_kernels)
    fprintf(stderr,
            "lsmi: warning: LSMI_KERNELS names no kernels this CPU runs "
            "(avx512, blas, generic); ignored\n");
  if (log)
    say_kernels(blas_used);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "fit") == 0)
    return lsmi_fit_main(argc - 1, argv + 1);
  if (strcmp(cmd, "synth") == 0)
    return lsmi_synth_main(argc - 1, argv + 1);
  if (strcmp(cmd, "serve") == 0)
    return lsmi_serve_main(argc - 1, argv + 1);
  if (strcmp(cmd, "admin") == 0)
    return lsmi_admin_main(argc - 1, argv + 1);
  if (strcmp(cmd, "token") == 0)
    return lsmi_token_main(argc - 1, argv + 1);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("lsmi %s\n", LSMI_VERSION);
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "lsmi: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return 2;
}
