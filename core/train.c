// The training loop (see train.h).
#include "core/train.h"
#include "core/clock.h"
#include "core/build_info.h"
#include "core/checkpoint.h"
#include "core/data_sources.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/engine.h"
#include "core/json_write.h"
#include "core/evaluate.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/schedule.h"
#include "core/stop_signal.h"
#include "core/weights_io.h"
#include "dist/grad_sync.h"
#include "dist/syncbn.h"
#include "kernels/cpu/profile.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const mv_config *cfg;
    mv_comm *comm;
    mv_model model;
    mv_optimizer opt;
    mv_train_state st;
    mv_loader *loader;
    mv_grad_sync sync;
    bool use_sync;                      // the CPU path's gradient all-reduce (several ranks)
    const mv_engine *engine;            // the GPU engine, or NULL for the CPU model
    FILE *jsonl;                        // rank 0: run.work_dir/metrics.jsonl
    int lock_fd;                        // rank 0: run.work_dir/.train.lock, held while training
    char train_paths[MV_MAX_SOURCES][1024];   // the loader keeps pointers to these
    char val_paths[MV_MAX_SOURCES][1024];
} trainer;

static void grads_ready(void *ctx, size_t lo) {
    trainer *t = ctx;
    if (grad_sync_ready(&t->sync, lo) < 0) comm_abort(1, mv_last_error());
}

static void reduce_cb(void *ctx, double *buf, int n) {
    if (comm_allreduce_sum_doubles((mv_comm *)ctx, buf, n) < 0) comm_abort(1, mv_last_error());
}

// Opens the training stream at `cursor` (NULL: the start).
static int open_loader(trainer *t, const mv_loader_cursor *cursor) {
    const mv_config *cfg = t->cfg;
    mv_loader_source src[MV_MAX_SOURCES];
    for (int i = 0; i < cfg->data.num_train; i++) {
        MV_TRY(source_resolve(t->train_paths[i], sizeof t->train_paths[i], &cfg->data.train[i], "train", cfg, t->comm));
        src[i].path = t->train_paths[i];
        src[i].repeat = cfg->data.train[i].repeat;
    }
    mv_loader_config lc = {0};
    lc.mode = MV_LOADER_TRAIN;
    lc.sources = src;
    lc.n_sources = cfg->data.num_train;
    lc.batch = cfg->data.batch_per_rank;
    lc.rank = t->comm->rank;
    lc.world = t->comm->world;
    lc.seed = (uint64_t)cfg->run.seed;
    lc.workers = cfg->data.workers;
    augment_default_config(&lc.aug, cfg->model.crop_h, cfg->model.crop_w);
    lc.aug.scale_long = cfg->data.scale[0];
    lc.aug.scale_short = cfg->data.scale[1];
    lc.aug.ratio_min = cfg->data.ratio_range[0];
    lc.aug.ratio_max = cfg->data.ratio_range[1];
    lc.aug.cat_max_ratio = cfg->data.cat_max_ratio;
    lc.aug.flip_prob = cfg->data.flip_prob;
    lc.aug.photometric = cfg->data.photometric;
    return loader_open(&t->loader, &lc, cursor);
}

// A checkpoint is written from the host arenas: under the GPU engine, parameters, buffers and
// moments come back from the device first.
static int state_to_host(trainer *t) {
    return run_state_to_host(&t->model, &t->opt, false);
}

// Pushes the records written to metrics.jsonl to the file: a full disk or an I/O error stops the
// run (records are never dropped silently; a resume trims a line the failure cut short).
static int log_flush(trainer *t) {
    if (fflush(t->jsonl) == 0 && !ferror(t->jsonl)) return 0;
    int err = errno;
    return mv_fail("%s/metrics.jsonl: cannot write: %s", t->cfg->run.work_dir, strerror(err ? err : EIO));
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
        MV_TRY(evaluate_split(&res, &t->model, cfg, t->val_paths[i], v->name, t->comm, &eo));
        // What rank 0 alone does (the log, best.h5) may fail too: its outcome is sent to every
        // rank, so that all of them leave the evaluation together and the caller can still
        // write the step's checkpoint (a rank returning alone would meet the others in
        // mismatched collectives).
        int32_t status = 0;
        if (t->comm->rank == 0) {
            miou[i] = res.miou;
            char a[32], b[32], c[32];   // '-' where a value is undefined (no labelled pixel of the classes)
            printf("[eval iter %ld] %-10s mIoU %s  mAcc %s  aAcc %s  (%d classes, %.1fs)\n", iter, v->name,
                   metrics_cell(a, sizeof a, res.miou, 5), metrics_cell(b, sizeof b, res.macc, 5),
                   metrics_cell(c, sizeof c, res.aacc, 5), res.valid_classes, mv_now_s() - t0);
            fprintf(t->jsonl, "{\"type\": \"eval\", \"iter\": %ld, \"domain\": ", iter);
            json_write_string(t->jsonl, v->name);
            fprintf(t->jsonl, ", \"metrics\": ");
            metrics_write_json(t->jsonl, &res, NULL, v->name);   // Cityscapes names for 19 classes
            fprintf(t->jsonl, "}\n");
            status = log_flush(t);
            double value = metrics_value(&res, cfg->run.select_metric);
            if (status == 0 && sel == v && !isnan(value) && (isnan(t->st.best_value) || value > t->st.best_value)) {
                t->st.best_value = value;
                t->st.best_step = t->st.step;
                snprintf(t->st.best_name, sizeof t->st.best_name, "%s/%s", v->name, metrics_name(cfg->run.select_metric));
                char path[1024];
                snprintf(path, sizeof path, "%s/best.h5", cfg->run.work_dir);
                // best.h5 is a full checkpoint (`--resume best.h5` works): its loader cursor
                // must be this step's, not the one of the last periodic checkpoint.
                loader_cursor(t->loader, &t->st.cursor);
                status = state_to_host(t);
                if (status == 0) status = checkpoint_save(path, &t->model.params, &t->opt, &t->st, cfg);
                if (status == 0)
                    printf("[eval iter %ld] new best %s = %.2f -> %s\n", iter, t->st.best_name, value, path);
            }
        }
        if (t->comm->world > 1 && comm_bcast_bytes(t->comm, &status, sizeof status) < 0) return -1;
        if (status < 0)
            return t->comm->rank == 0 ? -1 : mv_fail("rank 0 could not record the evaluation (its message gives the reason)");
    }
    if (final && t->comm->rank == 0 && sel) {
        // The domain-generalisation summary: the selection (source) domain and the others.
        double sum = 0;
        int n = 0;
        printf("\nmIoU after %ld iterations: source %s %.2f", iter, sel->name, miou[sel - cfg->data.val]);
        for (int i = 0; i < cfg->data.num_val; i++)
            if (&cfg->data.val[i] != sel) {
                printf("%s %s %.2f", n ? "" : " | targets", cfg->data.val[i].name, miou[i]);
                sum += miou[i];
                n++;
            }
        if (n) printf(" | target mean %.2f", sum / n);
        printf("\n(per-class IoU of every domain: %s/metrics.jsonl)\n", cfg->run.work_dir);
    }
    // Every rank follows rank 0's best bookkeeping (it is saved in every checkpoint).
    return comm_bcast_bytes(t->comm, &t->st.best_value, sizeof t->st.best_value);
}

