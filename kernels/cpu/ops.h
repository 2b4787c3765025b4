// The CPU ops of MaskViM: each a forward/backward pair over raw float pointers.
// Conventions (as in llm.c): outputs first, inputs next, sizes last; activations are
// channels-last (B,H,W,C) flattened to rows; every backward ADDS into the gradients it is
// given, so a tensor read twice gets both uses' gradients, and zeroing is the caller's (the
// model and the trainer zero each gradient before its first writer: docs/model.md, "Backward
// adds").
// NULL pointers: a pointer may be NULL only where its op says so below (a NULL gradient is then not
// written, a NULL optional input not applied); every other pointer must be valid.
// `scratch` is caller-owned temporary memory of at least the size the *_scratch function says.
//
// In place. Outputs never alias inputs, except for these forwards, which may be called with
// out == in (exactly the same pointer; partial overlap is never allowed) on the CPU and, with the
// same arguments, on the GPU (kernels/cuda/ops_cuda.h): silu_forward, relu_forward, mul_forward
// (out == a or out == b), add_forward (out == a or out == b), channel_scale_forward and
// batchnorm_forward_eval. Each computes element i from input element i alone (plus per-channel
// constants) and writes it after reading it, in one thread, so the result is the same bits as
// out of place; no kernel declares its pointers restrict. The inference plan relies on this
// (core/vss_block.c, core/layers.c); test_plan_memory checks the bits against out of place.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

// Flushes denormals to zero on every compute thread (called before training or evaluation).
void cpu_flush_denormals(void);

// ---- GEMM: C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, row-major (cblas_sgemm's
// arguments), with the same result for any number of threads (kernels/cpu/gemm.c).
void mv_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc);

// ---- linear: out[N,OC] = in[N,IC] @ w[OC,IC]^T + b[OC] -------------------------------------
// NULL: b (no bias); din, dw, db.
void linear_forward(float *out, const float *in, const float *w, const float *b, int N, int IC, int OC);
void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int N, int IC, int OC);

// ---- general convolution by im2col (PyTorch weight layout [OC,IC,K,K]) ----------------------
// in [B,H,W,IC] -> out [B,OH,OW,OC], OH = (H + 2*pad - K)/stride + 1.
// NULL: b (no bias); din, dw, db.
size_t conv2d_scratch(int B, int H, int W, int IC, int K, int stride, int pad);
void conv2d_forward(float *out, const float *in, const float *w, const float *b, float *scratch,
                    int B, int H, int W, int IC, int OC, int K, int stride, int pad);
void conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, float *scratch, int B, int H, int W, int IC, int OC, int K,
                     int stride, int pad);

// ---- 3x3 convolution, stride 1, zero padding 1, no bias, as nine shifted GEMMs ------------
// The padded input is laid out once; each tap is one GEMM over all positions of the batch,
// so no 9x im2col buffer is ever built (the decoder's big convolutions are GEMM-shaped).
// NULL: din, dw.
size_t conv3x3_scratch(int B, int H, int W, int IC, int OC);           // forward and backward
size_t conv3x3_forward_scratch(int B, int H, int W, int IC, int OC);   // forward alone (smaller)
void conv3x3_forward(float *out, const float *in, const float *w, float *scratch,
                     int B, int H, int W, int IC, int OC);
void conv3x3_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      float *scratch, int B, int H, int W, int IC, int OC);

// ---- depthwise 3x3, zero padding 1, bias (weight [C,1,3,3]) ---------------------------------
// NULL: b (no bias); din, dw, db.
void dwconv3x3_forward(float *out, const float *in, const float *w, const float *b,
                       int B, int H, int W, int C);
void dwconv3x3_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int H, int W, int C);

// ---- LayerNorm over the last dimension (eps given; the model uses 1e-5, MV_NORM_EPS) ------
// NULL: din only (dw and db are always computed).
void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                       const float *b, int N, int C, float eps);
void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const float *mean, const float *rstd, int N, int C);

