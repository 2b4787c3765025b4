// Every CUDA op against its CPU op (kernels/cpu), forward and backward, on random inputs, plus
// the device Philox against core/rng.c, run-to-run determinism of the reductions, and a one-rank
// NCCL check. A plain program (ctest: test_cuda_ops); without a GPU it prints a SKIP line and
// passes. Linked against the host emulation (test_cuda_ops_emu) it runs the same checks on the
// CPU with smaller shapes.
//
// Error measure: ||gpu - cpu||_2 / ||cpu||_2 over the whole tensor (ggml's normalised error),
// below 1e-4 in fp32 (FP32_TOL). TF32 GEMMs are checked at 5e-3 (TF32_TOL): TF32 rounds the
// GEMM inputs to 10-bit mantissas (relative 2^-11 each), which gives about 1e-3 per product and
// a few 1e-4 on sums of random-sign products. BF16 mode (operands rounded to 8-bit mantissas,
// relative 2^-9) is checked at 2e-2 (BF16_TOL); the scan, whose projections go through softplus
// and exp and accumulate over the sequence, at twice the GEMM tolerances. Measured errors are
// about a tenth of each tolerance (docs/cuda.md). Gradient buffers start with random values on
// both sides, so the "backward adds" contract is checked too. The loss helpers
// (kernels/cpu/ops_loss.h) and AdamW are checked against their CPU twins.
#include "kernels/cuda/ops_cuda.h"
#include "core/rng.h"
#include "core/error.h"
#include "core/adamw.h"
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP32_TOL 1e-4
#define TF32_TOL 5e-3
#define BF16_TOL 2e-2
#define SCAN_TF32_TOL 1e-2
#define SCAN_BF16_TOL 5e-2

// The tolerance of a GEMM-fed output in a precision mode (the scan compounds its projections'
// errors through softplus and exp, hence its own pair), and the op's name in that mode.
static double gemm_tol(mv_cuda_precision p, bool scan) {
    if (p == MV_PREC_TF32) return scan ? SCAN_TF32_TOL : TF32_TOL;
    if (p == MV_PREC_BF16) return scan ? SCAN_BF16_TOL : BF16_TOL;
    return FP32_TOL;
}

static void op_name(char *buf, size_t size, const char *op, mv_cuda_precision p) {
    if (p == MV_PREC_FP32) snprintf(buf, size, "%s", op);
    else snprintf(buf, size, "%s (%s)", op, p == MV_PREC_TF32 ? "TF32" : "BF16");
}

static int g_checks, g_failed;
static bool g_emu;

// ---- buffers: everything a check allocates is released by release_all() ----------------------
#define MAX_BUFS 512
static void *g_host[MAX_BUFS], *g_dev[MAX_BUFS];
static int g_nhost, g_ndev;

static void die_cuda(cudaError_t e, const char *what) {
    fprintf(stderr, "test_cuda_ops: %s: %s\n", what, cudaGetErrorString(e));
    exit(1);
}

static float *hbuf(size_t n) {
    if (g_nhost == MAX_BUFS) { fprintf(stderr, "test_cuda_ops: too many host buffers\n"); exit(1); }
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "test_cuda_ops: out of host memory\n"); exit(1); }
    return g_host[g_nhost++] = p;
}

static void *dbuf_bytes(size_t bytes) {
    if (g_ndev == MAX_BUFS) { fprintf(stderr, "test_cuda_ops: too many device buffers\n"); exit(1); }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 4);
    if (e != cudaSuccess) die_cuda(e, "cudaMalloc");
    e = cudaMemset(p, 0, bytes ? bytes : 4);
    if (e != cudaSuccess) die_cuda(e, "cudaMemset");
    return g_dev[g_ndev++] = p;
}

static float *dbuf(size_t n) { return dbuf_bytes(sizeof(float) * n); }

static void upload_bytes(void *d, const void *h, size_t bytes) {
    cudaError_t e = cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) die_cuda(e, "cudaMemcpy to device");
}

static void download_bytes(void *h, const void *d, size_t bytes) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) die_cuda(e, "a kernel");
    e = cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) die_cuda(e, "cudaMemcpy to host");
}

// A device copy of one host double.
static double *dcopy_bytes_helper(const double *h) {
    double *d = dbuf_bytes(sizeof(double));
    upload_bytes(d, h, sizeof(double));
    return d;
}

// A device copy of host data.
static float *dcopy(const float *h, size_t n) {
    float *d = dbuf(n);
    upload_bytes(d, h, sizeof(float) * n);
    return d;
}

// A host copy of host data (the CPU op's own buffer, same starting values as the device's).
static float *hcopy(const float *h, size_t n) {
    float *c = hbuf(n);
    memcpy(c, h, sizeof(float) * n);
    return c;
}

static void release_all(void) {
    while (g_nhost) free(g_host[--g_nhost]);
    while (g_ndev) cudaFree(g_dev[--g_ndev]);
}

// ---- random inputs: a counter-based generator, so every run sees the same data ---------------
static uint32_t g_seed = 1;

static float *hrand(size_t n, float lo, float hi) {
    float *p = hbuf(n);
    uint32_t s = g_seed++;
    for (size_t i = 0; i < n; i++) {
        mv_rng4 r = philox4x32(99, s, (uint32_t)i, (uint32_t)(i >> 32), 7);
        p[i] = lo + (hi - lo) * rng_u01(r.v[0]);
    }
    return p;
}

// ---- comparisons ------------------------------------------------------------------------------
static void record(const char *op, const char *what, double err, double tol, const char *detail) {
    bool ok = err < tol;   // false for NaN too
    g_checks++;
    if (!ok) g_failed++;
    printf("%s %-34s %-14s err %.2e (tol %.0e)%s%s\n", ok ? "PASS" : "FAIL", op, what, err, tol,
           detail ? "  " : "", detail ? detail : "");
}

// Normalised error of a device tensor against the CPU's.
static void check(const char *op, const char *what, const float *dev, const float *cpu, size_t n, double tol) {
    float *got = hbuf(n);
    download_bytes(got, dev, sizeof(float) * n);
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - cpu[i];
        num += d * d;
        den += (double)cpu[i] * cpu[i];
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    record(op, what, err, tol, NULL);
}

// Bitwise equality of two device tensors (determinism) or of a device tensor and host words.
static void check_same_bits(const char *op, const char *what, const void *dev_a, const void *b_host, size_t bytes) {
    unsigned char *got = (unsigned char *)hbuf((bytes + 3) / 4);
    download_bytes(got, dev_a, bytes);
    size_t diff = 0;
    for (size_t i = 0; i < bytes; i++) diff += got[i] != ((const unsigned char *)b_host)[i];
    char detail[64];
    snprintf(detail, sizeof detail, "(%zu differing bytes)", diff);
    record(op, what, diff ? 1.0 : 0.0, 0.5, detail);
}

static float *download(const float *dev, size_t n) {
    float *h = hbuf(n);
    download_bytes(h, dev, sizeof(float) * n);
    return h;
}

static const cudaStream_t S = 0;

// ---- linear -----------------------------------------------------------------------------------
static void test_linear(int N, int IC, int OC, mv_cuda_precision prec) {
    char op[64];
    op_name(op, sizeof op, "linear", prec);
    double tol = gemm_tol(prec, false);
    mv_cuda_set_precision(prec);
    float *in = hrand((size_t)N * IC, -1, 1), *w = hrand((size_t)OC * IC, -0.5f, 0.5f), *b = hrand(OC, -1, 1);
    float *dout = hrand((size_t)N * OC, -1, 1);
    float *din0 = hrand((size_t)N * IC, -1, 1), *dw0 = hrand((size_t)OC * IC, -1, 1), *db0 = hrand(OC, -1, 1);
    float *out = hbuf((size_t)N * OC), *din = hcopy(din0, (size_t)N * IC), *dw = hcopy(dw0, (size_t)OC * IC);
    float *db = hcopy(db0, OC);
    linear_forward(out, in, w, b, N, IC, OC);
    linear_backward(din, dw, db, dout, in, w, N, IC, OC);
    float *d_in = dcopy(in, (size_t)N * IC), *d_w = dcopy(w, (size_t)OC * IC), *d_b = dcopy(b, OC);
    float *d_dout = dcopy(dout, (size_t)N * OC), *d_out = dbuf((size_t)N * OC);
    float *d_din = dcopy(din0, (size_t)N * IC), *d_dw = dcopy(dw0, (size_t)OC * IC), *d_db = dcopy(db0, OC);
    linear_forward_cuda(d_out, d_in, d_w, d_b, N, IC, OC, S);
    linear_backward_cuda(d_din, d_dw, d_db, d_dout, d_in, d_w, N, IC, OC, S);
    check(op, "out", d_out, out, (size_t)N * OC, tol);
    check(op, "din", d_din, din, (size_t)N * IC, tol);
    check(op, "dw", d_dw, dw, (size_t)OC * IC, tol);
    check(op, "db", d_db, db, OC, FP32_TOL);   // a column sum: no GEMM
    // No bias, and NULL gradients are skipped.
    linear_forward(out, in, w, NULL, N, IC, OC);
    linear_forward_cuda(d_out, d_in, d_w, NULL, N, IC, OC, S);
    check(op, "out (no bias)", d_out, out, (size_t)N * OC, tol);
    linear_backward_cuda(NULL, NULL, NULL, d_dout, d_in, d_w, N, IC, OC, S);
    check(op, "NULL grads", d_dw, dw, (size_t)OC * IC, tol);
    mv_cuda_set_precision(MV_PREC_FP32);
    release_all();
}

