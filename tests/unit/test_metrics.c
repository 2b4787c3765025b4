// Segmentation metrics: hand-computed confusion matrices (ignore label, out-of-range labels
// and predictions, classes absent everywhere), agreement with a direct transcription of
// mmseg's IoUMetric on random data, merging across "ranks", and the table and JSON output.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/metrics.h"

#define EPS 1e-12

// noinline: GCC's dangling-pointer analysis misreads open_memstream's buffer when inlined.
__attribute__((noinline)) static char *capture_json(const mv_seg_metrics *m, const char *const *names, const char *domain) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    metrics_write_json(f, m, names, domain);
    fclose(f);
    return buf;
}

__attribute__((noinline)) static char *capture_table(const mv_seg_metrics *m, const char *const *names, const char *title) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    metrics_write_table(f, m, names, title);
    fclose(f);
    return buf;
}

// 3 classes, 9 pixels, two ignored; one prediction (3) is out of range.
//   label: 0 0 0 1 1 2 255 255 0
//   pred:  0 0 1 1 2 2   0   1 3
// intersections 2,1,1; ground truth 4,2,1; predicted (in range) 2,2,2
// unions 4+2-2=4, 2+2-1=3, 1+2-1=2 -> IoU 50, 33.33, 50; Acc 50, 50, 100; aAcc 4/7.
Test(metrics, hand_computed_three_classes) {
    const uint8_t label[] = {0, 0, 0, 1, 1, 2, 255, 255, 0};
    const uint8_t pred[] = {0, 0, 1, 1, 2, 2, 0, 1, 3};
    mv_confusion c;
    cr_assert_eq(metrics_init(&c, 3), 0);
    metrics_add(&c, pred, label, 9);
    mv_seg_metrics m;
    metrics_compute(&m, &c);
    cr_expect_eq(m.pixels, 7);
    cr_expect_eq(m.area_gt[0], 4);
    cr_expect_eq(m.area_gt[1], 2);
    cr_expect_eq(m.area_gt[2], 1);
    cr_expect_eq(m.area_pred[0], 2);
    cr_expect_eq(m.area_pred[1], 2);
    cr_expect_eq(m.area_pred[2], 2);
    cr_expect_float_eq(m.iou[0], 50.0, EPS);
    cr_expect_float_eq(m.iou[1], 100.0 / 3, EPS);
    cr_expect_float_eq(m.iou[2], 50.0, EPS);
    cr_expect_float_eq(m.acc[0], 50.0, EPS);
    cr_expect_float_eq(m.acc[1], 50.0, EPS);
    cr_expect_float_eq(m.acc[2], 100.0, EPS);
    cr_expect_float_eq(m.miou, (50.0 + 100.0 / 3 + 50.0) / 3, EPS);
    cr_expect_float_eq(m.macc, 200.0 / 3, EPS);
    cr_expect_float_eq(m.aacc, 400.0 / 7, EPS);
    cr_expect_eq(m.valid_classes, 3);
    cr_expect_float_eq(metrics_value(&m, MV_METRIC_MIOU), m.miou, 0);
    cr_expect_float_eq(metrics_value(&m, MV_METRIC_MACC), m.macc, 0);
    cr_expect_float_eq(metrics_value(&m, MV_METRIC_AACC), m.aacc, 0);
    cr_expect_str_eq(metrics_name(MV_METRIC_AACC), "aAcc");

    // The raw matrix: rows = label, columns = prediction, index 3 = out of range.
    size_t n;
    const uint64_t *raw = metrics_raw(&c, &n);
    cr_assert_eq(n, 16);
    const uint64_t want[16] = {2, 1, 0, 1,  0, 1, 1, 0,  0, 0, 1, 0,  0, 0, 0, 0};
    for (int i = 0; i < 16; i++) cr_expect_eq(raw[i], want[i], "count [%d][%d]", i / 4, i % 4);
    metrics_free(&c);
}

