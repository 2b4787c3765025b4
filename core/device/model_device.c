// The GPU model's memory and staging (see model_device.h): device arenas for the parameters,
// gradients and buffers bound into the model, the activation arenas' allocator used by the
// device compile of core/model.c, and host batches copied in before a step.
#include "core/device/model_device.h"
#include "core/clock.h"
#include "core/error.h"
#include "dist/comm.h"
#include "kernels/cuda/ops_cuda.h"
#include <sched.h>
#include <stdio.h>
#include <string.h>

static cudaStream_t g_stream = 0;
static double g_wait_limit_s = 0;   // 0: wait as long as the stream takes

cudaStream_t mv_device_stream(void) { return g_stream; }
void mv_device_set_wait_limit(double seconds) { g_wait_limit_s = seconds; }

// With several ranks the model's stream holds NCCL collectives (gradient buckets, SyncBN sums)
// that wait on the GPU for every rank to join; a rank that has stopped or is stuck leaves them,
// and a cudaStreamSynchronize, unfinished for ever. So the wait polls the stream (yielding, as
// CUDA's own spin-wait does) and, past the limit, ends the job with the reason, as the CPU
// path's MPI collectives do (dist/comm.c). Every step passes here: before its batch is staged
// (after the previous step's all-reduce and update) and before its losses come back (after the
// forward's SyncBN sums).
cudaError_t mv_device_wait(void) {
    if (g_wait_limit_s <= 0) return cudaStreamSynchronize(g_stream);
    double t0 = mv_now_s();
    for (;;) {
        cudaError_t e = cudaStreamQuery(g_stream);
        if (e != cudaErrorNotReady) return e;
        // The runtime records a query's "not ready" as the thread's last error, where the next
        // cudaGetLastError (in every LAUNCH, in mv_cuda_status) would take it for a failed op and
        // fail the step, the checkpoint or the evaluation: drop it. (It has already replaced any
        // earlier error there; a fault on the device comes back from the query itself.)
        if (cudaPeekAtLastError() == cudaErrorNotReady) cudaGetLastError();
        double waited = mv_now_s() - t0;
        if (waited > g_wait_limit_s) {
            char msg[320];
            snprintf(msg, sizeof msg, "GPU step: not complete after %.0f s: its NCCL collectives wait for a rank that "
                     "has stopped or is stuck (MV_COMM_TIMEOUT sets this limit)", waited);
            comm_abort(1, msg);
        }
        sched_yield();
    }
}

static int cuda_ok(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    return mv_fail("%s: %s", what, cudaGetErrorString(e));
}

float *mv_arena_alloc(size_t floats) {
    void *p = NULL;
    if (cudaMalloc(&p, sizeof(float) * floats) != cudaSuccess) {
        cudaGetLastError();   // clear the sticky-free allocation error
        return NULL;
    }
    return p;
}

// cudaFree waits for the whole device, without a limit: wait for the model's stream first, so
// that a free (a new plan for evaluation, a larger batch, detach) behind collectives a stuck rank
// never joins ends in mv_device_wait's timeout instead of hanging.
void mv_arena_release(void *p) {
    if (!p) return;
    mv_device_wait();
    cudaFree(p);
}

// Failures are recorded for mv_cuda_status (model_device_forward reports them after the step's
// forward): the caller cannot see them, and after a failed download dst still holds old values.
void mv_upload(void *dst, const void *src, size_t bytes) {
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream);
    if (e == cudaSuccess) e = mv_device_wait();   // src may be a temporary of the caller
    mv_cuda_note(e, "copying to the GPU");
}

// A copy to pageable host memory returns only once it has completed, so it waits, without any
// limit, for all the work queued before it (a training forward's NCCL sums among it): wait with
// the limit first; then only the copy itself is left on the stream.
void mv_download(void *dst, const void *src, size_t bytes) {
    cudaError_t e = mv_device_wait();
    if (e == cudaSuccess) e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(g_stream);
    mv_cuda_note(e, "copying results from the GPU");
}

static void bind(mv_params *p, float *params, float *grads, float *buffers) {
    for (int i = 0; i < p->count; i++) {
        mv_param *q = &p->items[i];
        *q->ptr = (q->is_buffer ? buffers : params) + q->offset;
        if (q->gptr) *q->gptr = q->is_buffer ? NULL : grads + q->offset;
    }
}

int model_to_device(mv_model *m) {
    mv_params *p = &m->params;
    if (p->dev_params) return 0;
    size_t np = p->num_params + 16, nb = p->num_buffers + 16;
    p->dev_params = mv_arena_alloc(np);
    p->dev_grads = mv_arena_alloc(np);
    p->dev_buffers = mv_arena_alloc(nb);
    if (!p->dev_params || !p->dev_grads || !p->dev_buffers) {
        model_device_free(m);
        return mv_fail("out of GPU memory for %zu parameters", p->num_params);
    }
    bind(p, p->dev_params, p->dev_grads, p->dev_buffers);
    model_device_zero_grads(m);
    return model_device_upload(m);
}

