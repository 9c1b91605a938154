/*
 * test_sha256.c — common/sha256.c against the examples of FIPS 180-4 (and
 * its test vectors: the empty message, "abc", the 448- and 896-bit
 * messages, a million 'a'), whole and streamed in pieces of odd sizes
 * across the 64-byte blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

/* The hex digest of `len` bytes of msg, fed in pieces of `chunk` bytes
 * (0: all at once). */
static void digest(const char *msg, size_t len, size_t chunk, char out[65]) {
  lsmi_sha256_t s;
  unsigned char h[32];
  lsmi_sha256_init(&s);
  if (chunk == 0)
    lsmi_sha256_update(&s, msg, len);
  for (size_t k = 0; chunk && k < len; k += chunk)
    lsmi_sha256_update(&s, msg + k, len - k < chunk ? len - k : chunk);
  lsmi_sha256_final(&s, h);
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", h[i]);
}

static const struct {
  const char *msg;
  const char *hex;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
     "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static void test_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    char out[65];
    digest(vectors[i].msg, strlen(vectors[i].msg), 0, out);
    assert_string_equal(out, vectors[i].hex);
  }
}

/* The same digests, the messages fed in pieces of 1, 3, 7, 55, 63, 64 and
 * 65 bytes: a piece ends inside, at and across a block boundary. */
static void test_vectors_streamed(void **state) {
  (void)state;
  static const size_t chunks[] = {1, 3, 7, 55, 63, 64, 65};
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
      char out[65];
      digest(vectors[i].msg, strlen(vectors[i].msg), chunks[c], out);
      assert_string_equal(out, vectors[i].hex);
    }
  }
}

/* One million 'a's, whole and in pieces of 1000, 997 and 4097 bytes. */
static void test_million_a(void **state) {
  (void)state;
  static const char want[] =
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  size_t n = 1000000;
  char *a = malloc(n);
  assert_non_null(a);
  memset(a, 'a', n);
  static const size_t chunks[] = {0, 1000, 997, 4097};
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
    char out[65];
    digest(a, n, chunks[c], out);
    assert_string_equal(out, want);
  }
  free(a);
}

/* Messages of 55, 56, 63 and 64 bytes: the length fits in the last block,
 * or needs another one. */
static void test_padding_edges(void **state) {
  (void)state;
  static const struct {
    size_t len;
    const char *hex;
  } v[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
  };
  char a[64];
  memset(a, 'a', sizeof a);
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char out[65];
    digest(a, v[i].len, 0, out);
    assert_string_equal(out, v[i].hex);
    digest(a, v[i].len, 5, out);
    assert_string_equal(out, v[i].hex);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_vectors_streamed),
      cmocka_unit_test(test_million_a),
      cmocka_unit_test(test_padding_edges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