// Class 3 appears nowhere: NaN and left out of mIoU (mmseg's nanmean). Class 2 is predicted
// but never labelled: IoU 0 counts in mIoU, Acc NaN stays out of mAcc. A label out of range
// (7, not 255) is not ignored: the prediction on it enlarges class 1's union.
//   label: 0 0 1 1 7
//   pred:  0 2 1 1 1
Test(metrics, nan_mean_and_out_of_range_labels) {
    const uint8_t label[] = {0, 0, 1, 1, 7};
    const uint8_t pred[] = {0, 2, 1, 1, 1};
    mv_confusion c;
    cr_assert_eq(metrics_init(&c, 4), 0);
    metrics_add(&c, pred, label, 5);
    mv_seg_metrics m;
    metrics_compute(&m, &c);
    cr_expect_float_eq(m.iou[0], 50.0, EPS);          // 1 / (2 + 1 - 1)
    cr_expect_float_eq(m.iou[1], 200.0 / 3, EPS);     // 2 / (2 + 3 - 2): the pixel labelled 7 counts
    cr_expect_float_eq(m.iou[2], 0.0, EPS);           // 0 / (0 + 1 - 0)
    cr_expect(isnan(m.iou[3]), "absent class is NaN, got %g", m.iou[3]);
    cr_expect(isnan(m.acc[2]) && isnan(m.acc[3]));
    cr_expect_eq(m.valid_classes, 3);
    cr_expect_float_eq(m.miou, (50.0 + 200.0 / 3 + 0.0) / 3, EPS);
    cr_expect_float_eq(m.macc, (50.0 + 100.0) / 2, EPS);
    cr_expect_float_eq(m.aacc, 300.0 / 4, EPS);       // the out-of-range pixel is not in aAcc
    cr_expect_eq(m.pixels, 5);
    cr_expect_eq(m.unknown_label_pixels, 1, "the pixel labelled 7 is counted for the warning");

    // Nothing counted: every mean is NaN, nothing divides by zero.
    metrics_reset(&c);
    metrics_compute(&m, &c);
    cr_expect(isnan(m.miou) && isnan(m.macc) && isnan(m.aacc) && m.valid_classes == 0);
    metrics_free(&c);

    mv_clear_error();
    cr_expect_eq(metrics_init(&c, 0), -1);
    cr_expect(strstr(mv_last_error(), "0 classes") != NULL, "%s", mv_last_error());
    cr_expect_eq(metrics_init(&c, 256), -1);
    cr_expect(c.counts == NULL);
}

// A literal transcription of mmseg's intersect_and_union + total-area sums, per image.
static void mmseg_reference(double *iou, double *acc, double *aacc, const uint8_t *pred, const uint8_t *label,
                            int images, int pixels, int C) {
    double inter[64] = {0}, area_pred[64] = {0}, area_gt[64] = {0};
    for (int b = 0; b < images; b++)
        for (int i = 0; i < pixels; i++) {
            int l = label[b * pixels + i], p = pred[b * pixels + i];
            if (l == 255) continue;                  // mask = label != ignore_index
            if (p == l && p < C) inter[p]++;         // histc(pred[pred == label], C, 0, C-1)
            if (p < C) area_pred[p]++;               // histc drops values outside [0, C-1]
            if (l < C) area_gt[l]++;
        }
    double all_inter = 0, all_gt = 0;
    for (int k = 0; k < C; k++) {
        double uni = area_pred[k] + area_gt[k] - inter[k];
        iou[k] = uni > 0 ? 100.0 * inter[k] / uni : NAN;
        acc[k] = area_gt[k] > 0 ? 100.0 * inter[k] / area_gt[k] : NAN;
        all_inter += inter[k];
        all_gt += area_gt[k];
    }
    *aacc = 100.0 * all_inter / all_gt;
}

static double nanmean(const double *x, int n) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) { s += x[i]; k++; }
    return k ? s / k : NAN;
}

