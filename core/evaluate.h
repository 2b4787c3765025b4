// Evaluation on one split: whole-image inference in eval mode (running BatchNorm statistics,
// thresholded masks), logits resized to the original label size, a confusion matrix summed
// over ranks, and the metrics of SPEC.md section 6 (mIoU over classes with a non-empty union).
#pragma once
#include "core/config.h"
#include "core/metrics.h"
#include "core/model.h"
#include "data/loader.h"
#include "dist/comm.h"

typedef struct {
    // Optional transform of each decoded image (e.g. a Cityscapes-C corruption); see loader.h.
    int (*rgb_hook)(mv_image *rgb, int source, int64_t sample, void *ctx);
    void *hook_ctx;
    bool quiet;   // no progress line
} mv_eval_opts;

// Evaluates `m` on the split folder `path`; every rank takes its share of the images and the
// results are summed. Re-plans the model's activations when image sizes change (evaluation is
// not a training step). Returns 0, or -1 with a message naming the split and sample.
int evaluate_split(mv_seg_metrics *out, mv_model *m, const mv_config *cfg, const char *path, const char *name,
                   mv_comm *comm, const mv_eval_opts *opts);
