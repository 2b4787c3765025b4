// `maskvim bench-allreduce`: the gradient all-reduce measured the way nccl-tests measures
// collectives. For each size it times (1) one in-place float sum over all ranks and (2) the
// trainer's real path, dist/grad_sync (buckets laid from the end, then the average), and
// reports time, algorithm bandwidth (bytes / time) and bus bandwidth (algbw * 2(n-1)/n, what
// each link carries in a ring, comparable across rank counts). With --check the inputs are
// small integers drawn from (seed, rank, index), so the exact sum is representable: the sum
// must be bit-exact and the average within 2 ulp; random floats then check that every rank
// ends with identical bytes (replicas must not drift apart).
#include "core/clock.h"
#include "launch/commands.h"
#include "dist/comm.h"
#include "dist/grad_sync.h"
#include "core/error.h"
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FAIL_NONE = 0, FAIL_ABORT, FAIL_EXIT, FAIL_HANG, FAIL_HANG_AT_EXIT };

typedef struct {
    size_t min_bytes, max_bytes;
    double step_factor;
    int iters, warmup;
    int check;
    uint64_t seed;
    size_t bucket_bytes, first_bucket_bytes;
    int model_mode;        // --size-of-model: one size, the gradient buffer
    double overlap_ms;     // > 0: also time a simulated backward of this long (largest size)
    int layers;            // layers of the simulated backward
    int fail_rank;         // testing: this rank fails at the first size (-1: none)
    int fail_mode;
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: mpirun -np N maskvim bench-allreduce [options]\n"
        "All-reduce benchmark in the style of nccl-tests (float32, sum, in place).\n"
        "  --min-bytes B          smallest size (default 4K; suffixes K M G are powers of 1024)\n"
        "  --max-bytes B          largest size (default 256M)\n"
        "  --step-factor F        multiply the size by F between lines (default 2)\n"
        "  --size-of-model B      one size only: the model's gradient buffer\n"
        "                         (maskvim-t: 243600000, i.e. 60.9 million floats, about 232.3M)\n"
        "  --iters N              timed iterations per size (default 20)\n"
        "  --warmup N             untimed iterations first (default 5)\n"
        "  --check                verify: exact sum, average within 2 ulp, identical on all ranks\n"
        "  --seed S               seed of the check data (default 1)\n"
        "  --bucket-bytes B       grad_sync bucket size (default 25M)\n"
        "  --first-bucket-bytes B grad_sync first bucket size (default 1M)\n"
        "  --overlap-ms T         also time a simulated backward of T ms per rank (largest size),\n"
        "                         reporting how much of the all-reduce it hides\n"
        "  --layers L             layers of that backward, grad_sync_ready after each (default 50)\n"
        "testing:\n"
        "  --fail-rank R [--fail-mode abort|exit|hang|hang-at-exit]  rank R fails at the first size\n"
        "                         (hang-at-exit: after the benchmark, before the ranks end together)\n"
        "Environment: MV_COMM_TIMEOUT (seconds a collective may wait, default 1800).\n");
#ifdef MV_HAVE_MPI
    fprintf(f, "Built with MPI: yes\n");
#else
    fprintf(f, "Built with MPI: no (a single rank only)\n");
#endif
}

// "4096", "4K", "256M", "243.6M", "1G" (powers of 1024); rounded down to whole floats.
static int parse_bytes(size_t *out, const char *s, const char *flag) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s) return mv_fail("%s %s: expected a size in bytes (e.g. 4096, 4K, 256M)", flag, s);
    double mult = 1.0;
    if (*end == 'K' || *end == 'k') mult = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mult = 1024.0 * 1024.0, end++;
    else if (*end == 'G' || *end == 'g') mult = 1024.0 * 1024.0 * 1024.0, end++;
    if (*end == 'B' || *end == 'b') end++;
    v *= mult;
    if (*end != '\0' || !(v >= sizeof(float)) || v > 64.0 * 1024 * 1024 * 1024)
        return mv_fail("%s %s: expected a size between 4 bytes and 64G", flag, s);
    *out = ((size_t)v / sizeof(float)) * sizeof(float);
    return 0;
}

static int parse_int(int *out, const char *s, const char *flag, int lo, int hi) {
    long v;
    if (cli_parse_long(s, lo, hi, &v) < 0) return mv_fail("%s %s: expected an integer in [%d, %d]", flag, s, lo, hi);
    *out = (int)v;
    return 0;
}

