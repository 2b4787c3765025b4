// The YAML tree a configuration is read into, shared by core/yaml_tree.c (libyaml -> tree,
// `include:` bases, `--set` overrides) and core/config_yaml.c (tree -> mv_config); not for
// other code. Every node remembers its FILE:LINE:COLUMN for messages.
#pragma once
#include <stdbool.h>
#include <stddef.h>

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

void yarena_free(yarena *a);
ynode *ynode_new(yarena *a, ykind kind, const char *file, int line, int col);
int ynode_map_find(const ynode *map, const char *key);   // the key's index in map, -1 when absent

// Messages: ynode_where(n) is "FILE:LINE:COL" (a --set node: the --set); ynode_fail_at records
// "WHERE: message" and ynode_context_at prepends "WHERE: " to the current message, both returning -1;
// ynode_kind_words names a node's kind for "expected X, got Y".
const char *ynode_where(const ynode *n, char *buf, size_t cap);
__attribute__((format(printf, 2, 3))) int ynode_fail_at(const ynode *n, const char *fmt, ...);
int ynode_context_at(const ynode *n);
const char *ynode_kind_words(const ynode *n);

// Two names of one setting. A later layer (a file over its bases, --set over the file) that
// gives either name replaces what earlier layers gave under the other; one layer giving both
// must give the same value (checked in apply_tree, core/config_yaml.c).
#define YAML_NUM_ALIAS_PAIRS 2
extern const char *const YAML_ALIAS_PAIRS[YAML_NUM_ALIAS_PAIRS][2];
// The map holding `dotted` ("section.key") in root, and the key's index there (-1: absent).
ynode *ytree_section_of(const ynode *root, const char *dotted, int *idx);
bool ynode_same_value(const ynode *a, const ynode *b);

// Loads `path` with its bases: the bases in order, then the file itself on top.
// `chain` holds the files being loaded (to report include cycles).
ynode *ytree_load(yarena *a, const char *path, const char **chain, int depth);
// The same from YAML text in memory (a checkpoint's saved configuration); `label` names it in
// messages, and relative bases are relative to its folder.
ynode *ytree_load_text(yarena *a, const char *text, const char *label, const char **chain);
// `--set a.b=value`: the value is YAML (`0.5`, `[1, 2]`, `{match: norm}`), merged at a.b.
int ytree_set(yarena *a, ynode *root, const char *assignment);
