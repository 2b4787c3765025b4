// Every CPU op's backward against central finite differences of its forward, on small shapes.
#include "gradcheck.h"
#include "kernels/cpu/ops.h"

// ---- selective scan ----------------------------------------------------------------------
typedef struct {
    int B, H, W, E, R, N;
    float *x, *xpw, *dtw, *dtb, *Al, *Ds, *y, *dy, *xdbl, *delta, *states, *scratch;
    float *gx, *gxpw, *gdtw, *gdtb, *gAl, *gDs;
} scan_case;

static double scan_fwd(void *p) {
    scan_case *s = p;
    ss2d_scan_forward(s->y, s->xdbl, s->delta, s->states, s->x, s->xpw, s->dtw, s->dtb, s->Al, s->Ds,
                      s->scratch, s->B, s->H, s->W, s->E, s->R, s->N);
    return gc_dot(s->y, s->dy, (size_t)s->B * s->H * s->W * s->E);
}

static void scan_bwd(void *p) {
    scan_case *s = p;
    int L = s->H * s->W, K = SCAN_K, P = s->R + 2 * s->N;
    scan_fwd(p);
    memset(s->gx, 0, sizeof(float) * s->B * L * s->E);
    memset(s->gxpw, 0, sizeof(float) * K * P * s->E);
    memset(s->gdtw, 0, sizeof(float) * K * s->E * s->R);
    memset(s->gdtb, 0, sizeof(float) * K * s->E);
    memset(s->gAl, 0, sizeof(float) * K * s->E * s->N);
    memset(s->gDs, 0, sizeof(float) * K * s->E);
    ss2d_scan_backward(s->gx, s->gxpw, s->gdtw, s->gdtb, s->gAl, s->gDs, s->dy, s->x, s->xdbl, s->delta,
                       s->states, s->xpw, s->dtw, s->dtb, s->Al, s->Ds, s->scratch, s->B, s->H, s->W, s->E, s->R, s->N);
}

static void run_scan(int B, int H, int W, int E, int R, int N) {
    scan_case s = {.B = B, .H = H, .W = W, .E = E, .R = R, .N = N};
    int L = H * W, K = SCAN_K, P = R + 2 * N;
    size_t nx = (size_t)B * L * E;
    s.x = malloc(sizeof(float) * nx); s.y = malloc(sizeof(float) * nx); s.dy = malloc(sizeof(float) * nx);
    s.gx = malloc(sizeof(float) * nx);
    s.xpw = malloc(sizeof(float) * K * P * E); s.gxpw = malloc(sizeof(float) * K * P * E);
    s.dtw = malloc(sizeof(float) * K * E * R); s.gdtw = malloc(sizeof(float) * K * E * R);
    s.dtb = malloc(sizeof(float) * K * E); s.gdtb = malloc(sizeof(float) * K * E);
    s.Al = malloc(sizeof(float) * K * E * N); s.gAl = malloc(sizeof(float) * K * E * N);
    s.Ds = malloc(sizeof(float) * K * E); s.gDs = malloc(sizeof(float) * K * E);
    s.xdbl = malloc(sizeof(float) * B * L * K * P);
    s.delta = malloc(sizeof(float) * K * nx);
    s.states = malloc(sizeof(float) * ss2d_scan_states_size(B, L, E, N));
    s.scratch = malloc(sizeof(float) * ss2d_scan_scratch(B, L, E, R, N));
    gc_fill(s.x, nx, 1, 1.0f);
    gc_fill(s.dy, nx, 2, 1.0f);
    gc_fill(s.xpw, (size_t)K * P * E, 3, 0.5f);
    gc_fill(s.dtw, (size_t)K * E * R, 4, 0.5f);
    gc_fill(s.dtb, (size_t)K * E, 5, 1.0f);
    for (int i = 0; i < K * E * N; i++) s.Al[i] = logf((float)(i % N) + 1.0f) + 0.1f * (float)((i * 7) % 5 - 2);
    gc_fill(s.Ds, (size_t)K * E, 6, 1.0f);
    gc_case c = {scan_fwd, scan_bwd, &s};
    gradcheck(c, "x", s.x, s.gx, nx, 40, 1e-2f, 2e-2);
    gradcheck(c, "x_proj_weight", s.xpw, s.gxpw, (size_t)K * P * E, 40, 1e-2f, 2e-2);
    gradcheck(c, "dt_projs_weight", s.dtw, s.gdtw, (size_t)K * E * R, 30, 1e-2f, 2e-2);
    gradcheck(c, "dt_projs_bias", s.dtb, s.gdtb, (size_t)K * E, 30, 1e-2f, 2e-2);
    gradcheck(c, "A_logs", s.Al, s.gAl, (size_t)K * E * N, 30, 1e-2f, 2e-2);
    gradcheck(c, "Ds", s.Ds, s.gDs, (size_t)K * E, 30, 1e-2f, 2e-2);
    free(s.x); free(s.y); free(s.dy); free(s.gx); free(s.xpw); free(s.gxpw); free(s.dtw); free(s.gdtw);
    free(s.dtb); free(s.gdtb); free(s.Al); free(s.gAl); free(s.Ds); free(s.gDs); free(s.xdbl);
    free(s.delta); free(s.states); free(s.scratch);
}

