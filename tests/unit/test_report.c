// The report generator: the JSON reader, loading run directories (partial ones included), the
// table with the paper's numbers and the target mean, the sweep key, the writers, the rows
// of an experiment with seeds (mean, sample std, per-seed values), the mean column where an
// experiment file puts `avg`, and other methods' published rows (peers) in every writer.
#include <criterion/criterion.h>
#include "core/error.h"
#include "core/report.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char ROOT[512];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

static void make_root(const char *name) {
    const char *tmp = getenv("MV_TEST_TMP");
    char cmd[1200];
    snprintf(ROOT, sizeof ROOT, "%s/report_unit_%s_%d", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", ROOT, ROOT);
    cr_assert_eq(system(cmd), 0);
}

static void remove_root(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ROOT);
    cr_assert_eq(system(cmd), 0);
}

static const char *EVAL_FMT =
    "{\"type\": \"eval\", \"iter\": %d, \"domain\": \"%s\", \"metrics\": {\"domain\": \"%s\", \"mIoU\": %g, "
    "\"mAcc\": 1, \"aAcc\": 2, \"valid_classes\": 2, \"pixels\": 10, \"IoU\": {\"road\": %g, \"sky\": null}, "
    "\"Acc\": {\"road\": 1, \"sky\": null}}}\n";

// A run directory: config with the given lambda, 3 train records, evals at iter 20 (and 40
// when full) for clear/fog/rain.
static void make_run(const char *name, double lambda, bool full, const char *status) {
    char dir[1024], path[1200], buf[2048];
    snprintf(dir, sizeof dir, "%s/%s", ROOT, name);
    cr_assert_eq(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    snprintf(buf, sizeof buf, "# resolved\nmodel:\n  preset: \"maskvim-nano\"\n  depths: [1, 1, 2, 1]\nmask:\n  lambda: %g\n"
             "  alpha1: 1\nschedule:\n  max_iters: 40\nrun:\n  work_dir: %s\n", lambda, dir);
    write_text(path, buf);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 1; i <= 3; i++)
        fprintf(f, "{\"type\": \"train\", \"iter\": %d, \"loss_total\": %g, \"loss_ce\": 1.5, \"loss_aux\": 1, "
                   "\"loss_ratio\": 0.01, \"loss_position\": 0.3, \"lr\": 0.0004, \"keep_enc\": [0.5, 0.4, %g], "
                   "\"keep_dec\": [0.6], \"unknown_key\": {\"nested\": [1, \"x\"]}, \"images_per_s\": 7}\n",
                i * 10, 4.0 - i, 0.3 + 0.01 * i);
    const char *doms[3] = {"clear", "fog", "rain"};
    for (int d = 0; d < 3; d++) fprintf(f, EVAL_FMT, 20, doms[d], doms[d], 1.0 + d, 10.0);
    if (full)
        for (int d = 0; d < 3; d++) fprintf(f, EVAL_FMT, 40, doms[d], doms[d], lambda * 10 + d, 50.0 + d);
    else
        fputs("{\"type\": \"train\", \"iter\": 3", f); // a run still writing: cut last line
    fclose(f);
    if (status) {
        snprintf(path, sizeof path, "%s/status.json", dir);
        write_text(path, status);
    }
}

Test(report_json, parses_values_and_skips_unknown_keys) {
    mv_json v;
    cr_assert_eq(mv_json_parse(&v, " {\"a\": 1.5e1, \"b\": [true, null, \"x\\\"y\\u0041\"], \"c\": {\"d\": -2}} "), 0, "%s", mv_last_error());
    cr_assert_eq(v.kind, MV_JSON_OBJ);
    cr_assert_float_eq(mv_json_num(mv_json_get(&v, "a"), 0), 15.0, 1e-12);
    const mv_json *b = mv_json_get(&v, "b");
    cr_assert(b && b->kind == MV_JSON_ARR && b->n == 3);
    cr_assert_eq(b->items[0].kind, MV_JSON_BOOL);
    cr_assert_eq(b->items[1].kind, MV_JSON_NULL);
    cr_assert_str_eq(b->items[2].str, "x\"yA");
    cr_assert_float_eq(mv_json_num(mv_json_get(mv_json_get(&v, "c"), "d"), 0), -2.0, 1e-12);
    cr_assert_null(mv_json_get(&v, "zz"));
    cr_assert_float_eq(mv_json_num(NULL, 7), 7.0, 0);
    mv_json_free(&v);
}

Test(report_json, errors_give_the_column) {
    mv_json v;
    cr_assert_eq(mv_json_parse(&v, "{\"a\": 1,, }"), -1);
    cr_assert(strstr(mv_last_error(), "column 9"), "%s", mv_last_error());
    cr_assert_eq(mv_json_parse(&v, "{\"a\": \"open"), -1);
    cr_assert(strstr(mv_last_error(), "unterminated"), "%s", mv_last_error());
    cr_assert_eq(mv_json_parse(&v, "[1, 2] x"), -1);
    cr_assert_eq(mv_json_parse(&v, "{\"a\" 1}"), -1);
    cr_assert_eq(mv_json_parse(&v, ""), -1);
}

Test(report_run, full_run_takes_last_evaluation) {
    make_root("full");
    make_run("a", 0.5, true, NULL);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/a", ROOT);
    mv_report_run run;
    cr_assert_eq(mv_report_run_load(&run, dir, "a"), 0, "%s", mv_last_error());
    cr_assert_eq(run.npoints, 3);
    cr_assert_eq(run.points[2].iter, 30);
    cr_assert_float_eq(run.points[0].loss_total, 3.0, 1e-9);
    cr_assert_eq(run.points[0].nkeep_enc, 3);
    cr_assert_float_eq(run.points[2].keep_enc[2], 0.33, 1e-9);
    cr_assert_eq(run.ndomains, 3);
    cr_assert_str_eq(run.domains[0].name, "clear");
    cr_assert_eq(run.domains[1].iter, 40);
    cr_assert_float_eq(run.domains[1].miou, 6.0, 1e-9);
    cr_assert_eq(run.domains[1].nclass, 2);
    cr_assert_float_eq(run.domains[1].iou[0], 51.0, 1e-9);
    cr_assert(isnan(run.domains[1].iou[1]));
    cr_assert_str_eq(mv_report_run_config(&run, "mask.lambda"), "0.5");
    cr_assert_str_eq(mv_report_run_config(&run, "model.preset"), "maskvim-nano");
    cr_assert_str_eq(mv_report_run_config(&run, "model.depths"), "[1, 1, 2, 1]");
    // reached schedule.max_iters without a status.json: finished
    cr_assert_str_eq(run.state, "finished");
    cr_assert_not(run.incomplete, "%s", run.note);
    mv_report_run_free(&run);
    remove_root();
}

Test(report_run, partial_run_and_status_override) {
    make_root("partial");
    make_run("b", 0.1, false, "{\"state\": \"running\", \"final\": {\"clear\": 2.5, \"extra\": \"x\", \"rain\": null, "
                              "\"snow\": null}}");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/b", ROOT);
    mv_report_run run;
    cr_assert_eq(mv_report_run_load(&run, dir, "b"), 0, "%s", mv_last_error());
    cr_assert_eq(run.npoints, 3); // the cut last line is left out
    cr_assert_str_eq(run.state, "running");
    cr_assert(run.incomplete);
    cr_assert(strstr(run.note, "running"), "%s", run.note);
    cr_assert(strstr(run.note, "cut"), "%s", run.note);
    cr_assert_float_eq(mv_report_run_domain(&run, "clear")->miou, 2.5, 1e-9);
    cr_assert_float_eq(mv_report_run_domain(&run, "fog")->miou, 2.0, 1e-9);
    // null in "final" (an undefined mIoU) overrides a number as a number does
    cr_assert(isnan(mv_report_run_domain(&run, "rain")->miou));
    cr_assert(mv_report_run_domain(&run, "snow") && isnan(mv_report_run_domain(&run, "snow")->miou));
    cr_assert_null(mv_report_run_domain(&run, "extra"));
    mv_report_run_free(&run);
    remove_root();
}

