// `maskvim data synth`: renders the synthetic domains into shard splits (DIR/<domain>/<split>)
// with worker threads rendering and compressing while the calling thread writes in order, and
// draws a preview picture of a few samples per domain.
#include "core/cli_parse.h"
#include "core/clock.h"
#include "core/progress.h"
#include "core/stop_signal.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/error.h"
#include "data/image_io.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "data/synth.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim data synth --out DIR --count N [--preview FILE.png] [options]\n"
        "       maskvim data synth --preview FILE.png [options]     (the preview alone)\n"
        "options: [--domains LIST] [--size HxW] [--seed S] [--split NAME] [--threads T]\n"
        "         [--samples-per-shard N] [--deflate L] [--fresh] [--preview-count K]\n\n"
        "Renders N synthetic street scenes per domain into DIR/<domain>/<split> (HDF5 shards).\n"
        "Sample i of a domain is a pure function of (seed, split, domain, i): any machine, any\n"
        "thread count gives the same bytes. A 'synthetic:DOMAIN' training or evaluation source\n"
        "writes its split this way once, into a cache under datasets/synthetic (docs/synth.md).\n"
        "Re-running resumes after the complete shards of an interrupted run (--fresh: start over).\n\n"
        "  --out DIR              write the shards to DIR/<domain>/<split> (needs --count)\n"
        "  --count N              samples per domain; required with --out\n"
        "  --domains LIST         comma-separated names or 'all' (default all)\n"
        "  --size HxW             image size (default 256x512)\n"
        "  --seed S               generator seed (default 0)\n"
        "  --split NAME           split name, also part of the samples' key (default train)\n"
        "  --threads T            rendering threads, 1-256 (default: OpenMP's)\n"
        "  --samples-per-shard N  samples per shard file (default 64); resuming needs the same N\n"
        "  --deflate L            deflate level of the images, 0-9 (default 0: stored; noise makes\n"
        "                         them nearly incompressible); labels always use level 1\n"
        "  --fresh                delete the split's existing shards and start over instead of\n"
        "                         resuming after them\n"
        "  --preview FILE         also (or, without --out, only) write a PNG of samples 0..K-1 of\n"
        "                         each domain, images above their labels, at --size, --seed, --split\n"
        "  --preview-count K      K, samples per domain in the preview, 1-64 (default 4)\n\n"
        "domains:\n");
    // Each summary wrapped at word boundaries to stay within 96 columns, under its name.
    for (int d = 0; d < synth_num_domains(); d++) {
        const char *p = synth_domain_summary(d);
        fprintf(f, "  %-9s ", synth_domain_name(d));
        for (int col = 12, first = 1; *p;) {
            while (*p == ' ') p++;
            int len = (int)strcspn(p, " ");
            if (!len) break;
            if (!first && col + 1 + len > 96) { fprintf(f, "\n%12s", ""); col = 12; first = 1; }
            fprintf(f, "%s%.*s", first ? "" : " ", len, p);
            col += (first ? 0 : 1) + len;
            first = 0;
            p += len;
        }
        fputc('\n', f);
    }
}

// Deflate levels of the synthetic shards. Sensor noise leaves the images nearly
// incompressible (deflate saves ~20% at ~6x the time of stored blocks), so images are stored
// (level 0: still a deflate stream behind the same filter pipeline and checksum) unless
// --deflate asks otherwise; labels shrink ~30x at level 1 for little time.
#define SYNTH_DEFLATE_IMAGE 0
#define SYNTH_DEFLATE_LABEL 1

// One rendered, compressed sample waiting to be written.
typedef struct {
    uint8_t *rgb, *lab;
    uint8_t *enc_rgb, *enc_lab;
    size_t cap_rgb, cap_lab;
    int64_t len_rgb, len_lab;
    int rc;
    char err[MV_ERRMSG_MAX];
} slot;

// Whether a resumed split in `dir` fits this --count: its samples are fixed by the label map
// (seed, split, size), so only their number can differ. -1 (named) when it holds more than
// `count` (a re-run with a smaller --count would be cut to whole shards: neither size), 1 when
// it is finished with exactly `count`, else 0 (write from the resume point).
static int check_count(const mv_shard_writer *wr, const char *dir, int64_t count) {
    int64_t held = shard_writer_resume_point(wr);
    uint64_t fp;
    if (shard_writer_finished(wr) && manifest_fingerprint_dir(&fp, &held, dir) < 0) return -1;
    if (held > count)
        return mv_fail("%s holds %lld samples, more than --count %lld: give --fresh to write %lld (or --count %lld to "
                       "keep them)", dir, (long long)held, (long long)count, (long long)count, (long long)held);
    return shard_writer_finished(wr) && held == count;
}

