// What the ranks of a training agree on, each in one small collective (the configuration they
// were started with: core/config_ranks.h): the splits they read, a stop
// request taken during start-up or a step, a batch that failed to load, and a loss that is not
// finite. They either all go on or all stop at the same place.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/data_sources.h"
#include "core/stop_signal.h"
#include "core/train_internal.h"
#include "data/manifest.h"

// Every rank must read the same training and validation splits (the configuration names the
// same paths, but each rank reads its own host's copy): a copy with another sample count would
// permute another epoch on its rank, so that the ranks' batches are no longer slices of one
// stream, and another content trains (or evaluates) on other images, all without an error.
// Each training source is compared as its loader opened it (the same counts and the same
// data.train repeats, compared with the configuration, give the same epoch size); the
// validation splits by their manifests, before the first evaluation needs them.
int train_check_same_data(trainer *t) {
    const mv_config *cfg = t->cfg;
    if (t->comm->world <= 1) return 0;
    char what[1400];
    for (int i = 0; i < cfg->data.num_train; i++) {
        int64_t n;
        uint64_t fp;
        loader_source_id(t->loader, i, &n, &fp);
        snprintf(what, sizeof what, "data.train %s (%s)", cfg->data.train[i].name, t->train_paths[i]);
        MV_TRY(source_same_split_everywhere(t->comm, what, true, n, fp));
    }
    for (int i = 0; i < cfg->data.num_val; i++) {
        int64_t n = 0;
        uint64_t fp = 0;
        bool have = manifest_fingerprint_dir(&fp, &n, t->val_paths[i]) == 0;
        snprintf(what, sizeof what, "data.val %s (%s)", cfg->data.val[i].name, t->val_paths[i]);
        char own[MV_ERRMSG_MAX] = "";
        if (!have) snprintf(own, sizeof own, "%s", mv_last_error());
        MV_TRY(source_same_split_everywhere(t->comm, what, have, n, fp));
        // The split opened a moment ago (check_sources) and cannot be read now: a failure of
        // this rank alone, which ends the job (cmd_train aborts) after the others' agreement.
        if (!have) return mv_fail("%s", own);
    }
    return 0;
}

#define NSTOP MV_STOP_SIGNAL_COUNT

// The stop signal every rank acts on, from this rank's own (mine) and how many ranks got each of
// mv_stop_signals (counts, summed over the ranks): its own, else the first that reached some rank.
static int agreed_signal(int mine, const double *counts) {
    for (int i = 0; i < NSTOP && !mine; i++)
        if (counts[i] > 0) mine = mv_stop_signals[i];
    return mine;
}

// What every rank must agree on after a step's forward, in one small all-reduce:
// - whether the loss is finite everywhere. A diverged step (a NaN or infinite loss: too high a
//   learning rate, a damaged sample) would turn every parameter into NaN at the optimizer, and
//   the next checkpoints would rotate the good ones away. The losses are summed over ranks (NaN
//   or Inf anywhere makes the sum non-finite), so all ranks stop together, before backward and
//   any gradient all-reduce, with the previous iteration's parameters untouched and no
//   checkpoint written (an error);
// - whether a stop signal reached any rank (core/stop_signal.h): then *stop is that signal and
//   every rank stops after this step, with a checkpoint.
int train_step_agreement(trainer *t, long it, int *stop) {
    const mv_model *m = &t->model;
    int mine_sig = stop_signal_pending();
    double v[1 + NSTOP] = {m->loss_total};   // the loss, then how many ranks got each signal
    for (int i = 0; i < NSTOP; i++) v[1 + i] = mine_sig == mv_stop_signals[i];
    bool mine = !isfinite(m->loss_total);
    if (t->comm->world > 1 && comm_allreduce_sum_doubles(t->comm, v, 1 + NSTOP) < 0) return -1;
    double sum = v[0];
    *stop = agreed_signal(mine_sig, v + 1);
    if (isfinite(sum)) return 0;
    char where[192] = "on another rank";
    if (mine)
        snprintf(where, sizeof where, "rank %d: total %g = ce %g, aux %g, ratio %g, position %g", t->comm->rank,
                 m->loss_total, m->loss_ce, m->loss_aux, m->loss_ratio, m->loss_position);
    return mv_fail("iteration %ld: the loss is not finite (%s); stopped before the update: no parameter changed and "
                   "no checkpoint was written (those in %s are intact; --resume auto continues from the last). "
                   "Lower optim.lr or check the data (maskvim data inspect)",
                   it + 1, where, t->cfg->run.work_dir);
}

// Whether a stop signal reached any rank while the run started up (core/stop_signal.h): one
// collective, on every rank once its setup is done, so that all of them stop before the first
// step or none does. A request that comes after this rank's part is read by the first step's
// agreement (the run then stops after that step, with a checkpoint).
int train_startup_agreement(trainer *t, int *stop) {
    stop_signal_starting(false);   // before the read: from here a request is "after this step"
    int mine = stop_signal_pending();
    double v[NSTOP];
    for (int i = 0; i < NSTOP; i++) v[i] = mine == mv_stop_signals[i];
    if (t->comm->world > 1 && comm_allreduce_sum_doubles(t->comm, v, NSTOP) < 0) return -1;
    *stop = agreed_signal(mine, v);
    return 0;
}

// Whether any rank's batch for this step failed to load (got: loader_next's result here), so
// that all of them stop at this step together and keep the iterations done. One more small sum
// per step with several ranks: folding it into the loss agreement would mean running a forward
// on a batch that was never read.
int train_batch_agreement(trainer *t, int got, bool *bad) {
    double data_bad = got != 1;
    if (t->comm->world > 1 && comm_allreduce_sum_doubles(t->comm, &data_bad, 1) < 0) return -1;
    *bad = data_bad > 0;
    return 0;
}