// Returns 0, 1 for --help, or -1 with a message.
static int parse_args(bench_opts *o, int argc, char **argv) {
    *o = (bench_opts){.min_bytes = 4096, .max_bytes = (size_t)256 << 20, .step_factor = 2.0, .iters = 20,
                      .warmup = 5, .seed = 1, .bucket_bytes = (size_t)25 << 20,
                      .first_bucket_bytes = (size_t)1 << 20, .fail_rank = -1, .fail_mode = FAIL_ABORT,
                      .layers = 50};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        if (!strcmp(a, "--check")) { o->check = 1; continue; }
        static const char *valued[] = {"--min-bytes", "--max-bytes", "--size-of-model", "--step-factor", "--iters",
                                       "--warmup", "--seed", "--bucket-bytes", "--first-bucket-bytes", "--overlap-ms", "--layers",
                                       "--fail-rank", "--fail-mode"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known |= !strcmp(a, valued[k]);
        char hint[64];
        if (!known) return mv_fail("unknown option %s%s (see --help)", a, cli_option_hint(hint, sizeof hint, a, usage));
        if (i + 1 >= argc) return mv_fail("%s: missing value (see --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--min-bytes")) MV_TRY(parse_bytes(&o->min_bytes, v, a));
        else if (!strcmp(a, "--max-bytes")) MV_TRY(parse_bytes(&o->max_bytes, v, a));
        else if (!strcmp(a, "--size-of-model")) {
            MV_TRY(parse_bytes(&o->min_bytes, v, a));
            // The model's buffer is whole float32 gradients: another size is a mistake, not one to round.
            char *end = NULL;
            double raw = strtod(v, &end);
            if (*end == '\0' && raw != (double)o->min_bytes)
                return mv_fail("--size-of-model %s: the gradient buffer holds float32 values, so its size is a multiple "
                               "of 4 bytes (%zu or %zu?)", v, o->min_bytes, o->min_bytes + sizeof(float));
            o->max_bytes = o->min_bytes;
            o->model_mode = 1;
        } else if (!strcmp(a, "--step-factor")) {
            char *end = NULL;
            o->step_factor = strtod(v, &end);
            if (end == v || *end || !(o->step_factor >= 1.01) || o->step_factor > 1e6)
                return mv_fail("--step-factor %s: expected a number > 1", v);
        } else if (!strcmp(a, "--iters")) MV_TRY(parse_int(&o->iters, v, a, 1, 1000000));
        else if (!strcmp(a, "--warmup")) MV_TRY(parse_int(&o->warmup, v, a, 0, 1000000));
        else if (!strcmp(a, "--seed")) {
            long seed;
            if (cli_parse_long(v, 0, LONG_MAX, &seed))
                return mv_fail("--seed %s: expected a whole number from 0 to %ld", v, LONG_MAX);
            o->seed = (uint64_t)seed;
        } else if (!strcmp(a, "--bucket-bytes")) MV_TRY(parse_bytes(&o->bucket_bytes, v, a));
        else if (!strcmp(a, "--first-bucket-bytes")) MV_TRY(parse_bytes(&o->first_bucket_bytes, v, a));
        else if (!strcmp(a, "--layers")) MV_TRY(parse_int(&o->layers, v, a, 1, 100000));
        else if (!strcmp(a, "--overlap-ms")) {
            char *end = NULL;
            o->overlap_ms = strtod(v, &end);
            if (end == v || *end || !(o->overlap_ms > 0) || o->overlap_ms > 1e6)
                return mv_fail("--overlap-ms %s: expected milliseconds > 0", v);
        } else if (!strcmp(a, "--fail-rank")) MV_TRY(parse_int(&o->fail_rank, v, a, 0, 1 << 24));
        else if (!strcmp(a, "--fail-mode")) {
            if (!strcmp(v, "abort")) o->fail_mode = FAIL_ABORT;
            else if (!strcmp(v, "exit")) o->fail_mode = FAIL_EXIT;
            else if (!strcmp(v, "hang")) o->fail_mode = FAIL_HANG;
            else if (!strcmp(v, "hang-at-exit")) o->fail_mode = FAIL_HANG_AT_EXIT;
            else return mv_fail("--fail-mode %s: expected abort, exit, hang or hang-at-exit", v);
        }
    }
    if (o->first_bucket_bytes > o->bucket_bytes) o->first_bucket_bytes = o->bucket_bytes;
    if (o->min_bytes > o->max_bytes) return mv_fail("--min-bytes %zu is larger than --max-bytes %zu", o->min_bytes, o->max_bytes);
    return 0;
}

