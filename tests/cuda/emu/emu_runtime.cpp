// The CUDA runtime and cuBLAS entry points that kernels/cuda and tests/cuda/test_cuda_ops.c call,
// implemented on the host for the emulation build: "device" memory is host memory, every call is
// synchronous unless MV_EMU_STREAMS queues stream work (below), one emulated device exists, and
// cublasSgemm is OpenBLAS's sgemm. The GEMMs
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
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <utility>
#include <vector>

static cudaError_t g_last = cudaSuccess;

static cudaError_t note(cudaError_t e) {
    if (e != cudaSuccess) g_last = e;
    return e;
}

// Streams: registered handles (the registry lets emu_stream_ok catch a destroyed or never-created
// stream). By default every emulated operation runs at its call, so a stream orders nothing.
struct Queue;
struct CUstream_st {
    unsigned flags;
    Queue *q;   // its work queue under MV_EMU_STREAMS, made at its first use
};
static std::mutex g_streams_mu;
static std::unordered_set<cudaStream_t> g_streams;

bool emu_stream_ok(cudaStream_t s) {
    if (s == 0 || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
    std::lock_guard<std::mutex> lock(g_streams_mu);
    return g_streams.count(s) != 0;
}

// ---- stream ordering (MV_EMU_STREAMS, emu.h) ---------------------------------------------------
// Every stream has a FIFO of items; an item is device work (a closure), a wait, or both. An item
// may run when it is at the head of its queue, the queue it waits for has run past the position
// it waits for, and (for a collective) its order's earlier items have run. Positions count the
// items ever pushed on a queue: item p has run once done > p. Every dependency points to work
// issued earlier by the host, so the items form a DAG and a drain always finds one that can run.
// The emulated programs call CUDA from one host thread (OpenMP threads run CPU code only), so the
// queues take no lock.
enum StreamMode { STREAMS_IMMEDIATE, STREAMS_LAZY, STREAMS_REVERSE, STREAMS_SHUFFLE };
static int g_stream_mode = -1;   // MV_EMU_STREAMS, read at the first stream operation
static uint64_t g_stream_rng;

struct Item {
    std::function<void()> work;   // empty: a pure wait
    bool device;                  // work touches device memory (MV_EMU_GUARD opens it)
    Queue *after;                 // runs once after->done >= after_pos (NULL: no such wait)
    uint64_t after_pos;
    EmuOrder *order;              // runs once order->executed == order_seq (NULL: none)
    uint64_t order_seq;
};

struct Queue {
    std::deque<Item> items;
    uint64_t issued, done;
    bool blocking;   // synchronises with the legacy default stream (CUDA's "blocking" stream)
    const char *name;
};

struct EmuOrder {
    uint64_t issued, executed;
    std::deque<std::pair<Queue *, uint64_t>> pending;   // where each unexecuted item sits
};

static Queue g_legacy_q = {{}, 0, 0, true, "legacy default stream"};
static Queue g_per_thread_q = {{}, 0, 0, true, "per-thread default stream"};
// Every queue, in creation order. A destroyed stream's queue (drained) stays, so that an event
// recorded on it still names a valid queue.
static std::vector<Queue *> g_queues = {&g_legacy_q, &g_per_thread_q};
static bool g_in_item;   // an item is running: a drain from inside one is an emulator bug

static int stream_mode(void) {
    if (g_stream_mode < 0) emu_set_streams(getenv("MV_EMU_STREAMS"));
    return g_stream_mode;
}

bool emu_streams_deferred(void) { return stream_mode() != STREAMS_IMMEDIATE; }

static Queue *queue_of(cudaStream_t s) {
    if (s == 0 || s == cudaStreamLegacy) return &g_legacy_q;
    if (s == cudaStreamPerThread) return &g_per_thread_q;
    {
        std::lock_guard<std::mutex> lock(g_streams_mu);
        if (!g_streams.count(s)) return NULL;
    }
    if (!s->q) {
        s->q = new Queue{{}, 0, 0, !(s->flags & cudaStreamNonBlocking), "stream"};
        g_queues.push_back(s->q);
    }
    return s->q;
}

static bool runnable(const Item &it) {
    return (!it.after || it.after->done >= it.after_pos) && (!it.order || it.order->executed == it.order_seq);
}

static uint64_t push_raw(Queue *q, Item it) {
    q->items.push_back(std::move(it));
    return q->issued++;
}

// CUDA's legacy default stream: its work waits for all work issued before it on blocking
// streams, and a blocking stream's work waits for the legacy stream's earlier work. Streams made
// with cudaStreamNonBlocking take no part.
static void implicit_waits(Queue *q) {
    if (q == &g_legacy_q) {
        for (Queue *r : g_queues)
            if (r != q && r->blocking && r->done < r->issued) push_raw(q, Item{{}, false, r, r->issued, NULL, 0});
    } else if (q->blocking && g_legacy_q.done < g_legacy_q.issued) {
        push_raw(q, Item{{}, false, &g_legacy_q, g_legacy_q.issued, NULL, 0});
    }
}

// Queues `it` on q after the implicit waits; its position.
static uint64_t push(Queue *q, Item it) {
    implicit_waits(q);
    return push_raw(q, std::move(it));
}

static void run_head(Queue *q) {
    Item it = std::move(q->items.front());
    q->items.pop_front();
    if (it.work) {
        g_in_item = true;
        if (it.device) {
            EmuDeviceWork work;
            it.work();
        } else {
            it.work();
        }
        g_in_item = false;
    }
    if (it.order) {
        it.order->executed++;
        it.order->pending.pop_front();
    }
    q->done++;
}

// lazy: only what q's first `pos` items need, each dependency when q's head waits for it.
static void advance(Queue *q, uint64_t pos) {
    while (q->done < pos) {
        const Item &it = q->items.front();
        if (it.after && it.after->done < it.after_pos) {
            advance(it.after, it.after_pos);
        } else if (it.order && it.order->executed != it.order_seq) {
            std::pair<Queue *, uint64_t> first = it.order->pending.front();
            advance(first.first, first.second + 1);
        } else {
            run_head(q);
        }
    }
}

static uint64_t stream_random(void) {   // splitmix64
    uint64_t z = (g_stream_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Runs queued work until q has run its first `pos` items, in the mode's order.
static void drain_to(Queue *q, uint64_t pos) {
    if (q->done >= pos) return;
    if (g_in_item) {
        fprintf(stderr, "emu: a stream drain from inside queued work (MV_EMU_STREAMS)\n");
        abort();
    }
    if (g_stream_mode == STREAMS_LAZY) {
        advance(q, pos);
        return;
    }
    std::vector<Queue *> heads;
    while (q->done < pos) {
        heads.clear();
        for (Queue *r : g_queues)
            if (!r->items.empty() && runnable(r->items.front())) heads.push_back(r);
        if (heads.empty()) {   // cannot happen: the dependencies form a DAG
            fprintf(stderr, "emu: %s: queued work waits for nothing that can run (MV_EMU_STREAMS)\n", q->name);
            abort();
        }
        Queue *pick = q;
        if (g_stream_mode == STREAMS_REVERSE) {
            // Every other stream first, the latest created first; the awaited stream last.
            for (size_t i = heads.size(); i-- > 0;)
                if (heads[i] != q) {
                    pick = heads[i];
                    break;
                }
        } else {
            pick = heads[stream_random() % heads.size()];
        }
        run_head(pick);
    }
}

static void drain_queue(Queue *q) { drain_to(q, q->issued); }

static void drain_all(void) {
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < g_queues.size(); i++)
            if (g_queues[i]->done < g_queues[i]->issued) {
                drain_queue(g_queues[i]);
                again = true;
            }
    }
}

void emu_set_streams(const char *spec) {
    if (g_stream_mode > STREAMS_IMMEDIATE) drain_all();
    g_stream_mode = STREAMS_IMMEDIATE;
    if (!spec || !*spec || strcmp(spec, "immediate") == 0) return;
    if (strcmp(spec, "lazy") == 0) {
        g_stream_mode = STREAMS_LAZY;
    } else if (strcmp(spec, "lazy-reverse") == 0) {
        g_stream_mode = STREAMS_REVERSE;
    } else if (strncmp(spec, "lazy-shuffle", 12) == 0 && (spec[12] == '\0' || spec[12] == ':')) {
        g_stream_mode = STREAMS_SHUFFLE;
        g_stream_rng = spec[12] == ':' ? strtoull(spec + 13, NULL, 10) : 1;
    } else {
        // A typo must not quietly test the immediate mode.
        fprintf(stderr, "emu: MV_EMU_STREAMS=%s: expected immediate, lazy, lazy-reverse or lazy-shuffle[:seed]\n",
                spec);
        abort();
    }
}

EmuOrder *emu_order_new(void) { return new EmuOrder{0, 0, {}}; }

void emu_order_run(EmuOrder *order) {
    while (order && !g_in_item && !order->pending.empty()) {
        std::pair<Queue *, uint64_t> first = order->pending.front();
        drain_to(first.first, first.second + 1);
    }
}

void emu_order_free(EmuOrder *order) {
    emu_order_run(order);
    delete order;
}

bool emu_stream_submit(cudaStream_t stream, std::function<void()> work, EmuOrder *order) {
    if (!emu_streams_deferred()) {
        EmuDeviceWork device;
        work();
        return true;
    }
    Queue *q = queue_of(stream);
    if (!q) return false;
    uint64_t seq = order ? order->issued++ : 0;
    uint64_t pos = push(q, Item{std::move(work), true, NULL, 0, order, seq});
    if (order) order->pending.push_back(std::make_pair(q, pos));
    return true;
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

// cudaFree waits for the whole device: under MV_EMU_STREAMS every queue runs first.
cudaError_t cudaFree(void *ptr) {
    g_frees++;
    if (!ptr) return cudaSuccess;
    if (emu_streams_deferred()) drain_all();
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
// is an invalid argument there, a device pointer given as host memory too). *dev_dst/*dev_src:
// whether each side is device memory.
static cudaError_t check_copy(const char *call, void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                              int *dev_dst, int *dev_src) {
    int d = where(dst, count), s = where(src, count);
    if (d < 0) return refuse(call, "the destination runs past the end of its allocation", dst, count);
    if (s < 0) return refuse(call, "the source runs past the end of its allocation", src, count);
    int want_d = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    int want_s = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind != cudaMemcpyDefault) {
        if (kind != cudaMemcpyHostToHost && kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost &&
            kind != cudaMemcpyDeviceToDevice)
            return refuse(call, "unknown kind", dst, count);
        if (d != want_d)
            return refuse(call, want_d ? "the destination is not device memory, as the kind says"
                                       : "the destination is device memory, the kind says host", dst, count);
        if (s != want_s)
            return refuse(call, want_s ? "the source is not device memory, as the kind says"
                                       : "the source is device memory, the kind says host", src, count);
    }
    *dev_dst = d;
    *dev_src = s;
    return cudaSuccess;
}

static void copy_now(void *dst, const void *src, size_t count) {
    emu_device_begin();
    memmove(dst, src, count);
    emu_device_end();
}

// Under MV_EMU_STREAMS cudaMemcpy is work on the legacy default stream, as on a GPU: a copy to or
// from the host returns once it has run (and so once everything it waits for has), a copy between
// device buffers returns at once.
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    if (!count) return cudaSuccess;
    int d, s;
    cudaError_t e = check_copy("cudaMemcpy", dst, src, count, kind, &d, &s);
    if (e != cudaSuccess) return e;
    if (!emu_streams_deferred() || (!d && !s)) {
        copy_now(dst, src, count);
        return cudaSuccess;
    }
    uint64_t pos = push(&g_legacy_q, Item{[=]() { memmove(dst, src, count); }, true, NULL, 0, NULL, 0});
    if (!d || !s) drain_to(&g_legacy_q, pos + 1);
    return cudaSuccess;
}

// Queued on the stream under MV_EMU_STREAMS. A source in (pageable) host memory is read at the
// call, as CUDA stages it then; a host destination is written when the copy runs, so the host
// must synchronise before it reads it.
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (!count) return cudaSuccess;
    int d, s;
    cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, count, kind, &d, &s);
    if (e != cudaSuccess) return e;
    if (!emu_streams_deferred()) {
        copy_now(dst, src, count);
        return cudaSuccess;
    }
    Queue *q = queue_of(stream);
    if (!q) return note(cudaErrorInvalidResourceHandle);
    if (!s) {
        std::shared_ptr<std::vector<char>> staged = std::make_shared<std::vector<char>>((const char *)src,
                                                                                       (const char *)src + count);
        push(q, Item{[=]() { memcpy(dst, staged->data(), count); }, true, NULL, 0, NULL, 0});
    } else {
        push(q, Item{[=]() { memmove(dst, src, count); }, true, NULL, 0, NULL, 0});
    }
    return cudaSuccess;
}

