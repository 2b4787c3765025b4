// Shard format: round trips, interoperability with HDF5's own filters, corruption and
// truncation detection, resume after an interrupted write, manifest parsing.
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "core/h5util.h"
#include "fd_limit.h"
#include "folder_state.h"
#include "data/manifest.h"
#include "data/shard.h"

static void tmpdir(char *out, size_t cap, const char *name) {
    const char *base = getenv("MV_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    snprintf(out, cap, "%s/test_shard/%s", base, name);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
    cr_assert_eq(system(cmd), 0);
}

// A deterministic sample: image pixels from (i, y, x, c), labels cycling through 0..18 and 255.
static void make_sample(mv_image *rgb, mv_image *lab, int i, int h, int w) {
    *rgb = image_alloc(h, w, 3);
    *lab = image_alloc(h, w, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            for (int c = 0; c < 3; c++) rgb->px[(y * w + x) * 3 + c] = (uint8_t)(i * 31 + y * 7 + x * 3 + c * 50);
            int v = (i + y + x) % 20;
            lab->px[y * w + x] = (uint8_t)(v == 19 ? 255 : v);
        }
}

static int sample_h(int i) { return 5 + 3 * i; }
static int sample_w(int i) { return 9 + (i % 3) * 4; }

static void write_split(const char *dir, int n, int per_shard) {
    mv_shard_writer *w = shard_writer_open(dir, "testdomain", "test-map/v1", per_shard);
    cr_assert(w, "%s", mv_last_error());
    for (int i = 0; i < n; i++) {
        mv_image rgb, lab;
        char name[32];
        make_sample(&rgb, &lab, i, sample_h(i), sample_w(i));
        snprintf(name, sizeof name, "sample_%02d", i);
        cr_assert_eq(shard_writer_add(w, name, &rgb, &lab), 0, "%s", mv_last_error());
        image_free(&rgb);
        image_free(&lab);
    }
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());
}

static void check_split(const char *dir, int n) {
    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    cr_assert_eq(split_count(s), n);
    int mh, mw;
    split_max_size(s, &mh, &mw);
    mv_sample smp;
    sample_alloc(&smp, mh, mw);
    for (int i = n - 1; i >= 0; i--) {  // backwards: random access, not a stream
        mv_image rgb, lab;
        make_sample(&rgb, &lab, i, sample_h(i), sample_w(i));
        cr_assert_eq(split_read(&smp, s, i), 0, "%s", mv_last_error());
        char name[32];
        snprintf(name, sizeof name, "sample_%02d", i);
        cr_assert_str_eq(smp.name, name);
        cr_assert_eq(smp.rgb.h, rgb.h);
        cr_assert_eq(smp.rgb.w, rgb.w);
        cr_assert_eq(smp.label.h, lab.h);
        cr_assert_eq(memcmp(smp.rgb.px, rgb.px, (size_t)rgb.h * rgb.w * 3), 0, "image %d differs", i);
        cr_assert_eq(memcmp(smp.label.px, lab.px, (size_t)lab.h * lab.w), 0, "label %d differs", i);
        image_free(&rgb);
        image_free(&lab);
    }
    sample_free(&smp);
    split_close(s);
}

Test(shard, fletcher32_known_values) {
    // Hand-computed: words 0x6162 ('ab'), 0x6364 ('cd'): a = 0xC4C6, b = 0x6162 + 0xC4C6 = 0x12628 -> folded 0x2629.
    const uint8_t abcd[4] = {'a', 'b', 'c', 'd'};
    cr_assert_eq(shard_fletcher32(abcd, 4), 0x2629C4C6u);
    // Odd length: a trailing 'e' is the word 0x6500.
    const uint8_t abcde[5] = {'a', 'b', 'c', 'd', 'e'};
    uint32_t a = 0xC4C6 + 0x6500, b = 0x2629 + 0xC4C6 + 0x6500;  // 0x2629 already folded from 0x12628
    a = (a & 0xffff) + (a >> 16);
    b = (b & 0xffff) + (b >> 16);
    cr_assert_eq(shard_fletcher32(abcde, 5), (b << 16) | a);
}

Test(shard, chunk_roundtrip_and_corruption) {
    size_t n = 10000;
    uint8_t *raw = malloc(n), *back = malloc(n), *enc = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) raw[i] = (uint8_t)((i * 2654435761u) >> 13);
    int64_t len = shard_encode_chunk(&enc, &cap, raw, n, 3);
    cr_assert_gt(len, 4);
    cr_assert_eq(shard_decode_chunk(back, enc, (size_t)len, n, "t"), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(raw, back, n), 0);
    enc[len / 2] ^= 0x10;
    cr_assert_eq(shard_decode_chunk(back, enc, (size_t)len, n, "chunkname"), -1);
    cr_assert(strstr(mv_last_error(), "chunkname"), "%s", mv_last_error());
    cr_assert(strstr(mv_last_error(), "checksum"), "%s", mv_last_error());
    free(raw);
    free(back);
    free(enc);
}

