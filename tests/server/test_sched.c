/*
 * test_sched.c — server/sched.c on a real libuv loop, a real SQLite store in
 * a temp directory and real small fits of lsmi_synth data: the queue and its
 * reservations, a job run to the end (summary, timings, result files),
 * cancelling queued and running jobs, a job cancelled in the store before
 * it starts, jobs that fail (dataset row gone, store failing, dataset file
 * gone), stored jobs with parameters this binary refuses, and the graceful
 * shutdown (SIGTERM): running jobs go back to queued and run again on the
 * next start. Every transition is checked where it is recorded: the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "helpers.h"
#include "lsmi_io.h"
#include "sched.h"
#include "util.h"

/* Epochs of a fit that ends at once, and of one long enough to be caught
 * running (it is always cancelled or shut down, never waited for). */
enum { FAST = 2, LONG = 10000 };

typedef struct fx {
  char dir[64];
  lsmi_config_t cfg;
  lsmi_store_t *store;
  uv_loop_t loop;
  lsmi_sched_t *s;
  int stops; /* calls of the on_stop callback */
} fx_t;

static void on_stop(void *ctx) { ((fx_t *)ctx)->stops++; }

static void path_of(const fx_t *f, const char *sub, char *out, size_t size) {
  snprintf(out, size, "%s/%s", f->dir, sub);
}

/* The synthetic dataset ds_a of tenant alice: file and row. */
static void add_dataset(fx_t *f) {
  lsmi_dataset_t *ds = NULL;
  lsmi_error_t err = {0};
  assert_int_equal(lsmi_synth(LSMI_SYNTH_GAUSSIAN, 300, 1, &ds, &err), 0);
  char path[128];
  path_of(f, "datasets/ds_a", path, sizeof path);
  assert_int_equal(lsmi_dataset_write_npz(ds, path, &err), 0);
  lsmi_dataset_rec_t rec = {.id = "ds_a",
                            .tenant = "alice",
                            .name = "a",
                            .format = "npz",
                            .sha256 = "aaaa",
                            .bytes = 1,
                            .classes = ds->classes,
                            .n_train = ds->train.n,
                            .n_val = ds->val.n,
                            .d1 = ds->d1,
                            .d2 = ds->d2,
                            .val_fraction = 0.2,
                            .created_at = 1e9};
  lsmi_dataset_destroy(ds);
  lsmi_dataset_rec_t ex;
  bool existed = true;
  assert_int_equal(lsmi_store_dataset_insert(f->store, &rec, &ex, &existed), 0);
  assert_false(existed);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/lsmi-sched-XXXXXX");
  if (f == NULL || mkdtemp(f->dir) == NULL)
    return -1;
  const char *subs[] = {"tmp", "datasets", "results"};
  char p[128];
  for (int i = 0; i < 3; i++) {
    path_of(f, subs[i], p, sizeof p);
    mkdir(p, 0700);
  }
  lsmi_limits_default(&f->cfg.limits);
  f->cfg.data_dir = f->dir;
  f->cfg.workers = 1;
  f->cfg.queue_size = 3;
  f->cfg.shutdown_timeout = 0; /* running jobs stop at once on shutdown */
  path_of(f, "lsmi.db", p, sizeof p);
  lsmi_error_t err = {0};
  if (lsmi_store_open(p, &f->store, &err) || uv_loop_init(&f->loop) ||
      lsmi_sched_create(&f->loop, &f->cfg, f->store, on_stop, f, &f->s))
    return -1;
  add_dataset(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  lsmi_sched_shutdown(f->s); /* a no-op when the test shut it down */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&f->loop);
  lsmi_sched_destroy(f->s);
  lsmi_store_close(f->store);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0 || rc != 0)
    return -1;
  free(f);
  return 0;
}

static lsmi_params_t params_of(int epochs) {
  lsmi_params_t p;
  lsmi_params_default(&p);
  p.epochs_discriminator = epochs;
  p.epochs_entropy = epochs;
  p.threads = 1;
  return p;
}

/* Stores job `id` of alice (as POST /v1/jobs does), without queueing it. */
static void store_job(fx_t *f, const char *id, const char *params_json) {
  lsmi_job_new_t nj = {id, "alice", "ds_a", params_json, "{}", 2e9, NULL, NULL};
  char existing[64];
  bool replayed = true;
  assert_int_equal(lsmi_store_job_create(f->store, &nj, existing, &replayed),
                   0);
  assert_false(replayed);
}

