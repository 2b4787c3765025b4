// Sliding-window inference (data.test_mode: slide): the window grid of mmseg's slide_inference
// (mmseg's examples, docs/config.md `data.test_stride`), one window over the whole image equal to whole-image
// inference bit for bit, and overlapping windows against an independent accumulation in double
// of each window's forward.
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

Test(eval_slide, window_grid_as_mmseg) {
    int lo[16], hi[16];
    // 1024x2048 with crop 512 / stride 341: 3 x 6 windows, the last ones flush with the border.
    cr_expect_eq(eval_windows(lo, hi, 1024, 512, 341), 3);
    cr_expect(lo[0] == 0 && hi[0] == 512 && lo[1] == 341 && hi[1] == 853 && lo[2] == 512 && hi[2] == 1024);
    cr_expect_eq(eval_windows(lo, hi, 2048, 512, 341), 6);
    cr_expect(lo[5] == 1536 && hi[5] == 2048, "last window [%d, %d)", lo[5], hi[5]);
    // crop 769 / stride 513: 2 x 4.
    cr_expect_eq(eval_windows(NULL, NULL, 1024, 769, 513), 2);
    cr_expect_eq(eval_windows(NULL, NULL, 2048, 769, 513), 4);
    // A side shorter than the window: one window, the whole side.
    cr_expect_eq(eval_windows(lo, hi, 300, 512, 341), 1);
    cr_expect(lo[0] == 0 && hi[0] == 300);
    // Exactly one window long, and stride equal to the window (no overlap).
    cr_expect_eq(eval_windows(lo, hi, 512, 512, 341), 1);
    cr_expect_eq(eval_windows(lo, hi, 1024, 512, 512), 2);
    cr_expect(lo[1] == 512 && hi[1] == 1024);
}

typedef struct {
    mv_model m;
    mv_data_config d;
    int K, H, W;
    float *img;
} fixture;

static void setup(fixture *f, int H, int W) {
    mv_model_config c;
    cr_assert(model_config_preset(&c, "maskvim-nano") == 0);
    cr_assert(model_config_set(&c, "model.num_classes", "6") == 0, "%s", mv_last_error());
    cr_assert(model_build(&f->m, &c) == 0, "%s", mv_last_error());
    params_init(&f->m.params, 5);
    memset(&f->d, 0, sizeof f->d);
    f->K = c.num_classes;
    f->H = H;
    f->W = W;
    f->img = malloc(sizeof(float) * 3 * H * W);
    for (int i = 0; i < 3 * H * W; i++) {
        mv_rng4 r = philox4x32(11, 0, (uint32_t)i, 0, 0);
        f->img[i] = 2.0f * (rng_u01(r.v[0]) + rng_u01(r.v[1]) - 1.0f);
    }
}

static void teardown(fixture *f) {
    free(f->img);
    model_free(&f->m);
}

Test(eval_slide, one_window_is_whole_image, .timeout = 120) {
    fixture f;
    setup(&f, 72, 104);
    size_t npx = (size_t)f.H * f.W;
    uint8_t *whole = malloc(npx), *slid = malloc(npx);
    mv_eval_buffers a = {0}, b = {0};
    cr_assert(eval_infer(whole, &a, &f.m, &f.d, f.img, f.H, f.W, 50, 77) == 0, "%s", mv_last_error());
    f.d.test_mode = MV_TEST_SLIDE;
    f.d.test_crop[0] = 96;   // larger than the image: one window, the image itself
    f.d.test_crop[1] = 128;
    cr_assert(eval_infer(slid, &b, &f.m, &f.d, f.img, f.H, f.W, 50, 77) == 0, "%s", mv_last_error());
    size_t nl = npx * f.K, differ = 0;
    for (size_t i = 0; i < nl; i++) differ += memcmp(&a.input[i], &b.input[i], sizeof(float)) != 0;
    cr_expect_eq(differ, 0, "%zu of %zu logits differ between one window and the whole image", differ, nl);
    cr_expect_eq(memcmp(whole, slid, 50 * 77), 0);
    eval_buffers_free(&a);
    eval_buffers_free(&b);
    free(whole); free(slid);
    teardown(&f);
}

Test(eval_slide, overlapping_windows_average_their_logits, .timeout = 120) {
    fixture f;
    setup(&f, 72, 104);
    int ch = 48, cw = 64, sh = 32, sw = 40, K = f.K, H = f.H, W = f.W;
    f.d.test_mode = MV_TEST_SLIDE;
    f.d.test_crop[0] = ch; f.d.test_crop[1] = cw;
    f.d.test_stride[0] = sh; f.d.test_stride[1] = sw;
    size_t npx = (size_t)H * W;
    uint8_t *pred = malloc(npx);
    mv_eval_buffers buf = {0};
    cr_assert(eval_infer(pred, &buf, &f.m, &f.d, f.img, H, W, H, W) == 0, "%s", mv_last_error());

    // Reference: the grid written out by hand (rows [0,48) [24,72); columns [0,64) [40,104)),
    // each window's forward on its own plan, logits resized to the window and summed in double.
    const int ys[2][2] = {{0, 48}, {24, 72}}, xs[2][2] = {{0, 64}, {40, 104}};
    double *sum = calloc(npx * K, sizeof(double));
    int *count = calloc(npx, sizeof(int));
    float *win = malloc(sizeof(float) * 3 * ch * cw), *up = malloc(sizeof(float) * ch * cw * K);
    mv_run_ctx ctx = {.training = false, .world_size = 1};
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 2; c++) {
            int y0 = ys[r][0], x0 = xs[c][0];
            cr_assert(ys[r][1] - y0 == ch && xs[c][1] - x0 == cw);
            for (int k = 0; k < 3; k++)
                for (int y = 0; y < ch; y++)
                    for (int x = 0; x < cw; x++)
                        win[((size_t)k * ch + y) * cw + x] = f.img[((size_t)k * H + y0 + y) * W + x0 + x];
            cr_assert(model_plan(&f.m, 1, ch, cw, MV_PLAN_INFER) == 0);
            cr_assert(model_forward(&f.m, win, NULL, &ctx) == 0);
            bilinear_forward(up, f.m.logits, 1, f.m.Hs[0], f.m.Ws[0], ch, cw, K);
            for (int y = 0; y < ch; y++)
                for (int x = 0; x < cw; x++) {
                    size_t p = (size_t)(y0 + y) * W + x0 + x;
                    count[p]++;
                    for (int k = 0; k < K; k++) sum[p * K + k] += up[((size_t)y * cw + x) * K + k];
                }
        }
    double worst = 0;
    size_t overlap = 0, wrong = 0;
    for (size_t p = 0; p < npx; p++) {
        cr_assert(count[p] > 0, "pixel %zu is in no window", p);
        overlap += count[p] > 1;
        int best = 0;
        for (int k = 0; k < K; k++) {
            double ref = sum[p * K + k] / count[p];
            worst = fmax(worst, fabs(ref - buf.input[p * K + k]));
            if (sum[p * K + k] > sum[p * K + best]) best = k;
        }
        wrong += pred[p] != best;
    }
    cr_expect(overlap > 0, "the windows do not overlap: the case does not test the average");
    cr_expect(worst < 1e-5, "averaged logits differ from the reference by %.3g", worst);
    cr_expect(wrong <= npx / 1000, "%zu of %zu pixels take another class than the reference's argmax", wrong, npx);
    free(sum); free(count); free(win); free(up); free(pred);
    eval_buffers_free(&buf);
    teardown(&f);
}
