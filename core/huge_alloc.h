// Large long-lived buffers (activation arenas, parameters, scratch) backed by transparent huge
// pages where the kernel allows it.
#pragma once
#include <stddef.h>

// At least 64-byte aligned, not zeroed, NULL when out of memory; free() releases it.
void *mv_huge_alloc(size_t bytes);

// Zeroed; exits with a message when out of memory (as mv_calloc).
void *mv_huge_zalloc(size_t bytes);
