// Graceful stop requests from signals (see stop_signal.h).
#include "core/stop_signal.h"
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_pending = 0;
static int g_depth = 0;   // nested arm/disarm pairs (a sweep arms around the trainings it runs)
static const int SIGNALS[] = {SIGINT, SIGTERM, SIGUSR1};
#define NUM_SIGNALS ((int)(sizeof SIGNALS / sizeof SIGNALS[0]))
static struct sigaction g_old[NUM_SIGNALS];
static bool g_installed[NUM_SIGNALS];

static void say(const char *text) {   // async-signal-safe
    ssize_t r = write(STDERR_FILENO, text, strlen(text));
    (void)r;
}

static void on_signal(int sig) {
    if (g_pending && sig != SIGUSR1) {
        // Asked twice: stop now, as the signal would have without us.
        say("maskvim: stopping at once\n");
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    if (!g_pending) {
        g_pending = sig;
        say(sig == SIGUSR1 ? "maskvim: SIGUSR1: stopping after this step with a checkpoint\n"
                           : "maskvim: stopping after this step with a checkpoint (send the signal again to stop at once)\n");
    }
}

void stop_signal_arm(void) {
    if (g_depth++ > 0) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < NUM_SIGNALS; i++) {
        g_installed[i] = false;
        if (sigaction(SIGNALS[i], NULL, &g_old[i]) != 0) continue;
        // A signal ignored by whoever started us (SIGINT for a job a script put in the
        // background) stays ignored.
        if (g_old[i].sa_handler == SIG_IGN) continue;
        sa.sa_handler = on_signal;
        g_installed[i] = sigaction(SIGNALS[i], &sa, NULL) == 0;
    }
}

void stop_signal_disarm(void) {
    if (g_depth == 0 || --g_depth > 0) return;
    for (int i = 0; i < NUM_SIGNALS; i++) {
        if (!g_installed[i]) continue;
        // After a stop, a late SIGUSR1 (the copy mpirun forwards to a rank that a process-group
        // signal reached first) must not kill the process that has just stopped as asked: the
        // handler stays, and with a request pending it does nothing.
        if (SIGNALS[i] == SIGUSR1 && g_pending) continue;
        sigaction(SIGNALS[i], &g_old[i], NULL);
    }
}

int stop_signal_pending(void) { return g_pending; }

void stop_signal_clear(void) { g_pending = 0; }

const char *stop_signal_name(int sig) {
    static char other[32];
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: snprintf(other, sizeof other, "signal %d", sig); return other;
    }
}
