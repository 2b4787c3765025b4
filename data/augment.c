// Training and test pipelines (see augment.h). The order of operations and every formula
// follow mmsegmentation / mmcv as docs/data.md records them, and the uint8 steps give
// OpenCV 4.6's bytes. Image data stays RGB (mmseg works in BGR and flips to RGB before
// normalising): resizing and brightness/contrast are per channel, and the HSV conversions take
// red, green and blue by name, so the numbers are the same.
#include "data/augment.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/rng.h"

void augment_default_config(mv_aug_config *cfg, int crop_h, int crop_w) {
    *cfg = (mv_aug_config){
        .crop_h = crop_h, .crop_w = crop_w, .scale_long = 2048, .scale_short = 1024, .ratio_min = 0.5f,
        .ratio_max = 2.0f, .cat_max_ratio = 0.75f, .flip_prob = 0.5f, .photometric = 1,
        .mean = {123.675f, 116.28f, 103.53f}, .std = {58.395f, 57.12f, 57.375f}};
}

void aug_scratch_alloc(mv_aug_scratch *s, const mv_aug_config *cfg, int max_w) {
    memset(s, 0, sizeof *s);
    s->cap_w = max_w > cfg->crop_w ? max_w : cfg->crop_w;
    s->crop = mv_malloc((size_t)cfg->crop_h * cfg->crop_w * 3);
    s->row = mv_malloc((size_t)s->cap_w * 3);
    s->col_src = mv_malloc(sizeof(int) * (size_t)s->cap_w);
    s->col_x0 = mv_malloc(sizeof(int) * (size_t)s->cap_w);
    s->col_x1 = mv_malloc(sizeof(int) * (size_t)s->cap_w);
    s->col_a = mv_malloc(sizeof(int16_t) * 2 * (size_t)s->cap_w);
    for (int k = 0; k < 2; k++) {
        s->hrow[k] = mv_malloc(sizeof(int32_t) * 3 * (size_t)s->cap_w);
        s->hrow_y[k] = -1;
    }
}

