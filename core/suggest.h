// "Did you mean ...?" for a mistyped name: the closest of a list of known names, when one is
// close enough to be a likely typo. Used by the configuration reader (unknown keys and
// sections) and the command line (unknown commands and options).
#pragma once
#include <stddef.h>

// The candidate closest to `word`, or NULL when none is close. Close means an edit distance
// (insertions, deletions, substitutions and swaps of two neighbours; case ignored) of at most
// 1 for words of up to 5 characters, 2 up to 8, 3 beyond, or one name being the start of the
// other (`optimizer` and `optim`, `decay` and `decay_mult`; at least 3 characters shared).
// Ties go to the earlier candidate; NULL entries are skipped.
const char *mv_closest(const char *word, const char *const *cands, int n);
// "; did you mean 'NAME'?" in out when mv_closest finds NAME (and it is not `word` itself),
// else "": the tail of a one-line error message. Returns out.
const char *mv_hint(char *out, size_t cap, const char *word, const char *const *cands, int n);
// Edit distance as above (optimal string alignment, case-insensitive).
int mv_edit_distance(const char *a, const char *b);
