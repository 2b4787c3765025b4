// The emulated NCCL (tests/cuda/emu/nccl/nccl.h) over MPI on host memory, so that the multi-GPU
// code of dist/nccl_comm.cu runs across real processes under mpirun in CI, over the host
// emulation of the GPU (streams and events are emu_runtime.cpp's).
//
// What it checks that real NCCL would not report (real NCCL hangs or corrupts instead):
//  - the unique id every rank passes is rank 0's: a tag, a nonce and a checksum that only
//    ncclGetUniqueId writes, compared across ranks at ncclCommInitRank (a broadcast that did not
//    happen leaves zeros, a wrong one different bytes);
//  - before each all-reduce, that every rank issues it with the same count, type and operation
//    (a rank that planned other buckets, skipped one, or put a SyncBN sum of doubles elsewhere
//    in the sequence fails on every rank);
//  - that the stream is the legacy stream or one created and not yet destroyed.
// Every check reaches the same verdict on every rank (the ranks decide from the same gathered
// data), so a failure is an error code everywhere, never a rank left waiting.
//
// Under MV_EMU_STREAMS (emu.h) a collective is queued on its stream with its cross-rank check
// and runs when a drain reaches it; a communicator's collectives run in issue order whatever
// their streams (as NCCL serialises them), so every rank's MPI calls come in the same order.
// A collective that fails there has no caller left to hear it: the rank prints why and aborts
// (every rank reaches the same verdict, so every rank does).
// On a GPU a queued collective progresses while its host waits elsewhere; here it runs only in a
// drain. A rank that drains (a checkpoint's download on rank 0) would then wait in the
// collective for a rank that polls a host MPI request (dist/comm.c's broadcast of the
// checkpoint's result) and never drains: deadlock. So MPI_Test and MPI_Testsome, which every
// host-side MPI wait of maskvim polls, first run the collectives still queued (MPI's profiling
// interface: PMPI_* are the library's own). Linked into the program, these take the place of the
// library's for all callers; in the emulated GPU plugin they serve only its own calls.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <nccl.h>
#include "tests/cuda/emu/emu.h"
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <algorithm>
#include <vector>

