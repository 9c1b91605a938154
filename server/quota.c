/*
 * quota.c — the free space of the data directory's disk and the bytes of
 * each tenant, against --min-free-disk and --tenant-quota-bytes (see
 * quota.h).
 */
#include <sys/statvfs.h>

#include "memory.h"
#include "quota.h"

int lsmi_quota_disk(const char *dir, uint64_t *avail, uint64_t *total) {
  struct statvfs v;
  *avail = *total = 0;
  if (statvfs(dir, &v) != 0)
    return LSMI_ERR_IO;
  *avail = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
  *total = (uint64_t)v.f_blocks * (uint64_t)v.f_frsize;
  return LSMI_OK;
}

int lsmi_quota_check(const lsmi_config_t *cfg, lsmi_store_t *store,
                     const char *tenant, uint64_t incoming, lsmi_error_t *err) {
  char a[32], b[32], c[32];
  uint64_t avail = 0, total = 0;
  if (lsmi_quota_disk(cfg->data_dir, &avail, &total) == LSMI_OK &&
      (avail <= cfg->min_free_disk || avail - cfg->min_free_disk < incoming))
    return lsmi_error_set(
        err, LSMI_ERR_NOSPACE, NULL,
        "the disk of the service's data is full: %s free, of which "
        "--min-free-disk keeps %s%s%s; ask its operator for room",
        lsmi_mem_format(avail, a, sizeof a),
        lsmi_mem_format(cfg->min_free_disk, b, sizeof b),
        incoming ? ", too little for these " : "",
        incoming ? lsmi_mem_format(incoming, c, sizeof c) : "");
  if (cfg->tenant_quota_bytes == 0)
    return LSMI_OK;
  uint64_t used = 0;
  int st = lsmi_store_tenant_bytes(store, tenant, &used);
  if (st)
    return lsmi_error_set(err, st, NULL, "the store failed");
  if (used < cfg->tenant_quota_bytes &&
      incoming <= cfg->tenant_quota_bytes - used)
    return LSMI_OK;
  return lsmi_error_set(
      err, LSMI_ERR_NOSPACE, NULL,
      "you store %s of your quota of %s (--tenant-quota-bytes)%s%s: delete "
      "datasets or jobs you no longer need",
      lsmi_mem_format(used, a, sizeof a),
      lsmi_mem_format(cfg->tenant_quota_bytes, b, sizeof b),
      incoming ? "; no room for these " : "",
      incoming ? lsmi_mem_format(incoming, c, sizeof c) : "");
}
