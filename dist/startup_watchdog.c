// The MPI start-up watchdog (see startup_watchdog.h).
#include "dist/startup_watchdog.h"
#include "core/error.h"
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct mv_startup_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    double limit_s;
    char what[64];
};

// The rank as the launcher gave it (MPI cannot say yet: it is what has not started).
static const char *launcher_rank(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return getenv(vars[i]);
    return "?";
}

static void *watch(void *arg) {
    mv_startup_watchdog *w = arg;
    // CLOCK_MONOTONIC stops while the machine is suspended: a suspended VM is not a stuck rank
    // (the collectives' own timeouts count only the time the process ran, likewise).
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)w->limit_s;
    until.tv_nsec += (long)((w->limit_s - (double)(time_t)w->limit_s) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
    bool fire = !w->done;
    pthread_mutex_unlock(&w->mu);
    if (fire) {
        fprintf(stderr,
                "maskvim: rank %s: %s not complete after %.0f s: a rank has not started or is stuck (stopped, its "
                "binary on a hung file system, its host unreachable); MV_COMM_STARTUP_TIMEOUT sets this limit\n",
                launcher_rank(), w->what, w->limit_s);
        fflush(stderr);
        _exit(1);   // exit() would run MPI's handlers, which wait for the same missing rank
    }
    return NULL;
}

mv_startup_watchdog *startup_watchdog_start(double limit_s, const char *what) {
    if (!(limit_s > 0.0)) return NULL;
    mv_startup_watchdog *w = mv_calloc(1, sizeof *w);
    w->limit_s = limit_s;
    snprintf(w->what, sizeof w->what, "%s", what);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&w->thread, NULL, watch, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void startup_watchdog_stop(mv_startup_watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