// ---- convolutions -----------------------------------------------------------------------------
static void test_conv2d(int B, int H, int W, int IC, int OC, int K, int stride, int pad, mv_cuda_precision prec) {
    char op[64];
    op_name(op, sizeof op, "conv2d", prec);
    double tol = gemm_tol(prec, false);
    int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
    size_t nin = (size_t)B * H * W * IC, nout = (size_t)B * OH * OW * OC, nw = (size_t)OC * IC * K * K;
    float *in = hrand(nin, -1, 1), *w = hrand(nw, -0.3f, 0.3f), *b = hrand(OC, -1, 1), *dout = hrand(nout, -1, 1);
    float *din0 = hrand(nin, -1, 1), *dw0 = hrand(nw, -1, 1), *db0 = hrand(OC, -1, 1);
    float *out = hbuf(nout), *din = hcopy(din0, nin), *dw = hcopy(dw0, nw), *db = hcopy(db0, OC);
    float *scratch = hbuf(conv2d_scratch(B, H, W, IC, K, stride, pad));
    conv2d_forward(out, in, w, b, scratch, B, H, W, IC, OC, K, stride, pad);
    conv2d_backward(din, dw, db, dout, in, w, scratch, B, H, W, IC, OC, K, stride, pad);
    float *d_in = dcopy(in, nin), *d_w = dcopy(w, nw), *d_b = dcopy(b, OC), *d_dout = dcopy(dout, nout);
    float *d_out = dbuf(nout), *d_din = dcopy(din0, nin), *d_dw = dcopy(dw0, nw), *d_db = dcopy(db0, OC);
    float *d_scr = dbuf(conv2d_scratch_cuda(B, H, W, IC, K, stride, pad));
    mv_cuda_set_precision(prec);
    conv2d_forward_cuda(d_out, d_in, d_w, d_b, d_scr, B, H, W, IC, OC, K, stride, pad, S);
    conv2d_backward_cuda(d_din, d_dw, d_db, d_dout, d_in, d_w, d_scr, B, H, W, IC, OC, K, stride, pad, S);
    mv_cuda_set_precision(MV_PREC_FP32);
    char what[64];
    snprintf(what, sizeof what, "out k%d s%d p%d", K, stride, pad);
    check(op, what, d_out, out, nout, tol);
    check(op, "din", d_din, din, nin, tol);
    check(op, "dw", d_dw, dw, nw, tol);
    check(op, "db", d_db, db, OC, FP32_TOL);   // a column sum: no GEMM
    release_all();
}

static void test_conv3x3(int B, int H, int W, int IC, int OC, mv_cuda_precision prec) {
    char op[64];
    op_name(op, sizeof op, "conv3x3", prec);
    double tol = gemm_tol(prec, false);
    size_t nin = (size_t)B * H * W * IC, nout = (size_t)B * H * W * OC, nw = (size_t)OC * IC * 9;
    float *in = hrand(nin, -1, 1), *w = hrand(nw, -0.3f, 0.3f), *dout = hrand(nout, -1, 1);
    float *din0 = hrand(nin, -1, 1), *dw0 = hrand(nw, -1, 1);
    float *out = hbuf(nout), *din = hcopy(din0, nin), *dw = hcopy(dw0, nw);
    float *scratch = hbuf(conv3x3_scratch(B, H, W, IC, OC));
    conv3x3_forward(out, in, w, scratch, B, H, W, IC, OC);
    conv3x3_backward(din, dw, dout, in, w, scratch, B, H, W, IC, OC);
    float *d_in = dcopy(in, nin), *d_w = dcopy(w, nw), *d_dout = dcopy(dout, nout), *d_out = dbuf(nout);
    float *d_din = dcopy(din0, nin), *d_dw = dcopy(dw0, nw), *d_scr = dbuf(conv3x3_scratch_cuda(B, H, W, IC, OC));
    mv_cuda_set_precision(prec);
    conv3x3_forward_cuda(d_out, d_in, d_w, d_scr, B, H, W, IC, OC, S);
    conv3x3_backward_cuda(d_din, d_dw, d_dout, d_in, d_w, d_scr, B, H, W, IC, OC, S);
    // The forward alone in its own, smaller scratch (inference plans): the same bits.
    float *d_out2 = dbuf(nout), *d_fscr = dbuf(conv3x3_forward_scratch_cuda(B, H, W, IC, OC));
    conv3x3_forward_cuda(d_out2, d_in, d_w, d_fscr, B, H, W, IC, OC, S);
    mv_cuda_set_precision(MV_PREC_FP32);
    check(op, "out", d_out, out, nout, tol);
    check(op, "din", d_din, din, nin, tol);
    check(op, "dw", d_dw, dw, nw, tol);
    check_same_bits(op, "out in the forward scratch", d_out2, download(d_out, nout), sizeof(float) * nout);
    release_all();
}

// The forwards that may run in place (kernels/cpu/ops.h, "In place"): out == in gives the bits
// of out of place.
static void test_in_place(int B, int HW, int C) {
    const char *op = "in place";
    size_t n = (size_t)B * HW * C;
    float *x = hrand(n, -4, 4), *y = hrand(n, -3, 3), *keep = hrand((size_t)B * C, 0, 2);
    float *w = hrand(C, -1, 1), *b = hrand(C, -1, 1), *rm = hrand(C, -1, 1), *rv = hrand(C, 0.1f, 2);
    float *d_x = dcopy(x, n), *d_y = dcopy(y, n), *d_keep = dcopy(keep, (size_t)B * C), *d_w = dcopy(w, C);
    float *d_b = dcopy(b, C), *d_rm = dcopy(rm, C), *d_rv = dcopy(rv, C), *d_out = dbuf(n), *d_io = dbuf(n);
#define SAME(name, call_out, call_in)                                                           \
    do {                                                                                        \
        upload_bytes(d_io, x, sizeof(float) * n);                                               \
        call_out;                                                                               \
        call_in;                                                                                \
        check_same_bits(op, name, d_io, download(d_out, n), sizeof(float) * n);                 \
    } while (0)
    SAME("silu_forward", silu_forward_cuda(d_out, d_x, n, S), silu_forward_cuda(d_io, d_io, n, S));
    SAME("relu_forward", relu_forward_cuda(d_out, d_x, n, S), relu_forward_cuda(d_io, d_io, n, S));
    SAME("mul_forward out == a", mul_forward_cuda(d_out, d_x, d_y, n, S), mul_forward_cuda(d_io, d_io, d_y, n, S));
    SAME("mul_forward out == b", mul_forward_cuda(d_out, d_y, d_x, n, S), mul_forward_cuda(d_io, d_y, d_io, n, S));
    SAME("add_forward out == a", add_forward_cuda(d_out, d_x, d_y, n, S), add_forward_cuda(d_io, d_io, d_y, n, S));
    SAME("add_forward out == b", add_forward_cuda(d_out, d_y, d_x, n, S), add_forward_cuda(d_io, d_y, d_io, n, S));
    SAME("channel_scale_forward", channel_scale_forward_cuda(d_out, d_x, d_keep, B, HW, C, S),
         channel_scale_forward_cuda(d_io, d_io, d_keep, B, HW, C, S));
    SAME("batchnorm_forward_eval", batchnorm_forward_eval_cuda(d_out, d_x, d_w, d_b, d_rm, d_rv, B * HW, C, 1e-5f, S),
         batchnorm_forward_eval_cuda(d_io, d_io, d_w, d_b, d_rm, d_rv, B * HW, C, 1e-5f, S));
#undef SAME
    release_all();
}

static void test_dwconv(int B, int H, int W, int C) {
    const char *op = "dwconv3x3";
    size_t n = (size_t)B * H * W * C, nw = (size_t)C * 9;
    float *in = hrand(n, -1, 1), *w = hrand(nw, -0.5f, 0.5f), *b = hrand(C, -1, 1), *dout = hrand(n, -1, 1);
    float *din0 = hrand(n, -1, 1), *dw0 = hrand(nw, -1, 1), *db0 = hrand(C, -1, 1);
    float *out = hbuf(n), *din = hcopy(din0, n), *dw = hcopy(dw0, nw), *db = hcopy(db0, C);
    dwconv3x3_forward(out, in, w, b, B, H, W, C);
    dwconv3x3_backward(din, dw, db, dout, in, w, B, H, W, C);
    float *d_in = dcopy(in, n), *d_w = dcopy(w, nw), *d_b = dcopy(b, C), *d_dout = dcopy(dout, n), *d_out = dbuf(n);
    float *d_din = dcopy(din0, n), *d_dw = dcopy(dw0, nw), *d_db = dcopy(db0, C);
    dwconv3x3_forward_cuda(d_out, d_in, d_w, d_b, B, H, W, C, S);
    dwconv3x3_backward_cuda(d_din, d_dw, d_db, d_dout, d_in, d_w, B, H, W, C, S);
    check(op, "out", d_out, out, n, FP32_TOL);
    check(op, "din", d_din, din, n, FP32_TOL);
    check(op, "dw", d_dw, dw, nw, FP32_TOL);
    check(op, "db", d_db, db, C, FP32_TOL);
    release_all();
}

