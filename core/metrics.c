// Confusion-matrix accumulation and mmseg's IoU metrics (see metrics.h, docs/metrics.md).
#include "core/metrics.h"
#include "core/json_write.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const CITYSCAPES[19] = {
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
};

const char *const *metrics_cityscapes_classes(void) { return CITYSCAPES; }

static size_t side(const mv_confusion *c) { return (size_t)c->num_classes + 1; }

int metrics_init(mv_confusion *c, int num_classes) {
    memset(c, 0, sizeof *c);
    if (num_classes < 1 || num_classes > MV_METRICS_MAX_CLASSES)
        return mv_fail("metrics: %d classes (1..%d supported)", num_classes, MV_METRICS_MAX_CLASSES);
    c->num_classes = num_classes;
    c->counts = mv_calloc(side(c) * side(c), sizeof(uint64_t));
    return 0;
}

void metrics_free(mv_confusion *c) {
    free(c->counts);
    memset(c, 0, sizeof *c);
}

void metrics_reset(mv_confusion *c) { memset(c->counts, 0, sizeof(uint64_t) * side(c) * side(c)); }

void metrics_add(mv_confusion *c, const uint8_t *pred, const uint8_t *label, size_t n) {
    const unsigned C = (unsigned)c->num_classes;
    const size_t S = side(c);
    uint64_t *counts = c->counts;
    for (size_t i = 0; i < n; i++) {
        unsigned l = label[i], p = pred[i];
        if (l == MV_IGNORE_LABEL) continue;
        counts[(size_t)(l < C ? l : C) * S + (p < C ? p : C)]++;
    }
}

int metrics_merge(mv_confusion *dst, const mv_confusion *src) {
    if (dst->num_classes != src->num_classes)
        return mv_fail("metrics: cannot merge %d classes into %d", src->num_classes, dst->num_classes);
    size_t n = side(dst) * side(dst);
    for (size_t i = 0; i < n; i++) dst->counts[i] += src->counts[i];
    return 0;
}

size_t metrics_raw_size(const mv_confusion *c) { return side(c) * side(c); }

uint64_t *metrics_raw(mv_confusion *c, size_t *n) {
    *n = metrics_raw_size(c);
    return c->counts;
}

void metrics_to_doubles(double *out, const mv_confusion *c) {
    size_t n = metrics_raw_size(c);
    for (size_t i = 0; i < n; i++) out[i] = (double)c->counts[i];
}

void metrics_from_doubles(mv_confusion *c, const double *in) {
    size_t n = metrics_raw_size(c);
    for (size_t i = 0; i < n; i++) c->counts[i] = in[i] > 0 ? (uint64_t)llround(in[i]) : 0;
}

void metrics_compute(mv_seg_metrics *out, const mv_confusion *c) {
    memset(out, 0, sizeof *out);
    const int C = c->num_classes;
    const size_t S = side(c);
    out->num_classes = C;
    uint64_t inter_all = 0, gt_all = 0;
    double iou_sum = 0, acc_sum = 0;
    int acc_valid = 0;
    // Every counted pixel has label != 255, so the whole matrix is the labelled pixels.
    for (size_t i = 0; i < S * S; i++) out->pixels += c->counts[i];
    for (size_t j = 0; j < S; j++) out->unknown_label_pixels += c->counts[(size_t)C * S + j];
    for (int k = 0; k < C; k++) {
        uint64_t inter = c->counts[(size_t)k * S + k], gt = 0, pred = 0;
        for (size_t j = 0; j < S; j++) gt += c->counts[(size_t)k * S + j];     // row: labelled k (any prediction)
        for (size_t i = 0; i < S; i++) pred += c->counts[i * S + k];           // column: predicted k (any label)
        uint64_t uni = gt + pred - inter;
        out->area_gt[k] = gt;
        out->area_pred[k] = pred;
        out->iou[k] = uni ? 100.0 * (double)inter / (double)uni : NAN;
        out->acc[k] = gt ? 100.0 * (double)inter / (double)gt : NAN;
        if (uni) { iou_sum += out->iou[k]; out->valid_classes++; }
        if (gt) { acc_sum += out->acc[k]; acc_valid++; }
        inter_all += inter;
        gt_all += gt;
    }
    out->miou = out->valid_classes ? iou_sum / out->valid_classes : NAN;
    out->macc = acc_valid ? acc_sum / acc_valid : NAN;
    out->aacc = gt_all ? 100.0 * (double)inter_all / (double)gt_all : NAN;
}

