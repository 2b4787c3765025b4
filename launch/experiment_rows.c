// One row of an experiment sweep on disk: its state (OUT/<row>/status.json, the final mIoU
// per domain from its metrics.jsonl, the file's global_batch; the batch it trained with is
// checked against that when it ends), its lock (flock on OUT/<row>/.lock, held by the sweep)
// and its begin and end around the training (launch/cmd_experiment.c runs the sweep).
#include "launch/experiment_rows.h"
#include "core/clock.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json_read.h"
#include "core/json_write.h"
#include "core/metrics.h"
#include "core/report.h"

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// The "state" of DIR/status.json into state[size] ("" when there is none). The file is parsed
// as JSON, not searched for the text: a damaged one (cut short, edited by hand) that still held
// '"state": "finished"' was taken as finished, so the row was skipped for good while the report
// refused the file. Such a file counts as no state (the row runs or resumes, and its status is
// written again), with a warning.
// Warns about status file `path` once: a row's plan is made when the sweep reaches it and again
// under its lock, and the warning came twice.
static void warn_status(const char *path, const char *what) {
    static char last[MV_PATH_MAX + 32];
    if (!strcmp(last, path)) return;
    snprintf(last, sizeof last, "%s", path);
    fprintf(stderr, "maskvim experiment: warning: %s: %s; the row is not taken as finished\n", path, what);
}

static void read_state(char *state, size_t size, const char *dir) {
    char path[MV_PATH_MAX + 32];
    state[0] = 0;
    snprintf(path, sizeof path, "%s/status.json", dir);
    char *buf = mv_read_text_file(path, true);
    if (!buf) {   // none yet (or unreadable: the sweep then runs the row, as for none)
        mv_clear_error();
        return;
    }
    mv_json st;
    if (mv_json_parse(&st, buf) < 0) {
        char what[MV_ERRMSG_MAX + 16];
        snprintf(what, sizeof what, "damaged (%s)", mv_last_error());
        warn_status(path, what);
        mv_clear_error();
        free(buf);
        return;
    }
    free(buf);
    const mv_json *v = mv_json_get(&st, "state");
    if (v && v->kind == MV_JSON_STR) snprintf(state, size, "%s", v->str);
    else
        warn_status(path, "no \"state\"");
    mv_json_free(&st);
}

// Whether the saved DIR/config.yaml of run r trains otherwise than the file gives now: its
// settings that change the results differ (those the report compares; bookkeeping such as
// run.log_every or run.device does not count). 1 with the first difference in why[n], 0 when
// not (or there is no config.yaml to compare).
static int scored_difference(const mv_experiment *exp, const mv_exp_run *r, const char *dir, char *why, size_t n) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if (!file_exists(path)) return 0;
    mv_config *now = mv_calloc(1, sizeof *now), *saved = mv_calloc(1, sizeof *saved);
    int differs = 0;
    if (experiment_run_config(now, exp, r, dir) == 0 && config_load(saved, path, 0, NULL) == 0) {
        experiment_copy_unscored(now, saved);
        char key[256], va[256], vb[256];
        if (config_first_difference(saved, now, key, va, vb, sizeof key)) {
            snprintf(why, n, "%.200s: %.200s in its config.yaml, %.200s in %.200s now", key, va, vb, exp->path);
            differs = 1;
        }
    }
    mv_clear_error();
    free(now);
    free(saved);
    return differs;
}

row_action exp_row_plan(const mv_experiment *exp, const mv_exp_run *r, const char *dir) {
    char state[32], path[MV_PATH_MAX + 32], why[1024];
    read_state(state, sizeof state, dir);
    snprintf(path, sizeof path, "%s/corruptions.json", dir);
    if (!strcmp(state, "finished")) {
        // Its corruption numbers are those of other corruptions, severities or channel order, or
        // of another domain than the file's `source:`: evaluate it again (the checkpoint is
        // there), as after a failed evaluation; not when it trained otherwise (skipped with a
        // warning: its evaluation would not be the file's row either).
        if (exp->ncorruptions && !experiment_corruptions_match(exp, path) && !scored_difference(exp, r, dir, why, sizeof why))
            return ROW_EVAL;
        return ROW_SKIP;
    }
    snprintf(path, sizeof path, "%s/latest", dir);
    return file_exists(path) ? ROW_RESUME : ROW_RUN;
}

// The iteration of the checkpoint DIR/latest names (-1: none, or not an iter_<N>.h5).
static long latest_iter(const char *dir) {
    char name[256];
    checkpoint_latest_name(dir, name, sizeof name);
    return (long)checkpoint_iter_step(name);
}

