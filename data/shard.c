// HDF5 shards: the writer (atomic shards, resume) and the reader (one chunk per sample,
// checksums verified). See shard.h for the layout.
//
// Chunks are moved with HDF5's direct chunk I/O (H5Dwrite_chunk / H5Dread_chunk) and the
// filters are applied here: deflate with zlib, then the Fletcher32 HDF5 would append. The
// datasets still declare shuffle + deflate + Fletcher32, so any HDF5 reader (h5py, h5dump)
// decodes them normally. Doing the filters ourselves lets many threads compress and inflate
// at once; HDF5's own filters would run under its global library lock. (Shuffle is the
// identity on 1-byte elements, so it has nothing to do for uint8 images.)
#include "data/shard.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "core/error.h"
#include "core/fs.h"
#include "data/image_io.h"
#include "data/manifest.h"

#define SHARD_FORMAT "maskvim-shard"
#define SHARD_VERSION 1

// HDF5 prints its error stack to stderr by default; our errors are values. The setting is per
// thread in a thread-safe HDF5, so every entry point calls this.
static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

// ---------------------------------------------------------------------------------------
// Chunk encoding

uint32_t shard_fletcher32(const uint8_t *data, size_t len) {
    // HDF5's variant: sums of big-endian 16-bit words, both sums folded to 17 bits every 360
    // words (the most that cannot overflow 32 bits), a trailing odd byte is the high byte of a
    // last word.
    uint32_t a = 0, b = 0;
    size_t words = len / 2;
    const uint8_t *p = data;
    while (words) {
        size_t blk = words > 360 ? 360 : words;
        words -= blk;
        for (size_t i = 0; i < blk; i++, p += 2) {
            a += ((uint32_t)p[0] << 8) | p[1];
            b += a;
        }
        a = (a & 0xffff) + (a >> 16);
        b = (b & 0xffff) + (b >> 16);
    }
    if (len & 1) {
        a += (uint32_t)p[0] << 8;
        b += a;
        a = (a & 0xffff) + (a >> 16);
        b = (b & 0xffff) + (b >> 16);
    }
    a = (a & 0xffff) + (a >> 16);
    b = (b & 0xffff) + (b >> 16);
    return (b << 16) | a;
}

int64_t shard_encode_chunk(uint8_t **out, size_t *cap, const uint8_t *raw, size_t n, int level) {
    size_t need = compressBound((uLong)n) + 4;
    if (*cap < need) {
        uint8_t *p = realloc(*out, need);
        if (!p) return mv_fail("out of memory for a %zu-byte chunk", need);
        *out = p;
        *cap = need;
    }
    uLongf len = (uLongf)(*cap - 4);
    if (compress2(*out, &len, raw, (uLong)n, level) != Z_OK) return mv_fail("zlib compression failed");
    uint32_t f = shard_fletcher32(*out, len);
    // HDF5 stores the checksum little-endian after the filtered bytes.
    (*out)[len + 0] = (uint8_t)(f);
    (*out)[len + 1] = (uint8_t)(f >> 8);
    (*out)[len + 2] = (uint8_t)(f >> 16);
    (*out)[len + 3] = (uint8_t)(f >> 24);
    return (int64_t)len + 4;
}

int shard_decode_chunk(uint8_t *raw, const uint8_t *enc, size_t enc_len, size_t n, const char *what) {
    if (enc_len < 5) return mv_fail("%s: chunk of %zu bytes is too short", what, enc_len);
    size_t len = enc_len - 4;
    uint32_t stored = (uint32_t)enc[len] | (uint32_t)enc[len + 1] << 8 | (uint32_t)enc[len + 2] << 16 |
                      (uint32_t)enc[len + 3] << 24;
    uint32_t f = shard_fletcher32(enc, len);
    if (f != stored) return mv_fail("%s: Fletcher32 checksum mismatch (stored %08x, computed %08x): data corrupt", what,
                                    stored, f);
    uLongf got = (uLongf)n;
    int zrc = uncompress(raw, &got, enc, (uLong)len);
    if (zrc != Z_OK || got != n)
        return mv_fail("%s: chunk does not inflate to %zu bytes (zlib status %d, %lu bytes)", what, n, zrc,
                       (unsigned long)got);
    return 0;
}

// ---------------------------------------------------------------------------------------
// Small HDF5 helpers

static int attr_set_str(hid_t obj, const char *name, const char *value) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

static int attr_set_i64(hid_t obj, const char *name, int64_t value) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

