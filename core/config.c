// The run configuration (config.h): built-in defaults, the key table of the data, optim,
// schedule and run sections, validation, YAML output and comparison.
// Reading YAML is config_yaml.c (the tree: yaml_tree.c); the model.* / mask.* keys are
// model_config_set.c.
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(sizeof(mv_device) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(mv_precision) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(mv_metric) == sizeof(int), "enum keys are stored as int");

static const char *const DEVICES[] = {"auto", "cpu", "cuda", NULL};
static const char *const PRECISIONS[] = {"fp32", "tf32", "bf16", NULL};
static const char *const METRICS[] = {"mIoU", "mAcc", "aAcc", NULL};
static const char *const TEST_MODES[] = {"whole", "slide", NULL};

#define C(field) offsetof(mv_config, field)
#define SIZE(field) sizeof(((mv_config *)0)->field)
static const mv_key KEYS[] = {
    {.name = "data.crop", .type = MV_KEY_INT, .offset = C(model.crop_h), .count = 2, .lo = 32, .hi = 16384,
     .flags = MV_KEY_ALIAS, .doc = "another name for model.crop (h, w)"},
    {.name = "data.batch_per_rank", .type = MV_KEY_INT, .offset = C(data.batch_per_rank), .count = 1,
     .lo = 1, .hi = 4096, .doc = "images per rank and step"},
    {.name = "data.workers", .type = MV_KEY_INT, .offset = C(data.workers), .count = 1, .lo = 0, .hi = 256,
     .doc = "loader threads per rank (0: load in the training thread)"},
    {.name = "data.scale", .type = MV_KEY_INT, .offset = C(data.scale), .count = 2, .lo = 16, .hi = 65536,
     .doc = "(long, short) side: reference of the random rescale, and test images are resized to fit it"},
    {.name = "data.ratio_range", .type = MV_KEY_FLOAT, .offset = C(data.ratio_range), .count = 2, .lo = 0,
     .hi = 100, .flags = MV_KEY_LO_OPEN, .doc = "random rescale ratio (min, max)"},
    {.name = "data.cat_max_ratio", .type = MV_KEY_FLOAT, .offset = C(data.cat_max_ratio), .count = 1,
     .lo = 0, .hi = 1, .flags = MV_KEY_LO_OPEN, .doc = "random crop: largest share one class may take"},
    {.name = "data.flip_prob", .type = MV_KEY_FLOAT, .offset = C(data.flip_prob), .count = 1, .lo = 0,
     .hi = 1, .doc = "horizontal flip probability"},
    {.name = "data.photometric", .type = MV_KEY_BOOL, .offset = C(data.photometric), .count = 1,
     .doc = "photometric distortion in training"},
    {.name = "data.test_mode", .type = MV_KEY_ENUM, .offset = C(data.test_mode), .count = 1, .choices = TEST_MODES,
     .doc = "evaluation and prediction: whole image | slide (windows of data.test_crop, logits averaged)"},
    {.name = "data.test_crop", .type = MV_KEY_INT, .offset = C(data.test_crop), .count = 2, .lo = 0, .hi = 16384,
     .doc = "slide: (h, w) of a window (0: model.crop)"},
    {.name = "data.test_stride", .type = MV_KEY_INT, .offset = C(data.test_stride), .count = 2, .lo = 0, .hi = 16384,
     .doc = "slide: (h, w) step between windows (0: two thirds of the window, rounded down)"},
    {.name = "data.synthetic.train_count", .type = MV_KEY_INT, .offset = C(data.synthetic.train_count),
     .count = 1, .lo = 1, .hi = 100000000, .doc = "training images per synthetic domain"},
    {.name = "data.synthetic.val_count", .type = MV_KEY_INT, .offset = C(data.synthetic.val_count),
     .count = 1, .lo = 1, .hi = 100000000, .doc = "validation images per synthetic domain"},
    {.name = "data.synthetic.size", .type = MV_KEY_INT, .offset = C(data.synthetic.size), .count = 2,
     .lo = 16, .hi = 8192, .doc = "(h, w) of synthetic images"},
    {.name = "data.synthetic.seed", .type = MV_KEY_INT, .offset = C(data.synthetic.seed), .count = 1,
     .lo = 0, .hi = 2147483647, .doc = "seed of the synthetic scenes"},
    {.name = "optim.lr", .type = MV_KEY_DOUBLE, .offset = C(optim.lr), .count = 1, .lo = 0, .hi = 10,
     .flags = MV_KEY_LO_OPEN, .doc = "AdamW base learning rate"},
    {.name = "optim.betas", .type = MV_KEY_DOUBLE, .offset = C(optim.betas), .count = 2, .lo = 0, .hi = 1,
     .flags = MV_KEY_HI_OPEN, .doc = "AdamW (beta1, beta2)"},
    {.name = "optim.eps", .type = MV_KEY_DOUBLE, .offset = C(optim.eps), .count = 1, .lo = 0, .hi = 1,
     .flags = MV_KEY_LO_OPEN, .doc = "AdamW epsilon (added after the square root)"},
    {.name = "optim.weight_decay", .type = MV_KEY_DOUBLE, .offset = C(optim.weight_decay), .count = 1,
     .lo = 0, .hi = 10, .doc = "decoupled weight decay"},
    {.name = "schedule.warmup_iters", .type = MV_KEY_INT, .offset = C(schedule.warmup_iters), .count = 1,
     .lo = 0, .hi = 1000000000, .doc = "LinearLR end (iterations of warm-up; 0 = none)"},
    {.name = "schedule.warmup_start", .type = MV_KEY_DOUBLE, .offset = C(schedule.warmup_start), .count = 1,
     .lo = 0, .hi = 1, .flags = MV_KEY_LO_OPEN, .doc = "LinearLR start_factor"},
    {.name = "schedule.max_iters", .type = MV_KEY_INT, .offset = C(schedule.max_iters), .count = 1, .lo = 1,
     .hi = 1000000000, .doc = "training iterations (PolyLR end)"},
    {.name = "schedule.power", .type = MV_KEY_DOUBLE, .offset = C(schedule.power), .count = 1, .lo = 0,
     .hi = 100, .doc = "PolyLR power"},
    {.name = "schedule.eta_min", .type = MV_KEY_DOUBLE, .offset = C(schedule.eta_min), .count = 1, .lo = 0,
     .hi = 10, .doc = "PolyLR floor (absolute learning rate)"},
    {.name = "run.device", .type = MV_KEY_ENUM, .offset = C(run.device), .count = 1, .choices = DEVICES,
     .doc = "auto (CUDA when built and present) | cpu | cuda"},
    {.name = "run.precision", .type = MV_KEY_ENUM, .offset = C(run.precision), .count = 1, .choices = PRECISIONS,
     .doc = "GPU GEMMs: fp32 | tf32 | bf16 (fp32 weights, accumulation and scan state; no effect on the CPU)"},
    {.name = "run.bucket_mb", .type = MV_KEY_DOUBLE, .offset = C(run.bucket_mb), .count = 1, .lo = 0,
     .hi = 4096, .flags = MV_KEY_LO_OPEN, .doc = "gradient all-reduce bucket size in MiB (several ranks)"},
    {.name = "run.first_bucket_mb", .type = MV_KEY_DOUBLE, .offset = C(run.first_bucket_mb), .count = 1, .lo = 0,
     .hi = 4096, .flags = MV_KEY_LO_OPEN, .doc = "the first (last layers') bucket in MiB; a larger value is cut to run.bucket_mb"},
    {.name = "run.seed", .type = MV_KEY_INT, .offset = C(run.seed), .count = 1, .lo = 0, .hi = 2147483647,
     .doc = "seed of initialisation, masks' noise, dropout and data order"},
    {.name = "run.init_weights", .type = MV_KEY_STRING, .offset = C(run.init_weights), .count = 1,
     .size = SIZE(run.init_weights), .doc = "weights file a new run starts from, e.g. the encoder of VMamba's ImageNet "
     "checkpoint (\"\": the seeded initialisation)"},
    {.name = "run.work_dir", .type = MV_KEY_STRING, .offset = C(run.work_dir), .count = 1,
     .size = SIZE(run.work_dir), .doc = "run directory (config, logs, checkpoints)"},
    {.name = "run.log_every", .type = MV_KEY_INT, .offset = C(run.log_every), .count = 1, .lo = 1,
     .hi = 1000000000, .doc = "iterations between log lines"},
    {.name = "run.ckpt_every", .type = MV_KEY_INT, .offset = C(run.ckpt_every), .count = 1, .lo = 0,
     .hi = 1000000000, .doc = "iterations between checkpoints (0: only the final one)"},
    {.name = "run.eval_every", .type = MV_KEY_INT, .offset = C(run.eval_every), .count = 1, .lo = 0,
     .hi = 1000000000, .doc = "iterations between evaluations (0: only at the end)"},
    {.name = "run.keep_ckpts", .type = MV_KEY_INT, .offset = C(run.keep_ckpts), .count = 1, .lo = 0,
     .hi = 1000000, .doc = "periodic checkpoints kept (0: all); the best is kept apart"},
    {.name = "run.select_metric", .type = MV_KEY_ENUM, .offset = C(run.select_metric), .count = 1,
     .choices = METRICS, .doc = "metric that chooses the best checkpoint"},
    {.name = "run.select_domain", .type = MV_KEY_STRING, .offset = C(run.select_domain), .count = 1,
     .size = SIZE(run.select_domain), .doc = "data.val entry that chooses the best checkpoint (\"\": the first)"},
};
#undef C
#undef SIZE
static const int NUM_KEYS = (int)(sizeof KEYS / sizeof KEYS[0]);

