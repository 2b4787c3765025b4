// A split's manifest (DIR/manifest.json): what the split holds and how to check it.
// Also the 19 Cityscapes train classes every split is labelled with.
//
// manifest.json (written atomically, read back by manifest_read):
// {
//   "format": "maskvim-split", "version": 1,
//   "domain": "cityscapes", "label_map": "cityscapes-labelid-to-trainid/v1",
//   "source": {"dataset": "cityscapes", "split": "val", "root": "/data/cityscapes"},
//   "num_classes": 19, "ignore_index": 255, "classes": ["road", ...],
//   "count": 2975, "samples_per_shard": 64,
//   "image_size": {"min_h": 1024, "min_w": 2048, "max_h": 1024, "max_w": 2048},
//   "shards": [{"file": "shard-00000.h5", "first": 0, "count": 64, "skipped": 0,
//               "bytes": 123456789, "crc32": "89abcdef"}, ...],
//   "skipped": ["name: reason", ...]
// }
#pragma once
#include <stdint.h>
#include <stdio.h>

#define MV_NUM_TRAIN_CLASSES 19
#define MV_IGNORE_LABEL 255
#define MV_MANIFEST_FILE "manifest.json"

extern const char *const MV_CLASS_NAMES[MV_NUM_TRAIN_CLASSES];
extern const uint8_t MV_CLASS_PALETTE[MV_NUM_TRAIN_CLASSES][3];  // Cityscapes colours, RGB
// Cityscapes (label id, train id) pairs: the Cityscapes and GTAV converters map label ids to
// train ids with them, `maskvim predict --format labelid` maps back.
extern const int MV_CITYSCAPES_ID_TO_TRAIN[MV_NUM_TRAIN_CLASSES][2];

typedef struct {
    char file[64];       // name within the split folder
    int64_t first;       // split index of its first sample
    int count;           // samples in it
    int skipped;         // input items skipped (--skip-bad) while it was being filled
    int64_t bytes;       // file size
    uint32_t crc32;      // CRC-32 (zlib) of the whole file
} mv_manifest_shard;

// Where a converted split came from, as `maskvim data convert` was told (dataset, split, root,
// list): optional, for the record and for messages. Not part of the fingerprint: the same
// download at another path, or a copy of the split, is the same data.
#define MV_MANIFEST_SOURCE_MAX 8
typedef struct {
    char *key, *value;
} mv_manifest_entry;

typedef struct {
    int version;
    char domain[128];
    char label_map[128];
    int num_classes;
    int64_t count;
    int samples_per_shard;
    int min_h, min_w, max_h, max_w;   // 0 when the split is empty
    int n_shards;
    mv_manifest_shard *shards;
    int n_skipped;
    char **skipped;                   // "name: reason"
    int n_source;                     // 0: none recorded (a split written before it was, or not converted)
    mv_manifest_entry source[MV_MANIFEST_SOURCE_MAX];
} mv_manifest;

// Writes DIR/manifest.json through a temporary file, fsync and rename.
int manifest_write(const char *split_dir, const mv_manifest *m);
// Parses DIR/manifest.json and checks its consistency (shard firsts and counts add up).
int manifest_read(mv_manifest *out, const char *split_dir);
void manifest_free(mv_manifest *m);
// The value recorded under `key` in the manifest's source, or NULL.
const char *manifest_source(const mv_manifest *m, const char *key);
// What identifies a split's content, cheaply (the manifest, never the samples): a 64-bit FNV-1a
// hash of its domain, label map, classes, sample count and every shard's name, first sample,
// count, size and CRC-32. A copy of the split has the same; another split, or the same one
// with samples added, removed or rewritten, has another. The synthetic data are written bit
// for bit alike on every machine (docs/synth.md), so a split made again elsewhere matches too.
uint64_t manifest_fingerprint(const mv_manifest *m);
// The same for the split in split_dir (reads its manifest.json), with its sample count. 0 / -1.
int manifest_fingerprint_dir(uint64_t *fp, int64_t *count, const char *split_dir);
// Human-readable summary (maskvim data inspect).
void manifest_print(FILE *f, const mv_manifest *m, const char *split_dir);

// CRC-32 of a whole file; 0 / -1 (naming the file).
int file_crc32(uint32_t *crc, int64_t *bytes, const char *path);
