// Whole-model properties: the authors' parameter counts, deterministic and thread-independent
// steps, and loud failures on weights made for another configuration.
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/engine.h"
#include "core/model.h"
#include "core/weights_io.h"

static mv_model_config preset(const char *name) {
    mv_model_config c;
    cr_assert(model_config_preset(&c, name) == 0);
    return c;
}

// The counts the MaskViM authors report for the tiny model at the 512x1024 crop.
Test(model, parameter_counts_maskvim_t) {
    mv_model_config c = preset("maskvim-t");
    mv_model m;
    cr_assert(model_build(&m, &c) == 0);
    cr_expect_eq(model_num_parameters(&m), 60893702u);
    model_free(&m);
    c.mask_encoder[0] = c.mask_encoder[1] = c.mask_encoder[2] = false;
    c.mask_decoder = false;
    cr_assert(model_build(&m, &c) == 0);
    cr_expect_eq(model_num_parameters(&m), 60606982u);
    model_free(&m);
}

// Table 6's variants at maskvim-t (counts agree with the PyTorch reference's modules).
Test(model, parameter_counts_table6_variants) {
    mv_model_config c = preset("maskvim-t");
    mv_model m;
    cr_assert(model_config_set(&c, "model.head", "linear") == 0);
    cr_assert(model_config_set(&c, "mask.decoder", "false") == 0);
    cr_assert(model_config_set(&c, "mask.encoder", "false") == 0);
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    cr_expect_eq(model_num_parameters(&m), 24816646u, "VMamba-T + linear head");
    cr_expect_eq(m.num_blocks, 15);
    model_free(&m);
    cr_assert(model_config_set(&c, "mask.encoder_stages", "1,1,1,1") == 0);
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    cr_expect_eq(model_num_parameters(&m), 25019398u, "masks in all four stages");
    cr_expect(m.blocks[m.enc_first[3]].masked && m.blocks[m.enc_first[3]].ratio_group == 3);
    model_free(&m);
    c = preset("maskvim-t");
    cr_assert(model_config_set(&c, "model.context", "vss") == 0);
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    cr_expect_eq(model_num_parameters(&m), 48787462u, "VSS block instead of pyramid pooling");
    cr_expect(m.ctx_block == m.num_blocks - 1 && !m.blocks[m.ctx_block].masked);
    model_free(&m);
}