Test(shard, roundtrip_many_shards) {
    char dir[4096];
    tmpdir(dir, sizeof dir, "roundtrip");
    write_split(dir, 7, 3);
    check_split(dir, 7);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, dir), 0, "%s", mv_last_error());
    cr_assert_eq(m.count, 7);
    cr_assert_eq(m.n_shards, 3);
    cr_assert_eq(m.shards[2].count, 1);
    cr_assert_eq(m.shards[2].first, 6);
    cr_assert_str_eq(m.domain, "testdomain");
    cr_assert_str_eq(m.label_map, "test-map/v1");
    cr_assert_eq(m.num_classes, 19);
    cr_assert_eq(m.min_h, 5);
    cr_assert_eq(m.max_h, 5 + 18);
    cr_assert_eq(m.min_w, 9);
    cr_assert_eq(m.max_w, 17);
    cr_assert_str_eq(m.shards[1].file, "shard-00001.h5");
    uint32_t crc;
    int64_t bytes;
    char path[4200];
    snprintf(path, sizeof path, "%s/shard-00001.h5", dir);
    cr_assert_eq(file_crc32(&crc, &bytes, path), 0);
    cr_assert_eq(crc, m.shards[1].crc32);
    cr_assert_eq(bytes, m.shards[1].bytes);
    manifest_free(&m);
    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0);
    cr_assert_eq(split_verify(s, NULL), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, 32, 32);
    cr_assert_eq(split_read(&smp, s, 7), -1);
    cr_assert(strstr(mv_last_error(), "out of range"));
    sample_free(&smp);
    split_close(s);
}

// A split stays open for a whole run: reading its samples must not grow HDF5's metadata cache
// by one entry per sample read (it held every sample's dataset headers, about 45 KB a sample,
// until the run ended). Files opened for reading evict an object's metadata when it is closed.
Test(shard, reading_samples_does_not_grow_the_metadata_cache) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "mdc");
    write_split(dir, 120, 120);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    h5_open_failure why;
    hid_t f = h5_open_quiet(path, &why);
    cr_assert(f >= 0, "%s", mv_last_error());
    size_t entries[2] = {0, 0};
    for (int j = 0; j < 120; j++) {
        for (int part = 0; part < 2; part++) {
            char name[32];
            snprintf(name, sizeof name, "%s/%05d", part ? "label" : "image", j);
            hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
            cr_assert(d >= 0, "%s", name);
            H5Dclose(d);
        }
        if (j == 1 || j == 119) {
            size_t max_size, min_clean, cur_size;
            int n;
            cr_assert(H5Fget_mdc_size(f, &max_size, &min_clean, &cur_size, &n) >= 0);
            entries[j == 119] = (size_t)n;
        }
    }
    H5Fclose(f);
    // The groups' index nodes stay (about one entry per two samples, bounded by the shard's
    // size); the 240 dataset headers must not: kept, they took the cache from 25 entries to 317.
    cr_expect_lt(entries[1], entries[0] + 120, "the metadata cache holds %zu entries after 120 samples, %zu after 2",
                 entries[1], entries[0]);
}

// The open files a split holds: a split of many small shards (converted with a small
// samples_per_shard, or a large dataset) must read under the default `ulimit -n` of 1024, and
// under a lower one. The split has 80 one-sample shards, each read twice in an order that
// revisits old ones, while the process may open 100 more files than it has (more than the split
// keeps open), then only 6 (fewer), then none (the message must say so, not "corrupt").
Test(shard, many_shards_read_within_the_open_file_limit) {
    char dir[4096];
    tmpdir(dir, sizeof dir, "fdlimit");
    enum { n = 80 };
    write_split(dir, n, 1);
    const int spare[3] = {100, 6, 0};
    for (int t = 0; t < 3; t++) {
        mv_split *s;
        cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
        int mh, mw;
        split_max_size(s, &mh, &mw);
        mv_sample smp;
        sample_alloc(&smp, mh, mw);
        int fill[1024];
        struct rlimit saved;
        int nfill = limit_spare_files(spare[t], fill, 1024, &saved), before = spare[t] > 64 ? count_fds() : 0;
        if (spare[t] == 0) {
            cr_assert_lt(split_read(&smp, s, 3), 0);
            cr_expect(strstr(mv_last_error(), "ulimit -n") && !strstr(mv_last_error(), "corrupt"), "%s",
                      mv_last_error());
        }
        for (int pass = 0; pass < 2 && spare[t] > 0; pass++)
            for (int k = 0; k < n; k++) {
                int i = pass ? (k * 37) % n : k;
                cr_assert_eq(split_read(&smp, s, i), 0, "%d spare: %s", spare[t], mv_last_error());
                char name[32];
                snprintf(name, sizeof name, "sample_%02d", i);
                cr_assert_str_eq(smp.name, name);
            }
        if (spare[t] > 64) cr_expect_leq(count_fds() - before, 64, "a split keeps at most 64 shards open");
        restore_files(fill, nfill, &saved);
        sample_free(&smp);
        split_close(s);
    }
}