static int attr_get_str(char *out, size_t cap, hid_t obj, const char *name) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        size_t sz = H5Tget_size(ft);
        if (sz < cap) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, sz);
            memset(out, 0, cap);
            rc = H5Aread(a, mt, out) < 0 ? -1 : 0;
            H5Tclose(mt);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int attr_get_i64(int64_t *out, hid_t obj, const char *name) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    int rc = H5Aread(a, H5T_NATIVE_INT64, out) < 0 ? -1 : 0;
    H5Aclose(a);
    return rc;
}

static hid_t name_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, MV_SAMPLE_NAME_MAX);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    return t;
}

// Objects are created without modification times, so that converting the same input twice
// gives byte-identical shards (and equal CRCs in the manifest).
static hid_t untimed_dcpl(void) {
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(p, 0);
    return p;
}

// Writes a 1-D fixed-string dataset of n strings of MV_SAMPLE_NAME_MAX bytes.
static int write_strings(hid_t file, const char *dset_name, const char *strings, int n) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = name_type();
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = untimed_dcpl();
    hid_t d = H5Dcreate2(file, dset_name, t, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    herr_t rc = d < 0 ? -1 : (n ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings) : 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

// ---------------------------------------------------------------------------------------
// Writer

struct mv_shard_writer {
    char dir[4096];
    char domain[128], label_map[128];
    int per_shard, level;
    mv_manifest_shard *done;     // sealed shards
    int n_done, cap_done;
    char **skipped;              // every skipped item, "name: reason"
    int n_skipped, cap_skipped;
    int cur_skip_start;          // skipped[] index where the open shard's items begin
    int64_t resume_point, n_samples;
    char *resumed_names;         // names of the samples in the kept shards, MV_SAMPLE_NAME_MAX each
    int64_t n_resumed;
    int min_h, min_w, max_h, max_w;
    // The shard being filled (file < 0 until its first sample).
    hid_t file;
    char tmp_path[4200], final_path[4200];
    int cur;
    char *names;                 // per_shard * MV_SAMPLE_NAME_MAX
    int32_t *sizes;              // per_shard * 2
    uint8_t *enc_rgb, *enc_lab;
    size_t cap_rgb, cap_lab;
};

static void shard_paths(const mv_shard_writer *w, int k, char *final_path, char *tmp_path, size_t cap) {
    snprintf(final_path, cap, "%s/shard-%05d.h5", w->dir, k);
    if (tmp_path) snprintf(tmp_path, cap, "%s/shard-%05d.h5.tmp", w->dir, k);
}

static void grow_size_range(mv_shard_writer *w, int h, int wd) {
    if (w->n_samples == 0 || h < w->min_h) w->min_h = h;
    if (w->n_samples == 0 || wd < w->min_w) w->min_w = wd;
    if (h > w->max_h) w->max_h = h;
    if (wd > w->max_w) w->max_w = wd;
}

static void push_skipped(mv_shard_writer *w, const char *entry) {
    if (w->n_skipped == w->cap_skipped) {
        w->cap_skipped = w->cap_skipped ? 2 * w->cap_skipped : 16;
        w->skipped = realloc(w->skipped, sizeof(char *) * (size_t)w->cap_skipped);
        MV_CHECK(w->skipped, "out of memory");
    }
    w->skipped[w->n_skipped++] = strdup(entry);
}

static void push_done(mv_shard_writer *w, const mv_manifest_shard *rec) {
    if (w->n_done == w->cap_done) {
        w->cap_done = w->cap_done ? 2 * w->cap_done : 16;
        w->done = realloc(w->done, sizeof *w->done * (size_t)w->cap_done);
        MV_CHECK(w->done, "out of memory");
    }
    w->done[w->n_done++] = *rec;
}

static void writer_free(mv_shard_writer *w) {
    for (int i = 0; i < w->n_skipped; i++) free(w->skipped[i]);
    free(w->skipped);
    free(w->done);
    free(w->resumed_names);
    free(w->names);
    free(w->sizes);
    free(w->enc_rgb);
    free(w->enc_lab);
    free(w);
}

// Removes shard files (and temporaries) numbered >= from_k, and the manifest.
static int remove_shards(const char *dir, int from_k) {
    DIR *d = opendir(dir);
    if (!d) return mv_fail("%s: cannot list folder: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        int k;
        const char *n = e->d_name;
        int is_shard = !strncmp(n, "shard-", 6) && (ends_with(n, ".h5") || ends_with(n, ".h5.tmp")) &&
                       sscanf(n, "shard-%d", &k) == 1;
        int is_manifest = !strcmp(n, MV_MANIFEST_FILE) || !strcmp(n, MV_MANIFEST_FILE ".tmp");
        if ((is_shard && (k >= from_k || ends_with(n, ".tmp"))) || is_manifest) {
            snprintf(path, sizeof path, "%s/%s", dir, n);
            if (remove(path) != 0) {
                closedir(d);
                return mv_fail("%s: cannot remove: %s", path, strerror(errno));
            }
        }
    }
    closedir(d);
    return 0;
}

// Reads back a sealed shard for resume. Returns 1 when it is complete and compatible, 0 when it
// must be rewritten, -1 on an incompatibility the user must resolve.
static int adopt_shard(mv_shard_writer *w, int k) {
    char path[4200];
    shard_paths(w, k, path, NULL, sizeof path);
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    char fmt[64] = "", domain[128] = "", label_map[128] = "";
    int64_t count = -1, per = -1, nskip = -1;
    int ok = attr_get_str(fmt, sizeof fmt, f, "format") == 0 && !strcmp(fmt, SHARD_FORMAT) &&
             attr_get_str(domain, sizeof domain, f, "domain") == 0 &&
             attr_get_str(label_map, sizeof label_map, f, "label_map") == 0 && attr_get_i64(&count, f, "count") == 0 &&
             attr_get_i64(&per, f, "samples_per_shard") == 0 && attr_get_i64(&nskip, f, "skipped") == 0;
    int rc = 0;
    if (ok && (strcmp(domain, w->domain) || strcmp(label_map, w->label_map) || per != w->per_shard)) {
        rc = mv_fail("%s: left by a run with domain '%s', label map '%s', %lld samples per shard; this run has '%s', "
                     "'%s', %d: start over with --fresh (or remove the folder), or match the settings",
                     path, domain, label_map, (long long)per, w->domain, w->label_map, w->per_shard);
        ok = 0;
    }
    if (ok && count != w->per_shard) ok = 0;  // the last, partial shard of a run: rewrite it
    if (ok && nskip < 0) ok = 0;
    int32_t *sizes = NULL;
    char *skipped = NULL;
    if (ok) {
        sizes = mv_malloc(sizeof(int32_t) * 2 * (size_t)count);
        skipped = mv_malloc((size_t)(nskip ? nskip : 1) * MV_SAMPLE_NAME_MAX);
        hid_t d = H5Dopen2(f, "sizes", H5P_DEFAULT);
        ok = d >= 0 && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, sizes) >= 0;
        if (d >= 0) H5Dclose(d);
        if (ok) {  // the sample names, so that the caller can check its input still lists them
            w->resumed_names = realloc(w->resumed_names, (size_t)(w->n_resumed + count) * MV_SAMPLE_NAME_MAX);
            MV_CHECK(w->resumed_names, "out of memory");
            hid_t t = name_type();
            d = H5Dopen2(f, "names", H5P_DEFAULT);
            ok = d >= 0 && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                   w->resumed_names + (size_t)w->n_resumed * MV_SAMPLE_NAME_MAX) >= 0;
            if (d >= 0) H5Dclose(d);
            H5Tclose(t);
        }
        if (ok && nskip > 0) {
            hid_t t = name_type();
            d = H5Dopen2(f, "skipped", H5P_DEFAULT);
            ok = d >= 0 && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, skipped) >= 0;
            if (d >= 0) H5Dclose(d);
            H5Tclose(t);
        }
    }
    H5Fclose(f);
    if (ok) {
        mv_manifest_shard rec = {0};
        snprintf(rec.file, sizeof rec.file, "shard-%05d.h5", k);
        rec.first = w->n_samples;
        rec.count = (int)count;
        rec.skipped = (int)nskip;
        if (file_crc32(&rec.crc32, &rec.bytes, path) < 0) ok = 0;
        for (int i = 0; ok && i < count; i++) {
            grow_size_range(w, sizes[2 * i], sizes[2 * i + 1]);
            w->n_samples++;
        }
        for (int i = 0; ok && i < nskip; i++) {
            skipped[(size_t)(i + 1) * MV_SAMPLE_NAME_MAX - 1] = 0;
            push_skipped(w, skipped + (size_t)i * MV_SAMPLE_NAME_MAX);
        }
        if (ok) {
            push_done(w, &rec);
            w->resume_point += count + nskip;
            for (int64_t i = 0; i < count; i++)
                w->resumed_names[(size_t)(w->n_resumed + i + 1) * MV_SAMPLE_NAME_MAX - 1] = 0;
            w->n_resumed += count;
        }
    }
    free(sizes);
    free(skipped);
    return rc < 0 ? -1 : ok;
}

