// Cityscapes-C entry points: corruption names and groups, argument checks, and the uint8 <->
// float conversion around each corruption (see corrupt.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

static const struct { const char *name, *group; int random; } CORRUPTIONS[CORRUPT_COUNT] = {
    [CORRUPT_MOTION_BLUR] = {"motion_blur", "blur", 1},
    [CORRUPT_DEFOCUS_BLUR] = {"defocus_blur", "blur", 0},
    [CORRUPT_GLASS_BLUR] = {"glass_blur", "blur", 1},
    [CORRUPT_GAUSSIAN_BLUR] = {"gaussian_blur", "blur", 0},
    [CORRUPT_GAUSSIAN_NOISE] = {"gaussian_noise", "noise", 1},
    [CORRUPT_IMPULSE_NOISE] = {"impulse_noise", "noise", 1},
    [CORRUPT_SHOT_NOISE] = {"shot_noise", "noise", 1},
    [CORRUPT_SPECKLE_NOISE] = {"speckle_noise", "noise", 1},
    [CORRUPT_BRIGHTNESS] = {"brightness", "digital", 0},
    [CORRUPT_CONTRAST] = {"contrast", "digital", 0},
    [CORRUPT_SATURATE] = {"saturate", "digital", 0},
    [CORRUPT_JPEG_COMPRESSION] = {"jpeg_compression", "digital", 0},
    [CORRUPT_SNOW] = {"snow", "weather", 1},
    [CORRUPT_SPATTER] = {"spatter", "weather", 1},
    [CORRUPT_FOG] = {"fog", "weather", 1},
    [CORRUPT_FROST] = {"frost", "weather", 1},
};

const char *corrupt_name(int c) { return c >= 0 && c < CORRUPT_COUNT ? CORRUPTIONS[c].name : NULL; }
const char *corrupt_group(int c) { return c >= 0 && c < CORRUPT_COUNT ? CORRUPTIONS[c].group : NULL; }
int corrupt_is_random(int c) { return c >= 0 && c < CORRUPT_COUNT ? CORRUPTIONS[c].random : 0; }

int corrupt_index(const char *name) {
    for (int i = 0; i < CORRUPT_COUNT; i++)
        if (name && !strcmp(name, CORRUPTIONS[i].name)) return i;
    char known[512] = "";
    for (int i = 0; i < CORRUPT_COUNT; i++) {
        if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, CORRUPTIONS[i].name, sizeof known - strlen(known) - 1);
    }
    return mv_fail("unknown corruption '%s' (known: %s)", name ? name : "(null)", known);
}

int corrupt_parse_names(bool on[CORRUPT_COUNT], const char *list, const char *opt) {
    memset(on, 0, CORRUPT_COUNT * sizeof(bool));
    if (!strcmp(list, "all")) {
        for (int c = 0; c < CORRUPT_COUNT; c++) on[c] = true;
        return 0;
    }
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) return mv_fail("%s: list too long", opt);
    // Every item must name one: an empty item ("snow,,fog", "fog,") is refused as in a severity
    // list, not skipped, since it is most likely a name that went missing.
    for (char *tok = buf;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = 0;
        if (!*tok) return mv_fail("%s '%s': an empty item (a comma list of corruption names, or all)", opt, list);
        int c = corrupt_index(tok);
        if (c < 0) return mv_fail("%s '%s': %s", opt, list, mv_last_error());
        on[c] = true;
        if (!comma) return 0;
        tok = comma + 1;
    }
}

// A severity's digits at *p (no sign, no spaces), advancing *p; -1 when there are none. Values
// past two digits are kept large, so that they fail the range check rather than wrap.
static long severity_number(const char **p) {
    long v = -1;
    for (; **p >= '0' && **p <= '9'; (*p)++) v = v < 0 ? **p - '0' : (v > 99 ? v : v * 10 + (**p - '0'));
    return v;
}

