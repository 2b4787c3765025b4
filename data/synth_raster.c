// The synthetic scenes' rasteriser: spans, rectangles, convex polygons, ellipses and lines,
// each writing a label and a shaded colour (base colour, depth fog, a texel of a shared
// tileable texture). No allocation: everything goes into the caller's buffers.
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "data/synth_internal.h"

// ---------------------------------------------------------------------------------------
// Textures: two 256 x 256 tileable tables, built once from a fixed Philox key.

static int8_t g_smooth[256 * 256], g_grain[256 * 256];
static pthread_once_t g_tex_once = PTHREAD_ONCE_INIT;

static float lattice(int x, int y, int period, uint32_t octave) {
    mv_rng4 b = philox4x32(0x5EED7E47u, (uint32_t)(x & (period - 1)), (uint32_t)(y & (period - 1)), octave, 0);
    return rng_u01(b.v[0]) * 2.0f - 1.0f;
}

// Value noise with `cells` lattice cells across the 256-texel tile (so it wraps).
static float value_noise(int x, int y, int cells, uint32_t octave) {
    float s = 256.0f / (float)cells;
    float fx = (float)x / s, fy = (float)y / s;
    int ix = (int)fx, iy = (int)fy;
    float tx = fx - (float)ix, ty = fy - (float)iy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    float a = lattice(ix, iy, cells, octave), b = lattice(ix + 1, iy, cells, octave);
    float c = lattice(ix, iy + 1, cells, octave), d = lattice(ix + 1, iy + 1, cells, octave);
    return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

static void build_textures(void) {
    static const int cells[5] = {4, 8, 16, 32, 64};
    static const float weight[5] = {0.45f, 0.25f, 0.15f, 0.1f, 0.05f};
    static float tmp[256 * 256];
    float lo = 1e9f, hi = -1e9f;
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            float v = 0;
            for (int o = 0; o < 5; o++) v += weight[o] * value_noise(x, y, cells[o], (uint32_t)o);
            tmp[y * 256 + x] = v;
            lo = minf(lo, v);
            hi = maxf(hi, v);
        }
    for (int i = 0; i < 256 * 256; i++) g_smooth[i] = (int8_t)lrintf(-127 + 254 * (tmp[i] - lo) / (hi - lo));
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            mv_rng4 b = philox4x32(0x6EA1u, (uint32_t)x, (uint32_t)y, 0, 0);
            float v = 0.7f * (rng_u01(b.v[0]) * 2 - 1) + 0.3f * value_noise(x, y, 128, 7);
            g_grain[y * 256 + x] = (int8_t)lrintf(maxf(-1, minf(1, v)) * 127);
        }
}

// The shared texture tables (built once, thread-safe).
static const int8_t *texture_smooth(void) { pthread_once(&g_tex_once, build_textures); return g_smooth; }
static const int8_t *texture_grain(void) { pthread_once(&g_tex_once, build_textures); return g_grain; }

// ---------------------------------------------------------------------------------------
// Shading

void shader_prepare(shader *s, const raster *r, const material *m, float z) {
    const synth_domain *d = r->dom;
    float fog = z > 0 ? 1.0f - expf(-r->fog_density * z) : 0.0f;
    float amp = m->tex * d->tex * (1.0f - fog) / 127.0f;
    s->cls = m->cls;
    s->multiply = 0;
    for (int c = 0; c < 3; c++) {
        s->c0[c] = m->rgb[c] * (1.0f - fog) + d->fog_color[c] * fog;
        s->k[c] = m->rgb[c] * amp;
    }
    s->tex = m->grain ? texture_grain() : texture_smooth();
}

void shader_shadow(shader *s, float factor) {
    s->cls = -1;
    s->multiply = 1;
    for (int c = 0; c < 3; c++) { s->c0[c] = factor; s->k[c] = 0; }
    s->tex = texture_smooth();
}