static mv_shard_writer *writer_new(const char *split_dir, const char *domain, const char *label_map,
                                   int samples_per_shard, int resume) {
    h5_quiet();
    if (strlen(split_dir) >= 4000) { mv_fail("%s: path too long", split_dir); return NULL; }
    if (!domain || !*domain || strlen(domain) >= 128) { mv_fail("%s: domain name empty or too long", split_dir); return NULL; }
    if (!label_map || strlen(label_map) >= 128) { mv_fail("%s: label map name too long", split_dir); return NULL; }
    if (mv_mkdir_p(split_dir) < 0) return NULL;
    mv_shard_writer *w = mv_calloc(1, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "%s", split_dir);
    snprintf(w->domain, sizeof w->domain, "%s", domain);
    snprintf(w->label_map, sizeof w->label_map, "%s", label_map);
    w->per_shard = samples_per_shard > 0 ? samples_per_shard : MV_SHARD_DEFAULT_SAMPLES;
    w->level = MV_SHARD_DEFAULT_DEFLATE;
    w->file = H5I_INVALID_HID;
    w->names = mv_calloc((size_t)w->per_shard, MV_SAMPLE_NAME_MAX);
    w->sizes = mv_calloc((size_t)w->per_shard * 2, sizeof(int32_t));
    int k = 0;
    if (resume) {
        for (;; k++) {
            int rc = adopt_shard(w, k);
            if (rc < 0) { writer_free(w); return NULL; }
            if (rc == 0) break;
        }
    }
    if (remove_shards(split_dir, k) < 0) { writer_free(w); return NULL; }
    w->cur_skip_start = w->n_skipped;
    return w;
}

