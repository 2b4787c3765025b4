// The checkpoint and configuration of eval and predict (see inference_setup.h).
#include "launch/inference_setup.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int inference_config(mv_config *cfg, const char *file, const char *ckpt, const char *yaml, int nsets,
                     const char *const *sets, bool say, const char *cmd) {
    if (file) return config_load(cfg, file, nsets, sets);
    if (!yaml) {
        if (say)
            fprintf(stderr, "%s: configuration: the built-in default%s (%s is a plain weights file, with no saved "
                            "configuration); give FILE for the model and data it was trained with\n",
                    cmd, nsets ? " and --set" : "", ckpt);
        return config_load(cfg, NULL, nsets, sets);
    }
    char label[4200];
    snprintf(label, sizeof label, "%s: train/config_yaml", ckpt);
    MV_TRY(config_load_text(cfg, yaml, label, nsets, sets));
    if (say)
        fprintf(stderr, "%s: configuration from the checkpoint (%s)%s; give FILE to use another\n", cmd, ckpt,
                nsets ? " with --set on top" : "");
    return 0;
}
