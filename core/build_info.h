// What this binary is: its version, the commit it was built from, and the compiler and
// libraries it runs with. `maskvim --version` prints the report; every training start records
// the version and commit in metrics.jsonl, so a result can be traced to the code that made it.
#pragma once
#include <stdio.h>

const char *mv_version(void);        // "0.9.0"
const char *mv_build_commit(void);   // `git describe --always --dirty` at build time, or "unknown"
// The multi-line report of `maskvim --version` (queries the libraries at run time: the BLAS,
// MPI and HDF5 found by the loader may be other builds than the headers compiled against).
void mv_build_report(FILE *f);
