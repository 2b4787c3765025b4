// The small ops behind the training losses (docs/math.md section 5) that a step needs besides
// cross-entropy: double fills, double-precision sums and counts, the keep-ratio loss and the
// position loss. They exist so that the GPU backend can keep a whole step on the device: each has a CUDA
// twin `name_cuda(..., cudaStream_t)` in kernels/cuda/ops_cuda.h with the same arguments, and the
// CPU versions here are their references (kernels/cpu/mask_losses.c).
//
// Outputs first, inputs next, sizes last. Scalars the GPU keeps on the device (sums, losses, the
// ratio-loss gradients) are pointers here too.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// x[i] = v for doubles (loss accumulators, token counts). (Float fills: kernels/cpu/ops.h.)
void fill_double(double *x, double v, size_t n);
// *out = sum of x[0..n) accumulated in double.
void sum_to_double(double *out, const float *x, size_t n);
// *out = number of labels that are not the ignore label 255.
void count_valid(double *out, const uint8_t *labels, size_t n);
// *acc += s * *x (sums loss terms: loss_total = ce + w_aux aux + alpha1 ratio + alpha2 position).
void add_scaled_double(double *acc, const double *x, double s);

// The keep-ratio loss L_ratio (unweighted) and, per block, the value of its gradient that the
// model writes into every element of block j's dm.
// stats[0..nb): sum of m over block j's tokens; stats[nb..2nb): block j's token count (0: block
// not in the loss). group[j]: encoder stage 0..3 of block j, or -1 (not in the loss). lambda[4]:
// target keep ratio per stage. per_stage: one term per stage on the mean of its blocks' means
// (else one term per block). world: the factor for the global-batch ratio (the world size when
// the statistics were summed over ranks, else 1).
// *loss = L_ratio; grad[j] = alpha1 * dL/dmean_j * world / count_j (0 for blocks not in it).
void ratio_loss(double *loss, float *grad, const double *stats, const int *group, const float *lambda,
                int nb, int per_stage, double alpha1, double world);
// L_position of one block: *loss = mean((m - target)^2) (double accumulation);
// dm[i] = alpha2 * 2 (m[i] - target[i]) / n, WRITTEN (not added).
void position_loss(double *loss, float *dm, const float *m, const float *target, size_t n, double alpha2);

// ---- the ratio loss's arithmetic, shared by the CPU op and the GPU kernel ------------------------
#if defined(__CUDACC__)
#define MV_HOST_DEVICE __host__ __device__
#else
#define MV_HOST_DEVICE
#endif
#define MV_RATIO_STAGES 4

// The one definition of the ratio loss's arithmetic, shared by the CPU op and the CUDA kernel
// so both give the same bits. Its order: per-stage sums of the block means in block order, the
// per-stage terms in stage order, then the per-block terms.
static inline MV_HOST_DEVICE double mv_ratio_loss_eval(float *grad, const double *stats, const int *group,
                                                       const float *lambda, int nb, int per_stage,
                                                       double alpha1, double world) {
    double stage_mean[MV_RATIO_STAGES] = {0, 0, 0, 0}, stage_blocks[MV_RATIO_STAGES] = {0, 0, 0, 0};
    for (int j = 0; j < nb; j++) {
        int s = group[j];
        if (s < 0 || s >= MV_RATIO_STAGES || !(stats[nb + j] > 0)) continue;
        stage_mean[s] += stats[j] / stats[nb + j];
        stage_blocks[s] += 1;
    }
    double loss = 0;
    for (int s = 0; s < MV_RATIO_STAGES; s++)
        if (per_stage && stage_blocks[s] > 0) {
            double d = stage_mean[s] / stage_blocks[s] - lambda[s];
            loss += d * d;
        }
    for (int j = 0; j < nb; j++) {
        int s = group[j];
        if (s < 0 || s >= MV_RATIO_STAGES || !(stats[nb + j] > 0)) {
            grad[j] = 0.0f;
            continue;
        }
        double g;   // d L_ratio / d mean(m_j)
        if (per_stage) {
            g = 2.0 * (stage_mean[s] / stage_blocks[s] - lambda[s]) / stage_blocks[s];
        } else {
            double d = stats[j] / stats[nb + j] - lambda[s];
            loss += d * d;
            g = 2.0 * d;
        }
        grad[j] = (float)(alpha1 * g * world / stats[nb + j]);
    }
    return loss;
}

#ifdef __cplusplus
}
#endif
