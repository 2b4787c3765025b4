// MaskViM forward and backward: the model file reads top to bottom like SPEC.md sections 2-5.
// Planning lays out every activation (and its gradient) for one batch shape. The same source is
// the GPU model too (core/model_ops.h maps the ops and allocations when MV_MODEL_DEVICE is set),
// so everything here is an op call: no loop touches activation memory directly.
#include <limits.h>
#include "core/model_ops.h"
#include "core/error.h"

static const int PSP_SCALES[4] = {1, 2, 3, 6};

#define TAKE2(x, dx, n) do { size_t n_ = (n); (x) = arena_take(A, n_); (dx) = arena_take(D, n_); } while (0)

// Plans one block. Training (T == NULL) keeps every block's activations for backward; its
// internal gradients start at the beginning of the region G that every block and ConvModule
// shares (each one's backward zeroes its part first), only d_out is its own. Inference
// needs only a block's output and mask afterwards, so every block's internal activations start
// at the beginning of one shared region T (block_plan_infer reuses slots within the block too):
// T->used records the largest block's slots, T->scratch the largest block scratch, which
// follows them (mv_model.block_scratch).
static void plan_block(mv_block *b, mv_arena *A, mv_arena *T, mv_arena *D, mv_arena *G, const float *in,
                       float *d_in, int B, int H, int W) {
    if (!T) {
        block_plan(b, A, D, G, in, d_in, B, H, W);
        return;
    }
    mv_arena t = arena_from_start(T);
    block_plan_infer(b, A, &t, in, B, H, W);
    arena_fit(T, &t);
}

// The mask decoder (SPEC.md section 4): lateral MVSS paths, lateral 3 from F_3 (pyramid
// pooling, or one VSS block with model.context: vss), top-down sums, FPN convs and fusion.
static void plan_mask_decoder(mv_model *m, mv_arena *A, mv_arena *T, mv_arena *D, mv_arena *G) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, Dc = cfg->decoder_channels;
    const int *dims = cfg->dims;
    int H0 = m->Hs[0], W0 = m->Ws[0], H3 = m->Hs[3], W3 = m->Ws[3];
    size_t rows0 = (size_t)B * H0 * W0;
    mv_plan_mode mode = m->plan_mode;
    bool infer = mode == MV_PLAN_INFER;
    for (int i = 0; i < 3; i++) {
        const float *x = m->feat[i];
        float *dx = m->d_feat[i];
        for (int j = 0; j < m->dec_depth[i]; j++) {
            mv_block *b = &m->blocks[m->dec_first[i] + j];
            plan_block(b, A, T, D, G, x, dx, B, m->Hs[i], m->Ws[i]);
            x = b->out; dx = b->d_out;
        }
        layernorm_plan(&m->lat_ln[i], A, D, B * m->Hs[i] * m->Ws[i]);
        m->lat[i] = m->lat_ln[i].out; m->d_lat[i] = m->lat_ln[i].dout;
    }
    if (m->ctx_block >= 0) {
        plan_block(&m->blocks[m->ctx_block], A, T, D, G, m->feat[3], m->d_feat[3], B, H3, W3);
        layernorm_plan(&m->ctx_ln, A, D, B * H3 * W3);
        m->lat[3] = m->td[3] = m->ctx_ln.out;
        m->d_lat[3] = m->d_td[3] = m->ctx_ln.dout;
    } else {
        for (int s = 0; s < 4; s++) {
            int S = PSP_SCALES[s];
            TAKE2(m->psp_pool[s], m->d_psp_pool[s], (size_t)B * S * S * dims[3]);
            convmod_plan(&m->psp[s], A, D, G, B, S, S, mode);
            TAKE2(m->psp_up[s], m->d_psp_up[s], (size_t)B * H3 * W3 * Dc);
        }
        TAKE2(m->psp_cat, m->d_psp_cat, (size_t)B * H3 * W3 * (dims[3] + 4 * Dc));
        convmod_plan(&m->bottleneck, A, D, G, B, H3, W3, mode);
        m->lat[3] = m->td[3] = m->bottleneck.out;
        m->d_lat[3] = m->d_td[3] = m->bottleneck.dout;
    }
    // Inference reads neither the laterals after the top-down sums nor a resized map after it
    // was added or copied: the sums go in place into the laterals (add_forward, out == a), and
    // one buffer of level 0's size serves every td_up, another every fpn_up.
    for (int i = 2; i >= 0; i--) {
        size_t n = (size_t)B * m->Hs[i] * m->Ws[i] * Dc;
        if (infer) {
            m->td_up[i] = i == 2 ? arena_take(A, rows0 * Dc) : m->td_up[2];
            m->td[i] = m->lat[i]; m->d_td[i] = NULL;
            continue;
        }
        m->td_up[i] = arena_take(A, n);
        TAKE2(m->td[i], m->d_td[i], n);
    }
    for (int i = 0; i < 3; i++) convmod_plan(&m->fpn[i], A, D, G, B, m->Hs[i], m->Ws[i], mode);
    for (int i = 1; i < 4; i++) {
        if (infer && i > 1) { m->fpn_up[i] = m->fpn_up[1]; m->d_fpn_up[i] = NULL; continue; }
        TAKE2(m->fpn_up[i], m->d_fpn_up[i], rows0 * Dc);
    }
    TAKE2(m->fpn_cat, m->d_fpn_cat, rows0 * 4 * Dc);
    convmod_plan(&m->fpn_bottleneck, A, D, G, B, H0, W0, mode);
}

