// What the parts of the training service share (core/train*.c; see train.h): the trainer that
// one train_run owns, and the functions of its start-up (train_start.c), its agreements
// between ranks (train_ranks.c) and its log (train_log.c). The step loop is in train.c.
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/engine.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/train.h"
#include "data/loader.h"
#include "dist/comm.h"
#include "dist/fault_drill.h"
#include "dist/grad_sync.h"

// Where a run's time goes, for the log lines and the closing summary (seconds).
typedef struct {
    double start;                 // the first step's start
    double interval;              // the last log line
    double data, sync, compute;   // waiting for batches, for the all-reduce backward did not hide, forward+backward
    double optim;                 // the optimizer
    double periodic;              // evaluations and checkpoints (not part of a step)
    long interval_images;         // images since the last log line, all ranks
    long done;                    // iterations this process trained
} train_clock;

typedef struct {
    const mv_config *cfg;
    const mv_train_opts *opts;
    mv_comm *comm;
    mv_model model;
    mv_optimizer opt;
    mv_train_state st;
    mv_loader *loader;
    mv_grad_sync sync;
    bool use_sync;                      // the CPU path's gradient all-reduce (several ranks)
    const mv_engine *engine;            // the GPU engine, or NULL for the CPU model
    mv_run_ctx ctx;                     // the training steps' context
    int *ids;                           // ctx.sample_ids: the batch's global sample indices
    char device[256];                   // what trains, as the log names it
    bool tty;                           // a progress bar on rank 0's terminal (every rank knows)
    train_clock clock;
    mv_fault_drill fault;               // MV_FAULT: a rank stopped on purpose (dist/fault_drill.h)
    FILE *jsonl;                        // rank 0: run.work_dir/metrics.jsonl
    int lock_fd;                        // rank 0: run.work_dir/.train.lock, held while training
    char resume_path[1024];             // rank 0: the checkpoint the run resumed from ("" fresh)
    char train_paths[MV_MAX_SOURCES][1024];   // the loader keeps pointers to these
    char val_paths[MV_MAX_SOURCES][1024];
} trainer;

// A resumed run with nothing to do: at schedule.max_iters with no evaluation pending. It trains,
// logs and writes nothing (config.yaml, best.h5 and metrics.jsonl stay as they are).
static inline bool train_nothing_to_do(const trainer *t, bool resumed) {
    return resumed && t->st.iter >= t->cfg->schedule.max_iters && !t->st.eval_pending;
}

// train_start.c: the run directory, the starting point and the device.
int train_prepare_dir(trainer *t);
int train_load_start(trainer *t, mv_loader_cursor *cursor, bool *resumed);
int train_record_start(trainer *t, bool resumed);
int train_open_device(trainer *t);

// train_ranks.c: what every rank must agree on.
int train_check_same_data(trainer *t);
int train_startup_agreement(trainer *t, int *stop);
int train_batch_agreement(trainer *t, int got, bool *bad);
int train_step_agreement(trainer *t, long it, int *stop);

// train_log.c: metrics.jsonl and the printed lines.
int train_log_flush(trainer *t);
int train_log_open(trainer *t, const mv_loader_cursor *start);
int train_log_step(trainer *t, long it, bool log_now);
void train_log_summary(const trainer *t);
