// Dataset converters and partner files: a label whose image is missing (an incomplete download
// or extraction) must stop the conversion naming both files, or be skipped and listed with
// --skip-bad, in every dataset's layout; it used to vanish from the split without a word. Also
// a JPEG whose EXIF orientation turns it by 90 degrees, with its label drawn in the upright frame,
// the validation folder's two names (val, valid), a split list with a byte order mark, and image
// extensions in capitals.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "core/error.h"
#include "data/convert.h"
#include "data/image_io.h"
#include "data/manifest.h"
#include "data/shard.h"

#define H 12
#define W 16

static char g_root[4096];

static const char *fixture_root(const char *name) {
    const char *base = getenv("MV_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    snprintf(g_root, sizeof g_root, "%s/test_convert_partners/%s", base, name);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_root, g_root);
    cr_assert_eq(system(cmd), 0);
    return g_root;
}

static void mkdirs(const char *root, const char *sub) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s'", root, sub);
    cr_assert_eq(system(cmd), 0);
}

static mv_image pattern_rgb(int k, int h, int w) {
    mv_image img = image_alloc(h, w, 3);
    for (int i = 0; i < h * w; i++) {
        img.px[3 * i] = (uint8_t)(40 + 8 * (i % w) + k);
        img.px[3 * i + 1] = (uint8_t)(30 + 10 * (i / w));
        img.px[3 * i + 2] = (uint8_t)(100 + 5 * k);
    }
    return img;
}

// Writes an image (PNG, or JPEG when the path ends in .jpg) at root/rel.
static void put_image(const char *root, const char *rel, int k) {
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    mv_image img = pattern_rgb(k, H, W);
    size_t l = strlen(path);
    int rc = l > 4 && !strcasecmp(path + l - 4, ".jpg") ? image_write_jpeg(path, &img, 95) : image_write_png(path, &img);
    cr_assert_eq(rc, 0, "%s", mv_last_error());
    image_free(&img);
}

// A label of valid ids for every dataset (value v everywhere): gray, or 16-bit RGB for SYNTHIA.
static void put_label(const char *root, const char *rel, int v, int synthia) {
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (synthia) {
        mv_image16 lab = {H, W, 3, calloc((size_t)H * W * 3, sizeof(uint16_t))};
        for (int i = 0; i < H * W; i++) lab.px[3 * i] = (uint16_t)v;
        cr_assert_eq(image_write_png16(path, &lab), 0, "%s", mv_last_error());
        image16_free(&lab);
        return;
    }
    mv_image lab = image_alloc(H, W, 1);
    memset(lab.px, v, (size_t)H * W);
    cr_assert_eq(image_write_png(path, &lab), 0, "%s", mv_last_error());
    image_free(&lab);
}

static int run(const char *dataset, const char *root, const char *split, const char *out, int skip_bad,
               mv_convert_stats *st) {
    mv_convert_opts o = {.dataset = dataset, .root = root, .split = split, .out = out, .workers = 2,
                         .skip_bad = skip_bad, .fresh = 1};
    return convert_run(st, &o, NULL);
}

// One dataset's layout: images `a`, `c` with labels, and the label of `b` without its image.
// Without --skip-bad: an error naming b's label and its missing image. With it: a and c written,
// b skipped and listed, the split in name order.
typedef struct {
    const char *dataset, *split, *idir, *img_ext, *ldir, *label_suffix;
    int label_value, synthia;
} layout;

