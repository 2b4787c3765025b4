// Experiment files (core/experiment.h): parsed with libyaml's document API so that every
// error can name the file, line and column of the node at fault; grids are expanded here
// into ordinary rows, and every row's configuration is resolved once at load time so that a
// typo in row 7 is reported before row 1 starts training.
#include "core/experiment.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/suggest.h"
#include "core/yaml_encoding.h"
#include "core/report.h"
#include "data/corrupt.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

typedef struct {
    yaml_document_t *doc;
    const char *path;
} ctx;

static int node_fail(const ctx *c, const yaml_node_t *n, const char *what, const char *detail) {
    return mv_fail("%s:%lu:%lu: %s: %s", c->path, (unsigned long)n->start_mark.line + 1,
                   (unsigned long)n->start_mark.column + 1, what, detail);
}

// strncpy that always terminates (also keeps gcc's overlap check quiet for struct fields).
static void copy_str(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memmove(dst, src, n);
    dst[n] = 0;
}

static yaml_node_t *node(const ctx *c, int id) { return yaml_document_get_node(c->doc, id); }

// A scalar copied into out[size]; fails on another node type or one that does not fit.
static int get_scalar(char *out, const ctx *c, const yaml_node_t *n, const char *what, size_t size) {
    if (n->type != YAML_SCALAR_NODE) return node_fail(c, n, what, "expected a single value");
    if (n->data.scalar.length >= size) return node_fail(c, n, what, "value too long");
    memcpy(out, n->data.scalar.value, n->data.scalar.length);
    out[n->data.scalar.length] = 0;
    return 0;
}

// A configuration scalar as YAML text that reads back as the same value: "key=value" is parsed
// as YAML once more, where a quoted scalar left bare would change ("my weights #2.h5" cut at
// the comment, "w: v1.h5" a mapping, "null" empty, "16,32" two list items): it is quoted again.
// One exception: a quoted "[a, b]" stays list text, as in the key=value form ("data.val=[a, b]"):
// files written so keep working, and no key takes a string in brackets.
static int get_config_scalar(char *out, const ctx *c, const yaml_node_t *n, const char *what, size_t size) {
    MV_TRY(get_scalar(out, c, n, what, size));
    size_t len0 = n->data.scalar.length;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || (len0 >= 2 && out[0] == '[' && out[len0 - 1] == ']'))
        return 0;
    size_t len = 0;
    out[len++] = '"';
    for (size_t i = 0; i < n->data.scalar.length; i++) {
        unsigned char ch = n->data.scalar.value[i];
        char esc[8] = {(char)ch, 0};
        if (ch == '"' || ch == '\\') snprintf(esc, sizeof esc, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", ch);
        size_t el = strlen(esc);
        if (len + el + 2 > size) return node_fail(c, n, what, "value too long");
        memcpy(out + len, esc, el);
        len += el;
    }
    out[len++] = '"';
    out[len] = 0;
    return 0;
}

// A configuration value: a scalar (above), a sequence of scalars as "[a, b, c]".
static int get_value(char *out, const ctx *c, const yaml_node_t *n, const char *what, size_t size) {
    if (n->type == YAML_SCALAR_NODE) return get_config_scalar(out, c, n, what, size);
    if (n->type != YAML_SEQUENCE_NODE) return node_fail(c, n, what, "expected a value or a list of values");
    size_t len = 0;
    out[len++] = '[';
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = node(c, *it);
        char v[MV_EXP_SET_MAX];
        MV_TRY(get_config_scalar(v, c, e, what, sizeof v));
        size_t vl = strlen(v);
        if (len + vl + 4 >= size) return node_fail(c, n, what, "value too long");
        if (it > n->data.sequence.items.start) { out[len++] = ','; out[len++] = ' '; }
        memcpy(out + len, v, vl);
        len += vl;
    }
    out[len++] = ']';
    out[len] = 0;
    return 0;
}

static int add_set(char (*sets)[MV_EXP_SET_MAX], int *nsets, const ctx *c, const yaml_node_t *n, const char *key,
                   const char *value) {
    if (*nsets >= MV_EXP_MAX_SETS) return node_fail(c, n, "set", "too many overrides");
    // Every run's folder is the sweep's (OUT/<row>): an override of it would be listed by
    // --dry-run and then silently replaced.
    if (!strcmp(key, "run.work_dir"))
        return node_fail(c, n, key, "each run's work directory is the experiment's to set (OUT/<row>[@seed], OUT "
                                    "from --out): remove run.work_dir");
    // The whole section at once ("run={seed: 7, work_dir: x}") would pass the checks of
    // run.work_dir above and of run.seed against seeds:, and then be silently replaced.
    if (!strcmp(key, "run"))
        return node_fail(c, n, key, "set the run section's keys one by one (run.device=cpu, ...): its run.work_dir "
                                    "and, with seeds:, run.seed are the experiment's");
    int w = snprintf(sets[*nsets], MV_EXP_SET_MAX, "%s=%s", key, value);
    if (w < 0 || w >= MV_EXP_SET_MAX) return node_fail(c, n, "set", "override too long");
    (*nsets)++;
    return 0;
}

// `set:` as a list of "key=value" strings or as a mapping {key: value}.
static int parse_sets(char (*sets)[MV_EXP_SET_MAX], int *nsets, const ctx *c, const yaml_node_t *n) {
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            yaml_node_t *e = node(c, *it);
            char s[MV_EXP_SET_MAX];
            MV_TRY(get_scalar(s, c, e, "set", sizeof s));
            char *eq = strchr(s, '=');
            if (!eq || eq == s) return node_fail(c, e, "set", "expected key=value");
            *eq = 0;
            MV_TRY(add_set(sets, nsets, c, e, s, eq + 1));
        }
        return 0;
    }
    if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            char k[MV_EXP_SET_MAX], v[MV_EXP_SET_MAX];
            MV_TRY(get_scalar(k, c, node(c, p->key), "set", sizeof k));
            MV_TRY(get_value(v, c, node(c, p->value), k, sizeof v));
            MV_TRY(add_set(sets, nsets, c, node(c, p->key), k, v));
        }
        return 0;
    }
    return node_fail(c, n, "set", "expected a list of key=value or a mapping");
}

