// `maskvim step`: one forward and backward in training mode on a batch file, dumping the losses,
// the main logits and every parameter gradient by state_dict name. The debugging workhorse
// and the entry point of the PyTorch reference tests.
#include "launch/commands.h"
#include "core/config.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/h5util.h"
#include "core/model.h"
#include "core/weights_io.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim step (--config FILE | --preset NAME) [--set key=value ...]\n"
        "                    [--weights W.h5] [--init-out W.h5] [--batch B.h5 --dump OUT.h5]\n"
        "                    [--seed S] [--iter N] [--allow-missing]\n\n"
        "Runs one forward and backward pass in training mode and writes OUT.h5 with the scalar\n"
        "datasets loss_total, loss_ce, loss_aux, loss_ratio, loss_position (the last three\n"
        "before their weights), the main logits `logits` [B,classes,H/4,W/4], every gradient as\n"
        "`grad/<state_dict key>`, the masks used as `mask/<block>` and the BatchNorm running\n"
        "statistics after the step as `buffers/<key>`. The step runs where run.device says (the\n"
        "GPU with --set run.device=cuda, at --set run.precision=fp32|tf32|bf16); stderr names it.\n\n"
        "  --config FILE     training configuration YAML (its model and mask sections, and\n"
        "                    run.device and run.precision, are used; not an experiment file)\n"
        "  --preset NAME     maskvim-nano | maskvim-t | maskvim-s | maskvim-b\n"
        "  --set key=value   override, e.g. --set mask.noise=false --set model.dropout=0\n"
        "  --weights W.h5    weights file (one float32 dataset per state_dict key); without it\n"
        "                    the model is freshly initialised from --seed\n"
        "  --allow-missing   let --weights lack tensors (an encoder-only checkpoint): they keep\n"
        "                    their initialisation from --seed; without it a missing tensor is\n"
        "                    an error (tensors the model lacks are listed and ignored)\n"
        "  --init-out W.h5   write the (initialised or loaded) weights before the step\n"
        "  --batch B.h5      `images` float32 [B,3,H,W] (normalised), `labels` uint8/int64 [B,H,W]\n"
        "  --dump OUT.h5     where the step's results go (the datasets above; written atomically);\n"
        "                    required with --batch, unused without it\n"
        "  --seed S          initialisation and noise seed (default 0)\n"
        "  --iter N          iteration number keying the random draws (default 0)\n\n"
        "With --set mask.noise=false --set model.dropout=0 --set model.drop_path=0\n"
        "--set model.decoder_drop_path=0 the step is fully deterministic.\n");
}

// Reads images and labels, checking shapes and label values against the model.
static int read_batch(const char *path, int classes, float **images, uint8_t **labels, int *B, int *H, int *W) {
    hid_t f = h5_open_read(path);
    if (f < 0) return -1;
    int nd;
    long s[8], ls[8];
    int rc = h5_shape(f, path, "images", &nd, s);
    if (rc == 0 && (nd != 4 || s[1] != 3)) rc = mv_fail("%s: 'images' must be float32 [B,3,H,W], got rank %d", path, nd);
    if (rc == 0) rc = h5_shape(f, path, "labels", &nd, ls);
    if (rc == 0 && (nd != 3 || ls[0] != s[0] || ls[1] != s[2] || ls[2] != s[3]))
        rc = mv_fail("%s: 'labels' must be [B,H,W] = [%ld,%ld,%ld] to match 'images'", path, s[0], s[2], s[3]);
    if (rc < 0) { H5Fclose(f); return -1; }
    *B = (int)s[0]; *H = (int)s[2]; *W = (int)s[3];
    size_t n = (size_t)s[0] * s[2] * s[3];
    *images = mv_malloc(sizeof(float) * n * 3);
    *labels = mv_malloc(n);
    long *lab = mv_malloc(sizeof(long) * n);
    rc = h5_read_floats(f, path, "images", *images, n * 3);
    for (size_t i = 0; rc == 0 && i < n * 3; i++)
        if (!isfinite((*images)[i])) rc = mv_fail("%s: 'images' value %g at index %zu is not finite", path, (*images)[i], i);
    if (rc == 0) {
        // HDF5 would convert float labels to integers by truncation (3.7 -> class 3): refuse them.
        hid_t ds = H5Dopen2(f, "labels", H5P_DEFAULT), type = H5Dget_type(ds);
        if (H5Tget_class(type) != H5T_INTEGER)
            rc = mv_fail("%s: 'labels' must be an integer dataset (uint8 or int64), not floating point", path);
        else if (H5Dread(ds, H5T_NATIVE_LONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab) < 0)
            rc = mv_fail("%s: cannot read 'labels' as integers", path);
        H5Tclose(type);
        H5Dclose(ds);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (lab[i] == 255 || (lab[i] >= 0 && lab[i] < classes)) (*labels)[i] = (uint8_t)lab[i];
        else rc = mv_fail("%s: label value %ld at index %zu is neither a class (0..%d) nor 255 (ignore)", path, lab[i], i, classes - 1);
    }
    free(lab);
    H5Fclose(f);
    return rc;
}

