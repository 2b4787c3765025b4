// The CUDA runtime and cuBLAS entry points that kernels/cuda and tests/cuda/test_cuda_ops.c call,
// implemented on the host for the emulation build: "device" memory is host memory, every call is
// synchronous, one emulated device exists, and cublasSgemm is OpenBLAS's sgemm. The GEMMs
// reproduce the precision modes' input rounding, so that the emulated tests see their errors:
// in TF32 math mode the operands are rounded to 10-bit mantissas, and cublasGemmEx reads bf16
// operands (CUDA_R_16BF) as the GPU does; accumulation is fp32 (OpenBLAS) in every mode.
//
// Device memory is kept in an allocation table, so that the runtime refuses what a GPU refuses:
// a cudaMemcpy whose pointers do not match its kind (a host pointer given as device memory or
// the reverse; cudaMemcpyDefault takes either), a copy or memset past the end of an allocation, a
// cudaFree of what cudaMalloc did not return. With MV_EMU_GUARD=1 device memory is mmap'ed and
// kept PROT_NONE except while the emulation itself does device work (a kernel launch, a cuBLAS
// call, a copy or memset, an emulated NCCL collective: emu_device_begin/end), so host code that
// reads or writes a device pointer dies with SIGSEGV, as it would on a GPU.
#include "tests/cuda/emu/emu.h"
#include <cublas_v2.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>
#include <map>
#include <mutex>
#include <unordered_set>

static cudaError_t g_last = cudaSuccess;

static cudaError_t note(cudaError_t e) {
    if (e != cudaSuccess) g_last = e;
    return e;
}

// Streams: registered handles (every emulated operation runs at its call, so a stream orders
// nothing; the registry lets emu_stream_ok catch a destroyed or never-created stream).
struct CUstream_st {
    unsigned flags;
};
static std::mutex g_streams_mu;
static std::unordered_set<cudaStream_t> g_streams;

bool emu_stream_ok(cudaStream_t s) {
    if (s == 0 || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
    std::lock_guard<std::mutex> lock(g_streams_mu);
    return g_streams.count(s) != 0;
}

// ---- device memory: the allocation table and the guard -----------------------------------------
struct Alloc {
    size_t size;     // as asked
    size_t mapped;   // the mmap'ed length in guard mode, 0 for malloc'd memory
};
static std::mutex g_mem_mu;   // the table, the guard's depth and the protection of every allocation
static std::map<uintptr_t, Alloc> g_allocs;
static int g_guard = -1;      // MV_EMU_GUARD, read at the first allocation
static int g_depth;           // nesting of device work in progress (emu_device_begin)
static size_t g_live_bytes;

static bool guard_on(void) {
    if (g_guard < 0) {
        const char *e = getenv("MV_EMU_GUARD");
        g_guard = e && strcmp(e, "0") != 0 && *e;
    }
    return g_guard;
}

static void protect_all(int prot) {
    for (auto &a : g_allocs)
        if (a.second.mapped && mprotect((void *)a.first, a.second.mapped, prot) != 0) {
            perror("emu: mprotect");
            abort();
        }
}

void emu_set_guard(bool on) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_guard = on;
}

void emu_device_begin(void) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (g_depth++ == 0) protect_all(PROT_READ | PROT_WRITE);
}

void emu_device_end(void) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (--g_depth == 0) protect_all(PROT_NONE);
}

// Where [p, p + n) lies: 1 within one device allocation, 0 in host memory, -1 where it starts in
// an allocation and runs past its end.
static int where(const void *p, size_t n) {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return 0;
    --it;
    size_t size = it->second.size ? it->second.size : 1;
    if (a >= it->first + size) return 0;
    return a + n <= it->first + size ? 1 : -1;
}

static cudaError_t refuse(const char *call, const char *why, const void *p, size_t n) {
    fprintf(stderr, "emu: %s: %s (%p, %zu bytes)\n", call, why, p, n);
    return note(cudaErrorInvalidValue);
}

