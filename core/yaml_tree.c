// Reading configuration YAML into a tree (core/yaml_tree.h) with libyaml's document API: a
// file becomes a small tree of nodes that remember their FILE:LINE:COLUMN; `include:` (or
// `_base_:`) bases are merged under it and `--set key=value` overrides on top (maps merge key
// by key, anything else replaces). Applying the tree to mv_config is core/config_yaml.c.
#include "core/yaml_tree.h"
#include "core/error.h"
#include "core/yaml_encoding.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_DEPTH 64          // nesting of one document (also stops alias loops)
#define MAX_NODES 100000      // nodes of one document after alias expansion

// --- the arena, nodes, messages ---------------------------------------------------------

static void *yalloc(yarena *a, size_t size) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->ptrs = mv_realloc(a->ptrs, (size_t)a->cap * sizeof *a->ptrs);
    }
    return a->ptrs[a->n++] = mv_calloc(1, size);
}

static char *ystrndup(yarena *a, const char *s, size_t len) {
    char *p = yalloc(a, len + 1);
    memcpy(p, s, len);
    return p;
}

void yarena_free(yarena *a) {
    for (int i = 0; i < a->n; i++) free(a->ptrs[i]);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

ynode *ynode_new(yarena *a, ykind kind, const char *file, int line, int col) {
    ynode *n = yalloc(a, sizeof *n);
    n->kind = kind;
    n->file = file;
    n->line = line;
    n->col = col;
    if (kind == Y_SCALAR) n->text = ystrndup(a, "", 0);
    return n;
}

static void map_append(yarena *a, ynode *map, ynode *key, ynode *val) {
    ynode **keys = yalloc(a, (size_t)(map->n + 1) * sizeof *keys);
    ynode **vals = yalloc(a, (size_t)(map->n + 1) * sizeof *vals);
    if (map->n) {
        memcpy(keys, map->keys, (size_t)map->n * sizeof *keys);
        memcpy(vals, map->vals, (size_t)map->n * sizeof *vals);
    }
    keys[map->n] = key;
    vals[map->n] = val;
    map->keys = keys;
    map->vals = vals;
    map->n++;
}

int ynode_map_find(const ynode *map, const char *key) {
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->text, key)) return i;
    return -1;
}

const char *ynode_where(const ynode *n, char *buf, size_t cap) {
    if (n->line > 0) snprintf(buf, cap, "%s:%d:%d", n->file, n->line, n->col);
    else snprintf(buf, cap, "%s", n->file);
    return buf;
}

