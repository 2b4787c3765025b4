// MV_FAULT: a rank stopped, or the checkpoint writer killed, on purpose at a named point of a run
// (see fault_drill.h).
#include "dist/fault_drill.h"
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/checkpoint.h"
#include "core/crash_point.h"
#include "core/error.h"

static const struct {
    const char *name;
    mv_fault_point point;
    mv_crash_stage stage;   // of a checkpoint drill (its argument is a file, not a rank)
    const char *where;      // for the message the stopping rank prints
} drills[] = {
    {"stop-in-eval", MV_FAULT_STOP_IN_EVAL, MV_CRASH_NONE, "at the start of the first evaluation's last data.val source"},
    {"kill-before-rename", MV_FAULT_KILL_IN_CHECKPOINT, MV_CRASH_BEFORE_RENAME, NULL},
    {"kill-after-rename", MV_FAULT_KILL_IN_CHECKPOINT, MV_CRASH_AFTER_RENAME, NULL},
    {"kill-before-latest", MV_FAULT_KILL_IN_CHECKPOINT, MV_CRASH_BEFORE_LATEST, NULL},
};
#define NUM_DRILLS (int)(sizeof drills / sizeof drills[0])

// N of iter_N.h5 as checkpoint_iter_path writes it (N >= 1, no leading zeros), 0 for best.h5
// where `best_allowed`, -1 for anything else.
static int64_t checkpoint_file_iter(const char *file, bool best_allowed) {
    if (!strcmp(file, "best.h5")) return best_allowed ? 0 : -1;
    int64_t step = checkpoint_iter_step(file);
    char canonical[64];
    snprintf(canonical, sizeof canonical, "iter_%lld.h5", (long long)step);
    return step >= 1 && !strcmp(canonical, file) ? step : -1;
}

int fault_drill_read(mv_fault_drill *f, int world) {
    *f = (mv_fault_drill){.point = MV_FAULT_NONE, .rank = -1};
    crash_point_arm(MV_CRASH_NONE, NULL, NULL);
    const char *v = getenv("MV_FAULT");
    if (!v || !*v) return 0;
    const char *colon = strchr(v, ':');
    for (int i = 0; colon && i < NUM_DRILLS; i++) {
        if (strlen(drills[i].name) != (size_t)(colon - v) || strncmp(v, drills[i].name, (size_t)(colon - v)) != 0)
            continue;
        if (drills[i].stage != MV_CRASH_NONE) {
            const char *file = colon + 1;
            bool latest = drills[i].stage == MV_CRASH_BEFORE_LATEST;
            int64_t iter = checkpoint_file_iter(file, !latest);
            if (iter < 0)
                return mv_fail("MV_FAULT=%s: '%s' is not a checkpoint %s: expected iter_N.h5%s (a fault drill, "
                               "docs/checkpoints.md)", v, file, latest ? "that `latest` names" : "file",
                               latest ? "" : " or best.h5");
            f->point = drills[i].point;
            f->rank = 0;   // the checkpoint writer
            f->iter = iter;
            snprintf(f->value, sizeof f->value, "%s", v);
            crash_point_arm(drills[i].stage, file, v);
            return 0;
        }
        char *end = NULL;
        long r = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || r < 0)
            break;
        if (r >= world)
            return mv_fail("MV_FAULT=%s: rank %ld: the job has ranks 0 to %d only", v, r, world - 1);
        f->point = drills[i].point;
        f->rank = (int)r;
        snprintf(f->value, sizeof f->value, "%s", v);
        return 0;
    }
    return mv_fail("MV_FAULT=%s: expected stop-in-eval:RANK, or kill-before-rename:FILE, kill-after-rename:FILE "
                   "or kill-before-latest:FILE (FILE: iter_N.h5 or best.h5; a fault drill, docs/distributed.md, "
                   "docs/checkpoints.md)", v);
}

void fault_drill_at(mv_fault_drill *f, mv_fault_point point, int rank, int world) {
    if (f->done || f->point != point || f->rank != rank) return;
    f->done = true;
    for (int i = 0; i < NUM_DRILLS; i++)
        if (drills[i].point == point && drills[i].where)
            fprintf(stderr, "maskvim: rank %d/%d: fault drill (MV_FAULT): this rank stops %s\n", rank, world,
                    drills[i].where);
    fflush(stderr);
    raise(SIGSTOP);
}

void fault_drill_warning(const mv_fault_drill *f, long max_iters, long ckpt_every, char *out, size_t n) {
    out[0] = '\0';
    if (f->point == MV_FAULT_NONE) return;
    if (f->point == MV_FAULT_STOP_IN_EVAL) {
        snprintf(out, n, "fault drill armed (MV_FAULT=%s): rank %d will stop itself (SIGSTOP) in the first evaluation",
                 f->value, f->rank);
        return;
    }
    const char *file = strchr(f->value, ':') + 1;
    int64_t it = f->iter;
    bool never = it > max_iters || (it > 0 && it != max_iters && (ckpt_every <= 0 || it % ckpt_every != 0));
    if (never)
        snprintf(out, n, "fault drill armed (MV_FAULT=%s): %s is none of this run's periodic checkpoints (every %ld "
                 "iterations up to %ld): the drill does nothing unless the run stops there", f->value, file,
                 ckpt_every, max_iters);
    else
        snprintf(out, n, "fault drill armed (MV_FAULT=%s): the process saving %s will be killed (SIGKILL) during the save",
                 f->value, file);
}
