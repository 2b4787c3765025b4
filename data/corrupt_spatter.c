// spatter: water drops (severities 1-3) or mud (4-5) on the lens. The water path follows the
// package's OpenCV pipeline step by step, re-implemented here: Canny edges of the liquid mask,
// the 5x5 chamfer distance transform (OpenCV's DIST_L2 mask 5), truncation at 20, box blur,
// histogram equalisation, an emboss-like 3x3 filter and a second box blur.
// Compiled with -ffp-contract=off (CMakeLists.txt): numpy rounds every product, and a fused
// a * b + c can move a value across a whole number, i.e. a grey level.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

static inline uint8_t sat_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }
static inline int clampi(int i, int lo, int hi) { return i < lo ? lo : i > hi ? hi : i; }

// OpenCV Canny (aperture 3, L1 gradient), edges = 1 in `edge`.
static void canny(uint8_t *edge, const uint8_t *img, int h, int w, int low, int high) {
    int W2 = w + 2;
    int *mag = mv_calloc((size_t)(h + 2) * W2, sizeof *mag);   // zero border
    short *gx = mv_malloc((size_t)h * w * sizeof *gx), *gy = mv_malloc((size_t)h * w * sizeof *gy);
    for (int y = 0; y < h; y++)   // Sobel 3x3, replicated border
        for (int x = 0; x < w; x++) {
            const uint8_t *a = img + (size_t)clampi(y - 1, 0, h - 1) * w, *b = img + (size_t)y * w, *c = img + (size_t)clampi(y + 1, 0, h - 1) * w;
            int xl = clampi(x - 1, 0, w - 1), xr = clampi(x + 1, 0, w - 1);
            int dx = (a[xr] + 2 * b[xr] + c[xr]) - (a[xl] + 2 * b[xl] + c[xl]);
            int dy = (c[xl] + 2 * c[x] + c[xr]) - (a[xl] + 2 * a[x] + a[xr]);
            gx[(size_t)y * w + x] = (short)dx;
            gy[(size_t)y * w + x] = (short)dy;
            mag[(size_t)(y + 1) * W2 + x + 1] = abs(dx) + abs(dy);
        }
    // map: 0 maybe-edge, 1 not an edge, 2 edge; one-pixel border of 1
    uint8_t *map = mv_malloc((size_t)(h + 2) * W2);
    memset(map, 1, (size_t)(h + 2) * W2);
    size_t *stack = mv_malloc((size_t)h * w * sizeof *stack), top = 0;
    const int TG22 = (int)(0.4142135623730950488 * (1 << 15) + 0.5);
    for (int y = 0; y < h; y++) {
        int prev_flag = 0;
        for (int x = 0; x < w; x++) {
            size_t j = (size_t)(y + 1) * W2 + x + 1;
            int m = mag[j], push = 0;
            if (m > low) {
                int xs = gx[(size_t)y * w + x], ys = gy[(size_t)y * w + x];
                int ax = abs(xs), ay = abs(ys) << 15, tg22x = ax * TG22;
                if (ay < tg22x) push = m > mag[j - 1] && m >= mag[j + 1];
                else if (ay > tg22x + (ax << 16)) push = m > mag[j - W2] && m >= mag[j + W2];
                else {
                    int s = (xs ^ ys) < 0 ? -1 : 1;
                    push = m > mag[j - W2 - s] && m > mag[j + W2 + s];
                }
            }
            if (!push) { prev_flag = 0; map[j] = 1; continue; }
            if (!prev_flag && m > high && map[j - W2] != 2) { map[j] = 2; stack[top++] = j; prev_flag = 1; }
            else map[j] = 0;
        }
    }
    while (top > 0) {   // hysteresis: grow strong edges through maybe-edges
        size_t j = stack[--top];
        const ptrdiff_t nb[8] = {-1, 1, -W2 - 1, -W2, -W2 + 1, W2 - 1, W2, W2 + 1};
        for (int k = 0; k < 8; k++) {
            size_t q = (size_t)((ptrdiff_t)j + nb[k]);
            if (map[q] == 0) { map[q] = 2; stack[top++] = q; }
        }
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) edge[(size_t)y * w + x] = map[(size_t)(y + 1) * W2 + x + 1] == 2;
    free(stack);
    free(map);
    free(gx);
    free(gy);
    free(mag);
}

// Distance from each pixel to the nearest source pixel, with OpenCV's 5x5 chamfer weights
// (1, 1.4, 2.1969); pixels outside the image are not sources.
static void chamfer5(float *d, const uint8_t *source, int h, int w) {
    const float A = 1.0f, B = 1.4f, C = 2.1969f, INF = 1e20f;
    static const int FWD[8][2] = {{-2, -1}, {-2, 1}, {-1, -2}, {-1, -1}, {-1, 0}, {-1, 1}, {-1, 2}, {0, -1}};
    float wt[8] = {C, C, C, B, A, B, C, A};
    for (size_t i = 0; i < (size_t)h * w; i++) d[i] = source[i] ? 0.0f : INF;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = d[(size_t)y * w + x];
            for (int k = 0; k < 8; k++) {
                int yy = y + FWD[k][0], xx = x + FWD[k][1];
                if (yy < 0 || xx < 0 || xx >= w) continue;
                float c = d[(size_t)yy * w + xx] + wt[k];
                if (c < v) v = c;
            }
            d[(size_t)y * w + x] = v;
        }
    for (int y = h - 1; y >= 0; y--)
        for (int x = w - 1; x >= 0; x--) {
            float v = d[(size_t)y * w + x];
            for (int k = 0; k < 8; k++) {
                int yy = y - FWD[k][0], xx = x - FWD[k][1];
                if (yy >= h || xx < 0 || xx >= w) continue;
                float c = d[(size_t)yy * w + xx] + wt[k];
                if (c < v) v = c;
            }
            d[(size_t)y * w + x] = v;
        }
}

