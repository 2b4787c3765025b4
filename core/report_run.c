// One run directory of the report: its config.yaml flattened to "section.key" -> value, the
// training points and each domain's last evaluation from metrics.jsonl, and its state from
// status.json (or, without one, from schedule.max_iters), with a note on anything incomplete.
#include "core/report.h"
#include "core/report_internal.h"
#include "core/error.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include "core/fs.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------------------------------
// one run

static mv_report_domain *domain_slot(mv_report_run *run, const char *name) {
    for (int i = 0; i < run->ndomains; i++)
        if (!strcmp(run->domains[i].name, name)) return &run->domains[i];
    run->domains = mv_realloc(run->domains, (size_t)(run->ndomains + 1) * sizeof(mv_report_domain));
    mv_report_domain *d = &run->domains[run->ndomains++];
    memset(d, 0, sizeof *d);
    d->miou = NAN;
    copy_name(d->name, name, sizeof d->name);
    return d;
}

static void take_eval(mv_report_run *run, const mv_json *rec) {
    const mv_json *m = mv_json_get(rec, "metrics");
    const mv_json *dn = mv_json_get(rec, "domain");
    if (!dn || dn->kind != MV_JSON_STR) dn = mv_json_get(m, "domain");
    if (!dn || dn->kind != MV_JSON_STR || !m) return;
    mv_report_domain *d = domain_slot(run, dn->str);
    int iter = (int)mv_json_num(mv_json_get(rec, "iter"), 0);
    if (iter < d->iter) return; // keep the last evaluation
    d->iter = iter;
    d->miou = mv_json_num(mv_json_get(m, "mIoU"), NAN);
    const mv_json *iou = mv_json_get(m, "IoU");
    free(d->class_names); free(d->iou);
    d->class_names = NULL; d->iou = NULL; d->nclass = 0;
    if (iou && iou->kind == MV_JSON_OBJ && iou->n > 0) {
        d->nclass = iou->n;
        d->class_names = mv_calloc((size_t)iou->n, sizeof *d->class_names);
        d->iou = mv_calloc((size_t)iou->n, sizeof(double));
        for (int k = 0; k < iou->n; k++) {
            copy_name(d->class_names[k], iou->items[k].key, MV_REPORT_NAME);
            d->iou[k] = mv_json_num(&iou->items[k], NAN);
        }
    }
}

// A start record's commit joins the run's builds unless it is there already (a resume by the
// same build).
static void take_start(mv_report_run *run, const mv_json *rec) {
    // its global batch joins the run's unless it is there already
    mv_report_batch b = {(int)mv_json_num(mv_json_get(rec, "ranks"), 0),
                         (int)mv_json_num(mv_json_get(rec, "batch_per_rank"), 0)};
    bool seen = b.ranks < 1 || b.batch_per_rank < 1;   // a record without them tells nothing
    for (int i = 0; i < run->nbatches && !seen; i++)
        seen = run->batches[i].ranks == b.ranks && run->batches[i].batch_per_rank == b.batch_per_rank;
    if (!seen && run->nbatches < MV_REPORT_MAX_BATCHES) run->batches[run->nbatches++] = b;
    const mv_json *c = mv_json_get(rec, "commit");
    if (!c || c->kind != MV_JSON_STR || !c->str[0] || run->nbuilds == MV_REPORT_MAX_BUILDS) return;
    for (int i = 0; i < run->nbuilds; i++)
        if (!strcmp(run->builds[i], c->str)) return;
    copy_name(run->builds[run->nbuilds++], c->str, sizeof run->builds[0]);
}

static void take_train(mv_report_run *run, const mv_json *rec, int *cap) {
    if (run->npoints == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        run->points = mv_realloc(run->points, (size_t)*cap * sizeof(mv_report_point));
    }
    mv_report_point *p = &run->points[run->npoints++];
    memset(p, 0, sizeof *p);
    p->iter = (int)mv_json_num(mv_json_get(rec, "iter"), run->npoints);
    p->loss_total = mv_json_num(mv_json_get(rec, "loss_total"), NAN);
    p->loss_ce = mv_json_num(mv_json_get(rec, "loss_ce"), NAN);
    p->loss_aux = mv_json_num(mv_json_get(rec, "loss_aux"), NAN);
    p->loss_ratio = mv_json_num(mv_json_get(rec, "loss_ratio"), NAN);
    p->loss_position = mv_json_num(mv_json_get(rec, "loss_position"), NAN);
    p->lr = mv_json_num(mv_json_get(rec, "lr"), NAN);
    const mv_json *k = mv_json_get(rec, "keep_enc");
    if (k && k->kind == MV_JSON_ARR)
        for (int s = 0; s < k->n && s < MV_REPORT_MAX_STAGES; s++) p->keep_enc[p->nkeep_enc++] = mv_json_num(&k->items[s], NAN);
}

