// The training loop (see train.h): train_run sets the run up (train_start.c), then each step
// reads a batch, runs forward and backward with the gradient all-reduce, agrees with the other
// ranks (train_ranks.c), updates the parameters, logs (train_log.c), evaluates and checkpoints.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/clock.h"
#include "core/data_sources.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/json_write.h"
#include "core/metrics.h"
#include "core/stop_signal.h"
#include "core/config_ranks.h"
#include "core/train_internal.h"

// Opens the training stream at `cursor` (NULL: the start).
static int open_loader(trainer *t, const mv_loader_cursor *cursor) {
    const mv_config *cfg = t->cfg;
    mv_loader_source src[MV_MAX_SOURCES];
    for (int i = 0; i < cfg->data.num_train; i++) {
        MV_TRY(source_resolve(t->train_paths[i], sizeof t->train_paths[i], &cfg->data.train[i], "train", cfg, t->comm));
        src[i].path = t->train_paths[i];
        src[i].repeat = cfg->data.train[i].repeat;
    }
    mv_loader_config lc;
    source_loader_config(&lc, cfg, MV_LOADER_TRAIN, t->comm, src, cfg->data.num_train);
    return loader_open(&t->loader, &lc, cursor);
}

// A checkpoint is written from the host arenas: under the GPU engine, parameters, buffers and
// moments come back from the device first.
static int state_to_host(trainer *t) {
    return run_state_to_host(&t->model, &t->opt, false);
}

// Rank 0 alone did some work (a log record, best.h5, a weight check) whose outcome, `status`,
// every rank must follow: it is broadcast, and on failure every rank returns -1 together (a rank
// returning alone would meet the others in mismatched collectives). Rank 0 keeps its own
// message; the others' say `why_others`.
static int follow_rank0(trainer *t, int32_t status, const char *why_others) {
    if (t->comm->world > 1 && comm_bcast_bytes(t->comm, &status, sizeof status) < 0) return -1;
    if (status < 0) return t->comm->rank == 0 ? -1 : mv_fail("%s", why_others);
    return 0;
}

// Rank 0: one domain's evaluation as its log line and its metrics.jsonl record (`sel`: it is
// the selection domain; `seconds`: how long it took). 0, or -1 when the record cannot be written.
static int log_eval_result(trainer *t, long iter, const mv_source *v, const mv_seg_metrics *res, bool sel,
                           double seconds) {
    char a[32], b[32], c[32];   // '-' where a value is undefined (no labelled pixel of the classes)
    printf("[eval iter %ld] %-10s mIoU %s  mAcc %s  aAcc %s  (%d classes, %.1fs)\n", iter, v->name,
           metrics_cell(a, sizeof a, res->miou, 5), metrics_cell(b, sizeof b, res->macc, 5),
           metrics_cell(c, sizeof c, res->aacc, 5), res->valid_classes, seconds);
    fprintf(t->jsonl, "{\"type\": \"eval\", \"iter\": %ld, \"domain\": ", iter);
    json_write_string(t->jsonl, v->name);
    fprintf(t->jsonl, ", \"metrics\": ");
    metrics_write_json(t->jsonl, res, NULL, v->name);   // Cityscapes names for 19 classes
    fprintf(t->jsonl, "}\n");
    int status = train_log_flush(t);
    // As eval warns: mostly labels converted wrongly. On the selection domain it also means that
    // no evaluation can make best.h5.
    if (res->pixels == 0)
        fprintf(stderr, "maskvim train: warning: %s: no labelled pixel (every label is ignore, 255): no metric "
                        "to report%s\n", v->name, sel ? "; best.h5 cannot be chosen on it "
                        "(run.select_domain)" : "");
    return status;
}

// Rank 0, on the selection domain `v`: when `res` beats the best value so far by
// run.select_metric (a NaN never does), the best bookkeeping moves to this step and best.h5 is
// written. 0, or -1 when it cannot be written.
static int maybe_save_best(trainer *t, long iter, const mv_source *v, const mv_seg_metrics *res) {
    const mv_config *cfg = t->cfg;
    double value = metrics_value(res, cfg->run.select_metric);
    if (isnan(value) || (!isnan(t->st.best_value) && value <= t->st.best_value)) return 0;
    t->st.best_value = value;
    t->st.best_step = t->st.step;
    snprintf(t->st.best_name, sizeof t->st.best_name, "%s/%s", v->name, metrics_name(cfg->run.select_metric));
    char path[1024];
    snprintf(path, sizeof path, "%s/best.h5", cfg->run.work_dir);
    // best.h5 is a full checkpoint (`--resume best.h5` works): its loader cursor must be this
    // step's, not the one of the last periodic checkpoint.
    loader_cursor(t->loader, &t->st.cursor);
    MV_TRY(state_to_host(t));
    MV_TRY(checkpoint_save(path, &t->model.params, &t->opt, &t->st, cfg));
    printf("[eval iter %ld] new best %s = %.2f -> %s\n", iter, t->st.best_name, value, path);
    return 0;
}

