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
  /* The val fraction comes from the input so both paths are explored. */
  double vf = size > 0 && (data[size - 1] & 1) ? 0.25 : 0.0;
  int rc = lsmi__dataset_read_buffer(data, size, FUZZ_FORMAT, &lim, vf, 1, &ds,
                                     NULL, &err);
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
