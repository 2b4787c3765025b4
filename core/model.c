// MaskViM's forward pass, losses and backward pass (docs/model.md). model_forward reads as the
// network does: patch embedding and encoder stages, the decode head, the segmentation and
// auxiliary heads, the losses; its helpers follow in that order, then model_backward and its
// helpers in reverse. Planning, which lays out the activations these read and write, is
// core/model_plan.c. The same source is the GPU model too (core/model_ops.h maps the ops and
// allocations when MV_MODEL_DEVICE is set), so everything here is an op call: no loop touches
// activation memory directly.
#include "core/model_ops.h"
#include "core/error.h"

// Identifiers of the random streams of the two Dropout2d layers (after all block ids).
#define DROPOUT_MAIN_ID 0xFFF0u
#define DROPOUT_AUX_ID 0xFFF1u

static void encoder_forward(mv_model *m, const float *images, const mv_run_ctx *ctx);
static void downsample_forward(mv_model *m, int i);
static void mask_decoder_forward(mv_model *m, const mv_run_ctx *ctx);
static void seg_head_forward(mv_model *m, const mv_run_ctx *ctx);
static void aux_head_forward(mv_model *m, const mv_run_ctx *ctx);
static void losses(mv_model *m, const uint8_t *labels, const mv_run_ctx *ctx);

int model_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx) {
    bool training_plan = m->plan_mode == MV_PLAN_TRAIN;
    if ((labels || ctx->training) && !training_plan)
        return mv_fail("model_forward: losses and training need a training plan (model_plan with MV_PLAN_TRAIN)");
#ifndef MV_MODEL_DEVICE   // host labels (on the GPU the cross-entropy turns such a label into a NaN loss)
    if (labels) MV_TRY(model_check_labels(labels, m->B, m->H, m->W, m->cfg.num_classes));
#endif
    // The activation gradients are zeroed here, before the forward, not in model_backward:
    // losses() below already writes d_logits and d_aux_logits (the fused cross-entropy), and
    // every backward op then adds into its gradients.
    if (labels) fill(m->dacts_mem, 0.0f, m->dacts.used);

    encoder_forward(m, images, ctx);
    if (m->cfg.head == MV_HEAD_LINEAR) linear_head_forward(m, ctx);
    else mask_decoder_forward(m, ctx);
    seg_head_forward(m, ctx);
    if (!training_plan) return 0;
    aux_head_forward(m, ctx);
    if (labels) losses(m, labels, ctx);
    return 0;
}

// Patch embedding (4x4 conv, LayerNorm), then per stage: its blocks, the output LayerNorm (F_i,
// the decoder's input) and, between stages, the downsample.
static void encoder_forward(mv_model *m, const float *images, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W;
    const int *dims = cfg->dims;
    nchw_to_nhwc(m->img, images, B, 3, H, W);
    conv2d_forward(m->pe, m->img, m->pe_w, m->pe_b, m->scratch, B, H, W, 3, dims[0], 4, 4, 0);
    layernorm_apply(&m->pe_norm, m->pe, B * m->Hs[0] * m->Ws[0]);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < cfg->depths[i]; j++)
            block_forward(&m->blocks[m->enc_first[i] + j], m->block_scratch, cfg, ctx, B);
        layernorm_apply(&m->outnorm[i], m->stage_out[i], B * m->Hs[i] * m->Ws[i]);
        if (i < 3) downsample_forward(m, i);
    }
}

// Patch merging from stage i to i+1: each 2x2 neighbourhood gathered to 4C_i channels (odd
// sizes zero-padded), LayerNorm, Linear(4C_i -> C_{i+1}) without bias.
static void downsample_forward(mv_model *m, int i) {
    int B = m->B, orows = B * m->Hs[i + 1] * m->Ws[i + 1];
    const int *dims = m->cfg.dims;
    patch_gather_forward(m->ds_gather[i], m->stage_out[i], B, m->Hs[i], m->Ws[i], dims[i]);
    layernorm_apply(&m->ds_norm[i], m->ds_gather[i], orows);
    linear_forward(m->ds_out[i], m->ds_norm[i].out, m->ds_w[i], NULL, orows, 4 * dims[i], dims[i + 1]);
}

