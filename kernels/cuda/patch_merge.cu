// Patch merging's data movement on the GPU: zero-pad odd H/W, gather each 2x2 neighbourhood into
// 4C channels (order (0,0), (1,0), (0,1), (1,1) as (row, col)). The windows do not overlap, so
// the backward is a gather too: every input element reads its one output slot.
#include "kernels/cuda/common.cuh"

__global__ void patch_gather_forward_kernel(float *out, const float *in, int B, int H, int W, int C) {
    int OH = (H + 1) / 2, OW = (W + 1) / 2;
    size_t n = (size_t)B * OH * OW * 4 * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C), q = (int)((i / C) % 4);
        size_t pix = i / ((size_t)4 * C);
        int ox = (int)(pix % OW), oy = (int)((pix / OW) % OH), b = (int)(pix / ((size_t)OW * OH));
        int y = 2 * oy + (q & 1), x = 2 * ox + (q >> 1);
        out[i] = (y < H && x < W) ? in[(((size_t)b * H + y) * W + x) * C + c] : 0.0f;
    }
}

__global__ void patch_gather_backward_kernel(float *din, const float *dout, int B, int H, int W, int C) {
    int OH = (H + 1) / 2, OW = (W + 1) / 2;
    size_t n = (size_t)B * H * W * C;
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        size_t pix = i / C;
        int x = (int)(pix % W), y = (int)((pix / W) % H), b = (int)(pix / ((size_t)W * H));
        int q = (y & 1) + 2 * (x & 1);
        din[i] += dout[((((size_t)b * OH + y / 2) * OW + x / 2) * 4 + q) * C + c];
    }
}

extern "C" void patch_gather_forward_cuda(float *out, const float *in, int B, int H, int W, int C,
                                          cudaStream_t stream) {
    size_t n = (size_t)B * ((H + 1) / 2) * ((W + 1) / 2) * 4 * C;
    if (n) LAUNCH(patch_gather_forward_kernel, grid_for(n, 256), 256, 0, stream, out, in, B, H, W, C);
}

extern "C" void patch_gather_backward_cuda(float *din, const float *dout, int B, int H, int W, int C,
                                           cudaStream_t stream) {
    size_t n = (size_t)B * H * W * C;
    if (n) LAUNCH(patch_gather_backward_kernel, grid_for(n, 256), 256, 0, stream, din, dout, B, H, W, C);
}
