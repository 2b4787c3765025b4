// The MPI side of mv_comm, private to dist/*.c: the communicators behind c->impl and the
// waiting loop with a timeout that every blocking collective and grad_sync share.
#pragma once
#include <stdbool.h>
#include "core/clock.h"
#include "dist/comm.h"

// One pause of a polling loop that has waited `waited_s` so far: spins at first (latency),
// then yields, then sleeps (up to 1 ms), so a waiting rank leaves the cores to the ranks still
// computing.
void comm_mpi_backoff(double waited_s);
// The clock of one polling wait: the time it has spent waiting while this process ran. A
// process that was itself stopped (SIGSTOP, a suspended VM) came back to a wall clock that had
// moved on, and failed a healthy collective, blaming "a rank" that was itself.
typedef struct {
    double start, last, away;   // mv_now_s at the start and at the last turn; seconds not running
} mv_wait_clock;
void comm_mpi_wait_start(mv_wait_clock *w);
// One turn of a polling wait: true once it has waited longer than c->timeout_s (*waited_s: how
// long; the caller fails with "<what> not complete after N s" MV_COMM_TIMEOUT_WHY), else false
// after a comm_mpi_backoff pause. A gap of over a second between two turns (a pause is at most
// 1 ms) is time this process did not run, and does not count.
bool comm_mpi_timed_out(const mv_comm *c, mv_wait_clock *w, double *waited_s);
// What a wait that timed out tells: the likely causes and the setting that changes the limit.
#define MV_COMM_TIMEOUT_WHY \
    ": a rank has stopped or is stuck, or its host cannot be reached (MV_COMM_TIMEOUT sets this limit)"

// Every rank of this host's n bytes `mine`, in local-rank order, into all[0..local_size*n) (a
// collective over the host's ranks, with the timeout). 0 or -1.
int comm_mpi_node_allgather(mv_comm *c, const void *mine, void *all, size_t n);

#ifdef MV_HAVE_MPI
#include <mpi.h>

typedef struct {
    MPI_Comm comm;   // duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN: errors come back as values
    MPI_Comm node;   // the processes of this node (MPI_COMM_TYPE_SHARED)
    int owns_mpi;    // comm_init called MPI_Init_thread, so comm_finalize calls MPI_Finalize
} mv_comm_mpi;

static inline MPI_Comm comm_mpi_handle(const mv_comm *c) { return ((const mv_comm_mpi *)c->impl)->comm; }

// Records "what: <MPI's error text>" and returns -1.
int comm_mpi_fail(int err, const char *what);
// Waits for one request with c->timeout_s; -1 with "what: ..." on error or timeout.
int comm_mpi_wait(mv_comm *c, MPI_Request *req, const char *what);
#endif
