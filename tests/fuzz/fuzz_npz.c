/*
 * fuzz_npz.c — libFuzzer harness for the npz reader (see fuzz_common.h).
 * Seeded by tests/fuzz/run.sh with the fixtures in tests/data/.
 */
#define FUZZ_FORMAT LSMI_FORMAT_NPZ
#include "fuzz_common.h"
