// Training and test pipelines (see augment.h). The order of operations and every formula
// follow mmsegmentation / mmcv as recorded in DATASETS.md section 7; image data stays RGB (mmseg
// works in BGR and flips to RGB before normalising, which gives the same numbers, since the HSV
// conversion is symmetric in channel order).
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
    s->col_fx = mv_malloc(sizeof(float) * (size_t)s->cap_w);
}

void aug_scratch_free(mv_aug_scratch *s) {
    free(s->crop);
    free(s->row);
    free(s->col_src);
    free(s->col_x0);
    free(s->col_x1);
    free(s->col_fx);
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
    augment_fit_size(&p->new_h, &p->new_w, h, w, (int)(cfg->scale_long * p->ratio), (int)(cfg->scale_short * p->ratio));
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
// Resampling

// Bilinear taps (OpenCV INTER_LINEAR: half-pixel centres, border clamped) for output columns
// x0 .. x0+n-1 of a resize from `src` to `dst` pixels.
static void linear_taps(int *i0, int *i1, float *f, int x0, int n, int src, int dst) {
    double scale = (double)src / dst;
    for (int i = 0; i < n; i++) {
        double fx = (x0 + i + 0.5) * scale - 0.5;
        int sx = (int)floor(fx);
        double frac = fx - sx;
        if (sx < 0) { sx = 0; frac = 0; }
        if (sx >= src - 1) { sx = src - 1; frac = 0; }
        i0[i] = sx;
        i1[i] = sx + 1 < src ? sx + 1 : src - 1;
        f[i] = (float)frac;
    }
}

// Nearest taps (OpenCV INTER_NEAREST: floor(x * src / dst)).
static void nearest_taps(int *idx, int x0, int n, int src, int dst) {
    for (int i = 0; i < n; i++) idx[i] = image_nearest_index(x0 + i, src, dst);
}

static int nearest_row(int y, int src, int dst) { return image_nearest_index(y, src, dst); }

// One output row `y` (in the nh-row virtual image) over the columns prepared in scratch.
static void resample_row(uint8_t *out, const mv_image *rgb, int nh, int y, int ww, const mv_aug_scratch *s) {
    double fy = (y + 0.5) * ((double)rgb->h / nh) - 0.5;
    int sy = (int)floor(fy);
    float wy = (float)(fy - sy);
    if (sy < 0) { sy = 0; wy = 0; }
    if (sy >= rgb->h - 1) { sy = rgb->h - 1; wy = 0; }
    int sy1 = sy + 1 < rgb->h ? sy + 1 : rgb->h - 1;
    const uint8_t *r0 = rgb->px + (size_t)sy * rgb->w * 3, *r1 = rgb->px + (size_t)sy1 * rgb->w * 3;
    for (int x = 0; x < ww; x++) {
        const uint8_t *a = r0 + 3 * s->col_x0[x], *b = r0 + 3 * s->col_x1[x];
        const uint8_t *c = r1 + 3 * s->col_x0[x], *d = r1 + 3 * s->col_x1[x];
        float wx = s->col_fx[x];
        for (int ch = 0; ch < 3; ch++) {
            float top = a[ch] + wx * (float)(b[ch] - a[ch]);
            float bot = c[ch] + wx * (float)(d[ch] - c[ch]);
            float v = top + wy * (bot - top);
            out[3 * x + ch] = (uint8_t)(v + 0.5f);
        }
    }
}

void augment_resize_window(uint8_t *out, const mv_image *rgb, int nh, int nw, int y0, int x0, int wh, int ww,
                           mv_aug_scratch *s) {
    MV_CHECK(ww <= s->cap_w, "resize window %d wider than scratch %d", ww, s->cap_w);
    linear_taps(s->col_x0, s->col_x1, s->col_fx, x0, ww, rgb->w, nw);
    for (int y = 0; y < wh; y++) resample_row(out + (size_t)y * ww * 3, rgb, nh, y0 + y, ww, s);
}

// ---------------------------------------------------------------------------------------
// Colour

void augment_rgb_to_hsv(uint8_t hsv[3], const uint8_t rgb[3]) {
    int r = rgb[0], g = rgb[1], b = rgb[2];
    int v = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int diff = v - mn;
    int s = v ? (int)(diff * 255.0 / v + 0.5) : 0;
    double h = 0;
    if (diff) {
        if (v == r) h = (g - b) * 30.0 / diff;          // units of 2 degrees: 180 per turn
        else if (v == g) h = 60.0 + (b - r) * 30.0 / diff;
        else h = 120.0 + (r - g) * 30.0 / diff;
        if (h < 0) h += 180.0;
    }
    int hi = (int)(h + 0.5);
    hsv[0] = (uint8_t)(hi >= 180 ? hi - 180 : hi);
    hsv[1] = (uint8_t)s;
    hsv[2] = (uint8_t)v;
}

static uint8_t to_u8(float x) {
    float v = x * 255.0f + 0.5f;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

void augment_hsv_to_rgb(uint8_t rgb[3], const uint8_t hsv[3]) {
    float s = hsv[1] / 255.0f, v = hsv[2] / 255.0f;
    if (hsv[1] == 0) {
        rgb[0] = rgb[1] = rgb[2] = hsv[2];
        return;
    }
    float h = hsv[0] * (6.0f / 180.0f);
    while (h >= 6.0f) h -= 6.0f;
    int sector = (int)h;
    float f = h - sector;
    float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    float r, g, b;
    switch (sector) {
        case 0: r = v; g = t; b = p; break;
        case 1: r = q; g = v; b = p; break;
        case 2: r = p; g = v; b = t; break;
        case 3: r = p; g = q; b = v; break;
        case 4: r = t; g = p; b = v; break;
        default: r = v; g = p; b = q; break;
    }
    rgb[0] = to_u8(r);
    rgb[1] = to_u8(g);
    rgb[2] = to_u8(b);
}

// x <- uint8(clip(x * alpha + beta, 0, 255)) (numpy's float32 arithmetic and truncating cast).
static void convert_u8(uint8_t *px, size_t n, size_t stride, float alpha, float beta) {
    for (size_t i = 0; i < n; i++) {
        float v = (float)px[i * stride] * alpha + beta;
        px[i * stride] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

static void photometric(uint8_t *px, size_t n, const mv_aug_params *p) {
    if (p->brightness) convert_u8(px, n * 3, 1, 1.0f, p->beta);
    if (p->contrast && p->contrast_first) convert_u8(px, n * 3, 1, p->alpha, 0.0f);
    if (p->saturation) {
        for (size_t i = 0; i < n; i++) {
            uint8_t hsv[3];
            augment_rgb_to_hsv(hsv, px + 3 * i);
            float sv = hsv[1] * p->sat_alpha;
            hsv[1] = (uint8_t)(sv > 255 ? 255 : sv);
            augment_hsv_to_rgb(px + 3 * i, hsv);
        }
    }
    if (p->hue) {
        for (size_t i = 0; i < n; i++) {
            uint8_t hsv[3];
            augment_rgb_to_hsv(hsv, px + 3 * i);
            int h = ((int)hsv[0] + p->hue_delta) % 180;
            hsv[0] = (uint8_t)(h < 0 ? h + 180 : h);
            augment_hsv_to_rgb(px + 3 * i, hsv);
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
    photometric(s->crop, (size_t)ch * cw, p);
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
    linear_taps(s->col_x0, s->col_x1, s->col_fx, 0, ow, rgb->w, ow);
    size_t plane = (size_t)oh * ow;
    for (int y = 0; y < oh; y++) {
        resample_row(s->row, rgb, oh, y, ow, s);
        for (int c = 0; c < 3; c++) {
            float *o = out_img + c * plane + (size_t)y * ow;
            for (int x = 0; x < ow; x++) o[x] = lut[c][s->row[3 * x + c]];
        }
    }
}
