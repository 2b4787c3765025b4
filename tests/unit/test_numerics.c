// Numerical robustness outside the happy path: huge, saturated and degenerate inputs and
// weights, empty batches, extreme scan parameters, flushed denormals. Each case is held to what
// PyTorch 1.13 computes (values noted with the case, from /usr/bin/python3) or, where float32
// PyTorch itself overflows or cancels, to a float64 reference (numerics_ref.h).
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "numerics_ref.h"
#include "core/error.h"
#include "core/model.h"
#include "core/adamw.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

// Denormals kept on every OpenMP thread (the state a caller that never ran cpu_flush_denormals
// leaves), so that a result cannot lean on the flush.
static void keep_denormals(void) {
#if defined(__x86_64__) || defined(__i386__)
    #pragma omp parallel
    _mm_setcsr(_mm_getcsr() & ~0x8040u);
#endif
}

static uint32_t g_rs = 2024;
static float frand(float a) {
    g_rs = g_rs * 1664525u + 1013904223u;
    return a * (2.0f * (float)(g_rs >> 8) / 16777216.0f - 1.0f);
}

// ---- cross-entropy ---------------------------------------------------------------------------
// torch: F.cross_entropy(z, y, reduction="none") and the gradient of its sum, float32.
Test(numerics, cross_entropy_huge_logits) {
    static const struct { float z[3]; uint8_t y; double loss; float d[3]; } rows[] = {
        {{1e30f, -1e30f, 0.0f}, 1, 2e30, {1, -1, 0}},
        {{-1e30f, -1e30f, -1e30f}, 0, 1.0986122886681098, {-2.0f / 3, 1.0f / 3, 1.0f / 3}},
        {{1e30f, 1e30f, -1e30f}, 0, 0.6931471805599453, {-0.5f, 0.5f, 0}},
        {{3.4e38f, -3.4e38f, 0.0f}, 0, 0.0, {0, 0, 0}},
        {{1e8f, 1e8f, 0.0f}, 1, 0.6931471805599453, {0.5f, -0.5f, 0}},
        {{-1e8f, 5.0f, -1e8f}, 2, 1e8 + 5.0, {0, 1, -1}},
    };
    int n = sizeof rows / sizeof *rows;
    float z[3 * 6], d[3 * 6];
    uint8_t y[6];
    double sum = 0;
    for (int r = 0; r < n; r++) {
        float dr[3];
        double l = cross_entropy_forward_backward(dr, rows[r].z, &rows[r].y, 1, 3, 1.0, 1.0f);
        cr_expect(fabs(l - rows[r].loss) <= 1e-6 * fmax(1.0, fabs(rows[r].loss)), "row %d: loss %.9g, torch %.9g", r,
                  l, rows[r].loss);
        for (int k = 0; k < 3; k++)
            cr_expect(fabsf(dr[k] - rows[r].d[k]) < 1e-6f, "row %d: dlogits[%d] %g, torch %g", r, k, dr[k], rows[r].d[k]);
        memcpy(z + 3 * r, rows[r].z, sizeof rows[r].z);
        y[r] = rows[r].y;
        sum += rows[r].loss;
    }
    // All rows at once: the mean over the batch and the scaled gradient.
    double l = cross_entropy_forward_backward(d, z, y, n, 3, (double)n, 0.4f);
    cr_expect(fabs(l - sum / n) <= 1e-6 * (sum / n), "batch loss %.9g, want %.9g", l, sum / n);
    for (int r = 0; r < n; r++)
        for (int k = 0; k < 3; k++)
            cr_expect(fabsf(d[3 * r + k] - 0.4f * rows[r].d[k] / n) < 1e-6f, "batch dlogits[%d][%d] %g", r, k, d[3 * r + k]);
}

// Every pixel ignored: 0 (mmseg's mean over all pixels, and its avg_non_ignore sum / (0 + eps));
// a single valid pixel among six: its loss over 6, or over 1 with avg_non_ignore.
Test(numerics, cross_entropy_ignored_and_single_pixel) {
    enum { R = 6, K = 5 };
    float z[R * K], d[R * K];
    uint8_t y[R];
    for (int i = 0; i < R * K; i++) z[i] = frand(4.0f);
    memset(y, 255, sizeof y);
    for (int i = 0; i < R * K; i++) d[i] = 7.0f;
    cr_expect_eq(cross_entropy_forward_backward(d, z, y, R, K, R, 1.0f), 0.0);
    for (int i = 0; i < R * K; i++) cr_expect_eq(d[i], 0.0f);
    y[3] = 2;
    const float *zr = z + 3 * K;
    double mx = zr[0], s = 0;
    for (int k = 1; k < K; k++) mx = fmax(mx, zr[k]);
    for (int k = 0; k < K; k++) s += exp(zr[k] - mx);
    double ce = mx + log(s) - zr[2];
    for (int denom = 1; denom <= R; denom += R - 1) {
        double l = cross_entropy_forward_backward(d, z, y, R, K, denom, 1.0f);
        cr_expect(fabs(l - ce / denom) < 1e-6 * ce, "denominator %d: loss %.9g, want %.9g", denom, l, ce / denom);
        for (int r = 0; r < R; r++)
            for (int k = 0; k < K; k++) {
                double want = r != 3 ? 0.0 : (exp(zr[k] - mx) / s - (k == 2)) / denom;
                cr_expect(fabs(d[r * K + k] - want) < 1e-6, "denominator %d: dlogits[%d][%d] %g, want %g", denom, r, k,
                          d[r * K + k], want);
            }
    }
}

