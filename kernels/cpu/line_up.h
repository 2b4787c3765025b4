// Round a float count up to whole 64-byte lines (16 floats), so that the next buffer laid out
// after it starts on a line: a vector that straddles two lines costs two loads, and a straddling
// store is not forwarded to a following load of it.
#pragma once
#include <stddef.h>

static inline size_t mv_line_up(size_t floats) { return (floats + 15) & ~(size_t)15; }
