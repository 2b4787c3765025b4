// The checkpoint and configuration of eval and predict (see inference_setup.h).
#include "launch/inference_setup.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/checkpoint.h"
#include "core/error.h"

int inference_checkpoint(mv_comm *comm, const char *arg, const char *who, bool want_cfg, char *path, size_t n,
                         char **yaml) {
    *yaml = NULL;
    int64_t head[2] = {0, -1};   // rank 0's status, the text's length (-1: none)
    if (comm->rank == 0) {
        head[0] = checkpoint_resolve(path, n, arg, who);
        if (head[0] == 0 && want_cfg) {
            int kind = checkpoint_config_text(path, yaml);
            if (kind < 0) head[0] = mv_fail_context("the configuration saved in the checkpoint (give FILE to use another)");
            else if (kind > 0) head[1] = (int64_t)strlen(*yaml);
        }
    }
    if (comm->world > 1) {
        MV_TRY(comm_bcast_bytes(comm, head, sizeof head));
        if (head[0] < 0) return comm->rank == 0 ? -1 : mv_fail("rank 0 could not read --checkpoint %s", arg);
        MV_TRY(comm_bcast_bytes(comm, path, n));
        if (head[1] >= 0) {
            if (comm->rank != 0) *yaml = mv_calloc((size_t)head[1] + 1, 1);
            MV_TRY(comm_bcast_bytes(comm, *yaml, (size_t)head[1] + 1));
        }
    }
    return head[0] < 0 ? -1 : 0;
}

// True when one of the --set assigns `key`.
static bool sets_assign(int nsets, const char *const *sets, const char *key) {
    size_t n = strlen(key);
    for (int i = 0; i < nsets; i++)
        if (!strncmp(sets[i], key, n) && sets[i][n] == '=') return true;
    return false;
}

int inference_config(mv_config *cfg, const char *file, const char *ckpt, const char *yaml, int nsets,
                     const char *const *sets, bool say, const char *cmd) {
    // Evaluation and prediction never select a checkpoint, but the configuration check still
    // wants run.select_domain to name a data.val entry: a --set data.val that leaves the trained
    // run's selection domain out (evaluating on another split) resets it rather than fail.
    const char **all = mv_calloc((size_t)nsets + 2, sizeof(char *));
    memcpy(all, sets, sizeof(char *) * (size_t)nsets);
    int n = nsets;
    if (sets_assign(nsets, sets, "data.val") && !sets_assign(nsets, sets, "run.select_domain"))
        all[n++] = "run.select_domain=";
    int rc = 0;
    if (file) rc = config_load(cfg, file, n, all);
    else if (!yaml) {
        if (say)
            fprintf(stderr, "%s: configuration: the built-in default%s (%s is a plain weights file, with no saved "
                            "configuration); give FILE for the model and data it was trained with\n",
                    cmd, nsets ? " and --set" : "", ckpt);
        rc = config_load(cfg, NULL, n, all);
    } else {
        // The saved text alone first: an error of the --set is then not blamed on the checkpoint.
        char label[4200];
        snprintf(label, sizeof label, "%s: train/config_yaml", ckpt);
        rc = config_load_text(cfg, yaml, label, 0, NULL);
        if (rc == 0 && n) {
            snprintf(label, sizeof label, "--set on the configuration saved in %s", ckpt);
            rc = config_load_text(cfg, yaml, label, n, all);
        }
        if (rc == 0 && say)
            fprintf(stderr, "%s: configuration from the checkpoint (%s)%s; give FILE to use another\n", cmd, ckpt,
                    nsets ? " with --set on top" : "");
    }
    free(all);
    return rc;
}

void inference_explain_rotated(const char *arg, const char *path) {
    if (!arg || !path[0] || !strcmp(arg, path) || access(path, F_OK) == 0) return;
    char msg[MV_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", mv_last_error());
    mv_fail("%s (%s was removed while it was being read: the run in %s rotates its checkpoints, run.keep_ckpts; "
            "run again, or give a checkpoint file such as best.h5)", msg, path, arg);
}
