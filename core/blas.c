/*
 * blas.c — picks the OpenBLAS kernels before the first product, checks them,
 * and pins OpenBLAS to one thread. See blas.h for the why.
 *
 * Order of events in lsmi_blas_setup(), which main() calls before anything
 * else (no thread, no open socket, no output yet):
 *   1. open OpenBLAS (lsmi_openblas() below: only now, and only for the "blas"
 *      kernels), which sets it to one thread and stops its own thread pool,
 *      so that every later BLAS call (the verification included) runs on
 *      the calling thread and no idle pool thread competes with lsmi's;
 *   2. read and clear the LSMI_BLAS_STAGE marker (set only by a re-exec of
 *      ours; its presence forbids another re-exec, so there is no loop);
 *   3. decide from the CPU features, OpenBLAS's choice and the environment;
 *      on REEXEC, set OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS=1 (if unset)
 *      and the marker, and execv /proc/self/exe with the same argv (the new
 *      image opens OpenBLAS afresh and comes back here at step 1). The
 *      thread pool alone is no reason to re-exec: step 1 stops it in place;
 *   4. verify the kernels in use on exact products; if they fail, re-exec
 *      once more with the generic Prescott kernels.
 * Only this file's few statics remember the outcome; they are written in
 * step 1-4 on the main thread before any other thread exists and only read
 * afterwards.
 */
#include "blas.h"
#include "dl.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define STAGE_ENV "LSMI_BLAS_STAGE"
#define FALLBACK_CORE "Prescott"

static const char *g_source = "openblas";
static bool g_verified = false;

/* ---- the library ------------------------------------------------------- */

#ifndef LSMI_OPENBLAS_SONAME
#define LSMI_OPENBLAS_SONAME "libopenblas.so.0"
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static lsmi_openblas_t lib;
static atomic_bool loaded;
static char load_error[256];

#define SYM(field, name, opt)                                                  \
  { name, &l.field, sizeof l.field, opt }

static void load(void) {
  lsmi_openblas_t l = {0};
  const lsmi_dl_sym_t syms[] = {
      SYM(sgemm, "cblas_sgemm", false),
      SYM(sdot, "cblas_sdot", false),
      SYM(get_corename, "openblas_get_corename", false),
      SYM(set_num_threads, "openblas_set_num_threads", false),
      SYM(get_num_threads, "openblas_get_num_threads", false),
      SYM(thread_shutdown, "blas_thread_shutdown_", true),
  };
  if (!lsmi_dl_open(LSMI_OPENBLAS_SONAME, syms, sizeof syms / sizeof syms[0],
                    load_error, sizeof load_error))
    return;
  /* One thread, the pool its constructor started stopped: idle, its
   * threads spin on sched_yield beside lsmi's own for a while. */
  l.set_num_threads(1);
  if (l.thread_shutdown != NULL)
    l.thread_shutdown();
  lib = l;
  atomic_store(&loaded, true);
}

const lsmi_openblas_t *lsmi_openblas(void) {
  pthread_once(&load_once, load);
  return atomic_load(&loaded) ? &lib : NULL;
}

const char *lsmi_openblas_error(void) {
  return load_error[0] != '\0' ? load_error : "not loaded";
}

bool lsmi_openblas_loaded(void) { return atomic_load(&loaded); }

/* ---- logging ----------------------------------------------------------- */

/* Appends s to buf as JSON string content (quotes and controls escaped). */
static void json_escape(char *buf, size_t len, const char *s) {
  size_t o = strlen(buf);
  for (; s != NULL && *s != '\0' && o + 7 < len; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)ch;
    } else if (ch < 0x20) {
      o += (size_t)snprintf(buf + o, len - o, "\\u%04x", ch);
    } else {
      buf[o++] = (char)ch;
    }
  }
  buf[o] = '\0';
}

static void json_field(char *buf, size_t len, const char *key,
                       const char *value) {
  size_t o = strlen(buf);
  snprintf(buf + o, len - o, ",\"%s\":\"", key);
  json_escape(buf, len, value);
  o = strlen(buf);
  snprintf(buf + o, len - o, "\"");
}

