// 3x3 convolution (stride 1, zero padding 1, no bias) as nine shifted GEMMs.
//
// The input is copied once into a zero-bordered buffer P [B,H+2,W+2,IC]. On that padded grid
// (row pitch Wp = W+2) output position p = b*plane + y*Wp + x reads tap (dy,dx) at p + dy*Wp + dx,
// so for each tap the whole batch is ONE GEMM over contiguous rows of P. Rows that fall on the
// border columns are computed and thrown away (2 of every W+2), which costs far less than an
// im2col buffer nine times the input. Backward runs the same shifts in reverse.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include <string.h>

size_t conv3x3_scratch(int B, int H, int W, int IC, int OC) {
    size_t plane = (size_t)(H + 2) * (W + 2);
    return (size_t)B * plane * (2 * (size_t)IC + OC) + 2 * 9 * (size_t)OC * IC;
}

// Forward alone: P, Ext and Wt, each starting on a 64-byte line.
static size_t fwd_ext_offset(int B, int H, int W, int IC) {
    return ((size_t)B * (H + 2) * (W + 2) * IC + 15) & ~(size_t)15;
}
static size_t fwd_wt_offset(int B, int H, int W, int IC, int OC) {
    return fwd_ext_offset(B, H, W, IC) + (((size_t)B * (H + 2) * (W + 2) * OC + 15) & ~(size_t)15);
}
size_t conv3x3_forward_scratch(int B, int H, int W, int IC, int OC) {
    return fwd_wt_offset(B, H, W, IC, OC) + 9 * (size_t)OC * IC;
}

static void pad_input(float *P, const float *in, int B, int H, int W, int C) {
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    memset(P, 0, sizeof(float) * B * plane * C);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            memcpy(P + (b * plane + (size_t)(y + 1) * Wp + 1) * C, in + ((size_t)b * H + y) * W * C,
                   sizeof(float) * W * C);
}

// Wt[t][oc][ic] = w[oc][ic][t]: each tap's weight as a contiguous GEMM operand.
static void split_taps(float *Wt, const float *w, int IC, int OC) {
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < IC; i++)
            for (int t = 0; t < 9; t++) Wt[((size_t)t * OC + o) * IC + i] = w[((size_t)o * IC + i) * 9 + t];
}

void conv3x3_forward(float *out, const float *in, const float *w, float *scratch,
                     int B, int H, int W, int IC, int OC) {
    PROF_START();
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    float *P = scratch, *Ext = P + fwd_ext_offset(B, H, W, IC), *Wt = P + fwd_wt_offset(B, H, W, IC, OC);
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
    float *P = scratch, *Ext = P + B * plane * IC, *dP = Ext + B * plane * OC;
    float *Wt = dP + B * plane * IC, *dWt = Wt + 9 * (size_t)OC * IC;
    int rows = (int)(B * plane - 2 * Wp - 2);
    pad_input(P, in, B, H, W, IC);
    // dout on the padded-pitch grid, zero on the thrown-away border columns.
    memset(Ext, 0, sizeof(float) * B * plane * OC);
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
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < IC; i++)
                for (int t = 0; t < 9; t++) dw[((size_t)o * IC + i) * 9 + t] += dWt[((size_t)t * OC + o) * IC + i];
    }
    if (!din) { PROF_STOP(PROF_CONV3X3, 1, 18.0 * B * H * W * IC * OC * ((din != NULL) + (dw != NULL))); return; }
    split_taps(Wt, w, IC, OC);
    memset(dP, 0, sizeof(float) * B * plane * IC);
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
