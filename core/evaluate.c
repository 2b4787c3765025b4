// Evaluation on one split (see evaluate.h).
#include "core/evaluate.h"
#include "core/data_sources.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/progress.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    free(*p);
    *p = malloc(sizeof(float) * n);
    *cap = *p ? n : 0;
    return *p ? 0 : mv_fail("out of memory for %zu logits", n);
}

void eval_buffers_free(mv_eval_buffers *b) {
    free(b->input);
    free(b->label);
    free(b->window);
    free(b->window_logits);
    free(b->count);
    free(b->pad);
    free(b->pad_logits);
    memset(b, 0, sizeof *b);
}

// The class of one pixel's K logits as torch.argmax takes it: the first maximum on ties, and a NaN
// counts as larger than any number (the first NaN wins). A model whose weights went NaN in one
// class's channel is then scored as mmseg scores it (that class everywhere), not as if the
// channel were not there.
static inline int argmax_logits(const float *z, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best] || (isnan(z[k]) && !isnan(z[best]))) best = k;
    return best;
}

// argmax at the label's size of the logits at the input's size in buf->input.
static int predict_from_input(uint8_t *pred, mv_eval_buffers *buf, int K, int h, int w, int lh, int lw) {
    const float *full = buf->input;
    if (lh != h || lw != w) {
        MV_TRY(grow(&buf->label, &buf->cap_label, (size_t)lh * lw * K));
        bilinear_forward(buf->label, buf->input, 1, h, w, lh, lw, K);
        full = buf->label;
    }
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)lh * lw; i++) {
        pred[i] = (uint8_t)argmax_logits(full + (size_t)i * K, K);
    }
    return 0;
}

int eval_predict(uint8_t *pred, mv_eval_buffers *buf, const float *logits, int K, int h4, int w4, int h, int w,
                 int lh, int lw) {
    MV_TRY(grow(&buf->input, &buf->cap_input, (size_t)h * w * K));
    bilinear_forward(buf->input, logits, 1, h4, w4, h, w, K);
    return predict_from_input(pred, buf, K, h, w, lh, lw);
}

// The logits ([1, h/4, w/4, K], host memory) of one image [3, h, w] on an inference plan; NULL
// with a message.
static const float *forward_logits(mv_model *m, const float *image, int h, int w) {
    mv_run_ctx ctx = {.training = false, .world_size = 1};
    if (run_plan(m, 1, h, w, MV_PLAN_INFER) < 0 || run_forward(m, image, NULL, &ctx) < 0) return NULL;
    return run_logits(m);
}

// The logits of one image [3, h, w] resized to its size, [h, w, K] into `out`. A side under the
// model's minimum is padded with zeros at the bottom/right; the logits are resized to the padded
// size and then cropped, so that every kept pixel has the position it had in the padded input
// (resizing the padded logits straight to (h, w) would stretch the padding's logits over the
// image). Inputs of the minimum or more: one forward and one resize, as always.
static int forward_resized(float *out, mv_eval_buffers *buf, mv_model *m, const float *image, int h, int w) {
    int K = m->cfg.num_classes, ph = eval_padded_side(h), pw = eval_padded_side(w);
    const float *logits;
    if (ph == h && pw == w) {
        if (!(logits = forward_logits(m, image, h, w))) return -1;
        bilinear_forward(out, logits, 1, m->Hs[0], m->Ws[0], h, w, K);
        return 0;
    }
    MV_TRY(grow(&buf->pad, &buf->cap_pad, (size_t)3 * ph * pw));
    MV_TRY(grow(&buf->pad_logits, &buf->cap_pad_logits, (size_t)ph * pw * K));
    memset(buf->pad, 0, sizeof(float) * 3 * ph * pw);   // 0 after normalisation: the mean colour
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            memcpy(buf->pad + ((size_t)c * ph + y) * pw, image + ((size_t)c * h + y) * w, sizeof(float) * w);
    if (!(logits = forward_logits(m, buf->pad, ph, pw))) return -1;
    bilinear_forward(buf->pad_logits, logits, 1, m->Hs[0], m->Ws[0], ph, pw, K);
    for (int y = 0; y < h; y++)
        memcpy(out + (size_t)y * w * K, buf->pad_logits + (size_t)y * pw * K, sizeof(float) * w * K);
    return 0;
}

