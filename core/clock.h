// The one monotonic clock every timing in the program reads (progress lines, throughput,
// the op profile, communication waits): seconds since an arbitrary fixed point.
#pragma once
#include <time.h>

static inline double mv_now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
