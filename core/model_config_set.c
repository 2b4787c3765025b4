// The `model.*` and `mask.*` keys: one table (name, type, field, count, range) that drives
// model_config_set, range checks, YAML output and comparison of mv_model_config.
#include "core/config.h"
#include "core/error.h"
#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(mv_mask_mode) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(mv_mask_layout) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(mv_head_kind) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(mv_context_kind) == sizeof(int), "enum keys are stored as int");
// model.crop sets the two adjacent fields crop_h, crop_w as one 2-element key.
_Static_assert(offsetof(mv_model_config, crop_w) == offsetof(mv_model_config, crop_h) + sizeof(int),
               "crop_h and crop_w must be adjacent");

// model.preset: starts over from a preset, so it is applied before every other key.
static int set_preset(void *obj, const mv_key *k, const char *value) {
    (void)k;
    mv_model_config tmp;
    memcpy(&tmp, obj, sizeof tmp);
    if (model_config_preset(&tmp, value) < 0) return mv_fail_context("model.preset: bad value '%s'", value);
    memcpy(obj, &tmp, sizeof tmp);
    return 0;
}

// mask.encoder: one boolean for the three encoder stages that mask by default (0..2); stage 3
// stays unmasked (only mask.encoder_stages with four values masks it).
static int set_mask_encoder(void *obj, const mv_key *k, const char *value) {
    mv_model_config *cfg = obj;
    bool on[1];
    mv_key one = *k;
    one.set = NULL;
    one.count = 1;
    one.offset = 0;
    MV_TRY(key_set(on, &one, value));
    for (int i = 0; i < 4; i++) cfg->mask_encoder[i] = i < 3 && on[0];
    return 0;
}

// mask.encoder_stages: three booleans (stages 0..2, stage 3 unmasked, as the paper's MaskViM)
// or four (Table 6's "mask in all stages" masks stage 3 too).
static int set_encoder_stages(void *obj, const mv_key *k, const char *value) {
    mv_model_config *cfg = obj;
    bool on[4] = {false, false, false, false};
    mv_key list = *k;
    list.set = NULL;
    list.offset = 0;
    list.count = 4;
    if (key_set(on, &list, value) < 0) {
        list.count = 3;
        mv_clear_error();
        if (key_set(on, &list, value) < 0)
            return mv_fail("%s: bad value '%s': expected 3 booleans (stages 0..2) or 4 (stages 0..3)", k->name, value);
        on[3] = false;
    }
    memcpy(cfg->mask_encoder, on, sizeof on);
    return 0;
}

static void format_encoder_stages(char *out, size_t cap, const void *obj, const mv_key *k) {
    const mv_model_config *cfg = obj;
    const bool *s = cfg->mask_encoder;
    (void)k;
    if (s[3]) snprintf(out, cap, "[%s, %s, %s, true]", s[0] ? "true" : "false", s[1] ? "true" : "false", s[2] ? "true" : "false");
    else snprintf(out, cap, "[%s, %s, %s]", s[0] ? "true" : "false", s[1] ? "true" : "false", s[2] ? "true" : "false");
}

// mask.lambda: one number (the paper's uniform lambda: one ratio term per masked block)
// or one per encoder stage, three or four (one ratio term per stage; four when stage 3 masks).
static int set_lambda(void *obj, const mv_key *k, const char *value) {
    mv_model_config *cfg = obj;
    double x[4];
    int n = key_parse_doubles(x, 4, k, value);
    if (n < 0) return -1;
    if (n != 1 && n != 3 && n != 4)
        return mv_fail("%s: bad value '%s': expected one number (uniform) or three or four (per stage), got %d",
                       k->name, value, n);
    for (int i = 0; i < n; i++)
        if (key_check_range(k, x[i]) < 0) return mv_fail_context("%s: bad value '%s'", k->name, value);
    // With three values stage 3's entry repeats stage 2's: it is never read (validation refuses
    // three values when stage 3 masks), but stays in range for the generic checks.
    for (int i = 0; i < 4; i++) cfg->lambda[i] = (float)x[n == 1 ? 0 : i < n ? i : n - 1];
    cfg->lambda_per_stage = n > 1;
    cfg->lambda_count = n;
    return 0;
}

