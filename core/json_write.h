// Writing JSON by hand (metrics.jsonl, status.json, manifests, reports): the one string
// escaper every writer uses.
#pragma once
#include <stdio.h>

// Writes s as a JSON string literal: quotes, backslash-escaped '"' and '\', control
// characters as \u00XX; other bytes (UTF-8 included) as they are.
void json_write_string(FILE *f, const char *s);
