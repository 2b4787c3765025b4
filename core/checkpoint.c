// Checkpoint files in and out (see checkpoint.h, docs/checkpoints.md). Layout:
//   /<state_dict key>            float32, PyTorch shape: parameters and buffers (weights_save's layout)
//   /train/format                int64, MV_CKPT_FORMAT
//   /train/step, /train/iter     int64
//   /train/seed                  uint64
//   /train/cursor/{seed,step,epoch_size,global_batch}
//   /train/world, /train/batch_per_rank
//   /train/best/{name,value,step}
//   /train/eval_pending          int64 1, only when this iteration's evaluation did not complete
//   /train/adam_m/<key>, /train/adam_v/<key>   float32, shaped like the parameter (parameters only)
//   /train/checksum/{weights,moments}          uint64 (see tensor_hash)
//   /train/checksum/state        uint64: the scalars above, best/ and config_yaml (state_checksum)
//   /train/config_yaml           string: the resolved configuration (config_write_yaml)
#include "core/checkpoint.h"
#include "core/crash_point.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/h5util.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONFIG_YAML (16u << 20)   // sanity bound on the stored configuration text

void checkpoint_state_init(mv_train_state *st) {
    memset(st, 0, sizeof *st);
    st->best_value = NAN;
    st->best_step = -1;
}

// ---------------------------------------------------------------------------------------------
// Checksums. HDF5 stores raw data without checksums, so a flipped bit in a tensor would load
// silently; each tensor's float bits are hashed together with its name, and the per-tensor hashes
// are summed, so the result does not depend on the order tensors are registered in.

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t tensor_hash(uint64_t salt, const char *name, const float *x, size_t n) {
    const uint64_t P1 = 0x9e3779b185ebca87ULL, P2 = 0xc2b2ae3d27d4eb4fULL;
    uint64_t h = salt ^ 0xcbf29ce484222325ULL;
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
    // Four independent lanes so the multiplies of one chunk overlap.
    uint64_t lane[4] = {h, h ^ P1, h ^ P2, h ^ (P1 + P2)};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 4; j++) {
            uint64_t v;
            memcpy(&v, x + i + 2 * j, sizeof v);
            lane[j] = rotl64(lane[j] + v * P2, 31) * P1;
        }
    for (; i < n; i++) {
        uint32_t v;
        memcpy(&v, x + i, sizeof v);
        lane[0] = rotl64(lane[0] + v * P2, 31) * P1;
    }
    return fmix64(lane[0] ^ rotl64(lane[1], 7) ^ rotl64(lane[2], 12) ^ rotl64(lane[3], 18) ^ (uint64_t)n);
}

enum { SALT_WEIGHT = 1, SALT_M = 2, SALT_V = 3, SALT_STATE = 4 };

// The training state and configuration text as stored (step: the value written to train/step;
// best name: the stored string). A flipped bit there would resume at another iteration, with
// another Adam bias correction, data position or configuration, without touching a tensor.
static uint64_t state_checksum(int64_t format, int64_t step, const mv_train_state *st, const char *best_name,
                               const char *yaml) {
    int64_t v[11] = {format, step, st->iter, (int64_t)st->seed, (int64_t)st->cursor.seed, st->cursor.step,
                     st->cursor.epoch_size, st->cursor.global_batch, st->world, st->batch_per_rank, st->best_step};
    uint64_t h = tensor_hash(SALT_STATE, "train/state", (const float *)v, sizeof(v) / (sizeof(float)));
    h += tensor_hash(SALT_STATE, "train/best/value", (const float *)&st->best_value, sizeof(double) / sizeof(float));
    size_t nb = strlen(best_name), ny = strlen(yaml);
    // Strings: the hash reads whole 4-byte words, so hash a zero-padded copy.
    size_t cap = (nb > ny ? nb : ny) / 4 + 1;
    float *buf = mv_calloc(cap, sizeof(float));
    memcpy(buf, best_name, nb);
    h += tensor_hash(SALT_STATE, "train/best/name", buf, nb / 4 + 1) ^ (uint64_t)nb;
    memset(buf, 0, cap * sizeof(float));
    memcpy(buf, yaml, ny);
    h += tensor_hash(SALT_STATE, "train/config_yaml", buf, ny / 4 + 1) ^ ((uint64_t)ny << 1);
    free(buf);
    return h;
}