// Records "WHERE: message" and returns -1.
__attribute__((format(printf, 2, 3))) int ynode_fail_at(const ynode *n, const char *fmt, ...) {
    char msg[MV_ERRMSG_MAX], loc[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mv_fail("%s: %s", ynode_where(n, loc, sizeof loc), msg);
}

int ynode_context_at(const ynode *n) {
    char loc[600];
    return mv_fail_context("%s", ynode_where(n, loc, sizeof loc));
}

const char *ynode_kind_words(const ynode *n) {
    if (n->kind == Y_MAP) return "a mapping";
    if (n->kind == Y_SEQ) return "a list";
    return n->null ? "nothing" : "a plain value";
}

// --- libyaml -> tree --------------------------------------------------------------------

static int syntax_error(const char *file, const yaml_parser_t *p) {
    const char *problem = p->problem ? p->problem : "unreadable input";
    if (p->error == YAML_READER_ERROR)
        return mv_fail("%s: YAML error: %s (at byte %zu)", file, problem, p->problem_offset);
    // A --set value is one line: its own text says more than a line and column would.
    if (!strncmp(file, "--set ", 6))
        return mv_fail("%s: YAML syntax error in the value: %s%s%s", file, problem, p->context ? ", " : "",
                       p->context ? p->context : "");
    if (p->context)
        return mv_fail("%s:%zu:%zu: YAML syntax error: %s (%s at line %zu, column %zu)", file,
                       p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                       p->context_mark.line + 1, p->context_mark.column + 1);
    return mv_fail("%s:%zu:%zu: YAML syntax error: %s", file, p->problem_mark.line + 1,
                   p->problem_mark.column + 1, problem);
}

static ynode *from_doc(yarena *a, yaml_document_t *doc, yaml_node_t *yn, const char *file, int depth) {
    ynode *n = ynode_new(a, Y_SCALAR, file, (int)yn->start_mark.line + 1, (int)yn->start_mark.column + 1);
    if (depth > MAX_DEPTH || ++a->nodes > MAX_NODES) {
        ynode_fail_at(n, "document nested too deeply or too large (recursive aliases?)");
        return NULL;
    }
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)yn->data.scalar.value;
        size_t len = yn->data.scalar.length;
        n->text = ystrndup(a, v, len);
        // Before a null is emptied below: its text ("~", "null") is then shorter than len.
        if (strlen(n->text) != len) {
            ynode_fail_at(n, "value contains a NUL character");
            return NULL;
        }
        if (yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (len == 0 || !strcmp(n->text, "~") || !strcmp(n->text, "null") || !strcmp(n->text, "Null") ||
             !strcmp(n->text, "NULL"))) {
            n->text[0] = '\0';
            n->null = true;
        }
        return n;
    }
    case YAML_SEQUENCE_NODE: {
        n->kind = Y_SEQ;
        n->n = (int)(yn->data.sequence.items.top - yn->data.sequence.items.start);
        n->vals = yalloc(a, (size_t)(n->n ? n->n : 1) * sizeof *n->vals);
        for (int i = 0; i < n->n; i++) {
            yaml_node_t *c = yaml_document_get_node(doc, yn->data.sequence.items.start[i]);
            if (!c || !(n->vals[i] = from_doc(a, doc, c, file, depth + 1))) return NULL;
        }
        return n;
    }
    case YAML_MAPPING_NODE: {
        n->kind = Y_MAP;
        int count = (int)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
        n->keys = yalloc(a, (size_t)(count ? count : 1) * sizeof *n->keys);
        n->vals = yalloc(a, (size_t)(count ? count : 1) * sizeof *n->vals);
        for (int i = 0; i < count; i++) {
            yaml_node_pair_t *pair = &yn->data.mapping.pairs.start[i];
            yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
            yaml_node_t *vn = yaml_document_get_node(doc, pair->value);
            if (!kn || !vn) { ynode_fail_at(n, "malformed mapping"); return NULL; }
            ynode *k = from_doc(a, doc, kn, file, depth + 1);
            if (!k) return NULL;
            if (k->kind != Y_SCALAR || k->null) {
                ynode_fail_at(k, "mapping keys must be plain names, got %s", ynode_kind_words(k));
                return NULL;
            }
            // libyaml reads `<<: *base` as a key called "<<"; say what it is rather than report an
            // unknown key 'schedule.<<'.
            if (kn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !strcmp(k->text, "<<")) {
                ynode_fail_at(k, "YAML merge keys ('<<: *anchor') are not supported: write the keys out "
                                 "(anchors and aliases of whole values work)");
                return NULL;
            }
            if (ynode_map_find(n, k->text) >= 0) {
                ynode_fail_at(k, "duplicate key '%s'", k->text);
                return NULL;
            }
            ynode *v = from_doc(a, doc, vn, file, depth + 1);
            if (!v) return NULL;
            n->keys[n->n] = k;
            n->vals[n->n] = v;
            n->n++;
        }
        return n;
    }
    default:
        ynode_fail_at(n, "unsupported YAML node");
        return NULL;
    }
}

// Parses one YAML document from the parser's input; an empty input gives a null scalar.
static ynode *parse_document(yarena *a, yaml_parser_t *p, const char *file) {
    yaml_document_t doc;
    if (!yaml_parser_load(p, &doc)) { syntax_error(file, p); return NULL; }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    ynode *tree;
    a->nodes = 0;
    if (root) {
        tree = from_doc(a, &doc, root, file, 0);
    } else {
        tree = ynode_new(a, Y_SCALAR, file, 1, 1);
        tree->null = true;
    }
    yaml_document_delete(&doc);
    if (!tree || !root) return tree;
    // A second document is a mistake (a stray `---`), not something to ignore silently.
    if (!yaml_parser_load(p, &doc)) { syntax_error(file, p); return NULL; }
    yaml_node_t *extra = yaml_document_get_root_node(&doc);
    if (extra) {
        mv_fail("%s:%zu:%zu: a second YAML document: a configuration file holds one", file,
                extra->start_mark.line + 1, extra->start_mark.column + 1);
        tree = NULL;
    }
    yaml_document_delete(&doc);
    return tree;
}

