// VSS / MVSS block (docs/math.md sections 2.1-2.2): token mask, optional input projection, and
// x + drop_path(SS2D(LayerNorm(x))), forward and backward.
#include "core/model_ops.h"
#include <math.h>
#include <stdio.h>

#ifndef MV_MODEL_DEVICE   // host-side registration: compiled once, in the CPU library
void block_register(mv_block *b, mv_params *p, const char *prefix, const mv_model_config *cfg) {
    int C = b->C, E = b->E, R = b->R, N = b->N, K = SCAN_K, P = R + 2 * N;
    if (b->masked) {
        int s[3] = {1, b->gh * b->gw, 2};
        params_add(p, &b->token_mask, &b->d_token_mask, INIT_UNIFORM, cfg->gamma, 3, s, "%s.token_mask", prefix);
    }
    if (b->has_pre) {
        int sw[2] = {C, b->in_dim}, sb[1] = {C};
        params_add(p, &b->pre_w, &b->d_pre_w, INIT_TRUNC_NORMAL, 0.02f, 2, sw, "%s.pre_mlp.0.weight", prefix);
        params_add(p, &b->pre_b, &b->d_pre_b, INIT_ZERO, 0, 1, sb, "%s.pre_mlp.0.bias", prefix);
    }
    char name[128];
    snprintf(name, sizeof name, "%s.norm", prefix);
    layernorm_register(&b->norm, p, C, name);
    int s_in[2] = {2 * E, C}, s_cw[4] = {E, 1, 3, 3}, s_cb[1] = {E}, s_xp[3] = {K, P, E};
    int s_dw[3] = {K, E, R}, s_db[2] = {K, E}, s_A[2] = {K * E, N}, s_D[1] = {K * E}, s_out[2] = {C, E};
    params_add(p, &b->in_proj_w, &b->d_in_proj_w, INIT_TRUNC_NORMAL, 0.02f, 2, s_in, "%s.op.in_proj.weight", prefix);
    params_add(p, &b->conv_w, &b->d_conv_w, INIT_UNIFORM, 1.0f / 3.0f, 4, s_cw, "%s.op.conv2d.weight", prefix);
    params_add(p, &b->conv_b, &b->d_conv_b, INIT_UNIFORM, 1.0f / 3.0f, 1, s_cb, "%s.op.conv2d.bias", prefix);
    params_add(p, &b->x_proj_w, &b->d_x_proj_w, INIT_UNIFORM, 1.0f / sqrtf((float)E), 3, s_xp, "%s.op.x_proj_weight", prefix);
    params_add(p, &b->dt_w, &b->d_dt_w, INIT_UNIFORM, 1.0f / sqrtf((float)R), 3, s_dw, "%s.op.dt_projs_weight", prefix);
    params_add(p, &b->dt_b, &b->d_dt_b, INIT_DT_BIAS, 0, 2, s_db, "%s.op.dt_projs_bias", prefix);
    params_add(p, &b->A_logs, &b->d_A_logs, INIT_A_LOG, (float)N, 2, s_A, "%s.op.A_logs", prefix);
    params_add(p, &b->Ds, &b->d_Ds, INIT_ONE, 0, 1, s_D, "%s.op.Ds", prefix);
    snprintf(name, sizeof name, "%s.op.out_norm", prefix);
    layernorm_register(&b->out_norm, p, E, name);
    params_add(p, &b->out_proj_w, &b->d_out_proj_w, INIT_TRUNC_NORMAL, 0.02f, 2, s_out, "%s.op.out_proj.weight", prefix);
}

#endif

