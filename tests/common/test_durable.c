/*
 * test_durable.c — common/durable.c: a file appears whole under its name or
 * not at all, and no temp file is left behind on any path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"

static char dir[256];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/lsmi-durable-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Entries of d other than . and .. */
static int entries(const char *d) {
  DIR *h = opendir(d);
  assert_non_null(h);
  int n = 0;
  for (struct dirent *e; (e = readdir(h)) != NULL;)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(h);
  return n;
}

static void slurp(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t n = fread(buf, 1, len - 1, f);
  buf[n] = '\0';
  fclose(f);
}

static void test_commit_replaces_whole(void **state) {
  (void)state;
  char path[300], buf[64];
  snprintf(path, sizeof path, "%s/out.txt", dir);
  FILE *old = fopen(path, "w");
  assert_non_null(old);
  fputs("old content", old);
  fclose(old);

  lsmi_durable_t d = LSMI_DURABLE_INIT;
  assert_int_equal(lsmi_durable_begin(&d, NULL, path, 0640), 0);
  /* The temp file sits beside the final one under a hidden, random name. */
  assert_non_null(strstr(d.tmp, "/.out.txt.tmp."));
  assert_null(strstr(d.tmp, "XXXXXX"));
  assert_int_equal(lsmi_durable_write(&d, "new ", 4), 0);
  /* Until the commit, readers see the old file. */
  slurp(path, buf, sizeof buf);
  assert_string_equal(buf, "old content");
  FILE *f = lsmi_durable_file(&d);
  assert_non_null(f);
  assert_ptr_equal(lsmi_durable_file(&d), f);
  fprintf(f, "content %d", 2);
  assert_int_equal(lsmi_durable_commit(&d, path), 0);
  assert_int_equal(d.fd, -1);
  slurp(path, buf, sizeof buf);
  assert_string_equal(buf, "new content 2");
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640);
  assert_int_equal(entries(dir), 1); /* no temp left */
  lsmi_durable_abort(&d);            /* a no-op once committed */
  assert_int_equal(entries(dir), 1);
  unlink(path);
}

static void test_abort_leaves_nothing(void **state) {
  (void)state;
  char path[300];
  snprintf(path, sizeof path, "%s/never.bin", dir);
  lsmi_durable_t d = LSMI_DURABLE_INIT;
  /* Not open: nothing happens (in particular fd 0 stays open). */
  int fd0 = fcntl(0, F_GETFD);
  lsmi_durable_abort(&d);
  assert_int_equal(fcntl(0, F_GETFD), fd0);
  assert_int_equal(lsmi_durable_begin(&d, NULL, path, 0644), 0);
  assert_int_equal(lsmi_durable_write(&d, "x", 1), 0);
  assert_non_null(lsmi_durable_file(&d));
  lsmi_durable_abort(&d);
  assert_int_equal(entries(dir), 0);
  assert_int_equal(access(path, F_OK), -1);
}

static void test_tmpdir_and_errors(void **state) {
  (void)state;
  char tmpdir[300], final[300], missing[300];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", dir);
  assert_int_equal(mkdir(tmpdir, 0700), 0);
  snprintf(final, sizeof final, "%s/data.bin", dir);
  lsmi_durable_t d = LSMI_DURABLE_INIT;
  /* The temp in a directory of the caller's, the name given later. */
  assert_int_equal(lsmi_durable_begin(&d, tmpdir, "upload", 0600), 0);
  assert_int_equal(strncmp(d.tmp, tmpdir, strlen(tmpdir)), 0);
  assert_int_equal(lsmi_durable_write(&d, "abc", 3), 0);
  assert_int_equal(lsmi_durable_commit(&d, final), 0);
  assert_int_equal(entries(tmpdir), 0);
  assert_int_equal(access(final, F_OK), 0);
  /* A directory that does not exist: the errno, negated. */
  snprintf(missing, sizeof missing, "%s/no/such/file", dir);
  assert_int_equal(lsmi_durable_begin(&d, NULL, missing, 0644), -ENOENT);
  assert_int_equal(d.fd, -1);
  lsmi_durable_abort(&d);
  /* A commit whose rename fails (the target's directory is gone) removes
   * the temp file and reports the error. */
  assert_int_equal(lsmi_durable_begin(&d, tmpdir, "x", 0600), 0);
  assert_int_equal(lsmi_durable_commit(&d, missing), -ENOENT);
  assert_int_equal(entries(tmpdir), 0);
  /* A name too long for the struct. */
  char longname[5000];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(lsmi_durable_begin(&d, NULL, longname, 0644), -ENAMETOOLONG);
  assert_int_equal(lsmi_durable_sync_dir(dir), 0);
  assert_int_equal(lsmi_durable_sync_dir(missing), -ENOENT);
  unlink(final);
  rmdir(tmpdir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_commit_replaces_whole),
      cmocka_unit_test(test_abort_leaves_nothing),
      cmocka_unit_test(test_tmpdir_and_errors),
  };
  return cmocka_run_group_tests_name("durable", tests, setup, teardown);
}