static int parse_names(char (*out)[MV_NAME_MAX], int *n, int max, const ctx *c, const yaml_node_t *seq,
                       const char *what) {
    if (seq->type != YAML_SEQUENCE_NODE) return node_fail(c, seq, what, "expected a list of domain names");
    *n = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        if (*n >= max) return node_fail(c, seq, what, "too many entries");
        MV_TRY(get_scalar(out[*n], c, node(c, *it), what, MV_NAME_MAX));
        (*n)++;
    }
    return 0;
}

static bool valid_row_name(const char *s) {
    if (!s[0] || !strcmp(s, ".") || !strcmp(s, "..")) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-' && *s != '+') return false;
    return true;
}

static int parse_double(double *out, const ctx *c, const yaml_node_t *n, const char *what) {
    char s[64];
    MV_TRY(get_scalar(s, c, n, what, sizeof s));
    if (!s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "-")) { *out = NAN; return 0; }
    char *end;
    *out = strtod(s, &end);
    if (*end || !isfinite(*out)) return node_fail(c, n, what, "expected a number (or ~ for none)");
    return 0;
}

// paper: a list aligned with the columns, or a mapping {column label or domain: number}.
static int parse_paper(double *paper, const mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type == YAML_SEQUENCE_NODE) {
        int k = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (k != e->ncols) {
            char d[96];
            snprintf(d, sizeof d, "%d numbers for %d columns", k, e->ncols);
            return node_fail(c, n, "paper", d);
        }
        for (int i = 0; i < k; i++) MV_TRY(parse_double(&paper[i], c, node(c, n->data.sequence.items.start[i]), "paper"));
        return 0;
    }
    if (n->type == YAML_MAPPING_NODE) {
        bool given[MV_EXP_MAX_COLS] = {false};
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            char k[MV_EXP_NAME_MAX];
            MV_TRY(get_scalar(k, c, node(c, p->key), "paper", sizeof k));
            int col = -1;
            for (int i = 0; i < e->ncols && col < 0; i++)
                if (!strcmp(e->cols[i].label, k) || !strcmp(e->cols[i].domain, k)) col = i;
            if (col < 0) return node_fail(c, node(c, p->key), "paper", "no such column");
            // A column by its label and again by its domain: the last number silently won.
            if (given[col]) return node_fail(c, node(c, p->key), "paper", "this column has a number already");
            given[col] = true;
            MV_TRY(parse_double(&paper[col], c, node(c, p->value), k));
        }
        return 0;
    }
    return node_fail(c, n, "paper", "expected a list of numbers or a mapping column: number");
}

static mv_exp_row *new_row(mv_experiment *e, const ctx *c, const yaml_node_t *at) {
    if (e->nrows >= MV_EXP_MAX_ROWS) { node_fail(c, at, "rows", "too many rows"); return NULL; }
    mv_exp_row *r = &e->rows[e->nrows++];
    memset(r, 0, sizeof *r);
    for (int i = 0; i < MV_EXP_MAX_COLS; i++) r->paper[i] = NAN;
    r->line = (int)at->start_mark.line + 1;
    return r;
}

static int parse_row(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type != YAML_MAPPING_NODE) return node_fail(c, n, "rows", "each row is a mapping {name, set, paper}");
    mv_exp_row *r = new_row(e, c, n);
    if (!r) return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        char key[64];
        MV_TRY(get_scalar(key, c, k, "rows", sizeof key));
        if (!strcmp(key, "name")) {
            MV_TRY(get_scalar(r->name, c, v, "name", sizeof r->name));
            if (!valid_row_name(r->name)) return node_fail(c, v, "name", "use letters, digits and . _ - + only");
        } else if (!strcmp(key, "set")) {
            MV_TRY(parse_sets(r->sets, &r->nsets, c, v));
        } else if (!strcmp(key, "paper")) {
            MV_TRY(parse_paper(r->paper, e, c, v));
        } else {
            static const char *const known[] = {"name", "set", "paper"};
            char hint[64], detail[128];
            snprintf(detail, sizeof detail, "unknown row key%s (name, set, paper)", mv_hint(hint, sizeof hint, key, known, 3));
            return node_fail(c, k, key, detail);
        }
    }
    if (!r->name[0]) return node_fail(c, n, "rows", "row without a name");
    return 0;
}

// The row name part for one grid value: "lambda_0.5", "decoder_depths_1-1-2".
static void grid_name_part(char *out, size_t size, const char *key, const char *value) {
    const char *dot = strrchr(key, '.');
    int w = snprintf(out, size, "%s_", dot ? dot + 1 : key);
    for (const char *s = value; *s && w + 1 < (int)size; s++) {
        char ch = *s;
        if (ch == '[' || ch == ']' || ch == ' ' || ch == '"') continue;   // '"': of a quoted value (get_config_scalar)
        if (!isalnum((unsigned char)ch) && ch != '.' && ch != '-' && ch != '_') ch = '-';
        out[w++] = ch;
    }
    out[w] = 0;
}

// grid: {key: [v1, v2, ...], ...}: the Cartesian product, the last key varying fastest.
static int parse_grid(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type != YAML_MAPPING_NODE) return node_fail(c, n, "grid", "expected a mapping {key: [values...]}");
    int nk = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (nk < 1 || nk > MV_EXP_MAX_GRID) return node_fail(c, n, "grid", "needs 1 to 4 keys");
    char keys[MV_EXP_MAX_GRID][MV_EXP_SET_MAX];
    yaml_node_t *vals[MV_EXP_MAX_GRID];
    int counts[MV_EXP_MAX_GRID], total = 1;
    for (int i = 0; i < nk; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        MV_TRY(get_scalar(keys[i], c, node(c, p->key), "grid", sizeof keys[i]));
        vals[i] = node(c, p->value);
        if (vals[i]->type != YAML_SEQUENCE_NODE) return node_fail(c, vals[i], keys[i], "expected a list of values");
        counts[i] = (int)(vals[i]->data.sequence.items.top - vals[i]->data.sequence.items.start);
        if (counts[i] < 1) return node_fail(c, vals[i], keys[i], "empty list of values");
        total *= counts[i];
        if (total > MV_EXP_MAX_ROWS) return node_fail(c, n, "grid", "too many combinations");
    }
    for (int idx = 0; idx < total; idx++) {
        mv_exp_row *r = new_row(e, c, n);
        if (!r) return -1;
        int rest = idx;
        size_t len = 0;
        for (int i = nk - 1; i >= 0; i--) {   // decode idx, last key fastest
            int j = rest % counts[i];
            rest /= counts[i];
            yaml_node_t *v = node(c, vals[i]->data.sequence.items.start[j]);
            char value[MV_EXP_SET_MAX];
            MV_TRY(get_value(value, c, v, keys[i], sizeof value));
            MV_TRY(add_set(r->sets, &r->nsets, c, v, keys[i], value));
        }
        // The overrides were added last key first; put them back in file order and name the row.
        for (int a = 0, b = r->nsets - 1; a < b; a++, b--) {
            char tmp[MV_EXP_SET_MAX];
            memcpy(tmp, r->sets[a], sizeof tmp);
            memcpy(r->sets[a], r->sets[b], sizeof tmp);
            memcpy(r->sets[b], tmp, sizeof tmp);
        }
        for (int i = 0; i < r->nsets; i++) {
            char part[MV_EXP_NAME_MAX];
            const char *eq = strchr(r->sets[i], '=');
            grid_name_part(part, sizeof part, keys[i], eq + 1);
            int w = snprintf(r->name + len, sizeof r->name - len, "%s%s", i ? "_" : "", part);
            if (w < 0 || len + (size_t)w >= sizeof r->name) return node_fail(c, n, "grid", "row name too long");
            len += (size_t)w;
        }
    }
    return 0;
}

