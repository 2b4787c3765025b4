// The evaluation-mode forward (what `maskvim eval` and `predict` run: BatchNorm on its running
// statistics, masks m = [P0 > P1] without noise, no dropout) against the PyTorch reference's
// `forward` command on the same weights and batch: main and auxiliary logits to 1e-4 of their
// largest value, masks exactly. The weights carry non-trivial BatchNorm running statistics (a
// fresh init's 0/1 would make evaluation BatchNorm the identity) and the images are not the
// crop size, so the token-mask logits are resized. `test_reference_step` covers training mode.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/h5util.h"
#include "core/model.h"
#include "core/rng.h"
#include "core/weights_io.h"

static const char *tmpdir(void) { return getenv("MV_TEST_TMP") ? getenv("MV_TEST_TMP") : "/tmp"; }

static void sh(const char *cmd) {
    int rc = system(cmd);
    cr_assert(rc == 0, "command failed (%d): %s", rc, cmd);
}

// Worst |a - b| / max |ref| over n values; ref is NCHW [B,K,H,W], ours NHWC [B,H,W,K].
static double rel_nchw(const float *ref, const float *nhwc, int B, int K, int H, int W) {
    double mx = 1e-30, diff = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double r = ref[(((size_t)b * K + k) * H + y) * W + x];
                    double o = nhwc[(((size_t)b * H + y) * W + x) * K + k];
                    mx = fmax(mx, fabs(r));
                    diff = fmax(diff, fabs(r - o));
                }
    return diff / mx;
}

