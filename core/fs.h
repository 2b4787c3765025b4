// Small filesystem helpers shared by the training service, the data layer and the launcher:
// creating folders with their parents, listing a folder, an exclusive lock file between
// processes, files written whole or not at all, and a check for free space before a large write.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// mkdir -p: creates `path` and every missing parent. 0, or -1 with a message naming the folder.
int mv_mkdir_p(const char *path);

// True when `path` is a folder (or a link to one).
bool mv_is_dir(const char *path);
// The names in `dir` ending with `suffix` ("" for all), hidden ones (".*") left out, and with a
// suffix folders too; sorted (strcmp). A missing folder is an error naming it. Free with
// mv_free_names.
int mv_list_dir(char ***names, int64_t *n, const char *dir, const char *suffix);
// As mv_list_dir, the suffix matched without regard to case (an image saved as NAME.JPG).
int mv_list_dir_any_case(char ***names, int64_t *n, const char *dir, const char *suffix);
void mv_free_names(char **names, int64_t n);

// Opens (creating) `path` and takes an exclusive flock(2) on it. When another process holds
// it, prints `waiting` (if not NULL) to stderr once and waits. Returns the descriptor, which
// releases the lock when closed (it is close-on-exec), or -1 with a message; a signal that
// interrupts the wait fails it, so that a handler's stop request is seen.
int mv_lock_file(const char *path, const char *waiting);

// Refuses `path` as the target of an atomic write (a temporary renamed over it): an empty
// path, or one naming an existing folder, device, pipe or socket, which the rename would
// replace by a regular file (`--out /dev/null` as root) or fail on after all the work. 0 when
// `path` is missing or a regular file (or a link to one).
int mv_check_output_file(const char *path);

// A file written whole or not at all: a reader (or the next run) never finds half a report, a
// manifest cut short or a JSON file missing its end. Writes go to the temporary
// "<path>.tmp.<pid>" (one per process, so two writers of one file never share it), which
// mv_atomic_commit renames over `path` once everything is written; mv_atomic_abort removes it.
typedef struct {
    FILE *f;
    char path[4096], tmp[4128];
} mv_atomic_file;
// The longest file name (one path component) mv_atomic_open writes: a file system's 255 less the
// ".tmp.<pid>" of the temporary (a Linux pid has at most 7 digits: pid_max is at most 2^22).
#define MV_ATOMIC_NAME_MAX (255 - 12)
// Refuses a target the rename would replace or fail on (mv_check_output_file), removes the
// temporaries of this path left by writers that died before their rename (their pid is no live
// process on this machine), and creates this process's. 0, or -1 with a message naming `path`.
int mv_atomic_open(mv_atomic_file *a, const char *path);
// Flushes (with `sync` also fsync, for a file a later run must find after a crash), closes and
// renames the temporary over the target. 0, or -1 with a message naming the target; the
// temporary is removed on failure. Also fails when an earlier write into `f` failed (ferror).
int mv_atomic_commit(mv_atomic_file *a, bool sync);
// Closes and removes the temporary; the target stays as it was. Safe after a failed open.
void mv_atomic_abort(mv_atomic_file *a);
// Removes `path`.tmp.<pid> files beside `path` whose pid is not a live process; how many. The
// folder is listed once per process (core/fs.c, list_stale): temporaries a process killed after
// that listing leaves are removed by the next process that writes there.
int mv_remove_stale_tmp(const char *path);
// When file name `name` is such a temporary, "<NAME>.tmp.<pid>", of a process that is gone (not
// this one, nor a live one): its pid, with NAME in base[cap]; else 0.
long mv_stale_tmp(const char *name, char *base, size_t cap);

// The folder holding `path`: "." for a bare name, "/" for a file at the root.
void mv_dir_of(char *dir, size_t cap, const char *path);
// fsyncs folder `dir`: a rename (or new file) in it survives a crash only once it is synced.
// Best effort: a folder that cannot be opened or synced is left as it is.
void mv_sync_dir(const char *dir);

// Refuses a write of about `need` bytes into folder `dir` that its file system has no room
// for, before anything is written: a write that fails half-way inside HDF5 gives no reason
// and can leave the library holding a file it cannot close. Fails with
// "WHAT: not enough free space for FOR (about X MB needed, Y MB free in DIR)"; 0 when it fits
// or when the free space cannot be read (then only the write itself can fail).
int mv_check_free_space(const char *dir, double need, const char *what, const char *for_what);
// The whole file as a NUL-terminated malloc'd string (NULL with a message naming it on failure;
// a missing file leaves no message when quiet_missing, errno then ENOENT).
char *mv_read_text_file(const char *path, bool quiet_missing);