// Odd sizes, a channel tail that is not a multiple of the vector block, and sequences longer
// than one scan chunk so that the chunked recomputation is exercised.
Test(gradcheck, selective_scan_small) { run_scan(2, 3, 5, 8, 2, 4); }
Test(gradcheck, selective_scan_tail_channels) { run_scan(1, 4, 3, 19, 1, 3); }
Test(gradcheck, selective_scan_multi_chunk) { run_scan(1, 9, 17, 4, 1, 2); }
Test(gradcheck, selective_scan_single_row) { run_scan(1, 1, 9, 6, 1, 2); }
// The paper's d_state (16: the states' dB/dC sums go sixteen at a time) and one that leaves
// both a partial group of sixteen and a partial group of four.
Test(gradcheck, selective_scan_d_state_16) { run_scan(1, 3, 4, 5, 1, 16); }
Test(gradcheck, selective_scan_d_state_21) { run_scan(1, 2, 5, 7, 1, 21); }

// ---- generic single-input ops --------------------------------------------------------------
typedef struct {
    void (*fwd)(void *s);
    void (*bwd)(void *s);
    float *in, *out, *dy, *din, *w, *dw, *b, *db, *scratch, *aux1, *aux2;
    double *dscratch;
    size_t nin, nout, nw, nb;
    int B, H, W, C, OC, OH, OW, S, K, stride, pad;
} op_case;

static double op_fwd(void *p) { op_case *s = p; s->fwd(s); return gc_dot(s->out, s->dy, s->nout); }
static void op_bwd(void *p) {
    op_case *s = p;
    s->fwd(s);
    memset(s->din, 0, sizeof(float) * s->nin);
    if (s->dw) memset(s->dw, 0, sizeof(float) * s->nw);
    if (s->db) memset(s->db, 0, sizeof(float) * s->nb);
    s->bwd(s);
}

static void op_alloc(op_case *s, size_t nin, size_t nout, size_t nw, size_t nb, size_t nscratch) {
    s->nin = nin; s->nout = nout; s->nw = nw; s->nb = nb;
    s->in = calloc(nin, sizeof(float)); s->din = calloc(nin, sizeof(float));
    s->out = calloc(nout, sizeof(float)); s->dy = calloc(nout, sizeof(float));
    s->w = nw ? calloc(nw, sizeof(float)) : NULL; s->dw = nw ? calloc(nw, sizeof(float)) : NULL;
    s->b = nb ? calloc(nb, sizeof(float)) : NULL; s->db = nb ? calloc(nb, sizeof(float)) : NULL;
    s->scratch = calloc(nscratch + 1, sizeof(float));
    s->dscratch = calloc(nscratch + 64, sizeof(double));
    s->aux1 = calloc(nout + nin + 64, sizeof(float)); s->aux2 = calloc(nout + nin + 64, sizeof(float));
    gc_fill(s->in, nin, 11, 1.0f);
    gc_fill(s->dy, nout, 12, 1.0f);
    if (nw) gc_fill(s->w, nw, 13, 0.5f);
    if (nb) gc_fill(s->b, nb, 14, 0.5f);
}

