// `maskvim bench`: times one training step (forward, backward, optimizer) of a preset at a
// batch and image size, per op and in total, against the sgemm peak measured in the same run.
#include "core/clock.h"
#include "launch/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/huge_alloc.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/schedule.h"
#include "kernels/cpu/profile.h"
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim bench [--preset NAME | --config FILE] [--set key=value ...]\n"
        "                     [--batch B] [--size HxW] [--iters N] [--warmup N] [--json FILE]\n"
        "       maskvim bench --scan B,E,H,W,N [--iters N]\n\n"
        "Times the training step on the CPU: forward, backward and the AdamW update, per op kind\n"
        "(ms, GFLOP/s) and in total, with peak resident memory and the share of this machine's\n"
        "sgemm peak (measured first, in the same run). Defaults: maskvim-nano, batch 2, 128x256,\n"
        "3 timed steps after 1 warm-up step, all random draws on (Gumbel noise, drop path).\n\n"
        "  --preset NAME      maskvim-nano (default), maskvim-t, maskvim-s, maskvim-b\n"
        "  --config FILE      take the model from a configuration file instead of a preset\n"
        "  --set key=value    override a configuration key (repeatable)\n"
        "  --batch B          images per step (default 2)\n"
        "  --size HxW         image size (default 128x256; at least 32x32)\n"
        "  --iters N          timed steps (default 3)\n"
        "  --warmup N         untimed steps first (default 1)\n"
        "  --json FILE        also write the totals as one JSON object\n"
        "  --scan B,E,H,W,N   time only the SS2D core (projections, four-direction selective scan\n"
        "                     and merge, forward + backward) at these sizes (dt_rank = E/32):\n"
        "                     one untimed pass, then --iters timed ones, printed as one JSON line;\n"
        "                     the model options above do not apply\n");
}

// Zeroed floats, on huge pages as the model's arenas are, so that the timings match the step's.
static float *fbuf(size_t n) { return mv_huge_zalloc(sizeof(float) * n); }

