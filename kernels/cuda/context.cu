// The CUDA backend's state: the cuBLAS handle, the GEMM precision (fp32, TF32, or bf16 operands
// with fp32 accumulation), the reduction and bf16 workspaces and the first error seen. Ops keep
// the CPU contract of returning nothing, so a failed launch or GEMM is recorded here and reported
// by mv_cuda_status(). One host thread drives the GPU, as in training.
#include "kernels/cuda/common.cuh"
#include <stdlib.h>
#include <string.h>
extern "C" {
#include "core/error.h"
}

static cublasHandle_t g_blas;
static mv_cuda_precision g_prec = MV_PREC_FP32;
static void *g_ws;          // reduction partials (mv_cuda_workspace)
static size_t g_ws_bytes;
static void *g_bf;          // bf16 copies of the operands of the GEMM in flight (BF16 mode)
static size_t g_bf_bytes;
static void *g_bf_op;       // bf16 copies an op makes once for several GEMMs (BF16 mode)
static size_t g_bf_op_bytes;
static void **g_retired;    // buffers that grow() replaced, for mv_cuda_release_retired
static int g_num_retired, g_cap_retired;
static char g_err[256];   // first failure since the last mv_cuda_status ("" when none)

void mv_cuda_note(cudaError_t err, const char *where) {
    if (err == cudaSuccess || g_err[0]) return;
    snprintf(g_err, sizeof g_err, "CUDA error in %s: %s", where, cudaGetErrorString(err));
}

void mv_cuda_note_blas(cublasStatus_t st, const char *where) {
    if (st == CUBLAS_STATUS_SUCCESS || g_err[0]) return;
    snprintf(g_err, sizeof g_err, "cuBLAS error in %s: %s", where, cublasGetStatusString(st));
}

void mv_cuda_note_text(const char *where, const char *what) {
    if (g_err[0]) return;
    snprintf(g_err, sizeof g_err, "error in %s: %s", where, what);
}

static int apply_math_mode(void) {
    // BF16 mode calls cublasGemmEx with bf16 operands and fp32 compute: the default math mode.
    cublasStatus_t st = cublasSetMathMode(g_blas, g_prec == MV_PREC_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                         : CUBLAS_DEFAULT_MATH);
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
    mv_cuda_release_retired();
    free(g_retired);
    g_retired = NULL;
    g_cap_retired = 0;
    if (g_blas) cublasDestroy(g_blas);
    g_blas = NULL;
    if (g_ws) cudaFree(g_ws);
    g_ws = NULL;
    g_ws_bytes = 0;
    if (g_bf) cudaFree(g_bf);
    g_bf = NULL;
    g_bf_bytes = 0;
    if (g_bf_op) cudaFree(g_bf_op);
    g_bf_op = NULL;
    g_bf_op_bytes = 0;
}

extern "C" int mv_cuda_set_precision(mv_cuda_precision p) {
    if (p != MV_PREC_FP32 && p != MV_PREC_TF32 && p != MV_PREC_BF16)
        return mv_fail("cuda: unknown GEMM precision %d", (int)p);
    g_prec = p;
    if (g_blas) apply_math_mode();
    return 0;
}

extern "C" mv_cuda_precision mv_cuda_get_precision(void) { return g_prec; }

extern "C" const char *mv_cuda_precision_name(mv_cuda_precision p) {
    switch (p) {
    case MV_PREC_FP32: return "fp32";
    case MV_PREC_TF32: return "tf32";
    case MV_PREC_BF16: return "bf16";
    }
    return "?";
}

extern "C" int mv_cuda_parse_precision(const char *name, mv_cuda_precision *out) {
    static const mv_cuda_precision all[3] = {MV_PREC_FP32, MV_PREC_TF32, MV_PREC_BF16};
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, mv_cuda_precision_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return mv_fail("cuda: unknown precision '%s' (expected fp32, tf32 or bf16)", name ? name : "(null)");
}

extern "C" void mv_cuda_set_tf32(bool on) { mv_cuda_set_precision(on ? MV_PREC_TF32 : MV_PREC_FP32); }

extern "C" bool mv_cuda_tf32(void) { return g_prec == MV_PREC_TF32; }

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

extern "C" void mv_cuda_release_retired(void) {
    for (int i = 0; i < g_num_retired; i++) cudaFree(g_retired[i]);
    g_num_retired = 0;
}

