// Experiment files (core/experiment.h): rows, grid expansion, paper numbers per column,
// the base config relative to the file, `seeds:` (runs per row and seed, refusals), `peers:`
// (other methods' published rows, never run), `avg` anywhere in `columns:`, and errors that
// name FILE:LINE.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "core/experiment.h"

static char dir[512];

// One folder per test process: Criterion runs the tests in parallel, and two of them writing
// bad.yaml in one folder read each other's files.
static void setup(void) {
    const char *t = getenv("MV_TEST_TMP");
    char parent[400];
    snprintf(parent, sizeof parent, "%s/test_experiment", t && t[0] ? t : "/tmp");
    mkdir(t && t[0] ? t : "/tmp", 0755);
    mkdir(parent, 0755);
    snprintf(dir, sizeof dir, "%s/%d", parent, (int)getpid());
    mkdir(dir, 0755);
}

static void teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

// Writes text to dir/name and returns the path (static buffer per call site is enough here).
static const char *write_file(const char *name, const char *text) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

TestSuite(experiment, .init = setup, .fini = teardown);

Test(experiment, rows_columns_paper_and_base) {
    write_file("base.yaml", "run:\n  seed: 7\n");
    const char *p = write_file("rows.yaml",
        "name: losses\n"
        "title: \"Table 8\"\n"
        "base: base.yaml\n"
        "set: [schedule.warmup_iters=2, schedule.max_iters=5]\n"
        "source: clear\n"
        "targets: [dusk, fog]\n"
        "columns: [{domain: dusk, label: B}, {domain: fog, label: M}, {domain: avg, label: Avg}]\n"
        "rows:\n"
        "  - name: ce\n"
        "    set: {mask.alpha1: 0, mask.alpha2: 0}\n"
        "    paper: [40.8, 50.7, 36.8]\n"
        "  - name: lam\n"
        "    set:\n"
        "      - mask.lambda=[0.9, 0.7, 0.5]\n"
        "    paper: {M: 64.1, Avg: 49.8}\n"
        "  - {name: plain, paper: [1, ~, 3]}\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_str_eq(e.name, "losses");
    cr_assert_str_eq(e.title, "Table 8");
    cr_assert_eq(e.nrows, 3);
    cr_assert_eq(e.ncols, 3);
    cr_assert_str_eq(e.cols[0].label, "B");
    cr_assert_str_eq(e.cols[2].domain, "avg");
    cr_assert_str_eq(e.rows[0].name, "ce");
    cr_assert_eq(e.rows[0].nsets, 2);
    cr_assert_str_eq(e.rows[0].sets[0], "mask.alpha1=0");
    cr_assert_str_eq(e.rows[1].sets[0], "mask.lambda=[0.9, 0.7, 0.5]");
    cr_assert_float_eq(e.rows[0].paper[1], 50.7, 1e-9);
    cr_assert(isnan(e.rows[1].paper[0]), "B not given for lam");
    cr_assert_float_eq(e.rows[1].paper[1], 64.1, 1e-9);
    cr_assert_float_eq(e.rows[1].paper[2], 49.8, 1e-9);
    cr_assert(isnan(e.rows[2].paper[1]));
    cr_assert_float_eq(e.rows[2].paper[2], 3.0, 1e-9);
    cr_assert_eq(e.rows[1].line, 12);

    // Resolution: base (relative to the file), common overrides, row overrides, work dir.
    mv_config *cfg = calloc(1, sizeof *cfg);
    cr_assert_eq(experiment_row_config(cfg, &e, experiment_find_row(&e, "ce"), "out/ce"), 0, "%s", mv_last_error());
    cr_assert_eq(cfg->run.seed, 7);
    cr_assert_eq(cfg->schedule.max_iters, 5);
    cr_assert_float_eq(cfg->model.alpha1, 0.0, 1e-9);
    cr_assert_str_eq(cfg->run.work_dir, "out/ce");
    cr_assert_null(experiment_find_row(&e, "nope"));
    free(cfg);
    experiment_free(&e);
}

// A quoted value in `set:` arrives as written: "key=value" is read as YAML once more, where a
// bare '#' starts a comment, ': ' makes a mapping and "null" is empty (each was silently changed
// or refused with a confusing message). A quoted list item with a comma stays one item.
Test(experiment, quoted_set_values_arrive_unchanged) {
    const char *p = write_file("quoted.yaml",
        "set:\n"
        "  run.init_weights: \"my weights #2.h5\"\n"
        "rows:\n"
        "  - {name: a, set: {run.log_every: '7'}}\n"
        "  - {name: b, set: {run.init_weights: \"w: v1 \\\"q\\\" \\\\.h5\"}}\n"
        "  - {name: c, set: {run.init_weights: 'null'}}\n"
        "  - {name: d, set: {\"mask.lambda\": \"[0.9, 0.7, 0.5]\"}}\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    mv_config *cfg = calloc(1, sizeof *cfg);
    cr_assert_eq(experiment_row_config(cfg, &e, experiment_find_row(&e, "a"), NULL), 0, "%s", mv_last_error());
    cr_assert_str_eq(cfg->run.init_weights, "my weights #2.h5");
    cr_assert_eq(cfg->run.log_every, 7);   // a quoted number is still the number
    cr_assert_eq(experiment_row_config(cfg, &e, experiment_find_row(&e, "b"), NULL), 0, "%s", mv_last_error());
    cr_assert_str_eq(cfg->run.init_weights, "w: v1 \"q\" \\.h5");
    cr_assert_eq(experiment_row_config(cfg, &e, experiment_find_row(&e, "c"), NULL), 0, "%s", mv_last_error());
    cr_assert_str_eq(cfg->run.init_weights, "null");
    // A quoted list is the list it spells (as "key=[...]" in the list form is).
    cr_assert_eq(experiment_row_config(cfg, &e, experiment_find_row(&e, "d"), NULL), 0, "%s", mv_last_error());
    cr_assert_float_eq(cfg->model.lambda[2], 0.5, 1e-6);
    free(cfg);
    experiment_free(&e);
    const char *list = write_file("quoted_list.yaml", "rows: [{name: a, set: {model.dims: [\"16,32\", 64, 128]}}]\n");
    cr_assert_lt(experiment_load(&e, list), 0, "a quoted \"16,32\" was split into two dims");
    cr_assert(strstr(mv_last_error(), "holds a comma"), "%s", mv_last_error());
}

// `maskvim config EXP --row R --set ...`: the command line's overrides join the one resolution,
// so a model.preset among them is applied under the row's model keys (not over them), and
// the whole is validated once (max_iters then warmup_iters, lowered together, is valid).
Test(experiment, command_line_sets_join_the_resolution) {
    write_file("base_w.yaml", "schedule:\n  warmup_iters: 150\n  max_iters: 1000\nmodel:\n  crop: [64, 128]\n");
    const char *p = write_file("cl.yaml", "base: base_w.yaml\nrows: [{name: ce, set: {mask.alpha1: 0}}]\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    mv_config *cfg = calloc(1, sizeof *cfg);
    const char *sets[] = {"model.preset=maskvim-nano", "schedule.max_iters=100", "schedule.warmup_iters=50"};
    cr_assert_eq(experiment_run_config_with(cfg, &e, experiment_find_run(&e, "ce"), "w", 3, sets), 0, "%s",
                 mv_last_error());
    cr_assert_float_eq(cfg->model.alpha1, 0.0, 1e-9);
    cr_assert_eq(cfg->model.crop_h, 64);
    cr_assert_eq(cfg->model.crop_w, 128);
    cr_assert_eq(cfg->schedule.max_iters, 100);
    cr_assert_eq(cfg->schedule.warmup_iters, 50);
    cr_assert_str_eq(cfg->run.work_dir, "w");
    free(cfg);
    experiment_free(&e);
}

Test(experiment, default_name_and_columns) {
    const char *p = write_file("fig5.yaml", "targets: [fog, rain]\nrows: [{name: a}]\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_str_eq(e.name, "fig5");
    cr_assert_eq(e.ncols, 3);   // the targets, then their average
    cr_assert_str_eq(e.cols[1].domain, "rain");
    cr_assert_str_eq(e.cols[2].domain, "avg");
    cr_assert_str_eq(e.source_warning, "");
    experiment_free(&e);
    // The source among the targets: loaded, with a warning naming the line and the domain.
    p = write_file("srctarget.yaml", "source: clear\ntargets: [clear, fog]\nrows: [{name: a}]\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert(strstr(e.source_warning, "srctarget.yaml:2: targets lists the source domain 'clear'"), "%s",
              e.source_warning);
    experiment_free(&e);
    // A file name that cannot name the sweep's folder ("..yaml" put the rows into runs/ itself,
    // "...yaml" into the working directory) is refused unless `name:` gives one.
    const char *bad[] = {"..yaml", "...yaml", "my exp.yaml"};
    for (int i = 0; i < 3; i++) {
        p = write_file(bad[i], "rows: [{name: a}]\n");
        cr_expect_eq(experiment_load(&e, p), -1, "%s was taken", bad[i]);
        cr_expect(strstr(mv_last_error(), "cannot name its folder"), "%s", mv_last_error());
    }
    p = write_file("my exp.yaml", "name: mine\nrows: [{name: a}]\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_expect_str_eq(e.name, "mine");
    experiment_free(&e);
}

Test(experiment, grid_expansion) {
    const char *p = write_file("grid.yaml",
        "rows: [{name: first, set: [mask.lambda=0.5]}]\n"
        "grid:\n"
        "  mask.alpha1: [1, 5]\n"
        "  model.decoder_depths: [[1, 1, 1], [1, 1, 2], [2, 2, 2]]\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.nrows, 1 + 2 * 3);
    cr_assert_str_eq(e.rows[0].name, "first");
    // Cartesian product, the last key varying fastest, overrides in file order.
    cr_assert_str_eq(e.rows[1].name, "alpha1_1_decoder_depths_1-1-1");
    cr_assert_str_eq(e.rows[2].name, "alpha1_1_decoder_depths_1-1-2");
    cr_assert_str_eq(e.rows[4].name, "alpha1_5_decoder_depths_1-1-1");
    cr_assert_str_eq(e.rows[6].name, "alpha1_5_decoder_depths_2-2-2");
    cr_assert_eq(e.rows[6].nsets, 2);
    cr_assert_str_eq(e.rows[6].sets[0], "mask.alpha1=5");
    cr_assert_str_eq(e.rows[6].sets[1], "model.decoder_depths=[2, 2, 2]");
    cr_assert_eq(e.rows[3].line, 3);   // grid rows point at the grid (its first key)
    mv_config *cfg = calloc(1, sizeof *cfg);
    cr_assert_eq(experiment_row_config(cfg, &e, &e.rows[6], NULL), 0, "%s", mv_last_error());
    cr_assert_eq(cfg->model.decoder_depths[0], 2);
    cr_assert_float_eq(cfg->model.alpha1, 5.0, 1e-9);
    free(cfg);
    experiment_free(&e);
}

// Loads `text`; expects failure with every fragment of `want` (NULL-terminated) in the message.
static void expect_error(const char *text, const char *const *want) {
    const char *p = write_file("bad.yaml", text);
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    mv_experiment e;
    cr_assert_lt(experiment_load(&e, path), 0, "accepted:\n%s", text);
    cr_assert_null(e.rows, "rows not freed on error");
    cr_assert_null(e.peers, "peers not freed on error");
    for (int i = 0; want[i]; i++)
        cr_assert(strstr(mv_last_error(), want[i]), "message '%s' lacks '%s'", mv_last_error(), want[i]);
}

Test(experiment, errors_name_file_and_line) {
    expect_error("rows: [{name: a}]\nbogus: 1\n", (const char *[]){"bad.yaml:2:1", "bogus", "unknown key", NULL});
    expect_error("rows: [{name: a}]\ncolumn: [clear]\n",
                 (const char *[]){"bad.yaml:2:1: column: unknown key; did you mean 'columns'? (name, title", NULL});
    expect_error("rows: [{name: a, sets: [mask.alpha1=0]}]\n",
                 (const char *[]){"sets: unknown row key; did you mean 'set'? (name, set, paper)", NULL});
    expect_error("rows:\n  - {name: a}\n  - {name: b, set: [mask.alpha1=-3]}\n",
                 (const char *[]){"bad.yaml:3", "row 'b'", "mask.alpha1", NULL});
    expect_error("rows:\n  - {name: a}\n  - {name: a}\n", (const char *[]){"bad.yaml:3", "'a'", "line 2", NULL});
    expect_error("targets: [fog]\nrows:\n  - {name: a, paper: [1, 2, 3]}\n",
                 (const char *[]){"bad.yaml:3:", "3 numbers for 2 columns", NULL});
    expect_error("rows: [{name: a, paper: {X: 1}}]\ntargets: [fog]\n", (const char *[]){"no such column", NULL});
    expect_error("targets: [fog]\ncolumns: [{domain: fog, label: M}, avg]\nrows: [{name: a, paper: {M: 50, fog: 60}}]\n",
                 (const char *[]){"bad.yaml:3:", "has a number already", NULL});
    expect_error("rows: [{name: a}\n", (const char *[]){"bad.yaml:", "YAML syntax error", NULL});

    expect_error("targets: [atlantis]\nrows: [{name: a}]\n", (const char *[]){"atlantis", "data.val", NULL});
    expect_error("name: x\n", (const char *[]){"bad.yaml:1:1", "no rows", NULL});
    // An empty sweep is as much a mistake as a missing one (it once ran nothing and exited 0).
    expect_error("name: x\nrows: []\n", (const char *[]){"bad.yaml:2:7", "rows", "empty", NULL});
    expect_error("rows: [{name: ../up}]\n", (const char *[]){"bad.yaml:1:", "name", NULL});
    expect_error("rows: [{name: a, set: [noequals]}]\n", (const char *[]){"bad.yaml:1:", "key=value", NULL});
    expect_error("grid: {mask.lambda: 0.5}\n", (const char *[]){"bad.yaml:1:", "list of values", NULL});
    expect_error("rows: [{name: a}]\nbase: does_not_exist.yaml\n", (const char *[]){"does_not_exist.yaml", NULL});
    // Grid values that make one row name: the grid says so (it said "also named at line N",
    // its own line); a run.work_dir override, which the sweep would silently replace, is refused.
    expect_error("grid: {run.select_metric: [mIoU, \"m IoU\"]}\n",
                 (const char *[]){"bad.yaml:1:", "the grid makes row 'select_metric_mIoU' twice", NULL});
    expect_error("rows: [{name: a, set: {run.work_dir: elsewhere}}]\n",
                 (const char *[]){"bad.yaml:1:", "run.work_dir", "experiment's to set", NULL});
    expect_error("set: [run.work_dir=elsewhere]\nrows: [{name: a}]\n", (const char *[]){"bad.yaml:1:", "run.work_dir", NULL});
    // The run section set whole would pass those checks and then be replaced just the same.
    expect_error("seeds: [0, 1]\nrows: [{name: a, set: [\"run={seed: 7, work_dir: x}\"]}]\n",
                 (const char *[]){"bad.yaml:2:", "run section's keys one by one", NULL});
    mv_experiment e;
    cr_assert_lt(experiment_load(&e, "/nonexistent/exp.yaml"), 0);
    cr_assert(strstr(mv_last_error(), "/nonexistent/exp.yaml"));
}

Test(experiment, corruptions_columns_and_results) {
    // `corruptions: all` gives the 16 of Table 2; the targets (and columns) default to them.
    const char *p = write_file("t2all.yaml",
        "source: clear\ncorruptions: all\nset: [\"data.val=[synthetic:clear]\"]\nrows: [{name: a}]\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.ncorruptions, 16);
    cr_assert_str_eq(e.corruptions[0], "motion_blur");
    cr_assert_str_eq(e.corruptions[15], "frost");
    cr_assert_eq(e.nseverities, 1);   // severity 5 unless told
    cr_assert_eq(e.severities[0], 5);
    cr_assert_eq(e.ntargets, 16);
    cr_assert_eq(e.ncols, 17);
    cr_assert_str_eq(e.cols[14].domain, "fog");
    cr_assert(experiment_is_corruption(&e, "fog"));
    cr_assert(!experiment_is_corruption(&e, "clear"));
    experiment_free(&e);

    p = write_file("t2.yaml",
        "source: clear\n"
        "corruptions: [gaussian_noise, brightness]\n"
        "severities: [1, 3]\n"
        "columns: [{domain: brightness, label: Bright}, {domain: gaussian_noise, label: Gauss}, avg]\n"
        "rows: [{name: a, paper: [75.0, 14.9, 45.8]}]\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.nseverities, 2);
    cr_assert_eq(e.severities[1], 3);
    cr_assert_float_eq(e.rows[0].paper[1], 14.9, 1e-9);
    // The results `maskvim eval --corruptions --json` writes: the mean over the severities.
    const char *json = write_file("corr.json",
        "{\"checkpoint\": \"x.h5\", \"results\": [\n"
        "{\"domain\": \"clear\", \"corruption\": \"none\", \"severity\": 0, \"metrics\": {\"mIoU\": 50.0}},\n"
        "{\"domain\": \"clear\", \"corruption\": \"gaussian_noise\", \"severity\": 1, \"metrics\": {\"mIoU\": 40.0}},\n"
        "{\"domain\": \"clear\", \"corruption\": \"gaussian_noise\", \"severity\": 3, \"metrics\": {\"mIoU\": 20.0}},\n"
        "{\"domain\": \"clear\", \"corruption\": \"brightness\", \"severity\": 1, \"metrics\": {\"mIoU\": 48.0}},\n"
        "{\"domain\": \"clear\", \"corruption\": \"brightness\", \"severity\": 3, \"metrics\": {\"mIoU\": 45.0}}\n]}\n");
    char jpath[1024];
    snprintf(jpath, sizeof jpath, "%s", json);
    char names[MV_EXP_MAX_CORR][MV_NAME_MAX];
    double miou[MV_EXP_MAX_CORR];
    cr_assert_eq(experiment_corruption_results(names, miou, &e, jpath), 0, "%s", mv_last_error());
    cr_assert_str_eq(names[0], "gaussian_noise");
    cr_assert_float_eq(miou[0], 30.0, 1e-9);
    cr_assert_str_eq(names[1], "brightness");
    cr_assert_float_eq(miou[1], 46.5, 1e-9);
    // A missing (corruption, severity) fails and says which.
    write_file("corr.json", "{\"results\": [{\"corruption\": \"gaussian_noise\", \"severity\": 1, \"metrics\": {\"mIoU\": 1}}]}\n");
    cr_assert_lt(experiment_corruption_results(names, miou, &e, jpath), 0);
    cr_assert(strstr(mv_last_error(), "gaussian_noise at severity 3"), "%s", mv_last_error());
    // An undefined mIoU (`null`: a split without a labelled pixel) is a result, not a missing one:
    // that corruption's mean is undefined (NaN, written as null), the others are unchanged.
    write_file("corr.json",
        "{\"results\": [\n"
        "{\"corruption\": \"gaussian_noise\", \"severity\": 1, \"metrics\": {\"mIoU\": null}},\n"
        "{\"corruption\": \"gaussian_noise\", \"severity\": 3, \"metrics\": {\"mIoU\": 20.0}},\n"
        "{\"corruption\": \"brightness\", \"severity\": 1, \"metrics\": {\"mIoU\": 48.0}},\n"
        "{\"corruption\": \"brightness\", \"severity\": 3, \"metrics\": {\"mIoU\": 45.0}}\n]}\n");
    cr_assert_eq(experiment_corruption_results(names, miou, &e, jpath), 0, "%s", mv_last_error());
    cr_assert(isnan(miou[0]), "gaussian_noise: %g", miou[0]);
    cr_assert_float_eq(miou[1], 46.5, 1e-9);
    write_file("corr.json", "{\"results\": [oops]}\n");
    cr_assert_lt(experiment_corruption_results(names, miou, &e, jpath), 0);
    cr_assert(strstr(mv_last_error(), "corr.json"), "%s", mv_last_error());
    experiment_free(&e);
}

// Whether a row's corruptions.json is of the file's corruptions and severities as they are now
// (the sweep evaluates a finished row again, and the report marks it, when not): exactly those
// pairs, the clean pass aside; a severity or corruption more is another evaluation too (its
// status.json's means were taken over it).
Test(experiment, corruptions_match_the_file) {
    const char *p = write_file("t2m.yaml",
        "source: clear\ncorruptions: [gaussian_noise, brightness]\nseverities: [1, 3]\nrows: [{name: a}]\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    const char *head = "{\"results\": [{\"corruption\": \"none\", \"severity\": 0, \"metrics\": {\"mIoU\": 1}}";
    const char *pairs[] = {"gaussian_noise\", \"severity\": 1", "gaussian_noise\", \"severity\": 3",
                           "brightness\", \"severity\": 1", "brightness\", \"severity\": 3",
                           "brightness\", \"severity\": 5", "fog\", \"severity\": 1"};
    char text[2048], jpath[1024];
    // which of pairs[] the file holds -> whether it matches
    struct { int use[6]; int match; } cases[] = {
        {{1, 1, 1, 1, 0, 0}, 1}, {{1, 0, 1, 1, 0, 0}, 0}, {{1, 1, 1, 1, 1, 0}, 0}, {{1, 1, 1, 1, 0, 1}, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = (size_t)snprintf(text, sizeof text, "%s", head);
        for (int i = 0; i < 6; i++)
            if (cases[k].use[i])
                n += (size_t)snprintf(text + n, sizeof text - n, ", {\"corruption\": \"%s, \"metrics\": {\"mIoU\": 2}}",
                                      pairs[i]);
        snprintf(text + n, sizeof text - n, "]}\n");
        snprintf(jpath, sizeof jpath, "%s", write_file("m.json", text));
        cr_assert_eq(experiment_corruptions_match(&e, jpath), cases[k].match, "case %zu: %s", k, text);
    }
    // The channel order: a file without corruption_channels (written before eval recorded it) is
    // RGB; a BGR evaluation matches only a file that asks for BGR, and the other way round.
    for (int bgr = 0; bgr < 2; bgr++)
        for (int file_order = 0; file_order < 3; file_order++) {   // absent, "rgb", "bgr"
            size_t n = (size_t)snprintf(text, sizeof text, "{%s%s",
                                        file_order == 0 ? "" : file_order == 1 ? "\"corruption_channels\": \"rgb\", "
                                                                               : "\"corruption_channels\": \"bgr\", ",
                                        head + 1);
            for (int i = 0; i < 4; i++)
                n += (size_t)snprintf(text + n, sizeof text - n, ", {\"corruption\": \"%s, \"metrics\": {\"mIoU\": 2}}",
                                      pairs[i]);
            snprintf(text + n, sizeof text - n, "]}\n");
            write_file("m.json", text);
            e.corruption_bgr = bgr;
            cr_assert_eq(experiment_corruptions_match(&e, jpath), (file_order == 2) == bgr, "bgr %d: %s", bgr, text);
        }
    e.corruption_bgr = false;
    write_file("m.json", "{\"results\": [oops]}\n");
    cr_assert_eq(experiment_corruptions_match(&e, jpath), 0);
    cr_assert_eq(experiment_corruptions_match(&e, "/nonexistent/m.json"), 0);
    experiment_free(&e);
}

Test(experiment, corruption_errors) {
    expect_error("source: clear\ncorruptions: [nosuch]\nrows: [{name: a}]\n",
                 (const char *[]){"bad.yaml:2:", "corruptions", "nosuch", NULL});
    expect_error("corruptions: [snow]\nrows: [{name: a}]\n", (const char *[]){"bad.yaml:1:", "source", NULL});
    expect_error("source: clear\ncorruptions: [snow]\nseverities: [6]\nrows: [{name: a}]\n",
                 (const char *[]){"bad.yaml:3:", "1, 2, 3, 4 or 5", NULL});
    expect_error("source: clear\nseverities: [1]\nrows: [{name: a}]\n", (const char *[]){"without corruptions", NULL});
    expect_error("source: clear\ncorruptions: [snow, snow]\nrows: [{name: a}]\n", (const char *[]){"twice", NULL});
    expect_error("source: clear\ncorruption_channels: bgr\nrows: [{name: a}]\n",
                 (const char *[]){"bad.yaml:2:", "without corruptions", NULL});
    expect_error("source: clear\ncorruptions: [snow]\ncorruption_channels: BGR\nrows: [{name: a}]\n",
                 (const char *[]){"bad.yaml:3:", "rgb (the default) or bgr", NULL});
    // `fog` is both a synthetic domain of the default data.val and a corruption: ambiguous.
    expect_error("source: clear\ncorruptions: [fog]\nrows: [{name: a}]\n", (const char *[]){"'fog'", "data.val", NULL});
    expect_error("source: clear\ncorruptions: [snow]\ncolumns: [frost]\nrows: [{name: a}]\n",
                 (const char *[]){"'frost'", "nor a corruption", NULL});
}

Test(experiment, seeds_expand_rows_into_runs) {
    const char *p = write_file("seeds.yaml",
        "targets: [fog]\n"
        "seeds: [3, 0, 7]\n"
        "rows:\n"
        "  - {name: a, set: {mask.alpha1: 0}}\n"
        "  - {name: b}\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.nrows, 2);
    cr_assert_eq(e.nseeds, 3);
    cr_assert_eq(e.seeds[0], 3);
    cr_assert_eq(e.nruns, 6);
    // Row by row, seed by seed; the first seed keeps the row's own directory name.
    const char *names[] = {"a", "a@0", "a@7", "b", "b@0", "b@7"};
    int seeds[] = {3, 0, 7, 3, 0, 7};
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(e.runs[i].name, names[i]);
        cr_assert_eq(e.runs[i].seed, seeds[i]);
        cr_assert_eq(e.runs[i].seed_index, i % 3);
        cr_assert_eq(e.runs[i].row, &e.rows[i / 3]);
    }
    cr_assert_eq(experiment_find_run(&e, "b@7"), &e.runs[5]);
    cr_assert_eq(experiment_find_run(&e, "b@3"), &e.runs[3], "the first seed's run by its seed");
    cr_assert_null(experiment_find_run(&e, "b@1"));
    cr_assert_null(experiment_find_run(&e, "b@03"));
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    cr_assert_eq(experiment_run_config(cfg, &e, &e.runs[2], "out/a@7"), 0, "%s", mv_last_error());
    cr_assert_eq(cfg->run.seed, 7);
    cr_assert_float_eq(cfg->model.alpha1, 0.0, 1e-9);
    cr_assert_str_eq(cfg->run.work_dir, "out/a@7");
    cr_assert_eq(experiment_run_config(cfg, &e, &e.runs[3], NULL), 0, "%s", mv_last_error());
    cr_assert_eq(cfg->run.seed, 3);
    free(cfg);
    experiment_free(&e);
    cr_assert_null(e.runs);

    // Without `seeds:`: one run per row, named after it, with the row's own run.seed.
    write_file("base7.yaml", "run:\n  seed: 7\n");
    p = write_file("noseeds.yaml", "base: base7.yaml\nrows: [{name: a}, {name: b, set: [run.seed=2]}]\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.nseeds, 0);
    cr_assert_eq(e.nruns, 2);
    cr_assert_str_eq(e.runs[1].name, "b");
    cr_assert_eq(e.runs[1].seed_index, -1);
    cfg = mv_calloc(1, sizeof *cfg);
    cr_assert_eq(experiment_run_config(cfg, &e, &e.runs[0], NULL), 0, "%s", mv_last_error());
    cr_assert_eq(cfg->run.seed, 7);
    cr_assert_eq(experiment_run_config(cfg, &e, &e.runs[1], NULL), 0, "%s", mv_last_error());
    cr_assert_eq(cfg->run.seed, 2);
    free(cfg);
    experiment_free(&e);
}

Test(experiment, seeds_refusals_name_file_and_line) {
    // A row that sets run.seed itself: refused, naming the row's line and that of `seeds:`.
    expect_error("seeds: [0, 1]\nrows:\n  - {name: a}\n  - {name: b, set: {run.seed: 4}}\n",
                 (const char *[]){"bad.yaml:4:", "row 'b'", "run.seed", "line 1", NULL});
    expect_error("rows:\n  - {name: a, set: [run.seed=4]}\nseeds: [0, 1]\n",
                 (const char *[]){"bad.yaml:2:", "row 'a'", "run.seed", "line 3", NULL});
    // ... so is a grid over run.seed, and run.seed among the common overrides.
    expect_error("seeds: [0]\ngrid: {run.seed: [1, 2]}\n", (const char *[]){"bad.yaml:2:", "run.seed", NULL});
    expect_error("set: [run.seed=3]\nseeds: [0, 1]\nrows: [{name: a}]\n",
                 (const char *[]){"bad.yaml:1:", "`set:` gives run.seed", "line 2", NULL});
    // The list itself.
    expect_error("seeds: [0, 1, 0]\nrows: [{name: a}]\n", (const char *[]){"bad.yaml:1:", "listed twice", NULL});
    expect_error("seeds: []\nrows: [{name: a}]\n", (const char *[]){"bad.yaml:1:", "empty", NULL});
    expect_error("rows: [{name: a}]\nseeds: 3\n", (const char *[]){"bad.yaml:2:", "list of seeds", NULL});
    expect_error("rows: [{name: a}]\nseeds: [1, -2]\n", (const char *[]){"bad.yaml:2:", "seeds", "integer", NULL});
    expect_error("rows: [{name: a}]\nseeds: [1.5]\n", (const char *[]){"bad.yaml:2:", "integer", NULL});
    expect_error("rows: [{name: a}]\nseeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]\n",
                 (const char *[]){"bad.yaml:2:", "at most 16", NULL});
    // A row name cannot hold '@', so no row's directory is another row's seed directory.
    expect_error("seeds: [0, 1]\nrows: [{name: a}, {name: a@1}]\n", (const char *[]){"bad.yaml:2:", "name", NULL});
}

// Hostile files: a key given twice (anywhere), a second document, paper numbers that are not
// finite, bad UTF-8 and a directory each give one error naming the place, never a silent
// half-reading (a second `rows:` used to vanish, leaving only the first list's rows).
Test(experiment, duplicate_keys_documents_encoding_and_directories) {
    expect_error("rows:\n  - {name: a}\nrows:\n  - {name: b}\n",
                 (const char *[]){"bad.yaml:3:1", "duplicate key 'rows'", "line 1", NULL});
    expect_error("rows:\n  - {name: a, set: {mask.alpha1: 0, mask.alpha1: 1}}\n",
                 (const char *[]){"bad.yaml:2:", "duplicate key 'mask.alpha1'", NULL});
    expect_error("rows:\n  - name: a\n    name: b\n", (const char *[]){"bad.yaml:3:5", "duplicate key 'name'", NULL});
    expect_error("targets: [fog]\ncolumns:\n  - {domain: fog, domain: rain}\nrows: [{name: a}]\n",
                 (const char *[]){"bad.yaml:3:", "duplicate key 'domain'", NULL});
    expect_error("grid:\n  mask.lambda: [0.1]\n  mask.lambda: [0.2]\n", (const char *[]){"bad.yaml:3:3", "duplicate", NULL});
    expect_error("rows:\n  - {name: a}\n---\nrows:\n  - {name: b}\n",
                 (const char *[]){"bad.yaml:4:1", "second YAML document", NULL});
    expect_error("targets: [fog]\nrows: [{name: a, paper: [nan, 1]}]\n", (const char *[]){"bad.yaml:2:", "paper", NULL});
    expect_error("targets: [fog]\nrows: [{name: a, paper: {fog: .inf}}]\n", (const char *[]){"bad.yaml:2:", "number", NULL});
    expect_error("rows:\n  - {name: a}\n  - {name: \"b\xff\"}\n", (const char *[]){"bad.yaml:3:14", "UTF-8", NULL});
    expect_error("model: {preset: maskvim-nano}\n", (const char *[]){"bad.yaml:1:1", "training configuration", NULL});
    mv_experiment e;
    cr_assert_lt(experiment_load(&e, dir), 0, "a directory was accepted");
    cr_assert(strstr(mv_last_error(), "is a directory"), "%s", mv_last_error());
    cr_assert_null(e.rows);
    // Still fine: one document with explicit markers, the same key in different mappings.
    const char *p = write_file("ok.yaml", "---\nset: {mask.alpha1: 1}\nrows:\n  - {name: a, set: {mask.alpha1: 2}}\n"
                                          "  - {name: b, set: {mask.alpha1: 3}}\n...\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.nrows, 2);
    experiment_free(&e);
}

// Rows that resolve to the same training (differing only in what does not change the results,
// or not at all) are found, so that the sweep can warn before training the same thing twice.
Test(experiment, twin_rows_found) {
    const char *p = write_file("twins.yaml",
        "rows:\n"
        "  - {name: a, set: [mask.alpha1=2]}\n"
        "  - {name: b, set: [run.log_every=7, run.eval_every=0]}\n"
        "  - {name: c, set: [run.log_every=3]}\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    int i, j;
    cr_expect_eq(experiment_twin_rows(&e, &i, &j), 1);
    cr_expect(i == 1 && j == 2, "twins %d %d, not b and c", i, j);
    experiment_free(&e);
    p = write_file("grid_twins.yaml", "grid: {mask.alpha1: [1, 1.0]}\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_expect_eq(experiment_twin_rows(&e, &i, &j), 1, "1 and 1.0 train alike");
    experiment_free(&e);
    p = write_file("no_twins.yaml", "seeds: [0, 1]\nrows:\n  - {name: a}\n  - {name: b, set: [mask.alpha2=3]}\n"
                                    "  - {name: cpu, set: [run.device=cpu]}\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_expect_eq(experiment_twin_rows(&e, &i, &j), 0, "rows that differ (or only in the device) are no twins");
    experiment_free(&e);
}

// `global_batch:` (the paper-scale files: 4 = 2 ranks x data.batch_per_rank 2): parsed, refused
// when no rank count gives it with a row's batch per rank, and the ranks a launcher starts.
Test(experiment, global_batch_and_launcher_ranks) {
    const char *p = write_file("gb.yaml", "global_batch: 4\nset: {data.batch_per_rank: 2}\nrows: [{name: a}, "
                                          "{name: b, set: {data.batch_per_rank: 4}}]\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.global_batch, 4);
    experiment_free(&e);
    p = write_file("nogb.yaml", "rows: [{name: a}]\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.global_batch, 0);
    experiment_free(&e);
    expect_error("global_batch: 0\nrows: [{name: a}]\n", (const char *[]){"bad.yaml:1:15", "global_batch", "1 .. 65536", NULL});
    expect_error("global_batch: two\nrows: [{name: a}]\n", (const char *[]){"bad.yaml:1:15", "global_batch", NULL});
    expect_error("global_batch: [4]\nrows: [{name: a}]\n", (const char *[]){"bad.yaml:1:15", "single value", NULL});
    expect_error("global_batch: 4\nrows:\n  - {name: a}\n  - {name: b, set: {data.batch_per_rank: 3}}\n",
                 (const char *[]){"bad.yaml:4", "row 'b'", "data.batch_per_rank 3 does not divide global_batch 4", NULL});
    expect_error("global_batches: 4\nrows: [{name: a}]\n", (const char *[]){"did you mean 'global_batch'", NULL});
    // what a --launcher string starts: 1 without one; -1 where it cannot be told
    cr_assert_eq(experiment_launcher_ranks(NULL), 1);
    cr_assert_eq(experiment_launcher_ranks("mpirun -np 2"), 2);
    cr_assert_eq(experiment_launcher_ranks("mpirun --oversubscribe -np 4 --hostfile hosts -x OMP_NUM_THREADS=8"), 4);
    cr_assert_eq(experiment_launcher_ranks("OMP_NUM_THREADS=1 /usr/bin/mpiexec -n 3"), 3);
    cr_assert_eq(experiment_launcher_ranks("mpirun -c 2"), 2);
    cr_assert_eq(experiment_launcher_ranks("srun --ntasks=8"), 8);
    cr_assert_eq(experiment_launcher_ranks("srun -N 2 -n4"), 4);
    cr_assert_eq(experiment_launcher_ranks("srun --ntasks 2"), 2);
    cr_assert_eq(experiment_launcher_ranks("mpirun --hostfile hosts"), -1);
    cr_assert_eq(experiment_launcher_ranks("mpirun -N 2 --hostfile hosts"), -1);
    cr_assert_eq(experiment_launcher_ranks("mpirun -np 2 --npernode 1"), -1);
    cr_assert_eq(experiment_launcher_ranks("srun --ntasks-per-node=2"), -1);
    cr_assert_eq(experiment_launcher_ranks("mpirun -np two"), -1);
    cr_assert_eq(experiment_launcher_ranks("./my_launcher.sh -np 2"), -1);
    cr_assert_eq(experiment_launcher_ranks("nice"), -1);
}

// `peers:` are other methods' published rows: their numbers follow `columns:` as a row's
// `paper:` does (a list, or label/domain: number; ~, null or - for a blank cell), and they are
// neither rows nor runs, so nothing (the sweep, --dry-run, `config --row`) can train them.
// `avg` may stand first in `columns:` (Table 2 prints Avg first).
Test(experiment, peers_follow_the_columns_and_are_not_rows) {
    const char *p = write_file("peers.yaml",
        "source: clear\n"
        "targets: [dusk, fog]\n"
        "columns: [{domain: avg, label: Avg}, {domain: dusk, label: B}, {domain: fog, label: M}]\n"
        "rows:\n"
        "  - {name: maskvim, paper: [45.8, 56.4, 66.6]}\n"
        "peers:\n"
        "  - {name: \"HGFormer Swin-T\", paper: [51.3, 53.4, 66.9]}\n"
        "  - {name: DIRL R50, paper: [null, 51.8, \"-\"]}\n"
        "  - name: SHADE\n"
        "    paper: {M: 43.3, Avg: ~}\n");
    mv_experiment e;
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_str_eq(e.cols[0].domain, "avg");
    cr_assert_eq(e.nrows, 1);
    cr_assert_eq(e.nruns, 1, "peers are not runs");
    cr_assert_eq(e.npeers, 3);
    cr_assert_str_eq(e.peers[0].name, "HGFormer Swin-T");
    cr_assert_float_eq(e.peers[0].paper[0], 51.3, 1e-9);
    cr_assert_float_eq(e.peers[0].paper[2], 66.9, 1e-9);
    cr_assert_str_eq(e.peers[1].name, "DIRL R50");
    cr_assert(isnan(e.peers[1].paper[0]) && isnan(e.peers[1].paper[2]), "null and - are blank cells");
    cr_assert_float_eq(e.peers[1].paper[1], 51.8, 1e-9);
    cr_assert(isnan(e.peers[2].paper[0]) && isnan(e.peers[2].paper[1]));
    cr_assert_float_eq(e.peers[2].paper[2], 43.3, 1e-9);
    cr_assert_eq(e.peers[1].line, 8);
    cr_assert_null(experiment_find_row(&e, "SHADE"));
    cr_assert_null(experiment_find_run(&e, "HGFormer Swin-T"));
    cr_assert_float_eq(e.rows[0].paper[0], 45.8, 1e-9);   // the row's Avg, first as its column
    experiment_free(&e);
    cr_assert_null(e.peers);
    // a file without peers has none
    p = write_file("nopeers.yaml", "targets: [fog]\nrows: [{name: a}]\n");
    cr_assert_eq(experiment_load(&e, p), 0, "%s", mv_last_error());
    cr_assert_eq(e.npeers, 0);
    experiment_free(&e);
}

Test(experiment, peer_errors_name_file_and_line) {
    const char *head = "targets: [dusk, fog]\nrows: [{name: a}]\n";   // columns: dusk, fog, avg
    char text[1024];
    // the wrong count, as for a row's paper:
    snprintf(text, sizeof text, "%speers:\n  - {name: X, paper: [1, 2]}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:4:", "paper", "2 numbers for 3 columns", NULL});
    // a name given twice, naming both lines
    snprintf(text, sizeof text, "%speers:\n  - {name: IBN, paper: [1, 2, 3]}\n  - {name: SW, paper: [1, 2, 3]}\n"
             "  - {name: IBN, paper: [4, 5, 6]}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:6: peer 'IBN' also named at line 4 (peer names must be unique)", NULL});
    // not a number, not finite
    snprintf(text, sizeof text, "%speers:\n  - {name: X, paper: [1, abc, 3]}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:4:", "paper", "expected a number", NULL});
    snprintf(text, sizeof text, "%speers:\n  - {name: X, paper: [1, .inf, 3]}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:4:", "expected a number", NULL});
    snprintf(text, sizeof text, "%speers:\n  - {name: X, paper: {Q: 1}}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:4:", "no such column", NULL});
    // the peer itself
    snprintf(text, sizeof text, "%speers:\n  - {name: X, set: [mask.alpha1=0], paper: [1, 2, 3]}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:4:", "set: unknown peer key (name, paper)", NULL});
    snprintf(text, sizeof text, "%speers:\n  - {paper: [1, 2, 3]}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:4:", "peer without a name", NULL});
    snprintf(text, sizeof text, "%speers:\n  - {name: X}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:4:", "X: peer without `paper:`", NULL});
    snprintf(text, sizeof text, "%speers: {name: X, paper: [1, 2, 3]}\n", head);
    expect_error(text, (const char *[]){"bad.yaml:3:", "peers: expected a list", NULL});
    snprintf(text, sizeof text, "%speers: [X]\n", head);
    expect_error(text, (const char *[]){"bad.yaml:3:", "each peer is a mapping", NULL});
    // a column given twice (two avg: where would the mean go, which paper number is it?)
    expect_error("targets: [fog]\ncolumns: [{domain: avg}, fog, {domain: avg, label: Avg}]\nrows: [{name: a}]\n",
                 (const char *[]){"bad.yaml:2:", "columns: domain listed twice", NULL});
}
