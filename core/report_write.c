// The report's Markdown, CSV and JSON writers (report.md, report.csv, report.json) of the table
// core/report.c builds; the HTML page is core/report_html.c.
#include "core/report.h"
#include "core/json_write.h"
#include "core/error.h"
#include "core/fs.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------------------------------
// Markdown and CSV

// A cell holding one number or nothing: a per-seed value, a peer's published number.
static void md_value(FILE *f, double v) {
    if (isnan(v)) fputs(" — |", f); else fprintf(f, " %.2f |", v);
}

// The "mIoU against KEY" table, by the key's value: a line per run, or with seeds per row (the
// seeds' mean ± spread, as in the main table).
static void md_sweep(FILE *f, const mv_report *rep) {
    mv_report_sweep_point *p;
    int n = mv_report_sweep_points(rep, &p);
    fprintf(f, "\n## mIoU against %s\n\n| %s | %s | source | mean over targets |\n|---:|---|---:|---:|\n",
            rep->sweep_key, rep->sweep_key, rep->nseeds ? "row" : "run");
    for (int i = 0; i < n; i++) {
        fprintf(f, "| %s | %s |", p[i].key, p[i].name);
        if (rep->nseeds) {
            char a[96], b[96];
            mv_report_format_stat(a, sizeof a, p[i].source, p[i].source_sd, p[i].source_n, rep->nseeds);
            mv_report_format_stat(b, sizeof b, p[i].mean, p[i].mean_sd, p[i].mean_n, rep->nseeds);
            fprintf(f, " %s | %s |\n", a, b);
        } else {
            md_value(f, p[i].source);
            md_value(f, p[i].mean);
            fputc('\n', f);
        }
    }
    free(p);
}

// The column headers in display order (the mean where the experiment file puts `avg`), the
// source marked where the table says which column is the source.
static void md_head(FILE *f, const mv_report *rep, bool mark_source) {
    for (int i = 0; i <= rep->ncolumns; i++) {
        int c = mv_report_column_at(rep, i);
        bool source = mark_source && c == 0 && rep->ncolumns && !mv_report_mixed_sources(rep);
        fprintf(f, " %s%s |", mv_report_label(rep, c), source ? " (source)" : "");
    }
}

// Which domain is the source, for the text above a table: the first column, or with runs of
// several sources, each run's (named in its row).
static void source_sentence(char *buf, size_t n, const mv_report *rep) {
    if (mv_report_mixed_sources(rep))
        snprintf(buf, n, "The runs were trained on different sources, each named after its run as [source: X], "
                         "and each run's mean leaves out its own source");
    else
        snprintf(buf, n, "The first domain (%s) is the source", rep->ncolumns ? rep->columns[0] : "none");
}

// A column's name in report.csv and report.json (the mean: "mean").
static const char *col_name(const mv_report *rep, int c) { return c < rep->ncolumns ? rep->columns[c] : "mean"; }

static void md_cell(FILE *f, double ours, double paper) {
    if (isnan(ours) && isnan(paper)) { fputs(" — |", f); return; }
    if (isnan(paper)) { fprintf(f, " %.2f |", ours); return; }
    if (isnan(ours)) { fprintf(f, " — (paper %.2f) |", paper); return; }
    char d[32];
    fprintf(f, " %.2f (paper %.2f, %s) |", ours, paper, mv_report_format_diff(d, sizeof d, ours - paper));
}

static void md_stat_cell(FILE *f, const mv_report *rep, const mv_report_row *row, int c) {
    char buf[96];
    mv_report_format_stat(buf, sizeof buf, row->mean[c], row->sd[c], row->n[c], rep->nseeds);
    double p = row->paper[c];
    if (isnan(p)) { fprintf(f, " %s |", buf); return; }
    if (row->n[c] == 0) { fprintf(f, " — (paper %.2f) |", p); return; }
    char d[32];
    fprintf(f, " %s (paper %.2f, %s) |", buf, p, mv_report_format_diff(d, sizeof d, row->mean[c] - p));
}

