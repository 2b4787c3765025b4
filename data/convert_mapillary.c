// Mapillary Vistas v1.2: <split>/images/<name>.jpg with palette PNG labels whose indices are the
// 66 v1.2 class ids, in <split>/v1.2/labels/<name>.png (combined v1.2/v2.0 release) or
// <split>/labels/<name>.png (v1.2 release). <split> is training or validation (train, and val or valid,
// are accepted). Mapped to the 19 train ids with RobustNet's / HGFormer's table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/convert.h"

static const int MAPILLARY_TO_TRAIN[][2] = {
    {13, 0},  {24, 0},  {41, 0},  // road: Road, Lane Marking - General, Manhole
    {2, 1},   {15, 1},            // sidewalk: Curb, Sidewalk
    {17, 2},  {6, 3},   {3, 4},   // building, wall, fence
    {45, 5},  {47, 5},            // pole: Pole, Utility Pole
    {48, 6},  {50, 7},            // traffic light, traffic sign (front)
    {30, 8},  {29, 9},  {27, 10}, // vegetation, terrain, sky
    {19, 11},                     // person
    {20, 12}, {21, 12}, {22, 12}, // rider: Bicyclist, Motorcyclist, Other Rider
    {55, 13}, {61, 14}, {54, 15}, {58, 16}, {57, 17}, {52, 18}};  // car truck bus on-rails motorcycle bicycle

static int list(mv_convert_item **items, int64_t *n, const char *root, const char *split) {
    const char *s = !strcmp(split, "train") ? "training" : !strcmp(split, "val") || !strcmp(split, "valid") ? "validation" : split;
    char idir[MV_CONVERT_PATH_MAX], ldir[MV_CONVERT_PATH_MAX];
    snprintf(idir, sizeof idir, "%s/%s/images", root, s);
    snprintf(ldir, sizeof ldir, "%s/%s/v1.2/labels", root, s);
    char plain[MV_CONVERT_PATH_MAX];
    snprintf(plain, sizeof plain, "%s/%s/labels", root, s);
    if (!mv_is_dir(ldir)) snprintf(ldir, sizeof ldir, "%s", plain);
    else if (mv_is_dir(plain))   // two releases unpacked into one tree: say which labels are read
        fprintf(stderr, "maskvim data convert: mapillary: labels from %s/v1.2/labels (the combined release's v1.2 "
                        "labels); %s/labels is also there and is not read\n", s, s);
    if (!mv_is_dir(ldir)) {
        char v2[MV_CONVERT_PATH_MAX];
        snprintf(v2, sizeof v2, "%s/%s/v2.0/labels", root, s);
        if (mv_is_dir(v2))   // only the v2.0 release: its 124 classes are not v1.2's 66, which the mapping reads
            return mv_fail("%s: only %s/v2.0/labels exists: Vistas v2.0's 124-class labels are not supported; "
                           "convert the v1.2 labels (66 classes, %s/v1.2/labels, in the same download)", root, s, s);
        return mv_fail("%s: neither %s/v1.2/labels nor %s/labels exists (Mapillary Vistas layout)", root, s, s);
    }
    return convert_pair_flat(items, n, idir, ".jpg", ldir, ".png");
}

static int load(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it) {
    uint16_t table[256];
    convert_make_table(table, 66, MAPILLARY_TO_TRAIN, (int)(sizeof MAPILLARY_TO_TRAIN / sizeof MAPILLARY_TO_TRAIN[0]),
                       MV_LABEL_UNKNOWN);
    return convert_load_indexed_pair(rgb, label, flags, it, table);
}

const mv_dataset_converter MV_CONVERT_MAPILLARY = {"mapillary", "mapillary", "mapillary-v1.2-66-to-trainid/v1",
                                                   "training (train), validation (val, valid)", list, load,
                                                   NULL, NULL, false};
