// AdamW on the GPU with core/adamw.c's arithmetic: the step's scalars are formed on the host in
// double exactly as adamw_update does (PyTorch's Python floats), then every element is updated
// with the same float operations in the same order. The explicitly rounded intrinsics keep nvcc
// from fusing a multiply and an add into an FMA, which would change the last bits.
#include "kernels/cuda/common.cuh"
#include <math.h>

struct AdamwScalars {
    float beta1, beta2, a1, a2;   // a = 1 - beta
    float decay;                  // 1 - lr * weight_decay
    float step_size;              // lr / (1 - beta1^step)
    float bc2_sqrt;               // sqrt(1 - beta2^step)
    float eps;
};

__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n, AdamwScalars s) {
    GRID_STRIDE(i, n) {
        float g = grad[i];
        float mi = __fadd_rn(__fmul_rn(m[i], s.beta1), __fmul_rn(s.a1, g));
        // (1 - beta2) * g * g in torch's order (g * g first overflowed from |g| = 1.8e19).
        float vi = __fadd_rn(__fmul_rn(v[i], s.beta2), __fmul_rn(__fmul_rn(s.a2, g), g));
        m[i] = mi;
        v[i] = vi;
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2_sqrt), s.eps);
        param[i] = __fsub_rn(__fmul_rn(param[i], s.decay), __fdiv_rn(__fmul_rn(s.step_size, mi), denom));   // torch's addcdiv order
    }
}

extern "C" void adamw_update_cuda(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                                  double beta1, double beta2, double eps, double weight_decay, int step,
                                  cudaStream_t stream) {
    if (!n) return;
    AdamwScalars s;
    s.beta1 = (float)beta1;
    s.beta2 = (float)beta2;
    s.a1 = (float)(1.0 - beta1);
    s.a2 = (float)(1.0 - beta2);
    s.decay = (float)(1.0 - lr * weight_decay);
    s.step_size = (float)(lr / (1.0 - pow(beta1, step)));
    s.bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step));
    s.eps = (float)eps;
    LAUNCH(adamw_kernel, grid_for(n, 256), 256, 0, stream, param, grad, m, v, n, s);
}