static void check_orphan(const layout *L, const char *root, const char *const stems[3]) {
    mkdirs(root, L->idir);
    mkdirs(root, L->ldir);
    char rel[1024];
    for (int k = 0; k < 3; k++) {
        if (k != 1) {
            snprintf(rel, sizeof rel, "%s/%s%s", L->idir, stems[k], L->img_ext);
            put_image(root, rel, k);
        }
        snprintf(rel, sizeof rel, "%s/%s%s", L->ldir, stems[k], L->label_suffix);
        put_label(root, rel, L->label_value, L->synthia);
    }
    char out[4200], want_label[1200], want_image[1200];
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(want_label, sizeof want_label, "%s/%s%s", L->ldir, stems[1], L->label_suffix);
    snprintf(want_image, sizeof want_image, "%s/%s%s", L->idir, stems[1], L->img_ext);
    mv_convert_stats st;
    cr_assert_eq(run(L->dataset, root, L->split, out, 0, &st), -1, "%s: a label without its image was dropped",
                 L->dataset);
    const char *e = mv_last_error();
    cr_expect(strstr(e, want_label) && strstr(e, want_image) && strstr(e, "without its image"), "%s: %s", L->dataset,
              e);
    cr_assert_eq(run(L->dataset, root, L->split, out, 1, &st), 0, "%s: %s", L->dataset, mv_last_error());
    cr_expect(st.written == 2 && st.skipped == 1, "%s: %lld written, %lld skipped", L->dataset, (long long)st.written,
              (long long)st.skipped);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0, "%s", mv_last_error());
    cr_assert_eq(m.n_skipped, 1);
    cr_expect(strstr(m.skipped[0], want_label), "%s", m.skipped[0]);
    manifest_free(&m);
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, H, W);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(split_read(&smp, s, i), 0, "%s", mv_last_error());
        const char *base = strrchr(stems[2 * i], '/');
        cr_expect(strstr(smp.name, base ? base + 1 : stems[2 * i]), "%s: sample %d is %s", L->dataset, i, smp.name);
    }
    sample_free(&smp);
    split_close(s);
}

Test(convert_partners, label_without_image_bdd100k_both_layouts) {
    const char *stems[3] = {"0a0a0b1a-7c39d841", "0a0b16e2-93f8c456", "3d581db5-2564fb7e"};
    layout cur = {"bdd100k", "val", "images/10k/val", ".jpg", "labels/sem_seg/masks/val", ".png", 3, 0};
    check_orphan(&cur, fixture_root("bdd"), stems);
    layout old = {"bdd100k", "train", "images/train", ".jpg", "labels/train", "_train_id.png", 3, 0};
    check_orphan(&old, fixture_root("bdd2018"), stems);
}

Test(convert_partners, label_without_image_mapillary_both_releases) {
    const char *stems[3] = {"--2x5QZ0Qv1U0aAeUmNbvA", "-0tCMCXYR7SYU9Uoe8XjFA", "AbCdEfGhIjKlMnOpQrStUv"};
    layout combined = {"mapillary", "val", "validation/images", ".jpg", "validation/v1.2/labels", ".png", 13, 0};
    check_orphan(&combined, fixture_root("mapillary"), stems);
    layout v12 = {"mapillary", "training", "training/images", ".jpg", "training/labels", ".png", 13, 0};
    check_orphan(&v12, fixture_root("mapillary_v12"), stems);
}

Test(convert_partners, label_without_image_gtav_synthia) {
    const char *g[3] = {"00001", "00002", "00010"};
    layout gtav = {"gtav", "val", "images/valid", ".png", "labels/valid", ".png", 7, 0};
    check_orphan(&gtav, fixture_root("gtav"), g);
    const char *s[3] = {"0000000", "0000004", "0000017"};
    layout synthia = {"synthia", "train", "RGB/train", ".png", "GT/LABELS/train", ".png", 3, 1};
    check_orphan(&synthia, fixture_root("synthia"), s);
}

Test(convert_partners, label_without_image_cityscapes) {
    const char *stems[3] = {"aachen/aachen_000000_000019", "aachen/aachen_000001_000019",
                            "aachen/aachen_000002_000019"};
    layout cs = {"cityscapes", "train", "leftImg8bit/train", "_leftImg8bit.png", "gtFine/train", "_gtFine_labelIds.png",
                 7, 0};
    const char *root = fixture_root("cityscapes");
    mkdirs(root, "leftImg8bit/train/aachen");
    mkdirs(root, "gtFine/train/aachen");
    check_orphan(&cs, root, stems);
    // A whole city whose images are missing (only its gtFine folder extracted): its labels are
    // reported too, not skipped with the missing folder.
    mkdirs(root, "gtFine/train/bremen");
    put_label(root, "gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png", 7, 0);
    mv_convert_stats st;
    char out[4200];
    snprintf(out, sizeof out, "%s/out2", root);
    cr_assert_eq(run("cityscapes", root, "train", out, 1, &st), 0, "%s", mv_last_error());
    cr_expect(st.written == 2 && st.skipped == 2, "%lld written, %lld skipped", (long long)st.written,
              (long long)st.skipped);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, out), 0, "%s", mv_last_error());
    cr_assert_eq(m.n_skipped, 2);
    cr_expect(strstr(m.skipped[1], "bremen/bremen_000000_000019") && strstr(m.skipped[1], "without its image"), "%s",
              m.skipped[1]);
    manifest_free(&m);
}

