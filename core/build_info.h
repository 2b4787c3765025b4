// What this binary is: its version, the commit it was built from, and the compiler and
// libraries it runs with. `maskvim --version` prints the report; every training start records
// the version and commit in metrics.jsonl, so a result can be traced to the code that made it.
#pragma once
#include <stdio.h>

const char *mv_version(void);        // "0.9.0"
const char *mv_build_commit(void);   // `git describe --always --dirty` at build time, or "unknown"
// What every rank of a job compares before it works with the others (comm_init), so that ranks
// of different builds stop at once: a record of MV_BUILD_ID_SIZE bytes, always, whatever the
// build (the exchange must match even between builds that differ in everything else). It
// starts with MV_BUILD_ID_FORMAT (NUL-padded to 32 bytes; a new layout of the record gets a new
// format) and goes on with a text: version, commit, build type, compiler, the flags that change
// the numbers (instruction set, optimisation, sanitizers), the GPU engine, the sizes of the
// structs that ranks broadcast (mv_config, mv_train_state). A commit string does not name the
// sources of a build from a modified tree ("-dirty") or outside git ("unknown"): such a build
// adds the size and CRC-32 of its own executable, so that two of them agree only when they
// are the same file's bytes. (Two builds of one clean commit with the same compiler and flags
// agree, even when their bytes differ, e.g. built in other folders.)
#define MV_BUILD_ID_SIZE 512
#define MV_BUILD_ID_FORMAT "maskvim-build-id/1"
void mv_build_identity(char id[MV_BUILD_ID_SIZE]);
// The readable part of such a record (another rank's, of any format), e.g. "maskvim 0.9.0
// 0204f4d (Release, gcc 12.2.0, ...)", into out (n bytes).
void mv_build_identity_text(char *out, size_t n, const char *id);
// The multi-line report of `maskvim --version` (queries the libraries at run time: the BLAS,
// MPI and HDF5 found by the loader may be other builds than the headers compiled against).
void mv_build_report(FILE *f);