// A label that is neither a class nor 255 makes the loss NaN (torch raises "Target is out of
// bounds"), its row of dlogits NaN, and nothing is read or written outside its row. It used to
// read the next row's logits as its own and write its gradient there.
Test(numerics, cross_entropy_label_out_of_range_is_nan) {
    enum { R = 3, K = 4 };
    float z[R * K + 4], d[R * K + 4];
    for (int i = 0; i < R * K + 4; i++) { z[i] = frand(2.0f); d[i] = 123.0f; }
    uint8_t y[R] = {0, 7, 255};
    double l = cross_entropy_forward_backward(d, z, y, R, K, R, 1.0f);
    cr_expect(isnan(l), "loss %g with label 7 of 4 classes", l);
    for (int k = 0; k < K; k++) {
        cr_expect(isfinite(d[k]), "row 0 dlogits[%d] = %g", k, d[k]);
        cr_expect(isnan(d[K + k]), "row 1 dlogits[%d] = %g, want NaN", k, d[K + k]);
        cr_expect_eq(d[2 * K + k], 0.0f);
    }
    for (int i = R * K; i < R * K + 4; i++) cr_expect_eq(d[i], 123.0f, "dlogits written past the rows");
}

// ---- LayerNorm ----------------------------------------------------------------------------------
// One row against float64: output, mean, rstd and the input gradient.
static void layernorm_row_vs_double(const float *x, int C, const char *what) {
    float w[768], b[768], g[768], o[768], din[768], dw[768], db[768], mean, rstd;
    for (int c = 0; c < C; c++) {
        w[c] = 0.5f + (float)(c % 5) * 0.25f;
        b[c] = (float)(c % 3) - 1.0f;
        g[c] = (float)((c * 7) % 11) - 5.0f;
        din[c] = dw[c] = db[c] = 0.0f;
    }
    layernorm_forward(o, &mean, &rstd, x, w, b, 1, C, 1e-5f);
    layernorm_backward(din, dw, db, g, x, w, &mean, &rstd, 1, C);
    double md = 0, vd = 0, sg = 0, sgx = 0;
    for (int c = 0; c < C; c++) md += x[c];
    md /= C;
    for (int c = 0; c < C; c++) vd += ((double)x[c] - md) * ((double)x[c] - md);
    vd /= C;
    double rd = 1.0 / sqrt(vd + 1e-5), dmax = 0, err_o = 0, err_d = 0;
    for (int c = 0; c < C; c++) {
        double xh = (x[c] - md) * rd, ref = xh * w[c] + b[c];
        err_o = fmax(err_o, fabs(o[c] - ref));
        sg += (double)g[c] * w[c];
        sgx += (double)g[c] * w[c] * xh;
    }
    sg /= C;
    sgx /= C;
    for (int c = 0; c < C; c++) {
        double ref = rd * (g[c] * w[c] - sg - (x[c] - md) * rd * sgx);
        dmax = fmax(dmax, fabs(ref));
        err_d = fmax(err_d, fabs(din[c] - ref));
    }
    double xmax = 0;
    for (int c = 0; c < C; c++) xmax = fmax(xmax, fabs(x[c]));
    cr_expect(isfinite(mean) && fabs(mean - md) <= 1e-6 * xmax, "%s: mean %g, float64 %g", what, mean, md);
    cr_expect(fabs(rstd - rd) <= 1e-5 * rd, "%s: rstd %g, float64 %g", what, rstd, rd);
    cr_expect(err_o < 2e-5, "%s: output off float64 by %g", what, err_o);
    cr_expect(err_d <= 2e-5 * dmax + 1e-30, "%s: input gradient off float64 by %g of %g", what, err_d, dmax);
}

// Rows of 1e19 to 1e30 overflowed the float sum of squares: rstd was 0 and the output the bias
// (torch: 0 at 1e19, NaN at 1e20). Constant rows (variance 0) normalise to the bias exactly; a
// float sum made their mean round, and 1e10 everywhere gave outputs of magnitude 1 (torch: 1e5).
Test(numerics, layernorm_huge_and_constant_rows) {
    keep_denormals();
    float x[768];
    const float scales[] = {1.0f, 1e18f, 1e19f, 3e19f, 1e20f, 1e30f, 1e36f};
    for (int C = 96; C <= 768; C += 672)
        for (size_t i = 0; i < sizeof scales / sizeof *scales; i++) {
            g_rs = 7;
            for (int c = 0; c < C; c++) x[c] = frand(1.0f) * scales[i] + (i == 0 ? 0.0f : 0.5f * scales[i]);
            char what[64];
            snprintf(what, sizeof what, "C %d, values ~%g", C, scales[i]);
            layernorm_row_vs_double(x, C, what);
        }
    const float consts[] = {0.1f, 1.0f / 3.0f, 12345.678f, 7.77e5f, 1e10f, 1e20f, -3e30f, 0.0f};
    for (int C = 96; C <= 768; C += 672)
        for (size_t i = 0; i < sizeof consts / sizeof *consts; i++) {
            float w[768], b[768], o[768], mean, rstd;
            for (int c = 0; c < C; c++) { x[c] = consts[i]; w[c] = 2.0f; b[c] = (float)c; }
            layernorm_forward(o, &mean, &rstd, x, w, b, 1, C, 1e-5f);
            cr_expect_eq(mean, consts[i], "constant %g over %d: mean %.9g", consts[i], C, mean);
            int off = 0;
            for (int c = 0; c < C; c++) off += o[c] != b[c];
            cr_expect_eq(off, 0, "constant row %g over %d channels: %d outputs are not the bias", consts[i], C, off);
        }
}

