// What the model code (model.c, layers.c, vss_block.c, linear_head.c) calls, on either backend.
// Those files are compiled twice from the same source: once for the CPU library, and once with
// MV_MODEL_DEVICE defined for the CUDA library, where this header maps every op `name(...)` to
// its GPU twin `name_cuda(..., stream)` (kernels/cuda/ops_cuda.h: same arguments, the stream
// last) and renames the model's compute functions `*_device`, so that one program can hold both.
// The network is written once; a change to the model cannot drift between the backends.
#pragma once

#ifdef MV_MODEL_DEVICE
// Renamed before core/model.h declares them, so declarations and definitions agree.
#define model_plan model_plan_device
#define model_forward model_forward_device
#define model_backward model_backward_device
#define block_plan block_plan_device
#define block_plan_infer block_plan_infer_device
#define block_forward block_forward_device
#define block_backward block_backward_device
#define layernorm_plan layernorm_plan_device
#define layernorm_apply layernorm_apply_device
#define layernorm_apply_backward layernorm_apply_backward_device
#define convmod_plan convmod_plan_device
#define convmod_forward convmod_forward_device
#define convmod_backward convmod_backward_device
#define levels_concat_forward levels_concat_forward_device
#define levels_concat_backward levels_concat_backward_device
#define linear_head_plan linear_head_plan_device
#define linear_head_forward linear_head_forward_device
#define linear_head_backward linear_head_backward_device
#endif

#include "core/model.h"
#include "core/huge_alloc.h"
#include "kernels/cpu/ops_loss.h"
#include <stdlib.h>
#include <string.h>

#ifndef MV_MODEL_DEVICE

