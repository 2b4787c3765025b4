// `maskvim report`: turns a directory of run directories (one per table row, as written by
// `maskvim experiment run` or by hand with `maskvim train`) into report.md, report.csv,
// report.json and a self-contained report.html, with the paper's numbers beside ours when given. Given an
// experiment file instead, it takes the runs directory, title, columns, row order and paper
// numbers from the file, so that the report reads like the paper's table; with the file's
// `seeds:`, each row's cells are the mean ± sample standard deviation over its seeds' runs.
#include "launch/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/experiment.h"
#include "core/report.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim report RUNS_DIR --out DIR [--paper FILE.json] [--title T]\n"
        "       maskvim report EXPERIMENT.yaml [--runs RUNS_DIR] --out DIR [--paper FILE.json] [--title T]\n\n"
        "Reads every run directory under RUNS_DIR (config.yaml, metrics.jsonl, status.json) and\n"
        "writes DIR/report.md, DIR/report.csv, DIR/report.html and DIR/report.json: mIoU per evaluated domain\n"
        "(the first is the source) and the mean over the targets, one row per run; the paper's\n"
        "number and our difference per cell from --paper {\"run\": {\"domain\"|\"mean\": number}};\n"
        "training curves, per-class IoU, and mIoU against the config key the runs sweep.\n"
        "Partial results are fine: missing cells are marked and incomplete runs listed.\n\n"
        "Given an experiment file (docs/experiments.md), the runs are those `maskvim experiment\n"
        "run` wrote (default RUNS_DIR: runs/<experiment name>, as there) and the title, the\n"
        "columns (source first, then the file's columns with their labels), the row order and the\n"
        "paper's numbers come from the file, and the mean is over the file's `targets:`. With\n"
        "`seeds:` in the file, a row's cell is the mean ± the sample standard deviation (n - 1) of\n"
        "the final mIoU over the seeds whose run finished, with (k/N) when only k of the N seeds\n"
        "did; every seed's value is listed too. A row of the file with no run directory is listed\n"
        "as not run. The file's `peers:` (other methods' published numbers, never run) follow our\n"
        "rows in a table of their own, and the mean column stands where `columns:` puts avg.\n\n"
        "  --out DIR          where the four files go (created if missing)\n"
        "  --runs RUNS_DIR    with an experiment file: the sweep's --out (default runs/<name>)\n"
        "  --paper FILE.json  paper numbers {\"run\": {\"domain\"|\"mean\": number}} (with an experiment\n"
        "                     file: applied after the file's own)\n"
        "  --title T          the report's title (default: the file's title:, else \"MaskViM results\")\n");
}

// True when the run in `dir` was trained with another configuration than row run `r` of the
// file resolves to now (the file was edited after it ran). Settings that do not change the
// results the report reads (where the run was written, how often it logged, evaluated or kept
// checkpoints, which checkpoint it calls best, the device and loader threads) are not compared.
static bool run_is_stale(const mv_experiment *exp, const mv_exp_run *r, const char *dir) {
    char path[MV_PATH_MAX + MV_EXP_RUN_NAME_MAX + 48];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    struct stat st;
    if (stat(path, &st) < 0) return false;
    mv_config *now = mv_calloc(1, sizeof *now), *saved = mv_calloc(1, sizeof *saved);
    bool stale = false;
    if (experiment_run_config(now, exp, r, NULL) == 0 && config_load(saved, path, 0, NULL) == 0) {
        experiment_copy_unscored(now, saved);
        stale = !config_equal(now, saved);
    }
    mv_clear_error();   // an unreadable config.yaml: nothing to compare, the run is read as it is
    free(now);
    free(saved);
    return stale;
}

