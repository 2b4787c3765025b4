// Sliding-window inference against mmseg's slide_inference loop written out literally (h_grids,
// w_grids, y1 = i * stride, y2 = min(y1 + crop, H), y1 = max(y2 - crop, 0), logits summed and
// divided by the per-pixel window count), on grids the other slide tests do not build: an
// image lower than the window but wider (windows clipped on one side only), strides that do not
// divide the image, windows covering a pixel up to four times, and a prediction at another
// (label) size. The reference runs each window's forward itself and accumulates in double.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/evaluate.h"
#include "core/model.h"
#include "core/model_config.h"
#include "core/params.h"
#include "core/rng.h"

typedef struct {
    int H, W, ch, cw, sh, sw;
} grid_case;

static void random_image(float *img, int H, int W, uint32_t seed) {
    for (int i = 0; i < 3 * H * W; i++) {
        mv_rng4 r = philox4x32(seed, 0, (uint32_t)i, 0, 0);
        img[i] = 2.0f * (rng_u01(r.v[0]) + rng_u01(r.v[1]) - 1.0f);
    }
}

// mmseg's loop: the summed logits ([H, W, K], double) and the per-pixel count.
static void reference(double *sum, int *count, mv_model *m, const float *img, const grid_case *g, int K) {
    int h_grids = (g->H - g->ch + g->sh - 1 > 0 ? g->H - g->ch + g->sh - 1 : 0) / g->sh + 1;
    int w_grids = (g->W - g->cw + g->sw - 1 > 0 ? g->W - g->cw + g->sw - 1 : 0) / g->sw + 1;
    mv_run_ctx ctx = {.training = false, .world_size = 1};
    for (int i = 0; i < h_grids; i++)
        for (int j = 0; j < w_grids; j++) {
            int y1 = i * g->sh, x1 = j * g->sw;
            int y2 = y1 + g->ch < g->H ? y1 + g->ch : g->H, x2 = x1 + g->cw < g->W ? x1 + g->cw : g->W;
            y1 = y2 - g->ch > 0 ? y2 - g->ch : 0;
            x1 = x2 - g->cw > 0 ? x2 - g->cw : 0;
            int wh = y2 - y1, ww = x2 - x1;
            float *win = malloc(sizeof(float) * 3 * wh * ww), *up = malloc(sizeof(float) * wh * ww * K);
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < wh; y++)
                    memcpy(win + ((size_t)c * wh + y) * ww, img + ((size_t)c * g->H + y1 + y) * g->W + x1,
                           sizeof(float) * ww);
            cr_assert(model_plan(m, 1, wh, ww, MV_PLAN_INFER) == 0, "%s", mv_last_error());
            cr_assert(model_forward(m, win, NULL, &ctx) == 0, "%s", mv_last_error());
            bilinear_forward(up, m->logits, 1, m->Hs[0], m->Ws[0], wh, ww, K);   // decode_head.predict
            for (int y = 0; y < wh; y++)
                for (int x = 0; x < ww; x++) {
                    size_t p = (size_t)(y1 + y) * g->W + x1 + x;
                    count[p]++;
                    for (int k = 0; k < K; k++) sum[p * K + k] += up[((size_t)y * ww + x) * K + k];
                }
            free(win);
            free(up);
        }
}

static void check_case(const grid_case *g, int lh, int lw) {
    mv_model_config c;
    cr_assert(model_config_preset(&c, "maskvim-nano") == 0);
    cr_assert(model_config_set(&c, "model.num_classes", "5") == 0, "%s", mv_last_error());
    mv_model m;
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    params_init(&m.params, 9);
    int K = c.num_classes;
    size_t npx = (size_t)g->H * g->W;
    float *img = malloc(sizeof(float) * 3 * npx);
    random_image(img, g->H, g->W, 21);
    mv_data_config d;
    memset(&d, 0, sizeof d);
    d.test_mode = MV_TEST_SLIDE;
    d.test_crop[0] = g->ch; d.test_crop[1] = g->cw;
    d.test_stride[0] = g->sh; d.test_stride[1] = g->sw;
    uint8_t *pred = malloc((size_t)lh * lw), *pred2 = malloc((size_t)lh * lw);
    mv_eval_buffers buf = {0};
    cr_assert(eval_infer(pred, &buf, &m, &d, img, g->H, g->W, lh, lw) == 0, "%s", mv_last_error());

    double *sum = calloc(npx * K, sizeof(double));
    int *count = calloc(npx, sizeof(int));
    reference(sum, count, &m, img, g, K);
    double worst = 0;
    int most = 0;
    float *avg = malloc(sizeof(float) * npx * K);
    for (size_t p = 0; p < npx; p++) {
        cr_assert(count[p] > 0, "pixel %zu is in no window", p);
        if (count[p] > most) most = count[p];
        for (int k = 0; k < K; k++) {
            avg[p * K + k] = (float)(sum[p * K + k] / count[p]);
            worst = fmax(worst, fabs(sum[p * K + k] / count[p] - buf.input[p * K + k]));
        }
    }
    cr_expect(worst < 1e-5, "%dx%d, crop %dx%d, stride %dx%d: averaged logits off by %.3g", g->H, g->W, g->ch, g->cw,
              g->sh, g->sw, worst);
    cr_expect(most >= 2, "%dx%d: no pixel in two windows: the case does not test the average", g->H, g->W);
    // postprocess_result: the averaged logits resized to the label's size, then argmax; from the
    // reference's average, the same classes up to float ties.
    mv_eval_buffers b2 = {0};
    cr_assert(eval_predict(pred2, &b2, avg, K, g->H, g->W, g->H, g->W, lh, lw) == 0);
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)lh * lw; i++) differ += pred[i] != pred2[i];
    cr_expect(differ <= (size_t)lh * lw / 500, "%zu of %d pixels take another class than the reference's", differ,
              lh * lw);
    free(avg); free(sum); free(count); free(pred); free(pred2); free(img);
    eval_buffers_free(&buf);
    eval_buffers_free(&b2);
    model_free(&m);
}

// Lower than the window, wider than two: one row of windows, clipped to the image's 40 rows;
// columns 0, 40, 80 -> [0,64) [40,104) [56,120) (the last shifted back to end at 120).
Test(eval_slide_grid, lower_than_the_window, .timeout = 180) {
    grid_case g = {40, 120, 48, 64, 32, 40};
    check_case(&g, 40, 120);
}

// Strides that divide neither side (rows 0, 24, 48 -> [0,40) [24,64) [36,76); columns every 28
// of 96 across 100), up to 4 windows on a pixel, predicted at a label size of its own.
Test(eval_slide_grid, strides_not_dividing, .timeout = 180) {
    grid_case g = {76, 100, 40, 48, 24, 28};
    check_case(&g, 57, 133);
}
