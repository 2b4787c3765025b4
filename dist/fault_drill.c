// MV_FAULT: a rank stopped on purpose at a named point of a run (see fault_drill.h).
#include "dist/fault_drill.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

static const struct {
    const char *name;
    mv_fault_point point;
    const char *where;   // for the message the stopping rank prints
} drills[] = {
    {"stop-in-eval", MV_FAULT_STOP_IN_EVAL, "at the start of the first evaluation's last data.val source"},
};
#define NUM_DRILLS (int)(sizeof drills / sizeof drills[0])

int fault_drill_read(mv_fault_drill *f, int world) {
    *f = (mv_fault_drill){.point = MV_FAULT_NONE, .rank = -1};
    const char *v = getenv("MV_FAULT");
    if (!v || !*v) return 0;
    const char *colon = strchr(v, ':');
    for (int i = 0; colon && i < NUM_DRILLS; i++) {
        if (strlen(drills[i].name) != (size_t)(colon - v) || strncmp(v, drills[i].name, (size_t)(colon - v)) != 0)
            continue;
        char *end = NULL;
        long r = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || r < 0)
            break;
        if (r >= world)
            return mv_fail("MV_FAULT=%s: rank %ld: the job has ranks 0 to %d only", v, r, world - 1);
        f->point = drills[i].point;
        f->rank = (int)r;
        return 0;
    }
    return mv_fail("MV_FAULT=%s: expected POINT:RANK, POINT one of: stop-in-eval (a fault drill, "
                   "docs/distributed.md)", v);
}

void fault_drill_at(mv_fault_drill *f, mv_fault_point point, int rank, int world) {
    if (f->done || f->point != point || f->rank != rank) return;
    f->done = true;
    for (int i = 0; i < NUM_DRILLS; i++)
        if (drills[i].point == point)
            fprintf(stderr, "maskvim: rank %d/%d: fault drill (MV_FAULT): this rank stops %s\n", rank, world,
                    drills[i].where);
    fflush(stderr);
    raise(SIGSTOP);
}