int corrupt_parse_severities(bool on[6], const char *list, const char *opt) {
    memset(on, 0, 6 * sizeof(bool));
    if (!strcmp(list, "all")) {
        for (int s = 1; s <= 5; s++) on[s] = true;
        return 0;
    }
    for (const char *p = list;;) {
        long a = severity_number(&p), b = a;
        if (a >= 0 && *p == '-') {
            p++;
            b = severity_number(&p);
        }
        if (a < 0 || b < 0 || (*p && *p != ','))
            return mv_fail("%s '%s': expected N, A-B, all or a comma-separated list of those", opt, list);
        if (a < 1 || b > 5 || a > b) return mv_fail("%s '%s': severities are 1..5 (e.g. 1-5, 5, 1,3)", opt, list);
        for (long s = a; s <= b; s++) on[s] = true;
        if (!*p++) return 0;
    }
}

uint64_t corrupt_image_seed(uint64_t seed, int64_t sample_index) {
    mv_rng4 b = philox4x32(seed, (uint32_t)sample_index, (uint32_t)((uint64_t)sample_index >> 32),
                           MV_RNG_CORRUPT | 0xFFFFFFu, 0);
    return ((uint64_t)b.v[0] << 32) | b.v[1];
}

static void run_float(double *x, int c, int h, int w, int s, uint64_t seed) {
    switch (c) {
    case CORRUPT_MOTION_BLUR: cx_motion_blur(x, h, w, s, seed); break;
    case CORRUPT_DEFOCUS_BLUR: cx_defocus_blur(x, h, w, s); break;
    case CORRUPT_GLASS_BLUR: cx_glass_blur(x, h, w, s, seed); break;
    case CORRUPT_GAUSSIAN_BLUR: cx_gaussian_blur(x, h, w, s); break;
    case CORRUPT_GAUSSIAN_NOISE: cx_gaussian_noise(x, h, w, s, seed); break;
    case CORRUPT_IMPULSE_NOISE: cx_impulse_noise(x, h, w, s, seed); break;
    case CORRUPT_SHOT_NOISE: cx_shot_noise(x, h, w, s, seed); break;
    case CORRUPT_SPECKLE_NOISE: cx_speckle_noise(x, h, w, s, seed); break;
    case CORRUPT_SNOW: cx_snow(x, h, w, s, seed); break;
    case CORRUPT_SPATTER: cx_spatter(x, h, w, s, seed); break;
    case CORRUPT_FOG: cx_fog(x, h, w, s, seed); break;
    case CORRUPT_FROST: cx_frost(x, h, w, s, seed); break;
    default: break;
    }
}

static void swap_red_blue(uint8_t *dst, const uint8_t *src, size_t npx) {
    for (size_t i = 0; i < npx; i++) {
        uint8_t r = src[3 * i];
        dst[3 * i + 1] = src[3 * i + 1];
        dst[3 * i] = src[3 * i + 2];
        dst[3 * i + 2] = r;
    }
}

int corrupt_image_bgr(mv_image *out, const mv_image *in, int corruption, int severity, uint64_t seed) {
    // A grey image has no channel order; a bad image gets corrupt_image's message.
    if (!in || !out || !in->px || in->c != 3 || in->h < 1 || in->w < 1) return corrupt_image(out, in, corruption, severity, seed);
    size_t npx = (size_t)in->h * in->w;
    mv_image bgr = image_alloc(in->h, in->w, 3);
    swap_red_blue(bgr.px, in->px, npx);
    int rc = corrupt_image(out, &bgr, corruption, severity, seed);
    if (rc == 0) swap_red_blue(out->px, out->px, npx);
    image_free(&bgr);
    return rc;
}

