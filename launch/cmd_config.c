// `maskvim config`: resolves an experiment file with its includes and --set overrides and
// prints the result as YAML (every key explicit), or writes it to a file. Shows what a run
// would use without starting it; docs/config.md describes the keys.
#include "launch/commands.h"
#include "core/config.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim config [FILE] [--set key=value ...] [--out PATH]\n\n"
        "Resolves FILE (its include: bases first, then the file, then each --set in order;\n"
        "without FILE the built-in defaults), validates it and prints the whole configuration\n"
        "as YAML. Errors name FILE:LINE:COLUMN and the key. Key reference: docs/config.md.\n\n"
        "  --set key=value   override, e.g. --set mask.lambda=[0.9,0.7,0.5] --set optim.lr=1e-4\n"
        "  --out PATH        write the YAML to PATH (atomically) instead of printing it\n");
}

int cmd_config(int argc, char **argv) {
    const char *file = NULL, *out = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int nsets = 0;
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(sets); return 0; }
        if (!strncmp(a, "--set=", 6)) { sets[nsets++] = a + 6; continue; }
        if (!strcmp(a, "--set") || !strcmp(a, "--out")) {
            if (i + 1 >= argc) { fprintf(stderr, "maskvim config: %s needs a value\n", a); free(sets); return 2; }
            if (!strcmp(a, "--set")) sets[nsets++] = argv[++i];
            else out = argv[++i];
            continue;
        }
        if (a[0] == '-' || file) {
            fprintf(stderr, "maskvim config: unexpected argument '%s'\n\n", a);
            usage(stderr);
            free(sets);
            return 2;
        }
        file = a;
    }
    mv_config *cfg = malloc(sizeof *cfg);
    int rc = cfg ? config_load(cfg, file, nsets, sets) : mv_fail("out of memory");
    if (rc == 0) rc = out ? config_save(out, cfg) : config_write_yaml(stdout, cfg);
    if (rc < 0) fprintf(stderr, "maskvim config: %s\n", mv_last_error());
    free(cfg);
    free(sets);
    return rc < 0 ? 1 : 0;
}