// A resumed run repeats the iterations after its checkpoint: the records the lost part of the
// run logged (iter > keep_iter, and a line cut short by the crash) are removed from
// metrics.jsonl first, so the log reads like the uninterrupted run's. Rewritten atomically.
// eval_pending: the checkpoint's own evaluation did not complete and is redone, so the records
// it logged before it failed (eval records of keep_iter) go too.
static int trim_log(const char *path, long keep_iter, bool eval_pending) {
    FILE *in = fopen(path, "r");
    if (!in) return errno == ENOENT ? 0 : mv_fail("%s: cannot read: %s", path, strerror(errno));
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) { fclose(in); return -1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long dropped = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        const char *it = strstr(line, "\"iter\": ");
        long at = it ? strtol(it + 8, NULL, 10) : 0;
        bool later = it && (at > keep_iter || (eval_pending && at == keep_iter && strstr(line, "\"type\": \"eval\"")));
        if (line[len - 1] != '\n' || later) { dropped++; continue; }
        fwrite(line, 1, (size_t)len, out.f);
    }
    free(line);
    fclose(in);
    if (dropped == 0) { mv_atomic_abort(&out); return 0; }
    return mv_atomic_commit(&out, true);
}

// One "start" record per start or resume: which code (version, commit) trained from which
// iteration, on how many ranks and what device, and when, so that a result traces back to the
// build that made it (a resumed run may span several builds).
static int log_start(trainer *t, int world, int batch_per_rank, const char *device, bool resumed) {
    char when[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(t->jsonl, "{\"type\": \"start\", \"iter\": %ld, \"resumed\": %s, \"version\": ", (long)t->st.iter,
            resumed ? "true" : "false");
    json_write_string(t->jsonl, mv_version());
    fprintf(t->jsonl, ", \"commit\": ");
    json_write_string(t->jsonl, mv_build_commit());
    fprintf(t->jsonl, ", \"ranks\": %d, \"batch_per_rank\": %d, \"device\": ", world, batch_per_rank);
    json_write_string(t->jsonl, device);
    fprintf(t->jsonl, ", \"start_time\": ");
    json_write_string(t->jsonl, when);
    fprintf(t->jsonl, "}\n");
    return log_flush(t);
}

// Two trainings in one run directory (a resume started while the killed run's ranks still
// run, e.g. after mpirun itself was killed) would interleave checkpoints, rotate away each
// other's files being written and log twice: rank 0 holds an exclusive lock on
// run.work_dir/.train.lock for the whole run, and a second run is refused. File systems
// without flock support are not refused.
static int lock_run_dir(trainer *t, const char *wd) {
    char path[1100];
    snprintf(path, sizeof path, "%s/.train.lock", wd);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return mv_fail("%s: cannot open: %s", path, strerror(errno));
    // A grace of a few seconds: a run that was just killed (or whose parent sweep just died and
    // took it along, PR_SET_PDEATHSIG) may still be exiting when its resume starts.
    int e = 0;
    for (int tries = 0; tries < 50; tries++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) { t->lock_fd = fd; return 0; }
        e = errno;
        if (e != EWOULDBLOCK) break;
        usleep(100 * 1000);
    }
    close(fd);
    if (e == EWOULDBLOCK)
        return mv_fail("%s is in use by another training process (another process holds %s); wait for it to end or stop it "
                       "(after killing mpirun, its ranks may still run)", wd, path);
    return 0;   // ENOLCK, EOPNOTSUPP, ...: no locking there
}