// ---- check data ----

static uint64_t mix64(uint64_t x) {   // splitmix64's finaliser
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t rank_key(uint64_t seed, int rank, uint64_t stream) {
    return mix64(mix64(seed ^ (stream << 56)) ^ (uint64_t)(rank + 1));
}

// Integers in [-4, 4]: any sum over fewer than 2^22 ranks is exact in float.
static inline int pattern(uint64_t key, size_t i) { return (int)(mix64(key ^ (uint64_t)i) % 9u) - 4; }

static void fill_pattern(float *buf, size_t n, uint64_t seed, int rank) {
    uint64_t key = rank_key(seed, rank, 1);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) buf[i] = (float)pattern(key, i);
}

// Floats of varied magnitude, whose sums do round: for the identical-on-every-rank check.
static void fill_random(float *buf, size_t n, uint64_t seed, int rank) {
    uint64_t key = rank_key(seed, rank, 2);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        uint64_t r = mix64(key ^ (uint64_t)i);
        float u = (float)(r >> 40) * (1.0f / 16777216.0f) - 0.5f;
        buf[i] = ldexpf(u, (int)((r >> 8) % 17u) - 8);
    }
}

static int64_t exact_sum(const uint64_t *keys, int world, size_t i) {
    int64_t s = 0;
    for (int r = 0; r < world; r++) s += pattern(keys[r], i);
    return s;
}

// Elements of buf that are not the exact sum (average = 0) or not within 2 ulp of the exact
// average (average = 1) of every rank's pattern.
static long count_wrong(const float *buf, size_t n, uint64_t seed, int world, int average) {
    uint64_t *keys = mv_malloc((size_t)world * sizeof *keys);
    for (int r = 0; r < world; r++) keys[r] = rank_key(seed, r, 1);
    long wrong = 0;
#pragma omp parallel for reduction(+ : wrong)
    for (size_t i = 0; i < n; i++) {
        int64_t s = exact_sum(keys, world, i);
        if (!average) {
            wrong += buf[i] != (float)s;
        } else {
            double want = (double)s / world;
            float wf = (float)want;
            double ulp = (double)nextafterf(fabsf(wf), INFINITY) - (double)fabsf(wf);
            wrong += !(fabs((double)buf[i] - want) <= 2.0 * ulp);
        }
    }
    free(keys);
    return wrong;
}

static uint64_t hash_floats(const float *buf, size_t n) {
    uint64_t h = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &buf[i], sizeof w);   // the bytes, so -0.0 and NaN payloads count too
        h = mix64(h ^ w);
    }
    return h;
}

// ---- timing ----

// Backward hands buckets over from the end of the buffer; here with nothing to overlap.
static int grad_sync_step(mv_grad_sync *s) {
    for (int k = 0; k < s->num_buckets; k++) MV_TRY(grad_sync_ready(s, s->buckets[k].lo));
    return grad_sync_finish(s);
}

// Average over ranks of the mean time per iteration, in microseconds (as nccl-tests).
static int time_op(double *us, mv_comm *c, mv_grad_sync *s, float *buf, size_t n, int warmup, int iters) {
    for (int it = 0; it < warmup; it++) MV_TRY(s ? grad_sync_step(s) : comm_allreduce_sum_floats(c, buf, n));
    MV_TRY(comm_barrier(c));
    double t0 = mv_now_s();
    for (int it = 0; it < iters; it++) MV_TRY(s ? grad_sync_step(s) : comm_allreduce_sum_floats(c, buf, n));
    double t = (mv_now_s() - t0) / iters;
    MV_TRY(comm_allreduce_sum_doubles(c, &t, 1));
    *us = 1e6 * t / c->world;
    return 0;
}

typedef struct {
    long wrong_sum, wrong_avg, diverged;
    double busbw_sum[2];
    int lines;
} bench_totals;

