// The synthetic domains: determinism from (seed, domain, index), valid labels with a
// street-scene layout, a real appearance shift between domains over a shared layout
// distribution, error handling, and the `data synth` command (shards, resume, preview).
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/error.h"
#include "data/image_io.h"
#include "data/shard.h"
#include "data/synth.h"

#define H 64
#define W 128

static void render(uint8_t *rgb, uint8_t *lab, uint64_t seed, int domain, uint64_t index) {
    int rc = synth_render(rgb, lab, seed, domain, index, H, W);
    cr_assert_eq(rc, 0, "synth_render: %s", mv_last_error());
}

static const char *tmp_dir(const char *leaf, char *buf, size_t cap) {
    const char *base = getenv("MV_TEST_TMP");
    snprintf(buf, cap, "%s/test_synth_%s", base && *base ? base : "/tmp", leaf);
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    cr_assert_eq(system(cmd), 0);
    return buf;
}

Test(synth, domains_are_named_and_parsed) {
    cr_assert_geq(synth_num_domains(), 4);
    for (int d = 0; d < synth_num_domains(); d++) {
        cr_assert_eq(synth_domain_index(synth_domain_name(d)), d);
        cr_assert_gt(strlen(synth_domain_summary(d)), 10);
    }
    cr_assert_eq(synth_domain_index("fog"), 2);
    cr_assert_eq(synth_domain_index("nope"), -1);
    cr_assert(strstr(mv_last_error(), "nope") && strstr(mv_last_error(), "clear"), "%s", mv_last_error());
    int d[8];
    cr_assert_eq(synth_parse_domains(d, 8, "all"), synth_num_domains());
    cr_assert_eq(synth_parse_domains(d, 8, "painted,clear"), 2);
    cr_assert_eq(d[0], synth_domain_index("painted"));
    cr_assert_eq(d[1], 0);
    cr_assert_eq(synth_parse_domains(d, 8, "clear,clear"), -1);
    cr_assert_eq(synth_parse_domains(d, 8, "clear,,fog"), -1);
    cr_assert_eq(synth_parse_domains(d, 8, "clear,mud"), -1);
    cr_assert(strstr(mv_last_error(), "mud"));
    cr_assert_eq(synth_parse_domains(d, 1, "clear,fog"), -1);
}

Test(synth, deterministic_from_key) {
    uint8_t *a = malloc(H * W * 3), *la = malloc(H * W), *b = malloc(H * W * 3), *lb = malloc(H * W);
    render(a, la, 7, 1, 5);
    render(b, lb, 7, 1, 5);
    cr_assert_eq(memcmp(a, b, H * W * 3), 0);
    cr_assert_eq(memcmp(la, lb, H * W), 0);
    // each part of the key matters
    const struct { uint64_t seed; int domain; uint64_t index; } other[3] = {{8, 1, 5}, {7, 2, 5}, {7, 1, 6}};
    for (int k = 0; k < 3; k++) {
        render(b, lb, other[k].seed, other[k].domain, other[k].index);
        cr_assert_neq(memcmp(a, b, H * W * 3), 0, "key %d", k);
        cr_assert_neq(memcmp(la, lb, H * W), 0, "key %d", k);
    }
    // split seeds: stable, and different per split
    cr_assert_eq(synth_split_seed(3, "train"), synth_split_seed(3, "train"));
    cr_assert_neq(synth_split_seed(3, "train"), synth_split_seed(3, "val"));
    cr_assert_neq(synth_split_seed(3, "train"), synth_split_seed(4, "train"));
    free(a); free(la); free(b); free(lb);
}

Test(synth, renders_identically_on_many_threads) {
    enum { N = 8 };
    uint8_t *seq = malloc((size_t)N * H * W * 4), *par = malloc((size_t)N * H * W * 4);
    for (int i = 0; i < N; i++) render(seq + (size_t)i * H * W * 4, seq + (size_t)i * H * W * 4 + H * W * 3, 11, i % 5, (uint64_t)i);
    int rc[N];
#pragma omp parallel for num_threads(4)
    for (int i = 0; i < N; i++)
        rc[i] = synth_render(par + (size_t)i * H * W * 4, par + (size_t)i * H * W * 4 + H * W * 3, 11, i % 5, (uint64_t)i, H, W);
    for (int i = 0; i < N; i++) cr_assert_eq(rc[i], 0);
    cr_assert_eq(memcmp(seq, par, (size_t)N * H * W * 4), 0);
    free(seq); free(par);
}

