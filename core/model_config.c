// Presets of docs/math.md section 1 and the consistency checks every model configuration passes.
#include "core/model_config.h"
#include "core/error.h"
#include <string.h>

static void set_common(mv_model_config *c) {
    c->d_state = 16;
    c->ssm_ratio = 2;
    c->decoder_depths[0] = c->decoder_depths[1] = c->decoder_depths[2] = 1;
    c->num_classes = 19;
    c->crop_h = 512;
    c->crop_w = 1024;
    c->drop_path = 0.3f;
    c->decoder_drop_path = 0.1f;
    c->dropout = 0.1f;
    c->aux_weight = 0.4f;
    c->avg_non_ignore = false;
    for (int i = 0; i < 4; i++) { c->mask_encoder[i] = i < 3; c->lambda[i] = 0.5f; }
    c->mask_decoder = true;
    c->lambda_per_stage = false;
    c->lambda_count = 1;
    c->head = MV_HEAD_UPER;
    c->context = MV_CONTEXT_PPM;
    c->alpha1 = c->alpha2 = 1.0f;
    c->tau = 1.0f;
    c->gamma = 4.0f;
    c->mask_mode = MV_MASK_RESIDUAL;
    c->mask_layout = MV_MASK_LAYOUT_SPATIAL;
    c->mask_noise = true;
    c->ratio_sync = true;
}

static void set4(int *dst, int a, int b, int c, int d) { dst[0] = a; dst[1] = b; dst[2] = c; dst[3] = d; }

int model_config_preset(mv_model_config *cfg, const char *name) {
    memset(cfg, 0, sizeof *cfg);
    set_common(cfg);
    if (!strcmp(name, "maskvim-t")) {
        set4(cfg->dims, 96, 192, 384, 768); set4(cfg->depths, 2, 2, 9, 2);
        cfg->decoder_channels = 512; cfg->aux_channels = 256;
    } else if (!strcmp(name, "maskvim-s")) {
        set4(cfg->dims, 96, 192, 384, 768); set4(cfg->depths, 2, 2, 27, 2);
        cfg->decoder_channels = 512; cfg->aux_channels = 256;
    } else if (!strcmp(name, "maskvim-b")) {
        set4(cfg->dims, 128, 256, 512, 1024); set4(cfg->depths, 2, 2, 27, 2);
        cfg->decoder_channels = 256; cfg->aux_channels = 256;
    } else if (!strcmp(name, "maskvim-nano")) {
        set4(cfg->dims, 16, 32, 64, 128); set4(cfg->depths, 1, 1, 2, 1);
        cfg->d_state = 4; cfg->decoder_channels = 32; cfg->aux_channels = 16;
        cfg->crop_h = 64; cfg->crop_w = 64;
    } else {
        return mv_fail("unknown model preset '%s' (known: maskvim-nano, maskvim-t, maskvim-s, maskvim-b)", name);
    }
    snprintf(cfg->preset, sizeof cfg->preset, "%s", name);
    return 0;
}

void model_config_describe(char *out, size_t cap, const mv_model_config *c) {
    mv_model_config p;
    bool same = model_config_preset(&p, c->preset) == 0 && !memcmp(p.dims, c->dims, sizeof p.dims) &&
                !memcmp(p.depths, c->depths, sizeof p.depths) && p.d_state == c->d_state &&
                p.ssm_ratio == c->ssm_ratio && p.decoder_channels == c->decoder_channels &&
                p.aux_channels == c->aux_channels && !memcmp(p.decoder_depths, c->decoder_depths, sizeof p.decoder_depths);
    if (same) snprintf(out, cap, "%s", c->preset);
    else snprintf(out, cap, "custom model (from preset %s, its sizes changed)", c->preset);
}

int model_config_validate(const mv_model_config *c) {
    for (int i = 0; i < 4; i++) {
        if (c->dims[i] < 1 || c->dims[i] > 8192) return mv_fail("model.dims[%d] = %d is out of range 1..8192", i, c->dims[i]);
        if (c->depths[i] < 1 || c->depths[i] > 64) return mv_fail("model.depths[%d] = %d is out of range 1..64", i, c->depths[i]);
    }
    for (int i = 0; i < 3; i++)
        if (c->decoder_depths[i] < 1 || c->decoder_depths[i] > 16)
            return mv_fail("model.decoder_depths[%d] = %d is out of range 1..16", i, c->decoder_depths[i]);
    if (c->d_state < 1 || c->d_state > 64) return mv_fail("model.d_state = %d is out of range 1..64", c->d_state);
    if (c->ssm_ratio < 1 || c->ssm_ratio > 8) return mv_fail("model.ssm_ratio = %d is out of range 1..8", c->ssm_ratio);
    if (c->decoder_channels < 1) return mv_fail("model.decoder_channels = %d must be positive", c->decoder_channels);
    if (c->aux_channels < 1) return mv_fail("model.aux_channels = %d must be positive", c->aux_channels);
    if (c->num_classes < 2 || c->num_classes > 255) return mv_fail("model.num_classes = %d is out of range 2..255", c->num_classes);
    if (c->crop_h < 32 || c->crop_w < 32 || c->crop_h % 32 || c->crop_w % 32)
        return mv_fail("model.crop = %dx%d: both sides must be multiples of 32 (the token-mask grid of stage 3 is crop/32)", c->crop_h, c->crop_w);
    if (c->drop_path < 0 || c->drop_path >= 1) return mv_fail("model.drop_path = %g is out of range [0,1)", c->drop_path);
    if (c->decoder_drop_path < 0 || c->decoder_drop_path >= 1) return mv_fail("model.decoder_drop_path = %g is out of range [0,1)", c->decoder_drop_path);
    if (c->dropout < 0 || c->dropout >= 1) return mv_fail("model.dropout = %g is out of range [0,1)", c->dropout);
    if (c->tau <= 0) return mv_fail("mask.tau = %g must be positive", c->tau);
    if (c->gamma <= 0) return mv_fail("mask.gamma = %g must be positive", c->gamma);
    for (int i = 0; i < 4; i++)
        if (c->lambda[i] < 0 || c->lambda[i] > 1) return mv_fail("mask.lambda[%d] = %g is out of range [0,1]", i, c->lambda[i]);
    if (c->lambda_per_stage && c->mask_encoder[3] && c->lambda_count < 4)
        return mv_fail("mask.lambda gives %d per-stage values but stage 3 is masked (mask.encoder_stages): "
                       "give four, or one for the uniform lambda", c->lambda_count);
    if (c->lambda_per_stage && !c->mask_encoder[3] && c->lambda_count > 3)   // would be ignored silently
        return mv_fail("mask.lambda gives %d per-stage values but stage 3 is not masked (mask.encoder_stages), so "
                       "the last would be ignored: give three, or mask stage 3 too", c->lambda_count);
    if (c->head == MV_HEAD_LINEAR && c->mask_decoder)
        return mv_fail("mask.decoder = true needs the mask decoder: the linear head (model.head: linear) "
                       "has no decoder blocks to mask; set mask.decoder: false");
    if (c->head == MV_HEAD_LINEAR && c->context != MV_CONTEXT_PPM)
        return mv_fail("model.context = vss replaces the mask decoder's pyramid pooling; "
                       "it needs model.head: uper");
    return 0;
}
