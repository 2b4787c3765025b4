// The CUDA backend's state: the cuBLAS handle, the TF32 switch, the reduction workspace and the
// first error seen. Ops keep the CPU contract of returning nothing, so a failed launch or GEMM is
// recorded here and reported by mv_cuda_status(). One host thread drives the GPU, as in training.
#include "kernels/cuda/common.cuh"
extern "C" {
#include "core/error.h"
}

static cublasHandle_t g_blas;
static bool g_tf32;
static void *g_ws;
static size_t g_ws_bytes;
static char g_err[256];   // first failure since the last mv_cuda_status ("" when none)

void mv_cuda_note(cudaError_t err, const char *where) {
    if (err == cudaSuccess || g_err[0]) return;
    snprintf(g_err, sizeof g_err, "CUDA error in %s: %s", where, cudaGetErrorString(err));
}

void mv_cuda_note_blas(cublasStatus_t st, const char *where) {
    if (st == CUBLAS_STATUS_SUCCESS || g_err[0]) return;
    snprintf(g_err, sizeof g_err, "cuBLAS error in %s: %s", where, cublasGetStatusString(st));
}

static int apply_math_mode(void) {
    cublasStatus_t st = cublasSetMathMode(g_blas, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    mv_cuda_note_blas(st, "cublasSetMathMode");
    return st == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

static cublasHandle_t blas_handle(cudaStream_t stream) {
    if (!g_blas) {
        cublasStatus_t st = cublasCreate(&g_blas);
        if (st != CUBLAS_STATUS_SUCCESS) {
            mv_cuda_note_blas(st, "cublasCreate");
            g_blas = NULL;
            return NULL;
        }
        apply_math_mode();
    }
    mv_cuda_note_blas(cublasSetStream(g_blas, stream), "cublasSetStream");
    return g_blas;
}

extern "C" int mv_cuda_init(int device) {
    cudaError_t err = cudaSetDevice(device);
    if (err != cudaSuccess) return mv_fail("cuda: device %d: %s", device, cudaGetErrorString(err));
    if (!blas_handle(0)) return mv_fail("cuda: device %d: cannot create the cuBLAS handle", device);
    return 0;
}

extern "C" void mv_cuda_shutdown(void) {
    if (g_blas) cublasDestroy(g_blas);
    g_blas = NULL;
    if (g_ws) cudaFree(g_ws);
    g_ws = NULL;
    g_ws_bytes = 0;
}

extern "C" void mv_cuda_set_tf32(bool on) {
    g_tf32 = on;
    if (g_blas) apply_math_mode();
}

extern "C" bool mv_cuda_tf32(void) { return g_tf32; }

extern "C" int mv_cuda_status(const char *context) {
    mv_cuda_note(cudaGetLastError(), "a kernel launch");
    if (!g_err[0]) return 0;
    int r = mv_fail("%s: %s", context ? context : "cuda", g_err);
    g_err[0] = '\0';
    return r;
}

extern "C" bool mv_cuda_emulated(void) {
#ifdef MV_CUDA_EMU
    return true;
#else
    return false;
#endif
}

extern "C" size_t mv_cuda_workspace_bytes(void) { return g_ws_bytes; }

void *mv_cuda_workspace(size_t bytes) {
    if (bytes <= g_ws_bytes) return g_ws;
    // Grow by at least half again so that a run settles after its first step.
    size_t want = bytes + bytes / 2;
    if (g_ws) cudaFree(g_ws);   // cudaFree waits for the kernels that may still use it
    g_ws = NULL;
    g_ws_bytes = 0;
    cudaError_t err = cudaMalloc(&g_ws, want);
    if (err != cudaSuccess) {
        mv_cuda_note(err, "workspace allocation");
        g_ws = NULL;
        return NULL;
    }
    g_ws_bytes = want;
    return g_ws;
}

void gemm_rm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc, cudaStream_t stream) {
    if (M <= 0 || N <= 0) return;
    cublasHandle_t h = blas_handle(stream);
    if (!h) return;
    // Row-major C[M,N] = op(A) op(B) is column-major C^T[N,M] = op(B)^T op(A)^T, and a row-major
    // matrix read column-major is its transpose: swap the operands, keep the transpose flags.
    cublasStatus_t st = cublasSgemm(h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    mv_cuda_note_blas(st, "cublasSgemm");
}