static void plan_walk(mv_model *m, mv_arena *A, mv_arena *T, mv_arena *D, mv_arena *G) {
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
            plan_block(b, A, T, D, G, x, dx, B, h, w);
            x = b->out; dx = b->d_out;
        }
        m->stage_out[i] = (float *)x; m->d_stage_out[i] = dx;
        layernorm_plan(&m->outnorm[i], A, D, B * h * w);
        m->feat[i] = m->outnorm[i].out; m->d_feat[i] = m->outnorm[i].dout;
        if (i < 3) {
            h = (h + 1) / 2; w = (w + 1) / 2;    // odd sizes are zero-padded first
            TAKE2(m->ds_gather[i], m->d_ds_gather[i], (size_t)B * h * w * 4 * dims[i]);
            layernorm_plan(&m->ds_norm[i], A, D, B * h * w);
            TAKE2(m->ds_out[i], m->d_ds_out[i], (size_t)B * h * w * dims[i + 1]);   // 4C_i -> C_{i+1}
            x = m->ds_out[i]; dx = m->d_ds_out[i];
        }
    }
    int H0 = m->Hs[0], W0 = m->Ws[0];
    size_t rows0 = (size_t)B * H0 * W0;
    if (cfg->head == MV_HEAD_LINEAR) linear_head_plan(m, A, D, G);
    else plan_mask_decoder(m, A, T, D, G);
    m->seg_keep = arena_take(A, (size_t)B * Dc);
    if (T) { m->seg_in = m->head_out->out; m->d_seg_in = NULL; }   // channel_scale_forward in place
    else TAKE2(m->seg_in, m->d_seg_in, rows0 * Dc);
    TAKE2(m->logits, m->d_logits, rows0 * K);
    int nb = m->num_blocks;
    // Loss scalars (doubles, two floats each), the ratio loss's per-block statistics and
    // gradients, and its constant inputs (block -> stage, lambda per stage).
    m->scalars = (double *)arena_take(A, 2 * (size_t)MV_SCALARS(nb));
    m->ratio_grad = arena_take(A, nb);
    m->ratio_group = (int *)arena_take(A, nb);
    m->ratio_lambda = arena_take(A, 4);
    if (T) {   // inference: no auxiliary head, no losses
        m->aux_keep = m->aux_in = m->aux_logits = m->d_aux_in = m->d_aux_logits = NULL;
        m->full = m->d_full = m->correct = NULL;
        for (int i = 0; i < 3; i++) m->correct_lv[i] = NULL;
        return;
    }
    size_t rows2 = (size_t)B * m->Hs[2] * m->Ws[2];
    convmod_plan(&m->aux_conv, A, D, G, B, m->Hs[2], m->Ws[2], MV_PLAN_TRAIN);
    m->aux_keep = arena_take(A, (size_t)B * cfg->aux_channels);
    TAKE2(m->aux_in, m->d_aux_in, rows2 * cfg->aux_channels);
    TAKE2(m->aux_logits, m->d_aux_logits, rows2 * K);
    m->full = arena_take(A, (size_t)B * H * W * K);
    m->d_full = arena_take(A, (size_t)B * H * W * K);
    m->correct = arena_take(A, (size_t)B * H * W);
    for (int i = 0; i < 3; i++) m->correct_lv[i] = arena_take(A, (size_t)B * m->Hs[i] * m->Ws[i]);
}

