// The fiber scheduler behind tests/cuda/emu/emu.h: runs each block of a launch as cooperative
// fibers, one per CUDA thread. A fiber runs until it reaches a barrier (__syncthreads, or the
// per-warp barrier inside a shuffle) and yields; a barrier opens when every live thread of its
// block (or warp) has arrived. Threads that return early stop counting, as on the GPU.
// Switching is a six-register stack switch on x86-64 (glibc's swapcontext makes a system call
// per switch, which made the emulated tests twenty times slower); ucontext elsewhere.
//
// What a GPU leaves to chance is fixed here but can be varied, so that a kernel that depends on
// it fails (see emu.h): MV_EMU_THREAD_ORDER picks round-robin or warp-by-warp turns, the order of
// threads and of blocks (forward, reverse, or seeded random); shared memory starts every block as
// NaN bytes. Misuses that are undefined on the GPU abort with "emu: ..." (a test then fails):
// barriers reached at different lines, shuffles whose mask is not the set of calling lanes or
// that read a lane which did not take part (it exited, or never existed in a partial warp),
// launches past the device's limits.
#include "tests/cuda/emu/emu.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// The linker's bounds of the __shared__ variables' section (absent when a program has none).
extern "C" unsigned char __start_emu_shared[] __attribute__((weak));
extern "C" unsigned char __stop_emu_shared[] __attribute__((weak));

uint3 emu_block_idx;
dim3 emu_block_dim, emu_grid_dim;

namespace {

enum State { RUNNABLE, WAIT_WARP, WAIT_BLOCK, DONE };
enum Order { ORDER_FORWARD, ORDER_REVERSE, ORDER_SHUFFLE };

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores the stack pointer in *save and
// resumes the stack `next` (which was saved the same way, or prepared by ctx_make).
extern "C" void emu_stack_switch(void **save, void *next);
asm(".text\n"
    ".globl emu_stack_switch\n"
    ".type emu_stack_switch,@function\n"
    "emu_stack_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_stack_switch, .-emu_stack_switch\n");
struct Context {
    void *sp;
};
#else
struct Context {
    ucontext_t uc;
};
#endif

struct Fiber {
    Context ctx;
    uint3 tid;
    int linear;
    State state;
    bool counted;          // its exit has been taken off the barrier counts
    unsigned wait_gen;     // generation of the barrier it waits on
    const char *wait_file; // where it waits (for the deadlock report)
    int wait_line;
};

struct Barrier {
    int arrived, live;
    unsigned gen;
    const char *file;   // where the first thread of this generation arrived
    int line;
};

// One lane's part in a warp exchange: its value, the member mask it passed, where it called
// from, and the exchange it belongs to (its warp barrier's generation + 1; 0: never written).
struct Slot {
    uint64_t bits;
    unsigned stamp, mask;
    const char *file;
    int line;
};

const size_t kStack = 256 * 1024;
std::vector<Fiber> g_fibers;
std::vector<char *> g_stacks;
std::vector<Barrier> g_warp_bar;
Barrier g_block_bar;
std::vector<Slot> g_slots;   // [warp][2][32]: exchanges alternate between two buffers
std::vector<unsigned char> g_smem;
size_t g_smem_bytes;
Context g_sched;
Fiber *g_cur;
const std::function<void()> *g_body;

// ---- the order switch (MV_EMU_THREAD_ORDER) ---------------------------------------------------
Order g_order = ORDER_FORWARD;
bool g_order_read = false;
uint64_t g_rng = 0;

uint64_t next_random(void) {   // splitmix64
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void parse_order(const char *v, const char *from) {
    g_order_read = true;
    g_order = ORDER_FORWARD;
    if (!v || !*v || strcmp(v, "forward") == 0) return;
    if (strcmp(v, "reverse") == 0) {
        g_order = ORDER_REVERSE;
        return;
    }
    if (strncmp(v, "shuffle", 7) == 0 && (v[7] == '\0' || v[7] == ':')) {
        g_order = ORDER_SHUFFLE;
        g_rng = v[7] == ':' ? strtoull(v + 8, NULL, 10) : 1;
        return;
    }
    // A typo must not quietly test the forward order.
    fprintf(stderr, "emu: %s=%s: expected forward, reverse or shuffle[:seed] (MV_EMU_THREAD_ORDER)\n", from, v);
    abort();
}

void read_order(void) {
    if (!g_order_read) parse_order(getenv("MV_EMU_THREAD_ORDER"), "MV_EMU_THREAD_ORDER");
}

// order[0..n) <- the visiting order of n items under the switch.
void make_order(std::vector<uint32_t> &order, size_t n) {
    order.resize(n);
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)(g_order == ORDER_REVERSE ? n - 1 - i : i);
    if (g_order == ORDER_SHUFFLE)
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(next_random() % i);
            uint32_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
}

// ---- errors -----------------------------------------------------------------------------------
[[noreturn]] void emu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void emu_fail(const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "emu: block (%u,%u,%u) of grid (%u,%u,%u) x (%u,%u,%u): %s\n", emu_block_idx.x,
            emu_block_idx.y, emu_block_idx.z, emu_grid_dim.x, emu_grid_dim.y, emu_grid_dim.z, emu_block_dim.x,
            emu_block_dim.y, emu_block_dim.z, msg);
    abort();
}

