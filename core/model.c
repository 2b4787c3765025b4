// MaskViM forward and backward on the CPU: the model file reads top to bottom like SPEC.md
// sections 2-5. Planning lays out every activation (and its gradient) for one batch shape.
#include "core/model.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

static const int PSP_SCALES[4] = {1, 2, 3, 6};

#define TAKE2(x, dx, n) do { size_t n_ = (n); (x) = arena_take(A, n_); (dx) = arena_take(D, n_); } while (0)

// The mask decoder (SPEC.md section 4): lateral MVSS paths, lateral 3 from F_3 (pyramid
// pooling, or one VSS block with model.context: vss), top-down sums, FPN convs and fusion.
static void plan_mask_decoder(mv_model *m, mv_arena *A, mv_arena *D) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels;
    const int *dims = cfg->dims;
    int H0 = m->Hs[0], W0 = m->Ws[0], H3 = m->Hs[3], W3 = m->Ws[3];
    size_t rows0 = (size_t)B * H0 * W0;
    for (int i = 0; i < 3; i++) {
        const float *x = m->feat[i];
        float *dx = m->d_feat[i];
        for (int j = 0; j < m->dec_depth[i]; j++) {
            mv_block *b = &m->blocks[m->dec_first[i] + j];
            block_plan(b, A, D, x, dx, B, m->Hs[i], m->Ws[i]);
            x = b->out; dx = b->d_out;
        }
        layernorm_plan(&m->lat_ln[i], A, D, B * m->Hs[i] * m->Ws[i]);
        m->lat[i] = m->lat_ln[i].out; m->d_lat[i] = m->lat_ln[i].dout;
    }
    if (m->ctx_block >= 0) {
        block_plan(&m->blocks[m->ctx_block], A, D, m->feat[3], m->d_feat[3], B, H3, W3);
        layernorm_plan(&m->ctx_ln, A, D, B * H3 * W3);
        m->lat[3] = m->td[3] = m->ctx_ln.out;
        m->d_lat[3] = m->d_td[3] = m->ctx_ln.dout;
    } else {
        for (int s = 0; s < 4; s++) {
            int S = PSP_SCALES[s];
            TAKE2(m->psp_pool[s], m->d_psp_pool[s], (size_t)B * S * S * dims[3]);
            convmod_plan(&m->psp[s], A, D, B, S, S);
            TAKE2(m->psp_up[s], m->d_psp_up[s], (size_t)B * H3 * W3 * Dc);
        }
        TAKE2(m->psp_cat, m->d_psp_cat, (size_t)B * H3 * W3 * (dims[3] + 4 * Dc));
        convmod_plan(&m->bottleneck, A, D, B, H3, W3);
        m->lat[3] = m->td[3] = m->bottleneck.out;
        m->d_lat[3] = m->d_td[3] = m->bottleneck.dout;
    }
    for (int i = 2; i >= 0; i--) {
        size_t n = (size_t)B * m->Hs[i] * m->Ws[i] * Dc;
        m->td_up[i] = arena_take(A, n);
        TAKE2(m->td[i], m->d_td[i], n);
    }
    for (int i = 0; i < 3; i++) convmod_plan(&m->fpn[i], A, D, B, m->Hs[i], m->Ws[i]);
    for (int i = 1; i < 4; i++) TAKE2(m->fpn_up[i], m->d_fpn_up[i], rows0 * Dc);
    TAKE2(m->fpn_cat, m->d_fpn_cat, rows0 * 4 * Dc);
    convmod_plan(&m->fpn_bottleneck, A, D, B, H0, W0);
}

