/*
 * fuzz_npy.c — libFuzzer harness for the npy reader (see fuzz_common.h).
 * Seeded by tests/fuzz/run.sh with the fixtures in tests/data/.
 */
#define FUZZ_FORMAT LSMI_FORMAT_NPY
#include "fuzz_common.h"
