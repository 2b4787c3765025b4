// The conversion driver shared by every dataset (see convert.h): worker threads decode,
// map and compress items into a reorder window; the calling thread writes them to shards in
// input order, so the split is identical whatever the number of workers, and resume works by
// item position.
#include "data/convert.h"
#include "core/clock.h"
#include "core/progress.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "core/error.h"
#include "data/image_io.h"
#include "data/manifest.h"

static const mv_dataset_converter *const ALL[] = {&MV_CONVERT_CITYSCAPES, &MV_CONVERT_BDD100K, &MV_CONVERT_MAPILLARY,
                                                  &MV_CONVERT_GTAV, &MV_CONVERT_SYNTHIA};

const mv_dataset_converter *convert_find(const char *name) {
    for (size_t i = 0; i < sizeof ALL / sizeof ALL[0]; i++)
        if (!strcmp(ALL[i]->name, name)) return ALL[i];
    mv_fail("unknown dataset '%s' (known: cityscapes, bdd100k, mapillary, gtav, synthia)", name);
    return NULL;
}

// ---------------------------------------------------------------------------------------
// Helpers

// Appends an item (grows *items; *cap its capacity). Paths too long are an error.
static int convert_push_item(mv_convert_item **items, int64_t *n, int64_t *cap, const char *image,
                             const char *label, const char *name) {
    if (strlen(image) >= MV_CONVERT_PATH_MAX || strlen(label) >= MV_CONVERT_PATH_MAX) return mv_fail("%s: path too long", image);
    if (strlen(name) >= MV_SAMPLE_NAME_MAX)
        return mv_fail("%s: sample name '%.40s...' too long (%zu characters, at most %d)", image, name, strlen(name),
                       MV_SAMPLE_NAME_MAX - 1);
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *items = mv_realloc(*items, sizeof(mv_convert_item) * (size_t)*cap);
    }
    mv_convert_item *it = &(*items)[(*n)++];
    it->image = mv_strdup(image);
    it->label = mv_strdup(label);
    it->name = mv_strdup(name);
    it->absent = 0;
    it->orphan = 0;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The stems of `files` (every name ends in `suffix`), each malloc'd; sorted when `sort`.
static char **stems_of(char **files, int64_t n, const char *suffix, int sort) {
    char **st = mv_calloc((size_t)(n ? n : 1), sizeof(char *));
    for (int64_t i = 0; i < n; i++) {
        size_t l = strlen(files[i]) - strlen(suffix);
        st[i] = mv_malloc(l + 1);
        memcpy(st[i], files[i], l);
        st[i][l] = 0;
    }
    if (sort && n) qsort(st, (size_t)n, sizeof(char *), cmp_str);
    return st;
}

// Pushes the item of `stem`: its image (the listed file `image`, or stem+img_ext for an orphan
// label) and label (the listed file `label`, or stem+label_suffix for an image without one)
// paths under the two folders, named prefix+stem.
static int push_stem(mv_convert_item **items, int64_t *n, int64_t *cap, const char *idir, const char *img_ext,
                     const char *ldir, const char *label_suffix, const char *prefix, const char *stem,
                     const char *image, const char *label) {
    char img[MV_CONVERT_PATH_MAX * 2], lab[MV_CONVERT_PATH_MAX * 2];
    char name[MV_CONVERT_PATH_MAX * 2];  // longer than a sample name may be: convert_push_item refuses it
    if (image)
        snprintf(img, sizeof img, "%s/%s", idir, image);
    else
        snprintf(img, sizeof img, "%s/%s%s", idir, stem, img_ext);
    if (label)
        snprintf(lab, sizeof lab, "%s/%s", ldir, label);
    else
        snprintf(lab, sizeof lab, "%s/%s%s", ldir, stem, label_suffix);
    snprintf(name, sizeof name, "%s%s", prefix, stem);
    MV_TRY(convert_push_item(items, n, cap, img, lab, name));
    (*items)[*n - 1].orphan = image == NULL;
    return 0;
}

