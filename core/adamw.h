// AdamW with PyTorch's semantics (torch.optim.AdamW) over raw float arrays, and the
// parameter-name rules that scale each tensor's learning rate and weight decay.
#pragma once
#include <stddef.h>
#include "core/config.h"

// One AdamW step on one tensor, in place. `step` counts from 1 (the first update is step 1).
// As torch.optim.AdamW: param *= 1 - lr*weight_decay (decoupled decay), then
//   m = beta1*m + (1-beta1)*g,  v = beta2*v + (1-beta2)*g*g,
//   param -= lr/(1-beta1^step) * m / (sqrt(v)/sqrt(1-beta2^step) + eps).
// param, m, v: (n) updated; grad: (n). OpenMP-parallel for large n.
// The scalars are double, as PyTorch's Python floats: with a float beta2, 1 - beta2 would
// already be 1.3e-5 off (0.999f), and v with it.
void adamw_update(float *param, const float *grad, float *m, float *v, size_t n,
                  double lr, double beta1, double beta2, double eps, double weight_decay, int step);

// The multipliers of optim.rules for a parameter called `param_name` (its state_dict key).
// Precedence, as mmengine's custom_keys (`sorted(sorted(keys), key=len, reverse=True)`, first
// key contained in the name): one rule applies, the one whose `match` is the longest substring
// of the name, and among equally long matches the alphabetically first (byte order; the first
// listed among identical ones); no match gives 1, 1. The tensor then trains with lr = schedule_lr(optim.lr * lr_mult) and
// weight_decay = optim.weight_decay * decay_mult.
void optim_rule_for(const mv_optim_config *cfg, const char *param_name, float *lr_mult, float *decay_mult);
