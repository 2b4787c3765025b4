// Bilinear taps (align_corners = false, PyTorch's rule), shared by resample.cu and token_mask.cu.
#pragma once
#include "kernels/cuda/common.cuh"

struct Tap2 {
    int i0, i1;
    float w0, w1;
};

// Source coordinate of output index o: (o + 0.5) * in/out - 0.5, clamped to [0, in - 1] (an
// output past the first or last input centre reads it with weight exactly 1: the official
// token-mask layout's ties stay exact); the same float operations as the CPU op.
__device__ __forceinline__ Tap2 bilinear_tap(int o, int in, int out) {
    float scale = (float)in / (float)out;
    float src = __fsub_rn(__fmul_rn((float)o + 0.5f, scale), 0.5f);
    if (src < 0) src = 0;
    if (src > (float)(in - 1)) src = (float)(in - 1);
    int i0 = (int)src;
    if (i0 > in - 1) i0 = in - 1;
    int i1 = i0 + 1 < in ? i0 + 1 : in - 1;
    float l1 = src - (float)i0;
    Tap2 t = {i0, i1, 1.0f - l1, l1};
    return t;
}

// The outputs whose taps read input index i form one run [lo, hi) (the taps are monotone in o):
// those with i0(o) = i - 1 (reading i through i1) or i0(o) = i. weight_of gives the weight.
__device__ __forceinline__ void bilinear_sources(int *lo, int *hi, int i, int in, int out) {
    float scale = (float)in / (float)out;
    int o = (int)floorf(((float)i - 0.5f) / scale - 0.5f) - 2;
    if (o < 0) o = 0;
    while (o < out && bilinear_tap(o, in, out).i0 < i - 1) o++;
    int e = o;
    while (e < out && bilinear_tap(e, in, out).i0 <= i) e++;
    *lo = o;
    *hi = e;
}

__device__ __forceinline__ float tap_weight(Tap2 t, int i) {
    return (t.i0 == i ? t.w0 : 0.0f) + (t.i1 == i ? t.w1 : 0.0f);
}
