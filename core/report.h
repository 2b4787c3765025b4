// The results report (`maskvim report`): reads run directories (config.yaml, metrics.jsonl,
// status.json) into one table of per-domain mIoU per run, then writes it as Markdown, CSV, JSON
// and a self-contained HTML page with inline SVG charts (training curves, per-domain bars, a curve
// of mIoU against a swept numeric config key: the paper's Figure 5a).
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include "core/json_read.h"   // mv_json: the reader of metrics.jsonl, status.json, paper numbers

// ---- one run directory (core/report_run.c) ----
#define MV_REPORT_MAX_STAGES 4
#define MV_REPORT_NAME 96
// Distinct builds kept per run; one run resumed by more builds than this keeps the first ones.
#define MV_REPORT_MAX_BUILDS 16

typedef struct {
    int iter;
    double loss_total, loss_ce, loss_aux, loss_ratio, loss_position, lr;
    double keep_enc[MV_REPORT_MAX_STAGES];
    int nkeep_enc;
} mv_report_point;

typedef struct {
    char name[MV_REPORT_NAME];
    int iter;                 // iteration of its last evaluation
    double miou;
    int nclass;
    char (*class_names)[MV_REPORT_NAME];
    double *iou;              // NAN where the class is absent (null)
} mv_report_domain;

// The global batch of one start (or resume) of a run: its start record's ranks and batch_per_rank.
#define MV_REPORT_MAX_BATCHES 4
typedef struct { int ranks, batch_per_rank; } mv_report_batch;

typedef struct {
    char name[MV_REPORT_NAME]; // the directory name
    char state[32];            // status.json's: finished | running | failed | interrupted; unknown without one
    bool incomplete;
    char note[1024];           // why incomplete (or other remarks), "" when none
    char builds[MV_REPORT_MAX_BUILDS][64]; // the distinct commits of its start records (maskvim --version), in order
    int nbuilds;                            // 0: no start record (a run from before them)
    // The global batch: what its start records say it trained with (distinct ranks x batch_per_rank
    // pairs in order: a resume on other ranks adds one; 0: none recorded), what the experiment file
    // asked for (status.json's "global_batch", the file's `global_batch:` when the sweep ran it; 0:
    // none), and whether a start record gives another batch than that.
    mv_report_batch batches[MV_REPORT_MAX_BATCHES];
    int nbatches;
    int batch_asked;
    bool batch_differs;
    mv_report_point *points; int npoints;
    mv_report_domain *domains; int ndomains; // last evaluation per domain, in first-seen order
    char **cfg_keys, **cfg_vals; int ncfg;   // config.yaml flattened to "section.key" -> value text
    // The domain it was trained on, from its config.yaml: run.select_domain, else (its default)
    // the first data.val entry; "" without a configuration.
    char source[MV_REPORT_NAME];
} mv_report_run;

// Reads one run directory; returns -1 only for unreadable/corrupt files (naming file:line).
// A directory without metrics.jsonl yields a run with no points, marked incomplete.
int mv_report_run_load(mv_report_run *run, const char *dir, const char *name);
// Only its metrics.jsonl at `path` (training points, start records, the last evaluation per
// domain) into a zeroed run: 0, 1 when there is no such file, -1 (naming file:line) for a line
// that does not parse other than a cut last one.
int mv_report_run_load_metrics(mv_report_run *run, const char *path);
void mv_report_run_free(mv_report_run *run);
// Sets run->batch_asked (asked <= 0: none) and returns run->batch_differs: whether a start record
// gives another global batch than asked (false without start records: nothing to compare).
bool mv_report_run_check_batch(mv_report_run *run, int asked);
// The batches a run trained with, as "2 (1 rank x 2)" or "2 (1 rank x 2), then 4 (2 ranks x 2)";
// "not recorded" without start records.
void mv_report_batch_text(char *buf, size_t size, const mv_report_run *run);
// What the report says of a run whose batch_differs (the sweep prints it too): "global batch 2
// (1 rank x 2); the experiment file asks for 4 (global_batch): train it on 2 ranks".
void mv_report_batch_note(char *buf, size_t size, const mv_report_run *run);
const mv_report_domain *mv_report_run_domain(const mv_report_run *run, const char *domain);
const char *mv_report_run_config(const mv_report_run *run, const char *key); // NULL when absent

