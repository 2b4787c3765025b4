// Every CPU op, forward and backward, against PyTorch: tests/reference/make_op_fixtures.py
// writes inputs, outputs and gradients computed in float64 (layout: docs/reference.md), and
// each case here runs the C op on the same inputs. Errors are max |c - ref| / max |ref| per
// tensor, below 1e-4.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "core/h5util.h"
#include "core/model.h"

static char g_path[512];
static hid_t g_file = -1;

// Criterion runs every test in its own process, each calling this: the fixtures are generated
// once (when missing or older than the generator) and published by rename.
static void generate(void) {
    const char *py = getenv("MV_PYTHON"), *src = getenv("MV_SRC"), *tmp = getenv("MV_TEST_TMP");
    cr_assert(py && src, "MV_PYTHON and MV_SRC must be set (ctest sets them)");
    if (!tmp) tmp = "/tmp";
    snprintf(g_path, sizeof g_path, "%s/op_fixtures.h5", tmp);
    char script[512], cmd[4096];
    snprintf(script, sizeof script, "%s/tests/reference/make_op_fixtures.py", src);
    struct stat fs, ss;
    if (stat(g_path, &fs) != 0 || stat(script, &ss) != 0 || fs.st_mtime < ss.st_mtime) {
        snprintf(cmd, sizeof cmd, "mkdir -p %s && %s %s %s.tmp%d > /dev/null && mv %s.tmp%d %s", tmp, py, script,
                 g_path, (int)getpid(), g_path, (int)getpid(), g_path);
        cr_assert(system(cmd) == 0, "fixture generator failed: %s", cmd);
    }
    g_file = h5_open_read(g_path);
    cr_assert(g_file >= 0, "%s", mv_last_error());
}
static void done(void) { if (g_file >= 0) H5Fclose(g_file); }

TestSuite(reference, .init = generate, .fini = done, .timeout = 300);

// Reads case/name, checking its element count.
static float *rd(const char *c, const char *name, size_t *n_out) {
    char full[256];
    snprintf(full, sizeof full, "%s/%s", c, name);
    int nd;
    long shape[8];
    cr_assert(h5_shape(g_file, g_path, full, &nd, shape) == 0, "%s", mv_last_error());
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    float *x = calloc(n + 1, sizeof(float));
    cr_assert(h5_read_floats(g_file, g_path, full, x, n) == 0, "%s", mv_last_error());
    if (n_out) *n_out = n;
    return x;
}

static long attr(const char *c, const char *name) {
    hid_t g = H5Gopen2(g_file, c, H5P_DEFAULT);
    cr_assert(g >= 0, "no case %s", c);
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    cr_assert(a >= 0, "case %s has no attribute %s", c, name);
    double v = 0;
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    H5Gclose(g);
    return lround(v);
}

static void close_to(const char *c, const char *name, const float *got, size_t n) {
    size_t nr;
    float *ref = rd(c, name, &nr);
    cr_assert_eq(nr, n, "%s/%s: %zu values, C computed %zu", c, name, nr, n);
    double mx = 0, err = 0;
    for (size_t i = 0; i < n; i++) { mx = fmax(mx, fabs(ref[i])); err = fmax(err, fabs((double)ref[i] - got[i])); }
    double rel = mx > 0 ? err / mx : err;
    cr_expect(rel < 1e-4, "%s/%s: max error %.3g relative to max |ref| %.3g", c, name, rel, mx);
    free(ref);
}

static float *zeros(size_t n) { return calloc(n + 1, sizeof(float)); }

