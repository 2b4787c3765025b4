// Floating-point environment of the compute threads: denormal numbers flushed to zero.
//
// Gradients deep in backward reach 1e-38 and below; on x86 every arithmetic operation on a
// denormal takes a microcode assist (about 100x slower), which made the backward pass several
// times slower than the forward pass. MXCSR is per thread, so it is set on every thread of the
// OpenMP pool (OpenBLAS's OpenMP build computes on the same threads). The AdamW update
// (core/adamw.c) turns the flush off while it runs: with a tiny eps its result depends on
// denormal second moments, which PyTorch keeps.
#include "kernels/cpu/ops.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

void cpu_flush_denormals(void) {
#if defined(__x86_64__) || defined(__i386__)
    #pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040);   // FTZ (bit 15) and DAZ (bit 6)
#endif
}