bool same_site(const char *f1, int l1, const char *f2, int l2) {
    return l1 == l2 && (f1 == f2 || (f1 && f2 && strcmp(f1, f2) == 0));
}

void ctx_switch(Context *from, Context *to) {
#if defined(__x86_64__)
    emu_stack_switch(&from->sp, to->sp);
#else
    swapcontext(&from->uc, &to->uc);
#endif
}

// A fiber's life: run the kernel body, then hand control back for good.
void fiber_main() {
    (*g_body)();
    g_cur->state = DONE;
    ctx_switch(&g_cur->ctx, &g_sched);
    abort();   // a finished fiber is never resumed
}

void ctx_make(Context *c, char *stack, size_t size) {
#if defined(__x86_64__)
    // The first switch pops six zero registers and "returns" into fiber_main with the stack
    // aligned as after a call.
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;                     // fiber_main's own return address (never used)
    *--sp = (void *)fiber_main;
    for (int i = 0; i < 6; i++) *--sp = NULL;
    c->sp = sp;
#else
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, fiber_main, 0);
#endif
}

// The last thread to arrive opens the barrier; the others yield until its generation moves on.
void arrive(Barrier &b, State wait_state, const char *file, int line) {
    Fiber *me = g_cur;
    if (b.arrived == 0) {
        b.file = file;
        b.line = line;
    }
    if (++b.arrived == b.live) {
        b.arrived = 0;
        b.gen++;
        return;
    }
    me->state = wait_state;
    me->wait_gen = b.gen;
    me->wait_file = file;
    me->wait_line = line;
    ctx_switch(&me->ctx, &g_sched);
}

void release_if_complete(Barrier &b) {
    if (b.arrived > 0 && b.arrived == b.live) {
        b.arrived = 0;
        b.gen++;
    }
}

// Shared memory starts every block as 0xff bytes (NaN as floats and doubles, -1 as integers):
// the GPU gives a block whatever an earlier one left, never zeros, and a kernel that reads
// before writing must fail here rather than read the zeros or the previous block's values.
void poison_shared(void) {
    if (g_smem_bytes) memset(g_smem.data(), 0xff, g_smem_bytes);
    uintptr_t lo = (uintptr_t)__start_emu_shared, hi = (uintptr_t)__stop_emu_shared;
    if (lo && hi > lo) memset(__start_emu_shared, 0xff, hi - lo);
}

[[noreturn]] void report_deadlock(int nthreads) {
    char where[512];
    size_t len = 0;
    where[0] = '\0';
    // The first waiting thread at each distinct place (a few are enough to see the divergence).
    int shown = 0;
    for (int i = 0; i < nthreads && shown < 6; i++) {
        Fiber &f = g_fibers[i];
        if (f.state != WAIT_WARP && f.state != WAIT_BLOCK) continue;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) {
            Fiber &e = g_fibers[j];
            seen = e.state == f.state && same_site(e.wait_file, e.wait_line, f.wait_file, f.wait_line);
        }
        if (seen) continue;
        len += (size_t)snprintf(where + len, sizeof where - len, "%sthread %d at %s %s:%d", shown ? "; " : "", i,
                                f.state == WAIT_WARP ? "a shuffle" : "__syncthreads", f.wait_file, f.wait_line);
        if (len >= sizeof where) len = sizeof where - 1;
        shown++;
    }
    emu_fail("deadlock: threads wait at different barriers (%s)", where);
}

// The lanes of warp w that exist in this block and have not exited.
unsigned live_lanes(int w) {
    unsigned m = 0;
    int n = (int)g_fibers.size();
    for (int l = 0; l < 32 && w * 32 + l < n; l++)
        if (g_fibers[w * 32 + l].state != DONE) m |= 1u << l;
    return m;
}

