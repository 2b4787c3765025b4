// CPU versions of the loss helpers of kernels/cpu/ops_loss.h: double fills, double sums and
// counts, the keep-ratio loss and the position loss. They are the references for the CUDA twins
// (kernels/cuda/mask_losses.cu), which keep these scalars on the device during a step.
#include "kernels/cpu/ops_loss.h"

void fill_double(double *x, double v, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

void sum_to_double(double *out, const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *out = s;
}

void count_valid(double *out, const uint8_t *labels, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += labels[i] != 255;
    *out = (double)c;
}

void add_scaled_double(double *acc, const double *x, double s) { *acc += s * *x; }

void ratio_loss(double *loss, float *grad, const double *stats, const int *group, const float *lambda,
                int nb, int per_stage, double alpha1, double world) {
    *loss = mv_ratio_loss_eval(grad, stats, group, lambda, nb, per_stage, alpha1, world);
}

void position_loss(double *loss, float *dm, const float *m, const float *target, size_t n, double alpha2) {
    double se = 0;
    for (size_t t = 0; t < n; t++) {
        float d = m[t] - target[t];
        se += (double)d * d;
        dm[t] = (float)(alpha2 * 2.0 * d / (double)n);
    }
    *loss = n ? se / (double)n : 0.0;
}
