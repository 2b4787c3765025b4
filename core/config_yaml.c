// Reading the configuration from YAML with libyaml's document API. A file becomes a small
// tree of nodes that remember their FILE:LINE:COLUMN; `include:` (or `_base_:`) bases are
// merged under it, `--set key=value` overrides on top (maps merge key by key, anything else
// replaces), and the merged tree is applied to the typed mv_config key by key.
#include "core/config.h"
#include "core/error.h"
#include "core/suggest.h"
#include "core/yaml_encoding.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_DEPTH 64          // nesting of one document (also stops alias loops)
#define MAX_NODES 100000      // nodes of one document after alias expansion
#define MAX_INCLUDE_DEPTH 16
#define NAME_MAX_LEN 128      // dotted key names

typedef enum { Y_SCALAR, Y_SEQ, Y_MAP } ykind;

typedef struct ynode ynode;
struct ynode {
    ykind kind;
    const char *file;   // a path, or "--set key=value" (then line is 0)
    int line, col;      // 1-based
    char *text;         // Y_SCALAR: the value ("" for null)
    bool null;          // Y_SCALAR: an empty / ~ / null plain scalar
    int n;              // Y_SEQ items, Y_MAP pairs
    ynode **keys;       // Y_MAP: scalar key nodes
    ynode **vals;       // Y_SEQ items, Y_MAP values
};

// Every allocation of one load, freed together.
typedef struct {
    void **ptrs;
    int n, cap;
    int nodes;   // nodes made for the current document
} yarena;

static void *yalloc(yarena *a, size_t size) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        void **p = realloc(a->ptrs, (size_t)a->cap * sizeof *p);
        MV_CHECK(p, "out of memory");
        a->ptrs = p;
    }
    return a->ptrs[a->n++] = mv_calloc(1, size);
}

static char *ystrndup(yarena *a, const char *s, size_t len) {
    char *p = yalloc(a, len + 1);
    memcpy(p, s, len);
    return p;
}

static void yfree(yarena *a) {
    for (int i = 0; i < a->n; i++) free(a->ptrs[i]);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

static ynode *new_node(yarena *a, ykind kind, const char *file, int line, int col) {
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

static int map_find(const ynode *map, const char *key) {
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->text, key)) return i;
    return -1;
}

static const char *where(const ynode *n, char *buf, size_t cap) {
    if (n->line > 0) snprintf(buf, cap, "%s:%d:%d", n->file, n->line, n->col);
    else snprintf(buf, cap, "%s", n->file);
    return buf;
}

