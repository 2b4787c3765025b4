// Pointwise activations: ReLU, SiLU, softplus (PyTorch's threshold 20 above which it is x).
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"
#include <math.h>

void relu_forward(float *out, const float *in, size_t n) {
    PROF_START();
    // NaN passes through (PyTorch's relu(NaN) is NaN): `in > 0 ? in : 0` turned a NaN into 0, so
    // a non-finite activation vanished at the decode head's ConvModules and the loss stayed finite.
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i];
    PROF_STOP(PROF_POINTWISE, 0, 1.0 * n);
}

void relu_backward(float *din, const float *dout, const float *out, size_t n) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
    PROF_STOP(PROF_POINTWISE, 1, 1.0 * n);
}

void silu_forward(float *out, const float *in, size_t n) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = in[i] * mv_sigmoidf(in[i]);
    PROF_STOP(PROF_POINTWISE, 0, 4.0 * n);
}

void silu_backward(float *din, const float *dout, const float *in, size_t n) {
    PROF_START();
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = mv_sigmoidf(in[i]);
        din[i] += dout[i] * s * (1.0f + in[i] * (1.0f - s));
    }
    PROF_STOP(PROF_POINTWISE, 1, 7.0 * n);
}

void softplus_forward(float *out, const float *in, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 20.0f ? in[i] : log1pf(expf(in[i]));
}

void softplus_backward(float *din, const float *dout, const float *in, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) din[i] += in[i] > 20.0f ? dout[i] : dout[i] * mv_sigmoidf(in[i]);
}
