// The CUDA ops of MaskViM: every op of kernels/cpu/ops.h with the same contract and argument
// order, named with a `_cuda` suffix and taking one extra argument, the stream, last.
// All float/int pointers are DEVICE pointers (sizes and flags are host values); activations are
// channels-last; every backward ADDS into the gradients it is given and a NULL gradient means
// "not needed"; `scratch` is caller-owned device memory of the size the *_scratch_cuda function
// gives. Ops are asynchronous on their stream and return nothing, as on the CPU: a launch or
// cuBLAS failure is recorded and reported by mv_cuda_status().
//
// Results are deterministic run to run (no floating-point atomics): reductions over rows use
// per-block partials added in a fixed order by a second pass.
//
// The forwards that kernels/cpu/ops.h allows in place (out == in: silu, relu, mul, add,
// channel_scale, batchnorm_forward_eval) are in place here too: each thread reads element i and
// then writes element i, and no kernel declares its pointers __restrict__.
//
// This header is plain C (it can be included by the C model and by the test program).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "kernels/cpu/ops.h"   // shared types and constants: mv_mask_args, SCAN_K, SCAN_CHUNK
#include "kernels/cpu/ops_loss.h"   // the CPU twins of the loss helpers below

// ---- backend state ------------------------------------------------------------------------
// Selects the device and creates the cuBLAS handle. 0, or -1 with a message (mv_last_error).
// Ops called before mv_cuda_init use the current device and create the handle on first use.
int mv_cuda_init(int device);
// Frees the cuBLAS handle and the workspaces (the device itself is left as it is).
void mv_cuda_shutdown(void);
// GEMM precision, for every cuBLAS GEMM (linear, conv2d, conv3x3, the scan's projections):
//   MV_PREC_FP32 (default)  full fp32;
//   MV_PREC_TF32            TF32 tensor cores (inputs rounded to 10-bit mantissas, fp32 accumulation);
//   MV_PREC_BF16            both operands converted on the fly to bf16 copies (8-bit mantissas,
//                           round to nearest even) in an internal workspace, fp32 accumulation
//                           and fp32 output (cublasGemmEx, CUBLAS_COMPUTE_32F).
// Parameters, activations, gradients, the scan state and every reduction stay fp32 in all modes.
// mv_cuda_set_precision returns 0, or -1 with a message for an unknown mode.
typedef enum { MV_PREC_FP32 = 0, MV_PREC_TF32 = 1, MV_PREC_BF16 = 2 } mv_cuda_precision;
int mv_cuda_set_precision(mv_cuda_precision p);
mv_cuda_precision mv_cuda_get_precision(void);
const char *mv_cuda_precision_name(mv_cuda_precision p);   // "fp32", "tf32", "bf16"
// Parses "fp32", "tf32" or "bf16" (a command-line value). 0, or -1 with a message.
int mv_cuda_parse_precision(const char *name, mv_cuda_precision *out);
// The older switch: true = MV_PREC_TF32, false = MV_PREC_FP32; mv_cuda_tf32() is true in TF32 mode.
void mv_cuda_set_tf32(bool on);
bool mv_cuda_tf32(void);
// 0 when every op since the last call ran; otherwise -1 with "context: CUDA error in OP: ..."
// recorded as the thread's error message. Checks launch errors only; asynchronous faults show
// up after a synchronisation (cudaStreamSynchronize), so call it after one.
int mv_cuda_status(const char *context);
// Records a failed CUDA call (err != cudaSuccess) for the next mv_cuda_status, as a failed launch
// is; for the C callers that copy and wait (core/device/model_device.c).
void mv_cuda_note(cudaError_t err, const char *where);
// True in the host emulation build used by CI machines without a GPU (tests/cuda/emu/).
bool mv_cuda_emulated(void);
// The ops share an internal workspace for the row reductions' partials (and, in BF16 mode, one
// for the GEMM operands). It grows on demand (the first step of a run allocates, later steps do
// not) and belongs to one compute stream: do not run ops concurrently on two streams. Growing
// never waits for the device: the buffer it replaces (queued kernels may still read it) is kept
// until mv_cuda_release_retired frees it. That call waits for the whole device (cudaFree), so
// make it where the device has been waited for (the GPU model does, at the start of each
// forward); mv_cuda_shutdown frees them too.
void mv_cuda_release_retired(void);
// Row-major C[M,N] = alpha op(A) op(B) + beta C on bf16 operands (their bits, device memory) with
// fp32 accumulation and output, cublasGemmEx's meaning: K = 0 gives C = beta C. The GEMM of
// conv3x3's BF16 mode, exposed for the tests.
void gemm_rm_bf16(bool transA, bool transB, int M, int N, int K, float alpha, const uint16_t *A, int lda,
                  const uint16_t *B, int ldb, float beta, float *C, int ldc, cudaStream_t stream);

