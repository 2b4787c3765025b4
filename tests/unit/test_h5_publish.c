// h5_publish (core/h5util.h), the last step of every checkpoint and weights file: a file that
// did not reach the disk (its fsync failed, as on an I/O error) is not renamed over the one
// before; its temporary is removed and the target stays as it was. The failure was ignored, and
// the unflushed checkpoint published, named by `latest` and counted by rotation.
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "core/error.h"
#include "core/h5util.h"

static int g_fail_fsync;

// This binary's fsync, in place of the C library's: with g_fail_fsync set it fails as a disk
// with an I/O error does.
int fsync(int fd) {
    if (g_fail_fsync) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

static void write_value(const char *path, float v) {
    hid_t f = h5_create(path);
    cr_assert_geq(f, 0, "%s", mv_last_error());
    float x[3] = {v, v, v};
    int shape[1] = {3};
    cr_assert_eq(h5_write_floats(f, "x", x, 1, shape), 0, "%s", mv_last_error());
    H5Fclose(f);
}

static float read_value(const char *path) {
    hid_t f = h5_open_read(path);
    cr_assert_geq(f, 0, "%s", mv_last_error());
    float x[3];
    cr_assert_eq(h5_read_floats(f, path, "x", x, 3), 0, "%s", mv_last_error());
    H5Fclose(f);
    return x[0];
}

Test(h5_publish, a_file_that_did_not_reach_the_disk_is_not_published) {
    const char *root = getenv("MV_TEST_TMP");
    char dir[600], final[700], tmp[720];
    snprintf(dir, sizeof dir, "%s/h5_publish_%d", root && root[0] ? root : "/tmp", (int)getpid());
    mkdir(dir, 0755);
    snprintf(final, sizeof final, "%s/iter_2.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    write_value(final, 1.0f);
    write_value(tmp, 2.0f);
    g_fail_fsync = 1;
    cr_assert_eq(h5_publish(tmp, final), -1, "published although fsync failed");
    g_fail_fsync = 0;
    cr_assert(strstr(mv_last_error(), "cannot flush to disk: Input/output error"), "%s", mv_last_error());
    cr_assert_neq(access(tmp, F_OK), 0, "the temporary is left");
    cr_assert_eq(read_value(final), 1.0f, "the previous file was replaced");
    // With the disk well again the same publish goes through.
    write_value(tmp, 2.0f);
    cr_assert_eq(h5_publish(tmp, final), 0, "%s", mv_last_error());
    cr_assert_eq(read_value(final), 2.0f);
    remove(final);
    rmdir(dir);
}