// ---- BatchNorm ----------------------------------------------------------------------------------
// A constant channel (variance 0) in training: output exactly the bias, running variance decays
// by momentum, input gradient w rstd (dy - mean dy) with rstd = 1/sqrt(eps). Evaluation with a
// running variance of 0 divides by sqrt(eps) (torch: 158.1139 for (1 - 0.5) / sqrt(1e-5)).
Test(numerics, batchnorm_constant_channel_and_zero_running_var) {
    keep_denormals();
    enum { N = 257, C = 3 };
    float x[N * C], o[N * C], dy[N * C], dx[N * C], w[C] = {1.5f, 1, 1}, b[C] = {0.25f, 0, 0};
    float mean[C], rstd[C], rm[C] = {0, 0, 0}, rv[C] = {1, 1, 1}, dw[C] = {0}, db[C] = {0};
    double scr[2 * C + 1];
    for (int n = 0; n < N; n++) {
        x[n * C] = 0.1f;
        x[n * C + 1] = 1e4f + frand(1.0f);
        x[n * C + 2] = frand(1e-3f);
        for (int c = 0; c < C; c++) { dy[n * C + c] = frand(1.0f); dx[n * C + c] = 0; }
    }
    mv_reducer red = {0};
    batchnorm_forward_train(o, mean, rstd, rm, rv, x, w, b, scr, red, N, C, 1e-5f, 0.1f);
    batchnorm_backward(dx, dw, db, dy, x, w, mean, rstd, scr, red, N, C);
    cr_expect_eq(mean[0], 0.1f);
    cr_expect(fabsf(rstd[0] - 316.227766f) < 1e-3f, "rstd %g", rstd[0]);
    cr_expect(fabsf(rv[0] - 0.9f) < 1e-7f && fabsf(rm[0] - 0.01f) < 1e-8f, "running stats %g %g", rm[0], rv[0]);
    double sdy = 0;
    for (int n = 0; n < N; n++) sdy += dy[n * C];
    for (int n = 0; n < N; n++) {
        cr_expect_eq(o[n * C], 0.25f, "constant channel output %g", o[n * C]);
        double want = 1.5 * 316.22776601683796 * (dy[n * C] - sdy / N);
        cr_expect(fabs(dx[n * C] - want) < 1e-4 * fabs(want) + 1e-3, "dx %g, want %g", dx[n * C], want);
    }
    cr_expect(fabsf(dw[0]) < 1e-6f, "dweight of a constant channel %g", dw[0]);
    float in[2] = {1.0f, 0.5f}, out[2], rm2[2] = {0.5f, 0.5f}, rv2[2] = {0, 0}, w2[2] = {1, 1}, b2[2] = {0, 0};
    batchnorm_forward_eval(out, in, w2, b2, rm2, rv2, 1, 2, 1e-5f);
    cr_expect(fabsf(out[0] - 158.113883f) < 1e-3f && out[1] == 0.0f, "eval with running_var 0: %g %g", out[0], out[1]);
}

// ---- activations --------------------------------------------------------------------------------
// Far below the range of exp: torch's silu and its gradient are -0 there. sigmoid(x) came out
// as 6e-39 (mv_expf clamps at 88) and silu(-1e38) as -0.6 wherever denormals are not flushed.
// (The scan's softplus there: tests/unit/test_fastmath.c.)
Test(numerics, activations_far_negative_without_flush) {
    keep_denormals();
    const float xs[] = {-3.4e38f, -1e38f, -1e30f, -1e10f, -200.0f, -100.0f, -90.0f, -88.5f};
    enum { n = sizeof xs / sizeof *xs };
    float o[n], d[n], one[n];
    for (int i = 0; i < n; i++) { one[i] = 1.0f; d[i] = 0.0f; }
    silu_forward(o, xs, n);
    silu_backward(d, one, xs, n);
    for (int i = 0; i < n; i++) {
        cr_expect(fabsf(o[i]) < 1e-35f, "silu(%g) = %g, torch -0", xs[i], o[i]);
        cr_expect(fabsf(d[i]) < 1e-35f, "silu'(%g) = %g, torch -0", xs[i], d[i]);
    }
    const float big[] = {20.5f, 88.5f, 1e10f, 3.4e38f};
    for (int i = 0; i < 4; i++) {
        float a, da = 0.0f, u = 1.0f;
        silu_forward(&a, &big[i], 1);
        silu_backward(&da, &u, &big[i], 1);
        cr_expect(a == big[i] && da == 1.0f, "silu(%g) = %g, silu' = %g", big[i], a, da);
    }
}

// ---- selective scan against float64 --------------------------------------------------------------
typedef struct {
    const char *name;
    int B, H, W, E, R, N;
    float dtb, dtb_spread, alog_add;
} scan_spec;

