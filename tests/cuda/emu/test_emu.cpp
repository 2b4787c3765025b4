// Checks of the host emulation itself (tests/cuda/emu): that the thread-order switch exposes a
// read of another thread's shared-memory write made without a barrier, that shared memory starts
// every block as NaN bytes, that warp shuffles keep CUDA's width rules, and that what is
// undefined on a GPU (divergent barriers and shuffles, a shuffle reading a lane that exited, mask
// mismatches, launches past the limits) aborts with "emu: ..." instead of quietly giving a value.
// Each misuse runs in a forked child; the parent checks that the child aborted with the message.
// And the runtime's device memory: copies whose kind does not match their pointers are refused,
// and under the guard (MV_EMU_GUARD) a host access to device memory dies of SIGSEGV while the
// emulation's own device work (launches, copies) still reaches it. Then the stream-ordering modes
// (MV_EMU_STREAMS): a consumer on one stream that does not wait for a producer on another reads
// stale data under lazy, right data with cudaEventRecord + cudaStreamWaitEvent; synchronisation
// drains what it must and no more; the legacy stream orders blocking streams, not non-blocking
// ones; lazy-reverse shows a write that does not wait for another stream's read.
// The checks before those run in the immediate mode whatever MV_EMU_STREAMS says (they read
// results without synchronising); the stream checks set each mode themselves.
#include "tests/cuda/emu/emu.h"
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

static int g_checks, g_failed;

static void check(bool ok, const char *what) {
    g_checks++;
    if (!ok) {
        g_failed++;
        printf("FAIL: %s\n", what);
    }
}

// ---- kernels ----------------------------------------------------------------------------------
#define NT 128

// out[t] = the value thread t-1 wrote, with no barrier between (a missing __syncthreads):
// right only when thread t-1 happens to run first, as in the forward order.
static void read_lower_kernel(int *out, bool barrier) {
    __shared__ int sh[NT];
    int t = threadIdx.x;
    sh[t] = 10 * t;
    if (barrier) __syncthreads();
    out[blockIdx.x * NT + t] = t ? sh[t - 1] : 0;
}

// One slot per warp, rewritten every window after a shuffle; every thread reads all slots. Without
// the second barrier a warp that runs ahead rewrites its slot while slower warps still read it.
static void reuse_kernel(int *out, bool barrier) {
    __shared__ int red[NT / 32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int w = 0; w < 3; w++) {
        int v = __shfl_sync(0xffffffffu, warp * 10 + w, 0);
        if (lane == 0) red[warp] = v;
        __syncthreads();
        int s = 0;
        for (int q = 0; q < NT / 32; q++) s += red[q];
        if (barrier) __syncthreads();
        out[w * NT + threadIdx.x] = s;
    }
}

// Odd threads read slots that nobody wrote: garbage on a GPU, NaN here.
static void uninit_kernel(float *out) {
    __shared__ float sh[NT];
    int t = threadIdx.x;
    if (t % 2 == 0) sh[t] = 1.0f;
    __syncthreads();
    out[t] = sh[t];   // odd threads read a slot nobody wrote
}

static void dyn_uninit_kernel(float *out) {
    float *sh = (float *)emu_dyn_smem();
    out[threadIdx.x] = sh[threadIdx.x];
}

static void width_kernel(int *out) {
    int lane = threadIdx.x % 32;
    int a = __shfl_sync(0xffffffffu, lane * 100, 3, 8);     // lane 3 of each 8-lane segment
    int b = __shfl_xor_sync(0xffffffffu, lane, 8, 16);      // within 16-lane segments
    int c = __shfl_down_sync(0xffffffffu, lane, 4, 16);     // past the segment end: own value
    int d = __shfl_up_sync(0xffffffffu, lane, 2);
    out[threadIdx.x] = ((a * 64 + b) * 64 + c) * 64 + d;
}

static void divergent_barrier_kernel(int *out) {
    if (threadIdx.x < 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

static void exited_lane_kernel(int *out) {
    if (threadIdx.x % 32 >= 16) return;   // half of every warp leaves
    int v = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 16);   // reads an exited lane
    out[threadIdx.x] = v;
}

static void exited_ok_kernel(int *out) {
    if (threadIdx.x % 32 >= 16) return;
    int v = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 8);   // stays among the lanes left
    out[threadIdx.x] = v;
}

// 48 threads: lanes 0..15 of the second warp read lanes 16..31, which do not exist.
static void partial_warp_kernel(int *out) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 16);
}

