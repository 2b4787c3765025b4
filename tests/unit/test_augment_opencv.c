// The uint8 steps of the training and test pipelines against OpenCV itself: checksums of
// cv2.resize (INTER_LINEAR, INTER_NEAREST) and cv2.cvtColor (COLOR_BGR2HSV, COLOR_HSV2BGR)
// outputs, and of mmseg's whole training transform (RandomResize, RandomCrop, RandomFlip,
// PhotoMetricDistortion, written out with cv2 and numpy as mmcv/mmseg run it) given this
// implementation's random draws. The expected values were computed once with OpenCV 4.6.0 and
// numpy 1.24 (Debian 12's python3-opencv, on an x86-64 machine with AVX2) on the patterns below;
// nothing here runs Python. They pin OpenCV's 8-bit arithmetic: the resize's 11-bit
// fixed-point weights and its vertical pass that drops 4 bits before multiplying, row weights
// kept at the top and bottom border, HSV through OpenCV's integer tables, and HSV back to RGB
// truncated in cvtColor's vector path (a row's first 32 * (w / 32) pixels) and rounded after it.
// The float bilinear resize this replaced differs from these bytes on about 1 in 8 of them.
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "data/augment.h"

// Integer-only patterns both sides build: a ramp with hash noise, a flat block, a saturated stripe.
static mv_image pattern(int h, int w) {
    mv_image img = image_alloc(h, w, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int64_t nx = (int64_t)x * 73856093, ny = (int64_t)y * 19349663;
            int n = (int)((nx ^ ny) % 41);
            uint8_t *p = img.px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)((x * 9 + y * 4 + n) % 256);
            p[1] = (uint8_t)(((200 - 3 * x + 5 * y) % 256 + 256) % 256);
            p[2] = (uint8_t)(((int64_t)x * y + 17 + n) % 256);
            if (y >= 10 && y < 22 && x >= 8 && x < 30) { p[0] = 90; p[1] = 140; p[2] = 200; }
            if (y >= 30 && y < 34) { p[0] = 250; p[1] = 20; p[2] = 5; }
        }
    return img;
}

// Labels: blocks of six classes with a band of ignore (255).
static mv_image label_pattern(int h, int w) {
    mv_image lab = image_alloc(h, w, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) lab.px[(size_t)y * w + x] = (uint8_t)(y >= 40 && y < 47 ? 255 : (x / 23 + (y / 17) * 3) % 6);
    return lab;
}

// The sum of the bytes, and the sum weighted by (index % 1009 + 1): a grey level moved anywhere
// changes the second.
static void checksum(const uint8_t *px, size_t n, int64_t out[2]) {
    out[0] = out[1] = 0;
    for (size_t i = 0; i < n; i++) {
        out[0] += px[i];
        out[1] += (int64_t)(i % 1009 + 1) * px[i];
    }
}

// Python: cv2.resize(pattern(h, w), (nw, nh), interpolation=cv2.INTER_LINEAR)[y0:y0+wh, x0:x0+ww]
// (channel order does not matter to the resize).
typedef struct { int h, w, nh, nw, y0, x0, wh, ww; int64_t sum[2]; } resize_golden;
static const resize_golden RESIZE[] = {
    {37, 53, 71, 97, 0, 0, 71, 97, {2592160, 1291830887}},
    {37, 53, 19, 23, 0, 0, 19, 23, {164929, 72258116}},
    {40, 60, 20, 30, 0, 0, 20, 30, {221789, 102945181}},
    {45, 60, 15, 20, 0, 0, 15, 20, {110958, 49748726}},
    {33, 47, 66, 94, 0, 0, 66, 94, {2387633, 1190640561}},
    {1, 9, 4, 3, 0, 0, 4, 3, {3372, 63306}},
    {9, 1, 3, 4, 0, 0, 3, 4, {3036, 58770}},
    {5, 7, 1, 13, 0, 0, 1, 13, {3832, 78976}},
    {1, 1, 3, 2, 0, 0, 3, 2, {1302, 12471}},
    {720, 1280, 1024, 1820, 0, 0, 1024, 1820, {710132821, 358608972014}},
    {1052, 1914, 1024, 1863, 0, 0, 1024, 1863, {727070806, 367155790705}},
    {1024, 2048, 1434, 2867, 301, 1203, 512, 1024, {200034482, 101048142042}},
    {1024, 2048, 717, 1433, 205, 409, 512, 1024, {200191834, 101088328512}},
    {300, 500, 529, 883, 17, 860, 200, 23, {1710385, 849251814}},
};

