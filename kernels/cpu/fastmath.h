// Math for the inner loops, in plain C that GCC vectorises (libm's expf blocks vectorisation):
// exp (Cody-Waite range reduction and a degree-6 polynomial: relative error about 2e-7 over the
// range used by the scan and the activations), and the sigmoid, log and softplus built on it;
// the 16-lane vector type with its reductions, and the FMA and rounding helpers.
#pragma once
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) && (defined(__AVX512F__) || defined(__FMA__))
#include <immintrin.h>
#endif

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
    // The shift is done unsigned: a NaN x passes the clamp and converts to INT_MIN here (p is
    // NaN, so the result is NaN whatever the scale); a signed shift of that would be undefined.
    int32_t bits = (int32_t)((uint32_t)((int32_t)fn + 127) << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// sigmoid(x); 0 below x = -88, where exp(-x) overflows (mv_expf's clamp at 88 made it 6e-39, a
// denormal that survives where denormals are not flushed: silu(-1e38) was -0.6, not torch's -0).
static inline float mv_sigmoidf(float x) { return x < -88.0f ? 0.0f : 1.0f / (1.0f + mv_expf(-x)); }

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
typedef uint32_t v16u __attribute__((vector_size(64)));
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

// Two lane-wise exponentials, of the same accuracy (mv_expf's polynomial) but not the same bits:
//  - v16_exp_fast: the exponential of the scan (its recurrence, v16_softplus, and
//    v16_one_minus_exp_neg). Use it where no scalar code must give the same bits: it rounds t to
//    nearest with two adds, so for some inputs its low bits differ from mv_expf's.
//  - v16_expf_twin (below): mv_expf bit for bit, for vector code whose result must be the same
//    bits as scalar code on mv_expf (the loss's rows, v16_sigmoidf and so SiLU), at a few more
//    instructions. Changing which one a caller uses changes its bits.
// v16_exp_fast: mv_expf's steps, with t = x log2(e) rounded to nearest instead of floor(t + 0.5).
static inline v16f v16_exp_fast(v16f x) {
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

// A value the compiler must round as it stands: an empty asm on it keeps GCC from fusing the
// product it holds into a following add (-ffp-contract=fast fuses by its own heuristics, which
// differ between scalar and vector code: a vector twin of scalar code that GCC left unfused says
// so with these).
static inline float mv_rounded(float x) {
#if defined(__x86_64__) && defined(__SSE__)
    __asm__("" : "+x"(x));
#else
    __asm__("" : "+m"(x));
#endif
    return x;
}

static inline v16f v16_rounded(v16f x) {
#if defined(__x86_64__) && defined(__AVX512F__)
    __asm__("" : "+v"(x));
#else
    __asm__("" : "+m"(x));
#endif
    return x;
}

// v16_expf_twin: lane-wise mv_expf, bit for bit (see v16_exp_fast above for which to use). The
// same operations in the same order, written in the same shapes, so that the compiler contracts
// the same multiply-adds (t + 0.5, r, the polynomial) in both. floor as truncation minus one where that rounded up: exact for
// |t| < 2^31 (t is clamped to about +-127 here; a NaN t gives INT_MIN's bits as the scalar
// conversion does, and a NaN result either way). The final p * scale is exact (a normal result
// times a power of two), so it is the same whether or not a caller's add absorbs it.
static inline v16f v16_expf_twin(v16f x) {
    v16f lo = v16_splat(-87.0f), hi = v16_splat(88.0f);
    x = v16_select(x < lo, lo, v16_select(x > hi, hi, x));
    v16f t = x * 1.44269504088896341f + 0.5f;
    v16f ft = __builtin_convertvector(__builtin_convertvector(t, v16i), v16f);
    v16f fn = v16_select(ft > t, ft - 1.0f, ft);
    v16f r = x - fn * 0.693145751953125f;
    r = r - fn * 1.42860682030941723212e-6f;
    v16f p = v16_splat(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v16u bits = ((v16u)__builtin_convertvector(fn, v16i) + 127u) << 23;   // unsigned, as mv_expf
    return p * (v16f)bits;
}

// Lane-wise mv_sigmoidf, bit for bit (0 below x = -88).
static inline v16f v16_sigmoidf(v16f x) {
    return v16_select(x < -88.0f, v16_splat(0.0f), 1.0f / (1.0f + v16_expf_twin(-x)));
}

// Lane-wise mv_logf (positive normal x).
static inline v16f v16_log(v16f x) {
    v16i bits = (v16i)x;
    v16i e = ((bits >> 23) & 0xff) - 127;
    v16f m = (v16f)((bits & 0x007fffff) | 0x3f800000);
    v16i big = m > 1.41421356f;   // -1 where true
    m = v16_select(big, 0.5f * m, m);
    e -= big;
    v16f s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    v16f p = v16_splat(1.0f / 9.0f);
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p + __builtin_convertvector(e, v16f) * 0.693147180559945f;
}

// Lane-wise mv_softplusf. GCC leaves the scalar one unvectorised (its branches and bit casts),
// which made the softplus of the scan's delta half of the SS2D forward. It takes v16_exp_fast,
// so it is not mv_softplusf bit for bit everywhere: of the 2.2e9 floats in [-100, 25], 73 come
// out up to 4 ulp apart (checked exhaustively on 2026-12-02); the rest are the same bits.
static inline v16f v16_softplus(v16f z) {
    v16f u = v16_exp_fast(z), w = 1.0f + u;
    v16f l1p = v16_select(w == 1.0f, u, v16_log(w) * u / (w - 1.0f));
    return v16_select(z > 20.0f, z, l1p);
}

// Lane-wise 1 - exp(-s) for s >= 0, the derivative of softplus recovered from its output
// (sigmoid(z) = 1 - exp(-softplus(z))). Below s = 0.5 it is the series s (1 - s/2 (1 - s/3 (...)))
// to s^8 (truncation under 2e-8 relative): 1 - exp(-s) itself cancels there, and kept only the
// float spacing of 1 (6e-8) of a small s, so softplus'(z) was 1.5e-5 off at z = -8, 1e-3 at
// z = -12 and 0 below z = -17. Above 0.5 the subtraction loses under two bits.
static inline v16f v16_one_minus_exp_neg(v16f s) {
    v16f p = 1.0f - s * (1.0f / 8.0f);
    p = 1.0f - s * (1.0f / 7.0f) * p;
    p = 1.0f - s * (1.0f / 6.0f) * p;
    p = 1.0f - s * (1.0f / 5.0f) * p;
    p = 1.0f - s * (1.0f / 4.0f) * p;
    p = 1.0f - s * (1.0f / 3.0f) * p;
    p = 1.0f - s * 0.5f * p;
    return v16_select(s < 0.5f, s * p, 1.0f - v16_exp_fast(-s));
}

// Sum of the 16 lanes in a fixed order (pairwise halving).
static inline float v16_sum(v16f v) {
    float s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = v[i] + v[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

// The lane sums of 16 vectors at once: lane j of the result is v16_sum(v[j]), bit for bit (the
// same halving order), for about a third of the instructions of 16 separate sums. Each level
// adds the low and high halves of every lane group of two vectors, packing both into one.
static inline v16f v16_sum16(const v16f v[16]) {
    static const v16i lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const v16i lo4 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
    static const v16i lo2 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29};
    static const v16i lo1 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    v16f s8[8], s4[4], s2[2];
    for (int i = 0; i < 8; i++)
        s8[i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], lo8) + __builtin_shuffle(v[2 * i], v[2 * i + 1], lo8 + 8);
    for (int i = 0; i < 4; i++)
        s4[i] = __builtin_shuffle(s8[2 * i], s8[2 * i + 1], lo4) + __builtin_shuffle(s8[2 * i], s8[2 * i + 1], lo4 + 4);
    for (int i = 0; i < 2; i++)
        s2[i] = __builtin_shuffle(s4[2 * i], s4[2 * i + 1], lo2) + __builtin_shuffle(s4[2 * i], s4[2 * i + 1], lo2 + 2);
    return __builtin_shuffle(s2[0], s2[1], lo1) + __builtin_shuffle(s2[0], s2[1], lo1 + 1);
}

// out[j] = v16_sum(v[j]) for j < n, sixteen at a time where it can.
static inline void v16_sums(float *out, const v16f *v, int n) {
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        v16f s = v16_sum16(v + j);
        memcpy(out + j, &s, sizeof s);
    }
    for (; j < n; j++) out[j] = v16_sum(v[j]);
}

// Lane-wise a * b + c (v16_fma), a * b - c (v16_fms) and c - a * b (v16_fnma), rounded once
// where the CPU has a fused multiply-add. GCC contracts such scalar expressions to one, under its
// default -ffp-contract=fast, where its heuristics judge it worth it; code that must give the
// same bits as such scalar code says which with these and v16_rounded. Without FMA, the
// expression rounded twice, as GCC compiles it on such a CPU (written in the same form, so that
// even a NaN keeps its sign: -c + a * b is not a * b - c there).
#if defined(__x86_64__) && defined(__AVX512F__)
#define MV_V16_FMA_OP(name, intrin)                                                            \
    static inline v16f name(v16f a, v16f b, v16f c) {                                          \
        return (v16f)intrin((__m512)a, (__m512)b, (__m512)c);                                  \
    }
MV_V16_FMA_OP(v16_fma, _mm512_fmadd_ps)
MV_V16_FMA_OP(v16_fms, _mm512_fmsub_ps)
MV_V16_FMA_OP(v16_fnma, _mm512_fnmadd_ps)
#elif defined(__x86_64__) && defined(__FMA__)
#define MV_V16_FMA_OP(name, intrin)                                                            \
    static inline v16f name(v16f a, v16f b, v16f c) {                                          \
        __m256 a2[2], b2[2], c2[2];                                                            \
        memcpy(a2, &a, sizeof a); memcpy(b2, &b, sizeof b); memcpy(c2, &c, sizeof c);          \
        for (int i = 0; i < 2; i++) a2[i] = intrin(a2[i], b2[i], c2[i]);                       \
        memcpy(&a, a2, sizeof a);                                                              \
        return a;                                                                              \
    }
MV_V16_FMA_OP(v16_fma, _mm256_fmadd_ps)
MV_V16_FMA_OP(v16_fms, _mm256_fmsub_ps)
MV_V16_FMA_OP(v16_fnma, _mm256_fnmadd_ps)
#elif defined(__FP_FAST_FMAF)   // other CPUs with a fused multiply-add
static inline v16f v16_fma(v16f a, v16f b, v16f c) {
    for (int i = 0; i < 16; i++) a[i] = __builtin_fmaf(a[i], b[i], c[i]);
    return a;
}
static inline v16f v16_fms(v16f a, v16f b, v16f c) { return v16_fma(a, b, -c); }
static inline v16f v16_fnma(v16f a, v16f b, v16f c) { return v16_fma(-a, b, c); }
#else
static inline v16f v16_fma(v16f a, v16f b, v16f c) { return v16_rounded(a * b) + c; }
static inline v16f v16_fms(v16f a, v16f b, v16f c) { return v16_rounded(a * b) - c; }
static inline v16f v16_fnma(v16f a, v16f b, v16f c) { return c - v16_rounded(a * b); }
#endif
#undef MV_V16_FMA_OP

// Scalar twins: one rounding where the CPU has FMA, two where it has not (fmaf would be a slow
// exact library call there, and not what GCC compiles a * b + c to).
#if defined(__FMA__) || defined(__FP_FAST_FMAF)
static inline float mv_fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
static inline float mv_fms(float a, float b, float c) { return __builtin_fmaf(a, b, -c); }
static inline float mv_fnma(float a, float b, float c) { return __builtin_fmaf(-a, b, c); }
#else
static inline float mv_fma(float a, float b, float c) { return mv_rounded(a * b) + c; }
static inline float mv_fms(float a, float b, float c) { return mv_rounded(a * b) - c; }
static inline float mv_fnma(float a, float b, float c) { return c - mv_rounded(a * b); }
#endif

// Transposes a 16x16 block in registers: afterwards lane j of v[i] is what lane i of v[j] was.
// Four rounds; round s swaps the off-diagonal s x s sub-blocks of every 2s x 2s block (with
// AVX-512 each round is 16 two-source shuffles).
static inline void v16_transpose16(v16f v[16]) {
    static const v16i lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    static const v16i hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
    static const v16i lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    static const v16i hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    static const v16i lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    static const v16i hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    static const v16i lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const v16i hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
#define MV_T16_ROUND(s, lo, hi)                                                              \
    for (int i = 0; i < 16; i++) {                                                          \
        if (i & (s)) continue;                                                              \
        v16f a = v[i], b = v[i + (s)];                                                      \
        v[i] = __builtin_shuffle(a, b, lo);                                                 \
        v[i + (s)] = __builtin_shuffle(a, b, hi);                                           \
    }
    MV_T16_ROUND(1, lo1, hi1)
    MV_T16_ROUND(2, lo2, hi2)
    MV_T16_ROUND(4, lo4, hi4)
    MV_T16_ROUND(8, lo8, hi8)
#undef MV_T16_ROUND
}
