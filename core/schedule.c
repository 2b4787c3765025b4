// Warm-up + poly learning-rate schedule (schedule.h), closed forms of mmengine's chained
// LinearLR and PolyLR.
#include "core/schedule.h"
#include <math.h>

double schedule_lr(const mv_schedule_config *s, double base_lr, long iter) {
    const long w = s->warmup_iters, e = s->max_iters;
    if (iter < 0) iter = 0;
    // Both schedulers stop acting at their `end`: past the last iteration the lr holds.
    if (e > w && iter >= e) iter = e - 1;
    if (iter < w) {
        // LinearLR(start_factor s, end_factor 1, begin 0, end w): T = w - 1 steps of growth.
        if (w == 1) return base_lr * s->warmup_start;
        return base_lr * (s->warmup_start + (1.0 - s->warmup_start) * (double)iter / (double)(w - 1));
    }
    // PolyLR(begin w, end e) starts from whatever lr the warm-up left: base after a warm-up
    // of two or more iterations (LinearLR reaches end_factor 1 at t = w - 1), base * s after
    // one (LinearLR only ever applies its start factor), base without warm-up.
    const double start = w == 1 ? base_lr * s->warmup_start : base_lr;
    const long total = e - w - 1, k = iter - w;
    if (k <= 0 || total <= 0) return start;
    return (start - s->eta_min) * pow(1.0 - (double)k / (double)total, s->power) + s->eta_min;
}

double schedule_lr_factor(const mv_schedule_config *s, long iter) { return schedule_lr(s, 1.0, iter); }
