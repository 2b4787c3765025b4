// The weather corruptions snow, fog and frost (spatter is corrupt_spatter.c), and the
// procedural frost texture that replaces the package's six photographs.
// Compiled with -ffp-contract=off (CMakeLists.txt): numpy rounds every product, and a fused
// a * b + c can move a value across a whole number, i.e. a grey level.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "data/corrupt_internal.h"

static inline float clip01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

// ---------------------------------------------------------------------------------------
// Plasma fractal (diamond-square on a torus, as the package's plasma_fractal), in [0, 1].

typedef struct { uint64_t seed; uint32_t purpose, pass; uint64_t count; mv_rng4 block; } plasma_rng;

// wibble * U(-wibble, wibble) for the next cell of this pass.
static float plasma_noise(plasma_rng *r, float wibble) {
    uint64_t k = r->count++;
    if ((k & 3) == 0) r->block = philox4x32(r->seed, (uint32_t)(k >> 2), (uint32_t)(k >> 34), r->purpose, r->pass);
    return wibble * (rng_u01(r->block.v[k & 3]) * 2.0f - 1.0f) * wibble;
}

static float *plasma_fractal(int n, float decay, uint64_t seed, uint32_t purpose) {
    float *M = mv_calloc((size_t)n * n, sizeof *M);
    float wibble = 100.0f;
    plasma_rng r = {seed, purpose, 0, 0, {{0, 0, 0, 0}}};
#define AT(i, j) M[(size_t)((i) & (n - 1)) * n + ((j) & (n - 1))]
    for (int s = n; s >= 2; s /= 2, wibble /= decay) {
        int m = n / s, hs = s / 2;
        r.pass++; r.count = 0;
        for (int i = 0; i < m; i++)   // squares: centre = mean of 4 corners + noise
            for (int j = 0; j < m; j++)
                AT(i * s + hs, j * s + hs) = (AT(i * s, j * s) + AT(i * s + s, j * s) + AT(i * s, j * s + s) +
                                              AT(i * s + s, j * s + s)) / 4 + plasma_noise(&r, wibble);
        r.pass++; r.count = 0;
        for (int i = 0; i < m; i++)   // diamonds on the horizontal edges
            for (int j = 0; j < m; j++)
                AT(i * s, j * s + hs) = (AT(i * s + hs, j * s + hs) + AT(i * s - hs, j * s + hs) + AT(i * s, j * s) +
                                         AT(i * s, j * s + s)) / 4 + plasma_noise(&r, wibble);
        r.pass++; r.count = 0;
        for (int i = 0; i < m; i++)   // diamonds on the vertical edges
            for (int j = 0; j < m; j++)
                AT(i * s + hs, j * s) = (AT(i * s + hs, j * s + hs) + AT(i * s + hs, j * s - hs) + AT(i * s, j * s) +
                                         AT(i * s + s, j * s)) / 4 + plasma_noise(&r, wibble);
    }
#undef AT
    float lo = M[0], hi = M[0];
    for (size_t i = 0; i < (size_t)n * n; i++) { lo = M[i] < lo ? M[i] : lo; hi = M[i] > hi ? M[i] : hi; }
    float scale = hi > lo ? 1.0f / (hi - lo) : 0.0f;
    for (size_t i = 0; i < (size_t)n * n; i++) M[i] = (M[i] - lo) * scale;
    return M;
}

static int next_pow2(int v) {
    int p = 1;
    while (p < v) p *= 2;
    return p;
}

void cx_fog(double *x, int h, int w, int s, uint64_t seed) {
    static const double STRENGTH[5] = {1.5, 2.0, 2.5, 2.5, 3.0};
    static const float DECAY[5] = {2.0f, 2.0f, 1.7f, 1.5f, 1.4f};
    int side = h > w ? h : w;
    int n = next_pow2(side > 3 ? side : 3);   // the package takes max(H, W, channels)
    float *M = plasma_fractal(n, DECAY[s - 1], seed, cx_purpose(CORRUPT_FOG, 0));
    double st = STRENGTH[s - 1], vmax = 0;
    for (size_t i = 0; i < (size_t)h * w * 3; i++) vmax = x[i] > vmax ? x[i] : vmax;
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            double f = st * M[(size_t)y * n + xx];
            double *p = x + ((size_t)y * w + xx) * 3;
            for (int c = 0; c < 3; c++) p[c] = (p[c] + f) * vmax / (vmax + st);   // the package's order
        }
    free(M);
}

// ---------------------------------------------------------------------------------------
// Snow

