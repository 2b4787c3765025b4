// Depthwise 3x3 convolution with bias, zero padding 1, channels-last (the SS2D local mixer).
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"

void dwconv3x3_forward(float *out, const float *in, const float *w, const float *b,
                       int B, int H, int W, int C) {
    PROF_START();
    #pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float *o = out + (((size_t)bb * H + y) * W + x) * C;
                for (int c = 0; c < C; c++) o[c] = b ? b[c] : 0.0f;
                for (int dy = -1; dy <= 1; dy++) {
                    int iy = y + dy;
                    if (iy < 0 || iy >= H) continue;
                    for (int dx = -1; dx <= 1; dx++) {
                        int ix = x + dx;
                        if (ix < 0 || ix >= W) continue;
                        const float *src = in + (((size_t)bb * H + iy) * W + ix) * C;
                        int t = (dy + 1) * 3 + (dx + 1);
                        for (int c = 0; c < C; c++) o[c] += src[c] * w[c * 9 + t];
                    }
                }
            }
    PROF_STOP(PROF_DWCONV, 0, 18.0 * B * H * W * C);
}

void dwconv3x3_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int H, int W, int C) {
    PROF_START();
    if (din) {
        // din[p] = sum over taps of dout[p - tap] * w[tap]: a gather, so rows are independent.
        #pragma omp parallel for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float *d = din + (((size_t)bb * H + y) * W + x) * C;
                    for (int dy = -1; dy <= 1; dy++) {
                        int oy = y - dy;
                        if (oy < 0 || oy >= H) continue;
                        for (int dx = -1; dx <= 1; dx++) {
                            int ox = x - dx;
                            if (ox < 0 || ox >= W) continue;
                            const float *g = dout + (((size_t)bb * H + oy) * W + ox) * C;
                            int t = (dy + 1) * 3 + (dx + 1);
                            for (int c = 0; c < C; c++) d[c] += g[c] * w[c * 9 + t];
                        }
                    }
                }
    }
    // Weight and bias gradients reduce over all positions: each thread owns a channel block.
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        float accw[16][9] = {{0}}, accb[16] = {0};
        for (int bb = 0; bb < B; bb++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const float *g = dout + (((size_t)bb * H + y) * W + x) * C;
                    for (int c = c0; c < c1; c++) accb[c - c0] += g[c];
                    for (int dy = -1; dy <= 1; dy++) {
                        int iy = y + dy;
                        if (iy < 0 || iy >= H) continue;
                        for (int dx = -1; dx <= 1; dx++) {
                            int ix = x + dx;
                            if (ix < 0 || ix >= W) continue;
                            const float *src = in + (((size_t)bb * H + iy) * W + ix) * C;
                            int t = (dy + 1) * 3 + (dx + 1);
                            for (int c = c0; c < c1; c++) accw[c - c0][t] += g[c] * src[c];
                        }
                    }
                }
        for (int c = c0; c < c1; c++) {
            if (dw) for (int t = 0; t < 9; t++) dw[c * 9 + t] += accw[c - c0][t];
            if (db) db[c] += accb[c - c0];
        }
    }
    PROF_STOP(PROF_DWCONV, 1, 36.0 * B * H * W * C);
}
