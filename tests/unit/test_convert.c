// Dataset converters: tiny fixture trees in each dataset's real layout and encoding (gray,
// palette and 16-bit PNGs, JPEGs), converted and checked pixel by pixel against the mapping
// tables (written out here independently of the converters). Also bad inputs, --skip-bad,
// worker-count invariance and resume after a failed run.
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "folder_state.h"
#include "data/convert.h"
#include "data/image_io.h"
#include "data/manifest.h"
#include "data/shard.h"

#define H 12
#define W 16

// Expected train id per source id (255 = ignore), from each dataset's label definitions (docs/data.md, "Converters").
static const int CITY[34] = {255, 255, 255, 255, 255, 255, 255, 0,   1,   255, 255, 2,  3,  4,  255, 255, 255,
                             5,   255, 6,   7,   8,   9,   10,  11,  12,  13,  14,  15, 255, 255, 16, 17, 18};
static const int SYNTHIA[23] = {255, 10, 2, 0, 1, 4, 8, 5, 13, 7, 11, 18, 17, 255, 255, 6, 9, 12, 14, 15, 16, 3, 255};
static int MAPILLARY[66];

static void init_mapillary(void) {
    for (int i = 0; i < 66; i++) MAPILLARY[i] = 255;
    MAPILLARY[13] = MAPILLARY[24] = MAPILLARY[41] = 0;
    MAPILLARY[2] = MAPILLARY[15] = 1;
    MAPILLARY[17] = 2; MAPILLARY[6] = 3; MAPILLARY[3] = 4;
    MAPILLARY[45] = MAPILLARY[47] = 5;
    MAPILLARY[48] = 6; MAPILLARY[50] = 7; MAPILLARY[30] = 8; MAPILLARY[29] = 9; MAPILLARY[27] = 10;
    MAPILLARY[19] = 11; MAPILLARY[20] = MAPILLARY[21] = MAPILLARY[22] = 12;
    MAPILLARY[55] = 13; MAPILLARY[61] = 14; MAPILLARY[54] = 15; MAPILLARY[58] = 16; MAPILLARY[57] = 17;
    MAPILLARY[52] = 18;
}

static char g_root[4096];

static const char *fixture_root(const char *name) {
    const char *base = getenv("MV_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    snprintf(g_root, sizeof g_root, "%s/test_convert/%s", base, name);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_root, g_root);
    cr_assert_eq(system(cmd), 0);
    return g_root;
}

static void mkdirs(const char *fmt, const char *a, const char *b) {
    char path[4096], cmd[4200];
    snprintf(path, sizeof path, fmt, a, b);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

// Fixture image k: a smooth RGB pattern (JPEG keeps it close).
static mv_image fixture_rgb(int k, int h, int w) {
    mv_image img = image_alloc(h, w, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            img.px[(y * w + x) * 3 + 0] = (uint8_t)(40 + 8 * x + k);
            img.px[(y * w + x) * 3 + 1] = (uint8_t)(30 + 10 * y);
            img.px[(y * w + x) * 3 + 2] = (uint8_t)(100 + 5 * k);
        }
    return img;
}

// Source label of fixture k: every id 0..n_ids-1 appears.
static int src_id(int k, int y, int x, int n_ids) { return (y * W + x + 7 * k) % n_ids; }

static mv_image fixture_label(int k, int n_ids) {
    mv_image lab = image_alloc(H, W, 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) lab.px[y * W + x] = (uint8_t)src_id(k, y, x, n_ids);
    return lab;
}

static void put_png(const mv_image *img, const char *fmt, const char *a, const char *b) {
    char path[4096];
    snprintf(path, sizeof path, fmt, a, b);
    cr_assert_eq(image_write_png(path, img), 0, "%s", mv_last_error());
}

static void put_jpeg(const mv_image *img, const char *fmt, const char *a, const char *b) {
    char path[4096];
    snprintf(path, sizeof path, fmt, a, b);
    cr_assert_eq(image_write_jpeg(path, img, 98), 0, "%s", mv_last_error());
}

static void put_palette(const mv_image *idx, const char *fmt, const char *a, const char *b) {
    uint8_t pal[256 * 3];
    for (int i = 0; i < 256; i++) pal[3 * i] = (uint8_t)i, pal[3 * i + 1] = (uint8_t)(255 - i), pal[3 * i + 2] = 7;
    char path[4096];
    snprintf(path, sizeof path, fmt, a, b);
    cr_assert_eq(image_write_png_palette(path, idx, pal, 256), 0, "%s", mv_last_error());
}

static int convert(const char *dataset, const char *root, const char *split, const char *out, int workers, int skip_bad,
                   int per_shard, mv_convert_stats *st) {
    mv_convert_opts o = {dataset, root, split, out, workers, skip_bad, per_shard, 0, 0, NULL};
    mv_convert_stats local;
    return convert_run(st ? st : &local, &o, NULL);
}

// Checks every sample of the split at `out`: names in order, labels mapped through `table`
// from fixture k = index_of_name, image exact (png) or close (jpeg).
static void check_split_n(const char *out, const char *const *names, const int *ks, int n, int total, const int *table,
                          int n_ids, int jpeg) {
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0, "%s", mv_last_error());
    cr_assert_eq(split_count(s), total);
    cr_assert_eq(split_verify(s, NULL), 0, "%s", mv_last_error());  // what `maskvim data inspect` checks
    mv_sample smp;
    sample_alloc(&smp, 64, 64);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(split_read(&smp, s, i), 0, "%s", mv_last_error());
        cr_assert_str_eq(smp.name, names[i]);
        cr_assert_eq(smp.label.h, H);
        cr_assert_eq(smp.label.w, W);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int want = table[src_id(ks[i], y, x, n_ids)];
                cr_assert_eq(smp.label.px[y * W + x], want, "%s (%d,%d): got %d want %d", names[i], y, x,
                             smp.label.px[y * W + x], want);
            }
        mv_image ref = fixture_rgb(ks[i], H, W);
        for (int p = 0; p < H * W * 3; p++) {
            int d = abs(smp.rgb.px[p] - ref.px[p]);
            cr_assert(jpeg ? d <= 12 : d == 0, "%s: pixel byte %d differs by %d", names[i], p, d);
        }
        image_free(&ref);
    }
    sample_free(&smp);
    split_close(s);
}

static void check_split(const char *out, const char *const *names, const int *ks, int n, const int *table, int n_ids,
                        int jpeg) {
    check_split_n(out, names, ks, n, n, table, n_ids, jpeg);
}

static void put_text(const char *fmt, const char *a, const char *b) {
    char path[4096];
    snprintf(path, sizeof path, fmt, a, b);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs("stray\n", f);
    fclose(f);
}

static void make_cityscapes(const char *root, int n_aachen) {
    mkdirs("%s/leftImg8bit/train/%s", root, "aachen");
    mkdirs("%s/leftImg8bit/train/%s", root, "bochum");
    mkdirs("%s/gtFine/train/%s", root, "aachen");
    mkdirs("%s/gtFine/train/%s", root, "bochum");
    char stem[128];
    for (int k = 0; k <= n_aachen; k++) {
        const char *city = k < n_aachen ? "aachen" : "bochum";
        snprintf(stem, sizeof stem, "%s/%s_%06d_000019", city, city, k);
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 34);
        put_png(&rgb, "%s/leftImg8bit/train/%s_leftImg8bit.png", root, stem);
        put_png(&lab, "%s/gtFine/train/%s_gtFine_labelIds.png", root, stem);
        // The colour and instance files are present in the real layout and must be ignored.
        put_png(&rgb, "%s/gtFine/train/%s_gtFine_color.png", root, stem);
        // A generated _labelTrainIds.png may sit next to it (here all 0 = road): never read.
        mv_image zero = image_alloc(H, W, 1);
        put_png(&zero, "%s/gtFine/train/%s_gtFine_labelTrainIds.png", root, stem);
        image_free(&zero);
        image_free(&rgb);
        image_free(&lab);
    }
    // Stray files next to the city folders and images (a README, Finder/Explorer litter).
    put_text("%s/leftImg8bit/train/%s", root, "README");
    put_text("%s/leftImg8bit/train/aachen/%s", root, ".DS_Store");
    put_text("%s/leftImg8bit/train/aachen/%s", root, "Thumbs.db");
}