// Runs trained at another global batch than the experiment file asks for (mv_report_run.batch_differs).
static int count_batch_differs(const mv_report *rep) {
    int n = 0;
    for (int r = 0; r < rep->nruns; r++) n += rep->runs[r].batch_differs;
    return n;
}

// Whether any run records the file's global_batch (status.json): only then do the CSVs get their
// global batch columns, so that a table without one keeps its columns.
static bool any_batch_asked(const mv_report *rep) {
    for (int r = 0; r < rep->nruns; r++)
        if (rep->runs[r].batch_asked) return true;
    return false;
}

// How many of a seed row's runs trained at another global batch than the file asks for.
static int row_batch_differs(const mv_report *rep, const mv_report_row *row) {
    int n = 0;
    for (int k = 0; k < rep->nseeds; k++) n += row->run[k] >= 0 && rep->runs[row->run[k]].batch_differs;
    return n;
}

// The seed list as "0, 1, 2".
static void seed_list(char *buf, size_t size, const mv_report *rep) {
    buf[0] = 0;
    for (int k = 0; k < rep->nseeds; k++) {
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, "%s%d", k ? ", " : "", rep->seeds[k]);
    }
}

// With seeds: the table of means and spreads, then every seed's value.
static void md_seed_tables(FILE *f, const mv_report *rep) {
    int w = rep->ncolumns + 1;
    char seeds[256], targets[1024], source[256];
    seed_list(seeds, sizeof seeds, rep);
    mv_report_targets_text(targets, sizeof targets, rep);
    source_sentence(source, sizeof source, rep);
    fprintf(f, "mIoU (%%) per evaluated domain. %s; **%s** averages the "
               "targets (%s). Each cell is the **mean ± sample standard deviation** (n − 1 in the "
               "denominator) of the final mIoU over the seeds whose run finished (seeds %s); **(k/%d)** "
               "marks a cell with only k of the %d seeds (no ± with one). Where the paper gives a number: "
               "mean (paper, mean − paper). Missing cells: —.\n\n",
            source, mv_report_label(rep, rep->ncolumns), targets, seeds, rep->nseeds, rep->nseeds);
    fputs("| row | seeds |", f);
    md_head(f, rep, true);
    fputs("\n|---|---:|", f);
    for (int c = 0; c < w; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int g = 0; g < rep->nrows; g++) {
        const mv_report_row *row = &rep->rows[g];
        fprintf(f, "| %s%s%s | %d/%d |", row->name, row->nused < rep->nseeds ? " *" : "",
                row_batch_differs(rep, row) ? " †" : "", row->nused, rep->nseeds);
        for (int i = 0; i < w; i++) md_stat_cell(f, rep, row, mv_report_column_at(rep, i));
        fputc('\n', f);
    }
    int ninc = 0;
    for (int g = 0; g < rep->nrows; g++) ninc += rep->rows[g].nused < rep->nseeds;
    if (ninc) {
        fprintf(f, "\n\\* rows with seeds missing (%d of %d):\n\n", ninc, rep->nrows);
        for (int g = 0; g < rep->nrows; g++)
            if (rep->rows[g].nused < rep->nseeds) fprintf(f, "- %s: %s\n", rep->rows[g].name, rep->rows[g].note);
    } else {
        fprintf(f, "\nAll %d rows finished with all %d seeds.\n", rep->nrows, rep->nseeds);
    }
    if (count_batch_differs(rep))
        fputs("\n† rows with a run trained at another global batch than the experiment file asks for (listed "
              "under Runs): not at the batch its table is meant for.\n", f);
    fputs("\n## Per seed\n\nThe final mIoU (%) of each run (—: not finished, or not counted).\n\n| row | seed | run |", f);
    md_head(f, rep, false);
    fputs("\n|---|---:|---|", f);
    for (int c = 0; c < w; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int g = 0; g < rep->nrows; g++) {
        const mv_report_row *row = &rep->rows[g];
        for (int k = 0; k < rep->nseeds; k++) {
            fprintf(f, "| %s | %d | %s |", row->name, rep->seeds[k], rep->seed_runs[g * rep->nseeds + k]);
            for (int i = 0; i < w; i++) md_value(f, row->value[k * w + mv_report_column_at(rep, i)]);
            fputc('\n', f);
        }
    }
}

