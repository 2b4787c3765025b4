// The report's table: the run directories of a folder loaded into per-domain mIoU per run
// (ours and the paper's), laid out as an experiment file asks (columns, run order, runs not
// run, stale runs), and with seeds grouped into one row per experiment row (mean and spread).
// Reading one run is core/report_run.c; writing the table, core/report_write.c and
// core/report_html.c.
#include "core/report.h"
#include "core/report_internal.h"
#include "core/fs.h"
#include "core/error.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool file_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

// ------------------------------------------------------------------------------------------
// the table

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_number(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    double d = strtod(s, &end);
    if (*end) return false;
    *out = d;
    return true;
}

// The one numeric config key (outside run.*) whose value differs over the runs: the grid axis.
static void find_sweep_key(mv_report *rep) {
    rep->sweep_key[0] = 0;
    if (rep->nruns < 2) return;
    const mv_report_run *r0 = &rep->runs[0];
    for (int r = rep->nruns - 1; r >= 0; r--) if (rep->runs[r].ncfg) r0 = &rep->runs[r];
    int found = 0;
    for (int k = 0; k < r0->ncfg; k++) {
        const char *key = r0->cfg_keys[k];
        if (!strncmp(key, "run.", 4)) continue;
        bool differs = false, numeric = true;
        double v;
        for (int r = 0; r < rep->nruns; r++) {
            if (rep->runs[r].ncfg == 0) continue; // no config.yaml (yet): says nothing about the grid
            const char *val = mv_report_run_config(&rep->runs[r], key);
            if (!val) { numeric = false; differs = true; break; }   // a list entry the other lacks
            if (!is_number(val, &v)) numeric = false;
            if (strcmp(val, r0->cfg_vals[k])) differs = true;
        }
        if (!differs) continue;
        found++;
        if (numeric && found == 1) copy_name(rep->sweep_key, key, sizeof rep->sweep_key);
    }
    // Keys the first run lacks (a longer data.train list): another difference.
    for (int r = 0; r < rep->nruns; r++)
        for (int k = 0; k < rep->runs[r].ncfg; k++)
            if (strncmp(rep->runs[r].cfg_keys[k], "run.", 4) && !mv_report_run_config(r0, rep->runs[r].cfg_keys[k]))
                found++;
    if (found != 1) rep->sweep_key[0] = 0; // several keys vary: not a one-key grid
}

static void add_column(mv_report *rep, int *cap, const char *name) {
    for (int c = 0; c < rep->ncolumns; c++) if (!strcmp(rep->columns[c], name)) return;
    if (rep->ncolumns == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        rep->columns = mv_realloc(rep->columns, (size_t)*cap * sizeof *rep->columns);
        if (rep->labels) {
            rep->labels = mv_realloc(rep->labels, (size_t)*cap * sizeof *rep->labels);
        }
    }
    copy_name(rep->columns[rep->ncolumns], name, MV_REPORT_NAME);
    if (rep->labels) copy_name(rep->labels[rep->ncolumns], name, MV_REPORT_NAME);
    rep->ncolumns++;
}

// ------------------------------------------------------------------------------------------
// seeds

static void free_row_stats(mv_report_row *row) {
    free(row->run); free(row->used); free(row->value); free(row->mean); free(row->sd); free(row->n); free(row->paper);
}

static void free_rows(mv_report *rep) {
    for (int g = 0; g < rep->nrows; g++) free_row_stats(&rep->rows[g]);
    free(rep->rows);
    rep->rows = NULL;
}

static void note_add(char *note, size_t size, const char *fmt, const char *a, const char *b) {
    size_t l = strlen(note);
    snprintf(note + l, size - l, fmt, a, b);
}