// A label file by its stem, for finding an image's label whatever the case of its extension.
typedef struct {
    const char *stem, *file;
} stem_file;

static int cmp_stem_file(const void *a, const void *b) {
    return strcmp(((const stem_file *)a)->stem, ((const stem_file *)b)->stem);
}

// The first stem listed twice in sorted[0..n) (names differing only in the case of their
// extension), or NULL.
static const char *repeated_stem(char **sorted, int64_t n) {
    for (int64_t k = 1; k < n; k++)
        if (!strcmp(sorted[k - 1], sorted[k])) return sorted[k];
    return NULL;
}

int convert_pair_dir(mv_convert_item **items, int64_t *n, int64_t *cap, const char *idir, const char *img_ext,
                     const char *ldir, const char *label_suffix, const char *prefix) {
    char **files = NULL, **labels = NULL;
    int64_t nf = 0, nl = 0;
    // An extension may differ in case (NAME.JPG, NAME.PNG): the files still pair by name.
    if (mv_is_dir(idir) || !mv_is_dir(ldir)) MV_TRY(mv_list_dir_any_case(&files, &nf, idir, img_ext));
    // Labels are listed too: one whose image is missing must not vanish from the split unnoticed
    // (an incomplete download or extraction); it becomes an item that fails by name.
    if (mv_is_dir(ldir) && mv_list_dir_any_case(&labels, &nl, ldir, label_suffix) < 0) {
        mv_free_names(files, nf);
        return -1;
    }
    char **istem = stems_of(files, nf, img_ext, 0), **isorted = stems_of(files, nf, img_ext, 1);
    char **lstem = stems_of(labels, nl, label_suffix, 0), **lsorted = stems_of(labels, nl, label_suffix, 1);
    stem_file *lfile = mv_calloc((size_t)(nl ? nl : 1), sizeof *lfile);
    for (int64_t k = 0; k < nl; k++) lfile[k] = (stem_file){lstem[k], labels[k]};
    if (nl) qsort(lfile, (size_t)nl, sizeof *lfile, cmp_stem_file);
    int rc = 0;
    const char *twice;
    if ((twice = repeated_stem(isorted, nf)))
        rc = mv_fail("%s: two images of %s (extensions differing in case); keep one", idir, twice);
    else if ((twice = repeated_stem(lsorted, nl)))
        rc = mv_fail("%s: two labels of %s (extensions differing in case); keep one", ldir, twice);
    // Merge: images in their listed order, each orphan label placed before the first image whose
    // stem sorts after its own (for ordinary names the result is sorted by name).
    int64_t i = 0, j = 0;
    while (rc == 0 && (i < nf || j < nl)) {
        if (j < nl && bsearch(&lstem[j], isorted, (size_t)nf, sizeof(char *), cmp_str)) { j++; continue; }
        if (i < nf && (j >= nl || strcmp(istem[i], lstem[j]) <= 0)) {
            stem_file key = {istem[i], NULL}, *lab = nl ? bsearch(&key, lfile, (size_t)nl, sizeof key, cmp_stem_file) : NULL;
            rc = push_stem(items, n, cap, idir, img_ext, ldir, label_suffix, prefix, istem[i], files[i],
                           lab ? lab->file : NULL);
            i++;
        } else {
            rc = push_stem(items, n, cap, idir, img_ext, ldir, label_suffix, prefix, lstem[j], NULL, labels[j]);
            j++;
        }
    }
    free(lfile);
    mv_free_names(istem, nf);
    mv_free_names(isorted, nf);
    mv_free_names(lstem, nl);
    mv_free_names(lsorted, nl);
    mv_free_names(files, nf);
    mv_free_names(labels, nl);
    return rc;
}

