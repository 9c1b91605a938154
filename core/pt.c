/*
 * pt.c — the pt reader (placeholder until it lands: refuses the format).
 */
#include "dsio.h"

int lsmi__read_pt(const unsigned char *buf, size_t len,
                   const lsmi_limits_t *lim, lsmi__arrays_t *as,
                   lsmi_error_t *err) {
  (void)buf;
  (void)len;
  (void)lim;
  (void)as;
  return lsmi_error_set(err, LSMI_ERR_UNSUPPORTED, "",
                        "pt files are not supported yet");
}
