// The memory plan: inference plans (a liveness plan per block, ConvModules and the decoder's
// sums in place, the scan without saved delta/states) are much smaller than training plans and
// give the same logits bit for bit; training plans keep the gradients internal to a block or
// ConvModule in one shared region of reused slots, which each backward zeroes itself; the one activation allocation is reused across plans that
// fit it; a training step after an evaluation is the same step; and every op the inference plan
// runs in place (kernels/cpu/ops.h, "In place") gives the bits it gives out of place.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/model.h"

static float *rnd(size_t n, unsigned seed, float lo, float hi) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    cr_assert(p);
    unsigned s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = lo + (hi - lo) * (float)(s >> 8) / 16777216.0f;
    }
    return p;
}

static float *copy(const float *a, size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    cr_assert(p);
    memcpy(p, a, sizeof(float) * n);
    return p;
}

static size_t diff_bits(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

// A nano model without noise or dropout, weights of seed 7, and BatchNorm running statistics
// that are not 0/1 (evaluation BatchNorm must not be the identity).
static void nano(mv_model *m, const char *const *sets, int nsets) {
    mv_model_config c;
    cr_assert(model_config_preset(&c, "maskvim-nano") == 0);
    c.mask_noise = false;
    c.dropout = c.drop_path = c.decoder_drop_path = 0;
    for (int i = 0; i < nsets; i++) {
        const char *eq = strchr(sets[i], '=');
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        cr_assert(model_config_set(&c, key, eq + 1) == 0, "%s", mv_last_error());
    }
    cr_assert(model_build(m, &c) == 0, "%s", mv_last_error());
    params_init(&m->params, 7);
    for (int i = 0; i < m->params.count; i++) {
        const mv_param *q = &m->params.items[i];
        if (!q->is_buffer) continue;
        bool var = strstr(q->name, "running_var") != NULL;
        for (size_t k = 0; k < q->numel; k++)
            (*q->ptr)[k] = var ? 0.5f + (float)((k * 7) % 11) / 10.0f : (float)((int)(k % 9) - 4) / 8.0f;
    }
}

static void images(float *img, uint8_t *lab, int B, int H, int W) {
    for (size_t i = 0; i < (size_t)B * 3 * H * W; i++) img[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (size_t i = 0; i < (size_t)B * H * W; i++) lab[i] = (i % 23) < 19 ? (uint8_t)(i % 23) : 255;
}

Test(plan_memory, inference_plan_much_smaller_training_plan_shared_gradients) {
    mv_model_config c;
    cr_assert(model_config_preset(&c, "maskvim-t") == 0);
    mv_model m;
    cr_assert(model_build(&m, &c) == 0);
    // Measured without allocating (maskvim-t at these sizes needs gigabytes).
    double gib = 4.0 / (1 << 30);
    double tr = model_plan_floats(&m, 1, 1024, 2048, MV_PLAN_TRAIN) * gib;
    double in = model_plan_floats(&m, 1, 1024, 2048, MV_PLAN_INFER) * gib;
    cr_expect(in < tr / 5, "1024x2048: inference plan %.2f GiB, training plan %.2f GiB", in, tr);
    cr_expect(in < 6.5, "1024x2048 inference plan %.2f GiB (6.0 GiB; 15.6 GiB before the liveness plan)", in);
    // maskvim-t 512x1024 batch 2: 15.68 GiB with the shared region of internal gradients and the
    // scan's delta recomputed in backward (23.2 GiB when every block and ConvModule had its own
    // gradients, 18.02 with the region but a saved delta).
    double tr2 = model_plan_floats(&m, 2, 512, 1024, MV_PLAN_TRAIN) * gib;
    cr_expect(tr2 > 15.6 && tr2 < 15.8, "512x1024 batch 2 training plan %.3f GiB", tr2);
    cr_expect(m.acts_mem == NULL, "measuring allocates nothing");
    model_free(&m);

    nano(&m, NULL, 0);
    cr_assert(model_plan(&m, 2, 64, 96, MV_PLAN_TRAIN) == 0, "%s", mv_last_error());
    size_t train = m.arena_cap;
    cr_expect_eq(train, model_plan_floats(&m, 2, 64, 96, MV_PLAN_TRAIN));
    size_t infer = model_plan_floats(&m, 2, 64, 96, MV_PLAN_INFER);
    cr_expect(infer < train / 3, "nano 2x64x96: inference %zu floats, training %zu", infer, train);
    cr_expect(m.plan_mode == MV_PLAN_TRAIN && m.B == 2 && m.dacts_mem != NULL, "measuring keeps the plan");
    model_free(&m);
}

// The forward of an inference plan against the evaluation-mode forward of a training plan
// (every activation kept apart): the same logits and masks, bit for bit, for each decoder.
static void same_logits(const char *tag, const char *const *sets, int nsets, int B, int H, int W) {
    mv_model m;
    nano(&m, sets, nsets);
    float *img = malloc(sizeof(float) * (size_t)B * 3 * H * W);
    uint8_t *lab = malloc((size_t)B * H * W);
    images(img, lab, B, H, W);
    mv_run_ctx ctx = {.training = false, .world_size = 1};
    cr_assert(model_plan(&m, B, H, W, MV_PLAN_TRAIN) == 0, "%s", mv_last_error());
    cr_assert(model_forward(&m, img, NULL, &ctx) == 0, "%s", mv_last_error());
    size_t nlog = (size_t)B * m.Hs[0] * m.Ws[0] * m.cfg.num_classes;
    float *ref = copy(m.logits, nlog);
    float *masks[64] = {0};
    cr_assert(m.num_blocks <= 64);
    for (int j = 0; j < m.num_blocks; j++)
        if (m.blocks[j].masked) masks[j] = copy(m.blocks[j].m, (size_t)B * m.blocks[j].H * m.blocks[j].W);
    cr_assert(model_plan(&m, B, H, W, MV_PLAN_INFER) == 0, "%s", mv_last_error());
    cr_assert(model_forward(&m, img, NULL, &ctx) == 0, "%s", mv_last_error());
    size_t d = diff_bits(ref, m.logits, nlog);
    cr_expect(d == 0, "[%s %dx%dx%d] %zu of %zu logits differ between the training and the inference plan", tag, B,
              H, W, d, nlog);
    for (int j = 0; j < m.num_blocks; j++) {
        if (!masks[j]) continue;
        size_t n = (size_t)B * m.blocks[j].H * m.blocks[j].W;
        cr_expect(diff_bits(masks[j], m.blocks[j].m, n) == 0, "[%s] block %d: masks differ", tag, j);
        free(masks[j]);
    }
    free(ref); free(img); free(lab);
    model_free(&m);
}

Test(plan_memory, inference_logits_bit_identical) {
    same_logits("uper", NULL, 0, 2, 64, 96);
    same_logits("uper odd", NULL, 0, 1, 72, 100);
    const char *vss[] = {"model.context=vss"};
    same_logits("context vss", vss, 1, 1, 64, 64);
    const char *lin[] = {"model.head=linear", "mask.decoder=false"};
    same_logits("linear head", lin, 2, 2, 64, 96);
    const char *deep[] = {"model.decoder_depths=2,1,2", "mask.encoder_stages=1,1,1,1"};
    same_logits("deep decoder", deep, 2, 1, 64, 96);
}

// Re-planning for a plan that fits the allocation keeps it: no free and allocate again.
Test(plan_memory, arena_reused_across_plans) {
    mv_model m;
    nano(&m, NULL, 0);
    cr_assert(model_plan(&m, 2, 64, 96, MV_PLAN_TRAIN) == 0);
    float *mem = m.acts_mem;
    size_t cap = m.arena_cap;
    cr_expect(m.dacts_mem > m.acts_mem && m.scratch > m.dacts_mem && m.scratch < m.acts_mem + cap,
              "one allocation: acts | gradients | scratch");
    m.acts_mem[cap - 1] = 12345.0f;   // the slack after every plan: a new allocation would not have it
    const int shapes[4][4] = {{2, 64, 96, MV_PLAN_INFER}, {1, 48, 64, MV_PLAN_INFER}, {1, 32, 32, MV_PLAN_TRAIN},
                              {2, 64, 96, MV_PLAN_TRAIN}};
    for (int i = 0; i < 4; i++) {
        cr_assert(model_plan(&m, shapes[i][0], shapes[i][1], shapes[i][2], (mv_plan_mode)shapes[i][3]) == 0);
        cr_expect(m.acts_mem == mem && m.arena_cap == cap, "plan %d reallocated", i);
        cr_expect(m.scratch + m.acts.scratch <= m.acts_mem + cap, "plan %d fits its allocation", i);
    }
    cr_expect(m.acts_mem[cap - 1] == 12345.0f, "the allocation was replaced");
    // A larger plan grows it.
    cr_assert(model_plan(&m, 2, 96, 128, MV_PLAN_TRAIN) == 0);
    cr_expect(m.arena_cap > cap);
    model_release_activations(&m);
    cr_expect(m.acts_mem == NULL && m.dacts_mem == NULL && m.scratch == NULL && m.arena_cap == 0);
    model_free(&m);
}

static float *train_step(mv_model *m, const float *img, const uint8_t *lab, int B, int H, int W, double *loss) {
    int ids[4] = {0, 1, 2, 3};
    mv_run_ctx ctx = {.training = true, .seed = 42, .step = 3, .sample_ids = ids, .world_size = 1};
    cr_assert(model_plan(m, B, H, W, MV_PLAN_TRAIN) == 0, "%s", mv_last_error());
    params_zero_grads(&m->params);
    cr_assert(model_forward(m, img, lab, &ctx) == 0, "%s", mv_last_error());
    model_backward(m, &ctx);
    *loss = m->loss_total;
    size_t np = m->params.num_params, nb = m->params.num_buffers;
    float *g = malloc(sizeof(float) * (np + nb));
    memcpy(g, m->params.grads, sizeof(float) * np);
    memcpy(g + np, m->params.buffers, sizeof(float) * nb);   // BatchNorm running statistics
    return g;
}

// An evaluation between training steps (inference plans of other sizes in the same memory,
// which they overwrite) changes nothing about the next step: the same gradients, running
// statistics and loss bit for bit, with Gumbel noise and stochastic depth on.
Test(plan_memory, train_step_after_eval_unchanged) {
    const int B = 2, H = 64, W = 96;
    float *img = malloc(sizeof(float) * B * 3 * H * W), *img2 = malloc(sizeof(float) * 3 * 80 * 80);
    uint8_t *lab = malloc((size_t)B * H * W), *lab2 = malloc(80 * 80);
    images(img, lab, B, H, W);
    images(img2, lab2, 1, 80, 80);
    mv_model a, b;
    nano(&a, NULL, 0);
    nano(&b, NULL, 0);
    a.cfg.mask_noise = b.cfg.mask_noise = true;
    a.cfg.drop_path = b.cfg.drop_path = 0.3f;
    double la, lb;
    float *ga = train_step(&a, img, lab, B, H, W, &la);
    free(train_step(&b, img, lab, B, H, W, &lb));
    mv_run_ctx ev = {.training = false, .world_size = 1};
    cr_assert(model_plan(&b, 1, 80, 80, MV_PLAN_INFER) == 0);
    cr_assert(model_forward(&b, img2, NULL, &ev) == 0);
    cr_assert(model_plan(&b, B, H, W, MV_PLAN_INFER) == 0);
    cr_assert(model_forward(&b, img, NULL, &ev) == 0);
    // Step 2 on both: a straight after step 1, b after the evaluations.
    free(ga);
    ga = train_step(&a, img, lab, B, H, W, &la);
    float *gb = train_step(&b, img, lab, B, H, W, &lb);
    size_t n = a.params.num_params + a.params.num_buffers;
    size_t d = diff_bits(ga, gb, n);
    cr_expect(d == 0, "%zu of %zu gradients and running statistics differ after an evaluation", d, n);
    cr_expect(memcmp(&la, &lb, sizeof la) == 0, "loss %.9g vs %.9g", la, lb);
    free(ga); free(gb); free(img); free(img2); free(lab); free(lab2);
    model_free(&a);
    model_free(&b);
}

// Every internal gradient is zeroed by the backward that takes its slot: with the shared region
// full of NaN before the step, the gradients, running statistics and loss are those of a plan
// whose region was clean, bit for bit, for each decoder (the slot for d_xm is sized by the
// block's input when that is wider than the block, as with 8 decoder channels).
static void poisoned_slots(const char *tag, const char *const *sets, int nsets) {
    const int B = 2, H = 64, W = 96;
    float *img = malloc(sizeof(float) * B * 3 * H * W);
    uint8_t *lab = malloc((size_t)B * H * W);
    images(img, lab, B, H, W);
    mv_model a, b;
    nano(&a, sets, nsets);
    nano(&b, sets, nsets);
    a.cfg.mask_noise = b.cfg.mask_noise = true;
    a.cfg.drop_path = b.cfg.drop_path = a.cfg.decoder_drop_path = b.cfg.decoder_drop_path = 0.2f;
    cr_assert(model_plan(&a, B, H, W, MV_PLAN_TRAIN) == 0, "%s", mv_last_error());
    cr_assert(model_plan(&b, B, H, W, MV_PLAN_TRAIN) == 0, "%s", mv_last_error());
    float *region = b.dacts_mem + b.dacts.used;
    cr_expect(b.dtemps_floats > 0 && region + b.dtemps_floats <= b.scratch, "[%s] region inside the plan", tag);
    for (size_t i = 0; i < b.dtemps_floats; i++) region[i] = NAN;
    double la, lb;
    float *ga = train_step(&a, img, lab, B, H, W, &la), *gb = train_step(&b, img, lab, B, H, W, &lb);
    size_t n = a.params.num_params + a.params.num_buffers, d = diff_bits(ga, gb, n);
    cr_expect(d == 0, "[%s] %zu of %zu gradients and running statistics differ after NaN slots", tag, d, n);
    cr_expect(memcmp(&la, &lb, sizeof la) == 0 && isfinite(la), "[%s] loss %.9g vs %.9g", tag, la, lb);
    free(ga); free(gb); free(img); free(lab);
    model_free(&a);
    model_free(&b);
}

Test(plan_memory, gradient_slots_zeroed_by_their_backward) {
    poisoned_slots("uper", NULL, 0);
    const char *vss[] = {"model.context=vss"};
    poisoned_slots("context vss", vss, 1);
    const char *lin[] = {"model.head=linear", "mask.decoder=false"};
    poisoned_slots("linear head", lin, 2);
    const char *narrow[] = {"model.decoder_channels=8", "model.decoder_depths=2,1,1"};
    poisoned_slots("narrow decoder", narrow, 2);
}

// Each op the inference plan runs with out == in, against the same op out of place.
Test(plan_memory, in_place_ops_same_bits) {
    const int B = 2, HW = 37, C = 21;
    const size_t n = (size_t)B * HW * C;   // not a multiple of 16: the vector loops' tails too
    float *x = rnd(n, 1, -4, 4), *y = rnd(n, 2, -3, 3), *out = malloc(sizeof(float) * n);
    float *keep = rnd((size_t)B * C, 3, 0, 2), *w = rnd(C, 4, -1, 1), *bb = rnd(C, 5, -1, 1);
    float *rm = rnd(C, 6, -1, 1), *rv = rnd(C, 7, 0.1f, 2);
    x[5] = NAN; x[6] = -0.0f;
    float *io;
#define SAME(name, call_out, call_in)                                                    \
    do {                                                                                 \
        io = copy(x, n);                                                                 \
        call_out;                                                                        \
        call_in;                                                                         \
        cr_expect(diff_bits(out, io, n) == 0, "%s in place differs from out of place", name); \
        free(io);                                                                        \
    } while (0)
    SAME("silu_forward", silu_forward(out, x, n), silu_forward(io, io, n));
    SAME("relu_forward", relu_forward(out, x, n), relu_forward(io, io, n));
    SAME("mul_forward (out == a)", mul_forward(out, x, y, n), mul_forward(io, io, y, n));
    SAME("mul_forward (out == b)", mul_forward(out, y, x, n), mul_forward(io, y, io, n));
    SAME("add_forward (out == a)", add_forward(out, x, y, n), add_forward(io, io, y, n));
    SAME("add_forward (out == b)", add_forward(out, y, x, n), add_forward(io, y, io, n));
    SAME("channel_scale_forward", channel_scale_forward(out, x, keep, B, HW, C),
         channel_scale_forward(io, io, keep, B, HW, C));
    SAME("batchnorm_forward_eval", batchnorm_forward_eval(out, x, w, bb, rm, rv, B * HW, C, 1e-5f),
         batchnorm_forward_eval(io, io, w, bb, rm, rv, B * HW, C, 1e-5f));
#undef SAME
    free(x); free(y); free(out); free(keep); free(w); free(bb); free(rm); free(rv);
}

// The scan without delta and states (one direction's delta at a time in the forward scratch):
// the same y and xdbl.
// The scan without a saved delta: forward alone (no delta, no states), forward for training (no
// delta, states kept) and backward recomputing delta give the bits of the op with delta saved.
Test(plan_memory, scan_without_saved_delta) {
    const int shapes[3][6] = {{2, 5, 13, 40, 3, 16}, {1, 13, 23, 24, 2, 8}, {1, 1, 7, 12, 1, 4}};
    for (int s = 0; s < 3; s++) {
        int B = shapes[s][0], H = shapes[s][1], W = shapes[s][2], E = shapes[s][3], R = shapes[s][4], N = shapes[s][5];
        int L = H * W, P = R + 2 * N;
        size_t nx = (size_t)B * L * E, nxd = (size_t)B * L * SCAN_K * P, nke = (size_t)SCAN_K * E;
        size_t nst = ss2d_scan_states_size(B, L, E, N), nsc = ss2d_scan_scratch(B, L, E, R, N);
        float *x = rnd(nx, 11, -1, 1), *xpw = rnd((size_t)SCAN_K * P * E, 12, -0.5f, 0.5f);
        float *dtw = rnd((size_t)SCAN_K * E * R, 13, -0.5f, 0.5f), *dtb = rnd(nke, 14, -1, 1), *Ds = rnd(nke, 15, -1, 1);
        float *Al = rnd(nke * N, 16, 0, 2), *dy = rnd(nx, 21, -1, 1);
        float *y = rnd(nx, 17, -1, 1), *xdbl = rnd(nxd, 18, -1, 1), *delta = malloc(sizeof(float) * SCAN_K * nx);
        float *states = malloc(sizeof(float) * nst);
        size_t fs = ss2d_scan_forward_scratch(B, L, E, R, N);
        cr_expect(fs >= nx && fs < nsc);
        float *scr = malloc(sizeof(float) * (nsc + 1));
        ss2d_scan_forward(y, xdbl, delta, states, x, xpw, dtw, dtb, Al, Ds, scr, B, H, W, E, R, N);
        float *y2 = rnd(nx, 19, -1, 1), *xdbl2 = rnd(nxd, 20, -1, 1), *scr2 = malloc(sizeof(float) * (fs + 1));
        ss2d_scan_forward(y2, xdbl2, NULL, NULL, x, xpw, dtw, dtb, Al, Ds, scr2, B, H, W, E, R, N);
        cr_expect(diff_bits(y, y2, nx) == 0, "shape %d: y differs without delta/states", s);
        cr_expect(diff_bits(xdbl, xdbl2, nxd) == 0, "shape %d: xdbl differs without delta/states", s);
        float *y3 = rnd(nx, 22, -1, 1), *xdbl3 = rnd(nxd, 23, -1, 1), *states3 = rnd(nst, 24, -1, 1);
        ss2d_scan_forward(y3, xdbl3, NULL, states3, x, xpw, dtw, dtb, Al, Ds, scr, B, H, W, E, R, N);
        cr_expect(diff_bits(y, y3, nx) == 0, "shape %d: y differs without delta", s);
        cr_expect(diff_bits(states, states3, nst) == 0, "shape %d: states differ without delta", s);
        // Gradients: six buffers each, from the same (nonzero) start, as backward adds.
        size_t ng[6] = {nx, (size_t)SCAN_K * P * E, (size_t)SCAN_K * E * R, nke, nke * N, nke};
        float *g[2][6];
        for (int r = 0; r < 2; r++) {
            for (int i = 0; i < 6; i++) g[r][i] = rnd(ng[i], 30 + i, -1, 1);
            for (size_t i = 0; i < nsc + 1; i++) scr[i] = NAN;   // nothing may be read before written
            ss2d_scan_backward(g[r][0], g[r][1], g[r][2], g[r][3], g[r][4], g[r][5], dy, x, xdbl, r ? NULL : delta,
                               r ? states3 : states, xpw, dtw, dtb, Al, Ds, scr, B, H, W, E, R, N);
        }
        for (int i = 0; i < 6; i++) {
            cr_expect(diff_bits(g[0][i], g[1][i], ng[i]) == 0, "shape %d: gradient %d differs with delta recomputed", s, i);
            free(g[0][i]); free(g[1][i]);
        }
        free(x); free(xpw); free(dtw); free(dtb); free(Ds); free(Al); free(dy); free(y); free(xdbl); free(delta);
        free(states); free(scr); free(y2); free(xdbl2); free(scr2); free(y3); free(xdbl3); free(states3);
    }
}

// The 3x3 convolution's forward in its own (smaller) scratch: the same output.
Test(plan_memory, conv3x3_forward_scratch) {
    const int B = 2, H = 7, W = 9, IC = 5, OC = 6;
    size_t full = conv3x3_scratch(B, H, W, IC, OC), fwd = conv3x3_forward_scratch(B, H, W, IC, OC);
    cr_expect(fwd < full, "forward scratch %zu, forward and backward %zu", fwd, full);
    size_t nin = (size_t)B * H * W * IC, nout = (size_t)B * H * W * OC;
    float *in = rnd(nin, 21, -1, 1), *w = rnd((size_t)OC * IC * 9, 22, -1, 1);
    float *a = malloc(sizeof(float) * nout), *b = malloc(sizeof(float) * nout);
    float *s1 = rnd(full, 23, -9, 9), *s2 = rnd(fwd, 24, -9, 9);
    conv3x3_forward(a, in, w, s1, B, H, W, IC, OC);
    conv3x3_forward(b, in, w, s2, B, H, W, IC, OC);
    cr_expect(diff_bits(a, b, nout) == 0);
    free(in); free(w); free(a); free(b); free(s1); free(s2);
}
