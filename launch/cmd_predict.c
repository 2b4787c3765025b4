// `maskvim predict`: segments image files with a checkpoint and writes colour-coded
// predictions and, with --masks, the learnt token masks over the image (the paper's Figure 1
// view: dropped tokens darkened) as PNG files.
#include "launch/commands.h"
#include "core/config.h"
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
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim predict [FILE.yaml] --checkpoint C.h5 --input IMAGE... --out DIR [--masks]\n"
        "                       [--set key=value ...]\n\n"
        "For each PNG or JPEG image writes DIR/<name>_pred.png (Cityscapes colours at the image's\n"
        "size) and, with --masks, DIR/<name>_mask_<block>.png for every masked block: the image\n"
        "with the tokens the block drops darkened. Images are resized to fit data.scale for\n"
        "inference, as in evaluation. Inference runs where run.device says (auto: the GPU where\n"
        "one is present; stderr names it).\n");
}

// Base name without directory and extension.
static void stem(char *out, size_t n, const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(out, n, "%s", basename(tmp));
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

static int predict_one(mv_model *m, const mv_config *cfg, const char *path, const char *outdir, bool masks) {
    mv_image rgb = {0};
    MV_TRY(image_read_rgb(&rgb, path));
    mv_aug_config aug;
    augment_default_config(&aug, cfg->model.crop_h, cfg->model.crop_w);
    aug.scale_long = cfg->data.scale[0];
    aug.scale_short = cfg->data.scale[1];
    int h, w;
    augment_fit_size(&h, &w, rgb.h, rgb.w, aug.scale_long, aug.scale_short);
    mv_aug_scratch scratch;
    aug_scratch_alloc(&scratch, &aug, w > rgb.w ? w : rgb.w);
    float *img = mv_malloc(sizeof(float) * 3 * h * w);
    augment_test(img, &rgb, h, w, &aug, &scratch);
    aug_scratch_free(&scratch);
    int H = rgb.h, W = rgb.w;
    uint8_t *cls = mv_malloc((size_t)H * W);
    mv_eval_buffers bufs = {0};
    int rc = eval_infer(cls, &bufs, m, &cfg->data, img, h, w, H, W);   // as evaluation
    eval_buffers_free(&bufs);
    free(img);
    if (rc < 0) { free(cls); image_free(&rgb); return mv_fail_context("%s", path); }
    mv_image pred = image_alloc(H, W, 3);
    for (long i = 0; i < (long)H * W; i++) {
        const uint8_t *c = cls[i] < MV_NUM_TRAIN_CLASSES ? MV_CLASS_PALETTE[cls[i]] : (const uint8_t[3]){0, 0, 0};
        memcpy(pred.px + 3 * i, c, 3);
    }
    free(cls);
    char name[256], out[2048];
    stem(name, sizeof name, path);
    snprintf(out, sizeof out, "%s/%s_pred.png", outdir, name);
    rc = image_write_png(out, &pred);
    image_free(&pred);
    if (rc == 0) printf("%s -> %s\n", path, out);

    char block[128];
    for (int j = 0; masks && rc == 0 && j < m->num_blocks; j++) {
        const mv_block *b = &m->blocks[j];
        if (!b->masked) continue;
        float *keep = mv_malloc(sizeof(float) * b->H * b->W);   // the mask, in host memory
        if ((rc = run_read(m, keep, b->m, sizeof(float) * b->H * b->W)) < 0) { free(keep); break; }
        // Nearest token for every pixel; dropped tokens at a third of the brightness.
        mv_image ov = image_alloc(H, W, 3);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int ty = y * b->H / H, tx = x * b->W / W;
                bool kept = keep[ty * b->W + tx] > 0.5f;
                for (int c = 0; c < 3; c++) {
                    int v = rgb.px[((size_t)y * W + x) * 3 + c];
                    ov.px[((size_t)y * W + x) * 3 + c] = (uint8_t)(kept ? v : v / 3);
                }
            }
        free(keep);
        model_mask_name(block, sizeof block, m, j);
        snprintf(out, sizeof out, "%s/%s_mask_%s.png", outdir, name, block);
        rc = image_write_png(out, &ov);
        image_free(&ov);
    }
    image_free(&rgb);
    return rc;
}