// ---- linear: out[N,OC] = in[N,IC] @ w[OC,IC]^T + b[OC] -------------------------------------
void linear_forward_cuda(float *out, const float *in, const float *w, const float *b, int N, int IC,
                         int OC, cudaStream_t stream);
void linear_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, int N, int IC, int OC, cudaStream_t stream);

// ---- general convolution by im2col (scratch: the column buffer, floats) --------------------
size_t conv2d_scratch_cuda(int B, int H, int W, int IC, int K, int stride, int pad);
void conv2d_forward_cuda(float *out, const float *in, const float *w, const float *b, float *scratch,
                         int B, int H, int W, int IC, int OC, int K, int stride, int pad,
                         cudaStream_t stream);
void conv2d_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, float *scratch, int B, int H, int W, int IC, int OC, int K,
                          int stride, int pad, cudaStream_t stream);

// ---- 3x3 convolution as nine shifted GEMMs over the padded input (as the CPU op) -----------
size_t conv3x3_scratch_cuda(int B, int H, int W, int IC, int OC);           // floats
size_t conv3x3_forward_scratch_cuda(int B, int H, int W, int IC, int OC);   // forward alone
void conv3x3_forward_cuda(float *out, const float *in, const float *w, float *scratch,
                          int B, int H, int W, int IC, int OC, cudaStream_t stream);
void conv3x3_backward_cuda(float *din, float *dw, const float *dout, const float *in, const float *w,
                           float *scratch, int B, int H, int W, int IC, int OC, cudaStream_t stream);

// ---- depthwise 3x3, zero padding 1, bias -----------------------------------------------------
void dwconv3x3_forward_cuda(float *out, const float *in, const float *w, const float *b,
                            int B, int H, int W, int C, cudaStream_t stream);
void dwconv3x3_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                             const float *w, int B, int H, int W, int C, cudaStream_t stream);

// ---- LayerNorm over the last dimension (one warp per row) ----------------------------------
void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *in, const float *w,
                            const float *b, int N, int C, float eps, cudaStream_t stream);
void layernorm_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                             const float *w, const float *mean, const float *rstd, int N, int C,
                             cudaStream_t stream);

// ---- BatchNorm over rows per channel, with SyncBN's hook on device memory ---------------------
// The statistics buffer `scratch` (batchnorm_scratch_cuda(C) doubles, DEVICE memory) holds
// [sum(C) | sum of squares or products(C) | count(1)] when the hook runs. The hook must sum
// buf[0..n) over ranks in place, ordered on `stream` (e.g. ncclAllReduce(buf, buf, n, ncclDouble,
// ncclSum, comm, stream)); it may return before the reduction finishes. NULL fn: one rank.
typedef void (*mv_reduce_dev_fn)(void *ctx, double *dev_buf, int n, cudaStream_t stream);
typedef struct { mv_reduce_dev_fn fn; void *ctx; } mv_reducer_cuda;
size_t batchnorm_scratch_cuda(int C);   // in doubles
void batchnorm_forward_train_cuda(float *out, float *mean, float *rstd, float *running_mean,
                                  float *running_var, const float *in, const float *w, const float *b,
                                  double *scratch, mv_reducer_cuda red, int N, int C, float eps,
                                  float momentum, cudaStream_t stream);
void batchnorm_forward_eval_cuda(float *out, const float *in, const float *w, const float *b,
                                 const float *running_mean, const float *running_var, int N, int C,
                                 float eps, cudaStream_t stream);
void batchnorm_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                             const float *w, const float *mean, const float *rstd, double *scratch,
                             mv_reducer_cuda red, int N, int C, cudaStream_t stream);

// ---- pointwise activations --------------------------------------------------------------------
void relu_forward_cuda(float *out, const float *in, size_t n, cudaStream_t stream);
void relu_backward_cuda(float *din, const float *dout, const float *out, size_t n, cudaStream_t stream);
void silu_forward_cuda(float *out, const float *in, size_t n, cudaStream_t stream);
void silu_backward_cuda(float *din, const float *dout, const float *in, size_t n, cudaStream_t stream);

