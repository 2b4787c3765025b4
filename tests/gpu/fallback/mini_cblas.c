// A plain cblas_sgemm (see cblas.h beside it): C = alpha op(A) op(B) + beta C, row- or
// column-major, one OpenMP thread per block of rows, double accumulation. Slow but exact
// enough to be the CPU reference of the CUDA tests on a machine without a BLAS.
#include "cblas.h"

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N,
                 int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    // Column-major C = op(A) op(B) is row-major C^T = op(B)^T op(A)^T: swap the operands.
    if (order == CblasColMajor) {
        cblas_sgemm(CblasRowMajor, transB, transA, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
        return;
    }
    int ta = transA != CblasNoTrans, tb = transB != CblasNoTrans;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(long)k * lda + i] : A[(long)i * lda + k];
                float b = tb ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
                s += (double)a * b;
            }
            float *c = &C[(long)i * ldc + j];
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}
