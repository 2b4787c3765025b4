// `maskvim eval`: evaluates a checkpoint (or plain weights) on the configuration's data.val
// sources, or on chosen ones, optionally under Cityscapes-C corruptions applied on the fly
// (the protocol of the paper's Table 2). Prints a table and writes JSON.
#include "launch/commands.h"
#include "core/cli_parse.h"
#include "launch/inference_setup.h"
#include "core/config.h"
#include "core/config_ranks.h"
#include "core/data_sources.h"
#include "core/engine.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/fs.h"
#include "core/json_write.h"
#include "core/model.h"
#include "core/weights_io.h"
#include "data/corrupt.h"
#include "dist/comm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: [mpirun -np N] maskvim eval [FILE.yaml] --checkpoint C.h5|RUN_DIR [--set key=value ...]\n"
        "                   [--targets NAME,...] [--corruptions LIST|all [--severities LIST]\n"
        "                   [--corruption-seed S] [--corruption-bgr]] [--json OUT.json] [--per-class]\n\n"
        "Inference (the whole image, or sliding windows with data.test_mode: slide) on each\n"
        "data.val source (or the --targets among them): per-domain mIoU, mAcc and aAcc in a table.\n\n"
        "  --checkpoint C         a training checkpoint, a plain weights file, or a run folder or its\n"
        "                         `latest` file, meaning the checkpoint `latest` names (stderr says)\n"
        "  --set key=value        override a configuration key (repeatable; keys: docs/config.md)\n"
        "  --targets NAME,...     evaluate only these data.val sources (comma-separated names)\n"
        "  --corruptions LIST     also evaluate every image corrupted on the fly by these corruptions\n"
        "                         (comma-separated names, or all; `maskvim data corrupt` lists them)\n"
        "  --severities LIST      with --corruptions: 5 (default), 1-5, 1-3,5 or all\n"
        "  --corruption-seed S    with --corruptions: the seed S of the corruptions (default 0)\n"
        "  --corruption-bgr       with --corruptions: corrupt in BGR channel order (see below)\n"
        "  --json OUT.json        also write every result (with per-class IoU and Acc) as JSON,\n"
        "                         once all are done (atomically: no partial file)\n"
        "  --per-class            also print each result's per-class IoU and Acc table\n\n"
        "With --corruptions (Cityscapes-C: the 16 corruptions of Table 2) each (corruption, severity)\n"
        "is one more line of the table (DOMAIN/CORRUPTION/SEVERITY), and with several severities\n"
        "each corruption's mean over them is one more (DOMAIN/CORRUPTION/mean). Image i is\n"
        "corrupted with the seed corrupt_image_seed(S, i), S = --corruption-seed (default 0,\n"
        "whatever the run's seed: every model is scored on the same images, the ones `maskvim data\n"
        "corrupt --seed S` writes). --corruption-bgr corrupts each image as a generator that read\n"
        "it in BGR order would (HGFormer's Cityscapes-C script, `maskvim data corrupt --bgr`):\n"
        "jpeg_compression, saturate, snow, frost and spatter differ, at severities 4-5 most.\n"
        "Without FILE, the configuration is the one saved in a training checkpoint (the run's\n"
        "config.yaml; its relative data.val folders are taken from the current folder, as training\n"
        "took them from its own), the built-in default for a plain weights file; --set applies on\n"
        "top, and stderr says which. Images resized under 32 pixels on a side are padded to 32 for\n"
        "the model (docs/metrics.md). Inference runs where run.device says (auto: the GPU where one\n"
        "is present; stderr names it).\n");
}

// One value of a summary row: '-' where it is undefined (NaN), never "nan". Each value is
// checked on its own: labelled pixels that all lie outside 0..C-1 (a model with fewer classes
// than the data's labels) leave mAcc and aAcc undefined while mIoU is 0, not NaN.
static void summary_value(const char *name, double v) {
    char buf[32];
    printf(" %s %s", name, metrics_cell(buf, sizeof buf, v, 6));
}