// Inference: nothing reads a block's internals after its output exists, and no backward reads
// them at all, so they take slots of the shared region T that are reused as soon as they are
// dead, in block_forward's order ("x > y": y is written over x, in place):
//   slot R  (C)        x0 = pre(xm): the residual stream, until the residual add (has_pre only)
//   slot c  (C, 4P)    norm.out, until the in_proj GEMMs; then xdbl, the scan's projections
//   slot a  (E)        xp until the dwconv; ys, the scan's output, until out_norm; branch
//   slot b  (E, in)    xm until pre (masked and has_pre); xconv > xs (SiLU in place) until the
//                      scan; out_norm.out > yg (mul in place) until out_proj
//   slot z  (E)        zp > zs (SiLU in place) until the gate
// A masked block without pre keeps xm in its own slot: it is the residual stream. The scan gets
// no delta or states (one direction's delta lives in the scratch). T->used is the slots' size,
// T->scratch what the block's ops need of the block scratch (which follows the largest block's
// slots). Mask m and keep_logit stay in A (predict --masks draws them); dm, droppath_scale and
// every gradient stay NULL.
void block_plan_infer(mv_block *b, mv_arena *A, mv_arena *T, const float *in, int B, int H, int W) {
    int L = H * W, C = b->C, E = b->E, P = b->R + 2 * b->N;
    size_t rows = (size_t)B * L, nE = rows * E;
    b->H = H; b->W = W;
    b->in = in; b->d_in = NULL;
    b->d_xm = b->dm = b->d_x0 = b->d_xp = b->d_zp = b->d_zs = b->d_xconv = b->d_xs = NULL;
    b->d_ys = b->d_yg = b->d_branch = b->d_out = NULL;
    b->norm.dout = b->out_norm.dout = NULL;
    b->states = NULL;
    b->droppath_scale = NULL;
    size_t in_n = rows * b->in_dim, c_n = rows * (size_t)(C > SCAN_K * P ? C : SCAN_K * P);
    float *slot_r = NULL, *slot_xm = NULL;
    if (b->masked && !b->has_pre) slot_xm = arena_take(T, in_n);   // the residual stream itself
    if (b->has_pre) slot_r = arena_take(T, rows * C);
    float *slot_c = arena_take(T, c_n);
    float *slot_a = arena_take(T, nE);
    float *slot_b = arena_take(T, b->masked && b->has_pre && in_n > nE ? in_n : nE);
    float *slot_z = arena_take(T, nE);
    b->norm.mean = arena_take(T, rows); b->norm.rstd = arena_take(T, rows);
    b->out_norm.mean = arena_take(T, rows); b->out_norm.rstd = arena_take(T, rows);
    const float *x = in;
    if (b->masked) {
        b->xm = b->has_pre ? slot_b : slot_xm;
        b->m = arena_take(A, rows); b->keep_logit = arena_take(A, rows);
        arena_need_scratch(T, token_mask_scratch(H, W));
        x = b->xm;
    }
    b->x0 = b->has_pre ? slot_r : (float *)x;
    b->norm.out = slot_c;
    b->xp = slot_a;
    b->zp = b->zs = slot_z;
    b->xconv = b->xs = slot_b;
    b->xdbl = slot_c;
    b->ys = slot_a;
    b->out_norm.out = b->yg = slot_b;
    b->branch = slot_a;
    arena_need_scratch(T, ss2d_scan_forward_scratch(B, L, E, b->R, b->N));
    b->out = arena_take(A, rows * C);
}

