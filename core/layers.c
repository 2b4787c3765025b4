// Shared layers of the model: the activation arena, LayerNorm and ConvModule wrappers that
// bind parameters, planned activations and the ops (CPU or, as the GPU model, CUDA) together.
#include "core/model_ops.h"
#include "core/error.h"
#include "kernels/cpu/line_up.h"

#ifndef MV_MODEL_DEVICE   // host-side registration: compiled once, in the CPU library
float *arena_take(mv_arena *a, size_t n) {
    float *p = a->base ? a->base + a->used : NULL;
    a->used += mv_line_up(n);   // 64-byte aligned slices
    return p;
}

void arena_need_scratch(mv_arena *a, size_t n) {
    if (n > a->scratch) a->scratch = n;
}

mv_arena arena_from_start(const mv_arena *region) { return (mv_arena){region->base, 0, 0}; }

void arena_fit(mv_arena *region, const mv_arena *view) {
    if (view->used > region->used) region->used = view->used;
    arena_need_scratch(region, view->scratch);
}

void layernorm_register(mv_layernorm *l, mv_params *p, int C, const char *name) {
    l->C = C;
    int shape[1] = {C};
    params_add(p, &l->w, &l->dw, INIT_ONE, 0, 1, shape, "%s.weight", name);
    params_add(p, &l->b, &l->db, INIT_ZERO, 0, 1, shape, "%s.bias", name);
}

#endif

void layernorm_plan(mv_layernorm *l, mv_arena *acts, mv_arena *dacts, int rows) {
    l->out = arena_take(acts, (size_t)rows * l->C);
    l->dout = dacts ? arena_take(dacts, (size_t)rows * l->C) : NULL;
    l->mean = arena_take(acts, rows);
    l->rstd = arena_take(acts, rows);
}

void layernorm_apply(mv_layernorm *l, const float *in, int rows) {
    layernorm_forward(l->out, l->mean, l->rstd, in, l->w, l->b, rows, l->C, MV_NORM_EPS);
}

void layernorm_apply_backward(mv_layernorm *l, float *d_in, const float *in, int rows) {
    layernorm_backward(d_in, l->dw, l->db, l->dout, in, l->w, l->mean, l->rstd, rows, l->C);
}

#ifndef MV_MODEL_DEVICE
void convmod_register(mv_convmod *c, mv_params *p, int IC, int OC, int K, const char *name) {
    c->IC = IC; c->OC = OC; c->K = K;
    int wshape[4] = {OC, IC, K, K}, cshape[1] = {OC};
    params_add(p, &c->w, &c->dw, INIT_KAIMING_FANOUT, (float)(OC * K * K), 4, wshape, "%s.conv.weight", name);
    params_add(p, &c->bn_w, &c->dbn_w, INIT_ONE, 0, 1, cshape, "%s.bn.weight", name);
    params_add(p, &c->bn_b, &c->dbn_b, INIT_ZERO, 0, 1, cshape, "%s.bn.bias", name);
    buffer_add(p, &c->running_mean, INIT_ZERO, 0, 1, cshape, "%s.bn.running_mean", name);
    buffer_add(p, &c->running_var, INIT_ONE, 0, 1, cshape, "%s.bn.running_var", name);
}

#endif

// An inference plan gives conv, bn and out one buffer (BatchNorm on running statistics and ReLU
// run in place) and no gradients, and sizes the scratch for the forward alone. Training takes dconv
// and dbn from the start of dtemps (shared with every block's and ConvModule's internal
// gradients: only one backward runs at a time), dout from dacts.
void convmod_plan(mv_convmod *c, mv_arena *acts, mv_arena *dacts, mv_arena *dtemps, int B, int H, int W,
                  mv_plan_mode mode) {
    size_t n = (size_t)B * H * W * c->OC;
    c->H = H; c->W = W;
    if (mode == MV_PLAN_INFER) {
        c->conv = c->bn = c->out = arena_take(acts, n);
        c->dconv = c->dbn = c->dout = NULL;
        c->mean = c->rstd = NULL;   // training BatchNorm's batch statistics: never computed
        if (c->K == 3) arena_need_scratch(acts, conv3x3_forward_scratch(B, H, W, c->IC, c->OC));
        return;
    }
    mv_arena g = arena_from_start(dtemps);
    c->conv = arena_take(acts, n);  c->dconv = arena_take(&g, n);
    c->bn = arena_take(acts, n);    c->dbn = arena_take(&g, n);
    c->out = arena_take(acts, n);   c->dout = arena_take(dacts, n);
    arena_fit(dtemps, &g);
    c->mean = arena_take(acts, c->OC);
    c->rstd = arena_take(acts, c->OC);
    if (c->K == 3) arena_need_scratch(acts, conv3x3_scratch(B, H, W, c->IC, c->OC));
    arena_need_scratch(acts, 2 * batchnorm_scratch(c->OC));   // doubles, in twice as many floats
}

