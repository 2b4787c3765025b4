// Element-wise products, sums and fills, channel slices (concatenation), and layout changes.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include <string.h>

void mul_forward(float *out, const float *a, const float *b, size_t n) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
    PROF_STOP(PROF_POINTWISE, 0, 1.0 * n);
}

void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t n) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
    PROF_STOP(PROF_POINTWISE, 1, 2.0 * n);
}

void add_forward(float *out, const float *a, const float *b, size_t n) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    PROF_STOP(PROF_POINTWISE, 0, 1.0 * n);
}

void accumulate(float *dst, const float *src, size_t n) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
    PROF_STOP(PROF_POINTWISE, 1, 1.0 * n);
}

void channel_slice_forward(float *out, const float *in, int N, int C_out, int off, int C_in) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C_out + off, in + (size_t)n * C_in, sizeof(float) * C_in);
    PROF_STOP(PROF_RESAMPLE, 0, 0);
}

void channel_slice_backward(float *din, const float *dout, int N, int C_out, int off, int C_in) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C_in; c++) din[(size_t)n * C_in + c] += dout[(size_t)n * C_out + off + c];
    PROF_STOP(PROF_RESAMPLE, 1, 1.0 * N * C_in);
}

void nchw_to_nhwc(float *out, const float *in, int B, int C, int H, int W) {
    PROF_START();
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    out[(((size_t)b * H + y) * W + x) * C + c] = in[(((size_t)b * C + c) * H + y) * W + x];
    PROF_STOP(PROF_RESAMPLE, 0, 0);
}

void nhwc_to_nchw(float *out, const float *in, int B, int H, int W, int C) {
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    out[(((size_t)b * C + c) * H + y) * W + x] = in[(((size_t)b * H + y) * W + x) * C + c];
}

void fill(float *x, float v, size_t n) {
    // Large fills (the step's zeroing of every activation gradient) on all threads; a small one
    // stays serial without entering a parallel region at all (an `if` clause still starts one,
    // about a microsecond each, and a small model's step makes a hundred such fills).
    if (n < ((size_t)1 << 16)) {
        for (size_t i = 0; i < n; i++) x[i] = v;
        return;
    }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = v;
}

void fill_from(float *x, const float *v, size_t n) {
    float s = *v;
    for (size_t i = 0; i < n; i++) x[i] = s;
}