static int write_domain(const char *out, int domain, const char *split, uint64_t key, uint64_t user_seed,
                        int64_t count, int h, int w, int threads, int per_shard, int fresh, int deflate) {
    const char *dname = synth_domain_name(domain);
    char dir[4096], domain_tag[64], label_map[128];
    snprintf(dir, sizeof dir, "%s/%s/%s", out, dname, split);
    snprintf(domain_tag, sizeof domain_tag, "synth-%s", dname);
    // The generator's version and key: resuming with other settings is refused, not mixed.
    snprintf(label_map, sizeof label_map, "synth/v1 seed=%llu split=%.32s size=%dx%d",
             (unsigned long long)user_seed, split, h, w);
    mv_shard_writer *wr = fresh ? shard_writer_open(dir, domain_tag, label_map, per_shard)
                                : shard_writer_resume(dir, domain_tag, label_map, per_shard);
    if (!wr) return -1;
    // What the folder holds must be the first samples of this --count: a finished split of more
    // (a re-run with a smaller --count) would otherwise be cut to whole shards, neither size.
    int chk = fresh ? 0 : check_count(wr, dir, count);
    if (chk != 0) {
        shard_writer_abort(wr);   // the folder as it was
        if (chk < 0) return -1;
        fprintf(stderr, "[synth] %s: already written: the finished split holds the %lld samples asked for; nothing "
                        "written (--fresh writes it again)\n", dir, (long long)count);
        return 0;
    }
    int64_t start = shard_writer_resume_point(wr);
    if (start > 0) fprintf(stderr, "[synth] resuming %s: %lld of %lld samples already in complete shards\n", dir, (long long)start, (long long)count);
    int nslot = 4 * threads;
    slot *slots = mv_calloc((size_t)nslot, sizeof *slots);
    size_t npx = (size_t)h * w;
    for (int k = 0; k < nslot; k++) {
        slots[k].rgb = mv_malloc(npx * 3);
        slots[k].lab = mv_malloc(npx);
    }
    int rc = 0;
    mv_progress prog;
    char prefix[sizeof prog.prefix];
    snprintf(prefix, sizeof prefix, "[synth] %.170s:", dir);
    progress_begin(&prog, stderr, prefix, "samples", start, count);
    for (int64_t i = start; i < count && rc == 0; i += nslot) {
        // A stop asked for while a training starts up or a sweep prepares its data (signals
        // armed: core/stop_signal.h) ends the writing here rather than after the whole split:
        // the complete shards stay, and the next run resumes after them.
        int sig = stop_signal_request();
        if (sig) {
            rc = mv_fail("%s: stopped by %s after %lld of %lld samples (the complete shards are kept: the next run "
                         "resumes the writing)", dir, stop_signal_name(sig), (long long)i, (long long)count);
            break;
        }
        int nb = (int)(count - i < nslot ? count - i : nslot);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
        for (int k = 0; k < nb; k++) {
            slot *s = &slots[k];
            s->rc = synth_render(s->rgb, s->lab, key, domain, (uint64_t)(i + k), h, w);
            if (s->rc == 0) {
                s->len_rgb = shard_encode_chunk(&s->enc_rgb, &s->cap_rgb, s->rgb, npx * 3, deflate);
                s->len_lab = shard_encode_chunk(&s->enc_lab, &s->cap_lab, s->lab, npx, SYNTH_DEFLATE_LABEL);
                if (s->len_rgb < 0 || s->len_lab < 0) s->rc = -1;
            }
            if (s->rc < 0) snprintf(s->err, sizeof s->err, "%s", mv_last_error());   // errors are per thread
        }
        for (int k = 0; k < nb && rc == 0; k++) {
            slot *s = &slots[k];
            char name[64];
            snprintf(name, sizeof name, "%s_%06lld", dname, (long long)(i + k));
            if (s->rc < 0) rc = mv_fail("%s: sample %lld: %s", dir, (long long)(i + k), s->err);
            else rc = shard_writer_add_encoded(wr, name, h, w, s->enc_rgb, (size_t)s->len_rgb, s->enc_lab, (size_t)s->len_lab);
        }
        if (rc == 0) progress_update(&prog, i + nb);
    }
    progress_end(&prog);
    for (int k = 0; k < nslot; k++) {
        free(slots[k].rgb); free(slots[k].lab); free(slots[k].enc_rgb); free(slots[k].enc_lab);
    }
    free(slots);
    if (rc < 0) { shard_writer_abort(wr); return -1; }
    return shard_writer_close(wr);
}