// ---- patch merging's gather -------------------------------------------------------------------
void patch_gather_forward_cuda(float *out, const float *in, int B, int H, int W, int C, cudaStream_t stream);
void patch_gather_backward_cuda(float *din, const float *dout, int B, int H, int W, int C, cudaStream_t stream);

// ---- SS2D core: projections, fused four-direction selective scan, merge ----------------------
// Same buffers and layouts as the CPU op: xdbl [B,L,K,R+2N], delta [K,B,L,E], states
// [K,B,nchunks,E,N] (the state entering each SCAN_CHUNK-step chunk). d_state N <= 32 on the GPU.
// Scratch (floats) holds the per-direction outputs in forward, and in backward the per-direction
// dx and d(delta), dxdbl and the per-channel-block dB/dC partials. Forward may pass delta = NULL
// (training: ss2d_scan_scratch_cuda floats of scratch; alone, with states = NULL too:
// ss2d_scan_forward_scratch_cuda): they are computed there instead (y, xdbl and states the same
// bits). Backward given delta = NULL recomputes it into its scratch, exactly as forward did.
size_t ss2d_scan_states_size_cuda(int B, int L, int E, int N);
size_t ss2d_scan_scratch_cuda(int B, int L, int E, int R, int N);           // forward and backward
size_t ss2d_scan_forward_scratch_cuda(int B, int L, int E, int R, int N);   // forward alone
void ss2d_scan_forward_cuda(float *y, float *xdbl, float *delta, float *states, const float *x,
                            const float *x_proj_w, const float *dt_w, const float *dt_b,
                            const float *A_logs, const float *Ds, float *scratch,
                            int B, int H, int W, int E, int R, int N, cudaStream_t stream);
void ss2d_scan_backward_cuda(float *dx, float *dx_proj_w, float *ddt_w, float *ddt_b, float *dA_logs,
                             float *dDs, const float *dy, const float *x, const float *xdbl,
                             const float *delta, const float *states, const float *x_proj_w,
                             const float *dt_w, const float *dt_b, const float *A_logs, const float *Ds,
                             float *scratch, int B, int H, int W, int E, int R, int N, cudaStream_t stream);

// ---- resampling (backward passes are gathers: one writer per input element) -----------------
void bilinear_forward_cuda(float *out, const float *in, int B, int H, int W, int OH, int OW, int C,
                           cudaStream_t stream);
void bilinear_backward_cuda(float *din, const float *dout, int B, int H, int W, int OH, int OW, int C,
                            cudaStream_t stream);
void adaptive_avgpool_forward_cuda(float *out, const float *in, int B, int H, int W, int S, int C,
                                   cudaStream_t stream);
void adaptive_avgpool_backward_cuda(float *din, const float *dout, int B, int H, int W, int S, int C,
                                    cudaStream_t stream);

// ---- stochastic regularisers (same Philox keys as the CPU: identical draws) ------------------
// sample_ids [B] is a DEVICE array; keep is written on the device.
void dropout2d_draw_cuda(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                         uint32_t block, int B, int C, float p, cudaStream_t stream);
void droppath_draw_cuda(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                        uint32_t block, int B, float p, cudaStream_t stream);
void channel_scale_forward_cuda(float *out, const float *in, const float *keep, int B, int HW, int C,
                                cudaStream_t stream);
void channel_scale_backward_cuda(float *din, const float *dout, const float *keep, int B, int HW, int C,
                                 cudaStream_t stream);
void residual_droppath_forward_cuda(float *out, const float *res, const float *branch, const float *keep,
                                    int B, int HW, int C, cudaStream_t stream);
void residual_droppath_backward_cuda(float *dres, float *dbranch, const float *dout, const float *keep,
                                     int B, int HW, int C, cudaStream_t stream);
// Test hook for the device Philox: out[4*i + j] = philox4x32(seed, c0, c1, c2, c3 + i).v[j].
void philox_fill_cuda(uint32_t *out, uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                      int n, cudaStream_t stream);