static void op_check(op_case *s, float h, double tol) {
    gc_case c = {op_fwd, op_bwd, s};
    gradcheck(c, "input", s->in, s->din, s->nin, 60, h, tol);
    if (s->dw) gradcheck(c, "weight", s->w, s->dw, s->nw, 60, h, tol);
    if (s->db) gradcheck(c, "bias", s->b, s->db, s->nb, 30, h, tol);
    free(s->in); free(s->din); free(s->out); free(s->dy); free(s->w); free(s->dw); free(s->b); free(s->db);
    free(s->scratch); free(s->dscratch); free(s->aux1); free(s->aux2);
}

static void linear_f(void *p) { op_case *s = p; linear_forward(s->out, s->in, s->w, s->b, s->B, s->C, s->OC); }
static void linear_b(void *p) { op_case *s = p; linear_backward(s->din, s->dw, s->db, s->dy, s->in, s->w, s->B, s->C, s->OC); }
Test(gradcheck, linear) {
    op_case s = {.fwd = linear_f, .bwd = linear_b}; s.B = 7; s.C = 5; s.OC = 19;
    op_alloc(&s, 35, 7 * 19, 19 * 5, 19, 0);
    op_check(&s, 1e-2f, 1e-2);
}

static void conv_f(void *p) { op_case *s = p; conv2d_forward(s->out, s->in, s->w, s->b, s->scratch, s->B, s->H, s->W, s->C, s->OC, s->K, s->stride, s->pad); }
static void conv_b(void *p) { op_case *s = p; conv2d_backward(s->din, s->dw, s->db, s->dy, s->in, s->w, s->scratch, s->B, s->H, s->W, s->C, s->OC, s->K, s->stride, s->pad); }
Test(gradcheck, conv4x4_stride4) {
    op_case s = {.fwd = conv_f, .bwd = conv_b}; s.B = 2; s.H = 8; s.W = 13; s.C = 3; s.OC = 5; s.K = 4; s.stride = 4; s.pad = 0;
    int OH = 2, OW = 3;
    op_alloc(&s, 2 * 8 * 13 * 3, 2 * OH * OW * 5, 5 * 3 * 16, 5, conv2d_scratch(2, 8, 13, 3, 4, 4, 0));
    op_check(&s, 1e-2f, 1e-2);
}
Test(gradcheck, conv3x3_general_padded) {
    op_case s = {.fwd = conv_f, .bwd = conv_b}; s.B = 2; s.H = 5; s.W = 4; s.C = 3; s.OC = 4; s.K = 3; s.stride = 1; s.pad = 1;
    op_alloc(&s, 2 * 5 * 4 * 3, 2 * 5 * 4 * 4, 4 * 3 * 9, 4, conv2d_scratch(2, 5, 4, 3, 3, 1, 1));
    op_check(&s, 1e-2f, 1e-2);
}

static void c33_f(void *p) { op_case *s = p; conv3x3_forward(s->out, s->in, s->w, s->scratch, s->B, s->H, s->W, s->C, s->OC); }
static void c33_b(void *p) { op_case *s = p; conv3x3_backward(s->din, s->dw, s->dy, s->in, s->w, s->scratch, s->B, s->H, s->W, s->C, s->OC); }
Test(gradcheck, conv3x3_shifted_gemm) {
    op_case s = {.fwd = c33_f, .bwd = c33_b}; s.B = 2; s.H = 5; s.W = 7; s.C = 6; s.OC = 5;
    op_alloc(&s, 2 * 5 * 7 * 6, 2 * 5 * 7 * 5, 5 * 6 * 9, 0, conv3x3_scratch(2, 5, 7, 6, 5));
    op_check(&s, 1e-2f, 1e-2);
}
// The shifted-GEMM convolution must equal the im2col one exactly in structure (same math).
Test(ops, conv3x3_matches_im2col) {
    int B = 2, H = 6, W = 5, C = 4, OC = 3;
    float *in = malloc(sizeof(float) * B * H * W * C), *w = malloc(sizeof(float) * OC * C * 9);
    float *a = malloc(sizeof(float) * B * H * W * OC), *b = malloc(sizeof(float) * B * H * W * OC);
    float *s1 = malloc(sizeof(float) * conv3x3_scratch(B, H, W, C, OC)), *s2 = malloc(sizeof(float) * conv2d_scratch(B, H, W, C, 3, 1, 1));
    gc_fill(in, (size_t)B * H * W * C, 21, 1.0f);
    gc_fill(w, (size_t)OC * C * 9, 22, 1.0f);
    conv3x3_forward(a, in, w, s1, B, H, W, C, OC);
    conv2d_forward(b, in, w, NULL, s2, B, H, W, C, OC, 3, 1, 1);
    for (int i = 0; i < B * H * W * OC; i++) cr_expect_float_eq(a[i], b[i], 1e-5, "conv3x3[%d]: %g vs %g", i, a[i], b[i]);
    free(in); free(w); free(a); free(b); free(s1); free(s2);
}