void convmod_forward(mv_convmod *c, const float *in, float *scratch, const mv_run_ctx *ctx, int B) {
    int rows = B * c->H * c->W;
    if (c->K == 3) conv3x3_forward(c->conv, in, c->w, scratch, B, c->H, c->W, c->IC, c->OC);
    else linear_forward(c->conv, in, c->w, NULL, rows, c->IC, c->OC);
    if (ctx->training)
        batchnorm_forward_train(c->bn, c->mean, c->rstd, c->running_mean, c->running_var, c->conv,
                                c->bn_w, c->bn_b, (double *)scratch, MV_REDUCER(ctx), rows, c->OC, MV_NORM_EPS, 0.1f);
    else
        batchnorm_forward_eval(c->bn, c->conv, c->bn_w, c->bn_b, c->running_mean, c->running_var, rows, c->OC, MV_NORM_EPS);
    relu_forward(c->out, c->bn, (size_t)rows * c->OC);
}

void convmod_backward(mv_convmod *c, float *d_in, const float *in, float *scratch, const mv_run_ctx *ctx, int B) {
    int rows = B * c->H * c->W;
    fill(c->dconv, 0.0f, (size_t)rows * c->OC);
    fill(c->dbn, 0.0f, (size_t)rows * c->OC);
    relu_backward(c->dbn, c->dout, c->out, (size_t)rows * c->OC);
    batchnorm_backward(c->dconv, c->dbn_w, c->dbn_b, c->dbn, c->conv, c->bn_w, c->mean, c->rstd,
                       (double *)scratch, MV_REDUCER(ctx), rows, c->OC);
    if (c->K == 3) conv3x3_backward(d_in, c->dw, c->dconv, in, c->w, scratch, B, c->H, c->W, c->IC, c->OC);
    else linear_backward(d_in, c->dw, NULL, c->dconv, in, c->w, rows, c->IC, c->OC);
}

// mmseg's fusion of the four levels (UPerNet's FPN outputs, the linear head's projections): level
// 0 as it is and levels 1..3 resized bilinearly to level 0's size through up[i], concatenated
// along the channels in blocks of C, level 0 first.
void levels_concat_forward(const mv_model *m, float *cat, const float *const lv[4], float *const up[4], int C) {
    int B = m->B, H0 = m->Hs[0], W0 = m->Ws[0], rows0 = B * H0 * W0;
    channel_slice_forward(cat, lv[0], rows0, 4 * C, 0, C);
    for (int i = 1; i < 4; i++) {
        bilinear_forward(up[i], lv[i], B, m->Hs[i], m->Ws[i], H0, W0, C);
        channel_slice_forward(cat, up[i], rows0, 4 * C, i * C, C);
    }
}

void levels_concat_backward(const mv_model *m, float *const d_lv[4], float *const d_up[4], const float *d_cat, int C) {
    int B = m->B, H0 = m->Hs[0], W0 = m->Ws[0], rows0 = B * H0 * W0;
    channel_slice_backward(d_lv[0], d_cat, rows0, 4 * C, 0, C);
    for (int i = 1; i < 4; i++) {
        channel_slice_backward(d_up[i], d_cat, rows0, 4 * C, i * C, C);
        bilinear_backward(d_lv[i], d_up[i], B, m->Hs[i], m->Ws[i], H0, W0, C);
    }
}
