// The training step of the GPU model, timed: forward + backward + AdamW on the device for a
// preset at a batch shape, in fp32, TF32 or BF16 GEMM mode. Prints images/s, ms per step,
// achieved TFLOP/s (the model's FLOPs are counted by the CPU model's profiler at batch 1 and
// scaled by the batch, which is exact: every op is linear in the batch), device memory, and a
// per-op table from CUDA events around every op (a separate profiled pass, so that the event
// overhead stays out of the step time). tests/gpu/device_checks.sh runs it for maskvim-t at
// 512x1024, batch 2.
//
//   bench_model_cuda [--preset maskvim-t] [--set model.KEY=value|mask.KEY=value ...] [--batch 2]
//                    [--size 512x1024] [--iters 10] [--warmup 3] [--precision fp32|tf32|bf16]
//                    [--no-flops] [--json F]
// The optimizer is the paper's AdamW (the default optim/schedule settings). The program needs no
// YAML or HDF5, so that it builds on a bare CUDA machine (tests/gpu/device_checks.sh).
#include "core/device/model_device.h"
#include "core/config.h"
#include "core/error.h"
#include "core/optimizer.h"
#include "core/schedule.h"
#include "kernels/cpu/profile.h"
#include "kernels/cuda/ops_cuda.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: bench_model_cuda [--preset NAME] [--set key=value ...] [--batch B] [--size HxW]\n"
               "                        [--iters N] [--warmup N] [--precision fp32|tf32|bf16] [--no-flops] [--json FILE]\n");
}

// FLOPs of one training step per op kind and pass, from the CPU model at batch 1.
static int count_flops(double (*flops)[2], const mv_model_config *cfg, int H, int W) {
    mv_model m;
    MV_TRY(model_build(&m, cfg));
    if (model_plan(&m, 1, H, W, MV_PLAN_TRAIN) < 0) { model_free(&m); return -1; }
    params_init(&m.params, 0);
    float *img = calloc((size_t)3 * H * W, sizeof(float));
    uint8_t *lab = calloc((size_t)H * W, 1);
    int id = 0;
    mv_run_ctx ctx = {.training = true, .sample_ids = &id, .world_size = 1};
    prof_reset();
    mv_prof_enabled = true;
    int rc = model_forward(&m, img, lab, &ctx);
    if (rc == 0) model_backward(&m, &ctx);
    mv_prof_enabled = false;
    for (int k = 0; k < PROF_COUNT; k++)
        for (int ph = 0; ph < 2; ph++) flops[k][ph] = mv_prof_table[k].flops[ph];
    free(img); free(lab);
    model_free(&m);
    return rc;
}

typedef struct { float *m, *v; } dev_moments;

static void adamw_device(mv_model *m, dev_moments *mom, const mv_optimizer *o, const mv_config *cfg, long iter, int step) {
    const mv_params *p = &m->params;
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        if (q->is_buffer) continue;
        double lr = schedule_lr(&cfg->schedule, cfg->optim.lr * o->lr_mult[i], iter);
        adamw_update_cuda(p->dev_params + q->offset, p->dev_grads + q->offset, mom->m + q->offset, mom->v + q->offset,
                          q->numel, lr, cfg->optim.betas[0], cfg->optim.betas[1], cfg->optim.eps,
                          cfg->optim.weight_decay * o->decay_mult[i], step, mv_device_stream());
    }
}

