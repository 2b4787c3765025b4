// The blur corruptions: motion, defocus (anti-aliased disk), glass (blur, local pixel
// shuffling, blur) and Gaussian.
// Compiled with -ffp-contract=off (CMakeLists.txt): numpy rounds every product, and a fused
// a * b + c can move a value across a whole number, i.e. a grey level.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

void cx_motion_blur(double *x, int h, int w, int s, uint64_t seed) {
    static const int RADIUS[5] = {10, 15, 15, 15, 20};
    static const double SIGMA[5] = {3, 5, 8, 12, 15};
    rng_stream r = rng_stream_make(seed, 0, cx_purpose(CORRUPT_MOTION_BLUR, 0));
    float angle = rng_uniform(&r, -45.0f, 45.0f);
    size_t n = (size_t)h * w * 3;
    // The package blurs the uint8 image itself (0..255; px / 255 * 255 is exact) and returns
    // clip(x, 0, 255): the result stays in 0..255 (corrupt.c knows).
    double *in = cx_big(n * sizeof *in);
    for (size_t i = 0; i < n; i++) in[i] = x[i] * 255.;
    cx_motion_blur_core(x, in, h, w, 3, RADIUS[s - 1], SIGMA[s - 1], angle);
    free(in);
}

// OpenCV's GaussianBlur kernel for sigma > 0 (getGaussianKernel): exp(-d^2 / (2 sigma^2))
// normalised by (1 + 2 * the sum of one side), rounded to float for a CV_32F image.
static void gauss_kernel(float *k, int ksize, double sigma) {
    int half = (ksize - 1) / 2;
    double v[3], sum = 0, scale = -0.125 / (sigma * sigma);
    for (int i = 0, t = 1 - ksize; i < half; i++, t += 2) sum += v[i] = exp((double)(t * t) * scale);
    sum = sum * 2 + 1;
    sum = 1 / sum;
    for (int i = 0; i < half; i++) k[i] = k[ksize - 1 - i] = (float)(v[i] * sum);
    k[half] = (float)sum;
}

// The package's disk(radius, alias_blur) in float32, as numpy and OpenCV build it: ones on the
// disk of a (2L+1)^2 grid (L = 8 up to radius 8, else the radius) divided by their float32 sum,
// then OpenCV's GaussianBlur (3x3, or 5x5 beyond radius 8; rows, then columns, reflect-101) in
// float32. Its weights sum to 1 only to float32 precision (1 - 4e-9 at severity 1), which
// decides whether a flat region keeps its grey level under the truncating cast, so the float32
// rounding is kept, and with it the order of OpenCV's operations on x86-64 with AVX2 (its
// separable filter's vector and tail code, fused multiply-adds included): a kernel weight
// rounded otherwise differs by one unit in the last place, and a pixel by one grey level.
// The five kernels are bit for bit those of cv2.GaussianBlur (4.6, AVX2).
static int disk_kernel(double **out, int radius, double alias) {
    int L = radius <= 8 ? 8 : radius, n = 2 * L + 1, ks = radius <= 8 ? 3 : 5;
    float *d = mv_calloc((size_t)n * n, sizeof *d), *t = mv_calloc((size_t)n * n, sizeof *t), g[5];
    float count = 0;
    for (int y = -L; y <= L; y++)
        for (int x = -L; x <= L; x++)
            if (x * x + y * y <= radius * radius) { d[(y + L) * n + x + L] = 1; count += 1; }
    for (int i = 0; i < n * n; i++) d[i] /= count;
    gauss_kernel(g, ks, alias);
    const float *k = g + ks / 2;   // k[0] the centre weight, k[j] the pair at distance j
    // Rows. Every element but the last is made by the vector loop (or the pairwise loop after it,
    // which rounds the same way); the row's odd length leaves its last element to the scalar tail,
    // which accumulates from the centre outwards.
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            const float *r = d + (size_t)y * n;
            float c = r[x], p1 = r[cx_reflect101(x - 1, n)] + r[cx_reflect101(x + 1, n)];
            float p2 = ks == 5 ? r[cx_reflect101(x - 2, n)] + r[cx_reflect101(x + 2, n)] : 0, a;
            if (x < n - 1) {
                a = fmaf(c, k[0], p1 * k[1]);
                if (ks == 5) a = fmaf(p2, k[2], a);
            } else {
                a = fmaf(k[1], p1, k[0] * c);
                if (ks == 5) a = fmaf(k[2], p2, a);
            }
            t[(size_t)y * n + x] = a;
        }
    // Columns: the 3-tap filter fuses the pair into the rounded centre product; the 5-tap one
    // starts from the centre product and fuses the pairs in turn. Vector and tail code agree.
    double *kern = mv_malloc((size_t)n * n * sizeof *kern);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            float c = t[(size_t)y * n + x];
            float p1 = t[(size_t)cx_reflect101(y - 1, n) * n + x] + t[(size_t)cx_reflect101(y + 1, n) * n + x];
            float a = fmaf(p1, k[1], c * k[0]);
            if (ks == 5)
                a = fmaf(t[(size_t)cx_reflect101(y - 2, n) * n + x] + t[(size_t)cx_reflect101(y + 2, n) * n + x], k[2], a);
            kern[(size_t)y * n + x] = a;
        }
    free(d);
    free(t);
    *out = kern;
    return L;
}

