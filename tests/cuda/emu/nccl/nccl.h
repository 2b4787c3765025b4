// The emulated NCCL of the host emulation build: the part of NCCL's API that dist/nccl_comm.cu
// and kernels/cuda/nccl_check.cu call, with NCCL's names and enum values, implemented over MPI on
// host memory by tests/cuda/emu/nccl_emu.cpp (emulated device memory is host memory). cmake puts
// this directory ahead of the CUDA toolkit's on the emulation library's include path only, so
// `#include <nccl.h>` finds this file there and the real header everywhere else.
//
// A communicator of several ranks is MPI_COMM_WORLD's ranks (MPI must be initialised, NCCL rank
// = MPI rank); one of a single rank needs no MPI. Collectives run at the call, in stream order
// because every emulated stream operation runs at its call too. Unlike real NCCL, a bad unique
// id or ranks that disagree on a collective's count, type or operation fail with a message on
// stderr instead of hanging.
#pragma once
#include <stddef.h>
#include <cuda_runtime_api.h>   // cudaStream_t

#ifdef __cplusplus
extern "C" {
#endif

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef struct ncclComm *ncclComm_t;

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclNumResults = 8
} ncclResult_t;

// The types and the operation the project reduces (same values as NCCL's).
typedef enum { ncclFloat32 = 7, ncclFloat = 7, ncclFloat64 = 8, ncclDouble = 8 } ncclDataType_t;
typedef enum { ncclSum = 0 } ncclRedOp_t;

const char *ncclGetErrorString(ncclResult_t result);
// Rank 0's id: a tag, a nonce and a checksum, so that ranks can tell a broadcast id from zeros.
ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId);
// Collective over MPI_COMM_WORLD when nranks > 1: every rank must pass the same id (rank 0's),
// the same nranks (the world size) and its MPI rank; otherwise every rank fails.
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank);
// One process, one device: ndev must be 1 (the emulation has one device).
ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
// Sum over ranks, identical bits on every rank (reduced once at rank 0, then broadcast).
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