static void eval_case(const char *tag, const char *const *sets, int nsets, int B, int H, int W) {
    const char *py = getenv("MV_PYTHON"), *src = getenv("MV_SRC");
    cr_assert(py && src, "MV_PYTHON and MV_SRC must be set (ctest sets them)");
    char cmd[4096], w[512], bpath[512], dump[512], setargs[1024] = "";
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir());
    sh(cmd);
    snprintf(w, sizeof w, "%s/eval_ref_%s_w.h5", tmpdir(), tag);
    snprintf(bpath, sizeof bpath, "%s/eval_ref_%s_b.h5", tmpdir(), tag);
    snprintf(dump, sizeof dump, "%s/eval_ref_%s_r.h5", tmpdir(), tag);

    mv_model_config c;
    cr_assert(model_config_preset(&c, "maskvim-nano") == 0);
    for (int i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        cr_assert(model_config_set(&c, key, eq + 1) == 0, "%s", mv_last_error());
        snprintf(setargs + strlen(setargs), sizeof setargs - strlen(setargs), " --set %s", sets[i]);
    }
    mv_model m;
    cr_assert(model_build(&m, &c) == 0, "%s", mv_last_error());
    params_init(&m.params, 17);
    // BatchNorm running statistics away from 0/1, and affine parameters away from 1/0.
    uint32_t ctr = 0;
    for (int i = 0; i < m.params.count; i++) {
        const mv_param *q = &m.params.items[i];
        const char *n = q->name;
        bool rm = strstr(n, "running_mean"), rv = strstr(n, "running_var");
        bool bn = strstr(n, ".bn.weight") || strstr(n, ".bn.bias");
        if (!rm && !rv && !bn) continue;
        for (size_t j = 0; j < q->numel; j++) {
            float u = rng_u01(philox4x32(99, 0, 0, 0, ctr++).v[0]);
            float *v = *q->ptr + j;
            if (rm) *v = u - 0.5f;
            else if (rv) *v = 0.5f + 1.5f * u;
            else *v += 0.4f * (u - 0.5f);
        }
    }
    cr_assert(weights_save(&m.params, w) == 0, "%s", mv_last_error());
    // The batch: normal-ish images with a brightness per image, labels with some 255.
    size_t n = (size_t)B * H * W;
    float *img = malloc(sizeof(float) * 3 * n), *lab = malloc(sizeof(float) * n);
    for (size_t i = 0; i < 3 * n; i++) {
        mv_rng4 r = philox4x32(7, 1, (uint32_t)i, 0, 0);
        size_t b = i / (3 * (size_t)H * W);
        img[i] = 2.0f * (rng_u01(r.v[0]) + rng_u01(r.v[1]) + rng_u01(r.v[2]) - 1.5f) * (0.6f + 0.5f * b) + 0.3f * b;
        if (i < n) lab[i] = rng_u01(r.v[3]) < 0.1f ? 255.0f : (float)(r.v[3] % (uint32_t)c.num_classes);
    }
    hid_t f = h5_create(bpath);
    cr_assert(f >= 0);
    int is[4] = {B, 3, H, W}, ls[3] = {B, H, W};
    cr_assert(h5_write_floats(f, "images", img, 4, is) == 0 && h5_write_floats(f, "labels", lab, 3, ls) == 0);
    H5Fclose(f);
    free(lab);
    snprintf(cmd, sizeof cmd, "%s %s/tests/reference/maskvim_ref.py forward --preset maskvim-nano%s --weights %s "
             "--batch %s --dump %s", py, src, setargs, w, bpath, dump);
    sh(cmd);

    // The evaluation forward under a training plan (which also runs the auxiliary head), then
    // under an inference plan, whose shared block region must not change a single bit.
    cr_assert(model_plan(&m, B, H, W, MV_PLAN_TRAIN) == 0, "%s", mv_last_error());
    mv_run_ctx ctx = {.training = false, .world_size = 1};
    cr_assert(model_forward(&m, img, NULL, &ctx) == 0);
    size_t nlog = (size_t)B * m.Hs[0] * m.Ws[0] * c.num_classes;
    float *train_logits = malloc(sizeof(float) * nlog);
    memcpy(train_logits, m.logits, sizeof(float) * nlog);

    int K = c.num_classes;
    f = h5_open_read(dump);
    cr_assert(f >= 0);
    int h0 = m.Hs[0], w0 = m.Ws[0], h2 = m.Hs[2], w2 = m.Ws[2];
    float *ref = malloc(sizeof(float) * (size_t)B * K * h0 * w0);
    cr_assert(h5_read_floats(f, dump, "logits", ref, (size_t)B * K * h0 * w0) == 0, "%s", mv_last_error());
    double e = rel_nchw(ref, m.logits, B, K, h0, w0);
    cr_expect(e < 1e-4, "[%s] evaluation logits differ from the reference by %.3g (relative)", tag, e);
    cr_assert(h5_read_floats(f, dump, "aux_logits", ref, (size_t)B * K * h2 * w2) == 0, "%s", mv_last_error());
    e = rel_nchw(ref, m.aux_logits, B, K, h2, w2);
    cr_expect(e < 1e-4, "[%s] evaluation aux logits differ from the reference by %.3g (relative)", tag, e);

    size_t train_acts = m.acts.used + m.dacts.used;
    cr_assert(model_plan(&m, B, H, W, MV_PLAN_INFER) == 0, "%s", mv_last_error());
    cr_expect(m.acts.used + m.dacts.used < train_acts / 2, "[%s] inference plan %zu floats, training plan %zu",
              tag, m.acts.used + m.dacts.used, train_acts);
    cr_assert(model_forward(&m, img, NULL, &ctx) == 0, "%s", mv_last_error());
    size_t diff = 0;
    for (size_t i = 0; i < nlog; i++) diff += memcmp(&train_logits[i], &m.logits[i], sizeof(float)) != 0;
    cr_expect(diff == 0, "[%s] %zu of %zu logits differ between the training and the inference plan", tag, diff, nlog);
    free(train_logits);
    int masked = 0;
    for (int j = 0; j < m.num_blocks; j++) {
        const mv_block *b = &m.blocks[j];
        if (!b->masked) continue;
        char name[160], block[128];
        model_mask_name(block, sizeof block, &m, j);
        snprintf(name, sizeof name, "mask/%s", block);
        size_t nm = (size_t)B * b->H * b->W;
        float *rm = malloc(sizeof(float) * nm);
        cr_assert(h5_read_floats(f, dump, name, rm, nm) == 0, "%s", mv_last_error());
        size_t bad = 0;
        for (size_t t = 0; t < nm; t++) bad += rm[t] != b->m[t];
        cr_expect(bad == 0, "[%s] %s: %zu of %zu evaluation mask entries differ", tag, block, bad, nm);
        free(rm);
        masked++;
    }
    cr_expect(masked > 0 || (!c.mask_decoder && !c.mask_encoder[0]), "[%s] no masked block compared", tag);
    H5Fclose(f);
    free(ref);
    free(img);
    model_free(&m);
    remove(w); remove(bpath); remove(dump);
}

Test(model_eval_reference, masks_resized_default_layout, .timeout = 300) {
    const char *sets[] = {"model.num_classes=7"};
    eval_case("spatial", sets, 1, 2, 72, 104);
}

Test(model_eval_reference, official_layout_zero_mode_vss_context, .timeout = 300) {
    const char *sets[] = {"mask.layout=official", "mask.mode=zero", "model.context=vss", "model.decoder_depths=1,2,1"};
    eval_case("official", sets, 4, 3, 40, 56);
}

Test(model_eval_reference, linear_head_all_stages_masked, .timeout = 300) {
    const char *sets[] = {"model.head=linear", "mask.decoder=false", "mask.encoder_stages=1,1,1,1",
                          "model.dims=12,20,36,68"};
    eval_case("linear", sets, 4, 1, 64, 96);
}