// rep->rows from the runs' table (ours) for the current columns and run order.
static void regroup(mv_report *rep) {
    int w = rep->ncolumns + 1, ns = rep->nseeds;
    for (int g = 0; g < rep->nrows; g++) {
        mv_report_row *row = &rep->rows[g];
        free_row_stats(row);
        row->run = mv_calloc((size_t)ns, sizeof(int));
        row->used = mv_calloc((size_t)ns, sizeof(bool));
        row->value = mv_calloc((size_t)(ns * w), sizeof(double));
        row->mean = mv_calloc((size_t)w, sizeof(double));
        row->sd = mv_calloc((size_t)w, sizeof(double));
        row->n = mv_calloc((size_t)w, sizeof(int));
        row->paper = mv_calloc((size_t)w, sizeof(double));
        row->note[0] = 0;
        row->nused = 0;
        for (int k = 0; k < ns; k++) {
            const char *name = rep->seed_runs[g * ns + k];
            int r = -1;
            for (int i = 0; i < rep->nruns && r < 0; i++) if (!strcmp(rep->runs[i].name, name)) r = i;
            row->run[k] = r;
            // A directory trained with another seed (an older single-seed run, or the seeds' order
            // changed) is not this seed's run, whatever its state: said first, as the reason.
            const char *sv = r >= 0 ? mv_report_run_config(&rep->runs[r], "run.seed") : NULL;
            char want[16];
            snprintf(want, sizeof want, "%d", rep->seeds[k]);
            bool other_seed = sv && strcmp(sv, want);
            bool used = r >= 0 && !other_seed && !strcmp(rep->runs[r].state, "finished");
            if (r < 0) note_add(row->note, sizeof row->note, "%s: not run%s; ", name, "");
            else if (other_seed)
                note_add(row->note, sizeof row->note, "%s: trained with run.seed %s, left out; ", name, sv);
            else if (!used) note_add(row->note, sizeof row->note, "%s: %s; ", name, rep->runs[r].state);
            row->used[k] = used;
            row->nused += used;
            for (int c = 0; c < w; c++) row->value[k * w + c] = used ? rep->ours[r * w + c] : NAN;
        }
        for (int c = 0; c < w; c++) {
            double sum = 0, sq = 0;
            int n = 0;
            for (int k = 0; k < ns; k++) {
                double v = row->value[k * w + c];
                if (isnan(v)) continue;
                sum += v;
                n++;
            }
            double mean = n ? sum / n : NAN;
            for (int k = 0; k < ns; k++) {
                double v = row->value[k * w + c];
                if (!isnan(v)) sq += (v - mean) * (v - mean);
            }
            row->n[c] = n;
            row->mean[c] = mean;
            row->sd[c] = n >= 2 ? sqrt(sq / (n - 1)) : NAN;
            row->paper[c] = NAN;
        }
        size_t l = strlen(row->note);
        if (l >= 2) row->note[l - 2] = 0;
    }
}

void mv_report_set_seeds(mv_report *rep, const char *const *rows, int nrows, const int *seeds, int nseeds,
                         const char *const *run_names) {
    free_rows(rep);
    free(rep->seeds);
    free(rep->seed_runs);
    rep->seeds = NULL;
    rep->seed_runs = NULL;
    rep->nrows = rep->nseeds = 0;
    if (nseeds <= 0 || nrows <= 0) return;
    rep->nseeds = nseeds;
    rep->nrows = nrows;
    rep->seeds = mv_calloc((size_t)nseeds, sizeof(int));
    memcpy(rep->seeds, seeds, (size_t)nseeds * sizeof(int));
    rep->seed_runs = mv_calloc((size_t)(nrows * nseeds), sizeof *rep->seed_runs);
    for (int i = 0; i < nrows * nseeds; i++) copy_name(rep->seed_runs[i], run_names[i], MV_REPORT_NAME);
    rep->rows = mv_calloc((size_t)nrows, sizeof *rep->rows);
    for (int g = 0; g < nrows; g++) copy_name(rep->rows[g].name, rows[g], MV_REPORT_NAME);
    regroup(rep);
}

void mv_report_format_stat(char *buf, size_t size, double mean, double sd, int n, int nseeds) {
    if (n == 0 || isnan(mean)) { snprintf(buf, size, "—"); return; }
    int w = isnan(sd) ? snprintf(buf, size, "%.2f", mean) : snprintf(buf, size, "%.2f ± %.2f", mean, sd);
    if (n < nseeds && w > 0 && (size_t)w < size) snprintf(buf + w, size - (size_t)w, " (%d/%d)", n, nseeds);
}

// ------------------------------------------------------------------------------------------
// the table (continued)