// † after the incomplete runs: each run trained at another global batch than the file's
// `global_batch:` (its start records against status.json's): numbers not at the table's batch.
static void md_batches(FILE *f, const mv_report *rep) {
    int n = count_batch_differs(rep);
    if (!n) return;
    fprintf(f, "\n† trained at another global batch (ranks x data.batch_per_rank, from the run's start records "
               "in metrics.jsonl) than the experiment file asks for, so not at the batch its table is meant for "
               "(%d of %d):\n\n",
            n, rep->nruns);
    for (int r = 0; r < rep->nruns; r++) {
        if (!rep->runs[r].batch_differs) continue;
        char note[512];
        mv_report_batch_note(note, sizeof note, &rep->runs[r]);
        fprintf(f, "- %s: %s\n", rep->runs[r].name, note);
    }
}

// The published rows of other methods (an experiment file's `peers:`), in a table of their own
// after ours: they were not run here, so they have numbers but no difference.
static void md_peers(FILE *f, const mv_report *rep) {
    if (!rep->npeers) return;
    fprintf(f, "\n## Published results of other methods (not run here)\n\nThe numbers the paper prints for "
               "other methods beside MaskViM (the experiment file's `peers:`), as published: not trained or "
               "evaluated here, so with no difference. —: the paper gives no number.\n\n| method |");
    md_head(f, rep, true);
    fputs("\n|---|", f);
    for (int c = 0; c <= rep->ncolumns; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int p = 0; p < rep->npeers; p++) {
        fprintf(f, "| %s |", rep->peers[p].name);
        for (int i = 0; i <= rep->ncolumns; i++) md_value(f, mv_report_peer_value(rep, p, mv_report_column_at(rep, i)));
        fputc('\n', f);
    }
}

// A run's builds as "a, b" ("not recorded" without start records).
static void builds_text(char *out, size_t n, const mv_report_run *run) {
    snprintf(out, n, "%s", run->nbuilds ? "" : "not recorded");
    for (int i = 0; i < run->nbuilds; i++) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s", i ? ", " : "", run->builds[i]);
    }
}

// Which builds trained the runs (their start records): one line when one build trained them
// all; otherwise each run's builds, since a table mixing builds compares code as well as
// settings. Nothing when no run has a start record.
static void md_builds(FILE *f, const mv_report *rep) {
    int nknown = 0;
    bool one = true;
    for (int r = 0; r < rep->nruns; r++) {
        const mv_report_run *run = &rep->runs[r];
        nknown += run->nbuilds > 0;
        one = one && run->nbuilds == 1 && !strcmp(run->builds[0], rep->runs[0].builds[0]);
    }
    if (!nknown) return;
    fputs("\n## Builds\n\n", f);
    if (one) {
        fprintf(f, "Every run was trained by one build: commit %s.\n", rep->runs[0].builds[0]);
        return;
    }
    fputs("The runs were not all trained by one build (commits from `maskvim --version`, recorded at each start "
          "and resume):\n\n| run | commits |\n|---|---|\n", f);
    for (int r = 0; r < rep->nruns; r++) {
        char text[MV_REPORT_MAX_BUILDS * 66];
        builds_text(text, sizeof text, &rep->runs[r]);
        fprintf(f, "| %s | %s |\n", rep->runs[r].name, text);
    }
}