// ---- normalisation ----------------------------------------------------------------------------
// scale != 1: rows of that magnitude (1e20 overflows a float sum of squares), every third row
// constant (variance 0: the output is the bias).
static void test_layernorm(int N, int C, float scale) {
    char op[64];
    snprintf(op, sizeof op, scale == 1.0f ? "layernorm" : "layernorm rows ~%g", scale);
    size_t n = (size_t)N * C;
    float *in = hrand(n, -2, 3), *w = hrand(C, 0.5f, 1.5f), *b = hrand(C, -1, 1), *dout = hrand(n, -1, 1);
    if (scale != 1.0f)
        for (size_t i = 0; i < n; i++) in[i] = (i / C) % 3 == 0 ? 0.7f * scale : in[i] * scale;
    float *din0 = hrand(n, -1, 1), *dw0 = hrand(C, -1, 1), *db0 = hrand(C, -1, 1);
    float *out = hbuf(n), *mean = hbuf(N), *rstd = hbuf(N);
    float *din = hcopy(din0, n), *dw = hcopy(dw0, C), *db = hcopy(db0, C);
    layernorm_forward(out, mean, rstd, in, w, b, N, C, 1e-5f);
    layernorm_backward(din, dw, db, dout, in, w, mean, rstd, N, C);
    float *d_in = dcopy(in, n), *d_w = dcopy(w, C), *d_b = dcopy(b, C), *d_dout = dcopy(dout, n);
    float *d_out = dbuf(n), *d_mean = dbuf(N), *d_rstd = dbuf(N);
    float *d_din = dcopy(din0, n), *d_dw = dcopy(dw0, C), *d_db = dcopy(db0, C);
    layernorm_forward_cuda(d_out, d_mean, d_rstd, d_in, d_w, d_b, N, C, 1e-5f, S);
    layernorm_backward_cuda(d_din, d_dw, d_db, d_dout, d_in, d_w, d_mean, d_rstd, N, C, S);
    check(op, "out", d_out, out, n, FP32_TOL);
    check(op, "mean", d_mean, mean, N, FP32_TOL);
    check(op, "rstd", d_rstd, rstd, N, FP32_TOL);
    check(op, "din", d_din, din, n, FP32_TOL);
    check(op, "dw", d_dw, dw, C, FP32_TOL);
    check(op, "db", d_db, db, C, FP32_TOL);
    release_all();
}

// SyncBN hooks that double the statistics, as two ranks holding the same images would.
static void double_host(void *ctx, double *buf, int n) {
    (void)ctx;
    for (int i = 0; i < n; i++) buf[i] *= 2;
}

static void double_dev(void *ctx, double *dev_buf, int n, cudaStream_t stream) {
    (void)ctx;
    (void)stream;
    double *h = malloc(sizeof(double) * n);
    if (!h) exit(1);
    download_bytes(h, dev_buf, sizeof(double) * n);
    for (int i = 0; i < n; i++) h[i] *= 2;
    upload_bytes(dev_buf, h, sizeof(double) * n);
    free(h);
}

static void test_batchnorm(int N, int C, bool sync) {
    const char *op = sync ? "batchnorm (SyncBN hook)" : "batchnorm";
    size_t n = (size_t)N * C;
    float *in = hrand(n, -1, 2), *w = hrand(C, 0.5f, 1.5f), *b = hrand(C, -1, 1), *dout = hrand(n, -1, 1);
    float *rm0 = hrand(C, -0.5f, 0.5f), *rv0 = hrand(C, 0.5f, 1.5f);
    float *din0 = hrand(n, -1, 1), *dw0 = hrand(C, -1, 1), *db0 = hrand(C, -1, 1);
    float *out = hbuf(n), *mean = hbuf(C), *rstd = hbuf(C), *rm = hcopy(rm0, C), *rv = hcopy(rv0, C);
    float *din = hcopy(din0, n), *dw = hcopy(dw0, C), *db = hcopy(db0, C), *eval = hbuf(n);
    double *scratch = malloc(sizeof(double) * batchnorm_scratch(C));
    mv_reducer red = {sync ? double_host : NULL, NULL};
    batchnorm_forward_train(out, mean, rstd, rm, rv, in, w, b, scratch, red, N, C, 1e-5f, 0.1f);
    batchnorm_backward(din, dw, db, dout, in, w, mean, rstd, scratch, red, N, C);
    batchnorm_forward_eval(eval, in, w, b, rm, rv, N, C, 1e-5f);
    free(scratch);
    float *d_in = dcopy(in, n), *d_w = dcopy(w, C), *d_b = dcopy(b, C), *d_dout = dcopy(dout, n);
    float *d_out = dbuf(n), *d_mean = dbuf(C), *d_rstd = dbuf(C), *d_rm = dcopy(rm0, C), *d_rv = dcopy(rv0, C);
    float *d_din = dcopy(din0, n), *d_dw = dcopy(dw0, C), *d_db = dcopy(db0, C), *d_eval = dbuf(n);
    double *d_scr = dbuf_bytes(sizeof(double) * batchnorm_scratch_cuda(C));
    mv_reducer_cuda dred = {sync ? double_dev : NULL, NULL};
    batchnorm_forward_train_cuda(d_out, d_mean, d_rstd, d_rm, d_rv, d_in, d_w, d_b, d_scr, dred, N, C, 1e-5f, 0.1f, S);
    batchnorm_backward_cuda(d_din, d_dw, d_db, d_dout, d_in, d_w, d_mean, d_rstd, d_scr, dred, N, C, S);
    batchnorm_forward_eval_cuda(d_eval, d_in, d_w, d_b, d_rm, d_rv, N, C, 1e-5f, S);
    check(op, "out", d_out, out, n, FP32_TOL);
    check(op, "mean", d_mean, mean, C, FP32_TOL);
    check(op, "rstd", d_rstd, rstd, C, FP32_TOL);
    check(op, "running_mean", d_rm, rm, C, FP32_TOL);
    check(op, "running_var", d_rv, rv, C, FP32_TOL);
    check(op, "din", d_din, din, n, FP32_TOL);
    check(op, "dw", d_dw, dw, C, FP32_TOL);
    check(op, "db", d_db, db, C, FP32_TOL);
    check(op, "eval out", d_eval, eval, n, FP32_TOL);
    release_all();
}

// ---- pointwise --------------------------------------------------------------------------------
static void test_activations(size_t n) {
    float *in = hrand(n, -30, 30), *dout = hrand(n, -1, 1), *din0 = hrand(n, -1, 1);
    float *d_in = dcopy(in, n), *d_dout = dcopy(dout, n), *d_out = dbuf(n), *d_din = dbuf(n);
    float *out = hbuf(n), *din = hbuf(n);
    const char *names[2] = {"relu", "silu"};
    for (int a = 0; a < 2; a++) {
        memcpy(din, din0, sizeof(float) * n);
        upload_bytes(d_din, din0, sizeof(float) * n);
        if (a == 0) {
            relu_forward(out, in, n);
            relu_backward(din, dout, out, n);
            relu_forward_cuda(d_out, d_in, n, S);
            relu_backward_cuda(d_din, d_dout, d_out, n, S);
        } else {
            silu_forward(out, in, n);
            silu_backward(din, dout, in, n);
            silu_forward_cuda(d_out, d_in, n, S);
            silu_backward_cuda(d_din, d_dout, d_in, n, S);
        }
        check(names[a], "out", d_out, out, n, FP32_TOL);
        check(names[a], "din", d_din, din, n, FP32_TOL);
    }
    // A NaN must pass through every activation, as on the CPU and in PyTorch: a ReLU that maps
    // it to 0 hides a diverged activation from the loss.
    float nan_in[2] = {NAN, -1.0f};
    float *d_nan = dcopy(nan_in, 2), *d_nan_out = dbuf(2);
    void (*fwd[2])(float *, const float *, size_t, cudaStream_t) = {relu_forward_cuda, silu_forward_cuda};
    for (int a = 0; a < 2; a++) {
        fwd[a](d_nan_out, d_nan, 2, S);
        float *got = download(d_nan_out, 2);
        record(names[a], "NaN passes", isnan(got[0]) ? 0.0 : 1.0, 0.5, NULL);
    }
    release_all();
}

