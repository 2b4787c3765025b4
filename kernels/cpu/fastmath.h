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

// log for positive normal x: exponent split off, mantissa in [sqrt(1/2), sqrt(2)), then
// log(m) = 2 atanh((m-1)/(m+1)) by its odd series (relative error about 1e-7).
static inline float mv_logf(float x) {
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = ((bits >> 23) & 0xff) - 127;
    bits = (bits & 0x007fffff) | 0x3f800000;
    float m;
    memcpy(&m, &bits, sizeof m);
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e += big;
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p + (float)e * 0.693147180559945f;
}

// softplus(z) = log(1 + e^z), PyTorch's threshold 20 above which it is z. log1p's accuracy for
// small e^z comes from the classic correction log(w) * u / (w - 1) with w = 1 + u.
static inline float mv_softplusf(float z) {
    float u = mv_expf(z), w = 1.0f + u;
    float l1p = w == 1.0f ? u : mv_logf(w) * u / (w - 1.0f);
    return z > 20.0f ? z : l1p;
}

// 16-lane float vectors (GCC/Clang vector extensions): one AVX-512 register, or two/four
// narrower ones on other CPUs. The scan's inner loops are written with them because the
// auto-vectoriser gives up on the recurrence.
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v16f_unaligned __attribute__((vector_size(64), aligned(4)));   // for buffers

static inline v16f v16_splat(float x) { return (v16f){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

// Loads n <= 16 floats (the rest zero).
static inline v16f v16_load(const float *p, int n) {
    v16f v = v16_splat(0.0f);
    if (n == 16) memcpy(&v, p, sizeof v);
    else for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
}

static inline void v16_store(float *p, v16f v, int n) {
    if (n == 16) memcpy(p, &v, sizeof v);
    else for (int i = 0; i < n; i++) p[i] = v[i];
}

static inline v16f v16_select(v16i mask, v16f a, v16f b) {   // mask ? a : b, lane-wise
    return (v16f)(((v16i)a & mask) | ((v16i)b & ~mask));
}

// Lane-wise mv_expf.
static inline v16f v16_exp(v16f x) {
    v16f lo = v16_splat(-87.0f), hi = v16_splat(88.0f);
    x = v16_select(x < lo, lo, x);
    x = v16_select(x > hi, hi, x);
    v16f t = x * 1.44269504088896341f;
    // Round to nearest with the 1.5*2^23 trick (|t| < 2^22 here).
    v16f fn = (t + 12582912.0f) - 12582912.0f;
    v16f r = x - fn * 0.693145751953125f;
    r = r - fn * 1.42860682030941723212e-6f;
    v16f p = v16_splat(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v16i bits = (__builtin_convertvector(fn, v16i) + 127) << 23;
    return p * (v16f)bits;
}

// Sum of the 16 lanes in a fixed order (pairwise halving).
static inline float v16_sum(v16f v) {
    float s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = v[i] + v[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}