static void plan_walk(mv_model *m, mv_arena *A, mv_arena *D) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W, Dc = cfg->decoder_channels, K = cfg->num_classes;
    const int *dims = cfg->dims;
    m->img = arena_take(A, (size_t)B * H * W * 3);
    int h = (H - 4) / 4 + 1, w = (W - 4) / 4 + 1;
    arena_need_scratch(A, conv2d_scratch(B, H, W, 3, 4, 4, 0));
    TAKE2(m->pe, m->d_pe, (size_t)B * h * w * dims[0]);
    layernorm_plan(&m->pe_norm, A, D, B * h * w);
    const float *x = m->pe_norm.out;
    float *dx = m->pe_norm.dout;
    for (int i = 0; i < 4; i++) {
        m->Hs[i] = h; m->Ws[i] = w;
        for (int j = 0; j < cfg->depths[i]; j++) {
            mv_block *b = &m->blocks[m->enc_first[i] + j];
            block_plan(b, A, D, x, dx, B, h, w);
            x = b->out; dx = b->d_out;
        }
        m->stage_out[i] = (float *)x; m->d_stage_out[i] = dx;
        layernorm_plan(&m->outnorm[i], A, D, B * h * w);
        m->feat[i] = m->outnorm[i].out; m->d_feat[i] = m->outnorm[i].dout;
        if (i < 3) {
            h = (h + 1) / 2; w = (w + 1) / 2;    // odd sizes are zero-padded first
            TAKE2(m->ds_gather[i], m->d_ds_gather[i], (size_t)B * h * w * 4 * dims[i]);
            layernorm_plan(&m->ds_norm[i], A, D, B * h * w);
            TAKE2(m->ds_out[i], m->d_ds_out[i], (size_t)B * h * w * 2 * dims[i]);
            x = m->ds_out[i]; dx = m->d_ds_out[i];
        }
    }
    int H0 = m->Hs[0], W0 = m->Ws[0];
    size_t rows0 = (size_t)B * H0 * W0;
    if (cfg->head == MV_HEAD_LINEAR) linear_head_plan(m, A, D);
    else plan_mask_decoder(m, A, D);
    m->seg_keep = arena_take(A, (size_t)B * Dc);
    TAKE2(m->seg_in, m->d_seg_in, rows0 * Dc);
    TAKE2(m->logits, m->d_logits, rows0 * K);
    size_t rows2 = (size_t)B * m->Hs[2] * m->Ws[2];
    convmod_plan(&m->aux_conv, A, D, B, m->Hs[2], m->Ws[2]);
    m->aux_keep = arena_take(A, (size_t)B * cfg->aux_channels);
    TAKE2(m->aux_in, m->d_aux_in, rows2 * cfg->aux_channels);
    TAKE2(m->aux_logits, m->d_aux_logits, rows2 * K);
    arena_need_scratch(A, 4 * (size_t)m->num_blocks);   // ratio-loss statistics (doubles)
    m->full = arena_take(A, (size_t)B * H * W * K);
    m->d_full = arena_take(A, (size_t)B * H * W * K);
    m->correct = arena_take(A, (size_t)B * H * W);
    for (int i = 0; i < 3; i++) m->correct_lv[i] = arena_take(A, (size_t)B * m->Hs[i] * m->Ws[i]);
}

int model_plan(mv_model *m, int B, int H, int W) {
    if (B < 1) return mv_fail("batch size %d must be at least 1", B);
    if (H < 32 || W < 32) return mv_fail("image size %dx%d is too small: the model needs at least 32x32", H, W);
    if (m->acts_mem && m->B == B && m->H == H && m->W == W) return 0;
    free(m->acts_mem); free(m->dacts_mem); free(m->scratch);
    m->B = B; m->H = H; m->W = W;
    cpu_flush_denormals();
    mv_arena A = {0}, D = {0};
    plan_walk(m, &A, &D);                       // measure
    m->acts_mem = aligned_alloc(64, sizeof(float) * (A.used + 16));
    m->dacts_mem = aligned_alloc(64, sizeof(float) * (D.used + 16));
    m->scratch = aligned_alloc(64, sizeof(float) * (A.scratch + 16));
    if (!m->acts_mem || !m->dacts_mem || !m->scratch)
        return mv_fail("out of memory planning activations for batch %dx3x%dx%d (%.1f GiB)", B, H, W,
                       (A.used + D.used + A.scratch) * 4.0 / (1 << 30));
    mv_arena A2 = {m->acts_mem, 0, 0}, D2 = {m->dacts_mem, 0, 0};
    plan_walk(m, &A2, &D2);                     // bind
    m->acts = A2; m->dacts = D2;
    m->acts.scratch = A.scratch;
    return 0;
}