static uint64_t weights_checksum(const mv_params *p) {
    uint64_t sum = 0;
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        sum += tensor_hash(SALT_WEIGHT, q->name, params_host(p, q), q->numel);
    }
    return sum;
}

static uint64_t moments_checksum(const mv_params *p, const mv_optimizer *o) {
    uint64_t sum = 0;
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        if (q->is_buffer) continue;
        sum += tensor_hash(SALT_M, q->name, o->m + q->offset, q->numel);
        sum += tensor_hash(SALT_V, q->name, o->v + q->offset, q->numel);
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------
// Small typed scalars and strings (h5util covers float tensors and double scalars).

static int write_scalar_typed(hid_t f, const char *name, hid_t file_type, hid_t mem_type, const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(f, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds >= 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, value) >= 0 ? 0 : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    return rc ? mv_fail("cannot write dataset '%s'", name) : 0;
}

static int write_i64(hid_t f, const char *name, int64_t v) {
    return write_scalar_typed(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}
static int write_u64(hid_t f, const char *name, uint64_t v) {
    return write_scalar_typed(f, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}
static int write_f64(hid_t f, const char *name, double v) {
    return write_scalar_typed(f, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

// A fixed-length, NUL-terminated string dataset (h5py reads it as bytes).
static int write_string(hid_t f, const char *name, const char *s) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(s) + 1);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    int rc = write_scalar_typed(f, name, type, type, s);
    H5Tclose(type);
    return rc;
}

// Opens scalar (or one-element) dataset `name`; -1 naming it when missing or not a scalar.
static hid_t open_scalar(hid_t f, const char *path, const char *name) {
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) { mv_fail("%s: no '%s' (not a complete checkpoint)", path, name); return -1; }
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) { mv_fail("%s: '%s' is not a dataset", path, name); return -1; }
    hid_t space = H5Dget_space(ds);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (npoints != 1) {
        H5Dclose(ds);
        mv_fail("%s: '%s' should hold one value", path, name);
        return -1;
    }
    // A variable-length string (h5py's default for str) stores a reference, not its text: its
    // storage is checked as such by nobody here, and it is named for what it is.
    hid_t type = H5Dget_type(ds);
    bool vlen = type >= 0 && H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0;
    if (type >= 0) H5Tclose(type);
    if (vlen) {
        H5Dclose(ds);
        mv_fail("%s: '%s' is a variable-length string (as h5py writes a str); a checkpoint stores a fixed-length "
                "one (np.bytes_ in h5py)", path, name);
        return -1;
    }
    if (!h5_storage_ok(ds, 1)) {
        H5Dclose(ds);
        mv_fail("%s: '%s' has damaged storage information (corrupt)", path, name);
        return -1;
    }
    return ds;
}

static int read_scalar_typed(hid_t f, const char *path, const char *name, hid_t mem_type, void *out) {
    hid_t ds = open_scalar(f, path, name);
    if (ds < 0) return -1;
    herr_t e = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(ds);
    return e < 0 ? mv_fail("%s: cannot read '%s' (corrupt or of the wrong type)", path, name) : 0;
}

static int read_i64(hid_t f, const char *path, const char *name, int64_t *out) {
    return read_scalar_typed(f, path, name, H5T_NATIVE_INT64, out);
}
static int read_u64(hid_t f, const char *path, const char *name, uint64_t *out) {
    return read_scalar_typed(f, path, name, H5T_NATIVE_UINT64, out);
}
static int read_f64(hid_t f, const char *path, const char *name, double *out) {
    return read_scalar_typed(f, path, name, H5T_NATIVE_DOUBLE, out);
}

// Reads a fixed-length string dataset into a malloc'd, NUL-terminated buffer.
static int read_string(hid_t f, const char *path, const char *name, char **out) {
    hid_t ds = open_scalar(f, path, name);
    if (ds < 0) return -1;
    hid_t type = H5Dget_type(ds);
    int rc = 0;
    if (type < 0 || H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0) {
        rc = mv_fail("%s: '%s' is not a fixed-length string", path, name);
    } else {
        size_t size = H5Tget_size(type);
        if (size == 0 || size > MAX_CONFIG_YAML) {
            rc = mv_fail("%s: '%s' has an implausible size (%zu bytes)", path, name, size);
        } else {
            hid_t mem = H5Tcopy(H5T_C_S1);
            H5Tset_size(mem, size + 1);   // room for a terminator whatever the file's padding
            H5Tset_strpad(mem, H5T_STR_NULLTERM);
            char *buf = mv_calloc(size + 1, 1);
            if (H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
                free(buf);
                rc = mv_fail("%s: cannot read '%s' (corrupt)", path, name);
            } else {
                buf[size] = '\0';
                *out = buf;
            }
            H5Tclose(mem);
        }
    }
    if (type >= 0) H5Tclose(type);
    H5Dclose(ds);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Configuration <-> YAML text (config_to_yaml writes it).

// The stored text read as a configuration file would be, its messages naming where it is.
static int config_from_yaml(mv_config *out, const char *yaml, const char *path) {
    char label[4200];
    snprintf(label, sizeof label, "%s: train/config_yaml", path);
    return config_load_text(out, yaml, label, 0, NULL);
}

// ---------------------------------------------------------------------------------------------
// Save.

static int make_group(hid_t f, const char *name) {
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return mv_fail("cannot create group '%s'", name);
    H5Gclose(g);
    return 0;
}

static int write_contents(hid_t f, const mv_params *p, const mv_optimizer *o, const mv_train_state *st,
                          const char *yaml) {
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        MV_TRY(h5_write_floats(f, q->name, params_host(p, q), q->ndim, q->shape));
    }
    static const char *const GROUPS[] = {"train", "train/cursor", "train/best", "train/checksum"};
    for (size_t i = 0; i < sizeof GROUPS / sizeof GROUPS[0]; i++) MV_TRY(make_group(f, GROUPS[i]));
    if (o) {
        MV_TRY(make_group(f, "train/adam_m"));
        MV_TRY(make_group(f, "train/adam_v"));
        char name[sizeof p->items[0].name + 32];
        for (int i = 0; i < p->count; i++) {
            const mv_param *q = &p->items[i];
            if (q->is_buffer) continue;
            snprintf(name, sizeof name, "train/adam_m/%s", q->name);
            MV_TRY(h5_write_floats(f, name, o->m + q->offset, q->ndim, q->shape));
            snprintf(name, sizeof name, "train/adam_v/%s", q->name);
            MV_TRY(h5_write_floats(f, name, o->v + q->offset, q->ndim, q->shape));
        }
        MV_TRY(write_u64(f, "train/checksum/moments", moments_checksum(p, o)));
    }
    MV_TRY(write_u64(f, "train/checksum/weights", weights_checksum(p)));
    MV_TRY(write_i64(f, "train/format", MV_CKPT_FORMAT));
    MV_TRY(write_i64(f, "train/step", o ? (int64_t)o->step : st->step));
    MV_TRY(write_i64(f, "train/iter", st->iter));
    MV_TRY(write_u64(f, "train/seed", st->seed));
    MV_TRY(write_u64(f, "train/cursor/seed", st->cursor.seed));
    MV_TRY(write_i64(f, "train/cursor/step", st->cursor.step));
    MV_TRY(write_i64(f, "train/cursor/epoch_size", st->cursor.epoch_size));
    MV_TRY(write_i64(f, "train/cursor/global_batch", st->cursor.global_batch));
    MV_TRY(write_i64(f, "train/world", st->world));
    MV_TRY(write_i64(f, "train/batch_per_rank", st->batch_per_rank));
    char best[MV_CKPT_NAME_MAX];
    snprintf(best, sizeof best, "%.*s", (int)sizeof best - 1, st->best_name);
    MV_TRY(write_string(f, "train/best/name", best));
    MV_TRY(write_f64(f, "train/best/value", st->best_value));
    MV_TRY(write_i64(f, "train/best/step", st->best_step));
    MV_TRY(write_string(f, "train/config_yaml", yaml));
    if (st->eval_pending) MV_TRY(write_i64(f, "train/eval_pending", 1));
    MV_TRY(write_u64(f, "train/checksum/state",
                     state_checksum(MV_CKPT_FORMAT, o ? (int64_t)o->step : st->step, st, best, yaml)));
    return 0;
}

// fsync of the directory makes the rename itself durable.
static void sync_parent_dir(const char *path) {
    char dir[4096];
    mv_dir_of(dir, sizeof dir, path);
    mv_sync_dir(dir);
}

// Refuses to start a checkpoint the file system has no room for: a write that fails half-way
// inside HDF5 leaves the library holding a file it cannot close. The estimate is the tensor
// data plus 1 KiB of HDF5 structure per dataset and 64 KiB besides (measured: about 0.6 KiB
// per dataset and 10 KiB). Where free space cannot be read, nothing is checked; a disk that fills
// up during the write is still an error (below), only without the advance notice.
static int check_free_space(const char *path, const mv_params *p, const mv_optimizer *o, size_t yaml_len) {
    char dir[4096];
    mv_dir_of(dir, sizeof dir, path);
    double datasets = (double)p->count * (o ? 3 : 1) + 32;
    double need = 4.0 * ((double)p->num_params + (double)p->num_buffers) + (o ? 8.0 * (double)p->num_params : 0) +
                  (double)yaml_len + 1024.0 * datasets + 65536.0;
    return mv_check_free_space(dir, need, path, "the checkpoint");
}

int checkpoint_save(const char *path, const mv_params *p, const mv_optimizer *o, const mv_train_state *st,
                    const mv_config *cfg) {
    MV_CHECK(path && p && st && cfg, "checkpoint_save: path, params, state and config are required");
    // Loading refuses non-finite weights (load_tensors): such a file could never be resumed, and
    // as the newest checkpoint it would rotate finite ones away.
    size_t bad;
    const mv_param *nf = params_first_non_finite(p, &bad);
    if (nf)
        return mv_fail("%s: not written: '%s' holds a non-finite value (%g at element %zu): the training diverged",
                       path, nf->name, (double)params_host(p, nf)[bad], bad);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return mv_fail("%s: path too long", path);
    char *yaml = config_to_yaml(cfg);
    if (!yaml) return mv_fail_context("%s", path);
    if (check_free_space(path, p, o, strlen(yaml)) < 0) { free(yaml); return -1; }
    hid_t f = h5_create(tmp);
    if (f < 0) { free(yaml); return mv_fail_context("%s", path); }
    errno = 0;
    int rc = write_contents(f, p, o, st, yaml);
    int err = errno;
    free(yaml);
    if (H5Fclose(f) < 0 && rc == 0) {
        err = errno;
        rc = mv_fail("%s: cannot finish writing (disk full?)", tmp);
    }
    if (rc < 0) {
        remove(tmp);
        // HDF5's messages do not say why a write failed; the system's reason usually does.
        if (err == ENOSPC || err == EDQUOT || err == EIO || err == EFBIG)
            return mv_fail_context("%s: %s", path, strerror(err));
        return mv_fail_context("%s", path);
    }
    crash_point(MV_CRASH_BEFORE_RENAME, path);
    MV_TRY(h5_publish(tmp, path));
    sync_parent_dir(path);
    crash_point(MV_CRASH_AFTER_RENAME, path);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Load.

typedef struct { const mv_params *p; char bad[160]; } root_scan;

// Root links must be registered tensors, train/, or PyTorch's num_batches_tracked counters.
static herr_t scan_root(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group; (void)info;
    root_scan *s = data;
    if (!strcmp(name, "train")) return 0;
    const char *tail = strrchr(name, '.');
    if (tail && !strcmp(tail, ".num_batches_tracked")) return 0;
    if (params_find(s->p, name)) return 0;
    snprintf(s->bad, sizeof s->bad, "%s", name);
    return 1;   // stop at the first stranger
}

static void shape_text(char *out, size_t cap, int nd, const long *shape) {
    out[0] = '\0';
    for (int d = 0; d < nd; d++) snprintf(out + strlen(out), cap - strlen(out), "%s%ld", d ? "," : "", shape[d]);
}

// Dataset `name` exists and has q's shape; `what` says which copy (weights or a moment).
static int check_tensor(hid_t f, const char *path, const char *name, const mv_param *q, const char *what) {
    // A moment is saved with every parameter that is there (load_tensors checks the parameter
    // first): one missing is damage, not another model.
    bool moment = strncmp(name, "train/", 6) == 0;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return mv_fail(moment ? "%s: %s '%s' is missing, though the parameter is there (damaged file)"
                              : "%s: %s '%s' is missing (this model has it: the checkpoint is of another model)",
                       path, what, q->name);
    int nd;
    long shape[8];
    MV_TRY(h5_shape(f, path, name, &nd, shape));
    bool same = nd == q->ndim;
    for (int d = 0; same && d < nd; d++) same = shape[d] == q->shape[d];
    if (!same) {
        long want[4];
        for (int d = 0; d < q->ndim; d++) want[d] = q->shape[d];
        char got_s[128], want_s[128];
        shape_text(got_s, sizeof got_s, nd, shape);
        shape_text(want_s, sizeof want_s, q->ndim, want);
        return mv_fail("%s: %s '%s' has shape [%s], this model expects [%s]", path, what, q->name, got_s, want_s);
    }
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    bool stored = ds >= 0 && h5_storage_ok(ds, (uint64_t)q->numel);
    if (ds >= 0) H5Dclose(ds);
    if (!stored) return mv_fail("%s: %s '%s' has damaged storage information (corrupt)", path, what, q->name);
    return 0;
}

static int weights_damaged(const char *path) {
    return mv_fail("%s: the weights do not match their checksum (corrupt file)", path);
}

// Damaged moments next to weights that passed their checksum (both callers check the weights
// first): the run cannot be resumed exactly, but its weights are not lost, and the message says
// how to keep them rather than leaving the file looking useless.
static int moments_damaged(const char *path) {
    return mv_fail("%s: the optimizer moments do not match their checksum (corrupt file); its weights are intact: "
                   "--set run.init_weights=%s starts a new run from them (fresh AdamW moments and schedule)", path, path);
}

static int load_tensors(hid_t f, const char *path, mv_params *p, mv_optimizer *o) {
    root_scan scan = {p, ""};
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, scan_root, &scan) < 0)
        return mv_fail("%s: cannot list the file's datasets (corrupt)", path);
    if (scan.bad[0])
        return mv_fail("%s: '%s' is not a tensor of this model (the checkpoint is of another model)", path, scan.bad);
    if (o && H5Lexists(f, "train/adam_m", H5P_DEFAULT) <= 0)
        return mv_fail("%s: holds no optimizer state (train/adam_m: lost, or the file was saved without one); it cannot "
                       "be resumed, only loaded as weights", path);
    char name[sizeof p->items[0].name + 32];
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        MV_TRY(check_tensor(f, path, q->name, q, q->is_buffer ? "buffer" : "parameter"));
        if (!o || q->is_buffer) continue;
        snprintf(name, sizeof name, "train/adam_m/%s", q->name);
        MV_TRY(check_tensor(f, path, name, q, "first moment of"));
        snprintf(name, sizeof name, "train/adam_v/%s", q->name);
        MV_TRY(check_tensor(f, path, name, q, "second moment of"));
    }
    // Names and shapes agree: only now overwrite the caller's tensors.
    for (int i = 0; i < p->count; i++) {
        mv_param *q = &p->items[i];
        MV_TRY(h5_read_tensor(f, path, q->name, params_host(p, q), q->numel));
        MV_TRY(params_check_finite(p, q, path));
        if (!o || q->is_buffer) continue;
        snprintf(name, sizeof name, "train/adam_m/%s", q->name);
        MV_TRY(h5_read_tensor(f, path, name, o->m + q->offset, q->numel));
        snprintf(name, sizeof name, "train/adam_v/%s", q->name);
        MV_TRY(h5_read_tensor(f, path, name, o->v + q->offset, q->numel));
    }
    uint64_t want;
    MV_TRY(read_u64(f, path, "train/checksum/weights", &want));
    if (weights_checksum(p) != want) return weights_damaged(path);
    if (o) {
        MV_TRY(read_u64(f, path, "train/checksum/moments", &want));
        if (moments_checksum(p, o) != want)
            return moments_damaged(path);
    }
    return 0;
}