Test(augment_opencv, bilinear_resize) {
    for (size_t t = 0; t < sizeof RESIZE / sizeof RESIZE[0]; t++) {
        const resize_golden *g = &RESIZE[t];
        mv_image img = pattern(g->h, g->w);
        mv_aug_config cfg;
        augment_default_config(&cfg, 16, 16);
        mv_aug_scratch s;
        aug_scratch_alloc(&s, &cfg, g->ww);
        uint8_t *out = malloc((size_t)g->wh * g->ww * 3);
        augment_resize_window(out, &img, g->nh, g->nw, g->y0, g->x0, g->wh, g->ww, &s);
        int64_t sum[2];
        checksum(out, (size_t)g->wh * g->ww * 3, sum);
        cr_expect(sum[0] == g->sum[0] && sum[1] == g->sum[1], "%dx%d -> %dx%d window (%d,%d,%d,%d): %lld %lld, cv2 %lld %lld",
                  g->h, g->w, g->nh, g->nw, g->y0, g->x0, g->wh, g->ww, (long long)sum[0], (long long)sum[1],
                  (long long)g->sum[0], (long long)g->sum[1]);
        free(out);
        aug_scratch_free(&s);
        image_free(&img);
    }
}

// Any window is the same bytes as the whole resize cropped (no reference needed).
Test(augment_opencv, window_is_crop_of_full_resize) {
    static const int cases[][8] = {{37, 53, 71, 97, 13, 29, 40, 61}, {37, 53, 19, 23, 3, 1, 16, 22}, {50, 80, 25, 40, 7, 5, 18, 35},
                                   {1, 9, 4, 3, 1, 2, 3, 1}, {300, 500, 529, 883, 17, 860, 200, 23}, {64, 90, 200, 173, 150, 0, 50, 173}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        mv_image img = pattern(c[0], c[1]);
        mv_aug_config cfg;
        augment_default_config(&cfg, 16, 16);
        mv_aug_scratch s;
        aug_scratch_alloc(&s, &cfg, c[3]);
        uint8_t *full = malloc((size_t)c[2] * c[3] * 3), *win = malloc((size_t)c[6] * c[7] * 3);
        augment_resize_window(full, &img, c[2], c[3], 0, 0, c[2], c[3], &s);
        augment_resize_window(win, &img, c[2], c[3], c[4], c[5], c[6], c[7], &s);
        for (int y = 0; y < c[6]; y++)
            cr_assert_eq(memcmp(win + (size_t)y * c[7] * 3, full + ((size_t)(c[4] + y) * c[3] + c[5]) * 3, (size_t)c[7] * 3), 0,
                         "case %zu row %d", t, y);
        free(full);
        free(win);
        aug_scratch_free(&s);
        image_free(&img);
    }
}