static void fill_keep(float *keep, const mv_run_ctx *ctx, float p, uint32_t block, int B, int C) {
    if (ctx->training && p > 0) dropout2d_draw(keep, ctx->seed, ctx->step, ctx->sample_ids, block, B, C, p);
    else for (int i = 0; i < B * C; i++) keep[i] = 1.0f;
}

// Identifiers of the random streams of the two Dropout2d layers (after all block ids).
#define DROPOUT_MAIN_ID 0xFFF0u
#define DROPOUT_AUX_ID 0xFFF1u

static void losses(mv_model *m, const uint8_t *labels, const mv_run_ctx *ctx);

// Mean keep ratio of the masks per encoder stage and per decoder level (for the logs).
static void mask_keep_ratios(mv_model *m) {
    double sum_e[4] = {0}, n_e[4] = {0}, sum_d[3] = {0}, n_d[3] = {0};
    for (int j = 0; j < m->num_blocks; j++) {
        const mv_block *b = &m->blocks[j];
        if (!b->masked) continue;
        size_t n = (size_t)m->B * b->H * b->W;
        double s = 0;
        for (size_t t = 0; t < n; t++) s += b->m[t];
        int lv = b->ratio_group >= 0 ? b->ratio_group : (j >= m->dec_first[2] ? 2 : j >= m->dec_first[1] ? 1 : 0);
        if (b->ratio_group >= 0) { sum_e[lv] += s / n; n_e[lv] += 1; }
        else { sum_d[lv] += s / n; n_d[lv] += 1; }
    }
    for (int i = 0; i < 4; i++) m->keep_enc[i] = n_e[i] > 0 ? sum_e[i] / n_e[i] : 1.0;
    for (int i = 0; i < 3; i++) m->keep_dec[i] = n_d[i] > 0 ? sum_d[i] / n_d[i] : 1.0;
}

