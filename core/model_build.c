// Builds MaskViM from its configuration: the blocks of the encoder and decoder, and every
// parameter registered under its PyTorch state_dict name (SPEC.md sections 2 and 4).
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

int model_build(mv_model *m, const mv_model_config *cfg) {
    memset(m, 0, sizeof *m);
    MV_TRY(model_config_validate(cfg));
    m->cfg = *cfg;
    const int *dims = cfg->dims, D = cfg->decoder_channels, K = cfg->num_classes;
    bool uper = cfg->head == MV_HEAD_UPER, ctx_vss = uper && cfg->context == MV_CONTEXT_VSS;
    int total_enc = 0, total = 0;
    for (int i = 0; i < 4; i++) total_enc += cfg->depths[i];
    total = total_enc;
    for (int i = 0; i < 3; i++) {
        m->dec_depth[i] = uper ? cfg->decoder_depths[i] : 0;   // the linear head has no blocks
        total += m->dec_depth[i];
    }
    total += ctx_vss;
    m->num_blocks = total;
    m->blocks = mv_calloc(total, sizeof(mv_block));

    // Blocks: encoder stage by stage (stochastic depth linear from 0 to drop_path over the
    // encoder's blocks, as VMamba), then each lateral path of the decoder.
    int id = 0;
    for (int i = 0; i < 4; i++) {
        m->enc_first[i] = id;
        int gh = cfg->crop_h / (4 << i), gw = cfg->crop_w / (4 << i);
        for (int j = 0; j < cfg->depths[i]; j++, id++) {
            float drop = total_enc > 1 ? cfg->drop_path * (float)id / (float)(total_enc - 1) : 0.0f;
            bool masked = cfg->mask_encoder[i];
            init_block(&m->blocks[id], dims[i], dims[i], masked, gh, gw, drop, (uint32_t)id, i, cfg);
        }
    }
    // The decoder's rates are linear from 0 to decoder_drop_path over its blocks counted from
    // the coarsest lateral (2) to the finest (0), as the authors' decoder assigns them: lateral
    // i's blocks follow those of the laterals below it in resolution.
    int total_dec = m->dec_depth[0] + m->dec_depth[1] + m->dec_depth[2];
    for (int i = 0; i < 3; i++) {
        m->dec_first[i] = id;
        int gh = cfg->crop_h / (4 << i), gw = cfg->crop_w / (4 << i);
        int coarser = 0;
        for (int k = i + 1; k < 3; k++) coarser += m->dec_depth[k];
        for (int j = 0; j < m->dec_depth[i]; j++, id++) {
            float drop = total_dec > 1 ? cfg->decoder_drop_path * (float)(coarser + j) / (float)(total_dec - 1)
                                       : 0.0f;
            init_block(&m->blocks[id], j == 0 ? dims[i] : D, D, cfg->mask_decoder, gh, gw, drop, (uint32_t)id, -1,
                       cfg);
        }
    }
    m->ctx_block = -1;
    if (ctx_vss) {   // unmasked, in place of pyramid pooling on F_3 (ours: decoder_drop_path itself)
        m->ctx_block = id;
        init_block(&m->blocks[id], dims[3], D, false, cfg->crop_h / 32, cfg->crop_w / 32,
                   cfg->decoder_drop_path, (uint32_t)id, -1, cfg);
        id++;
    }

    // Parameters in state_dict order.
    mv_params *p = &m->params;
    char name[128];
    int s_pe[4] = {dims[0], 3, 4, 4}, s_c0[1] = {dims[0]};
    params_add(p, &m->pe_w, &m->d_pe_w, false, INIT_UNIFORM, 1.0f / sqrtf(48.0f), 4, s_pe, "backbone.patch_embed.0.weight");
    params_add(p, &m->pe_b, &m->d_pe_b, false, INIT_UNIFORM, 1.0f / sqrtf(48.0f), 1, s_c0, "backbone.patch_embed.0.bias");
    layernorm_register(&m->pe_norm, p, dims[0], "backbone.patch_embed.2");
    // Stage by stage: blocks, downsample, then the stage's output norm. Within the flat
    // buffer each stage's gradients are then contiguous and final once backward has left the
    // stage, which lets the gradient all-reduce start stage by stage (model_backward's hook).
    int stage_first[4], decoder_first;
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
            params_add(p, &m->ds_w[i], &m->d_ds_w[i], false, INIT_TRUNC_NORMAL, 0.02f, 2, s_red,
                       "backbone.layers.%d.downsample.reduction.weight", i);
        }
        snprintf(name, sizeof name, "backbone.outnorm%d", i);
        layernorm_register(&m->outnorm[i], p, dims[i], name);
    }
    decoder_first = p->count;
    if (uper) {
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < m->dec_depth[i]; j++) {
                snprintf(name, sizeof name, "decode_head.lateral_convs.%d.blocks.%d", i, j);
                block_register(&m->blocks[m->dec_first[i] + j], p, name, cfg);
            }
            snprintf(name, sizeof name, "decode_head.lateral_convs.%d.ln", i);
            layernorm_register(&m->lat_ln[i], p, D, name);
        }
        if (ctx_vss) {
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
    } else {
        linear_head_register(m);
    }
    int s_seg[4] = {K, D, 1, 1}, s_k[1] = {K};
    params_add(p, &m->seg_w, &m->d_seg_w, false, INIT_NORMAL, 0.01f, 4, s_seg, "decode_head.conv_seg.weight");
    params_add(p, &m->seg_b, &m->d_seg_b, false, INIT_ZERO, 0, 1, s_k, "decode_head.conv_seg.bias");
    convmod_register(&m->aux_conv, p, dims[2], cfg->aux_channels, 3, "auxiliary_head.convs.0");
    int s_aseg[4] = {K, cfg->aux_channels, 1, 1};
    params_add(p, &m->aux_seg_w, &m->d_aux_seg_w, false, INIT_NORMAL, 0.01f, 4, s_aseg, "auxiliary_head.conv_seg.weight");
    params_add(p, &m->aux_seg_b, &m->d_aux_seg_b, false, INIT_ZERO, 0, 1, s_k, "auxiliary_head.conv_seg.bias");
    MV_TRY(params_allocate(p));
    for (int i = 0; i < 4; i++) m->stage_grad_lo[i] = p->items[stage_first[i]].offset;
    m->decoder_grad_lo = p->items[decoder_first].offset;
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
