// The NCCL path of dist/nccl_comm.h on real GPUs: binding, the communicator, the bucketed gradient
// all-reduce driven as backward drives it (ready() per parameter from the last, then finish()),
// two steps in a row, and the SyncBN reducer. Run directly it is one rank; under mpirun each rank
// takes GPU local_rank % count (tests/gpu/device_checks.sh runs 2 ranks when 2 GPUs exist).
// Gradient values are small multiples of 1/4, so sums over ranks are exact and the average must
// equal the host's bit for bit. Without a GPU (or NCCL) it prints a SKIP line and passes.
#include "dist/nccl_comm.h"
#include "dist/comm.h"
#include "core/error.h"
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_checks, g_failed, g_rank;

static void record(const char *what, int ok, const char *detail) {
    g_checks++;
    if (!ok) g_failed++;
    printf("rank %d: %s %-44s%s%s\n", g_rank, ok ? "PASS" : "FAIL", what, detail ? "  " : "", detail ? detail : "");
}

static float grad_value(size_t i, int rank, int step) {
    return 0.25f * (float)((i * 7 + (size_t)rank * 13 + (size_t)step * 5) % 1001) - 100.0f;
}

// Parameter cuts of irregular sizes (like a model's tensors), ascending from 0.
static int make_cuts(size_t *cuts, size_t n, int max) {
    int k = 0;
    size_t off = 0;
    while (off < n && k < max) {
        cuts[k++] = off;
        off += 1000 + (size_t)(k * 7919) % 30000;
    }
    return k;
}

static int run(mv_comm *c) {
    int dev = -1;
    if (mv_cuda_bind_local_rank(c->local_rank, &dev) < 0) {
        printf("SKIP: %s\n", mv_last_error());
        return 0;
    }
    mv_nccl nccl;
    if (mv_nccl_init(&nccl, c->rank, c->world, mv_nccl_comm_bcast, c) < 0) {
        const char *msg = mv_last_error();
        if (strstr(msg, "without NCCL")) {
            printf("SKIP: %s\n", msg);
            return 0;
        }
        record("mv_nccl_init", 0, msg);
        return 1;
    }
    printf("rank %d of %d on device %d\n", c->rank, c->world, dev);
    enum { MAX_CUTS = 256 };
    const size_t n = 1500007;
    size_t cuts[MAX_CUTS];
    int num_cuts = make_cuts(cuts, n, MAX_CUTS);
    // Small buckets, so that the buffer holds many and ready() starts them a few at a time.
    mv_grad_sync_opts opts = {256 << 10, 32 << 10};
    float *host = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n), *dev_grads = NULL;
    cudaStream_t compute = NULL;
    mv_nccl_grad_sync gs;
    memset(&gs, 0, sizeof gs);
    int status = 0;
    if (!host || !want || cudaMalloc((void **)&dev_grads, sizeof(float) * n) != cudaSuccess ||
        cudaStreamCreate(&compute) != cudaSuccess) {
        record("buffers", 0, "out of memory");
        status = 1;
        goto done;
    }
    if (mv_nccl_grad_sync_init(&gs, &nccl, dev_grads, cuts, &opts, n, num_cuts) < 0) {
        record("mv_nccl_grad_sync_init", 0, mv_last_error());
        status = 1;
        goto done;
    }
    int planned = grad_sync_plan(NULL, cuts, n, num_cuts, 32 << 8, 256 << 8, 0);
    char detail[128];
    snprintf(detail, sizeof detail, "(%d buckets, %d parameters)", gs.num_buckets, num_cuts);
    record("bucket plan as grad_sync_plan", gs.num_buckets == planned && gs.num_buckets > 4, detail);
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < n; i++) {
            double sum = 0;
            for (int r = 0; r < c->world; r++) sum += grad_value(i, r, step);
            want[i] = (float)sum / (float)c->world;   // exact sum, then the same division as the GPU
            host[i] = grad_value(i, c->rank, step);
        }
        // "Backward": parameters from the last, each uploaded on the compute stream, then ready().
        int ok = 1;
        for (int k = num_cuts - 1; k >= 0 && ok; k--) {
            size_t lo = cuts[k], hi = k + 1 < num_cuts ? cuts[k + 1] : n;
            ok = cudaMemcpyAsync(dev_grads + lo, host + lo, sizeof(float) * (hi - lo), cudaMemcpyHostToDevice,
                                 compute) == cudaSuccess &&
                 mv_nccl_grad_sync_ready(&gs, lo, compute) == 0;
        }
        ok = ok && mv_nccl_grad_sync_finish(&gs, compute) == 0;
        ok = ok && cudaMemcpyAsync(host, dev_grads, sizeof(float) * n, cudaMemcpyDeviceToHost, compute) == cudaSuccess;
        ok = ok && cudaStreamSynchronize(compute) == cudaSuccess;
        size_t bad = 0, first = 0;
        for (size_t i = 0; ok && i < n; i++)
            if (memcmp(&host[i], &want[i], sizeof(float))) {
                if (!bad) first = i;
                bad++;
            }
        if (!ok) snprintf(detail, sizeof detail, "(%s)", mv_last_error());
        else if (bad) snprintf(detail, sizeof detail, "(%zu of %zu differ; first %zu: %g, want %g)", bad, n, first,
                               host[first], want[first]);
        else snprintf(detail, sizeof detail, "(%zu floats, %d ranks)", n, c->world);
        char what[64];
        snprintf(what, sizeof what, "step %d: average over ranks, same bits", step);
        record(what, ok && !bad, detail);
    }
    // SyncBN: sums of doubles in place on the compute stream.
    {
        double h[9], back[9], *d = NULL;
        for (int i = 0; i < 9; i++) h[i] = (c->rank + 1) * (i + 0.5);
        mv_reducer_cuda red = mv_nccl_reducer(&nccl);
        int ok = red.fn != NULL && cudaMalloc((void **)&d, sizeof h) == cudaSuccess &&
                 cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice) == cudaSuccess;
        if (ok) red.fn(red.ctx, d, 9, compute);
        ok = ok && cudaMemcpyAsync(back, d, sizeof back, cudaMemcpyDeviceToHost, compute) == cudaSuccess &&
             cudaStreamSynchronize(compute) == cudaSuccess && mv_cuda_status("SyncBN reducer") == 0;
        double ranks = (double)c->world * (c->world + 1) / 2;
        for (int i = 0; ok && i < 9; i++) ok = back[i] == ranks * (i + 0.5);
        record("SyncBN reducer sums doubles", ok, ok ? NULL : mv_last_error());
        if (d) cudaFree(d);
    }
    if (c->rank == 0) {
        int r = mv_nccl_selfcheck();
        record("mv_nccl_selfcheck", r == 0, r < 0 ? mv_last_error() : NULL);
    }
    status = g_failed ? 1 : 0;
done:
    mv_nccl_grad_sync_free(&gs);
    mv_nccl_free(&nccl);
    if (compute) cudaStreamDestroy(compute);
    if (dev_grads) cudaFree(dev_grads);
    free(host);
    free(want);
    return status;
}

int main(int argc, char **argv) {
    mv_comm c;
    if (comm_init(&c, &argc, &argv) < 0) {
        fprintf(stderr, "test_nccl: %s\n", mv_last_error());
        return 1;
    }
    g_rank = c.rank;
    int status = run(&c);
    if (g_checks) printf("rank %d: test_nccl: %d checks, %d failed\n", c.rank, g_checks, g_failed);
    comm_finalize(&c);
    return status;
}