static int parse_columns(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type != YAML_SEQUENCE_NODE) return node_fail(c, n, "columns", "expected a list");
    e->ncols = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *col = node(c, *it);
        if (e->ncols >= MV_EXP_MAX_COLS) return node_fail(c, col, "columns", "too many columns");
        mv_exp_column *dst = &e->cols[e->ncols++];
        if (col->type == YAML_SCALAR_NODE) {   // a bare domain name labels itself
            MV_TRY(get_scalar(dst->domain, c, col, "columns", sizeof dst->domain));
            copy_str(dst->label, sizeof dst->label, dst->domain);
            continue;
        }
        if (col->type != YAML_MAPPING_NODE) return node_fail(c, col, "columns", "expected a domain or {domain, label}");
        for (yaml_node_pair_t *p = col->data.mapping.pairs.start; p < col->data.mapping.pairs.top; p++) {
            char key[32];
            MV_TRY(get_scalar(key, c, node(c, p->key), "columns", sizeof key));
            if (!strcmp(key, "domain")) MV_TRY(get_scalar(dst->domain, c, node(c, p->value), "domain", sizeof dst->domain));
            else if (!strcmp(key, "label")) MV_TRY(get_scalar(dst->label, c, node(c, p->value), "label", sizeof dst->label));
            else return node_fail(c, node(c, p->key), key, "unknown column key (domain, label)");
        }
        if (!dst->domain[0]) return node_fail(c, col, "columns", "column without a domain");
        if (!dst->label[0]) copy_str(dst->label, sizeof dst->label, dst->domain);
    }
    // A domain given twice (two `avg`s, say) would give one report column two paper numbers
    // and leave the mean's place ambiguous.
    for (int i = 0; i < e->ncols; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(e->cols[i].domain, e->cols[j].domain))
                return node_fail(c, node(c, n->data.sequence.items.start[i]), "columns", "domain listed twice");
    return 0;
}

// One peer {name: "HGFormer Swin-T", paper: [...]}: its numbers are read as a row's `paper:`
// (the same count, numbers and ~ / null / - for a blank cell), so that peers line up with the
// table's columns the way rows do.
static int parse_peer(mv_exp_peer *peer, const mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type != YAML_MAPPING_NODE) return node_fail(c, n, "peers", "each peer is a mapping {name, paper}");
    memset(peer, 0, sizeof *peer);
    for (int i = 0; i < MV_EXP_MAX_COLS; i++) peer->paper[i] = NAN;
    peer->line = (int)n->start_mark.line + 1;
    bool has_paper = false;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        char key[64];
        MV_TRY(get_scalar(key, c, k, "peers", sizeof key));
        if (!strcmp(key, "name")) {
            MV_TRY(get_scalar(peer->name, c, v, "name", sizeof peer->name));
        } else if (!strcmp(key, "paper")) {
            MV_TRY(parse_paper(peer->paper, e, c, v));
            has_paper = true;
        } else {
            static const char *const known[] = {"name", "paper"};
            char hint[64], detail[128];
            snprintf(detail, sizeof detail, "unknown peer key%s (name, paper)", mv_hint(hint, sizeof hint, key, known, 2));
            return node_fail(c, k, key, detail);
        }
    }
    if (!peer->name[0]) return node_fail(c, n, "peers", "peer without a name");
    if (!has_paper) return node_fail(c, n, peer->name, "peer without `paper:` (its published numbers)");
    return 0;
}

// peers: [{name, paper}, ...]: other methods' published rows, printed by the report, never run.
// Parsed after `columns:`, which their numbers follow.
static int parse_peers(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type != YAML_SEQUENCE_NODE) return node_fail(c, n, "peers", "expected a list of {name, paper}");
    e->peers = mv_calloc(MV_EXP_MAX_PEERS, sizeof *e->peers);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *item = node(c, *it);
        if (e->npeers >= MV_EXP_MAX_PEERS) return node_fail(c, item, "peers", "too many peers (at most 32)");
        mv_exp_peer *peer = &e->peers[e->npeers];
        MV_TRY(parse_peer(peer, e, c, item));
        // the report lists peers by name: two alike would read as one method printed twice
        for (int j = 0; j < e->npeers; j++)
            if (!strcmp(e->peers[j].name, peer->name))
                return mv_fail("%s:%d: peer '%s' also named at line %d (peer names must be unique)", c->path,
                               peer->line, peer->name, e->peers[j].line);
        e->npeers++;
    }
    return 0;
}

// corruptions: all | [name, ...] (data/corrupt.h names); severities: [1..5, ...].
static int parse_corruptions(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type == YAML_SCALAR_NODE && !strcmp((const char *)n->data.scalar.value, "all")) {
        for (int i = 0; i < CORRUPT_COUNT && i < MV_EXP_MAX_CORR; i++)
            copy_str(e->corruptions[e->ncorruptions++], MV_NAME_MAX, corrupt_name(i));
        return 0;
    }
    MV_TRY(parse_names(e->corruptions, &e->ncorruptions, MV_EXP_MAX_CORR, c, n, "corruptions"));
    for (int i = 0; i < e->ncorruptions; i++) {
        if (corrupt_index(e->corruptions[i]) < 0) {
            char msg[MV_ERRMSG_MAX];
            snprintf(msg, sizeof msg, "%s", mv_last_error());
            return node_fail(c, n, "corruptions", msg);
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(e->corruptions[i], e->corruptions[j])) return node_fail(c, n, "corruptions", "listed twice");
    }
    return 0;
}

