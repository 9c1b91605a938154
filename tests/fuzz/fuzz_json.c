/*
 * fuzz_json.c — libFuzzer harness for the json reader (see fuzz_common.h).
 * Seeded by tests/fuzz/run.sh with the fixtures in tests/data/.
 */
#define FUZZ_FORMAT LSMI_FORMAT_JSON
#include "fuzz_common.h"