static void scan_vs_double(const scan_spec *c) {
    int B = c->B, H = c->H, W = c->W, E = c->E, R = c->R, N = c->N, L = H * W, K = SCAN_K, P = R + 2 * N;
    size_t nx = (size_t)B * L * E, nxp = (size_t)K * P * E, ndw = (size_t)K * E * R, nke = (size_t)K * E, nA = nke * N;
    float *x = malloc(4 * nx), *dy = malloc(4 * nx), *y = malloc(4 * nx), *gx = calloc(nx, 4);
    float *xpw = malloc(4 * nxp), *dtw = malloc(4 * ndw), *dtb = malloc(4 * nke), *Al = malloc(4 * nA), *Ds = malloc(4 * nke);
    float *gxpw = calloc(nxp, 4), *gdtw = calloc(ndw, 4), *gdtb = calloc(nke, 4), *gAl = calloc(nA, 4), *gDs = calloc(nke, 4);
    g_rs = 12345;
    for (size_t i = 0; i < nx; i++) { x[i] = frand(1); dy[i] = frand(1); }
    for (size_t i = 0; i < nxp; i++) xpw[i] = frand(0.5f);
    for (size_t i = 0; i < ndw; i++) dtw[i] = frand(0.5f);
    for (size_t i = 0; i < nke; i++) { dtb[i] = c->dtb + frand(c->dtb_spread); Ds[i] = 1 + frand(0.5f); }
    for (size_t i = 0; i < nA; i++) Al[i] = logf((float)(i % N) + 1) + c->alog_add;
    float *xdbl = malloc(4 * (size_t)B * L * K * P), *delta = malloc(4 * K * nx);
    float *st = malloc(4 * ss2d_scan_states_size(B, L, E, N)), *scr = malloc(4 * ss2d_scan_scratch(B, L, E, R, N));
    ss2d_scan_forward(y, xdbl, delta, st, x, xpw, dtw, dtb, Al, Ds, scr, B, H, W, E, R, N);
    ss2d_scan_backward(gx, gxpw, gdtw, gdtb, gAl, gDs, dy, x, xdbl, delta, st, xpw, dtw, dtb, Al, Ds, scr, B, H, W, E, R, N);
    double *ry = malloc(8 * nx), *rgx = malloc(8 * nx), *rgxpw = malloc(8 * nxp), *rgdtw = malloc(8 * ndw);
    double *rgdtb = malloc(8 * nke), *rgAl = malloc(8 * nA), *rgDs = malloc(8 * nke);
    nref_scan s = {B, H, W, E, R, N, x, xpw, dtw, dtb, Al, Ds, dy, ry, rgx, rgxpw, rgdtw, rgdtb, rgAl, rgDs};
    nref_scan_run(&s);
    struct { const char *what; const float *a; const double *r; size_t n; double tol; } t[] = {
        {"y", y, ry, nx, 2e-6}, {"dx", gx, rgx, nx, 2e-5}, {"dx_proj_weight", gxpw, rgxpw, nxp, 2e-5},
        {"ddt_projs_weight", gdtw, rgdtw, ndw, 2e-5}, {"ddt_projs_bias", gdtb, rgdtb, nke, 2e-5},
        {"dA_logs", gAl, rgAl, nA, 2e-5}, {"dDs", gDs, rgDs, nke, 2e-5},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        int bad = 0;
        double e = nref_err(t[i].a, t[i].r, t[i].n, &bad);
        cr_expect(bad == 0 && e < t[i].tol, "%s: %s off float64 by %.3g of its largest magnitude (%d not finite)",
                  c->name, t[i].what, e, bad);
    }
    free(x); free(dy); free(y); free(gx); free(xpw); free(dtw); free(dtb); free(Al); free(Ds);
    free(gxpw); free(gdtw); free(gdtb); free(gAl); free(gDs); free(xdbl); free(delta); free(st); free(scr);
    free(ry); free(rgx); free(rgxpw); free(rgdtw); free(rgdtb); free(rgAl); free(rgDs);
}

// dt's pre-activation z below ~-8 (a small dt, where trained models go): softplus' was recovered
// as 1 - exp(-softplus(z)), which cancels: 1.5e-5 off at z = -8, 1e-3 at -12, 0 below -17.
Test(numerics, selective_scan_small_dt) {
    scan_spec c[] = {
        {"dt z~-8", 1, 5, 7, 16, 1, 4, -8.0f, 1.0f, 0.0f},
        {"dt z~-12", 1, 5, 7, 16, 1, 4, -12.0f, 2.0f, 0.0f},
        {"dt z~-20", 1, 5, 7, 16, 1, 4, -20.0f, 2.0f, 0.0f},
        {"dt z~-40", 1, 5, 7, 19, 2, 4, -40.0f, 2.0f, 0.0f},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) scan_vs_double(&c[i]);
}

