// Per-op timing of the GPU model with CUDA events (see model_device.h). Events come from a pool
// that grows to the number of op calls in a step and is then reused, so a profiled step creates
// no events after the first.
#include "core/device/model_device.h"
#include "core/error.h"
#include <stdlib.h>

bool mv_dev_prof_enabled = false;

typedef struct { cudaEvent_t start, stop; int op, backward; } prof_record;
static prof_record *g_rec;
static int g_used, g_cap;

int mv_dev_prof_begin(int op, int backward) {
    if (!mv_dev_prof_enabled) return -1;
    if (g_used == g_cap) {
        int cap = g_cap ? 2 * g_cap : 1024;
        prof_record *r = realloc(g_rec, sizeof *r * (size_t)cap);
        if (!r) return -1;
        for (int i = g_cap; i < cap; i++) {
            cudaEventCreate(&r[i].start);
            cudaEventCreate(&r[i].stop);
        }
        g_rec = r;
        g_cap = cap;
    }
    prof_record *r = &g_rec[g_used];
    r->op = op;
    r->backward = backward;
    cudaEventRecord(r->start, mv_device_stream());
    return g_used++;
}

void mv_dev_prof_end(int record) {
    if (record >= 0) cudaEventRecord(g_rec[record].stop, mv_device_stream());
}

int mv_dev_prof_collect(double (*seconds)[2], int num_ops) {
    if (cudaStreamSynchronize(mv_device_stream()) != cudaSuccess) return mv_fail("device profile: the step failed");
    for (int i = 0; i < g_used; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, g_rec[i].start, g_rec[i].stop) != cudaSuccess) continue;
        if (g_rec[i].op >= 0 && g_rec[i].op < num_ops) seconds[g_rec[i].op][g_rec[i].backward] += ms / 1e3;
    }
    g_used = 0;
    return 0;
}

void mv_dev_prof_free(void) {
    for (int i = 0; i < g_cap; i++) {
        cudaEventDestroy(g_rec[i].start);
        cudaEventDestroy(g_rec[i].stop);
    }
    free(g_rec);
    g_rec = NULL;
    g_used = g_cap = 0;
}
