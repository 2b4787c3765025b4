// The streaming loader: rank slices over world sizes 1, 2, 3 reassemble the single-rank
// stream; every epoch is a permutation; a saved cursor continues with identical batches (also
// on another world size); results do not depend on the thread count; test mode; read errors.
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/stop_signal.h"
#include "data/loader.h"
#include "data/shard.h"

#define CROP_H 24
#define CROP_W 32

static char g_dirs[2][4096];

// Two splits: A with 10 samples of 30x44, B with 7 samples of 26x40; every pixel says which
// sample it comes from (labels: sample % 19 except a stripe of another class).
static void make_splits(const char *name) {
    const char *base = getenv("MV_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    int counts[2] = {10, 7}, hs[2] = {30, 26}, ws[2] = {44, 40};
    for (int s = 0; s < 2; s++) {
        snprintf(g_dirs[s], sizeof g_dirs[s], "%s/test_loader/%s/%c", base, name, 'A' + s);
        mv_shard_writer *w = shard_writer_open(g_dirs[s], s ? "b" : "a", "test/v1", 4);
        cr_assert(w, "%s", mv_last_error());
        for (int i = 0; i < counts[s]; i++) {
            mv_image rgb = image_alloc(hs[s], ws[s], 3), lab = image_alloc(hs[s], ws[s], 1);
            for (int p = 0; p < hs[s] * ws[s]; p++) {
                rgb.px[3 * p] = (uint8_t)(s * 100 + i * 9);
                rgb.px[3 * p + 1] = (uint8_t)(p % 251);
                rgb.px[3 * p + 2] = (uint8_t)(p / ws[s] * 5);
                lab.px[p] = (uint8_t)(p % ws[s] < 10 ? (i + 5) % 19 : i % 19);
            }
            char nm[32];
            snprintf(nm, sizeof nm, "%c%02d", 'A' + s, i);
            cr_assert_eq(shard_writer_add(w, nm, &rgb, &lab), 0, "%s", mv_last_error());
            image_free(&rgb);
            image_free(&lab);
        }
        cr_assert_eq(shard_writer_close(w), 0);
    }
}

static mv_loader_source g_src[2];

static mv_loader_config train_config(int batch, int rank, int world, int workers) {
    mv_loader_config c;
    memset(&c, 0, sizeof c);
    c.mode = MV_LOADER_TRAIN;
    g_src[0] = (mv_loader_source){g_dirs[0], 1};
    g_src[1] = (mv_loader_source){g_dirs[1], 2};  // B twice per epoch
    c.sources = g_src;
    c.n_sources = 2;
    c.batch = batch;
    c.rank = rank;
    c.world = world;
    c.seed = 42;
    c.workers = workers;
    c.depth = 3;
    augment_default_config(&c.aug, CROP_H, CROP_W);
    c.aug.scale_long = 44;
    c.aug.scale_short = 30;
    return c;
}

// A recorded item: identity plus a hash of its pixels.
typedef struct {
    int64_t position;
    int source;
    int64_t sample;
    int32_t epoch;
    int batch_index;
    uint64_t hash;
} item;

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

// Runs `steps` batches of one loader (after an optional cursor) and records their items.
static int record(item *out, const mv_loader_config *cfg, const mv_loader_cursor *start, int steps,
                  mv_loader_cursor *end) {
    mv_loader *L;
    cr_assert_eq(loader_open(&L, cfg, start), 0, "%s", mv_last_error());
    int n = 0;
    size_t plane = (size_t)CROP_H * CROP_W;
    for (int t = 0; t < steps; t++) {
        const mv_batch *b;
        cr_assert_eq(loader_next(L, &b), 1, "%s", mv_last_error());
        cr_assert_eq(b->b, cfg->batch);
        cr_assert(b->h == CROP_H && b->w == CROP_W && b->lh == CROP_H && b->lw == CROP_W);
        for (int i = 0; i < b->b; i++) {
            item *it = &out[n++];
            it->position = b->position[i];
            it->source = b->source[i];
            it->sample = b->sample[i];
            it->epoch = b->epoch[i];
            it->batch_index = b->batch_index[i];
            it->hash = fnv(b->images + i * 3 * plane, sizeof(float) * 3 * plane, 1469598103934665603ull);
            it->hash = fnv(b->labels + i * plane, plane, it->hash);
            // The item is what its name says (the image's red channel encodes source and sample).
            char want[32];
            snprintf(want, sizeof want, "%c%02d", 'A' + it->source, (int)it->sample);
            cr_assert_str_eq(b->names[i], want);
        }
    }
    if (end) loader_cursor(L, end);
    loader_close(L);
    return n;
}

static void assert_same(const item *a, const item *b, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        cr_assert_eq(a[i].position, b[i].position, "%s: item %d position", what, i);
        cr_assert_eq(a[i].source, b[i].source, "%s: item %d source", what, i);
        cr_assert_eq(a[i].sample, b[i].sample, "%s: item %d sample", what, i);
        cr_assert_eq(a[i].epoch, b[i].epoch, "%s: item %d epoch", what, i);
        cr_assert_eq(a[i].batch_index, b[i].batch_index, "%s: item %d batch index", what, i);
        cr_assert_eq(a[i].hash, b[i].hash, "%s: item %d pixels differ", what, i);
    }
}

