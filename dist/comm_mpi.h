// The MPI side of mv_comm, private to dist/*.c: the communicators behind c->impl and the
// waiting loop with a timeout that every blocking collective and grad_sync share.
#pragma once
#include <stdbool.h>
#include "core/clock.h"
#include "dist/comm.h"

// One pause of a polling loop that has waited `waited_s` so far: spins at first (latency),
// then yields, so a waiting rank leaves the cores to the ranks still computing.
void comm_mpi_backoff(double waited_s);
// One turn of a polling wait that began at t0 (mv_now_s): true once it has waited longer than
// c->timeout_s (*waited_s: how long; the caller fails with "<what> not complete after N s"
// MV_COMM_TIMEOUT_WHY), else false after a comm_mpi_backoff pause.
bool comm_mpi_timed_out(const mv_comm *c, double t0, double *waited_s);
// What a wait that timed out tells: the likely causes and the setting that changes the limit.
#define MV_COMM_TIMEOUT_WHY \
    ": a rank has stopped or is stuck, or its host cannot be reached (MV_COMM_TIMEOUT sets this limit)"

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