int mv_report_write_md(const mv_report *rep, const char *path) {
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    FILE *f = out.f;
    int w = rep->ncolumns + 1;
    char targets[1024], source[256];
    mv_report_targets_text(targets, sizeof targets, rep);
    source_sentence(source, sizeof source, rep);
    bool mixed = mv_report_mixed_sources(rep);
    fprintf(f, "# %s\n\n", rep->title);
    if (rep->nseeds) {
        md_seed_tables(f, rep);
        fputs("\n## Runs\n\n", f);
    }
    fprintf(f, "mIoU (%%) per evaluated domain. %s; **%s** averages the targets (%s). Where the paper gives a "
               "number: ours (paper, difference). Missing cells: —.\n\n", source,
            mv_report_label(rep, rep->ncolumns), targets);
    fputs("| run |", f);
    md_head(f, rep, true);
    fputs("\n|---|", f);
    for (int c = 0; c <= rep->ncolumns; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int r = 0; r < rep->nruns; r++) {
        fprintf(f, "| %s%s%s", rep->runs[r].name, rep->runs[r].incomplete ? " *" : "",
                rep->runs[r].batch_differs ? " †" : "");
        if (mixed) fprintf(f, " [source: %s]", rep->columns[mv_report_source_column(rep, r)]);
        fputs(" |", f);
        for (int i = 0; i < w; i++) {
            int c = mv_report_column_at(rep, i);
            md_cell(f, rep->ours[r * w + c], rep->paper[r * w + c]);
        }
        fputc('\n', f);
    }
    int ninc = 0;
    for (int r = 0; r < rep->nruns; r++) ninc += rep->runs[r].incomplete;
    if (ninc) {
        fprintf(f, "\n\\* incomplete runs (%d of %d):\n\n", ninc, rep->nruns);
        for (int r = 0; r < rep->nruns; r++)
            if (rep->runs[r].incomplete) fprintf(f, "- %s: %s\n", rep->runs[r].name, rep->runs[r].note);
    } else {
        fprintf(f, "\nAll %d runs finished.\n", rep->nruns);
    }
    md_batches(f, rep);
    md_peers(f, rep);
    if (rep->sweep_key[0]) md_sweep(f, rep);
    fputs("\n## Per-class IoU (%) of the last evaluation\n", f);
    for (int r = 0; r < rep->nruns; r++) {
        const mv_report_run *run = &rep->runs[r];
        fprintf(f, "\n### %s\n\n", run->name);
        const mv_report_domain *ref = NULL;
        for (int d = 0; d < run->ndomains; d++) if (run->domains[d].nclass) { ref = &run->domains[d]; break; }
        if (!ref) { fputs("No per-class results yet.\n", f); continue; }
        // A domain without per-class numbers (a corruption's mean from status.json) has no column:
        // its '—' would read as "class absent" (the HTML page leaves it out too).
        fputs("| class |", f);
        for (int d = 0; d < run->ndomains; d++)
            if (run->domains[d].nclass) fprintf(f, " %s |", run->domains[d].name);
        fputs("\n|---|", f);
        for (int d = 0; d < run->ndomains; d++)
            if (run->domains[d].nclass) fputs("---:|", f);
        fputc('\n', f);
        for (int k = 0; k < ref->nclass; k++) {
            fprintf(f, "| %s |", ref->class_names[k]);
            for (int d = 0; d < run->ndomains; d++) {
                const mv_report_domain *dm = &run->domains[d];
                if (!dm->nclass) continue;
                double v = NAN;
                for (int j = 0; j < dm->nclass; j++) if (!strcmp(dm->class_names[j], ref->class_names[k])) v = dm->iou[j];
                if (isnan(v)) fputs(" — |", f); else fprintf(f, " %.1f |", v);
            }
            fputc('\n', f);
        }
    }
    md_builds(f, rep);
    if (mv_atomic_commit(&out, false) < 0) return -1;
    return 0;
}

static void csv_str(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) { if (*s == '"') fputc('"', f); fputc(*s, f); }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) { if (!isnan(v)) fprintf(f, "%.4f", v); }

