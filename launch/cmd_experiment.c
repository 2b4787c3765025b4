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
#include "launch/commands.h"
#include "core/suggest.h"
#include "core/json_write.h"
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/data_sources.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/experiment.h"
#include "core/stop_signal.h"
#include "core/train.h"
#include "dist/comm.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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
        "rows resume from their last checkpoint. A failing row does not stop the others; the exit\n"
        "status is 1 when any row failed.\n\n"
        "With `seeds: [s0, s1, ...]` in the file, every row R runs once per seed with run.seed set:\n"
        "seed s0 in DIR/R (an existing run of R trained with run.seed = s0 is reused), each other\n"
        "seed s in DIR/R@s. Each (row, seed) is one run for --dry-run, --jobs and the status.\n\n"
        "  --out DIR        where the row directories go\n"
        "  --only ROWS      run only these rows (comma-separated names; a row name selects all of\n"
        "                   its seeds, R@s one seed)\n"
        "  --dry-run        print each row, its overrides and whether it would run, resume or skip\n"
        "  --jobs N         run up to N rows at once, each as a child `maskvim train DIR/R/config.yaml\n"
        "                   --resume auto` writing DIR/R/train.log; each child gets OMP_NUM_THREADS =\n"
        "                   max(1, CPUs / N) unless OMP_NUM_THREADS is set. SIGINT/SIGTERM stop the\n"
        "                   children and leave their rows resumable\n"
        "  --launcher CMD   run each row as `CMD maskvim train DIR/R/config.yaml --resume auto`\n"
        "                   through /bin/sh (e.g. \"mpirun -np 2 --hostfile hosts\")\n"
        "  --quiet          no progress bars\n");
}

typedef enum { ROW_RUN, ROW_RESUME, ROW_SKIP } row_action;

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// The "state" of DIR/status.json into state[size] ("" when there is none).
static void read_state(char *state, size_t size, const char *dir) {
    char path[MV_PATH_MAX + 32], buf[4096];
    state[0] = 0;
    snprintf(path, sizeof path, "%s/status.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *s = strstr(buf, "\"state\": \"");
    if (!s) return;
    s += strlen("\"state\": \"");
    size_t k = 0;
    while (s[k] && s[k] != '"' && k + 1 < size) { state[k] = s[k]; k++; }
    state[k] = 0;
}

static row_action row_plan(const char *dir) {
    char state[32], path[MV_PATH_MAX + 32];
    read_state(state, sizeof state, dir);
    if (!strcmp(state, "finished")) return ROW_SKIP;
    snprintf(path, sizeof path, "%s/latest", dir);
    return file_exists(path) ? ROW_RESUME : ROW_RUN;
}

// The last eval record per domain of DIR/metrics.jsonl (the run's final evaluation, since
// train_run always evaluates at its last iteration). Returns the number of domains found.
static int final_metrics(char (*domains)[MV_NAME_MAX], double *miou, int max, long *iter, const char *dir) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    *iter = -1;
    while (getline(&line, &cap, f) > 0) {
        if (!strstr(line, "\"type\": \"eval\"")) continue;
        const char *d = strstr(line, "\"domain\": \""), *m = strstr(line, "\"mIoU\": "), *it = strstr(line, "\"iter\": ");
        if (!d || !m) continue;
        d += strlen("\"domain\": \"");
        char name[MV_NAME_MAX];
        size_t k = 0;
        while (d[k] && d[k] != '"' && k + 1 < sizeof name) { name[k] = d[k]; k++; }
        name[k] = 0;
        double v = strtod(m + strlen("\"mIoU\": "), NULL);
        if (it) *iter = strtol(it + strlen("\"iter\": "), NULL, 10);
        int j = 0;
        while (j < n && strcmp(domains[j], name)) j++;
        if (j == n) {
            if (n == max) continue;
            snprintf(domains[n++], MV_NAME_MAX, "%s", name);
        }
        miou[j] = v;
    }
    free(line);
    fclose(f);
    return n;
}

