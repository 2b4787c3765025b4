// The GPU model: the model code of core/ compiled for the device (core/model_ops.h) plus what
// only the GPU needs: parameters, gradients and buffers in device memory, the stream the ops run
// on, and batches staged from the host. Built into the CUDA library only (cmake/cuda_model.cmake).
//
// A GPU model is an ordinary mv_model (model_build registers every tensor in host arenas, where
// weights are loaded and initialised) moved with model_to_device: from then on every tensor
// pointer of the model is a device pointer and the host arenas are a staging copy, refreshed by
// model_device_download.
#pragma once
#include <cuda_runtime_api.h>
#include "core/model.h"

// The stream of every op of the GPU model (default: the legacy default stream 0).
cudaStream_t mv_device_stream(void);
// Waits for the model's stream (every host wait of the GPU model goes through here). With a
// limit set (seconds; 0, the default: none), a wait longer than that ends the whole job through
// comm_abort, naming NCCL collectives that a rank never joined: the engine sets the
// communicator's timeout (MV_COMM_TIMEOUT) when several ranks train.
cudaError_t mv_device_wait(void);
void mv_device_set_wait_limit(double seconds);

// Device memory for the GPU model's arenas (cudaMalloc; NULL on failure) and its release, and
// synchronous copies on the model's stream (the model's planning and loss logging use them).
float *mv_arena_alloc(size_t floats);
void mv_arena_release(void *p);
void mv_upload(void *dst, const void *src, size_t bytes);
void mv_download(void *dst, const void *src, size_t bytes);

// The model's compute functions compiled for the device (same contracts as model_plan,
// model_forward, model_backward; images, labels and ctx->sample_ids are DEVICE pointers).
int model_plan_device(mv_model *m, int B, int H, int W, mv_plan_mode mode);
int model_forward_device(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx);
void model_backward_device(mv_model *m, const mv_run_ctx *ctx);

// Allocates device parameters, gradients (zeroed) and buffers, copies the host values and binds
// every tensor pointer of the model to them. 0, or -1 with a message.
int model_to_device(mv_model *m);
// Copies the device parameters and buffers (and gradients when `grads`) into the host arenas
// m->params.{params,buffers,grads}. Synchronises. 0, or -1 with a message.
int model_device_download(mv_model *m, bool grads);
// Copies the host parameters and buffers to the device (after loading weights). 0 or -1.
int model_device_upload(mv_model *m);
void model_device_zero_grads(mv_model *m);
// Frees the device arenas (model_free then frees the rest).
void model_device_free(mv_model *m);

// Host batches staged into device buffers that grow as needed.
typedef struct {
    float *images;
    uint8_t *labels;
    int *ids;
    size_t cap_images, cap_labels, cap_ids;
} mv_device_batch;

// One training forward (labels != NULL: with losses) from HOST images [B,3,H,W], labels [B,H,W]
// and ctx->sample_ids [B]: stages them, plans the model for the shape and runs the forward on
// the device. With labels, the cross-entropy denominator of avg_non_ignore is counted on the
// device. 0, or -1 with a message (a CUDA error is reported after the step synchronises).
int model_device_forward(mv_model *m, mv_device_batch *st, const float *images, const uint8_t *labels,
                         int B, int H, int W, const mv_run_ctx *ctx);
void mv_device_batch_free(mv_device_batch *st);

// ---- device profile: CUDA events around every op of the GPU model, summed per op kind ----------
// Off by default (one branch per op). While on, each op records two events on the model's
// stream; mv_dev_prof_collect synchronises and adds the elapsed times (seconds) per op kind of
// kernels/cpu/profile.h and pass (0 forward, 1 backward) into seconds[][2], then resets.
extern bool mv_dev_prof_enabled;
int mv_dev_prof_begin(int op, int backward);
void mv_dev_prof_end(int record);
int mv_dev_prof_collect(double (*seconds)[2], int num_ops);
void mv_dev_prof_free(void);
