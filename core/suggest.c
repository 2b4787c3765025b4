// Closest-name suggestions (see suggest.h).
#include "core/suggest.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_WORD 128   // longer words are not typos worth a suggestion

static int min3(int a, int b, int c) { return a < b ? (a < c ? a : c) : (b < c ? b : c); }

int mv_edit_distance(const char *a, const char *b) {
    int la = (int)strnlen(a, MAX_WORD), lb = (int)strnlen(b, MAX_WORD);
    // Three rows of the dynamic programme: two back for the swap of neighbours.
    int rows[3][MAX_WORD + 1];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (int j = 0; j <= lb; j++) prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        int ca = tolower((unsigned char)a[i - 1]);
        for (int j = 1; j <= lb; j++) {
            int cb = tolower((unsigned char)b[j - 1]);
            cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb));
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == cb &&
                prev2[j - 2] + 1 < cur[j])
                cur[j] = prev2[j - 2] + 1;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

// One name starts the other (case ignored), sharing at least 3 characters: a shortened or
// lengthened name (`sched` for `schedule`) rather than a typo.
static int is_prefix_pair(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;
    return n >= 3 && strncasecmp(a, b, n) == 0;
}

const char *mv_closest(const char *word, const char *const *cands, int n) {
    size_t len = strlen(word);
    if (len == 0 || len > MAX_WORD) return NULL;
    int limit = len <= 5 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    int best_d = 0;
    for (int i = 0; i < n; i++) {
        const char *c = cands[i];
        if (!c || !c[0] || strlen(c) > MAX_WORD) continue;
        int d = mv_edit_distance(word, c);
        if (d > limit && !is_prefix_pair(word, c)) continue;
        if (!best || d < best_d) {
            best = c;
            best_d = d;
        }
    }
    return best;
}

const char *mv_hint(char *out, size_t cap, const char *word, const char *const *cands, int n) {
    const char *near = mv_closest(word, cands, n);
    if (near && strcmp(near, word)) snprintf(out, cap, "; did you mean '%s'?", near);
    else if (cap) out[0] = '\0';
    return out;
}
