// Host emulation of the small subset of CUDA C++ that kernels/cuda uses, so that machines
// without a GPU (CI, laptops) can run the CUDA kernels' logic against the CPU ops.
//
// kernels/cuda/*.cu compile as plain C++ with MV_CUDA_EMU defined and this header in place of
// <cuda_runtime.h>. A launch runs its blocks one after another; the threads of a block are
// cooperative fibers (ucontext) that switch only at __syncthreads and warp shuffles, so barrier
// and shuffle semantics are those of the GPU (a missing barrier shows up as a wrong result or a
// reported deadlock, never as a race). __shared__ variables become function statics, which is
// right because one block runs at a time. Device memory is host memory; the CUDA runtime and
// cuBLAS calls the kernels and tests make are implemented by emu_runtime.cpp (cuBLAS on OpenBLAS).
// Emulation checks logic and indexing, not speed, memory-model subtleties or warp divergence.
#pragma once
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <functional>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
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

void emu_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
// True for the legacy/per-thread streams and for streams created and not yet destroyed.
bool emu_stream_ok(cudaStream_t s);

// cuda_runtime.h's typed cudaMalloc (this header stands in for cuda_runtime.h, which has it).
template <class T>
static inline cudaError_t cudaMalloc(T **ptr, size_t size) {
    return cudaMalloc((void **)(void *)ptr, size);
}
void *emu_dyn_smem(void);
void emu_syncthreads(void);
// Warp exchange: every live lane of the calling warp passes `bits` and receives lane src's.
uint64_t emu_warp_exchange(uint64_t bits, int src);
int emu_lane(void);

#define __syncthreads() emu_syncthreads()

template <typename T>
static inline T emu_shuffle(T v, int src) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    uint64_t got = emu_warp_exchange(bits, src & 31);
    T r;
    memcpy(&r, &got, sizeof r);
    return r;
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    (void)width;
    return emu_shuffle(v, emu_lane() ^ lane_mask);
}
template <typename T>
static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    (void)mask;
    (void)width;
    return emu_shuffle(v, src);
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
