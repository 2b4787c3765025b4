// Training checkpoints: one HDF5 file holding the weights (at the root, by state_dict name,
// exactly as weights_save writes them, so any checkpoint is also a plain weights file) and,
// under train/, everything a resumed run needs to continue as if it had never stopped:
// AdamW moments, step and schedule iteration, the seed, the loader cursor, world size and
// batch, best-metric bookkeeping and the resolved configuration as YAML.
//
// Files are written to PATH.tmp, flushed (fsync) and renamed, so a crash never leaves a
// half-written file under a checkpoint's name. A run directory holds iter_<step>.h5 files,
// best.h5 and `latest` (a text file naming the newest complete checkpoint).
// docs/checkpoints.md describes the layout and the resume rules.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/config.h"
#include "core/optimizer.h"
#include "core/params.h"
#include "data/loader.h"

// train/format; files of a newer format are refused. 2: the checksums (train/checksum/*) are
// required, so that a damaged name cannot pass a file off as one from before them; 1: files
// written before they existed, read with whatever checksums they have.
#define MV_CKPT_FORMAT 2
#define MV_CKPT_NAME_MAX 64

// What a resumed run needs besides tensors and configuration.
typedef struct {
    int64_t step;                 // optimizer updates done (saved from o->step when o is given)
    int64_t iter;                 // schedule iteration the next update trains with
    uint64_t seed;                // run seed: keys initialisation, mask noise, dropout, drop-path
    mv_loader_cursor cursor;      // where the training stream stands (its next global step)
    int32_t world;                // ranks when saved
    int32_t batch_per_rank;       // images per rank and step when saved
    char best_name[MV_CKPT_NAME_MAX];   // metric that picks best.h5, e.g. "clear/mIoU" ("": none yet)
    double best_value;            // its best value so far (NaN: none yet)
    int64_t best_step;            // step where it was reached (-1: none yet)
    // 1: the evaluation due at `iter` did not complete (its data failed, best.h5 could not be
    // written): the checkpoint was written so that the training is not lost, and a resume runs
    // that evaluation before its first step. Stored as train/eval_pending only when set, so
    // ordinary checkpoints are unchanged; outside the state checksum (a damaged flag costs one
    // extra evaluation at most).
    int32_t eval_pending;
} mv_train_state;

// Zeroes st, with best_value NaN and best_step -1.
void checkpoint_state_init(mv_train_state *st);

// Writes p (parameters and buffers), o's moments and step (o may be NULL: no optimizer state,
// such a file cannot be resumed from), st and cfg to `path` atomically.
int checkpoint_save(const char *path, const mv_params *p, const mv_optimizer *o, const mv_train_state *st,
                    const mv_config *cfg);

// Loads a checkpoint into a registry built for the same model. Every registered tensor must
// be in the file with the same shape and the file may hold no other weights (errors name the
// key); checksums catch corrupt data. o (moments and o->step), st and saved_cfg may be NULL
// when not wanted. On failure the tensors' contents are unspecified; st and saved_cfg are
// left unchanged.
int checkpoint_load(const char *path, mv_params *p, mv_optimizer *o, mv_train_state *st, mv_config *saved_cfg);

// Reads only st and the saved configuration (either may be NULL): what a resume checks
// before it builds the model.
int checkpoint_read_meta(const char *path, mv_train_state *st, mv_config *saved_cfg);
// The saved configuration text (train/config_yaml, the text of the run's config.yaml) of a
// training checkpoint, in a malloc'ed string *yaml (the caller frees it): 1; 0 with *yaml NULL
// for a plain weights file (no train/ group, nothing saved); -1 with a message when the file
// cannot be read or is a damaged or newer checkpoint. For eval and predict without FILE.
int checkpoint_config_text(const char *path, char **yaml);
// Reads every tensor of the file and compares it with the stored checksums, without a model
// (what --resume auto checks before taking a file). 0, or -1 naming the file.
int checkpoint_verify(const char *path);
// For files loaded as weights (eval, predict): a training checkpoint's weights against their
// stored checksum; a plain weights file (no train/ checksum) passes. 0, or -1 naming the file.
int checkpoint_verify_weights(const char *path);