static void test_elementwise(int N, int C_out, int off, int C_in) {
    size_t n = (size_t)N * C_in, no = (size_t)N * C_out;
    float *a = hrand(n, -1, 1), *b = hrand(n, -1, 1), *dout = hrand(n, -1, 1);
    float *da0 = hrand(n, -1, 1), *db0 = hrand(n, -1, 1);
    float *out = hbuf(n), *da = hcopy(da0, n), *db = hcopy(db0, n);
    float *d_a = dcopy(a, n), *d_b = dcopy(b, n), *d_dout = dcopy(dout, n), *d_out = dbuf(n);
    float *d_da = dcopy(da0, n), *d_db = dcopy(db0, n);
    mul_forward(out, a, b, n);
    mul_backward(da, db, dout, a, b, n);
    mul_forward_cuda(d_out, d_a, d_b, n, S);
    mul_backward_cuda(d_da, d_db, d_dout, d_a, d_b, n, S);
    check("mul", "out", d_out, out, n, FP32_TOL);
    check("mul", "da", d_da, da, n, FP32_TOL);
    check("mul", "db", d_db, db, n, FP32_TOL);
    add_forward(out, a, b, n);
    add_forward_cuda(d_out, d_a, d_b, n, S);
    check("add", "out", d_out, out, n, FP32_TOL);
    accumulate(da, dout, n);
    accumulate_cuda(d_da, d_dout, n, S);
    check("accumulate", "dst", d_da, da, n, FP32_TOL);
    // Channel slice into a wider tensor and back.
    float *wide0 = hrand(no, -1, 1), *wide = hcopy(wide0, no), *d_wide = dcopy(wide0, no);
    channel_slice_forward(wide, a, N, C_out, off, C_in);
    channel_slice_forward_cuda(d_wide, d_a, N, C_out, off, C_in, S);
    check("channel_slice", "out", d_wide, wide, no, FP32_TOL);
    channel_slice_backward(db, wide, N, C_out, off, C_in);
    channel_slice_backward_cuda(d_db, d_wide, N, C_out, off, C_in, S);
    check("channel_slice", "din", d_db, db, n, FP32_TOL);
    // Layout changes on a 2 x 5 x (N/10) image of C_in channels.
    int B = 2, H = 5, W = N / 10, C = C_in;
    size_t ni = (size_t)B * H * W * C;
    float *img = hrand(ni, -1, 1), *t1 = hbuf(ni), *d_img = dcopy(img, ni), *d_t1 = dbuf(ni);
    nchw_to_nhwc(t1, img, B, C, H, W);
    nchw_to_nhwc_cuda(d_t1, d_img, B, C, H, W, S);
    check("nchw_to_nhwc", "out", d_t1, t1, ni, FP32_TOL);
    nhwc_to_nchw(t1, img, B, H, W, C);
    nhwc_to_nchw_cuda(d_t1, d_img, B, H, W, C, S);
    check("nhwc_to_nchw", "out", d_t1, t1, ni, FP32_TOL);
    release_all();
}

static void test_patch_gather(int B, int H, int W, int C) {
    int OH = (H + 1) / 2, OW = (W + 1) / 2;
    size_t nin = (size_t)B * H * W * C, nout = (size_t)B * OH * OW * 4 * C;
    float *in = hrand(nin, -1, 1), *dout = hrand(nout, -1, 1), *din0 = hrand(nin, -1, 1);
    float *out = hbuf(nout), *din = hcopy(din0, nin);
    patch_gather_forward(out, in, B, H, W, C);
    patch_gather_backward(din, dout, B, H, W, C);
    float *d_in = dcopy(in, nin), *d_dout = dcopy(dout, nout), *d_out = dbuf(nout), *d_din = dcopy(din0, nin);
    patch_gather_forward_cuda(d_out, d_in, B, H, W, C, S);
    patch_gather_backward_cuda(d_din, d_dout, B, H, W, C, S);
    check("patch_gather", "out", d_out, out, nout, FP32_TOL);
    check("patch_gather", "din", d_din, din, nin, FP32_TOL);
    release_all();
}

// ---- the selective scan ------------------------------------------------------------------------
// alog_shift moves every A_log: about -4.6 makes the decays weak (|A| near 0.01), so a state
// carries across many chunks and the chaining of chunks is what y and the gradients hinge on.
// dt_shift moves dt's pre-activation (dt_projs_bias): -12 and -20 reach where softplus' must
// not be formed as 1 - exp(-softplus), +50 saturates softplus.
static void test_scan_dt(int B, int H, int W, int E, int R, int N, float alog_shift, float dt_shift,
                         mv_cuda_precision prec) {
    char op[96], base[80], dts[24] = "";
    if (dt_shift != 0.0f) snprintf(dts, sizeof dts, " dt z~%g", dt_shift);
    snprintf(base, sizeof base, "ss2d_scan B%d %dx%d E%d R%d N%d%s%s", B, H, W, E, R, N,
             alog_shift != 0.0f ? " long memory" : "", dts);
    op_name(op, sizeof op, base, prec);
    double tol = gemm_tol(prec, true);
    const int K = SCAN_K, L = H * W, P = R + 2 * N;
    size_t nx = (size_t)B * L * E, nxp = (size_t)K * P * E, ndw = (size_t)K * E * R, nke = (size_t)K * E;
    size_t nA = nke * N, nxd = (size_t)B * L * K * P, nst = ss2d_scan_states_size(B, L, E, N);
    float *x = hrand(nx, -1, 1), *dy = hrand(nx, -1, 1), *xpw = hrand(nxp, -0.5f, 0.5f);
    float *dtw = hrand(ndw, -0.5f, 0.5f), *dtb = hrand(nke, -1, 1), *Ds = hrand(nke, -1, 1);
    for (size_t i = 0; i < nke; i++) dtb[i] += dt_shift;
    float *Al = hbuf(nA);
    for (size_t i = 0; i < nA; i++) Al[i] = logf((float)(i % N) + 1.0f) + 0.1f * (float)((i * 7) % 5) - 0.2f + alog_shift;
    float *gx0 = hrand(nx, -1, 1), *gxpw0 = hrand(nxp, -1, 1), *gdtw0 = hrand(ndw, -1, 1);
    float *gdtb0 = hrand(nke, -1, 1), *gAl0 = hrand(nA, -1, 1), *gDs0 = hrand(nke, -1, 1);
    if (dt_shift != 0.0f) {   // the dt gradients are tiny there: start from 0 so that they show
        memset(gdtw0, 0, sizeof(float) * ndw);
        memset(gdtb0, 0, sizeof(float) * nke);
    }
    // CPU reference.
    float *y = hbuf(nx), *xdbl = hbuf(nxd), *delta = hbuf((size_t)K * nx), *states = hbuf(nst);
    float *scr = hbuf(ss2d_scan_scratch(B, L, E, R, N));
    float *gx = hcopy(gx0, nx), *gxpw = hcopy(gxpw0, nxp), *gdtw = hcopy(gdtw0, ndw), *gdtb = hcopy(gdtb0, nke);
    float *gAl = hcopy(gAl0, nA), *gDs = hcopy(gDs0, nke);
    ss2d_scan_forward(y, xdbl, delta, states, x, xpw, dtw, dtb, Al, Ds, scr, B, H, W, E, R, N);
    ss2d_scan_backward(gx, gxpw, gdtw, gdtb, gAl, gDs, dy, x, xdbl, delta, states, xpw, dtw, dtb, Al, Ds, scr,
                       B, H, W, E, R, N);
    // GPU, twice for the determinism check.
    float *d_x = dcopy(x, nx), *d_dy = dcopy(dy, nx), *d_xpw = dcopy(xpw, nxp), *d_dtw = dcopy(dtw, ndw);
    float *d_dtb = dcopy(dtb, nke), *d_Al = dcopy(Al, nA), *d_Ds = dcopy(Ds, nke);
    float *d_y = dbuf(nx), *d_xdbl = dbuf(nxd), *d_delta = dbuf((size_t)K * nx);
    float *d_states = dbuf(ss2d_scan_states_size_cuda(B, L, E, N));
    float *d_scr = dbuf(ss2d_scan_scratch_cuda(B, L, E, R, N));
    float *d_g[2][6];
    for (int r = 0; r < 2; r++) {
        d_g[r][0] = dcopy(gx0, nx);
        d_g[r][1] = dcopy(gxpw0, nxp);
        d_g[r][2] = dcopy(gdtw0, ndw);
        d_g[r][3] = dcopy(gdtb0, nke);
        d_g[r][4] = dcopy(gAl0, nA);
        d_g[r][5] = dcopy(gDs0, nke);
    }
    mv_cuda_set_precision(prec);
    ss2d_scan_forward_cuda(d_y, d_xdbl, d_delta, d_states, d_x, d_xpw, d_dtw, d_dtb, d_Al, d_Ds, d_scr,
                           B, H, W, E, R, N, S);
    check(op, "y", d_y, y, nx, tol);
    check(op, "xdbl", d_xdbl, xdbl, nxd, tol);
    check(op, "delta", d_delta, delta, (size_t)K * nx, tol);
    check(op, "states", d_states, states, nst, tol);
    // Inference's forward: no delta or states (they go to the forward scratch), the same y and
    // xdbl bit for bit.
    {
        float *d_y2 = dbuf(nx), *d_xdbl2 = dbuf(nxd), *d_fscr = dbuf(ss2d_scan_forward_scratch_cuda(B, L, E, R, N));
        ss2d_scan_forward_cuda(d_y2, d_xdbl2, NULL, NULL, d_x, d_xpw, d_dtw, d_dtb, d_Al, d_Ds, d_fscr,
                               B, H, W, E, R, N, S);
        check_same_bits(op, "y without delta/states", d_y2, download(d_y, nx), sizeof(float) * nx);
        check_same_bits(op, "xdbl without delta/states", d_xdbl2, download(d_xdbl, nxd), sizeof(float) * nxd);
        // Training's forward: no delta (backward recomputes it), states kept.
        float *d_states2 = dbuf(ss2d_scan_states_size_cuda(B, L, E, N));
        ss2d_scan_forward_cuda(d_y2, d_xdbl2, NULL, d_states2, d_x, d_xpw, d_dtw, d_dtb, d_Al, d_Ds, d_scr,
                               B, H, W, E, R, N, S);
        check_same_bits(op, "y without delta", d_y2, download(d_y, nx), sizeof(float) * nx);
        check_same_bits(op, "states without delta", d_states2,
                        download(d_states, ss2d_scan_states_size_cuda(B, L, E, N)),
                        sizeof(float) * ss2d_scan_states_size_cuda(B, L, E, N));
    }
    // The second backward recomputes delta (none saved): the same bits as the first's.
    for (int r = 0; r < 2; r++)
        ss2d_scan_backward_cuda(d_g[r][0], d_g[r][1], d_g[r][2], d_g[r][3], d_g[r][4], d_g[r][5], d_dy, d_x, d_xdbl,
                                r ? NULL : d_delta, d_states, d_xpw, d_dtw, d_dtb, d_Al, d_Ds, d_scr, B, H, W, E, R,
                                N, S);
    mv_cuda_set_precision(MV_PREC_FP32);
    check(op, "dx", d_g[0][0], gx, nx, tol);
    check(op, "dx_proj_weight", d_g[0][1], gxpw, nxp, tol);
    check(op, "ddt_projs_weight", d_g[0][2], gdtw, ndw, tol);
    check(op, "ddt_projs_bias", d_g[0][3], gdtb, nke, tol);
    check(op, "dA_logs", d_g[0][4], gAl, nA, tol);
    check(op, "dDs", d_g[0][5], gDs, nke, tol);
    size_t sizes[6] = {nx, nxp, ndw, nke, nA, nke};
    const char *names[6] = {"dx", "dx_proj_weight", "ddt_projs_weight", "ddt_projs_bias", "dA_logs", "dDs"};
    for (int i = 0; i < 6; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s same bits twice (delta recomputed)", names[i]);
        check_same_bits(op, what, d_g[1][i], download(d_g[0][i], sizes[i]), sizeof(float) * sizes[i]);
    }
    release_all();
}

