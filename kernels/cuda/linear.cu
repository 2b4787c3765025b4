// Linear layer on rows (out = in @ w^T + b) through cuBLAS; the bias gradient is a deterministic
// column sum.
#include "kernels/cuda/common.cuh"

__global__ void add_bias_kernel(float *out, const float *b, size_t n, int OC) {
    GRID_STRIDE(i, n) out[i] += b[i % OC];
}

extern "C" void linear_forward_cuda(float *out, const float *in, const float *w, const float *b, int N,
                                    int IC, int OC, cudaStream_t stream) {
    gemm_rm(false, true, N, OC, IC, 1.0f, in, IC, w, IC, 0.0f, out, OC, stream);
    if (b) {
        size_t n = (size_t)N * OC;
        LAUNCH(add_bias_kernel, grid_for(n, 256), 256, 0, stream, out, b, n, OC);
    }
}

extern "C" void linear_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                                     const float *w, int N, int IC, int OC, cudaStream_t stream) {
    if (din) gemm_rm(false, false, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, din, IC, stream);
    if (dw) gemm_rm(true, false, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dw, IC, stream);
    if (db) colsum<float>(MatrixEntry{dout, OC}, EmitAddF{db}, N, OC, stream);
}