// Two inputs with one base name ("a/x.png", "b/x.jpg") would write the same DIR/x_pred.png, the
// second silently replacing the first: refused before any work.
static int check_distinct_names(const char *const *inputs, int n) {
    for (int i = 0; i < n; i++) {
        char si[1024];
        stem(si, sizeof si, inputs[i]);
        for (int j = 0; j < i; j++) {
            char sj[1024];
            stem(sj, sizeof sj, inputs[j]);
            if (!strcmp(si, sj))
                return mv_fail("%s and %s would both be written as %s_pred.png: give inputs with distinct names "
                               "(or predict them into separate --out folders)", inputs[j], inputs[i], si);
        }
    }
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *file = NULL, *ckpt = NULL, *outdir = NULL;
    const char **sets = mv_calloc(argc + 1, sizeof(char *)), **inputs = mv_calloc(argc + 1, sizeof(char *));
    int nsets = 0, ninputs = 0;
    bool masks = false, in_inputs = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(sets); free(inputs); return 0; }
        if (!strcmp(a, "--masks")) { masks = true; in_inputs = false; continue; }
        if (!strcmp(a, "--input")) { in_inputs = true; continue; }
        if (a[0] != '-') {
            if (in_inputs) inputs[ninputs++] = a;
            else file = a;
            continue;
        }
        in_inputs = false;
        if (!v) { cli_missing_value("predict", a, usage); free(sets); free(inputs); return 2; }
        if (!strcmp(a, "--checkpoint")) ckpt = v;
        else if (!strcmp(a, "--out")) outdir = v;
        else if (!strcmp(a, "--set")) sets[nsets++] = v;
        else { cli_unknown_option("predict", a, usage); free(sets); free(inputs); return 2; }
        i++;
    }
    if (!ckpt || !outdir || ninputs == 0) {
        fprintf(stderr, "maskvim predict: --checkpoint, --input and --out are required\n\n");
        usage(stderr);
        free(sets); free(inputs);
        return 2;
    }
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    mv_model *m = mv_calloc(1, sizeof *m);
    int rc = check_distinct_names(inputs, ninputs);
    if (rc == 0) rc = config_load(cfg, file, nsets, sets);
    // Each window has its own masks; --masks draws those of one forward over the whole image.
    if (rc == 0 && masks && cfg->data.test_mode == MV_TEST_SLIDE)
        rc = mv_fail("--masks draws the token masks of a whole-image forward; with data.test_mode: slide each window "
                     "has its own (add --set data.test_mode=whole)");
    if (rc == 0) rc = model_build(m, &cfg->model);
    if (rc == 0) rc = weights_load_all(&m->params, ckpt, NULL);
    if (rc == 0) rc = checkpoint_verify_weights(ckpt);   // a training checkpoint's tensors are checksummed
    if (rc == 0) checkpoint_warn_eval_config(ckpt, cfg, stderr, "maskvim predict");
    if (rc == 0) rc = mv_mkdir_p(outdir);
    char device[256];
    mv_comm solo = {.rank = 0, .world = 1, .local_rank = 0, .local_size = 1};
    mv_run_ctx dev_ctx = {.world_size = 1};
    if (rc == 0) rc = engine_open(m, NULL, &cfg->run, &solo, &dev_ctx, device, sizeof device);
    if (rc == 0) fprintf(stderr, "maskvim predict: on %s\n", device);
    for (int i = 0; i < ninputs && rc == 0; i++) rc = predict_one(m, cfg, inputs[i], outdir, masks);
    if (rc < 0) fprintf(stderr, "maskvim predict: %s\n", mv_last_error());
    engine_close(m);
    model_free(m); free(m); free(cfg); free(sets); free(inputs);
    return rc < 0 ? 1 : 0;
}
