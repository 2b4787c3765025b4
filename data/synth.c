// The synthetic dataset's public entry points: domain names, split seeds, and rendering one
// sample from its key (seed, domain, index) into caller buffers.
#include <string.h>
#include "core/error.h"
#include "data/manifest.h"
#include "data/synth_internal.h"


int synth_num_domains(void) { return SYNTH_NUM_DOMAINS; }

const char *synth_domain_name(int domain) {
    return domain >= 0 && domain < SYNTH_NUM_DOMAINS ? SYNTH_DOMAINS[domain].name : NULL;
}

const char *synth_domain_summary(int domain) {
    return domain >= 0 && domain < SYNTH_NUM_DOMAINS ? SYNTH_DOMAINS[domain].summary : NULL;
}

int synth_domain_index(const char *name) {
    for (int i = 0; i < SYNTH_NUM_DOMAINS; i++)
        if (name && !strcmp(name, SYNTH_DOMAINS[i].name)) return i;
    char known[256] = "";
    for (int i = 0; i < SYNTH_NUM_DOMAINS; i++) {
        if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, SYNTH_DOMAINS[i].name, sizeof known - strlen(known) - 1);
    }
    return mv_fail("unknown synthetic domain '%s' (known: %s)", name ? name : "(null)", known);
}

int synth_parse_domains(int *domains, int max, const char *list) {
    if (!list || !*list) return mv_fail("empty domain list");
    if (!strcmp(list, "all")) {
        if (max < SYNTH_NUM_DOMAINS) return mv_fail("too many domains (at most %d)", max);
        for (int i = 0; i < SYNTH_NUM_DOMAINS; i++) domains[i] = i;
        return SYNTH_NUM_DOMAINS;
    }
    int n = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[64];
        if (len == 0 || len >= sizeof name) return mv_fail("bad domain list '%s'", list);
        memcpy(name, p, len);
        name[len] = '\0';
        int d = synth_domain_index(name);
        if (d < 0) return -1;
        for (int i = 0; i < n; i++)
            if (domains[i] == d) return mv_fail("domain '%s' listed twice in '%s'", name, list);
        if (n >= max) return mv_fail("too many domains in '%s' (at most %d)", list, max);
        domains[n++] = d;
        p = e ? e + 1 : p + len;
    }
    return n;
}

uint64_t synth_split_seed(uint64_t seed, const char *split) {
    // FNV-1a of the split name, folded into the seed through one Philox block
    uint32_t hsh = 2166136261u;
    for (const char *c = split ? split : ""; *c; c++) hsh = (hsh ^ (uint8_t)*c) * 16777619u;
    mv_rng4 b = philox4x32(seed, hsh, 0, MV_RNG_SYNTH | 0xFFFFFFu, 0);
    return ((uint64_t)b.v[0] << 32) | b.v[1];
}

int synth_render(uint8_t *rgb, uint8_t *label, uint64_t seed, int domain, uint64_t index, int h, int w) {
    if (domain < 0 || domain >= SYNTH_NUM_DOMAINS)
        return mv_fail("synthetic domain %d out of range 0..%d", domain, SYNTH_NUM_DOMAINS - 1);
    if (h < SYNTH_MIN_SIDE || w < SYNTH_MIN_SIDE || h > SYNTH_MAX_SIDE || w > SYNTH_MAX_SIDE)
        return mv_fail("synthetic image size %dx%d outside %d..%d", h, w, SYNTH_MIN_SIDE, SYNTH_MAX_SIDE);
    if (!rgb || !label) return mv_fail("synth_render: NULL buffer");
    // Layout and appearance draw from separate streams, so a domain's looks never shift its layout.
    uint32_t purpose = MV_RNG_SYNTH | ((uint32_t)domain << 8);
    rng_stream layout = rng_stream_make(seed, index, purpose | 0);
    rng_stream looks = rng_stream_make(seed, index, purpose | 1);
    scene sc;
    scene_generate(&sc, &layout, h, w);
    raster r;
    r.rgb = rgb;
    r.lab = label;
    r.h = h;
    r.w = w;
    r.dom = &SYNTH_DOMAINS[domain];
    r.fog_density = rng_uniform(&looks, r.dom->fog_density[0], r.dom->fog_density[1]);
    r.tox = rng_below(&looks, 256);
    r.toy = rng_below(&looks, 256);
    r.nglow = 0;
    render_scene(&r, &sc, &looks);
    return 0;
}

int synth_sample(mv_image *img, mv_image *lab, uint64_t seed, int domain, uint64_t index) {
    if (!img || !lab || !img->px || !lab->px || img->c != 3 || lab->c != 1 || img->h != lab->h || img->w != lab->w)
        return mv_fail("synth_sample: need an (h, w, 3) image and an (h, w, 1) label of the same size");
    return synth_render(img->px, lab->px, seed, domain, index, img->h, img->w);
}

void synth_colorize(uint8_t *rgb, const uint8_t *label, int h, int w) {
    for (size_t i = 0; i < (size_t)h * w; i++) {
        uint8_t l = label[i];
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = l < SYNTH_NUM_CLASSES ? MV_CLASS_PALETTE[l][c] : 0;
    }
}