int mv_report_run_load_metrics(mv_report_run *run, const char *path) {
    char *text = mv_read_text_file(path, true);
    if (!text) return errno == ENOENT ? 1 : -1;
    int cap = 0, line = 0;
    bool partial_last = false;
    for (char *s = text; *s;) {
        char *nl = strchr(s, '\n');
        line++;
        if (nl) *nl = 0;
        char *p = s;
        while (isspace((unsigned char)*p)) p++;
        if (*p) {
            mv_json rec;
            if (mv_json_parse(&rec, p) < 0) {
                // a run still writing may have a cut last line: note it, do not fail
                if (!nl) { partial_last = true; break; }
                mv_fail_context("%s:%d", path, line);
                free(text);
                return -1;
            }
            const mv_json *type = mv_json_get(&rec, "type");
            if (rec.kind != MV_JSON_OBJ) {
                mv_json_free(&rec);
                free(text);
                return mv_fail("%s:%d: expected a JSON object per line", path, line);
            }
            if (type && type->kind == MV_JSON_STR) {
                if (!strcmp(type->str, "train")) take_train(run, &rec, &cap);
                else if (!strcmp(type->str, "eval")) take_eval(run, &rec);
                else if (!strcmp(type->str, "start")) take_start(run, &rec);
            }
            mv_json_free(&rec);
        }
        if (!nl) break;
        s = nl + 1;
    }
    free(text);
    if (partial_last) snprintf(run->note + strlen(run->note), sizeof run->note - strlen(run->note), "%smetrics.jsonl ends in a cut line; ", "");
    return 0;
}

// The name of a flow-mapping list item as the trainer writes data.val's entries,
// `- {name: "clear", path: ...}`, into out ("" when the line is not one).
static void flow_name(char *out, size_t n, const char *line) {
    const char *p = strstr(line, "{name:");
    if (!p) return;
    p += strlen("{name:");
    while (*p == ' ') p++;
    bool quoted = *p == '"';
    p += quoted;
    size_t k = 0;
    while (p[k] && (quoted ? p[k] != '"' : p[k] != ',' && p[k] != '}' && p[k] != ' ')) k++;
    snprintf(out, n, "%.*s", (int)k, p);
}

static void add_config(mv_report_run *run, int *cap, const char *key, const char *val) {
    if (run->ncfg == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        run->cfg_keys = mv_realloc(run->cfg_keys, (size_t)*cap * sizeof(char *));
        run->cfg_vals = mv_realloc(run->cfg_vals, (size_t)*cap * sizeof(char *));
    }
    run->cfg_keys[run->ncfg] = mv_strdup(key);
    run->cfg_vals[run->ncfg] = mv_strdup(val);
    run->ncfg++;
}

// "a.b.c." from the enclosing keys, truncated (never overflowing) at n - 1 characters.
static void join_keys(char *full, size_t n, char prefix[][128], int depth) {
    size_t len = 0;
    full[0] = 0;
    for (int d = 0; d < depth; d++) {
        int w = snprintf(full + len, n - len, "%s.", prefix[d]);
        if (w < 0 || len + (size_t)w >= n - 1) break;   // full (or cut short): stop there
        len += (size_t)w;
    }
}

