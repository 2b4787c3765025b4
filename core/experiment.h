// Experiment files: one YAML file per table or figure of the paper. It names a base training
// configuration, common overrides, the rows (explicit lists of `key=value` overrides and/or a
// grid over keys expanded into one row per combination), the source and target domains, the
// columns of the table and the paper's number for each cell, so that a sweep can be run
// (launch/cmd_experiment.c) and a report can later set our numbers beside the paper's.
// docs/experiments.md describes the format.
#pragma once
#include <stdbool.h>
#include "core/config.h"

#define MV_EXP_NAME_MAX 64     // experiment, row and column names (row names are directory names)
#define MV_EXP_SET_MAX 256     // one "key=value" override
#define MV_EXP_MAX_SETS 32     // overrides per row (and common overrides)
#define MV_EXP_MAX_COLS 24     // table columns
#define MV_EXP_MAX_TARGETS 16  // target domains
#define MV_EXP_MAX_GRID 4      // keys in a grid
#define MV_EXP_MAX_ROWS 256    // rows after grid expansion
#define MV_EXP_MAX_CORR 16     // corruptions (Cityscapes-C, data/corrupt.h)
#define MV_EXP_MAX_SEEDS 16    // entries of `seeds:`
#define MV_EXP_MAX_PEERS 32    // entries of `peers:` (Table 3 prints 15 other methods)
#define MV_EXP_RUN_NAME_MAX (MV_EXP_NAME_MAX + 16)   // a row name, '@' and a seed

// A column of the table: a data.val domain, or "avg" (the mean over the target domains);
// `label` is what the paper calls it (e.g. "B" for the domain standing in for BDD100K). `avg` may
// stand anywhere in `columns:`; the report shows the mean column there (Table 2 prints it first).
typedef struct {
    char domain[MV_NAME_MAX];
    char label[MV_EXP_NAME_MAX];
} mv_exp_column;

typedef struct {
    char name[MV_EXP_NAME_MAX];          // also the row's run directory name
    int nsets;
    char sets[MV_EXP_MAX_SETS][MV_EXP_SET_MAX];   // "key=value" applied after the common ones
    double paper[MV_EXP_MAX_COLS];       // the paper's number per column (NAN: none)
    int line;                            // where the row (or its grid) is in the file, 1-based
} mv_exp_row;

// A published row of another method (`peers:`): the paper prints it beside MaskViM, but it is
// never run: the sweep, --dry-run and `maskvim config --row` know only `rows`; the report prints
// peers in a block of their own. `paper` follows the columns exactly as a row's does.
typedef struct {
    char name[MV_EXP_NAME_MAX];          // free text ("HGFormer Swin-T"), unique among the peers
    double paper[MV_EXP_MAX_COLS];       // the published number per column (NAN: blank, "-" in the paper)
    int line;                            // where the peer is in the file, 1-based
} mv_exp_peer;

// One training run of the sweep: a row at one of the file's `seeds:` (a row as written when the
// file has none). Its run directory is DIR/<name>: the row's name for the first seed listed (so
// that a single-seed run directory of that seed is reused), "<row>@<seed>" for the others ('@'
// is not allowed in row names, so these never meet another row's directory).
typedef struct {
    const mv_exp_row *row;
    int seed_index;                      // index into exp->seeds; -1 when the file has no `seeds:`
    int seed;                            // exp->seeds[seed_index] (the row's own run.seed: unused)
    char name[MV_EXP_RUN_NAME_MAX];      // the run directory name
} mv_exp_run;

typedef struct {
    char path[MV_PATH_MAX];              // the experiment file
    char name[MV_EXP_NAME_MAX];          // `name:`, or the file name without .yaml
    char title[256];                     // `title:` (free text for reports)
    char base[MV_PATH_MAX];              // base config, resolved relative to the file's folder
    int nsets;
    char sets[MV_EXP_MAX_SETS][MV_EXP_SET_MAX];   // common overrides (`set:`)
    char source[MV_NAME_MAX];            // the training domain (a data.val name), may be ""
    char source_warning[MV_PATH_MAX + 256];   // "" or why `targets:` naming the source skews the mean
    int ntargets;
    char targets[MV_EXP_MAX_TARGETS][MV_NAME_MAX];
    int ncols;
    mv_exp_column cols[MV_EXP_MAX_COLS];
    int nrows;
    mv_exp_row *rows;                    // explicit rows first, then the grid's rows
    int npeers;
    mv_exp_peer *peers;                  // `peers:`, in file order (not rows: nothing runs them)
    // `corruptions:` / `severities:` (Table 2): after training, every row's final checkpoint is
    // evaluated on the source domain under each corruption (as `maskvim eval --corruptions`);
    // each corruption is then a column, its mIoU the mean over the severities.
    int ncorruptions;
    char corruptions[MV_EXP_MAX_CORR][MV_NAME_MAX];
    int nseverities;
    int severities[5];                   // 1..5, default {5}
    // `corruption_channels: bgr`: corrupt in BGR order, as HGFormer's Cityscapes-C generator did
    // (`maskvim eval --corruption-bgr`, docs/corruptions.md); false: RGB, the default.
    bool corruption_bgr;
    // `seeds: [0, 1, 2]`: every row runs once per seed with run.seed = seed (none: one run per
    // row with its own run.seed). The runs, row by row and seed by seed within a row:
    int nseeds;
    int seeds[MV_EXP_MAX_SEEDS];
    int nruns;
    mv_exp_run *runs;
    // `global_batch: 4`: the global batch (ranks x data.batch_per_rank) the table's numbers are
    // meant for; 0 when not given. The ranks are the launcher's, not the file's: the sweep warns
    // when the ranks it will use (or, afterwards, a row's start records) give another batch, and
    // the report marks such a run. Every run's data.batch_per_rank divides it.
    int global_batch;
} mv_experiment;

