// The GPU side of distributed training: binding a rank to its GPU, an NCCL communicator with its
// own communication stream, the bucketed gradient all-reduce overlapped with backward (the bucket
// plan of dist/grad_sync.h, on device memory), and the SyncBN reducer for the CUDA BatchNorm.
// A plain C header; the code is dist/nccl_comm.cu, part of the maskvim_cuda library.
//
// One rank per GPU. MPI (dist/comm.h) still starts the ranks and carries the NCCL unique id:
//
//   mv_cuda_bind_local_rank(comm.local_rank, &dev);
//   mv_nccl_init(&nccl, comm.rank, comm.world, mv_nccl_comm_bcast, &comm);
//   mv_nccl_grad_sync_init(&gs, &nccl, dev_grads, cuts, NULL, n, num_cuts);
//   per step:  for each layer, last to first:
//                  layer_backward_cuda(..., compute);  mv_nccl_grad_sync_ready(&gs, layer_lo, compute);
//              mv_nccl_grad_sync_finish(&gs, compute);   // later work on `compute` sees averaged grads
//
// Every function returns 0, or -1 with a message (mv_last_error()). In a build without NCCL
// (MV_HAVE_NCCL undefined) the NCCL functions fail with "built without NCCL"; binding works.
#pragma once
#include <stddef.h>
#include <cuda_runtime_api.h>
#include "kernels/cuda/ops_cuda.h"   // mv_reducer_cuda

#if defined(__cplusplus) && !defined(_Noreturn)
#define _Noreturn [[noreturn]]   // C11's keyword in dist/comm.h, for C++ (the .cu) includers
#endif
#ifdef __cplusplus
extern "C" {
#endif
#include "dist/grad_sync.h"   // mv_bucket, mv_grad_sync_opts, grad_sync_plan_alloc

// Selects GPU local_rank % (number of GPUs) for this process. -1 with a message (and the CUDA
// error state cleared) when there is no GPU.
int mv_cuda_bind_local_rank(int local_rank, int *device_out);

// Broadcast of rank 0's bytes to every rank (the NCCL unique id travels this way).
typedef int (*mv_bcast_bytes_fn)(void *ctx, void *buf, size_t bytes);
// comm_bcast_bytes as an mv_bcast_bytes_fn: ctx is the mv_comm *.
int mv_nccl_comm_bcast(void *ctx, void *buf, size_t bytes);

typedef struct {
    void *comm;            // ncclComm_t
    cudaStream_t stream;   // the communication stream (non-blocking)
    int rank, world, device;
} mv_nccl;

// Rank 0 creates the unique id, bcast hands it to all (it may be NULL when world is 1), then
// every rank joins the communicator on the current device. Collective: all ranks call it.
int mv_nccl_init(mv_nccl *n, int rank, int world, mv_bcast_bytes_fn bcast, void *bcast_ctx);
// Waits for the communication stream, then destroys the communicator and the stream. Safe on a
// zeroed or failed mv_nccl.
void mv_nccl_free(mv_nccl *n);

// The bucketed gradient all-reduce. Buckets from grad_sync_plan_alloc, as the CPU path's
// (opts NULL: first bucket 1 MiB, then 25 MiB, from the END of the buffer). Each bucket is
// summed in place with ncclAllReduce on the communication stream after the compute stream's work
// so far, then divided by the world size on the same stream (division, as the CPU path).
typedef struct {
    mv_nccl *nccl;
    float *grads;          // (n) DEVICE buffer, reduced in place
    size_t n;
    mv_bucket *buckets;
    int num_buckets;
    int next;              // buckets [0, next) started in this step
    void *ready_event;     // cudaEvent_t: compute stream -> communication stream
    void *done_event;      // cudaEvent_t: communication stream -> compute stream
} mv_nccl_grad_sync;

int mv_nccl_grad_sync_init(mv_nccl_grad_sync *s, mv_nccl *nccl, float *dev_grads, const size_t *cuts,
                           const mv_grad_sync_opts *opts, size_t n, int num_cuts);
void mv_nccl_grad_sync_free(mv_nccl_grad_sync *s);
// Every gradient at offset >= lo is final once the work queued so far on `compute` has run:
// starts (in bucket index order) every bucket lying wholly at or above lo. Returns at once.
int mv_nccl_grad_sync_ready(mv_nccl_grad_sync *s, size_t lo, cudaStream_t compute);
// Starts the remaining buckets and makes `compute` wait for the whole all-reduce: work queued on
// it afterwards (the optimizer) sees the averaged gradients. Resets for the next step.
int mv_nccl_grad_sync_finish(mv_nccl_grad_sync *s, cudaStream_t compute);

// The SyncBN hook of the CUDA BatchNorm: ncclAllReduce (sum) of the doubles in place, on the
// stream the op passes. A failure is recorded for mv_cuda_status(). Its fn is set whenever the
// communicator exists, one rank included (the all-reduce is then a copy; {NULL, NULL} skips it);
// it is NULL in a build without NCCL. The ratio loss's statistics can use it too.
mv_reducer_cuda mv_nccl_reducer(mv_nccl *n);

#ifdef __cplusplus
}
#endif