// cudaMemset of device memory does not wait for the host either (CUDA's API synchronisation
// rules): under MV_EMU_STREAMS it is queued on the legacy default stream.
cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    if (!count) return cudaSuccess;
    if (where(ptr, count) != 1) return refuse("cudaMemset", "not within one device allocation", ptr, count);
    if (emu_streams_deferred()) {
        push(&g_legacy_q, Item{[=]() { memset(ptr, value, count); }, true, NULL, 0, NULL, 0});
        return cudaSuccess;
    }
    emu_device_begin();
    memset(ptr, value, count);
    emu_device_end();
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream) {
    if (!count) return cudaSuccess;
    if (!emu_streams_deferred()) return cudaMemset(ptr, value, count);
    if (where(ptr, count) != 1) return refuse("cudaMemsetAsync", "not within one device allocation", ptr, count);
    Queue *q = queue_of(stream);
    if (!q) return note(cudaErrorInvalidResourceHandle);
    push(q, Item{[=]() { memset(ptr, value, count); }, true, NULL, 0, NULL, 0});
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    if (emu_streams_deferred()) drain_all();
    return cudaSuccess;
}

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

// A GPU finishes a destroyed stream's work later; here it runs first (its queue, empty, stays
// in g_queues for the events recorded on it).
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (emu_streams_deferred()) {
        Queue *q = queue_of(stream);
        if (q) drain_queue(q);
    }
    std::lock_guard<std::mutex> lock(g_streams_mu);
    if (!g_streams.erase(stream)) return note(cudaErrorInvalidResourceHandle);
    free(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (emu_streams_deferred()) {
        Queue *q = queue_of(stream);
        if (!q) return note(cudaErrorInvalidResourceHandle);
        drain_queue(q);
    }
    return cudaSuccess;
}

