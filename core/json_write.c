// The JSON string escaper and number writer (json_write.h).
#include "core/json_write.h"
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

// The length of the well-formed UTF-8 sequence at p (1..4), or 0 when p starts none: a stray
// continuation byte, a truncated sequence, an overlong form, a UTF-16 surrogate, or a code
// point above U+10FFFF (RFC 3629).
static int utf8_sequence(const unsigned char *p) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int k = 1; k < len; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;   // also stops at the terminating NUL
    if (len == 3 && ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))) return 0;
    if (len == 4 && ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))) return 0;
    return len;
}

void json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int len = utf8_sequence(p);
        if (len == 0) {
            // A byte that is not UTF-8 (a Latin-1 file name, say) is written as Python's
            // surrogateescape writes it, \udcXX: the file stays valid UTF-8 and
            // json_read.c (or Python's os.fsencode) gives the byte back.
            fprintf(f, "\\udc%02x", *p++);
            continue;
        }
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fwrite(p, 1, (size_t)len, f);
        p += len;
    }
    fputc('"', f);
}

void json_write_number(FILE *f, double x) {
    if (!isfinite(x)) { fputs("null", f); return; }
    if (x == floor(x) && fabs(x) < 1e15) { fprintf(f, "%.0f", x); return; }
    char text[40];
    for (int prec = 1; prec <= 17; prec++) {   // the shortest text that reads back to x
        snprintf(text, sizeof text, "%.*g", prec, x);
        if (strtod(text, NULL) == x) break;
    }
    fputs(text, f);
}
