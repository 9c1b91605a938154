/*
 * test_blas.c — the OpenBLAS kernel choice (core/blas.c): the decision as a
 * pure function of CPU features, OpenBLAS's own choice and the environment;
 * the fallback after a failed verification; and the verification itself,
 * against the real OpenBLAS and against fake kernels that are wrong, return
 * NaN or raise SIGILL.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "lsmi.h"

#define SSE 0u
#define AVX2 (LSMI_BLAS_CPU_AVX | LSMI_BLAS_CPU_AVX2 | LSMI_BLAS_CPU_FMA)
#define AVX512                                                                 \
  (AVX2 | LSMI_BLAS_CPU_AVX512F | LSMI_BLAS_CPU_AVX512BW |                     \
   LSMI_BLAS_CPU_AVX512VL | LSMI_BLAS_CPU_AVX512DQ)

/* The decision with OPENBLAS_NUM_THREADS=1 already set, so that only the
 * kernel choice can ask for a re-exec; test_threads covers the rest. */
static lsmi_blas_decision_t decide(unsigned cpu, const char *core,
                                   const char *openblas_env,
                                   const char *lsmi_env, const char *stage) {
  lsmi_blas_env_t env = {.openblas_coretype = openblas_env,
                         .openblas_num_threads = "1",
                         .lsmi_coretype = lsmi_env,
                         .stage = stage};
  lsmi_blas_decision_t d;
  lsmi_blas_decide(cpu, core, &env, &d);
  return d;
}

static void test_cpu_tier(void **state) {
  (void)state;
  assert_int_equal(lsmi_blas_cpu_tier(SSE), LSMI_BLAS_TIER_SSE);
  assert_int_equal(lsmi_blas_cpu_tier(LSMI_BLAS_CPU_AVX), LSMI_BLAS_TIER_AVX);
  /* AVX2 without FMA is not enough for the Haswell kernels. */
  assert_int_equal(lsmi_blas_cpu_tier(LSMI_BLAS_CPU_AVX | LSMI_BLAS_CPU_AVX2),
                   LSMI_BLAS_TIER_AVX);
  assert_int_equal(lsmi_blas_cpu_tier(AVX2), LSMI_BLAS_TIER_AVX2);
  /* AVX-512F alone (Knights Landing) is not SkylakeX. */
  assert_int_equal(lsmi_blas_cpu_tier(AVX2 | LSMI_BLAS_CPU_AVX512F),
                   LSMI_BLAS_TIER_AVX2);
  assert_int_equal(lsmi_blas_cpu_tier(AVX512), LSMI_BLAS_TIER_AVX512);
}

static void test_core_tier(void **state) {
  (void)state;
  assert_int_equal(lsmi_blas_core_tier("Prescott"), 0);
  assert_int_equal(lsmi_blas_core_tier("Core2"), 0);
  assert_int_equal(lsmi_blas_core_tier("Katmai"), 0);
  assert_int_equal(lsmi_blas_core_tier("Sandybridge"), 1);
  assert_int_equal(lsmi_blas_core_tier("haswell"), 2);
  assert_int_equal(lsmi_blas_core_tier("Zen"), 2);
  assert_int_equal(lsmi_blas_core_tier("SKYLAKEX"), 3);
  assert_int_equal(lsmi_blas_core_tier("Cooperlake"), 3);
  assert_int_equal(lsmi_blas_core_tier("NoSuchCore"), -1);
  assert_int_equal(lsmi_blas_core_tier(NULL), -1);
}

