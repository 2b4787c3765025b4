// Softmax cross-entropy with an ignore label, fused with its gradient, on the GPU. One thread per
// row (K is small: 19 classes); the loss is summed per block in a fixed tree and the block sums
// are added in order by a second pass, so the loss stays on the device and is the same every run.
#include "kernels/cuda/common.cuh"

#define CE_THREADS 256
#define CE_MAX_BLOCKS 4096

__global__ void ce_rows_kernel(double *partial, float *dlogits, const float *logits, const uint8_t *labels,
                               int N, int K, double denom, const double *ddenom, float scale) {
    __shared__ double sh[CE_THREADS];
    if (ddenom) denom = *ddenom >= 1.0 ? *ddenom : 1.0;
    double acc = 0.0;
    for (size_t n = (size_t)blockIdx.x * CE_THREADS + threadIdx.x; n < (size_t)N; n += (size_t)gridDim.x * CE_THREADS) {
        const float *z = logits + n * K;
        float *d = dlogits ? dlogits + n * K : NULL;
        int y = labels[n];
        if (y == 255) {
            if (d) for (int k = 0; k < K; k++) d[k] = 0.0f;
            continue;
        }
        if (y >= K) {   // not a class: NaN (no access out of the row)
            acc = nan("");
            if (d) for (int k = 0; k < K; k++) d[k] = nanf("");
            continue;
        }
        float mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)(z[k] - mx));
        // (mx - z[y]) + log(s), never log(s) + mx first: that sum absorbed log(s) once |mx| was
        // large (logits of 1e30 and -1e30), as kernels/cpu/loss.c explains.
        acc += ((double)mx - z[y]) + log(s);
        if (d) {
            double ws = (double)scale / denom / s;
            for (int k = 0; k < K; k++) d[k] = (float)(exp((double)(z[k] - mx)) * ws);
            d[y] -= (float)(scale / denom);
        }
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = CE_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

__global__ void ce_total_kernel(double *loss, const double *partial, int nblocks, double denom,
                                const double *ddenom) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        if (ddenom) denom = *ddenom >= 1.0 ? *ddenom : 1.0;
        double t = 0.0;
        for (int i = 0; i < nblocks; i++) t += partial[i];
        *loss = t / denom;
    }
}

__global__ void argmax_correct_kernel(float *correct, const float *logits, const uint8_t *labels, int N, int K) {
    GRID_STRIDE(n, (size_t)N) {
        const float *z = logits + n * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[best]) best = k;
        correct[n] = labels[n] != 255 && best == labels[n] ? 1.0f : 0.0f;
    }
}

static void cross_entropy(float *dlogits, double *loss, const float *logits, const uint8_t *labels, int N, int K,
                          double denom, const double *ddenom, float scale, cudaStream_t stream) {
    // The block count depends on N only, so the order of the additions does too.
    int nblocks = (N + CE_THREADS - 1) / CE_THREADS;
    if (nblocks < 1) nblocks = 1;
    if (nblocks > CE_MAX_BLOCKS) nblocks = CE_MAX_BLOCKS;
    double *partial = (double *)mv_cuda_workspace(sizeof(double) * nblocks);
    if (!partial) return;
    LAUNCH(ce_rows_kernel, nblocks, CE_THREADS, 0, stream, partial, dlogits, logits, labels, N, K, denom, ddenom,
           scale);
    LAUNCH(ce_total_kernel, 1, 32, 0, stream, loss, partial, nblocks, denom, ddenom);
}

extern "C" void cross_entropy_forward_backward_cuda(float *dlogits, double *loss, const float *logits,
                                                    const uint8_t *labels, int N, int K, double denom, float scale,
                                                    cudaStream_t stream) {
    cross_entropy(dlogits, loss, logits, labels, N, K, denom, NULL, scale, stream);
}

extern "C" void cross_entropy_dev_denom_cuda(float *dlogits, double *loss, const float *logits,
                                             const uint8_t *labels, int N, int K, const double *denom, float scale,
                                             cudaStream_t stream) {
    cross_entropy(dlogits, loss, logits, labels, N, K, 1.0, denom, scale, stream);
}

extern "C" void argmax_correct_cuda(float *correct, const float *logits, const uint8_t *labels, int N, int K,
                                    cudaStream_t stream) {
    if (N > 0) LAUNCH(argmax_correct_kernel, grid_for(N, 256), 256, 0, stream, correct, logits, labels, N, K);
}