static int parse_severities(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type != YAML_SEQUENCE_NODE) return node_fail(c, n, "severities", "expected a list of severities 1..5");
    e->nseverities = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *v = node(c, *it);
        double d;
        MV_TRY(parse_double(&d, c, v, "severities"));
        int s = (int)d;
        if (d != s || s < 1 || s > 5) return node_fail(c, v, "severities", "a severity is 1, 2, 3, 4 or 5");
        for (int j = 0; j < e->nseverities; j++)
            if (e->severities[j] == s) return node_fail(c, v, "severities", "listed twice");
        if (e->nseverities >= 5) return node_fail(c, v, "severities", "at most 5");
        e->severities[e->nseverities++] = s;
    }
    if (e->nseverities == 0) return node_fail(c, n, "severities", "empty list");
    return 0;
}

// seeds: [0, 1, 2]: distinct run.seed values (0 .. 2^31-1), the first one the seed of DIR/<row>.
static int parse_seeds(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    if (n->type != YAML_SEQUENCE_NODE) return node_fail(c, n, "seeds", "expected a list of seeds, e.g. [0, 1, 2]");
    e->nseeds = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *v = node(c, *it);
        char s[32], *end;
        MV_TRY(get_scalar(s, c, v, "seeds", sizeof s));
        long d = strtol(s, &end, 10);
        if (!s[0] || *end || d < 0 || d > 2147483647L) return node_fail(c, v, "seeds", "a seed is an integer 0 .. 2147483647");
        for (int j = 0; j < e->nseeds; j++)
            if (e->seeds[j] == d) return node_fail(c, v, "seeds", "listed twice");
        if (e->nseeds >= MV_EXP_MAX_SEEDS) return node_fail(c, v, "seeds", "at most 16 seeds");
        e->seeds[e->nseeds++] = (int)d;
    }
    if (e->nseeds == 0) return node_fail(c, n, "seeds", "empty list (leave `seeds:` out for one run per row)");
    return 0;
}

// global_batch: 4, a whole number of images per step over all ranks.
static int parse_global_batch(mv_experiment *e, const ctx *c, const yaml_node_t *n) {
    char s[32], *end;
    MV_TRY(get_scalar(s, c, n, "global_batch", sizeof s));
    long d = strtol(s, &end, 10);
    if (!s[0] || *end || d < 1 || d > 65536)
        return node_fail(c, n, "global_batch", "expected the global batch, an integer 1 .. 65536 (ranks x "
                                               "data.batch_per_rank)");
    e->global_batch = (int)d;
    return 0;
}

// True when one of sets[0..n) sets run.seed.
static bool sets_seed(const char (*sets)[MV_EXP_SET_MAX], int n) {
    for (int i = 0; i < n; i++)
        if (!strncmp(sets[i], "run.seed=", 9)) return true;
    return false;
}

static const yaml_node_t *find_key(const ctx *c, const yaml_node_t *map, const char *key) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        if (k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key)) return node(c, p->value);
    }
    return NULL;
}

// A key given twice in any mapping of the file is an error: libyaml keeps both, and the lookups
// here take the first, so a second `rows:` (or a row's second `set:`) would silently vanish.
static int check_duplicate_keys(const ctx *c) {
    for (yaml_node_t *n = c->doc->nodes.start; n < c->doc->nodes.top; n++) {
        if (n->type != YAML_MAPPING_NODE) continue;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            const yaml_node_t *k = node(c, p->key);
            if (k->type != YAML_SCALAR_NODE) continue;
            for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
                const yaml_node_t *k0 = node(c, q->key);
                if (k0->type != YAML_SCALAR_NODE || k0->data.scalar.length != k->data.scalar.length ||
                    memcmp(k0->data.scalar.value, k->data.scalar.value, k->data.scalar.length))
                    continue;
                char what[96];
                snprintf(what, sizeof what, "duplicate key '%.64s'", (const char *)k->data.scalar.value);
                char detail[64];
                snprintf(detail, sizeof detail, "first given at line %lu", (unsigned long)k0->start_mark.line + 1);
                return node_fail(c, k, what, detail);
            }
        }
    }
    return 0;
}

