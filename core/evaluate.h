// Evaluation on one split: whole-image or sliding-window inference in eval mode (running
// BatchNorm statistics, thresholded masks), logits resized to the input's and then the label's
// size as mmseg does (eval_infer; eval_predict is that rule on given logits), a confusion matrix
// summed over ranks, and the metrics of docs/math.md section 6 (mIoU over classes with a non-empty
// union). An input under the model's 32x32 minimum is padded for its forward and the padding
// cropped off the logits.
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

// The smallest side the model takes (model_plan refuses less); inference pads a shorter side
// of its input up to it.
#define MV_EVAL_MIN_SIDE 32
// A side of n pixels as the model sees it: n, or MV_EVAL_MIN_SIDE when n is shorter.
static inline int eval_padded_side(int n) { return n < MV_EVAL_MIN_SIDE ? MV_EVAL_MIN_SIDE : n; }

// Buffers of logits at the network input's and at the label's size, grown as needed.
typedef struct {
    float *input, *label, *window, *window_logits, *count;   // window*, count: slide inference
    float *pad, *pad_logits;                                 // an input padded to 32 on a side
    size_t cap_input, cap_label, cap_window, cap_window_logits, cap_count, cap_pad, cap_pad_logits;
} mv_eval_buffers;
void eval_buffers_free(mv_eval_buffers *b);

// The per-pixel class at label size (lh, lw) from the decode head's logits ([1, h4, w4, K],
// host memory), as mmseg predicts: the logits are resized bilinearly to the network input's
// size (h, w) (decode_head.predict), then to the label's size (postprocess_result; skipped when
// the sizes are equal, where it is the identity), then argmax as torch.argmax (first maximum on
// ties; a NaN beats any number, the first NaN winning).
// Resizing once from (h4, w4) to (lh, lw) differs wherever the test resize changed the image
// (BDD, GTAV, SYNTHIA, Mapillary). 0, or -1 when out of memory.
int eval_predict(uint8_t *pred, mv_eval_buffers *buf, const float *logits, int K, int h4, int w4, int h, int w,
                 int lh, int lw);

// The sliding windows along one side of n pixels (mmseg's slide_inference): count =
// max(n - crop + stride - 1, 0) / stride + 1; window i spans [lo[i], hi[i]) with hi = min(i *
// stride + crop, n) and lo = max(hi - crop, 0). Fills lo/hi when not NULL; returns the count.
int eval_windows(int *lo, int *hi, int n, int crop, int stride);

// The per-pixel class at label size (lh, lw) of one normalised image ([3, h, w], host memory),
// run as data.test_mode says: the whole image at once (eval_predict's resizes), or mmseg's sliding
// windows (data.test_crop, data.test_stride; the last row and column of windows end at the
// border, an image smaller than a window is one window), whose logits, each resized to its
// window, are summed and divided by the number of windows covering each pixel, then resized to
// the label's size. An input (whole image or window) shorter than MV_EVAL_MIN_SIDE on a side is
// padded to it on that side (bottom/right, zeros of the normalised image: the mean colour), as
// mmseg's SegDataPreProcessor pads; its logits are resized to the padded size, the padding is
// cropped off, and the rest goes on as for any input (mmseg's postprocess_result: resize to the
// padded shape, crop, resize to the original one). Inputs of 32x32 or more are run unpadded.
// After the call buf->input holds the logits at (h, w), [h, w, K]. Plans `m` for inference
// (at the padded size). 0, or -1 with a message.
int eval_infer(uint8_t *pred, mv_eval_buffers *buf, mv_model *m, const mv_data_config *d, const float *image, int h,
               int w, int lh, int lw);

// Evaluates `m` on the split folder `path`; every rank takes its share of the images and the
// results are summed (after source_same_split_everywhere: every rank must hold the same split).
// Re-plans the model's activations when image sizes change (evaluation is
// not a training step). Returns 0, or -1 with a message naming the split and sample.
int evaluate_split(mv_seg_metrics *out, mv_model *m, const mv_config *cfg, const char *path, const char *name,
                   mv_comm *comm, const mv_eval_opts *opts);
