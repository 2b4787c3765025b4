// The run configuration: model, data, optimizer, schedule and run settings in one typed,
// fixed-size struct (no pointers: it can be copied, compared and stored in a checkpoint).
// Read from YAML (config_yaml.c, on the tree of yaml_tree.c) with `include:` bases and
// `--set key=value` overrides, validated, and written back as YAML that reads to the identical
// struct.
// docs/config.md lists every key with its type, default and range.
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include "core/config_keys.h"
#include "core/model_config.h"

#define MV_MAX_SOURCES 16   // data.train / data.val entries
#define MV_MAX_RULES 16     // optim.rules entries
#define MV_NAME_MAX 32      // domain names, select_domain
#define MV_PATH_MAX 256     // paths
#define MV_MATCH_MAX 64     // optim rule substrings

// One dataset split: a folder of HDF5 shards with its manifest, or `synthetic:DOMAIN` for
// a built-in synthetic domain (data/synth.h: clear, dusk, fog, rain, painted) drawn from
// the data.synthetic settings.
typedef struct {
    char name[MV_NAME_MAX];   // domain name used in logs, metrics and run.select_domain
    char path[MV_PATH_MAX];
    int repeat;               // training: times each sample appears per epoch (mixing weight)
} mv_source;

// How evaluation and prediction run the network over an image (mmseg's test_cfg mode).
typedef enum { MV_TEST_WHOLE = 0, MV_TEST_SLIDE = 1 } mv_test_mode;

typedef struct {
    int num_train, num_val;
    mv_source train[MV_MAX_SOURCES];   // training sources (mixed)
    mv_source val[MV_MAX_SOURCES];     // evaluation sets (source domain val and targets)
    int batch_per_rank;
    int workers;                       // loader threads per rank
    int scale[2];                      // (long, short) side: the training rescale's reference
                                       // scale and the size test images are resized to fit
    float ratio_range[2];              // random rescale ratio range
    float cat_max_ratio;               // random crop: max share of one class
    float flip_prob;
    bool photometric;                  // photometric distortion on/off
    mv_test_mode test_mode;            // whole image, or sliding windows whose logits are averaged
    int test_crop[2];                  // (h, w) of a window; 0: model.crop
    int test_stride[2];                // (h, w) between windows; 0: two thirds of the window
    struct {
        int train_count, val_count;    // images per domain and split
        int size[2];                   // (h, w)
        int seed;
    } synthetic;
} mv_data_config;

// Parameters whose name contains `match` get lr * lr_mult and weight_decay * decay_mult.
typedef struct {
    char match[MV_MATCH_MAX];
    float lr_mult, decay_mult;
} mv_optim_rule;

typedef struct {
    double lr;
    double betas[2];
    double eps;
    double weight_decay;
    int num_rules;
    mv_optim_rule rules[MV_MAX_RULES];
} mv_optim_config;

// mmengine's LinearLR (iterations [0, warmup_iters)) chained with PolyLR
// ([warmup_iters, max_iters)); see schedule.h.
typedef struct {
    int warmup_iters;
    double warmup_start;   // LinearLR start_factor
    int max_iters;
    double power;
    double eta_min;        // absolute floor of the learning rate (mmengine's eta_min)
} mv_schedule_config;

typedef enum { MV_DEVICE_AUTO = 0, MV_DEVICE_CPU = 1, MV_DEVICE_CUDA = 2 } mv_device;
// GEMM precision of the GPU model (the CPU always computes in fp32). Same order and meaning as
// kernels/cuda/ops_cuda.h's mv_cuda_precision.
typedef enum { MV_PRECISION_FP32 = 0, MV_PRECISION_TF32 = 1, MV_PRECISION_BF16 = 2 } mv_precision;
typedef enum { MV_METRIC_MIOU = 0, MV_METRIC_MACC = 1, MV_METRIC_AACC = 2 } mv_metric;

