// AdamW against torch.optim.AdamW, and the parameter-name rules.
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/adamw.h"

// Produced offline with /usr/bin/python3 (torch 1.13) by this script:
//   p = Parameter(float32 tensor [((i % 11) - 5) / 10 for i in range(19)])
//   opt = torch.optim.AdamW([p], lr, betas, eps, weight_decay)
//   for step in 1..5: p.grad = float32 [(((i*7 + step*13) % 17) - 8) / 8 for i]; opt.step()
//   print p, state exp_avg, state exp_avg_sq with %.9g
// Case A: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 (the authors' shape).
// Case B: lr 0.05, betas (0.8, 0.99), eps 1e-3, weight_decay 0.5 (large decay and eps).
#define N 19
#define STEPS 5
static const float A_PARAM[N] = {
    -0.501719773f, -0.400156438f, -0.300655872f, -0.198052317f, -0.0989842936f, -0.00246105995f,
    0.102850914f, 0.198252663f, 0.301226348f, 0.40206793f, 0.496923864f, -0.497689992f,
    -0.400909156f, -0.299470901f, -0.199647948f, -0.102800556f, 0.00165147905f, 0.0982502848f,
    0.199813575f,
};
static const float A_M[N] = {
    0.0159937497f, 0.0223937519f, 0.0536774993f, -0.131172493f, 0.0722362474f, 0.0671825036f,
    -0.0813299865f, 0.104866251f, -0.0799837485f, -0.0486999899f, 0.118371248f, -0.0301412493f,
    -0.0351950005f, -0.0287950002f, 0.00248875469f, -0.0429400019f, 0.0210475028f, 0.0159937497f,
    0.0223937519f,
};
static const float A_V[N] = {
    0.00187234627f, 0.00188556837f, 0.00159142306f, 0.00230716355f, 0.001652768f, 0.00201250357f,
    0.00179208315f, 0.00179448584f, 0.00201069401f, 0.00165311119f, 0.00230859872f, 0.00158970687f,
    0.00188812695f, 0.00187016209f, 0.00154429825f, 0.00249500689f, 0.00154326868f, 0.00187234627f,
    0.00188556837f,
};
static const float B_PARAM[N] = {
    -0.507962823f, -0.366848171f, -0.293792546f, -0.0890295431f, -0.0525890738f, -0.102673247f,
    0.213353738f, 0.0965069234f, 0.317990303f, 0.450366378f, 0.308309585f, -0.343500704f,
    -0.38042742f, -0.245609641f, -0.158179641f, -0.20060949f, 0.0662316605f, 0.0206946768f,
    0.161809325f,
};
static const float B_M[N] = {
    0.0259999968f, 0.015200004f, 0.113880001f, -0.236920014f, 0.133760005f, 0.110040009f,
    -0.118360005f, 0.197919995f, -0.152879998f, -0.0542000085f, 0.194079995f, -0.0343200043f,
    -0.0580400079f, -0.0688399971f, 0.0298400018f, -0.146879986f, 0.0497200117f, 0.0259999968f,
    0.015200004f,
};
static const float B_V[N] = {
    0.0184868909f, 0.0184055679f, 0.015705809f, 0.0225977674f, 0.0162163228f, 0.0198473521f,
    0.0174939353f, 0.0177309625f, 0.0196688082f, 0.0162501857f, 0.0227393731f, 0.0155365039f,
    0.0186579898f, 0.0182714052f, 0.0152122173f, 0.0245067067f, 0.0151106324f, 0.0184868909f,
    0.0184055679f,
};

// Distance in units in the last place between two floats of the same sign.
static int ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0)) return a == b ? 0 : 1 << 30;
    return ia > ib ? ia - ib : ib - ia;
}

