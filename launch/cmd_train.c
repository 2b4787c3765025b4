// `maskvim train`: one training run from a YAML experiment (see core/train.h). Under mpirun,
// every rank runs this command; rank 0 writes the run directory.
#include "launch/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/stop_signal.h"
#include "core/train.h"
#include "dist/comm.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: [mpirun -np N] maskvim train [FILE.yaml] [--set key=value ...] [--resume auto|PATH]\n"
        "                                   [--stop-after N] [--quiet]\n\n"
        "Trains MaskViM as FILE describes (without FILE: the built-in default, maskvim-nano on\n"
        "the synthetic domains, on the GPU where one is present (run.device: auto), else the\n"
        "CPU). The run directory (run.work_dir) receives config.yaml (the resolved configuration),\n"
        "metrics.jsonl (a record per start, log interval and evaluated domain), iter_<step>.h5\n"
        "checkpoints, best.h5 and `latest`. Started without --resume in a directory that holds an\n"
        "earlier run, it first moves that run's files into run.work_dir/previous-<time>/.\n\n"
        "  --set key=value   override any configuration key (keys: docs/config.md; `maskvim config\n"
        "                    FILE --set ...` prints the resolved configuration without training)\n"
        "  --resume auto     continue from the newest checkpoint in run.work_dir, if any\n"
        "  --resume PATH     continue from this checkpoint, or from the one a run folder's `latest`\n"
        "                    names when PATH is that folder (refused if the model differs)\n"
        "  --stop-after N    stop after N iterations with a checkpoint (for tests and sweeps)\n"
        "  --quiet           no progress bar\n\n"
        "SIGINT (Ctrl-C), SIGTERM, SIGHUP (the terminal closed; not under nohup) or SIGUSR1 during\n"
        "training stop the run after the current step with a checkpoint (every rank at the same\n"
        "step; under mpirun send SIGUSR1, which mpirun forwards to the ranks); during startup (MPI,\n"
        "data, model, --resume), before the first step, with nothing trained. The exit status is\n"
        "then 128 + the signal, and `--resume auto` continues exactly. A second SIGINT, SIGTERM or\n"
        "SIGHUP stops at once.\n");
}

int cmd_train(int argc, char **argv) {
    const char *file = NULL, *resume = NULL;
    const char **sets = mv_calloc(argc + 1, sizeof(char *));
    int nsets = 0, stop_after = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(sets); return 0; }
        if (!strcmp(a, "--quiet")) { quiet = true; continue; }
        if (a[0] != '-') {
            if (file) { fprintf(stderr, "maskvim train: more than one configuration file ('%s', '%s')\n", file, a); free(sets); return 2; }
            file = a;
            continue;
        }
        if (!v) { cli_missing_value("train", a, usage); free(sets); return 2; }
        if (!strcmp(a, "--set")) sets[nsets++] = v;
        else if (!strcmp(a, "--resume")) {
            if (!v[0]) {   // "" would silently start a fresh run
                fprintf(stderr, "maskvim train: --resume '': give auto or the path of a checkpoint\n");
                free(sets);
                return 2;
            }
            resume = v;
        }
        else if (!strcmp(a, "--stop-after")) {
            long n;
            if (cli_parse_long(v, 1, 1000000000, &n) < 0) {
                fprintf(stderr, "maskvim train: --stop-after '%s': expected a number of iterations >= 1\n", v);
                free(sets);
                return 2;
            }
            stop_after = (int)n;
        }
        else { cli_unknown_option("train", a, usage); free(sets); return 2; }
        i++;
    }
    // Output into a pipe whose reader is gone (Ctrl-C ends a `| tee` as well) must not kill the
    // run before it stops with its checkpoint: such writes fail quietly instead.
    signal(SIGPIPE, SIG_IGN);
    // Stop signals are requests from the start, before MPI_Init (Open MPI leaves SIGINT, SIGTERM
    // and SIGUSR1 to us): a scheduler, mpirun or a sweep may signal a run that is still starting
    // up (writing synthetic data, loading its checkpoint). train_run reads such a request once
    // its setup is done and stops before the first step (core/stop_signal.h).
    stop_signal_starting(true);   // first: arming delivers a signal held back since exec
    stop_signal_arm_startup();   // ended by train_run's own disarm, once its training is over
    mv_comm comm;
    if (comm_init(&comm, &argc, &argv) < 0) {
        stop_signal_end_startup();
        fprintf(stderr, "maskvim train: %s\n", mv_last_error());
        free(sets);
        return 1;
    }
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    int rc = config_load(cfg, file, nsets, sets), sig = 0;
    if (rc == 0) {
        mv_train_opts o = {resume, stop_after, quiet};
        rc = train_run(cfg, &comm, &o, &sig);
    }
    // SIGINT and SIGTERM end the process again (train_run ended the startup arm already, unless
    // it failed before its own arm); SIGUSR1 stays caught and is ignored.
    stop_signal_end_startup();
    if (rc < 0) {
        char msg[MV_ERRMSG_MAX + 32];
        snprintf(msg, sizeof msg, "train: %s", mv_last_error());
        free(cfg); free(sets);
        if (comm.world > 1) comm_abort(1, msg);   // never leave the other ranks waiting
        fprintf(stderr, "maskvim %s\n", msg);
        comm_finalize(&comm);
        return 1;
    }
    free(cfg); free(sets);
    comm_finalize(&comm);
    // Stopped by a signal with a checkpoint: not a finished run, so not status 0 (a job script
    // goes on to its next step only when training is done); the shell's status for the signal.
    return rc == MV_TRAIN_STOPPED ? 128 + sig : 0;
}
