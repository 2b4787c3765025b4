// AdamW (adamw.h): the update loop and the parameter-name rules.
#include "core/adamw.h"
#include <math.h>
#include <omp.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
// The update runs with denormals kept (FTZ and DAZ off on the updating thread, restored after):
// cpu_flush_denormals() makes the compute threads flush them, and then (1 - beta2) g^2 of a
// gradient under ~3e-18 was 0 and the step m / (sqrt(v) + eps) with a tiny eps (1e-30) came out
// 1e10 times torch's; a denormal eps was read as 0 (0 / 0 for a zero gradient). torch keeps
// denormals, and so does the GPU (no -ftz).
#define CSR_KEEP_DENORMALS unsigned mv_csr_saved = _mm_getcsr(); _mm_setcsr(mv_csr_saved & ~0x8040u)
#define CSR_RESTORE _mm_setcsr(mv_csr_saved)
#else
#define CSR_KEEP_DENORMALS do { } while (0)
#define CSR_RESTORE do { } while (0)
#endif

// Below this many elements a tensor is updated by the calling thread alone: starting the
// OpenMP team costs more than the update of a bias or a LayerNorm.
#define ADAMW_PARALLEL_MIN 32768

typedef struct {
    float beta1, beta2, a1, a2;     // a = 1 - beta
    float decay;                    // 1 - lr * weight_decay
    float step_size;                // lr / (1 - beta1^step)
    float bc2_sqrt;                 // sqrt(1 - beta2^step)
    float eps;
} adamw_scalars;

#if defined(__AVX__)
#include <immintrin.h>
// GCC does not vectorise a plain sqrtf loop unless errno is switched off for the whole
// build (-fno-math-errno), and scalar sqrt + divide is about 6x slower here, so the update
// is written with 8-wide AVX operations; the tail goes through the same code on a padded
// copy, so every element is computed by the same instructions wherever it sits. The order of the
// operations is torch's (addcmul: (1 - beta2) * g * g; addcdiv: step_size * m / denom).
static void adamw8(float *param, const float *grad, float *m, float *v, const adamw_scalars *s) {
    __m256 g = _mm256_loadu_ps(grad);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m), _mm256_set1_ps(s->beta1)),
                              _mm256_mul_ps(_mm256_set1_ps(s->a1), g));
    // (1 - beta2) * g * g in torch's order (addcmul: value * t1 * t2): g * g first overflowed
    // from |g| = 1.8e19, where torch's v stays finite up to |g| = 5.8e20.
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v), _mm256_set1_ps(s->beta2)),
                              _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(s->a2), g), g));
    __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), _mm256_set1_ps(s->bc2_sqrt)),
                                 _mm256_set1_ps(s->eps));
    __m256 p = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(param), _mm256_set1_ps(s->decay)),
                             _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(s->step_size), mi), denom));
    _mm256_storeu_ps(m, mi);
    _mm256_storeu_ps(v, vi);
    _mm256_storeu_ps(param, p);
}

static void adamw_range(float *param, const float *grad, float *m, float *v, size_t lo, size_t hi,
                        const adamw_scalars *s) {
    size_t i = lo;
    for (; i + 8 <= hi; i += 8) adamw8(param + i, grad + i, m + i, v + i, s);
    if (i < hi) {
        float tp[8] = {0}, tg[8] = {0}, tm[8] = {0}, tv[8] = {0};
        size_t r = (hi - i) * sizeof(float);
        memcpy(tp, param + i, r); memcpy(tg, grad + i, r); memcpy(tm, m + i, r); memcpy(tv, v + i, r);
        adamw8(tp, tg, tm, tv, s);
        memcpy(param + i, tp, r); memcpy(m + i, tm, r); memcpy(v + i, tv, r);
    }
}
#else
// Elements [lo, hi), the operations in torch's order.
static void adamw_range(float *restrict param, const float *restrict grad, float *restrict m,
                        float *restrict v, size_t lo, size_t hi, const adamw_scalars *sc) {
    const adamw_scalars s = *sc;
    for (size_t i = lo; i < hi; i++) {
        float g = grad[i];
        float mi = m[i] * s.beta1 + s.a1 * g;
        float vi = v[i] * s.beta2 + s.a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / s.bc2_sqrt + s.eps;
        param[i] = param[i] * s.decay - s.step_size * mi / denom;
    }
}
#endif

void adamw_update(float *param, const float *grad, float *m, float *v, size_t n,
                  double lr, double beta1, double beta2, double eps, double weight_decay, int step) {
    CSR_KEEP_DENORMALS;   // from here: a denormal eps must not flush to 0 as it is rounded to float
    // PyTorch forms these scalars in double (Python floats) and applies them to float
    // tensors as float; doing the same keeps us within an ulp or two of torch.optim.AdamW.
    adamw_scalars s = {
        .beta1 = (float)beta1,
        .beta2 = (float)beta2,
        .a1 = (float)(1.0 - beta1),
        .a2 = (float)(1.0 - beta2),
        .decay = (float)(1.0 - lr * weight_decay),
        .step_size = (float)(lr / (1.0 - pow(beta1, step))),
        .bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step)),
        .eps = (float)eps,
    };
    if (n < ADAMW_PARALLEL_MIN) {
        adamw_range(param, grad, m, v, 0, n, &s);
        CSR_RESTORE;
        return;
    }
#pragma omp parallel
    {
        // Contiguous slices, one per thread: each stays a plain vectorised loop.
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        CSR_KEEP_DENORMALS;
        adamw_range(param, grad, m, v, n / nt * t + (t < n % nt ? t : n % nt),
                    n / nt * (t + 1) + (t + 1 < n % nt ? t + 1 : n % nt), &s);
        CSR_RESTORE;
    }
    CSR_RESTORE;
}

void optim_rule_for(const mv_optim_config *cfg, const char *param_name, float *lr_mult, float *decay_mult) {
    const mv_optim_rule *best = NULL;
    size_t best_len = 0;
    for (int i = 0; i < cfg->num_rules; i++) {
        const mv_optim_rule *r = &cfg->rules[i];
        size_t len = strlen(r->match);
        // Longer wins; at equal length the alphabetically first, as mmengine's sort of its
        // custom_keys does (not the first listed: they differ when a later rule sorts first).
        if (strstr(param_name, r->match) && (len > best_len || (best && len == best_len && strcmp(r->match, best->match) < 0))) {
            best = r;
            best_len = len;
        }
    }
    *lr_mult = best ? best->lr_mult : 1.0f;
    *decay_mult = best ? best->decay_mult : 1.0f;
}
