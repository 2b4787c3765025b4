// Helpers shared by the corruptions: seeded noise fields, skimage's Gaussian filter, the
// package's motion-blur core and OpenCV's reflect-101 border.
// Compiled with -ffp-contract=off (CMakeLists.txt): numpy rounds every product, and a fused
// a * b + c can move a value across a whole number, i.e. a grey level.
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

double cx_np_sum(const double *a, int n) {
    // numpy's pairwise summation: plain below 8 elements, eight accumulators up to 128, halves
    // beyond (np.sum adds the result to its initial 0).
    if (n < 8) {
        double r = 0.;
        for (int i = 0; i < n; i++) r += a[i];
        return r;
    }
    if (n > 128) {
        int n2 = n / 2;
        n2 -= n2 % 8;
        return cx_np_sum(a, n2) + cx_np_sum(a + n2, n - n2);
    }
    double r[8];
    for (int j = 0; j < 8; j++) r[j] = a[j];
    int i = 8;
    for (; i < n - n % 8; i += 8)
        for (int j = 0; j < 8; j++) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[i];
    return 0. + res;
}

// One pass of scipy's correlate1d with a symmetric kernel (k[0] the centre, k[j] at +-j), mode
// 'nearest', along axis 0 (down each column) of src, h rows of `len` doubles: out(y) =
// src(y) k[0], then + (src(y - j) + src(y + j)) k[j] for j = R .. 1, outermost first, as scipy
// sums.
static void symm_pass_rows(double *out, const double *src, int h, size_t len, const double *k, int R) {
    for (int y = 0; y < h; y++) {
        double *o = out + (size_t)y * len;
        const double *c = src + (size_t)y * len;
        for (size_t i = 0; i < len; i++) o[i] = c[i] * k[0];
        for (int j = R; j >= 1; j--) {
            const double *a = src + (size_t)clampi(y - j, 0, h - 1) * len, *b = src + (size_t)clampi(y + j, 0, h - 1) * len;
            double kj = k[j];
            for (size_t i = 0; i < len; i++) o[i] += (a[i] + b[i]) * kj;
        }
    }
}

void cx_gaussian(double *x, int h, int w, int c, double sigma) {
    if (sigma <= 0) return;
    // scipy's _gaussian_kernel1d: exp(-0.5 / sigma^2 * i^2), divided by numpy's sum
    int R = (int)(4.0 * sigma + 0.5);
    double *full = mv_malloc((size_t)(2 * R + 1) * sizeof *full), *k = mv_malloc((size_t)(R + 1) * sizeof *k);
    double a = -0.5 / (sigma * sigma);
    for (int i = -R; i <= R; i++) full[i + R] = exp(a * (double)(i * i));
    double sum = cx_np_sum(full, 2 * R + 1);
    for (int j = 0; j <= R; j++) k[j] = full[R + j] / sum;
    size_t rowlen = (size_t)w * c;
    double *tmp = cx_big((size_t)h * rowlen * sizeof *tmp);
    // axis 0 (down the columns) first, as scipy's gaussian_filter
    symm_pass_rows(tmp, x, h, rowlen, k, R);
    // axis 1 (along each row), from a padded copy of the row (edges replicated)
    double *pad = mv_malloc((size_t)(w + 2 * R) * c * sizeof *pad);
    for (int y = 0; y < h; y++) {
        const double *row = tmp + (size_t)y * rowlen;
        double *o = x + (size_t)y * rowlen;
        for (int i = 0; i < w + 2 * R; i++)
            memcpy(pad + (size_t)i * c, row + (size_t)clampi(i - R, 0, w - 1) * c, (size_t)c * sizeof *pad);
        const double *ctr = pad + (size_t)R * c;
        for (size_t i = 0; i < rowlen; i++) o[i] = ctr[i] * k[0];
        for (int j = R; j >= 1; j--) {
            const double *l = ctr - (size_t)j * c, *r = ctr + (size_t)j * c;
            double kj = k[j];
            for (size_t i = 0; i < rowlen; i++) o[i] += (l[i] + r[i]) * kj;
        }
    }
    free(pad);
    free(tmp);
    free(k);
    free(full);
}

void cx_motion_blur_core(double *out, const double *in, int h, int w, int c, int radius, double sigma, double angle) {
    // The package's kernel: exp(-i^2 / (2 sigma^2)) / (sqrt(2 pi) sigma), divided by numpy's sum.
    int width = 2 * radius + 1;
    double *k = mv_malloc((size_t)width * sizeof *k);
    for (int i = 0; i < width; i++) k[i] = exp(-(double)(i * i) / (2 * (sigma * sigma))) / (sqrt(2 * M_PI) * sigma);
    double ksum = cx_np_sum(k, width);
    for (int i = 0; i < width; i++) k[i] /= ksum;
    // Its shifts: point = width (sin, cos) of the angle (numpy deg2rad: angle * (pi / 180)),
    // divided by its length.
    double rad = angle * (M_PI / 180.0), py = width * sin(rad), px = width * cos(rad), hyp = hypot(py, px);
    int *dys = mv_malloc((size_t)width * sizeof *dys), *dxs = mv_malloc((size_t)width * sizeof *dxs);
    int ntap = 0;   // taps before the motion leaves the image
    while (ntap < width) {
        int dy = -(int)ceil(ntap * py / hyp - 0.5), dx = -(int)ceil(ntap * px / hyp - 0.5);
        if (abs(dy) >= h || abs(dx) >= w) break;
        dys[ntap] = dy;
        dxs[ntap] = dx;
        ntap++;
    }
    // out(y, x) = sum over taps, in tap order from 0, of k * in(clamp(y - dy), clamp(x - dx)),
    // one output row at a time so it stays in cache
    for (int y = 0; y < h; y++) {
        double *o = out + (size_t)y * w * c;
        for (size_t i = 0; i < (size_t)w * c; i++) o[i] = 0.;
        for (int i = 0; i < ntap; i++) {
            int dy = dys[i], dx = dxs[i];
            double kt = k[i];
            int xa = clampi(dx, 0, w), xb = clampi(w + dx, 0, w);   // x - dx inside [0, w) for x in [xa, xb)
            const double *s = in + (size_t)clampi(y - dy, 0, h - 1) * w * c;
            for (int x = 0; x < xa; x++)
                for (int ch = 0; ch < c; ch++) o[x * c + ch] += kt * s[ch];
            const double *sm = s + (ptrdiff_t)(xa - dx) * c;
            for (int i2 = xa * c; i2 < xb * c; i2++) o[i2] += kt * sm[i2 - xa * c];
            for (int x = xb > xa ? xb : xa; x < w; x++)
                for (int ch = 0; ch < c; ch++) o[x * c + ch] += kt * s[(size_t)(w - 1) * c + ch];
        }
    }
    free(dxs);
    free(dys);
    free(k);
}