// Rank 0, after the last evaluation: the domain-generalisation summary, the selection (source)
// domain's mIoU and the others' (miou[i] of data.val[i]) with their mean.
static void print_dg_summary(const trainer *t, long iter, const mv_source *sel, const double *miou) {
    const mv_config *cfg = t->cfg;
    double sum = 0;
    int n = 0;
    // '-' for a domain without a labelled pixel, and then for the mean (as eval's means).
    char cell[32];
    printf("\nmIoU after %ld iterations: source %s %s", iter, sel->name,
           metrics_cell(cell, sizeof cell, miou[sel - cfg->data.val], 0));
    for (int i = 0; i < cfg->data.num_val; i++)
        if (&cfg->data.val[i] != sel) {
            printf("%s %s %s", n ? "" : " | targets", cfg->data.val[i].name, metrics_cell(cell, sizeof cell, miou[i], 0));
            sum += miou[i];
            n++;
        }
    if (n) printf(" | target mean %s", metrics_cell(cell, sizeof cell, sum / n, 0));
    printf("\n(per-class IoU of every domain: %s/metrics.jsonl)\n", cfg->run.work_dir);
}

// Evaluates on every data.val source; keeps best.h5 by run.select_metric on run.select_domain.
static int evaluate_all(trainer *t, long iter, bool final) {
    const mv_config *cfg = t->cfg;
    const mv_source *sel = config_find_val(cfg, cfg->run.select_domain);
    double miou[MV_MAX_SOURCES];
    for (int i = 0; i < cfg->data.num_val; i++) {
        const mv_source *v = &cfg->data.val[i];
        mv_seg_metrics res;
        mv_eval_opts eo = {0};
        double t0 = mv_now_s();
        if (i == cfg->data.num_val - 1) fault_drill_at(&t->fault, MV_FAULT_STOP_IN_EVAL, t->comm->rank, t->comm->world);
        MV_TRY(evaluate_split(&res, &t->model, cfg, t->val_paths[i], v->name, t->comm, &eo));
        // What rank 0 alone does (the log, best.h5) may fail too: every rank follows its outcome,
        // so that all of them leave the evaluation together and the caller can still write the
        // step's checkpoint.
        int32_t status = 0;
        if (t->comm->rank == 0) {
            miou[i] = res.miou;
            status = log_eval_result(t, iter, v, &res, sel == v, mv_now_s() - t0);
            if (status == 0 && sel == v) status = maybe_save_best(t, iter, v, &res);
        }
        MV_TRY(follow_rank0(t, status, "rank 0 could not record the evaluation (its message gives the reason)"));
    }
    if (final && t->comm->rank == 0 && sel) print_dg_summary(t, iter, sel, miou);
    // Every rank follows rank 0's best bookkeeping (it is saved in every checkpoint).
    return comm_bcast_bytes(t->comm, &t->st.best_value, sizeof t->st.best_value);
}

// The ranks other than rank 0, as a message names them.
static const char *others(const trainer *t) {
    return t->comm->world > 2 ? "other ranks" : "other rank";
}

// Rank 0 wrote `saved`, but the all-reduce that shares the outcome failed (mv_last_error: a
// rank stopped or lost): what is true is that the checkpoint is whole, `latest` names it and a
// resume continues from it. `what`, when not NULL, is the failure that came before the save,
// whose message `why` was; the all-reduce's own is left out when it is the same text.
static int saved_unconfirmed(const trainer *t, const char *saved, const char *what, const char *why) {
    char err[MV_ERRMSG_MAX];
    snprintf(err, sizeof err, "%s", mv_last_error());
    const char *pending = t->st.eval_pending ? " (the resume runs the evaluation first)" : "";
    if (!what)
        return mv_fail("rank 0 saved the training state of iteration %lld in %s, but the %s could not confirm it: %s; "
                       "`--resume auto` continues from it%s", (long long)t->st.iter, saved, others(t), err, pending);
    bool same = !strcmp(err, why);
    return mv_fail("%s: %s; rank 0 saved the training state of iteration %lld in %s, but the %s could not confirm it "
                   "(%s): once the cause is fixed, `--resume auto` continues from it%s", what, why,
                   (long long)t->st.iter, saved, others(t), same ? "the same failure" : err, pending);
}