// The SS2D core alone: what tests/reference/bench_torch.py --scan-only times in PyTorch
// (there without the projections, so this measures more work).
static int bench_scan(const char *spec, int iters) {
    int B, E, H, W, N;
    if (sscanf(spec, "%d,%d,%d,%d,%d", &B, &E, &H, &W, &N) != 5 || B < 1 || E < 1 || H < 1 || W < 1 || N < 1 || N > 64) {
        fprintf(stderr, "maskvim bench: --scan wants B,E,H,W,N (N <= 64), got '%s'\n", spec);
        return 2;
    }
    // The largest buffers hold K x B x H x W x E (and x N) floats: refuse what cannot be
    // allocated (or would overflow the int sizes below) with a message instead of aborting.
    double elems = (double)SCAN_K * B * H * W * E * N;
    if ((double)H * W > 1e9 || elems > 4e9) {
        fprintf(stderr, "maskvim bench: --scan %s is too large (%.3g scan state values; at most 4e9)\n", spec, elems);
        return 2;
    }
    int L = H * W, R = (E / 2 + 15) / 16, P = R + 2 * N;
    size_t nx = (size_t)B * L * E;
    float *x = fbuf(nx), *y = fbuf(nx), *dy = fbuf(nx), *dx = fbuf(nx);
    float *xpw = fbuf((size_t)SCAN_K * P * E), *gxpw = fbuf((size_t)SCAN_K * P * E);
    float *dtw = fbuf((size_t)SCAN_K * E * R), *gdtw = fbuf((size_t)SCAN_K * E * R);
    float *dtb = fbuf((size_t)SCAN_K * E), *gdtb = fbuf((size_t)SCAN_K * E);
    float *Al = fbuf((size_t)SCAN_K * E * N), *gAl = fbuf((size_t)SCAN_K * E * N);
    float *Ds = fbuf((size_t)SCAN_K * E), *gDs = fbuf((size_t)SCAN_K * E);
    float *xdbl = fbuf((size_t)B * L * SCAN_K * P), *delta = fbuf(SCAN_K * nx);
    float *states = fbuf(ss2d_scan_states_size(B, L, E, N)), *scratch = fbuf(ss2d_scan_scratch(B, L, E, R, N));
    for (size_t i = 0; i < nx; i++) { x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f; dy[i] = (float)((i * 11) % 7) / 7.0f - 0.5f; }
    for (int i = 0; i < SCAN_K * P * E; i++) xpw[i] = (float)((i * 13) % 17) / 170.0f - 0.05f;
    for (int i = 0; i < SCAN_K * E * R; i++) dtw[i] = 0.1f;
    for (int i = 0; i < SCAN_K * E; i++) { dtb[i] = -2.0f; Ds[i] = 1.0f; }
    for (int i = 0; i < SCAN_K * E * N; i++) Al[i] = logf((float)(i % N) + 1.0f);
    cpu_flush_denormals();
    double tf = 0, tb = 0;
    for (int it = 0; it <= iters; it++) {
        double t0 = mv_now_s();
        ss2d_scan_forward(y, xdbl, delta, states, x, xpw, dtw, dtb, Al, Ds, scratch, B, H, W, E, R, N);
        double t1 = mv_now_s();
        ss2d_scan_backward(dx, gxpw, gdtw, gdtb, gAl, gDs, dy, x, xdbl, delta, states, xpw, dtw, dtb, Al, Ds, scratch, B, H, W, E, R, N);
        double t2 = mv_now_s();
        if (it > 0) { tf += t1 - t0; tb += t2 - t1; }
    }
    printf("{\"mode\": \"scan\", \"B\": %d, \"K\": %d, \"E\": %d, \"L\": %d, \"N\": %d, \"threads\": %d, "
           "\"fwd_ms\": %.3f, \"bwd_ms\": %.3f, \"ms_per_step\": %.3f}\n", B, SCAN_K, E, L, N, omp_get_max_threads(),
           1e3 * tf / iters, 1e3 * tb / iters, 1e3 * (tf + tb) / iters);
    float *all[] = {x, y, dy, dx, xpw, gxpw, dtw, gdtw, dtb, gdtb, Al, gAl, Ds, gDs, xdbl, delta, states, scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    return 0;
}

// Best of a few large square sgemm calls: the ceiling every GEMM-shaped op is measured against.
static double sgemm_peak_gflops(void) {
    int n = 1536;
    float *a = mv_malloc(sizeof(float) * n * n), *b = mv_malloc(sizeof(float) * n * n), *c = mv_malloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    double best = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = mv_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * n / (mv_now_s() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a); free(b); free(c);
    return best;
}

// A whole decimal number in [lo, hi]; 0, or -1 after printing why.
static int bench_int(const char *opt, const char *v, long lo, long hi, int *out) {
    long n;
    if (cli_parse_long(v, lo, hi, &n) < 0) {
        fprintf(stderr, "maskvim bench: %s '%s': expected an integer in [%ld, %ld]\n", opt, v, lo, hi);
        return -1;
    }
    *out = (int)n;
    return 0;
}

// "HxW", each side a whole number in [32, 16384].
static int bench_size(const char *v, int *h, int *w) {
    if (cli_parse_hw(v, 32, 16384, h, w) == 0) return 0;
    fprintf(stderr, "maskvim bench: --size wants HxW with sides in [32, 16384], got '%s'\n", v);
    return -1;
}

// The command line of `maskvim bench`.
typedef struct {
    const char *config, *json, *scan;
    const char **sets;    // "model.preset=NAME" first unless --config, then the --set values; cmd_bench frees it
    int nsets;
    char preset[96];      // the "model.preset=NAME" that sets[0] points to
    int B, H, W, iters, warmup;
} bench_args;

// parse_bench_args's result when the command goes on (otherwise: the exit status).
#define GO_ON (-1)

// Reads the command line into *a (a->sets: the preset's --set first, where one applies): GO_ON,
// or the status to exit with now (0 after --help, 2 for a usage error, its message printed).
static int parse_bench_args(bench_args *a, int argc, char **argv) {
    *a = (bench_args){.sets = mv_calloc(argc + 2, sizeof(char *)), .preset = "model.preset=maskvim-nano",
                      .B = 2, .H = 128, .W = 256, .iters = 3, .warmup = 1};
    const char *preset_given = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { usage(stdout); return 0; }
        if (!v) { cli_missing_value("bench", o, usage); return 2; }
        int bad = 0;
        if (!strcmp(o, "--preset")) { snprintf(a->preset, sizeof a->preset, "model.preset=%s", v); preset_given = v; }
        else if (!strcmp(o, "--config")) a->config = v;
        else if (!strcmp(o, "--set")) a->sets[a->nsets++] = v;
        else if (!strcmp(o, "--batch")) bad = bench_int(o, v, 1, 4096, &a->B);
        else if (!strcmp(o, "--size")) bad = bench_size(v, &a->H, &a->W);
        else if (!strcmp(o, "--iters")) bad = bench_int(o, v, 1, 1000000, &a->iters);
        else if (!strcmp(o, "--warmup")) bad = bench_int(o, v, 0, 1000000, &a->warmup);
        else if (!strcmp(o, "--json")) a->json = v;
        else if (!strcmp(o, "--scan")) a->scan = v;
        else { cli_unknown_option("bench", o, usage); return 2; }
        if (bad < 0) return 2;   // bench_int and bench_size printed why
        i++;
    }
    if (a->iters < 1 || a->B < 1 || a->warmup < 0) {
        fprintf(stderr, "maskvim bench: --iters and --batch must be positive, --warmup at least 0\n");
        return 2;
    }
    if (a->config && preset_given) {
        fprintf(stderr, "maskvim bench: give --preset NAME or --config FILE, not both (a preset over a file's model "
                        "keys would leave the file's model under the preset's name)\n");
        return 2;
    }
    if (preset_given && check_preset("bench", preset_given) < 0) return 2;
    if (!a->config) {   // the preset goes first: a --set of a model key applies on top of it
        memmove(a->sets + 1, a->sets, sizeof(char *) * a->nsets);
        a->sets[0] = a->preset;
        a->nsets++;
    }
    return GO_ON;
}