static int read_i32(hid_t f, const char *path, const char *name, int32_t *out) {
    int64_t v;
    MV_TRY(read_i64(f, path, name, &v));
    if (v < INT32_MIN || v > INT32_MAX) return mv_fail("%s: '%s' = %lld is out of range", path, name, (long long)v);
    *out = (int32_t)v;
    return 0;
}

static int read_state(hid_t f, const char *path, mv_train_state *st) {
    checkpoint_state_init(st);
    MV_TRY(read_i64(f, path, "train/step", &st->step));
    MV_TRY(read_i64(f, path, "train/iter", &st->iter));
    MV_TRY(read_u64(f, path, "train/seed", &st->seed));
    MV_TRY(read_u64(f, path, "train/cursor/seed", &st->cursor.seed));
    MV_TRY(read_i64(f, path, "train/cursor/step", &st->cursor.step));
    MV_TRY(read_i64(f, path, "train/cursor/epoch_size", &st->cursor.epoch_size));
    MV_TRY(read_i32(f, path, "train/cursor/global_batch", &st->cursor.global_batch));
    MV_TRY(read_i32(f, path, "train/world", &st->world));
    MV_TRY(read_i32(f, path, "train/batch_per_rank", &st->batch_per_rank));
    char *best = NULL;
    MV_TRY(read_string(f, path, "train/best/name", &best));
    snprintf(st->best_name, sizeof st->best_name, "%s", best);
    free(best);
    MV_TRY(read_f64(f, path, "train/best/value", &st->best_value));
    MV_TRY(read_i64(f, path, "train/best/step", &st->best_step));
    if (H5Lexists(f, "train/eval_pending", H5P_DEFAULT) > 0) {
        int64_t pending = 0;
        MV_TRY(read_i64(f, path, "train/eval_pending", &pending));
        st->eval_pending = pending != 0;
    }
    if (st->step < 0 || st->iter < 0 || st->cursor.step < 0 || st->world < 1 || st->batch_per_rank < 1)
        return mv_fail("%s: implausible training state (step %lld, iter %lld, cursor step %lld, world %d, batch %d)",
                       path, (long long)st->step, (long long)st->iter, (long long)st->cursor.step, st->world,
                       st->batch_per_rank);
    return 0;
}

