// Reading the configuration from YAML: the file, its `include:` bases and the `--set`
// overrides, merged into one tree by core/yaml_tree.c, are applied to the typed mv_config key
// by key; an unknown key fails with the file:line:column and a hint at the name meant.
#include "core/config.h"
#include "core/error.h"
#include "core/suggest.h"
#include "core/yaml_tree.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

// --- tree -> mv_config -------------------------------------------------------------------

static const char *const SECTIONS[] = {"model", "mask", "data", "optim", "schedule", "run"};
#define NUM_SECTIONS 6
static const char *const LIST_KEYS[] = {"data.train", "data.val", "optim.rules"};

static bool is_list_key(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, LIST_KEYS[i])) return true;
    return false;
}

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

// The hint for an unknown section `section` whose value is v: the close section name made a
// whole key when v holds one key that exists there (`--set optimizer.lr=1` -> optim.lr); else
// the key of v's one key's name in another section (`train.max_iters` -> schedule.max_iters);
// else the close section name; else a key of the section's name (`--set lr=1` -> optim.lr).
static void section_hint(char *out, size_t cap, const char *section, const ynode *v) {
    static const char *const names[] = {"model", "mask", "data", "optim", "schedule", "run", "include", "_base_"};
    const char *synonym = mmseg_synonym(section);
    if (synonym) {
        snprintf(out, cap, "; did you mean '%s'?", synonym);
        return;
    }
    const char *near = mv_closest(section, names, (int)(sizeof names / sizeof names[0]));
    out[0] = '\0';
    char full[NAME_MAX_LEN];
    if (near && v->kind == Y_MAP && v->n == 1 &&
        (size_t)snprintf(full, sizeof full, "%s.%s", near, v->keys[0]->text) < sizeof full && is_known_name(full)) {
        snprintf(out, cap, "; did you mean '%s'?", full);
        return;
    }
    // A key that exists under another section says more than a section whose name is close:
    // `train.max_iters` and `runner.max_iters` mean schedule.max_iters, not data.train or run.
    const char *owner = v->kind == Y_MAP && v->n == 1 ? same_leaf_elsewhere(v->keys[0]->text, NULL) : NULL;
    if (owner) {
        snprintf(out, cap, "; did you mean '%s'?", owner);
        return;
    }
    if (near) {
        snprintf(out, cap, "; did you mean '%s'?", near);
        return;
    }
    const char *other = same_leaf_elsewhere(section, NULL);
    if (other) snprintf(out, cap, "; did you mean '%s'?", other);
}

