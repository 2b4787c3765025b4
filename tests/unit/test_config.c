// The YAML configuration: a good file, each kind of bad input with its FILE:LINE:COLUMN
// message, include and --set precedence, model_config_set, and the write/read round trip.
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/suggest.h"

// $MV_TEST_TMP/config/<name> (directories made as needed); the caller frees it.
static char *tmp_path(const char *name) {
    const char *root = getenv("MV_TEST_TMP");
    if (!root || !root[0]) root = "/tmp";
    size_t len = strlen(root) + strlen(name) + 32;
    char *path = malloc(len);
    snprintf(path, len, "%s/config/%s", root, name);
    for (char *c = path + 1; *c; c++) {   // mkdir -p of every parent
        if (*c != '/') continue;
        *c = '\0';
        cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s", path);
        *c = '/';
    }
    return path;
}

static char *write_tmp(const char *name, const char *text) {
    char *path = tmp_path(name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return buf;
}

// Loads `text` as file `name` and expects failure whose message holds "<path>:<loc>" (when
// loc is not NULL) and each of up to two further fragments.
static void expect_error(const char *name, const char *text, const char *loc, const char *frag1, const char *frag2) {
    char *path = write_tmp(name, text);
    mv_config cfg;
    mv_clear_error();
    cr_assert_eq(config_load(&cfg, path, 0, NULL), -1, "%s loaded but should fail", name);
    const char *msg = mv_last_error();
    if (loc) {
        char want[1024];
        snprintf(want, sizeof want, "%s:%s", path, loc);
        cr_expect(strstr(msg, want) != NULL, "%s: message lacks '%s': %s", name, want, msg);
    }
    if (frag1) cr_expect(strstr(msg, frag1) != NULL, "%s: message lacks '%s': %s", name, frag1, msg);
    if (frag2) cr_expect(strstr(msg, frag2) != NULL, "%s: message lacks '%s': %s", name, frag2, msg);
    free(path);
}

static const char *GOOD =
    "# a full experiment\n"
    "model:\n"
    "  dims: [32, 64, 128, 256]      # given before the preset: the preset still comes first\n"
    "  preset: maskvim-t\n"
    "  crop: [256, 512]\n"
    "  decoder_depths: 1,2,2\n"
    "  drop_path: 0.2\n"
    "mask:\n"
    "  encoder_stages: [true, true, false]\n"
    "  decoder: no\n"
    "  lambda: [0.9, 0.7, 0.5]\n"
    "  alpha1: 10\n"
    "  alpha2: 5\n"
    "  mode: zero\n"
    "  layout: official\n"
    "  ratio_sync: false\n"
    "data:\n"
    "  train: [data/cityscapes/train, {name: gta, path: data/gtav/train/, repeat: 3}]\n"
    "  val:\n"
    "    - data/cityscapes/val\n"
    "    - {name: bdd, path: data/bdd100k/val}\n"
    "    - synthetic:fog\n"
    "  batch_per_rank: 2\n"
    "  workers: 4\n"
    "  scale: [2048, 1024]\n"
    "  synthetic: {seed: 7, size: [64, 128]}\n"
    "optim:\n"
    "  lr: 6.0e-5\n"
    "  betas: [0.9, 0.999]\n"
    "  weight_decay: 0.01\n"
    "  rules:\n"
    "    - {match: norm, decay_mult: 0}\n"
    "    - {match: token_mask, lr_mult: 10000}\n"
    "    - {match: head, lr_mult: 10, decay_mult: 0.5}\n"
    "schedule: {warmup_iters: 1500, warmup_start: 1.0e-6, max_iters: 40000, power: 1.0}\n"
    "run:\n"
    "  device: cpu\n"
    "  seed: 42\n"
    "  work_dir: \"runs/city2others\"\n"
    "  ckpt_every: 4000\n"
    "  keep_ckpts: 2\n"
    "  select_metric: mIoU\n"
    "  select_domain: cityscapes\n";

Test(config, good_file_parses) {
    char *path = write_tmp("good.yaml", GOOD);
    mv_config c;
    cr_assert_eq(config_load(&c, path, 0, NULL), 0, "%s", mv_last_error());
    cr_expect_str_eq(c.model.preset, "maskvim-t");
    cr_expect(c.model.dims[0] == 32 && c.model.dims[3] == 256, "dims after the preset: %d %d", c.model.dims[0], c.model.dims[3]);
    cr_expect(c.model.depths[2] == 9, "maskvim-t depths kept: %d", c.model.depths[2]);
    cr_expect(c.model.crop_h == 256 && c.model.crop_w == 512);
    cr_expect(c.model.decoder_depths[0] == 1 && c.model.decoder_depths[1] == 2 && c.model.decoder_depths[2] == 2);
    cr_expect_float_eq(c.model.drop_path, 0.2f, 1e-7);
    cr_expect(c.model.mask_encoder[0] && c.model.mask_encoder[1] && !c.model.mask_encoder[2]);
    cr_expect(!c.model.mask_decoder);
    cr_expect(c.model.lambda_per_stage);
    cr_expect(c.model.lambda[0] == 0.9f && c.model.lambda[1] == 0.7f && c.model.lambda[2] == 0.5f);
    cr_expect(c.model.alpha1 == 10.0f && c.model.alpha2 == 5.0f);
    cr_expect(c.model.mask_mode == MV_MASK_ZERO && c.model.mask_layout == MV_MASK_LAYOUT_OFFICIAL);
    cr_expect(!c.model.ratio_sync && c.model.mask_noise);

    cr_assert_eq(c.data.num_train, 2);
    cr_expect_str_eq(c.data.train[0].name, "cityscapes");
    cr_expect_str_eq(c.data.train[0].path, "data/cityscapes/train");
    cr_expect(c.data.train[0].repeat == 1 && c.data.train[1].repeat == 3);
    cr_expect_str_eq(c.data.train[1].name, "gta");
    cr_assert_eq(c.data.num_val, 3);
    cr_expect_str_eq(c.data.val[0].name, "cityscapes");
    cr_expect_str_eq(c.data.val[1].name, "bdd");
    cr_expect_str_eq(c.data.val[1].path, "data/bdd100k/val");
    cr_expect_str_eq(c.data.val[2].name, "fog");
    cr_expect_str_eq(c.data.val[2].path, "synthetic:fog");
    cr_expect(c.data.workers == 4 && c.data.scale[0] == 2048 && c.data.scale[1] == 1024);
    cr_expect(c.data.synthetic.seed == 7 && c.data.synthetic.size[1] == 128);
    cr_expect(c.data.synthetic.train_count == 500, "untouched nested key keeps its default");

    cr_expect_eq(c.optim.lr, 6e-5);
    cr_expect_eq(c.optim.betas[1], 0.999);
    cr_assert_eq(c.optim.num_rules, 3);
    cr_expect_str_eq(c.optim.rules[0].match, "norm");
    cr_expect(c.optim.rules[0].lr_mult == 1.0f && c.optim.rules[0].decay_mult == 0.0f, "unset multipliers are 1");
    cr_expect(c.optim.rules[1].lr_mult == 10000.0f && c.optim.rules[1].decay_mult == 1.0f);
    cr_expect(c.optim.rules[2].lr_mult == 10.0f && c.optim.rules[2].decay_mult == 0.5f);
    cr_expect(c.schedule.warmup_iters == 1500 && c.schedule.max_iters == 40000 && c.schedule.warmup_start == 1e-6);
    cr_expect(c.run.device == MV_DEVICE_CPU && c.run.seed == 42 && c.run.ckpt_every == 4000 && c.run.keep_ckpts == 2);
    cr_expect_str_eq(c.run.work_dir, "runs/city2others");
    cr_expect_str_eq(config_find_val(&c, c.run.select_domain)->path, "data/cityscapes/val");
    cr_expect(c.run.eval_every == 2000, "default kept");
    free(path);
}

Test(config, defaults_are_valid) {
    mv_config c;
    config_defaults(&c);
    cr_assert_eq(config_validate(&c), 0, "%s", mv_last_error());
    cr_expect_str_eq(c.model.preset, "maskvim-nano");
    cr_expect_eq(c.optim.lr, 6e-5);
    cr_expect(c.optim.eps == 1e-8 && c.optim.weight_decay == 0.01);
    cr_expect(c.schedule.warmup_iters == 1500 && c.schedule.max_iters == 20000 && c.schedule.warmup_start == 1e-6);
    cr_assert_eq(c.optim.num_rules, 2);
    cr_expect(!strcmp(c.optim.rules[0].match, "norm") && c.optim.rules[0].decay_mult == 0.0f);
    cr_expect(!strcmp(c.optim.rules[1].match, "token_mask") && c.optim.rules[1].lr_mult == 10000.0f);
    cr_expect(c.data.num_train == 1 && c.data.num_val == 5);
    cr_expect_str_eq(c.data.val[0].name, "clear");
    mv_config d;
    cr_assert_eq(config_load(&d, NULL, 0, NULL), 0, "%s", mv_last_error());
    cr_expect(config_equal(&c, &d), "config_load(NULL) gives the defaults");
}

// `maskvim config --keys`: every key a user can set, once, with the value the configuration
// holds (as the YAML writes it), what it takes and a description; hidden state rows are not listed.
Test(config, key_reference_lists_every_key) {
    mv_config c;
    const char *sets[] = {"model.preset=maskvim-t", "optim.lr=0.25", "run.device=cpu"};
    cr_assert_eq(config_load(&c, NULL, 3, sets), 0, "%s", mv_last_error());
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(config_write_key_reference(f, &c), 0, "%s", mv_last_error());
    fclose(f);
    int lines = 0, listed = 0;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    for (int t = 0; t < 2; t++) {
        int n;
        const mv_key *keys = t ? config_keys(&n) : model_config_keys(&n);
        const void *obj = t ? (const void *)&c : (const void *)&c.model;
        for (int i = 0; i < n; i++) {
            const mv_key *k = &keys[i];
            char line_start[128];
            snprintf(line_start, sizeof line_start, "\n%s ", k->name);
            const char *at = strstr(text, line_start);
            if (k->flags & MV_KEY_HIDDEN) {
                cr_expect_null(at, "hidden %s listed", k->name);
                continue;
            }
            listed++;
            cr_assert_not_null(at, "%s not listed", k->name);
            cr_expect_null(strstr(at + 1, line_start), "%s listed twice", k->name);
            cr_expect(k->doc && strlen(k->doc) > 8, "%s has no description", k->name);
            const char *eol = strchr(at + 1, '\n');
            char line[1024];
            snprintf(line, sizeof line, "%.*s", (int)(eol - at - 1), at + 1);
            char value[512];
            if (k->flags & MV_KEY_ALIAS) snprintf(value, sizeof value, "(sets another key)");
            else key_format(value, sizeof value, obj, k);
            cr_expect(strstr(line, value) && strstr(line, k->doc), "%s: %s", k->name, line);
        }
    }
    cr_expect_eq(lines, listed + 2, "%d lines for %d keys (and the two comment lines)", lines, listed);
    cr_expect(strstr(text, "\noptim.lr ") && strstr(text, "0.25 ") && strstr(text, "a number in (0, 10]"), "%s", text);
    cr_expect(strstr(text, "\nrun.device ") && strstr(text, "# auto|cpu|cuda: "), "%s", text);
    cr_expect(strstr(text, "[96, 192, 384, 768]"), "maskvim-t's dims not shown: %s", text);
    free(text);
}

Test(config, empty_file_gives_defaults) {
    char *path = write_tmp("empty.yaml", "# nothing but a comment\n");
    mv_config c, d;
    cr_assert_eq(config_load(&c, path, 0, NULL), 0, "%s", mv_last_error());
    config_defaults(&d);
    cr_expect(config_equal(&c, &d));
    free(path);
}

Test(config, unknown_keys) {
    expect_error("unknown_key.yaml", "model:\n  preset: maskvim-nano\noptim:\n  lrr: 0.1\n", "4:3:",
                 "unknown key 'optim.lrr'", "lr, betas, eps, weight_decay, rules");
    expect_error("unknown_model_key.yaml", "model:\n  dimz: [1, 2, 3, 4]\n", "2:3:", "unknown key 'model.dimz'", "d_state, ssm_ratio");
    expect_error("unknown_section.yaml", "run:\n  seed: 1\nmodle:\n  preset: maskvim-t\n", "3:1:",
                 "unknown section 'modle'", NULL);
    expect_error("unknown_nested.yaml", "data:\n  synthetic:\n    sed: 3\n", "3:5:", "unknown key 'data.synthetic.sed'",
                 "train_count, val_count, size, seed");
    expect_error("unknown_rule_key.yaml", "optim:\n  rules:\n    - {match: norm, decay: 0}\n", "3:21:",
                 "optim.rules[0]: unknown key 'decay'", NULL);
    expect_error("unknown_source_key.yaml", "data:\n  val:\n    - {name: a, paht: x}\n", "3:17:",
                 "data.val[0]: unknown key 'paht'", NULL);
    expect_error("val_repeat.yaml", "data:\n  val:\n    - {path: a/val, repeat: 2}\n", "3:21:",
                 "data.val[0]: unknown key 'repeat' (known: name, path)", NULL);
}

Test(config, wrong_types) {
    expect_error("type_list.yaml", "optim:\n  lr: [1, 2]\n", "2:7:", "optim.lr", "expected a single value, got a list");
    expect_error("type_map.yaml", "model:\n  dims: {a: 1}\n", "2:9:", "model.dims", "got a mapping");
    expect_error("type_word.yaml", "model:\n  dims: [16, 32, x, 128]\n", "2:9:", "model.dims: bad value '16, 32, x, 128'",
                 "'x' is not an integer");
    expect_error("type_count.yaml", "model:\n  dims: [16, 32, 64]\n", "2:9:", "expected 4 integers, got 3", NULL);
    expect_error("type_bool.yaml", "mask:\n  decoder: maybe\n", "2:12:", "mask.decoder", "not a boolean");
    expect_error("type_enum.yaml", "mask:\n  mode: half\n", "2:9:", "mask.mode", "expected one of residual|zero");
    expect_error("type_section.yaml", "optim: 0.1\n", "1:8:", "optim: expected a mapping of keys", NULL);
    expect_error("type_float_int.yaml", "data:\n  batch_per_rank: 2.5\n", "2:19:", "'2.5' is not an integer", NULL);
    expect_error("type_string.yaml", "run:\n  work_dir: [a, b]\n", "2:13:", "run.work_dir", "expected a single value");
    expect_error("type_rules.yaml", "optim:\n  rules: {match: norm}\n", "2:10:", "optim.rules", "got a mapping");
    expect_error("type_lambda.yaml", "mask:\n  lambda: [0.5, 0.5]\n", "2:11:", "mask.lambda",
                 "one number (uniform) or three or four (per stage)");
    expect_error("type_top.yaml", "- a\n- b\n", "1:1:", "expected a mapping of sections", NULL);
}

Test(config, out_of_range) {
    expect_error("range_tau.yaml", "mask:\n  tau: 0\n", "2:8:", "mask.tau: bad value '0'", "out of range (0, 1000]");
    expect_error("range_batch.yaml", "data:\n  batch_per_rank: 0\n", "2:19:", "data.batch_per_rank", "out of range [1, 4096]");
    expect_error("range_lambda.yaml", "mask:\n  lambda: [0.5, 1.5, 0.5]\n", "2:11:", "mask.lambda", "out of range [0, 1]");
    expect_error("range_drop.yaml", "model:\n  drop_path: 1.0\n", "2:14:", "model.drop_path", "out of range [0, 1)");
    expect_error("range_lr.yaml", "optim:\n  lr: -1.0e-4\n", "2:7:", "optim.lr", "out of range (0, 10]");
    expect_error("range_mult.yaml", "optim:\n  rules: [{match: a, lr_mult: -1}]\n", "2:31:", "optim.rules.lr_mult", "out of range");
    expect_error("range_nan.yaml", "optim:\n  eps: .nan\n", "2:8:", "optim.eps", "not a number");
    expect_error("range_seed.yaml", "run:\n  seed: 99999999999\n", "2:9:", "run.seed", NULL);
    // Cross-key checks name the keys (no single position to point at) and the file.
    expect_error("range_warmup.yaml", "schedule:\n  warmup_iters: 20000\n  max_iters: 20000\n", NULL,
                 "schedule.warmup_iters (20000) must be below schedule.max_iters (20000)", "range_warmup.yaml");
    expect_error("range_select.yaml", "run:\n  select_domain: mars\n", NULL, "run.select_domain: 'mars'",
                 "clear, dusk, fog, rain, painted");
    expect_error("range_crop.yaml", "model:\n  crop: [100, 96]\n", NULL, "multiples of 32", NULL);
    // An empty run folder passed `maskvim config` and failed later as ": cannot create folder".
    expect_error("range_workdir.yaml", "run:\n  work_dir: \"\"\n", NULL, "run.work_dir is empty", NULL);
    expect_error("range_repeat.yaml", "data:\n  train: [{path: a/train, repeat: 0}]\n", "2:35:",
                 "data.train[0]: repeat: bad value '0'", "out of range [1, 1000000]");
    expect_error("range_scale.yaml", "data:\n  scale: [1024, 2048]\n", NULL, "data.scale: give (long, short)", NULL);
    expect_error("range_dup.yaml", "data:\n  val: [a/val, b/a/val]\n", NULL, "data.val: name 'a' appears twice", NULL);
    expect_error("range_preset.yaml", "model:\n  preset: maskvim-xl\n", "2:11:", "model.preset: bad value 'maskvim-xl'",
                 "maskvim-nano");
}

Test(config, yaml_errors) {
    expect_error("syntax.yaml", "model:\n  preset: maskvim-t\nmask: {alpha1: 1, alpha2: 2\nrun:\n  seed: 1\n", NULL,
                 "YAML syntax error", "syntax.yaml:");
    expect_error("syntax_indent.yaml", "model:\n  preset: maskvim-t\n   dims: 1\n", "3:", "YAML syntax error", NULL);
    expect_error("duplicate.yaml", "optim:\n  lr: 1.0e-4\n  lr: 2.0e-4\n", "3:3:", "duplicate key 'lr'", NULL);
    expect_error("two_docs.yaml", "run: {seed: 1}\n---\nrun: {seed: 2}\n", "3:1:", "second YAML document", NULL);
    expect_error("alias_loop.yaml", "a: &x [*x]\n", NULL, "nested too deeply", NULL);
    // Aliases of aliases (a "billion laughs" document) stop at a node budget.
    char laughs[2048] = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 10; i++) {
        char line[128];
        snprintf(line, sizeof line, "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i,
                 i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
        strcat(laughs, line);
    }
    expect_error("laughs.yaml", laughs, NULL, "too large", NULL);
    // `~` and `null` are YAML's null, like an empty value: a null section changes nothing, a null
    // value is a missing value (not "contains a NUL character", which they once gave).
    expect_error("null_value.yaml", "optim:\n  lr: ~\n", "2:7:", "optim.lr: bad value ''", NULL);
    expect_error("null_word.yaml", "data:\n  photometric: null\n", "2:16:", "data.photometric", NULL);
    // A list's items are one value each: a quoted "16,32" is not two dims.
    expect_error("comma_item.yaml", "model:\n  dims: [\"16,32\", 64, 128]\n", "2:10:",
                 "model.dims: item 1 ('16,32') holds a comma", NULL);
    {
        char *path = write_tmp("null_section.yaml", "optim: ~\nmask: null\nschedule:\n  max_iters: 3000\n");
        mv_config n;
        cr_expect_eq(config_load(&n, path, 0, NULL), 0, "a null section: %s", mv_last_error());
        free(path);
    }
    mv_config c;
    cr_expect_eq(config_load(&c, "/nonexistent/maskvim.yaml", 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "/nonexistent/maskvim.yaml: cannot open") != NULL, "%s", mv_last_error());
}

// Base values, the including file over them, --set over both; lists replace, maps merge.
Test(config, include_and_override_precedence) {
    char *b1 = write_tmp("inc/base.yaml",
                         "model: {preset: maskvim-nano}\n"
                         "mask: {lambda: 0.3, alpha1: 4, alpha2: 4}\n"
                         "data:\n  train: [a/train, b/train]\n  val: [a/val, b/val]\n"
                         "optim: {lr: 1.0e-4, weight_decay: 0.05}\n"
                         "run: {seed: 1, work_dir: runs/base}\n");
    char *b2 = write_tmp("inc/more/second.yaml", "mask: {alpha2: 8}\nrun: {work_dir: runs/second}\n");
    char *child = write_tmp("inc/exp/child.yaml",
                            "include: [../base.yaml, ../more/second.yaml]\n"
                            "mask:\n  alpha1: 2\n"
                            "data:\n  train: [c/train]\n"
                            "optim: {lr: 2.0e-4}\n");
    const char *sets[] = {"optim.lr=3e-4", "run.seed=7", "mask.lambda=[0.9, 0.7, 0.5]", "data.workers=1"};
    mv_config c;
    cr_assert_eq(config_load(&c, child, 4, sets), 0, "%s", mv_last_error());
    cr_expect_eq(c.optim.lr, 3e-4, "--set beats the file");
    cr_expect_eq(c.optim.weight_decay, 0.05, "base value kept inside a merged section");
    cr_expect_eq(c.model.alpha1, 2.0f, "the file beats its base");
    cr_expect_eq(c.model.alpha2, 8.0f, "the second base beats the first");
    cr_expect_str_eq(c.run.work_dir, "runs/second");
    cr_expect_eq(c.run.seed, 7);
    cr_expect(c.model.lambda_per_stage && c.model.lambda[0] == 0.9f && c.model.lambda[2] == 0.5f);
    cr_expect_eq(c.data.workers, 1);
    cr_assert_eq(c.data.num_train, 1, "a list replaces the base's list");
    cr_expect_str_eq(c.data.train[0].name, "c");
    cr_assert_eq(c.data.num_val, 2, "the base's list is kept when not given");
    cr_expect_str_eq(c.data.val[1].name, "b");

    // Without the --set, the file's own values; `_base_` is the other spelling.
    char *child2 = write_tmp("inc/exp/child2.yaml", "_base_: ../base.yaml\nmask: {lambda: 0.6}\n");
    cr_assert_eq(config_load(&c, child2, 0, NULL), 0, "%s", mv_last_error());
    cr_expect_eq(c.optim.lr, 1e-4);
    cr_expect(!c.model.lambda_per_stage && c.model.lambda[1] == 0.6f);
    free(b1); free(b2); free(child); free(child2);
}

// model.crop / data.crop and mask.encoder_stages / mask.encoder name one setting each: the later
// layer wins whichever name it uses, and one layer giving both must agree.
Test(config, alias_names_follow_layer_precedence) {
    char *file = write_tmp("alias/file.yaml", "data:\n  crop: [64, 64]\nmask: {encoder: true}\n");
    const char *sets[] = {"model.crop=[128, 96]", "mask.encoder_stages=[false, true, false]"};
    mv_config c;
    cr_assert_eq(config_load(&c, file, 2, sets), 0, "%s", mv_last_error());
    cr_expect(c.model.crop_h == 128 && c.model.crop_w == 96, "--set model.crop beats the file's data.crop: %dx%d",
              c.model.crop_h, c.model.crop_w);
    cr_expect(!c.model.mask_encoder[0] && c.model.mask_encoder[1], "--set mask.encoder_stages beats mask.encoder");
    const char *back[] = {"data.crop=[96, 64]"};
    cr_assert_eq(config_load(&c, file, 1, back), 0, "%s", mv_last_error());
    cr_expect(c.model.crop_h == 96 && c.model.crop_w == 64);

    char *base = write_tmp("alias/base.yaml", "data: {crop: [64, 64]}\n");
    char *child = write_tmp("alias/child.yaml", "include: [base.yaml]\nmodel: {crop: [160, 128]}\n");
    cr_assert_eq(config_load(&c, child, 0, NULL), 0, "%s", mv_last_error());
    cr_expect(c.model.crop_h == 160 && c.model.crop_w == 128, "the file's model.crop beats its base's data.crop");

    char *same = write_tmp("alias/same.yaml", "model: {crop: [64, 96]}\ndata: {crop: [64, 96]}\n");
    cr_expect_eq(config_load(&c, same, 0, NULL), 0, "%s", mv_last_error());
    expect_error("alias/both.yaml", "model: {crop: [64, 96]}\ndata:\n  crop: [96, 64]\n", "3:3",
                 "data.crop and model.crop", "give one");
    free(file); free(base); free(child); free(same);
}

// A preset given anywhere (base, file, --set) is applied before every other model key.
Test(config, preset_then_keys) {
    char *base = write_tmp("preset/base.yaml", "model: {dims: [8, 16, 32, 64]}\n");
    char *child = write_tmp("preset/child.yaml", "include: base.yaml\nmodel: {preset: maskvim-b}\n");
    mv_config c;
    cr_assert_eq(config_load(&c, child, 0, NULL), 0, "%s", mv_last_error());
    cr_expect_str_eq(c.model.preset, "maskvim-b");
    cr_expect(c.model.dims[0] == 8 && c.model.depths[2] == 27 && c.model.decoder_channels == 256);
    const char *sets[] = {"model.preset=maskvim-t"};
    cr_assert_eq(config_load(&c, child, 1, sets), 0, "%s", mv_last_error());
    cr_expect(c.model.dims[0] == 8 && c.model.depths[2] == 9 && c.model.decoder_channels == 512);
    free(base); free(child);
}

Test(config, include_errors) {
    char *missing = write_tmp("incerr/missing.yaml", "run: {seed: 1}\ninclude: nothere.yaml\n");
    mv_config c;
    cr_expect_eq(config_load(&c, missing, 0, NULL), -1);
    char want[1024];
    snprintf(want, sizeof want, "%s:2:10: ", missing);
    cr_expect(strstr(mv_last_error(), want) && strstr(mv_last_error(), "nothere.yaml: cannot open"), "%s", mv_last_error());

    char *a = write_tmp("incerr/a.yaml", "include: b.yaml\n");
    char *b = write_tmp("incerr/b.yaml", "include: a.yaml\n");
    cr_expect_eq(config_load(&c, a, 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "include cycle"), "%s", mv_last_error());

    // An error inside a base names the base's own position.
    char *bad = write_tmp("incerr/badbase.yaml", "optim:\n  lr: fast\n");
    char *top = write_tmp("incerr/top.yaml", "include: badbase.yaml\n");
    cr_expect_eq(config_load(&c, top, 0, NULL), -1);
    snprintf(want, sizeof want, "%s:2:7: optim.lr: bad value 'fast'", bad);
    cr_expect(strstr(mv_last_error(), want), "%s", mv_last_error());
    free(missing); free(a); free(b); free(bad); free(top);
}

Test(config, set_errors) {
    mv_config c;
    const char *bad_value[] = {"optim.lr=abc"};
    cr_expect_eq(config_load(&c, NULL, 1, bad_value), -1);
    cr_expect(strstr(mv_last_error(), "--set optim.lr=abc: optim.lr: bad value 'abc'"), "%s", mv_last_error());
    const char *bad_key[] = {"optim.lrate=1"};
    cr_expect_eq(config_load(&c, NULL, 1, bad_key), -1);
    cr_expect(strstr(mv_last_error(), "--set optim.lrate=1: unknown key 'optim.lrate'"), "%s", mv_last_error());
    const char *no_eq[] = {"optim.lr"};
    cr_expect_eq(config_load(&c, NULL, 1, no_eq), -1);
    cr_expect(strstr(mv_last_error(), "expected KEY=VALUE"), "%s", mv_last_error());
    const char *bad_yaml[] = {"mask.lambda=[0.5, 0.5"};
    cr_expect_eq(config_load(&c, NULL, 1, bad_yaml), -1);
    cr_expect(strstr(mv_last_error(), "--set mask.lambda=[0.5, 0.5") && strstr(mv_last_error(), "YAML"), "%s", mv_last_error());
    const char *range[] = {"schedule.max_iters=0"};
    cr_expect_eq(config_load(&c, NULL, 1, range), -1);
    cr_expect(strstr(mv_last_error(), "schedule.max_iters: bad value '0'"), "%s", mv_last_error());

    // config_set on a resolved configuration: applied and validated, or nothing changes.
    config_defaults(&c);
    mv_config before = c;
    cr_expect_eq(config_set(&c, "schedule.warmup_iters=30000"), -1);
    cr_expect(strstr(mv_last_error(), "must be below schedule.max_iters"), "%s", mv_last_error());
    cr_expect(config_equal(&c, &before), "unchanged after a failed set");
    cr_assert_eq(config_set(&c, "optim.rules=[{match: norm, decay_mult: 0}]"), 0, "%s", mv_last_error());
    cr_expect_eq(c.optim.num_rules, 1);
    cr_assert_eq(config_set(&c, "data.val=synthetic:fog, synthetic:rain"), 0, "%s", mv_last_error());
    cr_expect(c.data.num_val == 2 && !strcmp(c.data.val[1].name, "rain"));
    cr_assert_eq(config_set(&c, "data.crop=96,128"), 0, "%s", mv_last_error());
    cr_expect(c.model.crop_h == 96 && c.model.crop_w == 128, "data.crop is model.crop");
    cr_assert_eq(config_set(&c, "run.select_domain="), 0, "%s", mv_last_error());
    cr_expect_str_eq(c.run.select_domain, "");
}

Test(config, run_precision) {
    mv_config c;
    config_defaults(&c);
    cr_expect_eq(c.run.precision, MV_PRECISION_FP32, "fp32 unless asked");
    cr_assert_eq(config_set(&c, "run.precision=bf16"), 0, "%s", mv_last_error());
    cr_expect_eq(c.run.precision, MV_PRECISION_BF16);
    cr_assert_eq(config_set(&c, "run.precision=tf32"), 0, "%s", mv_last_error());
    cr_expect_eq(c.run.precision, MV_PRECISION_TF32);
    cr_expect_eq(config_set(&c, "run.precision=fp16"), -1);
    cr_expect(strstr(mv_last_error(), "fp16") && strstr(mv_last_error(), "bf16"), "names the value and the choices: %s",
              mv_last_error());
    cr_expect_eq(c.run.precision, MV_PRECISION_TF32, "unchanged after a failed set");
}

// Table 6's model options and the checks that tie them together.
Test(config, table6_model_options) {
    mv_model_config m;
    cr_assert_eq(model_config_preset(&m, "maskvim-nano"), 0);
    cr_expect(m.head == MV_HEAD_UPER && m.context == MV_CONTEXT_PPM && !m.mask_encoder[3], "defaults");
    cr_assert_eq(model_config_set(&m, "mask.encoder_stages", "1,1,1,1"), 0, "%s", mv_last_error());
    cr_expect(m.mask_encoder[3]);
    cr_assert_eq(model_config_set(&m, "mask.encoder_stages", "0,1,1"), 0, "%s", mv_last_error());
    cr_expect(!m.mask_encoder[0] && m.mask_encoder[2] && !m.mask_encoder[3], "three values leave stage 3 unmasked");
    cr_expect_eq(model_config_set(&m, "mask.encoder_stages", "1,1"), -1);
    cr_expect(strstr(mv_last_error(), "3 booleans") != NULL, "%s", mv_last_error());
    cr_assert_eq(model_config_set(&m, "mask.encoder_stages", "1,1,1,1"), 0);
    cr_assert_eq(model_config_set(&m, "mask.lambda", "0.9,0.7,0.5"), 0);
    cr_expect_eq(model_config_validate(&m), -1, "three lambdas with stage 3 masked");
    cr_expect(strstr(mv_last_error(), "stage 3 is masked") != NULL, "%s", mv_last_error());
    cr_assert_eq(model_config_set(&m, "mask.lambda", "0.9,0.7,0.5,0.2"), 0);
    cr_expect(m.lambda_per_stage && m.lambda_count == 4 && m.lambda[3] == 0.2f);
    cr_expect_eq(model_config_validate(&m), 0, "%s", mv_last_error());
    cr_assert_eq(model_config_set(&m, "mask.lambda", "0.4"), 0);
    cr_expect_eq(model_config_validate(&m), 0, "uniform lambda covers stage 3: %s", mv_last_error());
    cr_expect(m.lambda[3] == 0.4f);
    cr_assert_eq(model_config_set(&m, "mask.encoder", "on"), 0);
    cr_expect(m.mask_encoder[2] && !m.mask_encoder[3], "mask.encoder never masks stage 3");

    cr_assert_eq(model_config_set(&m, "model.head", "linear"), 0);
    cr_expect_eq(model_config_validate(&m), -1, "the linear head has no decoder masks");
    cr_expect(strstr(mv_last_error(), "mask.decoder") != NULL, "%s", mv_last_error());
    cr_assert_eq(model_config_set(&m, "mask.decoder", "false"), 0);
    cr_expect_eq(model_config_validate(&m), 0, "%s", mv_last_error());
    cr_assert_eq(model_config_set(&m, "model.context", "vss"), 0);
    cr_expect_eq(model_config_validate(&m), -1, "vss context needs the mask decoder");
    cr_expect_eq(model_config_set(&m, "model.head", "segformer"), -1);
    cr_expect_eq(model_config_set(&m, "model.context", "aspp"), -1);
}

Test(config, model_config_set_keys) {
    mv_model_config m;
    cr_assert_eq(model_config_preset(&m, "maskvim-nano"), 0);
    cr_assert_eq(model_config_set(&m, "model.dims", "8,16,32,64"), 0, "%s", mv_last_error());
    cr_expect(m.dims[0] == 8 && m.dims[3] == 64);
    cr_assert_eq(model_config_set(&m, "model.crop", "[128, 256]"), 0);
    cr_expect(m.crop_h == 128 && m.crop_w == 256);
    cr_assert_eq(model_config_set(&m, "mask.lambda", "0.25"), 0);
    cr_expect(!m.lambda_per_stage && m.lambda[0] == 0.25f && m.lambda[1] == 0.25f && m.lambda[2] == 0.25f);
    cr_assert_eq(model_config_set(&m, "mask.lambda", "0.9,0.7,0.5"), 0);
    cr_expect(m.lambda_per_stage && m.lambda[0] == 0.9f && m.lambda[2] == 0.5f);
    cr_assert_eq(model_config_set(&m, "mask.encoder", "off"), 0);
    cr_expect(!m.mask_encoder[0] && !m.mask_encoder[1] && !m.mask_encoder[2]);
    cr_assert_eq(model_config_set(&m, "mask.encoder_stages", "1,1,0"), 0);
    cr_expect(m.mask_encoder[0] && m.mask_encoder[1] && !m.mask_encoder[2]);
    cr_assert_eq(model_config_set(&m, "mask.mode", "ZERO"), 0);
    cr_expect_eq(m.mask_mode, MV_MASK_ZERO);
    cr_assert_eq(model_config_set(&m, "mask.noise", "no"), 0);
    cr_expect(!m.mask_noise);

    mv_model_config keep = m;
    cr_expect_eq(model_config_set(&m, "model.dimz", "1"), -1);
    cr_expect(strstr(mv_last_error(), "model.dimz") && strstr(mv_last_error(), "'1'"), "%s", mv_last_error());
    cr_expect_eq(model_config_set(&m, "model.dims", "1,2"), -1);
    cr_expect(strstr(mv_last_error(), "model.dims: bad value '1,2'"), "%s", mv_last_error());
    cr_expect_eq(model_config_set(&m, "model.dims", "16,32,64,99999"), -1);
    cr_expect(strstr(mv_last_error(), "99999 out of range [1, 8192]"), "%s", mv_last_error());
    cr_expect_eq(model_config_set(&m, "mask.layout", "diagonal"), -1);
    cr_expect_eq(model_config_set(&m, "mask.lambda_per_stage", "true"), -1, "internal state is not a key");
    cr_expect(model_config_equal(&m, &keep), "failed sets change nothing");
    cr_expect_eq(model_config_set(&m, "model.preset", "maskvim-s"), 0);
    cr_expect(m.depths[2] == 27 && m.dims[0] == 96 && m.lambda_per_stage == false, "a preset starts over");
}

static void round_trip(const mv_config *c, const char *name) {
    char *path = tmp_path(name);
    cr_assert_eq(config_save(path, c), 0, "%s", mv_last_error());
    mv_config back;
    cr_assert_eq(config_load(&back, path, 0, NULL), 0, "%s: %s", name, mv_last_error());
    cr_expect(config_equal(c, &back), "%s: re-read configuration differs", name);
    // Writing the re-read configuration gives the same text.
    char *path2 = tmp_path("roundtrip_second.yaml");
    cr_assert_eq(config_save(path2, &back), 0);
    char *t1 = read_all(path), *t2 = read_all(path2);
    cr_expect_str_eq(t1, t2);
    free(t1); free(t2); free(path); free(path2);
}

Test(config, round_trip) {
    mv_config c;
    config_defaults(&c);
    round_trip(&c, "roundtrip_defaults.yaml");

    char *path = write_tmp("rt_good.yaml", GOOD);
    const char *sets[] = {"optim.lr=1.2345678901234567e-4", "mask.tau=0.1", "model.dropout=0.3333333",
                          "run.work_dir=runs/with \"quotes\" and \\ backslash", "mask.alpha1=1e-7",
                          "schedule.eta_min=1e-9"};
    cr_assert_eq(config_load(&c, path, 6, sets), 0, "%s", mv_last_error());
    round_trip(&c, "roundtrip_good.yaml");
    cr_expect_str_eq(c.run.work_dir, "runs/with \"quotes\" and \\ backslash");

    // Uniform lambda and empty lists survive too.
    cr_assert_eq(config_set(&c, "mask.lambda=0.4"), 0, "%s", mv_last_error());
    cr_assert_eq(config_set(&c, "optim.rules=[]"), 0, "%s", mv_last_error());
    cr_assert_eq(config_set(&c, "run.select_domain=bdd"), 0, "%s", mv_last_error());
    round_trip(&c, "roundtrip_uniform.yaml");

    // Table 6's variants: the linear head, masks in all four stages with four lambdas, the VSS context.
    cr_assert_eq(config_set(&c, "model.head=linear"), 0, "%s", mv_last_error());
    cr_assert_eq(config_set(&c, "mask.decoder=false"), 0, "%s", mv_last_error());
    cr_assert_eq(config_set(&c, "mask.encoder_stages=[true, false, true, true]"), 0, "%s", mv_last_error());
    cr_assert_eq(config_set(&c, "mask.lambda=[0.9, 0.7, 0.5, 0.3]"), 0, "%s", mv_last_error());
    cr_assert_eq(model_config_validate(&c.model), 0, "%s", mv_last_error());
    round_trip(&c, "roundtrip_table6_linear.yaml");
    config_defaults(&c);
    cr_assert_eq(config_set(&c, "model.context=vss"), 0, "%s", mv_last_error());
    round_trip(&c, "roundtrip_table6_vss.yaml");

    // A changed struct is not equal: config_equal really compares.
    mv_config d = c;
    d.model.lambda[1] = 0.41f;
    cr_expect(!config_equal(&c, &d));
    d = c;
    d.data.synthetic.seed++;
    cr_expect(!config_equal(&c, &d));
    d = c;
    d.data.val[1].path[0] = 'X';
    cr_expect(!config_equal(&c, &d));
    free(path);
}

// The written file is readable YAML with every key of every section.
Test(config, written_yaml_is_complete) {
    mv_config c;
    config_defaults(&c);
    char *path = tmp_path("complete.yaml");
    cr_assert_eq(config_save(path, &c), 0);
    char *text = read_all(path);
    int n;
    const mv_key *keys = model_config_keys(&n);
    for (int i = 0; i < n; i++) {
        if (keys[i].flags & (MV_KEY_ALIAS | MV_KEY_HIDDEN)) continue;
        char want[128];
        snprintf(want, sizeof want, "\n  %s: ", strchr(keys[i].name, '.') + 1);
        cr_expect(strstr(text, want), "%s missing", keys[i].name);
    }
    keys = config_keys(&n);
    for (int i = 0; i < n; i++) {
        if (keys[i].flags & (MV_KEY_ALIAS | MV_KEY_HIDDEN)) continue;
        const char *leaf = strrchr(keys[i].name, '.') + 1;
        char want[128];
        snprintf(want, sizeof want, " %s: ", leaf);
        cr_expect(strstr(text, want), "%s missing", keys[i].name);
    }
    cr_expect(strstr(text, "lr: 6.0e-05\n"), "shortest exact float text: %s", text);
    cr_expect(strstr(text, "    - {match: \"token_mask\", lr_mult: 10000, decay_mult: 1}\n"));
    free(text);
    free(path);
}

// The example configurations shipped in experiments/base/ load and validate.
Test(config, shipped_examples_load) {
    // This file is <root>/tests/unit/test_config.c.
    char root[1024];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *cut = strstr(root, "tests/unit/test_config.c");
    cr_assert(cut, "cannot locate the source tree from %s", __FILE__);
    *cut = '\0';
    static const char *const files[] = {"experiments/base/maskvim-t_cityscapes.yaml",
                                        "experiments/base/maskvim-nano_synthetic.yaml"};
    for (int i = 0; i < 2; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s%s", root, files[i]);
        mv_config c;
        cr_expect_eq(config_load(&c, path, 0, NULL), 0, "%s: %s", files[i], mv_last_error());
    }
    mv_config t;
    snprintf(root + strlen(root), sizeof root - strlen(root), "%s", files[0]);
    cr_assert_eq(config_load(&t, root, 0, NULL), 0);
    cr_expect(!strcmp(t.model.preset, "maskvim-t") && t.model.crop_h == 512 && t.model.crop_w == 1024);
    cr_expect(t.data.num_val == 5 && !strcmp(t.data.val[4].name, "synthia"));
    cr_expect(t.optim.lr == 6e-5 && t.schedule.max_iters == 20000);
}

// A directory, bad UTF-8 (with its line) and a bad --set value (without a made-up position)
// each give one clear message.
Test(config, directories_encoding_and_set_syntax) {
    mv_config *c = calloc(1, sizeof *c);
    char *d = tmp_path("");
    cr_assert_lt(config_load(c, d, 0, NULL), 0);
    cr_assert(strstr(mv_last_error(), "is a directory"), "%s", mv_last_error());
    char *p = write_tmp("utf8.yaml", "optim:\n  lr: 1.0e-4\n  eps: \"\xfe\"\n");
    cr_assert_lt(config_load(c, p, 0, NULL), 0);
    cr_assert(strstr(mv_last_error(), "utf8.yaml:3:9: not UTF-8"), "%s", mv_last_error());
    char *inc = write_tmp("incdir.yaml", "include: .\n");
    cr_assert_lt(config_load(c, inc, 0, NULL), 0);
    cr_assert(strstr(mv_last_error(), "incdir.yaml:1:10") && strstr(mv_last_error(), "is a directory"), "%s",
              mv_last_error());
    const char *sets[] = {"optim.lr=[1"};
    cr_assert_lt(config_load(c, NULL, 1, sets), 0);
    cr_assert(strstr(mv_last_error(), "--set optim.lr=[1: YAML syntax error in the value"), "%s", mv_last_error());
    free(d);
    free(p);
    free(inc);
    free(c);
}

// Four per-stage lambdas while stage 3 is not masked: the fourth would never be read, so the
// configuration is refused (as three are while stage 3 masks).
Test(config, four_lambdas_need_stage3_masked) {
    mv_config *c = calloc(1, sizeof *c);
    const char *four[] = {"mask.lambda=[0.9, 0.7, 0.5, 0.3]"};
    cr_assert_lt(config_load(c, NULL, 1, four), 0, "a fourth lambda for an unmasked stage 3 was accepted");
    cr_assert(strstr(mv_last_error(), "stage 3 is not masked"), "%s", mv_last_error());
    const char *four_masked[] = {"mask.lambda=[0.9, 0.7, 0.5, 0.3]", "mask.encoder_stages=[true, true, true, true]"};
    cr_assert_eq(config_load(c, NULL, 2, four_masked), 0, "%s", mv_last_error());
    cr_assert_float_eq(c->model.lambda[3], 0.3f, 1e-7);
    const char *three[] = {"mask.lambda=[0.9, 0.7, 0.5]"};
    cr_assert_eq(config_load(c, NULL, 1, three), 0, "%s", mv_last_error());
    free(c);
}

// The closest-name search behind every "did you mean": typos, swaps, case, shortened names,
// and nothing for a word that is not close to any name.
Test(config, closest_names) {
    static const char *const names[] = {"model", "mask", "data", "optim", "schedule", "run"};
    cr_expect_eq(mv_edit_distance("lmabda", "lambda"), 1, "a swap of neighbours is one edit");
    cr_expect_eq(mv_edit_distance("LR", "lr"), 0, "case is ignored");
    cr_expect_eq(mv_edit_distance("", "abc"), 3);
    cr_expect_str_eq(mv_closest("modle", names, 6), "model");
    cr_expect_str_eq(mv_closest("optimizer", names, 6), "optim", "a lengthened name");
    cr_expect_str_eq(mv_closest("sched", names, 6), "schedule", "a shortened name");
    cr_expect_str_eq(mv_closest("schedular", names, 6), "schedule");
    cr_expect_null(mv_closest("xyz", names, 6));
    cr_expect_null(mv_closest("trainer", names, 6));
    cr_expect_null(mv_closest("", names, 6));
}

// Unknown keys and sections name the closest known key: within the section first (a wrong
// leaf under a right section), else the same name in another section; a wrong section with
// one key under it names the whole key. Each message stays one line.
Test(config, unknown_keys_suggest_the_closest) {
    expect_error("hint_leaf.yaml", "model:\n  dim: [16, 32, 64, 128]\n", "2:3:",
                 "unknown key 'model.dim'; did you mean 'model.dims'? (known in model:", NULL);
    expect_error("hint_optim.yaml", "optim:\n  lrr: 0.1\n", "2:3:",
                 "unknown key 'optim.lrr'; did you mean 'optim.lr'? (known in optim: lr, betas", NULL);
    expect_error("hint_other_section.yaml", "model:\n  lambda: 0.5\n", "2:3:",
                 "unknown key 'model.lambda'; did you mean 'mask.lambda'?", NULL);
    expect_error("hint_nested.yaml", "data:\n  synthetic:\n    sizes: [64, 64]\n", "3:5:",
                 "unknown key 'data.synthetic.sizes'; did you mean 'data.synthetic.size'?", NULL);
    expect_error("hint_group.yaml", "data:\n  synthtic:\n    size: [64, 64]\n", "2:3:",
                 "unknown key 'data.synthtic'; did you mean 'data.synthetic'?", NULL);
    expect_error("hint_section.yaml", "optimizer:\n  lr: 0.1\n  eps: 1.0e-8\n", "1:1:",
                 "unknown section 'optimizer'; did you mean 'optim'? (known: model", NULL);
    expect_error("hint_rule.yaml", "optim:\n  rules:\n    - {match: norm, decay: 0}\n", "3:21:",
                 "optim.rules[0]: unknown key 'decay'; did you mean 'decay_mult'?", NULL);
    expect_error("hint_source.yaml", "data:\n  val:\n    - {name: a, paht: x}\n", "3:17:",
                 "data.val[0]: unknown key 'paht'; did you mean 'path'? (known: name, path)", NULL);
    expect_error("hint_none.yaml", "optim:\n  momentum: 0.9\n", "2:3:",
                 "unknown key 'optim.momentum' (known in optim:", NULL);
    // mmseg's names for the starting weights.
    expect_error("hint_pretrained.yaml", "model:\n  pretrained: vssm.h5\n", "2:3:",
                 "unknown key 'model.pretrained'; did you mean 'run.init_weights'?", NULL);
    expect_error("hint_load_from.yaml", "load_from: vssm.h5\n", "1:1:",
                 "unknown section 'load_from'; did you mean 'run.init_weights'?", NULL);

    mv_config c;
    const char *sets[][1] = {{"optimizer.lr=1e-4"}, {"lr=1e-4"}, {"model.dim=1,2,3,4"}, {"modle.dims=1,2,3,4"}};
    const char *want[] = {"--set optimizer.lr=1e-4: unknown section 'optimizer'; did you mean 'optim.lr'?",
                          "--set lr=1e-4: unknown section 'lr'; did you mean 'optim.lr'?",
                          "--set model.dim=1,2,3,4: unknown key 'model.dim'; did you mean 'model.dims'?",
                          "--set modle.dims=1,2,3,4: unknown section 'modle'; did you mean 'model.dims'?"};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(config_load(&c, NULL, 1, sets[i]), -1, "%s", sets[i][0]);
        cr_expect(strstr(mv_last_error(), want[i]), "%s", mv_last_error());
        cr_expect(!strchr(mv_last_error(), '\n'), "one line: %s", mv_last_error());
    }
}

