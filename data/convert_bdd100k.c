// BDD100K semantic segmentation (10K images). Labels are already train ids (0..18, 255).
// Current layout:  images/10k/<split>/<name>.jpg + labels/sem_seg/masks/<split>/<name>.png
// 2018 layout:     images/<split>/<name>.jpg     + labels/<split>/<name>_train_id.png
// (root is the folder holding images/ and labels/). The colormaps/ folder is never read: its
// colours are not Cityscapes' (wall and fence are swapped).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/convert.h"

static int list(mv_convert_item **items, int64_t *n, const char *root, const char *split) {
    char idir[MV_CONVERT_PATH_MAX], ldir[MV_CONVERT_PATH_MAX];
    const char *label_suffix = ".png";
    snprintf(idir, sizeof idir, "%s/images/10k/%s", root, split);
    snprintf(ldir, sizeof ldir, "%s/labels/sem_seg/masks/%s", root, split);
    if (!mv_is_dir(idir)) {
        snprintf(idir, sizeof idir, "%s/images/%s", root, split);
        snprintf(ldir, sizeof ldir, "%s/labels/%s", root, split);
        label_suffix = "_train_id.png";
        if (!mv_is_dir(idir))
            return mv_fail("%s: neither images/10k/%s nor images/%s exists (BDD100K layout)", root, split, split);
    }
    // Without the label folder every item would fail alone (and --skip-bad would skip them all).
    if (!mv_is_dir(ldir))
        return mv_fail("%s: no folder %s (the labels of %s; BDD100K layout)", root, ldir + strlen(root) + 1,
                       idir + strlen(root) + 1);
    return convert_pair_flat(items, n, idir, ".jpg", ldir, label_suffix);
}

static int load(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it) {
    uint16_t table[256];
    for (int i = 0; i < 256; i++) table[i] = i < 19 || i == 255 ? (uint16_t)i : MV_LABEL_UNKNOWN;
    return convert_load_indexed_pair(rgb, label, flags, it, table);
}

const mv_dataset_converter MV_CONVERT_BDD100K = {"bdd100k", "bdd100k", "bdd100k-trainid/v1", "train, val", list, load,
                                                 NULL, NULL, false};
