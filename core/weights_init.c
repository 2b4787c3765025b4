// Starting a new run from a weights file (run.init_weights, see weights_io.h): the encoder of
// VMamba's ImageNet checkpoint, or a whole model, loaded over the seeded initialisation.
#include "core/weights_io.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/h5util.h"
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

typedef struct {
    char name[64];
    int count;
} group;

// "decode_head 52, auxiliary_head 6, ..." from the report's "missing:" lines, in first-seen order.
static void summarise_missing(const char *report, char *out, size_t cap) {
    group groups[16];
    int ng = 0, other = 0;
    static const char TAG[] = "  missing:    ";
    for (const char *line = report; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > sizeof TAG - 1 && !strncmp(line, TAG, sizeof TAG - 1)) {
            char name[256], g[64];
            snprintf(name, sizeof name, "%.*s", (int)(len - (sizeof TAG - 1)), line + sizeof TAG - 1);
            group_of(name, g, sizeof g);
            int i = 0;
            while (i < ng && strcmp(groups[i].name, g)) i++;
            if (i == ng && ng < 16) {
                snprintf(groups[ng].name, sizeof groups[ng].name, "%s", g);
                groups[ng++].count = 0;
            }
            if (i < ng) groups[i].count++;
            else other++;
        }
        line = end ? end + 1 : NULL;
    }
    out[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < ng && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s %d", i ? ", " : "", groups[i].name, groups[i].count);
    if (other && used < cap) snprintf(out + used, cap - used, ", other %d", other);
}

// The first "unexpected:" name of the report, or "".
static void first_unexpected(const char *report, char *out, size_t cap) {
    static const char TAG[] = "  unexpected: ";
    const char *p = report ? strstr(report, TAG) : NULL;
    out[0] = '\0';
    if (!p) return;
    p += sizeof TAG - 1;
    size_t len = strcspn(p, "\n");
    snprintf(out, cap, "%.*s", (int)len, p);
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

static int write_report(const char *path, const char *from, const char *report) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return mv_fail("%s: cannot write", tmp);
    fprintf(f, "# tensors of the model that %s does not hold (they keep their seeded initialisation),\n"
               "# and tensors of the file the model does not have (not used)\n%s", from, report);
    bool ok = fflush(f) == 0 && !ferror(f);
    if (fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return mv_fail("%s: cannot write", path);
    }
    return 0;
}

int weights_load_init(mv_params *p, const char *path, const char *report_path, FILE *log) {
    if (access(path, R_OK) != 0)
        return mv_fail("run.init_weights: %s: %s (the weights a new run starts from: convert a PyTorch checkpoint "
                       "with tools/pth_to_h5.py, docs/training.md \"Starting weights\"; \"\" starts from the seeded "
                       "initialisation)", path, strerror(errno));
    // A training checkpoint's tensors are checksummed: a damaged one is refused, not trained from.
    if (checkpoint_verify_weights(path) < 0) {
        if (h5_looks_like_pytorch(path))
            return mv_fail("run.init_weights: %s is a PyTorch checkpoint, not a weights file: convert it with "
                           "tools/pth_to_h5.py %s OUT.h5 (add --prefix backbone. for an ImageNet encoder)", path, path);
        return mv_fail_context("run.init_weights");
    }
    char *report = NULL;
    size_t report_len = 0;
    FILE *mem = open_memstream(&report, &report_len);
    if (!mem) return mv_fail("run.init_weights: out of memory");
    int missing = 0, unexpected = 0;
    int rc = weights_load(p, path, mem, &missing, &unexpected);
    fclose(mem);
    if (rc < 0) {
        free(report);
        return mv_fail_context("run.init_weights");
    }
    int loaded = p->count - missing;
    if (loaded == 0) {
        char extra[256];
        first_unexpected(report, extra, sizeof extra);
        if (extra[0])
            rc = mv_fail("run.init_weights: %s: none of this model's %d tensors is in it; it holds %d others, e.g. "
                         "'%s'%s", path, p->count, unexpected, extra, prefix_hint(p, extra));
        else
            rc = mv_fail("run.init_weights: %s: holds no tensor at its root (a weights file holds one float32 dataset "
                         "per state_dict key, named with its dots, at the root: tools/pth_to_h5.py writes them)", path);
        free(report);
        return rc;
    }
    if (report_path) rc = write_report(report_path, path, report);
    if (rc == 0 && log) {
        char groups[512];
        summarise_missing(report, groups, sizeof groups);
        fprintf(log, "maskvim train: started from %s: %d of %d tensors loaded", path, loaded, p->count);
        if (missing) fprintf(log, "; %d keep their initialisation (%s)", missing, groups);
        if (unexpected) fprintf(log, "; %d in the file unused", unexpected);
        if (report_path && (missing || unexpected)) fprintf(log, "; names in %s", report_path);
        fprintf(log, "\n");
    }
    free(report);
    return rc;
}