static void test_scan(int B, int H, int W, int E, int R, int N, float alog_shift, mv_cuda_precision prec) {
    test_scan_dt(B, H, W, E, R, N, alog_shift, 0.0f, prec);
}

// ---- resampling -------------------------------------------------------------------------------
static void test_bilinear(int B, int H, int W, int OH, int OW, int C) {
    char what[64];
    size_t nin = (size_t)B * H * W * C, nout = (size_t)B * OH * OW * C;
    float *in = hrand(nin, -1, 1), *dout = hrand(nout, -1, 1), *din0 = hrand(nin, -1, 1);
    float *out = hbuf(nout), *din = hcopy(din0, nin);
    bilinear_forward(out, in, B, H, W, OH, OW, C);
    bilinear_backward(din, dout, B, H, W, OH, OW, C);
    float *d_in = dcopy(in, nin), *d_dout = dcopy(dout, nout), *d_out = dbuf(nout), *d_din = dcopy(din0, nin);
    bilinear_forward_cuda(d_out, d_in, B, H, W, OH, OW, C, S);
    bilinear_backward_cuda(d_din, d_dout, B, H, W, OH, OW, C, S);
    snprintf(what, sizeof what, "out %dx%d->%dx%d", H, W, OH, OW);
    check("bilinear", what, d_out, out, nout, FP32_TOL);
    snprintf(what, sizeof what, "din %dx%d->%dx%d", H, W, OH, OW);
    check("bilinear", what, d_din, din, nin, FP32_TOL);
    release_all();
}

static void test_avgpool(int B, int H, int W, int S_, int C) {
    char what[64];
    size_t nin = (size_t)B * H * W * C, nout = (size_t)B * S_ * S_ * C;
    float *in = hrand(nin, -1, 1), *dout = hrand(nout, -1, 1), *din0 = hrand(nin, -1, 1);
    float *out = hbuf(nout), *din = hcopy(din0, nin);
    adaptive_avgpool_forward(out, in, B, H, W, S_, C);
    adaptive_avgpool_backward(din, dout, B, H, W, S_, C);
    float *d_in = dcopy(in, nin), *d_dout = dcopy(dout, nout), *d_out = dbuf(nout), *d_din = dcopy(din0, nin);
    adaptive_avgpool_forward_cuda(d_out, d_in, B, H, W, S_, C, S);
    adaptive_avgpool_backward_cuda(d_din, d_dout, B, H, W, S_, C, S);
    snprintf(what, sizeof what, "out S=%d", S_);
    check("adaptive_avgpool", what, d_out, out, nout, FP32_TOL);
    snprintf(what, sizeof what, "din S=%d", S_);
    check("adaptive_avgpool", what, d_din, din, nin, FP32_TOL);
    release_all();
}

// ---- random draws and regularisers -------------------------------------------------------------
static void test_philox(int n) {
    uint32_t *want = (uint32_t *)hbuf((size_t)4 * n);
    for (int i = 0; i < n; i++) {
        mv_rng4 r = philox4x32(0x123456789abcdefULL, 17, 4242, MV_RNG_GUMBEL | 5, (uint32_t)i + 100);
        memcpy(want + 4 * i, r.v, sizeof r.v);
    }
    uint32_t *d = dbuf_bytes(sizeof(uint32_t) * 4 * n);
    philox_fill_cuda(d, 0x123456789abcdefULL, 17, 4242, MV_RNG_GUMBEL | 5, 100, n, S);
    check_same_bits("philox4x32", "same bits as CPU", d, want, sizeof(uint32_t) * 4 * n);
    release_all();
}

static void test_regularisers(int B, int HW, int C) {
    int ids[4] = {3, 0, 7, 12};
    if (B > 4) B = 4;
    int *d_ids = dbuf_bytes(sizeof ids);
    upload_bytes(d_ids, ids, sizeof ids);
    float *keep = hbuf((size_t)B * C), *kp = hbuf(B);
    float *d_keep = dbuf((size_t)B * C), *d_kp = dbuf(B);
    dropout2d_draw(keep, 5, 11, ids, 3, B, C, 0.3f);
    dropout2d_draw_cuda(d_keep, 5, 11, d_ids, 3, B, C, 0.3f, S);
    check_same_bits("dropout2d_draw", "same bits as CPU", d_keep, keep, sizeof(float) * B * C);
    droppath_draw(kp, 5, 11, ids, 9, B, 0.5f);
    droppath_draw_cuda(d_kp, 5, 11, d_ids, 9, B, 0.5f, S);
    check_same_bits("droppath_draw", "same bits as CPU", d_kp, kp, sizeof(float) * B);
    size_t n = (size_t)B * HW * C;
    float *in = hrand(n, -1, 1), *dout = hrand(n, -1, 1), *din0 = hrand(n, -1, 1), *db0 = hrand(n, -1, 1);
    float *out = hbuf(n), *din = hcopy(din0, n), *dbr = hcopy(db0, n);
    float *d_in = dcopy(in, n), *d_dout = dcopy(dout, n), *d_out = dbuf(n), *d_din = dcopy(din0, n);
    float *d_dbr = dcopy(db0, n);
    channel_scale_forward(out, in, keep, B, HW, C);
    channel_scale_backward(din, dout, keep, B, HW, C);
    channel_scale_forward_cuda(d_out, d_in, d_keep, B, HW, C, S);
    channel_scale_backward_cuda(d_din, d_dout, d_keep, B, HW, C, S);
    check("channel_scale", "out", d_out, out, n, FP32_TOL);
    check("channel_scale", "din", d_din, din, n, FP32_TOL);
    for (int withkeep = 0; withkeep < 2; withkeep++) {
        const float *k = withkeep ? kp : NULL, *dk = withkeep ? d_kp : NULL;
        residual_droppath_forward(out, in, dout, k, B, HW, C);
        residual_droppath_backward(din, dbr, dout, k, B, HW, C);
        residual_droppath_forward_cuda(d_out, d_in, d_dout, dk, B, HW, C, S);
        residual_droppath_backward_cuda(d_din, d_dbr, d_dout, dk, B, HW, C, S);
        check("residual_droppath", withkeep ? "out" : "out (no keep)", d_out, out, n, FP32_TOL);
        check("residual_droppath", withkeep ? "dres" : "dres (no keep)", d_din, din, n, FP32_TOL);
        check("residual_droppath", withkeep ? "dbranch" : "dbranch (no keep)", d_dbr, dbr, n, FP32_TOL);
    }
    release_all();
}

