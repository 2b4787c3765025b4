// The fiber scheduler behind tests/cuda/emu/emu.h: runs each block of a launch as cooperative
// fibers, one per CUDA thread. A fiber runs until it reaches a barrier (__syncthreads, or the
// per-warp barrier inside a shuffle) and yields; a barrier opens when every live thread of its
// block (or warp) has arrived. Threads that return early stop counting, as on the GPU.
// Switching is a six-register stack switch on x86-64 (glibc's swapcontext makes a system call
// per switch, which made the emulated tests twenty times slower); ucontext elsewhere.
#include "tests/cuda/emu/emu.h"
#include <stdio.h>
#include <stdlib.h>
#include <vector>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

uint3 emu_block_idx;
dim3 emu_block_dim, emu_grid_dim;

namespace {

enum State { RUNNABLE, WAIT_WARP, WAIT_BLOCK, DONE };

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
    unsigned shuffles;     // shuffles done: picks the slot buffer (double buffering)
};

struct Barrier {
    int arrived, live;
    unsigned gen;
};

const size_t kStack = 256 * 1024;
std::vector<Fiber> g_fibers;
std::vector<char *> g_stacks;
std::vector<Barrier> g_warp_bar;
Barrier g_block_bar;
std::vector<uint64_t> g_slots;   // [warp][2][32]
std::vector<unsigned char> g_smem;
Context g_sched;
Fiber *g_cur;
const std::function<void()> *g_body;

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
void arrive(Barrier &b, State wait_state) {
    Fiber *me = g_cur;
    if (++b.arrived == b.live) {
        b.arrived = 0;
        b.gen++;
        return;
    }
    me->state = wait_state;
    me->wait_gen = b.gen;
    ctx_switch(&me->ctx, &g_sched);
}

void release_if_complete(Barrier &b) {
    if (b.arrived > 0 && b.arrived == b.live) {
        b.arrived = 0;
        b.gen++;
    }
}

void run_block(int nthreads) {
    int nwarps = (nthreads + 31) / 32;
    while ((int)g_stacks.size() < nthreads) g_stacks.push_back((char *)malloc(kStack));
    g_fibers.assign(nthreads, Fiber());
    g_warp_bar.assign(nwarps, Barrier{0, 0, 0});
    g_slots.assign((size_t)nwarps * 64, 0);
    g_block_bar = Barrier{0, nthreads, 0};
    for (int i = 0; i < nthreads; i++) {
        Fiber &f = g_fibers[i];
        f.linear = i;
        f.tid.x = i % emu_block_dim.x;
        f.tid.y = (i / emu_block_dim.x) % emu_block_dim.y;
        f.tid.z = i / (emu_block_dim.x * emu_block_dim.y);
        f.state = RUNNABLE;
        f.counted = false;
        f.shuffles = 0;
        g_warp_bar[i / 32].live++;
        ctx_make(&f.ctx, g_stacks[i], kStack);
    }
    int done = 0;
    while (done < nthreads) {
        bool ran = false;
        for (int i = 0; i < nthreads; i++) {
            Fiber &f = g_fibers[i];
            if (f.state == WAIT_WARP && g_warp_bar[i / 32].gen != f.wait_gen) f.state = RUNNABLE;
            if (f.state == WAIT_BLOCK && g_block_bar.gen != f.wait_gen) f.state = RUNNABLE;
            if (f.state != RUNNABLE) continue;
            g_cur = &f;
            ctx_switch(&g_sched, &f.ctx);
            ran = true;
            if (f.state == DONE && !f.counted) {
                f.counted = true;
                done++;
                g_warp_bar[i / 32].live--;
                g_block_bar.live--;
                release_if_complete(g_warp_bar[i / 32]);
                release_if_complete(g_block_bar);
            }
        }
        if (!ran && done < nthreads) {
            fprintf(stderr, "emu: deadlock in block (%u,%u,%u): threads wait at different barriers\n",
                    emu_block_idx.x, emu_block_idx.y, emu_block_idx.z);
            abort();
        }
    }
    g_cur = NULL;
}

}  // namespace

const uint3 &emu_thread_idx(void) { return g_cur->tid; }
int emu_lane(void) { return g_cur->linear % 32; }
void *emu_dyn_smem(void) { return g_smem.data(); }

void emu_syncthreads(void) { arrive(g_block_bar, WAIT_BLOCK); }

uint64_t emu_warp_exchange(uint64_t bits, int src) {
    Fiber *me = g_cur;
    int w = me->linear / 32;
    uint64_t *buf = &g_slots[((size_t)w * 2 + (me->shuffles & 1)) * 32];
    buf[me->linear % 32] = bits;
    arrive(g_warp_bar[w], WAIT_WARP);
    me->shuffles++;
    return buf[src];
}

void emu_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    int nthreads = (int)(block.x * block.y * block.z);
    if (nthreads <= 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
        fprintf(stderr, "emu: invalid launch (%u,%u,%u) x (%u,%u,%u)\n", grid.x, grid.y, grid.z, block.x,
                block.y, block.z);
        abort();
    }
    g_smem.assign(smem + 16, 0);
    g_body = &body;
    emu_grid_dim = grid;
    emu_block_dim = block;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                emu_block_idx.x = x;
                emu_block_idx.y = y;
                emu_block_idx.z = z;
                run_block(nthreads);
            }
}