// Whether checksum `name` (under train/checksum) is in the file; when it is not, a format-2 file
// is damaged (an error), and an older one simply predates it (false).
static int has_checksum(hid_t f, const char *path, int64_t format, const char *name, bool *has) {
    char full[64];
    snprintf(full, sizeof full, "train/checksum/%s", name);
    *has = H5Lexists(f, "train/checksum", H5P_DEFAULT) > 0 && H5Lexists(f, full, H5P_DEFAULT) > 0;
    if (!*has && format >= 2)
        return mv_fail("%s: no %s, which every checkpoint of format %lld has (damaged file)", path, full,
                       (long long)format);
    return 0;
}

// The stored training state and configuration text against train/checksum/state (files of format
// 1 written before it existed have none and are not checked).
static int check_state(hid_t f, const char *path, int64_t format) {
    bool has;
    MV_TRY(has_checksum(f, path, format, "state", &has));
    if (!has) return 0;
    uint64_t want;
    MV_TRY(read_u64(f, path, "train/checksum/state", &want));
    mv_train_state st;
    MV_TRY(read_state(f, path, &st));
    char *yaml = NULL;
    MV_TRY(read_string(f, path, "train/config_yaml", &yaml));
    uint64_t got = state_checksum(format, st.step, &st, st.best_name, yaml);
    free(yaml);
    if (got != want)
        return mv_fail("%s: the training state (step, iteration, loader cursor, best metric or configuration) "
                       "does not match its checksum (corrupt file)", path);
    return 0;
}