static inline void shade_one(raster *r, const shader *s, int x, int y) {
    uint8_t *p = r->rgb + ((size_t)y * r->w + x) * 3;
    if (s->multiply) {
        for (int c = 0; c < 3; c++) p[c] = clamp_u8(p[c] * s->c0[c]);
        return;
    }
    float t = s->tex[(((y + r->toy) & 255) << 8) | ((x + r->tox) & 255)];
    for (int c = 0; c < 3; c++) p[c] = clamp_u8(s->c0[c] + s->k[c] * t);
    if (s->cls >= 0) r->lab[(size_t)y * r->w + x] = (uint8_t)s->cls;
}

void shade_pixel(raster *r, const shader *s, int x, int y) { shade_one(r, s, x, y); }

// Shades n pixels from texels tx[0..n) (contiguous, so the loop vectorises).
static inline void shade_run(uint8_t *p, const int8_t *tx, int n, const shader *s) {
    const float c0 = s->c0[0], c1 = s->c0[1], c2 = s->c0[2], k0 = s->k[0], k1 = s->k[1], k2 = s->k[2];
    for (int i = 0; i < n; i++) {
        float t = tx[i];
        p[3 * i] = clamp_u8(c0 + k0 * t);
        p[3 * i + 1] = clamp_u8(c1 + k1 * t);
        p[3 * i + 2] = clamp_u8(c2 + k2 * t);
    }
}

void fill_span(raster *r, const shader *s, int y, int x0, int x1) {
    if (y < 0 || y >= r->h) return;
    if (x0 < 0) x0 = 0;
    if (x1 > r->w) x1 = r->w;
    if (x0 >= x1) return;
    uint8_t *p = r->rgb + ((size_t)y * r->w + x0) * 3;
    if (s->multiply) {
        for (int x = x0; x < x1; x++, p += 3)
            for (int c = 0; c < 3; c++) p[c] = clamp_u8(p[c] * s->c0[c]);
        return;
    }
    const int8_t *row = s->tex + (((y + r->toy) & 255) << 8);
    for (int x = x0; x < x1;) {   // runs that do not wrap around the 256-texel row
        int u = (x + r->tox) & 255, n = 256 - u < x1 - x ? 256 - u : x1 - x;
        shade_run(p, row + u, n, s);
        p += 3 * n;
        x += n;
    }
    if (s->cls >= 0) memset(r->lab + (size_t)y * r->w + x0, s->cls, (size_t)(x1 - x0));
}

void fill_vspan(raster *r, const shader *s, int x, int y0, int y1) {
    if (x < 0 || x >= r->w) return;
    if (y0 < 0) y0 = 0;
    if (y1 > r->h) y1 = r->h;
    for (int y = y0; y < y1; y++) shade_one(r, s, x, y);
}

// First pixel whose centre is at or right of v (clamped to [0, n]).
static inline int pix_ceil(float v, int n) {
    float f = ceilf(v - 0.5f);
    return f < 0 ? 0 : f > (float)n ? n : (int)f;
}

void fill_rect(raster *r, const shader *s, float x0, float y0, float x1, float y1) {
    // keep thin things (poles, far wheels) at least one pixel wide once they are a third of one
    if (x1 - x0 < 1.0f && x1 - x0 > 0.3f) { float c = 0.5f * (x0 + x1); x0 = c - 0.5f; x1 = c + 0.5f; }
    if (y1 - y0 < 1.0f && y1 - y0 > 0.3f) { float c = 0.5f * (y0 + y1); y0 = c - 0.5f; y1 = c + 0.5f; }
    int ix0 = pix_ceil(x0, r->w), ix1 = pix_ceil(x1, r->w);
    int iy0 = pix_ceil(y0, r->h), iy1 = pix_ceil(y1, r->h);
    for (int y = iy0; y < iy1; y++) fill_span(r, s, y, ix0, ix1);
}