int exp_row_check_resume(const mv_experiment *exp, const mv_exp_run *r, const char *dir) {
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    int rc = experiment_run_config(cfg, exp, r, dir);
    long it = latest_iter(dir), max = cfg->schedule.max_iters;
    free(cfg);
    MV_TRY(rc);
    // Training would say there is nothing to train and exit 0, leaving the row at iteration `it`
    // with an evaluation from before it: never the row the file describes.
    if (it > max) {
        // The value it trained with (its config.yaml's): any other one is refused below.
        char path[MV_PATH_MAX + 32], back[64];
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        mv_config *saved = mv_calloc(1, sizeof *saved);
        if (config_load(saved, path, 0, NULL) == 0 && saved->schedule.max_iters >= it)
            snprintf(back, sizeof back, "%ld (its config.yaml's)", (long)saved->schedule.max_iters);
        else
            snprintf(back, sizeof back, "%ld or more", it);
        mv_clear_error();
        free(saved);
        return mv_fail("its checkpoint (%s/latest: iter_%ld.h5) is past schedule.max_iters %ld of %s: set "
                       "schedule.max_iters back to %s, or delete %s to train the row again", dir, it, max, exp->path,
                       back, dir);
    }
    char why[1024];
    // Resumed, it would continue under the new settings: its numbers would be those of neither.
    if (scored_difference(exp, r, dir, why, sizeof why))
        return mv_fail("it was trained up to its checkpoint with another configuration than %s gives now (%s): the "
                       "sweep does not continue a row under other settings; restore them in the file, or delete "
                       "%s to train the row again", exp->path, why, dir);
    return 0;
}

// The last evaluation per domain of DIR/metrics.jsonl (the run's final evaluation, since
// train_run always evaluates at its last iteration), read as `maskvim report` reads it: an
// undefined mIoU (a split without a labelled pixel, `null`) stays NaN. *iter: the iteration of
// the last one. Returns the number of domains found (0 without a readable log).
static int final_metrics(char (*domains)[MV_NAME_MAX], double *miou, int max, long *iter, const char *dir) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    mv_report_run run = {0};
    int n = 0;
    *iter = -1;
    if (mv_report_run_load_metrics(&run, path) == 0)
        for (; n < run.ndomains && n < max; n++) {
            snprintf(domains[n], MV_NAME_MAX, "%.*s", MV_NAME_MAX - 1, run.domains[n].name);   // names are checked shorter
            miou[n] = run.domains[n].miou;
            if (run.domains[n].iter > *iter) *iter = run.domains[n].iter;
        }
    mv_clear_error();
    mv_report_run_free(&run);
    return n;
}

int exp_write_status(const char *dir, const char *row, int seed, int global_batch, const char *state,
                     const char *error, const char (*extra_names)[MV_NAME_MAX], const double *extra, int nextra) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/status.json", dir);
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    FILE *f = out.f;
    fprintf(f, "{\"row\": ");
    json_write_string(f, row);
    if (seed >= 0) fprintf(f, ", \"seed\": %d", seed);
    if (global_batch > 0) fprintf(f, ", \"global_batch\": %d", global_batch);
    fprintf(f, ", \"state\": \"%s\"", state);
    char domains[MV_MAX_SOURCES][MV_NAME_MAX];
    double miou[MV_MAX_SOURCES];
    long iter = -1;
    int n = final_metrics(domains, miou, MV_MAX_SOURCES, &iter, dir);
    if (!strcmp(state, "finished")) {
        fprintf(f, ", \"iter\": %ld, \"final\": {", iter);
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s", i ? ", " : "");
            json_write_string(f, domains[i]);
            fputs(": ", f);
            json_write_number(f, miou[i]);   // in full: the report rounds it once, as eval does
        }
        for (int i = 0; i < nextra; i++) {
            fprintf(f, "%s", n + i ? ", " : "");
            json_write_string(f, extra_names[i]);
            fputs(": ", f);
            json_write_number(f, extra[i]);
        }
        fprintf(f, "}");
    }
    if (error) {
        fprintf(f, ", \"error\": ");
        json_write_string(f, error);
    }
    fprintf(f, "}\n");
    return mv_atomic_commit(&out, true);
}

// Takes DIR/.lock without waiting; returns the descriptor, ROW_BUSY (message set) when another
// process holds it, or -1 with a message. The descriptor is close-on-exec: only the row's own
// child inherits it (spawn), so that the row stays locked while anything it started still runs.
static int lock_row(const char *dir, const char *row) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return mv_fail("%s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            mv_fail("row %s is being run by another process (%s)", row, path);
            return ROW_BUSY;
        }
        return mv_fail("%s: cannot lock: %s", path, strerror(e));
    }
    return fd;
}

