/*
 * test_sha256.c — common/sha256.c against the examples of FIPS 180-4.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sha256.h"

static void hex(const unsigned char *h, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", h[i]);
}

static void test_sha256(void **state) {
  (void)state;
  static const struct {
    const char *msg;
    const char *hex;
  } v[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    lsmi_sha256_t s;
    unsigned char h[32];
    char out[65];
    lsmi_sha256_init(&s);
    /* Byte by byte for the long one: exercises the partial-block path. */
    size_t n = strlen(v[i].msg);
    if (n > 10)
      for (size_t k = 0; k < n; k++)
        lsmi_sha256_update(&s, v[i].msg + k, 1);
    else
      lsmi_sha256_update(&s, v[i].msg, n);
    lsmi_sha256_final(&s, h);
    hex(h, 32, out);
    assert_string_equal(out, v[i].hex);
  }
  /* One million 'a's. */
  lsmi_sha256_t s;
  unsigned char h[32], block[1000];
  char out[65];
  memset(block, 'a', sizeof block);
  lsmi_sha256_init(&s);
  for (int k = 0; k < 1000; k++)
    lsmi_sha256_update(&s, block, sizeof block);
  lsmi_sha256_final(&s, h);
  hex(h, 32, out);
  assert_string_equal(
      out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sha256),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