// The mapping's length to ask for a size (whole pages).
static size_t page_round(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

// The device's size: MV_EMU_DEVICE_BYTES, read at every call (the out-of-memory tests set it for
// a moment), or else unlimited (reported as 1 TiB; the emulated tests' few GiB are host memory).
static size_t device_bytes(void) {
    const char *e = getenv("MV_EMU_DEVICE_BYTES");
    return e && *e ? (size_t)strtoull(e, NULL, 10) : (size_t)1 << 40;
}

extern "C" {

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return note(device == 0 ? cudaSuccess : cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (device != 0) return note(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "host emulation (no GPU)");
    prop->major = 9;
    prop->multiProcessorCount = 1;
    prop->totalGlobalMem = (size_t)1 << 30;
    return cudaSuccess;
}

// New device memory is 0xff bytes (NaN as floats): cudaMalloc does not clear memory, and a GPU
// often hands back zeros or an earlier buffer's values, which a read-before-write would take
// quietly. Here such a read gives NaN and the comparisons fail.
cudaError_t cudaMalloc(void **ptr, size_t size) {
    *ptr = NULL;
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (g_live_bytes + size > device_bytes()) return note(cudaErrorMemoryAllocation);
    Alloc al = {size, 0};
    void *p;
    if (guard_on()) {
        al.mapped = page_round(size ? size : 1);
        p = mmap(NULL, al.mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return note(cudaErrorMemoryAllocation);
        memset(p, 0xff, size);
        if (g_depth == 0 && mprotect(p, al.mapped, PROT_NONE) != 0) {
            perror("emu: mprotect");
            abort();
        }
    } else {
        p = malloc(size ? size : 1);
        if (!p) return note(cudaErrorMemoryAllocation);
        memset(p, 0xff, size);
    }
    g_allocs[(uintptr_t)p] = al;
    g_live_bytes += size;
    *ptr = p;
    return cudaSuccess;
}

static long g_frees;

// cudaFree calls so far: a GPU's cudaFree waits for the whole device, NCCL kernels included,
// so the tests check that none happens inside a training step (tests/cuda/test_train_cuda.c).
extern "C" long emu_free_count(void) { return g_frees; }

cudaError_t cudaFree(void *ptr) {
    g_frees++;
    if (!ptr) return cudaSuccess;
    std::unique_lock<std::mutex> lock(g_mem_mu);
    auto it = g_allocs.find((uintptr_t)ptr);
    if (it == g_allocs.end()) {
        lock.unlock();
        return refuse("cudaFree", "not a pointer cudaMalloc returned", ptr, 0);
    }
    if (it->second.mapped)
        munmap(ptr, it->second.mapped);
    else
        free(ptr);
    g_live_bytes -= it->second.size;
    g_allocs.erase(it);
    return cudaSuccess;
}

// The kind must match where the pointers are, as on a GPU (a host pointer given as device memory
// is an invalid argument there, a device pointer given as host memory too).
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    if (!count) return cudaSuccess;
    int d = where(dst, count), s = where(src, count);
    if (d < 0) return refuse("cudaMemcpy", "the destination runs past the end of its allocation", dst, count);
    if (s < 0) return refuse("cudaMemcpy", "the source runs past the end of its allocation", src, count);
    int want_d = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    int want_s = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind != cudaMemcpyDefault) {
        if (kind != cudaMemcpyHostToHost && kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost &&
            kind != cudaMemcpyDeviceToDevice)
            return refuse("cudaMemcpy", "unknown kind", dst, count);
        if (d != want_d)
            return refuse("cudaMemcpy", want_d ? "the destination is not device memory, as the kind says"
                                               : "the destination is device memory, the kind says host", dst, count);
        if (s != want_s)
            return refuse("cudaMemcpy", want_s ? "the source is not device memory, as the kind says"
                                               : "the source is device memory, the kind says host", src, count);
    }
    emu_device_begin();
    memmove(dst, src, count);
    emu_device_end();
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
    (void)stream;
    return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    if (!count) return cudaSuccess;
    if (where(ptr, count) != 1) return refuse("cudaMemset", "not within one device allocation", ptr, count);
    emu_device_begin();
    memset(ptr, value, count);
    emu_device_end();
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream) {
    (void)stream;
    return cudaMemset(ptr, value, count);
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    if (!stream) return note(cudaErrorInvalidValue);
    CUstream_st *s = (CUstream_st *)calloc(1, sizeof *s);
    if (!s) return note(cudaErrorMemoryAllocation);
    s->flags = flags;
    std::lock_guard<std::mutex> lock(g_streams_mu);
    g_streams.insert(s);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(g_streams_mu);
    if (!g_streams.erase(stream)) return note(cudaErrorInvalidResourceHandle);
    free(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    return cudaSuccess;
}

// Work runs when it is launched, so a stream is always complete. A GPU's stream is usually still
// busy when a wait first polls it, and the runtime then records cudaErrorNotReady as the thread's
// last error (the next cudaGetLastError returns it): every other query answers so, once, to keep
// the waiting code honest about both. And, for the hang tests, after MV_EMU_STALL_QUERIES=N
// answers of "complete", every further query reports the stream unfinished, as a stream whose
// NCCL kernel waits for a rank that never joins stays (tests/scripts/train_cuda_emu_mpi.sh).
cudaError_t cudaStreamQuery(cudaStream_t stream) {
    (void)stream;
    static long limit = -2, answered = 0;
    static bool busy = false;
    if (limit == -2) {
        const char *e = getenv("MV_EMU_STALL_QUERIES");
        limit = e ? atol(e) : -1;
    }
    busy = !busy;
    if (busy || (limit >= 0 && answered >= limit)) {
        g_last = cudaErrorNotReady;
        return cudaErrorNotReady;
    }
    answered++;
    return cudaSuccess;
}

// The live allocations count (so a leak shows, as on a GPU).
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    size_t all = device_bytes();
    *free_bytes = g_live_bytes < all ? all - g_live_bytes : 0;
    *total = all;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    (void)func;
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > 227 * 1024) return note(cudaErrorInvalidValue);   // sm_90's opt-in limit
        if ((size_t)value > emu_smem_optin) emu_smem_optin = (size_t)value;
    }
    return cudaSuccess;
}