static int run_size(bench_totals *tot, mv_comm *c, const bench_opts *o, float *buf, size_t bytes) {
    size_t n = bytes / sizeof(float);
    mv_grad_sync sync;
    mv_grad_sync_opts gopts = {.bucket_bytes = o->bucket_bytes, .first_bucket_bytes = o->first_bucket_bytes};
    MV_TRY(grad_sync_init(&sync, c, buf, NULL, &gopts, n, 0));
    double us[2];
    double wrong[3] = {0, 0, 0};   // sum, average, diverged ranks
    int rc = 0;
    fill_pattern(buf, n, o->seed, c->rank);
    if (time_op(&us[0], c, NULL, buf, n, o->warmup, o->iters) < 0 ||
        time_op(&us[1], c, &sync, buf, n, o->warmup, o->iters) < 0) rc = -1;
    if (rc == 0 && o->check) {
        // the plain sum must be exact
        fill_pattern(buf, n, o->seed, c->rank);
        rc = comm_allreduce_sum_floats(c, buf, n);
        if (rc == 0) wrong[0] = (double)count_wrong(buf, n, o->seed, c->world, 0);
        // grad_sync's average within 2 ulp
        if (rc == 0) {
            fill_pattern(buf, n, o->seed, c->rank);
            rc = grad_sync_step(&sync);
        }
        if (rc == 0) wrong[1] = (double)count_wrong(buf, n, o->seed, c->world, 1);
        // sums that round: every rank must still hold the same bytes as rank 0
        if (rc == 0) {
            fill_random(buf, n, o->seed, c->rank);
            rc = grad_sync_step(&sync);
        }
        if (rc == 0) {
            uint64_t mine = hash_floats(buf, n), root = mine;
            rc = comm_bcast_bytes(c, &root, sizeof root);
            wrong[2] = mine != root;
        }
        if (rc == 0) rc = comm_allreduce_sum_doubles(c, wrong, 3);
    }
    if (rc < 0) {
        grad_sync_free(&sync);
        return mv_fail_context("all-reduce of %zu bytes", bytes);
    }
    int nb = sync.num_buckets;
    grad_sync_free(&sync);
    tot->wrong_sum += (long)wrong[0];
    tot->wrong_avg += (long)wrong[1];
    tot->diverged += (long)wrong[2];
    double factor = 2.0 * (c->world - 1) / c->world;
    double algbw[2], busbw[2];
    for (int g = 0; g < 2; g++) {
        algbw[g] = (double)bytes / (us[g] * 1e-6) / 1e9;
        busbw[g] = algbw[g] * factor;
        tot->busbw_sum[g] += busbw[g];
    }
    tot->lines++;
    if (c->rank == 0) {
        char w0[16] = "N/A", w1[16] = "N/A";
        if (o->check) {
            snprintf(w0, sizeof w0, "%ld", (long)wrong[0]);
            snprintf(w1, sizeof w1, "%ld", (long)wrong[1]);
        }
        printf("%12zu  %12zu  %5s  %5s  %9.1f  %6.2f  %6.2f  %6s   %9.1f  %6.2f  %6.2f  %6s  %4d\n", bytes, n, "float",
               "sum", us[0], algbw[0], busbw[0], w0, us[1], algbw[1], busbw[1], w1, nb);
        fflush(stdout);
    }
    return 0;
}

// Stands in for one layer's backward: keeps the core busy until `until` (no MPI calls inside,
// like a real kernel), so communication progresses only at the grad_sync calls between layers.
static void busy_until(double until) {
    volatile double x = 1.0;
    while (mv_now_s() < until)
        for (int i = 0; i < 1000; i++) x = x * 0.999999 + 1e-7;
}

// One simulated step: backward of `layers` equal layers over buf[0..n), last layer first, each
// taking compute_s/layers; mode 0 compute only, 1 compute then all-reduce, 2 overlapped.
static int overlap_step(double *seconds, mv_grad_sync *s, double compute_s, int layers, int mode) {
    double t0 = mv_now_s(), slice = compute_s / layers;
    for (int l = layers - 1; l >= 0; l--) {
        busy_until(t0 + (layers - l) * slice);
        if (mode == 2) MV_TRY(grad_sync_ready(s, (size_t)((double)s->n * l / layers)));
    }
    if (mode > 0) MV_TRY(grad_sync_finish(s));
    *seconds = mv_now_s() - t0;
    return 0;
}