// Decoder: masked lateral paths on F_0..F_2, lateral 3 from F_3, top-down sums, FPN, fusion.
static void mask_decoder_forward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels;
    const int *dims = cfg->dims;
    int H3 = m->Hs[3], W3 = m->Ws[3], rows3 = B * H3 * W3;
    float *scratch = m->scratch;
    for (int i = 0; i < 3; i++) {
        int first = m->dec_first[i], n = m->dec_depth[i];
        for (int j = 0; j < n; j++) block_forward(&m->blocks[first + j], m->block_scratch, cfg, ctx, B);
        layernorm_apply(&m->lat_ln[i], m->blocks[first + n - 1].out, B * m->Hs[i] * m->Ws[i]);
    }
    if (m->ctx_block >= 0) {   // lateral 3: one VSS block instead of the multi-scale pooling
        mv_block *cb = &m->blocks[m->ctx_block];
        block_forward(cb, m->block_scratch, cfg, ctx, B);
        layernorm_apply(&m->ctx_ln, cb->out, rows3);
    } else {                   // lateral 3: pyramid pooling
        int cat_c = dims[3] + 4 * Dc;
        channel_slice_forward(m->psp_cat, m->feat[3], rows3, cat_c, 0, dims[3]);
        for (int s = 0; s < 4; s++) {
            int S = psp_scale(s);
            adaptive_avgpool_forward(m->psp_pool[s], m->feat[3], B, H3, W3, S, dims[3]);
            convmod_forward(&m->psp[s], m->psp_pool[s], scratch, ctx, B);
            bilinear_forward(m->psp_up[s], m->psp[s].out, B, S, S, H3, W3, Dc);
            channel_slice_forward(m->psp_cat, m->psp_up[s], rows3, cat_c, dims[3] + s * Dc, Dc);
        }
        convmod_forward(&m->bottleneck, m->psp_cat, scratch, ctx, B);
    }
    // Top-down: lateral[i] += resize(lateral[i+1]), from the coarsest level down.
    for (int i = 2; i >= 0; i--) {
        bilinear_forward(m->td_up[i], m->td[i + 1], B, m->Hs[i + 1], m->Ws[i + 1], m->Hs[i], m->Ws[i], Dc);
        add_forward(m->td[i], m->lat[i], m->td_up[i], (size_t)B * m->Hs[i] * m->Ws[i] * Dc);
    }
    for (int i = 0; i < 3; i++) convmod_forward(&m->fpn[i], m->td[i], scratch, ctx, B);
    const float *fused[4] = {m->fpn[0].out, m->fpn[1].out, m->fpn[2].out, m->td[3]};
    levels_concat_forward(m, m->fpn_cat, fused, m->fpn_up, Dc);
    convmod_forward(&m->fpn_bottleneck, m->fpn_cat, scratch, ctx, B);
}

// Dropout2d's per-channel scales: drawn in training, 1 otherwise.
static void draw_dropout(float *scale, const mv_run_ctx *ctx, float p, uint32_t stream, int B, int C) {
    if (ctx->training && p > 0) dropout2d_draw(scale, ctx->seed, ctx->step, ctx->sample_ids, stream, B, C, p);
    else fill(scale, 1.0f, (size_t)B * C);
}

// conv_seg: Dropout2d, then a 1x1 conv (Linear) from the decode head's D channels to K classes.
static void seg_head_forward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels, HW0 = m->Hs[0] * m->Ws[0];
    draw_dropout(m->seg_dropout_scale, ctx, cfg->dropout, DROPOUT_MAIN_ID, B, Dc);
    channel_scale_forward(m->seg_in, m->head_out->out, m->seg_dropout_scale, B, HW0, Dc);
    linear_forward(m->logits, m->seg_in, m->seg_w, m->seg_b, B * HW0, Dc, cfg->num_classes);
}

// Auxiliary FCN head on F_2 (training only: its logits feed nothing but the loss).
static void aux_head_forward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Ac = cfg->aux_channels, HW2 = m->Hs[2] * m->Ws[2];
    convmod_forward(&m->aux_conv, m->feat[2], m->scratch, ctx, B);
    draw_dropout(m->aux_dropout_scale, ctx, cfg->dropout, DROPOUT_AUX_ID, B, Ac);
    channel_scale_forward(m->aux_in, m->aux_conv.out, m->aux_dropout_scale, B, HW2, Ac);
    linear_forward(m->aux_logits, m->aux_in, m->aux_seg_w, m->aux_seg_b, B * HW2, Ac, cfg->num_classes);
}

