// Dispatch between the CPU model and an attached engine (see engine.h).
#include "core/engine.h"
#include "core/config.h"
#include "core/error.h"
#include "kernels/cuda/scan_limits.h"
#include <stdlib.h>
#include <string.h>

const mv_engine *mv_gpu_engine = NULL;

int engine_select(const mv_engine **out, int device, char *why, size_t n) {
    *out = NULL;
    if (device == MV_DEVICE_CPU) return 0;
    char reason[1024] = "";
    const mv_engine *gpu = engine_gpu(reason, sizeof reason);
    if (!gpu && !mv_gpu_plugin) {
        if (device == MV_DEVICE_CUDA)
            return mv_fail("run.device = cuda, but this maskvim was built without the CUDA backend "
                           "(configure with the CUDA toolkit installed, or set run.device: cpu)");
        return 0;
    }
    if (!gpu || !gpu->available(reason, sizeof reason)) {
        if (device == MV_DEVICE_CUDA) return mv_fail("run.device = cuda, but no GPU can be used: %s", reason);
        snprintf(why, n, "%s", reason);
        return 0;
    }
    *out = gpu;
    return 0;
}

int engine_open(mv_model *m, mv_optimizer *o, const mv_run_config *run, mv_comm *c, mv_run_ctx *ctx, char *desc,
                size_t n) {
    const mv_engine *e = NULL;
    char no_gpu[256] = "";
    snprintf(desc, n, "CPU");
    MV_TRY(engine_select(&e, run->device, no_gpu, sizeof no_gpu));
    // The GPU's selective scan keeps a position's N states in one warp's registers (N <= 32):
    // said now, not at the first forward, and `auto` runs such a model on the CPU.
    if (e && m->cfg.d_state > MV_GPU_MAX_D_STATE) {
        if (run->device == MV_DEVICE_CUDA)
            return mv_fail("run.device = cuda, but the GPU's selective scan takes model.d_state 1..%d and this model "
                           "has %d: set run.device: cpu", MV_GPU_MAX_D_STATE, m->cfg.d_state);
        snprintf(no_gpu, sizeof no_gpu, "model.d_state %d is above the GPU scan's %d", m->cfg.d_state,
                 MV_GPU_MAX_D_STATE);
        e = NULL;
    }
    if (!e) {
        if (no_gpu[0]) snprintf(desc, n, "CPU (no GPU: %.200s)", no_gpu);
        return 0;
    }
    return e->attach(m, o, c, ctx, run, desc, n);
}

void engine_close(mv_model *m) {
    if (m->engine) m->engine->detach(m);
}

int run_state_to_host(mv_model *m, mv_optimizer *o, bool grads) {
    return m->engine ? m->engine->to_host(m, o, grads) : 0;
}

int run_read(const mv_model *m, void *host, const void *src, size_t bytes) {
    if (m->engine) return m->engine->read(host, src, bytes);
    memcpy(host, src, bytes);
    return 0;
}

int run_plan(mv_model *m, int B, int H, int W, mv_plan_mode mode) {
    return m->engine ? m->engine->plan(m, B, H, W, mode) : model_plan(m, B, H, W, mode);
}

int run_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx) {
    if (!m->engine) return model_forward(m, images, labels, ctx);
    // Checked here, on the host, for every engine: on the device a bad label only turns the
    // loss into NaN.
    if (labels) MV_TRY(model_check_labels(labels, m->B, m->H, m->W, m->cfg.num_classes));
    return m->engine->forward(m, images, labels, ctx);
}

void run_backward(mv_model *m, const mv_run_ctx *ctx) {
    if (m->engine) m->engine->backward(m, ctx);
    else model_backward(m, ctx);
}

void run_zero_grads(mv_model *m) {
    if (m->engine) m->engine->zero_grads(m);
    else params_zero_grads(&m->params);
}

const float *run_logits(mv_model *m) {
    if (!m->engine) return m->logits;
    size_t n = (size_t)m->B * m->Hs[0] * m->Ws[0] * m->cfg.num_classes;
    if (n > m->logits_host_cap) {
        free(m->logits_host);
        m->logits_host = malloc(sizeof(float) * n);
        m->logits_host_cap = m->logits_host ? n : 0;
        if (!m->logits_host) { mv_fail("out of memory for %zu logits", n); return NULL; }
    }
    return m->engine->logits(m, m->logits_host) < 0 ? NULL : m->logits_host;
}