static void print_summary(const char *label, const mv_seg_metrics *r) {
    printf("%-36s", label);
    summary_value("mIoU", r->miou);
    putchar(' ');
    summary_value("mAcc", r->macc);
    putchar(' ');
    summary_value("aAcc", r->aacc);
    putchar('\n');
}

typedef struct { int corruption, severity; uint64_t seed; bool bgr; } corrupt_ctx;

static int corrupt_hook(mv_image *rgb, int source, int64_t sample, void *ctx) {
    (void)source;
    corrupt_ctx *c = ctx;
    return (c->bgr ? corrupt_image_bgr : corrupt_image)(rgb, rgb, c->corruption, c->severity,
                                                        corrupt_image_seed(c->seed, sample));
}

static bool wanted(const char *targets, const char *name) {
    if (!targets) return true;
    size_t n = strlen(name);
    for (const char *p = targets; (p = strstr(p, name)); p += n)
        if ((p == targets || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
    return false;
}

// Every name of --targets must be a data.val source: a misspelt one among good ones, dropped,
// would leave a report of fewer domains than asked for, with status 0.
static int check_targets(const char *targets, const mv_config *cfg) {
    if (!targets) return 0;
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", targets) >= (int)sizeof buf) return mv_fail("--targets: list too long");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < cfg->data.num_val && strcmp(cfg->data.val[i].name, tok)) i++;
        if (i < cfg->data.num_val) continue;
        char known[512] = "";
        for (int j = 0; j < cfg->data.num_val; j++) {
            size_t l = strlen(known);
            snprintf(known + l, sizeof known - l, "%s%s", j ? ", " : "", cfg->data.val[j].name);
        }
        return mv_fail("--targets: '%s' is not a data.val source (data.val: %s)", tok, cfg->data.num_val ? known : "empty");
    }
    return 0;
}

// Without FILE, data.val comes from the checkpoint as the run saw it: a relative folder there
// was relative to where training ran and is taken from the current folder here. One of those
// that is missing fails up front with what to do (not after the model is built, as "cannot
// open"); a folder given by --set is left to the ordinary error.
static int check_saved_paths(const mv_config *cfg, const char *targets, const char *ckpt, const char *yaml) {
    if (!yaml) return 0;
    mv_config *saved = mv_calloc(1, sizeof *saved);
    int rc = config_load_text(saved, yaml, ckpt, 0, NULL);
    for (int i = 0; i < cfg->data.num_val && rc == 0; i++) {
        const mv_source *v = &cfg->data.val[i];
        if (!wanted(targets, v->name) || !strncmp(v->path, "synthetic:", 10) || mv_is_dir(v->path)) continue;
        bool from_ckpt = false;
        for (int j = 0; j < saved->data.num_val; j++) from_ckpt |= !strcmp(saved->data.val[j].path, v->path);
        if (!from_ckpt) continue;
        rc = mv_fail("data.val '%s': %s is not a folder here (a path of %s's saved configuration%s): give FILE, or "
                     "--set data.val=[...] with the split's folder", v->name, v->path, ckpt,
                     v->path[0] == '/' ? "" : ", relative to the folder training ran in and taken from the current "
                                              "folder: run eval from there");
    }
    free(saved);
    return rc;
}

// Rank 0: one evaluated split (a domain, or a domain under one corruption at one severity) as a
// line of the table, its per-class table with --per-class, and its record in --json (jf; *nres
// counts the records written).
static void report_result(const char *label, const mv_seg_metrics *res, bool per_class, FILE *jf, int *nres,
                          const char *domain, int corruption, int severity) {
    // A split whose every label pixel is 255 has nothing to score: say so instead of printing
    // nan (the JSON gives null), since it is mostly labels converted wrongly.
    if (res->pixels == 0)
        fprintf(stderr, "maskvim eval: warning: %s: no labelled pixel (every label is ignore, 255): no metric to "
                        "report\n", label);
    // Labels that are all outside the model's classes (and not 255) leave no accuracy.
    else if (isnan(res->aacc))
        fprintf(stderr, "maskvim eval: warning: %s: no label is one of the model's %d classes (all are %d or more): "
                        "mAcc and aAcc are undefined\n", label, res->num_classes, res->num_classes);
    print_summary(label, res);
    // NULL names: Cityscapes' for a 19-class model, "class <i>" for any other count.
    if (per_class) metrics_write_table(stdout, res, NULL, label);
    if (!jf) return;
    fprintf(jf, "%s{\"domain\": ", (*nres)++ ? ",\n" : "");
    json_write_string(jf, domain);
    fprintf(jf, ", \"corruption\": \"%s\", \"severity\": %d, \"metrics\": ",
            corruption < 0 ? "none" : corrupt_name(corruption), severity);
    metrics_write_json(jf, res, NULL, label);
    fprintf(jf, "}");
}

// The command line of `maskvim eval`.
typedef struct {
    const char *file, *ckpt, *targets, *corrs, *sevs, *json;
    const char **sets;   // the --set values (nsets of them); cmd_eval frees the array
    int nsets;
    bool per_class, bgr;
    uint64_t corr_seed;
    bool corr_on[CORRUPT_COUNT], sev[6];   // --corruptions and --severities (none on without --corruptions)
} eval_args;

// parse_eval_args's result when the command goes on (otherwise: the exit status).
#define GO_ON (-1)

// Reads the command line into *a: GO_ON, or the status to exit with now (0 after --help, 2 for
// a usage error, its message printed).
static int parse_eval_args(eval_args *a, int argc, char **argv) {
    *a = (eval_args){.sevs = "5", .sets = mv_calloc(argc + 1, sizeof(char *))};
    bool sevs_given = false, seed_given = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { usage(stdout); return 0; }
        if (!strcmp(o, "--per-class")) { a->per_class = true; continue; }
        if (!strcmp(o, "--corruption-bgr")) { a->bgr = true; continue; }
        if (o[0] != '-') {
            if (a->file) { fprintf(stderr, "maskvim eval: more than one configuration file ('%s', '%s')\n", a->file, o); return 2; }
            a->file = o;
            continue;
        }
        if (!v) { cli_missing_value("eval", o, usage); return 2; }
        if (!strcmp(o, "--checkpoint")) a->ckpt = v;
        else if (!strcmp(o, "--set")) a->sets[a->nsets++] = v;
        else if (!strcmp(o, "--targets")) a->targets = v;
        else if (!strcmp(o, "--corruptions")) a->corrs = v;
        else if (!strcmp(o, "--corruption-seed")) {
            if (cli_option_u64(o, v, &a->corr_seed) < 0) { fprintf(stderr, "maskvim eval: %s\n", mv_last_error()); return 2; }
            seed_given = true;
        }
        else if (!strcmp(o, "--severities")) { a->sevs = v; sevs_given = true; }
        else if (!strcmp(o, "--json")) a->json = v;
        else { cli_unknown_option("eval", o, usage); return 2; }
        i++;
    }
    if (!a->ckpt) { fprintf(stderr, "maskvim eval: --checkpoint is required\n\n"); usage(stderr); return 2; }
    const char *needs_corrs = seed_given ? "--corruption-seed needs --corruptions LIST|all"
                            : a->bgr     ? "--corruption-bgr needs --corruptions LIST|all"
                            : sevs_given ? "--severities needs --corruptions LIST|all (clean images have no severity)"
                                         : NULL;
    if (needs_corrs && !a->corrs) { fprintf(stderr, "maskvim eval: %s\n", needs_corrs); return 2; }
    // Lists that do not parse are usage errors (2, as in `maskvim data corrupt`), found before any work.
    if (a->corrs && (corrupt_parse_severities(a->sev, a->sevs, "--severities") < 0 ||
                     corrupt_parse_names(a->corr_on, a->corrs, "--corruptions") < 0)) {
        fprintf(stderr, "maskvim eval: %s\n", mv_last_error());
        return 2;
    }
    return GO_ON;
}

