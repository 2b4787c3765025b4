// The minimal JSON reader (core/json_read.h): a recursive-descent parser into mv_json trees,
// and the lookups the report and the experiment runner use on them.
#include "core/json_read.h"
#include "core/error.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *s, *start; } jcur;

static void skip_ws(jcur *c) { while (*c->s && isspace((unsigned char)*c->s)) c->s++; }

// "column C: what" on the first line (a JSON Lines record is one line), "line L, column C: what"
// below it (a whole file: a manifest, status.json).
static int jfail(const jcur *c, const char *what) {
    int line = 1;
    const char *bol = c->start;
    for (const char *p = c->start; p < c->s; p++)
        if (*p == '\n') { line++; bol = p + 1; }
    if (line == 1) return mv_fail("column %d: %s", (int)(c->s - bol) + 1, what);
    return mv_fail("line %d, column %d: %s", line, (int)(c->s - bol) + 1, what);
}

static int parse_value(mv_json *v, jcur *c, int depth);

static int hex4(unsigned *code, jcur *c) {
    *code = 0;
    for (int k = 0; k < 4; k++) {
        char h = *c->s;
        if (!isxdigit((unsigned char)h)) return jfail(c, "bad \\u escape");
        *code = *code * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
        c->s++;
    }
    return 0;
}

// Appends code point `code` to b as UTF-8; returns the bytes written (b has room for 4).
static size_t put_utf8(char *b, unsigned code) {
    if (code < 0x80) { b[0] = (char)code; return 1; }
    if (code < 0x800) { b[0] = (char)(0xC0 | code >> 6); b[1] = (char)(0x80 | (code & 0x3F)); return 2; }
    if (code < 0x10000) {
        b[0] = (char)(0xE0 | code >> 12);
        b[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        b[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | code >> 18);
    b[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    b[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

// A \u escape (after the "\u"): a code point, a surrogate pair, or \udc80..\udcff, the
// surrogateescape form json_write.c gives a byte that is not UTF-8, which becomes that byte
// again. Any other lone surrogate has no UTF-8 form and becomes U+FFFD.
static int unicode_escape(char *b, size_t *len, jcur *c) {
    unsigned code;
    MV_TRY(hex4(&code, c));
    if (code >= 0xDC80 && code <= 0xDCFF) {
        b[0] = (char)(code & 0xFF);
        *len = 1;
        return 0;
    }
    if (code >= 0xD800 && code <= 0xDBFF && c->s[0] == '\\' && c->s[1] == 'u') {
        const char *back = c->s;
        unsigned low;
        c->s += 2;
        MV_TRY(hex4(&low, c));
        if (low >= 0xDC00 && low <= 0xDFFF) code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        else c->s = back;   // not a pair: the high half alone, the next escape read on its own
    }
    if (code >= 0xD800 && code <= 0xDFFF) code = 0xFFFD;
    *len = put_utf8(b, code);
    return 0;
}

static int parse_string(char **out, jcur *c) {
    // c->s points at the opening quote
    c->s++;
    size_t cap = 16, n = 0;
    char *b = mv_malloc(cap);
    for (;;) {
        if (n + 5 > cap) { cap *= 2; b = mv_realloc(b, cap); }
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
                size_t len;
                if (unicode_escape(b + n, &len, c) < 0) { free(b); return -1; }
                n += len;
                continue;
            }
            default: free(b); return jfail(c, "bad escape in string");
            }
        }
        b[n++] = ch;
    }
    b[n] = 0;
    *out = b;
    return 0;
}

static int push_item(mv_json *v, int *cap) {
    if (v->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        v->items = mv_realloc(v->items, (size_t)*cap * sizeof(mv_json));
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