// The text a typed key parses: a plain value as is, a list of plain values joined by commas.
static char *value_text(const ynode *v, const mv_key *k) {
    if (v->kind == Y_MAP) { ynode_fail_at(v, "%s: expected a value, got a mapping", k->name); return NULL; }
    if (v->kind == Y_SCALAR) {
        char *t = mv_malloc(strlen(v->text) + 1);
        return strcpy(t, v->text);
    }
    if (k->count == 1 && !k->set) {
        ynode_fail_at(v, "%s: expected a single value, got a list", k->name);
        return NULL;
    }
    size_t len = 1;
    for (int i = 0; i < v->n; i++) {
        if (v->vals[i]->kind != Y_SCALAR) {
            ynode_fail_at(v->vals[i], "%s: expected a list of plain values, got %s inside", k->name, ynode_kind_words(v->vals[i]));
            return NULL;
        }
        // The items are joined by commas below: a quoted "16,32" would become two items.
        if (strchr(v->vals[i]->text, ',')) {
            ynode_fail_at(v->vals[i], "%s: item %d ('%s') holds a comma: one value per list item", k->name, i + 1,
                          v->vals[i]->text);
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
    if (v->kind != Y_SCALAR) return ynode_fail_at(v, "%s: expected a string, got %s", what, ynode_kind_words(v));
    if (strlen(v->text) >= cap) return ynode_fail_at(v, "%s: '%s' is longer than %zu characters", what, v->text, cap - 1);
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
        // GTAV's split folder is `valid`, Mapillary's `training`/`validation`.
        static const char *const splits[] = {"train", "val", "test", "validation", "valid", "training"};
        for (int i = 0; i < 6 && last; i++) {
            if (strcmp(base, splits[i])) continue;
            *last = '\0';
            last = strrchr(buf, '/');
            base = last ? last + 1 : buf;
            break;
        }
        // A severity folder (`data corrupt` writes OUT/<corruption>/<severity>): `fog/5` -> fog-5.
        if (last && base[0] && strspn(base, "0123456789") == strlen(base)) {
            char sev[32];
            snprintf(sev, sizeof sev, "%.16s", base);
            *last = '\0';
            char *prev = strrchr(buf, '/');
            base = prev ? prev + 1 : buf;
            size_t len = strlen(buf), room = sizeof buf - len;
            if (base[0] && room > strlen(sev) + 1) {
                snprintf(buf + len, room, "-%s", sev);
            } else base = last + 1;   // nothing before it to name: the number itself
        }
    }
    if (!base[0]) return ynode_fail_at(at, "%s: cannot name '%s'; give {name: ..., path: ...}", what, path);
    if (strlen(base) >= cap)
        return ynode_fail_at(at, "%s: name '%s' is longer than %zu characters; give {name: ..., path: ...}", what, base, cap - 1);
    snprintf(name, cap, "%s", base);
    return 0;
}

static int parse_source(mv_source *s, const ynode *item, const char *what, bool train) {
    static const mv_key repeat_key = {.name = "repeat", .type = MV_KEY_INT, .offset = offsetof(mv_source, repeat),
                                      .count = 1, .lo = 1, .hi = 1000000};
    memset(s, 0, sizeof *s);
    s->repeat = 1;
    if (item->kind == Y_SCALAR) {
        if (item->null || !item->text[0]) return ynode_fail_at(item, "%s: empty source", what);
        MV_TRY(set_string(s->path, sizeof s->path, item, what));
        return name_from_path(s->name, sizeof s->name, s->path, item, what);
    }
    if (item->kind != Y_MAP)
        return ynode_fail_at(item, "%s: expected a path or {name: ..., path: ...}, got %s", what, ynode_kind_words(item));
    for (int i = 0; i < item->n; i++) {
        const char *k = item->keys[i]->text;
        if (!strcmp(k, "name")) MV_TRY(set_string(s->name, sizeof s->name, item->vals[i], what));
        else if (!strcmp(k, "path")) MV_TRY(set_string(s->path, sizeof s->path, item->vals[i], what));
        else if (!strcmp(k, "repeat") && train) {
            if (item->vals[i]->kind != Y_SCALAR)
                return ynode_fail_at(item->vals[i], "%s: repeat: expected an integer, got %s", what, ynode_kind_words(item->vals[i]));
            if (key_set(s, &repeat_key, item->vals[i]->text) < 0) {
                mv_fail_context("%s", what);
                return ynode_context_at(item->vals[i]);
            }
        } else {
            static const char *const known[] = {"name", "path", "repeat"};
            char hint[64];
            mv_hint(hint, sizeof hint, k, known, train ? 3 : 2);
            return ynode_fail_at(item->keys[i], "%s: unknown key '%s'%s (known: name, path%s)", what, k, hint,
                           train ? ", repeat" : "");
        }
    }
    if (!s->path[0]) return ynode_fail_at(item, "%s: missing 'path'", what);
    if (!s->name[0]) return name_from_path(s->name, sizeof s->name, s->path, item, what);
    return 0;
}

// data.train / data.val: a list of sources; a plain value is a comma-separated list of paths.
static int apply_sources(mv_source *list, int *count, const ynode *v, const char *key) {
    bool train = !strcmp(key, "data.train");
    mv_source tmp[MV_MAX_SOURCES];
    int n = 0;
    char what[NAME_MAX_LEN + 16];
    if (v->kind == Y_MAP) return ynode_fail_at(v, "%s: expected a list of sources, got a mapping", key);
    if (v->kind == Y_SCALAR && !v->null) {
        char *buf = mv_malloc(strlen(v->text) + 1);
        strcpy(buf, v->text);
        int rc = 0;
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            size_t len = strlen(tok);
            while (len && tok[len - 1] == ' ') tok[--len] = '\0';
            if (!len) continue;
            if (n == MV_MAX_SOURCES) { rc = ynode_fail_at(v, "%s: more than %d sources", key, MV_MAX_SOURCES); break; }
            ynode item = *v;
            item.text = tok;
            snprintf(what, sizeof what, "%s[%d]", key, n);
            rc = parse_source(&tmp[n++], &item, what, train);
        }
        free(buf);
        MV_TRY(rc);
    } else if (v->kind == Y_SEQ) {
        if (v->n > MV_MAX_SOURCES) return ynode_fail_at(v, "%s: %d sources (at most %d)", key, v->n, MV_MAX_SOURCES);
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
        return ynode_fail_at(v, "optim.rules: expected a list of {match: ..., lr_mult: ..., decay_mult: ...}, got a plain value");
    if (v->kind == Y_MAP) return ynode_fail_at(v, "optim.rules: expected a list of rules, got a mapping");
    if (v->kind == Y_SEQ) {
        if (v->n > MV_MAX_RULES) return ynode_fail_at(v, "optim.rules: %d rules (at most %d)", v->n, MV_MAX_RULES);
        for (int i = 0; i < v->n; i++) {
            const ynode *item = v->vals[i];
            mv_optim_rule *r = &tmp[n++];
            memset(r, 0, sizeof *r);
            r->lr_mult = r->decay_mult = 1.0f;
            if (item->kind != Y_MAP)
                return ynode_fail_at(item, "optim.rules[%d]: expected {match: ..., lr_mult: ..., decay_mult: ...}, got %s",
                               i, ynode_kind_words(item));
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
                    if (rc < 0) return ynode_context_at(val);
                } else {
                    static const char *const known[] = {"match", "lr_mult", "decay_mult"};
                    char hint[64];
                    mv_hint(hint, sizeof hint, k, known, 3);
                    return ynode_fail_at(item->keys[j], "optim.rules[%d]: unknown key '%s'%s (known: match, lr_mult, decay_mult)",
                                   i, k, hint);
                }
            }
            if (!r->match[0]) return ynode_fail_at(item, "optim.rules[%d]: missing 'match'", i);
            // mmengine's custom_keys are dict keys: two rules for one match would leave one unused.
            for (int e = 0; e < n - 1; e++) {
                if (strcmp(tmp[e].match, r->match)) continue;
                char loc[600];
                return ynode_fail_at(item, "optim.rules[%d] and optim.rules[%d] (%s) both have match '%s'; give one rule per match",
                                     i, e, ynode_where(v->vals[e], loc, sizeof loc), r->match);
            }
        }
    }
    memset(o->rules, 0, sizeof o->rules);
    if (n) memcpy(o->rules, tmp, (size_t)n * sizeof *tmp);
    o->num_rules = n;
    return 0;
}