int mv_report_source_column(const mv_report *rep, int r) {
    for (int c = 0; c < rep->ncolumns; c++)
        if (!strcmp(rep->columns[c], rep->runs[r].source)) return c;
    return 0;
}

int mv_report_sweep_points(const mv_report *rep, mv_report_sweep_point **out) {
    int w = rep->ncolumns + 1, n = 0, cap = rep->nseeds ? rep->nrows : rep->nruns;
    mv_report_sweep_point *p = mv_calloc((size_t)(cap ? cap : 1), sizeof *p);
    for (int i = 0; i < cap; i++) {
        const mv_report_row *row = rep->nseeds ? &rep->rows[i] : NULL;
        int r = i;   // the run that names the key and the source: with seeds, the row's first one present
        if (row) {
            r = -1;
            for (int k = 0; k < rep->nseeds && r < 0; k++) r = row->run[k];
            if (r < 0) continue;
        }
        const char *key = mv_report_run_config(&rep->runs[r], rep->sweep_key);
        if (!key) continue;   // no config.yaml (yet): no place on the curve
        int sc = rep->ncolumns ? mv_report_source_column(rep, r) : -1;
        mv_report_sweep_point *q = &p[n++];
        q->name = row ? row->name : rep->runs[r].name;
        q->key = key;
        if (row) {
            q->source = sc >= 0 ? row->mean[sc] : NAN;
            q->source_sd = sc >= 0 ? row->sd[sc] : NAN;
            q->source_n = sc >= 0 ? row->n[sc] : 0;
            q->mean = row->mean[rep->ncolumns];
            q->mean_sd = row->sd[rep->ncolumns];
            q->mean_n = row->n[rep->ncolumns];
        } else {
            q->source = sc >= 0 ? rep->ours[r * w + sc] : NAN;
            q->mean = rep->ours[r * w + rep->ncolumns];
            q->source_sd = q->mean_sd = NAN;
            q->source_n = !isnan(q->source);
            q->mean_n = !isnan(q->mean);
        }
    }
    for (int i = 1; i < n; i++)   // insertion sort by the key's value: stable, and a curve needs increasing x
        for (int j = i; j > 0 && strtod(p[j].key, NULL) < strtod(p[j - 1].key, NULL); j--) {
            mv_report_sweep_point t = p[j];
            p[j] = p[j - 1];
            p[j - 1] = t;
        }
    *out = p;
    return n;
}

bool mv_report_mixed_sources(const mv_report *rep) {
    for (int r = 0; r < rep->nruns; r++)
        if (mv_report_source_column(rep, r) != 0) return true;
    return false;
}

bool mv_report_is_target(const mv_report *rep, int c) {
    if (c < 0 || c >= rep->ncolumns) return false;
    if (!rep->ntargets) return c > 0;
    for (int t = 0; t < rep->ntargets; t++) if (!strcmp(rep->targets[t], rep->columns[c])) return true;
    return false;
}

void mv_report_targets_text(char *buf, size_t size, const mv_report *rep) {
    snprintf(buf, size, "%s", rep->ntargets ? "" : "all other domains");
    for (int t = 0; t < rep->ntargets; t++) {
        size_t l = strlen(buf);
        if (l < size) snprintf(buf + l, size - l, "%s%s", t ? ", " : "", rep->targets[t]);
    }
}

const char *mv_report_format_diff(char *buf, size_t size, double diff) {
    snprintf(buf, size, "%+.2f", diff);
    if (!strcmp(buf, "-0.00")) buf[0] = '+';
    return buf;
}

// Run r's mean over the targets: the declared ones (mv_report_set_targets), else every column
// but the run's own source; only when every target is there, since a partial mean would mislead
// (and an undefined mIoU, a split without a labelled pixel, leaves it undefined as in training's
// summary).
static double target_mean(const mv_report *rep, int r) {
    double sum = 0;
    int n = 0, source = mv_report_source_column(rep, r);
    int count = rep->ntargets ? rep->ntargets : rep->ncolumns;
    for (int t = 0; t < count; t++) {
        if (!rep->ntargets && t == source) continue;
        const mv_report_domain *d =
            mv_report_run_domain(&rep->runs[r], rep->ntargets ? rep->targets[t] : rep->columns[t]);
        if (!d || isnan(d->miou)) return NAN;
        sum += d->miou;
        n++;
    }
    return n > 0 ? sum / n : NAN;
}

