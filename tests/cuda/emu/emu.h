// Host emulation of the small subset of CUDA C++ that kernels/cuda uses, so that machines
// without a GPU (CI, laptops) can run the CUDA kernels' logic against the CPU ops.
//
// kernels/cuda/*.cu compile as plain C++ with MV_CUDA_EMU defined and this header in place of
// <cuda_runtime.h>. A launch runs its blocks one after another; the threads of a block are
// cooperative fibers (ucontext) that switch only at __syncthreads and warp shuffles, so barrier
// and shuffle semantics are those of the GPU (a missing barrier shows up as a wrong result or a
// reported deadlock, never as a race). __shared__ variables become function statics in a section
// of their own, which is right because one block runs at a time. Device memory is host memory;
// the CUDA runtime and cuBLAS calls the kernels and tests make are implemented by
// emu_runtime.cpp (cuBLAS on OpenBLAS), which keeps a table of the allocations: cudaMemcpy's kind
// must match its pointers, and with MV_EMU_GUARD=1 device memory is inaccessible (PROT_NONE)
// except during the emulation's own device work, so that a host access to it segfaults.
//
// Hazards that a GPU leaves to chance are made to show (emu.cpp): shared memory starts every
// block as 0xff bytes (NaN floats) and so does new device memory (emu_runtime.cpp);
// MV_EMU_THREAD_ORDER picks how the threads of a block take turns between barriers and the order
// of the blocks of a grid:
//   forward (default)  round-robin in thread order: every thread advances one barrier phase per
//                      round; blocks in index order. Hides a read of a LOWER thread's write made
//                      without a barrier.
//   reverse            warp by warp from the last, each warp running (through its shuffles) until
//                      it waits at __syncthreads or ends, lanes from the last; blocks from the
//                      last. Exposes that read, and a shared buffer rewritten after a few
//                      shuffles without a barrier while slower warps still read it.
//   shuffle[:seed]     per block, round-robin or warp by warp at random, with a fresh random order
//                      every round; blocks shuffled per launch. Seeded, so a failure repeats.
// Divergent barriers and shuffles, shuffles that read a lane which did not take part (it exited,
// or is past a partial warp's last thread), masks that are not the set of calling lanes, and
// launches past the GPU's grid, block or 48 KiB shared-memory limits abort with "emu: ...".
//
// Streams (emu_runtime.cpp): by default every launch, copy, cuBLAS call and NCCL collective runs
// at its call, so a stream orders nothing and a missing event or stream wait cannot show.
// MV_EMU_STREAMS=<mode> queues that work per stream instead (closures, FIFO) and runs it only
// when a synchronisation forces it: cudaStreamSynchronize, cudaStreamQuery when it answers
// "complete", cudaEventSynchronize/Query, cudaDeviceSynchronize, cudaFree, a cudaMemcpy to or from
// the host. cudaEventRecord marks a position in its stream's queue and cudaStreamWaitEvent holds
// the waiting stream's later work until that position has run; the legacy default stream waits
// for blocking streams and they for it, as CUDA's rules say, streams created with
// cudaStreamNonBlocking do not. Each NCCL communicator runs its collectives in issue order, as
// NCCL does, so that every rank runs its MPI traffic in the same order. The modes:
//   lazy               a drain runs only what the awaited stream needs, the awaited stream's own
//                      work as soon as it can run and other streams' work only when it must: a
//                      consumer that forgot to wait for another stream's producer reads stale data.
//   lazy-reverse       a drain first runs every other stream's runnable work (latest created
//                      stream first), the awaited stream's last: a producer that forgot to wait
//                      for another stream's reader overwrites what it has not read yet.
//   lazy-shuffle[:seed] a drain runs the runnable heads of all queues in a seeded random order.
// Emulation checks logic and indexing, not speed, the memory model or the timing of streams (no
// two pieces of work ever run at once).
#pragma once
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <functional>
#include <tuple>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
// In a section of their own so that emu.cpp can poison them before every block.
#define __shared__ static __attribute__((section("emu_shared")))
#define __forceinline__ inline
#define __launch_bounds__(...)

// The running thread's indices. blockIdx/blockDim/gridDim are per launch/block; threadIdx is
// per fiber.
extern uint3 emu_block_idx;
extern dim3 emu_block_dim, emu_grid_dim;
const uint3 &emu_thread_idx(void);
#define threadIdx (emu_thread_idx())
#define blockIdx emu_block_idx
#define blockDim emu_block_dim
#define gridDim emu_grid_dim
#define warpSize 32