const mv_key *config_keys(int *n) {
    *n = NUM_KEYS;
    return KEYS;
}

static void add_source(mv_source *list, int *count, const char *name, const char *path) {
    mv_source *s = &list[(*count)++];
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->repeat = 1;
}

static void add_rule(mv_optim_config *o, const char *match, float lr_mult, float decay_mult) {
    mv_optim_rule *r = &o->rules[o->num_rules++];
    snprintf(r->match, sizeof r->match, "%s", match);
    r->lr_mult = lr_mult;
    r->decay_mult = decay_mult;
}

void config_defaults(mv_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    MV_CHECK(model_config_preset(&cfg->model, "maskvim-nano") == 0, "%s", mv_last_error());

    // Train on one synthetic domain, evaluate on it (first: it selects checkpoints, so the
    // targets never leak into model selection) and on the other four.
    mv_data_config *d = &cfg->data;
    static const char *const domains[] = {"clear", "dusk", "fog", "rain", "painted"};
    add_source(d->train, &d->num_train, "clear", "synthetic:clear");
    for (int i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "synthetic:%s", domains[i]);
        add_source(d->val, &d->num_val, domains[i], path);
    }
    d->batch_per_rank = 2;
    d->workers = 2;
    d->scale[0] = 256;   // the synthetic images' own size: (long, short) = (256, 128)
    d->scale[1] = 128;
    d->ratio_range[0] = 0.5f;
    d->ratio_range[1] = 2.0f;
    d->cat_max_ratio = 0.75f;
    d->flip_prob = 0.5f;
    d->photometric = true;
    d->synthetic.train_count = 500;
    d->synthetic.val_count = 100;
    d->synthetic.size[0] = 128;
    d->synthetic.size[1] = 256;

    // docs/math.md section 6.
    mv_optim_config *o = &cfg->optim;
    o->lr = 6e-5;
    o->betas[0] = 0.9;
    o->betas[1] = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0.01;
    add_rule(o, "norm", 1.0f, 0.0f);
    add_rule(o, "token_mask", 10000.0f, 1.0f);

    mv_schedule_config *s = &cfg->schedule;
    s->warmup_iters = 1500;
    s->warmup_start = 1e-6;
    s->max_iters = 20000;
    s->power = 1.0;
    s->eta_min = 0.0;

    mv_run_config *r = &cfg->run;
    r->device = MV_DEVICE_AUTO;
    r->bucket_mb = 25;
    r->first_bucket_mb = 1;
    snprintf(r->work_dir, sizeof r->work_dir, "runs/default");
    r->log_every = 50;
    r->ckpt_every = 2000;
    r->eval_every = 2000;
    r->keep_ckpts = 3;
    r->select_metric = MV_METRIC_MIOU;
}

