/*
 * quota.h — room for what a tenant stores (internal to server/): the free
 * space of the data directory's disk (--min-free-disk) and the bytes each
 * tenant may store (--tenant-quota-bytes), checked before an upload or a
 * job writes anything. Past either, the answer is LSMI_ERR_NOSPACE (507).
 *
 * A tenant stores its datasets' files and its jobs' result files (the
 * store's sums, lsmi_store_tenant_bytes). A job's results are counted
 * once it has them: a job is refused when the tenant is at its quota, not
 * for the results it may write, so a tenant may end a little past it.
 *
 * Any thread; nothing here keeps state.
 */
#ifndef LSMI_QUOTA_H
#define LSMI_QUOTA_H

#include <stdint.h>

#include "config.h"
#include "lsmi.h"
#include "store.h"

/* The space of the file system of dir into *avail (for an unprivileged
 * writer) and *total: 0, or LSMI_ERR_IO (both 0). */
int lsmi_quota_disk(const char *dir, uint64_t *avail, uint64_t *total);

/*
 * Whether tenant may store `incoming` more bytes (0 for a job): 0, or
 * LSMI_ERR_NOSPACE with err saying which limit and by how much (the disk
 * has no more than --min-free-disk free, or would keep less after them; or
 * the tenant would pass its --tenant-quota-bytes), or the store's
 * failure.
 */
int lsmi_quota_check(const lsmi_config_t *cfg, lsmi_store_t *store,
                     const char *tenant, uint64_t incoming, lsmi_error_t *err);

#endif
