// Each rank's share of its host's CPUs as OpenMP threads (see rank_threads.h).
#define _GNU_SOURCE
#include "dist/rank_threads.h"
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "dist/comm_mpi.h"

int rank_threads_for(int cpus, int sharing) {
    int t = sharing > 0 ? cpus / sharing : cpus;
    return t < 1 ? 1 : t;
}

int rank_threads_share(mv_comm *c) {
    mv_rank_threads *t = &c->threads;
    cpu_set_t mine;
    CPU_ZERO(&mine);
    int have_mask = sched_getaffinity(0, sizeof mine, &mine) == 0;
    if (!have_mask) CPU_ZERO(&mine);   // overlaps no rank: this rank keeps OpenMP's count
    t->cpus = have_mask ? CPU_COUNT(&mine) : omp_get_num_procs();
    t->sharing = 1;
    const char *env = getenv("OMP_NUM_THREADS");
    t->from_env = env && *env;
    t->threads = omp_get_max_threads();
    if (c->local_size <= 1) return 0;
    // Every rank of the host takes part, whatever its own environment or mask says: a rank
    // started with OMP_NUM_THREADS beside one without (an MPMD command line) must not leave the
    // other waiting in this collective.
    cpu_set_t *all = mv_calloc((size_t)c->local_size, sizeof *all);
    int rc = comm_mpi_node_allgather(c, &mine, all, sizeof mine);
    if (rc == 0 && have_mask) {
        t->sharing = 0;
        for (int r = 0; r < c->local_size; r++) {
            cpu_set_t both;
            CPU_AND(&both, &mine, &all[r]);
            t->sharing += CPU_COUNT(&both) > 0;
        }
        if (!t->from_env) {
            t->threads = rank_threads_for(t->cpus, t->sharing);
            omp_set_num_threads(t->threads);
        }
    }
    free(all);
    return rc;
}

bool rank_threads_oversubscribed(const mv_rank_threads *t) {
    return t->from_env && (long)t->threads * t->sharing > t->cpus;
}

void rank_threads_oversubscribed_warning(const mv_comm *c, char *out, size_t n) {
    const mv_rank_threads *t = &c->threads;
    if (!rank_threads_oversubscribed(t)) {
        if (n) out[0] = 0;
        return;
    }
    char who[64] = "";
    if (t->sharing > 1) snprintf(who, sizeof who, " on each of %d ranks", t->sharing);
    snprintf(out, n, "OMP_NUM_THREADS=%d%s: %ld threads for %d CPU%s, whose spin-waits take the cores from each "
             "other (it can run many times slower); unset OMP_NUM_THREADS to give each rank its share of the CPUs",
             t->threads, who, (long)t->threads * t->sharing, t->cpus, t->cpus == 1 ? "" : "s");
}

void rank_threads_describe(const mv_comm *c, char *out, size_t n) {
    const mv_rank_threads *t = &c->threads;
    int len = snprintf(out, n, "%d OpenMP thread%s%s", t->threads, t->threads == 1 ? "" : "s",
                       c->world > 1 ? " per rank" : "");
    if (len < 0 || (size_t)len >= n) return;
    if (t->from_env)
        snprintf(out + len, n - (size_t)len, " (OMP_NUM_THREADS)");
    else if (t->sharing > 1)
        snprintf(out + len, n - (size_t)len, " (%d CPUs shared by %d ranks of its host)", t->cpus, t->sharing);
}