const char *convert_split_folder(char *dir, size_t n, const char *root, const char *sub, const char *split) {
    snprintf(dir, n, "%s/%s/%s", root, sub, split);
    const char *other = !strcmp(split, "val") ? "valid" : !strcmp(split, "valid") ? "val" : NULL;
    if (!other || mv_is_dir(dir)) return split;
    char alt[MV_CONVERT_PATH_MAX];
    snprintf(alt, sizeof alt, "%s/%s/%s", root, sub, other);
    if (!mv_is_dir(alt)) return split;
    snprintf(dir, n, "%s", alt);
    return other;
}

int convert_pair_flat(mv_convert_item **items, int64_t *n, const char *idir, const char *img_ext, const char *ldir,
                      const char *label_suffix) {
    int64_t cap = 0;
    *items = NULL;
    *n = 0;
    if (!mv_is_dir(idir)) {  // the whole image folder missing: its listing error names it
        char **none = NULL;
        int64_t k = 0;
        MV_TRY(mv_list_dir(&none, &k, idir, img_ext));
        mv_free_names(none, k);
    }
    return convert_pair_dir(items, n, &cap, idir, img_ext, ldir, label_suffix, "");
}

static int cmp_item_names(const void *a, const void *b) {
    return strcmp(((const mv_convert_item *)a)->name, ((const mv_convert_item *)b)->name);
}

int convert_list_file(mv_convert_item **items, int64_t *n, const mv_dataset_converter *conv, const char *root,
                      const char *list_file) {
    *items = NULL;
    *n = 0;
    if (!conv->raw_images)
        return mv_fail("--list: %s is not published as one flat folder; convert its split folders instead", conv->name);
    char idir[MV_CONVERT_PATH_MAX], ldir[MV_CONVERT_PATH_MAX];
    snprintf(idir, sizeof idir, "%s/%s", root, conv->raw_images);
    snprintf(ldir, sizeof ldir, "%s/%s", root, conv->raw_labels);
    if (!mv_is_dir(idir)) return mv_fail("%s: no folder %s (the raw %s download)", root, conv->raw_images, conv->name);
    if (!mv_is_dir(ldir))
        return mv_fail("%s: no folder %s (the raw %s download's labels)", root, conv->raw_labels, conv->name);
    FILE *f = fopen(list_file, "r");
    if (!f) return mv_fail("%s: cannot open: %s", list_file, strerror(errno));
    char line[MV_CONVERT_PATH_MAX], img[MV_CONVERT_PATH_MAX * 2], lab[MV_CONVERT_PATH_MAX * 2];
    int64_t cap = 0, absent = 0;
    int rc = 0;
    for (long ln = 1; rc == 0 && fgets(line, sizeof line, f); ln++) {
        char *s = line, *e = line + strlen(line);
        if (e > s && e[-1] != '\n' && !feof(f)) { rc = mv_fail("%s:%ld: line too long", list_file, ln); break; }
        // A list saved by a Windows editor may start with a UTF-8 byte order mark: not part of the name.
        if (ln == 1 && !strncmp(s, "\xEF\xBB\xBF", 3)) s += 3;
        while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
        while (isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        const char *dot = strrchr(s, '.');
        if (strchr(s, '/') || !dot || dot == s) {
            rc = mv_fail("%s:%ld: '%s' is not a file name such as 00001.png", list_file, ln, s);
            break;
        }
        snprintf(img, sizeof img, "%s/%s", idir, s);
        snprintf(lab, sizeof lab, "%s/%s", ldir, s);
        char name[MV_CONVERT_PATH_MAX];
        snprintf(name, sizeof name, "%.*s", (int)(dot - s), s);
        rc = convert_push_item(items, n, &cap, img, lab, name);
        bool gone = rc == 0 && access(img, F_OK) != 0 && errno == ENOENT && access(lab, F_OK) != 0 && errno == ENOENT;
        absent += gone;
        if (rc == 0) {
            (*items)[*n - 1].absent = gone && conv->list_may_lack_items;
            (*items)[*n - 1].list_line = ln;
        }
    }
    if (rc == 0 && ferror(f)) rc = mv_fail("%s: read error", list_file);
    fclose(f);
    if (rc < 0) return rc;
    if (*n > 0 && absent == *n)
        return mv_fail("%s: no file that %s lists (%lld listed) is in %s or %s (is --root the folder of the raw "
                       "download?)", root, list_file, (long long)*n, idir, ldir);
    if (*n) qsort(*items, (size_t)*n, sizeof **items, cmp_item_names);
    for (int64_t i = 1; i < *n; i++)
        if (!strcmp((*items)[i - 1].name, (*items)[i].name)) {
            long a = (*items)[i - 1].list_line, b = (*items)[i].list_line;
            return mv_fail("%s:%ld: %s is listed again (first on line %ld)", list_file, a > b ? a : b,
                           (*items)[i].name, a < b ? a : b);
        }
    return 0;
}

void convert_free_items(mv_convert_item *items, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        free(items[i].image);
        free(items[i].label);
        free(items[i].name);
    }
    free(items);
}