// An experiment file given as a training configuration (`maskvim config` / `maskvim train` on
// experiments/cpu/table8_losses.yaml) says what it is and which commands take it, instead of
// "unknown section 'name'".
Test(config, experiment_file_is_named) {
    char *p = write_tmp("table.yaml", "name: t\nbase: ../base.yaml\nrows:\n  - {name: a, set: [mask.alpha1=0]}\n");
    mv_config c;
    cr_assert_eq(config_load(&c, p, 0, NULL), -1);
    const char *msg = mv_last_error();
    char want[1200];
    snprintf(want, sizeof want, "%s: an experiment file (it has 'base:' at line 2), not a training configuration", p);
    cr_expect(strstr(msg, want), "%s", msg);
    snprintf(want, sizeof want, "`maskvim experiment run %s` trains its rows (with --dry-run", p);
    cr_expect(strstr(msg, want), "%s", msg);
    snprintf(want, sizeof want, "`maskvim config %s --row ROW` prints one row's configuration", p);
    cr_expect(strstr(msg, want), "%s", msg);
    cr_expect(!strchr(msg, '\n'), "one line: %s", msg);
    char *g = write_tmp("grid.yaml", "grid:\n  mask.lambda: [0.1, 0.5]\n");
    cr_assert_eq(config_load(&c, g, 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "an experiment file (it has 'grid:' at line 1)"), "%s", mv_last_error());
    // A --set of such a key is an unknown section as before: it does not come from a file.
    const char *set[] = {"rows=1"};
    cr_assert_eq(config_load(&c, NULL, 1, set), -1);
    cr_expect(strstr(mv_last_error(), "unknown section 'rows'"), "%s", mv_last_error());
    free(p);
    free(g);
}