// Work runs when it is launched (or, under MV_EMU_STREAMS, when a query that answers "complete"
// runs what the stream has queued), so a stream is always complete. A GPU's stream is usually
// still busy when a wait first polls it, and the runtime then records cudaErrorNotReady as the
// thread's last error (the next cudaGetLastError returns it): every other query answers so, once,
// to keep the waiting code honest about both. And, for the hang tests, after MV_EMU_STALL_QUERIES=N
// answers of "complete", every further query reports the stream unfinished, as a stream whose
// NCCL kernel waits for a rank that never joins stays (tests/scripts/train_cuda_emu_mpi.sh).
cudaError_t cudaStreamQuery(cudaStream_t stream) {
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
    if (emu_streams_deferred()) {
        Queue *q = queue_of(stream);
        if (!q) return note(cudaErrorInvalidResourceHandle);
        drain_queue(q);
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

// Events: host clock readings, taken when the work before them has run. Under MV_EMU_STREAMS an
// event is its stream's queue and a position in it: complete once the queue has run that far.
struct CUevent_st {
    double t;
    Queue *q;       // NULL: never recorded (complete), or recorded in the immediate mode
    uint64_t pos;
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
    if (!event) return note(cudaErrorInvalidResourceHandle);
    if (!emu_streams_deferred()) {
        event->t = now_ms();
        return cudaSuccess;
    }
    Queue *q = queue_of(stream);
    if (!q) return note(cudaErrorInvalidResourceHandle);
    push(q, Item{[event]() { event->t = now_ms(); }, false, NULL, 0, NULL, 0});
    event->q = q;
    event->pos = q->issued;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event) return note(cudaErrorInvalidResourceHandle);
    if (emu_streams_deferred() && event->q) drain_to(event->q, event->pos);
    return cudaSuccess;
}

// Complete once it has run what it waits for (a query that answered "not ready" would only make
// the caller ask again).
cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    *ms = (float)(end->t - start->t);
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    (void)flags;
    return cudaEventCreate(event);
}

