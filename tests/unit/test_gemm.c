// mv_sgemm (kernels/cpu/gemm.c): the product against a double-precision loop for every
// transpose combination and shapes that take each tiling path (row panels, column tiles, one
// tile, ragged last tiles, leading dimensions wider than the matrices, beta accumulation), and
// the same bits with 1 and with 2 threads.
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cpu/ops.h"

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

// C = alpha op(A) op(B) + beta C in double; A is M x K as op(A), stored with lda.
static void reference(double *c, bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, const float *C0, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            c[(size_t)i * ldc + j] = alpha * s + beta * (double)C0[(size_t)i * ldc + j];
        }
}

// Runs one case: checks against the reference and the 1-thread/2-thread bits.
static void check(bool ta, bool tb, int M, int N, int K, float alpha, float beta) {
    int pad = 3;   // leading dimensions wider than the matrices
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(sizeof(float) * na), *B = malloc(sizeof(float) * nb);
    float *C0 = malloc(sizeof(float) * nc), *C1 = malloc(sizeof(float) * nc), *C2 = malloc(sizeof(float) * nc);
    double *R = malloc(sizeof(double) * nc);
    unsigned s = 7u + (unsigned)(M * 31 + N * 7 + K);
    for (size_t i = 0; i < na; i++) A[i] = frand(&s);
    for (size_t i = 0; i < nb; i++) B[i] = frand(&s);
    for (size_t i = 0; i < nc; i++) C0[i] = frand(&s);
    memcpy(C1, C0, sizeof(float) * nc);
    memcpy(C2, C0, sizeof(float) * nc);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    mv_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    omp_set_num_threads(2);
    mv_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    omp_set_num_threads(threads);
    reference(R, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double e = fabs(C1[(size_t)i * ldc + j] - R[(size_t)i * ldc + j]) / (1.0 + fabs(R[(size_t)i * ldc + j]));
            worst = e > worst ? e : worst;
        }
    // Tolerance of float sums of K products of magnitude <= 1/4.
    cr_expect(worst < 1e-6 * (K + 8), "ta=%d tb=%d %dx%dx%d: error %.2e against double", ta, tb, M, N, K, worst);
    cr_expect(memcmp(C1, C2, sizeof(float) * nc) == 0, "ta=%d tb=%d %dx%dx%d: 1 and 2 threads differ", ta, tb, M, N,
              K);
    // The padding columns of C are left alone.
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            cr_expect(C1[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j], "wrote outside C at (%d,%d)", i, j);
    free(A); free(B); free(C0); free(C1); free(C2); free(R);
}

Test(gemm, matches_double_reference_and_is_thread_count_invariant) {
    // {M, N, K}: tall (row panels of 1024 / 256 / 64, ragged ends), short and wide (column tiles),
    // small (one tile), weight-gradient shaped (short M, long K).
    static const int shapes[][3] = {
        {17000, 24, 16}, {3000, 40, 33}, {300, 96, 20}, {100, 300, 50}, {64, 130, 9},
        {20, 16, 5000}, {192, 6, 2100}, {7, 5, 3},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            check(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], s % 2 ? 0.5f : 1.0f, s % 3 ? 1.0f : 0.0f);
}

Test(gemm, empty_shapes_do_nothing) {
    float c = 3.0f, a = 1.0f, b = 1.0f;
    mv_sgemm(false, false, 0, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);
    mv_sgemm(false, false, 1, 0, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);
    cr_expect(c == 3.0f);
}
