// kernels/cpu/layernorm.c: its two paths (16 rows per vector, and the scalar row for rows left
// over or under 16 channels) give the same bits whatever the thread count and wherever a row
// falls, forward and backward; and its results are at float's last bits against a long double
// LayerNorm, on rows of many lengths (1 to 1000 channels: the model's 96 .. 1536 among them),
// offsets and spreads, constant rows, rows of 1e20, and the rows patch merging pads with zeros
// (an odd map side), whose float sums used to be 60-100 ulp off.
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/cpu/ops.h"

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffff) / 16777216.0f - 0.5f;
}

static float *alloc_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    return p;
}

// Row n: an offset and a spread that vary from row to row, a constant row, rows of 1e20 and of
// alternating +-3e19 (their squares overflow float), rows whose second half is zeros (patch
// merging's padding: the same term added C/2 times), and, when with_nan, one with a NaN.
static void fill_rows(float *x, int N, int C, unsigned seed, bool with_nan) {
    static const float offsets[] = {0.0f, 3.7f, -100.0f, 12345.7f, 1e-3f, -0.25f};
    static const float spreads[] = {1.0f, 1e-3f, 1e3f, 0.1f, 37.0f};
    for (int n = 0; n < N; n++) {
        float *row = x + (size_t)n * C;
        float off = offsets[n % 6], sp = spreads[n % 5];
        for (int c = 0; c < C; c++) row[c] = off + sp * frand(&seed);
        if (n % 23 == 5)
            for (int c = 0; c < C; c++) row[c] = off;
        if (n % 29 == 7)
            for (int c = 0; c < C; c++) row[c] = 1e20f * (1.0f + frand(&seed));
        if (n % 31 == 9 && C > 1)
            for (int c = 0; c < C; c++) row[c] = (c % 2 ? 3e19f : -3e19f) + 1e18f * frand(&seed);
        if (n % 7 == 3)
            for (int c = C / 2; c < C; c++) row[c] = 0.0f;
        if (with_nan && n == 40) row[C / 2] = NAN;
    }
}

static void expect_same(const float *a, const float *b, size_t n, const char *what, int N, int C, int threads) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof *a) != 0)
            cr_assert_fail("%s differs at %zu (N %d, C %d, %d threads): %.9g vs %.9g", what, i, N, C, threads, a[i],
                           b[i]);
}

// The whole batch through the kernel (1 and 2 threads) against each row alone (N = 1: the
// scalar row), bit for bit: forward, and backward's input gradient. The weight and bias
// gradients (per channel, over the rows) against the same channels in another order, so that
// each channel is computed once in a 16-channel block and once among the channels after the
// last block (mean and rstd are inputs of backward, so the order changes nothing else).
static void check_shape(int N, int C, unsigned seed) {
    size_t NC = (size_t)N * C;
    float *x = alloc_floats(NC), *g = alloc_floats(NC), *w = alloc_floats(C), *b = alloc_floats(C);
    fill_rows(x, N, C, seed, true);
    for (size_t i = 0; i < NC; i++) g[i] = frand(&seed) * (i % 3 ? 1.0f : 1e-2f);
    for (int c = 0; c < C; c++) { w[c] = 1.0f + frand(&seed); b[c] = frand(&seed); }
    float *din0 = alloc_floats(NC), *dw0 = alloc_floats(C);
    for (size_t i = 0; i < NC; i++) din0[i] = frand(&seed);   // backward accumulates into these
    for (int c = 0; c < C; c++) dw0[c] = frand(&seed);

    // Row by row.
    float *ro = alloc_floats(NC), *rm = alloc_floats(N), *rr = alloc_floats(N), *rdin = alloc_floats(NC);
    omp_set_num_threads(1);
    memcpy(rdin, din0, NC * sizeof *rdin);
    float *dwt = alloc_floats(C), *dbt = alloc_floats(C);
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
        layernorm_forward(ro + o, rm + n, rr + n, x + o, w, b, 1, C, 1e-5f);
        layernorm_backward(rdin + o, dwt, dbt, g + o, x + o, w, rm + n, rr + n, 1, C);
    }
    free(dwt); free(dbt);

    // The weight and bias gradients with the channels rotated by 7 (C >= 17: a block and a tail).
    float *rdw = alloc_floats(C), *rdb = alloc_floats(C);
    memcpy(rdw, dw0, C * sizeof *rdw);
    memcpy(rdb, dw0, C * sizeof *rdb);
    if (C >= 17) {
        int sh = 7;
        float *xp = alloc_floats(NC), *gp = alloc_floats(NC), *pw = alloc_floats(C), *pb = alloc_floats(C);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                xp[(size_t)n * C + (c + sh) % C] = x[(size_t)n * C + c];
                gp[(size_t)n * C + (c + sh) % C] = g[(size_t)n * C + c];
            }
        for (int c = 0; c < C; c++) pw[(c + sh) % C] = pb[(c + sh) % C] = dw0[c];
        layernorm_backward(NULL, pw, pb, gp, xp, w, rm, rr, N, C);
        for (int c = 0; c < C; c++) { rdw[c] = pw[(c + sh) % C]; rdb[c] = pb[(c + sh) % C]; }
        free(xp); free(gp); free(pw); free(pb);
    }

    float *ko = alloc_floats(NC), *km = alloc_floats(N), *kr = alloc_floats(N);
    float *kdin = alloc_floats(NC), *kdw = alloc_floats(C), *kdb = alloc_floats(C);
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
        if (C >= 17) {
            expect_same(kdw, rdw, C, "dw (channels in another order)", N, C, threads);
            expect_same(kdb, rdb, C, "db (channels in another order)", N, C, threads);
        }
    }
    omp_set_num_threads(2);
    free(x); free(g); free(w); free(b); free(din0); free(dw0); free(ro); free(rm); free(rr); free(rdin);
    free(rdw); free(rdb); free(ko); free(km); free(kr); free(kdin); free(kdw); free(kdb);
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

