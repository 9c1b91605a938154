/*
 * test_rng.c — the seeded streams: reproducible, independent per stream,
 * permutations valid, moments of uniform and normal draws sane.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <math.h>

#include "rng.h"

static void test_reproducible(void **state) {
  (void)state;
  lsmi_rng_t a, b, c;
  lsmi_rng_seed(&a, 42, 1);
  lsmi_rng_seed(&b, 42, 1);
  lsmi_rng_seed(&c, 42, 2);
  int same_c = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = lsmi_rng_next(&a);
    assert_true(x == lsmi_rng_next(&b));
    same_c += x == lsmi_rng_next(&c);
  }
  assert_int_equal(same_c, 0);
  lsmi_rng_seed(&a, 0, 1);
  lsmi_rng_seed(&b, 1, 1);
  assert_true(lsmi_rng_next(&a) != lsmi_rng_next(&b));
}

static void test_permutation(void **state) {
  (void)state;
  enum { N = 1001 };
  uint32_t perm[N];
  int seen[N] = {0};
  lsmi_rng_t r;
  lsmi_rng_seed(&r, 7, 3);
  lsmi_rng_permutation(&r, perm, N);
  int fixed = 0;
  for (int i = 0; i < N; i++) {
    assert_true(perm[i] < N);
    seen[perm[i]]++;
    fixed += perm[i] == (uint32_t)i;
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(seen[i], 1);
  assert_true(fixed < 10); /* a shuffle, not the identity */
  lsmi_rng_permutation(&r, perm, 0);
  lsmi_rng_permutation(&r, perm, 1);
  assert_int_equal(perm[0], 0);
}

static void test_moments(void **state) {
  (void)state;
  lsmi_rng_t r;
  lsmi_rng_seed(&r, 1, 9);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  long below[5] = {0};
  for (int i = 0; i < n; i++) {
    double u = lsmi_rng_uniform(&r);
    assert_true(u >= 0.0 && u < 1.0);
    su += u;
    double z = lsmi_rng_normal(&r);
    assert_true(isfinite(z));
    sn += z;
    sn2 += z * z;
    below[lsmi_rng_below(&r, 5)]++;
  }
  assert_true(fabs(su / n - 0.5) < 0.005);
  assert_true(fabs(sn / n) < 0.01);
  assert_true(fabs(sn2 / n - 1.0) < 0.02);
  for (int k = 0; k < 5; k++)
    assert_true(labs(below[k] - n / 5) < n / 100);
}

/*
 * lsmi_rng_below skips working out the rejection limit for most draws; it
 * must take exactly the draws, and give exactly the values, of the plain
 * rule "draw until v < UINT64_MAX - UINT64_MAX % n, return v % n", run here
 * on a copy of the stream. The n near 2^64 put most draws past the shortcut
 * (into the test against the limit, and into rejections).
 */
static void test_below_matches_plain_rejection(void **state) {
  (void)state;
  const uint64_t ns[] = {1,
                         2,
                         5,
                         1600,
                         (uint64_t)1 << 32,
                         ((uint64_t)1 << 63) + 1,
                         UINT64_MAX / 3 * 2,
                         UINT64_MAX - 1,
                         UINT64_MAX};
  lsmi_rng_t a, b;
  lsmi_rng_seed(&a, 11, 4);
  lsmi_rng_seed(&b, 11, 4);
  long rejected = 0;
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
    uint64_t n = ns[k], limit = UINT64_MAX - UINT64_MAX % n;
    for (int i = 0; i < 20000; i++) {
      uint64_t got = lsmi_rng_below(&a, n), v;
      while ((v = lsmi_rng_next(&b)) >= limit)
        rejected++;
      assert_true(got == v % n);
    }
  }
  assert_memory_equal(a.s, b.s, sizeof a.s); /* the same draws taken */
  assert_true(rejected > 0); /* n = 2^63 + 1 rejects about half */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_below_matches_plain_rejection),
      cmocka_unit_test(test_reproducible),
      cmocka_unit_test(test_permutation),
      cmocka_unit_test(test_moments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
