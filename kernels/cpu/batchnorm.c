// BatchNorm over rows (B*H*W positions) per channel, with a cross-rank reduction hook so
// that training statistics are those of the global batch (SyncBN) when ranks > 1.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include <math.h>
#include <string.h>

size_t batchnorm_scratch(int C) { return 2 * (size_t)C + 1; }

// Per-channel sums of a and a*b over rows, in double, one channel block per thread.
static void column_sums(double *s1, double *s2, const float *a, const float *bmul, int N, int C) {
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        double x1[16] = {0}, x2[16] = {0};
        for (int n = 0; n < N; n++) {
            const float *r = a + (size_t)n * C, *q = bmul + (size_t)n * C;
            for (int c = c0; c < c1; c++) { x1[c - c0] += r[c]; x2[c - c0] += (double)r[c] * q[c]; }
        }
        for (int c = c0; c < c1; c++) { s1[c] = x1[c - c0]; s2[c] = x2[c - c0]; }
    }
}

void batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                             float *running_var, const float *in, const float *w, const float *b,
                             double *scratch, mv_reducer red, int N, int C, float eps, float momentum) {
    PROF_START();
    double *sum = scratch, *sumsq = scratch + C;
    column_sums(sum, sumsq, in, in, N, C);
    scratch[2 * C] = N;
    if (red.fn) red.fn(red.ctx, scratch, 2 * C + 1);
    double count = scratch[2 * C];
    for (int c = 0; c < C; c++) {
        double m = sum[c] / count, v = sumsq[c] / count - m * m;
        if (v < 0) v = 0;
        mean[c] = (float)m;
        rstd[c] = (float)(1.0 / sqrt(v + eps));
        if (running_mean) {
            double unbiased = count > 1 ? v * count / (count - 1) : v;
            running_mean[c] = (float)((1 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = (float)((1 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = (in[(size_t)n * C + c] - mean[c]) * rstd[c] * w[c] + b[c];
    PROF_STOP(PROF_BATCHNORM, 0, 6.0 * N * C);
}

void batchnorm_forward_eval(float *out, const float *in, const float *w, const float *b,
                            const float *running_mean, const float *running_var, int N, int C, float eps) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float r = 1.0f / sqrtf(running_var[c] + eps);
            out[(size_t)n * C + c] = (in[(size_t)n * C + c] - running_mean[c]) * r * w[c] + b[c];
        }
    PROF_STOP(PROF_BATCHNORM, 0, 4.0 * N * C);
}

void batchnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const float *mean, const float *rstd, double *scratch,
                        mv_reducer red, int N, int C) {
    PROF_START();
    double *sg = scratch, *sgx = scratch + C;
    column_sums(sg, sgx, dout, in, N, C);   // sum dy, sum dy*x  (x-hat derived below)
    for (int c = 0; c < C; c++) sgx[c] = (sgx[c] - mean[c] * sg[c]) * rstd[c];   // sum dy*xhat
    // Parameter gradients are this rank's sums (the gradient all-reduce adds the ranks).
    for (int c = 0; c < C; c++) { dw[c] += (float)sgx[c]; db[c] += (float)sg[c]; }
    if (!din) { PROF_STOP(PROF_BATCHNORM, 1, 10.0 * N * C); return; }
    scratch[2 * C] = N;
    if (red.fn) red.fn(red.ctx, scratch, 2 * C + 1);
    double count = scratch[2 * C];
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float xh = (in[(size_t)n * C + c] - mean[c]) * rstd[c];
            din[(size_t)n * C + c] += w[c] * rstd[c] *
                (dout[(size_t)n * C + c] - (float)(sg[c] / count) - xh * (float)(sgx[c] / count));
        }
    PROF_STOP(PROF_BATCHNORM, 1, 10.0 * N * C);
}