// True when the finished run in `dir` of a file with `corruptions:` was evaluated under other
// corruptions, severities or channel order than the file asks for now: its columns are not the
// file's.
// How a finished run's corruptions.json differs from the file now (experiment_corruptions_differ;
// 0: not at all, or nothing to compare).
static int corruptions_stale(const mv_experiment *exp, const char *dir) {
    if (!exp->ncorruptions) return 0;
    char path[MV_PATH_MAX + MV_EXP_RUN_NAME_MAX + 48];
    snprintf(path, sizeof path, "%s/status.json", dir);
    struct stat st;
    if (stat(path, &st) < 0) return 0;   // not run: listed as such
    snprintf(path, sizeof path, "%s/corruptions.json", dir);
    return stat(path, &st) == 0 ? experiment_corruptions_differ(exp, path) : 0;
}

static bool is_experiment_file(const char *path) {
    size_t n = strlen(path);
    struct stat st;
    bool yaml = (n > 5 && !strcmp(path + n - 5, ".yaml")) || (n > 4 && !strcmp(path + n - 4, ".yml"));
    return yaml && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// Columns, row order and paper numbers of an experiment file applied to a loaded report.
static void apply_experiment(mv_report *rep, const mv_experiment *exp, const char *runs_dir) {
    const char *domains[MV_EXP_MAX_COLS + 1], *labels[MV_EXP_MAX_COLS + 1], *mean_label = NULL;
    char text[MV_EXP_MAX_COLS + 1][MV_NAME_MAX + MV_EXP_NAME_MAX + 4];
    int n = 0, mean_at = -1;
    // The mean column is the mean over the file's targets, as the sweep prints it and as the
    // paper's Avg is, not over every other domain data.val happens to evaluate.
    const char *targets[MV_EXP_MAX_TARGETS];
    for (int t = 0; t < exp->ntargets; t++) targets[t] = exp->targets[t];
    mv_report_set_targets(rep, targets, exp->ntargets);
    if (exp->source[0]) {
        const char *label = exp->source;
        for (int c = 0; c < exp->ncols; c++) if (!strcmp(exp->cols[c].domain, exp->source)) label = exp->cols[c].label;
        // The writers mark the first column " (source)" themselves: a column labelled `source`
        // (Figure 5's files) would otherwise read "cityscapes (source) (source)".
        if (!strcasecmp(label, "source")) label = exp->source;
        snprintf(text[n], sizeof text[n], strcmp(label, exp->source) ? "%s (%s)" : "%s", exp->source, label);
        domains[n] = exp->source;
        labels[n] = text[n];
        n++;
    }
    for (int c = 0; c < exp->ncols; c++) {
        const mv_exp_column *col = &exp->cols[c];
        if (!strcmp(col->domain, "avg")) {
            // where `columns:` puts avg (Table 2: first); last in the file: last in the report,
            // after any domain the file does not list, as without it
            mean_label = col->label;
            mean_at = c == exp->ncols - 1 ? -1 : n;
            continue;
        }
        if (!strcmp(col->domain, exp->source)) continue;
        snprintf(text[n], sizeof text[n], strcmp(col->label, col->domain) ? "%s (%s)" : "%s", col->domain, col->label);
        domains[n] = col->domain;
        labels[n] = text[n];
        n++;
    }
    mv_report_set_columns(rep, domains, labels, n, mean_label, mean_at);
    const char **names = mv_calloc((size_t)exp->nrows + 1, sizeof(char *));
    for (int r = 0; r < exp->nrows; r++) names[r] = exp->rows[r].name;
    mv_report_add_missing(rep, names, exp->nrows);   // a row nobody ran is listed, not left out
    for (int i = 0; i < exp->nruns; i++) {
        char dir[MV_PATH_MAX + MV_EXP_RUN_NAME_MAX + 2], why[MV_PATH_MAX + 200];
        int differ;
        snprintf(dir, sizeof dir, "%s/%s", runs_dir, exp->runs[i].name);
        if (run_is_stale(exp, &exp->runs[i], dir)) {
            snprintf(why, sizeof why, "trained with another configuration than %s gives now", exp->path);
            mv_report_mark_stale(rep, exp->runs[i].name, why);
        } else if ((differ = corruptions_stale(exp, dir))) {
            snprintf(why, sizeof why, "evaluated %s%s%s than %s gives now (the next sweep evaluates it again)",
                     differ & MV_CORR_DIFF_CORRUPTIONS ? "under other corruptions, severities or channel order" : "",
                     differ == (MV_CORR_DIFF_CORRUPTIONS | MV_CORR_DIFF_SOURCE) ? ", and " : "",
                     differ & MV_CORR_DIFF_SOURCE ? "on another source domain" : "", exp->path);
            mv_report_mark_stale(rep, exp->runs[i].name, why);
        }
    }
    mv_report_order_runs(rep, names, exp->nrows);
    if (exp->nseeds) {
        // the runs of row r are exp->runs[r * nseeds + k], k over the seeds
        const char **runs = mv_calloc((size_t)exp->nruns + 1, sizeof(char *));
        for (int i = 0; i < exp->nruns; i++) runs[i] = exp->runs[i].name;
        mv_report_set_seeds(rep, names, exp->nrows, exp->seeds, exp->nseeds, runs);
        free(runs);
    }
    free(names);
    // Every run of a row (each of its seeds) sits beside the row's paper numbers: by run name, so
    // that the per-run table shows them for `maskvim@1` as for `maskvim`; the first seed's run
    // has the row's own name, which also sets the row of means (mv_report_set_paper_cell).
    for (int i = 0; i < exp->nruns; i++) {
        const mv_exp_row *row = exp->runs[i].row;
        for (int c = 0; c < exp->ncols; c++)
            if (!isnan(row->paper[c])) mv_report_set_paper_cell(rep, exp->runs[i].name, exp->cols[c].domain, row->paper[c]);
    }
    // Other methods' published rows: printed after ours, never looked for among the runs.
    for (int p = 0; p < exp->npeers; p++) {
        int k = mv_report_add_peer(rep, exp->peers[p].name);
        for (int c = 0; c < exp->ncols; c++)
            if (!isnan(exp->peers[p].paper[c])) mv_report_set_peer_cell(rep, k, exp->cols[c].domain, exp->peers[p].paper[c]);
    }
}

// The four files replaced together or not at all: each is written whole beside its target
// (<path>.tmp.<pid>, what mv_atomic_file leaves of a writer that died), and only once all four
// are written are they renamed over the targets. A failure half-way (a full disk at report.html)
// otherwise left a new report.md and report.csv beside the previous report.html and report.json.
static int write_reports(const mv_report *rep, const char *md, const char *csv, const char *html, const char *json) {
    const char *path[4] = {md, csv, html, json};
    char tmp[4][4128];
    for (int i = 0; i < 4; i++) {
        MV_TRY(mv_check_output_file(path[i]));   // a target the rename would fail on: before any work
        mv_remove_stale_tmp(path[i]);
        snprintf(tmp[i], sizeof tmp[i], "%s.tmp.%ld", path[i], (long)getpid());
    }
    int rc = mv_report_write_md(rep, tmp[0]);
    if (rc == 0) rc = mv_report_write_csv(rep, tmp[1]);
    if (rc == 0) rc = mv_report_write_html(rep, tmp[2]);
    if (rc == 0) rc = mv_report_write_json(rep, tmp[3]);
    int renamed = 0;   // (a rename that fails after the first, on one folder, is not expected)
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (rename(tmp[i], path[i]) < 0) rc = mv_fail("%s: cannot rename %s over it: %s", path[i], tmp[i], strerror(errno));
        else renamed++;
    }
    if (rc < 0) {
        char msg[MV_ERRMSG_MAX];   // the writers name the temporary: name the report file
        snprintf(msg, sizeof msg, "%s", mv_last_error());
        for (int i = 0; i < 4; i++) unlink(tmp[i]);
        mv_fail("%s (%s)", msg, renamed ? "the report files are of two reports now: run it again" : "no report file was replaced");
        return -1;
    }
    char dir[4096];
    mv_dir_of(dir, sizeof dir, md);
    mv_sync_dir(dir);
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *input = NULL, *runs = NULL, *out = NULL, *paper = NULL, *title = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (a[0] != '-') {
            if (input) { fprintf(stderr, "maskvim report: one RUNS_DIR or experiment file expected, got '%s' and '%s'\n", input, a); return 2; }
            input = a;
            continue;
        }
        if (strcmp(a, "--out") && strcmp(a, "--paper") && strcmp(a, "--title") && strcmp(a, "--runs")) {
            cli_unknown_option("report", a, usage);
            return 2;
        }
        // A following option (`--out --title T`) is a forgotten value, not a directory name.
        if (!v || (!v[0] && strcmp(a, "--title")) || !strncmp(v, "--", 2)) {
            fprintf(stderr, "maskvim report: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--paper")) paper = v;
        else if (!strcmp(a, "--title")) title = v;
        else if (!strcmp(a, "--runs")) runs = v;
        i++;
    }
    if (!input || !out) {
        fprintf(stderr, "maskvim report: %s\n\n", !input ? "no RUNS_DIR or experiment file given" : "--out DIR is required");
        usage(stderr);
        return 2;
    }
    mv_experiment exp = {0};
    bool from_file = is_experiment_file(input);
    char runs_dir[MV_PATH_MAX];
    if (from_file) {
        if (experiment_load(&exp, input) < 0) {
            fprintf(stderr, "maskvim report: %s\n", mv_last_error());
            return 1;
        }
        if (exp.source_warning[0]) fprintf(stderr, "maskvim report: warning: %s\n", exp.source_warning);
        if (runs) snprintf(runs_dir, sizeof runs_dir, "%s", runs);
        else snprintf(runs_dir, sizeof runs_dir, "runs/%s", exp.name);
        if (!title && exp.title[0]) title = exp.title;
    } else {
        if (runs) { fprintf(stderr, "maskvim report: --runs goes with an experiment file (RUNS_DIR is '%s')\n", input); return 2; }
        snprintf(runs_dir, sizeof runs_dir, "%s", input);
    }
    mv_report rep;
    if (mv_report_load(&rep, runs_dir, NULL, title) < 0) {
        fprintf(stderr, "maskvim report: %s\n", mv_last_error());
        if (from_file) experiment_free(&exp);
        return 1;
    }
    if (from_file) apply_experiment(&rep, &exp, runs_dir);
    if (paper && mv_report_set_paper(&rep, paper) < 0) {
        fprintf(stderr, "maskvim report: %s\n", mv_last_error());
        mv_report_free(&rep);
        if (from_file) experiment_free(&exp);
        return 1;
    }
    if (from_file) experiment_free(&exp);
    if (mv_mkdir_p(out) < 0) {
        fprintf(stderr, "maskvim report: %s\n", mv_last_error());
        mv_report_free(&rep);
        return 1;
    }
    char md[4096], csv[4096], html[4096], json[4096];
    snprintf(md, sizeof md, "%s/report.md", out);
    snprintf(csv, sizeof csv, "%s/report.csv", out);
    snprintf(html, sizeof html, "%s/report.html", out);
    snprintf(json, sizeof json, "%s/report.json", out);
    if (write_reports(&rep, md, csv, html, json) < 0) {
        fprintf(stderr, "maskvim report: %s\n", mv_last_error());
        mv_report_free(&rep);
        return 1;
    }
    int ninc = 0;
    for (int r = 0; r < rep.nruns; r++) ninc += rep.runs[r].incomplete;
    printf("maskvim report: %s: %d runs (%d incomplete), %d domains", runs_dir, rep.nruns, ninc, rep.ncolumns);
    if (rep.sweep_key[0]) printf(", sweep over %s", rep.sweep_key);
    if (rep.npeers) printf(", %d published peer rows", rep.npeers);
    if (rep.nseeds) {
        int full = 0;
        for (int g = 0; g < rep.nrows; g++) full += rep.rows[g].nused == rep.nseeds;
        printf(", %d rows x %d seeds (%d rows with every seed)", rep.nrows, rep.nseeds, full);
    }
    printf("\n  %s\n  %s\n  %s\n  %s\n", md, csv, html, json);
    for (int r = 0; r < rep.nruns; r++)
        if (rep.runs[r].incomplete) printf("  incomplete: %s (%s)\n", rep.runs[r].name, rep.runs[r].note);
    mv_report_free(&rep);
    return 0;
}
