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

// Where a tensor that kept its initialisation belongs, for the one-line summary: token masks
// apart (an ImageNet encoder has none), the encoder by its second name component
// (`backbone.outnorm0` -> backbone.outnorm), everything else by its first (decode_head, ...).
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

// "decode_head 98, auxiliary_head 7, ..." over the tensors the file did not give, in model order.
static void summarise_missing(const mv_params *p, const bool *loaded, char *out, size_t cap) {
    struct { char name[64]; int count; } groups[16];
    int ng = 0, other = 0;
    for (int k = 0; k < p->count; k++) {
        if (loaded[k]) continue;
        char g[64];
        group_of(p->items[k].name, g, sizeof g);
        int i = 0;
        while (i < ng && strcmp(groups[i].name, g)) i++;
        if (i == ng && ng < 16) {
            snprintf(groups[ng].name, sizeof groups[ng].name, "%s", g);
            groups[ng++].count = 0;
        }
        if (i < ng) groups[i].count++;
        else other++;
    }
    out[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < ng && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s %d", i ? ", " : "", groups[i].name, groups[i].count);
    if (other && used < cap) snprintf(out + used, cap - used, ", other %d", other);
}

// Why none of the file's names matched, when a known prefix explains it.
static const char *prefix_hint(const mv_params *p, const char *unexpected) {
    char name[512];
    snprintf(name, sizeof name, "backbone.%s", unexpected);
    if (params_find(p, name))
        return "; its names lack the encoder's 'backbone.' prefix (an ImageNet checkpoint: convert it with "
               "tools/pth_to_h5.py IN.pth OUT.h5 --prefix backbone.)";
    if (!strncmp(unexpected, "module.", 7) && params_find(p, unexpected + 7))
        return "; its names carry DataParallel's 'module.' prefix (save the unwrapped model's state_dict)";
    return "";
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
    mv_weights_found found = {.loaded = mv_calloc(p->count ? (size_t)p->count : 1, sizeof(bool))};
    int rc = weights_load_found(p, path, report, &found);
    int loaded = p->count - found.missing;
    if (rc < 0) mv_fail_context("run.init_weights");
    else if (loaded == 0 && found.first_unexpected[0])
        rc = mv_fail("run.init_weights: %s: none of this model's %d tensors is in it; it holds %d others, e.g. '%s'%s",
                     path, p->count, found.unexpected, found.first_unexpected, prefix_hint(p, found.first_unexpected));
    else if (loaded == 0)
        rc = mv_fail("run.init_weights: %s: holds no tensor at its root (a weights file holds one float32 dataset "
                     "per state_dict key, named with its dots, at the root: tools/pth_to_h5.py writes them)", path);
    if (report && rc == 0) rc = mv_atomic_commit(&out, false);
    else if (report) mv_atomic_abort(&out);
    if (rc == 0 && log) {
        char groups[512];
        summarise_missing(p, found.loaded, groups, sizeof groups);
        fprintf(log, "maskvim train: started from %s: %d of %d tensors loaded", path, loaded, p->count);
        if (found.missing) fprintf(log, "; %d keep their initialisation (%s)", found.missing, groups);
        if (found.unexpected) fprintf(log, "; %d in the file unused", found.unexpected);
        if (report_path && (found.missing || found.unexpected)) fprintf(log, "; names in %s", report_path);
        fprintf(log, "\n");
    }
    free(found.loaded);
    return rc;
}
