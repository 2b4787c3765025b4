// Data sources on disk (see data_sources.h).
#include "core/data_sources.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/stop_signal.h"
#include "data/shard.h"
#include "data/synth.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SYNTH_PREFIX "synthetic:"

// The stop signal that ended the last source_resolve (see source_stop_signal).
static int g_stopped;

// Whether the split folder `dir` is a whole split of `count` samples (its manifest and shards).
static bool synth_split_complete(const char *dir, int count) {
    mv_split *s = NULL;
    bool complete = split_open(&s, dir) == 0 && split_count(s) == count;
    if (s) split_close(s);
    mv_clear_error();
    return complete;
}

int source_resolve(char *out, size_t n, const mv_source *src, const char *split, const mv_config *cfg, mv_comm *comm) {
    if (strncmp(src->path, SYNTH_PREFIX, strlen(SYNTH_PREFIX)) != 0) {
        if ((size_t)snprintf(out, n, "%s", src->path) >= n) return mv_fail("source '%s': path too long", src->name);
        return 0;
    }
    const char *dname = src->path + strlen(SYNTH_PREFIX);
    int domain = synth_domain_index(dname);
    if (domain < 0) return mv_fail_context("source '%s'", src->name);
    const char *root = getenv("MV_SYNTH_CACHE") ? getenv("MV_SYNTH_CACHE") : "datasets/synthetic";
    const int *size = cfg->data.synthetic.size;
    int count = !strcmp(split, "train") ? cfg->data.synthetic.train_count : cfg->data.synthetic.val_count;
    char base[1024];
    snprintf(base, sizeof base, "%s/seed%d_%dx%d_%s%d", root, cfg->data.synthetic.seed, size[0], size[1], split, count);
    if ((size_t)snprintf(out, n, "%s/%s/%s", base, dname, split) >= n) return mv_fail("source '%s': path too long", src->name);
    int rc = 0, lock = -1, stopped = 0;
    g_stopped = 0;
    // A complete split is used as it is, without a write: the cache may sit on a read-only file
    // system (a finished cache shared read-only). This check needs no lock: a split is complete
    // only once its manifest is in place (written last, atomically, by the writer's close), and
    // a writer never takes a complete split apart again.
    // The first rank of each host writes what its host lacks: hosts without a shared file system
    // each get their own copy (bit for bit the same), and on a shared one the lock below lets one
    // write while the others wait and find it done.
    if (comm->local_rank == 0 && !synth_split_complete(out, count)) {
        // Runs started together on a fresh cache (sweeps, or plain `maskvim train`s) would write
        // the same folders at once: the first to lock writes, the others wait and find it done.
        char lock_path[1100], waiting[1200];
        snprintf(lock_path, sizeof lock_path, "%s/.write.lock", root);
        snprintf(waiting, sizeof waiting, "maskvim: waiting for another process writing synthetic data in %s", root);
        rc = mv_mkdir_p(root);
        if (rc == 0 && (lock = mv_lock_file(lock_path, waiting)) < 0) rc = -1;
        if (rc == 0 && !synth_split_complete(out, count)) {   // again: a process before us may have written it
            fprintf(stderr, "maskvim: writing synthetic domain '%s' (%s, %d images of %dx%d) to %s\n", dname, split,
                    count, size[0], size[1], out);
            // The same code path as `maskvim data synth` (resumes a split left incomplete).
            char cnt[32], sz[64], seed[32];
            snprintf(cnt, sizeof cnt, "%d", count);
            snprintf(sz, sizeof sz, "%dx%d", size[0], size[1]);
            snprintf(seed, sizeof seed, "%d", cfg->data.synthetic.seed);
            char *argv[] = {"synth", "--out", base, "--domains", (char *)dname, "--count", cnt, "--size", sz,
                            "--seed", seed, "--split", (char *)split, NULL};
            if (data_synth_main(13, argv) != 0) {
                stopped = stop_signal_request();   // the writer stopped as asked (data/synth_cli.c)
                rc = stopped ? mv_fail("source '%s': %s stopped the writing of %s (its complete shards are kept: "
                                       "the next run resumes it)", src->name, stop_signal_name(stopped), out)
                             : mv_fail("source '%s': could not write %s", src->name, out);
            }
        }
    }
    if (lock >= 0) close(lock);
    // Every rank learns whether the writers succeeded, or were stopped, before anyone opens the split.
    double status[2] = {rc, stopped};
    if (comm_allreduce_sum_doubles(comm, status, 2) < 0) return -1;
    g_stopped = (int)status[1];
    if (status[0] < 0 && rc == 0 && g_stopped)
        return mv_fail("source '%s': %s stopped another rank writing %s", src->name, stop_signal_name(g_stopped), out);
    if (status[0] < 0 && rc == 0) return mv_fail("source '%s': another rank could not write %s", src->name, out);
    return status[0] < 0 ? -1 : 0;
}

