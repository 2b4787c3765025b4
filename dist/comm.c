// Ranks and the small collectives (see comm.h). With MPI in the build and a launcher in the
// environment this is MPI; otherwise every call is the single-rank identity.
#include "dist/comm.h"
#include "core/build_info.h"
#include "core/clock.h"
#include "dist/comm_mpi.h"
#include "dist/rank_threads.h"
#include "dist/startup_watchdog.h"
#include "core/error.h"
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *comm_backend_name(mv_dist_backend b) {
    switch (b) {
    case MV_DIST_SINGLE: return "single";
    case MV_DIST_MPI: return "mpi";
    case MV_DIST_NCCL: return "nccl";
    }
    return "?";
}

// A number of seconds from the environment variable `var`; *seconds is left as it is when unset.
static int read_seconds(const char *var, double *seconds) {
    const char *t = getenv(var);
    if (!t || !*t) return 0;
    char *end = NULL;
    double v = strtod(t, &end);
    if (end == t || *end != '\0' || !(v >= 0.0) || v > 1e9)
        return mv_fail("%s=%s: expected a number of seconds >= 0 (0: no timeout)", var, t);
    *seconds = v;
    return 0;
}

// MV_COMM_TIMEOUT overrides the default collective timeout (torch's default is 30 minutes too:
// long enough for one rank to evaluate while the others wait, short enough not to hang a queue).
static int read_timeout(double *timeout_s) {
    *timeout_s = 1800.0;
    return read_seconds("MV_COMM_TIMEOUT", timeout_s);
}

#ifdef MV_HAVE_MPI
// The start-up watchdog's limit: MV_COMM_STARTUP_TIMEOUT, else the collectives' timeout but at
// least 60 s (a healthy start of many ranks can take a while); 0: none.
static int read_startup_limit(double *limit_s, double timeout_s) {
    *limit_s = timeout_s > 0.0 && timeout_s < 60.0 ? 60.0 : timeout_s;
    return read_seconds("MV_COMM_STARTUP_TIMEOUT", limit_s);
}
#endif

#ifdef MV_HAVE_MPI
// A process started by mpirun (Open MPI), mpiexec.hydra (MPICH) or a PMIx launcher such as srun
// carries one of these; without them we run alone instead of trying a singleton MPI start,
// which in Open MPI forks a daemon and fails in some containers.
static int launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    const char *force = getenv("MV_FORCE_MPI");
    return force && !strcmp(force, "1");
}

int comm_mpi_fail(int err, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", err);
    return mv_fail("%s: %s", what, text);
}
#endif

void comm_library_version(char *out, size_t n) {
#ifdef MV_HAVE_MPI
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(text, &len) != MPI_SUCCESS) { snprintf(out, n, "unknown (MPI_Get_library_version failed)"); return; }
    text[strcspn(text, "\n,")] = 0;
    snprintf(out, n, "%s", text);
#else
    snprintf(out, n, "none: built without MPI (one rank per process)");
#endif
}

// Without an asynchronous progress thread MPI moves data only inside MPI calls, so a waiter
// that sleeps stalls the transfers in flight: the first millisecond only yields, which is as long
// as a collective among ranks that arrive together takes. A wait longer than that is a peer still
// busy (a checkpoint, an evaluation, a slower batch), and there a yield does not give the core
// away: CFS runs the waiter again at once, so on a shared or oversubscribed host the waiting
// ranks took the cores from the ones they waited for (docs/distributed.md has a measurement).
// Sleeps grow with the wait, to at most 1 ms between polls, which delays a collective's end by
// under 1 ms and keeps a long transfer moving.
void comm_mpi_backoff(double waited_s) {
    if (waited_s <= 1e-4) return;
    if (waited_s <= 1e-3) { sched_yield(); return; }
    double pause_s = waited_s < 0.01 ? 5e-5 : waited_s < 0.1 ? 2e-4 : 1e-3;
    struct timespec pause = {0, (long)(pause_s * 1e9)};
    nanosleep(&pause, NULL);
}

