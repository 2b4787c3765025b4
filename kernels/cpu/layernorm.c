// LayerNorm over the channel dimension of each row (mean and 1/std saved for backward).
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include <math.h>

void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                       const float *b, int N, int C, float eps) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *o = out + (size_t)n * C;
        // The mean as x[0] + mean(x - x[0]): the sum then carries the row's spread, not its
        // offset, so a constant row has exactly its value as mean and normalises to the bias
        // (a plain float sum rounded: a constant row of 1e10, or of 12345.7 over 768 channels,
        // came out as normalised rounding noise of magnitude 1; torch gives 1e5 and 0.05).
        float x0 = x[0], s = 0.0f;
        for (int c = 0; c < C; c++) s += x[c] - x0;
        float m = x0 + s / C, v = 0.0f;
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        float r = 1.0f / sqrtf(v / C + eps);
        // Rows of magnitude ~2e19 and up overflow the float sum of squares (or the sum itself):
        // the variance was inf and every output the bias (torch: 0, or NaN from 1e20). LayerNorm
        // is scale-invariant, so such a row has a well-defined output: redo it in double.
        if (isinf(s) || isinf(v)) {
            double sd = 0.0, vd = 0.0;
            for (int c = 0; c < C; c++) sd += x[c];
            double md = sd / C;
            for (int c = 0; c < C; c++) { double d = x[c] - md; vd += d * d; }
            m = (float)md;
            r = (float)(1.0 / sqrt(vd / C + eps));
        }
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
        mean[n] = m;
        rstd[n] = r;
    }
    PROF_STOP(PROF_LAYERNORM, 0, 8.0 * N * C);
}

void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    PROF_START();
    if (din) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *g = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n], sg = 0.0f, sgx = 0.0f;
            for (int c = 0; c < C; c++) {
                float gw = g[c] * w[c];
                sg += gw;
                sgx += gw * (x[c] - m) * r;
            }
            sg /= C;
            sgx /= C;
            float *d = din + (size_t)n * C;
            for (int c = 0; c < C; c++) d[c] += r * (g[c] * w[c] - sg - (x[c] - m) * r * sgx);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        float aw[16] = {0}, ab[16] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *g = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            for (int c = c0; c < c1; c++) {
                aw[c - c0] += g[c] * (x[c] - m) * r;
                ab[c - c0] += g[c];
            }
        }
        for (int c = c0; c < c1; c++) { dw[c] += aw[c - c0]; db[c] += ab[c - c0]; }
    }
    PROF_STOP(PROF_LAYERNORM, 1, 14.0 * N * C);
}