// Without a status.json, a run whose training reached schedule.max_iters but whose final
// evaluation was cut while being written (its last line cut, so one domain's last evaluation is
// an older one) is not finished: it once read as finished with one number from iteration 20
// beside the others from 40.
Test(report_run, cut_final_evaluation_is_not_finished) {
    make_root("cutfinal");
    make_run("d", 0.5, true, NULL);
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/d", ROOT);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *text = slurp(path);
    size_t len = strlen(text);
    text[len - 1] = 0;                   // the final evaluation of rain (the last line): cut halfway
    char *last = strrchr(text, '\n') + 1;
    cr_assert(strstr(last, "\"rain\""), "%s", last);
    last[40] = 0;
    write_text(path, text);
    free(text);
    mv_report_run run;
    cr_assert_eq(mv_report_run_load(&run, dir, "d"), 0, "%s", mv_last_error());
    cr_expect_eq(mv_report_run_domain(&run, "rain")->iter, 20);
    cr_expect_str_neq(run.state, "finished");
    cr_expect(run.incomplete, "a run missing its final evaluation of rain read as complete");
    cr_expect(strstr(run.note, "cut"), "%s", run.note);
    cr_expect(strstr(run.note, "iterations 20 to 40 of 40"), "%s", run.note);
    mv_report_run_free(&run);
    remove_root();
}

Test(report_run, corrupt_line_names_file_and_line) {
    make_root("corrupt");
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/c", ROOT);
    cr_assert_eq(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    write_text(path, "{\"type\": \"train\", \"iter\": 1}\n\n{\"type\": \"train\", \"iter\": }\n{\"type\": \"train\"}\n");
    mv_report_run run;
    cr_assert_eq(mv_report_run_load(&run, dir, "c"), -1);
    cr_assert(strstr(mv_last_error(), "metrics.jsonl:3"), "%s", mv_last_error());
    mv_report_run_free(&run);
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), -1);
    cr_assert(strstr(mv_last_error(), "metrics.jsonl:3"), "%s", mv_last_error());
    cr_assert_eq(mv_report_load(&rep, "/nonexistent/runs", NULL, NULL), -1);
    remove_root();
}

Test(report, table_paper_sweep_and_writers) {
    make_root("table");
    make_run("lam0.5", 0.5, true, "{\"state\": \"finished\"}");
    make_run("lam0.1", 0.1, true, NULL);
    make_run("lam0.9", 0.9, false, NULL); // still training: only the iter-20 evaluation
    char paper[1024];
    snprintf(paper, sizeof paper, "%s/paper.json", ROOT);
    write_text(paper, "{\"lam0.5\": {\"clear\": 4.0, \"mean\": 7.0}, \"lam0.1\": {\"rain\": 2.5, \"nosuch\": 1}, \"other\": {}}");
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, paper, "Figure 5a twin"), 0, "%s", mv_last_error());
    cr_assert_eq(rep.nruns, 3);
    cr_assert_str_eq(rep.runs[0].name, "lam0.1"); // sorted by name
    cr_assert_eq(rep.ncolumns, 3);
    cr_assert_str_eq(rep.columns[0], "clear");
    int w = rep.ncolumns + 1;
    // lam0.5: clear 5, fog 6, rain 7 -> target mean 6.5
    cr_assert_float_eq(rep.ours[1 * w + 0], 5.0, 1e-9);
    cr_assert_float_eq(rep.ours[1 * w + 3], 6.5, 1e-9);
    cr_assert_float_eq(rep.paper[1 * w + 0], 4.0, 1e-9);
    cr_assert_float_eq(rep.paper[1 * w + 3], 7.0, 1e-9);
    cr_assert(isnan(rep.paper[1 * w + 1]));
    cr_assert_float_eq(rep.paper[0 * w + 2], 2.5, 1e-9);
    // lam0.9 is incomplete: its last evaluation (iter 20) gives 1, 2, 3
    cr_assert(rep.runs[2].incomplete);
    cr_assert_float_eq(rep.ours[2 * w + 3], 2.5, 1e-9);
    cr_assert_str_eq(rep.sweep_key, "mask.lambda");

    char md[1100], csv[1100], html[1100];
    snprintf(md, sizeof md, "%s/report.md", ROOT);
    snprintf(csv, sizeof csv, "%s/report.csv", ROOT);
    snprintf(html, sizeof html, "%s/report.html", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_html(&rep, html), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "# Figure 5a twin"));
    cr_assert(strstr(t, "| lam0.5 | 5.00 (paper 4.00, +1.00) | 6.00 | 7.00 | 6.50 (paper 7.00, -0.50) |"), "%s", t);
    cr_assert(strstr(t, "| lam0.9 * |"), "%s", t);
    cr_assert(strstr(t, "incomplete runs (1 of 3)"), "%s", t);
    cr_assert(strstr(t, "## mIoU against mask.lambda"));
    cr_assert(strstr(t, "| mask.lambda | run | source | mean over targets |"), "%s", t);
    cr_assert(strstr(t, "| road | 50.0 | 51.0 | 52.0 |"), "%s", t);
    free(t);
    t = slurp(csv);
    cr_assert(strstr(t, "run,state,incomplete,mask.lambda,clear,paper_clear,diff_clear,fog,"), "%s", t);
    cr_assert(strstr(t, "lam0.5,finished,0,0.5,5.0000,4.0000,1.0000,6.0000,,,7.0000,,,6.5000,7.0000,-0.5000\n"), "%s", t);
    cr_assert(strstr(t, "lam0.9,unknown,1,0.9,"), "%s", t);
    free(t);
    t = slurp(html);
    cr_assert(strstr(t, "<svg"));
    cr_assert(strstr(t, "mIoU against mask.lambda"));
    cr_assert(strstr(t, "encoder mask keep ratio"));
    cr_assert_null(strstr(t, "http"));
    cr_assert_null(strstr(t, "src="));
    cr_assert(strstr(t, "</html>"));
    free(t);
    mv_report_free(&rep);
    remove_root();
}

Test(report, no_sweep_when_several_keys_vary) {
    make_root("nosweep");
    make_run("x", 0.5, true, NULL);
    make_run("y", 0.1, true, NULL);
    char path[1200];
    snprintf(path, sizeof path, "%s/y/config.yaml", ROOT);
    write_text(path, "mask:\n  lambda: 0.1\n  alpha1: 0\nschedule:\n  max_iters: 40\n");
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_str_eq(rep.sweep_key, "");
    cr_assert_str_eq(rep.title, "MaskViM results");
    mv_report_free(&rep);
    // The lambda differs, and so does the training data (a list, which was not read, so the
    // report drew a lambda curve over runs trained on other data); then the data alone.
    const char *data[2] = {"data:\n  train:\n    - {name: \"clear\", path: \"synthetic:clear\", repeat: 1}\n",
                           "data:\n  train:\n    - {name: \"clear\", path: \"synthetic:clear\", repeat: 1}\n"
                           "    - {name: \"fog\", path: \"synthetic:fog\", repeat: 1}\n"};
    for (int same_lambda = 0; same_lambda < 2; same_lambda++) {
        for (int r = 0; r < 2; r++) {
            char text[1024];
            snprintf(path, sizeof path, "%s/%s/config.yaml", ROOT, r ? "y" : "x");
            snprintf(text, sizeof text, "mask:\n  lambda: %s\n%sschedule:\n  max_iters: 40\n",
                     r && !same_lambda ? "0.1" : "0.5", data[r]);
            write_text(path, text);
        }
        cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
        cr_expect_str_eq(rep.sweep_key, "", "a curve over %s with other data.train", rep.sweep_key);
        cr_expect_str_eq(mv_report_run_config(&rep.runs[0], "data.train.0"),
                         "{name: \"clear\", path: \"synthetic:clear\", repeat: 1}");
        mv_report_free(&rep);
    }
    remove_root();
}

// Prepends start records (one per commit given, in order) to a run's metrics.jsonl.
static void add_starts(const char *run, const char *const *commits, int n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", ROOT, run);
    char *old = slurp(path);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"type\": \"start\", \"iter\": %d, \"resumed\": %s, \"version\": \"0.9.0\", \"commit\": \"%s\", "
                   "\"ranks\": 1, \"batch_per_rank\": 2, \"device\": \"CPU\", \"start_time\": \"2026-11-30T00:00:00Z\"}\n",
                10 * i, i ? "true" : "false", commits[i]);
    fputs(old, f);
    fclose(f);
    free(old);
}