// Bit-identical to eval_predict on the forward's logits when no side is padded.
static int whole(uint8_t *pred, mv_eval_buffers *buf, mv_model *m, const float *image, int h, int w, int lh, int lw) {
    MV_TRY(grow(&buf->input, &buf->cap_input, (size_t)h * w * m->cfg.num_classes));
    MV_TRY(forward_resized(buf->input, buf, m, image, h, w));
    return predict_from_input(pred, buf, m->cfg.num_classes, h, w, lh, lw);
}

int eval_windows(int *lo, int *hi, int n, int crop, int stride) {
    int extra = n - crop + stride - 1, count = (extra > 0 ? extra : 0) / stride + 1;
    for (int i = 0; lo && i < count; i++) {
        int b = i * stride + crop < n ? i * stride + crop : n, a = b - crop > 0 ? b - crop : 0;
        lo[i] = a;
        hi[i] = b;
    }
    return count;
}

static int slide(uint8_t *pred, mv_eval_buffers *buf, mv_model *m, const mv_data_config *d, const float *image, int h,
                 int w, int lh, int lw) {
    int K = m->cfg.num_classes;
    int ch = d->test_crop[0] ? d->test_crop[0] : m->cfg.crop_h, cw = d->test_crop[1] ? d->test_crop[1] : m->cfg.crop_w;
    int sh = d->test_stride[0] ? d->test_stride[0] : 2 * ch / 3, sw = d->test_stride[1] ? d->test_stride[1] : 2 * cw / 3;
    size_t npx = (size_t)h * w;
    MV_TRY(grow(&buf->input, &buf->cap_input, npx * K));
    MV_TRY(grow(&buf->count, &buf->cap_count, npx));
    memset(buf->input, 0, sizeof(float) * npx * K);
    memset(buf->count, 0, sizeof(float) * npx);
    int rows = eval_windows(NULL, NULL, h, ch, sh), cols = eval_windows(NULL, NULL, w, cw, sw);
    int *ylo = mv_malloc(sizeof(int) * 2 * (size_t)(rows + cols)), *yhi = ylo + rows, *xlo = yhi + rows, *xhi = xlo + cols;
    eval_windows(ylo, yhi, h, ch, sh);
    eval_windows(xlo, xhi, w, cw, sw);
    int rc = 0;
    for (int r = 0; r < rows && rc == 0; r++)
        for (int c = 0; c < cols && rc == 0; c++) {
            int y1 = ylo[r], y2 = yhi[r], x1 = xlo[c], x2 = xhi[c], wh = y2 - y1, ww = x2 - x1;
            if ((rc = grow(&buf->window, &buf->cap_window, (size_t)3 * wh * ww)) < 0 ||
                (rc = grow(&buf->window_logits, &buf->cap_window_logits, (size_t)wh * ww * K)) < 0)
                break;
            for (int ch3 = 0; ch3 < 3; ch3++)
                for (int y = 0; y < wh; y++)
                    memcpy(buf->window + ((size_t)ch3 * wh + y) * ww, image + ((size_t)ch3 * h + y1 + y) * w + x1,
                           sizeof(float) * ww);
            // A window clipped by an image shorter than 32 is padded like a whole image.
            if ((rc = forward_resized(buf->window_logits, buf, m, buf->window, wh, ww)) < 0) break;
            #pragma omp parallel for schedule(static)
            for (int y = 0; y < wh; y++) {
                float *dst = buf->input + ((size_t)(y1 + y) * w + x1) * K;
                const float *src = buf->window_logits + (size_t)y * ww * K;
                for (size_t i = 0; i < (size_t)ww * K; i++) dst[i] += src[i];
                float *cnt = buf->count + (size_t)(y1 + y) * w + x1;
                for (int x = 0; x < ww; x++) cnt[x] += 1.0f;
            }
        }
    free(ylo);
    if (rc < 0) return -1;
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)npx; i++) {
        float *z = buf->input + (size_t)i * K, n = buf->count[i];   // every pixel is covered (n >= 1)
        for (int k = 0; k < K; k++) z[k] /= n;
    }
    return predict_from_input(pred, buf, K, h, w, lh, lw);
}

int eval_infer(uint8_t *pred, mv_eval_buffers *buf, mv_model *m, const mv_data_config *d, const float *image, int h,
               int w, int lh, int lw) {
    return d->test_mode == MV_TEST_SLIDE ? slide(pred, buf, m, d, image, h, w, lh, lw)
                                         : whole(pred, buf, m, image, h, w, lh, lw);
}