Test(convert, cityscapes_labelids_to_train_ids) {
    const char *root = fixture_root("cityscapes");
    make_cityscapes(root, 2);
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 0, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.written, 3);
    const char *names[] = {"aachen/aachen_000000_000019", "aachen/aachen_000001_000019", "bochum/bochum_000002_000019"};
    int ks[] = {0, 1, 2};
    check_split(out, names, ks, 3, CITY, 34, 0);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0);
    cr_assert_str_eq(m.domain, "cityscapes");
    cr_assert_str_eq(m.label_map, "cityscapes-labelid-to-trainid/v1");
    manifest_free(&m);
}

// Cityscapes item k of `split` in city berlin: fixture image `rgb_k`, the label ids `lab` (freed).
static void put_berlin_item(const char *root, const char *split, int k, int rgb_k, mv_image *lab) {
    mkdirs("%s/leftImg8bit/%s/berlin", root, split);
    mkdirs("%s/gtFine/%s/berlin", root, split);
    char stem[128];
    snprintf(stem, sizeof stem, "%s/berlin/berlin_%06d_000019", split, k);
    mv_image rgb = fixture_rgb(rgb_k, H, W);
    put_png(&rgb, "%s/leftImg8bit/%s_leftImg8bit.png", root, stem);
    put_png(lab, "%s/gtFine/%s_gtFine_labelIds.png", root, stem);
    image_free(&rgb);
    image_free(lab);
}

// Cityscapes' gtFine/test holds placeholder labels (test labels are not public): the test split
// is refused by name (it converted into labels that are ignore everywhere). Labels without a
// single annotated pixel are counted (the CLI warns when every label of a run is one).
Test(convert, cityscapes_test_split_refused_and_empty_labels_counted) {
    const char *root = fixture_root("cityscapes_test");
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) {
            mv_image lab = image_alloc(H, W, 1);
            memset(lab.px, 0, (size_t)H * W);   // 0: unlabeled
            if (k == 1) lab.px[5] = 7;          // one road pixel
            put_berlin_item(root, t ? "val" : "test", k, k, &lab);
        }
    mv_convert_stats st;
    cr_assert_eq(convert("cityscapes", root, "test", out, 1, 0, 0, &st), -1);
    cr_expect(strstr(mv_last_error(), "test labels are not public"), "%s", mv_last_error());
    cr_assert_eq(convert("cityscapes", root, "val", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    cr_expect_eq(st.written, 2);
    cr_expect_eq(st.labels_empty, 1, "%lld labels counted without annotation", (long long)st.labels_empty);

    // The manifest records what was converted, from where; converting another split into the
    // folder of this one is refused, and the message says which split the folder holds.
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0, "%s", mv_last_error());
    char abs[PATH_MAX];
    cr_assert(realpath(root, abs));
    cr_assert_eq(m.n_source, 3);
    cr_expect_str_eq(manifest_source(&m, "dataset"), "cityscapes");
    cr_expect_str_eq(manifest_source(&m, "split"), "val");
    cr_expect_str_eq(manifest_source(&m, "root"), abs);
    cr_expect_null(manifest_source(&m, "list"));
    manifest_free(&m);
    make_cityscapes(root, 1);
    cr_assert_eq(convert("cityscapes", root, "train", out, 1, 0, 0, &st), -1, "train converted over val");
    cr_expect(strstr(mv_last_error(), "--fresh") && strstr(mv_last_error(), "holds cityscapes split 'val'") &&
                  strstr(mv_last_error(), "this conversion is cityscapes split 'train'") &&
                  strstr(mv_last_error(), "is --out the folder meant?"),
              "%s", mv_last_error());
}

// A tree whose train and val images share their names (a hand-made subset, say): the names
// match, so only the manifest's record tells that the folder holds the other split; converting
// train into val's folder is refused, not reported as "already converted".
Test(convert, other_split_with_the_same_names_refused) {
    const char *root = fixture_root("cityscapes_same_names");
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) {
            mv_image lab = fixture_label(k + t, 34);
            put_berlin_item(root, t ? "val" : "train", k, k + 2 * t, &lab);
        }
    mv_convert_stats st;
    cr_assert_eq(convert("cityscapes", root, "val", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.written, 2);
    static char before[8192], after[8192];
    folder_state(before, sizeof before, out);
    cr_assert_eq(convert("cityscapes", root, "train", out, 1, 0, 0, &st), -1, "train taken for the converted val");
    cr_expect(strstr(mv_last_error(), "holds cityscapes split 'val'") &&
                  strstr(mv_last_error(), "this conversion is cityscapes split 'train'") &&
                  strstr(mv_last_error(), "the item names match"),
              "%s", mv_last_error());
    folder_state(after, sizeof after, out);
    cr_assert_str_eq(after, before, "a refused conversion changed the folder");
    cr_assert_eq(convert("cityscapes", root, "val", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    cr_expect(st.up_to_date, "the same split again is not up to date");
}

Test(convert, bdd100k_both_layouts) {
    const char *root = fixture_root("bdd");
    int table[256];
    for (int i = 0; i < 256; i++) table[i] = i;
    mkdirs("%s/images/10k/%s", root, "val");
    mkdirs("%s/labels/sem_seg/masks/%s", root, "val");
    mkdirs("%s/labels/sem_seg/colormaps/%s", root, "val");
    const char *names[] = {"7d2f7975-e0c1c5a7", "7d4a9094-0455564b"};
    int ks[] = {0, 1};
    for (int k = 0; k < 2; k++) {
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 19);
        lab.px[5] = 255;  // ignore is valid in BDD masks
        put_jpeg(&rgb, "%s/images/10k/val/%s.jpg", root, names[k]);
        put_png(&lab, "%s/labels/sem_seg/masks/val/%s.png", root, names[k]);
        image_free(&rgb);
        image_free(&lab);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("bdd100k", root, "val", out, 1, 0, 0, NULL), 0, "%s", mv_last_error());
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0);
    mv_sample smp;
    sample_alloc(&smp, H, W);
    cr_assert_eq(split_read(&smp, s, 0), 0);
    cr_assert_eq(smp.label.px[5], 255);
    sample_free(&smp);
    split_close(s);

    // The 2018 layout: seg/images/<split>/<id>.jpg + seg/labels/<split>/<id>_train_id.png.
    char old[4200];
    snprintf(old, sizeof old, "%s/seg", root);
    mkdirs("%s/images/%s", old, "train");
    mkdirs("%s/labels/%s", old, "train");
    for (int k = 0; k < 2; k++) {
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 19);
        put_jpeg(&rgb, "%s/images/train/%s.jpg", old, names[k]);
        put_png(&lab, "%s/labels/train/%s_train_id.png", old, names[k]);
        image_free(&rgb);
        image_free(&lab);
    }
    snprintf(out, sizeof out, "%s/out_old", root);
    cr_assert_eq(convert("bdd100k", old, "train", out, 1, 0, 0, NULL), 0, "%s", mv_last_error());
    check_split(out, names, ks, 2, table, 19, 1);
}

Test(convert, mapillary_palette_66_to_19) {
    init_mapillary();
    const char *root = fixture_root("mapillary");
    mkdirs("%s/validation/%s", root, "images");
    mkdirs("%s/validation/%s", root, "v1.2/labels");
    const char *names[] = {"--2x5QZ0Qv1U0aAeUmNbvA", "-0tCMCXYR7SYU9Uoe8XjFA"};
    const char *sorted[] = {"--2x5QZ0Qv1U0aAeUmNbvA", "-0tCMCXYR7SYU9Uoe8XjFA"};
    int ks[] = {0, 1};
    for (int k = 0; k < 2; k++) {
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 66);
        put_jpeg(&rgb, "%s/validation/images/%s.jpg", root, names[k]);
        put_palette(&lab, "%s/validation/v1.2/labels/%s.png", root, names[k]);
        image_free(&rgb);
        image_free(&lab);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("mapillary", root, "val", out, 2, 0, 0, NULL), 0, "%s", mv_last_error());
    check_split(out, sorted, ks, 2, MAPILLARY, 66, 1);
}