// Sets the typed key `key` (of either table) from node v; -1 with v's location.
static int apply_key(mv_config *cfg, const mv_key *key, const ynode *v) {
    char *text = value_text(v, key);
    if (!text) return -1;
    int rc = is_model_section(key->name) ? model_config_set(&cfg->model, key->name, text) : key_set(cfg, key, text);
    free(text);
    return rc < 0 ? ynode_context_at(v) : 0;
}

// The table row of `name` (model.crop, data.crop, mask.encoder, ...).
static const mv_key *find_any_key(const char *name) {
    int nm, nc;
    const mv_key *mkeys = model_config_keys(&nm), *ckeys = config_keys(&nc);
    return is_model_section(name) ? key_find(mkeys, nm, name) : key_find(ckeys, nc, name);
}

// Whether two names of one setting given by one layer set the same value: compared as parsed
// (`[64, 64]` and "64, 64", `encoder: false` and `encoder_stages: [false, false, false]` agree),
// not as YAML text. -1 with the location when either value does not parse.
static int alias_pair_agrees(const mv_config *cfg, const char *na, const ynode *va, const char *nb, const ynode *vb,
                             bool *same) {
    if (ynode_same_value(va, vb)) { *same = true; return 0; }
    mv_config *x = mv_malloc(2 * sizeof *x), *y = x + 1;
    memcpy(x, cfg, sizeof *x);
    memcpy(y, cfg, sizeof *y);
    int rc = apply_key(x, find_any_key(na), va);
    if (rc == 0) rc = apply_key(y, find_any_key(nb), vb);
    *same = rc == 0 && config_equal(x, y);
    free(x);
    return rc;
}

