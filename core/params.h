// The parameter registry: every parameter and buffer of the model by its PyTorch state_dict
// name and shape, with its place in one flat arena (parameters, gradients and buffers each a
// single allocation) and its initialiser. (Learning-rate and decay multipliers are the
// optimizer's, resolved by name: core/optimizer.h.)
#pragma once
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    INIT_ZERO, INIT_ONE,
    INIT_TRUNC_NORMAL,     // std `a` (Linear weights: 0.02), truncated at +-2
    INIT_NORMAL,           // std `a` (conv_seg: 0.01)
    INIT_UNIFORM,          // U(-a, a) (token_mask: gamma; dt_projs_weight: R^-0.5; PyTorch conv default)
    INIT_KAIMING_FANOUT,   // normal, std sqrt(2 / fan_out) with fan_out = a (mmcv ConvModule)
    INIT_DT_BIAS,          // softplus^-1(dt), dt = exp(U(log 1e-3, log 1e-1)) clamped >= 1e-4
    INIT_A_LOG,            // row-wise log(1..N), a = N
} mv_init_kind;

typedef struct {
    char name[112];
    int ndim, shape[4];
    size_t numel, offset;  // offset into params/grads (or buffers when is_buffer)
    bool is_buffer;        // BatchNorm running statistics: state, not trained
    mv_init_kind init;
    float init_a;
    float **ptr, **gptr;   // bound to the arena by params_allocate
} mv_param;

typedef struct {
    mv_param *items;
    int count, cap;
    size_t num_params, num_buffers;
    float *params, *grads, *buffers;
    // The GPU model's copies (core/device/model_device.c); NULL on the CPU. When set, every
    // registered pointer points into these and the host arenas above are staging copies.
    float *dev_params, *dev_grads, *dev_buffers;
} mv_params;

// Registers a trainable parameter, its gradient bound to *gptr; the name is printf-formatted.
void params_add(mv_params *p, float **ptr, float **gptr, mv_init_kind init, float init_a, int ndim,
                const int *shape, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
// Registers a buffer: saved and loaded with the parameters, never trained (BatchNorm's running
// statistics).
void buffer_add(mv_params *p, float **ptr, mv_init_kind init, float init_a, int ndim, const int *shape,
                const char *fmt, ...) __attribute__((format(printf, 7, 8)));
// Allocates the three arenas and binds every registered pointer; -1 with a message when they do
// not fit in memory.
int params_allocate(mv_params *p);
void params_free(mv_params *p);
const mv_param *params_find(const mv_params *p, const char *name);
// Fills every parameter and buffer from the seeded counter-based generator.
void params_init(mv_params *p, uint64_t seed);
void params_zero_grads(mv_params *p);
// A tensor just read from `path` must hold finite values: a NaN or infinity (weights exported
// from a diverged run, a damaged export) would otherwise turn every prediction into one class
// and every loss into NaN, far from the cause. 0, or -1 with a message naming the file, the
// tensor and the first such element.
int params_check_finite(const mv_params *p, const mv_param *q, const char *path);
// The host copy of q's values: where *q->ptr points on the CPU, and on the GPU the staging copy
// that run_state_to_host refreshes (*q->ptr is then a device pointer, which host code must never
// read). Checkpoints, weight files and checks read and write through this.
static inline float *params_host(const mv_params *p, const mv_param *q) {
    return (q->is_buffer ? p->buffers : p->params) + q->offset;
}
// The first parameter or buffer holding a NaN or infinity in its host copy (its element in
// *elem), or NULL.
const mv_param *params_first_non_finite(const mv_params *p, size_t *elem);
