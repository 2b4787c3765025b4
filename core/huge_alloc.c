// Large buffers on transparent huge pages. The scan walks an image column by column, one
// position (a whole 4 KiB row of channels, or more) per step, and the decoder's convolutions
// shift whole maps: with 4 KiB pages nearly every step missed the TLB. Most kernels (Debian's
// included) hand out huge pages only to regions that ask with madvise, so big buffers ask.
// Measured on the 2-core development machine: the SS2D core at 64x128, E=1024 went from
// 285/505 ms (forward/backward) to 255/405 ms.
#include "core/huge_alloc.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *mv_huge_alloc(size_t bytes) {
    if (bytes < 2 * HUGE_PAGE) return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    size_t rounded = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = aligned_alloc(HUGE_PAGE, rounded);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, rounded, MADV_HUGEPAGE);   // only advice: 4 KiB pages still work
#endif
    return p;
}

void *mv_huge_zalloc(size_t bytes) {
    void *p = mv_huge_alloc(bytes ? bytes : 1);
    MV_CHECK(p, "out of memory allocating %zu bytes", bytes);
    memset(p, 0, bytes);
    return p;
}