// A launch on `stream` (queued there under MV_EMU_STREAMS); without one, on the legacy stream.
void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const std::function<void()> &body);
void emu_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
// Sets the thread and block order as MV_EMU_THREAD_ORDER does (forward, reverse, shuffle[:seed]);
// the variable is read at the first launch unless this was called before.
void emu_set_thread_order(const char *spec);
// The largest cudaFuncAttributeMaxDynamicSharedMemorySize set so far: launches may ask for
// dynamic shared memory above 48 KiB up to it (any kernel's: the emulation cannot tell them apart).
extern size_t emu_smem_optin;
// True for the legacy/per-thread streams and for streams created and not yet destroyed.
bool emu_stream_ok(cudaStream_t s);
// Stream ordering (MV_EMU_STREAMS, above): emu_set_streams takes the variable's values
// ("immediate" or "" for the default) and drains what is queued before it switches; the variable
// is read at the first stream operation unless this was called before.
void emu_set_streams(const char *spec);
bool emu_streams_deferred(void);
// Work that must run in issue order whatever its stream (an NCCL communicator's collectives).
struct EmuOrder;
EmuOrder *emu_order_new(void);
// Runs what the order still has queued (and what that waits for); nothing when called from
// inside queued work.
void emu_order_run(EmuOrder *order);
// emu_order_run, then frees it.
void emu_order_free(EmuOrder *order);
// Device work on `stream`: run now (immediate mode) or queued there, after the work of `order`
// issued before it when `order` is given. False for a stream that is not live (nothing is run).
bool emu_stream_submit(cudaStream_t stream, std::function<void()> work, EmuOrder *order);
// Device work of the emulation itself (a launch, a cuBLAS call, a copy, an NCCL collective) runs
// between these (nested calls count): with MV_EMU_GUARD=1 device memory is readable and writable
// only then (emu_runtime.cpp), so host code that touches a device pointer faults as on a GPU.
// emu_set_guard(true) does what MV_EMU_GUARD=1 does, for the allocations made after the call
// (the variable is read at the first allocation unless this was called before).
void emu_set_guard(bool on);
void emu_device_begin(void);
void emu_device_end(void);
struct EmuDeviceWork {
    EmuDeviceWork() { emu_device_begin(); }
    ~EmuDeviceWork() { emu_device_end(); }
    EmuDeviceWork(const EmuDeviceWork &) = delete;
    EmuDeviceWork &operator=(const EmuDeviceWork &) = delete;
};

// cuda_runtime.h's typed cudaMalloc (this header stands in for cuda_runtime.h, which has it).
template <class T>
static inline cudaError_t cudaMalloc(T **ptr, size_t size) {
    return cudaMalloc((void **)(void *)ptr, size);
}
void *emu_dyn_smem(void);
void emu_syncthreads(const char *file, int line);
// Warp exchange: every live lane of the calling warp passes `bits` and receives lane src's. `mask`
// is the intrinsic's member mask; file/line name the call, to report divergent shuffles.
uint64_t emu_warp_exchange(uint64_t bits, int src, unsigned mask, const char *file, int line);
int emu_lane(void);

#define __syncthreads() emu_syncthreads(__FILE__, __LINE__)

// The lane read by a shuffle of `width`-lane segments (a power of two up to 32; CUDA's rules).
int emu_shfl_width_check(int width);
template <typename T>
static inline T emu_shuffle(T v, int src, unsigned mask, const char *file, int line) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    uint64_t got = emu_warp_exchange(bits, src, mask, file, line);
    T r;
    memcpy(&r, &got, sizeof r);
    return r;
}
// __builtin_FILE/__builtin_LINE as default arguments name the caller's line (g++).
template <typename T>
static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, const char *file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
    int w = emu_shfl_width_check(width), lane = emu_lane();
    return emu_shuffle(v, (lane & ~(w - 1)) + (src & (w - 1)), mask, file, line);
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                                const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    int w = emu_shfl_width_check(width), lane = emu_lane(), src = lane ^ lane_mask;
    if (src >= (lane & ~(w - 1)) + w) src = lane;   // a later segment: the caller's own value
    return emu_shuffle(v, src & 31, mask, file, line);
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                                 const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    int w = emu_shfl_width_check(width), lane = emu_lane(), src = lane + (int)delta;
    if (src >= (lane & ~(w - 1)) + w) src = lane;
    return emu_shuffle(v, src, mask, file, line);
}
template <typename T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                               const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    int w = emu_shfl_width_check(width), lane = emu_lane(), src = lane - (int)delta;
    if (src < (lane & ~(w - 1))) src = lane;
    return emu_shuffle(v, src, mask, file, line);
}

static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
template <typename T>
static inline T __ldg(const T *p) { return *p; }