// Class statistics over n samples of one domain.
typedef struct { double frac[256]; int present[256]; double mean_row[256]; double luma, chroma, sat; } stats;

static void gather(stats *st, int domain, int n, uint64_t seed) {
    memset(st, 0, sizeof *st);
    double rows[256] = {0};
    uint8_t *rgb = malloc(H * W * 3), *lab = malloc(H * W);
    for (int i = 0; i < n; i++) {
        render(rgb, lab, seed, domain, (uint64_t)i);
        int seen[256] = {0};
        for (int p = 0; p < H * W; p++) {
            int l = lab[p];
            st->frac[l] += 1;
            rows[l] += p / W;
            seen[l] = 1;
            const uint8_t *c = rgb + 3 * p;
            double y = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
            st->luma += y;
            int mx = c[0] > c[1] ? c[0] : c[1], mn = c[0] < c[1] ? c[0] : c[1];
            mx = mx > c[2] ? mx : c[2];
            mn = mn < c[2] ? mn : c[2];
            st->sat += mx - mn;
        }
        for (int k = 0; k < 256; k++) st->present[k] += seen[k];
    }
    for (int k = 0; k < 256; k++) {
        st->mean_row[k] = st->frac[k] > 0 ? rows[k] / st->frac[k] / H : -1;
        st->frac[k] /= (double)n * H * W;
    }
    st->luma /= (double)n * H * W;
    st->sat /= (double)n * H * W;
    free(rgb); free(lab);
}

Test(synth, labels_are_valid_and_laid_out_like_a_street) {
    stats st;
    gather(&st, 0, 120, 5);
    for (int k = 19; k < 255; k++) cr_assert_eq(st.frac[k], 0, "label value %d", k);
    for (int k = 0; k < 19; k++) cr_assert_gt(st.present[k], 0, "class %d never drawn in 120 samples", k);
    // the big stuff classes dominate, as in Cityscapes
    cr_assert(st.frac[0] > 0.15 && st.frac[0] < 0.5, "road %.3f", st.frac[0]);
    cr_assert(st.frac[2] > 0.08 && st.frac[2] < 0.45, "building %.3f", st.frac[2]);
    cr_assert(st.frac[8] > 0.03, "vegetation %.3f", st.frac[8]);
    cr_assert(st.frac[13] > 0.02, "car %.3f", st.frac[13]);
    cr_assert(st.frac[10] > 0.005, "sky %.3f", st.frac[10]);
    // vertical layout: sky on top, buildings in the middle, road at the bottom
    cr_assert_lt(st.mean_row[10], st.mean_row[2]);
    cr_assert_lt(st.mean_row[2], st.mean_row[0]);
    cr_assert_lt(st.mean_row[10], 0.35, "sky mean row %.2f", st.mean_row[10]);
    cr_assert_gt(st.mean_row[0], 0.6, "road mean row %.2f", st.mean_row[0]);
}

Test(synth, domains_share_layouts_but_not_looks) {
    int nd = synth_num_domains();
    stats st[8];
    for (int d = 0; d < nd; d++) gather(&st[d], d, 40, 9);
    int clear = 0, dusk = synth_domain_index("dusk"), fog = synth_domain_index("fog");
    int rain = synth_domain_index("rain"), painted = synth_domain_index("painted");
    for (int d = 1; d < nd; d++)   // the same layout distribution: class shares stay close
        for (int k = 0; k < 19; k++)
            cr_assert_lt(fabs(st[d].frac[k] - st[clear].frac[k]), 0.08, "domain %s class %d: %.3f vs %.3f",
                         synth_domain_name(d), k, st[d].frac[k], st[clear].frac[k]);
    // and different looks
    cr_assert_lt(st[dusk].luma, st[clear].luma - 30, "dusk %.1f clear %.1f", st[dusk].luma, st[clear].luma);
    cr_assert_lt(st[rain].luma, st[clear].luma - 10);
    cr_assert_lt(st[fog].sat, st[clear].sat * 0.6, "fog chroma %.1f clear %.1f", st[fog].sat, st[clear].sat);
    cr_assert_gt(st[fog].luma, st[rain].luma);
    cr_assert_gt(st[painted].sat, st[clear].sat * 1.3, "painted chroma %.1f clear %.1f", st[painted].sat, st[clear].sat);
}

