// The class evaluation and predict take from a pixel's logits (eval_predict) against
// torch.argmax, which mmseg's postprocess_result calls: the first maximum on ties, and a NaN
// larger than any number (the first NaN wins; checked in PyTorch 2: argmax([1, nan, nan, 5])
// is 1, argmax([3, 3, 1e30, nan]) is 3). Infinities are left out: the bilinear resize before the
// argmax turns them into NaN (0 * inf), in PyTorch as here. The argmax used to skip NaN, so a model with one NaN
// channel was scored as if that channel were absent, where mmseg predicts it everywhere.
#include <criterion/criterion.h>
#include <math.h>
#include "core/evaluate.h"

static int class_of(const float *z, int K) {
    uint8_t pred = 99;
    mv_eval_buffers buf = {0};
    cr_assert_eq(eval_predict(&pred, &buf, z, K, 1, 1, 1, 1, 1, 1), 0);   // one pixel, no resize
    eval_buffers_free(&buf);
    return pred;
}

Test(eval_argmax, as_torch_argmax) {
    const float nan = NAN;
    const struct { float z[4]; int want; } cases[] = {
        {{1, 5, 5, 2}, 1},        // ties: the first maximum
        {{0, 0, 0, 0}, 0},
        {{-1e30f, -1e30f, -3, -1e30f}, 2},
        {{1, nan, nan, 5}, 1},    // a NaN beats 5; the first NaN wins
        {{nan, 1, 2, 3}, 0},
        {{1, 2, 3, nan}, 3},
        {{3, 3, 1e30f, nan}, 3},  // and beats any number
        {{nan, nan, nan, nan}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(class_of(cases[i].z, 4), cases[i].want, "case %zu: class %d, torch.argmax %d", i,
                     class_of(cases[i].z, 4), cases[i].want);
}
