// The streaming loader (see loader.h). Work is handed out one item at a time: item c belongs
// to ring batch c / batch, so several threads fill one batch together, and a batch may only be
// started once the consumer has given back the ring slot it reuses. With no worker threads the
// consumer makes each batch itself in loader_next, through the same per-item code.
#include "data/loader.h"
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/stop_signal.h"

typedef struct {
    mv_batch batch;
    int64_t seq;               // ring sequence number it currently holds (-1: none)
    int filled;                // items done
    int expected;              // items it will hold
    int failed;
    char err[MV_ERRMSG_MAX];
} ring_slot;

typedef struct {
    mv_sample smp;
    mv_aug_scratch scratch;
    pthread_t tid;
} worker;

typedef struct {
    int32_t epoch;             // -1: empty
    int64_t *perm;
} perm_cache;

struct mv_loader {
    mv_loader_config cfg;
    mv_loader_source *sources;
    mv_split **splits;
    int64_t *base;             // [n_sources + 1] first virtual id of each source
    int64_t epoch_size;
    int global_batch;
    int64_t start_step;
    ring_slot *ring;
    int depth;
    worker *workers;           // one per thread; one without threads (the consumer's state)
    int n_state;               // entries of workers
    perm_cache cache[2];
    int64_t claimed;           // items handed to workers
    int64_t released;          // batches given back by the consumer
    int64_t returned;          // batches returned to the consumer
    int holding;               // the consumer holds batch `returned - 1`
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

void loader_permutation(int64_t *perm, int64_t n, uint64_t seed, int32_t epoch) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        mv_rng4 r = philox4x32(seed, (uint32_t)epoch, (uint32_t)i, MV_RNG_SHUFFLE | ((uint32_t)(i >> 32) & 0xFFFFFFu), 0);
        int64_t j = (int64_t)(((uint64_t)r.v[0] * (uint64_t)(i + 1)) >> 32);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int64_t loader_epoch_size(const mv_loader *L) { return L->epoch_size; }

void loader_source_id(const mv_loader *L, int s, int64_t *count, uint64_t *fingerprint) {
    *count = split_count(L->splits[s]);
    *fingerprint = split_fingerprint(L->splits[s]);
}

// Virtual id -> (source, sample).
static void resolve_vid(const mv_loader *L, int64_t vid, int *source, int64_t *sample) {
    int s = 0;
    while (s + 1 < L->cfg.n_sources && vid >= L->base[s + 1]) s++;
    *source = s;
    *sample = (vid - L->base[s]) % split_count(L->splits[s]);
}

// Caller holds mu (or is single-threaded). Returns the permutation of `epoch`, computing it into
// the older cache entry when needed; positions are claimed in increasing order, so the older
// epoch is never needed again.
static const int64_t *epoch_perm(mv_loader *L, int32_t epoch) {
    for (int i = 0; i < 2; i++)
        if (L->cache[i].epoch == epoch) return L->cache[i].perm;
    int victim = L->cache[0].epoch < L->cache[1].epoch ? 0 : 1;
    loader_permutation(L->cache[victim].perm, L->epoch_size, L->cfg.seed, epoch);
    L->cache[victim].epoch = epoch;
    return L->cache[victim].perm;
}

static void order_at_locked(mv_loader *L, int64_t p, int *source, int64_t *sample, int32_t *epoch, int64_t *vid) {
    *epoch = (int32_t)(p / L->epoch_size);
    int64_t j = p % L->epoch_size;
    *vid = L->cfg.mode == MV_LOADER_TRAIN ? epoch_perm(L, *epoch)[j] : j;
    resolve_vid(L, *vid, source, sample);
}

void loader_order_at(const mv_loader *L, int64_t p, int *source, int64_t *sample, int32_t *epoch) {
    mv_loader *m = (mv_loader *)L;
    int64_t vid;
    pthread_mutex_lock(&m->mu);
    order_at_locked(m, p, source, sample, epoch, &vid);
    pthread_mutex_unlock(&m->mu);
}

// Items of ring sequence `seq` for this rank (test mode runs out at the end of the data).
static int items_in(const mv_loader *L, int64_t seq) {
    if (L->cfg.mode == MV_LOADER_TRAIN) return L->cfg.batch;
    int64_t first = (L->start_step + seq) * L->global_batch + (int64_t)L->cfg.rank * L->cfg.batch;
    int64_t left = L->epoch_size - first;
    return left <= 0 ? 0 : left < L->cfg.batch ? (int)left : L->cfg.batch;
}

// One item: read, transform into its place in the slot's batch.
static int produce(mv_loader *L, worker *wk, ring_slot *slot, int i, int source, int64_t sample, int32_t epoch,
                   int64_t vid) {
    mv_batch *b = &slot->batch;
    MV_TRY(split_read(&wk->smp, L->splits[source], sample));
    snprintf(b->names[i], MV_SAMPLE_NAME_MAX, "%s", wk->smp.name);
    if (L->cfg.rgb_hook && L->cfg.rgb_hook(&wk->smp.rgb, source, sample, L->cfg.hook_ctx) < 0)
        return mv_fail_context("%s: sample %lld (%s)", split_dir(L->splits[source]), (long long)sample, wk->smp.name);
    if (L->cfg.mode == MV_LOADER_TRAIN) {
        size_t plane = (size_t)L->cfg.aug.crop_h * L->cfg.aug.crop_w;
        augment_train(b->images + (size_t)i * 3 * plane, b->labels + (size_t)i * plane, NULL, &wk->smp.rgb,
                      &wk->smp.label, &L->cfg.aug, L->cfg.seed, (uint32_t)epoch, (uint64_t)vid, &wk->scratch);
    } else {
        int oh, ow;
        augment_fit_size(&oh, &ow, wk->smp.rgb.h, wk->smp.rgb.w, L->cfg.aug.scale_long, L->cfg.aug.scale_short);
        augment_test(b->images, &wk->smp.rgb, oh, ow, &L->cfg.aug, &wk->scratch);
        memcpy(b->labels, wk->smp.label.px, (size_t)wk->smp.label.h * wk->smp.label.w);
        b->h = oh;
        b->w = ow;
        b->lh = wk->smp.label.h;
        b->lw = wk->smp.label.w;
    }
    return 0;
}

// (Re)initialises the ring slot that batch `seq` is made in. Under L->mu with workers.
static void slot_begin(mv_loader *L, ring_slot *slot, int64_t seq) {
    slot->seq = seq;
    slot->filled = 0;
    slot->failed = 0;
    slot->expected = items_in(L, seq);
    slot->batch.b = slot->expected;
    slot->batch.step = L->start_step + seq;
}

typedef struct {
    int source;
    int64_t sample, vid;
    int32_t epoch;
} item;

// Item i of the batch in `slot`: where it comes from, recorded in the batch. Under L->mu with workers.
static item item_claim(mv_loader *L, ring_slot *slot, int i) {
    item it;
    int64_t p = slot->batch.step * L->global_batch + (int64_t)L->cfg.rank * L->cfg.batch + i;
    order_at_locked(L, p, &it.source, &it.sample, &it.epoch, &it.vid);
    mv_batch *b = &slot->batch;
    b->position[i] = p;
    b->batch_index[i] = L->cfg.rank * L->cfg.batch + i;
    b->epoch[i] = it.epoch;
    b->source[i] = it.source;
    b->sample[i] = it.sample;
    return it;
}

// Counts an item made (rc 0) or failed (-1, the first failure's message kept for the consumer).
static void item_done(ring_slot *slot, int rc) {
    if (rc < 0 && !slot->failed) {
        slot->failed = 1;
        snprintf(slot->err, sizeof slot->err, "%s", mv_last_error());
    }
    slot->filled++;
}

static void *worker_main(void *arg) {
    void **a = arg;
    mv_loader *L = a[0];
    worker *wk = a[1];
    free(arg);
    int B = L->cfg.batch;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        int64_t seq = L->claimed / B;
        int i = (int)(L->claimed % B);
        // Wait while the slot for seq is still held by an older batch, or seq holds nothing left.
        while (!L->stop && seq >= L->released + L->depth) {
            pthread_cond_wait(&L->cv, &L->mu);
            seq = L->claimed / B;
            i = (int)(L->claimed % B);
        }
        if (L->stop) break;
        ring_slot *slot = &L->ring[seq % L->depth];
        if (i == 0) slot_begin(L, slot, seq);  // first item of a new batch
        if (i >= slot->expected) {  // test mode past the end: nothing to make for this slot
            if (slot->expected == 0 && i == 0) pthread_cond_broadcast(&L->cv);
            L->claimed = (seq + 1) * B;
            if (L->cfg.mode == MV_LOADER_TEST && slot->expected == 0) {
                // Every later sequence is empty too; park until stopped.
                while (!L->stop) pthread_cond_wait(&L->cv, &L->mu);
                break;
            }
            continue;
        }
        L->claimed++;
        item it = item_claim(L, slot, i);
        pthread_mutex_unlock(&L->mu);
        int rc = produce(L, wk, slot, i, it.source, it.sample, it.epoch, it.vid);
        pthread_mutex_lock(&L->mu);
        item_done(slot, rc);
        if (slot->filled == slot->expected) pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

// The image and label buffers can be large (in test mode they hold any image fitted to
// data.scale): their allocation failing is an error of this loader_open, not an abort.
static int alloc_batch(mv_batch *b, int B, size_t img_floats, size_t lab_bytes) {
    memset(b, 0, sizeof *b);
    b->images = malloc(sizeof(float) * img_floats);
    b->labels = malloc(lab_bytes);
    if (!b->images || !b->labels) return -1;
    b->position = mv_calloc((size_t)B, sizeof(int64_t));
    b->batch_index = mv_calloc((size_t)B, sizeof(int));
    b->epoch = mv_calloc((size_t)B, sizeof(int32_t));
    b->source = mv_calloc((size_t)B, sizeof(int32_t));
    b->sample = mv_calloc((size_t)B, sizeof(int64_t));
    b->names = mv_calloc((size_t)B, MV_SAMPLE_NAME_MAX);
    return 0;
}

static void free_batch(mv_batch *b) {
    free(b->images);
    free(b->labels);
    free(b->position);
    free(b->batch_index);
    free(b->epoch);
    free(b->source);
    free(b->sample);
    free(b->names);
}

static void loader_free(mv_loader *L) {
    if (L->ring)
        for (int k = 0; k < L->depth; k++) free_batch(&L->ring[k].batch);
    free(L->ring);
    if (L->workers)
        for (int t = 0; t < L->n_state; t++) {
            sample_free(&L->workers[t].smp);
            aug_scratch_free(&L->workers[t].scratch);
        }
    free(L->workers);
    for (int s = 0; s < L->cfg.n_sources; s++)
        if (L->splits) split_close(L->splits[s]);
    free(L->splits);
    free(L->sources);
    free(L->base);
    free(L->cache[0].perm);
    free(L->cache[1].perm);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    free(L);
}

// loader_open's stages, in order. Each one that can fail returns 0 or an error with its message;
// loader_open then frees the partly built loader in one place (loader_free copes with any stage
// left undone).

// The configuration, before anything is allocated.
static int check_config(const mv_loader_config *cfg) {
    const mv_aug_config *a = &cfg->aug;
    if (cfg->n_sources < 1) return mv_fail("loader: no data sources");
    if (cfg->batch < 1) return mv_fail("loader: batch %d must be >= 1", cfg->batch);
    if (cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world)
        return mv_fail("loader: rank %d of world %d", cfg->rank, cfg->world);
    if (cfg->workers < 0) return mv_fail("loader: workers %d must be >= 0", cfg->workers);
    if (cfg->mode == MV_LOADER_TEST && cfg->batch != 1) return mv_fail("loader: test mode needs batch 1 (sizes vary)");
    if (cfg->mode == MV_LOADER_TRAIN && (a->crop_h < 1 || a->crop_w < 1))
        return mv_fail("loader: crop %dx%d", a->crop_h, a->crop_w);
    if (a->scale_long < 1 || a->scale_short < 1) return mv_fail("loader: scale %dx%d", a->scale_long, a->scale_short);
    // The workers read shards while the caller's thread may use HDF5 too (checkpoints): with an
    // HDF5 built without thread-safety that crashes at random, so refuse up front.
    if (cfg->workers > 0 && !shard_hdf5_threadsafe())
        return mv_fail("loader: the HDF5 library is not thread-safe; the loader reads shards from worker threads. "
                       "Build against an HDF5 configured with --enable-threadsafe (Debian/Ubuntu libhdf5-dev is), "
                       "or load in the calling thread (workers 0)");
    return 0;
}

// An empty loader holding its own copy of the source list; no threads yet (cfg.workers 0, so
// that loader_free joins none).
static mv_loader *loader_new(const mv_loader_config *cfg) {
    mv_loader *L = mv_calloc(1, sizeof *L);
    L->cfg = *cfg;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    L->sources = mv_calloc((size_t)cfg->n_sources, sizeof *L->sources);
    memcpy(L->sources, cfg->sources, sizeof *L->sources * (size_t)cfg->n_sources);
    L->cfg.sources = L->sources;
    L->splits = mv_calloc((size_t)cfg->n_sources, sizeof(mv_split *));
    L->base = mv_calloc((size_t)cfg->n_sources + 1, sizeof(int64_t));
    L->cfg.workers = 0;
    for (int i = 0; i < 2; i++) L->cache[i].epoch = -1 - i;
    return L;
}

// Opens every source's split: the virtual ids (base, epoch_size) and the largest image any of
// them holds (*max_h x *max_w, at least 1x1), which the sample buffers must take.
static int open_sources(mv_loader *L, int *max_h, int *max_w) {
    const mv_loader_config *cfg = &L->cfg;
    *max_h = *max_w = 1;
    for (int s = 0; s < cfg->n_sources; s++) {
        if (split_open(&L->splits[s], cfg->sources[s].path) < 0) return mv_fail_context("loader source %d", s);
        int64_t n = split_count(L->splits[s]);
        if (n == 0) return mv_fail("%s: split holds no samples", cfg->sources[s].path);
        int rep = cfg->sources[s].repeat > 0 ? cfg->sources[s].repeat : 1;
        if (cfg->mode == MV_LOADER_TEST) rep = 1;
        L->base[s + 1] = L->base[s] + n * rep;
        int h, w;
        split_max_size(L->splits[s], &h, &w);
        if (h > *max_h) *max_h = h;
        if (w > *max_w) *max_w = w;
    }
    L->epoch_size = L->base[cfg->n_sources];
    L->global_batch = cfg->batch * cfg->world;
    return 0;
}

// A resume: `start` must continue this stream (MV_LOADER_OTHER_STREAM when it is another's).
static int take_cursor(mv_loader *L, const mv_loader_cursor *start) {
    const mv_loader_config *cfg = &L->cfg;
    if (!start) return 0;
    if (start->seed != cfg->seed || start->epoch_size != L->epoch_size || start->global_batch != L->global_batch) {
        if (start->epoch_size != L->epoch_size)
            mv_fail("loader: the training sources hold %lld samples per epoch (repeats counted) where the "
                    "stream being continued had %lld: the training data changed, so it cannot continue the "
                    "same stream", (long long)L->epoch_size, (long long)start->epoch_size);
        else
            mv_fail("loader: cursor was saved with seed %llu, global batch %d; this run has seed %llu, global "
                    "batch %d: it cannot continue the same stream", (unsigned long long)start->seed,
                    start->global_batch, (unsigned long long)cfg->seed, L->global_batch);
        return MV_LOADER_OTHER_STREAM;
    }
    if (start->step < 0) return mv_fail("loader: cursor step %lld is negative", (long long)start->step);
    L->start_step = start->step;
    return 0;
}

// Training: room for the orders of two epochs (epoch_perm's cache). An epoch's order is samples
// x repeat entries (a repeat of 1e6 over a large split is more than memory holds: an error
// naming it, not an abort).
static int alloc_orders(mv_loader *L) {
    if (L->cfg.mode != MV_LOADER_TRAIN) return 0;
    for (int i = 0; i < 2; i++)
        if (!(L->cache[i].perm = malloc(sizeof(int64_t) * (size_t)L->epoch_size))) {
            double gib = 2.0 * sizeof(int64_t) * (double)L->epoch_size / (1 << 30);
            return mv_fail("loader: out of memory for the orders of two epochs of %lld samples (%.1f GiB; the "
                           "training sources' samples times their repeat)", (long long)L->epoch_size, gib);
        }
    return 0;
}

// The ring of batches: crops in training; in test mode any image fitted to data.scale (long
// side <= scale_long, short side <= scale_short) and labels up to the largest source image
// (max_h x max_w). *widest: the widest image a worker's scratch must take.
static int alloc_ring(mv_loader *L, int max_h, int max_w, int *widest) {
    const mv_loader_config *cfg = &L->cfg;
    const mv_aug_config *a = &cfg->aug;
    L->depth = cfg->depth >= 2 ? cfg->depth : 4;
    L->ring = mv_calloc((size_t)L->depth, sizeof(ring_slot));
    size_t img, lab;
    if (cfg->mode == MV_LOADER_TRAIN) {
        img = (size_t)cfg->batch * 3 * a->crop_h * a->crop_w;
        lab = (size_t)cfg->batch * a->crop_h * a->crop_w;
        *widest = a->crop_w;
    } else {
        img = (size_t)3 * a->scale_long * a->scale_short;
        lab = (size_t)max_h * max_w;
        *widest = a->scale_long > a->scale_short ? a->scale_long : a->scale_short;
    }
    for (int k = 0; k < L->depth; k++) {
        if (alloc_batch(&L->ring[k].batch, cfg->batch, img, lab) < 0) {
            double gib = (double)L->depth * (sizeof(float) * img + lab) / (1 << 30);
            if (cfg->mode == MV_LOADER_TRAIN) return mv_fail("loader: out of memory for batches (%.1f GiB)", gib);
            return mv_fail("loader: out of memory for test images fitted to data.scale %d,%d (%.1f GiB of buffers): "
                           "is data.scale meant to be this large?", a->scale_long, a->scale_short, gib);
        }
        L->ring[k].seq = -1;
        if (cfg->mode == MV_LOADER_TRAIN) {
            L->ring[k].batch.h = L->ring[k].batch.lh = a->crop_h;
            L->ring[k].batch.w = L->ring[k].batch.lw = a->crop_w;
        }
    }
    return 0;
}

// Each worker's sample and scratch buffers (one set for the consumer without threads), then the
// threads. Cannot fail (an allocation that fails here aborts, as mv_calloc does).
static void start_workers(mv_loader *L, int workers, int max_h, int max_w, int widest) {
    L->n_state = workers > 0 ? workers : 1;
    L->workers = mv_calloc((size_t)L->n_state, sizeof(worker));
    L->cfg.workers = workers;
    for (int t = 0; t < L->n_state; t++) {
        sample_alloc(&L->workers[t].smp, max_h, max_w);
        aug_scratch_alloc(&L->workers[t].scratch, &L->cfg.aug, widest);
    }
    // The workers start with the stop signals blocked, so a stop request (core/stop_signal.h)
    // is taken by the training thread, not handled on a worker in the middle of a sample.
    sigset_t stop, before;
    stop_signal_set(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, &before);
    for (int t = 0; t < workers; t++) {
        void **arg = mv_malloc(2 * sizeof(void *));
        arg[0] = L;
        arg[1] = &L->workers[t];
        pthread_create(&L->workers[t].tid, NULL, worker_main, arg);
    }
    pthread_sigmask(SIG_SETMASK, &before, NULL);
}

int loader_open(mv_loader **out, const mv_loader_config *cfg, const mv_loader_cursor *start) {
    *out = NULL;
    MV_TRY(check_config(cfg));
    mv_loader *L = loader_new(cfg);
    int max_h, max_w, widest = 1;
    int rc = open_sources(L, &max_h, &max_w);
    if (rc == 0) rc = take_cursor(L, start);
    if (rc == 0) rc = alloc_orders(L);
    if (rc == 0) rc = alloc_ring(L, max_h, max_w, &widest);
    if (rc < 0) {
        loader_free(L);
        return rc;
    }
    start_workers(L, cfg->workers, max_h, max_w, widest);
    *out = L;
    return 0;
}

// Without worker threads: batch `seq`, made by the consumer in its own thread (L->mu is held;
// nothing else takes it then).
static void make_batch_inline(mv_loader *L, ring_slot *slot, int64_t seq) {
    slot_begin(L, slot, seq);
    for (int i = 0; i < slot->expected; i++) {
        item it = item_claim(L, slot, i);
        item_done(slot, produce(L, &L->workers[0], slot, i, it.source, it.sample, it.epoch, it.vid));
    }
}

int loader_next(mv_loader *L, const mv_batch **batch) {
    *batch = NULL;
    pthread_mutex_lock(&L->mu);
    if (L->holding) {  // give the previous batch back to the ring
        L->holding = 0;
        L->released++;
        pthread_cond_broadcast(&L->cv);
    }
    int64_t seq = L->returned;
    ring_slot *slot = &L->ring[seq % L->depth];
    if (items_in(L, seq) == 0) {
        pthread_mutex_unlock(&L->mu);
        return 0;
    }
    if (L->cfg.workers == 0) make_batch_inline(L, slot, seq);
    while (!(slot->seq == seq && slot->filled == slot->expected)) pthread_cond_wait(&L->cv, &L->mu);
    int failed = slot->failed;
    char err[MV_ERRMSG_MAX];
    if (failed) snprintf(err, sizeof err, "%s", slot->err);
    L->returned++;
    L->holding = 1;
    pthread_mutex_unlock(&L->mu);
    if (failed) return mv_fail("%s", err);
    *batch = &slot->batch;
    return 1;
}

void loader_cursor(const mv_loader *L, mv_loader_cursor *out) {
    out->seed = L->cfg.seed;
    out->step = L->start_step + L->returned;
    out->epoch_size = L->epoch_size;
    out->global_batch = L->global_batch;
}

void loader_close(mv_loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    for (int t = 0; t < L->cfg.workers; t++) pthread_join(L->workers[t].tid, NULL);
    loader_free(L);
}
