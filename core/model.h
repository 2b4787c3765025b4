// The MaskViM model: parameters (core/params.h), planned activation arenas, forward, losses
// and backward on the CPU. Layer structs hold pointers into the arenas; model_plan lays the
// activations out for a batch shape once, so a training step allocates nothing.
#pragma once
#include "core/model_config.h"
#include "core/params.h"
#include "kernels/cpu/ops.h"

struct CUstream_st;   // cudaStream_t is a pointer to it

// Bump allocator over one arena; with base == NULL it only measures (the planning pass).
typedef struct { float *base; size_t used; size_t scratch; } mv_arena;

// What a plan serves. A training plan keeps every activation for backward and has a gradient
// arena. An inference plan (evaluation, prediction) keeps only what a later op of the forward
// reads: all blocks' internal activations share one region, slots reused within a block as soon
// as they are dead; ConvModules and the decoder's sums run in place; there is no gradient arena,
// and the loss buffers and the auxiliary head are left out (docs/model.md, "Inference plans").
// maskvim-t at 1024x2048 plans 6.0 GiB for inference, 31.3 GiB for training.
typedef enum { MV_PLAN_TRAIN, MV_PLAN_INFER } mv_plan_mode;
float *arena_take(mv_arena *a, size_t n);
void arena_need_scratch(mv_arena *a, size_t n);
// A region that one user at a time takes from its start (the blocks' internal gradients, an
// inference plan's block activations): each user plans in arena_from_start(region), then
// arena_fit raises the region's used and scratch to the view's, so the region fits its largest user.
mv_arena arena_from_start(const mv_arena *region);
void arena_fit(mv_arena *region, const mv_arena *view);

// Slots of mv_model.scalars (doubles): the losses, the cross-entropy denominator, each block's
// position loss (at MV_S_POS0 + block), then the ratio statistics (sums of m per block, then
// token counts per block).
enum { MV_S_TOTAL, MV_S_CE, MV_S_AUX, MV_S_RATIO, MV_S_POSITION, MV_S_DENOM, MV_S_POS0 };
#define MV_S_STATS_AT(nb) (MV_S_POS0 + (nb))
#define MV_SCALARS(nb) ((size_t)MV_S_POS0 + 3 * (size_t)(nb))

typedef struct {
    bool training;
    uint64_t seed;
    uint32_t step;
    const int *sample_ids;   // [B] global index of each image in the step's global batch
    mv_reducer reduce;       // cross-rank sum of doubles (SyncBN, ratio loss); fn NULL on 1 rank
    // The same on the GPU model: sums DEVICE doubles in place, ordered on `stream` (a
    // cudaStream_t, whose type this names without including CUDA), e.g. through NCCL. fn NULL
    // on one rank.
    struct { void (*fn)(void *ctx, double *buf, int n, struct CUstream_st *stream); void *ctx; } reduce_dev;
    int world_size;          // ranks whose gradients are averaged (1 without MPI)
    // Called during backward: every parameter gradient at flat offset >= lo is final (the
    // gradient all-reduce starts those buckets while backward goes on). May be NULL.
    void (*grads_ready)(void *ctx, size_t lo);
    void *grads_ctx;
} mv_run_ctx;

// LayerNorm and BatchNorm epsilon: PyTorch's default for both, as the checkpoints were trained with.
#define MV_NORM_EPS 1e-5f

// LayerNorm over the C channels of each row (layernorm_apply in core/layers.c).
typedef struct {
    int C;
    float *w, *b, *dw, *db;
    float *out, *dout, *mean, *rstd;
} mv_layernorm;

// ConvModule: conv (no bias) -> BatchNorm -> ReLU; K = 1 or 3.
typedef struct {
    int IC, OC, K, H, W;
    float *w, *dw, *bn_w, *bn_b, *dbn_w, *dbn_b, *running_mean, *running_var;
    float *conv, *dconv, *bn, *dbn, *out, *dout, *mean, *rstd;
} mv_convmod;

