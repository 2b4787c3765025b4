// What `maskvim eval` and `maskvim predict` share before they run the model: the checkpoint every
// rank loads, and the configuration it runs with (FILE, or without FILE the one saved in a
// training checkpoint, or the built-in default for a plain weights file; --set on top).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "core/config.h"
#include "dist/comm.h"

// Rank 0 resolves --checkpoint ARG (a run folder or its `latest`: the checkpoint `latest` names;
// `who`, when not NULL, says on stderr which) and, when `want_cfg` (no FILE), reads the
// configuration saved in it; every rank receives the path (n bytes) and the text, so that all of
// them load one file and one configuration, even while a training moves `latest`. *yaml: the
// saved text (malloc'ed; the caller frees it), or NULL for a plain weights file. 0, or -1 (on a
// rank other than 0 the message only says that rank 0 failed).
int inference_checkpoint(mv_comm *comm, const char *arg, const char *who, bool want_cfg, char *path, size_t n,
                         char **yaml);
// The configuration: FILE with the --set on top; without FILE, `yaml` (the text saved in
// checkpoint `ckpt`) with the --set on top, or the built-in default when yaml is NULL. With
// `say`, one line on stderr, prefixed by `cmd`, says which.
int inference_config(mv_config *cfg, const char *file, const char *ckpt, const char *yaml, int nsets,
                     const char *const *sets, bool say, const char *cmd);
// After a failure: when `path` is the checkpoint a run folder's `latest` named (it differs from
// --checkpoint `arg`) and it is gone, the run rotated its checkpoints (run.keep_ckpts) while it
// was being read; the message says so rather than leaving a bare "missing or unreadable".
void inference_explain_rotated(const char *arg, const char *path);