/* The bug this file exists for: a new AVX-512 CPU gets Prescott kernels. */
static void test_auto_replaces_generic_choice(void **state) {
  (void)state;
  lsmi_blas_decision_t d = decide(AVX512, "Prescott", NULL, NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_string_equal(d.coretype, "SkylakeX");
  assert_string_equal(d.source, "auto");
  assert_string_equal(d.stage, "auto");

  d = decide(AVX2, "Core2", NULL, "auto", NULL);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_string_equal(d.coretype, "Haswell");

  /* An AVX2 choice on an AVX-512 CPU is older too. */
  d = decide(AVX512, "Haswell", NULL, "", NULL);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_string_equal(d.coretype, "SkylakeX");
}

static void test_auto_keeps_good_or_unknown_choice(void **state) {
  (void)state;
  lsmi_blas_decision_t d = decide(AVX512, "Cooperlake", NULL, NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "openblas");
  assert_false(d.warn);

  d = decide(AVX2, "Zen", NULL, NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);

  /* Old CPUs: nothing better to offer. */
  d = decide(SSE, "Prescott", NULL, NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  d = decide(LSMI_BLAS_CPU_AVX, "Sandybridge", NULL, NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);

  /* A name lsmi does not know (a newer OpenBLAS) is not second-guessed. */
  d = decide(AVX512, "Zen5", NULL, NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  d = decide(AVX512, NULL, NULL, NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
}

static void test_user_openblas_coretype_obeyed(void **state) {
  (void)state;
  lsmi_blas_decision_t d = decide(AVX512, "Prescott", "Prescott", NULL, NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "environment");
}

static void test_off(void **state) {
  (void)state;
  lsmi_blas_decision_t d = decide(AVX512, "Prescott", NULL, "off", NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "off");
  d = decide(AVX512, "Prescott", NULL, "OFF", NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
}

static void test_operator_forces(void **state) {
  (void)state;
  lsmi_blas_decision_t d = decide(AVX512, "Cooperlake", NULL, "haswell", NULL);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_string_equal(d.coretype, "haswell");
  assert_string_equal(d.source, "operator");
  assert_string_equal(d.stage, "operator");

  /* Even against the user's OPENBLAS_CORETYPE: lsmi's own variable wins. */
  d = decide(AVX512, "Prescott", "Prescott", "SkylakeX", NULL);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_string_equal(d.coretype, "SkylakeX");

  /* Already in effect: no re-exec. */
  d = decide(AVX512, "Haswell", "Haswell", "HASWELL", NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "operator");

  /* Forcing generic kernels down is allowed (for A/B timing). */
  d = decide(AVX512, "Cooperlake", NULL, "Prescott", NULL);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_string_equal(d.coretype, "Prescott");
}

static void test_operator_refused(void **state) {
  (void)state;
  /* The CPU cannot run it: refuse rather than die of SIGILL. */
  lsmi_blas_decision_t d = decide(AVX2, "Haswell", NULL, "SkylakeX", NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_true(d.warn);
  assert_string_equal(d.source, "openblas");

  d = decide(AVX512, "Cooperlake", NULL, "NoSuchCore", NULL);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_true(d.warn);
}

/* The loop guard: a re-executed image never asks for another re-exec. */
static void test_stage_stops_loops(void **state) {
  (void)state;
  lsmi_blas_decision_t d = decide(AVX512, "Prescott", "SkylakeX", NULL, "auto");
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "auto");
  d = decide(AVX512, "Cooperlake", "haswell", "haswell", "operator");
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "operator");
  d = decide(AVX512, "Prescott", "Prescott", "SkylakeX", "fallback");
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "fallback");
  d = decide(AVX512, "Prescott", NULL, NULL, "garbage");
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
}

/* OpenBLAS's own pool: never a re-exec of its own; a re-exec for the
 * kernels sets OPENBLAS_NUM_THREADS=1 on the way when it is unset. */
static void test_threads(void **state) {
  (void)state;
  lsmi_blas_env_t env = {0};
  lsmi_blas_decision_t d;
  /* Good kernels, no thread setting: no exec (setup stops the pool). */
  lsmi_blas_decide(AVX512, "Cooperlake", &env, &d);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_false(d.set_threads);
  assert_string_equal(d.source, "openblas");

  /* Kernels to change: the one exec also sets the threads. */
  lsmi_blas_decide(AVX512, "Prescott", &env, &d);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_true(d.set_threads);
  assert_string_equal(d.coretype, "SkylakeX");
  assert_string_equal(d.stage, "auto");

  /* off leaves the kernels alone, and so no exec. */
  env.lsmi_coretype = "off";
  lsmi_blas_decide(AVX512, "Prescott", &env, &d);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "off");

  /* A refused operator choice warns and keeps. */
  env.lsmi_coretype = "NoSuchCore";
  lsmi_blas_decide(AVX512, "Cooperlake", &env, &d);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_true(d.warn);

  /* An operator's own thread count is kept on a re-exec. */
  env.lsmi_coretype = NULL;
  env.openblas_num_threads = "4";
  lsmi_blas_decide(AVX512, "Prescott", &env, &d);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_false(d.set_threads);
  env.openblas_num_threads = NULL;
  env.stage = "off";
  lsmi_blas_decide(AVX512, "Prescott", &env, &d);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_string_equal(d.source, "off");
}

/* Threads of this process, from /proc/self/task. */
static int thread_count(void) {
  DIR *dir = opendir("/proc/self/task");
  assert_non_null(dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;)
    n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

static void test_fallback_decision(void **state) {
  (void)state;
  lsmi_blas_decision_t d;
  lsmi_blas_decide_fallback(true, "SkylakeX", "auto", &d);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_false(d.warn);

  lsmi_blas_decide_fallback(false, "SkylakeX", "auto", &d);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);
  assert_string_equal(d.coretype, "Prescott");
  assert_string_equal(d.stage, "fallback");

  lsmi_blas_decide_fallback(false, "Cooperlake", NULL, &d);
  assert_int_equal(d.action, LSMI_BLAS_REEXEC);

  /* Once only. */
  lsmi_blas_decide_fallback(false, "Prescott", "fallback", &d);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_true(d.warn);
  lsmi_blas_decide_fallback(false, "Prescott", NULL, &d);
  assert_int_equal(d.action, LSMI_BLAS_KEEP);
  assert_true(d.warn);
}

/* ---- verification with real and fake kernels ---------------------------- */

static void naive_sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
                        const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float s = 0.0f;
      for (int p = 0; p < k; p++)
        s += (ta ? a[p * lda + i] : a[i * lda + p]) *
             (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * s + beta * c[i * ldc + j];
    }
}

static float naive_sdot(int n, const float *x, const float *y) {
  float s = 0.0f;
  for (int i = 0; i < n; i++)
    s += x[i] * y[i];
  return s;
}

/* Right except one element of the larger products: a tail-kernel bug. */
static void off_by_one_sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
                             const float *a, int lda, const float *b, int ldb,
                             float beta, float *c, int ldc) {
  naive_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (m > 60)
    c[(m - 1) * ldc + (n - 1)] += 1.0f / 1024.0f;
}

