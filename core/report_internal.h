// Helpers shared by the report's data files (core/report_run.c, core/report.c); not for other
// code.
#pragma once
#include <stdbool.h>
#include <stdio.h>

static inline void copy_name(char *dst, const char *src, size_t cap) {
    snprintf(dst, cap, "%s", src ? src : "");
}