// Reports how much of the all-reduce a backward of o->overlap_ms hides: median of iters steps
// per mode, averaged over ranks.
static int run_overlap(mv_comm *c, const bench_opts *o, float *buf, size_t bytes) {
    size_t n = bytes / sizeof(float);
    int layers = o->layers;
    size_t *cuts = mv_malloc((size_t)layers * sizeof *cuts);
    for (int l = 0; l < layers; l++) cuts[l] = (size_t)((double)n * l / layers);
    mv_grad_sync sync;
    mv_grad_sync_opts gopts = {.bucket_bytes = o->bucket_bytes, .first_bucket_bytes = o->first_bucket_bytes};
    int rc = grad_sync_init(&sync, c, buf, cuts, &gopts, n, layers);
    free(cuts);
    MV_TRY(rc);
    fill_pattern(buf, n, o->seed, c->rank);
    int iters = o->iters < 3 ? 3 : o->iters;
    double *t = mv_malloc((size_t)iters * sizeof *t), med[3];
    for (int mode = 0; mode < 3 && rc == 0; mode++) {
        for (int it = -1; it < iters && rc == 0; it++) {   // it = -1: warm-up
            rc = comm_barrier(c);
            if (rc == 0) rc = overlap_step(&t[it < 0 ? 0 : it], &sync, o->overlap_ms * 1e-3, layers, mode);
        }
        // median (insertion sort: a handful of values)
        for (int i = 1; i < iters; i++)
            for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
                double tmp = t[j];
                t[j] = t[j - 1];
                t[j - 1] = tmp;
            }
        med[mode] = t[iters / 2];
    }
    free(t);
    int nb = sync.num_buckets;
    grad_sync_free(&sync);
    if (rc == 0) rc = comm_allreduce_sum_doubles(c, med, 3);
    if (rc < 0) return mv_fail_context("simulated backward of %zu bytes", bytes);
    if (c->rank == 0) {
        double comp = 1e3 * med[0] / c->world, serial = 1e3 * med[1] / c->world, over = 1e3 * med[2] / c->world;
        double ar = serial - comp, exposed = over - comp;
        printf("# Overlap: %zu bytes in %d buckets, backward of %d layers, median of %d steps (ms):\n", bytes, nb, layers, iters);
        // Timing noise makes the differences slightly negative where they are about zero (one rank,
        // where an all-reduce costs nothing): shown as 0, and the hidden share kept within 0..100%.
        if (ar < 0) ar = 0;
        if (exposed < 0) exposed = 0;
        double hidden = ar > 0 ? 100.0 * (1.0 - exposed / ar) : 0.0;
        if (hidden < 0) hidden = 0;
        char share[64];
        if (c->world == 1) snprintf(share, sizeof share, "one rank: no all-reduce to hide");
        else snprintf(share, sizeof share, "%.0f%% hidden", hidden);
        printf("#   compute %.1f | compute then all-reduce %.1f | overlapped %.1f | all-reduce %.1f, exposed %.1f (%s)\n",
               comp, serial, over, ar, exposed, share);
        fflush(stdout);
    }
    return 0;
}

// --fail-rank: the ways a rank can go wrong while the others wait in a collective.
static void simulate_failure(const bench_opts *o) {
    if (o->fail_mode == FAIL_EXIT) {
        fprintf(stderr, "maskvim: simulated crash (--fail-rank, exit without MPI_Abort)\n");
        _exit(3);
    }
    if (o->fail_mode == FAIL_HANG) {
        fprintf(stderr, "maskvim: simulated stuck rank (--fail-rank, hang)\n");
        for (;;) sleep(60);
    }
    mv_fail("simulated failure (--fail-rank)");
}

// Every rank must run the same sizes, iterations, buckets and checks: ranks started otherwise
// (an MPMD command line) would post collectives of other sizes or counts, which end in a raw MPI
// error (a truncated message) or a hang. Rank 0's options against each rank's own; 0, or -1
// with the first rank that differs named on every rank. Also a --fail-rank that no rank has.
static int same_options_everywhere(mv_comm *c, const bench_opts *o) {
    if (o->fail_rank >= c->world)
        return mv_fail("--fail-rank %d: there are ranks 0 to %d only", o->fail_rank, c->world - 1);
    if (c->world <= 1) return 0;
    char mine[512], r0[512], what[MV_COMM_MSG_MAX] = "";
    snprintf(mine, sizeof mine, "bytes %zu-%zu x%.17g, iters %d, warmup %d, check %d, seed %llu, buckets %zu/%zu, "
             "overlap %.17g ms over %d layers, fail rank %d mode %d", o->min_bytes, o->max_bytes, o->step_factor,
             o->iters, o->warmup, o->check, (unsigned long long)o->seed, o->bucket_bytes, o->first_bucket_bytes,
             o->overlap_ms, o->layers, o->fail_rank, o->fail_mode);
    memcpy(r0, mine, sizeof r0);
    MV_TRY(comm_bcast_bytes(c, r0, sizeof r0));
    if (strcmp(r0, mine)) snprintf(what, sizeof what, "%.400s on rank 0, %.400s on rank %d", r0, mine, c->rank);
    int first;
    MV_TRY(comm_first_message(c, what, sizeof what, &first));
    if (first >= 0)
        return mv_fail("rank %d was started with other options than rank 0: %s (start every rank with the same options)",
                       first, what);
    return 0;
}