// Run by the lane that completes an exchange, when every caller's slot is written: the GPU's
// rules for the *_sync shuffles. Each caller must be in its mask, and all callers pass the same
// mask from the same line; every lane the mask names that has not exited must call (a partial
// mask with other lanes still running is beyond this emulation, which waits for all live lanes).
void check_exchange(const Slot *buf, unsigned stamp, int w) {
    unsigned callers = 0;
    int first = -1;
    for (int l = 0; l < 32; l++) {
        if (buf[l].stamp != stamp) continue;
        callers |= 1u << l;
        if (first < 0) {
            first = l;
            continue;
        }
        if (buf[l].mask != buf[first].mask)
            emu_fail("warp %d: lanes %d and %d pass different shuffle masks (0x%08x at %s:%d, 0x%08x at %s:%d)", w,
                     first, l, buf[first].mask, buf[first].file, buf[first].line, buf[l].mask, buf[l].file,
                     buf[l].line);
        if (!same_site(buf[l].file, buf[l].line, buf[first].file, buf[first].line))
            emu_fail("warp %d: divergent shuffles: lane %d at %s:%d, lane %d at %s:%d", w, first, buf[first].file,
                     buf[first].line, l, buf[l].file, buf[l].line);
    }
    unsigned mask = buf[first].mask;
    if (callers & ~mask)
        emu_fail("warp %d: shuffle at %s:%d with mask 0x%08x called by lanes 0x%08x outside it", w, buf[first].file,
                 buf[first].line, mask, callers & ~mask);
    unsigned missing = mask & live_lanes(w) & ~callers;
    if (missing)
        emu_fail("warp %d: shuffle at %s:%d with mask 0x%08x: running lanes 0x%08x do not call it", w,
                 buf[first].file, buf[first].line, mask, missing);
}

// Resumes fiber i if it can run (its barrier has opened) until its next barrier or its end;
// false when it could not run.
bool resume(int i, int *done) {
    Fiber &f = g_fibers[i];
    if (f.state == WAIT_WARP && g_warp_bar[i / 32].gen != f.wait_gen) f.state = RUNNABLE;
    if (f.state == WAIT_BLOCK && g_block_bar.gen != f.wait_gen) f.state = RUNNABLE;
    if (f.state != RUNNABLE) return false;
    g_cur = &f;
    ctx_switch(&g_sched, &f.ctx);
    if (f.state == DONE && !f.counted) {
        f.counted = true;
        (*done)++;
        Barrier &wb = g_warp_bar[i / 32];
        wb.live--;
        g_block_bar.live--;
        // The exit may complete an exchange that the rest of the warp waits in.
        if (wb.arrived > 0 && wb.arrived == wb.live)
            check_exchange(&g_slots[((size_t)(i / 32) * 2 + (wb.gen & 1)) * 32], wb.gen + 1, i / 32);
        release_if_complete(wb);
        release_if_complete(g_block_bar);
    }
    return true;
}

void run_block(int nthreads) {
    int nwarps = (nthreads + 31) / 32;
    while ((int)g_stacks.size() < nthreads) g_stacks.push_back((char *)malloc(kStack));
    g_fibers.assign(nthreads, Fiber());
    g_warp_bar.assign(nwarps, Barrier{0, 0, 0, NULL, 0});
    g_slots.assign((size_t)nwarps * 64, Slot{0, 0, 0, NULL, 0});
    g_block_bar = Barrier{0, nthreads, 0, NULL, 0};
    poison_shared();
    for (int i = 0; i < nthreads; i++) {
        Fiber &f = g_fibers[i];
        f.linear = i;
        f.tid.x = i % emu_block_dim.x;
        f.tid.y = (i / emu_block_dim.x) % emu_block_dim.y;
        f.tid.z = i / (emu_block_dim.x * emu_block_dim.y);
        f.state = RUNNABLE;
        f.counted = false;
        g_warp_bar[i / 32].live++;
        ctx_make(&f.ctx, g_stacks[i], kStack);
    }
    // Round-robin (forward): every round resumes each runnable fiber once, so all threads
    // advance one barrier phase together. Warp-greedy (reverse; shuffle picks per block): a warp
    // runs, through its shuffles, until it waits at __syncthreads or ends before the next warp
    // starts, as when a GPU lets one warp run ahead: a shared buffer reused after a few shuffles
    // without a barrier is then overwritten before slower warps read it.
    bool greedy = g_order == ORDER_REVERSE || (g_order == ORDER_SHUFFLE && (next_random() & 1));
    static std::vector<uint32_t> warps, lanes;
    int done = 0;
    while (done < nthreads) {
        bool ran = false;
        if (!greedy) {
            // A shuffled order is drawn afresh every round: each barrier phase runs in a new order.
            make_order(lanes, (size_t)nthreads);
            for (int r = 0; r < nthreads; r++) ran |= resume((int)lanes[r], &done);
        } else {
            make_order(warps, (size_t)nwarps);
            for (int r = 0; r < nwarps; r++) {
                int w = (int)warps[r], n = nthreads - w * 32 < 32 ? nthreads - w * 32 : 32;
                for (bool again = true; again;) {
                    again = false;
                    make_order(lanes, (size_t)n);
                    for (int q = 0; q < n; q++) again |= resume(w * 32 + (int)lanes[q], &done);
                    ran |= again;
                }
            }
        }
        if (!ran && done < nthreads) report_deadlock(nthreads);
    }
    g_cur = NULL;
}

}  // namespace