// The peers' lines after ours (only a table with peers has them, and the last column `peer`):
// the name, then `lead` (the fields before the columns, written out), per column `before`
// empty fields, the published number (paper_<domain>), `after` empty fields, then `tail` empty
// fields and peer = 1. Ours have nothing in them: a peer was not run here.
static void csv_peers(FILE *f, const mv_report *rep, const char *lead, int before, int after, int tail) {
    for (int p = 0; p < rep->npeers; p++) {
        csv_str(f, rep->peers[p].name);
        fputs(lead, f);
        for (int i = 0; i <= rep->ncolumns; i++) {
            for (int k = 0; k < before; k++) fputc(',', f);
            fputc(',', f);
            csv_num(f, mv_report_peer_value(rep, p, mv_report_column_at(rep, i)));
            for (int k = 0; k < after; k++) fputc(',', f);
        }
        for (int k = 0; k < tail; k++) fputc(',', f);
        fputs(",1\n", f);
    }
}

// With seeds, one line per row: per column the mean, sd, n, the paper's number and the
// difference of the mean, then every seed's value per column ("fog@seed1").
static void csv_seeds(FILE *f, const mv_report *rep) {
    int w = rep->ncolumns + 1;
    fputs("row,seeds,seeds_finished", f);
    for (int i = 0; i < w; i++) {
        const char *name = col_name(rep, mv_report_column_at(rep, i));
        fputc(',', f); csv_str(f, name);
        fputs(",sd_", f); csv_str(f, name);
        fputs(",n_", f); csv_str(f, name);
        fputs(",paper_", f); csv_str(f, name);
        fputs(",diff_", f); csv_str(f, name);
    }
    for (int k = 0; k < rep->nseeds; k++)
        for (int i = 0; i < w; i++) {
            fputc(',', f);
            csv_str(f, col_name(rep, mv_report_column_at(rep, i)));
            fprintf(f, "@seed%d", rep->seeds[k]);
        }
    bool gb = any_batch_asked(rep);
    if (gb) fputs(",global_batch_differs", f);   // runs of the row at another global batch than the file's
    fputs(rep->npeers ? ",peer\n" : "\n", f);
    for (int g = 0; g < rep->nrows; g++) {
        const mv_report_row *row = &rep->rows[g];
        csv_str(f, row->name);
        fprintf(f, ",%d,%d", rep->nseeds, row->nused);
        for (int i = 0; i < w; i++) {
            int c = mv_report_column_at(rep, i);
            double m = row->mean[c], p = row->paper[c];
            fputc(',', f); csv_num(f, m);
            fputc(',', f); csv_num(f, row->sd[c]);
            fprintf(f, ",%d", row->n[c]);
            fputc(',', f); csv_num(f, p);
            fputc(',', f); csv_num(f, isnan(m) || isnan(p) ? NAN : m - p);
        }
        for (int k = 0; k < rep->nseeds; k++)
            for (int i = 0; i < w; i++) { fputc(',', f); csv_num(f, row->value[k * w + mv_report_column_at(rep, i)]); }
        if (gb) fprintf(f, ",%d", row_batch_differs(rep, row));
        fputs(rep->npeers ? ",0\n" : "\n", f);
    }
    // no seeds, no counts: per column only paper_<domain>; then no seed values, no batch
    csv_peers(f, rep, ",,", 3, 1, rep->nseeds * w + (gb ? 1 : 0));
}

