// `maskvim report`: turns a directory of run directories (one per table row, as written by
// `maskvim experiment run` or by hand with `maskvim train`) into report.md, report.csv and a
// self-contained report.html, with the paper's numbers beside ours when given.
#include "launch/commands.h"
#include "core/error.h"
#include "core/report.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim report RUNS_DIR --out DIR [--paper FILE.json] [--title T]\n\n"
        "Reads every run directory under RUNS_DIR (config.yaml, metrics.jsonl, status.json) and\n"
        "writes DIR/report.md, DIR/report.csv and DIR/report.html: mIoU per evaluated domain\n"
        "(the first is the source) and the mean over the targets, one row per run; the paper's\n"
        "number and our difference per cell from --paper {\"run\": {\"domain\"|\"mean\": number}};\n"
        "training curves, per-class IoU, and mIoU against the config key the runs sweep.\n"
        "Partial results are fine: missing cells are marked and incomplete runs listed.\n");
}

int cmd_report(int argc, char **argv) {
    const char *runs = NULL, *out = NULL, *paper = NULL, *title = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (a[0] != '-') {
            if (runs) { fprintf(stderr, "maskvim report: one RUNS_DIR expected, got '%s' and '%s'\n", runs, a); return 2; }
            runs = a;
            continue;
        }
        if (!v) { fprintf(stderr, "maskvim report: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--paper")) paper = v;
        else if (!strcmp(a, "--title")) title = v;
        else { fprintf(stderr, "maskvim report: unknown option '%s'\n\n", a); usage(stderr); return 2; }
        i++;
    }
    if (!runs || !out) { usage(stderr); return 2; }
    mv_report rep;
    if (mv_report_load(&rep, runs, paper, title) < 0) {
        fprintf(stderr, "maskvim report: %s\n", mv_last_error());
        return 1;
    }
    if (mkdir(out, 0777) < 0 && errno != EEXIST) {
        fprintf(stderr, "maskvim report: %s: %s\n", out, strerror(errno));
        mv_report_free(&rep);
        return 1;
    }
    char md[4096], csv[4096], html[4096];
    snprintf(md, sizeof md, "%s/report.md", out);
    snprintf(csv, sizeof csv, "%s/report.csv", out);
    snprintf(html, sizeof html, "%s/report.html", out);
    if (mv_report_write_md(&rep, md) < 0 || mv_report_write_csv(&rep, csv) < 0 || mv_report_write_html(&rep, html) < 0) {
        fprintf(stderr, "maskvim report: %s\n", mv_last_error());
        mv_report_free(&rep);
        return 1;
    }
    int ninc = 0;
    for (int r = 0; r < rep.nruns; r++) ninc += rep.runs[r].incomplete;
    printf("maskvim report: %d runs (%d incomplete), %d domains", rep.nruns, ninc, rep.ncolumns);
    if (rep.sweep_key[0]) printf(", sweep over %s", rep.sweep_key);
    printf("\n  %s\n  %s\n  %s\n", md, csv, html);
    for (int r = 0; r < rep.nruns; r++)
        if (rep.runs[r].incomplete) printf("  incomplete: %s (%s)\n", rep.runs[r].name, rep.runs[r].note);
    mv_report_free(&rep);
    return 0;
}
