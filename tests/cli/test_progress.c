/*
 * test_progress.c — cli/progress.c: the text of a progress line (no loss
 * before one exists, an estimate of the time left once it means
 * something), durations, and when lines are shown: on a terminal in place
 * and at most ten times a second, piped at each tenth of the work and each
 * phase, verbose at each epoch. Times are given, so nothing waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

static lsmi_progress_t train(int disc, int ent, double fraction) {
  lsmi_progress_t p = {.phase = LSMI_PHASE_TRAIN,
                       .disc_epoch = disc,
                       .disc_epochs = 30,
                       .disc_loss = disc ? 0.69314718 : 0,
                       .ent_epoch = ent,
                       .ent_epochs = 30,
                       .ent_loss = ent ? 2.5 : 0,
                       .fraction = fraction};
  return p;
}

static void test_text(void **state) {
  (void)state;
  char buf[256];
  lsmi_progress_t p = train(0, 0, 0);
  assert_string_equal(lsmi_cli_progress_text(&p, 0, buf, sizeof buf),
                      "train   0%  discriminators 0/30  entropy 0/30");
  p = train(14, 0, 0.01);
  assert_string_equal(lsmi_cli_progress_text(&p, 1, buf, sizeof buf),
                      "train   1%  discriminators 14/30 loss 0.6931  "
                      "entropy 0/30");
  p = train(14, 13, 0.45);
  assert_string_equal(lsmi_cli_progress_text(&p, 9, buf, sizeof buf),
                      "train  45%  discriminators 14/30 loss 0.6931  "
                      "entropy 13/30 loss 2.5000  ETA 11s");
  p.ent_loss = NAN; /* no loss shown that does not exist */
  assert_non_null(strstr(lsmi_cli_progress_text(&p, 9, buf, sizeof buf),
                         "entropy 13/30  ETA"));
  p = (lsmi_progress_t){.phase = LSMI_PHASE_EVALUATE, .fraction = 0.96};
  assert_string_equal(lsmi_cli_progress_text(&p, 96, buf, sizeof buf),
                      "evaluate  96%  ETA 4s");
  p = (lsmi_progress_t){.phase = LSMI_PHASE_DONE, .fraction = 1};
  assert_string_equal(lsmi_cli_progress_text(&p, 125, buf, sizeof buf),
                      "done 100%  in 2m05s");
}

static void test_durations(void **state) {
  (void)state;
  char b[24];
  assert_string_equal(lsmi_cli_duration(-1, b, sizeof b), "0s");
  assert_string_equal(lsmi_cli_duration(59.4, b, sizeof b), "59s");
  assert_string_equal(lsmi_cli_duration(59.6, b, sizeof b), "1m00s");
  assert_string_equal(lsmi_cli_duration(3725, b, sizeof b), "1h02m");
}

/* Runs the reports (p[i] at time t[i]) through a progress line to a
 * buffer: what it wrote (free it). */
__attribute__((noinline)) static char *shown(bool tty, bool verbose,
                                             const lsmi_progress_t *p,
                                             const double *t, size_t n) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  lsmi_cli_progress_t pg;
  lsmi_cli_progress_init(&pg, f, tty, verbose, 0);
  for (size_t i = 0; i < n; i++)
    lsmi_cli_progress_update(&pg, &p[i], t[i]);
  lsmi_cli_progress_end(&pg);
  lsmi_cli_progress_end(&pg); /* once is enough */
  fclose(f);
  return buf;
}

static int count(const char *s, char c) {
  int n = 0;
  for (; *s; s++)
    n += *s == c;
  return n;
}

static void test_when_lines_show(void **state) {
  (void)state;
  /* 101 reports 10 ms apart, an epoch of each family every 10 */
  lsmi_progress_t p[102];
  double t[102];
  for (int i = 0; i <= 100; i++) {
    p[i] = train(i / 10, i / 10, i / 100.0);
    t[i] = i * 0.01;
  }
  p[101] = (lsmi_progress_t){.phase = LSMI_PHASE_DONE, .fraction = 1};
  t[101] = 1.01;
  /* piped: the start, each tenth, the phase: plain lines */
  char *out = shown(false, false, p, t, 102);
  assert_int_equal(count(out, '\n'), 12);
  assert_int_equal(count(out, '\r'), 0);
  free(out);
  /* a terminal: in place, every 0.1 s, one line ended at the end */
  out = shown(true, false, p, t, 102);
  assert_int_equal(count(out, '\n'), 1);
  assert_true(count(out, '\r') >= 10 && count(out, '\r') <= 13);
  assert_true(strncmp(out,
                      "\rlsmi: train   0%  discriminators 0/30  "
                      "entropy 0/30",
                      50) == 0);
  /* a shorter line blanks what is left of the longer one */
  const char *done = strstr(out, "\rlsmi: done 100%  in 1s");
  assert_non_null(done);
  assert_true(done[strlen("\rlsmi: done 100%  in 1s")] == ' ');
  assert_true(out[strlen(out) - 1] == '\n');
  free(out);
  /* verbose: every epoch, plain lines even on a terminal */
  out = shown(true, true, p, t, 102);
  assert_int_equal(count(out, '\r'), 0);
  assert_int_equal(count(out, '\n'), 12);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_when_lines_show),
  };
  return cmocka_run_group_tests_name("cli/progress", tests, NULL, NULL);
}
