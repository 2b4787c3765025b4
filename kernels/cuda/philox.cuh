// Philox-4x32-10 on the device: the algorithm and key layout of core/rng.c, so that a draw keyed
// by (seed, step, sample, purpose|block, index) gives the same bits on the GPU as on the CPU.
#pragma once
#include "kernels/cuda/common.cuh"
#include "core/rng.h"   // the purpose tags (MV_RNG_GUMBEL, ...)

__device__ __forceinline__ void philox4x32_dev(uint32_t out[4], uint64_t seed, uint32_t c0, uint32_t c1,
                                               uint32_t c2, uint32_t c3) {
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = c3;
    #pragma unroll
    for (int r = 0; r < 10; r++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, x0), lo0 = 0xD2511F53u * x0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, x2), lo1 = 0xCD9E8D57u * x2;
        uint32_t y0 = hi1 ^ x1 ^ k0, y2 = hi0 ^ x3 ^ k1;
        x0 = y0;
        x1 = lo1;
        x2 = y2;
        x3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = x0;
    out[1] = x1;
    out[2] = x2;
    out[3] = x3;
}

// rng_u01 of core/rng.h: (top 23 bits + 0.5) / 2^23, exact in float, never 0 or 1.
__device__ __forceinline__ float rng_u01_dev(uint32_t bits) {
    return ((float)(bits >> 9) + 0.5f) * (1.0f / 8388608.0f);
}
