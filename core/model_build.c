// Builds MaskViM from its configuration: the blocks of the encoder and decoder, and every
// parameter registered under its PyTorch state_dict name (docs/math.md sections 2 and 4).
#include "core/model.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static void init_block(mv_block *b, int in_dim, int C, bool masked, int gh, int gw, float drop,
                       uint32_t id, int group, const mv_model_config *cfg) {
    memset(b, 0, sizeof *b);
    b->in_dim = in_dim;
    b->C = C;
    b->E = cfg->ssm_ratio * C;
    b->R = (C + 15) / 16;
    b->N = cfg->d_state;
    b->masked = masked;
    b->has_pre = in_dim != C;
    b->gh = gh;
    b->gw = gw;
    b->drop_rate = drop;
    b->id = id;
    b->ratio_group = group;
}

// Stochastic depth of encoder block `id` (0-based over the whole encoder): linear from 0 to
// drop_path over the encoder's blocks, as VMamba.
static float encoder_drop_rate(const mv_model_config *cfg, int id, int total_enc) {
    return total_enc > 1 ? cfg->drop_path * (float)id / (float)(total_enc - 1) : 0.0f;
}

// Stochastic depth of block j of decoder lateral i: linear from 0 to decoder_drop_path over the
// decoder's blocks counted from the coarsest lateral (2) to the finest (0), as the authors'
// decoder assigns them: lateral i's blocks follow those of the laterals below it in resolution.
static float decoder_drop_rate(const mv_model *m, int i, int j) {
    int total_dec = m->dec_depth[0] + m->dec_depth[1] + m->dec_depth[2], coarser = 0;
    for (int k = i + 1; k < 3; k++) coarser += m->dec_depth[k];
    return total_dec > 1 ? m->cfg.decoder_drop_path * (float)(coarser + j) / (float)(total_dec - 1) : 0.0f;
}

// Counts and initialises the blocks: the encoder stage by stage, then each lateral path of the
// decoder, then the context block (model.context: vss). Block ids key the random draws.
static void build_blocks(mv_model *m) {
    const mv_model_config *cfg = &m->cfg;
    const int *dims = cfg->dims, D = cfg->decoder_channels;
    bool uper = cfg->head == MV_HEAD_UPER, ctx_vss = uper && cfg->context == MV_CONTEXT_VSS;
    int total_enc = 0;
    for (int i = 0; i < 4; i++) total_enc += cfg->depths[i];
    int total = total_enc;
    for (int i = 0; i < 3; i++) {
        m->dec_depth[i] = uper ? cfg->decoder_depths[i] : 0;   // the linear head has no blocks
        total += m->dec_depth[i];
    }
    total += ctx_vss;
    m->num_blocks = total;
    m->blocks = mv_calloc(total, sizeof(mv_block));

    int id = 0;
    for (int i = 0; i < 4; i++) {
        m->enc_first[i] = id;
        int gh = cfg->crop_h / (4 << i), gw = cfg->crop_w / (4 << i);
        for (int j = 0; j < cfg->depths[i]; j++, id++)
            init_block(&m->blocks[id], dims[i], dims[i], cfg->mask_encoder[i], gh, gw,
                       encoder_drop_rate(cfg, id, total_enc), (uint32_t)id, i, cfg);
    }
    for (int i = 0; i < 3; i++) {
        m->dec_first[i] = id;
        int gh = cfg->crop_h / (4 << i), gw = cfg->crop_w / (4 << i);
        for (int j = 0; j < m->dec_depth[i]; j++, id++)
            init_block(&m->blocks[id], j == 0 ? dims[i] : D, D, cfg->mask_decoder, gh, gw, decoder_drop_rate(m, i, j),
                       (uint32_t)id, -1, cfg);
    }
    m->ctx_block = -1;
    if (ctx_vss) {   // unmasked, in place of pyramid pooling on F_3 (ours: decoder_drop_path itself)
        m->ctx_block = id;
        init_block(&m->blocks[id], dims[3], D, false, cfg->crop_h / 32, cfg->crop_w / 32,
                   cfg->decoder_drop_path, (uint32_t)id, -1, cfg);
    }
}

// The backbone's parameters: patch embedding, then stage by stage its blocks, downsample and
// output norm. Within the flat buffer each stage's gradients are then contiguous and final once
// backward has left the stage, which lets the gradient all-reduce start stage by stage
// (model_backward's hook); stage_first[i] gets the index of stage i's first parameter.
static void register_encoder(mv_model *m, int stage_first[4]) {
    const mv_model_config *cfg = &m->cfg;
    const int *dims = cfg->dims;
    mv_params *p = &m->params;
    char name[128];
    int s_pe[4] = {dims[0], 3, 4, 4}, s_c0[1] = {dims[0]};
    params_add(p, &m->pe_w, &m->d_pe_w, INIT_UNIFORM, 1.0f / sqrtf(48.0f), 4, s_pe, "backbone.patch_embed.0.weight");
    params_add(p, &m->pe_b, &m->d_pe_b, INIT_UNIFORM, 1.0f / sqrtf(48.0f), 1, s_c0, "backbone.patch_embed.0.bias");
    layernorm_register(&m->pe_norm, p, dims[0], "backbone.patch_embed.2");
    for (int i = 0; i < 4; i++) {
        stage_first[i] = p->count;
        for (int j = 0; j < cfg->depths[i]; j++) {
            snprintf(name, sizeof name, "backbone.layers.%d.blocks.%d", i, j);
            block_register(&m->blocks[m->enc_first[i] + j], p, name, cfg);
        }
        if (i < 3) {
            snprintf(name, sizeof name, "backbone.layers.%d.downsample.norm", i);
            layernorm_register(&m->ds_norm[i], p, 4 * dims[i], name);
            // Linear(4C_i -> C_{i+1}): 2C_i for every preset; VMamba's PatchMerging2D(dims[i],
            // dims[i+1]) for dims that do not double (the next stage's blocks read C_{i+1}).
            int s_red[2] = {dims[i + 1], 4 * dims[i]};
            params_add(p, &m->ds_w[i], &m->d_ds_w[i], INIT_TRUNC_NORMAL, 0.02f, 2, s_red,
                       "backbone.layers.%d.downsample.reduction.weight", i);
        }
        snprintf(name, sizeof name, "backbone.outnorm%d", i);
        layernorm_register(&m->outnorm[i], p, dims[i], name);
    }
}