// Every rank must run the same configuration: a rank started with another seed, learning rate,
// batch or mask mode would otherwise train on silently (its parameters drifting from the
// others'), and another model or iteration count ends in an MPI error far from the cause. Rank 0
// sends its resolved configuration (the struct holds no pointers); a rank whose own differs
// fails naming the first key that differs, and every rank stops. run.work_dir (only rank 0
// writes) and data.workers (loader threads) may differ.
static int check_same_config(const mv_config *cfg, mv_comm *comm) {
    if (comm->world <= 1) return 0;
    mv_config *r0 = mv_malloc(sizeof *r0);
    *r0 = *cfg;
    if (comm_bcast_bytes(comm, r0, sizeof *r0) < 0) { free(r0); return -1; }
    memcpy(r0->run.work_dir, cfg->run.work_dir, sizeof r0->run.work_dir);
    r0->data.workers = cfg->data.workers;
    char what[1280] = "", key[384], va[384], vb[384];
    if (config_first_difference(r0, cfg, key, va, vb, sizeof va))
        snprintf(what, sizeof what, "%s: %s on rank 0, %s on rank %d", key, va, vb, comm->rank);
    free(r0);
    // The first rank that differs hands its finding to every rank (sums of doubles are the
    // collective at hand), so rank 0 reports it whichever rank aborts first.
    double *bad = mv_calloc((size_t)comm->world, sizeof(double));
    bad[comm->rank] = what[0] ? 1 : 0;
    int rc = comm_allreduce_sum_doubles(comm, bad, comm->world);
    int first = -1;
    for (int r = 0; r < comm->world && rc == 0 && first < 0; r++)
        if (bad[r] > 0) first = r;
    free(bad);
    if (rc < 0 || first < 0) return rc;
    enum { MSG = 512 };
    double text[MSG] = {0};
    if (comm->rank == first)
        for (int i = 0; i < MSG - 1 && what[i]; i++) text[i] = (unsigned char)what[i];
    if (comm_allreduce_sum_doubles(comm, text, MSG) < 0) return -1;
    for (int i = 0; i < MSG; i++) what[i] = (char)(unsigned char)text[i];
    what[MSG - 1] = '\0';
    return mv_fail("rank %d was started with another configuration than rank 0: %s (start every rank with the same "
                   "file and --set options)", first, what);
}

// What every rank must agree on after a step's forward, in one small all-reduce:
// - whether the loss is finite everywhere. A diverged step (a NaN or infinite loss: too high a
//   learning rate, a damaged sample) would turn every parameter into NaN at the optimizer, and
//   the next checkpoints would rotate the good ones away. The losses are summed over ranks (NaN
//   or Inf anywhere makes the sum non-finite), so all ranks stop together, before backward and
//   any gradient all-reduce, with the previous iteration's parameters untouched and no
//   checkpoint written (an error);
// - whether a stop signal reached any rank (core/stop_signal.h): then *stop is that signal and
//   every rank stops after this step, with a checkpoint.
#define NSTOP MV_STOP_SIGNAL_COUNT

// The stop signal every rank acts on, from this rank's own (mine) and how many ranks got each of
// mv_stop_signals (counts, summed over the ranks): its own, else the first that reached some rank.
static int agreed_signal(int mine, const double *counts) {
    for (int i = 0; i < NSTOP && !mine; i++)
        if (counts[i] > 0) mine = mv_stop_signals[i];
    return mine;
}

static int step_agreement(trainer *t, long it, int *stop) {
    const mv_model *m = &t->model;
    int mine_sig = stop_signal_pending();
    double v[1 + NSTOP] = {m->loss_total};   // the loss, then how many ranks got each signal
    for (int i = 0; i < NSTOP; i++) v[1 + i] = mine_sig == mv_stop_signals[i];
    bool mine = !isfinite(m->loss_total);
    if (t->comm->world > 1 && comm_allreduce_sum_doubles(t->comm, v, 1 + NSTOP) < 0) return -1;
    double sum = v[0];
    *stop = agreed_signal(mine_sig, v + 1);
    if (isfinite(sum)) return 0;
    char where[192] = "on another rank";
    if (mine)
        snprintf(where, sizeof where, "rank %d: total %g = ce %g, aux %g, ratio %g, position %g", t->comm->rank,
                 m->loss_total, m->loss_ce, m->loss_aux, m->loss_ratio, m->loss_position);
    return mv_fail("iteration %ld: the loss is not finite (%s); stopped before the update: no parameter changed and "
                   "no checkpoint was written (those in %s are intact; --resume auto continues from the last). "
                   "Lower optim.lr or check the data (maskvim data inspect)",
                   it + 1, where, t->cfg->run.work_dir);
}

// Whether a stop signal reached any rank while the run started up (core/stop_signal.h): one
// collective, on every rank once its setup is done, so that all of them stop before the first
// step or none does. A request that comes after this rank's part is read by the first step's
// agreement (the run then stops after that step, with a checkpoint).
static int startup_agreement(trainer *t, int *stop) {
    stop_signal_starting(false);   // before the read: from here a request is "after this step"
    int mine = stop_signal_pending();
    double v[NSTOP];
    for (int i = 0; i < NSTOP; i++) v[i] = mine == mv_stop_signals[i];
    if (t->comm->world > 1 && comm_allreduce_sum_doubles(t->comm, v, NSTOP) < 0) return -1;
    *stop = agreed_signal(mine, v);
    return 0;
}

// Losses and mask ratios averaged over ranks, the logged view of one step.
// v: 5 losses, keep ratio of encoder stages 0..3 (at 5..8) and decoder levels 0..2 (at 9..11), ranks.
typedef struct { double v[5 + 7 + 1]; } step_stats;

