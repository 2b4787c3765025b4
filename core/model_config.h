// What the model is: the architecture, mask and loss settings of docs/math.md sections 1-5.
// Filled from a preset (maskvim-nano/-t/-s/-b) and then overridden key by key.
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef enum { MV_MASK_RESIDUAL = 0, MV_MASK_ZERO = 1 } mv_mask_mode;        // x*m + x  |  x*m
typedef enum { MV_MASK_LAYOUT_SPATIAL = 0, MV_MASK_LAYOUT_OFFICIAL = 1 } mv_mask_layout;
// Decode head: the mask decoder (UPerNet layout with MVSS laterals, docs/math.md section 4), or the
// SegFormer-style all-MLP head of Table 6's "VMamba + linear" baseline (docs/model.md).
typedef enum { MV_HEAD_UPER = 0, MV_HEAD_LINEAR = 1 } mv_head_kind;
// Lateral 3 of the mask decoder: pyramid pooling over F_3 (the multi-scale aggregation), or one
// VSS block in its place (Table 6's "w/o multi-scale aggregation").
typedef enum { MV_CONTEXT_PPM = 0, MV_CONTEXT_VSS = 1 } mv_context_kind;

typedef struct {
    char preset[32];
    int dims[4];              // encoder channels per stage
    int depths[4];            // VSS blocks per stage
    int d_state;              // N
    int ssm_ratio;            // E = ssm_ratio * C
    int decoder_channels;     // D
    int aux_channels;         // auxiliary FCN head channels
    int decoder_depths[3];    // MVSS blocks per lateral path 0..2
    int num_classes;
    int crop_h, crop_w;       // fixes the token-mask grids
    float drop_path;          // encoder stochastic depth (max rate, linear over blocks)
    float decoder_drop_path;  // decoder stochastic depth: the largest of its linear rates
    float dropout;            // Dropout2d before both conv_seg layers
    float aux_weight;         // weight of the auxiliary CE (0.4)
    bool avg_non_ignore;      // CE mean over non-ignored pixels instead of all pixels
    mv_head_kind head;        // decode head
    mv_context_kind context;  // lateral 3 of the mask decoder

    // Mask learning (docs/math.md section 3 and 5)
    bool mask_encoder[4];     // masks per encoder stage (stage 3 only for Table 6's "all stages")
    bool mask_decoder;        // masks in the decoder's lateral blocks
    bool lambda_per_stage;    // false: one ratio term per block; true: one per stage
    float lambda[4];          // target keep ratio per stage (all equal for the uniform lambda)
    int lambda_count;         // values given: 1 (uniform), 3 or 4 (per stage)
    float alpha1, alpha2;     // weights of L_ratio and L_position
    float tau, gamma;         // Gumbel-softmax temperature; token_mask init range U(-gamma, gamma)
    mv_mask_mode mask_mode;
    mv_mask_layout mask_layout;
    bool mask_noise;          // Gumbel noise in training (off: deterministic)
    bool ratio_sync;          // ratio term on the global batch (true) or per rank (false)
} mv_model_config;

// Fills `cfg` with preset `name`; returns -1 (with a message listing the presets) if unknown.
int model_config_preset(mv_model_config *cfg, const char *name);
// What a run calls its model: the preset's name when the network's size (dims, depths, d_state,
// ssm_ratio, decoder and auxiliary channels, decoder depths) is the preset's, else "custom"
// with the preset it was started from. A preset fills the model keys before a layer's other
// keys, so a file that lists them all (a run's config.yaml) keeps its network under any
// preset name given on top.
void model_config_describe(char *out, size_t cap, const mv_model_config *cfg);
// Checks ranges and consistency (crop divisible by 32, positive sizes, ...); -1 with a message.
int model_config_validate(const mv_model_config *cfg);
// Sets one `model.*` or `mask.*` key from text (e.g. "model.dims", "16,32,64,128").
// Returns 0, or -1 naming the unknown key or the bad value.
int model_config_set(mv_model_config *cfg, const char *key, const char *value);
