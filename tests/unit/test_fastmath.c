// The vector helpers of kernels/cpu/fastmath.h that the scan relies on being exact twins of the
// scalar ones (v16_sum16 / v16_sums against v16_sum and v16_log against mv_logf, bit for bit;
// v16_softplus against mv_softplusf on a grid of 200000 points, which misses the 73 floats where
// they differ by up to 4 ulp (fastmath.h); v16_expf_twin and v16_sigmoidf, which the loss and SiLU
// use, against mv_expf and mv_sigmoidf over every exponent, NaN and infinities), their accuracy
// against libm in double (v16_exp_fast's too), and mv_huge_alloc's alignment.
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/huge_alloc.h"
#include "kernels/cpu/fastmath.h"

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

// Lanes of very different magnitudes, so that another summation order gives other bits.
static v16f spread_vector(unsigned *seed) {
    v16f v;
    for (int i = 0; i < 16; i++) v[i] = frand(seed) * powf(10.0f, (float)(i % 7) - 3.0f);
    return v;
}

Test(fastmath, sum16_is_sixteen_lane_sums) {
    unsigned seed = 7;
    for (int trial = 0; trial < 200; trial++) {
        v16f v[16];
        for (int j = 0; j < 16; j++) v[j] = spread_vector(&seed);
        v16f s = v16_sum16(v);
        for (int j = 0; j < 16; j++)
            cr_assert(same_bits(s[j], v16_sum(v[j])), "trial %d lane %d: %.9g vs %.9g", trial, j, s[j], v16_sum(v[j]));
    }
}

Test(fastmath, sums_any_count) {
    unsigned seed = 11;
    v16f v[64];
    for (int j = 0; j < 64; j++) v[j] = spread_vector(&seed);
    int counts[] = {1, 3, 4, 15, 16, 17, 21, 32, 37, 64};
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        int n = counts[c];
        float out[65];
        out[n] = 12345.0f;   // past the end: must stay
        v16_sums(out, v, n);
        for (int j = 0; j < n; j++) cr_assert(same_bits(out[j], v16_sum(v[j])), "n=%d j=%d", n, j);
        cr_assert_eq(out[n], 12345.0f, "n=%d wrote past its end", n);
    }
}

Test(fastmath, softplus_matches_scalar_and_libm) {
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        float z = -100.0f + 200.0f * (float)i / 200000.0f;
        v16f v = v16_softplus(v16_splat(z));
        float s = mv_softplusf(z);
        cr_assert(same_bits(v[0], s), "softplus(%.9g): vector %.9g, scalar %.9g", z, v[0], s);
        if (z < -80.0f) continue;   // exp's input is clamped at -87: below, only tiny and positive
        double ref = z > 20.0f ? z : log1p(exp((double)z));
        double rel = fabs(v[0] - ref) / fmax(ref, 1e-37);
        if (rel > worst) worst = rel;
    }
    cr_assert_lt(worst, 1e-6, "softplus relative error %g", worst);
}

// The scan's softplus far below the range of exp (torch: 0; tiny and positive here, exp's input
// clamped at -87), and the derivative the scan recovers from it, 1 - exp(-softplus(z)), with
// denormals kept (flush-to-zero and denormals-are-zero off): the results went wrong only there.
Test(fastmath, softplus_far_negative) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() & ~0x8040u);
#endif
    const float zs[] = {-3.4e38f, -1e38f, -1e30f, -1e10f, -200.0f, -100.0f, -90.0f, -88.5f};
    for (size_t i = 0; i < sizeof zs / sizeof *zs; i++) {
        v16f s = v16_softplus(v16_splat(zs[i])), ds = v16_one_minus_exp_neg(s);
        cr_expect(s[0] >= 0.0f && s[0] < 1e-37f, "softplus(%g) = %g", zs[i], s[0]);
        cr_expect(ds[0] >= 0.0f && ds[0] < 1e-37f, "softplus'(%g) = %g", zs[i], ds[0]);
    }
}

Test(fastmath, log_matches_scalar_and_libm) {
    unsigned seed = 5;
    for (int i = 0; i < 100000; i++) {
        float x = ldexpf(1.0f + frand(&seed) + 0.5f, (int)(frand(&seed) * 200.0f));
        v16f v = v16_log(v16_splat(x));
        cr_assert(same_bits(v[0], mv_logf(x)), "log(%.9g)", x);
        cr_assert_leq(fabs(v[0] - log((double)x)), 2e-7 * fmax(1.0, fabs(log((double)x))), "log(%.9g) = %.9g", x, v[0]);
    }
}

Test(fastmath, exp_accuracy) {
    for (int i = 0; i <= 100000; i++) {
        float x = -87.0f + 175.0f * (float)i / 100000.0f;
        v16f v = v16_exp_fast(v16_splat(x));
        double ref = exp((double)x);
        cr_assert_leq(fabs(v[0] - ref) / ref, 5e-7, "exp(%.9g) = %.9g, libm %.9g", x, v[0], ref);
    }
}