static void dw_f(void *p) { op_case *s = p; dwconv3x3_forward(s->out, s->in, s->w, s->b, s->B, s->H, s->W, s->C); }
static void dw_b(void *p) { op_case *s = p; dwconv3x3_backward(s->din, s->dw, s->db, s->dy, s->in, s->w, s->B, s->H, s->W, s->C); }
Test(gradcheck, dwconv3x3) {
    op_case s = {.fwd = dw_f, .bwd = dw_b}; s.B = 2; s.H = 4; s.W = 6; s.C = 19;
    op_alloc(&s, 2 * 4 * 6 * 19, 2 * 4 * 6 * 19, 19 * 9, 19, 0);
    op_check(&s, 1e-2f, 1e-2);
}

// A layer wider than one pass of the op's per-tap weight rows (2048 channels) against the same
// channels run one at a time: every output and gradient agrees (channels are independent).
Test(gradcheck, dwconv3x3_wide_layer_in_passes) {
    enum { B = 1, H = 3, W = 4, C = 2100 };
    size_t n = (size_t)B * H * W * C;
    float *in = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    float *din = calloc(n, sizeof(float)), *w = malloc(sizeof(float) * 9 * C), *b = malloc(sizeof(float) * C);
    float *dw = calloc(9 * C, sizeof(float)), *db = calloc(C, sizeof(float));
    gc_fill(in, n, 7, 1.0f);
    gc_fill(dy, n, 8, 1.0f);
    gc_fill(w, 9 * C, 9, 1.0f);
    gc_fill(b, C, 10, 1.0f);
    dwconv3x3_forward(out, in, w, b, B, H, W, C);
    dwconv3x3_backward(din, dw, db, dy, in, w, B, H, W, C);
    for (int c = 0; c < C; c += 349) {   // channels in both passes, the last one included
        if (c + 349 >= C) c = C - 1;
        float x1[B * H * W], g1[B * H * W], o1[B * H * W], d1[B * H * W] = {0}, dw1[9] = {0}, db1 = 0;
        for (int p = 0; p < B * H * W; p++) { x1[p] = in[(size_t)p * C + c]; g1[p] = dy[(size_t)p * C + c]; }
        dwconv3x3_forward(o1, x1, w + 9 * c, b + c, B, H, W, 1);
        dwconv3x3_backward(d1, dw1, &db1, g1, x1, w + 9 * c, B, H, W, 1);
        for (int p = 0; p < B * H * W; p++) {
            cr_expect_float_eq(out[(size_t)p * C + c], o1[p], 1e-6f, "out[%d][%d]", p, c);
            cr_expect_float_eq(din[(size_t)p * C + c], d1[p], 1e-6f, "din[%d][%d]", p, c);
        }
        for (int t = 0; t < 9; t++) cr_expect_float_eq(dw[9 * c + t], dw1[t], 1e-6f, "dw[%d][%d]", c, t);
        cr_expect_float_eq(db[c], db1, 1e-6f, "db[%d]", c);
    }
    free(in); free(dy); free(out); free(din); free(w); free(b); free(dw); free(db);
}