// Our direct chunks must be what HDF5's filter pipeline reads, and the other way round.
Test(shard, hdf5_filter_interop) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "interop");
    write_split(dir, 2, 4);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    mv_image rgb, lab;
    make_sample(&rgb, &lab, 1, sample_h(1), sample_w(1));
    uint8_t *buf = malloc((size_t)rgb.h * rgb.w * 3);
    hid_t d = H5Dopen2(f, "image/00001", H5P_DEFAULT);
    cr_assert_geq(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0, "HDF5 rejected our chunk");
    cr_assert_eq(memcmp(buf, rgb.px, (size_t)rgb.h * rgb.w * 3), 0);
    hid_t dcpl = H5Dget_create_plist(d);
    cr_assert_eq(H5Pget_nfilters(dcpl), 3);  // shuffle, deflate, fletcher32
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);

    // A dataset written through HDF5's own filters, read by our decoder.
    snprintf(path, sizeof path, "%s/h5filters.h5", dir);
    f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[3] = {(hsize_t)rgb.h, (hsize_t)rgb.w, 3};
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, dims);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 6);
    H5Pset_fletcher32(dcpl);
    hid_t sp = H5Screate_simple(3, dims, NULL);
    d = H5Dcreate2(f, "x", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, rgb.px), 0);
    hsize_t off[3] = {0, 0, 0}, stored = 0;
    uint32_t mask = 1;
    cr_assert_geq(H5Dget_chunk_storage_size(d, off, &stored), 0);
    uint8_t *enc = malloc(stored);
    cr_assert_geq(H5Dread_chunk(d, H5P_DEFAULT, off, &mask, enc), 0);
    cr_assert_eq(mask, 0u);
    memset(buf, 0, (size_t)rgb.h * rgb.w * 3);
    cr_assert_eq(shard_decode_chunk(buf, enc, stored, (size_t)rgb.h * rgb.w * 3, "h5"), 0, "%s", mv_last_error());
    cr_assert_eq(memcmp(buf, rgb.px, (size_t)rgb.h * rgb.w * 3), 0);
    free(enc);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Fclose(f);
    free(buf);
    image_free(&rgb);
    image_free(&lab);
}

// Flips one byte inside sample 1's image chunk; reading it must fail naming shard and sample,
// reading the others must still work, and verify must report the shard's CRC.
Test(shard, corrupt_chunk_detected) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "corrupt");
    write_split(dir, 3, 8);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "image/00001", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    haddr_t addr = 0;
    hsize_t size = 0, off[3];
    unsigned mask;
    cr_assert_geq(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    fputc(c ^ 0x5a, fp);
    fclose(fp);

    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());  // same size: open works
    mv_sample smp;
    sample_alloc(&smp, 64, 64);
    cr_assert_eq(split_read(&smp, s, 0), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 1), -1);
    const char *e = mv_last_error();
    cr_assert(strstr(e, "shard-00000.h5") && strstr(e, "sample_01") && strstr(e, "checksum"), "%s", e);
    cr_assert_eq(split_read(&smp, s, 2), 0, "%s", mv_last_error());
    cr_assert_eq(split_verify(s, NULL), -1);
    cr_assert(strstr(mv_last_error(), "CRC-32"), "%s", mv_last_error());
    sample_free(&smp);
    split_close(s);
}

// A damaged names table can read as zeros (a shard truncated while training reads so beyond its
// end): the error must say the name is unreadable, not print an empty one, still name the
// sample, and end pointing at `maskvim data inspect`, whose own report leaves that hint out.
Test(shard, damaged_names_read_as_unreadable) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "damaged_names");
    write_split(dir, 3, 8);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t d = H5Dopen2(f, "names", H5P_DEFAULT);
    haddr_t names_at = H5Dget_offset(d);  // contiguous: row j at names_at + j * MV_SAMPLE_NAME_MAX
    H5Dclose(d);
    d = H5Dopen2(f, "image/00001", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    haddr_t addr = 0;
    hsize_t size = 0, off[3];
    unsigned mask;
    cr_assert_geq(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    cr_assert_neq(names_at, HADDR_UNDEF);
    FILE *fp = fopen(path, "r+b");
    static const char zeros[MV_SAMPLE_NAME_MAX];
    fseek(fp, (long)(names_at + MV_SAMPLE_NAME_MAX), SEEK_SET);  // sample 1's name
    cr_assert_eq(fwrite(zeros, 1, sizeof zeros, fp), sizeof zeros);
    fseek(fp, (long)(addr + size / 2), SEEK_SET);  // and a byte of its image
    int c = fgetc(fp);
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    fputc(c ^ 0x5a, fp);
    fclose(fp);

    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, 64, 64);
    cr_assert_eq(split_read(&smp, s, 0), 0, "%s", mv_last_error());
    cr_assert_str_eq(smp.name, "sample_00");
    cr_assert_eq(split_read(&smp, s, 1), -1);
    const char *e = mv_last_error();
    cr_assert(!strstr(e, ", )"), "empty name printed: %s", e);
    cr_assert(strstr(e, "shard-00000.h5") && strstr(e, "sample 1 (split index 1, name unreadable)") &&
              strstr(e, "checksum"), "%s", e);
    cr_assert(strstr(e, "maskvim data inspect"), "no hint: %s", e);
    cr_assert_eq(split_verify(s, NULL), -1);
    cr_assert(!strstr(mv_last_error(), "maskvim data inspect"), "hint in inspect's own report: %s", mv_last_error());
    sample_free(&smp);
    split_close(s);
}

// Where row j of a shard's names table starts in the file (the table is contiguous).
// (Opened as the split reader opens it: HDF5 refuses a second open of a file under other access
// properties while the first is open.)
static long names_row_at(const char *path, int j) {
    h5_open_failure why;
    hid_t f = h5_open_quiet(path, &why);
    cr_assert_geq(f, 0);
    hid_t d = H5Dopen2(f, "names", H5P_DEFAULT);
    haddr_t at = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    cr_assert_neq(at, HADDR_UNDEF);
    return (long)(at + (haddr_t)j * MV_SAMPLE_NAME_MAX);
}

