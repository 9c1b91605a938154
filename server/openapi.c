/*
 * openapi.c — embeds proto/openapi.yaml (path relative to the repository
 * root, where make runs the compiler). The build records the dependency in
 * tests/server/server.mk so that editing the YAML rebuilds this object.
 */
#include "openapi.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        "lsmi__openapi_start:\n"
        ".incbin \"proto/openapi.yaml\"\n"
        "lsmi__openapi_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char lsmi__openapi_start[], lsmi__openapi_end[];

const char *lsmi_openapi_text(size_t *len) {
  *len = (size_t)(lsmi__openapi_end - lsmi__openapi_start);
  return lsmi__openapi_start;
}
