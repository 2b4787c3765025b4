// Softmax cross-entropy with an ignore label, fused with its gradient (as llm.c fuses the
// classifier), and the "prediction correct" map that the position loss compares masks with.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"
#include <math.h>
#include <string.h>

// The loss is summed in CE_PARTS fixed slices of the rows, then the slices in order: the same
// sum for any number of threads.
#define CE_PARTS 64

// One row the plain way (rows that are not in a block of CE_ROWS, and rows with more than
// CE_MAXK classes): returns acc plus the row's loss term (NaN for a label that is not a class).
static double ce_row(double acc, float *d, const float *z, int y, int K, float w) {
    if (y == 255) {
        if (d) for (int k = 0; k < K; k++) d[k] = 0.0f;
        return acc;
    }
    if (y >= K) {   // not a class: NaN (the model refuses such labels before; no access out of the row)
        if (d) for (int k = 0; k < K; k++) d[k] = NAN;
        return NAN;
    }
    float mx = z[0];
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += mv_expf(z[k] - mx);
    // -log softmax(z)[y] = (mx - z[y]) + log(s), as PyTorch's log_softmax: the log of the
    // sum is never added to mx first, which absorbed it once |mx| passed ~1e7 (logits
    // 1e30 and -1e30 then gave a loss of 0 for a three-way tie and dlogits of 1 for
    // every other class).
    acc += ((double)mx - z[y]) + logf(s);
    if (d) {
        float ws = w / s;
        for (int k = 0; k < K; k++) d[k] = mv_expf(z[k] - mx) * ws;
        d[y] -= w;
    }
    return acc;
}

// CE_ROWS rows at once, one row per vector lane: every row's max, exponentials, sum (in class
// order) and gradient are the scalar row's operations (v16_expf_twin is mv_expf bit for bit), with
// each exponential computed once instead of twice and 16 rows per instruction. zt and et are
// [K][CE_ROWS] scratch (the block's logits transposed, then its exponentials). Returns acc plus
// the rows' loss terms, added one row at a time in row order, as ce_row adds them: a slice's
// sum is the same bits whether its rows go through blocks or one by one.
#define CE_ROWS 16
#define CE_MAXK 64
static double ce_block_add(double acc, float *d, const float *z, const uint8_t *lab, int K, float w, float *zt, float *et) {
    for (int i = 0; i < CE_ROWS; i++)
        for (int k = 0; k < K; k++) zt[k * CE_ROWS + i] = z[(size_t)i * K + k];
    v16f mx, s = v16_splat(0.0f), col;
    memcpy(&mx, zt, sizeof mx);
    for (int k = 1; k < K; k++) {
        memcpy(&col, zt + k * CE_ROWS, sizeof col);
        mx = v16_select(col > mx, col, mx);
    }
    for (int k = 0; k < K; k++) {
        memcpy(&col, zt + k * CE_ROWS, sizeof col);
        v16f e = v16_expf_twin(col - mx);
        memcpy(et + k * CE_ROWS, &e, sizeof e);
        s = s + e;
    }
    for (int i = 0; i < CE_ROWS; i++) {
        int y = lab[i];
        float *di = d ? d + (size_t)i * K : NULL;
        if (y == 255 || y >= K) {
            acc = ce_row(acc, di, z + (size_t)i * K, y, K, w);
            continue;
        }
        acc += ((double)mx[i] - z[(size_t)i * K + y]) + logf(s[i]);
        if (di) {
            float ws = w / s[i];
            for (int k = 0; k < K; k++) di[k] = et[k * CE_ROWS + i] * ws;
            di[y] -= w;
        }
    }
    return acc;
}

double cross_entropy_forward_backward(float *dlogits, const float *logits, const uint8_t *labels,
                                      int N, int K, double denom, float scale) {
    PROF_START();
    double part[CE_PARTS] = {0};
    int per = (N + CE_PARTS - 1) / CE_PARTS;
    float w = (float)(scale / denom);
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < CE_PARTS; p++) {
        int n1 = (p + 1) * per < N ? (p + 1) * per : N;
        float zt[CE_MAXK * CE_ROWS] __attribute__((aligned(64))), et[CE_MAXK * CE_ROWS] __attribute__((aligned(64)));
        // The slice's sum in a local (the same additions in the same order as into part[p],
        // without the two threads writing one cache line for every row).
        double acc = 0.0;
        int n = p * per;
        if (K <= CE_MAXK) {
            for (; n + CE_ROWS <= n1; n += CE_ROWS) {
                acc = ce_block_add(acc, dlogits ? dlogits + (size_t)n * K : NULL, logits + (size_t)n * K, labels + n, K, w, zt, et);
            }
        }
        for (; n < n1; n++)
            acc = ce_row(acc, dlogits ? dlogits + (size_t)n * K : NULL, logits + (size_t)n * K, labels[n], K, w);
        part[p] = acc;
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