void comm_mpi_wait_start(mv_wait_clock *w) {
    w->start = w->last = mv_now_s();
    w->away = 0;
}

bool comm_mpi_timed_out(const mv_comm *c, mv_wait_clock *w, double *waited_s) {
    double now = mv_now_s();
    if (now - w->last > 1.0) w->away += now - w->last;
    w->last = now;
    *waited_s = now - w->start - w->away;
    if (c->timeout_s > 0 && *waited_s > c->timeout_s) return true;
    comm_mpi_backoff(*waited_s);
    return false;
}

#ifdef MV_HAVE_MPI
// Open MPI's all-reduce allocates a temporary buffer as large as the message on every call.
// glibc serves allocations above 32 MiB with fresh mmap pages (and trims freed heap tops), so
// every call page-faults its temporary in again; on a VM that costs more than the reduction:
// a 64 MiB all-reduce of 2 ranks measured 0.1-0.2 GB/s instead of 1.4-2 GB/s. Keeping large
// blocks in the heap fixes it. MV_MALLOC_TUNE=0 leaves glibc's defaults alone.
static void keep_large_allocations(void) {
#ifdef __GLIBC__
    const char *tune = getenv("MV_MALLOC_TUNE");
    if (tune && !strcmp(tune, "0")) return;
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}
#endif

#ifdef MV_HAVE_MPI
// Every rank must run the same build (docs/distributed.md): another binary may lay out the
// configuration or the training state differently, so the broadcasts that follow would hand it
// garbage or fail far from the cause, and another commit, compiler or instruction set computes
// other numbers, so the replicas would drift apart in silence. The identity is a fixed-size
// record (core/build_info.h) so that this exchange itself matches between any two builds that
// make it. Every rank sees every record and fails with the same message.
static int check_same_build(mv_comm *c) {
    char mine[MV_BUILD_ID_SIZE];
    mv_build_identity(mine);
    char *all = mv_malloc((size_t)c->world * MV_BUILD_ID_SIZE);
    if (comm_allgather_bytes(c, mine, all, MV_BUILD_ID_SIZE) < 0) {
        free(all);
        return mv_fail_context("comparing the ranks' builds");
    }
    int r = 1;
    while (r < c->world && !memcmp(all, all + (size_t)r * MV_BUILD_ID_SIZE, MV_BUILD_ID_SIZE)) r++;
    int rc = 0;
    if (r < c->world) {
        char a[MV_BUILD_ID_SIZE], b[MV_BUILD_ID_SIZE];
        mv_build_identity_text(a, sizeof a, all + (size_t)r * MV_BUILD_ID_SIZE);
        mv_build_identity_text(b, sizeof b, all);
        rc = mv_fail("rank %d runs %s; rank 0 runs %s: every rank must run the same build (the same maskvim "
                     "binary on every host)", r, a, b);
    }
    free(all);
    return rc;
}
#endif

#ifdef MV_HAVE_MPI
static int comm_init_mpi(mv_comm *c, int *argc, char ***argv);
#endif

int comm_init(mv_comm *c, int *argc, char ***argv) {
    memset(c, 0, sizeof *c);
    c->world = 1;
    c->local_size = 1;
    c->backend = MV_DIST_SINGLE;
    MV_TRY(read_timeout(&c->timeout_s));
#ifdef MV_HAVE_MPI
    if (!launched_by_mpi()) return rank_threads_share(c);
    // Watched from here to the end of the first collectives (the build check and the threads'
    // share): MPI_Init's own wait for the other ranks has no timeout.
    double limit_s;
    MV_TRY(read_startup_limit(&limit_s, c->timeout_s));
    mv_startup_watchdog *watchdog = startup_watchdog_start(limit_s, "MPI start-up");
    int rc = comm_init_mpi(c, argc, argv);
    if (rc == 0 && rank_threads_share(c) < 0) {
        mv_fail_context("comm_init: sharing the CPUs among the ranks of this host");
        comm_finalize(c);
        rc = -1;
    }
    startup_watchdog_stop(watchdog);
    return rc;
#else
    (void)argc;
    (void)argv;
    // Without MPI, N copies started by mpirun would each train alone: refuse instead.
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (!size) size = getenv("PMI_SIZE");
    if (size && atoi(size) > 1)
        return mv_fail("comm_init: started as one of %s ranks, but this maskvim was built without MPI", size);
    return rank_threads_share(c);
#endif
}

