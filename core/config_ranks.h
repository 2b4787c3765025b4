// That every MPI rank was started alike: the resolved configuration and the command's own options
// (train's --stop-after and --resume, eval's targets and corruptions, predict's outputs).
#pragma once
#include "core/config.h"
#include "dist/comm.h"

// Rank 0 sends its resolved configuration and its `options` text (the settings of the command
// line that are not configuration keys; at most MV_RANK_OPTIONS_MAX - 1 characters); a rank
// whose own differ fails naming the first key (or the options) that differ, and every rank
// stops with that message. run.work_dir (only rank 0 writes) and data.workers (loader threads)
// may differ. 0, or -1 on every rank.
#define MV_RANK_OPTIONS_MAX 1024
int config_check_same_on_ranks(const mv_config *cfg, const char *options, mv_comm *comm);