// Everything comes from host memory: the losses, `logits` (the host copy of the main logits),
// the host arenas of gradients and buffers, and masks[j] (block j's mask, NULL when unmasked).
static int write_dump(const char *path, const mv_model *m, const float *logits, float *const *masks) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = h5_create(tmp);
    if (f < 0) return -1;
    int rc = 0;
    rc |= h5_write_scalar(f, "loss_total", m->loss_total);
    rc |= h5_write_scalar(f, "loss_ce", m->loss_ce);
    rc |= h5_write_scalar(f, "loss_aux", m->loss_aux);
    rc |= h5_write_scalar(f, "loss_ratio", m->loss_ratio);
    rc |= h5_write_scalar(f, "loss_position", m->loss_position);
    int B = m->B, h = m->Hs[0], w = m->Ws[0], K = m->cfg.num_classes;
    float *nchw = mv_malloc(sizeof(float) * B * h * w * K);
    nhwc_to_nchw(nchw, logits, B, h, w, K);
    int ls[4] = {B, K, h, w};
    rc |= h5_write_floats(f, "logits", nchw, 4, ls);
    free(nchw);
    char name[160], block[128];
    const mv_params *p = &m->params;
    for (int i = 0; i < p->count && rc == 0; i++) {
        const mv_param *q = &p->items[i];
        // BatchNorm running statistics after the step (buffers), gradients of everything else.
        snprintf(name, sizeof name, "%s/%s", q->is_buffer ? "buffers" : "grad", q->name);
        rc |= h5_write_floats(f, name, (q->is_buffer ? p->buffers : p->grads) + q->offset, q->ndim, q->shape);
    }
    for (int j = 0; j < m->num_blocks && rc == 0; j++) {
        model_mask_name(block, sizeof block, m, j);
        if (!masks[j] || !block[0]) continue;
        snprintf(name, sizeof name, "mask/%s", block);
        int ms[3] = {B, m->blocks[j].H, m->blocks[j].W};
        rc |= h5_write_floats(f, name, masks[j], 3, ms);
    }
    H5Fclose(f);
    if (rc) { remove(tmp); return mv_fail_context("%s", path); }
    return h5_publish(tmp, path);
}

// One training step where run.device says, then the dump from host copies of what it produced.
static int step_and_dump(mv_model *m, const mv_config *cfg, const float *images, const uint8_t *labels, int B, int H,
                         int W, long seed, long iter, const char *dump) {
    int *ids = mv_malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) ids[b] = b;
    mv_run_ctx ctx = {.training = true, .seed = (uint64_t)seed, .step = (uint32_t)iter, .sample_ids = ids, .world_size = 1};
    mv_comm solo = {.rank = 0, .world = 1, .local_rank = 0, .local_size = 1};
    float **masks = mv_calloc(m->num_blocks, sizeof(float *));
    char device[256];
    int rc = engine_open(m, NULL, &cfg->run, &solo, &ctx, device, sizeof device);
    if (rc == 0) fprintf(stderr, "maskvim step: on %s\n", device);
    if (rc == 0) rc = run_plan(m, B, H, W, MV_PLAN_TRAIN);
    if (rc == 0) {
        run_zero_grads(m);
        rc = run_forward(m, images, labels, &ctx);
    }
    if (rc == 0) run_backward(m, &ctx);
    const float *logits = rc == 0 ? run_logits(m) : NULL;
    if (rc == 0 && !logits) rc = -1;
    for (int j = 0; j < m->num_blocks && rc == 0; j++) {
        const mv_block *b = &m->blocks[j];
        if (!b->masked) continue;
        size_t n = (size_t)B * b->H * b->W;
        masks[j] = mv_malloc(sizeof(float) * n);
        rc = run_read(m, masks[j], b->m, sizeof(float) * n);
    }
    if (rc == 0) rc = run_state_to_host(m, NULL, true);
    if (rc == 0) rc = write_dump(dump, m, logits, masks);
    if (rc == 0)
        printf("loss_total %.6f  ce %.6f  aux %.6f  ratio %.6f  position %.6f\n", m->loss_total, m->loss_ce, m->loss_aux,
               m->loss_ratio, m->loss_position);
    engine_close(m);
    for (int j = 0; j < m->num_blocks; j++) free(masks[j]);
    free(masks);
    free(ids);
    return rc;
}