static void mask_mismatch_kernel(int *out) {
    unsigned mask = threadIdx.x % 32 < 16 ? 0x0000ffffu : 0xffffffffu;
    out[threadIdx.x] = __shfl_sync(mask, (int)threadIdx.x, 0);
}

static void divergent_shuffle_kernel(int *out) {
    int v;
    if (threadIdx.x % 2)
        v = __shfl_sync(0xffffffffu, (int)threadIdx.x, 0);
    else
        v = __shfl_sync(0xffffffffu, (int)threadIdx.x, 1);
    out[threadIdx.x] = v;
}

// Half a warp at a barrier, the other half at a shuffle that waits for the first half.
static void deadlock_kernel(int *out) {
    if (threadIdx.x < 16) __syncthreads();
    else out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
}

static void nothing_kernel(int *out) { out[0] = 0; }

// ---- helpers ----------------------------------------------------------------------------------
static int g_buf[4 * NT];
static float g_fbuf[NT];

// Runs fn in a child; true when the child aborted and its stderr contains `expect`.
template <class F>
static bool dies_with(F fn, const char *expect) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    std::string err;
    char chunk[512];
    ssize_t got;
    while ((got = read(fds[0], chunk, sizeof chunk)) > 0) err.append(chunk, (size_t)got);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool ok = WIFSIGNALED(status) && err.find(expect) != std::string::npos;
    if (!ok) printf("  child: %s (status %d)\n", err.c_str(), status);
    return ok;
}

// Runs fn in a child; true when the child died of signal sig.
template <class F>
static bool dies_of(F fn, int sig) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == sig;
    if (!ok) printf("  child: status %d\n", status);
    return ok;
}

static void fill_kernel(float *p, int n, float v) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) p[i] = v + i;
}

// out[i] = in[i] for n floats (a consumer: what it copies shows whether the producer had run).
static void copy_kernel(float *out, const float *in, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = in[i];
}

// ---- stream ordering (MV_EMU_STREAMS) ---------------------------------------------------------
enum { SN = 64 };

// Device buffers x (producer's output) and y (consumer's), both 0 and nothing left queued.
struct Bufs {
    float *x, *y;
};

static Bufs new_bufs(void) {
    Bufs b = {NULL, NULL};
    if (cudaMalloc(&b.x, SN * sizeof(float)) != cudaSuccess || cudaMalloc(&b.y, SN * sizeof(float)) != cudaSuccess)
        abort();
    cudaMemset(b.x, 0, SN * sizeof(float));
    cudaMemset(b.y, 0, SN * sizeof(float));
    cudaDeviceSynchronize();
    return b;
}

// y[0] as the host sees it after the device has finished everything (0: the consumer read stale x).
static float y0_after_all(const Bufs &b) {
    float host[SN];
    cudaDeviceSynchronize();
    if (cudaMemcpy(host, b.y, sizeof host, cudaMemcpyDeviceToHost) != cudaSuccess) abort();
    cudaFree(b.x);
    cudaFree(b.y);
    return host[0];
}

// Producer x = 1 + i on stream a, consumer y = x on stream b, b waiting for a's event if asked;
// then the host waits for b only. y[0]: 1 right, 0 stale.
static float producer_consumer(const char *mode, bool wait) {
    emu_set_streams(mode);
    Bufs b = new_bufs();
    cudaStream_t sa, sb;
    cudaEvent_t ev;
    cudaStreamCreateWithFlags(&sa, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&sb, cudaStreamNonBlocking);
    cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    float *x = b.x, *y = b.y;
    emu_launch(dim3(1), dim3(32), 0, sa, [=]() { fill_kernel(x, SN, 1.0f); });
    if (wait) {
        cudaEventRecord(ev, sa);
        cudaStreamWaitEvent(sb, ev, 0);
    }
    emu_launch(dim3(1), dim3(32), 0, sb, [=]() { copy_kernel(y, x, SN); });
    cudaStreamSynchronize(sb);
    cudaEventDestroy(ev);
    cudaStreamDestroy(sa);
    cudaStreamDestroy(sb);
    float r = y0_after_all(b);
    emu_set_streams(NULL);
    return r;
}