static int check_sources(const mv_source *list, int n, const char *key) {
    if (n < 0 || n > MV_MAX_SOURCES) return mv_fail("%s: %d entries (at most %d)", key, n, MV_MAX_SOURCES);
    for (int i = 0; i < n; i++) {
        const mv_source *s = &list[i];
        if (!memchr(s->name, '\0', sizeof s->name) || !memchr(s->path, '\0', sizeof s->path))
            return mv_fail("%s[%d]: name or path not terminated", key, i);
        if (!s->name[0]) return mv_fail("%s[%d]: empty name", key, i);
        if (!s->path[0]) return mv_fail("%s[%d] (%s): empty path", key, i, s->name);
        if (s->repeat < 1 || s->repeat > 1000000) return mv_fail("%s[%d] (%s): repeat %d out of range [1, 1000000]", key, i, s->name, s->repeat);
        for (int j = 0; j < i; j++)
            if (!strcmp(list[j].name, s->name))
                return mv_fail("%s: name '%s' appears twice (entries %d and %d); give each a distinct name",
                               key, s->name, j, i);
    }
    return 0;
}

const mv_source *config_find_val(const mv_config *cfg, const char *name) {
    if (cfg->data.num_val < 1) return NULL;
    if (!name || !name[0]) return &cfg->data.val[0];
    for (int i = 0; i < cfg->data.num_val; i++)
        if (!strcmp(cfg->data.val[i].name, name)) return &cfg->data.val[i];
    return NULL;
}

