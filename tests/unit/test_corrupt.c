// Cityscapes-C corruptions: names, sizes, determinism per seed, severity raising the change,
// noise statistics, exact values where the package's formula gives them (brightness,
// contrast, saturation, fog's bound), JPEG through libjpeg, odd sizes, errors, and the
// `data corrupt` command writing corrupted splits.
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt.h"
#include "data/image_io.h"
#include "data/shard.h"
#include "data/synth.h"

#define H 48
#define W 64

// A street scene from the synthetic domains: edges, flat areas, colours.
static mv_image scene(uint64_t index) {
    mv_image img = image_alloc(H, W, 3), lab = image_alloc(H, W, 1);
    cr_assert_eq(synth_sample(&img, &lab, 21, 0, index), 0, "%s", mv_last_error());
    image_free(&lab);
    return img;
}

static mv_image flat(int h, int w, uint8_t r, uint8_t g, uint8_t b) {
    mv_image img = image_alloc(h, w, 3);
    for (int i = 0; i < h * w; i++) { img.px[3 * i] = r; img.px[3 * i + 1] = g; img.px[3 * i + 2] = b; }
    return img;
}

static mv_image corrupt(const mv_image *in, int c, int s, uint64_t seed) {
    mv_image out = {0};
    cr_assert_eq(corrupt_image(&out, in, c, s, seed), 0, "%s s%d: %s", corrupt_name(c), s, mv_last_error());
    cr_assert_eq(out.h, in->h);
    cr_assert_eq(out.w, in->w);
    cr_assert_eq(out.c, 3);
    return out;
}

static double mad(const mv_image *a, const mv_image *b) {
    double s = 0;
    size_t n = (size_t)a->h * a->w * 3;
    for (size_t i = 0; i < n; i++) s += fabs((double)a->px[i] - b->px[i]);
    return s / (double)n;
}

// The command-line lists of eval and data corrupt, one parser: what each accepts and refuses.
Test(corrupt, parse_lists) {
    bool on[CORRUPT_COUNT], sev[6];
    cr_assert_eq(corrupt_parse_names(on, "fog,gaussian_noise", "--corruptions"), 0);
    for (int c = 0; c < CORRUPT_COUNT; c++) cr_assert_eq(on[c], c == CORRUPT_FOG || c == CORRUPT_GAUSSIAN_NOISE, "%d", c);
    cr_assert_eq(corrupt_parse_names(on, "all", "--corruptions"), 0);
    for (int c = 0; c < CORRUPT_COUNT; c++) cr_assert(on[c]);
    cr_assert_eq(corrupt_parse_names(on, "fog,zoom_blur", "--corruptions"), -1);
    cr_assert(strstr(mv_last_error(), "--corruptions 'fog,zoom_blur': unknown corruption 'zoom_blur'"), "%s", mv_last_error());
    const char *empty_item[] = {"", "snow,,fog", "fog,", ",fog"};
    for (size_t i = 0; i < sizeof empty_item / sizeof *empty_item; i++) {
        cr_assert_eq(corrupt_parse_names(on, empty_item[i], "--corruption"), -1, "'%s' accepted", empty_item[i]);
        cr_assert(strstr(mv_last_error(), "an empty item"), "%s", mv_last_error());
    }
    cr_assert_eq(corrupt_parse_names(on, ",", "--corruption"), -1);
    cr_assert(strstr(mv_last_error(), "--corruption ',': an empty item"), "%s", mv_last_error());

    const struct { const char *list; const char *want; } ok[] = {
        {"5", "000001"}, {"all", "011111"}, {"1-5", "011111"}, {"1-2,5", "011001"}, {"3,1", "010100"}, {"2-2", "001000"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(corrupt_parse_severities(sev, ok[i].list, "--severities"), 0, "%s: %s", ok[i].list, mv_last_error());
        for (int s = 0; s < 6; s++) cr_assert_eq(sev[s], ok[i].want[s] == '1', "%s: severity %d", ok[i].list, s);
    }
    const char *syntax[] = {"", ",", "1,", "2-4junk", "-3", "1-", "+2", " 2", "1--3", "a"};
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        cr_assert_eq(corrupt_parse_severities(sev, syntax[i], "--severities"), -1, "'%s' accepted", syntax[i]);
        cr_assert(strstr(mv_last_error(), "expected N, A-B, all"), "'%s': %s", syntax[i], mv_last_error());
    }
    const char *range[] = {"0", "6", "1-3,9", "4-2", "4294967297", "0-5"};
    for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
        cr_assert_eq(corrupt_parse_severities(sev, range[i], "--severity"), -1, "'%s' accepted", range[i]);
        char want[64];
        snprintf(want, sizeof want, "--severity '%s': severities are 1..5", range[i]);
        cr_assert(strstr(mv_last_error(), want), "'%s': %s", range[i], mv_last_error());
    }
}

Test(corrupt, names_groups_and_lookup) {
    int groups[4] = {0};
    const char *g[4] = {"blur", "noise", "digital", "weather"};
    for (int c = 0; c < CORRUPT_COUNT; c++) {
        cr_assert_eq(corrupt_index(corrupt_name(c)), c);
        for (int k = 0; k < 4; k++) groups[k] += !strcmp(corrupt_group(c), g[k]);
        cr_assert_str_eq(corrupt_group(c), g[c / 4], "Table 2 order");
    }
    for (int k = 0; k < 4; k++) cr_assert_eq(groups[k], 4);
    cr_assert_eq(CORRUPT_COUNT, 16);
    cr_assert_eq(corrupt_index("zoom_blur"), -1);
    cr_assert(strstr(mv_last_error(), "zoom_blur") && strstr(mv_last_error(), "frost"));
    cr_assert_null(corrupt_name(16));
    cr_assert_eq(corrupt_is_random(CORRUPT_CONTRAST), 0);
    cr_assert_eq(corrupt_is_random(CORRUPT_FROST), 1);
}

