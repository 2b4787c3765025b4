// `maskvim experiment run`: a sweep over the rows of an experiment file (core/experiment.h).
// Each row becomes a run directory OUT/<row>/ holding its resolved config.yaml; rows run one
// after another in this process, or as child processes (`maskvim train`, through a launcher
// command such as mpirun, up to --jobs at once), resume from their newest checkpoint, and
// record OUT/<row>/status.json atomically. A row whose status says finished is skipped, so a
// sweep killed at any moment and started again completes without redoing finished work. A
// lock (flock on OUT/<row>/.lock, held by the sweep) keeps two runners out of the same row.
// Rows of an experiment with `corruptions:` are then evaluated under them (`maskvim eval`).
// With `seeds:` every row runs once per seed: each (row, seed) is one run, in its own directory
// (core/experiment.h: OUT/<row> for the first seed, OUT/<row>@<seed> for the others), and is
// everywhere below what a row is without seeds.
// This file is the sweep and the CLI; a row's state, begin and end are in
// launch/experiment_rows.c, the commands it runs and its child processes in
// launch/experiment_spawn.c.
#include "launch/commands.h"
#include "core/suggest.h"
#include "core/json_write.h"
#include "core/config.h"
#include "core/data_sources.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/experiment.h"
#include "core/stop_signal.h"
#include "core/train.h"
#include "dist/comm.h"
#include "launch/experiment_rows.h"
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim experiment run FILE.yaml [--out DIR] [--only ROW,ROW...] [--dry-run]\n"
        "                                        [--jobs N] [--launcher \"mpirun -np 2 ...\"] [--quiet]\n\n"
        "Runs every row of an experiment file (docs/experiments.md). Row R trains in DIR/R/\n"
        "(default DIR: runs/<experiment name>) with its resolved config.yaml; DIR/R/status.json\n"
        "records its state (running, finished, failed, interrupted) and final mIoU per domain (and\n"
        "per corruption, for files with `corruptions:`). Finished rows are skipped, interrupted\n"
        "rows resume from their last checkpoint. A row is not resumed under other settings than\n"
        "its config.yaml's (the file edited meanwhile), nor past a lowered schedule.max_iters: it\n"
        "fails, saying what to do. A finished row evaluated under other corruptions, severities,\n"
        "channel order or source domain than the file's is evaluated again. A failing row does\n"
        "not stop the others; the exit status is 1 when any row failed.\n\n"
        "With `seeds: [s0, s1, ...]` in the file, every row R runs once per seed with run.seed set:\n"
        "seed s0 in DIR/R (an existing run of R trained with run.seed = s0 is reused), each other\n"
        "seed s in DIR/R@s. Each (row, seed) is one run for --dry-run, --jobs and the status.\n\n"
        "With `global_batch: N` in the file (the paper-scale files: 4), the run and --dry-run warn when\n"
        "the ranks (1 without --launcher, else its -np) x data.batch_per_rank give another batch, and\n"
        "each row is checked against N again from its start record when it ends.\n\n"
        "  --out DIR        where the row directories go\n"
        "  --only ROWS      run only these rows (comma-separated names; a row name selects all of\n"
        "                   its seeds, R@s one seed)\n"
        "  --dry-run        print each row, its overrides and whether it would run, resume, skip or\n"
        "                   evaluate again; warn about a row whose resume would be refused (its\n"
        "                   settings changed since it started) or that finished with other settings\n"
        "  --jobs N         run up to N rows at once, each as a child `maskvim train DIR/R/config.yaml\n"
        "                   --resume auto --quiet` writing DIR/R/train.log; each child gets\n"
        "                   OMP_NUM_THREADS = max(1, CPUs / N) unless OMP_NUM_THREADS is set\n"
        "  --launcher CMD   run each row as `CMD maskvim train DIR/R/config.yaml --resume auto`\n"
        "                   through /bin/sh (e.g. \"mpirun -np 2 --hostfile hosts\"), with --quiet\n"
        "                   added under --quiet or --jobs N > 1\n"
        "  --quiet          no progress bars\n\n"
        "SIGINT, SIGTERM, SIGHUP or SIGUSR1 stop the sweep: each row in training checkpoints its\n"
        "current step and is marked interrupted (the next sweep resumes it); the exit status is\n"
        "then 128 + the signal.\n");
}

