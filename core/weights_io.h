// Weights files: one float32 HDF5 dataset per state_dict key (parameters and BatchNorm
// running statistics), in PyTorch's shapes, so weights move both ways between maskvim and PyTorch.
#pragma once
#include "core/params.h"
#include <stdbool.h>
#include <stdio.h>

// Writes all parameters and buffers atomically (temporary file, then rename).
int weights_save(const mv_params *p, const char *path);
// Loads every registered tensor found in the file. A shape mismatch is an error naming the key.
// Missing and unexpected keys are counted and, when `report` is non-NULL, listed there.
int weights_load(mv_params *p, const char *path, FILE *report, int *missing, int *unexpected);
// What a load found: how many of the model's tensors the file lacks and how many of its tensors
// the model lacks, the first name of each ("" when none) and, when `loaded` points to p->count
// flags, which tensors the file gave; with keep_names set, every unexpected name
// (unexpected_names, freed by weights_found_free).
typedef struct {
    int missing, unexpected;
    char first_missing[256], first_unexpected[256];
    bool *loaded;
    bool keep_names;
    char **unexpected_names;
} mv_weights_found;
void weights_found_free(mv_weights_found *found);
// weights_load with everything it found in *found (found->loaded is the caller's, or NULL).
int weights_load_found(mv_params *p, const char *path, FILE *report, mv_weights_found *found);
// weights_load for inference: every tensor of the model must be in the file (missing ones are an
// error naming the first, with the first unexpected name as a hint); extra tensors are counted.
int weights_load_all(mv_params *p, const char *path, int *unexpected);
// weights_load_all for `maskvim eval` and `predict`: tensors the model lacks are ignored with a
// warning on `warn` (when not NULL), prefixed by `who`, naming the first and the count.
int weights_load_for_inference(mv_params *p, const char *path, FILE *warn, const char *who);
// A new run's starting point (run.init_weights): weights_load over the seeded initialisation,
// after checking a training checkpoint's checksum. Tensors the file lacks keep their
// initialisation (an ImageNet encoder has no decoder, output norms or token masks) and tensors
// the model lacks are ignored, as PyTorch's load_state_dict(strict=False); a shape mismatch,
// or a file that gives the model nothing, is an error. The missing and unused names go to
// `report_path` (NULL: nowhere) and a one-line summary with counts per module to `log`.
int weights_load_init(mv_params *p, const char *path, const char *report_path, FILE *log);
