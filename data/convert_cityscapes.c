// Cityscapes: leftImg8bit/<split>/<city>/<name>_leftImg8bit.png with
// gtFine/<split>/<city>/<name>_gtFine_labelIds.png (8-bit gray, Cityscapes label ids 0..33),
// mapped to the 19 train ids with cityscapesScripts' table (all other ids -> 255).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/convert.h"
#include "data/manifest.h"

#define IMG_SUFFIX "_leftImg8bit.png"
#define LABEL_SUFFIX "_gtFine_labelIds.png"

static int list(mv_convert_item **items, int64_t *n, const char *root, const char *split) {
    char dir[MV_CONVERT_PATH_MAX], cdir[MV_CONVERT_PATH_MAX + 256], img[MV_CONVERT_PATH_MAX * 2], lab[MV_CONVERT_PATH_MAX * 2], name[MV_CONVERT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/leftImg8bit/%s", root, split);
    char **cities = NULL;
    int64_t n_cities = 0, cap = 0;
    *items = NULL;
    *n = 0;
    MV_TRY(mv_list_dir(&cities, &n_cities, dir, ""));
    // Without the label tree every item would fail alone (and --skip-bad would skip them all).
    snprintf(cdir, sizeof cdir, "%s/gtFine/%s", root, split);
    if (!mv_is_dir(cdir)) {
        mv_free_names(cities, n_cities);
        return mv_fail("%s: no folder gtFine/%s (the labels of leftImg8bit/%s; Cityscapes layout)", root, split, split);
    }
    int rc = 0;
    for (int64_t c = 0; c < n_cities && rc == 0; c++) {
        snprintf(cdir, sizeof cdir, "%s/%s", dir, cities[c]);
        if (!mv_is_dir(cdir)) continue;
        char **files = NULL;
        int64_t nf = 0;
        rc = mv_list_dir(&files, &nf, cdir, IMG_SUFFIX);
        for (int64_t f = 0; f < nf && rc == 0; f++) {
            size_t stem = strlen(files[f]) - strlen(IMG_SUFFIX);
            snprintf(img, sizeof img, "%s/%s", cdir, files[f]);
            snprintf(lab, sizeof lab, "%s/gtFine/%s/%s/%.*s%s", root, split, cities[c], (int)stem, files[f], LABEL_SUFFIX);
            snprintf(name, sizeof name, "%s/%.*s", cities[c], (int)stem, files[f]);
            rc = convert_push_item(items, n, &cap, img, lab, name);
        }
        mv_free_names(files, nf);
    }
    mv_free_names(cities, n_cities);
    return rc;
}

static int load(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it) {
    uint16_t table[256];
    convert_make_table(table, 34, MV_CITYSCAPES_ID_TO_TRAIN, 19, MV_LABEL_UNKNOWN);
    return convert_load_indexed_pair(rgb, label, flags, it, table);
}

const mv_dataset_converter MV_CONVERT_CITYSCAPES = {"cityscapes", "cityscapes", "cityscapes-labelid-to-trainid/v1",
                                                    "train, val", list, load, NULL, NULL};