Test(convert, gtav_palette_and_label_size_mismatch) {
    const char *root = fixture_root("gtav");
    mkdirs("%s/images/%s", root, "valid");
    mkdirs("%s/labels/%s", root, "valid");
    for (int k = 0; k < 2; k++) {
        char name[16];
        snprintf(name, sizeof name, "%05d", k + 1);
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 34);
        put_png(&rgb, "%s/images/valid/%s.png", root, name);
        if (k == 1) {  // a half-size label: the converter must resize it (nearest) to the image
            mv_image half = image_alloc(H / 2, W / 2, 1);
            for (int y = 0; y < H / 2; y++)
                for (int x = 0; x < W / 2; x++) half.px[y * (W / 2) + x] = (uint8_t)src_id(k, y, x, 34);
            put_palette(&half, "%s/labels/valid/%s.png", root, name);
            image_free(&half);
        } else {
            put_palette(&lab, "%s/labels/valid/%s.png", root, name);
        }
        image_free(&rgb);
        image_free(&lab);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(convert("gtav", root, "val", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.labels_resized, 1);
    const char *names[] = {"00001"};
    int ks[] = {0};
    check_split_n(out, names, ks, 1, 2, CITY, 34, 0);  // sample 0 exactly as Cityscapes
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0);
    mv_sample smp;
    sample_alloc(&smp, H, W);
    cr_assert_eq(split_read(&smp, s, 1), 0);
    cr_assert_eq(smp.label.h, H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) cr_assert_eq(smp.label.px[y * W + x], CITY[src_id(1, y / 2, x / 2, 34)]);
    sample_free(&smp);
    split_close(s);
}

Test(convert, synthia_16bit_first_channel) {
    const char *root = fixture_root("synthia");
    mkdirs("%s/RGB/%s", root, "val");
    mkdirs("%s/GT/LABELS/%s", root, "val");
    const char *names[] = {"0000003", "0000017"};
    int ks[] = {0, 1};
    for (int k = 0; k < 2; k++) {
        mv_image rgb = fixture_rgb(k, H, W);
        put_png(&rgb, "%s/RGB/val/%s.png", root, names[k]);
        mv_image16 lab = {H, W, 3, malloc(sizeof(uint16_t) * H * W * 3)};
        for (int i = 0; i < H * W; i++) {
            lab.px[3 * i + 0] = (uint16_t)src_id(k, i / W, i % W, 23);  // class id
            lab.px[3 * i + 1] = (uint16_t)(1000 + i);                     // instance id, > 255
            lab.px[3 * i + 2] = 0;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/GT/LABELS/val/%s.png", root, names[k]);
        cr_assert_eq(image_write_png16(path, &lab), 0);
        image16_free(&lab);
        image_free(&rgb);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("synthia", root, "val", out, 2, 0, 0, NULL), 0, "%s", mv_last_error());
    check_split(out, names, ks, 2, SYNTHIA, 23, 0);
    // An 8-bit label (here trainIds, all valid SYNTHIA ids too) is refused, not mapped again.
    mv_image t = image_alloc(H, W, 1);
    for (int i = 0; i < H * W; i++) t.px[i] = (uint8_t)(i % 19);
    put_png(&t, "%s/GT/LABELS/val/%s.png", root, names[1]);
    image_free(&t);
    snprintf(out, sizeof out, "%s/out8", root);
    cr_assert_eq(convert("synthia", root, "val", out, 2, 0, 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "0000017.png") && strstr(mv_last_error(), "8-bit"), "%s", mv_last_error());
}

Test(convert, bad_inputs_error_or_skip) {
    const char *root = fixture_root("bad");
    make_cityscapes(root, 3);  // aachen 0,1,2 and bochum 3
    char path[4200], out[4200];
    // Item 1: unknown label value 40 at (y 1, x 2).
    mv_image lab = fixture_label(1, 34);
    lab.px[1 * W + 2] = 40;
    put_png(&lab, "%s/gtFine/train/%s_gtFine_labelIds.png", root, "aachen/aachen_000001_000019");
    image_free(&lab);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 0, NULL), -1);
    const char *e = mv_last_error();
    cr_assert(strstr(e, "aachen_000001_000019_gtFine_labelIds.png") && strstr(e, "value 40") && strstr(e, "y 1, x 2"),
              "%s", e);
    // Item 2: corrupt (truncated) image.
    snprintf(path, sizeof path, "%s/leftImg8bit/train/aachen/aachen_000002_000019_leftImg8bit.png", root);
    cr_assert_eq(truncate(path, 60), 0);
    // Item 3: missing label.
    snprintf(path, sizeof path, "%s/gtFine/train/bochum/bochum_000003_000019_gtFine_labelIds.png", root);
    cr_assert_eq(remove(path), 0);
    mv_convert_stats st;
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 1, 0, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.written, 1);
    cr_assert_eq(st.skipped, 3);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0);
    cr_assert_eq(m.count, 1);
    cr_assert_eq(m.n_skipped, 3);
    cr_assert(strstr(m.skipped[0], "aachen/aachen_000001_000019") && strstr(m.skipped[0], "value 40"), "%s",
              m.skipped[0]);
    cr_assert(strstr(m.skipped[1], "aachen_000002_000019_leftImg8bit.png"), "%s", m.skipped[1]);
    cr_assert(strstr(m.skipped[2], "bochum_000003_000019_gtFine_labelIds.png") && strstr(m.skipped[2], "cannot open"),
              "%s", m.skipped[2]);
    manifest_free(&m);
    // A Cityscapes image/label size mismatch is an error (only GTAV's are tolerated).
    snprintf(path, sizeof path, "%s/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png", root);
    mv_image small = image_alloc(H / 2, W, 1);
    memset(small.px, 7, (size_t)(H / 2) * W);
    cr_assert_eq(image_write_png(path, &small), 0);
    image_free(&small);
    // (--fresh: without it the finished split of the same items would be left as it is.)
    mv_convert_opts fresh = {"cityscapes", root, "train", out, 1, 0, 0, 0, 1, NULL};
    cr_assert_eq(convert_run(&st, &fresh, NULL), -1);
    cr_assert(strstr(mv_last_error(), "aachen_000000_000019") && strstr(mv_last_error(), "6x16"), "%s", mv_last_error());
    // Unknown dataset and empty split.
    cr_assert_eq(convert("kitti", root, "train", out, 1, 0, 0, NULL), -1);
    cr_assert(strstr(mv_last_error(), "kitti"), "%s", mv_last_error());
    cr_assert_eq(convert("cityscapes", root, "val", out, 1, 0, 0, NULL), -1);
    cr_assert(strstr(mv_last_error(), "leftImg8bit/val"), "%s", mv_last_error());
}

static void shard_crcs(uint32_t *crc, int *n, const char *out) {
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0, "%s", mv_last_error());
    *n = m.n_shards;
    for (int i = 0; i < m.n_shards; i++) crc[i] = m.shards[i].crc32;
    manifest_free(&m);
}