// Records "WHERE: message" and returns -1.
__attribute__((format(printf, 2, 3))) static int fail_at(const ynode *n, const char *fmt, ...) {
    char msg[MV_ERRMSG_MAX], loc[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mv_fail("%s: %s", where(n, loc, sizeof loc), msg);
}

static int context_at(const ynode *n) {
    char loc[600];
    return mv_fail_context("%s", where(n, loc, sizeof loc));
}

static const char *kind_words(const ynode *n) {
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
    ynode *n = new_node(a, Y_SCALAR, file, (int)yn->start_mark.line + 1, (int)yn->start_mark.column + 1);
    if (depth > MAX_DEPTH || ++a->nodes > MAX_NODES) {
        fail_at(n, "document nested too deeply or too large (recursive aliases?)");
        return NULL;
    }
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)yn->data.scalar.value;
        size_t len = yn->data.scalar.length;
        n->text = ystrndup(a, v, len);
        // Before a null is emptied below: its text ("~", "null") is then shorter than len.
        if (strlen(n->text) != len) {
            fail_at(n, "value contains a NUL character");
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
            if (!kn || !vn) { fail_at(n, "malformed mapping"); return NULL; }
            ynode *k = from_doc(a, doc, kn, file, depth + 1);
            if (!k) return NULL;
            if (k->kind != Y_SCALAR || k->null) {
                fail_at(k, "mapping keys must be plain names, got %s", kind_words(k));
                return NULL;
            }
            if (map_find(n, k->text) >= 0) {
                fail_at(k, "duplicate key '%s'", k->text);
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
        fail_at(n, "unsupported YAML node");
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
        tree = new_node(a, Y_SCALAR, file, 1, 1);
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
// must give the same value (checked in apply_tree).
static const char *const ALIAS_PAIRS[][2] = {{"model.crop", "data.crop"}, {"mask.encoder_stages", "mask.encoder"}};
#define NUM_ALIAS_PAIRS 2

// The map holding `dotted` ("section.key") in root, and the key's index there (-1: absent).
static ynode *section_of(const ynode *root, const char *dotted, int *idx) {
    const char *dot = strchr(dotted, '.');
    char section[NAME_MAX_LEN];
    snprintf(section, sizeof section, "%.*s", (int)(dot - dotted), dotted);
    int s = map_find(root, section);
    ynode *m = s >= 0 ? root->vals[s] : NULL;
    *idx = m && m->kind == Y_MAP ? map_find(m, dot + 1) : -1;
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
    for (int p = 0; p < NUM_ALIAS_PAIRS; p++)
        for (int side = 0; side < 2; side++) {
            int i, j;
            if (!section_of(top, ALIAS_PAIRS[p][side], &i)) continue;
            ynode *m = section_of(base, ALIAS_PAIRS[p][!side], &j);
            if (m) map_drop(m, j);
        }
}

static bool same_value(const ynode *a, const ynode *b) {
    if (a->kind != b->kind || a->n != b->n) return false;
    if (a->kind == Y_SCALAR) return a->null == b->null && !strcmp(a->text, b->text);
    for (int i = 0; i < a->n; i++) {
        if (a->kind == Y_MAP && strcmp(a->keys[i]->text, b->keys[i]->text)) return false;
        if (!same_value(a->vals[i], b->vals[i])) return false;
    }
    return true;
}

// Merges map src into map dst: maps merge key by key, other values replace. A null value
// (`model:` with nothing after it) leaves a mapping it would replace untouched.
static void merge(yarena *a, ynode *dst, ynode *src) {
    for (int i = 0; i < src->n; i++) {
        ynode *v = src->vals[i];
        int j = map_find(dst, src->keys[i]->text);
        if (j < 0) { map_append(a, dst, src->keys[i], v); continue; }
        ynode *old = dst->vals[j];
        if (old->kind == Y_MAP && v->kind == Y_MAP) merge(a, old, v);
        else if (old->kind == Y_MAP && v->kind == Y_SCALAR && v->null) continue;
        else { dst->keys[j] = src->keys[i]; dst->vals[j] = v; }
    }
}

static bool is_include_key(const char *k) { return !strcmp(k, "include") || !strcmp(k, "_base_"); }

// Loads `path` with its bases: the bases in order, then the file itself on top.
// `chain` holds the files being loaded (to report include cycles).
static ynode *load_with_includes(yarena *a, const char *path, const char **chain, int depth) {
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
    if (!tree) return NULL;
    if (tree->kind == Y_SCALAR && tree->null) {
        tree = new_node(a, Y_MAP, tree->file, 1, 1);   // an empty file is an empty configuration
    }
    if (tree->kind != Y_MAP) {
        fail_at(tree, "expected a mapping of sections (model, mask, data, optim, schedule, run), got %s",
                kind_words(tree));
        return NULL;
    }

    ynode *result = new_node(a, Y_MAP, tree->file, 1, 1), *own = new_node(a, Y_MAP, tree->file, 1, 1);
    int includes = 0;
    for (int i = 0; i < tree->n; i++) {
        ynode *k = tree->keys[i], *v = tree->vals[i];
        if (!is_include_key(k->text)) { map_append(a, own, k, v); continue; }
        if (includes++) { fail_at(k, "give one include list ('include' or '_base_'), not two"); return NULL; }
        int nb = v->kind == Y_SEQ ? v->n : 1;
        for (int b = 0; b < nb; b++) {
            ynode *item = v->kind == Y_SEQ ? v->vals[b] : v;
            if (item->kind != Y_SCALAR || item->null || !item->text[0]) {
                fail_at(item, "%s: expected a file name or a list of file names, got %s", k->text, kind_words(item));
                return NULL;
            }
            // Relative bases are relative to the including file.
            const char *slash = strrchr(path, '/');
            size_t dirlen = (item->text[0] == '/' || !slash) ? 0 : (size_t)(slash - path) + 1;
            char *full = yalloc(a, dirlen + strlen(item->text) + 1);
            memcpy(full, path, dirlen);
            strcpy(full + dirlen, item->text);
            ynode *base = load_with_includes(a, full, chain, depth + 1);
            if (!base) { context_at(item); return NULL; }
            drop_replaced_aliases(result, base);
            merge(a, result, base);
        }
    }
    drop_replaced_aliases(result, own);
    merge(a, result, own);
    return result;
}

// `--set a.b=value`: the value is YAML (`0.5`, `[1, 2]`, `{match: norm}`), merged at a.b.
static int set_into_tree(yarena *a, ynode *root, const char *assignment) {
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
        ynode *map = new_node(a, Y_MAP, label, 0, 0), *k = new_node(a, Y_SCALAR, label, 0, 0);
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

// --- tree -> mv_config -------------------------------------------------------------------

static const char *const SECTIONS[] = {"model", "mask", "data", "optim", "schedule", "run"};
#define NUM_SECTIONS 6
static const char *const LIST_KEYS[] = {"data.train", "data.val", "optim.rules"};

static bool is_model_section(const char *prefix) {
    return !strncmp(prefix, "model", 5) || !strncmp(prefix, "mask", 4);
}

// The names valid directly under `prefix` (a nested group such as data.synthetic once), for
// unknown-key messages and their suggestions.
#define MAX_LEAVES 64
typedef struct {
    char name[MAX_LEAVES][32];
    const char *ptr[MAX_LEAVES];   // ptr[i] = name[i], for mv_closest
    int n;
} leaf_list;

static void known_leaves(leaf_list *l, const char *prefix) {
    int n;
    const mv_key *keys = is_model_section(prefix) ? model_config_keys(&n) : config_keys(&n);
    size_t plen = strlen(prefix);
    l->n = 0;
    for (int i = 0; i < n + 3; i++) {
        const char *name = i < n ? keys[i].name : LIST_KEYS[i - n];
        if (i < n && (keys[i].flags & MV_KEY_HIDDEN)) continue;
        if (strncmp(name, prefix, plen) || name[plen] != '.') continue;
        const char *leaf = name + plen + 1, *dot = strchr(leaf, '.');
        size_t len = dot ? (size_t)(dot - leaf) : strlen(leaf);
        if (len >= sizeof l->name[0] || l->n == MAX_LEAVES) continue;
        bool dup = false;
        for (int j = 0; j < l->n && !dup; j++) dup = strlen(l->name[j]) == len && !strncmp(l->name[j], leaf, len);
        if (dup) continue;
        snprintf(l->name[l->n], sizeof l->name[0], "%.*s", (int)len, leaf);
        l->ptr[l->n] = l->name[l->n];
        l->n++;
    }
}

// "a, b, c": the names valid directly under `prefix`.
static void known_keys(char *out, size_t cap, const char *prefix) {
    leaf_list l;
    known_leaves(&l, prefix);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < l.n; i++) {
        size_t len = strlen(l.name[i]);
        if (o + len + 3 >= cap) break;
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? ", " : "", l.name[i]);
    }
}

static bool has_nested_keys(const char *name) {
    int n;
    const mv_key *keys = config_keys(&n);
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (!strncmp(keys[i].name, name, len) && keys[i].name[len] == '.') return true;
    return false;
}

// A full key name ("optim.lr") whose last part is `leaf` (case ignored), outside `skip_prefix`:
// the right name under the wrong section (`model.lambda` for mask.lambda). NULL when none.
static const char *same_leaf_elsewhere(const char *leaf, const char *skip_prefix) {
    int nm, nc;
    const mv_key *tables[2] = {model_config_keys(&nm), config_keys(&nc)};
    int counts[2] = {nm, nc};
    size_t slen = skip_prefix ? strlen(skip_prefix) : 0;
    for (int t = 0; t < 3; t++) {
        int n = t < 2 ? counts[t] : 3;
        for (int i = 0; i < n; i++) {
            if (t < 2 && (tables[t][i].flags & MV_KEY_HIDDEN)) continue;
            const char *name = t < 2 ? tables[t][i].name : LIST_KEYS[i];
            if (slen && !strncmp(name, skip_prefix, slen) && name[slen] == '.') continue;
            const char *last = strrchr(name, '.');
            if (last && !strcasecmp(last + 1, leaf)) return name;
        }
    }
    return NULL;
}

// The key for a name mmseg / mmengine configs give the same setting (`model.pretrained`, the
// top-level `load_from`), or NULL.
static const char *mmseg_synonym(const char *leaf) {
    static const char *const NAMES[] = {"pretrained", "load_from", "init_cfg"};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (!strcmp(leaf, NAMES[i])) return "run.init_weights";
    return NULL;
}

// "; did you mean 'optim.lr'?" for the unknown key `leaf` under `prefix` (mmseg's name for one
// of ours, a close name in that section, or the same name in another section), or "".
static void key_hint(char *out, size_t cap, const char *prefix, const char *leaf) {
    const char *synonym = mmseg_synonym(leaf);
    if (synonym) {
        snprintf(out, cap, "; did you mean '%s'?", synonym);
        return;
    }
    leaf_list l;
    known_leaves(&l, prefix);
    const char *near = mv_closest(leaf, l.ptr, l.n);
    const char *other = near ? NULL : same_leaf_elsewhere(leaf, prefix);
    if (near) snprintf(out, cap, "; did you mean '%s.%s'?", prefix, near);
    else if (other) snprintf(out, cap, "; did you mean '%s'?", other);
    else out[0] = '\0';
}

// True when `dotted` names a key (or a group of keys) that a file or --set may give.
static bool is_known_name(const char *dotted) {
    int nm, nc;
    const mv_key *mk = model_config_keys(&nm), *ck = config_keys(&nc);
    for (int i = 0; i < 3; i++)
        if (!strcmp(dotted, LIST_KEYS[i])) return true;
    return key_find(mk, nm, dotted) || key_find(ck, nc, dotted) || has_nested_keys(dotted);
}

// The hint for an unknown section `section` whose value is v: the close section name, made a
// whole key when v holds one key that exists there (`--set optimizer.lr=1` -> optim.lr), or
// a key of that name in some section (`--set lr=1` -> optim.lr).
static void section_hint(char *out, size_t cap, const char *section, const ynode *v) {
    static const char *const names[] = {"model", "mask", "data", "optim", "schedule", "run", "include", "_base_"};
    const char *synonym = mmseg_synonym(section);
    if (synonym) {
        snprintf(out, cap, "; did you mean '%s'?", synonym);
        return;
    }
    const char *near = mv_closest(section, names, (int)(sizeof names / sizeof names[0]));
    out[0] = '\0';
    if (near) {
        char full[NAME_MAX_LEN];
        if (v->kind == Y_MAP && v->n == 1 &&
            (size_t)snprintf(full, sizeof full, "%s.%s", near, v->keys[0]->text) < sizeof full && is_known_name(full))
            snprintf(out, cap, "; did you mean '%s'?", full);
        else
            snprintf(out, cap, "; did you mean '%s'?", near);
        return;
    }
    const char *other = same_leaf_elsewhere(section, NULL);
    if (other) snprintf(out, cap, "; did you mean '%s'?", other);
}

// The text a typed key parses: a plain value as is, a list of plain values joined by commas.
static char *value_text(const ynode *v, const mv_key *k) {
    if (v->kind == Y_MAP) { fail_at(v, "%s: expected a value, got a mapping", k->name); return NULL; }
    if (v->kind == Y_SCALAR) {
        char *t = mv_malloc(strlen(v->text) + 1);
        return strcpy(t, v->text);
    }
    if (k->count == 1 && !k->set) {
        fail_at(v, "%s: expected a single value, got a list", k->name);
        return NULL;
    }
    size_t len = 1;
    for (int i = 0; i < v->n; i++) {
        if (v->vals[i]->kind != Y_SCALAR) {
            fail_at(v->vals[i], "%s: expected a list of plain values, got %s inside", k->name, kind_words(v->vals[i]));
            return NULL;
        }
        len += strlen(v->vals[i]->text) + 2;
    }
    char *t = mv_malloc(len);
    t[0] = '\0';
    for (int i = 0; i < v->n; i++) {
        if (i) strcat(t, ", ");
        strcat(t, v->vals[i]->text);
    }
    return t;
}

static int set_string(char *dst, size_t cap, const ynode *v, const char *what) {
    if (v->kind != Y_SCALAR) return fail_at(v, "%s: expected a string, got %s", what, kind_words(v));
    if (strlen(v->text) >= cap) return fail_at(v, "%s: '%s' is longer than %zu characters", what, v->text, cap - 1);
    memset(dst, 0, cap);
    memcpy(dst, v->text, strlen(v->text));
    return 0;
}

// The domain name a bare path implies: "synthetic:fog" -> fog, "data/bdd/val" -> bdd.
static int name_from_path(char *name, size_t cap, const char *path, const ynode *at, const char *what) {
    char buf[MV_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    const char *base = buf;
    if (!strncmp(buf, "synthetic:", 10)) {
        base = buf + 10;
        char *slash = strchr(base, '/');
        if (slash) *slash = '\0';
    } else {
        size_t len = strlen(buf);
        while (len > 1 && buf[len - 1] == '/') buf[--len] = '\0';
        char *last = strrchr(buf, '/');
        base = last ? last + 1 : buf;
        static const char *const splits[] = {"train", "val", "test", "validation"};
        for (int i = 0; i < 4 && last; i++) {
            if (strcmp(base, splits[i])) continue;
            *last = '\0';
            char *prev = strrchr(buf, '/');
            base = prev ? prev + 1 : buf;
            break;
        }
    }
    if (!base[0]) return fail_at(at, "%s: cannot name '%s'; give {name: ..., path: ...}", what, path);
    if (strlen(base) >= cap)
        return fail_at(at, "%s: name '%s' is longer than %zu characters; give {name: ..., path: ...}", what, base, cap - 1);
    snprintf(name, cap, "%s", base);
    return 0;
}

static int parse_source(mv_source *s, const ynode *item, const char *what, bool train) {
    static const mv_key repeat_key = {.name = "repeat", .type = MV_KEY_INT, .offset = offsetof(mv_source, repeat),
                                      .count = 1, .lo = 1, .hi = 1000000};
    memset(s, 0, sizeof *s);
    s->repeat = 1;
    if (item->kind == Y_SCALAR) {
        if (item->null || !item->text[0]) return fail_at(item, "%s: empty source", what);
        MV_TRY(set_string(s->path, sizeof s->path, item, what));
        return name_from_path(s->name, sizeof s->name, s->path, item, what);
    }
    if (item->kind != Y_MAP)
        return fail_at(item, "%s: expected a path or {name: ..., path: ...}, got %s", what, kind_words(item));
    for (int i = 0; i < item->n; i++) {
        const char *k = item->keys[i]->text;
        if (!strcmp(k, "name")) MV_TRY(set_string(s->name, sizeof s->name, item->vals[i], what));
        else if (!strcmp(k, "path")) MV_TRY(set_string(s->path, sizeof s->path, item->vals[i], what));
        else if (!strcmp(k, "repeat") && train) {
            if (item->vals[i]->kind != Y_SCALAR)
                return fail_at(item->vals[i], "%s: repeat: expected an integer, got %s", what, kind_words(item->vals[i]));
            if (key_set(s, &repeat_key, item->vals[i]->text) < 0) {
                mv_fail_context("%s", what);
                return context_at(item->vals[i]);
            }
        } else {
            static const char *const known[] = {"name", "path", "repeat"};
            char hint[64];
            mv_hint(hint, sizeof hint, k, known, train ? 3 : 2);
            return fail_at(item->keys[i], "%s: unknown key '%s'%s (known: name, path%s)", what, k, hint,
                           train ? ", repeat" : "");
        }
    }
    if (!s->path[0]) return fail_at(item, "%s: missing 'path'", what);
    if (!s->name[0]) return name_from_path(s->name, sizeof s->name, s->path, item, what);
    return 0;
}

// data.train / data.val: a list of sources; a plain value is a comma-separated list of paths.
static int apply_sources(mv_source *list, int *count, const ynode *v, const char *key) {
    bool train = !strcmp(key, "data.train");
    mv_source tmp[MV_MAX_SOURCES];
    int n = 0;
    char what[NAME_MAX_LEN + 16];
    if (v->kind == Y_MAP) return fail_at(v, "%s: expected a list of sources, got a mapping", key);
    if (v->kind == Y_SCALAR && !v->null) {
        char *buf = mv_malloc(strlen(v->text) + 1);
        strcpy(buf, v->text);
        int rc = 0;
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            size_t len = strlen(tok);
            while (len && tok[len - 1] == ' ') tok[--len] = '\0';
            if (!len) continue;
            if (n == MV_MAX_SOURCES) { rc = fail_at(v, "%s: more than %d sources", key, MV_MAX_SOURCES); break; }
            ynode item = *v;
            item.text = tok;
            snprintf(what, sizeof what, "%s[%d]", key, n);
            rc = parse_source(&tmp[n++], &item, what, train);
        }
        free(buf);
        MV_TRY(rc);
    } else if (v->kind == Y_SEQ) {
        if (v->n > MV_MAX_SOURCES) return fail_at(v, "%s: %d sources (at most %d)", key, v->n, MV_MAX_SOURCES);
        for (int i = 0; i < v->n; i++) {
            snprintf(what, sizeof what, "%s[%d]", key, i);
            MV_TRY(parse_source(&tmp[n++], v->vals[i], what, train));
        }
    }
    memset(list, 0, MV_MAX_SOURCES * sizeof *list);
    if (n) memcpy(list, tmp, (size_t)n * sizeof *list);
    *count = n;
    return 0;
}

// optim.rules: a list of {match, lr_mult, decay_mult}.
static int apply_rules(mv_optim_config *o, const ynode *v) {
    static const mv_key mults[] = {
        {.name = "optim.rules.lr_mult", .type = MV_KEY_FLOAT, .offset = offsetof(mv_optim_rule, lr_mult),
         .count = 1, .lo = 0, .hi = 1e6},
        {.name = "optim.rules.decay_mult", .type = MV_KEY_FLOAT, .offset = offsetof(mv_optim_rule, decay_mult),
         .count = 1, .lo = 0, .hi = 1e6},
    };
    mv_optim_rule tmp[MV_MAX_RULES];
    int n = 0;
    if (v->kind == Y_SCALAR && !v->null)
        return fail_at(v, "optim.rules: expected a list of {match: ..., lr_mult: ..., decay_mult: ...}, got a plain value");
    if (v->kind == Y_MAP) return fail_at(v, "optim.rules: expected a list of rules, got a mapping");
    if (v->kind == Y_SEQ) {
        if (v->n > MV_MAX_RULES) return fail_at(v, "optim.rules: %d rules (at most %d)", v->n, MV_MAX_RULES);
        for (int i = 0; i < v->n; i++) {
            const ynode *item = v->vals[i];
            mv_optim_rule *r = &tmp[n++];
            memset(r, 0, sizeof *r);
            r->lr_mult = r->decay_mult = 1.0f;
            if (item->kind != Y_MAP)
                return fail_at(item, "optim.rules[%d]: expected {match: ..., lr_mult: ..., decay_mult: ...}, got %s",
                               i, kind_words(item));
            char what[64];
            snprintf(what, sizeof what, "optim.rules[%d].match", i);
            for (int j = 0; j < item->n; j++) {
                const char *k = item->keys[j]->text;
                const ynode *val = item->vals[j];
                const mv_key *mk = !strcmp(k, "lr_mult") ? &mults[0] : !strcmp(k, "decay_mult") ? &mults[1] : NULL;
                if (!strcmp(k, "match")) {
                    MV_TRY(set_string(r->match, sizeof r->match, val, what));
                } else if (mk) {
                    char *text = value_text(val, mk);
                    if (!text) return -1;
                    int rc = key_set(r, mk, text);
                    free(text);
                    if (rc < 0) return context_at(val);
                } else {
                    static const char *const known[] = {"match", "lr_mult", "decay_mult"};
                    char hint[64];
                    mv_hint(hint, sizeof hint, k, known, 3);
                    return fail_at(item->keys[j], "optim.rules[%d]: unknown key '%s'%s (known: match, lr_mult, decay_mult)",
                                   i, k, hint);
                }
            }
            if (!r->match[0]) return fail_at(item, "optim.rules[%d]: missing 'match'", i);
        }
    }
    memset(o->rules, 0, sizeof o->rules);
    if (n) memcpy(o->rules, tmp, (size_t)n * sizeof *tmp);
    o->num_rules = n;
    return 0;
}

static int apply_map(mv_config *cfg, const ynode *map, const char *prefix) {
    int nm, nc;
    const mv_key *mkeys = model_config_keys(&nm), *ckeys = config_keys(&nc);
    bool model = is_model_section(prefix);
    for (int i = 0; i < map->n; i++) {
        const ynode *k = map->keys[i], *v = map->vals[i];
        char name[NAME_MAX_LEN];
        if ((size_t)snprintf(name, sizeof name, "%s.%s", prefix, k->text) >= sizeof name)
            return fail_at(k, "key '%s.%s' is too long", prefix, k->text);
        if (!strcmp(name, "model.preset")) continue;   // applied first
        if (!strcmp(name, "data.train")) { MV_TRY(apply_sources(cfg->data.train, &cfg->data.num_train, v, name)); continue; }
        if (!strcmp(name, "data.val")) { MV_TRY(apply_sources(cfg->data.val, &cfg->data.num_val, v, name)); continue; }
        if (!strcmp(name, "optim.rules")) { MV_TRY(apply_rules(&cfg->optim, v)); continue; }
        const mv_key *key = model ? key_find(mkeys, nm, name) : key_find(ckeys, nc, name);
        if (key) {
            char *text = value_text(v, key);
            if (!text) return -1;
            int rc = model ? model_config_set(&cfg->model, name, text) : key_set(cfg, key, text);
            free(text);
            if (rc < 0) return context_at(v);
            continue;
        }
        if (!model && has_nested_keys(name)) {
            if (v->kind == Y_SCALAR && v->null) continue;
            if (v->kind != Y_MAP) return fail_at(v, "%s: expected a mapping of keys, got %s", name, kind_words(v));
            MV_TRY(apply_map(cfg, v, name));
            continue;
        }
        char known[1024], hint[NAME_MAX_LEN + 32];
        known_keys(known, sizeof known, prefix);
        key_hint(hint, sizeof hint, prefix, k->text);
        return fail_at(k, "unknown key '%s'%s (known in %s: %s)", name, hint, prefix, known);
    }
    return 0;
}

// An experiment file (docs/experiments.md) given where a training configuration belongs, as
// `maskvim config table8.yaml` or `maskvim train table8.yaml`: its own keys (rows:, grid:,
// base:) would otherwise be reported as one unknown section, which does not say what to do.
static int refuse_experiment_file(const ynode *root) {
    static const char *const EXPERIMENT_KEYS[] = {"rows", "grid", "base"};
    for (int i = 0; i < root->n; i++) {
        const ynode *k = root->keys[i];
        if (k->line <= 0) continue;   // from --set, not from a file
        for (int e = 0; e < 3; e++)
            if (!strcmp(k->text, EXPERIMENT_KEYS[e]))
                return mv_fail("%s: an experiment file (it has '%s:' at line %d), not a training configuration: "
                               "`maskvim experiment run %s` trains its rows (with --dry-run: lists them and their "
                               "overrides), `maskvim config %s --row ROW` prints one row's configuration "
                               "(docs/experiments.md)",
                               k->file, k->text, k->line, k->file, k->file);
    }
    return 0;
}

static int apply_tree(mv_config *cfg, const ynode *root) {
    if (root->kind != Y_MAP) return fail_at(root, "expected a mapping of sections, got %s", kind_words(root));
    MV_TRY(refuse_experiment_file(root));
    const ynode *sections[NUM_SECTIONS] = {0};
    for (int i = 0; i < root->n; i++) {
        const ynode *k = root->keys[i], *v = root->vals[i];
        int s = 0;
        while (s < NUM_SECTIONS && strcmp(k->text, SECTIONS[s])) s++;
        if (s == NUM_SECTIONS) {
            char hint[NAME_MAX_LEN + 32];
            section_hint(hint, sizeof hint, k->text, v);
            return fail_at(k, "unknown section '%s'%s (known: model, mask, data, optim, schedule, run, include)",
                           k->text, hint);
        }
        if (v->kind == Y_SCALAR && v->null) continue;
        if (v->kind != Y_MAP) return fail_at(v, "%s: expected a mapping of keys, got %s", k->text, kind_words(v));
        sections[s] = v;
    }
    for (int p = 0; p < NUM_ALIAS_PAIRS; p++) {
        int i, j;
        const ynode *m1 = section_of(root, ALIAS_PAIRS[p][0], &i), *m2 = section_of(root, ALIAS_PAIRS[p][1], &j);
        if (m1 && m2 && !same_value(m1->vals[i], m2->vals[j])) {
            char loc[600];
            return fail_at(m2->keys[j], "%s and %s (%s) name the same setting but give different values: give one",
                           ALIAS_PAIRS[p][1], ALIAS_PAIRS[p][0], where(m1->keys[i], loc, sizeof loc));
        }
    }
    // The preset comes first whatever its position: it fills every other model key.
    int p = sections[0] ? map_find(sections[0], "preset") : -1;
    if (p >= 0) {
        const ynode *v = sections[0]->vals[p];
        if (v->kind != Y_SCALAR) return fail_at(v, "model.preset: expected a preset name, got %s", kind_words(v));
        if (model_config_set(&cfg->model, "model.preset", v->text) < 0) return context_at(v);
    }
    for (int s = 0; s < NUM_SECTIONS; s++)
        if (sections[s]) MV_TRY(apply_map(cfg, sections[s], SECTIONS[s]));
    return 0;
}

int config_load(mv_config *cfg, const char *path, int nsets, const char *const *sets) {
    yarena a = {0};
    mv_config *tmp = mv_malloc(sizeof *tmp);
    config_defaults(tmp);
    const char *chain[MAX_INCLUDE_DEPTH];
    ynode *root = path ? load_with_includes(&a, path, chain, 0) : new_node(&a, Y_MAP, "defaults", 0, 0);
    int rc = root ? 0 : -1;
    for (int i = 0; rc == 0 && i < nsets; i++) rc = set_into_tree(&a, root, sets[i]);
    if (rc == 0) rc = apply_tree(tmp, root);
    if (rc == 0 && config_validate(tmp) < 0) rc = path ? mv_fail_context("%s", path) : -1;
    if (rc == 0) *cfg = *tmp;
    yfree(&a);
    free(tmp);
    return rc;
}

int config_set(mv_config *cfg, const char *assignment) {
    yarena a = {0};
    mv_config *tmp = mv_malloc(sizeof *tmp);
    *tmp = *cfg;
    ynode *root = new_node(&a, Y_MAP, "--set", 0, 0);
    int rc = set_into_tree(&a, root, assignment);
    if (rc == 0) rc = apply_tree(tmp, root);
    if (rc == 0 && config_validate(tmp) < 0) rc = mv_fail_context("--set %s", assignment);
    if (rc == 0) *cfg = *tmp;
    yfree(&a);
    free(tmp);
    return rc;
}