// Which builds trained the runs: one line when one build trained them all (a resume by the same
// build counts once); a table naming each run's commits when they differ; in the JSON per run.
Test(report, builds_of_the_runs) {
    make_root("builds");
    make_run("a", 0.5, true, NULL);
    make_run("b", 0.1, true, NULL);
    const char *same[] = {"1111aaaa2222", "1111aaaa2222"};
    add_starts("a", same, 2);
    add_starts("b", same, 1);
    mv_report rep;
    char md[1100], js[1100];
    snprintf(md, sizeof md, "%s/r.md", ROOT);
    snprintf(js, sizeof js, "%s/r.json", ROOT);
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(rep.runs[0].nbuilds, 1);
    cr_assert_str_eq(rep.runs[0].builds[0], "1111aaaa2222");
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "## Builds\n\nEvery run was trained by one build: commit 1111aaaa2222.\n"), "%s", t);
    free(t);
    mv_report_free(&rep);

    // b resumed by a newer build (a commit that begins with the first must not be taken for it),
    // then by the first again; c has no start record.
    const char *mixed[] = {"1111aaaa2222", "1111aaaa2222-dirty", "1111aaaa2222"};
    make_root("builds");
    make_run("a", 0.5, true, NULL);
    make_run("b", 0.1, true, NULL);
    make_run("c", 0.2, true, NULL);
    add_starts("a", mixed, 1);
    add_starts("b", mixed, 3);
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(rep.runs[1].nbuilds, 2);
    cr_assert_str_eq(rep.runs[1].builds[0], "1111aaaa2222");
    cr_assert_str_eq(rep.runs[1].builds[1], "1111aaaa2222-dirty");
    cr_assert_eq(rep.runs[2].nbuilds, 0);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, js), 0, "%s", mv_last_error());
    t = slurp(md);
    cr_assert(strstr(t, "not all trained by one build") && strstr(t, "| a | 1111aaaa2222 |\n") &&
              strstr(t, "| b | 1111aaaa2222, 1111aaaa2222-dirty |\n") && strstr(t, "| c | not recorded |\n"), "%s", t);
    free(t);
    t = slurp(js);
    cr_assert(strstr(t, "\"name\": \"b\", \"state\": \"finished\", \"incomplete\": false, "
                        "\"builds\": [\"1111aaaa2222\", \"1111aaaa2222-dirty\"]"), "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// A status.json cut short (the sweep's own writes are atomic; a copy or an edit may not be) makes
// its row incomplete with the reason, not the whole report an error.
Test(report, damaged_status_marks_its_row_incomplete) {
    make_root("damaged_status");
    make_run("a", 0.5, true, NULL);
    make_run("b", 0.1, true, "{\"row\": \"b\", \"state\": \"finished\"");
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(rep.nruns, 2);
    cr_assert(!rep.runs[0].incomplete, "%s", rep.runs[0].note);
    cr_assert(rep.runs[1].incomplete);
    cr_assert_str_eq(rep.runs[1].state, "unknown");
    cr_assert(strstr(rep.runs[1].note, "status.json damaged ("), "%s", rep.runs[1].note);
    mv_report_free(&rep);
    remove_root();
}

Test(report, run_without_config_in_a_sweep) {
    make_root("noconfig");
    make_run("a", 0.5, true, NULL);
    make_run("b", 0.1, true, NULL);
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/c", ROOT);
    cr_assert_eq(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/status.json", dir);
    write_text(path, "{\"row\": \"c\", \"state\": \"failed\", \"final\": {\"fog\": 3.25, \"rain\": null}, \"error\": \"exit 1\"}");
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(rep.nruns, 3);
    cr_assert_str_eq(rep.sweep_key, "mask.lambda");
    cr_assert(rep.runs[2].incomplete);
    cr_assert_str_eq(rep.runs[2].state, "failed");
    cr_assert(strstr(rep.runs[2].note, "error: exit 1"), "%s", rep.runs[2].note);
    int w = rep.ncolumns + 1;
    cr_assert(isnan(rep.ours[2 * w + 0]));
    cr_assert_float_eq(rep.ours[2 * w + 1], 3.25, 1e-9);
    cr_assert(isnan(rep.ours[2 * w + 3])); // no mean while a target is missing
    char md[1100], csv[1100], html[1100];
    snprintf(md, sizeof md, "%s/r.md", ROOT);
    snprintf(csv, sizeof csv, "%s/r.csv", ROOT);
    snprintf(html, sizeof html, "%s/r.html", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0);
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0);
    cr_assert_eq(mv_report_write_html(&rep, html), 0);
    char *t = slurp(csv);
    cr_assert(strstr(t, "c,failed,1,,,,,3.2500,"), "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// The experiment-file layout: columns in a given order with labels (one nobody evaluated
// stays, empty), runs in a given order, paper numbers set cell by cell.
Test(report, columns_order_and_paper_cells) {
    make_root("layout");
    make_run("lam0.5", 0.5, true, NULL);   // clear 5, fog 6, rain 7
    make_run("lam0.1", 0.1, true, NULL);
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "layout"), 0, "%s", mv_last_error());
    const char *domains[] = {"clear", "rain", "painted", "fog"};
    const char *labels[] = {"clear", "rain (G)", "painted (S)", NULL};
    mv_report_set_columns(&rep, domains, labels, 4, "Avg", -1);
    cr_assert_eq(rep.ncolumns, 4);
    cr_assert_str_eq(rep.columns[1], "rain");
    cr_assert_str_eq(rep.columns[3], "fog");
    cr_assert_str_eq(mv_report_label(&rep, 1), "rain (G)");
    cr_assert_str_eq(mv_report_label(&rep, 3), "fog");   // no label: the name
    cr_assert_str_eq(mv_report_label(&rep, 4), "Avg");
    const char *order[] = {"lam0.5", "nosuch"};
    mv_report_order_runs(&rep, order, 2);
    cr_assert_str_eq(rep.runs[0].name, "lam0.5");
    cr_assert_str_eq(rep.runs[1].name, "lam0.1");
    int w = rep.ncolumns + 1;
    cr_assert_float_eq(rep.ours[0 * w + 1], 7.0, 1e-9);   // lam0.5, rain
    cr_assert(isnan(rep.ours[0 * w + 2]));                 // painted: not evaluated
    cr_assert(isnan(rep.ours[0 * w + 4]), "no mean while a target is missing");
    cr_assert_eq(mv_report_set_paper_cell(&rep, "lam0.5", "rain", 54.3), 0);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "lam0.5", "avg", 53.0), 0);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "lam0.5", "atlantis", 1.0), 1);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "nosuch", "rain", 1.0), 1);
    cr_assert_float_eq(rep.paper[0 * w + 1], 54.3, 1e-9);
    cr_assert_float_eq(rep.paper[0 * w + 4], 53.0, 1e-9);
    char md[1024];
    snprintf(md, sizeof md, "%s/layout.md", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    FILE *f = fopen(md, "r");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cr_assert(strstr(buf, "| run | clear (source) | rain (G) | painted (S) | fog | Avg |"), "%s", buf);
    cr_assert(strstr(buf, "| lam0.5 | 5.00 | 7.00 (paper 54.30, -47.30) | — | 6.00 | — (paper 53.00) |"), "%s", buf);
    mv_report_free(&rep);
    remove_root();
}

// A finished run with a final mIoU per domain in status.json and run.seed in config.yaml
// (seed < 0: no config.yaml).
static void make_seed_run(const char *name, int seed, const char *state, double clear, double fog, double rain) {
    char dir[1024], path[1200], buf[1024];
    snprintf(dir, sizeof dir, "%s/%s", ROOT, name);
    cr_assert_eq(mkdir(dir, 0777), 0);
    if (seed >= 0) {
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        snprintf(buf, sizeof buf, "schedule:\n  max_iters: 40\nrun:\n  seed: %d\n", seed);
        write_text(path, buf);
    }
    snprintf(path, sizeof path, "%s/status.json", dir);
    snprintf(buf, sizeof buf, "{\"row\": \"%s\", \"state\": \"%s\", \"final\": {\"clear\": %g, \"fog\": %g, \"rain\": %g}}\n",
             name, state, clear, fog, rain);
    write_text(path, buf);
}

