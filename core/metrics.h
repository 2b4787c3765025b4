// Segmentation metrics as mmsegmentation's IoUMetric computes them (docs/metrics.md):
// a confusion matrix accumulated over a whole evaluation set (label 255 ignored), then
// per-class IoU and accuracy, mIoU and mAcc as NaN-means over classes, and aAcc.
//
// The matrix has one extra row and column (index C = num_classes) for labels and predictions
// outside 0..C-1: mmseg drops such predictions from the predicted areas, but counts them
// against the ground-truth class of their pixel, and a prediction on a pixel whose label is
// out of range (and not 255) still enlarges that predicted class's union. The extra row and
// column reproduce both exactly.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/config.h"

#define MV_IGNORE_LABEL 255
#define MV_METRICS_MAX_CLASSES 255

typedef struct {
    int num_classes;       // C
    uint64_t *counts;      // [C+1][C+1]: row = ground truth, column = prediction; index C = out of range
} mv_confusion;

// Values in percent (0..100), as mmseg and the paper report them; NaN where undefined.
typedef struct {
    int num_classes;
    double iou[MV_METRICS_MAX_CLASSES];   // intersection / union; NaN when the union is empty
    double acc[MV_METRICS_MAX_CLASSES];   // intersection / ground-truth area; NaN when that is empty
    uint64_t area_gt[MV_METRICS_MAX_CLASSES];   // pixels labelled with the class
    uint64_t area_pred[MV_METRICS_MAX_CLASSES]; // pixels predicted as the class (labelled pixels only)
    double miou;           // mean of the non-NaN iou
    double macc;           // mean of the non-NaN acc
    double aacc;           // all intersections / all ground-truth areas
    int valid_classes;     // classes in the mIoU (non-empty union)
    uint64_t pixels;       // labelled pixels counted (label != 255)
    // Of those, pixels whose label is neither a class nor 255 (a split converted with the wrong
    // label map): counted as mmseg counts them, in the predicted class's union and in no class's
    // ground truth, and worth a warning.
    uint64_t unknown_label_pixels;
} mv_seg_metrics;

// num_classes in [1, MV_METRICS_MAX_CLASSES]; -1 with a message otherwise.
int metrics_init(mv_confusion *c, int num_classes);
void metrics_free(mv_confusion *c);
void metrics_reset(mv_confusion *c);

// Accumulates n pixels. pred: (n) predicted classes (any value); label: (n) ground truth,
// 255 = ignored.
void metrics_add(mv_confusion *c, const uint8_t *pred, const uint8_t *label, size_t n);
// dst += src (same number of classes, else -1).
int metrics_merge(mv_confusion *dst, const mv_confusion *src);

// The raw counts, (C+1)^2 uint64 values in *n (the all-reduce uses metrics_to_doubles).
uint64_t *metrics_raw(mv_confusion *c, size_t *n);
size_t metrics_raw_size(const mv_confusion *c);
// The same counts as doubles, for communicators that reduce doubles: exact while every count
// stays below 2^53 (9e15 pixels). out and in hold metrics_raw_size(c) values.
void metrics_to_doubles(double *out, const mv_confusion *c);
// Sets the counts from doubles (rounded to the nearest integer; negatives become 0).
void metrics_from_doubles(mv_confusion *c, const double *in);

void metrics_compute(mv_seg_metrics *out, const mv_confusion *c);
// The value of run.select_metric (mIoU, mAcc or aAcc) in percent.
double metrics_value(const mv_seg_metrics *m, mv_metric which);
const char *metrics_name(mv_metric which);

// Cityscapes' 19 train-id class names (road ... bicycle). Passed as class_names below for a
// class count other than 19, it is ignored (generic names), never read past its 19 entries.
const char *const *metrics_cityscapes_classes(void);

// A metric as a table shows it: "%*.2f" of `width`, or "-" right-aligned where it is undefined
// (NaN: no class in the mean, no labelled pixel), never "nan". Writes into buf; returns buf.
const char *metrics_cell(char *buf, size_t n, double x, int width);
// A readable table: one row per class (name, IoU, Acc; "-" for NaN), then mIoU, mAcc, aAcc.
// class_names may be NULL: Cityscapes' names when there are 19 classes, else "class <i>".
void metrics_write_table(FILE *f, const mv_seg_metrics *m, const char *const *class_names, const char *title);
// One JSON object on one line, no newline (for metrics.jsonl and report files), NaN as null:
// {"domain": "...", "mIoU": .., "mAcc": .., "aAcc": .., "valid_classes": n, "pixels": n,
//  "IoU": {"road": .., ...}, "Acc": {"road": .., ...}}. domain may be NULL (then omitted).
void metrics_write_json(FILE *f, const mv_seg_metrics *m, const char *const *class_names, const char *domain);
