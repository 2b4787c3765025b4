// The GPU engine (core/engine.h): training and evaluation of the GPU model. One model per
// process, on the GPU of the process's node-local rank. Parameters, gradients, AdamW moments and
// activations stay on the device; a step uploads its batch and downloads the logged scalars.
// With several ranks, gradients are all-reduced with NCCL in buckets started from backward on a
// communication stream, and SyncBN and the ratio loss sum their statistics through NCCL too.
#include "core/engine.h"
#include "core/device/model_device.h"
#include "core/error.h"
#include "core/schedule.h"
#include "dist/nccl_comm.h"
#include "kernels/cuda/ops_cuda.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)MV_PREC_FP32 == (int)MV_PRECISION_FP32 && (int)MV_PREC_TF32 == (int)MV_PRECISION_TF32 &&
               (int)MV_PREC_BF16 == (int)MV_PRECISION_BF16, "run.precision maps onto mv_cuda_precision");

static struct {
    mv_device_batch batch;
    float *m, *v;              // AdamW moments on the device
    bool nccl_on;
    mv_nccl nccl;
    mv_nccl_grad_sync sync;
} g;

static bool cuda_available(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        // Without a GPU the runtime reports a driver "insufficient" for it: say what that means here.
        if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice)
            snprintf(why, n, "no NVIDIA driver or GPU found (CUDA: %s)", cudaGetErrorString(e));
        else snprintf(why, n, "%s", e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
        cudaGetLastError();
        return false;
    }
    return true;
}

static void grads_ready(void *ctx, size_t lo) {
    (void)ctx;
    if (mv_nccl_grad_sync_ready(&g.sync, lo, mv_device_stream()) < 0) comm_abort(1, mv_last_error());
}

static void nccl_reduce(void *ctx, double *buf, int n, cudaStream_t stream) {
    mv_reducer_cuda r = mv_nccl_reducer(ctx);
    r.fn(r.ctx, buf, n, stream);
}

// The host copies below use cudaMemcpy, which is ordered after the model's stream only while
// that stream is the legacy default stream (a build with --default-stream per-thread would
// change that): synchronise the model's stream first, so that a copy
// never reads results still being computed or overwrites inputs that queued kernels still read.
static int sync_model_stream(const char *what) {
    cudaError_t e = mv_device_wait();
    return e == cudaSuccess ? 0 : mv_fail("%s: %s", what, cudaGetErrorString(e));
}

