/*
 * openapi.h — proto/openapi.yaml, embedded in the binary at build time
 * (openapi.c pulls the file in with the assembler's .incbin), so that
 * GET /v1/openapi.yaml serves exactly the contract the binary was built
 * against, wherever the binary is installed.
 */
#ifndef LSMI_OPENAPI_H
#define LSMI_OPENAPI_H

#include <stddef.h>

/* The document's bytes (not NUL-terminated in the count) and length. */
const char *lsmi_openapi_text(size_t *len);

#endif
