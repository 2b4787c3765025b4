// Per-thread error messages (see error.h).
#include "core/error.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_msg[MV_ERRMSG_MAX];

// Stores text[0..n) as this thread's message. Text longer than the buffer (paths of thousands
// of characters in it) keeps its beginning and its end, which says what went wrong, around
// " ... ": cutting the end off lost the reason. Both cuts fall between UTF-8 characters, so
// a message written into a JSON file stays valid UTF-8.
static void store(const char *text, size_t n) {
    static const char gap[] = " ... ";
    size_t cap = sizeof g_msg - 1;
    if (n <= cap) {
        memmove(g_msg, text, n);
        g_msg[n] = '\0';
        return;
    }
    size_t head = (cap - (sizeof gap - 1)) / 2, tail = cap - (sizeof gap - 1) - head;
    while (head > 0 && ((unsigned char)text[head] & 0xC0) == 0x80) head--;              // [head] starts a character
    while (tail > 0 && ((unsigned char)text[n - tail] & 0xC0) == 0x80) tail--;          // so does [n - tail]
    memmove(g_msg, text, head);
    memcpy(g_msg + head, gap, sizeof gap - 1);
    memmove(g_msg + head + sizeof gap - 1, text + n - tail, tail);
    g_msg[head + sizeof gap - 1 + tail] = '\0';
}

// vsnprintf into a heap buffer of the full length (the message may quote g_msg itself). NULL
// when memory ran out: then the caller formats into g_msg, cut at its size.
static char *format(size_t *n, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *buf = len < 0 ? NULL : malloc((size_t)len + 1);
    if (buf) vsnprintf(buf, (size_t)len + 1, fmt, ap);
    *n = buf ? (size_t)len : 0;
    return buf;
}

int mv_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n;
    va_list ap2;
    va_copy(ap2, ap);
    char *msg = format(&n, fmt, ap);
    if (msg) store(msg, n);
    else vsnprintf(g_msg, sizeof g_msg, fmt, ap2);
    va_end(ap2);
    va_end(ap);
    free(msg);
    return -1;
}

int mv_fail_context(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n;
    char *prefix = format(&n, fmt, ap);
    va_end(ap);
    size_t m = strlen(g_msg);
    char *all = prefix ? malloc(n + 2 + m + 1) : NULL;
    if (!all) {   // out of memory: keep the message as it is
        free(prefix);
        return -1;
    }
    memcpy(all, prefix, n);
    memcpy(all + n, ": ", 2);
    memcpy(all + n + 2, g_msg, m + 1);
    store(all, n + 2 + m);
    free(all);
    free(prefix);
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

void *mv_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    MV_CHECK(q, "out of memory allocating %zu bytes", n);
    return q;
}

char *mv_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(mv_malloc(n), s, n);
}