/* Ignores beta: a plausible wrong-path bug. */
static void no_beta_sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
                          const float *a, int lda, const float *b, int ldb,
                          float beta, float *c, int ldc) {
  (void)beta;
  naive_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc);
}

static float nan_sdot(int n, const float *x, const float *y) {
  (void)n, (void)x, (void)y;
  return strtof("nan", NULL);
}

static float short_sdot(int n, const float *x, const float *y) {
  return naive_sdot(n - n % 8, x, y); /* drops the tail, like a bad kernel */
}

static void sigill_sgemm(bool ta, bool tb, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb,
                         float beta, float *c, int ldc) {
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a;
  (void)lda, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
  raise(SIGILL);
}

static void test_verify_openblas(void **state) {
  (void)state;
  char why[256];
  assert_true(lsmi_blas_verify(NULL, why, sizeof why));
  assert_string_equal(why, "");
  assert_true(lsmi_blas_verify(lsmi_blas_openblas_kernels(), why, sizeof why));
}

static void test_verify_naive(void **state) {
  (void)state;
  lsmi_blas_kernels_t k = {naive_sgemm, naive_sdot};
  assert_true(lsmi_blas_verify(&k, NULL, 0));
}

static void test_verify_catches_wrong_kernels(void **state) {
  (void)state;
  char why[256];
  lsmi_blas_kernels_t k = {off_by_one_sgemm, naive_sdot};
  assert_false(lsmi_blas_verify(&k, why, sizeof why));
  assert_non_null(strstr(why, "sgemm"));

  k = (lsmi_blas_kernels_t){no_beta_sgemm, naive_sdot};
  assert_false(lsmi_blas_verify(&k, why, sizeof why));
  assert_non_null(strstr(why, "sgemm"));

  k = (lsmi_blas_kernels_t){naive_sgemm, nan_sdot};
  assert_false(lsmi_blas_verify(&k, why, sizeof why));
  assert_non_null(strstr(why, "sdot"));

  k = (lsmi_blas_kernels_t){naive_sgemm, short_sdot};
  assert_false(lsmi_blas_verify(&k, why, sizeof why));
  assert_non_null(strstr(why, "sdot n=1003"));
}

