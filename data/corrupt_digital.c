// The digital corruptions computed on floats: brightness (HSV value shift), contrast (towards
// each channel's mean) and saturation (HSV saturation scale). JPEG is corrupt_jpeg.c.
#include "data/corrupt_internal.h"

static inline float clip01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

void cx_brightness(float *x, int h, int w, int s) {
    static const float C[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        float hsv[3];
        cx_rgb2hsv(hsv, x + i * 3);
        hsv[2] = clip01(hsv[2] + C[s - 1]);
        cx_hsv2rgb(x + i * 3, hsv);
    }
}

void cx_contrast(float *x, int h, int w, int s) {
    static const float C[5] = {0.4f, 0.3f, 0.2f, 0.1f, 0.05f};
    size_t n = (size_t)h * w;
    double mean[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) mean[c] += x[i * 3 + c];
    for (int c = 0; c < 3; c++) mean[c] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float m = (float)mean[c];
            x[i * 3 + c] = (x[i * 3 + c] - m) * C[s - 1] + m;
        }
}

void cx_saturate(float *x, int h, int w, int s) {
    static const float A[5] = {0.3f, 0.1f, 2, 5, 20}, B[5] = {0, 0, 0, 0.1f, 0.2f};
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        float hsv[3];
        cx_rgb2hsv(hsv, x + i * 3);
        hsv[1] = clip01(hsv[1] * A[s - 1] + B[s - 1]);
        cx_hsv2rgb(x + i * 3, hsv);
    }
}
