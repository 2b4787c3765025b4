// Per-op GPU timings at the shapes of one maskvim-t training step (512x1024 crop, batch 2 by
// default): every distinct (op, shape) of the model is timed forward and backward with CUDA
// events, and the table weights each by how often the step runs it. The weighted sum estimates
// the step time (images/s, TFLOP/s) until the whole model runs on the GPU.
//
//   bench_cuda_ops [--batch 2] [--size 512x1024] [--iters 5] [--tf32|--bf16] [--out DIR]
//
// Writes the table to stdout and, with --out, DIR/bench_cuda_ops[_tf32|_bf16].{txt,json}. Without a
// GPU it prints a SKIP line and exits 0. Host code only (the ops are the library's), so it also
// builds against the host emulation (bench_cuda_ops_emu), which runs it at toy sizes as a smoke test.
#ifdef MV_CUDA_EMU
#include "tests/cuda/emu/emu.h"
#else
#include <cuda_runtime.h>
#endif
#include "kernels/cuda/ops_cuda.h"
extern "C" {
#include "core/error.h"
}
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>
#include <string>
#include <vector>

#define CK(call)                                                                                  \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "bench_cuda_ops: %s: %s\n", #call, cudaGetErrorString(e_));           \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

struct Row {
    std::string name, shape;
    int count;                 // calls per training step
    double ms_f, ms_b;         // per call
    double flops_f, flops_b;   // per call
    double bytes;              // memory the op touches once (forward), for GB/s
};

static std::vector<Row> g_rows;
static std::vector<void *> g_bufs;
static int g_iters = 5;
static size_t g_peak_used;

static void note_memory(void) {
    size_t free_b = 0, total = 0;
    if (cudaMemGetInfo(&free_b, &total) == cudaSuccess && total - free_b > g_peak_used) g_peak_used = total - free_b;
}

// Device buffers hold a 1 Mi-value random pattern in [lo, hi), uploaded once per buffer and then
// doubled by device-to-device copies: cheap for gigabytes, and the same data on every run.
#define PATTERN (1 << 20)

static void fill_pattern(void *d, size_t bytes, const void *pattern, size_t pattern_bytes) {
    size_t done = bytes < pattern_bytes ? bytes : pattern_bytes;
    CK(cudaMemcpy(d, pattern, done, cudaMemcpyHostToDevice));
    while (done < bytes) {
        size_t n = done < bytes - done ? done : bytes - done;
        CK(cudaMemcpy((char *)d + done, d, n, cudaMemcpyDeviceToDevice));
        done += n;
    }
}

static uint32_t g_seed = 1;

static float *dev(size_t n, float lo = -1.0f, float hi = 1.0f) {
    static std::vector<float> pattern(PATTERN);
    uint32_t s = g_seed++ * 0x9E3779B9u;
    for (size_t i = 0; i < PATTERN; i++) {
        uint32_t h = (uint32_t)i * 2654435761u ^ s;
        h ^= h >> 16;
        h *= 0x7feb352du;
        h ^= h >> 15;
        pattern[i] = lo + (hi - lo) * ((float)(h >> 8) * (1.0f / 16777216.0f));
    }
    float *p = NULL;
    CK(cudaMalloc((void **)&p, sizeof(float) * (n ? n : 1)));
    g_bufs.push_back(p);
    fill_pattern(p, sizeof(float) * n, pattern.data(), sizeof(float) * PATTERN);
    return p;
}

static void free_all(void) {
    note_memory();
    for (void *p : g_bufs) cudaFree(p);
    g_bufs.clear();
}

// Milliseconds per call of fn, after one warm-up call.
static double time_ms(const std::function<void()> &fn) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    fn();
    CK(cudaDeviceSynchronize());
    note_memory();
    CK(cudaEventRecord(a));
    for (int i = 0; i < g_iters; i++) fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    if (mv_cuda_status("bench_cuda_ops") < 0) {
        fprintf(stderr, "bench_cuda_ops: %s\n", mv_last_error());
        exit(1);
    }
    return ms / g_iters;
}