// The UPerNet-style mask decoder: lateral paths (blocks, LayerNorm), lateral 3 (the context
// block or pyramid pooling and bottleneck), FPN convs, fusion.
static void register_uper_head(mv_model *m) {
    const mv_model_config *cfg = &m->cfg;
    const int *dims = cfg->dims, D = cfg->decoder_channels;
    mv_params *p = &m->params;
    char name[128];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < m->dec_depth[i]; j++) {
            snprintf(name, sizeof name, "decode_head.lateral_convs.%d.blocks.%d", i, j);
            block_register(&m->blocks[m->dec_first[i] + j], p, name, cfg);
        }
        snprintf(name, sizeof name, "decode_head.lateral_convs.%d.ln", i);
        layernorm_register(&m->lat_ln[i], p, D, name);
    }
    if (m->ctx_block >= 0) {
        block_register(&m->blocks[m->ctx_block], p, "decode_head.lateral_convs.3.blocks.0", cfg);
        layernorm_register(&m->ctx_ln, p, D, "decode_head.lateral_convs.3.ln");
    } else {
        for (int s = 0; s < 4; s++) {
            snprintf(name, sizeof name, "decode_head.psp_modules.%d.1", s);
            convmod_register(&m->psp[s], p, dims[3], D, 1, name);
        }
        convmod_register(&m->bottleneck, p, dims[3] + 4 * D, D, 3, "decode_head.bottleneck");
    }
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "decode_head.fpn_convs.%d", i);
        convmod_register(&m->fpn[i], p, D, D, 3, name);
    }
    convmod_register(&m->fpn_bottleneck, p, 4 * D, D, 3, "decode_head.fpn_bottleneck");
    m->head_out = &m->fpn_bottleneck;
}

// The classifiers: conv_seg after the decode head, and the auxiliary FCN head on F_2.
static void register_heads(mv_model *m) {
    const mv_model_config *cfg = &m->cfg;
    int D = cfg->decoder_channels, K = cfg->num_classes, Ac = cfg->aux_channels;
    mv_params *p = &m->params;
    int s_seg[4] = {K, D, 1, 1}, s_k[1] = {K}, s_aseg[4] = {K, Ac, 1, 1};
    params_add(p, &m->seg_w, &m->d_seg_w, INIT_NORMAL, 0.01f, 4, s_seg, "decode_head.conv_seg.weight");
    params_add(p, &m->seg_b, &m->d_seg_b, INIT_ZERO, 0, 1, s_k, "decode_head.conv_seg.bias");
    convmod_register(&m->aux_conv, p, cfg->dims[2], Ac, 3, "auxiliary_head.convs.0");
    params_add(p, &m->aux_seg_w, &m->d_aux_seg_w, INIT_NORMAL, 0.01f, 4, s_aseg, "auxiliary_head.conv_seg.weight");
    params_add(p, &m->aux_seg_b, &m->d_aux_seg_b, INIT_ZERO, 0, 1, s_k, "auxiliary_head.conv_seg.bias");
}

int model_build(mv_model *m, const mv_model_config *cfg) {
    memset(m, 0, sizeof *m);
    MV_TRY(model_config_validate(cfg));
    m->cfg = *cfg;
    build_blocks(m);
    // Parameters in state_dict order, which is also the order of the flat buffers, checkpoints
    // and the gradient all-reduce's buckets.
    int stage_first[4];
    register_encoder(m, stage_first);
    int decoder_first = m->params.count;
    if (cfg->head == MV_HEAD_UPER) register_uper_head(m);
    else linear_head_register(m);
    register_heads(m);
    MV_TRY(params_allocate(&m->params));
    for (int i = 0; i < 4; i++) m->stage_grad_lo[i] = m->params.items[stage_first[i]].offset;
    m->decoder_grad_lo = m->params.items[decoder_first].offset;
    return 0;
}

size_t model_num_parameters(const mv_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->params.count; i++)
        if (!m->params.items[i].is_buffer) n += m->params.items[i].numel;
    return n;
}

void model_mask_name(char *out, size_t n, const mv_model *m, int block) {
    snprintf(out, n, "%s", "");
    const mv_block *b = &m->blocks[block];
    if (!b->masked) return;
    for (int i = 0; i < m->params.count; i++) {
        const mv_param *q = &m->params.items[i];
        size_t len = strlen(q->name), suffix = strlen(".token_mask");
        if (*q->ptr == b->token_mask && len > suffix) snprintf(out, n, "%.*s", (int)(len - suffix), q->name);
    }
}

void model_release_activations(mv_model *m) {
    void (*release)(void *) = m->arena_free ? m->arena_free : free;
    release(m->acts_mem);   // the one allocation: acts, block region, gradients and scratch
    free(m->scalars_host);
    m->acts_mem = m->dacts_mem = m->scratch = m->block_scratch = NULL;
    m->arena_cap = m->dtemps_floats = 0;
    m->scalars_host = NULL;
}

void model_free(mv_model *m) {
    model_release_activations(m);
    free(m->logits_host);
    params_free(&m->params);
    free(m->blocks);
    memset(m, 0, sizeof *m);
}