static int parse_root(mv_experiment *e, const ctx *c, const yaml_node_t *root) {
    if (root->type != YAML_MAPPING_NODE) return node_fail(c, root, "experiment", "expected a mapping");
    static const char *KNOWN[] = {"name", "title", "base", "set", "source", "targets", "columns", "rows", "grid",
                                  "corruptions", "severities", "corruption_channels", "seeds", "global_batch",
                                  "peers"};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        char key[64];
        MV_TRY(get_scalar(key, c, k, "experiment", sizeof key));
        bool ok = false;
        for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++) ok |= !strcmp(key, KNOWN[i]);
        static const char *SECTIONS[] = {"model", "mask", "data", "optim", "schedule", "run", "include", "_base_"};
        bool section = false;
        for (size_t i = 0; i < sizeof SECTIONS / sizeof SECTIONS[0]; i++) section |= !strcmp(key, SECTIONS[i]);
        if (!ok && section)   // a training configuration given where an experiment file belongs
            return node_fail(c, k, key, "unknown key: this looks like a training configuration (maskvim train FILE); "
                                        "an experiment file names it in `base:` and has rows (docs/experiments.md)");
        if (!ok) {
            char hint[64], detail[256];
            snprintf(detail, sizeof detail, "unknown key%s (name, title, base, set, source, targets, columns, rows, "
                     "grid, corruptions, severities, seeds, global_batch, peers)", mv_hint(hint, sizeof hint, key, KNOWN, (int)(sizeof KNOWN / sizeof KNOWN[0])));
            return node_fail(c, k, key, detail);
        }
    }
    const yaml_node_t *v;
    if ((v = find_key(c, root, "name"))) {
        MV_TRY(get_scalar(e->name, c, v, "name", sizeof e->name));
        if (!valid_row_name(e->name)) return node_fail(c, v, "name", "use letters, digits and . _ - + only");
    }
    if ((v = find_key(c, root, "title"))) MV_TRY(get_scalar(e->title, c, v, "title", sizeof e->title));
    if ((v = find_key(c, root, "base"))) {
        char b[MV_PATH_MAX];
        MV_TRY(get_scalar(b, c, v, "base", sizeof b));
        // Relative to the experiment file's folder, like config includes.
        const char *slash = strrchr(c->path, '/');
        int dl = slash ? (int)(slash - c->path) : 0;
        int w = b[0] == '/' || !slash ? snprintf(e->base, sizeof e->base, "%s", b)
                                      : snprintf(e->base, sizeof e->base, "%.*s/%s", dl, c->path, b);
        if (w < 0 || w >= (int)sizeof e->base) return node_fail(c, v, "base", "path too long");
    }
    if ((v = find_key(c, root, "set"))) MV_TRY(parse_sets(e->sets, &e->nsets, c, v));
    if ((v = find_key(c, root, "global_batch"))) MV_TRY(parse_global_batch(e, c, v));
    if ((v = find_key(c, root, "source"))) MV_TRY(get_scalar(e->source, c, v, "source", sizeof e->source));
    if ((v = find_key(c, root, "corruptions"))) {
        MV_TRY(parse_corruptions(e, c, v));
        if (!e->source[0]) return node_fail(c, v, "corruptions", "give `source:`, the domain that is corrupted");
    }
    if ((v = find_key(c, root, "severities"))) {
        if (!e->ncorruptions) return node_fail(c, v, "severities", "severities without corruptions");
        MV_TRY(parse_severities(e, c, v));
    } else if (e->ncorruptions) {
        e->severities[e->nseverities++] = 5;   // the HGFormer protocol (docs/corruptions.md)
    }
    if ((v = find_key(c, root, "corruption_channels"))) {
        char order[16];
        MV_TRY(get_scalar(order, c, v, "corruption_channels", sizeof order));
        if (!e->ncorruptions) return node_fail(c, v, "corruption_channels", "corruption_channels without corruptions");
        if (strcmp(order, "rgb") && strcmp(order, "bgr"))
            return node_fail(c, v, "corruption_channels", "expected rgb (the default) or bgr (HGFormer's generator)");
        e->corruption_bgr = !strcmp(order, "bgr");
    }
    if ((v = find_key(c, root, "targets"))) {
        MV_TRY(parse_names(e->targets, &e->ntargets, MV_EXP_MAX_TARGETS, c, v, "targets"));
        // Allowed (a smoke test with one domain), but the mean is then no longer over unseen
        // domains only: the launcher and the report warn (experiment_source_warning).
        for (int i = 0; i < e->ntargets; i++)
            if (e->source[0] && !strcmp(e->targets[i], e->source))
                snprintf(e->source_warning, sizeof e->source_warning,
                         "%s:%lu: targets lists the source domain '%s': the mean over targets includes the domain "
                         "trained on (show the source with `columns:` instead)",
                         c->path, (unsigned long)v->start_mark.line + 1, e->source);
    } else {   // with corruptions, the corruptions are the targets
        for (int i = 0; i < e->ncorruptions && e->ntargets < MV_EXP_MAX_TARGETS; i++)
            copy_str(e->targets[e->ntargets++], MV_NAME_MAX, e->corruptions[i]);
    }
    if ((v = find_key(c, root, "columns"))) {
        MV_TRY(parse_columns(e, c, v));
    } else {   // default: the targets, then their average
        for (int i = 0; i < e->ntargets && e->ncols < MV_EXP_MAX_COLS; i++) {
            copy_str(e->cols[e->ncols].domain, MV_NAME_MAX, e->targets[i]);
            copy_str(e->cols[e->ncols].label, MV_EXP_NAME_MAX, e->targets[i]);
            e->ncols++;
        }
        if (e->ntargets > 0 && e->ncols < MV_EXP_MAX_COLS) {
            snprintf(e->cols[e->ncols].domain, MV_NAME_MAX, "avg");
            snprintf(e->cols[e->ncols].label, MV_EXP_NAME_MAX, "Avg");
            e->ncols++;
        }
    }
    if ((v = find_key(c, root, "peers"))) MV_TRY(parse_peers(e, c, v));
    const yaml_node_t *rows = find_key(c, root, "rows"), *grid = find_key(c, root, "grid");
    if (!rows && !grid) return node_fail(c, root, "experiment", "no rows: give `rows:` and/or `grid:`");
    if (rows) {
        if (rows->type != YAML_SEQUENCE_NODE) return node_fail(c, rows, "rows", "expected a list of rows");
        for (yaml_node_item_t *it = rows->data.sequence.items.start; it < rows->data.sequence.items.top; it++)
            MV_TRY(parse_row(e, c, node(c, *it)));
    }
    if (grid) MV_TRY(parse_grid(e, c, grid));
    if (e->nrows == 0) return node_fail(c, rows, "rows", "empty list: give at least one row (or a `grid:`)");
    for (int i = 0; i < e->nrows; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(e->rows[i].name, e->rows[j].name)) {
                if (e->rows[i].line == e->rows[j].line)   // both made by the grid from its values
                    return mv_fail("%s:%d: the grid makes row '%s' twice: two of its values differ only in characters "
                                   "a row name leaves out (it keeps letters, digits and . _ - +); is one of them "
                                   "mistyped?", c->path, e->rows[i].line, e->rows[i].name);
                return mv_fail("%s:%d: row '%s' also named at line %d (row names must be unique)", c->path,
                               e->rows[i].line, e->rows[i].name, e->rows[j].line);
            }
    const yaml_node_t *seeds = find_key(c, root, "seeds");
    if (seeds) {
        MV_TRY(parse_seeds(e, c, seeds));
        // With `seeds:` the seed is the sweep's to set: a run.seed elsewhere would be silently
        // overridden (or, first, would make the runs of one row all alike). Refused instead.
        unsigned long sl = (unsigned long)seeds->start_mark.line + 1;
        const yaml_node_t *set = find_key(c, root, "set");
        if (set && sets_seed((const char (*)[MV_EXP_SET_MAX])e->sets, e->nsets))
            return mv_fail("%s:%lu: `set:` gives run.seed, but `seeds:` (line %lu) sets every run's seed: remove "
                           "run.seed from `set:`", c->path, (unsigned long)set->start_mark.line + 1, sl);
        for (int i = 0; i < e->nrows; i++)
            if (sets_seed((const char (*)[MV_EXP_SET_MAX])e->rows[i].sets, e->rows[i].nsets))
                return mv_fail("%s:%d: row '%s' sets run.seed, but `seeds:` (line %lu) runs every row once per seed: "
                               "remove run.seed from the row (or `seeds:` from the file)", c->path, e->rows[i].line,
                               e->rows[i].name, sl);
    }
    // The runs: one per row, or one per (row, seed).
    int per = e->nseeds ? e->nseeds : 1;
    e->runs = mv_calloc((size_t)(e->nrows * per > 0 ? e->nrows * per : 1), sizeof(mv_exp_run));
    for (int i = 0; i < e->nrows; i++)
        for (int k = 0; k < per; k++) {
            mv_exp_run *r = &e->runs[e->nruns++];
            r->row = &e->rows[i];
            r->seed_index = e->nseeds ? k : -1;
            r->seed = e->nseeds ? e->seeds[k] : 0;
            if (k == 0) copy_str(r->name, sizeof r->name, e->rows[i].name);
            else snprintf(r->name, sizeof r->name, "%s@%d", e->rows[i].name, r->seed);
        }
    return 0;
}