// Decoder: masked lateral paths on F_0..F_2, lateral 3 from F_3, top-down sums, FPN, fusion.
static void mask_decoder_forward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels;
    const int *dims = cfg->dims;
    int H0 = m->Hs[0], W0 = m->Ws[0], H3 = m->Hs[3], W3 = m->Ws[3];
    int rows0 = B * H0 * W0, rows3 = B * H3 * W3;
    float *scratch = m->scratch;
    for (int i = 0; i < 3; i++) {
        int first = m->dec_first[i], n = m->dec_depth[i];
        for (int j = 0; j < n; j++) block_forward(&m->blocks[first + j], scratch, cfg, ctx, B);
        mv_layernorm *ln = &m->lat_ln[i];
        layernorm_forward(ln->out, ln->mean, ln->rstd, m->blocks[first + n - 1].out, ln->w, ln->b,
                          B * m->Hs[i] * m->Ws[i], Dc, 1e-5f);
    }
    if (m->ctx_block >= 0) {   // lateral 3: one VSS block instead of the multi-scale pooling
        mv_block *cb = &m->blocks[m->ctx_block];
        block_forward(cb, scratch, cfg, ctx, B);
        layernorm_forward(m->ctx_ln.out, m->ctx_ln.mean, m->ctx_ln.rstd, cb->out, m->ctx_ln.w, m->ctx_ln.b, rows3, Dc, 1e-5f);
    } else {                   // lateral 3: pyramid pooling
        int cat_c = dims[3] + 4 * Dc;
        channel_slice_forward(m->psp_cat, m->feat[3], rows3, cat_c, 0, dims[3]);
        for (int s = 0; s < 4; s++) {
            int S = PSP_SCALES[s];
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
    channel_slice_forward(m->fpn_cat, m->fpn[0].out, rows0, 4 * Dc, 0, Dc);
    for (int i = 1; i < 4; i++) {
        const float *src = i < 3 ? m->fpn[i].out : m->td[3];
        bilinear_forward(m->fpn_up[i], src, B, m->Hs[i], m->Ws[i], H0, W0, Dc);
        channel_slice_forward(m->fpn_cat, m->fpn_up[i], rows0, 4 * Dc, i * Dc, Dc);
    }
    convmod_forward(&m->fpn_bottleneck, m->fpn_cat, scratch, ctx, B);
}

static void mask_decoder_backward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels;
    const int *dims = cfg->dims;
    int H0 = m->Hs[0], W0 = m->Ws[0], H3 = m->Hs[3], W3 = m->Ws[3];
    int rows0 = B * H0 * W0, rows3 = B * H3 * W3;
    float *scratch = m->scratch;
    convmod_backward(&m->fpn_bottleneck, m->d_fpn_cat, m->fpn_cat, scratch, ctx, B);
    channel_slice_backward(m->fpn[0].dout, m->d_fpn_cat, rows0, 4 * Dc, 0, Dc);
    for (int i = 1; i < 4; i++) {
        channel_slice_backward(m->d_fpn_up[i], m->d_fpn_cat, rows0, 4 * Dc, i * Dc, Dc);
        float *dsrc = i < 3 ? m->fpn[i].dout : m->d_td[3];
        bilinear_backward(dsrc, m->d_fpn_up[i], B, m->Hs[i], m->Ws[i], H0, W0, Dc);
    }
    for (int i = 0; i < 3; i++) convmod_backward(&m->fpn[i], m->d_td[i], m->td[i], scratch, ctx, B);
    for (int i = 0; i < 3; i++) {
        accumulate(m->d_lat[i], m->d_td[i], (size_t)B * m->Hs[i] * m->Ws[i] * Dc);
        bilinear_backward(m->d_td[i + 1], m->d_td[i], B, m->Hs[i + 1], m->Ws[i + 1], m->Hs[i], m->Ws[i], Dc);
    }
    if (m->ctx_block >= 0) {
        mv_block *cb = &m->blocks[m->ctx_block];
        layernorm_backward(cb->d_out, m->ctx_ln.dw, m->ctx_ln.db, m->ctx_ln.dout, cb->out, m->ctx_ln.w,
                           m->ctx_ln.mean, m->ctx_ln.rstd, rows3, Dc);
        block_backward(cb, scratch, cfg, ctx, B);
    } else {
        int cat_c = dims[3] + 4 * Dc;
        convmod_backward(&m->bottleneck, m->d_psp_cat, m->psp_cat, scratch, ctx, B);
        channel_slice_backward(m->d_feat[3], m->d_psp_cat, rows3, cat_c, 0, dims[3]);
        for (int s = 0; s < 4; s++) {
            int S = PSP_SCALES[s];
            channel_slice_backward(m->d_psp_up[s], m->d_psp_cat, rows3, cat_c, dims[3] + s * Dc, Dc);
            bilinear_backward(m->psp[s].dout, m->d_psp_up[s], B, S, S, H3, W3, Dc);
            convmod_backward(&m->psp[s], m->d_psp_pool[s], m->psp_pool[s], scratch, ctx, B);
            adaptive_avgpool_backward(m->d_feat[3], m->d_psp_pool[s], B, H3, W3, S, dims[3]);
        }
    }
    for (int i = 2; i >= 0; i--) {
        int first = m->dec_first[i], n = m->dec_depth[i];
        mv_layernorm *ln = &m->lat_ln[i];
        mv_block *last = &m->blocks[first + n - 1];
        layernorm_backward(last->d_out, ln->dw, ln->db, ln->dout, last->out, ln->w, ln->mean, ln->rstd,
                           B * m->Hs[i] * m->Ws[i], Dc);
        for (int j = n - 1; j >= 0; j--) block_backward(&m->blocks[first + j], scratch, cfg, ctx, B);
    }

}

