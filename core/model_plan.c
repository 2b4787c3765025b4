// Planning (docs/model.md, Conventions: "Planned memory" and the plans after it): lays out
// every activation of one batch shape, and in a training plan its gradient, in one allocation,
// so that a step allocates nothing. plan_walk visits the layers in forward order twice: once to
// measure (the arenas' bases NULL), once to bind the pointers. Compiled twice as the model is
// (core/model_ops.h): the GPU model plans the same layout in device memory.
//
// The four arenas every plan function takes:
//   A  activations kept from forward to backward (and the batch's inputs, masks, scalars)
//   T  inference only: one region every block's internal activations reuse in turn
//   D  the gradients of A's activations that outlive one layer (d_out of each layer)
//   G  gradients internal to one block or ConvModule: one region they all reuse in turn (the
//      "dtemps" of block_plan, convmod_plan and mv_model)
#include <limits.h>
#include "core/model_ops.h"
#include "core/error.h"
#include "kernels/cpu/line_up.h"

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

// The mask decoder (docs/math.md section 4): lateral MVSS paths, lateral 3 from F_3 (pyramid
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
            int S = psp_scale(s);
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
    m->seg_dropout_scale = arena_take(A, (size_t)B * Dc);
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
        m->aux_dropout_scale = m->aux_in = m->aux_logits = m->d_aux_in = m->d_aux_logits = NULL;
        m->full = m->d_full = m->correct = NULL;
        for (int i = 0; i < 3; i++) m->correct_lv[i] = NULL;
        return;
    }
    size_t rows2 = (size_t)B * m->Hs[2] * m->Ws[2];
    convmod_plan(&m->aux_conv, A, D, G, B, m->Hs[2], m->Ws[2], MV_PLAN_TRAIN);
    m->aux_dropout_scale = arena_take(A, (size_t)B * cfg->aux_channels);
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

static plan_parts plan_measure(mv_model *m) {
    bool infer = m->plan_mode == MV_PLAN_INFER;
    mv_arena A = {0}, T = {0}, D = {0}, G = {0};
    plan_walk(m, &A, infer ? &T : NULL, &D, &G);
    plan_parts p = {A.used, 0, 0, 0, mv_line_up(A.scratch), 0};
    if (infer) {
        size_t blocks = T.used + mv_line_up(T.scratch);
        p.temps = blocks > p.scratch ? blocks : p.scratch;
        p.block_off = T.used;
        p.scratch = 0;
    } else {
        p.dacts = D.used;
        p.dtemps = G.used;
    }
    return p;
}

// The one allocation's floats: every part, then one spare 64-byte line (+ 16) that nothing is
// planned in, a safety margin past the last slice such as params_allocate keeps past the
// parameters (every slice is already a whole number of lines, so no op is known to need it).
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