int model_device_upload(mv_model *m) {
    mv_params *p = &m->params;
    // cudaMemcpy is ordered after the model's stream only if that is the legacy stream: wait for
    // the kernels that may still read the parameters (and the gradient clear of model_to_device).
    MV_TRY(cuda_ok(mv_device_wait(), "GPU step"));
    MV_TRY(cuda_ok(cudaMemcpy(p->dev_params, p->params, sizeof(float) * p->num_params, cudaMemcpyHostToDevice),
                   "uploading parameters"));
    return cuda_ok(cudaMemcpy(p->dev_buffers, p->buffers, sizeof(float) * p->num_buffers, cudaMemcpyHostToDevice),
                   "uploading buffers");
}

int model_device_download(mv_model *m, bool grads) {
    mv_params *p = &m->params;
    MV_TRY(cuda_ok(mv_device_wait(), "GPU step"));
    MV_TRY(mv_cuda_status("GPU step"));
    MV_TRY(cuda_ok(cudaMemcpy(p->params, p->dev_params, sizeof(float) * p->num_params, cudaMemcpyDeviceToHost),
                   "downloading parameters"));
    MV_TRY(cuda_ok(cudaMemcpy(p->buffers, p->dev_buffers, sizeof(float) * p->num_buffers, cudaMemcpyDeviceToHost),
                   "downloading buffers"));
    if (grads)
        MV_TRY(cuda_ok(cudaMemcpy(p->grads, p->dev_grads, sizeof(float) * p->num_params, cudaMemcpyDeviceToHost),
                       "downloading gradients"));
    return 0;
}

void model_device_zero_grads(mv_model *m) {
    cudaError_t e = cudaMemsetAsync(m->params.dev_grads, 0, sizeof(float) * m->params.num_params, g_stream);
    if (e != cudaSuccess) mv_cuda_note(e, "model_device_zero_grads");   // reported by the step, under this name
}

void model_device_free(mv_model *m) {
    mv_params *p = &m->params;
    mv_arena_release(p->dev_params);
    mv_arena_release(p->dev_grads);
    mv_arena_release(p->dev_buffers);
    p->dev_params = p->dev_grads = p->dev_buffers = NULL;
    if (p->params) bind(p, p->params, p->grads, p->buffers);   // back to the host arenas
}

static int grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return 0;
    mv_arena_release(*buf);
    *buf = NULL;
    *cap = 0;
    if (cudaMalloc(buf, bytes) != cudaSuccess) {
        cudaGetLastError();
        return mv_fail("out of GPU memory staging a batch (%zu bytes)", bytes);
    }
    *cap = bytes;
    return 0;
}

int model_device_forward(mv_model *m, mv_device_batch *st, const float *images, const uint8_t *labels,
                         int B, int H, int W, const mv_run_ctx *ctx) {
    size_t ni = sizeof(float) * (size_t)B * 3 * H * W, nl = (size_t)B * H * W, nd = sizeof(int) * (size_t)B;
    // With several ranks, wait (with the limit) for the previous step's backward, all-reduce and
    // update first: the copies below are from pageable memory, which the driver may stage by
    // waiting for the stream, and such a wait has no limit.
    if (g_wait_limit_s > 0) MV_TRY(cuda_ok(mv_device_wait(), "GPU step"));
    // The ops' workspaces that the previous step outgrew are freed here and nowhere inside a step:
    // cudaFree waits for the whole device, and here the model's stream has just been waited for
    // with the limit (after the previous step's grads_finish nothing else is in flight).
    mv_cuda_release_retired();
    MV_TRY(grow((void **)&st->images, &st->cap_images, ni));
    MV_TRY(grow((void **)&st->labels, &st->cap_labels, nl));
    MV_TRY(grow((void **)&st->ids, &st->cap_ids, nd));
    // Each copy checked here: a failure left for the next launch to report would be blamed on
    // that kernel.
    MV_TRY(cuda_ok(cudaMemcpyAsync(st->images, images, ni, cudaMemcpyHostToDevice, g_stream), "uploading the images"));
    if (labels)
        MV_TRY(cuda_ok(cudaMemcpyAsync(st->labels, labels, nl, cudaMemcpyHostToDevice, g_stream), "uploading the labels"));
    if (ctx->sample_ids)
        MV_TRY(cuda_ok(cudaMemcpyAsync(st->ids, ctx->sample_ids, nd, cudaMemcpyHostToDevice, g_stream),
                       "uploading the sample ids"));
    mv_run_ctx dctx = *ctx;
    dctx.sample_ids = ctx->sample_ids ? st->ids : NULL;
    MV_TRY(model_plan_device(m, B, H, W, m->plan_mode));
    MV_TRY(model_forward_device(m, st->images, labels ? st->labels : NULL, &dctx));
    // A forward with losses ends by downloading them, a synchronisation: report a failure of the
    // step (a launch, a GEMM, a copy, a fault on the device) now, before the host uses those
    // losses (the NaN check, the logs): after a failed download they are the previous step's.
    return labels ? mv_cuda_status("GPU step") : 0;
}

void mv_device_batch_free(mv_device_batch *st) {
    mv_arena_release(st->images);
    mv_arena_release(st->labels);
    mv_arena_release(st->ids);
    memset(st, 0, sizeof *st);
}