// With seeds, the mIoU-against-key view has one point per row, at its seeds' mean, in key order:
// not one line per run directory, nor a curve through every seed's point.
Test(report, seeds_sweep_points_are_row_means) {
    make_root("seeds_sweep");
    const char *names[] = {"hi", "hi@1", "lo", "lo@1"};
    const double lam[] = {0.9, 0.9, 0.1, 0.1}, fog[] = {10, 14, 20, 30};
    for (int i = 0; i < 4; i++) {
        char dir[1024], path[1200], buf[1024];
        snprintf(dir, sizeof dir, "%s/%s", ROOT, names[i]);
        cr_assert_eq(mkdir(dir, 0777), 0);
        snprintf(path, sizeof path, "%s/config.yaml", dir);
        snprintf(buf, sizeof buf, "mask:\n  lambda: %g\nrun:\n  seed: %d\n", lam[i], i % 2);
        write_text(path, buf);
        snprintf(path, sizeof path, "%s/status.json", dir);
        snprintf(buf, sizeof buf, "{\"row\": \"%s\", \"state\": \"finished\", \"final\": {\"clear\": 50, \"fog\": %g}}\n",
                 names[i], fog[i]);
        write_text(path, buf);
    }
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "sweep"), 0, "%s", mv_last_error());
    cr_assert_str_eq(rep.sweep_key, "mask.lambda");
    const char *rows[] = {"hi", "lo"};
    const int seeds[] = {0, 1};
    mv_report_set_seeds(&rep, rows, 2, seeds, 2, names);
    mv_report_sweep_point *p;
    cr_assert_eq(mv_report_sweep_points(&rep, &p), 2);
    cr_assert_str_eq(p[0].name, "lo");   // sorted by the key: 0.1 first
    cr_assert_float_eq(p[0].mean, 25.0, 1e-9);
    cr_assert_float_eq(p[0].mean_sd, sqrt(50.0), 1e-9);
    cr_assert_eq(p[0].mean_n, 2);
    cr_assert_str_eq(p[1].name, "hi");
    cr_assert_float_eq(p[1].mean, 12.0, 1e-9);
    cr_assert_float_eq(p[1].source, 50.0, 1e-9);
    free(p);
    char md[1100];
    snprintf(md, sizeof md, "%s/report.md", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "| mask.lambda | row | source | mean over targets |\n|---:|---|---:|---:|\n"
                        "| 0.1 | lo | 50.00 ± 0.00 | 25.00 ± 7.07 |\n| 0.9 | hi | 50.00 ± 0.00 | 12.00 ± 2.83 |\n"),
              "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

Test(report, seeds_mean_spread_and_writers) {
    make_root("seeds");
    make_seed_run("a", 0, "finished", 20, 10, 12);
    make_seed_run("a@1", 1, "finished", 22, 11, 16);
    make_seed_run("a@2", 2, "finished", 27, 15, 14);
    make_seed_run("b", 5, "finished", 30, 30, 30);   // trained with another seed than 0: left out
    make_seed_run("b@1", 1, "finished", 24, 8, 9);
    make_seed_run("b@2", 2, "running", 1, 1, 1);     // not finished: left out
    make_seed_run("c@1", -1, "failed", 1, 1, 1);     // c: no finished seed at all
    make_seed_run("c@2", 4, "stale", 1, 1, 1);       // another seed, whatever its state: named as such
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "seeds"), 0, "%s", mv_last_error());
    const char *rows[] = {"a", "b", "c"};
    const int seeds[] = {0, 1, 2};
    const char *runs[] = {"a", "a@1", "a@2", "b", "b@1", "b@2", "c", "c@1", "c@2"};
    mv_report_set_seeds(&rep, rows, 3, seeds, 3, runs);
    const char *domains[] = {"clear", "fog", "rain"};
    mv_report_set_columns(&rep, domains, NULL, 3, "Avg", -1);   // the seed rows follow the new columns
    cr_assert_eq(rep.nrows, 3);
    int w = rep.ncolumns + 1;
    cr_assert_eq(w, 4);
    const mv_report_row *a = &rep.rows[0], *b = &rep.rows[1], *c = &rep.rows[2];
    cr_assert_eq(a->nused, 3);
    cr_assert_float_eq(a->mean[1], 12.0, 1e-9);                  // fog: 10, 11, 15
    cr_assert_float_eq(a->sd[1], sqrt(7.0), 1e-9);               // ((4 + 1 + 9) / 2)
    cr_assert_eq(a->n[1], 3);
    cr_assert_float_eq(a->value[2 * w + 2], 14.0, 1e-9);          // seed 2, rain
    cr_assert_float_eq(a->mean[3], (11.0 + 13.5 + 14.5) / 3, 1e-9);   // the mean of the seeds' target means
    cr_assert_eq(b->nused, 1);
    cr_assert(!b->used[0] && b->used[1] && !b->used[2]);
    cr_assert_float_eq(b->mean[1], 8.0, 1e-9);
    cr_assert(isnan(b->sd[1]), "no spread from one seed");
    cr_assert(strstr(b->note, "b: trained with run.seed 5"), "%s", b->note);
    cr_assert(strstr(b->note, "b@2: running"), "%s", b->note);
    cr_assert_eq(c->nused, 0);
    cr_assert(isnan(c->mean[0]));
    cr_assert(strstr(c->note, "c: not run"), "%s", c->note);
    cr_assert(strstr(c->note, "c@2: trained with run.seed 4, left out"), "%s", c->note);
    // Paper numbers go to the row (and to the run of the same name).
    cr_assert_eq(mv_report_set_paper_cell(&rep, "a", "fog", 13.5), 0);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "c", "avg", 40.0), 0);   // a row without a run directory
    cr_assert_float_eq(a->paper[1], 13.5, 1e-9);

    char buf[96];
    mv_report_format_stat(buf, sizeof buf, 11.534, 0.171, 3, 3);
    cr_assert_str_eq(buf, "11.53 ± 0.17");
    mv_report_format_stat(buf, sizeof buf, 11.534, 0.171, 2, 3);
    cr_assert_str_eq(buf, "11.53 ± 0.17 (2/3)");
    mv_report_format_stat(buf, sizeof buf, 8, NAN, 1, 3);
    cr_assert_str_eq(buf, "8.00 (1/3)");
    mv_report_format_stat(buf, sizeof buf, NAN, NAN, 0, 3);
    cr_assert_str_eq(buf, "—");

    char md[1024], csv[1024], html[1024], json[1024];
    snprintf(md, sizeof md, "%s/r.md", ROOT);
    snprintf(csv, sizeof csv, "%s/r.csv", ROOT);
    snprintf(html, sizeof html, "%s/r.html", ROOT);
    snprintf(json, sizeof json, "%s/r.json", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_html(&rep, html), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, json), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "mean ± sample standard deviation"), "legend missing");
    cr_assert(strstr(t, "| a | 3/3 | 23.00 ± 3.61 | 12.00 ± 2.65 (paper 13.50, -1.50) | 14.00 ± 2.00 | 13.00 ± 1.80 |"), "%s", t);
    cr_assert(strstr(t, "| b * | 1/3 | 24.00 (1/3) | 8.00 (1/3) | 9.00 (1/3) | 8.50 (1/3) |"), "%s", t);
    cr_assert(strstr(t, "| c * | 0/3 | — | — | — | — (paper 40.00) |"), "%s", t);
    cr_assert(strstr(t, "| a | 2 | a@2 | 27.00 | 15.00 | 14.00 | 14.50 |"), "%s", t);
    cr_assert(strstr(t, "| b | 0 | b | — | — | — | — |"), "%s", t);
    free(t);
    t = slurp(csv);
    cr_assert(strstr(t, "row,seeds,seeds_finished,clear,sd_clear,n_clear,paper_clear,diff_clear,fog,"), "%s", t);
    cr_assert(strstr(t, ",clear@seed0,fog@seed0,rain@seed0,mean@seed0,clear@seed1,"), "%s", t);
    cr_assert(strstr(t, "\na,3,3,23.0000,3.6056,3,,,12.0000,2.6458,3,13.5000,-1.5000,"), "%s", t);
    cr_assert(strstr(t, "\nb,3,1,24.0000,,1,,,"), "%s", t);
    cr_assert(strstr(t, ",20.0000,10.0000,12.0000,11.0000,22.0000,11.0000,16.0000,13.5000,27.0000,15.0000,14.0000,14.5000\n"), "%s", t);
    free(t);
    t = slurp(html);
    cr_assert(strstr(t, "<td>12.00 ± 2.65<br><span class=\"paper\">paper&nbsp;13.50</span>"), "%s", t);
    cr_assert(strstr(t, "mean ± sd over the seeds"), "bar chart title");
    cr_assert(strstr(t, "<path d=\"M"), "no error bars");
    free(t);
    t = slurp(json);
    mv_json doc;
    cr_assert_eq(mv_json_parse(&doc, t), 0, "%s", mv_last_error());
    const mv_json *jr = mv_json_get(&doc, "rows");
    cr_assert(jr && jr->kind == MV_JSON_ARR && jr->n == 3);
    const mv_json *fog = mv_json_get(mv_json_get(&jr->items[0], "cells"), "fog");
    cr_assert_float_eq(mv_json_num(mv_json_get(fog, "mean"), NAN), 12.0, 1e-9);
    cr_assert_float_eq(mv_json_num(mv_json_get(fog, "sd"), NAN), 2.6458, 1e-9);
    const mv_json *vals = mv_json_get(fog, "seeds");
    cr_assert(vals && vals->n == 3);
    cr_assert_float_eq(vals->items[2].num, 15.0, 1e-9);
    const mv_json *bfog = mv_json_get(mv_json_get(&jr->items[1], "cells"), "fog");
    cr_assert_eq(mv_json_get(bfog, "seeds")->items[0].kind, MV_JSON_NULL);
    cr_assert_eq(mv_json_get(bfog, "sd")->kind, MV_JSON_NULL);
    mv_json_free(&doc);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// A table row nobody ran is listed (state "not run", every cell missing, the paper's numbers