static void ln_f(void *p) { op_case *s = p; layernorm_forward(s->out, s->aux1, s->aux2, s->in, s->w, s->b, s->B, s->C, 1e-5f); }
static void ln_b(void *p) { op_case *s = p; layernorm_backward(s->din, s->dw, s->db, s->dy, s->in, s->w, s->aux1, s->aux2, s->B, s->C); }
Test(gradcheck, layernorm) {
    op_case s = {.fwd = ln_f, .bwd = ln_b}; s.B = 9; s.C = 21;
    op_alloc(&s, 9 * 21, 9 * 21, 21, 21, 0);
    op_check(&s, 1e-2f, 2e-2);
}

static void bn_f(void *p) {
    op_case *s = p;
    mv_reducer none = {NULL, NULL};
    batchnorm_forward_train(s->out, s->aux1, s->aux2, NULL, NULL, s->in, s->w, s->b, s->dscratch, none, s->B, s->C, 1e-5f, 0.1f);
}
static void bn_b(void *p) {
    op_case *s = p;
    mv_reducer none = {NULL, NULL};
    batchnorm_backward(s->din, s->dw, s->db, s->dy, s->in, s->w, s->aux1, s->aux2, s->dscratch, none, s->B, s->C);
}
Test(gradcheck, batchnorm_train) {
    op_case s = {.fwd = bn_f, .bwd = bn_b}; s.B = 13; s.C = 18;
    op_alloc(&s, 13 * 18, 13 * 18, 18, 18, 64);
    op_check(&s, 1e-2f, 2e-2);
}

// A reducer that pretends a second rank holds an identical copy of the batch: statistics of
// the doubled batch equal those of one copy, so the output must not change.
static void twice(void *ctx, double *buf, int n) { (void)ctx; for (int i = 0; i < n; i++) buf[i] *= 2; }
Test(ops, batchnorm_reduce_hook) {
    int N = 10, C = 5;
    float in[50], w[5], b[5], o1[50], o2[50], m[5], r[5], din1[50] = {0}, din2[50] = {0}, dy[50], dw[5] = {0}, db[5] = {0};
    double scratch[64];
    gc_fill(in, 50, 31, 1.0f); gc_fill(w, 5, 32, 1.0f); gc_fill(b, 5, 33, 1.0f); gc_fill(dy, 50, 34, 1.0f);
    mv_reducer none = {NULL, NULL}, dbl = {twice, NULL};
    batchnorm_forward_train(o1, m, r, NULL, NULL, in, w, b, scratch, none, N, C, 1e-5f, 0.1f);
    batchnorm_backward(din1, dw, db, dy, in, w, m, r, scratch, none, N, C);
    batchnorm_forward_train(o2, m, r, NULL, NULL, in, w, b, scratch, dbl, N, C, 1e-5f, 0.1f);
    batchnorm_backward(din2, dw, db, dy, in, w, m, r, scratch, dbl, N, C);
    for (int i = 0; i < 50; i++) {
        cr_expect_float_eq(o1[i], o2[i], 1e-5, "forward[%d]", i);
        cr_expect_float_eq(din1[i], din2[i], 1e-5, "backward[%d]", i);
    }
}

static void silu_f(void *p) { op_case *s = p; silu_forward(s->out, s->in, s->nin); }
static void silu_b(void *p) { op_case *s = p; silu_backward(s->din, s->dy, s->in, s->nin); }
static void relu_f(void *p) { op_case *s = p; relu_forward(s->out, s->in, s->nin); }
static void relu_b(void *p) { op_case *s = p; relu_backward(s->din, s->dy, s->out, s->nin); }
Test(gradcheck, silu) { op_case s = {.fwd = silu_f, .bwd = silu_b}; op_alloc(&s, 50, 50, 0, 0, 0); op_check(&s, 1e-2f, 1e-2); }
Test(gradcheck, relu) {
    op_case s = {.fwd = relu_f, .bwd = relu_b}; op_alloc(&s, 50, 50, 0, 0, 0);
    for (int i = 0; i < 50; i++) if (fabsf(s.in[i]) < 0.05f) s.in[i] = 0.1f;   // stay off the kink
    op_check(&s, 1e-2f, 1e-2);
}