void cx_defocus_blur(double *x, int h, int w, int s) {
    static const int RADIUS[5] = {3, 4, 6, 8, 10};
    static const double ALIAS[5] = {0.1, 0.5, 0.5, 0.5, 0.5};   // Python floats, as the package passes them
    double *k;
    int L = disk_kernel(&k, RADIUS[s - 1], ALIAS[s - 1]), n = 2 * L + 1;
    // OpenCV filter2D (a correlation) of the float64 image with the float32 kernel, reflect-101
    // borders, through a padded copy
    int pw = w + 2 * L, ph = h + 2 * L;
    double *pad = cx_big((size_t)ph * pw * 3 * sizeof *pad);
    for (int y = 0; y < ph; y++) {
        const double *src = x + (size_t)cx_reflect101(y - L, h) * w * 3;
        for (int xx = 0; xx < pw; xx++)
            memcpy(pad + ((size_t)y * pw + xx) * 3, src + (size_t)cx_reflect101(xx - L, w) * 3, 3 * sizeof *pad);
    }
    memset(x, 0, (size_t)h * w * 3 * sizeof *x);
    for (int y = 0; y < h; y++) {   // one output row at a time, so it stays in cache
        double *dst = x + (size_t)y * w * 3;
        for (int ky = 0; ky < n; ky++)
            for (int kx = 0; kx < n; kx++) {
                double kv = k[ky * n + kx];
                if (kv == 0) continue;   // float32 weights beyond the smoothed rim underflow to 0
                const double *src = pad + ((size_t)(y + ky) * pw + kx) * 3;
                for (int i = 0; i < w * 3; i++) dst[i] += kv * src[i];
            }
    }
    free(pad);
    free(k);
}

void cx_glass_blur(double *x, int h, int w, int s, uint64_t seed) {
    static const double SIGMA[5] = {0.7, 0.9, 1, 1.1, 1.5};
    static const int DELTA[5] = {1, 2, 2, 3, 4}, ITERS[5] = {2, 1, 3, 2, 2};
    double sigma = SIGMA[s - 1];
    int delta = DELTA[s - 1];
    size_t n = (size_t)h * w * 3;
    cx_gaussian(x, h, w, 3, sigma);
    uint8_t *u = mv_malloc(n);
    for (size_t i = 0; i < n; i++) {   // the package's uint8 cast (truncation)
        double v = x[i] * 255;
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
    for (size_t i = 0; i < n; i++) x[i] = u[i] / 255.;
    free(u);
    cx_gaussian(x, h, w, 3, sigma);
}

void cx_gaussian_blur(double *x, int h, int w, int s) {
    static const double SIGMA[5] = {1, 2, 3, 4, 6};
    cx_gaussian(x, h, w, 3, SIGMA[s - 1]);
}