// VSS / MVSS block (docs/math.md sections 2.1-2.2).
typedef struct {
    int in_dim, C;           // channels in (pre_mlp projects them to C where they differ); the width
    int E;                   // SS2D's inner width, ssm_ratio * C
    int R;                   // dt_rank, ceil(C / 16)
    int N;                   // d_state: the selective scan's state size per channel
    int gh, gw;              // the token mask's logit grid (crop / stride), resized to H x W
    int H, W;                // feature map of the planned batch
    bool masked, has_pre;
    float drop_rate;
    uint32_t id;             // keys this block's random draws
    int ratio_group;         // encoder stage for the ratio loss, -1 for decoder blocks
    float *token_mask, *pre_w, *pre_b, *in_proj_w, *conv_w, *conv_b, *x_proj_w, *dt_w, *dt_b, *A_logs, *Ds, *out_proj_w;
    float *d_token_mask, *d_pre_w, *d_pre_b, *d_in_proj_w, *d_conv_w, *d_conv_b, *d_x_proj_w, *d_dt_w, *d_dt_b, *d_A_logs, *d_Ds, *d_out_proj_w;
    mv_layernorm norm, out_norm;
    const float *in; float *d_in;
    float *xm, *d_xm;                   // masked input
    float *m, *dm;                      // 0/1 token mask [B, H*W] and dL/dm
    // The mask's keep logit z [B, H*W]: training, ((l0+g0)-(l1+g1))/tau, y_keep = sigmoid(z);
    // evaluation, l0 - l1.
    float *keep_logit;
    float *x0, *d_x0;                   // residual stream entering the block
    float *xp, *d_xp;                   // in_proj's x half [rows, E]
    float *zp, *d_zp;                   // in_proj's z half (the gate) [rows, E]
    float *zs, *d_zs;                   // SiLU(zp)
    float *xconv, *d_xconv;             // depthwise 3x3 conv of xp
    float *xs, *d_xs;                   // SiLU(xconv): the scan's input
    float *xdbl, *states;               // the scan's projections (dt, B, C) and saved states
    float *ys, *d_ys;                   // the four-direction scan, merged [rows, E]
    float *yg, *d_yg;                   // out_norm(ys) * zs: out_proj's input
    float *branch, *d_branch;           // out_proj's output, before drop path
    float *droppath_scale;              // [B] drop path's per-image scale: 0 or 1/(1-p)
    float *out, *d_out;
} mv_block;