#ifdef MV_HAVE_MPI
static int comm_init_mpi(mv_comm *c, int *argc, char ***argv) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return mv_fail("comm_init: MPI was already finalized in this process");
    int owns = 0;
    if (!inited) {
        int provided = 0;
        int err = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (err != MPI_SUCCESS) return mv_fail("comm_init: MPI_Init_thread failed (error %d)", err);
        owns = 1;
        if (provided < MPI_THREAD_FUNNELED) {
            MPI_Finalize();
            return mv_fail("comm_init: the MPI library offers thread level %d, maskvim needs MPI_THREAD_FUNNELED", provided);
        }
    }
    mv_comm_mpi *m = mv_calloc(1, sizeof *m);
    m->owns_mpi = owns;
    m->comm = MPI_COMM_NULL;
    m->node = MPI_COMM_NULL;
    c->impl = m;
    // Our own communicator, so that errors on it come back as values (MPI_ERRORS_RETURN) and
    // we decide: record the message, then comm_abort brings the whole job down.
    int err = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (err == MPI_SUCCESS) err = MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    if (err == MPI_SUCCESS) err = MPI_Comm_rank(m->comm, &c->rank);
    if (err == MPI_SUCCESS) err = MPI_Comm_size(m->comm, &c->world);
    if (err == MPI_SUCCESS) err = MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &m->node);
    if (err == MPI_SUCCESS) err = MPI_Comm_set_errhandler(m->node, MPI_ERRORS_RETURN);
    if (err == MPI_SUCCESS) err = MPI_Comm_rank(m->node, &c->local_rank);
    if (err == MPI_SUCCESS) err = MPI_Comm_size(m->node, &c->local_size);
    if (err != MPI_SUCCESS) {
        comm_mpi_fail(err, "comm_init: setting up the communicators");
        comm_finalize(c);
        return -1;
    }
    c->backend = MV_DIST_MPI;
    keep_large_allocations();
    if (c->world > 1 && check_same_build(c) < 0) {
        comm_finalize(c);
        return -1;
    }
    return 0;
}
#endif

void comm_finalize(mv_comm *c) {
#ifdef MV_HAVE_MPI
    mv_comm_mpi *m = c->impl;
    if (m) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        // MPI_Finalize waits for every rank with no timeout: a rank stuck after the last
        // collective (a host gone from the network, a hung file system) held the others, and
        // the job's allocation, for ever. A timed barrier first ends the job as any other
        // collective would.
        if (!finalized && c->world > 1 && comm_barrier(c) < 0) {
            char msg[MV_ERRMSG_MAX + 32];
            snprintf(msg, sizeof msg, "at exit: %s", mv_last_error());
            comm_abort(1, msg);
        }
        if (!finalized) {
            if (m->node != MPI_COMM_NULL) MPI_Comm_free(&m->node);
            if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
            if (m->owns_mpi) MPI_Finalize();
        }
        free(m);
    }
#endif
    c->impl = NULL;
    c->rank = 0;
    c->world = 1;
    c->local_rank = 0;
    c->local_size = 1;
    c->backend = MV_DIST_SINGLE;
}

_Noreturn void comm_abort(int code, const char *msg) {
    if (code == 0) code = 1;
    int rank = 0, world = 1, live = 0;
#ifdef MV_HAVE_MPI
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    live = inited && !finalized;
    if (live) {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &world);
    }
#endif
    fflush(stdout);
    if (world > 1) fprintf(stderr, "maskvim: rank %d/%d: %s\n", rank, world, msg ? msg : "error");
    else fprintf(stderr, "maskvim: %s\n", msg ? msg : "error");
    fflush(stderr);