// ---- the report (core/report.c) ----
// With seeds (an experiment file with `seeds:`), the table's rows are the experiment's rows and
// each cell aggregates the row's runs, one per seed: the mean of the final mIoU over the seeds
// whose run finished, and the sample standard deviation (n - 1 in the denominator) as the spread.
typedef struct {
    char name[MV_REPORT_NAME];   // the experiment's row
    int *run;                    // [nseeds] index into rep->runs (-1: no such run directory)
    bool *used;                  // [nseeds] the seed's run counts (finished, with the right run.seed)
    int nused;                   // seeds that count
    double *value;               // [nseeds * (ncolumns + 1)] per seed; NAN where it does not count
    double *mean, *sd;           // [ncolumns + 1]; sd NAN with fewer than two values
    int *n;                      // [ncolumns + 1] values in the mean
    double *paper;               // [ncolumns + 1]
    char note[256];              // runs left out and why ("" when none)
} mv_report_row;

// Another method's published row (an experiment file's `peers:`): the paper's numbers only,
// never run here, so it has no `ours` and no difference. Its cells are kept by column name, so
// they hold through any later change of the layout.
#define MV_REPORT_MAX_PEER_CELLS 32
typedef struct {
    char name[MV_REPORT_NAME];
    int ncells;
    char column[MV_REPORT_MAX_PEER_CELLS][MV_REPORT_NAME];   // a domain, or "mean"
    double value[MV_REPORT_MAX_PEER_CELLS];
} mv_report_peer;

typedef struct {
    char title[256];
    mv_report_run *runs; int nruns;
    char (*columns)[MV_REPORT_NAME]; int ncolumns; // evaluated domains, first = source
    double *ours;   // [nruns][ncolumns + 1]: index ncolumns is the mean over targets; NAN missing
                    // (where the writers show the mean: mv_report_column_at)
    double *paper;  // same shape, NAN where no paper number
    char sweep_key[128]; // the one numeric config key that varies over the runs ("" when none)
    char (*labels)[MV_REPORT_NAME]; // column headers when set by mv_report_set_columns (else the names)
    char mean_label[MV_REPORT_NAME]; // header of the mean column ("" : "mean")
    bool mean_placed;  // false: the mean is shown last (the default); true: at display index mean_pos
    int mean_pos;
    mv_report_peer *peers; int npeers;   // published rows of other methods (mv_report_add_peer)
    char (*targets)[MV_REPORT_NAME]; int ntargets; // what the mean averages (0: every column but the source)
    // seeds (mv_report_set_seeds); nseeds == 0: one table row per run
    int nseeds;
    int *seeds;
    char (*seed_runs)[MV_REPORT_NAME];   // [nrows * nseeds] run directory name of (row, seed)
    mv_report_row *rows; int nrows;
} mv_report;

// Loads every subdirectory of runs_dir that holds metrics.jsonl, config.yaml or status.json
// (sorted by name), then fills the table. paper_json may be NULL.
int mv_report_load(mv_report *rep, const char *runs_dir, const char *paper_json, const char *title);
// Reads {"row": {"column": number}} into rep->paper; a column is a domain name or "mean".
int mv_report_set_paper(mv_report *rep, const char *paper_json);
void mv_report_free(mv_report *rep);
// Lays the table out as an experiment file does (core/experiment.h): the columns domains[0..n)
// first, in that order, headed by labels[i] (NULL: the name), then any other evaluated domain;
// domains[0] is the source (the mean averages the others). Columns nobody evaluated stay, empty.
// mean_label heads the mean (NULL: "mean"). The mean is shown just before domains[mean_at]
// (where the file's `columns:` put `avg`: Table 2 prints it first), mean_at == n: after
// domains[n - 1] (before the domains not listed); mean_at < 0: last, after every other column
// (the layout without an experiment file). Clears the paper numbers (set them after this).
void mv_report_set_columns(mv_report *rep, const char *const *domains, const char *const *labels, int n,
                           const char *mean_label, int mean_at);