// Global batch 6 for 5 steps (30 items, crossing the 24-sample epoch boundary).
Test(loader, rank_slices_reassemble_the_global_stream) {
    make_splits("ranks");
    item single[30];
    mv_loader_config c1 = train_config(6, 0, 1, 2);
    cr_assert_eq(record(single, &c1, NULL, 5, NULL), 30);
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(single[i].position, i);
        cr_assert_eq(single[i].batch_index, i % 6);
        cr_assert_eq(single[i].epoch, i / 24);
    }
    int worlds[2] = {2, 3};
    for (int wi = 0; wi < 2; wi++) {
        int world = worlds[wi], b = 6 / world;
        item merged[30], per[3][30];
        for (int r = 0; r < world; r++) {
            mv_loader_config c = train_config(b, r, world, 1 + r % 2);
            cr_assert_eq(record(per[r], &c, NULL, 5, NULL), 5 * b);
        }
        for (int t = 0; t < 5; t++)
            for (int r = 0; r < world; r++)
                for (int i = 0; i < b; i++) merged[t * 6 + r * b + i] = per[r][t * b + i];
        char what[32];
        snprintf(what, sizeof what, "world %d", world);
        assert_same(single, merged, 30, what);
    }
}

Test(loader, each_epoch_is_a_permutation) {
    make_splits("perm");
    mv_loader_config c = train_config(4, 0, 1, 1);
    mv_loader *L;
    cr_assert_eq(loader_open(&L, &c, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(loader_epoch_size(L), 10 + 2 * 7);
    for (int e = 0; e < 3; e++) {
        int seen_a[10] = {0}, seen_b[7] = {0};
        int64_t first[4];
        for (int j = 0; j < 24; j++) {
            int s;
            int64_t k;
            int32_t ep;
            loader_order_at(L, e * 24 + j, &s, &k, &ep);
            cr_assert_eq(ep, e);
            if (s == 0) seen_a[k]++;
            else seen_b[k]++;
            if (j < 4) first[j] = s * 100 + k;
        }
        for (int k = 0; k < 10; k++) cr_assert_eq(seen_a[k], 1, "epoch %d: A%d seen %d times", e, k, seen_a[k]);
        for (int k = 0; k < 7; k++) cr_assert_eq(seen_b[k], 2, "epoch %d: B%d seen %d times", e, k, seen_b[k]);
        (void)first;
    }
    // Shuffled, and differently per epoch.
    int same_as_identity = 1, same_epochs = 1;
    for (int j = 0; j < 24; j++) {
        int s0, s1;
        int64_t k0, k1;
        int32_t ep;
        loader_order_at(L, j, &s0, &k0, &ep);
        loader_order_at(L, 24 + j, &s1, &k1, &ep);
        if (!(s0 == (j >= 10) && k0 == (j < 10 ? j : (j - 10) % 7))) same_as_identity = 0;
        if (s0 != s1 || k0 != k1) same_epochs = 0;
    }
    cr_assert(!same_as_identity && !same_epochs);
    loader_close(L);
    // The permutation is a pure function of (seed, epoch, n).
    int64_t p1[50], p2[50];
    loader_permutation(p1, 50, 3, 1);
    loader_permutation(p2, 50, 3, 1);
    cr_assert_eq(memcmp(p1, p2, sizeof p1), 0);
    loader_permutation(p2, 50, 4, 1);
    cr_assert_neq(memcmp(p1, p2, sizeof p1), 0);
}

Test(loader, cursor_resume_is_exact_and_world_size_free) {
    make_splits("cursor");
    item full[28], head[12], tail[16];
    mv_loader_config c = train_config(4, 0, 1, 2);
    cr_assert_eq(record(full, &c, NULL, 7, NULL), 28);
    mv_loader_cursor cur;
    cr_assert_eq(record(head, &c, NULL, 3, &cur), 12);
    cr_assert_eq(cur.step, 3);
    cr_assert_eq(cur.global_batch, 4);
    cr_assert_eq(cur.epoch_size, 24);
    cr_assert_eq(record(tail, &c, &cur, 4, NULL), 16);
    assert_same(full + 12, tail, 16, "resumed");
    // Continue on two ranks of batch 2: the same global batches.
    item r0[8], r1[8], merged[16];
    mv_loader_config c0 = train_config(2, 0, 2, 1), c1 = train_config(2, 1, 2, 2);
    record(r0, &c0, &cur, 4, NULL);
    record(r1, &c1, &cur, 4, NULL);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 2; i++) merged[t * 4 + i] = r0[t * 2 + i], merged[t * 4 + 2 + i] = r1[t * 2 + i];
    assert_same(full + 12, merged, 16, "resumed on 2 ranks");
    // A cursor from another stream is refused.
    mv_loader *L;
    mv_loader_config other = train_config(3, 0, 1, 1);
    cr_assert_eq(loader_open(&L, &other, &cur), MV_LOADER_OTHER_STREAM);
    cr_assert(strstr(mv_last_error(), "global batch"), "%s", mv_last_error());
    cur.seed = 43;
    cr_assert_eq(loader_open(&L, &c, &cur), MV_LOADER_OTHER_STREAM);
}

Test(loader, thread_count_does_not_change_batches) {
    make_splits("threads");
    item a[24], b[24];
    mv_loader_config c1 = train_config(3, 0, 1, 1), c3 = train_config(3, 0, 1, 3);
    c3.depth = 5;
    record(a, &c1, NULL, 8, NULL);
    record(b, &c3, NULL, 8, NULL);
    assert_same(a, b, 24, "1 vs 3 threads");
}

// workers 0: loader_next makes each batch in the caller's thread, the same batches as threads
// make, from the start and from a cursor; a read error surfaces the same way.
Test(loader, no_worker_threads_gives_the_same_batches) {
    make_splits("inline");
    item a[24], b[24];
    mv_loader_config c0 = train_config(3, 0, 1, 0), c2 = train_config(3, 0, 1, 2);
    mv_loader_cursor end0, end2;
    record(a, &c0, NULL, 8, &end0);
    record(b, &c2, NULL, 8, &end2);
    assert_same(a, b, 24, "0 vs 2 threads");
    cr_assert_eq(end0.step, end2.step);
    record(a, &c0, &end0, 4, NULL);
    record(b, &c2, &end2, 4, NULL);
    assert_same(a, b, 12, "0 vs 2 threads from a cursor");

    mv_loader_config t = train_config(1, 1, 2, 0);
    t.mode = MV_LOADER_TEST;
    t.n_sources = 1;
    mv_loader *L;
    cr_assert_eq(loader_open(&L, &t, NULL), 0, "%s", mv_last_error());
    const mv_batch *bt;
    int got = 0, rc;
    while ((rc = loader_next(L, &bt)) == 1) cr_assert_eq(bt->sample[0], 2 * got++ + 1);
    cr_assert_eq(rc, 0, "%s", mv_last_error());
    cr_assert_eq(got, 5, "rank 1 of 2 gets the odd samples of 10");
    loader_close(L);

    t.workers = -1;
    cr_assert_eq(loader_open(&L, &t, NULL), -1);
    cr_assert(strstr(mv_last_error(), "workers -1"), "%s", mv_last_error());
}

// The ring is reused: only `depth` distinct image buffers ever come out.
Test(loader, ring_buffers_are_reused) {
    make_splits("ring");
    mv_loader_config c = train_config(2, 0, 1, 2);
    mv_loader *L;
    cr_assert_eq(loader_open(&L, &c, NULL), 0);
    const float *seen[16];
    int n_seen = 0;
    for (int t = 0; t < 20; t++) {
        const mv_batch *b;
        cr_assert_eq(loader_next(L, &b), 1);
        int known = 0;
        for (int k = 0; k < n_seen; k++) known |= seen[k] == b->images;
        if (!known) seen[n_seen++] = b->images;
    }
    cr_assert_eq(n_seen, c.depth);
    loader_close(L);
}

// Threads of this process whose blocked set holds every stop signal (core/stop_signal.h), from
// the SigBlk line of /proc/self/task/*/status; *self_blocks: whether the calling thread's does.
static int threads_blocking_stop_signals(bool *self_blocks) {
    sigset_t stop, mine;
    stop_signal_set(&stop);
    pthread_sigmask(SIG_BLOCK, NULL, &mine);
    *self_blocks = true;
    for (int i = 0; i < MV_STOP_SIGNAL_COUNT; i++) *self_blocks &= sigismember(&mine, mv_stop_signals[i]) == 1;
    DIR *d = opendir("/proc/self/task");
    cr_assert(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;   // a thread that has just ended
        unsigned long long blk = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "SigBlk: %llx", &blk) == 1) break;
        fclose(f);
        bool all = true;
        for (int i = 0; i < MV_STOP_SIGNAL_COUNT; i++) all &= (blk >> (mv_stop_signals[i] - 1)) & 1;
        n += all;
    }
    closedir(d);
    return n;
}