Test(synth, the_same_class_has_a_different_colour_per_domain) {
    // mean road colour per domain: a classifier keyed on colour would not transfer
    double mean[8][3] = {{0}};
    int nd = synth_num_domains();
    uint8_t *rgb = malloc(H * W * 3), *lab = malloc(H * W);
    for (int d = 0; d < nd; d++) {
        double n = 0;
        for (int i = 0; i < 10; i++) {
            render(rgb, lab, 2, d, (uint64_t)i);
            for (int p = 0; p < H * W; p++)
                if (lab[p] == 0) { for (int c = 0; c < 3; c++) mean[d][c] += rgb[3 * p + c]; n++; }
        }
        for (int c = 0; c < 3; c++) mean[d][c] /= n;
    }
    for (int a = 0; a < nd; a++)
        for (int b = a + 1; b < nd; b++) {
            double dist = 0;
            for (int c = 0; c < 3; c++) dist += (mean[a][c] - mean[b][c]) * (mean[a][c] - mean[b][c]);
            cr_assert_gt(sqrt(dist), 10, "road colour of %s and %s too close", synth_domain_name(a), synth_domain_name(b));
        }
    free(rgb); free(lab);
}

Test(synth, odd_sizes_and_bad_arguments) {
    const int sizes[4][2] = {{16, 16}, {17, 33}, {300, 40}, {40, 301}};
    for (int s = 0; s < 4; s++) {
        int h = sizes[s][0], w = sizes[s][1];
        mv_image img = image_alloc(h, w, 3), lab = image_alloc(h, w, 1);
        for (int d = 0; d < synth_num_domains(); d++) {
            cr_assert_eq(synth_sample(&img, &lab, 1, d, 3), 0, "%dx%d: %s", h, w, mv_last_error());
            for (int p = 0; p < h * w; p++) cr_assert(lab.px[p] < 19 || lab.px[p] == 255);
        }
        image_free(&img);
        image_free(&lab);
    }
    uint8_t rgb[16 * 16 * 3], lab[16 * 16];
    cr_assert_eq(synth_render(rgb, lab, 0, synth_num_domains(), 0, 16, 16), -1);
    cr_assert(strstr(mv_last_error(), "domain"));
    cr_assert_eq(synth_render(rgb, lab, 0, -1, 0, 16, 16), -1);
    cr_assert_eq(synth_render(rgb, lab, 0, 0, 0, 15, 16), -1);
    cr_assert(strstr(mv_last_error(), "15x16"), "%s", mv_last_error());
    cr_assert_eq(synth_render(NULL, lab, 0, 0, 0, 16, 16), -1);
    mv_image a = image_alloc(16, 16, 3), b = image_alloc(16, 17, 1);
    cr_assert_eq(synth_sample(&a, &b, 0, 0, 0), -1);
    image_free(&a);
    image_free(&b);
}

Test(synth, colorize_uses_the_cityscapes_palette) {
    uint8_t lab[3] = {0, 13, 255}, rgb[9];
    synth_colorize(rgb, lab, 1, 3);
    const uint8_t want[9] = {128, 64, 128, 0, 0, 142, 0, 0, 0};
    cr_assert_eq(memcmp(rgb, want, 9), 0);
}

static int run_synth(const char *a0, ...) {
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 32; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    return data_synth_main(argc, argv);
}

// Sample i of a written split equals the in-memory rendering of the same key.
static void check_split_sample(const char *dir, int domain, uint64_t seed, int64_t i, int h, int w) {
    mv_split *s;
    cr_assert_eq(split_open(&s, dir), 0, "%s", mv_last_error());
    mv_sample smp;
    sample_alloc(&smp, h, w);
    cr_assert_eq(split_read(&smp, s, i), 0, "%s", mv_last_error());
    uint8_t *rgb = malloc((size_t)h * w * 3), *lab = malloc((size_t)h * w);
    cr_assert_eq(synth_render(rgb, lab, synth_split_seed(seed, "train"), domain, (uint64_t)i, h, w), 0);
    cr_assert_eq(smp.rgb.h, h);
    cr_assert_eq(smp.rgb.w, w);
    cr_assert_eq(memcmp(smp.rgb.px, rgb, (size_t)h * w * 3), 0, "%s sample %lld", dir, (long long)i);
    cr_assert_eq(memcmp(smp.label.px, lab, (size_t)h * w), 0);
    char name[64];
    snprintf(name, sizeof name, "%s_%06lld", synth_domain_name(domain), (long long)i);
    cr_assert_str_eq(smp.name, name);
    free(rgb); free(lab);
    sample_free(&smp);
    split_close(s);
}