// The parts of a plan, in floats (each a multiple of 16: 64-byte aligned): activations, the
// region of an inference plan, activation gradients and the region of the gradients internal to
// one block or ConvModule (training), scratch (training). The inference region holds, while a
// block runs, the largest block's slots and then the block scratch (from block_off); between
// blocks, it is the scratch of every other op. No op outside a block runs while a block's slots
// are live, and a block's ops take the block scratch, so the two uses never meet. Likewise only
// one block's or ConvModule's backward runs at a time, and nothing else touches its internal
// gradients (dtemps).
typedef struct { size_t acts, temps, dacts, dtemps, scratch, block_off; } plan_parts;

static size_t line_up(size_t floats) { return (floats + 15) & ~(size_t)15; }

static plan_parts plan_measure(mv_model *m) {
    bool infer = m->plan_mode == MV_PLAN_INFER;
    mv_arena A = {0}, T = {0}, D = {0}, G = {0};
    plan_walk(m, &A, infer ? &T : NULL, &D, &G);
    plan_parts p = {A.used, 0, 0, 0, line_up(A.scratch), 0};
    if (infer) {
        size_t blocks = T.used + line_up(T.scratch);
        p.temps = blocks > p.scratch ? blocks : p.scratch;
        p.block_off = T.used;
        p.scratch = 0;
    } else {
        p.dacts = D.used;
        p.dtemps = G.used;
    }
    return p;
}

static size_t plan_total(const plan_parts *p) {
    return p->acts + p->temps + p->dacts + p->dtemps + p->scratch + 16;
}

// Binds every planned pointer into m->acts_mem. Gradients of an inference plan stay NULL (only
// measured); nothing may touch them.
static void plan_bind(mv_model *m, const plan_parts *p) {
    bool infer = m->plan_mode == MV_PLAN_INFER;
    float *region = m->acts_mem + p->acts;
    m->dacts_mem = infer ? NULL : region + p->temps;
    float *dtemps = infer ? NULL : m->dacts_mem + p->dacts;
    m->scratch = infer ? region : dtemps + p->dtemps;
    m->block_scratch = infer ? region + p->block_off : m->scratch;
    mv_arena A = {m->acts_mem, 0, 0}, T = {region, 0, 0}, D = {m->dacts_mem, 0, 0}, G = {dtemps, 0, 0};
    plan_walk(m, &A, infer ? &T : NULL, &D, &G);
    m->acts = A; m->dacts = infer ? (mv_arena){0} : D;
    m->acts.scratch = infer ? p->temps : p->scratch;   // inference: the region (scratch and block slots)
    m->dtemps_floats = p->dtemps;
}

#ifndef MV_MODEL_DEVICE
size_t model_plan_floats(mv_model *m, int B, int H, int W, mv_plan_mode mode) {
    if (m->acts_mem && m->arena_free != mv_arena_release) return 0;   // a GPU plan is bound
    if (B < 1 || H < 32 || W < 32) return 0;                          // model_plan refuses these
    int oB = m->B, oH = m->H, oW = m->W;
    mv_plan_mode omode = m->plan_mode;
    m->B = B; m->H = H; m->W = W; m->plan_mode = mode;
    plan_parts p = plan_measure(m);
    m->B = oB; m->H = oH; m->W = oW; m->plan_mode = omode;
    if (m->acts_mem) {   // the measuring walk moved every pointer: bind the kept plan again
        plan_parts kept = plan_measure(m);
        plan_bind(m, &kept);
    }
    return plan_total(&p);
}
#endif

