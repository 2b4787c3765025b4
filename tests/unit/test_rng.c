// The counter-based generator: Philox-4x32-10 known answers and the uniform's open interval.
#include <criterion/criterion.h>
#include "core/rng.h"

// Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32 10 rounds).
Test(rng, philox_known_answers) {
    mv_rng4 a = philox4x32(0, 0, 0, 0, 0);
    cr_expect_eq(a.v[0], 0x6627e8d5u); cr_expect_eq(a.v[1], 0xe169c58du);
    cr_expect_eq(a.v[2], 0xbc57ac4cu); cr_expect_eq(a.v[3], 0x9b00dbd8u);
    mv_rng4 b = philox4x32(0xffffffffffffffffull, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
    cr_expect_eq(b.v[0], 0x408f276du); cr_expect_eq(b.v[1], 0x41c83b0eu);
    cr_expect_eq(b.v[2], 0xa20bc7c6u); cr_expect_eq(b.v[3], 0x6d5451fdu);
}

Test(rng, uniform_open_interval) {
    cr_expect(rng_u01(0) > 0.0f);
    cr_expect(rng_u01(0xffffffffu) < 1.0f);
    double mean = 0;
    for (uint32_t i = 0; i < 100000; i++) mean += rng_u01(philox4x32(7, i, 0, 0, 0).v[0]);
    mean /= 100000;   // standard error 0.0009
    cr_expect(mean > 0.495 && mean < 0.505, "mean %g", mean);
}