// ---- token mask (the mv_mask_args struct is host memory; its sample_ids point to the DEVICE) -
size_t token_mask_scratch_cuda(int H, int W);   // floats
void token_mask_forward_cuda(float *out, float *m, float *keep_logit, const float *x, const float *P,
                             float *scratch, const mv_mask_args *a, int B, int H, int W, int C,
                             int gh, int gw, cudaStream_t stream);
void token_mask_backward_cuda(float *dx, float *dP, const float *dout, const float *dm, const float *x,
                              const float *m, const float *keep_logit, float *scratch, const mv_mask_args *a,
                              int B, int H, int W, int C, int gh, int gw, cudaStream_t stream);

// ---- losses -----------------------------------------------------------------------------------
// As the CPU op, but the loss stays on the device: *loss (one double, device) = sum / denom.
// dlogits may be NULL (loss only).
void cross_entropy_forward_backward_cuda(float *dlogits, double *loss, const float *logits,
                                         const uint8_t *labels, int N, int K, double denom, float scale,
                                         cudaStream_t stream);
// The same with the denominator read from the DEVICE (e.g. count_valid_cuda's output for
// avg_non_ignore), clamped below at 1 as the model's "valid > 0 ? valid : 1".
void cross_entropy_dev_denom_cuda(float *dlogits, double *loss, const float *logits, const uint8_t *labels,
                                  int N, int K, const double *denom, float scale, cudaStream_t stream);
void argmax_correct_cuda(float *correct, const float *logits, const uint8_t *labels, int N, int K,
                         cudaStream_t stream);

// ---- the loss helpers of kernels/cpu/ops_loss.h (same arguments; scalars in DEVICE memory) -----
// Everything a step's losses need without a host round trip. Sums are deterministic (fixed-size
// grids, partials added in block order); results equal the CPU's up to the order of the double
// additions. For the ratio loss, `group` (nb ints) and `lambda` (4 floats) are DEVICE arrays
// too; the kernel is one thread running the CPU op's own code (mv_ratio_loss_eval).
void fill_double_cuda(double *x, double v, size_t n, cudaStream_t stream);
void sum_to_double_cuda(double *out, const float *x, size_t n, cudaStream_t stream);
void count_valid_cuda(double *out, const uint8_t *labels, size_t n, cudaStream_t stream);
void add_scaled_double_cuda(double *acc, const double *x, double s, cudaStream_t stream);
void ratio_loss_cuda(double *loss, float *grad, const double *stats, const int *group, const float *lambda,
                     int nb, int per_stage, double alpha1, double world, cudaStream_t stream);
void position_loss_cuda(double *loss, float *dm, const float *m, const float *target, size_t n, double alpha2,
                        cudaStream_t stream);

// ---- optimizer --------------------------------------------------------------------------------
// core/adamw.c's adamw_update on device arrays: the same double scalars (formed on the host as
// the CPU does) and the same float operations per element, in the same order, without FMA.
void adamw_update_cuda(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1,
                       double beta2, double eps, double weight_decay, int step, cudaStream_t stream);

// ---- element-wise and layout helpers ----------------------------------------------------------
void mul_forward_cuda(float *out, const float *a, const float *b, size_t n, cudaStream_t stream);
void mul_backward_cuda(float *da, float *db, const float *dout, const float *a, const float *b, size_t n,
                       cudaStream_t stream);
void add_forward_cuda(float *out, const float *a, const float *b, size_t n, cudaStream_t stream);
void accumulate_cuda(float *dst, const float *src, size_t n, cudaStream_t stream);
void fill_cuda(float *x, float v, size_t n, cudaStream_t stream);
void fill_from_cuda(float *x, const float *v, size_t n, cudaStream_t stream);
void channel_slice_forward_cuda(float *out, const float *in, int N, int C_out, int off, int C_in,
                                cudaStream_t stream);
void channel_slice_backward_cuda(float *din, const float *dout, int N, int C_out, int off, int C_in,
                                 cudaStream_t stream);
void nchw_to_nhwc_cuda(float *out, const float *in, int B, int C, int H, int W, cudaStream_t stream);
void nhwc_to_nchw_cuda(float *out, const float *in, int B, int H, int W, int C, cudaStream_t stream);

// ---- NCCL ---------------------------------------------------------------------------------------
// One-rank communicator check on the current device: all-reduces a small float buffer through
// NCCL and compares. 0 when it works, 1 when the build has no NCCL, -1 with a message on failure.
int mv_nccl_selfcheck(void);

#ifdef __cplusplus
}
#endif
