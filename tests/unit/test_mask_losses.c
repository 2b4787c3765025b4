// The loss helpers of kernels/cpu/ops_loss.h: fills, sums and counts on small known inputs, the
// keep-ratio loss and the position loss against hand-computed values and against central finite
// differences of their own loss (the gradient they hand to the model is alpha * dL/d(input)).
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_loss.h"

Test(mask_losses, fills_sums_and_counts) {
    float x[5];
    fill(x, 1.25f, 5);
    for (int i = 0; i < 5; i++) cr_expect_eq(x[i], 1.25f);
    float v = -3.5f;
    fill_from(x, &v, 4);
    for (int i = 0; i < 4; i++) cr_expect_eq(x[i], -3.5f);
    cr_expect_eq(x[4], 1.25f, "fill_from wrote past n");
    double d[3] = {0, 0, 7};
    fill_double(d, 0.1, 2);
    cr_expect(d[0] == 0.1 && d[1] == 0.1 && d[2] == 7);
    double s = -1;
    sum_to_double(&s, x, 5);
    cr_expect_eq(s, 4 * -3.5 + 1.25);
    sum_to_double(&s, x, 0);
    cr_expect_eq(s, 0.0);
    // Double accumulation: 2^24 + 1 + 1 is exact in double, not in float.
    float big[3] = {16777216.0f, 1.0f, 1.0f};
    sum_to_double(&s, big, 3);
    cr_expect_eq(s, 16777218.0);
    uint8_t labels[7] = {0, 255, 18, 255, 3, 254, 255};
    count_valid(&s, labels, 7);
    cr_expect_eq(s, 4.0);
    double acc = 1.5, t = 2.0;
    add_scaled_double(&acc, &t, 0.25);
    cr_expect_eq(acc, 2.0);
}

// L_ratio of block means `mean` (stats rebuilt from the counts), for finite differences.
static double ratio_of_means(const double *mean, const double *count, const int *group, const float *lambda, int nb,
                             int per_stage) {
    double stats[16];
    float grad[8];
    for (int j = 0; j < nb; j++) {
        stats[j] = mean[j] * count[j];
        stats[nb + j] = count[j];
    }
    double loss;
    ratio_loss(&loss, grad, stats, group, lambda, nb, per_stage, 1.0, 1.0);
    return loss;
}

static void check_ratio(int per_stage) {
    enum { NB = 7 };
    const int group[NB] = {0, 0, 1, -1, 1, 2, 3};
    const double count[NB] = {64, 64, 16, 16, 0, 4, 4};   // block 4: masked out (count 0)
    const double mean[NB] = {0.9, 0.7, 0.5, 0.1, 0.3, 0.75, 0.25};
    const float lambda[4] = {0.8f, 0.6f, 0.5f, 0.4f};
    const double alpha1 = 0.5, world = 2;
    double stats[2 * NB];
    for (int j = 0; j < NB; j++) {
        stats[j] = mean[j] * count[j];
        stats[NB + j] = count[j];
    }
    double loss;
    float grad[NB];
    memset(grad, 0x7f, sizeof grad);
    ratio_loss(&loss, grad, stats, group, lambda, NB, per_stage, alpha1, world);
    // Hand-computed: in the loss are blocks 0, 1 (stage 0), 2 (stage 1), 5 (stage 2), 6 (stage 3).
    double want;
    if (per_stage) {
        double s0 = (0.9 + 0.7) / 2 - 0.8f, s1 = 0.5 - 0.6f, s2 = 0.75 - 0.5f, s3 = 0.25 - 0.4f;
        want = s0 * s0 + s1 * s1 + s2 * s2 + s3 * s3;
    } else {
        double d0 = 0.9 - 0.8f, d1 = 0.7 - 0.8f, d2 = 0.5 - 0.6f, d5 = 0.75 - 0.5f, d6 = 0.25 - 0.4f;
        want = d0 * d0 + d1 * d1 + d2 * d2 + d5 * d5 + d6 * d6;
    }
    cr_expect(fabs(loss - want) < 1e-12, "per_stage %d: loss %.17g, want %.17g", per_stage, loss, want);
    cr_expect_eq(grad[3], 0.0f, "block outside the loss (group -1) has a gradient");
    cr_expect_eq(grad[4], 0.0f, "block outside the loss (count 0) has a gradient");
    // grad[j] = alpha1 * dL/dmean_j * world / count_j, against central differences.
    for (int j = 0; j < NB; j++) {
        if (group[j] < 0 || count[j] == 0) continue;
        double mp[NB], mm[NB], h = 1e-5;
        memcpy(mp, mean, sizeof mp);
        memcpy(mm, mean, sizeof mm);
        mp[j] += h;
        mm[j] -= h;
        double dl = (ratio_of_means(mp, count, group, lambda, NB, per_stage) -
                     ratio_of_means(mm, count, group, lambda, NB, per_stage)) / (2 * h);
        double expect = alpha1 * dl * world / count[j];
        cr_expect(fabs(grad[j] - expect) < 1e-6 * (1 + fabs(expect)), "per_stage %d block %d: grad %.9g, want %.9g",
                  per_stage, j, grad[j], expect);
    }
}

Test(mask_losses, ratio_loss_per_block) { check_ratio(0); }
Test(mask_losses, ratio_loss_per_stage) { check_ratio(1); }

Test(mask_losses, position_loss) {
    float m[4] = {0.25f, 0.5f, 1.0f, 0.0f}, target[4] = {1, 0, 1, 1}, dm[4];
    double loss;
    position_loss(&loss, dm, m, target, 4, 0.3);
    double want = (0.75 * 0.75 + 0.25 + 0 + 1) / 4;
    cr_expect(fabs(loss - want) < 1e-15, "loss %.17g, want %.17g", loss, want);
    // dm = alpha2 * dL/dm = alpha2 * 2 (m - target) / n, written.
    for (int i = 0; i < 4; i++) {
        float expect = (float)(0.3 * 2.0 * ((double)m[i] - target[i]) / 4.0);
        cr_expect_eq(dm[i], expect, "dm[%d] = %g, want %g", i, dm[i], expect);
    }
    position_loss(&loss, dm, m, target, 0, 0.3);
    cr_expect_eq(loss, 0.0);
}