// OUT/paper.json: the paper's numbers of every row as {"row": {"domain" | "avg": number}}, the
// form `maskvim report RUNS_DIR --paper OUT/paper.json` reads. Written atomically, and only
// when its contents change (a sweep with nothing to do touches no file).
static int write_paper_json(const char *outdir, const mv_experiment *exp) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) return mv_fail("open_memstream: %s", strerror(errno));
    fputc('{', m);
    int nr = 0;
    for (int i = 0; i < exp->nrows; i++) {
        const mv_exp_row *r = &exp->rows[i];
        int nc = 0;
        for (int c = 0; c < exp->ncols; c++) {
            if (isnan(r->paper[c])) continue;
            if (nc == 0) {
                fprintf(m, "%s\n  ", nr++ ? "," : "");
                json_write_string(m, r->name);
                fputs(": {", m);
            }
            fprintf(m, "%s", nc++ ? ", " : "");
            json_write_string(m, exp->cols[c].domain);
            fprintf(m, ": %.4g", r->paper[c]);
        }
        if (nc) fputc('}', m);
    }
    fputs(nr ? "\n}\n" : "}\n", m);
    fclose(m);
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/paper.json", outdir);
    FILE *old = fopen(path, "rb");
    if (old) {
        char *prev = mv_malloc(len + 2);
        size_t n = fread(prev, 1, len + 1, old);
        fclose(old);
        bool same = n == len && !memcmp(prev, text, len);
        free(prev);
        if (same) { free(text); return 0; }
    }
    // Two sweeps started at once on one directory each write a temporary of their own.
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) { free(text); return -1; }
    fwrite(text, 1, len, out.f);
    free(text);
    return mv_atomic_commit(&out, true);
}

static bool selected(const char *only, const char *name) {
    if (!only) return true;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncmp(p, name, n)) return true;
        p += k + (e ? 1 : 0);
    }
    return false;
}

// Every name of --only must be a row or a run "row@seed" (a typo should not silently run nothing).
static int check_only(const mv_experiment *exp, const char *only) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", only) >= (int)sizeof buf) return mv_fail("--only: list too long");
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (experiment_find_row(exp, t) || experiment_find_run(exp, t)) continue;
        const char **names = mv_calloc((size_t)exp->nrows + 1, sizeof *names);
        for (int i = 0; i < exp->nrows; i++) names[i] = exp->rows[i].name;
        char hint[MV_PATH_MAX];
        mv_fail("--only: %s has no row '%s'%s (--dry-run lists them)", exp->path, t,
                mv_hint(hint, sizeof hint, t, names, exp->nrows));
        free(names);
        return -1;
    }
    return 0;
}

// A run is selected by its row's name (all seeds) or by its own name (one seed: "row@seed", which
// names the first seed's run "row" too).
static bool run_selected(const char *only, const mv_exp_run *r) {
    char alias[MV_EXP_RUN_NAME_MAX + 16];
    return selected(only, r->row->name) || selected(only, r->name) ||
           (experiment_run_alias(alias, sizeof alias, r) && selected(only, alias));
}

static const char *ACTION_NAMES[] = {"run", "resume", "skip (finished)", "evaluate again"};

