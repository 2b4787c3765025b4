// AdamW over the registry (see optimizer.h).
#include "core/optimizer.h"
#include "core/error.h"
#include "core/huge_alloc.h"
#include "kernels/cpu/profile.h"
#include <stdlib.h>
#include <string.h>

int optimizer_init(mv_optimizer *o, const mv_params *p, const mv_optim_config *cfg) {
    memset(o, 0, sizeof *o);
    size_t bytes = sizeof(float) * (p->num_params + 16);
    o->m = mv_huge_alloc(bytes);
    o->v = mv_huge_alloc(bytes);
    if (!o->m || !o->v) {
        free(o->m); free(o->v);
        o->m = o->v = NULL;
        return mv_fail("out of memory for the AdamW moments of %zu parameters (%.1f GiB): this model is too large to "
                       "train on this machine", p->num_params, 2.0 * (double)bytes / (1 << 30));
    }
    memset(o->m, 0, bytes);
    memset(o->v, 0, bytes);
    o->lr_mult = mv_calloc(p->count, sizeof(float));
    o->decay_mult = mv_calloc(p->count, sizeof(float));
    for (int i = 0; i < p->count; i++) optim_rule_for(cfg, p->items[i].name, &o->lr_mult[i], &o->decay_mult[i]);
    return 0;
}

void optimizer_free(mv_optimizer *o) {
    free(o->m); free(o->v); free(o->lr_mult); free(o->decay_mult);
    memset(o, 0, sizeof *o);
}

void optimizer_step(mv_optimizer *o, mv_params *p, const mv_optim_config *cfg,
                    const mv_schedule_config *sched, long iter) {
    PROF_START();
    o->step++;
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        if (q->is_buffer) continue;
        size_t off = q->offset;
        adamw_update(p->params + off, p->grads + off, o->m + off, o->v + off, q->numel,
                     schedule_lr(sched, cfg->lr * o->lr_mult[i], iter), cfg->betas[0], cfg->betas[1], cfg->eps,
                     cfg->weight_decay * o->decay_mult[i], (int)o->step);
    }
    PROF_STOP(PROF_OPTIM, 1, 12.0 * p->num_params);
}
