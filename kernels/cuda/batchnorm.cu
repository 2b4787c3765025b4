// BatchNorm over rows per channel on the GPU, two passes: per-channel sums in double (a
// deterministic column reduction into the device statistics buffer), the SyncBN hook on that
// buffer, then the per-element pass. Same statistics, order of operations and running-stat
// update as the CPU op.
#include "kernels/cuda/common.cuh"

extern "C" size_t batchnorm_scratch_cuda(int C) { return 2 * (size_t)C + 1; }

// Columns [0, C): a; columns [C, 2C): a * q (in double, as the CPU op).
struct BNSums {
    const float *a, *q;
    int C;
    __device__ double operator()(int n, int j) const {
        if (j < C) return (double)a[(size_t)n * C + j];
        size_t i = (size_t)n * C + j - C;
        return (double)a[i] * q[i];
    }
};
// Writes the sums into the statistics buffer; column 0 also writes the row count.
struct BNStore {
    double *buf;
    int C, N;
    __device__ void operator()(int j, double t) const {
        buf[j] = t;
        if (j == 0) buf[2 * C] = N;
    }
};

__global__ void bn_stats_kernel(float *mean, float *rstd, float *running_mean, float *running_var,
                                const double *buf, int C, float eps, float momentum) {
    GRID_STRIDE(i, (size_t)C) {
        int c = (int)i;
        double count = buf[2 * C];
        double m = buf[c] / count, v = buf[C + c] / count - m * m;
        if (v < 0) v = 0;
        mean[c] = (float)m;
        rstd[c] = (float)(1.0 / sqrt(v + eps));
        if (running_mean) {
            double unbiased = count > 1 ? v * count / (count - 1) : v;
            running_mean[c] = (float)((1 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = (float)((1 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
}

__global__ void bn_apply_kernel(float *out, const float *in, const float *w, const float *b, const float *mean,
                                const float *rstd, size_t n, int C) {
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        out[i] = (in[i] - mean[c]) * rstd[c] * w[c] + b[c];
    }
}

__global__ void bn_eval_kernel(float *out, const float *in, const float *w, const float *b, const float *rm,
                               const float *rv, size_t n, int C, float eps) {
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        float r = 1.0f / sqrtf(rv[c] + eps);
        out[i] = (in[i] - rm[c]) * r * w[c] + b[c];
    }
}

// sum dy*x -> sum dy*xhat, then this rank's parameter gradients.
__global__ void bn_param_grad_kernel(float *dw, float *db, double *buf, const float *mean, const float *rstd, int C) {
    GRID_STRIDE(i, (size_t)C) {
        int c = (int)i;
        double sg = buf[c], sgx = (buf[C + c] - mean[c] * sg) * rstd[c];
        buf[C + c] = sgx;
        if (dw) dw[c] += (float)sgx;
        if (db) db[c] += (float)sg;
    }
}

__global__ void bn_input_grad_kernel(float *din, const float *dout, const float *in, const float *w,
                                     const float *mean, const float *rstd, const double *buf, size_t n, int C) {
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        double count = buf[2 * C];
        float xh = (in[i] - mean[c]) * rstd[c];
        din[i] += w[c] * rstd[c] * (dout[i] - (float)(buf[c] / count) - xh * (float)(buf[C + c] / count));
    }
}

extern "C" void batchnorm_forward_train_cuda(float *out, float *mean, float *rstd, float *running_mean,
                                             float *running_var, const float *in, const float *w, const float *b,
                                             double *scratch, mv_reducer_cuda red, int N, int C, float eps,
                                             float momentum, cudaStream_t stream) {
    if (C <= 0) return;
    colsum<double>(BNSums{in, in, C}, BNStore{scratch, C, N}, N, 2 * C, stream);
    if (red.fn) red.fn(red.ctx, scratch, 2 * C + 1, stream);
    LAUNCH(bn_stats_kernel, grid_for(C, 256), 256, 0, stream, mean, rstd, running_mean, running_var, scratch, C,
           eps, momentum);
    size_t n = (size_t)N * C;
    if (n) LAUNCH(bn_apply_kernel, grid_for(n, 256), 256, 0, stream, out, in, w, b, mean, rstd, n, C);
}

extern "C" void batchnorm_forward_eval_cuda(float *out, const float *in, const float *w, const float *b,
                                            const float *running_mean, const float *running_var, int N, int C,
                                            float eps, cudaStream_t stream) {
    size_t n = (size_t)N * C;
    if (n) LAUNCH(bn_eval_kernel, grid_for(n, 256), 256, 0, stream, out, in, w, b, running_mean, running_var, n, C, eps);
}

extern "C" void batchnorm_backward_cuda(float *din, float *dw, float *db, const float *dout, const float *in,
                                        const float *w, const float *mean, const float *rstd, double *scratch,
                                        mv_reducer_cuda red, int N, int C, cudaStream_t stream) {
    if (C <= 0) return;
    colsum<double>(BNSums{dout, in, C}, BNStore{scratch, C, N}, N, 2 * C, stream);
    LAUNCH(bn_param_grad_kernel, grid_for(C, 256), 256, 0, stream, dw, db, scratch, mean, rstd, C);
    if (!din) return;
    if (red.fn) red.fn(red.ctx, scratch, 2 * C + 1, stream);
    size_t n = (size_t)N * C;
    if (n) LAUNCH(bn_input_grad_kernel, grid_for(n, 256), 256, 0, stream, din, dout, in, w, mean, rstd, scratch, n, C);
}
