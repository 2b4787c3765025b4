// `maskvim data`: dataset tools. convert (public datasets -> HDF5 shards), inspect (print a
// split's manifest and verify every checksum), bench-loader (loader throughput), and the
// synthetic-domain and corruption generators (synth, corrupt: data/synth_cli.c, corrupt_cli.c).
#include "core/clock.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "core/error.h"
#include "core/fs.h"
#include "data/convert.h"
#include "data/corrupt.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "data/synth.h"
#include "launch/commands.h"
#include "core/suggest.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim data SUBCOMMAND [options]\n\n"
        "  convert --dataset NAME --root DIR --split SPLIT --out DIR [--workers N] [--skip-bad]\n"
        "          [--samples-per-shard N] [--limit N] [--fresh] [--list FILE]\n"
        "      NAME: cityscapes | bdd100k | mapillary | gtav | synthia (layouts: docs/data.md).\n"
        "      --list FILE: gtav, synthia: the split is the file names FILE lists (RobustNet's\n"
        "      split_data/gtav_split_val.txt, say), read from the flat raw download under --root.\n"
        "      Re-running resumes after the complete shards of an interrupted run (--fresh: start over).\n"
        "      --skip-bad skips unreadable or inconsistent items and lists them in the manifest.\n"
        "      --workers N: decoding threads, 1-256 (default 2). --samples-per-shard N: samples\n"
        "      per shard file (default 64; resuming needs the same N). --limit N: the first N items.\n"
        "  inspect DIR.. [--no-verify]\n"
        "      Prints each split's manifest, then reads every sample (Fletcher32 per chunk, label\n"
        "      values within the classes or 255) and checks every shard's CRC-32. Exit status 1\n"
        "      when anything is wrong in any of the folders.\n"
        "  bench-loader [--dir DIR] [--count N] [--size HxW] [--crop HxW] [--threads LIST]\n"
        "               [--batches N] [--batch B]\n"
        "      Samples/s of the training pipeline (default 1024x2048 samples, 512x1024 crops,\n"
        "      threads 1,2). Writes a synthetic split to DIR (default /tmp/maskvim-bench-loader),\n"
        "      which must be new, empty or bench-loader's own from an earlier run.\n"
        "  synth ...     synthetic domains (maskvim data synth --help)\n"
        "  corrupt ...   Cityscapes-C style corruptions (maskvim data corrupt --help)\n");
}

// "; did you mean '--workers'?" for a mistyped option of convert, inspect or bench-loader (one
// usage text lists them all), or "".
static const char *hint_of(const char *arg) {
    static char hint[64];
    return cli_option_hint(hint, sizeof hint, arg, usage);
}

static int fail_exit(void) {
    fprintf(stderr, "maskvim data: %s\n", mv_last_error());
    return 1;
}

// A usage error (an unknown option, one without its value): status 2, as every command gives.
static int usage_exit(void) {
    fail_exit();
    return 2;
}

// ---------------------------------------------------------------------------------------