/* Stores job `id` of `tenant` (alice's dataset ds_a: the scheduler does
 * not check tenants) and queues it in a reserved place. */
static void add_job_of(fx_t *f, const char *tenant, const char *id,
                       int epochs) {
  bool own = false;
  lsmi_params_t p = params_of(epochs);
  json_t *pj = lsmi_codec_params_to_json(&p);
  char *text = json_dumps(pj, JSON_COMPACT);
  json_decref(pj);
  store_job(f, id, text);
  free(text);
  assert_int_equal(lsmi_sched_reserve(f->s, tenant, &own), 0);
  assert_int_equal(lsmi_sched_submit(f->s, id, tenant, "ds_a", &p), 0);
}

static void add_job(fx_t *f, const char *id, int epochs) {
  add_job_of(f, "alice", id, epochs);
}

/* The job's API object from the store (taken by the caller). */
static json_t *job(fx_t *f, const char *id, int *state) {
  json_t *j = NULL;
  assert_int_equal(lsmi_store_job_get(f->store, NULL, id, &j, state), 0);
  return j;
}

static int state_of(fx_t *f, const char *id) {
  int st = -1;
  json_decref(job(f, id, &st));
  return st;
}

static bool running_here(fx_t *f, const char *id) {
  lsmi_progress_t p;
  return lsmi_sched_progress(f->s, id, &p, NULL) == 0;
}

static bool result_file(const fx_t *f, const char *job_id, const char *split) {
  char p[160];
  snprintf(p, sizeof p, "%s/results/%s.%s", f->dir, job_id, split);
  return access(p, F_OK) == 0;
}

static bool stored_phase_is(fx_t *f, const char *id, const char *phase) {
  json_t *j = job(f, id, NULL);
  bool is = !strcmp(phase_of(j), phase);
  json_decref(j);
  return is;
}

static bool idle(fx_t *f) {
  int q, r;
  lsmi_sched_counts(f->s, &q, &r);
  return q == 0 && r == 0;
}

static void assert_counts(fx_t *f, int queued, int running) {
  int q = -1, r = -1;
  lsmi_sched_counts(f->s, &q, &r);
  assert_int_equal(q, queued);
  assert_int_equal(r, running);
}

/* Starts the scheduler with job_a (long) running and job_b (fast) queued
 * behind it: one worker. */
static void a_running_b_queued(fx_t *f) {
  assert_int_equal(lsmi_sched_start(f->s), 0);
  add_job(f, "job_a", LONG);
  add_job(f, "job_b", FAST);
  RUN_UNTIL(&f->loop, running_here(f, "job_a"));
}

static void test_reserve(void **state) {
  bool own = false;
  fx_t *f = *state;
  for (int i = 0; i < f->cfg.queue_size; i++)
    assert_int_equal(lsmi_sched_reserve(f->s, "alice", &own), 0);
  assert_int_equal(lsmi_sched_reserve(f->s, "alice", &own), LSMI_ERR_BUSY);
  lsmi_sched_unreserve(f->s, "alice"); /* a place given back is a place again */
  assert_int_equal(lsmi_sched_reserve(f->s, "alice", &own), 0);
  for (int i = 0; i < f->cfg.queue_size; i++)
    lsmi_sched_unreserve(f->s, "alice");
  assert_counts(f, 0, 0);
}

static void test_runs_a_job(void **state) {
  fx_t *f = *state;
  assert_int_equal(lsmi_sched_start(f->s), 0);
  assert_true(lsmi_sched_ready(f->s));
  add_job(f, "job_1", FAST);
  RUN_UNTIL(&f->loop, state_of(f, "job_1") == LSMI_JOB_SUCCEEDED);
  int st;
  json_t *j = job(f, "job_1", &st);
  json_t *val = json_object_get(json_object_get(j, "summary"), "val");
  assert_int_equal(json_integer_value(json_object_get(val, "n")), 60);
  assert_true(json_is_number(json_object_get(val, "S")));
  assert_true(json_is_number(
      json_object_get(json_object_get(j, "timings"), "seconds_total")));
  assert_string_equal(phase_of(j), "done");
  assert_true(json_is_string(json_object_get(j, "started_at")));
  assert_true(json_is_string(json_object_get(j, "finished_at")));
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
  json_decref(j);
  assert_true(result_file(f, "job_1", "train"));
  assert_true(result_file(f, "job_1", "val"));
  RUN_UNTIL(&f->loop, idle(f));
}

