// Evaluation on one split (see evaluate.h).
#include "core/evaluate.h"
#include "core/engine.h"
#include "core/error.h"
#include "kernels/cpu/profile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    memset(b, 0, sizeof *b);
}

int eval_predict(uint8_t *pred, mv_eval_buffers *buf, const float *logits, int K, int h4, int w4, int h, int w,
                 int lh, int lw) {
    MV_TRY(grow(&buf->input, &buf->cap_input, (size_t)h * w * K));
    bilinear_forward(buf->input, logits, 1, h4, w4, h, w, K);
    const float *full = buf->input;
    if (lh != h || lw != w) {
        MV_TRY(grow(&buf->label, &buf->cap_label, (size_t)lh * lw * K));
        bilinear_forward(buf->label, buf->input, 1, h, w, lh, lw, K);
        full = buf->label;
    }
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)lh * lw; i++) {
        const float *z = full + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++) if (z[k] > z[best]) best = k;
        pred[i] = (uint8_t)best;
    }
    return 0;
}

int evaluate_split(mv_seg_metrics *out, mv_model *m, const mv_config *cfg, const char *path, const char *name,
                   mv_comm *comm, const mv_eval_opts *opts) {
    mv_loader_source src = {path, 1};
    mv_loader_config lc = {0};
    lc.mode = MV_LOADER_TEST;
    lc.sources = &src;
    lc.n_sources = 1;
    lc.batch = 1;
    lc.rank = comm->rank;
    lc.world = comm->world;
    lc.seed = (uint64_t)cfg->run.seed;
    lc.workers = cfg->data.workers > 0 ? cfg->data.workers : 1;
    augment_default_config(&lc.aug, cfg->model.crop_h, cfg->model.crop_w);
    lc.aug.scale_long = cfg->data.scale[0];
    lc.aug.scale_short = cfg->data.scale[1];
    if (opts) { lc.rgb_hook = opts->rgb_hook; lc.hook_ctx = opts->hook_ctx; }
    mv_loader *L = NULL;
    if (loader_open(&L, &lc, NULL) < 0) return mv_fail_context("evaluating %s", name);

    mv_confusion conf;
    if (metrics_init(&conf, cfg->model.num_classes) < 0) { loader_close(L); return -1; }
    mv_run_ctx ctx = {.training = false, .world_size = comm->world};
    mv_eval_buffers bufs = {0};
    uint8_t *pred = NULL;
    size_t cap = 0;
    int rc = 0;
    long seen = 0, total = (long)loader_epoch_size(L);
    bool tty = !(opts && opts->quiet) && comm->rank == 0 && isatty(fileno(stderr));
    double t0 = prof_now();
    const mv_batch *b;
    int got;
    while ((got = loader_next(L, &b)) == 1) {
        if (b->b == 0) continue;   // this rank has no image in the last global step
        size_t npx = (size_t)b->lh * b->lw;
        if (npx > cap) {
            free(pred);
            cap = npx;
            pred = mv_malloc(cap);
        }
        if ((rc = run_plan(m, 1, b->h, b->w, MV_PLAN_INFER)) < 0) { mv_fail_context("%s: %s", name, b->names[0]); break; }
        if ((rc = run_forward(m, b->images, NULL, &ctx)) < 0) break;
        const float *logits = run_logits(m);
        if (!logits) { rc = -1; break; }
        if ((rc = eval_predict(pred, &bufs, logits, cfg->model.num_classes, m->Hs[0], m->Ws[0], b->h, b->w, b->lh,
                               b->lw)) < 0)
            break;
        metrics_add(&conf, pred, b->labels, npx);
        seen += comm->world;
        if (tty) fprintf(stderr, "\r[eval %s] %ld/%ld images  %.1f images/s   ", name, seen < total ? seen : total, total,
                         seen / (prof_now() - t0 + 1e-9));
    }
    if (tty) fputc('\n', stderr);
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
    }
    free(raw); free(pred);
    eval_buffers_free(&bufs);
    metrics_free(&conf);
    loader_close(L);
    return rc;
}