// The same input gives byte-identical shards with 1 or 3 workers, and a run that failed half
// way resumes from its complete shards to the same result.
Test(convert, workers_invariance_and_resume) {
    const char *root = fixture_root("resume");
    make_cityscapes(root, 6);  // 7 items
    char out1[4200], out3[4200], outr[4200], path[4400];
    snprintf(out1, sizeof out1, "%s/out1", root);
    snprintf(out3, sizeof out3, "%s/out3", root);
    snprintf(outr, sizeof outr, "%s/outr", root);
    cr_assert_eq(convert("cityscapes", root, "train", out1, 1, 0, 2, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(convert("cityscapes", root, "train", out3, 3, 0, 2, NULL), 0, "%s", mv_last_error());
    uint32_t c1[8], c3[8], cr[8];
    int n1, n3, nr;
    shard_crcs(c1, &n1, out1);
    shard_crcs(c3, &n3, out3);
    cr_assert_eq(n1, 4);
    cr_assert_eq(n3, 4);
    for (int i = 0; i < n1; i++) cr_assert_eq(c1[i], c3[i], "shard %d differs between 1 and 3 workers", i);

    // Item 5's label goes missing: the run stops after sealing shards 0 and 1 (items 0..3).
    char lab[4200], hidden[4300];
    snprintf(lab, sizeof lab, "%s/gtFine/train/aachen/aachen_000005_000019_gtFine_labelIds.png", root);
    snprintf(hidden, sizeof hidden, "%s.hidden", lab);
    cr_assert_eq(rename(lab, hidden), 0);
    cr_assert_eq(convert("cityscapes", root, "train", outr, 2, 0, 2, NULL), -1);
    cr_assert(strstr(mv_last_error(), "aachen_000005_000019"), "%s", mv_last_error());
    snprintf(path, sizeof path, "%s/shard-00001.h5", outr);
    cr_assert_eq(access(path, F_OK), 0, "complete shards stay");
    snprintf(path, sizeof path, "%s/shard-00002.h5", outr);
    cr_assert_neq(access(path, F_OK), 0, "the unfinished shard must not look finished");
    snprintf(path, sizeof path, "%s/manifest.json", outr);
    cr_assert_neq(access(path, F_OK), 0);
    cr_assert_eq(rename(hidden, lab), 0);
    mv_convert_stats st;
    cr_assert_eq(convert("cityscapes", root, "train", outr, 2, 0, 2, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.resumed, 4);
    cr_assert_eq(st.written, 3);
    shard_crcs(cr, &nr, outr);
    cr_assert_eq(nr, 4);
    for (int i = 0; i < nr; i++) cr_assert_eq(c1[i], cr[i], "shard %d differs after resume", i);
}

// Resume keeps shards by item position, so it must refuse when the input changed since the
// interrupted run: items that sort before the stopping point would otherwise be lost and
// others converted twice. Items added after it (or a run that only had --limit) still resume.
// One more Cityscapes train item, <city>/<city>_<seq>_000019, in a city folder of its own.
static void add_city_item(const char *root, const char *city, int seq) {
    char stem[256];
    snprintf(stem, sizeof stem, "%s/%s_%06d_000019", city, city, seq);
    mkdirs("%s/leftImg8bit/train/%s", root, city);
    mkdirs("%s/gtFine/train/%s", root, city);
    mv_image rgb = fixture_rgb(seq, H, W), l = fixture_label(seq, 34);
    put_png(&rgb, "%s/leftImg8bit/train/%s_leftImg8bit.png", root, stem);
    put_png(&l, "%s/gtFine/train/%s_gtFine_labelIds.png", root, stem);
    image_free(&rgb);
    image_free(&l);
}

Test(convert, resume_refuses_a_changed_input) {
    const char *root = fixture_root("resume_changed");
    make_cityscapes(root, 5);  // aachen 0..4, bochum 5
    char out[4200], lab[4200], hidden[4300];
    snprintf(out, sizeof out, "%s/out", root);
    // Stop at item 4 (missing label): shards 0 and 1 (aachen 0..3) are kept.
    snprintf(lab, sizeof lab, "%s/gtFine/train/aachen/aachen_000004_000019_gtFine_labelIds.png", root);
    snprintf(hidden, sizeof hidden, "%s.hidden", lab);
    cr_assert_eq(rename(lab, hidden), 0);
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 2, NULL), -1);
    cr_assert_eq(rename(hidden, lab), 0);
    // A new city that sorts first: positions 0..3 now hold other items.
    add_city_item(root, "aaa", 9);
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 2, NULL), -1, "resumed over a changed input");
    const char *e = mv_last_error();
    cr_assert(strstr(e, "aaa/aaa_000009_000019") && strstr(e, "--fresh"), "%s", e);
    // --fresh converts everything, each item once.
    mv_convert_opts o = {"cityscapes", root, "train", out, 2, 0, 2, 0, 1, NULL};
    mv_convert_stats st;
    cr_assert_eq(convert_run(&st, &o, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(st.written, 7);
    const char *names[] = {"aaa/aaa_000009_000019", "aachen/aachen_000000_000019", "aachen/aachen_000001_000019",
                           "aachen/aachen_000002_000019", "aachen/aachen_000003_000019", "aachen/aachen_000004_000019",
                           "bochum/bochum_000005_000019"};
    const int ks[] = {9, 0, 1, 2, 3, 4, 5};
    check_split(out, names, ks, 7, CITY, 34, 0);
    // The first 4 items only (2 full shards), then the rest with an unchanged input: resumes.
    o.limit = 4;
    cr_assert_eq(convert_run(&st, &o, NULL), 0, "%s", mv_last_error());
    o.fresh = 0;
    o.limit = 0;
    cr_assert_eq(convert_run(&st, &o, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(st.resumed, 4);
    cr_assert_eq(st.written, 3);
    check_split(out, names, ks, 7, CITY, 34, 0);
}


static void hide_item(const char *root, const char *stem, int hide) {
    char a[4200], b[4300];
    const char *fmt[2] = {"%s/leftImg8bit/train/%s_leftImg8bit.png", "%s/gtFine/train/%s_gtFine_labelIds.png"};
    for (int k = 0; k < 2; k++) {
        snprintf(a, sizeof a, fmt[k], root, stem);
        snprintf(b, sizeof b, "%s.hidden", a);
        cr_assert_eq(hide ? rename(a, b) : rename(b, a), 0, "%s", a);
    }
}

// A re-run that refuses to resume over an unfinished split (the input shrank, or an item its
// complete shards hold was removed) stops before touching anything: the partial last shard and
// the temporaries a crashed run left stay, byte for byte, as they were.
Test(convert, refused_resume_leaves_the_folder_as_it_was) {
    const char *root = fixture_root("resume_refused");
    make_cityscapes(root, 9);  // 10 items: aachen 0..8, bochum 9
    char out[4200], path[4400];
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 4, NULL), 0, "%s", mv_last_error());
    // A run that died after sealing its last (partial) shard, before the manifest, and left a temporary.
    unfinish_split(out);
    static char before[8192], after[8192];
    folder_state(before, sizeof before, out);

    mv_convert_opts o = {"cityscapes", root, "train", out, 2, 0, 4, 3, 0, NULL};  // --limit 3
    mv_convert_stats st;
    cr_assert_eq(convert_run(&st, &o, NULL), -1, "resumed over fewer items than the complete shards hold");
    folder_state(after, sizeof after, out);
    cr_assert_str_eq(after, before, "a refused resume changed the folder");
    cr_assert(strstr(mv_last_error(), "--fresh") && strstr(mv_last_error(), "--limit"), "%s", mv_last_error());

    hide_item(root, "aachen/aachen_000002_000019", 1);  // an item the complete shards hold
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 4, NULL), -1, "resumed over a removed item");
    folder_state(after, sizeof after, out);
    cr_assert_str_eq(after, before, "a refused resume changed the folder");
    cr_assert(strstr(mv_last_error(), "aachen/aachen_000002_000019") && strstr(mv_last_error(), "--fresh"), "%s",
              mv_last_error());
    hide_item(root, "aachen/aachen_000002_000019", 0);

    // With the input as it was, the same folder resumes and completes.
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 4, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.resumed, 8);
    cr_assert_eq(st.written, 2);
    cr_assert_neq(access(path, F_OK), 0, "the temporary is cleared once the resume is accepted");
    const char *names[10];
    char buf[10][64];
    int ks[10];
    for (int k = 0; k < 10; k++) {
        snprintf(buf[k], sizeof buf[k], k < 9 ? "aachen/aachen_%06d_000019" : "bochum/bochum_%06d_000019", k);
        names[k] = buf[k];
        ks[k] = k;
    }
    check_split(out, names, ks, 10, CITY, 34, 0);
}

