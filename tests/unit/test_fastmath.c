// The vector helpers of kernels/cpu/fastmath.h that the scan relies on being exact twins of the
// scalar ones (v16_sum16 / v16_sums against v16_sum, v16_softplus and v16_log against
// mv_softplusf and mv_logf, bit for bit), their accuracy against libm in double, and
// mv_huge_alloc's alignment.
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
        v16f v = v16_exp(v16_splat(x));
        double ref = exp((double)x);
        cr_assert_leq(fabs(v[0] - ref) / ref, 5e-7, "exp(%.9g) = %.9g, libm %.9g", x, v[0], ref);
    }
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