// ours[][] from the runs for the current columns; paper[][] cleared (and the seed rows redone).
static void fill_table(mv_report *rep) {
    int w = rep->ncolumns + 1;
    free(rep->ours);
    free(rep->paper);
    rep->ours = mv_malloc((size_t)(rep->nruns > 0 ? rep->nruns : 1) * (size_t)w * sizeof(double));
    rep->paper = mv_malloc((size_t)(rep->nruns > 0 ? rep->nruns : 1) * (size_t)w * sizeof(double));
    for (int r = 0; r < rep->nruns; r++) {
        for (int c = 0; c < rep->ncolumns; c++) {
            const mv_report_domain *d = mv_report_run_domain(&rep->runs[r], rep->columns[c]);
            rep->ours[r * w + c] = d ? d->miou : NAN;
            rep->paper[r * w + c] = NAN;
        }
        rep->ours[r * w + rep->ncolumns] = target_mean(rep, r);
        rep->paper[r * w + rep->ncolumns] = NAN;
    }
    if (rep->nseeds) regroup(rep);
}

void mv_report_set_targets(mv_report *rep, const char *const *names, int n) {
    free(rep->targets);
    rep->targets = NULL;
    rep->ntargets = 0;
    if (n > 0) {
        rep->targets = mv_calloc((size_t)n, sizeof *rep->targets);
        for (int t = 0; t < n; t++) copy_name(rep->targets[t], names[t], MV_REPORT_NAME);
        rep->ntargets = n;
    }
    fill_table(rep);
}

static void build_table(mv_report *rep) {
    int cap = 0;
    for (int r = 0; r < rep->nruns; r++)
        for (int d = 0; d < rep->runs[r].ndomains; d++) add_column(rep, &cap, rep->runs[r].domains[d].name);
    fill_table(rep);
    find_sweep_key(rep);
}

void mv_report_set_columns(mv_report *rep, const char *const *domains, const char *const *labels, int n,
                           const char *mean_label, int mean_at) {
    char (*old)[MV_REPORT_NAME] = rep->columns;
    int nold = rep->ncolumns, cap = 0;
    free(rep->labels);
    rep->columns = NULL;
    rep->ncolumns = 0;
    rep->labels = mv_calloc(1, sizeof *rep->labels);   // non-NULL: add_column keeps labels
    rep->mean_placed = false;
    for (int i = 0; i < n; i++) {
        // counted in columns kept, not in entries: a domain given twice is one column
        if (i == mean_at) { rep->mean_placed = true; rep->mean_pos = rep->ncolumns; }
        int before = rep->ncolumns;
        add_column(rep, &cap, domains[i]);
        if (rep->ncolumns > before && labels && labels[i]) copy_name(rep->labels[before], labels[i], MV_REPORT_NAME);
    }
    if (mean_at == n) { rep->mean_placed = true; rep->mean_pos = rep->ncolumns; }   // before the unlisted domains
    for (int c = 0; c < nold; c++) add_column(rep, &cap, old[c]);
    free(old);
    copy_name(rep->mean_label, mean_label ? mean_label : "", sizeof rep->mean_label);
    fill_table(rep);
}

void mv_report_order_runs(mv_report *rep, const char *const *names, int n) {
    mv_report_run *runs = mv_calloc((size_t)(rep->nruns > 0 ? rep->nruns : 1), sizeof *runs);
    bool *taken = mv_calloc((size_t)(rep->nruns > 0 ? rep->nruns : 1), sizeof *taken);
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rep->nruns; r++)
            if (!taken[r] && !strcmp(rep->runs[r].name, names[i])) { runs[k++] = rep->runs[r]; taken[r] = true; }
    for (int r = 0; r < rep->nruns; r++) if (!taken[r]) runs[k++] = rep->runs[r];   // already sorted by name
    memcpy(rep->runs, runs, (size_t)rep->nruns * sizeof *runs);
    free(runs);
    free(taken);
    fill_table(rep);
}