// ---- token mask -------------------------------------------------------------------------------
// Logits uniform in +-prange (40: saturated keep probabilities, where y (1 - y) must come from z).
static void test_token_mask(int B, int H, int W, int C, int gh, int gw, bool training, bool zero, bool official,
                            float prange) {
    char op[96];
    snprintf(op, sizeof op, "token_mask %dx%d<-%dx%d%s%s%s%s", H, W, gh, gw, training ? " train" : " eval",
             zero ? " zero" : " residual", official ? " official" : "", prange > 4.0f ? " saturated" : "");
    int ids[4] = {4, 1, 9, 2}, L = H * W;
    if (B > 4) B = 4;
    size_t n = (size_t)B * L * C, np = (size_t)gh * gw * 2, nt = (size_t)B * L;
    float *x = hrand(n, -1, 1), *P = hrand(np, -prange, prange), *dout = hrand(n, -1, 1), *dm = hrand(nt, -1, 1);
    float *dx0 = hrand(n, -1, 1), *dP0 = hrand(np, -1, 1);
    mv_mask_args a = {training, training, zero, official, 1.0f, 77, 3, 2, ids};
    float *out = hbuf(n), *m = hbuf(nt), *soft = hbuf(nt), *scr = hbuf(token_mask_scratch(H, W));
    float *dx = hcopy(dx0, n), *dP = hcopy(dP0, np);
    token_mask_forward(out, m, soft, x, P, scr, &a, B, H, W, C, gh, gw);
    token_mask_backward(dx, dP, dout, dm, x, m, soft, scr, &a, B, H, W, C, gh, gw);
    int *d_ids = dbuf_bytes(sizeof ids);
    upload_bytes(d_ids, ids, sizeof ids);
    mv_mask_args da = a;
    da.sample_ids = d_ids;
    float *d_x = dcopy(x, n), *d_P = dcopy(P, np), *d_dout = dcopy(dout, n), *d_dm = dcopy(dm, nt);
    float *d_out = dbuf(n), *d_m = dbuf(nt), *d_soft = dbuf(nt), *d_scr = dbuf(token_mask_scratch_cuda(H, W));
    float *d_dx = dcopy(dx0, n), *d_dP = dcopy(dP0, np);
    token_mask_forward_cuda(d_out, d_m, d_soft, d_x, d_P, d_scr, &da, B, H, W, C, gh, gw, S);
    // The hard decision may only differ where the CPU's own keep probability is a tie.
    float *gm = download(d_m, nt);
    int flips = 0, real_flips = 0;
    for (size_t i = 0; i < nt; i++)
        if (gm[i] != m[i]) {
            flips++;
            if (fabsf(soft[i]) > 4e-5f) real_flips++;   // soft holds the keep logit z: a tie is z = 0
        }
    char detail[64];
    snprintf(detail, sizeof detail, "(%d of %zu tokens differ, %d at ties)", flips, nt, flips - real_flips);
    record(op, "m", real_flips, 0.5, detail);
    if (flips) {   // follow the GPU's tie decisions on the CPU side so the rest stays comparable
        memcpy(m, gm, sizeof(float) * nt);
        memcpy(dx, dx0, sizeof(float) * n);
        memcpy(dP, dP0, sizeof(float) * np);
        token_mask_backward(dx, dP, dout, dm, x, m, soft, scr, &a, B, H, W, C, gh, gw);
        float add = zero ? 0.0f : 1.0f;
        for (size_t i = 0; i < n; i++) out[i] = x[i] * (m[i / C] + add);
    }
    check(op, "soft", d_soft, soft, nt, FP32_TOL);
    check(op, "out", d_out, out, n, FP32_TOL);
    token_mask_backward_cuda(d_dx, d_dP, d_dout, d_dm, d_x, d_m, d_soft, d_scr, &da, B, H, W, C, gh, gw, S);
    check(op, "dx", d_dx, dx, n, FP32_TOL);
    check(op, "dP", d_dP, dP, np, FP32_TOL);
    release_all();
}

// ---- losses -----------------------------------------------------------------------------------
static void test_cross_entropy(int N, int K) {
    float *logits = hrand((size_t)N * K, -5, 5), *u = hrand(N, 0, 1);
    uint8_t *labels = (uint8_t *)hbuf((size_t)(N + 3) / 4);
    for (int i = 0; i < N; i++) labels[i] = u[i] < 0.1f ? 255 : (uint8_t)(u[i] * 1000) % K;
    float *dl = hbuf((size_t)N * K), *correct = hbuf(N);
    double loss = cross_entropy_forward_backward(dl, logits, labels, N, K, (double)N, 0.4f);
    argmax_correct(correct, logits, labels, N, K);
    float *d_logits = dcopy(logits, (size_t)N * K), *d_dl = dbuf((size_t)N * K), *d_correct = dbuf(N);
    uint8_t *d_labels = dbuf_bytes(N);
    upload_bytes(d_labels, labels, N);
    double *d_loss = dbuf_bytes(sizeof(double)), got;
    cross_entropy_forward_backward_cuda(d_dl, d_loss, d_logits, d_labels, N, K, (double)N, 0.4f, S);
    argmax_correct_cuda(d_correct, d_logits, d_labels, N, K, S);
    download_bytes(&got, d_loss, sizeof got);
    record("cross_entropy", "loss", fabs(got - loss) / fabs(loss), FP32_TOL, NULL);
    check("cross_entropy", "dlogits", d_dl, dl, (size_t)N * K, FP32_TOL);
    check_same_bits("argmax_correct", "same as CPU", d_correct, correct, sizeof(float) * N);
    release_all();
}

// Logits of +-1e30 and 1e8 (ties included), a row at the float limits, an ignored row, against the
// CPU op (whose values are torch's: tests/unit/test_numerics.c); then a label that is not a class:
// NaN loss, NaN row, nothing written outside it.
static void test_cross_entropy_extremes(void) {
    const char *op = "cross_entropy extremes";
    enum { N = 7, K = 3 };
    static const float z0[N * K] = {1e30f, -1e30f, 0, -1e30f, -1e30f, -1e30f, 1e30f, 1e30f, -1e30f, 3.4e38f, -3.4e38f, 0,
                                    1e8f, 1e8f, 0, -1e8f, 5.0f, -1e8f, 2.0f, -1.0f, 0.5f};
    static const uint8_t y0[N] = {1, 0, 0, 0, 1, 2, 255};
    float *logits = hbuf(N * K + 8), *dl = hbuf(N * K + 8);
    memcpy(logits, z0, sizeof z0);
    uint8_t *labels = (uint8_t *)hbuf(2);
    memcpy(labels, y0, N);
    double loss = cross_entropy_forward_backward(dl, logits, labels, N, K, (double)N, 0.4f), got;
    float *d_logits = dcopy(logits, N * K + 8), *d_dl = dbuf(N * K + 8);
    uint8_t *d_labels = dbuf_bytes(N);
    upload_bytes(d_labels, labels, N);
    double *d_loss = dbuf_bytes(sizeof(double));
    cross_entropy_forward_backward_cuda(d_dl, d_loss, d_logits, d_labels, N, K, (double)N, 0.4f, S);
    download_bytes(&got, d_loss, sizeof got);
    record(op, "loss", fabs(got - loss) / fabs(loss), FP32_TOL, NULL);
    check(op, "dlogits", d_dl, dl, N * K, FP32_TOL);
    labels[1] = 3;   // not a class of 3
    upload_bytes(d_labels, labels, N);
    float sentinel[8];
    for (int i = 0; i < 8; i++) sentinel[i] = 123.0f;
    upload_bytes(d_dl + N * K, sentinel, sizeof sentinel);
    cross_entropy_forward_backward_cuda(d_dl, d_loss, d_logits, d_labels, N, K, (double)N, 0.4f, S);
    download_bytes(&got, d_loss, sizeof got);
    float *g = download(d_dl, N * K + 8);
    int bad = 0;
    for (int k = 0; k < K; k++) bad += !isnan(g[K + k]) + !isfinite(g[k]);
    for (int i = 0; i < 8; i++) bad += g[N * K + i] != 123.0f;
    record(op, "label 3 of 3 classes: NaN", isnan(got) ? 0.0 : 1.0, 0.5, NULL);
    record(op, "label 3: NaN row, no stray write", bad, 0.5, NULL);
    release_all();
}

// ---- precision modes ---------------------------------------------------------------------------
static void test_precision_api(void) {
    mv_cuda_precision p = MV_PREC_FP32;
    bool ok = mv_cuda_parse_precision("bf16", &p) == 0 && p == MV_PREC_BF16 &&
              mv_cuda_parse_precision("fp16", &p) < 0 && mv_cuda_set_precision((mv_cuda_precision)7) < 0 &&
              mv_cuda_get_precision() == MV_PREC_FP32;
    mv_cuda_set_tf32(true);
    ok = ok && mv_cuda_get_precision() == MV_PREC_TF32 && mv_cuda_tf32();
    mv_cuda_set_precision(MV_PREC_BF16);
    ok = ok && !mv_cuda_tf32() && strcmp(mv_cuda_precision_name(mv_cuda_get_precision()), "bf16") == 0;
    mv_cuda_set_tf32(false);
    ok = ok && mv_cuda_get_precision() == MV_PREC_FP32;
    record("precision", "set/get/parse", ok ? 0.0 : 1.0, 0.5, NULL);
}