int config_validate(const mv_config *cfg) {
    MV_TRY(model_config_check(&cfg->model));
    MV_TRY(model_config_validate(&cfg->model));
    for (int i = 0; i < NUM_KEYS; i++) MV_TRY(key_check(cfg, &KEYS[i]));

    const mv_data_config *d = &cfg->data;
    if (d->num_train < 1) return mv_fail("data.train: at least one training source is needed");
    MV_TRY(check_sources(d->train, d->num_train, "data.train"));
    MV_TRY(check_sources(d->val, d->num_val, "data.val"));
    if (d->ratio_range[0] > d->ratio_range[1])
        return mv_fail("data.ratio_range: min %g is above max %g", d->ratio_range[0], d->ratio_range[1]);
    // The model takes at most INT_MAX image values per batch (model_plan); refused here, before
    // the loader allocates the batch and the synthetic data is written.
    double values = (double)d->batch_per_rank * cfg->model.crop_h * cfg->model.crop_w * 3;
    if (values > (double)INT_MAX)
        return mv_fail("data.batch_per_rank (%d) x model.crop (%dx%d): %.3g image values per batch, at most %d",
                       d->batch_per_rank, cfg->model.crop_h, cfg->model.crop_w, values, INT_MAX);
    // Whole-image inference gives the model an image fitted to data.scale: up to 3 x long x short
    // values, which must fit the same limit (found at the first evaluation otherwise, after training).
    double fitted = 3.0 * d->scale[0] * d->scale[1];
    if (d->test_mode == MV_TEST_WHOLE && fitted > (double)INT_MAX)
        return mv_fail("data.scale %d,%d: a whole-image evaluation of an image fitted to it takes up to %.3g values, "
                       "at most %d: lower data.scale, or evaluate with data.test_mode: slide", d->scale[0],
                       d->scale[1], fitted, INT_MAX);
    for (int i = 0; i < 2; i++) {
        if (d->test_crop[i] != 0 && d->test_crop[i] < 32)
            return mv_fail("data.test_crop: a window of %dx%d is too small: the model needs at least 32x32 (0: model.crop)",
                           d->test_crop[0], d->test_crop[1]);
        int crop = d->test_crop[i] ? d->test_crop[i] : (i ? cfg->model.crop_w : cfg->model.crop_h);
        if (d->test_stride[i] > crop)
            return mv_fail("data.test_stride: %s step %d is larger than the window (%d): pixels between windows "
                           "would get no logits", i ? "horizontal" : "vertical", d->test_stride[i], crop);
    }
    if (d->scale[0] < d->scale[1])
        return mv_fail("data.scale: give (long, short) sides, e.g. [2048, 1024] (got %d, %d)", d->scale[0], d->scale[1]);

    const mv_optim_config *o = &cfg->optim;
    if (o->num_rules < 0 || o->num_rules > MV_MAX_RULES)
        return mv_fail("optim.rules: %d rules (at most %d)", o->num_rules, MV_MAX_RULES);
    for (int i = 0; i < o->num_rules; i++) {
        const mv_optim_rule *r = &o->rules[i];
        if (!memchr(r->match, '\0', sizeof r->match) || !r->match[0])
            return mv_fail("optim.rules[%d]: empty match", i);
        if (!(r->lr_mult >= 0 && r->lr_mult <= 1e6) || !(r->decay_mult >= 0 && r->decay_mult <= 1e6))
            return mv_fail("optim.rules[%d] (%s): lr_mult %g / decay_mult %g out of range [0, 1e6]", i,
                           r->match, r->lr_mult, r->decay_mult);
        for (int j = 0; j < i; j++)
            if (!strcmp(o->rules[j].match, r->match))
                return mv_fail("optim.rules[%d] and optim.rules[%d] both have match '%s'; give one rule per match",
                               j, i, r->match);
    }

    const mv_schedule_config *s = &cfg->schedule;
    if (s->warmup_iters >= s->max_iters)
        return mv_fail("schedule.warmup_iters (%d) must be below schedule.max_iters (%d)", s->warmup_iters,
                       s->max_iters);

    const mv_run_config *r = &cfg->run;
    if (!r->work_dir[0]) return mv_fail("run.work_dir is empty: give the run's folder (e.g. runs/NAME)");
    if (r->select_domain[0] && !config_find_val(cfg, r->select_domain)) {
        char names[MV_MAX_SOURCES * (MV_NAME_MAX + 2)] = "";
        size_t len = 0;
        for (int i = 0; i < d->num_val; i++) {   // "a, b, c" without snprintf's truncation games
            const char *sep = i ? ", " : "", *name = d->val[i].name;
            size_t ns = strlen(sep), nn = strnlen(name, MV_NAME_MAX);
            if (len + ns + nn + 1 > sizeof names) break;
            memcpy(names + len, sep, ns);
            memcpy(names + len + ns, name, nn);
            len += ns + nn;
            names[len] = '\0';
        }
        return mv_fail("run.select_domain: '%s' is not the name of a data.val entry (names: %s)",
                       r->select_domain, d->num_val ? names : "none");
    }
    return 0;
}

