/*
 * fuzz_safetensors.c — libFuzzer harness for the safetensors reader (see
 * fuzz_common.h). Seeded by tests/fuzz/run.sh with the fixtures in tests/data/.
 */
#define FUZZ_FORMAT LSMI_FORMAT_SAFETENSORS
#include "fuzz_common.h"