// Parses the experiment file `path`. Errors name FILE:LINE:COLUMN and the key at fault.
// On success the caller frees with experiment_free.
int experiment_load(mv_experiment *exp, const char *path);
void experiment_free(mv_experiment *exp);
// The row called `name`, or NULL.
const mv_exp_row *experiment_find_row(const mv_experiment *exp, const char *name);
// Resolves one row: the base config, then the common overrides, then the row's, then
// run.work_dir=work_dir (NULL: left as resolved). Checks that the source and target domains
// are data.val entries of the result.
int experiment_row_config(mv_config *cfg, const mv_experiment *exp, const mv_exp_row *row, const char *work_dir);
// Resolves one run: its row's config (above) with run.seed set to the run's seed.
int experiment_run_config(mv_config *cfg, const mv_experiment *exp, const mv_exp_run *run, const char *work_dir);
// The same with `extra` (nextra "key=value" overrides, e.g. `maskvim config --row`'s --set)
// applied last, in the one resolution: a model.preset among them is applied before every other
// model key, as in a file, and the result is validated once.
int experiment_run_config_with(mv_config *cfg, const mv_experiment *exp, const mv_exp_run *run, const char *work_dir,
                               int nextra, const char *const *extra);
// The run called `name` ("row" or "row@seed", where the first seed's run, named "row", is
// also "row@seed"), or NULL.
const mv_exp_run *experiment_find_run(const mv_experiment *exp, const char *name);
// "row@seed" for a run of a file with `seeds:` (for the first seed, the other name of the run
// called "row"); false when the file has no seeds (or n is too small).
bool experiment_run_alias(char *out, size_t n, const mv_exp_run *run);
// Copies from src into dst the settings that do not change what a run trains or the numbers
// the report reads: run.work_dir, the log / checkpoint / evaluation intervals, run.keep_ckpts,
// run.device, the all-reduce bucket sizes, data.workers and the best-checkpoint selection.
void experiment_copy_unscored(mv_config *dst, const mv_config *src);
// Finds two rows that train alike: their (first-seed) runs resolve to the same configuration
// but for the settings experiment_copy_unscored names (run.device excepted). Returns 1 and the
// indices in exp->rows (first < second) of the first such pair, 0 when every row trains
// differently, -1 on an error.
int experiment_twin_rows(const mv_experiment *exp, int *first, int *second);
// How many ranks each row trains on under `launcher` (NULL: none, the sweep's own process or a
// `maskvim train` child: 1): the -np / -n / --np / --n / -c value of an mpirun, mpiexec,
// orterun or srun command (srun also --ntasks N / -nN / --ntasks=N). -1 when the string does not
// tell (another program, no count, or a per-node count: mpirun's -N / --npernode, srun's
// --ntasks-per-node).
int experiment_launcher_ranks(const char *launcher);
// True when `name` is one of the experiment's corruptions (a column that is not a domain).
bool experiment_is_corruption(const mv_experiment *exp, const char *name);
// How the JSON that `maskvim eval --corruptions ... --json PATH` wrote differs from what `exp`
// asks for now (the file was edited since the row was evaluated: its numbers are not the file's
// any more). 0 when it holds exactly the corruptions x severities of `exp` (besides the clean
// pass), corrupted in the file's channel order (`corruption_channels`; a JSON without it is
// RGB), every result of the file's `source:` domain (a result without "domain" is not checked);
// otherwise MV_CORR_DIFF_CORRUPTIONS when it holds other corruptions or severities, misses one,
// is in the other order or cannot be read, and/or MV_CORR_DIFF_SOURCE when a result is of
// another domain.
#define MV_CORR_DIFF_CORRUPTIONS 1
#define MV_CORR_DIFF_SOURCE 2
int experiment_corruptions_differ(const mv_experiment *exp, const char *json_path);
// 1 when experiment_corruptions_differ finds no difference, else 0.
int experiment_corruptions_match(const mv_experiment *exp, const char *json_path);
// What a nonzero experiment_corruptions_differ means, for messages: "corruptions changed",
// "source changed" or "corruptions and source changed".
const char *experiment_corruptions_what(int differ);
// Reads the JSON that `maskvim eval --corruptions ... --json PATH` wrote and gives, per
// corruption of `exp` in file order, the mean mIoU over the severities found (names[i],
// miou[i], i < exp->ncorruptions); NAN where a severity's mIoU is undefined (`null`: a split
// without a labelled pixel). Fails when a corruption or severity of `exp` is missing.
int experiment_corruption_results(char (*names)[MV_NAME_MAX], double *miou, const mv_experiment *exp,
                                  const char *json_path);
