// Strict parsing of command-line values, shared by every command: the whole text must be the
// value (see core/cli_parse.c for what looser parsers got wrong).
#pragma once
#include <stdint.h>

// A whole decimal number in [lo, hi] and nothing after it: 0, else -1 (the caller says why).
int cli_parse_long(const char *s, long lo, long hi, long *out);
// "HxW": 0 with both sides whole numbers in [lo, hi] and nothing after them, else -1 (the
// caller says why).
int cli_parse_hw(const char *s, long lo, long hi, int *h, int *w);

// The same for the value of option `opt`, failing with the message "OPT: 'S' is not ..."
// (core/error.h) that every command prints the same way.
int cli_option_long(const char *opt, const char *s, long lo, long hi, long *out);
// A whole non-negative decimal number that fits 64 bits (seeds).
int cli_option_u64(const char *opt, const char *s, uint64_t *out);
int cli_option_hw(const char *opt, const char *s, long lo, long hi, int *h, int *w);