// A workspace grows during a step (the first step meets the largest reduction or GEMM), maybe in
// backward after gradient buckets have started on the communication stream. cudaFree waits for
// the whole device, those NCCL collectives included, and without the limit that every other host
// wait has with several ranks (docs/distributed.md): a rank that stopped would hang this one
// here. So grow() never frees: the old buffer (which queued kernels may still read) is retired,
// and freed by mv_cuda_release_retired where the model has waited for its stream with the limit
// (model_device_forward, at the start of the next step).
static void *grow(void **buf, size_t *have, size_t bytes, const char *what) {
    if (*buf && bytes <= *have) return *buf;
    // Grow by at least half again so that a run settles after its first step; never 0 bytes,
    // which cudaMalloc answers with NULL, the callers' sign of failure.
    size_t want = bytes + bytes / 2;
    if (want < 256) want = 256;
    if (*buf && g_num_retired == g_cap_retired) {
        int cap = g_cap_retired ? 2 * g_cap_retired : 16;
        void **r = (void **)realloc(g_retired, sizeof(void *) * (size_t)cap);
        if (!r) {
            mv_cuda_note_text(what, "out of host memory");
            return NULL;
        }
        g_retired = r;
        g_cap_retired = cap;
    }
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, want);
    if (err != cudaSuccess) {
        mv_cuda_note(err, what);
        return NULL;
    }
    if (*buf) g_retired[g_num_retired++] = *buf;
    *buf = p;
    *have = want;
    return p;
}

void *mv_cuda_workspace(size_t bytes) { return grow(&g_ws, &g_ws_bytes, bytes, "workspace allocation"); }

uint16_t *mv_cuda_bf16_operands(size_t elems) {
    return (uint16_t *)grow(&g_bf_op, &g_bf_op_bytes, sizeof(uint16_t) * elems, "bf16 operand workspace allocation");
}

// fp32 -> bf16 bits, round to nearest even (NaN stays a quiet NaN).
__device__ __forceinline__ uint16_t bf16_bits(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// out[r, c] = bf16(in[r*ld + c]) for a row-major rows x cols view: packs a strided operand.
__global__ void pack_bf16_kernel(uint16_t *out, const float *in, int rows, int cols, int ld) {
    size_t n = (size_t)rows * cols;
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        out[i] = bf16_bits(in[r * (size_t)ld + c]);
    }
}

__global__ void pack_bf16_flat_kernel(uint16_t *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) out[i] = bf16_bits(in[i]);
}

void bf16_pack(uint16_t *out, const float *in, size_t n, cudaStream_t stream) {
    if (n) LAUNCH(pack_bf16_flat_kernel, grid_for(n, 256), 256, 0, stream, out, in, n);
}

// The cuBLAS call of a row-major GEMM on bf16 operands (see gemm_rm for the operand swap).
static void gemm_ex_bf16(cublasHandle_t h, bool transA, bool transB, int M, int N, int K, float alpha,
                         const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc) {
    cublasStatus_t st = cublasGemmEx(h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                                     K, &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    mv_cuda_note_blas(st, "cublasGemmEx (bf16)");
}

extern "C" void gemm_rm_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const uint16_t *A, int lda,
                             const uint16_t *B, int ldb, float beta, float *C, int ldc, cudaStream_t stream) {
    // K = 0 goes to cuBLAS, which then sets C = beta C (zeros for beta = 0), as cublasSgemm does.
    if (M <= 0 || N <= 0) return;
    cublasHandle_t h = blas_handle(stream);
    if (h) gemm_ex_bf16(h, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Row-major C = alpha op(A) op(B) + beta C with bf16 operands and fp32 accumulation and output.
static void gemm_bf16(cublasHandle_t h, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc, cudaStream_t stream) {
    // The operands as stored (row-major): A is [M,K] or, transposed, [K,M]; B is [K,N] or [N,K].
    int ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N;
    size_t na = (size_t)ar * ac, nb = (size_t)br * bc, na_pad = (na + 63) & ~(size_t)63;
    uint16_t *buf = (uint16_t *)grow(&g_bf, &g_bf_bytes, sizeof(uint16_t) * (na_pad + nb), "bf16 workspace allocation");
    if (!buf) return;
    uint16_t *a16 = buf, *b16 = buf + na_pad;
    LAUNCH(pack_bf16_kernel, grid_for(na, 256), 256, 0, stream, a16, A, ar, ac, lda);
    LAUNCH(pack_bf16_kernel, grid_for(nb, 256), 256, 0, stream, b16, B, br, bc, ldb);
    gemm_ex_bf16(h, transA, transB, M, N, K, alpha, a16, ac, b16, bc, beta, C, ldc);
}

void gemm_rm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc, cudaStream_t stream) {
    if (M <= 0 || N <= 0) return;
    cublasHandle_t h = blas_handle(stream);
    if (!h) return;
    if (g_prec == MV_PREC_BF16 && K > 0) {
        gemm_bf16(h, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream);
        return;
    }
    // Row-major C[M,N] = op(A) op(B) is column-major C^T[N,M] = op(B)^T op(A)^T, and a row-major
    // matrix read column-major is its transpose: swap the operands, keep the transpose flags.
    cublasStatus_t st = cublasSgemm(h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    mv_cuda_note_blas(st, "cublasSgemm");
}
