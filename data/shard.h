// The HDF5 shard format: a split is a folder DIR/ holding shard-00000.h5, shard-00001.h5, ...
// and DIR/manifest.json. Writers append samples in order and seal shards atomically
// (temporary name, fsync, rename); readers fetch any sample with one chunk read.
// The on-disk layout is documented in docs/data.md. The writer is data/shard_write.c, the
// reader data/shard_read.c, the chunk codec data/shard_codec.c.
//
// Inside a shard (n samples, j = 0..n-1, NNNNN = j printed as %05d):
//   /image/NNNNN   uint8 (h, w, 3)  RGB, one chunk = the whole image
//   /label/NNNNN   uint8 (h, w)     Cityscapes train ids 0..18, 255 = ignore, one chunk
//   /names         fixed strings (n) of MV_SAMPLE_NAME_MAX bytes
//   /sizes         int32 (n, 2)     (h, w) per sample
//   /skipped       fixed strings (k) "name: reason" of bad inputs skipped before this shard's end
//   attributes on /: format "maskvim-shard", version 1, domain, label_map, count, skipped
// Every image and label dataset has the filter pipeline shuffle + deflate + Fletcher32, so a
// flipped byte is reported as a checksum failure naming the shard and the sample.
#pragma once
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "data/image.h"

#define MV_SAMPLE_NAME_MAX 256
#define MV_SHARD_DEFAULT_SAMPLES 64
#define MV_SHARD_DEFAULT_DEFLATE 3

// ---------------------------------------------------------------------------------------
// Writing

typedef struct mv_shard_writer mv_shard_writer;

// Opens (creating the folder if needed) a writer for split_dir, starting a fresh split: old
// shards, temporaries and manifest in split_dir are removed. domain names the data
// ("cityscapes", "synth-fog"); label_map names the label mapping applied (e.g.
// "cityscapes-labelid-to-trainid/v1"); samples_per_shard <= 0 means the default.
// Returns NULL and records an error.
mv_shard_writer *shard_writer_open(const char *split_dir, const char *domain,
                                   const char *label_map, int samples_per_shard);
// The same, but keeps the complete (full) shards that an interrupted run left in split_dir;
// they must have the same domain, label_map and samples_per_shard. The caller then skips the
// first shard_writer_resume_point() input items (its item order must be deterministic).
// Nothing in split_dir is removed or rewritten before the writer's first write (its first
// sample, or shard_writer_close): the partial last shard, temporaries and the manifest go
// then. So a caller that refuses the resume (shard_writer_check_input) and calls
// shard_writer_abort leaves the folder exactly as it was.
mv_shard_writer *shard_writer_resume(const char *split_dir, const char *domain,
                                     const char *label_map, int samples_per_shard);
// 1 when shard_writer_resume found a finished split in split_dir: its manifest.json, with every
// shard it lists readable (a manifest that does not read back leaves the split unfinished).
int shard_writer_finished(const mv_shard_writer *w);
// Number of input items (samples written + items skipped) covered by the shards kept by
// shard_writer_resume. 0 for a fresh split.
int64_t shard_writer_resume_point(const mv_shard_writer *w);
// Checks the caller's whole input listing, names[0..n-1] in input order, against what a resumed
// split_dir holds, before anything is written. An unfinished split: its complete shards must
// cover no more than n items and hold exactly the first ones (else resuming would duplicate
// some samples and lose others); 0.
// A finished split: every item it covers (samples and skipped items, as sets) must be among
// the first ones listed, and no listed item among the first ones missing from it: 1 when they
// are the whole listing (already done: shard_writer_abort leaves it untouched), 0 when the
// listing goes on after them (resume: the complete shards are kept, the rest is written).
// Otherwise -1, naming the first differing item and asking for --fresh.
int shard_writer_check_input(const mv_shard_writer *w, const char *const *names, int64_t n);
// Appends one sample: rgb is (h, w, 3), label is (h, w, 1) with values in 0..18 or 255.
// Values outside that set, size mismatches and empty images are errors naming the sample.
// Seals the current shard when it is full.
int shard_writer_add(mv_shard_writer *w, const char *name, const mv_image *rgb, const mv_image *label);
// Checks a sample before it is written: rgb (h, w, 3), label (h, w, 1), equal sizes, sides in
// 1..MV_IMAGE_MAX_SIDE, label values 0..18 or 255, name shorter than MV_SAMPLE_NAME_MAX.
// The error names the sample and, for a bad label value, the pixel.
int shard_check_sample(const char *name, const mv_image *rgb, const mv_image *label);
// The same from pre-compressed chunks (see shard_encode_chunk); lets worker threads do the
// compression while one thread writes. rgb_chunk holds h*w*3 bytes encoded, label_chunk h*w.
int shard_writer_add_encoded(mv_shard_writer *w, const char *name, int h, int w_,
                             const uint8_t *rgb_chunk, size_t rgb_len,
                             const uint8_t *label_chunk, size_t label_len);