int model_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W, Dc = cfg->decoder_channels, K = cfg->num_classes;
    const int *dims = cfg->dims;
    int H0 = m->Hs[0], W0 = m->Ws[0];
    int rows0 = B * H0 * W0, rows2 = B * m->Hs[2] * m->Ws[2];
    float *scratch = m->scratch;
    if (labels) memset(m->dacts_mem, 0, sizeof(float) * m->dacts.used);

    // Encoder
    nchw_to_nhwc(m->img, images, B, 3, H, W);
    conv2d_forward(m->pe, m->img, m->pe_w, m->pe_b, scratch, B, H, W, 3, dims[0], 4, 4, 0);
    layernorm_forward(m->pe_norm.out, m->pe_norm.mean, m->pe_norm.rstd, m->pe, m->pe_norm.w, m->pe_norm.b, rows0, dims[0], 1e-5f);
    for (int i = 0; i < 4; i++) {
        int rows = B * m->Hs[i] * m->Ws[i];
        for (int j = 0; j < cfg->depths[i]; j++) block_forward(&m->blocks[m->enc_first[i] + j], scratch, cfg, ctx, B);
        mv_layernorm *on = &m->outnorm[i];
        layernorm_forward(on->out, on->mean, on->rstd, m->stage_out[i], on->w, on->b, rows, dims[i], 1e-5f);
        if (i < 3) {
            int orows = B * m->Hs[i + 1] * m->Ws[i + 1];
            mv_layernorm *dn = &m->ds_norm[i];
            patch_gather_forward(m->ds_gather[i], m->stage_out[i], B, m->Hs[i], m->Ws[i], dims[i]);
            layernorm_forward(dn->out, dn->mean, dn->rstd, m->ds_gather[i], dn->w, dn->b, orows, 4 * dims[i], 1e-5f);
            linear_forward(m->ds_out[i], dn->out, m->ds_w[i], NULL, orows, 4 * dims[i], 2 * dims[i]);
        }
    }

    // Decoder
    if (cfg->head == MV_HEAD_LINEAR) linear_head_forward(m, ctx);
    else mask_decoder_forward(m, ctx);
    fill_keep(m->seg_keep, ctx, cfg->dropout, DROPOUT_MAIN_ID, B, Dc);
    channel_scale_forward(m->seg_in, m->head_out->out, m->seg_keep, B, H0 * W0, Dc);
    linear_forward(m->logits, m->seg_in, m->seg_w, m->seg_b, rows0, Dc, K);

    // Auxiliary FCN head on F_2.
    int Ac = cfg->aux_channels;
    convmod_forward(&m->aux_conv, m->feat[2], scratch, ctx, B);
    fill_keep(m->aux_keep, ctx, cfg->dropout, DROPOUT_AUX_ID, B, Ac);
    channel_scale_forward(m->aux_in, m->aux_conv.out, m->aux_keep, B, m->Hs[2] * m->Ws[2], Ac);
    linear_forward(m->aux_logits, m->aux_in, m->aux_seg_w, m->aux_seg_b, rows2, Ac, K);

    if (labels) losses(m, labels, ctx);
    return 0;
}

