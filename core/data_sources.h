// Where a configured data source lives on disk. A source is a split folder of HDF5 shards,
// or `synthetic:DOMAIN`, a built-in synthetic domain that is written once as shards into a
// cache folder (datasets/synthetic/ under the working directory, or $MV_SYNTH_CACHE) keyed by seed, size and count, so that
// synthetic runs take exactly the same path through the loader as real datasets.
#pragma once
#include <stddef.h>
#include "core/config.h"
#include "data/loader.h"
#include "dist/comm.h"

// Resolves `src` for split "train" or "val" into a split folder in `out`. For synthetic
// sources rank 0 generates the split when it is missing or incomplete (a complete one is used
// without any write, so a finished cache may be read-only; writers are serialised by a lock
// file in the cache folder); all ranks then meet at a barrier. Returns 0, or -1 with a message
// naming the source. A stop request (core/stop_signal.h, while armed) ends the writing early,
// keeping its complete shards: -1 on every rank, and source_stop_signal() names the signal.
int source_resolve(char *out, size_t n, const mv_source *src, const char *split, const mv_config *cfg, mv_comm *comm);
// The signal that stopped the writing in the last source_resolve (the same on every rank), or
// 0: a caller that handles stop requests stops as asked instead of failing.
int source_stop_signal(void);

// Opens the split folder `path` of source `name` (`role`: "data.train" or "data.val"), and with
// num_classes > 0 checks that a model of that many classes can train on its labels: a split
// converted for more classes is refused up front rather than at the first batch holding such a
// label. (Evaluation takes such labels, as mmseg does: docs/metrics.md.) 0, or -1 with a message
// naming the source.
int source_check_split(const char *path, const char *role, const char *name, int num_classes);

// The loader configuration the run's data settings give, for `mode` on this rank of `comm`, over
// `sources` (n of them; the loader copies the list, not the paths): training takes
// data.batch_per_rank images per rank, cropped to model.crop with the training augmentation of
// data.* (scale, ratio range, cat_max_ratio, flip, photometric); test mode one image at a time,
// fitted to data.scale. The seed is run.seed, the threads data.workers; no rgb_hook.
void source_loader_config(mv_loader_config *lc, const mv_config *cfg, mv_loader_mode mode, const mv_comm *comm,
                          const mv_loader_source *sources, int n);

// Every rank reads its own copy of a split (the same path on every host), and a copy that holds
// other samples would go unnoticed: training would permute another epoch on that rank (the
// ranks' batches no longer one stream), an evaluation would sum confusion matrices of other
// images. Each rank passes what it opened of split `what` (a name for the message, e.g.
// "data.train clear (path)"): `have` false when it could not (its own error stands), else the
// sample count and manifest_fingerprint. Collective: every rank calls it. A rank whose values
// differ from rank 0's fails every rank with the first such rank and both values. 0 or -1.
int source_same_split_everywhere(mv_comm *comm, const char *what, bool have, int64_t count, uint64_t fingerprint);
