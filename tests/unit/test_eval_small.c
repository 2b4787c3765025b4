// Inference on inputs under the model's 32x32 minimum (an extreme aspect ratio or a small
// data.scale): eval_infer pads the input to 32 on the short side (bottom/right, zeros), and its
// logits must equal, bit for bit, the padded forward done here by hand: logits resized to the
// padded size, the padding cropped off, then resized to the label's size. A resize straight to
// the unpadded size, or a crop from the wrong corner, gives other logits (checked to differ).
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/config.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/model.h"
#include "core/model_config.h"
#include "core/params.h"
#include "core/rng.h"

typedef struct {
    mv_model m;
    mv_data_config d;
    int K;
} fixture;

static void setup(fixture *f) {
    mv_model_config c;
    cr_assert(model_config_preset(&c, "maskvim-nano") == 0);
    cr_assert(model_config_set(&c, "model.num_classes", "6") == 0, "%s", mv_last_error());
    cr_assert(model_build(&f->m, &c) == 0, "%s", mv_last_error());
    params_init(&f->m.params, 5);
    memset(&f->d, 0, sizeof f->d);
    f->K = c.num_classes;
}

static float *random_image(int h, int w, uint32_t seed) {
    float *img = malloc(sizeof(float) * 3 * h * w);
    for (int i = 0; i < 3 * h * w; i++) {
        mv_rng4 r = philox4x32(seed, 0, (uint32_t)i, 0, 0);
        img[i] = 2.0f * (rng_u01(r.v[0]) + rng_u01(r.v[1]) - 1.0f);
    }
    return img;
}

// The reference: the image [3, h, w] padded by hand into [3, ph, pw] (zeros bottom/right), one
// forward on an inference plan of that size, the logits resized to (ph, pw), the top-left (h, w)
// kept: [h, w, K] into out. With `direct`, the wrong order instead: the padded forward's logits
// resized straight to (h, w) (no crop).
static void reference(float *out, fixture *f, const float *img, int h, int w, int ph, int pw, bool direct) {
    int K = f->K;
    float *pad = calloc((size_t)3 * ph * pw, sizeof(float)), *up = malloc(sizeof(float) * ph * pw * K);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) pad[((size_t)c * ph + y) * pw + x] = img[((size_t)c * h + y) * w + x];
    mv_run_ctx ctx = {.training = false, .world_size = 1};
    cr_assert(model_plan(&f->m, 1, ph, pw, MV_PLAN_INFER) == 0, "%s", mv_last_error());
    cr_assert(model_forward(&f->m, pad, NULL, &ctx) == 0, "%s", mv_last_error());
    if (direct) bilinear_forward(out, f->m.logits, 1, f->m.Hs[0], f->m.Ws[0], h, w, K);
    else {
        bilinear_forward(up, f->m.logits, 1, f->m.Hs[0], f->m.Ws[0], ph, pw, K);
        for (int y = 0; y < h; y++) memcpy(out + (size_t)y * w * K, up + (size_t)y * pw * K, sizeof(float) * w * K);
    }
    free(pad); free(up);
}