mv_shard_writer *shard_writer_open(const char *split_dir, const char *domain, const char *label_map,
                                   int samples_per_shard) {
    return writer_new(split_dir, domain, label_map, samples_per_shard, 0);
}

mv_shard_writer *shard_writer_resume(const char *split_dir, const char *domain, const char *label_map,
                                     int samples_per_shard) {
    return writer_new(split_dir, domain, label_map, samples_per_shard, 1);
}

int64_t shard_writer_resume_point(const mv_shard_writer *w) { return w->resume_point; }

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int shard_writer_check_resume(const mv_shard_writer *w, const char *const *names) {
    int64_t n = w->resume_point;
    if (n == 0) return 0;
    // The kept shards record which items they covered (written names, then skipped entries
    // "name: reason") but not how the two interleaved, so both sides are compared as sorted lists.
    const char **kept = mv_malloc(sizeof(char *) * (size_t)n);
    const char **want = mv_malloc(sizeof(char *) * (size_t)n);
    char *skip_names = mv_calloc((size_t)w->n_skipped + 1, MV_SAMPLE_NAME_MAX);
    int64_t k = 0;
    for (int64_t i = 0; i < w->n_resumed && k < n; i++) kept[k++] = w->resumed_names + (size_t)i * MV_SAMPLE_NAME_MAX;
    for (int i = 0; i < w->cur_skip_start && k < n; i++) {
        char *dst = skip_names + (size_t)i * MV_SAMPLE_NAME_MAX;
        snprintf(dst, MV_SAMPLE_NAME_MAX, "%s", w->skipped[i]);
        char *colon = strstr(dst, ": ");
        if (colon) *colon = 0;
        kept[k++] = dst;
    }
    for (int64_t i = 0; i < n; i++) want[i] = names[i];
    int rc = 0;
    if (k != n) {
        rc = mv_fail("%s: the kept shards list %lld items where they cover %lld: convert again with --fresh", w->dir,
                     (long long)k, (long long)n);
    } else {
        qsort(kept, (size_t)n, sizeof *kept, cmp_name);
        qsort(want, (size_t)n, sizeof *want, cmp_name);
        for (int64_t i = 0; i < n && rc == 0; i++) {
            int c = strcmp(kept[i], want[i]);
            if (c)
                rc = mv_fail("%s: the complete shards of the earlier run do not hold the first %lld items the input "
                             "lists now ('%s' is %s): the input changed; convert again with --fresh",
                             w->dir, (long long)n, c < 0 ? kept[i] : want[i],
                             c < 0 ? "in the shards but not among those items" : "among those items but not in the shards");
        }
    }
    free(kept);
    free(want);
    free(skip_names);
    return rc;
}