// A stop signal sent to the process must be handled by the training thread: a worker that took
// it would run the handler in the middle of a sample, racing the training thread on the stop
// flags. The workers start with the stop signals blocked; the caller's mask is left as it was.
Test(loader, workers_block_the_stop_signals) {
    make_splits("sigmask");
    bool self_blocks;
    int before = threads_blocking_stop_signals(&self_blocks);
    cr_assert_not(self_blocks);
    mv_loader_config c = train_config(2, 0, 1, 3);
    mv_loader *L;
    cr_assert_eq(loader_open(&L, &c, NULL), 0);
    int during = threads_blocking_stop_signals(&self_blocks);
    cr_assert_not(self_blocks, "loader_open left the stop signals blocked in its caller");
    cr_assert_eq(during, before + 3, "%d threads block the stop signals with 3 workers running, %d before", during,
                 before);
    loader_close(L);
}

Test(loader, test_mode_walks_the_split_once) {
    make_splits("testmode");
    int seen[10] = {0};
    for (int r = 0; r < 3; r++) {
        mv_loader_config c = train_config(1, r, 3, 2);
        c.mode = MV_LOADER_TEST;
        c.n_sources = 1;
        c.aug.scale_long = 88;  // fitted size 60x88 from 30x44
        c.aug.scale_short = 60;
        mv_loader *L;
        cr_assert_eq(loader_open(&L, &c, NULL), 0, "%s", mv_last_error());
        const mv_batch *b;
        int got = 0, rc;
        while ((rc = loader_next(L, &b)) == 1) {
            cr_assert_eq(b->b, 1);
            cr_assert(b->h == 60 && b->w == 88, "%dx%d", b->h, b->w);
            cr_assert(b->lh == 30 && b->lw == 44);
            cr_assert_eq(b->position[0] % 3, r);
            int k = (int)b->sample[0];
            cr_assert_eq(k, b->position[0], "test mode keeps the natural order");
            seen[k]++;
            cr_assert_eq(b->labels[0], (k + 5) % 19);
            cr_assert_eq(b->labels[20], k % 19);
            // Red channel is constant s*100 + i*9 for source A: resizing keeps it.
            float want = ((float)(k * 9) - c.aug.mean[0]) / c.aug.std[0];
            cr_assert_float_eq(b->images[0], want, 1e-5);
            got++;
        }
        cr_assert_eq(rc, 0, "%s", mv_last_error());
        cr_assert_eq(got, r == 0 ? 4 : 3);
        cr_assert_eq(loader_next(L, &b), 0, "stays at the end");
        loader_close(L);
    }
    for (int k = 0; k < 10; k++) cr_assert_eq(seen[k], 1);
}

