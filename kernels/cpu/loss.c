// Softmax cross-entropy with an ignore label, fused with its gradient (as llm.c fuses the
// classifier), and the "prediction correct" map that the position loss compares masks with.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"
#include <math.h>

// The loss is summed in CE_PARTS fixed slices of the rows, then the slices in order: the same
// sum for any number of threads.
#define CE_PARTS 64

double cross_entropy_forward_backward(float *dlogits, const float *logits, const uint8_t *labels,
                                      int N, int K, double denom, float scale) {
    PROF_START();
    double part[CE_PARTS] = {0};
    int per = (N + CE_PARTS - 1) / CE_PARTS;
    float w = (float)(scale / denom);
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CE_PARTS; p++) {
        int n1 = (p + 1) * per < N ? (p + 1) * per : N;
        for (int n = p * per; n < n1; n++) {
            const float *z = logits + (size_t)n * K;
            float *d = dlogits ? dlogits + (size_t)n * K : NULL;
            int y = labels[n];
            if (y == 255) {
                if (d) for (int k = 0; k < K; k++) d[k] = 0.0f;
                continue;
            }
            if (y >= K) {   // not a class: NaN (the model refuses such labels before; no access out of the row)
                part[p] = NAN;
                if (d) for (int k = 0; k < K; k++) d[k] = NAN;
                continue;
            }
            float mx = z[0];
            for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += mv_expf(z[k] - mx);
            // -log softmax(z)[y] = (mx - z[y]) + log(s), as PyTorch's log_softmax: the log of the
            // sum is never added to mx first, which absorbed it once |mx| passed ~1e7 (logits
            // 1e30 and -1e30 then gave a loss of 0 for a three-way tie and dlogits of 1 for
            // every other class).
            part[p] += ((double)mx - z[y]) + logf(s);
            if (d) {
                float ws = w / s;
                for (int k = 0; k < K; k++) d[k] = mv_expf(z[k] - mx) * ws;
                d[y] -= w;
            }
        }
    }
    double total = 0.0;
    for (int p = 0; p < CE_PARTS; p++) total += part[p];
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
