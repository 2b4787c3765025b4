// Typed configuration keys (see config_keys.h): text <-> struct fields, ranges, comparison.
#include "core/config_keys.h"
#include "core/error.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_COUNT 8   // most elements one key holds (model.dims has 4)

const mv_key *key_find(const mv_key *keys, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!(keys[i].flags & MV_KEY_HIDDEN) && !strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

const mv_key *key_user_facing(const mv_key *keys, int i) {
    int j = i;
    while (j > 0 && (keys[j].flags & MV_KEY_HIDDEN)) j--;
    return (keys[j].flags & MV_KEY_HIDDEN) ? &keys[i] : &keys[j];
}

static size_t elem_size(mv_key_type t) {
    switch (t) {
    case MV_KEY_INT: return sizeof(int);
    case MV_KEY_FLOAT: return sizeof(float);
    case MV_KEY_DOUBLE: return sizeof(double);
    case MV_KEY_BOOL: return sizeof(bool);
    case MV_KEY_ENUM: return sizeof(int);
    case MV_KEY_STRING: return 1;
    }
    return 1;
}

static const char *type_words(mv_key_type t, int plural) {
    switch (t) {
    case MV_KEY_INT: return plural ? "integers" : "an integer";
    case MV_KEY_FLOAT:
    case MV_KEY_DOUBLE: return plural ? "numbers" : "a number";
    case MV_KEY_BOOL: return plural ? "booleans" : "a boolean (true/false)";
    case MV_KEY_ENUM: return plural ? "names" : "a name";
    case MV_KEY_STRING: return plural ? "strings" : "a string";
    }
    return "values";
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

// Splits "a, b" or "[a, b]" in place; returns the number of items (items past `max` are
// counted, not stored) so that callers can say "expected 4, got 5".
static int split_items(char *buf, char **items, int max) {
    char *s = trim(buf);
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s[len - 1] = '\0';
        s = trim(s + 1);
    }
    if (!*s) return 0;
    int n = 0;
    for (;;) {
        char *comma = strchr(s, ',');
        if (comma) *comma = '\0';
        if (n < max) items[n] = trim(s);
        n++;
        if (!comma) break;
        s = comma + 1;
    }
    return n;
}

// k's range as "[lo, hi]", "(lo, hi]", ... (the flags open either end).
static void format_range(char *out, size_t cap, const mv_key *k) {
    snprintf(out, cap, "%c%.10g, %.10g%c", (k->flags & MV_KEY_LO_OPEN) ? '(' : '[', k->lo, k->hi,
             (k->flags & MV_KEY_HI_OPEN) ? ')' : ']');
}

// Writes the problem with x for k's range into buf and returns it, or NULL if x is fine.
static const char *range_problem(const mv_key *k, double x, char *buf, size_t cap) {
    if (k->type != MV_KEY_INT && k->type != MV_KEY_FLOAT && k->type != MV_KEY_DOUBLE) return NULL;
    bool lo_ok = (k->flags & MV_KEY_LO_OPEN) ? x > k->lo : x >= k->lo;
    bool hi_ok = (k->flags & MV_KEY_HI_OPEN) ? x < k->hi : x <= k->hi;
    if (isfinite(x) && lo_ok && hi_ok) return NULL;
    char range[80];
    format_range(range, sizeof range, k);
    snprintf(buf, cap, "out of range %s", range);
    return buf;
}

void key_describe(char *out, size_t cap, const mv_key *k) {
    int n = 0;
    if (k->type == MV_KEY_ENUM) {
        out[0] = 0;
        for (int i = 0; k->choices[i] && (size_t)n < cap; i++)
            n += snprintf(out + n, cap - (size_t)n, "%s%s", i ? "|" : "", k->choices[i]);
        return;
    }
    if (k->set) n = snprintf(out, cap, "%s", type_words(k->type, k->count > 1));   // the doc says how many
    else if (k->count > 1) n = snprintf(out, cap, "%d %s", k->count, type_words(k->type, 1));
    else n = snprintf(out, cap, "%s", type_words(k->type, 0));
    if (n < 0 || (size_t)n >= cap) return;
    if ((k->type == MV_KEY_INT || k->type == MV_KEY_FLOAT || k->type == MV_KEY_DOUBLE) && !k->set) {
        char range[80];
        format_range(range, sizeof range, k);
        snprintf(out + n, cap - (size_t)n, " in %s", range);
    }
}

int key_check_range(const mv_key *k, double x) {
    char why[96];
    if (range_problem(k, x, why, sizeof why)) return mv_fail("%s: value %.10g %s", k->name, x, why);
    return 0;
}

static int parse_bool(bool *out, const char *s) {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) { *out = true; return 0; }
        if (!strcasecmp(s, no[i])) { *out = false; return 0; }
    }
    return -1;
}