int main(int argc, char **argv) {
    const char *json = NULL, *precision = "fp32";
    const char *sets[64];
    const char *preset = "maskvim-t";
    int nsets = 0, B = 2, H = 512, W = 1024, iters = 10, warmup = 3;
    bool flops_on = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--no-flops")) { flops_on = false; continue; }
        if (!v) { fprintf(stderr, "bench_model_cuda: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--set") && nsets < 63) sets[nsets++] = v;
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--size")) { if (sscanf(v, "%dx%d", &H, &W) != 2) { fprintf(stderr, "bench_model_cuda: --size wants HxW\n"); return 2; } }
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--json")) json = v;
        else { fprintf(stderr, "bench_model_cuda: unknown option '%s'\n", a); usage(stderr); return 2; }
        i++;
    }
    mv_cuda_precision prec = !strcmp(precision, "tf32") ? MV_PREC_TF32 : !strcmp(precision, "bf16") ? MV_PREC_BF16 : MV_PREC_FP32;
    if (strcmp(precision, "fp32") && prec == MV_PREC_FP32) { fprintf(stderr, "bench_model_cuda: --precision fp32|tf32|bf16\n"); return 2; }
    if (B < 1 || iters < 1 || warmup < 0) { fprintf(stderr, "bench_model_cuda: --batch and --iters must be positive\n"); return 2; }

    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        printf("SKIP: no CUDA device (cudaGetDeviceCount: %s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return 0;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) snprintf(prop.name, sizeof prop.name, "device 0");
    mv_config *cfg = calloc(1, sizeof *cfg);
    mv_model *m = calloc(1, sizeof *m);
    config_defaults(cfg);
    int rc = mv_cuda_init(0) < 0 || model_config_preset(&cfg->model, preset) < 0 ? -1 : 0;
    for (int i = 0; i < nsets && rc == 0; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq - sets[i] >= (long)sizeof key) { rc = mv_fail("--set '%s': expected model.KEY=VALUE", sets[i]); break; }
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        rc = model_config_set(&cfg->model, key, eq + 1);
    }
    if (rc < 0 || model_build(m, &cfg->model) < 0) {
        fprintf(stderr, "bench_model_cuda: %s\n", mv_last_error());
        return 1;
    }
    mv_cuda_set_precision(prec);
    double flops[PROF_COUNT][2] = {{0}}, total_flops = 0;
    if (flops_on) {
        if (count_flops(flops, &cfg->model, H, W) < 0) { fprintf(stderr, "bench_model_cuda: %s\n", mv_last_error()); return 1; }
        for (int k = 0; k < PROF_COUNT; k++) for (int ph = 0; ph < 2; ph++) { flops[k][ph] *= B; total_flops += flops[k][ph]; }
    }
    params_init(&m->params, 0);
    size_t free0 = 0, total = 0;
    cudaMemGetInfo(&free0, &total);
    if (model_to_device(m) < 0) { fprintf(stderr, "bench_model_cuda: %s\n", mv_last_error()); return 1; }
    mv_optimizer opt;
    optimizer_init(&opt, &m->params, &cfg->optim);
    dev_moments mom = {mv_arena_alloc(m->params.num_params + 16), mv_arena_alloc(m->params.num_params + 16)};
    if (!mom.m || !mom.v) { fprintf(stderr, "bench_model_cuda: out of GPU memory for the AdamW moments\n"); return 1; }
    cudaMemset(mom.m, 0, sizeof(float) * m->params.num_params);
    cudaMemset(mom.v, 0, sizeof(float) * m->params.num_params);

    float *img = malloc(sizeof(float) * B * 3 * H * W);
    uint8_t *lab = malloc((size_t)B * H * W);
    int *ids = malloc(sizeof(int) * B);
    for (long i = 0; i < (long)B * 3 * H * W; i++) img[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
    for (long i = 0; i < (long)B * H * W; i++) lab[i] = (uint8_t)((i / W / 8 + i % W / 16) % cfg->model.num_classes);
    for (int b = 0; b < B; b++) ids[b] = b;
    mv_device_batch st = {0};
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    double step_s = 0, seconds[PROF_COUNT][2] = {{0}};
    int step = 0;
    // timed steps, then one profiled step
    for (int it = 0; it < warmup + iters + 1; it++) {
        bool timed = it >= warmup && it < warmup + iters, profiled = it == warmup + iters;
        mv_run_ctx ctx = {.training = true, .step = (uint32_t)it, .sample_ids = ids, .world_size = 1};
        mv_dev_prof_enabled = profiled;
        if (timed) cudaEventRecord(e0, mv_device_stream());
        model_device_zero_grads(m);
        if (model_device_forward(m, &st, img, lab, B, H, W, &ctx) < 0) { fprintf(stderr, "bench_model_cuda: %s\n", mv_last_error()); return 1; }
        model_backward_device(m, &ctx);
        int prof_i = mv_dev_prof_begin(PROF_OPTIM, 1);
        adamw_device(m, &mom, &opt, cfg, it, ++step);
        mv_dev_prof_end(prof_i);
        if (timed) {
            cudaEventRecord(e1, mv_device_stream());
            cudaEventSynchronize(e1);
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            step_s += ms / 1e3;
        }
        if (profiled && mv_dev_prof_collect(seconds, PROF_COUNT) < 0) { fprintf(stderr, "bench_model_cuda: %s\n", mv_last_error()); return 1; }
        if (mv_cuda_status("training step") < 0) { fprintf(stderr, "bench_model_cuda: %s\n", mv_last_error()); return 1; }
    }
    mv_dev_prof_enabled = false;
    size_t free1 = 0;
    cudaMemGetInfo(&free1, &total);
    step_s /= iters;
    double prof_total = 0;
    for (int k = 0; k < PROF_COUNT; k++) prof_total += seconds[k][0] + seconds[k][1];

    printf("bench_model_cuda on %s%s: %s, batch %d, %dx%d, %zu parameters, GEMMs %s\n", prop.name,
           "", cfg->model.preset, B, H, W, model_num_parameters(m), precision);
    printf("\n%-20s %10s %10s %10s %10s %9s\n", "op (profiled step)", "fwd ms", "bwd ms", "GFLOP", "TFLOP/s", "% step");
    for (int k = 0; k < PROF_COUNT; k++) {
        double s = seconds[k][0] + seconds[k][1], f = flops[k][0] + flops[k][1];
        if (s == 0) continue;
        printf("%-20s %10.2f %10.2f %10.2f %10.1f %8.1f%%\n", prof_name(k), 1e3 * seconds[k][0], 1e3 * seconds[k][1],
               f / 1e9, f / s / 1e12, 100 * s / prof_total);
    }
    printf("\nstep %.2f ms (mean of %d after %d warm-up): %.2f images/s", 1e3 * step_s, iters, warmup, B / step_s);
    if (flops_on) printf(", %.1f GFLOP per step, %.1f TFLOP/s", total_flops / 1e9, total_flops / step_s / 1e12);
    printf("\ndevice memory in use %.2f GiB (parameters+gradients+moments %.2f GiB, activations+gradients %.2f GiB, scratch %.2f GiB)\n",
           (double)(total - free1) / (1 << 30), 4.0 * 4 * m->params.num_params / (1 << 30),
           (m->acts.used + m->dacts.used + m->dtemps_floats) * 4.0 / (1 << 30), m->acts.scratch * 4.0 / (1 << 30));
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) { fprintf(stderr, "bench_model_cuda: cannot write %s\n", json); return 1; }
        fprintf(f, "{\"device\": \"%s\", \"emulated\": %s, \"preset\": \"%s\", \"batch\": %d, \"height\": %d, \"width\": %d, "
                   "\"precision\": \"%s\", \"ms_per_step\": %.4f, \"images_per_s\": %.4f, \"gflop_per_step\": %.3f, "
                   "\"tflops\": %.4f, \"device_memory_gib\": %.3f}\n", prop.name, mv_cuda_emulated() ? "true" : "false",
                cfg->model.preset, B, H, W, precision, 1e3 * step_s, B / step_s, total_flops / 1e9,
                flops_on ? total_flops / step_s / 1e12 : 0.0, (double)(total - free1) / (1 << 30));
        fclose(f);
    }
    (void)free0;
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    mv_dev_prof_free();
    mv_device_batch_free(&st);
    mv_arena_release(mom.m);
    mv_arena_release(mom.v);
    optimizer_free(&opt);
    model_device_free(m);
    model_free(m);
    free(m); free(cfg); free(img); free(lab); free(ids);
    mv_cuda_shutdown();
    return 0;
}
