// The shard reader: a split opened through its manifest, any sample fetched with one chunk
// read per image and label (decoded and checksummed by shard_codec.c), shards opened on first
// use and checked to belong to the split, and split_verify for `maskvim data inspect`.
#include "data/shard.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "core/error.h"
#include "core/h5util.h"
#include "data/manifest.h"
#include "data/shard_hdf5.h"

// The shards a split keeps open at most: without a bound, a split of many small shards (a large
// dataset, or a small samples_per_shard) ran out of file descriptors after `ulimit -n` shards.
// The loader shuffles over the whole split, so past the bound most reads reopen their shard:
// about 65 us each (measured here), against tens of milliseconds to decode a full-size sample.
// A file in use by a reader is never closed under it.
#define SPLIT_OPEN_MAX 64

struct mv_split {
    char dir[4096];
    mv_manifest m;
    hid_t *files;             // per shard, opened on first use, closed again to stay in the bound
    int *readers;             // per shard: reads in progress (the file stays open while > 0)
    uint64_t *last_use;       // per shard: the use count when last taken (least recent closes first)
    uint64_t uses;
    int n_open;
    pthread_mutex_t lock;     // guards all of the above
};

int split_open(mv_split **out, const char *dir) {
    shard_h5_quiet();
    *out = NULL;
    mv_split *s = mv_calloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    if (manifest_read(&s->m, dir) < 0) {
        free(s);
        return -1;
    }
    size_t n_shards = (size_t)(s->m.n_shards ? s->m.n_shards : 1);
    s->files = mv_malloc(sizeof(hid_t) * n_shards);
    s->readers = mv_calloc(n_shards, sizeof *s->readers);
    s->last_use = mv_calloc(n_shards, sizeof *s->last_use);
    for (int k = 0; k < s->m.n_shards; k++) s->files[k] = H5I_INVALID_HID;
    pthread_mutex_init(&s->lock, NULL);
    for (int k = 0; k < s->m.n_shards; k++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, s->m.shards[k].file);
        int rc = 0;
        if (stat(path, &st) != 0) rc = mv_fail("%s: missing (listed in the manifest): %s", path, strerror(errno));
        else if ((int64_t)st.st_size != s->m.shards[k].bytes)
            rc = mv_fail("%s: %lld bytes but the manifest says %lld: truncated or replaced", path, (long long)st.st_size,
                         (long long)s->m.shards[k].bytes);
        if (rc < 0) {
            split_close(s);
            return -1;
        }
    }
    *out = s;
    return 0;
}

void split_close(mv_split *s) {
    if (!s) return;
    shard_h5_quiet();
    for (int k = 0; k < s->m.n_shards; k++)
        if (s->files[k] >= 0) H5Fclose(s->files[k]);
    free(s->files);
    free(s->readers);
    free(s->last_use);
    pthread_mutex_destroy(&s->lock);
    manifest_free(&s->m);
    free(s);
}

int64_t split_count(const mv_split *s) { return s->m.count; }
uint64_t split_fingerprint(const mv_split *s) { return manifest_fingerprint(&s->m); }
const char *split_dir(const mv_split *s) { return s->dir; }
const char *split_domain(const mv_split *s) { return s->m.domain; }

void split_max_size(const mv_split *s, int *max_h, int *max_w) {
    *max_h = s->m.max_h;
    *max_w = s->m.max_w;
}

int split_num_classes(const mv_split *s) { return s->m.num_classes; }

void sample_alloc(mv_sample *out, int max_h, int max_w) {
    memset(out, 0, sizeof *out);
    out->cap_px = (size_t)(max_h > 1 ? max_h : 1) * (size_t)(max_w > 1 ? max_w : 1);
    out->rgb.px = mv_malloc(out->cap_px * 3);
    out->label.px = mv_malloc(out->cap_px);
    out->rgb.c = 3;
    out->label.c = 1;
    out->enc_cap = compressBound((uLong)(out->cap_px * 3)) + 4;
    out->enc = mv_malloc(out->enc_cap);
}

