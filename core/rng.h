// Counter-based random numbers (Philox-4x32-10): every draw is a pure function of a 64-bit
// seed and a 128-bit counter, so results never depend on device, rank count or thread order.
// Counters are built from what a draw is for: (step, global sample index, purpose|block, index).
#pragma once
#include <stdint.h>

typedef struct { uint32_t v[4]; } mv_rng4;

mv_rng4 philox4x32(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3);

// Uniform in the open interval (0, 1) from the top 23 random bits: (k + 0.5) / 2^23 is exact in
// float, so the result is never 0 or 1 (safe for log).
static inline float rng_u01(uint32_t bits) { return ((float)(bits >> 9) + 0.5f) * (1.0f / 8388608.0f); }

// What a draw is for: the top bits of counter word c2 (the block id takes the low 24 bits).
enum {
    MV_RNG_INIT = 1u << 24,      // parameter initialisation (c0 = parameter index)
    MV_RNG_GUMBEL = 2u << 24,    // token-mask Gumbel noise
    MV_RNG_DROPPATH = 3u << 24,  // stochastic depth
    MV_RNG_DROPOUT = 4u << 24,   // Dropout2d
    // 0x41 << 24: data augmentation, 0x42 << 24: epoch shuffle (data/augment.h, data/loader.c)
};