void mv_report_add_missing(mv_report *rep, const char *const *names, int n) {
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int r = 0; r < rep->nruns && !found; r++) found = !strcmp(rep->runs[r].name, names[i]);
        if (found) continue;
        rep->runs = mv_realloc(rep->runs, (size_t)(rep->nruns + 1) * sizeof *rep->runs);
        mv_report_run *run = &rep->runs[rep->nruns++];
        memset(run, 0, sizeof *run);
        copy_name(run->name, names[i], sizeof run->name);
        copy_name(run->state, "not run", sizeof run->state);
        run->incomplete = true;
        copy_name(run->note, "not run (no run directory)", sizeof run->note);
    }
    fill_table(rep);
}

void mv_report_mark_stale(mv_report *rep, const char *name, const char *why) {
    for (int r = 0; r < rep->nruns; r++) {
        mv_report_run *run = &rep->runs[r];
        if (strcmp(run->name, name)) continue;
        char note[2 * sizeof run->note + 512];
        snprintf(note, sizeof note, "%s%s%s", why, run->note[0] ? "; " : "", run->note);
        note[sizeof run->note - 1] = 0;   // what fits
        memcpy(run->note, note, sizeof run->note);
        copy_name(run->state, "stale", sizeof run->state);
        run->incomplete = true;
    }
    fill_table(rep);
}

// The run and the seed row called `name` (-1 where none).
static void find_row(const mv_report *rep, const char *name, int *r, int *g) {
    *r = *g = -1;
    for (int k = 0; k < rep->nruns; k++) if (!strcmp(rep->runs[k].name, name)) *r = k;
    for (int k = 0; k < rep->nrows; k++) if (!strcmp(rep->rows[k].name, name)) *g = k;
}

int mv_report_set_paper_cell(mv_report *rep, const char *run, const char *column, double value) {
    int r, g, c = -1, w = rep->ncolumns + 1;
    find_row(rep, run, &r, &g);
    if (!strcmp(column, "mean") || !strcmp(column, "avg")) c = rep->ncolumns;
    for (int k = 0; k < rep->ncolumns; k++) if (!strcmp(rep->columns[k], column)) c = k;
    if ((r < 0 && g < 0) || c < 0) return 1;
    if (r >= 0) rep->paper[r * w + c] = value;
    if (g >= 0) rep->rows[g].paper[c] = value;
    return 0;
}

int mv_report_column_at(const mv_report *rep, int i) {
    int m = rep->mean_placed && rep->mean_pos < rep->ncolumns ? rep->mean_pos : rep->ncolumns;
    if (i == m) return rep->ncolumns;
    return i < m ? i : i - 1;
}

int mv_report_add_peer(mv_report *rep, const char *name) {
    rep->peers = mv_realloc(rep->peers, (size_t)(rep->npeers + 1) * sizeof *rep->peers);
    mv_report_peer *p = &rep->peers[rep->npeers];
    memset(p, 0, sizeof *p);
    copy_name(p->name, name, sizeof p->name);
    return rep->npeers++;
}

int mv_report_set_peer_cell(mv_report *rep, int peer, const char *column, double value) {
    if (peer < 0 || peer >= rep->npeers) return 1;
    bool mean = !strcmp(column, "mean") || !strcmp(column, "avg"), known = mean;
    for (int k = 0; k < rep->ncolumns && !known; k++) known = !strcmp(rep->columns[k], column);
    mv_report_peer *p = &rep->peers[peer];
    if (!known || p->ncells >= MV_REPORT_MAX_PEER_CELLS) return 1;
    copy_name(p->column[p->ncells], mean ? "mean" : column, MV_REPORT_NAME);   // one name for the mean
    p->value[p->ncells++] = value;
    return 0;
}

double mv_report_peer_value(const mv_report *rep, int peer, int c) {
    const char *name = c >= rep->ncolumns ? "mean" : rep->columns[c];
    const mv_report_peer *p = &rep->peers[peer];
    double v = NAN;
    for (int k = 0; k < p->ncells; k++)   // the last one set wins, as for the paper cells
        if (!strcmp(p->column[k], name)) v = p->value[k];
    return v;
}