static int data_convert(int argc, char **argv) {
    mv_convert_opts o = {0};
    o.workers = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--skip-bad")) o.skip_bad = 1;
        else if (!strcmp(a, "--fresh")) o.fresh = 1;
        else if (!v) { mv_fail("convert: option %s needs a value (or is unknown)%s", a, hint_of(a)); return usage_exit(); }
        else if (!strcmp(a, "--dataset")) o.dataset = argv[++i];
        else if (!strcmp(a, "--root")) o.root = argv[++i];
        else if (!strcmp(a, "--split")) o.split = argv[++i];
        else if (!strcmp(a, "--out")) o.out = argv[++i];
        else if (!strcmp(a, "--workers")) { if (cli_option_long(a, argv[++i], 1, 256, &x) < 0) return usage_exit(); o.workers = (int)x; }
        else if (!strcmp(a, "--samples-per-shard")) { if (cli_option_long(a, argv[++i], 1, 1 << 20, &x) < 0) return usage_exit(); o.samples_per_shard = (int)x; }
        else if (!strcmp(a, "--list")) o.list_file = argv[++i];
        else if (!strcmp(a, "--limit")) { if (cli_option_long(a, argv[++i], 1, 1L << 40, &x) < 0) return usage_exit(); o.limit = x; }
        else { mv_fail("convert: unknown option %s%s", a, hint_of(a)); return usage_exit(); }
    }
    if (!o.dataset || !o.root || !o.split || !o.out) {
        fprintf(stderr, "maskvim data convert: --dataset, --root, --split and --out are required\n\n");
        usage(stderr);
        return 2;
    }
    mv_convert_stats st;
    if (convert_run(&st, &o, stderr) < 0) return fail_exit();
    if (st.up_to_date) return 0;   // a finished split of exactly these items, said on stderr: nothing done
    printf("converted %s %s -> %s: %lld sample%s written, %lld resumed, %lld skipped", o.dataset, o.split, o.out,
           (long long)st.written, st.written == 1 ? "" : "s", (long long)st.resumed, (long long)st.skipped);
    if (st.absent) printf(" (%lld of them listed but absent from the download)", (long long)st.absent);
    if (st.labels_resized)
        printf(", %lld label%s resized to %s image", (long long)st.labels_resized, st.labels_resized == 1 ? "" : "s",
               st.labels_resized == 1 ? "its" : "their");
    if (st.labels_unlisted)
        printf(", %lld label%s with ids outside the class table (mapped to ignore, 255)", (long long)st.labels_unlisted,
               st.labels_unlisted == 1 ? "" : "s");
    if (st.labels_empty)
        printf(", %lld label%s without any annotated pixel (all 255)", (long long)st.labels_empty,
               st.labels_empty == 1 ? "" : "s");
    printf(" (%.1f s)\n", st.seconds);
    // Nothing to learn or score: a split whose labels are placeholders (a test split), or a
    // label map that does not fit these files.
    if (st.written > 0 && st.labels_empty == st.written)
        fprintf(stderr, "maskvim data convert: warning: no label written by this run has a single annotated pixel "
                        "(every one is 255, ignore): is this a split without public labels, or the labels of "
                        "another dataset?\n");
    return 0;
}

// One split folder: its manifest, then (verify) every shard's CRC and every sample. 0 / -1.
static int inspect_split(const char *dir, int verify) {
    mv_manifest m;
    if (manifest_read(&m, dir) < 0) return -1;
    manifest_print(stdout, &m, dir);
    manifest_free(&m);
    if (!verify) return 0;
    mv_split *s;
    if (split_open(&s, dir) < 0) return -1;
    printf("verifying...\n");
    int rc = split_verify(s, stdout);
    split_close(s);
    if (rc < 0) return -1;
    printf("all shards and samples verified\n");
    return 0;
}

// Several folders (data/*/val) are each inspected, and a bad one does not stop the others.
static int data_inspect(int argc, char **argv) {
    int verify = 1, n_dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-verify")) verify = 0;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else if (argv[i][0] == '-') { mv_fail("inspect: unknown option %s%s", argv[i], hint_of(argv[i])); return usage_exit(); }
        else n_dirs++;
    }
    if (!n_dirs) {
        fprintf(stderr, "maskvim data inspect: which split folder?\n");
        return 2;
    }
    int failed = 0, seen = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        if (seen++) printf("\n");
        if (inspect_split(argv[i], verify) < 0) failed += fail_exit();
    }
    if (failed && n_dirs > 1) fprintf(stderr, "maskvim data inspect: %d of %d split folders failed\n", failed, n_dirs);
    return failed ? 1 : 0;
}

// ---------------------------------------------------------------------------------------
// bench-loader

// CPU seconds used by the whole process (all threads): robust to other jobs on the machine.
static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
           1e-6 * (double)u.ru_stime.tv_usec;
}