static void test_cancel_queued_and_running(void **state) {
  fx_t *f = *state;
  a_running_b_queued(f);
  assert_int_equal(state_of(f, "job_a"), LSMI_JOB_RUNNING);
  assert_counts(f, 1, 1);
  /* The tick saves a running job's progress in the store every second. */
  RUN_UNTIL(&f->loop, stored_phase_is(f, "job_a", "train"));
  bool running = true;
  assert_int_equal(lsmi_sched_cancel(f->s, "job_b", &running), 0);
  assert_false(running); /* was queued: out of the queue, the store next */
  assert_int_equal(lsmi_store_job_cancel_queued(f->store, "job_b", 3e9, false),
                   0);
  assert_int_equal(lsmi_sched_cancel(f->s, "job_b", &running),
                   LSMI_ERR_NOTFOUND);
  lsmi_progress_t p;
  bool cancel = true;
  assert_int_equal(lsmi_sched_progress(f->s, "job_a", &p, &cancel), 0);
  assert_false(cancel);
  assert_int_equal(lsmi_sched_cancel(f->s, "job_a", &running), 0);
  assert_true(running);
  assert_int_equal(lsmi_sched_progress(f->s, "job_a", &p, &cancel), 0);
  assert_true(cancel); /* until the fit notices, within a batch */
  RUN_UNTIL(&f->loop, state_of(f, "job_a") == LSMI_JOB_CANCELLED);
  assert_int_equal(state_of(f, "job_b"), LSMI_JOB_CANCELLED);
  assert_false(result_file(f, "job_a", "val"));
  assert_int_equal(lsmi_sched_progress(f->s, "job_b", &p, NULL),
                   LSMI_ERR_NOTFOUND);
  RUN_UNTIL(&f->loop, idle(f));
  assert_int_equal(lsmi_sched_cancel(f->s, "job_nope", &running),
                   LSMI_ERR_NOTFOUND);
}

/* A job cancelled in the store while still in the scheduler's queue (the
 * HTTP thread's race with dispatch) never starts: the store decides. */
static void test_cancelled_in_store_never_starts(void **state) {
  fx_t *f = *state;
  a_running_b_queued(f);
  assert_int_equal(lsmi_store_job_cancel_queued(f->store, "job_b", 3e9, false),
                   0);
  bool running;
  assert_int_equal(lsmi_sched_cancel(f->s, "job_a", &running), 0);
  RUN_UNTIL(&f->loop, state_of(f, "job_a") == LSMI_JOB_CANCELLED);
  RUN_UNTIL(&f->loop, idle(f));
  json_t *j = job(f, "job_b", NULL);
  assert_true(json_is_null(json_object_get(j, "started_at")));
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 0);
  json_decref(j);
}

/* Runs sql on the store's file through a second connection. */
static void exec_other(const fx_t *f, const char *sql) {
  char p[128];
  path_of(f, "lsmi.db", p, sizeof p);
  sql_exec(p, sql);
}

/* Runs job_1 to failure and checks the error the store recorded. */
static void assert_fails(fx_t *f, int http, const char *title,
                         const char *detail) {
  RUN_UNTIL(&f->loop, state_of(f, "job_1") == LSMI_JOB_FAILED);
  json_t *j = job(f, "job_1", NULL);
  json_t *e = json_object_get(j, "error");
  assert_int_equal(json_integer_value(json_object_get(e, "status")), http);
  assert_string_equal(json_string_value(json_object_get(e, "title")), title);
  const char *d = json_string_value(json_object_get(e, "detail"));
  assert_non_null(d);
  if (strstr(d, detail) == NULL)
    fail_msg("detail '%s' lacks '%s'", d, detail);
  assert_true(json_is_null(json_object_get(j, "summary")));
  json_decref(j);
  RUN_UNTIL(&f->loop, idle(f));
  assert_false(result_file(f, "job_1", "val"));
}

/* Queues job_1, then runs sql on the store behind the scheduler's back. */
static void queue_then(fx_t *f, const char *sql) {
  assert_int_equal(lsmi_sched_start(f->s), 0);
  add_job(f, "job_1", FAST);
  exec_other(f, sql);
}

static void test_dataset_row_gone(void **state) {
  fx_t *f = *state;
  queue_then(f, "DELETE FROM datasets WHERE id = 'ds_a'");
  assert_fails(f, 422, "ERR_MISSING", "no longer exists");
}