// Labels and images all present: the orphan scan changes nothing (order, count), and the other
// files of a label folder (colour, instance, polygon files; Cityscapes' generated trainIds) are
// never taken for labels.
Test(convert_partners, complete_pairs_with_sibling_files_unchanged) {
    const char *root = fixture_root("siblings");
    mkdirs(root, "leftImg8bit/val/frankfurt");
    mkdirs(root, "gtFine/val/frankfurt");
    char rel[512];
    for (int k = 0; k < 3; k++) {
        snprintf(rel, sizeof rel, "leftImg8bit/val/frankfurt/frankfurt_000000_%06d_leftImg8bit.png", k);
        put_image(root, rel, k);
        const char *sfx[] = {"labelIds", "labelTrainIds", "instanceIds", "color"};
        for (int j = 0; j < 4; j++) {
            snprintf(rel, sizeof rel, "gtFine/val/frankfurt/frankfurt_000000_%06d_gtFine_%s.png", k, sfx[j]);
            put_label(root, rel, 7, 0);
        }
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(run("cityscapes", root, "val", out, 0, &st), 0, "%s", mv_last_error());
    cr_expect(st.written == 3 && st.skipped == 0);
}

// An image saved as NAME.JPG is the image of NAME's label (it was reported as "a label without
// its image"), and a label saved as NAME.PNG is NAME's label (it was "an image without its
// label", the label file unnamed); two images, or two labels, of one name whose extensions differ
// only in case are refused; a folder named like an image is passed over (it was an item whose
// label was missing).
Test(convert_partners, image_extension_in_any_case) {
    const char *root = fixture_root("ext_case");
    mkdirs(root, "images/10k/val");
    mkdirs(root, "labels/sem_seg/masks/val");
    const char *images[] = {"a.jpg", "b.JPG", "c.Jpg"};
    char rel[512];
    for (int k = 0; k < 3; k++) {
        snprintf(rel, sizeof rel, "images/10k/val/%s", images[k]);
        put_image(root, rel, k);
        snprintf(rel, sizeof rel, "labels/sem_seg/masks/val/%c.%s", 'a' + k, k == 2 ? "PNG" : "png");
        put_label(root, rel, 3 + k, 0);
    }
    mkdirs(root, "images/10k/val/zz.jpg");   // a folder named like an image is not one
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(run("bdd100k", root, "val", out, 0, &st), 0, "%s", mv_last_error());
    cr_expect(st.written == 3 && st.skipped == 0, "%lld written, %lld skipped", (long long)st.written,
              (long long)st.skipped);
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, H, W);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(split_read(&smp, s, k), 0, "%s", mv_last_error());
        char want[2] = {(char)('a' + k), 0};
        cr_expect_str_eq(smp.name, want);
        cr_expect_eq(smp.label.px[0], 3 + k, "sample %s paired with another label", want);
    }
    sample_free(&smp);
    split_close(s);
    put_label(root, "labels/sem_seg/masks/val/c.png", 5, 0);
    cr_assert_eq(run("bdd100k", root, "val", out, 0, &st), -1);
    cr_expect(strstr(mv_last_error(), "two labels of c "), "%s", mv_last_error());
    snprintf(rel, sizeof rel, "%s/labels/sem_seg/masks/val/c.png", root);
    cr_assert_eq(remove(rel), 0);
    put_image(root, "images/10k/val/a.JPG", 0);
    cr_assert_eq(run("bdd100k", root, "val", out, 0, &st), -1);
    cr_expect(strstr(mv_last_error(), "two images of a "), "%s", mv_last_error());
}