typedef struct {
    mv_model_config cfg;
    mv_params params;
    int num_blocks;
    mv_block *blocks;            // encoder blocks (stage by stage), then decoder blocks
    int enc_first[4], dec_first[3], dec_depth[3];   // dec_depth: blocks per lateral (0 for the linear head)
    int ctx_block;               // the VSS block standing in for pyramid pooling (model.context: vss), or -1
    size_t stage_grad_lo[4], decoder_grad_lo;   // flat offsets where stages/decoder start

    // encoder
    float *pe_w, *pe_b, *d_pe_w, *d_pe_b;
    mv_layernorm pe_norm, outnorm[4], ds_norm[3];
    float *ds_w[3], *d_ds_w[3];
    // decoder
    mv_layernorm lat_ln[3];
    mv_convmod psp[4], bottleneck, fpn[3], fpn_bottleneck, aux_conv;
    mv_layernorm ctx_ln;         // after the context block (model.context: vss)
    mv_convmod lin[4], lin_fuse; // the linear head (model.head: linear): per-level 1x1, fusion 1x1
    mv_convmod *head_out;        // what conv_seg reads: fpn_bottleneck or lin_fuse
    float *seg_w, *seg_b, *d_seg_w, *d_seg_b, *aux_seg_w, *aux_seg_b, *d_aux_seg_w, *d_aux_seg_b;

    // planned activations for (B, H, W)
    int B, H, W, Hs[4], Ws[4];
    mv_plan_mode plan_mode;
    mv_arena acts, dacts;
    // One allocation of arena_cap floats (acts_mem) holds acts | dacts_mem | dtemps | scratch
    // (training; dtemps: the gradients internal to one block or ConvModule, shared by all) or
    // acts | region (inference: every block's internals and then the block scratch while a
    // block runs, the scratch of every other op between blocks); a later plan that fits reuses
    // it. block_scratch is what block_forward gets (training: scratch itself).
    float *acts_mem, *dacts_mem, *scratch, *block_scratch;
    size_t arena_cap, dtemps_floats;
    float *img, *pe, *d_pe;
    float *ds_gather[3], *d_ds_gather[3], *ds_out[3], *d_ds_out[3];
    float *stage_out[4], *d_stage_out[4];              // last block of each stage
    float *feat[4], *d_feat[4];                        // outnorm outputs F_i
    float *psp_pool[4], *d_psp_pool[4], *psp_up[4], *d_psp_up[4], *psp_cat, *d_psp_cat;
    float *lat[4], *d_lat[4];                          // laterals: lat_ln[i] out; 3: bottleneck or ctx_ln out
    float *td[4], *d_td[4];                            // top-down sums: td[i] = lat[i] + resize(td[i+1]), td[3] = lat[3]
    float *td_up[3];                                   // resize(td[i+1]) to level i
    float *fpn_up[4], *d_fpn_up[4], *fpn_cat, *d_fpn_cat;   // fpn[1..2], td[3] resized to level 0; all 4 joined
    float *lin_up[4], *d_lin_up[4], *lin_cat, *d_lin_cat;   // the same for the linear head's lin[1..3]
    float *seg_dropout_scale, *seg_in, *d_seg_in, *logits, *d_logits;   // Dropout2d's [B, C] scale: 0 or 1/(1-p)
    float *aux_dropout_scale, *aux_in, *d_aux_in, *aux_logits, *d_aux_logits;   // the same for the auxiliary head
    float *full, *d_full;                              // logits (main, then auxiliary) resized to the label size
    float *correct;                                    // 1 where the prediction is right (ignored: 0), label size
    float *correct_lv[3];                              // `correct` resized to level i: L_position's targets

    // loss scalars and ratio-loss state (planned in the activation arena: device memory on the GPU)
    double *scalars, *scalars_host;    // MV_SCALARS(num_blocks) doubles; the host copy for the logs
    float *ratio_grad, *ratio_lambda;  // per block: the value filled into dm; lambda per stage
    int *ratio_group;                  // per block: encoder stage in L_ratio, or -1
    void (*arena_free)(void *);        // frees the arenas (free, or cudaFree for the GPU model)
    const struct mv_engine *engine;    // where it runs (core/engine.h); NULL: this CPU model
    float *logits_host;                // host copy of the logits under an engine
    size_t logits_host_cap;

    // results of the last forward
    double loss_total, loss_ce, loss_aux, loss_ratio, loss_position;
    double keep_enc[4], keep_dec[3];   // mean mask keep ratio per encoder stage / decoder level (global batch with mask.ratio_sync)
} mv_model;

// Pyramid pooling's output sizes (PSPNet's bins 1, 2, 3, 6, as mmseg's UPerHead), for psp[s].
static inline int psp_scale(int s) {
    static const int scales[4] = {1, 2, 3, 6};
    return scales[s];
}

// Builds the model for a validated configuration and registers every parameter.
int model_build(mv_model *m, const mv_model_config *cfg);
void model_free(mv_model *m);
// Lays out activations for images of B x 3 x H x W (re-plans only when the shape or mode changes).
int model_plan(mv_model *m, int B, int H, int W, mv_plan_mode mode);
// Floats that model_plan would allocate for this shape and mode (activations, the inference block
// region, activation gradients and scratch), measured without allocating; the current plan stays.
// CPU plans only (the GPU's scratch sizes differ): 0 while a GPU plan is bound, or for a shape
// model_plan refuses.
size_t model_plan_floats(mv_model *m, int B, int H, int W, mv_plan_mode mode);
// Forward (and losses when labels != NULL, which needs a training plan). images [B,3,H,W]
// normalised; labels [B,H,W]. An inference plan computes the main head's logits only.
int model_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx);
// 0 when every label is a class 0..K-1 or 255 (ignore), else -1 naming the first other value,
// its image and pixel (host labels; CPU library). model_forward and run_forward check with it.
int model_check_labels(const uint8_t *labels, int B, int H, int W, int K);
// Backward of the last forward's loss: adds into m->params.grads.
void model_backward(mv_model *m, const mv_run_ctx *ctx);
// Frees the planned activation memory (model_plan allocates it again).
void model_release_activations(mv_model *m);
// Counts parameters (not buffers).
size_t model_num_parameters(const mv_model *m);
// Names masked block j by the state_dict prefix of its token mask (e.g.
// "backbone.layers.0.blocks.1"); "" when the block has no mask.
void model_mask_name(char *out, size_t n, const mv_model *m, int block);