Test(corrupt, same_seed_same_output_and_seed_matters_only_when_random) {
    mv_image img = scene(1);
    for (int c = 0; c < CORRUPT_COUNT; c++) {
        mv_image a = corrupt(&img, c, 3, 99), b = corrupt(&img, c, 3, 99), d = corrupt(&img, c, 3, 100);
        cr_assert_eq(memcmp(a.px, b.px, (size_t)H * W * 3), 0, "%s not deterministic", corrupt_name(c));
        int same = !memcmp(a.px, d.px, (size_t)H * W * 3);
        cr_assert_eq(same, !corrupt_is_random(c), "%s: seed %s", corrupt_name(c), same ? "ignored" : "used");
        cr_assert_gt(mad(&a, &img), 0.05, "%s changed nothing", corrupt_name(c));
        image_free(&a); image_free(&b); image_free(&d);
    }
    image_free(&img);
}

Test(corrupt, severity_raises_the_change) {
    mv_image img = scene(2);
    // strictly increasing mean absolute difference at every step, by construction of the
    // parameters; the others (parameter tables that are not monotone in every step) at least
    // change more at severity 5 than at 1
    const int strict[] = {CORRUPT_MOTION_BLUR, CORRUPT_DEFOCUS_BLUR, CORRUPT_GAUSSIAN_BLUR, CORRUPT_GAUSSIAN_NOISE,
                          CORRUPT_IMPULSE_NOISE, CORRUPT_SHOT_NOISE, CORRUPT_SPECKLE_NOISE, CORRUPT_BRIGHTNESS,
                          CORRUPT_CONTRAST, CORRUPT_JPEG_COMPRESSION};
    for (int c = 0; c < CORRUPT_COUNT; c++) {
        if (c == CORRUPT_SATURATE || c == CORRUPT_FROST) continue;   // own tests below
        double m[6];
        for (int s = 1; s <= 5; s++) {
            mv_image o = corrupt(&img, c, s, 5);
            m[s] = mad(&o, &img);
            image_free(&o);
        }
        int is_strict = 0;
        for (size_t k = 0; k < sizeof strict / sizeof strict[0]; k++) is_strict |= strict[k] == c;
        if (is_strict)
            for (int s = 2; s <= 5; s++)
                cr_assert_gt(m[s], m[s - 1], "%s: severity %d changes %.2f, severity %d %.2f", corrupt_name(c), s, m[s], s - 1, m[s - 1]);
        cr_assert_gt(m[5], m[1] + 0.5, "%s: s1 %.2f s5 %.2f", corrupt_name(c), m[1], m[5]);
    }
    image_free(&img);
}

Test(corrupt, gaussian_and_speckle_noise_statistics) {
    mv_image img = flat(128, 128, 128, 128, 128);
    const double sigma[5] = {0.08, 0.12, 0.18, 0.26, 0.38}, speckle[5] = {0.15, 0.2, 0.35, 0.45, 0.6};
    for (int s = 1; s <= 3; s++) {   // no clipping at these severities
        mv_image o = corrupt(&img, CORRUPT_GAUSSIAN_NOISE, s, 3);
        double sum = 0, sq = 0, n = 128.0 * 128 * 3;
        for (int i = 0; i < 128 * 128 * 3; i++) { double d = o.px[i] + 0.5 - 128.0; sum += d; sq += d * d; }
        double mean = sum / n, sd = sqrt(sq / n - mean * mean);
        cr_assert_lt(fabs(mean), 0.6, "s%d mean %.3f", s, mean);
        cr_assert_lt(fabs(sd / (sigma[s - 1] * 255) - 1), 0.04, "s%d std %.2f want %.2f", s, sd, sigma[s - 1] * 255);
        image_free(&o);
        o = corrupt(&img, CORRUPT_SPECKLE_NOISE, s, 3);
        sum = sq = 0;
        for (int i = 0; i < 128 * 128 * 3; i++) { double d = o.px[i] + 0.5 - 128.0; sum += d; sq += d * d; }
        mean = sum / n;
        sd = sqrt(sq / n - mean * mean);
        double want = speckle[s - 1] * 128;
        cr_assert_lt(fabs(mean), 0.8);
        cr_assert_lt(fabs(sd / want - 1), 0.05, "speckle s%d std %.2f want %.2f", s, sd, want);
        image_free(&o);
    }
    image_free(&img);
}

Test(corrupt, shot_noise_is_poisson) {
    const double lambda[5] = {60, 25, 12, 5, 3};
    mv_image img = flat(128, 128, 51, 51, 51);   // x = 0.2: clipping at 1 is rare at every severity
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&img, CORRUPT_SHOT_NOISE, s, 8);
        double sum = 0, sq = 0, n = 128.0 * 128 * 3, x = 0.2;
        for (int i = 0; i < 128 * 128 * 3; i++) {
            // back from the truncated grey level to the count k of Poisson(x * lambda)
            double k = round((o.px[i] + 0.5) / 255.0 * lambda[s - 1]);
            sum += k;
            sq += k * k;
        }
        double mean = sum / n, var = sq / n - mean * mean, m = x * lambda[s - 1];
        cr_assert_lt(fabs(mean / m - 1), 0.02, "s%d mean %.3f want %.3f", s, mean, m);
        cr_assert_lt(fabs(var / m - 1), 0.05, "s%d var %.3f want %.3f", s, var, m);
        image_free(&o);
    }
    image_free(&img);
}

