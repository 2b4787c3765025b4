// The whole model on the GPU against the CPU model: the same weights and batch through
// `model_forward`/`model_backward` (CPU) and their device compile (core/model_ops.h), in
// training mode with Gumbel noise, Dropout2d and drop path switched ON (both backends draw them
// from the same keyed Philox streams, so masks and dropped channels must agree), for the
// paper's model and Table 6's variants, at the crop size and at an odd size. Compared: every
// loss (relative 1e-4), the logits, every parameter gradient and BatchNorm running statistic
// (max |gpu - cpu| / max |cpu| per tensor below 1e-3, the tolerance of the PyTorch comparison;
// absolute below 1e-6 where max |cpu| < 1e-6: gradients that are zero in exact arithmetic, such
// as an encoder norm's bias shift that a following BatchNorm removes, hold rounding noise only),
// the masks' keep ratios, and a second step on the same model (the arenas are reused: gradient
// accumulation and re-zeroing must be right).
//
// ctest: test_model_cuda (prints SKIP and passes without a GPU) and test_model_cuda_emu (the same
// program over the host emulation of the CUDA kernels, run in CI).
#include "core/device/model_device.h"
#include "core/error.h"
#include "kernels/cuda/ops_cuda.h"
#include "tests/cuda/test_batch.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failed, g_checks;

static void check(bool ok, const char *what, double err, double tol) {
    g_checks++;
    if (!ok) g_failed++;
    if (!ok) printf("  FAIL %-60s error %.3e (tolerance %.0e)\n", what, err, tol);
}

static double max_rel(const float *a, const float *b, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= diff)) diff = d;   // NaN sticks
        if (fabs(a[i]) > scale) scale = fabs(a[i]);
    }
    return scale >= 1e-6 ? diff / scale : diff;
}


