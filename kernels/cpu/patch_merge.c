// Patch merging's data movement (encoder downsample): zero-pad odd H/W at the bottom/right and
// gather each 2x2 neighbourhood into 4C channels; LayerNorm and the reduction Linear follow.
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"

void patch_gather_forward(float *out, const float *in, int B, int H, int W, int C) {
    PROF_START();
    int OH = (H + 1) / 2, OW = (W + 1) / 2;
    // Order of the four neighbours: (0,0), (1,0), (0,1), (1,1) as (row, col) offsets.
    static const int DY[4] = {0, 1, 0, 1}, DX[4] = {0, 0, 1, 1};
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *o = out + (((size_t)b * OH + oy) * OW + ox) * 4 * C;
                for (int q = 0; q < 4; q++) {
                    int y = 2 * oy + DY[q], x = 2 * ox + DX[q];
                    const float *src = in + (((size_t)b * H + y) * W + x) * C;
                    for (int c = 0; c < C; c++) o[q * C + c] = (y < H && x < W) ? src[c] : 0.0f;
                }
            }
    PROF_STOP(PROF_RESAMPLE, 0, 0);
}

void patch_gather_backward(float *din, const float *dout, int B, int H, int W, int C) {
    PROF_START();
    int OH = (H + 1) / 2, OW = (W + 1) / 2;
    static const int DY[4] = {0, 1, 0, 1}, DX[4] = {0, 0, 1, 1};
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float *g = dout + (((size_t)b * OH + oy) * OW + ox) * 4 * C;
                for (int q = 0; q < 4; q++) {
                    int y = 2 * oy + DY[q], x = 2 * ox + DX[q];
                    if (y >= H || x >= W) continue;
                    float *d = din + (((size_t)b * H + y) * W + x) * C;
                    for (int c = 0; c < C; c++) d[c] += g[q * C + c];
                }
            }
    PROF_STOP(PROF_RESAMPLE, 1, 1.0 * B * H * W * C);
}