int experiment_load(mv_experiment *exp, const char *path) {
    memset(exp, 0, sizeof *exp);
    if (snprintf(exp->path, sizeof exp->path, "%s", path) >= (int)sizeof exp->path) return mv_fail("%s: path too long", path);
    // Default name: the file name without its folder and extension.
    const char *slash = strrchr(path, '/');
    snprintf(exp->name, sizeof exp->name, "%s", slash ? slash + 1 : path);
    char *ext = strrchr(exp->name, '.');
    if (ext && ext != exp->name) *ext = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mv_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return mv_fail("%s: is a directory, not an experiment file", path);
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.error == YAML_READER_ERROR) {
            rc = yaml_encoding_error(f, path, &parser);
        } else {
            rc = mv_fail("%s:%lu:%lu: YAML syntax error: %s", path, (unsigned long)parser.problem_mark.line + 1,
                         (unsigned long)parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown");
        }
        yaml_parser_delete(&parser);
        fclose(f);
        return rc;
    }
    // A second document (after a stray `---`) would be ignored: refused, as in config files.
    yaml_document_t extra;
    if (yaml_parser_load(&parser, &extra)) {
        yaml_node_t *x = yaml_document_get_root_node(&extra);
        if (x) rc = mv_fail("%s:%lu:%lu: a second YAML document: an experiment file holds one", path,
                            (unsigned long)x->start_mark.line + 1, (unsigned long)x->start_mark.column + 1);
        yaml_document_delete(&extra);
    } else {
        rc = mv_fail("%s:%lu:%lu: YAML syntax error: %s", path, (unsigned long)parser.problem_mark.line + 1,
                     (unsigned long)parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown");
    }
    if (rc < 0) {
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        fclose(f);
        return rc;
    }
    exp->rows = mv_calloc(MV_EXP_MAX_ROWS, sizeof(mv_exp_row));
    ctx c = {&doc, path};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) rc = mv_fail("%s: empty experiment file", path);
    else if ((rc = check_duplicate_keys(&c)) == 0) rc = parse_root(exp, &c, root);
    // The name is the sweep's folder under runs/ (`name:` is checked where it is read; the
    // default, from the file name, here): "..yaml" wrote the rows into runs/ itself.
    if (rc == 0 && !valid_row_name(exp->name))
        rc = mv_fail("%s: the experiment's name '%s' (its file name) cannot name its folder: add `name:` (letters, "
                     "digits and . _ - + only)", path, exp->name);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    // Resolve every run now: a bad key or value in any row fails before anything runs.
    mv_config *cfg = rc == 0 ? mv_calloc(1, sizeof *cfg) : NULL;
    for (int i = 0; rc == 0 && i < exp->nruns; i++) {
        const mv_exp_row *r = exp->runs[i].row;
        if (experiment_run_config(cfg, exp, &exp->runs[i], NULL) < 0) {
            if (exp->nseeds) rc = mv_fail_context("%s:%d: row '%s' (seed %d)", path, r->line, r->name, exp->runs[i].seed);
            else rc = mv_fail_context("%s:%d: row '%s'", path, r->line, r->name);
        } else if (exp->global_batch && exp->global_batch % cfg->data.batch_per_rank) {
            // no number of ranks gives the batch asked for: the row could never train at it
            rc = mv_fail("%s:%d: row '%s': data.batch_per_rank %d does not divide global_batch %d (no number of "
                         "ranks gives it)", path, r->line, r->name, cfg->data.batch_per_rank, exp->global_batch);
        }
    }
    free(cfg);
    if (rc < 0) experiment_free(exp);
    return rc;
}

void experiment_free(mv_experiment *exp) {
    free(exp->rows);
    free(exp->runs);
    free(exp->peers);
    exp->rows = NULL;
    exp->runs = NULL;
    exp->peers = NULL;
    exp->nrows = 0;
    exp->nruns = 0;
    exp->npeers = 0;
}

const mv_exp_run *experiment_find_run(const mv_experiment *exp, const char *name) {
    for (int i = 0; i < exp->nruns; i++)
        if (!strcmp(exp->runs[i].name, name)) return &exp->runs[i];
    // "row@seed" of the first seed: that run's directory (and name) is the row's alone.
    char alias[MV_EXP_RUN_NAME_MAX + 16];
    for (int i = 0; i < exp->nruns; i++)
        if (experiment_run_alias(alias, sizeof alias, &exp->runs[i]) && !strcmp(alias, name)) return &exp->runs[i];
    return NULL;
}

bool experiment_run_alias(char *out, size_t n, const mv_exp_run *run) {
    if (run->seed_index < 0) return false;
    return snprintf(out, n, "%s@%d", run->row->name, run->seed) < (int)n;
}

const mv_exp_row *experiment_find_row(const mv_experiment *exp, const char *name) {
    for (int i = 0; i < exp->nrows; i++)
        if (!strcmp(exp->rows[i].name, name)) return &exp->rows[i];
    return NULL;
}

