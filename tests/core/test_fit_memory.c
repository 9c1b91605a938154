/*
 * test_fit_memory.c — lsmi_fit_memory (core/estimate.c) against the peak
 * resident memory of real fits: for shapes where each part of the estimate
 * dominates in turn (the KNIFE blocks at large d and many components, the
 * MLPs at a large hidden width, many rows, an ensemble with folds and early
 * stopping), the fit's peak RSS above what the process held before it
 * (VmHWM, reset through /proc/self/clear_refs) must lie within the
 * estimate, and the estimate within a small factor of it. The estimate
 * counts allocations; a fit touches less (zero pages of large blocks are
 * never written where a model has no parameter), so "within" is one-sided
 * and the factor is the slack the server's budget pays.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lsmi.h"

/* The estimate may exceed the measured peak by this factor at most, plus a
 * few MiB of what a small fit touches besides its blocks (thread stacks,
 * the allocator's arenas). */
#define FACTOR 3.0
#define SLACK ((double)(8u << 20))

/* Under AddressSanitizer the heap has redzones and a quarantine of freed
 * blocks: not the heap the estimate describes, so the peaks are measured
 * on the plain build only. */
#if !defined(__SANITIZE_ADDRESS__)
/* A field of /proc/self/status in bytes (its value is in kB). */
static double status_bytes(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  assert_non_null(f);
  char line[256];
  double v = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':')
      v = strtod(line + n + 1, NULL) * 1024.0;
  fclose(f);
  assert_true(v >= 0);
  return v;
}

/* Resets VmHWM to the current RSS: 0, or -1 where the kernel does not
 * allow it (the test is then skipped). */
static int reset_peak(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (f == NULL)
    return -1;
  int ok = fputs("5", f) >= 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

/* A dataset of Gaussian noise whose label shifts the first feature of
 * each modality, so that every model has something to learn. */
static lsmi_dataset_t *noise(size_t n_train, size_t n_val, size_t d1,
                             size_t d2) {
  lsmi_error_t err = {0};
  lsmi_dataset_t *ds = lsmi_dataset_create(n_train, n_val, d1, d2, 2, &err);
  assert_non_null(ds);
  uint64_t x = 88172645463325252ull;
  lsmi_split_t *splits[2] = {&ds->train, &ds->val};
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < splits[s]->n; i++) {
      int32_t y = (int32_t)(i % 2);
      splits[s]->y[i] = y;
      float *row = splits[s]->x + i * (d1 + d2);
      for (size_t j = 0; j < d1 + d2; j++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        row[j] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
      }
      row[0] += (float)y;
      row[d1] += (float)y;
    }
  return ds;
}

typedef struct fit_case {
  const char *name;
  size_t n_train, n_val, d1, d2;
  int hidden, components, ensemble, folds, threads;
  bool early_stopping;
} fit_case_t;

static void run_case(const fit_case_t *c) {
  lsmi_dataset_t *ds = noise(c->n_train, c->n_val, c->d1, c->d2);
  lsmi_params_t p;
  lsmi_params_default(&p);
  p.epochs_discriminator = 1;
  p.epochs_entropy = 1;
  p.hidden = c->hidden;
  p.components = c->components;
  p.ensemble = c->ensemble;
  p.folds = c->folds;
  p.threads = c->threads;
  p.early_stopping = c->early_stopping;
  p.patience = 1;
  double est =
      (double)lsmi_fit_memory(c->n_train, c->n_val, c->d1, c->d2, 2, &p);
  malloc_trim(0);
  if (reset_peak() != 0) {
    lsmi_dataset_destroy(ds);
    skip();
  }
  double before = status_bytes("VmRSS");
  lsmi_result_t *res = NULL;
  lsmi_error_t err = {0};
  int st = lsmi_fit(ds, &p, NULL, &res, &err);
  double peak = status_bytes("VmHWM") - before;
  lsmi_result_destroy(res);
  lsmi_dataset_destroy(ds);
  malloc_trim(0);
  printf("%-28s estimate %8.1f MiB, peak %8.1f MiB (x%.2f)\n", c->name,
         est / 1048576.0, peak / 1048576.0, peak > 0 ? est / peak : 0.0);
  assert_int_equal(st, LSMI_OK);
  if (!(peak <= est * 1.02 + (1u << 20)))
    fail_msg("%s: the fit peaked at %.1f MiB, above its estimate %.1f MiB",
             c->name, peak / 1048576.0, est / 1048576.0);
  if (!(est <= FACTOR * peak + SLACK))
    fail_msg("%s: the estimate %.1f MiB is more than %.1fx the peak %.1f MiB",
             c->name, est / 1048576.0, FACTOR, peak / 1048576.0);
}

static void test_knife_blocks(void **state) {
  (void)state;
  /* d 384, 32 components: the KNIFE parameters and their Adam moments. */
  fit_case_t c = {
      "knife d=384 K=32", 600, 200, 384, 384, 16, 32, 1, 0, 2, false};
  run_case(&c);
}

static void test_wide_mlp(void **state) {
  (void)state;
  fit_case_t c = {
      "mlp hidden=1024 d=256", 2000, 500, 256, 256, 1024, 2, 1, 0, 2, false};
  run_case(&c);
}

static void test_many_rows(void **state) {
  (void)state;
  fit_case_t c = {"rows 200k d=8", 160000, 40000, 8, 8, 32, 5, 1, 0, 2, false};
  run_case(&c);
}

static void test_ensemble_folds(void **state) {
  (void)state;
  fit_case_t c = {
      "ensemble 3 folds 3 es d=96", 3000, 1000, 96, 96, 64, 8, 3, 3, 2, true};
  run_case(&c);
}

#endif

/* More parameters, more memory: the estimate grows with each knob. */
static void test_monotone(void **state) {
  (void)state;
  lsmi_params_t p;
  lsmi_params_default(&p);
  p.threads = 2;
  uint64_t base = lsmi_fit_memory(1000, 200, 64, 64, 2, &p);
  lsmi_params_t q = p;
  q.components = 64;
  assert_true(lsmi_fit_memory(1000, 200, 64, 64, 2, &q) > base);
  q = p;
  q.hidden = 512;
  assert_true(lsmi_fit_memory(1000, 200, 64, 64, 2, &q) > base);
  q = p;
  q.ensemble = 4;
  assert_true(lsmi_fit_memory(1000, 200, 64, 64, 2, &q) > base);
  assert_true(lsmi_fit_memory(100000, 200, 64, 64, 2, &p) > base);
  /* The documented extremes do not overflow: d 65536 with 256
   * components is about 8 TB of KNIFE parameters alone. */
  q = p;
  q.components = 256;
  uint64_t huge = lsmi_fit_memory(1000, 200, 65536, 65536, 2, &q);
  assert_true(huge > (uint64_t)4 << 40 && huge < UINT64_MAX);
}

int main(void) {
  /* A fixed mmap threshold: blocks above it go back to the system when
   * freed, so one case's blocks are not reused, unseen, by the next. */
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_monotone),
#if !defined(__SANITIZE_ADDRESS__)
      cmocka_unit_test(test_knife_blocks),
      cmocka_unit_test(test_wide_mlp),
      cmocka_unit_test(test_many_rows),
      cmocka_unit_test(test_ensemble_folds),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
