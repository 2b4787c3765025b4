// `maskvim data corrupt`: turns a split into corrupted splits DIR/<corruption>/<severity>
// (the Cityscapes-C layout), labels unchanged. Worker threads read, corrupt and compress
// samples while the calling thread writes them in order; re-running resumes.
#include "core/cli_parse.h"
#include "core/clock.h"
#include "core/progress.h"
#include <limits.h>
#include <stdbool.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/error.h"
#include "data/corrupt.h"
#include "data/manifest.h"
#include "data/shard.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: maskvim data corrupt --in SPLIT_DIR --out DIR [--corruption NAME|LIST|all]\n"
        "                            [--severity N|LIST|A-B|all] [--seed S] [--threads T] [--bgr]\n"
        "                            [--samples-per-shard N] [--fresh]\n\n"
        "Writes DIR/<corruption>/<severity>/, one split per pair, labels unchanged (default: all\n"
        "16 corruptions at severity 5, HGFormer's Cityscapes-C protocol). Image i of every output\n"
        "uses the seed corrupt_image_seed(S, i), so each image can be regenerated alone. Re-running\n"
        "resumes after the complete shards of an interrupted run (--fresh: start over).\n\n"
        "  --in SPLIT_DIR         the clean split to corrupt (a folder of shards, e.g. from convert)\n"
        "  --out DIR              where the corrupted splits go\n"
        "  --corruption LIST      corruption names, comma-separated, or all (default all)\n"
        "  --severity LIST        severities 1-5: N, A-B, a comma-separated list of those, or all\n"
        "                         (default 5)\n"
        "  --seed S               seed of the random corruptions (default 0)\n"
        "  --threads T            worker threads, 1-256 (default: OpenMP's; 1 when the HDF5 library\n"
        "                         is not thread-safe)\n"
        "  --samples-per-shard N  samples per shard file (default 64); resuming needs the same N\n"
        "  --fresh                delete the existing shards of each output and start over instead\n"
        "                         of resuming after them\n"
        "  --bgr                  corrupt the channels in BGR order, as HGFormer's generator\n"
        "                         (OpenCV-loaded images) did; changes jpeg, snow, frost, spatter\n"
        "                         and saturate at 4-5\n"
        "Here --corruption and --severity (singular) each take a list; `maskvim eval`, which\n"
        "corrupts on the fly, names the same lists --corruptions and --severities (plural).\n\n"
        "corruptions (Table 2 order):");
    for (int c = 0; c < CORRUPT_COUNT; c++) fprintf(f, "%s%s", c % 4 ? ", " : "\n  ", corrupt_name(c));
    fputc('\n', f);
}

typedef struct {
    mv_sample in;
    uint8_t *out;            // corrupted image, capacity of in.rgb
    uint8_t *enc_rgb, *enc_lab;
    size_t cap_rgb, cap_lab;
    int64_t len_rgb, len_lab;
    int rc;
    char err[MV_ERRMSG_MAX];
} slot;

typedef struct {
    mv_split *split;
    const char *label_map;
    uint64_t seed;
    int threads, per_shard, fresh, bgr;
    slot *slots;
    int nslot;
} job;

static int corrupt_one(job *jb, const char *out_root, int c, int sev) {
    char dir[4096], domain[128], label_map[128];
    snprintf(dir, sizeof dir, "%s/%s/%d", out_root, corrupt_name(c), sev);
    snprintf(domain, sizeof domain, "%.80s-%s-%d", split_domain(jb->split), corrupt_name(c), sev);
    // The input's label map plus what decides the pixels (seed, channel order, input size): a re-run
    // with other settings must not resume from, and silently keep, shards made with the old ones.
    // corrupt/vN is the version of the pixels themselves: v2 dropped the rounding epsilon, moved to
    // the package's double arithmetic and fixed snow's edge columns, so v1 shards are refused; v3
    // (defocus_blur alone) rounds the disk kernel as OpenCV's AVX2 code does.
    // in= is the input's fingerprint (its manifest: names of shards, counts, CRCs): another input
    // of the same label map and size (a --limit trial of train, then of val, into one --out)
    // must not resume from the first one's shards, which would mix the two splits.
    int version = c == CORRUPT_DEFOCUS_BLUR ? 3 : 2;
    snprintf(label_map, sizeof label_map, "%.48s corrupt/v%d seed=%llu%s n=%lld in=%016llx", jb->label_map, version,
             (unsigned long long)jb->seed, jb->bgr ? " bgr" : "", (long long)split_count(jb->split),
             (unsigned long long)split_fingerprint(jb->split));
    mv_shard_writer *wr = jb->fresh ? shard_writer_open(dir, domain, label_map, jb->per_shard)
                                    : shard_writer_resume(dir, domain, label_map, jb->per_shard);
    if (!wr) return -1;
    int64_t n = split_count(jb->split), start = shard_writer_resume_point(wr);
    if (start > 0) fprintf(stderr, "[corrupt] resuming %s: %lld of %lld samples already in complete shards\n", dir, (long long)start, (long long)n);
    int rc = 0;
    mv_progress prog;
    char prefix[sizeof prog.prefix];
    snprintf(prefix, sizeof prefix, "[corrupt] %.170s:", dir);
    progress_begin(&prog, stderr, prefix, "samples", start, n);
    for (int64_t i = start; i < n && rc == 0; i += jb->nslot) {
        int nb = (int)(n - i < jb->nslot ? n - i : jb->nslot);
#pragma omp parallel for num_threads(jb->threads) schedule(dynamic, 1)
        for (int k = 0; k < nb; k++) {
            slot *s = &jb->slots[k];
            s->rc = split_read(&s->in, jb->split, i + k);
            if (s->rc == 0) {
                mv_image src = s->in.rgb, dst = {src.h, src.w, 3, s->out};
                size_t npx = (size_t)src.h * src.w;
                s->rc = (jb->bgr ? corrupt_image_bgr : corrupt_image)(&dst, &src, c, sev, corrupt_image_seed(jb->seed, i + k));
                if (s->rc == 0) {
                    s->len_rgb = shard_encode_chunk(&s->enc_rgb, &s->cap_rgb, dst.px, npx * 3, MV_SHARD_DEFAULT_DEFLATE);
                    s->len_lab = shard_encode_chunk(&s->enc_lab, &s->cap_lab, s->in.label.px, npx, MV_SHARD_DEFAULT_DEFLATE);
                    if (s->len_rgb < 0 || s->len_lab < 0) s->rc = -1;
                }
            }
            if (s->rc < 0) snprintf(s->err, sizeof s->err, "%s", mv_last_error());   // errors are per thread
        }
        for (int k = 0; k < nb && rc == 0; k++) {
            slot *s = &jb->slots[k];
            if (s->rc < 0) rc = mv_fail("%s: sample %lld: %s", dir, (long long)(i + k), s->err);
            else rc = shard_writer_add_encoded(wr, s->in.name, s->in.rgb.h, s->in.rgb.w, s->enc_rgb, (size_t)s->len_rgb,
                                               s->enc_lab, (size_t)s->len_lab);
        }
        if (rc == 0) progress_update(&prog, i + nb);
    }
    progress_end(&prog);
    if (rc < 0) { shard_writer_abort(wr); return -1; }
    return shard_writer_close(wr);
}