// The row's config; seed >= 0 sets run.seed after the row's overrides, then work_dir, then the
// nextra `extra` overrides (a command line's --set), all in one config_load: a model.preset
// among them comes first as in any file, and the whole is validated once, at the end.
static int resolve(mv_config *cfg, const mv_experiment *exp, const mv_exp_row *row, int seed, const char *work_dir,
                   int nextra, const char *const *extra) {
    const char **sets = mv_malloc(sizeof *sets * (size_t)(exp->nsets + row->nsets + 2 + nextra));
    char wd[MV_PATH_MAX + 16], sd[32];
    int n = 0;
    for (int i = 0; i < exp->nsets; i++) sets[n++] = exp->sets[i];
    for (int i = 0; i < row->nsets; i++) sets[n++] = row->sets[i];
    if (seed >= 0) {
        snprintf(sd, sizeof sd, "run.seed=%d", seed);
        sets[n++] = sd;
    }
    if (work_dir && snprintf(wd, sizeof wd, "run.work_dir=%s", work_dir) >= MV_PATH_MAX + 13) {
        free(sets);
        return mv_fail("%s: work directory path too long", work_dir);
    }
    if (work_dir) sets[n++] = wd;
    for (int i = 0; i < nextra; i++) sets[n++] = extra[i];
    int rc = config_load(cfg, exp->base[0] ? exp->base : NULL, n, sets);
    free(sets);
    MV_TRY(rc);
    if (exp->source[0] && !config_find_val(cfg, exp->source))
        return mv_fail("source domain '%s' is not a data.val entry", exp->source);
    for (int i = 0; i < exp->ncorruptions; i++)
        if (config_find_val(cfg, exp->corruptions[i]))
            return mv_fail("corruption '%s' has the name of a data.val entry (the columns would be ambiguous)",
                           exp->corruptions[i]);
    for (int i = 0; i < exp->ntargets; i++)
        if (!config_find_val(cfg, exp->targets[i]) && !experiment_is_corruption(exp, exp->targets[i]))
            return mv_fail("target domain '%s' is not a data.val entry%s", exp->targets[i],
                           exp->ncorruptions ? " nor a corruption" : "");
    for (int i = 0; i < exp->ncols; i++)
        if (strcmp(exp->cols[i].domain, "avg") && !config_find_val(cfg, exp->cols[i].domain) &&
            !experiment_is_corruption(exp, exp->cols[i].domain))
            return mv_fail("column domain '%s' is not a data.val entry (nor avg%s)", exp->cols[i].domain,
                           exp->ncorruptions ? " nor a corruption" : "");
    return 0;
}

int experiment_row_config(mv_config *cfg, const mv_experiment *exp, const mv_exp_row *row, const char *work_dir) {
    return resolve(cfg, exp, row, -1, work_dir, 0, NULL);
}

int experiment_run_config(mv_config *cfg, const mv_experiment *exp, const mv_exp_run *run, const char *work_dir) {
    return experiment_run_config_with(cfg, exp, run, work_dir, 0, NULL);
}

int experiment_run_config_with(mv_config *cfg, const mv_experiment *exp, const mv_exp_run *run, const char *work_dir,
                               int nextra, const char *const *extra) {
    return resolve(cfg, exp, run->row, run->seed_index >= 0 ? run->seed : -1, work_dir, nextra, extra);
}

void experiment_copy_unscored(mv_config *dst, const mv_config *src) {
    memcpy(dst->run.work_dir, src->run.work_dir, sizeof dst->run.work_dir);
    dst->run.log_every = src->run.log_every;
    dst->run.ckpt_every = src->run.ckpt_every;
    dst->run.eval_every = src->run.eval_every;
    dst->run.keep_ckpts = src->run.keep_ckpts;
    dst->run.device = src->run.device;
    dst->run.bucket_mb = src->run.bucket_mb;
    dst->run.first_bucket_mb = src->run.first_bucket_mb;
    dst->data.workers = src->data.workers;
    dst->run.select_metric = src->run.select_metric;   // they choose best.h5; the report reads the last
    memcpy(dst->run.select_domain, src->run.select_domain, sizeof dst->run.select_domain);
}

int experiment_twin_rows(const mv_experiment *exp, int *first, int *second) {
    *first = *second = -1;
    int n = 0;
    const mv_exp_run **runs = mv_calloc((size_t)(exp->nruns ? exp->nruns : 1), sizeof *runs);
    for (int i = 0; i < exp->nruns; i++)
        if (exp->runs[i].seed_index <= 0) runs[n++] = &exp->runs[i];   // one run per row, the first seed
    mv_config *cfg = mv_calloc((size_t)n + 1, sizeof *cfg), *tmp = &cfg[n];   // tmp: row i seen as row j
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (experiment_run_config(&cfg[i], exp, runs[i], NULL) < 0) { rc = -1; break; }
        for (int j = 0; j < i && rc == 0; j++) {
            *tmp = cfg[i];
            experiment_copy_unscored(tmp, &cfg[j]);
            // A row that differs only in the device is a legitimate comparison (CPU against GPU).
            if (config_equal(tmp, &cfg[j]) && cfg[i].run.device == cfg[j].run.device) {
                *first = (int)(runs[j]->row - exp->rows);
                *second = (int)(runs[i]->row - exp->rows);
                rc = 1;
            }
        }
    }
    free(cfg);
    free(runs);
    return rc;
}

// A rank count: digits only, 1 .. 1e6; -1 otherwise.
static int rank_count(const char *s) {
    char *end;
    long n = s && *s ? strtol(s, &end, 10) : -1;
    return n >= 1 && n <= 1000000 && s && *s && !*end ? (int)n : -1;
}

int experiment_launcher_ranks(const char *launcher) {
    if (!launcher) return 1;
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", launcher) >= (int)sizeof buf) return -1;
    int ranks = -1;
    bool mpi = false, srun = false;
    char *tok[128];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t && n < 128; t = strtok_r(NULL, " \t", &save))
        tok[n++] = t;
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(tok[i], '/') ? strrchr(tok[i], '/') + 1 : tok[i];
        if (!mpi && !srun) {   // the program: skip what comes before it (`env X=1`, `nice`, ...)
            mpi = !strcmp(base, "mpirun") || !strcmp(base, "mpiexec") || !strcmp(base, "orterun");
            srun = !strcmp(base, "srun");
            continue;
        }
        const char *t = tok[i], *next = i + 1 < n ? tok[i + 1] : NULL;
        // a count per node (or a mapping) makes the total depend on the hosts: cannot tell
        if ((mpi && !strcmp(t, "-N")) || !strcmp(t, "-npernode") || !strcmp(t, "--npernode") || !strcmp(t, "-ppn") ||
            !strcmp(t, "--ntasks-per-node") || !strncmp(t, "--ntasks-per-node=", 18) || !strcmp(t, "--map-by") ||
            !strcmp(t, "-perhost"))
            return -1;
        if (ranks < 0 && (!strcmp(t, "-np") || !strcmp(t, "-n") || !strcmp(t, "--np") || !strcmp(t, "--n") ||
                          (mpi && !strcmp(t, "-c")) || (srun && !strcmp(t, "--ntasks"))))
            ranks = rank_count(next);
        else if (ranks < 0 && srun && !strncmp(t, "--ntasks=", 9)) ranks = rank_count(t + 9);
        else if (ranks < 0 && srun && !strncmp(t, "-n", 2) && t[2]) ranks = rank_count(t + 2);
    }
    return mpi || srun ? ranks : -1;
}

