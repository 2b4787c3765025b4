// The child processes of an experiment sweep: the command line a row runs (`maskvim train` or
// `maskvim eval`, directly or through a launcher's shell line) and starting, waiting for and
// stopping it.
#include "launch/experiment_rows.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/stop_signal.h"

// ------------------------------------------------------------------------------------------
// Row commands: what a row runs as a child process (row_cmd, experiment_rows.h).

static void cmd_add(row_cmd *c, const char *s) {
    if (c->n < CMD_MAX_ARGS) snprintf(c->args[c->n++], sizeof c->args[0], "%s", s);
}

static int self_exe(char *exe, size_t size) {
    ssize_t n = readlink("/proc/self/exe", exe, size - 1);
    if (n < 0) return mv_fail("cannot find the maskvim executable: %s", strerror(errno));
    exe[n] = 0;
    return 0;
}

int exp_train_cmd(row_cmd *c, const char *dir, bool quiet) {
    char exe[MV_PATH_MAX], cfg[MV_PATH_MAX + 32];
    MV_TRY(self_exe(exe, sizeof exe));
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    c->n = 0;
    cmd_add(c, exe); cmd_add(c, "train"); cmd_add(c, cfg); cmd_add(c, "--resume"); cmd_add(c, "auto");
    if (quiet) cmd_add(c, "--quiet");
    return 0;
}

int exp_eval_cmd(row_cmd *c, const mv_experiment *exp, const char *dir, long max_iters) {
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
    if (exp->corruption_bgr) cmd_add(c, "--corruption-bgr");
    snprintf(buf, sizeof buf, "%s/corruptions.json", dir);
    cmd_add(c, "--json"); cmd_add(c, buf);
    return 0;
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

// Stop requests (SIGINT, SIGTERM, SIGHUP, SIGUSR1) are taken by core/stop_signal.h while a sweep runs.

pid_t exp_spawn(const row_cmd *c, const char *launcher, const char *log, int omp_threads, int lock) {
    char line[8192];
    if (launcher) {
        shell_line(line, sizeof line, launcher, c);
        printf("maskvim experiment: %s\n", line);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    // The stop signals are blocked across the fork, so that the child starts with them blocked.
    // Blocked only in the child, after the fork, a stop the sweep sent to a child it had just
    // started (exp_stop_children, right after a request) could reach it before the block, run
    // the sweep's handler inherited in the child, and be used up there: the row's training then
    // never saw it and ran to its end.
    sigset_t stops, before;
    stop_signal_set(&stops);
    sigprocmask(SIG_BLOCK, &stops, &before);
    pid_t pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &before, NULL);
        mv_fail("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(143);   // the sweep is already gone
        if (lock >= 0) fcntl(lock, F_SETFD, 0);   // this row's lock only: the others stay close-on-exec
        // The sweep's stop handling is not the child's: back to the defaults (an ignored SIGPIPE
        // would survive exec), still blocked: a stop held back meanwhile would otherwise kill a
        // train child by the default action (status 138).
        for (int sig = 1; sig < NSIG; sig++)
            if (sigismember(&stops, sig) == 1) signal(sig, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        // A `maskvim train` of ours, started directly, keeps them blocked until it has armed its
        // own stop handlers (stop_signal_arm unblocks them, first thing in cmd_train): a stop
        // the sweep sends while the child is between here and there is then taken as a request,
        // not the default death. Not for anything else: a launcher (mpirun) or `maskvim eval`
        // would keep them blocked and never stop, so for those they are unblocked again (a
        // signal held meanwhile then takes its default action, as it would have).
        if (launcher || c->n < 2 || strcmp(c->args[1], "train")) sigprocmask(SIG_UNBLOCK, &stops, NULL);
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
    sigprocmask(SIG_SETMASK, &before, NULL);   // a request that came during the fork is taken now
    return pid;
}

int exp_child_status(int st, const char *what) {
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (WIFSIGNALED(st)) return mv_fail("%s killed by signal %d", what, WTERMSIG(st));
    return mv_fail("%s exited with status %d", what, WEXITSTATUS(st));
}

// Whether a process of group `pgid` still runs (zombies, which init has yet to reap, do not count).
static bool group_running(pid_t pgid) {
    if (kill(-pgid, 0) < 0) return false;   // no process at all
    DIR *d = opendir("/proc");
    if (!d) return true;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');   // after the command name, which may hold anything
        char state;
        int ppid, pgrp;
        found = p && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z';
    }
    closedir(d);
    return found;
}

// SIGUSR1, not SIGTERM: `maskvim train` takes either as "checkpoint this step, then exit", but
// mpirun forwards SIGUSR1 to every rank as it is, while it answers SIGTERM by ending the job
// itself (SIGKILL to the ranks about a second later), which a step and its checkpoint may not fit
// in. Every process of a child's group gets it (and a rank under mpirun a second, forwarded copy:
// SIGUSR1 is idempotent); a child's group is waited for as a whole, so that what a launcher's
// shell started may finish its checkpoint after the shell itself has gone.
void exp_stop_children(const pid_t *pids, int n) {
    bool *reaped = mv_calloc((size_t)n, sizeof(bool));
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(-pids[i], SIGUSR1);
    for (int t = 0; t < EXP_STOP_GRACE_S * 10; t++) {
        bool busy = false;
        for (int i = 0; i < n; i++) {
            if (pids[i] <= 0) continue;
            if (!reaped[i] && waitpid(pids[i], NULL, WNOHANG) == pids[i]) reaped[i] = true;
            busy |= !reaped[i] || group_running(pids[i]);
        }
        if (!busy) break;
        usleep(100000);
    }
    for (int i = 0; i < n; i++) {
        if (pids[i] <= 0) continue;
        if (!reaped[i] || group_running(pids[i])) kill(-pids[i], SIGKILL);
        if (!reaped[i])
            while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {}
    }
    free(reaped);
}

int exp_run_child(const row_cmd *c, const char *launcher, const char *what, int lock) {
    pid_t pid = exp_spawn(c, launcher, NULL, 0, lock);
    if (pid < 0) return -1;
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return mv_fail("waitpid: %s", strerror(errno));
        if (stop_signal_pending()) { exp_stop_children(&pid, 1); return mv_fail("stopped by signal %d", stop_signal_pending()); }
        usleep(50000);
    }
    return exp_child_status(st, what);
}
