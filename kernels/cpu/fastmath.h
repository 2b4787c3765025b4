// exp for the inner loops: plain C that GCC vectorises (libm's expf blocks vectorisation).
// Cody-Waite range reduction and a degree-6 polynomial: relative error about 2e-7 over the
// range used by the scan and the activations.
#pragma once
#include <stdint.h>
#include <string.h>

static inline float mv_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float t = x * 1.44269504088896341f;
    float fn = __builtin_floorf(t + 0.5f);
    float r = x - fn * 0.693145751953125f;           // ln2 split in two for exactness
    r = r - fn * 1.42860682030941723212e-6f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)fn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float mv_sigmoidf(float x) { return 1.0f / (1.0f + mv_expf(-x)); }