bool exp_config_changed(const mv_experiment *exp, const mv_exp_run *r, const char *dir, char *why, size_t n) {
    why[0] = '\0';
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if (!file_exists(path)) return false;
    mv_config *now = mv_calloc(1, sizeof *now), *saved = mv_calloc(1, sizeof *saved);
    bool loaded = experiment_run_config(now, exp, r, dir) == 0 && config_load(saved, path, 0, NULL) == 0;
    if (loaded && r->seed_index >= 0 && saved->run.seed != now->run.seed)
        printf("maskvim experiment: warning: %s was trained with run.seed=%d, not seed %d of `seeds:`\n", dir,
               saved->run.seed, r->seed);
    mv_clear_error();
    free(now);
    free(saved);
    // Only what changes the results counts (as in the report's stale mark): the sweep folder
    // moved, --out spelled otherwise, or run.log_every edited leave a finished row as it is.
    return loaded && scored_difference(exp, r, dir, why, n) == 1;
}

// ------------------------------------------------------------------------------------------
// One row's begin and end (what they return: experiment_rows.h)

int exp_row_begin(row_job *j, mv_config *cfg, const mv_experiment *exp, const char *log) {
    MV_TRY(mv_mkdir_p(j->dir));
    j->lock = lock_row(j->dir, j->run->name);
    if (j->lock < 0) return j->lock;
    row_action a = exp_row_plan(exp, j->run, j->dir);   // again under the lock: another runner may have finished it
    if (a == ROW_SKIP) {
        printf("maskvim experiment: row %s: finished, skipped\n", j->run->name);
        close(j->lock);
        return 1;
    }
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", j->dir);
    int rc = experiment_run_config(cfg, exp, j->run, j->dir);
    // A resume the sweep refuses leaves config.yaml as the row trained with; the row is failed.
    if (rc == 0 && a != ROW_RUN && exp_row_check_resume(exp, j->run, j->dir) < 0) {
        char msg[MV_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", mv_last_error());
        exp_write_status(j->dir, j->run->name, run_seed(j->run), exp->global_batch, "failed", msg, NULL, NULL, 0);
        close(j->lock);
        return mv_fail("row %s: %s", j->run->name, msg);
    }
    // Settings that do not change the results (run.log_every, run.device, ...) are taken as the
    // file gives them now; the child reads them from config.yaml. (The ones that do are equal here.)
    if (rc == 0) rc = config_save(path, cfg);
    if (rc == 0)
        rc = exp_write_status(j->dir, j->run->name, run_seed(j->run), exp->global_batch, "running", NULL, NULL, NULL, 0);
    if (rc < 0) {
        close(j->lock);
        return mv_fail_context("row %s", j->run->name);
    }
    if (a == ROW_EVAL) {
        snprintf(path, sizeof path, "%s/corruptions.json", j->dir);
        int differ = experiment_corruptions_differ(exp, path);
        printf("maskvim experiment: row %s: finished, but %s/corruptions.json ", j->run->name, j->dir);
        if (differ & MV_CORR_DIFF_CORRUPTIONS) printf("holds other corruptions, severities or channel order");
        if (differ == (MV_CORR_DIFF_CORRUPTIONS | MV_CORR_DIFF_SOURCE)) printf(", and is of another domain,");
        else if (differ & MV_CORR_DIFF_SOURCE) printf("is of another domain");
        printf(" than %s asks for", exp->path);
        if (differ & MV_CORR_DIFF_SOURCE) printf(" (source: %s)", exp->source);
        printf(": evaluating it again\n");
    }
    j->max_iters = cfg->schedule.max_iters;
    j->t0 = mv_now_s();
    printf("maskvim experiment: row %s: %s in %s", j->run->name, a == ROW_RUN ? "starting" : "resuming", j->dir);
    if (log) printf(" (output in %s)", log);
    printf("\n");
    fflush(stdout);
    return 0;
}

// A row's training that exited 0 must have reached schedule.max_iters: the last iteration
// always writes a checkpoint, which `latest` names. A launcher that exits 0 without training
// (a wrapper that swallows the failure, a typo such as --launcher echo) was otherwise recorded
// as finished with no results, and every later sweep skipped the row.
static int check_trained(const row_job *j) {
    long it = latest_iter(j->dir);
    if (it == j->max_iters) return 0;
    if (it < 0)
        return mv_fail("the training exited with status 0 but left no checkpoint (%s/latest missing or unreadable): "
                       "it did not train (check the launcher command)", j->dir);
    // Past the end: schedule.max_iters was lowered below a checkpoint (exp_row_check_resume
    // refuses that before training; this holds for a checkpoint that came meanwhile).
    if (it > j->max_iters)
        return mv_fail("its checkpoint (%s/latest: iter_%ld.h5) is past schedule.max_iters %ld: set schedule.max_iters "
                       "back to %ld or more, or delete %s to train the row again", j->dir, it, j->max_iters, it, j->dir);
    return mv_fail("the training exited with status 0 at iteration %ld of %ld (%s/latest): it did not finish (check "
                   "the launcher command)", it, j->max_iters, j->dir);
}

// After a row trains: its start records (ranks x batch_per_rank) against the file's global_batch.
// The launcher string does not always tell how many ranks it starts; what the training
// recorded does, so a row trained at another batch is named here as well as in the report.
static void check_batch(const row_job *j, const mv_experiment *exp) {
    if (!exp->global_batch) return;
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", j->dir);
    mv_report_run run = {0};
    if (mv_report_run_load_metrics(&run, path) == 0 && mv_report_run_check_batch(&run, exp->global_batch)) {
        char text[256];
        mv_report_batch_text(text, sizeof text, &run);
        const mv_report_batch *b = &run.batches[run.nbatches - 1];
        int need = exp->global_batch / b->batch_per_rank;
        char how[64] = "one rank (no --launcher)";
        if (need > 1) snprintf(how, sizeof how, "%d ranks (--launcher \"mpirun -np %d\")", need, need);
        printf("maskvim experiment: warning: row %s trained with global batch %s, but %s asks for global_batch %d: "
               "its numbers are not at that batch (the report marks it); delete %s and run it again on %s\n",
               j->run->name, text, exp->path, exp->global_batch, j->dir, how);
        fflush(stdout);
    }
    mv_clear_error();
    mv_report_run_free(&run);
}

int exp_row_end(row_job *j, const mv_experiment *exp, bool ok) {
    char names[MV_EXP_MAX_CORR][MV_NAME_MAX];
    double corr[MV_EXP_MAX_CORR];
    int rc = ok ? 0 : -1;
    if (rc == 0) rc = check_trained(j);
    if (rc == 0 && exp->ncorruptions) {
        char path[MV_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/corruptions.json", j->dir);
        rc = experiment_corruption_results(names, corr, exp, path);
    }
    if (rc == 0)
        rc = exp_write_status(j->dir, j->run->name, run_seed(j->run), exp->global_batch, "finished", NULL, names, corr,
                              exp->ncorruptions);
    if (rc < 0) {
        char msg[MV_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", mv_last_error());
        exp_write_status(j->dir, j->run->name, run_seed(j->run), exp->global_batch, "failed", msg, NULL, NULL, 0);
        mv_fail("row %s: %s", j->run->name, msg);
    } else {
        // "row R: finished in 12.3 s: clear 21.30, fog 10.20 | mean over targets 10.20"; '-' for
        // an undefined mIoU (a split without a labelled pixel), and then for the mean, as the
        // training's summary and the report (whose Avg is this mean) give it.
        char domains[MV_MAX_SOURCES][MV_NAME_MAX], cell[32];
        double miou[MV_MAX_SOURCES];
        long iter = -1;
        int n = final_metrics(domains, miou, MV_MAX_SOURCES, &iter, j->dir);
        printf("maskvim experiment: row %s: finished in %.1f s:", j->run->name, mv_now_s() - j->t0);
        for (int i = 0; i < n; i++) printf("%s %s %s", i ? "," : "", domains[i], metrics_cell(cell, sizeof cell, miou[i], 0));
        double sum = 0;
        for (int t = 0; t < exp->ntargets; t++) {
            double v = NAN;
            for (int i = 0; i < n; i++) if (!strcmp(domains[i], exp->targets[t])) v = miou[i];
            for (int i = 0; i < exp->ncorruptions; i++) if (!strcmp(names[i], exp->targets[t])) v = corr[i];
            sum += v;   // NaN (undefined, or not evaluated) makes the mean undefined
        }
        // Each corruption's mIoU is its mean over the severities; the targets may be corruptions,
        // domains or both, so their mean is printed apart, under its own name.
        if (exp->ncorruptions) {
            printf(" | mean over %d severit%s:", exp->nseverities, exp->nseverities == 1 ? "y" : "ies");
            for (int i = 0; i < exp->ncorruptions; i++)
                printf("%s %s %s", i ? "," : "", names[i], metrics_cell(cell, sizeof cell, corr[i], 0));
        }
        if (exp->ntargets) printf(" | mean over targets %s", metrics_cell(cell, sizeof cell, sum / exp->ntargets, 0));
        printf("\n");
        fflush(stdout);
        check_batch(j, exp);
    }
    close(j->lock);
    j->lock = -1;
    j->pid = 0;
    return rc;
}
