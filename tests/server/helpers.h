/*
 * helpers.h — what several server tests share (include after <cmocka.h>):
 * SQL run on a store's file through a second connection, to break the
 * store under the daemon as a failing disk or an operator would; the
 * entries of a directory, and its removal; a job's progress phase; a
 * libuv loop run until a condition holds; and a job's rows over a table of
 * columns.
 */
#ifndef LSMI_TESTS_SERVER_HELPERS_H
#define LSMI_TESTS_SERVER_HELPERS_H

#include <dirent.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "lsmi.h"
#include "util.h"

static inline void sql_exec(const char *db_path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* Removes a test's temp directory and all it holds: 0 or -1. */
static inline int remove_tree(const char *dir) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Entries of the directory `path`, . and .. aside; -1 when it is not
 * there. */
static inline int count_entries(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL)
    return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

/* The progress phase of a job's API object ("" when it has none). */
static inline const char *phase_of(const json_t *job) {
  const char *ph = json_string_value(
      json_object_get(json_object_get(job, "progress"), "phase"));
  return ph ? ph : "";
}

/* Runs the loop until cond holds, failing after a minute. */
#define RUN_UNTIL(loop, cond)                                                  \
  do {                                                                         \
    double until_ = lsmi_util_mono() + 60;                                     \
    while (!(cond)) {                                                          \
      if (lsmi_util_mono() > until_)                                           \
        fail_msg("timed out waiting for %s", #cond);                           \
      uv_run((loop), UV_RUN_NOWAIT);                                           \
      usleep(1000);                                                            \
    }                                                                          \
  } while (0)

/* The rows of a result (an lsmi_rows_t) over n_ labels y_ and a table
 * cols_ of nine columns of n_ values (a double [9][n_]), in the order of
 * lsmi_rows_t: r, u1, u2, s, i1, i2, i12, h1, h2. Both are borrowed; the
 * standard deviations are NULL. */
#define ROWS_OVER(n_, y_, cols_)                                               \
  ((lsmi_rows_t){.n = (n_),                                                    \
                 .y = (y_),                                                    \
                 .r = (cols_)[0],                                              \
                 .u1 = (cols_)[1],                                             \
                 .u2 = (cols_)[2],                                             \
                 .s = (cols_)[3],                                              \
                 .i1 = (cols_)[4],                                             \
                 .i2 = (cols_)[5],                                             \
                 .i12 = (cols_)[6],                                            \
                 .h1 = (cols_)[7],                                             \
                 .h2 = (cols_)[8]})

#endif
