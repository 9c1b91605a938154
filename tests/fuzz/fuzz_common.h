/*
 * fuzz_common.h — the body shared by the libFuzzer harnesses: feed the
 * input to one reader (FUZZ_FORMAT) through the same path as
 * lsmi_dataset_read, with limits small enough that a run never needs more
 * than a few hundred MiB, and check what comes back: either a dataset that
 * passes lsmi_dataset_validate, or an error status with a message. Crashes,
 * leaks, hangs and undefined behaviour are what libFuzzer and the
 * sanitizers report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsio.h"
#include "lsmi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lsmi_limits_t lim;
  lsmi_limits_default(&lim);
  lim.max_rows = 100000;
  lim.max_dims = 4096;
  lim.max_classes = 1000;
  lim.max_decompressed_bytes = (uint64_t)64 << 20;
  lim.max_header_bytes = (uint64_t)1 << 20;
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err;
  memset(&err, 0, sizeof err);
  /* The val fraction and the key names come from the input's last byte,
   * so that every path is explored: the usual names, or the caller's (the
   * fuzz dictionaries hold them). */
  unsigned char last = size > 0 ? data[size - 1] : 0;
  lsmi_read_options_t opt = LSMI_READ_OPTIONS_INIT;
  opt.val_fraction = last & 1 ? 0.25 : 0.0;
  opt.val_fraction_given = (last & 6) == 6;
  opt.seed = 1;
  if (last & 2) {
    opt.x1 = "a";
    opt.x2 = "b_";
    opt.y = "label";
  }
  if (last & 4)
    opt.id = "sample";
  lsmi_read_info_t info;
  int rc = lsmi__dataset_read_buffer(data, size, FUZZ_FORMAT, &lim, &opt, &ds,
                                     &info, &err);
  if (rc == 0) {
    if (!ds || lsmi_dataset_validate(ds, &lim, NULL) != 0)
      abort(); /* a dataset that was read must be valid */
    unsigned char h[32];
    lsmi_dataset_hash(ds, h);
    lsmi_dataset_destroy(ds);
  } else if (ds || err.status != rc || err.message[0] == '\0') {
    abort(); /* every failure must carry its status and a message */
  }
  return 0;
}