// cv2.blur 3x3 (reflect-101) on floats.
static void box3f(float *out, const float *in, int h, int w) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    s += in[(size_t)cx_reflect101(y + dy, h) * w + cx_reflect101(x + dx, w)];
            out[(size_t)y * w + x] = s / 9.0f;
        }
}

// cv2.equalizeHist.
static void equalize(uint8_t *img, size_t n) {
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) hist[img[i]]++;
    int i = 0;
    while (!hist[i]) i++;
    if (hist[i] == n) { memset(img, i, n); return; }
    uint8_t lut[256] = {0};
    float scale = 255.0f / (float)(n - hist[i]);
    size_t sum = 0;
    for (lut[i++] = 0; i < 256; i++) {
        sum += hist[i];
        lut[i] = sat_u8((int)lrintf((float)sum * scale));
    }
    for (size_t k = 0; k < n; k++) img[k] = lut[img[k]];
}

void cx_spatter(double *x, int h, int w, int s, uint64_t seed) {
    static const double P[5][6] = {   // mean, std, blur sigma, threshold, intensity or mud sigma, mode
        {0.65f, 0.3f, 4, 0.69f, 0.6f, 0}, {0.65f, 0.3f, 3, 0.68f, 0.6f, 0}, {0.65f, 0.3f, 2, 0.68f, 0.5f, 0},
        {0.65f, 0.3f, 1, 0.65f, 1.5f, 1}, {0.67f, 0.4f, 1, 0.65f, 1.5f, 1}};
    const double *c = P[s - 1];
    size_t n = (size_t)h * w;
    // the liquid layer is float64 in the package
    float *noise = mv_malloc(n * sizeof *noise);
    cx_fill_normal(noise, n, seed, cx_purpose(CORRUPT_SPATTER, 0), (float)c[0], (float)c[1]);
    double *L = cx_big(n * sizeof *L);
    for (size_t i = 0; i < n; i++) L[i] = noise[i];
    free(noise);
    cx_gaussian(L, h, w, 1, c[2]);
    for (size_t i = 0; i < n; i++) if (L[i] < c[3]) L[i] = 0;
    if (c[5] == 0) {   // water
        uint8_t *Lu = mv_malloc(n), *edge = mv_malloc(n), *d8 = mv_malloc(n), *t8 = mv_malloc(n);
        float *d = mv_malloc(n * sizeof *d), *t = mv_malloc(n * sizeof *t);
        for (size_t i = 0; i < n; i++) {
            double v = L[i] * 255;
            Lu[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        canny(edge, Lu, h, w, 50, 150);
        chamfer5(d, edge, h, w);   // distance to the nearest edge (255 - Canny is zero there)
        for (size_t i = 0; i < n; i++) if (d[i] > 20) d[i] = 20;
        box3f(t, d, h, w);
        for (size_t i = 0; i < n; i++) d8[i] = (uint8_t)t[i];
        equalize(d8, n);
        static const int K[3][3] = {{-2, -1, 0}, {-1, 1, 1}, {0, 1, 2}};
        for (int y = 0; y < h; y++)   // filter2D to CV_8U (saturating), reflect-101
            for (int xx = 0; xx < w; xx++) {
                int a = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                        a += K[dy + 1][dx + 1] * d8[(size_t)cx_reflect101(y + dy, h) * w + cx_reflect101(xx + dx, w)];
                t8[(size_t)y * w + xx] = sat_u8(a);
            }
        for (int y = 0; y < h; y++)   // cv2.blur on uint8: rounded
            for (int xx = 0; xx < w; xx++) {
                int a = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                        a += t8[(size_t)cx_reflect101(y + dy, h) * w + cx_reflect101(xx + dx, w)];
                d[(size_t)y * w + xx] = (float)(int)lrintf((float)a / 9.0f);
            }
        float mmax = 0;
        for (size_t i = 0; i < n; i++) { d[i] *= (float)Lu[i]; mmax = d[i] > mmax ? d[i] : mmax; }
        static const float WATER[3] = {175 / 255.0f, 238 / 255.0f, 238 / 255.0f};
        float scale = mmax > 0 ? (float)c[4] / mmax : 0.0f;   // the package divides by zero without liquid
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < 3; k++) x[i * 3 + k] += d[i] * scale * WATER[k];
        free(Lu); free(edge); free(d8); free(t8); free(d); free(t);
    } else {   // mud
        double *m = cx_big(n * sizeof *m);
        for (size_t i = 0; i < n; i++) m[i] = L[i] > c[3] ? 1.0f : 0.0f;
        cx_gaussian(m, h, w, 1, c[4]);
        static const float MUD[3] = {63 / 255.0f, 42 / 255.0f, 20 / 255.0f};
        for (size_t i = 0; i < n; i++) {
            double mi = m[i] < 0.8 ? 0.0 : m[i];
            for (int k = 0; k < 3; k++) x[i * 3 + k] = x[i * 3 + k] * (1 - mi) + mi * MUD[k];
        }
        free(m);
    }
    free(L);
}
