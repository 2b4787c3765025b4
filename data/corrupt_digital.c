// The digital corruptions computed per pixel: brightness (HSV value shift), contrast (towards
// each channel's mean) and saturation (HSV saturation scale). JPEG is corrupt_jpeg.c.
//
// These three are deterministic, so they can match the package bit for bit. The package
// computes them in float64 (numpy, skimage's rgb2hsv / hsv2rgb) and casts with a truncating
// np.uint8, and many results land a rounding error below a whole number (an unchanged
// channel comes back as 179.99999999999997, i.e. 179). Reproducing those grey levels needs
// the same double arithmetic in the same order, from the uint8 input, so these functions
// work on uint8 directly instead of the float32 image of the other corruptions.
// Compiled with -ffp-contract=off (CMakeLists.txt): numpy rounds every product, and a fused
// a * b + c can move a value across a whole number, i.e. a grey level.
#include <math.h>
#include "data/corrupt_internal.h"

static inline double clip01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

// numpy's float remainder a % 1 (fmod, then shifted into [0, 1) for negative a; -1e-17 % 1
// rounds to 1.0, as in numpy).
static inline double mod1(double a) {
    double m = fmod(a, 1.0);
    if (m != 0 && m < 0) m += 1.0;
    return m;
}

// skimage.color.rgb2hsv for one pixel, in its order: value = max, saturation = ptp / max,
// hue from red, then green, then blue where that channel equals the max (the last wins).
static void rgb2hsv(double hsv[3], const double rgb[3]) {
    double r = rgb[0], g = rgb[1], b = rgb[2];
    double v = fmax(fmax(r, g), b), mn = fmin(fmin(r, g), b), delta = v - mn, hue = 0;
    if (delta != 0) {
        if (r == v) hue = (g - b) / delta;
        if (g == v) hue = 2. + (b - r) / delta;
        if (b == v) hue = 4. + (r - g) / delta;
        hue = mod1(hue / 6.);
    }
    hsv[0] = hue;
    hsv[1] = delta != 0 ? delta / v : 0.;
    hsv[2] = v;
}

// skimage.color.hsv2rgb for one pixel.
static void hsv2rgb(double rgb[3], const double hsv[3]) {
    double hi = floor(hsv[0] * 6), f = hsv[0] * 6 - hi, s = hsv[1], v = hsv[2];
    double p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    switch ((int)(uint8_t)hi % 6) {   // numpy: hi.astype(uint8) % 6
    case 0: rgb[0] = v; rgb[1] = t; rgb[2] = p; break;
    case 1: rgb[0] = q; rgb[1] = v; rgb[2] = p; break;
    case 2: rgb[0] = p; rgb[1] = v; rgb[2] = t; break;
    case 3: rgb[0] = p; rgb[1] = q; rgb[2] = v; break;
    case 4: rgb[0] = t; rgb[1] = p; rgb[2] = v; break;
    default: rgb[0] = v; rgb[1] = p; rgb[2] = q; break;
    }
}

// np.uint8(np.clip(v, 0, 1) * 255): truncation, no rounding.
static inline uint8_t to_u8(double v) { return (uint8_t)(clip01(v) * 255); }

void cx_digital_u8(uint8_t *out, const uint8_t *in, int h, int w, int corruption, int s) {
    static const double BRIGHT[5] = {.1, .2, .3, .4, .5}, CONTRAST[5] = {0.4, .3, .2, .1, .05};
    static const double SAT_A[5] = {0.3, 0.1, 2, 5, 20}, SAT_B[5] = {0, 0, 0, 0.1, 0.2};
    size_t n = (size_t)h * w;
    if (corruption == CORRUPT_CONTRAST) {
        double mean[3] = {0, 0, 0};
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) mean[c] += in[i * 3 + c] / 255.;
        for (int c = 0; c < 3; c++) mean[c] /= (double)n;
        for (size_t i = 0; i < n; i++)   // in place is fine: the means are taken first
            for (int c = 0; c < 3; c++) out[i * 3 + c] = to_u8((in[i * 3 + c] / 255. - mean[c]) * CONTRAST[s - 1] + mean[c]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double rgb[3] = {in[i * 3] / 255., in[i * 3 + 1] / 255., in[i * 3 + 2] / 255.}, hsv[3];
        rgb2hsv(hsv, rgb);
        if (corruption == CORRUPT_BRIGHTNESS) hsv[2] = clip01(hsv[2] + BRIGHT[s - 1]);
        else hsv[1] = clip01(hsv[1] * SAT_A[s - 1] + SAT_B[s - 1]);
        hsv2rgb(rgb, hsv);
        for (int c = 0; c < 3; c++) out[i * 3 + c] = to_u8(rgb[c]);
    }
}