/* The store fails to read the dataset's row: nothing is known to be wrong
 * with the job, so it stays queued (not failed, not "running" with no fit)
 * and starts at a tick once the store answers again. */
static void test_dataset_row_unreadable(void **state) {
  fx_t *f = *state;
  queue_then(f, "ALTER TABLE datasets RENAME TO datasets_gone");
  double until = lsmi_util_mono() + 2.5;
  while (lsmi_util_mono() < until) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_int_equal(state_of(f, "job_1"), LSMI_JOB_QUEUED);
  assert_counts(f, 1, 0);
  exec_other(f, "ALTER TABLE datasets_gone RENAME TO datasets");
  RUN_UNTIL(&f->loop, state_of(f, "job_1") == LSMI_JOB_SUCCEEDED);
}

static void test_dataset_file_gone(void **state) {
  fx_t *f = *state;
  char p[128];
  path_of(f, "datasets/ds_a", p, sizeof p);
  assert_int_equal(unlink(p), 0);
  assert_int_equal(lsmi_sched_start(f->s), 0);
  add_job(f, "job_1", FAST);
  assert_fails(f, 500, "ERR_IO", "");
}

/* Makes the scheduler again with the fixture's configuration as the test
 * changed it. */
static void remake(fx_t *f) {
  lsmi_sched_destroy(f->s);
  assert_int_equal(
      lsmi_sched_create(&f->loop, &f->cfg, f->store, on_stop, f, &f->s), 0);
}

/* When a job started, from the store (0 when it has not). */
static double started_at(fx_t *f, const char *id) {
  json_t *j = job(f, id, NULL);
  const char *t = json_string_value(json_object_get(j, "started_at"));
  double v = 0;
  if (t) { /* ISO 8601: the order of the strings is the order of times */
    char hms[16];
    snprintf(hms, sizeof hms, "%.12s", t + 11); /* HH:MM:SS.mmm */
    int h, m;
    double sec;
    if (sscanf(hms, "%d:%d:%lf", &h, &m, &sec) == 3)
      v = h * 3600.0 + m * 60.0 + sec + 1.0;
  }
  json_decref(j);
  return v;
}

/* One tenant cannot fill the queue: past its share, its reserve is
 * refused (saying it is its own share), while another tenant still gets a
 * place; and jobs start round robin across the tenants, not in the order
 * they came. */
static void test_tenants_fair(void **state) {
  fx_t *f = *state;
  f->cfg.queue_size = 6;
  f->cfg.tenant_queue_size = 3;
  remake(f);
  assert_int_equal(lsmi_sched_tenant_limit(f->s), 3);
  assert_int_equal(lsmi_sched_start(f->s), 0);
  add_job_of(f, "alice", "job_a0", LONG); /* holds the one worker */
  RUN_UNTIL(&f->loop, running_here(f, "job_a0"));
  add_job_of(f, "alice", "job_a1", FAST);
  add_job_of(f, "alice", "job_a2", FAST);
  add_job_of(f, "alice", "job_a3", FAST);
  bool own = false;
  assert_int_equal(lsmi_sched_reserve(f->s, "alice", &own), LSMI_ERR_BUSY);
  assert_true(own);
  add_job_of(f, "bob", "job_b1", FAST);
  add_job_of(f, "bob", "job_b2", FAST);
  bool running;
  assert_int_equal(lsmi_sched_cancel(f->s, "job_a0", &running), 0);
  const char *ids[] = {"job_a1", "job_a2", "job_a3", "job_b1", "job_b2"};
  for (int i = 0; i < 5; i++)
    RUN_UNTIL(&f->loop, state_of(f, ids[i]) == LSMI_JOB_SUCCEEDED);
  /* alice started a0 last, so bob goes first, then they alternate. */
  assert_true(started_at(f, "job_b1") <= started_at(f, "job_a1"));
  assert_true(started_at(f, "job_a1") <= started_at(f, "job_b2"));
  assert_true(started_at(f, "job_b2") <= started_at(f, "job_a2"));
  assert_true(started_at(f, "job_a2") <= started_at(f, "job_a3"));
}

/* Two workers but memory for one fit: the second starts when the first
 * has ended and given its memory back. */