// DIR/status.json, written to a temporary file and renamed so readers never see half of it.
// `extra` (names, values, n) are more entries of "final": the corruptions of a Table 2 row.
// seed >= 0: the run's seed (experiments with `seeds:`), recorded as "seed".
static int write_status(const char *dir, const char *row, int seed, const char *state, const char *error,
                        const char (*extra_names)[MV_NAME_MAX], const double *extra, int nextra) {
    char path[MV_PATH_MAX + 32], tmp[MV_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/status.json", dir);
    snprintf(tmp, sizeof tmp, "%s/.status.json.tmp", dir);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mv_fail("%s: cannot open for writing", tmp);
    fprintf(f, "{\"row\": ");
    json_write_string(f, row);
    if (seed >= 0) fprintf(f, ", \"seed\": %d", seed);
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
            if (isfinite(miou[i])) fprintf(f, ": %.4f", miou[i]);
            else fprintf(f, ": null");
        }
        for (int i = 0; i < nextra; i++) {
            fprintf(f, "%s", n + i ? ", " : "");
            json_write_string(f, extra_names[i]);
            if (isfinite(extra[i])) fprintf(f, ": %.4f", extra[i]);
            else fprintf(f, ": null");
        }
        fprintf(f, "}");
    }
    if (error) {
        fprintf(f, ", \"error\": ");
        json_write_string(f, error);
    }
    fprintf(f, "}\n");
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) < 0) return mv_fail("%s: cannot write: %s", path, strerror(errno));
    return 0;
}

#define ROW_BUSY (-2)   // lock_row / row_begin: another process holds the row

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

// Appends s to buf as one single-quoted shell word.
static void shell_quote(char *buf, size_t size, const char *s) {
    size_t n = strlen(buf);
    if (n + 1 < size) buf[n++] = '\'';
    for (; *s && n + 5 < size; s++) {
        if (*s == '\'') { memcpy(buf + n, "'\\''", 4); n += 4; }
        else buf[n++] = *s;
    }
    if (n + 1 < size) buf[n++] = '\'';
    buf[n] = 0;
}

// ------------------------------------------------------------------------------------------
// Row commands: what a row runs as a child process. `argv` form (no launcher: exec'd directly,
// so that the trainer itself is the child the sweep signals) and the shell form for a launcher.

#define CMD_MAX_ARGS 16

typedef struct {
    char args[CMD_MAX_ARGS][MV_PATH_MAX + 64];
    int n;
} row_cmd;

static void cmd_add(row_cmd *c, const char *s) {
    if (c->n < CMD_MAX_ARGS) snprintf(c->args[c->n++], sizeof c->args[0], "%s", s);
}

static int self_exe(char *exe, size_t size) {
    ssize_t n = readlink("/proc/self/exe", exe, size - 1);
    if (n < 0) return mv_fail("cannot find the maskvim executable: %s", strerror(errno));
    exe[n] = 0;
    return 0;
}

// `maskvim train DIR/config.yaml --resume auto [--quiet]`
static int train_cmd(row_cmd *c, const char *dir, bool quiet) {
    char exe[MV_PATH_MAX], cfg[MV_PATH_MAX + 32];
    MV_TRY(self_exe(exe, sizeof exe));
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    c->n = 0;
    cmd_add(c, exe); cmd_add(c, "train"); cmd_add(c, cfg); cmd_add(c, "--resume"); cmd_add(c, "auto");
    if (quiet) cmd_add(c, "--quiet");
    return 0;
}

// `maskvim eval DIR/config.yaml --checkpoint DIR/iter_<max>.h5 --targets SOURCE
//  --corruptions a,b,... --severities s,... --json DIR/corruptions.json` (Table 2 rows).
static int eval_cmd(row_cmd *c, const mv_experiment *exp, const char *dir, long max_iters) {
    char exe[MV_PATH_MAX], buf[MV_PATH_MAX + 64];
    MV_TRY(self_exe(exe, sizeof exe));
    c->n = 0;
    cmd_add(c, exe); cmd_add(c, "eval");
    snprintf(buf, sizeof buf, "%s/config.yaml", dir);
    cmd_add(c, buf);
    cmd_add(c, "--checkpoint");
    MV_TRY(checkpoint_iter_path(buf, sizeof buf, dir, max_iters));
    cmd_add(c, buf);
    cmd_add(c, "--targets"); cmd_add(c, exp->source);
    buf[0] = 0;
    for (int i = 0; i < exp->ncorruptions; i++) {
        if (i) strncat(buf, ",", sizeof buf - strlen(buf) - 1);
        strncat(buf, exp->corruptions[i], sizeof buf - strlen(buf) - 1);
    }
    cmd_add(c, "--corruptions"); cmd_add(c, buf);
    buf[0] = 0;
    for (int i = 0; i < exp->nseverities; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s%d", i ? "," : "", exp->severities[i]);
    }
    cmd_add(c, "--severities"); cmd_add(c, buf);
    snprintf(buf, sizeof buf, "%s/corruptions.json", dir);
    cmd_add(c, "--json"); cmd_add(c, buf);
    return 0;
}

