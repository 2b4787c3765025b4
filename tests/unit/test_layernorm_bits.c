// kernels/cpu/layernorm.c against the per-row scalar LayerNorm it replaced, bit for bit, on rows
// of many lengths (1 to 1000 channels: 9-15 and the model's 96, 192, 384, 768 among them), row
// counts that are not multiples of 16, rows of very different offsets and spreads, constant rows,
// rows that overflow the float sums and a NaN, forward and backward, with 1 and 2 threads.
//
// Two references for each direction. old_forward / old_backward are the replaced code verbatim:
// compiled here as in the library, they say which products GCC fused, so they define "the same
// bits" (the vectorised part of the variance loop rounded d * d before adding, the scalar
// remainder fused it; backward's g w (x - m) r likewise). model_forward / model_backward are the
// same code with those choices spelled out (mv_rounded, mv_fma, mv_fms, mv_fnma), as the kernel
// makes them; the model is checked against the verbatim code (bit for bit where GCC tunes for the
// CPU the kernel was rewritten on, within a few ulp elsewhere: expect_near) and the kernel
// against the model, bit for bit on every target.
// Under the sanitizers (-fsanitize=address,undefined, as the project builds them) GCC compiles
// the plain loops with other fusions, so there the kernel is held to the model only.
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cpu/fastmath.h"
#include "kernels/cpu/ops.h"

#if defined(__AVX512F__)   // as in layernorm.c
#define ROUNDED_CHANNELS(C) ((C) & ~7)
#else
#define ROUNDED_CHANNELS(C) ((C) & ~3)
#endif

// ---- the reference: the kernel before it went 16 rows per vector (noinline, noclone: compiled
// for an unknown C, as in the library) --------------------------------------------------------
__attribute__((noinline, noclone, unused))
static void old_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                        const float *b, int N, int C, float eps) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float x0 = x[0], s = 0.0f;
        for (int c = 0; c < C; c++) s += x[c] - x0;
        float m = x0 + s / C, v = 0.0f;
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        float r = 1.0f / sqrtf(v / C + eps);
        if (isinf(s) || isinf(v)) {
            double sd = 0.0, vd = 0.0;
            for (int c = 0; c < C; c++) sd += x[c];
            double md = sd / C;
            for (int c = 0; c < C; c++) { double d = x[c] - md; vd += d * d; }
            m = (float)md;
            r = (float)(1.0 / sqrt(vd / C + eps));
        }
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
        mean[n] = m;
        rstd[n] = r;
    }
}

__attribute__((noinline, noclone))
static void model_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                          const float *b, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float x0 = x[0], s = 0.0f;
        for (int c = 0; c < C; c++) s += x[c] - x0;
        float m = x0 + s / C, v = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v = c < ROUNDED_CHANNELS(C) ? v + mv_rounded(d * d) : mv_fma(d, d, v);
        }
        float r = 1.0f / sqrtf(v / C + eps);
        if (isinf(s) || isinf(v)) {
            double sd = 0.0, vd = 0.0;
            for (int c = 0; c < C; c++) sd += x[c];
            double md = sd / C;
            for (int c = 0; c < C; c++) { double d = x[c] - md; vd += d * d; }
            m = (float)md;
            r = (float)(1.0 / sqrt(vd / C + eps));
        }
        for (int c = 0; c < C; c++) o[c] = mv_fma((x[c] - m) * r, w[c], b[c]);
        mean[n] = m;
        rstd[n] = r;
    }
}

__attribute__((noinline, noclone, unused))
static void old_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const float *mean, const float *rstd, int N, int C) {
    if (din) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *g = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n], sg = 0.0f, sgx = 0.0f;
            for (int c = 0; c < C; c++) {
                float gw = g[c] * w[c];
                sg += gw;
                sgx += gw * (x[c] - m) * r;
            }
            sg /= C;
            sgx /= C;
            float *d = din + (size_t)n * C;
            for (int c = 0; c < C; c++) d[c] += r * (g[c] * w[c] - sg - (x[c] - m) * r * sgx);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        float aw[16] = {0}, ab[16] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *g = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            for (int c = c0; c < c1; c++) {
                aw[c - c0] += g[c] * (x[c] - m) * r;
                ab[c - c0] += g[c];
            }
        }
        for (int c = c0; c < c1; c++) { dw[c] += aw[c - c0]; db[c] += ab[c - c0]; }
    }
}