// Saturated softplus (z 50 and 1e4: delta = z), large and small A (A_logs + 10: A = -2.2e4..-8.8e4,
// every decay 0; A_logs - 20: decays ~1), d_state 1 and the largest supported (64), and long
// sequences (64x96 and 128x192 tokens, one and two hundred scan chunks).
Test(numerics, selective_scan_extremes) {
    scan_spec c[] = {
        {"typical", 2, 5, 7, 19, 2, 4, -4.0f, 2.5f, 0.0f},
        {"dt z~50", 1, 5, 7, 16, 1, 4, 50.0f, 5.0f, 0.0f},
        {"dt z~1e4", 1, 5, 7, 16, 1, 4, 1e4f, 5.0f, 0.0f},
        {"A_logs +10", 1, 5, 7, 16, 1, 4, -4.0f, 2.5f, 10.0f},
        {"A_logs -20", 1, 5, 7, 16, 1, 4, -4.0f, 2.5f, -20.0f},
        {"d_state 1", 1, 5, 7, 16, 1, 1, -4.0f, 2.5f, 0.0f},
        {"d_state 64", 1, 4, 5, 16, 1, 64, -4.0f, 2.5f, 0.0f},
        {"L 64x96", 1, 64, 96, 16, 1, 4, -4.0f, 2.5f, 0.0f},
        {"L 64x96 long memory", 1, 64, 96, 16, 1, 4, -9.0f, 1.0f, -3.0f},
        {"L 128x192", 1, 128, 192, 16, 1, 2, -4.0f, 2.5f, 0.0f},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) scan_vs_double(&c[i]);
}

// ---- token mask ---------------------------------------------------------------------------------
// Straight-through gradient at saturated keep logits z = l0 - l1: dL/dP0 = -dL/dP1 = dm y (1 - y),
// y = sigmoid(z), against float64. y (1 - y) from a float y was 4e-5 off at z = 8, 1e-3 at 10,
// 3% at 15 and 0 from 17 (torch's own dP0 is 0 there; its dP1 is exact).
Test(numerics, token_mask_saturated_logits) {
    keep_denormals();
    const float zs[] = {0.0f, 2.0f, 8.0f, 10.0f, 12.0f, 15.0f, 16.0f, 17.0f, 20.0f, 30.0f, 60.0f,
                        -8.0f, -17.0f, -30.0f, 100.0f, -100.0f};
    enum { H = 4, W = 4, L = H * W, C = 2 };
    float P[2 * L], x[L * C], out[L * C], m[L], soft[L], dout[L * C], dm[L], dx[L * C], dP[2 * L];
    float *scratch = malloc(sizeof(float) * token_mask_scratch(H, W));
    for (int t = 0; t < L; t++) {
        P[2 * t] = 0.5f * zs[t];
        P[2 * t + 1] = -0.5f * zs[t];
        dm[t] = 1.0f + 0.25f * (float)(t % 3);
        dP[2 * t] = dP[2 * t + 1] = 0.0f;
        for (int c = 0; c < C; c++) { x[t * C + c] = 0.0f; dout[t * C + c] = 1.0f; dx[t * C + c] = 0.0f; }
    }
    int ids[1] = {0};
    mv_mask_args a = {true, false, false, false, 1.0f, 1, 0, 0, ids};
    token_mask_forward(out, m, soft, x, P, scratch, &a, 1, H, W, C, H, W);
    token_mask_backward(dx, dP, dout, dm, x, m, soft, scratch, &a, 1, H, W, C, H, W);
    for (int t = 0; t < L; t++) {
        double z = zs[t], e = exp(-fabs(z)), want = dm[t] * e / ((1 + e) * (1 + e));
        cr_expect_eq(m[t], zs[t] >= 0 ? 1.0f : 0.0f);
        double tol = 1e-6 * want + 1e-37;
        cr_expect(fabs(dP[2 * t] - want) <= tol, "z = %g: dL/dP_keep %.7g, float64 %.7g", z, dP[2 * t], want);
        cr_expect(fabs(dP[2 * t + 1] + want) <= tol, "z = %g: dL/dP_drop %.7g, float64 %.7g", z, dP[2 * t + 1], -want);
    }
    // Evaluation: keep where l0 > l1, ties dropped.
    a.training = false;
    token_mask_forward(out, m, soft, x, P, scratch, &a, 1, H, W, C, H, W);
    for (int t = 0; t < L; t++) cr_expect_eq(m[t], zs[t] > 0 ? 1.0f : 0.0f);
    free(scratch);
}

