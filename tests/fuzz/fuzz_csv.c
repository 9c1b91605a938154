/*
 * fuzz_csv.c — libFuzzer harness for the csv reader (see fuzz_common.h).
 * Seeded by tests/fuzz/run.sh with the fixtures in tests/data/.
 */
#define FUZZ_FORMAT LSMI_FORMAT_CSV
#include "fuzz_common.h"