// What every evaluated split shares: the model, the run's configuration and ranks, the
// corruptions and severities chosen (in a), and rank 0's --json file (jf, NULL without; nres
// records written so far).
typedef struct {
    const eval_args *a;
    mv_model *m;
    const mv_config *cfg;
    mv_comm *comm;
    FILE *jf;
    int nres;
} eval_job;

// Rank 0: the line of a corruption's mean mIoU over its `nsev` severities (`sum`: their sum).
static void print_corruption_mean(const char *domain, int c, double sum, int nsev) {
    char label[128];
    snprintf(label, sizeof label, "%s/%s/mean", domain, corrupt_name(c));
    // A split without a labelled pixel has no mIoU at any severity: '-' as in its rows.
    if (isnan(sum)) printf("%-36s mIoU      -  (mean over %d severities)\n", label, nsev);
    else printf("%-36s mIoU %6.2f  (mean over %d severities)\n", label, sum / nsev, nsev);
}

// One data.val source: its clean images, then each chosen (corruption, severity), each reported
// as it is done, and with several severities each corruption's mean. 0, or -1 with a message.
static int eval_one_source(eval_job *j, const mv_source *v) {
    const eval_args *a = j->a;
    bool r0 = j->comm->rank == 0;
    char path[1024];
    MV_TRY(source_resolve(path, sizeof path, v, "val", j->cfg, j->comm));
    for (int c = -1; c < CORRUPT_COUNT; c++) {   // -1: the clean images (severity 0)
        if (c >= 0 && !j->a->corr_on[c]) continue;
        double sum = 0;
        int nsev = 0;
        for (int s = c < 0 ? 0 : 1; s <= (c < 0 ? 0 : 5); s++) {
            if (c >= 0 && !j->a->sev[s]) continue;
            corrupt_ctx cc = {c, s, a->corr_seed, a->bgr};
            mv_eval_opts eo = {c >= 0 ? corrupt_hook : NULL, &cc, false};
            char label[128];
            if (c < 0) snprintf(label, sizeof label, "%s", v->name);
            else snprintf(label, sizeof label, "%s/%s/%d", v->name, corrupt_name(c), s);
            mv_seg_metrics res;
            MV_TRY(evaluate_split(&res, j->m, j->cfg, path, label, j->comm, &eo));
            sum += res.miou;
            nsev++;
            if (r0) report_result(label, &res, a->per_class, j->jf, &j->nres, v->name, c, s);
        }
        if (c >= 0 && nsev > 1 && r0) print_corruption_mean(v->name, c, sum, nsev);
    }
    return 0;
}

