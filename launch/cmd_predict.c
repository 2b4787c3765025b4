// `maskvim predict`: segments image files (or every image below a folder) with a checkpoint and
// writes the predictions as PNG files: Cityscapes colours, raw train ids or Cityscapes label ids
// (the benchmark's submission format); with --masks, the learnt token masks over the image (the
// paper's Figure 1 view: dropped tokens darkened).
#include "core/clock.h"
#include "launch/commands.h"
#include "launch/inference_setup.h"
#include "core/config.h"
#include "core/config_ranks.h"
#include "core/engine.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/fs.h"
#include "core/model.h"
#include "core/weights_io.h"
#include "data/augment.h"
#include "data/image_io.h"
#include "data/manifest.h"
#include "dist/comm.h"
#include "core/progress.h"
#include <errno.h>
#include <unistd.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

// The output formats (--format, any combination) and the suffix of their files.
enum { OUT_COLOR = 1, OUT_TRAINID = 2, OUT_LABELID = 4 };
static const struct {
    const char *name, *suffix;
    int bit;
} FORMATS[] = {{"color", "pred", OUT_COLOR}, {"trainid", "trainid", OUT_TRAINID}, {"labelid", "labelid", OUT_LABELID}};
#define NFORMATS (int)(sizeof FORMATS / sizeof FORMATS[0])

static void usage(FILE *f) {
    fprintf(f,
        "usage: [mpirun -np N] maskvim predict [FILE.yaml] --checkpoint C.h5|RUN_DIR --input IMAGE|DIR...\n"
        "                       --out DIR [--format LIST] [--masks] [--set key=value ...]\n\n"
        "Segments each PNG or JPEG image (a folder stands for every .png/.jpg/.jpeg below it,\n"
        "in sorted order, except the --out folder if it lies below) and writes, at the image's\n"
        "size, for each format of --format:\n"
        "  color     DIR/<name>_pred.png     Cityscapes colours (the default)\n"
        "  trainid   DIR/<name>_trainid.png  8-bit gray, the class index (0..num_classes-1)\n"
        "  labelid   DIR/<name>_labelid.png  Cityscapes label ids (the benchmark's submission\n"
        "                                    format; 19-class models only)\n"
        "LIST is comma-separated (e.g. color,labelid). With --masks, also DIR/<name>_mask_<block>.png\n"
        "for every masked block: the image with the tokens the block drops darkened. Images are\n"
        "resized to fit data.scale for inference, as in evaluation; one that ends up under 32\n"
        "pixels on a side is padded to 32 there for the model (docs/metrics.md). C may be a\n"
        "checkpoint file, or a run folder (or its `latest` file): the checkpoint `latest` names.\n"
        "Without FILE, the configuration is the one saved in a training checkpoint (the run's\n"
        "config.yaml), the built-in default for a plain weights file; --set applies on top, and\n"
        "stderr says which. Under mpirun the images are divided among the ranks (each image is\n"
        "segmented and written by one rank; the files are those of one process).\n"
        "Inference runs where run.device says (auto: the GPU where one is present; stderr names it).\n"
        "An image that cannot be read is named on stderr and skipped; the others are predicted and\n"
        "the exit status is then 1.\n");
}

// ---------------------------------------------------------------------------------------
// Inputs: files as given, folders expanded

typedef struct {
    char **paths;
    int n, cap;
} path_list;

static void push_path(path_list *l, const char *path) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->paths = mv_realloc(l->paths, sizeof(char *) * (size_t)l->cap);
    }
    l->paths[l->n] = mv_strdup(path);
    l->n++;
}

static void free_paths(path_list *l) {
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    *l = (path_list){0};
}

static bool is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

// The --out folder when it exists (st_ino 0 otherwise): a folder below an input folder that is
// --out holds earlier predictions, never inputs. Without this, predicting `--input imgs --out
// imgs/pred` a second time segmented imgs/pred/x_pred.png too, writing x_pred_pred.png.
static struct stat g_outdir;