static void format_lambda(char *out, size_t cap, const void *obj, const mv_key *k) {
    const mv_model_config *cfg = obj;
    char v[4][32];
    (void)k;
    for (int i = 0; i < 4; i++) key_format_float(v[i], sizeof v[i], cfg->lambda[i]);
    if (!cfg->lambda_per_stage) snprintf(out, cap, "%s", v[0]);
    else if (cfg->lambda_count == 4) snprintf(out, cap, "[%s, %s, %s, %s]", v[0], v[1], v[2], v[3]);
    else snprintf(out, cap, "[%s, %s, %s]", v[0], v[1], v[2]);
}

static const char *const MASK_MODES[] = {"residual", "zero", NULL};
static const char *const MASK_LAYOUTS[] = {"spatial", "official", NULL};
static const char *const HEADS[] = {"uper", "linear", NULL};
static const char *const CONTEXTS[] = {"ppm", "vss", NULL};

#define M(field) offsetof(mv_model_config, field)
#define PRESET_SIZE sizeof(((mv_model_config *)0)->preset)
static const mv_key KEYS[] = {
    {.name = "model.preset", .type = MV_KEY_STRING, .offset = M(preset), .count = 1, .size = PRESET_SIZE,
     .set = set_preset, .doc = "maskvim-nano|maskvim-t|maskvim-s|maskvim-b; applied first, fills every other key"},
    {.name = "model.dims", .type = MV_KEY_INT, .offset = M(dims), .count = 4, .lo = 1, .hi = 8192,
     .doc = "encoder channels per stage"},
    {.name = "model.depths", .type = MV_KEY_INT, .offset = M(depths), .count = 4, .lo = 1, .hi = 64,
     .doc = "VSS blocks per encoder stage"},
    {.name = "model.d_state", .type = MV_KEY_INT, .offset = M(d_state), .count = 1, .lo = 1, .hi = 64,
     .doc = "SSM state size N"},
    {.name = "model.ssm_ratio", .type = MV_KEY_INT, .offset = M(ssm_ratio), .count = 1, .lo = 1, .hi = 8,
     .doc = "expanded width E = ssm_ratio * C"},
    {.name = "model.decoder_channels", .type = MV_KEY_INT, .offset = M(decoder_channels), .count = 1,
     .lo = 1, .hi = 8192, .doc = "decoder channels D"},
    {.name = "model.aux_channels", .type = MV_KEY_INT, .offset = M(aux_channels), .count = 1, .lo = 1,
     .hi = 8192, .doc = "auxiliary FCN head channels"},
    {.name = "model.decoder_depths", .type = MV_KEY_INT, .offset = M(decoder_depths), .count = 3, .lo = 1,
     .hi = 16, .doc = "MVSS blocks per decoder lateral path 0..2"},
    {.name = "model.num_classes", .type = MV_KEY_INT, .offset = M(num_classes), .count = 1, .lo = 2,
     .hi = 255, .doc = "classes (label 255 is ignored)"},
    {.name = "model.crop", .type = MV_KEY_INT, .offset = M(crop_h), .count = 2, .lo = 32, .hi = 16384,
     .doc = "training crop h, w; fixes the token-mask grids"},
    {.name = "model.drop_path", .type = MV_KEY_FLOAT, .offset = M(drop_path), .count = 1, .lo = 0, .hi = 1,
     .flags = MV_KEY_HI_OPEN, .doc = "encoder stochastic depth (max rate, linear over blocks)"},
    {.name = "model.decoder_drop_path", .type = MV_KEY_FLOAT, .offset = M(decoder_drop_path), .count = 1,
     .lo = 0, .hi = 1, .flags = MV_KEY_HI_OPEN, .doc = "decoder stochastic depth (max rate, linear over decoder blocks)"},
    {.name = "model.dropout", .type = MV_KEY_FLOAT, .offset = M(dropout), .count = 1, .lo = 0, .hi = 1,
     .flags = MV_KEY_HI_OPEN, .doc = "Dropout2d before both conv_seg layers"},
    {.name = "model.aux_weight", .type = MV_KEY_FLOAT, .offset = M(aux_weight), .count = 1, .lo = 0,
     .hi = 1000, .doc = "weight of the auxiliary cross-entropy"},
    {.name = "model.avg_non_ignore", .type = MV_KEY_BOOL, .offset = M(avg_non_ignore), .count = 1,
     .doc = "cross-entropy mean over non-ignored pixels only"},
    {.name = "model.head", .type = MV_KEY_ENUM, .offset = M(head), .count = 1, .choices = HEADS,
     .doc = "uper: the mask decoder (docs/math.md section 4); linear: SegFormer-style all-MLP head (Table 6 baseline)"},
    {.name = "model.context", .type = MV_KEY_ENUM, .offset = M(context), .count = 1, .choices = CONTEXTS,
     .doc = "lateral 3 of the mask decoder: ppm (pyramid pooling) or vss (one VSS block, Table 6)"},
    {.name = "mask.encoder", .type = MV_KEY_BOOL, .offset = M(mask_encoder), .count = 3,
     .flags = MV_KEY_ALIAS, .set = set_mask_encoder, .doc = "masks in encoder stages 0..2 (or none)"},
    {.name = "mask.encoder_stages", .type = MV_KEY_BOOL, .offset = M(mask_encoder), .count = 4,
     .set = set_encoder_stages, .format = format_encoder_stages,
     .doc = "masks per encoder stage: 3 values (stages 0..2) or 4 (stage 3 too)"},
    {.name = "mask.decoder", .type = MV_KEY_BOOL, .offset = M(mask_decoder), .count = 1,
     .doc = "masks in the decoder's lateral blocks"},
    {.name = "mask.lambda", .type = MV_KEY_FLOAT, .offset = M(lambda), .count = 4, .lo = 0, .hi = 1,
     .set = set_lambda, .format = format_lambda,
     .doc = "target keep ratio: one number (uniform) or three or four (per stage)"},
    // Hidden rows follow the key that sets them (key_user_facing names it in messages).
    {.name = "mask.lambda_per_stage", .type = MV_KEY_BOOL, .offset = M(lambda_per_stage), .count = 1,
     .flags = MV_KEY_HIDDEN, .doc = "set by mask.lambda"},
    {.name = "mask.lambda_count", .type = MV_KEY_INT, .offset = M(lambda_count), .count = 1, .lo = 1, .hi = 4,
     .flags = MV_KEY_HIDDEN, .doc = "set by mask.lambda"},
    {.name = "mask.alpha1", .type = MV_KEY_FLOAT, .offset = M(alpha1), .count = 1, .lo = 0, .hi = 1e6,
     .doc = "weight of L_ratio"},
    {.name = "mask.alpha2", .type = MV_KEY_FLOAT, .offset = M(alpha2), .count = 1, .lo = 0, .hi = 1e6,
     .doc = "weight of L_position"},
    {.name = "mask.tau", .type = MV_KEY_FLOAT, .offset = M(tau), .count = 1, .lo = 0, .hi = 1000,
     .flags = MV_KEY_LO_OPEN, .doc = "Gumbel-softmax temperature"},
    {.name = "mask.gamma", .type = MV_KEY_FLOAT, .offset = M(gamma), .count = 1, .lo = 0, .hi = 1000,
     .flags = MV_KEY_LO_OPEN, .doc = "token_mask initialised U(-gamma, gamma)"},
    {.name = "mask.mode", .type = MV_KEY_ENUM, .offset = M(mask_mode), .count = 1, .choices = MASK_MODES,
     .doc = "residual: x*m + x (released code); zero: x*m (paper Eq. 9)"},
    {.name = "mask.layout", .type = MV_KEY_ENUM, .offset = M(mask_layout), .count = 1,
     .choices = MASK_LAYOUTS, .doc = "token_mask entry order (official: the released reshape)"},
    {.name = "mask.noise", .type = MV_KEY_BOOL, .offset = M(mask_noise), .count = 1,
     .doc = "Gumbel noise in training"},
    {.name = "mask.ratio_sync", .type = MV_KEY_BOOL, .offset = M(ratio_sync), .count = 1,
     .doc = "ratio term on the global batch (false: per rank, as the authors' DDP)"},
};
#undef M

const mv_key *model_config_keys(int *n) {
    *n = (int)(sizeof KEYS / sizeof KEYS[0]);
    return KEYS;
}

int model_config_set(mv_model_config *cfg, const char *key, const char *value) {
    if (!key) key = "";
    if (!value) value = "";
    const mv_key *k = key_find(KEYS, (int)(sizeof KEYS / sizeof KEYS[0]), key);
    if (!k) return mv_fail("unknown key '%s' (value '%s')", key, value);
    return key_set(cfg, k, value);
}

int model_config_check(const mv_model_config *cfg) {
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) MV_TRY(key_check(cfg, &KEYS[i]));
    return 0;
}

bool model_config_equal(const mv_model_config *a, const mv_model_config *b) {
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
        if (!key_equal(a, b, &KEYS[i])) return false;
    return true;
}
