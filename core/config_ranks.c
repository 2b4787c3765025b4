// Ranks started alike (config_ranks.h). Without this a rank started with another seed, learning
// rate, batch or preprocessing would go on silently (its parameters drifting from the others', or
// its share of an evaluation made otherwise and summed in), another model or iteration count
// would end in an MPI error far from the cause, and another --stop-after would leave the ranks'
// collectives out of step until the communication timeout.
#include "core/config_ranks.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"

typedef struct {
    mv_config cfg;                       // the struct holds no pointers: one layout on every rank
    char options[MV_RANK_OPTIONS_MAX];   // (comm_init compared the builds)
} rank_setup;

int config_check_same_on_ranks(const mv_config *cfg, const char *options, mv_comm *comm) {
    if (comm->world <= 1) return 0;
    rank_setup *r0 = mv_calloc(1, sizeof *r0);
    r0->cfg = *cfg;
    snprintf(r0->options, sizeof r0->options, "%s", options ? options : "");
    char mine[MV_RANK_OPTIONS_MAX];
    snprintf(mine, sizeof mine, "%s", r0->options);
    if (comm_bcast_bytes(comm, r0, sizeof *r0) < 0) { free(r0); return -1; }
    memcpy(r0->cfg.run.work_dir, cfg->run.work_dir, sizeof r0->cfg.run.work_dir);
    r0->cfg.data.workers = cfg->data.workers;
    char what[MV_COMM_MSG_MAX] = "", key[384], va[384], vb[384];
    if (config_first_difference(&r0->cfg, cfg, key, va, vb, sizeof va))
        snprintf(what, sizeof what, "%.300s: %.300s on rank 0, %.300s on rank %d", key, va, vb, comm->rank);
    else if (strcmp(r0->options, mine))
        snprintf(what, sizeof what, "the options '%.400s' on rank 0, '%.400s' on rank %d", r0->options, mine,
                 comm->rank);
    free(r0);
    // The first rank that differs hands its finding to every rank, so rank 0 reports it
    // whichever rank aborts first.
    int first;
    if (comm_first_message(comm, what, sizeof what, &first) < 0) return -1;
    if (first < 0) return 0;
    return mv_fail("rank %d was started with another configuration than rank 0: %s (start every rank with the same "
                   "file and options)", first, what);
}
