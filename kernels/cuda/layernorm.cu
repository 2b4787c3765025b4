// LayerNorm over the channels of each row: one warp per row for the row statistics and the
// input gradient; the weight and bias gradients are deterministic column sums.
#include "kernels/cuda/common.cuh"

#define LN_WARPS 8   // rows per block of 256 threads

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *in, const float *w,
                                         const float *b, int N, int C, float eps) {
    int row = blockIdx.x * LN_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;   // the whole warp leaves together
    const float *x = in + (size_t)row * C;
    float *o = out + (size_t)row * C;
    // Mean as x[0] + mean(x - x[0]), and a double redo when a float sum overflows, as the CPU op
    // (kernels/cpu/layernorm.c): constant rows normalise to the bias, huge rows normalise.
    float x0 = x[0], s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c] - x0;
    float m = x0 + group_sum<32>(s) / C, v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    v = group_sum<32>(v);
    float r = 1.0f / sqrtf(v / C + eps);
    if (isinf(m) || isinf(v)) {   // the float sums overflowed (|x| ~2e19 and up)
        double sd = 0.0, vd = 0.0;
        for (int c = lane; c < C; c += 32) sd += x[c];
        double md = group_sum<32>(sd) / C;
        for (int c = lane; c < C; c += 32) {
            double d = x[c] - md;
            vd += d * d;
        }
        m = (float)md;
        r = (float)(1.0 / sqrt(group_sum<32>(vd) / C + eps));
    }
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
    float m = mean[row], r = rstd[row], sg = 0.0f, sgx = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float gw = g[c] * w[c];
        sg += gw;
        sgx += gw * (x[c] - m) * r;
    }
    sg = group_sum<32>(sg) / C;
    sgx = group_sum<32>(sgx) / C;
    float *d = din + (size_t)row * C;
    for (int c = lane; c < C; c += 32) d[c] += r * (g[c] * w[c] - sg - (x[c] - m) * r * sgx);
}

// Columns [0, C) give dw (dy * xhat), columns [C, 2C) give db (dy).
struct LNParamGrad {
    const float *dout, *in, *mean, *rstd;
    int C;
    __device__ float operator()(int n, int j) const {
        if (j >= C) return dout[(size_t)n * C + j - C];
        size_t i = (size_t)n * C + j;
        return dout[i] * (in[i] - mean[n]) * rstd[n];
    }
};
struct LNParamEmit {
    float *dw, *db;
    int C;
    __device__ void operator()(int j, float t) const {
        if (j < C) { if (dw) dw[j] += t; }
        else if (db) db[j - C] += t;
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
        colsum<float>(LNParamGrad{dout, in, mean, rstd, C}, LNParamEmit{dw, db, C}, N, 2 * C, stream);
}