// ---- BatchNorm over rows (N = B*H*W) per channel ------------------------------------------
// `red.fn` (may be NULL) sums a double buffer across ranks in place: SyncBN's hook.
// NULL: running_mean and running_var together (not updated); din only (dw and db are always
// computed).
typedef void (*mv_reduce_fn)(void *ctx, double *buf, int n);
typedef struct { mv_reduce_fn fn; void *ctx; } mv_reducer;
size_t batchnorm_scratch(int C);  // in doubles
void batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                             float *running_var, const float *in, const float *w, const float *b,
                             double *scratch, mv_reducer red, int N, int C, float eps, float momentum);
void batchnorm_forward_eval(float *out, const float *in, const float *w, const float *b,
                            const float *running_mean, const float *running_var, int N, int C, float eps);
void batchnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const float *mean, const float *rstd, double *scratch,
                        mv_reducer red, int N, int C);

// ---- pointwise activations (no NULL) --------------------------------------------------------
// The scan's softplus is not among them: it is fused into the scan's delta (selective_scan.c).
void relu_forward(float *out, const float *in, size_t n);
void relu_backward(float *din, const float *dout, const float *out, size_t n);
void silu_forward(float *out, const float *in, size_t n);
void silu_backward(float *din, const float *dout, const float *in, size_t n);

// ---- patch merging (encoder downsample): pad odd H/W, gather 2x2 -> 4C, LN(4C), Linear(4C ->
// the next stage's width); the gathered [B,OH,OW,4C] and normalised tensors are saved
// activations (ds_gather, ds_norm in model.h); OH = ceil(H/2). No NULL.
void patch_gather_forward(float *out, const float *in, int B, int H, int W, int C);
void patch_gather_backward(float *din, const float *dout, int B, int H, int W, int C);

// ---- SS2D core: projections, four-way selective scan, merge -------------------------------
// x [B,L,E] (L = H*W, after dwconv + SiLU) -> y [B,L,E] = sum over the 4 scan orders, merged
// back to (h,w) order. Saved for backward: xdbl [B,L,K,R+2N], the scan states at chunk
// boundaries (backward recomputes in-chunk states: never stores B*L*E*N) and, optionally,
// delta [K,B,L,E]. Forward may pass delta = NULL: with scratch of ss2d_scan_forward_scratch
// floats it keeps one direction's delta at a time; alone (inference) it may pass states = NULL
// too (not stored); y, xdbl and states are the same bits. Backward given delta = NULL recomputes
// it from xdbl, dt_w and dt_b (a GEMM per direction) exactly as forward did, in its scratch:
// the model keeps no delta (4E floats per token of every block), the same gradients bit for bit.
// NULL: forward: delta, states (as above); backward: delta (as above), and the parameter
// gradients dx_proj_w, ddt_w, ddt_b, dA_logs, dDs. Backward always needs dx and states.
#define SCAN_K 4
#define SCAN_CHUNK 64
size_t ss2d_scan_states_size(int B, int L, int E, int N);
size_t ss2d_scan_scratch(int B, int L, int E, int R, int N);           // forward and backward
size_t ss2d_scan_forward_scratch(int B, int L, int E, int R, int N);   // forward alone
void ss2d_scan_forward(float *y, float *xdbl, float *delta, float *states, const float *x,
                       const float *x_proj_w, const float *dt_w, const float *dt_b,
                       const float *A_logs, const float *Ds, float *scratch,
                       int B, int H, int W, int E, int R, int N);
void ss2d_scan_backward(float *dx, float *dx_proj_w, float *ddt_w, float *ddt_b, float *dA_logs,
                        float *dDs, const float *dy, const float *x, const float *xdbl,
                        const float *delta, const float *states, const float *x_proj_w,
                        const float *dt_w, const float *dt_b, const float *A_logs, const float *Ds, float *scratch,
                        int B, int H, int W, int E, int R, int N);

// ---- resampling (no NULL) ------------------------------------------------------------------
// Bilinear, align_corners = false (PyTorch's F.interpolate), [B,H,W,C] -> [B,OH,OW,C].
void bilinear_forward(float *out, const float *in, int B, int H, int W, int OH, int OW, int C);
void bilinear_backward(float *din, const float *dout, int B, int H, int W, int OH, int OW, int C);
// Adaptive average pooling [B,H,W,C] -> [B,S,S,C] (PyTorch's bin edges floor/ceil).
void adaptive_avgpool_forward(float *out, const float *in, int B, int H, int W, int S, int C);
void adaptive_avgpool_backward(float *din, const float *dout, int B, int H, int W, int S, int C);

