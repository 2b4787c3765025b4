// Finite-difference gradient checking for the CPU ops (header-only test helper).
// A case computes loss = sum(out * dy) in `forward` and its analytic gradients in `backward`;
// gradcheck perturbs sampled entries of each input and compares central differences.
#pragma once
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/rng.h"

typedef struct {
    double (*forward)(void *ctx);
    void (*backward)(void *ctx);   // must zero and fill the gradient arrays itself
    void *ctx;
} gc_case;

static inline void gc_fill(float *x, size_t n, uint32_t seed, float scale) {
    for (size_t i = 0; i < n; i++) {
        mv_rng4 r = philox4x32(1234, seed, (uint32_t)i, 0, 0);
        x[i] = scale * (2.0f * rng_u01(r.v[0]) - 1.0f);
    }
}

static inline double gc_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// Checks up to `samples` entries of x against grad; error relative to max |grad| of the tensor.
static inline void gradcheck(gc_case c, const char *what, float *x, const float *grad, size_t n,
                             int samples, float h, double tol) {
    c.backward(c.ctx);
    double gmax = 1e-6;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    float *g = malloc(sizeof(float) * n);
    memcpy(g, grad, sizeof(float) * n);
    double worst = 0;
    size_t stride = n > (size_t)samples ? n / samples : 1;
    for (size_t i = stride / 2; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = c.forward(c.ctx);
        x[i] = keep - h;
        double lm = c.forward(c.ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * h);
        double err = fabs(fd - g[i]) / gmax;
        if (err > worst) worst = err;
        cr_expect(err < tol, "%s[%zu]: finite difference %.6g vs analytic %.6g (max |grad| %.3g)", what, i, fd, g[i], gmax);
    }
    free(g);
    cr_log_info("%s: worst relative error %.2e over %zu entries", what, worst, n / stride);
}