Test(corrupt, impulse_noise_hits_the_right_fraction) {
    const double amount[5] = {0.03, 0.06, 0.09, 0.17, 0.27};
    mv_image img = flat(128, 128, 100, 150, 200);
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&img, CORRUPT_IMPULSE_NOISE, s, 4);
        double salt = 0, pepper = 0, other = 0, n = 128.0 * 128 * 3;
        for (int i = 0; i < 128 * 128 * 3; i++) {
            if (o.px[i] == 255) salt++;
            else if (o.px[i] == 0) pepper++;
            else other += o.px[i] != img.px[i];
        }
        cr_assert_eq(other, 0);
        cr_assert_lt(fabs((salt + pepper) / n - amount[s - 1]), 0.006, "s%d hit %.4f", s, (salt + pepper) / n);
        cr_assert_lt(fabs(salt / (salt + pepper) - 0.5), 0.05);
        image_free(&o);
    }
    image_free(&img);
}

Test(corrupt, brightness_contrast_saturate_follow_the_formulas) {
    mv_image px = flat(1, 2, 100, 50, 25);
    px.px[3] = 128; px.px[4] = 128; px.px[5] = 128;   // a grey pixel
    const double c[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&px, CORRUPT_BRIGHTNESS, s, 0);
        double v = 100 / 255.0, nv = fmin(1, v + c[s - 1]);
        for (int k = 0; k < 3; k++) {   // hue and saturation kept: the pixel is scaled
            double want = px.px[k] / 255.0 * nv / v * 255;
            cr_assert_lt(fabs(o.px[k] - want), 1.01, "s%d ch%d %d want %.2f", s, k, o.px[k], want);
        }
        image_free(&o);
    }
    // saturation: (a, b) = (0.3, 0) (0.1, 0) (2, 0) (5, 0.1) (20, 0.2); grey has hue 0 (red)
    const double a[5] = {0.3, 0.1, 2, 5, 20}, b[5] = {0, 0, 0, 0.1, 0.2};
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&px, CORRUPT_SATURATE, s, 0);
        double sat = fmin(1, 0.75 * a[s - 1] + b[s - 1]);   // (100, 50, 25): S = 0.75
        double want[3] = {100, 100 * (1 - sat * 2.0 / 3.0), 100 * (1 - sat)};   // hue 1/18: g = v(1 - (1 - f)s), f = 1/3
        for (int k = 0; k < 3; k++)
            cr_assert_lt(fabs(o.px[k] - want[k]), 1.01, "s%d ch%d %d want %.2f", s, k, o.px[k], want[k]);
        double gs = b[s - 1];
        cr_assert_lt(fabs(o.px[3] - 128.0), 1.01);
        cr_assert_lt(fabs(o.px[4] - 128 * (1 - gs)), 1.01, "grey s%d -> %d", s, o.px[4]);
        cr_assert_eq(o.px[4], o.px[5]);
        image_free(&o);
    }
    image_free(&px);

    mv_image img = scene(3);
    const double cc[5] = {0.4, 0.3, 0.2, 0.1, 0.05};
    double mean[3] = {0}, sd[3] = {0};
    for (int i = 0; i < H * W * 3; i++) mean[i % 3] += img.px[i];
    for (int k = 0; k < 3; k++) mean[k] /= H * W;
    for (int i = 0; i < H * W * 3; i++) sd[i % 3] += (img.px[i] - mean[i % 3]) * (img.px[i] - mean[i % 3]);
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&img, CORRUPT_CONTRAST, s, 0);
        double m2[3] = {0}, sd2[3] = {0};
        for (int i = 0; i < H * W * 3; i++) m2[i % 3] += o.px[i];
        for (int k = 0; k < 3; k++) m2[k] /= H * W;
        for (int i = 0; i < H * W * 3; i++) sd2[i % 3] += (o.px[i] - m2[i % 3]) * (o.px[i] - m2[i % 3]);
        for (int k = 0; k < 3; k++) {
            cr_assert_lt(fabs(m2[k] - mean[k]), 1.0, "contrast keeps the channel mean");
            cr_assert_lt(fabs(sqrt(sd2[k] / sd[k]) - cc[s - 1]), 0.02, "s%d std ratio %.3f", s, sqrt(sd2[k] / sd[k]));
        }
        image_free(&o);
    }
    image_free(&img);
}

Test(corrupt, blurs_keep_flat_images_flat) {
    mv_image img = flat(40, 50, 90, 140, 200);
    const int blurs[4] = {CORRUPT_MOTION_BLUR, CORRUPT_DEFOCUS_BLUR, CORRUPT_GLASS_BLUR, CORRUPT_GAUSSIAN_BLUR};
    for (int k = 0; k < 4; k++)
        for (int s = 1; s <= 5; s++) {
            mv_image o = corrupt(&img, blurs[k], s, 1);
            // The package's disk kernels at radius 8 and 10 touch their grid's border, where
            // OpenCV's reflect-101 smoothing adds about 1% of weight: flat images brighten by up to 2.
            int tol = blurs[k] == CORRUPT_DEFOCUS_BLUR && s >= 4 ? 2 : 1;
            for (int i = 0; i < 40 * 50 * 3; i++)
                cr_assert_leq(abs(o.px[i] - img.px[i]), tol, "%s s%d moved a flat image", corrupt_name(blurs[k]), s);
            image_free(&o);
        }
    image_free(&img);
}