/*
 * One JSON line on stderr: ts, level, event "blas", msg and the current
 * kernel facts; `extra_key`/`extra` add one more string field when not NULL.
 */
static void log_line(const char *level, const char *msg, const char *extra_key,
                     const char *extra) {
  char buf[1024];
  char ts[32];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  snprintf(buf, sizeof buf,
           "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"blas\"", ts, level);
  json_field(buf, sizeof buf, "msg", msg);
  json_field(buf, sizeof buf, "corename", lsmi_blas_corename());
  json_field(buf, sizeof buf, "source", g_source);
  if (extra_key != NULL)
    json_field(buf, sizeof buf, extra_key, extra);
  fprintf(stderr, "%s}\n", buf);
}

/* ---- CPU and core tiers ------------------------------------------------ */

unsigned lsmi_blas_cpu_features(void) {
  unsigned f = 0;
  /* libgcc's cpuid probe also checks XCR0, i.e. that the OS saves the
   * AVX / AVX-512 registers, so a feature reported here is usable. */
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx"))
    f |= LSMI_BLAS_CPU_AVX;
  if (__builtin_cpu_supports("avx2"))
    f |= LSMI_BLAS_CPU_AVX2;
  if (__builtin_cpu_supports("fma"))
    f |= LSMI_BLAS_CPU_FMA;
  if (__builtin_cpu_supports("avx512f"))
    f |= LSMI_BLAS_CPU_AVX512F;
  if (__builtin_cpu_supports("avx512bw"))
    f |= LSMI_BLAS_CPU_AVX512BW;
  if (__builtin_cpu_supports("avx512vl"))
    f |= LSMI_BLAS_CPU_AVX512VL;
  if (__builtin_cpu_supports("avx512dq"))
    f |= LSMI_BLAS_CPU_AVX512DQ;
  return f;
}

int lsmi_blas_cpu_tier(unsigned f) {
  const unsigned avx2 =
      LSMI_BLAS_CPU_AVX | LSMI_BLAS_CPU_AVX2 | LSMI_BLAS_CPU_FMA;
  const unsigned avx512 = avx2 | LSMI_BLAS_CPU_AVX512F |
                          LSMI_BLAS_CPU_AVX512BW | LSMI_BLAS_CPU_AVX512VL |
                          LSMI_BLAS_CPU_AVX512DQ;
  if ((f & avx512) == avx512)
    return LSMI_BLAS_TIER_AVX512;
  if ((f & avx2) == avx2)
    return LSMI_BLAS_TIER_AVX2;
  if (f & LSMI_BLAS_CPU_AVX)
    return LSMI_BLAS_TIER_AVX;
  return LSMI_BLAS_TIER_SSE;
}

/*
 * The x86-64 core names of OpenBLAS 0.3.21's DYNAMIC_ARCH table, with the
 * instruction set their kernels need. The AMD AVX/FMA3 families before Zen
 * run AVX-class kernels; Zen runs the Haswell ones.
 */
static const struct {
  const char *name;
  int tier;
} core_tiers[] = {
    {"Unknown", 0},    {"Katmai", 0},       {"Coppermine", 0},
    {"Northwood", 0},  {"Prescott", 0},     {"Banias", 0},
    {"Atom", 0},       {"Core2", 0},        {"Penryn", 0},
    {"Dunnington", 0}, {"Nehalem", 0},      {"Athlon", 0},
    {"Opteron", 0},    {"Opteron_SSE3", 0}, {"Barcelona", 0},
    {"Nano", 0},       {"Bobcat", 0},       {"Sandybridge", 1},
    {"Bulldozer", 1},  {"Piledriver", 1},   {"Steamroller", 1},
    {"Excavator", 1},  {"Haswell", 2},      {"Zen", 2},
    {"SkylakeX", 3},   {"Cooperlake", 3},   {"SapphireRapids", 3},
};