// Writes the checkpoint of t->st (its cursor set by the caller) on rank 0, which every rank
// learns the outcome of. `saved` receives its path on rank 0 once it is written (checkpoint_save_iter
// fills it only then). When the outcome cannot be shared (a rank lost after the write) the
// checkpoint is still whole and `latest` names it: the failure says so (saved_unconfirmed, with
// the earlier failure `what`: `why` of the caller, if any) and `saved` keeps the path, so that
// the caller adds nothing to that message.
static int save_step(trainer *t, char *saved, size_t n, const char *what, const char *why) {
    int rc = 0;
    saved[0] = '\0';
    if (t->comm->rank == 0) {
        rc = state_to_host(t);
        if (rc == 0)
            rc = checkpoint_save_iter(t->cfg->run.work_dir, t->cfg->run.keep_ckpts, &t->model.params, &t->opt, &t->st,
                                      t->cfg, saved, n);
    }
    double status = rc;
    if (comm_allreduce_sum_doubles(t->comm, &status, 1) < 0)   // a rank lost: its message
        return saved[0] ? saved_unconfirmed(t, saved, what, why) : -1;
    if (status < 0) return rc < 0 ? -1 : mv_fail("rank 0 could not write a checkpoint");
    return 0;
}

// The weights must be finite before they are evaluated or saved. A step whose loss was finite
// can still overflow its gradients (a learning rate far too high), and AdamW then writes NaN
// into the weights: a checkpoint of them could never be resumed (loading refuses them) and would
// rotate the finite ones away, and an evaluation of them would log a meaningless number. Rank 0
// checks (every rank holds the same weights); all ranks learn the outcome and stop together.
static int check_weights(trainer *t, long it, long saved_iter) {
    int32_t status = 0;
    if (t->comm->rank == 0) {
        status = state_to_host(t);
        size_t elem;
        const mv_param *q = status == 0 ? params_first_non_finite(&t->model.params, &elem) : NULL;
        if (q) {
            char since[64] = "";
            if (saved_iter > 0) snprintf(since, sizeof since, " since iteration %ld", saved_iter);
            status = mv_fail("iteration %ld: the weights are not finite ('%s' holds %g at element %zu): an update%s "
                             "diverged although its loss was finite (an overflow in the optimizer: optim.lr too "
                             "high?). Nothing was evaluated or saved after it, so the checkpoints in %s hold "
                             "finite weights: lower optim.lr and `--resume auto` continues from the last",
                             it + 1, q->name, (double)params_host(&t->model.params, q)[elem], elem, since,
                             t->cfg->run.work_dir);
        }
    }
    return follow_rank0(t, status, "rank 0 stopped the run at its weight check (its message says why)");
}

// A step's data or an evaluation failed (a damaged or vanished shard, best.h5 not writable)
// after iterations that no checkpoint holds yet: they are saved before the run stops, so that
// fixing the cause and `--resume auto` continues from here rather than from the last periodic
// checkpoint (with run.ckpt_every 2000, hours of training). `why` is the failure; the result is
// -1 with a message saying what was kept.
static int fail_keeping_work(trainer *t, const char *what, const char *why_in, bool save) {
    char why[MV_ERRMSG_MAX], saved[1024] = "";
    snprintf(why, sizeof why, "%s", why_in);
    if (!save && (t->st.iter == 0 || t->comm->rank != 0)) return mv_fail("%s: %s", what, why);
    if (!save)   // the newest checkpoint already holds every iteration done
        return mv_fail("%s: %s; the training state of iteration %lld is in the newest checkpoint of %s: once the "
                       "cause is fixed, `--resume auto` continues from it", what, why, (long long)t->st.iter,
                       t->cfg->run.work_dir);
    if (save_step(t, saved, sizeof saved, what, why) < 0) {
        if (saved[0]) return -1;   // written but not confirmed: save_step's message says all
        char err[MV_ERRMSG_MAX];
        snprintf(err, sizeof err, "%s", mv_last_error());
        if (t->comm->rank != 0)   // rank 0 saves: whether it did, this rank could not learn
            return mv_fail("%s: %s; rank 0 was to save the training done so far, but this rank could not learn "
                           "whether it did (%s): rank 0's message says; `--resume auto` continues from the newest "
                           "whole checkpoint in %s", what, why, err, t->cfg->run.work_dir);
        return mv_fail("%s: %s; saving the training done so far failed as well: %s", what, why, err);
    }
    if (t->comm->rank != 0) return mv_fail("%s: %s", what, why);
    return mv_fail("%s: %s; the training state of iteration %lld is saved in %s%s: once the cause is fixed, "
                   "`--resume auto` continues from it", what, why, (long long)t->st.iter, saved,
                   t->st.eval_pending ? " (the resume runs this evaluation first)" : "");
}