static size_t count_differing(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

// Whole-image inference of an h x w image predicted at (lh, lw), against the reference.
static void check_whole(int h, int w, int lh, int lw, uint32_t seed) {
    fixture f;
    setup(&f);
    int K = f.K, ph = h < 32 ? 32 : h, pw = w < 32 ? 32 : w;
    float *img = random_image(h, w, seed);
    size_t n = (size_t)h * w * K, nl = (size_t)lh * lw;
    uint8_t *pred = malloc(nl);
    mv_eval_buffers buf = {0};
    cr_assert(eval_infer(pred, &buf, &f.m, &f.d, img, h, w, lh, lw) == 0, "%dx%d: %s", h, w, mv_last_error());

    float *ref = malloc(sizeof(float) * n), *wrong = malloc(sizeof(float) * n), *at_label = malloc(sizeof(float) * nl * K);
    reference(ref, &f, img, h, w, ph, pw, false);
    size_t differ = count_differing(buf.input, ref, n);
    cr_expect_eq(differ, 0, "%dx%d: %zu of %zu logits differ from pad, forward, resize to %dx%d, crop", h, w, differ, n,
                 ph, pw);
    // The case must tell the orders apart: resizing the padded logits straight to (h, w) differs.
    reference(wrong, &f, img, h, w, ph, pw, true);
    cr_expect(count_differing(wrong, ref, n) > n / 2, "%dx%d: the resize order makes no difference here", h, w);

    // Then the resize to the label's size and argmax (first maximum on ties), from the cropped logits.
    const float *full = ref;
    if (lh != h || lw != w) {
        bilinear_forward(at_label, ref, 1, h, w, lh, lw, K);
        full = at_label;
    }
    size_t wrong_px = 0;
    for (size_t i = 0; i < nl; i++) {
        int best = 0;
        for (int k = 1; k < K; k++) if (full[i * K + k] > full[i * K + best]) best = k;
        wrong_px += pred[i] != best;
    }
    cr_expect_eq(wrong_px, 0, "%dx%d -> %dx%d: %zu of %zu pixels take another class", h, w, lh, lw, wrong_px, nl);
    eval_buffers_free(&buf);
    free(img); free(pred); free(ref); free(wrong); free(at_label);
    model_free(&f.m);
}

// 24x40 (the short side padded), predicted at a larger label size (the test resize shrank it).
Test(eval_small, whole_short_height, .timeout = 120) { check_whole(24, 40, 30, 50, 1); }

// 9x128: the 20x300 image of a data.scale of 128x64 (an extreme aspect ratio).
Test(eval_small, whole_extreme_ratio, .timeout = 120) { check_whole(9, 128, 20, 300, 2); }

// The width under 32, and both sides under 32.
Test(eval_small, whole_short_width, .timeout = 120) { check_whole(40, 20, 40, 20, 3); }
Test(eval_small, whole_both_sides, .timeout = 120) { check_whole(24, 24, 24, 24, 4); }

// Slide inference on a 24x100 image with 32x64 windows (stride 32x40): the single row of windows
// is clipped to 24 rows, each window is padded to 32x64; the averaged logits against the same
// windows padded, run, resized, cropped and summed here in the same order.
Test(eval_small, slide_clipped_windows, .timeout = 120) {
    fixture f;
    setup(&f);
    int K = f.K, H = 24, W = 100;
    f.d.test_mode = MV_TEST_SLIDE;
    f.d.test_crop[0] = 32; f.d.test_crop[1] = 64;
    f.d.test_stride[0] = 32; f.d.test_stride[1] = 40;
    float *img = random_image(H, W, 9);
    size_t npx = (size_t)H * W;
    uint8_t *pred = malloc(npx);
    mv_eval_buffers buf = {0};
    cr_assert(eval_infer(pred, &buf, &f.m, &f.d, img, H, W, H, W) == 0, "%s", mv_last_error());

    const int xs[2][2] = {{0, 64}, {36, 100}};   // eval_windows(100, 64, 40); one row [0, 24)
    float *sum = calloc(npx * K, sizeof(float)), *count = calloc(npx, sizeof(float));
    float *win = malloc(sizeof(float) * 3 * H * 64), *logits = malloc(sizeof(float) * H * 64 * K);
    for (int c = 0; c < 2; c++) {
        int x0 = xs[c][0], ww = xs[c][1] - x0;
        for (int k = 0; k < 3; k++)
            for (int y = 0; y < H; y++)
                memcpy(win + ((size_t)k * H + y) * ww, img + ((size_t)k * H + y) * W + x0, sizeof(float) * ww);
        reference(logits, &f, win, H, ww, 32, 64, false);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < ww; x++) {
                size_t p = (size_t)y * W + x0 + x;
                count[p] += 1.0f;
                for (int k = 0; k < K; k++) sum[p * K + k] += logits[((size_t)y * ww + x) * K + k];
            }
    }
    double worst = 0;
    size_t overlap = 0;
    for (size_t p = 0; p < npx; p++) {
        cr_assert(count[p] > 0, "pixel %zu is in no window", p);
        overlap += count[p] > 1;
        for (int k = 0; k < K; k++) worst = fmax(worst, fabs(sum[p * K + k] / count[p] - buf.input[p * K + k]));
    }
    cr_expect(overlap > 0, "the windows do not overlap: the case does not test the average");
    cr_expect(worst <= 1e-6, "averaged logits differ from the padded windows' by %.3g", worst);
    eval_buffers_free(&buf);
    free(img); free(pred); free(sum); free(count); free(win); free(logits);
    model_free(&f.m);
}

// 32 on a side is not padded: the logits are the plain forward's, resized once (as before).
Test(eval_small, minimum_size_unpadded, .timeout = 120) {
    fixture f;
    setup(&f);
    int K = f.K, h = 32, w = 48;
    float *img = random_image(h, w, 5);
    size_t n = (size_t)h * w * K;
    uint8_t *pred = malloc((size_t)h * w);
    mv_eval_buffers buf = {0};
    cr_assert(eval_infer(pred, &buf, &f.m, &f.d, img, h, w, h, w) == 0, "%s", mv_last_error());
    float *ref = malloc(sizeof(float) * n);
    reference(ref, &f, img, h, w, h, w, true);
    cr_expect_eq(count_differing(buf.input, ref, n), 0);
    eval_buffers_free(&buf);
    free(img); free(pred); free(ref);
    model_free(&f.m);
}