Test(synth_cli, writes_shards_resumes_and_previews) {
    char dir[1024], split[1200], png[1200];
    tmp_dir("cli", dir, sizeof dir);
    cr_assert_eq(run_synth("synth", "--out", dir, "--domains", "fog,painted", "--count", "10", "--size", "32x48",
                           "--seed", "4", "--threads", "2", "--samples-per-shard", "4", NULL), 0, "%s", mv_last_error());
    snprintf(split, sizeof split, "%s/fog/train", dir);
    mv_split *s;
    cr_assert_eq(split_open(&s, split), 0, "%s", mv_last_error());
    cr_assert_eq(split_count(s), 10);
    cr_assert_str_eq(split_domain(s), "synth-fog");
    split_close(s);
    check_split_sample(split, synth_domain_index("fog"), 4, 7, 32, 48);
    snprintf(split, sizeof split, "%s/painted/train", dir);
    check_split_sample(split, synth_domain_index("painted"), 4, 0, 32, 48);

    // more samples: resumes after the complete shards and appends the same stream
    cr_assert_eq(run_synth("synth", "--out", dir, "--domains", "painted", "--count", "14", "--size", "32x48",
                           "--seed", "4", "--threads", "1", "--samples-per-shard", "4", NULL), 0, "%s", mv_last_error());
    cr_assert_eq(split_open(&s, split), 0);
    cr_assert_eq(split_count(s), 14);
    split_close(s);
    check_split_sample(split, synth_domain_index("painted"), 4, 9, 32, 48);
    check_split_sample(split, synth_domain_index("painted"), 4, 13, 32, 48);

    // resuming with another seed is refused, not mixed
    cr_assert_eq(run_synth("synth", "--out", dir, "--domains", "painted", "--count", "14", "--size", "32x48",
                           "--seed", "5", "--samples-per-shard", "4", NULL), 1);

    // A smaller --count over the finished 14 is refused (it was cut to 12, whole shards: neither
    // size) and leaves the split as it was; the same count again writes nothing.
    cr_assert_eq(run_synth("synth", "--out", dir, "--domains", "painted", "--count", "9", "--size", "32x48",
                           "--seed", "4", "--samples-per-shard", "4", NULL), 1);
    cr_assert(strstr(mv_last_error(), "holds 14 samples, more than --count 9: give --fresh"), "%s", mv_last_error());
    cr_assert_eq(split_open(&s, split), 0, "%s", mv_last_error());
    cr_assert_eq(split_count(s), 14);
    split_close(s);
    struct stat before, after;
    char manifest[1300];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", split);
    cr_assert_eq(stat(manifest, &before), 0);
    cr_assert_eq(run_synth("synth", "--out", dir, "--domains", "painted", "--count", "14", "--size", "32x48",
                           "--seed", "4", "--samples-per-shard", "4", NULL), 0, "%s", mv_last_error());
    cr_assert_eq(stat(manifest, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino, "a finished split of the same count was written again");
    // "." or ".." as --split would put every domain's split in one folder.
    cr_assert_eq(run_synth("synth", "--out", dir, "--count", "2", "--split", "..", NULL), 2);
    cr_assert_eq(run_synth("synth", "--out", dir, "--count", "2", "--split", ".", NULL), 2);

    snprintf(png, sizeof png, "%s/preview.png", dir);
    cr_assert_eq(run_synth("synth", "--preview", png, "--domains", "clear,dusk,rain", "--size", "20x40",
                           "--preview-count", "3", NULL), 0);
    mv_image pic;
    cr_assert_eq(image_read_rgb(&pic, png), 0, "%s", mv_last_error());
    cr_assert_eq(pic.h, 6 * 20 + 5 * 2);
    cr_assert_eq(pic.w, 3 * 40 + 2 * 2);
    image_free(&pic);

    cr_assert_eq(run_synth("synth", "--out", dir, "--count", "3", "--domains", "snowy", NULL), 2);
    cr_assert_eq(run_synth("synth", "--out", dir, "--count", "3", "--size", "8x8", NULL), 2);
    cr_assert_eq(run_synth("synth", "--out", dir, NULL), 2);
    cr_assert_eq(run_synth("synth", "--count", "3", NULL), 2);
}