// Records an input item that was skipped (--skip-bad); it is listed in the manifest.
int shard_writer_skip(mv_shard_writer *w, const char *name, const char *reason);
// Records where the split comes from (manifest.h, "source"; up to MV_MANIFEST_SOURCE_MAX
// entries, in the order set), written into its manifest by shard_writer_close.
void shard_writer_set_source(mv_shard_writer *w, const char *key, const char *value);
// Seals the last (partial) shard, writes manifest.json atomically and frees w (always).
int shard_writer_close(mv_shard_writer *w);
// Frees w without sealing: the current shard's temporary file is removed, complete shards stay
// (a later run resumes from them). NULL is allowed.
void shard_writer_abort(mv_shard_writer *w);

// Encodes n raw bytes as one stored chunk (deflate at `level`, then the 4-byte Fletcher32
// that HDF5's filter appends). *out is grown with realloc as needed (*cap its capacity).
// Returns the encoded length, or -1 on error. Thread-safe.
int64_t shard_encode_chunk(uint8_t **out, size_t *cap, const uint8_t *raw, size_t n, int level);
// Inverse: checks the Fletcher32 and inflates exactly n bytes into raw. what names the data
// in the error message ("DIR/shard-00003.h5: sample 17 (name) image").
int shard_decode_chunk(uint8_t *raw, const uint8_t *enc, size_t enc_len, size_t n, const char *what);
// HDF5's Fletcher32 (16-bit big-endian words, sums folded every 360 words).
uint32_t shard_fletcher32(const uint8_t *data, size_t len);

// ---------------------------------------------------------------------------------------
// Reading

typedef struct mv_split mv_split;

// One sample's buffers, sized once for a split's largest image; reads reuse them (no
// allocation per sample).
typedef struct {
    mv_image rgb, label;          // h, w set by each read; px capacity max_h*max_w*{3,1}
    size_t cap_px;                // capacity in pixels
    uint8_t *enc; size_t enc_cap; // compressed-chunk scratch
    char name[MV_SAMPLE_NAME_MAX];
    int64_t index;                // sample index within its split
} mv_sample;

// Opens split_dir through its manifest; checks that every shard exists with the recorded
// size (a truncated shard is an error naming it). Returns 0 / -1.
int split_open(mv_split **out, const char *split_dir);
void split_close(mv_split *s);
int64_t split_count(const mv_split *s);
// manifest_fingerprint of the manifest the split was opened from: what ranks compare to know
// that each reads the same split.
uint64_t split_fingerprint(const mv_split *s);
const char *split_dir(const mv_split *s);
const char *split_domain(const mv_split *s);
// Largest image height and width in the split.
void split_max_size(const mv_split *s, int *max_h, int *max_w);
// The number of classes its labels are (manifest.json's num_classes): values 0..n-1, or 255.
int split_num_classes(const mv_split *s);
// Allocates sample buffers big enough for every sample of s (or for max_h x max_w when larger).
void sample_alloc(mv_sample *out, int max_h, int max_w);
void sample_free(mv_sample *smp);
// Reads sample i into out, verifying both checksums. Safe to call from several threads on the
// same split with different out buffers. Errors name the shard file, the index and the name
// ("name unreadable" when the names table is damaged); when the image or label does not read
// back, the message ends pointing at `maskvim data inspect DIR`, which checks every shard.
int split_read(mv_sample *out, mv_split *s, int64_t i);
// 1 when the HDF5 library was built thread-safe. Reading a split from several threads (the loader's
// workers, the corruption generator), or from one worker while the main thread writes a
// checkpoint, needs it: HDF5 then serialises its own calls.
int shard_hdf5_threadsafe(void);
// Reads every sample of every shard and compares each shard file's CRC-32 with the manifest;
// prints one line per shard to `log` when non-NULL. Returns 0 when all is well.
int split_verify(mv_split *s, FILE *log);
