// Typed configuration keys. One table row per key (name, type, place in its struct, count,
// range) drives parsing from text, range checks, YAML output and comparison, so that a key
// behaves the same in a YAML file, after `--set` and in a written run configuration.
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    MV_KEY_INT,     // int
    MV_KEY_FLOAT,   // float
    MV_KEY_DOUBLE,  // double
    MV_KEY_BOOL,    // bool: true/false, yes/no, on/off, 1/0
    MV_KEY_ENUM,    // int-sized enum; text is one of `choices` (case-insensitive)
    MV_KEY_STRING,  // char[size], NUL-terminated
} mv_key_type;

enum {
    MV_KEY_LO_OPEN = 1,  // the range excludes lo
    MV_KEY_HI_OPEN = 2,  // the range excludes hi
    MV_KEY_ALIAS = 4,    // another way to set keys that are written; never written itself
    MV_KEY_HIDDEN = 8,   // state that rides along: compared, never set by name or written
};

typedef struct mv_key mv_key;
struct mv_key {
    const char *name;            // full dotted name, e.g. "model.dims"
    mv_key_type type;
    size_t offset;               // of the first element inside the owning struct
    int count;                   // number of elements; text gives them comma-separated
    double lo, hi;               // range of every element (INT, FLOAT, DOUBLE)
    unsigned flags;              // MV_KEY_*
    const char *const *choices;  // ENUM: NULL-terminated names, value i <-> choices[i]
    size_t size;                 // STRING: capacity in bytes including the NUL
    // Optional custom parse/print for keys whose text is not one value per element
    // (e.g. mask.lambda: one number or three). NULL: by type.
    int (*set)(void *obj, const mv_key *k, const char *value);
    void (*format)(char *out, size_t cap, const void *obj, const mv_key *k);
    const char *doc;             // one line for help output
};

// The row called `name` (hidden rows are not found), or NULL.
const mv_key *key_find(const mv_key *keys, int n, const char *name);
// The row a user sets keys[i] by: keys[i] itself, or for a hidden row the nearest visible row
// before it (a table lists hidden rows right after the key that sets them), so that messages
// about a difference name a key the user can give.
const mv_key *key_user_facing(const mv_key *keys, int i);
// Parses `value` into obj's field; on error obj is unchanged and the message names the key
// and the value: "model.dims: bad value '1,2': expected 4 integers".
int key_set(void *obj, const mv_key *k, const char *value);
// Checks the current value against the key's range; -1 with a message naming the key.
int key_check(const void *obj, const mv_key *k);
// YAML flow text of the current value: `16`, `[16, 32, 64, 128]`, `"runs/x"`, `true`.
void key_format(char *out, size_t cap, const void *obj, const mv_key *k);
bool key_equal(const void *a, const void *b, const mv_key *k);

// Helpers shared with custom setters and the YAML writer.
// Splits "a, b, c" or "[a, b, c]" and parses up to `max` numbers; returns how many, or -1
// (with a message naming the key and value) if an item is not a finite number.
int key_parse_doubles(double *out, int max, const mv_key *k, const char *value);
// Checks that x lies in k's range; -1 with a message naming the key and value.
int key_check_range(const mv_key *k, double x);
// What k takes, for help output: "2 integers in [32, 16384]", "fp32|tf32|bf16". A key with its
// own parser (`set`) gets the type only: its doc line says how many values it reads.
void key_describe(char *out, size_t cap, const mv_key *k);
// Shortest decimal text that reads back to exactly the same float / double.
void key_format_float(char *out, size_t cap, float x);
// A double-quoted YAML string with escapes.
void key_format_string(char *out, size_t cap, const char *s);