// config_save clears the temporaries that writers killed between their write and their rename
// left beside the file (config.yaml.tmp.<pid> of a pid that no longer runs), and nothing else:
// a live process's temporary, other files' temporaries and look-alikes stay.
Test(config, save_removes_stale_temporaries) {
    char *dir = tmp_path("stale/");
    pid_t child = fork();   // a pid that ran and is gone
    cr_assert(child >= 0);
    if (child == 0) _exit(0);
    cr_assert_eq(waitpid(child, NULL, 0), child);
    long dead = (long)child, live = (long)getppid();
    char path[1200], stale[1400], kept[3][1400];
    snprintf(path, sizeof path, "%sconfig.yaml", dir);
    snprintf(stale, sizeof stale, "%sconfig.yaml.tmp.%ld", dir, dead);
    snprintf(kept[0], sizeof kept[0], "%sconfig.yaml.tmp.%ld", dir, live);   // a writer still running
    snprintf(kept[1], sizeof kept[1], "%sother.yaml.tmp.%ld", dir, dead);    // another file's
    snprintf(kept[2], sizeof kept[2], "%sconfig.yaml.tmp.x%ld", dir, dead);  // not a pid
    const char *all[] = {stale, kept[0], kept[1], kept[2]};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(all[i], "w");
        cr_assert(f, "%s", all[i]);
        fputs("partial", f);
        fclose(f);
    }
    mv_config c;
    config_defaults(&c);
    cr_assert_eq(config_save(path, &c), 0, "%s", mv_last_error());
    struct stat st;
    cr_expect(stat(stale, &st) != 0, "the temporary of a dead writer stayed: %s", stale);
    for (int i = 0; i < 3; i++) cr_expect(stat(kept[i], &st) == 0, "removed: %s", kept[i]);
    mv_config back;
    cr_assert_eq(config_load(&back, path, 0, NULL), 0, "%s", mv_last_error());
    cr_expect(config_equal(&back, &c));
    cr_expect_eq(mv_remove_stale_tmp(path), 0, "nothing more to remove");
    for (int i = 0; i < 3; i++) remove(kept[i]);
    free(dir);
}