static void overwrite_at(const char *path, long at, const void *bytes, size_t n) {
    FILE *fp = fopen(path, "r+b");
    cr_assert(fp);
    fseek(fp, at, SEEK_SET);
    cr_assert_eq(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
}

// A names table overwritten by other bytes (a shard overwritten while a run reads it) reads as a
// string of up to 255 random bytes: a message must say the name is unreadable rather than quote
// them, and so must the sample's name for the messages that come later (a label check). A name
// of printable UTF-8 beyond ASCII is a name; one with a control character or malformed UTF-8
// (an overlong form, a sequence cut short) is not.
Test(shard, binary_names_read_as_unreadable) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "binary_names");
    write_split(dir, 4, 8);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    long row1 = names_row_at(path, 1);
    unsigned char junk[MV_SAMPLE_NAME_MAX];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {   // no NUL before the last byte, as random bytes read
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(1 + (x >> 16) % 255);
    }
    overwrite_at(path, row1, junk, sizeof junk);
    // And sample 1's image unreadable, so that its error names it.
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "image/00001", H5P_DEFAULT), sp = H5Dget_space(d);
    haddr_t addr = 0;
    hsize_t size = 0, off[3];
    unsigned mask;
    cr_assert_geq(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    unsigned char flip[8];
    memset(flip, 0xa5, sizeof flip);
    overwrite_at(path, (long)(addr + size / 2), flip, sizeof flip);
    overwrite_at(path, names_row_at(path, 2), "na\xc3\xafve \xe2\x82\xac", 11);   // "naïve €" and its NUL
    overwrite_at(path, names_row_at(path, 3), "tab\there\0", 10);
    overwrite_at(path, names_row_at(path, 0), "caf\xe9\0", 5);   // a Latin-1 file name

    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, 64, 64);
    cr_assert_eq(split_read(&smp, s, 1), -1);
    const char *e = mv_last_error();
    for (const unsigned char *c = (const unsigned char *)e; *c; c++)
        cr_assert(*c >= 0x20 && *c < 0x7f, "byte 0x%02x at %zu of the message: %s", *c, (size_t)(c - (const unsigned char *)e), e);
    cr_assert(strstr(e, "shard-00000.h5: sample 1 (split index 1, name unreadable)"), "%s", e);
    cr_assert_eq(split_read(&smp, s, 2), 0, "%s", mv_last_error());
    cr_assert_str_eq(smp.name, "na\xc3\xafve \xe2\x82\xac");
    cr_assert_eq(split_read(&smp, s, 3), 0, "%s", mv_last_error());
    cr_assert_str_eq(smp.name, "tab\\x09here");   // a few other bytes: shown escaped
    cr_assert_eq(split_read(&smp, s, 0), 0, "%s", mv_last_error());
    cr_assert_str_eq(smp.name, "caf\\xe9");
    overwrite_at(path, names_row_at(path, 3), "\xc0\xafx\0", 4);   // overlong '/'
    split_close(s);
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 3), 0, "%s", mv_last_error());
    cr_assert_str_eq(smp.name, "name unreadable");
    overwrite_at(path, names_row_at(path, 3), "ok\xe2\x82\0", 5);   // cut short
    split_close(s);
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 3), 0, "%s", mv_last_error());
    cr_assert_str_eq(smp.name, "name unreadable");
    sample_free(&smp);
    split_close(s);
}

// The same as it happens: a shard truncated after the reader opened it (split_open's size check
// passed). Reads past the new end come back as zeros, names included.
Test(shard, truncated_while_open_names_sample) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "truncated_open");
    write_split(dir, 8, 4);
    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, 64, 64);
    cr_assert_eq(split_read(&smp, s, 4), 0, "%s", mv_last_error());  // shard 1 is open now
    snprintf(path, sizeof path, "%s/shard-00001.h5", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 8), 0);
    int failed = 0;
    for (int i = 4; i < 8; i++) {
        if (split_read(&smp, s, i) == 0) continue;
        failed++;
        const char *e = mv_last_error();
        char index[32];
        snprintf(index, sizeof index, "split index %d", i);
        cr_assert(!strstr(e, ", )") && strstr(e, index) && strstr(e, "shard-00001.h5"), "%s", e);
    }
    cr_assert_gt(failed, 0, "no sample of the truncated shard failed");
    sample_free(&smp);
    split_close(s);
}

Test(shard, truncated_shard_detected) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "truncated");
    write_split(dir, 4, 2);
    snprintf(path, sizeof path, "%s/shard-00001.h5", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 2), 0);
    mv_split *s;
    cr_assert_eq(split_open(&s, dir), -1);
    cr_assert(strstr(mv_last_error(), "shard-00001.h5") && strstr(mv_last_error(), "truncated"), "%s",
              mv_last_error());
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    cr_assert_eq(remove(path), 0);
    cr_assert_eq(split_open(&s, dir), -1);
    cr_assert(strstr(mv_last_error(), "shard-00000.h5") && strstr(mv_last_error(), "missing"), "%s", mv_last_error());
}

Test(shard, bad_samples_rejected) {
    char dir[4096];
    tmpdir(dir, sizeof dir, "bad");
    mv_shard_writer *w = shard_writer_open(dir, "d", "m", 4);
    cr_assert(w);
    mv_image rgb, lab;
    make_sample(&rgb, &lab, 0, 6, 7);
    lab.px[2 * 7 + 3] = 40;
    cr_assert_eq(shard_writer_add(w, "badlabel", &rgb, &lab), -1);
    cr_assert(strstr(mv_last_error(), "badlabel") && strstr(mv_last_error(), "value 40") &&
              strstr(mv_last_error(), "y 2, x 3"), "%s", mv_last_error());
    mv_image small = image_alloc(6, 6, 1);
    memset(small.px, 0, 36);
    cr_assert_eq(shard_writer_add(w, "mismatch", &rgb, &small), -1);
    cr_assert(strstr(mv_last_error(), "mismatch") && strstr(mv_last_error(), "6x6"), "%s", mv_last_error());
    shard_writer_abort(w);
    image_free(&small);
    image_free(&rgb);
    image_free(&lab);
}