static void gather_stats(step_stats *s, const mv_model *m, mv_comm *comm) {
    double *v = s->v;
    v[0] = m->loss_total; v[1] = m->loss_ce; v[2] = m->loss_aux; v[3] = m->loss_ratio; v[4] = m->loss_position;
    for (int i = 0; i < 4; i++) v[5 + i] = m->keep_enc[i];
    for (int i = 0; i < 3; i++) v[9 + i] = m->keep_dec[i];
    v[12] = 1;
    // A failed sum (a rank lost) ends the job here, as every other collective of a step does.
    if (comm_allreduce_sum_doubles(comm, v, 13) < 0) comm_abort(1, mv_last_error());
    for (int i = 0; i < 12; i++) v[i] /= v[12];
}

// The encoder keep ratios as logged: stages 0..2, and stage 3 only where it masks.
static void fmt_keep_enc(char *out, size_t n, const step_stats *s, bool stage3, const char *sep, const char *fmt) {
    int len = 0;
    for (int i = 0; i < (stage3 ? 4 : 3) && len >= 0 && (size_t)len < n; i++) {
        len += snprintf(out + len, n - (size_t)len, "%s", i ? sep : "");
        if ((size_t)len < n) len += snprintf(out + len, n - (size_t)len, fmt, s->v[5 + i]);
    }
}

// Writes the checkpoint of t->st (its cursor set by the caller) on rank 0, which every rank
// learns the outcome of. `saved` receives its path (rank 0).
static int save_step(trainer *t, char *saved, size_t n) {
    int rc = 0;
    if (t->comm->rank == 0) {
        rc = state_to_host(t);
        if (rc == 0)
            rc = checkpoint_save_iter(t->cfg->run.work_dir, t->cfg->run.keep_ckpts, &t->model.params, &t->opt, &t->st,
                                      t->cfg, saved, n);
    }
    double status = rc;
    if (comm_allreduce_sum_doubles(t->comm, &status, 1) < 0) return -1;   // a rank lost: its message
    if (status < 0) return rc < 0 ? -1 : mv_fail("rank 0 could not write a checkpoint");
    return 0;
}

// A step's data or an evaluation failed (a damaged or vanished shard, best.h5 not writable)
// after iterations that no checkpoint holds yet: they are saved before the run stops, so that
// fixing the cause and `--resume auto` continues from here rather than from the last periodic
// checkpoint (with run.ckpt_every 2000, hours of training). `why` is the failure; the result is
// -1 with a message saying what was kept.
static int fail_keeping_work(trainer *t, const char *what, const char *why_in, bool save) {
    char why[MV_ERRMSG_MAX], saved[1024] = "";
    snprintf(why, sizeof why, "%s", why_in);
    if (!save) return mv_fail("%s: %s", what, why);
    if (save_step(t, saved, sizeof saved) < 0) {
        char err[MV_ERRMSG_MAX];
        snprintf(err, sizeof err, "%s", mv_last_error());
        return mv_fail("%s: %s; saving the training done so far failed as well: %s", what, why, err);
    }
    if (t->comm->rank != 0) return mv_fail("%s: %s", what, why);
    return mv_fail("%s: %s; the training state of iteration %lld is saved in %s%s: once the cause is fixed, "
                   "`--resume auto` continues from it", what, why, (long long)t->st.iter, saved,
                   t->st.eval_pending ? " (the resume runs this evaluation first)" : "");
}