void sample_free(mv_sample *smp) {
    free(smp->rgb.px);
    free(smp->label.px);
    free(smp->enc);
    memset(smp, 0, sizeof *smp);
}

// Closes the least recently used shard file that no read is using; false when there is none.
static bool close_least_recent(mv_split *s) {
    int victim = -1;
    for (int k = 0; k < s->m.n_shards; k++)
        if (s->files[k] >= 0 && s->readers[k] == 0 && (victim < 0 || s->last_use[k] < s->last_use[victim])) victim = k;
    if (victim < 0) return false;
    H5Fclose(s->files[victim]);
    s->files[victim] = H5I_INVALID_HID;
    s->n_open--;
    return true;
}

// The open file of shard k, checked to belong to the split, taken for one read: the caller
// gives it back with shard_release. H5I_INVALID_HID when it cannot be used (the message says why).
static hid_t shard_take(mv_split *s, int k) {
    pthread_mutex_lock(&s->lock);
    hid_t f = s->files[k];
    if (f < 0) {
        while (s->n_open >= SPLIT_OPEN_MAX && close_least_recent(s)) {}
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", s->dir, s->m.shards[k].file);
        h5_open_failure why;
        f = h5_open_quiet(path, &why);
        // Out of descriptors with others of ours still open (another split's readers, a
        // checkpoint being written): ours go first, then one more try.
        if (f < 0 && why == H5_OPEN_OUT_OF_FILES && close_least_recent(s)) {
            while (close_least_recent(s)) {}
            f = h5_open_quiet(path, &why);
        }
        int64_t count = -1, version = -1, first = -1;
        char fmt[64] = "", domain[128] = "", label_map[128] = "";
        int ok = 0;
        if (f < 0 && why != H5_OPEN_DAMAGED) (void)0;   // the message says why: locked, out of files, unreadable
        else if (f < 0) mv_fail("%s: cannot open as HDF5 (truncated or corrupt?)", path);
        else if (shard_attr_get_str(fmt, sizeof fmt, f, "format") < 0 || strcmp(fmt, SHARD_FORMAT) ||
                 shard_attr_get_i64(&count, f, "count") < 0 || count != s->m.shards[k].count) {
            mv_fail("%s: not a maskvim shard, or holds %lld samples where the manifest says %d", path,
                    (long long)count, s->m.shards[k].count);
        } else if (shard_attr_get_i64(&version, f, "version") < 0 || version != SHARD_VERSION) {
            mv_fail("%s: shard format version %lld, this build reads version %d", path, (long long)version,
                    SHARD_VERSION);
        } else if (shard_attr_get_str(domain, sizeof domain, f, "domain") < 0 ||
                   shard_attr_get_str(label_map, sizeof label_map, f, "label_map") < 0 ||
                   shard_attr_get_i64(&first, f, "first") < 0 || strcmp(domain, s->m.domain) ||
                   strcmp(label_map, s->m.label_map) || first != s->m.shards[k].first) {
            // A shard copied in from another split (or another conversion) would otherwise be read
            // as this split's samples.
            mv_fail("%s: belongs to another split: domain '%s', label map '%s', first sample %lld; the manifest "
                    "says '%s', '%s', %lld", path, domain, label_map, (long long)first, s->m.domain, s->m.label_map,
                    (long long)s->m.shards[k].first);
        } else {
            ok = 1;
        }
        if (f >= 0 && !ok) {
            H5Fclose(f);
            f = H5I_INVALID_HID;
        }
        s->files[k] = f;
        if (f >= 0) s->n_open++;
    }
    if (f >= 0) {
        s->readers[k]++;
        s->last_use[k] = ++s->uses;
    }
    pthread_mutex_unlock(&s->lock);
    return f;
}

static void shard_release(mv_split *s, int k) {
    pthread_mutex_lock(&s->lock);
    s->readers[k]--;
    pthread_mutex_unlock(&s->lock);
}