int data_corrupt_main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *corr_arg = "all", *sev_arg = "5";
    long threads = omp_get_max_threads(), per_shard = 0;
    uint64_t seed = 0;
    int fresh = 0, bgr = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--fresh")) { fresh = 1; continue; }
        if (!strcmp(a, "--bgr")) { bgr = 1; continue; }
        if (!v) { fprintf(stderr, "maskvim data corrupt: %s needs a value\n\n", a); usage(stderr); return 2; }
        i++;
        if (!strcmp(a, "--in")) in = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--corruption")) corr_arg = v;
        else if (!strcmp(a, "--severity")) sev_arg = v;
        else if (!strcmp(a, "--threads")) rc = cli_option_long(a, v, 1, 256, &threads);
        else if (!strcmp(a, "--samples-per-shard")) rc = cli_option_long(a, v, 1, 1000000L, &per_shard);
        else if (!strcmp(a, "--seed")) rc = cli_option_u64(a, v, &seed);
        else { fprintf(stderr, "maskvim data corrupt: unknown option '%s'\n\n", a); usage(stderr); return 2; }
        if (rc < 0) { fprintf(stderr, "maskvim data corrupt: %s\n", mv_last_error()); return 2; }
    }
    if (!in || !out) { fprintf(stderr, "maskvim data corrupt: --in and --out are required\n\n"); usage(stderr); return 2; }
    if (threads > 1 && !shard_hdf5_threadsafe()) {  // the threads read the input split through HDF5
        fprintf(stderr, "[corrupt] the HDF5 library is not thread-safe: using 1 thread\n");
        threads = 1;
    }
    bool con[CORRUPT_COUNT], son[6];
    if (corrupt_parse_names(con, corr_arg, "--corruption") < 0 || corrupt_parse_severities(son, sev_arg, "--severity") < 0) {
        fprintf(stderr, "maskvim data corrupt: %s\n", mv_last_error());
        return 2;
    }
    mv_manifest m;
    if (manifest_read(&m, in) < 0) { fprintf(stderr, "maskvim data corrupt: %s\n", mv_last_error()); return 1; }
    mv_split *split;
    if (split_open(&split, in) < 0) {
        manifest_free(&m);
        fprintf(stderr, "maskvim data corrupt: %s\n", mv_last_error());
        return 1;
    }
    // Cityscapes-C corrupts the clean images once; a corrupted split given as input (its label
    // map records the corruption) is most likely the wrong folder.
    if (strstr(m.label_map, " corrupt/v"))
        fprintf(stderr, "maskvim data corrupt: warning: %s is itself a corrupted split (%s): its images will be "
                        "corrupted a second time\n", in, m.label_map);
    job jb = {split, m.label_map, seed, (int)threads, (int)per_shard, fresh, bgr, NULL, 2 * (int)threads};
    int mh, mw;
    split_max_size(split, &mh, &mw);
    jb.slots = mv_calloc((size_t)jb.nslot, sizeof *jb.slots);
    for (int k = 0; k < jb.nslot; k++) {
        sample_alloc(&jb.slots[k].in, mh, mw);
        jb.slots[k].out = mv_malloc((size_t)(mh > 0 ? mh : 1) * (mw > 0 ? mw : 1) * 3);
    }
    int rc = 0;
    for (int c = 0; c < CORRUPT_COUNT && rc == 0; c++)
        for (int s = 1; s <= 5 && rc == 0; s++)
            if (con[c] && son[s]) rc = corrupt_one(&jb, out, c, s);
    if (rc < 0) fprintf(stderr, "maskvim data corrupt: %s\n", mv_last_error());
    for (int k = 0; k < jb.nslot; k++) {
        sample_free(&jb.slots[k].in);
        free(jb.slots[k].out);
        free(jb.slots[k].enc_rgb);
        free(jb.slots[k].enc_lab);
    }
    free(jb.slots);
    split_close(split);
    manifest_free(&m);
    return rc < 0 ? 1 : 0;
}