// Every image below `dir`, each folder's entries in name order (hidden ones skipped, and the
// --out folder). The depth bound stops a symbolic link that points back up the tree.
static int add_folder(path_list *out, const char *dir, int depth) {
    if (depth > 32) return mv_fail("%s: folders nested more than 32 deep (a symbolic link loop?)", dir);
    char **names;
    int64_t n;
    MV_TRY(mv_list_dir(&names, &n, dir, ""));
    int rc = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0) continue;   // a dangling link
        if (S_ISDIR(st.st_mode) && g_outdir.st_ino && st.st_dev == g_outdir.st_dev && st.st_ino == g_outdir.st_ino)
            continue;
        if (S_ISDIR(st.st_mode)) rc = add_folder(out, path, depth + 1);
        else if (S_ISREG(st.st_mode) && is_image_name(names[i])) push_path(out, path);
    }
    mv_free_names(names, n);
    return rc;
}

static bool is_outdir(const struct stat *st) {
    return g_outdir.st_ino && st->st_dev == g_outdir.st_dev && st->st_ino == g_outdir.st_ino;
}

static int expand_inputs(path_list *out, const char *const *args, int n, const char *outdir) {
    if (stat(outdir, &g_outdir) != 0 || !S_ISDIR(g_outdir.st_mode)) memset(&g_outdir, 0, sizeof g_outdir);
    for (int i = 0; i < n; i++) {
        // A path that is not there at all is a mistake of the command line, found before any
        // model work (a file that is there but does not read is skipped at its turn).
        if (access(args[i], F_OK) != 0)
            return mv_fail("--input %s: %s", args[i], strerror(errno));
        if (!mv_is_dir(args[i])) { push_path(out, args[i]); continue; }
        // Its predictions would be inputs of the next run (x_pred.png, then x_pred_pred.png, ...),
        // and could overwrite an image of it named like one (x_pred.png beside x.png).
        struct stat st;
        if (stat(args[i], &st) == 0 && is_outdir(&st))
            return mv_fail("--out %s is the input folder %s: the predictions would land among the images (read as "
                           "inputs by the next run, or written over one named like a prediction): give another "
                           "folder (one below it is fine: it is never read as input)", outdir, args[i]);
        int before = out->n;
        MV_TRY(add_folder(out, args[i], 0));
        if (out->n == before) return mv_fail("%s: no .png, .jpg or .jpeg image in this folder or below it", args[i]);
    }
    return 0;
}