int source_stop_signal(void) { return g_stopped; }

int source_check_split(const char *path, const char *role, const char *name, int num_classes) {
    mv_split *s = NULL;
    if (split_open(&s, path) < 0) return mv_fail_context("%s '%s'", role, name);
    int k = split_num_classes(s);
    split_close(s);
    if (num_classes > 0 && k > num_classes)
        return mv_fail("%s '%s' (%s): its labels are %d classes (manifest.json) but model.num_classes is %d: "
                       "labels %d..%d would have no class of the model to train", role, name, path, k, num_classes,
                       num_classes, k - 1);
    return 0;
}

void source_loader_config(mv_loader_config *lc, const mv_config *cfg, mv_loader_mode mode, const mv_comm *comm,
                          const mv_loader_source *sources, int n) {
    const mv_data_config *d = &cfg->data;
    *lc = (mv_loader_config){0};
    lc->mode = mode;
    lc->sources = sources;
    lc->n_sources = n;
    lc->batch = mode == MV_LOADER_TRAIN ? d->batch_per_rank : 1;
    lc->rank = comm->rank;
    lc->world = comm->world;
    lc->seed = (uint64_t)cfg->run.seed;
    lc->workers = d->workers;
    augment_default_config(&lc->aug, cfg->model.crop_h, cfg->model.crop_w);
    lc->aug.scale_long = d->scale[0];
    lc->aug.scale_short = d->scale[1];
    if (mode != MV_LOADER_TRAIN) return;
    lc->aug.ratio_min = d->ratio_range[0];
    lc->aug.ratio_max = d->ratio_range[1];
    lc->aug.cat_max_ratio = d->cat_max_ratio;
    lc->aug.flip_prob = d->flip_prob;
    lc->aug.photometric = d->photometric;
}

int source_same_split_everywhere(mv_comm *comm, const char *what, bool have, int64_t count, uint64_t fingerprint) {
    if (comm->world <= 1) return 0;
    uint64_t r0[3] = {have, (uint64_t)count, fingerprint};
    if (comm_bcast_bytes(comm, r0, sizeof r0) < 0) return -1;
    char msg[MV_COMM_MSG_MAX] = "";
    if (have && r0[0] && (r0[1] != (uint64_t)count || r0[2] != fingerprint))
        snprintf(msg, sizeof msg, "%s: rank %d reads %lld samples (fingerprint %016llx), rank 0 %lld samples "
                 "(fingerprint %016llx)", what, comm->rank, (long long)count, (unsigned long long)fingerprint,
                 (long long)r0[1], (unsigned long long)r0[2]);
    int first;
    if (comm_first_message(comm, msg, sizeof msg, &first) < 0) return -1;
    if (first < 0) return 0;
    return mv_fail("%s: every rank must read the same split (the same data at the same path on every host; compare "
                   "`maskvim data inspect` of each copy)", msg);
}
