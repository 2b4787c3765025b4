// The progress line of long loops (core/progress.h) written into a log (a file, not a
// terminal): the default cadence of convert/corrupt/synth (a line every 10 s and always one for
// the last item) and evaluation's (log_every 60 s, nothing at all for a loop shorter than that).
// Time is simulated by moving the time of the last line back.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/progress.h"

// The lines written to `f` since it was opened.
static int lines(FILE *f, char *text, size_t cap) {
    fflush(f);
    long end = ftell(f);
    rewind(f);
    size_t n = fread(text, 1, cap - 1, f);
    text[n] = 0;
    fseek(f, end, SEEK_SET);
    int count = 0;
    for (char *p = text; (p = strchr(p, '\n')); p++) count++;
    return count;
}

Test(progress, default_cadence_into_a_log) {
    FILE *f = tmpfile();
    cr_assert(f);
    char text[4096];
    mv_progress p;
    progress_begin(&p, f, "[convert] x:", "samples", 0, 100);
    progress_update(&p, 1);
    cr_expect_eq(lines(f, text, sizeof text), 0, "a line before 10 s: %s", text);
    p.last -= 9;
    progress_update(&p, 2);
    cr_expect_eq(lines(f, text, sizeof text), 0, "a line after 9 s: %s", text);
    p.last -= 11;
    progress_update(&p, 50);
    cr_expect_eq(lines(f, text, sizeof text), 1, "%s", text);
    cr_expect(strncmp(text, "[convert] x: 50/100 samples  ", 29) == 0, "%s", text);
    progress_update(&p, 100);   // the last item, right after a line: written all the same
    cr_expect_eq(lines(f, text, sizeof text), 2, "%s", text);
    cr_expect(strstr(text, "\n[convert] x: 100/100 samples  ") != NULL, "%s", text);
    progress_end(&p);
    cr_expect_eq(lines(f, text, sizeof text), 2, "progress_end adds nothing to a log: %s", text);

    // A short loop still writes its last item by default.
    FILE *g = tmpfile();
    progress_begin(&p, g, "[synth] y:", "samples", 0, 3);
    for (int i = 1; i <= 3; i++) progress_update(&p, i);
    cr_expect_eq(lines(g, text, sizeof text), 1, "%s", text);
    cr_expect(strncmp(text, "[synth] y: 3/3 samples  ", 24) == 0, "%s", text);
    fclose(f);
    fclose(g);
}

Test(progress, evaluation_cadence_into_a_log) {
    FILE *f = tmpfile();
    cr_assert(f);
    char text[4096];
    mv_progress p;
    // A short evaluation: nothing, not even its end.
    progress_begin(&p, f, "[eval clear]", "images", 0, 4);
    p.log_every = 60;
    p.log_quiet_short = true;
    for (int i = 1; i <= 4; i++) progress_update(&p, i);
    progress_end(&p);
    cr_expect_eq(lines(f, text, sizeof text), 0, "a short evaluation wrote: %s", text);

    // A long one: a line a minute (none at 11 s), then its end.
    progress_begin(&p, f, "[eval fog]", "images", 0, 500);
    p.log_every = 60;
    p.log_quiet_short = true;
    p.last -= 11;
    progress_update(&p, 10);
    cr_expect_eq(lines(f, text, sizeof text), 0, "a line after 11 s: %s", text);
    p.last -= 61;
    progress_update(&p, 200);
    cr_expect_eq(lines(f, text, sizeof text), 1, "%s", text);
    cr_expect(strncmp(text, "[eval fog] 200/500 images  ", 27) == 0, "%s", text);
    progress_update(&p, 201);
    progress_update(&p, 500);
    cr_expect_eq(lines(f, text, sizeof text), 2, "%s", text);
    cr_expect(strstr(text, "\n[eval fog] 500/500 images  ") != NULL && strstr(text, "ETA 0s\n") != NULL, "%s", text);
    fclose(f);

    // No file (another rank, or --quiet): nothing, and no crash.
    progress_begin(&p, NULL, "[eval x]", "images", 0, 2);
    progress_update(&p, 2);
    progress_end(&p);
}