// ---- the bf16 GEMM (conv3x3's BF16 path) ---------------------------------------------------------
static uint16_t bf16_of(float f) {   // exact for the small integers used here
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)(u >> 16);
}

// gemm_rm_bf16 has cublasGemmEx's meaning, K = 0 included: C = beta C, and zeros for beta = 0
// whatever C held (no op reaches K = 0 with valid leading dimensions, so it is called directly).
static void test_gemm_bf16(void) {
    const char *op = "gemm_rm_bf16";
    enum { M = 3, N = 5, K = 7 };
    uint16_t a[M * K], b[N * K];
    float want[M * N], c0[M * N], nan = NAN;
    for (int i = 0; i < M * K; i++) a[i] = bf16_of((float)(i % 5 - 2));
    for (int i = 0; i < N * K; i++) b[i] = bf16_of((float)(i % 3 - 1));
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float t = 0;
            for (int k = 0; k < K; k++) t += (float)(((m * K + k) % 5) - 2) * (float)(((n * K + k) % 3) - 1);
            want[m * N + n] = t;
            c0[m * N + n] = (float)(m - n);
        }
    uint16_t *d_a = dbuf_bytes(sizeof a), *d_b = dbuf_bytes(sizeof b);
    upload_bytes(d_a, a, sizeof a);
    upload_bytes(d_b, b, sizeof b);
    float *d_c = dbuf(M * N), *fill = hbuf(M * N);
    for (int i = 0; i < M * N; i++) fill[i] = nan;
    // C[M,N] = A[M,K] B[N,K]^T, as conv3x3's forward; C starts as NaN, which beta = 0 must not read.
    upload_bytes(d_c, fill, sizeof(float) * M * N);
    gemm_rm_bf16(false, true, M, N, K, 1.0f, d_a, K, d_b, K, 0.0f, d_c, N, S);
    check(op, "K=7 beta=0", d_c, want, M * N, 1e-7);
    // K = 0: lda = 1, the least a leading dimension may be.
    float *zeros = hbuf(M * N), *half = hbuf(M * N);
    for (int i = 0; i < M * N; i++) half[i] = 0.5f * c0[i];
    gemm_rm_bf16(false, false, M, N, 0, 1.0f, d_a, 1, d_b, N, 0.0f, d_c, N, S);
    check(op, "K=0 beta=0: zeros", d_c, zeros, M * N, 1e-7);
    upload_bytes(d_c, c0, sizeof c0);
    gemm_rm_bf16(false, false, M, N, 0, 1.0f, d_a, 1, d_b, N, 0.5f, d_c, N, S);
    check(op, "K=0 beta=0.5: C scaled", d_c, half, M * N, 1e-7);
    int st = mv_cuda_status(op);
    record(op, "no errors recorded", st < 0 ? 1.0 : 0.0, 0.5, st < 0 ? mv_last_error() : NULL);
    release_all();
}

// ---- the loss helpers (kernels/cpu/ops_loss.h) ----------------------------------------------------
static void record_rel(const char *op, const char *what, double got, double want, double tol) {
    double err = fabs(got - want) / (fabs(want) > 0 ? fabs(want) : 1.0);
    char detail[96];
    snprintf(detail, sizeof detail, "(%.17g vs %.17g)", got, want);
    record(op, what, err, tol, detail);
}

static double download_double(const double *d) {
    double h = 0;
    download_bytes(&h, d, sizeof h);
    return h;
}

static void test_loss_helpers(size_t n) {
    float *h = hbuf(n), *d = dbuf(n);
    fill(h, 0.37f, n);
    fill_cuda(d, 0.37f, n, S);
    check_same_bits("fill", "same bits as CPU", d, h, sizeof(float) * n);
    float v = -2.5f, *d_v = dcopy(&v, 1);
    fill_from(h, &v, n);
    fill_from_cuda(d, d_v, n, S);
    check_same_bits("fill_from", "same bits as CPU", d, h, sizeof(float) * n);
    double hd[5], *dd = dbuf_bytes(sizeof hd);
    fill_double(hd, 1.0 / 3.0, 5);
    fill_double_cuda(dd, 1.0 / 3.0, 5, S);
    check_same_bits("fill_double", "same bits as CPU", dd, hd, sizeof hd);

    // Sums: a large offset makes the order of the additions matter.
    float *x = hrand(n, 99.0f, 101.0f), *d_x = dcopy(x, n);
    double want, *d_out = dbuf_bytes(sizeof(double) * 4);
    sum_to_double(&want, x, n);
    sum_to_double_cuda(d_out, d_x, n, S);
    record_rel("sum_to_double", "sum", download_double(d_out), want, 1e-12);
    sum_to_double_cuda(d_out + 1, d_x, n, S);
    check_same_bits("sum_to_double", "same bits twice", d_out + 1, download((const float *)d_out, 2), sizeof(double));
    sum_to_double_cuda(d_out, d_x, 0, S);
    record_rel("sum_to_double", "n = 0", download_double(d_out), 0.0, 1e-300);

    float *u = hrand(n, 0, 1);
    uint8_t *labels = (uint8_t *)hbuf((n + 3) / 4);
    for (size_t i = 0; i < n; i++) labels[i] = u[i] < 0.3f ? 255 : (uint8_t)(u[i] * 1000) % 19;
    uint8_t *d_labels = dbuf_bytes(n);
    upload_bytes(d_labels, labels, n);
    count_valid(&want, labels, n);
    count_valid_cuda(d_out, d_labels, n, S);
    record_rel("count_valid", "count", download_double(d_out), want, 1e-300);

    double acc = 1.5, term = 2.25, *d_acc = dcopy_bytes_helper(&acc), *d_term = dcopy_bytes_helper(&term);
    add_scaled_double(&acc, &term, 3.0);
    add_scaled_double_cuda(d_acc, d_term, 3.0, S);
    record_rel("add_scaled_double", "acc", download_double(d_acc), acc, 1e-300);

    // Position loss of one block against a 0/1 "correct" map.
    float *m = hrand(n, 0, 1), *t = hrand(n, 0, 1), *dm = hbuf(n);
    for (size_t i = 0; i < n; i++) t[i] = t[i] < 0.6f ? 1.0f : 0.0f;
    float *d_m = dcopy(m, n), *d_t = dcopy(t, n), *d_dm = dcopy(x, n);   // dm is written, not added
    position_loss(&want, dm, m, t, n, 0.7);
    position_loss_cuda(d_out, d_dm, d_m, d_t, n, 0.7, S);
    record_rel("position_loss", "loss", download_double(d_out), want, 1e-12);
    check_same_bits("position_loss", "dm same bits as CPU", d_dm, dm, sizeof(float) * n);

    // Cross-entropy with the device denominator from count_valid (avg_non_ignore).
    int N = g_emu ? 500 : 20000, K = 19;
    float *logits = hrand((size_t)N * K, -5, 5), *dl = hbuf((size_t)N * K);
    double valid;
    count_valid(&valid, labels, (size_t)N);
    double loss = cross_entropy_forward_backward(dl, logits, labels, N, K, valid, 0.4f);
    float *d_logits = dcopy(logits, (size_t)N * K), *d_dl = dbuf((size_t)N * K);
    count_valid_cuda(d_out + 2, d_labels, (size_t)N, S);
    cross_entropy_dev_denom_cuda(d_dl, d_out + 3, d_logits, d_labels, N, K, d_out + 2, 0.4f, S);
    record_rel("cross_entropy_dev_denom", "loss", download_double(d_out + 3), loss, FP32_TOL);
    check("cross_entropy_dev_denom", "dlogits", d_dl, dl, (size_t)N * K, FP32_TOL);
    // A batch of ignore labels only: the denominator clamps to 1 as on the CPU side.
    uint8_t *ign = (uint8_t *)hbuf(((size_t)N + 3) / 4);
    memset(ign, 255, (size_t)N);
    uint8_t *d_ign = dbuf_bytes((size_t)N);
    upload_bytes(d_ign, ign, (size_t)N);
    count_valid_cuda(d_out + 2, d_ign, (size_t)N, S);
    cross_entropy_dev_denom_cuda(d_dl, d_out + 3, d_logits, d_ign, N, K, d_out + 2, 0.4f, S);
    record_rel("cross_entropy_dev_denom", "all ignored", download_double(d_out + 3), 0.0, 1e-300);
    release_all();
}

