// Why an HDF5 file did not open (core/h5util.h): a missing file, a damaged one and a process out
// of file descriptors are told apart, and only a damaged file reads as damaged. Out of
// descriptors, a good checkpoint read as "not a readable HDF5 file", which --resume auto takes
// as damage and passes over. h5_create names the system's reason too.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/error.h"
#include "core/h5util.h"
#include "fd_limit.h"

static void test_path(char *out, size_t n, const char *name) {
    const char *root = getenv("MV_TEST_TMP");
    if (!root || !root[0]) root = "/tmp";
    mkdir(root, 0755);
    snprintf(out, n, "%s/h5_open_%s", root, name);
}

static void write_good(const char *path) {
    hid_t f = h5_create(path);
    cr_assert_geq(f, 0, "%s", mv_last_error());
    float x[3] = {1, 2, 3};
    int shape[1] = {3};
    cr_assert_eq(h5_write_floats(f, "x", x, 1, shape), 0);
    H5Fclose(f);
}

Test(h5_open, a_good_file_opens) {
    char path[4096];
    test_path(path, sizeof path, "good.h5");
    write_good(path);
    h5_open_failure why;
    hid_t f = h5_open_quiet(path, &why);
    cr_assert_geq(f, 0, "%s", mv_last_error());
    cr_expect_not(h5_last_open_blocked());
    H5Fclose(f);
}

Test(h5_open, a_missing_file_is_unreadable_not_damaged) {
    char path[4096];
    test_path(path, sizeof path, "absent.h5");
    remove(path);
    h5_open_failure why;
    cr_assert_lt(h5_open_quiet(path, &why), 0);
    cr_expect_eq(why, H5_OPEN_UNREADABLE);
    cr_expect(strstr(mv_last_error(), "No such file or directory"), "%s", mv_last_error());
    cr_expect_not(h5_last_open_blocked());
}

Test(h5_open, a_truncated_file_is_damaged) {
    char path[4096];
    test_path(path, sizeof path, "junk.h5");
    FILE *fp = fopen(path, "wb");
    cr_assert(fp);
    fputs("not hdf5 at all", fp);
    fclose(fp);
    h5_open_failure why;
    cr_assert_lt(h5_open_quiet(path, &why), 0);
    cr_expect_eq(why, H5_OPEN_DAMAGED);
    cr_expect_not(h5_last_open_blocked());
    cr_assert_lt(h5_open_read(path), 0);
    cr_expect(strstr(mv_last_error(), "not a readable HDF5 file"), "%s", mv_last_error());
}

Test(h5_open, out_of_file_descriptors_is_not_damage) {
    char path[4096];
    test_path(path, sizeof path, "good_nofd.h5");
    write_good(path);
    int fill[1024];
    struct rlimit saved;
    int nfill = limit_spare_files(0, fill, 1024, &saved);
    h5_open_failure why;
    hid_t f = h5_open_quiet(path, &why);
    bool blocked = h5_last_open_blocked();
    char quiet_msg[MV_ERRMSG_MAX];
    snprintf(quiet_msg, sizeof quiet_msg, "%s", mv_last_error());
    hid_t g = h5_open_read(path);
    char read_msg[MV_ERRMSG_MAX];
    snprintf(read_msg, sizeof read_msg, "%s", mv_last_error());
    restore_files(fill, nfill, &saved);
    cr_assert_lt(f, 0);
    cr_assert_lt(g, 0);
    cr_expect_eq(why, H5_OPEN_OUT_OF_FILES);
    cr_expect(blocked, "out of descriptors must stop --resume auto rather than pass over the file");
    cr_expect(strstr(quiet_msg, "ulimit -n"), "%s", quiet_msg);
    cr_expect(strstr(read_msg, "ulimit -n") && !strstr(read_msg, "not a readable"), "%s", read_msg);
}

Test(h5_open, create_names_the_system_reason) {
    char path[4096];
    test_path(path, sizeof path, "no_such_folder/x.h5");
    cr_assert_lt(h5_create(path), 0);
    cr_expect(strstr(mv_last_error(), "No such file or directory"), "%s", mv_last_error());
    test_path(path, sizeof path, "create_nofd.h5");
    int fill[1024];
    struct rlimit saved;
    int nfill = limit_spare_files(0, fill, 1024, &saved);
    hid_t f = h5_create(path);
    char msg[MV_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", mv_last_error());
    restore_files(fill, nfill, &saved);
    cr_assert_lt(f, 0);
    cr_expect(strstr(msg, "ulimit -n"), "%s", msg);
}