void fill_poly(raster *r, const shader *s, const float *xy, int n) {
    if (n < 3 || n > 8) return;
    float ymin = xy[1], ymax = xy[1];
    for (int i = 1; i < n; i++) { ymin = minf(ymin, xy[2 * i + 1]); ymax = maxf(ymax, xy[2 * i + 1]); }
    int iy0 = pix_ceil(ymin, r->h), iy1 = pix_ceil(ymax, r->h);
    for (int y = iy0; y < iy1; y++) {
        float yc = (float)y + 0.5f, lo = 1e30f, hi = -1e30f;
        for (int i = 0; i < n; i++) {
            float ax = xy[2 * i], ay = xy[2 * i + 1];
            float bx = xy[2 * ((i + 1) % n)], by = xy[2 * ((i + 1) % n) + 1];
            if ((ay <= yc && by > yc) || (by <= yc && ay > yc)) {
                float x = ax + (yc - ay) * (bx - ax) / (by - ay);
                lo = minf(lo, x);
                hi = maxf(hi, x);
            }
        }
        if (hi > lo) fill_span(r, s, y, pix_ceil(lo, r->w), pix_ceil(hi, r->w));
    }
}

void fill_ellipse(raster *r, const shader *s, float cx, float cy, float rx, float ry) {
    if (rx <= 0 || ry <= 0) return;
    if (rx < 0.5f) rx = 0.5f;
    if (ry < 0.5f) ry = 0.5f;
    int iy0 = pix_ceil(cy - ry, r->h), iy1 = pix_ceil(cy + ry, r->h);
    for (int y = iy0; y < iy1; y++) {
        float dy = ((float)y + 0.5f - cy) / ry;
        float q = 1.0f - dy * dy;
        if (q <= 0) continue;
        float hw = rx * sqrtf(q);
        fill_span(r, s, y, pix_ceil(cx - hw, r->w), pix_ceil(cx + hw, r->w));
    }
}

void fill_ring(raster *r, const shader *s, float cx, float cy, float rx, float ry, float t) {
    if (t < 0.7f) t = 0.7f;
    float ix = rx - t, iy = ry - t;
    if (ix <= 0.5f || iy <= 0.5f) { fill_ellipse(r, s, cx, cy, rx, ry); return; }
    int y0 = pix_ceil(cy - ry, r->h), y1 = pix_ceil(cy + ry, r->h);
    for (int y = y0; y < y1; y++) {
        float yc = (float)y + 0.5f - cy;
        float qo = 1.0f - (yc / ry) * (yc / ry), qi = 1.0f - (yc / iy) * (yc / iy);
        if (qo <= 0) continue;
        float ho = rx * sqrtf(qo);
        if (qi <= 0) { fill_span(r, s, y, pix_ceil(cx - ho, r->w), pix_ceil(cx + ho, r->w)); continue; }
        float hi = ix * sqrtf(qi);
        fill_span(r, s, y, pix_ceil(cx - ho, r->w), pix_ceil(cx - hi, r->w));
        fill_span(r, s, y, pix_ceil(cx + hi, r->w), pix_ceil(cx + ho, r->w));
    }
}

void fill_line(raster *r, const shader *s, float x0, float y0, float x1, float y1, float thick) {
    float dx = x1 - x0, dy = y1 - y0, len = sqrtf(dx * dx + dy * dy);
    if (thick < 1.0f) thick = 1.0f;
    if (len < 1e-3f) { fill_ellipse(r, s, x0, y0, thick * 0.5f, thick * 0.5f); return; }
    float nx = -dy / len * thick * 0.5f, ny = dx / len * thick * 0.5f;
    float q[8] = {x0 + nx, y0 + ny, x1 + nx, y1 + ny, x1 - nx, y1 - ny, x0 - nx, y0 - ny};
    fill_poly(r, s, q, 4);
}

void add_glow(raster *r, float x, float y, float radius, const float rgb[3]) {
    if (r->nglow >= RASTER_MAX_GLOWS || radius < 0.5f) return;
    if (x < -radius || y < -radius || x > r->w + radius || y > r->h + radius) return;
    raster_glow *g = &r->glow[r->nglow++];
    g->x = x; g->y = y; g->radius = radius;
    for (int c = 0; c < 3; c++) g->rgb[c] = rgb[c];
}