// Reads one chunked uint8 dataset of `rank` dims into dst (capacity cap bytes).
static int read_dataset(uint8_t *dst, size_t cap, hsize_t *dims, uint8_t **enc, size_t *enc_cap, hid_t file,
                        const char *dset_path, int rank, const char *what) {
    hid_t d = H5Dopen2(file, dset_path, H5P_DEFAULT);
    if (d < 0) return mv_fail("%s: dataset %s missing", what, dset_path);
    hid_t sp = H5Dget_space(d), type = H5Dget_type(d);
    int r = H5Sget_simple_extent_ndims(sp);
    if (r == rank) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    // What another tool may have written: named here rather than as a size or inflate failure.
    bool u8 = type >= 0 && H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1;
    if (type >= 0) H5Tclose(type);
    int rc = 0;
    size_t n = 1;
    for (int i = 0; i < rank && r == rank; i++) n *= dims[i];
    hsize_t offset[3] = {0, 0, 0};
    hsize_t stored = 0;
    uint32_t mask = 0;
    if (r != rank) rc = mv_fail("%s: dataset %s has rank %d, expected %d", what, dset_path, r, rank);
    else if (!u8) rc = mv_fail("%s: dataset %s is not 8-bit (a shard holds uint8 images and labels)", what, dset_path);
    else if (rank == 3 && dims[2] != 3)
        rc = mv_fail("%s: dataset %s has %llu channels, a shard image has 3 (RGB)", what, dset_path,
                     (unsigned long long)dims[2]);
    else if (n > cap) rc = mv_fail("%s: %zu bytes exceed the split's largest image (manifest wrong?)", what, n);
    else if (H5Dget_chunk_storage_size(d, offset, &stored) < 0 || stored == 0)
        rc = mv_fail("%s: chunk of %s missing", what, dset_path);
    else {
        if (stored > *enc_cap) {  // only when the split's manifest undersold the largest chunk
            uint8_t *p = realloc(*enc, stored);
            if (!p) rc = mv_fail("%s: out of memory", what);
            else { *enc = p; *enc_cap = stored; }
        }
        if (rc == 0 && H5Dread_chunk(d, H5P_DEFAULT, offset, &mask, *enc) < 0)
            rc = mv_fail("%s: reading chunk of %s failed (truncated shard?)", what, dset_path);
        else if (rc == 0 && mask != 0)
            rc = mv_fail("%s: chunk of %s was stored with filters skipped (mask %u)", what, dset_path, mask);
        else if (rc == 0) rc = shard_decode_chunk(dst, *enc, stored, n, what);
    }
    H5Dclose(d);
    return rc;
}