// An integer key also takes a decimal number that is exactly an integer (`1e3`, `100.0`: the
// docs write ranges as [1, 1e8]); `1.5` is not one. Hexadecimal stays out.
static int parse_number(double *out, const char *s, bool integer) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    long i = integer ? strtol(s, &end, 10) : 0;
    if (integer && !*end && !errno) {
        *out = (double)i;
        return 0;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return -1;
    if (integer && (v != floor(v) || strpbrk(s, "xX"))) return -1;
    *out = v;
    return 0;
}

// Parses one element into dst (elem_size(k->type) bytes).
static int parse_elem(void *dst, const mv_key *k, const char *item, const char *value) {
    char why[96];
    double x;
    switch (k->type) {
    case MV_KEY_INT:
    case MV_KEY_FLOAT:
    case MV_KEY_DOUBLE:
        if (parse_number(&x, item, k->type == MV_KEY_INT) < 0)
            return mv_fail("%s: bad value '%s': '%s' is not %s", k->name, value, item, type_words(k->type, 0));
        if (range_problem(k, x, why, sizeof why))
            return mv_fail("%s: bad value '%s': %s %s", k->name, value, item, why);
        // 0.99999999 is 1 as a float, 1e-50 is 0: out of range once stored, so say so here,
        // with the text the user wrote, not later with the rounded value.
        if (k->type == MV_KEY_FLOAT && range_problem(k, (float)x, why, sizeof why))
            return mv_fail("%s: bad value '%s': %s is %.9g as a float (single precision), %s", k->name, value, item,
                           (double)(float)x, why);
        if (k->type == MV_KEY_INT) *(int *)dst = (int)x;
        else if (k->type == MV_KEY_FLOAT) *(float *)dst = (float)x;
        else *(double *)dst = x;
        return 0;
    case MV_KEY_BOOL:
        if (parse_bool((bool *)dst, item) < 0)
            return mv_fail("%s: bad value '%s': '%s' is not a boolean (true/false)", k->name, value, item);
        return 0;
    case MV_KEY_ENUM:
        for (int i = 0; k->choices[i]; i++)
            if (!strcasecmp(item, k->choices[i])) { *(int *)dst = i; return 0; }
        {
            char list[256] = "";
            for (int i = 0; k->choices[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "|" : "", k->choices[i]);
            return mv_fail("%s: bad value '%s': expected one of %s", k->name, value, list);
        }
    case MV_KEY_STRING: break;
    }
    return mv_fail("%s: unsupported key type", k->name);
}

int key_set(void *obj, const mv_key *k, const char *value) {
    if (!value) value = "";
    if (k->set) return k->set(obj, k, value);
    char *field = (char *)obj + k->offset;
    if (k->type == MV_KEY_STRING) {
        size_t len = strlen(value);
        if (len >= k->size)
            return mv_fail("%s: bad value '%s': longer than %zu characters", k->name, value, k->size - 1);
        memset(field, 0, k->size);
        memcpy(field, value, len);
        return 0;
    }
    MV_CHECK(k->count >= 1 && k->count <= MAX_COUNT, "key %s: count %d", k->name, k->count);
    size_t esz = elem_size(k->type);
    unsigned char tmp[MAX_COUNT * sizeof(double)];
    char *buf = mv_malloc(strlen(value) + 1), *items[MAX_COUNT];
    strcpy(buf, value);
    int n = split_items(buf, items, MAX_COUNT), rc = 0;
    if (n != k->count) {
        if (k->count == 1) rc = mv_fail("%s: bad value '%s': expected %s", k->name, value, type_words(k->type, 0));
        else rc = mv_fail("%s: bad value '%s': expected %d %s, got %d", k->name, value, k->count,
                          type_words(k->type, 1), n);
    }
    for (int i = 0; rc == 0 && i < n; i++) rc = parse_elem(tmp + i * esz, k, items[i], value);
    if (rc == 0) memcpy(field, tmp, esz * (size_t)k->count);
    free(buf);
    return rc;
}

int key_check(const void *obj, const mv_key *k) {
    const char *field = (const char *)obj + k->offset;
    for (int i = 0; i < k->count; i++) {
        switch (k->type) {
        case MV_KEY_INT: MV_TRY(key_check_range(k, ((const int *)(const void *)field)[i])); break;
        case MV_KEY_FLOAT: MV_TRY(key_check_range(k, ((const float *)(const void *)field)[i])); break;
        case MV_KEY_DOUBLE: MV_TRY(key_check_range(k, ((const double *)(const void *)field)[i])); break;
        case MV_KEY_ENUM: {
            int v = ((const int *)(const void *)field)[i], n = 0;
            while (k->choices[n]) n++;
            if (v < 0 || v >= n) return mv_fail("%s: invalid value %d", k->name, v);
            break;
        }
        case MV_KEY_STRING:
            if (!memchr(field, '\0', k->size)) return mv_fail("%s: string not terminated", k->name);
            break;
        case MV_KEY_BOOL: break;
        }
    }
    return 0;
}

// Makes "1e-06" read as a float in YAML 1.1 readers too ("1.0e-06").
static void yaml_float_style(char *s, size_t cap) {
    char *e = strchr(s, 'e');
    if (!e || strchr(s, '.') || strlen(s) + 3 > cap) return;
    memmove(e + 2, e, strlen(e) + 1);
    e[0] = '.';
    e[1] = '0';
}

void key_format_float(char *out, size_t cap, float x) {
    if (!out || cap < 2) return;
    if (x == floorf(x) && fabsf(x) < 1e9f) { snprintf(out, cap, "%.0f", (double)x); return; }   // 10000, not 1.0e+04
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(out, cap, "%.*g", prec, (double)x);
        if (strtof(out, NULL) == x) break;
    }
    yaml_float_style(out, cap);
}

