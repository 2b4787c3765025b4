// Weights files in and out (see weights_io.h).
#include "core/weights_io.h"
#include "core/h5util.h"
#include "core/error.h"
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int weights_save(const mv_params *p, const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = h5_create(tmp);
    if (f < 0) return -1;
    for (int i = 0; i < p->count; i++) {
        const mv_param *q = &p->items[i];
        if (h5_write_floats(f, q->name, params_host(p, q), q->ndim, q->shape) < 0) {
            H5Fclose(f);
            remove(tmp);
            return mv_fail_context("%s", path);
        }
    }
    if (H5Fclose(f) < 0) { remove(tmp); return mv_fail("%s: cannot finish writing", path); }
    return h5_publish(tmp, path);
}

typedef struct { const mv_params *p; bool *seen; FILE *report; mv_weights_found *found; } scan_ctx;

static herr_t note_unexpected(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    scan_ctx *s = data;
    // Only datasets are weights: a checkpoint's train/ group (optimizer state) is not.
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    H5I_type_t type = obj >= 0 ? H5Iget_type(obj) : H5I_BADID;
    if (obj >= 0) H5Oclose(obj);
    if (type != H5I_DATASET) return 0;
    const char *tail = strrchr(name, '.');
    if (tail && !strcmp(tail, ".num_batches_tracked")) return 0;   // PyTorch bookkeeping
    for (int i = 0; i < s->p->count; i++)
        if (!strcmp(s->p->items[i].name, name)) { s->seen[i] = true; return 0; }
    mv_weights_found *fd = s->found;
    if (fd->keep_names) {   // grown by doubling: room for entries 0 .. 2^k - 1
        int n = fd->unexpected;
        if ((n & (n - 1)) == 0) {
            fd->unexpected_names = mv_realloc(fd->unexpected_names, sizeof(char *) * (size_t)(n ? 2 * n : 1));
        }
        fd->unexpected_names[n] = mv_strdup(name);
    }
    if (fd->unexpected++ == 0) snprintf(fd->first_unexpected, sizeof fd->first_unexpected, "%s", name);
    if (s->report) fprintf(s->report, "  unexpected: %s\n", name);
    return 0;
}

void weights_found_free(mv_weights_found *found) {
    for (int i = 0; found->unexpected_names && i < found->unexpected; i++) free(found->unexpected_names[i]);
    free(found->unexpected_names);
    found->unexpected_names = NULL;
}

int weights_load_found(mv_params *p, const char *path, FILE *report, mv_weights_found *found) {
    bool *loaded = found->loaded, keep = found->keep_names;
    memset(found, 0, sizeof *found);
    found->loaded = loaded;
    found->keep_names = keep;
    hid_t f = h5_open_read(path);
    if (f < 0) return -1;
    scan_ctx s = {p, mv_calloc(p->count ? (size_t)p->count : 1, sizeof(bool)), report, found};
    H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, note_unexpected, &s);
    int rc = 0;
    for (int i = 0; i < p->count && rc == 0; i++) {
        mv_param *q = &p->items[i];
        if (!s.seen[i]) {
            if (found->missing++ == 0) snprintf(found->first_missing, sizeof found->first_missing, "%s", q->name);
            if (report) fprintf(report, "  missing:    %s\n", q->name);
            continue;
        }
        int nd;
        long shape[8];
        rc = h5_shape(f, path, q->name, &nd, shape);
        bool same = rc == 0 && nd == q->ndim;
        for (int d = 0; same && d < nd; d++) same = shape[d] == q->shape[d];
        if (rc == 0 && !same) {
            char got[128] = "", want[128] = "";
            for (int d = 0; d < nd; d++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%ld", d ? "," : "", shape[d]);
            for (int d = 0; d < q->ndim; d++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", d ? "," : "", q->shape[d]);
            rc = mv_fail("%s: '%s' has shape [%s], this model expects [%s]%s", path, q->name, got, want,
                         strstr(q->name, "token_mask") ? " (the token-mask grid is fixed by model.crop)" : "");
        }
        if (rc == 0) rc = h5_read_tensor(f, path, q->name, params_host(p, q), q->numel);
        if (rc == 0) rc = params_check_finite(p, q, path);
    }
    if (loaded) memcpy(loaded, s.seen, sizeof(bool) * (size_t)p->count);
    free(s.seen);
    H5Fclose(f);
    return rc;
}

int weights_load(mv_params *p, const char *path, FILE *report, int *missing, int *unexpected) {
    mv_weights_found found = {0};
    int rc = weights_load_found(p, path, report, &found);
    if (missing) *missing = found.missing;
    if (unexpected) *unexpected = found.unexpected;
    return rc;
}

static int load_all(mv_params *p, const char *path, mv_weights_found *found_out) {
    mv_weights_found found = {0};
    MV_TRY(weights_load_found(p, path, NULL, &found));
    *found_out = found;
    if (found.missing == 0) return 0;
    char hint[512] = "";
    if (found.unexpected > 0)
        snprintf(hint, sizeof hint, "; it holds %d tensor%s this model does not have, e.g. '%s' (another model, "
                 "or names with another prefix such as 'module.' or 'backbone.')", found.unexpected,
                 found.unexpected > 1 ? "s" : "", found.first_unexpected);
    return mv_fail("%s: %d of this model's %d tensors are missing, e.g. '%s'%s", path, found.missing, p->count,
                   found.first_missing, hint);
}

int weights_load_all(mv_params *p, const char *path, int *unexpected) {
    mv_weights_found found;
    int rc = load_all(p, path, &found);
    if (unexpected) *unexpected = rc == 0 ? found.unexpected : 0;
    return rc;
}

int weights_load_for_inference(mv_params *p, const char *path, FILE *warn, const char *who) {
    mv_weights_found found;
    MV_TRY(load_all(p, path, &found));
    // Each tensor of a shallower model (fewer blocks, fewer masked stages) has its name and shape
    // in a deeper one's file, so such a file loads whole and runs as a different network.
    if (warn && found.unexpected > 0)
        fprintf(warn, "%s: warning: %s holds %d tensor%s this model does not have, ignored (e.g. '%s'): weights "
                      "of a deeper model or of one with more masked stages give wrong results here; compare "
                      "model.preset, model.depths and mask.* with the configuration they were trained with\n",
                who, path, found.unexpected, found.unexpected > 1 ? "s" : "", found.first_unexpected);
    return 0;
}
