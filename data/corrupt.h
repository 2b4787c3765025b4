// Cityscapes-C: the 16 image corruptions of the paper's Table 2 at severities 1-5, with the
// algorithms and severity parameters of the `imagecorruptions` package (Hendrycks'
// ImageNet-C definitions; docs/corruptions.md). Self-contained: the frost
// textures are generated procedurally (a substitute: frost scores are not comparable with
// published numbers). Random corruptions draw from the counter-based generator keyed by the
// seed, so a (seed, image) pair always gives the same output; the noise field does not depend
// on the severity, so higher severities are the same pattern, stronger. See docs/corruptions.md.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "data/image.h"

#define CORRUPT_MAX_SIDE 8192

// In the order of the paper's Table 2 columns.
enum {
    CORRUPT_MOTION_BLUR, CORRUPT_DEFOCUS_BLUR, CORRUPT_GLASS_BLUR, CORRUPT_GAUSSIAN_BLUR,
    CORRUPT_GAUSSIAN_NOISE, CORRUPT_IMPULSE_NOISE, CORRUPT_SHOT_NOISE, CORRUPT_SPECKLE_NOISE,
    CORRUPT_BRIGHTNESS, CORRUPT_CONTRAST, CORRUPT_SATURATE, CORRUPT_JPEG_COMPRESSION,
    CORRUPT_SNOW, CORRUPT_SPATTER, CORRUPT_FOG, CORRUPT_FROST,
    CORRUPT_COUNT
};

// "motion_blur", ... (the package's names); NULL when out of range.
const char *corrupt_name(int corruption);
// The Table 2 group: "blur", "noise", "digital" or "weather".
const char *corrupt_group(int corruption);
// Index of a name, or -1 with an error message listing the names.
int corrupt_index(const char *name);
// The command-line lists (`eval --corruptions/--severities`, `data corrupt --corruption/--severity`),
// strictly: a list whose tail is not understood is an error, never cut short (a silently dropped
// severity changes a mean). Messages start with `opt` and the list. 0, or -1 with a message.
// "all" or a comma list of names -> on[0..CORRUPT_COUNT-1].
int corrupt_parse_names(bool on[CORRUPT_COUNT], const char *list, const char *opt);
// "all", "N", "A-B" or a comma list of those ("1-3,5") -> on[1..5] (on[0] false).
int corrupt_parse_severities(bool on[6], const char *list, const char *opt);
// 1 for corruptions that draw random numbers (their output depends on the seed).
int corrupt_is_random(int corruption);

// Corrupts an RGB image (c = 3, any size from 1x1 to CORRUPT_MAX_SIDE a side) at severity 1..5. out may be the same image
// as in. When out->px is NULL, out is allocated (image_alloc; the caller frees it); otherwise
// it must already have in's size. A grey image (c = 1) is stacked into three equal channels
// first, as the package does, and gives a 3-channel out (not in place). Returns 0 / -1 with a message (bad corruption, severity,
// channels, sizes; a libjpeg failure).
int corrupt_image(mv_image *out, const mv_image *in, int corruption, int severity, uint64_t seed);
// corrupt_image on an RGB image as a generator that read it in BGR order (OpenCV's imread, as
// HGFormer's Cityscapes-C script) would: the channels are swapped, corrupted and swapped back.
// jpeg_compression, saturate, snow, frost and spatter treat the channels differently and change
// (at severities 4-5 most); in the others only per-channel random draws land on other channels.
// Same contract as corrupt_image (a grey image has no channel order).
int corrupt_image_bgr(mv_image *out, const mv_image *in, int corruption, int severity, uint64_t seed);

// The per-image seed the converter uses: a function of the run's seed and the sample index,
// so any one image of a corrupted split can be regenerated alone.
uint64_t corrupt_image_seed(uint64_t seed, int64_t sample_index);

// `maskvim data corrupt --in SPLIT_DIR --out DIR --corruption NAME|LIST|all
//  --severity N|LIST|all --seed S [--threads T] [--bgr]`: writes DIR/<corruption>/<severity>/,
// one split per pair, with the labels unchanged.
int data_corrupt_main(int argc, char **argv);