// An interrupted run leaves its sealed shards; resuming continues after them and the result is
// identical to an uninterrupted run, skipped items included.
Test(shard, resume_after_interruption) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "resume");
    mv_shard_writer *w = shard_writer_open(dir, "testdomain", "test-map/v1", 2);
    mv_image rgb, lab;
    // Input items: 0, 1, (skip "broken"), 2 | 3, 4 -> shard 0 = {0, 1}, shard 1 = {broken skipped, 2, 3}...
    // Here with 2 per shard: shard 0 = samples 0,1; shard 1 = skip + samples 2,3; then sample 4 pending.
    for (int i = 0; i < 5; i++) {
        if (i == 2) shard_writer_skip(w, "broken", "corrupt PNG");
        make_sample(&rgb, &lab, i, sample_h(i), sample_w(i));
        char name[32];
        snprintf(name, sizeof name, "sample_%02d", i);
        cr_assert_eq(shard_writer_add(w, name, &rgb, &lab), 0);
        image_free(&rgb);
        image_free(&lab);
    }
    shard_writer_abort(w);  // "killed": sample 4's shard is only a temporary
    snprintf(path, sizeof path, "%s/shard-00002.h5.tmp", dir);
    cr_assert_neq(access(path, F_OK), 0, "the temporary must be gone");
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cr_assert_neq(access(path, F_OK), 0, "no manifest for an unfinished split");

    w = shard_writer_resume(dir, "otherdomain", "test-map/v1", 2);
    cr_assert_null(w, "a different domain must not resume");
    cr_assert(strstr(mv_last_error(), "otherdomain"), "%s", mv_last_error());
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    cr_assert_eq(shard_writer_resume_point(w), 5);  // 4 samples + 1 skipped item
    make_sample(&rgb, &lab, 4, sample_h(4), sample_w(4));
    cr_assert_eq(shard_writer_add(w, "sample_04", &rgb, &lab), 0);
    image_free(&rgb);
    image_free(&lab);
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());
    check_split(dir, 5);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, dir), 0);
    cr_assert_eq(m.n_skipped, 1);
    cr_assert_str_eq(m.skipped[0], "broken: corrupt PNG");
    cr_assert_eq(m.shards[1].skipped, 1);
    cr_assert_eq(m.n_shards, 3);
    manifest_free(&m);

    // Re-running over a complete split keeps the full shards and rewrites only the last one.
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert_eq(shard_writer_resume_point(w), 5);
    shard_writer_abort(w);
    // A fresh open clears everything.
    w = shard_writer_open(dir, "testdomain", "test-map/v1", 2);
    cr_assert_eq(shard_writer_resume_point(w), 0);
    cr_assert_eq(shard_writer_close(w), 0);
    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0);
    cr_assert_eq(split_count(s), 0);
    split_close(s);
}


// A resumed writer touches nothing in the folder before its first write: a producer that refuses
// the resume and aborts leaves a finished split, or an unfinished one's partial shard and
// temporaries, exactly as they were.
Test(shard, resume_removes_nothing_before_the_first_write) {
    char dir[4096], path[4200];
    static char before[8192], after[8192];
    tmpdir(dir, sizeof dir, "resume_untouched");
    write_split(dir, 5, 2);  // shards 0, 1 full, shard 2 partial, manifest
    folder_state(before, sizeof before, dir);
    mv_shard_writer *w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    cr_assert_eq(shard_writer_resume_point(w), 4);
    shard_writer_abort(w);
    folder_state(after, sizeof after, dir);
    cr_assert_str_eq(after, before, "resume + abort changed a finished split");
    check_split(dir, 5);

    // Unfinished: no manifest, a temporary left by a crash.
    unfinish_split(dir);
    folder_state(before, sizeof before, dir);
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    shard_writer_abort(w);
    folder_state(after, sizeof after, dir);
    cr_assert_str_eq(after, before, "resume + abort changed an unfinished split");
    // The first write clears them: closing at once leaves the 4 samples of the complete shards.
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());
    cr_assert_neq(access(path, F_OK), 0, "the temporary stays after the first write");
    snprintf(path, sizeof path, "%s/shard-00002.h5", dir);
    cr_assert_neq(access(path, F_OK), 0, "the partial shard stays after the first write");
    check_split(dir, 4);
}