// Base name without directory and extension.
static void stem(char *out, size_t n, const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(out, n, "%s", basename(tmp));
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

typedef struct {
    char name[256];
    int index;
} named_input;

static int cmp_named(const void *a, const void *b) {
    const named_input *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->index - y->index;
}

// Two inputs with one base name ("a/x.png", "b/x.jpg") would write the same DIR/x_*.png, the
// second silently replacing the first: refused before any work. Sorted by name, a clash is two
// neighbours (thousands of images from a dataset folder are checked at once).
static int check_distinct_names(const path_list *in, int formats) {
    named_input *v = mv_malloc(sizeof *v * (size_t)(in->n ? in->n : 1));
    for (int i = 0; i < in->n; i++) {
        stem(v[i].name, sizeof v[i].name, in->paths[i]);
        v[i].index = i;
    }
    qsort(v, (size_t)in->n, sizeof *v, cmp_named);
    int rc = 0;
    int f = 0;
    while (f < NFORMATS - 1 && !(formats & FORMATS[f].bit)) f++;   // the first file each one writes
    for (int i = 1; i < in->n && rc == 0; i++) {
        if (strcmp(v[i - 1].name, v[i].name)) continue;
        const char *a = in->paths[v[i - 1].index], *b = in->paths[v[i].index];
        if (!strcmp(a, b))
            rc = mv_fail("%s is given twice", a);
        else
            rc = mv_fail("%s and %s would both be written as %s_%s.png: give inputs with distinct names (or predict "
                         "them into separate --out folders)", a, b, v[i].name, FORMATS[f].suffix);
    }
    free(v);
    return rc;
}

// Whether `base` is a file name a prediction of the image named `st` writes (formats, masks).
static bool is_output_name(const char *base, const char *st, int formats, bool masks) {
    size_t ls = strlen(st);
    if (strncmp(base, st, ls) || base[ls] != '_') return false;
    const char *rest = base + ls + 1;
    for (int f = 0; f < NFORMATS; f++) {
        size_t l = strlen(FORMATS[f].suffix);
        if ((formats & FORMATS[f].bit) && !strncmp(rest, FORMATS[f].suffix, l) && !strcmp(rest + l, ".png"))
            return true;
    }
    size_t lr = strlen(rest);
    return masks && !strncmp(rest, "mask_", 5) && lr > 9 && !strcmp(rest + lr - 4, ".png");
}

// An input file in the --out folder must not be a file the predictions write (x.png and
// x_pred.png given together): it would be replaced before, or after, it is read.
static int check_outputs_spare_inputs(const path_list *in, int formats, bool masks) {
    if (!g_outdir.st_ino) return 0;   // --out does not exist yet: no input is in it
    for (int i = 0; i < in->n; i++) {
        char dir[4096], base[256];
        mv_dir_of(dir, sizeof dir, in->paths[i]);
        struct stat st;
        if (stat(dir, &st) != 0 || !is_outdir(&st)) continue;
        const char *slash = strrchr(in->paths[i], '/');
        snprintf(base, sizeof base, "%s", slash ? slash + 1 : in->paths[i]);
        for (int j = 0; j < in->n; j++) {
            char sj[256];
            stem(sj, sizeof sj, in->paths[j]);
            if (is_output_name(base, sj, formats, masks))
                return mv_fail("the input %s is in --out and is a file the prediction of %s writes: give another "
                               "--out", in->paths[i], in->paths[j]);
        }
    }
    return 0;
}

// The longest file a prediction of each input writes must be a file name the system takes
// (core/fs.h, MV_ATOMIC_NAME_MAX): else the job would fail at that image's write, after all the
// images before it. Checked once the model is built (its token-mask names), before any inference.
static int check_name_lengths(const path_list *in, int formats, const mv_model *m) {
    char longest[160] = "", block[128];
    for (int f = 0; f < NFORMATS; f++)
        if ((formats & FORMATS[f].bit) && strlen(FORMATS[f].suffix) > strlen(longest))
            snprintf(longest, sizeof longest, "%s", FORMATS[f].suffix);
    for (int j = 0; m && j < m->num_blocks; j++) {
        model_mask_name(block, sizeof block, m, j);
        if (m->blocks[j].masked && 5 + strlen(block) > strlen(longest))
            snprintf(longest, sizeof longest, "mask_%s", block);
    }
    for (int i = 0; i < in->n; i++) {
        char st[256];
        stem(st, sizeof st, in->paths[i]);
        size_t len = strlen(st) + 1 + strlen(longest) + 4;   // <stem>_<suffix>.png
        if (len > MV_ATOMIC_NAME_MAX)
            return mv_fail("%s: its prediction %.40s..._%s.png would have a %zu-byte file name, over the %d written "
                           "here: give the image a shorter name", in->paths[i], st, longest, len, MV_ATOMIC_NAME_MAX);
    }
    return 0;
}

// Under several ranks each one lists the inputs itself and takes every world-th: the lists must
// be the same (a folder that differs between hosts would leave images out or do them twice).
static int same_inputs_everywhere(mv_comm *comm, const path_list *in) {
    if (comm->world <= 1) return 0;
    uint64_t h[2] = {(uint64_t)in->n, 1469598103934665603ull};   // count, FNV-1a of the paths
    for (int i = 0; i < in->n; i++)
        for (const unsigned char *p = (const unsigned char *)in->paths[i];; p++) {
            h[1] = (h[1] ^ *p) * 1099511628211ull;
            if (!*p) break;
        }
    uint64_t root[2] = {h[0], h[1]};
    MV_TRY(comm_bcast_bytes(comm, root, sizeof root));
    if (root[0] != h[0] || root[1] != h[1])
        return mv_fail("rank %d finds other input images than rank 0 (%d against %llu): give every rank the same "
                       "files", comm->rank, in->n, (unsigned long long)root[0]);
    return 0;
}

static int parse_formats(int *bits, const char *list) {
    *bits = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int f = 0;
        while (f < NFORMATS && strcmp(tok, FORMATS[f].name)) f++;
        if (f == NFORMATS) return mv_fail("--format: unknown format '%s' (known: color, trainid, labelid)", tok);
        *bits |= FORMATS[f].bit;
    }
    if (!*bits) return mv_fail("--format needs at least one of color, trainid, labelid");
    return 0;
}