// Training keeps every activation (from A) for backward but the scan's delta, which backward
// recomputes (ss2d_scan_backward with delta NULL: 4E floats a token less). A block's internal
// gradients are dead once its backward has run, so they take slots from the start of the region
// that every block and ConvModule shares for theirs (dtemps; its used grows to the largest
// need), and a slot is reused once its gradient is dead, in block_backward's order ("x > y": y
// reuses x's slot; block_backward zeroes a gradient as it takes its slot, since every backward
// adds):
//   slot r  (C)          d_x0, the residual stream's gradient (has_pre; masked without pre: d_xm)
//   slot c  (C, in)      d_branch > norm.dout > d_xm (masked with pre)
//   slot 1  (E)          d_yg > d_ys > d_xconv > d_zp
//   slot 2  (E)          out_norm.dout > d_xs > d_xp
//   slot 3  (E)          d_zs
// Only d_out, which the layers after the block write before its backward runs, is the block's
// own (from D). Unmasked without pre, d_x0 is d_in itself.
void block_plan(mv_block *b, mv_arena *A, mv_arena *D, mv_arena *dtemps, const float *in, float *d_in, int B, int H,
                int W) {
    int L = H * W, C = b->C, E = b->E;
    size_t rows = (size_t)B * L, nE = rows * E;
    b->H = H; b->W = W;
    b->in = in; b->d_in = d_in;
    mv_arena g = arena_from_start(dtemps);
    float *slot_r = b->has_pre || b->masked ? arena_take(&g, rows * C) : NULL;
    float *slot_c = arena_take(&g, rows * (size_t)(b->has_pre && b->in_dim > C ? b->in_dim : C));
    float *slot_1 = arena_take(&g, nE), *slot_2 = arena_take(&g, nE), *slot_3 = arena_take(&g, nE);
    arena_fit(dtemps, &g);
    const float *x = in;
    if (b->masked) {
        b->xm = arena_take(A, rows * b->in_dim);
        b->d_xm = b->has_pre ? slot_c : slot_r;
        b->m = arena_take(A, rows); b->keep_logit = arena_take(A, rows); b->dm = arena_take(A, rows);
        arena_need_scratch(A, token_mask_scratch(H, W));
        x = b->xm;
    }
    if (b->has_pre) {
        b->x0 = arena_take(A, rows * C); b->d_x0 = slot_r;
    } else {
        b->x0 = (float *)x;   // the residual stream is the (masked) input itself
        b->d_x0 = b->masked ? b->d_xm : d_in;
    }
    layernorm_plan(&b->norm, A, NULL, (int)rows);
    b->norm.dout = slot_c;
    b->xp = arena_take(A, nE); b->d_xp = slot_2;
    b->zp = arena_take(A, nE); b->d_zp = slot_1;
    b->zs = arena_take(A, nE); b->d_zs = slot_3;
    b->xconv = arena_take(A, nE); b->d_xconv = slot_1;
    b->xs = arena_take(A, nE); b->d_xs = slot_2;
    b->xdbl = arena_take(A, rows * SCAN_K * (b->R + 2 * b->N));
    b->states = arena_take(A, ss2d_scan_states_size(B, L, E, b->N));
    arena_need_scratch(A, ss2d_scan_scratch(B, L, E, b->R, b->N));
    b->ys = arena_take(A, nE); b->d_ys = slot_1;
    layernorm_plan(&b->out_norm, A, NULL, (int)rows);
    b->out_norm.dout = slot_2;
    b->yg = arena_take(A, nE); b->d_yg = slot_1;
    b->branch = arena_take(A, rows * C); b->d_branch = slot_c;
    b->droppath_scale = arena_take(A, B);
    b->out = arena_take(A, rows * C); b->d_out = arena_take(D, rows * C);
}

static mv_mask_args mask_args(const mv_block *b, const mv_model_config *cfg, const mv_run_ctx *ctx) {
    mv_mask_args a = {ctx->training, cfg->mask_noise, cfg->mask_mode == MV_MASK_ZERO,
                      cfg->mask_layout == MV_MASK_LAYOUT_OFFICIAL, cfg->tau, ctx->seed, ctx->step,
                      b->id, ctx->sample_ids};
    return a;
}

void block_forward(mv_block *b, float *scratch, const mv_model_config *cfg, const mv_run_ctx *ctx, int B) {
    int H = b->H, W = b->W, L = H * W, C = b->C, E = b->E, rows = B * L;
    size_t nE = (size_t)rows * E;
    const float *x = b->in;
    if (b->masked) {
        mv_mask_args a = mask_args(b, cfg, ctx);
        token_mask_forward(b->xm, b->m, b->keep_logit, b->in, b->token_mask, scratch, &a, B, H, W, b->in_dim, b->gh, b->gw);
        x = b->xm;
    }
    if (b->has_pre) linear_forward(b->x0, x, b->pre_w, b->pre_b, rows, b->in_dim, C);
    layernorm_apply(&b->norm, b->x0, rows);
    // in_proj: the first E output features are x, the last E are z.
    linear_forward(b->xp, b->norm.out, b->in_proj_w, NULL, rows, C, E);
    linear_forward(b->zp, b->norm.out, b->in_proj_w + (size_t)E * C, NULL, rows, C, E);
    silu_forward(b->zs, b->zp, nE);
    dwconv3x3_forward(b->xconv, b->xp, b->conv_w, b->conv_b, B, H, W, E);
    silu_forward(b->xs, b->xconv, nE);
    // delta NULL: 4E floats a token, which the scan's forward and backward compute in scratch.
    ss2d_scan_forward(b->ys, b->xdbl, NULL, b->states, b->xs, b->x_proj_w, b->dt_w, b->dt_b,
                      b->A_logs, b->Ds, scratch, B, H, W, E, b->R, b->N);
    layernorm_apply(&b->out_norm, b->ys, rows);
    mul_forward(b->yg, b->out_norm.out, b->zs, nE);
    linear_forward(b->branch, b->yg, b->out_proj_w, NULL, rows, E, C);
    float p = ctx->training ? b->drop_rate : 0.0f;
    if (p > 0) droppath_draw(b->droppath_scale, ctx->seed, ctx->step, ctx->sample_ids, b->id, B, p);
    residual_droppath_forward(b->out, b->x0, b->branch, p > 0 ? b->droppath_scale : NULL, B, L, C);
}