// Opens `path` and checks that it is a checkpoint of a format this build reads, with an
// intact training state.
static hid_t open_checkpoint(const char *path) {
    hid_t f = h5_open_read(path);
    if (f < 0) return -1;
    if (H5Lexists(f, "train", H5P_DEFAULT) <= 0) {
        H5Fclose(f);
        mv_fail("%s: not a checkpoint (no train/ group): a plain weights file starts a training through "
               "run.init_weights, or is evaluated with `maskvim eval --checkpoint`", path);
        return -1;
    }
    int64_t format;
    if (read_i64(f, path, "train/format", &format) < 0) { H5Fclose(f); return -1; }
    if (format < 1 || format > MV_CKPT_FORMAT) {
        H5Fclose(f);
        mv_fail("%s: checkpoint format %lld, this build reads format 1..%d", path, (long long)format, MV_CKPT_FORMAT);
        return -1;
    }
    if (check_state(f, path, format) < 0) { H5Fclose(f); return -1; }
    return f;
}

static int read_meta_open(hid_t f, const char *path, mv_train_state *st, mv_config *cfg) {
    if (st) MV_TRY(read_state(f, path, st));
    if (cfg) {
        char *yaml = NULL;
        MV_TRY(read_string(f, path, "train/config_yaml", &yaml));
        int rc = config_from_yaml(cfg, yaml, path);
        free(yaml);
        MV_TRY(rc);
    }
    return 0;
}

