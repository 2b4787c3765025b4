// The learning-rate schedule of the authors' mmengine config: LinearLR warm-up over
// iterations [0, warmup_iters) chained with PolyLR over [warmup_iters, max_iters), in the
// closed forms of their recurrences (docs/config.md, `schedule`). Iteration t (0-based) trains
// with the value for t; past max_iters the last value holds.
#pragma once
#include "core/config.h"

// The learning rate at iteration `iter` of a parameter group whose initial lr is base_lr
// (optim.lr * the rule's lr_mult):
//   t < W:   base * (s + (1 - s) * t / (W - 1))                 (W = warmup_iters, s = warmup_start;
//                                                               W = 1 gives base * s)
//   t >= W:  (b - eta_min) * (1 - (t - W) / (E - W - 1))^p + eta_min
//            (E = max_iters, p = power, b = the lr PolyLR starts from: base, or base * s when W = 1)
double schedule_lr(const mv_schedule_config *s, double base_lr, long iter);
// schedule_lr(s, 1.0, iter): the factor on the base lr. Exactly lr / base_lr when eta_min
// is 0 (the authors' setting); with eta_min > 0 use schedule_lr per group, because
// mmengine's eta_min is an absolute floor shared by all groups.
double schedule_lr_factor(const mv_schedule_config *s, long iter);
