// Row-major sgemm whose result does not depend on the number of threads.
//
// OpenBLAS picks its kernels and its split of the work by the thread count and by the matrix
// sizes, so the same product comes out different in the last bits with 1 and with 2 threads;
// a run then could not be repeated on a machine with another core count, nor an experiment row
// run under `--jobs` match the same row run alone. Here the output is cut into tiles whose
// shapes depend on (M, N, K) only, and each tile is one single-threaded OpenBLAS call (OpenBLAS
// runs single-threaded inside an OpenMP parallel region, or with one thread configured): every
// element is computed by the same code whatever thread takes its tile. The tiles are also how
// the work is shared: OpenBLAS's own threading splits the skinny shapes of this model (N and K
// of 16-768, M of up to a million rows) poorly.
#include "kernels/cpu/ops.h"
#include <cblas.h>

// Rows per tile: tall products (activations: M = positions) in panels big enough that the
// per-call packing of B is a small share of the work; short ones (weight gradients: M =
// output channels, K = positions) in a few panels so that both threads get some.
static int tile_rows(int M) {
    if (M >= 16384) return 1024;
    if (M >= 2048) return 256;
    if (M >= 256) return 128;
    if (M >= 128) return 64;
    return M;
}

// Columns per tile: only products too short to split by rows are split by columns.
static int tile_cols(int M, int N) {
    if (M >= 128 || N < 128) return N;
    return 64;
}

void mv_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int tm = tile_rows(M), tn = tile_cols(M, N);
    int mt = (M + tm - 1) / tm, nt = (N + tn - 1) / tn;
    #pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < mt * nt; t++) {
        int m0 = t / nt * tm, n0 = t % nt * tn;
        int h = M - m0 < tm ? M - m0 : tm, w = N - n0 < tn ? N - n0 : tn;
        const float *a = ta ? A + m0 : A + (size_t)m0 * lda;
        const float *b = tb ? B + (size_t)n0 * ldb : B + n0;
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, h, w, K, alpha, a,
                    lda, b, ldb, beta, C + (size_t)m0 * ldc + n0, ldc);
    }
}
