/*
 * gemm.c — the small products of gemm.h: a portable implementation, an
 * AVX-512 one, and the choice between them.
 *
 * The portable one walks C one row at a time: the row is cleared (or kept,
 * when accumulating), then gets a(i, k) · B(k, :) added for every k of the
 * row's range, a loop along j that the compiler vectorises for whatever
 * vector width the function clone was built for; the epilogue follows on the
 * same row while it is in cache.
 *
 * The AVX-512 one (gemm_avx512.c) keeps a tile of up to 6 rows by 64
 * columns in 24 vector registers for the whole k loop and stores it once.
 */
#include "gemm.h"
#include "gemm_impl.h"
#include "simd.h"

#include <assert.h>
#include <string.h>

/* The k range of row i of A under the triangular form tri, within [0, K). */
static void k_range(int tri, int i, int K, int *k0, int *k1) {
  *k0 = 0;
  *k1 = K;
  if (tri == LSMI_GEMM_A_STRICT_LOWER)
    *k1 = i < K ? i : K;
  else if (tri == LSMI_GEMM_A_STRICT_UPPER)
    *k0 = i + 1 < K ? i + 1 : K;
}

LSMI_VECTOR_CLONES
static void gemm_row(const lsmi_gemm_t *g, int i, int n) {
  float *c = g->c + (size_t)i * g->ldc;
  if (!g->accumulate)
    for (int j = 0; j < n; j++)
      c[j] = 0.0f;
  int k0, k1;
  k_range(g->tri, i, g->K, &k0, &k1);
  const float *arow = g->a + (size_t)i * g->rsa;
  for (int k = k0; k < k1; k++) {
    float aik = arow[(size_t)k * g->csa];
    const float *b = g->b + (size_t)k * g->ldb;
    for (int j = 0; j < n; j++)
      c[j] += aik * b[j];
  }
  if (g->bias)
    for (int j = 0; j < n; j++)
      c[j] += g->bias[j];
  if (g->relu)
    for (int j = 0; j < n; j++)
      c[j] = c[j] < 0.0f ? 0.0f : c[j];
  if (g->mask) {
    const float *m = g->mask + (size_t)i * g->ldm;
    for (int j = 0; j < n; j++)
      c[j] = m[j] > 0.0f ? c[j] : 0.0f;
  }
}

void lsmi_gemm_generic(const lsmi_gemm_t *g) {
  for (int i = 0; i < g->M; i++) {
    int n = g->N;
    if (g->tri == LSMI_GEMM_C_STRICT_LOWER)
      n = i < g->N ? i : g->N;
    gemm_row(g, i, n);
  }
}

/* ------------------------------------------------------------------------ */
/* Choice of implementation                                                 */
/* ------------------------------------------------------------------------ */

typedef struct gemm_impl {
  const char *name;
  void (*run)(const lsmi_gemm_t *g);
  int (*supported)(void);
} gemm_impl_t;

static int always(void) { return 1; }

static const gemm_impl_t impls[] = {
#ifdef LSMI_GEMM_HAVE_AVX512
    {"avx512", lsmi_gemm_avx512, lsmi_gemm_avx512_supported},
#endif
    {"generic", lsmi_gemm_generic, always},
};

/* The implementation in use, NULL until the first call. Threads that race
 * on the first call all pick the same entry, so relaxed atomics suffice; they
 * only keep the race defined. */
static const gemm_impl_t *chosen;

static const gemm_impl_t *pick(void) {
  const gemm_impl_t *c = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
  if (c)
    return c;
  for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
    if (impls[i].supported()) {
      c = &impls[i];
      break;
    }
  __atomic_store_n(&chosen, c, __ATOMIC_RELAXED);
  return c;
}

int lsmi_gemm_select(const char *name) {
  for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
    if (strcmp(impls[i].name, name) == 0 && impls[i].supported()) {
      __atomic_store_n(&chosen, &impls[i], __ATOMIC_RELAXED);
      return 0;
    }
  return -1;
}

const char *lsmi_gemm_name(void) { return pick()->name; }

void lsmi_gemm(const lsmi_gemm_t *g) {
  assert(g->M >= 0 && g->N >= 0 && g->K >= 0);
  assert(g->tri != LSMI_GEMM_C_STRICT_LOWER ||
         (!g->bias && !g->relu && !g->mask));
  if (g->M == 0 || g->N == 0)
    return;
  pick()->run(g);
}