// The shell line that runs `c` through the launcher: "LAUNCHER '/path/maskvim' train
// '/path/config.yaml' --resume auto" (paths and anything unusual quoted, plain words not).
static void shell_line(char *line, size_t size, const char *launcher, const row_cmd *c) {
    snprintf(line, size, "%s", launcher);
    for (int i = 0; i < c->n; i++) {
        strncat(line, " ", size - strlen(line) - 1);
        bool plain = c->args[i][0] != 0;
        for (const char *p = c->args[i]; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("-_.,=", *p)) plain = false;
        if (plain) strncat(line, c->args[i], size - strlen(line) - 1);
        else shell_quote(line, size, c->args[i]);
    }
}

// ------------------------------------------------------------------------------------------
// Child processes. Each child leads its own process group (so that the sweep can stop a
// launcher and everything it started with one kill), dies with the sweep (PR_SET_PDEATHSIG,
// for a sweep killed with SIGKILL), reads /dev/null and, with `log`, writes to it.

// Stop requests (SIGINT, SIGTERM, SIGUSR1) are taken by core/stop_signal.h while a sweep runs.

// `lock` (the row's lock descriptor, -1: none) is inherited by the child and whatever it starts:
// the lock is shared by every process holding it and goes only with the last, so a child left
// running after the sweep was killed (SIGKILL; a launcher's shell that did not pass SIGTERM on)
// still keeps the next sweep out of its row instead of two trainers writing one directory.
static pid_t spawn(const row_cmd *c, const char *launcher, const char *log, int omp_threads, int lock) {
    char line[8192];
    if (launcher) {
        shell_line(line, sizeof line, launcher, c);
        printf("maskvim experiment: %s\n", line);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { mv_fail("fork: %s", strerror(errno)); return -1; }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(143);   // the sweep is already gone
        if (lock >= 0) fcntl(lock, F_SETFD, 0);   // this row's lock only: the others stay close-on-exec
        // The sweep's stop handling is not the child's: back to the defaults (an ignored SIGPIPE
        // would survive exec).
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGUSR1, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0) { dup2(in, 0); close(in); }
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd < 0) _exit(126);
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (omp_threads > 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", omp_threads);
            setenv("OMP_NUM_THREADS", v, 1);
        }
        if (launcher) {
            execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        } else {
            char *argv[CMD_MAX_ARGS + 1];
            for (int i = 0; i < c->n; i++) argv[i] = (char *)c->args[i];
            argv[c->n] = NULL;
            execv(argv[0], argv);
        }
        _exit(127);
    }
    setpgid(pid, pid);   // also here, so that a kill right after fork reaches the group
    return pid;
}

// A child's wait status as 0, or -1 with a message.
static int child_status(int st, const char *what) {
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFSIGNALED(st)) return mv_fail("%s killed by signal %d", what, WTERMSIG(st));
    return mv_fail("%s exited with status %d", what, WEXITSTATUS(st));
}

// Stops the process group `pid`: SIGTERM, then SIGKILL after 10 s; reaps the child.
static void stop_child(pid_t pid) {
    kill(-pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) { kill(-pid, SIGKILL); return; }   // stragglers of a launcher
        usleep(100000);
    }
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

// Runs one command as a child and waits for it (one row at a time). A stop signal stops it.
static int run_child(const row_cmd *c, const char *launcher, const char *what, int lock) {
    pid_t pid = spawn(c, launcher, NULL, 0, lock);
    if (pid < 0) return -1;
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return mv_fail("waitpid: %s", strerror(errno));
        if (stop_signal_pending()) { stop_child(pid); return mv_fail("stopped by signal %d", stop_signal_pending()); }
        usleep(50000);
    }
    return child_status(st, what);
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
    char path[MV_PATH_MAX + 32], tmp[MV_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/paper.json", outdir);
    // A temporary name of this process's own: two sweeps started at once on one directory
    // would otherwise write, and rename, the same temporary file.
    snprintf(tmp, sizeof tmp, "%s/.paper.json.%ld.tmp", outdir, (long)getpid());
    FILE *old = fopen(path, "rb");
    if (old) {
        char *prev = mv_malloc(len + 2);
        size_t n = fread(prev, 1, len + 1, old);
        fclose(old);
        bool same = n == len && !memcmp(prev, text, len);
        free(prev);
        if (same) { free(text); return 0; }
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) { free(text); return mv_fail("%s: cannot open for writing", tmp); }
    bool ok = fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    free(text);
    if (!ok || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return mv_fail("%s: cannot write: %s", path, strerror(e));
    }
    return 0;
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
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (!experiment_find_row(exp, t) && !experiment_find_run(exp, t))
            return mv_fail("--only: %s has no row '%s'", exp->path, t);
    return 0;
}