// Python: cv2.cvtColor(all 2^24 colours as BGR, in the order r * 65536 + g * 256 + b, as a
// 4096 x 4096 image, cv2.COLOR_BGR2HSV).
Test(augment_opencv, rgb_to_hsv_all_colours) {
    int64_t sum[2] = {0, 0};
    for (uint32_t i = 0; i < (1u << 24); i++) {
        uint8_t rgb[3] = {(uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i}, hsv[3];
        augment_rgb_to_hsv(hsv, rgb);
        for (int c = 0; c < 3; c++) {
            size_t k = 3 * (size_t)i + c;
            sum[0] += hsv[c];
            sum[1] += (int64_t)(k % 1009 + 1) * hsv[c];
        }
    }
    cr_assert(sum[0] == 7574841255 && sum[1] == 3825264644295, "%lld %lld", (long long)sum[0], (long long)sum[1]);
}

// Python: every (H < 180, S, V) in the order H * 65536 + S * 256 + V, as an image of rows of
// w pixels, cv2.cvtColor(.., cv2.COLOR_HSV2BGR), channels reversed to RGB. Rows of 4096 go
// through cvtColor's vector path only, rows of 20 through its plain C path only (the per-pixel
// function), rows of 48 through both.
Test(augment_opencv, hsv_to_rgb_all_inputs) {
    static const struct { int w; int64_t sum[2]; } golden[] = {
        {4096, {3372357705, 1703032917001}}, {48, {3376290434, 1705019118317}}, {20, {3384158260, 1708992466408}}};
    size_t n = 180u * 65536u;
    uint8_t *in = malloc(3 * n), *out = malloc(3 * n);
    for (size_t k = 0; k < n; k++) {
        in[3 * k] = (uint8_t)(k >> 16);
        in[3 * k + 1] = (uint8_t)(k >> 8);
        in[3 * k + 2] = (uint8_t)k;
    }
    for (int t = 0; t < 3; t++) {
        int w = golden[t].w;
        for (size_t r = 0; r < n / w; r++) augment_hsv_to_rgb_row(out + 3 * r * w, in + 3 * r * w, w);
        int64_t sum[2];
        checksum(out, 3 * n, sum);
        cr_expect(sum[0] == golden[t].sum[0] && sum[1] == golden[t].sum[1], "rows of %d: %lld %lld", w, (long long)sum[0],
                  (long long)sum[1]);
    }
    for (size_t k = 0; k < n; k++) augment_hsv_to_rgb(out + 3 * k, in + 3 * k);
    int64_t sum[2];
    checksum(out, 3 * n, sum);
    cr_expect(sum[0] == golden[2].sum[0] && sum[1] == golden[2].sum[1], "per pixel: %lld %lld", (long long)sum[0], (long long)sum[1]);
    free(in);
    free(out);
}

// Python, for each sample key with the draws augment_train reports (seed 7, epoch 1, a 300 x 500
// pattern, crop 100 x crop_w, scale (500, 300)): cv2.resize of the BGR image (INTER_LINEAR) and
// the label (INTER_NEAREST) to (new_w, new_h), the crop, np.flip(.., 1) when flipped, then
// PhotoMetricDistortion's steps with its convert (float32, clip, astype uint8) and
// cv2.cvtColor; the RGB bytes of the (crop_h, crop_w) image and the label padded with 255.
// crop_w 300 leaves rows of 300 or 278 pixels, whose last 12 or 22 pixels cvtColor converts
// outside its vector path (from the left after a flip).
typedef struct { int crop_w, key; int64_t img[2], lab[2]; } train_golden;
static const train_golden TRAIN[] = {
    {270, 0, {10265275, 5169474584}, {340104, 174176446}},
    {270, 1, {11840357, 5964075635}, {407390, 229413194}},
    {270, 2, {11587252, 5839065264}, {475672, 256479610}},
    {270, 3, {13248099, 6678851623}, {476528, 233668801}},
    {270, 4, {11807870, 5942840177}, {407976, 177090260}},
    {270, 5, {8485360, 4277990597}, {68800, 34471359}},
    {270, 6, {10316358, 5203679177}, {68540, 34283458}},
    {270, 7, {10353572, 5213079601}, {68116, 34454383}},
    {270, 8, {10333385, 5203445403}, {69220, 34775146}},
    {270, 9, {7804946, 3920681563}, {69480, 34876658}},
    {270, 10, {10333790, 5216322889}, {69564, 34807086}},
    {270, 11, {14092500, 7099727483}, {66200, 33073604}},
    {300, 0, {10567927, 5323109381}, {910422, 479019579}},
    {300, 1, {13145297, 6629186432}, {451878, 224249921}},
    {300, 2, {12846962, 6476197446}, {530538, 268432301}},
    {300, 3, {14733013, 7421389425}, {530960, 254991225}},
    {300, 4, {13141814, 6620473638}, {453170, 196359014}},
    {300, 5, {9412658, 4747690309}, {73500, 36798375}},
    {300, 6, {11473055, 5780131240}, {78840, 39530997}},
    {300, 7, {11518476, 5806935842}, {77612, 38917307}},
    {300, 8, {11469824, 5780528773}, {75164, 37786184}},
    {300, 9, {8661334, 4363538998}, {76250, 38290467}},
    {300, 10, {11482232, 5789468451}, {76684, 38285387}},
    {300, 11, {15666679, 7889574782}, {73500, 37004177}},
};

Test(augment_opencv, train_transform_bytes) {
    mv_image img = pattern(300, 500), lab = label_pattern(300, 500);
    for (size_t t = 0; t < sizeof TRAIN / sizeof TRAIN[0]; t++) {
        const train_golden *g = &TRAIN[t];
        mv_aug_config cfg;
        augment_default_config(&cfg, 100, g->crop_w);
        cfg.scale_long = 500;
        cfg.scale_short = 300;
        mv_aug_scratch s;
        aug_scratch_alloc(&s, &cfg, g->crop_w);
        float *out = malloc(sizeof(float) * 3 * 100 * g->crop_w);
        uint8_t *out_lab = malloc((size_t)100 * g->crop_w), *bytes = malloc((size_t)3 * 100 * g->crop_w);
        mv_aug_params p;
        augment_train(out, out_lab, &p, &img, &lab, &cfg, 7, 1, (uint64_t)g->key, &s);
        // Back to bytes: the normalised value is exactly lut(byte) = (byte - mean) / std in float.
        size_t plane = (size_t)100 * g->crop_w;
        for (int y = 0; y < p.crop_h; y++)
            for (int x = 0; x < p.crop_w; x++)
                for (int c = 0; c < 3; c++) {
                    float v = out[c * plane + (size_t)y * g->crop_w + x];
                    long b = lrintf(v * cfg.std[c] + cfg.mean[c]);
                    cr_assert(b >= 0 && b <= 255 && ((float)b - cfg.mean[c]) / cfg.std[c] == v);
                    bytes[((size_t)y * p.crop_w + x) * 3 + c] = (uint8_t)b;
                }
        int64_t si[2], sl[2];
        checksum(bytes, (size_t)p.crop_h * p.crop_w * 3, si);
        checksum(out_lab, plane, sl);
        cr_expect(si[0] == g->img[0] && si[1] == g->img[1], "crop_w %d key %d image: %lld %lld", g->crop_w, g->key,
                  (long long)si[0], (long long)si[1]);
        cr_expect(sl[0] == g->lab[0] && sl[1] == g->lab[1], "crop_w %d key %d label: %lld %lld", g->crop_w, g->key,
                  (long long)sl[0], (long long)sl[1]);
        free(out);
        free(out_lab);
        free(bytes);
        aug_scratch_free(&s);
    }
    image_free(&img);
    image_free(&lab);
}
