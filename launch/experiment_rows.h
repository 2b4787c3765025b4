// Internal to `maskvim experiment` (launch/cmd_experiment.c): one row's state on disk and its
// begin and end (launch/experiment_rows.c), the commands a row runs and the child processes
// that run them (launch/experiment_spawn.c).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "core/config.h"
#include "core/experiment.h"

// ------------------------------------------------------------------------------------------
// Row state (experiment_rows.c)

typedef enum { ROW_RUN, ROW_RESUME, ROW_SKIP, ROW_EVAL } row_action;

#define ROW_BUSY (-2)   // lock_row / exp_row_begin: another process holds the row

// What to do with run r in DIR: skip it (its status.json says finished), resume it (it has a
// checkpoint, DIR/latest) or run it. A finished run of a file with `corruptions:` whose
// corruptions.json holds other corruptions, severities or channel order, or another domain, than
// the file asks for now (the file was edited since) is evaluated again (ROW_EVAL: resumed, which trains nothing, then evaluated),
// unless it was trained with another configuration than the file gives now: then it is skipped,
// with the warning of exp_config_changed.
row_action exp_row_plan(const mv_experiment *exp, const mv_exp_run *r, const char *dir);

// Whether the sweep may resume run r from the checkpoint in DIR: 0, or -1 with the reason (the
// checkpoint is past the file's schedule.max_iters, or DIR/config.yaml gives other settings than
// the file now does, beyond those that do not change the results: a row is trained under one
// configuration, never continued under another).
int exp_row_check_resume(const mv_experiment *exp, const mv_exp_run *r, const char *dir);

// DIR/status.json, written to a temporary file and renamed so readers never see half of it.
// `extra` (names, values, n) are more entries of "final": the corruptions of a Table 2 row.
// seed >= 0: the run's seed (experiments with `seeds:`), recorded as "seed"; global_batch > 0:
// the file's `global_batch:`, recorded as "global_batch" (the report holds the run's start
// records against it).
int exp_write_status(const char *dir, const char *row, int seed, int global_batch, const char *state,
                     const char *error, const char (*extra_names)[MV_NAME_MAX], const double *extra, int nextra);

// True when the run's saved config.yaml trains otherwise than the experiment file gives now (the
// file was edited after the run finished, or, with `seeds:`, DIR/<row> was trained with another
// seed than the first one listed): its results no longer match the run. Only the settings the
// report compares count (not run.work_dir, run.log_every, ...: experiment_copy_unscored); the
// first difference goes in why[n]. Says which seed, when that differs.
bool exp_config_changed(const mv_experiment *exp, const mv_exp_run *r, const char *dir, char *why, size_t n);

static inline int run_seed(const mv_exp_run *r) { return r->seed_index >= 0 ? r->seed : -1; }

// ------------------------------------------------------------------------------------------
// One row: begin (lock, resolve and save the config, status running), train (in this process
// or as a child), evaluate under the corruptions when the file has them, end (status).

typedef struct {
    const mv_exp_run *run;
    char dir[MV_PATH_MAX];
    int lock;            // the row's .lock, held from begin to end
    pid_t pid;           // the running child (0: none)
    bool evaluating;     // the child is the corruption evaluation
    long max_iters;
    double t0;
} row_job;

// Returns 0 when the row is ready to train (cfg resolved, lock held), 1 when another runner
// finished it meanwhile, ROW_BUSY when another process holds it, -1 on failure (message set,
// nothing held).
int exp_row_begin(row_job *j, mv_config *cfg, const mv_experiment *exp, const char *log);
// Records the outcome (`failed` when ok is false, with the current error) and releases the row.
// A finished row's line gives its final mIoU per column. Returns 0, or -1 when the row failed.
int exp_row_end(row_job *j, const mv_experiment *exp, bool ok);

// ------------------------------------------------------------------------------------------
// Row commands (experiment_spawn.c): what a row runs as a child process. `argv` form (no
// launcher: exec'd directly, so that the trainer itself is the child the sweep signals) and the
// shell form for a launcher.

#define CMD_MAX_ARGS 16

typedef struct {
    char args[CMD_MAX_ARGS][MV_PATH_MAX + 64];
    int n;
} row_cmd;

// `maskvim train DIR/config.yaml --resume auto [--quiet]`
int exp_train_cmd(row_cmd *c, const char *dir, bool quiet);
// `maskvim eval DIR/config.yaml --checkpoint DIR/iter_<max>.h5 --targets SOURCE
//  --corruptions a,b,... --severities s,... --json DIR/corruptions.json` (Table 2 rows).
int exp_eval_cmd(row_cmd *c, const mv_experiment *exp, const char *dir, long max_iters);

// ------------------------------------------------------------------------------------------
// Child processes (experiment_spawn.c)

// Starts c as a child (through /bin/sh and `launcher` when not NULL), with stdout and stderr
// to `log` when not NULL and OMP_NUM_THREADS = omp_threads when > 0. Returns its pid, or -1
// with a message.
// `lock` (the row's lock descriptor, -1: none) is inherited by the child and whatever it starts:
// the lock is shared by every process holding it and goes only with the last, so a child left
// running after the sweep was killed (SIGKILL; a launcher's shell that did not pass SIGTERM on)
// still keeps the next sweep out of its row instead of two trainers writing one directory.
pid_t exp_spawn(const row_cmd *c, const char *launcher, const char *log, int omp_threads, int lock);
// A child's wait status as 0, or -1 with a message.
int exp_child_status(int st, const char *what);
// Stops children and everything they started: SIGUSR1 to each child's process group (a
// training checkpoints its step and exits), then SIGKILL to the groups still running after
// EXP_STOP_GRACE_S seconds; reaps the children.
#define EXP_STOP_GRACE_S 30
void exp_stop_children(const pid_t *pids, int n);
// Runs one command as a child and waits for it (one row at a time). A stop signal stops it.
int exp_run_child(const row_cmd *c, const char *launcher, const char *what, int lock);