// SPEC.md section 5. Cross-entropy gradients are formed here (fused, as llm.c's classifier);
// the mask losses leave dL/dm in each masked block for backward.
static void losses(mv_model *m, const uint8_t *labels, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W, K = cfg->num_classes, N = B * H * W;
    double denom = N;
    if (cfg->avg_non_ignore) {
        long valid = 0;
        for (int i = 0; i < N; i++) valid += labels[i] != 255;
        denom = valid > 0 ? (double)valid : 1.0;
    }
    bilinear_forward(m->full, m->logits, B, m->Hs[0], m->Ws[0], H, W, K);
    m->loss_ce = cross_entropy_forward_backward(m->d_full, m->full, labels, N, K, denom, 1.0f);
    argmax_correct(m->correct, m->full, labels, N, K);
    bilinear_backward(m->d_logits, m->d_full, B, m->Hs[0], m->Ws[0], H, W, K);
    bilinear_forward(m->full, m->aux_logits, B, m->Hs[2], m->Ws[2], H, W, K);
    m->loss_aux = cross_entropy_forward_backward(m->d_full, m->full, labels, N, K, denom, cfg->aux_weight);
    bilinear_backward(m->d_aux_logits, m->d_full, B, m->Hs[2], m->Ws[2], H, W, K);

    // L_ratio over the encoder's masked blocks: per block, or one term per stage.
    int nb = m->num_blocks;
    double *stats = (double *)m->scratch;      // [sum m per block, token count per block]
    memset(stats, 0, sizeof(double) * 2 * nb);
    for (int j = 0; j < nb; j++) {
        mv_block *b = &m->blocks[j];
        if (!b->masked || b->ratio_group < 0) continue;
        size_t n = (size_t)B * b->H * b->W;
        for (size_t t = 0; t < n; t++) stats[j] += b->m[t];
        stats[nb + j] = (double)n;
    }
    bool global = cfg->ratio_sync && ctx->reduce.fn;
    if (global) ctx->reduce.fn(ctx->reduce.ctx, stats, 2 * nb);
    // With the global mean, every rank holds the full gradient of the global term; the
    // gradient all-reduce averages over ranks, so pre-multiply by the world size.
    double world = global ? (double)ctx->world_size : 1.0;
    double stage_mean[4] = {0}, stage_blocks[4] = {0};
    for (int j = 0; j < nb; j++) {
        mv_block *b = &m->blocks[j];
        if (!b->masked || b->ratio_group < 0) continue;
        stage_mean[b->ratio_group] += stats[j] / stats[nb + j];
        stage_blocks[b->ratio_group] += 1;
    }
    m->loss_ratio = 0;
    for (int s = 0; s < 4; s++)
        if (cfg->lambda_per_stage && stage_blocks[s] > 0) {
            double d = stage_mean[s] / stage_blocks[s] - cfg->lambda[s];
            m->loss_ratio += d * d;
        }
    for (int j = 0; j < nb; j++) {
        mv_block *b = &m->blocks[j];
        if (!b->masked || b->ratio_group < 0) continue;
        int s = b->ratio_group;
        double grad;   // d L_ratio / d mean(m_j)
        if (cfg->lambda_per_stage) {
            grad = 2.0 * (stage_mean[s] / stage_blocks[s] - cfg->lambda[s]) / stage_blocks[s];
        } else {
            double d = stats[j] / stats[nb + j] - cfg->lambda[s];
            m->loss_ratio += d * d;
            grad = 2.0 * d;
        }
        float g = (float)(cfg->alpha1 * grad * world / stats[nb + j]);
        size_t n = (size_t)B * b->H * b->W;
        for (size_t t = 0; t < n; t++) b->dm[t] = g;
    }

    // L_position over the decoder's masked blocks against "prediction correct" maps.
    for (int i = 0; i < 3; i++)
        bilinear_forward(m->correct_lv[i], m->correct, B, H, W, m->Hs[i], m->Ws[i], 1);
    m->loss_position = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < m->dec_depth[i]; j++) {
            mv_block *b = &m->blocks[m->dec_first[i] + j];
            if (!b->masked) continue;
            size_t n = (size_t)B * b->H * b->W;
            double se = 0;
            for (size_t t = 0; t < n; t++) {
                float d = b->m[t] - m->correct_lv[i][t];
                se += (double)d * d;
                b->dm[t] = (float)(cfg->alpha2 * 2.0 * d / (double)n);
            }
            m->loss_position += se / (double)n;
        }
    mask_keep_ratios(m);
    m->loss_total = m->loss_ce + cfg->aux_weight * m->loss_aux + cfg->alpha1 * m->loss_ratio +
                    cfg->alpha2 * m->loss_position;
}

