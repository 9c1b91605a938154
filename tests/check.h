/*
 * check.h — assertions the cmocka tests share (include after <cmocka.h>).
 */
#ifndef LSMI_TESTS_CHECK_H
#define LSMI_TESTS_CHECK_H

#include <math.h>

/* |a - b| <= tol in double (cmocka's assert_float_equal compares in float),
 * printing both values on failure. */
#define assert_close(a, b, tol)                                                \
  do {                                                                         \
    double a_ = (a), b_ = (b), t_ = (tol);                                     \
    if (!(fabs(a_ - b_) <= t_))                                                \
      fail_msg("%s = %.17g, want %s = %.17g (tol %.3g)", #a, a_, #b, b_, t_);  \
  } while (0)

#endif
