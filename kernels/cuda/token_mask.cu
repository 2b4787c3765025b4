// The learnt token mask of an MVSS block on the GPU (docs/math.md section 3). The logits P live on a
// fixed gh x gw grid; each token reads its two logits bilinearly resized to H x W (or, in the
// official layout, entries 2t and 2t+1 of the flattened resized [2,H,W] buffer), draws Gumbel
// noise from the same Philox key as the CPU, and keeps or drops. Backward passes gradients
// straight through the soft keep probability y = sigmoid(z) to P; `keep_logit` holds z (the keep
// logit), from which y (1 - y) is formed without cancellation (kernels/cpu/token_mask.c).
#include "kernels/cuda/philox.cuh"
#include "kernels/cuda/resample.cuh"

// Entry `f` of the resized [2, H*W] logit planes (plane f / L, token f % L), as bilinear_forward
// of P read as a [1, gh, gw, 2] image computes it.
__device__ float resized_logit(const float *P, int f, int H, int W, int gh, int gw) {
    int L = H * W, cls = f / L, t = f % L;
    Tap2 ty = bilinear_tap(t / W, gh, H), tx = bilinear_tap(t % W, gw, W);
    const float *r0 = P + (size_t)ty.i0 * gw * 2, *r1 = P + (size_t)ty.i1 * gw * 2;
    float a = r0[tx.i0 * 2 + cls], bq = r0[tx.i1 * 2 + cls], c2 = r1[tx.i0 * 2 + cls], d = r1[tx.i1 * 2 + cls];
    return ty.w0 * (tx.w0 * a + tx.w1 * bq) + ty.w1 * (tx.w0 * c2 + tx.w1 * d);
}

// The two entries token t reads: (t, L + t), or (2t, 2t + 1) in the official layout.
__device__ __forceinline__ void token_entries(int *f0, int *f1, int t, int L, bool official) {
    *f0 = official ? 2 * t : t;
    *f1 = official ? 2 * t + 1 : L + t;
}

__global__ void token_decide_kernel(float *m, float *keep_logit, const float *P, mv_mask_args a, int B, int H, int W,
                                    int gh, int gw) {
    int L = H * W;
    GRID_STRIDE(i, (size_t)B * L) {
        int b = (int)(i / L), t = (int)(i % L), f0, f1;
        token_entries(&f0, &f1, t, L, a.official_layout);
        float l0 = resized_logit(P, f0, H, W, gh, gw), l1 = resized_logit(P, f1, H, W, gh, gw), keep;
        if (!a.training) {
            keep = l0 > l1 ? 1.0f : 0.0f;
            keep_logit[i] = l0 - l1;
        } else {
            float g0 = 0.0f, g1 = 0.0f;
            if (a.noise) {
                uint32_t r[4];
                philox4x32_dev(r, a.seed, a.step, (uint32_t)a.sample_ids[b], MV_RNG_GUMBEL | a.block, (uint32_t)t);
                g0 = -logf(-logf(rng_u01_dev(r[0])));
                g1 = -logf(-logf(rng_u01_dev(r[1])));
            }
            float z = ((l0 + g0) - (l1 + g1)) / a.tau;   // y_keep = sigmoid(z)
            keep_logit[i] = z;
            keep = z >= 0 ? 1.0f : 0.0f;   // a tie keeps, as argmax picks the first entry
        }
        m[i] = keep;
    }
}

__global__ void token_apply_kernel(float *out, const float *x, const float *m, float add, int C, size_t n) {
    GRID_STRIDE(i, n) out[i] = x[i] * (m[i / C] + add);
}

__global__ void token_dx_kernel(float *dx, const float *dout, const float *m, float add, int C, size_t n) {
    GRID_STRIDE(i, n) dx[i] += dout[i] * (m[i / C] + add);
}

// One warp per token: dL/dm = dm + sum_c dout*x per image (in double, as the CPU op), through
// the sigmoid to dz, summed over images in order; the token's two plane entries get +-sum,
// written straight into the interleaved [H*W, 2] layout that the bilinear backward reads.
#define TM_WARPS 8
// y'(z) = sigmoid(z) (1 - sigmoid(z)) = e / (1 + e)^2 with e = exp(-|z|), as the CPU op.
__device__ __forceinline__ float dsigmoid(float z) {
    float e = expf(-fabsf(z)), d = 1.0f + e;
    return e / (d * d);
}
__global__ void token_logit_grad_kernel(float *tmp, const float *dout, const float *dm, const float *x,
                                        const float *keep_logit, float tau, bool official, int B, int L, int C) {
    int t = blockIdx.x * TM_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (t >= L) return;   // the whole warp leaves together
    float sum = 0.0f;
    for (int b = 0; b < B; b++) {
        size_t row = (size_t)b * L + t;
        const float *g = dout + row * C, *xi = x + row * C;
        double part = 0.0;
        for (int c = lane; c < C; c += 32) part += (double)g[c] * xi[c];
        double gm = (dm ? (double)dm[row] : 0.0) + group_sum<32>(part);
        sum += (float)gm * dsigmoid(keep_logit[row]) / tau;
    }
    if (lane == 0) {
        int f0, f1;
        token_entries(&f0, &f1, t, L, official);
        tmp[2 * (f0 % L) + f0 / L] = sum;
        tmp[2 * (f1 % L) + f1 / L] = -sum;
    }
}

extern "C" size_t token_mask_scratch_cuda(int H, int W) { return 2 * (size_t)H * W; }

extern "C" void token_mask_forward_cuda(float *out, float *m, float *keep_logit, const float *x, const float *P,
                                        float *scratch, const mv_mask_args *a, int B, int H, int W, int C,
                                        int gh, int gw, cudaStream_t stream) {
    (void)scratch;
    size_t tokens = (size_t)B * H * W, n = tokens * C;
    if (!tokens) return;
    LAUNCH(token_decide_kernel, grid_for(tokens, 256), 256, 0, stream, m, keep_logit, P, *a, B, H, W, gh, gw);
    float add = a->zero_mode ? 0.0f : 1.0f;
    if (n) LAUNCH(token_apply_kernel, grid_for(n, 256), 256, 0, stream, out, x, m, add, C, n);
}

extern "C" void token_mask_backward_cuda(float *dx, float *dP, const float *dout, const float *dm, const float *x,
                                         const float *m, const float *keep_logit, float *scratch, const mv_mask_args *a,
                                         int B, int H, int W, int C, int gh, int gw, cudaStream_t stream) {
    int L = H * W;
    size_t n = (size_t)B * L * C;
    float add = a->zero_mode ? 0.0f : 1.0f;
    if (dx && n) LAUNCH(token_dx_kernel, grid_for(n, 256), 256, 0, stream, dx, dout, m, add, C, n);
    if (!dP || !a->training || L <= 0) return;
    LAUNCH(token_logit_grad_kernel, (L + TM_WARPS - 1) / TM_WARPS, 32 * TM_WARPS, 0, stream, scratch, dout, dm, x,
           keep_logit, a->tau, a->official_layout, B, L, C);
    bilinear_backward_cuda(dP, scratch, 1, gh, gw, H, W, 2, stream);
}