Test(metrics, agrees_with_mmseg_and_merges_across_ranks) {
    enum { C = 19, IMAGES = 6, PIXELS = 4000 };
    uint8_t *pred = malloc(IMAGES * PIXELS), *label = malloc(IMAGES * PIXELS);
    uint32_t s = 12345;
    for (int i = 0; i < IMAGES * PIXELS; i++) {
        s = s * 1664525u + 1013904223u;
        int r = (int)(s >> 8) % 100;
        // Labels: mostly classes 0..16 (17, 18 never labelled), some 255, a few out of range.
        label[i] = r < 10 ? 255 : r < 12 ? 30 : (uint8_t)((s >> 16) % 17);
        // Predictions: right half the time, otherwise any class or out of range (never 18).
        s = s * 1664525u + 1013904223u;
        int q = (int)(s >> 8) % 100;
        pred[i] = q < 50 && label[i] < C ? label[i] : q < 52 ? 200 : (uint8_t)((s >> 16) % 18);
    }
    double iou[C], acc[C], aacc;
    mmseg_reference(iou, acc, &aacc, pred, label, IMAGES, PIXELS, C);

    // One accumulator image by image, and two "ranks" holding half the images each.
    mv_confusion all, r0, r1;
    cr_assert_eq(metrics_init(&all, C), 0);
    cr_assert_eq(metrics_init(&r0, C), 0);
    cr_assert_eq(metrics_init(&r1, C), 0);
    for (int b = 0; b < IMAGES; b++) {
        metrics_add(&all, pred + b * PIXELS, label + b * PIXELS, PIXELS);
        metrics_add(b % 2 ? &r1 : &r0, pred + b * PIXELS, label + b * PIXELS, PIXELS);
    }
    mv_seg_metrics m;
    metrics_compute(&m, &all);
    for (int k = 0; k < C; k++) {
        if (isnan(iou[k])) cr_expect(isnan(m.iou[k]), "class %d IoU %g, mmseg NaN", k, m.iou[k]);
        else cr_expect_float_eq(m.iou[k], iou[k], 1e-9, "class %d IoU %g, mmseg %g", k, m.iou[k], iou[k]);
        if (isnan(acc[k])) cr_expect(isnan(m.acc[k]), "class %d Acc", k);
        else cr_expect_float_eq(m.acc[k], acc[k], 1e-9, "class %d Acc", k);
    }
    cr_expect(isnan(m.iou[18]) && m.iou[17] == 0.0, "18 nowhere, 17 predicted only");
    cr_expect_eq(m.valid_classes, 18);
    cr_expect_float_eq(m.miou, nanmean(iou, C), 1e-9);
    cr_expect_float_eq(m.macc, nanmean(acc, C), 1e-9);
    cr_expect_float_eq(m.aacc, aacc, 1e-9);
    cr_expect(m.miou > 1 && m.miou < 99, "a non-trivial value: %g", m.miou);

    // Merge as uint64 and as the doubles an MPI all-reduce of doubles would carry.
    mv_confusion merged;
    cr_assert_eq(metrics_init(&merged, C), 0);
    cr_assert_eq(metrics_merge(&merged, &r0), 0);
    cr_assert_eq(metrics_merge(&merged, &r1), 0);
    size_t n, n2;
    cr_assert_eq(memcmp(metrics_raw(&merged, &n), metrics_raw(&all, &n2), n * sizeof(uint64_t)), 0);
    cr_assert_eq(n, (size_t)(C + 1) * (C + 1));
    double *d0 = malloc(n * sizeof(double)), *d1 = malloc(n * sizeof(double));
    metrics_to_doubles(d0, &r0);
    metrics_to_doubles(d1, &r1);
    for (size_t i = 0; i < n; i++) d0[i] += d1[i];   // the all-reduce
    metrics_from_doubles(&r0, d0);
    cr_expect_eq(memcmp(metrics_raw(&r0, &n), metrics_raw(&all, &n2), n * sizeof(uint64_t)), 0);
    mv_confusion wrong;
    cr_assert_eq(metrics_init(&wrong, 3), 0);
    cr_expect_eq(metrics_merge(&merged, &wrong), -1);

    free(d0);
    free(d1);
    free(pred);
    free(label);
    metrics_free(&all);
    metrics_free(&r0);
    metrics_free(&r1);
    metrics_free(&merged);
    metrics_free(&wrong);
}

Test(metrics, table_and_json) {
    // Cityscapes-sized: road perfect, sidewalk half right, everything else absent.
    enum { C = 19 };
    const uint8_t label[] = {0, 0, 1, 1};
    const uint8_t pred[] = {0, 0, 1, 0};
    mv_confusion c;
    cr_assert_eq(metrics_init(&c, C), 0);
    metrics_add(&c, pred, label, 4);
    mv_seg_metrics m;
    metrics_compute(&m, &c);
    cr_expect_float_eq(m.iou[0], 200.0 / 3, EPS);   // 2 / (2 + 3 - 2)
    cr_expect_float_eq(m.iou[1], 50.0, EPS);        // 1 / (2 + 1 - 1)

    char *table = capture_table(&m, NULL, "clear (source)");
    cr_expect(strncmp(table, "clear (source)\n", 15) == 0, "%s", table);
    cr_expect(strstr(table, "road") && strstr(table, "bicycle") && strstr(table, "traffic light"), "%s", table);
    cr_expect(strstr(table, "  66.67  100.00\n") != NULL, "road row: %s", table);
    cr_expect(strstr(table, "mIoU   58.33  mAcc   75.00  aAcc   75.00  (2 of 19 classes") != NULL, "%s", table);
    char bus[64];
    snprintf(bus, sizeof bus, "\n%-13s %7s %7s\n", "bus", "-", "-");   // names padded to "traffic light"
    cr_expect(strstr(table, bus) != NULL, "absent classes print '-': %s", table);
    free(table);

    char *json = capture_json(&m, NULL, "fog \"C\"");
    const char *head = "{\"domain\": \"fog \\\"C\\\"\", \"mIoU\": ";
    cr_expect(strncmp(json, head, strlen(head)) == 0, "%s", json);
    cr_expect(strstr(json, "\"aAcc\": 75, ") != NULL, "%s", json);
    cr_expect(strstr(json, "\"valid_classes\": 2, \"pixels\": 4") != NULL, "%s", json);
    cr_expect(strstr(json, "\"IoU\": {\"road\": 66.66666666666667, \"sidewalk\": 50, \"building\": null") != NULL,
              "%s", json);
    cr_expect(strstr(json, "\"Acc\": {\"road\": 100, ") != NULL, "%s", json);
    cr_expect(strchr(json, '\n') == NULL && json[strlen(json) - 1] == '}', "one line: %s", json);
    // The number reads back to exactly the computed value.
    const char *at = strstr(json, "\"mIoU\": ");
    cr_assert(at);
    cr_expect_eq(strtod(at + 8, NULL), m.miou);
    free(json);

    // Caller's names; no domain.
    const char *const names[C] = {"a", "b"};   // the rest NULL: generic names
    json = capture_json(&m, names, NULL);
    cr_expect(strncmp(json, "{\"mIoU\": ", 9) == 0, "%s", json);
    cr_expect(strstr(json, "\"IoU\": {\"a\": 66.66666666666667, \"b\": 50, \"building\": null") != NULL, "%s",
              json);
    free(json);
    metrics_free(&c);

    mv_confusion small;
    cr_assert_eq(metrics_init(&small, 2), 0);
    metrics_add(&small, pred, label, 4);
    metrics_compute(&m, &small);
    table = capture_table(&m, NULL, NULL);
    cr_expect(strstr(table, "class 0") && strstr(table, "class 1"), "%s", table);
    free(table);
    metrics_free(&small);
}