// config.yaml as written by the trainer: "section:" lines and indented "key: value" lines.
// Only scalars and flow lists are kept, as text; nested maps deeper than two levels are named
// by their path too.
static void load_config(mv_report_run *run, const char *path) {
    char *text = mv_read_text_file(path, true);
    if (!text) { mv_clear_error(); return; }
    char prefix[8][128] = {{0}}, first_val[MV_REPORT_NAME] = "";
    int indents[8] = {0}, items[9] = {0}, depth = 0, cap = 0;
    for (char *s = text; *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        int ind = 0;
        while (s[ind] == ' ') ind++;
        char *line = s + ind, *colon = strchr(line, ':');
        if (*line == '-' && depth > 0) {
            // A list item (data.train, data.val): "section.key.N", its text as the value, so that
            // runs that differ in their data differ here too.
            while (depth > 1 && indents[depth - 1] > ind) depth--;   // (items may sit at their key's indent)
            char full[512], val[512];
            join_keys(full, sizeof full, prefix, depth);
            snprintf(full + strlen(full), sizeof full - strlen(full), "%d", items[depth]++);
            snprintf(val, sizeof val, "%s", line + 1 + strspn(line + 1, " "));
            add_config(run, &cap, full, val);
        }
        if (*line && *line != '#' && *line != '-' && colon) {
            while (depth > 0 && indents[depth - 1] >= ind) depth--;
            *colon = 0;
            char *val = colon + 1;
            while (*val == ' ') val++;
            char *hash = strstr(val, " #");
            if (hash) *hash = 0;
            size_t vl = strlen(val);
            while (vl && isspace((unsigned char)val[vl - 1])) val[--vl] = 0;
            if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') { val[vl - 1] = 0; val++; }
            char full[512];
            join_keys(full, sizeof full, prefix, depth);
            strncat(full, line, sizeof full - strlen(full) - 1);
            if (!*val) {
                if (depth < 8) {
                    copy_name(prefix[depth], line, sizeof prefix[0]);
                    indents[depth] = ind;
                    items[++depth] = 0;
                }
            } else {
                add_config(run, &cap, full, val);
            }
        }
        if (!nl) break;
        s = nl + 1;
    }
    free(text);
    // The source: run.select_domain, or when it is empty (its default) the first data.val entry.
    const char *first = mv_report_run_config(run, "data.val.0");
    if (first) flow_name(first_val, sizeof first_val, first);
    const char *sel = mv_report_run_config(run, "run.select_domain");
    copy_name(run->source, sel && *sel ? sel : first_val, sizeof run->source);
}

int mv_report_run_load(mv_report_run *run, const char *dir, const char *name) {
    memset(run, 0, sizeof *run);
    copy_name(run->name, name, sizeof run->name);
    copy_name(run->state, "unknown", sizeof run->state);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    load_config(run, path);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    int rc = mv_report_run_load_metrics(run, path);
    if (rc < 0) return -1;
    if (rc > 0) { mv_clear_error(); strcat(run->note, "no metrics.jsonl yet; "); }

    // status.json (written by the sweep runner) overrides the metrics' last evaluations
    snprintf(path, sizeof path, "%s/status.json", dir);
    char *text = mv_read_text_file(path, true);
    mv_json st;
    if (text && mv_json_parse(&st, text) < 0) {
        // One damaged status (cut short, edited by hand) must not sink the whole table: the row
        // is shown as incomplete with the reason, and the next sweep rewrites the file.
        free(text);
        size_t l = strlen(run->note);
        snprintf(run->note + l, sizeof run->note - l, "status.json damaged (%.120s); ", mv_last_error());
        mv_clear_error();
        copy_name(run->state, "unknown", sizeof run->state);
    } else if (text) {
        free(text);
        const mv_json *state = mv_json_get(&st, "state");
        if (state && state->kind == MV_JSON_STR) copy_name(run->state, state->str, sizeof run->state);
        const mv_json *err = mv_json_get(&st, "error"); // the sweep runner's reason for a failure
        if (err && err->kind == MV_JSON_STR) {
            size_t l = strlen(run->note);
            snprintf(run->note + l, sizeof run->note - l, "error: %.700s; ", err->str);
        }
        run->batch_asked = (int)mv_json_num(mv_json_get(&st, "global_batch"), 0);
        const mv_json *fin = mv_json_get(&st, "final");
        if (fin && fin->kind == MV_JSON_OBJ)
            for (int i = 0; i < fin->n; i++) {
                // null: undefined (a split without a labelled pixel), a value as much as a number
                if (fin->items[i].kind != MV_JSON_NUM && fin->items[i].kind != MV_JSON_NULL) continue;
                mv_report_domain *d = domain_slot(run, fin->items[i].key);
                d->miou = fin->items[i].kind == MV_JSON_NUM ? fin->items[i].num : NAN;
            }
        mv_json_free(&st);
    } else {
        if (errno != ENOENT) return -1;
        mv_clear_error();
        // Without a status, a run that reached schedule.max_iters is taken as finished. Training
        // evaluates every domain at its last iteration, so each domain's last evaluation must be
        // there too: a run cut while writing them (a cut last line, or a domain whose last
        // evaluation is older) would otherwise mix the final numbers with an earlier evaluation's.
        const char *mi = mv_report_run_config(run, "schedule.max_iters");
        int last = run->npoints ? run->points[run->npoints - 1].iter : 0, oldest = INT_MAX;
        for (int i = 0; i < run->ndomains; i++) {
            if (run->domains[i].iter > last) last = run->domains[i].iter;
            if (run->domains[i].iter < oldest) oldest = run->domains[i].iter;
        }
        if (mi && last > 0 && last >= atoi(mi) && (run->ndomains == 0 || oldest >= atoi(mi)))
            copy_name(run->state, "finished", sizeof run->state);
    }
    if (strcmp(run->state, "finished")) {
        run->incomplete = true;
        size_t l = strlen(run->note);
        snprintf(run->note + l, sizeof run->note - l, "state %s; ", run->state);
    }
    if (run->ndomains == 0) {
        run->incomplete = true;
        size_t l = strlen(run->note);
        snprintf(run->note + l, sizeof run->note - l, "no evaluation yet; ");
    } else if (run->incomplete) {
        // An unfinished run's numbers are those of an intermediate evaluation: say which (the
        // oldest and the newest, when the domains' last evaluations differ).
        int last = 0, first = INT_MAX;
        for (int i = 0; i < run->ndomains; i++) {
            if (run->domains[i].iter > last) last = run->domains[i].iter;
            if (run->domains[i].iter > 0 && run->domains[i].iter < first) first = run->domains[i].iter;
        }
        const char *mi = mv_report_run_config(run, "schedule.max_iters");
        size_t l = strlen(run->note);
        char from[64];
        if (first < last) snprintf(from, sizeof from, "iterations %d to %d", first, last);
        else snprintf(from, sizeof from, "iteration %d", last);
        if (last > 0 && mi && (last < atoi(mi) || first < last))
            snprintf(run->note + l, sizeof run->note - l, "numbers from %s of %d; ", from, atoi(mi));
        else if (last > 0 && !mi)
            snprintf(run->note + l, sizeof run->note - l, "numbers from %s; ", from);
    }
    mv_report_run_check_batch(run, run->batch_asked);
    size_t l = strlen(run->note);
    if (l >= 2) run->note[l - 2] = 0; // drop the trailing "; "
    return 0;
}