static void run_case(double lr, double b1, double b2, double eps, double wd, const float *want_p, const float *want_m,
                     const float *want_v) {
    float p[N], m[N] = {0}, v[N] = {0}, g[N];
    for (int i = 0; i < N; i++) p[i] = (float)(((i % 11) - 5) / 10.0);
    for (int step = 1; step <= STEPS; step++) {
        for (int i = 0; i < N; i++) g[i] = (float)((((i * 7 + step * 13) % 17) - 8) / 8.0);
        adamw_update(p, g, m, v, N, lr, b1, b2, eps, wd, step);
    }
    // Same float32 operations in the same order as torch; only fused multiply-adds may
    // differ, and whether the compiler fuses depends on the optimisation level. Measured: m
    // and v bit-identical and parameters within 2 ulp at -O3, up to 8 ulp (m) unoptimised.
    for (int i = 0; i < N; i++) {
        cr_expect(ulps(p[i], want_p[i]) <= 16, "param[%d] %.9g vs torch %.9g", i, p[i], want_p[i]);
        cr_expect(ulps(m[i], want_m[i]) <= 16, "m[%d] %.9g vs torch %.9g", i, m[i], want_m[i]);
        cr_expect(ulps(v[i], want_v[i]) <= 16, "v[%d] %.9g vs torch %.9g", i, v[i], want_v[i]);
    }
}

Test(adamw, matches_torch_authors_settings) { run_case(1e-3, 0.9, 0.999, 1e-8, 0.01, A_PARAM, A_M, A_V); }
Test(adamw, matches_torch_large_decay_and_eps) { run_case(0.05, 0.8, 0.99, 1e-3, 0.5, B_PARAM, B_M, B_V); }

// The first step of Adam moves every parameter by about lr * sign(g) (m/sqrt(v) = g/|g|
// after bias correction), on top of the decoupled decay p * (1 - lr*wd).
Test(adamw, first_step_by_hand) {
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.3f, -4.0f, 0.0f}, m[3] = {0}, v[3] = {0};
    adamw_update(p, g, m, v, 3, 0.01, 0.9, 0.999, 1e-8, 0.1, 1);
    cr_expect(fabsf(p[0] - (1.0f * 0.999f - 0.01f)) < 1e-6f, "p0 %.9g", p[0]);
    cr_expect(fabsf(p[1] - (-2.0f * 0.999f + 0.01f)) < 1e-6f, "p1 %.9g", p[1]);
    cr_expect(fabsf(p[2] - 0.5f * 0.999f) < 1e-7f, "p2 %.9g (zero gradient: decay only)", p[2]);
    cr_expect(fabsf(m[1] - (-0.4f)) < 1e-6f && fabsf(v[1] - 0.016f) < 1e-7f, "m %.9g v %.9g", m[1], v[1]);
}

// The threaded path (large n) gives bit-identical results to the single-thread path on the
// same elements, whatever the split.
Test(adamw, threaded_equals_serial) {
    const size_t n = 100003;
    float *p1 = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *m1 = calloc(n, sizeof(float)), *m2 = calloc(n, sizeof(float));
    float *v1 = calloc(n, sizeof(float)), *v2 = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        p1[i] = p2[i] = (float)((int)(i % 201) - 100) / 64.0f;
        g[i] = (float)((int)((i * 37) % 97) - 48) / 32.0f;
    }
    for (int step = 1; step <= 3; step++) {
        adamw_update(p1, g, m1, v1, n, 6e-4, 0.9, 0.999, 1e-8, 0.01, step);
        for (size_t lo = 0; lo < n; lo += 1001) {   // slices below the threading threshold
            size_t len = n - lo < 1001 ? n - lo : 1001;
            adamw_update(p2 + lo, g + lo, m2 + lo, v2 + lo, len, 6e-4, 0.9, 0.999, 1e-8, 0.01, step);
        }
    }
    cr_expect(memcmp(p1, p2, n * sizeof(float)) == 0, "params differ");
    cr_expect(memcmp(m1, m2, n * sizeof(float)) == 0, "first moments differ");
    cr_expect(memcmp(v1, v2, n * sizeof(float)) == 0, "second moments differ");
    cr_expect(p1[5] != (float)(5 - 100) / 64.0f, "the update changed something");
    free(p1); free(p2); free(g); free(m1); free(m2); free(v1); free(v2);
}

