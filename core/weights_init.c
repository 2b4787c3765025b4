// Starting a new run from a weights file (run.init_weights, see weights_io.h): the encoder of
// VMamba's ImageNet checkpoint, or a whole model, loaded over the seeded initialisation.
#include "core/weights_io.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/fs.h"
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Where a tensor belongs, for the one-line summary: token masks apart (an ImageNet encoder has
// none), the encoder by its second name component (`backbone.outnorm0` -> backbone.outnorm),
// everything else by its first (decode_head, ...).
static void group_of(const char *name, char *out, size_t cap) {
    size_t n = strlen(name);
    if (n >= 10 && !strcmp(name + n - 10, "token_mask")) { snprintf(out, cap, "token masks"); return; }
    const char *dot = strchr(name, '.');
    size_t len = dot ? (size_t)(dot - name) : n;
    if (dot && len == 8 && !strncmp(name, "backbone", 8)) {
        const char *end = dot + 1;
        while (*end && *end != '.' && !(*end >= '0' && *end <= '9')) end++;
        len = (size_t)(end - name);
    }
    snprintf(out, cap, "%.*s", (int)(len < cap ? len : cap - 1), name);
}

// Tensors counted by group_of, in first-seen order; a file of unknown names could have any
// number of groups, so past 16 they are counted as "other".
typedef struct {
    struct { char name[64]; int count; } groups[16];
    int ng, other;
} tally;

static void tally_add(tally *t, const char *name) {
    char g[64];
    group_of(name, g, sizeof g);
    int i = 0;
    while (i < t->ng && strcmp(t->groups[i].name, g)) i++;
    if (i == t->ng && t->ng < 16) {
        snprintf(t->groups[t->ng].name, sizeof t->groups[t->ng].name, "%s", g);
        t->groups[t->ng++].count = 0;
    }
    if (i < t->ng) t->groups[i].count++;
    else t->other++;
}

// "decode_head 98, auxiliary_head 7, ..."
static void tally_format(const tally *t, char *out, size_t cap) {
    out[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < t->ng && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s %d", i ? ", " : "", t->groups[i].name, t->groups[i].count);
    if (t->other && used < cap) snprintf(out + used, cap - used, ", other %d", t->other);
}

// The tensors the file did not give, in model order.
static void summarise_missing(const mv_params *p, const bool *loaded, char *out, size_t cap) {
    tally t = {0};
    for (int k = 0; k < p->count; k++)
        if (!loaded[k]) tally_add(&t, p->items[k].name);
    tally_format(&t, out, cap);
}

// The file's tensors that the model has not (weights_load_found's unexpected names).
typedef struct {
    char **names;
    int n;
} unused_list;

// Whether `name` starts with one of the encoder's top-level modules ('layers.0...' for the
// model's 'backbone.layers.0...'): the names of an ImageNet encoder saved alone, even in VMamba's
// v0 naming, whose block names differ from maskvim's beyond that first component.
static bool names_encoder_module(const mv_params *p, const char *name) {
    const char *dot = strchr(name, '.');
    if (!dot) return false;
    size_t len = (size_t)(dot - name);
    for (int k = 0; k < p->count; k++) {
        const char *q = p->items[k].name;
        if (!strncmp(q, "backbone.", 9) && !strncmp(q + 9, name, len + 1)) return true;
    }
    return false;
}

// Why none of the file's names matched, when a known prefix explains most of them: the first
// name alone misleads, since an ImageNet checkpoint's first names in HDF5's (alphabetical)
// order are its classifier's ('head.bias').
static void prefix_hint(const mv_params *p, const unused_list *u, char *out, size_t cap) {
    int bare = 0, wrapped = 0;
    const char *bare_eg = NULL;
    for (int i = 0; i < u->n; i++) {
        if (names_encoder_module(p, u->names[i]) && bare++ == 0) bare_eg = u->names[i];
        if (!strncmp(u->names[i], "module.", 7) && params_find(p, u->names[i] + 7)) wrapped++;
    }
    out[0] = '\0';
    if (2 * bare > u->n)
        snprintf(out, cap, "; its names lack the encoder's 'backbone.' prefix (%d of its %d tensors are named as the "
                 "encoder's modules without it, e.g. '%s': an ImageNet checkpoint, convert it with "
                 "tools/pth_to_h5.py IN.pth OUT.h5 --prefix backbone.)", bare, u->n, bare_eg);
    else if (2 * wrapped > u->n)
        snprintf(out, cap, "; its names carry DataParallel's 'module.' prefix (%d of its %d tensors: save the "
                 "unwrapped model's state_dict)", wrapped, u->n);
}

// The file's tensors the model has not, by module.
static void summarise_unused(const unused_list *u, char *out, size_t cap) {
    tally t = {0};
    for (int i = 0; i < u->n; i++) tally_add(&t, u->names[i]);
    tally_format(&t, out, cap);
}

// An encoder tensor the model lacks (a block of a deeper stage, a token mask of a masked stage)
// means the file was saved from another encoder (another preset, depths or mask settings): its
// common tensors loaded, but the network it was trained as is not this one, so say so.
static void warn_unused_encoder(const mv_params *p, const unused_list *u, const char *path) {
    int encoder = 0;
    const char *eg = NULL;
    for (int i = 0; i < u->n; i++)
        if (!strncmp(u->names[i], "backbone.", 9) && encoder++ == 0) eg = u->names[i];
    if (encoder)
        fprintf(stderr, "maskvim train: warning: run.init_weights: %s: %d of its %d unused tensors are the encoder's "
                "(e.g. '%s'), which this model (%d tensors) does not have: the file was saved from another encoder "
                "(another model.preset, such as VMamba-S's depths 2,2,27,2 against maskvim-t's 2,2,9,2, or other "
                "model.depths or mask.* settings); compare them with the model the file comes from\n",
                path, encoder, u->n, eg, p->count);
}

int weights_load_init(mv_params *p, const char *path, const char *report_path, FILE *log) {
    if (access(path, R_OK) != 0)
        return mv_fail("run.init_weights: %s: %s (the weights a new run starts from: convert a PyTorch checkpoint "
                       "with tools/pth_to_h5.py, docs/training.md \"Starting weights\"; \"\" starts from the seeded "
                       "initialisation)", path, strerror(errno));
    // A training checkpoint's tensors are checksummed: a damaged one is refused, not trained from.
    if (checkpoint_verify_weights(path) < 0) return mv_fail_context("run.init_weights");
    // The names the file did not give, and those the model has not, go straight into the report
    // (a temporary beside it, renamed once the load has succeeded).
    mv_atomic_file out = {0};
    FILE *report = NULL;
    if (report_path) {
        if (mv_atomic_open(&out, report_path) < 0) return -1;
        report = out.f;
        fprintf(report, "# tensors of the model that %s does not hold (they keep their seeded initialisation),\n"
                        "# and tensors of the file the model does not have (not used)\n", path);
    }
    mv_weights_found found = {.loaded = mv_calloc(p->count ? (size_t)p->count : 1, sizeof(bool)), .keep_names = true};
    int rc = weights_load_found(p, path, report, &found);
    int loaded = p->count - found.missing;
    unused_list unused = {found.unexpected_names, found.unexpected_names ? found.unexpected : 0};
    char hint[1024];
    if (rc < 0) mv_fail_context("run.init_weights");
    else if (loaded == 0 && found.first_unexpected[0]) {
        prefix_hint(p, &unused, hint, sizeof hint);
        rc = mv_fail("run.init_weights: %s: none of this model's %d tensors is in it; it holds %d others, e.g. '%s'%s",
                     path, p->count, found.unexpected, found.first_unexpected, hint);
    } else if (loaded == 0)
        rc = mv_fail("run.init_weights: %s: holds no tensor at its root (a weights file holds one float32 dataset "
                     "per state_dict key, named with its dots, at the root: tools/pth_to_h5.py writes them)", path);
    if (report && rc == 0) rc = mv_atomic_commit(&out, false);
    else if (report) mv_atomic_abort(&out);
    if (rc == 0 && log) {
        char groups[512], extra[512];
        summarise_missing(p, found.loaded, groups, sizeof groups);
        summarise_unused(&unused, extra, sizeof extra);
        fprintf(log, "maskvim train: started from %s: %d of %d tensors loaded", path, loaded, p->count);
        if (found.missing) fprintf(log, "; %d keep their initialisation (%s)", found.missing, groups);
        if (found.unexpected) fprintf(log, "; %d in the file unused%s%s%s", found.unexpected,
                                      extra[0] ? " (" : "", extra, extra[0] ? ")" : "");
        if (report_path && (found.missing || found.unexpected)) fprintf(log, "; names in %s", report_path);
        fprintf(log, "\n");
        fflush(log);
        warn_unused_encoder(p, &unused, path);
    }
    weights_found_free(&found);
    free(found.loaded);
    return rc;
}