void convert_make_table(uint16_t table[256], int n_known, const int (*pairs)[2], int n_pairs, uint16_t other) {
    for (int i = 0; i < 256; i++) table[i] = i < n_known ? 255 : other;
    for (int i = 0; i < n_pairs; i++) table[pairs[i][0]] = (uint16_t)pairs[i][1];
}

int convert_map_labels(mv_image *label, const uint16_t table[256], const char *path, int *flags) {
    size_t n = (size_t)label->h * label->w;
    for (size_t i = 0; i < n; i++) {
        uint16_t t = table[label->px[i]];
        if (t == MV_LABEL_UNKNOWN)
            return mv_fail("%s: label value %d at (y %zu, x %zu) is not a known class id", path, label->px[i],
                           i / label->w, i % label->w);
        if (t == MV_LABEL_UNLISTED) {
            *flags |= MV_CONVERT_UNLISTED_IDS;
            t = 255;
        }
        label->px[i] = (uint8_t)t;
    }
    return 0;
}

// A JPEG whose EXIF orientation turns it by 90 degrees (5..8) while its label is drawn in the
// upright frame: the stored pixels do not have the label's size, the upright ones do. Then the
// image is used upright (as OpenCV's IMREAD_COLOR, mmseg's loader, decodes it), so image and label
// line up. The stored frame is kept whenever it has the label's size (image_io.h: the default).
static int match_exif_frame(mv_image *rgb, const mv_image *label, const char *path) {
    if (label->h != rgb->w || label->w != rgb->h) return 0;  // no 90-degree turn makes them agree
    mv_image up = {0};
    int orientation = 1;
    MV_TRY(image_read_rgb_oriented(&up, &orientation, path));
    if (up.h == label->h && up.w == label->w) {
        image_free(rgb);
        *rgb = up;
    } else {
        image_free(&up);
    }
    return 0;
}

int convert_load_indexed_pair(mv_image *rgb, mv_image *label, int *flags, const mv_convert_item *it,
                              const uint16_t table[256]) {
    MV_TRY(image_read_rgb(rgb, it->image));
    MV_TRY(image_read_png_index(label, it->label));
    if (label->h != rgb->h || label->w != rgb->w) MV_TRY(match_exif_frame(rgb, label, it->image));
    if (label->h != rgb->h || label->w != rgb->w)
        return mv_fail("%s: label is %dx%d but its image %s is %dx%d (HxW)", it->label, label->h, label->w, it->image,
                       rgb->h, rgb->w);
    return convert_map_labels(label, table, it->label, flags);
}