// still shown), not left out; an unfinished run's numbers say which iteration they come from.
Test(report, rows_not_run_and_partial_iterations) {
    make_root("missing");
    make_run("a", 0.5, true, NULL);   // evaluations at 20 and 40 of max_iters 40: finished
    make_run("b", 0.1, true, "{\"row\": \"b\", \"state\": \"failed\", \"error\": \"killed\"}");
    char path[1200];
    snprintf(path, sizeof path, "%s/b/metrics.jsonl", ROOT);
    write_text(path, "{\"type\": \"eval\", \"iter\": 20, \"domain\": \"fog\", \"metrics\": {\"mIoU\": 3}}\n");
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(rep.nruns, 2);
    cr_assert(rep.runs[1].incomplete);
    cr_assert(strstr(rep.runs[1].note, "numbers from iteration 20 of 40"), "%s", rep.runs[1].note);
    cr_assert_null(strstr(rep.runs[0].note, "numbers from"), "%s", rep.runs[0].note);
    const char *rows[] = {"c", "a", "b"};
    mv_report_add_missing(&rep, rows, 3);
    mv_report_order_runs(&rep, rows, 3);
    cr_assert_eq(rep.nruns, 3);
    cr_assert_str_eq(rep.runs[0].name, "c");
    cr_assert_str_eq(rep.runs[0].state, "not run");
    cr_assert(rep.runs[0].incomplete);
    int w = rep.ncolumns + 1;
    for (int c = 0; c < w; c++) cr_assert(isnan(rep.ours[c]), "not-run cell %d has a number", c);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "c", "fog", 59.1), 0);
    snprintf(path, sizeof path, "%s/missing.md", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, path), 0, "%s", mv_last_error());
    char *md = slurp(path);
    cr_assert(strstr(md, "| c * | — | — (paper 59.10) |"), "%s", md);
    cr_assert(strstr(md, "- c: not run"), "%s", md);
    free(md);
    snprintf(path, sizeof path, "%s/missing.csv", ROOT);
    cr_assert_eq(mv_report_write_csv(&rep, path), 0, "%s", mv_last_error());
    char *csv = slurp(path);
    cr_assert(strstr(csv, "\nc,not run,1,"), "%s", csv);
    free(csv);
    mv_report_add_missing(&rep, rows, 3);   // twice: nothing more
    cr_assert_eq(rep.nruns, 3);
    mv_report_free(&rep);
    remove_root();
}

// An experiment's `targets:` (a subset of the evaluated domains) make the mean column: the mean
// the sweep prints and the paper's Avg, not the mean over every other domain. A domain whose
// last mIoU is undefined (null: no labelled pixel) is '—', and so is any mean over it. A
// difference to the paper that rounds to zero reads +0.00, not -0.00.
Test(report, mean_over_declared_targets_and_zero_difference) {
    make_root("targets");
    make_run("a", 0.5, true, NULL);   // clear 5, fog 6, rain 7
    make_run("b", 0.1, true, NULL);   // clear 1, fog 2, rain 3, then rain undefined:
    char path[1200];
    snprintf(path, sizeof path, "%s/b/metrics.jsonl", ROOT);
    FILE *f = fopen(path, "a");
    cr_assert(f);
    fputs("{\"type\": \"eval\", \"iter\": 40, \"domain\": \"rain\", \"metrics\": {\"domain\": \"rain\", \"mIoU\": null}}\n", f);
    fclose(f);
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    int w = rep.ncolumns + 1;
    cr_assert_eq(rep.ncolumns, 3);
    cr_assert_float_eq(rep.ours[0 * w + 3], 6.5, 1e-9);   // no targets: every column but the source
    cr_assert(isnan(rep.ours[1 * w + 2]), "b rain: %g", rep.ours[1 * w + 2]);
    cr_assert(isnan(rep.ours[1 * w + 3]), "b mean over an undefined domain: %g", rep.ours[1 * w + 3]);
    const char *fog[] = {"fog"};
    mv_report_set_targets(&rep, fog, 1);
    cr_assert_float_eq(rep.ours[0 * w + 3], 6.0, 1e-9);
    cr_assert_float_eq(rep.ours[1 * w + 3], 2.0, 1e-9);
    cr_assert(mv_report_is_target(&rep, 1) && !mv_report_is_target(&rep, 2) && !mv_report_is_target(&rep, 0));
    const char *cols[] = {"clear", "rain", "fog"};
    mv_report_set_columns(&rep, cols, NULL, 3, "Avg", -1);   // kept through a new layout
    cr_assert_float_eq(rep.ours[0 * w + 3], 6.0, 1e-9);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "a", "fog", 6.004), 0);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "a", "avg", 6.001), 0);
    char md[1100], html[1100], json[1100];
    snprintf(md, sizeof md, "%s/t.md", ROOT);
    snprintf(html, sizeof html, "%s/t.html", ROOT);
    snprintf(json, sizeof json, "%s/t.json", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_html(&rep, html), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, json), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "**Avg** averages the targets (fog)."), "%s", t);
    cr_assert(strstr(t, "| a | 5.00 | 7.00 | 6.00 (paper 6.00, +0.00) | 6.00 (paper 6.00, +0.00) |"), "%s", t);
    cr_assert(strstr(t, "| b | 1.00 | — | 2.00 | 2.00 |"), "%s", t);
    cr_assert_null(strstr(t, "-0.00"), "%s", t);
    free(t);
    t = slurp(html);
    cr_assert(strstr(t, "the mean averages the target domains (fog)"), "%s", t);
    cr_assert(strstr(t, "<span class=\"pos\">+0.00</span>"), "%s", t);
    cr_assert_null(strstr(t, "-0.00"));
    free(t);
    t = slurp(json);
    cr_assert(strstr(t, "{\"domain\": \"rain\", \"label\": \"rain\", \"role\": \"other\"}"), "%s", t);
    cr_assert(strstr(t, "{\"domain\": \"fog\", \"label\": \"fog\", \"role\": \"target\"}"), "%s", t);
    free(t);
    const char *both[] = {"fog", "rain"};
    mv_report_set_targets(&rep, both, 2);
    cr_assert_float_eq(rep.ours[0 * w + 3], 6.5, 1e-9);
    cr_assert(isnan(rep.ours[1 * w + 3]), "b: %g", rep.ours[1 * w + 3]);
    mv_report_set_targets(&rep, NULL, 0);
    cr_assert_float_eq(rep.ours[0 * w + 3], 6.5, 1e-9);
    char d[32];
    cr_assert_str_eq(mv_report_format_diff(d, sizeof d, -0.004), "+0.00");
    cr_assert_str_eq(mv_report_format_diff(d, sizeof d, -0.006), "-0.01");
    cr_assert_str_eq(mv_report_format_diff(d, sizeof d, 0.0), "+0.00");
    cr_assert_str_eq(mv_report_format_diff(d, sizeof d, -1.5), "-1.50");
    mv_report_free(&rep);
    remove_root();
}

// Prepends one start record per (ranks, batch_per_rank) pair to a run's metrics.jsonl.
static void add_batch_starts(const char *run, const int *ranks, const int *bpr, int n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", ROOT, run);
    char *old = slurp(path);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"type\": \"start\", \"iter\": %d, \"resumed\": %s, \"version\": \"0.9.0\", \"commit\": \"c0ffee\", "
                   "\"ranks\": %d, \"batch_per_rank\": %d, \"device\": \"CPU\", \"start_time\": \"2026-12-02T00:00:00Z\"}\n",
                10 * i, i ? "true" : "false", ranks[i], bpr[i]);
    fputs(old, f);
    fclose(f);
    free(old);
}

