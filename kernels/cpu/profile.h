// Per-op timing for `maskvim bench`: each op adds its wall time and useful FLOPs to a table
// keyed by op kind and pass. Off by default; the check costs one branch per op call.
#pragma once
#include "core/clock.h"
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    PROF_LINEAR, PROF_CONV3X3, PROF_CONV2D, PROF_DWCONV, PROF_LAYERNORM, PROF_BATCHNORM,
    PROF_SCAN, PROF_POINTWISE, PROF_RESAMPLE, PROF_TOKEN_MASK, PROF_LOSS, PROF_OPTIM, PROF_COUNT
} mv_prof_op;

typedef struct { double seconds[2], flops[2]; long calls[2]; } mv_prof_entry;   // [forward, backward]

extern bool mv_prof_enabled;
extern int mv_prof_depth;   // ops calling ops (conv -> GEMM) count once, as the outer op
extern mv_prof_entry mv_prof_table[PROF_COUNT];
const char *prof_name(mv_prof_op op);
void prof_reset(void);
void prof_add(mv_prof_op op, int backward, double seconds, double flops);

#define PROF_START() double prof_t0_ = mv_prof_enabled ? (mv_prof_depth++, mv_now_s()) : 0.0
#define PROF_STOP(op, backward, flops) \
    do { if (mv_prof_enabled && --mv_prof_depth == 0) prof_add((op), (backward), mv_now_s() - prof_t0_, (double)(flops)); } while (0)