// ---------------------------------------------------------------------------------------
// Outputs

// Colour of class c: the Cityscapes palette for the 19 train ids; models with more classes get
// fixed colours spread by a multiplicative hash (the same on every run).
static void class_colour(uint8_t rgb[3], int c) {
    if (c < MV_NUM_TRAIN_CLASSES) { memcpy(rgb, MV_CLASS_PALETTE[c], 3); return; }
    uint32_t h = (uint32_t)c * 2654435761u;
    rgb[0] = (uint8_t)(h >> 24);
    rgb[1] = (uint8_t)(h >> 16);
    rgb[2] = (uint8_t)(h >> 8);
}

// Cityscapes label id of each train id (the inverse of the conversion's table).
static void labelid_table(uint8_t table[MV_NUM_TRAIN_CLASSES]) {
    for (int i = 0; i < MV_NUM_TRAIN_CLASSES; i++) table[MV_CITYSCAPES_ID_TO_TRAIN[i][1]] = (uint8_t)MV_CITYSCAPES_ID_TO_TRAIN[i][0];
}

// The class map `cls` (H x W) as the file of format f.
static int write_format(const char *path, int f, const uint8_t *cls, int H, int W) {
    size_t n = (size_t)H * W;
    mv_image img = image_alloc(H, W, f == OUT_COLOR ? 3 : 1);
    if (f == OUT_COLOR)
        for (size_t i = 0; i < n; i++) class_colour(img.px + 3 * i, cls[i]);
    else if (f == OUT_TRAINID)
        memcpy(img.px, cls, n);
    else {
        uint8_t table[MV_NUM_TRAIN_CLASSES];
        labelid_table(table);
        for (size_t i = 0; i < n; i++) img.px[i] = table[cls[i]];   // 19-class models only (checked up front)
    }
    int rc = image_write_png(path, &img);
    image_free(&img);
    return rc;
}

// The image with the tokens block j drops darkened to a third, nearest token for every pixel.
// The model saw the image resized to (h, w) and, where a side was under 32, padded at the
// bottom/right: the token grid covers the padded input, of which the image is the top-left
// (h, w). Unpadded, the token row is y * b->H / H, as ever (the h's cancel exactly).
static int write_mask(mv_model *m, int j, const mv_image *rgb, int h, int w, const char *path) {
    const mv_block *b = &m->blocks[j];
    int H = rgb->h, W = rgb->w;
    int64_t ydiv = (int64_t)H * eval_padded_side(h), xdiv = (int64_t)W * eval_padded_side(w);
    float *keep = mv_malloc(sizeof(float) * b->H * b->W);   // the mask, in host memory
    int rc = run_read(m, keep, b->m, sizeof(float) * b->H * b->W);
    if (rc < 0) { free(keep); return rc; }
    mv_image ov = image_alloc(H, W, 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int ty = (int)((int64_t)y * b->H * h / ydiv), tx = (int)((int64_t)x * b->W * w / xdiv);
            bool kept = keep[ty * b->W + tx] > 0.5f;
            for (int c = 0; c < 3; c++) {
                int v = rgb->px[((size_t)y * W + x) * 3 + c];
                ov.px[((size_t)y * W + x) * 3 + c] = (uint8_t)(kept ? v : v / 3);
            }
        }
    free(keep);
    rc = image_write_png(path, &ov);
    image_free(&ov);
    return rc;
}