int lsmi_blas_core_tier(const char *corename) {
  if (corename == NULL)
    return -1;
  for (size_t i = 0; i < sizeof core_tiers / sizeof core_tiers[0]; i++)
    if (strcasecmp(corename, core_tiers[i].name) == 0)
      return core_tiers[i].tier;
  return -1;
}

/* ---- the decision ------------------------------------------------------ */

static void keep(lsmi_blas_decision_t *out, const char *source, bool warn,
                 const char *reason) {
  memset(out, 0, sizeof *out);
  out->action = LSMI_BLAS_KEEP;
  out->source = source;
  out->warn = warn;
  out->reason = reason;
}

static void reexec_to(lsmi_blas_decision_t *out, const char *coretype,
                      const char *source, const char *reason) {
  memset(out, 0, sizeof *out);
  out->action = LSMI_BLAS_REEXEC;
  snprintf(out->coretype, sizeof out->coretype, "%s", coretype);
  out->source = source;
  out->stage = source; /* the marker names who chose, for the next image */
  out->reason = reason;
}

static bool is_set(const char *s) { return s != NULL && s[0] != '\0'; }

/* The kernel part of the decision; threads are added by the caller. */
static void decide_kernels(int cpu, int have, const char *corename,
                           const lsmi_blas_env_t *env,
                           lsmi_blas_decision_t *out) {
  const char *want = env->lsmi_coretype;
  if (is_set(want) && strcasecmp(want, "off") == 0) {
    keep(out, "off", false, "LSMI_BLAS_CORETYPE=off: OpenBLAS left alone");
    return;
  }

  if (is_set(want) && strcasecmp(want, "auto") != 0) {
    int need = lsmi_blas_core_tier(want);
    if (need < 0) {
      keep(out, "openblas", true,
           "LSMI_BLAS_CORETYPE names no known OpenBLAS core; ignored");
      return;
    }
    if (need > cpu) {
      keep(out, "openblas", true,
           "LSMI_BLAS_CORETYPE needs instructions this CPU lacks; ignored");
      return;
    }
    if (corename != NULL && strcasecmp(corename, want) == 0) {
      keep(out, "operator", false, "LSMI_BLAS_CORETYPE already in effect");
      return;
    }
    reexec_to(out, want, "operator",
              "LSMI_BLAS_CORETYPE asks for other kernels");
    return;
  }

  /* Auto. A user's own OPENBLAS_CORETYPE is their choice. */
  if (is_set(env->openblas_coretype)) {
    keep(out, "environment", false, "OPENBLAS_CORETYPE set by the user; kept");
    return;
  }
  const char *target = cpu >= LSMI_BLAS_TIER_AVX512 ? "SkylakeX"
                       : cpu >= LSMI_BLAS_TIER_AVX2 ? "Haswell"
                                                    : NULL;
  if (target == NULL) {
    keep(out, "openblas", false, "CPU without AVX2: OpenBLAS's choice kept");
    return;
  }
  if (have < 0) {
    keep(out, "openblas", false, "OpenBLAS core not known to lsmi; kept");
    return;
  }
  if (have >= cpu) {
    keep(out, "openblas", false, "OpenBLAS's choice matches the CPU");
    return;
  }
  reexec_to(out, target, "auto",
            "OpenBLAS chose kernels weaker than the CPU supports");
}

void lsmi_blas_decide(unsigned cpu_features, const char *corename,
                      const lsmi_blas_env_t *env, lsmi_blas_decision_t *out) {
  const lsmi_blas_env_t none = {0};
  if (env == NULL)
    env = &none;

  /* A re-executed image never re-executes for the same reasons again; the
   * marker carries who chose its kernels. */
  if (is_set(env->stage)) {
    static const char *const names[] = {"auto", "operator", "fallback",
                                        "environment", "off"};
    const char *src = "openblas";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (strcmp(env->stage, names[i]) == 0)
        src = names[i];
    keep(out, src, false, "kernels chosen before re-exec");
    return;
  }

  decide_kernels(lsmi_blas_cpu_tier(cpu_features),
                 lsmi_blas_core_tier(corename), corename, env, out);

  /* OpenBLAS starts its thread pool when it loads, from
   * OPENBLAS_NUM_THREADS. A re-exec for the kernels sets it to 1 on the way
   * (an operator's own value is kept); no re-exec is made for the threads
   * alone, because lsmi_blas_setup stops the pool in place for far less
   * than an exec costs (measured on a demo fit: doc/performance.md). */
  if (!is_set(env->openblas_num_threads) && out->action == LSMI_BLAS_REEXEC)
    out->set_threads = true;
}

