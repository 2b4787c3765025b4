// The report's data side: a minimal JSON reader for the flat records of metrics.jsonl and
// status.json, the loading of run directories into one table (ours, the paper's, the
// difference), the grouping of runs by seed (mean and spread per row), and the Markdown, CSV
// and JSON writers. The HTML page is in core/report_html.c.
#include "core/report.h"
#include "core/json_write.h"
#include "core/error.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ------------------------------------------------------------------------------------------
// JSON

typedef struct { const char *s, *start; } jcur;

static void skip_ws(jcur *c) { while (*c->s && isspace((unsigned char)*c->s)) c->s++; }

static int jfail(const jcur *c, const char *what) {
    return mv_fail("column %d: %s", (int)(c->s - c->start) + 1, what);
}

static int parse_value(mv_json *v, jcur *c, int depth);

static int parse_string(char **out, jcur *c) {
    // c->s points at the opening quote
    c->s++;
    size_t cap = 16, n = 0;
    char *b = mv_malloc(cap);
    for (;;) {
        char ch = *c->s;
        if (!ch) { free(b); return jfail(c, "unterminated string"); }
        c->s++;
        if (ch == '"') break;
        if (ch == '\\') {
            char e = *c->s++;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                // names here are ASCII; other code points become '?'
                unsigned code = 0;
                for (int k = 0; k < 4; k++) {
                    char h = *c->s;
                    if (!isxdigit((unsigned char)h)) { free(b); return jfail(c, "bad \\u escape"); }
                    code = code * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                    c->s++;
                }
                ch = code < 128 ? (char)code : '?';
                break;
            }
            default: free(b); return jfail(c, "bad escape in string");
            }
        }
        if (n + 2 > cap) { cap *= 2; b = realloc(b, cap); MV_CHECK(b, "out of memory"); }
        b[n++] = ch;
    }
    b[n] = 0;
    *out = b;
    return 0;
}

static int push_item(mv_json *v, int *cap) {
    if (v->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        v->items = realloc(v->items, (size_t)*cap * sizeof(mv_json));
        MV_CHECK(v->items, "out of memory");
    }
    memset(&v->items[v->n], 0, sizeof(mv_json));
    return v->n++;
}