// A batch's labels must be the model's classes or 255 (ignore): another value (a split converted
// for more classes than model.num_classes) is this sample's error, named here, where the sample
// is known (the model's own check can only give an index in the batch).
static int check_labels(const trainer *t, const mv_batch *b) {
    int K = t->cfg->model.num_classes;
    size_t n = (size_t)b->lh * b->lw;
    for (int i = 0; i < b->b; i++) {
        const uint8_t *l = b->labels + (size_t)i * n;
        size_t bad = 0, first = 0;
        for (size_t p = 0; p < n; p++)
            if (l[p] >= K && l[p] != 255 && !bad++) first = p;
        if (bad)
            return mv_fail("%s: sample %lld (%s): label %d (%zu pixel%s of its training crop) is neither a class "
                           "0..%d of model.num_classes %d nor 255 (ignore); a split converted for other classes? "
                           "(`maskvim data inspect` lists its classes)", t->train_paths[b->source[i]],
                           (long long)b->sample[i], b->names[i], l[first], bad, bad > 1 ? "s" : "", K - 1, K);
    }
    return 0;
}

// One iteration's batch, every rank told whether any rank's failed: 0, or -1 when one did (the
// run stops here, keeping the iterations done) or the collective failed.
static int next_batch(trainer *t, long it, long saved_iter, const mv_batch **batch) {
    mv_loader_cursor before;   // this step's batch: where a checkpoint written now must resume
    loader_cursor(t->loader, &before);
    int got = loader_next(t->loader, batch);
    if (got == 0) mv_fail("training stream ended unexpectedly");
    bool unusable = got == 1 && check_labels(t, *batch) < 0;
    if (unusable) got = -1;
    bool bad;
    if (train_batch_agreement(t, got, &bad) < 0) return -1;
    if (!bad) return 0;
    char why[MV_ERRMSG_MAX], what[96];
    snprintf(why, sizeof why, "%s", got != 1 ? mv_last_error() : "another rank's batch could not be read");
    t->st.cursor = before;
    snprintf(what, sizeof what, "iteration %ld: %s", it + 1, unusable ? "its batch is unusable" : "reading its batch failed");
    return fail_keeping_work(t, what, why, it > saved_iter);
}

// Forward, backward (the gradient all-reduce overlapped with it), the ranks' step agreement and
// the update: iteration it+1. *stop: a stop request every rank acts on after this step.
static int train_step(trainer *t, const mv_batch *batch, long it, int *stop) {
    const mv_config *cfg = t->cfg;
    train_clock *c = &t->clock;
    double t1 = mv_now_s();
    for (int b = 0; b < cfg->data.batch_per_rank; b++) t->ids[b] = batch->batch_index[b];
    t->ctx.step = (uint32_t)it;
    run_zero_grads(&t->model);
    MV_TRY(run_forward(&t->model, batch->images, batch->labels, &t->ctx));
    MV_TRY(train_step_agreement(t, it, stop));
    run_backward(&t->model, &t->ctx);
    double t2 = mv_now_s();
    if (t->use_sync && grad_sync_finish(&t->sync) < 0) comm_abort(1, mv_last_error());
    if (t->engine && t->engine->grads_finish(&t->model) < 0) comm_abort(1, mv_last_error());
    double t3 = mv_now_s();
    if (t->engine) t->engine->optimizer_step(&t->model, &t->opt, &cfg->optim, &cfg->schedule, it);
    else optimizer_step(&t->opt, &t->model.params, &cfg->optim, &cfg->schedule, it);
    t->st.step = t->opt.step;
    t->st.iter = it + 1;
    c->optim += mv_now_s() - t3;
    c->sync += t3 - t2;
    c->compute += t2 - t1;
    c->interval_images += (long)cfg->data.batch_per_rank * t->comm->world;
    c->done++;
    return 0;
}