// A run is selected by its row's name (all seeds) or by its own name (one seed).
static bool run_selected(const char *only, const mv_exp_run *r) {
    return selected(only, r->row->name) || selected(only, r->name);
}

static int run_seed(const mv_exp_run *r) { return r->seed_index >= 0 ? r->seed : -1; }

// True when the run's saved config.yaml differs from what the experiment file gives now (the
// file was edited after the run finished, or, with `seeds:`, DIR/<row> was trained with another
// seed than the first one listed): its results no longer match the run. Says which seed then.
static bool config_changed(const mv_experiment *exp, const mv_exp_run *r, const char *dir) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if (!file_exists(path)) return false;
    mv_config *now = mv_calloc(1, sizeof *now), *saved = mv_calloc(1, sizeof *saved);
    bool changed = experiment_run_config(now, exp, r, dir) == 0 && config_load(saved, path, 0, NULL) == 0 &&
                   !config_equal(now, saved);
    if (changed && r->seed_index >= 0 && saved->run.seed != now->run.seed)
        printf("maskvim experiment: warning: %s was trained with run.seed=%d, not seed %d of `seeds:`\n", dir,
               saved->run.seed, r->seed);
    mv_clear_error();
    free(now);
    free(saved);
    return changed;
}

static const char *ACTION_NAMES[] = {"run", "resume", "skip (finished)"};

static void print_row(const mv_experiment *exp, const mv_exp_run *r, const char *dir, row_action a) {
    printf("%-24s %-16s %s\n   overrides:", r->name, ACTION_NAMES[a], dir);
    for (int i = 0; i < exp->nsets; i++) printf(" %s", exp->sets[i]);
    for (int i = 0; i < r->row->nsets; i++) printf(" %s", r->row->sets[i]);
    if (r->seed_index >= 0) printf(" run.seed=%d", r->seed);
    printf("\n");
}

// ------------------------------------------------------------------------------------------
// One row: begin (lock, resolve and save the config, status running), train (in this process
// or as a child), evaluate under the corruptions when the file has them, end (status).

typedef struct {
    const mv_exp_run *run;
    char dir[MV_PATH_MAX];
    int lock;            // the row's .lock, held from begin to end
    pid_t pid;           // the running child (0: none)
    bool evaluating;     // the child is the corruption evaluation
    long max_iters;
    double t0;
} row_job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Returns 0 when the row is ready to train (cfg resolved, lock held), 1 when another runner
// finished it meanwhile, ROW_BUSY when another process holds it, -1 on failure (message set,
// nothing held).
static int row_begin(row_job *j, mv_config *cfg, const mv_experiment *exp, const char *log) {
    MV_TRY(mv_mkdir_p(j->dir));
    j->lock = lock_row(j->dir, j->run->name);
    if (j->lock < 0) return j->lock;
    row_action a = row_plan(j->dir);   // again under the lock: another runner may have finished it
    if (a == ROW_SKIP) {
        printf("maskvim experiment: row %s: finished, skipped\n", j->run->name);
        close(j->lock);
        return 1;
    }
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", j->dir);
    int rc = experiment_run_config(cfg, exp, j->run, j->dir);
    if (rc == 0) rc = config_save(path, cfg);
    if (rc == 0) rc = write_status(j->dir, j->run->name, run_seed(j->run), "running", NULL, NULL, NULL, 0);
    if (rc < 0) {
        close(j->lock);
        return mv_fail_context("row %s", j->run->name);
    }
    j->max_iters = cfg->schedule.max_iters;
    j->t0 = now_s();
    printf("maskvim experiment: row %s: %s in %s", j->run->name, a == ROW_RESUME ? "resuming" : "starting", j->dir);
    if (log) printf(" (output in %s)", log);
    printf("\n");
    fflush(stdout);
    return 0;
}

