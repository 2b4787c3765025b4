// NCCL for the GPU path (dist/nccl_comm.h): device binding, the communicator and its stream,
// the bucketed gradient all-reduce overlapped with backward, and the SyncBN reducer. Buckets are
// planned by dist/grad_sync.c's grad_sync_plan_alloc so that the GPU and CPU paths cut the buffer
// the same way; they always start in index order so that every rank issues the same collectives in
// the same order, as NCCL requires.
#include "kernels/cuda/common.cuh"
#include "dist/nccl_comm.h"
extern "C" {
#include "core/error.h"
}
#include <stdlib.h>
#include <string.h>
#ifdef MV_HAVE_NCCL
#include <nccl.h>
#endif

extern "C" int mv_cuda_bind_local_rank(int local_rank, int *device_out) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        cudaGetLastError();   // leave no sticky "no device" error for later calls
        return mv_fail("local rank %d: no CUDA device (%s)", local_rank,
                       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    if (local_rank < 0) return mv_fail("local rank %d: negative", local_rank);
    int dev = local_rank % count;
    e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return mv_fail("local rank %d: cudaSetDevice(%d): %s", local_rank, dev, cudaGetErrorString(e));
    }
    if (device_out) *device_out = dev;
    return 0;
}

extern "C" int mv_nccl_comm_bcast(void *ctx, void *buf, size_t bytes) {
    return comm_bcast_bytes((mv_comm *)ctx, buf, bytes);
}

#ifndef MV_HAVE_NCCL

extern "C" int mv_nccl_init(mv_nccl *n, int rank, int world, mv_bcast_bytes_fn bcast, void *bcast_ctx) {
    (void)rank;
    (void)world;
    (void)bcast;
    (void)bcast_ctx;
    memset(n, 0, sizeof *n);
    return mv_fail("mv_nccl_init: this maskvim_cuda was built without NCCL (nccl.h or libnccl not found)");
}
extern "C" void mv_nccl_free(mv_nccl *n) { memset(n, 0, sizeof *n); }
extern "C" int mv_nccl_grad_sync_init(mv_nccl_grad_sync *s, mv_nccl *nccl, float *dev_grads, const size_t *cuts,
                                      const mv_grad_sync_opts *opts, size_t n, int num_cuts) {
    (void)nccl;
    (void)dev_grads;
    (void)cuts;
    (void)opts;
    (void)n;
    (void)num_cuts;
    memset(s, 0, sizeof *s);
    return mv_fail("mv_nccl_grad_sync_init: this maskvim_cuda was built without NCCL");
}
extern "C" void mv_nccl_grad_sync_free(mv_nccl_grad_sync *s) { memset(s, 0, sizeof *s); }
extern "C" int mv_nccl_grad_sync_ready(mv_nccl_grad_sync *s, size_t lo, cudaStream_t compute) {
    (void)s;
    (void)lo;
    (void)compute;
    return mv_fail("mv_nccl_grad_sync_ready: this maskvim_cuda was built without NCCL");
}
extern "C" int mv_nccl_grad_sync_finish(mv_nccl_grad_sync *s, cudaStream_t compute) {
    (void)s;
    (void)compute;
    return mv_fail("mv_nccl_grad_sync_finish: this maskvim_cuda was built without NCCL");
}
extern "C" mv_reducer_cuda mv_nccl_reducer(mv_nccl *n) {
    (void)n;
    mv_reducer_cuda r = {NULL, NULL};
    return r;
}

#else

static int nccl_fail(ncclResult_t r, const char *what) {
    return mv_fail("%s: %s", what, ncclGetErrorString(r));
}

static int cuda_fail(cudaError_t e, const char *what) {
    return mv_fail("%s: %s", what, cudaGetErrorString(e));
}

extern "C" int mv_nccl_init(mv_nccl *n, int rank, int world, mv_bcast_bytes_fn bcast, void *bcast_ctx) {
    memset(n, 0, sizeof *n);
    if (world < 1 || rank < 0 || rank >= world) return mv_fail("mv_nccl_init: rank %d of %d", rank, world);
    if (world > 1 && !bcast) return mv_fail("mv_nccl_init: %d ranks need a broadcast for the NCCL id", world);
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r;
    if (rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) return nccl_fail(r, "ncclGetUniqueId");
    if (world > 1 && bcast(bcast_ctx, &id, sizeof id) < 0) return mv_fail_context("mv_nccl_init: NCCL id broadcast");
    cudaError_t e = cudaGetDevice(&n->device);
    if (e != cudaSuccess) return cuda_fail(e, "mv_nccl_init: cudaGetDevice");
    ncclComm_t comm;
    if ((r = ncclCommInitRank(&comm, world, id, rank)) != ncclSuccess)
        return mv_fail("mv_nccl_init: ncclCommInitRank (rank %d of %d, device %d): %s", rank, world, n->device,
                       ncclGetErrorString(r));
    if ((e = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        ncclCommDestroy(comm);
        return cuda_fail(e, "mv_nccl_init: communication stream");
    }
    n->comm = comm;
    n->rank = rank;
    n->world = world;
    return 0;
}

extern "C" void mv_nccl_free(mv_nccl *n) {
    if (n->stream) {
        cudaStreamSynchronize(n->stream);
        cudaStreamDestroy(n->stream);
    }
    if (n->comm) ncclCommDestroy((ncclComm_t)n->comm);
    memset(n, 0, sizeof *n);
}

__global__ void divide_kernel(float *g, size_t n, float w) {
    GRID_STRIDE(i, n) g[i] /= w;
}

extern "C" int mv_nccl_grad_sync_init(mv_nccl_grad_sync *s, mv_nccl *nccl, float *dev_grads, const size_t *cuts,
                                      const mv_grad_sync_opts *opts, size_t n, int num_cuts) {
    memset(s, 0, sizeof *s);
    if (!nccl || !nccl->comm) return mv_fail("mv_nccl_grad_sync_init: no NCCL communicator");
    if (n > 0 && !dev_grads) return mv_fail("mv_nccl_grad_sync_init: no gradient buffer for %zu floats", n);
    int nb = grad_sync_plan_alloc(&s->buckets, cuts, n, num_cuts, opts);   // the CPU path's plan and defaults
    if (nb < 0) return mv_fail_context("mv_nccl_grad_sync_init");
    cudaEvent_t ready, done;
    cudaError_t e = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        mv_nccl_grad_sync_free(s);
        return cuda_fail(e, "mv_nccl_grad_sync_init: event");
    }
    s->ready_event = ready;
    if ((e = cudaEventCreateWithFlags(&done, cudaEventDisableTiming)) != cudaSuccess) {
        mv_nccl_grad_sync_free(s);
        return cuda_fail(e, "mv_nccl_grad_sync_init: event");
    }
    s->done_event = done;
    s->nccl = nccl;
    s->grads = dev_grads;
    s->n = n;
    s->num_buckets = nb;
    return 0;
}