// A folder's stale temporaries are listed once per process (a writer of thousands of files into
// one folder listed it for each): one of a dead writer that was there at the listing is removed
// when its file is written, however late; one that appears after the listing is the next
// process's to remove.
Test(config, stale_temporaries_are_listed_once_per_folder) {
    char *dir = tmp_path("listed/");
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) _exit(0);
    cr_assert_eq(waitpid(child, NULL, 0), child);
    char target[3][1200], stale[3][1300];
    for (int i = 0; i < 3; i++) {
        snprintf(target[i], sizeof target[i], "%.1100sfile%d.png", dir, i);
        snprintf(stale[i], sizeof stale[i], "%.1200s.tmp.%ld", target[i], (long)child);
    }
    for (int i = 0; i < 2; i++) fclose(fopen(stale[i], "w"));
    struct stat st;
    cr_assert_eq(mv_remove_stale_tmp(target[0]), 1);
    cr_expect(stat(stale[1], &st) == 0, "another file's temporary was removed");
    fclose(fopen(stale[2], "w"));   // after the listing
    cr_expect_eq(mv_remove_stale_tmp(target[1]), 1, "the listed temporary of file1 was not removed");
    cr_expect_eq(mv_remove_stale_tmp(target[2]), 0, "the folder was listed again");
    cr_expect(stat(stale[2], &st) == 0);
    remove(stale[2]);
    free(dir);
}