Test(corrupt, motion_blur_smears_a_dot_along_a_line) {
    mv_image img = flat(61, 61, 0, 0, 0);
    for (int k = 0; k < 3; k++) img.px[(30 * 61 + 30) * 3 + k] = 255;
    mv_image o = corrupt(&img, CORRUPT_MOTION_BLUR, 5, 17);
    // the lit pixels lie on one straight line through the dot, within +-45 degrees of horizontal
    int n = 0;
    double sx = 0, sy = 0, sxx = 0, sxy = 0, total = 0;
    for (int y = 0; y < 61; y++)
        for (int x = 0; x < 61; x++) {
            int v = o.px[(y * 61 + x) * 3];
            if (!v) continue;
            n++; total += v;
            sx += x; sy += y; sxx += (double)x * x; sxy += (double)x * y;
        }
    cr_assert_geq(n, 8, "only %d lit pixels", n);
    double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    cr_assert_leq(fabs(slope), 1.05, "slope %.2f", slope);
    for (int y = 0; y < 61; y++)
        for (int x = 0; x < 61; x++)
            if (o.px[(y * 61 + x) * 3])
                cr_assert_lt(fabs((y - 30) - slope * (x - 30)), 1.6, "pixel (%d, %d) off the line", x, y);
    cr_assert_lt(fabs(total - 255), 0.1 * 255 + n, "the dot's energy is kept: %.0f", total);
    image_free(&o);
    image_free(&img);
}

Test(corrupt, jpeg_round_trips_through_libjpeg) {
    mv_image img = scene(4);
    for (int s = 1; s <= 5; s++) {
        const int q[5] = {25, 18, 15, 10, 7};
        mv_image o = corrupt(&img, CORRUPT_JPEG_COMPRESSION, s, 0);
        // the package's quality for severity s (Pillow's bytes: test_corrupt_reference.c)
        uint8_t *buf = NULL;
        size_t len = 0;
        cr_assert_eq(image_encode_jpeg(&buf, &len, &img, q[s - 1]), 0, "%s", mv_last_error());
        cr_assert(len > 2 && buf[0] == 0xFF && buf[1] == 0xD8, "a JPEG stream");
        mv_image ref;
        cr_assert_eq(image_decode_jpeg(&ref, buf, len, "reference"), 0, "%s", mv_last_error());
        cr_assert_eq(memcmp(ref.px, o.px, (size_t)H * W * 3), 0, "s%d differs from libjpeg q%d", s, q[s - 1]);
        free(buf);
        image_free(&ref);
        image_free(&o);
    }
    // quality changes the output, and 8x8 blocks show: flat inside, jumps at block borders
    mv_image a = corrupt(&img, CORRUPT_JPEG_COMPRESSION, 1, 0), b = corrupt(&img, CORRUPT_JPEG_COMPRESSION, 5, 0);
    cr_assert_neq(memcmp(a.px, b.px, (size_t)H * W * 3), 0);
    image_free(&a); image_free(&b);
    mv_image f = flat(32, 32, 77, 133, 201), fo = corrupt(&f, CORRUPT_JPEG_COMPRESSION, 5, 0);
    for (int i = 0; i < 32 * 32 * 3; i++) {   // DC-only blocks: a flat image stays flat, near its colour
        cr_assert_eq(fo.px[i], fo.px[i % 3]);
        cr_assert_leq(abs(fo.px[i] - f.px[i]), 24, "flat colour %d -> %d", f.px[i], fo.px[i]);
    }
    image_free(&f); image_free(&fo);
    image_free(&img);
}

Test(corrupt, fog_never_exceeds_the_image_maximum) {
    mv_image img = scene(5);
    int vmax = 0;
    for (int i = 0; i < H * W * 3; i++) vmax = img.px[i] > vmax ? img.px[i] : vmax;
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&img, CORRUPT_FOG, s, 2);
        double mean_in = 0, mean_out = 0;
        for (int i = 0; i < H * W * 3; i++) {
            cr_assert_leq(o.px[i], vmax, "s%d", s);
            mean_in += img.px[i];
            mean_out += o.px[i];
        }
        image_free(&o);
    }
    image_free(&img);
}

Test(corrupt, snow_brightens_and_spatter_adds_water_or_mud) {
    mv_image img = scene(6);
    double mean_in = 0;
    for (int i = 0; i < H * W * 3; i++) mean_in += img.px[i];
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&img, CORRUPT_SNOW, s, 3);
        double m = 0;
        for (int i = 0; i < H * W * 3; i++) m += o.px[i];
        cr_assert_gt(m, mean_in, "snow s%d darkened the image", s);
        image_free(&o);
    }
    mv_image big = image_alloc(96, 128, 3), lab = image_alloc(96, 128, 1);
    cr_assert_eq(synth_sample(&big, &lab, 21, 0, 6), 0);
    for (int s = 1; s <= 3; s++) {   // water is added light: nothing gets darker
        mv_image o = corrupt(&big, CORRUPT_SPATTER, s, 11);
        for (int i = 0; i < 96 * 128 * 3; i++) cr_assert_geq(o.px[i] + 1, big.px[i], "s%d", s);
        image_free(&o);
    }
    for (int s = 4; s <= 5; s++) {   // mud: changed pixels move towards (63, 42, 20)
        mv_image o = corrupt(&big, CORRUPT_SPATTER, s, 11);
        int changed = 0;
        for (int i = 0; i < 96 * 128; i++) {
            const uint8_t *p = big.px + 3 * i, *q = o.px + 3 * i;
            if (abs(p[0] - q[0]) + abs(p[1] - q[1]) + abs(p[2] - q[2]) <= 3) continue;
            changed++;
            const int mud[3] = {63, 42, 20};
            for (int k = 0; k < 3; k++) cr_assert_leq(abs(q[k] - mud[k]), abs(p[k] - mud[k]) + 1);
        }
        cr_assert_gt(changed, 30, "s%d: %d mud pixels", s, changed);
        image_free(&o);
    }
    image_free(&big); image_free(&lab);
    image_free(&img);
}

