// A watchdog over MPI start-up. MPI_Init waits for every rank inside the MPI library (Open MPI's
// start-up exchange), where maskvim's timed waits cannot reach: a rank that never gets there
// (stopped, its binary on a hung file system, its host gone) would hold the others there for
// ever. The watchdog ends this process after the limit instead, with a message; mpirun then
// ends the job.
#pragma once

typedef struct mv_startup_watchdog mv_startup_watchdog;

// Starts the watchdog over `what` (a phrase: "MPI start-up") for limit_s seconds (comm.c reads
// MV_COMM_STARTUP_TIMEOUT); NULL when the limit is 0 (or the thread cannot start: then start-up
// is just not watched).
mv_startup_watchdog *startup_watchdog_start(double limit_s, const char *what);
// Ends the watch (NULL is allowed).
void startup_watchdog_stop(mv_startup_watchdog *w);