static ynode *load_file(yarena *a, const char *path) {
    const char *file = ystrndup(a, path, strlen(path));
    FILE *f = fopen(path, "rb");
    if (!f) { mv_fail("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        mv_fail("%s: is a directory, not a configuration file", path);
        return NULL;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) { fclose(f); mv_fail("%s: cannot start the YAML parser", path); return NULL; }
    yaml_parser_set_input_file(&p, f);
    ynode *tree = parse_document(a, &p, file);
    if (!tree && p.error == YAML_READER_ERROR) yaml_encoding_error(f, path, &p);
    yaml_parser_delete(&p);
    fclose(f);
    return tree;
}

// --- merging ----------------------------------------------------------------------------

// Two names of one setting. A later layer (a file over its bases, --set over the file) that
// gives either name replaces what earlier layers gave under the other; one layer giving both
// must give the same value (checked in apply_tree, core/config_yaml.c).
const char *const YAML_ALIAS_PAIRS[YAML_NUM_ALIAS_PAIRS][2] = {{"model.crop", "data.crop"}, {"mask.encoder_stages", "mask.encoder"}};

// The map holding `dotted` ("section.key") in root, and the key's index there (-1: absent).
ynode *ytree_section_of(const ynode *root, const char *dotted, int *idx) {
    const char *dot = strchr(dotted, '.');
    char section[NAME_MAX_LEN];
    snprintf(section, sizeof section, "%.*s", (int)(dot - dotted), dotted);
    int s = ynode_map_find(root, section);
    ynode *m = s >= 0 ? root->vals[s] : NULL;
    *idx = m && m->kind == Y_MAP ? ynode_map_find(m, dot + 1) : -1;
    return *idx >= 0 ? m : NULL;
}

static void map_drop(ynode *map, int i) {
    for (int j = i + 1; j < map->n; j++) {
        map->keys[j - 1] = map->keys[j];
        map->vals[j - 1] = map->vals[j];
    }
    map->n--;
}

// Before `top` is merged over `base`: what top sets under one name of a pair, base loses under
// the other.
static void drop_replaced_aliases(ynode *base, const ynode *top) {
    for (int p = 0; p < YAML_NUM_ALIAS_PAIRS; p++)
        for (int side = 0; side < 2; side++) {
            int i, j;
            if (!ytree_section_of(top, YAML_ALIAS_PAIRS[p][side], &i)) continue;
            ynode *m = ytree_section_of(base, YAML_ALIAS_PAIRS[p][!side], &j);
            if (m) map_drop(m, j);
        }
}

bool ynode_same_value(const ynode *a, const ynode *b) {
    if (a->kind != b->kind || a->n != b->n) return false;
    if (a->kind == Y_SCALAR) return a->null == b->null && !strcmp(a->text, b->text);
    for (int i = 0; i < a->n; i++) {
        if (a->kind == Y_MAP && strcmp(a->keys[i]->text, b->keys[i]->text)) return false;
        if (!ynode_same_value(a->vals[i], b->vals[i])) return false;
    }
    return true;
}

// Merges map src into map dst: maps merge key by key, other values replace. A null value
// (`model:` with nothing after it) leaves a mapping it would replace untouched.
static void merge(yarena *a, ynode *dst, ynode *src) {
    for (int i = 0; i < src->n; i++) {
        ynode *v = src->vals[i];
        int j = ynode_map_find(dst, src->keys[i]->text);
        if (j < 0) { map_append(a, dst, src->keys[i], v); continue; }
        ynode *old = dst->vals[j];
        if (old->kind == Y_MAP && v->kind == Y_MAP) merge(a, old, v);
        else if (old->kind == Y_MAP && v->kind == Y_SCALAR && v->null) continue;
        else { dst->keys[j] = src->keys[i]; dst->vals[j] = v; }
    }
}

static bool is_include_key(const char *k) { return !strcmp(k, "include") || !strcmp(k, "_base_"); }

static ynode *with_bases(yarena *a, ynode *tree, const char *path, const char **chain, int depth);

// Loads `path` with its bases: the bases in order, then the file itself on top.
// `chain` holds the files being loaded (to report include cycles).
ynode *ytree_load(yarena *a, const char *path, const char **chain, int depth) {
    if (depth >= MAX_INCLUDE_DEPTH) {
        mv_fail("%s: includes nested more than %d deep", path, MAX_INCLUDE_DEPTH);
        return NULL;
    }
    char *real = realpath(path, NULL);
    if (real) {
        for (int i = 0; i < depth; i++) {
            if (strcmp(chain[i], real)) continue;
            mv_fail("%s: include cycle (the file includes itself through its bases)", path);
            free(real);
            return NULL;
        }
        chain[depth] = ystrndup(a, real, strlen(real));
        free(real);
    } else {
        chain[depth] = ystrndup(a, path, strlen(path));
    }

    ynode *tree = load_file(a, path);
    return tree ? with_bases(a, tree, path, chain, depth) : NULL;
}

ynode *ytree_load_text(yarena *a, const char *text, const char *label, const char **chain) {
    const char *file = ystrndup(a, label, strlen(label));
    chain[0] = file;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) { mv_fail("%s: cannot start the YAML parser", label); return NULL; }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    ynode *tree = parse_document(a, &p, file);
    yaml_parser_delete(&p);
    return tree ? with_bases(a, tree, label, chain, 0) : NULL;
}

