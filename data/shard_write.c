// The shard writer: samples appended in order, each shard sealed atomically (temporary name,
// fsync, rename), resume from the complete shards an interrupted run left, a full disk named
// before HDF5 fails. Chunks come encoded (shard_codec.c) and go in by direct chunk I/O.
#include "data/shard.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "core/fs.h"
#include "core/h5util.h"
#include "data/image_io.h"
#include "data/manifest.h"
#include "data/shard_hdf5.h"

// ---------------------------------------------------------------------------------------
// Small HDF5 helpers

static int attr_set_str(hid_t obj, const char *name, const char *value) {
    hid_t t = shard_string_type(strlen(value) + 1);
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

// Objects are created without modification times, so that converting the same input twice
// gives byte-identical shards (and equal CRCs in the manifest).
static hid_t untimed_dcpl(void) {
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(p, 0);
    return p;
}

// Writes a 1-D fixed-string dataset of n strings of `size` bytes each (NUL-terminated).
static int write_strings(hid_t file, const char *dset_name, const char *strings, int n, size_t size) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = shard_string_type(size);
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
// Skipped items: "name: reason" entries (shards' /skipped, the manifest's "skipped")

// Drops a UTF-8 character cut in half at the end of s (a message cut to a buffer's size), so
// that the manifest stays valid UTF-8.
static void utf8_trim_cut(char *s) {
    size_t n = strlen(s), i = n, k = 0;
    while (i > 0 && k < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, k++;  // continuation bytes
    if (i == 0) return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 && lead < 0xF8 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    if (lead >= 0xC0 && lead < 0xF8 && k < need) s[i - 1] = 0;
}

// The entry of a skipped item. Its name is written as it is, unless it could not be told from
// the reason (a name holding ": ", or starting with a quote): then in double quotes, '"' and '\'
// escaped with '\' ("\"a: b\": reason"), so that skip_entry_name recovers it exactly.
static char *skip_entry(const char *name, const char *reason) {
    size_t n = strlen(name), r = strlen(reason);
    char *e = mv_malloc(2 * n + r + 8), *p = e;
    if (strstr(name, ": ") || name[0] == '"') {
        *p++ = '"';
        for (const char *c = name; *c; c++) {
            if (*c == '"' || *c == '\\') *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    } else {
        memcpy(p, name, n);
        p += n;
    }
    sprintf(p, ": %s", reason);
    utf8_trim_cut(e);
    return e;
}

// The item name of a skipped entry (MV_SAMPLE_NAME_MAX bytes at dst): a quoted name (see
// skip_entry), else what comes before the first ": " (entries of earlier versions too).
static void skip_entry_name(char *dst, const char *entry) {
    if (entry[0] == '"') {
        size_t k = 0;
        const char *c = entry + 1;
        for (; *c && *c != '"' && k + 1 < MV_SAMPLE_NAME_MAX; c++) {
            if (*c == '\\' && c[1]) c++;
            dst[k++] = *c;
        }
        dst[k] = 0;
        if (c[0] == '"' && c[1] == ':' && c[2] == ' ') return;
    }
    const char *colon = strstr(entry, ": ");
    size_t len = colon ? (size_t)(colon - entry) : strlen(entry);
    snprintf(dst, MV_SAMPLE_NAME_MAX, "%.*s", (int)len, entry);
}

// ---------------------------------------------------------------------------------------
// Writer

struct mv_shard_writer {
    char dir[4096];
    char domain[128], label_map[128];
    int per_shard, level;
    mv_manifest_shard *done;     // sealed shards
    int n_done, cap_done;
    char **skipped;              // every skipped item, "name: reason" (skip_entry)
    int n_skipped, cap_skipped;
    int cur_skip_start;          // skipped[] index where the open shard's items begin
    int64_t resume_point, n_samples;
    char *resumed_names;         // names of the samples in the kept shards, MV_SAMPLE_NAME_MAX each
    int64_t n_resumed;
    // Resume defers every removal to the first write (start_shard, shard_writer_close): shards
    // numbered >= stale_from, temporaries and the manifest; -1 when nothing is pending. A run
    // refused before it writes leaves the folder exactly as it was.
    int stale_from;
    // A finished split found by resume (its manifest.json, every shard it lists readable): the
    // names of all the input items it covers, samples then skipped items, MV_SAMPLE_NAME_MAX each.
    int finished;
    char *finished_names;
    int64_t n_finished;
    int min_h, min_w, max_h, max_w;
    mv_manifest_entry source[MV_MANIFEST_SOURCE_MAX];   // for the manifest (shard_writer_set_source)
    int n_source;
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

// Appends a skipped entry (malloc'd; w owns it from here).
static void push_skipped(mv_shard_writer *w, char *entry) {
    MV_CHECK(entry, "out of memory");
    if (w->n_skipped == w->cap_skipped) {
        w->cap_skipped = w->cap_skipped ? 2 * w->cap_skipped : 16;
        w->skipped = mv_realloc(w->skipped, sizeof(char *) * (size_t)w->cap_skipped);
    }
    w->skipped[w->n_skipped++] = entry;
}

static void push_done(mv_shard_writer *w, const mv_manifest_shard *rec) {
    if (w->n_done == w->cap_done) {
        w->cap_done = w->cap_done ? 2 * w->cap_done : 16;
        w->done = mv_realloc(w->done, sizeof *w->done * (size_t)w->cap_done);
    }
    w->done[w->n_done++] = *rec;
}

static void writer_free(mv_shard_writer *w) {
    for (int i = 0; i < w->n_skipped; i++) free(w->skipped[i]);
    free(w->skipped);
    free(w->done);
    free(w->resumed_names);
    free(w->finished_names);
    free(w->names);
    free(w->sizes);
    free(w->enc_rgb);
    free(w->enc_lab);
    for (int i = 0; i < w->n_source; i++) {
        free(w->source[i].key);
        free(w->source[i].value);
    }
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

// Reads a shard's n skipped entries into *out (malloc'd), *size bytes each: the entries are
// fixed strings as long as the shard's longest (MV_SAMPLE_NAME_MAX in earlier versions, which
// cut longer ones). 0 / -1 (no message: the caller decides).
static int read_skipped(hid_t f, int64_t n, char **out, size_t *size) {
    hid_t d = H5Dopen2(f, "skipped", H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t ft = H5Dget_type(d);
    size_t sz = ft >= 0 && H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) ? H5Tget_size(ft) : 0;
    if (ft >= 0) H5Tclose(ft);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[1] = {0};
    int ok = sz > 0 && sz < (1u << 20) && sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
             H5Sget_simple_extent_dims(sp, dims, NULL) == 1 && dims[0] == (hsize_t)n;
    if (sp >= 0) H5Sclose(sp);
    if (ok) {
        *out = mv_malloc((size_t)n * (sz + 1));
        hid_t t = shard_string_type(sz + 1);  // room for the NUL of a string that fills its field
        ok = H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0;
        H5Tclose(t);
        *size = sz + 1;
    }
    H5Dclose(d);
    return ok ? 0 : -1;
}

// Reads back a sealed shard for resume. Returns 1 when it is complete and compatible, 0 when it
// must be rewritten, -1 on an incompatibility the user must resolve.
static int adopt_shard(mv_shard_writer *w, int k) {
    char path[4200];
    shard_paths(w, k, path, NULL, sizeof path);
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    h5_open_failure why;
    hid_t f = h5_open_quiet(path, &why);
    if (f < 0) return h5_open_blocked(why) ? -1 : 0;   // a shard locked now may be whole: rewriting it would lose it
    char fmt[64] = "", domain[128] = "", label_map[128] = "";
    int64_t count = -1, per = -1, nskip = -1;
    int ok = shard_attr_get_str(fmt, sizeof fmt, f, "format") == 0 && !strcmp(fmt, SHARD_FORMAT) &&
             shard_attr_get_str(domain, sizeof domain, f, "domain") == 0 &&
             shard_attr_get_str(label_map, sizeof label_map, f, "label_map") == 0 &&
             shard_attr_get_i64(&count, f, "count") == 0 && shard_attr_get_i64(&per, f, "samples_per_shard") == 0 &&
             shard_attr_get_i64(&nskip, f, "skipped") == 0;
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
    size_t skip_size = MV_SAMPLE_NAME_MAX;
    if (ok) {
        sizes = mv_malloc(sizeof(int32_t) * 2 * (size_t)count);
        hid_t d = H5Dopen2(f, "sizes", H5P_DEFAULT);
        ok = d >= 0 && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, sizes) >= 0;
        if (d >= 0) H5Dclose(d);
        if (ok) {  // the sample names, so that the caller can check its input still lists them
            w->resumed_names = mv_realloc(w->resumed_names, (size_t)(w->n_resumed + count) * MV_SAMPLE_NAME_MAX);
            hid_t t = shard_name_type();
            d = H5Dopen2(f, "names", H5P_DEFAULT);
            ok = d >= 0 && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                   w->resumed_names + (size_t)w->n_resumed * MV_SAMPLE_NAME_MAX) >= 0;
            if (d >= 0) H5Dclose(d);
            H5Tclose(t);
        }
        if (ok && nskip > 0) ok = read_skipped(f, nskip, &skipped, &skip_size) == 0;
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
            char *e = skipped + (size_t)i * skip_size;
            e[skip_size - 1] = 0;
            utf8_trim_cut(e);  // shards of earlier versions cut entries at MV_SAMPLE_NAME_MAX bytes
            push_skipped(w, mv_strdup(e));
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

// Reads the n fixed-string entries of dataset dset_name of f into out (n * MV_SAMPLE_NAME_MAX
// bytes, each entry NUL-terminated). 0 / -1 (no message: the caller decides).
static int read_strings(hid_t f, const char *dset_name, char *out, int64_t n) {
    hid_t d = H5Dopen2(f, dset_name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[1] = {0};
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, dims, NULL) == 1 &&
             dims[0] == (hsize_t)n;
    if (sp >= 0) H5Sclose(sp);
    if (ok && n > 0) {
        hid_t t = shard_name_type();
        ok = H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
        H5Tclose(t);
    }
    H5Dclose(d);
    for (int64_t i = 0; ok && i < n; i++) out[(size_t)(i + 1) * MV_SAMPLE_NAME_MAX - 1] = 0;
    return ok ? 0 : -1;
}

// When w->dir holds a finished split (manifest.json), records the names of every input item it
// covers: the samples of each shard the manifest lists, then its skipped items. A manifest of
// other settings is refused (-1) as a kept shard's would be; one that does not read back, or
// whose shards do not, leaves the split unfinished (0): the resume rebuilds it.
static int read_finished(mv_shard_writer *w) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", w->dir, MV_MANIFEST_FILE);
    if (access(path, F_OK) != 0) return 0;
    mv_manifest m;
    if (manifest_read(&m, w->dir) < 0) return 0;
    int rc = 0;
    if (strcmp(m.domain, w->domain) || strcmp(m.label_map, w->label_map) || m.samples_per_shard != w->per_shard) {
        rc = mv_fail("%s: a finished split with domain '%s', label map '%s', %d samples per shard; this run has '%s', "
                     "'%s', %d: start over with --fresh (or remove the folder), or match the settings",
                     path, m.domain, m.label_map, m.samples_per_shard, w->domain, w->label_map, w->per_shard);
        manifest_free(&m);
        return rc;
    }
    int64_t n = m.count + m.n_skipped;
    char *names = mv_calloc((size_t)(n ? n : 1), MV_SAMPLE_NAME_MAX);
    int ok = 1;
    for (int i = 0; ok && i < m.n_shards; i++) {
        const mv_manifest_shard *sh = &m.shards[i];
        if (sh->first < 0 || sh->count < 0 || sh->first + sh->count > m.count) { ok = 0; break; }
        snprintf(path, sizeof path, "%s/%s", w->dir, sh->file);
        h5_open_failure why;
        hid_t f = h5_open_quiet(path, &why);
        if (f < 0 && h5_open_blocked(why)) { manifest_free(&m); free(names); return -1; }
        if (f < 0) { ok = 0; break; }
        ok = read_strings(f, "names", names + (size_t)sh->first * MV_SAMPLE_NAME_MAX, sh->count) == 0;
        H5Fclose(f);
    }
    for (int i = 0; ok && i < m.n_skipped; i++)
        skip_entry_name(names + (size_t)(m.count + i) * MV_SAMPLE_NAME_MAX, m.skipped[i]);
    manifest_free(&m);
    if (!ok) {
        free(names);
        return 0;
    }
    w->finished = 1;
    w->finished_names = names;
    w->n_finished = n;
    return 0;
}

static mv_shard_writer *writer_new(const char *split_dir, const char *domain, const char *label_map,
                                   int samples_per_shard, int resume) {
    shard_h5_quiet();
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
    w->stale_from = -1;
    if (resume) {
        for (;; k++) {
            int rc = adopt_shard(w, k);
            if (rc < 0) { writer_free(w); return NULL; }
            if (rc == 0) break;
        }
        if (read_finished(w) < 0) { writer_free(w); return NULL; }
        w->stale_from = k;  // removed at the first write, once the caller has accepted the resume
    } else if (remove_shards(split_dir, k) < 0) {
        writer_free(w);
        return NULL;
    }
    w->cur_skip_start = w->n_skipped;
    return w;
}

// The removals a resume deferred (see stale_from), done before the first write.
static int clear_stale(mv_shard_writer *w) {
    if (w->stale_from < 0) return 0;
    MV_TRY(remove_shards(w->dir, w->stale_from));
    w->stale_from = -1;
    return 0;
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

int shard_writer_finished(const mv_shard_writer *w) { return w->finished; }

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

// Compares two sets of names (a: na, b: nb; both arrays are sorted in place). 0 when they are
// equal; otherwise 1 with *only_a or *only_b (the other NULL) the first name, in sorted order,
// that one holds and the other does not.
static int name_sets_differ(const char **a, int64_t na, const char **b, int64_t nb, const char **only_a,
                            const char **only_b) {
    *only_a = *only_b = NULL;
    if (na) qsort(a, (size_t)na, sizeof *a, cmp_name);
    if (nb) qsort(b, (size_t)nb, sizeof *b, cmp_name);
    int64_t i = 0, j = 0;
    while (i < na && j < nb) {
        int c = strcmp(a[i], b[j]);
        if (c < 0) { *only_a = a[i]; return 1; }
        if (c > 0) { *only_b = b[j]; return 1; }
        i++, j++;
    }
    if (i < na) { *only_a = a[i]; return 1; }
    if (j < nb) { *only_b = b[j]; return 1; }
    return 0;
}

// Checks that the kept shards hold exactly the items the caller is about to skip: names[i] is
// the name of input item i, for i < w->resume_point. When the input changed since the earlier
// run (items added before the end, removed, renamed), it fails naming an item: resuming would
// duplicate some samples and lose others.
static int shard_writer_check_resume(const mv_shard_writer *w, const char *const *names) {
    int64_t n = w->resume_point;
    if (n == 0) return 0;
    // The kept shards record which items they covered (written names, then skipped entries,
    // skip_entry) but not how the two interleaved, so both sides are compared as sets.
    const char **kept = mv_malloc(sizeof(char *) * (size_t)n);
    const char **want = mv_malloc(sizeof(char *) * (size_t)n);
    char *skip_names = mv_calloc((size_t)w->n_skipped + 1, MV_SAMPLE_NAME_MAX);
    int64_t k = 0;
    for (int64_t i = 0; i < w->n_resumed && k < n; i++) kept[k++] = w->resumed_names + (size_t)i * MV_SAMPLE_NAME_MAX;
    for (int i = 0; i < w->cur_skip_start && k < n; i++) {
        char *dst = skip_names + (size_t)i * MV_SAMPLE_NAME_MAX;
        skip_entry_name(dst, w->skipped[i]);
        kept[k++] = dst;
    }
    for (int64_t i = 0; i < n; i++) want[i] = names[i];
    int rc = 0;
    const char *only_kept, *only_want;
    if (k != n) {
        rc = mv_fail("%s: the kept shards list %lld items where they cover %lld: convert again with --fresh", w->dir,
                     (long long)k, (long long)n);
    } else if (name_sets_differ(kept, n, want, n, &only_kept, &only_want)) {
        rc = mv_fail("%s: the complete shards of the earlier run do not hold the first %lld items the input "
                     "lists now ('%s' is %s): the input changed; convert again with --fresh",
                     w->dir, (long long)n, only_kept ? only_kept : only_want,
                     only_kept ? "in the shards but not among those items" : "among those items but not in the shards");
    }
    free(kept);
    free(want);
    free(skip_names);
    return rc;
}

int shard_writer_check_input(const mv_shard_writer *w, const char *const *names, int64_t n) {
    if (!w->finished) {
        if (w->resume_point > n)
            return mv_fail("%s: earlier shards cover %lld items but the input now lists only %lld: the input changed; "
                           "convert again with --fresh", w->dir, (long long)w->resume_point, (long long)n);
        return shard_writer_check_resume(w, names);
    }
    // A finished split: all the items it covers must be the first ones the input lists now.
    int64_t nf = w->n_finished, m = n < nf ? n : nf;
    const char **have = mv_malloc(sizeof(char *) * (size_t)(nf ? nf : 1));
    const char **want = mv_malloc(sizeof(char *) * (size_t)(m ? m : 1));
    for (int64_t i = 0; i < nf; i++) have[i] = w->finished_names + (size_t)i * MV_SAMPLE_NAME_MAX;
    for (int64_t i = 0; i < m; i++) want[i] = names[i];
    const char *only_have, *only_want;
    int rc;
    if (name_sets_differ(have, nf, want, m, &only_have, &only_want)) {
        if (n < nf)
            rc = mv_fail("%s: the finished split holds %lld items but the input now lists only %lld ('%s' is %s): the "
                         "input changed; convert again with --fresh", w->dir, (long long)nf, (long long)n,
                         only_have ? only_have : only_want,
                         only_have ? "in the split but not in the input" : "in the input but not in the split");
        else
            rc = mv_fail("%s: the finished split does not hold the first %lld items the input lists now ('%s' is %s): "
                         "the input changed; convert again with --fresh", w->dir, (long long)nf,
                         only_have ? only_have : only_want,
                         only_have ? "in the split but not among those items" : "among those items but not in the split");
    } else if (n < nf) {  // equal sets of different sizes: a name listed twice
        rc = mv_fail("%s: the finished split holds %lld items but the input now lists only %lld: the input changed; "
                     "convert again with --fresh", w->dir, (long long)nf, (long long)n);
    } else if (n == nf) {
        rc = 1;  // already converted: nothing to write
    } else {
        rc = shard_writer_check_resume(w, names);  // items added after its end: resume after its complete shards
    }
    free(have);
    free(want);
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
    MV_TRY(clear_stale(w));
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
    return mv_fail("%s%s%s; %s %d complete shard%s (%lld samples) stay%s in %s and a re-run resumes after them", msg,
                   why ? ": " : "", why ? why : "", w->n_done == 1 ? "its" : "the", w->n_done, w->n_done == 1 ? "" : "s",
                   (long long)kept, w->n_done == 1 ? "s" : "", w->dir);
}

// Writes the shard's tables and attributes, closes, fsyncs and renames it into place.
static int seal_shard(mv_shard_writer *w) {
    errno = 0;
    int nskip = w->n_skipped - w->cur_skip_start;
    size_t skip_size = MV_SAMPLE_NAME_MAX;  // entries whole: as long as the longest
    for (int i = 0; i < nskip; i++) {
        size_t len = strlen(w->skipped[w->cur_skip_start + i]) + 1;
        if (len > skip_size) skip_size = len;
    }
    char *skip_buf = mv_calloc((size_t)(nskip ? nskip : 1), skip_size);
    for (int i = 0; i < nskip; i++) strcpy(skip_buf + (size_t)i * skip_size, w->skipped[w->cur_skip_start + i]);
    hsize_t sdims[2] = {(hsize_t)w->cur, 2};
    hid_t sp = H5Screate_simple(2, sdims, NULL);
    hid_t dcpl = untimed_dcpl();
    hid_t d = H5Dcreate2(w->file, "sizes", H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    int ok = d >= 0 && (w->cur == 0 || H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->sizes) >= 0);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    ok = ok && write_strings(w->file, "names", w->names, w->cur, MV_SAMPLE_NAME_MAX) == 0;
    ok = ok && write_strings(w->file, "skipped", skip_buf, nskip, skip_size) == 0;
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
    shard_h5_quiet();
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
    push_skipped(w, skip_entry(name, reason));  // whole: never cut (a manifest of valid UTF-8)
    return 0;
}

void shard_writer_set_source(mv_shard_writer *w, const char *key, const char *value) {
    if (w->n_source == MV_MANIFEST_SOURCE_MAX) return;
    w->source[w->n_source].key = mv_strdup(key);
    w->source[w->n_source].value = mv_strdup(value);
    w->n_source++;
}

int shard_writer_close(mv_shard_writer *w) {
    shard_h5_quiet();
    int rc = clear_stale(w);
    if (rc == 0 && w->cur > 0) rc = seal_shard(w);
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
        m.n_source = w->n_source;
        memcpy(m.source, w->source, sizeof m.source);
        rc = manifest_write(w->dir, &m);
    }
    if (rc < 0) shard_writer_abort(w);
    else writer_free(w);
    return rc;
}

void shard_writer_abort(mv_shard_writer *w) {
    if (!w) return;
    shard_h5_quiet();
    if (w->file >= 0) {
        H5Fclose(w->file);
        remove(w->tmp_path);
    }
    writer_free(w);
}
