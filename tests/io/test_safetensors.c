/*
 * test_safetensors.c — io/safetensors.c: Hugging Face .safetensors files
 * (an 8-byte header length, a JSON header, the data region).
 *
 * Besides the fixtures of tests/data/, files are made here from a header
 * text and a data region, so that each check of the header and of each
 * tensor's entry is provoked by name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "io_test.h"

static void test_good_files(void **state) {
  (void)state;
  static const io_good_t good[] = {
      {"good.safetensors", LSMI_FORMAT_SAFETENSORS},
      {"good_f16.safetensors", LSMI_FORMAT_SAFETENSORS},
  };
  io_check_good(good, sizeof good / sizeof good[0]);
}

static void test_bad_files(void **state) {
  (void)state;
  static const io_bad_t bad[] = {
      {"bad_truncated.safetensors", LSMI_ERR_FORMAT, "val_y", "truncated"},
      {"bad_header_len.safetensors", LSMI_ERR_FORMAT, NULL, "header says"},
      {"bad_header_huge.safetensors", LSMI_ERR_LIMIT, NULL, "header"},
      {"bad_json.safetensors", LSMI_ERR_FORMAT, NULL, "JSON"},
      {"bad_offsets.safetensors", LSMI_ERR_FORMAT, "val_y", "data_offsets"},
      {"bad_size.safetensors", LSMI_ERR_FORMAT, "train_x1", "shape (12, 4)"},
      {"bad_overflow.safetensors", LSMI_ERR_LIMIT, "train_x2",
       "shape (1099511627776, 1099511627776)"},
      {"bad_dtype.safetensors", LSMI_ERR_UNSUPPORTED, "train_x1", "F8_E4M3"},
  };
  io_check_bad(bad, sizeof bad / sizeof bad[0]);
}

static void test_every_prefix(void **state) {
  (void)state;
  io_check_every_prefix("good.safetensors");
}

/* The file of JSON header `h` and `dlen` zero bytes of data must fail with
 * status, field (NULL: any) and a message holding msg. */
static void header_fails(const char *h, size_t dlen, int status,
                         const char *field, const char *msg) {
  size_t hl = strlen(h);
  unsigned char *b = calloc(1, 8 + hl + dlen);
  assert_non_null(b);
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, h, hl);
  io_expect(b, 8 + hl + dlen, LSMI_FORMAT_SAFETENSORS, NULL, status, field,
            msg);
  free(b);
}

static void test_header_errors(void **state) {
  (void)state;
  io_expect("\x02\0\0\0\0\0\0", 7, LSMI_FORMAT_SAFETENSORS, NULL,
            LSMI_ERR_FORMAT, "",
            "safetensors file shorter than its 8-byte header length");
  header_fails("[1, 2]", 0, LSMI_ERR_FORMAT, "",
               "safetensors header is not a JSON object: wrong type");
  header_fails("{\"a\": 1, \"a\": 2}", 0, LSMI_ERR_FORMAT, "",
               "safetensors header is not a JSON object: duplicate object key");
  header_fails("{\"train_x1\": 7}", 0, LSMI_ERR_FORMAT, "train_x1",
               "safetensors header entry train_x1 is not an object");
  header_fails("{\"train_x1\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4,
               LSMI_ERR_FORMAT, "train_x1",
               "safetensors header entry train_x1 lacks dtype, shape or "
               "data_offsets");
  header_fails("{\"train_x1\": {\"dtype\": \"F32\", \"shape\": [1], "
               "\"data_offsets\": [0, 4.0]}}",
               4, LSMI_ERR_FORMAT, "train_x1", "lacks dtype, shape");
  header_fails("{\"train_x1\": {\"dtype\": \"F32\", \"shape\": "
               "[1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}",
               4, LSMI_ERR_SHAPE, "train_x1",
               "train_x1 has 9 dimensions; at most 8 are supported");
  header_fails("{\"train_x1\": {\"dtype\": \"F32\", \"shape\": [-1], "
               "\"data_offsets\": [0, 4]}}",
               4, LSMI_ERR_FORMAT, "train_x1",
               "train_x1: shape holds a non-integer or negative size");
  header_fails("{\"train_x1\": {\"dtype\": \"F32\", \"shape\": [2], "
               "\"data_offsets\": [4, 0]}}",
               8, LSMI_ERR_FORMAT, "train_x1",
               "train_x1: data_offsets [4, 0] lie outside the 8 bytes of data "
               "(truncated?)");
  header_fails("{\"train_x1\": {\"dtype\": \"F32\", \"shape\": [2], "
               "\"data_offsets\": [0, 4]}}",
               8, LSMI_ERR_FORMAT, "train_x1",
               "train_x1 has shape (2,) (float32, 8 bytes) but its "
               "data_offsets span 4 bytes");
}

/* The metadata and tensors of other names are passed over; the names the
 * file holds are listed when one is missing. */
static void test_other_entries(void **state) {
  (void)state;
  header_fails("{\"__metadata__\": {\"format\": \"pt\"}, \"weights\": "
               "{\"dtype\": \"C64\"}, \"train_x1\": {\"dtype\": \"U8\", "
               "\"shape\": [2, 1], \"data_offsets\": [0, 2]}}",
               2, LSMI_ERR_MISSING, "train_x2",
               "missing key train_x2 (or train_modal_2_features, or x2 in a "
               "file without val); the file holds weights, train_x1: say "
               "which array is which with --x1 KEY --x2 KEY --y KEY (upload: "
               "?x1=KEY&x2=KEY&y=KEY)");
}

/* Tensors by the caller's names, and a file without val (val drawn). */
static void test_caller_names(void **state) {
  (void)state;
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  int64_t y[8] = {0, 1, 0, 1, 0, 1, 0, 1};
  const char *h = "{\"emb\": {\"dtype\": \"F32\", \"shape\": [8, 1], "
                  "\"data_offsets\": [0, 32]}, \"x2\": {\"dtype\": \"F32\", "
                  "\"shape\": [8], \"data_offsets\": [0, 32]}, \"cls\": "
                  "{\"dtype\": \"I64\", \"shape\": [8], \"data_offsets\": "
                  "[32, 96]}}";
  size_t hl = strlen(h), n = 8 + hl + sizeof x + sizeof y;
  unsigned char *b = malloc(n);
  assert_non_null(b);
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(hl >> (8 * i));
  memcpy(b + 8, h, hl);
  memcpy(b + 8 + hl, x, sizeof x);
  memcpy(b + 8 + hl + sizeof x, y, sizeof y);
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.x1 = "emb";
  opt.y = "cls";
  opt.val_fraction = 0.25;
  lsmi_dataset_t *ds =
      io_must_read_opts(b, n, LSMI_FORMAT_SAFETENSORS, &opt, NULL);
  assert_int_equal(ds->train.n, 6);
  assert_int_equal(ds->val.n, 2);
  assert_true(ds->val_drawn);
  assert_null(ds->class_names);
  lsmi_dataset_destroy(ds);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_files),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_every_prefix),
      cmocka_unit_test(test_header_errors),
      cmocka_unit_test(test_other_entries),
      cmocka_unit_test(test_caller_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
