// Depthwise 3x3 convolution with bias, zero padding 1, channels-last (the SS2D local mixer).
//
// The weight [C,1,3,3] is read as nine per-tap rows wt[t][C] (transposed once per call), so that
// every inner loop runs over contiguous channels. Each output, input gradient and weight gradient
// element receives its products in one fixed order (bias, then the taps in row-major order;
// positions in order for the weight gradient), whatever the channel grouping or thread count.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"

// Channels per pass: a pass's per-tap weight rows live on the stack (72 KiB), so a step allocates
// nothing; a wider layer (no preset has one) takes several passes, each channel's arithmetic
// unchanged.
#define DW_GROUP 2048

// wt[t*nc + c] = w[(c0 + c)*9 + t] for the channels c0 .. c0+nc-1.
static void split_taps(float *wt, const float *w, int c0, int nc) {
    for (int c = 0; c < nc; c++)
        for (int t = 0; t < 9; t++) wt[(size_t)t * nc + c] = w[(size_t)(c0 + c) * 9 + t];
}

void dwconv3x3_forward(float *out, const float *in, const float *w, const float *b,
                       int B, int H, int W, int C) {
    PROF_START();
    float wt[9 * DW_GROUP];
    for (int c0 = 0; c0 < C; c0 += DW_GROUP) {
        int nc = C - c0 < DW_GROUP ? C - c0 : DW_GROUP;
        split_taps(wt, w, c0, nc);
        #pragma omp parallel for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float *o = out + (((size_t)bb * H + y) * W + x) * C + c0;
                    for (int c = 0; c < nc; c++) o[c] = b ? b[c0 + c] : 0.0f;
                    for (int dy = -1; dy <= 1; dy++) {
                        int iy = y + dy;
                        if (iy < 0 || iy >= H) continue;
                        for (int dx = -1; dx <= 1; dx++) {
                            int ix = x + dx;
                            if (ix < 0 || ix >= W) continue;
                            const float *src = in + (((size_t)bb * H + iy) * W + ix) * C + c0;
                            const float *wk = wt + (size_t)((dy + 1) * 3 + (dx + 1)) * nc;
                            for (int c = 0; c < nc; c++) o[c] += src[c] * wk[c];
                        }
                    }
                }
    }
    PROF_STOP(PROF_DWCONV, 0, 18.0 * B * H * W * C);
}

void dwconv3x3_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int H, int W, int C) {
    PROF_START();
    float wt[9 * DW_GROUP];
    for (int c0 = 0; din && c0 < C; c0 += DW_GROUP) {
        int nc = C - c0 < DW_GROUP ? C - c0 : DW_GROUP;
        split_taps(wt, w, c0, nc);
        // din[p] = sum over taps of dout[p - tap] * w[tap]: a gather, so rows are independent.
        #pragma omp parallel for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float *d = din + (((size_t)bb * H + y) * W + x) * C + c0;
                    for (int dy = -1; dy <= 1; dy++) {
                        int oy = y - dy;
                        if (oy < 0 || oy >= H) continue;
                        for (int dx = -1; dx <= 1; dx++) {
                            int ox = x - dx;
                            if (ox < 0 || ox >= W) continue;
                            const float *g = dout + (((size_t)bb * H + oy) * W + ox) * C + c0;
                            const float *wk = wt + (size_t)((dy + 1) * 3 + (dx + 1)) * nc;
                            for (int c = 0; c < nc; c++) d[c] += g[c] * wk[c];
                        }
                    }
                }
    }
    // Weight and bias gradients reduce over all positions: each thread owns a channel block of
    // 16, one vector per tap (lane = channel), the positions added in order.
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int nc = C - c0 < 16 ? C - c0 : 16;
        v16f accw[9], accb = v16_splat(0.0f);
        for (int t = 0; t < 9; t++) accw[t] = v16_splat(0.0f);
        for (int bb = 0; bb < B; bb++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    v16f g = v16_load(dout + (((size_t)bb * H + y) * W + x) * C + c0, nc);
                    accb += g;
                    for (int dy = -1; dy <= 1; dy++) {
                        int iy = y + dy;
                        if (iy < 0 || iy >= H) continue;
                        for (int dx = -1; dx <= 1; dx++) {
                            int ix = x + dx;
                            if (ix < 0 || ix >= W) continue;
                            v16f src = v16_load(in + (((size_t)bb * H + iy) * W + ix) * C + c0, nc);
                            int t = (dy + 1) * 3 + (dx + 1);
                            accw[t] += g * src;
                        }
                    }
                }
        for (int c = 0; c < nc; c++) {
            if (dw) for (int t = 0; t < 9; t++) dw[(size_t)(c0 + c) * 9 + t] += accw[t][c];
            if (db) db[c0 + c] += accb[c];
        }
    }
    PROF_STOP(PROF_DWCONV, 1, 36.0 * B * H * W * C);
}