Test(loader, read_errors_surface_with_names) {
    make_splits("errors");
    // Flip a byte inside sample A05's image chunk (shard 1, local sample 1).
    char path[4200];
    snprintf(path, sizeof path, "%s/shard-00001.h5", g_dirs[0]);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "image/00001", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    haddr_t addr;
    hsize_t size, off[3];
    unsigned mask;
    cr_assert_geq(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, (long)(addr + 3), SEEK_SET);
    int ch = fgetc(fp);
    fseek(fp, (long)(addr + 3), SEEK_SET);
    fputc(ch ^ 1, fp);
    fclose(fp);
    mv_loader_config c = train_config(4, 0, 1, 2);
    mv_loader *L;
    for (int workers = 2; workers >= 0; workers -= 2) {  // threads, then the caller's thread
        c.workers = workers;
        cr_assert_eq(loader_open(&L, &c, NULL), 0);
        int errors = 0;
        for (int t = 0; t < 6; t++) {  // one epoch: A05 comes up exactly once
            const mv_batch *b;
            int rc = loader_next(L, &b);
            if (rc < 0) {
                errors++;
                cr_assert(strstr(mv_last_error(), "shard-00001.h5") && strstr(mv_last_error(), "A05") &&
                              strstr(mv_last_error(), "checksum"),
                          "%s", mv_last_error());
            }
        }
        cr_assert_eq(errors, 1, "%d workers", workers);
        loader_close(L);
    }
    g_src[0].path = "/nonexistent/split";
    c.sources = g_src;
    cr_assert_eq(loader_open(&L, &c, NULL), -1);
    cr_assert(strstr(mv_last_error(), "/nonexistent/split"), "%s", mv_last_error());
}