// A finished split (its manifest written) re-run without --fresh: with the same input it is left
// as it is; with an input that lacks any of its items (--limit, an item removed, whether the
// split has complete shards or only a partial one) it is refused and left as it is; with items
// added after its end it is extended.
Test(convert, finished_split_rerun) {
    const char *root = fixture_root("finished_rerun");
    make_cityscapes(root, 9);  // 10 items
    static char before[8192], after[8192];
    for (int per_shard = 4; per_shard <= 64; per_shard += 60) {  // 2 full shards + 1 partial; 1 partial shard
        char out[4200];
        snprintf(out, sizeof out, "%s/out%d", root, per_shard);
        mv_convert_stats st;
        cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, per_shard, &st), 0, "%s", mv_last_error());
        cr_assert_eq(st.written, 10);
        folder_state(before, sizeof before, out);

        cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, per_shard, &st), 0, "%s", mv_last_error());
        cr_assert_eq(st.written, 0, "a finished split was converted again");
        cr_assert_eq(st.resumed, 10);
        folder_state(after, sizeof after, out);
        cr_assert_str_eq(after, before, "a finished split re-run with the same input was rewritten");

        mv_convert_opts o = {"cityscapes", root, "train", out, 2, 0, per_shard, 3, 0, NULL};  // --limit 3
        cr_assert_eq(convert_run(&st, &o, NULL), -1, "a finished split of 10 items rewritten to 3");
        cr_assert(strstr(mv_last_error(), "aachen/aachen_000003_000019") && strstr(mv_last_error(), "--fresh"), "%s",
                  mv_last_error());
        folder_state(after, sizeof after, out);
        cr_assert_str_eq(after, before, "a refused re-run changed the folder");

        hide_item(root, "aachen/aachen_000008_000019", 1);  // in the partial last shard
        cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, per_shard, NULL), -1, "an item removed unnoticed");
        cr_assert(strstr(mv_last_error(), "aachen/aachen_000008_000019") && strstr(mv_last_error(), "--fresh"), "%s",
                  mv_last_error());
        cr_assert(!strstr(mv_last_error(), "folder meant"), "the same split blamed on --out: %s", mv_last_error());
        folder_state(after, sizeof after, out);
        cr_assert_str_eq(after, before, "a refused re-run changed the folder");
        hide_item(root, "aachen/aachen_000008_000019", 0);
        check_split_n(out, NULL, NULL, 0, 10, CITY, 34, 0);
    }
    // An item added after the end (a city sorting last) extends the finished split.
    add_city_item(root, "zurich", 10);
    char out[4200];
    snprintf(out, sizeof out, "%s/out4", root);
    mv_convert_stats st;
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 0, 4, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.resumed, 8);
    cr_assert_eq(st.written, 3);
    const char *names[11];
    char buf[11][64];
    int ks[11];
    for (int k = 0; k < 11; k++) {
        snprintf(buf[k], sizeof buf[k],
                 k < 9 ? "aachen/aachen_%06d_000019" : k < 10 ? "bochum/bochum_%06d_000019" : "zurich/zurich_%06d_000019",
                 k);
        names[k] = buf[k];
        ks[k] = k;
    }
    check_split(out, names, ks, 11, CITY, 34, 0);
}