typedef struct {
    mv_device device;
    mv_precision precision;   // GEMMs on the GPU: fp32, tf32 or bf16 (fp32 master weights and scan state)
    double bucket_mb;         // gradient all-reduce buckets (MiB), several ranks, MPI and NCCL alike
    double first_bucket_mb;   // the first bucket (the last layers'), smaller so that it starts early
    int seed;
    char init_weights[MV_PATH_MAX];          // weights a new run starts from ("" = the seeded initialisation)
    char work_dir[MV_PATH_MAX];
    int log_every, ckpt_every, eval_every;   // iterations; 0 = never (a final one is still made)
    int keep_ckpts;                          // periodic checkpoints kept; 0 = keep all
    mv_metric select_metric;                 // the best checkpoint maximises this metric ...
    char select_domain[MV_NAME_MAX];         // ... on this data.val entry ("" = the first)
} mv_run_config;

typedef struct {
    mv_model_config model;   // keys model.* and mask.*
    mv_data_config data;
    mv_optim_config optim;
    mv_schedule_config schedule;
    mv_run_config run;
} mv_config;

// The built-in default: maskvim-nano on the synthetic domains, the authors' optimizer and
// schedule (docs/math.md section 6).
void config_defaults(mv_config *cfg);
// Defaults, then the YAML file `path` (NULL: none) with its includes, then each "key=value"
// of `sets` in order, then validation. Errors name FILE:LINE:COLUMN (or the --set) and key.
int config_load(mv_config *cfg, const char *path, int nsets, const char *const *sets);
// config_load with the YAML text `yaml` in place of a file (a checkpoint's saved configuration);
// `label` stands for the file in messages (e.g. "runs/x/iter_6.h5: train/config_yaml").
int config_load_text(mv_config *cfg, const char *yaml, const char *label, int nsets, const char *const *sets);
// Applies one "key=value" (value in YAML syntax: `0.5`, `[0.9, 0.7, 0.5]`, `a,b`) to an
// already resolved configuration and validates the result; cfg is unchanged on error.
// "model.preset=NAME" starts the model and mask keys over from that preset.
int config_set(mv_config *cfg, const char *assignment);
// Range and consistency checks (also runs model_config_validate).
int config_validate(const mv_config *cfg);
// The whole configuration as YAML with every key explicit; reads back to an equal struct.
int config_write_yaml(FILE *f, const mv_config *cfg);
// The same text in a malloc'ed string (the caller frees it), or NULL with the error set.
char *config_to_yaml(const mv_config *cfg);
// config_write_yaml to `path` atomically (core/fs.h's mv_atomic_file: temporary `path`.tmp.<pid>,
// fsync, rename; the temporaries of writers that died before their rename are removed first).
int config_save(const char *path, const mv_config *cfg);
bool config_equal(const mv_config *a, const mv_config *b);
// The first key in which a and b differ (model and mask keys first, in table order; then the
// data.train / data.val source lists and optim.rules as a whole), with both values formatted as
// in the YAML; false when config_equal. key, va and vb hold `cap` bytes each.
bool config_first_difference(const mv_config *a, const mv_config *b, char *key, char *va, char *vb, size_t cap);
// The data.val entry called `name` ("" = the first), or NULL.
const mv_source *config_find_val(const mv_config *cfg, const char *name);

// Every key as one line "name  value  # what it takes: what it does" (`maskvim config --keys`).
int config_write_key_reference(FILE *f, const mv_config *cfg);
// The keys of mv_config outside the model (data.*, optim.*, schedule.*, run.* scalars;
// the lists data.train, data.val and optim.rules are handled by name).
const mv_key *config_keys(int *n);
// The model.* / mask.* keys (model_config_set.c), their range checks and comparison.
const mv_key *model_config_keys(int *n);
int model_config_check(const mv_model_config *cfg);
bool model_config_equal(const mv_model_config *a, const mv_model_config *b);
