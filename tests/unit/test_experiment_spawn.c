// A sweep's children (launch/experiment_spawn.c) and the stop the sweep sends them. A stop sent
// to a `maskvim train` child at any moment after exp_spawn returns, as exp_stop_children does
// right after a request, must reach the training: held back (blocked, pending) through exec,
// until the training arms its own handlers. Blocked only in the child after the fork, it could
// land before the block, run the sweep's handler inherited by the child and be used up there:
// the row then trained to its end (seen under ASan, about one sweep in three).
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/stop_signal.h"
#include "launch/experiment_rows.h"

static char dir[512];

static void setup(void) {   // a fresh folder under MV_TEST_TMP for each test process
    const char *t = getenv("MV_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/experiment_spawn.XXXXXX", t && t[0] ? t : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "%s: %s", dir, strerror(errno));
}

static void teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

// A child whose args[1] is "train" (what exp_spawn keeps the stops blocked for): /bin/sh running
// the script ./train, which writes its blocked and pending signal masks once SIGUSR1 is pending,
// or after 2500 looks (about 5 s). It looks again because the stop may come after it started: the
// sweep can be descheduled between the fork and the kill long enough for the child to reach its
// exec, and further. Shell built-ins only: a forked helper would not inherit what is pending, and
// the shell, waiting for one, would take the signal (dash waits with every signal unblocked).
static void write_train_script(void) {
    cr_assert_eq(chdir(dir), 0);
    FILE *f = fopen("train", "w");
    cr_assert_not_null(f);
    fprintf(f, "n=0\n"
               "while [ $n -lt 2500 ]; do\n"
               "  while read -r key value; do\n"
               "    case $key in SigBlk:) blk=$value;; SigPnd:) own=$value;; ShdPnd:) pnd=$value;; esac\n"
               "  done < /proc/$$/status\n"
               "  [ $(( (0x$pnd | 0x$own) >> %d & 1 )) = 1 ] && break\n"
               "  n=$((n + 1))\n"
               "done\n"
               "echo \"SigBlk: $blk\"; echo \"SigPnd: $own\"; echo \"ShdPnd: $pnd\"\n",
            SIGUSR1 - 1);
    fclose(f);
}

// The mask of one signal in a /proc status line's hexadecimal set.
static bool has_signal(const char *text, const char *key, int sig) {
    const char *p = strstr(text, key);
    cr_assert_not_null(p, "no %s line in:\n%s", key, text);
    unsigned long long set = strtoull(p + strlen(key), NULL, 16);
    return set >> (sig - 1) & 1;
}

Test(experiment_spawn, stop_right_after_spawn_reaches_a_train_child, .init = setup, .fini = teardown) {
    write_train_script();
    row_cmd c = {.n = 2};
    snprintf(c.args[0], sizeof c.args[0], "/bin/sh");
    snprintf(c.args[1], sizeof c.args[1], "train");
    stop_signal_arm();   // as a sweep: its handlers are in place while it starts its rows
    for (int i = 0; i < 200; i++) {
        char log[600];
        snprintf(log, sizeof log, "%s/child_%d.log", dir, i);
        pid_t pid = exp_spawn(&c, NULL, log, 0, -1);
        cr_assert_gt(pid, 0);
        kill(-pid, SIGUSR1);   // exp_stop_children
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status %#x", i, st);
        char text[4096] = "";
        FILE *f = fopen(log, "r");
        cr_assert_not_null(f);
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
        cr_assert(has_signal(text, "SigBlk:", SIGUSR1), "child %d: SIGUSR1 not blocked at exec:\n%s", i, text);
        cr_assert(has_signal(text, "ShdPnd:", SIGUSR1) || has_signal(text, "SigPnd:", SIGUSR1),
                  "child %d: the stop was lost before exec:\n%s", i, text);
    }
    cr_assert_eq(stop_signal_pending(), 0, "the stop sent to the child reached the sweep");
    stop_signal_disarm();
}

Test(experiment_spawn, other_children_take_the_stop_by_default, .init = setup, .fini = teardown) {
    // `maskvim eval` (or anything not a training) does not arm handlers: a stop sent right after
    // the spawn ends it by the default action instead of being held for ever.
    row_cmd c = {.n = 3};
    snprintf(c.args[0], sizeof c.args[0], "/bin/sh");
    snprintf(c.args[1], sizeof c.args[1], "-c");
    snprintf(c.args[2], sizeof c.args[2], "sleep 30");
    stop_signal_arm();
    pid_t pid = exp_spawn(&c, NULL, NULL, 0, -1);
    cr_assert_gt(pid, 0);
    kill(-pid, SIGUSR1);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1, "status %#x", st);
    stop_signal_disarm();
}
