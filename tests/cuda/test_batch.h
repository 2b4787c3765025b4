// A deterministic batch for the GPU-vs-CPU model tests: images with a per-image brightness and
// contrast (distinct batch statistics for the 1x1 pyramid-pooling BatchNorm), labels constant on
// 8x8 blocks with about 8% ignored pixels.
#pragma once
#include <stddef.h>
#include <stdint.h>

static inline void make_test_batch(float *img, uint8_t *lab, int B, int H, int W, int K, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < 3 * H * W; i++) {
            s = s * 1664525u + 1013904223u;
            img[(size_t)b * 3 * H * W + i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * (1.0f + b) + 0.3f * b;
        }
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                s = s * 1664525u + 1013904223u;
                lab[((size_t)b * H + y) * W + x] = (s >> 24) < 20 ? 255 : (uint8_t)(((y / 8) * 7 + (x / 8) * 3 + b + seed) % K);
            }
}