// The stream's later work waits until the event's queue has run past the event (an event never
// recorded is complete: nothing to wait for).
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    (void)flags;
    if (!event || !emu_stream_ok(stream)) return note(cudaErrorInvalidResourceHandle);
    if (emu_streams_deferred() && event->q && event->q->done < event->pos)
        push(queue_of(stream), Item{{}, false, event->q, event->pos, NULL, 0});
    return cudaSuccess;
}

// Its clock reading, still queued, writes into it: run that first.
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (event && emu_streams_deferred() && event->q) drain_to(event->q, event->pos);
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
    cudaStream_t stream;   // cublasSetStream's: a call's work goes on the stream set at the call
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
    if (!emu_stream_ok(stream)) return CUBLAS_STATUS_INVALID_VALUE;
    handle->stream = stream;
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

// Runs a GEMM's computation on the handle's stream: now, or queued there (MV_EMU_STREAMS) with
// the arguments as they were at the call (alpha and beta are host scalars, read at the call as
// cuBLAS reads them). A host allocation that fails while the queue runs has no caller left to
// hear of it: it aborts.
template <typename F>
static cublasStatus_t gemm_on_stream(cublasHandle_t handle, F compute) {
    if (!emu_streams_deferred()) {
        EmuDeviceWork work;
        return compute();
    }
    bool queued = emu_stream_submit(handle->stream, [=]() {
        if (compute() != CUBLAS_STATUS_SUCCESS) {
            fprintf(stderr, "emu: a queued cuBLAS GEMM failed (out of host memory)\n");
            abort();
        }
    }, NULL);
    return queued ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

extern "C" {

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                              int m, int n, int k, const float *alpha, const float *A, int lda,
                              const float *B, int ldb, const float *beta, float *C, int ldc) {
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    float al = *alpha, be = *beta;
    cublasMath_t math = handle->math;
    return gemm_on_stream(handle, [=]() {
        if (math == CUBLAS_TF32_TENSOR_OP_MATH && k > 0)
            return gemm_via_copies(transa, transb, m, n, k, al, A, lda, B, ldb, be, C, ldc, round_tf32);
        cblas_sgemm(CblasColMajor, transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                    transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, al, A, lda, B, ldb, be, C, ldc);
        return CUBLAS_STATUS_SUCCESS;
    });
}

// The types the backend uses: bf16 or fp32 operands, fp32 output, fp32 compute.
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
                            const void *B, cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    (void)algo;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (Atype != Btype || Ctype != CUDA_R_32F || computeType != CUBLAS_COMPUTE_32F ||
        (Atype != CUDA_R_16BF && Atype != CUDA_R_32F))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    // k = 0 (copies of no columns) leaves C = beta C to OpenBLAS's sgemm, as cuBLAS does.
    float al = *(const float *)alpha, be = *(const float *)beta;
    return gemm_on_stream(handle, [=]() {
        if (Atype == CUDA_R_16BF)
            return gemm_via_copies(transa, transb, m, n, k, al, (const uint16_t *)A, lda, (const uint16_t *)B, ldb,
                                   be, (float *)C, ldc, widen_bf16);
        return gemm_via_copies(transa, transb, m, n, k, al, (const float *)A, lda, (const float *)B, ldb, be,
                               (float *)C, ldc, same);
    });
}

}  // extern "C"