int model_plan(mv_model *m, int B, int H, int W, mv_plan_mode mode) {
    if (B < 1) return mv_fail("batch size %d must be at least 1", B);
    if (H < 32 || W < 32) return mv_fail("image size %dx%d is too small: the model needs at least 32x32", H, W);
    // Row and element counts of the activations are ints: a batch whose image tensor has more
    // than INT_MAX values (4096 crops of 16384x16384, --batch 99999999) is refused before any
    // of them overflows.
    if ((double)B * H * W * 3 > (double)INT_MAX)
        return mv_fail("batch %dx3x%dx%d is too large: %.3g image values, at most %d", B, H, W, (double)B * H * W * 3,
                       INT_MAX);
    if (m->acts_mem && m->B == B && m->H == H && m->W == W && m->plan_mode == mode) return 0;
    m->B = B; m->H = H; m->W = W;
    m->plan_mode = mode;
#ifndef MV_MODEL_DEVICE
    cpu_flush_denormals();
#endif
    bool infer = mode == MV_PLAN_INFER;
    plan_parts parts = plan_measure(m);
    size_t total = plan_total(&parts);
    // One allocation: acts | shared block region (inference) | activation gradients (training) |
    // scratch. Its capacity stays with the model: a plan that fits reuses it (evaluation after
    // training, images of several sizes) instead of freeing and allocating again.
    if (!m->acts_mem || m->arena_free != mv_arena_release || total > m->arena_cap) {
        model_release_activations(m);
        m->arena_free = mv_arena_release;
        m->acts_mem = mv_arena_alloc(total);
        m->arena_cap = m->acts_mem ? total : 0;
    }
    if (!m->scalars_host) m->scalars_host = calloc(MV_SCALARS(m->num_blocks), sizeof(double));
    if (!m->acts_mem || !m->scalars_host) {
        model_release_activations(m);
        return mv_fail("out of memory planning %s activations for batch %dx3x%dx%d (%.1f GiB)",
                       infer ? "inference" : "training", B, H, W, total * 4.0 / (1 << 30));
    }
    plan_bind(m, &parts);
    int nb = m->num_blocks, *group = calloc((size_t)nb, sizeof(int));
    MV_CHECK(group, "out of memory");
    for (int j = 0; j < nb; j++) group[j] = m->blocks[j].masked ? m->blocks[j].ratio_group : -1;
    mv_upload(m->ratio_group, group, sizeof(int) * (size_t)nb);
    mv_upload(m->ratio_lambda, m->cfg.lambda, sizeof(float) * 4);
    free(group);
    return 0;
}

static void fill_keep(float *keep, const mv_run_ctx *ctx, float p, uint32_t block, int B, int C) {
    if (ctx->training && p > 0) dropout2d_draw(keep, ctx->seed, ctx->step, ctx->sample_ids, block, B, C, p);
    else fill(keep, 1.0f, (size_t)B * C);
}

// Identifiers of the random streams of the two Dropout2d layers (after all block ids).
#define DROPOUT_MAIN_ID 0xFFF0u
#define DROPOUT_AUX_ID 0xFFF1u

static void losses(mv_model *m, const uint8_t *labels, const mv_run_ctx *ctx);

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
        for (int j = 0; j < n; j++) block_forward(&m->blocks[first + j], m->block_scratch, cfg, ctx, B);
        mv_layernorm *ln = &m->lat_ln[i];
        layernorm_forward(ln->out, ln->mean, ln->rstd, m->blocks[first + n - 1].out, ln->w, ln->b,
                          B * m->Hs[i] * m->Ws[i], Dc, 1e-5f);
    }
    if (m->ctx_block >= 0) {   // lateral 3: one VSS block instead of the multi-scale pooling
        mv_block *cb = &m->blocks[m->ctx_block];
        block_forward(cb, m->block_scratch, cfg, ctx, B);
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

#ifndef MV_MODEL_DEVICE
// Labels must be classes 0..K-1 or 255 (ignore): PyTorch's cross-entropy refuses any other
// target ("Target 20 is out of bounds"); ours read and wrote past the row of logits.
int model_check_labels(const uint8_t *labels, int B, int H, int W, int K) {
    size_t n = (size_t)B * H * W;
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= K && labels[i] != 255)
            return mv_fail("label %d of image %zu at (y %zu, x %zu) is neither a class 0..%d nor 255 "
                           "(ignore)", labels[i], i / ((size_t)H * W), i / W % H, i % W, K - 1);
    return 0;
}
#endif