// The global batch a run trained with (its start records: ranks x batch_per_rank) against the
// file's global_batch that the sweep records in status.json: a run at another batch (one rank
// where the paper's files ask for 4 = 2 x 2, or resumed on one rank) is marked with † in
// report.md and report.html, flagged in report.csv and report.json; a run on the right ranks,
// or from a file without global_batch, is not.
Test(report, global_batch_other_than_the_files_is_marked) {
    make_root("batch");
    const char *st4 = "{\"row\": \"x\", \"global_batch\": 4, \"state\": \"finished\"}";
    make_run("a_one_rank", 0.5, true, st4);
    make_run("b_two_ranks", 0.5, true, st4);
    make_run("c_resumed_on_one", 0.5, true, st4);
    make_run("d_no_global_batch", 0.5, true, "{\"row\": \"x\", \"state\": \"finished\"}");
    add_batch_starts("a_one_rank", (int[]){1}, (int[]){2}, 1);
    add_batch_starts("b_two_ranks", (int[]){2, 2}, (int[]){2, 2}, 2);
    add_batch_starts("c_resumed_on_one", (int[]){2, 1}, (int[]){2, 2}, 2);
    add_batch_starts("d_no_global_batch", (int[]){1}, (int[]){2}, 1);
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    cr_assert_eq(rep.nruns, 4);
    cr_assert(rep.runs[0].batch_differs && rep.runs[0].batch_asked == 4 && rep.runs[0].nbatches == 1);
    cr_assert(!rep.runs[1].batch_differs && rep.runs[1].nbatches == 1);   // a resume on the same ranks counts once
    cr_assert(rep.runs[2].batch_differs && rep.runs[2].nbatches == 2);
    cr_assert(!rep.runs[3].batch_differs && rep.runs[3].batch_asked == 0);
    char buf[512];
    mv_report_batch_note(buf, sizeof buf, &rep.runs[2]);
    cr_assert_str_eq(buf, "global batch 4 (2 ranks x 2), then 2 (1 rank x 2); the experiment file asks for 4 "
                          "(global_batch): train it on 2 ranks");
    char md[1100], csv[1100], html[1100], js[1100];
    snprintf(md, sizeof md, "%s/r.md", ROOT);
    snprintf(csv, sizeof csv, "%s/r.csv", ROOT);
    snprintf(html, sizeof html, "%s/r.html", ROOT);
    snprintf(js, sizeof js, "%s/r.json", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_html(&rep, html), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, js), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "| a_one_rank † |") && strstr(t, "| b_two_ranks |") && strstr(t, "| c_resumed_on_one † |") &&
              strstr(t, "| d_no_global_batch |"), "%s", t);
    cr_assert(strstr(t, "\n† trained at another global batch") && strstr(t, "(2 of 4)") &&
              strstr(t, "- a_one_rank: global batch 2 (1 rank x 2); the experiment file asks for 4 (global_batch): "
                        "train it on 2 ranks\n"), "%s", t);
    free(t);
    t = slurp(csv);
    cr_assert(strstr(t, ",global_batch,global_batch_asked,global_batch_differs\n"), "%s", t);
    cr_assert(strstr(t, ",2,4,1\n") && strstr(t, ",4,4,0\n") && strstr(t, ",4;2,4,1\n") && strstr(t, ",2,,0\n"), "%s", t);
    free(t);
    t = slurp(html);
    cr_assert(strstr(t, "a_one_rank <span class=\"note\"") && strstr(t, "† Trained at another global batch"), "%s", t);
    cr_assert(!strstr(t, "b_two_ranks <span"), "%s", t);
    free(t);
    t = slurp(js);
    cr_assert(strstr(t, "\"global_batch\": {\"trained\": [{\"ranks\": 1, \"batch_per_rank\": 2}], \"asked\": 4, "
                        "\"differs\": true}"), "%s", t);
    cr_assert(strstr(t, "\"global_batch\": {\"trained\": [{\"ranks\": 1, \"batch_per_rank\": 2}], \"asked\": null, "
                        "\"differs\": false}"), "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// Every line of a CSV has as many fields as its header (no field here holds a comma).
static void assert_csv_rectangular(const char *t) {
    int header = -1, line = 0, fields = 1;
    for (const char *c = t; *c; c++) {
        if (*c == ',') fields++;
        if (*c != '\n') continue;
        if (header < 0) header = fields;
        cr_assert_eq(fields, header, "line %d has %d fields, the header %d:\n%s", line + 1, fields, header, t);
        fields = 1;
        line++;
    }
}

// The mean column stands where the experiment file's `columns:` puts avg (Table 2: first) in
// every writer, while the table's arrays keep it at index ncolumns; mean_at < 0 keeps it last.
Test(report, mean_column_where_the_file_puts_it) {
    make_root("meanpos");
    make_run("lam0.5", 0.5, true, NULL);   // clear 5, fog 6, rain 7: mean 6.5
    make_run("lam0.1", 0.1, true, NULL);   // clear 1, fog 2, rain 3: mean 2.5
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "meanpos"), 0, "%s", mv_last_error());
    // without a layout: last, as before
    cr_assert_eq(mv_report_column_at(&rep, 3), 3);
    cr_assert_eq(mv_report_column_at(&rep, 0), 0);
    const char *domains[] = {"clear", "fog", "rain"};
    mv_report_set_columns(&rep, domains, NULL, 3, "Avg", 1);   // clear (source), Avg, fog, rain
    int w = rep.ncolumns + 1;
    cr_assert_eq(mv_report_column_at(&rep, 0), 0);
    cr_assert_eq(mv_report_column_at(&rep, 1), 3, "the mean second");
    cr_assert_eq(mv_report_column_at(&rep, 2), 1);
    cr_assert_eq(mv_report_column_at(&rep, 3), 2);
    cr_assert_float_eq(rep.ours[0 * w + 3], 2.5, 1e-9);   // the arrays keep the mean at ncolumns
    cr_assert_eq(mv_report_set_paper_cell(&rep, "lam0.5", "avg", 53.0), 0);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "lam0.5", "fog", 66.6), 0);
    char md[1100], csv[1100], html[1100], json[1100];
    snprintf(md, sizeof md, "%s/m.md", ROOT);
    snprintf(csv, sizeof csv, "%s/m.csv", ROOT);
    snprintf(html, sizeof html, "%s/m.html", ROOT);
    snprintf(json, sizeof json, "%s/m.json", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_html(&rep, html), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, json), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "| run | clear (source) | Avg | fog | rain |"), "%s", t);
    cr_assert(strstr(t, "| lam0.5 | 5.00 | 6.50 (paper 53.00, -46.50) | 6.00 (paper 66.60, -60.60) | 7.00 |"), "%s", t);
    cr_assert(strstr(t, "| 0.5 | lam0.5 | 5.00 | 6.50 |"), "the sweep table: source and mean: %s", t);
    free(t);
    t = slurp(csv);
    cr_assert(strstr(t, "run,state,incomplete,mask.lambda,clear,paper_clear,diff_clear,mean,paper_mean,diff_mean,fog,"
                        "paper_fog,diff_fog,rain,paper_rain,diff_rain\n"), "%s", t);
    cr_assert(strstr(t, "\nlam0.5,finished,0,0.5,5.0000,,,6.5000,53.0000,-46.5000,6.0000,66.6000,-60.6000,7.0000,,\n"), "%s", t);
    assert_csv_rectangular(t);
    free(t);
    // a peer's line leaves the swept key empty too
    cr_assert_eq(mv_report_set_peer_cell(&rep, mv_report_add_peer(&rep, "IBN"), "avg", 44.2), 0);
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    t = slurp(csv);
    cr_assert(strstr(t, "\nIBN,published,,,,,,,44.2000,,,,,,,,1\n"), "%s", t);
    assert_csv_rectangular(t);
    free(t);
    t = slurp(html);
    cr_assert(strstr(t, "<th>run</th><th>state</th><th>clear (source)</th><th>Avg (targets)</th><th>fog</th><th>rain</th></tr>"), "%s", t);
    cr_assert(strstr(t, "<td>5.00</td><td>6.50<br><span class=\"paper\">paper&nbsp;53.00</span> <span class=\"neg\">-46.50</span></td>"
                        "<td>6.00<br>"), "%s", t);
    free(t);
    t = slurp(json);
    const char *cols = strstr(t, "\"columns\": [{\"domain\": \"clear\", \"label\": \"clear\", \"role\": \"source\"}, "
                                 "{\"domain\": \"mean\", \"label\": \"Avg\", \"role\": \"mean\"}, {\"domain\": \"fog\"");
    cr_assert(cols, "%s", t);
    cr_assert(strstr(t, "\"cells\": {\"clear\": {\"ours\": 5.0000, \"paper\": null}, \"mean\": {\"ours\": 6.5000, \"paper\": 53.0000}, "
                        "\"fog\": {\"ours\": 6.0000"), "%s", t);
    free(t);
    // mean_at == n: after the listed domains, before one the file does not list (rain)
    const char *two[] = {"clear", "fog"};
    mv_report_set_columns(&rep, two, NULL, 2, "Avg", 2);
    cr_assert_str_eq(rep.columns[2], "rain");
    cr_assert_eq(mv_report_column_at(&rep, 2), 3);
    cr_assert_eq(mv_report_column_at(&rep, 3), 2);
    // mean_at 0: first, even before the source; -1: last again
    mv_report_set_columns(&rep, domains, NULL, 3, "Avg", 0);
    cr_assert_eq(mv_report_column_at(&rep, 0), 3);
    cr_assert_eq(mv_report_column_at(&rep, 1), 0);
    mv_report_set_columns(&rep, domains, NULL, 3, "Avg", -1);
    for (int i = 0; i <= 3; i++) cr_assert_eq(mv_report_column_at(&rep, i), i);
    mv_report_free(&rep);
    remove_root();
}

