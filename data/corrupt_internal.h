// Shared by the corruption files. Every corruption except JPEG works in place on a float
// image x (h, w, 3) interleaved, values in [0, 1] (the package's x / 255); corrupt.c converts
// from and to uint8 with the package's truncating cast.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "data/corrupt.h"
#include "data/rng_stream.h"

// The random stream of a corruption: key (seed, corruption, sub-stream).
static inline uint32_t cx_purpose(int corruption, int sub) {
    return MV_RNG_CORRUPT | ((uint32_t)corruption << 8) | (uint32_t)sub;
}

// n normals N(mean, std): element i is a pure function of (seed, purpose, i).
void cx_fill_normal(float *dst, size_t n, uint64_t seed, uint32_t purpose, float mean, float std);
// n uniforms in [0, 1): element i from (seed, purpose, i).
void cx_fill_uniform(float *dst, size_t n, uint64_t seed, uint32_t purpose);

// skimage.filters.gaussian: separable, per channel, mode 'nearest', truncate 4 (radius
// int(4 sigma + 0.5)).
void cx_gaussian(float *x, int h, int w, int c, float sigma);
// The package's _motion_blur: a one-sided Gaussian of `radius` along the direction `angle`
// (degrees), edge pixels replicated. out and in must differ.
void cx_motion_blur_core(float *out, const float *in, int h, int w, int c, int radius, float sigma, float angle);
// OpenCV's BORDER_REFLECT_101 index for i in any range (n >= 1).
int cx_reflect101(int i, int n);

// skimage rgb2hsv / hsv2rgb for one pixel.
void cx_rgb2hsv(float hsv[3], const float rgb[3]);
void cx_hsv2rgb(float rgb[3], const float hsv[3]);

// The corruptions (severity 1..5 already checked).
void cx_gaussian_noise(float *x, int h, int w, int s, uint64_t seed);
void cx_shot_noise(float *x, int h, int w, int s, uint64_t seed);
void cx_impulse_noise(float *x, int h, int w, int s, uint64_t seed);
void cx_speckle_noise(float *x, int h, int w, int s, uint64_t seed);
void cx_motion_blur(float *x, int h, int w, int s, uint64_t seed);
void cx_defocus_blur(float *x, int h, int w, int s);
void cx_glass_blur(float *x, int h, int w, int s, uint64_t seed);
void cx_gaussian_blur(float *x, int h, int w, int s);
void cx_brightness(float *x, int h, int w, int s);
void cx_contrast(float *x, int h, int w, int s);
void cx_saturate(float *x, int h, int w, int s);
void cx_snow(float *x, int h, int w, int s, uint64_t seed);
void cx_spatter(float *x, int h, int w, int s, uint64_t seed);
void cx_fog(float *x, int h, int w, int s, uint64_t seed);
void cx_frost(float *x, int h, int w, int s, uint64_t seed);
// Encodes rgb (h, w, 3) as a baseline JPEG at `quality` with libjpeg and decodes it into out.
int cx_jpeg_roundtrip(uint8_t *out, const uint8_t *rgb, int h, int w, int quality);
// The procedural frost texture, (h, w, 3) in [0, 1].
void cx_frost_texture(float *tex, int h, int w, uint64_t seed);