// old_backward with GCC's choices spelled out.
__attribute__((noinline, noclone))
static void model_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const float *mean, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C, *g = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n], sg = 0.0f, sgx = 0.0f;
        for (int c = 0; c < C; c++) {
            float gw = mv_rounded(g[c] * w[c]);
            sg += gw;
            float t = gw * (x[c] - m);
            sgx = c < ROUNDED_CHANNELS(C) ? sgx + mv_rounded(t * r) : mv_fma(t, r, sgx);
        }
        sg /= C;
        sgx /= C;
        float *d = din + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] = mv_fma(r, mv_fnma((x[c] - m) * r, sgx, mv_fms(g[c], w[c], sg)), d[c]);
    }
    // The weight and bias gradients: per channel, over the rows in row order, with g (x - m)
    // fused with r into the sum (GCC's contraction of the old code, the kernel's explicit fma).
    // Written out rather than calling old_backward: sanitizer builds compile that one unfused.
    for (int c = 0; c < C; c++) {
        float aw = 0.0f, ab = 0.0f;
        for (int n = 0; n < N; n++) {
            float gn = dout[(size_t)n * C + c];
            aw = mv_fma(gn * (in[(size_t)n * C + c] - mean[n]), rstd[n], aw);
            ab += gn;
        }
        dw[c] += aw;
        db[c] += ab;
    }
}

// ---- inputs -------------------------------------------------------------------------------
static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffff) / 16777216.0f - 0.5f;
}

static float *alloc_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    return p;
}

// Row n: an offset and a spread that vary from row to row (so that the sums round differently
// in every row), a constant row, rows that overflow the float sums (~1e20, 3e19: the double
// fallback, also in the middle of a 16-row block) and one with a NaN.
static void fill_rows(float *x, int N, int C, unsigned seed) {
    static const float offsets[] = {0.0f, 3.7f, -100.0f, 12345.7f, 1e-3f, -0.25f};
    static const float spreads[] = {1.0f, 1e-3f, 1e3f, 0.1f, 37.0f};
    for (int n = 0; n < N; n++) {
        float off = offsets[n % 6], sp = spreads[n % 5];
        for (int c = 0; c < C; c++) x[(size_t)n * C + c] = off + sp * frand(&seed);
        if (n % 23 == 5)
            for (int c = 0; c < C; c++) x[(size_t)n * C + c] = off;
        if (n % 29 == 7)
            for (int c = 0; c < C; c++) x[(size_t)n * C + c] = 1e20f * (1.0f + frand(&seed));
        if (n % 31 == 9 && C > 1)
            for (int c = 0; c < C; c++) x[(size_t)n * C + c] = (c % 2 ? 3e19f : -3e19f) + 1e18f * frand(&seed);
        if (n == 40) x[(size_t)n * C + C / 2] = NAN;
    }
}

static void expect_same(const float *a, const float *b, size_t n, const char *what, int N, int C,
                        int threads) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof *a) != 0)
            cr_assert_fail("%s differs at %zu (N %d, C %d, %d threads): %.9g vs reference %.9g", what, i,
                     N, C, threads, a[i], b[i]);
}

// The model against the verbatim old code. Which products GCC fuses in that code depends on the
// CPU it tunes for (-march=native): on the machine the kernel was rewritten on (Zen 4) the two
// agree bit for bit; tuned for another (an Intel rocketlake target, say) the old code's backward
// rounds a product the model fuses and the last bit moves. So here the two must agree within a
// few units in the last place of the row's (or vector's) largest value: the same arithmetic,
// whatever the target. The kernel is held to the model bit for bit below, on every target.
__attribute__((unused))   // sanitizer builds skip the comparisons with the old code
static void expect_near(const float *a, const float *b, size_t n, size_t row, const char *what, int N, int C) {
    for (size_t r0 = 0; r0 < n; r0 += row) {
        size_t r1 = r0 + row < n ? r0 + row : n;
        float scale = 0.0f;
        for (size_t i = r0; i < r1; i++)
            if (isfinite(b[i]) && fabsf(b[i]) > scale) scale = fabsf(b[i]);
        for (size_t i = r0; i < r1; i++) {
            if (isnan(a[i]) || isnan(b[i]) || isinf(a[i]) || isinf(b[i])) {
                if (memcmp(a + i, b + i, sizeof *a) != 0 && !(isnan(a[i]) && isnan(b[i])))
                    cr_assert_fail("%s differs at %zu (N %d, C %d): %.9g vs old %.9g", what, i, N, C, a[i], b[i]);
                continue;
            }
            if (fabsf(a[i] - b[i]) > 16 * FLT_EPSILON * scale)
                cr_assert_fail("%s differs at %zu (N %d, C %d): %.9g vs old %.9g (more than 16 ulp of %.9g)", what, i, N,
                               C, a[i], b[i], scale);
        }
    }
}

