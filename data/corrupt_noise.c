// The noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle.
// Each element draws from its own counter (seed, corruption, element index), so the field is
// the same at every severity and only its strength changes.
// Compiled with -ffp-contract=off (CMakeLists.txt): numpy rounds every product, and a fused
// a * b + c can move a value across a whole number, i.e. a grey level.
#include <math.h>
#include <stdlib.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

void cx_gaussian_noise(double *x, int h, int w, int s, uint64_t seed) {
    static const float SIGMA[5] = {0.08f, 0.12f, 0.18f, 0.26f, 0.38f};
    size_t n = (size_t)h * w * 3;
    float *z = mv_malloc(n * sizeof *z);
    cx_fill_normal(z, n, seed, cx_purpose(CORRUPT_GAUSSIAN_NOISE, 0), 0.0f, SIGMA[s - 1]);
    for (size_t i = 0; i < n; i++) x[i] += z[i];
    free(z);
}

void cx_speckle_noise(double *x, int h, int w, int s, uint64_t seed) {
    static const float SIGMA[5] = {0.15f, 0.2f, 0.35f, 0.45f, 0.6f};
    size_t n = (size_t)h * w * 3;
    float *z = mv_malloc(n * sizeof *z);
    cx_fill_normal(z, n, seed, cx_purpose(CORRUPT_SPECKLE_NOISE, 0), 0.0f, SIGMA[s - 1]);
    for (size_t i = 0; i < n; i++) x[i] += x[i] * z[i];
    free(z);
}

// Poisson(x * lambda) / lambda per element, by inversion of one uniform per element.
void cx_shot_noise(double *x, int h, int w, int s, uint64_t seed) {
    static const float LAMBDA[5] = {60, 25, 12, 5, 3};
    float lam = LAMBDA[s - 1];
    size_t n = (size_t)h * w * 3;
    uint32_t purpose = cx_purpose(CORRUPT_SHOT_NOISE, 0);
    for (size_t b = 0; b * 4 < n; b++) {
        mv_rng4 r = philox4x32(seed, (uint32_t)b, (uint32_t)((uint64_t)b >> 32), purpose, 0);
        for (int k = 0; k < 4 && b * 4 + k < n; k++) {
            double *v = &x[b * 4 + k];
            double m = *v * lam, u = ((double)r.v[k] + 0.5) / 4294967296.0;
            double p = exp(-m), cdf = p;
            int count = 0;
            while (u > cdf && count < 1000) {
                count++;
                p *= m / count;
                cdf += p;
                if (p < 1e-300 && (double)count > m) break;   // the tail is exhausted
            }
            *v = count / (double)lam;
        }
    }
}

// Each element is hit with probability p; a hit becomes 0 or 1 with equal odds.
void cx_impulse_noise(double *x, int h, int w, int s, uint64_t seed) {
    static const float AMOUNT[5] = {0.03f, 0.06f, 0.09f, 0.17f, 0.27f};
    float p = AMOUNT[s - 1];
    size_t n = (size_t)h * w * 3;
    uint32_t purpose = cx_purpose(CORRUPT_IMPULSE_NOISE, 0);
    for (size_t b = 0; b * 4 < n; b++) {
        mv_rng4 r = philox4x32(seed, (uint32_t)b, (uint32_t)((uint64_t)b >> 32), purpose, 0);
        for (int k = 0; k < 4 && b * 4 + k < n; k++) {
            float u = rng_u01(r.v[k]);
            if (u < 0.5f * p) x[b * 4 + k] = 0.0f;
            else if (u < p) x[b * 4 + k] = 1.0f;
        }
    }
}
