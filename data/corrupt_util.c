// Helpers shared by the corruptions: seeded noise fields, skimage's Gaussian filter, the
// package's motion-blur core, OpenCV's reflect-101 border and skimage's HSV conversion.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

void cx_fill_normal(float *dst, size_t n, uint64_t seed, uint32_t purpose, float mean, float std) {
    for (size_t b = 0; b * 4 < n; b++) {
        mv_rng4 r = philox4x32(seed, (uint32_t)b, (uint32_t)((uint64_t)b >> 32), purpose, 0);
        float z[4];
        for (int k = 0; k < 2; k++) {   // Box-Muller: two pairs of uniforms, four normals
            float rad = sqrtf(-2.0f * logf(rng_u01(r.v[2 * k]))), ang = 6.28318530718f * rng_u01(r.v[2 * k + 1]);
            z[2 * k] = rad * cosf(ang);
            z[2 * k + 1] = rad * sinf(ang);
        }
        for (int k = 0; k < 4 && b * 4 + k < n; k++) dst[b * 4 + k] = mean + std * z[k];
    }
}

void cx_fill_uniform(float *dst, size_t n, uint64_t seed, uint32_t purpose) {
    for (size_t b = 0; b * 4 < n; b++) {
        mv_rng4 r = philox4x32(seed, (uint32_t)b, (uint32_t)((uint64_t)b >> 32), purpose, 0);
        for (int k = 0; k < 4 && b * 4 + k < n; k++) dst[b * 4 + k] = (float)(r.v[k] >> 8) * (1.0f / 16777216.0f);
    }
}

int cx_reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

static inline int clampi(int i, int lo, int hi) { return i < lo ? lo : i > hi ? hi : i; }

void cx_gaussian(float *x, int h, int w, int c, float sigma) {
    if (sigma <= 0) return;
    int R = (int)(4.0f * sigma + 0.5f);
    float *k = mv_malloc((size_t)(2 * R + 1) * sizeof *k);
    double sum = 0;
    for (int i = -R; i <= R; i++) sum += k[i + R] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * R; i++) k[i] = (float)(k[i] / sum);
    size_t rowlen = (size_t)w * c;
    // rows: a padded copy of each row (edges replicated), then a tap-outer accumulation
    float *pad = mv_malloc((size_t)(w + 2 * R) * c * sizeof *pad);
    float *acc = mv_malloc(rowlen * sizeof *acc);
    for (int y = 0; y < h; y++) {
        float *row = x + (size_t)y * rowlen;
        for (int i = 0; i < w + 2 * R; i++)
            memcpy(pad + (size_t)i * c, row + (size_t)clampi(i - R, 0, w - 1) * c, (size_t)c * sizeof *pad);
        memset(acc, 0, rowlen * sizeof *acc);
        for (int t = 0; t <= 2 * R; t++) {
            const float *src = pad + (size_t)t * c;
            float kt = k[t];
            for (size_t i = 0; i < rowlen; i++) acc[i] += kt * src[i];
        }
        memcpy(row, acc, rowlen * sizeof *acc);
    }
    // columns: whole rows at a time from a copy of the image
    float *src = mv_malloc((size_t)h * rowlen * sizeof *src);
    memcpy(src, x, (size_t)h * rowlen * sizeof *src);
    for (int y = 0; y < h; y++) {
        float *row = x + (size_t)y * rowlen;
        memset(row, 0, rowlen * sizeof *row);
        for (int t = -R; t <= R; t++) {
            const float *s = src + (size_t)clampi(y + t, 0, h - 1) * rowlen;
            float kt = k[t + R];
            for (size_t i = 0; i < rowlen; i++) row[i] += kt * s[i];
        }
    }
    free(src);
    free(acc);
    free(pad);
    free(k);
}

void cx_motion_blur_core(float *out, const float *in, int h, int w, int c, int radius, float sigma, float angle) {
    int width = 2 * radius + 1;
    double ksum = 0, rad = angle * M_PI / 180.0;
    double *k = mv_malloc((size_t)width * sizeof *k);
    for (int i = 0; i < width; i++) ksum += k[i] = exp(-(double)i * i / (2.0 * sigma * sigma));
    memset(out, 0, (size_t)h * w * c * sizeof *out);
    int ntap = 0;   // taps before the motion leaves the image
    while (ntap < width) {
        int dy = -(int)ceil(ntap * sin(rad) - 0.5), dx = -(int)ceil(ntap * cos(rad) - 0.5);
        if (abs(dy) >= h || abs(dx) >= w) break;
        ntap++;
    }
    for (int y = 0; y < h; y++) {   // one output row at a time, so it stays in cache
        float *o = out + (size_t)y * w * c;
        for (int i = 0; i < ntap; i++) {
            int dy = -(int)ceil(i * sin(rad) - 0.5), dx = -(int)ceil(i * cos(rad) - 0.5);
            float kt = (float)(k[i] / ksum);
            // out(y, x) += k * in(clamp(y - dy), clamp(x - dx))
            int xa = clampi(dx, 0, w), xb = clampi(w + dx, 0, w);   // x - dx inside [0, w) for x in [xa, xb)
            const float *s = in + (size_t)clampi(y - dy, 0, h - 1) * w * c;
            for (int x = 0; x < xa; x++)
                for (int ch = 0; ch < c; ch++) o[x * c + ch] += kt * s[ch];
            const float *sm = s + (ptrdiff_t)(xa - dx) * c;
            for (int i2 = xa * c; i2 < xb * c; i2++) o[i2] += kt * sm[i2 - xa * c];
            for (int x = xb > xa ? xb : xa; x < w; x++)
                for (int ch = 0; ch < c; ch++) o[x * c + ch] += kt * s[(size_t)(w - 1) * c + ch];
        }
    }
    free(k);
}

void cx_rgb2hsv(float hsv[3], const float rgb[3]) {
    float r = rgb[0], g = rgb[1], b = rgb[2];
    float v = r > g ? r : g;
    v = v > b ? v : b;
    float mn = r < g ? r : g;
    mn = mn < b ? mn : b;
    float delta = v - mn, hue = 0;
    if (delta > 0) {
        // skimage assigns red, then green, then blue: the last channel equal to the max wins
        if (b == v) hue = 4.0f + (r - g) / delta;
        else if (g == v) hue = 2.0f + (b - r) / delta;
        else hue = (g - b) / delta;
        hue = hue / 6.0f;
        hue -= floorf(hue);
    }
    hsv[0] = hue;
    hsv[1] = delta > 0 ? delta / v : 0.0f;
    hsv[2] = v;
}

void cx_hsv2rgb(float rgb[3], const float hsv[3]) {
    float hh = hsv[0] * 6.0f, s = hsv[1], v = hsv[2];
    float hi = floorf(hh), f = hh - hi;
    float p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    int i = ((int)hi % 6 + 6) % 6;
    float r, g, b;
    switch (i) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
    }
    rgb[0] = r; rgb[1] = g; rgb[2] = b;
}