void cx_snow(double *x, int h, int w, int s, uint64_t seed) {
    static const double P[5][7] = {   // mean, std, zoom, threshold, blur radius, blur sigma, blend
        {0.1, 0.3, 3.0, 0.5, 10, 4, 0.8}, {0.2, 0.3, 2.0, 0.5, 12, 4, 0.7},
        {0.55, 0.3, 4.0, 0.9, 12, 8, 0.7}, {0.55, 0.3, 4.5, 0.85, 12, 8, 0.65},
        {0.55, 0.3, 2.5, 0.85, 12, 12, 0.55}};
    const double *c = P[s - 1];
    size_t n = (size_t)h * w;
    float *noise = mv_malloc(n * sizeof *noise);
    cx_fill_normal(noise, n, seed, cx_purpose(CORRUPT_SNOW, 0), (float)c[0], (float)c[1]);
    double *snow = cx_big(n * sizeof *snow);
    // clipped_zoom: the centred crop of ceil(size / z), enlarged by z with linear
    // interpolation (scipy's zoom maps the corners onto each other) to round(crop * z), which
    // can be a pixel or two more than the image. The package thresholds and motion-blurs that
    // whole layer and crops it to h x w only after, so the blur near the right edge (and, through
    // the 180-degree copy, the left) reads the extra columns rather than the replicated last
    // one: keep them until then too (cropping first was off by up to 96 grey levels there).
    double z = c[2];
    int ch = (int)ceil(h / z), cw = (int)ceil(w / z);
    int top = (h - ch) / 2, left = (w - cw) / 2;
    int oh = (int)nearbyint(ch * z), ow = (int)nearbyint(cw * z);   // Python's round: half to even
    size_t on = (size_t)oh * ow;
    double *layer = cx_big(on * sizeof *layer), *blurred = cx_big(on * sizeof *blurred);
    double sy = oh > 1 ? (double)(ch - 1) / (oh - 1) : 0, sx = ow > 1 ? (double)(cw - 1) / (ow - 1) : 0;
    for (int i = 0; i < oh; i++) {
        double fy = i * sy;
        int y0 = (int)fy < ch - 1 ? (int)fy : ch - 1, y1 = y0 + 1 < ch ? y0 + 1 : ch - 1;
        double ty = fy - y0;
        for (int j = 0; j < ow; j++) {
            double fx = j * sx;
            int x0 = (int)fx < cw - 1 ? (int)fx : cw - 1, x1 = x0 + 1 < cw ? x0 + 1 : cw - 1;
            double tx = fx - x0;
            const float *r0 = noise + (size_t)(top + y0) * w + left, *r1 = noise + (size_t)(top + y1) * w + left;
            double v = (r0[x0] * (1 - tx) + r0[x1] * tx) * (1 - ty) + (r1[x0] * (1 - tx) + r1[x1] * tx) * ty;
            layer[(size_t)i * ow + j] = v < c[3] ? 0.0 : v > 1 ? 1.0 : v;
        }
    }
    rng_stream r = rng_stream_make(seed, 0, cx_purpose(CORRUPT_SNOW, 1));
    float angle = rng_uniform(&r, -135.0f, -45.0f);
    cx_motion_blur_core(blurred, layer, oh, ow, 1, (int)c[4], c[5], angle);
    for (int i = 0; i < h; i++)   // quantised to 1/255 (np.round: half to even), cropped to the image
        for (int j = 0; j < w; j++) snow[(size_t)i * w + j] = nearbyint(blurred[(size_t)i * ow + j] * 255) / 255.;
    free(blurred);
    free(layer);
    free(noise);
    // The image step is float32 in the package (x is a float32 array there); the sum with the
    // snow layer is float64. Python's scalars b and 1 - b become float32 there.
    float b = (float)c[6], nb = (float)(1 - c[6]);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double *p = x + ((size_t)i * w + j) * 3;
            float q[3] = {(float)p[0], (float)p[1], (float)p[2]};
            float gray = 0.299f * q[0] + 0.587f * q[1] + 0.114f * q[2];
            size_t a = (size_t)i * w + j, r180 = (size_t)(h - 1 - i) * w + (w - 1 - j);
            for (int k = 0; k < 3; k++) {
                float bright = gray * 1.5f + 0.5f;
                float v = b * q[k] + nb * (q[k] > bright ? q[k] : bright);
                p[k] = ((double)v + snow[a]) + snow[r180];
            }
        }
    free(snow);
}

// ---------------------------------------------------------------------------------------
// Frost: out = a * x + f * texture, with a procedural ice texture in place of the package's
// photographs: a cloudy plasma base that thickens towards the borders, covered in fern-like
// crystal strokes, lightly blurred, tinted bluish white.