static void test_memory_budget(void **state) {
  fx_t *f = *state;
  lsmi_dataset_rec_t rec;
  assert_int_equal(lsmi_store_dataset_get(f->store, NULL, "ds_a", &rec), 0);
  lsmi_params_t p = params_of(LONG);
  uint64_t one = lsmi_mem_job_estimate(&rec, &p); /* LONG's is the larger */
  f->cfg.workers = 2;
  f->cfg.max_memory = one + one / 2;
  f->cfg.max_job_memory = f->cfg.max_memory;
  remake(f);
  assert_int_equal(lsmi_sched_start(f->s), 0);
  add_job(f, "job_1", LONG);
  add_job(f, "job_2", FAST);
  RUN_UNTIL(&f->loop, running_here(f, "job_1"));
  double until = lsmi_util_mono() + 1.5;
  while (lsmi_util_mono() < until) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_int_equal(state_of(f, "job_2"), LSMI_JOB_QUEUED);
  assert_counts(f, 1, 1);
  uint64_t reserved, total;
  lsmi_mem_usage(lsmi_sched_mem(f->s), &reserved, &total);
  assert_true(reserved == one && total == f->cfg.max_memory);
  bool running;
  assert_int_equal(lsmi_sched_cancel(f->s, "job_1", &running), 0);
  RUN_UNTIL(&f->loop, state_of(f, "job_2") == LSMI_JOB_SUCCEEDED);
  RUN_UNTIL(&f->loop, idle(f));
  lsmi_mem_usage(lsmi_sched_mem(f->s), &reserved, &total);
  assert_true(reserved == 0);
  /* A job above --max-job-memory (lowered since it was queued) fails with
   * a message that says so, instead of waiting forever. */
  f->cfg.max_job_memory = one / 2;
  add_job(f, "job_3", FAST);
  RUN_UNTIL(&f->loop, state_of(f, "job_3") == LSMI_JOB_FAILED);
  json_t *j = job(f, "job_3", NULL);
  const char *d =
      json_string_value(json_object_get(json_object_get(j, "error"), "detail"));
  assert_non_null(strstr(d, "--max-job-memory"));
  json_decref(j);
}

/* job_a running, job_b queued; the store then refuses every end (a full
 * disk, here a trigger) and job_a is cancelled: its end is parked. */
static void end_refused(fx_t *f) {
  a_running_b_queued(f);
  exec_other(f, "CREATE TRIGGER full BEFORE UPDATE OF state ON jobs WHEN "
                "NEW.state != 'running' BEGIN SELECT RAISE(ABORT, "
                "'database or disk is full'); END;");
  assert_int_equal(lsmi_store_job_request_cancel(f->store, "job_a"), 0);
  bool running;
  assert_int_equal(lsmi_sched_cancel(f->s, "job_a", &running), 0);
  RUN_UNTIL(&f->loop, lsmi_sched_ended(f->s, "job_a", NULL) == 0);
}

/* The store refuses a job's end (a full disk, here a trigger): the job
 * leaves the running list for the ended list; its true end is what the
 * scheduler reports, the metrics count it there, and the tick writes it
 * once the store takes it again. */
static void test_end_not_recorded(void **state) {
  fx_t *f = *state;
  end_refused(f);
  assert_int_equal(state_of(f, "job_a"), LSMI_JOB_RUNNING); /* the store's */
  lsmi_sched_end_t end;
  assert_int_equal(lsmi_sched_ended(f->s, "job_a", &end), 0);
  assert_int_equal(end.state, LSMI_JOB_CANCELLED);
  lsmi_sched_end_free(&end);
  int64_t by[LSMI_JOB_STATES];
  assert_int_equal(lsmi_sched_unrecorded(f->s, by), 1);
  assert_int_equal(by[LSMI_JOB_CANCELLED], 1);
  assert_false(running_here(f, "job_a"));
  /* job_b ran meanwhile; its end is refused too. */
  RUN_UNTIL(&f->loop, lsmi_sched_ended(f->s, "job_b", NULL) == 0);
  assert_int_equal(lsmi_sched_unrecorded(f->s, by), 2);
  assert_int_equal(by[LSMI_JOB_SUCCEEDED], 1);
  exec_other(f, "DROP TRIGGER full");
  RUN_UNTIL(&f->loop, state_of(f, "job_a") == LSMI_JOB_CANCELLED);
  RUN_UNTIL(&f->loop, state_of(f, "job_b") == LSMI_JOB_SUCCEEDED);
  assert_int_equal(lsmi_sched_unrecorded(f->s, by), 0);
  assert_int_equal(lsmi_sched_ended(f->s, "job_a", NULL), LSMI_ERR_NOTFOUND);
}

/* The daemon stops before the store takes the end: the store says
 * running, and the next start makes that true again: queued (or
 * cancelled, for a job whose cancel was recorded). */