static void test_verify_survives_sigill(void **state) {
  (void)state;
  char why[256];
  struct sigaction before, after;
  sigaction(SIGILL, NULL, &before);
  lsmi_blas_kernels_t k = {sigill_sgemm, naive_sdot};
  assert_false(lsmi_blas_verify(&k, why, sizeof why));
  assert_non_null(strstr(why, "SIGILL"));
  /* The handler is restored and verification still works afterwards. */
  sigaction(SIGILL, NULL, &after);
  assert_true(after.sa_handler == before.sa_handler);
  assert_true(lsmi_blas_verify(NULL, why, sizeof why));
}

/*
 * The whole set-up with LSMI_BLAS_CORETYPE=off and OPENBLAS_NUM_THREADS set
 * (no re-exec of the test binary): OpenBLAS ends on one thread and the
 * kernels are verified.
 */
static void test_setup_off(void **state) {
  (void)state;
  setenv("LSMI_BLAS_CORETYPE", "off", 1);
  setenv("OPENBLAS_NUM_THREADS", "2", 1);
  char arg0[] = "test_blas";
  char *argv[] = {arg0, NULL};
  lsmi_blas_setup(1, argv);
  assert_true(lsmi_openblas_loaded());
  assert_int_equal(lsmi_openblas()->get_num_threads(), 1);
  /* OpenBLAS's pool, started when the test binary loaded, is gone. */
  assert_int_equal(thread_count(), 1);
  assert_true(lsmi_blas_verified());
  assert_string_equal(lsmi_blas_source(), "off");
  assert_non_null(lsmi_blas_corename());
  assert_true(strlen(lsmi_blas_corename()) > 0);
  unsetenv("LSMI_BLAS_CORETYPE");
}

/*
 * End to end, through the real binary of this build ($LSMI_BUILD/lsmi, as
 * tests/run.sh sets it): with the products on the BLAS (LSMI_KERNELS=blas)
 * the re-exec happens and the start-up log line (`lsmi version --verbose`)
 * names the kernels in use;
 * with lsmi's own kernels OpenBLAS is never loaded. Skipped when the binary
 * is not there.
 */
static char *run_lsmi(const char *env) {
  const char *build = getenv("LSMI_BUILD");
  char bin[512], cmd[1024];
  snprintf(bin, sizeof bin, "%s/lsmi", build ? build : "build");
  if (access(bin, X_OK) != 0)
    return NULL;
  snprintf(cmd, sizeof cmd,
           "env -u OPENBLAS_CORETYPE -u OPENBLAS_NUM_THREADS -u "
           "LSMI_BLAS_CORETYPE -u LSMI_BLAS_STAGE -u LSMI_KERNELS %s %s "
           "version --verbose 2>&1",
           env, bin);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  static char out[65536];
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = '\0';
  assert_int_equal(pclose(f), 0);
  return out;
}

