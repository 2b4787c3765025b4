// 3x3 convolution (stride 1, zero padding 1, no bias) on the GPU as nine shifted cuBLAS GEMMs,
// exactly as the CPU op (kernels/cpu/conv3x3.c): the input is laid out once with a zero border,
// P [B,H+2,W+2,IC]; on that grid (row pitch Wp = W+2) output p reads tap (dy,dx) at p + dy*Wp + dx,
// so each tap is ONE GEMM over contiguous rows of P for the whole batch, accumulating into the
// padded-pitch output Ext; the two border columns per row are computed and dropped. Backward
// runs the same shifts in reverse. Same scratch layout and size as the CPU op.
#include "kernels/cuda/common.cuh"
#include "kernels/cpu/line_up.h"

extern "C" size_t conv3x3_scratch_cuda(int B, int H, int W, int IC, int OC) {
    size_t plane = (size_t)(H + 2) * (W + 2);
    return (size_t)B * plane * (2 * (size_t)IC + OC) + 2 * 9 * (size_t)OC * IC;
}

// Forward alone: P, Ext and Wt, each starting on a 64-byte line.
static size_t fwd_ext_offset(int B, int H, int W, int IC) {
    return mv_line_up((size_t)B * (H + 2) * (W + 2) * IC);
}
static size_t fwd_wt_offset(int B, int H, int W, int IC, int OC) {
    return fwd_ext_offset(B, H, W, IC) + mv_line_up((size_t)B * (H + 2) * (W + 2) * OC);
}
extern "C" size_t conv3x3_forward_scratch_cuda(int B, int H, int W, int IC, int OC) {
    return fwd_wt_offset(B, H, W, IC, OC) + 9 * (size_t)OC * IC;
}

// Every element of P: the input inside, zero on the border.
__global__ void pad_input_kernel(float *P, const float *in, int B, int H, int W, int C) {
    int Wp = W + 2, Hp = H + 2;
    size_t n = (size_t)B * Hp * Wp * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t q = i / C;
        int x = (int)(q % Wp) - 1, y = (int)((q / Wp) % Hp) - 1, b = (int)(q / ((size_t)Wp * Hp));
        P[i] = (x >= 0 && x < W && y >= 0 && y < H) ? in[(((size_t)b * H + y) * W + x) * C + c] : 0.0f;
    }
}

// Wt[t][oc][ic] = w[oc][ic][t]: each tap's weight as a contiguous GEMM operand.
__global__ void split_taps_kernel(float *Wt, const float *w, int IC, int OC) {
    size_t n = (size_t)9 * OC * IC;
    GRID_STRIDE(i, n) {
        int ic = (int)(i % IC), oc = (int)((i / IC) % OC), t = (int)(i / ((size_t)IC * OC));
        Wt[i] = w[((size_t)oc * IC + ic) * 9 + t];
    }
}

// out [B,H,W,OC] <- the valid columns of Ext (padded pitch, row y at y*Wp).
__global__ void crop_output_kernel(float *out, const float *Ext, int B, int H, int W, int OC) {
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp, n = (size_t)B * H * W * OC;
    GRID_STRIDE(i, n) {
        int o = (int)(i % OC);
        size_t pix = i / OC;
        int x = (int)(pix % W), y = (int)((pix / W) % H), b = (int)(pix / ((size_t)W * H));
        out[i] = Ext[(b * plane + (size_t)y * Wp + x) * OC + o];
    }
}

// Ext <- dout on the padded pitch, zero on the dropped border columns and rows.
__global__ void spread_grad_kernel(float *Ext, const float *dout, int B, int H, int W, int OC) {
    int Wp = W + 2, Hp = H + 2;
    size_t n = (size_t)B * Hp * Wp * OC;
    GRID_STRIDE(i, n) {
        int o = (int)(i % OC);
        size_t q = i / OC;
        int x = (int)(q % Wp), y = (int)((q / Wp) % Hp), b = (int)(q / ((size_t)Wp * Hp));
        Ext[i] = (x < W && y < H) ? dout[(((size_t)b * H + y) * W + x) * OC + o] : 0.0f;
    }
}

// dw[oc][ic][t] += dWt[t][oc][ic].
__global__ void gather_taps_kernel(float *dw, const float *dWt, int IC, int OC) {
    size_t n = (size_t)OC * IC * 9;
    GRID_STRIDE(i, n) {
        int t = (int)(i % 9), ic = (int)((i / 9) % IC), oc = (int)(i / ((size_t)9 * IC));
        dw[i] += dWt[((size_t)t * OC + oc) * IC + ic];
    }
}

// din += the interior of dP.
__global__ void crop_add_kernel(float *din, const float *dP, int B, int H, int W, int IC) {
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp, n = (size_t)B * H * W * IC;
    GRID_STRIDE(i, n) {
        int c = (int)(i % IC);
        size_t pix = i / IC;
        int x = (int)(pix % W), y = (int)((pix / W) % H), b = (int)(pix / ((size_t)W * H));
        din[i] += dP[(b * plane + (size_t)(y + 1) * Wp + x + 1) * IC + c];
    }
}