// Training with Gumbel noise (every reference comparison runs with mask.noise off): the noise of
// a token is g0 - g1, a difference of two standard Gumbels, so z * tau - (l0 - l1) must follow
// the standard logistic distribution (mean 0, variance pi^2 / 3, P(<= q) = sigmoid(q)) whatever
// tau, and a token is kept with probability sigmoid(l0 - l1) (the Gumbel-max trick). Checked on
// 64 x 4096 draws per logit gap, within 5 standard errors; the draws must change with the step,
// the sample and the block, and repeat for the same keys.
Test(numerics, token_mask_gumbel_noise_distribution) {
    enum { H = 64, W = 64, L = H * W, C = 1, B = 64 };
    const float gaps[] = {-2.0f, 0.0f, 1.0f, 3.0f};
    const float taus[] = {0.3f, 1.0f, 4.0f};
    float *P = malloc(sizeof(float) * 2 * L), *x = calloc((size_t)B * L * C, sizeof(float));
    float *out = malloc(sizeof(float) * B * L * C), *m = malloc(sizeof(float) * B * L);
    float *z = malloc(sizeof(float) * B * L), *z2 = malloc(sizeof(float) * B * L);
    float *scratch = malloc(sizeof(float) * token_mask_scratch(H, W));
    int ids[B];
    for (int b = 0; b < B; b++) ids[b] = 1000 + 7 * b;
    for (int g = 0; g < 4; g++) {
        float tau = taus[g % 3];
        for (int t = 0; t < L; t++) { P[2 * t] = 0.5f * gaps[g]; P[2 * t + 1] = -0.5f * gaps[g]; }
        mv_mask_args a = {true, true, false, false, tau, 77, (uint32_t)(5 + g), 3, ids};
        token_mask_forward(out, m, z, x, P, scratch, &a, B, H, W, C, H, W);
        double n = (double)B * L, kept = 0, sum = 0, sum2 = 0, below1 = 0;
        for (size_t i = 0; i < (size_t)B * L; i++) {
            double noise = (double)z[i] * tau - gaps[g];
            cr_assert_eq(m[i], z[i] >= 0 ? 1.0f : 0.0f, "mask and keep logit disagree");
            kept += m[i];
            sum += noise;
            sum2 += noise * noise;
            below1 += noise <= 1.0;
        }
        double p = 1 / (1 + exp(-(double)gaps[g])), se = sqrt(p * (1 - p) / n);
        cr_expect(fabs(kept / n - p) < 5 * se, "gap %g, tau %g: kept %.4f of the tokens, expected %.4f", gaps[g], tau,
                  kept / n, p);
        double var = M_PI * M_PI / 3, mean = sum / n;
        cr_expect(fabs(mean) < 5 * sqrt(var / n), "gap %g: noise mean %.4f, expected 0", gaps[g], mean);
        // The variance of a logistic sample's variance estimate: (mu4 - var^2) / n, mu4 = 7 pi^4 / 15.
        double v = sum2 / n - mean * mean, se_v = sqrt((7 * pow(M_PI, 4) / 15 - var * var) / n);
        cr_expect(fabs(v - var) < 5 * se_v, "gap %g: noise variance %.4f, expected %.4f", gaps[g], v, var);
        double q = 1 / (1 + exp(-1.0));
        cr_expect(fabs(below1 / n - q) < 5 * sqrt(q * (1 - q) / n), "gap %g: P(noise <= 1) %.4f, expected %.4f",
                  gaps[g], below1 / n, q);
    }
    // Keys: the same (seed, step, sample, block, token) draws the same noise; another step,
    // sample or block draws another.
    for (int t = 0; t < L; t++) P[2 * t] = P[2 * t + 1] = 0.0f;
    mv_mask_args a = {true, true, false, false, 1.0f, 77, 9, 3, ids};
    token_mask_forward(out, m, z, x, P, scratch, &a, B, H, W, C, H, W);
    token_mask_forward(out, m, z2, x, P, scratch, &a, B, H, W, C, H, W);
    cr_expect(!memcmp(z, z2, sizeof(float) * B * L), "the same keys drew other noise");
    for (int k = 0; k < 3; k++) {
        mv_mask_args o = a;
        int shifted[B];
        for (int b = 0; b < B; b++) shifted[b] = ids[b] + 1;
        if (k == 0) o.step = 10;
        if (k == 1) o.sample_ids = shifted;
        if (k == 2) o.block = 4;
        token_mask_forward(out, m, z2, x, P, scratch, &o, B, H, W, C, H, W);
        size_t same = 0;
        for (size_t i = 0; i < (size_t)B * L; i++) same += z[i] == z2[i];
        cr_expect(same < 16, "%s changed: %zu of %d draws the same", k == 0 ? "step" : k == 1 ? "sample" : "block",
                  same, B * L);
    }
    free(P); free(x); free(out); free(m); free(z); free(z2); free(scratch);
}

// ---- bilinear resize ----------------------------------------------------------------------------
// 1x1 in or out, large upsampling factors, sides one apart, against float64 of torch's formula
// (align_corners = False). torch in float32 rounds the source coordinates the same way (the
// 64x63 -> 63x64 case is the largest: 3e-6).
static void bilinear_vs_double(int H, int W, int OH, int OW) {
    int C = 3;
    float *in = malloc(4 * (size_t)H * W * C), *out = malloc(4 * (size_t)OH * OW * C), *dout = malloc(4 * (size_t)OH * OW * C);
    float *din = calloc((size_t)H * W * C, 4);
    double *rout = calloc((size_t)OH * OW * C, 8), *rdin = calloc((size_t)H * W * C, 8);
    for (int i = 0; i < H * W * C; i++) in[i] = sinf((float)i * 0.37f) * 3.0f;
    for (int i = 0; i < OH * OW * C; i++) dout[i] = cosf((float)i * 0.21f);
    bilinear_forward(out, in, 1, H, W, OH, OW, C);
    bilinear_backward(din, dout, 1, H, W, OH, OW, C);
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            double sy = fmax(0.0, (oy + 0.5) * H / OH - 0.5), sx = fmax(0.0, (ox + 0.5) * W / OW - 0.5);
            int y0 = (int)sy, x0 = (int)sx, y1 = y0 + 1 < H ? y0 + 1 : H - 1, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
            double wy = sy - y0, wx = sx - x0;
            for (int c = 0; c < C; c++) {
                double tw[4] = {(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx};
                size_t src[4] = {((size_t)y0 * W + x0) * C + c, ((size_t)y0 * W + x1) * C + c,
                                 ((size_t)y1 * W + x0) * C + c, ((size_t)y1 * W + x1) * C + c};
                size_t o = ((size_t)oy * OW + ox) * C + c;
                for (int j = 0; j < 4; j++) {
                    rout[o] += tw[j] * in[src[j]];
                    rdin[src[j]] += tw[j] * dout[o];
                }
            }
        }
    int bad = 0;
    double ef = nref_err(out, rout, (size_t)OH * OW * C, &bad), eb = nref_err(din, rdin, (size_t)H * W * C, &bad);
    cr_expect(bad == 0 && ef < 5e-6 && eb < 1e-4, "%dx%d -> %dx%d: forward %.3g, backward %.3g off float64", H, W, OH,
              OW, ef, eb);
    free(in); free(out); free(dout); free(din); free(rout); free(rdin);
}