// A sample whose image or label does not read back is in a damaged shard (a flipped byte, a file
// truncated while in use), and other samples may be too: the message ends saying how to check
// them all. split_verify, which is that check, reads without the hint. Returns -1.
static int damaged_sample(const mv_split *s, bool hint) {
    if (!hint) return -1;
    char msg[MV_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", mv_last_error());
    return mv_fail("%s; `maskvim data inspect %s` checks every shard", msg, s->dir);
}

// The length of the printable UTF-8 character at p (no C0 or C1 control, no DEL; well-formed:
// no overlong form, surrogate or code point above U+10FFFF), or 0 when p starts none.
static int printable_char(const unsigned char *p) {
    unsigned c = p[0];
    if (c < 0x80) return c >= 0x20 && c != 0x7f ? 1 : 0;
    int more = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (more < 0) return 0;   // a continuation byte first, an overlong lead (0xc0, 0xc1) or beyond 0xf4
    unsigned cp = c & (0x3f >> more);
    for (int k = 1; k <= more; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;   // NUL included: a sequence cut short
        cp = (cp << 6) | (p[k] & 0x3f);
    }
    static const unsigned least[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < least[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f)) return 0;
    return more + 1;
}

// The name as messages show it. Printable UTF-8 as it is; a name with a few other bytes (a
// Latin-1 file name, a tab) with those bytes as \xNN; and a name that is mostly other bytes, or
// empty, as "name unreadable": a names table overwritten by other bytes reads as a random string
// of up to MV_SAMPLE_NAME_MAX - 1 bytes, which no message may quote.
static void name_for_messages(char *name) {
    const unsigned char *p = (const unsigned char *)name;
    size_t n = strlen(name), bad = 0;
    for (size_t i = 0; i < n;) {
        int len = printable_char(p + i);
        if (len == 0) bad++;
        i += len ? (size_t)len : 1;
    }
    if (bad == 0 && n > 0) return;
    if (n == 0 || bad * 4 > n) {
        snprintf(name, MV_SAMPLE_NAME_MAX, "%s", "name unreadable");
        return;
    }
    char out[MV_SAMPLE_NAME_MAX];
    size_t o = 0, room = sizeof out - 4;   // room for "..." and the NUL
    for (size_t i = 0; i < n;) {
        int len = printable_char(p + i);
        size_t need = len ? (size_t)len : 4;
        if (o + need > room) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (len) memcpy(out + o, p + i, (size_t)len);
        else snprintf(out + o, 5, "\\x%02x", p[i]);
        o += need;
        i += len ? (size_t)len : 1;
    }
    out[o] = '\0';
    memcpy(name, out, o + 1);
}

// Sample j of shard k (split index i) from its open file f.
static int read_from_shard(mv_sample *out, mv_split *s, hid_t f, int k, int j, int64_t i, bool hint) {
    // Name first, so that errors about the pixels can name the sample.
    hid_t d = H5Dopen2(f, "names", H5P_DEFAULT);
    int rc = 0;
    if (d < 0) rc = -1;
    else {
        hid_t t = shard_name_type();
        hid_t fsp = H5Dget_space(d);
        hsize_t start[1] = {(hsize_t)j}, one[1] = {1};
        H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, one, NULL);
        hid_t msp = H5Screate_simple(1, one, NULL);
        rc = H5Dread(d, t, msp, fsp, H5P_DEFAULT, out->name) < 0 ? -1 : 0;
        out->name[MV_SAMPLE_NAME_MAX - 1] = 0;
        H5Sclose(msp);
        H5Sclose(fsp);
        H5Tclose(t);
        H5Dclose(d);
    }
    // A shard damaged after it was opened (truncated while training) can read as zeros, which
    // is no name either; nor is a names table overwritten by other bytes (name_for_messages). The
    // sample then carries the words instead, for every message that names it.
    if (rc < 0) snprintf(out->name, MV_SAMPLE_NAME_MAX, "%s", "name unreadable");
    else name_for_messages(out->name);
    char what[4600];
    snprintf(what, sizeof what, "%s/%s: sample %d (split index %lld, %s)", s->dir, s->m.shards[k].file, j,
             (long long)i, out->name);
    if (rc < 0) return mv_fail("%s: names table unreadable", what);
    char path[32];
    hsize_t idims[3] = {0, 0, 0}, ldims[2] = {0, 0};
    snprintf(path, sizeof path, "image/%05d", j);
    if (read_dataset(out->rgb.px, out->cap_px * 3, idims, &out->enc, &out->enc_cap, f, path, 3, what) < 0)
        return damaged_sample(s, hint);
    if (idims[2] != 3) return mv_fail("%s: image has %llu channels, expected 3", what, (unsigned long long)idims[2]);
    snprintf(path, sizeof path, "label/%05d", j);
    if (read_dataset(out->label.px, out->cap_px, ldims, &out->enc, &out->enc_cap, f, path, 2, what) < 0)
        return damaged_sample(s, hint);
    if (ldims[0] != idims[0] || ldims[1] != idims[1])
        return mv_fail("%s: label %llux%llu does not match image %llux%llu", what, (unsigned long long)ldims[0],
                       (unsigned long long)ldims[1], (unsigned long long)idims[0], (unsigned long long)idims[1]);
    out->rgb.h = out->label.h = (int)idims[0];
    out->rgb.w = out->label.w = (int)idims[1];
    out->rgb.c = 3;
    out->label.c = 1;
    out->index = i;
    return 0;
}

