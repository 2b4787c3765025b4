// Bilinear resize (align_corners = false) and adaptive average pooling on the GPU, channels-last.
// Both backward passes are gathers, one thread per input element summing the outputs that read
// it, so they need no atomics and give the same bits every run.
#include "kernels/cuda/resample.cuh"

__global__ void bilinear_forward_kernel(float *out, const float *in, int B, int H, int W, int OH, int OW, int C) {
    size_t n = (size_t)B * OH * OW * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t pix = i / C;
        int ox = (int)(pix % OW), oy = (int)((pix / OW) % OH), b = (int)(pix / ((size_t)OW * OH));
        Tap2 ty = bilinear_tap(oy, H, OH), tx = bilinear_tap(ox, W, OW);
        const float *r0 = in + ((size_t)b * H + ty.i0) * W * C, *r1 = in + ((size_t)b * H + ty.i1) * W * C;
        float a = r0[(size_t)tx.i0 * C + c], bq = r0[(size_t)tx.i1 * C + c];
        float c2 = r1[(size_t)tx.i0 * C + c], d = r1[(size_t)tx.i1 * C + c];
        out[i] = ty.w0 * (tx.w0 * a + tx.w1 * bq) + ty.w1 * (tx.w0 * c2 + tx.w1 * d);
    }
}

__global__ void bilinear_backward_kernel(float *din, const float *dout, int B, int H, int W, int OH, int OW, int C) {
    size_t n = (size_t)B * H * W * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t pix = i / C;
        int ix = (int)(pix % W), iy = (int)((pix / W) % H), b = (int)(pix / ((size_t)W * H));
        int y0, y1, x0, x1;
        bilinear_sources(&y0, &y1, iy, H, OH);
        bilinear_sources(&x0, &x1, ix, W, OW);
        float acc = 0.0f;
        for (int oy = y0; oy < y1; oy++) {
            float wy = tap_weight(bilinear_tap(oy, H, OH), iy);
            const float *g = dout + ((size_t)b * OH + oy) * OW * C + c;
            for (int ox = x0; ox < x1; ox++) acc += wy * tap_weight(bilinear_tap(ox, W, OW), ix) * g[(size_t)ox * C];
        }
        din[i] += acc;
    }
}

// PyTorch's adaptive pooling bins: [floor(i*in/out), ceil((i+1)*in/out)).
__device__ __forceinline__ int bin_start(int i, int in, int out) { return (i * in) / out; }
__device__ __forceinline__ int bin_end(int i, int in, int out) { return ((i + 1) * in + out - 1) / out; }

__global__ void avgpool_forward_kernel(float *out, const float *in, int B, int H, int W, int S, int C) {
    size_t n = (size_t)B * S * S * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t cell = i / C;
        int j = (int)(cell % S), r = (int)((cell / S) % S), b = (int)(cell / ((size_t)S * S));
        int y0 = bin_start(r, H, S), y1 = bin_end(r, H, S), x0 = bin_start(j, W, S), x1 = bin_end(j, W, S);
        float acc = 0.0f;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) acc += in[(((size_t)b * H + y) * W + x) * C + c];
        out[i] = acc * (1.0f / (float)((y1 - y0) * (x1 - x0)));
    }
}

__global__ void avgpool_backward_kernel(float *din, const float *dout, int B, int H, int W, int S, int C) {
    size_t n = (size_t)B * H * W * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t pix = i / C;
        int x = (int)(pix % W), y = (int)((pix / W) % H), b = (int)(pix / ((size_t)W * H));
        float acc = 0.0f;
        for (int r = 0; r < S; r++) {
            int y0 = bin_start(r, H, S), y1 = bin_end(r, H, S);
            if (y < y0 || y >= y1) continue;
            for (int j = 0; j < S; j++) {
                int x0 = bin_start(j, W, S), x1 = bin_end(j, W, S);
                if (x < x0 || x >= x1) continue;
                acc += dout[(((size_t)b * S + r) * S + j) * C + c] * (1.0f / (float)((y1 - y0) * (x1 - x0)));
            }
        }
        din[i] += acc;
    }
}

extern "C" void bilinear_forward_cuda(float *out, const float *in, int B, int H, int W, int OH, int OW, int C,
                                      cudaStream_t stream) {
    size_t n = (size_t)B * OH * OW * C;
    if (n) LAUNCH(bilinear_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, B, H, W, OH, OW, C);
}

extern "C" void bilinear_backward_cuda(float *din, const float *dout, int B, int H, int W, int OH, int OW, int C,
                                       cudaStream_t stream) {
    size_t n = (size_t)B * H * W * C;
    if (n) LAUNCH(bilinear_backward_kernel, grid_for(n, 256), 256, 0, stream, din, dout, B, H, W, OH, OW, C);
}

extern "C" void adaptive_avgpool_forward_cuda(float *out, const float *in, int B, int H, int W, int S, int C,
                                              cudaStream_t stream) {
    size_t n = (size_t)B * S * S * C;
    if (n) LAUNCH(avgpool_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, B, H, W, S, C);
}

extern "C" void adaptive_avgpool_backward_cuda(float *din, const float *dout, int B, int H, int W, int S, int C,
                                               cudaStream_t stream) {
    size_t n = (size_t)B * H * W * C;
    if (n) LAUNCH(avgpool_backward_kernel, grid_for(n, 256), 256, 0, stream, din, dout, B, H, W, S, C);
}
