/*
 * dl.h — a shared library opened at run time, and its entry points
 * (internal). lsmi opens OpenBLAS (core/blas.h) and libmicrohttpd
 * (server/mhd.h) only where a command needs them, rather than making every
 * start of the binary load them.
 */
#ifndef LSMI_DL_H
#define LSMI_DL_H

#include <stdbool.h>
#include <stddef.h>

/* One entry point: its name, and the function pointer it is stored in. */
typedef struct lsmi_dl_sym {
  const char *name;
  void *slot;  /* address of a function pointer */
  size_t size; /* sizeof that pointer */
  bool optional;
} lsmi_dl_sym_t;

/*
 * Opens soname (dlopen, RTLD_NOW | RTLD_LOCAL) and stores the address of
 * each of the n symbols in its slot. On failure (the library or a symbol
 * that is not optional is missing) writes why to err, closes the library
 * and returns false, leaving the slots in any state. The library stays open
 * otherwise, until exit.
 */
bool lsmi_dl_open(const char *soname, const lsmi_dl_sym_t *syms, size_t n,
                  char *err, size_t errlen);

#endif
