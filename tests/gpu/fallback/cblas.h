// The one CBLAS routine the CPU ops call (cblas_sgemm), for GPU machines that have a CUDA
// toolkit but no CBLAS: tests/gpu/device_checks.sh builds the CPU reference ops against this
// header and mini_cblas.c only when it finds no <cblas.h>. Same enum values as the CBLAS standard.
#pragma once

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE transA, enum CBLAS_TRANSPOSE transB, int M, int N,
                 int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
