// The warm-up + poly schedule against mmengine's chained LinearLR + PolyLR.
// Expected values were produced offline by simulating mmengine's chainable recurrences
// step by step in Python (the scheduler `step()` logic of mmengine/optim/scheduler/
// param_scheduler.py: LinearLR then PolyLR per global step, last_step counted from each
// scheduler's begin), not the closed forms the code uses, so the two are checked
// against each other.
#include <criterion/criterion.h>
#include <math.h>
#include "core/schedule.h"

static void expect_close(double got, double want, long t) {
    double tol = 1e-12 * fabs(want) + 1e-18;
    cr_expect(fabs(got - want) <= tol, "iter %ld: got %.17g, want %.17g", t, got, want);
}

// The authors' schedule (docs/math.md section 6): base 6e-5, start 1e-6, warm-up 1500, 20k iterations.
Test(schedule, authors_recipe_matches_mmengine) {
    mv_schedule_config s = {.warmup_iters = 1500, .warmup_start = 1e-6, .max_iters = 20000, .power = 1.0, .eta_min = 0};
    static const struct { long t; double lr; } ref[] = {
        {0, 6e-11},
        {1, 4.008664442961975e-08},
        {749, 2.99800166777853e-05},
        {1499, 6.000000000000008e-05},
        {1500, 6.000000000000008e-05},
        {1501, 5.999675658143692e-05},
        {10000, 3.243094221309627e-05},
        {19998, 3.2434185631661775e-09},
        {19999, 0.0},
        {20000, 0.0},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) expect_close(schedule_lr(&s, 6e-5, ref[i].t), ref[i].lr, ref[i].t);
    // The factor form, by hand: 1e-6 at t=0, 1e-6 + (1-1e-6)/1499 at t=1, 1 at the end of
    // warm-up and at the start of the poly decay, 1 - 1/18499 one step later, 0 at the end.
    expect_close(schedule_lr_factor(&s, 0), 1e-6, 0);
    expect_close(schedule_lr_factor(&s, 1), 1e-6 + (1.0 - 1e-6) / 1499.0, 1);
    expect_close(schedule_lr_factor(&s, 1499), 1.0, 1499);
    expect_close(schedule_lr_factor(&s, 1500), 1.0, 1500);
    expect_close(schedule_lr_factor(&s, 1501), 1.0 - 1.0 / 18499.0, 1501);
    cr_expect_eq(schedule_lr_factor(&s, 19999), 0.0);
    cr_expect_eq(schedule_lr_factor(&s, 20000), 0.0);
    cr_expect_eq(schedule_lr_factor(&s, 123456), 0.0, "past max_iters the last value holds");
}

Test(schedule, power_and_eta_min) {
    mv_schedule_config s = {.warmup_iters = 10, .warmup_start = 0.1, .max_iters = 100, .power = 0.9, .eta_min = 1e-6};
    static const struct { long t; double lr; } ref[] = {
        {0, 0.001}, {5, 0.006}, {9, 0.010000000000000002}, {10, 0.010000000000000002},
        {11, 0.009898829476106681}, {50, 0.005844620909946614}, {98, 0.00017699712051901938},
        {99, 1e-06}, {100, 1e-06},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) expect_close(schedule_lr(&s, 1e-2, ref[i].t), ref[i].lr, ref[i].t);
}

// One warm-up iteration: LinearLR only ever applies its start factor, and PolyLR decays
// from there. No warm-up: PolyLR from iteration 0.
Test(schedule, short_and_no_warmup) {
    mv_schedule_config one = {.warmup_iters = 1, .warmup_start = 0.25, .max_iters = 11, .power = 1.0, .eta_min = 0};
    static const double ref1[12] = {0.25, 0.25, 0.2222222222222222, 0.19444444444444442, 0.16666666666666666,
                                    0.1388888888888889, 0.11111111111111112, 0.08333333333333334,
                                    0.055555555555555566, 0.027777777777777783, 0.0, 0.0};
    for (long t = 0; t < 12; t++) expect_close(schedule_lr_factor(&one, t), ref1[t], t);
    mv_schedule_config none = {.warmup_iters = 0, .warmup_start = 0.25, .max_iters = 11, .power = 2.0, .eta_min = 0};
    static const double ref0[12] = {1.0, 0.81, 0.64, 0.49, 0.36000000000000004, 0.25000000000000006,
                                    0.16000000000000006, 0.09000000000000004, 0.04000000000000002,
                                    0.010000000000000005, 0.0, 0.0};
    for (long t = 0; t < 12; t++) expect_close(schedule_lr_factor(&none, t), ref0[t], t);
}

Test(schedule, shape) {
    mv_schedule_config s = {.warmup_iters = 1500, .warmup_start = 1e-6, .max_iters = 20000, .power = 1.0, .eta_min = 0};
    for (long t = 1; t < 1500; t++) cr_assert_gt(schedule_lr_factor(&s, t), schedule_lr_factor(&s, t - 1), "warm-up rises at %ld", t);
    for (long t = 1501; t < 20000; t++) cr_assert_lt(schedule_lr_factor(&s, t), schedule_lr_factor(&s, t - 1), "poly falls at %ld", t);
    cr_expect_eq(schedule_lr_factor(&s, -5), schedule_lr_factor(&s, 0));
}