// Records the outcome (`failed` when ok is false, with the current error) and releases the row.
// A finished row's line gives its final mIoU per column. Returns 0, or -1 when the row failed.
static int row_end(row_job *j, const mv_experiment *exp, bool ok) {
    char names[MV_EXP_MAX_CORR][MV_NAME_MAX];
    double corr[MV_EXP_MAX_CORR];
    int rc = ok ? 0 : -1;
    if (rc == 0 && exp->ncorruptions) {
        char path[MV_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/corruptions.json", j->dir);
        rc = experiment_corruption_results(names, corr, exp, path);
    }
    if (rc == 0) rc = write_status(j->dir, j->run->name, run_seed(j->run), "finished", NULL, names, corr, exp->ncorruptions);
    if (rc < 0) {
        char msg[MV_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", mv_last_error());
        write_status(j->dir, j->run->name, run_seed(j->run), "failed", msg, NULL, NULL, 0);
        mv_fail("row %s: %s", j->run->name, msg);
    } else {
        // "row R: finished in 12.3 s: clear 21.30, fog 10.20 | mean over targets 10.20"
        char domains[MV_MAX_SOURCES][MV_NAME_MAX];
        double miou[MV_MAX_SOURCES];
        long iter = -1;
        int n = final_metrics(domains, miou, MV_MAX_SOURCES, &iter, j->dir);
        printf("maskvim experiment: row %s: finished in %.1f s:", j->run->name, now_s() - j->t0);
        for (int i = 0; i < n; i++) printf("%s %s %.2f", i ? "," : "", domains[i], miou[i]);
        double sum = 0;
        int nt = 0;
        for (int t = 0; t < exp->ntargets; t++) {
            double v = NAN;
            for (int i = 0; i < n; i++) if (!strcmp(domains[i], exp->targets[t])) v = miou[i];
            for (int i = 0; i < exp->ncorruptions; i++) if (!strcmp(names[i], exp->targets[t])) v = corr[i];
            if (isfinite(v)) { sum += v; nt++; }
        }
        if (exp->ncorruptions) printf(" | corruptions (mean over %d severit%s): %.2f", exp->nseverities,
                                      exp->nseverities == 1 ? "y" : "ies", 0.0 + (nt ? sum / nt : NAN));
        else if (nt) printf(" | mean over targets %.2f", sum / nt);
        printf("\n");
        fflush(stdout);
    }
    close(j->lock);
    j->lock = -1;
    j->pid = 0;
    return rc;
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
        row_action a = row_plan(dir);
        if (a == ROW_SKIP) {
            if (config_changed(s->exp, r, dir))
                printf("maskvim experiment: warning: row %s finished with another configuration than %s gives now "
                       "(delete %s to run it again)\n", r->name, s->exp->path, dir);
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

// Rows one after another in this process (one rank). A stop signal (SIGINT, SIGTERM, SIGUSR1)
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
        int rc = row_begin(&j, cfg, s->exp, NULL);
        if (rc > 0) { s->nskip++; continue; }
        // A row held by another runner or broken on its own does not stop the others.
        if (rc < 0) { count_end(s, rc); continue; }
        mv_train_opts o = {"auto", 0, s->quiet};
        rc = prepare_sources(cfg, comm);
        if (rc == 0) rc = train_run(cfg, comm, &o, NULL);
        bool evaluated = !s->exp->ncorruptions;
        if (rc == 0 && !evaluated && !stop_signal_pending()) {
            row_cmd c;
            rc = eval_cmd(&c, s->exp, j.dir, j.max_iters);
            if (rc == 0) rc = run_child(&c, NULL, "corruption evaluation", j.lock);
            evaluated = rc == 0;
        }
        if ((sig = stop_signal_pending()) && !(rc == 0 && evaluated)) {
            char msg[64];
            snprintf(msg, sizeof msg, "stopped by signal %d", sig);
            write_status(j.dir, r->name, run_seed(r), "interrupted", msg, NULL, NULL, 0);
            printf("maskvim experiment: row %s: stopped (signal %d); it resumes when the sweep is run again\n",
                   r->name, sig);
            close(j.lock);
            break;
        }
        count_end(s, row_end(&j, s->exp, rc == 0));
    }
    stop_signal_disarm();
    free(cfg);
    return sig;
}

// Starts the child of job j: training, or (evaluating) the corruption evaluation.
static int start_child(sweep *s, row_job *j, const char *log, int omp) {
    row_cmd c;
    if (j->evaluating) MV_TRY(eval_cmd(&c, s->exp, j->dir, j->max_iters));
    else MV_TRY(train_cmd(&c, j->dir, s->quiet || s->jobs > 1));
    j->pid = spawn(&c, s->launcher, log, omp, j->lock);
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
            int rc = row_begin(j, cfg, s->exp, s->jobs > 1 ? log : NULL);
            if (rc > 0) { s->nskip++; k--; continue; }
            if (rc == 0 && prepare_sources(cfg, comm) < 0) rc = row_end(j, s->exp, false);
            else if (rc == 0 && start_child(s, j, s->jobs > 1 ? log : NULL, omp) < 0) rc = row_end(j, s->exp, false);
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
        int rc = child_status(st, j->evaluating ? "corruption evaluation" : s->launcher ? "launcher command" : "training");
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
        count_end(s, row_end(j, s->exp, rc == 0));
        running--;
    }
    int sig = stop_signal_pending();
    if (sig) {
        // Stop every child and leave its row resumable (it continues from its last checkpoint).
        for (int k = 0; k < s->jobs; k++) {
            row_job *j = &jobs[k];
            if (!j->pid) continue;
            stop_child(j->pid);
            char msg[64];
            snprintf(msg, sizeof msg, "stopped by signal %d", sig);
            write_status(j->dir, j->run->name, run_seed(j->run), "interrupted", msg, NULL, NULL, 0);
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
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 64) { fprintf(stderr, "maskvim experiment run: --jobs '%s': expected 1..64\n", v); return 2; }
            njobs = (int)n;
        }
        i++;
    }
    if (!file) { fprintf(stderr, "maskvim experiment run: no experiment file given\n\n"); usage(stderr); return 2; }
    mv_experiment exp;
    if (experiment_load(&exp, file) < 0 || (only && check_only(&exp, only) < 0)) {
        fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
        if (exp.rows) experiment_free(&exp);
        return 1;
    }
    int twin_a, twin_b;
    if (experiment_twin_rows(&exp, &twin_a, &twin_b) == 1)   // a wasted run, and a table with a duplicate row
        printf("maskvim experiment: warning: rows %s (line %d) and %s (line %d) train alike: they differ only in "
               "settings that do not change the results (run.log_every, run.eval_every, run.ckpt_every, ...) or "
               "not at all\n", exp.rows[twin_a].name, exp.rows[twin_a].line, exp.rows[twin_b].name,
               exp.rows[twin_b].line);
    mv_clear_error();
    char outdir[MV_PATH_MAX];
    snprintf(outdir, sizeof outdir, "%s", out ? out : "runs/");
    if (!out) strncat(outdir, exp.name, sizeof outdir - strlen(outdir) - 1);
    if (dry) {
        for (int i = 0; i < exp.nruns; i++) {
            const mv_exp_run *r = &exp.runs[i];
            if (!run_selected(only, r)) continue;
            char dir[MV_PATH_MAX];
            if (snprintf(dir, sizeof dir, "%s/%s", outdir, r->name) >= (int)sizeof dir) {
                fprintf(stderr, "maskvim experiment: %s/%s: path too long\n", outdir, r->name);
                experiment_free(&exp);
                return 1;
            }
            row_action a = row_plan(dir);
            if (a == ROW_SKIP && config_changed(&exp, r, dir))
                printf("maskvim experiment: warning: row %s finished with another configuration than %s gives now "
                       "(delete %s to run it again)\n", r->name, exp.path, dir);
            print_row(&exp, r, dir, a);
        }
        experiment_free(&exp);
        return 0;
    }
    bool in_process = !launcher && njobs == 1;
    mv_comm comm = {0};
    {
        signal(SIGPIPE, SIG_IGN);   // as `maskvim train`: a gone `| tee` must not kill a stopping row
        if (comm_init(&comm, &argc, &argv) < 0) {
            fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
            experiment_free(&exp);
            return 1;
        }
        if (comm.world > 1) {   // rows run one per process here; ranks go through --launcher
            fprintf(stderr, "maskvim experiment: run the sweep in one process and give the ranks with "
                            "--launcher \"mpirun -np N\" (this process is one of %d ranks)\n", comm.world);
            comm_finalize(&comm);
            experiment_free(&exp);
            return 2;
        }
    }
    if (strlen(outdir) + MV_EXP_RUN_NAME_MAX + 2 > MV_PATH_MAX || mv_mkdir_p(outdir) < 0 || write_paper_json(outdir, &exp) < 0) {
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
