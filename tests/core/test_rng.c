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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reproducible),
      cmocka_unit_test(test_permutation),
      cmocka_unit_test(test_moments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