// A reader on stream r copies x (= 1 + i) to y; then stream w overwrites x with 9 + i, waiting
// for the read only if asked; the host waits for the reader's stream. y[0]: 1 right, 9 the
// write ran before the read.
static float read_then_write(const char *mode, bool wait) {
    emu_set_streams(mode);
    Bufs b = new_bufs();
    float *x = b.x, *y = b.y;
    emu_launch(dim3(1), dim3(32), 0, [=]() { fill_kernel(x, SN, 1.0f); });
    cudaDeviceSynchronize();
    cudaStream_t sr, sw;
    cudaEvent_t ev;
    cudaStreamCreateWithFlags(&sr, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&sw, cudaStreamNonBlocking);
    cudaEventCreate(&ev);
    emu_launch(dim3(1), dim3(32), 0, sr, [=]() { copy_kernel(y, x, SN); });
    if (wait) {
        cudaEventRecord(ev, sr);
        cudaStreamWaitEvent(sw, ev, 0);
    }
    emu_launch(dim3(1), dim3(32), 0, sw, [=]() { fill_kernel(x, SN, 9.0f); });
    cudaStreamSynchronize(sr);
    cudaEventDestroy(ev);
    cudaStreamDestroy(sr);
    cudaStreamDestroy(sw);
    float r = y0_after_all(b);
    emu_set_streams(NULL);
    return r;
}

// Producer on a created stream with `flags`, consumer on the legacy stream (no event): y[0].
static float legacy_after_stream(const char *mode, unsigned flags) {
    emu_set_streams(mode);
    Bufs b = new_bufs();
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, flags);
    float *x = b.x, *y = b.y;
    emu_launch(dim3(1), dim3(32), 0, s, [=]() { fill_kernel(x, SN, 1.0f); });
    emu_launch(dim3(1), dim3(32), 0, 0, [=]() { copy_kernel(y, x, SN); });
    cudaStreamSynchronize(0);
    cudaStreamDestroy(s);
    float r = y0_after_all(b);
    emu_set_streams(NULL);
    return r;
}

// Producer on the legacy stream, consumer on a created stream with `flags`: y[0].
static float stream_after_legacy(const char *mode, unsigned flags) {
    emu_set_streams(mode);
    Bufs b = new_bufs();
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, flags);
    float *x = b.x, *y = b.y;
    emu_launch(dim3(1), dim3(32), 0, 0, [=]() { fill_kernel(x, SN, 1.0f); });
    emu_launch(dim3(1), dim3(32), 0, s, [=]() { copy_kernel(y, x, SN); });
    cudaStreamSynchronize(s);
    cudaStreamDestroy(s);
    float r = y0_after_all(b);
    emu_set_streams(NULL);
    return r;
}

// A synchronous cudaMemcpy to the host after a producer on a stream with `flags`, no other
// wait: the copied x[0] (1 right, 0 the copy did not wait).
static float memcpy_after_stream(const char *mode, unsigned flags) {
    emu_set_streams(mode);
    Bufs b = new_bufs();
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, flags);
    float *x = b.x, host[SN];
    emu_launch(dim3(1), dim3(32), 0, s, [=]() { fill_kernel(x, SN, 1.0f); });
    if (cudaMemcpy(host, b.x, sizeof host, cudaMemcpyDeviceToHost) != cudaSuccess) abort();
    cudaStreamDestroy(s);
    y0_after_all(b);
    emu_set_streams(NULL);
    return host[0];
}

