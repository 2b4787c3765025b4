// HDF5 helpers (see h5util.h). Error stacks are silenced: failures become our messages.
#include "core/h5util.h"
#include "core/error.h"
#include "core/fs.h"
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// The errno that HDF5's file driver recorded for the open(2) under a failed H5Fopen or H5Fcreate
// ("..., errno = 24, error message = 'Too many open files', ..."), or 0 when the system opened
// the file and HDF5 refused what it read. HDF5 keeps no errno of its own.
static herr_t find_system_errno(unsigned n, const H5E_error2_t *e, void *out) {
    (void)n;
    const char *p = e->desc ? strstr(e->desc, "errno = ") : NULL;
    if (p && *(int *)out == 0) *(int *)out = atoi(p + strlen("errno = "));
    return 0;
}

static int system_errno_of_failure(void) {
    int err = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_system_errno, &err);
    return err;
}

// "PATH: cannot VERB: REASON", with the open-file limit and how to raise it for EMFILE/ENFILE.
static int system_failure(const char *path, const char *verb, int err) {
    if (err == EMFILE || err == ENFILE) {
        struct rlimit lim;
        long cur = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? (long)lim.rlim_cur : -1;
        return mv_fail("%s: cannot %s: %s (the limit is %ld open files: raise it with `ulimit -n`)", path, verb,
                       strerror(err), cur);
    }
    return mv_fail("%s: cannot %s: %s", path, verb, strerror(err));
}

hid_t h5_create(const char *path) {
    quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        int err = system_errno_of_failure();
        if (err) system_failure(path, "create HDF5 file", err);
        else mv_fail("%s: cannot create HDF5 file", path);
        H5Eclear2(H5E_DEFAULT);
    }
    return f;
}

// True when `path` starts as torch.save writes files.
static bool looks_like_pytorch(const char *path) {
    unsigned char head[4] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    // torch.save writes a zip archive (torch >= 1.6) or, before, a pickle (protocol 2 to 5).
    return (n == 4 && !memcmp(head, "PK\3\4", 4)) || (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5);
}

// Whether the error stack a failed H5Fopen left holds HDF5's "unable to lock file".
static herr_t find_lock_error(unsigned n, const H5E_error2_t *e, void *found) {
    (void)n;
    if (e->min_num == H5E_CANTLOCKFILE) *(bool *)found = true;
    return 0;
}

// Why HDF5 could not lock `path`: our own non-blocking shared flock (the lock HDF5 takes to read)
// tells another process's exclusive lock (EWOULDBLOCK) from a file system that refuses locks.
// 1 when the lock is free again (the writer closed the file meanwhile), else -1 with the message.
static int lock_failure(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
    if (fd < 0) err = errno;
    else if (flock(fd, LOCK_SH | LOCK_NB) != 0) err = errno;
    if (fd >= 0) close(fd);   // (closing releases a lock we took)
    if (fd >= 0 && err == 0) return 1;
    if (err == EWOULDBLOCK)
        return mv_fail("%s is locked by another process (HDF5 file locking: another program has it open for writing; "
                       "wait until it closes the file, or set HDF5_USE_FILE_LOCKING=FALSE if nothing writes it)", path);
    return mv_fail("%s: HDF5 could not lock it to read it (%s): on a file system without file locks, set "
                   "HDF5_USE_FILE_LOCKING=FALSE", path, strerror(err));
}

static _Thread_local bool last_open_blocked;

bool h5_last_open_blocked(void) { return last_open_blocked; }

// Files opened for reading drop an object's metadata from HDF5's cache when the object is
// closed. A data split stays open for a whole run, and its cache otherwise kept the header of
// every sample ever read: about 45 KB a sample, 1 GB per rank for GTAV's 25k images.
static hid_t g_read_fapl = H5I_INVALID_HID;
static pthread_once_t g_read_fapl_once = PTHREAD_ONCE_INIT;
static void make_read_fapl(void) {
    g_read_fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (g_read_fapl >= 0 && H5Pset_evict_on_close(g_read_fapl, 1) < 0) {
        H5Pclose(g_read_fapl);
        g_read_fapl = H5I_INVALID_HID;
    }
}