int checkpoint_read_meta(const char *path, mv_train_state *st, mv_config *saved_cfg) {
    hid_t f = open_checkpoint(path);
    if (f < 0) return -1;
    mv_train_state st2;
    mv_config *cfg2 = saved_cfg ? mv_malloc(sizeof *cfg2) : NULL;
    int rc = read_meta_open(f, path, st ? &st2 : NULL, cfg2);
    H5Fclose(f);
    if (rc == 0 && st) *st = st2;
    if (rc == 0 && saved_cfg) *saved_cfg = *cfg2;
    free(cfg2);
    return rc;
}

int checkpoint_config_text(const char *path, char **yaml) {
    *yaml = NULL;
    hid_t f = h5_open_read(path);
    if (f < 0) return -1;
    htri_t train = H5Lexists(f, "train", H5P_DEFAULT);
    H5Fclose(f);
    if (train < 0) return mv_fail("%s: cannot read its groups (corrupt file)", path);
    if (train == 0) return 0;   // a plain weights file
    f = open_checkpoint(path);   // format and the state checksum (which covers the text)
    if (f < 0) return -1;
    int rc = read_string(f, path, "train/config_yaml", yaml);
    H5Fclose(f);
    return rc < 0 ? -1 : 1;
}

// ---------------------------------------------------------------------------------------------
// Verification without a model: the stored checksums against the file's own tensors.

