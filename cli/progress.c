/*
 * progress.c — the progress of a fit on stderr: see progress.h.
 *
 * The core reports after every epoch of every model, from the fit's
 * threads but never concurrently, so the state here needs no lock. The
 * time left is the time so far scaled by the work left: the core's
 * fraction counts the work of both families, so it moves evenly even
 * while one family has finished.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "progress.h"

const char *lsmi_cli_duration(double seconds, char *buf, size_t len) {
  long s = seconds > 0 ? lround(seconds) : 0;
  if (s < 60)
    snprintf(buf, len, "%lds", s);
  else if (s < 3600)
    snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
  else
    snprintf(buf, len, "%ldh%02ldm", s / 3600, s % 3600 / 60);
  return buf;
}

/* " loss 0.6931" once a family has completed an epoch, else "". */
static const char *loss_text(int epoch, double loss, char *buf, size_t len) {
  if (epoch > 0 && isfinite(loss))
    snprintf(buf, len, " loss %.4f", loss);
  else
    buf[0] = '\0';
  return buf;
}

const char *lsmi_cli_progress_text(const lsmi_progress_t *p, double elapsed,
                                   char *buf, size_t len) {
  char dl[32], el[32], eta[48] = "", d[24];
  /* An estimate from the first few percent would only be noise. */
  if (p->phase != LSMI_PHASE_DONE && p->fraction >= 0.02 && p->fraction < 1)
    snprintf(eta, sizeof eta, "  ETA %s",
             lsmi_cli_duration(elapsed * (1 - p->fraction) / p->fraction, d,
                               sizeof d));
  else if (p->phase == LSMI_PHASE_DONE)
    snprintf(eta, sizeof eta, "  in %s",
             lsmi_cli_duration(elapsed, d, sizeof d));
  if (p->phase == LSMI_PHASE_TRAIN)
    snprintf(buf, len,
             "train %3.0f%%  discriminators %d/%d%s  entropy %d/%d%s%s",
             100.0 * p->fraction, p->disc_epoch, p->disc_epochs,
             loss_text(p->disc_epoch, p->disc_loss, dl, sizeof dl),
             p->ent_epoch, p->ent_epochs,
             loss_text(p->ent_epoch, p->ent_loss, el, sizeof el), eta);
  else
    snprintf(buf, len, "%s %3.0f%%%s", lsmi_phase_name(p->phase),
             100.0 * p->fraction, eta);
  return buf;
}

void lsmi_cli_progress_init(lsmi_cli_progress_t *pg, FILE *out, bool tty,
                            bool verbose, double now) {
  memset(pg, 0, sizeof *pg);
  pg->out = out;
  pg->tty = tty;
  pg->verbose = verbose;
  pg->t0 = now;
  pg->shown_at = -1;
  pg->tenth = -1;
  pg->phase = LSMI_PHASE_TRAIN;
}

/* Whether p is worth a line: a new phase always; then on a terminal ten
 * times a second at most, piped each tenth of the work, verbose each
 * epoch. */
static bool due(lsmi_cli_progress_t *pg, const lsmi_progress_t *p, double now) {
  bool phase = pg->shown_at < 0 || p->phase != pg->phase;
  bool epoch = p->disc_epoch != pg->disc_epoch || p->ent_epoch != pg->ent_epoch;
  int tenth = (int)floor(10 * p->fraction);
  bool show = phase || (pg->verbose && epoch) ||
              (pg->tty ? now - pg->shown_at >= 0.1 : tenth > pg->tenth);
  if (show) {
    pg->phase = p->phase;
    pg->disc_epoch = p->disc_epoch;
    pg->ent_epoch = p->ent_epoch;
    pg->tenth = tenth;
    pg->shown_at = now;
  }
  return show;
}

void lsmi_cli_progress_update(lsmi_cli_progress_t *pg, const lsmi_progress_t *p,
                              double now) {
  if (!due(pg, p, now))
    return;
  char text[256];
  lsmi_cli_progress_text(p, now - pg->t0, text, sizeof text);
  if (!pg->tty || pg->verbose) {
    lsmi_cli_progress_end(pg);
    fprintf(pg->out, "lsmi: %s\n", text);
    return;
  }
  /* Over the line showing: spaces blank what the new one does not cover. */
  size_t n = strlen("lsmi: ") + strlen(text);
  int pad = pg->width > n ? (int)(pg->width - n) : 0;
  fprintf(pg->out, "\rlsmi: %s%*s", text, pad, "");
  fflush(pg->out);
  pg->width = n;
}

void lsmi_cli_progress_end(lsmi_cli_progress_t *pg) {
  if (pg->width == 0)
    return;
  fputc('\n', pg->out);
  fflush(pg->out);
  pg->width = 0;
}