static hid_t open_failed(h5_open_failure *why, h5_open_failure what) {
    *why = what;
    last_open_blocked = h5_open_blocked(what);
    return H5I_INVALID_HID;
}

hid_t h5_open_quiet(const char *path, h5_open_failure *why) {
    quiet();
    pthread_once(&g_read_fapl_once, make_read_fapl);
    last_open_blocked = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, g_read_fapl >= 0 ? g_read_fapl : H5P_DEFAULT);
        if (f >= 0) return f;
        bool lock_error = false;
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_lock_error, &lock_error);
        int err = system_errno_of_failure();
        H5Eclear2(H5E_DEFAULT);   // (a thread's stack is not freed whole at its exit)
        if (!lock_error && err) {   // (a lock failure records an errno too: EWOULDBLOCK)
            system_failure(path, "open", err);
            return open_failed(why, err == EMFILE || err == ENFILE ? H5_OPEN_OUT_OF_FILES : H5_OPEN_UNREADABLE);
        }
        if (!lock_error) return open_failed(why, H5_OPEN_DAMAGED);
        if (lock_failure(path) < 0) return open_failed(why, H5_OPEN_LOCKED);
    }
    // Free to our probe both times, yet HDF5 could not lock it: a writer that opens and closes it.
    mv_fail("%s is locked by another process (HDF5 file locking: another program opens it for writing again and "
            "again; wait until it is done, or set HDF5_USE_FILE_LOCKING=FALSE if nothing writes it)", path);
    return open_failed(why, H5_OPEN_LOCKED);
}

hid_t h5_open_read(const char *path) {
    quiet();
    last_open_blocked = false;
    if (access(path, R_OK) != 0) { mv_fail("%s: cannot open (missing or unreadable)", path); return -1; }
    h5_open_failure why;
    hid_t f = h5_open_quiet(path, &why);
    if (f >= 0 || why != H5_OPEN_DAMAGED) return f;   // (the message says why)
    if (looks_like_pytorch(path))
        mv_fail("%s: a PyTorch checkpoint, not an HDF5 file: convert it with tools/pth_to_h5.py (docs/checkpoints.md)", path);
    else
        mv_fail("%s: not a readable HDF5 file", path);
    return H5I_INVALID_HID;
}

// Creates the intermediate groups of "a/b/c" so that dataset c can be written.
static hid_t link_props(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

int h5_write_floats(hid_t file, const char *name, const float *data, int ndim, const int *shape) {
    hsize_t dims[8];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = link_props();
    hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0 ? 0 : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(lcpl);
    H5Sclose(space);
    return rc ? mv_fail("cannot write dataset '%s'", name) : 0;
}

int h5_write_scalar(hid_t file, const char *name, double value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) >= 0 ? 0 : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    return rc ? mv_fail("cannot write dataset '%s'", name) : 0;
}

int h5_shape(hid_t file, const char *path, const char *name, int *ndim, long *shape) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return mv_fail("%s: no dataset '%s'", path, name);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return mv_fail("%s: '%s' is not a dataset", path, name);
    hid_t space = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(space);
    hsize_t dims[8] = {0};
    if (nd < 0 || nd > 8) { H5Sclose(space); H5Dclose(ds); return mv_fail("%s: '%s' has an unsupported rank", path, name); }
    H5Sget_simple_extent_dims(space, dims, NULL);
    *ndim = nd;
    for (int i = 0; i < nd; i++) shape[i] = (long)dims[i];
    H5Sclose(space);
    H5Dclose(ds);
    return 0;
}

