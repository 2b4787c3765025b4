// Errors are values: a failing function records a message naming the file, key, line or
// sample at fault and returns a negative status; the caller adds context or reports it.
#pragma once
#include <stdio.h>

// Room for a message naming two paths of PATH_MAX (4096) bytes each and the reason, so that
// what is stored as a reason (a converted split's skipped items) is never cut in practice.
#define MV_ERRMSG_MAX 16384

// Records a formatted message for this thread and returns -1 (so `return mv_fail(...)`).
int mv_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prepends "context: " to this thread's current message; returns -1.
int mv_fail_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// This thread's last message ("" when none).
const char *mv_last_error(void);
void mv_clear_error(void);

// Propagate a failure: `MV_TRY(f(x));` returns -1 from the caller when f fails.
#define MV_TRY(expr) do { if ((expr) < 0) return -1; } while (0)

// Fatal internal error (a bug, never user input): prints and aborts.
#define MV_CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "maskvim: internal error at %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

// malloc/calloc that abort on failure: used for setup-time allocations only.
void *mv_malloc(size_t n);
void *mv_calloc(size_t count, size_t size);
void *mv_realloc(void *p, size_t n);
char *mv_strdup(const char *s);