// 0 when the image's predictions are written, 1 when the image cannot be read (the error is
// set: the caller reports it and goes on with the others), -1 on any other error.
static int predict_one(mv_model *m, const mv_config *cfg, const char *path, const char *outdir, int formats,
                       bool masks, int index, int count) {
    mv_image rgb = {0};
    int orientation = 1;   // a photo's EXIF orientation: predicted upright, as viewers show it
    if (image_read_rgb_oriented(&rgb, &orientation, path) < 0) return 1;
    mv_aug_config aug;
    augment_default_config(&aug, cfg->model.crop_h, cfg->model.crop_w);
    aug.scale_long = cfg->data.scale[0];
    aug.scale_short = cfg->data.scale[1];
    int h, w;
    augment_fit_size(&h, &w, rgb.h, rgb.w, aug.scale_long, aug.scale_short);
    float *img = malloc(sizeof(float) * 3 * (size_t)h * w);   // data.scale decides: its error, not an abort
    if (!img) {
        image_free(&rgb);
        return mv_fail("%s: out of memory for the image fitted to data.scale %d,%d (%dx%d)", path, aug.scale_long,
                       aug.scale_short, h, w);
    }
    mv_aug_scratch scratch;
    aug_scratch_alloc(&scratch, &aug, w > rgb.w ? w : rgb.w);
    augment_test(img, &rgb, h, w, &aug, &scratch);
    aug_scratch_free(&scratch);
    int H = rgb.h, W = rgb.w;
    uint8_t *cls = mv_malloc((size_t)H * W);
    mv_eval_buffers bufs = {0};
    int rc = eval_infer(cls, &bufs, m, &cfg->data, img, h, w, H, W);   // as evaluation
    eval_buffers_free(&bufs);
    free(img);
    if (rc < 0) { free(cls); image_free(&rgb); return mv_fail_context("%s", path); }
    char name[256], out[4096];
    stem(name, sizeof name, path);
    // The progress line is written whole, once: under mpirun the ranks' lines share one stream
    // and a line printed in pieces can be cut by another rank's.
    char line[3 * 4096 + 512];
    size_t len = (size_t)snprintf(line, sizeof line, "[%d/%d] %s%s ->", index + 1, count, path,
                                  orientation != 1 ? " (turned upright: EXIF orientation)" : "");
    for (int f = 0; f < NFORMATS && rc == 0; f++) {
        if (!(formats & FORMATS[f].bit)) continue;
        snprintf(out, sizeof out, "%s/%s_%s.png", outdir, name, FORMATS[f].suffix);
        if ((rc = write_format(out, FORMATS[f].bit, cls, H, W)) == 0 && len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, " %s", out);
    }
    free(cls);
    char block[128];
    int nmasks = 0;
    for (int j = 0; masks && rc == 0 && j < m->num_blocks; j++) {
        if (!m->blocks[j].masked) continue;
        model_mask_name(block, sizeof block, m, j);
        snprintf(out, sizeof out, "%s/%s_mask_%s.png", outdir, name, block);
        if ((rc = write_mask(m, j, &rgb, h, w, out)) == 0) nmasks++;
    }
    if (nmasks && len < sizeof line)
        snprintf(line + len, sizeof line - len, " and %d token-mask images (%s/%s_mask_*.png)", nmasks, outdir, name);
    printf("%s\n", line);
    fflush(stdout);
    image_free(&rgb);
    return rc;
}

// The command line of `maskvim predict`.
typedef struct {
    const char *file, *ckpt, *outdir;
    const char **sets, **inputs;   // the --set values and the --input paths; cmd_predict frees the arrays
    int nsets, ninputs;
    int formats;                   // OUT_* bits of --format
    bool masks;
} predict_args;

// parse_predict_args's result when the command goes on (otherwise: the exit status).
#define GO_ON (-1)