#ifdef MV_HAVE_MPI
    // MPI_Abort makes mpirun kill every rank, wherever it runs, and exit non-zero. Ranks often
    // fail together (all of them learn that one rank's batch was unreadable, say, and only that
    // rank knows why): one second first, so that the others' messages, the reason among them,
    // are printed before this abort kills them.
    if (live && world > 1) {
        struct timespec grace = {1, 0};
        nanosleep(&grace, NULL);
    }
    if (live) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)live;
    exit(code);
}

#ifdef MV_HAVE_MPI
int comm_mpi_wait(mv_comm *c, MPI_Request *req, const char *what) {
    mv_wait_clock w;
    comm_mpi_wait_start(&w);
    for (;;) {
        int flag = 0;
        int err = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS) return comm_mpi_fail(err, what);
        if (flag) return 0;
        double waited;
        if (comm_mpi_timed_out(c, &w, &waited))
            return mv_fail("%s: not complete after %.0f s" MV_COMM_TIMEOUT_WHY, what, waited);
    }
}

// MPI counts are ints: long buffers go in pieces of at most 2^30 elements.
#define MV_MPI_CHUNK ((size_t)1 << 30)
#endif

int comm_bcast_floats(mv_comm *c, float *buf, size_t n) {
    if (c->world <= 1 || n == 0) return 0;
#ifdef MV_HAVE_MPI
    for (size_t off = 0; off < n; off += MV_MPI_CHUNK) {
        size_t len = n - off < MV_MPI_CHUNK ? n - off : MV_MPI_CHUNK;
        MPI_Request req;
        int err = MPI_Ibcast(buf + off, (int)len, MPI_FLOAT, 0, comm_mpi_handle(c), &req);
        if (err != MPI_SUCCESS) return comm_mpi_fail(err, "broadcast from rank 0");
        MV_TRY(comm_mpi_wait(c, &req, "broadcast from rank 0"));
    }
    return 0;
#else
    (void)buf;
    return mv_fail("comm_bcast_floats: %d ranks but no MPI in this build", c->world);
#endif
}

int comm_bcast_bytes(mv_comm *c, void *buf, size_t n) {
    if (c->world <= 1 || n == 0) return 0;
#ifdef MV_HAVE_MPI
    for (size_t off = 0; off < n; off += MV_MPI_CHUNK) {
        size_t len = n - off < MV_MPI_CHUNK ? n - off : MV_MPI_CHUNK;
        MPI_Request req;
        int err = MPI_Ibcast((char *)buf + off, (int)len, MPI_BYTE, 0, comm_mpi_handle(c), &req);
        if (err != MPI_SUCCESS) return comm_mpi_fail(err, "broadcast from rank 0");
        MV_TRY(comm_mpi_wait(c, &req, "broadcast from rank 0"));
    }
    return 0;
#else
    (void)buf;
    return mv_fail("comm_bcast_bytes: %d ranks but no MPI in this build", c->world);
#endif
}

// Every member's n bytes into all[], over the world (host = false) or this host's ranks.
static int allgather_over(mv_comm *c, bool host, const void *mine, void *all, size_t n) {
    int members = host ? c->local_size : c->world;
    const char *what = host ? "all-gather on this host" : "all-gather";
    if (members <= 1 || n == 0) {
        if (n) memcpy(all, mine, n);
        return 0;
    }
    if (n > INT_MAX) return mv_fail("%s: %zu bytes per rank is too many", what, n);
#ifdef MV_HAVE_MPI
    MPI_Comm comm = host ? ((mv_comm_mpi *)c->impl)->node : comm_mpi_handle(c);
    MPI_Request req;
    int err = MPI_Iallgather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, comm, &req);
    if (err != MPI_SUCCESS) return comm_mpi_fail(err, what);
    return comm_mpi_wait(c, &req, what);