void model_backward(mv_model *m, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W, Dc = cfg->decoder_channels, K = cfg->num_classes, Ac = cfg->aux_channels;
    const int *dims = cfg->dims;
    int H0 = m->Hs[0], W0 = m->Ws[0];
    int rows0 = B * H0 * W0, rows2 = B * m->Hs[2] * m->Ws[2];
    float *scratch = m->scratch;

    // Auxiliary head.
    linear_backward(m->d_aux_in, m->d_aux_seg_w, m->d_aux_seg_b, m->d_aux_logits, m->aux_in, m->aux_seg_w, rows2, Ac, K);
    channel_scale_backward(m->aux_conv.dout, m->d_aux_in, m->aux_keep, B, m->Hs[2] * m->Ws[2], Ac);
    convmod_backward(&m->aux_conv, m->d_feat[2], m->feat[2], scratch, ctx, B);

    // Decoder, in reverse.
    linear_backward(m->d_seg_in, m->d_seg_w, m->d_seg_b, m->d_logits, m->seg_in, m->seg_w, rows0, Dc, K);
    channel_scale_backward(m->head_out->dout, m->d_seg_in, m->seg_keep, B, H0 * W0, Dc);
    if (cfg->head == MV_HEAD_LINEAR) linear_head_backward(m, ctx);
    else mask_decoder_backward(m, ctx);

    if (ctx->grads_ready) ctx->grads_ready(ctx->grads_ctx, m->decoder_grad_lo);

    // Encoder, in reverse.
    for (int i = 3; i >= 0; i--) {
        int rows = B * m->Hs[i] * m->Ws[i];
        if (i < 3) {
            int orows = B * m->Hs[i + 1] * m->Ws[i + 1];
            mv_layernorm *dn = &m->ds_norm[i];
            linear_backward(dn->dout, m->d_ds_w[i], NULL, m->d_ds_out[i], dn->out, m->ds_w[i], orows, 4 * dims[i], 2 * dims[i]);
            layernorm_backward(m->d_ds_gather[i], dn->dw, dn->db, dn->dout, m->ds_gather[i], dn->w, dn->mean, dn->rstd, orows, 4 * dims[i]);
            patch_gather_backward(m->d_stage_out[i], m->d_ds_gather[i], B, m->Hs[i], m->Ws[i], dims[i]);
        }
        mv_layernorm *on = &m->outnorm[i];
        layernorm_backward(m->d_stage_out[i], on->dw, on->db, on->dout, m->stage_out[i], on->w, on->mean, on->rstd, rows, dims[i]);
        for (int j = cfg->depths[i] - 1; j >= 0; j--) block_backward(&m->blocks[m->enc_first[i] + j], scratch, cfg, ctx, B);
        if (ctx->grads_ready) ctx->grads_ready(ctx->grads_ctx, m->stage_grad_lo[i]);
    }
    layernorm_backward(m->d_pe, m->pe_norm.dw, m->pe_norm.db, m->pe_norm.dout, m->pe, m->pe_norm.w,
                       m->pe_norm.mean, m->pe_norm.rstd, rows0, dims[0]);
    conv2d_backward(NULL, m->d_pe_w, m->d_pe_b, m->d_pe, m->img, m->pe_w, scratch, B, H, W, 3, dims[0], 4, 4, 0);
    if (ctx->grads_ready) ctx->grads_ready(ctx->grads_ctx, 0);
}
