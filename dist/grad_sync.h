// Gradient averaging across ranks, overlapped with backward. The gradients of all parameters
// live in ONE flat float buffer; it is cut into buckets (about 25 MiB) laid from the END of the
// buffer, because backward produces the last layers' gradients first. As soon as backward
// reports that every gradient at offset >= lo is final (grad_sync_ready), each bucket lying
// wholly above lo starts a non-blocking in-place sum; grad_sync_finish waits for the rest and
// divides by the number of ranks.
//
// One step:   for each layer, last to first:  layer_backward(...); grad_sync_ready(&s, layer_lo);
//             grad_sync_finish(&s);   // grads now hold the average over ranks
//
// Buckets always start in index order 0, 1, 2, ... (whatever offsets ready is called with),
// so every rank issues the same collectives in the same order, as MPI and NCCL require.
// This is the MPI backend, on host memory; dist/nccl_comm.h has the NCCL one (device memory, a
// communication stream), with the same bucket plan (grad_sync_plan_alloc) and call pattern.
#pragma once
#include <stddef.h>
#include "dist/comm.h"

typedef struct {
    size_t lo, hi;   // float offsets [lo, hi) in the flat gradient buffer
} mv_bucket;

typedef struct {
    size_t bucket_bytes;        // target size of a bucket (0: 25 MiB)
    size_t first_bucket_bytes;  // the first bucket, i.e. the last layers: smaller, so that
                                // communication starts early in backward (0: 1 MiB)
} mv_grad_sync_opts;

// The options for buckets given in MiB (run.bucket_mb, run.first_bucket_mb; 0: the default).
// A positive size below one float (4 bytes) gives one-float buckets, never the default.
mv_grad_sync_opts grad_sync_opts_mib(double bucket_mib, double first_bucket_mib);

typedef struct {
    mv_comm *comm;
    float *grads;          // (n) the flat gradient buffer, reduced in place
    size_t n;
    mv_bucket *buckets;    // (num_buckets) bucket 0 ends at n; bucket k+1 ends where k starts
    int num_buckets;
    int next;              // buckets [0, next) have been started in this step
    int *done;             // (num_buckets) 1 once reduced and averaged in this step
    void *reqs;            // (num_buckets) backend requests, private to grad_sync.c
} mv_grad_sync;

// Plans the buckets of a flat buffer of n floats, from the end. cuts[0..num_cuts) are the
// parameters' start offsets, ascending (0 and n may be included): a bucket then holds whole
// parameters (as many as fit in the target size; a parameter larger than the target gets a
// bucket of its own), so it becomes ready as soon as its first parameter is. Without cuts,
// buckets are exactly the target size. Writes at most max_buckets entries to `buckets` (or
// none when it is NULL) and returns the number of buckets, or -1 with a message.
int grad_sync_plan(mv_bucket *buckets, const size_t *cuts, size_t n, int num_cuts,
                   size_t first_bucket_floats, size_t bucket_floats, int max_buckets);

// The bucket plan both gradient all-reduces use (this file's on MPI, dist/nccl_comm.cu's on
// NCCL): the sizes of opts, whose zero fields (or a NULL opts) take the defaults, first bucket
// 1 MiB then 25 MiB (the first is capped at the others' size), planned by grad_sync_plan into a
// new array *out (at least one entry; free() it). Returns the number of buckets, or -1 with a
// message (*out is then NULL).
int grad_sync_plan_alloc(mv_bucket **out, const size_t *cuts, size_t n, int num_cuts,
                         const mv_grad_sync_opts *opts);

// Prepares the all-reduce of grads[0..n) on communicator c (kept by pointer). cuts as above
// (may be NULL), opts may be NULL for the defaults. Returns 0, or -1 with a message.
int grad_sync_init(mv_grad_sync *s, mv_comm *c, float *grads, const size_t *cuts,
                   const mv_grad_sync_opts *opts, size_t n, int num_cuts);
void grad_sync_free(mv_grad_sync *s);

// Backward tells that every gradient at offset >= offset_lo is final: starts every bucket that
// lies wholly at or above offset_lo, then lets pending reductions progress (MPI moves data only
// inside MPI calls, so call this often during backward). 0, or -1 with a message.
int grad_sync_ready(mv_grad_sync *s, size_t offset_lo);
// Starts whatever was not started, waits for all (failing after the communicator's timeout),
// and leaves grads holding the average over ranks. Resets for the next step. 0 or -1.
int grad_sync_finish(mv_grad_sync *s);