// Everything after the command line: the configuration and model, every wanted source, the
// --json file. Returns the exit status.
static int run_eval(const eval_args *a, int *argc, char ***argv) {
    mv_comm comm;
    if (comm_init(&comm, argc, argv) < 0) { fprintf(stderr, "maskvim eval: %s\n", mv_last_error()); return 1; }
    mv_config *cfg = mv_calloc(1, sizeof *cfg);
    mv_model *m = mv_calloc(1, sizeof *m);
    eval_job job = {.a = a, .m = m, .cfg = cfg, .comm = &comm};
    // --checkpoint first: without FILE the configuration is the one saved in it.
    const char *ckpt = a->ckpt;
    char ckpt_path[4096] = "";   // --checkpoint, or the checkpoint a run folder's `latest` names
    char *saved_yaml = NULL;
    int rc = inference_checkpoint(&comm, ckpt, comm.rank == 0 ? "maskvim eval: --checkpoint" : NULL, !a->file, ckpt_path,
                                  sizeof ckpt_path, &saved_yaml);
    if (rc == 0) ckpt = ckpt_path;
    if (rc == 0) rc = inference_config(cfg, a->file, ckpt, saved_yaml, a->nsets, a->sets, comm.rank == 0, "maskvim eval");
    // Each rank evaluates its share as it was started, and the shares are summed: another
    // data.scale or corruption seed on one rank would change the mIoU without a word.
    char options[MV_RANK_OPTIONS_MAX];
    snprintf(options, sizeof options, "--targets %.200s --corruptions %.200s --severities %.100s --corruption-seed %llu%s",
             a->targets ? a->targets : "(all)", a->corrs ? a->corrs : "(none)", a->corrs ? a->sevs : "(none)",
             (unsigned long long)a->corr_seed, a->bgr ? " --corruption-bgr" : "");
    if (rc == 0) rc = config_check_same_on_ranks(cfg, options, &comm);
    // An empty data.val: say what is missing before any work (the model set-up would run first,
    // then fail on the targets).
    if (rc == 0 && cfg->data.num_val == 0)
        rc = mv_fail("data.val is empty: no split to evaluate (e.g. --set 'data.val=[synthetic:clear,/data/bdd/val]')");
    // A --targets name that is no data.val source is a usage error (exit 2), as a bad option is.
    bool bad_targets = rc == 0 && check_targets(a->targets, cfg) < 0;
    if (bad_targets) rc = -1;
    if (rc == 0 && !a->file) rc = check_saved_paths(cfg, a->targets, ckpt, saved_yaml);
    free(saved_yaml);
    if (rc == 0) rc = model_build(m, &cfg->model);
    if (rc == 0) rc = weights_load_for_inference(&m->params, ckpt, comm.rank == 0 ? stderr : NULL, "maskvim eval");
    if (rc == 0) rc = checkpoint_verify_weights(ckpt);   // a training checkpoint's tensors are checksummed
    if (rc == 0 && comm.rank == 0) checkpoint_warn_eval_config(ckpt, cfg, stderr, "maskvim eval");
    // run.device: the GPU evaluates where one is present (each rank on its node-local GPU).
    char device[256];
    mv_run_ctx dev_ctx = {.world_size = comm.world};
    if (rc == 0) rc = engine_open(m, NULL, &cfg->run, &comm, &dev_ctx, device, sizeof device);
    if (rc == 0 && comm.rank == 0) fprintf(stderr, "maskvim eval: on %s\n", device);
    // --json appears whole once every split is evaluated; a failed evaluation leaves no file (or the
    // previous one as it was), so a script never reads part of the results as all of them.
    mv_atomic_file jout = {0};
    if (rc == 0 && a->json && comm.rank == 0 && (rc = mv_atomic_open(&jout, a->json)) == 0) job.jf = jout.f;
    if (job.jf) {
        fputs("{\"checkpoint\": ", job.jf);
        json_write_string(job.jf, ckpt);
        // What decides the corrupted pixels besides the corruption and severity: a sweep compares
        // them with its experiment file before it keeps these numbers.
        if (a->corrs)
            fprintf(job.jf, ", \"corruption_seed\": %llu, \"corruption_channels\": \"%s\"",
                    (unsigned long long)a->corr_seed, a->bgr ? "bgr" : "rgb");
        fputs(", \"results\": [\n", job.jf);
    }
    int found = 0;
    for (int i = 0; i < cfg->data.num_val && rc == 0; i++) {
        if (!wanted(a->targets, cfg->data.val[i].name)) continue;
        found++;
        rc = eval_one_source(&job, &cfg->data.val[i]);
    }
    if (rc == 0 && found == 0) rc = mv_fail("no data.val source matches --targets '%s'", a->targets);
    if (job.jf) {
        fprintf(job.jf, "\n]}\n");
        if (rc == 0) rc = mv_atomic_commit(&jout, false);
        else mv_atomic_abort(&jout);
    }
    if (rc < 0) {
        inference_explain_rotated(a->ckpt, ckpt_path);
        char msg[MV_ERRMSG_MAX + 32];
        snprintf(msg, sizeof msg, "eval: %s", mv_last_error());
        if (comm.world > 1) comm_abort(1, msg);
        fprintf(stderr, "maskvim %s\n", msg);
    }
    engine_close(m);
    model_free(m); free(m); free(cfg);
    comm_finalize(&comm);
    return rc < 0 ? (bad_targets ? 2 : 1) : 0;
}

int cmd_eval(int argc, char **argv) {
    eval_args a;
    int status = parse_eval_args(&a, argc, argv);
    if (status == GO_ON) status = run_eval(&a, &argc, &argv);
    free(a.sets);
    return status;
}
