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

// The city folders of `dir` (entries that are folders), sorted; a missing `dir` lists none.
static int list_cities(char ***cities, int64_t *n, const char *dir) {
    *cities = NULL;
    *n = 0;
    if (!mv_is_dir(dir)) return 0;
    char **all = NULL, path[MV_CONVERT_PATH_MAX + 256];
    int64_t na = 0;
    MV_TRY(mv_list_dir(&all, &na, dir, ""));
    for (int64_t i = 0; i < na; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, all[i]);
        if (mv_is_dir(path)) all[(*n)++] = all[i];
        else free(all[i]);
    }
    *cities = all;
    return 0;
}

// Images or labels lying directly in the split folder, outside any city folder: not part of
// the Cityscapes layout and not converted, but said (one line per tree, the first named) so that
// no file is dropped unnoticed.
static int note_outside_cities(const char *dir, const char *suffix, const char *tree, const char *split) {
    char **names = NULL, path[MV_CONVERT_PATH_MAX + 256];
    int64_t n = 0, files = 0;
    const char *first = NULL;
    MV_TRY(mv_list_dir(&names, &n, dir, suffix));
    for (int64_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (mv_is_dir(path)) continue;
        if (!files++) first = names[i];
    }
    if (files)
        fprintf(stderr, "maskvim data convert: cityscapes: %lld *%s file%s directly in %s/%s, outside a city folder, "
                "not converted (first: %s)\n", (long long)files, suffix, files == 1 ? "" : "s", tree, split, first);
    mv_free_names(names, n);
    return 0;
}

static int list(mv_convert_item **items, int64_t *n, const char *root, const char *split) {
    char idir[MV_CONVERT_PATH_MAX], ldir[MV_CONVERT_PATH_MAX];
    char icity[MV_CONVERT_PATH_MAX + 256], lcity[MV_CONVERT_PATH_MAX + 256], prefix[300];
    snprintf(idir, sizeof idir, "%s/leftImg8bit/%s", root, split);
    snprintf(ldir, sizeof ldir, "%s/gtFine/%s", root, split);
    *items = NULL;
    *n = 0;
    // gtFine/test ships with the download, but its labels are placeholders (test labels are
    // not public): converted, they are ignore everywhere and evaluate to nothing.
    if (!strcmp(split, "test"))
        return mv_fail("%s: Cityscapes' test labels are not public (gtFine/test holds placeholders, ignore "
                       "everywhere): convert train or val", root);
    char **dummy = NULL;
    int64_t nd = 0;
    MV_TRY(mv_list_dir(&dummy, &nd, idir, ""));  // a missing image tree: the error names it
    mv_free_names(dummy, nd);
    // Without the label tree every item would fail alone (and --skip-bad would skip them all).
    if (!mv_is_dir(ldir))
        return mv_fail("%s: no folder gtFine/%s (the labels of leftImg8bit/%s; Cityscapes layout)", root, split, split);
    // Cities of both trees: a city whose images are missing altogether still has its labels
    // reported (as labels without images), never dropped from the split unnoticed.
    char **ic = NULL, **lc = NULL;
    int64_t nic = 0, nlc = 0, cap = 0;
    int rc = list_cities(&ic, &nic, idir);
    if (rc == 0) rc = list_cities(&lc, &nlc, ldir);
    if (rc == 0) rc = note_outside_cities(idir, IMG_SUFFIX, "leftImg8bit", split);
    if (rc == 0) rc = note_outside_cities(ldir, LABEL_SUFFIX, "gtFine", split);
    for (int64_t a = 0, b = 0; rc == 0 && (a < nic || b < nlc);) {
        int c = a >= nic ? 1 : b >= nlc ? -1 : strcmp(ic[a], lc[b]);
        const char *city = c <= 0 ? ic[a] : lc[b];
        snprintf(icity, sizeof icity, "%s/%s", idir, city);
        snprintf(lcity, sizeof lcity, "%s/%s", ldir, city);
        snprintf(prefix, sizeof prefix, "%.255s/", city);
        rc = convert_pair_dir(items, n, &cap, icity, IMG_SUFFIX, lcity, LABEL_SUFFIX, prefix);
        a += c <= 0;
        b += c >= 0;
    }
    mv_free_names(ic, nic);
    mv_free_names(lc, nlc);
    return rc;
}

static int load(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it) {
    uint16_t table[256];
    convert_make_table(table, 34, MV_CITYSCAPES_ID_TO_TRAIN, 19, MV_LABEL_UNKNOWN);
    return convert_load_indexed_pair(rgb, label, flags, it, table);
}

const mv_dataset_converter MV_CONVERT_CITYSCAPES = {"cityscapes", "cityscapes", "cityscapes-labelid-to-trainid/v1",
                                                    "train, val", list, load, NULL, NULL, false};