int model_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx) {
    const mv_model_config *cfg = &m->cfg;
    int B = m->B, H = m->H, W = m->W, Dc = cfg->decoder_channels, K = cfg->num_classes;
    const int *dims = cfg->dims;
    int H0 = m->Hs[0], W0 = m->Ws[0];
    int rows0 = B * H0 * W0, rows2 = B * m->Hs[2] * m->Ws[2];
    float *scratch = m->scratch;
    bool training_plan = m->plan_mode == MV_PLAN_TRAIN;
    if ((labels || ctx->training) && !training_plan)
        return mv_fail("model_forward: losses and training need a training plan (model_plan with MV_PLAN_TRAIN)");
#ifndef MV_MODEL_DEVICE   // host labels (on the GPU the cross-entropy turns such a label into a NaN loss)
    if (labels) MV_TRY(model_check_labels(labels, B, H, W, K));
#endif
    if (labels) fill(m->dacts_mem, 0.0f, m->dacts.used);

    // Encoder
    nchw_to_nhwc(m->img, images, B, 3, H, W);
    conv2d_forward(m->pe, m->img, m->pe_w, m->pe_b, scratch, B, H, W, 3, dims[0], 4, 4, 0);
    layernorm_forward(m->pe_norm.out, m->pe_norm.mean, m->pe_norm.rstd, m->pe, m->pe_norm.w, m->pe_norm.b, rows0, dims[0], 1e-5f);
    for (int i = 0; i < 4; i++) {
        int rows = B * m->Hs[i] * m->Ws[i];
        for (int j = 0; j < cfg->depths[i]; j++)
            block_forward(&m->blocks[m->enc_first[i] + j], m->block_scratch, cfg, ctx, B);
        mv_layernorm *on = &m->outnorm[i];
        layernorm_forward(on->out, on->mean, on->rstd, m->stage_out[i], on->w, on->b, rows, dims[i], 1e-5f);
        if (i < 3) {
            int orows = B * m->Hs[i + 1] * m->Ws[i + 1];
            mv_layernorm *dn = &m->ds_norm[i];
            patch_gather_forward(m->ds_gather[i], m->stage_out[i], B, m->Hs[i], m->Ws[i], dims[i]);
            layernorm_forward(dn->out, dn->mean, dn->rstd, m->ds_gather[i], dn->w, dn->b, orows, 4 * dims[i], 1e-5f);
            linear_forward(m->ds_out[i], dn->out, m->ds_w[i], NULL, orows, 4 * dims[i], dims[i + 1]);
        }
    }

    // Decoder
    if (cfg->head == MV_HEAD_LINEAR) linear_head_forward(m, ctx);
    else mask_decoder_forward(m, ctx);
    fill_keep(m->seg_keep, ctx, cfg->dropout, DROPOUT_MAIN_ID, B, Dc);
    channel_scale_forward(m->seg_in, m->head_out->out, m->seg_keep, B, H0 * W0, Dc);
    linear_forward(m->logits, m->seg_in, m->seg_w, m->seg_b, rows0, Dc, K);

    if (!training_plan) return 0;

    // Auxiliary FCN head on F_2 (training only: its logits feed nothing but the loss).
    int Ac = cfg->aux_channels;
    convmod_forward(&m->aux_conv, m->feat[2], scratch, ctx, B);
    fill_keep(m->aux_keep, ctx, cfg->dropout, DROPOUT_AUX_ID, B, Ac);
    channel_scale_forward(m->aux_in, m->aux_conv.out, m->aux_keep, B, m->Hs[2] * m->Ws[2], Ac);
    linear_forward(m->aux_logits, m->aux_in, m->aux_seg_w, m->aux_seg_b, rows2, Ac, K);

    if (labels) losses(m, labels, ctx);
    return 0;
}

// SPEC.md section 5. Cross-entropy gradients are formed here (fused, as llm.c's classifier);
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

void model_backward(mv_model *m, const mv_run_ctx *ctx) {
    MV_CHECK(m->plan_mode == MV_PLAN_TRAIN && m->dacts_mem, "model_backward needs a training plan");
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
            linear_backward(dn->dout, m->d_ds_w[i], NULL, m->d_ds_out[i], dn->out, m->ds_w[i], orows, 4 * dims[i], dims[i + 1]);
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
