// `maskvim experiment run`: a sweep over the rows of an experiment file (core/experiment.h).
// Each row becomes a run directory OUT/<row>/ holding its resolved config.yaml; rows run one
// after another in this process (or each through a launcher command such as mpirun), resume
// from their newest checkpoint, and record OUT/<row>/status.json atomically. A row whose status
// says finished is skipped, so a sweep killed at any moment and started again completes
// without redoing finished work. A lock (flock on OUT/<row>/.lock) keeps two runners out of
// the same row.
#include "launch/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/experiment.h"
#include "core/train.h"
#include "dist/comm.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim experiment run FILE.yaml [--out DIR] [--only ROW,ROW...] [--dry-run]\n"
        "                                        [--launcher \"mpirun -np 2 ...\"]\n\n"
        "Runs every row of an experiment file (docs/experiments.md) one after another. Row R\n"
        "trains in DIR/R/ (default DIR: runs/<experiment name>) with its resolved config.yaml;\n"
        "DIR/R/status.json records its state (running, finished, failed) and final mIoU per\n"
        "domain. Finished rows are skipped, interrupted rows resume from their last checkpoint.\n\n"
        "  --out DIR        where the row directories go\n"
        "  --only ROWS      run only these rows (comma-separated names)\n"
        "  --dry-run        print each row, its overrides and whether it would run, resume or skip\n"
        "  --launcher CMD   run each row as `CMD maskvim train DIR/R/config.yaml --resume auto`\n"
        "                   through /bin/sh (e.g. \"mpirun -np 2 --hostfile hosts\")\n"
        "  --quiet          no progress bars\n");
}

typedef enum { ROW_RUN, ROW_RESUME, ROW_SKIP } row_action;