// The column the writers show at display position i (0 .. ncolumns): an index into the table's
// [ncolumns + 1] arrays, where the mean is index ncolumns wherever it is shown. The one place
// that knows the display order: every writer loops over i and reads this.
int mv_report_column_at(const mv_report *rep, int i);
// Makes the mean column the mean over the domains names[0..n) (an experiment's `targets:`, so
// that it is the mean the sweep prints and the paper's Avg), instead of over every column but
// the source; n == 0 restores that. Undefined (NaN) while any of them is missing. Kept through
// the calls below; clears the paper numbers like them.
void mv_report_set_targets(mv_report *rep, const char *const *names, int n);
// What the mean column averages, in words: "dusk, fog", or "all other domains" (no targets set).
void mv_report_targets_text(char *buf, size_t size, const mv_report *rep);
// True when column c (c < rep->ncolumns) is one the mean averages.
bool mv_report_is_target(const mv_report *rep, int c);
// The column of run r's source (mv_report_run.source); 0 (the table's source) when the run names
// none, or the column is not among the table's.
int mv_report_source_column(const mv_report *rep, int r);
// True when some run's source is another column than the first: runs of several sources in one
// table (Table 3's Cityscapes runs beside Table 4's Mapillary runs). The first column is then no
// one's source but each run's, named in its row, and each run's mean (without declared targets)
// leaves out its own source.
bool mv_report_mixed_sources(const mv_report *rep);
// One point of the "mIoU against the swept key" view (rep->sweep_key set): a run, or with seeds
// a row, its values the seed means (n counts the seeds in each, sd NAN below two).
typedef struct {
    const char *name;        // the run's or the row's
    const char *key;         // the swept key's value, as written in its config.yaml
    double source, source_sd, mean, mean_sd;
    int source_n, mean_n;
} mv_report_sweep_point;
// The points, one per run (rows with seeds) whose config.yaml gives the key, sorted by the key's
// numeric value (stable: equal keys keep run order). *out is malloc'd; returns the count.
int mv_report_sweep_points(const mv_report *rep, mv_report_sweep_point **out);
// A difference to the paper as "%+.2f", but "+0.00" where it rounds to zero ("-0.00" says
// "below the paper" of a difference too small to show).
const char *mv_report_format_diff(char *buf, size_t size, double diff);
// Puts the runs named in names[0..n) first, in that order; the others follow, sorted by name.
void mv_report_order_runs(mv_report *rep, const char *const *names, int n);
// Adds an empty run (state "not run", incomplete, every cell missing) for each of names[0..n)
// that has no run directory, so that a table row nobody ran is listed as such, not left out.
void mv_report_add_missing(mv_report *rep, const char *const *names, int n);
// Marks run `name` as trained with another configuration than its table row gives now (the
// experiment file was edited after it ran): state "stale", incomplete, `why` in its note; a
// stale run counts for no seed mean.
void mv_report_mark_stale(mv_report *rep, const char *name, const char *why);
// The paper's number for run `run`, column `column` (a domain, or "mean"/"avg"). Returns 0, or 1
// when there is no such run or column (nothing set).
int mv_report_set_paper_cell(mv_report *rep, const char *run, const char *column, double value);
// Groups the runs by seed: row r's seed k is the run named run_names[r * nseeds + k] (the
// experiment's run directories: "row", "row@seed"). A run counts when it finished and, where its
// config.yaml gives run.seed, that is seeds[k]. Kept through mv_report_set_columns and
// mv_report_order_runs (call it after them or before, as convenient); clears the rows' paper
// numbers like those do.
void mv_report_set_seeds(mv_report *rep, const char *const *rows, int nrows, const int *seeds, int nseeds,
                         const char *const *run_names);
// "11.53 ± 0.17", "11.53 ± 0.17 (2/3)" when only 2 of 3 seeds count, "11.53 (1/2)", "—".
void mv_report_format_stat(char *buf, size_t size, double mean, double sd, int n, int nseeds);
// Adds a published row of another method called `name` (no cells yet) and returns its index.
int mv_report_add_peer(mv_report *rep, const char *name);
// Peer `peer`'s published number for `column` (a domain, or "mean"/"avg"). Returns 0, or 1 when
// there is no such column (nothing set).
int mv_report_set_peer_cell(mv_report *rep, int peer, const char *column, double value);
// Peer `peer`'s number for table column c (c == rep->ncolumns: the mean); NAN where it has none.
double mv_report_peer_value(const mv_report *rep, int peer, int c);
// The header of column c (c == rep->ncolumns: the mean).
const char *mv_report_label(const mv_report *rep, int c);

// Writers (core/report_write.c; the HTML page: core/report_html.c): return 0 / -1 (I/O failure,
// naming the path).
int mv_report_write_md(const mv_report *rep, const char *path);
int mv_report_write_csv(const mv_report *rep, const char *path);
int mv_report_write_html(const mv_report *rep, const char *path);
// report.json: the table as data ({"title", "columns", "rows": [...]}, with seeds per row its
// mean, sd, n and per-seed values per column).
int mv_report_write_json(const mv_report *rep, const char *path);

// ---- inline SVG charts (core/report_svg.c) ----
typedef struct {
    const char *label;
    const double *x, *y; // NAN y values are gaps
    int n;
} mv_svg_series;
// A line chart of several series with axes, ticks and a legend.
void mv_svg_lines(FILE *f, const char *title, const char *xlabel, const char *ylabel,
                  const mv_svg_series *series, int nseries, int width, int height);
// A grouped bar chart: values[g * nbars + b], NAN bars are left out; errs (NULL: none), same
// shape, draws an error bar of ± errs around each value where it is finite.
void mv_svg_bars(FILE *f, const char *title, const char *ylabel, const char *const *groups, int ngroups,
                 const char *const *bars, int nbars, const double *values, const double *errs, int width,
                 int height);
// Writes s with &, <, >, " escaped.
void mv_html_escape(FILE *f, const char *s);
