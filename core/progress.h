// The progress line of long loops over items (converting, corrupting or generating a dataset,
// evaluating a domain): "PREFIX 1200/2975 samples  9.8 samples/s  ETA 3m01s", the prefix
// saying what runs ("[convert] cityscapes train:"). On a terminal it
// is rewritten in place at most twice a second; into a log it is a line every log_every seconds
// (10 unless the caller sets it after progress_begin); and it is written for the last item,
// except, when the caller sets log_quiet_short, into a log that got no line before it.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;            // NULL: says nothing
    bool tty, said;
    char prefix[192];
    const char *unit;   // "samples", "images"
    int64_t start, total;
    double t0, last;
    double log_every;       // seconds between lines into a log (progress_begin sets 10)
    // Into a log, a loop that ends before its first timed line writes nothing at all. For
    // loops that run many times in one log, most of them short (evaluating each domain of a
    // training run, or each corruption and severity): their results are printed anyway, and a
    // line for each would crowd the log. A long one still shows its progress and its end.
    bool log_quiet_short;
} mv_progress;

// Items [start, total) are to be done (start > 0: resumed); the rate counts from start.
void progress_begin(mv_progress *p, FILE *f, const char *prefix, const char *unit, int64_t start, int64_t total);
// `done` items are done (start < done <= total).
void progress_update(mv_progress *p, int64_t done);
// Ends the line a terminal was rewriting, so that what follows starts on a line of its own.
void progress_end(mv_progress *p);
// A duration for progress lines: "42s", "3m05s", "2h07m" ("?" when negative or not finite).
void mv_fmt_duration(char *out, size_t n, double seconds);
