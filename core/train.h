// The training service: loader -> forward/backward -> gradient all-reduce (overlapped with
// backward) -> AdamW -> schedule, with logs and metrics.jsonl, periodic evaluation on every
// data.val source, atomic checkpoints and exact resume. Every rank runs train_run; rank 0
// alone writes files.
#pragma once
#include "core/config.h"
#include "dist/comm.h"

typedef struct {
    const char *resume;     // NULL: fresh run; "auto": newest checkpoint in run.work_dir if any; else a path
    int stop_after;         // stop (with a checkpoint) after this many iterations of this process (0: no limit)
    bool quiet;             // no progress bar
} mv_train_opts;

// Returned by train_run when SIGINT, SIGTERM, SIGHUP or SIGUSR1 stopped the run (core/stop_signal.h):
// every rank stopped after the same step and a checkpoint of it is written, or, for a request
// taken while the run started up, every rank stopped before its first step with nothing
// trained and no new checkpoint; either way `--resume auto` continues exactly. *stop_signal
// (when given) receives the signal.
#define MV_TRAIN_STOPPED 1

// 0 when the run finished (or stopped after opts->stop_after iterations), MV_TRAIN_STOPPED,
// or -1 with the error set. From its start to the end of its training loop, the stop signals
// are caught.
int train_run(const mv_config *cfg, mv_comm *comm, const mv_train_opts *opts, int *stop_signal);