// shard_writer_check_input against a finished split: the same items (as a set, in any order of
// samples and skipped items) -> 1; more after them -> 0 (resume); fewer, or others -> refused
// naming an item. Against an unfinished one: only the complete shards' items count.
Test(shard, check_input_finished_and_unfinished) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "check_input");
    mv_shard_writer *w = shard_writer_open(dir, "testdomain", "test-map/v1", 2);
    mv_image rgb, lab;
    for (int i = 0; i < 4; i++) {  // items: s00, bad, s01, s02, s03
        if (i == 1) shard_writer_skip(w, "bad", "corrupt PNG");
        char name[32];
        snprintf(name, sizeof name, "s%02d", i);
        make_sample(&rgb, &lab, i, sample_h(i), sample_w(i));
        cr_assert_eq(shard_writer_add(w, name, &rgb, &lab), 0, "%s", mv_last_error());
        image_free(&rgb);
        image_free(&lab);
    }
    shard_writer_skip(w, "worse", "truncated");  // after the last shard: in the manifest only
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());

    const char *same[] = {"s00", "bad", "s01", "s02", "s03", "worse"};
    const char *more[] = {"s00", "bad", "s01", "s02", "s03", "worse", "zz"};
    const char *other[] = {"s00", "bad", "s01", "s02", "s03", "xx"};
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    cr_assert_eq(shard_writer_finished(w), 1);
    cr_assert_eq(shard_writer_check_input(w, same, 6), 1, "%s", mv_last_error());
    cr_assert_eq(shard_writer_check_input(w, more, 7), 0, "%s", mv_last_error());
    cr_assert_eq(shard_writer_check_input(w, same, 5), -1);
    cr_assert(strstr(mv_last_error(), "'worse'") && strstr(mv_last_error(), "--fresh"), "%s", mv_last_error());
    cr_assert_eq(shard_writer_check_input(w, other, 6), -1);
    cr_assert(strstr(mv_last_error(), "'worse'"), "%s", mv_last_error());
    shard_writer_abort(w);

    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cr_assert_eq(remove(path), 0);
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    cr_assert_eq(shard_writer_finished(w), 0);
    cr_assert_eq(shard_writer_resume_point(w), 5);  // s00..s03 and "bad"
    cr_assert_eq(shard_writer_check_input(w, other, 6), 0, "%s", mv_last_error());
    cr_assert_eq(shard_writer_check_input(w, same, 4), -1);
    cr_assert(strstr(mv_last_error(), "cover 5") && strstr(mv_last_error(), "--fresh"), "%s", mv_last_error());
    const char *renamed[] = {"s00", "bad", "s01", "s2", "s03"};
    cr_assert_eq(shard_writer_check_input(w, renamed, 5), -1);
    cr_assert(strstr(mv_last_error(), "'s02'"), "%s", mv_last_error());
    shard_writer_abort(w);
}

// Skipped items keep their exact names and whole reasons: a name holding ": " (or starting with
// a quote) is told from its reason in the manifest and in the shards, so a re-run over the
// finished split, or a resume from its complete shards, accepts the same input; a reason longer
// than a sample name, in UTF-8, is neither cut nor cut in half (the manifest stays valid UTF-8).
Test(shard, skipped_names_with_colons_and_long_utf8_reasons) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "skipped_names");
    char reason[700] = "";
    while (strlen(reason) < 600) strcat(reason, "d\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac ");  // 2- and 3-byte characters
    const char *a = "city: x/a", *b = "\"quoted\\\": b", *c = "late: c";
    mv_shard_writer *w = shard_writer_open(dir, "testdomain", "test-map/v1", 2);
    mv_image rgb, lab;
    for (int i = 0; i < 4; i++) {  // items: s00, a, b, s01, s02, s03, c
        if (i == 1) {
            shard_writer_skip(w, a, reason);
            shard_writer_skip(w, b, "corrupt: PNG");
        }
        char name[32];
        snprintf(name, sizeof name, "s%02d", i);
        make_sample(&rgb, &lab, i, sample_h(i), sample_w(i));
        cr_assert_eq(shard_writer_add(w, name, &rgb, &lab), 0, "%s", mv_last_error());
        image_free(&rgb);
        image_free(&lab);
    }
    shard_writer_skip(w, c, "truncated");  // after the last shard: in the manifest only
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, dir), 0, "%s", mv_last_error());
    cr_assert_eq(m.n_skipped, 3);
    char want[1024];
    snprintf(want, sizeof want, "\"city: x/a\": %s", reason);
    cr_assert_str_eq(m.skipped[0], want, "the reason whole");
    cr_assert_str_eq(m.skipped[1], "\"\\\"quoted\\\\\\\": b\": corrupt: PNG");
    cr_assert_str_eq(m.skipped[2], "\"late: c\": truncated");
    manifest_free(&m);

    const char *same[] = {"s00", a, b, "s01", "s02", "s03", c};
    const char *more[] = {"s00", a, b, "s01", "s02", "s03", c, "zz"};
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    cr_assert_eq(shard_writer_check_input(w, same, 7), 1, "%s", mv_last_error());
    cr_assert_eq(shard_writer_check_input(w, more, 8), 0, "%s", mv_last_error());
    shard_writer_abort(w);
    // Unfinished: the names come from the shards' skipped entries, which hold the reason whole.
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cr_assert_eq(remove(path), 0);
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    cr_assert_eq(shard_writer_resume_point(w), 6);  // s00..s03, a and b
    cr_assert_eq(shard_writer_check_input(w, same, 7), 0, "%s", mv_last_error());
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());
    cr_assert_eq(manifest_read(&m, dir), 0, "%s", mv_last_error());
    cr_assert_eq(m.n_skipped, 2);
    cr_assert_str_eq(m.skipped[0], want, "the reason whole after a resume");
    manifest_free(&m);
}