static void scan_case(const char *c) {
    int B = attr(c, "B"), H = attr(c, "H"), W = attr(c, "W"), E = attr(c, "E"), N = attr(c, "N"), R = attr(c, "R");
    int L = H * W, K = SCAN_K, P = R + 2 * N;
    float *x = rd(c, "x", NULL), *xpw = rd(c, "x_proj_weight", NULL), *dtw = rd(c, "dt_projs_weight", NULL);
    float *dtb = rd(c, "dt_projs_bias", NULL), *Al = rd(c, "A_logs", NULL), *Ds = rd(c, "Ds", NULL), *dy = rd(c, "dy", NULL);
    size_t nx = (size_t)B * L * E;
    float *y = zeros(nx), *xdbl = zeros((size_t)B * L * K * P), *delta = zeros(K * nx);
    float *states = zeros(ss2d_scan_states_size(B, L, E, N)), *scratch = zeros(ss2d_scan_scratch(B, L, E, R, N));
    float *gx = zeros(nx), *gxpw = zeros((size_t)K * P * E), *gdtw = zeros((size_t)K * E * R), *gdtb = zeros((size_t)K * E);
    float *gAl = zeros((size_t)K * E * N), *gDs = zeros((size_t)K * E);
    ss2d_scan_forward(y, xdbl, delta, states, x, xpw, dtw, dtb, Al, Ds, scratch, B, H, W, E, R, N);
    ss2d_scan_backward(gx, gxpw, gdtw, gdtb, gAl, gDs, dy, x, xdbl, delta, states, xpw, dtw, dtb, Al, Ds, scratch, B, H, W, E, R, N);
    close_to(c, "y", y, nx);
    close_to(c, "grad_x", gx, nx);
    close_to(c, "grad_x_proj_weight", gxpw, (size_t)K * P * E);
    close_to(c, "grad_dt_projs_weight", gdtw, (size_t)K * E * R);
    close_to(c, "grad_dt_projs_bias", gdtb, (size_t)K * E);
    close_to(c, "grad_A_logs", gAl, (size_t)K * E * N);
    close_to(c, "grad_Ds", gDs, (size_t)K * E);
    float *all[] = {x, xpw, dtw, dtb, Al, Ds, dy, y, xdbl, delta, states, scratch, gx, gxpw, gdtw, gdtb, gAl, gDs};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}
Test(reference, ss2d_scan) { scan_case("ss2d_scan"); }
Test(reference, ss2d_scan_1x1) { scan_case("ss2d_scan_1x1"); }
Test(reference, ss2d_scan_1x9) { scan_case("ss2d_scan_1x9"); }
Test(reference, ss2d_scan_d_state_16) { scan_case("ss2d_scan_d_state_16"); }

Test(reference, layernorm) {
    const char *c = "layernorm";
    size_t n, C;
    float *x = rd(c, "x", &n), *w = rd(c, "weight", &C), *b = rd(c, "bias", NULL), *dy = rd(c, "dy", NULL);
    int rows = (int)(n / C);
    float *y = zeros(n), *mean = zeros(rows), *rstd = zeros(rows), *gx = zeros(n), *gw = zeros(C), *gb = zeros(C);
    layernorm_forward(y, mean, rstd, x, w, b, rows, (int)C, 1e-5f);
    layernorm_backward(gx, gw, gb, dy, x, w, mean, rstd, rows, (int)C);
    close_to(c, "y", y, n); close_to(c, "grad_x", gx, n); close_to(c, "grad_weight", gw, C); close_to(c, "grad_bias", gb, C);
    free(x); free(w); free(b); free(dy); free(y); free(mean); free(rstd); free(gx); free(gw); free(gb);
}

static void bilinear_case(const char *c, int B, int H, int W, int C) {
    int OH = attr(c, "out_h"), OW = attr(c, "out_w");
    size_t n;
    float *x = rd(c, "x", &n), *dy = rd(c, "dy", NULL);
    size_t no = (size_t)B * OH * OW * C;
    float *y = zeros(no), *gx = zeros(n);
    bilinear_forward(y, x, B, H, W, OH, OW, C);
    bilinear_backward(gx, dy, B, H, W, OH, OW, C);
    close_to(c, "y", y, no); close_to(c, "grad_x", gx, n);
    free(x); free(dy); free(y); free(gx);
}
Test(reference, bilinear_up) { bilinear_case("bilinear_up", 2, 5, 7, 3); }
Test(reference, bilinear_down) { bilinear_case("bilinear_down", 2, 12, 9, 3); }

