// Image-wide effects of the synthetic domains, applied in place after the scene is drawn:
// light glows, rain streaks, ink outlines, box blur, then one grading pass (saturation,
// exposure, tint, contrast, gamma, posterisation) with sensor noise. Labels are untouched.
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "data/synth_internal.h"

static void apply_glows(raster *r) {
    for (int i = 0; i < r->nglow; i++) {
        const raster_glow *g = &r->glow[i];
        float reach = 2.5f * g->radius;
        int y0 = (int)maxf(0, g->y - reach), y1 = (int)minf((float)r->h, g->y + reach + 1);
        int x0 = (int)maxf(0, g->x - reach), x1 = (int)minf((float)r->w, g->x + reach + 1);
        float inv = 1.0f / (2.0f * g->radius * g->radius);
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                float dx = (float)x + 0.5f - g->x, dy = (float)y + 0.5f - g->y;
                float a = 0.6f * expf(-(dx * dx + dy * dy) * inv);
                uint8_t *p = r->rgb + ((size_t)y * r->w + x) * 3;
                for (int c = 0; c < 3; c++) p[c] = clamp_u8(p[c] + a * g->rgb[c]);
            }
    }
}

// Thin bright slanted streaks, blended over everything.
static void apply_rain(raster *r, rng_stream *rng) {
    int n = (int)(r->dom->rain * (float)r->w * (float)r->h / 1000.0f);
    float slant = rng_uniform(rng, -0.3f, 0.3f), scale = (float)r->h / 256.0f;
    for (int i = 0; i < n; i++) {
        float x = rng_uniform(rng, 0, (float)r->w), y = rng_uniform(rng, 0, (float)r->h);
        int len = (int)(rng_uniform(rng, 6, 22) * scale) + 1;
        float a = rng_uniform(rng, 0.12f, 0.3f);
        for (int k = 0; k < len; k++) {
            int yy = (int)y + k, xx = (int)(x + slant * (float)k);
            if (yy >= r->h || xx < 0 || xx >= r->w) break;
            uint8_t *p = r->rgb + ((size_t)yy * r->w + xx) * 3;
            for (int c = 0; c < 3; c++) p[c] = clamp_u8(p[c] * (1 - a) + 210.0f * a);
        }
    }
}

// Dark one-pixel lines where the label changes to the right or below (cartoon ink).
static void apply_outlines(raster *r) {
    for (int y = 0; y < r->h; y++)
        for (int x = 0; x < r->w; x++) {
            const uint8_t *l = r->lab + (size_t)y * r->w + x;
            int edge = (x + 1 < r->w && l[1] != l[0]) || (y + 1 < r->h && l[r->w] != l[0]);
            if (!edge) continue;
            uint8_t *p = r->rgb + ((size_t)y * r->w + x) * 3;
            p[0] = 40; p[1] = 30; p[2] = 55;
        }
}

// 3x3 box blur in place (edges replicated), with two saved rows of the original.
static void box_blur(raster *r) {
    int w = r->w, h = r->h;
    uint8_t prev[SYNTH_MAX_SIDE * 3], cur[SYNTH_MAX_SIDE * 3];
    for (int y = 0; y < h; y++) {   // horizontal
        uint8_t *p = r->rgb + (size_t)y * w * 3;
        memcpy(cur, p, (size_t)w * 3);
        for (int x = 0; x < w; x++) {
            int a = x > 0 ? x - 1 : 0, b = x + 1 < w ? x + 1 : w - 1;
            for (int c = 0; c < 3; c++) p[x * 3 + c] = (uint8_t)((cur[a * 3 + c] + cur[x * 3 + c] + cur[b * 3 + c] + 1) / 3);
        }
    }
    memcpy(prev, r->rgb, (size_t)w * 3);   // vertical: prev holds row y-1 before blurring
    for (int y = 0; y < h; y++) {
        uint8_t *p = r->rgb + (size_t)y * w * 3;
        const uint8_t *next = y + 1 < h ? p + (size_t)w * 3 : p;
        memcpy(cur, p, (size_t)w * 3);
        for (int i = 0; i < w * 3; i++) p[i] = (uint8_t)((prev[i] + cur[i] + next[i] + 1) / 3);
        memcpy(prev, cur, (size_t)w * 3);
    }
}

// Triangular noise (the sum of two uniform bytes, centred) of std NOISE_TABLE_STD, long
// enough for any row (SYNTH_MAX_SIDE * 3 values) plus a random start.
#define NOISE_TABLE_SIZE (4 * SYNTH_MAX_SIDE * 3)
#define NOISE_TABLE_STD 52.25f
static int8_t g_noise[NOISE_TABLE_SIZE];
static pthread_once_t g_noise_once = PTHREAD_ONCE_INIT;

static void build_noise(void) {
    for (int i = 0; i < NOISE_TABLE_SIZE; i += 4) {
        mv_rng4 b = philox4x32(0x4015Eu, (uint32_t)i, 0, 0, 0);
        for (int k = 0; k < 4; k++)
            g_noise[i + k] = (int8_t)(((int)(b.v[k] & 255) + (int)((b.v[k] >> 8) & 255) - 255) / 2);
    }
}

static const int8_t *noise_table(void) { pthread_once(&g_noise_once, build_noise); return g_noise; }

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void grade(raster *r, rng_stream *rng) {
    const synth_domain *d = r->dom;
    float exposure = rng_uniform(rng, d->exposure[0], d->exposure[1]);
    uint8_t lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float t = (float)v / 255.0f * exposure * d->tint[c];
            t = (t - 0.5f) * d->contrast + 0.5f;
            t = powf(minf(1.0f, maxf(0.0f, t)), d->gamma);
            if (d->posterize > 1) t = roundf(t * (d->posterize - 1)) / (float)(d->posterize - 1);
            lut[c][v] = clamp_u8(t * 255.0f + 0.5f);
        }
    // Sensor noise: std d->noise, from a fixed table of triangular noise read at a random offset
    // per row (one hash per row instead of one per pixel). Integer arithmetic: this pass
    // touches every pixel.
    const int8_t *tab = noise_table();
    uint64_t key = ((uint64_t)rng_next_u32(rng) << 32) | rng_next_u32(rng);
    int nscale = (int)(d->noise / NOISE_TABLE_STD * 256.0f + 0.5f), sat = (int)(d->saturation * 256.0f + 0.5f);
    size_t rowlen = (size_t)r->w * 3;
    for (int y = 0; y < r->h; y++) {
        uint8_t *p = r->rgb + (size_t)y * rowlen;
        size_t off = (size_t)(mix64(key + (uint64_t)y) % (NOISE_TABLE_SIZE - rowlen % NOISE_TABLE_SIZE));
        const int8_t *nz = tab + off;
        for (int x = 0; x < r->w; x++, p += 3, nz += 3) {
            int g = (77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8;
            for (int c = 0; c < 3; c++) {
                int v = g + (((p[c] - g) * sat) >> 8);
                v = lut[c][v < 0 ? 0 : v > 255 ? 255 : v] + ((nz[c] * nscale + 128) >> 8);
                p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

void render_effects(raster *r, rng_stream *rng) {
    const synth_domain *d = r->dom;
    apply_glows(r);
    if (d->rain > 0) apply_rain(r, rng);
    for (int i = 0; i < d->blur; i++) box_blur(r);
    if (d->outlines) apply_outlines(r);
    grade(r, rng);
}