static int mkdir_p(const char *path) {
    char tmp[MV_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return mv_fail("%s: path too long", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return mv_fail("%s: cannot create: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return mv_fail("%s: cannot create: %s", tmp, strerror(errno));
    return 0;
}

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

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

// DIR/status.json, written to a temporary file and renamed so readers never see half of it.
static int write_status(const char *dir, const char *row, const char *state, const char *error) {
    char path[MV_PATH_MAX + 32], tmp[MV_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/status.json", dir);
    snprintf(tmp, sizeof tmp, "%s/.status.json.tmp", dir);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mv_fail("%s: cannot open for writing", tmp);
    fprintf(f, "{\"row\": ");
    json_str(f, row);
    fprintf(f, ", \"state\": \"%s\"", state);
    char domains[MV_MAX_SOURCES][MV_NAME_MAX];
    double miou[MV_MAX_SOURCES];
    long iter = -1;
    int n = final_metrics(domains, miou, MV_MAX_SOURCES, &iter, dir);
    if (!strcmp(state, "finished")) {
        fprintf(f, ", \"iter\": %ld, \"final\": {", iter);
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s", i ? ", " : "");
            json_str(f, domains[i]);
            if (isfinite(miou[i])) fprintf(f, ": %.4f", miou[i]);
            else fprintf(f, ": null");
        }
        fprintf(f, "}");
    }
    if (error) {
        fprintf(f, ", \"error\": ");
        json_str(f, error);
    }
    fprintf(f, "}\n");
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) < 0) return mv_fail("%s: cannot write: %s", path, strerror(errno));
    return 0;
}

// Takes DIR/.lock without waiting; returns the descriptor, or -1 with a message.
static int lock_row(const char *dir, const char *row) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return mv_fail("%s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        if (errno == EWOULDBLOCK) return mv_fail("row %s is being run by another process (%s)", row, path);
        return mv_fail("%s: cannot lock: %s", path, strerror(errno));
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

// One row through the launcher: /bin/sh -c "LAUNCHER 'maskvim' train 'DIR/config.yaml' --resume auto".
static int run_launcher(const char *launcher, const char *dir, bool quiet) {
    char exe[MV_PATH_MAX], cfg[MV_PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) return mv_fail("cannot find the maskvim executable: %s", strerror(errno));
    exe[n] = 0;
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s ", launcher);
    shell_quote(cmd, sizeof cmd, exe);
    strncat(cmd, " train ", sizeof cmd - strlen(cmd) - 1);
    shell_quote(cmd, sizeof cmd, cfg);
    strncat(cmd, quiet ? " --resume auto --quiet" : " --resume auto", sizeof cmd - strlen(cmd) - 1);
    printf("maskvim experiment: %s\n", cmd);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return mv_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return mv_fail("waitpid: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFSIGNALED(st)) return mv_fail("launcher command killed by signal %d", WTERMSIG(st));
    return mv_fail("launcher command exited with status %d", WEXITSTATUS(st));
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
                json_str(m, r->name);
                fputs(": {", m);
            }
            fprintf(m, "%s", nc++ ? ", " : "");
            json_str(m, exp->cols[c].domain);
            fprintf(m, ": %.4g", r->paper[c]);
        }
        if (nc) fputc('}', m);
    }
    fputs(nr ? "\n}\n" : "}\n", m);
    fclose(m);
    char path[MV_PATH_MAX + 32], tmp[MV_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/paper.json", outdir);
    snprintf(tmp, sizeof tmp, "%s/.paper.json.tmp", outdir);
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
    if (!ok || rename(tmp, path) < 0) return mv_fail("%s: cannot write: %s", path, strerror(errno));
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

// Every name of --only must be a row (a typo should not silently run nothing).
static int check_only(const mv_experiment *exp, const char *only) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", only) >= (int)sizeof buf) return mv_fail("--only: list too long");
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (!experiment_find_row(exp, t)) return mv_fail("--only: %s has no row '%s'", exp->path, t);
    return 0;
}

// True when the row's saved config.yaml differs from what the experiment file gives now (the
// file was edited after the row finished): its results no longer match the row.
static bool config_changed(const mv_experiment *exp, const mv_exp_row *r, const char *dir) {
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if (!file_exists(path)) return false;
    mv_config *now = mv_calloc(1, sizeof *now), *saved = mv_calloc(1, sizeof *saved);
    bool changed = experiment_row_config(now, exp, r, dir) == 0 && config_load(saved, path, 0, NULL) == 0 &&
                   !config_equal(now, saved);
    mv_clear_error();
    free(now);
    free(saved);
    return changed;
}

static const char *ACTION_NAMES[] = {"run", "resume", "skip (finished)"};

static void print_row(const mv_experiment *exp, const mv_exp_row *r, const char *dir, row_action a) {
    printf("%-24s %-16s %s\n   overrides:", r->name, ACTION_NAMES[a], dir);
    for (int i = 0; i < exp->nsets; i++) printf(" %s", exp->sets[i]);
    for (int i = 0; i < r->nsets; i++) printf(" %s", r->sets[i]);
    printf("\n");
}

// One row, start to finish: lock, resolve and save the config, train, record the status.
// Returns 0 when it ran, 1 when another runner had finished it meanwhile, -1 on failure.
static int run_row(const mv_experiment *exp, const mv_exp_row *r, const char *dir, const char *launcher, bool quiet,
                   mv_comm *comm) {
    MV_TRY(mkdir_p(dir));
    int lock = lock_row(dir, r->name);
    if (lock < 0) return -1;
    int rc = 0;
    row_action a = row_plan(dir);   // again under the lock: another runner may have finished it
    if (a == ROW_SKIP) {
        printf("maskvim experiment: row %s: finished, skipped\n", r->name);
        close(lock);
        return 1;
    }
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    char path[MV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    rc = experiment_row_config(cfg, exp, r, dir);
    if (rc == 0) rc = config_save(path, cfg);
    if (rc == 0) rc = write_status(dir, r->name, "running", NULL);
    if (rc == 0) {
        printf("maskvim experiment: row %s: %s in %s\n", r->name, a == ROW_RESUME ? "resuming" : "starting", dir);
        fflush(stdout);
        if (launcher) {
            rc = run_launcher(launcher, dir, quiet);
        } else {
            mv_train_opts o = {"auto", 0, quiet};
            rc = train_run(cfg, comm, &o);
        }
        if (rc < 0) {
            char msg[MV_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", mv_last_error());
            write_status(dir, r->name, "failed", msg);
            mv_fail("%s", msg);
        } else {
            rc = write_status(dir, r->name, "finished", NULL);
        }
    }
    if (rc < 0) mv_fail_context("row %s", r->name);
    free(cfg);
    close(lock);
    return rc;
}

static int experiment_run(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *only = NULL, *launcher = NULL;
    bool dry = false, quiet = false;
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
        if (!v) { fprintf(stderr, "maskvim experiment run: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--only")) only = v;
        else if (!strcmp(a, "--launcher")) launcher = v;
        else { fprintf(stderr, "maskvim experiment run: unknown option '%s'\n\n", a); usage(stderr); return 2; }
        i++;
    }
    if (!file) { usage(stderr); return 2; }
    mv_experiment exp;
    if (experiment_load(&exp, file) < 0 || (only && check_only(&exp, only) < 0)) {
        fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
        if (exp.rows) experiment_free(&exp);
        return 1;
    }
    char outdir[MV_PATH_MAX];
    snprintf(outdir, sizeof outdir, "%s", out ? out : "runs/");
    if (!out) strncat(outdir, exp.name, sizeof outdir - strlen(outdir) - 1);
    int status = 0;
    mv_comm comm = {0};
    if (!dry && !launcher) {
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
    if (!dry && (mkdir_p(outdir) < 0 || write_paper_json(outdir, &exp) < 0)) {
        fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
        if (!launcher) comm_finalize(&comm);
        experiment_free(&exp);
        return 1;
    }
    int nrun = 0, nskip = 0, nfail = 0;
    for (int i = 0; i < exp.nrows; i++) {
        const mv_exp_row *r = &exp.rows[i];
        if (!selected(only, r->name)) continue;
        char dir[MV_PATH_MAX];
        if (snprintf(dir, sizeof dir, "%s/%s", outdir, r->name) >= (int)sizeof dir) {
            fprintf(stderr, "maskvim experiment: %s/%s: path too long\n", outdir, r->name);
            status = 1;
            break;
        }
        row_action a = row_plan(dir);
        if (a == ROW_SKIP && config_changed(&exp, r, dir))
            printf("maskvim experiment: warning: row %s finished with another configuration than %s gives now "
                   "(delete %s to run it again)\n", r->name, exp.path, dir);
        if (dry) { print_row(&exp, r, dir, a); continue; }
        if (a == ROW_SKIP) {
            printf("maskvim experiment: row %s: finished, skipped\n", r->name);
            nskip++;
            continue;
        }
        int rc = run_row(&exp, r, dir, launcher, quiet, &comm);
        if (rc > 0) { nskip++; continue; }
        if (rc < 0) {
            fprintf(stderr, "maskvim experiment: %s\n", mv_last_error());
            nfail++;
            status = 1;
            // A row held by another runner or broken on its own does not stop the others.
            continue;
        }
        nrun++;
    }
    if (!dry) {
        printf("maskvim experiment: %s: %d row%s run, %d skipped (finished), %d failed; results in %s\n", exp.name,
               nrun, nrun == 1 ? "" : "s", nskip, nfail, outdir);
        if (!launcher) comm_finalize(&comm);
    }
    experiment_free(&exp);
    return status;
}

int cmd_experiment(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "run")) return experiment_run(argc - 1, argv + 1);
    fprintf(stderr, "maskvim experiment: unknown subcommand '%s' (run)\n", argv[1]);
    return 2;
}