int corrupt_image(mv_image *out, const mv_image *in, int corruption, int severity, uint64_t seed) {
    if (!in || !out || !in->px) return mv_fail("corrupt_image: no input image");
    if (corruption < 0 || corruption >= CORRUPT_COUNT)
        return mv_fail("corruption %d out of range 0..%d", corruption, CORRUPT_COUNT - 1);
    if (severity < 1 || severity > 5) return mv_fail("%s: severity %d out of range 1..5", corrupt_name(corruption), severity);
    if (in->c != 3 && in->c != 1)
        return mv_fail("%s: need an RGB or grey image (3 or 1 channels), got %d", corrupt_name(corruption), in->c);
    if (in->h < 1 || in->w < 1) return mv_fail("%s: empty image", corrupt_name(corruption));
    if (in->c == 1) {
        // The package's corrupt() stacks a grey image into three equal channels first and
        // returns the three-channel result.
        if (out == in) return mv_fail("%s: a grey image cannot be corrupted in place (the result has 3 channels)", corrupt_name(corruption));
        if (out->px && (out->h != in->h || out->w != in->w || out->c != 3))
            return mv_fail("%s: output is %dx%dx%d, a grey %dx%d input gives %dx%dx3", corrupt_name(corruption), out->h, out->w,
                           out->c, in->h, in->w, in->h, in->w);
        mv_image rgb = image_alloc(in->h, in->w, 3);
        for (size_t i = 0; i < (size_t)in->h * in->w; i++) rgb.px[3 * i] = rgb.px[3 * i + 1] = rgb.px[3 * i + 2] = in->px[i];
        int rc = corrupt_image(out, &rgb, corruption, severity, seed);
        image_free(&rgb);
        return rc;
    }
    if (in->h > CORRUPT_MAX_SIDE || in->w > CORRUPT_MAX_SIDE)   // fog's plasma map is side^2 floats
        return mv_fail("%s: image %dx%d larger than %d on a side", corrupt_name(corruption), in->h, in->w, CORRUPT_MAX_SIDE);
    int h = in->h, w = in->w;
    if (out->px && (out->h != h || out->w != w || out->c != 3))
        return mv_fail("%s: output is %dx%dx%d, input %dx%dx3", corrupt_name(corruption), out->h, out->w, out->c, h, w);
    size_t n = (size_t)h * w * 3;
    if (corruption == CORRUPT_BRIGHTNESS || corruption == CORRUPT_CONTRAST || corruption == CORRUPT_SATURATE) {
        if (!out->px) *out = image_alloc(h, w, 3);
        cx_digital_u8(out->px, in->px, h, w, corruption, severity);
        return 0;
    }
    if (corruption == CORRUPT_JPEG_COMPRESSION) {
        static const int QUALITY[5] = {25, 18, 15, 10, 7};
        uint8_t *dst = out->px ? out->px : mv_malloc(n);
        if (cx_jpeg_roundtrip(dst, in->px, h, w, QUALITY[severity - 1]) < 0) {
            if (!out->px) free(dst);
            return mv_fail_context("jpeg_compression");
        }
        if (!out->px) { out->h = h; out->w = w; out->c = 3; out->px = dst; }
        return 0;
    }
    double *x = cx_big(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = in->px[i] / 255.;   // the package's np.array(x) / 255.
    run_float(x, corruption, h, w, severity, seed);
    if (!out->px) *out = image_alloc(h, w, 3);
    // The package returns clip(x, 0, 1) * 255 (motion blur and frost work on 0..255 and return
    // clip(x, 0, 255)), and corrupt() casts it with np.uint8, which truncates: 254.9 -> 254, and
    // a value a rounding error below a whole number loses that grey level too. So no epsilon
    // and no rounding here; the corruptions compute in double in the package's order so that
    // such values fall on the same side.
    double top = corruption == CORRUPT_MOTION_BLUR || corruption == CORRUPT_FROST ? 255. : 1.;
    double scale = 255. / top;
    for (size_t i = 0; i < n; i++) {
        double v = x[i] > 0 ? x[i] : 0.;   // NaN -> 0
        out->px[i] = (uint8_t)((v < top ? v : top) * scale);
    }
    free(x);
    return 0;
}