void lsmi_blas_decide_fallback(bool verified, const char *corename,
                               const char *stage, lsmi_blas_decision_t *out) {
  if (verified) {
    keep(out, NULL, false, "kernels verified");
    return;
  }
  if ((stage != NULL && strcmp(stage, "fallback") == 0) ||
      (corename != NULL && strcasecmp(corename, FALLBACK_CORE) == 0)) {
    keep(out, NULL, true,
         "kernels failed verification and no safer choice is left");
    return;
  }
  reexec_to(out, FALLBACK_CORE, "fallback",
            "kernels failed verification; falling back to generic ones");
}

/* ---- verification ------------------------------------------------------ */

static void openblas_sgemm(bool trans_a, bool trans_b, int m, int n, int k,
                           float alpha, const float *a, int lda, const float *b,
                           int ldb, float beta, float *c, int ldc) {
  lsmi_openblas()->sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                         trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
                         lda, b, ldb, beta, c, ldc);
}

static float openblas_sdot(int n, const float *x, const float *y) {
  return lsmi_openblas()->sdot(n, x, 1, y, 1);
}

static const lsmi_blas_kernels_t openblas_kernels = {openblas_sgemm,
                                                     openblas_sdot};

const lsmi_blas_kernels_t *lsmi_blas_openblas_kernels(void) {
  return &openblas_kernels;
}

/*
 * Fills x with multiples of 1/64 in [-1, 1] from a fixed LCG. Products of two
 * such values are multiples of 2^-12 and sums of a few hundred of them stay
 * far below 2^24 ulps, so every product below is exact in float whatever the
 * summation order or FMA use: a correct kernel matches the double result to
 * the last bit, and the tolerance only guards against nothing.
 */
static void fill(float *x, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((int)((s >> 9) % 129u) - 64) / 64.0f;
  }
}

typedef struct gemm_case {
  bool ta, tb;
  int m, n, k;
  float alpha, beta;
} gemm_case_t;

/*
 * Small shapes take OpenBLAS's small-matrix path, the 64x40x400 one (over
 * the 100^3 bound of that path) its blocked path, k beyond one panel; odd sizes
 * exercise the edge kernels, and the transposes are the ones backpropagation
 * uses.
 */
static const gemm_case_t gemm_cases[] = {
    {false, false, 7, 5, 9, 1.0f, 0.0f},
    {true, false, 67, 45, 83, 2.0f, 0.5f},
    {false, true, 64, 40, 400, 1.0f, 1.0f},
    {true, true, 33, 129, 17, -0.5f, 0.25f},
};
#define MAX_A (64 * 400)
#define MAX_B (400 * 129)
#define MAX_C (64 * 129)