static void key_format_double(char *out, size_t cap, double x) {
    if (!out || cap < 2) return;
    if (x == floor(x) && fabs(x) < 1e15) { snprintf(out, cap, "%.0f", x); return; }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, x);
        if (strtod(out, NULL) == x) break;
    }
    yaml_float_style(out, cap);
}

void key_format_string(char *out, size_t cap, const char *s) {
    size_t o = 0;
    if (cap < 3) { if (cap) out[0] = '\0'; return; }
    out[o++] = '"';
    for (; *s && o + 6 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
        else if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = '\0';
}

static void format_elem(char *out, size_t cap, const mv_key *k, const char *field, int i) {
    switch (k->type) {
    case MV_KEY_INT: snprintf(out, cap, "%d", ((const int *)(const void *)field)[i]); break;
    case MV_KEY_FLOAT: key_format_float(out, cap, ((const float *)(const void *)field)[i]); break;
    case MV_KEY_DOUBLE: key_format_double(out, cap, ((const double *)(const void *)field)[i]); break;
    case MV_KEY_BOOL: snprintf(out, cap, "%s", ((const bool *)(const void *)field)[i] ? "true" : "false"); break;
    case MV_KEY_ENUM: {
        int v = ((const int *)(const void *)field)[i], n = 0;
        while (k->choices[n]) n++;
        if (v >= 0 && v < n) snprintf(out, cap, "%s", k->choices[v]);
        else snprintf(out, cap, "%d", v);
        break;
    }
    case MV_KEY_STRING: key_format_string(out, cap, field); break;
    }
}

void key_format(char *out, size_t cap, const void *obj, const mv_key *k) {
    if (!cap) return;
    out[0] = '\0';
    if (k->format) { k->format(out, cap, obj, k); return; }
    const char *field = (const char *)obj + k->offset;
    if (k->count == 1 || k->type == MV_KEY_STRING) { format_elem(out, cap, k, field, 0); return; }
    size_t o = 0;
    o += (size_t)snprintf(out + o, cap - o, "[");
    for (int i = 0; i < k->count && o < cap; i++) {
        char item[64];
        format_elem(item, sizeof item, k, field, i);
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", item);
    }
    if (o < cap) snprintf(out + o, cap - o, "]");
}

bool key_equal(const void *a, const void *b, const mv_key *k) {
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    if (k->type == MV_KEY_STRING) return strncmp(fa, fb, k->size) == 0;
    return memcmp(fa, fb, elem_size(k->type) * (size_t)k->count) == 0;
}

int key_parse_doubles(double *out, int max, const mv_key *k, const char *value) {
    char *buf = mv_malloc(strlen(value) + 1), *items[MAX_COUNT];
    strcpy(buf, value);
    int n = split_items(buf, items, MAX_COUNT);
    for (int i = 0; i < n && i < max && i < MAX_COUNT; i++) {
        if (parse_number(&out[i], items[i], false) < 0) {
            mv_fail("%s: bad value '%s': '%s' is not a number", k->name, value, items[i]);
            free(buf);
            return -1;
        }
    }
    free(buf);
    return n;
}
