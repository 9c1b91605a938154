/*
 * fuzz_pt.c — libFuzzer harness for the pt reader (see fuzz_common.h).
 * Seeded by tests/fuzz/run.sh with the fixtures in tests/data/.
 */
#define FUZZ_FORMAT LSMI_FORMAT_PT
#include "fuzz_common.h"