static bool check_gemm(const lsmi_blas_kernels_t *kern, const gemm_case_t *g,
                       float *a, float *b, float *c, char *why,
                       size_t why_len) {
  int m = g->m, n = g->n, k = g->k;
  /* Row-major storage: op(A) is m x k, stored k x m when transposed. */
  int lda = g->ta ? m : k, ldb = g->tb ? k : n, ldc = n;
  fill(a, (size_t)m * (size_t)k, (uint32_t)(m + 1));
  fill(b, (size_t)k * (size_t)n, (uint32_t)(n + 2));
  fill(c, (size_t)m * (size_t)n, (uint32_t)(k + 3));
  static float c0[MAX_C];
  static double ref[MAX_C], mag[MAX_C];
  memcpy(c0, c, sizeof(float) * (size_t)m * (size_t)n);
  kern->sgemm(g->ta, g->tb, m, n, k, g->alpha, a, lda, b, ldb, g->beta, c, ldc);
  /* Naive product in double, i-p-j order so the inner loop is contiguous. */
  for (int i = 0; i < m; i++) {
    double *ri = ref + (size_t)i * (size_t)n, *mi = mag + (size_t)i * (size_t)n;
    for (int j = 0; j < n; j++)
      ri[j] = mi[j] = 0.0;
    for (int p = 0; p < k; p++) {
      double x = g->ta ? a[p * lda + i] : a[i * lda + p];
      for (int j = 0; j < n; j++) {
        double xy = x * (g->tb ? b[j * ldb + p] : b[p * ldb + j]);
        ri[j] += xy;
        mi[j] += fabs(xy);
      }
    }
  }
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < n; j++) {
      double cij = c0[i * ldc + j];
      double want = (double)g->alpha * ref[i * n + j] + (double)g->beta * cij;
      double tol = 1e-5 * (fabs((double)g->alpha) * mag[i * n + j] +
                           fabs((double)g->beta * cij)) +
                   1e-6;
      double got = c[i * ldc + j];
      if (!(fabs(got - want) <= tol)) {
        if (why != NULL)
          snprintf(why, why_len,
                   "sgemm %c%c %dx%dx%d: C[%d,%d] = %.9g, expected %.9g",
                   g->ta ? 'T' : 'N', g->tb ? 'T' : 'N', m, n, k, i, j, got,
                   want);
        return false;
      }
    }
  }
  return true;
}

static bool check_dot(const lsmi_blas_kernels_t *kern, int n, float *x,
                      float *y, char *why, size_t why_len) {
  fill(x, (size_t)n, 11u);
  fill(y, (size_t)n, 13u);
  double ref = 0.0, mag = 0.0;
  for (int i = 0; i < n; i++) {
    ref += (double)x[i] * y[i];
    mag += fabs((double)x[i] * y[i]);
  }
  double got = kern->sdot(n, x, y);
  if (!(fabs(got - ref) <= 1e-5 * mag + 1e-6)) {
    if (why != NULL)
      snprintf(why, why_len, "sdot n=%d: %.9g, expected %.9g", n, got, ref);
    return false;
  }
  return true;
}

static sigjmp_buf verify_jump;

static void on_sigill(int sig) {
  (void)sig;
  siglongjmp(verify_jump, 1);
}

static bool run_checks(const lsmi_blas_kernels_t *kern, char *why,
                       size_t why_len) {
  static float a[MAX_A], b[MAX_B], c[MAX_C];
  for (size_t i = 0; i < sizeof gemm_cases / sizeof gemm_cases[0]; i++)
    if (!check_gemm(kern, &gemm_cases[i], a, b, c, why, why_len))
      return false;
  return check_dot(kern, 16, a, b, why, why_len) &&
         check_dot(kern, 1003, a, b, why, why_len);
}

bool lsmi_blas_verify(const lsmi_blas_kernels_t *kern, char *why,
                      size_t why_len) {
  if (why != NULL && why_len > 0)
    why[0] = '\0';

  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigill;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGILL, &sa, &old);

  /* Nothing the jump could clobber is read after it: the result comes from
   * one call, and the failure branch only writes. */
  bool ok;
  if (sigsetjmp(verify_jump, 1) == 0) {
    ok = run_checks(kern != NULL ? kern : &openblas_kernels, why, why_len);
  } else {
    ok = false;
    if (why != NULL)
      snprintf(why, why_len,
               "SIGILL: the kernels use instructions this CPU lacks");
  }
  sigaction(SIGILL, &old, NULL);
  return ok;
}

/* ---- set-up ------------------------------------------------------------ */

/*
 * Sets OPENBLAS_CORETYPE and the stage marker and replaces the process
 * image. Returns only if execv failed, with the environment restored.
 */
static void restore(const char *name, bool had, const char *saved) {
  if (had)
    setenv(name, saved, 1);
  else
    unsetenv(name);
}

/*
 * Sets OPENBLAS_CORETYPE (when the decision names one), OPENBLAS_NUM_THREADS
 * (when asked) and the stage marker, and replaces the process image. Returns
 * only if execv failed, with the environment as it was.
 */
