// Dropout2d and drop path (stochastic depth): draws keyed by (seed, step, global sample index,
// block), so 1 rank x 2 images and 2 ranks x 1 image draw the same masks.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "core/rng.h"

void dropout2d_draw(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                    uint32_t block, int B, int C, float p) {
    float scale = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            mv_rng4 r = philox4x32(seed, step, (uint32_t)sample_ids[b], MV_RNG_DROPOUT | block, (uint32_t)c);
            keep[b * C + c] = rng_u01(r.v[0]) < p ? 0.0f : scale;
        }
}

void droppath_draw(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                   uint32_t block, int B, float p) {
    float scale = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    for (int b = 0; b < B; b++) {
        mv_rng4 r = philox4x32(seed, step, (uint32_t)sample_ids[b], MV_RNG_DROPPATH | block, 0);
        keep[b] = rng_u01(r.v[0]) < p ? 0.0f : scale;
    }
}

void channel_scale_forward(float *out, const float *in, const float *keep, int B, int HW, int C) {
    PROF_START();
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < C; c++) {
                size_t o = ((size_t)b * HW + i) * C + c;
                out[o] = in[o] * keep[b * C + c];
            }
    PROF_STOP(PROF_POINTWISE, 0, 1.0 * B * HW * C);
}

void channel_scale_backward(float *din, const float *dout, const float *keep, int B, int HW, int C) {
    PROF_START();
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < C; c++) {
                size_t o = ((size_t)b * HW + i) * C + c;
                din[o] += dout[o] * keep[b * C + c];
            }
    PROF_STOP(PROF_POINTWISE, 1, 1.0 * B * HW * C);
}

void residual_droppath_forward(float *out, const float *res, const float *branch, const float *keep,
                               int B, int HW, int C) {
    PROF_START();
    size_t per = (size_t)HW * C;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++) {
            size_t o = b * per + i;
            out[o] = res[o] + (keep ? keep[b] : 1.0f) * branch[o];
        }
    PROF_STOP(PROF_POINTWISE, 0, 2.0 * B * HW * C);
}

void residual_droppath_backward(float *dres, float *dbranch, const float *dout, const float *keep,
                                int B, int HW, int C) {
    PROF_START();
    size_t per = (size_t)HW * C;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++) {
            size_t o = b * per + i;
            dres[o] += dout[o];
            dbranch[o] += (keep ? keep[b] : 1.0f) * dout[o];
        }
    PROF_STOP(PROF_POINTWISE, 1, 2.0 * B * HW * C);
}