// An evaluation plans the model for its images: the training plan comes back before the next step.
static int plan_training(trainer *t) {
    const mv_config *cfg = t->cfg;
    return run_plan(&t->model, cfg->data.batch_per_rank, cfg->model.crop_h, cfg->model.crop_w, MV_PLAN_TRAIN);
}

// The evaluation due at iteration it+1. One that fails keeps the step: its checkpoint is written
// with eval_pending, and the resume redoes the evaluation from the best bookkeeping before it
// (rank 0 may have advanced it for a domain evaluated before the one that failed).
static int evaluate_step(trainer *t, long it) {
    const mv_config *cfg = t->cfg;
    mv_train_state before_eval = t->st;
    if (evaluate_all(t, it + 1, it + 1 == cfg->schedule.max_iters) < 0) {
        char why[MV_ERRMSG_MAX], what[96];
        snprintf(why, sizeof why, "%s", mv_last_error());
        t->st = before_eval;
        t->st.eval_pending = 1;
        loader_cursor(t->loader, &t->st.cursor);
        snprintf(what, sizeof what, "the evaluation at iteration %ld failed", it + 1);
        return fail_keeping_work(t, what, why, true);
    }
    return plan_training(t);
}

// The checkpoint's evaluation did not complete (fail_keeping_work wrote the checkpoint so): it
// comes first, then the checkpoint is written again with its results (best.h5 bookkeeping), as
// the uninterrupted run's is.
static int redo_pending_eval(trainer *t) {
    const mv_config *cfg = t->cfg;
    long first = (long)t->st.iter;
    t->st.eval_pending = 0;   // before the evaluation: best.h5, a checkpoint too, must not carry it
    if (t->comm->rank == 0) {
        printf("maskvim train: the evaluation at iteration %ld did not complete before: running it now\n", first);
        fflush(stdout);
    }
    if (evaluate_all(t, first, first == cfg->schedule.max_iters) < 0) {
        char why[MV_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", mv_last_error());
        return mv_fail("the evaluation at iteration %ld failed again: %s; the checkpoint it resumed from is intact "
                       "(`--resume auto` runs the evaluation first once the cause is fixed)", first, why);
    }
    loader_cursor(t->loader, &t->st.cursor);
    char saved[1024];
    MV_TRY(plan_training(t));
    return save_step(t, saved, sizeof saved, NULL, NULL);
}

// The steps from the starting iteration to schedule.max_iters, or until --stop-after or a stop
// request (*stopped: the signal). Returns 0 or -1.
static int train_steps(trainer *t, int *stopped) {
    const mv_config *cfg = t->cfg;
    const mv_train_opts *opts = t->opts;
    train_clock *c = &t->clock;
    long max_iters = cfg->schedule.max_iters;
    long saved_iter = (long)t->st.iter;   // the iteration the newest checkpoint holds (the start: nothing to save)
    for (long it = (long)t->st.iter; it < max_iters; it++) {
        double t0 = mv_now_s();
        const mv_batch *batch;
        MV_TRY(next_batch(t, it, saved_iter, &batch));
        c->data += mv_now_s() - t0;
        MV_TRY(train_step(t, batch, it, stopped));
        bool last = it + 1 == max_iters || (opts->stop_after && c->done >= opts->stop_after) || *stopped;
        bool log_now = (cfg->run.log_every && (it + 1) % cfg->run.log_every == 0) || last;
        MV_TRY(train_log_step(t, it, log_now));
        double t_p0 = mv_now_s();
        bool ckpt_now = (cfg->run.ckpt_every && (it + 1) % cfg->run.ckpt_every == 0) || last;
        bool eval_now = (cfg->run.eval_every && (it + 1) % cfg->run.eval_every == 0) || it + 1 == max_iters;
        if (eval_now || ckpt_now) MV_TRY(check_weights(t, it, saved_iter));
        if (eval_now) MV_TRY(evaluate_step(t, it));
        if (ckpt_now) {
            loader_cursor(t->loader, &t->st.cursor);
            char saved[1024];
            MV_TRY(save_step(t, saved, sizeof saved, NULL, NULL));
            saved_iter = it + 1;
            if (last && t->comm->rank == 0) printf("checkpoint: %s\n", saved);
        }
        c->periodic += mv_now_s() - t_p0;
        if (last) break;
    }
    return 0;
}

// Where the steps started and how they ended.
typedef struct {
    long first;               // the starting iteration
    int stopped;              // the stop signal every rank acted on (0: none)
    bool stopped_at_start;    // ... during start-up, before the first step
} train_end;

// How a run that ended without an error ended, said once on rank 0: finished (before a stop
// request that came too late), or stopped by a signal at start-up or after a step. Returns 0 or
// MV_TRAIN_STOPPED.
static int report_end(trainer *t, const train_end *e, int *stop_signal) {
    long first = e->first;
    int stopped = e->stopped;
    bool stopped_at_start = e->stopped_at_start;
    long max_iters = t->cfg->schedule.max_iters;
    bool r0 = t->comm->rank == 0;
    if (r0 && !stopped_at_start) train_log_summary(t);
    // A request taken during the last step or after it (the final evaluation or checkpoint)
    // finds the run finished: its message promised a stop, so say what happened instead.
    int late = stop_signal_pending();
    if (late && (t->clock.done > 0 || first >= max_iters) && t->st.iter >= max_iters && r0)
        printf("maskvim train: the run finished (iteration %ld of %ld) before the stop request (%s) could take effect\n",
               (long)t->st.iter, max_iters, stop_signal_name(late));
    if (stopped_at_start) {
        if (r0 && first > 0)
            printf("maskvim train: stopped by %s during startup, before the first step: the run stays at iteration %ld "
                   "(the checkpoint it resumed from); `--resume auto` continues the run exactly\n",
                   stop_signal_name(stopped), first);
        else if (r0)
            printf("maskvim train: stopped by %s during startup, before the first step: nothing trained and no "
                   "checkpoint written; `--resume auto` starts the run afresh\n", stop_signal_name(stopped));
    } else if (stopped && t->st.iter < max_iters) {
        if (r0)
            printf("maskvim train: stopped by %s after iteration %lld, with its checkpoint; `--resume auto` continues "
                   "the run exactly\n", stop_signal_name(stopped), (long long)t->st.iter);
    } else {
        return 0;
    }
    fflush(stdout);
    if (stop_signal) *stop_signal = stopped;
    return MV_TRAIN_STOPPED;
}
// Every split the run reads, checked before the first step: a mistyped data.val path would
// otherwise be found after the training (at the first evaluation), and a training split of more
// classes than the model at the first batch that holds such a label, maybe thousands of
// iterations in. Each rank checks its own view of the data; all agree before going on.
static int check_sources(trainer *t) {
    const mv_config *cfg = t->cfg;
    int K = cfg->model.num_classes, rc = 0;
    for (int i = 0; i < cfg->data.num_train && rc == 0; i++)
        rc = source_check_split(t->train_paths[i], "data.train", cfg->data.train[i].name, K);
    for (int i = 0; i < cfg->data.num_val && rc == 0; i++)
        rc = source_check_split(t->val_paths[i], "data.val", cfg->data.val[i].name, 0);
    double bad = rc < 0;
    if (comm_allreduce_sum_doubles(t->comm, &bad, 1) < 0) return -1;
    if (bad > 0 && rc == 0) return mv_fail("another rank could not open its data (its message gives the reason)");
    return rc;
}

// A stop request that ended the writing of synthetic data in source_resolve (every rank learnt
// it there): the run stops before its first step, as train_startup_agreement would have it.
static int stopped_in_setup(trainer *t, train_end *end) {
    end->first = (long)t->st.iter;
    end->stopped = source_stop_signal();
    end->stopped_at_start = true;
    mv_clear_error();
    return 0;
}

// Every rank runs this: set up and train. The stop signals are requests from the start (armed
// by train_run): one that arrives while the run starts up stops it before its first step on
// every rank, with nothing to save (nothing changed since the checkpoint it started from); from
// the first step on, one ends the run after the step it arrives in, with a checkpoint.
static int train_main(trainer *t, train_end *end) {
    const mv_config *cfg = t->cfg;
    // --stop-after decides where the ranks' last collectives fall, --resume where they start.
    char options[MV_RANK_OPTIONS_MAX];
    snprintf(options, sizeof options, "--stop-after %d --resume %.900s", t->opts->stop_after,
             t->opts->resume ? t->opts->resume : "(none)");
    MV_TRY(config_check_same_on_ranks(cfg, options, t->comm));
    MV_TRY(fault_drill_read(&t->fault, t->comm->world));
    char drill[256];
    fault_drill_warning(&t->fault, cfg->schedule.max_iters, cfg->run.ckpt_every, drill, sizeof drill);
    if (drill[0] && t->comm->rank == 0) fprintf(stderr, "maskvim train: warning: %s\n", drill);
    checkpoint_state_init(&t->st);
    t->st.seed = (uint64_t)cfg->run.seed;
    t->st.world = t->comm->world;
    t->st.batch_per_rank = cfg->data.batch_per_rank;
    if (t->comm->rank == 0) MV_TRY(train_prepare_dir(t));
    MV_TRY(model_build(&t->model, &cfg->model));
    params_init(&t->model.params, (uint64_t)cfg->run.seed);
    MV_TRY(optimizer_init(&t->opt, &t->model.params, &cfg->optim));

    bool resumed;
    mv_loader_cursor cursor;
    MV_TRY(train_load_start(t, &cursor, &resumed));
    int opened = open_loader(t, resumed ? &cursor : NULL);
    if (opened < 0 && source_stop_signal()) return stopped_in_setup(t, end);
    if (opened == MV_LOADER_OTHER_STREAM) {
        char why[MV_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", mv_last_error());
        return mv_fail("cannot resume: %s (if the training data changed on purpose, start a new run from the "
                       "checkpoint's weights with --set run.init_weights=CHECKPOINT)", why);
    }
    if (opened < 0) return resumed ? mv_fail_context("cannot resume") : -1;
    for (int i = 0; i < cfg->data.num_val; i++)
        if (source_resolve(t->val_paths[i], sizeof t->val_paths[i], &cfg->data.val[i], "val", cfg, t->comm) < 0)
            return source_stop_signal() ? stopped_in_setup(t, end) : -1;
    MV_TRY(check_sources(t));
    MV_TRY(train_check_same_data(t));   // every rank reads the same splits
    MV_TRY(train_record_start(t, resumed));
    MV_TRY(train_open_device(t));
    MV_TRY(train_log_open(t, resumed ? &cursor : NULL));

    long max_iters = cfg->schedule.max_iters;
    end->first = (long)t->st.iter;
    t->clock.start = t->clock.interval = mv_now_s();
    if (end->first >= max_iters && t->comm->rank == 0)
        printf("maskvim train: nothing to train: the run is at iteration %ld and schedule.max_iters is %ld\n",
               end->first, max_iters);
    if (end->first < max_iters) {
        MV_TRY(train_startup_agreement(t, &end->stopped));
        end->stopped_at_start = end->stopped != 0;
    }
    stop_signal_starting(false);
    if (end->stopped_at_start) return 0;
    if (t->st.eval_pending) MV_TRY(redo_pending_eval(t));
    return train_steps(t, &end->stopped);
}

int train_run(const mv_config *cfg, mv_comm *comm, const mv_train_opts *opts, int *stop_signal) {
    trainer *t = mv_calloc(1, sizeof *t);
    t->cfg = cfg;
    t->opts = opts;
    t->comm = comm;
    t->lock_fd = -1;
    // Stop signals are requests from here on, through the setup (cmd_train armed before MPI_Init
    // already; this nests).
    stop_signal_starting(true);   // first: arming delivers a signal held back since exec
    stop_signal_arm();
    train_end end = {0};
    int rc = train_main(t, &end);
    stop_signal_starting(false);   // an error in the setup: the sweep around it is not starting
    stop_signal_disarm();
    if (rc == 0) rc = report_end(t, &end, stop_signal);
    if (t->jsonl) fclose(t->jsonl);
    if (t->lock_fd >= 0) close(t->lock_fd);
    if (t->loader) loader_close(t->loader);
    if (t->use_sync) grad_sync_free(&t->sync);
    engine_close(&t->model);
    if (t->opt.m) optimizer_free(&t->opt);
    model_free(&t->model);
    free(t->ids);
    free(t);
    return rc;
}