// Reads the command line into *a: GO_ON, or the status to exit with now (0 after --help, 2 for
// a usage error, its message printed).
static int parse_predict_args(predict_args *a, int argc, char **argv) {
    *a = (predict_args){.sets = mv_calloc(argc + 1, sizeof(char *)), .inputs = mv_calloc(argc + 1, sizeof(char *))};
    const char *format_list = "color";
    bool in_inputs = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { usage(stdout); return 0; }
        if (!strcmp(o, "--masks")) { a->masks = true; continue; }   // a flag: the images after it are still inputs
        if (!strcmp(o, "--input")) { in_inputs = true; continue; }
        if (o[0] != '-') {
            if (in_inputs) a->inputs[a->ninputs++] = o;
            else if (a->file) {
                fprintf(stderr, "maskvim predict: more than one configuration file ('%s', '%s'); images go after "
                                "--input\n", a->file, o);
                return 2;
            } else a->file = o;
            continue;
        }
        in_inputs = false;
        if (!v) { cli_missing_value("predict", o, usage); return 2; }
        if (!strcmp(o, "--checkpoint")) a->ckpt = v;
        else if (!strcmp(o, "--out")) a->outdir = v;
        else if (!strcmp(o, "--format")) format_list = v;
        else if (!strcmp(o, "--set")) a->sets[a->nsets++] = v;
        else { cli_unknown_option("predict", o, usage); return 2; }
        i++;
    }
    if (!a->ckpt || !a->outdir || a->ninputs == 0) {
        fprintf(stderr, "maskvim predict: --checkpoint, --input and --out are required\n\n");
        usage(stderr);
        return 2;
    }
    if (parse_formats(&a->formats, format_list) < 0) {
        fprintf(stderr, "maskvim predict: %s\n", mv_last_error());
        return 2;
    }
    return GO_ON;
}