static void check_streams(void) {
    // Immediate (the default): everything runs at its call, so the missing wait goes unseen.
    check(producer_consumer(NULL, false) == 1.0f, "immediate: a consumer without an event still sees the producer");
    // Every mode keeps the order that the events and CUDA's default-stream rules ask for.
    static const char *const lazy_modes[] = {"lazy", "lazy-reverse", "lazy-shuffle:5"};
    for (const char *m : lazy_modes) {
        std::string what = std::string(m) + ": the consumer that waits for the producer's event reads its output";
        check(producer_consumer(m, true) == 1.0f, what.c_str());
        what = std::string(m) + ": a blocking stream waits for the legacy stream and the legacy stream for it";
        check(stream_after_legacy(m, cudaStreamDefault) == 1.0f && legacy_after_stream(m, cudaStreamDefault) == 1.0f,
              what.c_str());
        what = std::string(m) + ": cudaMemcpy to the host waits for a blocking stream";
        check(memcpy_after_stream(m, cudaStreamDefault) == 1.0f, what.c_str());
        what = std::string(m) + ": a write that waits for the other stream's read leaves the read its data";
        check(read_then_write(m, true) == 1.0f, what.c_str());
    }
    // And lazy runs nothing that the awaited work does not need: a non-blocking stream is not
    // ordered with the legacy stream (nor is cudaMemcpy), and a missing wait shows.
    check(stream_after_legacy("lazy", cudaStreamNonBlocking) == 0.0f &&
              legacy_after_stream("lazy", cudaStreamNonBlocking) == 0.0f,
          "lazy: a non-blocking stream and the legacy stream do not wait for each other");
    check(memcpy_after_stream("lazy", cudaStreamNonBlocking) == 0.0f,
          "lazy: cudaMemcpy to the host does not wait for a non-blocking stream");
    check(producer_consumer("lazy", false) == 0.0f, "lazy: a consumer without the producer's event reads stale data");
    check(read_then_write("lazy", false) == 1.0f, "lazy: the write that does not wait runs after the awaited read");
    check(read_then_write("lazy-reverse", false) == 9.0f,
          "lazy-reverse: a write that does not wait for another stream's read overwrites its data first");

    // What a synchronisation runs: a stream's queue, up to an event, nothing before it is asked.
    // (Without the guard the host can look at device memory, which shows what has run.)
    emu_set_guard(false);
    emu_set_streams("lazy");
    {
        Bufs b = new_bufs();
        cudaStream_t s;
        cudaEvent_t ev;
        cudaStreamCreate(&s);
        cudaEventCreate(&ev);
        float *x = b.x, *y = b.y;
        emu_launch(dim3(1), dim3(32), 0, s, [=]() { fill_kernel(x, SN, 1.0f); });
        cudaEventRecord(ev, s);
        emu_launch(dim3(1), dim3(32), 0, s, [=]() { fill_kernel(y, SN, 2.0f); });
        check(x[0] == 0.0f && y[0] == 0.0f, "lazy: queued launches have not run before a synchronisation");
        cudaEventSynchronize(ev);
        check(x[0] == 1.0f && y[0] == 0.0f, "lazy: cudaEventSynchronize runs the work before the event, not after");
        cudaStreamSynchronize(s);
        check(y[0] == 2.0f, "lazy: cudaStreamSynchronize runs the stream's queue");
        float host[SN];
        for (int i = 0; i < SN; i++) host[i] = 5.0f;
        cudaMemcpyAsync(x, host, sizeof host, cudaMemcpyHostToDevice, s);
        host[0] = 6.0f;   // pageable memory is staged at the call
        emu_launch(dim3(1), dim3(32), 0, s, [=]() { copy_kernel(y, x, SN); });
        cudaMemsetAsync(x, 0, sizeof(float), s);
        bool queued = y[0] == 2.0f;
        while (cudaStreamQuery(s) == cudaErrorNotReady) cudaGetLastError();
        check(queued && y[0] == 5.0f && x[0] == 0.0f, "lazy: cudaMemcpyAsync, cudaMemsetAsync and a query that "
              "answers complete");

        // cuBLAS: on the stream the handle had at the call.
        cublasHandle_t h;
        cublasCreate(&h);
        cublasSetStream(h, s);
        float one = 1.0f, zero = 0.0f;
        cudaMemset(x, 0, SN * sizeof(float));
        cudaDeviceSynchronize();
        x[0] = 3.0f;   // x as a 1x1 matrix
        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, x, 1, x, 1, &zero, y, 1);
        one = 0.0f;    // alpha is read at the call
        bool deferred = y[0] == 5.0f;
        cudaStreamSynchronize(s);
        check(deferred && y[0] == 9.0f, "lazy: a cuBLAS GEMM runs on the handle's stream, with alpha as called");
        cublasDestroy(h);
        cudaEventDestroy(ev);
        cudaStreamDestroy(s);
        y0_after_all(b);
    }
    emu_set_streams(NULL);
    check(dies_with([=]() { emu_set_streams("eager"); }, "MV_EMU_STREAMS"), "an unknown stream mode is refused");
}

static bool reuse_right(bool barrier) {
    int *out = g_buf;
    emu_launch(dim3(1), dim3(NT), 0, [=]() { reuse_kernel(out, barrier); });
    for (int w = 0; w < 3; w++)
        for (int t = 0; t < NT; t++)
            if (g_buf[w * NT + t] != 60 + 4 * w) return false;
    return true;
}

static bool all_read_lower(void) {
    for (int b = 0; b < 4; b++)
        for (int t = 0; t < NT; t++)
            if (g_buf[b * NT + t] != (t ? 10 * (t - 1) : 0)) return false;
    return true;
}

static void run_read_lower(bool barrier) {
    for (int i = 0; i < 4 * NT; i++) g_buf[i] = -7;
    int *out = g_buf;
    emu_launch(dim3(4), dim3(NT), 0, [=]() { read_lower_kernel(out, barrier); });
}