static int parse_container(mv_json *v, jcur *c, int depth, bool obj) {
    v->kind = obj ? MV_JSON_OBJ : MV_JSON_ARR;
    char close = obj ? '}' : ']';
    int cap = 0;
    c->s++;
    skip_ws(c);
    if (*c->s == close) { c->s++; return 0; }
    for (;;) {
        skip_ws(c);
        int i = push_item(v, &cap);
        if (obj) {
            if (*c->s != '"') return jfail(c, "expected a member name");
            MV_TRY(parse_string(&v->items[i].key, c));
            skip_ws(c);
            if (*c->s != ':') return jfail(c, "expected ':'");
            c->s++;
        }
        char *key = v->items[i].key;
        MV_TRY(parse_value(&v->items[i], c, depth + 1));
        v->items[i].key = key;
        skip_ws(c);
        if (*c->s == ',') { c->s++; continue; }
        if (*c->s == close) { c->s++; return 0; }
        return jfail(c, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(mv_json *v, jcur *c, int depth) {
    if (depth > 32) return jfail(c, "nested too deeply");
    skip_ws(c);
    char ch = *c->s;
    if (ch == '{' || ch == '[') return parse_container(v, c, depth, ch == '{');
    if (ch == '"') { v->kind = MV_JSON_STR; return parse_string(&v->str, c); }
    if (!strncmp(c->s, "null", 4)) { v->kind = MV_JSON_NULL; c->s += 4; return 0; }
    if (!strncmp(c->s, "true", 4)) { v->kind = MV_JSON_BOOL; v->num = 1; c->s += 4; return 0; }
    if (!strncmp(c->s, "false", 5)) { v->kind = MV_JSON_BOOL; v->num = 0; c->s += 5; return 0; }
    // numbers; NaN/Infinity as some writers print them are read too
    if (!strncmp(c->s, "NaN", 3)) { v->kind = MV_JSON_NUM; v->num = NAN; c->s += 3; return 0; }
    char *end;
    errno = 0;
    double d = strtod(c->s, &end);
    if (end == c->s || !(ch == '-' || isdigit((unsigned char)ch) || ch == 'I')) return jfail(c, "expected a value");
    v->kind = MV_JSON_NUM;
    v->num = d;
    c->s = end;
    return 0;
}

int mv_json_parse(mv_json *out, const char *text) {
    memset(out, 0, sizeof *out);
    jcur c = {text, text};
    if (parse_value(out, &c, 0) < 0) { mv_json_free(out); return -1; }
    skip_ws(&c);
    if (*c.s) { mv_json_free(out); return jfail(&c, "unexpected text after the value"); }
    return 0;
}

const mv_json *mv_json_get(const mv_json *obj, const char *key) {
    if (!obj || obj->kind != MV_JSON_OBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (obj->items[i].key && !strcmp(obj->items[i].key, key)) return &obj->items[i];
    return NULL;
}

double mv_json_num(const mv_json *v, double fallback) {
    return v && (v->kind == MV_JSON_NUM || v->kind == MV_JSON_BOOL) ? v->num : fallback;
}

void mv_json_free(mv_json *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) mv_json_free(&v->items[i]);
    free(v->items);
    free(v->str);
    free(v->key);
    memset(v, 0, sizeof *v);
}

// ------------------------------------------------------------------------------------------
// files

// Whole file as a string; NULL (with a message) when unreadable.
static char *read_file(const char *path, bool quiet_missing) {
    FILE *f = fopen(path, "rb");
    if (!f) { if (!quiet_missing || errno != ENOENT) mv_fail("%s: %s", path, strerror(errno)); return NULL; }
    size_t cap = 4096, n = 0;
    char *b = mv_malloc(cap);
    size_t got;
    while ((got = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) { cap *= 2; b = realloc(b, cap); MV_CHECK(b, "out of memory"); }
    }
    b[n] = 0;
    fclose(f);
    return b;
}

static bool file_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

static void copy_name(char *dst, const char *src, size_t cap) {
    snprintf(dst, cap, "%s", src ? src : "");
}

// ------------------------------------------------------------------------------------------
// one run

static mv_report_domain *domain_slot(mv_report_run *run, const char *name) {
    for (int i = 0; i < run->ndomains; i++)
        if (!strcmp(run->domains[i].name, name)) return &run->domains[i];
    run->domains = realloc(run->domains, (size_t)(run->ndomains + 1) * sizeof(mv_report_domain));
    MV_CHECK(run->domains, "out of memory");
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

static void take_train(mv_report_run *run, const mv_json *rec, int *cap) {
    if (run->npoints == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        run->points = realloc(run->points, (size_t)*cap * sizeof(mv_report_point));
        MV_CHECK(run->points, "out of memory");
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

static int load_metrics(mv_report_run *run, const char *path) {
    char *text = read_file(path, true);
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

// config.yaml as written by the trainer: "section:" lines and indented "key: value" lines.
// Only scalars and flow lists are kept, as text; nested maps deeper than two levels are named
// by their path too.
static void load_config(mv_report_run *run, const char *path) {
    char *text = read_file(path, true);
    if (!text) { mv_clear_error(); return; }
    char prefix[8][128] = {{0}};
    int indents[8] = {0}, depth = 0, cap = 0;
    for (char *s = text; *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        int ind = 0;
        while (s[ind] == ' ') ind++;
        char *line = s + ind, *colon = strchr(line, ':');
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
            char full[512] = "";
            for (int d = 0; d < depth; d++) { strncat(full, prefix[d], sizeof full - strlen(full) - 2); strcat(full, "."); }
            strncat(full, line, sizeof full - strlen(full) - 1);
            if (!*val) {
                if (depth < 8) { copy_name(prefix[depth], line, sizeof prefix[0]); indents[depth] = ind; depth++; }
            } else {
                if (run->ncfg == cap) {
                    cap = cap ? cap * 2 : 64;
                    run->cfg_keys = realloc(run->cfg_keys, (size_t)cap * sizeof(char *));
                    run->cfg_vals = realloc(run->cfg_vals, (size_t)cap * sizeof(char *));
                    MV_CHECK(run->cfg_keys && run->cfg_vals, "out of memory");
                }
                run->cfg_keys[run->ncfg] = strdup(full);
                run->cfg_vals[run->ncfg] = strdup(val);
                run->ncfg++;
            }
        }
        if (!nl) break;
        s = nl + 1;
    }
    free(text);
}

int mv_report_run_load(mv_report_run *run, const char *dir, const char *name) {
    memset(run, 0, sizeof *run);
    copy_name(run->name, name, sizeof run->name);
    copy_name(run->state, "unknown", sizeof run->state);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    load_config(run, path);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    int rc = load_metrics(run, path);
    if (rc < 0) return -1;
    if (rc > 0) { mv_clear_error(); strcat(run->note, "no metrics.jsonl yet; "); }

    // status.json (written by the sweep runner) overrides the metrics' last evaluations
    snprintf(path, sizeof path, "%s/status.json", dir);
    char *text = read_file(path, true);
    if (text) {
        mv_json st;
        if (mv_json_parse(&st, text) < 0) { free(text); return mv_fail_context("%s", path); }
        free(text);
        const mv_json *state = mv_json_get(&st, "state");
        if (state && state->kind == MV_JSON_STR) copy_name(run->state, state->str, sizeof run->state);
        const mv_json *err = mv_json_get(&st, "error"); // the sweep runner's reason for a failure
        if (err && err->kind == MV_JSON_STR) {
            size_t l = strlen(run->note);
            snprintf(run->note + l, sizeof run->note - l, "error: %.180s; ", err->str);
        }
        const mv_json *fin = mv_json_get(&st, "final");
        if (fin && fin->kind == MV_JSON_OBJ)
            for (int i = 0; i < fin->n; i++) {
                if (fin->items[i].kind != MV_JSON_NUM) continue;
                mv_report_domain *d = domain_slot(run, fin->items[i].key);
                d->miou = fin->items[i].num;
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
    size_t l = strlen(run->note);
    if (l >= 2) run->note[l - 2] = 0; // drop the trailing "; "
    return 0;
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

// ------------------------------------------------------------------------------------------
// the table

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_number(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    double d = strtod(s, &end);
    if (*end) return false;
    *out = d;
    return true;
}

// The one numeric config key (outside run.*) whose value differs over the runs: the grid axis.
static void find_sweep_key(mv_report *rep) {
    rep->sweep_key[0] = 0;
    if (rep->nruns < 2) return;
    const mv_report_run *r0 = &rep->runs[0];
    for (int r = rep->nruns - 1; r >= 0; r--) if (rep->runs[r].ncfg) r0 = &rep->runs[r];
    int found = 0;
    for (int k = 0; k < r0->ncfg; k++) {
        const char *key = r0->cfg_keys[k];
        if (!strncmp(key, "run.", 4)) continue;
        bool differs = false, numeric = true;
        double v;
        for (int r = 0; r < rep->nruns; r++) {
            if (rep->runs[r].ncfg == 0) continue; // no config.yaml (yet): says nothing about the grid
            const char *val = mv_report_run_config(&rep->runs[r], key);
            if (!val) { numeric = false; break; }
            if (!is_number(val, &v)) numeric = false;
            if (strcmp(val, r0->cfg_vals[k])) differs = true;
        }
        if (!differs) continue;
        found++;
        if (numeric && found == 1) copy_name(rep->sweep_key, key, sizeof rep->sweep_key);
    }
    if (found != 1) rep->sweep_key[0] = 0; // several keys vary: not a one-key grid
}

static void add_column(mv_report *rep, int *cap, const char *name) {
    for (int c = 0; c < rep->ncolumns; c++) if (!strcmp(rep->columns[c], name)) return;
    if (rep->ncolumns == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        rep->columns = realloc(rep->columns, (size_t)*cap * sizeof *rep->columns);
        MV_CHECK(rep->columns, "out of memory");
        if (rep->labels) {
            rep->labels = realloc(rep->labels, (size_t)*cap * sizeof *rep->labels);
            MV_CHECK(rep->labels, "out of memory");
        }
    }
    copy_name(rep->columns[rep->ncolumns], name, MV_REPORT_NAME);
    if (rep->labels) copy_name(rep->labels[rep->ncolumns], name, MV_REPORT_NAME);
    rep->ncolumns++;
}

// ------------------------------------------------------------------------------------------
// seeds

static void free_row_stats(mv_report_row *row) {
    free(row->run); free(row->used); free(row->value); free(row->mean); free(row->sd); free(row->n); free(row->paper);
}

static void free_rows(mv_report *rep) {
    for (int g = 0; g < rep->nrows; g++) free_row_stats(&rep->rows[g]);
    free(rep->rows);
    rep->rows = NULL;
}

static void note_add(char *note, size_t size, const char *fmt, const char *a, const char *b) {
    size_t l = strlen(note);
    snprintf(note + l, size - l, fmt, a, b);
}

// rep->rows from the runs' table (ours) for the current columns and run order.
static void regroup(mv_report *rep) {
    int w = rep->ncolumns + 1, ns = rep->nseeds;
    for (int g = 0; g < rep->nrows; g++) {
        mv_report_row *row = &rep->rows[g];
        free_row_stats(row);
        row->run = mv_calloc((size_t)ns, sizeof(int));
        row->used = mv_calloc((size_t)ns, sizeof(bool));
        row->value = mv_calloc((size_t)(ns * w), sizeof(double));
        row->mean = mv_calloc((size_t)w, sizeof(double));
        row->sd = mv_calloc((size_t)w, sizeof(double));
        row->n = mv_calloc((size_t)w, sizeof(int));
        row->paper = mv_calloc((size_t)w, sizeof(double));
        row->note[0] = 0;
        row->nused = 0;
        for (int k = 0; k < ns; k++) {
            const char *name = rep->seed_runs[g * ns + k];
            int r = -1;
            for (int i = 0; i < rep->nruns && r < 0; i++) if (!strcmp(rep->runs[i].name, name)) r = i;
            row->run[k] = r;
            bool used = r >= 0 && !strcmp(rep->runs[r].state, "finished");
            if (r < 0) note_add(row->note, sizeof row->note, "%s: not run%s; ", name, "");
            else if (!used) note_add(row->note, sizeof row->note, "%s: %s; ", name, rep->runs[r].state);
            if (used) {
                // A directory trained with another seed (an older single-seed run) is not this seed.
                const char *sv = mv_report_run_config(&rep->runs[r], "run.seed");
                char want[16];
                snprintf(want, sizeof want, "%d", rep->seeds[k]);
                if (sv && strcmp(sv, want)) {
                    used = false;
                    note_add(row->note, sizeof row->note, "%s: trained with run.seed %s, left out; ", name, sv);
                }
            }
            row->used[k] = used;
            row->nused += used;
            for (int c = 0; c < w; c++) row->value[k * w + c] = used ? rep->ours[r * w + c] : NAN;
        }
        for (int c = 0; c < w; c++) {
            double sum = 0, sq = 0;
            int n = 0;
            for (int k = 0; k < ns; k++) {
                double v = row->value[k * w + c];
                if (isnan(v)) continue;
                sum += v;
                n++;
            }
            double mean = n ? sum / n : NAN;
            for (int k = 0; k < ns; k++) {
                double v = row->value[k * w + c];
                if (!isnan(v)) sq += (v - mean) * (v - mean);
            }
            row->n[c] = n;
            row->mean[c] = mean;
            row->sd[c] = n >= 2 ? sqrt(sq / (n - 1)) : NAN;
            row->paper[c] = NAN;
        }
        size_t l = strlen(row->note);
        if (l >= 2) row->note[l - 2] = 0;
    }
}

void mv_report_set_seeds(mv_report *rep, const char *const *rows, int nrows, const int *seeds, int nseeds,
                         const char *const *run_names) {
    free_rows(rep);
    free(rep->seeds);
    free(rep->seed_runs);
    rep->seeds = NULL;
    rep->seed_runs = NULL;
    rep->nrows = rep->nseeds = 0;
    if (nseeds <= 0 || nrows <= 0) return;
    rep->nseeds = nseeds;
    rep->nrows = nrows;
    rep->seeds = mv_calloc((size_t)nseeds, sizeof(int));
    memcpy(rep->seeds, seeds, (size_t)nseeds * sizeof(int));
    rep->seed_runs = mv_calloc((size_t)(nrows * nseeds), sizeof *rep->seed_runs);
    for (int i = 0; i < nrows * nseeds; i++) copy_name(rep->seed_runs[i], run_names[i], MV_REPORT_NAME);
    rep->rows = mv_calloc((size_t)nrows, sizeof *rep->rows);
    for (int g = 0; g < nrows; g++) copy_name(rep->rows[g].name, rows[g], MV_REPORT_NAME);
    regroup(rep);
}

void mv_report_format_stat(char *buf, size_t size, double mean, double sd, int n, int nseeds) {
    if (n == 0 || isnan(mean)) { snprintf(buf, size, "—"); return; }
    int w = isnan(sd) ? snprintf(buf, size, "%.2f", mean) : snprintf(buf, size, "%.2f ± %.2f", mean, sd);
    if (n < nseeds && w > 0 && (size_t)w < size) snprintf(buf + w, size - (size_t)w, " (%d/%d)", n, nseeds);
}

// ------------------------------------------------------------------------------------------
// the table (continued)

// ours[][] from the runs for the current columns; paper[][] cleared (and the seed rows redone).
static void fill_table(mv_report *rep) {
    int w = rep->ncolumns + 1;
    free(rep->ours);
    free(rep->paper);
    rep->ours = mv_malloc((size_t)(rep->nruns > 0 ? rep->nruns : 1) * (size_t)w * sizeof(double));
    rep->paper = mv_malloc((size_t)(rep->nruns > 0 ? rep->nruns : 1) * (size_t)w * sizeof(double));
    for (int r = 0; r < rep->nruns; r++) {
        double sum = 0;
        int n = 0;
        bool all = true;
        for (int c = 0; c < rep->ncolumns; c++) {
            const mv_report_domain *d = mv_report_run_domain(&rep->runs[r], rep->columns[c]);
            double v = d ? d->miou : NAN;
            rep->ours[r * w + c] = v;
            rep->paper[r * w + c] = NAN;
            if (c == 0) continue;
            if (isnan(v)) all = false; else { sum += v; n++; }
        }
        // the mean over targets only when every target is there: a partial mean would mislead
        rep->ours[r * w + rep->ncolumns] = all && n > 0 ? sum / n : NAN;
        rep->paper[r * w + rep->ncolumns] = NAN;
    }
    if (rep->nseeds) regroup(rep);
}

static void build_table(mv_report *rep) {
    int cap = 0;
    for (int r = 0; r < rep->nruns; r++)
        for (int d = 0; d < rep->runs[r].ndomains; d++) add_column(rep, &cap, rep->runs[r].domains[d].name);
    fill_table(rep);
    find_sweep_key(rep);
}

void mv_report_set_columns(mv_report *rep, const char *const *domains, const char *const *labels, int n,
                           const char *mean_label) {
    char (*old)[MV_REPORT_NAME] = rep->columns;
    int nold = rep->ncolumns, cap = 0;
    free(rep->labels);
    rep->columns = NULL;
    rep->ncolumns = 0;
    rep->labels = mv_calloc(1, sizeof *rep->labels);   // non-NULL: add_column keeps labels
    for (int i = 0; i < n; i++) {
        int before = rep->ncolumns;
        add_column(rep, &cap, domains[i]);
        if (rep->ncolumns > before && labels && labels[i]) copy_name(rep->labels[before], labels[i], MV_REPORT_NAME);
    }
    for (int c = 0; c < nold; c++) add_column(rep, &cap, old[c]);
    free(old);
    copy_name(rep->mean_label, mean_label ? mean_label : "", sizeof rep->mean_label);
    fill_table(rep);
}

void mv_report_order_runs(mv_report *rep, const char *const *names, int n) {
    mv_report_run *runs = mv_calloc((size_t)(rep->nruns > 0 ? rep->nruns : 1), sizeof *runs);
    bool *taken = mv_calloc((size_t)(rep->nruns > 0 ? rep->nruns : 1), sizeof *taken);
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < rep->nruns; r++)
            if (!taken[r] && !strcmp(rep->runs[r].name, names[i])) { runs[k++] = rep->runs[r]; taken[r] = true; }
    for (int r = 0; r < rep->nruns; r++) if (!taken[r]) runs[k++] = rep->runs[r];   // already sorted by name
    memcpy(rep->runs, runs, (size_t)rep->nruns * sizeof *runs);
    free(runs);
    free(taken);
    fill_table(rep);
}

void mv_report_add_missing(mv_report *rep, const char *const *names, int n) {
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int r = 0; r < rep->nruns && !found; r++) found = !strcmp(rep->runs[r].name, names[i]);
        if (found) continue;
        rep->runs = realloc(rep->runs, (size_t)(rep->nruns + 1) * sizeof *rep->runs);
        MV_CHECK(rep->runs, "out of memory");
        mv_report_run *run = &rep->runs[rep->nruns++];
        memset(run, 0, sizeof *run);
        copy_name(run->name, names[i], sizeof run->name);
        copy_name(run->state, "not run", sizeof run->state);
        run->incomplete = true;
        copy_name(run->note, "not run (no run directory)", sizeof run->note);
    }
    fill_table(rep);
}

void mv_report_mark_stale(mv_report *rep, const char *name, const char *why) {
    for (int r = 0; r < rep->nruns; r++) {
        mv_report_run *run = &rep->runs[r];
        if (strcmp(run->name, name)) continue;
        char note[2 * sizeof run->note + 512];
        snprintf(note, sizeof note, "%s%s%s", why, run->note[0] ? "; " : "", run->note);
        note[sizeof run->note - 1] = 0;   // what fits
        memcpy(run->note, note, sizeof run->note);
        copy_name(run->state, "stale", sizeof run->state);
        run->incomplete = true;
    }
    fill_table(rep);
}

// The run and the seed row called `name` (-1 where none).
static void find_row(const mv_report *rep, const char *name, int *r, int *g) {
    *r = *g = -1;
    for (int k = 0; k < rep->nruns; k++) if (!strcmp(rep->runs[k].name, name)) *r = k;
    for (int k = 0; k < rep->nrows; k++) if (!strcmp(rep->rows[k].name, name)) *g = k;
}

int mv_report_set_paper_cell(mv_report *rep, const char *run, const char *column, double value) {
    int r, g, c = -1, w = rep->ncolumns + 1;
    find_row(rep, run, &r, &g);
    if (!strcmp(column, "mean") || !strcmp(column, "avg")) c = rep->ncolumns;
    for (int k = 0; k < rep->ncolumns; k++) if (!strcmp(rep->columns[k], column)) c = k;
    if ((r < 0 && g < 0) || c < 0) return 1;
    if (r >= 0) rep->paper[r * w + c] = value;
    if (g >= 0) rep->rows[g].paper[c] = value;
    return 0;
}

const char *mv_report_label(const mv_report *rep, int c) {
    if (c >= rep->ncolumns) return rep->mean_label[0] ? rep->mean_label : "mean";
    return rep->labels ? rep->labels[c] : rep->columns[c];
}

int mv_report_set_paper(mv_report *rep, const char *paper_json) {
    char *text = read_file(paper_json, false);
    if (!text) return -1;
    mv_json pj;
    if (mv_json_parse(&pj, text) < 0) { free(text); return mv_fail_context("%s", paper_json); }
    free(text);
    if (pj.kind != MV_JSON_OBJ) { mv_json_free(&pj); return mv_fail("%s: expected {\"row\": {\"column\": number}}", paper_json); }
    int w = rep->ncolumns + 1;
    for (int i = 0; i < pj.n; i++) {
        const mv_json *row = &pj.items[i];
        int r, g;
        find_row(rep, row->key, &r, &g);
        if (r < 0 && g < 0) { fprintf(stderr, "maskvim report: %s: row '%s' has no run directory (left out)\n", paper_json, row->key); continue; }
        if (row->kind != MV_JSON_OBJ) { int rc = mv_fail("%s: row '%s': expected an object of column: number", paper_json, row->key); mv_json_free(&pj); return rc; }
        for (int j = 0; j < row->n; j++) {
            const mv_json *cell = &row->items[j];
            int c = -1;
            if (!strcmp(cell->key, "mean") || !strcmp(cell->key, "avg")) c = rep->ncolumns;
            for (int k = 0; k < rep->ncolumns; k++) if (!strcmp(rep->columns[k], cell->key)) c = k;
            if (c < 0) { fprintf(stderr, "maskvim report: %s: row '%s': column '%s' was not evaluated (left out)\n", paper_json, row->key, cell->key); continue; }
            if (cell->kind != MV_JSON_NUM) { int rc = mv_fail("%s: row '%s' column '%s': expected a number", paper_json, row->key, cell->key); mv_json_free(&pj); return rc; }
            if (r >= 0) rep->paper[r * w + c] = cell->num;
            if (g >= 0) rep->rows[g].paper[c] = cell->num;
        }
    }
    mv_json_free(&pj);
    return 0;
}

int mv_report_load(mv_report *rep, const char *runs_dir, const char *paper_json, const char *title) {
    memset(rep, 0, sizeof *rep);
    copy_name(rep->title, title ? title : "MaskViM results", sizeof rep->title);
    DIR *dir = opendir(runs_dir);
    if (!dir) return mv_fail("%s: %s", runs_dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        bool run = false;
        const char *files[] = {"metrics.jsonl", "config.yaml", "status.json"};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s/%s", runs_dir, e->d_name, files[k]);
            if (file_exists(path)) run = true;
        }
        if (!run) continue;
        if (n == cap) { cap = cap ? cap * 2 : 16; names = realloc(names, (size_t)cap * sizeof(char *)); MV_CHECK(names, "out of memory"); }
        names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    if (n == 0) { free(names); return mv_fail("%s: no run directories (subdirectories with metrics.jsonl, config.yaml or status.json)", runs_dir); }
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    rep->runs = mv_calloc((size_t)n, sizeof(mv_report_run));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", runs_dir, names[i]);
        if (rc == 0 && mv_report_run_load(&rep->runs[rep->nruns], path, names[i]) < 0) {
            mv_report_run_free(&rep->runs[rep->nruns]);
            rc = -1;
        } else if (rc == 0) rep->nruns++;
        free(names[i]);
    }
    free(names);
    if (rc < 0) { mv_report_free(rep); return -1; }
    build_table(rep);
    if (paper_json && mv_report_set_paper(rep, paper_json) < 0) { mv_report_free(rep); return -1; }
    return 0;
}

void mv_report_free(mv_report *rep) {
    free_rows(rep);
    free(rep->seeds);
    free(rep->seed_runs);
    for (int i = 0; i < rep->nruns; i++) mv_report_run_free(&rep->runs[i]);
    free(rep->runs);
    free(rep->columns);
    free(rep->labels);
    free(rep->ours);
    free(rep->paper);
    memset(rep, 0, sizeof *rep);
}

// ------------------------------------------------------------------------------------------
// Markdown and CSV

static void md_cell(FILE *f, double ours, double paper) {
    if (isnan(ours) && isnan(paper)) { fputs(" — |", f); return; }
    if (isnan(paper)) { fprintf(f, " %.2f |", ours); return; }
    if (isnan(ours)) { fprintf(f, " — (paper %.2f) |", paper); return; }
    fprintf(f, " %.2f (paper %.2f, %+.2f) |", ours, paper, ours - paper);
}

static void md_stat_cell(FILE *f, const mv_report *rep, const mv_report_row *row, int c) {
    char buf[96];
    mv_report_format_stat(buf, sizeof buf, row->mean[c], row->sd[c], row->n[c], rep->nseeds);
    double p = row->paper[c];
    if (isnan(p)) { fprintf(f, " %s |", buf); return; }
    if (row->n[c] == 0) { fprintf(f, " — (paper %.2f) |", p); return; }
    fprintf(f, " %s (paper %.2f, %+.2f) |", buf, p, row->mean[c] - p);
}

// The seed list as "0, 1, 2".
static void seed_list(char *buf, size_t size, const mv_report *rep) {
    buf[0] = 0;
    for (int k = 0; k < rep->nseeds; k++) {
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, "%s%d", k ? ", " : "", rep->seeds[k]);
    }
}

// With seeds: the table of means and spreads, then every seed's value.
static void md_seed_tables(FILE *f, const mv_report *rep) {
    int w = rep->ncolumns + 1;
    char seeds[256];
    seed_list(seeds, sizeof seeds, rep);
    fprintf(f, "mIoU (%%) per evaluated domain. The first domain (%s) is the source; **%s** averages the "
               "targets (all other domains). Each cell is the **mean ± sample standard deviation** (n − 1 in the "
               "denominator) of the final mIoU over the seeds whose run finished (seeds %s); **(k/%d)** "
               "marks a cell with only k of the %d seeds (no ± with one). Where the paper gives a number: "
               "mean (paper, mean − paper). Missing cells: —.\n\n",
            rep->ncolumns ? rep->columns[0] : "none", mv_report_label(rep, rep->ncolumns), seeds, rep->nseeds,
            rep->nseeds);
    fputs("| row | seeds |", f);
    for (int c = 0; c < rep->ncolumns; c++) fprintf(f, " %s%s |", mv_report_label(rep, c), c == 0 ? " (source)" : "");
    fprintf(f, " %s |\n|---|---:|", mv_report_label(rep, rep->ncolumns));
    for (int c = 0; c < w; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int g = 0; g < rep->nrows; g++) {
        const mv_report_row *row = &rep->rows[g];
        fprintf(f, "| %s%s | %d/%d |", row->name, row->nused < rep->nseeds ? " *" : "", row->nused, rep->nseeds);
        for (int c = 0; c < w; c++) md_stat_cell(f, rep, row, c);
        fputc('\n', f);
    }
    int ninc = 0;
    for (int g = 0; g < rep->nrows; g++) ninc += rep->rows[g].nused < rep->nseeds;
    if (ninc) {
        fprintf(f, "\n\\* rows with seeds missing (%d of %d):\n\n", ninc, rep->nrows);
        for (int g = 0; g < rep->nrows; g++)
            if (rep->rows[g].nused < rep->nseeds) fprintf(f, "- %s: %s\n", rep->rows[g].name, rep->rows[g].note);
    } else {
        fprintf(f, "\nAll %d rows finished with all %d seeds.\n", rep->nrows, rep->nseeds);
    }
    fputs("\n## Per seed\n\nThe final mIoU (%) of each run (—: not finished, or not counted).\n\n| row | seed | run |", f);
    for (int c = 0; c < w; c++) fprintf(f, " %s |", mv_report_label(rep, c));
    fputs("\n|---|---:|---|", f);
    for (int c = 0; c < w; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int g = 0; g < rep->nrows; g++) {
        const mv_report_row *row = &rep->rows[g];
        for (int k = 0; k < rep->nseeds; k++) {
            fprintf(f, "| %s | %d | %s |", row->name, rep->seeds[k], rep->seed_runs[g * rep->nseeds + k]);
            for (int c = 0; c < w; c++) {
                double v = row->value[k * w + c];
                if (isnan(v)) fputs(" — |", f); else fprintf(f, " %.2f |", v);
            }
            fputc('\n', f);
        }
    }
}

int mv_report_write_md(const mv_report *rep, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return mv_fail("%s: %s", path, strerror(errno));
    int w = rep->ncolumns + 1;
    fprintf(f, "# %s\n\n", rep->title);
    if (rep->nseeds) {
        md_seed_tables(f, rep);
        fputs("\n## Runs\n\n", f);
    }
    fprintf(f, "mIoU (%%) per evaluated domain. The first domain (%s) is the source; **mean** averages the "
               "targets (all other domains). Where the paper gives a number: ours (paper, difference). "
               "Missing cells: —.\n\n", rep->ncolumns ? rep->columns[0] : "none");
    fputs("| run |", f);
    for (int c = 0; c < rep->ncolumns; c++) fprintf(f, " %s%s |", mv_report_label(rep, c), c == 0 ? " (source)" : "");
    fprintf(f, " %s |\n|---|", mv_report_label(rep, rep->ncolumns));
    for (int c = 0; c <= rep->ncolumns; c++) fputs("---:|", f);
    fputc('\n', f);
    for (int r = 0; r < rep->nruns; r++) {
        fprintf(f, "| %s%s |", rep->runs[r].name, rep->runs[r].incomplete ? " *" : "");
        for (int c = 0; c < w; c++) md_cell(f, rep->ours[r * w + c], rep->paper[r * w + c]);
        fputc('\n', f);
    }
    int ninc = 0;
    for (int r = 0; r < rep->nruns; r++) ninc += rep->runs[r].incomplete;
    if (ninc) {
        fprintf(f, "\n\\* incomplete runs (%d of %d):\n\n", ninc, rep->nruns);
        for (int r = 0; r < rep->nruns; r++)
            if (rep->runs[r].incomplete) fprintf(f, "- %s: %s\n", rep->runs[r].name, rep->runs[r].note);
    } else {
        fprintf(f, "\nAll %d runs finished.\n", rep->nruns);
    }
    if (rep->sweep_key[0]) {
        fprintf(f, "\n## mIoU against %s\n\n| %s | source | mean over targets |\n|---:|---:|---:|\n", rep->sweep_key, rep->sweep_key);
        for (int r = 0; r < rep->nruns; r++) {
            const char *key = mv_report_run_config(&rep->runs[r], rep->sweep_key);
            fprintf(f, "| %s |", key ? key : "—");
            for (int c = 0; c < w; c += rep->ncolumns ? rep->ncolumns : 1) {
                double v = rep->ours[r * w + c];
                if (isnan(v)) fputs(" — |", f); else fprintf(f, " %.2f |", v);
                if (rep->ncolumns == 0) break;
            }
            fputc('\n', f);
        }
    }
    fputs("\n## Per-class IoU (%) of the last evaluation\n", f);
    for (int r = 0; r < rep->nruns; r++) {
        const mv_report_run *run = &rep->runs[r];
        fprintf(f, "\n### %s\n\n", run->name);
        const mv_report_domain *ref = NULL;
        for (int d = 0; d < run->ndomains; d++) if (run->domains[d].nclass) { ref = &run->domains[d]; break; }
        if (!ref) { fputs("No per-class results yet.\n", f); continue; }
        fputs("| class |", f);
        for (int d = 0; d < run->ndomains; d++) fprintf(f, " %s |", run->domains[d].name);
        fputs("\n|---|", f);
        for (int d = 0; d < run->ndomains; d++) fputs("---:|", f);
        fputc('\n', f);
        for (int k = 0; k < ref->nclass; k++) {
            fprintf(f, "| %s |", ref->class_names[k]);
            for (int d = 0; d < run->ndomains; d++) {
                const mv_report_domain *dm = &run->domains[d];
                double v = NAN;
                for (int j = 0; j < dm->nclass; j++) if (!strcmp(dm->class_names[j], ref->class_names[k])) v = dm->iou[j];
                if (isnan(v)) fputs(" — |", f); else fprintf(f, " %.1f |", v);
            }
            fputc('\n', f);
        }
    }
    if (fclose(f) != 0) return mv_fail("%s: write failed", path);
    return 0;
}

static void csv_str(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) { if (*s == '"') fputc('"', f); fputc(*s, f); }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) { if (!isnan(v)) fprintf(f, "%.4f", v); }

// With seeds, one line per row: per column the mean, sd, n, the paper's number and the
// difference of the mean, then every seed's value per column ("fog@seed1").
static void csv_seeds(FILE *f, const mv_report *rep) {
    int w = rep->ncolumns + 1;
    fputs("row,seeds,seeds_finished", f);
    for (int c = 0; c < w; c++) {
        const char *name = c < rep->ncolumns ? rep->columns[c] : "mean";
        fputc(',', f); csv_str(f, name);
        fputs(",sd_", f); csv_str(f, name);
        fputs(",n_", f); csv_str(f, name);
        fputs(",paper_", f); csv_str(f, name);
        fputs(",diff_", f); csv_str(f, name);
    }
    for (int k = 0; k < rep->nseeds; k++)
        for (int c = 0; c < w; c++) {
            fputc(',', f);
            csv_str(f, c < rep->ncolumns ? rep->columns[c] : "mean");
            fprintf(f, "@seed%d", rep->seeds[k]);
        }
    fputc('\n', f);
    for (int g = 0; g < rep->nrows; g++) {
        const mv_report_row *row = &rep->rows[g];
        csv_str(f, row->name);
        fprintf(f, ",%d,%d", rep->nseeds, row->nused);
        for (int c = 0; c < w; c++) {
            double m = row->mean[c], p = row->paper[c];
            fputc(',', f); csv_num(f, m);
            fputc(',', f); csv_num(f, row->sd[c]);
            fprintf(f, ",%d", row->n[c]);
            fputc(',', f); csv_num(f, p);
            fputc(',', f); csv_num(f, isnan(m) || isnan(p) ? NAN : m - p);
        }
        for (int k = 0; k < rep->nseeds; k++)
            for (int c = 0; c < w; c++) { fputc(',', f); csv_num(f, row->value[k * w + c]); }
        fputc('\n', f);
    }
}

int mv_report_write_csv(const mv_report *rep, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return mv_fail("%s: %s", path, strerror(errno));
    int w = rep->ncolumns + 1;
    if (rep->nseeds) {
        csv_seeds(f, rep);
        if (fclose(f) != 0) return mv_fail("%s: write failed", path);
        return 0;
    }
    // the Markdown table, one line per run: per column ours, the paper's and the difference;
    // missing numbers are empty fields
    fputs("run,state,incomplete", f);
    if (rep->sweep_key[0]) { fputc(',', f); csv_str(f, rep->sweep_key); }
    for (int c = 0; c < w; c++) {
        const char *name = c < rep->ncolumns ? rep->columns[c] : "mean";
        fputc(',', f); csv_str(f, name);
        fputc(',', f); fputs("paper_", f); csv_str(f, name);
        fputc(',', f); fputs("diff_", f); csv_str(f, name);
    }
    fputc('\n', f);
    for (int r = 0; r < rep->nruns; r++) {
        csv_str(f, rep->runs[r].name);
        fputc(',', f);
        csv_str(f, rep->runs[r].state);
        fprintf(f, ",%d", rep->runs[r].incomplete ? 1 : 0);
        if (rep->sweep_key[0]) {
            const char *key = mv_report_run_config(&rep->runs[r], rep->sweep_key);
            fputc(',', f);
            csv_str(f, key ? key : "");
        }
        for (int c = 0; c < w; c++) {
            double o = rep->ours[r * w + c], p = rep->paper[r * w + c];
            fputc(',', f); csv_num(f, o);
            fputc(',', f); csv_num(f, p);
            fputc(',', f); csv_num(f, isnan(o) || isnan(p) ? NAN : o - p);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) return mv_fail("%s: write failed", path);
    return 0;
}

// ------------------------------------------------------------------------------------------
// JSON

static void json_num_out(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.4f", v); else fputs("null", f);
}

int mv_report_write_json(const mv_report *rep, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return mv_fail("%s: %s", path, strerror(errno));
    int w = rep->ncolumns + 1;
    fputs("{\"title\": ", f);
    json_write_string(f, rep->title);
    fputs(",\n \"columns\": [", f);
    for (int c = 0; c < w; c++) {
        fputs(c ? ", {\"domain\": " : "{\"domain\": ", f);
        json_write_string(f, c < rep->ncolumns ? rep->columns[c] : "mean");
        fputs(", \"label\": ", f);
        json_write_string(f, mv_report_label(rep, c));
        fprintf(f, ", \"role\": \"%s\"}", c == 0 && rep->ncolumns ? "source" : c < rep->ncolumns ? "target" : "mean");
    }
    fputs("]", f);
    if (rep->nseeds) {
        fputs(",\n \"seeds\": [", f);
        for (int k = 0; k < rep->nseeds; k++) fprintf(f, "%s%d", k ? ", " : "", rep->seeds[k]);
        fputs("], \"spread\": \"sample standard deviation (n - 1) over the seeds\",\n \"rows\": [", f);
        for (int g = 0; g < rep->nrows; g++) {
            const mv_report_row *row = &rep->rows[g];
            fputs(g ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
            json_write_string(f, row->name);
            fprintf(f, ", \"seeds_finished\": %d, \"runs\": [", row->nused);
            for (int k = 0; k < rep->nseeds; k++) {
                if (k) fputs(", ", f);
                json_write_string(f, rep->seed_runs[g * rep->nseeds + k]);
            }
            fputs("], \"cells\": {", f);
            for (int c = 0; c < w; c++) {
                if (c) fputs(", ", f);
                json_write_string(f, c < rep->ncolumns ? rep->columns[c] : "mean");
                fputs(": {\"mean\": ", f); json_num_out(f, row->mean[c]);
                fputs(", \"sd\": ", f); json_num_out(f, row->sd[c]);
                fprintf(f, ", \"n\": %d, \"seeds\": [", row->n[c]);
                for (int k = 0; k < rep->nseeds; k++) { if (k) fputs(", ", f); json_num_out(f, row->value[k * w + c]); }
                fputs("], \"paper\": ", f); json_num_out(f, row->paper[c]);
                fputc('}', f);
            }
            fputs("}}", f);
        }
        fputs("\n ]", f);
    }
    fputs(",\n \"runs\": [", f);
    for (int r = 0; r < rep->nruns; r++) {
        const mv_report_run *run = &rep->runs[r];
        fputs(r ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        json_write_string(f, run->name);
        fputs(", \"state\": ", f);
        json_write_string(f, run->state);
        fprintf(f, ", \"incomplete\": %s, \"cells\": {", run->incomplete ? "true" : "false");
        for (int c = 0; c < w; c++) {
            if (c) fputs(", ", f);
            json_write_string(f, c < rep->ncolumns ? rep->columns[c] : "mean");
            fputs(": {\"ours\": ", f); json_num_out(f, rep->ours[r * w + c]);
            fputs(", \"paper\": ", f); json_num_out(f, rep->paper[r * w + c]);
            fputc('}', f);
        }
        fputs("}}", f);
    }
    fputs("\n ]}\n", f);
    if (fclose(f) != 0) return mv_fail("%s: write failed", path);
    return 0;
}
