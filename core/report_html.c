// The HTML page of the report: one self-contained file (inline CSS and inline SVG, no scripts
// and no external references) with the results table, a per-domain mIoU bar chart, the
// mIoU-against-key curve when the runs form a one-key grid (the paper's Figure 5a), and per
// run its training curves (loss terms, encoder keep ratio per stage) and per-class IoU.
#include "core/report.h"
#include "core/error.h"
#include "core/fs.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *CSS =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}"
    "table{border-collapse:collapse;margin:8px 0;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}"
    "td:first-child,th:first-child{text-align:left}"
    ".paper{color:#666;font-size:11px}.pos{color:#1a7f37}.neg{color:#c62828}.miss{color:#aaa}"
    ".inc{background:#fff6e0}.note{color:#8a5a00;font-size:12px}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}svg{border:1px solid #eee}"
    ".wide{overflow-x:auto;max-width:100%}table.dense{font-size:11px}table.dense th,table.dense td{padding:2px 4px}";

// narrow: the difference goes on a line of its own (tables with many columns).
static void cell(FILE *f, double ours, double paper, bool narrow) {
    fputs("<td>", f);
    if (isnan(ours)) fputs("<span class=\"miss\">—</span>", f);
    else fprintf(f, "%.2f", ours);
    if (!isnan(paper)) {
        fprintf(f, "<br><span class=\"paper\">paper&nbsp;%.2f</span>", paper);
        char d[32];
        // the colour follows the sign shown: "+0.00" for a difference that rounds to zero
        if (!isnan(ours)) fprintf(f, "%s<span class=\"%s\">%s</span>", narrow ? "<br>" : " ",
                                  mv_report_format_diff(d, sizeof d, ours - paper)[0] == '+' ? "pos" : "neg", d);
    }
    fputs("</td>", f);
}

// A cell holding one number or nothing: a per-seed value, a peer's published number.
static void value_cell(FILE *f, double v) {
    if (isnan(v)) fputs("<td class=\"miss\">—</td>", f); else fprintf(f, "<td>%.2f</td>", v);
}

// The column headers in display order (the mean where the experiment file puts `avg`); `marks`
// adds "(source)" and "(targets)" to the source and the mean.
static void head_cells(FILE *f, const mv_report *rep, bool marks) {
    for (int i = 0; i <= rep->ncolumns; i++) {
        int c = mv_report_column_at(rep, i);
        fputs("<th>", f);
        mv_html_escape(f, mv_report_label(rep, c));
        bool source = c == 0 && rep->ncolumns && !mv_report_mixed_sources(rep);
        if (marks) fputs(source ? " (source)" : c == rep->ncolumns ? " (targets)" : "", f);
        fputs("</th>", f);
    }
}