extern "C" void mv_nccl_grad_sync_free(mv_nccl_grad_sync *s) {
    if (s->nccl && s->nccl->stream) cudaStreamSynchronize(s->nccl->stream);
    if (s->ready_event) cudaEventDestroy((cudaEvent_t)s->ready_event);
    if (s->done_event) cudaEventDestroy((cudaEvent_t)s->done_event);
    free(s->buckets);
    memset(s, 0, sizeof *s);
}

// All-reduce (sum) bucket k in place on the communication stream, then average it there.
static int start_bucket(mv_nccl_grad_sync *s, int k) {
    mv_nccl *c = s->nccl;
    size_t lo = s->buckets[k].lo, len = s->buckets[k].hi - lo;
    ncclResult_t r = ncclAllReduce(s->grads + lo, s->grads + lo, len, ncclFloat, ncclSum, (ncclComm_t)c->comm,
                                   c->stream);
    if (r != ncclSuccess)
        return mv_fail("gradient all-reduce: bucket %d (floats %zu..%zu): ncclAllReduce: %s", k, lo, lo + len,
                       ncclGetErrorString(r));
    // A failed launch is recorded by LAUNCH (which takes cudaGetLastError) and reported by the
    // step's mv_cuda_status; asking cudaGetLastError again here would always see success.
    if (c->world > 1 && len > 0)
        LAUNCH(divide_kernel, grid_for(len, 256), 256, 0, c->stream, s->grads + lo, len, (float)c->world);
    return 0;
}

// Orders the communication stream after the work queued so far on `compute`.
static int follow_compute(mv_nccl_grad_sync *s, cudaStream_t compute) {
    cudaError_t e = cudaEventRecord((cudaEvent_t)s->ready_event, compute);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(s->nccl->stream, (cudaEvent_t)s->ready_event, 0);
    return e == cudaSuccess ? 0 : cuda_fail(e, "gradient all-reduce: ordering after backward");
}

extern "C" int mv_nccl_grad_sync_ready(mv_nccl_grad_sync *s, size_t lo, cudaStream_t compute) {
    if (!s->nccl) return mv_fail("mv_nccl_grad_sync_ready: not initialised");
    if (s->next >= s->num_buckets || s->buckets[s->next].lo < lo) return 0;   // nothing new is ready
    MV_TRY(follow_compute(s, compute));
    while (s->next < s->num_buckets && s->buckets[s->next].lo >= lo) {
        MV_TRY(start_bucket(s, s->next));
        s->next++;
    }
    return 0;
}

extern "C" int mv_nccl_grad_sync_finish(mv_nccl_grad_sync *s, cudaStream_t compute) {
    if (!s->nccl) return mv_fail("mv_nccl_grad_sync_finish: not initialised");
    if (s->next < s->num_buckets) {
        MV_TRY(follow_compute(s, compute));
        while (s->next < s->num_buckets) {
            MV_TRY(start_bucket(s, s->next));
            s->next++;
        }
    }
    s->next = 0;
    cudaError_t e = cudaEventRecord((cudaEvent_t)s->done_event, s->nccl->stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(compute, (cudaEvent_t)s->done_event, 0);
    return e == cudaSuccess ? 0 : cuda_fail(e, "gradient all-reduce: ordering the optimizer after it");
}

static void reduce_doubles(void *ctx, double *buf, int n, cudaStream_t stream) {
    mv_nccl *c = (mv_nccl *)ctx;
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)n, ncclDouble, ncclSum, (ncclComm_t)c->comm, stream);
    if (r != ncclSuccess) mv_cuda_note_text("SyncBN all-reduce (ncclAllReduce)", ncclGetErrorString(r));
}

extern "C" mv_reducer_cuda mv_nccl_reducer(mv_nccl *n) {
    mv_reducer_cuda r = {n && n->comm ? reduce_doubles : NULL, n};
    return r;
}

#endif
