// The optimizer over the whole parameter registry: AdamW moments in two arenas shaped like the
// parameters, with each tensor's lr and weight-decay multipliers resolved once from the rules.
#pragma once
#include "core/adamw.h"
#include "core/params.h"
#include "core/schedule.h"

typedef struct {
    float *m, *v;            // first and second moments, laid out like params
    float *lr_mult, *decay_mult;   // per registered tensor
    long step;               // updates done so far
} mv_optimizer;

// Zeroed moments and each tensor's multipliers; -1 with a message when the moments do not fit in
// memory.
int optimizer_init(mv_optimizer *o, const mv_params *p, const mv_optim_config *cfg);
void optimizer_free(mv_optimizer *o);
// One AdamW update of every parameter at schedule iteration `iter`: each tensor's learning
// rate is the schedule applied to optim.lr * its lr_mult (exact also when eta_min > 0).
void optimizer_step(mv_optimizer *o, mv_params *p, const mv_optim_config *cfg,
                    const mv_schedule_config *sched, long iter);