// A checkpoint's saved configuration is parsed in memory: eval, predict and resume used to write
// it to a temporary file in TMPDIR first, which a process killed at that moment left behind (and
// which an unusable TMPDIR made fail). Messages name the label, with line and column.
Test(config, load_text_needs_no_temporary_file) {
    setenv("TMPDIR", "/nonexistent-folder-of-maskvim-tests", 1);
    mv_config c, d;
    config_defaults(&d);
    cr_assert_eq(config_load_text(&c, "model:\n  num_classes: 7\n", "run/iter_5.h5", 0, NULL), 0, "%s",
                 mv_last_error());
    d.model.num_classes = 7;
    cr_expect(config_equal(&c, &d));
    const char *sets[] = {"optim.lr=0.5"};
    cr_assert_eq(config_load_text(&c, "model:\n  num_classes: 7\n", "run/iter_5.h5", 1, sets), 0, "%s",
                 mv_last_error());
    cr_expect_float_eq(c.optim.lr, 0.5, 1e-9);
    cr_expect_eq(config_load_text(&c, "model:\n  num_classes: [\n", "run/iter_5.h5", 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "run/iter_5.h5:"), "%s", mv_last_error());
    cr_expect_eq(config_load_text(&c, "model:\n  num_classes: 300\n", "run/iter_5.h5", 0, NULL), -1);
    cr_expect(strstr(mv_last_error(), "run/iter_5.h5:2:"), "%s", mv_last_error());
}