// HDF5 reads a contiguous dataset from the address and size its layout message gives without
// checking them against the file: a damaged layout message made H5Dread crash inside the library
// (SIGSEGV: --resume auto died on a damaged newest file instead of passing it over, eval on a
// damaged weights file; one flipped bit turns a contiguous layout into a compact one of 0 bytes,
// which it then copied n values from). Chunked datasets (checkpoint_save writes none; a repacked
// file may) are left to HDF5, which checks each chunk's size.
bool h5_storage_ok(hid_t ds, uint64_t n) {
    hid_t dcpl = H5Dget_create_plist(ds);
    H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (layout == H5D_CHUNKED) return true;
    if (layout != H5D_CONTIGUOUS && layout != H5D_COMPACT) return false;
    hid_t type = H5Dget_type(ds);
    size_t elem = type >= 0 ? H5Tget_size(type) : 0;
    if (type >= 0) H5Tclose(type);
    hid_t file = H5Iget_file_id(ds);
    hsize_t file_size = 0;
    bool ok = file >= 0 && H5Fget_filesize(file, &file_size) >= 0;
    if (file >= 0) H5Fclose(file);
    uint64_t bytes;
    if (!ok || elem == 0 || __builtin_mul_overflow(n, (uint64_t)elem, &bytes)) return false;
    if (bytes == 0) return true;
    if (H5Dget_storage_size(ds) != bytes) return false;
    if (layout == H5D_COMPACT) return true;   // the data sits in the object header, already read
    haddr_t at = H5Dget_offset(ds);
    return at != HADDR_UNDEF && at <= file_size && bytes <= file_size - at;
}

// Reads dataset `name` into `out` as float32; with `tensor`, a dataset that is not floating
// point is refused (HDF5 would convert integers silently: an int32 bias of class indices would
// load as weights; float16 and float64 convert exactly or by rounding).
static int read_floats(hid_t file, const char *path, const char *name, float *out, size_t numel, bool tensor) {
    int nd;
    long shape[8];
    MV_TRY(h5_shape(file, path, name, &nd, shape));
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    if (n != numel) return mv_fail("%s: dataset '%s' holds %zu values, expected %zu", path, name, n, numel);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (!h5_storage_ok(ds, numel)) {
        H5Dclose(ds);
        return mv_fail("%s: dataset '%s' has damaged storage information (corrupt)", path, name);
    }
    if (tensor) {
        hid_t type = H5Dget_type(ds);
        H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
        if (type >= 0) H5Tclose(type);
        if (cls != H5T_FLOAT) {
            H5Dclose(ds);
            return mv_fail("%s: dataset '%s' is %s, not floating point (tensors are stored as float32)", path, name,
                           cls == H5T_INTEGER ? "integer" : "not numeric");
        }
    }
    int rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(ds);
    return rc < 0 ? mv_fail("%s: cannot read dataset '%s' (corrupt or not numeric)", path, name) : 0;
}

int h5_read_floats(hid_t file, const char *path, const char *name, float *out, size_t numel) {
    return read_floats(file, path, name, out, numel, false);
}

int h5_read_tensor(hid_t file, const char *path, const char *name, float *out, size_t numel) {
    return read_floats(file, path, name, out, numel, true);
}

int h5_publish(const char *tmp, const char *final) {
    // On disk before the rename: a file that did not reach it (EIO, a full thin volume) must not
    // replace the previous one, nor be named by `latest` and let rotation delete older ones.
    int fd = open(tmp, O_RDONLY);
    int e = fd < 0 || fsync(fd) != 0 ? errno : 0;
    if (fd >= 0) close(fd);
    if (e) {
        remove(tmp);
        return mv_fail("%s: cannot flush to disk: %s (%s is left as it was)", tmp, strerror(e), final);
    }
    // A failed publish leaves no temporary behind (a checkpoint's is as large as the model).
    if (mv_check_output_file(final) < 0) {
        remove(tmp);
        return -1;
    }
    if (rename(tmp, final) != 0) {
        e = errno;
        remove(tmp);
        return mv_fail("%s: cannot rename to %s: %s", tmp, final, strerror(e));
    }
    return 0;
}