int mv_report_write_csv(const mv_report *rep, const char *path) {
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    FILE *f = out.f;
    int w = rep->ncolumns + 1;
    if (rep->nseeds) {
        csv_seeds(f, rep);
        if (mv_atomic_commit(&out, false) < 0) return -1;
        return 0;
    }
    // the Markdown table, one line per run: per column ours, the paper's and the difference;
    // missing numbers are empty fields
    bool mixed = mv_report_mixed_sources(rep);
    fputs(mixed ? "run,state,incomplete,source" : "run,state,incomplete", f);
    if (rep->sweep_key[0]) { fputc(',', f); csv_str(f, rep->sweep_key); }
    for (int i = 0; i < w; i++) {
        const char *name = col_name(rep, mv_report_column_at(rep, i));
        fputc(',', f); csv_str(f, name);
        fputc(',', f); fputs("paper_", f); csv_str(f, name);
        fputc(',', f); fputs("diff_", f); csv_str(f, name);
    }
    // with a global_batch asked: the one its start records give (distinct values joined by ';'), the file's
    bool gb = any_batch_asked(rep);
    if (gb) fputs(",global_batch,global_batch_asked,global_batch_differs", f);
    // with peers, a last column `peer` (1 on their lines) tells them from our runs; their state reads
    // "published" too
    fputs(rep->npeers ? ",peer\n" : "\n", f);
    for (int r = 0; r < rep->nruns; r++) {
        csv_str(f, rep->runs[r].name);
        fputc(',', f);
        csv_str(f, rep->runs[r].state);
        fprintf(f, ",%d", rep->runs[r].incomplete ? 1 : 0);
        if (mixed) { fputc(',', f); csv_str(f, rep->columns[mv_report_source_column(rep, r)]); }
        if (rep->sweep_key[0]) {
            const char *key = mv_report_run_config(&rep->runs[r], rep->sweep_key);
            fputc(',', f);
            csv_str(f, key ? key : "");
        }
        for (int i = 0; i < w; i++) {
            int c = mv_report_column_at(rep, i);
            double o = rep->ours[r * w + c], p = rep->paper[r * w + c];
            fputc(',', f); csv_num(f, o);
            fputc(',', f); csv_num(f, p);
            fputc(',', f); csv_num(f, isnan(o) || isnan(p) ? NAN : o - p);
        }
        const mv_report_run *run = &rep->runs[r];
        if (gb) {
            fputc(',', f);
            for (int i = 0; i < run->nbatches; i++)
                fprintf(f, "%s%d", i ? ";" : "", run->batches[i].ranks * run->batches[i].batch_per_rank);
            fputc(',', f);
            if (run->batch_asked) fprintf(f, "%d", run->batch_asked);
            fprintf(f, ",%d", run->batch_differs ? 1 : 0);
        }
        fputs(rep->npeers ? ",0\n" : "\n", f);
    }
    // state `published`, incomplete empty (not a run: neither), no source, no key; per column only
    // paper_<domain>
    char lead[16];
    snprintf(lead, sizeof lead, ",published,%s%s", mixed ? "," : "", rep->sweep_key[0] ? "," : "");
    csv_peers(f, rep, lead, 1, 1, gb ? 3 : 0);
    if (mv_atomic_commit(&out, false) < 0) return -1;
    return 0;
}

// ------------------------------------------------------------------------------------------
// JSON

static void json_num_out(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.4f", v); else fputs("null", f);
}