namespace {

const char kTag[16] = "maskvim-emu-id";   // zero-padded to 16 bytes
const uint32_t kCommMagic = 0x6e63636cu;    // "nccl"

// The bytes of a unique id that carry meaning; the rest of the 128 stay zero.
struct IdBody {
    char tag[16];
    uint64_t nonce;
    uint64_t check;
};
static_assert(sizeof(IdBody) <= NCCL_UNIQUE_ID_BYTES, "unique id body too large");

uint64_t id_check(uint64_t nonce) {   // splitmix64 of the nonce: zeros never pass
    uint64_t z = nonce + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

bool id_valid(const ncclUniqueId &id) {
    IdBody b;
    memcpy(&b, id.internal, sizeof b);
    return memcmp(b.tag, kTag, sizeof kTag) == 0 && b.nonce != 0 && b.check == id_check(b.nonce);
}

// NCCL prints its warnings; the emulation says what it found wrong the same way.
__attribute__((format(printf, 1, 2))) void warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nccl emu: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

bool mpi_usable() {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    return inited && !finalized;
}

}  // namespace

struct ncclComm {
    uint32_t magic;
    int rank, nranks;
    MPI_Comm mpi;            // MPI_COMM_NULL for a communicator of one rank
    unsigned long calls;     // collectives issued, for messages
    EmuOrder *order;         // its collectives, queued in issue order (MV_EMU_STREAMS)
};

namespace {

std::vector<ncclComm *> g_comms;   // live communicators, for the MPI_Test hook

ncclComm *new_comm(int rank, int nranks, MPI_Comm mpi) {
    ncclComm *c = (ncclComm *)calloc(1, sizeof *c);
    if (!c) return NULL;
    g_comms.push_back(c);
    c->magic = kCommMagic;
    c->rank = rank;
    c->nranks = nranks;
    c->mpi = mpi;
    c->order = emu_order_new();
    return c;
}

bool comm_ok(const ncclComm *c) { return c && c->magic == kCommMagic; }

}  // namespace

extern "C" {

const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (emulated NCCL)";
    case ncclSystemError: return "unhandled system error (emulated NCCL: MPI failed or is not initialised)";
    case ncclInternalError: return "internal error (emulated NCCL)";
    case ncclInvalidArgument: return "invalid argument (emulated NCCL; see its message on stderr)";
    case ncclInvalidUsage: return "invalid usage (emulated NCCL; see its message on stderr)";
    case ncclRemoteError: return "remote process exited or there was a network error (emulated NCCL)";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code (emulated NCCL)";
    }
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    if (!id) return ncclInvalidArgument;
    static unsigned long counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    IdBody b;
    memset(&b, 0, sizeof b);
    memcpy(b.tag, kTag, sizeof kTag);
    b.nonce = id_check(((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40) ^ ++counter);
    if (b.nonce == 0) b.nonce = 1;
    b.check = id_check(b.nonce);
    memset(id, 0, sizeof *id);
    memcpy(id->internal, &b, sizeof b);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
    if (!out) return ncclInvalidArgument;
    *out = NULL;
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        warn("ncclCommInitRank: rank %d of %d", rank, nranks);
        return ncclInvalidArgument;
    }
    if (nranks == 1) {
        if (!id_valid(id)) {
            warn("ncclCommInitRank: rank %d of %d: the unique id is not one ncclGetUniqueId made", rank, nranks);
            return ncclInvalidArgument;
        }
        *out = new_comm(0, 1, MPI_COMM_NULL);
        return *out ? ncclSuccess : ncclSystemError;
    }
    if (!mpi_usable()) {
        warn("ncclCommInitRank: rank %d of %d needs MPI, which is not initialised", rank, nranks);
        return ncclSystemError;
    }
    int world = 0, mpi_rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm mpi;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &mpi) != MPI_SUCCESS) return ncclSystemError;
    // Every rank gathers every rank's (rank, nranks, id) and judges them all: same verdict.
    struct Entry {
        int rank, nranks;
        ncclUniqueId id;
    } mine, *all = (Entry *)calloc((size_t)world, sizeof(Entry));
    memset(&mine, 0, sizeof mine);
    mine.rank = rank;
    mine.nranks = nranks;
    mine.id = id;
    int err = all ? MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, mpi)
                  : MPI_ERR_NO_MEM;
    int got_all = err == MPI_SUCCESS, everywhere = 0;
    // A failed gather (here: no memory) fails on every rank too.
    MPI_Allreduce(&got_all, &everywhere, 1, MPI_INT, MPI_MIN, mpi);
    ncclResult_t r = ncclSuccess;
    if (!everywhere) {
        r = ncclSystemError;
    } else if (!id_valid(all[0].id)) {
        warn("ncclCommInitRank: rank 0's unique id is not one ncclGetUniqueId made (%d ranks)", world);
        r = ncclInvalidArgument;
    } else {
        for (int k = 0; k < world && r == ncclSuccess; k++) {
            if (all[k].nranks != world || all[k].rank != k) {
                warn("ncclCommInitRank: MPI rank %d joined as rank %d of %d; the emulation needs rank = MPI rank "
                     "and nranks = MPI world size (%d)", k, all[k].rank, all[k].nranks, world);
                r = ncclInvalidUsage;
            } else if (memcmp(&all[k].id, &all[0].id, sizeof(ncclUniqueId)) != 0) {
                warn("ncclCommInitRank: rank %d's unique id differs from rank 0's (the id broadcast failed; %d ranks)",
                     k, world);
                r = ncclInvalidArgument;
            }
        }
    }
    free(all);
    if (r != ncclSuccess) {
        MPI_Comm_free(&mpi);
        return r;
    }
    *out = new_comm(mpi_rank, world, mpi);
    if (!*out) {
        MPI_Comm_free(&mpi);
        return ncclSystemError;
    }
    return ncclSuccess;
}

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int ndev, const int *devlist) {
    if (!comms || ndev != 1 || (devlist && devlist[0] != 0)) {
        warn("ncclCommInitAll: %d devices (first %d): the emulation has one device, 0", ndev,
             devlist && ndev > 0 ? devlist[0] : 0);
        return ncclInvalidArgument;
    }
    comms[0] = new_comm(0, 1, MPI_COMM_NULL);
    return comms[0] ? ncclSuccess : ncclSystemError;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm) return ncclSuccess;
    if (!comm_ok(comm)) return ncclInvalidArgument;
    emu_order_free(comm->order);   // its queued collectives run first (they use comm->mpi)
    g_comms.erase(std::remove(g_comms.begin(), g_comms.end(), comm), g_comms.end());
    if (comm->mpi != MPI_COMM_NULL && mpi_usable()) MPI_Comm_free(&comm->mpi);
    comm->magic = 0;
    free(comm);
    return ncclSuccess;
}

}  // extern "C"

