// 3x3 convolution (stride 1, zero padding 1, no bias) as nine shifted GEMMs.
//
// The input is copied once into a zero-bordered buffer P [B,H+2,W+2,IC]. On that padded grid
// (row pitch Wp = W+2) output position p = b*plane + y*Wp + x reads tap (dy,dx) at p + dy*Wp + dx,
// so for each tap the whole batch is ONE GEMM over contiguous rows of P. Rows that fall on the
// border columns are computed and thrown away (2 of every W+2), which costs far less than an
// im2col buffer nine times the input. Backward runs the same shifts in reverse.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/line_up.h"
#include <string.h>

// Scratch layouts, offsets in floats from the start (P, the padded input [B,H+2,W+2,IC], at 0).
// Forward alone: P, Ext (the output on the padded grid) and Wt (the taps' weights), each
// starting on a 64-byte line.
typedef struct { size_t ext, wt, total; } conv3x3_fwd_layout;

static conv3x3_fwd_layout fwd_layout(int B, int H, int W, int IC, int OC) {
    size_t plane = (size_t)(H + 2) * (W + 2);
    conv3x3_fwd_layout o;
    o.ext = mv_line_up((size_t)B * plane * IC);
    o.wt = o.ext + mv_line_up((size_t)B * plane * OC);
    o.total = o.wt + 9 * (size_t)OC * IC;
    return o;
}

// Backward: P, Ext (dout on the padded grid), dP (din on it), Wt and dWt (the taps' weights and
// their gradients), back to back. Not lined up, unlike the forward's: the total is
// conv3x3_scratch, which sizes the training plans' scratch, and whether lining up would pay
// here has not been measured.
typedef struct { size_t ext, dp, wt, dwt, total; } conv3x3_bwd_layout;

static conv3x3_bwd_layout bwd_layout(int B, int H, int W, int IC, int OC) {
    size_t plane = (size_t)(H + 2) * (W + 2), taps = 9 * (size_t)OC * IC;
    conv3x3_bwd_layout o;
    o.ext = (size_t)B * plane * IC;
    o.dp = o.ext + (size_t)B * plane * OC;
    o.wt = o.dp + (size_t)B * plane * IC;
    o.dwt = o.wt + taps;
    o.total = o.dwt + taps;
    return o;
}

size_t conv3x3_scratch(int B, int H, int W, int IC, int OC) { return bwd_layout(B, H, W, IC, OC).total; }
size_t conv3x3_forward_scratch(int B, int H, int W, int IC, int OC) { return fwd_layout(B, H, W, IC, OC).total; }

static void pad_input(float *P, const float *in, int B, int H, int W, int C) {
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    fill(P, 0.0f, (size_t)B * plane * C);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            memcpy(P + (b * plane + (size_t)(y + 1) * Wp + 1) * C, in + ((size_t)b * H + y) * W * C,
                   sizeof(float) * W * C);
}

// Wt[t][oc][ic] = w[oc][ic][t]: each tap's weight as a contiguous GEMM operand. On all threads:
// the decoder's weights are half the model (30 M floats in maskvim-t), strided on one side.
static void split_taps(float *Wt, const float *w, int IC, int OC) {
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < IC; i++)
            for (int t = 0; t < 9; t++) Wt[((size_t)t * OC + o) * IC + i] = w[((size_t)o * IC + i) * 9 + t];
}

void conv3x3_forward(float *out, const float *in, const float *w, float *scratch,
                     int B, int H, int W, int IC, int OC) {
    PROF_START();
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    conv3x3_fwd_layout lay = fwd_layout(B, H, W, IC, OC);
    float *P = scratch, *Ext = scratch + lay.ext, *Wt = scratch + lay.wt;
    int rows = (int)(B * plane - 2 * Wp - 2);
    pad_input(P, in, B, H, W, IC);
    split_taps(Wt, w, IC, OC);
    for (int t = 0; t < 9; t++) {
        size_t off = (size_t)(t / 3) * Wp + t % 3;
        mv_sgemm(false, true, rows, OC, IC, 1.0f, P + off * IC, IC,
                 Wt + (size_t)t * OC * IC, IC, t ? 1.0f : 0.0f, Ext, OC);
    }
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            memcpy(out + ((size_t)b * H + y) * W * OC, Ext + (b * plane + (size_t)y * Wp) * OC,
                   sizeof(float) * W * OC);
    PROF_STOP(PROF_CONV3X3, 0, 18.0 * B * H * W * IC * OC);
}

void conv3x3_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      float *scratch, int B, int H, int W, int IC, int OC) {
    PROF_START();
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    conv3x3_bwd_layout lay = bwd_layout(B, H, W, IC, OC);
    float *P = scratch, *Ext = scratch + lay.ext, *dP = scratch + lay.dp;
    float *Wt = scratch + lay.wt, *dWt = scratch + lay.dwt;
    int rows = (int)(B * plane - 2 * Wp - 2);
    pad_input(P, in, B, H, W, IC);
    // dout on the padded-pitch grid, zero on the thrown-away border columns.
    fill(Ext, 0.0f, (size_t)B * plane * OC);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            memcpy(Ext + (b * plane + (size_t)y * Wp) * OC, dout + ((size_t)b * H + y) * W * OC,
                   sizeof(float) * W * OC);
    if (dw) {
        for (int t = 0; t < 9; t++) {
            size_t off = (size_t)(t / 3) * Wp + t % 3;
            mv_sgemm(true, false, OC, IC, rows, 1.0f, Ext, OC,
                     P + off * IC, IC, 0.0f, dWt + (size_t)t * OC * IC, IC);
        }
        // Each element of dw has one writer and one addition: the same bits on any thread count.
        #pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++)
                for (int t = 0; t < 9; t++) dw[((size_t)o * IC + i) * 9 + t] += dWt[((size_t)t * OC + o) * IC + i];
    }
    if (!din) { PROF_STOP(PROF_CONV3X3, 1, 18.0 * B * H * W * IC * OC * ((din != NULL) + (dw != NULL))); return; }
    split_taps(Wt, w, IC, OC);
    fill(dP, 0.0f, (size_t)B * plane * IC);
    for (int t = 0; t < 9; t++) {
        size_t off = (size_t)(t / 3) * Wp + t % 3;
        mv_sgemm(false, false, rows, IC, OC, 1.0f, Ext, OC,
                 Wt + (size_t)t * OC * IC, IC, 1.0f, dP + off * IC, IC);
    }
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++) {
            const float *src = dP + (b * plane + (size_t)(y + 1) * Wp + 1) * IC;
            float *dst = din + ((size_t)b * H + y) * W * IC;
            for (int i = 0; i < W * IC; i++) dst[i] += src[i];
        }
    PROF_STOP(PROF_CONV3X3, 1, 18.0 * B * H * W * IC * OC * ((din != NULL) + (dw != NULL)));
}
