// Training on the GPU through the engine (core/device/engine_cuda.c), against training on the
// CPU: the same model, initial weights and batches, 8 steps of forward + backward + AdamW with
// every random draw on, and the learning-rate schedule of a real run. After the steps the two
// parameter vectors differ by less than 1e-5 (relative L2; the float rounding of two backends
// compounds over the steps, as between 1 and 2 ranks), every step's loss agrees to 1e-4, and the
// state that comes back from the device (to_host: parameters, BatchNorm statistics, AdamW
// moments) is what a checkpoint would hold: the moments within 1e-2 (relative L2). The moments
// are running averages of the gradients themselves, which two backends may agree on per tensor to
// about 1e-3 only (measured on an H200: m 5.9e-5, parameters 8.7e-7; with an earlier scan, m
// 4.6e-3). Then the evaluation path: an eval-mode forward at another image size and its logits
// on the host, against the CPU's.
//
// Under `mpirun -np 2` on two GPUs (a build with MPI) it is the data-parallel equivalence test of
// the GPU path: each rank trains on its GPU with batch 1 (its half of the global batch), NCCL
// averaging the gradients and summing SyncBN's and the ratio loss's statistics, while each rank
// also trains the CPU model on the whole batch of 2; the parameters must agree as above.
//
// In the host emulation it also checks what a GPU cannot show cheaply: that no cudaFree (which
// waits for the whole device, NCCL collectives of a stopped rank included) happens in backward,
// and that an attach which fails (the parameters do not fit the device) leaves no device memory
// behind, the cuBLAS handle's included. Its first argument, a number of steps (default 8),
// shortens the run.
//
// It needs no YAML, HDF5 or dataset (tests/gpu/device_checks.sh runs it on a bare CUDA
// machine). ctest: test_train_cuda (SKIP without a GPU) and test_train_cuda_emu (host emulation).
#include "core/engine.h"
#include "core/config.h"
#include "core/error.h"
#include "kernels/cuda/ops_cuda.h"
#include "tests/cuda/test_batch.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MV_CUDA_EMU
long emu_free_count(void);   // tests/cuda/emu/emu_runtime.cpp
#define FREES() emu_free_count()
#else
#define FREES() 0L
#endif


static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) { d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]); s += (double)a[i] * a[i]; }
    return sqrt(d / (s > 0 ? s : 1));
}

// Device memory in use, as the runtime reports it.
static size_t device_used(void) {
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    return total - free_b;
}

// An attach whose model does not fit must fail and free what it took (with run.device `auto`
// the run goes on on the CPU). The emulated device is capped just above what is in use: the
// cuBLAS handle fits, the parameters do not. 0, or the failures.
static int check_failed_attach(mv_model *gpu, mv_optimizer *o, mv_comm *comm, const mv_config *cfg) {
    size_t used = device_used();
    char cap[32];
    snprintf(cap, sizeof cap, "%zu", used + ((size_t)256 << 10));
    setenv("MV_EMU_DEVICE_BYTES", cap, 1);
    mv_run_ctx ctx = {.training = true, .world_size = 1};
    char desc[256];
    int rc = mv_gpu_engine->attach(gpu, o, comm, &ctx, &cfg->run, desc, sizeof desc);
    unsetenv("MV_EMU_DEVICE_BYTES");
    size_t after = device_used();
    printf("failed attach: %s; device memory in use %zu bytes before, %zu after\n",
           rc < 0 ? mv_last_error() : "it succeeded", used, after);
    int failed = 0;
    if (rc == 0) { printf("FAIL an attach beyond the device's memory succeeded\n"); gpu->engine->detach(gpu); failed++; }
    if (after != used) { printf("FAIL the failed attach left %zu bytes of device memory\n", after - used); failed++; }
    if (gpu->engine) { printf("FAIL the failed attach left the engine set\n"); failed++; }
    return failed;
}