// Each internal gradient is zeroed as it takes its slot (block_plan), since every backward adds;
// d_out and d_in belong to the layers around the block.
void block_backward(mv_block *b, float *scratch, const mv_model_config *cfg, const mv_run_ctx *ctx, int B) {
    int H = b->H, W = b->W, L = H * W, C = b->C, E = b->E, rows = B * L;
    size_t nE = (size_t)rows * E, nC = (size_t)rows * C;
    float p = ctx->training ? b->drop_rate : 0.0f;
    if (b->has_pre || b->masked) fill(b->d_x0, 0.0f, nC);
    fill(b->d_branch, 0.0f, nC);
    residual_droppath_backward(b->d_x0, b->d_branch, b->d_out, p > 0 ? b->droppath_scale : NULL, B, L, C);
    fill(b->d_yg, 0.0f, nE);
    linear_backward(b->d_yg, b->d_out_proj_w, NULL, b->d_branch, b->yg, b->out_proj_w, rows, E, C);
    fill(b->out_norm.dout, 0.0f, nE);
    fill(b->d_zs, 0.0f, nE);
    mul_backward(b->out_norm.dout, b->d_zs, b->d_yg, b->out_norm.out, b->zs, nE);
    fill(b->d_ys, 0.0f, nE);
    layernorm_apply_backward(&b->out_norm, b->d_ys, b->ys, rows);
    fill(b->d_xs, 0.0f, nE);
    // delta NULL: the scan recomputes it in scratch (the forward kept none).
    ss2d_scan_backward(b->d_xs, b->d_x_proj_w, b->d_dt_w, b->d_dt_b, b->d_A_logs, b->d_Ds, b->d_ys,
                       b->xs, b->xdbl, NULL, b->states, b->x_proj_w, b->dt_w, b->dt_b, b->A_logs, b->Ds,
                       scratch, B, H, W, E, b->R, b->N);
    fill(b->d_xconv, 0.0f, nE);
    silu_backward(b->d_xconv, b->d_xs, b->xconv, nE);
    fill(b->d_xp, 0.0f, nE);
    dwconv3x3_backward(b->d_xp, b->d_conv_w, b->d_conv_b, b->d_xconv, b->xp, b->conv_w, B, H, W, E);
    fill(b->d_zp, 0.0f, nE);
    silu_backward(b->d_zp, b->d_zs, b->zp, nE);
    fill(b->norm.dout, 0.0f, nC);
    linear_backward(b->norm.dout, b->d_in_proj_w, NULL, b->d_xp, b->norm.out, b->in_proj_w, rows, C, E);
    linear_backward(b->norm.dout, b->d_in_proj_w + (size_t)E * C, NULL, b->d_zp, b->norm.out,
                    b->in_proj_w + (size_t)E * C, rows, C, E);
    layernorm_apply_backward(&b->norm, b->d_x0, b->x0, rows);
    const float *x = b->masked ? b->xm : b->in;
    float *dx = b->masked ? b->d_xm : b->d_in;
    if (b->has_pre) {
        if (b->masked) fill(b->d_xm, 0.0f, (size_t)rows * b->in_dim);
        linear_backward(dx, b->d_pre_w, b->d_pre_b, b->d_x0, x, b->pre_w, rows, b->in_dim, C);
    }
    if (b->masked) {
        mv_mask_args a = mask_args(b, cfg, ctx);
        token_mask_backward(b->d_in, b->d_token_mask, b->d_xm, b->dm, b->in, b->m, b->keep_logit, scratch, &a,
                            B, H, W, b->in_dim, b->gh, b->gw);
    }
}
