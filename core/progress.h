// The progress line of long loops over items (converting, corrupting or generating a dataset,
// evaluating a domain): "PREFIX 1200/2975 samples  9.8 samples/s  ETA 3m01s", the prefix
// saying what runs ("[convert] cityscapes train:"). On a terminal it
// is rewritten in place at most twice a second; into a log it is a line every 10 s; and it is
// always written for the last item.
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
} mv_progress;

// Items [start, total) are to be done (start > 0: resumed); the rate counts from start.
void progress_begin(mv_progress *p, FILE *f, const char *prefix, const char *unit, int64_t start, int64_t total);
// `done` items are done (start < done <= total).
void progress_update(mv_progress *p, int64_t done);
// Ends the line a terminal was rewriting, so that what follows starts on a line of its own.
void progress_end(mv_progress *p);