// config_save refuses a target its rename would replace or fail on: an existing pipe (as root,
// `--out /dev/null` became a regular file), a folder, an empty path; the pipe stays a pipe.
Test(config, save_refuses_targets_that_are_not_files) {
    char *fifo = tmp_path("targets/pipe.yaml"), *dir = tmp_path("targets/folder.yaml");
    remove(fifo);
    cr_assert_eq(mkfifo(fifo, 0644), 0, "mkfifo %s", fifo);
    cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST);
    mv_config c;
    config_defaults(&c);
    cr_assert_eq(config_save(fifo, &c), -1, "saved over a pipe");
    cr_expect(strstr(mv_last_error(), fifo) && strstr(mv_last_error(), "is a pipe"), "%s", mv_last_error());
    struct stat st;
    cr_expect(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the pipe was replaced");
    cr_assert_eq(config_save(dir, &c), -1, "saved over a folder");
    cr_expect(strstr(mv_last_error(), "is a folder"), "%s", mv_last_error());
    cr_assert_eq(config_save("", &c), -1, "saved to an empty path");
    cr_expect(strstr(mv_last_error(), "empty path"), "%s", mv_last_error());
    remove(fifo);
    free(fifo);
    free(dir);
}

// A message longer than the error buffer (an include of a 20000-character name) keeps its end,
// which says what is wrong, instead of being cut off inside the name.
Test(config, long_messages_keep_their_reason) {
    static char text[20100] = "include: ";
    size_t n = strlen(text);
    memset(text + n, 'q', 20000);
    text[n + 20000] = '\0';
    strcat(text, "\n");
    char *path = write_tmp("long_include.yaml", text);
    mv_config cfg;
    cr_assert_eq(config_load(&cfg, path, 0, NULL), -1);
    const char *msg = mv_last_error();
    cr_expect(!strncmp(msg, path, strlen(path)), "the message starts with the file: %s", msg);
    cr_expect(strstr(msg, "cannot open: File name too long") || strstr(msg, "cannot open: No such file"), "%s", msg);
    cr_expect(strstr(msg, " ... "), "the middle is elided: %s", msg);
    cr_expect_lt(strlen(msg), (size_t)MV_ERRMSG_MAX);
    free(path);
}