static void test_binary_reexec(void **state) {
  (void)state;
  char *out = run_lsmi("LSMI_KERNELS=blas");
  if (out == NULL)
    skip();
  assert_non_null(strstr(out, "\"kernels\":\"blas\""));
  assert_non_null(strstr(out, "\"verified\":true"));
  assert_non_null(strstr(out, "lsmi "));

  if (lsmi_blas_cpu_tier(lsmi_blas_cpu_features()) >= LSMI_BLAS_TIER_AVX2) {
    out = run_lsmi("LSMI_KERNELS=blas LSMI_BLAS_CORETYPE=Haswell");
    assert_non_null(
        strstr(out, "\"corename\":\"Haswell\",\"source\":\"operator\""));
  }
  out = run_lsmi("LSMI_KERNELS=blas LSMI_BLAS_CORETYPE=Prescott");
  assert_non_null(
      strstr(out, "\"corename\":\"Prescott\",\"source\":\"operator\""));
  out = run_lsmi("LSMI_KERNELS=blas LSMI_BLAS_CORETYPE=off");
  assert_non_null(strstr(out, "\"source\":\"off\""));
  out = run_lsmi("LSMI_KERNELS=blas LSMI_BLAS_CORETYPE=NoSuchCore");
  assert_non_null(strstr(out, "\"level\":\"warn\""));
  assert_non_null(strstr(out, "\"verified\":true"));

  /* On lsmi's own kernels, OpenBLAS computes nothing: no re-exec even when
   * one is asked for, and the log says the BLAS is unused. */
  out = run_lsmi("LSMI_KERNELS=generic LSMI_BLAS_CORETYPE=Prescott");
  assert_non_null(strstr(out, "\"kernels\":\"generic\""));
  assert_non_null(strstr(out, "\"used\":false"));
  assert_null(strstr(out, "\"corename\":\"Prescott\""));
  /* And the library is not even loaded then (the dynamic loader's own
   * trace, LD_DEBUG=files, names every object it opens); with the BLAS
   * kernels it is, once lsmi asks for it. */
  out = run_lsmi("LSMI_KERNELS=generic LD_DEBUG=files");
  assert_non_null(strstr(out, "\"loaded\":false"));
  assert_null(strstr(out, "libopenblas"));
  /* Nor is libmicrohttpd (server/mhd.h), which only `lsmi serve` opens;
   * the API tests run the daemon that does. The trace does name the
   * libraries the binary is linked with: */
  assert_null(strstr(out, "libmicrohttpd"));
  assert_non_null(strstr(out, "libjansson"));
  out = run_lsmi("LSMI_KERNELS=blas LSMI_BLAS_CORETYPE=off LD_DEBUG=files");
  assert_non_null(strstr(out, "libopenblas.so.0"));
  assert_non_null(strstr(out, "\"verified\":true"));
  /* An unknown name is refused with a warning, the best kernels kept. */
  out = run_lsmi("LSMI_KERNELS=nonesuch");
  assert_non_null(strstr(out, "\"event\":\"kernels\""));
  assert_non_null(strstr(out, lsmi_kernels_name()));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_tier),
      cmocka_unit_test(test_core_tier),
      cmocka_unit_test(test_auto_replaces_generic_choice),
      cmocka_unit_test(test_auto_keeps_good_or_unknown_choice),
      cmocka_unit_test(test_user_openblas_coretype_obeyed),
      cmocka_unit_test(test_off),
      cmocka_unit_test(test_operator_forces),
      cmocka_unit_test(test_operator_refused),
      cmocka_unit_test(test_stage_stops_loops),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_fallback_decision),
      cmocka_unit_test(test_verify_openblas),
      cmocka_unit_test(test_verify_naive),
      cmocka_unit_test(test_verify_catches_wrong_kernels),
      cmocka_unit_test(test_verify_survives_sigill),
      cmocka_unit_test(test_setup_off),
      cmocka_unit_test(test_binary_reexec),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