// Callers (maskvim eval, the training loop) hand metrics_cityscapes_classes() whatever the class
// count. For 7 classes that named them road..pole; for 25 it read names past Cityscapes' 19
// (maskvim eval --per-class or --json of a 25-class model crashed). Both now get "class <i>".
Test(metrics, cityscapes_names_only_for_19_classes) {
    const int counts[] = {7, 25, MV_METRICS_MAX_CLASSES};
    for (int t = 0; t < 3; t++) {
        int C = counts[t];
        const uint8_t label[] = {0, 1, (uint8_t)(C - 1), 255};
        const uint8_t pred[] = {0, 1, (uint8_t)(C - 1), 3};
        mv_confusion c;
        cr_assert_eq(metrics_init(&c, C), 0);
        metrics_add(&c, pred, label, 4);
        mv_seg_metrics m;
        metrics_compute(&m, &c);
        char *json = capture_json(&m, metrics_cityscapes_classes(), NULL);
        char last[64];
        snprintf(last, sizeof last, "\"class %d\": 100}", C - 1);   // the last Acc entry
        cr_expect(strstr(json, "\"IoU\": {\"class 0\": 100, \"class 1\": 100, \"class 2\": null") != NULL,
                  "%d classes: %s", C, json);
        cr_expect(strstr(json, last) != NULL, "%d classes: %s", C, json);
        cr_expect(strstr(json, "road") == NULL, "%d classes named as Cityscapes': %s", C, json);
        free(json);
        char *table = capture_table(&m, metrics_cityscapes_classes(), "t");
        snprintf(last, sizeof last, "\nclass %d ", C - 1);
        cr_expect(strstr(table, last) != NULL && strstr(table, "road") == NULL, "%d classes: %s", C, table);
        free(table);
        metrics_free(&c);
    }
}

// The table's legend said "'-' = absent from labels and predictions" for both columns, but a
// class predicted and never labelled has IoU 0 and Acc '-': the legend now tells the columns
// apart and counts the classes in each mean.
//   label: 0 0 1, pred: 0 2 1 (3 classes): IoU 50 100 0, Acc 50 100 -.
Test(metrics, table_legend_tells_iou_from_acc) {
    const uint8_t label[] = {0, 0, 1}, pred[] = {0, 2, 1};
    mv_confusion c;
    cr_assert_eq(metrics_init(&c, 4), 0);
    metrics_add(&c, pred, label, 3);
    mv_seg_metrics m;
    metrics_compute(&m, &c);
    char *table = capture_table(&m, NULL, NULL);
    cr_expect(strstr(table, "\nclass 2    0.00       -\n") != NULL, "predicted, never labelled: %s", table);
    cr_expect(strstr(table, "\nclass 3       -       -\n") != NULL, "nowhere: %s", table);
    cr_expect(strstr(table, "(3 of 4 classes in mIoU, 2 in mAcc; IoU '-': in no label and no prediction, "
                            "Acc '-': in no label)\n") != NULL, "%s", table);
    free(table);
    metrics_free(&c);
}

// The one formatter of a metric in tables, eval's summary and training's eval line.
Test(metrics, cell_shows_dash_for_undefined) {
    char buf[32];
    cr_expect_str_eq(metrics_cell(buf, sizeof buf, 42.126, 6), " 42.13");
    cr_expect_str_eq(metrics_cell(buf, sizeof buf, NAN, 6), "     -");
    cr_expect_str_eq(metrics_cell(buf, sizeof buf, 0.0, 5), " 0.00");
    cr_expect_str_eq(metrics_cell(buf, sizeof buf, NAN, 5), "    -");
}