static void stroke(float *S, int h, int w, float x0, float y0, float x1, float y1, float v) {
    float dx = x1 - x0, dy = y1 - y0;
    int steps = (int)(fabsf(dx) > fabsf(dy) ? fabsf(dx) : fabsf(dy)) + 1;
    for (int k = 0; k <= steps; k++) {
        float t = (float)k / (float)steps;
        int xi = (int)floorf(x0 + dx * t), yi = (int)floorf(y0 + dy * t);
        if (xi < 0 || yi < 0 || xi >= w || yi >= h) continue;
        float *p = &S[(size_t)yi * w + xi];
        float fade = v * (1.0f - 0.6f * t);   // crystals thin out towards their tips
        if (fade > *p) *p = fade;
    }
}

void cx_frost_texture(float *tex, int h, int w, uint64_t seed) {
    size_t n = (size_t)h * w;
    int side = h > w ? h : w, small = h < w ? h : w;
    int np2 = next_pow2(side);
    float *base = plasma_fractal(np2, 1.8f, seed, cx_purpose(CORRUPT_FROST, 0));
    float *S = mv_calloc(n, sizeof *S);
    rng_stream r = rng_stream_make(seed, 0, cx_purpose(CORRUPT_FROST, 1));
    int nseeds = (int)(n / 150) + 4;
    for (int i = 0; i < nseeds; i++) {
        float px, py;
        if (rng_chance(&r, 0.4f)) {   // frost grows in from the borders
            float d = -logf(1.0f - rng_uniform(&r, 0, 0.999f)) * 0.08f * (float)small;
            int edge = rng_below(&r, 4);
            float t = rng_uniform(&r, 0, 1);
            px = edge == 0 ? d : edge == 1 ? (float)w - 1 - d : t * (float)w;
            py = edge == 2 ? d : edge == 3 ? (float)h - 1 - d : t * (float)h;
        } else {
            px = rng_uniform(&r, 0, (float)w);
            py = rng_uniform(&r, 0, (float)h);
        }
        float ang = rng_uniform(&r, 0, 6.2831853f), len = rng_uniform(&r, 0.008f, 0.045f) * (float)side + 2;
        float v = rng_uniform(&r, 0.2f, 0.75f);
        float ex = px + len * cosf(ang), ey = py + len * sinf(ang);
        stroke(S, h, w, px, py, ex, ey, v);
        float spacing = rng_uniform(&r, 0.08f, 0.2f) * len + 1;
        float side_ang = rng_uniform(&r, 0.7f, 1.3f);
        for (float t = spacing; t < len; t += spacing) {   // side branches on both sides
            float bx = px + t * cosf(ang), by = py + t * sinf(ang);
            float bl = (len - t) * rng_uniform(&r, 0.2f, 0.5f);
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                float a = ang + (float)sgn * side_ang;
                stroke(S, h, w, bx, by, bx + bl * cosf(a), by + bl * sinf(a), v * 0.8f);
            }
        }
    }
    double *Sd = mv_malloc(n * sizeof *Sd);
    for (size_t i = 0; i < n; i++) Sd[i] = S[i];
    cx_gaussian(Sd, h, w, 1, 0.5 * (side > 800 ? side / 800 : 1));
    for (size_t i = 0; i < n; i++) S[i] = (float)Sd[i];
    free(Sd);
    float *grain = mv_malloc(n * sizeof *grain);
    cx_fill_uniform(grain, n, seed, cx_purpose(CORRUPT_FROST, 2));
    static const float TINT[3] = {0.86f, 0.93f, 1.0f};
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            float dy = (float)(y < h - 1 - y ? y : h - 1 - y), dx = (float)(xx < w - 1 - xx ? xx : w - 1 - xx);
            float border = expf(-(dx < dy ? dx : dy) / (0.15f * (float)small + 1));
            size_t i = (size_t)y * w + xx;
            float t = 0.2f + 0.3f * base[(size_t)y * np2 + xx] + 0.2f * border + 0.8f * S[i] + 0.06f * (grain[i] - 0.5f);
            for (int c = 0; c < 3; c++) tex[i * 3 + c] = clip01(t) * TINT[c];
        }
    free(grain);
    free(S);
    free(base);
}

void cx_frost(double *x, int h, int w, int s, uint64_t seed) {
    static const double A[5] = {1.0, 0.8, 0.7, 0.65, 0.6}, F[5] = {0.4, 0.6, 0.7, 0.7, 0.75};
    size_t n = (size_t)h * w * 3;
    float *tex = cx_big(n * sizeof *tex);
    cx_frost_texture(tex, h, w, seed);
    // the package blends in 0..255 (clip(a * x + f * frost, 0, 255)); corrupt.c knows
    for (size_t i = 0; i < n; i++) x[i] = A[s - 1] * (x[i] * 255.) + F[s - 1] * (tex[i] * 255.);
    free(tex);
}