#ifndef MV_MODEL_DEVICE
// Labels must be classes 0..K-1 or 255 (ignore), as PyTorch's cross-entropy requires ("Target
// 20 is out of bounds"): any other value would index past its row of logits.
int model_check_labels(const uint8_t *labels, int B, int H, int W, int K) {
    size_t n = (size_t)B * H * W;
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= K && labels[i] != 255)
            return mv_fail("label %d of image %zu at (y %zu, x %zu) is neither a class 0..%d nor 255 "
                           "(ignore)", labels[i], i / ((size_t)H * W), i / W % H, i % W, K - 1);
    return 0;
}
#endif

static void mask_keep_ratios(mv_model *m, const double *stats);

// docs/math.md section 5. Cross-entropy gradients are formed here (fused, as llm.c's classifier);
// the mask losses leave dL/dm in each masked block for backward. Every scalar stays in
// m->scalars (device memory on the GPU) until one download at the end, for the logs.
static void losses(mv_model *m, const uint8_t *labels, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W, K = cfg->num_classes, N = B * H * W, nb = m->num_blocks;
    double *S = m->scalars, *stats = S + MV_S_STATS_AT(nb);
    fill_double(S, 0.0, MV_SCALARS(nb));
    if (cfg->avg_non_ignore) count_valid(&S[MV_S_DENOM], labels, (size_t)N);
    else fill_double(&S[MV_S_DENOM], (double)N, 1);
    bilinear_forward(m->full, m->logits, B, m->Hs[0], m->Ws[0], H, W, K);
    ce_loss(m->d_full, &S[MV_S_CE], m->full, labels, N, K, &S[MV_S_DENOM], 1.0f);
    argmax_correct(m->correct, m->full, labels, N, K);
    bilinear_backward(m->d_logits, m->d_full, B, m->Hs[0], m->Ws[0], H, W, K);
    bilinear_forward(m->full, m->aux_logits, B, m->Hs[2], m->Ws[2], H, W, K);
    ce_loss(m->d_full, &S[MV_S_AUX], m->full, labels, N, K, &S[MV_S_DENOM], cfg->aux_weight);
    bilinear_backward(m->d_aux_logits, m->d_full, B, m->Hs[2], m->Ws[2], H, W, K);

    // L_ratio over the encoder's masked blocks: per block, or one term per stage. The sums of
    // every masked block (decoder ones too, for the logged keep ratios) and their token counts.
    for (int j = 0; j < nb; j++) {
        mv_block *b = &m->blocks[j];
        if (!b->masked) continue;
        size_t n = (size_t)B * b->H * b->W;
        sum_to_double(&stats[j], b->m, n);
        fill_double(&stats[nb + j], (double)n, 1);
    }
    bool global = cfg->ratio_sync && MV_HAS_REDUCER(ctx);
    if (global) ratio_stats_reduce(ctx, stats, 2 * nb);
    // With the global mean, every rank holds the full gradient of the global term; the
    // gradient all-reduce averages over ranks, so pre-multiply by the world size.
    double world = global ? (double)ctx->world_size : 1.0;
    ratio_loss(&S[MV_S_RATIO], m->ratio_grad, stats, m->ratio_group, m->ratio_lambda, nb,
               cfg->lambda_per_stage, cfg->alpha1, world);
    for (int j = 0; j < nb; j++) {
        mv_block *b = &m->blocks[j];
        if (b->masked && b->ratio_group >= 0) fill_from(b->dm, &m->ratio_grad[j], (size_t)B * b->H * b->W);
    }

    // L_position over the decoder's masked blocks against "prediction correct" maps.
    for (int i = 0; i < 3; i++)
        bilinear_forward(m->correct_lv[i], m->correct, B, H, W, m->Hs[i], m->Ws[i], 1);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < m->dec_depth[i]; j++) {
            int id = m->dec_first[i] + j;
            mv_block *b = &m->blocks[id];
            if (!b->masked) continue;
            position_loss(&S[MV_S_POS0 + id], b->dm, b->m, m->correct_lv[i], (size_t)B * b->H * b->W, cfg->alpha2);
            add_scaled_double(&S[MV_S_POSITION], &S[MV_S_POS0 + id], 1.0);
        }
    add_scaled_double(&S[MV_S_TOTAL], &S[MV_S_CE], 1.0);
    add_scaled_double(&S[MV_S_TOTAL], &S[MV_S_AUX], cfg->aux_weight);
    add_scaled_double(&S[MV_S_TOTAL], &S[MV_S_RATIO], cfg->alpha1);
    add_scaled_double(&S[MV_S_TOTAL], &S[MV_S_POSITION], cfg->alpha2);

    // The logged scalars: the step's one transfer to the host.
    double *h = m->scalars_host;
    mv_download(h, S, sizeof(double) * MV_SCALARS(nb));
    m->loss_total = h[MV_S_TOTAL]; m->loss_ce = h[MV_S_CE]; m->loss_aux = h[MV_S_AUX];
    m->loss_ratio = h[MV_S_RATIO]; m->loss_position = h[MV_S_POSITION];
    mask_keep_ratios(m, h + MV_S_STATS_AT(nb));
}

