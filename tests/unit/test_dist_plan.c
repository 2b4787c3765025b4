// The distributed layer on one rank: bucket planning (from the end of the flat gradient buffer,
// whole parameters per bucket), the order in which grad_sync starts buckets, the single-rank
// communicator (identity collectives, timeout setting), the SyncBN callback, the share of the CPUs
// and the fault drills (MV_FAULT, with the checkpoint drills' crash points).
// Multi-rank behaviour is tested with mpirun in tests/scripts/test_mpi_*.sh.
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "core/crash_point.h"
#include "core/error.h"
#include "dist/comm.h"
#include "dist/comm_mpi.h"
#include "dist/fault_drill.h"
#include "dist/grad_sync.h"
#include "dist/rank_threads.h"
#include "dist/syncbn.h"

static void expect_bucket(const mv_bucket *b, size_t lo, size_t hi) {
    cr_expect(b->lo == lo && b->hi == hi, "bucket [%zu, %zu), expected [%zu, %zu)", b->lo, b->hi, lo, hi);
}

Test(dist_plan, fixed_size_buckets_from_the_end) {
    mv_bucket b[8];
    int nb = grad_sync_plan(b, NULL, 100, 0, 10, 30, 8);
    cr_assert_eq(nb, 4);
    expect_bucket(&b[0], 90, 100);   // the small first bucket holds the last layers
    expect_bucket(&b[1], 60, 90);
    expect_bucket(&b[2], 30, 60);
    expect_bucket(&b[3], 0, 30);
    cr_expect_eq(grad_sync_plan(NULL, NULL, 100, 0, 10, 30, 0), 4, "counting without storing");
}

Test(dist_plan, whole_parameters_per_bucket) {
    // parameters of 5, 20, 3, 40, 7 and 12 floats
    const size_t cuts[] = {0, 5, 25, 28, 68, 75};
    mv_bucket b[8];
    int nb = grad_sync_plan(b, cuts, 87, 6, 15, 30, 8);
    cr_assert_eq(nb, 4);
    expect_bucket(&b[0], 75, 87);   // 12 floats fit the first bucket's 15, 7 more would not
    expect_bucket(&b[1], 68, 75);   // the next parameter (40) does not fit in 30 ...
    expect_bucket(&b[2], 28, 68);   // ... so it gets a bucket of its own
    expect_bucket(&b[3], 0, 28);
}

Test(dist_plan, buckets_tile_the_buffer) {
    srand(7);
    for (int trial = 0; trial < 200; trial++) {
        int np = 1 + rand() % 40;
        size_t *cuts = malloc((size_t)np * sizeof *cuts), n = 0;
        size_t biggest = 0;
        for (int i = 0; i < np; i++) {
            size_t sz = (size_t)(rand() % 300);   // zero-sized parameters included
            cuts[i] = n;
            n += sz;
            if (sz > biggest) biggest = sz;
        }
        size_t first = 1 + (size_t)(rand() % 100), cap = first + (size_t)(rand() % 200);
        int use_cuts = trial % 2;
        int nb = grad_sync_plan(NULL, use_cuts ? cuts : NULL, n, use_cuts ? np : 0, first, cap, 0);
        cr_assert(nb >= 0, "%s", mv_last_error());
        mv_bucket *b = malloc((size_t)(nb ? nb : 1) * sizeof *b);
        cr_assert_eq(grad_sync_plan(b, use_cuts ? cuts : NULL, n, use_cuts ? np : 0, first, cap, nb), nb);
        size_t hi = n;
        for (int k = 0; k < nb; k++) {
            cr_assert_eq(b[k].hi, hi, "trial %d: bucket %d does not start where the previous ended", trial, k);
            cr_assert_lt(b[k].lo, b[k].hi, "trial %d: empty bucket %d", trial, k);
            size_t len = b[k].hi - b[k].lo, limit = k == 0 ? first : cap;
            if (use_cuts) {
                // starts on a parameter boundary; over the limit only when it is one parameter
                int on_cut = b[k].lo == 0;
                for (int i = 0; i < np; i++) on_cut |= cuts[i] == b[k].lo;
                cr_assert(on_cut, "trial %d: bucket %d starts inside a parameter", trial, k);
                cr_assert(len <= limit || len <= biggest, "trial %d: bucket %d of %zu floats", trial, k, len);
            } else {
                cr_assert(len == limit || (k == nb - 1 && len < limit), "trial %d: bucket %d of %zu floats", trial, k, len);
            }
            hi = b[k].lo;
        }
        cr_assert_eq(hi, 0, "trial %d: buckets do not reach offset 0", trial);
        free(b);
        free(cuts);
    }
}