// Inputs for the exact twins: a sweep of bit patterns over every exponent (denormals, huge
// magnitudes, both signs), the clamp edges of exp and sigmoid, infinities and NaNs, and a dense
// grid where exp is not clamped (where rounding t = x log2(e) + 1/2 to an integer matters).
static int twin_inputs(float *x, int cap) {
    int n = 0;
    for (uint32_t u = 0; n < cap - 4096 && u < 0xffffffffu - 65521u; u += 65521u) memcpy(&x[n++], &u, sizeof(float));
    const float edges[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, -1e-40f, 1.17549435e-38f, -87.0f, -87.00001f,
                           -86.99999f, 88.0f, 88.00001f, 87.99999f, -88.0f, -88.00001f, -87.99999f, 20.0f,
                           0.5f, -0.5f, 0.34657359f, -0.34657359f, 3e38f, -3e38f, INFINITY, -INFINITY, NAN, -NAN};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) x[n++] = edges[i];
    for (int i = 0; n < cap && i < 4000; i++) x[n++] = -100.0f + 200.0f * (float)i / 4000.0f;
    return n;
}

static bool same_or_nan(float a, float b) { return same_bits(a, b) || (isnan(a) && isnan(b)); }

// A lane-wise twin against its scalar function over twin_inputs, 16 inputs per call.
static void check_twin(const char *what, v16f (*vf)(v16f), float (*sf)(float)) {
    static float x[70000];
    int n = twin_inputs(x, 70000);
    for (int i = 0; i < n; i += 16) {
        int m = n - i < 16 ? n - i : 16;
        v16f v = vf(v16_load(x + i, m));
        for (int j = 0; j < m; j++)
            cr_assert(same_or_nan(v[j], sf(x[i + j])), "%s(%a): vector %a, scalar %a", what, x[i + j], v[j], sf(x[i + j]));
    }
}

Test(fastmath, expf_twin_matches_scalar) {
    check_twin("exp", v16_expf_twin, mv_expf);
    // Dense around the half-integers of t, where floor(t + 0.5) and round-to-nearest part.
    for (int k = -125; k <= 126; k++) {
        float c = ((float)k + 0.5f) / 1.44269504088896341f;
        for (int d = -64; d <= 64; d++) {
            float xi = nextafterf(c, d < 0 ? -INFINITY : INFINITY);
            for (int s = 1; s < (d < 0 ? -d : d); s++) xi = nextafterf(xi, d < 0 ? -INFINITY : INFINITY);
            if (d == 0) xi = c;
            v16f v = v16_expf_twin(v16_splat(xi));
            cr_assert(same_bits(v[0], mv_expf(xi)), "exp(%a): vector %a, scalar %a", xi, v[0], mv_expf(xi));
        }
    }
}

Test(fastmath, sigmoidf_twin_matches_scalar) { check_twin("sigmoid", v16_sigmoidf, mv_sigmoidf); }

// The rounding barriers change no value: they only keep a product out of a fused multiply-add.
Test(fastmath, rounded_is_identity) {
    static float x[70000];
    int n = twin_inputs(x, 70000);
    for (int i = 0; i < n; i++) {
        cr_assert(same_bits(mv_rounded(x[i]), x[i]) || isnan(x[i]));
        v16f v = v16_rounded(v16_splat(x[i]));
        cr_assert(same_bits(v[15], x[i]) || isnan(x[i]));
    }
    // a * b + c with the product rounded first (1 + 2^-11 + 2^-24 rounds to 1 + 2^-11) differs
    // from the fused result (2^-11 + 2^-24) here.
    volatile float a = 1.0f + 0x1p-12f, c = -1.0f;
    float fa = a, fc = c;
    float unfused = mv_rounded(fa * fa) + fc;
    cr_assert(same_bits(unfused, 0x1p-11f), "rounded product: %a", unfused);
    v16f vu = v16_rounded(v16_splat(fa) * fa) + fc;
    cr_assert(same_bits(vu[3], 0x1p-11f), "rounded vector product: %a", vu[3]);
}

Test(fastmath, huge_alloc_alignment) {
    size_t sizes[] = {1, 100, 4096, (size_t)3 << 20, (size_t)5 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = mv_huge_alloc(sizes[i]);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 64, 0, "%zu bytes at %p", sizes[i], (void *)p);
        if (sizes[i] >= ((size_t)4 << 20)) cr_assert_eq((uintptr_t)p % ((size_t)2 << 20), 0);
        memset(p, 0xab, sizes[i]);
        cr_assert_eq(p[sizes[i] - 1], 0xab);
        free(p);
    }
}