// Mean keep ratio of the masks per encoder stage and per decoder level (for the logs), from the
// per-block sums the losses downloaded (over the global batch when the ratio term is global).
static void mask_keep_ratios(mv_model *m, const double *stats) {
    int nb = m->num_blocks;
    double sum_e[4] = {0}, n_e[4] = {0}, sum_d[3] = {0}, n_d[3] = {0};
    for (int j = 0; j < nb; j++) {
        const mv_block *b = &m->blocks[j];
        if (!b->masked) continue;
        double mean = stats[j] / stats[nb + j];
        if (b->ratio_group >= 0) { sum_e[b->ratio_group] += mean; n_e[b->ratio_group] += 1; }
        else {
            int lv = j >= m->dec_first[2] ? 2 : j >= m->dec_first[1] ? 1 : 0;
            sum_d[lv] += mean; n_d[lv] += 1;
        }
    }
    for (int i = 0; i < 4; i++) m->keep_enc[i] = n_e[i] > 0 ? sum_e[i] / n_e[i] : 1.0;
    for (int i = 0; i < 3; i++) m->keep_dec[i] = n_d[i] > 0 ? sum_d[i] / n_d[i] : 1.0;
}

// ---------------------------------------------------------------------------------------------
// Backward: the forward's steps in reverse.

static void aux_head_backward(mv_model *m, const mv_run_ctx *ctx);
static void seg_head_backward(mv_model *m);
static void mask_decoder_backward(mv_model *m, const mv_run_ctx *ctx);
static void encoder_backward(mv_model *m, const mv_run_ctx *ctx);
static void downsample_backward(mv_model *m, int i);

void model_backward(mv_model *m, const mv_run_ctx *ctx) {
    MV_CHECK(m->plan_mode == MV_PLAN_TRAIN && m->dacts_mem, "model_backward needs a training plan");
    aux_head_backward(m, ctx);
    seg_head_backward(m);
    if (m->cfg.head == MV_HEAD_LINEAR) linear_head_backward(m, ctx);
    else mask_decoder_backward(m, ctx);
    if (ctx->grads_ready) ctx->grads_ready(ctx->grads_ctx, m->decoder_grad_lo);
    encoder_backward(m, ctx);
}

static void aux_head_backward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Ac = cfg->aux_channels, HW2 = m->Hs[2] * m->Ws[2];
    linear_backward(m->d_aux_in, m->d_aux_seg_w, m->d_aux_seg_b, m->d_aux_logits, m->aux_in, m->aux_seg_w, B * HW2,
                    Ac, cfg->num_classes);
    channel_scale_backward(m->aux_conv.dout, m->d_aux_in, m->aux_dropout_scale, B, HW2, Ac);
    convmod_backward(&m->aux_conv, m->d_feat[2], m->feat[2], m->scratch, ctx, B);
}

static void seg_head_backward(mv_model *m) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels, HW0 = m->Hs[0] * m->Ws[0];
    linear_backward(m->d_seg_in, m->d_seg_w, m->d_seg_b, m->d_logits, m->seg_in, m->seg_w, B * HW0, Dc,
                    cfg->num_classes);
    channel_scale_backward(m->head_out->dout, m->d_seg_in, m->seg_dropout_scale, B, HW0, Dc);
}