// Stochastic depth rates: the encoder's linear over its blocks (VMamba), the decoder's linear
// over its blocks counted from the coarsest lateral, as the authors' DecoderExp4 assigns them
// (linspace(0, 0.1, 6) over depths (2,2,2): lateral 2 takes 0, 0.02, lateral 0 takes 0.08, 0.1).
Test(model, stochastic_depth_rates) {
    mv_model_config c = preset("maskvim-t");
    cr_assert(model_config_set(&c, "model.decoder_depths", "2,2,2") == 0);
    mv_model m;
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    const float dec[3][2] = {{0.08f, 0.1f}, {0.04f, 0.06f}, {0.0f, 0.02f}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            cr_expect_float_eq(m.blocks[m.dec_first[i] + j].drop_rate, dec[i][j], 1e-6, "lateral %d block %d: %g", i,
                               j, m.blocks[m.dec_first[i] + j].drop_rate);
    cr_expect_float_eq(m.blocks[0].drop_rate, 0.0f, 0);
    cr_expect_float_eq(m.blocks[m.enc_first[3] + 1].drop_rate, 0.3f, 1e-6, "the encoder's last block (15 in all)");
    cr_expect_float_eq(m.blocks[7].drop_rate, 0.15f, 1e-6);
    model_free(&m);
    c = preset("maskvim-t");   // the default depths (1,1,1): 0.1, 0.05, 0 for laterals 0, 1, 2
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    for (int i = 0; i < 3; i++)
        cr_expect_float_eq(m.blocks[m.dec_first[i]].drop_rate, 0.05f * (float)(2 - i), 1e-6, "lateral %d", i);
    model_free(&m);
    cr_assert(model_config_set(&c, "model.decoder_depths", "1,1,1") == 0);
    cr_assert(model_config_set(&c, "model.context", "vss") == 0);
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    cr_expect_float_eq(m.blocks[m.ctx_block].drop_rate, 0.1f, 1e-6, "the VSS context block");
    model_free(&m);
}

Test(model, unknown_preset_is_an_error) {
    mv_model_config c;
    cr_expect(model_config_preset(&c, "maskvim-xl") < 0);
    cr_expect(strstr(mv_last_error(), "maskvim-xl") != NULL);
}

static mv_model_config deterministic_nano(void) {
    mv_model_config c = preset("maskvim-nano");
    c.mask_noise = false;
    c.dropout = c.drop_path = c.decoder_drop_path = 0;
    return c;
}

static void batch(float *img, uint8_t *lab, int B, int H, int W) {
    for (int i = 0; i < B * 3 * H * W; i++) img[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < B * H * W; i++) lab[i] = (i % 23) < 19 ? (uint8_t)(i % 23) : 255;
}

// A deterministic nano model (weights of seed 3) and a batch of B images of H x W with their
// labels: the setup of the single-case tests below.
typedef struct {
    mv_model m;
    float *img;
    uint8_t *lab;
    int B, H, W;
} nano_case;

static void nano_case_open(nano_case *t, int B, int H, int W) {
    mv_model_config c = deterministic_nano();
    cr_assert(model_build(&t->m, &c) == 0);
    params_init(&t->m.params, 3);
    t->B = B; t->H = H; t->W = W;
    t->img = malloc(sizeof(float) * B * 3 * H * W);
    t->lab = malloc((size_t)B * H * W);
    batch(t->img, t->lab, B, H, W);
}

static void nano_case_close(nano_case *t) {
    free(t->img);
    free(t->lab);
    model_free(&t->m);
}

static float *run_step(mv_model *m, const float *img, const uint8_t *lab, bool noise) {
    int ids[4] = {0, 1, 2, 3};
    mv_run_ctx ctx = {.training = true, .seed = 42, .step = 3, .sample_ids = ids, .world_size = 1};
    m->cfg.mask_noise = noise;
    params_zero_grads(&m->params);
    cr_assert(model_forward(m, img, lab, &ctx) == 0);
    model_backward(m, &ctx);
    float *g = malloc(sizeof(float) * m->params.num_params);
    memcpy(g, m->params.grads, sizeof(float) * m->params.num_params);
    return g;
}

// Same inputs, same bits: repeated steps agree exactly with Gumbel noise and stochastic depth
// on (every draw is keyed, every reduction of ours has a fixed order). Across thread counts
// OpenBLAS picks other kernels (its sgemm is not bitwise thread-invariant), so there the
// gradients must agree to float rounding only.
Test(model, step_is_deterministic) {
    mv_model_config c = preset("maskvim-nano");
    mv_model m;
    cr_assert(model_build(&m, &c) == 0);
    params_init(&m.params, 5);
    int B = 2, H = 64, W = 96;
    float *img = malloc(sizeof(float) * B * 3 * H * W);
    uint8_t *lab = malloc((size_t)B * H * W);
    batch(img, lab, B, H, W);
    cr_assert(model_plan(&m, B, H, W, MV_PLAN_TRAIN) == 0);
    float *g1 = run_step(&m, img, lab, true);
    double l1 = m.loss_total;
    float *g2 = run_step(&m, img, lab, true);
    cr_expect(l1 == m.loss_total, "loss %.9g vs %.9g", l1, m.loss_total);
    cr_expect(memcmp(g1, g2, sizeof(float) * m.params.num_params) == 0, "gradients differ between identical steps");
    int threads = omp_get_max_threads();
    omp_set_num_threads(threads > 1 ? 1 : 2);
    float *g3 = run_step(&m, img, lab, true);
    omp_set_num_threads(threads);
    for (int i = 0; i < m.params.count; i++) {
        const mv_param *q = &m.params.items[i];
        if (q->is_buffer) continue;
        double mx = 1e-12, diff = 0;
        for (size_t j = 0; j < q->numel; j++) {
            mx = fmax(mx, fabs(g1[q->offset + j]));
            diff = fmax(diff, fabs(g1[q->offset + j] - g3[q->offset + j]));
        }
        // 1e-3 as against PyTorch: the scale-1 pyramid pooling BatchNorm sees only B values per
        // channel, which amplifies rounding differences.
        cr_expect(diff / mx < 1e-3, "%s: relative difference %.3g across thread counts", q->name, diff / mx);
    }
    free(g1); free(g2); free(g3); free(img); free(lab);
    model_free(&m);
}

Test(model, weights_round_trip_and_shape_errors) {
    const char *tmp = getenv("MV_TEST_TMP") ? getenv("MV_TEST_TMP") : "/tmp";
    char path[512], cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmp);
    cr_assert(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/test_model_weights.h5", tmp);
    mv_model_config c = deterministic_nano();
    mv_model a, b;
    cr_assert(model_build(&a, &c) == 0);
    params_init(&a.params, 1);
    cr_assert(weights_save(&a.params, path) == 0);
    cr_assert(model_build(&b, &c) == 0);
    int missing = -1, unexpected = -1;
    cr_assert(weights_load(&b.params, path, NULL, &missing, &unexpected) == 0, "%s", mv_last_error());
    cr_expect_eq(missing, 0);
    cr_expect_eq(unexpected, 0);
    cr_expect(memcmp(a.params.params, b.params.params, sizeof(float) * a.params.num_params) == 0);
    model_free(&b);
    // A model for another crop has other token-mask grids: refused, naming the key.
    mv_model_config c2 = c;
    c2.crop_h = 96;
    cr_assert(model_build(&b, &c2) == 0);
    cr_expect(weights_load(&b.params, path, NULL, NULL, NULL) < 0);
    cr_expect(strstr(mv_last_error(), "token_mask") != NULL, "message: %s", mv_last_error());
    model_free(&b);
    // Without masks, the file's token_mask entries are unexpected, nothing is missing.
    mv_model_config c3 = c;
    c3.mask_encoder[0] = c3.mask_encoder[1] = c3.mask_encoder[2] = false;
    c3.mask_decoder = false;
    cr_assert(model_build(&b, &c3) == 0);
    cr_expect(weights_load(&b.params, path, NULL, &missing, &unexpected) == 0);
    cr_expect_eq(missing, 0);
    cr_expect_eq(unexpected, 4 + 3);   // nano: blocks of stages 0..2 (1+1+2) and 3 decoder blocks
    model_free(&b);
    model_free(&a);
    remove(path);
}

Test(model, too_small_images_are_refused) {
    mv_model_config c = deterministic_nano();
    mv_model m;
    cr_assert(model_build(&m, &c) == 0);
    cr_expect(model_plan(&m, 1, 16, 64, MV_PLAN_TRAIN) < 0);
    cr_expect(strstr(mv_last_error(), "16x64") != NULL);
    model_free(&m);
}

// An inference plan has no gradient arena and no loss buffers: a forward with labels or in
// training mode on it is an error, not a write through a NULL gradient pointer. Re-planning
// for training at the same shape gives the arenas back.
Test(model, inference_plan_refuses_losses) {
    nano_case t;
    nano_case_open(&t, 1, 64, 96);
    mv_model *m = &t.m;
    cr_assert(model_plan(m, t.B, t.H, t.W, MV_PLAN_INFER) == 0);
    cr_expect(m->dacts_mem == NULL && m->full == NULL && m->aux_logits == NULL);
    int ids[1] = {0};
    mv_run_ctx ctx = {.training = false, .sample_ids = ids, .world_size = 1};
    cr_expect(model_forward(m, t.img, t.lab, &ctx) < 0);
    cr_expect(strstr(mv_last_error(), "training plan") != NULL, "%s", mv_last_error());
    ctx.training = true;
    cr_expect(model_forward(m, t.img, NULL, &ctx) < 0);
    cr_assert(model_plan(m, t.B, t.H, t.W, MV_PLAN_TRAIN) == 0);
    cr_expect(m->dacts_mem != NULL && m->full != NULL);
    cr_expect(model_forward(m, t.img, t.lab, &ctx) == 0, "%s", mv_last_error());
    cr_expect(isfinite(m->loss_total));
    nano_case_close(&t);
}

// A non-finite value anywhere in the forward must reach the loss, as in PyTorch (relu(NaN) is
// NaN): the ConvModules' ReLU used to map NaN to 0, so a NaN pixel (or an overflowing
// activation) gave the decode head all-zero features, finite logits and a finite-looking loss
// while the gradients and BatchNorm statistics were NaN.
Test(model, nan_input_reaches_the_loss) {
    nano_case t;
    nano_case_open(&t, 2, 64, 64);
    mv_model *m = &t.m;
    int H = t.H, W = t.W;
    t.img[3 * H * W + 5 * W + 7] = NAN;   // one pixel of the second image
    cr_assert(model_plan(m, t.B, H, W, MV_PLAN_TRAIN) == 0);
    int ids[2] = {0, 1};
    mv_run_ctx ctx = {.training = true, .sample_ids = ids, .world_size = 1};
    cr_assert(model_forward(m, t.img, t.lab, &ctx) == 0);
    cr_expect(!isfinite(m->loss_ce), "loss_ce %g is finite although an input pixel is NaN", m->loss_ce);
    cr_expect(!isfinite(m->loss_total), "loss_total %g is finite although an input pixel is NaN", m->loss_total);
    // Evaluation mode: the second image's logits are not finite.
    ctx.training = false;
    cr_assert(model_forward(m, t.img, NULL, &ctx) == 0);
    size_t per = (size_t)m->Hs[0] * m->Ws[0] * m->cfg.num_classes, bad = 0;
    for (size_t i = 0; i < per; i++) bad += !isfinite(m->logits[per + i]);
    cr_expect(bad > 0, "evaluation logits of the image with a NaN pixel are all finite");
    nano_case_close(&t);
}

// A label that is neither a class nor 255 is refused by name and position (torch: "Target 19 is
// out of bounds"); the cross-entropy used to read and write past its row of logits.
Test(model, labels_out_of_range_are_refused) {
    nano_case t;
    nano_case_open(&t, 2, 64, 64);
    mv_model *m = &t.m;
    int H = t.H, W = t.W;
    t.lab[H * W + 5 * W + 9] = 19;   // image 1, (y 5, x 9); nano has 19 classes
    cr_assert(model_plan(m, t.B, H, W, MV_PLAN_TRAIN) == 0);
    int ids[2] = {0, 1};
    mv_run_ctx ctx = {.training = true, .sample_ids = ids, .world_size = 1};
    cr_expect(model_forward(m, t.img, t.lab, &ctx) < 0);
    cr_expect(strstr(mv_last_error(), "label 19 of image 1 at (y 5, x 9)") != NULL, "%s", mv_last_error());
    t.lab[H * W + 5 * W + 9] = 255;
    cr_expect(model_forward(m, t.img, t.lab, &ctx) == 0, "%s", mv_last_error());
    cr_expect(isfinite(m->loss_total));
    nano_case_close(&t);
}

// Under an engine (the GPU) the labels are checked on the host before the engine sees them: on
// the device a bad label would only make the loss NaN.
static int stub_calls;
static int stub_forward(mv_model *m, const float *images, const uint8_t *labels, const mv_run_ctx *ctx) {
    (void)m; (void)images; (void)labels; (void)ctx;
    stub_calls++;
    return 0;
}

Test(model, engine_labels_checked_on_the_host) {
    nano_case t;
    nano_case_open(&t, 1, 64, 64);
    mv_model *m = &t.m;
    int W = t.W;
    cr_assert(model_plan(m, t.B, t.H, W, MV_PLAN_TRAIN) == 0);
    const mv_engine stub = {.name = "stub", .forward = stub_forward};
    m->engine = &stub;
    t.lab[7 * W + 3] = 200;
    mv_run_ctx ctx = {.training = true, .world_size = 1};
    cr_expect(run_forward(m, t.img, t.lab, &ctx) < 0);
    cr_expect(strstr(mv_last_error(), "label 200 of image 0 at (y 7, x 3)") != NULL, "%s", mv_last_error());
    cr_expect_eq(stub_calls, 0, "the engine ran on a bad label");
    t.lab[7 * W + 3] = 255;
    cr_expect(run_forward(m, t.img, t.lab, &ctx) == 0, "%s", mv_last_error());
    cr_expect_eq(stub_calls, 1);
    m->engine = NULL;
    nano_case_close(&t);
}