Test(numerics, bilinear_edge_sizes) {
    const int c[][4] = {{1, 1, 1, 1}, {1, 1, 7, 5}, {6, 4, 1, 1}, {1, 1, 1, 9}, {3, 2, 1024, 999}, {2, 2, 4096, 1},
                        {7, 8, 8, 7}, {64, 63, 63, 64}, {65, 33, 64, 32}, {5, 5, 6, 6}, {33, 47, 132, 188}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) bilinear_vs_double(c[i][0], c[i][1], c[i][2], c[i][3]);
}

// ---- AdamW --------------------------------------------------------------------------------------
// The gradients are float constants: a runtime double -> float conversion would itself flush a
// denormal gradient under FTZ.
typedef struct { float g[3]; int steps; double lr, eps, wd; float p, m, v; } adam_case;

// One parameter of value 1 (n copies, so that both the serial and the threaded path run), against
// torch.optim.AdamW (betas 0.9, 0.999).
static void adam_vs_torch(const adam_case *c, size_t n, const char *what) {
    float *p = malloc(4 * n), *g = malloc(4 * n), *m = calloc(n, 4), *v = calloc(n, 4);
    for (size_t i = 0; i < n; i++) p[i] = 1.0f;
    for (int s = 0; s < c->steps; s++) {
        for (size_t i = 0; i < n; i++) g[i] = c->g[s];
        adamw_update(p, g, m, v, n, c->lr, 0.9, 0.999, c->eps, c->wd, s + 1);
    }
    for (size_t i = 0; i < n; i += n - 1 > 0 ? n - 1 : 1) {
        cr_expect(fabsf(p[i] - c->p) <= 2e-7f * fabsf(c->p), "%s g %g eps %g (n %zu): param %.9g, torch %.9g", what,
                  c->g[0], c->eps, n, p[i], c->p);
        cr_expect(fabsf(m[i] - c->m) <= 1e-6f * fabsf(c->m), "%s g %g (n %zu): m %.9g, torch %.9g", what, c->g[0], n, m[i], c->m);
        cr_expect(isinf(c->v) ? isinf(v[i]) : fabsf(v[i] - c->v) <= 1e-6f * c->v, "%s g %g (n %zu): v %.9g, torch %.9g",
                  what, c->g[0], n, v[i], c->v);
        if (n == 1) break;
    }
    free(p); free(g); free(m); free(v);
}

// Gradients of 1e20 and 4e20: torch's (1 - beta2) * g * g is finite up to 5.8e20; ours formed
// g * g first, so v was inf and the step 0. 1e30: v inf in torch too, only the decay applies.
Test(numerics, adamw_huge_gradients) {
    const adam_case c[] = {
        {{1e20f}, 1, 1e-3, 1e-8, 0.01, 0.998989999f, 9.99999998e18f, 1.00000012e37f},
        {{4e20f}, 1, 1e-3, 1e-8, 0.01, 0.998989999f, 3.99999999e19f, 1.60000019e38f},
        {{1e30f}, 1, 1e-3, 1e-8, 0.01, 0.999989986f, 1.00000002e29f, INFINITY},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        adam_vs_torch(&c[i], 9, "huge gradient");
        adam_vs_torch(&c[i], 40000, "huge gradient");
    }
}

// With denormals flushed on the compute threads (as training runs): torch keeps v = 1e-43, and
// with eps 1e-30 the step is lr; flushed, v was 0 and the parameter went to -1e7. A denormal eps
// (1e-45) was read as 0 and a zero gradient gave 0/0; a denormal gradient was read as 0.
Test(numerics, adamw_tiny_eps_and_denormals_under_flush) {
    cpu_flush_denormals();
    const adam_case c[] = {
        {{1e-20f}, 1, 1e-3, 1e-30, 0.01, 0.998987436f, 9.99999968e-22f, 9.9492191e-44f},
        {{1e-20f, 1e-20f, 0.0f}, 3, 1e-3, 1e-30, 0.01, 0.997190714f, 1.70999982e-21f, 1.98984382e-43f},
        {{0.0f}, 1, 1e-3, 1e-45, 0.01, 0.999989986f, 0.0f, 0.0f},
        {{-1e-39f}, 1, 1e-3, 1e-40, 0.0, 1.01000535f, -9.9999461e-41f, 0.0f},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        adam_vs_torch(&c[i], 9, "flushed denormals");
        adam_vs_torch(&c[i], 40000, "flushed denormals");
    }
    // The caller's flush mode is left as it was.
#if defined(__x86_64__) || defined(__i386__)
    cr_expect((_mm_getcsr() & 0x8040u) == 0x8040u, "adamw_update left the thread's FTZ/DAZ changed");
#endif
}

