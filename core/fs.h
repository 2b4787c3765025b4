// Small filesystem helpers shared by the training service, the data layer and the launcher:
// creating folders with their parents, and an exclusive lock file between processes.
#pragma once

// mkdir -p: creates `path` and every missing parent. 0, or -1 with a message naming the folder.
int mv_mkdir_p(const char *path);

// Opens (creating) `path` and takes an exclusive flock(2) on it. When another process holds
// it, prints `waiting` (if not NULL) to stderr once and waits. Returns the descriptor, which
// releases the lock when closed (it is close-on-exec), or -1 with a message; a signal that
// interrupts the wait fails it, so that a handler's stop request is seen.
int mv_lock_file(const char *path, const char *waiting);
