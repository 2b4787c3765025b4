// A sequential stream of random numbers over core/rng.h's counter-based Philox: draw n of a
// stream keyed (seed, c0, c1, purpose) is Philox(seed; c0, c1, purpose, n / 4) word n % 4, a
// pure function of the key and n. Used by the synthetic domains and the corruptions, where
// each image draws its own stream keyed by what it is (sample index, domain, corruption).
#pragma once
#include <stdint.h>
#include <math.h>
#include "core/rng.h"

// Purposes of data-side draws (top byte of counter word c2; core/rng.h uses 1..4).
enum {
    MV_RNG_SYNTH = 16u << 24,     // synthetic scenes (low bits: domain, sub-stream)
    MV_RNG_CORRUPT = 17u << 24,   // corruptions (low bits: corruption, sub-stream)
};

typedef struct {
    uint64_t seed;
    uint32_t c0, c1, c2, block;  // key and the index of the next Philox block
    uint32_t buf[4];
    int left;                    // unused words left in buf
} rng_stream;

static inline rng_stream rng_stream_make(uint64_t seed, uint64_t index, uint32_t purpose) {
    rng_stream r = {seed, (uint32_t)index, (uint32_t)(index >> 32), purpose, 0, {0, 0, 0, 0}, 0};
    return r;
}

static inline uint32_t rng_next_u32(rng_stream *r) {
    if (r->left == 0) {
        mv_rng4 b = philox4x32(r->seed, r->c0, r->c1, r->c2, r->block++);
        for (int i = 0; i < 4; i++) r->buf[i] = b.v[i];
        r->left = 4;
    }
    return r->buf[4 - r->left--];
}

// Uniform in [a, b).
static inline float rng_uniform(rng_stream *r, float a, float b) {
    return a + (b - a) * (float)(rng_next_u32(r) >> 8) * (1.0f / 16777216.0f);
}

// Uniform integer in 0..n-1 (n >= 1).
static inline int rng_below(rng_stream *r, int n) {
    return (int)(((uint64_t)rng_next_u32(r) * (uint64_t)n) >> 32);
}

// 1 with probability p.
static inline int rng_chance(rng_stream *r, float p) { return rng_uniform(r, 0.0f, 1.0f) < p; }