namespace {

// The all-reduce itself, once this rank's arguments are judged (local_ok), with the cross-rank
// check: at the call, or when its stream's queue reaches it.
ncclResult_t all_reduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                        ncclComm_t comm, int local_ok, unsigned long call) {
    size_t elem = type == ncclFloat ? sizeof(float) : type == ncclDouble ? sizeof(double) : 0;
    if (comm->nranks == 1) {
        if (!local_ok) return ncclInvalidArgument;
        if (count && send != recv) memmove(recv, send, count * elem);
        return ncclSuccess;
    }
    if (!mpi_usable()) return ncclSystemError;
    // The ranks' descriptors, and each one's negation, by MAX: min and max of each field.
    long long d[8] = {(long long)count, -(long long)count, (long long)type, -(long long)type,
                      (long long)op,    -(long long)op,    local_ok,        -(long long)local_ok};
    long long e[8];
    if (MPI_Allreduce(d, e, 8, MPI_LONG_LONG, MPI_MAX, comm->mpi) != MPI_SUCCESS) return ncclSystemError;
    if (e[0] != -e[1] || e[2] != -e[3] || e[4] != -e[5]) {
        if (comm->rank == 0)
            fprintf(stderr, "nccl emu: ncclAllReduce #%lu: the ranks disagree (count %lld..%lld, type %lld..%lld, "
                    "operation %lld..%lld): they must issue the same collectives in the same order\n",
                    call, -e[1], e[0], -e[3], e[2], -e[5], e[4]);
        return ncclInvalidUsage;
    }
    if (-e[7] == 0) return ncclInvalidArgument;   // some rank's arguments were bad (it said which)
    // Reduced once at rank 0, then broadcast: every rank gets the same bits, as with NCCL.
    MPI_Datatype mt = type == ncclFloat ? MPI_FLOAT : MPI_DOUBLE;
    char *r = (char *)recv;
    const char *s = (const char *)send;
    for (size_t done = 0; done < count;) {
        int n = count - done > (size_t)INT_MAX ? INT_MAX : (int)(count - done);
        const void *sb = s + done * elem;
        void *rb = r + done * elem;
        int err;
        if (comm->rank == 0)
            err = MPI_Reduce(sb == rb ? MPI_IN_PLACE : sb, rb, n, mt, MPI_SUM, 0, comm->mpi);
        else
            err = MPI_Reduce(sb, NULL, n, mt, MPI_SUM, 0, comm->mpi);
        if (err == MPI_SUCCESS) err = MPI_Bcast(rb, n, mt, 0, comm->mpi);
        if (err != MPI_SUCCESS) return ncclSystemError;
        done += (size_t)n;
    }
    return ncclSuccess;
}

}  // namespace

extern "C" {

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
    if (!comm_ok(comm)) return ncclInvalidArgument;
    unsigned long call = ++comm->calls;
    size_t elem = type == ncclFloat ? sizeof(float) : type == ncclDouble ? sizeof(double) : 0;
    int local_ok = elem != 0 && op == ncclSum && emu_stream_ok(stream) && (count == 0 || (send && recv));
    if (!local_ok)
        warn("ncclAllReduce: bad type, operation, stream or buffer (type %d, operation %d, %zu elements)", (int)type,
             (int)op, count);
    if (!emu_streams_deferred()) {
        EmuDeviceWork work;   // the buffers are device memory (MV_EMU_GUARD)
        return all_reduce(send, recv, count, type, op, comm, local_ok, call);
    }
    // A bad stream is still this rank's part of the collective (its check fails everywhere): it
    // goes on the legacy stream.
    cudaStream_t on = emu_stream_ok(stream) ? stream : 0;
    emu_stream_submit(on, [=]() {
        ncclResult_t r = all_reduce(send, recv, count, type, op, comm, local_ok, call);
        if (r != ncclSuccess) {
            warn("ncclAllReduce #%lu, run from its stream's queue (MV_EMU_STREAMS): %s", call, ncclGetErrorString(r));
            abort();
        }
    }, comm->order);
    return ncclSuccess;
}

// The host polls an MPI request: let the queued collectives progress first (above).
int MPI_Test(MPI_Request *request, int *flag, MPI_Status *status) {
    for (size_t i = 0; i < g_comms.size(); i++) emu_order_run(g_comms[i]->order);
    return PMPI_Test(request, flag, status);
}

int MPI_Testsome(int incount, MPI_Request array_of_requests[], int *outcount, int array_of_indices[],
                 MPI_Status array_of_statuses[]) {
    for (size_t i = 0; i < g_comms.size(); i++) emu_order_run(g_comms[i]->order);
    return PMPI_Testsome(incount, array_of_requests, outcount, array_of_indices, array_of_statuses);
}

}  // extern "C"
