// A one-rank NCCL communicator on the current device: all-reduces a small buffer and compares.
// It proves that the NCCL path links and runs on a machine with one GPU (the multi-rank gradient
// all-reduce lives in dist/).
#include "kernels/cuda/common.cuh"
extern "C" {
#include "core/error.h"
}
#ifdef MV_HAVE_NCCL
#include <nccl.h>
#endif

extern "C" int mv_nccl_selfcheck(void) {
#ifndef MV_HAVE_NCCL
    return 1;
#else
    enum { COUNT = 4096 };
    int dev = 0;
    cudaError_t ce = cudaGetDevice(&dev);
    if (ce != cudaSuccess) return mv_fail("nccl check: cudaGetDevice: %s", cudaGetErrorString(ce));
    ncclComm_t comm;
    ncclResult_t r = ncclCommInitAll(&comm, 1, &dev);
    if (r != ncclSuccess) return mv_fail("nccl check: ncclCommInitAll: %s", ncclGetErrorString(r));
    static float host[COUNT], back[COUNT];
    for (int i = 0; i < COUNT; i++) host[i] = 0.5f * (float)(i % 977) - 100.0f;
    float *d = NULL;
    int status = 0;
    ce = cudaMalloc(&d, sizeof host);
    if (ce == cudaSuccess) ce = cudaMemcpy(d, host, sizeof host, cudaMemcpyHostToDevice);
    if (ce != cudaSuccess) {
        status = mv_fail("nccl check: device buffer: %s", cudaGetErrorString(ce));
    } else if ((r = ncclAllReduce(d, d, COUNT, ncclFloat, ncclSum, comm, 0)) != ncclSuccess) {
        status = mv_fail("nccl check: ncclAllReduce: %s", ncclGetErrorString(r));
    } else if ((ce = cudaStreamSynchronize(0)) != cudaSuccess ||
               (ce = cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost)) != cudaSuccess) {
        status = mv_fail("nccl check: after ncclAllReduce: %s", cudaGetErrorString(ce));
    } else {
        for (int i = 0; i < COUNT; i++)
            if (back[i] != host[i]) {   // one rank: the sum is the input, exactly
                status = mv_fail("nccl check: element %d is %g after the all-reduce, expected %g", i, back[i], host[i]);
                break;
            }
    }
    if (d) cudaFree(d);
    ncclCommDestroy(comm);
    return status;
#endif
}
