// Pointwise activations: ReLU and SiLU. (The scan's softplus is not here: it is fused into the
// delta's computation, v16_softplus in kernels/cpu/selective_scan.c.)
#include "kernels/cpu/ops.h"
#include "kernels/cpu/profile.h"
#include "kernels/cpu/fastmath.h"

void relu_forward(float *out, const float *in, size_t n) {
    PROF_START();
    // NaN passes through, as in PyTorch (relu(NaN) is NaN), so that a non-finite activation
    // reaches the loss instead of vanishing at the decode head's ConvModules: hence `in < 0`,
    // which is false for NaN, and not `in > 0 ? in : 0`, which maps NaN to 0.
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

// SiLU 16 elements at a time: v16_sigmoidf is mv_sigmoidf bit for bit, and each element's
// arithmetic is the scalar expression's (GCC left the scalar loop unvectorised: the sigmoid's
// branches and bit casts).
void silu_forward(float *out, const float *in, size_t n) {
    PROF_START();
    size_t nv = n / 16;
    #pragma omp parallel for schedule(static)
    for (size_t v = 0; v < nv; v++) {
        v16f x = v16_load(in + 16 * v, 16);
        v16_store(out + 16 * v, x * v16_sigmoidf(x), 16);
    }
    for (size_t i = 16 * nv; i < n; i++) out[i] = in[i] * mv_sigmoidf(in[i]);
    PROF_STOP(PROF_POINTWISE, 0, 4.0 * n);
}

void silu_backward(float *din, const float *dout, const float *in, size_t n) {
    PROF_START();
    size_t nv = n / 16;
    #pragma omp parallel for schedule(static)
    for (size_t v = 0; v < nv; v++) {
        v16f x = v16_load(in + 16 * v, 16), g = v16_load(dout + 16 * v, 16), d = v16_load(din + 16 * v, 16);
        v16f s = v16_sigmoidf(x);
        // x (1 - s) rounded before the 1 is added, as GCC compiled the scalar loop (it fused
        // only the last multiply into the add to din).
        d += g * s * (1.0f + v16_rounded(x * (1.0f - s)));
        v16_store(din + 16 * v, d, 16);
    }
    for (size_t i = 16 * nv; i < n; i++) {
        float s = mv_sigmoidf(in[i]);
        din[i] += dout[i] * s * (1.0f + mv_rounded(in[i] * (1.0f - s)));
    }
    PROF_STOP(PROF_POINTWISE, 1, 7.0 * n);
}