#define MV_REDUCER(ctx) ((ctx)->reduce)
static inline float *mv_arena_alloc(size_t floats) { return mv_huge_alloc(sizeof(float) * floats); }
static inline void mv_arena_release(void *p) { free(p); }
static inline void mv_upload(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static inline void mv_download(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
// Cross-entropy whose mean divides by *denom (at least 1): on the CPU the scalar is host memory.
static inline void ce_loss(float *dlogits, double *loss, const float *logits, const uint8_t *labels, int N,
                           int K, const double *denom, float scale) {
    *loss = cross_entropy_forward_backward(dlogits, logits, labels, N, K, *denom > 0 ? *denom : 1.0, scale);
}
// The ratio loss's global mean: sums the statistics over ranks (no-op on one rank).
static inline void ratio_stats_reduce(const mv_run_ctx *ctx, double *stats, int n) {
    ctx->reduce.fn(ctx->reduce.ctx, stats, n);
}
#define MV_HAS_REDUCER(ctx) ((ctx)->reduce.fn != NULL)

#else   // MV_MODEL_DEVICE

#include "kernels/cuda/ops_cuda.h"
#include "core/device/model_device.h"
#include "kernels/cpu/profile.h"

#define MV_S mv_device_stream()
#define MV_REDUCER(ctx) ((mv_reducer_cuda){(ctx)->reduce_dev.fn, (ctx)->reduce_dev.ctx})
#define MV_HAS_REDUCER(ctx) ((ctx)->reduce_dev.fn != NULL)
static inline void ce_loss(float *dlogits, double *loss, const float *logits, const uint8_t *labels, int N,
                           int K, const double *denom, float scale) {
    int prof_i = mv_dev_prof_begin(PROF_LOSS, 0);
    cross_entropy_dev_denom_cuda(dlogits, loss, logits, labels, N, K, denom, scale, MV_S);
    mv_dev_prof_end(prof_i);
}
static inline void ratio_stats_reduce(const mv_run_ctx *ctx, double *stats, int n) {
    ctx->reduce_dev.fn(ctx->reduce_dev.ctx, stats, n, MV_S);
}

// Every op the model calls, mapped to its GPU twin on the model's stream, timed by CUDA events
// per op kind and pass when the device profile is on (core/device/device_profile.c).
#define MV_DEV_OP(kind, backward, call) \
    do { int prof_i_ = mv_dev_prof_begin((kind), (backward)); call; mv_dev_prof_end(prof_i_); } while (0)
#define linear_forward(...) MV_DEV_OP(PROF_LINEAR, 0, linear_forward_cuda(__VA_ARGS__, MV_S))
#define linear_backward(...) MV_DEV_OP(PROF_LINEAR, 1, linear_backward_cuda(__VA_ARGS__, MV_S))
#define conv2d_scratch conv2d_scratch_cuda
#define conv2d_forward(...) MV_DEV_OP(PROF_CONV2D, 0, conv2d_forward_cuda(__VA_ARGS__, MV_S))
#define conv2d_backward(...) MV_DEV_OP(PROF_CONV2D, 1, conv2d_backward_cuda(__VA_ARGS__, MV_S))
#define conv3x3_scratch conv3x3_scratch_cuda
#define conv3x3_forward_scratch conv3x3_forward_scratch_cuda
#define conv3x3_forward(...) MV_DEV_OP(PROF_CONV3X3, 0, conv3x3_forward_cuda(__VA_ARGS__, MV_S))
#define conv3x3_backward(...) MV_DEV_OP(PROF_CONV3X3, 1, conv3x3_backward_cuda(__VA_ARGS__, MV_S))
#define dwconv3x3_forward(...) MV_DEV_OP(PROF_DWCONV, 0, dwconv3x3_forward_cuda(__VA_ARGS__, MV_S))
#define dwconv3x3_backward(...) MV_DEV_OP(PROF_DWCONV, 1, dwconv3x3_backward_cuda(__VA_ARGS__, MV_S))
#define layernorm_forward(...) MV_DEV_OP(PROF_LAYERNORM, 0, layernorm_forward_cuda(__VA_ARGS__, MV_S))
#define layernorm_backward(...) MV_DEV_OP(PROF_LAYERNORM, 1, layernorm_backward_cuda(__VA_ARGS__, MV_S))
#define batchnorm_scratch batchnorm_scratch_cuda
#define batchnorm_forward_train(...) MV_DEV_OP(PROF_BATCHNORM, 0, batchnorm_forward_train_cuda(__VA_ARGS__, MV_S))
#define batchnorm_forward_eval(...) MV_DEV_OP(PROF_BATCHNORM, 0, batchnorm_forward_eval_cuda(__VA_ARGS__, MV_S))
#define batchnorm_backward(...) MV_DEV_OP(PROF_BATCHNORM, 1, batchnorm_backward_cuda(__VA_ARGS__, MV_S))
#define relu_forward(...) MV_DEV_OP(PROF_POINTWISE, 0, relu_forward_cuda(__VA_ARGS__, MV_S))
#define relu_backward(...) MV_DEV_OP(PROF_POINTWISE, 1, relu_backward_cuda(__VA_ARGS__, MV_S))
#define silu_forward(...) MV_DEV_OP(PROF_POINTWISE, 0, silu_forward_cuda(__VA_ARGS__, MV_S))
#define silu_backward(...) MV_DEV_OP(PROF_POINTWISE, 1, silu_backward_cuda(__VA_ARGS__, MV_S))
#define patch_gather_forward(...) MV_DEV_OP(PROF_RESAMPLE, 0, patch_gather_forward_cuda(__VA_ARGS__, MV_S))
#define patch_gather_backward(...) MV_DEV_OP(PROF_RESAMPLE, 1, patch_gather_backward_cuda(__VA_ARGS__, MV_S))
#define ss2d_scan_states_size ss2d_scan_states_size_cuda
#define ss2d_scan_scratch ss2d_scan_scratch_cuda
#define ss2d_scan_forward_scratch ss2d_scan_forward_scratch_cuda
#define ss2d_scan_forward(...) MV_DEV_OP(PROF_SCAN, 0, ss2d_scan_forward_cuda(__VA_ARGS__, MV_S))
#define ss2d_scan_backward(...) MV_DEV_OP(PROF_SCAN, 1, ss2d_scan_backward_cuda(__VA_ARGS__, MV_S))
#define bilinear_forward(...) MV_DEV_OP(PROF_RESAMPLE, 0, bilinear_forward_cuda(__VA_ARGS__, MV_S))
#define bilinear_backward(...) MV_DEV_OP(PROF_RESAMPLE, 1, bilinear_backward_cuda(__VA_ARGS__, MV_S))
#define adaptive_avgpool_forward(...) MV_DEV_OP(PROF_RESAMPLE, 0, adaptive_avgpool_forward_cuda(__VA_ARGS__, MV_S))
#define adaptive_avgpool_backward(...) MV_DEV_OP(PROF_RESAMPLE, 1, adaptive_avgpool_backward_cuda(__VA_ARGS__, MV_S))
#define dropout2d_draw(...) MV_DEV_OP(PROF_POINTWISE, 0, dropout2d_draw_cuda(__VA_ARGS__, MV_S))
#define droppath_draw(...) MV_DEV_OP(PROF_POINTWISE, 0, droppath_draw_cuda(__VA_ARGS__, MV_S))
#define channel_scale_forward(...) MV_DEV_OP(PROF_POINTWISE, 0, channel_scale_forward_cuda(__VA_ARGS__, MV_S))
#define channel_scale_backward(...) MV_DEV_OP(PROF_POINTWISE, 1, channel_scale_backward_cuda(__VA_ARGS__, MV_S))
#define residual_droppath_forward(...) MV_DEV_OP(PROF_POINTWISE, 0, residual_droppath_forward_cuda(__VA_ARGS__, MV_S))
#define residual_droppath_backward(...) MV_DEV_OP(PROF_POINTWISE, 1, residual_droppath_backward_cuda(__VA_ARGS__, MV_S))
#define token_mask_scratch token_mask_scratch_cuda
#define token_mask_forward(...) MV_DEV_OP(PROF_TOKEN_MASK, 0, token_mask_forward_cuda(__VA_ARGS__, MV_S))
#define token_mask_backward(...) MV_DEV_OP(PROF_TOKEN_MASK, 1, token_mask_backward_cuda(__VA_ARGS__, MV_S))
#define argmax_correct(...) MV_DEV_OP(PROF_LOSS, 0, argmax_correct_cuda(__VA_ARGS__, MV_S))
#define mul_forward(...) MV_DEV_OP(PROF_POINTWISE, 0, mul_forward_cuda(__VA_ARGS__, MV_S))
#define mul_backward(...) MV_DEV_OP(PROF_POINTWISE, 1, mul_backward_cuda(__VA_ARGS__, MV_S))
#define add_forward(...) MV_DEV_OP(PROF_POINTWISE, 0, add_forward_cuda(__VA_ARGS__, MV_S))
#define accumulate(...) MV_DEV_OP(PROF_POINTWISE, 0, accumulate_cuda(__VA_ARGS__, MV_S))
#define channel_slice_forward(...) MV_DEV_OP(PROF_POINTWISE, 0, channel_slice_forward_cuda(__VA_ARGS__, MV_S))
#define channel_slice_backward(...) MV_DEV_OP(PROF_POINTWISE, 1, channel_slice_backward_cuda(__VA_ARGS__, MV_S))
#define nchw_to_nhwc(...) MV_DEV_OP(PROF_RESAMPLE, 0, nchw_to_nhwc_cuda(__VA_ARGS__, MV_S))
#define fill(...) MV_DEV_OP(PROF_POINTWISE, 0, fill_cuda(__VA_ARGS__, MV_S))
#define fill_double(...) MV_DEV_OP(PROF_LOSS, 0, fill_double_cuda(__VA_ARGS__, MV_S))
#define fill_from(...) MV_DEV_OP(PROF_POINTWISE, 0, fill_from_cuda(__VA_ARGS__, MV_S))
#define sum_to_double(...) MV_DEV_OP(PROF_LOSS, 0, sum_to_double_cuda(__VA_ARGS__, MV_S))
#define count_valid(...) MV_DEV_OP(PROF_LOSS, 0, count_valid_cuda(__VA_ARGS__, MV_S))
#define add_scaled_double(...) MV_DEV_OP(PROF_LOSS, 0, add_scaled_double_cuda(__VA_ARGS__, MV_S))
#define ratio_loss(...) MV_DEV_OP(PROF_LOSS, 0, ratio_loss_cuda(__VA_ARGS__, MV_S))
#define position_loss(...) MV_DEV_OP(PROF_LOSS, 0, position_loss_cuda(__VA_ARGS__, MV_S))

#endif
