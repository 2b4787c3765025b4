// SYNTHIA-RAND-CITYSCAPES, RobustNet split: RGB/<split>/<name>.png with 16-bit label PNGs
// GT/LABELS/<split>/<name>.png whose first channel holds the SYNTHIA class id (the second the
// instance id). The id is the full 16-bit value (never strip to 8 bits: that keeps the high
// byte, which is 0). Ids 0..22 map to train ids with RobustNet's table; any other value becomes 255
// (ignore), as in RobustNet's and HGFormer's converters (docs/data.md, SYNTHIA;
// HGFormer compares the whole 16-bit value, so values above 255 are ignored too), and such
// labels are counted in the conversion summary.
// The raw download (RGB/NNNNNNN.png, no split folders) converts with --list and RobustNet's
// split_data/synthia_split_{train,val}.txt (convert_list_file).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/convert.h"
#include "data/image_io.h"

static const int SYNTHIA_TO_TRAIN[][2] = {
    {1, 10}, {2, 2},   {3, 0},   {4, 1},   {5, 4},   {6, 8},   {7, 5},   {8, 13},  {9, 7},   {10, 11}, {11, 18},
    {12, 17}, {15, 6}, {16, 9}, {17, 12}, {18, 14}, {19, 15}, {20, 16}, {21, 3}};  // 0, 13, 14, 22 -> ignore

static int list(mv_convert_item **items, int64_t *n, const char *root, const char *split) {
    char idir[MV_CONVERT_PATH_MAX], ldir[MV_CONVERT_PATH_MAX];
    // The RobustNet/HGFormer split folder is `val`; `valid` (GTAV's name for it) finds it too.
    split = convert_split_folder(idir, sizeof idir, root, "RGB", split);
    snprintf(ldir, sizeof ldir, "%s/GT/LABELS/%s", root, split);
    if (!mv_is_dir(idir))
        return mv_fail("%s: no folder RGB/%s (SYNTHIA layout: RGB/{train,val}/NNNNNNN.png and "
                       "GT/LABELS/{train,val}/NNNNNNN.png, the RobustNet split; a raw download, RGB/NNNNNNN.png, converts "
                       "with --list synthia_split_%s.txt, RobustNet's split list)", root, split, split);
    // Without the label folder every item would fail alone (and --skip-bad would skip them all).
    if (!mv_is_dir(ldir))
        return mv_fail("%s: no folder GT/LABELS/%s (the labels of RGB/%s; SYNTHIA layout)", root, split, split);
    return convert_pair_flat(items, n, idir, ".png", ldir, ".png");
}

static int load(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it) {
    uint16_t table[256];
    convert_make_table(table, 23, SYNTHIA_TO_TRAIN, (int)(sizeof SYNTHIA_TO_TRAIN / sizeof SYNTHIA_TO_TRAIN[0]),
                       MV_LABEL_UNLISTED);
    MV_TRY(image_read_rgb(rgb, it->image));
    // SYNTHIA's GT/LABELS files are 16-bit. An 8-bit PNG is something else: GT/COLOR's colour
    // coding, or labels already converted to trainIds (HGFormer's labels_detectron2), whose
    // values 0..18 are valid SYNTHIA ids too and would be mapped a second time without error.
    mv_png_info info;
    MV_TRY(image_png_info(&info, it->label));
    if (info.bit_depth != 16)
        return mv_fail("%s: %s %d-bit PNG, but SYNTHIA's GT/LABELS files are 16-bit (class id in channel 0); colour "
                       "labels (GT/COLOR) or labels already converted to trainIds are not raw SYNTHIA labels",
                       it->label, info.bit_depth == 8 ? "an" : "a", info.bit_depth);
    mv_image16 raw;
    MV_TRY(image_read_png16(&raw, it->label));
    if (raw.h != rgb->h || raw.w != rgb->w) {
        int h = raw.h, w = raw.w;
        image16_free(&raw);
        return mv_fail("%s: label is %dx%d but its image %s is %dx%d (HxW)", it->label, h, w, it->image, rgb->h, rgb->w);
    }
    *label = image_alloc(raw.h, raw.w, 1);
    size_t n = (size_t)raw.h * raw.w;
    for (size_t i = 0; i < n; i++) {
        uint16_t v = raw.px[i * raw.c];  // channel 0: class id
        uint16_t t = v > 255 ? MV_LABEL_UNLISTED : table[v];
        if (t == MV_LABEL_UNLISTED) {
            *flags |= MV_CONVERT_UNLISTED_IDS;
            t = 255;
        }
        label->px[i] = (uint8_t)t;
    }
    image16_free(&raw);
    return 0;
}

const mv_dataset_converter MV_CONVERT_SYNTHIA = {"synthia", "synthia", "synthia-rand-cityscapes-to-trainid/v2",
                                                 "train, val (valid)", list, load, "RGB", "GT/LABELS", false};