static int apply_map(mv_config *cfg, const ynode *map, const char *prefix) {
    int nm, nc;
    const mv_key *mkeys = model_config_keys(&nm), *ckeys = config_keys(&nc);
    bool model = is_model_section(prefix);
    for (int i = 0; i < map->n; i++) {
        const ynode *k = map->keys[i], *v = map->vals[i];
        char name[NAME_MAX_LEN];
        if ((size_t)snprintf(name, sizeof name, "%s.%s", prefix, k->text) >= sizeof name)
            return ynode_fail_at(k, "key '%s.%s' is too long", prefix, k->text);
        if (!strcmp(name, "model.preset")) continue;   // applied first
        // A list key with nothing after its colon (every item commented out, say) is refused like
        // a scalar key given null, not read as an empty list; `[]` is the empty list.
        if (is_list_key(name) && v->kind == Y_SCALAR && v->null)
            return ynode_fail_at(k, "%s: no value given (a null): give the list, or [] for an empty one", name);
        if (!strcmp(name, "data.train")) { MV_TRY(apply_sources(cfg->data.train, &cfg->data.num_train, v, name)); continue; }
        if (!strcmp(name, "data.val")) { MV_TRY(apply_sources(cfg->data.val, &cfg->data.num_val, v, name)); continue; }
        if (!strcmp(name, "optim.rules")) { MV_TRY(apply_rules(&cfg->optim, v)); continue; }
        const mv_key *key = model ? key_find(mkeys, nm, name) : key_find(ckeys, nc, name);
        if (key) {
            MV_TRY(apply_key(cfg, key, v));
            continue;
        }
        if (!model && has_nested_keys(name)) {
            if (v->kind == Y_SCALAR && v->null) continue;
            if (v->kind != Y_MAP) return ynode_fail_at(v, "%s: expected a mapping of keys, got %s", name, ynode_kind_words(v));
            MV_TRY(apply_map(cfg, v, name));
            continue;
        }
        char known[1024], hint[NAME_MAX_LEN + 32];
        known_keys(known, sizeof known, prefix);
        key_hint(hint, sizeof hint, prefix, k->text);
        return ynode_fail_at(k, "unknown key '%s'%s (known in %s: %s)", name, hint, prefix, known);
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
    if (root->kind != Y_MAP) return ynode_fail_at(root, "expected a mapping of sections, got %s", ynode_kind_words(root));
    MV_TRY(refuse_experiment_file(root));
    const ynode *sections[NUM_SECTIONS] = {0};
    for (int i = 0; i < root->n; i++) {
        const ynode *k = root->keys[i], *v = root->vals[i];
        int s = 0;
        while (s < NUM_SECTIONS && strcmp(k->text, SECTIONS[s])) s++;
        if (s == NUM_SECTIONS && (!strcmp(k->text, "include") || !strcmp(k->text, "_base_")))
            return ynode_fail_at(k, "'%s' names base files and works in a configuration file only, not in --set",
                                 k->text);
        if (s == NUM_SECTIONS) {
            char hint[NAME_MAX_LEN + 32];
            section_hint(hint, sizeof hint, k->text, v);
            return ynode_fail_at(k, "unknown section '%s'%s (known: model, mask, data, optim, schedule, run, include)",
                           k->text, hint);
        }
        if (v->kind == Y_SCALAR && v->null) continue;
        if (v->kind != Y_MAP) return ynode_fail_at(v, "%s: expected a mapping of keys, got %s", k->text, ynode_kind_words(v));
        sections[s] = v;
    }
    for (int p = 0; p < YAML_NUM_ALIAS_PAIRS; p++) {
        int i, j;
        const ynode *m1 = ytree_section_of(root, YAML_ALIAS_PAIRS[p][0], &i), *m2 = ytree_section_of(root, YAML_ALIAS_PAIRS[p][1], &j);
        bool same = true;
        if (m1 && m2)
            MV_TRY(alias_pair_agrees(cfg, YAML_ALIAS_PAIRS[p][0], m1->vals[i], YAML_ALIAS_PAIRS[p][1], m2->vals[j], &same));
        if (!same) {
            char loc[600];
            return ynode_fail_at(m2->keys[j], "%s and %s (%s) name the same setting but give different values: give one",
                           YAML_ALIAS_PAIRS[p][1], YAML_ALIAS_PAIRS[p][0], ynode_where(m1->keys[i], loc, sizeof loc));
        }
    }
    // The preset comes first whatever its position: it fills every other model key.
    int p = sections[0] ? ynode_map_find(sections[0], "preset") : -1;
    if (p >= 0) {
        const ynode *v = sections[0]->vals[p];
        if (v->kind != Y_SCALAR) return ynode_fail_at(v, "model.preset: expected a preset name, got %s", ynode_kind_words(v));
        if (model_config_set(&cfg->model, "model.preset", v->text) < 0) return ynode_context_at(v);
    }
    for (int s = 0; s < NUM_SECTIONS; s++)
        if (sections[s]) MV_TRY(apply_map(cfg, sections[s], SECTIONS[s]));
    return 0;
}

// The configuration of the tree `root` (NULL: a load that failed) with `sets` over it; `where`
// names its origin when the result is refused (NULL: the defaults, nothing to name).
static int resolve(yarena *a, mv_config *cfg, ynode *root, const char *where, int nsets, const char *const *sets) {
    mv_config *tmp = mv_malloc(sizeof *tmp);
    config_defaults(tmp);
    int rc = root ? 0 : -1;
    for (int i = 0; rc == 0 && i < nsets; i++) rc = ytree_set(a, root, sets[i]);
    if (rc == 0) rc = apply_tree(tmp, root);
    if (rc == 0 && config_validate(tmp) < 0) rc = where ? mv_fail_context("%s", where) : -1;
    if (rc == 0) *cfg = *tmp;
    free(tmp);
    return rc;
}

int config_load(mv_config *cfg, const char *path, int nsets, const char *const *sets) {
    yarena a = {0};
    const char *chain[MAX_INCLUDE_DEPTH];
    ynode *root = path ? ytree_load(&a, path, chain, 0) : ynode_new(&a, Y_MAP, "defaults", 0, 0);
    int rc = resolve(&a, cfg, root, path, nsets, sets);
    yarena_free(&a);
    return rc;
}

// Parsed in memory: a temporary file would be left behind in TMPDIR by a process killed while
// it loads (every eval, predict and resume reads a checkpoint's saved configuration).
int config_load_text(mv_config *cfg, const char *yaml, const char *label, int nsets, const char *const *sets) {
    yarena a = {0};
    const char *chain[MAX_INCLUDE_DEPTH];
    int rc = resolve(&a, cfg, ytree_load_text(&a, yaml, label, chain), label, nsets, sets);
    yarena_free(&a);
    return rc;
}

int config_set(mv_config *cfg, const char *assignment) {
    yarena a = {0};
    mv_config *tmp = mv_malloc(sizeof *tmp);
    *tmp = *cfg;
    ynode *root = ynode_new(&a, Y_MAP, "--set", 0, 0);
    int rc = ytree_set(&a, root, assignment);
    if (rc == 0) rc = apply_tree(tmp, root);
    if (rc == 0 && config_validate(tmp) < 0) rc = mv_fail_context("--set %s", assignment);
    if (rc == 0) *cfg = *tmp;
    yarena_free(&a);
    free(tmp);
    return rc;
}