static void test_end_unrecorded_at_shutdown(void **state) {
  fx_t *f = *state;
  end_refused(f);
  lsmi_sched_shutdown(f->s);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(state_of(f, "job_a"), LSMI_JOB_RUNNING);
  exec_other(f, "DROP TRIGGER full");
  remake(f);
  assert_int_equal(lsmi_sched_start(f->s), 0);
  assert_int_equal(state_of(f, "job_a"), LSMI_JOB_CANCELLED);
  RUN_UNTIL(&f->loop, state_of(f, "job_b") == LSMI_JOB_SUCCEEDED);
}

/* Queued jobs the store holds are queued at start, except those whose
 * parameters this binary refuses (they stay in the store, logged). */
static void test_start_loads_the_queue(void **state) {
  fx_t *f = *state;
  lsmi_params_t p = params_of(FAST);
  json_t *pj = lsmi_codec_params_to_json(&p);
  char *text = json_dumps(pj, JSON_COMPACT);
  json_decref(pj);
  store_job(f, "job_1", text);
  store_job(f, "job_bad", "{\"hidden\": -5}");
  store_job(f, "job_run", text);
  free(text);
  assert_int_equal(lsmi_store_job_start(f->store, "job_run", 3e9), 0);
  assert_int_equal(lsmi_sched_start(f->s), 0); /* job_run: a crash's */
  assert_counts(f, 2, 0);
  RUN_UNTIL(&f->loop, state_of(f, "job_1") == LSMI_JOB_SUCCEEDED);
  RUN_UNTIL(&f->loop, state_of(f, "job_run") == LSMI_JOB_SUCCEEDED);
  assert_int_equal(state_of(f, "job_bad"), LSMI_JOB_QUEUED);
}

static void test_start_store_fails(void **state) {
  fx_t *f = *state;
  exec_other(f, "ALTER TABLE jobs RENAME TO jobs_gone");
  assert_int_equal(lsmi_sched_start(f->s), LSMI_ERR_IO);
}

/* SIGTERM: no new jobs, the HTTP side stopped, the queue dropped (it stays
 * in the store), the running job stopped and queued again; the next start
 * runs both, the interrupted one for the second time. */
static void test_shutdown_requeues(void **state) {
  bool own = false;
  fx_t *f = *state;
  a_running_b_queued(f);
  raise(SIGTERM);
  RUN_UNTIL(&f->loop, lsmi_sched_draining(f->s));
  assert_int_equal(f->stops, 1);
  assert_false(lsmi_sched_ready(f->s));
  assert_int_equal(lsmi_sched_reserve(f->s, "alice", &own), LSMI_ERR_SHUTDOWN);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* all closed */
  assert_counts(f, 0, 0);
  int st;
  json_t *j = job(f, "job_a", &st);
  assert_int_equal(st, LSMI_JOB_QUEUED);
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
  assert_true(json_is_null(json_object_get(j, "finished_at")));
  assert_string_equal(phase_of(j), "queued");
  json_decref(j);
  assert_int_equal(state_of(f, "job_b"), LSMI_JOB_QUEUED);

  lsmi_sched_destroy(f->s); /* the next start of the daemon */
  assert_int_equal(
      lsmi_sched_create(&f->loop, &f->cfg, f->store, on_stop, f, &f->s), 0);
  assert_int_equal(lsmi_sched_start(f->s), 0);
  assert_counts(f, 2, 0);
  RUN_UNTIL(&f->loop, running_here(f, "job_a"));
  j = job(f, "job_a", NULL);
  assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 2);
  json_decref(j);
  bool running;
  assert_int_equal(lsmi_sched_cancel(f->s, "job_a", &running), 0);
  RUN_UNTIL(&f->loop, state_of(f, "job_b") == LSMI_JOB_SUCCEEDED);
  assert_int_equal(state_of(f, "job_a"), LSMI_JOB_CANCELLED);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_reserve),
      T(test_runs_a_job),
      T(test_cancel_queued_and_running),
      T(test_cancelled_in_store_never_starts),
      T(test_dataset_row_gone),
      T(test_dataset_row_unreadable),
      T(test_dataset_file_gone),
      T(test_start_loads_the_queue),
      T(test_start_store_fails),
      T(test_shutdown_requeues),
      T(test_tenants_fair),
      T(test_memory_budget),
      T(test_end_not_recorded),
      T(test_end_unrecorded_at_shutdown),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