Test(dist_plan, bad_plans_are_errors) {
    mv_bucket b[4];
    const size_t descending[] = {0, 50, 40};
    cr_expect_eq(grad_sync_plan(b, descending, 100, 3, 10, 30, 4), -1);
    cr_expect(strstr(mv_last_error(), "not ascending at cut 2"), "message: %s", mv_last_error());
    const size_t beyond[] = {0, 120};
    cr_expect_eq(grad_sync_plan(b, beyond, 100, 2, 10, 30, 4), -1);
    cr_expect(strstr(mv_last_error(), "beyond the buffer"), "message: %s", mv_last_error());
    cr_expect_eq(grad_sync_plan(b, NULL, 100, 0, 10, 10, 4), -1, "10 buckets do not fit in 4");
    cr_expect_eq(grad_sync_plan(b, NULL, 100, 0, 0, 10, 4), -1, "zero bucket size");
    cr_expect_eq(grad_sync_plan(b, NULL, 0, 0, 10, 30, 4), 0, "an empty buffer has no buckets");
}

Test(dist_plan, default_sizes) {
    // 25 MiB buckets after a 1 MiB first one, in floats
    mv_bucket b[4];
    int nb = grad_sync_plan(b, NULL, 10000000, 0, 262144, 6553600, 4);
    cr_assert_eq(nb, 3);
    expect_bucket(&b[0], 10000000 - 262144, 10000000);
    expect_bucket(&b[1], 10000000 - 262144 - 6553600, 10000000 - 262144);
    expect_bucket(&b[2], 0, 10000000 - 262144 - 6553600);
}

// run.bucket_mb has no lower bound but > 0: a size below one float must plan one-float buckets,
// not truncate to 0 bytes, which grad_sync_plan_alloc reads as "unset" (25 MiB).
Test(dist_plan, tiny_mib_sizes_are_one_float_not_the_default) {
    mv_grad_sync_opts o = grad_sync_opts_mib(1e-7, 1e-9);
    cr_expect_eq(o.bucket_bytes, sizeof(float));
    cr_expect_eq(o.first_bucket_bytes, sizeof(float));
    o = grad_sync_opts_mib(0, 0);
    cr_expect(o.bucket_bytes == 0 && o.first_bucket_bytes == 0, "0 still means the default");
    o = grad_sync_opts_mib(25, 1);
    cr_expect_eq(o.bucket_bytes, (size_t)25 << 20);
    cr_expect_eq(o.first_bucket_bytes, (size_t)1 << 20);
    mv_bucket *b = NULL;
    o = grad_sync_opts_mib(1e-7, 1);
    int nb = grad_sync_plan_alloc(&b, NULL, 8, 0, &o);
    cr_expect_eq(nb, 8, "one bucket per float, got %d", nb);
    free(b);
}