// "peers": the published rows of other methods, keyed as the runs' cells but with the paper's
// number only ({"paper": v}); never run, so no "ours", state or builds.
static void json_peers(FILE *f, const mv_report *rep) {
    for (int p = 0; p < rep->npeers; p++) {
        fputs(p ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        json_write_string(f, rep->peers[p].name);
        fputs(", \"cells\": {", f);
        for (int i = 0; i <= rep->ncolumns; i++) {
            int c = mv_report_column_at(rep, i);
            if (i) fputs(", ", f);
            json_write_string(f, col_name(rep, c));
            fputs(": {\"paper\": ", f);
            json_num_out(f, mv_report_peer_value(rep, p, c));
            fputc('}', f);
        }
        fputs("}}", f);
    }
    if (rep->npeers) fputs("\n ", f);
}

int mv_report_write_json(const mv_report *rep, const char *path) {
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    FILE *f = out.f;
    int w = rep->ncolumns + 1;
    fputs("{\"title\": ", f);
    json_write_string(f, rep->title);
    fputs(",\n \"columns\": [", f);
    for (int i = 0; i < w; i++) {
        int c = mv_report_column_at(rep, i);
        fputs(i ? ", {\"domain\": " : "{\"domain\": ", f);
        json_write_string(f, col_name(rep, c));
        fputs(", \"label\": ", f);
        json_write_string(f, mv_report_label(rep, c));
        // (with runs of several sources, each run's "source" says which domain is its source)
        fprintf(f, ", \"role\": \"%s\"}", c == rep->ncolumns                  ? "mean"
                                         : mv_report_mixed_sources(rep)        ? "domain"
                                         : c == 0                              ? "source"
                                         : mv_report_is_target(rep, c)         ? "target" : "other");
    }
    fputs("]", f);
    if (rep->nseeds) {
        fputs(",\n \"seeds\": [", f);
        for (int k = 0; k < rep->nseeds; k++) fprintf(f, "%s%d", k ? ", " : "", rep->seeds[k]);
        fputs("], \"spread\": \"sample standard deviation (n - 1) over the seeds\",\n \"rows\": [", f);
        for (int g = 0; g < rep->nrows; g++) {
            const mv_report_row *row = &rep->rows[g];
            fputs(g ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
            json_write_string(f, row->name);
            fprintf(f, ", \"seeds_finished\": %d, \"runs\": [", row->nused);
            for (int k = 0; k < rep->nseeds; k++) {
                if (k) fputs(", ", f);
                json_write_string(f, rep->seed_runs[g * rep->nseeds + k]);
            }
            fputs("], \"cells\": {", f);
            for (int i = 0; i < w; i++) {
                int c = mv_report_column_at(rep, i);
                if (i) fputs(", ", f);
                json_write_string(f, col_name(rep, c));
                fputs(": {\"mean\": ", f); json_num_out(f, row->mean[c]);
                fputs(", \"sd\": ", f); json_num_out(f, row->sd[c]);
                fprintf(f, ", \"n\": %d, \"seeds\": [", row->n[c]);
                for (int k = 0; k < rep->nseeds; k++) { if (k) fputs(", ", f); json_num_out(f, row->value[k * w + c]); }
                fputs("], \"paper\": ", f); json_num_out(f, row->paper[c]);
                fputc('}', f);
            }
            fprintf(f, "}, \"global_batch_differs\": %d}", row_batch_differs(rep, row));
        }
        fputs("\n ]", f);
    }
    fputs(",\n \"runs\": [", f);
    for (int r = 0; r < rep->nruns; r++) {
        const mv_report_run *run = &rep->runs[r];
        fputs(r ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        json_write_string(f, run->name);
        if (mv_report_mixed_sources(rep)) {
            fputs(", \"source\": ", f);
            json_write_string(f, rep->columns[mv_report_source_column(rep, r)]);
        }
        fputs(", \"state\": ", f);
        json_write_string(f, run->state);
        fprintf(f, ", \"incomplete\": %s, \"builds\": [", run->incomplete ? "true" : "false");
        for (int b = 0; b < run->nbuilds; b++) {
            if (b) fputs(", ", f);
            json_write_string(f, run->builds[b]);
        }
        fputs("], \"global_batch\": {\"trained\": [", f);
        for (int i = 0; i < run->nbatches; i++)
            fprintf(f, "%s{\"ranks\": %d, \"batch_per_rank\": %d}", i ? ", " : "", run->batches[i].ranks,
                    run->batches[i].batch_per_rank);
        fputs("], \"asked\": ", f);
        if (run->batch_asked) fprintf(f, "%d", run->batch_asked); else fputs("null", f);
        fprintf(f, ", \"differs\": %s}", run->batch_differs ? "true" : "false");
        fputs(", \"cells\": {", f);
        for (int i = 0; i < w; i++) {
            int c = mv_report_column_at(rep, i);
            if (i) fputs(", ", f);
            json_write_string(f, col_name(rep, c));
            fputs(": {\"ours\": ", f); json_num_out(f, rep->ours[r * w + c]);
            fputs(", \"paper\": ", f); json_num_out(f, rep->paper[r * w + c]);
            fputc('}', f);
        }
        fputs("}}", f);
    }
    fputs("\n ],\n \"peers\": [", f);
    json_peers(f, rep);
    fputs("]}\n", f);
    if (mv_atomic_commit(&out, false) < 0) return -1;
    return 0;
}
