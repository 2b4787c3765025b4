// Fault drills: MV_FAULT makes one rank of a training job stop on purpose at a chosen point, so
// that the failure handling (the other ranks' collective timeout, the checkpoint rank 0 writes
// on the way out, the resume) can be rehearsed on a real cluster, and tested at a point that a
// signal sent from outside could only hit by chance. The stop is SIGSTOP, the process frozen as
// by `kill -STOP`: it neither computes nor answers, and mpirun's abort still ends it.
//
//   MV_FAULT=stop-in-eval:R   rank R stops as it starts the first evaluation's last data.val
//                             source (after the others: rank 0 has logged them and may have
//                             written best.h5; the other ranks time out in that source's sums)
//
// The checkpoint drills end the process that writes checkpoint FILE (iter_N.h5 or best.h5; rank
// 0) with SIGKILL at one moment of the save (core/crash_point.h), the first time FILE is saved:
//   MV_FAULT=kill-before-rename:FILE   FILE.tmp written in full, not renamed to FILE
//   MV_FAULT=kill-after-rename:FILE    FILE in place, `latest` still naming the one before
//   MV_FAULT=kill-before-latest:FILE   latest.tmp naming FILE written, `latest` not replaced
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MV_FAULT_NONE = 0,
    MV_FAULT_STOP_IN_EVAL,
    MV_FAULT_KILL_IN_CHECKPOINT,   // armed in core/crash_point.h: it needs no call of fault_drill_at
} mv_fault_point;

typedef struct {
    mv_fault_point point;
    int rank;         // the rank that stops (a checkpoint drill: 0, the writer)
    bool done;        // a drill happens once per run
    char value[96];   // MV_FAULT as given (for the warning)
    int64_t iter;     // a checkpoint drill's FILE: N of iter_N.h5, 0 for best.h5
} mv_fault_drill;

// Reads MV_FAULT (unset or empty: no drill) and arms a checkpoint drill's crash point. 0, or -1
// with a message for a value that is not a drill, names a rank the job (`world` ranks) does not
// have, or a file that is no checkpoint of a run (or, for kill-before-latest, never `latest`'s).
int fault_drill_read(mv_fault_drill *f, int world);
// Rank `rank` at `point`: when the drill is for this rank and point (and has not happened), says
// so on stderr and stops the process. Returns when the drill is not due, or once the process is
// continued (SIGCONT).
void fault_drill_at(mv_fault_drill *f, mv_fault_point point, int rank, int world);
// The warning of a run with a drill armed, so that an MV_FAULT left in a shell's environment
// cannot end a real run unannounced; "" without one. A checkpoint drill for an iter_N.h5 that is
// none of the periodic checkpoints of a run of `max_iters` iterations saving every `ckpt_every`
// (0: at the end only) is said to do nothing unless the run stops there.
void fault_drill_warning(const mv_fault_drill *f, long max_iters, long ckpt_every, char *out, size_t n);
