// Small helpers over the HDF5 C API for flat files of named float32 datasets (weights, step
// dumps, batches). Every function returns 0 / -1 with a message naming the file and dataset.
#pragma once
#include <hdf5.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

// Creates `path` for writing (truncating); close with H5Fclose.
hid_t h5_create(const char *path);
// Opens `path` for reading; a PyTorch checkpoint given instead is named as one (with the tool
// that converts it), a file that HDF5's file locking keeps us from opening as locked (see
// h5_open_quiet), anything else as not a readable HDF5 file.
hid_t h5_open_read(const char *path);
// Every HDF5 open for reading goes through here (h5_open_read, the shard reader and writer):
// opens `path` read-only and, on failure, tells a locked file from a damaged one. HDF5 locks a
// file it opens (flock: shared to read, exclusive to write, e.g. h5py's 'r+' or 'w'), and an open
// that meets another process's exclusive lock fails as a damaged file would: --resume auto
// passed over a good checkpoint as damaged and rewound the run, a shard read as corrupt. A lock
// failure (HDF5's error stack says so; our own flock probe says whose) records the message
// "PATH is locked by another process (...)" and sets *locked; any other failure returns
// H5I_INVALID_HID with no message (the caller names the damage).
hid_t h5_open_quiet(const char *path, bool *locked);
// Whether the last h5_open_read or h5_open_quiet of this thread failed on a file lock (for a
// caller above a function that opened it: a locked file must stop --resume auto, not be passed
// over as damaged).
bool h5_last_open_locked(void);
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