int shard_check_sample(const char *name, const mv_image *rgb, const mv_image *label) {
    if (strlen(name) >= MV_SAMPLE_NAME_MAX) return mv_fail("%s: sample name longer than %d", name, MV_SAMPLE_NAME_MAX - 1);
    if (!rgb->px || rgb->c != 3 || rgb->h <= 0 || rgb->w <= 0)
        return mv_fail("%s: image must be a non-empty RGB image (got %dx%dx%d)", name, rgb->h, rgb->w, rgb->c);
    if (!label->px || label->c != 1)
        return mv_fail("%s: label must be a one-channel image (got %d channels)", name, label->c);
    if (rgb->h > MV_IMAGE_MAX_SIDE || rgb->w > MV_IMAGE_MAX_SIDE)
        return mv_fail("%s: image of %dx%d is larger than %d on a side", name, rgb->h, rgb->w, MV_IMAGE_MAX_SIDE);
    if (label->h != rgb->h || label->w != rgb->w)
        return mv_fail("%s: label is %dx%d but image is %dx%d (HxW)", name, label->h, label->w, rgb->h, rgb->w);
    size_t n = (size_t)label->h * label->w;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = label->px[i];
        if (v >= MV_NUM_TRAIN_CLASSES && v != MV_IGNORE_LABEL)
            return mv_fail("%s: label value %d at (y %zu, x %zu) is neither a train id 0..%d nor %d", name, v,
                           i / label->w, i % label->w, MV_NUM_TRAIN_CLASSES - 1, MV_IGNORE_LABEL);
    }
    return 0;
}

static hid_t create_chunked(hid_t file, const char *path, int rank, const hsize_t *dims, int level) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, dims);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, (unsigned)level);
    H5Pset_fletcher32(dcpl);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(file, path, H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Sclose(sp);
    H5Pclose(dcpl);
    return d;
}

static int write_chunk(hid_t file, const char *dset_path, int rank, const hsize_t *dims, int level, const uint8_t *enc,
                       size_t len) {
    hid_t d = create_chunked(file, dset_path, rank, dims, level);
    if (d < 0) return -1;
    hsize_t offset[3] = {0, 0, 0};
    herr_t rc = H5Dwrite_chunk(d, H5P_DEFAULT, 0, offset, len, enc);
    H5Dclose(d);
    return rc < 0 ? -1 : 0;
}

static int start_shard(mv_shard_writer *w) {
    shard_paths(w, w->n_done, w->final_path, w->tmp_path, sizeof w->final_path);
    remove(w->tmp_path);
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) return mv_fail("%s: cannot create HDF5 file", w->tmp_path);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g1 = H5Gcreate2(w->file, "image", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    hid_t g2 = H5Gcreate2(w->file, "label", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g1 >= 0) H5Gclose(g1);
    if (g2 >= 0) H5Gclose(g2);
    if (g1 < 0 || g2 < 0) return mv_fail("%s: cannot create groups", w->tmp_path);
    w->cur = 0;
    return 0;
}