Test(optim_rules, authors_rules) {
    mv_config cfg;
    config_defaults(&cfg);
    float lr, decay;
    optim_rule_for(&cfg.optim, "backbone.layers.0.blocks.0.norm.weight", &lr, &decay);
    cr_expect(lr == 1.0f && decay == 0.0f, "norm: %g %g", lr, decay);
    optim_rule_for(&cfg.optim, "backbone.outnorm2.bias", &lr, &decay);
    cr_expect(lr == 1.0f && decay == 0.0f, "outnorm: %g %g", lr, decay);
    optim_rule_for(&cfg.optim, "backbone.layers.1.blocks.0.op.out_norm.weight", &lr, &decay);
    cr_expect(lr == 1.0f && decay == 0.0f, "out_norm: %g %g", lr, decay);
    optim_rule_for(&cfg.optim, "backbone.layers.0.blocks.1.token_mask", &lr, &decay);
    cr_expect(lr == 10000.0f && decay == 1.0f, "token_mask: %g %g", lr, decay);
    optim_rule_for(&cfg.optim, "decode_head.lateral_convs.0.blocks.0.token_mask", &lr, &decay);
    cr_expect(lr == 10000.0f && decay == 1.0f, "decoder token_mask: %g %g", lr, decay);
    optim_rule_for(&cfg.optim, "backbone.layers.0.blocks.0.op.in_proj.weight", &lr, &decay);
    cr_expect(lr == 1.0f && decay == 1.0f, "no rule: %g %g", lr, decay);
}

// Appends the rule {match, lr_mult, decay_mult} to o.
static void add_rule(mv_optim_config *o, const char *match, float lr_mult, float decay_mult) {
    mv_optim_rule *r = &o->rules[o->num_rules++];
    snprintf(r->match, sizeof r->match, "%s", match);
    r->lr_mult = lr_mult;
    r->decay_mult = decay_mult;
}

Test(optim_rules, longest_match_wins) {
    mv_optim_config o = {0};
    add_rule(&o, "norm", 1, 0);
    add_rule(&o, "out_norm", 2, 0.5f);
    add_rule(&o, "abc", 3, 3);
    add_rule(&o, "bcd", 4, 4);
    float lr, decay;
    optim_rule_for(&o, "op.out_norm.weight", &lr, &decay);
    cr_expect(lr == 2.0f && decay == 0.5f, "longest match: %g %g", lr, decay);
    optim_rule_for(&o, "downsample.norm.weight", &lr, &decay);
    cr_expect(lr == 1.0f && decay == 0.0f, "norm: %g %g", lr, decay);
    optim_rule_for(&o, "xabcdx", &lr, &decay);
    cr_expect(lr == 3.0f && decay == 3.0f, "tie goes to the alphabetically first: %g %g", lr, decay);
}

// mmengine sorts custom_keys alphabetically, then by length (longest first), and takes the first
// key contained in the name: among equally long matches the alphabetically first wins, wherever
// it is listed (a rule listed later but sorting first used to lose).
Test(optim_rules, equal_length_tie_is_alphabetical_as_mmengine) {
    mv_optim_config o = {0};
    add_rule(&o, "bcd", 4, 4);
    add_rule(&o, "abc", 3, 3);
    add_rule(&o, "abc", 5, 5);
    float lr, decay;
    optim_rule_for(&o, "xabcdx", &lr, &decay);
    cr_expect(lr == 3.0f && decay == 3.0f, "equal-length tie: %g %g (want abc's 3, 3)", lr, decay);
    optim_rule_for(&o, "xbcdx", &lr, &decay);
    cr_expect(lr == 4.0f && decay == 4.0f, "only bcd matches: %g %g", lr, decay);
}
