// Cross-rank sums for synchronised BatchNorm (see syncbn.h).
#include "dist/syncbn.h"
#include "core/error.h"
#include <stdio.h>

int syncbn_allreduce(mv_comm *c, double *buf, int n) {
    if (comm_allreduce_sum_doubles(c, buf, n) < 0) return mv_fail_context("SyncBN statistics (%d values)", n);
    return 0;
}

void syncbn_reduce_cb(void *ctx, double *buf, int n) {
    mv_comm *c = ctx;
    if (!c || c->world <= 1) return;
    if (syncbn_allreduce(c, buf, n) < 0) comm_abort(1, mv_last_error());
}