mv_image convert_resize_nearest(const mv_image *label, int h, int w) {
    mv_image out = image_alloc(h, w, 1);
    // OpenCV's INTER_NEAREST positions, as HGFormer's GTAV resize_img.py resizes.
    for (int y = 0; y < h; y++) {
        int sy = image_nearest_index(y, label->h, h);
        for (int x = 0; x < w; x++) {
            int sx = image_nearest_index(x, label->w, w);
            out.px[(size_t)y * w + x] = label->px[(size_t)sy * label->w + sx];
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// The driver

typedef enum { SLOT_FREE, SLOT_BUSY, SLOT_READY } slot_state;

typedef struct {
    slot_state state;
    int64_t item;
    int ok, flags, h, w;
    uint8_t *enc_rgb, *enc_lab;
    size_t cap_rgb, cap_lab, len_rgb, len_lab;
    char err[MV_ERRMSG_MAX];
} slot;

typedef struct {
    const mv_dataset_converter *conv;
    const mv_convert_item *items;
    int64_t end;              // one past the last item to convert
    int64_t next;             // next item for a worker
    int64_t written;          // next item the writer waits for
    int window;
    slot *slots;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} driver;

// One file of a pair missing while the other exists: said in those words, naming both files
// (the decoders alone would only say "cannot open" about one of them).
static int check_partners(const mv_convert_item *it) {
    int img = access(it->image, F_OK) == 0, lab = access(it->label, F_OK) == 0;
    if (img && !lab)
        return mv_fail("%s: cannot open: No such file or directory (an image without its label: %s)", it->label,
                       it->image);
    if (lab && !img)
        return mv_fail("%s: cannot open: No such file or directory (a label without its image: %s)", it->image,
                       it->label);
    return 0;
}

// Whether any of the n bytes at p differs from v.
static bool any_byte_other_than(const uint8_t *p, uint8_t v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return true;
    return false;
}

static void convert_one(slot *s, const mv_dataset_converter *conv, const mv_convert_item *it) {
    mv_image rgb = {0}, lab = {0};
    s->flags = 0;
    int rc;
    if (it->absent)
        rc = mv_fail("listed, but neither %s nor %s exists (not in this copy of the download)", it->image, it->label);
    else if (it->orphan)
        rc = mv_fail("%s: a label without its image (%s does not exist)", it->label, it->image);
    else
        rc = check_partners(it);
    if (rc == 0) rc = conv->load(&rgb, &lab, &s->flags, it);
    if (rc == 0) rc = shard_check_sample(it->name, &rgb, &lab);
    if (rc == 0) {
        size_t n = (size_t)rgb.h * rgb.w;
        if (!any_byte_other_than(lab.px, 255, n)) s->flags |= MV_CONVERT_LABEL_EMPTY;
        int64_t a = shard_encode_chunk(&s->enc_rgb, &s->cap_rgb, rgb.px, n * 3, MV_SHARD_DEFAULT_DEFLATE);
        int64_t b = a < 0 ? -1 : shard_encode_chunk(&s->enc_lab, &s->cap_lab, lab.px, n, MV_SHARD_DEFAULT_DEFLATE);
        if (a < 0 || b < 0) rc = -1;
        s->len_rgb = (size_t)a;
        s->len_lab = (size_t)b;
        s->h = rgb.h;
        s->w = rgb.w;
    }
    s->ok = rc == 0;
    if (rc < 0) snprintf(s->err, sizeof s->err, "%s", mv_last_error());
    image_free(&rgb);
    image_free(&lab);
}

static void *worker_main(void *arg) {
    driver *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        // Take the next item once its window slot is free (the writer is at most `window` behind).
        while (!d->stop && d->next < d->end && d->next >= d->written + d->window) pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop || d->next >= d->end) break;
        int64_t i = d->next++;
        slot *s = &d->slots[i % d->window];
        s->state = SLOT_BUSY;
        s->item = i;
        pthread_mutex_unlock(&d->mu);
        convert_one(s, d->conv, &d->items[i]);
        pthread_mutex_lock(&d->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

// The workers convert items ahead of the writer, into a window of slots (2 per worker + 2).
static void driver_start(driver *d, pthread_t *tids, int workers, const mv_dataset_converter *conv,
                         const mv_convert_item *items, int64_t start, int64_t end) {
    memset(d, 0, sizeof *d);
    d->conv = conv;
    d->items = items;
    d->end = end;
    d->next = d->written = start;
    d->window = 2 * workers + 2;
    d->slots = mv_calloc((size_t)d->window, sizeof(slot));
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    for (int t = 0; t < workers; t++) pthread_create(&tids[t], NULL, worker_main, d);
}

static void driver_stop(driver *d, pthread_t *tids, int workers) {
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int t = 0; t < workers; t++) pthread_join(tids[t], NULL);
    for (int k = 0; k < d->window; k++) {
        free(d->slots[k].enc_rgb);
        free(d->slots[k].enc_lab);
    }
    free(d->slots);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

// Locks the output folder (creating it) for the whole conversion: two conversions into one
// folder (train and val given the same --out, or one command started twice) would each resume
// the other's shards and leave a mixed split. The second is refused at once rather than made
// to wait, since it would conflict all the same. The lock is a flock on the folder itself, so
// that nothing is created in it (a refused conversion leaves the folder as it was); it goes
// with the descriptor when closed or when the process ends, also when killed. On a file system
// without flock the conversion runs unguarded. Returns the descriptor, or -1 naming the folder.
static int lock_output(const char *out) {
    MV_TRY(mv_mkdir_p(out));
    int fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return mv_fail("%s: cannot open: %s", out, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        close(fd);
        return mv_fail("%s: another conversion is writing into this folder now (it holds the folder's lock); two "
                       "conversions into one folder would mix their splits: wait for it to end, or give this one "
                       "another --out", out);
    }
    return fd;
}

// The writer for o->out: fresh, or resumed from what an earlier run left there, checked against
// this listing (n items, `limited` when --limit cut it) before anything in the folder is touched:
// an unfinished split's complete shards must hold exactly the first items (*start of them); a
// finished split must hold exactly the first items listed, and when it holds all of them *done
// is set (nothing to write). NULL with a message, the folder as it was.
// The manifest's record of the input: what was converted, from where (absolute paths, so the
// record still says which download when read from elsewhere).
static void set_source(mv_shard_writer *w, const mv_convert_opts *o, const mv_dataset_converter *conv) {
    char abs[PATH_MAX];
    shard_writer_set_source(w, "dataset", conv->name);
    shard_writer_set_source(w, "split", o->split);
    shard_writer_set_source(w, "root", realpath(o->root, abs) ? abs : o->root);
    if (o->list_file) shard_writer_set_source(w, "list", realpath(o->list_file, abs) ? abs : o->list_file);
}

// A split has several accepted names (GTAV's valid is val elsewhere, Mapillary's folders are
// training and validation): one conversion may have been given one, the next another.
static const char *split_kind(const char *split) {
    if (!strcmp(split, "training")) return "train";
    if (!strcmp(split, "valid") || !strcmp(split, "validation")) return "val";
    return split;
}

// When a finished split's manifest says it was converted from another split or dataset, fails
// naming both (the likely mistake is the --out folder, not a changed input) with `found`, what
// the check of the items found, and returns true.
static bool refuse_other_source(const char *found, const mv_convert_opts *o, const mv_dataset_converter *conv,
                                bool finished) {
    mv_manifest m;
    if (!finished || manifest_read(&m, o->out) < 0) return false;
    const char *ds = manifest_source(&m, "dataset"), *sp = manifest_source(&m, "split");
    const char *root = manifest_source(&m, "root");
    bool other = ds && sp && (strcmp(ds, conv->name) || strcmp(split_kind(sp), split_kind(o->split)));
    if (other)
        mv_fail("%s holds %s split '%s' (converted from %s), and this conversion is %s split '%s': is --out the "
                "folder meant? (--fresh would replace it; what the check found: %s)", o->out, ds, sp,
                root ? root : "?", conv->name, o->split, found);
    manifest_free(&m);
    return other;
}

static mv_shard_writer *open_output(const mv_convert_opts *o, const mv_dataset_converter *conv,
                                    const mv_convert_item *items, int64_t n, int limited, int64_t *start, int *done) {
    *done = 0;
    mv_shard_writer *w = o->fresh ? shard_writer_open(o->out, conv->domain, conv->label_map, o->samples_per_shard)
                                  : shard_writer_resume(o->out, conv->domain, conv->label_map, o->samples_per_shard);
    if (!w) return NULL;
    set_source(w, o, conv);
    *start = shard_writer_resume_point(w);
    if (o->fresh) return w;
    const char **names = mv_malloc(sizeof(char *) * (size_t)n);
    for (int64_t i = 0; i < n; i++) names[i] = items[i].name;
    int rc = shard_writer_check_input(w, names, n);
    free(names);
    if (rc < 0) {
        char msg[MV_ERRMSG_MAX], limit[96] = "";
        if (limited) snprintf(limit, sizeof limit, " (this run lists only the first %lld: --limit)", (long long)n);
        snprintf(msg, sizeof msg, "%s%s", mv_last_error(), limit);
        if (!refuse_other_source(msg, o, conv, shard_writer_finished(w))) mv_fail("%s", msg);
        shard_writer_abort(w);
        return NULL;
    }
    // Item names alone do not tell the splits apart where a tree names its train and val
    // images alike: "already converted" would then hand back the other split.
    if (refuse_other_source("the item names match this split's", o, conv, shard_writer_finished(w))) {
        shard_writer_abort(w);
        return NULL;
    }
    if (rc == 1) {
        *done = 1;
        *start = n;
    }
    return w;
}

// Item i, converted by a worker (slot s), into the split in listing order: its shard sample,
// or, when it failed, the run's error, or with --skip-bad (and for a --list item absent from
// the download) skipped and listed in the manifest. first_skip (n bytes) receives "name:
// reason" of the first one skipped.
static int write_item(mv_shard_writer *w, mv_convert_stats *stats, const mv_convert_opts *o, const slot *s,
                      const mv_convert_item *it, int64_t i, const mv_progress *prog, char *first_skip, size_t n) {
    if (s->ok) {
        MV_TRY(shard_writer_add_encoded(w, it->name, s->h, s->w, s->enc_rgb, s->len_rgb, s->enc_lab, s->len_lab));
        stats->written++;
        if (s->flags & MV_CONVERT_LABEL_RESIZED) stats->labels_resized++;
        if (s->flags & MV_CONVERT_UNLISTED_IDS) stats->labels_unlisted++;
        if (s->flags & MV_CONVERT_LABEL_EMPTY) stats->labels_empty++;
        return 0;
    }
    if (!o->skip_bad && !it->absent)
        return mv_fail("item %lld (%s): %s (use --skip-bad to skip and list bad items)", (long long)i, it->name, s->err);
    shard_writer_skip(w, it->name, s->err);
    if (!stats->skipped) snprintf(first_skip, n, "%s: %s", it->name, s->err);
    stats->skipped++;
    stats->absent += it->absent;
    if (prog->f)
        fprintf(prog->f, "%s[convert] skipped %s: %s\n", prog->said && prog->tty ? "\n" : "", it->name, s->err);
    return 0;
}

// The conversion proper, o->out locked: the writer (fresh, resumed or up to date), the workers,
// the items start..n-1 written in order, the manifest.
static int convert_locked(mv_convert_stats *stats, const mv_convert_opts *o, const mv_dataset_converter *conv,
                          const mv_convert_item *items, int64_t n, int64_t n_listed, double t0, FILE *progress) {
    int64_t start;
    int done;
    mv_shard_writer *w = open_output(o, conv, items, n, n < n_listed, &start, &done);
    if (!w) return -1;
    stats->resumed = start;
    if (done) {  // a finished split of exactly these items: left as it is
        shard_writer_abort(w);
        stats->up_to_date = 1;
        stats->seconds = mv_now_s() - t0;
        mv_manifest m;
        if (progress && manifest_read(&m, o->out) == 0) {
            fprintf(progress, "[convert] %s: already converted: the finished split holds the %lld items the input "
                              "lists (%lld samples, %d skipped); nothing written (--fresh converts again)\n",
                    o->out, (long long)n, (long long)m.count, m.n_skipped);
            manifest_free(&m);
        }
        return 0;
    }
    if (progress && start > 0)
        fprintf(progress, "[convert] resuming %s: %lld of %lld items already in complete shards\n", o->out,
                (long long)start, (long long)n);

    driver d;
    int workers = o->workers > 0 ? o->workers : 1;
    pthread_t *tids = mv_calloc((size_t)workers, sizeof(pthread_t));
    driver_start(&d, tids, workers, conv, items, start, n);
    int rc = 0;
    char first_skip[MV_ERRMSG_MAX + MV_SAMPLE_NAME_MAX] = "";
    mv_progress prog;
    char prefix[sizeof prog.prefix];
    snprintf(prefix, sizeof prefix, "[convert] %.60s %.100s:", conv->name, o->split);
    // Items, not samples: a skipped item is done too, and the closing line tells the two apart.
    progress_begin(&prog, progress, prefix, "items", start, n);
    for (int64_t i = start; i < n && rc == 0; i++) {
        slot *s = &d.slots[i % d.window];
        pthread_mutex_lock(&d.mu);
        while (!(s->state == SLOT_READY && s->item == i)) pthread_cond_wait(&d.cv, &d.mu);
        pthread_mutex_unlock(&d.mu);
        rc = write_item(w, stats, o, s, &items[i], i, &prog, first_skip, sizeof first_skip);
        pthread_mutex_lock(&d.mu);
        s->state = SLOT_FREE;
        d.written = i + 1;
        pthread_cond_broadcast(&d.cv);
        pthread_mutex_unlock(&d.mu);
        if (rc == 0) progress_update(&prog, i + 1);   // a failed item is not done: no "1/1 items" before its error
    }
    progress_end(&prog);
    driver_stop(&d, tids, workers);
    free(tids);
    if (rc < 0) {
        char msg[MV_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", mv_last_error());
        shard_writer_abort(w);
        mv_fail("%s", msg);
        return mv_fail_context("%s %s -> %s", conv->name, o->split, o->out);
    }
    // Every item bad (--skip-bad) and nothing kept from an earlier run: a split of no samples,
    // which no loader opens; an error now rather than a "converted" that leaves nothing usable.
    // No manifest is written, so the folder stays an unfinished split.
    if (stats->written == 0 && stats->resumed == 0) {
        shard_writer_abort(w);
        return mv_fail("%s %s -> %s: all %lld items were bad and skipped, nothing to write; first: %s", conv->name,
                       o->split, o->out, (long long)stats->skipped, first_skip);
    }
    if (shard_writer_close(w) < 0) return -1;
    stats->seconds = mv_now_s() - t0;
    return 0;
}

int convert_run(mv_convert_stats *stats, const mv_convert_opts *o, FILE *progress) {
    memset(stats, 0, sizeof *stats);
    const mv_dataset_converter *conv = convert_find(o->dataset);
    if (!conv) return -1;
    double t0 = mv_now_s();
    mv_convert_item *items = NULL;
    int64_t n = 0;
    if (o->list_file ? convert_list_file(&items, &n, conv, o->root, o->list_file) < 0
                     : conv->list(&items, &n, o->root, o->split) < 0) {
        convert_free_items(items, n);
        return mv_fail_context("%s %s split", conv->name, o->split);
    }
    int64_t n_listed = n;
    if (n == 0) {
        convert_free_items(items, n);
        return mv_fail("%s: no %s items found for split '%s' (expected layout: see docs/data.md)", o->root, conv->name,
                       o->split);
    }
    if (o->limit > 0 && o->limit < n) n = o->limit;
    stats->items = n;
    int lock = lock_output(o->out);
    if (lock < 0) {
        convert_free_items(items, n_listed);
        return -1;
    }
    int rc = convert_locked(stats, o, conv, items, n, n_listed, t0, progress);
    close(lock);
    convert_free_items(items, n_listed);
    return rc;
}
