// The `model.*` and `mask.*` keys: one table (name, type, field, count, range) that drives
// model_config_set, range checks, YAML output and comparison of mv_model_config.
#include "core/config.h"
#include "core/error.h"
#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(mv_mask_mode) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(mv_mask_layout) == sizeof(int), "enum keys are stored as int");
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

// mask.encoder: one boolean for all three maskable encoder stages.
static int set_mask_encoder(void *obj, const mv_key *k, const char *value) {
    mv_model_config *cfg = obj;
    bool on[3];
    mv_key one = *k;
    one.set = NULL;
    one.count = 1;
    one.offset = 0;
    MV_TRY(key_set(on, &one, value));
    for (int i = 0; i < 3; i++) cfg->mask_encoder[i] = on[0];
    return 0;
}

// mask.lambda: one number (the paper's uniform lambda: one ratio term per masked block)
// or three (one per encoder stage: one ratio term per stage).
static int set_lambda(void *obj, const mv_key *k, const char *value) {
    mv_model_config *cfg = obj;
    double x[3];
    int n = key_parse_doubles(x, 3, k, value);
    if (n < 0) return -1;
    if (n != 1 && n != 3)
        return mv_fail("%s: bad value '%s': expected one number (uniform) or three (per stage), got %d",
                       k->name, value, n);
    for (int i = 0; i < n; i++)
        if (key_check_range(k, x[i]) < 0) return mv_fail_context("%s: bad value '%s'", k->name, value);
    for (int i = 0; i < 3; i++) cfg->lambda[i] = (float)x[n == 1 ? 0 : i];
    cfg->lambda_per_stage = n == 3;
    return 0;
}

static void format_lambda(char *out, size_t cap, const void *obj, const mv_key *k) {
    const mv_model_config *cfg = obj;
    char a[32], b[32], c[32];
    (void)k;
    key_format_float(a, sizeof a, cfg->lambda[0]);
    if (!cfg->lambda_per_stage) { snprintf(out, cap, "%s", a); return; }
    key_format_float(b, sizeof b, cfg->lambda[1]);
    key_format_float(c, sizeof c, cfg->lambda[2]);
    snprintf(out, cap, "[%s, %s, %s]", a, b, c);
}

static const char *const MASK_MODES[] = {"residual", "zero", NULL};
static const char *const MASK_LAYOUTS[] = {"spatial", "official", NULL};

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
     .lo = 0, .hi = 1, .flags = MV_KEY_HI_OPEN, .doc = "decoder stochastic depth (every decoder block)"},
    {.name = "model.dropout", .type = MV_KEY_FLOAT, .offset = M(dropout), .count = 1, .lo = 0, .hi = 1,
     .flags = MV_KEY_HI_OPEN, .doc = "Dropout2d before both conv_seg layers"},
    {.name = "model.aux_weight", .type = MV_KEY_FLOAT, .offset = M(aux_weight), .count = 1, .lo = 0,
     .hi = 1000, .doc = "weight of the auxiliary cross-entropy"},
    {.name = "model.avg_non_ignore", .type = MV_KEY_BOOL, .offset = M(avg_non_ignore), .count = 1,
     .doc = "cross-entropy mean over non-ignored pixels only"},
    {.name = "mask.encoder", .type = MV_KEY_BOOL, .offset = M(mask_encoder), .count = 3,
     .flags = MV_KEY_ALIAS, .set = set_mask_encoder, .doc = "masks in all three encoder stages 0..2 (or none)"},
    {.name = "mask.encoder_stages", .type = MV_KEY_BOOL, .offset = M(mask_encoder), .count = 3,
     .doc = "masks per encoder stage 0..2 (stage 3 never masks)"},
    {.name = "mask.decoder", .type = MV_KEY_BOOL, .offset = M(mask_decoder), .count = 1,
     .doc = "masks in the decoder's lateral blocks"},
    {.name = "mask.lambda", .type = MV_KEY_FLOAT, .offset = M(lambda), .count = 3, .lo = 0, .hi = 1,
     .set = set_lambda, .format = format_lambda,
     .doc = "target keep ratio: one number (uniform) or three (per stage)"},
    {.name = "mask.lambda_per_stage", .type = MV_KEY_BOOL, .offset = M(lambda_per_stage), .count = 1,
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
