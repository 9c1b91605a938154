/*
 * test_datadir.c — server/datadir.c on a temp data directory: the lock
 * (a second taker is refused with the holder's pid; released on unlock),
 * pending uploads and deletions finished at a start (an upload whose row
 * was committed keeps its file), the files the store does not know found
 * and named, never removed, tmp/ swept, a deleted job's files removed and
 * the cached orders of unknown jobs swept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "dsrec.h"
#include "helpers.h"
#include "store.h"

typedef struct fx {
  char dir[64];
  lsmi_store_t *s;
} fx_t;

static void touch(const fx_t *f, const char *rel) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", f->dir, rel);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  fputs("bytes", fp);
  fclose(fp);
}

static bool exists(const fx_t *f, const char *rel) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", f->dir, rel);
  return access(path, F_OK) == 0;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/lsmi-datadir-XXXXXX");
  if (mkdtemp(f->dir) == NULL || lsmi_datadir_make(f->dir, NULL))
    return -1;
  char cache[128];
  snprintf(cache, sizeof cache, "%s/cache", f->dir);
  if (mkdir(cache, 0700))
    return -1;
  char path[128];
  snprintf(path, sizeof path, "%s/lsmi.db", f->dir);
  if (lsmi_store_open(path, &f->s, NULL))
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  lsmi_store_close(f->s);
  int rc = remove_tree(f->dir);
  free(f);
  return rc;
}

static lsmi_dataset_rec_t rec(const char *id) {
  char sha[65];
  snprintf(sha, sizeof sha, "sha-%s", id);
  return dsrec_make(id, "t", sha, (dsrec_sizes_t){.classes = 2});
}

/* A job of dataset ds in the store, run to success. */
static void add_finished_job(fx_t *f, const char *id, const char *ds) {
  lsmi_job_new_t j = {id, "t", ds, "{}", "{}", 1.0, NULL, NULL};
  char existing[64];
  bool replayed;
  assert_int_equal(lsmi_store_job_create(f->s, &j, existing, &replayed), 0);
  assert_int_equal(lsmi_store_job_start(f->s, id, 2.0), 0);
  assert_int_equal(lsmi_store_job_finish(f->s, id, LSMI_JOB_SUCCEEDED, 3.0,
                                         NULL, NULL, NULL, NULL, 10),
                   0);
}

/* A deleted job's files go with lsmi_datadir_remove_job, which then
 * forgets the entry; the cached orders of jobs the store does not know
 * are swept, those of known jobs kept. */
static void test_remove_job_and_cache(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t r = rec("ds_a"), old;
  bool existed;
  assert_int_equal(lsmi_store_dataset_insert(f->s, &r, &old, &existed), 0);
  add_finished_job(f, "job_a", "ds_a");
  add_finished_job(f, "job_b", "ds_a");
  touch(f, "results/job_a.train");
  touch(f, "results/job_a.val");
  touch(f, "cache/job_a.val.r.asc");
  touch(f, "cache/job_b.val.r.asc");
  touch(f, "cache/job_gone.val.r.asc");
  assert_int_equal(lsmi_store_job_delete(f->s, "t", "job_a", NULL), 0);
  assert_int_equal(lsmi_datadir_remove_job(f->dir, f->s, "job_a"), 0);
  assert_false(exists(f, "results/job_a.train"));
  assert_false(exists(f, "results/job_a.val"));
  assert_false(exists(f, "cache/job_a.val.r.asc"));
  lsmi_pending_t *items = NULL;
  size_t n = 1;
  assert_int_equal(lsmi_store_pending_list(f->s, &items, &n), 0);
  assert_int_equal(n, 0);
  int removed = 0;
  assert_int_equal(lsmi_datadir_clean_cache(f->dir, f->s, &removed), 0);
  assert_int_equal(removed, 1);
  assert_false(exists(f, "cache/job_gone.val.r.asc"));
  assert_true(exists(f, "cache/job_b.val.r.asc"));
  lsmi_datadir_unknown_t u;
  assert_int_equal(lsmi_datadir_scan(f->dir, f->s, &u, NULL), 0);
  assert_int_equal(u.datasets + u.results, 0);
}

static void test_lock(void **state) {
  fx_t *f = *state;
  int a = -1, b = -1;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_datadir_lock(f->dir, &a, &err), LSMI_OK);
  assert_true(a >= 0);
  assert_int_equal(lsmi_datadir_lock(f->dir, &b, &err), LSMI_ERR_BUSY);
  assert_int_equal(b, -1);
  char pid[32];
  snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
  assert_non_null(strstr(err.message, pid));
  assert_non_null(strstr(err.message, "lsmi.lock"));
  lsmi_datadir_unlock(a);
  assert_int_equal(lsmi_datadir_lock(f->dir, &b, &err), LSMI_OK);
  lsmi_datadir_unlock(b);
  lsmi_datadir_unlock(-1); /* a no-op */
}