// Writes the keys directly under `prefix` (no deeper dots), skipping aliases and hidden ones.
static void write_keys(FILE *f, const void *obj, const mv_key *keys, int n, const char *prefix, int indent) {
    size_t plen = strlen(prefix);
    for (int i = 0; i < n; i++) {
        const mv_key *k = &keys[i];
        if (k->flags & (MV_KEY_ALIAS | MV_KEY_HIDDEN)) continue;
        if (strncmp(k->name, prefix, plen) || k->name[plen] != '.' || strchr(k->name + plen + 1, '.')) continue;
        char text[1024];
        key_format(text, sizeof text, obj, k);
        fprintf(f, "%*s%s: %s\n", indent, "", k->name + plen + 1, text);
    }
}

static void write_sources(FILE *f, const char *key, const mv_source *list, int n, bool repeat) {
    if (n == 0) { fprintf(f, "  %s: []\n", key); return; }
    fprintf(f, "  %s:\n", key);
    for (int i = 0; i < n; i++) {
        char name[5 * MV_NAME_MAX], path[5 * MV_PATH_MAX];
        key_format_string(name, sizeof name, list[i].name);
        key_format_string(path, sizeof path, list[i].path);
        if (repeat) fprintf(f, "    - {name: %s, path: %s, repeat: %d}\n", name, path, list[i].repeat);
        else fprintf(f, "    - {name: %s, path: %s}\n", name, path);
    }
}

