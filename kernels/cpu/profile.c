// The per-op timing table (see profile.h).
#include "kernels/cpu/profile.h"
#include "core/clock.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

bool mv_prof_enabled = false;
int mv_prof_depth = 0;
mv_prof_entry mv_prof_table[PROF_COUNT];

static const char *NAMES[PROF_COUNT] = {
    "linear (GEMM)", "conv 3x3 (GEMM)", "conv im2col", "depthwise conv", "layernorm", "batchnorm",
    "selective scan", "pointwise", "resize/pool/copy", "token mask", "losses", "optimizer"};

const char *prof_name(mv_prof_op op) { return NAMES[op]; }

void prof_reset(void) { memset(mv_prof_table, 0, sizeof mv_prof_table); mv_prof_depth = 0; }

void prof_add(mv_prof_op op, int backward, double seconds, double flops) {
    mv_prof_table[op].seconds[backward] += seconds;
    mv_prof_table[op].flops[backward] += flops;
    mv_prof_table[op].calls[backward]++;
}