#else
    return mv_fail("%s: %d ranks but no MPI in this build", what, members);
#endif
}

int comm_allgather_bytes(mv_comm *c, const void *mine, void *all, size_t n) {
    return allgather_over(c, false, mine, all, n);
}

int comm_mpi_node_allgather(mv_comm *c, const void *mine, void *all, size_t n) {
    return allgather_over(c, true, mine, all, n);
}

// Two small collectives: the lowest rank with a finding (minimum over ranks), then its text
// from that rank. Every rank learns the reason, not only that some rank failed.
int comm_first_message(mv_comm *c, char *msg, size_t n, int *first) {
    *first = n && msg[0] ? c->rank : -1;
    if (c->world <= 1) return 0;
#ifdef MV_HAVE_MPI
    int mine = n && msg[0] ? c->rank : INT_MAX, low = INT_MAX;
    MPI_Request req;
    int err = MPI_Iallreduce(&mine, &low, 1, MPI_INT, MPI_MIN, comm_mpi_handle(c), &req);
    if (err != MPI_SUCCESS) return comm_mpi_fail(err, "all-reduce of a rank");
    MV_TRY(comm_mpi_wait(c, &req, "all-reduce of a rank"));
    if (low == INT_MAX) { *first = -1; return 0; }
    char text[MV_COMM_MSG_MAX] = "";
    if (c->rank == low) snprintf(text, sizeof text, "%s", msg);
    err = MPI_Ibcast(text, (int)sizeof text, MPI_BYTE, low, comm_mpi_handle(c), &req);
    if (err != MPI_SUCCESS) return comm_mpi_fail(err, "broadcast of a message");
    MV_TRY(comm_mpi_wait(c, &req, "broadcast of a message"));
    text[sizeof text - 1] = '\0';
    if (n) snprintf(msg, n, "%s", text);
    *first = low;
    return 0;
#else
    return mv_fail("comm_first_message: %d ranks but no MPI in this build", c->world);
#endif
}

int comm_allreduce_sum_doubles(mv_comm *c, double *buf, int n) {
    if (n < 0) return mv_fail("comm_allreduce_sum_doubles: negative count %d", n);
    if (c->world <= 1 || n == 0) return 0;
#ifdef MV_HAVE_MPI
    MPI_Request req;
    int err = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, comm_mpi_handle(c), &req);
    if (err != MPI_SUCCESS) return comm_mpi_fail(err, "all-reduce of doubles");
    return comm_mpi_wait(c, &req, "all-reduce of doubles");
#else
    (void)buf;
    return mv_fail("comm_allreduce_sum_doubles: %d ranks but no MPI in this build", c->world);
#endif
}

int comm_allreduce_sum_floats(mv_comm *c, float *buf, size_t n) {
    if (c->world <= 1 || n == 0) return 0;
#ifdef MV_HAVE_MPI
    for (size_t off = 0; off < n; off += MV_MPI_CHUNK) {
        size_t len = n - off < MV_MPI_CHUNK ? n - off : MV_MPI_CHUNK;
        MPI_Request req;
        int err = MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)len, MPI_FLOAT, MPI_SUM, comm_mpi_handle(c), &req);
        if (err != MPI_SUCCESS) return comm_mpi_fail(err, "all-reduce of floats");
        MV_TRY(comm_mpi_wait(c, &req, "all-reduce of floats"));
    }
    return 0;
#else
    (void)buf;
    return mv_fail("comm_allreduce_sum_floats: %d ranks but no MPI in this build", c->world);
#endif
}

int comm_barrier(mv_comm *c) {
    if (c->world <= 1) return 0;
#ifdef MV_HAVE_MPI
    MPI_Request req;
    int err = MPI_Ibarrier(comm_mpi_handle(c), &req);
    if (err != MPI_SUCCESS) return comm_mpi_fail(err, "barrier");
    return comm_mpi_wait(c, &req, "barrier");
#else
    return mv_fail("comm_barrier: %d ranks but no MPI in this build", c->world);
#endif
}
