// Helpers shared by the report's data files (core/report_run.c, core/report.c); not for other
// code.
#pragma once
#include <stdbool.h>
#include <stdio.h>

// Whole file as a string; NULL (with a message) when unreadable.
char *report_read_file(const char *path, bool quiet_missing);

static inline void copy_name(char *dst, const char *src, size_t cap) {
    snprintf(dst, cap, "%s", src ? src : "");
}