// Entries written by earlier versions ("name: reason", cut at 255 bytes) still read back: the
// name is what comes before the first ": ", and a UTF-8 character the cut split is dropped.
Test(shard, skipped_entries_of_earlier_versions) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "skipped_old");
    mv_shard_writer *w = shard_writer_open(dir, "testdomain", "test-map/v1", 1);
    mv_image rgb, lab;
    make_sample(&rgb, &lab, 0, sample_h(0), sample_w(0));
    cr_assert_eq(shard_writer_add(w, "s00", &rgb, &lab), 0, "%s", mv_last_error());
    shard_writer_skip(w, "old", "x");
    cr_assert_eq(shard_writer_add(w, "s01", &rgb, &lab), 0, "%s", mv_last_error());
    image_free(&rgb);
    image_free(&lab);
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());
    // Shard 1's entry rewritten as the old writer left it: 256-byte strings, a 3-byte
    // character cut after its first byte at the end.
    char entry[256] = "old: ";
    while (strlen(entry) < 254) strcat(entry, "a");
    entry[254] = '\xe2';
    snprintf(path, sizeof path, "%s/shard-00001.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    H5Ldelete(f, "skipped", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 256);
    hsize_t dims[1] = {1};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "skipped", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, entry), 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    cr_assert_eq(remove(path), 0);
    w = shard_writer_resume(dir, "testdomain", "test-map/v1", 1);
    cr_assert(w, "%s", mv_last_error());
    cr_assert_eq(shard_writer_resume_point(w), 3);
    const char *same[] = {"s00", "old", "s01"};
    cr_assert_eq(shard_writer_check_input(w, same, 3), 0, "%s", mv_last_error());
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, dir), 0, "%s", mv_last_error());
    cr_assert_eq(m.n_skipped, 1);
    cr_assert_eq(strlen(m.skipped[0]), 254, "the cut character dropped: %zu", strlen(m.skipped[0]));
    manifest_free(&m);
}

Test(shard, manifest_errors_name_file_and_line) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "manifest");
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\n  \"format\": \"maskvim-split\",\n  \"version\": 1,\n  \"domain\" \"x\"\n}\n");
    fclose(f);
    mv_manifest m;
    cr_assert_eq(manifest_read(&m, dir), -1);
    cr_assert(strstr(mv_last_error(), "manifest.json") && strstr(mv_last_error(), "line 4"), "%s", mv_last_error());
    write_split(dir, 3, 2);
    cr_assert_eq(manifest_read(&m, dir), 0);
    m.shards[1].first = 5;  // inconsistent: write then read must reject it
    manifest_write(dir, &m);
    manifest_free(&m);
    cr_assert_eq(manifest_read(&m, dir), -1);
    cr_assert(strstr(mv_last_error(), "shards[1]"), "%s", mv_last_error());
}

// Makes the manifest of `dir` agree with shard k's file as it is now (size and CRC), so that
// only the shard's own attributes can tell that it does not belong there.
static void bless_shard(const char *dir, int k) {
    mv_manifest m;
    char path[4200];
    cr_assert_eq(manifest_read(&m, dir), 0, "%s", mv_last_error());
    snprintf(path, sizeof path, "%s/%s", dir, m.shards[k].file);
    cr_assert_eq(file_crc32(&m.shards[k].crc32, &m.shards[k].bytes, path), 0, "%s", mv_last_error());
    cr_assert_eq(manifest_write(dir, &m), 0, "%s", mv_last_error());
    manifest_free(&m);
}

static void copy_file(const char *from, const char *to) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0);
}

// A shard from another split (other domain), from another place in the same split, or of another
// format version is refused by name, even when the manifest's size and CRC were made to match.
Test(shard, foreign_shard_refused) {
    char a[4096], b[4096], from[4200], to[4200];
    tmpdir(a, sizeof a, "foreign_a");
    tmpdir(b, sizeof b, "foreign_b");
    write_split(a, 4, 2);
    mv_shard_writer *w = shard_writer_open(b, "otherdomain", "test-map/v1", 2);
    cr_assert(w, "%s", mv_last_error());
    for (int i = 0; i < 2; i++) {
        mv_image rgb, lab;
        make_sample(&rgb, &lab, i, sample_h(i), sample_w(i));
        cr_assert_eq(shard_writer_add(w, i ? "sample_01" : "sample_00", &rgb, &lab), 0, "%s", mv_last_error());
        image_free(&rgb);
        image_free(&lab);
    }
    cr_assert_eq(shard_writer_close(w), 0, "%s", mv_last_error());

    mv_split *s;
    mv_sample smp;
    sample_alloc(&smp, 64, 64);
    // 1. Another domain's shard in place of shard 0.
    snprintf(from, sizeof from, "%s/shard-00000.h5", b);
    snprintf(to, sizeof to, "%s/shard-00000.h5", a);
    copy_file(from, to);
    bless_shard(a, 0);
    cr_assert_eq(split_open(&s, a), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 0), -1, "a shard of another domain was read");
    cr_assert(strstr(mv_last_error(), "shard-00000.h5") && strstr(mv_last_error(), "otherdomain"), "%s",
              mv_last_error());
    cr_assert_eq(split_verify(s, NULL), -1);
    split_close(s);
    // 2. Shard 0 of the same split copied over shard 1 (samples 2, 3 would silently be 0, 1).
    write_split(a, 4, 2);
    snprintf(from, sizeof from, "%s/shard-00000.h5", a);
    snprintf(to, sizeof to, "%s/shard-00001.h5", a);
    copy_file(from, to);
    bless_shard(a, 1);
    cr_assert_eq(split_open(&s, a), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 1), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 2), -1, "shard 0's samples were read as samples 2 and 3");
    cr_assert(strstr(mv_last_error(), "shard-00001.h5") && strstr(mv_last_error(), "first sample 0"), "%s",
              mv_last_error());
    split_close(s);
    // 3. A shard of another format version.
    write_split(a, 4, 2);
    snprintf(to, sizeof to, "%s/shard-00001.h5", a);
    hid_t f = H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t at = H5Aopen(f, "version", H5P_DEFAULT);
    int64_t v2 = 2;
    cr_assert(at >= 0 && H5Awrite(at, H5T_NATIVE_INT64, &v2) >= 0);
    H5Aclose(at);
    H5Fclose(f);
    bless_shard(a, 1);
    cr_assert_eq(split_open(&s, a), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 0), 0, "%s", mv_last_error());
    cr_assert_eq(split_read(&smp, s, 3), -1, "a version-2 shard was read as version 1");
    cr_assert(strstr(mv_last_error(), "shard-00001.h5") && strstr(mv_last_error(), "version 2"), "%s", mv_last_error());
    split_close(s);
    sample_free(&smp);
}