static void check_shape(int N, int C, unsigned seed) {
    size_t NC = (size_t)N * C;
    float *x = alloc_floats(NC), *g = alloc_floats(NC), *w = alloc_floats(C), *b = alloc_floats(C);
    fill_rows(x, N, C, seed);
    for (size_t i = 0; i < NC; i++) g[i] = frand(&seed) * (i % 3 ? 1.0f : 1e-2f);
    for (int c = 0; c < C; c++) { w[c] = 1.0f + frand(&seed); b[c] = frand(&seed); }
    float *ro = alloc_floats(NC), *rm = alloc_floats(N), *rr = alloc_floats(N);
    float *rdin = alloc_floats(NC), *rdw = alloc_floats(C), *rdb = alloc_floats(C);
    float *ko = alloc_floats(NC), *km = alloc_floats(N), *kr = alloc_floats(N);
    float *kdin = alloc_floats(NC), *kdw = alloc_floats(C), *kdb = alloc_floats(C);
    float *din0 = alloc_floats(NC), *dw0 = alloc_floats(C);
    for (size_t i = 0; i < NC; i++) din0[i] = frand(&seed);   // backward accumulates into these
    for (int c = 0; c < C; c++) dw0[c] = frand(&seed);

    omp_set_num_threads(1);
    model_forward(ro, rm, rr, x, w, b, N, C, 1e-5f);
#if !defined(__SANITIZE_ADDRESS__)
    {
        float *oo = alloc_floats(NC), *om = alloc_floats(N), *orr = alloc_floats(N);
        old_forward(oo, om, orr, x, w, b, N, C, 1e-5f);
        expect_near(ro, oo, NC, (size_t)C, "model vs old output", N, C);
        expect_near(rm, om, N, 1, "model vs old mean", N, C);
        expect_near(rr, orr, N, 1, "model vs old rstd", N, C);
        free(oo); free(om); free(orr);
    }
#endif
    memcpy(rdin, din0, NC * sizeof *rdin);
    memcpy(rdw, dw0, C * sizeof *rdw);
    memcpy(rdb, dw0, C * sizeof *rdb);
    model_backward(rdin, rdw, rdb, g, x, w, rm, rr, N, C);
#if !defined(__SANITIZE_ADDRESS__)
    {
        float *od = alloc_floats(NC), *ow = alloc_floats(C), *ob = alloc_floats(C);
        memcpy(od, din0, NC * sizeof *od);
        memcpy(ow, dw0, C * sizeof *ow);
        memcpy(ob, dw0, C * sizeof *ob);
        old_backward(od, ow, ob, g, x, w, rm, rr, N, C);
        expect_near(rdin, od, NC, (size_t)C, "model vs old din", N, C);
        expect_near(rdw, ow, C, (size_t)C, "model vs old dw", N, C);
        expect_near(rdb, ob, C, (size_t)C, "model vs old db", N, C);
        free(od); free(ow); free(ob);
    }
#endif
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        memset(ko, 0xff, NC * sizeof *ko);
        layernorm_forward(ko, km, kr, x, w, b, N, C, 1e-5f);
        expect_same(ko, ro, NC, "forward output", N, C, threads);
        expect_same(km, rm, N, "mean", N, C, threads);
        expect_same(kr, rr, N, "rstd", N, C, threads);
        memcpy(kdin, din0, NC * sizeof *kdin);
        memcpy(kdw, dw0, C * sizeof *kdw);
        memcpy(kdb, dw0, C * sizeof *kdb);
        layernorm_backward(kdin, kdw, kdb, g, x, w, km, kr, N, C);
        expect_same(kdin, rdin, NC, "din", N, C, threads);
        expect_same(kdw, rdw, C, "dw", N, C, threads);
        expect_same(kdb, rdb, C, "db", N, C, threads);
    }
    omp_set_num_threads(2);
    free(x); free(g); free(w); free(b); free(ro); free(rm); free(rr); free(rdin); free(rdw);
    free(rdb); free(ko); free(km); free(kr); free(kdin); free(kdw); free(kdb); free(din0); free(dw0);
}

static const int rows[] = {1, 7, 15, 16, 17, 31, 32, 33, 47, 64, 100, 257};

Test(layernorm_bits, every_channel_count_to_64) {
    for (int C = 1; C <= 64; C++)
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) check_shape(rows[i], C, 1000u * C + (unsigned)i);
}

Test(layernorm_bits, model_channel_counts) {
    static const int chans[] = {80, 95, 96, 97, 100, 127, 128, 129, 192, 200, 255, 384, 500, 768, 1000};
    for (size_t j = 0; j < sizeof chans / sizeof chans[0]; j++)
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) check_shape(rows[i], chans[j], 77u * j + (unsigned)i);
}

Test(layernorm_bits, many_rows) {
    check_shape(4096 + 13, 96, 5);   // several 16-row blocks per thread, and a tail
    check_shape(2048 + 1, 192, 6);
}

// In place (out == in), as the old kernel allowed.
Test(layernorm_bits, in_place) {
    int N = 50, C = 40;
    float *x = alloc_floats((size_t)N * C), *y = alloc_floats((size_t)N * C), *ro = alloc_floats((size_t)N * C);
    float w[40], b[40], m[50], r[50], m2[50], r2[50];
    unsigned seed = 3;
    fill_rows(x, N, C, 9);
    for (int c = 0; c < C; c++) { w[c] = 1.0f + frand(&seed); b[c] = frand(&seed); }
    memcpy(y, x, (size_t)N * C * sizeof *y);
    model_forward(ro, m, r, x, w, b, N, C, 1e-5f);
    layernorm_forward(y, m2, r2, y, w, b, N, C, 1e-5f);
    expect_same(y, ro, (size_t)N * C, "in-place output", N, C, 2);
    free(x); free(y); free(ro);
}
