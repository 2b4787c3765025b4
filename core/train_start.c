// The start of a training run, before its first step: the run directory (locked; an earlier
// run's files set aside), the starting point (a checkpoint to resume, run.init_weights, or the
// seeded initialisation) handed from rank 0 to every rank, the run's config.yaml and `latest`,
// and the device with its gradient all-reduce.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "core/error.h"
#include "core/fs.h"
#include "core/metrics.h"
#include "core/train_internal.h"
#include "core/weights_io.h"
#include "dist/syncbn.h"

// The hooks of a step on several ranks of the CPU path: backward reports each gradient that is
// final (the buckets above it start their all-reduce); SyncBN and the ratio loss sum their
// statistics through dist/syncbn.h's reducer. A failed collective (a rank lost) ends the job, as
// it would inside any other collective of the step.
static void grads_ready(void *ctx, size_t lo) {
    trainer *t = ctx;
    if (grad_sync_ready(&t->sync, lo) < 0) comm_abort(1, mv_last_error());
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

// Rank 0: the run directory, made if needed and locked for the run. A fresh start in a folder
// an earlier (finished or crashed) run used: its files move to previous-<time>/ before anything
// is written, or rotation would keep its higher-step checkpoints and delete this run's, `latest`
// and best.h5 could name its files, the log would hold both runs, and `--resume auto` after a
// crash before this run's first checkpoint would continue the earlier run. (Under the lock: a
// live run is refused first.)
int train_prepare_dir(trainer *t) {
    const char *wd = t->cfg->run.work_dir;
    MV_TRY(mv_mkdir_p(wd));
    MV_TRY(lock_run_dir(t, wd));
    if (t->opts->resume) return 0;
    char moved[1100];
    int n = checkpoint_set_aside(wd, moved, sizeof moved);
    if (n < 0) return -1;
    if (n > 0)
        printf("maskvim train: %s held an earlier run: its %d file%s moved to %s; this run starts afresh "
               "(continue a run with --resume auto)\n", wd, n, n > 1 ? "s" : "", moved);
    return 0;
}

// Rank 0: the checkpoint --resume names (auto: the newest intact one in the run directory, if
// any) into t->resume_path; "" for a fresh start.
static int find_resume(trainer *t) {
    const char *resume = t->opts->resume;
    if (!resume) return 0;
    if (strcmp(resume, "auto")) {
        // A checkpoint, or a run folder (or its `latest` file): the checkpoint `latest` names.
        return checkpoint_resolve(t->resume_path, sizeof t->resume_path, resume, "maskvim train: --resume");
    }
    char skipped[2048];
    MV_TRY(checkpoint_find_latest_report(t->cfg->run.work_dir, t->resume_path, sizeof t->resume_path, skipped,
                                         sizeof skipped));
    // A damaged newer checkpoint, or an adoption that did not complete, must not go unnoticed.
    if (skipped[0] && t->resume_path[0])
        fprintf(stderr, "maskvim: warning: --resume auto passed over: %s; it continues from %s\n", skipped,
                t->resume_path);
    else if (skipped[0])
        fprintf(stderr, "maskvim: warning: --resume auto found no checkpoint in %s, so this run starts from "
                "iteration 0; passed over: %s\n", t->cfg->run.work_dir, skipped);
    return 0;
}

// Rank 0: the checkpoint at t->resume_path, if the configuration allows resuming from it.
static int load_checkpoint(trainer *t) {
    const mv_config *cfg = t->cfg;
    const char *path = t->resume_path;
    mv_config *saved = mv_calloc(1, sizeof *saved);
    mv_train_state st;
    char why[1024] = "";
    int rc = checkpoint_read_meta(path, &st, saved);
    int ok = rc < 0 ? -1 : checkpoint_resume_check(&st, saved, cfg, t->comm->world, why, sizeof why);
    if (rc == 0 && ok < 0) rc = mv_fail("cannot resume from %s: %s", path, why);
    if (rc == 0 && ok > 0) fprintf(stderr, "maskvim: resuming from %s with differences: %s\n", path, why);
    // The saved best value (which best.h5 must beat) was measured by the checkpoint's selection
    // setting: with another one, the two numbers are not comparable. Domains compare by the
    // data.val entry they resolve to ("" is the first).
    const mv_source *sel_then = config_find_val(saved, saved->run.select_domain);
    const mv_source *sel_now = config_find_val(cfg, cfg->run.select_domain);
    const char *dom_then = sel_then ? sel_then->name : saved->run.select_domain;
    const char *dom_now = sel_now ? sel_now->name : cfg->run.select_domain;
    if (rc == 0 && st.best_step >= 0 &&
        (saved->run.select_metric != cfg->run.select_metric || strcmp(dom_then, dom_now)))
        fprintf(stderr, "maskvim: warning: run.select_metric/run.select_domain changed since %s was saved (%s on "
                        "%s then, %s on %s now): its best value %s = %.2f (step %lld) was measured with the "
                        "old setting, and best.h5 is replaced only by a value above it\n", path,
                metrics_name(saved->run.select_metric), dom_then, metrics_name(cfg->run.select_metric), dom_now,
                st.best_name, st.best_value, (long long)st.best_step);
    if (rc == 0) rc = checkpoint_load(path, &t->model.params, &t->opt, &t->st, NULL);
    free(saved);
    return rc;
}

// Every rank: the run's starting point. Rank 0 alone reads it, as it alone writes checkpoints
// (run.work_dir need not be on a filesystem every host sees): a checkpoint to resume (then
// *resumed and *cursor, where the loader continues), else run.init_weights for a new run, else
// the seeded initialisation already in place; then every rank takes rank 0's state (moments,
// step and training state of a resume; parameters and buffers always).
int train_load_start(trainer *t, mv_loader_cursor *cursor, bool *resumed) {
    const mv_config *cfg = t->cfg;
    int32_t verdict = 0;   // rank 0's: 1 resumed, 0 fresh start, -1 failed
    if (t->comm->rank == 0) {
        if (find_resume(t) < 0) verdict = -1;
        else if (t->resume_path[0]) verdict = load_checkpoint(t) < 0 ? -1 : 1;
        else if (cfg->run.init_weights[0]) {
            // A new run starts from run.init_weights; a resumed one has its own weights.
            char path[1100];
            snprintf(path, sizeof path, "%s/init_weights.txt", cfg->run.work_dir);
            if (weights_load_init(&t->model.params, cfg->run.init_weights, path, stdout) < 0) verdict = -1;
        }
    }
    MV_TRY(comm_bcast_bytes(t->comm, &verdict, sizeof verdict));
    if (verdict < 0)
        return t->comm->rank == 0 ? -1 : mv_fail("rank 0 could not load the run's starting point (its message gives the reason)");
    *resumed = verdict == 1;
    if (*resumed) {
        size_t np = t->model.params.num_params;
        MV_TRY(comm_bcast_bytes(t->comm, &t->st, sizeof t->st));
        MV_TRY(comm_bcast_floats(t->comm, t->opt.m, np));
        MV_TRY(comm_bcast_floats(t->comm, t->opt.v, np));
        MV_TRY(comm_bcast_bytes(t->comm, &t->opt.step, sizeof t->opt.step));
        checkpoint_resume_cursor(cursor, &t->st, cfg->data.batch_per_rank * t->comm->world);
        t->st.world = t->comm->world;
        t->st.batch_per_rank = cfg->data.batch_per_rank;
    }
    MV_TRY(comm_bcast_floats(t->comm, t->model.params.params, t->model.params.num_params));
    return comm_bcast_floats(t->comm, t->model.params.buffers, t->model.params.num_buffers);
}

// Rank 0, once the starting point is settled (the loader took its cursor): config.yaml
// describes the run (a resume that is refused, another model.* or data the loader cursor does
// not fit, must leave the run's own configuration in place, not the one that was refused; so
// must a resume with nothing to train: the run never trained with its values), best.h5 is the
// checkpoint the best bookkeeping names, and `latest` names the checkpoint the run continues
// from. The log is trimmed to that checkpoint's iteration; `latest` must say the same, or a
// crash before this run's first checkpoint makes `--resume auto` continue from a later
// checkpoint of the course this resume left (a rewind: the log then lacks the iterations
// between) or, for a checkpoint from another folder, start over from scratch. best.h5 comes
// first: a crash between the two leaves no checkpoint adopted, and the resume is redone; a
// checkpoint copy that fails (a full disk) takes the best.h5 just copied away again, since no
// resume of this folder would continue that course. "resumed from" is said once the resume
// holds. (A failure here on rank 0 ends every rank: cmd_train aborts the job.)
int train_record_start(trainer *t, bool resumed) {
    if (t->comm->rank != 0) return 0;
    const char *wd = t->cfg->run.work_dir;
    // Nothing to train (an evaluation left pending is still run: it writes a checkpoint).
    if (train_nothing_to_do(t, resumed)) {
        if (resumed) printf("maskvim: resumed from %s at iteration %lld\n", t->resume_path, (long long)t->st.iter);
        return 0;
    }
    char path[1100], adopted[1024];
    snprintf(path, sizeof path, "%s/config.yaml", wd);
    MV_TRY(config_save(path, t->cfg));
    if (!resumed) return 0;
    char best[64 + MV_CKPT_NAME_MAX];
    snprintf(best, sizeof best, "%s = %.2f (step %lld)", t->st.best_name, t->st.best_value, (long long)t->st.best_step);
    char why[2048];
    int rc = checkpoint_adopt_best(wd, t->resume_path, &t->st, adopted, sizeof adopted, why, sizeof why);
    if (rc < 0) return -1;
    // A damaged best.h5 must not pass unnoticed (eval refuses it), also when an intact one replaces it.
    if (rc != MV_BEST_RESET && why[0])
        fprintf(stderr, "maskvim: warning: --resume passed over a damaged best.h5: %s\n", why);
    if (rc == MV_BEST_COPIED)
        printf("maskvim: %s/best.h5 is now %s, the best checkpoint so far (%s)\n", wd, adopted, best);
    if (rc == MV_BEST_RESET)
        fprintf(stderr, "maskvim: warning: %s records a best value %s, but that checkpoint is not to be found (%s): "
                "the record is dropped, and the next evaluation writes %s/best.h5\n", t->resume_path, best, why, wd);
    if (rc == MV_BEST_REMOVED && why[0])
        printf("maskvim: removed %s/best.h5 (damaged, see the warning above); the next evaluation writes it\n", wd);
    else if (rc == MV_BEST_REMOVED)
        printf("maskvim: removed %s/best.h5: it is of another course than %s (which has no evaluation yet); the next "
               "evaluation writes it\n", wd, t->resume_path);
    bool best_copied = rc == MV_BEST_COPIED;
    rc = checkpoint_adopt(wd, t->resume_path, (int64_t)t->opt.step, adopted, sizeof adopted);
    if (rc < 0) {
        if (best_copied) {
            snprintf(path, sizeof path, "%s/best.h5", wd);
            remove(path);
            mv_sync_dir(wd);
            return mv_fail_context("nothing was resumed (the best.h5 copied in for it is removed again)");
        }
        return mv_fail_context("nothing was resumed");
    }
    if (rc > 0) printf("maskvim: %s/latest now names %s, where this run continues from\n", wd, adopted);
    printf("maskvim: resumed from %s at iteration %lld\n", t->resume_path, (long long)t->st.iter);
    return 0;
}

// Every rank: the device that trains and the step context. The GPU engine moves the (initial or
// resumed) state there and, with several ranks, replaces the all-reduce hooks by its NCCL ones;
// on the CPU, several ranks sum their gradients in buckets overlapped with backward.
int train_open_device(trainer *t) {
    const mv_config *cfg = t->cfg;
    int B = cfg->data.batch_per_rank, world = t->comm->world;
    t->ids = mv_malloc(sizeof(int) * B);
    t->ctx = (mv_run_ctx){.training = true, .seed = (uint64_t)cfg->run.seed, .world_size = world, .sample_ids = t->ids};
    if (world > 1) {
        t->ctx.reduce.fn = syncbn_reduce_cb;
        t->ctx.reduce.ctx = t->comm;
        t->ctx.grads_ready = grads_ready;
        t->ctx.grads_ctx = t;
    }
    MV_TRY(engine_open(&t->model, &t->opt, &cfg->run, t->comm, &t->ctx, t->device, sizeof t->device));
    t->engine = t->model.engine;
    MV_TRY(run_plan(&t->model, B, cfg->model.crop_h, cfg->model.crop_w, MV_PLAN_TRAIN));
    if (world <= 1 || t->engine) return 0;
    size_t *cuts = mv_malloc(sizeof(size_t) * t->model.params.count);
    int nc = 0;
    for (int i = 0; i < t->model.params.count; i++)
        if (!t->model.params.items[i].is_buffer) cuts[nc++] = t->model.params.items[i].offset;
    mv_grad_sync_opts go = grad_sync_opts_mib(cfg->run.bucket_mb, cfg->run.first_bucket_mb);
    int rc = grad_sync_init(&t->sync, t->comm, t->model.params.grads, cuts, &go, t->model.params.num_params, nc);
    free(cuts);
    if (rc < 0) return -1;
    t->use_sync = true;
    size_t len = strlen(t->device);
    snprintf(t->device + len, sizeof t->device - len, ", MPI all-reduce in %d buckets", t->sync.num_buckets);
    return 0;
}