// A shard written by another tool (through HDF5's own filters, CRC and manifest made to agree)
// can hold a label value that is no class: reading passes it on, verification names it.
Test(shard, verify_names_label_outside_classes) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "bad_label");
    write_split(dir, 3, 2);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t d = H5Dopen2(f, "label/00001", H5P_DEFAULT);
    cr_assert_geq(d, 0);
    int h = sample_h(1), w = sample_w(1);
    uint8_t *lab = malloc((size_t)h * w);
    cr_assert_geq(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab), 0);
    lab[2 * w + 3] = 77;
    cr_assert_geq(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab), 0);
    H5Dclose(d);
    H5Fclose(f);
    free(lab);
    bless_shard(dir, 0);

    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, 32, 32);
    cr_assert_eq(split_read(&smp, s, 1), 0, "%s", mv_last_error());
    cr_assert_eq(smp.label.px[2 * w + 3], 77);
    sample_free(&smp);
    cr_assert_eq(split_verify(s, NULL), -1);
    const char *e = mv_last_error();
    cr_assert(strstr(e, "shard-00000.h5: sample 1 (split index 1, sample_01): label value 77 at (y 2, x 3) is neither "
                        "a class 0..18 nor 255"), "%s", e);
    cr_assert(strstr(e, "1 problem found"), "%s", e);
    split_close(s);
}

// Sample datasets another tool wrote in another form are named for what they are: a 4-channel
// image read as "bytes exceed the split's largest image (manifest wrong?)" and a 16-bit label as
// a chunk that does not inflate.
Test(shard, foreign_sample_forms_are_named) {
    const char *cases[2][3] = {{"image/00001", "has 4 channels, a shard image has 3"}, {"label/00001", "is not 8-bit"}};
    for (int t = 0; t < 2; t++) {
        char dir[4096], path[4200], name[32];
        snprintf(name, sizeof name, "foreign_form_%d", t);
        tmpdir(dir, sizeof dir, name);
        write_split(dir, 3, 2);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        cr_assert_geq(f, 0);
        cr_assert_geq(H5Ldelete(f, cases[t][0], H5P_DEFAULT), 0);
        hsize_t dims[3] = {(hsize_t)sample_h(1), (hsize_t)sample_w(1), 4};
        hid_t sp = H5Screate_simple(t ? 2 : 3, dims, NULL);
        hid_t d = H5Dcreate2(f, cases[t][0], t ? H5T_STD_U16LE : H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
        cr_assert_geq(d, 0);
        H5Dclose(d);
        H5Sclose(sp);
        H5Fclose(f);
        bless_shard(dir, 0);
        mv_split *s;
        cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
        mv_sample smp;
        sample_alloc(&smp, 32, 32);
        cr_assert_lt(split_read(&smp, s, 1), 0);
        cr_expect(strstr(mv_last_error(), cases[t][1]), "%s", mv_last_error());
        sample_free(&smp);
        split_close(s);
    }
}

// A shard that another process holds open for writing (HDF5's file locking: an exclusive flock,
// as h5py's 'r+' takes; an open file description of our own conflicts the same way) is locked,
// not corrupt: reading it and resuming a writer over it say so (they called it "truncated or
// corrupt", and the resume rewrote it), and a shared lock (another reader) is no obstacle.
Test(shard, locked_shard_is_not_corrupt) {
    char dir[4096], path[4200];
    tmpdir(dir, sizeof dir, "locked");
    write_split(dir, 5, 2);   // shards 0, 1 full, shard 2 partial
    snprintf(path, sizeof path, "%s/shard-00001.h5", dir);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    mv_sample smp;
    int mh, mw;
    split_max_size(s, &mh, &mw);
    sample_alloc(&smp, mh, mw);
    cr_expect_eq(split_read(&smp, s, 0), 0, "%s", mv_last_error());   // shard 0 is free
    cr_expect_lt(split_read(&smp, s, 2), 0);
    cr_expect(strstr(mv_last_error(), "shard-00001.h5 is locked by another process (HDF5 file locking"), "%s",
              mv_last_error());
    cr_expect_null(strstr(mv_last_error(), "corrupt"), "%s", mv_last_error());
    unfinish_split(dir);   // the writer adopts the complete shards again
    mv_shard_writer *w = shard_writer_resume(dir, "testdomain", "test-map/v1", 2);
    cr_expect_null(w, "a resume over a locked shard went on (it rewrites what it cannot adopt)");
    cr_expect(strstr(mv_last_error(), "shard-00001.h5 is locked by another process"), "%s", mv_last_error());
    if (w) shard_writer_abort(w);
    // A reader's shared lock: nothing in the way.
    cr_assert_eq(flock(fd, LOCK_SH), 0);
    cr_expect_eq(split_read(&smp, s, 2), 0, "%s", mv_last_error());
    close(fd);
    sample_free(&smp);
    split_close(s);
}