const uint3 &emu_thread_idx(void) { return g_cur->tid; }
void emu_set_thread_order(const char *spec) { parse_order(spec, "emu_set_thread_order"); }
int emu_lane(void) { return g_cur->linear % 32; }
void *emu_dyn_smem(void) { return g_smem.data(); }

void emu_syncthreads(const char *file, int line) {
    Barrier &b = g_block_bar;
    // CUDA: a __syncthreads in conditional code is allowed only where the condition is the same
    // for the whole block; threads of one barrier phase at different lines are divergent.
    if (b.arrived > 0 && !same_site(b.file, b.line, file, line))
        emu_fail("divergent __syncthreads: thread %d at %s:%d while others wait at %s:%d", g_cur->linear, file,
                 line, b.file, b.line);
    arrive(b, WAIT_BLOCK, file, line);
}

int emu_shfl_width_check(int width) {
    if (width < 1 || width > 32 || (width & (width - 1)))
        emu_fail("shuffle width %d: must be a power of two up to 32", width);
    return width;
}

uint64_t emu_warp_exchange(uint64_t bits, int src, unsigned mask, const char *file, int line) {
    Fiber *me = g_cur;
    int w = me->linear / 32, lane = me->linear % 32;
    Barrier &b = g_warp_bar[w];
    unsigned stamp = b.gen + 1;
    Slot *buf = &g_slots[((size_t)w * 2 + (b.gen & 1)) * 32];
    buf[lane] = Slot{bits, stamp, mask, file, line};
    if (b.arrived + 1 == b.live) check_exchange(buf, stamp, w);   // the last caller: all slots written
    arrive(b, WAIT_WARP, file, line);
    // The two buffers alternate: a lane cannot start the exchange after next (which reuses this
    // buffer) before every lane has read this one.
    if (src < 0 || src > 31 || buf[src].stamp != stamp)
        emu_fail("shuffle at %s:%d: lane %d reads lane %d, which did not take part (exited, or beyond the "
                 "block's last thread): undefined on the GPU", file, line, lane, src);
    return buf[src].bits;
}

// Per-block limits of the GPU (sm_80/sm_90): dynamic shared memory above 48 KiB needs
// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) first (emu_runtime.cpp
// records the largest value set).
size_t emu_smem_optin = 0;

namespace {

void run_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    EmuDeviceWork work;   // the kernel's device memory is accessible until the launch returns
    g_smem.assign(smem + 16, 0);
    g_smem_bytes = smem + 16;
    g_body = &body;
    emu_grid_dim = grid;
    emu_block_dim = block;
    size_t nblocks = (size_t)grid.x * grid.y * grid.z, nthreads = (size_t)block.x * block.y * block.z;
    static std::vector<uint32_t> border;
    if (g_order != ORDER_FORWARD) make_order(border, nblocks);
    for (size_t r = 0; r < nblocks; r++) {
        size_t id = g_order == ORDER_FORWARD ? r : border[r];
        emu_block_idx.x = (unsigned)(id % grid.x);
        emu_block_idx.y = (unsigned)((id / grid.x) % grid.y);
        emu_block_idx.z = (unsigned)(id / ((size_t)grid.x * grid.y));
        run_block((int)nthreads);
    }
}

}  // namespace

void emu_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    emu_launch(grid, block, smem, 0, body);
}

// The limits are checked at the call, as a GPU's launch fails at once; the blocks run now or,
// under MV_EMU_STREAMS, when the stream's queue reaches them.
void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const std::function<void()> &body) {
    read_order();
    size_t nthreads = (size_t)block.x * block.y * block.z;
    bool bad = nthreads == 0 || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
               grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535;
    if (bad) {
        fprintf(stderr, "emu: invalid launch (%u,%u,%u) x (%u,%u,%u): beyond the GPU's grid or block limits\n",
                grid.x, grid.y, grid.z, block.x, block.y, block.z);
        abort();
    }
    if (smem > 48 * 1024 && smem > emu_smem_optin) {
        fprintf(stderr, "emu: launch (%u,%u,%u) x (%u,%u,%u) asks for %zu bytes of dynamic shared memory: above "
                "48 KiB without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)\n", grid.x, grid.y, grid.z,
                block.x, block.y, block.z, smem);
        abort();
    }
    if (!emu_streams_deferred()) {
        run_launch(grid, block, smem, body);
        return;
    }
    if (!emu_stream_submit(stream, [=]() { run_launch(grid, block, smem, body); }, NULL)) {
        fprintf(stderr, "emu: launch (%u,%u,%u) x (%u,%u,%u) on stream %p, which is not live\n", grid.x, grid.y,
                grid.z, block.x, block.y, block.z, (void *)stream);
        abort();
    }
}