bool mv_report_run_check_batch(mv_report_run *run, int asked) {
    run->batch_asked = asked > 0 ? asked : 0;
    run->batch_differs = false;
    for (int i = 0; i < run->nbatches && run->batch_asked; i++)
        run->batch_differs |= run->batches[i].ranks * run->batches[i].batch_per_rank != run->batch_asked;
    return run->batch_differs;
}

void mv_report_batch_text(char *buf, size_t size, const mv_report_run *run) {
    snprintf(buf, size, "%s", run->nbatches ? "" : "not recorded");
    for (int i = 0; i < run->nbatches; i++) {
        const mv_report_batch *b = &run->batches[i];
        size_t l = strlen(buf);
        if (l < size)
            snprintf(buf + l, size - l, "%s%d (%d rank%s x %d)", i ? ", then " : "", b->ranks * b->batch_per_rank,
                     b->ranks, b->ranks == 1 ? "" : "s", b->batch_per_rank);
    }
}

void mv_report_batch_note(char *buf, size_t size, const mv_report_run *run) {
    char text[256];
    mv_report_batch_text(text, sizeof text, run);
    int n = snprintf(buf, size, "global batch %s; the experiment file asks for %d (global_batch)", text,
                     run->batch_asked);
    // the remedy, from the last start's batch per rank (the one a rerun would keep)
    const mv_report_batch *b = run->nbatches ? &run->batches[run->nbatches - 1] : NULL;
    if (b && n >= 0 && (size_t)n < size && run->batch_asked % b->batch_per_rank == 0)
        snprintf(buf + n, size - (size_t)n, ": train it on %d rank%s", run->batch_asked / b->batch_per_rank,
                 run->batch_asked / b->batch_per_rank == 1 ? "" : "s");
}

void mv_report_run_free(mv_report_run *run) {
    free(run->points);
    for (int i = 0; i < run->ndomains; i++) { free(run->domains[i].class_names); free(run->domains[i].iou); }
    free(run->domains);
    for (int i = 0; i < run->ncfg; i++) { free(run->cfg_keys[i]); free(run->cfg_vals[i]); }
    free(run->cfg_keys);
    free(run->cfg_vals);
    memset(run, 0, sizeof *run);
}

const mv_report_domain *mv_report_run_domain(const mv_report_run *run, const char *domain) {
    for (int i = 0; i < run->ndomains; i++)
        if (!strcmp(run->domains[i].name, domain)) return &run->domains[i];
    return NULL;
}

const char *mv_report_run_config(const mv_report_run *run, const char *key) {
    for (int i = 0; i < run->ncfg; i++)
        if (!strcmp(run->cfg_keys[i], key)) return run->cfg_vals[i];
    return NULL;
}