static double correlation(const mv_image *a, const mv_image *b) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, n = (double)a->h * a->w * 3;
    for (size_t i = 0; i < (size_t)n; i++) {
        double x = a->px[i], y = b->px[i];
        sa += x; sb += y; saa += x * x; sbb += y * y; sab += x * y;
    }
    return (sab / n - sa / n * sb / n) / sqrt((saa / n - sa / n * sa / n) * (sbb / n - sb / n * sb / n));
}

Test(corrupt, frost_hides_more_of_the_image_at_higher_severity) {
    mv_image img = scene(7);
    double prev = 1;
    for (int s = 1; s <= 5; s++) {
        mv_image o = corrupt(&img, CORRUPT_FROST, s, 6);
        double r = correlation(&o, &img);
        cr_assert_lt(r, prev, "s%d correlation %.3f, s%d %.3f", s, r, s - 1, prev);
        prev = r;
        image_free(&o);
    }
    cr_assert_lt(prev, 0.9);
    // the texture: in range, bluish white, not blank, and different per seed
    mv_image black = flat(64, 96, 0, 0, 0), a = corrupt(&black, CORRUPT_FROST, 1, 1), b = corrupt(&black, CORRUPT_FROST, 1, 2);
    double mean[3] = {0};
    for (int i = 0; i < 64 * 96 * 3; i++) mean[i % 3] += a.px[i] / (0.4 * 64 * 96);
    cr_assert(mean[2] > 40 && mean[2] < 180, "texture mean %.1f", mean[2]);
    cr_assert(mean[0] < mean[2], "bluish");
    cr_assert_lt(correlation(&a, &b), 0.8);
    image_free(&black); image_free(&a); image_free(&b);
    image_free(&img);
}

Test(corrupt, saturate_desaturates_then_saturates) {
    mv_image img = scene(8);
    double sat[6];
    for (int s = 0; s <= 5; s++) {
        mv_image o = s ? corrupt(&img, CORRUPT_SATURATE, s, 0) : img;
        double t = 0;
        for (int i = 0; i < H * W; i++) {
            const uint8_t *p = o.px + 3 * i;
            int mx = p[0] > p[1] ? p[0] : p[1], mn = p[0] < p[1] ? p[0] : p[1];
            mx = mx > p[2] ? mx : p[2];
            mn = mn < p[2] ? mn : p[2];
            t += mx ? (double)(mx - mn) / mx : 0;
        }
        sat[s] = t / (H * W);
        if (s) image_free(&o);
    }
    cr_assert_lt(sat[2], sat[1]);
    cr_assert_lt(sat[1], sat[0]);
    cr_assert_gt(sat[3], sat[0]);
    cr_assert_gt(sat[4], sat[3]);
    cr_assert_gt(sat[5], sat[4]);
    image_free(&img);
}

Test(corrupt, any_size_in_place_and_bad_arguments) {
    const int sizes[5][2] = {{1, 1}, {2, 3}, {7, 5}, {33, 1}, {5, 70}};
    for (int z = 0; z < 5; z++) {
        mv_image img = image_alloc(sizes[z][0], sizes[z][1], 3);
        for (int i = 0; i < sizes[z][0] * sizes[z][1] * 3; i++) img.px[i] = (uint8_t)(i * 37 + 11);
        for (int c = 0; c < CORRUPT_COUNT; c++)
            for (int s = 1; s <= 5; s++) {
                mv_image o = corrupt(&img, c, s, 1);
                image_free(&o);
            }
        image_free(&img);
    }
    // in place equals out of place
    mv_image img = scene(9);
    for (int c = 0; c < CORRUPT_COUNT; c++) {
        mv_image o = corrupt(&img, c, 4, 3), inplace = image_alloc(H, W, 3);
        memcpy(inplace.px, img.px, (size_t)H * W * 3);
        cr_assert_eq(corrupt_image(&inplace, &inplace, c, 4, 3), 0);
        cr_assert_eq(memcmp(inplace.px, o.px, (size_t)H * W * 3), 0, "%s in place", corrupt_name(c));
        image_free(&o); image_free(&inplace);
    }
    mv_image out = {0};
    cr_assert_eq(corrupt_image(&out, &img, CORRUPT_FOG, 0, 1), -1);
    cr_assert(strstr(mv_last_error(), "severity 0"), "%s", mv_last_error());
    cr_assert_eq(corrupt_image(&out, &img, CORRUPT_FOG, 6, 1), -1);
    cr_assert_eq(corrupt_image(&out, &img, 16, 1, 1), -1);
    cr_assert_eq(corrupt_image(&out, &img, -1, 1, 1), -1);
    cr_assert_null(out.px);
    mv_image two = image_alloc(8, 8, 2);
    memset(two.px, 0, 128);
    cr_assert_eq(corrupt_image(&out, &two, CORRUPT_FOG, 1, 1), -1);
    cr_assert(strstr(mv_last_error(), "3 or 1 channels"), "%s", mv_last_error());
    image_free(&two);
    mv_image gray = image_alloc(8, 8, 1);
    memset(gray.px, 0, 64);
    cr_assert_eq(corrupt_image(&gray, &gray, CORRUPT_FOG, 1, 1), -1, "a grey image in place");
    mv_image small = image_alloc(8, 8, 3);
    cr_assert_eq(corrupt_image(&small, &img, CORRUPT_CONTRAST, 1, 1), -1);
    cr_assert(strstr(mv_last_error(), "8x8x3"), "%s", mv_last_error());
    image_free(&gray); image_free(&small);
    image_free(&img);
}

