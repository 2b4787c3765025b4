// Linear layer on rows: out = in @ w^T + b, through BLAS.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"

void linear_forward(float *out, const float *in, const float *w, const float *b, int N, int IC, int OC) {
    PROF_START();
    mv_sgemm(false, true, N, OC, IC, 1.0f, in, IC, w, IC, 0.0f, out, OC);
    if (b) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += b[o];
    }
    PROF_STOP(PROF_LINEAR, 0, 2.0 * N * IC * OC);
}

void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int N, int IC, int OC) {
    PROF_START();
    if (din) mv_sgemm(false, false, N, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, din, IC);
    if (dw) mv_sgemm(true, false, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dw, IC);
    if (db) {
        // Column sums split by column blocks: each thread owns its columns, so the order of the
        // additions (and the result) does not depend on the number of threads.
        #pragma omp parallel for schedule(static)
        for (int o0 = 0; o0 < OC; o0 += 16) {
            int o1 = o0 + 16 < OC ? o0 + 16 : OC;
            for (int n = 0; n < N; n++)
                for (int o = o0; o < o1; o++) db[o] += dout[(size_t)n * OC + o];
        }
    }
    PROF_STOP(PROF_LINEAR, 1, 2.0 * N * IC * OC * ((din != NULL) + (dw != NULL)));
}