static void mask_decoder_backward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels;
    const int *dims = cfg->dims;
    int H3 = m->Hs[3], W3 = m->Ws[3], rows3 = B * H3 * W3;
    float *scratch = m->scratch;
    convmod_backward(&m->fpn_bottleneck, m->d_fpn_cat, m->fpn_cat, scratch, ctx, B);
    float *d_fused[4] = {m->fpn[0].dout, m->fpn[1].dout, m->fpn[2].dout, m->d_td[3]};
    levels_concat_backward(m, d_fused, m->d_fpn_up, m->d_fpn_cat, Dc);
    for (int i = 0; i < 3; i++) convmod_backward(&m->fpn[i], m->d_td[i], m->td[i], scratch, ctx, B);
    // Top-down, finest level first: td[i] feeds its FPN conv and the sum of level i-1, so once
    // level i-1 has passed its share back, d_td[i] is complete before its own turn hands it on
    // to its lateral and to d_td[i+1].
    for (int i = 0; i < 3; i++) {
        accumulate(m->d_lat[i], m->d_td[i], (size_t)B * m->Hs[i] * m->Ws[i] * Dc);
        bilinear_backward(m->d_td[i + 1], m->d_td[i], B, m->Hs[i + 1], m->Ws[i + 1], m->Hs[i], m->Ws[i], Dc);
    }
    if (m->ctx_block >= 0) {
        mv_block *cb = &m->blocks[m->ctx_block];
        layernorm_apply_backward(&m->ctx_ln, cb->d_out, cb->out, rows3);
        block_backward(cb, scratch, cfg, ctx, B);
    } else {
        int cat_c = dims[3] + 4 * Dc;
        convmod_backward(&m->bottleneck, m->d_psp_cat, m->psp_cat, scratch, ctx, B);
        channel_slice_backward(m->d_feat[3], m->d_psp_cat, rows3, cat_c, 0, dims[3]);
        for (int s = 0; s < 4; s++) {
            int S = psp_scale(s);
            channel_slice_backward(m->d_psp_up[s], m->d_psp_cat, rows3, cat_c, dims[3] + s * Dc, Dc);
            bilinear_backward(m->psp[s].dout, m->d_psp_up[s], B, S, S, H3, W3, Dc);
            convmod_backward(&m->psp[s], m->d_psp_pool[s], m->psp_pool[s], scratch, ctx, B);
            adaptive_avgpool_backward(m->d_feat[3], m->d_psp_pool[s], B, H3, W3, S, dims[3]);
        }
    }
    for (int i = 2; i >= 0; i--) {
        int first = m->dec_first[i], n = m->dec_depth[i];
        mv_block *last = &m->blocks[first + n - 1];
        layernorm_apply_backward(&m->lat_ln[i], last->d_out, last->out, B * m->Hs[i] * m->Ws[i]);
        for (int j = n - 1; j >= 0; j--) block_backward(&m->blocks[first + j], scratch, cfg, ctx, B);
    }
}

// Stage by stage from the last; after each, that stage's parameter gradients are final (the
// gradient all-reduce may start on them), and after the patch embedding every one is.
static void encoder_backward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W;
    const int *dims = cfg->dims;
    for (int i = 3; i >= 0; i--) {
        if (i < 3) downsample_backward(m, i);
        layernorm_apply_backward(&m->outnorm[i], m->d_stage_out[i], m->stage_out[i], B * m->Hs[i] * m->Ws[i]);
        for (int j = cfg->depths[i] - 1; j >= 0; j--)
            block_backward(&m->blocks[m->enc_first[i] + j], m->scratch, cfg, ctx, B);
        if (ctx->grads_ready) ctx->grads_ready(ctx->grads_ctx, m->stage_grad_lo[i]);
    }
    layernorm_apply_backward(&m->pe_norm, m->d_pe, m->pe, B * m->Hs[0] * m->Ws[0]);
    conv2d_backward(NULL, m->d_pe_w, m->d_pe_b, m->d_pe, m->img, m->pe_w, m->scratch, B, H, W, 3, dims[0], 4, 4, 0);
    if (ctx->grads_ready) ctx->grads_ready(ctx->grads_ctx, 0);
}

static void downsample_backward(mv_model *m, int i) {
    int B = m->B, orows = B * m->Hs[i + 1] * m->Ws[i + 1];
    const int *dims = m->cfg.dims;
    mv_layernorm *dn = &m->ds_norm[i];
    linear_backward(dn->dout, m->d_ds_w[i], NULL, m->d_ds_out[i], dn->out, m->ds_w[i], orows, 4 * dims[i], dims[i + 1]);
    layernorm_apply_backward(dn, m->d_ds_gather[i], m->ds_gather[i], orows);
    patch_gather_backward(m->d_stage_out[i], m->d_ds_gather[i], B, m->Hs[i], m->Ws[i], dims[i]);
}
