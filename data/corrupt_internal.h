// Shared by the corruption files. Every corruption except JPEG, brightness, contrast and
// saturate works in place on a double image x (h, w, 3) interleaved, values in [0, 1] (the
// package's x / 255; motion blur and frost: 0..255, as the package works); corrupt.c converts
// from and to uint8 with the package's truncating cast. Double, because the package computes in
// float64 and truncates: a flat region after a blur comes out a rounding error above or below
// its grey level, and only the same arithmetic keeps that grey level (float32 lost or gained
// one on whole flat areas).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "data/corrupt.h"
#include "core/error.h"
#include "core/huge_alloc.h"
#include "data/rng_stream.h"

// Whole-image buffers. A 2048x1024x3 double image is 50 MB, above glibc's largest mmap
// threshold (32 MB), so every malloc of it maps fresh 4 KiB pages and faults each one in again:
// 0.35 s per buffer on the development VM, more than the corruption itself. On huge pages
// it costs 0.01-0.04 s. Freed with free().
static inline void *cx_big(size_t bytes) {
    void *p = mv_huge_alloc(bytes ? bytes : 1);
    MV_CHECK(p, "out of memory allocating %zu bytes", bytes);
    return p;
}

// The random stream of a corruption: key (seed, corruption, sub-stream).
static inline uint32_t cx_purpose(int corruption, int sub) {
    return MV_RNG_CORRUPT | ((uint32_t)corruption << 8) | (uint32_t)sub;
}

// n normals N(mean, std): element i is a pure function of (seed, purpose, i).
void cx_fill_normal(float *dst, size_t n, uint64_t seed, uint32_t purpose, float mean, float std);
// n uniforms in [0, 1): element i from (seed, purpose, i).
void cx_fill_uniform(float *dst, size_t n, uint64_t seed, uint32_t purpose);

// skimage.filters.gaussian (scipy's gaussian_filter): separable, rows then columns, per channel,
// mode 'nearest', truncate 4 (radius int(4 sigma + 0.5)), in scipy's order of operations.
void cx_gaussian(double *x, int h, int w, int c, double sigma);
// The package's _motion_blur: a one-sided Gaussian of `radius` along the direction `angle`
// (degrees), edge pixels replicated, accumulated in the package's order. out and in must differ.
void cx_motion_blur_core(double *out, const double *in, int h, int w, int c, int radius, double sigma, double angle);
// numpy's sum of n doubles (pairwise summation), bit for bit.
double cx_np_sum(const double *a, int n);
// OpenCV's BORDER_REFLECT_101 index for i in any range (n >= 1).
int cx_reflect101(int i, int n);

// The corruptions (severity 1..5 already checked).
void cx_gaussian_noise(double *x, int h, int w, int s, uint64_t seed);
void cx_shot_noise(double *x, int h, int w, int s, uint64_t seed);
void cx_impulse_noise(double *x, int h, int w, int s, uint64_t seed);
void cx_speckle_noise(double *x, int h, int w, int s, uint64_t seed);
void cx_motion_blur(double *x, int h, int w, int s, uint64_t seed);
void cx_defocus_blur(double *x, int h, int w, int s);
void cx_glass_blur(double *x, int h, int w, int s, uint64_t seed);
void cx_gaussian_blur(double *x, int h, int w, int s);
void cx_snow(double *x, int h, int w, int s, uint64_t seed);
void cx_spatter(double *x, int h, int w, int s, uint64_t seed);
void cx_fog(double *x, int h, int w, int s, uint64_t seed);
void cx_frost(double *x, int h, int w, int s, uint64_t seed);
// brightness, contrast or saturate (the corruption's index) from uint8 to uint8 in double
// precision, as the package's float64 numpy code computes them; out may equal in.
void cx_digital_u8(uint8_t *out, const uint8_t *in, int h, int w, int corruption, int s);
// Encodes rgb (h, w, 3) as a baseline JPEG at `quality` with libjpeg and decodes it into out.
int cx_jpeg_roundtrip(uint8_t *out, const uint8_t *rgb, int h, int w, int quality);
// The procedural frost texture, (h, w, 3) in [0, 1].
void cx_frost_texture(float *tex, int h, int w, uint64_t seed);