// The package's corrupt() stacks a grey image into three channels: same result as the RGB
// image with three equal channels, for every corruption.
Test(corrupt, grey_image_is_stacked_into_three_channels) {
    mv_image g = image_alloc(36, 44, 1), rgb = image_alloc(36, 44, 3);
    for (int i = 0; i < 36 * 44; i++) {
        g.px[i] = (uint8_t)((i * 29 + (i / 44) * 7) % 256);
        rgb.px[3 * i] = rgb.px[3 * i + 1] = rgb.px[3 * i + 2] = g.px[i];
    }
    for (int c = 0; c < CORRUPT_COUNT; c++) {
        mv_image a = {0}, b = corrupt(&rgb, c, 3, 5);
        cr_assert_eq(corrupt_image(&a, &g, c, 3, 5), 0, "%s: %s", corrupt_name(c), mv_last_error());
        cr_assert_eq(a.c, 3);
        cr_assert_eq(memcmp(a.px, b.px, (size_t)36 * 44 * 3), 0, "%s on a grey image", corrupt_name(c));
        image_free(&a); image_free(&b);
    }
    image_free(&g); image_free(&rgb);
}

// corrupt_image_bgr is corrupt_image on the channel-swapped image, swapped back: in place or not;
// a grey image (no channel order) is corrupted as by corrupt_image; bad arguments fail the same.
Test(corrupt, bgr_order_swaps_around_the_corruption) {
    mv_image rgb = image_alloc(30, 40, 3), sw = image_alloc(30, 40, 3);
    for (int i = 0; i < 30 * 40; i++)
        for (int k = 0; k < 3; k++) rgb.px[3 * i + k] = (uint8_t)((i * (7 + 5 * k) + k * 40) % 256);
    for (int i = 0; i < 30 * 40; i++)
        for (int k = 0; k < 3; k++) sw.px[3 * i + k] = rgb.px[3 * i + 2 - k];
    for (int c = 0; c < CORRUPT_COUNT; c++) {
        mv_image want = corrupt(&sw, c, 5, 9), got = {0}, inplace = image_alloc(30, 40, 3), plain = corrupt(&rgb, c, 5, 9);
        memcpy(inplace.px, rgb.px, (size_t)30 * 40 * 3);
        cr_assert_eq(corrupt_image_bgr(&got, &rgb, c, 5, 9), 0, "%s: %s", corrupt_name(c), mv_last_error());
        cr_assert_eq(corrupt_image_bgr(&inplace, &inplace, c, 5, 9), 0, "%s: %s", corrupt_name(c), mv_last_error());
        for (int i = 0; i < 30 * 40; i++)
            for (int k = 0; k < 3; k++) {
                cr_assert_eq(got.px[3 * i + k], want.px[3 * i + 2 - k], "%s pixel %d", corrupt_name(c), i);
                cr_assert_eq(inplace.px[3 * i + k], got.px[3 * i + k], "%s in place, pixel %d", corrupt_name(c), i);
            }
        // The two that weigh the channels differently (saturate through HSV, jpeg through YCbCr)
        // must see the order.
        if (c == CORRUPT_SATURATE || c == CORRUPT_JPEG_COMPRESSION)
            cr_assert_neq(memcmp(got.px, plain.px, (size_t)30 * 40 * 3), 0, "%s ignores the order", corrupt_name(c));
        image_free(&want); image_free(&got); image_free(&inplace); image_free(&plain);
    }
    mv_image g = image_alloc(30, 40, 1), a = {0}, b = {0};
    for (int i = 0; i < 30 * 40; i++) g.px[i] = (uint8_t)(i * 13 % 256);
    cr_assert_eq(corrupt_image_bgr(&a, &g, CORRUPT_SNOW, 4, 2), 0, "%s", mv_last_error());
    cr_assert_eq(corrupt_image(&b, &g, CORRUPT_SNOW, 4, 2), 0);
    cr_assert_eq(memcmp(a.px, b.px, (size_t)30 * 40 * 3), 0, "a grey image depends on the order");
    cr_assert_eq(corrupt_image_bgr(&a, &rgb, CORRUPT_SNOW, 6, 2), -1);
    cr_assert(strstr(mv_last_error(), "severity 6"), "%s", mv_last_error());
    image_free(&a); image_free(&b); image_free(&g); image_free(&rgb); image_free(&sw);
}

static int run_corrupt(const char *a0, ...) {
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 32; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    return data_corrupt_main(argc, argv);
}

