// Element-wise products, sums and fills, channel slices (concatenation) and NCHW <-> NHWC on the GPU.
#include "kernels/cuda/common.cuh"

__global__ void mul_forward_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] * b[i];
}
__global__ void mul_backward_kernel(float *da, float *db, const float *dout, const float *a, const float *b,
                                    size_t n) {
    GRID_STRIDE(i, n) {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
}
__global__ void add_forward_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ void accumulate_kernel(float *dst, const float *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}
__global__ void channel_slice_forward_kernel(float *out, const float *in, size_t n, int C_out, int off, int C_in) {
    GRID_STRIDE(i, n) out[(i / C_in) * C_out + off + i % C_in] = in[i];
}
__global__ void channel_slice_backward_kernel(float *din, const float *dout, size_t n, int C_out, int off,
                                              int C_in) {
    GRID_STRIDE(i, n) din[i] += dout[(i / C_in) * C_out + off + i % C_in];
}
// Thread per output element: writes are coalesced, reads strided (these run once per step).
__global__ void nchw_to_nhwc_kernel(float *out, const float *in, int B, int C, int H, int W) {
    size_t n = (size_t)B * C * H * W;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t pix = i / C;   // (b*H + y)*W + x
        int x = (int)(pix % W), y = (int)((pix / W) % H), b = (int)(pix / ((size_t)W * H));
        out[i] = in[(((size_t)b * C + c) * H + y) * W + x];
    }
}
__global__ void nhwc_to_nchw_kernel(float *out, const float *in, int B, int H, int W, int C) {
    size_t n = (size_t)B * C * H * W;
    GRID_STRIDE(i, n) {
        int x = (int)(i % W), y = (int)((i / W) % H);
        size_t bc = i / ((size_t)W * H);
        int c = (int)(bc % C), b = (int)(bc / C);
        out[i] = in[(((size_t)b * H + y) * W + x) * C + c];
    }
}

__global__ void fill_kernel(float *x, float v, size_t n) {
    GRID_STRIDE(i, n) x[i] = v;
}

__global__ void fill_from_kernel(float *x, const float *v, size_t n) {
    float s = *v;
    GRID_STRIDE(i, n) x[i] = s;
}

extern "C" void mul_forward_cuda(float *out, const float *a, const float *b, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(mul_forward_kernel, grid_for(n, 256), 256, 0, stream, out, a, b, n);
}
extern "C" void mul_backward_cuda(float *da, float *db, const float *dout, const float *a, const float *b,
                                  size_t n, cudaStream_t stream) {
    if (n && (da || db)) LAUNCH(mul_backward_kernel, grid_for(n, 256), 256, 0, stream, da, db, dout, a, b, n);
}
extern "C" void add_forward_cuda(float *out, const float *a, const float *b, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(add_forward_kernel, grid_for(n, 256), 256, 0, stream, out, a, b, n);
}
extern "C" void accumulate_cuda(float *dst, const float *src, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(accumulate_kernel, grid_for(n, 256), 256, 0, stream, dst, src, n);
}
extern "C" void channel_slice_forward_cuda(float *out, const float *in, int N, int C_out, int off, int C_in,
                                           cudaStream_t stream) {
    size_t n = (size_t)N * C_in;
    if (n) LAUNCH(channel_slice_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, n, C_out, off, C_in);
}
extern "C" void channel_slice_backward_cuda(float *din, const float *dout, int N, int C_out, int off, int C_in,
                                            cudaStream_t stream) {
    size_t n = (size_t)N * C_in;
    if (n) LAUNCH(channel_slice_backward_kernel, grid_for(n, 256), 256, 0, stream, din, dout, n, C_out, off, C_in);
}
extern "C" void nchw_to_nhwc_cuda(float *out, const float *in, int B, int C, int H, int W, cudaStream_t stream) {
    size_t n = (size_t)B * C * H * W;
    if (n) LAUNCH(nchw_to_nhwc_kernel, grid_for(n, 256), 256, 0, stream, out, in, B, C, H, W);
}
extern "C" void nhwc_to_nchw_cuda(float *out, const float *in, int B, int H, int W, int C, cudaStream_t stream) {
    size_t n = (size_t)B * C * H * W;
    if (n) LAUNCH(nhwc_to_nchw_kernel, grid_for(n, 256), 256, 0, stream, out, in, B, H, W, C);
}

extern "C" void fill_cuda(float *x, float v, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(fill_kernel, grid_for(n, 256), 256, 0, stream, x, v, n);
}

extern "C" void fill_from_cuda(float *x, const float *v, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(fill_from_kernel, grid_for(n, 256), 256, 0, stream, x, v, n);
}