// In place (out == in).
Test(layernorm_bits, in_place) {
    int N = 50, C = 40;
    float *x = alloc_floats((size_t)N * C), *y = alloc_floats((size_t)N * C), *ro = alloc_floats((size_t)N * C);
    float w[40], b[40], m[50], r[50], m2[50], r2[50];
    unsigned seed = 3;
    fill_rows(x, N, C, 9, true);
    for (int c = 0; c < C; c++) { w[c] = 1.0f + frand(&seed); b[c] = frand(&seed); }
    memcpy(y, x, (size_t)N * C * sizeof *y);
    layernorm_forward(ro, m, r, x, w, b, N, C, 1e-5f);
    layernorm_forward(y, m2, r2, y, w, b, N, C, 1e-5f);
    expect_same(y, ro, (size_t)N * C, "in-place output", N, C, 2);
    free(x); free(y); free(ro);
}

// ---- accuracy against long double ----------------------------------------------------------

// Relative error of a against the exact e, in units of FLT_EPSILON of scale.
static double ulps(double a, long double e, double scale) { return fabs((double)((long double)a - e)) / (FLT_EPSILON * scale); }

// Every row of a batch: mean within 1 ulp of the row's spread (or of its value), rstd within 2
// ulp, outputs within 4 ulp of the row's largest output; backward's input gradient within 2 ulp
// of the row's largest terms (r |g w|, r |mean(g w)|, r |x^ mean(g w x^)|), the weight and bias
// gradients within 1 ulp of their largest terms' sums (backward is given the kernel's own mean
// and rstd, as in training). Measured: din 1.1, dw 0.2, db 0.2 ulp at most; the float sums
// this kernel replaced reach 3.8, 1.5 and 1.8, and fail here.
static void check_accuracy(int N, int C, unsigned seed) {
    size_t NC = (size_t)N * C;
    float *x = alloc_floats(NC), *g = alloc_floats(NC), *w = alloc_floats(C), *b = alloc_floats(C);
    fill_rows(x, N, C, seed, false);
    for (size_t i = 0; i < NC; i++) g[i] = frand(&seed);
    for (int c = 0; c < C; c++) { w[c] = 1.0f + frand(&seed); b[c] = frand(&seed); }
    float *o = alloc_floats(NC), *m = alloc_floats(N), *r = alloc_floats(N), *din = alloc_floats(NC);
    float *dw = alloc_floats(C), *db = alloc_floats(C);
    memset(din, 0, NC * sizeof *din);
    memset(dw, 0, C * sizeof *dw);
    memset(db, 0, C * sizeof *db);
    layernorm_forward(o, m, r, x, w, b, N, C, 1e-5f);
    layernorm_backward(din, dw, db, g, x, w, m, r, N, C);
    long double *edw = calloc((size_t)C, sizeof *edw), *edb = calloc((size_t)C, sizeof *edb);
    long double *sdw = calloc((size_t)C, sizeof *sdw), *sdb = calloc((size_t)C, sizeof *sdb);
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C, *gr = g + (size_t)n * C;
        long double s = 0, v = 0;
        for (int c = 0; c < C; c++) s += xr[c];
        long double em = s / C;
        for (int c = 0; c < C; c++) v += (xr[c] - em) * (xr[c] - em);
        long double var = v / C, er = 1.0L / sqrtl(var + 1e-5L);
        double spread = (double)sqrtl(var) > fabs((double)em) ? (double)sqrtl(var) : fabs((double)em);
        if (spread > 0 && ulps(m[n], em, spread) > 1.0)
            cr_assert_fail("row %d (C %d): mean %.9g, exact %.12Lg (%.1f ulp)", n, C, m[n], em, ulps(m[n], em, spread));
        if (ulps(r[n], er, (double)er) > 2.0)
            cr_assert_fail("row %d (C %d): rstd %.9g, exact %.12Lg (%.1f ulp)", n, C, r[n], er, ulps(r[n], er, (double)er));
        // Outputs and input gradient, from the kernel's own m and r (the mean and rstd errors
        // are bounded above), in long double.
        long double sg = 0, sgx = 0, omax = 0, dmax = 0;
        for (int c = 0; c < C; c++) {
            long double xh = ((long double)xr[c] - m[n]) * r[n], gw = (long double)gr[c] * w[c];
            sg += gw;
            sgx += gw * xh;
            edw[c] += gr[c] * xh;
            edb[c] += gr[c];
            sdw[c] += fabsl(gr[c] * xh);
            sdb[c] += fabsl(gr[c]);
            long double eo = xh * w[c] + b[c];
            if (fabsl(eo) > omax) omax = fabsl(eo);
        }
        sg /= C;
        sgx /= C;
        for (int c = 0; c < C; c++) {
            long double xh = ((long double)xr[c] - m[n]) * r[n];
            long double terms = r[n] * (fabsl((long double)gr[c] * w[c]) + fabsl(sg) + fabsl(xh * sgx));
            if (terms > dmax) dmax = terms;   // the terms' size: din itself may be their cancellation
        }
        for (int c = 0; c < C; c++) {
            long double xh = ((long double)xr[c] - m[n]) * r[n];
            long double eo = xh * w[c] + b[c], ed = r[n] * ((long double)gr[c] * w[c] - sg - xh * sgx);
            double eu = ulps(o[(size_t)n * C + c], eo, (double)omax), du = ulps(din[(size_t)n * C + c], ed, (double)dmax);
            if (omax > 0 && eu > 4.0)
                cr_assert_fail("row %d channel %d (C %d): output %.9g, exact %.12Lg (%.1f ulp of %.3Lg)", n, c, C,
                               o[(size_t)n * C + c], eo, eu, omax);
            if (dmax > 0 && du > 2.0)
                cr_assert_fail("row %d channel %d (C %d): din %.9g, exact %.12Lg (%.1f ulp of %.3Lg)", n, c, C,
                               din[(size_t)n * C + c], ed, du, dmax);
        }
    }
    for (int c = 0; c < C; c++) {
        if (sdw[c] > 0 && ulps(dw[c], edw[c], (double)sdw[c]) > 1.0)
            cr_assert_fail("dw[%d] (N %d, C %d): %.9g, exact %.12Lg", c, N, C, dw[c], edw[c]);
        if (sdb[c] > 0 && ulps(db[c], edb[c], (double)sdb[c]) > 1.0)
            cr_assert_fail("db[%d] (N %d, C %d): %.9g, exact %.12Lg", c, N, C, db[c], edb[c]);
    }
    free(edw); free(edb); free(sdw); free(sdb);
    free(x); free(g); free(w); free(b); free(o); free(m); free(r); free(din); free(dw); free(db);
}

Test(layernorm_bits, at_the_last_bits_of_float) {
    static const int chans[] = {1, 2, 15, 16, 17, 40, 96, 192, 384, 768, 1536};
    for (size_t j = 0; j < sizeof chans / sizeof chans[0]; j++) check_accuracy(70, chans[j], 31u + (unsigned)j);
    check_accuracy(20000, 96, 7);   // the weight gradients summed over many rows
}