static void print_row(const mv_experiment *exp, const mv_exp_run *r, const char *dir, row_action a) {
    char action[64];
    snprintf(action, sizeof action, "%s", ACTION_NAMES[a]);
    if (a == ROW_EVAL) {   // why: its corruptions.json against the file now
        char path[MV_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/corruptions.json", dir);
        snprintf(action, sizeof action, "%s (%s)", ACTION_NAMES[a],
                 experiment_corruptions_what(experiment_corruptions_differ(exp, path)));
    }
    printf("%-24s %-16s %s\n   overrides:", r->name, action, dir);
    for (int i = 0; i < exp->nsets; i++) printf(" %s", exp->sets[i]);
    for (int i = 0; i < r->row->nsets; i++) printf(" %s", r->row->sets[i]);
    if (r->seed_index >= 0) printf(" run.seed=%d", r->seed);
    printf("\n");
}

// The file's global_batch against what the selected runs will train with: ranks (1 without a
// launcher, or --jobs children; what --launcher gives, when it can be told) x each run's
// data.batch_per_rank. A launcher whose rank count cannot be told is checked after each row
// from its start records instead (experiment_rows.c). Warns, naming the remedy.
static void warn_batch(const mv_experiment *exp, const char *only, const char *launcher) {
    if (!exp->global_batch) return;
    int ranks = experiment_launcher_ranks(launcher);
    if (ranks < 0) {
        printf("maskvim experiment: note: %s asks for global_batch %d; how many ranks --launcher \"%s\" starts "
               "cannot be told from it, so each row's start record is checked when the row ends\n", exp->path,
               exp->global_batch, launcher);
        return;
    }
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    int *bpr = mv_calloc((size_t)exp->nruns + 1, sizeof(int));   // per run; 0: selected nowhere or fine
    int nsel = 0;
    for (int i = 0; i < exp->nruns; i++) {
        if (!run_selected(only, &exp->runs[i])) continue;
        nsel++;
        if (experiment_run_config(cfg, exp, &exp->runs[i], NULL) < 0) continue;   // resolved at load: not expected
        if (ranks * cfg->data.batch_per_rank != exp->global_batch) bpr[i] = cfg->data.batch_per_rank;
    }
    mv_clear_error();
    // one line per batch per rank among the runs that miss (rows usually share one)
    for (int i = 0; i < exp->nruns; i++) {
        if (!bpr[i]) continue;
        int b = bpr[i], n = 0;
        char names[256] = "";
        for (int k = i; k < exp->nruns; k++) {
            if (bpr[k] != b) continue;
            size_t l = strlen(names);
            if (n < 3) snprintf(names + l, sizeof names - l, "%s%s", n ? ", " : "", exp->runs[k].name);
            n++;
            if (k > i) bpr[k] = 0;
        }
        char who[320], given[96], fix[128];
        if (n == nsel) snprintf(who, sizeof who, "every row trains");
        else snprintf(who, sizeof who, "%s %s%s train%s", n == 1 ? "row" : "rows", names, n > 3 ? ", ..." : "",
                      n == 1 ? "s" : "");
        if (!launcher) snprintf(given, sizeof given, "no --launcher");
        else snprintf(given, sizeof given, "from --launcher");
        int need = exp->global_batch / b;
        if (need == 1) snprintf(fix, sizeof fix, "run the sweep on one rank (without --launcher)");
        else snprintf(fix, sizeof fix, "run the sweep with --launcher \"mpirun -np %d\"", need);
        printf("maskvim experiment: warning: %s asks for global_batch %d, but %s with %d rank%s (%s) x "
               "data.batch_per_rank %d = %d, not that batch: %s\n", exp->path,
               exp->global_batch, who, ranks, ranks == 1 ? "" : "s", given, b, ranks * b, fix);
    }
    free(bpr);
    free(cfg);
}

// ------------------------------------------------------------------------------------------
// The sweep

typedef struct {
    const mv_experiment *exp;
    const char *outdir, *only, *launcher;
    int jobs;
    bool quiet;
    int nrun, nskip, nfail, nbusy;
} sweep;

// The next selected run from *next on that is not finished; prints the skipped ones.
static const mv_exp_run *next_row(sweep *s, int *next, char *dir) {
    for (; *next < s->exp->nruns; (*next)++) {
        const mv_exp_run *r = &s->exp->runs[*next];
        if (!run_selected(s->only, r)) continue;
        if (snprintf(dir, MV_PATH_MAX, "%s/%s", s->outdir, r->name) >= MV_PATH_MAX) continue;   // checked at start
        row_action a = exp_row_plan(s->exp, r, dir);
        char why[1024];
        if (a == ROW_SKIP) {
            if (exp_config_changed(s->exp, r, dir, why, sizeof why))
                printf("maskvim experiment: warning: row %s finished with another configuration than %s gives now "
                       "(%s; delete %s to run it again)\n", r->name, s->exp->path, why, dir);
            printf("maskvim experiment: row %s: finished, skipped\n", r->name);
            s->nskip++;
            continue;
        }
        (*next)++;
        return r;
    }
    return NULL;
}

static void count_end(sweep *s, int rc) {
    if (rc == ROW_BUSY) {   // not a failure of the row: another sweep is running it
        fprintf(stderr, "maskvim experiment: %s; left to it\n", mv_last_error());
        s->nbusy++;
    } else if (rc < 0) {
        fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
        s->nfail++;
    } else {
        s->nrun++;
    }
}

static int prepare_sources(const mv_config *cfg, mv_comm *comm);

// Rows one after another in this process (one rank). A stop signal (SIGINT, SIGTERM, SIGHUP, SIGUSR1)
// ends the sweep: the training in progress stops after its step with a checkpoint, and the row
// is marked interrupted unless it had already finished. Returns that signal, or 0.
static int sweep_in_process(sweep *s, mv_comm *comm) {
    char dir[MV_PATH_MAX];
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    int sig = 0;
    stop_signal_arm();   // for the whole sweep, so that a request between rows is seen too
    for (int next = 0; !(sig = stop_signal_pending());) {
        const mv_exp_run *r = next_row(s, &next, dir);
        if (!r) break;
        row_job j = {.run = r, .lock = -1};
        snprintf(j.dir, sizeof j.dir, "%s", dir);
        int rc = exp_row_begin(&j, cfg, s->exp, NULL);
        if (rc > 0) { s->nskip++; continue; }
        // A row held by another runner or broken on its own does not stop the others.
        if (rc < 0) { count_end(s, rc); continue; }
        mv_train_opts o = {"auto", 0, s->quiet};
        rc = prepare_sources(cfg, comm);
        if (rc == 0) rc = train_run(cfg, comm, &o, NULL);
        bool evaluated = !s->exp->ncorruptions;
        if (rc == 0 && !evaluated && !stop_signal_pending()) {
            row_cmd c;
            rc = exp_eval_cmd(&c, s->exp, j.dir, j.max_iters);
            if (rc == 0) rc = exp_run_child(&c, NULL, "corruption evaluation", j.lock);
            evaluated = rc == 0;
        }
        if ((sig = stop_signal_pending()) && !(rc == 0 && evaluated)) {
            char msg[64];
            snprintf(msg, sizeof msg, "stopped by signal %d", sig);
            exp_write_status(j.dir, r->name, run_seed(r), s->exp->global_batch, "interrupted", msg, NULL, NULL, 0);
            printf("maskvim experiment: row %s: stopped (signal %d); it resumes when the sweep is run again\n",
                   r->name, sig);
            close(j.lock);
            break;
        }
        count_end(s, exp_row_end(&j, s->exp, rc == 0));
    }
    stop_signal_disarm();
    free(cfg);
    return sig;
}

// Starts the child of job j: training, or (evaluating) the corruption evaluation.
static int start_child(sweep *s, row_job *j, const char *log, int omp) {
    row_cmd c;
    if (j->evaluating) MV_TRY(exp_eval_cmd(&c, s->exp, j->dir, j->max_iters));
    else MV_TRY(exp_train_cmd(&c, j->dir, s->quiet || s->jobs > 1));
    j->pid = exp_spawn(&c, s->launcher, log, omp, j->lock);
    return j->pid > 0 ? 0 : -1;
}

// Writes the row's synthetic data sources (if any are missing) here, before the row trains, so
// that rows run as children find them written. source_resolve serialises the writing between
// processes (a lock file in the cache folder): rows of this sweep (--jobs) and of another sweep
// started together wait for the first writer instead of breaking each other's folders.
static int prepare_sources(const mv_config *cfg, mv_comm *comm) {
    char path[MV_PATH_MAX + 64];
    int rc = 0;   // (a source on disk resolves to its own path: nothing is written for it)
    for (int i = 0; rc == 0 && i < cfg->data.num_train; i++)
        rc = source_resolve(path, sizeof path, &cfg->data.train[i], "train", cfg, comm);
    for (int i = 0; rc == 0 && i < cfg->data.num_val; i++)
        rc = source_resolve(path, sizeof path, &cfg->data.val[i], "val", cfg, comm);
    if (rc < 0 && stop_signal_pending()) return mv_fail("stopped by signal %d", stop_signal_pending());
    return rc;
}

// Rows as child processes, up to s->jobs at once. Returns the stop signal (0 when none).
static int sweep_children(sweep *s, mv_comm *comm) {
    int omp = 0;
    if (s->jobs > 1 && !getenv("OMP_NUM_THREADS")) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        omp = cpus / s->jobs > 1 ? (int)(cpus / s->jobs) : 1;
    }
    stop_signal_arm();
    row_job *jobs = mv_calloc((size_t)s->jobs, sizeof *jobs);
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    char dir[MV_PATH_MAX], log[MV_PATH_MAX + 32];
    int next = 0, running = 0;
    bool more = true;
    while (!stop_signal_pending()) {
        // Fill the free slots.
        for (int k = 0; k < s->jobs && more && !stop_signal_pending(); k++) {
            if (jobs[k].pid) continue;
            const mv_exp_run *r = next_row(s, &next, dir);
            if (!r) { more = false; break; }
            row_job *j = &jobs[k];
            memset(j, 0, sizeof *j);
            j->run = r;
            j->lock = -1;
            snprintf(j->dir, sizeof j->dir, "%s", dir);
            snprintf(log, sizeof log, "%s/train.log", dir);
            int rc = exp_row_begin(j, cfg, s->exp, s->jobs > 1 ? log : NULL);
            if (rc > 0) { s->nskip++; k--; continue; }
            if (rc == 0 && prepare_sources(cfg, comm) < 0) rc = exp_row_end(j, s->exp, false);
            else if (rc == 0 && start_child(s, j, s->jobs > 1 ? log : NULL, omp) < 0) rc = exp_row_end(j, s->exp, false);
            if (rc < 0) { count_end(s, rc); k--; continue; }   // try the next row in this slot
            running++;
        }
        if (running == 0 && !more) break;
        // Reap one finished child, or wait a little.
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) { usleep(50000); continue; }
        row_job *j = NULL;
        for (int k = 0; k < s->jobs; k++) if (jobs[k].pid == pid) j = &jobs[k];
        if (!j) continue;
        snprintf(log, sizeof log, "%s/train.log", j->dir);
        int rc = exp_child_status(st, j->evaluating ? "corruption evaluation" : s->launcher ? "launcher command" : "training");
        if (rc < 0 && s->jobs > 1) {
            char msg[MV_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", mv_last_error());
            mv_fail("%s (output in %s)", msg, log);
        }
        if (rc == 0 && !j->evaluating && s->exp->ncorruptions) {
            j->evaluating = true;
            if (start_child(s, j, s->jobs > 1 ? log : NULL, omp) == 0) continue;
            rc = -1;
        }
        count_end(s, exp_row_end(j, s->exp, rc == 0));
        running--;
    }
    int sig = stop_signal_pending();
    if (sig) {
        // Stop every child at once and leave its row resumable (it continues from its last checkpoint).
        pid_t *pids = mv_calloc((size_t)s->jobs, sizeof(pid_t));
        for (int k = 0; k < s->jobs; k++) pids[k] = jobs[k].pid;
        exp_stop_children(pids, s->jobs);
        free(pids);
        for (int k = 0; k < s->jobs; k++) {
            row_job *j = &jobs[k];
            if (!j->pid) continue;
            char msg[64];
            snprintf(msg, sizeof msg, "stopped by signal %d", sig);
            exp_write_status(j->dir, j->run->name, run_seed(j->run), s->exp->global_batch, "interrupted", msg, NULL,
                             NULL, 0);
            printf("maskvim experiment: row %s: stopped (signal %d); it resumes when the sweep is run again\n",
                   j->run->name, sig);
            close(j->lock);
            j->pid = 0;
        }
    }
    stop_signal_disarm();
    free(cfg);
    free(jobs);
    return sig;
}