// Blocks (core/vss_block.c).
void block_register(mv_block *b, mv_params *p, const char *prefix, const mv_model_config *cfg);
// Training: every activation from `acts`, d_out from `dacts`, the gradients that live only
// while the block's backward runs in slots from the start of `dtemps`, whose used grows to the
// largest such need: one region for every block (block_backward zeroes each as it takes it).
void block_plan(mv_block *b, mv_arena *acts, mv_arena *dacts, mv_arena *dtemps, const float *in, float *d_in,
                int B, int H, int W);
// Inference: the block's output and mask from `acts`, its internals from slots of `temps` that are
// reused once dead (a liveness plan; no gradients); temps->scratch gets its ops' scratch need.
void block_plan_infer(mv_block *b, mv_arena *acts, mv_arena *temps, const float *in, int B, int H, int W);
void block_forward(mv_block *b, float *scratch, const mv_model_config *cfg, const mv_run_ctx *ctx, int B);
void block_backward(mv_block *b, float *scratch, const mv_model_config *cfg, const mv_run_ctx *ctx, int B);

// The SegFormer-style linear head (core/linear_head.c): F_0..F_3 -> m->lin_fuse.out.
void linear_head_register(mv_model *m);
void linear_head_plan(mv_model *m, mv_arena *A, mv_arena *D, mv_arena *G);
void linear_head_forward(mv_model *m, const mv_run_ctx *ctx);
void linear_head_backward(mv_model *m, const mv_run_ctx *ctx);

// Shared layers (core/layers.c).
void layernorm_register(mv_layernorm *l, mv_params *p, int C, const char *name);
// dacts NULL: no dout (the caller places it).
void layernorm_plan(mv_layernorm *l, mv_arena *acts, mv_arena *dacts, int rows);
// l->out = LayerNorm(in) over rows of l->C channels (l->mean, l->rstd kept for backward).
void layernorm_apply(mv_layernorm *l, const float *in, int rows);
// Adds dL/din into d_in and dL/dw, dL/db into l->dw, l->db, from l->dout.
void layernorm_apply_backward(mv_layernorm *l, float *d_in, const float *in, int rows);
void convmod_register(mv_convmod *c, mv_params *p, int IC, int OC, int K, const char *name);
// An inference plan gives conv, bn and out one buffer (in-place BatchNorm and ReLU), no gradients.
// Training: dout from `dacts`; dconv and dbn, dead after the ConvModule's backward (which zeroes
// them first), from the start of `dtemps` (the region the blocks share, see block_plan).
void convmod_plan(mv_convmod *c, mv_arena *acts, mv_arena *dacts, mv_arena *dtemps, int B, int H, int W,
                  mv_plan_mode mode);
void convmod_forward(mv_convmod *c, const float *in, float *scratch, const mv_run_ctx *ctx, int B);
void convmod_backward(mv_convmod *c, float *d_in, const float *in, float *scratch, const mv_run_ctx *ctx, int B);
// Levels 0..3 joined at level 0's size (levels 1..3 resized through up[i]): C channels each.
void levels_concat_forward(const mv_model *m, float *cat, const float *const lv[4], float *const up[4], int C);
void levels_concat_backward(const mv_model *m, float *const d_lv[4], float *const d_up[4], const float *d_cat, int C);
