// Crash points: the moments of writing a checkpoint where a fault drill (MV_FAULT,
// dist/fault_drill.h) may end the process at once, as `kill -9` or a power cut would, so that
// recovery from each of them (`--resume auto` after a crash half-way through a save) is tested
// exactly, not by a kill timed from outside that lands only near the moment.
//
// One point at most is armed per process, for one file name; it fires once. Unarmed (the
// default), crash_point costs a comparison.
#pragma once

typedef enum {
    MV_CRASH_NONE = 0,
    MV_CRASH_BEFORE_RENAME,   // FILE.tmp written in full (closed), not yet renamed to FILE
    MV_CRASH_AFTER_RENAME,    // FILE renamed into place (the folder synced), `latest` not yet naming it
    MV_CRASH_BEFORE_LATEST,   // latest.tmp naming FILE written in full, not yet renamed over `latest`
} mv_crash_stage;

// Arms `stage` for the checkpoint named `file` (a base name: iter_5.h5, best.h5), with `what`
// (the drill, for the message); MV_CRASH_NONE disarms.
void crash_point_arm(mv_crash_stage stage, const char *file, const char *what);
// The writer of checkpoint `path` (any folder) at `stage`: when that is the armed point, says so
// on stderr and ends the process with SIGKILL. Returns otherwise.
void crash_point(mv_crash_stage stage, const char *path);