// Events: host clock readings (every call is synchronous here).
struct CUevent_st {
    double t;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    *event = (cudaEvent_t)calloc(1, sizeof(struct CUevent_st));
    return *event ? cudaSuccess : note(cudaErrorMemoryAllocation);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    (void)stream;
    event->t = now_ms();
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    (void)event;
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    *ms = (float)(end->t - start->t);
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    (void)flags;
    return cudaEventCreate(event);
}

// Nothing to wait for: the work recorded before the event has already run.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    (void)flags;
    return event && emu_stream_ok(stream) ? cudaSuccess : note(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    free(event);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return g_last; }

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorInvalidValue: return "invalid argument";
    default: return "emulated CUDA error";
    }
}

// ---- cuBLAS ---------------------------------------------------------------------------------
// A handle holds device memory, as cuBLAS's own workspace does: a handle never destroyed shows
// in cudaMemGetInfo.
struct cublasContext {
    cublasMath_t math;
    void *workspace;
};

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    *handle = (cublasHandle_t)calloc(1, sizeof(struct cublasContext));
    if (!*handle) return CUBLAS_STATUS_ALLOC_FAILED;
    if (cudaMalloc(&(*handle)->workspace, (size_t)64 << 10) != cudaSuccess) {
        cudaGetLastError();
        free(*handle);
        *handle = NULL;
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (handle) cudaFree(handle->workspace);
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
    (void)handle;
    (void)stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status) {
    return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "emulated cuBLAS error";
}

}  // extern "C"

// A column-major rows x cols operand (leading dimension ld) as a packed float copy, each value
// passed through `conv` (rounding to TF32, or widening bf16 bits).
template <typename T, typename F>
static float *packed_copy(const T *a, int rows, int cols, int ld, F conv) {
    float *p = (float *)malloc(sizeof(float) * (size_t)(rows > 0 ? rows : 1) * (cols > 0 ? cols : 1));
    if (!p) return NULL;
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) p[(size_t)c * rows + r] = conv(a[(size_t)c * ld + r]);
    return p;
}

// fp32 -> TF32 (10-bit mantissa), round to nearest, ties away from zero (cvt.rna.tf32.f32).
static float round_tf32(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

static float widen_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

static float same(float f) { return f; }

// C = alpha op(A) op(B) + beta C (column-major) through packed fp32 copies of the operands.
template <typename T, typename F>
static cublasStatus_t gemm_via_copies(cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                                      float alpha, const T *A, int lda, const T *B, int ldb, float beta, float *C,
                                      int ldc, F conv) {
    int ar = transa == CUBLAS_OP_N ? m : k, ac = transa == CUBLAS_OP_N ? k : m;
    int br = transb == CUBLAS_OP_N ? k : n, bc = transb == CUBLAS_OP_N ? n : k;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    float *a = packed_copy(A, ar, ac, lda, conv), *b = packed_copy(B, br, bc, ldb, conv);
    if (!a || !b) {
        free(a);
        free(b);
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    cblas_sgemm(CblasColMajor, transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, alpha, a, ar > 1 ? ar : 1, b,
                br > 1 ? br : 1, beta, C, ldc);
    free(a);
    free(b);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" {

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                              int m, int n, int k, const float *alpha, const float *A, int lda,
                              const float *B, int ldb, const float *beta, float *C, int ldc) {
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    EmuDeviceWork work;
    if (handle->math == CUBLAS_TF32_TENSOR_OP_MATH && k > 0)
        return gemm_via_copies(transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc, round_tf32);
    cblas_sgemm(CblasColMajor, transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, *alpha, A, lda, B, ldb, *beta,
                C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

// The types the backend uses: bf16 or fp32 operands, fp32 output, fp32 compute.
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
                            const void *B, cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    (void)handle;
    (void)algo;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (Atype != Btype || Ctype != CUDA_R_32F || computeType != CUBLAS_COMPUTE_32F ||
        (Atype != CUDA_R_16BF && Atype != CUDA_R_32F))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    // k = 0 (copies of no columns) leaves C = beta C to OpenBLAS's sgemm, as cuBLAS does.
    EmuDeviceWork work;
    float al = *(const float *)alpha, be = *(const float *)beta;
    if (Atype == CUDA_R_16BF)
        return gemm_via_copies(transa, transb, m, n, k, al, (const uint16_t *)A, lda, (const uint16_t *)B, ldb, be,
                               (float *)C, ldc, widen_bf16);
    return gemm_via_copies(transa, transb, m, n, k, al, (const float *)A, lda, (const float *)B, ldb, be, (float *)C,
                           ldc, same);
}

}  // extern "C"
