// Text that reaches JSON files: json_write_string and core/json_read.c give back the same bytes
// for any name (UTF-8 or not), the output is always valid UTF-8, and an error message cut to the
// buffer's size is cut between characters.
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/json_read.h"
#include "core/json_write.h"

// Strict RFC 3629 check, written apart from json_write.c's so the two can disagree.
static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

// json_write_string(s) into a memory buffer.
static char *written(const char *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    json_write_string(f, s);
    fclose(f);
    return buf;
}

// Writes s, checks the text is valid UTF-8, reads it back and returns the string read.
static char *round_trip(const char *s) {
    char *text = written(s);
    cr_expect(valid_utf8((const unsigned char *)text, strlen(text)), "not UTF-8: %s", text);
    mv_json v;
    cr_assert_eq(mv_json_parse(&v, text), 0, "%s: %s", text, mv_last_error());
    cr_assert_eq(v.kind, MV_JSON_STR);
    char *back = strdup(v.str);
    mv_json_free(&v);
    free(text);
    return back;
}

Test(json_text, every_byte_string_round_trips) {
    const char *cases[] = {
        "plain/name_01",
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",   // UTF-8 of 2, 3 and 4 bytes
        "caf\xe9.jpg",                 // Latin-1
        "\xff\xfe",                    // never in UTF-8
        "a\x80z",                      // a stray continuation byte
        "cut \xe6\x97",                // a sequence cut short by the end
        "\xc0\x80 \xe0\x80\xaf",       // overlong forms
        "\xed\xa0\x80",                // a UTF-16 surrogate in UTF-8 form
        "\xf4\x90\x80\x80 \xf5",       // above U+10FFFF
        "quote \" backslash \\ tab \t newline \n bell \x07",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *back = round_trip(cases[i]);
        cr_expect_str_eq(back, cases[i], "case %zu", i);
        free(back);
    }
    // Every byte value 1..255 in one string, in every position relative to its neighbours.
    char all[512];
    for (int i = 0; i < 255; i++) all[i] = (char)(i + 1), all[510 - i] = (char)(i + 1);
    all[255] = 'x';
    all[511] = '\0';
    char *back = round_trip(all);
    cr_expect_eq(memcmp(back, all, 512), 0, "all bytes");
    free(back);
}

Test(json_text, not_utf8_bytes_are_written_as_surrogateescape) {
    char *text = written("caf\xe9");
    cr_expect_str_eq(text, "\"caf\\udce9\"");
    free(text);
}

// Escapes from other writers: code points, surrogate pairs, and lone surrogates (which have no
// UTF-8 form: U+FFFD, except the surrogateescape range, which is a byte).
Test(json_text, unicode_escapes_decode_to_utf8) {
    struct { const char *json, *want; } cases[] = {
        {"\"\\u00e9\\u65e5\"", "\xc3\xa9\xe6\x97\xa5"},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
        {"\"\\ud83d x\"", "\xef\xbf\xbd x"},
        {"\"\\ud83d\\u0041\"", "\xef\xbf\xbd" "A"},
        {"\"\\ude00\"", "\xef\xbf\xbd"},
        {"\"\\udc80\\udcff\"", "\x80\xff"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mv_json v;
        cr_assert_eq(mv_json_parse(&v, cases[i].json), 0, "%s: %s", cases[i].json, mv_last_error());
        cr_expect_str_eq(v.str, cases[i].want, "%s", cases[i].json);
        mv_json_free(&v);
    }
    mv_json v;
    cr_expect_eq(mv_json_parse(&v, "\"\\u12g4\""), -1);
    cr_expect(strstr(mv_last_error(), "bad \\u escape"), "%s", mv_last_error());
}

// A whole file's error gives the line and the column within it; a one-line record the column.
Test(json_text, errors_name_line_and_column) {
    mv_json v;
    cr_assert_eq(mv_json_parse(&v, "{\n  \"a\": 1,\n  \"b\" 2\n}\n"), -1);
    cr_expect_str_eq(mv_last_error(), "line 3, column 7: expected ':'");
    cr_assert_eq(mv_json_parse(&v, "{\"a\": x}"), -1);
    cr_expect_str_eq(mv_last_error(), "column 7: expected a value");
}

// A message longer than the buffer keeps its head and tail around " ... ", both cut between
// UTF-8 characters (a path of two-byte characters, at either parity).
Test(json_text, long_messages_are_cut_between_characters) {
    for (int shift = 0; shift < 4; shift++) {
        size_t n = 3 * MV_ERRMSG_MAX;
        char *name = malloc(n + 1);
        memset(name, 'a', (size_t)shift);
        for (size_t i = (size_t)shift; i + 1 < n; i += 2) name[i] = (char)0xc3, name[i + 1] = (char)0xa9;
        name[n - ((n - (size_t)shift) % 2)] = '\0';
        mv_fail("%s: cannot open: No such file", name);
        const char *msg = mv_last_error();
        cr_expect_lt(strlen(msg), (size_t)MV_ERRMSG_MAX);
        cr_expect(strstr(msg, " ... "), "elided");
        cr_expect(strstr(msg, ": cannot open: No such file"), "the reason is kept");
        cr_expect(valid_utf8((const unsigned char *)msg, strlen(msg)), "shift %d: not UTF-8", shift);
        free(name);
    }
}
