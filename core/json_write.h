// Writing JSON by hand (metrics.jsonl, status.json, manifests, reports): the one string
// escaper and number writer every writer uses.
#pragma once
#include <stdio.h>

// Writes s as a JSON string literal: quotes, backslash-escaped '"' and '\', control
// characters as \u00XX, well-formed UTF-8 as it is, and every byte that is not part of
// well-formed UTF-8 as \udcXX (Python's surrogateescape), so the output is always valid UTF-8
// and core/json_read.c reads back the same bytes.
void json_write_string(FILE *f, const char *s);
// Writes x as the shortest JSON number that reads back to exactly x (50, not 5e+01), or null
// when it is not finite: a value written, read and rounded again never moves a printed digit.
void json_write_number(FILE *f, double x);
