// Dataset converters: each public dataset's folder layout and label encoding -> a split of
// HDF5 shards with Cityscapes train ids. One file per dataset (convert_<name>.c) lists the
// items of a split and loads one item; convert.c is the shared driver (worker threads,
// in-order writing, progress, resume, --skip-bad). Layouts and tables: docs/data.md.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "core/fs.h"
#include "data/image.h"
#include "data/shard.h"

// Input paths of a conversion (dataset roots can be deep); not core/config.h's MV_PATH_MAX.
#define MV_CONVERT_PATH_MAX 4096

// One input item: an image file, its label file and the sample's name in the split
// (strings owned by the item list; see convert_free_items).
typedef struct {
    char *image;
    char *label;
    char *name;
    int absent;   // --list: neither file is in the download (list_may_lack_items: skipped and listed, never an error)
    int orphan;   // a label file whose image does not exist (an error naming both, or skipped with --skip-bad)
    long list_line;  // --list: the line that names it (for messages; 0 otherwise)
} mv_convert_item;

// What a load did besides the plain conversion (reported in the final summary).
// MV_CONVERT_UNLISTED_IDS: the label held ids outside the dataset's class table, mapped to ignore.
// MV_CONVERT_LABEL_EMPTY: every pixel of the label is ignore (255): no annotation.
enum { MV_CONVERT_LABEL_RESIZED = 1, MV_CONVERT_UNLISTED_IDS = 2, MV_CONVERT_LABEL_EMPTY = 4 };

typedef struct {
    const char *name;          // --dataset value
    const char *domain;        // domain recorded in the manifest
    const char *label_map;     // label-mapping version recorded in the manifest
    const char *splits;        // accepted --split values, for messages
    // Lists the items of `split` under `root`, sorted by name. *items is malloc'd (free it with
    // convert_free_items, also after an error).
    int (*list)(mv_convert_item **items, int64_t *n, const char *root, const char *split);
    // Decodes one item into an RGB image and a train-id label (both allocated); *flags gets
    // MV_CONVERT_* bits. Errors name the file (and pixel for unknown label values).
    int (*load)(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *item);
    // Datasets published as one flat folder and split by a list of file names (GTAV, SYNTHIA):
    // the folders of images and labels under the root of the download, where an image and its
    // label have the same file name. NULL: no such form (--list is refused).
    const char *raw_images, *raw_labels;
    // --list: a listed name absent from the download (image and label) is skipped and listed, not
    // an error. Only GTAV: circulated copies lack a few dozen of the ids RobustNet's lists name.
    bool list_may_lack_items;
} mv_dataset_converter;

extern const mv_dataset_converter MV_CONVERT_CITYSCAPES, MV_CONVERT_BDD100K, MV_CONVERT_MAPILLARY,
    MV_CONVERT_GTAV, MV_CONVERT_SYNTHIA;

// The converter called `name`, or NULL (with a message listing the known ones).
const mv_dataset_converter *convert_find(const char *name);

typedef struct {
    const char *dataset;      // converter name
    const char *root;         // dataset root folder
    const char *split;        // e.g. train, val
    const char *out;          // split folder to write
    int workers;              // decoding threads (>= 1)
    int skip_bad;             // skip and list bad items instead of stopping
    int samples_per_shard;    // <= 0: default
    int64_t limit;            // > 0: convert only the first `limit` items (smoke tests)
    int fresh;                // 1: ignore complete shards of an earlier run (default resumes)
    const char *list_file;    // non-NULL: the split is the file names this file lists, taken from
                              // the dataset's flat raw download (raw_images, raw_labels)
} mv_convert_opts;

typedef struct {
    int64_t items;            // input items listed
    int64_t resumed;          // items covered by shards kept from an earlier run
    int64_t written;          // samples written by this run
    int64_t skipped;          // bad items skipped by this run (absent ones included)
    int64_t absent;           // --list items absent from the download, skipped by this run
    int64_t labels_resized;   // GTAV labels resized to their image
    int64_t labels_unlisted;  // labels with ids outside the class table, mapped to ignore (GTAV, SYNTHIA)
    int64_t labels_empty;     // labels with no pixel of a class (all 255), written by this run
    double seconds;
    int up_to_date;           // 1: --out was a finished split of exactly these items, left untouched
                              // (resumed = items, nothing written)
} mv_convert_stats;