int config_write_yaml(FILE *f, const mv_config *cfg) {
    int nm;
    const mv_key *mk = model_config_keys(&nm);
    fprintf(f, "# maskvim configuration, every key resolved (key reference: docs/config.md)\n");
    fprintf(f, "model:\n");
    write_keys(f, &cfg->model, mk, nm, "model", 2);
    fprintf(f, "mask:\n");
    write_keys(f, &cfg->model, mk, nm, "mask", 2);

    fprintf(f, "data:\n");
    write_sources(f, "train", cfg->data.train, cfg->data.num_train, true);
    write_sources(f, "val", cfg->data.val, cfg->data.num_val, false);
    write_keys(f, cfg, KEYS, NUM_KEYS, "data", 2);
    fprintf(f, "  synthetic:\n");
    write_keys(f, cfg, KEYS, NUM_KEYS, "data.synthetic", 4);

    fprintf(f, "optim:\n");
    write_keys(f, cfg, KEYS, NUM_KEYS, "optim", 2);
    if (cfg->optim.num_rules == 0) fprintf(f, "  rules: []\n");
    else fprintf(f, "  rules:\n");
    for (int i = 0; i < cfg->optim.num_rules; i++) {
        const mv_optim_rule *r = &cfg->optim.rules[i];
        char match[5 * MV_MATCH_MAX], lr[32], decay[32];
        key_format_string(match, sizeof match, r->match);
        key_format_float(lr, sizeof lr, r->lr_mult);
        key_format_float(decay, sizeof decay, r->decay_mult);
        fprintf(f, "    - {match: %s, lr_mult: %s, decay_mult: %s}\n", match, lr, decay);
    }

    fprintf(f, "schedule:\n");
    write_keys(f, cfg, KEYS, NUM_KEYS, "schedule", 2);
    fprintf(f, "run:\n");
    write_keys(f, cfg, KEYS, NUM_KEYS, "run", 2);
    if (fflush(f) != 0 || ferror(f)) return mv_fail("writing the configuration: %s", strerror(errno));
    return 0;
}

// One line per key of one table: "name  value  # what it takes: what it does".
static void write_reference(FILE *f, const void *obj, const mv_key *keys, int n, int width) {
    for (int i = 0; i < n; i++) {
        const mv_key *k = &keys[i];
        if (k->flags & MV_KEY_HIDDEN) continue;
        char value[1024], takes[256];
        if (k->flags & MV_KEY_ALIAS) snprintf(value, sizeof value, "(sets another key)");
        else key_format(value, sizeof value, obj, k);
        key_describe(takes, sizeof takes, k);
        fprintf(f, "%-*s %-22s # %s: %s\n", width, k->name, value, takes, k->doc ? k->doc : "");
    }
}

