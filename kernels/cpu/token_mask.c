// The learnt token mask of an MVSS block (docs/math.md section 3).
//
// The logits P live on a fixed grid (gh x gw, set by the training crop); each class plane is
// resized bilinearly to the block's H x W. Training draws a hard keep/drop decision per token
// from a Gumbel-softmax and passes gradients straight through the soft keep probability
// y = sigmoid(z), z = ((l0 + g0) - (l1 + g1)) / tau. `keep_logit` keeps z itself, not y: y'(z) =
// y (1 - y) formed from a float y loses every digit once y rounds to 1 (z above ~17: the gradient
// was 0, 3% off at z = 15, 1e-3 at z = 10); from z it is e / (1 + e)^2 with e = exp(-|z|), exact
// on both sides.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "core/rng.h"
#include <math.h>
#include <string.h>

// y'(z) = sigmoid(z) (1 - sigmoid(z)) = e / (1 + e)^2 with e = exp(-|z|), without cancellation
// (kernels/cuda/token_mask.cu has the same).
static inline float dsigmoid(float z) {
    float e = expf(-fabsf(z)), d = 1.0f + e;
    return e / (d * d);
}

// Scratch: the two resized logit planes, and their gradients.
size_t token_mask_scratch(int H, int W) { return 4 * (size_t)H * W; }

// planes[c][H*W] <- P (spatial layout: P[(y*gw + x)*2 + c]).
static void resize_logits(float *planes, const float *P, int H, int W, int gh, int gw) {
    // Treat P as a [1,gh,gw,2] channels-last image: the bilinear op resizes both planes at once.
    float *tmp = planes + 2 * (size_t)H * W;   // [H*W, 2] interleaved
    bilinear_forward(tmp, P, 1, gh, gw, H, W, 2);
    for (int t = 0; t < H * W; t++) { planes[t] = tmp[2 * t]; planes[(size_t)H * W + t] = tmp[2 * t + 1]; }
}

// The two logits token t sees. The official layout reads the flattened [2,H,W] buffer as
// [H*W,2] (token t takes entries 2t and 2t+1), the released code's behaviour.
static inline void token_logits(int t, int L, bool official, size_t *i0, size_t *i1) {
    if (official) { *i0 = 2 * (size_t)t; *i1 = 2 * (size_t)t + 1; }
    else { *i0 = (size_t)t; *i1 = (size_t)L + t; }
}

void token_mask_forward(float *out, float *m, float *keep_logit, const float *x, const float *P,
                        float *scratch, const mv_mask_args *a, int B, int H, int W, int C, int gh, int gw) {
    PROF_START();
    int L = H * W;
    float *planes = scratch;
    resize_logits(planes, P, H, W, gh, gw);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            size_t i0, i1;
            token_logits(t, L, a->official_layout, &i0, &i1);
            float l0 = planes[i0], l1 = planes[i1];
            float keep;
            if (!a->training) {
                keep = l0 > l1 ? 1.0f : 0.0f;
                keep_logit[(size_t)b * L + t] = l0 - l1;
            } else {
                float g0 = 0.0f, g1 = 0.0f;
                if (a->noise) {
                    mv_rng4 r = philox4x32(a->seed, a->step, (uint32_t)a->sample_ids[b], MV_RNG_GUMBEL | a->block, (uint32_t)t);
                    g0 = -logf(-logf(rng_u01(r.v[0])));
                    g1 = -logf(-logf(rng_u01(r.v[1])));
                }
                float z = ((l0 + g0) - (l1 + g1)) / a->tau;   // y_keep = sigmoid(z)
                keep_logit[(size_t)b * L + t] = z;
                keep = z >= 0 ? 1.0f : 0.0f;   // a tie keeps, as argmax picks the first entry
            }
            m[(size_t)b * L + t] = keep;
        }
    float add = a->zero_mode ? 0.0f : 1.0f;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            float s = m[(size_t)b * L + t] + add;
            const float *xi = x + ((size_t)b * L + t) * C;
            float *o = out + ((size_t)b * L + t) * C;
            for (int c = 0; c < C; c++) o[c] = xi[c] * s;
        }
    PROF_STOP(PROF_TOKEN_MASK, 0, 1.0 * B * H * W * C);
}

void token_mask_backward(float *dx, float *dP, const float *dout, const float *dm, const float *x,
                         const float *m, const float *keep_logit, float *scratch, const mv_mask_args *a,
                         int B, int H, int W, int C, int gh, int gw) {
    PROF_START();
    int L = H * W;
    float add = a->zero_mode ? 0.0f : 1.0f;
    if (dx) {
        #pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                float s = m[(size_t)b * L + t] + add;
                const float *g = dout + ((size_t)b * L + t) * C;
                float *d = dx + ((size_t)b * L + t) * C;
                for (int c = 0; c < C; c++) d[c] += g[c] * s;
            }
    }
    if (!dP || !a->training) { PROF_STOP(PROF_TOKEN_MASK, 1, 3.0 * B * H * W * C); return; }
    // dL/dm per token, then through y_keep = sigmoid(z), z = ((l0+g0)-(l1+g1))/tau, to the logits.
    float *dplanes = scratch;                    // [2, H*W]
    float *tmp = scratch + 2 * (size_t)L;        // [H*W, 2] interleaved
    memset(dplanes, 0, sizeof(float) * 2 * L);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const float *g = dout + ((size_t)b * L + t) * C, *xi = x + ((size_t)b * L + t) * C;
            double gm = dm ? dm[(size_t)b * L + t] : 0.0;
            for (int c = 0; c < C; c++) gm += (double)g[c] * xi[c];
            float dz = (float)gm * dsigmoid(keep_logit[(size_t)b * L + t]) / a->tau;
            size_t i0, i1;
            token_logits(t, L, a->official_layout, &i0, &i1);
            dplanes[i0] += dz;
            dplanes[i1] -= dz;
        }
    for (int t = 0; t < L; t++) { tmp[2 * t] = dplanes[t]; tmp[2 * t + 1] = dplanes[(size_t)L + t]; }
    bilinear_backward(dP, tmp, 1, gh, gw, H, W, 2);
    PROF_STOP(PROF_TOKEN_MASK, 1, 3.0 * B * H * W * C);
}
