// Bilinear resize (align_corners = false, PyTorch's convention) and adaptive average pooling,
// channels-last. Backward passes parallelise over (image, channel block) so that the scatter
// of each output pixel to its four sources has a single writer.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"

typedef struct { int i0, i1; float w0, w1; } tap2;

// Source coordinate of output index o: (o + 0.5) * in/out - 0.5, clamped to [0, in - 1]: an
// output outside the first or last input centre reads that input with weight exactly 1 and so
// equals it exactly. The official token-mask layout compares two horizontally adjacent entries of
// one plane, and two such clamped neighbours are an exact tie (a tie keeps the token). PyTorch's
// (1 - l) a + l a (l != 0 past the last centre) and an FMA-fused product (8 -> 24 columns: src
// 1.5e-8 instead of 0 at output 1) left those ties to float rounding, and the C step and the
// reference disagreed on whole masks (test_reference_step.sh, official layout on crop 32x32).
// The product is rounded before the subtraction (mv_rounded), as kernels/cuda/resample.cuh does
// with __fmul_rn / __fsub_rn: gnu11 with -march=native contracted it into an FMA.
static tap2 bilinear_tap(int o, int in, int out) {
    float scale = (float)in / (float)out;
    float src = mv_rounded(((float)o + 0.5f) * scale) - 0.5f;
    if (src < 0) src = 0;
    if (src > (float)(in - 1)) src = (float)(in - 1);
    int i0 = (int)src;
    if (i0 > in - 1) i0 = in - 1;
    int i1 = i0 + 1 < in ? i0 + 1 : in - 1;
    float l1 = src - (float)i0;
    tap2 t = {i0, i1, 1.0f - l1, l1};
    return t;
}

void bilinear_forward(float *out, const float *in, int B, int H, int W, int OH, int OW, int C) {
    PROF_START();
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++) {
            tap2 ty = bilinear_tap(oy, H, OH);
            for (int ox = 0; ox < OW; ox++) {
                tap2 tx = bilinear_tap(ox, W, OW);
                const float *r0 = in + ((size_t)b * H + ty.i0) * W * C, *r1 = in + ((size_t)b * H + ty.i1) * W * C;
                const float *a = r0 + (size_t)tx.i0 * C, *bq = r0 + (size_t)tx.i1 * C;
                const float *c2 = r1 + (size_t)tx.i0 * C, *d = r1 + (size_t)tx.i1 * C;
                float *o = out + (((size_t)b * OH + oy) * OW + ox) * C;
                for (int c = 0; c < C; c++)
                    o[c] = ty.w0 * (tx.w0 * a[c] + tx.w1 * bq[c]) + ty.w1 * (tx.w0 * c2[c] + tx.w1 * d[c]);
            }
        }
    PROF_STOP(PROF_RESAMPLE, 0, 8.0 * B * OH * OW * C);
}

// Each output pixel scatters to the four input pixels it read. A task owns a band of input rows
// of one image and applies, in the serial order (output rows, then columns, then the four
// corners), exactly the contributions that land in its band: every input element receives the
// same additions in the same order whatever the split. The split is by rows, not by channels, so
// the channel loops run over whole pixels (blocks of 16 channels would leave a 3-channel block
// for 19 classes).
#define BILINEAR_BANDS 16
static inline void axpy_row(float *d, float a, const float *g, int C) {
    for (int c = 0; c < C; c++) d[c] += a * g[c];
}

void bilinear_backward(float *din, const float *dout, int B, int H, int W, int OH, int OW, int C) {
    PROF_START();
    int nb = H < BILINEAR_BANDS ? H : BILINEAR_BANDS;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int band = 0; band < nb; band++) {
            int y0 = (int)((long)band * H / nb), y1 = (int)((long)(band + 1) * H / nb);
            for (int oy = 0; oy < OH; oy++) {
                tap2 ty = bilinear_tap(oy, H, OH);
                int in0 = ty.i0 >= y0 && ty.i0 < y1, in1 = ty.i1 >= y0 && ty.i1 < y1;
                if (!in0 && !in1) continue;
                float *r0 = din + ((size_t)b * H + ty.i0) * W * C, *r1 = din + ((size_t)b * H + ty.i1) * W * C;
                for (int ox = 0; ox < OW; ox++) {
                    tap2 tx = bilinear_tap(ox, W, OW);
                    const float *g = dout + (((size_t)b * OH + oy) * OW + ox) * C;
                    if (in0) {
                        axpy_row(r0 + (size_t)tx.i0 * C, ty.w0 * tx.w0, g, C);
                        axpy_row(r0 + (size_t)tx.i1 * C, ty.w0 * tx.w1, g, C);
                    }
                    if (in1) {
                        axpy_row(r1 + (size_t)tx.i0 * C, ty.w1 * tx.w0, g, C);
                        axpy_row(r1 + (size_t)tx.i1 * C, ty.w1 * tx.w1, g, C);
                    }
                }
            }
        }
    PROF_STOP(PROF_RESAMPLE, 1, 8.0 * B * OH * OW * C);
}

static int bin_start(int i, int in, int out) { return (i * in) / out; }
static int bin_end(int i, int in, int out) { return ((i + 1) * in + out - 1) / out; }

void adaptive_avgpool_forward(float *out, const float *in, int B, int H, int W, int S, int C) {
    PROF_START();
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++) {
            int y0 = bin_start(i, H, S), y1 = bin_end(i, H, S);
            for (int j = 0; j < S; j++) {
                int x0 = bin_start(j, W, S), x1 = bin_end(j, W, S);
                float *o = out + (((size_t)b * S + i) * S + j) * C;
                for (int c = 0; c < C; c++) o[c] = 0.0f;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        const float *src = in + (((size_t)b * H + y) * W + x) * C;
                        for (int c = 0; c < C; c++) o[c] += src[c];
                    }
                float inv = 1.0f / (float)((y1 - y0) * (x1 - x0));
                for (int c = 0; c < C; c++) o[c] *= inv;
            }
        }
    PROF_STOP(PROF_RESAMPLE, 0, 1.0 * B * H * W * C);
}

void adaptive_avgpool_backward(float *din, const float *dout, int B, int H, int W, int S, int C) {
    PROF_START();
    // Bins may overlap when S does not divide H: each image is one task, bins added in order.
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++) {
            int y0 = bin_start(i, H, S), y1 = bin_end(i, H, S);
            for (int j = 0; j < S; j++) {
                int x0 = bin_start(j, W, S), x1 = bin_end(j, W, S);
                const float *g = dout + (((size_t)b * S + i) * S + j) * C;
                float inv = 1.0f / (float)((y1 - y0) * (x1 - x0));
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        float *d = din + (((size_t)b * H + y) * W + x) * C;
                        for (int c = 0; c < C; c++) d[c] += g[c] * inv;
                    }
            }
        }
    PROF_STOP(PROF_RESAMPLE, 1, 1.0 * B * H * W * C);
}
