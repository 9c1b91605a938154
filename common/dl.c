/*
 * dl.c — see dl.h.
 */
#include "dl.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

bool lsmi_dl_open(const char *soname, const lsmi_dl_sym_t *syms, size_t n,
                  char *err, size_t errlen) {
  void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *e = dlerror();
    snprintf(err, errlen, "%s", e ? e : "dlopen failed");
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    void *p = dlsym(h, syms[i].name);
    if (p == NULL && syms[i].optional)
      continue;
    if (p == NULL) {
      snprintf(err, errlen, "%s has no %s", soname, syms[i].name);
      dlclose(h);
      return false;
    }
    /* ISO C has no cast from void * to a function pointer; POSIX
     * guarantees that copying the bytes works. */
    memcpy(syms[i].slot, &p, syms[i].size);
  }
  return true;
}