// Completes a message about a write the file system refused: the system's reason, which
// HDF5's own messages leave out, and what a re-run does. Returns -1.
static int write_refused(const mv_shard_writer *w, int err) {
    char msg[MV_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", mv_last_error());
    const char *why = err == ENOSPC || err == EDQUOT || err == EFBIG || err == EIO ? strerror(err) : NULL;
    int64_t kept = w->n_samples - w->cur;
    if (w->n_done == 0) return mv_fail("%s%s%s", msg, why ? ": " : "", why ? why : "");
    return mv_fail("%s%s%s; the %d complete shard%s (%lld samples) stay in %s and a re-run resumes after them", msg,
                   why ? ": " : "", why ? why : "", w->n_done, w->n_done == 1 ? "" : "s", (long long)kept, w->dir);
}

// Writes the shard's tables and attributes, closes, fsyncs and renames it into place.
static int seal_shard(mv_shard_writer *w) {
    errno = 0;
    int nskip = w->n_skipped - w->cur_skip_start;
    char *skip_buf = mv_calloc((size_t)(nskip ? nskip : 1), MV_SAMPLE_NAME_MAX);
    for (int i = 0; i < nskip; i++)
        snprintf(skip_buf + (size_t)i * MV_SAMPLE_NAME_MAX, MV_SAMPLE_NAME_MAX, "%s", w->skipped[w->cur_skip_start + i]);
    hsize_t sdims[2] = {(hsize_t)w->cur, 2};
    hid_t sp = H5Screate_simple(2, sdims, NULL);
    hid_t dcpl = untimed_dcpl();
    hid_t d = H5Dcreate2(w->file, "sizes", H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    int ok = d >= 0 && (w->cur == 0 || H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->sizes) >= 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    ok = ok && write_strings(w->file, "names", w->names, w->cur) == 0;
    ok = ok && write_strings(w->file, "skipped", skip_buf, nskip) == 0;
    ok = ok && attr_set_str(w->file, "format", SHARD_FORMAT) == 0 && attr_set_i64(w->file, "version", SHARD_VERSION) == 0;
    ok = ok && attr_set_str(w->file, "domain", w->domain) == 0 && attr_set_str(w->file, "label_map", w->label_map) == 0;
    ok = ok && attr_set_i64(w->file, "count", w->cur) == 0 && attr_set_i64(w->file, "skipped", nskip) == 0;
    ok = ok && attr_set_i64(w->file, "samples_per_shard", w->per_shard) == 0;
    ok = ok && attr_set_i64(w->file, "first", w->n_samples - w->cur) == 0;
    free(skip_buf);
    ok = (H5Fclose(w->file) >= 0) && ok;
    int err = errno;
    w->file = H5I_INVALID_HID;
    if (!ok) {
        remove(w->tmp_path);
        mv_fail("%s: writing the shard's tables failed", w->tmp_path);
        return write_refused(w, err);
    }
    if (fsync_path(w->tmp_path) != 0) {
        remove(w->tmp_path);
        return mv_fail("%s: fsync failed: %s", w->tmp_path, strerror(errno));
    }
    if (rename(w->tmp_path, w->final_path) != 0) {
        int e = errno;
        remove(w->tmp_path);
        return mv_fail("%s: cannot rename into place: %s", w->final_path, strerror(e));
    }
    fsync_path(w->dir);
    mv_manifest_shard rec = {0};
    snprintf(rec.file, sizeof rec.file, "shard-%05d.h5", w->n_done);
    rec.first = w->n_samples - w->cur;
    rec.count = w->cur;
    rec.skipped = nskip;
    MV_TRY(file_crc32(&rec.crc32, &rec.bytes, w->final_path));
    push_done(w, &rec);
    w->cur_skip_start = w->n_skipped;
    w->cur = 0;
    return 0;
}

// Stops before a sample the file system has no room for, so that a full disk ends with the
// folder and its free space named instead of a write failing inside HDF5 (which gives no
// reason). The estimate is the sample's chunks, about 1 KiB of HDF5 structure per dataset,
// the shard's own tables (names, sizes, skipped: one name-sized row per sample slot) and the
// manifest's entries when it is sealed, and 64 KiB besides. A disk that fills up faster than
// that (another writer) still fails the write, with the system's reason.
static int check_room(const mv_shard_writer *w, const char *name, size_t bytes) {
    double tables = 2.0 * (double)w->per_shard * (MV_SAMPLE_NAME_MAX + 16);
    double need = (double)bytes + 2048.0 + tables + 65536.0;
    char what[4400], for_what[MV_SAMPLE_NAME_MAX + 32];
    snprintf(what, sizeof what, "%s/shard-%05d.h5", w->dir, w->n_done);
    snprintf(for_what, sizeof for_what, "sample %d (%s)", w->cur, name);
    if (mv_check_free_space(w->dir, need, what, for_what) < 0) return write_refused(w, 0);
    return 0;
}

int shard_writer_add_encoded(mv_shard_writer *w, const char *name, int h, int wd, const uint8_t *rgb_chunk,
                             size_t rgb_len, const uint8_t *label_chunk, size_t label_len) {
    h5_quiet();
    if (strlen(name) >= MV_SAMPLE_NAME_MAX) return mv_fail("%s: sample name too long", name);
    if (h <= 0 || wd <= 0) return mv_fail("%s: empty sample", name);
    MV_TRY(check_room(w, name, rgb_len + label_len));
    if (w->file < 0) MV_TRY(start_shard(w));
    char path[32];
    hsize_t idims[3] = {(hsize_t)h, (hsize_t)wd, 3}, ldims[2] = {(hsize_t)h, (hsize_t)wd};
    snprintf(path, sizeof path, "image/%05d", w->cur);
    errno = 0;
    if (write_chunk(w->file, path, 3, idims, w->level, rgb_chunk, rgb_len) < 0) {
        int err = errno;
        mv_fail("%s: sample %d (%s): writing the image failed", w->tmp_path, w->cur, name);
        return write_refused(w, err);
    }
    snprintf(path, sizeof path, "label/%05d", w->cur);
    if (write_chunk(w->file, path, 2, ldims, w->level, label_chunk, label_len) < 0) {
        int err = errno;
        mv_fail("%s: sample %d (%s): writing the label failed", w->tmp_path, w->cur, name);
        return write_refused(w, err);
    }
    snprintf(w->names + (size_t)w->cur * MV_SAMPLE_NAME_MAX, MV_SAMPLE_NAME_MAX, "%s", name);
    w->sizes[2 * w->cur] = h;
    w->sizes[2 * w->cur + 1] = wd;
    grow_size_range(w, h, wd);
    w->n_samples++;
    w->cur++;
    if (w->cur == w->per_shard) MV_TRY(seal_shard(w));
    return 0;
}

int shard_writer_add(mv_shard_writer *w, const char *name, const mv_image *rgb, const mv_image *label) {
    MV_TRY(shard_check_sample(name, rgb, label));
    size_t n = (size_t)rgb->h * rgb->w;
    int64_t li = shard_encode_chunk(&w->enc_rgb, &w->cap_rgb, rgb->px, n * 3, w->level);
    if (li < 0) return mv_fail_context("%s", name);
    int64_t ll = shard_encode_chunk(&w->enc_lab, &w->cap_lab, label->px, n, w->level);
    if (ll < 0) return mv_fail_context("%s", name);
    return shard_writer_add_encoded(w, name, rgb->h, rgb->w, w->enc_rgb, (size_t)li, w->enc_lab, (size_t)ll);
}

int shard_writer_skip(mv_shard_writer *w, const char *name, const char *reason) {
    char entry[MV_SAMPLE_NAME_MAX];
    snprintf(entry, sizeof entry, "%s: %s", name, reason);
    push_skipped(w, entry);
    return 0;
}

int shard_writer_close(mv_shard_writer *w) {
    h5_quiet();
    int rc = 0;
    if (w->cur > 0) rc = seal_shard(w);
    if (rc == 0) {
        mv_manifest m = {0};
        m.version = 1;
        snprintf(m.domain, sizeof m.domain, "%s", w->domain);
        snprintf(m.label_map, sizeof m.label_map, "%s", w->label_map);
        m.num_classes = MV_NUM_TRAIN_CLASSES;
        m.count = w->n_samples;
        m.samples_per_shard = w->per_shard;
        m.min_h = w->min_h; m.min_w = w->min_w; m.max_h = w->max_h; m.max_w = w->max_w;
        m.n_shards = w->n_done;
        m.shards = w->done;
        m.n_skipped = w->n_skipped;
        m.skipped = w->skipped;
        rc = manifest_write(w->dir, &m);
    }
    if (rc < 0) shard_writer_abort(w);
    else writer_free(w);
    return rc;
}

void shard_writer_abort(mv_shard_writer *w) {
    if (!w) return;
    h5_quiet();
    if (w->file >= 0) {
        H5Fclose(w->file);
        remove(w->tmp_path);
    }
    writer_free(w);
}

// ---------------------------------------------------------------------------------------
// Reader

struct mv_split {
    char dir[4096];
    mv_manifest m;
    hid_t *files;             // per shard, opened on first use
    pthread_mutex_t lock;     // guards files[]
};

int split_open(mv_split **out, const char *dir) {
    h5_quiet();
    *out = NULL;
    mv_split *s = mv_calloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    if (manifest_read(&s->m, dir) < 0) {
        free(s);
        return -1;
    }
    s->files = mv_malloc(sizeof(hid_t) * (size_t)(s->m.n_shards ? s->m.n_shards : 1));
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
    h5_quiet();
    for (int k = 0; k < s->m.n_shards; k++)
        if (s->files[k] >= 0) H5Fclose(s->files[k]);
    free(s->files);
    pthread_mutex_destroy(&s->lock);
    manifest_free(&s->m);
    free(s);
}

int64_t split_count(const mv_split *s) { return s->m.count; }
const char *split_dir(const mv_split *s) { return s->dir; }
const char *split_domain(const mv_split *s) { return s->m.domain; }

void split_max_size(const mv_split *s, int *max_h, int *max_w) {
    *max_h = s->m.max_h;
    *max_w = s->m.max_w;
}

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

static hid_t shard_file(mv_split *s, int k) {
    pthread_mutex_lock(&s->lock);
    hid_t f = s->files[k];
    if (f < 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", s->dir, s->m.shards[k].file);
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        int64_t count = -1, version = -1, first = -1;
        char fmt[64] = "", domain[128] = "", label_map[128] = "";
        int ok = 0;
        if (f < 0) mv_fail("%s: cannot open as HDF5 (truncated or corrupt?)", path);
        else if (attr_get_str(fmt, sizeof fmt, f, "format") < 0 || strcmp(fmt, SHARD_FORMAT) ||
                 attr_get_i64(&count, f, "count") < 0 || count != s->m.shards[k].count) {
            mv_fail("%s: not a maskvim shard, or holds %lld samples where the manifest says %d", path,
                    (long long)count, s->m.shards[k].count);
        } else if (attr_get_i64(&version, f, "version") < 0 || version != SHARD_VERSION) {
            mv_fail("%s: shard format version %lld, this build reads version %d", path, (long long)version,
                    SHARD_VERSION);
        } else if (attr_get_str(domain, sizeof domain, f, "domain") < 0 ||
                   attr_get_str(label_map, sizeof label_map, f, "label_map") < 0 ||
                   attr_get_i64(&first, f, "first") < 0 || strcmp(domain, s->m.domain) ||
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
    }
    pthread_mutex_unlock(&s->lock);
    return f;
}

// Reads one chunked uint8 dataset of `rank` dims into dst (capacity cap bytes).
static int read_dataset(uint8_t *dst, size_t cap, hsize_t *dims, uint8_t **enc, size_t *enc_cap, hid_t file,
                        const char *dset_path, int rank, const char *what) {
    hid_t d = H5Dopen2(file, dset_path, H5P_DEFAULT);
    if (d < 0) return mv_fail("%s: dataset %s missing", what, dset_path);
    hid_t sp = H5Dget_space(d);
    int r = H5Sget_simple_extent_ndims(sp);
    if (r == rank) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    int rc = 0;
    size_t n = 1;
    for (int i = 0; i < rank && r == rank; i++) n *= dims[i];
    hsize_t offset[3] = {0, 0, 0};
    hsize_t stored = 0;
    uint32_t mask = 0;
    if (r != rank) rc = mv_fail("%s: dataset %s has rank %d, expected %d", what, dset_path, r, rank);
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

int split_read(mv_sample *out, mv_split *s, int64_t i) {
    h5_quiet();
    if (i < 0 || i >= s->m.count)
        return mv_fail("%s: sample %lld out of range (split holds %lld)", s->dir, (long long)i, (long long)s->m.count);
    int lo = 0, hi = s->m.n_shards - 1;
    while (lo < hi) {  // last shard whose first <= i
        int mid = (lo + hi + 1) / 2;
        if (s->m.shards[mid].first <= i) lo = mid;
        else hi = mid - 1;
    }
    int k = lo, j = (int)(i - s->m.shards[k].first);
    hid_t f = shard_file(s, k);
    if (f < 0) return mv_fail_context("sample %lld", (long long)i);
    // Name first, so that errors about the pixels can name the sample.
    hid_t d = H5Dopen2(f, "names", H5P_DEFAULT);
    int rc = 0;
    if (d < 0) rc = -1;
    else {
        hid_t t = name_type();
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
    char what[4600];
    snprintf(what, sizeof what, "%s/%s: sample %d (split index %lld, %s)", s->dir, s->m.shards[k].file, j,
             (long long)i, rc == 0 ? out->name : "name unreadable");
    if (rc < 0) return mv_fail("%s: names table unreadable", what);
    char path[32];
    hsize_t idims[3] = {0, 0, 0}, ldims[2] = {0, 0};
    snprintf(path, sizeof path, "image/%05d", j);
    MV_TRY(read_dataset(out->rgb.px, out->cap_px * 3, idims, &out->enc, &out->enc_cap, f, path, 3, what));
    if (idims[2] != 3) return mv_fail("%s: image has %llu channels, expected 3", what, (unsigned long long)idims[2]);
    snprintf(path, sizeof path, "label/%05d", j);
    MV_TRY(read_dataset(out->label.px, out->cap_px, ldims, &out->enc, &out->enc_cap, f, path, 2, what));
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

int shard_hdf5_threadsafe(void) {
    hbool_t ts = 0;
    return H5is_library_threadsafe(&ts) >= 0 && ts;
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
            if (split_read(&smp, s, sh->first + j) < 0) {
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
