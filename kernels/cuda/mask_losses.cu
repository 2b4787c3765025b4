// The loss helpers of kernels/cpu/ops_loss.h on the GPU: double fills, double sums and label
// counts, the keep-ratio loss and the position loss, with every scalar kept in device memory so
// that a step needs no host round trip. Sums are deterministic: each block of a fixed-size grid (its size
// depends on n only) writes a partial from a fixed shared-memory tree, and one thread adds the
// partials in block order.
#include "kernels/cuda/common.cuh"

#define RED_THREADS 256
#define RED_MAX_BLOCKS 1024

__global__ void fill_double_kernel(double *x, double v, size_t n) {
    GRID_STRIDE(i, n) x[i] = v;
}

// Pass 1 of a double sum of f(i) over i < n: one partial per block.
template <typename F>
__global__ void dsum_partial_kernel(double *partial, F f, size_t n) {
    __shared__ double sh[RED_THREADS];
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * RED_THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * RED_THREADS)
        acc += f(i);
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = RED_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

// Pass 2: *out = (sum of the partials in block order) / divisor.
__global__ void dsum_final_kernel(double *out, const double *partial, int nblocks, double divisor) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < nblocks; i++) t += partial[i];
        *out = t / divisor;
    }
}

template <typename F>
static void dsum(double *out, F f, size_t n, double divisor, cudaStream_t stream) {
    size_t b = (n + RED_THREADS - 1) / RED_THREADS;
    int nblocks = b < 1 ? 1 : (b > RED_MAX_BLOCKS ? RED_MAX_BLOCKS : (int)b);
    double *partial = (double *)mv_cuda_workspace(sizeof(double) * nblocks);
    if (!partial) return;
    LAUNCH((dsum_partial_kernel<F>), nblocks, RED_THREADS, 0, stream, partial, f, n);
    LAUNCH(dsum_final_kernel, 1, 32, 0, stream, out, partial, nblocks, divisor);
}

struct FloatEntry {
    const float *x;
    __device__ double operator()(size_t i) const { return (double)x[i]; }
};

struct ValidLabel {
    const uint8_t *labels;
    __device__ double operator()(size_t i) const { return labels[i] != 255 ? 1.0 : 0.0; }
};

// (m - target)^2 in double, writing dm on the way (each element has one writer).
struct PositionTerm {
    float *dm;
    const float *m, *target;
    double alpha2, n;
    __device__ double operator()(size_t i) const {
        float d = m[i] - target[i];
        dm[i] = (float)(alpha2 * 2.0 * d / n);
        return (double)d * d;
    }
};

__global__ void add_scaled_double_kernel(double *acc, const double *x, double s) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *acc += s * *x;
}

__global__ void ratio_loss_kernel(double *loss, float *grad, const double *stats, const int *group,
                                  const float *lambda, int nb, int per_stage, double alpha1, double world) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *loss = mv_ratio_loss_eval(grad, stats, group, lambda, nb, per_stage, alpha1, world);
}

extern "C" void fill_double_cuda(double *x, double v, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(fill_double_kernel, grid_for(n, 256), 256, 0, stream, x, v, n);
}

extern "C" void sum_to_double_cuda(double *out, const float *x, size_t n, cudaStream_t stream) {
    dsum(out, FloatEntry{x}, n, 1.0, stream);
}

extern "C" void count_valid_cuda(double *out, const uint8_t *labels, size_t n, cudaStream_t stream) {
    dsum(out, ValidLabel{labels}, n, 1.0, stream);
}

extern "C" void add_scaled_double_cuda(double *acc, const double *x, double s, cudaStream_t stream) {
    LAUNCH(add_scaled_double_kernel, 1, 32, 0, stream, acc, x, s);
}

extern "C" void ratio_loss_cuda(double *loss, float *grad, const double *stats, const int *group,
                                const float *lambda, int nb, int per_stage, double alpha1, double world,
                                cudaStream_t stream) {
    LAUNCH(ratio_loss_kernel, 1, 32, 0, stream, loss, grad, stats, group, lambda, nb, per_stage, alpha1, world);
}

extern "C" void position_loss_cuda(double *loss, float *dm, const float *m, const float *target, size_t n,
                                   double alpha2, cudaStream_t stream) {
    dsum(loss, PositionTerm{dm, m, target, alpha2, (double)n}, n, n ? (double)n : 1.0, stream);
}