int main(void) {
    emu_set_streams(NULL);   // the checks up to check_streams read results without synchronising
    // The order switch: a missing barrier before a read of a lower thread's write is hidden by
    // the forward order, shown by the others; with the barrier every order is right.
    const char *orders[] = {"forward", "reverse", "shuffle:7"};
    for (int o = 0; o < 3; o++) {
        emu_set_thread_order(orders[o]);
        run_read_lower(true);
        check(all_read_lower(), "with the barrier, every order gives the written values");
        run_read_lower(false);
        bool right = all_read_lower();
        check(o == 0 ? right : !right, o == 0 ? "the forward order hides the missing barrier"
                                              : "reverse and shuffled orders expose the missing barrier");
        check(reuse_right(true), "a reused buffer with both barriers is right in every order");
        if (o == 0) check(reuse_right(false), "the forward order hides a reuse without a barrier");
        if (o == 1) check(!reuse_right(false), "the reverse order (warp by warp) exposes a reuse without a barrier");
        if (o == 2) {   // a block picks round-robin or warp by warp at random: some of 8 runs fail
            bool exposed = false;
            for (int r = 0; r < 8; r++) exposed = exposed || !reuse_right(false);
            check(exposed, "the shuffled order exposes a reuse without a barrier");
        }
    }
    emu_set_thread_order("forward");

    // Shared memory starts as NaN bytes in every block (static and dynamic).
    {
        float *out = g_fbuf;
        emu_launch(dim3(2), dim3(NT), 0, [=]() { uninit_kernel(out); });
        bool ok = true;
        for (int t = 0; t < NT; t++) ok = ok && (t % 2 ? g_fbuf[t] != g_fbuf[t] : g_fbuf[t] == 1.0f);
        check(ok, "unwritten __shared__ reads as NaN");
        emu_launch(dim3(1), dim3(NT), sizeof(float) * NT, [=]() { dyn_uninit_kernel(out); });
        ok = true;
        for (int t = 0; t < NT; t++) ok = ok && g_fbuf[t] != g_fbuf[t];
        check(ok, "unwritten dynamic shared memory reads as NaN");
    }

    // Shuffle widths follow CUDA.
    {
        int *out = g_buf;
        emu_launch(dim3(1), dim3(64), 0, [=]() { width_kernel(out); });
        bool ok = true;
        for (int t = 0; t < 64; t++) {
            int lane = t % 32;
            int a = ((lane & ~7) + 3) * 100, b = lane ^ 8;
            int c = (lane % 16) + 4 < 16 ? lane + 4 : lane, d = lane >= 2 ? lane - 2 : lane;
            ok = ok && g_buf[t] == ((a * 64 + b) * 64 + c) * 64 + d;
        }
        check(ok, "shuffle widths, xor/down/up segments");
        emu_launch(dim3(1), dim3(64), 0, [=]() { exited_ok_kernel(out); });
        ok = true;
        for (int t = 0; t < 64; t++)
            if (t % 32 < 16) ok = ok && g_buf[t] == (t ^ 8);
        check(ok, "a full-mask shuffle among the lanes left after others exited");
    }

    // Misuses abort.
    int *out = g_buf;
    check(dies_with([=]() { emu_launch(dim3(1), dim3(64), 0, [=]() { divergent_barrier_kernel(out); }); },
                    "divergent __syncthreads"),
          "divergent __syncthreads aborts");
    check(dies_with([=]() { emu_launch(dim3(1), dim3(64), 0, [=]() { exited_lane_kernel(out); }); },
                    "which did not take part"),
          "a shuffle reading an exited lane aborts");
    check(dies_with([=]() { emu_launch(dim3(1), dim3(48), 0, [=]() { partial_warp_kernel(out); }); },
                    "which did not take part"),
          "a shuffle reading past the block's last thread (partial warp) aborts");
    check(dies_with([=]() { emu_launch(dim3(1), dim3(32), 0, [=]() { mask_mismatch_kernel(out); }); },
                    "different shuffle masks"),
          "lanes passing different masks abort");
    check(dies_with([=]() { emu_launch(dim3(1), dim3(32), 0, [=]() { divergent_shuffle_kernel(out); }); },
                    "divergent shuffles"),
          "shuffles at different lines abort");
    check(dies_with([=]() { emu_launch(dim3(1), dim3(32), 0, [=]() { deadlock_kernel(out); }); }, "deadlock"),
          "a barrier that some threads never reach is a deadlock");
    check(dies_with([=]() { emu_launch(dim3(1, 70000), dim3(32), 0, [=]() { nothing_kernel(out); }); },
                    "invalid launch"),
          "gridDim.y above 65535 aborts");
    check(dies_with([=]() { emu_launch(dim3(1), dim3(32), 49 * 1024, [=]() { nothing_kernel(out); }); },
                    "above 48 KiB"),
          "dynamic shared memory above 48 KiB without the attribute aborts");
    check(dies_with([=]() { emu_set_thread_order("backwards"); }, "MV_EMU_THREAD_ORDER"),
          "an unknown order is refused");

    // cudaMemcpy's kind must match where its pointers are, as on a GPU; cudaMemcpyDefault takes
    // either. A refused copy copies nothing and leaves the error for cudaGetLastError.
    {
        float host[8] = {1, 2, 3, 4, 5, 6, 7, 8}, back[8] = {0}, *dev = NULL, *dev2 = NULL;
        check(cudaMalloc(&dev, sizeof host) == cudaSuccess && cudaMalloc(&dev2, sizeof host) == cudaSuccess,
              "cudaMalloc");
        check(cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice) == cudaSuccess &&
                  cudaMemcpy(dev2, dev, sizeof host, cudaMemcpyDeviceToDevice) == cudaSuccess &&
                  cudaMemcpy(back, dev2, sizeof host, cudaMemcpyDeviceToHost) == cudaSuccess &&
                  memcmp(back, host, sizeof host) == 0,
              "copies of the right kinds");
        check(cudaMemcpy(back, dev, sizeof host, cudaMemcpyHostToDevice) == cudaErrorInvalidValue &&
                  cudaGetLastError() == cudaErrorInvalidValue,
              "a host destination given as device memory is refused");
        check(cudaMemcpy(dev, host, sizeof host, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue,
              "a host source given as device memory is refused");
        check(cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToHost) == cudaErrorInvalidValue,
              "a device destination given as host memory is refused");
        check(cudaMemcpy(back, dev, sizeof host, cudaMemcpyHostToHost) == cudaErrorInvalidValue,
              "a device source given as host memory is refused");
        check(cudaMemcpy(back, dev + 1, sizeof host, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue,
              "a copy past the end of an allocation is refused");
        check(cudaMemset(host, 0, sizeof host) == cudaErrorInvalidValue && host[0] == 1,
              "cudaMemset of host memory is refused");
        check(cudaFree(host) == cudaErrorInvalidValue, "cudaFree of host memory is refused");
        memset(back, 0, sizeof back);
        check(cudaMemcpy(dev, host, sizeof host, cudaMemcpyDefault) == cudaSuccess &&
                  cudaMemcpy(back, dev, sizeof host, cudaMemcpyDefault) == cudaSuccess &&
                  memcmp(back, host, sizeof host) == 0,
              "cudaMemcpyDefault takes host and device pointers");
        cudaGetLastError();
        cudaFree(dev);
        cudaFree(dev2);
    }

    // The guard: device memory is reachable from kernels and copies only.
    {
        auto guarded = [](float **dev) {
            emu_set_guard(true);
            if (cudaMalloc(dev, 64 * sizeof(float)) != cudaSuccess) _exit(3);
            float *p = *dev;
            emu_launch(dim3(1), dim3(32), 0, [=]() { fill_kernel(p, 64, 0.5f); });
        };
        check(dies_of([=]() {
                  float *dev;
                  guarded(&dev);
                  float host[64];
                  if (cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost) != cudaSuccess) _exit(4);
                  for (int i = 0; i < 64; i++)
                      if (host[i] != 0.5f + i) _exit(5);   // launches and copies reach the memory
                  raise(SIGUSR1);
              }, SIGUSR1),
              "under the guard, kernels and copies reach device memory");
        check(dies_of([=]() {
                  float *dev;
                  guarded(&dev);
                  dev[3] = 1.0f;   // a host write to device memory
              }, SIGSEGV),
              "under the guard, a host write to device memory dies of SIGSEGV");
        check(dies_of([=]() {
                  float *dev;
                  guarded(&dev);
                  volatile float x = dev[3];   // a host read
                  (void)x;
              }, SIGSEGV),
              "under the guard, a host read of device memory dies of SIGSEGV");
    }

    check_streams();

    printf("test_emu: %d checks, %d failed\n", g_checks, g_failed);
    return g_failed ? 1 : 0;
}
