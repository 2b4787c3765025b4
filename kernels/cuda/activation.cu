// Pointwise activations on the GPU: ReLU and SiLU (the scan's softplus is fused into its delta
// kernel, kernels/cuda/selective_scan.cu).
#include "kernels/cuda/common.cuh"

__device__ __forceinline__ float sigmoid_d(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void relu_forward_kernel(float *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) out[i] = in[i] < 0.0f ? 0.0f : in[i];   // NaN passes, as on the CPU (and in PyTorch)
}
__global__ void relu_backward_kernel(float *din, const float *dout, const float *out, size_t n) {
    GRID_STRIDE(i, n) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}
__global__ void silu_forward_kernel(float *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) out[i] = in[i] * sigmoid_d(in[i]);
}
__global__ void silu_backward_kernel(float *din, const float *dout, const float *in, size_t n) {
    GRID_STRIDE(i, n) {
        float s = sigmoid_d(in[i]);
        din[i] += dout[i] * s * (1.0f + in[i] * (1.0f - s));
    }
}

extern "C" void relu_forward_cuda(float *out, const float *in, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(relu_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, n);
}
extern "C" void relu_backward_cuda(float *din, const float *dout, const float *out, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(relu_backward_kernel, grid_for(n, 256), 256, 0, stream, din, dout, out, n);
}
extern "C" void silu_forward_cuda(float *out, const float *in, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(silu_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, n);
}
extern "C" void silu_backward_cuda(float *din, const float *dout, const float *in, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(silu_backward_kernel, grid_for(n, 256), 256, 0, stream, din, dout, in, n);
}
