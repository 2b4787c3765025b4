// Depthwise 3x3 convolution with bias, zero padding 1, channels-last (the SS2D local mixer).
//
// The weight [C,1,3,3] is read as nine per-tap rows wt[t][C] (transposed once per call), so that
// every inner loop runs over contiguous channels; each output, input gradient and weight gradient
// element still receives the same products in the same order as before (bias, then the taps in
// row-major order; positions in order for the weight gradient).
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"

#include "core/error.h"
#include <stdlib.h>

// The per-tap weight rows live on the stack up to this many channels (147 KiB), beyond it on the
// heap (a single allocation per call, for models wider than any preset).
#define DW_STACK_C 4096

// wt[t*C + c] = w[c*9 + t]; wt is `stack` when C fits, else allocated (free it if != stack).
static float *split_taps(float *stack, const float *w, int C) {
    float *wt = C <= DW_STACK_C ? stack : mv_malloc(sizeof(float) * 9 * (size_t)C);
    for (int c = 0; c < C; c++)
        for (int t = 0; t < 9; t++) wt[(size_t)t * C + c] = w[(size_t)c * 9 + t];
    return wt;
}

void dwconv3x3_forward(float *out, const float *in, const float *w, const float *b,
                       int B, int H, int W, int C) {
    PROF_START();
    float stack[9 * (C <= DW_STACK_C ? C : 1)];
    float *wt = split_taps(stack, w, C);
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
                        const float *wk = wt + (size_t)((dy + 1) * 3 + (dx + 1)) * C;
                        for (int c = 0; c < C; c++) o[c] += src[c] * wk[c];
                    }
                }
            }
    if (wt != stack) free(wt);
    PROF_STOP(PROF_DWCONV, 0, 18.0 * B * H * W * C);
}

void dwconv3x3_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int H, int W, int C) {
    PROF_START();
    if (din) {
        float stack[9 * (C <= DW_STACK_C ? C : 1)];
        float *wt = split_taps(stack, w, C);
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
                            const float *wk = wt + (size_t)((dy + 1) * 3 + (dx + 1)) * C;
                            for (int c = 0; c < C; c++) d[c] += g[c] * wk[c];
                        }
                    }
                }
        if (wt != stack) free(wt);
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