double metrics_value(const mv_seg_metrics *m, mv_metric which) {
    switch (which) {
    case MV_METRIC_MACC: return m->macc;
    case MV_METRIC_AACC: return m->aacc;
    default: return m->miou;
    }
}

const char *metrics_name(mv_metric which) {
    switch (which) {
    case MV_METRIC_MACC: return "mAcc";
    case MV_METRIC_AACC: return "aAcc";
    default: return "mIoU";
    }
}

// Class k's name: the caller's, Cityscapes' for 19 classes, else "class k". Cityscapes' list
// (metrics_cityscapes_classes) names 19 classes only: handed in for another class count, as
// callers that always pass it do, it would give a 7-class model Cityscapes' first 7 names and,
// past 19 classes, be read out of bounds (a crash), so it counts as no names then.
static const char *class_name(const char *const *names, int C, int k, char *buf, size_t cap) {
    if (names == CITYSCAPES && C != 19) names = NULL;
    if (names && names[k]) return names[k];
    if (C == 19) return CITYSCAPES[k];
    snprintf(buf, cap, "class %d", k);
    return buf;
}

const char *metrics_cell(char *buf, size_t n, double x, int width) {
    if (isnan(x)) snprintf(buf, n, "%*s", width, "-");
    else snprintf(buf, n, "%*.2f", width, x);
    return buf;
}

static void cell(FILE *f, double x) {
    char buf[32];
    fprintf(f, " %s", metrics_cell(buf, sizeof buf, x, 7));
}

void metrics_write_table(FILE *f, const mv_seg_metrics *m, const char *const *class_names, const char *title) {
    char buf[32];
    int width = 5;
    for (int k = 0; k < m->num_classes; k++) {
        int len = (int)strlen(class_name(class_names, m->num_classes, k, buf, sizeof buf));
        if (len > width) width = len;
    }
    if (width > 40) width = 40;
    if (title && title[0]) fprintf(f, "%s\n", title);
    fprintf(f, "%-*s %7s %7s\n", width, "class", "IoU", "Acc");
    for (int k = 0; k < m->num_classes; k++) {
        fprintf(f, "%-*.*s", width, width, class_name(class_names, m->num_classes, k, buf, sizeof buf));
        cell(f, m->iou[k]);
        cell(f, m->acc[k]);
        fputc('\n', f);
    }
    fprintf(f, "mIoU");
    cell(f, m->miou);
    fprintf(f, "  mAcc");
    cell(f, m->macc);
    fprintf(f, "  aAcc");
    cell(f, m->aacc);
    // The two columns are undefined in different cases: a class predicted but never labelled has
    // IoU 0 (in mIoU) and no Acc (not in mAcc).
    int acc_valid = 0;
    for (int k = 0; k < m->num_classes; k++) acc_valid += !isnan(m->acc[k]);
    fprintf(f, "  (%d of %d classes in mIoU, %d in mAcc; IoU '-': in no label and no prediction, Acc '-': in no "
            "label)\n", m->valid_classes, m->num_classes, acc_valid);
}


static void json_per_class(FILE *f, const char *key, const double *v, const mv_seg_metrics *m,
                           const char *const *class_names) {
    char buf[32];
    fprintf(f, ", \"%s\": {", key);
    for (int k = 0; k < m->num_classes; k++) {
        if (k) fputs(", ", f);
        json_write_string(f, class_name(class_names, m->num_classes, k, buf, sizeof buf));
        fputs(": ", f);
        json_write_number(f, v[k]);
    }
    fputc('}', f);
}

void metrics_write_json(FILE *f, const mv_seg_metrics *m, const char *const *class_names, const char *domain) {
    fputc('{', f);
    if (domain) {
        fputs("\"domain\": ", f);
        json_write_string(f, domain);
        fputs(", ", f);
    }
    fputs("\"mIoU\": ", f);
    json_write_number(f, m->miou);
    fputs(", \"mAcc\": ", f);
    json_write_number(f, m->macc);
    fputs(", \"aAcc\": ", f);
    json_write_number(f, m->aacc);
    fprintf(f, ", \"valid_classes\": %d, \"pixels\": %llu", m->valid_classes, (unsigned long long)m->pixels);
    json_per_class(f, "IoU", m->iou, m, class_names);
    json_per_class(f, "Acc", m->acc, m, class_names);
    fputc('}', f);
}