static void pg_f(void *p) { op_case *s = p; patch_gather_forward(s->out, s->in, s->B, s->H, s->W, s->C); }
static void pg_b(void *p) { op_case *s = p; patch_gather_backward(s->din, s->dy, s->B, s->H, s->W, s->C); }
Test(gradcheck, patch_gather_odd) {
    op_case s = {.fwd = pg_f, .bwd = pg_b}; s.B = 2; s.H = 5; s.W = 7; s.C = 3;
    op_alloc(&s, 2 * 5 * 7 * 3, 2 * 3 * 4 * 12, 0, 0, 0);
    op_check(&s, 1e-2f, 1e-2);
}

static void bl_f(void *p) { op_case *s = p; bilinear_forward(s->out, s->in, s->B, s->H, s->W, s->OH, s->OW, s->C); }
static void bl_b(void *p) { op_case *s = p; bilinear_backward(s->din, s->dy, s->B, s->H, s->W, s->OH, s->OW, s->C); }
Test(gradcheck, bilinear_up) {
    op_case s = {.fwd = bl_f, .bwd = bl_b}; s.B = 2; s.H = 5; s.W = 7; s.OH = 12; s.OW = 9; s.C = 3;
    op_alloc(&s, 2 * 5 * 7 * 3, 2 * 12 * 9 * 3, 0, 0, 0);
    op_check(&s, 1e-2f, 1e-2);
}
Test(gradcheck, bilinear_down) {
    op_case s = {.fwd = bl_f, .bwd = bl_b}; s.B = 1; s.H = 12; s.W = 9; s.OH = 5; s.OW = 4; s.C = 17;
    op_alloc(&s, 12 * 9 * 17, 5 * 4 * 17, 0, 0, 0);
    op_check(&s, 1e-2f, 1e-2);
}

static void ap_f(void *p) { op_case *s = p; adaptive_avgpool_forward(s->out, s->in, s->B, s->H, s->W, s->S, s->C); }
static void ap_b(void *p) { op_case *s = p; adaptive_avgpool_backward(s->din, s->dy, s->B, s->H, s->W, s->S, s->C); }
Test(gradcheck, adaptive_avgpool) {
    for (int S = 1; S <= 6; S++) {
        op_case s = {.fwd = ap_f, .bwd = ap_b}; s.B = 2; s.H = 7; s.W = 10; s.S = S; s.C = 3;
        op_alloc(&s, 2 * 7 * 10 * 3, 2 * S * S * 3, 0, 0, 0);
        op_check(&s, 1e-2f, 1e-2);
    }
}

// ---- token mask: straight-through gradient to the logits ---------------------------------
// The hard mask is piecewise constant in P, so the check is on the soft path the straight-
// through estimator defines: with dm given, dL/dP must equal d(sum sigmoid(soft) * g)/dP where
// g = dm + sum_c dy*x (soft is the keep logit z).
typedef struct { int B, H, W, C, gh, gw; bool zero; float *x, *P, *out, *m, *soft, *dy, *dm, *dx, *dP, *scratch, *g; } tm_case;