static int run_case(const char *name, const char *const *sets, int B, int H, int W) {
    mv_model_config cfg;
    model_config_preset(&cfg, "maskvim-nano");
    for (int i = 0; sets[i]; i += 2)
        if (model_config_set(&cfg, sets[i], sets[i + 1]) < 0) {
            printf("  FAIL %s: %s\n", name, mv_last_error());
            return -1;
        }
    mv_model cpu, gpu;
    if (model_build(&cpu, &cfg) < 0 || model_build(&gpu, &cfg) < 0) {
        printf("  FAIL %s: %s\n", name, mv_last_error());
        return -1;
    }
    params_init(&cpu.params, 3);
    memcpy(gpu.params.params, cpu.params.params, sizeof(float) * cpu.params.num_params);
    memcpy(gpu.params.buffers, cpu.params.buffers, sizeof(float) * cpu.params.num_buffers);
    if (model_to_device(&gpu) < 0) {
        printf("  FAIL %s: %s\n", name, mv_last_error());
        return -1;
    }
    int K = cfg.num_classes, ids[4] = {5, 9, 2, 7};
    float *img = malloc(sizeof(float) * B * 3 * H * W);
    uint8_t *lab = malloc((size_t)B * H * W);
    make_test_batch(img, lab, B, H, W, K, 0);
    mv_device_batch st = {0};
    char what[160];
    for (int step = 0; step < 2; step++) {
        mv_run_ctx ctx = {.training = true, .seed = 77, .step = (uint32_t)(10 + step), .sample_ids = ids, .world_size = 1};
        params_zero_grads(&cpu.params);
        model_device_zero_grads(&gpu);
        if (model_plan(&cpu, B, H, W, MV_PLAN_TRAIN) < 0 || model_forward(&cpu, img, lab, &ctx) < 0) {
            printf("  FAIL %s: %s\n", name, mv_last_error());
            return -1;
        }
        model_backward(&cpu, &ctx);
        if (model_device_forward(&gpu, &st, img, lab, B, H, W, &ctx) < 0) {
            printf("  FAIL %s: %s\n", name, mv_last_error());
            return -1;
        }
        model_backward_device(&gpu, &ctx);
        if (model_device_download(&gpu, true) < 0) {
            printf("  FAIL %s: %s\n", name, mv_last_error());
            return -1;
        }
        const double lc[5] = {cpu.loss_total, cpu.loss_ce, cpu.loss_aux, cpu.loss_ratio, cpu.loss_position};
        const double lg[5] = {gpu.loss_total, gpu.loss_ce, gpu.loss_aux, gpu.loss_ratio, gpu.loss_position};
        const char *ln[5] = {"total", "ce", "aux", "ratio", "position"};
        for (int i = 0; i < 5; i++) {
            double err = fabs(lc[i] - lg[i]) / fmax(fabs(lc[i]), 1e-6);
            snprintf(what, sizeof what, "%s step %d loss_%s (%.6f vs %.6f)", name, step, ln[i], lc[i], lg[i]);
            check(err < 1e-4, what, err, 1e-4);
        }
        for (int i = 0; i < 4; i++) {
            double err = fabs(cpu.keep_enc[i] - gpu.keep_enc[i]);
            snprintf(what, sizeof what, "%s step %d keep ratio of encoder stage %d", name, step, i);
            check(err < 1e-5, what, err, 1e-5);
        }
        size_t nlog = (size_t)B * cpu.Hs[0] * cpu.Ws[0] * K;
        float *logits = malloc(sizeof(float) * nlog);
        cudaMemcpy(logits, gpu.logits, sizeof(float) * nlog, cudaMemcpyDeviceToHost);
        double err = max_rel(cpu.logits, logits, nlog);
        snprintf(what, sizeof what, "%s step %d logits", name, step);
        check(err < 1e-4, what, err, 1e-4);
        free(logits);
        int worst = -1;
        double worst_err = 0;
        for (int i = 0; i < cpu.params.count; i++) {
            const mv_param *q = &cpu.params.items[i];
            const float *a = (q->is_buffer ? cpu.params.buffers : cpu.params.grads) + q->offset;
            const float *b = (q->is_buffer ? gpu.params.buffers : gpu.params.grads) + q->offset;
            double e = max_rel(a, b, q->numel);
            snprintf(what, sizeof what, "%s step %d %s%s", name, step, q->is_buffer ? "" : "grad ", q->name);
            check(e < 1e-3, what, e, 1e-3);
            if (!(e <= worst_err)) { worst_err = e; worst = i; }
        }
        if (step == 1)
            printf("ok   %-26s B=%d %dx%d: loss %.6f vs %.6f, worst tensor %s %.2e\n", name, B, H, W, lc[0], lg[0],
                   worst >= 0 ? cpu.params.items[worst].name : "-", worst_err);
    }
    free(img);
    free(lab);
    mv_device_batch_free(&st);
    model_device_free(&gpu);
    model_free(&gpu);
    model_free(&cpu);
    return 0;
}

int main(void) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        printf("SKIP: no CUDA device (cudaGetDeviceCount: %s)\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return 0;
    }
    if (mv_cuda_init(0) < 0) {
        fprintf(stderr, "test_model_cuda: %s\n", mv_last_error());
        return 1;
    }
    printf("test_model_cuda%s\n", mv_cuda_emulated() ? " (host emulation)" : "");
    const char *paper[] = {NULL};
    const char *per_stage[] = {"mask.lambda", "0.9,0.7,0.5", "model.avg_non_ignore", "true",
                               "model.decoder_depths", "1,2,1", NULL};
    const char *linear_all[] = {"model.head", "linear", "mask.decoder", "false", "mask.encoder_stages", "1,1,1,1", NULL};
    const char *vss[] = {"model.context", "vss", "mask.mode", "zero", "mask.layout", "official", NULL};
    run_case("maskvim (paper)", paper, 2, 64, 64);
    run_case("maskvim odd size", paper, 2, 72, 104);
    run_case("per-stage lambda", per_stage, 2, 64, 64);
    run_case("linear head, all stages", linear_all, 2, 64, 64);
    run_case("vss context", vss, 2, 64, 64);
    mv_cuda_shutdown();
    printf("%d checks, %d failed\n", g_checks, g_failed);
    return g_failed ? 1 : 0;
}