int config_write_key_reference(FILE *f, const mv_config *cfg) {
    int nm, width = 0;
    const mv_key *mk = model_config_keys(&nm);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < (t ? NUM_KEYS : nm); i++) {
            int len = (int)strlen((t ? KEYS : mk)[i].name);
            if (len > width) width = len;
        }
    fprintf(f, "# every configuration key: its value here (FILE and --set resolved, or the built-in default), what "
               "it takes, what it does\n");
    write_reference(f, &cfg->model, mk, nm, width);
    write_reference(f, cfg, KEYS, NUM_KEYS, width);
    fprintf(f, "# and three lists, not single keys: data.train ({name, path, repeat} sources), data.val ({name, "
               "path}) and optim.rules ({match, lr_mult, decay_mult}): docs/config.md\n");
    if (fflush(f) != 0 || ferror(f)) return mv_fail("writing the key reference: %s", strerror(errno));
    return 0;
}

char *config_to_yaml(const mv_config *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    MV_CHECK(ms, "open_memstream failed");
    int rc = config_write_yaml(ms, cfg);
    fclose(ms);
    if (rc < 0) { free(buf); return NULL; }
    return buf;
}

int config_save(const char *path, const mv_config *cfg) {
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    if (config_write_yaml(out.f, cfg) < 0) {
        mv_atomic_abort(&out);
        return mv_fail_context("%s", path);
    }
    return mv_atomic_commit(&out, true);
}

static bool sources_equal(const mv_source *a, const mv_source *b, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].name, b[i].name) || strcmp(a[i].path, b[i].path) || a[i].repeat != b[i].repeat) return false;
    return true;
}

bool config_equal(const mv_config *a, const mv_config *b) {
    if (!model_config_equal(&a->model, &b->model)) return false;
    for (int i = 0; i < NUM_KEYS; i++)
        if (!key_equal(a, b, &KEYS[i])) return false;
    const mv_data_config *da = &a->data, *db = &b->data;
    if (da->num_train != db->num_train || da->num_val != db->num_val) return false;
    if (!sources_equal(da->train, db->train, da->num_train) || !sources_equal(da->val, db->val, da->num_val))
        return false;
    if (a->optim.num_rules != b->optim.num_rules) return false;
    for (int i = 0; i < a->optim.num_rules; i++) {
        const mv_optim_rule *ra = &a->optim.rules[i], *rb = &b->optim.rules[i];
        if (strcmp(ra->match, rb->match) || ra->lr_mult != rb->lr_mult || ra->decay_mult != rb->decay_mult)
            return false;
    }
    return true;
}

// Names the key as config_equal walks them (aliases skipped: the canonical key names it).
static bool first_key_difference(const void *a, const void *b, const mv_key *keys, int n, char *key, char *va,
                                 char *vb, size_t cap) {
    for (int i = 0; i < n; i++) {
        if ((keys[i].flags & MV_KEY_ALIAS) || key_equal(a, b, &keys[i])) continue;
        const mv_key *k = key_user_facing(keys, i);
        snprintf(key, cap, "%s", k->name);
        key_format(va, cap, a, k);
        key_format(vb, cap, b, k);
        return true;
    }
    return false;
}

bool config_first_difference(const mv_config *a, const mv_config *b, char *key, char *va, char *vb, size_t cap) {
    int nm;
    const mv_key *mk = model_config_keys(&nm);
    if (first_key_difference(&a->model, &b->model, mk, nm, key, va, vb, cap)) return true;
    if (first_key_difference(a, b, KEYS, NUM_KEYS, key, va, vb, cap)) return true;
    const mv_data_config *da = &a->data, *db = &b->data;
    const char *list = NULL;
    if (da->num_train != db->num_train || !sources_equal(da->train, db->train, da->num_train)) list = "data.train";
    else if (da->num_val != db->num_val || !sources_equal(da->val, db->val, da->num_val)) list = "data.val";
    else if (!config_equal(a, b)) list = "optim.rules";
    if (!list) return false;
    snprintf(key, cap, "%s", list);
    snprintf(va, cap, "one list");
    snprintf(vb, cap, "another");
    return true;
}