static mv_mask_args tm_args(tm_case *s) {
    mv_mask_args a = {true, false, s->zero, false, 0.7f, 5, 0, 0, NULL};
    return a;
}
static double tm_soft_loss(void *p) {
    tm_case *s = p;
    mv_mask_args a = tm_args(s);
    token_mask_forward(s->out, s->m, s->soft, s->x, s->P, s->scratch, &a, s->B, s->H, s->W, s->C, s->gh, s->gw);
    // soft holds the keep logit z; the soft keep probability is sigmoid(z).
    double acc = 0.0;
    for (size_t i = 0; i < (size_t)s->B * s->H * s->W; i++) acc += (double)s->g[i] / (1.0 + exp(-(double)s->soft[i]));
    return acc;
}
static void tm_bwd(void *p) {
    tm_case *s = p;
    tm_soft_loss(p);
    mv_mask_args a = tm_args(s);
    size_t L = (size_t)s->H * s->W;
    memset(s->dP, 0, sizeof(float) * s->gh * s->gw * 2);
    memset(s->dx, 0, sizeof(float) * s->B * L * s->C);
    token_mask_backward(s->dx, s->dP, s->dy, s->dm, s->x, s->m, s->soft, s->scratch, &a, s->B, s->H, s->W, s->C, s->gh, s->gw);
}
static void run_token_mask(bool zero) {
    tm_case s = {.B = 2, .H = 5, .W = 6, .C = 3, .gh = 4, .gw = 3, .zero = zero};
    size_t L = 30, n = 2 * L * 3, np = 4 * 3 * 2;
    s.x = malloc(sizeof(float) * n); s.out = malloc(sizeof(float) * n); s.dy = malloc(sizeof(float) * n); s.dx = malloc(sizeof(float) * n);
    s.P = malloc(sizeof(float) * np); s.dP = malloc(sizeof(float) * np);
    s.m = malloc(sizeof(float) * 2 * L); s.soft = malloc(sizeof(float) * 2 * L); s.dm = malloc(sizeof(float) * 2 * L); s.g = malloc(sizeof(float) * 2 * L);
    s.scratch = malloc(sizeof(float) * token_mask_scratch(5, 6));
    gc_fill(s.x, n, 41, 1.0f); gc_fill(s.dy, n, 42, 1.0f); gc_fill(s.P, np, 43, 2.0f); gc_fill(s.dm, 2 * L, 44, 1.0f);
    for (size_t b = 0; b < 2; b++)
        for (size_t t = 0; t < L; t++) {
            double acc = s.dm[b * L + t];
            for (int c = 0; c < 3; c++) acc += (double)s.dy[(b * L + t) * 3 + c] * s.x[(b * L + t) * 3 + c];
            s.g[b * L + t] = (float)acc;
        }
    gc_case c = {tm_soft_loss, tm_bwd, &s};
    gradcheck(c, "token_mask logits", s.P, s.dP, np, 24, 1e-2f, 1e-2);
    // The input gradient is exact: dy * (m + 1) in residual mode, dy * m in zero mode.
    tm_bwd(&s);
    for (size_t i = 0; i < n; i++) {
        float mm = s.m[i / 3] + (zero ? 0.0f : 1.0f);
        cr_expect_float_eq(s.dx[i], s.dy[i] * mm, 1e-6, "dx[%zu]", i);
        cr_expect_float_eq(s.out[i], s.x[i] * mm, 1e-6, "out[%zu]", i);
    }
    free(s.x); free(s.out); free(s.dy); free(s.dx); free(s.P); free(s.dP); free(s.m); free(s.soft); free(s.dm); free(s.g); free(s.scratch);
}
Test(gradcheck, token_mask_residual) { run_token_mask(false); }
Test(gradcheck, token_mask_zero) { run_token_mask(true); }

// ---- cross-entropy ---------------------------------------------------------------------------
Test(gradcheck, cross_entropy_ignore) {
    int N = 12, K = 5;
    float z[60], d[60];
    uint8_t y[12] = {0, 1, 2, 3, 4, 255, 1, 1, 255, 0, 2, 3};
    gc_fill(z, 60, 51, 3.0f);
    double l0 = cross_entropy_forward_backward(d, z, y, N, K, N, 1.0f);
    cr_expect(l0 > 0);
    for (int i = 0; i < 60; i++) {
        float keep = z[i];
        z[i] = keep + 1e-2f;
        double lp = cross_entropy_forward_backward(NULL, z, y, N, K, N, 1.0f);
        z[i] = keep - 1e-2f;
        double lm = cross_entropy_forward_backward(NULL, z, y, N, K, N, 1.0f);
        z[i] = keep;
        cr_expect(fabs((lp - lm) / 2e-2 - d[i]) < 1e-3, "dlogits[%d]: %g vs %g", i, (lp - lm) / 2e-2, d[i]);
    }
    // Ignored rows contribute neither loss nor gradient.
    for (int k = 0; k < K; k++) cr_expect(d[5 * K + k] == 0.0f && d[8 * K + k] == 0.0f);
}
