// General convolution by im2col + GEMM (used for the 4x4 stride-4 patch embedding).
// Columns are ordered (ic, kh, kw) so PyTorch's [OC,IC,K,K] weight is the GEMM operand as is.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include <string.h>

static int out_size(int n, int K, int stride, int pad) { return (n + 2 * pad - K) / stride + 1; }

size_t conv2d_scratch(int B, int H, int W, int IC, int K, int stride, int pad) {
    return (size_t)B * out_size(H, K, stride, pad) * out_size(W, K, stride, pad) * IC * K * K;
}

static void im2col(float *col, const float *in, int B, int H, int W, int IC, int K, int stride, int pad) {
    int OH = out_size(H, K, stride, pad), OW = out_size(W, K, stride, pad), KK = K * K;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *row = col + (((size_t)b * OH + oy) * OW + ox) * IC * KK;
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                        const float *src = in + (((size_t)b * H + iy) * W + ix) * IC;
                        for (int c = 0; c < IC; c++) row[c * KK + ky * K + kx] = inside ? src[c] : 0.0f;
                    }
            }
}

void conv2d_forward(float *out, const float *in, const float *w, const float *b, float *scratch,
                    int B, int H, int W, int IC, int OC, int K, int stride, int pad) {
    PROF_START();
    int rows = B * out_size(H, K, stride, pad) * out_size(W, K, stride, pad);
    im2col(scratch, in, B, H, W, IC, K, stride, pad);
    linear_forward(out, scratch, w, b, rows, IC * K * K, OC);
    PROF_STOP(PROF_CONV2D, 0, 2.0 * conv2d_scratch(B, H, W, IC, K, stride, pad) * OC);
}

void conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, float *scratch, int B, int H, int W, int IC, int OC, int K,
                     int stride, int pad) {
    PROF_START();
    int OH = out_size(H, K, stride, pad), OW = out_size(W, K, stride, pad), KK = K * K;
    int rows = B * OH * OW, cols = IC * KK;
    im2col(scratch, in, B, H, W, IC, K, stride, pad);
    linear_backward(NULL, dw, db, dout, scratch, w, rows, cols, OC);
    if (!din) { PROF_STOP(PROF_CONV2D, 1, 2.0 * conv2d_scratch(B, H, W, IC, K, stride, pad) * OC * ((din != NULL) + (dw != NULL))); return; }
    memset(scratch, 0, sizeof(float) * (size_t)rows * cols);
    mv_sgemm(false, false, rows, cols, OC, 1.0f, dout, OC, w, cols, 0.0f, scratch, cols);
    // col2im: each image is owned by one thread; overlapping windows add in a fixed order.
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float *row = scratch + (((size_t)b * OH + oy) * OW + ox) * cols;
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        float *dst = din + (((size_t)b * H + iy) * W + ix) * IC;
                        for (int c = 0; c < IC; c++) dst[c] += row[c * KK + ky * K + kx];
                    }
            }
    PROF_STOP(PROF_CONV2D, 1, 2.0 * conv2d_scratch(B, H, W, IC, K, stride, pad) * OC * ((din != NULL) + (dw != NULL)));
}