// Whether a run configured as `now` may resume a checkpoint saved with `saved`.
// Returns 0 (nothing that matters differs), 1 (allowed; `why` lists the differences that make
// the run differ from an uninterrupted one) or -1 (refused; `why` names the key and both
// values, and the same text is the error message). Refused: any model.* / mask.* key except
// model.preset, optim.rules, run.seed, and the number or repeat of data.train sources.
// Warned: other data.*, optim.* and schedule.* keys, data.train names and paths.
// Not compared: data.batch_per_rank (see checkpoint_resume_check), data.workers, data.val,
// run.* other than run.seed. `why` may be NULL when n is 0.
int checkpoint_compatible(const mv_config *saved, const mv_config *now, char *why, size_t n);

// For eval and predict: the keys that change the evaluation forward without changing a tensor's
// shape (mask.mode, mask.layout; shape keys already fail at loading) in a training checkpoint
// against `now`. Each difference is a warning line `<cmd>: warning: ...` on `report`; returns
// their number. A plain weights file has no saved configuration: 0.
int checkpoint_warn_eval_config(const char *path, const mv_config *now, FILE *report, const char *cmd);

// checkpoint_compatible plus the world-size rule: any world size resumes exactly when
// now->data.batch_per_rank * world equals the saved global batch (with mask.ratio_sync=false
// another world size warns: the ratio term is per rank, so it changes); another global batch is
// allowed with a warning (the stream continues at the same sample, see
// checkpoint_resume_cursor, and the schedule at the same iteration). Same return values.
int checkpoint_resume_check(const mv_train_state *st, const mv_config *saved, const mv_config *now, int world,
                            char *why, size_t n);

// The loader cursor to resume with under global batch `global_batch`: the saved one when the
// global batch is unchanged, otherwise the first step of the new global batch that starts at
// or after the saved stream position (at most global_batch - 1 samples are skipped).
void checkpoint_resume_cursor(mv_loader_cursor *out, const mv_train_state *st, int global_batch);

// DIR/iter_<step>.h5 into out; -1 if it does not fit in n bytes.
int checkpoint_iter_path(char *out, size_t n, const char *dir, int64_t step);

// Writes DIR/latest (one line: the file name `file` without directory) atomically.
int checkpoint_set_latest(const char *dir, const char *file);

// Deletes all but the `keep` newest (by step) DIR/iter_<step>.h5 files (keep <= 0: keep all),
// never the one `latest` names and never best.h5; files at higher steps than the one `latest`
// names (a course a rewind left) are neither counted nor deleted. Also removes leftover *.tmp files of
// checkpoints and `latest` and *.tmp.<pid> files of a copy whose process is gone (debris of a
// crash). Returns the number of files deleted, or -1.
int checkpoint_rotate(const char *dir, int keep);

// The bare file name DIR/latest holds ("" when it is missing, unreadable or not a bare name);
// nothing is checked about that file.
void checkpoint_latest_name(const char *dir, char *name, size_t n);
// The step of a checkpoint file called exactly iter_<digits>.h5, or -1.
int64_t checkpoint_iter_step(const char *name);
// The checkpoint that a path given for one (eval/predict --checkpoint, train --resume) means:
// ARG itself, or, when ARG is a run folder or the `latest` file in one, the checkpoint that
// `latest` names in that folder (see checkpoint_latest_name); then `who` (when not NULL: the
// command and option, "maskvim eval: --checkpoint") says on stderr which file it took. 0, or -1
// with a message (no `latest`, or the file it names unreadable).
int checkpoint_resolve(char *out, size_t n, const char *arg, const char *who);
// For `--resume auto`: the newest complete checkpoint in DIR. Tries the file `latest` names,
// then the iter_<step>.h5 files from the highest step down (only those below the step of the
// iter_<step>.h5 `latest` names, when it names one: the higher ones are a course a rewind
// left), and takes the first that is whole (checkpoint_verify; *.tmp files are never considered). Returns 1 with its path in `path`, 0
// when DIR has no checkpoint (or does not exist), -1 on an error: DIR cannot be listed, it
// holds checkpoints and none of them is whole (the message names each file and its fault;
// starting over there would discard the run), or a candidate met on the way is locked by another
// process (core/h5util.h: not damaged, so it is not passed over for an older one).
// (The product calls checkpoint_find_latest_report; this shorter form stays for callers that need
// no account of what was passed over: docs/checkpoints.md's example and the checkpoint tests.)
int checkpoint_find_latest(const char *dir, char *path, size_t n);
// The same, and `skipped` (ns bytes; may be NULL when ns is 0) receives what was passed over on
// the way: "PATH: reason; ..." for each damaged newer file, a `latest` naming a missing one and
// one that names no file of DIR (empty, a path, a *.tmp: what it held, non-text bytes as '?')
// ("" when nothing was), the higher checkpoints not taken, and, when none is found, the
// unfinished copies of an adoption (iter_<step>.h5.tmp.<pid>), for the caller to warn about.
int checkpoint_find_latest_report(const char *dir, char *path, size_t n, char *skipped, size_t ns);

