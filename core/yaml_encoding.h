// The error for a YAML file libyaml cannot read as UTF-8, located by line and column.
#pragma once
#include <stdio.h>
#include <yaml.h>

// libyaml reports a reader (encoding) error as a byte offset only: rereads f up to it to name
// PATH:LINE:COLUMN. Sets the error message (mv_fail) and returns -1.
int yaml_encoding_error(FILE *f, const char *path, const yaml_parser_t *p);
