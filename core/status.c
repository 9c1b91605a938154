/*
 * status.c — the status table (names and messages) and the error struct
 * filler. Everything here is generated from LSMI_STATUS_MAP.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lsmi.h"

const char *lsmi_status_name(int status) {
  switch (status) {
#define X(name, value, msg)                                                    \
  case (value):                                                                \
    return #name;
    LSMI_STATUS_MAP(X)
#undef X
  default:
    return "UNKNOWN";
  }
}

const char *lsmi_status_message(int status) {
  switch (status) {
#define X(name, value, msg)                                                    \
  case (value):                                                                \
    return msg;
    LSMI_STATUS_MAP(X)
#undef X
  default:
    return "unknown status";
  }
}

int lsmi_error_set(lsmi_error_t *err, int status, const char *field,
                   const char *fmt, ...) {
  if (err == NULL)
    return status;
  err->status = status;
  snprintf(err->field, sizeof err->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return status;
}
