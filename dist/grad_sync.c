// Bucketed gradient all-reduce overlapped with backward (see grad_sync.h).
#include "dist/grad_sync.h"
#include "dist/comm_mpi.h"
#include "core/error.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MV_DEFAULT_BUCKET_BYTES ((size_t)25 << 20)
#define MV_DEFAULT_FIRST_BUCKET_BYTES ((size_t)1 << 20)
// One collective carries an int count; keep buckets well inside it.
#define MV_MAX_BUCKET_FLOATS ((size_t)1 << 30)

// Index of the first cut >= x in ascending cuts[0..num), or num.
static int lower_bound(const size_t *cuts, int num, size_t x) {
    int lo = 0, hi = num;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cuts[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int grad_sync_plan(mv_bucket *buckets, const size_t *cuts, size_t n, int num_cuts,
                   size_t first_bucket_floats, size_t bucket_floats, int max_buckets) {
    if (num_cuts < 0 || (num_cuts > 0 && !cuts)) return mv_fail("grad_sync_plan: bad cut list (%d cuts)", num_cuts);
    if (first_bucket_floats == 0 || bucket_floats == 0) return mv_fail("grad_sync_plan: bucket size must be positive");
    for (int i = 0; i < num_cuts; i++) {
        if (cuts[i] > n) return mv_fail("grad_sync_plan: parameter offset %zu (cut %d) beyond the buffer of %zu floats", cuts[i], i, n);
        if (i > 0 && cuts[i] < cuts[i - 1])
            return mv_fail("grad_sync_plan: parameter offsets not ascending at cut %d (%zu after %zu)", i, cuts[i], cuts[i - 1]);
    }
    if (first_bucket_floats > MV_MAX_BUCKET_FLOATS) first_bucket_floats = MV_MAX_BUCKET_FLOATS;
    if (bucket_floats > MV_MAX_BUCKET_FLOATS) bucket_floats = MV_MAX_BUCKET_FLOATS;
    int count = 0;
    size_t hi = n, cap = first_bucket_floats;
    while (hi > 0) {
        size_t target = hi > cap ? hi - cap : 0, lo = target;
        if (target > 0 && num_cuts > 0) {
            // Largest bucket of whole parameters that fits: it starts at the first cut >= target.
            int j = lower_bound(cuts, num_cuts, target);
            if (j < num_cuts && cuts[j] < hi) {
                lo = cuts[j];
            } else {
                // The parameter holding hi-1 alone exceeds the target: it gets its own bucket.
                int p = lower_bound(cuts, num_cuts, hi) - 1;
                lo = p >= 0 ? cuts[p] : 0;
                if (hi - lo > MV_MAX_BUCKET_FLOATS) lo = hi - MV_MAX_BUCKET_FLOATS;
            }
        }
        if (buckets) {
            if (count >= max_buckets) return mv_fail("grad_sync_plan: more than %d buckets", max_buckets);
            buckets[count].lo = lo;
            buckets[count].hi = hi;
        }
        if (count == INT_MAX) return mv_fail("grad_sync_plan: too many buckets");
        count++;
        hi = lo;
        cap = bucket_floats;
    }
    return count;
}

// MiB -> bytes. A positive size below one float is one float: truncated to 0 bytes it would
// read as "unset" and give the default buckets.
static size_t mib_to_bytes(double mib) {
    if (!(mib > 0)) return 0;
    double bytes = mib * 1048576.0;
    return bytes < (double)sizeof(float) ? sizeof(float) : (size_t)bytes;
}

mv_grad_sync_opts grad_sync_opts_mib(double bucket_mib, double first_bucket_mib) {
    mv_grad_sync_opts o = {mib_to_bytes(bucket_mib), mib_to_bytes(first_bucket_mib)};
    return o;
}

int grad_sync_plan_alloc(mv_bucket **out, const size_t *cuts, size_t n, int num_cuts,
                         const mv_grad_sync_opts *opts) {
    *out = NULL;
    size_t bucket_bytes = opts && opts->bucket_bytes ? opts->bucket_bytes : MV_DEFAULT_BUCKET_BYTES;
    size_t first_bytes = opts && opts->first_bucket_bytes ? opts->first_bucket_bytes : MV_DEFAULT_FIRST_BUCKET_BYTES;
    if (first_bytes > bucket_bytes) first_bytes = bucket_bytes;
    size_t bucket_floats = bucket_bytes / sizeof(float), first_floats = first_bytes / sizeof(float);
    if (bucket_floats == 0) bucket_floats = 1;
    if (first_floats == 0) first_floats = 1;
    int nb = grad_sync_plan(NULL, cuts, n, num_cuts, first_floats, bucket_floats, 0);
    if (nb < 0) return -1;
    mv_bucket *b = calloc(nb > 0 ? (size_t)nb : 1, sizeof *b);
    if (!b) return mv_fail("grad_sync_plan_alloc: out of memory for %d buckets", nb);
    if (grad_sync_plan(b, cuts, n, num_cuts, first_floats, bucket_floats, nb) != nb) {
        free(b);
        return -1;
    }
    *out = b;
    return nb;
}

int grad_sync_init(mv_grad_sync *s, mv_comm *c, float *grads, const size_t *cuts,
                   const mv_grad_sync_opts *opts, size_t n, int num_cuts) {
    memset(s, 0, sizeof *s);
    if (n > 0 && !grads) return mv_fail("grad_sync_init: no gradient buffer for %zu floats", n);
    if (c->backend == MV_DIST_NCCL)
        return mv_fail("grad_sync_init: host buffers cannot go through NCCL (the GPU engine uses dist/nccl_comm.h)");
    int nb = grad_sync_plan_alloc(&s->buckets, cuts, n, num_cuts, opts);
    if (nb < 0) return mv_fail_context("grad_sync_init");
    s->comm = c;
    s->grads = grads;
    s->n = n;
    s->num_buckets = nb;
    s->done = mv_calloc((size_t)nb, sizeof *s->done);
#ifdef MV_HAVE_MPI
    MPI_Request *reqs = mv_calloc((size_t)nb, sizeof *reqs);
    for (int k = 0; k < nb; k++) reqs[k] = MPI_REQUEST_NULL;
    s->reqs = reqs;
#endif
    return 0;
}

void grad_sync_free(mv_grad_sync *s) {
    free(s->buckets);
    free(s->done);
    free(s->reqs);
    memset(s, 0, sizeof *s);
}

// Sum -> average. Division (not multiplication by 1/world) keeps the result correctly rounded.
static void average_bucket(mv_grad_sync *s, int k) {
    int world = s->comm->world;
    if (world > 1) {
        float w = (float)world;
        float *g = s->grads + s->buckets[k].lo;
        long len = (long)(s->buckets[k].hi - s->buckets[k].lo);
#pragma omp parallel for if (len > (1L << 20))
        for (long i = 0; i < len; i++) g[i] /= w;
    }
    s->done[k] = 1;
}

static int start_bucket(mv_grad_sync *s, int k) {
    mv_comm *c = s->comm;
    if (c->world <= 1) {
        average_bucket(s, k);   // a single rank's gradients are already the average
        return 0;
    }
#ifdef MV_HAVE_MPI
    MPI_Request *reqs = s->reqs;
    size_t lo = s->buckets[k].lo, len = s->buckets[k].hi - lo;
    int err = MPI_Iallreduce(MPI_IN_PLACE, s->grads + lo, (int)len, MPI_FLOAT, MPI_SUM, comm_mpi_handle(c), &reqs[k]);
    if (err != MPI_SUCCESS) {
        comm_mpi_fail(err, "gradient all-reduce");
        return mv_fail_context("bucket %d (floats %zu..%zu)", k, lo, lo + len);
    }
    return 0;
#else
    return mv_fail("gradient all-reduce: %d ranks but no MPI in this build", c->world);
#endif
}

// Tests the started, unfinished buckets; averages those that completed. *pending receives how
// many are still in flight.
static int poll_buckets(mv_grad_sync *s, int *pending) {
    *pending = 0;
    if (s->comm->world <= 1) return 0;
#ifdef MV_HAVE_MPI
    MPI_Request *reqs = s->reqs;
    int first = 0;
    while (first < s->next && s->done[first]) first++;
    if (first == s->next) return 0;
    int count = s->next - first, outcount = 0;
    int idx[64];
    // Testsome over the in-flight window; requests already complete are MPI_REQUEST_NULL.
    while (count > 0) {
        int chunk = count < 64 ? count : 64;
        int err = MPI_Testsome(chunk, reqs + first, &outcount, idx, MPI_STATUSES_IGNORE);
        if (err != MPI_SUCCESS) return comm_mpi_fail(err, "gradient all-reduce");
        if (outcount != MPI_UNDEFINED)
            for (int i = 0; i < outcount; i++) average_bucket(s, first + idx[i]);
        first += chunk;
        count -= chunk;
    }
    for (int k = 0; k < s->next; k++) *pending += !s->done[k];
    return 0;
#else
    return 0;
#endif
}

static int check_thread(void) {
#ifdef MV_HAVE_MPI
    int inited = 0, main_thread = 1;
    MPI_Initialized(&inited);
    if (inited) MPI_Is_thread_main(&main_thread);
    MV_CHECK(main_thread, "grad_sync called outside the thread that initialised MPI (MPI_THREAD_FUNNELED)");
#endif
    return 0;
}

// Starts the buckets from s->next up to (not including) `end`, in index order, so that every
// rank issues the same collectives in the same order.
static int start_until(mv_grad_sync *s, int end) {
    for (; s->next < end; s->next++) MV_TRY(start_bucket(s, s->next));
    return 0;
}

int grad_sync_ready(mv_grad_sync *s, size_t offset_lo) {
    check_thread();
    int end = s->next;   // the buckets lying wholly at or above offset_lo
    while (end < s->num_buckets && s->buckets[end].lo >= offset_lo) end++;
    MV_TRY(start_until(s, end));
    int pending;
    return poll_buckets(s, &pending);
}

int grad_sync_finish(mv_grad_sync *s) {
    check_thread();
    MV_TRY(start_until(s, s->num_buckets));
    mv_wait_clock w;
    comm_mpi_wait_start(&w);
    for (;;) {
        int pending = 0;
        MV_TRY(poll_buckets(s, &pending));
        if (pending == 0) break;
        double waited;
        if (comm_mpi_timed_out(s->comm, &w, &waited))
            return mv_fail("gradient all-reduce: %d of %d buckets not complete after %.0f s" MV_COMM_TIMEOUT_WHY,
                           pending, s->num_buckets, waited);
    }
    s->next = 0;
    memset(s->done, 0, (size_t)s->num_buckets * sizeof *s->done);
    return 0;
}
