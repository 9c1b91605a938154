/*
 * progress.h — the progress of a fit on stderr (internal to the `lsmi`
 * binary). On a terminal one line updated in place (\r), at most ten times
 * a second; piped, a plain line at each tenth of the work and at each
 * phase, so that a log stays short; with verbose, a plain line at every
 * epoch of either model family. Each line gives the phase, the percentage,
 * the epochs of both families with their loss once an epoch has completed
 * (no loss is shown before one exists) and an estimate of the time left.
 */
#ifndef LSMI_CLI_PROGRESS_H
#define LSMI_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lsmi.h"

typedef struct lsmi_cli_progress {
  FILE *out;       /* borrowed */
  bool tty;        /* update one line in place */
  bool verbose;    /* a line at every epoch */
  double t0;       /* seconds: when the fit started */
  double shown_at; /* when the last line was shown; < 0: none yet */
  int tenth;       /* the last tenth of the work shown as a plain line */
  lsmi_phase_t phase;
  int disc_epoch, ent_epoch;
  size_t width; /* tty: the length of the line showing, 0: none */
} lsmi_cli_progress_t;

/* Starts at time `now` (seconds of any monotonic clock). */
void lsmi_cli_progress_init(lsmi_cli_progress_t *pg, FILE *out, bool tty,
                            bool verbose, double now);

/* The fit reported p at time now: shows a line if one is due. */
void lsmi_cli_progress_update(lsmi_cli_progress_t *pg, const lsmi_progress_t *p,
                              double now);

/* Ends the line a terminal shows, so that other output starts on a new
 * line; a no-op otherwise. */
void lsmi_cli_progress_end(lsmi_cli_progress_t *pg);

/* The text of a line for p, `elapsed` seconds into the fit, into buf:
 * "train  45%  discriminators 14/30 loss 0.6931  entropy 13/30 loss
 * 2.1234  ETA 12s". Returns buf. */
const char *lsmi_cli_progress_text(const lsmi_progress_t *p, double elapsed,
                                   char *buf, size_t len);

/* Seconds as "12s", "3m05s" or "2h10m" into buf. Returns buf. */
const char *lsmi_cli_duration(double seconds, char *buf, size_t len);

#endif