// Runs a conversion; progress lines (samples/s, ETA) go to `progress` when non-NULL.
// opts->out is locked (a flock on the folder) for the whole run: while another conversion
// holds it, this one is refused at once (-1, naming the folder), before anything there is read.
// On error nothing half-written is left that looks complete; a re-run resumes. Without
// opts->fresh, what --out holds is checked against the listing before anything there is
// touched: a finished split (manifest.json) of exactly these items is left as it is (0,
// stats->up_to_date), one whose items are the first of a longer listing is extended, and an
// input that changed under a finished split or under an unfinished one's complete shards is
// refused (-1, the folder unchanged).
int convert_run(mv_convert_stats *stats, const mv_convert_opts *opts, FILE *progress);

// ---------------------------------------------------------------------------------------
// Helpers shared by the dataset files

// (Listing a folder: mv_list_dir and mv_is_dir, core/fs.h.)
void convert_free_items(mv_convert_item *items, int64_t n);
// The flat layout most datasets share: every image `<stem><img_ext>` directly in `idir` pairs
// with the label `<ldir>/<stem><label_suffix>` (either extension in any case: NAME.JPG, NAME.PNG);
// the sample is named `<stem>`. A label whose image
// is missing becomes an `orphan` item (an error when converted, not silently dropped), placed by
// name among the images.
int convert_pair_flat(mv_convert_item **items, int64_t *n, const char *idir, const char *img_ext, const char *ldir,
                      const char *label_suffix);
// The split's image folder `<root>/<sub>/<split>` into `dir`. The validation split goes by two
// names (HGFormer's GTAV `valid`, SYNTHIA's `val`): when `split` is one of them and its folder is
// missing, the other name's folder is taken if it exists. Returns the split name the folder has.
const char *convert_split_folder(char *dir, size_t n, const char *root, const char *sub, const char *split);
// convert_pair_flat appending to a list being built (*cap its capacity), samples named
// `<prefix><stem>`; a missing `idir` gives only orphans (labels of a folder with no images).
int convert_pair_dir(mv_convert_item **items, int64_t *n, int64_t *cap, const char *idir, const char *img_ext,
                     const char *ldir, const char *label_suffix, const char *prefix);
// The items a split list names (one file name per line, as RobustNet's split_data/*.txt; blank
// lines, surrounding spaces, CRLF ends and a leading UTF-8 byte order mark ignored) in the
// converter's raw folders under `root`, sorted by name as the split folders list them. A name
// with a '/', without an extension, or listed twice is an error naming the line. Where the
// converter's list_may_lack_items is set, a listed name whose image and label are both missing is
// marked `absent` (some circulated GTAV copies lack a few dozen ids, docs/data.md, GTAV: the
// converter skips and lists them); elsewhere it is an item that fails by name. When no listed
// name exists at all, the root is wrong: an error.
int convert_list_file(mv_convert_item **items, int64_t *n, const mv_dataset_converter *conv, const char *root,
                      const char *list_file);
// label[i] = table[label[i]]; a value whose table entry is MV_LABEL_UNKNOWN is an error naming
// the file and the pixel; one whose entry is MV_LABEL_UNLISTED becomes 255 and sets
// MV_CONVERT_UNLISTED_IDS in *flags.
#define MV_LABEL_UNKNOWN 0xFFFF
#define MV_LABEL_UNLISTED 0xFFFE
int convert_map_labels(mv_image *label, const uint16_t table[256], const char *path, int *flags);
// The common load of a pair whose label is an index PNG of the image's size: reads both,
// refuses a label of another size (naming both files and sizes), maps it through `table`
// (convert_map_labels).
int convert_load_indexed_pair(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it,
                              const uint16_t table[256]);
// Fills table: ids 0..n_known-1 -> 255 (ignore), then the pairs (id, train id) of `pairs`
// (n_pairs pairs); every other id gets `other`: MV_LABEL_UNKNOWN (an error) where the dataset
// has a closed set of ids, MV_LABEL_UNLISTED where its reference converter maps anything it
// does not list to ignore (GTAV, SYNTHIA: docs/data.md).
void convert_make_table(uint16_t table[256], int n_known, const int (*pairs)[2], int n_pairs, uint16_t other);
// Nearest-neighbour resize of a one-channel label with OpenCV's INTER_NEAREST sampling positions
// (image_nearest_index), as HGFormer resizes GTAV's labels.
mv_image convert_resize_nearest(const mv_image *label, int h, int w);
