// OpenMP threads per rank when several ranks share a host. Each rank's OpenMP would otherwise
// start one thread per CPU it may run on: with mpirun's binding for more than two ranks (to a
// socket), or none, every rank may run on every core, so N ranks start N threads per core and
// their spin-waits take the cores from each other (three ranks on two cores trained several
// times slower, and a healthy step outlasted a collective's timeout). Unless OMP_NUM_THREADS is
// set, each rank takes an equal share of the CPUs it may use: its CPUs divided by the number of
// ranks on its host whose CPUs overlap its own (at least 1 thread).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "dist/comm.h"

// The share for `cpus` CPUs overlapped by `sharing` ranks (itself included): at least 1.
int rank_threads_for(int cpus, int sharing);
// Called by comm_init on every rank (a collective over the ranks of each host when there are
// several, whatever each rank's OMP_NUM_THREADS); sets c->threads and, unless OMP_NUM_THREADS
// is set, OpenMP's thread count. 0, or -1 with a message.
int rank_threads_share(mv_comm *c);
// OMP_NUM_THREADS asks for more threads than the CPUs this rank shares with the ranks of its
// host (threads x ranks > CPUs). Three ranks of two threads on two cores trained 20 times slower
// than with one thread each: the ranks' OpenMP barriers spin for the cores the others need.
bool rank_threads_oversubscribed(const mv_rank_threads *t);
// What a start-up warning says of that ("" when the threads fit the CPUs).
void rank_threads_oversubscribed_warning(const mv_comm *c, char *out, size_t n);
// "2 OpenMP threads", "1 OpenMP thread per rank (2 CPUs shared by 3 ranks of its host)" and
// the like: this rank's, for a start-up line.
void rank_threads_describe(const mv_comm *c, char *out, size_t n);