// K samples per domain in a grid: a row of images, below it a row of their labels.
static int write_preview(const char *path, const int *domains, int nd, uint64_t key, int h, int w, int k) {
    const int gap = 2;
    mv_image grid = image_alloc(2 * nd * (h + gap) - gap, k * (w + gap) - gap, 3);
    memset(grid.px, 255, (size_t)grid.h * grid.w * 3);
    uint8_t *rgb = mv_malloc((size_t)h * w * 3), *lab = mv_malloc((size_t)h * w), *col = mv_malloc((size_t)h * w * 3);
    int rc = 0;
    for (int d = 0; d < nd && rc == 0; d++)
        for (int i = 0; i < k && rc == 0; i++) {
            rc = synth_render(rgb, lab, key, domains[d], (uint64_t)i, h, w);
            synth_colorize(col, lab, h, w);
            for (int y = 0; y < h && rc == 0; y++) {
                size_t x0 = (size_t)i * (w + gap) * 3;
                memcpy(grid.px + (size_t)((2 * d) * (h + gap) + y) * grid.w * 3 + x0, rgb + (size_t)y * w * 3, (size_t)w * 3);
                memcpy(grid.px + (size_t)((2 * d + 1) * (h + gap) + y) * grid.w * 3 + x0, col + (size_t)y * w * 3, (size_t)w * 3);
            }
        }
    if (rc == 0) rc = image_write_png(path, &grid);
    free(rgb); free(lab); free(col);
    image_free(&grid);
    return rc;
}

int data_synth_main(int argc, char **argv) {
    const char *out = NULL, *domains_arg = "all", *split = "train", *preview = NULL;
    long count = -1, threads = omp_get_max_threads(), per_shard = 0, preview_count = 4, deflate = SYNTH_DEFLATE_IMAGE;
    int h = 256, w = 512, fresh = 0;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--fresh")) { fresh = 1; continue; }
        if (!v) { fprintf(stderr, "maskvim data synth: %s needs a value\n\n", a); usage(stderr); return 2; }
        i++;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--domains")) domains_arg = v;
        else if (!strcmp(a, "--count")) rc = cli_option_long(a, v, 1, 1000000000L, &count);
        else if (!strcmp(a, "--size")) rc = cli_option_hw(a, v, SYNTH_MIN_SIDE, SYNTH_MAX_SIDE, &h, &w);
        else if (!strcmp(a, "--seed")) rc = cli_option_u64(a, v, &seed);
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--threads")) rc = cli_option_long(a, v, 1, 256, &threads);
        else if (!strcmp(a, "--samples-per-shard")) rc = cli_option_long(a, v, 1, 1000000L, &per_shard);
        else if (!strcmp(a, "--deflate")) rc = cli_option_long(a, v, 0, 9, &deflate);
        else if (!strcmp(a, "--preview")) preview = v;
        else if (!strcmp(a, "--preview-count")) rc = cli_option_long(a, v, 1, 64, &preview_count);
        else { fprintf(stderr, "maskvim data synth: unknown option '%s'\n\n", a); usage(stderr); return 2; }
        if (rc < 0) { fprintf(stderr, "maskvim data synth: %s\n", mv_last_error()); return 2; }
    }
    if (!out && !preview) { fprintf(stderr, "maskvim data synth: --out (or --preview) is required\n\n"); usage(stderr); return 2; }
    if (out && count < 0) { fprintf(stderr, "maskvim data synth: --count is required with --out\n"); return 2; }
    // A folder name of its own under each domain: "." or ".." would put every domain's split in
    // one folder (the last one replacing the others).
    if (!*split || strchr(split, '/') || split[0] == '.') {
        fprintf(stderr, "maskvim data synth: --split: bad name '%s' (a folder name: no '/', not starting with '.')\n",
                split);
        return 2;
    }
    int domains[64];
    int nd = synth_parse_domains(domains, 64, domains_arg);
    if (nd < 0) { fprintf(stderr, "maskvim data synth: --domains: %s\n", mv_last_error()); return 2; }
    uint64_t key = synth_split_seed(seed, split);
    if (preview && write_preview(preview, domains, nd, key, h, w, (int)preview_count) < 0) {
        fprintf(stderr, "maskvim data synth: %s\n", mv_last_error());
        return 1;
    }
    for (int d = 0; out && d < nd; d++)
        if (write_domain(out, domains[d], split, key, seed, count, h, w, (int)threads, (int)per_shard, fresh, (int)deflate) < 0) {
            fprintf(stderr, "maskvim data synth: %s\n", mv_last_error());
            return 1;
        }
    return 0;
}