int train_run(const mv_config *cfg, mv_comm *comm, const mv_train_opts *opts, int *stop_signal) {
    trainer *t = mv_calloc(1, sizeof *t);
    t->cfg = cfg;
    t->comm = comm;
    t->lock_fd = -1;
    int rc = 0, B = cfg->data.batch_per_rank, world = comm->world;
    const char *wd = cfg->run.work_dir;
    char path[1024];
    // Stop signals are requests from here on, through the setup (cmd_train armed before MPI_Init
    // already; this nests): one that arrives while the run starts up stops it before its first
    // step, see startup_agreement.
    stop_signal_starting(true);   // first: arming delivers a signal held back since exec
    stop_signal_arm();
    bool armed = true;
    if ((rc = check_same_config(cfg, comm)) < 0) goto out;
    checkpoint_state_init(&t->st);
    t->st.seed = (uint64_t)cfg->run.seed;
    t->st.world = world;
    t->st.batch_per_rank = B;

    if (comm->rank == 0) {
        rc = mv_mkdir_p(wd);
        if (rc == 0) rc = lock_run_dir(t, wd);
        // A fresh start in a folder an earlier (finished or crashed) run used: its files move to
        // previous-<time>/ before anything is written, or rotation would keep its higher-step
        // checkpoints and delete this run's, `latest` and best.h5 could name its files, the log
        // would hold both runs, and `--resume auto` after a crash before this run's first
        // checkpoint would continue the earlier run. (Under the lock: a live run is refused above.)
        if (rc == 0 && !opts->resume) {
            char moved[1100];
            int n = checkpoint_set_aside(wd, moved, sizeof moved);
            if (n < 0) rc = -1;
            else if (n > 0)
                printf("maskvim train: %s held an earlier run: its %d file%s moved to %s; this run starts afresh "
                       "(continue a run with --resume auto)\n", wd, n, n > 1 ? "s" : "", moved);
        }
    }
    if (rc == 0) rc = model_build(&t->model, &cfg->model);
    if (rc < 0) goto out;
    params_init(&t->model.params, (uint64_t)cfg->run.seed);
    optimizer_init(&t->opt, &t->model.params, &cfg->optim);

    // Resume: the newest checkpoint (auto) or the given one, if its configuration allows. Rank 0
    // alone reads it, as it alone writes them (run.work_dir need not be on a filesystem every
    // host sees), and hands the state on: the moments, step and training state here, the
    // weights and buffers below.
    char resume_path[1024] = "";
    int32_t resumed = 0;   // rank 0's verdict: 1 resumed, 0 fresh start, -1 failed
    if (comm->rank == 0) {
        if (opts->resume && !strcmp(opts->resume, "auto")) {
            char skipped[2048];
            if (checkpoint_find_latest_report(wd, resume_path, sizeof resume_path, skipped, sizeof skipped) < 0)
                resumed = -1;
            else if (skipped[0])   // a damaged newer checkpoint must not go unnoticed
                fprintf(stderr, "maskvim: warning: --resume auto passed over: %s\n", skipped);
        } else if (opts->resume) {
            // A checkpoint, or a run folder (or its `latest` file): the checkpoint `latest` names.
            if (checkpoint_resolve(resume_path, sizeof resume_path, opts->resume, "maskvim train: --resume") < 0) resumed = -1;
        }
        if (resumed == 0 && resume_path[0]) {
            mv_config *saved = mv_calloc(1, sizeof *saved);
            mv_train_state st;
            char why[1024] = "";
            rc = checkpoint_read_meta(resume_path, &st, saved);
            int ok = rc < 0 ? -1 : checkpoint_resume_check(&st, saved, cfg, world, why, sizeof why);
            if (rc == 0 && ok < 0) rc = mv_fail("cannot resume from %s: %s", resume_path, why);
            if (rc == 0 && ok > 0) fprintf(stderr, "maskvim: resuming from %s with differences: %s\n", resume_path, why);
            // The saved best value (which best.h5 must beat) was measured by the checkpoint's
            // selection setting: with another one, the two numbers are not comparable. Domains
            // compare by the data.val entry they resolve to ("" is the first).
            const mv_source *sel_then = config_find_val(saved, saved->run.select_domain);
            const mv_source *sel_now = config_find_val(cfg, cfg->run.select_domain);
            const char *dom_then = sel_then ? sel_then->name : saved->run.select_domain;
            const char *dom_now = sel_now ? sel_now->name : cfg->run.select_domain;
            if (rc == 0 && st.best_step >= 0 &&
                (saved->run.select_metric != cfg->run.select_metric || strcmp(dom_then, dom_now)))
                fprintf(stderr, "maskvim: warning: run.select_metric/run.select_domain changed since %s was saved (%s on "
                                "%s then, %s on %s now): its best value %s = %.2f (step %lld) was measured with the "
                                "old setting, and best.h5 is replaced only by a value above it\n", resume_path,
                        metrics_name(saved->run.select_metric), dom_then, metrics_name(cfg->run.select_metric), dom_now,
                        st.best_name, st.best_value, (long long)st.best_step);
            if (rc == 0) rc = checkpoint_load(resume_path, &t->model.params, &t->opt, &t->st, NULL);
            free(saved);
            resumed = rc < 0 ? -1 : 1;
        } else if (resumed == 0 && cfg->run.init_weights[0]) {
            // A new run starts from run.init_weights; a resumed one has its own weights.
            snprintf(path, sizeof path, "%s/init_weights.txt", wd);
            rc = weights_load_init(&t->model.params, cfg->run.init_weights, path, stdout);
            if (rc < 0) resumed = -1;
        }
    }
    if ((rc = comm_bcast_bytes(comm, &resumed, sizeof resumed)) < 0) goto out;
    if (resumed < 0) {
        rc = comm->rank == 0 ? -1 : mv_fail("rank 0 could not load the run's starting point (its message gives the reason)");
        goto out;
    }
    mv_loader_cursor cursor, *start = NULL;
    if (resumed) {
        size_t np = t->model.params.num_params;
        if ((rc = comm_bcast_bytes(comm, &t->st, sizeof t->st)) < 0 || (rc = comm_bcast_floats(comm, t->opt.m, np)) < 0 ||
            (rc = comm_bcast_floats(comm, t->opt.v, np)) < 0 ||
            (rc = comm_bcast_bytes(comm, &t->opt.step, sizeof t->opt.step)) < 0)
            goto out;
        checkpoint_resume_cursor(&cursor, &t->st, B * world);
        start = &cursor;
        t->st.world = world;
        t->st.batch_per_rank = B;
        if (comm->rank == 0) printf("maskvim: resumed from %s at iteration %lld\n", resume_path, (long long)t->st.iter);
    }
    // Every rank starts from rank 0's parameters and buffers.
    if ((rc = comm_bcast_floats(comm, t->model.params.params, t->model.params.num_params)) < 0) goto out;
    if ((rc = comm_bcast_floats(comm, t->model.params.buffers, t->model.params.num_buffers)) < 0) goto out;

    if ((rc = open_loader(t, start)) < 0) goto out;
    for (int i = 0; i < cfg->data.num_val && rc == 0; i++)
        rc = source_resolve(t->val_paths[i], sizeof t->val_paths[i], &cfg->data.val[i], "val", cfg, comm);
    if (rc < 0) goto out;
    // config.yaml describes the run only once its starting point is settled: a resume that is
    // refused (another model.*, or data the loader cursor does not fit) must leave the run's own
    // configuration in place, not the one that was refused. (A failure here on rank 0 ends
    // every rank: cmd_train aborts the job.)
    if (comm->rank == 0) {
        snprintf(path, sizeof path, "%s/config.yaml", wd);
        if ((rc = config_save(path, cfg)) < 0) goto out;
        // The log is trimmed to the checkpoint's iteration below; `latest` must say the same, or
        // a crash before this run's first checkpoint makes `--resume auto` continue from a later
        // checkpoint of the course this resume left (a rewind: the log then lacks the
        // iterations between) or, for a checkpoint from another folder, start over from scratch.
        char adopted[1024];
        if (resumed && (rc = checkpoint_adopt(wd, resume_path, (int64_t)t->opt.step, adopted, sizeof adopted)) < 0) goto out;
        if (rc > 0) printf("maskvim: %s/latest now names %s, where this run continues from\n", wd, adopted);
        rc = 0;
    }

    int *ids = mv_malloc(sizeof(int) * B);
    mv_run_ctx ctx = {.training = true, .seed = (uint64_t)cfg->run.seed, .world_size = world};
    ctx.sample_ids = ids;
    if (world > 1) {
        ctx.reduce.fn = reduce_cb;
        ctx.reduce.ctx = comm;
        ctx.grads_ready = grads_ready;
        ctx.grads_ctx = t;
    }
    // The device: the GPU engine moves the (initial or resumed) state there and, with several
    // ranks, replaces the all-reduce hooks by its NCCL ones.
    char device[256];
    if ((rc = engine_open(&t->model, &t->opt, &cfg->run, comm, &ctx, device, sizeof device)) < 0) { free(ids); goto out; }
    t->engine = t->model.engine;
    if ((rc = run_plan(&t->model, B, cfg->model.crop_h, cfg->model.crop_w, MV_PLAN_TRAIN)) < 0) { free(ids); goto out; }
    t->use_sync = world > 1 && !t->engine;
    if (t->use_sync) {
        size_t *cuts = mv_malloc(sizeof(size_t) * t->model.params.count);
        int nc = 0;
        for (int i = 0; i < t->model.params.count; i++)
            if (!t->model.params.items[i].is_buffer) cuts[nc++] = t->model.params.items[i].offset;
        mv_grad_sync_opts go = grad_sync_opts_mib(cfg->run.bucket_mb, cfg->run.first_bucket_mb);
        rc = grad_sync_init(&t->sync, comm, t->model.params.grads, cuts, &go, t->model.params.num_params, nc);
        free(cuts);
        if (rc < 0) { t->use_sync = false; free(ids); goto out; }
        size_t len = strlen(device);
        snprintf(device + len, sizeof device - len, ", MPI all-reduce in %d buckets", t->sync.num_buckets);
    }
    if (comm->rank == 0) {
        snprintf(path, sizeof path, "%s/metrics.jsonl", wd);
        // With --resume, the log continues from the checkpoint's iteration, or from 0 when
        // --resume auto found none (a first attempt killed before its first checkpoint).
        if (opts->resume && (rc = trim_log(path, start ? (long)t->st.iter : 0, start && t->st.eval_pending)) < 0) { free(ids); goto out; }
        t->jsonl = fopen(path, "a");
        if (!t->jsonl) { rc = mv_fail("%s: cannot open for writing", path); free(ids); goto out; }
        if ((rc = log_start(t, world, B, device, start != NULL)) < 0) { free(ids); goto out; }
        printf("maskvim train: %s, %zu parameters, %d rank%s x %d images, crop %dx%d, %d iterations, on %s, work dir %s\n",
               cfg->model.preset, model_num_parameters(&t->model), world, world > 1 ? "s" : "", B, cfg->model.crop_h,
               cfg->model.crop_w, cfg->schedule.max_iters, device, wd);
        fflush(stdout);   // a log redirected to a file shows how the run started before its first step ends
        // PyTorch refuses this (BatchNorm wants more than one value per channel in training).
        if (B * world == 1 && cfg->model.head == MV_HEAD_UPER && cfg->model.context == MV_CONTEXT_PPM)
            fprintf(stderr, "maskvim train: warning: a global batch of 1 image: the BatchNorm of the pyramid pooling's "
                            "1x1 branch sees one value per channel, so that branch outputs its bias and learns nothing "
                            "(use data.batch_per_rank >= 2, or more ranks)\n");
    }
    bool tty = !opts->quiet && comm->rank == 0 && isatty(fileno(stdout));
    // gather_stats is a collective, called on log lines and, on a terminal, on every step: all
    // ranks must agree. Only rank 0 draws, so its terminal decides (under mpirun every rank's
    // stdout is a pseudo-terminal, whatever mpirun's own output is).
    unsigned char tty_byte = tty;
    if ((rc = comm_bcast_bytes(comm, &tty_byte, 1)) < 0) { free(ids); goto out; }
    tty = tty_byte != 0;
    long max_iters = cfg->schedule.max_iters, first = (long)t->st.iter, done_here = 0;
    double t_start = mv_now_s(), t_interval = t_start, wait_data = 0, wait_sync = 0, t_compute = 0;
    double t_optim = 0, t_periodic = 0;   // optimizer; evaluation + checkpoints (not part of a step)
    long interval_images = 0;
    if (first >= max_iters && comm->rank == 0)
        printf("maskvim train: nothing to train: the run is at iteration %ld and schedule.max_iters is %ld\n", first,
               max_iters);
    // A request taken during the setup (or by a sweep before this run started) stops the run
    // here, before its first step, on every rank: nothing changed since the checkpoint it started
    // from (or, fresh, since nothing), so none is written. From here on a stop signal ends the
    // run after the step it arrives in, with a checkpoint.
    int stopped = 0;
    bool stopped_at_start = false;
    if (first < max_iters) {
        if ((rc = startup_agreement(t, &stopped)) < 0) { free(ids); goto out; }
        stopped_at_start = stopped != 0;
    }
    stop_signal_starting(false);
    // The checkpoint was written when its evaluation failed (fail_keeping_work): that evaluation
    // comes first, then the checkpoint is written again with its results (best.h5 bookkeeping),
    // as the uninterrupted run's is.
    if (t->st.eval_pending && !stopped_at_start) {
        t->st.eval_pending = 0;   // before the evaluation: best.h5, a checkpoint too, must not carry it
        if (comm->rank == 0) {
            printf("maskvim train: the evaluation at iteration %ld did not complete before: running it now\n", first);
            fflush(stdout);
        }
        if ((rc = evaluate_all(t, first, first == max_iters)) < 0) {
            char why[MV_ERRMSG_MAX];
            snprintf(why, sizeof why, "%s", mv_last_error());
            rc = mv_fail("the evaluation at iteration %ld failed again: %s; the checkpoint it resumed from is intact "
                         "(`--resume auto` runs the evaluation first once the cause is fixed)", first, why);
            free(ids);
            goto out;
        }
        loader_cursor(t->loader, &t->st.cursor);
        char saved[1024];
        if ((rc = run_plan(&t->model, B, cfg->model.crop_h, cfg->model.crop_w, MV_PLAN_TRAIN)) < 0 ||
            (rc = save_step(t, saved, sizeof saved)) < 0) {
            free(ids);
            goto out;
        }
    }
    long saved_iter = first;   // the iteration the newest checkpoint holds (the start: nothing to save)
    for (long it = first; it < max_iters && !stopped_at_start; it++) {
        double t0 = mv_now_s();
        const mv_batch *batch;
        mv_loader_cursor before;   // this step's batch: where a checkpoint written now must resume
        loader_cursor(t->loader, &before);
        int got = loader_next(t->loader, &batch);
        if (got == 0) mv_fail("training stream ended unexpectedly");
        // Every rank learns whether any rank's batch failed (one more small sum per step with
        // several ranks), so that all of them stop here together and keep the iterations done.
        double data_bad = got != 1;
        if (world > 1 && comm_allreduce_sum_doubles(comm, &data_bad, 1) < 0) { rc = -1; break; }
        if (data_bad > 0) {
            char why[MV_ERRMSG_MAX];
            snprintf(why, sizeof why, "%s", got != 1 ? mv_last_error() : "another rank's batch could not be read");
            t->st.cursor = before;
            char what[96];
            snprintf(what, sizeof what, "iteration %ld: reading its batch failed", it + 1);
            rc = fail_keeping_work(t, what, why, it > saved_iter);
            break;
        }
        double t1 = mv_now_s();
        for (int b = 0; b < B; b++) ids[b] = batch->batch_index[b];
        ctx.step = (uint32_t)it;
        run_zero_grads(&t->model);
        if ((rc = run_forward(&t->model, batch->images, batch->labels, &ctx)) < 0) break;
        if ((rc = step_agreement(t, it, &stopped)) < 0) break;
        run_backward(&t->model, &ctx);
        double t2 = mv_now_s();
        if (t->use_sync && grad_sync_finish(&t->sync) < 0) comm_abort(1, mv_last_error());
        if (t->engine && t->engine->grads_finish(&t->model) < 0) comm_abort(1, mv_last_error());
        double t3 = mv_now_s();
        if (t->engine) t->engine->optimizer_step(&t->model, &t->opt, &cfg->optim, &cfg->schedule, it);
        else optimizer_step(&t->opt, &t->model.params, &cfg->optim, &cfg->schedule, it);
        t_optim += mv_now_s() - t3;
        t->st.step = t->opt.step;
        t->st.iter = it + 1;
        wait_data += t1 - t0;
        wait_sync += t3 - t2;
        t_compute += t2 - t1;
        interval_images += (long)B * world;
        done_here++;
        bool last = it + 1 == max_iters || (opts->stop_after && done_here >= opts->stop_after) || stopped;
        bool log_now = (cfg->run.log_every && (it + 1) % cfg->run.log_every == 0) || last;
        if (log_now || tty) {
            step_stats s;
            gather_stats(&s, &t->model, comm);
            double now = mv_now_s(), ips = interval_images / (now - t_interval + 1e-12);
            double eta = (max_iters - it - 1) * (now - t_start) / (double)done_here;
            double lr = schedule_lr(&cfg->schedule, cfg->optim.lr, it);
            double total = now - t_start, outside = wait_data + wait_sync;
            char eta_s[32];
            prof_fmt_duration(eta_s, sizeof eta_s, eta);
            if (comm->rank == 0 && log_now) {
                bool stage3 = cfg->model.mask_encoder[3];
                char keep_txt[64], keep_json[64];
                fmt_keep_enc(keep_txt, sizeof keep_txt, &s, stage3, "/", "%.2f");
                fmt_keep_enc(keep_json, sizeof keep_json, &s, stage3, ", ", "%.4f");
                printf("%s[iter %5ld/%ld] loss %.4f (ce %.4f aux %.4f ratio %.4f pos %.4f) lr %.2e keep enc %s "
                       "dec %.2f/%.2f/%.2f | %.2f img/s | data %.0f%% sync %.0f%% | ETA %s\n", tty ? "\r" : "", it + 1,
                       max_iters, s.v[0], s.v[1], s.v[2], s.v[3], s.v[4], lr, keep_txt, s.v[9], s.v[10], s.v[11],
                       ips, 100 * wait_data / total, 100 * wait_sync / total, eta_s);
                fprintf(t->jsonl, "{\"type\": \"train\", \"iter\": %ld, \"loss_total\": %.6g, \"loss_ce\": %.6g, \"loss_aux\": %.6g, "
                        "\"loss_ratio\": %.6g, \"loss_position\": %.6g, \"lr\": %.6g, \"keep_enc\": [%s], "
                        "\"keep_dec\": [%.4f, %.4f, %.4f], \"images_per_s\": %.4f, \"eta_s\": %.1f, \"data_wait_frac\": %.4f, "
                        "\"sync_wait_frac\": %.4f, \"outside_frac\": %.4f}\n", it + 1, s.v[0], s.v[1], s.v[2], s.v[3], s.v[4],
                        lr, keep_json, s.v[9], s.v[10], s.v[11], ips, eta, wait_data / total, wait_sync / total,
                        outside / total);
                if ((rc = log_flush(t)) < 0) break;
                fflush(stdout);
                t_interval = now;
                interval_images = 0;
            } else if (comm->rank == 0 && tty) {
                int width = 30, filled = (int)(width * (it + 1) / max_iters);
                printf("\r[%.*s%*s] %ld/%ld loss %.4f | %.2f img/s | ETA %s   ", filled, "==============================",
                       width - filled, "", it + 1, max_iters, s.v[0], ips, eta_s);
                fflush(stdout);
            }
        }
        double t_p0 = mv_now_s();
        bool ckpt_now = (cfg->run.ckpt_every && (it + 1) % cfg->run.ckpt_every == 0) || last;
        bool eval_now = (cfg->run.eval_every && (it + 1) % cfg->run.eval_every == 0) || it + 1 == max_iters;
        if (eval_now) {
            mv_train_state before_eval = t->st;
            if ((rc = evaluate_all(t, it + 1, it + 1 == max_iters)) < 0) {
                // The step is trained; its evaluation is redone by the resume (eval_pending), from
                // the best bookkeeping before it (rank 0 may have advanced it for a domain
                // evaluated before the one that failed).
                char why[MV_ERRMSG_MAX], what[96];
                snprintf(why, sizeof why, "%s", mv_last_error());
                t->st = before_eval;
                t->st.eval_pending = 1;
                loader_cursor(t->loader, &t->st.cursor);
                snprintf(what, sizeof what, "the evaluation at iteration %ld failed", it + 1);
                rc = fail_keeping_work(t, what, why, true);
                break;
            }
            if ((rc = run_plan(&t->model, B, cfg->model.crop_h, cfg->model.crop_w, MV_PLAN_TRAIN)) < 0) break;
        }
        if (ckpt_now) {
            loader_cursor(t->loader, &t->st.cursor);
            char saved[1024];
            if ((rc = save_step(t, saved, sizeof saved)) < 0) break;
            saved_iter = it + 1;
            if (last && comm->rank == 0) printf("checkpoint: %s\n", saved);
        }
        t_periodic += mv_now_s() - t_p0;
        if ((opts->stop_after && done_here >= opts->stop_after) || stopped) break;
    }
    stop_signal_disarm();
    armed = false;
    free(ids);
    if (rc == 0 && comm->rank == 0 && !stopped_at_start) {
        // The share of the training steps spent outside forward/backward (evaluation and
        // checkpoints are periodic work, reported apart).
        double total = mv_now_s() - t_start, steps = total - t_periodic;
        double other = steps - t_compute - wait_data - wait_sync - t_optim;
        printf("maskvim train: %ld iterations in %.1fs; of the steps (%.1fs): forward+backward %.1f%%, data wait %.1f%%, "
               "all-reduce wait %.1f%%, optimizer %.1f%%, logging and other %.1f%%; evaluation and checkpoints %.1fs\n",
               done_here, total, steps, 100 * t_compute / steps, 100 * wait_data / steps, 100 * wait_sync / steps,
               100 * t_optim / steps, 100 * other / steps, t_periodic);
    }
    // A request taken during the last step or after it (the final evaluation or checkpoint)
    // finds the run finished: its message promised a stop, so say what happened instead.
    int late = stop_signal_pending();
    if (rc == 0 && late && (done_here > 0 || first >= max_iters) && t->st.iter >= max_iters && comm->rank == 0)
        printf("maskvim train: the run finished (iteration %ld of %ld) before the stop request (%s) could take effect\n",
               (long)t->st.iter, max_iters, stop_signal_name(late));
    if (rc == 0 && stopped_at_start) {
        if (comm->rank == 0) {
            if (first > 0)
                printf("maskvim train: stopped by %s during startup, before the first step: the run stays at "
                       "iteration %ld (the checkpoint it resumed from); `--resume auto` continues the run exactly\n",
                       stop_signal_name(stopped), first);
            else
                printf("maskvim train: stopped by %s during startup, before the first step: nothing trained and no "
                       "checkpoint written; `--resume auto` starts the run afresh\n", stop_signal_name(stopped));
            fflush(stdout);
        }
        if (stop_signal) *stop_signal = stopped;
        rc = MV_TRAIN_STOPPED;
    } else if (rc == 0 && stopped && t->st.iter < max_iters) {
        if (comm->rank == 0)
            printf("maskvim train: stopped by %s after iteration %lld, with its checkpoint; `--resume auto` continues "
                   "the run exactly\n", stop_signal_name(stopped), (long long)t->st.iter);
        if (stop_signal) *stop_signal = stopped;
        rc = MV_TRAIN_STOPPED;
    }
out:
    stop_signal_starting(false);   // an error in the setup: the sweep around it is not starting
    if (armed) stop_signal_disarm();
    if (t->jsonl) fclose(t->jsonl);
    if (t->lock_fd >= 0) close(t->lock_fd);
    if (t->loader) loader_close(t->loader);
    if (t->use_sync) grad_sync_free(&t->sync);
    engine_close(&t->model);
    if (t->opt.m) optimizer_free(&t->opt);
    model_free(&t->model);
    free(t);
    return rc;
}