int evaluate_split(mv_seg_metrics *out, mv_model *m, const mv_config *cfg, const char *path, const char *name,
                   mv_comm *comm, const mv_eval_opts *opts) {
    mv_loader_source src = {path, 1};
    mv_loader_config lc;
    source_loader_config(&lc, cfg, MV_LOADER_TEST, comm, &src, 1);
    if (opts) { lc.rgb_hook = opts->rgb_hook; lc.hook_ctx = opts->hook_ctx; }
    mv_confusion conf;
    if (metrics_init(&conf, cfg->model.num_classes) < 0) return -1;
    // A split that does not open on this rank (its copy of the data damaged or gone) still takes
    // part in the ranks' sum below, as an error: returning here would leave the other ranks
    // waiting in it, or meeting this one in its caller's next collective.
    mv_loader *L = NULL;
    int rc = loader_open(&L, &lc, NULL) < 0 ? mv_fail_context("evaluating %s", name) : 0;
    int64_t count = 0;
    uint64_t fp = 0;
    if (L) loader_source_id(L, 0, &count, &fp);
    char what[1400];
    snprintf(what, sizeof what, "evaluating %s (%s)", name, path);
    // The agreement's failure is every rank's, with the same message; a rank whose own open
    // failed keeps its reason.
    char own[MV_ERRMSG_MAX] = "";
    if (rc < 0) snprintf(own, sizeof own, "%s", mv_last_error());
    if (source_same_split_everywhere(comm, what, L != NULL, count, fp) < 0 && rc == 0) rc = -1;
    if (own[0]) mv_fail("%s", own);
    mv_eval_buffers bufs = {0};
    uint8_t *pred = NULL;
    size_t cap = 0;
    long seen = 0, total = L ? (long)loader_epoch_size(L) : 0;
    // On a terminal a line that updates; in a log (a full-resolution split can take hours on the
    // CPU) a line a minute, so that a long evaluation shows its progress and end, and nothing for
    // a short one (a training run evaluates every domain many times; its results say enough).
    mv_progress prog;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "[eval %s]", name);
    progress_begin(&prog, !(opts && opts->quiet) && comm->rank == 0 ? stderr : NULL, prefix, "images", 0, total);
    prog.log_every = 60;
    prog.log_quiet_short = true;
    const mv_batch *b;
    int got = 0;
    while (L && rc == 0 && (got = loader_next(L, &b)) == 1) {
        if (b->b == 0) continue;   // this rank has no image in the last global step
        size_t npx = (size_t)b->lh * b->lw;
        if (npx > cap) {
            free(pred);
            cap = npx;
            pred = mv_malloc(cap);
        }
        if ((rc = eval_infer(pred, &bufs, m, &cfg->data, b->images, b->h, b->w, b->lh, b->lw)) < 0) {
            mv_fail_context("%s: %s", name, b->names[0]);
            break;
        }
        metrics_add(&conf, pred, b->labels, npx);
        seen += comm->world;   // every rank takes one image per global step
        progress_update(&prog, seen < total ? seen : total);
    }
    progress_end(&prog);
    if (got < 0) rc = mv_fail_context("evaluating %s", name);
    // Ranks sum their confusion matrices (all ranks take part even after an error, so nobody
    // waits; the error is then reported by every rank).
    size_t nraw = metrics_raw_size(&conf);
    double *raw = mv_malloc(sizeof(double) * (nraw + 1));
    metrics_to_doubles(raw, &conf);
    raw[nraw] = rc < 0 ? 1 : 0;
    if (comm_allreduce_sum_doubles(comm, raw, (int)(nraw + 1)) < 0) rc = -1;
    else if (raw[nraw] > 0 && rc == 0) rc = mv_fail("evaluating %s: another rank failed", name);
    if (rc == 0) {
        metrics_from_doubles(&conf, raw);
        metrics_compute(out, &conf);
        // Training and `data inspect` refuse such labels; an evaluation counts them as mmseg
        // does, but must not do so silently.
        if (out->unknown_label_pixels && comm->rank == 0)
            fprintf(stderr, "maskvim: warning: evaluating %s: %llu labelled pixels are neither a class 0..%d nor 255; "
                            "they count as mmseg counts them (in the predicted class's union, in no class's ground "
                            "truth): check the split with `maskvim data inspect`\n",
                    name, (unsigned long long)out->unknown_label_pixels, out->num_classes - 1);
    }
    free(raw); free(pred);
    eval_buffers_free(&bufs);
    metrics_free(&conf);
    loader_close(L);
    return rc;
}
