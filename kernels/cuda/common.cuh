// Shared by the CUDA op files: the launch macro and error notes, grid sizing, warp sums, the
// row-major GEMM wrapper over cuBLAS, the reduction workspace, and the deterministic two-pass
// column reduction that every "sum over rows" gradient uses.
//
// The same sources also build as plain C++ for the host emulation (MV_CUDA_EMU, see
// tests/cuda/emu/), which is how machines without a GPU run the CUDA kernels' logic: hence
// launches go through LAUNCH() and dynamic shared memory through DYN_SMEM().
#pragma once
#ifdef MV_CUDA_EMU
#include "tests/cuda/emu/emu.h"
#else
#include <cuda_runtime.h>
#endif
#include <cublas_v2.h>
#include <stddef.h>
#include <stdint.h>
#include "kernels/cuda/ops_cuda.h"

#define FULL_MASK 0xffffffffu
#define LOG2E_F 1.44269504088896341f

// Records the first failure of the backend (reported by mv_cuda_status). mv_cuda_note itself is
// declared in ops_cuda.h (C linkage: the GPU model's C code notes its copies' failures too).
void mv_cuda_note_blas(cublasStatus_t st, const char *where);
// The same for other libraries' failures (NCCL): "error in WHERE: WHAT".
void mv_cuda_note_text(const char *where, const char *what);

#ifdef MV_CUDA_EMU
// The arguments are evaluated at the launch, as a GPU's are: under MV_EMU_STREAMS the kernel runs
// later, from its stream's queue (tests/cuda/emu/emu.h).
#define LAUNCH(kernel, grid, block, smem, stream, ...) \
    do { \
        emu_launch((grid), (block), (smem), (stream), [=, emu_args = std::make_tuple(__VA_ARGS__)]() { \
            std::apply([&](const auto &...emu_a) { kernel(emu_a...); }, emu_args); }); \
    } while (0)
#define DYN_SMEM(type, name) type *name = (type *)emu_dyn_smem()
#else
#define LAUNCH(kernel, grid, block, smem, stream, ...) \
    do { kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__); \
         mv_cuda_note(cudaGetLastError(), __func__); } while (0)
#define DYN_SMEM(type, name) extern __shared__ type name[]
#endif

// Blocks for a grid-stride loop over n items. The cap keeps grids moderate; results never depend
// on the grid size (each item has one writer).
static inline unsigned grid_for(size_t n, int threads) {
    size_t g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    return (unsigned)(g > 65535 * 4 ? 65535 * 4 : g);
}
#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Sum over groups of G consecutive lanes (G a power of two <= 32); every lane gets its group's sum.
template <int G, typename T>
__device__ __forceinline__ T group_sum(T v) {
    #pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

// Row-major GEMM with cblas_sgemm's meaning (C = alpha op(A) op(B) + beta C, C [M,N]) on the
// backend's cuBLAS handle: fp32, or TF32 tensor cores when mv_cuda_set_tf32(true).
void gemm_rm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc, cudaStream_t stream);
// Device scratch of at least `bytes` for reduction partials. It grows when needed, without
// waiting for the device: the buffer it replaces is freed by mv_cuda_release_retired.
void *mv_cuda_workspace(size_t bytes);

// ---- BF16 mode: operands converted once per op ------------------------------------------------
// gemm_rm converts both operands of every GEMM in BF16 mode. An op whose GEMMs share operands
// (conv3x3's nine taps read shifted views of one padded input) converts them once instead:
// bf16_pack into mv_cuda_bf16_operands() (a second workspace, the op's own until it returns),
// then gemm_rm_bf16 (declared in ops_cuda.h, where the tests reach it) on views of the copies,
// with the leading dimensions of the fp32 layout.
uint16_t *mv_cuda_bf16_operands(size_t elems);
void bf16_pack(uint16_t *out, const float *in, size_t n, cudaStream_t stream);

// ---- deterministic column sums ----------------------------------------------------------------
// total(j) = sum over n < rows of f(n, j), for j < J, handed to emit(j, total). Pass 1 gives each
// of S row slices a partial per column (8 row lanes per column, added in a fixed order); pass 2
// adds the S partials in slice order. S depends on `rows` only, so the result does not depend on
// the device. f and emit are small functor structs with __device__ operator().
#define COLSUM_LANES 8
template <typename T, typename F>
__global__ void colsum_partial_kernel(T *part, F f, int rows, int J, int rows_per) {
    __shared__ T sh[COLSUM_LANES][33];
    int j = blockIdx.x * 32 + threadIdx.x, s = blockIdx.y;
    int r0 = s * rows_per, r1 = r0 + rows_per < rows ? r0 + rows_per : rows;
    T acc = 0;
    if (j < J)
        for (int n = r0 + threadIdx.y; n < r1; n += COLSUM_LANES) acc += f(n, j);
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < J) {
        T t = sh[0][threadIdx.x];
        for (int y = 1; y < COLSUM_LANES; y++) t += sh[y][threadIdx.x];
        part[(size_t)s * J + j] = t;
    }
}

template <typename T, typename E>
__global__ void colsum_final_kernel(const T *part, E emit, int S, int J) {
    GRID_STRIDE(j, (size_t)J) {
        T t = part[j];
        for (int s = 1; s < S; s++) t += part[(size_t)s * J + j];
        emit((int)j, t);
    }
}

static inline int colsum_slices(int rows) {
    int s = (rows + 127) / 128;
    return s < 1 ? 1 : (s > 256 ? 256 : s);
}

template <typename T, typename F, typename E>
void colsum(F f, E emit, int rows, int J, cudaStream_t stream) {
    if (J <= 0) return;
    int S = colsum_slices(rows), rows_per = (rows + S - 1) / S;
    T *part = (T *)mv_cuda_workspace(sizeof(T) * (size_t)S * J);
    if (!part) return;
    dim3 grid((J + 31) / 32, S), block(32, COLSUM_LANES);
    LAUNCH((colsum_partial_kernel<T, F>), grid, block, 0, stream, part, f, rows, J, rows_per);
    LAUNCH((colsum_final_kernel<T, E>), grid_for(J, 256), 256, 0, stream, part, emit, S, J);
}

// Emitters shared by several ops: dst[j] += total (float), or dst[j] = total.
struct EmitAddF {
    float *dst;
    __device__ void operator()(int j, float t) const { dst[j] += t; }
};

// The plain column of a row-major matrix a[rows, ld]: f(n, j) = a[n*ld + j].
struct MatrixEntry {
    const float *a;
    int ld;
    __device__ float operator()(int n, int j) const { return a[(size_t)n * ld + j]; }
};