// ---- stochastic regularisers (keys: see core/rng.h) ----------------------------------------
// keep[b*C + c] (Dropout2d) or keep[b] (drop path) hold 0 or 1/(1-p), drawn by the caller.
// NULL: the residual's keep (every sample kept, factor 1); nothing else (dres, dbranch and
// channel_scale's keep and din included).
void dropout2d_draw(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                    uint32_t block, int B, int C, float p);
void droppath_draw(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                   uint32_t block, int B, float p);
void channel_scale_forward(float *out, const float *in, const float *keep, int B, int HW, int C);
void channel_scale_backward(float *din, const float *dout, const float *keep, int B, int HW, int C);
// out = res + keep[b] * branch (x + drop_path(f(x))); backward adds to both.
void residual_droppath_forward(float *out, const float *res, const float *branch, const float *keep,
                               int B, int HW, int C);
void residual_droppath_backward(float *dres, float *dbranch, const float *dout, const float *keep,
                                int B, int HW, int C);

// ---- token mask (docs/math.md section 3) -------------------------------------------------------
typedef struct {
    bool training, noise, zero_mode, official_layout;
    float tau;
    uint64_t seed;
    uint32_t step, block;
    const int *sample_ids;    // [B] global sample index (keys the Gumbel noise)
} mv_mask_args;
size_t token_mask_scratch(int H, int W);
// x [B,H,W,C], logits P [gh*gw*2] -> out [B,H,W,C], m [B,H*W] (0/1), keep_logit [B,H*W] = the keep
// logit z (training: y_keep = sigmoid(z), z = ((l0+g0)-(l1+g1))/tau; evaluation: l0 - l1).
void token_mask_forward(float *out, float *m, float *keep_logit, const float *x, const float *P,
                        float *scratch, const mv_mask_args *a, int B, int H, int W, int C, int gh, int gw);
// dm [B,H*W] is the loss's gradient w.r.t. m (may be NULL). Straight-through to P.
// NULL: dm, dx, dP (dP is also left alone outside training).
void token_mask_backward(float *dx, float *dP, const float *dout, const float *dm, const float *x,
                         const float *m, const float *keep_logit, float *scratch, const mv_mask_args *a,
                         int B, int H, int W, int C, int gh, int gw);

// ---- losses -------------------------------------------------------------------------------
// Softmax cross-entropy over K classes per row of logits [N,K], label 255 ignored; the mean is
// over `denom` rows. Writes dlogits = scale * d(loss)/d(logits) (NULL: the loss alone) and
// returns the loss.
double cross_entropy_forward_backward(float *dlogits, const float *logits, const uint8_t *labels,
                                      int N, int K, double denom, float scale);
// correct[n] = 1 where argmax(logits[n]) == labels[n] (ignored pixels: 0).
void argmax_correct(float *correct, const float *logits, const uint8_t *labels, int N, int K);

// ---- element-wise and layout helpers -------------------------------------------------------
// NULL: mul_backward's da and db; nothing else.
void mul_forward(float *out, const float *a, const float *b, size_t n);
void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t n);
void add_forward(float *out, const float *a, const float *b, size_t n);
void accumulate(float *dst, const float *src, size_t n);   // dst += src
void fill(float *x, float v, size_t n);                    // x[i] = v (a step zeroes gradients with it)
// x[i] = *v: broadcasts one scalar (a ratio-loss gradient the GPU keeps on the device) over a tensor.
void fill_from(float *x, const float *v, size_t n);
// Copy in [N,C_in] into channels [off, off+C_in) of out [N,C_out], and its backward.
void channel_slice_forward(float *out, const float *in, int N, int C_out, int off, int C_in);
void channel_slice_backward(float *din, const float *dout, int N, int C_out, int off, int C_in);
// NCHW <-> NHWC for the image boundary of the model.
void nchw_to_nhwc(float *out, const float *in, int B, int C, int H, int W);
void nhwc_to_nchw(float *out, const float *in, int B, int H, int W, int C);
