// LayerNorm over the channels of each row: one warp per row for the row statistics and the
// input gradient; the weight and bias gradients are deterministic column sums. Every sum is
// accumulated in double, as on the CPU.
#include "kernels/cuda/common.cuh"

#define LN_WARPS 8   // rows per block of 256 threads

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *in, const float *w,
                                         const float *b, int N, int C, float eps) {
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;   // the whole warp leaves together
    const float *x = in + (size_t)row * C;
    float *o = out + (size_t)row * C;
    // The CPU op's arithmetic (kernels/cpu/layernorm.c): the mean as x[0] + mean(x - x[0]) and
    // the variance about it, both summed in double (float sums were 1e-5 off on the rows patch
    // merging pads with zeros; double also never overflows, so huge rows need no redo).
    double x0 = x[0], s = 0.0, v = 0.0;
    for (int c = lane; c < C; c += 32) s += (double)x[c] - x0;
    double md = x0 + group_sum<32>(s) / C;
    for (int c = lane; c < C; c += 32) {
        double d = x[c] - md;
        v += d * d;
    }
    float m = (float)md, r = (float)(1.0 / sqrt(group_sum<32>(v) / C + eps));
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

__global__ void layernorm_backward_kernel(float *din, const float *dout, const float *in, const float *w,
                                          const float *mean, const float *rstd, int N, int C) {
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = in + (size_t)row * C, *g = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    double sgd = 0.0, sgxd = 0.0;   // in double, as the CPU op
    for (int c = lane; c < C; c += 32) {
        float gw = g[c] * w[c];
        sgd += gw;
        sgxd += (double)gw * (x[c] - m);
    }
    float sg = (float)(group_sum<32>(sgd) / C), sgx = (float)(group_sum<32>(sgxd) * r / C);
    float *d = din + (size_t)row * C;
    for (int c = lane; c < C; c += 32) d[c] += r * (g[c] * w[c] - sg - (x[c] - m) * r * sgx);
}

// Columns [0, C) give dw (dy * xhat), columns [C, 2C) give db (dy).
struct LNParamGrad {
    const float *dout, *in, *mean, *rstd;
    int C;
    __device__ double operator()(int n, int j) const {
        if (j >= C) return dout[(size_t)n * C + j - C];
        size_t i = (size_t)n * C + j;
        return (double)dout[i] * (in[i] - mean[n]) * (double)rstd[n];
    }
};
struct LNParamEmit {
    float *dw, *db;
    int C;
    __device__ void operator()(int j, double t) const {
        if (j < C) { if (dw) dw[j] += (float)t; }
        else if (db) db[j - C] += (float)t;
    }
};

extern "C" void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *in, const float *w,
                                       const float *b, int N, int C, float eps, cudaStream_t stream) {
    if (N <= 0) return;
    LAUNCH(layernorm_forward_kernel, (N + LN_WARPS - 1) / LN_WARPS, 32 * LN_WARPS, 0, stream, out, mean, rstd,
           in, w, b, N, C, eps);
}

extern "C" void layernorm_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                                        const float *w, const float *mean, const float *rstd, int N, int C,
                                        cudaStream_t stream) {
    if (N <= 0) return;
    if (din)
        LAUNCH(layernorm_backward_kernel, (N + LN_WARPS - 1) / LN_WARPS, 32 * LN_WARPS, 0, stream, din, dout, in,
               w, mean, rstd, N, C);
    if (dw || db)
        colsum<double>(LNParamGrad{dout, in, mean, rstd, C}, LNParamEmit{dw, db, C}, N, 2 * C, stream);
}
