// GTAV (Playing for Data), RobustNet split: images/<split>/<name>.png with palette PNG labels
// labels/<split>/<name>.png whose indices are Cityscapes label ids (mapped like Cityscapes; the
// extra index 34 and any larger index are ignored, 255).
// <split> is train, valid or test (val is accepted for valid, and a folder named val is found
// too). Some labels are not the size of their image (HGFormer counts 60 frames in valid); as
// HGFormer does for valid (datasets/split_data/gta/resize_img.py: cv2.resize with INTER_NEAREST),
// and here in every split, those labels are resized to the image with OpenCV's nearest-neighbour
// sampling positions, and the conversion summary counts them. Labels already converted to train
// ids are refused (refuse_train_ids).
// The raw download (images/NNNNN.png, no split folders) converts with --list and RobustNet's
// split_data/gtav_split_{train,val,test}.txt (convert_list_file), without moving files into
// split folders as HGFormer's split_gta.py does.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/convert.h"
#include "data/manifest.h"
#include "data/image_io.h"

static int list(mv_convert_item **items, int64_t *n, const char *root, const char *split) {
    char idir[MV_CONVERT_PATH_MAX], ldir[MV_CONVERT_PATH_MAX];
    // HGFormer's split_gta.py names the validation folder `valid`; other copies call it `val`.
    const char *s = convert_split_folder(idir, sizeof idir, root, "images", split);
    snprintf(ldir, sizeof ldir, "%s/labels/%s", root, s);
    if (!mv_is_dir(idir))
        return mv_fail("%s: no folder images/%s (GTAV layout: images/{train,valid,test}/NNNNN.png and "
                       "labels/{train,valid,test}/NNNNN.png, the RobustNet split; a raw download, images/NNNNN.png, converts "
                       "with --list gtav_split_%s.txt, RobustNet's split list)", root, split, !strcmp(split, "valid") ? "val" : split);
    // Without the label folder every item would fail alone (and --skip-bad would skip them all).
    if (!mv_is_dir(ldir)) return mv_fail("%s: no folder labels/%s (the labels of images/%s; GTAV layout)", root, s, s);
    return convert_pair_flat(items, n, idir, ".png", ldir, ".png");
}

// Labels already converted to train ids (HGFormer's labels_detectron2, beside the raw labels in
// the layout MaskViM reads) would map a second time without an error: road's 0 to 255, 8
// (vegetation) to 1, and so on. A raw GTAV label holds palette indices 0..34, so 255 never
// appears in one, and nearly every frame has ids from 19 up (sky 23, car 26, vegetation 21).
// Only 0..18 with 255 is train ids; that is refused, naming the file.
static int refuse_train_ids(const mv_image *label, const char *path) {
    size_t n = (size_t)label->h * label->w;
    bool ignore = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = label->px[i];
        if (v != 255 && v > 18) return 0;
        ignore |= v == 255;
    }
    if (!ignore) return 0;
    return mv_fail("%s: every value is a train id (0..18) or 255 (ignore): labels already converted to train ids "
                   "(labels_detectron2?) are not GTAV's raw labels, whose palette indices are Cityscapes label ids "
                   "0..34; convert the raw labels/ folder", path);
}

static int load(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it) {
    uint16_t table[256];
    // GTAV's palette has one index more than Cityscapes' label ids 0..33: 34, which GTAV loaders
    // elsewhere map to ignore (license plates). Any larger index also becomes 255, as in HGFormer's
    // prepare_gta_sem_seg.py (whose labels MaskViM uses: everything outside id_to_trainid is 255,
    // docs/data.md, GTAV); such labels are counted in the conversion summary, not refused.
    convert_make_table(table, 35, MV_CITYSCAPES_ID_TO_TRAIN, 19, MV_LABEL_UNLISTED);
    MV_TRY(image_read_rgb(rgb, it->image));
    MV_TRY(image_read_png_index(label, it->label));
    MV_TRY(refuse_train_ids(label, it->label));
    MV_TRY(convert_map_labels(label, table, it->label, flags));
    if (label->h != rgb->h || label->w != rgb->w) {
        mv_image resized = convert_resize_nearest(label, rgb->h, rgb->w);
        image_free(label);
        *label = resized;
        *flags |= MV_CONVERT_LABEL_RESIZED;
    }
    return 0;
}

const mv_dataset_converter MV_CONVERT_GTAV = {"gtav", "gtav", "gtav-labelid-to-trainid/v3", "train, valid (val), test", list,
                                              load, "images", "labels", true};
