// Where a model runs. Training and evaluation call the model through the run_* functions below:
// with no engine attached they are the CPU model's own functions (core/model.h, core/optimizer.h);
// with the GPU engine attached (core/device/engine_cuda.c) the same calls run the GPU model of
// core/device/model_device.h, whose parameters, gradients, moments and activations stay on the
// device. The CPU library does not link CUDA: a program built with the GPU model registers the
// engine (mv_gpu_engine) before it trains.
#pragma once
#include "core/config.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "dist/comm.h"

typedef struct mv_engine mv_engine;
struct mv_engine {
    const char *name;
    // True when the engine can run here (a GPU is present); otherwise false and why in `why`.
    bool (*available)(char *why, size_t n);
    // Binds the device of comm->local_rank, sets the GEMM precision (run->precision), moves the
    // model's tensors and the optimizer's moments there (from the host arenas, which hold the
    // initial or resumed state), and with several ranks sets up the gradient all-reduce (buckets
    // of run->bucket_mb) and the device reducers in *ctx (SyncBN, ratio loss). With o == NULL the
    // model is only run, not trained (evaluation, prediction, one step): no moments and no NCCL.
    // Writes a one-line description of the device to desc. 0, or -1 with a message.
    int (*attach)(mv_model *m, mv_optimizer *o, mv_comm *c, mv_run_ctx *ctx, const mv_run_config *run, char *desc,
                  size_t n);
    void (*detach)(mv_model *m);
    int (*plan)(mv_model *m, int B, int H, int W, mv_plan_mode mode);
    // images, labels and ctx->sample_ids are HOST arrays; the engine stages them.
    int (*forward)(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx);
    void (*backward)(mv_model *m, const mv_run_ctx *ctx);
    void (*zero_grads)(mv_model *m);
    // Waits for the gradient all-reduce (several ranks); 0 or -1.
    int (*grads_finish)(mv_model *m);
    void (*optimizer_step)(mv_model *m, mv_optimizer *o, const mv_optim_config *oc, const mv_schedule_config *sc,
                           long iter);
    // The last forward's logits [B, H0, W0, K] into host memory. 0 or -1.
    int (*logits)(mv_model *m, float *host);
    // Parameters, buffers, the optimizer's moments (o != NULL) and the gradients (grads):
    // device -> host arenas (before a checkpoint is written). The other way, a loaded
    // checkpoint reaches the device through attach, which uploads the host arenas. 0 or -1.
    int (*to_host)(mv_model *m, mv_optimizer *o, bool grads);
    // Copies bytes of one of the model's device arrays (an activation, a mask) to host memory.
    int (*read)(void *host, const void *src, size_t bytes);
};

// The GPU engine of programs linked with the GPU model (NULL in the CPU-only build); such a
// program sets it to mv_cuda_engine() (core/device/engine_cuda.c) before training.
extern const mv_engine *mv_gpu_engine;
const mv_engine *mv_cuda_engine(void);

// The `maskvim` CLI does not link the CUDA backend: it sets mv_gpu_plugin to the file name of
// the plugin built beside it (libmaskvim_gpu.so: the GPU model, the kernels, cuBLAS, NCCL), and
// engine_gpu loads that on first use (core/engine_plugin.c). Linked in, cuBLAS's initialisers
// alone cost every command about a second, `maskvim --help` included, on machines with no GPU.
extern const char *mv_gpu_plugin;
// The GPU engine: mv_gpu_engine where linked in, else the plugin's when mv_gpu_plugin is set, a
// driver is present and the plugin loads (tried once). NULL with the reason in `why` otherwise.
const mv_engine *engine_gpu(char *why, size_t n);
// What the CLI and the plugin must agree on: both are built from one tree, but a plugin left
// from another build would read these structures with other layouts.
typedef struct {
    size_t engine, model, run_ctx, optimizer, comm, run_config;
} mv_engine_abi;
#define MV_ENGINE_ABI_HERE                                                                                      \
    ((mv_engine_abi){sizeof(mv_engine), sizeof(mv_model), sizeof(mv_run_ctx), sizeof(mv_optimizer), sizeof(mv_comm), \
                     sizeof(mv_run_config)})
// The plugin's one entry point (core/device/gpu_plugin.c): its engine, or NULL with the reason
// when `host` differs from its own MV_ENGINE_ABI_HERE.
#define MV_GPU_PLUGIN_ENTRY "mv_gpu_plugin_engine"
const mv_engine *mv_gpu_plugin_engine(const mv_engine_abi *host, char *why, size_t n);

// Picks the engine for run.device (auto: the GPU when one is present and built in). *out is
// NULL for the CPU. -1 with a message when cuda is asked for and cannot be had.
int engine_select(const mv_engine **out, int device, char *why, size_t n);

// Puts the model where run->device says (engine_select) and attaches the engine, if any, with
// run's precision and buckets; o may be NULL (see attach). desc receives "CPU", "CPU (no GPU: why)" or the
// engine's description. A model the GPU engine cannot run (d_state above MV_GPU_MAX_D_STATE, kernels/cuda/scan_limits.h) stays
// on the CPU under auto and is refused under cuda. 0, or -1 with a message (the model is then left on the CPU).
int engine_open(mv_model *m, mv_optimizer *o, const mv_run_config *run, mv_comm *c, mv_run_ctx *ctx, char *desc,
                size_t n);
// Detaches the engine (the host arenas keep what was last copied to them); nothing on the CPU.
void engine_close(mv_model *m);

int run_plan(mv_model *m, int B, int H, int W, mv_plan_mode mode);
int run_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx);
void run_backward(mv_model *m, const mv_run_ctx *ctx);
void run_zero_grads(mv_model *m);
// Parameters, buffers, moments (o != NULL) and gradients (grads) into the host arenas; the CPU
// model is there already. 0 or -1.
int run_state_to_host(mv_model *m, mv_optimizer *o, bool grads);
// Copies bytes of a model array (device memory under an engine) to host memory. 0 or -1.
int run_read(const mv_model *m, void *host, const void *src, size_t bytes);
// The last forward's logits in host memory (the model's own array on the CPU; a host copy,
// owned by the model, on a device). NULL with a message on failure.
const float *run_logits(mv_model *m);