// The keep-ratio loss: blocks of four stages, some not in the loss (group -1 or count 0), per
// block and per stage, one rank and a global batch of two.
static void test_ratio_loss(void) {
    enum { NB = 9 };
    int group[NB] = {0, 0, 1, -1, 1, 2, 2, 3, 2};
    double stats[2 * NB], counts[NB] = {512, 512, 128, 128, 128, 0, 32, 8, 32};
    float lambda[4] = {0.9f, 0.8f, 0.7f, 0.6f}, *keep = hrand(NB, 0.2f, 1.0f);
    for (int j = 0; j < NB; j++) {
        stats[j] = counts[j] * keep[j];
        stats[NB + j] = counts[j];
    }
    int *d_group = dbuf_bytes(sizeof group);
    upload_bytes(d_group, group, sizeof group);
    float *d_lambda = dcopy(lambda, 4), *d_grad = dbuf(NB);
    double *d_stats = dbuf_bytes(sizeof stats), *d_loss = dbuf_bytes(sizeof(double));
    upload_bytes(d_stats, stats, sizeof stats);
    for (int per_stage = 0; per_stage < 2; per_stage++)
        for (int world = 1; world <= 2; world++) {
            double loss;
            float grad[NB];
            ratio_loss(&loss, grad, stats, group, lambda, NB, per_stage, 0.3, (double)world);
            ratio_loss_cuda(d_loss, d_grad, d_stats, d_group, d_lambda, NB, per_stage, 0.3, (double)world, S);
            char what[64];
            snprintf(what, sizeof what, "%s world %d loss", per_stage ? "per stage" : "per block", world);
            record_rel("ratio_loss", what, download_double(d_loss), loss, 1e-12);
            snprintf(what, sizeof what, "%s world %d grad", per_stage ? "per stage" : "per block", world);
            check("ratio_loss", what, d_grad, grad, NB, 1e-7);
        }
    release_all();
}

// ---- optimizer --------------------------------------------------------------------------------------
// gscale 1e20: gradients up to 1e20, where (1 - beta2) * g * g is finite only in torch's order.
static void test_adamw(size_t n, float gscale) {
    char op[48];
    snprintf(op, sizeof op, gscale == 1.0f ? "adamw_update" : "adamw_update |g| ~%g", gscale);
    float *p0 = hrand(n, -1, 1), *m0 = hrand(n, -0.1f, 0.1f), *v0 = hrand(n, 0, 0.01f);
    float *p = hcopy(p0, n), *m = hcopy(m0, n), *v = hcopy(v0, n);
    float *d_p = dcopy(p0, n), *d_m = dcopy(m0, n), *d_v = dcopy(v0, n);
    for (int step = 1; step <= 3; step++) {
        float *g = hrand(n, -gscale, gscale), *d_g = dcopy(g, n);
        adamw_update(p, g, m, v, n, 6e-5 * step, 0.9, 0.999, 1e-8, 0.01, step);
        adamw_update_cuda(d_p, d_g, d_m, d_v, n, 6e-5 * step, 0.9, 0.999, 1e-8, 0.01, step, S);
    }
    // Same float operations in the same order: equal up to the CPU compiler's own FMA choices.
    check(op, "param", d_p, p, n, 1e-6);
    check(op, "m", d_m, m, n, 1e-6);
    check(op, "v", d_v, v, n, 1e-6);
    release_all();
}

int main(void) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        printf("SKIP: no CUDA device (cudaGetDeviceCount: %s)\n",
               err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return 0;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) snprintf(prop.name, sizeof prop.name, "device 0");
    g_emu = mv_cuda_emulated();
    if (mv_cuda_init(0) < 0) {
        fprintf(stderr, "test_cuda_ops: %s\n", mv_last_error());
        return 1;
    }
    printf("test_cuda_ops on %s%s\n", prop.name, g_emu ? " (host emulation: small shapes)" : "");

    test_linear(37, 19, 23, MV_PREC_FP32);
    test_conv2d(2, 13, 17, 3, 8, 4, 4, 0, MV_PREC_FP32);
    test_conv2d(1, 9, 7, 4, 5, 3, 2, 1, MV_PREC_FP32);
    test_conv3x3(2, 7, 9, 5, 6, MV_PREC_FP32);
    // Every GEMM-using op in the reduced-precision modes, against the fp32 CPU op.
    for (mv_cuda_precision p = MV_PREC_TF32; p <= MV_PREC_BF16; p++) {
        test_linear(g_emu ? 64 : 512, 96, g_emu ? 32 : 192, p);
        test_conv2d(2, 13, 17, 3, 8, 4, 4, 0, p);
        test_conv2d(1, 9, 7, 4, 5, 3, 2, 1, p);
        test_conv3x3(2, 7, 9, 5, 6, p);
        test_scan(2, 5, 13, 40, 3, 16, 0.0f, p);
        if (!g_emu) test_scan(2, 16, 20, 96, 6, 16, 0.0f, p);
    }
    test_precision_api();
    test_gemm_bf16();
    test_dwconv(2, 7, 9, 13);
    test_layernorm(29, 70, 1.0f);
    test_layernorm(g_emu ? 40 : 1000, 192, 1.0f);
    test_layernorm(29, 70, 1e20f);
    test_layernorm(30, 96, 1e10f);
    test_batchnorm(g_emu ? 150 : 3000, 21, false);
    test_batchnorm(g_emu ? 150 : 3000, 21, true);
    test_activations(g_emu ? 3000 : 100000);
    test_elementwise(40, 11, 3, 6);
    test_in_place(2, 37, 21);
    test_patch_gather(2, 7, 9, 5);
    test_patch_gather(1, 8, 6, 3);
    // Scan shapes: chunk tails (L = 65, 299, 620), channel counts that do not fill a block, every lane
    // width (N = 4, 8, 16, 32: 1, 2, 4, 8 lanes per channel) and padded ones (N = 1, 5), H = 1 /
    // W = 1 maps, and in the GPU run a multi-chunk case.
    test_scan(2, 5, 13, 40, 3, 16, 0.0f, MV_PREC_FP32);
    test_scan(1, 9, 11, 24, 2, 4, 0.0f, MV_PREC_FP32);
    test_scan(1, 1, 7, 12, 1, 8, 0.0f, MV_PREC_FP32);
    test_scan(1, 6, 1, 10, 2, 32, 0.0f, MV_PREC_FP32);
    test_scan(1, 7, 9, 20, 2, 5, 0.0f, MV_PREC_FP32);     // states padded to whole lanes (5 of 8)
    test_scan(2, 4, 17, 9, 1, 1, 0.0f, MV_PREC_FP32);     // one state: a lane per channel, 3 of 4 padded
    test_scan(1, 13, 23, 40, 3, 16, 0.0f, MV_PREC_FP32);   // 5 chunks, the last one short
    test_scan(2, 20, 31, 24, 2, 8, -4.6f, MV_PREC_FP32);   // 10 chunks, states carried across them
    test_scan_dt(1, 5, 13, 24, 2, 8, 0.0f, -12.0f, MV_PREC_FP32);
    test_scan_dt(1, 5, 13, 24, 2, 8, 0.0f, -20.0f, MV_PREC_FP32);
    test_scan_dt(1, 5, 13, 24, 2, 8, 0.0f, 50.0f, MV_PREC_FP32);
    if (!g_emu) {
        test_scan(2, 16, 20, 96, 6, 16, 0.0f, MV_PREC_FP32);
        test_scan(2, 33, 31, 64, 4, 16, 0.0f, MV_PREC_FP32);
        test_scan(2, 64, 96, 96, 6, 16, -4.6f, MV_PREC_FP32);   // 96 chunks, long memory
    }
    test_bilinear(2, 5, 7, 13, 17, 3);
    test_bilinear(1, 13, 17, 5, 6, 4);
    test_bilinear(1, 6, 6, 6, 6, 2);
    test_bilinear(1, 4, 8, 32, 64, 2);
    for (int s = 1; s <= 6; s++)
        if (s != 4 && s != 5) test_avgpool(2, 13, 10, s, 5);
    test_philox(g_emu ? 200 : 5000);
    test_regularisers(3, 20, 7);
    test_token_mask(2, 6, 8, 5, 6, 8, true, false, false, 4.0f);
    test_token_mask(2, 6, 8, 5, 6, 8, true, true, true, 4.0f);
    test_token_mask(2, 9, 7, 4, 6, 8, true, false, false, 4.0f);
    test_token_mask(3, 9, 7, 4, 6, 8, true, false, true, 4.0f);
    test_token_mask(2, 6, 8, 5, 6, 8, false, false, false, 4.0f);
    test_token_mask(2, 6, 8, 5, 6, 8, true, false, false, 40.0f);
    test_cross_entropy(g_emu ? 500 : 20000, 19);
    test_cross_entropy_extremes();
    test_loss_helpers(g_emu ? 3000 : 1000003);
    test_ratio_loss();
    test_adamw(g_emu ? 5000 : 1000003, 1.0f);
    test_adamw(g_emu ? 5000 : 1000003, 1e20f);

    if (!g_emu) {
        int r = mv_nccl_selfcheck();
        if (r == 1) printf("SKIP nccl                               not in this build\n");
        else record("nccl", "one-rank all-reduce", r < 0 ? 1.0 : 0.0, 0.5, r < 0 ? mv_last_error() : NULL);
    }
    int st = mv_cuda_status("test_cuda_ops");
    record("backend", "no errors recorded", st < 0 ? 1.0 : 0.0, 0.5, st < 0 ? mv_last_error() : NULL);
    mv_cuda_shutdown();
    printf("test_cuda_ops: %d checks, %d failed\n", g_checks, g_failed);
    return g_failed ? 1 : 0;
}