// For a resume from PATH (given, or the one `--resume auto` found): makes PATH (a checkpoint
// at optimizer step `step`) the run's newest in DIR, so that `--resume auto` after a crash
// before the first new checkpoint continues from it, not from a later checkpoint of the
// abandoned course (a rewind) or from scratch (PATH in another folder). Nothing when `latest`
// already names PATH; `latest` is pointed at PATH when PATH is DIR/iter_<step>.h5; otherwise
// PATH is copied there first (atomically; it replaces a file of that name). Returns 0 (nothing
// done), 1 (the adopted path in `adopted`) or -1.
int checkpoint_adopt(const char *dir, const char *path, int64_t step, char *adopted, size_t n);

// For a resume from PATH into DIR: makes DIR/best.h5 what an uninterrupted run of this course
// would have there. It stays when it is the checkpoint st's best bookkeeping names (same step,
// best metric and value), or when PATH is the checkpoint DIR's `latest` names and best.h5 is
// newer (written after PATH on the same course: the resumed run redoes that evaluation), or of
// PATH's step with PATH's evaluation pending (written by that evaluation before it failed).
// Otherwise, with a best recorded, the recorded one is copied there from PATH's folder's best.h5
// or PATH itself (atomically, replacing a best.h5 of another course); when neither is it, st's
// best bookkeeping is reset (best_step -1) so that the next evaluation writes best.h5. With no
// best recorded, a best.h5 there (another course's, e.g. before a rewind) is removed. A best.h5
// counts only when it is whole (checkpoint_verify, as --resume auto requires of iter_<step>.h5):
// one that does not read or fails its checksums is treated as absent. Returns what it did, an
// mv_best_adoption, or -1 (also when one of those files is locked by another process,
// core/h5util.h: it cannot be told whether it is the best). `why` (nw bytes; may be NULL when nw
// is 0) receives, with MV_BEST_RESET, what each best.h5 examined was instead ("PATH does not
// exist", its fault, "PATH is the checkpoint of step N"; "; " between), otherwise the faults of
// the damaged ones passed over ("" when none was), for the caller to warn about.
typedef enum {
    MV_BEST_KEPT = 0,      // nothing done: best.h5 is this course's (or absent with no best recorded)
    MV_BEST_COPIED = 1,    // the recorded best copied to DIR/best.h5; its source in `copied`
    MV_BEST_RESET = 2,     // the recorded best is nowhere: the bookkeeping reset (the caller warns)
    MV_BEST_REMOVED = 3,   // an earlier course's best.h5 removed (no best recorded)
} mv_best_adoption;
int checkpoint_adopt_best(const char *dir, const char *path, mv_train_state *st, char *copied, size_t n, char *why,
                          size_t nw);

// For a fresh start (no --resume) in DIR: when DIR holds an earlier run (any iter_<step>.h5,
// best.h5, `latest`, metrics.jsonl, init_weights.txt, status.json, corruptions.json or crash
// debris *.tmp of a checkpoint), moves those files and config.yaml into a new folder
// DIR/previous-<YYYYmmdd-HHMMSS> (local time; -2, -3, ... appended when that name exists), so
// that the new run neither mixes with it (rotation, `latest`, best.h5, the log) nor continues
// it after a crash (`--resume auto`). Nothing is deleted or copied: each file is renamed, `latest`
// first, so a crash half-way leaves every file either in DIR or in the new folder and `latest`
// never names a file that is gone. Other files (.train.lock, train.log, ...) stay. Returns the
// number of files moved (0: no earlier run, no folder made), with the folder's path in
// `moved_to` (may be NULL when n is 0), or -1.
int checkpoint_set_aside(const char *dir, char *moved_to, size_t n);

// The periodic save of a trainer: checkpoint_save to DIR/iter_<st->step>.h5, then
// checkpoint_set_latest and checkpoint_rotate(dir, keep). The written path goes to
// `saved` (may be NULL).
int checkpoint_save_iter(const char *dir, int keep, const mv_params *p, const mv_optimizer *o,
                         const mv_train_state *st, const mv_config *cfg, char *saved, size_t n);