extern "C" void conv3x3_forward_cuda(float *out, const float *in, const float *w, float *scratch,
                                     int B, int H, int W, int IC, int OC, cudaStream_t stream) {
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    float *P = scratch, *Ext = P + fwd_ext_offset(B, H, W, IC), *Wt = P + fwd_wt_offset(B, H, W, IC, OC);
    int rows = (int)(B * plane - 2 * Wp - 2);
    if (B <= 0 || H <= 0 || W <= 0) return;
    size_t np = B * plane * IC, nw = (size_t)9 * OC * IC, no = (size_t)B * H * W * OC;
    LAUNCH(pad_input_kernel, grid_for(np, 256), 256, 0, stream, P, in, B, H, W, IC);
    LAUNCH(split_taps_kernel, grid_for(nw, 256), 256, 0, stream, Wt, w, IC, OC);
    uint16_t *Ph = NULL, *Wh = NULL;   // BF16 mode: P and Wt converted once for the nine taps
    if (mv_cuda_get_precision() == MV_PREC_BF16) {
        if (!(Ph = mv_cuda_bf16_operands(np + nw))) return;
        Wh = Ph + np;
        bf16_pack(Ph, P, np, stream);
        bf16_pack(Wh, Wt, nw, stream);
    }
    for (int t = 0; t < 9; t++) {
        size_t off = (size_t)(t / 3) * Wp + t % 3;
        if (Ph)
            gemm_rm_bf16(false, true, rows, OC, IC, 1.0f, Ph + off * IC, IC, Wh + (size_t)t * OC * IC, IC,
                         t ? 1.0f : 0.0f, Ext, OC, stream);
        else
            gemm_rm(false, true, rows, OC, IC, 1.0f, P + off * IC, IC, Wt + (size_t)t * OC * IC, IC, t ? 1.0f : 0.0f,
                    Ext, OC, stream);
    }
    LAUNCH(crop_output_kernel, grid_for(no, 256), 256, 0, stream, out, Ext, B, H, W, OC);
}

extern "C" void conv3x3_backward_cuda(float *din, float *dw, const float *dout, const float *in, const float *w,
                                      float *scratch, int B, int H, int W, int IC, int OC, cudaStream_t stream) {
    int Wp = W + 2;
    size_t plane = (size_t)(H + 2) * Wp;
    float *P = scratch, *Ext = P + B * plane * IC, *dP = Ext + B * plane * OC;
    float *Wt = dP + B * plane * IC, *dWt = Wt + 9 * (size_t)OC * IC;
    int rows = (int)(B * plane - 2 * Wp - 2);
    if (B <= 0 || H <= 0 || W <= 0 || (!din && !dw)) return;
    size_t np = B * plane * IC, ne = B * plane * OC, nw = (size_t)9 * OC * IC, ni = (size_t)B * H * W * IC;
    LAUNCH(spread_grad_kernel, grid_for(ne, 256), 256, 0, stream, Ext, dout, B, H, W, OC);
    // BF16 mode: Ext, P and Wt are each converted once for the nine taps.
    uint16_t *Eh = NULL, *Ph = NULL, *Wh = NULL;
    if (mv_cuda_get_precision() == MV_PREC_BF16) {
        if (!(Eh = mv_cuda_bf16_operands(ne + np + nw))) return;
        Ph = Eh + ne;
        Wh = Ph + np;
        bf16_pack(Eh, Ext, ne, stream);
    }
    if (dw) {
        LAUNCH(pad_input_kernel, grid_for(np, 256), 256, 0, stream, P, in, B, H, W, IC);
        if (Eh) bf16_pack(Ph, P, np, stream);
        for (int t = 0; t < 9; t++) {
            size_t off = (size_t)(t / 3) * Wp + t % 3;
            if (Eh)
                gemm_rm_bf16(true, false, OC, IC, rows, 1.0f, Eh, OC, Ph + off * IC, IC, 0.0f,
                             dWt + (size_t)t * OC * IC, IC, stream);
            else
                gemm_rm(true, false, OC, IC, rows, 1.0f, Ext, OC, P + off * IC, IC, 0.0f, dWt + (size_t)t * OC * IC,
                        IC, stream);
        }
        LAUNCH(gather_taps_kernel, grid_for(nw, 256), 256, 0, stream, dw, dWt, IC, OC);
    }
    if (!din) return;
    LAUNCH(split_taps_kernel, grid_for(nw, 256), 256, 0, stream, Wt, w, IC, OC);
    if (Eh) bf16_pack(Wh, Wt, nw, stream);
    mv_cuda_note(cudaMemsetAsync(dP, 0, sizeof(float) * np, stream), "conv3x3_backward_cuda");
    for (int t = 0; t < 9; t++) {
        size_t off = (size_t)(t / 3) * Wp + t % 3;
        if (Eh)
            gemm_rm_bf16(false, false, rows, IC, OC, 1.0f, Eh, OC, Wh + (size_t)t * OC * IC, IC, 1.0f, dP + off * IC,
                         IC, stream);
        else
            gemm_rm(false, false, rows, IC, OC, 1.0f, Ext, OC, Wt + (size_t)t * OC * IC, IC, 1.0f, dP + off * IC, IC,
                    stream);
    }
    LAUNCH(crop_add_kernel, grid_for(ni, 256), 256, 0, stream, din, dP, B, H, W, IC);
}