// split_read; `hint`: a damaged sample's message names `maskvim data inspect`.
static int read_sample_h5(mv_sample *out, mv_split *s, int64_t i, bool hint) {
    if (i < 0 || i >= s->m.count)
        return mv_fail("%s: sample %lld out of range (split holds %lld)", s->dir, (long long)i, (long long)s->m.count);
    int lo = 0, hi = s->m.n_shards - 1;
    while (lo < hi) {  // last shard whose first <= i
        int mid = (lo + hi + 1) / 2;
        if (s->m.shards[mid].first <= i) lo = mid;
        else hi = mid - 1;
    }
    int k = lo;
    hid_t f = shard_take(s, k);
    if (f < 0) return mv_fail_context("sample %lld", (long long)i);
    int rc = read_from_shard(out, s, f, k, (int)(i - s->m.shards[k].first), i, hint);
    shard_release(s, k);
    return rc;
}

// A failed HDF5 call leaves its error stack on the calling thread, and a thread-safe HDF5 frees a
// thread's stack at thread exit without the strings in it: a loader thread that met a damaged
// shard leaked them (LeakSanitizer). Our message is recorded, so the stack is cleared here.
static int read_sample(mv_sample *out, mv_split *s, int64_t i, bool hint) {
    shard_h5_quiet();
    int rc = read_sample_h5(out, s, i, hint);
    if (rc < 0) H5Eclear2(H5E_DEFAULT);
    return rc;
}

int split_read(mv_sample *out, mv_split *s, int64_t i) { return read_sample(out, s, i, true); }

int shard_hdf5_threadsafe(void) {
    hbool_t ts = 0;
    return H5is_library_threadsafe(&ts) >= 0 && ts;
}

// The writer refuses other values, but a shard written by another tool passes its CRC with any:
// training would stop at the first batch that holds one, so verification names it now.
static int check_label_values(const mv_sample *smp, const mv_split *s, const mv_manifest_shard *sh, int j) {
    const mv_image *l = &smp->label;
    int K = s->m.num_classes;
    size_t n = (size_t)l->h * l->w;
    for (size_t i = 0; i < n; i++) {
        int v = l->px[i];
        if (v >= K && v != MV_IGNORE_LABEL)
            return mv_fail("%s/%s: sample %d (split index %lld, %s): label value %d at (y %zu, x %zu) is neither a "
                           "class 0..%d nor %d", s->dir, sh->file, j, (long long)smp->index, smp->name, v, i / l->w,
                           i % l->w, K - 1, MV_IGNORE_LABEL);
    }
    return 0;
}

int split_verify(mv_split *s, FILE *log) {
    int bad = 0;
    char first_err[MV_ERRMSG_MAX] = "";
    mv_sample smp;
    sample_alloc(&smp, s->m.max_h, s->m.max_w);
    for (int k = 0; k < s->m.n_shards; k++) {
        const mv_manifest_shard *sh = &s->m.shards[k];
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", s->dir, sh->file);
        uint32_t crc = 0;
        int64_t bytes = 0;
        int shard_bad = 0;
        if (file_crc32(&crc, &bytes, path) < 0) shard_bad = 1;
        else if (crc != sh->crc32 || bytes != sh->bytes) {
            mv_fail("%s: CRC-32 %08x over %lld bytes, manifest says %08x over %lld", path, crc, (long long)bytes,
                    sh->crc32, (long long)sh->bytes);
            shard_bad = 1;
        }
        if (shard_bad && !first_err[0]) snprintf(first_err, sizeof first_err, "%s", mv_last_error());
        int samples_bad = 0;
        for (int j = 0; j < sh->count; j++) {
            if (read_sample(&smp, s, sh->first + j, false) < 0 || check_label_values(&smp, s, sh, j) < 0) {
                if (log) fprintf(log, "  error: %s\n", mv_last_error());
                if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", mv_last_error());
                samples_bad++;
            }
        }
        if (log)
            fprintf(log, "%s  %4d samples  crc32 %s  chunks %s\n", sh->file, sh->count, shard_bad ? "BAD" : "ok",
                    samples_bad ? "BAD" : "ok");
        bad += shard_bad + samples_bad;
    }
    sample_free(&smp);
    if (bad) return mv_fail("%s: %d problem%s found; first: %s", s->dir, bad, bad > 1 ? "s" : "", first_err);
    return 0;
}
