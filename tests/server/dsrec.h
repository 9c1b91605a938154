/*
 * dsrec.h — the dataset record the store tests insert (the SQLite store's
 * in tests/server/, the PostgreSQL store's in tests/cluster/), made in one
 * place; each test passes the sizes it asserts.
 */
#ifndef LSMI_TESTS_SERVER_DSREC_H
#define LSMI_TESTS_SERVER_DSREC_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

/* What a test's records carry besides their names; a field left out of a
 * designated initializer is 0. */
typedef struct dsrec_sizes {
  uint64_t bytes;
  int classes;
  uint64_t n_train, n_val, d1, d2;
  double val_fraction, created_at;
} dsrec_sizes_t;

/* A record of id, tenant and sha256 (all copied), named "name-<id>", of
 * format npz, with the sizes of sz and every other field zero. */
static inline lsmi_dataset_rec_t dsrec_make(const char *id, const char *tenant,
                                            const char *sha, dsrec_sizes_t sz) {
  lsmi_dataset_rec_t r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "%s", id);
  snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
  snprintf(r.name, sizeof r.name, "name-%s", id);
  snprintf(r.format, sizeof r.format, "npz");
  snprintf(r.sha256, sizeof r.sha256, "%s", sha);
  r.bytes = sz.bytes;
  r.classes = sz.classes;
  r.n_train = sz.n_train;
  r.n_val = sz.n_val;
  r.d1 = sz.d1;
  r.d2 = sz.d2;
  r.val_fraction = sz.val_fraction;
  r.created_at = sz.created_at;
  return r;
}

#endif