void aug_scratch_free(mv_aug_scratch *s) {
    free(s->crop);
    free(s->row);
    free(s->col_src);
    free(s->col_x0);
    free(s->col_x1);
    free(s->col_a);
    free(s->hrow[0]);
    free(s->hrow[1]);
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------------------------------
// Random draws

typedef struct {
    uint64_t seed;
    uint32_t epoch, key_lo, key_hi;
} aug_key;

static mv_rng4 draw(const aug_key *k, uint32_t block) {
    return philox4x32(k->seed, k->epoch, k->key_lo, MV_RNG_AUGMENT | (k->key_hi & 0xFFFFFFu), block);
}

// Uniform integer in [0, n].
static int uniform_int(uint32_t bits, int n) { return (int)(((uint64_t)bits * (uint64_t)(n + 1)) >> 32); }

void augment_fit_size(int *out_h, int *out_w, int h, int w, int scale_long, int scale_short) {
    int lo = scale_long > scale_short ? scale_short : scale_long, hi = scale_long > scale_short ? scale_long : scale_short;
    double f_long = (double)hi / (h > w ? h : w), f_short = (double)lo / (h > w ? w : h);
    double f = f_long < f_short ? f_long : f_short;
    *out_w = (int)(w * f + 0.5);
    *out_h = (int)(h * f + 0.5);
    if (*out_w < 1) *out_w = 1;
    if (*out_h < 1) *out_h = 1;
}

void augment_draw(mv_aug_params *p, const mv_aug_config *cfg, int h, int w, uint64_t seed, uint32_t epoch,
                  uint64_t sample_key) {
    aug_key k = {seed, epoch, (uint32_t)sample_key, (uint32_t)(sample_key >> 32)};
    mv_rng4 b0 = draw(&k, 0), b1 = draw(&k, 1), b2 = draw(&k, 2);
    memset(p, 0, sizeof *p);
    p->ratio = cfg->ratio_min + (cfg->ratio_max - cfg->ratio_min) * rng_u01(b0.v[0]);
    // mmcv: int(scale * ratio) with Python floats; a float product truncates differently for
    // about 1 ratio in 10^4 at scales that are not powers of two (1280, 1920).
    augment_fit_size(&p->new_h, &p->new_w, h, w, (int)(cfg->scale_long * (double)p->ratio),
                     (int)(cfg->scale_short * (double)p->ratio));
    p->flip = rng_u01(b0.v[1]) < cfg->flip_prob;
    if (cfg->photometric) {
        p->brightness = rng_u01(b0.v[2]) < 0.5f;
        p->beta = -32.0f + 64.0f * rng_u01(b0.v[3]);
        p->contrast_first = rng_u01(b1.v[0]) >= 0.5f;
        p->contrast = rng_u01(b1.v[1]) < 0.5f;
        p->alpha = 0.5f + rng_u01(b1.v[2]);
        p->saturation = rng_u01(b1.v[3]) < 0.5f;
        p->sat_alpha = 0.5f + rng_u01(b2.v[0]);
        p->hue = rng_u01(b2.v[1]) < 0.5f;
        p->hue_delta = -18 + uniform_int(b2.v[2], 35);  // [-18, 17], numpy's exclusive upper bound
    }
    p->crop_h = cfg->crop_h < p->new_h ? cfg->crop_h : p->new_h;
    p->crop_w = cfg->crop_w < p->new_w ? cfg->crop_w : p->new_w;
}

// ---------------------------------------------------------------------------------------
// Resampling: OpenCV 4.6's INTER_LINEAR for 8-bit images (resize.cpp: resizeGeneric_ with
// HResizeLinear and VResizeLinear, weights in 11-bit fixed point). OpenCV does not switch to
// another method for these sizes except at exactly 2x down both ways (INTER_AREA), where the
// two give the same bytes ((a + b + c + d + 2) >> 2).

#define LINEAR_BITS 11
#define LINEAR_ONE (1 << LINEAR_BITS)

// Source tap and weights of output index i of a resize from `src` to `dst` samples, as OpenCV
// computes them: scale = 1 / (dst / src) in double, f = (float)((i + 0.5) * scale - 0.5),
// sx = floor(f), weights round((1 - frac) * 2048) and round(frac * 2048) from the float
// fraction. Columns (clamp = 1) put all the weight on the first or last sample at the borders;
// rows (clamp = 0) keep their weights and read the first or last row twice instead.
static void linear_tap(int *sx_out, int16_t a[2], int i, int src, int dst, int clamp) {
    double scale = 1.0 / ((double)dst / src);
    volatile double pos = (i + 0.5) * scale;  // rounded before the subtraction (no fused multiply-add)
    float f = (float)(pos - 0.5);
    int sx = (int)floorf(f);
    f -= (float)sx;
    if (clamp && sx < 0) { sx = 0; f = 0.0f; }
    if (clamp && sx >= src - 1) { sx = src - 1; f = 0.0f; }
    *sx_out = sx;
    a[0] = (int16_t)lrintf((1.0f - f) * LINEAR_ONE);
    a[1] = (int16_t)lrintf(f * LINEAR_ONE);
}

// Taps for output columns x0 .. x0+n-1 (byte offsets of the two source pixels, weights).
static void linear_taps(mv_aug_scratch *s, int x0, int n, int src, int dst) {
    for (int i = 0; i < n; i++) {
        int sx;
        linear_tap(&sx, s->col_a + 2 * i, x0 + i, src, dst, 1);
        s->col_x0[i] = 3 * sx;
        s->col_x1[i] = 3 * (sx + 1 < src ? sx + 1 : src - 1);
    }
    s->hrow_y[0] = s->hrow_y[1] = -1;
}

// Nearest taps (OpenCV INTER_NEAREST: floor(x * src / dst)).
static void nearest_taps(int *idx, int x0, int n, int src, int dst) {
    for (int i = 0; i < n; i++) idx[i] = image_nearest_index(x0 + i, src, dst);
}

static int nearest_row(int y, int src, int dst) { return image_nearest_index(y, src, dst); }

// Horizontal pass of source row sy into slot k: exact sums sample * weight (scale 2048).
static void hresize_row(mv_aug_scratch *s, int k, const mv_image *rgb, int sy, int ww) {
    const uint8_t *row = rgb->px + (size_t)sy * rgb->w * 3;
    int32_t *d = s->hrow[k];
    for (int x = 0; x < ww; x++) {
        const uint8_t *p = row + s->col_x0[x], *q = row + s->col_x1[x];
        int a0 = s->col_a[2 * x], a1 = s->col_a[2 * x + 1];
        d[3 * x + 0] = p[0] * a0 + q[0] * a1;
        d[3 * x + 1] = p[1] * a0 + q[1] * a1;
        d[3 * x + 2] = p[2] * a0 + q[2] * a1;
    }
    s->hrow_y[k] = sy;
}

// Output row y (of the nh x nw virtual image) over the window columns x0 .. x0+ww-1 prepared
// by linear_taps. OpenCV's vertical pass for 8 bits (VResizeLinear's uchar specialisation and
// its SIMD code, which agree) drops 4 bits of each horizontal sum first:
// (((D0 >> 4) * b0 >> 16) + ((D1 >> 4) * b1 >> 16) + 2) >> 2.
static void resample_row(uint8_t *out, const mv_image *rgb, int nh, int y, int ww, mv_aug_scratch *s) {
    int sy;
    int16_t b[2];
    linear_tap(&sy, b, y, rgb->h, nh, 0);
    int sy1 = sy + 1;
    sy = sy < 0 ? 0 : sy > rgb->h - 1 ? rgb->h - 1 : sy;
    sy1 = sy1 < 0 ? 0 : sy1 > rgb->h - 1 ? rgb->h - 1 : sy1;
    int k0 = s->hrow_y[0] == sy ? 0 : s->hrow_y[1] == sy ? 1 : -1;
    if (k0 < 0) {
        k0 = s->hrow_y[0] == sy1 ? 1 : 0;
        hresize_row(s, k0, rgb, sy, ww);
    }
    int k1 = k0;
    if (sy1 != sy) {
        k1 = 1 - k0;
        if (s->hrow_y[k1] != sy1) hresize_row(s, k1, rgb, sy1, ww);
    }
    const int32_t *d0 = s->hrow[k0], *d1 = s->hrow[k1];
    int n = ww * 3, b0 = b[0], b1 = b[1];
    for (int j = 0; j < n; j++) out[j] = (uint8_t)(((((d0[j] >> 4) * b0) >> 16) + (((d1[j] >> 4) * b1) >> 16) + 2) >> 2);
}

void augment_resize_window(uint8_t *out, const mv_image *rgb, int nh, int nw, int y0, int x0, int wh, int ww,
                           mv_aug_scratch *s) {
    MV_CHECK(ww <= s->cap_w, "resize window %d wider than scratch %d", ww, s->cap_w);
    linear_taps(s, x0, ww, rgb->w, nw);
    for (int y = 0; y < wh; y++) resample_row(out + (size_t)y * ww * 3, rgb, nh, y0 + y, ww, s);
}

// ---------------------------------------------------------------------------------------
// Colour: OpenCV 4.6's 8-bit HSV (color_hsv.simd.hpp, RGB2HSV_b and HSV2RGB_b).

#define HSV_SHIFT 12
static int hsv_sdiv[256], hsv_hdiv[256];  // round((255 << 12) / i), round((180 << 12) / (6 i))

__attribute__((constructor)) static void hsv_tables(void) {
    for (int i = 1; i < 256; i++) {
        hsv_sdiv[i] = (int)lrint((double)(255 << HSV_SHIFT) / i);
        hsv_hdiv[i] = (int)lrint((double)(180 << HSV_SHIFT) / (6.0 * i));
    }
}

void augment_rgb_to_hsv(uint8_t hsv[3], const uint8_t rgb[3]) {
    int r = rgb[0], g = rgb[1], b = rgb[2];
    int v = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int diff = v - mn;
    int s = (diff * hsv_sdiv[v] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
    int h = v == r ? g - b : v == g ? b - r + 2 * diff : r - g + 4 * diff;  // sixths of a turn, times diff
    h = (h * hsv_hdiv[diff] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;      // arithmetic shift, as OpenCV
    if (h < 0) h += 180;
    hsv[0] = (uint8_t)h;
    hsv[1] = (uint8_t)s;
    hsv[2] = (uint8_t)v;
}

// A product of two floats, rounded to float before any further use: the volatile keeps the
// compiler (-march=native) from fusing it into a multiply-add where OpenCV rounds it.
static inline float fmul(float a, float b) {
    volatile float p = a * b;
    return p;
}

// HSV2RGB_b's float maths, scaled back to 0..255 (before the final rounding or truncation).
// OpenCV's AVX2 build computes 1 - s * h as one fused multiply-add in both its vector and its
// plain C path, and 1 - s * (1 - h) fused in the vector path only (vector: 1, found by
// comparing all inputs with cv2); every other product is rounded to float.
static void hsv_to_rgb_float(float out[3], const uint8_t hsv[3], int vector) {
    static const uint8_t pick[6][3] = {{0, 3, 1}, {2, 0, 1}, {1, 0, 3}, {1, 2, 0}, {3, 1, 0}, {0, 1, 2}};  // r, g, b
    float s = fmul((float)hsv[1], 1.0f / 255.0f), v = fmul((float)hsv[2], 1.0f / 255.0f);
    float h = fmul((float)hsv[0], 6.0f / 180.0f);
    int whole = (int)h;
    h -= (float)whole;
    int sector = whole % 6;
    float t2 = fmaf(-s, h, 1.0f);
    float t3 = vector ? fmaf(-s, 1.0f - h, 1.0f) : 1.0f - fmul(s, 1.0f - h);
    float tab[4] = {v, fmul(v, 1.0f - s), fmul(v, t2), fmul(v, t3)};
    for (int c = 0; c < 3; c++) out[c] = fmul(tab[pick[sector][c]], 255.0f);
}

void augment_hsv_to_rgb(uint8_t rgb[3], const uint8_t hsv[3]) {
    float f[3];
    hsv_to_rgb_float(f, hsv, 0);
    for (int c = 0; c < 3; c++) {
        long v = lrintf(f[c]);  // saturate_cast<uchar>: nearest, ties to even
        rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

// cvtColor's vector path: 32 pixels at a time with AVX2, truncating.
#define HSV_VECTOR_PIXELS 32

static void hsv_to_rgb_trunc(uint8_t rgb[3], const uint8_t hsv[3]) {
    float f[3];
    hsv_to_rgb_float(f, hsv, 1);
    for (int c = 0; c < 3; c++) {
        int v = (int)f[c];
        rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

void augment_hsv_to_rgb_row(uint8_t *rgb, const uint8_t *hsv, int w) {
    int nv = w / HSV_VECTOR_PIXELS * HSV_VECTOR_PIXELS;
    for (int x = 0; x < nv; x++) hsv_to_rgb_trunc(rgb + 3 * x, hsv + 3 * x);
    for (int x = nv; x < w; x++) augment_hsv_to_rgb(rgb + 3 * x, hsv + 3 * x);
}

// x <- uint8(clip(x * alpha + beta, 0, 255)) (numpy's float32 arithmetic and truncating cast).
static void convert_u8(uint8_t *px, size_t n, size_t stride, float alpha, float beta) {
    for (size_t i = 0; i < n; i++) {
        float v = (float)px[i * stride] * alpha + beta;
        px[i * stride] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

// One pixel of the HSV round trip at column x of a row of w pixels: cvtColor converts a row's
// first 32 * (w / 32) pixels in its vector path, the rest in plain C. mmseg flips the crop
// before this step and this pipeline after it, so a flipped crop counts columns from the right.
static void hsv_back(uint8_t rgb[3], const uint8_t hsv[3], int x, int w, int flip) {
    int pos = flip ? w - 1 - x : x;
    if (pos < w / HSV_VECTOR_PIXELS * HSV_VECTOR_PIXELS) hsv_to_rgb_trunc(rgb, hsv);
    else augment_hsv_to_rgb(rgb, hsv);
}

// mmseg's PhotoMetricDistortion on an image of h rows of w pixels.
static void photometric(uint8_t *px, int h, int w, int flip, const mv_aug_params *p) {
    size_t n = (size_t)h * w;
    if (p->brightness) convert_u8(px, n * 3, 1, 1.0f, p->beta);
    if (p->contrast && p->contrast_first) convert_u8(px, n * 3, 1, p->alpha, 0.0f);
    if (p->saturation) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t hsv[3], *q = px + 3 * ((size_t)y * w + x);
                augment_rgb_to_hsv(hsv, q);
                float sv = hsv[1] * p->sat_alpha;
                hsv[1] = (uint8_t)(sv > 255 ? 255 : sv);
                hsv_back(q, hsv, x, w, flip);
            }
    }
    if (p->hue) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t hsv[3], *q = px + 3 * ((size_t)y * w + x);
                augment_rgb_to_hsv(hsv, q);
                int hh = ((int)hsv[0] + p->hue_delta) % 180;
                hsv[0] = (uint8_t)(hh < 0 ? hh + 180 : hh);
                hsv_back(q, hsv, x, w, flip);
            }
    }
    if (p->contrast && !p->contrast_first) convert_u8(px, n * 3, 1, p->alpha, 0.0f);
}

// ---------------------------------------------------------------------------------------
// Pipelines

// Category check of mmseg's RandomCrop on the crop window of the virtually rescaled label:
// more than one class, and the largest class under cat_max_ratio of the non-ignored pixels.
static int crop_ok(const mv_image *label, int nh, int y0, int wh, int ww, const int *col_src, float max_ratio) {
    int64_t count[256] = {0};
    for (int y = 0; y < wh; y++) {
        const uint8_t *row = label->px + (size_t)nearest_row(y0 + y, label->h, nh) * label->w;
        for (int x = 0; x < ww; x++) count[row[col_src[x]]]++;
    }
    int64_t total = 0, top = 0;
    int classes = 0;
    for (int c = 0; c < 255; c++) {
        if (!count[c]) continue;
        classes++;
        total += count[c];
        if (count[c] > top) top = count[c];
    }
    return classes > 1 && (double)top / (double)total < max_ratio;
}

void augment_train(float *out_img, uint8_t *out_lab, mv_aug_params *params, const mv_image *rgb, const mv_image *label,
                   const mv_aug_config *cfg, uint64_t seed, uint32_t epoch, uint64_t sample_key, mv_aug_scratch *s) {
    mv_aug_params local;
    mv_aug_params *p = params ? params : &local;
    augment_draw(p, cfg, rgb->h, rgb->w, seed, epoch, sample_key);
    aug_key k = {seed, epoch, (uint32_t)sample_key, (uint32_t)(sample_key >> 32)};
    int nh = p->new_h, nw = p->new_w, ch = p->crop_h, cw = p->crop_w;
    int margin_h = nh - ch, margin_w = nw - cw;

    // Random crop, re-drawn up to 10 times while the category check fails (the 11th box is kept).
    int tries = cfg->cat_max_ratio < 1.0f ? 10 : 0;
    for (int t = 0;; t++) {
        mv_rng4 b = draw(&k, 3 + (uint32_t)t);
        p->crop_y = uniform_int(b.v[0], margin_h);
        p->crop_x = uniform_int(b.v[1], margin_w);
        p->crop_checks = t + 1;
        if (t == tries) break;
        nearest_taps(s->col_src, p->crop_x, cw, label->w, nw);
        if (crop_ok(label, nh, p->crop_y, ch, cw, s->col_src, cfg->cat_max_ratio)) break;
    }

    // Image: resample the crop window, photometric distortion, then flip + normalise + pad.
    augment_resize_window(s->crop, rgb, nh, nw, p->crop_y, p->crop_x, ch, cw, s);
    photometric(s->crop, ch, cw, p->flip, p);
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v - cfg->mean[c]) / cfg->std[c];
    size_t plane = (size_t)cfg->crop_h * cfg->crop_w;
    for (int c = 0; c < 3; c++) {
        float *o = out_img + c * plane;
        for (int y = 0; y < cfg->crop_h; y++) {
            float *orow = o + (size_t)y * cfg->crop_w;
            if (y >= ch) {
                memset(orow, 0, sizeof(float) * (size_t)cfg->crop_w);
                continue;
            }
            const uint8_t *crow = s->crop + (size_t)y * cw * 3;
            for (int x = 0; x < cw; x++) orow[x] = lut[c][crow[3 * (p->flip ? cw - 1 - x : x) + c]];
            for (int x = cw; x < cfg->crop_w; x++) orow[x] = 0.0f;
        }
    }
    // Label: nearest rescale of the same window, flipped, padded with ignore.
    nearest_taps(s->col_src, p->crop_x, cw, label->w, nw);
    for (int y = 0; y < cfg->crop_h; y++) {
        uint8_t *orow = out_lab + (size_t)y * cfg->crop_w;
        if (y >= ch) {
            memset(orow, 255, (size_t)cfg->crop_w);
            continue;
        }
        const uint8_t *src = label->px + (size_t)nearest_row(p->crop_y + y, label->h, nh) * label->w;
        for (int x = 0; x < cw; x++) orow[x] = src[s->col_src[p->flip ? cw - 1 - x : x]];
        memset(orow + cw, 255, (size_t)(cfg->crop_w - cw));
    }
}

void augment_test(float *out_img, const mv_image *rgb, int oh, int ow, const mv_aug_config *cfg, mv_aug_scratch *s) {
    MV_CHECK(ow <= s->cap_w, "test image width %d exceeds scratch %d", ow, s->cap_w);
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v - cfg->mean[c]) / cfg->std[c];
    linear_taps(s, 0, ow, rgb->w, ow);
    size_t plane = (size_t)oh * ow;
    for (int y = 0; y < oh; y++) {
        resample_row(s->row, rgb, oh, y, ow, s);
        for (int c = 0; c < 3; c++) {
            float *o = out_img + c * plane + (size_t)y * ow;
            for (int x = 0; x < ow; x++) o[x] = lut[c][s->row[3 * x + c]];
        }
    }
}