Test(reference, adaptive_avg_pool) {
    int scales[4] = {1, 2, 3, 6};
    for (int i = 0; i < 4; i++) {
        char c[64];
        snprintf(c, sizeof c, "adaptive_avg_pool_s%d", scales[i]);
        int S = scales[i], B = 2, H = 7, W = 10, C = 3;
        size_t n;
        float *x = rd(c, "x", &n), *dy = rd(c, "dy", NULL), *y = zeros((size_t)B * S * S * C), *gx = zeros(n);
        adaptive_avgpool_forward(y, x, B, H, W, S, C);
        adaptive_avgpool_backward(gx, dy, B, H, W, S, C);
        close_to(c, "y", y, (size_t)B * S * S * C); close_to(c, "grad_x", gx, n);
        free(x); free(dy); free(y); free(gx);
    }
}

static void conv_case(const char *c, int B, int H, int W, int IC, int OC, int K, int stride, int pad, bool bias) {
    int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
    size_t n, nw;
    float *x = rd(c, "x", &n), *w = rd(c, "weight", &nw), *b = bias ? rd(c, "bias", NULL) : NULL, *dy = rd(c, "dy", NULL);
    size_t no = (size_t)B * OH * OW * OC;
    float *y = zeros(no), *gx = zeros(n), *gw = zeros(nw), *gb = zeros(OC);
    float *scratch = zeros(conv2d_scratch(B, H, W, IC, K, stride, pad) + conv3x3_scratch(B, H, W, IC, OC));
    if (K == 3 && !bias) {   // the shifted-GEMM kernel the decoder uses
        conv3x3_forward(y, x, w, scratch, B, H, W, IC, OC);
        conv3x3_backward(gx, gw, dy, x, w, scratch, B, H, W, IC, OC);
    } else if (K == 1) {
        linear_forward(y, x, w, b, B * H * W, IC, OC);
        linear_backward(gx, gw, gb, dy, x, w, B * H * W, IC, OC);
    } else {
        conv2d_forward(y, x, w, b, scratch, B, H, W, IC, OC, K, stride, pad);
        conv2d_backward(gx, gw, gb, dy, x, w, scratch, B, H, W, IC, OC, K, stride, pad);
    }
    close_to(c, "y", y, no); close_to(c, "grad_x", gx, n); close_to(c, "grad_weight", gw, nw);
    if (bias) close_to(c, "grad_bias", gb, OC);
    free(x); free(w); free(b); free(dy); free(y); free(gx); free(gw); free(gb); free(scratch);
}
Test(reference, conv3x3) { conv_case("conv3x3", 2, 5, 6, 4, 5, 3, 1, 1, false); }
Test(reference, conv4x4s4) { conv_case("conv4x4s4", 2, 8, 12, 3, 6, 4, 4, 0, true); }
Test(reference, conv1x1) { conv_case("conv1x1", 2, 4, 5, 6, 7, 1, 1, 0, true); }

Test(reference, dwconv3x3) {
    const char *c = "dwconv3x3";
    int B = 2, H = 5, W = 6, C = 8;
    size_t n;
    float *x = rd(c, "x", &n), *w = rd(c, "weight", NULL), *b = rd(c, "bias", NULL), *dy = rd(c, "dy", NULL);
    float *y = zeros(n), *gx = zeros(n), *gw = zeros(C * 9), *gb = zeros(C);
    dwconv3x3_forward(y, x, w, b, B, H, W, C);
    dwconv3x3_backward(gx, gw, gb, dy, x, w, B, H, W, C);
    close_to(c, "y", y, n); close_to(c, "grad_x", gx, n); close_to(c, "grad_weight", gw, C * 9); close_to(c, "grad_bias", gb, C);
    free(x); free(w); free(b); free(dy); free(y); free(gx); free(gw); free(gb);
}

Test(reference, batchnorm_train) {
    const char *c = "batchnorm_train";
    size_t n, C;
    float *x = rd(c, "x", &n), *w = rd(c, "weight", &C), *b = rd(c, "bias", NULL), *dy = rd(c, "dy", NULL);
    float *rm = rd(c, "running_mean", NULL), *rv = rd(c, "running_var", NULL);
    int rows = (int)(n / C);
    float *y = zeros(n), *mean = zeros(C), *rstd = zeros(C), *gx = zeros(n), *gw = zeros(C), *gb = zeros(C);
    double scratch[64];
    mv_reducer none = {NULL, NULL};
    batchnorm_forward_train(y, mean, rstd, rm, rv, x, w, b, scratch, none, rows, (int)C, 1e-5f, 0.1f);
    batchnorm_backward(gx, gw, gb, dy, x, w, mean, rstd, scratch, none, rows, (int)C);
    close_to(c, "y", y, n); close_to(c, "running_mean_out", rm, C); close_to(c, "running_var_out", rv, C);
    close_to(c, "grad_x", gx, n); close_to(c, "grad_weight", gw, C); close_to(c, "grad_bias", gb, C);
    free(x); free(w); free(b); free(dy); free(rm); free(rv); free(y); free(mean); free(rstd); free(gx); free(gw); free(gb);
}