static void reexec(char **argv, const lsmi_blas_decision_t *d) {
  if (argv == NULL || argv[0] == NULL) {
    log_line("warn", "cannot re-exec without argv; kernels kept", "wanted",
             d->coretype);
    return;
  }
  char saved_core[64] = "", saved_thr[32] = "";
  const char *pc = getenv("OPENBLAS_CORETYPE");
  const char *pt = getenv("OPENBLAS_NUM_THREADS");
  bool had_core = pc != NULL, had_thr = pt != NULL;
  if (had_core)
    snprintf(saved_core, sizeof saved_core, "%s", pc);
  if (had_thr)
    snprintf(saved_thr, sizeof saved_thr, "%s", pt);
  if (d->coretype[0] != '\0') {
    log_line("info", d->reason, "switching_to", d->coretype);
    setenv("OPENBLAS_CORETYPE", d->coretype, 1);
  }
  if (d->set_threads)
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
  setenv(STAGE_ENV, d->stage != NULL ? d->stage : "openblas", 1);
  fflush(NULL);
  execv("/proc/self/exe", argv);
  int e = errno;
  restore("OPENBLAS_CORETYPE", had_core, saved_core);
  restore("OPENBLAS_NUM_THREADS", had_thr, saved_thr);
  unsetenv(STAGE_ENV);
  log_line("warn", "re-exec failed; kernels kept", "error", strerror(e));
}

void lsmi_blas_setup(int argc, char **argv) {
  (void)argc;
  if (lsmi_openblas() == NULL) {
    g_source = "none";
    log_line("error", "OpenBLAS could not be loaded", "detail",
             lsmi_openblas_error());
    return;
  }
  /* (opening it pinned it to one thread and stopped its pool: step 1) */

  char stage[16] = "";
  const char *st = getenv(STAGE_ENV);
  if (st != NULL) {
    snprintf(stage, sizeof stage, "%s", st);
    unsetenv(STAGE_ENV);
  }
  lsmi_blas_env_t env = {
      .openblas_coretype = getenv("OPENBLAS_CORETYPE"),
      .openblas_num_threads = getenv("OPENBLAS_NUM_THREADS"),
      .lsmi_coretype = getenv("LSMI_BLAS_CORETYPE"),
      .stage = stage[0] != '\0' ? stage : NULL,
  };
  const char *core = lsmi_blas_corename();
  lsmi_blas_decision_t d;
  lsmi_blas_decide(lsmi_blas_cpu_features(), core, &env, &d);
  if (d.warn)
    log_line("warn", d.reason, "requested", env.lsmi_coretype);
  if (d.action == LSMI_BLAS_REEXEC) {
    reexec(argv, &d); /* returns only on failure */
    g_source = d.coretype[0] != '\0' ? "openblas" : d.source;
  } else {
    g_source = d.source;
  }

  /* After our re-exec, say so if OpenBLAS did not take the name we gave. */
  if ((strcmp(stage, "auto") == 0 || strcmp(stage, "operator") == 0) &&
      env.openblas_coretype != NULL &&
      strcasecmp(env.openblas_coretype, core) != 0)
    log_line("warn", "OpenBLAS did not take the requested kernels", "requested",
             env.openblas_coretype);

  char why[256];
  g_verified = lsmi_blas_verify(NULL, why, sizeof why);
  lsmi_blas_decision_t f;
  lsmi_blas_decide_fallback(g_verified, core, stage, &f);
  if (f.action == LSMI_BLAS_REEXEC) {
    log_line("error", "kernels failed verification", "detail", why);
    reexec(argv, &f);
  } else if (!g_verified) {
    log_line("error", f.reason, "detail", why);
  }
}

const char *lsmi_blas_corename(void) {
  return lsmi_openblas_loaded() ? lsmi_openblas()->get_corename() : "none";
}

const char *lsmi_blas_source(void) { return g_source; }

bool lsmi_blas_verified(void) { return g_verified; }