// A synthetic input split of n samples named img0.., 2 per shard: all 24x32, or (two_sizes)
// 32x48 and 24x40 alternately.
static void write_input_split(const char *in, int n, bool two_sizes) {
    mv_shard_writer *wr = shard_writer_open(in, "synth-clear", "synth/v1", 2);
    cr_assert_not_null(wr, "%s", mv_last_error());
    for (int i = 0; i < n; i++) {
        int h = two_sizes && i % 2 == 0 ? 32 : 24, w = !two_sizes ? 32 : i % 2 ? 40 : 48;
        mv_image img = image_alloc(h, w, 3), lab = image_alloc(h, w, 1);
        cr_assert_eq(synth_sample(&img, &lab, 1, 0, (uint64_t)i), 0);
        char name[32];
        snprintf(name, sizeof name, "img%d", i);
        cr_assert_eq(shard_writer_add(wr, name, &img, &lab), 0, "%s", mv_last_error());
        image_free(&img); image_free(&lab);
    }
    cr_assert_eq(shard_writer_close(wr), 0);
}

// A fresh folder MV_TEST_TMP/NAME for a test's splits: `in` and `out` (1100 bytes each) are its
// in/ and out/.
static void cli_folders(const char *name, char *in, char *out) {
    const char *base = getenv("MV_TEST_TMP");
    char dir[1024], cmd[2400];
    snprintf(dir, sizeof dir, "%s/%s", base && *base ? base : "/tmp", name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(in, 1100, "%s/in", dir);
    snprintf(out, 1100, "%s/out", dir);
}

Test(corrupt_cli, writes_corrupted_splits_with_the_labels_unchanged) {
    char in[1100], out[1100];
    cli_folders("test_corrupt_cli", in, out);
    // an input split with two image sizes
    write_input_split(in, 5, true);

    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "shot_noise,frost", "--severity", "2-3",
                             "--seed", "9", "--threads", "2", NULL), 0, "%s", mv_last_error());
    mv_split *src;
    cr_assert_eq(split_open(&src, in), 0);
    mv_sample a, b;
    sample_alloc(&a, 32, 48);
    sample_alloc(&b, 32, 48);
    const int cs[2] = {CORRUPT_SHOT_NOISE, CORRUPT_FROST};
    for (int k = 0; k < 2; k++)
        for (int s = 2; s <= 3; s++) {
            char path[1300];
            snprintf(path, sizeof path, "%s/%s/%d", out, corrupt_name(cs[k]), s);
            mv_split *dst;
            cr_assert_eq(split_open(&dst, path), 0, "%s", mv_last_error());
            cr_assert_eq(split_count(dst), 5);
            for (int i = 0; i < 5; i++) {
                cr_assert_eq(split_read(&a, src, i), 0);
                cr_assert_eq(split_read(&b, dst, i), 0, "%s", mv_last_error());
                cr_assert_str_eq(a.name, b.name);
                cr_assert_eq(memcmp(a.label.px, b.label.px, (size_t)a.label.h * a.label.w), 0, "labels unchanged");
                mv_image want = {0};
                cr_assert_eq(corrupt_image(&want, &a.rgb, cs[k], s, corrupt_image_seed(9, i)), 0);
                cr_assert_eq(memcmp(want.px, b.rgb.px, (size_t)want.h * want.w * 3), 0, "%s s%d image %d", corrupt_name(cs[k]), s, i);
                image_free(&want);
            }
            split_close(dst);
        }
    // --bgr: the corruption sees the channels swapped
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "saturate", "--severity", "5",
                             "--bgr", "--fresh", NULL), 0, "%s", mv_last_error());
    char path[1300];
    snprintf(path, sizeof path, "%s/saturate/5", out);
    mv_split *dst;
    cr_assert_eq(split_open(&dst, path), 0);
    cr_assert_eq(split_read(&a, src, 1), 0);
    cr_assert_eq(split_read(&b, dst, 1), 0);
    mv_image sw = image_alloc(a.rgb.h, a.rgb.w, 3), want = {0};
    for (int i = 0; i < a.rgb.h * a.rgb.w; i++)
        for (int k = 0; k < 3; k++) sw.px[3 * i + k] = a.rgb.px[3 * i + 2 - k];
    cr_assert_eq(corrupt_image(&want, &sw, CORRUPT_SATURATE, 5, corrupt_image_seed(0, 1)), 0);
    for (int i = 0; i < a.rgb.h * a.rgb.w; i++)
        for (int k = 0; k < 3; k++) cr_assert_eq(b.rgb.px[3 * i + k], want.px[3 * i + 2 - k]);
    image_free(&sw); image_free(&want);
    split_close(dst);
    sample_free(&a);
    sample_free(&b);
    split_close(src);

    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "rain", NULL), 2);
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--severity", "6", NULL), 2);
    cr_assert_eq(run_corrupt("corrupt", "--in", in, NULL), 2);
    snprintf(path, sizeof path, "%s/missing", in);   // a folder that is not a split
    cr_assert_eq(run_corrupt("corrupt", "--in", path, "--out", out, NULL), 1);
}