int cmd_step(int argc, char **argv) {
    const char *config = NULL, *weights = NULL, *init_out = NULL, *batch = NULL, *dump = NULL, *preset = NULL;
    const char **sets = mv_calloc(argc + 1, sizeof(char *));
    char preset_set[96] = "";
    int nsets = 0;
    long seed = 0, iter = 0;
    bool allow_missing = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(sets); return 0; }
        if (!strcmp(a, "--allow-missing")) { allow_missing = true; continue; }
        if (!v) { cli_missing_value("step", a, usage); free(sets); return 2; }
        if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--preset")) { snprintf(preset_set, sizeof preset_set, "model.preset=%s", v); preset = v; }
        else if (!strcmp(a, "--set")) sets[nsets++] = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--init-out")) init_out = v;
        else if (!strcmp(a, "--batch")) batch = v;
        else if (!strcmp(a, "--dump")) dump = v;
        else if (!strcmp(a, "--seed") || !strcmp(a, "--iter")) {
            long n;
            if (cli_parse_long(v, 0, LONG_MAX, &n) < 0) {
                fprintf(stderr, "maskvim step: %s wants a non-negative integer, not '%s'\n", a, v);
                free(sets);
                return 2;
            }
            *(!strcmp(a, "--seed") ? &seed : &iter) = n;
        }
        else { cli_unknown_option("step", a, usage); free(sets); return 2; }
        i++;
    }
    if (!config == !preset) {
        fprintf(stderr, "maskvim step: give --config FILE or --preset NAME%s\n", config ? ", not both (a preset over a "
                "file's model keys would leave the file's model under the preset's name)" : "");
        free(sets);
        return 2;
    }
    if (preset && check_preset("step", preset) < 0) { free(sets); return 2; }
    if (batch && !dump) { fprintf(stderr, "maskvim step: --batch needs --dump OUT.h5\n"); free(sets); return 2; }
    if (!batch && !init_out) { fprintf(stderr, "maskvim step: nothing to do (give --batch/--dump or --init-out)\n"); free(sets); return 2; }
    // The preset goes first so that every --set applies on top of it.
    if (preset_set[0]) { memmove(sets + 1, sets, sizeof(char *) * nsets); sets[0] = preset_set; nsets++; }

    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    mv_model *m = mv_calloc(1, sizeof *m);
    float *images = NULL;
    uint8_t *labels = NULL;
    int rc = config_load(cfg, config, nsets, sets);
    if (rc == 0) rc = model_build(m, &cfg->model);
    if (rc == 0) params_init(&m->params, (uint64_t)seed);
    if (rc == 0 && weights) {
        int missing = 0, unexpected = 0;
        rc = weights_load(&m->params, weights, stderr, &missing, &unexpected);
        // A comparison against another implementation must not run on silently initialised
        // tensors: a missing one is an error unless asked for (a backbone-only checkpoint).
        if (rc == 0 && missing && !allow_missing)
            rc = mv_fail("%s: %d tensor(s) of the model are not in the file (listed above); give --allow-missing "
                         "to keep them initialised from --seed", weights, missing);
        else if (rc == 0 && (missing || unexpected))
            fprintf(stderr, "maskvim step: %s: %d missing (kept initialised), %d unexpected (ignored)\n", weights, missing, unexpected);
    }
    if (rc == 0 && init_out) rc = weights_save(&m->params, init_out);
    if (rc == 0 && batch) {
        int B, H, W;
        rc = read_batch(batch, cfg->model.num_classes, &images, &labels, &B, &H, &W);
        if (rc == 0) rc = step_and_dump(m, cfg, images, labels, B, H, W, seed, iter, dump);
    }
    if (rc < 0) fprintf(stderr, "maskvim step: %s\n", mv_last_error());
    free(images);
    free(labels);
    model_free(m);
    free(m);
    free(cfg);
    free(sets);
    return rc < 0 ? 1 : 0;
}
