// Writing JSON by hand (metrics.jsonl, status.json, manifests, reports): the one string
// escaper every writer uses.
#pragma once
#include <stdio.h>

// Writes s as a JSON string literal: quotes, backslash-escaped '"' and '\', control
// characters as \u00XX, well-formed UTF-8 as it is, and every byte that is not part of
// well-formed UTF-8 as \udcXX (Python's surrogateescape), so the output is always valid UTF-8
// and core/json_read.c reads back the same bytes.
void json_write_string(FILE *f, const char *s);
