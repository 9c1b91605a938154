/*
 * memory.c — the memory budget and its estimates (see memory.h).
 *
 * The estimates are upper bounds built from what the code allocates: the
 * fit's from the core (lsmi_fit_memory, which counts its own blocks), the
 * read's from how io/ reads each format (formats.c maps the file; the zip
 * formats inflate each member whole; CSV parses into doubles, JSON into a
 * jansson tree; lsmi__assemble converts to float32; a val split copies the
 * dataset once more).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memory.h"

struct lsmi_mem {
  pthread_mutex_t mu; /* mem.mu: reserved; a leaf lock */
  pthread_cond_t freed;
  uint64_t total, reserved;
  void (*on_release)(void *ctx);
  void *ctx;
};

int lsmi_mem_create(uint64_t total, lsmi_mem_t **out) {
  lsmi_mem_t *m = calloc(1, sizeof *m);
  *out = m;
  if (m == NULL)
    return LSMI_ERR_NOMEM;
  pthread_mutex_init(&m->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->freed, &ca);
  pthread_condattr_destroy(&ca);
  m->total = total;
  return LSMI_OK;
}

void lsmi_mem_destroy(lsmi_mem_t *m) {
  if (m == NULL)
    return;
  pthread_cond_destroy(&m->freed);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static bool fits_locked(const lsmi_mem_t *m, uint64_t n) {
  return m->total == 0 || (n <= m->total && m->reserved <= m->total - n);
}

bool lsmi_mem_reserve(lsmi_mem_t *m, uint64_t n, double timeout) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  double whole = (double)until.tv_nsec * 1e-9 + timeout;
  until.tv_sec += (time_t)whole;
  until.tv_nsec = (long)((whole - (double)(time_t)whole) * 1e9);
  pthread_mutex_lock(&m->mu);
  bool ok = fits_locked(m, n);
  while (!ok && timeout > 0 && (m->total == 0 || n <= m->total) &&
         pthread_cond_timedwait(&m->freed, &m->mu, &until) == 0)
    ok = fits_locked(m, n);
  ok = ok || fits_locked(m, n);
  if (ok)
    m->reserved += n;
  pthread_mutex_unlock(&m->mu);
  return ok;
}

void lsmi_mem_release(lsmi_mem_t *m, uint64_t n) {
  pthread_mutex_lock(&m->mu);
  m->reserved = n < m->reserved ? m->reserved - n : 0;
  pthread_cond_broadcast(&m->freed);
  pthread_mutex_unlock(&m->mu);
  if (m->on_release)
    m->on_release(m->ctx);
}

void lsmi_mem_on_release(lsmi_mem_t *m, void (*fn)(void *ctx), void *ctx) {
  m->on_release = fn;
  m->ctx = ctx;
}

void lsmi_mem_usage(lsmi_mem_t *m, uint64_t *reserved, uint64_t *total) {
  pthread_mutex_lock(&m->mu);
  *reserved = m->reserved;
  *total = m->total;
  pthread_mutex_unlock(&m->mu);
}

/* a + b and a * b, saturating: shapes come from files and configuration. */
static uint64_t add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}
static uint64_t mul(uint64_t a, uint64_t b) {
  return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

uint64_t lsmi_mem_dataset_bytes(uint64_t n_train, uint64_t n_val, uint64_t d1,
                                uint64_t d2) {
  uint64_t rows = add(n_train, n_val);
  return add(mul(mul(rows, add(d1, d2)), 4), mul(rows, 4));
}

uint64_t lsmi_mem_read_estimate(lsmi_format_t fmt, uint64_t bytes,
                                uint64_t inflate_cap) {
  switch (fmt) {
  case LSMI_FORMAT_NPZ:
  case LSMI_FORMAT_PT:
    /* The members inflated whole, then the float32 dataset beside them
     * (no larger than they are for float32 or wider members); the split
     * copy comes after the members are freed. */
    return add(bytes, mul(inflate_cap, 2));
  case LSMI_FORMAT_NPY:
  case LSMI_FORMAT_SAFETENSORS:
    /* Arrays read in place from the mapped file: the float32 dataset and
     * its split copy, each no larger than the file. */
    return mul(bytes, 3);
  case LSMI_FORMAT_CSV:
    /* A number takes two bytes of text at least and becomes a double (8
     * bytes): 4x the file, then float32 (2x) and its split copy. */
    return mul(bytes, 9);
  case LSMI_FORMAT_JSON:
    /* The whole document as a jansson tree first: a number of two bytes
     * of text costs a json_t of about 40 bytes and its array slot. */
    return mul(bytes, 40);
  default:
    return bytes;
  }
}

uint64_t lsmi_mem_job_estimate(const lsmi_dataset_rec_t *rec,
                               const lsmi_params_t *p) {
  uint64_t f32 =
      lsmi_mem_dataset_bytes(rec->n_train, rec->n_val, rec->d1, rec->d2);
  lsmi_format_t fmt = LSMI_FORMAT_UNKNOWN;
  static const lsmi_format_t formats[] = {
      LSMI_FORMAT_NPZ,         LSMI_FORMAT_NPY, LSMI_FORMAT_PT,
      LSMI_FORMAT_SAFETENSORS, LSMI_FORMAT_CSV, LSMI_FORMAT_JSON};
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
    if (strcmp(rec->format, lsmi_format_name(formats[i])) == 0)
      fmt = formats[i];
  /* A stored zip inflated to no more than its arrays: float64 at most,
   * twice the float32 dataset. */
  uint64_t read = lsmi_mem_read_estimate(fmt, rec->bytes, mul(f32, 2));
  /* Besides the fit's blocks: thread stacks and the allocator's arenas. */
  uint64_t fit = add(add(f32, lsmi_fit_memory(rec->n_train, rec->n_val, rec->d1,
                                              rec->d2, rec->classes, p)),
                     (uint64_t)16 << 20);
  return read > fit ? read : fit;
}

/* A number from the first line of a file, or 0. */
static uint64_t file_u64(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  unsigned long long v = 0;
  if (fscanf(f, "%llu", &v) != 1)
    v = 0; /* "max": no limit */
  fclose(f);
  return v;
}

uint64_t lsmi_mem_default_budget(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  uint64_t phys = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
  uint64_t cg = file_u64("/sys/fs/cgroup/memory.max"); /* cgroup v2 */
  if (cg == 0)
    cg = file_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes"); /* v1 */
  uint64_t m = cg && (phys == 0 || cg < phys) ? cg : phys;
  return m ? m / 4 * 3 : (uint64_t)4 << 30;
}

const char *lsmi_mem_format(uint64_t bytes, char *buf, size_t size) {
  static const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    u++;
  }
  if (u == 0)
    snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
  else
    snprintf(buf, size, "%.1f %s", v, units[u]);
  return buf;
}