// With seeds: per row the mean ± sample std over the finished seeds, then every seed's value.
static void seed_tables(FILE *f, const mv_report *rep) {
    int w = rep->ncolumns + 1;
    bool dense = rep->ncolumns > 8;
    fprintf(f, "<p>Each cell is the <b>mean ± sample standard deviation</b> (n − 1 in the denominator) of the "
               "final mIoU over the seeds whose run finished (seeds");
    for (int k = 0; k < rep->nseeds; k++) fprintf(f, "%s %d", k ? "," : "", rep->seeds[k]);
    fprintf(f, "); (k/%d) marks a cell with only k of the %d seeds. The difference to the paper is that of "
               "the mean.</p>\n", rep->nseeds, rep->nseeds);
    fprintf(f, "<div class=\"wide\"><table%s><tr><th>row</th><th>seeds</th>", dense ? " class=\"dense\"" : "");
    head_cells(f, rep, true);
    fputs("</tr>\n", f);
    for (int g = 0; g < rep->nrows; g++) {
        const mv_report_row *row = &rep->rows[g];
        fprintf(f, "<tr%s><td>", row->nused < rep->nseeds ? " class=\"inc\"" : "");
        mv_html_escape(f, row->name);
        bool other_batch = false;   // a run of the row at another global batch than the file's (listed under Runs)
        for (int k = 0; k < rep->nseeds; k++) other_batch |= row->run[k] >= 0 && rep->runs[row->run[k]].batch_differs;
        if (other_batch) fputs(" <span class=\"note\" title=\"a run trained at another global batch\">†</span>", f);
        fprintf(f, "</td><td>%d/%d</td>", row->nused, rep->nseeds);
        for (int i = 0; i < w; i++) {
            int c = mv_report_column_at(rep, i);
            char buf[96];
            mv_report_format_stat(buf, sizeof buf, row->mean[c], row->sd[c], row->n[c], rep->nseeds);
            fputs("<td>", f);
            if (row->n[c] == 0) fputs("<span class=\"miss\">—</span>", f); else mv_html_escape(f, buf);
            double p = row->paper[c];
            if (!isnan(p)) {
                fprintf(f, "<br><span class=\"paper\">paper&nbsp;%.2f</span>", p);
                char d[32];
                if (row->n[c]) fprintf(f, "%s<span class=\"%s\">%s</span>", dense ? "<br>" : " ",
                                       mv_report_format_diff(d, sizeof d, row->mean[c] - p)[0] == '+' ? "pos" : "neg", d);
            }
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
    for (int g = 0; g < rep->nrows; g++) {
        if (rep->rows[g].nused == rep->nseeds) continue;
        fputs("<p class=\"note\">", f);
        mv_html_escape(f, rep->rows[g].name);
        fputs(": ", f);
        mv_html_escape(f, rep->rows[g].note);
        fputs("</p>\n", f);
    }
    fprintf(f, "<details><summary>per seed</summary><div class=\"wide\"><table%s><tr><th>row</th><th>seed</th><th>run</th>",
            dense ? " class=\"dense\"" : "");
    head_cells(f, rep, false);
    fputs("</tr>\n", f);
    for (int g = 0; g < rep->nrows; g++)
        for (int k = 0; k < rep->nseeds; k++) {
            fputs("<tr><td>", f);
            mv_html_escape(f, rep->rows[g].name);
            fprintf(f, "</td><td>%d</td><td>", rep->seeds[k]);
            mv_html_escape(f, rep->seed_runs[g * rep->nseeds + k]);
            fputs("</td>", f);
            for (int i = 0; i < w; i++) value_cell(f, rep->rows[g].value[k * w + mv_report_column_at(rep, i)]);
            fputs("</tr>\n", f);
        }
    fputs("</table></div></details>\n<h2>Runs</h2>\n", f);
}

// † runs trained at another global batch than the experiment file asks for (its start records
// against status.json's global_batch): not at the batch its table is meant for.
static void batch_notes(FILE *f, const mv_report *rep) {
    int n = 0;
    for (int r = 0; r < rep->nruns; r++) n += rep->runs[r].batch_differs;
    if (!n) return;
    fprintf(f, "<p class=\"note\">† Trained at another global batch (ranks × data.batch_per_rank, from the run's "
               "start records) than the experiment file asks for, so not at the batch its table is meant for "
               "(%d of %d):</p>"
               "<ul class=\"note\">\n", n, rep->nruns);
    for (int r = 0; r < rep->nruns; r++) {
        if (!rep->runs[r].batch_differs) continue;
        char note[512];
        mv_report_batch_note(note, sizeof note, &rep->runs[r]);
        fputs("<li>", f);
        mv_html_escape(f, rep->runs[r].name);
        fputs(": ", f);
        mv_html_escape(f, note);
        fputs("</li>\n", f);
    }
    fputs("</ul>\n", f);
}

// The published rows of other methods (an experiment file's `peers:`), in a table of their own
// after ours, headed as such: not run here, so numbers without a difference.
static void peers_table(FILE *f, const mv_report *rep) {
    if (!rep->npeers) return;
    fputs("<h2>Published results of other methods (not run here)</h2>\n<p>The numbers the paper prints for "
          "other methods beside MaskViM (the experiment file's <code>peers:</code>), as published: not trained "
          "or evaluated here, so with no difference. —: the paper gives no number.</p>\n", f);
    fprintf(f, "<div class=\"wide\"><table class=\"peers%s\"><tr><th>method</th>", rep->ncolumns > 8 ? " dense" : "");
    head_cells(f, rep, true);
    fputs("</tr>\n", f);
    for (int p = 0; p < rep->npeers; p++) {
        fputs("<tr><td>", f);
        mv_html_escape(f, rep->peers[p].name);
        fputs("</td>", f);
        for (int i = 0; i <= rep->ncolumns; i++) value_cell(f, mv_report_peer_value(rep, p, mv_report_column_at(rep, i)));
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
}

static void results_table(FILE *f, const mv_report *rep) {
    int w = rep->ncolumns + 1;
    if (rep->nseeds) seed_tables(f, rep);
    // Many columns (Table 2's 16 corruptions): smaller type, and a scroll bar if still too wide.
    fprintf(f, "<div class=\"wide\"><table%s><tr><th>run</th><th>state</th>", rep->ncolumns > 8 ? " class=\"dense\"" : "");
    head_cells(f, rep, true);
    fputs("</tr>\n", f);
    for (int r = 0; r < rep->nruns; r++) {
        const mv_report_run *run = &rep->runs[r];
        fprintf(f, "<tr%s><td>", run->incomplete ? " class=\"inc\"" : "");
        mv_html_escape(f, run->name);
        if (mv_report_mixed_sources(rep)) {
            fputs(" <span class=\"note\">[source: ", f);
            mv_html_escape(f, rep->columns[mv_report_source_column(rep, r)]);
            fputs("]</span>", f);
        }
        if (run->batch_differs) fputs(" <span class=\"note\" title=\"trained at another global batch\">†</span>", f);
        fputs("</td><td>", f);
        mv_html_escape(f, run->state);
        fputs("</td>", f);
        for (int i = 0; i < w; i++) {
            int c = mv_report_column_at(rep, i);
            cell(f, rep->ours[r * w + c], rep->paper[r * w + c], rep->ncolumns > 8);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
    int ninc = 0;
    for (int r = 0; r < rep->nruns; r++) ninc += rep->runs[r].incomplete;
    if (!ninc) {
        fprintf(f, "<p>All %d runs finished.</p>\n", rep->nruns);
    } else {
        fprintf(f, "<p class=\"note\">Incomplete runs (%d of %d, highlighted):</p><ul class=\"note\">\n", ninc, rep->nruns);
        for (int r = 0; r < rep->nruns; r++) {
            if (!rep->runs[r].incomplete) continue;
            fputs("<li>", f);
            mv_html_escape(f, rep->runs[r].name);
            fputs(": ", f);
            mv_html_escape(f, rep->runs[r].note);
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    batch_notes(f, rep);
    peers_table(f, rep);
}

// With seeds: the rows' means with ± one standard deviation.
static void seed_bars(FILE *f, const mv_report *rep) {
    int w = rep->ncolumns + 1, nb = rep->nrows;
    const char **groups = mv_calloc((size_t)w, sizeof(char *));
    const char **bars = mv_calloc((size_t)nb, sizeof(char *));
    double *vals = mv_calloc((size_t)(w * nb), sizeof(double)), *errs = mv_calloc((size_t)(w * nb), sizeof(double));
    for (int i = 0; i < w; i++) groups[i] = mv_report_label(rep, mv_report_column_at(rep, i));
    for (int g = 0; g < nb; g++) {
        bars[g] = rep->rows[g].name;
        for (int i = 0; i < w; i++) {
            int c = mv_report_column_at(rep, i);
            vals[i * nb + g] = rep->rows[g].mean[c];
            errs[i * nb + g] = rep->rows[g].sd[c];
        }
    }
    int width = 140 + 70 * w * (nb > 2 ? 2 : 1);
    if (width < 560) width = 560;
    if (width > 1150) width = 1150;
    mv_svg_bars(f, "mIoU per domain (mean ± sd over the seeds)", "mIoU (%)", groups, w, bars, nb, vals, errs, width, 280);
    free(groups); free(bars); free(vals); free(errs);
}

static void domain_bars(FILE *f, const mv_report *rep) {
    if (rep->ncolumns == 0 || rep->nruns == 0) return;
    if (rep->nseeds) { seed_bars(f, rep); return; }
    int w = rep->ncolumns + 1;
    const char **groups = mv_calloc((size_t)w, sizeof(char *));
    const char **bars = mv_calloc((size_t)rep->nruns, sizeof(char *));
    double *vals = mv_calloc((size_t)w * (size_t)rep->nruns, sizeof(double));
    for (int i = 0; i < w; i++) groups[i] = mv_report_label(rep, mv_report_column_at(rep, i));
    for (int r = 0; r < rep->nruns; r++) {
        bars[r] = rep->runs[r].name;
        for (int i = 0; i < w; i++) vals[i * rep->nruns + r] = rep->ours[r * w + mv_report_column_at(rep, i)];
    }
    int width = 140 + 70 * w * (rep->nruns > 2 ? 2 : 1);
    if (width < 560) width = 560;
    if (width > 1150) width = 1150;
    mv_svg_bars(f, "mIoU per domain", "mIoU (%)", groups, w, bars, rep->nruns, vals, NULL, width, 280);
    free(groups); free(bars); free(vals);
}

static void sweep_curve(FILE *f, const mv_report *rep) {
    if (!rep->sweep_key[0]) return;
    mv_report_sweep_point *p;
    int n = mv_report_sweep_points(rep, &p);   // with seeds: a point per row, at the seeds' mean
    double *x = mv_calloc((size_t)(n ? n : 1), sizeof(double)), *ys = mv_calloc((size_t)(n ? n : 1), sizeof(double)),
           *yt = mv_calloc((size_t)(n ? n : 1), sizeof(double));
    for (int i = 0; i < n; i++) {
        x[i] = strtod(p[i].key, NULL);
        ys[i] = p[i].source;
        yt[i] = p[i].mean;
    }
    char source[160], title[200];
    if (mv_report_mixed_sources(rep)) snprintf(source, sizeof source, "source (each run's)");
    else snprintf(source, sizeof source, "source (%s)", rep->ncolumns ? rep->columns[0] : "?");
    snprintf(title, sizeof title, "mIoU against %s", rep->sweep_key);
    mv_svg_series s[2] = {{source, x, ys, n}, {"mean over targets", x, yt, n}};
    fprintf(f, "<h2>");
    mv_html_escape(f, title);
    fprintf(f, "</h2>\n");
    mv_svg_lines(f, title, rep->sweep_key, "mIoU (%)", s, 2, 560, 300);
    free(x); free(ys); free(yt); free(p);
}

static void run_curves(FILE *f, const mv_report_run *run) {
    int n = run->npoints;
    if (n == 0) { fputs("<p class=\"miss\">No training records yet.</p>\n", f); return; }
    double *x = mv_calloc((size_t)n, sizeof(double));
    double *y = mv_calloc((size_t)n * (5 + MV_REPORT_MAX_STAGES), sizeof(double));
    int nst = 0;
    for (int i = 0; i < n; i++) {
        const mv_report_point *p = &run->points[i];
        x[i] = p->iter;
        double v[5] = {p->loss_total, p->loss_ce, p->loss_aux, p->loss_ratio, p->loss_position};
        for (int k = 0; k < 5; k++) y[k * n + i] = v[k];
        if (p->nkeep_enc > nst) nst = p->nkeep_enc;
    }
    for (int s = 0; s < MV_REPORT_MAX_STAGES; s++)
        for (int i = 0; i < n; i++) y[(5 + s) * n + i] = s < run->points[i].nkeep_enc ? run->points[i].keep_enc[s] : NAN;
    static const char *LOSS[5] = {"total", "ce", "aux", "ratio", "position"};
    mv_svg_series ls[5];
    for (int k = 0; k < 5; k++) ls[k] = (mv_svg_series){LOSS[k], x, y + k * n, n};
    fputs("<div class=\"charts\">\n", f);
    mv_svg_lines(f, "training losses", "iteration", "loss", ls, 5, 560, 280);
    if (nst > 0) {
        char names[MV_REPORT_MAX_STAGES][24];
        mv_svg_series ks[MV_REPORT_MAX_STAGES];
        for (int s = 0; s < nst; s++) {
            snprintf(names[s], sizeof names[s], "stage %d", s + 1);
            ks[s] = (mv_svg_series){names[s], x, y + (5 + s) * n, n};
        }
        mv_svg_lines(f, "encoder mask keep ratio", "iteration", "kept tokens", ks, nst, 560, 280);
    }
    fputs("</div>\n", f);
    free(x); free(y);
}

static void class_table(FILE *f, const mv_report_run *run) {
    const mv_report_domain *ref = NULL;
    for (int d = 0; d < run->ndomains; d++) if (run->domains[d].nclass) { ref = &run->domains[d]; break; }
    if (!ref) { fputs("<p class=\"miss\">No per-class results yet.</p>\n", f); return; }
    // Only domains with per-class results (a status.json "final" entry, such as a corruption's
    // mean, has none).
    fputs("<details open><summary>per-class IoU (%) of the last evaluation</summary><div class=\"wide\"><table><tr><th>class</th>", f);
    for (int d = 0; d < run->ndomains; d++) {
        if (!run->domains[d].nclass) continue;
        fputs("<th>", f);
        mv_html_escape(f, run->domains[d].name);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int k = 0; k < ref->nclass; k++) {
        fputs("<tr><td>", f);
        mv_html_escape(f, ref->class_names[k]);
        fputs("</td>", f);
        for (int d = 0; d < run->ndomains; d++) {
            const mv_report_domain *dm = &run->domains[d];
            if (!dm->nclass) continue;
            double v = NAN;
            for (int j = 0; j < dm->nclass; j++) if (!strcmp(dm->class_names[j], ref->class_names[k])) v = dm->iou[j];
            if (isnan(v)) fputs("<td class=\"miss\">—</td>", f); else fprintf(f, "<td>%.1f</td>", v);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div></details>\n", f);
}

int mv_report_write_html(const mv_report *rep, const char *path) {
    mv_atomic_file out;
    if (mv_atomic_open(&out, path) < 0) return -1;
    FILE *f = out.f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    mv_html_escape(f, rep->title);
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>", CSS);
    mv_html_escape(f, rep->title);
    char targets[1024];
    mv_report_targets_text(targets, sizeof targets, rep);
    fputs(mv_report_mixed_sources(rep)
              ? "</h1>\n<p>mIoU (%) of the last evaluation per domain. The runs were trained on different sources, "
                "each named after its run; each run's mean averages its target domains ("
              : "</h1>\n<p>mIoU (%) of the last evaluation per domain. The first domain is the source; the "
                "mean averages the target domains (", f);
    mv_html_escape(f, targets);
    fputs(") and is left out while a target is missing. Grey figures are the paper's, with our "
          "difference.</p>\n", f);
    results_table(f, rep);
    domain_bars(f, rep);
    sweep_curve(f, rep);
    for (int r = 0; r < rep->nruns; r++) {
        const mv_report_run *run = &rep->runs[r];
        fputs("<h2>", f);
        mv_html_escape(f, run->name);
        fputs("</h2>\n<p>", f);
        mv_html_escape(f, run->state);
        if (rep->sweep_key[0]) {
            fputs(" · ", f);
            mv_html_escape(f, rep->sweep_key);
            fputs(" = ", f);
            const char *v = mv_report_run_config(run, rep->sweep_key);
            mv_html_escape(f, v ? v : "?");
        }
        if (run->npoints) fprintf(f, " · last training record at iteration %d", run->points[run->npoints - 1].iter);
        if (run->note[0]) { fputs(" · <span class=\"note\">", f); mv_html_escape(f, run->note); fputs("</span>", f); }
        fputs("</p>\n", f);
        run_curves(f, run);
        class_table(f, run);
    }
    fputs("</body></html>\n", f);
    if (mv_atomic_commit(&out, false) < 0) return -1;
    return 0;
}
