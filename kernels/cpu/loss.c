// Softmax cross-entropy with an ignore label, fused with its gradient (as llm.c fuses the
// classifier), and the "prediction correct" map that the position loss compares masks with.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"
#include <math.h>

double cross_entropy_forward_backward(float *dlogits, const float *logits, const uint8_t *labels,
                                      int N, int K, double denom, float scale) {
    PROF_START();
    double total = 0.0;
    #pragma omp parallel for schedule(static) reduction(+:total)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * K;
        float *d = dlogits ? dlogits + (size_t)n * K : NULL;
        int y = labels[n];
        if (y == 255) {
            if (d) for (int k = 0; k < K; k++) d[k] = 0.0f;
            continue;
        }
        float mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        float s = 0.0f;
        for (int k = 0; k < K; k++) s += mv_expf(z[k] - mx);
        float lse = logf(s) + mx, w = (float)(scale / denom);
        total += (double)lse - z[y];
        if (d) {
            for (int k = 0; k < K; k++) d[k] = mv_expf(z[k] - lse) * w;
            d[y] -= w;
        }
    }
    PROF_STOP(PROF_LOSS, 0, 6.0 * N * K);
    return total / denom;
}

void argmax_correct(float *correct, const float *logits, const uint8_t *labels, int N, int K) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * K;
        int best = 0;
        for (int k = 1; k < K; k++) if (z[k] > z[best]) best = k;
        correct[n] = labels[n] != 255 && best == labels[n] ? 1.0f : 0.0f;
    }
}