// lr 0 leaves the parameter exactly (the moments still move); weight decay 0 is no decay.
Test(numerics, adamw_zero_lr_and_zero_decay) {
    const adam_case c[] = {
        {{0.5f}, 1, 0.0, 1e-8, 0.01, 1.0f, 0.0500000007f, 0.000250000012f},
        {{0.5f}, 1, 1e-3, 1e-8, 0.0, 0.999000013f, 0.0500000007f, 0.000250000012f},
        {{0.0f}, 1, 1e-3, 1e-8, 0.01, 0.999989986f, 0.0f, 0.0f},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        adam_vs_torch(&c[i], 9, "lr/decay");
        adam_vs_torch(&c[i], 40000, "lr/decay");
    }
}

// ---- the whole model ----------------------------------------------------------------------------
static mv_model_config nano(void) {
    mv_model_config c;
    cr_assert(model_config_preset(&c, "maskvim-nano") == 0);
    c.mask_noise = false;
    c.dropout = c.drop_path = c.decoder_drop_path = 0;
    return c;
}

// Runs one step; returns the number of non-finite parameter gradients.
static size_t step_nonfinite(mv_model *m, const float *img, const uint8_t *lab, int B, int H, int W) {
    int ids[2] = {0, 1};
    mv_run_ctx ctx = {.training = true, .seed = 3, .step = 1, .sample_ids = ids, .world_size = 1};
    cr_assert(model_plan(m, B, H, W, MV_PLAN_TRAIN) == 0);
    params_zero_grads(&m->params);
    cr_assert(model_forward(m, img, lab, &ctx) == 0, "%s", mv_last_error());
    model_backward(m, &ctx);
    size_t bad = 0;
    for (size_t i = 0; i < m->params.num_params; i++) bad += !isfinite(m->params.grads[i]);
    return bad;
}

// An image of one colour, with the weights as initialised, scaled by 1e-3, and with every matrix
// (linear and convolution weights) scaled by 30: torch (float32 and float64) is finite on all of
// them (checked with tests/reference/maskvim_ref.py step), and so must we be.
Test(numerics, model_constant_image_scaled_weights) {
    mv_model_config c = nano();
    mv_model m;
    cr_assert(model_build(&m, &c) == 0);
    int B = 2, H = 64, W = 64;
    float *img = malloc(sizeof(float) * B * 3 * H * W);
    uint8_t *lab = malloc((size_t)B * H * W);
    const float colour[3] = {0.3f, -1.2f, 2.0f};
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < H * W; i++) img[((size_t)b * 3 + ch) * H * W + i] = colour[ch];
    for (int i = 0; i < B * H * W; i++) lab[i] = (uint8_t)(i / 97 % 19);
    for (int variant = 0; variant < 3; variant++) {
        params_init(&m.params, 11);
        for (int i = 0; i < m.params.count; i++) {
            mv_param *q = &m.params.items[i];
            if (q->is_buffer) continue;
            bool matrix = q->ndim >= 2 && !strstr(q->name, "token_mask") && !strstr(q->name, "A_logs");
            float s = variant == 1 ? 1e-3f : variant == 2 && matrix ? 30.0f : 1.0f;
            for (size_t j = 0; j < q->numel; j++) m.params.params[q->offset + j] *= s;
        }
        size_t bad = step_nonfinite(&m, img, lab, B, H, W);
        cr_expect(isfinite(m.loss_total) && isfinite(m.loss_ce) && isfinite(m.loss_aux),
                  "variant %d: losses %g %g %g", variant, m.loss_total, m.loss_ce, m.loss_aux);
        cr_expect_eq(bad, 0, "variant %d: %zu gradients not finite", variant, bad);
    }
    free(img); free(lab);
    model_free(&m);
}

// Every label ignored: the cross-entropy terms are 0 (mean over all pixels, and avg_non_ignore's
// sum over no pixel), not NaN; the rest of the loss and every gradient stay finite.
Test(numerics, model_all_labels_ignored) {
    for (int non_ignore = 0; non_ignore < 2; non_ignore++) {
        mv_model_config c = nano();
        c.avg_non_ignore = non_ignore;
        mv_model m;
        cr_assert(model_build(&m, &c) == 0);
        params_init(&m.params, 5);
        int B = 2, H = 64, W = 64;
        float *img = malloc(sizeof(float) * B * 3 * H * W);
        uint8_t *lab = malloc((size_t)B * H * W);
        for (int i = 0; i < B * 3 * H * W; i++) img[i] = frand(2.0f);
        memset(lab, 255, (size_t)B * H * W);
        size_t bad = step_nonfinite(&m, img, lab, B, H, W);
        cr_expect(m.loss_ce == 0.0 && m.loss_aux == 0.0, "avg_non_ignore %d: ce %g aux %g", non_ignore, m.loss_ce,
                  m.loss_aux);
        cr_expect(isfinite(m.loss_total), "avg_non_ignore %d: total %g", non_ignore, m.loss_total);
        cr_expect_eq(bad, 0, "avg_non_ignore %d: %zu gradients not finite", non_ignore, bad);
        free(img); free(lab);
        model_free(&m);
    }
}
