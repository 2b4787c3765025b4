// The blur corruptions: motion, defocus (anti-aliased disk), glass (blur, local pixel
// shuffling, blur) and Gaussian.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

void cx_motion_blur(float *x, int h, int w, int s, uint64_t seed) {
    static const int RADIUS[5] = {10, 15, 15, 15, 20};
    static const float SIGMA[5] = {3, 5, 8, 12, 15};
    rng_stream r = rng_stream_make(seed, 0, cx_purpose(CORRUPT_MOTION_BLUR, 0));
    float angle = rng_uniform(&r, -45.0f, 45.0f);
    size_t n = (size_t)h * w * 3;
    float *out = mv_malloc(n * sizeof *out);
    cx_motion_blur_core(out, x, h, w, 3, RADIUS[s - 1], SIGMA[s - 1], angle);
    memcpy(x, out, n * sizeof *x);
    free(out);
}

// OpenCV's getGaussianKernel for sigma > 0.
static void gauss_kernel(double *k, int ksize, double sigma) {
    double sum = 0;
    for (int i = 0; i < ksize; i++) {
        double d = i - (ksize - 1) / 2.0;
        sum += k[i] = exp(-d * d / (2 * sigma * sigma));
    }
    for (int i = 0; i < ksize; i++) k[i] /= sum;
}

// The package's disk(radius, alias_blur): a normalised disk on a (2L+1)^2 grid (L = 8 up to
// radius 8, else the radius), smoothed by OpenCV's GaussianBlur (3x3, or 5x5 beyond radius 8).
static int disk_kernel(float **out, int radius, float alias) {
    int L = radius <= 8 ? 8 : radius, n = 2 * L + 1, ks = radius <= 8 ? 3 : 5;
    double *d = mv_calloc((size_t)n * n, sizeof *d), *t = mv_calloc((size_t)n * n, sizeof *t), g[5];
    double sum = 0;
    for (int y = -L; y <= L; y++)
        for (int x = -L; x <= L; x++)
            if (x * x + y * y <= radius * radius) { d[(y + L) * n + x + L] = 1; sum += 1; }
    for (int i = 0; i < n * n; i++) d[i] /= sum;
    gauss_kernel(g, ks, alias);
    int hk = ks / 2;
    for (int y = 0; y < n; y++)   // separable, border reflect-101
        for (int x = 0; x < n; x++) {
            double a = 0;
            for (int j = -hk; j <= hk; j++) a += g[j + hk] * d[y * n + cx_reflect101(x + j, n)];
            t[y * n + x] = a;
        }
    float *k = mv_malloc((size_t)n * n * sizeof *k);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double a = 0;
            for (int j = -hk; j <= hk; j++) a += g[j + hk] * t[cx_reflect101(y + j, n) * n + x];
            k[y * n + x] = (float)a;
        }
    free(d);
    free(t);
    *out = k;
    return L;
}

void cx_defocus_blur(float *x, int h, int w, int s) {
    static const int RADIUS[5] = {3, 4, 6, 8, 10};
    static const float ALIAS[5] = {0.1f, 0.5f, 0.5f, 0.5f, 0.5f};
    float *k;
    int L = disk_kernel(&k, RADIUS[s - 1], ALIAS[s - 1]), n = 2 * L + 1;
    // OpenCV filter2D (a correlation) with reflect-101 borders, through a padded copy
    int pw = w + 2 * L, ph = h + 2 * L;
    float *pad = mv_malloc((size_t)ph * pw * 3 * sizeof *pad);
    for (int y = 0; y < ph; y++) {
        const float *src = x + (size_t)cx_reflect101(y - L, h) * w * 3;
        for (int xx = 0; xx < pw; xx++)
            memcpy(pad + ((size_t)y * pw + xx) * 3, src + (size_t)cx_reflect101(xx - L, w) * 3, 3 * sizeof *pad);
    }
    memset(x, 0, (size_t)h * w * 3 * sizeof *x);
    for (int y = 0; y < h; y++) {   // one output row at a time, so it stays in cache
        float *dst = x + (size_t)y * w * 3;
        for (int ky = 0; ky < n; ky++)
            for (int kx = 0; kx < n; kx++) {
                float kv = k[ky * n + kx];
                if (kv < 1e-12f) continue;   // beyond the smoothed rim (weights like exp(-50))
                const float *src = pad + ((size_t)(y + ky) * pw + kx) * 3;
                for (int i = 0; i < w * 3; i++) dst[i] += kv * src[i];
            }
    }
    free(pad);
    free(k);
}

void cx_glass_blur(float *x, int h, int w, int s, uint64_t seed) {
    static const float SIGMA[5] = {0.7f, 0.9f, 1.0f, 1.1f, 1.5f};
    static const int DELTA[5] = {1, 2, 2, 3, 4}, ITERS[5] = {2, 1, 3, 2, 2};
    float sigma = SIGMA[s - 1];
    int delta = DELTA[s - 1];
    size_t n = (size_t)h * w * 3;
    cx_gaussian(x, h, w, 3, sigma);
    uint8_t *u = mv_malloc(n);
    for (size_t i = 0; i < n; i++) {   // the package's uint8 cast (truncation)
        float v = x[i] * 255.0f;
        u[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    // Local shuffling, in the package's order (rows and columns descending). Its tuple "swap"
    // of numpy views copies the neighbour into (hh, ww) and leaves the neighbour unchanged.
    for (int it = 0; it < ITERS[s - 1]; it++)
        for (int hh = h - delta; hh > delta; hh--)
            for (int ww = w - delta; ww > delta; ww--) {
                mv_rng4 r = philox4x32(seed, (uint32_t)hh, (uint32_t)ww, cx_purpose(CORRUPT_GLASS_BLUR, it), 0);
                int dx = (int)(((uint64_t)r.v[0] * (uint64_t)(2 * delta)) >> 32) - delta;
                int dy = (int)(((uint64_t)r.v[1] * (uint64_t)(2 * delta)) >> 32) - delta;
                uint8_t *dst = u + ((size_t)hh * w + ww) * 3;
                const uint8_t *src = u + ((size_t)(hh + dy) * w + ww + dx) * 3;
                dst[0] = src[0]; dst[1] = src[1]; dst[2] = src[2];
            }
    for (size_t i = 0; i < n; i++) x[i] = (float)u[i] / 255.0f;
    free(u);
    cx_gaussian(x, h, w, 3, sigma);
}

void cx_gaussian_blur(float *x, int h, int w, int s) {
    static const float SIGMA[5] = {1, 2, 3, 4, 6};
    cx_gaussian(x, h, w, 3, SIGMA[s - 1]);
}
