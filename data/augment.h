// The training and test pipelines of docs/math.md section 6 (mmsegmentation's Cityscapes pipeline,
// docs/data.md, "The training pipeline"), from a decoded RGB sample to the model's input:
//   train: random rescale of the (2048, 1024) scale by U[0.5, 2.0) keeping ratio (image bilinear,
//          label nearest), random crop with cat_max_ratio 0.75 (up to 10 checked boxes), flip 0.5,
//          photometric distortion, normalise (RGB mean/std), pad image 0 / label 255 to the crop.
//   test:  resize to fit (2048, 1024) keeping ratio (bilinear), normalise; labels stay as they are.
// Every random draw comes from Philox keyed by (seed, epoch, sample key, draw), so a sample's
// augmentation does not depend on threads, ranks or the order of work.
// Only the crop window of the rescaled image is ever computed (resize-then-crop equals
// crop-of-resize pointwise), so a 2x rescale of a 1024x2048 image costs no more than the crop.
#pragma once
#include <stdint.h>
#include <stddef.h>
#include "data/image.h"

// Purposes for counter word c2 of the data pipeline's Philox draws (see core/rng.h).
#define MV_RNG_AUGMENT (0x41u << 24)
#define MV_RNG_SHUFFLE (0x42u << 24)

typedef struct {
    int crop_h, crop_w;          // (512, 1024)
    int scale_long, scale_short; // base scale (2048, 1024)
    float ratio_min, ratio_max;  // 0.5, 2.0
    float cat_max_ratio;         // 0.75 (>= 1 disables the check)
    float flip_prob;             // 0.5
    int photometric;             // 1: mmseg's PhotoMetricDistortion
    float mean[3], std[3];       // RGB
} mv_aug_config;

void augment_default_config(mv_aug_config *cfg, int crop_h, int crop_w);

// The random choices made for one training sample (for tests and logs).
typedef struct {
    float ratio;                 // rescale ratio r
    int new_h, new_w;            // rescaled size
    int crop_y, crop_x;          // crop offset in the rescaled image
    int crop_h, crop_w;          // crop size actually taken (smaller when the image is)
    int crop_checks;             // boxes drawn (1..11)
    int flip;
    int brightness; float beta;  // applied?, delta
    int contrast_first;          // mode: contrast before (1) or after (0) saturation/hue
    int contrast; float alpha;
    int saturation; float sat_alpha;
    int hue; int hue_delta;
} mv_aug_params;

// Per-thread working memory, sized once (nothing is allocated per sample).
typedef struct {
    uint8_t *crop;               // crop_h * crop_w * 3
    uint8_t *row;                // cap_w * 3: one resampled row (test transform)
    int *col_src;                // nearest source column per output column (labels)
    int *col_x0, *col_x1;        // bilinear taps per output column (byte offsets of the pixels)
    int16_t *col_a;              // their 11-bit fixed-point weights, two per output column
    int32_t *hrow[2];            // two horizontally resampled source rows (cap_w * 3 each)
    int hrow_y[2];               // which source rows hrow holds (-1: none)
    int cap_w;                   // widest output row supported
} mv_aug_scratch;

// max_w: the widest output this scratch will produce (crop width, or the widest test image).
void aug_scratch_alloc(mv_aug_scratch *s, const mv_aug_config *cfg, int max_w);
void aug_scratch_free(mv_aug_scratch *s);

// Training transform. out_img: float [3][crop_h][crop_w] (CHW, normalised, padded with 0);
// out_lab: uint8 [crop_h][crop_w] (padded with 255). params may be NULL.
void augment_train(float *out_img, uint8_t *out_lab, mv_aug_params *params, const mv_image *rgb,
                   const mv_image *label, const mv_aug_config *cfg, uint64_t seed, uint32_t epoch,
                   uint64_t sample_key, mv_aug_scratch *scratch);

// Just the draws of augment_train for a sample of size h x w (no pixels touched) - except the
// crop offset, which depends on the label through the category check.
void augment_draw(mv_aug_params *p, const mv_aug_config *cfg, int h, int w, uint64_t seed, uint32_t epoch,
                  uint64_t sample_key);

// mmcv's keep-ratio rescale: the size of an h x w image rescaled to fit (scale_long, scale_short).
void augment_fit_size(int *out_h, int *out_w, int h, int w, int scale_long, int scale_short);
// Test transform: out_img float [3][oh][ow] with (oh, ow) from augment_fit_size(cfg->scale_*).
void augment_test(float *out_img, const mv_image *rgb, int oh, int ow, const mv_aug_config *cfg,
                  mv_aug_scratch *scratch);

// Building blocks, exposed for tests.
// Bilinear sample of the virtual (nh x nw) resize of rgb over the window (y0, x0, wh, ww):
// byte for byte what OpenCV 4.6's cv2.resize(INTER_LINEAR) of the whole image gives inside the
// window (11-bit fixed-point weights, its SIMD and scalar rounding by column). out is (wh, ww, 3).
void augment_resize_window(uint8_t *out, const mv_image *rgb, int nh, int nw, int y0, int x0, int wh, int ww,
                           mv_aug_scratch *scratch);
// OpenCV 8-bit HSV (H in 0..179, S and V in 0..255), byte for byte as OpenCV 4.6's cvtColor
// COLOR_BGR2HSV / COLOR_HSV2BGR on the BGR image (channels here in RGB order).
void augment_rgb_to_hsv(uint8_t hsv[3], const uint8_t rgb[3]);
// One pixel as cvtColor converts a pixel of a row's last (w % 32) pixels (rounded to nearest).
void augment_hsv_to_rgb(uint8_t rgb[3], const uint8_t hsv[3]);
// A row of w pixels as cvtColor converts it on an x86-64 machine with AVX2: the first
// 32 * (w / 32) pixels through its vector path (truncated), the rest rounded.
void augment_hsv_to_rgb_row(uint8_t *rgb, const uint8_t *hsv, int w);