int cmd_bench_allreduce(int argc, char **argv) {
    bench_opts o;
    int pr = parse_args(&o, argc, argv);
    if (pr == 1) {
        usage(stdout);
        return 0;
    }
    if (pr < 0) {
        fprintf(stderr, "maskvim bench-allreduce: %s\n", mv_last_error());
        return 2;
    }
    mv_comm c;
    if (comm_init(&c, &argc, &argv) < 0) {
        fprintf(stderr, "maskvim bench-allreduce: %s\n", mv_last_error());
        return 1;
    }
    if (same_options_everywhere(&c, &o) < 0) comm_abort(2, mv_last_error());
    double nodes = c.local_rank == 0;
    if (comm_allreduce_sum_doubles(&c, &nodes, 1) < 0) comm_abort(1, mv_last_error());
    if (c.rank == 0) {
        printf("# maskvim bench-allreduce: %d rank%s on %d node%s, backend %s, float32 sum in place\n", c.world,
               c.world == 1 ? "" : "s", (int)nodes, nodes == 1 ? "" : "s", comm_backend_name(c.backend));
        printf("# iters %d, warmup %d, check %s, grad_sync buckets %zu bytes (first %zu)\n", o.iters, o.warmup,
               o.check ? "on" : "off", o.bucket_bytes, o.first_bucket_bytes);
        if (o.model_mode) printf("# the model's gradient buffer: %zu bytes\n", o.min_bytes);
        printf("#\n#%53s%-42s%s\n", "", "one all-reduce", "grad_sync (buckets, average)");
        printf("# %10s  %12s  %5s  %5s  %9s  %6s  %6s  %6s   %9s  %6s  %6s  %6s  %4s\n", "size", "count", "type", "redop",
               "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong", "bkts");
        printf("# %10s  %12s  %5s  %5s  %9s  %6s  %6s  %6s   %9s  %6s  %6s  %6s  %4s\n", "(B)", "(elements)", "", "",
               "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "", "");
        fflush(stdout);
    }
    float *buf = mv_malloc(o.max_bytes);
    bench_totals tot = {0};
    for (double b = (double)o.min_bytes; b <= (double)o.max_bytes * (1 + 1e-9); b *= o.step_factor) {
        size_t bytes = ((size_t)b / sizeof(float)) * sizeof(float);
        if (bytes > o.max_bytes) bytes = o.max_bytes;
        if (c.rank == o.fail_rank && tot.lines == 0 && o.fail_mode != FAIL_HANG_AT_EXIT) {
            simulate_failure(&o);
            free(buf);
            comm_abort(1, mv_last_error());
        }
        if (run_size(&tot, &c, &o, buf, bytes) < 0) {
            free(buf);
            comm_abort(1, mv_last_error());
        }
    }
    if (o.overlap_ms > 0 && run_overlap(&c, &o, buf, o.max_bytes) < 0) {
        free(buf);
        comm_abort(1, mv_last_error());
    }
    free(buf);
    int ok = tot.wrong_sum == 0 && tot.wrong_avg == 0 && tot.diverged == 0;
    if (c.rank == 0) {
        if (o.check) {
            printf("# Out of bounds values : %ld %s\n", tot.wrong_sum + tot.wrong_avg, tot.wrong_sum + tot.wrong_avg ? "FAILED" : "OK");
            printf("# Identical on all ranks (random data): %s\n", tot.diverged ? "NO" : "yes");
        }
        if (tot.lines > 0)
            printf("# Avg bus bandwidth    : %.3f GB/s (one all-reduce), %.3f GB/s (grad_sync)\n",
                   tot.busbw_sum[0] / tot.lines, tot.busbw_sum[1] / tot.lines);
        printf("#\n");
        fflush(stdout);
    }
    if (c.rank == o.fail_rank && o.fail_mode == FAIL_HANG_AT_EXIT) {
        fprintf(stderr, "maskvim: simulated rank stuck at exit (--fail-rank, hang-at-exit)\n");
        for (;;) sleep(60);
    }
    comm_finalize(&c);
    return ok ? 0 : 1;
}