// An image without its label names both files and says which one is missing (a bare "cannot
// open" about the label did not say that its image exists), in the split-folder and --list forms.
Test(convert_partners, image_without_label_names_both) {
    const char *root = fixture_root("no_label");
    mkdirs(root, "images/valid");
    mkdirs(root, "labels/valid");
    put_image(root, "images/valid/00001.png", 0);
    put_label(root, "labels/valid/00001.png", 7, 0);
    put_image(root, "images/valid/00002.png", 1);
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(run("gtav", root, "valid", out, 0, &st), -1);
    const char *e = mv_last_error();
    cr_expect(strstr(e, "labels/valid/00002.png") && strstr(e, "images/valid/00002.png") &&
                  strstr(e, "without its label"), "%s", e);
    // The raw download with a split list: image 00003 listed, its label absent.
    mkdirs(root, "raw/images");
    mkdirs(root, "raw/labels");
    put_image(root, "raw/images/00003.png", 0);
    put_image(root, "raw/images/00004.png", 0);
    put_label(root, "raw/labels/00004.png", 7, 0);
    char list[4200], raw[4200];
    snprintf(list, sizeof list, "%s/list.txt", root);
    snprintf(raw, sizeof raw, "%s/raw", root);
    FILE *f = fopen(list, "w");
    cr_assert(f);
    fputs("00003.png\n00004.png\n", f);
    fclose(f);
    mv_convert_opts o = {.dataset = "gtav", .root = raw, .split = "val", .out = out, .workers = 1, .fresh = 1,
                         .list_file = list};
    cr_assert_eq(convert_run(&st, &o, NULL), -1);
    e = mv_last_error();
    cr_expect(strstr(e, "labels/00003.png") && strstr(e, "images/00003.png") && strstr(e, "without its label"), "%s",
              e);
}

// A split list saved by a Windows editor: UTF-8 byte order mark and CRLF line ends. The mark
// used to become part of the first name, which then looked absent from the download and was
// skipped without an error.
Test(convert_partners, split_list_with_bom_and_crlf) {
    const char *root = fixture_root("bom");
    mkdirs(root, "RGB");
    mkdirs(root, "GT/LABELS");
    put_image(root, "RGB/0000001.png", 0);
    put_label(root, "GT/LABELS/0000001.png", 3, 1);
    put_image(root, "RGB/0000002.png", 1);
    put_label(root, "GT/LABELS/0000002.png", 3, 1);
    char list[4200], out[4200];
    snprintf(list, sizeof list, "%s/synthia_split_val.txt", root);
    snprintf(out, sizeof out, "%s/out", root);
    FILE *f = fopen(list, "wb");
    cr_assert(f);
    fputs("\xEF\xBB\xBF" "0000001.png\r\n0000002.png\r\n", f);
    fclose(f);
    mv_convert_opts o = {.dataset = "synthia", .root = root, .split = "val", .out = out, .workers = 1, .fresh = 1,
                         .list_file = list};
    mv_convert_stats st;
    cr_assert_eq(convert_run(&st, &o, NULL), 0, "%s", mv_last_error());
    cr_expect(st.written == 2 && st.skipped == 0, "%lld written, %lld skipped", (long long)st.written,
              (long long)st.skipped);
}

// The validation split's folder is `valid` in HGFormer's GTAV split and `val` elsewhere (SYNTHIA,
// other GTAV copies); `--split val` and `--split valid` each find either.
Test(convert_partners, validation_split_folder_names) {
    const char *root = fixture_root("split_names");
    mkdirs(root, "gta/images/val");
    mkdirs(root, "gta/labels/val");
    put_image(root, "gta/images/val/00001.png", 0);
    put_label(root, "gta/labels/val/00001.png", 7, 0);
    mkdirs(root, "syn/RGB/val");
    mkdirs(root, "syn/GT/LABELS/val");
    put_image(root, "syn/RGB/val/0000001.png", 0);
    put_label(root, "syn/GT/LABELS/val/0000001.png", 3, 1);
    mkdirs(root, "map/validation/images");
    mkdirs(root, "map/validation/labels");
    put_image(root, "map/validation/images/AbCdEfGhIjKlMnOpQrStUv.jpg", 0);
    put_label(root, "map/validation/labels/AbCdEfGhIjKlMnOpQrStUv.png", 13, 0);
    const char *cases[][2] = {{"gtav", "gta"}, {"synthia", "syn"}, {"mapillary", "map"}};
    const char *splits[] = {"val", "valid"};
    char sub[4200], out[4300];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 2; k++) {
            snprintf(sub, sizeof sub, "%s/%s", root, cases[c][1]);
            snprintf(out, sizeof out, "%s/out_%s_%s", root, cases[c][0], splits[k]);
            mv_convert_stats st;
            cr_expect_eq(run(cases[c][0], sub, splits[k], out, 0, &st), 0, "%s --split %s: %s", cases[c][0], splits[k],
                         mv_last_error());
        }
}

// --- EXIF orientation --------------------------------------------------------------------

