// Depthwise 3x3 convolution with bias, zero padding 1, channels-last, on the GPU. Forward and the
// input gradient are gathers (one thread per element); the weight and bias gradients reduce over
// all positions with the deterministic column sum (10 sums per channel: 9 taps and the bias).
#include "kernels/cuda/common.cuh"

__global__ void dwconv_forward_kernel(float *out, const float *in, const float *w, const float *b,
                                      int B, int H, int W, int C) {
    size_t n = (size_t)B * H * W * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t pix = i / C;
        int x = (int)(pix % W), y = (int)((pix / W) % H), bb = (int)(pix / ((size_t)W * H));
        float acc = b ? b[c] : 0.0f;
        for (int dy = -1; dy <= 1; dy++) {
            int iy = y + dy;
            if (iy < 0 || iy >= H) continue;
            for (int dx = -1; dx <= 1; dx++) {
                int ix = x + dx;
                if (ix < 0 || ix >= W) continue;
                acc += in[(((size_t)bb * H + iy) * W + ix) * C + c] * w[c * 9 + (dy + 1) * 3 + (dx + 1)];
            }
        }
        out[i] = acc;
    }
}

// din[p] = sum over taps of dout[p - tap] * w[tap].
__global__ void dwconv_backward_input_kernel(float *din, const float *dout, const float *w, int B, int H, int W,
                                             int C) {
    size_t n = (size_t)B * H * W * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t pix = i / C;
        int x = (int)(pix % W), y = (int)((pix / W) % H), bb = (int)(pix / ((size_t)W * H));
        float acc = 0.0f;
        for (int dy = -1; dy <= 1; dy++) {
            int oy = y - dy;
            if (oy < 0 || oy >= H) continue;
            for (int dx = -1; dx <= 1; dx++) {
                int ox = x - dx;
                if (ox < 0 || ox >= W) continue;
                acc += dout[(((size_t)bb * H + oy) * W + ox) * C + c] * w[c * 9 + (dy + 1) * 3 + (dx + 1)];
            }
        }
        din[i] += acc;
    }
}

// Column j = t*C + c: t < 9 is tap t's weight gradient of channel c, t = 9 the bias gradient.
struct DWParamGrad {
    const float *dout, *in;
    int H, W, C;
    __device__ float operator()(int n, int j) const {
        int t = j / C, c = j % C;
        float g = dout[(size_t)n * C + c];
        if (t == 9) return g;
        int x = n % W, y = (n / W) % H;
        int iy = y + t / 3 - 1, ix = x + t % 3 - 1;
        if (iy < 0 || iy >= H || ix < 0 || ix >= W) return 0.0f;
        return g * in[((size_t)n + (size_t)(iy - y) * W + (ix - x)) * C + c];
    }
};
struct DWParamEmit {
    float *dw, *db;
    int C;
    __device__ void operator()(int j, float t) const {
        int tap = j / C, c = j % C;
        if (tap == 9) { if (db) db[c] += t; }
        else if (dw) dw[c * 9 + tap] += t;
    }
};

extern "C" void dwconv3x3_forward_cuda(float *out, const float *in, const float *w, const float *b,
                                       int B, int H, int W, int C, cudaStream_t stream) {
    size_t n = (size_t)B * H * W * C;
    if (n) LAUNCH(dwconv_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, w, b, B, H, W, C);
}

extern "C" void dwconv3x3_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                                        const float *w, int B, int H, int W, int C, cudaStream_t stream) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    if (din) LAUNCH(dwconv_backward_input_kernel, grid_for(n, 256), 256, 0, stream, din, dout, w, B, H, W, C);
    if (dw || db) colsum<float>(DWParamGrad{dout, in, H, W, C}, DWParamEmit{dw, db, C}, B * H * W, 10 * C, stream);
}
