// Internal to the shard files (shard_write.c, shard_read.c): the format's identity and the
// small HDF5 helpers both the writer and the reader need. See shard.h for the layout.
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#define SHARD_FORMAT "maskvim-shard"
#define SHARD_VERSION 1

// HDF5 prints its error stack to stderr by default; our errors are values. The setting is per
// thread in a thread-safe HDF5, so every entry point calls this.
void shard_h5_quiet(void);
// A fixed-length string attribute of obj into out (cap bytes, NUL-terminated). Returns 0 / -1.
int shard_attr_get_str(char *out, size_t cap, hid_t obj, const char *name);
// An integer attribute of obj. Returns 0 / -1.
int shard_attr_get_i64(int64_t *out, hid_t obj, const char *name);
// A fixed NUL-terminated string of `size` bytes: an entry of /names (MV_SAMPLE_NAME_MAX) or of
// /skipped (as long as the shard's longest entry). The caller closes it (H5Tclose).
hid_t shard_string_type(size_t size);
// shard_string_type(MV_SAMPLE_NAME_MAX).
hid_t shard_name_type(void);