// The JPEG at `path` rewritten with an APP1 EXIF block (little-endian TIFF, one IFD0 entry:
// Orientation = `orientation`) right after SOI.
static void add_exif_orientation(const char *path, int orientation) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *jpeg = malloc(n);
    cr_assert_eq(fread(jpeg, 1, n, f), n);
    fclose(f);
    const uint8_t tiff[26] = {'I', 'I', 42, 0, 8, 0, 0, 0,                       // header, IFD0 at 8
                              1, 0,                                              // one entry
                              0x12, 0x01, 3, 0, 1, 0, 0, 0, (uint8_t)orientation, 0, 0, 0,  // 0x0112 SHORT
                              0, 0, 0, 0};                                       // no next IFD
    size_t len = 2 + 6 + sizeof tiff;
    uint8_t head[12] = {0xFF, 0xD8, 0xFF, 0xE1, (uint8_t)(len >> 8), (uint8_t)len, 'E', 'x', 'i', 'f', 0, 0};
    f = fopen(path, "wb");
    cr_assert(f);
    fwrite(head, 1, sizeof head, f);
    fwrite(tiff, 1, sizeof tiff, f);
    fwrite(jpeg + 2, 1, n - 2, f);
    fclose(f);
    free(jpeg);
}

// Mapillary photos are JPEGs. One stored 12x16 (HxW) with EXIF orientation 6 (turn 90 degrees
// clockwise to view) and a 16x12 label: the label is drawn on the upright photo, so the sample is
// the upright image (as OpenCV's IMREAD_COLOR gives it to mmseg) with that label. Another with the
// same tag but a label of the stored size keeps the stored pixels (the default: no rotation).
Test(convert_partners, exif_rotated_jpeg_follows_its_label_frame) {
    const char *root = fixture_root("exif");
    mkdirs(root, "validation/images");
    mkdirs(root, "validation/labels");
    const char *names[2] = {"AAAAupright_label", "BBBBstored_label"};
    char path[8400];
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/validation/images/%s.jpg", root, names[k]);
        mv_image img = pattern_rgb(k, H, W);
        cr_assert_eq(image_write_jpeg(path, &img, 100), 0, "%s", mv_last_error());
        image_free(&img);
        add_exif_orientation(path, 6);
        int lh = k == 0 ? W : H, lw = k == 0 ? H : W;
        mv_image lab = image_alloc(lh, lw, 1);
        for (int i = 0; i < lh * lw; i++) lab.px[i] = (uint8_t)(i % 2 ? 13 : 55);  // road, car
        snprintf(path, sizeof path, "%s/validation/labels/%s.png", root, names[k]);
        cr_assert_eq(image_write_png(path, &lab), 0, "%s", mv_last_error());
        image_free(&lab);
    }
    char out[4200];
    snprintf(out, sizeof out, "%s/out", root);
    mv_convert_stats st;
    cr_assert_eq(run("mapillary", root, "val", out, 0, &st), 0, "%s", mv_last_error());
    mv_split *s;
    cr_assert_eq(split_open(&s, out), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, W, W);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/validation/images/%s.jpg", root, names[k]);
        mv_image stored;
        cr_assert_eq(image_read_rgb(&stored, path), 0, "%s", mv_last_error());
        cr_assert_eq(split_read(&smp, s, k), 0, "%s", mv_last_error());
        int uh = k == 0 ? W : H, uw = k == 0 ? H : W;
        cr_assert(smp.rgb.h == uh && smp.rgb.w == uw, "%s: image %dx%d", names[k], smp.rgb.h, smp.rgb.w);
        cr_assert(smp.label.h == uh && smp.label.w == uw);
        for (int y = 0; y < uh; y++)
            for (int x = 0; x < uw; x++) {
                // Orientation 6: upright (y, x) shows stored (H-1-x, y).
                size_t src = k == 0 ? ((size_t)(H - 1 - x) * W + y) : ((size_t)y * W + x);
                cr_assert(!memcmp(smp.rgb.px + ((size_t)y * uw + x) * 3, stored.px + src * 3, 3),
                          "%s: pixel (%d, %d) is not the %s one", names[k], y, x, k == 0 ? "upright" : "stored");
                cr_assert_eq(smp.label.px[y * uw + x], (y * uw + x) % 2 ? 0 : 13);
            }
        image_free(&stored);
    }
    sample_free(&smp);
    split_close(s);
}