typedef struct { const char *path; uint64_t salt, sum; float *buf; size_t cap; int rc; hsize_t file_size; } verify_ctx;

// The number of values of dataset `ds` from its dimensions, or -1 when they cannot describe data
// in this file: a product that overflows, or more float32 values than the file has bytes for.
// Damaged metadata must be an error here, not an abort: HDF5's own count
// (H5Sget_simple_extent_npoints) wraps around, so a flipped high bit of a dimension gave a
// request for terabytes (the process died of it in --resume auto), or wrapped back to the true
// count, so that the file verified and was then refused by the load for its "shape".
static int64_t dataset_numel(hid_t ds, hsize_t file_size) {
    hid_t space = H5Dget_space(ds);
    if (space < 0) return -1;
    int nd = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    bool ok = nd >= 0 && nd <= H5S_MAX_RANK && H5Sget_simple_extent_dims(space, dims, NULL) == nd;
    H5Sclose(space);
    uint64_t n = 1;
    for (int d = 0; ok && d < nd; d++) ok = !__builtin_mul_overflow(n, (uint64_t)dims[d], &n);
    if (!ok || n > (uint64_t)file_size / sizeof(float)) return -1;
    return (int64_t)n;
}

// Adds the hash of dataset `name` of `group` (groups, PyTorch counters: skipped).
static herr_t hash_dataset(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    verify_ctx *v = data;
    const char *tail = strrchr(name, '.');
    if (tail && !strcmp(tail, ".num_batches_tracked")) return 0;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) { v->rc = mv_fail("%s: '%s' is unreadable (corrupt)", v->path, name); return -1; }
    H5I_type_t type = H5Iget_type(obj);
    H5Oclose(obj);
    if (type != H5I_DATASET) return 0;
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    int64_t n = ds >= 0 ? dataset_numel(ds, v->file_size) : -1;
    if (n >= 0 && !h5_storage_ok(ds, (uint64_t)n)) n = -1;
    if (n < 0) {
        if (ds >= 0) H5Dclose(ds);
        v->rc = mv_fail("%s: '%s' has a damaged shape or storage information, or is unreadable (corrupt)", v->path, name);
        return -1;
    }
    if ((size_t)n > v->cap) {
        free(v->buf);
        v->cap = (size_t)n;
        v->buf = mv_malloc(sizeof(float) * (v->cap ? v->cap : 1));
    }
    herr_t e = n > 0 ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->buf) : 0;
    H5Dclose(ds);
    if (e < 0) { v->rc = mv_fail("%s: cannot read '%s' (corrupt)", v->path, name); return -1; }
    v->sum += tensor_hash(v->salt, name, v->buf, (size_t)n);
    return 0;
}