// Re-running the generator over an existing output with another --seed (or --bgr) must not
// resume from, and keep, the shards of the old seed: it is refused, and --fresh regenerates.
Test(corrupt_cli, resume_with_another_seed_is_refused) {
    char in[1100], out[1100], path[1300];
    cli_folders("test_corrupt_cli_seed", in, out);
    snprintf(path, sizeof path, "%s/gaussian_noise/2", out);
    write_input_split(in, 3, false);
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "gaussian_noise", "--severity", "2",
                             "--seed", "1", "--samples-per-shard", "1", NULL), 0, "%s", mv_last_error());
    // Same settings again: resumes (nothing to do).
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "gaussian_noise", "--severity", "2",
                             "--seed", "1", "--samples-per-shard", "1", NULL), 0, "%s", mv_last_error());
    cr_assert_neq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "gaussian_noise", "--severity", "2",
                              "--seed", "2", "--samples-per-shard", "1", NULL), 0, "kept the seed-1 images for seed 2");
    cr_assert(strstr(mv_last_error(), "seed=1") && strstr(mv_last_error(), "--fresh"), "%s", mv_last_error());
    cr_assert_neq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "gaussian_noise", "--severity", "2",
                              "--seed", "1", "--bgr", "--samples-per-shard", "1", NULL), 0, "kept RGB images for --bgr");
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "gaussian_noise", "--severity", "2",
                             "--seed", "2", "--samples-per-shard", "1", "--fresh", NULL), 0, "%s", mv_last_error());
    mv_split *src, *dst;
    cr_assert_eq(split_open(&src, in), 0);
    cr_assert_eq(split_open(&dst, path), 0, "%s", mv_last_error());
    mv_sample a, b;
    sample_alloc(&a, 24, 32);
    sample_alloc(&b, 24, 32);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(split_read(&a, src, i), 0);
        cr_assert_eq(split_read(&b, dst, i), 0, "%s", mv_last_error());
        mv_image want = {0};
        cr_assert_eq(corrupt_image(&want, &a.rgb, CORRUPT_GAUSSIAN_NOISE, 2, corrupt_image_seed(2, i)), 0);
        cr_assert_eq(memcmp(want.px, b.rgb.px, 24 * 32 * 3), 0, "image %d is not the seed-2 one", i);
        image_free(&want);
    }
    sample_free(&a);
    sample_free(&b);
    split_close(src);
    split_close(dst);
}

// Another input of the same label map and sample count (a --limit trial of train, then of val,
// into one --out) must not resume from the first one's shards: the output would mix the two.
Test(corrupt_cli, resume_from_another_input_is_refused) {
    char in[1100], out[1100], in2[1200];
    cli_folders("test_corrupt_cli_input", in, out);
    snprintf(in2, sizeof in2, "%s2", in);
    write_input_split(in, 3, false);
    write_input_split(in2, 3, true);   // same label map and count, other images
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "brightness", "--severity", "1",
                             "--samples-per-shard", "1", NULL), 0, "%s", mv_last_error());
    cr_assert_neq(run_corrupt("corrupt", "--in", in2, "--out", out, "--corruption", "brightness", "--severity", "1",
                              "--samples-per-shard", "1", NULL), 0, "resumed from the shards of another input");
    cr_assert(strstr(mv_last_error(), " in=") && strstr(mv_last_error(), "--fresh"), "%s", mv_last_error());
    // The same input again: nothing to do, still accepted.
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "brightness", "--severity", "1",
                             "--samples-per-shard", "1", NULL), 0, "%s", mv_last_error());
}

// Shards written by an older version of the corruptions (label map "... corrupt/v1 ...", before
// the package-exact arithmetic) are not resumed into: their pixels differ.
Test(corrupt_cli, older_corruption_version_is_refused) {
    char in[1100], out[1100], path[1300];
    cli_folders("test_corrupt_cli_version", in, out);
    snprintf(path, sizeof path, "%s/contrast/1", out);
    write_input_split(in, 2, false);
    mv_shard_writer *wr = shard_writer_open(path, "synth-clear-contrast-1", "synth/v1 corrupt/v1 seed=0 n=2", 1);
    cr_assert_not_null(wr, "%s", mv_last_error());
    mv_image img = image_alloc(24, 32, 3), lab = image_alloc(24, 32, 1);
    memset(img.px, 7, 24 * 32 * 3);
    memset(lab.px, 0, 24 * 32);
    cr_assert_eq(shard_writer_add(wr, "img0", &img, &lab), 0, "%s", mv_last_error());
    cr_assert_eq(shard_writer_close(wr), 0);
    image_free(&img); image_free(&lab);
    cr_assert_neq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "contrast", "--severity", "1",
                              "--samples-per-shard", "1", NULL), 0, "resumed into corrupt/v1 shards");
    cr_assert(strstr(mv_last_error(), "corrupt/v1") && strstr(mv_last_error(), "corrupt/v2"), "%s", mv_last_error());
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "contrast", "--severity", "1",
                             "--samples-per-shard", "1", "--fresh", NULL), 0, "%s", mv_last_error());
}

// A corrupted split given as the input (its label map records the corruption) is warned about:
// Cityscapes-C corrupts the clean images once, so it is most likely the wrong folder.
Test(corrupt_cli, corrupting_a_corrupted_split_is_warned, .init = cr_redirect_stderr) {
    char in[1100], out[1100], out2[1200], once[1300];
    cli_folders("test_corrupt_cli_twice", in, out);
    snprintf(out2, sizeof out2, "%s2", out);
    snprintf(once, sizeof once, "%s/contrast/1", out);
    write_input_split(in, 2, false);
    cr_assert_eq(run_corrupt("corrupt", "--in", in, "--out", out, "--corruption", "contrast", "--severity", "1", NULL), 0,
                 "%s", mv_last_error());
    cr_assert_eq(run_corrupt("corrupt", "--in", once, "--out", out2, "--corruption", "contrast", "--severity", "1", NULL),
                 0, "%s", mv_last_error());
    fflush(stderr);
    char text[8192] = "";
    size_t n = fread(text, 1, sizeof text - 1, cr_get_redirected_stderr());
    text[n] = 0;
    cr_assert(strstr(text, "warning: ") && strstr(text, "is itself a corrupted split (synth/v1 corrupt/v2 seed=0 n=2 in="),
              "%s", text);
    // The clean input was not warned about: one warning, for the second run.
    cr_assert_null(strstr(strstr(text, "is itself") + 1, "is itself"), "%s", text);
}