// Everything after the command line: the inputs, the configuration and model, each image of
// this rank's share. Returns the exit status.
static int run_predict(const predict_args *a, int *argc, char ***argv) {
    const char *file = a->file, *ckpt = a->ckpt, *outdir = a->outdir;
    int formats = a->formats;
    bool masks = a->masks;
    // Under mpirun the images are divided among the ranks (each rank segments and writes every
    // world-th one); started directly, one process does them all.
    mv_comm comm;
    if (comm_init(&comm, argc, argv) < 0) {
        fprintf(stderr, "maskvim predict: %s\n", mv_last_error());
        return 1;
    }
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    mv_model *m = mv_calloc(1, sizeof *m);
    path_list inputs = {0};
    // An existing file of that name would pass mkdir -p below, and the first write fail as
    // "--out/x_pred.png: Not a directory" after the model has loaded: refused before any work.
    struct stat out_st;
    int rc = stat(outdir, &out_st) == 0 && !S_ISDIR(out_st.st_mode)
                 ? mv_fail("--out %s: exists and is not a folder", outdir) : 0;
    if (rc == 0) rc = expand_inputs(&inputs, a->inputs, a->ninputs, outdir);
    if (rc == 0) rc = check_distinct_names(&inputs, formats);
    if (rc == 0) rc = check_outputs_spare_inputs(&inputs, formats, masks);
    if (rc == 0) rc = same_inputs_everywhere(&comm, &inputs);
    // --checkpoint first: without FILE the configuration is the one saved in it.
    char ckpt_path[4096] = "";   // --checkpoint, or the checkpoint a run folder's `latest` names
    char *saved_yaml = NULL;
    if (rc == 0)
        rc = inference_checkpoint(&comm, ckpt, comm.rank == 0 ? "maskvim predict: --checkpoint" : NULL, !file, ckpt_path,
                               sizeof ckpt_path, &saved_yaml);
    if (rc == 0) ckpt = ckpt_path;
    if (rc == 0) rc = inference_config(cfg, file, ckpt, saved_yaml, a->nsets, a->sets, comm.rank == 0, "maskvim predict");
    // Each rank writes its share of the images: made alike, into one --out.
    char options[MV_RANK_OPTIONS_MAX], list[64] = "";
    for (int f = 0; f < NFORMATS; f++)
        if (formats & FORMATS[f].bit) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? "," : "", FORMATS[f].name);
    snprintf(options, sizeof options, "--out %.900s --format %s%s", outdir, list, masks ? " --masks" : "");
    if (rc == 0) rc = config_check_same_on_ranks(cfg, options, &comm);
    free(saved_yaml);
    if (rc == 0 && (formats & OUT_LABELID) && cfg->model.num_classes != MV_NUM_TRAIN_CLASSES)
        rc = mv_fail("--format labelid maps Cityscapes' 19 train ids to their label ids; this model has %d classes "
                     "(use --format trainid)", cfg->model.num_classes);
    // Each window has its own masks; --masks draws those of one forward over the whole image.
    if (rc == 0 && masks && cfg->data.test_mode == MV_TEST_SLIDE)
        rc = mv_fail("--masks draws the token masks of a whole-image forward; with data.test_mode: slide each window "
                     "has its own (add --set data.test_mode=whole)");
    if (rc == 0) rc = model_build(m, &cfg->model);
    if (rc == 0) rc = check_name_lengths(&inputs, formats, masks ? m : NULL);
    if (rc == 0) rc = weights_load_for_inference(&m->params, ckpt, comm.rank == 0 ? stderr : NULL, "maskvim predict");
    if (rc == 0) rc = checkpoint_verify_weights(ckpt);   // a training checkpoint's tensors are checksummed
    if (rc == 0 && comm.rank == 0) checkpoint_warn_eval_config(ckpt, cfg, stderr, "maskvim predict: --checkpoint");
    if (rc == 0) rc = mv_mkdir_p(outdir);
    // A file made there since the check above (or a parent that is a file) fails here.
    if (rc == 0 && !mv_is_dir(outdir)) rc = mv_fail("--out %s: exists and is not a folder", outdir);
    char device[256];
    mv_run_ctx dev_ctx = {.world_size = comm.world};
    if (rc == 0) rc = engine_open(m, NULL, &cfg->run, &comm, &dev_ctx, device, sizeof device);
    if (rc == 0 && comm.rank == 0) {
        char ranks[64] = "";
        if (comm.world > 1) snprintf(ranks, sizeof ranks, " (%d ranks, each on its share)", comm.world);
        fprintf(stderr, "maskvim predict: %d image%s on %s%s\n", inputs.n, inputs.n == 1 ? "" : "s", device, ranks);
    }
    double t0 = mv_now_s();
    // An image that does not read (damaged, truncated, not an image) is named and passed over:
    // one bad file among thousands should not cost the others; the exit status still says so.
    // Any other error (inference, a full disk) would recur on every image and ends the job.
    int done = 0, unreadable = 0;
    for (int i = comm.rank; i < inputs.n && rc == 0; i += comm.world) {
        int r = predict_one(m, cfg, inputs.paths[i], outdir, formats, masks, i, inputs.n);
        if (r == 1) {
            fprintf(stderr, "maskvim predict: [%d/%d] skipped: %s\n", i + 1, inputs.n, mv_last_error());
            mv_clear_error();
            unreadable++;
        } else if (r < 0) rc = -1;
        else done++;
    }
    // Every rank's share done before the summary (a failed rank ends the job below).
    double total[2] = {done, unreadable};
    if (rc == 0) rc = comm_allreduce_sum_doubles(&comm, total, 2);
    if (rc == 0 && inputs.n > 1 && comm.rank == 0) {
        double s = mv_now_s() - t0;
        char took[32];
        mv_fmt_duration(took, sizeof took, s);
        fprintf(stderr, "maskvim predict: %d image%s in %s (%.2f images/s)\n", (int)total[0],
                total[0] == 1 ? "" : "s", took,
                s > 0 ? total[0] / s : 0.0);
    }
    // Every rank knows the sum: they end together, without an abort.
    bool partial = rc == 0 && total[1] > 0;
    if (partial && comm.rank == 0)
        fprintf(stderr, "maskvim predict: %d of %d input images could not be read (named above)%s\n", (int)total[1],
                inputs.n, (int)total[1] < inputs.n ? "; the other images' predictions are written" : "");
    if (rc < 0) {
        inference_explain_rotated(a->ckpt, ckpt_path);
        char msg[MV_ERRMSG_MAX + 32];
        snprintf(msg, sizeof msg, "predict: %s", mv_last_error());
        if (comm.world > 1) comm_abort(1, msg);
        fprintf(stderr, "maskvim %s\n", msg);
    }
    engine_close(m);
    free_paths(&inputs);
    model_free(m); free(m); free(cfg);
    comm_finalize(&comm);
    return rc < 0 || partial ? 1 : 0;
}

int cmd_predict(int argc, char **argv) {
    predict_args a;
    int status = parse_predict_args(&a, argc, argv);
    if (status == GO_ON) status = run_predict(&a, &argc, &argv);
    free(a.sets);
    free(a.inputs);
    return status;
}