// The sum of the hashes of the datasets directly in `group` of f.
static int hash_group(hid_t f, verify_ctx *v, const char *group, uint64_t salt, uint64_t *sum) {
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0) return mv_fail("%s: no group '%s'", v->path, group);
    v->salt = salt;
    v->sum = 0;
    v->rc = 0;
    herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, hash_dataset, v);
    H5Gclose(g);
    if (v->rc < 0) return -1;
    if (e < 0) return mv_fail("%s: cannot list '%s' (corrupt)", v->path, group);
    *sum = v->sum;
    return 0;
}

// The file's size into v (hash_group checks each dataset against it), then the weights, read
// back from the file, against their recorded checksum.
static int verify_weights(hid_t f, verify_ctx *v) {
    uint64_t want = 0, got = 0;
    if (H5Fget_filesize(f, &v->file_size) < 0) return mv_fail("%s: cannot read its size", v->path);
    MV_TRY(read_u64(f, v->path, "train/checksum/weights", &want));
    MV_TRY(hash_group(f, v, "/", SALT_WEIGHT, &got));
    return got == want ? 0 : weights_damaged(v->path);
}

int checkpoint_verify(const char *path) {
    hid_t f = open_checkpoint(path);
    if (f < 0) return -1;
    verify_ctx v = {path, 0, 0, NULL, 0, 0, 0};
    uint64_t want = 0, m = 0, vv = 0;
    int rc = verify_weights(f, &v);
    // What --resume needs: a file without its moments (a group lost, or a file another tool
    // wrote) is passed over by --resume auto as a damaged one is, not taken and then refused.
    if (rc == 0 && (H5Lexists(f, "train/adam_m", H5P_DEFAULT) <= 0 || H5Lexists(f, "train/adam_v", H5P_DEFAULT) <= 0))
        rc = mv_fail("%s: holds no optimizer state (train/adam_m, train/adam_v): it cannot be resumed, only loaded as "
                     "weights", path);
    if (rc == 0) {
        rc = read_u64(f, path, "train/checksum/moments", &want);
        if (rc == 0) rc = hash_group(f, &v, "train/adam_m", SALT_M, &m);
        if (rc == 0) rc = hash_group(f, &v, "train/adam_v", SALT_V, &vv);
        if (rc == 0 && m + vv != want) rc = moments_damaged(path);
    }
    free(v.buf);
    H5Fclose(f);
    return rc;
}

int checkpoint_verify_weights(const char *path) {
    hid_t f = h5_open_read(path);
    if (f < 0) return -1;
    int rc = 0;
    bool has = false;
    int64_t format = 0;
    if (H5Lexists(f, "train", H5P_DEFAULT) > 0) {   // a checkpoint, not a plain weights file
        rc = read_i64(f, path, "train/format", &format);
        if (rc == 0) rc = has_checksum(f, path, format, "weights", &has);
    }
    if (rc == 0 && has) {
        verify_ctx v = {path, 0, 0, NULL, 0, 0, 0};
        rc = verify_weights(f, &v);
        free(v.buf);
    }
    H5Fclose(f);
    return rc;
}

int checkpoint_load(const char *path, mv_params *p, mv_optimizer *o, mv_train_state *st, mv_config *saved_cfg) {
    MV_CHECK(p, "checkpoint_load: params are required (use checkpoint_read_meta)");
    hid_t f = open_checkpoint(path);
    if (f < 0) return -1;
    mv_train_state st2;
    mv_config *cfg2 = saved_cfg ? mv_malloc(sizeof *cfg2) : NULL;
    int64_t step = 0;
    int rc = load_tensors(f, path, p, o);
    if (rc == 0 && o) rc = read_i64(f, path, "train/step", &step);
    if (rc == 0) rc = read_meta_open(f, path, st ? &st2 : NULL, cfg2);
    H5Fclose(f);
    if (rc == 0) {
        if (o) o->step = (long)step;
        if (st) *st = st2;
        if (saved_cfg) *saved_cfg = *cfg2;
    }
    free(cfg2);
    return rc;
}
