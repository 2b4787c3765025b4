// General convolution by im2col + cuBLAS GEMM on the GPU (the 4x4 stride-4 patch embedding).
// Columns are ordered (ic, kh, kw), so PyTorch's [OC,IC,K,K] weight is the GEMM operand as is.
// The input gradient is a col2im gather: each input element sums the column entries that read
// it, one writer each.
#include "kernels/cuda/common.cuh"

static int out_size(int n, int K, int stride, int pad) { return (n + 2 * pad - K) / stride + 1; }

extern "C" size_t conv2d_scratch_cuda(int B, int H, int W, int IC, int K, int stride, int pad) {
    return (size_t)B * out_size(H, K, stride, pad) * out_size(W, K, stride, pad) * IC * K * K;
}

__global__ void im2col_kernel(float *col, const float *in, int B, int H, int W, int IC, int K, int stride, int pad,
                              int OH, int OW) {
    int KK = K * K;
    size_t n = (size_t)B * OH * OW * IC * KK;
    GRID_STRIDE(i, n) {
        int t = (int)(i % KK), c = (int)((i / KK) % IC);
        size_t row = i / ((size_t)KK * IC);
        int ox = (int)(row % OW), oy = (int)((row / OW) % OH), b = (int)(row / ((size_t)OW * OH));
        int iy = oy * stride - pad + t / K, ix = ox * stride - pad + t % K;
        bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
        col[i] = inside ? in[(((size_t)b * H + iy) * W + ix) * IC + c] : 0.0f;
    }
}

__global__ void col2im_kernel(float *din, const float *col, int B, int H, int W, int IC, int K, int stride, int pad,
                              int OH, int OW) {
    int KK = K * K;
    size_t n = (size_t)B * H * W * IC;
    GRID_STRIDE(i, n) {
        int c = (int)(i % IC);
        size_t pix = i / IC;
        int ix = (int)(pix % W), iy = (int)((pix / W) % H), b = (int)(pix / ((size_t)W * H));
        float acc = 0.0f;
        for (int ky = 0; ky < K; ky++) {
            int ty = iy + pad - ky;   // = oy * stride
            if (ty < 0 || ty % stride) continue;
            int oy = ty / stride;
            if (oy >= OH) continue;
            for (int kx = 0; kx < K; kx++) {
                int tx = ix + pad - kx;
                if (tx < 0 || tx % stride) continue;
                int ox = tx / stride;
                if (ox >= OW) continue;
                acc += col[(((size_t)b * OH + oy) * OW + ox) * IC * KK + (size_t)c * KK + ky * K + kx];
            }
        }
        din[i] += acc;
    }
}

extern "C" void conv2d_forward_cuda(float *out, const float *in, const float *w, const float *b, float *scratch,
                                    int B, int H, int W, int IC, int OC, int K, int stride, int pad,
                                    cudaStream_t stream) {
    int OH = out_size(H, K, stride, pad), OW = out_size(W, K, stride, pad), rows = B * OH * OW;
    size_t n = conv2d_scratch_cuda(B, H, W, IC, K, stride, pad);
    if (!n) return;
    LAUNCH(im2col_kernel, grid_for(n, 256), 256, 0, stream, scratch, in, B, H, W, IC, K, stride, pad, OH, OW);
    linear_forward_cuda(out, scratch, w, b, rows, IC * K * K, OC, stream);
}

extern "C" void conv2d_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                                     const float *w, float *scratch, int B, int H, int W, int IC, int OC, int K,
                                     int stride, int pad, cudaStream_t stream) {
    int OH = out_size(H, K, stride, pad), OW = out_size(W, K, stride, pad), rows = B * OH * OW, cols = IC * K * K;
    size_t n = conv2d_scratch_cuda(B, H, W, IC, K, stride, pad);
    if (!n) return;
    if (dw || db) {
        LAUNCH(im2col_kernel, grid_for(n, 256), 256, 0, stream, scratch, in, B, H, W, IC, K, stride, pad, OH, OW);
        linear_backward_cuda(NULL, dw, db, dout, scratch, w, rows, cols, OC, stream);
    }
    if (!din) return;
    gemm_rm(false, false, rows, cols, OC, 1.0f, dout, OC, w, cols, 0.0f, scratch, cols, stream);
    size_t m = (size_t)B * H * W * IC;
    LAUNCH(col2im_kernel, grid_for(m, 256), 256, 0, stream, din, scratch, B, H, W, IC, K, stride, pad, OH, OW);
}
