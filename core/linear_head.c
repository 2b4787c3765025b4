// The SegFormer-style all-MLP decode head (model.head: linear), Table 6's "VMamba + linear"
// baseline: each encoder output F_i goes through a 1x1 ConvModule to D channels at its own
// resolution, is resized bilinearly to level 0, the four are concatenated (level 0 first) and a
// 1x1 ConvModule fuses them to D channels, which conv_seg then classifies (as mmseg's
// SegformerHead). It has no blocks and so no decoder masks; the auxiliary head is unchanged.
#include "core/model_ops.h"
#include <stdio.h>

#ifndef MV_MODEL_DEVICE   // host-side registration: compiled once, in the CPU library
void linear_head_register(mv_model *m) {
    const mv_model_config *cfg = &m->cfg;
    int D = cfg->decoder_channels;
    char name[64];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "decode_head.convs.%d", i);
        convmod_register(&m->lin[i], &m->params, cfg->dims[i], D, 1, name);
    }
    convmod_register(&m->lin_fuse, &m->params, 4 * D, D, 1, "decode_head.fusion_conv");
    m->head_out = &m->lin_fuse;
}

#endif

void linear_head_plan(mv_model *m, mv_arena *A, mv_arena *D, mv_arena *G) {
    int B = m->B, Dc = m->cfg.decoder_channels;
    size_t rows0 = (size_t)B * m->Hs[0] * m->Ws[0];
    mv_plan_mode mode = m->plan_mode;
    bool infer = mode == MV_PLAN_INFER;
    for (int i = 0; i < 4; i++) convmod_plan(&m->lin[i], A, D, G, B, m->Hs[i], m->Ws[i], mode);
    for (int i = 1; i < 4; i++) {
        // Inference: each resized level is copied into lin_cat at once, so one buffer serves all;
        // no gradients.
        if (infer) {
            m->lin_up[i] = i == 1 ? arena_take(A, rows0 * Dc) : m->lin_up[1];
            m->d_lin_up[i] = NULL;
            continue;
        }
        m->lin_up[i] = arena_take(A, rows0 * Dc);
        m->d_lin_up[i] = arena_take(D, rows0 * Dc);
    }
    m->lin_cat = arena_take(A, rows0 * 4 * Dc);
    m->d_lin_cat = infer ? NULL : arena_take(D, rows0 * 4 * Dc);
    convmod_plan(&m->lin_fuse, A, D, G, B, m->Hs[0], m->Ws[0], mode);
}

void linear_head_forward(mv_model *m, const mv_run_ctx *ctx) {
    int B = m->B;
    for (int i = 0; i < 4; i++) convmod_forward(&m->lin[i], m->feat[i], m->scratch, ctx, B);
    const float *proj[4] = {m->lin[0].out, m->lin[1].out, m->lin[2].out, m->lin[3].out};
    levels_concat_forward(m, m->lin_cat, proj, m->lin_up, m->cfg.decoder_channels);
    convmod_forward(&m->lin_fuse, m->lin_cat, m->scratch, ctx, B);
}

void linear_head_backward(mv_model *m, const mv_run_ctx *ctx) {
    int B = m->B;
    convmod_backward(&m->lin_fuse, m->d_lin_cat, m->lin_cat, m->scratch, ctx, B);
    float *d_proj[4] = {m->lin[0].dout, m->lin[1].dout, m->lin[2].dout, m->lin[3].dout};
    levels_concat_backward(m, d_proj, m->d_lin_up, m->d_lin_cat, m->cfg.decoder_channels);
    for (int i = 3; i >= 0; i--) convmod_backward(&m->lin[i], m->d_feat[i], m->feat[i], m->scratch, ctx, B);
}
