/*
 * memory.h — the daemon's memory budget: what running fits and the checks
 * of uploads may hold together (--max-memory), and the estimates they are
 * admitted by (--max-job-memory bounds one of them).
 *
 * A fit is admitted when it is submitted (POST /v1/jobs answers 422 when
 * its estimate exceeds --max-job-memory) and again when the scheduler
 * would start it: it starts only once its estimate fits what is left of
 * --max-memory, and holds that reservation until it ends. The check of an
 * upload reserves its own estimate while it reads the file, waiting up to
 * --retry-after seconds for memory to free, and answers 503 with
 * Retry-After when none does.
 *
 * Owner and lock: any thread; the counters are guarded by mem.mu, a leaf
 * lock held for a few instructions (the release callback runs after it is
 * dropped).
 */
#ifndef LSMI_MEMORY_H
#define LSMI_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include "lsmi.h"
#include "lsmi_io.h"
#include "store.h"

typedef struct lsmi_mem lsmi_mem_t;

/* A budget of `total` bytes (0: unlimited; reservations are still
 * counted). *out taken by the caller: 0 or LSMI_ERR_NOMEM. */
int lsmi_mem_create(uint64_t total, lsmi_mem_t **out);
/* NULL is a no-op. */
void lsmi_mem_destroy(lsmi_mem_t *m);

/*
 * Reserves n bytes: true when they fit what is left, waiting up to
 * `timeout` seconds for releases (0: not at all). A request larger than
 * the whole budget is never granted.
 */
bool lsmi_mem_reserve(lsmi_mem_t *m, uint64_t n, double timeout);
/* Gives n reserved bytes back and calls the release callback. */
void lsmi_mem_release(lsmi_mem_t *m, uint64_t n);
/* fn(ctx) after every release, on the releasing thread, with no lock held
 * (the scheduler wakes its loop with it). Set before other threads start. */
void lsmi_mem_on_release(lsmi_mem_t *m, void (*fn)(void *ctx), void *ctx);
/* The bytes reserved now and the budget (0: unlimited). */
void lsmi_mem_usage(lsmi_mem_t *m, uint64_t *reserved, uint64_t *total);

/* The float32 features and int32 labels of a dataset of this shape. */
uint64_t lsmi_mem_dataset_bytes(uint64_t n_train, uint64_t n_val, uint64_t d1,
                                uint64_t d2);

/*
 * The peak memory of reading and checking a file of `bytes` bytes in
 * format fmt with lsmi_dataset_read, when a zip's members may inflate to
 * at most `inflate_cap` bytes: the mapped file, the arrays a reader makes
 * (inflated members, parsed numbers), the float32 dataset and the copy a
 * val split makes. Exact enough for float32 or wider features; narrower
 * ones (uint8, float16) widen to float32 and may take more.
 */
uint64_t lsmi_mem_read_estimate(lsmi_format_t fmt, uint64_t bytes,
                                uint64_t inflate_cap);

/*
 * The peak memory of a job on dataset rec with params p (p->threads as the
 * job will run them): reading its file again, then the float32 dataset and
 * the fit (lsmi_fit_memory), whichever is larger.
 */
uint64_t lsmi_mem_job_estimate(const lsmi_dataset_rec_t *rec,
                               const lsmi_params_t *p);

/* The budget the machine allows: three quarters of the physical memory, or
 * of the cgroup's memory.max when that is lower (containers). */
uint64_t lsmi_mem_default_budget(void);

/* "1.5 GiB", "512 MiB", "12 KiB" into buf. */
const char *lsmi_mem_format(uint64_t bytes, char *buf, size_t size);

#endif