Test(reference, patch_merging) {
    const char *c = "patch_merging";
    int B = 2, H = 5, W = 7, C = 4, OH = 3, OW = 4, rows = B * OH * OW;
    size_t n;
    float *x = rd(c, "x", &n), *nw = rd(c, "norm.weight", NULL), *nb = rd(c, "norm.bias", NULL);
    float *rw = rd(c, "reduction.weight", NULL), *dy = rd(c, "dy", NULL);
    float *g = zeros((size_t)rows * 4 * C), *ln = zeros((size_t)rows * 4 * C), *mean = zeros(rows), *rstd = zeros(rows);
    float *y = zeros((size_t)rows * 2 * C), *dln = zeros((size_t)rows * 4 * C), *dg = zeros((size_t)rows * 4 * C);
    float *gx = zeros(n), *gnw = zeros(4 * C), *gnb = zeros(4 * C), *grw = zeros(8 * C * C);
    patch_gather_forward(g, x, B, H, W, C);
    layernorm_forward(ln, mean, rstd, g, nw, nb, rows, 4 * C, 1e-5f);
    linear_forward(y, ln, rw, NULL, rows, 4 * C, 2 * C);
    linear_backward(dln, grw, NULL, dy, ln, rw, rows, 4 * C, 2 * C);
    layernorm_backward(dg, gnw, gnb, dln, g, nw, mean, rstd, rows, 4 * C);
    patch_gather_backward(gx, dg, B, H, W, C);
    close_to(c, "y", y, (size_t)rows * 2 * C); close_to(c, "grad_x", gx, n);
    close_to(c, "grad_norm.weight", gnw, 4 * C); close_to(c, "grad_norm.bias", gnb, 4 * C);
    close_to(c, "grad_reduction.weight", grw, 8 * C * C);
    float *all[] = {x, nw, nb, rw, dy, g, ln, mean, rstd, y, dln, dg, gx, gnw, gnb, grw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

static void token_mask_case(const char *c, bool with_grads) {
    int B = 2, H = 6, W = 10, C = 3, gh = attr(c, "grid_h"), gw = attr(c, "grid_w");
    size_t n;
    float *x = rd(c, "x", &n), *P = rd(c, "P", NULL);
    double tau = 1.0;
    {   // tau is a float attribute
        hid_t g = H5Gopen2(g_file, c, H5P_DEFAULT);
        if (H5Aexists(g, "tau") > 0) { hid_t a = H5Aopen(g, "tau", H5P_DEFAULT); H5Aread(a, H5T_NATIVE_DOUBLE, &tau); H5Aclose(a); }
        H5Gclose(g);
    }
    mv_mask_args a = {attr(c, "training") != 0, false, attr(c, "mode") == 1, attr(c, "layout") == 1, (float)tau, 0, 0, 0, NULL};
    size_t L = (size_t)H * W;
    float *y = zeros(n), *m = zeros(B * L), *soft = zeros(B * L), *scratch = zeros(token_mask_scratch(H, W));
    token_mask_forward(y, m, soft, x, P, scratch, &a, B, H, W, C, gh, gw);
    close_to(c, "y", y, n);
    close_to(c, "m", m, B * L);
    if (with_grads) {
        float *dy = rd(c, "dy", NULL), *dm = rd(c, "dm", NULL), *gx = zeros(n), *gP = zeros((size_t)gh * gw * 2);
        token_mask_backward(gx, gP, dy, dm, x, m, soft, scratch, &a, B, H, W, C, gh, gw);
        close_to(c, "grad_x", gx, n);
        close_to(c, "grad_P", gP, (size_t)gh * gw * 2);
        free(dy); free(dm); free(gx); free(gP);
    }
    free(x); free(P); free(y); free(m); free(soft); free(scratch);
}
Test(reference, token_mask_residual) { token_mask_case("token_mask_residual", true); }
Test(reference, token_mask_zero) { token_mask_case("token_mask_zero", true); }
Test(reference, token_mask_official) { token_mask_case("token_mask_official", true); }
Test(reference, token_mask_eval) { token_mask_case("token_mask_eval", false); }

static void ce_case(const char *c, bool nonignore) {
    size_t n, K = (size_t)attr(c, "num_classes");
    float *z = rd(c, "logits", &n), *lab = rd(c, "labels", NULL), *dy = rd(c, "dy", NULL);
    size_t rows = n / K;
    uint8_t *y = malloc(rows);
    size_t valid = 0;
    for (size_t i = 0; i < rows; i++) { y[i] = (uint8_t)lab[i]; valid += y[i] != 255; }
    float *g = zeros(n);
    double loss = cross_entropy_forward_backward(g, z, y, (int)rows, (int)K, nonignore ? (double)valid : (double)rows, dy[0]);
    float lf = (float)loss;
    close_to(c, "loss", &lf, 1);
    close_to(c, "grad_logits", g, n);
    free(z); free(lab); free(dy); free(y); free(g);
}
Test(reference, cross_entropy) { ce_case("cross_entropy", false); }
Test(reference, cross_entropy_nonignore) { ce_case("cross_entropy_nonignore", true); }

// A whole VSS block through the model's own block code (registry, planning, forward, backward).
Test(reference, ss2d_block) {
    const char *c = "ss2d_block";
    int B = attr(c, "B"), H = attr(c, "H"), W = attr(c, "W"), C = attr(c, "C"), N = attr(c, "N");
    mv_model_config cfg;
    model_config_preset(&cfg, "maskvim-nano");
    cfg.d_state = N;
    mv_block blk = {0};
    blk.in_dim = blk.C = C; blk.E = 2 * C; blk.R = attr(c, "R"); blk.N = N; blk.id = 1; blk.ratio_group = -1;
    mv_params p = {0};
    block_register(&blk, &p, "blk", &cfg);
    params_allocate(&p);
    for (int i = 0; i < p.count; i++) {
        size_t cnt;
        float *v = rd(c, p.items[i].name + 4, &cnt);
        cr_assert_eq(cnt, p.items[i].numel, "%s", p.items[i].name);
        memcpy(*p.items[i].ptr, v, sizeof(float) * cnt);
        free(v);
    }
    size_t n;
    float *x = rd(c, "x", &n), *dy = rd(c, "dy", NULL), *gx = zeros(n);
    mv_arena A = {0}, D = {0}, G = {0};
    block_plan(&blk, &A, &D, &G, x, gx, B, H, W);
    // The internal gradients start as garbage: the block's backward zeroes them itself.
    float *am = zeros(A.used), *dm = zeros(D.used), *gm = malloc(sizeof(float) * G.used), *scratch = zeros(A.scratch);
    cr_assert(gm);
    for (size_t i = 0; i < G.used; i++) gm[i] = (float)(i % 7) - 3.0f;
    mv_arena A2 = {am, 0, 0}, D2 = {dm, 0, 0}, G2 = {gm, 0, 0};
    block_plan(&blk, &A2, &D2, &G2, x, gx, B, H, W);
    mv_run_ctx ctx = {.training = true, .world_size = 1};
    block_forward(&blk, scratch, &cfg, &ctx, B);
    close_to(c, "y", blk.out, n);
    memcpy(blk.d_out, dy, sizeof(float) * n);
    block_backward(&blk, scratch, &cfg, &ctx, B);
    close_to(c, "grad_x", gx, n);
    char name[128];
    for (int i = 0; i < p.count; i++) {
        snprintf(name, sizeof name, "grad_%s", p.items[i].name + 4);
        close_to(c, name, *p.items[i].gptr, p.items[i].numel);
    }
    free(x); free(dy); free(gx); free(am); free(dm); free(gm); free(scratch);
    params_free(&p);
}