int main(int argc, char **argv) {
    char why[256] = "";
    mv_comm comm;
    if (comm_init(&comm, &argc, &argv) < 0) {
        fprintf(stderr, "test_train_cuda: %s\n", mv_last_error());
        return 1;
    }
    if (comm.world > 2) comm_abort(1, "test_train_cuda runs on 1 or 2 ranks");
    if (!mv_cuda_engine()->available(why, sizeof why)) {
        printf("SKIP: no CUDA device (%s)\n", why);
        comm_finalize(&comm);
        return 0;
    }
    mv_gpu_engine = mv_cuda_engine();
    int steps = argc > 1 ? atoi(argv[1]) : 8;
    if (steps < 1) comm_abort(1, "test_train_cuda [steps]: steps must be at least 1");
    mv_config *cfg = calloc(1, sizeof *cfg);
    config_defaults(cfg);
    cfg->schedule.warmup_iters = 3;
    cfg->schedule.max_iters = steps;
    cfg->optim.lr = 3e-4;
    // Small buckets, so that on 2 ranks a step all-reduces about 8 of them (maskvim-nano's
    // gradients are 1.9 MB) as backward hands them over.
    cfg->run.bucket_mb = 0.25;
    cfg->run.first_bucket_mb = 0.05;
    mv_model cpu, gpu;
    if (model_build(&cpu, &cfg->model) < 0 || model_build(&gpu, &cfg->model) < 0) {
        fprintf(stderr, "test_train_cuda: %s\n", mv_last_error());
        return 1;
    }
    params_init(&cpu.params, 5);
    memcpy(gpu.params.params, cpu.params.params, sizeof(float) * cpu.params.num_params);
    memcpy(gpu.params.buffers, cpu.params.buffers, sizeof(float) * cpu.params.num_buffers);
    mv_optimizer ocpu, ogpu;
    optimizer_init(&ocpu, &cpu.params, &cfg->optim);
    optimizer_init(&ogpu, &gpu.params, &cfg->optim);
    int world = comm.world, rank = comm.rank;
    int failed = 0;
    if (mv_cuda_emulated() && world == 1) failed += check_failed_attach(&gpu, &ogpu, &comm, cfg);
    mv_run_ctx gctx = {.training = true, .seed = 11, .world_size = world};
    char desc[256];
    if (mv_gpu_engine->attach(&gpu, &ogpu, &comm, &gctx, &cfg->run, desc, sizeof desc) < 0) {
        fprintf(stderr, "test_train_cuda: %s\n", mv_last_error());
        return 1;
    }
    printf("test_train_cuda on %s%s\n", desc, world > 1 ? (rank ? ", rank 1 of 2" : ", rank 0 of 2") : "");
    int B = 2, H = 64, W = 64, K = cfg->model.num_classes, ids[2];
    int GB = B / world;   // the GPU model's batch: this rank's share of the global batch
    float *img = malloc(sizeof(float) * B * 3 * H * W);
    uint8_t *lab = malloc((size_t)B * H * W);
    if (run_plan(&cpu, B, H, W, MV_PLAN_TRAIN) < 0 || run_plan(&gpu, GB, H, W, MV_PLAN_TRAIN) < 0) {
        fprintf(stderr, "test_train_cuda: %s\n", mv_last_error());
        return 1;
    }
    for (int it = 0; it < steps; it++) {
        make_test_batch(img, lab, B, H, W, K, (uint32_t)it);
        ids[0] = 2 * it; ids[1] = 2 * it + 1;
        mv_run_ctx cctx = {.training = true, .seed = 11, .step = (uint32_t)it, .sample_ids = ids, .world_size = 1};
        gctx.step = (uint32_t)it;
        gctx.sample_ids = ids + rank * GB;
        run_zero_grads(&cpu);
        run_zero_grads(&gpu);
        const float *gimg = img + (size_t)rank * GB * 3 * H * W;
        const uint8_t *glab = lab + (size_t)rank * GB * H * W;
        if (run_forward(&cpu, img, lab, &cctx) < 0 || run_forward(&gpu, gimg, glab, &gctx) < 0) {
            fprintf(stderr, "test_train_cuda: %s\n", mv_last_error());
            return 1;
        }
        run_backward(&cpu, &cctx);
        long frees = FREES();
        run_backward(&gpu, &gctx);
        if (gpu.engine->grads_finish(&gpu) < 0) comm_abort(1, mv_last_error());
        if (FREES() != frees) {
            printf("FAIL step %d: %ld cudaFree calls in backward (each waits for the whole device)\n", it,
                   FREES() - frees);
            failed++;
        }
        optimizer_step(&ocpu, &cpu.params, &cfg->optim, &cfg->schedule, it);
        gpu.engine->optimizer_step(&gpu, &ogpu, &cfg->optim, &cfg->schedule, it);
        // With two ranks each GPU's loss is over its own image: compared through the parameters.
        double e = fabs(cpu.loss_total - gpu.loss_total) / fabs(cpu.loss_total);
        printf("  step %d: loss CPU %.6f GPU %.6f\n", it, cpu.loss_total, gpu.loss_total);
        if (world == 1 && !(e < 1e-4)) { printf("FAIL step %d: losses differ by %.2e (relative)\n", it, e); failed++; }
    }
    if (gpu.engine->to_host(&gpu, &ogpu, false) < 0) { fprintf(stderr, "test_train_cuda: %s\n", mv_last_error()); return 1; }
    size_t np = cpu.params.num_params;
    double dp = rel_l2(cpu.params.params, gpu.params.params, np), dm = rel_l2(ocpu.m, ogpu.m, np);
    double dv = rel_l2(ocpu.v, ogpu.v, np), db = rel_l2(cpu.params.buffers, gpu.params.buffers, cpu.params.num_buffers);
    printf("after %d steps: relative L2 difference parameters %.2e, moments m %.2e v %.2e, BatchNorm buffers %.2e; "
           "optimizer steps %ld / %ld\n", steps, dp, dm, dv, db, ocpu.step, ogpu.step);
    if (!(dp < 1e-5)) { printf("FAIL parameters differ: %.2e\n", dp); failed++; }
    if (!(dm < 1e-2 && dv < 1e-2)) { printf("FAIL moments differ: %.2e %.2e\n", dm, dv); failed++; }
    if (!(db < 1e-4)) { printf("FAIL BatchNorm buffers differ: %.2e\n", db); failed++; }
    if (ocpu.step != ogpu.step) { printf("FAIL optimizer step counts differ\n"); failed++; }

    // Evaluation: eval mode at another size, logits back on the host.
    int EH = 72, EW = 104;
    float *eimg = malloc(sizeof(float) * 3 * EH * EW);
    uint8_t *elab = malloc((size_t)EH * EW);
    make_test_batch(eimg, elab, 1, EH, EW, K, 99);
    memcpy(cpu.params.params, gpu.params.params, sizeof(float) * np);   // same weights on both sides
    memcpy(cpu.params.buffers, gpu.params.buffers, sizeof(float) * cpu.params.num_buffers);
    mv_run_ctx ectx = {.training = false, .world_size = 1};
    if (run_plan(&cpu, 1, EH, EW, MV_PLAN_INFER) < 0 || run_plan(&gpu, 1, EH, EW, MV_PLAN_INFER) < 0 ||
        run_forward(&cpu, eimg, NULL, &ectx) < 0 || run_forward(&gpu, eimg, NULL, &ectx) < 0) {
        fprintf(stderr, "test_train_cuda: %s\n", mv_last_error());
        return 1;
    }
    const float *lc = run_logits(&cpu), *lg = run_logits(&gpu);
    size_t nl = (size_t)cpu.Hs[0] * cpu.Ws[0] * K;
    double dl = lg ? rel_l2(lc, lg, nl) : INFINITY;
    printf("evaluation at %dx%d: logits relative L2 difference %.2e\n", EH, EW, dl);
    if (!(dl < 1e-4)) { printf("FAIL evaluation logits differ: %.2e\n", dl); failed++; }

    gpu.engine->detach(&gpu);
    optimizer_free(&ocpu); optimizer_free(&ogpu);
    model_free(&cpu); model_free(&gpu);
    free(img); free(lab); free(eimg); free(elab); free(cfg);
    printf("%s\n", failed ? "FAILED" : "test_train_cuda: all checks passed");
    double bad = failed;   // every rank's verdict
    comm_allreduce_sum_doubles(&comm, &bad, 1);
    comm_finalize(&comm);
    return bad > 0 ? 1 : 0;
}
