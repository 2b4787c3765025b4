// Small helpers over the HDF5 C API for flat files of named float32 datasets (weights, step
// dumps, batches). Every function returns 0 / -1 with a message naming the file and dataset.
#pragma once
#include <hdf5.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

// Creates `path` for writing (truncating); close with H5Fclose. A failure names the system's
// reason (no such folder, no space, out of file descriptors with the limit, ...).
hid_t h5_create(const char *path);
// Opens `path` for reading; a PyTorch checkpoint given instead is named as one (with the tool
// that converts it), a file that cannot be opened now as locked or out of file descriptors (see
// h5_open_quiet), anything else as not a readable HDF5 file.
hid_t h5_open_read(const char *path);
// Why an open for reading failed (h5_open_quiet).
typedef enum {
    H5_OPEN_DAMAGED,         // the file opened but is not whole HDF5 (no message: the caller names it)
    H5_OPEN_LOCKED,          // another process holds HDF5's lock on it (message recorded)
    H5_OPEN_OUT_OF_FILES,    // the process or the system ran out of file descriptors (message recorded)
    H5_OPEN_UNREADABLE,      // missing, a folder, no permission, ... (message recorded, with strerror)
} h5_open_failure;
// Every HDF5 open for reading goes through here (h5_open_read, the shard reader and writer):
// opens `path` read-only and, on failure, says why in *why. Only H5_OPEN_DAMAGED says anything
// about the file's contents; the others must not be taken for damage. HDF5 locks a file it opens
// (flock: shared to read, exclusive to write, e.g. h5py's 'r+' or 'w'), and an open that meets
// another process's exclusive lock fails as a damaged file would: --resume auto passed over a
// good checkpoint as damaged and rewound the run, a shard read as corrupt. The same went for an
// open that ran out of file descriptors. The lock is told by HDF5's error stack and our own
// flock probe (which says whose), the system's refusal by the errno that HDF5's file driver
// records in its error stack.
hid_t h5_open_quiet(const char *path, h5_open_failure *why);
// A failure that says nothing of the file (locked, out of file descriptors): the file may be
// whole, so it must be neither passed over as damaged nor rewritten.
static inline bool h5_open_blocked(h5_open_failure why) {
    return why == H5_OPEN_LOCKED || why == H5_OPEN_OUT_OF_FILES;
}
// Whether the last h5_open_read or h5_open_quiet of this thread failed for a reason other than
// the file's contents or absence: locked, or out of file descriptors (for a caller above a
// function that opened it: such a file must stop --resume auto, not be passed over as damaged).
bool h5_last_open_blocked(void);
int h5_write_floats(hid_t file, const char *name, const float *data, int ndim, const int *shape);
int h5_write_scalar(hid_t file, const char *name, double value);
// Reads dataset `name` of any shape into `out` (converted to float32); `numel` must match.
int h5_read_floats(hid_t file, const char *path, const char *name, float *out, size_t numel);
// h5_read_floats for a tensor (weights, optimizer moments): a dataset that is not floating point
// is refused, naming it.
int h5_read_tensor(hid_t file, const char *path, const char *name, float *out, size_t numel);
// Whether dataset `ds`, said to hold n values, has storage the file can hold: a contiguous or
// compact layout of exactly n times its type's size (a contiguous one inside the file). HDF5
// trusts a layout message when it reads, so a damaged one crashed H5Dread inside the library;
// every read of a file the user hands us checks this first. Chunked layouts pass (HDF5 checks
// each chunk).
bool h5_storage_ok(hid_t ds, uint64_t n);
// Shape of dataset `name` (ndim <= 8); -1 if it does not exist.
int h5_shape(hid_t file, const char *path, const char *name, int *ndim, long *shape);
// Renames tmp -> final after the file was closed (and flushed): the atomic publish step.
int h5_publish(const char *tmp, const char *final);
