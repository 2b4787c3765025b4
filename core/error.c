// Per-thread error messages (see error.h).
#include "core/error.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_msg[MV_ERRMSG_MAX];

int mv_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int mv_fail_context(const char *fmt, ...) {
    char prefix[MV_ERRMSG_MAX], old[MV_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof g_msg - 3) n = sizeof g_msg - 3;
    memcpy(g_msg, prefix, n);
    memcpy(g_msg + n, ": ", 2);
    size_t rest = sizeof g_msg - n - 3, m = strlen(old);
    if (m > rest) m = rest;
    memcpy(g_msg + n + 2, old, m);
    g_msg[n + 2 + m] = '\0';
    return -1;
}

const char *mv_last_error(void) { return g_msg; }
void mv_clear_error(void) { g_msg[0] = '\0'; }

void *mv_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    MV_CHECK(p, "out of memory allocating %zu bytes", n);
    return p;
}

void *mv_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    MV_CHECK(p, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}