bool experiment_is_corruption(const mv_experiment *exp, const char *name) {
    for (int i = 0; i < exp->ncorruptions; i++)
        if (!strcmp(exp->corruptions[i], name)) return true;
    return false;
}

int experiment_corruption_results(char (*names)[MV_NAME_MAX], double *miou, const mv_experiment *exp,
                                  const char *json_path) {
    FILE *f = fopen(json_path, "rb");
    if (!f) return mv_fail("%s: cannot open (the corruption evaluation wrote no results)", json_path);
    char *text = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) { cap = cap ? 2 * cap : 65536; text = mv_realloc(text, cap); }
        size_t n = fread(text + len, 1, 4096, f);
        len += n;
        if (n == 0) break;
    }
    fclose(f);
    text[len] = 0;
    mv_json doc;
    int rc = mv_json_parse(&doc, text);
    free(text);
    if (rc < 0) return mv_fail_context("%s", json_path);
    const mv_json *res = mv_json_get(&doc, "results");
    if (!res || res->kind != MV_JSON_ARR) { mv_json_free(&doc); return mv_fail("%s: no \"results\" list", json_path); }
    for (int i = 0; i < exp->ncorruptions && rc == 0; i++) {
        double sum = 0;
        int n = 0;
        for (int s = 0; s < exp->nseverities; s++) {
            bool found = false;
            for (int k = 0; k < res->n && !found; k++) {
                const mv_json *r = &res->items[k], *cn = mv_json_get(r, "corruption"), *sv = mv_json_get(r, "severity"),
                              *m = mv_json_get(r, "metrics");
                if (!cn || cn->kind != MV_JSON_STR || strcmp(cn->str, exp->corruptions[i])) continue;
                if ((int)mv_json_num(sv, -1) != exp->severities[s]) continue;
                // `null`: undefined (the split has no labelled pixel), which makes the mean so too;
                // only a missing mIoU is an error
                const mv_json *v = mv_json_get(m, "mIoU");
                if (!v || (v->kind != MV_JSON_NUM && v->kind != MV_JSON_NULL)) continue;
                sum += v->kind == MV_JSON_NUM ? v->num : NAN;
                n++;
                found = true;
            }
            if (!found) rc = mv_fail("%s: no mIoU for corruption %s at severity %d", json_path, exp->corruptions[i],
                                     exp->severities[s]);
        }
        copy_str(names[i], MV_NAME_MAX, exp->corruptions[i]);
        miou[i] = n ? sum / n : NAN;
    }
    mv_json_free(&doc);
    return rc;
}

int experiment_corruptions_differ(const mv_experiment *exp, const char *json_path) {
    char *text = mv_read_text_file(json_path, true);
    if (!text) { mv_clear_error(); return MV_CORR_DIFF_CORRUPTIONS; }
    mv_json doc;
    int rc = mv_json_parse(&doc, text);
    free(text);
    if (rc < 0) { mv_clear_error(); return MV_CORR_DIFF_CORRUPTIONS; }
    const mv_json *res = mv_json_get(&doc, "results");
    // The channel order the images were corrupted in (a file written before eval recorded it:
    // RGB, the only order there was).
    const mv_json *ch = mv_json_get(&doc, "corruption_channels");
    bool bgr = ch && ch->kind == MV_JSON_STR && !strcmp(ch->str, "bgr");
    // every (corruption, severity) of the file, once each; nothing else but the clean pass
    bool seen[MV_EXP_MAX_CORR][5] = {{false}};
    int differ = bgr != exp->corruption_bgr ? MV_CORR_DIFF_CORRUPTIONS : 0;
    if (!res || res->kind != MV_JSON_ARR) {
        mv_json_free(&doc);
        return MV_CORR_DIFF_CORRUPTIONS;
    }
    for (int k = 0; k < res->n; k++) {
        // The domain that was corrupted (the sweep evaluates the source only, clean pass
        // included): numbers of another domain are not those of the file's `source:`. eval has
        // always written it; a record without one (hand-written) is not taken as a change.
        const mv_json *dom = mv_json_get(&res->items[k], "domain");
        if (dom && (dom->kind != MV_JSON_STR || strcmp(dom->str, exp->source))) differ |= MV_CORR_DIFF_SOURCE;
        const mv_json *cn = mv_json_get(&res->items[k], "corruption");
        int sev = (int)mv_json_num(mv_json_get(&res->items[k], "severity"), -1);
        if (!cn || cn->kind != MV_JSON_STR) { differ |= MV_CORR_DIFF_CORRUPTIONS; continue; }
        if (!strcmp(cn->str, "none")) continue;
        int c = -1, s = -1;
        for (int i = 0; i < exp->ncorruptions; i++) if (!strcmp(exp->corruptions[i], cn->str)) c = i;
        for (int i = 0; i < exp->nseverities; i++) if (exp->severities[i] == sev) s = i;
        if (c < 0 || s < 0) differ |= MV_CORR_DIFF_CORRUPTIONS;
        else seen[c][s] = true;
    }
    for (int c = 0; c < exp->ncorruptions; c++)
        for (int s = 0; s < exp->nseverities; s++) if (!seen[c][s]) differ |= MV_CORR_DIFF_CORRUPTIONS;
    mv_json_free(&doc);
    return differ;
}

int experiment_corruptions_match(const mv_experiment *exp, const char *json_path) {
    return experiment_corruptions_differ(exp, json_path) == 0;
}

const char *experiment_corruptions_what(int differ) {
    switch (differ & (MV_CORR_DIFF_CORRUPTIONS | MV_CORR_DIFF_SOURCE)) {
    case MV_CORR_DIFF_CORRUPTIONS: return "corruptions changed";
    case MV_CORR_DIFF_SOURCE: return "source changed";
    case MV_CORR_DIFF_CORRUPTIONS | MV_CORR_DIFF_SOURCE: return "corruptions and source changed";
    default: return "unchanged";
    }
}
