// Ranks and the communicator: who am I (rank, world, node-local rank), and the few collectives
// the trainer needs besides the gradient all-reduce (dist/grad_sync.h): broadcast of the initial
// parameters, sums of small double arrays (metrics, SyncBN statistics, the ratio-loss mean),
// a barrier, and a job-wide abort so that one failing rank ends the whole job instead of
// leaving the others waiting in a collective.
//
// Backends: MPI (the CPU path, built when MV_HAVE_MPI is defined), a single-rank stand-in with
// the same API (no MPI in the build, or a process started without mpirun), and later NCCL for
// gradients on GPUs (MPI still bootstraps ranks and carries the small collectives then).
// Every call must come from the thread that called comm_init (MPI_THREAD_FUNNELED).
#pragma once
#include <stddef.h>

typedef enum {
    MV_DIST_SINGLE = 0,   // one process, no communication at all
    MV_DIST_MPI = 1,      // MPI collectives on host memory
    MV_DIST_NCCL = 2,     // reserved: the GPU engine's gradients go through dist/nccl_comm.h
                          // (on the device), never through grad_sync, which refuses it
} mv_dist_backend;

// This rank's OpenMP threads, as comm_init set them (dist/rank_threads.h).
typedef struct {
    int threads;    // OpenMP threads this rank uses
    int cpus;       // CPUs this rank may run on (its affinity mask)
    int sharing;    // ranks on this host whose CPUs overlap this rank's, itself included (1 when unknown)
    int from_env;   // OMP_NUM_THREADS was set, and is kept
} mv_rank_threads;

typedef struct {
    int rank, world;              // position in the job and number of processes
    int local_rank, local_size;   // position among the processes of this node (GPU binding)
    mv_dist_backend backend;      // what grad_sync uses for gradients
    double timeout_s;             // a collective waiting longer than this fails (0: wait forever)
    mv_rank_threads threads;      // OpenMP threads: the rank's share of its host's CPUs
    void *impl;                   // backend state (MPI communicators), private to dist/comm.c
} mv_comm;

// Starts the job's communication. Under mpirun (or another MPI launcher, or with MV_FORCE_MPI=1)
// initialises MPI with MPI_THREAD_FUNNELED; started directly it runs as rank 0 of 1 without
// touching MPI. The collective timeout defaults to 1800 s, or MV_COMM_TIMEOUT seconds (0: none).
// With several ranks, every rank then compares its build's identity (core/build_info.h) with
// the others', in one exchange of a fixed size: ranks of different maskvim builds fail here,
// all of them, naming the first rank that differs from rank 0 and both builds (MPI finalized).
// Then ranks that share CPUs split them (c->threads, dist/rank_threads.h).
// Returns 0, or -1 with a message.
int comm_init(mv_comm *c, int *argc, char ***argv);
// Ends communication (MPI_Finalize if comm_init started MPI). Safe on a zeroed or failed comm.
void comm_finalize(mv_comm *c);
// Ends the whole job from any rank: prints "maskvim: rank R/N: msg" ("maskvim: msg" with one
// rank) to stderr and calls MPI_Abort
// (or exit(code) without MPI). Use it whenever one rank cannot continue, so no rank hangs.
_Noreturn void comm_abort(int code, const char *msg);

// Copies rank 0's buf[0..n) into every rank's buf. Returns 0, or -1 with a message.
int comm_bcast_floats(mv_comm *c, float *buf, size_t n);
// Copies rank 0's bytes buf[0..n) into every rank's buf (seeds, hashes, small records). 0 or -1.
int comm_bcast_bytes(mv_comm *c, void *buf, size_t n);
// Every rank's n bytes `mine`, in rank order, into all[0..world*n) on every rank (small records). 0 or -1.
int comm_allgather_bytes(mv_comm *c, const void *mine, void *all, size_t n);
// What a check that each rank makes for itself found, agreed by all: every rank passes its own
// finding in msg ("" when all is well; n bytes of room). On return *first is the lowest rank
// whose finding is not empty (-1: none) and msg holds that rank's text on every rank (at most
// MV_COMM_MSG_MAX - 1 characters), so that all of them stop together with the reason.
// 0, or -1 when the collective failed.
#define MV_COMM_MSG_MAX 1024
int comm_first_message(mv_comm *c, char *msg, size_t n, int *first);
// In-place sum over ranks of buf[0..n) (small arrays: metrics, statistics). 0 or -1.
int comm_allreduce_sum_doubles(mv_comm *c, double *buf, int n);
// In-place sum over ranks of a float buffer of any length, blocking. 0 or -1.
int comm_allreduce_sum_floats(mv_comm *c, float *buf, size_t n);
// Waits until every rank has arrived. 0 or -1.
int comm_barrier(mv_comm *c);
// Name of the backend ("single", "mpi", "nccl").
const char *comm_backend_name(mv_dist_backend b);
// The MPI library this process runs with, first line of MPI_Get_library_version (callable
// before MPI_Init), or why there is none.
void comm_library_version(char *out, size_t n);
