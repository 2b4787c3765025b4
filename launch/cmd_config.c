// `maskvim config`: resolves an experiment file with its includes and --set overrides and
// prints the result as YAML (every key explicit), or writes it to a file. Shows what a run
// would use without starting it; docs/config.md describes the keys.
#include "launch/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "core/experiment.h"
#include "core/suggest.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim config [FILE] [--set key=value ...] [--out PATH | --keys]\n"
        "       maskvim config EXPERIMENT.yaml --row ROW [--set key=value ...] [--out PATH]\n\n"
        "Resolves FILE (its include: bases first, then the file, then each --set in order;\n"
        "without FILE the built-in defaults), validates it and prints the whole configuration\n"
        "as YAML. Errors name FILE:LINE:COLUMN and the key. Key reference: docs/config.md.\n\n"
        "  --set key=value   override, e.g. --set mask.lambda=[0.9,0.7,0.5] --set optim.lr=1e-4\n"
        "  --out PATH        write the YAML to PATH (atomically) instead of printing it\n"
        "  --keys            list every key instead: its value, what it takes (type, range or\n"
        "                    choices) and what it does\n"
        "  --row ROW         FILE is an experiment file (docs/experiments.md): resolve its row ROW\n"
        "                    (or ROW@SEED) as `maskvim experiment run` would, in runs/<name>/ROW\n");
}

// The configuration of one row of an experiment file: the row's resolved configuration, in
// the run directory a sweep without --out gives it, then the --set overrides.
static int row_config(mv_config *cfg, const char *file, const char *row, int nsets, const char **sets) {
    mv_experiment exp;
    memset(&exp, 0, sizeof exp);
    if (experiment_load(&exp, file) < 0) {
        if (exp.rows) experiment_free(&exp);
        return -1;
    }
    int rc = 0;
    const mv_exp_run *run = experiment_find_run(&exp, row);
    if (!run) {
        const char **names = mv_calloc((size_t)exp.nruns + 1, sizeof *names);
        for (int i = 0; i < exp.nruns; i++) names[i] = exp.runs[i].name;
        char hint[MV_PATH_MAX];
        rc = mv_fail("%s: no row '%s'%s (`maskvim experiment run %s --dry-run` lists them)", file, row,
                     mv_hint(hint, sizeof hint, row, names, exp.nruns), file);
        free(names);
    }
    char dir[MV_PATH_MAX];
    if (rc == 0 && snprintf(dir, sizeof dir, "runs/%s/%s", exp.name, run->name) >= (int)sizeof dir)
        rc = mv_fail("runs/%s/%s: path too long", exp.name, run->name);
    if (rc == 0) rc = experiment_run_config_with(cfg, &exp, run, dir, nsets, sets);
    experiment_free(&exp);
    return rc;
}

int cmd_config(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *row = NULL;
    bool keys = false;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int nsets = 0;
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(sets); return 0; }
        if (!strcmp(a, "--keys")) { keys = true; continue; }
        if (!strcmp(a, "--set") || !strcmp(a, "--out") || !strcmp(a, "--row")) {
            if (i + 1 >= argc) { fprintf(stderr, "maskvim config: %s needs a value\n", a); free(sets); return 2; }
            if (!strcmp(a, "--set")) sets[nsets++] = argv[++i];
            else if (!strcmp(a, "--row")) row = argv[++i];
            else out = argv[++i];
            continue;
        }
        if (a[0] == '-' || file) {
            if (a[0] == '-') {
                cli_unknown_option("config", a, usage);
            } else {
                fprintf(stderr, "maskvim config: unexpected argument '%s'\n\n", a);
                usage(stderr);
            }
            free(sets);
            return 2;
        }
        file = a;
    }
    if (row && !file) {
        fprintf(stderr, "maskvim config: --row needs an experiment file\n\n");
        usage(stderr);
        free(sets);
        return 2;
    }
    if (keys && out) {
        fprintf(stderr, "maskvim config: --keys prints the key list; --out writes the YAML: give one of them\n\n");
        usage(stderr);
        free(sets);
        return 2;
    }
    mv_config *cfg = malloc(sizeof *cfg);
    int rc = !cfg ? mv_fail("out of memory")
             : row ? row_config(cfg, file, row, nsets, sets)
                   : config_load(cfg, file, nsets, sets);
    if (rc == 0) rc = keys ? config_write_key_reference(stdout, cfg) : out ? config_save(out, cfg)
                                                                        : config_write_yaml(stdout, cfg);
    if (rc < 0) fprintf(stderr, "maskvim config: %s\n", mv_last_error());
    free(cfg);
    free(sets);
    return rc < 0 ? 1 : 0;
}