// The tree of `path` (read already) over its bases: the bases in order, then the tree on top.
static ynode *with_bases(yarena *a, ynode *tree, const char *path, const char **chain, int depth) {
    if (tree->kind == Y_SCALAR && tree->null) {
        tree = ynode_new(a, Y_MAP, tree->file, 1, 1);   // an empty file is an empty configuration
    }
    if (tree->kind != Y_MAP) {
        ynode_fail_at(tree, "expected a mapping of sections (model, mask, data, optim, schedule, run), got %s",
                ynode_kind_words(tree));
        return NULL;
    }

    ynode *result = ynode_new(a, Y_MAP, tree->file, 1, 1), *own = ynode_new(a, Y_MAP, tree->file, 1, 1);
    int includes = 0;
    for (int i = 0; i < tree->n; i++) {
        ynode *k = tree->keys[i], *v = tree->vals[i];
        if (!is_include_key(k->text)) { map_append(a, own, k, v); continue; }
        if (includes++) { ynode_fail_at(k, "give one include list ('include' or '_base_'), not two"); return NULL; }
        int nb = v->kind == Y_SEQ ? v->n : 1;
        for (int b = 0; b < nb; b++) {
            ynode *item = v->kind == Y_SEQ ? v->vals[b] : v;
            if (item->kind != Y_SCALAR || item->null || !item->text[0]) {
                ynode_fail_at(item, "%s: expected a file name or a list of file names, got %s", k->text, ynode_kind_words(item));
                return NULL;
            }
            // Relative bases are relative to the including file.
            const char *slash = strrchr(path, '/');
            size_t dirlen = (item->text[0] == '/' || !slash) ? 0 : (size_t)(slash - path) + 1;
            char *full = yalloc(a, dirlen + strlen(item->text) + 1);
            memcpy(full, path, dirlen);
            strcpy(full + dirlen, item->text);
            ynode *base = ytree_load(a, full, chain, depth + 1);
            if (!base) { ynode_context_at(item); return NULL; }
            drop_replaced_aliases(result, base);
            merge(a, result, base);
        }
    }
    drop_replaced_aliases(result, own);
    merge(a, result, own);
    return result;
}

// `--set a.b=value`: the value is YAML (`0.5`, `[1, 2]`, `{match: norm}`), merged at a.b.
int ytree_set(yarena *a, ynode *root, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) return mv_fail("--set '%s': expected KEY=VALUE (e.g. mask.lambda=0.5)", assignment);
    size_t klen = (size_t)(eq - assignment);
    char *label = yalloc(a, strlen(assignment) + 8);
    sprintf(label, "--set %s", assignment);
    char *key = ystrndup(a, assignment, klen);
    for (char *c = key; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                  (*c == '.' && c != key && c[1] && c[1] != '.');
        if (!ok) return mv_fail("%s: bad key '%s' (expected names joined by dots, e.g. optim.lr)", label, key);
    }

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return mv_fail("%s: cannot start the YAML parser", label);
    yaml_parser_set_input_string(&p, (const unsigned char *)(eq + 1), strlen(eq + 1));
    ynode *value = parse_document(a, &p, label);
    yaml_parser_delete(&p);
    if (!value) return -1;
    // Locations inside a one-line value are not worth more than the --set itself.
    value->line = 0;
    if (value->kind == Y_SCALAR && value->null && !eq[1]) value->null = false;   // `key=` is ""

    // Wrap the value in one map per key component, innermost first, and merge it in.
    ynode *node = value;
    for (char *dot = key + klen;;) {
        char *start = dot;
        while (start > key && start[-1] != '.') start--;
        ynode *map = ynode_new(a, Y_MAP, label, 0, 0), *k = ynode_new(a, Y_SCALAR, label, 0, 0);
        k->text = ystrndup(a, start, (size_t)(dot - start));
        map_append(a, map, k, node);
        node = map;
        if (start == key) break;
        dot = start - 1;
    }
    drop_replaced_aliases(root, node);
    merge(a, root, node);
    return 0;
}