// With seeds, the tables of means and of seeds, the CSV and the JSON follow the same order.
Test(report, mean_column_placed_with_seeds) {
    make_root("meanseeds");
    make_seed_run("a", 0, "finished", 20, 10, 12);
    make_seed_run("a@1", 1, "finished", 22, 11, 16);
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "s"), 0, "%s", mv_last_error());
    const char *rows[] = {"a"}, *runs[] = {"a", "a@1"};
    const int seeds[] = {0, 1};
    const char *domains[] = {"clear", "fog", "rain"};
    mv_report_set_columns(&rep, domains, NULL, 3, "Avg", 1);
    mv_report_set_seeds(&rep, rows, 1, seeds, 2, runs);
    char md[1100], csv[1100], json[1100];
    snprintf(md, sizeof md, "%s/s.md", ROOT);
    snprintf(csv, sizeof csv, "%s/s.csv", ROOT);
    snprintf(json, sizeof json, "%s/s.json", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, json), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_assert(strstr(t, "| row | seeds | clear (source) | Avg | fog | rain |"), "%s", t);
    cr_assert(strstr(t, "| a | 2/2 | 21.00 ± 1.41 | 12.25 ± 1.77 | 10.50 ± 0.71 | 14.00 ± 2.83 |"), "%s", t);
    cr_assert(strstr(t, "| a | 1 | a@1 | 22.00 | 13.50 | 11.00 | 16.00 |"), "%s", t);
    free(t);
    t = slurp(csv);
    cr_assert(strstr(t, "row,seeds,seeds_finished,clear,sd_clear,n_clear,paper_clear,diff_clear,mean,sd_mean,"), "%s", t);
    cr_assert(strstr(t, ",clear@seed0,mean@seed0,fog@seed0,rain@seed0,clear@seed1,"), "%s", t);
    free(t);
    t = slurp(json);
    cr_assert(strstr(t, "\"cells\": {\"clear\": {\"mean\": 21.0000, \"sd\": 1.4142, \"n\": 2, \"seeds\": [20.0000, 22.0000], "
                        "\"paper\": null}, \"mean\": {\"mean\": 12.2500"), "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// Other methods' published rows (an experiment file's `peers:`) come after ours in a block of
// their own in every writer: headed as published and not run here, their numbers only (no
// "ours", no difference), "—" for a cell the paper leaves blank, in the display order of the
// columns; our rows and their differences are as without them.
Test(report, peers_in_every_writer) {
    make_root("peers");
    make_run("lam0.5", 0.5, true, NULL);   // clear 5, fog 6, rain 7: mean 6.5
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "peers"), 0, "%s", mv_last_error());
    const char *domains[] = {"clear", "fog", "rain"};
    const char *labels[] = {"clear", "fog (M)", "rain (G)"};
    mv_report_set_columns(&rep, domains, labels, 3, "Avg", 1);
    cr_assert_eq(mv_report_set_paper_cell(&rep, "lam0.5", "fog", 66.6), 0);
    int hg = mv_report_add_peer(&rep, "HGFormer Swin-T"), dirl = mv_report_add_peer(&rep, "DIRL R50");
    cr_assert_eq(hg, 0);
    cr_assert_eq(dirl, 1);
    cr_assert_eq(mv_report_set_peer_cell(&rep, hg, "fog", 66.9), 0);
    cr_assert_eq(mv_report_set_peer_cell(&rep, hg, "rain", 51.3), 0);
    cr_assert_eq(mv_report_set_peer_cell(&rep, hg, "avg", 51.3), 0);
    cr_assert_eq(mv_report_set_peer_cell(&rep, dirl, "rain", 46.5), 0);
    cr_assert_eq(mv_report_set_peer_cell(&rep, dirl, "atlantis", 1.0), 1, "no such column");
    cr_assert_eq(mv_report_set_peer_cell(&rep, 7, "fog", 1.0), 1, "no such peer");
    cr_assert_float_eq(mv_report_peer_value(&rep, hg, 3), 51.3, 1e-9);   // the mean
    cr_assert(isnan(mv_report_peer_value(&rep, hg, 0)), "the source: blank");
    cr_assert(isnan(mv_report_peer_value(&rep, dirl, 3)), "DIRL: no Avg");
    cr_assert_eq(rep.nruns, 1, "peers are not runs");
    char md[1100], csv[1100], html[1100], json[1100];
    snprintf(md, sizeof md, "%s/p.md", ROOT);
    snprintf(csv, sizeof csv, "%s/p.csv", ROOT);
    snprintf(html, sizeof html, "%s/p.html", ROOT);
    snprintf(json, sizeof json, "%s/p.json", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_html(&rep, html), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, json), 0, "%s", mv_last_error());
    char *t = slurp(md);
    // ours unchanged, with its difference
    cr_assert(strstr(t, "| lam0.5 | 5.00 | 6.50 | 6.00 (paper 66.60, -60.60) | 7.00 |"), "%s", t);
    const char *block = strstr(t, "\n## Published results of other methods (not run here)\n");
    cr_assert(block, "%s", t);
    cr_assert(block > strstr(t, "| lam0.5 |"), "the peers come after our rows");
    cr_assert(strstr(block, "| method | clear (source) | Avg | fog (M) | rain (G) |\n|---|---:|---:|---:|---:|\n"
                            "| HGFormer Swin-T | — | 51.30 | 66.90 | 51.30 |\n| DIRL R50 | — | — | — | 46.50 |\n"), "%s", block);
    cr_assert_null(strstr(block, "paper 66.90"), "no paper/difference cells for peers");
    free(t);
    t = slurp(csv);
    cr_assert(strstr(t, "run,state,incomplete,clear,paper_clear,diff_clear,mean,paper_mean,diff_mean,fog,paper_fog,diff_fog,"
                        "rain,paper_rain,diff_rain,peer\n"), "%s", t);
    cr_assert(strstr(t, "\nlam0.5,finished,0,5.0000,,,6.5000,,,6.0000,66.6000,-60.6000,7.0000,,,0\n"), "%s", t);
    cr_assert(strstr(t, "\nHGFormer Swin-T,published,,,,,,51.3000,,,66.9000,,,51.3000,,1\n"), "%s", t);
    cr_assert(strstr(t, "\nDIRL R50,published,,,,,,,,,,,,46.5000,,1\n"), "%s", t);
    assert_csv_rectangular(t);
    free(t);
    t = slurp(html);
    const char *h = strstr(t, "<h2>Published results of other methods (not run here)</h2>");
    cr_assert(h, "%s", t);
    cr_assert(h > strstr(t, "<td>lam0.5</td>") && h < strstr(t, "<h2>lam0.5</h2>"), "after our table, before the runs");
    cr_assert(strstr(h, "<tr><th>method</th><th>clear (source)</th><th>Avg (targets)</th><th>fog (M)</th><th>rain (G)</th></tr>\n"
                        "<tr><td>HGFormer Swin-T</td><td class=\"miss\">—</td><td>51.30</td><td>66.90</td><td>51.30</td></tr>"), "%s", h);
    free(t);
    t = slurp(json);
    mv_json doc;
    cr_assert_eq(mv_json_parse(&doc, t), 0, "%s\n%s", mv_last_error(), t);
    const mv_json *peers = mv_json_get(&doc, "peers"), *runs = mv_json_get(&doc, "runs");
    cr_assert(peers && peers->kind == MV_JSON_ARR && peers->n == 2, "%s", t);
    cr_assert(runs && runs->n == 1, "the peers are not among the runs");
    cr_assert_str_eq(mv_json_get(&peers->items[0], "name")->str, "HGFormer Swin-T");
    const mv_json *cells = mv_json_get(&peers->items[0], "cells");
    cr_assert_float_eq(mv_json_num(mv_json_get(mv_json_get(cells, "mean"), "paper"), NAN), 51.3, 1e-9);
    cr_assert_eq(mv_json_get(mv_json_get(cells, "clear"), "paper")->kind, MV_JSON_NULL);
    cr_assert_null(mv_json_get(mv_json_get(cells, "fog"), "ours"), "a peer has no ours");
    cr_assert_str_eq(cells->items[1].key, "mean", "cells in display order");
    mv_json_free(&doc);
    free(t);
    // with seeds: a line per peer in the CSV of rows too, its number as paper_<domain>
    const char *rows[] = {"lam0.5"}, *rruns[] = {"lam0.5"};
    const int seeds[] = {0};
    mv_report_set_seeds(&rep, rows, 1, seeds, 1, rruns);
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    t = slurp(csv);
    cr_assert(strstr(t, ",mean@seed0,fog@seed0,rain@seed0,peer\n"), "%s", t);
    cr_assert(strstr(t, "\nHGFormer Swin-T,,,,,,,,,,,51.3000,,,,,66.9000,,,,,51.3000,,,,,,1\n"), "%s", t);
    assert_csv_rectangular(t);
    free(t);
    t = slurp(md);
    cr_assert(strstr(t, "| HGFormer Swin-T | — | 51.30 | 66.90 | 51.30 |"), "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// A report without peers keeps its files as they were: no `peer` column, an empty "peers".
Test(report, no_peers_no_peer_column) {
    make_root("nopeers");
    make_run("lam0.5", 0.5, true, NULL);
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, NULL), 0, "%s", mv_last_error());
    char csv[1100], json[1100], md[1100];
    snprintf(csv, sizeof csv, "%s/n.csv", ROOT);
    snprintf(json, sizeof json, "%s/n.json", ROOT);
    snprintf(md, sizeof md, "%s/n.md", ROOT);
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_json(&rep, json), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    char *t = slurp(csv);
    cr_assert(strstr(t, ",mean,paper_mean,diff_mean\n"), "%s", t);
    cr_assert_null(strstr(t, "peer"), "%s", t);
    free(t);
    t = slurp(json);
    cr_assert(strstr(t, "\"peers\": []}"), "%s", t);
    free(t);
    t = slurp(md);
    cr_assert_null(strstr(t, "Published results"), "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// Runs trained on different sources in one folder (Table 3's Cityscapes runs beside Table 4's
// Mapillary runs): each run's mean leaves out its own source (its run.select_domain, else its first
// data.val entry), as training's summary does; the report averaged every column but the first,
// which for a run of another source took in its source and left out a target.
Test(report, runs_of_different_sources) {
    make_root("sources");
    make_run("a_clear", 0.5, true, NULL);   // clear 5, fog 6, rain 7
    make_run("b_fog", 0.5, true, NULL);
    make_run("c_rain", 0.5, true, NULL);
    char path[1200], buf[1024];
    snprintf(path, sizeof path, "%s/a_clear/config.yaml", ROOT);
    write_text(path, "model:\n  preset: \"maskvim-nano\"\ndata:\n  val:\n    - {name: \"clear\", path: \"synthetic:clear\"}\n"
                     "    - {name: \"fog\", path: \"synthetic:fog\"}\nschedule:\n  max_iters: 40\nrun:\n  select_domain: \"\"\n");
    snprintf(path, sizeof path, "%s/b_fog/config.yaml", ROOT);
    write_text(path, "model:\n  preset: \"maskvim-nano\"\ndata:\n  val:\n    - {name: \"fog\", path: \"synthetic:fog\"}\n"
                     "    - {name: \"clear\", path: \"synthetic:clear\"}\nschedule:\n  max_iters: 40\nrun:\n  select_domain: \"\"\n");
    snprintf(path, sizeof path, "%s/c_rain/config.yaml", ROOT);
    write_text(path, "model:\n  preset: \"maskvim-nano\"\ndata:\n  val:\n    - {name: clear, path: \"synthetic:clear\"}\n"
                     "schedule:\n  max_iters: 40\nrun:\n  select_domain: \"rain\"\n");
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "sources"), 0, "%s", mv_last_error());
    cr_assert_eq(rep.nruns, 3);
    cr_assert_str_eq(rep.runs[0].source, "clear");
    cr_assert_str_eq(rep.runs[1].source, "fog");
    cr_assert_str_eq(rep.runs[2].source, "rain");
    cr_assert(mv_report_mixed_sources(&rep));
    int w = rep.ncolumns + 1;
    cr_assert_float_eq(rep.ours[0 * w + 3], 6.5, 1e-9);   // (fog 6 + rain 7) / 2
    cr_assert_float_eq(rep.ours[1 * w + 3], 6.0, 1e-9);   // (clear 5 + rain 7) / 2
    cr_assert_float_eq(rep.ours[2 * w + 3], 5.5, 1e-9);   // (clear 5 + fog 6) / 2
    char md[1100], csv[1100];
    snprintf(md, sizeof md, "%s/r.md", ROOT);
    snprintf(csv, sizeof csv, "%s/r.csv", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    char *t = slurp(md);
    cr_expect(strstr(t, "| b_fog [source: fog] | 5.00 | 6.00 | 7.00 | 6.00 |"), "%s", t);
    cr_expect(!strstr(t, "(source) |"), "%s", t);
    free(t);
    t = slurp(csv);
    snprintf(buf, sizeof buf, "run,state,incomplete,source,");
    cr_expect(strstr(t, buf) && strstr(t, "\nb_fog,finished,0,fog,"), "%s", t);
    free(t);
    // A peer's line has the source field too: its numbers stay under paper_<domain>, peer = 1
    // (they had moved one field left, into our columns).
    int peer = mv_report_add_peer(&rep, "Peer X");
    cr_assert_eq(mv_report_set_peer_cell(&rep, peer, "fog", 41.0), 0);
    cr_assert_eq(mv_report_write_csv(&rep, csv), 0, "%s", mv_last_error());
    t = slurp(csv);
    assert_csv_rectangular(t);
    const char *head = strstr(t, ",paper_fog,"), *line = strstr(t, "\nPeer X,published,");
    cr_assert(head && line, "%s", t);
    int field = 0, pfield = 0;
    for (const char *c = t; c < head; c++) field += *c == ',';
    const char *num = strstr(line, "41.0000");
    cr_assert(num, "%s", t);
    for (const char *c = line + 1; c < num; c++) pfield += *c == ',';
    cr_assert_eq(pfield, field + 1, "the peer's fog number is not under paper_fog: %s", t);
    cr_assert(strstr(line, ",1\n"), "%s", t);
    free(t);
    mv_report_free(&rep);
    // One source: no per-run marks, the first column is marked as the source.
    snprintf(path, sizeof path, "rm -rf '%s/b_fog' '%s/c_rain'", ROOT, ROOT);
    cr_assert_eq(system(path), 0);
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "one source"), 0, "%s", mv_last_error());
    cr_assert_not(mv_report_mixed_sources(&rep));
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    t = slurp(md);
    cr_expect(strstr(t, "| clear (source) |") && !strstr(t, "[source:"), "%s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}

// A domain with an mIoU but no per-class numbers (a corruption's mean, from status.json) has no
// column in report.md's per-class table: its '—' in every row read as "class absent".
Test(report, per_class_table_leaves_out_domains_without_classes) {
    make_root("perclass");
    make_run("c", 0.5, true, "{\"state\": \"finished\", \"iter\": 40, \"final\": {\"clear\": 5, \"snow\": 3.25}}");
    mv_report rep;
    cr_assert_eq(mv_report_load(&rep, ROOT, NULL, "per-class"), 0, "%s", mv_last_error());
    char md[1100];
    snprintf(md, sizeof md, "%s/r.md", ROOT);
    cr_assert_eq(mv_report_write_md(&rep, md), 0, "%s", mv_last_error());
    char *t = slurp(md);
    const char *table = strstr(t, "## Per-class IoU");
    cr_assert(table, "%s", t);
    cr_assert(strstr(table, "| class | clear | fog | rain |\n|---|---:|---:|---:|\n| road | 50.0 | 51.0 | 52.0 |"),
              "%s", table);
    cr_assert_null(strstr(table, "snow"), "%s", table);
    cr_assert(strstr(t, "3.25"), "the snow mIoU is still in the main table: %s", t);
    free(t);
    mv_report_free(&rep);
    remove_root();
}
