// Tests that run out of file descriptors: how many more files a test may open, set exactly.
// `ulimit -n` bounds descriptor numbers, not their count: the limit is set just above the highest
// descriptor in use plus `spare`, and the holes below are filled (their descriptors in fill[]),
// so that exactly `spare` more files can open. restore_files undoes it.
#pragma once
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static inline int limit_spare_files(int spare, int *fill, int cap, struct rlimit *saved) {
    int top = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && atoi(e->d_name) > top) top = atoi(e->d_name);
    closedir(d);
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, saved), 0);
    struct rlimit low = {(rlim_t)top + 1 + (rlim_t)spare, saved->rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int n = 0;
    for (int fd; n < cap && (fd = open("/dev/null", O_RDONLY)) >= 0;) {
        if (fd > top) { close(fd); break; }
        fill[n++] = fd;
    }
    cr_assert_lt(n, cap);
    return n;
}

static inline int count_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static inline void restore_files(const int *fill, int n, const struct rlimit *saved) {
    for (int i = 0; i < n; i++) close(fill[i]);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, saved), 0);
}