// The timed training steps and their report (and --json). Returns the exit status.
static int run_bench(const bench_args *a) {
    int B = a->B, H = a->H, W = a->W, iters = a->iters, warmup = a->warmup;
    const char *json = a->json;
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    mv_model *m = mv_calloc(1, sizeof *m);
    int rc = config_load(cfg, a->config, a->nsets, a->sets);
    if (rc == 0) rc = model_build(m, &cfg->model);
    if (rc == 0) rc = model_plan(m, B, H, W, MV_PLAN_TRAIN);
    // --json is opened before the timing, so that a path it cannot be written to fails at once;
    // the file appears, whole, only at the end.
    mv_atomic_file out = {0};
    if (rc == 0 && json) rc = mv_atomic_open(&out, json);
    if (rc < 0) {
        fprintf(stderr, "maskvim bench: %s\n", mv_last_error());
        model_free(m); free(m); free(cfg);
        return 1;
    }
    params_init(&m->params, 0);
    mv_optimizer opt;
    if (optimizer_init(&opt, &m->params, &cfg->optim) < 0) {
        fprintf(stderr, "maskvim bench: %s\n", mv_last_error());
        if (json) mv_atomic_abort(&out);
        model_free(m); free(m); free(cfg);
        return 1;
    }
    float *img = mv_malloc(sizeof(float) * B * 3 * H * W);
    uint8_t *lab = mv_malloc((size_t)B * H * W);
    int *ids = mv_malloc(sizeof(int) * B);
    for (long i = 0; i < (long)B * 3 * H * W; i++) img[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
    for (long i = 0; i < (long)B * H * W; i++) lab[i] = (uint8_t)((i / W / 8 + i % W / 16) % cfg->model.num_classes);
    for (int b = 0; b < B; b++) ids[b] = b;

    double peak = sgemm_peak_gflops();
    double t_fwd = 0, t_bwd = 0, t_opt = 0;
    for (int it = 0; it < warmup + iters; it++) {
        if (it == warmup) { prof_reset(); mv_prof_enabled = true; }
        mv_run_ctx ctx = {.training = true, .step = (uint32_t)it, .sample_ids = ids, .world_size = 1};
        double t0 = mv_now_s();
        params_zero_grads(&m->params);
        model_forward(m, img, lab, &ctx);
        double t1 = mv_now_s();
        model_backward(m, &ctx);
        double t2 = mv_now_s();
        optimizer_step(&opt, &m->params, &cfg->optim, &cfg->schedule, it);
        double t3 = mv_now_s();
        if (it >= warmup) { t_fwd += t1 - t0; t_bwd += t2 - t1; t_opt += t3 - t2; }
        // The report comes at the end: a large model's steps say they are happening meanwhile.
        if (t3 - t0 > 1.0)
            fprintf(stderr, "maskvim bench: step %d of %d%s: %.1f s\n", it + 1, warmup + iters,
                    it < warmup ? " (warm-up)" : "", t3 - t0);
    }
    mv_prof_enabled = false;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double step = (t_fwd + t_bwd + t_opt) / iters, flops = 0, op_time = 0;
    for (int k = 0; k < PROF_COUNT; k++)
        for (int ph = 0; ph < 2; ph++) { flops += mv_prof_table[k].flops[ph] / iters; op_time += mv_prof_table[k].seconds[ph] / iters; }

    char model[128];
    model_config_describe(model, sizeof model, &cfg->model);
    printf("maskvim bench: %s, batch %d, %dx%d, %zu parameters, %d threads\n", model, B, H, W,
           model_num_parameters(m), omp_get_max_threads());
    printf("sgemm peak (1536^3, measured now): %.1f GFLOP/s\n\n", peak);
    printf("%-20s %10s %10s %10s %10s %9s\n", "op", "fwd ms", "bwd ms", "GFLOP", "GFLOP/s", "% step");
    for (int k = 0; k < PROF_COUNT; k++) {
        mv_prof_entry *e = &mv_prof_table[k];
        double s = (e->seconds[0] + e->seconds[1]) / iters, f = (e->flops[0] + e->flops[1]) / iters;
        if (e->calls[0] + e->calls[1] == 0) continue;
        printf("%-20s %10.2f %10.2f %10.3f %10.1f %8.1f%%\n", prof_name(k), 1e3 * e->seconds[0] / iters,
               1e3 * e->seconds[1] / iters, f / 1e9, s > 0 ? f / s / 1e9 : 0, 100 * s / step);
    }
    printf("%-20s %10.2f %10s %10s %10s %8.1f%%\n", "(outside ops)", 1e3 * (step - op_time), "", "", "", 100 * (step - op_time) / step);
    printf("\nstep %.1f ms (forward %.1f, backward %.1f, optimizer %.1f): %.2f images/s\n", 1e3 * step,
           1e3 * t_fwd / iters, 1e3 * t_bwd / iters, 1e3 * t_opt / iters, B / step);
    printf("model FLOPs per step %.2f GFLOP: %.1f GFLOP/s = %.1f%% of the sgemm peak\n", flops / 1e9,
           flops / step / 1e9, 100 * flops / step / 1e9 / peak);
    printf("peak resident memory %.1f MiB (parameters %.1f MiB, activations+gradients %.1f MiB, scratch %.1f MiB)\n",
           ru.ru_maxrss / 1024.0, m->params.num_params * 4.0 / (1 << 20),
           (m->acts.used + m->dacts.used + m->dtemps_floats) * 4.0 / (1 << 20), m->acts.scratch * 4.0 / (1 << 20));
    int status = 0;
    if (json) {
        fprintf(out.f, "{\"preset\": \"%s\", \"model\": \"%s\", \"batch\": %d, \"height\": %d, \"width\": %d, \"threads\": %d, "
                       "\"ms_per_step\": %.3f, \"forward_ms\": %.3f, \"backward_ms\": %.3f, \"optimizer_ms\": %.3f, "
                       "\"images_per_s\": %.4f, \"gflop_per_step\": %.4f, \"gflops\": %.2f, \"sgemm_peak_gflops\": %.2f, "
                       "\"peak_fraction\": %.4f, \"peak_rss_mib\": %.1f}\n",
                cfg->model.preset, model, B, H, W, omp_get_max_threads(), 1e3 * step, 1e3 * t_fwd / iters,
                1e3 * t_bwd / iters, 1e3 * t_opt / iters, B / step, flops / 1e9, flops / step / 1e9, peak,
                flops / step / 1e9 / peak, ru.ru_maxrss / 1024.0);
        if (mv_atomic_commit(&out, false) < 0) { fprintf(stderr, "maskvim bench: %s\n", mv_last_error()); status = 1; }
    }
    optimizer_free(&opt);
    free(img); free(lab); free(ids);
    model_free(m); free(m); free(cfg);
    return status;
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    int status = parse_bench_args(&a, argc, argv);
    if (status == GO_ON) status = a.scan ? bench_scan(a.scan, a.iters) : run_bench(&a);
    free(a.sets);
    return status;
}