// Marks a folder as bench-loader's own: it may rewrite the split there.
#define BENCH_MARK ".maskvim-bench-loader"

// 1 when `dir` is missing, empty or bench-loader's own (its mark, or the manifest of a bench
// split written before the mark existed); 0 when it holds anything else, which the bench split
// would replace or mix with (a converted split given as --dir by mistake): *what names an entry.
static int bench_dir_free(const char *dir, char *what, size_t cap) {
    char path[4200];
    snprintf(path, sizeof path, "%s/" BENCH_MARK, dir);
    if (access(path, F_OK) == 0) return 1;
    mv_manifest m;
    if (manifest_read(&m, dir) == 0) {
        int ours = !strcmp(m.domain, "bench") && !strcmp(m.label_map, "synthetic/v1");
        snprintf(what, cap, "a split of domain '%s' (%lld samples)", m.domain, (long long)m.count);
        manifest_free(&m);
        return ours;
    }
    mv_clear_error();
    DIR *d = opendir(dir);
    if (!d) return 1;  // missing (created below); a folder that cannot be listed fails there
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(what, cap, "'%s'", e->d_name);
            empty = 0;
        }
    closedir(d);
    return empty;
}

// A bench split of `count` synthetic street scenes (the synth generator), written once into a
// folder that is empty or bench-loader's own: any other is refused, never overwritten.
static int bench_split(const char *dir, int count, int h, int w) {
    char what[512], path[4200];
    if (!bench_dir_free(dir, what, sizeof what))
        return mv_fail("bench-loader: %s holds %s, not a split bench-loader wrote; it writes its own split there and "
                       "would replace what is there: give --dir a new or empty folder", dir, what);
    mv_manifest m;
    if (manifest_read(&m, dir) == 0) {
        int ok = m.count == count && m.max_h == h && m.max_w == w;
        manifest_free(&m);
        if (ok) return 0;
    }
    mv_clear_error();
    MV_TRY(mv_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/" BENCH_MARK, dir);
    FILE *mark = fopen(path, "w");
    if (!mark) return mv_fail("%s: cannot create: %s", path, strerror(errno));
    fclose(mark);
    mv_shard_writer *wr = shard_writer_open(dir, "bench", "synthetic/v1", 16);
    if (!wr) return -1;
    fprintf(stderr, "[bench-loader] writing %d synthetic %dx%d samples to %s\n", count, h, w, dir);
    for (int i = 0; i < count; i++) {
        mv_image img = image_alloc(h, w, 3), lab = image_alloc(h, w, 1);
        char name[32];
        snprintf(name, sizeof name, "bench_%04d", i);
        int rc = synth_render(img.px, lab.px, 1234, i % synth_num_domains(), (uint64_t)i, h, w);
        if (rc == 0) rc = shard_writer_add(wr, name, &img, &lab);
        image_free(&img);
        image_free(&lab);
        if (rc < 0) {
            shard_writer_abort(wr);
            return -1;
        }
    }
    return shard_writer_close(wr);
}

static int data_bench_loader(int argc, char **argv) {
    const char *dir = "/tmp/maskvim-bench-loader", *threads = "1,2";
    int h = 1024, w = 2048, ch = 512, cw = 1024;
    long count = 16, batches = 12, batch = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (i + 1 >= argc) { mv_fail("bench-loader: option %s needs a value (or is unknown)%s", a, hint_of(a)); return usage_exit(); }
        const char *v = argv[++i];
        if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--threads")) threads = v;
        else if (!strcmp(a, "--size")) { if (cli_option_hw(a, v, SYNTH_MIN_SIDE, SYNTH_MAX_SIDE, &h, &w) < 0) return usage_exit(); }
        else if (!strcmp(a, "--crop")) { if (cli_option_hw(a, v, 1, MV_IMAGE_MAX_SIDE, &ch, &cw) < 0) return usage_exit(); }
        else if (!strcmp(a, "--count")) { if (cli_option_long(a, v, 1, 100000, &count) < 0) return usage_exit(); }
        else if (!strcmp(a, "--batches")) { if (cli_option_long(a, v, 1, 1000000, &batches) < 0) return usage_exit(); }
        else if (!strcmp(a, "--batch")) { if (cli_option_long(a, v, 1, 1024, &batch) < 0) return usage_exit(); }
        else { mv_fail("bench-loader: unknown option %s%s", a, hint_of(a)); return usage_exit(); }
    }
    // The --threads list is checked before the split is written (seconds at the default size).
    long nthreads[64];
    int nt = 0;
    char list[256];
    if (snprintf(list, sizeof list, "%s", threads) >= (int)sizeof list) { mv_fail("--threads: list too long"); return usage_exit(); }
    for (char *tok = list;; nt++) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = 0;
        if (nt == 64) { mv_fail("--threads '%s': more than 64 thread counts", threads); return usage_exit(); }
        if (!*tok) { mv_fail("--threads '%s': an empty item (a comma list of thread counts)", threads); return usage_exit(); }
        if (cli_option_long("--threads", tok, 1, 256, &nthreads[nt]) < 0) return usage_exit();
        if (!comma) { nt++; break; }
        tok = comma + 1;
    }
    if (bench_split(dir, (int)count, h, w) < 0) return fail_exit();
    printf("# loader benchmark: %dx%d samples -> %dx%d training crops, batch %ld, %ld batches after 2 warm-up\n",
           h, w, ch, cw, batch, batches);
    printf("%8s %12s %12s %16s\n", "threads", "samples/s", "ms/batch", "cpu ms/sample");
    for (int t = 0; t < nt; t++) {
        long x = nthreads[t];
        mv_loader_source src = {dir, 1};
        mv_loader_config cfg = {0};
        cfg.mode = MV_LOADER_TRAIN;
        cfg.sources = &src;
        cfg.n_sources = 1;
        cfg.batch = (int)batch;
        cfg.world = 1;
        cfg.seed = 0;
        cfg.workers = (int)x;
        cfg.depth = 4;
        augment_default_config(&cfg.aug, ch, cw);
        mv_loader *L;
        if (loader_open(&L, &cfg, NULL) < 0) return fail_exit();
        const mv_batch *b;
        double t0 = 0, c0 = 0;
        int rc = 0;
        for (long t = 0; t < batches + 2 && rc >= 0; t++) {
            if (t == 2) t0 = mv_now_s(), c0 = cpu_s();  // after warm-up (first reads, page cache)
            rc = loader_next(L, &b);
        }
        double dt = mv_now_s() - t0, dc = cpu_s() - c0;
        loader_close(L);
        if (rc < 0) return fail_exit();
        printf("%8ld %12.2f %12.1f %16.1f\n", x, (double)(batches * batch) / dt, 1000.0 * dt / (double)batches,
               1000.0 * dc / (double)(batches * batch));
    }
    return 0;
}

// ---------------------------------------------------------------------------------------

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "convert")) return data_convert(argc - 1, argv + 1);
    if (!strcmp(sub, "inspect")) return data_inspect(argc - 1, argv + 1);
    if (!strcmp(sub, "bench-loader")) return data_bench_loader(argc - 1, argv + 1);
    if (!strcmp(sub, "synth")) return data_synth_main(argc - 1, argv + 1);
    if (!strcmp(sub, "corrupt")) return data_corrupt_main(argc - 1, argv + 1);
    static const char *const subcommands[] = {"convert", "inspect", "bench-loader", "synth", "corrupt"};
    char hint[64];
    fprintf(stderr, "maskvim data: unknown subcommand '%s'%s\n\n", sub,
            mv_hint(hint, sizeof hint, sub, subcommands, 5));
    usage(stderr);
    return 2;
}