// A batch the model cannot index (data.batch_per_rank x model.crop beyond INT_MAX image values)
// is refused by validation, naming both keys, before the loader allocates it.
Test(config, batch_times_crop_is_bounded) {
    mv_config c;
    const char *big[] = {"data.batch_per_rank=4096", "model.crop=[16384, 16384]"};
    cr_assert_eq(config_load(&c, NULL, 2, big), -1, "accepted 4096 crops of 16384x16384");
    cr_expect(strstr(mv_last_error(), "data.batch_per_rank (4096) x model.crop (16384x16384)"), "%s", mv_last_error());
    const char *ok[] = {"data.batch_per_rank=2", "model.crop=[16384, 16384]"};
    cr_assert_eq(config_load(&c, NULL, 2, ok), 0, "%s", mv_last_error());
}

// `include` names base files inside a file; as a --set it is refused as such (it was "unknown
// section 'include'; did you mean 'include'?").
Test(config, include_in_set_is_refused_plainly) {
    mv_config c;
    const char *set[] = {"include=/etc/passwd"};
    cr_assert_eq(config_load(&c, NULL, 1, set), -1);
    cr_expect(strstr(mv_last_error(), "'include' names base files and works in a configuration file only"), "%s",
              mv_last_error());
    cr_expect(!strstr(mv_last_error(), "did you mean"), "%s", mv_last_error());
}

// A list key given null (every item commented out) was read as an empty list, so losing
// optim.rules silently dropped token_mask's lr_mult; it is refused like a null scalar key.
// An explicit [] stays the empty list.
Test(config, null_list_keys_are_refused) {
    expect_error("null_rules.yaml", "optim:\n  rules:\n#    - {match: norm, decay_mult: 0}\n", "2:3:",
                 "optim.rules: no value given", "[] for an empty one");
    expect_error("null_val.yaml", "data:\n  val:\n", "2:3:", "data.val: no value given", NULL);
    expect_error("null_train.yaml", "data:\n  train: ~\n", "2:3:", "data.train: no value given", NULL);
    mv_config c;
    const char *sets[] = {"optim.rules=null"};
    cr_expect_eq(config_load(&c, NULL, 1, sets), -1);
    cr_expect(strstr(mv_last_error(), "--set optim.rules=null: optim.rules: no value given"), "%s", mv_last_error());
    char *path = write_tmp("empty_lists.yaml", "data:\n  val: []\noptim:\n  rules: []\n");
    cr_assert_eq(config_load(&c, path, 0, NULL), 0, "%s", mv_last_error());
    cr_expect(c.data.num_val == 0 && c.optim.num_rules == 0);
    free(path);
}