Test(dist_grad_sync, buckets_start_in_order_on_one_rank) {
    mv_comm c;
    cr_assert_eq(comm_init(&c, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(c.world, 1);
    cr_assert_eq(c.rank, 0);
    cr_assert_eq(c.backend, MV_DIST_SINGLE);
    float g[100];
    for (int i = 0; i < 100; i++) g[i] = (float)i - 50.5f;
    mv_grad_sync s;
    mv_grad_sync_opts opts = {.bucket_bytes = 30 * sizeof(float), .first_bucket_bytes = 10 * sizeof(float)};
    cr_assert_eq(grad_sync_init(&s, &c, g, NULL, &opts, 100, 0), 0, "%s", mv_last_error());
    cr_assert_eq(s.num_buckets, 4);
    cr_assert_eq(grad_sync_ready(&s, 95), 0);
    cr_expect_eq(s.next, 0, "no bucket lies wholly above offset 95");
    cr_assert_eq(grad_sync_ready(&s, 60), 0);
    cr_expect_eq(s.next, 2, "buckets [90,100) and [60,90) start once offset 60 is final");
    cr_expect(s.done[0] && s.done[1] && !s.done[2]);
    cr_assert_eq(grad_sync_ready(&s, 0), 0);
    cr_expect_eq(s.next, 4, "offset 0 final: buckets 2 and 3 start, in order");
    cr_expect(s.done[2] && s.done[3]);
    cr_assert_eq(grad_sync_finish(&s), 0);
    cr_expect_eq(s.next, 0, "finish resets for the next step");
    cr_expect(!s.done[0] && !s.done[3], "finish clears the buckets' done flags");
    for (int i = 0; i < 100; i++) cr_assert_eq(g[i], (float)i - 50.5f, "one rank: gradients unchanged");
    cr_assert_eq(grad_sync_finish(&s), 0, "a step without ready calls starts everything in finish");
    cr_expect_eq(s.next, 0);
    grad_sync_free(&s);

    cr_assert_eq(grad_sync_init(&s, &c, g, NULL, NULL, 100, 0), 0);
    cr_expect_eq(s.num_buckets, 1, "default buckets: 100 floats is one bucket");
    grad_sync_free(&s);
    const size_t bad[] = {0, 200};
    cr_expect_eq(grad_sync_init(&s, &c, g, bad, NULL, 100, 2), -1);
    cr_expect(strstr(mv_last_error(), "grad_sync_init: grad_sync_plan"), "message: %s", mv_last_error());
    comm_finalize(&c);
}

Test(dist_comm, single_rank_collectives_are_identity) {
    unsetenv("MV_COMM_TIMEOUT");
    mv_comm c;
    cr_assert_eq(comm_init(&c, NULL, NULL), 0, "%s", mv_last_error());
    cr_expect_eq(c.local_rank, 0);
    cr_expect_eq(c.local_size, 1);
    cr_expect_eq(c.timeout_s, 1800.0);
    float f[3] = {1.5f, -2.0f, 3.25f};
    double d[2] = {0.1, -7.0};
    cr_assert_eq(comm_bcast_floats(&c, f, 3), 0);
    cr_assert_eq(comm_allreduce_sum_floats(&c, f, 3), 0);
    cr_assert_eq(comm_allreduce_sum_doubles(&c, d, 2), 0);
    cr_assert_eq(comm_barrier(&c), 0);
    cr_expect(f[0] == 1.5f && f[1] == -2.0f && f[2] == 3.25f);
    cr_expect(d[0] == 0.1 && d[1] == -7.0);
    cr_expect_eq(comm_allreduce_sum_doubles(&c, d, -1), -1, "negative count");
    cr_expect_str_eq(comm_backend_name(c.backend), "single");
    comm_finalize(&c);
    comm_finalize(&c);   // twice is harmless
    cr_expect_eq(c.world, 1);
}

Test(dist_comm, timeout_from_environment) {
    mv_comm c;
    setenv("MV_COMM_TIMEOUT", "2.5", 1);
    cr_assert_eq(comm_init(&c, NULL, NULL), 0, "%s", mv_last_error());
    cr_expect_eq(c.timeout_s, 2.5);
    comm_finalize(&c);
    setenv("MV_COMM_TIMEOUT", "soon", 1);
    cr_expect_eq(comm_init(&c, NULL, NULL), -1);
    cr_expect(strstr(mv_last_error(), "MV_COMM_TIMEOUT=soon"), "message: %s", mv_last_error());
    setenv("MV_COMM_TIMEOUT", "-1", 1);
    cr_expect_eq(comm_init(&c, NULL, NULL), -1);
    unsetenv("MV_COMM_TIMEOUT");
}

// A wait's clock counts the time its process ran: a rank stopped (SIGSTOP) for longer than the
// timeout and then continued failed its collective at once, blaming "a rank" that was itself.
Test(dist_comm, a_wait_does_not_count_time_its_process_was_stopped) {
    mv_comm c = {.world = 2, .timeout_s = 3};
    mv_wait_clock w;
    comm_mpi_wait_start(&w);
    double waited;
    w.start -= 5;   // the process was stopped for 5 s before this turn
    w.last -= 5;
    cr_expect_not(comm_mpi_timed_out(&c, &w, &waited), "waited %g s", waited);
    cr_expect_lt(waited, 1.0);
    w.start -= 3.5;   // then waited 3.5 s while running (turns less than a second apart)
    cr_expect(comm_mpi_timed_out(&c, &w, &waited));
    cr_expect_geq(waited, 3.5);
    cr_expect_lt(waited, 4.5);
}

// Ranks sharing CPUs split them: at least one thread each; one rank alone keeps OpenMP's count.
Test(dist_threads, share_of_the_cpus) {
    cr_expect_eq(rank_threads_for(16, 4), 4);
    cr_expect_eq(rank_threads_for(16, 3), 5);
    cr_expect_eq(rank_threads_for(2, 3), 1);
    cr_expect_eq(rank_threads_for(1, 1), 1);
    cr_expect_eq(rank_threads_for(8, 0), 8);
    mv_comm c;
    unsetenv("OMP_NUM_THREADS");
    cr_assert_eq(comm_init(&c, NULL, NULL), 0, "%s", mv_last_error());
    cr_expect_eq(c.threads.sharing, 1);
    cr_expect_not(c.threads.from_env);
    cr_expect_geq(c.threads.threads, 1);
    char d[160];
    rank_threads_describe(&c, d, sizeof d);
    cr_expect(strstr(d, "OpenMP thread") && !strstr(d, "per rank") && !strstr(d, "("), "%s", d);
    comm_finalize(&c);
    setenv("OMP_NUM_THREADS", "1", 1);
    cr_assert_eq(comm_init(&c, NULL, NULL), 0, "%s", mv_last_error());
    cr_expect(c.threads.from_env);
    c.world = 3;   // as a rank of three would describe it
    rank_threads_describe(&c, d, sizeof d);
    c.world = 1;
    // (OpenMP read the variable when it started: its count stays what it was.)
    cr_expect(strstr(d, " per rank (OMP_NUM_THREADS)"), "%s", d);
    comm_finalize(&c);
    c = (mv_comm){.world = 3, .threads = {.threads = 5, .cpus = 16, .sharing = 3}};
    rank_threads_describe(&c, d, sizeof d);
    cr_expect_str_eq(d, "5 OpenMP threads per rank (16 CPUs shared by 3 ranks of its host)");
}

// OMP_NUM_THREADS is kept even where the ranks' threads outnumber the CPUs they share, and the
// start-up warning says so; the share the ranks take by themselves never does.
Test(dist_threads, oversubscribed_by_the_environment) {
    mv_comm c = {.world = 3, .threads = {.threads = 2, .cpus = 2, .sharing = 3, .from_env = 1}};
    char w[320];
    cr_expect(rank_threads_oversubscribed(&c.threads));
    rank_threads_oversubscribed_warning(&c, w, sizeof w);
    cr_expect(strstr(w, "OMP_NUM_THREADS=2 on each of 3 ranks: 6 threads for 2 CPUs"), "%s", w);
    c.threads.threads = 1;   // 3 threads on 2 CPUs still
    cr_expect(rank_threads_oversubscribed(&c.threads));
    c.threads.cpus = 16;
    c.threads.threads = 5;   // 15 of 16
    cr_expect_not(rank_threads_oversubscribed(&c.threads));
    rank_threads_oversubscribed_warning(&c, w, sizeof w);
    cr_expect_str_empty(w);
    c = (mv_comm){.world = 1, .threads = {.threads = 4, .cpus = 2, .sharing = 1, .from_env = 1}};
    rank_threads_oversubscribed_warning(&c, w, sizeof w);
    cr_expect(strstr(w, "OMP_NUM_THREADS=4: 4 threads for 2 CPUs"), "%s", w);
    c.threads.cpus = 1;   // a rank bound to one core
    rank_threads_oversubscribed_warning(&c, w, sizeof w);
    cr_expect(strstr(w, "OMP_NUM_THREADS=4: 4 threads for 1 CPU,"), "%s", w);
    c.threads.from_env = 0;   // OpenMP's own count: one thread per CPU
    cr_expect_not(rank_threads_oversubscribed(&c.threads));
}

// MV_FAULT names one drill and one rank of the job; anything else is refused with its value.
Test(dist_fault, drill_from_environment) {
    mv_fault_drill f;
    unsetenv("MV_FAULT");
    cr_assert_eq(fault_drill_read(&f, 3), 0);
    cr_expect_eq(f.point, MV_FAULT_NONE);
    setenv("MV_FAULT", "stop-in-eval:2", 1);
    cr_assert_eq(fault_drill_read(&f, 3), 0, "%s", mv_last_error());
    cr_expect_eq(f.point, MV_FAULT_STOP_IN_EVAL);
    cr_expect_eq(f.rank, 2);
    // Not due: another point, another rank (it returns instead of stopping this process).
    fault_drill_at(&f, MV_FAULT_NONE, 2, 3);
    fault_drill_at(&f, MV_FAULT_STOP_IN_EVAL, 1, 3);
    cr_expect_not(f.done);
    cr_expect_eq(fault_drill_read(&f, 2), -1);
    cr_expect(strstr(mv_last_error(), "ranks 0 to 1 only"), "message: %s", mv_last_error());
    const char *bad[] = {"stop-in-eval", "stop-in-eval:", "stop-in-eval:-1", "stop-in-eval:1x", "stop-in-evalx:1",
                         "stop-in-ev:1", ":1", "stop-in-train:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("MV_FAULT", bad[i], 1);
        cr_expect_eq(fault_drill_read(&f, 3), -1, "%s accepted", bad[i]);
        cr_expect(strstr(mv_last_error(), bad[i]) && strstr(mv_last_error(), "stop-in-eval"), "message: %s",
                  mv_last_error());
        cr_expect_eq(f.point, MV_FAULT_NONE);
    }
    unsetenv("MV_FAULT");
}

// The checkpoint drills take a file, not a rank: a checkpoint name a run writes (best.h5 is
// never named by `latest`), and arm the crash point for it (core/crash_point.h).
Test(dist_fault, checkpoint_drills_from_environment) {
    mv_fault_drill f;
    const char *good[] = {"kill-before-rename:iter_5.h5", "kill-before-rename:best.h5", "kill-after-rename:iter_12.h5",
                          "kill-after-rename:best.h5", "kill-before-latest:iter_7.h5"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("MV_FAULT", good[i], 1);
        cr_assert_eq(fault_drill_read(&f, 2), 0, "%s: %s", good[i], mv_last_error());
        cr_expect_eq(f.point, MV_FAULT_KILL_IN_CHECKPOINT, "%s", good[i]);
        cr_expect_eq(f.rank, 0, "%s", good[i]);
        // Armed, but not for another stage or another file: these return.
        crash_point(MV_CRASH_BEFORE_RENAME, "/runs/x/iter_6.h5");
        crash_point(MV_CRASH_AFTER_RENAME, "/runs/x/iter_50.h5");
        crash_point(MV_CRASH_BEFORE_LATEST, "iter_70.h5");
        crash_point(MV_CRASH_NONE, "/runs/x/iter_5.h5");
    }
    const char *bad[] = {"kill-before-rename:", "kill-before-rename:iter_0.h5", "kill-before-rename:iter_05.h5",
                         "kill-before-rename:iter_5", "kill-before-rename:iter_5.h5x", "kill-after-rename:latest",
                         "kill-after-rename:runs/iter_5.h5", "kill-before-latest:best.h5", "kill-before-latest:1",
                         "kill-before-renam:iter_5.h5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("MV_FAULT", bad[i], 1);
        cr_expect_eq(fault_drill_read(&f, 2), -1, "%s accepted", bad[i]);
        cr_expect(strstr(mv_last_error(), bad[i]), "message: %s", mv_last_error());
        cr_expect_eq(f.point, MV_FAULT_NONE);
    }
    unsetenv("MV_FAULT");
    cr_assert_eq(fault_drill_read(&f, 2), 0);   // disarms what an earlier read armed
    crash_point(MV_CRASH_BEFORE_LATEST, "iter_7.h5");
}

// A run with a drill armed says so at start; a checkpoint drill for a file that is none of the
// run's periodic checkpoints says that it does nothing.
Test(dist_fault, armed_drill_warning) {
    mv_fault_drill f;
    char w[256];
    unsetenv("MV_FAULT");
    cr_assert_eq(fault_drill_read(&f, 2), 0);
    fault_drill_warning(&f, 100, 10, w, sizeof w);
    cr_expect_str_empty(w);
    const struct { const char *value; long max_iters, every; const char *says; } cases[] = {
        {"stop-in-eval:1", 100, 10, "rank 1 will stop itself (SIGSTOP)"},
        {"kill-before-rename:iter_20.h5", 100, 10, "the process saving iter_20.h5 will be killed"},
        {"kill-after-rename:iter_100.h5", 100, 0, "the process saving iter_100.h5 will be killed"},   // the last one
        {"kill-before-latest:iter_95.h5", 95, 10, "will be killed"},
        {"kill-after-rename:best.h5", 100, 0, "the process saving best.h5 will be killed"},
        {"kill-before-rename:iter_25.h5", 100, 10, "iter_25.h5 is none of this run's periodic checkpoints"},
        {"kill-before-rename:iter_200.h5", 100, 10, "does nothing unless the run stops there"},
        {"kill-before-latest:iter_50.h5", 100, 0, "does nothing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("MV_FAULT", cases[i].value, 1);
        cr_assert_eq(fault_drill_read(&f, 2), 0, "%s: %s", cases[i].value, mv_last_error());
        fault_drill_warning(&f, cases[i].max_iters, cases[i].every, w, sizeof w);
        cr_expect(strstr(w, cases[i].value) && strstr(w, cases[i].says), "%s: %s", cases[i].value, w);
    }
    unsetenv("MV_FAULT");
    cr_assert_eq(fault_drill_read(&f, 2), 0);
}

// A drill that is due kills the process (SIGKILL, as a crash would), once FILE matches whatever
// folder it is written in.
Test(dist_fault, checkpoint_drill_kills, .signal = SIGKILL) {
    setenv("MV_FAULT", "kill-after-rename:iter_5.h5", 1);
    mv_fault_drill f;
    cr_assert_eq(fault_drill_read(&f, 1), 0, "%s", mv_last_error());
    crash_point(MV_CRASH_AFTER_RENAME, "/some/run/iter_5.h5");
    cr_assert_fail("the armed crash point returned");
}

Test(dist_syncbn, callback_on_one_rank_leaves_sums) {
    double buf[6] = {4, 10.5, 30.25, 4, -1, 2};
    syncbn_reduce_cb(NULL, buf, 6);
    mv_comm c;
    cr_assert_eq(comm_init(&c, NULL, NULL), 0);
    syncbn_reduce_cb(&c, buf, 6);
    const double want[6] = {4, 10.5, 30.25, 4, -1, 2};
    for (int i = 0; i < 6; i++) cr_expect_eq(buf[i], want[i]);
    comm_finalize(&c);
}