static int experiment_run(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *only = NULL, *launcher = NULL;
    bool dry = false, quiet = false;
    int njobs = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--dry-run")) { dry = true; continue; }
        if (!strcmp(a, "--quiet")) { quiet = true; continue; }
        if (a[0] != '-') {
            if (file) { fprintf(stderr, "maskvim experiment run: more than one experiment file\n"); return 2; }
            file = a;
            continue;
        }
        if (strcmp(a, "--out") && strcmp(a, "--only") && strcmp(a, "--launcher") && strcmp(a, "--jobs")) {
            cli_unknown_option("experiment run", a, usage);
            return 2;
        }
        // An empty --out would put the rows at the file system's root; a following option
        // (`--out --dry-run`) is a forgotten value, not a directory to train in.
        if (!v || !v[0] || !strncmp(v, "--", 2)) {
            fprintf(stderr, "maskvim experiment run: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--only")) only = v;
        else if (!strcmp(a, "--launcher")) launcher = v;
        else if (!strcmp(a, "--jobs")) {
            long n;
            if (cli_parse_long(v, 1, 64, &n) < 0) { fprintf(stderr, "maskvim experiment run: --jobs '%s': expected 1..64\n", v); return 2; }
            njobs = (int)n;
        }
        i++;
    }
    if (!file) { fprintf(stderr, "maskvim experiment run: no experiment file given\n\n"); usage(stderr); return 2; }
    // As `maskvim train`: stop signals are requests from here, before the experiment file is read
    // and MPI_Init, not only once the rows start (the sweep functions arm again, nested, and
    // their disarm ends this one): a request that comes now starts no row, and the sweep exits
    // 128 + the signal.
    stop_signal_arm_startup();
    mv_experiment exp;
    bool loaded = experiment_load(&exp, file) == 0;
    if (!loaded || (only && check_only(&exp, only) < 0)) {
        stop_signal_end_startup();
        fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
        if (exp.rows) experiment_free(&exp);
        return loaded ? 2 : 1;   // a name --only gives that is no row: a usage error, as a bad option is
    }
    int twin_a, twin_b;
    if (experiment_twin_rows(&exp, &twin_a, &twin_b) == 1)   // a wasted run, and a table with a duplicate row
        printf("maskvim experiment: warning: rows %s (line %d) and %s (line %d) train alike: they differ only in "
               "settings that do not change the results (run.log_every, run.eval_every, run.ckpt_every, ...) or "
               "not at all\n", exp.rows[twin_a].name, exp.rows[twin_a].line, exp.rows[twin_b].name,
               exp.rows[twin_b].line);
    if (exp.source_warning[0]) printf("maskvim experiment: warning: %s\n", exp.source_warning);
    mv_clear_error();
    warn_batch(&exp, only, launcher);
    char outdir[MV_PATH_MAX];
    snprintf(outdir, sizeof outdir, "%s", out ? out : "runs/");
    if (!out) strncat(outdir, exp.name, sizeof outdir - strlen(outdir) - 1);
    for (size_t l = strlen(outdir); l > 1 && outdir[l - 1] == '/'; l--) outdir[l - 1] = '\0';   // --out DIR/: DIR/row
    if (dry) {
        for (int i = 0; i < exp.nruns; i++) {
            const mv_exp_run *r = &exp.runs[i];
            if (!run_selected(only, r)) continue;
            char dir[MV_PATH_MAX];
            if (snprintf(dir, sizeof dir, "%s/%s", outdir, r->name) >= (int)sizeof dir) {
                fprintf(stderr, "maskvim experiment: %s/%s: path too long\n", outdir, r->name);
                experiment_free(&exp);
                stop_signal_end_startup();
                return 1;
            }
            row_action a = exp_row_plan(&exp, r, dir);
            char why[1024];
            if (a == ROW_SKIP && exp_config_changed(&exp, r, dir, why, sizeof why))
                printf("maskvim experiment: warning: row %s finished with another configuration than %s gives now "
                       "(%s; delete %s to run it again)\n", r->name, exp.path, why, dir);
            // what the run would refuse (the row then fails, its files left as they are)
            if ((a == ROW_RESUME || a == ROW_EVAL) && exp_row_check_resume(&exp, r, dir) < 0)
                printf("maskvim experiment: warning: row %s will fail: %s\n", r->name, mv_last_error());
            mv_clear_error();
            print_row(&exp, r, dir, a);
        }
        experiment_free(&exp);
        stop_signal_end_startup();
        int sig = stop_signal_pending();   // nothing to stop, but the caller asked for the end
        return sig ? 128 + sig : 0;
    }
    bool in_process = !launcher && njobs == 1;
    mv_comm comm = {0};
    {
        signal(SIGPIPE, SIG_IGN);   // as `maskvim train`: a gone `| tee` must not kill a stopping row
        if (comm_init(&comm, &argc, &argv) < 0) {
            stop_signal_end_startup();
            fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
            experiment_free(&exp);
            return 1;
        }
        if (comm.world > 1) {   // rows run one per process here; ranks go through --launcher
            stop_signal_end_startup();
            fprintf(stderr, "maskvim experiment: run the sweep in one process and give the ranks with "
                            "--launcher \"mpirun -np N\" (this process is one of %d ranks)\n", comm.world);
            comm_finalize(&comm);
            experiment_free(&exp);
            return 2;
        }
    }
    if (strlen(outdir) + MV_EXP_RUN_NAME_MAX + 2 > MV_PATH_MAX || mv_mkdir_p(outdir) < 0 || write_paper_json(outdir, &exp) < 0) {
        stop_signal_end_startup();
        if (strlen(outdir) + MV_EXP_RUN_NAME_MAX + 2 > MV_PATH_MAX) mv_fail("%s: path too long", outdir);
        fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
        comm_finalize(&comm);
        experiment_free(&exp);
        return 1;
    }
    sweep s = {.exp = &exp, .outdir = outdir, .only = only, .launcher = launcher, .jobs = njobs, .quiet = quiet};
    int sig = 0;
    if (in_process) sig = sweep_in_process(&s, &comm);
    else sig = sweep_children(&s, &comm);
    stop_signal_end_startup();   // (the sweep's disarm ended it already)
    char busy[64] = "";
    if (s.nbusy) snprintf(busy, sizeof busy, ", %d being run by another process", s.nbusy);
    printf("maskvim experiment: %s: %d row%s run, %d skipped (finished), %d failed%s%s; results in %s\n", exp.name,
           s.nrun, s.nrun == 1 ? "" : "s", s.nskip, s.nfail, busy, sig ? ", stopped by a signal" : "", outdir);
    comm_finalize(&comm);
    experiment_free(&exp);
    if (sig) return 128 + sig;
    return s.nfail || s.nbusy ? 1 : 0;   // busy rows are not done either: not a clean finish
}

int cmd_experiment(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "run")) return experiment_run(argc - 1, argv + 1);
    static const char *const subcommands[] = {"run"};
    char hint[64];
    fprintf(stderr, "maskvim experiment: unknown subcommand '%s'%s (run)\n", argv[1],
            mv_hint(hint, sizeof hint, argv[1], subcommands, 1));
    return 2;
}
