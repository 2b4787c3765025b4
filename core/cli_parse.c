// Command-line values shared by several commands, parsed strictly: the whole text must be the
// value (atoi read "1e3" as 1 and "abc" as 0; sscanf's "%dx%d" took "64x64junk" and wrapped
// "4294967360x64" to 64x64).
#include "core/cli_parse.h"
#include "core/error.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_hw(const char *s, long lo, long hi, int *h, int *w) {
    char *end = NULL;
    errno = 0;
    long a = strtol(s, &end, 10), b = -1;
    if (end != s && *end == 'x') {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        if (end == p) b = -1;
    }
    if (errno || *end || a < lo || b < lo || a > hi || b > hi) return -1;
    *h = (int)a;
    *w = (int)b;
    return 0;
}

int cli_option_long(const char *opt, const char *s, long lo, long hi, long *out) {
    if (cli_parse_long(s, lo, hi, out) < 0) return mv_fail("%s: '%s' is not an integer in [%ld, %ld]", opt, s, lo, hi);
    return 0;
}

int cli_option_hw(const char *opt, const char *s, long lo, long hi, int *h, int *w) {
    if (cli_parse_hw(s, lo, hi, h, w) < 0) return mv_fail("%s: '%s' is not HxW with sides in [%ld, %ld]", opt, s, lo, hi);
    return 0;
}

int cli_option_u64(const char *opt, const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    // strtoull takes "-1" as 2^64-1; a seed written with a sign is a mistake.
    if (errno || end == s || *end || strchr(s, '-')) return mv_fail("%s: '%s' is not a non-negative integer", opt, s);
    *out = v;
    return 0;
}
