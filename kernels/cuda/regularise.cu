// Dropout2d and drop-path draws on the GPU (same Philox keys as the CPU, so the same masks), and
// the per-channel / per-sample scalings that apply them.
#include "kernels/cuda/philox.cuh"

__global__ void dropout2d_draw_kernel(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                                      uint32_t block, int B, int C, float p, float scale) {
    GRID_STRIDE(i, (size_t)B * C) {
        int b = (int)(i / C), c = (int)(i % C);
        uint32_t r[4];
        philox4x32_dev(r, seed, step, (uint32_t)sample_ids[b], MV_RNG_DROPOUT | block, (uint32_t)c);
        keep[i] = rng_u01_dev(r[0]) < p ? 0.0f : scale;
    }
}

__global__ void droppath_draw_kernel(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                                     uint32_t block, int B, float p, float scale) {
    GRID_STRIDE(b, (size_t)B) {
        uint32_t r[4];
        philox4x32_dev(r, seed, step, (uint32_t)sample_ids[b], MV_RNG_DROPPATH | block, 0);
        keep[b] = rng_u01_dev(r[0]) < p ? 0.0f : scale;
    }
}

__global__ void philox_fill_kernel(uint32_t *out, uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2,
                                   uint32_t c3, int n) {
    GRID_STRIDE(i, (size_t)n) {
        uint32_t r[4];
        philox4x32_dev(r, seed, c0, c1, c2, c3 + (uint32_t)i);
        for (int j = 0; j < 4; j++) out[4 * i + j] = r[j];
    }
}

__global__ void channel_scale_forward_kernel(float *out, const float *in, const float *keep, int HW, int C,
                                             size_t n) {
    GRID_STRIDE(i, n) out[i] = in[i] * keep[(i / ((size_t)HW * C)) * C + i % C];
}
__global__ void channel_scale_backward_kernel(float *din, const float *dout, const float *keep, int HW, int C,
                                              size_t n) {
    GRID_STRIDE(i, n) din[i] += dout[i] * keep[(i / ((size_t)HW * C)) * C + i % C];
}
__global__ void residual_droppath_forward_kernel(float *out, const float *res, const float *branch,
                                                 const float *keep, size_t per, size_t n) {
    GRID_STRIDE(i, n) out[i] = res[i] + (keep ? keep[i / per] : 1.0f) * branch[i];
}
__global__ void residual_droppath_backward_kernel(float *dres, float *dbranch, const float *dout,
                                                  const float *keep, size_t per, size_t n) {
    GRID_STRIDE(i, n) {
        if (dres) dres[i] += dout[i];
        if (dbranch) dbranch[i] += (keep ? keep[i / per] : 1.0f) * dout[i];
    }
}

extern "C" void dropout2d_draw_cuda(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                                    uint32_t block, int B, int C, float p, cudaStream_t stream) {
    float scale = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    size_t n = (size_t)B * C;
    if (n) LAUNCH(dropout2d_draw_kernel, grid_for(n, 256), 256, 0, stream, keep, seed, step, sample_ids, block, B, C, p, scale);
}

extern "C" void droppath_draw_cuda(float *keep, uint64_t seed, uint32_t step, const int *sample_ids,
                                   uint32_t block, int B, float p, cudaStream_t stream) {
    float scale = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    if (B > 0) LAUNCH(droppath_draw_kernel, 1, 256, 0, stream, keep, seed, step, sample_ids, block, B, p, scale);
}

extern "C" void philox_fill_cuda(uint32_t *out, uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                 int n, cudaStream_t stream) {
    if (n > 0) LAUNCH(philox_fill_kernel, grid_for(n, 256), 256, 0, stream, out, seed, c0, c1, c2, c3, n);
}

extern "C" void channel_scale_forward_cuda(float *out, const float *in, const float *keep, int B, int HW, int C,
                                           cudaStream_t stream) {
    size_t n = (size_t)B * HW * C;
    if (n) LAUNCH(channel_scale_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, keep, HW, C, n);
}

extern "C" void channel_scale_backward_cuda(float *din, const float *dout, const float *keep, int B, int HW, int C,
                                            cudaStream_t stream) {
    size_t n = (size_t)B * HW * C;
    if (n) LAUNCH(channel_scale_backward_kernel, grid_for(n, 256), 256, 0, stream, din, dout, keep, HW, C, n);
}

extern "C" void residual_droppath_forward_cuda(float *out, const float *res, const float *branch, const float *keep,
                                               int B, int HW, int C, cudaStream_t stream) {
    size_t per = (size_t)HW * C, n = (size_t)B * per;
    if (n) LAUNCH(residual_droppath_forward_kernel, grid_for(n, 256), 256, 0, stream, out, res, branch, keep, per, n);
}

extern "C" void residual_droppath_backward_cuda(float *dres, float *dbranch, const float *dout, const float *keep,
                                                int B, int HW, int C, cudaStream_t stream) {
    size_t per = (size_t)HW * C, n = (size_t)B * per;
    if (n) LAUNCH(residual_droppath_backward_kernel, grid_for(n, 256), 256, 0, stream, dres, dbranch, dout, keep, per, n);
}