static int moments(mv_optimizer *o, size_t n, bool upload) {
    size_t bytes = sizeof(float) * n;
    enum cudaMemcpyKind k = upload ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    MV_TRY(sync_model_stream("copying the AdamW moments"));
    if (cudaMemcpy(upload ? (void *)g.m : (void *)o->m, upload ? (void *)o->m : (void *)g.m, bytes, k) != cudaSuccess ||
        cudaMemcpy(upload ? (void *)g.v : (void *)o->v, upload ? (void *)o->v : (void *)g.v, bytes, k) != cudaSuccess)
        return mv_fail("copying the AdamW moments %s the GPU: %s", upload ? "to" : "from", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

static void cuda_detach(mv_model *m) {
    if (g.nccl_on) {
        mv_nccl_grad_sync_free(&g.sync);
        mv_nccl_free(&g.nccl);
    }
    mv_device_set_wait_limit(0);
    mv_device_batch_free(&g.batch);
    mv_arena_release(g.m);
    mv_arena_release(g.v);
    model_release_activations(m);   // device arenas: model_plan allocates host ones again
    model_device_free(m);
    memset(&g, 0, sizeof g);
    m->engine = NULL;
    mv_cuda_shutdown();
}

// The attach proper, once the device and the cuBLAS handle are set up; cuda_attach cleans up
// after a failure.
static int attach_model(mv_model *m, mv_optimizer *o, mv_comm *c, mv_run_ctx *ctx, const mv_run_config *run) {
    model_release_activations(m);   // host arenas, if any were planned: the device plans its own
    MV_TRY(model_to_device(m));
    if (o) {
        size_t np = m->params.num_params + 16;
        g.m = mv_arena_alloc(np);
        g.v = mv_arena_alloc(np);
        if (!g.m || !g.v) return mv_fail("out of GPU memory for the AdamW moments");
        MV_TRY(moments(o, m->params.num_params, true));
    }
    // Only training all-reduces on the GPU; an evaluation's ranks sum their metrics over MPI.
    if (o && c->world > 1) {
        MV_TRY(mv_nccl_init(&g.nccl, c->rank, c->world, mv_nccl_comm_bcast, c));
        g.nccl_on = true;
        size_t *cuts = malloc(sizeof(size_t) * (size_t)m->params.count);
        int nc = 0;
        for (int i = 0; cuts && i < m->params.count; i++)
            if (!m->params.items[i].is_buffer) cuts[nc++] = m->params.items[i].offset;
        mv_grad_sync_opts go = grad_sync_opts_mib(run->bucket_mb, run->first_bucket_mb);
        int rc = cuts ? mv_nccl_grad_sync_init(&g.sync, &g.nccl, m->params.dev_grads, cuts, &go, m->params.num_params, nc)
                      : mv_fail("out of memory");
        free(cuts);
        MV_TRY(rc);
        ctx->reduce_dev.fn = nccl_reduce;
        ctx->reduce_dev.ctx = &g.nccl;
        ctx->grads_ready = grads_ready;
        ctx->grads_ctx = NULL;
        mv_device_set_wait_limit(c->timeout_s);   // a collective no rank finishes ends the job
    }
    return 0;
}

static int cuda_attach(mv_model *m, mv_optimizer *o, mv_comm *c, mv_run_ctx *ctx, const mv_run_config *run,
                       char *desc, size_t n) {
    int dev = 0;
    // A failed attach leaves nothing behind (with run.device `auto` the run goes on on the CPU):
    // the cuBLAS handle, the ops' workspaces and any device arena would otherwise stay allocated
    // for the life of the process. Before the model is on the device only the backend holds any.
    if (mv_cuda_set_precision((mv_cuda_precision)run->precision) < 0 || mv_cuda_bind_local_rank(c->local_rank, &dev) < 0 ||
        mv_cuda_init(dev) < 0) {
        mv_cuda_shutdown();
        return -1;
    }
    if (attach_model(m, o, c, ctx, run) < 0) {
        cuda_detach(m);
        return -1;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) snprintf(prop.name, sizeof prop.name, "GPU %d", dev);
    m->engine = mv_cuda_engine();   // not mv_gpu_engine: loaded as a plugin, this engine is not registered there
    snprintf(desc, n, "GPU %d (%s), GEMMs %s", dev, prop.name, mv_cuda_precision_name(mv_cuda_get_precision()));
    size_t len = strlen(desc);
    if (g.nccl_on && len < n) snprintf(desc + len, n - len, ", NCCL all-reduce in %d buckets", g.sync.num_buckets);
    return 0;
}

static int cuda_plan(mv_model *m, int B, int H, int W, mv_plan_mode mode) { return model_plan_device(m, B, H, W, mode); }

static int cuda_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx) {
    return model_device_forward(m, &g.batch, images, labels, m->B, m->H, m->W, ctx);
}

static void cuda_backward(mv_model *m, const mv_run_ctx *ctx) { model_backward_device(m, ctx); }

static void cuda_zero_grads(mv_model *m) { model_device_zero_grads(m); }

static int cuda_grads_finish(mv_model *m) {
    (void)m;
    return g.nccl_on ? mv_nccl_grad_sync_finish(&g.sync, mv_device_stream()) : 0;
}

// AdamW on the device, tensor by tensor with the CPU optimizer's per-tensor learning rates and
// decay (core/optimizer.c: the same schedule call and step count).
static void cuda_optimizer_step(mv_model *m, mv_optimizer *o, const mv_optim_config *oc, const mv_schedule_config *sc,
                                long iter) {
    const mv_params *p = &m->params;
    o->step++;
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        if (q->is_buffer) continue;
        size_t off = q->offset;
        adamw_update_cuda(p->dev_params + off, p->dev_grads + off, g.m + off, g.v + off, q->numel,
                          schedule_lr(sc, oc->lr * o->lr_mult[i], iter), oc->betas[0], oc->betas[1], oc->eps,
                          oc->weight_decay * o->decay_mult[i], (int)o->step, mv_device_stream());
    }
}

static int cuda_logits(mv_model *m, float *host) {
    size_t n = (size_t)m->B * m->Hs[0] * m->Ws[0] * m->cfg.num_classes;
    MV_TRY(sync_model_stream("evaluation"));
    if (cudaMemcpy(host, m->logits, sizeof(float) * n, cudaMemcpyDeviceToHost) != cudaSuccess)
        return mv_fail("copying logits from the GPU: %s", cudaGetErrorString(cudaGetLastError()));
    return mv_cuda_status("evaluation");
}

static int cuda_to_host(mv_model *m, mv_optimizer *o, bool grads) {
    MV_TRY(model_device_download(m, grads));
    return o && g.m ? moments(o, m->params.num_params, false) : 0;
}

static int cuda_read(void *host, const void *src, size_t bytes) {
    MV_TRY(sync_model_stream("GPU step"));
    if (cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost) != cudaSuccess)
        return mv_fail("copying %zu bytes from the GPU: %s", bytes, cudaGetErrorString(cudaGetLastError()));
    return mv_cuda_status("GPU step");
}

static const mv_engine CUDA_ENGINE = {
    .name = "cuda",
    .available = cuda_available,
    .attach = cuda_attach,
    .detach = cuda_detach,
    .plan = cuda_plan,
    .forward = cuda_forward,
    .backward = cuda_backward,
    .zero_grads = cuda_zero_grads,
    .grads_finish = cuda_grads_finish,
    .optimizer_step = cuda_optimizer_step,
    .logits = cuda_logits,
    .to_host = cuda_to_host,
    .read = cuda_read,
};

const mv_engine *mv_cuda_engine(void) { return &CUDA_ENGINE; }
