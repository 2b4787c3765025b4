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

int train_run(const mv_config *cfg, mv_comm *comm, const mv_train_opts *opts);