const char *mv_report_label(const mv_report *rep, int c) {
    if (c >= rep->ncolumns) return rep->mean_label[0] ? rep->mean_label : "mean";
    return rep->labels ? rep->labels[c] : rep->columns[c];
}

int mv_report_set_paper(mv_report *rep, const char *paper_json) {
    char *text = mv_read_text_file(paper_json, false);
    if (!text) return -1;
    mv_json pj;
    if (mv_json_parse(&pj, text) < 0) { free(text); return mv_fail_context("%s", paper_json); }
    free(text);
    if (pj.kind != MV_JSON_OBJ) { mv_json_free(&pj); return mv_fail("%s: expected {\"row\": {\"column\": number}}", paper_json); }
    int w = rep->ncolumns + 1;
    for (int i = 0; i < pj.n; i++) {
        const mv_json *row = &pj.items[i];
        int r, g;
        find_row(rep, row->key, &r, &g);
        if (r < 0 && g < 0) { fprintf(stderr, "maskvim report: %s: row '%s' has no run directory (left out)\n", paper_json, row->key); continue; }
        if (row->kind != MV_JSON_OBJ) { int rc = mv_fail("%s: row '%s': expected an object of column: number", paper_json, row->key); mv_json_free(&pj); return rc; }
        for (int j = 0; j < row->n; j++) {
            const mv_json *cell = &row->items[j];
            int c = -1;
            if (!strcmp(cell->key, "mean") || !strcmp(cell->key, "avg")) c = rep->ncolumns;
            for (int k = 0; k < rep->ncolumns; k++) if (!strcmp(rep->columns[k], cell->key)) c = k;
            if (c < 0) { fprintf(stderr, "maskvim report: %s: row '%s': column '%s' was not evaluated (left out)\n", paper_json, row->key, cell->key); continue; }
            if (cell->kind != MV_JSON_NUM) { int rc = mv_fail("%s: row '%s' column '%s': expected a number", paper_json, row->key, cell->key); mv_json_free(&pj); return rc; }
            if (r >= 0) rep->paper[r * w + c] = cell->num;
            if (g >= 0) rep->rows[g].paper[c] = cell->num;
        }
    }
    mv_json_free(&pj);
    return 0;
}

int mv_report_load(mv_report *rep, const char *runs_dir, const char *paper_json, const char *title) {
    memset(rep, 0, sizeof *rep);
    copy_name(rep->title, title ? title : "MaskViM results", sizeof rep->title);
    DIR *dir = opendir(runs_dir);
    if (!dir) return mv_fail("%s: %s", runs_dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        bool run = false;
        const char *files[] = {"metrics.jsonl", "config.yaml", "status.json"};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s/%s", runs_dir, e->d_name, files[k]);
            if (file_exists(path)) run = true;
        }
        if (!run) continue;
        if (n == cap) { cap = cap ? cap * 2 : 16; names = mv_realloc(names, (size_t)cap * sizeof(char *)); }
        names[n++] = mv_strdup(e->d_name);
    }
    closedir(dir);
    if (n == 0) { free(names); return mv_fail("%s: no run directories (subdirectories with metrics.jsonl, config.yaml or status.json)", runs_dir); }
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    rep->runs = mv_calloc((size_t)n, sizeof(mv_report_run));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", runs_dir, names[i]);
        if (rc == 0 && mv_report_run_load(&rep->runs[rep->nruns], path, names[i]) < 0) {
            mv_report_run_free(&rep->runs[rep->nruns]);
            rc = -1;
        } else if (rc == 0) rep->nruns++;
        free(names[i]);
    }
    free(names);
    if (rc < 0) { mv_report_free(rep); return -1; }
    build_table(rep);
    if (paper_json && mv_report_set_paper(rep, paper_json) < 0) { mv_report_free(rep); return -1; }
    return 0;
}

void mv_report_free(mv_report *rep) {
    free_rows(rep);
    free(rep->seeds);
    free(rep->seed_runs);
    for (int i = 0; i < rep->nruns; i++) mv_report_run_free(&rep->runs[i]);
    free(rep->runs);
    free(rep->columns);
    free(rep->labels);
    free(rep->targets);
    free(rep->ours);
    free(rep->paper);
    free(rep->peers);
    memset(rep, 0, sizeof *rep);
}