static void add_row(const char *name, std::string shape, int count, const std::function<void()> &fwd,
                    const std::function<void()> &bwd, double flops_f, double flops_b, double bytes) {
    Row r;
    r.name = name;
    r.shape = shape;
    r.count = count;
    r.ms_f = time_ms(fwd);
    r.ms_b = bwd ? time_ms(bwd) : 0.0;
    r.flops_f = flops_f;
    r.flops_b = flops_b;
    r.bytes = bytes;
    g_rows.push_back(r);
    printf("  %-22s %-30s x%-3d fwd %8.3f ms  bwd %8.3f ms\n", name, shape.c_str(), count, r.ms_f, r.ms_b);
    fflush(stdout);
    free_all();
}

static std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static std::string fmt(const char *f, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

// ---- one function per op kind ------------------------------------------------------------------
static void b_linear(const char *name, int count, int N, int IC, int OC, bool bias) {
    float *in = dev((size_t)N * IC), *w = dev((size_t)OC * IC, -0.05f, 0.05f), *b = bias ? dev(OC) : NULL;
    float *out = dev((size_t)N * OC), *dout = dev((size_t)N * OC), *din = dev((size_t)N * IC);
    float *dw = dev((size_t)OC * IC), *db = bias ? dev(OC) : NULL;
    double fl = 2.0 * N * IC * OC;
    add_row(name, fmt("%dx%d->%d", N, IC, OC), count, [=] { linear_forward_cuda(out, in, w, b, N, IC, OC, 0); },
            [=] { linear_backward_cuda(din, dw, db, dout, in, w, N, IC, OC, 0); }, fl, 2 * fl,
            4.0 * ((double)N * (IC + OC) + (double)IC * OC));
}

static void b_conv2d(const char *name, int count, int B, int H, int W, int IC, int OC, int K, int s) {
    int OH = (H - K) / s + 1, OW = (W - K) / s + 1;
    float *in = dev((size_t)B * H * W * IC), *w = dev((size_t)OC * IC * K * K, -0.05f, 0.05f), *b = dev(OC);
    float *out = dev((size_t)B * OH * OW * OC), *dout = dev((size_t)B * OH * OW * OC);
    float *dw = dev((size_t)OC * IC * K * K), *db = dev(OC), *scr = dev(conv2d_scratch_cuda(B, H, W, IC, K, s, 0));
    double fl = 2.0 * B * OH * OW * OC * IC * K * K;
    add_row(name, fmt("%dx%dx%dx%d k%d s%d ->%d", B, H, W, IC, K, s, OC), count,
            [=] { conv2d_forward_cuda(out, in, w, b, scr, B, H, W, IC, OC, K, s, 0, 0); },
            [=] { conv2d_backward_cuda(NULL, dw, db, dout, in, w, scr, B, H, W, IC, OC, K, s, 0, 0); }, fl, fl,
            4.0 * B * ((double)H * W * IC + (double)OH * OW * OC));
}

static void b_conv3x3(const char *name, int count, int B, int H, int W, int IC, int OC) {
    size_t nin = (size_t)B * H * W * IC, nout = (size_t)B * H * W * OC;
    float *in = dev(nin), *w = dev((size_t)OC * IC * 9, -0.02f, 0.02f), *out = dev(nout), *dout = dev(nout);
    float *din = dev(nin), *dw = dev((size_t)OC * IC * 9), *scr = dev(conv3x3_scratch_cuda(B, H, W, IC, OC));
    double fl = 18.0 * B * H * W * IC * OC;
    add_row(name, fmt("%dx%dx%dx%d->%d", B, H, W, IC, OC), count,
            [=] { conv3x3_forward_cuda(out, in, w, scr, B, H, W, IC, OC, 0); },
            [=] { conv3x3_backward_cuda(din, dw, dout, in, w, scr, B, H, W, IC, OC, 0); }, fl, 2 * fl,
            4.0 * (nin + nout));
}

static void b_dwconv(const char *name, int count, int B, int H, int W, int C) {
    size_t n = (size_t)B * H * W * C;
    float *in = dev(n), *w = dev((size_t)C * 9), *b = dev(C), *out = dev(n), *dout = dev(n), *din = dev(n);
    float *dw = dev((size_t)C * 9), *db = dev(C);
    add_row(name, fmt("%dx%dx%dx%d", B, H, W, C), count, [=] { dwconv3x3_forward_cuda(out, in, w, b, B, H, W, C, 0); },
            [=] { dwconv3x3_backward_cuda(din, dw, db, dout, in, w, B, H, W, C, 0); }, 18.0 * n, 36.0 * n, 8.0 * n);
}

static void b_layernorm(const char *name, int count, int N, int C) {
    size_t n = (size_t)N * C;
    float *in = dev(n), *w = dev(C), *b = dev(C), *out = dev(n), *mean = dev(N), *rstd = dev(N), *dout = dev(n);
    float *din = dev(n), *dw = dev(C), *db = dev(C);
    add_row(name, fmt("%dx%d", N, C), count, [=] { layernorm_forward_cuda(out, mean, rstd, in, w, b, N, C, 1e-5f, 0); },
            [=] { layernorm_backward_cuda(din, dw, db, dout, in, w, mean, rstd, N, C, 0); }, 8.0 * n, 14.0 * n, 8.0 * n);
}

static void b_batchnorm(const char *name, int count, int N, int C) {
    size_t n = (size_t)N * C;
    float *in = dev(n), *w = dev(C), *b = dev(C), *out = dev(n), *mean = dev(C), *rstd = dev(C), *rm = dev(C);
    float *rv = dev(C, 0.5f, 1.5f), *dout = dev(n), *din = dev(n), *dw = dev(C), *db = dev(C);
    double *scr = NULL;
    CK(cudaMalloc((void **)&scr, sizeof(double) * batchnorm_scratch_cuda(C)));
    g_bufs.push_back(scr);
    mv_reducer_cuda red = {NULL, NULL};
    add_row(name, fmt("%dx%d", N, C), count,
            [=] { batchnorm_forward_train_cuda(out, mean, rstd, rm, rv, in, w, b, scr, red, N, C, 1e-5f, 0.1f, 0); },
            [=] { batchnorm_backward_cuda(din, dw, db, dout, in, w, mean, rstd, scr, red, N, C, 0); }, 6.0 * n,
            10.0 * n, 8.0 * n);
}

// Pointwise kinds: 0 relu, 1 silu, 2 mul, 3 residual add (drop path).
static void b_pointwise(const char *name, int count, int B, size_t per, int kind) {
    size_t n = (size_t)B * per;
    float *a = dev(n), *b = dev(n), *out = dev(n), *dout = dev(n), *da = dev(n), *db = dev(n), *keep = dev(B, 1, 1);
    std::function<void()> f, g;
    if (kind == 0) {
        f = [=] { relu_forward_cuda(out, a, n, 0); };
        g = [=] { relu_backward_cuda(da, dout, out, n, 0); };
    } else if (kind == 1) {
        f = [=] { silu_forward_cuda(out, a, n, 0); };
        g = [=] { silu_backward_cuda(da, dout, a, n, 0); };
    } else if (kind == 2) {
        f = [=] { mul_forward_cuda(out, a, b, n, 0); };
        g = [=] { mul_backward_cuda(da, db, dout, a, b, n, 0); };
    } else {
        f = [=] { residual_droppath_forward_cuda(out, a, b, keep, B, (int)per, 1, 0); };
        g = [=] { residual_droppath_backward_cuda(da, db, dout, keep, B, (int)per, 1, 0); };
    }
    add_row(name, fmt("%zu", n), count, f, g, (double)n, 2.0 * n, 8.0 * n);
}

// Concatenation: `parts` slices of C_in channels into [N, parts*C_in].
static void b_concat(const char *name, int count, int N, int C_in, int parts) {
    size_t n = (size_t)N * C_in;
    int C_out = C_in * parts;
    float *in = dev(n), *out = dev(n * parts), *din = dev(n);
    add_row(name, fmt("%dx%d x%d", N, C_in, parts), count,
            [=] { for (int p = 0; p < parts; p++) channel_slice_forward_cuda(out, in, N, C_out, p * C_in, C_in, 0); },
            [=] { for (int p = 0; p < parts; p++) channel_slice_backward_cuda(din, out, N, C_out, p * C_in, C_in, 0); },
            0, (double)n * parts, 8.0 * n * parts);
}

static void b_scan(const char *name, int count, int B, int H, int W, int E, int R, int N) {
    int L = H * W, P = R + 2 * N;
    size_t nx = (size_t)B * L * E;
    float *x = dev(nx, -1, 1), *dy = dev(nx), *xpw = dev((size_t)SCAN_K * P * E, -0.05f, 0.05f);
    float *dtw = dev((size_t)SCAN_K * E * R, -0.3f, 0.3f), *dtb = dev((size_t)SCAN_K * E, -4.5f, -2.5f);
    float *Al = dev((size_t)SCAN_K * E * N, 0.0f, 2.7f), *Ds = dev((size_t)SCAN_K * E, 0.5f, 1.5f);
    float *y = dev(nx), *xdbl = dev((size_t)B * L * SCAN_K * P), *delta = dev(SCAN_K * nx);
    float *states = dev(ss2d_scan_states_size_cuda(B, L, E, N)), *scr = dev(ss2d_scan_scratch_cuda(B, L, E, R, N));
    float *dx = dev(nx), *dxpw = dev((size_t)SCAN_K * P * E), *ddtw = dev((size_t)SCAN_K * E * R);
    float *ddtb = dev((size_t)SCAN_K * E), *dAl = dev((size_t)SCAN_K * E * N), *dDs = dev((size_t)SCAN_K * E);
    double per = (double)B * L * SCAN_K;
    double ff = per * (2.0 * E * P + 2.0 * R * E + 7.0 * E * N), fb = per * (6.0 * E * P + 4.0 * R * E + 20.0 * E * N);
    add_row(name, fmt("%dx%dx%d E%d R%d N%d", B, H, W, E, R, N), count,
            [=] { ss2d_scan_forward_cuda(y, xdbl, delta, states, x, xpw, dtw, dtb, Al, Ds, scr, B, H, W, E, R, N, 0); },
            [=] {
                ss2d_scan_backward_cuda(dx, dxpw, ddtw, ddtb, dAl, dDs, dy, x, xdbl, delta, states, xpw, dtw, dtb, Al, Ds,
                                        scr, B, H, W, E, R, N, 0);
            },
            ff, fb, 4.0 * nx * 7);
}

static void b_bilinear(const char *name, int count, int B, int H, int W, int OH, int OW, int C) {
    size_t nin = (size_t)B * H * W * C, nout = (size_t)B * OH * OW * C;
    float *in = dev(nin), *out = dev(nout), *dout = dev(nout), *din = dev(nin);
    add_row(name, fmt("%dx%dx%dx%d->%dx%d", B, H, W, C, OH, OW), count,
            [=] { bilinear_forward_cuda(out, in, B, H, W, OH, OW, C, 0); },
            [=] { bilinear_backward_cuda(din, dout, B, H, W, OH, OW, C, 0); }, 8.0 * nout, 8.0 * nout,
            4.0 * (nin + nout));
}

static void b_avgpool(const char *name, int count, int B, int H, int W, int S, int C) {
    size_t nin = (size_t)B * H * W * C, nout = (size_t)B * S * S * C;
    float *in = dev(nin), *out = dev(nout), *dout = dev(nout), *din = dev(nin);
    add_row(name, fmt("%dx%dx%dx%d->%d", B, H, W, C, S), count,
            [=] { adaptive_avgpool_forward_cuda(out, in, B, H, W, S, C, 0); },
            [=] { adaptive_avgpool_backward_cuda(din, dout, B, H, W, S, C, 0); }, (double)nin, (double)nin,
            4.0 * nin);
}

static void b_token_mask(const char *name, int count, int B, int H, int W, int C) {
    size_t n = (size_t)B * H * W * C, nt = (size_t)B * H * W;
    float *x = dev(n), *P = dev((size_t)H * W * 2, -4, 4), *out = dev(n), *m = dev(nt), *soft = dev(nt);
    float *dout = dev(n), *dx = dev(n), *dP = dev((size_t)H * W * 2), *scr = dev(token_mask_scratch_cuda(H, W));
    int *ids = NULL;
    CK(cudaMalloc((void **)&ids, sizeof(int) * B));
    CK(cudaMemset(ids, 0, sizeof(int) * B));
    g_bufs.push_back(ids);
    mv_mask_args a = {true, true, false, false, 1.0f, 1, 1, 1, ids};
    add_row(name, fmt("%dx%dx%dx%d", B, H, W, C), count,
            [=] { token_mask_forward_cuda(out, m, soft, x, P, scr, &a, B, H, W, C, H, W, 0); },
            [=] { token_mask_backward_cuda(dx, dP, dout, NULL, x, m, soft, scr, &a, B, H, W, C, H, W, 0); }, (double)n,
            3.0 * n, 8.0 * n);
}

static void b_patch_gather(const char *name, int count, int B, int H, int W, int C) {
    size_t nin = (size_t)B * H * W * C, nout = (size_t)B * ((H + 1) / 2) * ((W + 1) / 2) * 4 * C;
    float *in = dev(nin), *out = dev(nout), *dout = dev(nout), *din = dev(nin);
    add_row(name, fmt("%dx%dx%dx%d", B, H, W, C), count, [=] { patch_gather_forward_cuda(out, in, B, H, W, C, 0); },
            [=] { patch_gather_backward_cuda(din, dout, B, H, W, C, 0); }, 0, (double)nin, 8.0 * nin);
}

static void b_cross_entropy(const char *name, int count, int N, int K) {
    float *logits = dev((size_t)N * K, -3, 3), *dl = dev((size_t)N * K);
    uint8_t *labels = NULL;
    double *loss = NULL;
    CK(cudaMalloc((void **)&labels, N));
    CK(cudaMalloc((void **)&loss, sizeof(double)));
    g_bufs.push_back(labels);
    g_bufs.push_back(loss);
    // Labels 0..22 by a hash: the ones >= K are "ignore" (255), about a sixth of the pixels.
    static std::vector<uint8_t> pattern(PATTERN);
    for (size_t i = 0; i < PATTERN; i++) {
        uint32_t h = ((uint32_t)i * 2654435761u) >> 7;
        pattern[i] = (int)(h % 23) >= K ? 255 : (uint8_t)(h % 23);
    }
    fill_pattern(labels, N, pattern.data(), PATTERN);
    add_row(name, fmt("%dx%d", N, K), count,
            [=] { cross_entropy_forward_backward_cuda(dl, loss, logits, labels, N, K, (double)N, 1.0f, 0); }, nullptr,
            6.0 * N * K, 0, 8.0 * N * K);
}

static void write_outputs(const char *dir, const char *tag, const char *gpu, int B, int H, int W) {
    double step_ms = 0, step_fl = 0;
    for (const Row &r : g_rows) {
        step_ms += r.count * (r.ms_f + r.ms_b);
        step_fl += r.count * (r.flops_f + r.flops_b);
    }
    char head[512];
    snprintf(head, sizeof head,
             "maskvim-t ops at %dx%d, batch %d, %s GEMMs, on %s\n"
             "estimated step (sum of ops x calls): %.2f ms, %.2f images/s, %.2f TFLOP/s achieved, "
             "peak device memory in use %.2f GiB (largest single op)\n",
             H, W, B, tag, gpu, step_ms, B * 1000.0 / step_ms, step_fl / (step_ms * 1e-3) / 1e12,
             g_peak_used / 1073741824.0);
    printf("\n%s", head);
    printf("%-22s %-30s %5s %10s %10s %9s %9s %7s\n", "op", "shape", "calls", "fwd ms", "bwd ms", "fwd TF/s",
           "bwd TF/s", "share");
    for (const Row &r : g_rows)
        printf("%-22s %-30s %5d %10.3f %10.3f %9.2f %9.2f %6.1f%%\n", r.name.c_str(), r.shape.c_str(), r.count, r.ms_f,
               r.ms_b, r.flops_f / (r.ms_f * 1e-3) / 1e12, r.ms_b > 0 ? r.flops_b / (r.ms_b * 1e-3) / 1e12 : 0.0,
               100.0 * r.count * (r.ms_f + r.ms_b) / step_ms);
    if (!dir) return;
    std::string base = std::string(dir) + "/bench_cuda_ops" + (strcmp(tag, "fp32") ? std::string("_") + tag : std::string());
    FILE *t = fopen((base + ".txt").c_str(), "w"), *j = fopen((base + ".json").c_str(), "w");
    if (!t || !j) {
        fprintf(stderr, "bench_cuda_ops: cannot write %s.{txt,json}\n", base.c_str());
        exit(1);
    }
    fputs(head, t);
    fprintf(j, "{\"gpu\": \"%s\", \"gemm\": \"%s\", \"batch\": %d, \"size\": [%d, %d], \"iters\": %d,\n", gpu, tag, B,
            H, W, g_iters);
    fprintf(j, " \"estimated_step_ms\": %.4f, \"images_per_s\": %.4f, \"tflops\": %.4f, \"peak_mem_gib\": %.4f,\n",
            step_ms, B * 1000.0 / step_ms, step_fl / (step_ms * 1e-3) / 1e12, g_peak_used / 1073741824.0);
    fprintf(j, " \"ops\": [\n");
    for (size_t i = 0; i < g_rows.size(); i++) {
        const Row &r = g_rows[i];
        fprintf(t, "%-22s %-30s %5d %10.3f %10.3f\n", r.name.c_str(), r.shape.c_str(), r.count, r.ms_f, r.ms_b);
        fprintf(j, "  {\"op\": \"%s\", \"shape\": \"%s\", \"calls\": %d, \"fwd_ms\": %.5f, \"bwd_ms\": %.5f, "
                   "\"fwd_gflop\": %.4f, \"bwd_gflop\": %.4f}%s\n",
                r.name.c_str(), r.shape.c_str(), r.count, r.ms_f, r.ms_b, r.flops_f / 1e9, r.flops_b / 1e9,
                i + 1 < g_rows.size() ? "," : "");
    }
    fprintf(j, " ]}\n");
    fclose(t);
    fclose(j);
}

int main(int argc, char **argv) {
    int B = 2, H = 512, W = 1024;
    mv_cuda_precision prec = MV_PREC_FP32;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (sscanf(argv[++i], "%dx%d", &H, &W) != 2) H = 0;
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) g_iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tf32")) prec = MV_PREC_TF32;
        else if (!strcmp(argv[i], "--bf16")) prec = MV_PREC_BF16;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: bench_cuda_ops [--batch B] [--size HxW] [--iters N] [--tf32|--bf16] [--out DIR]\n");
            return 2;
        }
    }
    if (B < 1 || H < 32 || W < 32 || H % 32 || W % 32 || g_iters < 1) {
        fprintf(stderr, "bench_cuda_ops: need batch >= 1, iters >= 1 and a size that is a multiple of 32\n");
        return 2;
    }
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        printf("SKIP: no CUDA device (cudaGetDeviceCount: %s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return 0;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    if (mv_cuda_init(0) < 0) {
        fprintf(stderr, "bench_cuda_ops: %s\n", mv_last_error());
        return 1;
    }
    mv_cuda_set_precision(prec);
    printf("bench_cuda_ops: maskvim-t at %dx%d, batch %d, %s GEMMs, %d timed calls per op, on %s\n", H, W, B,
           mv_cuda_precision_name(prec), g_iters, prop.name);

    // maskvim-t: dims 96,192,384,768, depths 2,2,9,2, d_state 16, decoder 512, aux 256, 19 classes.
    const int dims[4] = {96, 192, 384, 768}, depths[4] = {2, 2, 9, 2}, D = 512, AUX = 256, NCLS = 19, NS = 16;
    int h0 = H / 4, w0 = W / 4;
    b_conv2d("patch_embed conv4x4", 1, B, H, W, 3, dims[0], 4, 4);
    b_layernorm("patch_embed norm", 1, B * h0 * w0, dims[0]);
    for (int i = 0; i < 4; i++) {
        int h = h0 >> i, w = w0 >> i, C = dims[i], E = 2 * C, R = (C + 15) / 16, n = depths[i], rows = B * h * w;
        char tag[32];
        snprintf(tag, sizeof tag, "enc%d ", i);
        std::string t(tag);
        if (i < 3) b_token_mask((t + "token_mask").c_str(), n, B, h, w, C);
        b_layernorm((t + "norm").c_str(), n, rows, C);
        b_linear((t + "in_proj").c_str(), n, rows, C, 2 * E, false);
        b_dwconv((t + "dwconv").c_str(), n, B, h, w, E);
        b_pointwise((t + "silu").c_str(), 2 * n, B, (size_t)h * w * E, 1);
        b_scan((t + "ss2d_scan").c_str(), n, B, h, w, E, R, NS);
        b_layernorm((t + "out_norm").c_str(), n, rows, E);
        b_pointwise((t + "mul").c_str(), n, B, (size_t)h * w * E, 2);
        b_linear((t + "out_proj").c_str(), n, rows, E, C, false);
        b_pointwise((t + "residual").c_str(), n, B, (size_t)h * w * C, 3);
        b_layernorm((t + "outnorm").c_str(), 1, rows, C);
        if (i < 3) {
            b_patch_gather((t + "downsample gather").c_str(), 1, B, h, w, C);
            b_layernorm((t + "downsample norm").c_str(), 1, B * (h / 2) * (w / 2), 4 * C);
            b_linear((t + "downsample linear").c_str(), 1, B * (h / 2) * (w / 2), 4 * C, 2 * C, false);
        }
    }
    // Decoder laterals 0..2: pre_mlp, a masked VSS block at D channels, ln.
    for (int i = 0; i < 3; i++) {
        int h = h0 >> i, w = w0 >> i, rows = B * h * w;
        char tag[32];
        snprintf(tag, sizeof tag, "dec%d ", i);
        std::string t(tag);
        b_linear((t + "pre_mlp").c_str(), 1, rows, dims[i], D, true);
        b_token_mask((t + "token_mask").c_str(), 1, B, h, w, D);
        b_layernorm((t + "norm+ln").c_str(), 2, rows, D);
        b_linear((t + "in_proj").c_str(), 1, rows, D, 4 * D, false);
        b_dwconv((t + "dwconv").c_str(), 1, B, h, w, 2 * D);
        b_pointwise((t + "silu").c_str(), 2, B, (size_t)h * w * 2 * D, 1);
        b_scan((t + "ss2d_scan").c_str(), 1, B, h, w, 2 * D, (D + 15) / 16, NS);
        b_layernorm((t + "out_norm").c_str(), 1, rows, 2 * D);
        b_pointwise((t + "mul").c_str(), 1, B, (size_t)h * w * 2 * D, 2);
        b_linear((t + "out_proj").c_str(), 1, rows, 2 * D, D, false);
        b_conv3x3((t + "fpn_conv").c_str(), 1, B, h, w, D, D);
        b_batchnorm((t + "fpn bn").c_str(), 1, rows, D);
        b_pointwise((t + "fpn relu").c_str(), 1, B, (size_t)h * w * D, 0);
    }
    // PSP on F3, top-down path, fusion, heads and losses.
    int h3 = h0 >> 3, w3 = w0 >> 3;
    const int scales[4] = {1, 2, 3, 6};
    for (int s = 0; s < 4; s++) {
        b_avgpool(fmt("psp pool %d", scales[s]).c_str(), 1, B, h3, w3, scales[s], dims[3]);
        b_linear(fmt("psp conv1x1 %d", scales[s]).c_str(), 1, B * scales[s] * scales[s], dims[3], D, false);
        b_bilinear(fmt("psp resize %d", scales[s]).c_str(), 1, B, scales[s], scales[s], h3, w3, D);
    }
    b_batchnorm("psp bn", 4, B * 36, D);
    b_concat("psp concat", 1, B * h3 * w3, D, 5);
    b_conv3x3("psp bottleneck", 1, B, h3, w3, dims[3] + 4 * D, D);
    b_batchnorm("psp bottleneck bn", 1, B * h3 * w3, D);
    for (int i = 3; i >= 1; i--)
        b_bilinear(fmt("top-down resize %d", i).c_str(), 1, B, h0 >> i, w0 >> i, h0 >> (i - 1), w0 >> (i - 1), D);
    for (int i = 1; i <= 3; i++) b_bilinear(fmt("fuse resize %d", i).c_str(), 1, B, h0 >> i, w0 >> i, h0, w0, D);
    b_concat("fuse concat", 1, B * h0 * w0, D, 4);
    b_conv3x3("fpn_bottleneck", 1, B, h0, w0, 4 * D, D);
    b_batchnorm("fpn_bottleneck bn", 1, B * h0 * w0, D);
    b_linear("conv_seg", 1, B * h0 * w0, D, NCLS, true);
    b_pointwise("fpn_bottleneck relu", 1, B, (size_t)h0 * w0 * D, 0);
    b_conv3x3("aux conv", 1, B, h0 >> 2, w0 >> 2, dims[2], AUX);
    b_batchnorm("aux bn", 1, B * (h0 >> 2) * (w0 >> 2), AUX);
    b_linear("aux conv_seg", 1, B * (h0 >> 2) * (w0 >> 2), AUX, NCLS, true);
    b_bilinear("logits resize", 1, B, h0, w0, H, W, NCLS);
    b_bilinear("aux logits resize", 1, B, h0 >> 2, w0 >> 2, H, W, NCLS);
    b_cross_entropy("cross_entropy", 2, B * H * W, NCLS);

    write_outputs(out, mv_cuda_precision_name(prec), prop.name, B, H, W);
    mv_cuda_shutdown();
    return 0;
}
