// The streaming loader: worker threads read samples from HDF5 splits, run the training or
// test pipeline (augment.h) and fill a ring of ready batches while the model computes.
//
// Order. Training sees one infinite global stream: epoch e is a Philox-seeded permutation of
// every sample of every source (a source with repeat k contributes each sample k times), and
// epochs follow one another. Global step t is stream positions [t*G, (t+1)*G), G = batch*world;
// rank r takes the slice [t*G + r*batch, t*G + (r+1)*batch). The stream does not depend on the
// world size, so N ranks x b images see exactly the samples of 1 rank x N*b images.
// Test mode walks the sources in their natural order once, in steps of G, then ends.
//
// Memory. Every buffer (ring batches, per-thread sample buffers and scratch) is allocated at
// loader_open; producing a batch allocates nothing.
//
// Resume. A cursor (seed, step, epoch size, global batch) says where the stream stands; the
// checkpoint stores it and loader_open(start = cursor) continues with exactly the next batch,
// for any world size with the same global batch.
#pragma once
#include <stdint.h>
#include "data/augment.h"
#include "data/shard.h"

typedef struct {
    const char *path;          // split folder (with manifest.json)
    int repeat;                // times each sample appears per epoch (>= 1; 0 means 1)
} mv_loader_source;

typedef enum { MV_LOADER_TRAIN = 0, MV_LOADER_TEST = 1 } mv_loader_mode;

typedef struct {
    mv_loader_mode mode;
    const mv_loader_source *sources;
    int n_sources;
    int batch;                 // per rank (test mode: 1, images differ in size)
    int rank, world;
    uint64_t seed;             // shuffle and augmentation seed
    int workers;               // threads (0: each batch is made by loader_next, in the caller's thread)
    int depth;                 // batches in the ring (>= 2; 0 means 4)
    mv_aug_config aug;         // crop, scales, normalisation
    // Optional: called by the worker threads on every decoded RGB image (in place, same size)
    // before the pipeline, e.g. an evaluation-time corruption. Must be thread-safe and a pure
    // function of (source, sample) to keep batches deterministic. Returns 0 / -1 (message).
    int (*rgb_hook)(mv_image *rgb, int source, int64_t sample, void *ctx);
    void *hook_ctx;
} mv_loader_config;

typedef struct {
    uint64_t seed;
    int64_t step;              // global steps already consumed
    int64_t epoch_size;        // samples per epoch when saved
    int32_t global_batch;      // batch * world when saved
} mv_loader_cursor;

typedef struct {
    int b;                     // items in this batch (test mode: the last step may hold 0 for a rank)
    int h, w;                  // image size: the crop (train) or the resized image (test)
    float *images;             // [b][3][h][w], RGB, normalised, NCHW
    int lh, lw;                // label size: (h, w) in training; the original size in test mode
    uint8_t *labels;           // [b][lh][lw], train ids, 255 = ignore
    int64_t step;              // global step of this batch
    int64_t *position;         // [b] global stream position (step*G + rank*batch + i)
    int *batch_index;          // [b] index in the step's global batch (rank*batch + i): keys the model's draws
    int32_t *epoch;            // [b]
    int32_t *source;           // [b] which source
    int64_t *sample;           // [b] sample index within its source's split
    char (*names)[MV_SAMPLE_NAME_MAX];
} mv_batch;

typedef struct mv_loader mv_loader;

// Opens the sources, allocates the ring and starts the workers. start = NULL starts at step 0;
// otherwise it must come from loader_cursor of a loader over the same data and global batch.
// 0, or -1 with a message; MV_LOADER_OTHER_STREAM (also with a message) when `start` is a
// cursor of another stream (other data, seed or global batch).
#define MV_LOADER_OTHER_STREAM (-2)
int loader_open(mv_loader **out, const mv_loader_config *cfg, const mv_loader_cursor *start);
// Hands out the next batch of this rank; the previous one is given back to the ring. Returns 1
// with *batch set, 0 at the end (test mode only), -1 on a read error (message names the shard,
// sample index and name). The batch stays valid until the next call or loader_close.
int loader_next(mv_loader *L, const mv_batch **batch);
// Where the stream stands after the batches returned so far (save this in a checkpoint).
void loader_cursor(const mv_loader *L, mv_loader_cursor *out);
void loader_close(mv_loader *L);
// Samples per epoch (sum over sources of count * repeat).
int64_t loader_epoch_size(const mv_loader *L);
// Source s's sample count and the fingerprint of its content (split_fingerprint: its manifest
// as opened): what ranks compare to know that each reads the same split.
void loader_source_id(const mv_loader *L, int s, int64_t *count, uint64_t *fingerprint);
// The global stream: what sits at position p (computes the epoch's permutation; for tests).
void loader_order_at(const mv_loader *L, int64_t p, int *source, int64_t *sample, int32_t *epoch);
// The permutation of epoch `epoch` into perm (epoch_size entries of virtual ids, sources
// concatenated with their repeats). Pure function of (seed, epoch, n).
void loader_permutation(int64_t *perm, int64_t n, uint64_t seed, int32_t epoch);
