// Graceful stop requests from signals (see stop_signal.h).
#include "core/stop_signal.h"
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// The handler may run on any thread: the loader's workers block the stop signals, but OpenMP's
// and Open MPI's threads do not, and the kernel hands a process-directed signal to any thread
// that does not block it. A volatile sig_atomic_t is only safe against a handler on the reading
// thread; lock-free atomics are safe across threads and inside a handler (C11 7.14.1.1).
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the stop flags must be lock-free atomics");
static atomic_int g_pending = 0;
static atomic_int g_depth = 0;      // nested arm/disarm pairs (a sweep arms around the trainings it runs)
static atomic_int g_starting = 0;   // a training is starting up: only the handler's message differs
// The depth of a stop_signal_arm_startup that still stands (0: none): the disarm that brings the
// depth back to it (the training's own) ends it too.
static int g_startup_depth = 0;
const int mv_stop_signals[MV_STOP_SIGNAL_COUNT] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
#define SIGNALS mv_stop_signals
#define NUM_SIGNALS MV_STOP_SIGNAL_COUNT
static struct sigaction g_old[NUM_SIGNALS];
static bool g_installed[NUM_SIGNALS];
// Our SIGUSR1 handler stays in place after the outermost disarm (see stop_signal_disarm): the
// next arm must not take it for the disposition to put back.
static bool g_usr1_kept = false;

static void say(const char *text) {   // async-signal-safe
    ssize_t r = write(STDERR_FILENO, text, strlen(text));
    (void)r;
}

// The signal's name, for the handler's messages (constant strings: async-signal-safe).
static const char *name_of(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGUSR1";
}

static void on_signal(int sig) {
    if (g_depth == 0) {
        if (sig != SIGUSR1) {   // not ours any more (cannot happen: put back before depth 0)
            signal(sig, SIG_DFL);
            raise(sig);
            return;
        }
        // The SIGUSR1 handler kept after the outermost disarm: no training runs, so there is
        // nothing to stop, and a request noted now would cancel the next training this process
        // starts at its first step.
        say("maskvim: SIGUSR1 while no training runs: ignored\n");
        return;
    }
    // One exchange takes the first request, so two signals handled on two threads at once
    // cannot both count as the first.
    int none = 0;
    if (atomic_compare_exchange_strong(&g_pending, &none, sig)) {
        say("maskvim: ");
        say(name_of(sig));
        // train_run reads a request taken during startup once its setup is done, before the first step.
        say(g_starting ? " during startup: stopping before the first step" : ": stopping after this step with a checkpoint");
        say(sig == SIGUSR1 ? "\n" : " (send it again to stop at once)\n");
        return;
    }
    if (sig != SIGUSR1) {
        // Asked twice: stop now, as the signal would have without us.
        say("maskvim: stopping at once\n");
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

void stop_signal_arm(void) {
    if (g_depth > 0) { g_depth++; return; }
    // A request left from an earlier armed period was its owner's to act on (train_run returned
    // MV_TRAIN_STOPPED, the sweep ended); it must not stop this new one at its first step.
    g_pending = 0;
    g_depth = 1;   // before the handlers: a signal they take from here on is a request
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_signal;
    for (int i = 0; i < NUM_SIGNALS; i++) {
        if (SIGNALS[i] == SIGUSR1 && g_usr1_kept) {   // still ours, and g_old[i] still what came before
            g_installed[i] = true;
            continue;
        }
        g_installed[i] = false;
        if (sigaction(SIGNALS[i], NULL, &g_old[i]) != 0) continue;
        // A signal ignored by whoever started us (SIGINT for a job a script put in the
        // background) stays ignored.
        if (g_old[i].sa_handler == SIG_IGN) continue;
        g_installed[i] = sigaction(SIGNALS[i], &sa, NULL) == 0;
    }
    // A sweep starts its `maskvim train` children with these signals blocked (a stop sent before
    // the child got here would otherwise kill it, launch/experiment_spawn.c): one held back since
    // is delivered now, to the handlers, as a request.
    sigset_t set;
    stop_signal_set(&set);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

void stop_signal_arm_startup(void) {
    stop_signal_arm();
    g_startup_depth = g_depth;
}

void stop_signal_end_startup(void) {
    if (!g_startup_depth) return;
    g_startup_depth = 0;
    stop_signal_disarm();
}

void stop_signal_disarm(void) {
    if (g_depth == 0) return;
    if (g_depth > 1) {
        g_depth--;
        // The training that the startup arm was held for is over: what follows (its report,
        // MPI_Finalize) is as after training, SIGINT, SIGTERM and SIGHUP end the process again.
        if (g_depth == g_startup_depth) stop_signal_end_startup();
        return;
    }
    g_startup_depth = 0;
    for (int i = 0; i < NUM_SIGNALS; i++) {
        if (!g_installed[i]) continue;
        // SIGUSR1 would otherwise end the process: a batch scheduler sends it minutes before a
        // job's end, and mpirun forwards a copy to ranks that a group signal reached already. A
        // run that has just finished (its report, its last files, MPI_Finalize still to come)
        // or just stopped as asked must not die of it with status 138. So once armed, the
        // handler stays for the life of the process, a no-op while no training runs. A
        // disposition of someone else's (not the default) is put back.
        if (SIGNALS[i] == SIGUSR1 && g_old[i].sa_handler == SIG_DFL && !(g_old[i].sa_flags & SA_SIGINFO)) {
            g_usr1_kept = true;
            continue;
        }
        sigaction(SIGNALS[i], &g_old[i], NULL);
    }
    g_starting = 0;
    g_depth = 0;   // last: a SIGINT or SIGTERM until here was still a request, not lost
}

void stop_signal_set(sigset_t *set) {
    sigemptyset(set);
    for (int i = 0; i < NUM_SIGNALS; i++) sigaddset(set, SIGNALS[i]);
}

int stop_signal_pending(void) { return g_pending; }

int stop_signal_request(void) { return g_depth > 0 ? g_pending : 0; }

void stop_signal_starting(bool starting) { g_starting = starting; }

const char *stop_signal_name(int sig) {
    static char other[32];
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    default: snprintf(other, sizeof other, "signal %d", sig); return other;
    }
}