static void test_pending(void **state) {
  fx_t *f = *state;
  /* An upload never acknowledged, one whose row made it, a deletion. */
  touch(f, "datasets/ds_half");
  touch(f, "datasets/ds_done");
  touch(f, "datasets/ds_gone");
  assert_int_equal(lsmi_store_pending_add(f->s, "upload", "ds_half"), 0);
  assert_int_equal(lsmi_store_pending_add(f->s, "upload", "ds_done"), 0);
  lsmi_dataset_rec_t r = rec("ds_done"), old;
  bool existed = true;
  assert_int_equal(lsmi_store_dataset_insert(f->s, &r, &old, &existed), 0);
  assert_false(existed);
  r = rec("ds_gone");
  assert_int_equal(lsmi_store_dataset_insert(f->s, &r, &old, &existed), 0);
  /* A finished job of ds_gone goes with it: its results and orders too. */
  add_finished_job(f, "job_d", "ds_gone");
  touch(f, "results/job_d.train");
  touch(f, "results/job_d.val");
  touch(f, "cache/job_d.val.s.desc");
  touch(f, "cache/job_dd.val.s.desc"); /* another job's, by its prefix */
  lsmi_idlist_t jobs = LSMI_IDLIST_INIT;
  assert_int_equal(lsmi_store_dataset_delete(f->s, "t", "ds_gone", true, &jobs),
                   0);
  assert_int_equal(jobs.n, 1);
  lsmi_idlist_free(&jobs);
  lsmi_pending_t *items = NULL;
  size_t n = 0;
  assert_int_equal(lsmi_store_pending_list(f->s, &items, &n), 0);
  /* The insert took ds_done's entry with it; the delete added two. */
  assert_int_equal(n, 3);
  free(items);
  int done = 0;
  assert_int_equal(lsmi_datadir_finish_pending(f->dir, f->s, &done), 0);
  assert_int_equal(done, 3);
  assert_false(exists(f, "datasets/ds_half"));
  assert_false(exists(f, "datasets/ds_gone"));
  assert_true(exists(f, "datasets/ds_done"));
  assert_false(exists(f, "results/job_d.train"));
  assert_false(exists(f, "results/job_d.val"));
  assert_false(exists(f, "cache/job_d.val.s.desc"));
  assert_true(exists(f, "cache/job_dd.val.s.desc"));
  assert_int_equal(lsmi_store_pending_list(f->s, &items, &n), 0);
  assert_int_equal(n, 0);
  assert_null(items);
}

static void test_unknown_files_stay(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t r = rec("ds_known"), old;
  bool existed;
  assert_int_equal(lsmi_store_dataset_insert(f->s, &r, &old, &existed), 0);
  lsmi_job_new_t j = {"job_k", "t", "ds_known", "{}", "{}", 1.0, NULL, NULL};
  char existing[64];
  bool replayed;
  assert_int_equal(lsmi_store_job_create(f->s, &j, existing, &replayed), 0);
  touch(f, "datasets/ds_known");
  touch(f, "results/job_k.val");
  touch(f, "results/job_k.train.idx"); /* any suffix of a known job */
  lsmi_datadir_unknown_t u;
  assert_int_equal(lsmi_datadir_scan(f->dir, f->s, &u, NULL), 0);
  assert_int_equal(u.datasets + u.results, 0);
  touch(f, "datasets/ds_stranger");
  touch(f, "datasets/.hidden");
  touch(f, "results/job_x.val");
  assert_int_equal(lsmi_datadir_scan(f->dir, f->s, &u, NULL), 0);
  assert_int_equal(u.datasets, 2);
  assert_int_equal(u.results, 1);
  assert_int_equal(u.nfirst, 3);
  lsmi_error_t err = {0};
  lsmi_datadir_unknown_message(f->dir, &u, &err);
  assert_non_null(strstr(err.message, "datasets/ds_stranger"));
  assert_non_null(strstr(err.message, "results/job_x.val"));
  assert_non_null(strstr(err.message, "Nothing was removed"));
  assert_non_null(strstr(err.message, "rebuild-store"));
  assert_true(exists(f, "datasets/ds_stranger"));
  assert_true(exists(f, "results/job_x.val"));
}

static void test_clean_tmp(void **state) {
  fx_t *f = *state;
  touch(f, "tmp/.upload.tmp.Ab12Cd");
  touch(f, "tmp/.job_1.val.tmp.Xy");
  int removed = 0;
  lsmi_datadir_clean_tmp(f->dir, &removed);
  assert_int_equal(removed, 2);
  char path[128];
  snprintf(path, sizeof path, "%s/tmp", f->dir);
  assert_int_equal(count_entries(path), 0);
}

static void test_result_job(void **state) {
  (void)state;
  char job[64];
  assert_int_equal(lsmi_datadir_result_job("job_1.val", job), 0);
  assert_string_equal(job, "job_1");
  assert_int_equal(lsmi_datadir_result_job("job_2", job), 0);
  assert_string_equal(job, "job_2");
  assert_int_not_equal(lsmi_datadir_result_job(".hidden", job), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_lock),      T(test_pending),    T(test_unknown_files_stay),
      T(test_clean_tmp), T(test_result_job), T(test_remove_job_and_cache),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