// GTAV's label palette has an index 34 beyond Cityscapes' ids 0..33 (other GTAV loaders map it to
// ignore, as license plates): it must convert to 255, not stop the conversion. Larger indices map
// to 255 too, as HGFormer's prepare_gta_sem_seg.py does ("everything else 255"; docs/data.md,
// GTAV), and are counted in the summary (34 is not: it is a known GTAV index).
Test(convert, gtav_index_34_is_ignored) {
    const char *root = fixture_root("gtav34");
    mkdirs("%s/images/%s", root, "train");
    mkdirs("%s/labels/%s", root, "train");
    mv_image rgb = fixture_rgb(0, H, W), lab = fixture_label(0, 35);  // ids 0..34 all appear
    put_png(&rgb, "%s/images/train/%s.png", root, "00001");
    put_palette(&lab, "%s/labels/train/%s.png", root, "00001");
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(convert("gtav", root, "train", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    int table[35];
    for (int i = 0; i < 34; i++) table[i] = CITY[i];
    table[34] = 255;
    const char *names[] = {"00001"};
    int ks[] = {0};
    check_split(out, names, ks, 1, table, 35, 0);
    cr_assert_eq(st.labels_unlisted, 0, "index 34 is a known GTAV index");
    // 35, 200 and 255 (past the 35-entry palette) in a second label: 255, counted once per label.
    put_png(&rgb, "%s/images/train/%s.png", root, "00002");
    const int unlisted[3][2] = {{5, 35}, {17, 200}, {40, 255}};
    for (int k = 0; k < 3; k++) lab.px[unlisted[k][0]] = (uint8_t)unlisted[k][1];
    put_palette(&lab, "%s/labels/train/%s.png", root, "00002");
    cr_assert_eq(convert("gtav", root, "train", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    cr_assert(st.written + st.resumed == 2 && st.labels_unlisted == 1, "%lld + %lld, %lld", (long long)st.written,
              (long long)st.resumed, (long long)st.labels_unlisted);
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, H, W);
    cr_assert_eq(split_read(&smp, s, 1), 0, "%s", mv_last_error());
    for (int i = 0; i < H * W; i++) {
        int want = table[src_id(0, i / W, i % W, 35)];
        for (int k = 0; k < 3; k++)
            if (i == unlisted[k][0]) want = 255;
        cr_assert_eq(smp.label.px[i], want, "pixel %d: got %d want %d", i, smp.label.px[i], want);
    }
    sample_free(&smp);
    split_close(s);
    image_free(&rgb);
    image_free(&lab);
}

// Labels already converted to train ids (HGFormer's labels_detectron2) given as GTAV's labels:
// every value 0..18 or 255. They are refused by name, not mapped a second time (road 0 -> 255,
// 8 -> 1, ...). The same values without a 255 are a plausible raw frame and convert.
Test(convert, gtav_train_id_labels_are_refused) {
    const char *root = fixture_root("gtav_trainids");
    mkdirs("%s/images/%s", root, "train");
    mkdirs("%s/labels/%s", root, "train");
    mv_image rgb = fixture_rgb(0, H, W), lab = fixture_label(0, 19);   // train ids 0..18
    lab.px[3] = 255;
    put_png(&rgb, "%s/images/train/%s.png", root, "00001");
    put_palette(&lab, "%s/labels/train/%s.png", root, "00001");
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_lt(convert("gtav", root, "train", out, 1, 0, 0, &st), 0);
    cr_expect(strstr(mv_last_error(), "labels/train/00001.png") && strstr(mv_last_error(), "train ids"), "%s",
              mv_last_error());
    lab.px[3] = 7;   // no 255: ids 0..18 only, as a raw frame of road, walls and poles could be
    put_palette(&lab, "%s/labels/train/%s.png", root, "00001");
    cr_assert_eq(convert("gtav", root, "train", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    image_free(&rgb);
    image_free(&lab);
}

static void put_list(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

// A raw GTAV download (images/NNNNN.png, labels/NNNNN.png, no split folders) converts with a
// split list (--list): the listed names only, in name order, as from the split folders. Lists
// with CRLF line ends, blank lines and spaces read; bad lines and datasets are refused.
Test(convert, gtav_raw_download_with_split_list) {
    const char *root = fixture_root("gtav_list");
    mkdirs("%s/%s", root, "images");
    mkdirs("%s/%s", root, "labels");
    const char *all[4] = {"00001", "00002", "00003", "00004"};
    for (int k = 0; k < 4; k++) {
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 35);
        put_png(&rgb, "%s/images/%s.png", root, all[k]);
        put_palette(&lab, "%s/labels/%s.png", root, all[k]);
        image_free(&rgb);
        image_free(&lab);
    }
    char list[4200], out[4200];
    snprintf(list, sizeof list, "%s/gtav_split_val.txt", root);
    snprintf(out, sizeof out, "%s/out", root);
    put_list(list, "00004.png\r\n\n  00002.png  \n");
    mv_convert_opts o = {.dataset = "gtav", .root = root, .split = "val", .out = out, .workers = 2, .list_file = list};
    mv_convert_stats st;
    cr_assert_eq(convert_run(&st, &o, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(st.items, 2);
    int table[35];
    for (int i = 0; i < 34; i++) table[i] = CITY[i];
    table[34] = 255;
    const char *names[] = {"00002", "00004"};
    int ks[] = {1, 3};
    check_split(out, names, ks, 2, table, 35, 0);

    o.fresh = 1;
    put_list(list, "00001.png\nsub/00002.png\n");
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_assert(strstr(mv_last_error(), "gtav_split_val.txt:2") && strstr(mv_last_error(), "sub/00002.png"), "%s",
              mv_last_error());
    put_list(list, "00003.png\n00001.png\n00003.png\n");
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_assert(strstr(mv_last_error(), "gtav_split_val.txt:3: 00003 is listed again (first on line 1)"), "%s",
              mv_last_error());
    put_list(list, "00001.png\n");
    o.dataset = "cityscapes";
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_assert(strstr(mv_last_error(), "not published as one flat folder"), "%s", mv_last_error());
    o.dataset = "synthia";   // a GTAV root has no RGB folder
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_assert(strstr(mv_last_error(), "no folder RGB"), "%s", mv_last_error());
    o.dataset = "gtav";
    o.list_file = "/nonexistent/list.txt";
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_assert(strstr(mv_last_error(), "/nonexistent/list.txt"), "%s", mv_last_error());
}

// Some circulated GTAV copies lack a few dozen ids that RobustNet's lists name (24941 pairs instead
// of 24966; docs/data.md, GTAV). With --list, a
// listed name whose image and label are both absent is skipped and listed in the manifest, without
// --skip-bad; a half-present pair is still an error, and a list of which nothing exists (wrong
// --root) is refused.
Test(convert, gtav_list_tolerates_ids_absent_from_the_download) {
    const char *root = fixture_root("gtav_absent");
    mkdirs("%s/%s", root, "images");
    mkdirs("%s/%s", root, "labels");
    const char *have[3] = {"02153", "02159", "04633"};
    for (int k = 0; k < 3; k++) {
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 35);
        put_png(&rgb, "%s/images/%s.png", root, have[k]);
        put_palette(&lab, "%s/labels/%s.png", root, have[k]);
        image_free(&rgb);
        image_free(&lab);
    }
    char list[4200], out[4200];
    snprintf(list, sizeof list, "%s/gtav_split_train.txt", root);
    snprintf(out, sizeof out, "%s/out", root);
    put_list(list, "02153.png\n02154.png\n02155.png\n02159.png\n04633.png\n04634.png\n");
    mv_convert_opts o = {.dataset = "gtav", .root = root, .split = "train", .out = out, .workers = 2, .list_file = list};
    mv_convert_stats st;
    cr_assert_eq(convert_run(&st, &o, NULL), 0, "%s", mv_last_error());
    cr_assert(st.items == 6 && st.written == 3 && st.skipped == 3 && st.absent == 3, "%lld %lld %lld %lld",
              (long long)st.items, (long long)st.written, (long long)st.skipped, (long long)st.absent);
    int table[35];
    for (int i = 0; i < 34; i++) table[i] = CITY[i];
    table[34] = 255;
    int ks[] = {0, 1, 2};
    check_split(out, have, ks, 3, table, 35, 0);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0, "%s", mv_last_error());
    cr_assert_eq(m.n_skipped, 3);
    cr_assert(strstr(m.skipped[0], "02154") && strstr(m.skipped[0], "not in this copy"), "%s", m.skipped[0]);
    const char *list_rec = manifest_source(&m, "list");   // recorded as an absolute path
    cr_assert(list_rec && list_rec[0] == '/' && strstr(list_rec, ".txt"), "%s", list_rec ? list_rec : "(none)");
    manifest_free(&m);
    // An image without its label is still an error (unless --skip-bad).
    mv_image rgb = fixture_rgb(0, H, W);
    put_png(&rgb, "%s/images/%s.png", root, "02154");
    image_free(&rgb);
    o.fresh = 1;
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_assert(strstr(mv_last_error(), "labels/02154.png"), "%s", mv_last_error());
    // Nothing listed exists: the wrong folder, refused.
    put_list(list, "12345.png\n12346.png\n");
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_assert(strstr(mv_last_error(), "no file that ") && strstr(mv_last_error(), " lists (2 listed) is in "), "%s", mv_last_error());
}

// SYNTHIA has no known incomplete copies: a listed frame missing from the download (an
// interrupted extraction) is an error naming it, not a silently smaller split; --skip-bad skips
// and lists it.
Test(convert, synthia_list_refuses_a_missing_frame) {
    const char *root = fixture_root("synthia_absent");
    mkdirs("%s/%s", root, "RGB");
    mkdirs("%s/%s", root, "GT/LABELS");
    mv_image rgb = fixture_rgb(0, H, W);
    put_png(&rgb, "%s/RGB/%s.png", root, "0000001");
    image_free(&rgb);
    mv_image16 lab = {H, W, 3, calloc((size_t)H * W * 3, sizeof(uint16_t))};
    char path[4200];
    snprintf(path, sizeof path, "%s/GT/LABELS/0000001.png", root);
    cr_assert_eq(image_write_png16(path, &lab), 0, "%s", mv_last_error());
    image16_free(&lab);
    char list[4200], out[4200];
    snprintf(list, sizeof list, "%s/synthia_split_val.txt", root);
    snprintf(out, sizeof out, "%s/out", root);
    put_list(list, "0000001.png\n0000003.png\n");
    mv_convert_opts o = {.dataset = "synthia", .root = root, .split = "val", .out = out, .workers = 1, .list_file = list};
    mv_convert_stats st;
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_expect(strstr(mv_last_error(), "0000003"), "%s", mv_last_error());
    o.skip_bad = 1;
    cr_assert_eq(convert_run(&st, &o, NULL), 0, "%s", mv_last_error());
    cr_expect(st.written == 1 && st.skipped == 1 && st.absent == 0, "%lld %lld %lld", (long long)st.written,
              (long long)st.skipped, (long long)st.absent);
}

// GTAV labels whose size differs from their image are resized as HGFormer's resize_img.py does it:
// cv2.resize(..., INTER_NEAREST), source index floor(i * src / dst) with no half-pixel offset
// (Pillow's NEAREST, floor((i + 0.5) * src / dst), picks other rows: on a 2x reduction the odd
// ones instead of the even ones). Checked on a reduction by 2 and a non-integer enlargement.
Test(convert, gtav_label_resize_is_opencv_nearest) {
    const char *root = fixture_root("gtav_resize");
    mkdirs("%s/images/%s", root, "valid");
    mkdirs("%s/labels/%s", root, "valid");
    const int lh[2] = {2 * H, 7}, lw[2] = {2 * W, 10};
    const char *names[2] = {"00007", "00008"};
    for (int k = 0; k < 2; k++) {
        mv_image rgb = fixture_rgb(k, H, W), lab = image_alloc(lh[k], lw[k], 1);
        for (int i = 0; i < lh[k] * lw[k]; i++) lab.px[i] = (uint8_t)((i + 3 * k) % 35);
        put_png(&rgb, "%s/images/valid/%s.png", root, names[k]);
        put_palette(&lab, "%s/labels/valid/%s.png", root, names[k]);
        image_free(&rgb);
        image_free(&lab);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(convert("gtav", root, "valid", out, 1, 0, 0, &st), 0, "%s", mv_last_error());
    cr_assert_eq(st.labels_resized, 2);
    int table[35];
    for (int i = 0; i < 34; i++) table[i] = CITY[i];
    table[34] = 255;
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0, "%s", mv_last_error());
    cr_assert_eq(split_verify(s, NULL), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, H, W);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(split_read(&smp, s, k), 0, "%s", mv_last_error());
        cr_assert_str_eq(smp.name, names[k]);
        cr_assert(smp.label.h == H && smp.label.w == W);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int sy = y * lh[k] / H, sx = x * lw[k] / W;  // exact floor(i * src / dst)
                int want = table[(sy * lw[k] + sx + 3 * k) % 35];
                cr_assert_eq(smp.label.px[y * W + x], want, "%s (%d,%d): got %d want %d (source %d,%d)", names[k], y,
                             x, smp.label.px[y * W + x], want, sy, sx);
            }
    }
    sample_free(&smp);
    split_close(s);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0);
    cr_assert_str_eq(m.domain, "gtav");
    cr_assert_str_eq(m.label_map, "gtav-labelid-to-trainid/v3");
    manifest_free(&m);
}

// GTAV and SYNTHIA ship unsplit (images/NNNNN.png, RGB/NNNNNNN.png); the converters read the
// RobustNet split folders and say so, instead of a bare "cannot list folder".
Test(convert, gtav_synthia_unsplit_download_refused_with_layout) {
    const char *root = fixture_root("unsplit");
    mkdirs("%s/images%s", root, "");
    mkdirs("%s/labels%s", root, "");
    mkdirs("%s/RGB%s", root, "");
    mkdirs("%s/GT/LABELS%s", root, "");
    mv_image rgb = fixture_rgb(0, H, W), lab = fixture_label(0, 34);
    put_png(&rgb, "%s/images/%s.png", root, "00001");
    put_palette(&lab, "%s/labels/%s.png", root, "00001");
    put_png(&rgb, "%s/RGB/%s.png", root, "0000000");
    image_free(&rgb);
    image_free(&lab);
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("gtav", root, "train", out, 1, 0, 0, NULL), -1);
    const char *e = mv_last_error();
    cr_assert(strstr(e, "images/train") && strstr(e, "gtav_split_"), "%s", e);
    cr_assert_eq(convert("synthia", root, "val", out, 1, 0, 0, NULL), -1);
    e = mv_last_error();
    cr_assert(strstr(e, "RGB/val") && strstr(e, "synthia_split_"), "%s", e);
}

// Mapillary's v1.2-only release keeps labels in <split>/labels (RobustNet, HGFormer); the
// combined release in <split>/v1.2/labels, which wins when both exist. v2.0 labels (124 classes)
// alone are refused, never mapped with the 66-class table.
Test(convert, mapillary_v12_release_layout_and_v20_refused) {
    init_mapillary();
    const char *root = fixture_root("mapillary_v12");
    mkdirs("%s/training/%s", root, "images");
    mkdirs("%s/training/%s", root, "labels");
    mkdirs("%s/training/%s", root, "instances");
    const char *names[] = {"AbCdEfGhIjKlMnOpQrStUv", "_zYxWvUtSrQpOnMlKjIhGf"};
    int ks[] = {0, 1};
    for (int k = 0; k < 2; k++) {
        mv_image rgb = fixture_rgb(k, H, W), lab = fixture_label(k, 66);
        put_jpeg(&rgb, "%s/training/images/%s.jpg", root, names[k]);
        put_palette(&lab, "%s/training/labels/%s.png", root, names[k]);
        put_png(&lab, "%s/training/instances/%s.png", root, names[k]);
        image_free(&rgb);
        image_free(&lab);
    }
    put_text("%s/%s", root, "config.json");
    put_text("%s/training/images/%s", root, "Thumbs.db");
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("mapillary", root, "train", out, 1, 0, 0, NULL), 0, "%s", mv_last_error());
    check_split(out, names, ks, 2, MAPILLARY, 66, 1);
    // v1.2/labels, when present, is the one read (here: every label 13 Road -> 0).
    mkdirs("%s/training/%s", root, "v1.2/labels");
    mv_image road = image_alloc(H, W, 1);
    memset(road.px, 13, H * W);
    for (int k = 0; k < 2; k++) put_palette(&road, "%s/training/v1.2/labels/%s.png", root, names[k]);
    image_free(&road);
    snprintf(out, sizeof out, "%s/out12", root);
    // ... and the conversion says so, naming the folder it does not read.
    char errpath[4300], said[8192] = "";
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", root);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *ef = fopen(errpath, "w+");
    cr_assert(saved >= 0 && ef);
    dup2(fileno(ef), STDERR_FILENO);
    int crc = convert("mapillary", root, "training", out, 1, 0, 0, NULL);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(ef);
    size_t got = fread(said, 1, sizeof said - 1, ef);
    said[got] = 0;
    fclose(ef);
    cr_assert_eq(crc, 0, "%s", mv_last_error());
    cr_assert(strstr(said, "labels from training/v1.2/labels") && strstr(said, "training/labels is also there"), "%s",
              said);
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0);
    mv_sample smp;
    sample_alloc(&smp, H, W);
    cr_assert_eq(split_read(&smp, s, 1), 0);
    for (int i = 0; i < H * W; i++) cr_assert_eq(smp.label.px[i], 0);
    sample_free(&smp);
    split_close(s);
    // v2.0 only: refused, saying that v2.0 is there but only v1.2's labels are read.
    const char *root2 = fixture_root("mapillary_v20");
    mkdirs("%s/validation/%s", root2, "images");
    mkdirs("%s/validation/%s", root2, "v2.0/labels");
    mv_image rgb = fixture_rgb(0, H, W), lab = fixture_label(0, 124);
    put_jpeg(&rgb, "%s/validation/images/%s.jpg", root2, names[0]);
    put_palette(&lab, "%s/validation/v2.0/labels/%s.png", root2, names[0]);
    image_free(&rgb);
    image_free(&lab);
    snprintf(out, sizeof out, "%s/out", root2);
    cr_assert_eq(convert("mapillary", root2, "val", out, 1, 0, 0, NULL), -1);
    cr_assert(strstr(mv_last_error(), "only validation/v2.0/labels exists") &&
                  strstr(mv_last_error(), "124-class") && strstr(mv_last_error(), "validation/v1.2/labels"),
              "%s", mv_last_error());
}