// mmengine's custom_keys are dict keys: two rules with one match were both kept and the first
// listed won, though the docs say the list order does not matter.
Test(config, duplicate_rule_matches_are_refused) {
    expect_error("dup_rules.yaml",
                 "optim:\n  rules:\n    - {match: norm, decay_mult: 0}\n    - {match: token_mask, lr_mult: 10}\n"
                 "    - {match: norm, decay_mult: 1}\n",
                 "5:7:", "optim.rules[2] and optim.rules[0]", "both have match 'norm'");
    mv_config c;
    config_defaults(&c);
    snprintf(c.optim.rules[1].match, sizeof c.optim.rules[1].match, "norm");
    cr_expect_eq(config_validate(&c), -1, "a struct with two rules for one match");
    cr_expect(strstr(mv_last_error(), "optim.rules[0] and optim.rules[1] both have match 'norm'"), "%s", mv_last_error());
}

// The docs write integer ranges as [1, 1e8]: an integer key takes a number that is exactly an
// integer in any notation, and still refuses 1.5 and values out of range.
Test(config, integers_in_exponent_or_decimal_form) {
    char *path = write_tmp("int_forms.yaml", "schedule:\n  max_iters: 1e3\n  warmup_iters: 10.0\n"
                                             "data:\n  synthetic: {train_count: 1.0e+2}\nmodel:\n  crop: [6.4e1, 128.0]\n");
    mv_config c;
    cr_assert_eq(config_load(&c, path, 0, NULL), 0, "%s", mv_last_error());
    cr_expect_eq(c.schedule.max_iters, 1000);
    cr_expect_eq(c.schedule.warmup_iters, 10);
    cr_expect_eq(c.data.synthetic.train_count, 100);
    cr_expect(c.model.crop_h == 64 && c.model.crop_w == 128);
    free(path);
    expect_error("int_half.yaml", "schedule:\n  max_iters: 1.5e3\n  warmup_iters: 1.5\n", "3:17:",
                 "'1.5' is not an integer", NULL);
    expect_error("int_big.yaml", "schedule:\n  max_iters: 1e10\n", "2:14:", "schedule.max_iters: bad value '1e10'",
                 "out of range [1, 1000000000]");
    expect_error("int_hex.yaml", "run:\n  seed: 0x10\n", "2:9:", "'0x10' is not an integer", NULL);
    cr_expect_eq(config_set(&c, "run.seed=2e1"), 0, "%s", mv_last_error());
    cr_expect_eq(c.run.seed, 20);
}

// A value that leaves its range once stored as a float is refused with the text the user
// wrote, not as "value 1" or "value 0".
Test(config, float_rounding_messages_show_the_text) {
    expect_error("float_drop.yaml", "model:\n  drop_path: 0.99999999\n", "2:14:",
                 "model.drop_path: bad value '0.99999999': 0.99999999 is 1 as a float", "out of range [0, 1)");
    expect_error("float_tau.yaml", "mask:\n  tau: 1e-50\n", "2:8:", "mask.tau: bad value '1e-50': 1e-50 is 0 as a float",
                 "out of range (0, 1000]");
}

// One layer giving both names of a setting is compared by value, not by YAML text.
Test(config, alias_pairs_compare_values) {
    mv_config c;
    char *crop = write_tmp("alias/values_crop.yaml", "model: {crop: [64, 64]}\ndata: {crop: \"64, 64\"}\n");
    cr_expect_eq(config_load(&c, crop, 0, NULL), 0, "%s", mv_last_error());
    char *enc = write_tmp("alias/values_enc.yaml", "mask: {encoder: false, encoder_stages: [false, false, false]}\n");
    cr_assert_eq(config_load(&c, enc, 0, NULL), 0, "%s", mv_last_error());
    cr_expect(!c.model.mask_encoder[0] && !c.model.mask_encoder[3]);
    char *on = write_tmp("alias/values_on.yaml", "mask: {encoder: yes, encoder_stages: [true, on, 1]}\n");
    cr_expect_eq(config_load(&c, on, 0, NULL), 0, "%s", mv_last_error());
    expect_error("alias/values_differ.yaml", "mask: {encoder: true, encoder_stages: [true, false, true]}\n", "1:8",
                 "mask.encoder and mask.encoder_stages", "give one");
    expect_error("alias/values_bad.yaml", "model: {crop: [64, 64]}\ndata: {crop: [64, x]}\n", "2:14",
                 "data.crop: bad value '64, x'", NULL);
    free(crop); free(enc); free(on);
}

// libyaml reads `<<: *anchor` as a key called "<<": the message says merge keys are unsupported.
Test(config, merge_keys_are_named) {
    expect_error("merge_key.yaml", "optim: &o\n  lr: 1.0e-4\nschedule:\n  <<: *o\n", "4:3:",
                 "merge keys ('<<: *anchor') are not supported: write the keys out", NULL);
}

// An unknown section whose one key exists elsewhere points at that key, not at a section or
// list whose name is close (`train.max_iters` once suggested data.train, `runner.max_iters` run).
Test(config, unknown_section_hint_prefers_the_key) {
    expect_error("hint_train.yaml", "train:\n  max_iters: 100\n", "1:1:",
                 "unknown section 'train'; did you mean 'schedule.max_iters'?", NULL);
    expect_error("hint_runner.yaml", "runner:\n  max_iters: 100\n", "1:1:",
                 "unknown section 'runner'; did you mean 'schedule.max_iters'?", NULL);
    mv_config c;
    const char *sets[] = {"train.max_iters=100"};
    cr_expect_eq(config_load(&c, NULL, 1, sets), -1);
    cr_expect(strstr(mv_last_error(), "did you mean 'schedule.max_iters'?"), "%s", mv_last_error());
}

// A hidden key (mask.lambda_per_stage) is reported under the key that sets it.
Test(config, differences_name_user_facing_keys) {
    mv_config a, b;
    config_defaults(&a);
    b = a;
    cr_assert_eq(config_set(&b, "mask.lambda=[0.5,0.5,0.5]"), 0, "%s", mv_last_error());
    char key[128], va[128], vb[128];
    cr_assert(config_first_difference(&a, &b, key, va, vb, sizeof key));
    cr_expect_str_eq(key, "mask.lambda");
    cr_expect_str_eq(va, "0.5");
    cr_expect_str_eq(vb, "[0.5, 0.5, 0.5]");
    char why[1024];
    cr_expect_eq(checkpoint_compatible(&a, &b, why, sizeof why), -1);
    cr_expect(strstr(why, "mask.lambda: 0.5 in the checkpoint, [0.5, 0.5, 0.5] now"), "%s", why);
    cr_expect(!strstr(why, "lambda_per_stage"), "%s", why);
}

// A run names its model by the preset only while the network is the preset's size: a preset
// given over a file that lists every model key (a run's config.yaml) kept the file's network
// under the preset's name in the banner and in bench's JSON.
Test(config, model_description_names_a_changed_network_custom) {
    mv_model_config c;
    char d[128];
    cr_assert_eq(model_config_preset(&c, "maskvim-t"), 0);
    c.crop_h = c.crop_w = 256;   // not a size of the network
    c.num_classes = 7;
    model_config_describe(d, sizeof d, &c);
    cr_assert_str_eq(d, "maskvim-t");
    c.depths[2] = 1;
    model_config_describe(d, sizeof d, &c);
    cr_assert_str_eq(d, "custom model (from preset maskvim-t, its sizes changed)");
    mv_config cfg;
    const char *sets[] = {"model.preset=maskvim-nano", "model.dims=96,192,384,768"};
    cr_assert_eq(config_load(&cfg, NULL, 2, sets), 0, "%s", mv_last_error());
    model_config_describe(d, sizeof d, &cfg.model);
    cr_assert_str_eq(d, "custom model (from preset maskvim-nano, its sizes changed)");
}

// Names from paths: GTAV's `valid` and Mapillary's `training` split folders are skipped like
// val and train, and a `data corrupt` severity folder is joined to its corruption (every
// Cityscapes-C split was named after its severity, so two of them clashed).
Test(config, source_names_from_paths) {
    mv_config c;
    const char *sets[] = {"data.train=[data/mapillary/training]",
                          "data.val=[data/gtav/valid,data/cs-c/fog/5,cs-c/gaussian_noise/5/,data/city_val,4]"};
    cr_assert_eq(config_load(&c, NULL, 2, sets), 0, "%s", mv_last_error());
    cr_assert_str_eq(c.data.train[0].name, "mapillary");
    const char *want[] = {"gtav", "fog-5", "gaussian_noise-5", "city_val", "4"};
    cr_assert_eq(c.data.num_val, 5);
    for (int i = 0; i < 5; i++) cr_assert_str_eq(c.data.val[i].name, want[i], "val %d: %s", i, c.data.val[i].name);
}
