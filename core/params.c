// Parameter registry, arenas and initialisation (docs/math.md section 2, "Initialisation").
#include "core/params.h"
#include "core/error.h"
#include "core/huge_alloc.h"
#include "core/rng.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/line_up.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void add_tensor(mv_params *p, float **ptr, float **gptr, bool is_buffer, mv_init_kind init, float init_a,
                       int ndim, const int *shape, const char *fmt, va_list ap) {
    if (p->count == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        p->items = mv_realloc(p->items, sizeof(mv_param) * p->cap);
    }
    mv_param *q = &p->items[p->count++];
    memset(q, 0, sizeof *q);
    vsnprintf(q->name, sizeof q->name, fmt, ap);
    q->ndim = ndim;
    q->numel = 1;
    for (int i = 0; i < ndim; i++) { q->shape[i] = shape[i]; q->numel *= (size_t)shape[i]; }
    q->is_buffer = is_buffer;
    q->init = init;
    q->init_a = init_a;
    q->ptr = ptr;
    q->gptr = gptr;
    // 16-float alignment keeps every tensor on a 64-byte boundary for vector loads.
    size_t *total = is_buffer ? &p->num_buffers : &p->num_params;
    q->offset = *total;
    *total += mv_line_up(q->numel);
}

void params_add(mv_params *p, float **ptr, float **gptr, mv_init_kind init, float init_a, int ndim,
                const int *shape, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    add_tensor(p, ptr, gptr, false, init, init_a, ndim, shape, fmt, ap);
    va_end(ap);
}

void buffer_add(mv_params *p, float **ptr, mv_init_kind init, float init_a, int ndim, const int *shape,
                const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    add_tensor(p, ptr, NULL, true, init, init_a, ndim, shape, fmt, ap);
    va_end(ap);
}

int params_allocate(mv_params *p) {
    p->params = mv_huge_alloc(sizeof(float) * (p->num_params + 16));
    p->grads = mv_huge_alloc(sizeof(float) * (p->num_params + 16));
    p->buffers = mv_huge_alloc(sizeof(float) * (p->num_buffers + 16));
    if (!p->params || !p->grads || !p->buffers) {   // a configuration too large for this machine: its error
        free(p->params); free(p->grads); free(p->buffers);
        p->params = p->grads = p->buffers = NULL;
        return mv_fail("out of memory for the %zu parameters of this model and their gradients (%.1f GiB): "
                       "model.dims, depths, decoder_channels or ssm_ratio too large for this machine", p->num_params,
                       8.0 * (double)p->num_params / (1 << 30));
    }
    memset(p->params, 0, sizeof(float) * p->num_params);
    memset(p->grads, 0, sizeof(float) * p->num_params);
    memset(p->buffers, 0, sizeof(float) * p->num_buffers);
    for (int i = 0; i < p->count; i++) {
        mv_param *q = &p->items[i];
        *q->ptr = (q->is_buffer ? p->buffers : p->params) + q->offset;
        if (q->gptr) *q->gptr = q->is_buffer ? NULL : p->grads + q->offset;
    }
    return 0;
}

void params_free(mv_params *p) {
    free(p->items);
    free(p->params);
    free(p->grads);
    free(p->buffers);
    memset(p, 0, sizeof *p);
}

const mv_param *params_find(const mv_params *p, const char *name) {
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i].name, name)) return &p->items[i];
    return NULL;
}

// On all threads: maskvim-t's gradients are 232 MB, 20 ms for one thread's memset.
void params_zero_grads(mv_params *p) { fill(p->grads, 0.0f, p->num_params); }

// Standard normal from two uniforms (Box-Muller).
static float normal_from(mv_rng4 r) {
    float u1 = rng_u01(r.v[0]), u2 = rng_u01(r.v[1]);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

void params_init(mv_params *p, uint64_t seed) {
    for (int i = 0; i < p->count; i++) {
        mv_param *q = &p->items[i];
        float *x = *q->ptr, a = q->init_a;
        for (size_t j = 0; j < q->numel; j++) {
            mv_rng4 r = philox4x32(seed, (uint32_t)i, MV_RNG_INIT, (uint32_t)j, (uint32_t)(j >> 32));
            switch (q->init) {
            case INIT_ZERO: x[j] = 0.0f; break;
            case INIT_ONE: x[j] = 1.0f; break;
            case INIT_NORMAL: x[j] = a * normal_from(r); break;
            case INIT_TRUNC_NORMAL: {
                float v = a * normal_from(r);
                for (uint32_t t = 1; fabsf(v) > 2.0f; t++) {  // resample outside [-2, 2]
                    mv_rng4 r2 = philox4x32(seed, (uint32_t)i, MV_RNG_INIT | t, (uint32_t)j, (uint32_t)(j >> 32));
                    v = a * normal_from(r2);
                }
                x[j] = v;
                break;
            }
            case INIT_UNIFORM: x[j] = a * (2.0f * rng_u01(r.v[0]) - 1.0f); break;
            case INIT_KAIMING_FANOUT: x[j] = sqrtf(2.0f / a) * normal_from(r); break;
            case INIT_DT_BIAS: {
                float dt = expf(rng_u01(r.v[0]) * (logf(0.1f) - logf(1e-3f)) + logf(1e-3f));
                if (dt < 1e-4f) dt = 1e-4f;
                x[j] = dt + logf(-expm1f(-dt));   // inverse of softplus
                break;
            }
            case INIT_A_LOG: x[j] = logf((float)(j % (size_t)a) + 1.0f); break;
            }
        }
    }
}

const mv_param *params_first_non_finite(const mv_params *p, size_t *elem) {
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        const float *x = params_host(p, q);
        for (size_t j = 0; j < q->numel; j++)
            if (!isfinite(x[j])) {
                *elem = j;
                return q;
            }
    }
    return NULL;
}

int params_check_finite(const mv_params *p, const mv_param *q, const char *path) {
    const float *x = params_host(p, q);
    for (size_t i = 0; i < q->numel; i++)
        if (!isfinite(x[i]))
            return mv_fail("%s: '%s' holds a non-finite value (%g at element %zu of %zu): these weights are unusable "
                           "(exported from a run that diverged, or damaged)", path, q->name, (double)x[i], i, q->numel);
    return 0;
}