// BDD100K masks are train ids already: 0..18 and 255 pass unchanged (checked above), anything
// else is refused by name and pixel; an image without a mask (the pre-2021 10k image zip has a
// few, bdd100k issue #103) is refused by its mask's path, or skipped and listed with --skip-bad.
Test(convert, bdd100k_bad_values_and_missing_masks) {
    const char *root = fixture_root("bdd_bad");
    mkdirs("%s/images/10k/%s", root, "train");
    mkdirs("%s/labels/sem_seg/masks/%s", root, "train");
    const char *names[] = {"0a0a0b1a-7c39d841", "0a0b16e2-93f8c456", "3d581db5-2564fb7e"};
    for (int k = 0; k < 3; k++) {
        mv_image rgb = fixture_rgb(k, H, W);
        put_jpeg(&rgb, "%s/images/10k/train/%s.jpg", root, names[k]);
        image_free(&rgb);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    const int bad[] = {19, 254};
    for (int b = 0; b < 2; b++) {
        for (int k = 0; k < 2; k++) {
            mv_image lab = fixture_label(k, 19);
            if (k == 1) lab.px[3 * W + 4] = (uint8_t)bad[b];
            put_png(&lab, "%s/labels/sem_seg/masks/train/%s.png", root, names[k]);
            image_free(&lab);
        }
        cr_assert_eq(convert("bdd100k", root, "train", out, 1, 0, 0, NULL), -1);
        const char *e = mv_last_error();
        char want[32];
        snprintf(want, sizeof want, "value %d", bad[b]);
        cr_assert(strstr(e, "masks/train/0a0b16e2-93f8c456.png") && strstr(e, want) && strstr(e, "y 3, x 4"), "%s", e);
    }
    mv_image lab = fixture_label(1, 19);
    put_png(&lab, "%s/labels/sem_seg/masks/train/%s.png", root, names[1]);
    image_free(&lab);
    cr_assert_eq(convert("bdd100k", root, "train", out, 1, 0, 0, NULL), -1);
    cr_assert(strstr(mv_last_error(), "masks/train/3d581db5-2564fb7e.png"), "%s", mv_last_error());
    mv_convert_stats st;
    cr_assert_eq(convert("bdd100k", root, "train", out, 1, 1, 0, &st), 0, "%s", mv_last_error());
    cr_assert(st.written == 2 && st.skipped == 1);
}

// SYNTHIA labels with an alpha channel (16-bit RGBA) still take the class from channel 0. Ids
// beyond 22 (also 255, and values whose high byte is set, compared whole as HGFormer does) map to
// 255 as RobustNet's and HGFormer's tables do (docs/data.md, SYNTHIA),
// counted in the summary; a label of another size is refused.
Test(convert, synthia_rgba16_and_bad_labels) {
    const char *root = fixture_root("synthia_bad");
    mkdirs("%s/RGB/%s", root, "train");
    mkdirs("%s/GT/LABELS/%s", root, "train");
    mv_image rgb = fixture_rgb(0, H, W);
    put_png(&rgb, "%s/RGB/train/%s.png", root, "0000042");
    image_free(&rgb);
    char path[4200], out[4200];
    snprintf(path, sizeof path, "%s/GT/LABELS/train/0000042.png", root);
    snprintf(out, sizeof out, "%s/out", root);
    const int bad[] = {-1, 23, 255, 0x0103, 0xFFFF};
    for (int b = 0; b < 5; b++) {
        mv_image16 lab = {H, W, 4, malloc(sizeof(uint16_t) * H * W * 4)};
        for (int i = 0; i < H * W; i++) {
            lab.px[4 * i + 0] = (uint16_t)src_id(0, i / W, i % W, 23);
            lab.px[4 * i + 1] = (uint16_t)(7 + i);
            lab.px[4 * i + 2] = 0;
            lab.px[4 * i + 3] = 65535;
        }
        if (bad[b] >= 0) lab.px[4 * (5 * W + 6)] = (uint16_t)bad[b];
        cr_assert_eq(image_write_png16(path, &lab), 0);
        image16_free(&lab);
        mv_convert_opts o = {"synthia", root, "train", out, 1, 0, 0, 0, 1, NULL};  // --fresh
        mv_convert_stats st;
        cr_assert_eq(convert_run(&st, &o, NULL), 0, "value %d: %s", bad[b], mv_last_error());
        cr_assert_eq(st.labels_unlisted, bad[b] < 0 ? 0 : 1, "value %d", bad[b]);
        int table[23];
        memcpy(table, SYNTHIA, sizeof table);
        mv_split *s;
        cr_assert_eq(split_open(&s, out), 0, "%s", mv_last_error());
        mv_sample smp;
        sample_alloc(&smp, H, W);
        cr_assert_eq(split_read(&smp, s, 0), 0, "%s", mv_last_error());
        for (int i = 0; i < H * W; i++) {
            int want = i == 5 * W + 6 && bad[b] >= 0 ? 255 : table[src_id(0, i / W, i % W, 23)];
            cr_assert_eq(smp.label.px[i], want, "value %d, pixel %d: got %d", bad[b], i, smp.label.px[i]);
        }
        sample_free(&smp);
        split_close(s);
    }
    mv_image16 small = {H / 2, W, 3, calloc((size_t)(H / 2) * W * 3, sizeof(uint16_t))};
    cr_assert_eq(image_write_png16(path, &small), 0);
    image16_free(&small);
    mv_convert_opts fresh = {"synthia", root, "train", out, 1, 0, 0, 0, 1, NULL};  // a finished split: --fresh
    mv_convert_stats st;
    cr_assert_eq(convert_run(&st, &fresh, NULL), -1);
    cr_assert(strstr(mv_last_error(), "0000042.png") && strstr(mv_last_error(), "6x16"), "%s", mv_last_error());
}

// A sample name longer than the shards' name field is refused by file, never cut short (two long
// names sharing their first 255 characters would otherwise become the same sample name).
Test(convert, long_sample_name_refused_not_truncated) {
    const char *root = fixture_root("longname");
    char city[201], stem[600];
    memset(city, 'c', 200);
    city[200] = 0;
    snprintf(stem, sizeof stem, "%s/%s_000000_000019", city, city);
    mkdirs("%s/leftImg8bit/val/%s", root, city);
    mkdirs("%s/gtFine/val/%s", root, city);
    mv_image rgb = fixture_rgb(0, H, W), lab = fixture_label(0, 34);
    put_png(&rgb, "%s/leftImg8bit/val/%s_leftImg8bit.png", root, stem);
    put_png(&lab, "%s/gtFine/val/%s_gtFine_labelIds.png", root, stem);
    image_free(&rgb);
    image_free(&lab);
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(convert("cityscapes", root, "val", out, 1, 0, 0, NULL), -1);
    cr_assert(strstr(mv_last_error(), "_leftImg8bit.png") && strstr(mv_last_error(), "too long"), "%s",
              mv_last_error());
}

// A root whose label tree is missing (gtFine/<split> not unpacked, GTAV's labels/ not
// downloaded) is refused naming that folder. It used to fail on item 0 alone, and with
// --skip-bad every item was skipped: "converted ... 0 samples written", status 0, and a split of
// no samples that no loader opens. Every item bad for any reason is an error too.
Test(convert, missing_label_tree_refused_and_all_skipped_is_an_error) {
    const char *root = fixture_root("no_labels");
    make_cityscapes(root, 2);
    char cmd[8400], out[4200], list[4200];
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(cmd, sizeof cmd, "mv '%s/gtFine' '%s/gtFine.away'", root, root);
    cr_assert_eq(system(cmd), 0);
    for (int skip = 0; skip <= 1; skip++) {
        cr_assert_eq(convert("cityscapes", root, "train", out, 2, skip, 0, NULL), -1, "skip-bad %d", skip);
        cr_expect(strstr(mv_last_error(), "no folder gtFine/train"), "%s", mv_last_error());
        cr_expect(access(out, F_OK) != 0, "the refused conversion created %s", out);
    }
    // Label folders present but every label missing: each item is bad; with --skip-bad nothing
    // is left to write, an error naming the first item and no manifest (an unfinished split).
    mkdirs("%s/gtFine/train/%s", root, "aachen");
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 1, 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "all 3 items were bad") && strstr(mv_last_error(), "aachen_000000_000019"), "%s",
              mv_last_error());
    snprintf(cmd, sizeof cmd, "%s/manifest.json", out);
    cr_expect(access(cmd, F_OK) != 0, "a manifest of an empty split was written");
    // One good item is enough: the others are skipped as before.
    snprintf(cmd, sizeof cmd,
             "cp '%s/gtFine.away/train/aachen/aachen_000001_000019_gtFine_labelIds.png' '%s/gtFine/train/aachen/'", root,
             root);
    cr_assert_eq(system(cmd), 0);
    mv_convert_stats st;
    cr_assert_eq(convert("cityscapes", root, "train", out, 2, 1, 0, &st), 0, "%s", mv_last_error());
    cr_expect(st.written == 1 && st.skipped == 2, "%lld %lld", (long long)st.written, (long long)st.skipped);
    // GTAV, split folders and the raw download with --list: labels/ missing is named.
    mkdirs("%s/gtav/images/%s", root, "valid");
    mv_image rgb = fixture_rgb(0, H, W);
    put_png(&rgb, "%s/gtav/images/valid/%s.png", root, "00001");
    put_png(&rgb, "%s/gtav/images/%s.png", root, "00002");
    image_free(&rgb);
    snprintf(cmd, sizeof cmd, "%s/gtav", root);
    cr_assert_eq(convert("gtav", cmd, "val", out, 1, 1, 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "no folder labels/valid"), "%s", mv_last_error());
    snprintf(list, sizeof list, "%s/list.txt", root);
    FILE *f = fopen(list, "w");
    cr_assert(f);
    fputs("00002.png\n", f);
    fclose(f);
    mv_convert_opts o = {.dataset = "gtav", .root = cmd, .split = "val", .out = out, .workers = 1, .skip_bad = 1,
                         .list_file = list, .fresh = 1};
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    cr_expect(strstr(mv_last_error(), "no folder labels"), "%s", mv_last_error());
}