// The RGB hook (evaluation-time corruption) sees every decoded image before the pipeline.
static int invert_hook(mv_image *rgb, int source, int64_t sample, void *ctx) {
    (void)source;
    if (sample == 7) return mv_fail("hook refuses sample 7 (%s)", (const char *)ctx);
    for (size_t i = 0; i < (size_t)rgb->h * rgb->w * 3; i++) rgb->px[i] = (uint8_t)(255 - rgb->px[i]);
    return 0;
}

Test(loader, rgb_hook_applies_before_the_pipeline) {
    make_splits("hook");
    mv_loader_config c = train_config(1, 0, 1, 2);
    c.mode = MV_LOADER_TEST;
    c.n_sources = 1;
    c.rgb_hook = invert_hook;
    c.hook_ctx = "ctx";
    mv_loader *L;
    cr_assert_eq(loader_open(&L, &c, NULL), 0, "%s", mv_last_error());
    const mv_batch *b;
    for (int k = 0; k < 10; k++) {
        int rc = loader_next(L, &b);
        if (k == 7) {
            cr_assert_eq(rc, -1);
            cr_assert(strstr(mv_last_error(), "hook refuses sample 7 (ctx)") && strstr(mv_last_error(), "A07"), "%s",
                      mv_last_error());
            continue;
        }
        cr_assert_eq(rc, 1, "%s", mv_last_error());
        float want = ((float)(255 - k * 9) - c.aug.mean[0]) / c.aug.std[0];
        cr_assert_float_eq(b->images[0], want, 1e-5);
    }
    cr_assert_eq(loader_next(L, &b), 0);
    loader_close(L);
}

// A shard that is not HDF5 at all (its bytes zeroed; the size the manifest records is kept, so
// split_open accepts it) fails each of its samples with a message naming the file, in a worker
// thread as in the caller's. HDF5's error stack of the failed open is cleared: a thread-safe
// HDF5 frees a thread's stack at thread exit without its strings, so a worker whose last HDF5
// call failed (here: one worker, the last shard damaged) leaked them (LeakSanitizer).
Test(loader, unreadable_shard_fails_its_samples_without_leaks) {
    make_splits("not_hdf5");
    char path[4200];
    snprintf(path, sizeof path, "%s/shard-00002.h5", g_dirs[0]);   // samples A08, A09: the last
    FILE *fp = fopen(path, "r+b");
    cr_assert(fp, "%s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    for (long i = 0; i < n; i++) fputc(0, fp);
    fclose(fp);
    mv_loader_config c = train_config(1, 0, 1, 1);
    c.mode = MV_LOADER_TEST;
    c.n_sources = 1;
    for (int workers = 1; workers >= 0; workers--) {
        c.workers = workers;
        mv_loader *L;
        cr_assert_eq(loader_open(&L, &c, NULL), 0, "%s", mv_last_error());
        const mv_batch *b;
        for (int k = 0; k < 10; k++) {
            int rc = loader_next(L, &b);
            if (k >= 8) {
                cr_assert_eq(rc, -1, "sample %d of the zeroed shard read", k);
                cr_assert(strstr(mv_last_error(), "shard-00002.h5: cannot open as HDF5"), "%s", mv_last_error());
            } else {
                cr_assert_eq(rc, 1, "sample %d: %s", k, mv_last_error());
            }
        }
        cr_assert_eq(loader_next(L, &b), 0);
        loader_close(L);
    }
}
