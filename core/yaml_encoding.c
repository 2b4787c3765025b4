// Line and column of a YAML reader error (see yaml_encoding.h); shared by the configuration and
// experiment file readers.
#include "core/yaml_encoding.h"
#include "core/error.h"

int yaml_encoding_error(FILE *f, const char *path, const yaml_parser_t *p) {
    long line = 1, col = 1;
    rewind(f);
    for (size_t i = 0; i < p->problem_offset; i++) {
        int ch = fgetc(f);
        if (ch == EOF) break;
        if (ch == '\n') { line++; col = 1; }
        else if ((ch & 0xC0) != 0x80) col++;   // UTF-8 continuation bytes do not start a column
    }
    return mv_fail("%s:%ld:%ld: not UTF-8 text: %s (byte %zu)", path, line, col,
                   p->problem ? p->problem : "unreadable input", p->problem_offset);
}
